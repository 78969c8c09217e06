//! What an array's elements are: the column kinds the metadata maps each
//! Zarr data type to, and the Arrow type each becomes.

use arrow_schema::DataType;

use crate::geometry::GeometryEncoding;
use crate::metadata::temporal::TimeConversion;

/// What an array's elements are and how they become Arrow values.
#[derive(Debug, Clone, PartialEq)]
pub enum ColumnKind {
    /// A fixed-size number (or bool) copied as is; the Arrow type says which.
    Primitive(DataType),
    /// IEEE half floats, widened to Float32 (hosts handle Float16 poorly).
    Float16,
    /// `datetime64` values.
    Timestamp(TimeConversion),
    /// `timedelta64` values.
    Duration(TimeConversion),
    /// Variable- or fixed-length text.
    Utf8(Storage),
    /// Variable- or fixed-length bytes.
    Binary(Storage),
    /// Text or bytes holding one geometry per row, emitted as WKB.
    Geometry(Storage, GeometryEncoding),
}

/// The physical layout of text/bytes elements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Storage {
    /// zarrs variable-length bytes (vlen-utf8, vlen-bytes).
    Variable,
    /// NumPy `<U n`: n UTF-32 code units, NUL padded.
    FixedUtf32 { length_bytes: usize },
    /// NumPy `|S n`: n bytes, NUL padded.
    FixedBytes { length_bytes: usize },
}

impl ColumnKind {
    /// The Arrow type this kind produces.
    pub fn arrow_type(&self) -> DataType {
        match self {
            ColumnKind::Primitive(dt) => dt.clone(),
            ColumnKind::Float16 => DataType::Float32,
            ColumnKind::Timestamp(c) => DataType::Timestamp(c.unit, None),
            ColumnKind::Duration(c) => DataType::Duration(c.unit),
            ColumnKind::Utf8(_) => DataType::Utf8,
            ColumnKind::Binary(_) | ColumnKind::Geometry(..) => DataType::Binary,
        }
    }

    /// Whether the Arrow field may hold nulls (NaT, empty geometries).
    pub fn nullable(&self) -> bool {
        matches!(self, ColumnKind::Timestamp(_) | ColumnKind::Duration(_) | ColumnKind::Geometry(..))
    }

    /// The element layout, for kinds that hold text or bytes.
    pub fn storage(&self) -> Option<Storage> {
        match self {
            ColumnKind::Utf8(s) | ColumnKind::Binary(s) | ColumnKind::Geometry(s, _) => Some(*s),
            _ => None,
        }
    }
}
