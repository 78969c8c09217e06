//! A scan that could not be rebuilt on an executor (the store is missing
//! there, or changed since the query was planned), failing when it runs.
//!
//! A plan that fails to decode makes Ballista's scheduler drop the executor
//! and hand the task to the next one, which fails the same way: the query
//! waits forever. A task that fails when it runs fails the query, with this
//! message.

use std::fmt;
use std::sync::Arc;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::{DataFusionError, Result};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::EquivalenceProperties;
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PlanProperties};

#[derive(Debug)]
pub struct FailedScan {
    message: String,
    properties: Arc<PlanProperties>,
}

impl FailedScan {
    pub fn new(schema: SchemaRef, partitions: usize, message: String) -> Self {
        let properties = Arc::new(PlanProperties::new(
            EquivalenceProperties::new(schema),
            Partitioning::UnknownPartitioning(partitions.max(1)),
            EmissionType::Incremental,
            Boundedness::Bounded,
        ));
        Self { message, properties }
    }
}

impl DisplayAs for FailedScan {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "FailedScan: {}", self.message)
    }
}

impl ExecutionPlan for FailedScan {
    fn name(&self) -> &str {
        "FailedScan"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![]
    }

    fn with_new_children(
        self: Arc<Self>,
        _children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        Ok(self)
    }

    fn execute(&self, _partition: usize, _context: Arc<TaskContext>) -> Result<SendableRecordBatchStream> {
        let error = DataFusionError::Execution(self.message.clone());
        let stream = futures::stream::once(async move { Err(error) });
        Ok(Box::pin(RecordBatchStreamAdapter::new(self.schema(), stream)))
    }
}
