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

use arrow_array::{make_array, Array as _, ArrayRef, BooleanArray, RecordBatch, RecordBatchOptions};
use arrow_buffer::{BooleanBuffer, NullBuffer};
use arrow_schema::SchemaRef;
use arrow_select::filter::filter_record_batch;
use rayon::prelude::*;
use zarrs::array::ArrayBytes;

use crate::decode::{to_arrow, Elements};
use crate::error::{Result, ZarrMetaError};
use crate::group::{MetaColumn, MetaGroup};
use crate::pruning::{row_mask, Predicate};

/// Counters a scan updates, shared with whoever wants to observe it.
#[derive(Debug, Default)]
pub struct ScanMetrics {
    /// Chunks decoded (per column).
    pub chunks_read: AtomicU64,
    /// Rows emitted.
    pub rows_emitted: AtomicU64,
    /// Pieces (runs of rows inside one chunk) skipped by predicates.
    pub pieces_skipped: AtomicU64,
}

impl MetaColumn {
    /// Decode rows `rows` of this column (which must lie in one chunk or be
    /// any range; zarrs stitches chunks together).
    pub fn read(&self, store: &str, rows: Range<u64>) -> Result<ArrayRef> {
        let err = |m: String| ZarrMetaError::array(store, &self.name, m);
        let n = (rows.end - rows.start) as usize;
        // Decoders index into data they decompressed; corrupt input must
        // surface as an error, never unwind into a host through FFI.
        let elements = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.elements(&rows)))
            .map_err(|_| {
                err(format!("rows {}..{}: chunk data is corrupt (decoder failed)", rows.start, rows.end))
            })?
            .map_err(|e| err(format!("cannot read rows {}..{}: {e}", rows.start, rows.end)))?;
        let values = to_arrow(&self.kind, elements, n)
            .map_err(|m| err(format!("rows {}..{}: {m}", rows.start, rows.end)))?;
        if values.len() != n {
            return Err(err(format!("rows {}..{}: decoded {} rows", rows.start, rows.end, values.len())));
        }
        match &self.validity {
            Some(validity) => with_validity(values, &validity.read(store, rows.clone())?)
                .map_err(|m| err(format!("rows {}..{}: {m}", rows.start, rows.end))),
            None => Ok(values),
        }
    }

    /// The element bytes of `rows`: the first rows of one chunk through
    /// [`crate::vlen`] where its layout allows, anything else from whole
    /// chunks decoded by zarrs.
    ///
    /// Chunks are always decoded whole, never partially: a whole chunk's
    /// decoding checks that it, and every inner chunk of a shard, holds
    /// exactly the bytes its shape says, where a partial decoder would read
    /// the first bytes of a longer one without complaint.
    fn elements(&self, rows: &Range<u64>) -> std::result::Result<Elements, String> {
        let chunk = self.chunk_of(rows.start);
        if self.direct_vlen
            && self.chunk_bounds[chunk] == rows.start
            && rows.end <= self.chunk_bounds[chunk + 1]
        {
            let key = self.array.chunk_key(&[chunk as u64]);
            let expected = self.array.chunk_shape(&[chunk as u64]).map_err(|e| e.to_string())?[0].get();
            // A missing chunk is the fill value, which zarrs makes below.
            if let Some(compressed) = self.array.storage().get(&key).map_err(|e| e.to_string())? {
                let keep = (rows.end - rows.start) as usize;
                let (bytes, offsets) = crate::vlen::decode_chunk(&compressed, expected as usize, keep)
                    .map_err(|e| format!("{key}: {e}"))?;
                return Ok(Elements::Variable { bytes, offsets });
            }
        }
        let mut parts = Vec::new();
        let mut at = rows.start;
        while at < rows.end {
            let chunk = self.chunk_of(at);
            let start = self.chunk_bounds[chunk];
            let end = rows.end.min(self.chunk_bounds[chunk + 1]);
            parts.push(self.chunk_part(chunk, (at - start) as usize..(end - start) as usize)?);
            at = end;
        }
        if parts.len() == 1 {
            return Ok(parts.pop().expect("one part"));
        }
        concat_elements(parts)
    }

    /// Elements `part` of chunk `chunk`, decoded whole.
    fn chunk_part(&self, chunk: usize, part: Range<usize>) -> std::result::Result<Elements, String> {
        let key = self.array.chunk_key(&[chunk as u64]);
        let shape = self.array.chunk_shape(&[chunk as u64]).map_err(|e| e.to_string())?[0].get();
        let decoded = self.array.retrieve_chunk::<ArrayBytes<'static>>(&[chunk as u64]).map_err(|e| {
            // Storage errors name the key already.
            let message = e.to_string();
            if message.contains(key.as_str()) {
                message
            } else {
                format!("{key}: {message}")
            }
        })?;
        match decoded {
            ArrayBytes::Fixed(raw) => {
                let size =
                    self.array.data_type().fixed_size().ok_or("internal: fixed bytes of a variable type")?;
                if raw.len() as u64 != shape.saturating_mul(size as u64) {
                    return Err(format!(
                        "{key}: the chunk decodes to {} bytes, not the {} of {shape} elements of {size} bytes",
                        raw.len(),
                        shape.saturating_mul(size as u64)
                    ));
                }
                let raw = raw.into_owned();
                if part.start == 0 && part.end * size == raw.len() {
                    return Ok(Elements::Fixed(raw));
                }
                Ok(Elements::Fixed(raw[part.start * size..part.end * size].to_vec()))
            }
            ArrayBytes::Variable(v) => {
                let (raw, offsets) = v.into_parts();
                if offsets.len() as u64 != shape + 1 {
                    return Err(format!(
                        "{key}: the chunk decodes to {} elements, not {shape}",
                        offsets.len() - 1
                    ));
                }
                let (first, last) = (offsets[part.start], offsets[part.end]);
                if first > last || last > raw.len() {
                    return Err(format!("{key}: element offsets out of bounds"));
                }
                let offsets =
                    crate::decode::i32_offsets(offsets[part.start..=part.end].iter().map(|o| o - first))?;
                let bytes = if first == 0 && last == raw.len() {
                    raw.into_owned()
                } else {
                    raw[first..last].to_vec()
                };
                Ok(Elements::Variable { bytes, offsets })
            }
            ArrayBytes::Optional(_) => Err("optional (masked) data types are not supported".into()),
        }
    }

    /// Store keys of chunk `chunk` and of the validity chunk holding its first row.
    fn chunk_keys(&self, chunk: usize) -> Vec<zarrs::storage::StoreKey> {
        let mut keys = vec![self.array.chunk_key(&[chunk as u64])];
        if let Some(validity) = &self.validity {
            let row = self.chunk_bounds[chunk];
            keys.push(validity.array.chunk_key(&[validity.chunk_of(row) as u64]));
        }
        keys
    }

    /// Index of the chunk holding `row`.
    fn chunk_of(&self, row: u64) -> usize {
        self.chunk_bounds.partition_point(|b| *b <= row).saturating_sub(1)
    }
}

