//! DataFusion `TableProvider` and `ExecutionPlan` over a [`MetaGroup`].
//!
//! One partition per run of chunks so partitions decode in parallel; the
//! projection and limit are pushed into the reader. Batches are decoded on
//! our own runtime's blocking threads (the host's runtime is another copy of
//! tokio across FFI) and reach the host's executor through a channel.

use std::fmt;
use std::ops::Range;
use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_schema::{SchemaRef, SortOptions};
use async_trait::async_trait;
use datafusion_catalog::{Session, TableProvider};
use datafusion_common::stats::Precision;
use datafusion_common::{DataFusionError, Result as DFResult, Statistics};
use datafusion_execution::{SendableRecordBatchStream, TaskContext};
use datafusion_expr::{Expr, TableProviderFilterPushDown, TableType};
use datafusion_physical_expr::expressions::Column;
use datafusion_physical_expr::{EquivalenceProperties, PhysicalExpr, PhysicalSortExpr};
use datafusion_physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion_physical_plan::stream::RecordBatchStreamAdapter;
use datafusion_physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PlanProperties};

use crate::metadata::MetaGroup;
use crate::scan::filters::{is_prunable, predicates_of};
use crate::scan::plan::partition_ranges;
use crate::scan::predicate::Predicate;
use crate::scan::reader::{BatchReader, ScanMetrics};

/// Most batches a partition's channel holds (a chunk of many small batches).
const MAX_CHANNEL_BATCHES: usize = 64;

/// Schema metadata key telling apart the tables of different calls (see
/// [`ZarrMetaTable::with_source`]).
pub const SOURCE_METADATA_KEY: &str = "sedonadb_zarr_meta:source";

/// What opened a table: all another process needs to open it again (a
/// cluster's scheduler and executors). Options may hold secrets: `Debug`
/// never shows them.
#[derive(Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TableCall {
    pub uri: String,
    /// The options JSON of the call, if any.
    pub options: Option<String>,
    /// The schema's source mark ([`ZarrMetaTable::with_source`]).
    pub source: Option<String>,
}

impl fmt::Debug for TableCall {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.debug_struct("TableCall")
            .field("uri", &self.uri)
            .field("options", &self.options.as_ref().map(|_| "<redacted>"))
            .field("source", &self.source)
            .finish()
    }
}

/// A planned scan as data: the table's call and every choice the plan made.
/// A cluster's scheduler plans it (pruning included) and each executor
/// rebuilds the scan from it, reading only its partitions' rows.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ScanParts {
    pub call: TableCall,
    pub projection: Vec<usize>,
    /// Row ranges of each partition.
    pub ranges: Vec<Vec<Range<u64>>>,
    pub limit: Option<usize>,
    pub predicates: Vec<Predicate>,
    /// What the plan saw, checked when the scan is rebuilt: the rows of the
    /// group and the projected columns' names and types (a store changed in
    /// between must fail, never give rows of other columns).
    pub num_rows: u64,
    pub columns: Vec<(String, String)>,
}

/// A `meta` group as a DataFusion table.
#[derive(Debug, Clone)]
pub struct ZarrMetaTable {
    group: Arc<MetaGroup>,
    schema: SchemaRef,
    metrics: Arc<ScanMetrics>,
    call: Option<TableCall>,
}

impl ZarrMetaTable {
    pub fn new(group: Arc<MetaGroup>) -> Self {
        Self { schema: group.schema.clone(), group, metrics: Arc::default(), call: None }
    }

    /// Remember the call that opened the table (see [`TableCall`]).
    pub fn with_call(mut self, uri: String, options: Option<String>) -> Self {
        let source = self.schema.metadata().get(SOURCE_METADATA_KEY).cloned();
        self.call = Some(TableCall { uri, options, source });
        self
    }

    /// The call that opened the table, if it was opened by one.
    pub fn call(&self) -> Option<&TableCall> {
        self.call.as_ref()
    }

