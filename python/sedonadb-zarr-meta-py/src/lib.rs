//! Python extension module `sedonadb_zarr_meta._lib`: converts types and
//! exports capsules; all reading logic lives in `sedonadb-zarr-meta-core`.

mod error;
mod host;
mod reader;
mod runtime;
mod scalar_udf;
mod sedona_table;
mod sql_calls;
mod table_function;
mod versions;

use pyo3::prelude::*;
use sedonadb_zarr_meta_core::{limits, metadata, options, store};

#[pymodule]
fn _lib(m: &Bound<'_, PyModule>) -> PyResult<()> {
    // The one runtime, in place before any store is opened.
    runtime::runtime();
    m.add("ZarrMetaError", m.py().get_type::<error::ZarrMetaException>())?;
    m.add_class::<reader::MetaTable>()?;
    m.add_class::<reader::BatchStream>()?;
    m.add_class::<sedona_table::SedonaTableProvider>()?;
    m.add_class::<table_function::ZarrMetaTableFunction>()?;
    m.add_class::<scalar_udf::GeometryUdf>()?;
    m.add_class::<scalar_udf::CrsIdiomUdf>()?;
    m.add_function(wrap_pyfunction!(sql_calls::find_table_function_calls, m)?)?;
    m.add_function(wrap_pyfunction!(versions::list_versions, m)?)?;
    m.add("DATAFUSION_MAJOR", host::DATAFUSION_MAJOR)?;
    // The core's option rules, so the Python layer checks the same ones.
    m.add("OPTION_KEYS", options::OPTION_KEYS.to_vec())?;
    m.add("MAX_CONCURRENCY", options::MAX_CONCURRENCY)?;
    m.add("MAX_OPTIONS_BYTES", options::MAX_OPTIONS_BYTES)?;
    m.add("OBJECT_STORE_SCHEMES", store::OBJECT_STORE_SCHEMES.to_vec())?;
    // Names and defaults the writer and the command-line tool share with the reader.
    m.add("STATS_ATTRIBUTE", metadata::STATS_ATTRIBUTE)?;
    m.add("VALIDITY_ATTRIBUTE", metadata::VALIDITY_ATTRIBUTE)?;
    m.add("VALIDITY_GROUP", metadata::VALIDITY_GROUP)?;
    m.add("ICECHUNK_MARKERS", store::icechunk::MARKERS.to_vec())?;
    m.add("DEFAULT_MAX_RETRIES", store::config::DEFAULT_MAX_RETRIES)?;
    m.add("DEFAULT_RETRY_TIMEOUT_SECS", store::config::DEFAULT_RETRY_TIMEOUT_SECS)?;
    // What a chunk may decode to, so the writer reading stored chunks bounds them alike.
    m.add("MAX_CHUNK_BYTES", limits::MAX_CHUNK_BYTES)?;
    m.add("VARIABLE_ELEMENT_MAX_BYTES", limits::VARIABLE_ELEMENT_MAX_BYTES)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