/// Parts of consecutive chunks as one run of elements.
fn concat_elements(parts: Vec<Elements>) -> std::result::Result<Elements, String> {
    let mut fixed = Vec::new();
    let (mut bytes, mut offsets) = (Vec::new(), vec![0i32]);
    let mut variable = false;
    for part in parts {
        match part {
            Elements::Fixed(raw) => fixed.extend_from_slice(&raw),
            Elements::Variable { bytes: b, offsets: o } => {
                variable = true;
                let base = bytes.len();
                crate::decode::offsets_fit(base.saturating_add(b.len()))?;
                bytes.extend_from_slice(&b);
                offsets.extend(o.iter().skip(1).map(|x| *x + base as i32));
            }
        }
    }
    Ok(if variable { Elements::Variable { bytes, offsets } } else { Elements::Fixed(fixed) })
}

/// `values` with the rows that `validity` marks `false` (or null) made null.
fn with_validity(values: ArrayRef, validity: &ArrayRef) -> std::result::Result<ArrayRef, String> {
    if validity.len() != values.len() {
        return Err(format!("validity array decoded {} rows for {}", validity.len(), values.len()));
    }
    let flags = validity.as_any().downcast_ref::<BooleanArray>().ok_or("validity array is not boolean")?;
    let valid = match flags.nulls() {
        Some(n) => flags.values() & n.inner(),
        None => flags.values().clone(),
    };
    let nulls = NullBuffer::union(values.nulls(), Some(&NullBuffer::new(valid)));
    let data = values.into_data().into_builder().nulls(nulls);
    Ok(make_array(data.build().map_err(|e| e.to_string())?))
}

