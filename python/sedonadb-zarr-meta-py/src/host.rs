//! Guards against handing a capsule to a host built on another DataFusion
//! major: across FFI that is a crash, not an error, so refuse it here.

use pyo3::exceptions::PyImportError;
use pyo3::prelude::*;

/// The DataFusion major this module is built against (datafusion-ffi =54.1.0).
pub const DATAFUSION_MAJOR: u64 = 54;
/// The SedonaDB release whose extension ABI (sedona-extension 0.5.0) we export.
pub const SEDONADB_VERSION: &str = "0.5";

fn installed_version(py: Python<'_>, module: &str) -> PyResult<String> {
    py.import(module)?.getattr("__version__")?.extract()
}

/// Raise `ImportError` unless the installed `datafusion` has our major.
pub fn check_datafusion(py: Python<'_>) -> PyResult<()> {
    let version = installed_version(py, "datafusion")?;
    let major = version.split('.').next().and_then(|m| m.parse::<u64>().ok());
    if major != Some(DATAFUSION_MAJOR) {
        return Err(PyImportError::new_err(format!(
            "datafusion {version} is installed, but sedonadb-zarr-meta is built for DataFusion \
             {DATAFUSION_MAJOR} (datafusion=={DATAFUSION_MAJOR}.1.*); refusing to hand over a table \
             function across incompatible versions, which would crash the process"
        )));
    }
    Ok(())
}

/// Raise `ImportError` unless the installed `sedonadb` speaks our extension ABI.
pub fn check_sedonadb(py: Python<'_>) -> PyResult<()> {
    let version = installed_version(py, "sedonadb")?;
    let same_minor = version == SEDONADB_VERSION || version.starts_with(&format!("{SEDONADB_VERSION}."));
    if !same_minor {
        return Err(PyImportError::new_err(format!(
            "sedonadb {version} is installed, but sedonadb-zarr-meta is built for sedonadb \
             {SEDONADB_VERSION}.x (DataFusion {DATAFUSION_MAJOR}); refusing to hand over a table \
             provider across incompatible versions"
        )));
    }
    Ok(())
}
