//! Zarr data types (v3 `data_type`, v2 `dtype`) to column kinds.
//!
//! The mapping is decided from the metadata JSON itself, so that types zarrs
//! cannot open directly (v2 `<M8`/`<m8`, `|S`, v3 `null_terminated_bytes`)
//! still read: for those, [`DtypeMapping::zarrs_dtype`] names a storage-
//! equivalent type (same element size) that zarrs decodes for us.

use arrow_schema::DataType;
use serde_json::Value;

use crate::metadata::temporal::{NumpyUnit, TimeConversion};
use crate::metadata::{ColumnKind, Storage};

/// The outcome of looking at one array's data type.
#[derive(Debug, Clone, PartialEq)]
pub struct DtypeMapping {
    pub kind: ColumnKind,
    /// Replacement for the stored data type when zarrs cannot decode it as is.
    pub zarrs_dtype: Option<Value>,
    /// Replacement fill value to go with `zarrs_dtype`.
    pub zarrs_fill_value: Option<Value>,
}

impl DtypeMapping {
    fn plain(kind: ColumnKind) -> Self {
        Self { kind, zarrs_dtype: None, zarrs_fill_value: None }
    }
}

fn primitive_named(name: &str) -> Option<ColumnKind> {
    let dt = match name {
        "bool" => DataType::Boolean,
        "int8" => DataType::Int8,
        "int16" => DataType::Int16,
        "int32" => DataType::Int32,
        "int64" => DataType::Int64,
        "uint8" => DataType::UInt8,
        "uint16" => DataType::UInt16,
        "uint32" => DataType::UInt32,
        "uint64" => DataType::UInt64,
        "float32" => DataType::Float32,
        "float64" => DataType::Float64,
        "float16" => return Some(ColumnKind::Float16),
        _ => return None,
    };
    Some(ColumnKind::Primitive(dt))
}

fn time_kind(unit: &str, scale_factor: i64, datetime: bool) -> Result<ColumnKind, String> {
    let parsed = NumpyUnit::parse(unit).ok_or_else(|| format!("unsupported time unit '{unit}'"))?;
    // NumPy (and so the reference writer) allows 1 <= scale_factor < 2^31.
    if !(1..1 << 31).contains(&scale_factor) {
        return Err(format!("invalid time scale_factor {scale_factor} (must be 1 to 2147483647)"));
    }
    let conv = TimeConversion::new(parsed, scale_factor, datetime)
        .ok_or_else(|| format!("time unit '{unit}' x {scale_factor} cannot be represented in Arrow"))?;
    Ok(if datetime { ColumnKind::Timestamp(conv) } else { ColumnKind::Duration(conv) })
}

fn length_bytes(config: Option<&Value>) -> Result<usize, String> {
    config
        .and_then(|c| c.get("length_bytes"))
        .and_then(Value::as_u64)
        .filter(|n| *n > 0 && *n <= 1 << 20)
        .map(|n| n as usize)
        .ok_or_else(|| "missing or invalid 'length_bytes' in data type configuration".to_string())
}

/// Map a Zarr v3 `data_type` (string or `{name, configuration}` object).
pub fn from_v3(data_type: &Value) -> Result<DtypeMapping, String> {
    let (name, config) = match data_type {
        Value::String(s) => (s.as_str(), None),
        Value::Object(m) => {
            (m.get("name").and_then(Value::as_str).unwrap_or_default(), m.get("configuration"))
        }
        other => return Err(format!("unsupported data type {other}")),
    };
    if let Some(kind) = primitive_named(name) {
        return Ok(DtypeMapping::plain(kind));
    }
    let kind = match name {
        "string" => ColumnKind::Utf8(Storage::Variable),
        "bytes" | "binary" | "variable_length_bytes" => ColumnKind::Binary(Storage::Variable),
        "numpy.datetime64" | "numpy.timedelta64" => {
            let unit = config.and_then(|c| c.get("unit")).and_then(Value::as_str).unwrap_or("generic");
            let scale = config.and_then(|c| c.get("scale_factor")).and_then(Value::as_i64).unwrap_or(1);
            time_kind(unit, scale, name == "numpy.datetime64")?
        }
        "fixed_length_utf32" => ColumnKind::Utf8(Storage::FixedUtf32 { length_bytes: length_bytes(config)? }),
        "null_terminated_bytes" => {
            let n = length_bytes(config)?;
            return Ok(DtypeMapping {
                kind: ColumnKind::Binary(Storage::FixedBytes { length_bytes: n }),
                zarrs_dtype: Some(Value::String(format!("r{}", n * 8))),
                zarrs_fill_value: Some(Value::Array(vec![Value::from(0u8); n])),
            });
        }
        _ => return Err(format!("unsupported data type '{}'", compact(data_type))),
    };
    Ok(DtypeMapping::plain(kind))
}

