//! Geometry columns: which arrays are geometry, their CRS, and WKB/WKT
//! decoding into GeoArrow WKB (`geoarrow.wkb` extension metadata).

use std::collections::HashMap;

use serde_json::{Map, Value};

/// The names that make a bytes/string array geometry without being asked.
pub const GEOMETRY_NAMES: [&str; 2] = ["bbox", "geometry"];

/// Array attribute keys that declare a geometry encoding (`"WKB"`/`"WKT"`).
pub const ENCODING_ATTRIBUTES: [&str; 2] = ["geometry_encoding", "encoding"];

/// The CRS used when neither array nor group says anything.
pub const DEFAULT_CRS: &str = "OGC:CRS84";

/// How a geometry column is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GeometryEncoding {
    Wkb,
    Wkt,
}

/// A geometry column's CRS as GeoArrow metadata expects it.
#[derive(Debug, Clone, PartialEq)]
pub enum Crs {
    /// No CRS is known (all `proj:*` keys present were null).
    Unknown,
    /// An authority code such as `EPSG:32633` or `OGC:CRS84`.
    Code(String),
    /// A WKT2 string.
    Wkt2(String),
    /// A PROJJSON object.
    ProjJson(Value),
}

impl Crs {
    /// The `ARROW:extension:metadata` JSON for `geoarrow.wkb`.
    pub fn geoarrow_metadata(&self) -> String {
        let value = match self {
            Crs::Unknown => serde_json::json!({}),
            Crs::Code(code) => serde_json::json!({ "crs": code }),
            Crs::Wkt2(wkt) => serde_json::json!({ "crs": wkt, "crs_type": "wkt2:2019" }),
            Crs::ProjJson(obj) => serde_json::json!({ "crs": obj, "crs_type": "projjson" }),
        };
        value.to_string()
    }

    /// Interpret a user-supplied CRS string (authority code, PROJJSON or WKT2).
    pub fn from_user(s: &str) -> Crs {
        let t = s.trim();
        if t.starts_with('{') {
            if let Ok(v @ Value::Object(_)) = serde_json::from_str::<Value>(t) {
                return Crs::ProjJson(v);
            }
        }
        if t.contains('[') {
            Crs::Wkt2(t.to_string())
        } else {
            Crs::Code(t.to_string())
        }
    }
}

/// Field metadata that makes Arrow consumers (SedonaDB, GeoArrow) see geometry.
pub fn geoarrow_field_metadata(crs: &Crs) -> HashMap<String, String> {
    HashMap::from([
        ("ARROW:extension:name".to_string(), "geoarrow.wkb".to_string()),
        ("ARROW:extension:metadata".to_string(), crs.geoarrow_metadata()),
    ])
}

/// The encoding an array's attributes declare, if any.
pub fn declared_encoding(attributes: &Map<String, Value>) -> Option<GeometryEncoding> {
    ENCODING_ATTRIBUTES.iter().find_map(|key| {
        match attributes.get(*key)?.as_str()?.to_ascii_lowercase().as_str() {
            "wkb" => Some(GeometryEncoding::Wkb),
            "wkt" => Some(GeometryEncoding::Wkt),
            _ => None,
        }
    })
}

/// The CRS rule: the array's `proj:*` attributes if it has any, else the
/// group's; `proj:wkt2` > `proj:projjson` > `proj:code` > `proj:epsg`;
/// keys present but all null mean unknown; no key at all means OGC:CRS84.
pub fn resolve_crs(array_attrs: &Map<String, Value>, group_attrs: &Map<String, Value>) -> Crs {
    let has_proj = |m: &Map<String, Value>| m.keys().any(|k| k.starts_with("proj:"));
    let attrs = if has_proj(array_attrs) {
        array_attrs
    } else if has_proj(group_attrs) {
        group_attrs
    } else {
        return Crs::Code(DEFAULT_CRS.to_string());
    };
    if let Some(Value::String(wkt)) = attrs.get("proj:wkt2") {
        return Crs::Wkt2(wkt.clone());
    }
    if let Some(v) = attrs.get("proj:projjson") {
        match v {
            Value::Object(_) => return Crs::ProjJson(v.clone()),
            Value::String(s) => {
                if let Ok(parsed @ Value::Object(_)) = serde_json::from_str::<Value>(s) {
                    return Crs::ProjJson(parsed);
                }
            }
            _ => {}
        }
    }
    if let Some(Value::String(code)) = attrs.get("proj:code") {
        return Crs::Code(code.clone());
    }
    match attrs.get("proj:epsg") {
        Some(Value::Number(n)) if n.as_i64().is_some() => {
            Crs::Code(format!("EPSG:{}", n.as_i64().unwrap_or_default()))
        }
        Some(Value::String(s)) if !s.is_empty() => Crs::Code(format!("EPSG:{s}")),
        _ => Crs::Unknown,
    }
}

/// Check that `bytes` is one well-formed WKB geometry.
pub fn validate_wkb(bytes: &[u8]) -> Result<(), String> {
    crate::geometry::wkb_check::validate(bytes)
}

