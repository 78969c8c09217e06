//! `MetaTable` (an opened group: schema, row count) and `BatchStream` (a
//! single-use Arrow C stream of its batches) for Python.

use std::ffi::CString;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use arrow_array::ffi_stream::FFI_ArrowArrayStream;
use arrow_array::{RecordBatch, RecordBatchReader};
use arrow_schema::ffi::FFI_ArrowSchema;
use arrow_schema::{ArrowError, SchemaRef};
use pyo3::prelude::*;
use pyo3::types::PyCapsule;
use sedonadb_zarr_meta_core::metadata::cache;
use sedonadb_zarr_meta_core::scan::{row_ranges, Predicate, Test};
use sedonadb_zarr_meta_core::{BatchReader, MetaGroup, ScanMetrics};

use crate::error::BindingError;

/// An opened `meta` group. Opening reads metadata only, never chunk data.
#[pyclass(module = "sedonadb_zarr_meta._lib", frozen)]
pub struct MetaTable {
    pub(crate) group: Arc<MetaGroup>,
}

/// Open a group from Python arguments (or take it from the cache of opened
/// groups), without holding the GIL while reading metadata.
pub(crate) fn open_group(py: Python<'_>, uri: &str, options_json: Option<&str>) -> PyResult<Arc<MetaGroup>> {
    Ok(py.detach(|| cache::open(uri, options_json)).map_err(BindingError::from)?)
}

#[pymethods]
impl MetaTable {
    /// Open the group of `uri` selected by `options_json` (a JSON object).
    #[new]
    #[pyo3(signature = (uri, options_json=None))]
    fn new(py: Python<'_>, uri: String, options_json: Option<String>) -> PyResult<Self> {
        Ok(Self { group: open_group(py, &uri, options_json.as_deref())? })
    }

    /// Number of rows (items).
    #[getter]
    fn num_rows(&self) -> u64 {
        self.group.num_rows
    }

    /// A number naming the opened group: the same while the store is
    /// unchanged (the group is kept between opens), another once it changed.
    #[getter]
    fn group_id(&self) -> u64 {
        self.group.id
    }

    /// Column names in schema order (the row-number column last, when asked for).
    #[getter]
    fn column_names(&self) -> Vec<String> {
        self.group.schema.fields().iter().map(|f| f.name().clone()).collect()
    }

    /// Per column, the rows of each of its chunks, in order.
    #[getter]
    fn chunk_rows(&self) -> std::collections::HashMap<String, Vec<u64>> {
        self.group
            .columns
            .iter()
            .map(|c| (c.name.clone(), c.chunk_bounds.windows(2).map(|w| w[1] - w[0]).collect()))
            .collect()
    }

    /// The group's chunk statistics as readers understand them (a JSON object;
    /// see `sedonadb_zarr_meta_core::metadata::stats_report`).
    #[getter]
    fn statistics_json(&self) -> String {
        sedonadb_zarr_meta_core::metadata::stats_report(&self.group.attributes, self.group.num_rows)
            .to_string()
    }

    /// The Arrow schema, via the Arrow PyCapsule interface.
    fn __arrow_c_schema__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyCapsule>> {
        schema_capsule(py, &self.group.schema)
    }