/// Map a Zarr v2 `dtype`; `object_codec` is the id of the filter that encodes
/// `|O` arrays (`vlen-utf8`, `vlen-bytes`).
pub fn from_v2(dtype: &Value, object_codec: Option<&str>) -> Result<DtypeMapping, String> {
    let Value::String(s) = dtype else {
        return Err(format!("unsupported structured dtype {}", compact(dtype)));
    };
    let unsupported = || format!("unsupported dtype '{s}'");
    if s == "|O" {
        return match object_codec {
            Some("vlen-utf8") | None => Ok(DtypeMapping::plain(ColumnKind::Utf8(Storage::Variable))),
            Some("vlen-bytes") => Ok(DtypeMapping {
                kind: ColumnKind::Binary(Storage::Variable),
                zarrs_dtype: None,
                zarrs_fill_value: None,
            }),
            Some(other) => Err(format!("unsupported object codec '{other}' for dtype '|O'")),
        };
    }
    let (order, rest) = s.split_at(s.char_indices().nth(1).map_or(s.len(), |(i, _)| i));
    if !matches!(order, "<" | ">" | "|" | "=") {
        return Err(unsupported());
    }
    let code = rest.get(..1).ok_or_else(unsupported)?;
    let body = &rest[1..];
    match code {
        "M" | "m" => {
            // `<M8[10ms]`: unit and optional multiplier in brackets.
            let inner = body
                .strip_prefix("8[")
                .and_then(|b| b.strip_suffix(']'))
                .ok_or_else(|| format!("unsupported dtype '{s}' (datetime without unit)"))?;
            let digits = inner.chars().take_while(char::is_ascii_digit).count();
            let scale =
                if digits == 0 { 1 } else { inner[..digits].parse::<i64>().map_err(|_| unsupported())? };
            let kind = time_kind(&inner[digits..], scale, code == "M")?;
            Ok(DtypeMapping {
                kind,
                zarrs_dtype: Some(Value::String(format!("{order}i8"))),
                zarrs_fill_value: None,
            })
        }
        "U" => {
            let n: usize = body.parse().map_err(|_| unsupported())?;
            if n == 0 || n > 1 << 18 {
                return Err(unsupported());
            }
            Ok(DtypeMapping::plain(ColumnKind::Utf8(Storage::FixedUtf32 { length_bytes: n * 4 })))
        }
        "S" => {
            let n: usize = body.parse().map_err(|_| unsupported())?;
            if n == 0 || n > 1 << 20 {
                return Err(unsupported());
            }
            Ok(DtypeMapping {
                kind: ColumnKind::Binary(Storage::FixedBytes { length_bytes: n }),
                zarrs_dtype: Some(Value::String(format!("|V{n}"))),
                zarrs_fill_value: Some(Value::Array(vec![Value::from(0u8); n])),
            })
        }
        _ => {
            let width: usize = body.parse().map_err(|_| unsupported())?;
            let name = match (code, width) {
                ("b", 1) => "bool",
                ("i", 1) => "int8",
                ("i", 2) => "int16",
                ("i", 4) => "int32",
                ("i", 8) => "int64",
                ("u", 1) => "uint8",
                ("u", 2) => "uint16",
                ("u", 4) => "uint32",
                ("u", 8) => "uint64",
                ("f", 2) => "float16",
                ("f", 4) => "float32",
                ("f", 8) => "float64",
                _ => return Err(unsupported()),
            };
            Ok(DtypeMapping::plain(primitive_named(name).ok_or_else(unsupported)?))
        }
    }
}

fn compact(v: &Value) -> String {
    let s = match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    if s.len() > 200 {
        format!("{}…", &s[..s.char_indices().nth(200).map_or(s.len(), |(i, _)| i)])
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_schema::TimeUnit;
    use serde_json::json;

    #[test]
    fn v3_types() {
        assert_eq!(from_v3(&json!("int16")).unwrap().kind, ColumnKind::Primitive(DataType::Int16));
        assert_eq!(from_v3(&json!("string")).unwrap().kind, ColumnKind::Utf8(Storage::Variable));
        let dt =
            from_v3(&json!({"name": "numpy.datetime64", "configuration": {"unit": "ms", "scale_factor": 1}}))
                .unwrap();
        assert_eq!(dt.kind.arrow_type(), DataType::Timestamp(TimeUnit::Millisecond, None));
        let td =
            from_v3(&json!({"name": "numpy.timedelta64", "configuration": {"unit": "D", "scale_factor": 2}}))
                .unwrap();
        assert_eq!(td.kind.arrow_type(), DataType::Duration(TimeUnit::Second));
        let ntb =
            from_v3(&json!({"name": "null_terminated_bytes", "configuration": {"length_bytes": 5}})).unwrap();
        assert_eq!(ntb.zarrs_dtype, Some(json!("r40")));
        assert!(from_v3(&json!("complex64")).unwrap_err().contains("unsupported data type"));
    }

    #[test]
    fn v2_types() {
        assert_eq!(from_v2(&json!("<f2"), None).unwrap().kind, ColumnKind::Float16);
        assert_eq!(from_v2(&json!(">u8"), None).unwrap().kind, ColumnKind::Primitive(DataType::UInt64));
        let m = from_v2(&json!("<M8[10ms]"), None).unwrap();
        assert_eq!(m.kind.arrow_type(), DataType::Timestamp(TimeUnit::Millisecond, None));
        assert_eq!(m.zarrs_dtype, Some(json!("<i8")));
        assert_eq!(
            from_v2(&json!("<m8[s]"), None).unwrap().kind.arrow_type(),
            DataType::Duration(TimeUnit::Second)
        );
        assert_eq!(
            from_v2(&json!("<U5"), None).unwrap().kind,
            ColumnKind::Utf8(Storage::FixedUtf32 { length_bytes: 20 })
        );
        assert_eq!(from_v2(&json!("|S3"), None).unwrap().zarrs_dtype, Some(json!("|V3")));
        assert_eq!(
            from_v2(&json!("|O"), Some("vlen-bytes")).unwrap().kind,
            ColumnKind::Binary(Storage::Variable)
        );
        assert!(from_v2(&json!("<c8"), None).is_err());
        assert!(from_v2(&json!("<M8"), None).is_err());
    }
}
