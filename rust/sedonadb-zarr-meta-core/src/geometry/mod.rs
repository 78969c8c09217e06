//! Geometry values: WKB checked and WKT converted, CRS resolved from
//! attributes into GeoArrow field metadata, and the bounds of WKB values.

mod bounds;
mod encoding;
pub mod wkb_check;

pub use bounds::{intersects, wkb_extent, BBox, Extent};
pub use encoding::{
    declared_encoding, geoarrow_field_metadata, resolve_crs, validate_wkb, wkt_to_wkb, Crs, GeometryEncoding,
    DEFAULT_CRS, ENCODING_ATTRIBUTES, GEOMETRY_NAMES, MAX_WKT_DEPTH,
};