    /// A single-use stream of `columns` (indices; all if `None`) over rows
    /// `start..end`, in batches of at most `batch_size` rows.
    ///
    /// `bbox=(column, (xmin, ymin, xmax, ymax))` skips chunks (using stored
    /// statistics, else the decoded column) whose geometries cannot intersect
    /// the box; rows of chunks that may match are all returned.
    ///
    /// `rows` reads only the rows at these positions (those in `start..end`
    /// that the group has), in group order, each once.
    ///
    /// `extension_types=False` leaves geometry as plain WKB bytes (no GeoArrow
    /// extension type for pyarrow to rebuild on import).
    #[pyo3(signature = (columns=None, batch_size=None, start=0, end=None, bbox=None, rows=None, extension_types=true))]
    #[allow(clippy::too_many_arguments)] // Python keyword arguments
    fn scan(
        &self,
        columns: Option<Vec<usize>>,
        batch_size: Option<usize>,
        start: u64,
        end: Option<u64>,
        bbox: Option<(String, [f64; 4])>,
        rows: Option<Vec<u64>>,
        extension_types: bool,
    ) -> PyResult<BatchStream> {
        let batch_size = batch_size.filter(|b| *b > 0).unwrap_or(self.group.options.batch_size);
        let mut predicates = Vec::new();
        if let Some((name, b)) = bbox {
            let column = self.group.column_index(&name).ok_or_else(|| {
                BindingError::Value(format!("{}: bbox filter on unknown column '{name}'", self.group.store))
            })?;
            predicates.push(Predicate { column, test: Test::BBox(b) });
        }
        let span = start..end.unwrap_or(u64::MAX).min(self.group.num_rows);
        let reader = match rows {
            None => BatchReader::with_predicates(self.group.clone(), columns, span, batch_size, predicates),
            Some(rows) => {
                let ranges = row_ranges(rows.into_iter().filter(|r| span.contains(r)).collect());
                BatchReader::over_ranges(self.group.clone(), columns, ranges, batch_size, predicates)
                    .map(BatchReader::coalesced)
            }
        }
        .map_err(BindingError::from)?
        .as_single_stream();
        let reader = if extension_types { reader } else { reader.without_extension_types() };
        let metrics = reader.metrics().clone();
        Ok(BatchStream { inner: Mutex::new(Some(reader)), store: self.group.store.clone(), metrics })
    }

    /// Whether the store carries per-chunk statistics usable for skipping.
    #[getter]
    fn has_stats(&self) -> bool {
        self.group.stats.is_some()
    }

    /// The group's attributes, as a JSON object.
    #[getter]
    fn attributes_json(&self) -> String {
        serde_json::Value::Object(self.group.attributes.clone()).to_string()
    }

    fn __repr__(&self) -> String {
        format!(
            "MetaTable(store={:?}, group={:?}, rows={}, columns={:?})",
            self.group.store,
            self.group.group,
            self.group.num_rows,
            self.column_names()
        )
    }
}

pub(crate) fn schema_capsule<'py>(py: Python<'py>, schema: &SchemaRef) -> PyResult<Bound<'py, PyCapsule>> {
    let ffi = FFI_ArrowSchema::try_from(schema.as_ref()).map_err(|e| BindingError::Other(e.to_string()))?;
    PyCapsule::new(py, ffi, Some(CString::new("arrow_schema").expect("static name")))
}

/// Adapts the core reader to Arrow's `RecordBatchReader`.
struct ArrowReader(BatchReader);

impl Iterator for ArrowReader {
    type Item = Result<RecordBatch, ArrowError>;
    fn next(&mut self) -> Option<Self::Item> {
        self.0.next().map(|r| r.map_err(|e| ArrowError::ExternalError(Box::new(e))))
    }
}

impl RecordBatchReader for ArrowReader {
    fn schema(&self) -> SchemaRef {
        self.0.schema()
    }
}

/// One batch handed to pyarrow through the Arrow PyCapsule interface.
#[pyclass(module = "sedonadb_zarr_meta._lib", frozen)]
struct ExportedBatch(Mutex<Option<RecordBatch>>);

#[pymethods]
impl ExportedBatch {
    #[pyo3(signature = (requested_schema=None))]
    fn __arrow_c_array__<'py>(
        &self,
        py: Python<'py>,
        requested_schema: Option<Bound<'py, PyAny>>,
    ) -> PyResult<(Bound<'py, PyCapsule>, Bound<'py, PyCapsule>)> {
        let _ = requested_schema;
        let batch = self
            .0
            .lock()
            .map_err(|_| BindingError::Other("batch lock poisoned".into()))?
            .take()
            .ok_or_else(|| BindingError::Other("the batch was already exported".into()))?;
        let array: arrow_array::StructArray = batch.into();
        let (ffi_array, ffi_schema) = arrow_array::ffi::to_ffi(&array.into())
            .map_err(|e| BindingError::Other(format!("cannot export a batch: {e}")))?;
        Ok((
            PyCapsule::new(py, ffi_schema, Some(CString::new("arrow_schema").expect("static name")))?,
            PyCapsule::new(py, ffi_array, Some(CString::new("arrow_array").expect("static name")))?,
        ))
    }
}

