//! SedonaDB's CRS idioms for hosts that reach SedonaDB's functions through
//! datafusion-ffi 54 (datafusion-python): `ST_SetSRID`, `ST_SetCRS`,
//! `ST_GeomFromText`/`ST_GeomFromWKT`/`ST_GeomFromWKB` with an SRID,
//! `ST_GeomFromEWKT` and `ST_MakeEnvelope`.
//!
//! Across that boundary SedonaDB's own versions see their SRID or CRS as an
//! array, never as a constant, so they answer with a per-row CRS that
//! `ST_Intersects` and friends reject. These versions read the constant and
//! put the CRS in the return field, exactly as SedonaDB does on its own host:
//! SRID 4326 → `OGC:CRS84`, 0 → no CRS, any other `n` → `EPSG:n`; a CRS
//! string is kept as given. Their values are SedonaDB's too: the geometry's
//! WKB bytes unchanged, WKT parsed to ISO WKB.
//!
//! A CRS that comes from a column (not a constant) cannot be a property of the
//! result type; that is a planning error saying so.

use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::{Array, ArrayRef, BinaryArray, Float64Array};
use arrow_schema::{DataType, Field, FieldRef};
use datafusion_common::{exec_err, plan_err, Result as DFResult, ScalarValue};
use datafusion_expr::{
    ColumnarValue, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDFImpl, Signature, TypeSignature, Volatility,
};

use crate::geometry::{geoarrow_field_metadata, validate_wkb, wkt_to_wkb, Crs};

/// Which idiom a function implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Idiom {
    /// `ST_SetSRID(geom, srid)`
    SetSrid,
    /// `ST_SetCRS(geom, crs)`
    SetCrs,
    /// `ST_GeomFromText(wkt [, srid])`
    GeomFromText,
    /// `ST_GeomFromWKT(wkt [, srid])`
    GeomFromWkt,
    /// `ST_GeomFromWKB(wkb [, srid])`
    GeomFromWkb,
    /// `ST_GeomFromEWKT(ewkt)` (constant text)
    GeomFromEwkt,
    /// `ST_MakeEnvelope(xmin, ymin, xmax, ymax [, srid])`
    MakeEnvelope,
}

impl Idiom {
    /// Every idiom, for registration.
    pub const ALL: [Idiom; 7] = [
        Idiom::SetSrid,
        Idiom::SetCrs,
        Idiom::GeomFromText,
        Idiom::GeomFromWkt,
        Idiom::GeomFromWkb,
        Idiom::GeomFromEwkt,
        Idiom::MakeEnvelope,
    ];

    /// The SQL name (SedonaDB's).
    pub fn name(self) -> &'static str {
        match self {
            Idiom::SetSrid => "st_setsrid",
            Idiom::SetCrs => "st_setcrs",
            Idiom::GeomFromText => "st_geomfromtext",
            Idiom::GeomFromWkt => "st_geomfromwkt",
            Idiom::GeomFromWkb => "st_geomfromwkb",
            Idiom::GeomFromEwkt => "st_geomfromewkt",
            Idiom::MakeEnvelope => "st_makeenvelope",
        }
    }

    fn usage(self) -> &'static str {
        match self {
            Idiom::SetSrid => "ST_SetSRID(geom, srid)",
            Idiom::SetCrs => "ST_SetCRS(geom, crs)",
            Idiom::GeomFromText => "ST_GeomFromText(wkt [, srid])",
            Idiom::GeomFromWkt => "ST_GeomFromWKT(wkt [, srid])",
            Idiom::GeomFromWkb => "ST_GeomFromWKB(wkb [, srid])",
            Idiom::GeomFromEwkt => "ST_GeomFromEWKT(ewkt)",
            Idiom::MakeEnvelope => "ST_MakeEnvelope(xmin, ymin, xmax, ymax [, srid])",
        }
    }

    /// Index of the argument holding the SRID or CRS, if the call has one.
    fn crs_argument(self, n_args: usize) -> Option<usize> {
        match self {
            Idiom::SetSrid | Idiom::SetCrs => Some(1),
            Idiom::GeomFromText | Idiom::GeomFromWkt | Idiom::GeomFromWkb => (n_args == 2).then_some(1),
            Idiom::GeomFromEwkt => Some(0),
            Idiom::MakeEnvelope => (n_args == 5).then_some(4),
        }
    }
}

