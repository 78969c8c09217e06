//! Streaming reads: row ranges of projected columns as Arrow `RecordBatch`es.
//!
//! A scan walks its row range in *pieces* whose boundaries are the union of
//! the projected arrays' chunk boundaries and `batch_size` steps, so every
//! piece lies inside one chunk of every array. Each chunk is decoded once
//! (the last decoded chunk of each column is kept) and pieces are zero-copy
//! slices of it; memory is bounded by one chunk per projected column.

use std::collections::VecDeque;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use arrow_array::{Array as _, ArrayRef, RecordBatch, RecordBatchOptions};
use arrow_schema::SchemaRef;
use zarrs::array::{ArrayBytes, ArraySubset};

use crate::decode::{to_arrow, Elements};
use crate::error::{Result, ZarrMetaError};
use crate::group::{MetaColumn, MetaGroup};

/// Counters a scan updates, shared with whoever wants to observe it.
#[derive(Debug, Default)]
pub struct ScanMetrics {
    /// Chunks decoded (per column).
    pub chunks_read: AtomicU64,
    /// Rows emitted.
    pub rows_emitted: AtomicU64,
}

impl MetaColumn {
    /// Decode rows `rows` of this column (which must lie in one chunk or be
    /// any range; zarrs stitches chunks together).
    pub fn read(&self, store: &str, rows: Range<u64>) -> Result<ArrayRef> {
        let err = |m: String| ZarrMetaError::array(store, &self.name, m);
        let n = (rows.end - rows.start) as usize;
        let subset = ArraySubset::new_with_ranges(std::slice::from_ref(&rows));
        let bytes: ArrayBytes<'static> = self
            .array
            .retrieve_array_subset(&subset)
            .map_err(|e| err(format!("cannot read rows {}..{}: {e}", rows.start, rows.end)))?;
        let elements = match bytes {
            ArrayBytes::Fixed(raw) => Elements::Fixed(raw.into_owned()),
            ArrayBytes::Variable(v) => {
                let (raw, offsets) = v.into_parts();
                Elements::Variable { bytes: raw.into_owned(), offsets: offsets.to_vec() }
            }
            ArrayBytes::Optional(_) => return Err(err("optional (masked) data types are not supported".into())),
        };
        to_arrow(&self.kind, elements, n)
            .map_err(|m| err(format!("rows {}..{}: {m}", rows.start, rows.end)))
    }

    /// Index of the chunk holding `row`.
    fn chunk_of(&self, row: u64) -> usize {
        self.chunk_bounds.partition_point(|b| *b <= row).saturating_sub(1)
    }
}

/// The last decoded chunk of one column.
struct Cached {
    rows: Range<u64>,
    values: ArrayRef,
}

/// Iterator of `RecordBatch`es over `rows` of the projected columns.
pub struct BatchReader {
    group: Arc<MetaGroup>,
    projection: Vec<usize>,
    schema: SchemaRef,
    pieces: VecDeque<Range<u64>>,
    cache: Vec<Option<Cached>>,
    metrics: Arc<ScanMetrics>,
    failed: bool,
}

impl BatchReader {
    /// A reader of `rows` (clamped to the group) for the columns at `projection`.
    pub fn new(group: Arc<MetaGroup>, projection: Option<Vec<usize>>, rows: Range<u64>, batch_size: usize) -> Result<Self> {
        let projection = projection.unwrap_or_else(|| (0..group.columns.len()).collect());
        if let Some(bad) = projection.iter().find(|i| **i >= group.columns.len()) {
            return Err(ZarrMetaError::Unsupported(format!(
                "{}: projection index {bad} out of range for {} columns",
                group.store,
                group.columns.len()
            )));
        }
        let schema = Arc::new(group.schema.project(&projection)?);
        let end = rows.end.min(group.num_rows);
        let start = rows.start.min(end);
        let pieces = plan_pieces(&group, &projection, start..end, batch_size.max(1));
        let cache = projection.iter().map(|_| None).collect();
        Ok(Self { group, projection, schema, pieces, cache, metrics: Arc::default(), failed: false })
    }