    /// Open the table `call` names (through the group cache).
    pub fn open_call(call: &TableCall) -> crate::error::Result<Self> {
        let group = crate::metadata::cache::open(&call.uri, call.options.as_deref())?;
        let mut table = Self::new(group);
        if let Some(source) = &call.source {
            table = table.with_source(source.clone());
        }
        table.call = Some(call.clone());
        Ok(table)
    }

    /// Mark the schema with `source` (a digest of the call that opened it).
    ///
    /// DataFusion compares table scans by name and schema, not by provider,
    /// and every table-function call is named after the function: without
    /// this, `(SELECT count(*) FROM sd_read_zarr_meta('a'))` and the same over
    /// `'b'` (or another version of one repository) in one query would be
    /// taken for one subquery and both answered from `'a'`.
    pub fn with_source(mut self, source: String) -> Self {
        let mut metadata = self.schema.metadata().clone();
        metadata.insert(SOURCE_METADATA_KEY.to_string(), source);
        self.schema = Arc::new(self.schema.as_ref().clone().with_metadata(metadata));
        self
    }

    /// Whether filters are used to skip chunks (the `pushdown` option).
    fn pushdown(&self) -> bool {
        self.group.options.pushdown
    }

    pub fn group(&self) -> &Arc<MetaGroup> {
        &self.group
    }

    /// Counters accumulated over every scan of this table.
    pub fn metrics(&self) -> &Arc<ScanMetrics> {
        &self.metrics
    }

    /// Rebuild a scan planned elsewhere, after checking that the store still
    /// has what the plan saw and that every index and range is in bounds.
    pub fn exec_from_parts(&self, parts: ScanParts) -> DFResult<Arc<ZarrMetaExec>> {
        let store = &self.group.store;
        let changed = |what: String| {
            DataFusionError::Execution(format!(
                "{store}: the store changed since the query was planned ({what}); run the query again"
            ))
        };
        if parts.num_rows != self.group.num_rows {
            return Err(changed(format!("{} rows, planned with {}", self.group.num_rows, parts.num_rows)));
        }
        let n = self.group.width();
        if parts.projection.len() != parts.columns.len() || parts.projection.iter().any(|&c| c >= n) {
            return Err(DataFusionError::Plan(format!("{store}: a scan plan names columns the group lacks")));
        }
        for (&c, (name, data_type)) in parts.projection.iter().zip(&parts.columns) {
            let field = self.schema.field(c);
            if field.name() != name || &field.data_type().to_string() != data_type {
                return Err(changed(format!(
                    "column {c} is {} {}, planned as {name} {data_type}",
                    field.name(),
                    field.data_type()
                )));
            }
        }
        let bad_range = parts.ranges.iter().flatten().any(|r| r.start > r.end || r.end > self.group.num_rows);
        if bad_range || parts.predicates.iter().any(|p| p.column >= n) {
            return Err(DataFusionError::Plan(format!("{store}: a scan plan is out of the group's bounds")));
        }
        self.exec(parts.projection, parts.ranges, parts.limit, parts.predicates)
    }

    /// Build the physical scan (shared by `scan` and tests).
    pub fn create_exec(
        &self,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
        target_partitions: usize,
    ) -> DFResult<Arc<ZarrMetaExec>> {
        let projection: Vec<usize> = projection.cloned().unwrap_or_else(|| (0..self.group.width()).collect());
        let predicates: Vec<Predicate> = if self.pushdown() {
            filters.iter().flat_map(|f| predicates_of(&self.group, f)).collect()
        } else {
            Vec::new()
        };
        let ranges = partition_ranges(&self.group, &projection, &predicates, target_partitions.max(1), limit);
        self.exec(projection, ranges, limit, predicates)
    }

