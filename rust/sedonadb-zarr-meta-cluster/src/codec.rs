//! How this package's plan nodes cross the wire between a cluster's roles.
//!
//! Ballista's own codecs handle its shuffle nodes and DataFusion's built-in
//! ones, and take no user codec; these wrap them. A [`ZarrMetaTable`] travels
//! as the call that opened it ([`TableCall`]), a [`ZarrMetaExec`] as the scan
//! the scheduler planned ([`ScanParts`]: projection, row ranges after
//! pruning, limit and predicates). Both pin an Icechunk repository to the
//! snapshot the client planned against, so every role reads one version.
//! Anything else passes through to Ballista's codecs.
//!
//! The payload is JSON after a tag that cannot start a protobuf message of
//! Ballista's (`{`, 0x7B, is field 15 with the deprecated group wire type).

use std::collections::HashMap;
use std::sync::Arc;

use ballista_core::serde::{BallistaLogicalExtensionCodec, BallistaPhysicalExtensionCodec};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::TableProvider;
use datafusion::common::{DataFusionError, Result, TableReference};
use datafusion::datasource::file_format::FileFormatFactory;
use datafusion::execution::TaskContext;
use datafusion::logical_expr::{Extension, LogicalPlan, ScalarUDF};
use datafusion::physical_plan::ExecutionPlan;
use datafusion_proto::logical_plan::LogicalExtensionCodec;
use datafusion_proto::physical_plan::PhysicalExtensionCodec;
use sedonadb_zarr_meta_core::scan::{ScanParts, TableCall};
use sedonadb_zarr_meta_core::{MetaGroup, ZarrMetaExec, ZarrMetaTable};

use crate::failed::FailedScan;

/// Starts every payload of ours.
const TAG: &[u8] = b"{\"sedonadb_zarr_meta\":1}";

fn encode<T: serde::Serialize>(value: &T, buf: &mut Vec<u8>) -> Result<()> {
    buf.extend_from_slice(TAG);
    serde_json::to_writer(buf, value)
        .map_err(|e| DataFusionError::Internal(format!("encoding a zarr-meta plan node: {e}")))
}

/// Our payload in `buf`, if it is one.
fn decode<T: serde::de::DeserializeOwned>(buf: &[u8]) -> Option<Result<T>> {
    let rest = buf.strip_prefix(TAG)?;
    Some(serde_json::from_slice(rest).map_err(|e| {
        DataFusionError::Plan(format!("a zarr-meta plan node from another role could not be read: {e}"))
    }))
}

/// `call` pinned to the Icechunk snapshot `group` was read at: a branch that
/// moves while the query runs must not give the roles different versions.
pub fn pinned(call: &TableCall, group: &MetaGroup) -> Result<TableCall> {
    let Some(snapshot) = group.source.snapshot() else { return Ok(call.clone()) };
    let mut options = match &call.options {
        Some(json) => serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(json)
            .map_err(|e| DataFusionError::Internal(format!("{}: options JSON: {e}", group.store)))?,
        None => serde_json::Map::new(),
    };
    options.remove("branch");
    options.remove("tag");
    options.insert("snapshot".into(), snapshot.into());
    Ok(TableCall { options: Some(serde_json::Value::Object(options).to_string()), ..call.clone() })
}

/// A scan on the wire: its plan, and the schema its parents were planned
/// against (kept even when an executor cannot rebuild the scan).
#[derive(serde::Serialize, serde::Deserialize)]
struct WireScan {
    parts: ScanParts,
    schema: Vec<u8>,
}

fn not_sendable(store: &str) -> DataFusionError {
    DataFusionError::Plan(format!(
        "{store}: this table was not opened by sd_read_zarr_meta, so it cannot be sent to a cluster; \
         open it with sd_read_zarr_meta('{store}', ...) in the query"
    ))
}

/// The logical codec of every role: a client sends [`ZarrMetaTable`]s in its
/// plans, the scheduler decodes them and plans their scans. Functions travel
/// by name (the trait's defaults: Ballista's codecs encode none either).
#[derive(Debug, Default)]
pub struct ZarrMetaLogicalCodec {
    inner: BallistaLogicalExtensionCodec,
}

impl LogicalExtensionCodec for ZarrMetaLogicalCodec {
    fn try_decode(&self, buf: &[u8], inputs: &[LogicalPlan], ctx: &TaskContext) -> Result<Extension> {
        self.inner.try_decode(buf, inputs, ctx)
    }

    fn try_encode(&self, node: &Extension, buf: &mut Vec<u8>) -> Result<()> {
        self.inner.try_encode(node, buf)
    }