/// A SedonaDB CRS idiom as a DataFusion scalar function.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct CrsIdiom {
    idiom: Idiom,
    signature: Signature,
}

const TEXT: [DataType; 3] = [DataType::Utf8, DataType::Utf8View, DataType::LargeUtf8];
const BYTES: [DataType; 3] = [DataType::Binary, DataType::BinaryView, DataType::LargeBinary];
const INTEGERS: [DataType; 8] = [
    DataType::Int8,
    DataType::Int16,
    DataType::Int32,
    DataType::Int64,
    DataType::UInt8,
    DataType::UInt16,
    DataType::UInt32,
    DataType::UInt64,
];

fn exact(first: &[DataType], second: &[DataType]) -> Vec<TypeSignature> {
    first
        .iter()
        .flat_map(|a| second.iter().map(move |b| TypeSignature::Exact(vec![a.clone(), b.clone()])))
        .collect()
}

impl CrsIdiom {
    pub fn new(idiom: Idiom) -> Self {
        let one = |types: &[DataType]| types.iter().map(|t| TypeSignature::Exact(vec![t.clone()])).collect();
        let variants: Vec<TypeSignature> = match idiom {
            Idiom::SetSrid => exact(&BYTES, &INTEGERS),
            Idiom::SetCrs => exact(&BYTES, &TEXT),
            Idiom::GeomFromText | Idiom::GeomFromWkt => [one(&TEXT), exact(&TEXT, &INTEGERS)].concat(),
            Idiom::GeomFromWkb => [one(&BYTES), exact(&BYTES, &INTEGERS)].concat(),
            Idiom::GeomFromEwkt => one(&TEXT),
            // Numbers of any type: see `coerce_types`.
            Idiom::MakeEnvelope => {
                return Self { idiom, signature: Signature::user_defined(Volatility::Immutable) };
            }
        };
        Self { idiom, signature: Signature::one_of(variants, Volatility::Immutable) }
    }
}

/// The CRS SedonaDB gives an SRID.
pub fn crs_of_srid(srid: i64) -> Crs {
    match srid {
        0 => Crs::Unknown,
        4326 => Crs::Code("OGC:CRS84".into()),
        n => Crs::Code(format!("EPSG:{n}")),
    }
}

fn integer_of(v: &ScalarValue) -> Option<i64> {
    match v {
        ScalarValue::Int8(Some(x)) => Some(i64::from(*x)),
        ScalarValue::Int16(Some(x)) => Some(i64::from(*x)),
        ScalarValue::Int32(Some(x)) => Some(i64::from(*x)),
        ScalarValue::Int64(Some(x)) => Some(*x),
        ScalarValue::UInt8(Some(x)) => Some(i64::from(*x)),
        ScalarValue::UInt16(Some(x)) => Some(i64::from(*x)),
        ScalarValue::UInt32(Some(x)) => Some(i64::from(*x)),
        ScalarValue::UInt64(Some(x)) => i64::try_from(*x).ok(),
        _ => None,
    }
}

fn text_of(v: &ScalarValue) -> Option<&str> {
    match v {
        ScalarValue::Utf8(Some(s)) | ScalarValue::Utf8View(Some(s)) | ScalarValue::LargeUtf8(Some(s)) => {
            Some(s)
        }
        _ => None,
    }
}

/// `SRID=n;WKT` → (n, WKT); plain WKT → (0, WKT).
fn split_ewkt(text: &str) -> Result<(i64, &str), String> {
    let trimmed = text.trim_start();
    if !trimmed.get(..5).is_some_and(|p| p.eq_ignore_ascii_case("SRID=")) {
        return Ok((0, trimmed));
    }
    let rest = &trimmed[5..];
    let (srid, wkt) =
        rest.split_once(';').ok_or_else(|| format!("invalid EWKT '{text:.60}': no ';' after SRID"))?;
    let srid = srid
        .trim()
        .parse::<i64>()
        .map_err(|_| format!("invalid EWKT '{text:.60}': SRID is not an integer"))?;
    Ok((srid, wkt))
}