    /// Share `metrics` with this reader.
    pub fn with_metrics(mut self, metrics: Arc<ScanMetrics>) -> Self {
        self.metrics = metrics;
        self
    }

    /// Schema of the emitted batches.
    pub fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn read_piece(&mut self, piece: Range<u64>) -> Result<RecordBatch> {
        let mut arrays = Vec::with_capacity(self.projection.len());
        for (slot, &col) in self.projection.iter().enumerate() {
            let column = &self.group.columns[col];
            let hit = self.cache[slot]
                .as_ref()
                .is_some_and(|c| c.rows.start <= piece.start && piece.end <= c.rows.end);
            if !hit {
                let chunk = column.chunk_of(piece.start);
                let rows = column.chunk_bounds[chunk]..column.chunk_bounds[chunk + 1];
                let values = column.read(&self.group.store, rows.clone())?;
                self.metrics.chunks_read.fetch_add(1, Ordering::Relaxed);
                self.cache[slot] = Some(Cached { rows, values });
            }
            let cached = self.cache[slot].as_ref().expect("filled above");
            let offset = (piece.start - cached.rows.start) as usize;
            let len = (piece.end - piece.start) as usize;
            if offset + len > cached.values.len() {
                return Err(ZarrMetaError::array(
                    &self.group.store,
                    &column.name,
                    format!("chunk at row {} decoded fewer rows than declared", cached.rows.start),
                ));
            }
            arrays.push(cached.values.slice(offset, len));
        }
        let options = RecordBatchOptions::new().with_row_count(Some((piece.end - piece.start) as usize));
        let batch = RecordBatch::try_new_with_options(self.schema.clone(), arrays, &options)?;
        self.metrics.rows_emitted.fetch_add(batch.num_rows() as u64, Ordering::Relaxed);
        Ok(batch)
    }
}

impl Iterator for BatchReader {
    type Item = Result<RecordBatch>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        let piece = self.pieces.pop_front()?;
        let out = self.read_piece(piece);
        self.failed = out.is_err();
        Some(out)
    }
}

/// Split `rows` at every chunk boundary of the projected columns and every
/// `batch_size` rows after a boundary.
fn plan_pieces(group: &MetaGroup, projection: &[usize], rows: Range<u64>, batch_size: usize) -> VecDeque<Range<u64>> {
    let mut cuts: Vec<u64> = projection
        .iter()
        .flat_map(|&c| group.columns[c].chunk_bounds.iter().copied())
        .filter(|b| *b > rows.start && *b < rows.end)
        .collect();
    cuts.push(rows.end);
    cuts.sort_unstable();
    cuts.dedup();
    let mut pieces = VecDeque::new();
    let mut start = rows.start;
    for cut in cuts {
        while start < cut {
            let end = cut.min(start.saturating_add(batch_size as u64));
            pieces.push_back(start..end);
            start = end;
        }
    }
    pieces
}

/// Row ranges of about `target_rows` rows aligned to the chunks of the first
/// projected column, for splitting a scan into parallel partitions.
pub fn partition_ranges(group: &MetaGroup, projection: &[usize], partitions: usize) -> Vec<Range<u64>> {
    let n = group.num_rows;
    if n == 0 || partitions <= 1 {
        return vec![0..n];
    }
    let bounds: &[u64] = match projection.first() {
        Some(&c) => &group.columns[c].chunk_bounds,
        None => match group.columns.first() {
            Some(c) => &c.chunk_bounds,
            None => return vec![0..n],
        },
    };
    let chunks = bounds.len() - 1;
    let per = chunks.div_ceil(partitions).max(1);
    let mut out = Vec::new();
    let mut i = 0;
    while i < chunks {
        let j = (i + per).min(chunks);
        out.push(bounds[i]..bounds[j]);
        i = j;
    }
    out
}
