//! The functions every role has: DataFusion's and Ballista's own, SedonaDB's
//! `ST_*` functions (`sedona-functions`, with the kernels of `sedona-geo`),
//! this package's geometry constructors and the table function.
//!
//! Roles resolve functions by name: a client plans with them, the scheduler
//! decodes plans and plans physical stages with them, executors decode those
//! stages. A function missing from one role fails the query, so all three
//! take their functions from here.

use std::collections::HashMap;
use std::sync::Arc;

use ballista_core::extension::{
    ballista_aggregate_functions, ballista_scalar_functions, ballista_window_functions,
};
use ballista_core::registry::BallistaFunctionRegistry;
use datafusion::arrow::datatypes::DataType;
use datafusion::catalog::TableFunction;
use datafusion::common::{exec_err, plan_err, Result};
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::execution::session_state::{SessionState, SessionStateBuilder};
use datafusion::logical_expr::{
    AggregateUDF, ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::prelude::{SessionConfig, SessionContext};
use sedona_expr::function_set::FunctionSet;

use crate::pinned::PinGeometryFunctions;
use sedonadb_zarr_meta_core::sql::geom_udf::{GeomFrom, Input};
use sedonadb_zarr_meta_core::sql::FUNCTION_NAME;
use sedonadb_zarr_meta_core::ZarrMetaTableFunction;

/// SedonaDB's functions that build without GEOS or PROJ.
fn sedona_functions() -> Result<FunctionSet> {
    let mut set = sedona_functions::register::default_function_set();
    for (name, kernels) in sedona_geo::register::scalar_kernels() {
        set.add_scalar_udf_impl(name, kernels)?;
    }
    for udf in sedona_geo::register::aggregate_udfs() {
        set.add_aggregate_udf(udf)?;
    }
    Ok(set)
}

/// SedonaDB functions whose kernels are GEOS's (sedona-geos): this build has
/// none of them, so each fails planning with a message saying why.
const GEOS_FUNCTIONS: [&str; 18] = [
    "st_contains",
    "st_within",
    "st_covers",
    "st_coveredby",
    "st_crosses",
    "st_overlaps",
    "st_touches",
    "st_equals",
    "st_disjoint",
    "st_intersection",
    "st_union",
    "st_difference",
    "st_symdifference",
    "st_isvalid",
    "st_simplify",
    "st_convexhull",
    "st_unaryunion",
    "st_boundary",
];

/// The scalar functions this package adds to Ballista's.
pub fn scalar_functions() -> Result<Vec<Arc<ScalarUDF>>> {
    let set = sedona_functions()?;
    let mut out: Vec<Arc<ScalarUDF>> =
        set.scalar_udfs().map(|f| Arc::new(ScalarUDF::new_from_impl(f.clone()))).collect();
    out.push(Arc::new(ScalarUDF::new_from_impl(GeomFrom::new(Input::Wkt))));
    out.push(Arc::new(ScalarUDF::new_from_impl(GeomFrom::new(Input::Wkb))));
    for name in GEOS_FUNCTIONS {
        if set.scalar_udf(name).is_none() {
            out.push(Arc::new(ScalarUDF::new_from_impl(NeedsGeos::new(name))));
        }
    }
    Ok(out)
}

/// A SedonaDB function this build lacks: planning it is an error that says why.
#[derive(Debug, PartialEq, Eq, Hash)]
struct NeedsGeos {
    name: &'static str,
    signature: Signature,
}

impl NeedsGeos {
    fn new(name: &'static str) -> Self {
        Self { name, signature: Signature::variadic_any(Volatility::Immutable) }
    }
}

impl ScalarUDFImpl for NeedsGeos {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        plan_err!(
            "{} is not available on the cluster: SedonaDB computes it with GEOS (sedona-geos, which \
             needs GEOS 3.12 or later), and this build has only the functions of sedona-functions and \
             sedona-geo; run the query on one machine with SedonaDB",
            self.name
        )
    }

    fn invoke_with_args(&self, _args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        exec_err!("{} is not available on the cluster", self.name)
    }
}

/// The aggregate functions this package adds to Ballista's.
pub fn aggregate_functions() -> Result<Vec<Arc<AggregateUDF>>> {
    let set = sedona_functions()?;
    Ok(set.aggregate_udfs().map(|f| Arc::new(AggregateUDF::new_from_impl(f.clone()))).collect())
}

/// Add this package's functions and the table function to a session.
pub fn register(ctx: &SessionContext) -> Result<()> {
    for f in scalar_functions()? {
        ctx.register_udf(f.as_ref().clone());
    }
    for f in aggregate_functions()? {
        ctx.register_udaf(f.as_ref().clone());
    }
    ctx.register_udtf(FUNCTION_NAME, Arc::new(ZarrMetaTableFunction));
    Ok(())
}

/// The scheduler's session for a client's configuration.
pub fn scheduler_session(config: SessionConfig) -> Result<SessionState> {
    let ours = scalar_functions()?;
    let names: Vec<String> = ours.iter().map(|f| f.name().to_string()).collect();
    let mut scalars = ballista_scalar_functions();
    scalars.extend(ours);
    let mut aggregates = ballista_aggregate_functions();
    aggregates.extend(aggregate_functions()?);
    let table_functions: HashMap<String, Arc<TableFunction>> = HashMap::from([(
        FUNCTION_NAME.to_string(),
        Arc::new(TableFunction::new(FUNCTION_NAME.to_string(), Arc::new(ZarrMetaTableFunction))),
    )]);
    Ok(SessionStateBuilder::new()
        .with_default_features()
        .with_config(config)
        .with_runtime_env(Arc::new(RuntimeEnvBuilder::new().build()?))
        .with_scalar_functions(scalars)
        .with_aggregate_functions(aggregates)
        .with_window_functions(ballista_window_functions())
        .with_table_functions(table_functions)
        .with_optimizer_rule(Arc::new(PinGeometryFunctions::new(names)))
        .build())
}

/// The functions an executor resolves plans with.
pub fn executor_registry() -> Result<BallistaFunctionRegistry> {
    let mut registry = BallistaFunctionRegistry::default();
    for f in scalar_functions()? {
        registry.scalar_functions.insert(f.name().to_string(), f);
    }
    for f in aggregate_functions()? {
        registry.aggregate_functions.insert(f.name().to_string(), f);
    }
    Ok(registry)
}
