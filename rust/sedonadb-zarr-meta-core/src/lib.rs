//! Read a Zarr `meta` group — one 1-D array per metadata field, one row per
//! catalogue item — as Arrow record batches, with `bbox`/`geometry` arrays as
//! GeoArrow WKB carrying a CRS.
//!
//! This crate knows nothing of Python; the binding crate wraps it. Its
//! folders follow the way from a URI to an Arrow batch, each using only the
//! ones before it: [`store`] (where bytes come from), [`metadata`] (the group
//! and its arrays), [`decode`] (chunk bytes to Arrow), [`scan`] (providers,
//! pruning, the batch reader) and [`sql`] (the functions a session gets);
//! [`geometry`] serves them all.

pub mod decode;
pub mod error;
pub mod geometry;
pub mod limits;
pub mod metadata;
pub mod options;
pub mod runtime;
pub mod scan;
pub mod sql;
pub mod store;

#[cfg(any(test, feature = "testing"))]
pub mod testing;

pub use error::{ErrorKind, Result, ZarrMetaError};
pub use metadata::MetaGroup;
pub use options::ReadOptions;
pub use scan::{BatchReader, ScanMetrics, ZarrMetaExec, ZarrMetaTable};
pub use sql::ZarrMetaTableFunction;