/// Bytes of compressed chunks a scan of an object store may request ahead of
/// need (estimated from the decoded size, which bounds it for fixed-size types).
const PREFETCH_BUDGET_BYTES: u64 = 256 << 20;
/// Assumed bytes per element of variable-length columns for that estimate.
const VARIABLE_ELEMENT_BYTES: u64 = 64;
/// Most decoded bytes (estimated) a single-stream scan keeps ahead of need.
const SINGLE_STREAM_AHEAD_BYTES: u64 = 128 << 20;

/// Distinct ids for scans, so each releases only its own prefetches.
static NEXT_SCAN_ID: AtomicU64 = AtomicU64::new(1);

/// The last decoded chunk of one column.
struct Cached {
    rows: Range<u64>,
    values: ArrayRef,
}

/// Iterator of `RecordBatch`es over `rows` of the projected columns.
///
/// With predicates, row ranges whose statistics exclude a match are never
/// planned, and each piece's predicate columns are decoded first: when no row
/// can match, the piece is skipped without decoding the other columns.
pub struct BatchReader {
    group: Arc<MetaGroup>,
    projection: Vec<usize>,
    schema: SchemaRef,
    pieces: VecDeque<Range<u64>>,
    predicates: Vec<Predicate>,
    /// Decoded chunks per group column, in row order.
    cache: Vec<VecDeque<Cached>>,
    /// Further chunks per column decoded ahead of need.
    prefetch: usize,
    metrics: Arc<ScanMetrics>,
    failed: bool,
    /// This scan's id for the store's prefetches.
    id: u64,
    /// Estimated bytes of each group column's widest chunk (object stores only).
    chunk_bytes: Vec<u64>,
}

impl BatchReader {
    /// A reader of `rows` (clamped to the group) for the columns at `projection`.
    pub fn new(
        group: Arc<MetaGroup>,
        projection: Option<Vec<usize>>,
        rows: Range<u64>,
        batch_size: usize,
    ) -> Result<Self> {
        Self::with_predicates(group, projection, rows, batch_size, Vec::new())
    }

    /// Like [`BatchReader::new`], skipping rows that cannot satisfy `predicates`
    /// (using the group's chunk statistics where available).
    pub fn with_predicates(
        group: Arc<MetaGroup>,
        projection: Option<Vec<usize>>,
        rows: Range<u64>,
        batch_size: usize,
        predicates: Vec<Predicate>,
    ) -> Result<Self> {
        let ranges = candidate_ranges(&group, &predicates, rows);
        Self::over_ranges(group, projection, ranges, batch_size, predicates)
    }

    /// A reader of the row ranges `rows`, in order, which the group's
    /// statistics have already narrowed for `predicates` (as
    /// [`partition_ranges`] returns them); `predicates` still drop the rows
    /// inside them that cannot match.
    pub fn over_ranges(
        group: Arc<MetaGroup>,
        projection: Option<Vec<usize>>,
        rows: Vec<Range<u64>>,
        batch_size: usize,
        predicates: Vec<Predicate>,
    ) -> Result<Self> {
        let projection = projection.unwrap_or_else(|| (0..group.columns.len()).collect());
        if let Some(bad) =
            projection.iter().chain(predicates.iter().map(|p| &p.column)).find(|i| **i >= group.columns.len())
        {
            return Err(ZarrMetaError::Unsupported(format!(
                "{}: column index {bad} out of range for {} columns",
                group.store,
                group.columns.len()
            )));
        }
        let schema = Arc::new(group.schema.project(&projection)?);
        let mut columns: Vec<usize> = projection.clone();
        columns.extend(predicates.iter().map(|p| p.column));
        let mut pieces = VecDeque::new();
        for range in rows {
            pieces.extend(plan_pieces(&group, &columns, range, batch_size.max(1)));
        }
        let cache = group.columns.iter().map(|_| VecDeque::new()).collect();
        let chunk_bytes = if group.source.is_remote() {
            group.columns.iter().map(estimated_chunk_bytes).collect()
        } else {
            Vec::new()
        };
        Ok(Self {
            group,
            projection,
            schema,
            pieces,
            predicates,
            cache,
            prefetch: rayon::current_num_threads().saturating_sub(1),
            metrics: Arc::default(),
            failed: false,
            id: NEXT_SCAN_ID.fetch_add(1, Ordering::Relaxed),
            chunk_bytes,
        })
    }