    /// The scan of `projection` over `ranges` (one partition each).
    fn exec(
        &self,
        projection: Vec<usize>,
        ranges: Vec<Vec<Range<u64>>>,
        limit: Option<usize>,
        predicates: Vec<Predicate>,
    ) -> DFResult<Arc<ZarrMetaExec>> {
        let schema = Arc::new(self.schema.project(&projection)?);
        Ok(Arc::new(ZarrMetaExec {
            properties: ZarrMetaExec::properties(
                &schema,
                ranges.len(),
                self.group.options.row_number.as_deref(),
            ),
            group: self.group.clone(),
            projection,
            schema,
            ranges,
            limit,
            predicates,
            metrics: self.metrics.clone(),
            call: self.call.clone(),
        }))
    }
}

#[async_trait]
impl TableProvider for ZarrMetaTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DFResult<Arc<dyn ExecutionPlan>> {
        let exec = self.create_exec(projection, filters, limit, state.config().target_partitions())?;
        Ok(exec)
    }

    fn supports_filters_pushdown(&self, filters: &[&Expr]) -> DFResult<Vec<TableProviderFilterPushDown>> {
        // Inexact: pruning skips rows that cannot match; the host still filters.
        Ok(filters
            .iter()
            .map(|f| {
                if self.pushdown() && is_prunable(&self.group, f) {
                    TableProviderFilterPushDown::Inexact
                } else {
                    TableProviderFilterPushDown::Unsupported
                }
            })
            .collect())
    }

    fn statistics(&self) -> Option<Statistics> {
        let mut stats = Statistics::new_unknown(&self.schema);
        stats.num_rows = Precision::Exact(self.group.num_rows as usize);
        Some(stats)
    }
}

/// Send the batches of `reader` (at most `limit` rows) to `tx` until it ends,
/// fails or the receiver is gone. A panic is sent as an error: a stream that
/// just ended would be a silently truncated answer.
fn produce(
    mut reader: BatchReader,
    limit: Option<usize>,
    store: &str,
    tx: &tokio::sync::mpsc::Sender<DFResult<RecordBatch>>,
) {
    let mut remaining = limit;
    while remaining != Some(0) && !tx.is_closed() {
        let item = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| reader.next())) {
            Ok(None) => return,
            Ok(Some(Ok(batch))) => Ok(match remaining.as_mut() {
                Some(left) if batch.num_rows() > *left => {
                    let cut = batch.slice(0, *left);
                    *left = 0;
                    cut
                }
                Some(left) => {
                    *left -= batch.num_rows();
                    batch
                }
                None => batch,
            }),
            Ok(Some(Err(e))) => Err(DataFusionError::from(e)),
            Err(_) => {
                Err(DataFusionError::Execution(format!("{store}: internal error while reading the scan")))
            }
        };
        let failed = item.is_err();
        if tx.blocking_send(item).is_err() || failed {
            return;
        }
    }
}

/// Rows in `ranges`.
fn row_count<'a>(ranges: impl IntoIterator<Item = &'a Range<u64>>) -> u64 {
    ranges.into_iter().map(|r| r.end - r.start).sum()
}

/// The physical scan of a [`ZarrMetaTable`].
#[derive(Debug)]
pub struct ZarrMetaExec {
    group: Arc<MetaGroup>,
    projection: Vec<usize>,
    schema: SchemaRef,
    /// Row ranges of each partition.
    ranges: Vec<Vec<Range<u64>>>,
    limit: Option<usize>,
    predicates: Vec<Predicate>,
    metrics: Arc<ScanMetrics>,
    properties: Arc<PlanProperties>,
    call: Option<TableCall>,
}

impl ZarrMetaExec {
    pub fn group(&self) -> &Arc<MetaGroup> {
        &self.group
    }

    /// The scan as data, if its table was opened by a call (see [`ScanParts`]).
    pub fn parts(&self) -> Option<ScanParts> {
        Some(ScanParts {
            call: self.call.clone()?,
            projection: self.projection.clone(),
            ranges: self.ranges.clone(),
            limit: self.limit,
            predicates: self.predicates.clone(),
            num_rows: self.group.num_rows,
            columns: self
                .schema
                .fields()
                .iter()
                .map(|f| (f.name().clone(), f.data_type().to_string()))
                .collect(),
        })
    }

