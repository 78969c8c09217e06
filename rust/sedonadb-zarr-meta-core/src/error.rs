//! The one error type of the core crate.
//!
//! Every variant carries the store (and, where there is one, the array) so a
//! message reaching a user always says *where* the problem is.

use datafusion_common::DataFusionError;

/// Result alias of the core crate.
pub type Result<T, E = ZarrMetaError> = std::result::Result<T, E>;

/// What can go wrong while opening or reading a `meta` group.
#[derive(Debug, thiserror::Error)]
pub enum ZarrMetaError {
    /// The store, the group or an array does not exist.
    #[error("{store}: {what} not found")]
    NotFound { store: String, what: String },

    /// The data or metadata of an array is malformed or cannot be represented.
    #[error("{store}: array '{array}': {message}")]
    InvalidArray { store: String, array: String, message: String },

    /// The group as a whole is malformed (e.g. arrays of unequal length).
    #[error("{store}: group '{group}': {message}")]
    InvalidGroup { store: String, group: String, message: String },

    /// A user-supplied option is unknown or has the wrong type or value.
    #[error("invalid option: {0}")]
    InvalidOption(String),

    /// The request is well-formed but not supported (yet).
    #[error("{0}")]
    Unsupported(String),

    /// The object store rejected our credentials or denied access.
    #[error("{store}: access denied: {message}")]
    PermissionDenied { store: String, message: String },

    /// An I/O or storage error not attributable to one array.
    #[error("{store}: {message}")]
    Storage { store: String, message: String },

    /// Arrow rejected a batch we built (a bug if it happens).
    #[error(transparent)]
    Arrow(#[from] arrow_schema::ArrowError),
}

impl ZarrMetaError {
    /// Shorthand for [`ZarrMetaError::InvalidArray`].
    pub fn array(store: &str, array: &str, message: impl Into<String>) -> Self {
        Self::InvalidArray { store: store.to_string(), array: array.to_string(), message: message.into() }
    }

    /// A stable short name of the kind of error, used by bindings to choose an
    /// exception class.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::NotFound { .. } => ErrorKind::NotFound,
            Self::InvalidArray { .. } | Self::InvalidGroup { .. } | Self::InvalidOption(_) => {
                ErrorKind::InvalidInput
            }
            Self::Unsupported(_) => ErrorKind::Unsupported,
            Self::PermissionDenied { .. } => ErrorKind::PermissionDenied,
            Self::Storage { .. } | Self::Arrow(_) => ErrorKind::Other,
        }
    }
}

/// Coarse classification of [`ZarrMetaError`] for language bindings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    NotFound,
    PermissionDenied,
    InvalidInput,
    Unsupported,
    Other,
}

impl From<ZarrMetaError> for DataFusionError {
    fn from(e: ZarrMetaError) -> Self {
        match e {
            ZarrMetaError::InvalidOption(msg) => DataFusionError::Plan(format!("invalid option: {msg}")),
            other => DataFusionError::External(Box::new(other)),
        }
    }
}

/// Recover a [`ZarrMetaError`] that travelled through DataFusion, if any.
pub fn find_zarr_meta_error(e: &DataFusionError) -> Option<&ZarrMetaError> {
    match e {
        DataFusionError::External(inner) => inner.downcast_ref::<ZarrMetaError>(),
        DataFusionError::Context(_, inner) => find_zarr_meta_error(inner),
        DataFusionError::Shared(inner) => find_zarr_meta_error(inner),
        _ => None,
    }
}