    /// Decode up to `chunks` further chunks per column ahead of need (default:
    /// one per extra core).
    pub fn with_prefetch(mut self, chunks: usize) -> Self {
        self.prefetch = chunks;
        self
    }

    /// For a scan read as one stream rather than as partitions side by side:
    /// twice the cores' chunks per column are decoded at a time, so the cores
    /// stay busy past each load's widest chunk (a D2 full scan through
    /// `open_meta` on 2 cores: 1.17 s with one chunk ahead, 0.92 s with
    /// three), as long as the chunks decoded ahead stay within
    /// [`SINGLE_STREAM_AHEAD_BYTES`].
    pub fn as_single_stream(self) -> Self {
        let chunks = 2 * rayon::current_num_threads() - 1;
        let per_chunk: u64 =
            self.projection.iter().map(|&c| estimated_chunk_bytes(&self.group.columns[c])).sum();
        if per_chunk.saturating_mul(chunks as u64) > SINGLE_STREAM_AHEAD_BYTES {
            return self;
        }
        self.with_prefetch(chunks)
    }

    /// Share `metrics` with this reader.
    pub fn with_metrics(mut self, metrics: Arc<ScanMetrics>) -> Self {
        self.metrics = metrics;
        self
    }

    /// Counters of this reader.
    pub fn metrics(&self) -> &Arc<ScanMetrics> {
        &self.metrics
    }

    /// Schema of the emitted batches.
    pub fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    /// Make sure the chunks holding `piece` are decoded for `columns`.
    ///
    /// Missing chunks are decoded in parallel, together with up to
    /// `prefetch` further chunks of the same column that upcoming pieces need,
    /// so a single stream keeps every core busy; memory stays bounded by
    /// `prefetch` chunks per column.
    ///
    /// On object stores, the chunks of `columns` that the next pieces need
    /// are requested too (`io_ahead`), within [`PREFETCH_BUDGET_BYTES`], so
    /// requests overlap each other and the decoding.
    fn load(&mut self, columns: &[usize], piece: &Range<u64>, prefetch: usize, io_ahead: bool) -> Result<()> {
        let mut columns = columns.to_vec();
        columns.sort_unstable();
        columns.dedup();
        let mut wanted: Vec<(usize, usize)> = Vec::new();
        for &c in &columns {
            let cache = &mut self.cache[c];
            while cache.front().is_some_and(|cached| cached.rows.end <= piece.start) {
                cache.pop_front();
            }
            if cache
                .front()
                .is_some_and(|cached| cached.rows.start <= piece.start && piece.end <= cached.rows.end)
            {
                continue;
            }
            let column = &self.group.columns[c];
            let mut chunks = vec![column.chunk_of(piece.start)];
            for next in &self.pieces {
                if chunks.len() > prefetch {
                    break;
                }
                let chunk = column.chunk_of(next.start);
                if chunks.last() != Some(&chunk) {
                    chunks.push(chunk);
                }
            }
            wanted.extend(chunks.into_iter().map(|chunk| (c, chunk)));
        }
        if self.group.source.is_remote() {
            self.request_ahead(&columns, &wanted, piece, io_ahead);
        }
        let group = &self.group;
        let decoded: Vec<Result<(usize, Cached)>> = wanted
            .par_iter()
            .map(|&(c, chunk)| {
                let column = &group.columns[c];
                let rows = column.chunk_bounds[chunk]..column.chunk_bounds[chunk + 1];
                let values = column.read(&group.store, rows.clone())?;
                Ok((c, Cached { rows, values }))
            })
            .collect();
        for result in decoded {
            let (c, cached) = result?;
            self.metrics.chunks_read.fetch_add(1, Ordering::Relaxed);
            // `wanted` lists each column's chunks in row order.
            self.cache[c].push_back(cached);
        }
        Ok(())
    }