    /// Each partition emits its rows in group order: when the row-number
    /// column is projected, its output is ordered by it, so a query ordered by
    /// it (keyset paging) needs no sort.
    fn properties(schema: &SchemaRef, partitions: usize, row_number: Option<&str>) -> Arc<PlanProperties> {
        let mut equivalence = EquivalenceProperties::new(schema.clone());
        if let Some(i) = row_number.and_then(|name| schema.index_of(name).ok()) {
            let column = Arc::new(Column::new(schema.field(i).name(), i)) as Arc<dyn PhysicalExpr>;
            // Ascending; NULLS LAST is SQL's default for ascending, and the column has none.
            let options = SortOptions { descending: false, nulls_first: false };
            equivalence.add_ordering([PhysicalSortExpr::new(column, options)]);
        }
        Arc::new(PlanProperties::new(
            equivalence,
            Partitioning::UnknownPartitioning(partitions.max(1)),
            EmissionType::Incremental,
            Boundedness::Bounded,
        ))
    }

    /// Batches of `batch_size` rows the channel of a partition holds: those
    /// of the widest chunk projected, at least 2.
    fn channel_batches(&self, batch_size: usize) -> usize {
        let widest = self
            .projection
            .iter()
            .filter_map(|&c| self.group.columns.get(c))
            .filter_map(|column| crate::metadata::widest_chunk(&column.chunk_bounds))
            .max()
            .unwrap_or(0);
        (widest as usize).div_ceil(batch_size.max(1)).clamp(2, MAX_CHANNEL_BATCHES)
    }
}

impl DisplayAs for ZarrMetaExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        let names: Vec<&str> = self.schema.fields().iter().map(|f| f.name().as_str()).collect();
        write!(
            f,
            "ZarrMetaExec: store={}, group={}, partitions={}, projection=[{}]",
            self.group.store,
            self.group.group,
            self.ranges.len(),
            names.join(", ")
        )?;
        if let Some(limit) = self.limit {
            write!(f, ", limit={limit}")?;
        }
        if !self.predicates.is_empty() {
            write!(f, ", pruning_predicates={}", self.predicates.len())?;
            write!(f, ", statistics={}", if self.group.stats.is_some() { "chunk" } else { "none" })?;
            let rows = row_count(self.ranges.iter().flatten());
            write!(f, ", rows_after_statistics={rows}/{}", self.group.num_rows)?;
        }
        Ok(())
    }
}

