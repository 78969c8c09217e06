//! Read a Zarr `meta` group — one 1-D array per metadata field, one row per
//! catalogue item — as Arrow record batches, with `bbox`/`geometry` arrays as
//! GeoArrow WKB carrying a CRS.
//!
//! This crate knows nothing of Python; the binding crate wraps it.

pub mod bounds;
pub mod crs_udf;
pub mod decode;
pub mod dtype;
pub mod error;
pub mod filters;
pub mod geom_udf;
pub mod geometry;
pub mod group;
pub mod options;
pub mod pages;
pub mod provider;
pub mod pruning;
pub mod reader;
pub mod runtime;
pub mod store;
pub mod temporal;
pub mod udtf;
pub mod vlen;
pub mod wkb_check;

pub use error::{ErrorKind, Result, ZarrMetaError};
pub use group::MetaGroup;
pub use options::ReadOptions;
pub use provider::{ZarrMetaExec, ZarrMetaTable};
pub use reader::{BatchReader, ScanMetrics};
pub use udtf::ZarrMetaTableFunction;
