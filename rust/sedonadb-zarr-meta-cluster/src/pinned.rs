//! Geometry types that survive a plan's trip to the executors.
//!
//! SedonaDB's functions find their kernel, and the CRS, in the field metadata
//! of their arguments (`geoarrow.wkb` with a CRS). datafusion-proto 54.1
//! drops that metadata from literals and from the return fields of scalar
//! functions (apache/datafusion#24613), so an executor would see
//! `ST_Intersects(geometry, binary)` and find no kernel, or read a CRS as
//! missing. Two measures, one per trip:
//!
//! * client → scheduler: the client sends its plan unoptimized, so constant
//!   geometries (`ST_GeomFromText('…', 4326)`) are folded into literals on
//!   the scheduler, never serialized as literals;
//! * scheduler → executors: the scheduler's last optimizer rule
//!   ([`PinGeometryFunctions`]) gives each call of a geometry function its
//!   own [`Pinned`] wrapper, which records the argument and return fields
//!   the scheduler planned with; the physical codec carries them, and on an
//!   executor the wrapper hands them to the function instead of the fields
//!   rebuilt without metadata.

use std::collections::HashSet;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use datafusion::arrow::datatypes::{DataType, FieldRef, Schema};
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{DataFusionError, Result};
use datafusion::logical_expr::expr::ScalarFunction;
use datafusion::logical_expr::{
    ColumnarValue, Expr, LogicalPlan, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl,
    Signature,
};
use datafusion::optimizer::{OptimizerConfig, OptimizerRule};

/// The fields one call was planned with.
#[derive(Debug, Clone, PartialEq)]
struct Planned {
    args: Vec<FieldRef>,
    output: FieldRef,
}

/// One call of a geometry function, with the fields it was planned with.
#[derive(Debug)]
pub struct Pinned {
    inner: Arc<ScalarUDF>,
    planned: Mutex<Option<Planned>>,
    /// Tells calls apart (each call site has its own wrapper).
    id: u64,
}

static NEXT_ID: AtomicU64 = AtomicU64::new(0);

impl Pinned {
    fn new(inner: Arc<ScalarUDF>, planned: Option<Planned>) -> Self {
        Self { inner, planned: Mutex::new(planned), id: NEXT_ID.fetch_add(1, Ordering::Relaxed) }
    }

    fn planned(&self) -> Option<Planned> {
        self.planned.lock().ok().and_then(|p| p.clone())
    }
}

impl PartialEq for Pinned {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
    }
}

impl Eq for Pinned {}

impl Hash for Pinned {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.id.hash(state);
    }
}

impl ScalarUDFImpl for Pinned {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn signature(&self) -> &Signature {
        self.inner.signature()
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        self.inner.return_type(arg_types)
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        self.inner.coerce_types(arg_types)
    }

    fn aliases(&self) -> &[String] {
        self.inner.aliases()
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        let arg_fields = args.arg_fields.to_vec();
        let output = self.inner.return_field_from_args(args)?;
        if let Ok(mut planned) = self.planned.lock() {
            *planned = Some(Planned { args: arg_fields, output: output.clone() });
        }
        Ok(output)
    }

    fn invoke_with_args(&self, mut args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        if let Some(planned) = self.planned() {
            // The same types, less the metadata the wire lost: use what was planned.
            let same = planned.args.len() == args.arg_fields.len()
                && planned.args.iter().zip(&args.arg_fields).all(|(a, b)| a.data_type() == b.data_type());
            if same {
                args.arg_fields = planned.args;
                args.return_field = planned.output;
            }
        }
        self.inner.invoke_with_args(args)
    }
}

/// The planned fields of `udf`, if it is a [`Pinned`] call that has them: a
/// schema of the argument fields and, last, the return field.
pub fn encode(udf: &ScalarUDF) -> Option<Vec<u8>> {
    let pinned = udf.inner().downcast_ref::<Pinned>()?;
    let planned = pinned.planned()?;
    let fields: Vec<FieldRef> = planned.args.iter().chain([&planned.output]).cloned().collect();
    crate::wire::schema_to_bytes(&Schema::new(fields)).ok()
}

/// A [`Pinned`] call of `inner` with the fields `buf` carries.
pub fn decode(inner: Arc<ScalarUDF>, buf: &[u8]) -> Result<Arc<ScalarUDF>> {
    let schema = crate::wire::schema_from_bytes(buf)?;
    let mut args: Vec<FieldRef> = schema.fields().iter().cloned().collect();
    let output = args.pop().ok_or_else(|| {
        DataFusionError::Plan(format!("the planned fields of {} are missing", inner.name()))
    })?;
    Ok(Arc::new(ScalarUDF::new_from_impl(Pinned::new(inner, Some(Planned { args, output })))))
}

/// The scheduler's last optimizer rule: every call of a function in `names`
/// gets its own [`Pinned`] wrapper.
#[derive(Debug)]
pub struct PinGeometryFunctions {
    names: HashSet<String>,
}

impl PinGeometryFunctions {
    pub fn new(names: impl IntoIterator<Item = String>) -> Self {
        Self { names: names.into_iter().collect() }
    }

    fn pin(&self, expr: Expr) -> Result<Transformed<Expr>> {
        expr.transform_up(|e| match e {
            Expr::ScalarFunction(f)
                if self.names.contains(f.func.name())
                    && f.func.inner().downcast_ref::<Pinned>().is_none() =>
            {
                let pinned = Arc::new(ScalarUDF::new_from_impl(Pinned::new(f.func.clone(), None)));
                Ok(Transformed::yes(Expr::ScalarFunction(ScalarFunction::new_udf(pinned, f.args))))
            }
            other => Ok(Transformed::no(other)),
        })
    }
}

impl OptimizerRule for PinGeometryFunctions {
    fn name(&self) -> &str {
        "pin_geometry_functions"
    }

    fn supports_rewrite(&self) -> bool {
        true
    }

    fn rewrite(&self, plan: LogicalPlan, _config: &dyn OptimizerConfig) -> Result<Transformed<LogicalPlan>> {
        plan.transform_up_with_subqueries(|node| node.map_expressions(|e| self.pin(e)))
    }
}
