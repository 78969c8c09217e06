//! `SedonaTableProvider`: a `meta` group exported to SedonaDB through its
//! stable C ABI (`__sedonadb_table_provider__`, crate `sedona-extension`).
//!
//! SedonaDB plans such a provider as an ordinary table scan, which sidesteps
//! the projection bug of its `ExternalFormatSpec` path and re-scans the store
//! on every query. Filters reach us as expressions whose functions are name
//! placeholders; we never re-plan them, so a geometry literal that lost its
//! type on the way across cannot break the query.

use std::any::Any;
use std::collections::HashMap;
use std::ffi::CString;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion_catalog::{Session, TableProvider};
use datafusion_common::config::TableOptions;
use datafusion_common::{not_impl_err, DFSchema, Result as DFResult};
use datafusion_execution::config::SessionConfig;
use datafusion_execution::runtime_env::RuntimeEnv;
use datafusion_execution::TaskContext;
use datafusion_expr::execution_props::ExecutionProps;
use datafusion_expr::registry::{ExtensionTypeRegistryRef, MemoryExtensionTypeRegistry};
use datafusion_expr::{AggregateUDF, Expr, HigherOrderUDF, LogicalPlan, ScalarUDF, WindowUDF};
use datafusion_physical_plan::{ExecutionPlan, PhysicalExpr};
use pyo3::prelude::*;
use pyo3::types::PyCapsule;
use sedona_extension::extension::SedonaCTableProvider;
use sedona_extension::table_provider::ExportedTableProvider;
use sedonadb_zarr_meta_core::ZarrMetaTable;

use crate::reader::{open_group, schema_capsule};
use crate::{host, runtime};

/// The session our exported provider plans its scans in. SedonaDB only uses
/// it to decode filters and to build task contexts; the function maps stay
/// empty so every function in a pushed filter stays a name placeholder.
pub struct PluginSession {
    config: SessionConfig,
    runtime_env: Arc<RuntimeEnv>,
    props: ExecutionProps,
    table_options: TableOptions,
    scalar: HashMap<String, Arc<ScalarUDF>>,
    higher_order: HashMap<String, Arc<HigherOrderUDF>>,
    aggregate: HashMap<String, Arc<AggregateUDF>>,
    window: HashMap<String, Arc<WindowUDF>>,
    extension_types: ExtensionTypeRegistryRef,
}

impl PluginSession {
    pub fn new(batch_size: usize) -> Self {
        Self {
            config: SessionConfig::new().with_batch_size(batch_size),
            runtime_env: Arc::new(RuntimeEnv::default()),
            props: ExecutionProps::new(),
            table_options: TableOptions::default(),
            scalar: HashMap::new(),
            higher_order: HashMap::new(),
            aggregate: HashMap::new(),
            window: HashMap::new(),
            extension_types: Arc::new(MemoryExtensionTypeRegistry::default()),
        }
    }
}

#[async_trait]
impl Session for PluginSession {
    fn session_id(&self) -> &str {
        "sedonadb-zarr-meta"
    }
    fn config(&self) -> &SessionConfig {
        &self.config
    }
    async fn create_physical_plan(&self, _plan: &LogicalPlan) -> DFResult<Arc<dyn ExecutionPlan>> {
        not_impl_err!("sedonadb-zarr-meta scans do not plan queries")
    }
    fn create_physical_expr(&self, expr: Expr, schema: &DFSchema) -> DFResult<Arc<dyn PhysicalExpr>> {
        datafusion_physical_expr::create_physical_expr(&expr, schema, &self.props)
    }
    fn scalar_functions(&self) -> &HashMap<String, Arc<ScalarUDF>> {
        &self.scalar
    }
    fn higher_order_functions(&self) -> &HashMap<String, Arc<HigherOrderUDF>> {
        &self.higher_order
    }
    fn aggregate_functions(&self) -> &HashMap<String, Arc<AggregateUDF>> {
        &self.aggregate
    }
    fn window_functions(&self) -> &HashMap<String, Arc<WindowUDF>> {
        &self.window
    }
    fn extension_type_registry(&self) -> &ExtensionTypeRegistryRef {
        &self.extension_types
    }
    fn runtime_env(&self) -> &Arc<RuntimeEnv> {
        &self.runtime_env
    }
    fn execution_props(&self) -> &ExecutionProps {
        &self.props
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn table_options(&self) -> &TableOptions {
        &self.table_options
    }
    fn table_options_mut(&mut self) -> &mut TableOptions {
        &mut self.table_options
    }
    fn task_ctx(&self) -> Arc<TaskContext> {
        Arc::new(TaskContext::from(self as &dyn Session))
    }
}

/// A `meta` group that `sedonadb` imports with `con.create_data_frame(obj)`.
#[pyclass(module = "sedonadb_zarr_meta._lib", frozen)]
pub struct SedonaTableProvider {
    table: Arc<ZarrMetaTable>,
}

#[pymethods]
impl SedonaTableProvider {
    /// Open the group of `uri` (metadata only; errors are raised here).
    #[new]
    #[pyo3(signature = (uri, options_json=None))]
    fn new(py: Python<'_>, uri: String, options_json: Option<String>) -> PyResult<Self> {
        let group = open_group(py, &uri, options_json.as_deref())?;
        Ok(Self { table: Arc::new(ZarrMetaTable::new(group)) })
    }

    /// The number naming the opened group this provider scans (see `MetaTable.group_id`).
    #[getter]
    fn group_id(&self) -> u64 {
        self.table.group().id
    }

    /// A fresh `sedonadb_table_provider` capsule (SedonaDB moves it out).
    fn __sedonadb_table_provider__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyCapsule>> {
        host::check_sedonadb(py)?;
        let provider: Arc<dyn TableProvider> = self.table.clone();
        let session: Arc<dyn Session> = Arc::new(PluginSession::new(self.table.group().options.batch_size));
        let exported = ExportedTableProvider::new(provider, session, runtime::runtime())
            .with_table_reference("zarr_meta");
        let c_provider: SedonaCTableProvider = exported.into();
        PyCapsule::new(py, c_provider, Some(CString::new("sedonadb_table_provider").expect("static name")))
    }

    fn __arrow_c_schema__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyCapsule>> {
        schema_capsule(py, &self.table.group().schema)
    }

    /// Chunks read by scans of this provider so far (per column): decoded,
    /// or kept from an earlier scan.
    #[getter]
    fn chunks_read(&self) -> u64 {
        self.table.metrics().chunks_read.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Of the chunks read, those kept decoded from an earlier scan.
    #[getter]
    fn chunks_kept(&self) -> u64 {
        self.table.metrics().chunks_kept.load(std::sync::atomic::Ordering::Relaxed)
    }
}