    fn try_decode_table_provider(
        &self,
        buf: &[u8],
        table_ref: &TableReference,
        schema: SchemaRef,
        ctx: &TaskContext,
    ) -> Result<Arc<dyn TableProvider>> {
        let Some(call) = decode::<TableCall>(buf) else {
            return self.inner.try_decode_table_provider(buf, table_ref, schema, ctx);
        };
        let table = ZarrMetaTable::open_call(&call?)?;
        // The client planned against this schema; a store changed since then
        // must fail here, not later as rows of other columns.
        let (got, want) = (table.schema(), schema);
        let same = got.fields().len() == want.fields().len()
            && got
                .fields()
                .iter()
                .zip(want.fields())
                .all(|(a, b)| a.name() == b.name() && a.data_type() == b.data_type());
        if !same {
            return Err(DataFusionError::Plan(format!(
                "{}: the store changed since the query was planned (its columns differ); run the query again",
                table.group().store
            )));
        }
        Ok(Arc::new(table))
    }

    fn try_encode_table_provider(
        &self,
        table_ref: &TableReference,
        node: Arc<dyn TableProvider>,
        buf: &mut Vec<u8>,
    ) -> Result<()> {
        let Some(table) = node.downcast_ref::<ZarrMetaTable>() else {
            return self.inner.try_encode_table_provider(table_ref, node, buf);
        };
        let call = table.call().ok_or_else(|| not_sendable(&table.group().store))?;
        encode(&pinned(call, table.group())?, buf)
    }

    fn try_decode_file_format(&self, buf: &[u8], ctx: &TaskContext) -> Result<Arc<dyn FileFormatFactory>> {
        self.inner.try_decode_file_format(buf, ctx)
    }

    fn try_encode_file_format(&self, buf: &mut Vec<u8>, node: Arc<dyn FileFormatFactory>) -> Result<()> {
        self.inner.try_encode_file_format(buf, node)
    }
}

/// The physical codec of every role: the scheduler sends [`ZarrMetaExec`]s
/// in the stages it hands out, executors rebuild and run them. Functions
/// travel by name, [`Pinned`](crate::pinned::Pinned) calls with their fields.
#[derive(Debug)]
pub struct ZarrMetaPhysicalCodec {
    inner: BallistaPhysicalExtensionCodec,
    /// The scalar functions [`Pinned`](crate::pinned::Pinned) calls wrap, by name.
    functions: HashMap<String, Arc<ScalarUDF>>,
}

impl Default for ZarrMetaPhysicalCodec {
    fn default() -> Self {
        let functions = crate::functions::scalar_functions()
            .unwrap_or_default()
            .into_iter()
            .map(|f| (f.name().to_string(), f))
            .collect();
        Self { inner: BallistaPhysicalExtensionCodec::default(), functions }
    }
}

impl PhysicalExtensionCodec for ZarrMetaPhysicalCodec {
    fn try_decode(
        &self,
        buf: &[u8],
        inputs: &[Arc<dyn ExecutionPlan>],
        ctx: &TaskContext,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let Some(scan) = decode::<WireScan>(buf) else {
            return self.inner.try_decode(buf, inputs, ctx);
        };
        let WireScan { parts, schema } = scan?;
        let schema = crate::wire::schema_from_bytes(&schema)?;
        let partitions = parts.ranges.len();
        let exec = ZarrMetaTable::open_call(&parts.call)
            .map_err(DataFusionError::from)
            .and_then(|table| table.exec_from_parts(parts));
        match exec {
            Ok(exec) if exec.schema() == schema => Ok(exec),
            Ok(exec) => Ok(Arc::new(FailedScan::new(
                schema,
                partitions,
                format!(
                    "{}: the store changed since the query was planned; run the query again",
                    exec.group().store
                ),
            ))),
            // Fail when the task runs (see `FailedScan`).
            Err(e) => Ok(Arc::new(FailedScan::new(schema, partitions, e.to_string()))),
        }
    }

    fn try_encode(&self, node: Arc<dyn ExecutionPlan>, buf: &mut Vec<u8>) -> Result<()> {
        let Some(exec) = node.downcast_ref::<ZarrMetaExec>() else {
            return self.inner.try_encode(node, buf);
        };
        let mut parts = exec.parts().ok_or_else(|| not_sendable(&exec.group().store))?;
        parts.call = pinned(&parts.call, exec.group())?;
        encode(&WireScan { parts, schema: crate::wire::schema_to_bytes(&exec.schema())? }, buf)
    }

    fn try_decode_udf(&self, name: &str, buf: &[u8]) -> Result<Arc<ScalarUDF>> {
        let Some(rest) = buf.strip_prefix(TAG) else { return self.inner.try_decode_udf(name, buf) };
        let inner = self.functions.get(name).cloned().ok_or_else(|| {
            DataFusionError::Plan(format!("function {name} is not registered on this executor"))
        })?;
        crate::pinned::decode(inner, rest)
    }

    fn try_encode_udf(&self, node: &ScalarUDF, buf: &mut Vec<u8>) -> Result<()> {
        match crate::pinned::encode(node) {
            Some(fields) => {
                buf.extend_from_slice(TAG);
                buf.extend_from_slice(&fields);
                Ok(())
            }
            None => self.inner.try_encode_udf(node, buf),
        }
    }
}