/// A stream of record batches exported once through `__arrow_c_stream__`.
#[pyclass(module = "sedonadb_zarr_meta._lib", frozen)]
pub struct BatchStream {
    inner: Mutex<Option<BatchReader>>,
    store: String,
    metrics: Arc<ScanMetrics>,
}

#[pymethods]
impl BatchStream {
    /// Export the stream (Arrow PyCapsule interface). A stream can be consumed
    /// only once; a second call raises.
    #[pyo3(signature = (requested_schema=None))]
    fn __arrow_c_stream__<'py>(
        &self,
        py: Python<'py>,
        requested_schema: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyCapsule>> {
        let _ = requested_schema; // we always produce our own schema
        let reader = self
            .inner
            .lock()
            .map_err(|_| BindingError::Other("stream lock poisoned".into()))?
            .take()
            .ok_or_else(|| {
                BindingError::Other(format!(
                    "the Arrow stream of {} was already consumed; call scan() again for a new one",
                    self.store
                ))
            })?;
        let ffi = FFI_ArrowArrayStream::new(Box::new(ArrowReader(reader)));
        PyCapsule::new(py, ffi, Some(CString::new("arrow_array_stream").expect("static name")))
    }

    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    /// The next batch as a `pyarrow.RecordBatch`. Errors are this package's
    /// exceptions (`ValueError`, `FileNotFoundError`, `ZarrMetaError`, …);
    /// through the Arrow C stream pyarrow would turn them into `ArrowInvalid`.
    fn __next__<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        let next = {
            let mut guard =
                self.inner.lock().map_err(|_| BindingError::Other("stream lock poisoned".into()))?;
            let Some(reader) = guard.as_mut() else {
                return Err(BindingError::Other(format!(
                    "the Arrow stream of {} was already consumed; call scan() again for a new one",
                    self.store
                ))
                .into());
            };
            py.detach(|| reader.next())
        };
        match next {
            None => {
                // Exhausted: the stream is consumed.
                let _ = self.inner.lock().map(|mut g| g.take());
                Ok(None)
            }
            Some(Err(e)) => Err(BindingError::from(e).into()),
            Some(Ok(batch)) => {
                let exported = ExportedBatch(Mutex::new(Some(batch)));
                let pyarrow = py.import("pyarrow")?;
                Ok(Some(pyarrow.call_method1("record_batch", (exported,))?))
            }
        }
    }

    /// Read every remaining batch into a `pyarrow.Table`, raising this
    /// package's exceptions on bad data.
    fn read_all<'py>(slf: Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        let py = slf.py();
        let pyarrow = py.import("pyarrow")?;
        let schema = pyarrow.call_method1("schema", (slf.clone(),))?;
        let mut batches = Vec::new();
        while let Some(batch) = slf.borrow().__next__(py)? {
            batches.push(batch);
        }
        pyarrow.getattr("Table")?.call_method1("from_batches", (batches, schema))
    }

    /// Chunks read so far (per column): decoded, or kept from an earlier scan.
    #[getter]
    fn chunks_read(&self) -> u64 {
        self.metrics.chunks_read.load(Ordering::Relaxed)
    }

    /// Of the chunks read, those kept decoded from an earlier scan.
    #[getter]
    fn chunks_kept(&self) -> u64 {
        self.metrics.chunks_kept.load(Ordering::Relaxed)
    }

    /// Pieces of chunks skipped because no row could match.
    #[getter]
    fn pieces_skipped(&self) -> u64 {
        self.metrics.pieces_skipped.load(Ordering::Relaxed)
    }

    /// The schema of the batches (available until the stream is consumed).
    fn __arrow_c_schema__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyCapsule>> {
        let guard = self.inner.lock().map_err(|_| BindingError::Other("stream lock poisoned".into()))?;
        let reader = guard.as_ref().ok_or_else(|| {
            BindingError::Other(format!("the Arrow stream of {} was already consumed", self.store))
        })?;
        schema_capsule(py, &reader.schema())
    }
}
