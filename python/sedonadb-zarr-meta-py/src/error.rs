//! Python exceptions of the package, and the one conversion from core errors.
//!
//! Missing stores/groups/arrays raise `FileNotFoundError`, bad data or options
//! raise `ValueError`, rejected credentials `PermissionError`, unsupported
//! requests `NotImplementedError`; everything
//! else raises the package's base exception `ZarrMetaError`.

use datafusion_common::DataFusionError;
use pyo3::exceptions::{
    PyException, PyFileNotFoundError, PyNotImplementedError, PyPermissionError, PyValueError,
};
use pyo3::{create_exception, PyErr};
use sedonadb_zarr_meta_core::error::find_zarr_meta_error;
use sedonadb_zarr_meta_core::{ErrorKind, ZarrMetaError};

create_exception!(_lib, ZarrMetaException, PyException, "Base exception of sedonadb_zarr_meta.");

/// Error type of the binding layer; converts into the right Python exception.
#[derive(Debug, thiserror::Error)]
pub enum BindingError {
    #[error(transparent)]
    Core(#[from] ZarrMetaError),
    #[error(transparent)]
    DataFusion(#[from] DataFusionError),
    #[error("{0}")]
    Value(String),
    #[error("{0}")]
    Other(String),
}

fn from_kind(kind: ErrorKind, message: String) -> PyErr {
    match kind {
        ErrorKind::NotFound => PyFileNotFoundError::new_err(message),
        ErrorKind::PermissionDenied => PyPermissionError::new_err(message),
        ErrorKind::InvalidInput => PyValueError::new_err(message),
        ErrorKind::Unsupported => PyNotImplementedError::new_err(message),
        ErrorKind::Other => ZarrMetaException::new_err(message),
    }
}

impl From<BindingError> for PyErr {
    fn from(e: BindingError) -> Self {
        match e {
            BindingError::Core(core) => from_kind(core.kind(), core.to_string()),
            BindingError::DataFusion(df) => match find_zarr_meta_error(&df) {
                Some(core) => from_kind(core.kind(), core.to_string()),
                None => match df {
                    DataFusionError::Plan(m) => PyValueError::new_err(m),
                    other => ZarrMetaException::new_err(other.to_string()),
                },
            },
            BindingError::Value(m) => PyValueError::new_err(m),
            BindingError::Other(m) => ZarrMetaException::new_err(m),
        }
    }
}