    /// Ask the store for the chunks in `wanted` and, with `io_ahead`, those
    /// the upcoming pieces need of `columns`.
    fn request_ahead(
        &self,
        columns: &[usize],
        wanted: &[(usize, usize)],
        piece: &Range<u64>,
        io_ahead: bool,
    ) {
        let group = &self.group;
        let mut keys: Vec<_> =
            wanted.iter().flat_map(|&(c, chunk)| group.columns[c].chunk_keys(chunk)).collect();
        if io_ahead && !columns.is_empty() {
            let per_column = PREFETCH_BUDGET_BYTES / columns.len() as u64;
            for &c in columns {
                let column = &group.columns[c];
                let window = (per_column / self.chunk_bytes[c].max(1))
                    .clamp(1, group.options.max_concurrency as u64) as usize;
                let mut last = column.chunk_of(piece.start);
                let mut ahead = 0;
                for next in &self.pieces {
                    let chunk = column.chunk_of(next.start);
                    if chunk != last {
                        let start = column.chunk_bounds[chunk];
                        let decoded = self.cache[c].iter().any(|cached| cached.rows.start == start);
                        let loading = wanted.contains(&(c, chunk));
                        if !decoded && !loading {
                            keys.extend(column.chunk_keys(chunk));
                        }
                        last = chunk;
                        ahead += 1;
                        if ahead >= window {
                            break;
                        }
                    }
                }
            }
        }
        group.source.prefetch(self.id, keys);
    }

    fn slice(&self, column: usize, piece: &Range<u64>) -> ArrayRef {
        let cached = self.cache[column].front().expect("loaded before slicing");
        let offset = (piece.start - cached.rows.start) as usize;
        cached.values.slice(offset, (piece.end - piece.start) as usize)
    }

    /// Which rows of `piece` may satisfy every predicate: `None` when all
    /// may; an all-`false` mask when none can.
    fn candidates(&mut self, piece: &Range<u64>) -> Result<Option<BooleanBuffer>> {
        if self.predicates.is_empty() {
            return Ok(None);
        }
        let columns: Vec<usize> = self.predicates.iter().map(|p| p.column).collect();
        self.load(&columns, piece, self.prefetch, true)?;
        let mut out: Option<BooleanBuffer> = None;
        for p in &self.predicates {
            if let Some(mask) = row_mask(&p.test, &self.slice(p.column, piece)) {
                out = Some(match out {
                    Some(prev) => &prev & &mask,
                    None => mask,
                });
                if out.as_ref().is_some_and(|m| m.count_set_bits() == 0) {
                    break;
                }
            }
        }
        Ok(out)
    }

    fn read_piece(&mut self, piece: Range<u64>) -> Result<Option<RecordBatch>> {
        let candidates = self.candidates(&piece)?;
        let kept = candidates.as_ref().map(|m| m.count_set_bits());
        if kept == Some(0) {
            self.metrics.pieces_skipped.fetch_add(1, Ordering::Relaxed);
            return Ok(None);
        }
        let projection = self.projection.clone();
        // With predicates, later chunks may be skipped: decode only what this piece needs.
        let prefetch = if self.predicates.is_empty() { self.prefetch } else { 0 };
        // Without statistics, upcoming pieces may still be skipped: fetch
        // their other columns only once they are known to match.
        let io_ahead = self.predicates.is_empty() || self.group.stats.is_some();
        self.load(&projection, &piece, prefetch, io_ahead)?;
        let arrays: Vec<ArrayRef> = projection.iter().map(|&c| self.slice(c, &piece)).collect();
        let options = RecordBatchOptions::new().with_row_count(Some((piece.end - piece.start) as usize));
        let mut batch = RecordBatch::try_new_with_options(self.schema.clone(), arrays, &options)?;
        // Only rows that may match reach the host, which applies the exact filter.
        if let (Some(mask), Some(kept)) = (candidates, kept) {
            if kept < batch.num_rows() {
                batch = filter_record_batch(&batch, &BooleanArray::new(mask, None))?;
            }
        }
        self.metrics.rows_emitted.fetch_add(batch.num_rows() as u64, Ordering::Relaxed);
        Ok(Some(batch))
    }
}