/// Parse WKT text and append its WKB encoding to `out`.
pub fn wkt_to_wkb(text: &str, out: &mut Vec<u8>) -> Result<(), String> {
    use std::str::FromStr;
    check_wkt_shape(text)?;
    let geom = wkt::Wkt::<f64>::from_str(text).map_err(|e| format!("invalid WKT: {e}"))?;
    wkb::writer::write_geometry(out, &geom, &wkb::writer::WriteOptions::default())
        .map_err(|e| format!("cannot encode WKT as WKB: {e}"))
}

/// Deepest parenthesis nesting accepted in WKT: a multipolygon needs 3, each
/// geometry collection level adds one. The parser recurses per level, so
/// unbounded nesting would overflow the stack.
pub const MAX_WKT_DEPTH: usize = 32;

/// Reject WKT the parser would mishandle: nesting deeper than
/// [`MAX_WKT_DEPTH`], unbalanced parentheses, or text after the geometry
/// (which the parser would silently drop).
fn check_wkt_shape(text: &str) -> Result<(), String> {
    let mut depth = 0usize;
    for (i, c) in text.char_indices() {
        match c {
            '(' => {
                depth += 1;
                if depth > MAX_WKT_DEPTH {
                    return Err(format!("invalid WKT: nested deeper than {MAX_WKT_DEPTH} levels"));
                }
            }
            ')' => {
                depth = depth.checked_sub(1).ok_or("invalid WKT: unbalanced ')'")?;
                if depth == 0 && !text[i + 1..].trim().is_empty() {
                    return Err(format!(
                        "invalid WKT: unexpected text after the geometry: '{}'",
                        truncate(text[i + 1..].trim())
                    ));
                }
            }
            _ => {}
        }
    }
    if depth != 0 {
        return Err("invalid WKT: unbalanced '('".into());
    }
    Ok(())
}

fn truncate(s: &str) -> &str {
    match s.char_indices().nth(40) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn wkt_shape_is_checked_before_parsing() {
        let mut out = Vec::new();
        assert!(wkt_to_wkb("POLYGON((0 0, 1 0, 1 1, 0 0))", &mut out).is_ok());
        let deep = format!("{}POINT(0 0){}", "GEOMETRYCOLLECTION(".repeat(10_000), ")".repeat(10_000));
        assert!(wkt_to_wkb(&deep, &mut out).unwrap_err().contains("nested deeper"));
        let e = wkt_to_wkb("POINT(1 2) POINT(3 4)", &mut out).unwrap_err();
        assert!(e.contains("unexpected text after the geometry"), "{e}");
        assert!(wkt_to_wkb("POINT(1 2))", &mut out).unwrap_err().contains("unexpected text"));
        assert!(wkt_to_wkb("POINT((1 2)", &mut out).unwrap_err().contains("unbalanced"));
    }

    fn map(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn crs_rule() {
        let none = Map::new();
        assert_eq!(resolve_crs(&none, &none), Crs::Code("OGC:CRS84".into()));
        let group = map(json!({"proj:code": "EPSG:32633"}));
        assert_eq!(resolve_crs(&none, &group), Crs::Code("EPSG:32633".into()));
        let array = map(json!({"proj:epsg": 3857}));
        assert_eq!(resolve_crs(&array, &group), Crs::Code("EPSG:3857".into()));
        let all = map(json!({"proj:epsg": 1, "proj:code": "EPSG:2", "proj:wkt2": "GEOGCRS[]"}));
        assert_eq!(resolve_crs(&all, &none), Crs::Wkt2("GEOGCRS[]".into()));
        let pj = map(json!({"proj:code": "EPSG:2", "proj:projjson": {"type": "GeographicCRS"}}));
        assert_eq!(resolve_crs(&pj, &none), Crs::ProjJson(json!({"type": "GeographicCRS"})));
        let nulls = map(json!({"proj:epsg": null, "proj:code": null}));
        assert_eq!(resolve_crs(&nulls, &group), Crs::Unknown);
        assert_eq!(Crs::Unknown.geoarrow_metadata(), "{}");
        assert_eq!(Crs::Code("OGC:CRS84".into()).geoarrow_metadata(), r#"{"crs":"OGC:CRS84"}"#);
    }

    #[test]
    fn wkt_round_trip_and_wkb_validation() {
        let mut out = Vec::new();
        wkt_to_wkb("POLYGON((0 0,1 0,1 1,0 1,0 0))", &mut out).unwrap();
        validate_wkb(&out).unwrap();
        assert_eq!(out[0], 1); // little endian
        assert_eq!(u32::from_le_bytes(out[1..5].try_into().unwrap()), 3);
        assert!(wkt_to_wkb("POLYGON((0 0,", &mut Vec::new()).is_err());
        assert!(validate_wkb(&out[..out.len() - 3]).is_err());
        assert!(validate_wkb(b"garbage").is_err());
    }

    #[test]
    fn declared_encodings() {
        assert_eq!(declared_encoding(&map(json!({"encoding": "WKB"}))), Some(GeometryEncoding::Wkb));
        assert_eq!(declared_encoding(&map(json!({"geometry_encoding": "wkt"}))), Some(GeometryEncoding::Wkt));
        assert_eq!(declared_encoding(&map(json!({"encoding": "utf-8"}))), None);
    }
}