fn texts(values: &ArrayRef) -> DFResult<Vec<Option<&str>>> {
    Ok(match values.data_type() {
        DataType::Utf8 => values.as_string::<i32>().iter().collect(),
        DataType::LargeUtf8 => values.as_string::<i64>().iter().collect(),
        DataType::Utf8View => values.as_string_view().iter().collect(),
        other => return exec_err!("expected text, got {other}"),
    })
}

fn bytes(values: &ArrayRef) -> DFResult<Vec<Option<&[u8]>>> {
    Ok(match values.data_type() {
        DataType::Binary => values.as_binary::<i32>().iter().collect(),
        DataType::LargeBinary => values.as_binary::<i64>().iter().collect(),
        DataType::BinaryView => values.as_binary_view().iter().collect(),
        other => return exec_err!("expected bytes, got {other}"),
    })
}

/// The WKB of the polygon covering `[xmin, xmax] × [ymin, ymax]` (SedonaDB's ring order).
pub fn envelope_wkb(xmin: f64, ymin: f64, xmax: f64, ymax: f64) -> Vec<u8> {
    let ring = [(xmin, ymin), (xmin, ymax), (xmax, ymax), (xmax, ymin), (xmin, ymin)];
    let mut out = Vec::with_capacity(9 + 4 + ring.len() * 16);
    out.push(1u8);
    out.extend_from_slice(&3u32.to_le_bytes());
    out.extend_from_slice(&1u32.to_le_bytes());
    out.extend_from_slice(&(ring.len() as u32).to_le_bytes());
    for (x, y) in ring {
        out.extend_from_slice(&x.to_le_bytes());
        out.extend_from_slice(&y.to_le_bytes());
    }
    out
}

impl CrsIdiom {
    fn error<T>(&self, message: impl std::fmt::Display) -> DFResult<T> {
        exec_err!("{}: {message}", self.idiom.usage())
    }

    /// The values of one call over `arrays` (all of one length).
    fn values(&self, arrays: &[ArrayRef]) -> DFResult<BinaryArray> {
        let first = &arrays[0];
        match self.idiom {
            Idiom::SetSrid | Idiom::SetCrs => Ok(BinaryArray::from_iter(bytes(first)?)),
            Idiom::GeomFromWkb => {
                let items = bytes(first)?;
                for item in items.iter().flatten() {
                    if let Err(e) = validate_wkb(item) {
                        return self.error(e);
                    }
                }
                Ok(BinaryArray::from_iter(items))
            }
            Idiom::GeomFromText | Idiom::GeomFromWkt | Idiom::GeomFromEwkt => {
                let mut out = Vec::with_capacity(first.len());
                for text in texts(first)? {
                    let Some(text) = text else {
                        out.push(None);
                        continue;
                    };
                    let wkt = if self.idiom == Idiom::GeomFromEwkt {
                        match split_ewkt(text) {
                            Ok((_, wkt)) => wkt,
                            Err(e) => return self.error(e),
                        }
                    } else {
                        text
                    };
                    let mut wkb = Vec::new();
                    if let Err(e) = wkt_to_wkb(wkt, &mut wkb) {
                        return self.error(e);
                    }
                    out.push(Some(wkb));
                }
                Ok(BinaryArray::from_iter(out))
            }
            Idiom::MakeEnvelope => {
                let coords: Vec<&Float64Array> = arrays[..4]
                    .iter()
                    .map(|a| a.as_primitive_opt::<arrow_array::types::Float64Type>())
                    .collect::<Option<_>>()
                    .ok_or_else(|| {
                        datafusion_common::DataFusionError::Execution("coordinates must be numbers".into())
                    })?;
                Ok((0..first.len())
                    .map(|i| {
                        (coords.iter().all(|c| c.is_valid(i))).then(|| {
                            envelope_wkb(
                                coords[0].value(i),
                                coords[1].value(i),
                                coords[2].value(i),
                                coords[3].value(i),
                            )
                        })
                    })
                    .collect())
            }
        }
    }
}

