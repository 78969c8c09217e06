//! The SQL functions this crate adds to a DataFusion session: the table
//! function `sd_read_zarr_meta`, and the geometry and CRS scalar functions.

pub mod crs_udf;
pub mod geom_udf;
mod udtf;

pub use udtf::{ZarrMetaTableFunction, FUNCTION_NAME};