impl ExecutionPlan for ZarrMetaExec {
    fn name(&self) -> &str {
        "ZarrMetaExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![]
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> DFResult<Arc<dyn ExecutionPlan>> {
        if children.is_empty() {
            Ok(self)
        } else {
            Err(DataFusionError::Internal("ZarrMetaExec has no children".into()))
        }
    }

    fn execute(&self, partition: usize, _context: Arc<TaskContext>) -> DFResult<SendableRecordBatchStream> {
        let rows = match self.ranges.get(partition) {
            Some(r) => r.clone(),
            None if self.ranges.is_empty() && partition == 0 => Vec::new(),
            None => {
                return Err(DataFusionError::Internal(format!("ZarrMetaExec has no partition {partition}")))
            }
        };
        // The read option, not the host's batch size: a batch is a slice of a
        // chunk decoded anyway, so a larger one costs nothing here, while
        // each batch costs the host a crossing of the FFI boundary and
        // (datafusion-python, 8,192 rows by default) six times as many of
        // them made a D1 scan a third slower than in SedonaDB.
        let batch_size = self.group.options.batch_size.max(1);
        log::info!(
            "{}: partition {partition} of {} reads rows {}",
            self.group.store,
            self.ranges.len().max(1),
            rows.iter().map(|r| format!("{}..{}", r.start, r.end)).collect::<Vec<_>>().join(",")
        );
        let reader = BatchReader::over_ranges(
            self.group.clone(),
            Some(self.projection.clone()),
            rows,
            batch_size,
            self.predicates.clone(),
        )?
        .with_metrics(self.metrics.clone());
        // Decoding blocks, so batches are made on a thread of our runtime and
        // handed over through a small channel: the host's executor never
        // blocks here, sees cancellation (Ctrl-C, a dropped stream) at once,
        // and the producer stops when the stream is dropped. The channel
        // holds a decoded chunk's worth of batches, slices of buffers decoded
        // anyway, so small host batches do not stall decoding.
        let (tx, rx) = tokio::sync::mpsc::channel(self.channel_batches(batch_size));
        let store = self.group.store.clone();
        let limit = self.limit;
        crate::runtime::spawn_blocking(move || produce(reader, limit, &store, &tx));
        // Batches carry the plan's schema, metadata included.
        let schema = self.schema.clone();
        let stream = futures::stream::unfold(rx, move |mut rx| {
            let schema = schema.clone();
            async move {
                let item = rx.recv().await?;
                let item =
                    item.and_then(|b: RecordBatch| b.with_schema(schema).map_err(DataFusionError::from));
                Some((item, rx))
            }
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(self.schema.clone(), stream)))
    }

    fn partition_statistics(&self, partition: Option<usize>) -> DFResult<Arc<Statistics>> {
        let rows: u64 = match partition {
            Some(p) => self.ranges.get(p).map_or(0, row_count),
            None => row_count(self.ranges.iter().flatten()),
        };
        let mut stats = Statistics::new_unknown(&self.schema);
        // Predicates drop rows inside the ranges too: then the count is a bound.
        stats.num_rows = match self.limit {
            Some(l) => Precision::Inexact((rows as usize).min(l)),
            None if !self.predicates.is_empty() => Precision::Inexact(rows as usize),
            None => Precision::Exact(rows as usize),
        };
        Ok(Arc::new(stats))
    }
}

#[cfg(test)]
// Row ranges of 1-D arrays: one range is a whole run.
#[allow(clippy::single_range_in_vec_init)]
mod tests {
    use super::*;
    use arrow_array::cast::AsArray;
    use arrow_array::types::Int32Type;
    use datafusion_expr::{col, lit};
    use futures::StreamExt;

    use crate::testing::open_store;

    fn n_of(exec: &ZarrMetaExec) -> Vec<i32> {
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let mut out = Vec::new();
        for partition in 0..exec.ranges.len() {
            let mut stream = exec.execute(partition, Arc::new(TaskContext::default())).unwrap();
            while let Some(batch) = rt.block_on(stream.next()) {
                let batch = batch.unwrap();
                let i = batch.schema().index_of("n").unwrap();
                out.extend(batch.column(i).as_primitive::<Int32Type>().values().iter().copied());
            }
        }
        out.sort_unstable();
        out
    }