impl ScalarUDFImpl for CrsIdiom {
    fn name(&self) -> &str {
        self.idiom.name()
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> DFResult<DataType> {
        Ok(DataType::Binary)
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> DFResult<Vec<DataType>> {
        // Only ST_MakeEnvelope has a user-defined signature.
        if !matches!(arg_types.len(), 4 | 5) {
            return plan_err!("{} takes 4 or 5 arguments, got {}", self.idiom.usage(), arg_types.len());
        }
        if let Some(bad) = arg_types.iter().find(|t| !t.is_numeric() && !t.is_null()) {
            return plan_err!("{}: arguments must be numbers, got {bad}", self.idiom.usage());
        }
        let mut out = vec![DataType::Float64; 4];
        if arg_types.len() == 5 {
            out.push(DataType::Int64);
        }
        Ok(out)
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> DFResult<FieldRef> {
        let usage = self.idiom.usage();
        let crs = match self.idiom.crs_argument(args.arg_fields.len()) {
            // No SRID: the input geometry's own CRS for the geometry-taking
            // idioms is replaced anyway; constructors have none.
            None => Crs::Unknown,
            Some(i) => match args.scalar_arguments.get(i).copied().flatten() {
                None => {
                    return plan_err!(
                        "{usage}: the {} must be a constant on this host (the CRS is part of the result's \
                         type); a CRS that varies by row is not supported here, and SedonaDB's spatial \
                         predicates reject it too",
                        if self.idiom == Idiom::GeomFromEwkt { "EWKT" } else { "SRID or CRS" }
                    )
                }
                Some(v) if v.is_null() => Crs::Unknown,
                Some(v) => match self.idiom {
                    Idiom::SetCrs => match text_of(v) {
                        Some(s) if s.trim().is_empty() || s.eq_ignore_ascii_case("0") => Crs::Unknown,
                        Some(s) => Crs::from_user(s),
                        None => return plan_err!("{usage}: the CRS must be a string"),
                    },
                    Idiom::GeomFromEwkt => {
                        let Some(text) = text_of(v) else {
                            return plan_err!("{usage}: the EWKT must be a string");
                        };
                        match split_ewkt(text) {
                            Ok((srid, _)) => crs_of_srid(srid),
                            Err(e) => return plan_err!("{usage}: {e}"),
                        }
                    }
                    _ => match integer_of(v) {
                        Some(srid) => crs_of_srid(srid),
                        None => return plan_err!("{usage}: the SRID must be an integer, got {v}"),
                    },
                },
            },
        };
        Ok(Arc::new(
            Field::new(self.name(), DataType::Binary, true).with_metadata(geoarrow_field_metadata(&crs)),
        ))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DFResult<ColumnarValue> {
        let n = args.number_rows;
        let all_scalar = args.args.iter().all(|a| matches!(a, ColumnarValue::Scalar(_)));
        let arrays: Vec<ArrayRef> =
            args.args.iter().map(|a| a.to_array(if all_scalar { 1 } else { n })).collect::<DFResult<_>>()?;
        if arrays.is_empty() {
            return self.error("missing arguments");
        }
        let values = self.values(&arrays)?;
        if all_scalar {
            let value = (!values.is_null(0)).then(|| values.value(0).to_vec());
            return Ok(ColumnarValue::Scalar(ScalarValue::Binary(value)));
        }
        Ok(ColumnarValue::Array(Arc::new(values)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(idiom: Idiom, types: &[DataType], scalars: &[Option<ScalarValue>]) -> DFResult<FieldRef> {
        let fields: Vec<FieldRef> =
            types.iter().map(|t| Arc::new(Field::new("a", t.clone(), true))).collect();
        let refs: Vec<Option<&ScalarValue>> = scalars.iter().map(Option::as_ref).collect();
        CrsIdiom::new(idiom)
            .return_field_from_args(ReturnFieldArgs { arg_fields: &fields, scalar_arguments: &refs })
    }

    fn crs_meta(f: &FieldRef) -> &str {
        &f.metadata()["ARROW:extension:metadata"]
    }

    #[test]
    fn srids_map_as_sedonadb_maps_them() {
        let b = DataType::Binary;
        let f = field(
            Idiom::SetSrid,
            &[b.clone(), DataType::Int64],
            &[None, Some(ScalarValue::Int64(Some(4326)))],
        );
        assert_eq!(crs_meta(&f.unwrap()), r#"{"crs":"OGC:CRS84"}"#);
        let f = field(
            Idiom::SetSrid,
            &[b.clone(), DataType::Int64],
            &[None, Some(ScalarValue::Int64(Some(3857)))],
        );
        assert_eq!(crs_meta(&f.unwrap()), r#"{"crs":"EPSG:3857"}"#);
        let f =
            field(Idiom::SetSrid, &[b.clone(), DataType::Int64], &[None, Some(ScalarValue::Int64(Some(0)))]);
        assert_eq!(crs_meta(&f.unwrap()), "{}");
        let f = field(Idiom::GeomFromText, &[DataType::Utf8], &[None]);
        assert_eq!(crs_meta(&f.unwrap()), "{}");
        let ewkt = ScalarValue::Utf8(Some("SRID=32633;POINT(1 2)".into()));
        let f = field(Idiom::GeomFromEwkt, &[DataType::Utf8], &[Some(ewkt)]);
        assert_eq!(crs_meta(&f.unwrap()), r#"{"crs":"EPSG:32633"}"#);
        let e = field(Idiom::SetSrid, &[b, DataType::Int64], &[None, None]).unwrap_err().to_string();
        assert!(e.contains("must be a constant"), "{e}");
    }

    #[test]
    fn values() {
        assert_eq!(split_ewkt("srid=4326;POINT(1 2)").unwrap(), (4326, "POINT(1 2)"));
        assert_eq!(split_ewkt("POINT(1 2)").unwrap(), (0, "POINT(1 2)"));
        assert!(split_ewkt("SRID=x;POINT(1 2)").is_err());
        let env = envelope_wkb(0.0, 1.0, 2.0, 3.0);
        assert!(validate_wkb(&env).is_ok());
        let f = CrsIdiom::new(Idiom::GeomFromText);
        let texts: ArrayRef = Arc::new(arrow_array::StringArray::from(vec![Some("POINT(1 2)"), None]));
        let out = f.values(&[texts]).unwrap();
        assert_eq!(out.value(0).len(), 21);
        assert!(out.is_null(1));
    }
}

/// A SedonaDB function that cannot work through datafusion-ffi 54, registered
/// under its name so a call fails at planning with the reason instead of an
/// internal error from inside SedonaDB.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct Unavailable {
    name: &'static str,
    reason: &'static str,
    signature: Signature,
}

impl Unavailable {
    /// The functions this host cannot offer, with why.
    pub const FUNCTIONS: [(&'static str, &'static str); 1] = [(
        "st_transform",
        "SedonaDB's ST_Transform cannot see its constant target CRS across datafusion-ffi 54 \
         (it answers with a per-row CRS that its own functions reject); transform in SedonaDB \
         (sedonadb.connect()), which runs the same SQL",
    )];

    pub fn new(name: &str) -> Option<Self> {
        Self::FUNCTIONS.iter().find(|(n, _)| *n == name).map(|(name, reason)| Self {
            name,
            reason,
            signature: Signature::variadic_any(Volatility::Immutable),
        })
    }
}

impl ScalarUDFImpl for Unavailable {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> DFResult<DataType> {
        plan_err!("{} is not available on datafusion-python: {}", self.name, self.reason)
    }

    fn return_field_from_args(&self, _args: ReturnFieldArgs) -> DFResult<FieldRef> {
        plan_err!("{} is not available on datafusion-python: {}", self.name, self.reason)
    }

    fn invoke_with_args(&self, _args: ScalarFunctionArgs) -> DFResult<ColumnarValue> {
        exec_err!("{} is not available on datafusion-python: {}", self.name, self.reason)
    }
}