/// Bytes of `column`'s widest chunk, decoded: a bound on the compressed size
/// for fixed-size types, an estimate for variable-length ones.
fn estimated_chunk_bytes(column: &MetaColumn) -> u64 {
    let rows = crate::group::widest_chunk(&column.chunk_bounds).unwrap_or(1);
    let element = column.array.data_type().fixed_size().map_or(VARIABLE_ELEMENT_BYTES, |s| s as u64);
    rows.saturating_mul(element)
}

impl Drop for BatchReader {
    fn drop(&mut self) {
        self.group.source.release(self.id);
    }
}

impl Iterator for BatchReader {
    type Item = Result<RecordBatch>;

    fn next(&mut self) -> Option<Self::Item> {
        while !self.failed {
            let piece = self.pieces.pop_front()?;
            match self.read_piece(piece) {
                Ok(Some(batch)) => return Some(Ok(batch)),
                Ok(None) => continue,
                Err(e) => {
                    self.failed = true;
                    return Some(Err(e));
                }
            }
        }
        None
    }
}

/// Split `rows` at every chunk boundary of the projected columns and every
/// `batch_size` rows after a boundary.
fn plan_pieces(
    group: &MetaGroup,
    projection: &[usize],
    rows: Range<u64>,
    batch_size: usize,
) -> VecDeque<Range<u64>> {
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

/// The parts of `rows` (clamped to the group) whose statistics do not rule
/// out a match of every one of `predicates`.
fn candidate_ranges(group: &MetaGroup, predicates: &[Predicate], rows: Range<u64>) -> Vec<Range<u64>> {
    let end = rows.end.min(group.num_rows);
    let start = rows.start.min(end);
    match &group.stats {
        Some(stats) if !predicates.is_empty() => stats.prune(predicates, start..end),
        _ => std::iter::once(start..end).collect(),
    }
}

/// The first `n` rows of `ranges`.
fn first_rows(ranges: Vec<Range<u64>>, mut n: u64) -> Vec<Range<u64>> {
    let mut out = Vec::new();
    for range in ranges {
        if n == 0 {
            break;
        }
        let end = range.end.min(range.start.saturating_add(n));
        n -= end - range.start;
        out.push(range.start..end);
    }
    out
}

/// The rows of a scan split into at most `partitions` runs of row ranges,
/// for partitions that decode in parallel. Rows that the statistics rule out
/// for `predicates` are left out first, so the rows that remain (a selective
/// query's few chunks) are shared evenly instead of falling in one partition.
/// Without predicates, a `limit` keeps only the first `limit` rows, so a
/// query peeking at a catalogue decodes one chunk, not one per partition.
/// Cuts fall on chunk boundaries of the first projected column.
pub fn partition_ranges(
    group: &MetaGroup,
    projection: &[usize],
    predicates: &[Predicate],
    partitions: usize,
    limit: Option<usize>,
) -> Vec<Vec<Range<u64>>> {
    let mut candidates = candidate_ranges(group, predicates, 0..group.num_rows);
    if let (true, Some(limit)) = (predicates.is_empty(), limit) {
        candidates = first_rows(candidates, limit as u64);
    }
    let column = projection.first().or(predicates.first().map(|p| &p.column)).copied().unwrap_or(0);
    let bounds: &[u64] = match group.columns.get(column) {
        Some(c) if partitions > 1 => &c.chunk_bounds,
        _ => return vec![candidates],
    };
    // The candidate rows cut at chunk boundaries: units no partition splits.
    let mut units: Vec<Range<u64>> = Vec::new();
    for range in candidates {
        let mut start = range.start;
        while start < range.end {
            let next = bounds[bounds.partition_point(|b| *b <= start)..].first().copied();
            let end = next.map_or(range.end, |b| b.min(range.end));
            units.push(start..end);
            start = end;
        }
    }
    if units.is_empty() {
        return vec![Vec::new()];
    }
    let per = units.len().div_ceil(partitions);
    units
        .chunks(per)
        .map(|part| {
            let mut merged: Vec<Range<u64>> = Vec::new();
            for unit in part {
                match merged.last_mut() {
                    Some(prev) if prev.end == unit.start => prev.end = unit.end,
                    _ => merged.push(unit.clone()),
                }
            }
            merged
        })
        .collect()
}