    #[test]
    fn row_numbers_select_rows_exactly_and_order_the_scan() {
        use arrow_array::types::UInt64Type;
        let dir = tempfile::tempdir().unwrap();
        crate::testing::write_store(dir.path(), true);
        let options = crate::options::ReadOptions { row_number: Some("_row".into()), ..Default::default() };
        let group = Arc::new(MetaGroup::open(dir.path().to_str().unwrap(), options).unwrap());
        let table = ZarrMetaTable::new(group.clone());
        let row = group.row_number_index().unwrap();
        assert_eq!(table.schema().field(row).name(), "_row");
        assert_eq!(table.schema().field(row).data_type(), &arrow_schema::DataType::UInt64);
        let rows = |exec: &ZarrMetaExec| -> Vec<(u64, i32)> {
            let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
            let mut out = Vec::new();
            for partition in 0..exec.ranges.len() {
                let mut stream = exec.execute(partition, Arc::new(TaskContext::default())).unwrap();
                while let Some(batch) = rt.block_on(stream.next()) {
                    let batch = batch.unwrap();
                    let r = batch.column_by_name("_row").unwrap().as_primitive::<UInt64Type>().clone();
                    let n = batch.column_by_name("n").unwrap().as_primitive::<Int32Type>().clone();
                    out.extend(r.values().iter().copied().zip(n.values().iter().copied()));
                }
            }
            out
        };
        // Every row, numbered in group order (n holds 0..10 in order).
        let exec = table.create_exec(Some(&vec![1, row]), &[], None, 2).unwrap();
        assert_eq!(rows(&exec), (0..10).map(|i| (i, i as i32)).collect::<Vec<_>>());
        // The scan declares its order, so ORDER BY _row needs no sort.
        let ordering = exec.properties().output_ordering().expect("ordered by the row number");
        assert_eq!(ordering.to_string(), "_row@1 ASC NULLS LAST");
        // Tests of the row number select exactly those rows, without statistics.
        let exec = table.create_exec(Some(&vec![1, row]), &[col("_row").gt(lit(6u64))], None, 2).unwrap();
        assert_eq!(exec.ranges, [vec![7..8], vec![8..10]], "split at a chunk boundary of n");
        assert_eq!(rows(&exec), [(7, 7), (8, 8), (9, 9)]);
        let filter = col("_row").in_list(vec![lit(2i64), lit(3i64), lit(9i64), lit(40i64)], false);
        let exec = table.create_exec(Some(&vec![1, row]), &[filter], None, 1).unwrap();
        assert_eq!(exec.ranges, [vec![2..4, 9..10]]);
        let between = col("_row").between(lit(2.5), lit(4.0));
        let exec = table.create_exec(Some(&vec![row]), &[between, col("n").gt(lit(0))], None, 1).unwrap();
        assert_eq!(exec.ranges, [vec![3..5]]);
        // With only row-number tests, a LIMIT still reads just the first rows.
        let exec = table.create_exec(Some(&vec![1, row]), &[col("_row").gt_eq(lit(4))], Some(2), 2).unwrap();
        assert_eq!(rows(&exec), [(4, 4), (5, 5)]);
        // A name the group already has is refused.
        let clash = crate::options::ReadOptions { row_number: Some("n".into()), ..Default::default() };
        let err = MetaGroup::open(dir.path().to_str().unwrap(), clash).unwrap_err().to_string();
        assert!(err.contains("'row_number' column 'n' is already an array"), "{err}");
    }

    #[test]
    fn scans_partition_and_prune() {
        let (_dir, group) = open_store(true);
        let table = ZarrMetaTable::new(group);
        let exec = table.create_exec(Some(&vec![1]), &[], None, 2).unwrap();
        assert_eq!(exec.ranges, [vec![0..8], vec![8..10]]);
        assert_eq!(exec.properties().partitioning.partition_count(), 2);
        assert_eq!(n_of(&exec), (0..10).collect::<Vec<_>>());
        // n > 5 keeps blocks 1 and 2 of the statistics; the reader drops rows 4 and 5.
        let exec = table.create_exec(Some(&vec![1]), &[col("n").gt(lit(5))], None, 2).unwrap();
        assert_eq!(exec.ranges, [vec![4..8], vec![8..10]]);
        assert_eq!(n_of(&exec), [6, 7, 8, 9]);
        let stats = exec.partition_statistics(None).unwrap();
        assert!(matches!(stats.num_rows, datafusion_common::stats::Precision::Inexact(6)), "{stats:?}");
        // LIMIT without filters: the first rows only.
        let exec = table.create_exec(None, &[], Some(3), 2).unwrap();
        assert_eq!(exec.ranges, [vec![0..3]]);
        assert_eq!(n_of(&exec), [0, 1, 2]);
    }

    #[test]
    fn filters_are_pushed_inexact_when_they_prune() {
        let (_dir, group) = open_store(true);
        let table = ZarrMetaTable::new(group);
        let prunable = col("n").gt(lit(5));
        let other = col("n").gt(col("n"));
        let answers = table.supports_filters_pushdown(&[&prunable, &other]).unwrap();
        assert_eq!(answers, [TableProviderFilterPushDown::Inexact, TableProviderFilterPushDown::Unsupported]);
        assert_eq!(table.statistics().unwrap().num_rows, datafusion_common::stats::Precision::Exact(10));
    }
}