#[cfg(test)]
// Row ranges of 1-D arrays: one range is a whole run.
#[allow(clippy::single_range_in_vec_init)]
mod tests {
    use super::*;
    use datafusion::logical_expr::{col, lit};
    use sedonadb_zarr_meta_core::testing::write_store;
    use sedonadb_zarr_meta_core::ZarrMetaTableFunction;

    fn table(dir: &std::path::Path) -> Arc<ZarrMetaTable> {
        let uri = dir.to_str().unwrap().to_string();
        ZarrMetaTableFunction.open(&[lit(uri), lit(r#"{"batch_size": 3}"#)]).unwrap()
    }

    #[test]
    fn tables_travel_as_their_call() {
        let dir = tempfile_dir();
        write_store(dir.path(), true);
        let t = table(dir.path());
        let codec = ZarrMetaLogicalCodec::default();
        let mut buf = Vec::new();
        let name = TableReference::bare("sd_read_zarr_meta");
        codec.try_encode_table_provider(&name, t.clone(), &mut buf).unwrap();
        assert!(buf.starts_with(TAG));
        let back = codec.try_decode_table_provider(&buf, &name, t.schema(), &TaskContext::default()).unwrap();
        let back = back.downcast_ref::<ZarrMetaTable>().unwrap();
        assert_eq!(back.schema(), t.schema(), "the source mark comes back too");
        assert_eq!(back.call(), t.call());
        // A schema the store no longer has: refused.
        let other = Arc::new(t.schema().project(&[0]).unwrap());
        let err = codec.try_decode_table_provider(&buf, &name, other, &TaskContext::default()).unwrap_err();
        assert!(err.to_string().contains("changed since the query was planned"), "{err}");
    }

    #[test]
    fn scans_travel_as_their_plan() {
        let dir = tempfile_dir();
        write_store(dir.path(), true);
        let t = table(dir.path());
        let exec = t.create_exec(Some(&vec![1, 0]), &[col("n").gt(lit(5))], Some(4), 2).unwrap();
        let codec = ZarrMetaPhysicalCodec::default();
        let mut buf = Vec::new();
        codec.try_encode(exec.clone(), &mut buf).unwrap();
        let back = codec.try_decode(&buf, &[], &TaskContext::default()).unwrap();
        let back = back.downcast_ref::<ZarrMetaExec>().unwrap();
        assert_eq!(back.parts(), exec.parts());
        assert_eq!(back.schema(), exec.schema());
        let parts = back.parts().unwrap();
        assert_eq!(parts.ranges, [vec![4..8], vec![8..10]]);
        assert_eq!((parts.limit, parts.predicates.len()), (Some(4), 1));
    }

    #[test]
    fn damaged_or_out_of_bounds_plans_are_errors() {
        let dir = tempfile_dir();
        write_store(dir.path(), true);
        let t = table(dir.path());
        let codec = ZarrMetaPhysicalCodec::default();
        let ctx = TaskContext::default();
        let mut buf = TAG.to_vec();
        buf.extend_from_slice(b"{not json");
        let err = codec.try_decode(&buf, &[], &ctx).unwrap_err();
        assert!(err.to_string().contains("could not be read"), "{err}");
        let exec = t.create_exec(None, &[], None, 1).unwrap();
        let damages: [fn(&mut ScanParts); 4] = [
            |p: &mut ScanParts| p.ranges = vec![vec![0..11]],
            |p: &mut ScanParts| p.projection[0] = 99,
            |p: &mut ScanParts| p.num_rows = 11,
            |p: &mut ScanParts| p.columns[0].0 = "renamed".into(),
        ];
        for damage in damages {
            let mut parts = exec.parts().unwrap();
            damage(&mut parts);
            let mut buf = Vec::new();
            let schema = crate::wire::schema_to_bytes(&exec.schema()).unwrap();
            encode(&WireScan { parts, schema }, &mut buf).unwrap();
            // Decoded, but failing when it runs: a task that fails ends the query.
            let plan = codec.try_decode(&buf, &[], &ctx).unwrap();
            assert_eq!(plan.name(), "FailedScan");
            assert_eq!(plan.schema(), exec.schema());
            let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
            let mut stream = plan.execute(0, Arc::new(TaskContext::default())).unwrap();
            let err = rt.block_on(futures::StreamExt::next(&mut stream)).unwrap().unwrap_err();
            assert!(err.to_string().contains(dir.path().to_str().unwrap()), "{err}");
        }
        // Not ours: Ballista's codec answers.
        assert!(codec.try_decode(b"\x00\x01garbage", &[], &ctx).is_err());
    }

    #[test]
    fn pinning_names_the_snapshot_only_for_repositories() {
        let dir = tempfile_dir();
        write_store(dir.path(), false);
        let t = table(dir.path());
        let call = t.call().unwrap();
        assert_eq!(&pinned(call, t.group()).unwrap(), call, "a plain store has no snapshot");
    }

    fn tempfile_dir() -> tempfile::TempDir {
        tempfile::tempdir().unwrap()
    }
}
