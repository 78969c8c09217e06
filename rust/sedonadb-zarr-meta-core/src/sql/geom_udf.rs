//! `sd_geomfromtext(wkt [, crs])` and `sd_geomfromwkb(wkb [, crs])`:
//! geometry (literals or columns) with a CRS, for hosts
//! whose own CRS-setting functions cannot see constant arguments (SedonaDB's
//! `ST_SetSRID` across datafusion-ffi 54 receives its SRID as an array and
//! answers with a per-row CRS that `ST_Intersects` rejects).
//!
//! The CRS is part of the return field (GeoArrow `geoarrow.wkb` metadata), so
//! it must be a constant; the default is `OGC:CRS84`, the CRS of `meta`
//! geometry without `proj:*` attributes.

use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::{Array, ArrayRef, BinaryArray};
use arrow_schema::{DataType, Field, FieldRef};
use datafusion_common::{exec_err, plan_err, Result as DFResult, ScalarValue};
use datafusion_expr::{
    ColumnarValue, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDFImpl, Signature, TypeSignature, Volatility,
};

use crate::geometry::{geoarrow_field_metadata, wkt_to_wkb, Crs, DEFAULT_CRS};

/// Name of the WKT function in SQL.
pub const GEOM_FROM_TEXT: &str = "sd_geomfromtext";
/// Name of the WKB function in SQL.
pub const GEOM_FROM_WKB: &str = "sd_geomfromwkb";

/// What the first argument holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Input {
    Wkt,
    Wkb,
}

/// See the module documentation.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct GeomFrom {
    input: Input,
    signature: Signature,
}

impl GeomFrom {
    pub fn new(input: Input) -> Self {
        let text = [DataType::Utf8, DataType::Utf8View, DataType::LargeUtf8];
        let first: Vec<DataType> = match input {
            Input::Wkt => text.to_vec(),
            Input::Wkb => vec![DataType::Binary, DataType::BinaryView, DataType::LargeBinary],
        };
        let mut variants = Vec::new();
        for a in &first {
            variants.push(TypeSignature::Exact(vec![a.clone()]));
            for b in &text {
                variants.push(TypeSignature::Exact(vec![a.clone(), b.clone()]));
            }
        }
        Self { input, signature: Signature::one_of(variants, Volatility::Immutable) }
    }
}

fn string_of(v: &ScalarValue) -> Option<&str> {
    match v {
        ScalarValue::Utf8(Some(s)) | ScalarValue::Utf8View(Some(s)) | ScalarValue::LargeUtf8(Some(s)) => {
            Some(s)
        }
        _ => None,
    }
}

fn checked_wkb(values: &ArrayRef) -> DFResult<BinaryArray> {
    let items: Vec<Option<&[u8]>> = match values.data_type() {
        DataType::Binary => values.as_binary::<i32>().iter().collect(),
        DataType::LargeBinary => values.as_binary::<i64>().iter().collect(),
        DataType::BinaryView => values.as_binary_view().iter().collect(),
        other => return exec_err!("{GEOM_FROM_WKB}: expected bytes, got {other}"),
    };
    for item in items.iter().flatten() {
        if let Err(e) = crate::geometry::validate_wkb(item) {
            return exec_err!("{GEOM_FROM_WKB}: {e}");
        }
    }
    Ok(BinaryArray::from_iter(items))
}

fn wkb_of_texts(texts: &ArrayRef) -> DFResult<BinaryArray> {
    let values: Vec<Option<&str>> = match texts.data_type() {
        DataType::Utf8 => texts.as_string::<i32>().iter().collect(),
        DataType::LargeUtf8 => texts.as_string::<i64>().iter().collect(),
        DataType::Utf8View => texts.as_string_view().iter().collect(),
        other => return exec_err!("{GEOM_FROM_TEXT}: expected text, got {other}"),
    };
    let mut out = Vec::with_capacity(values.len());
    for text in values {
        out.push(match text {
            None => None,
            Some(t) => {
                let mut wkb = Vec::new();
                if let Err(e) = wkt_to_wkb(t, &mut wkb) {
                    return exec_err!("{GEOM_FROM_TEXT}: {e}");
                }
                Some(wkb)
            }
        });
    }
    Ok(BinaryArray::from_iter(out))
}

impl GeomFrom {
    fn convert(&self, values: &ArrayRef) -> DFResult<BinaryArray> {
        match self.input {
            Input::Wkt => wkb_of_texts(values),
            Input::Wkb => checked_wkb(values),
        }
    }
}

impl ScalarUDFImpl for GeomFrom {
    fn name(&self) -> &str {
        match self.input {
            Input::Wkt => GEOM_FROM_TEXT,
            Input::Wkb => GEOM_FROM_WKB,
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> DFResult<DataType> {
        Ok(DataType::Binary)
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> DFResult<FieldRef> {
        let crs = match args.scalar_arguments.get(1) {
            None => Crs::Code(DEFAULT_CRS.to_string()),
            Some(Some(v)) => match string_of(v) {
                Some(s) => Crs::from_user(s),
                None => return plan_err!("{}(geometry, crs): crs must be a non-NULL string", self.name()),
            },
            Some(None) => return plan_err!("{}(geometry, crs): crs must be a constant", self.name()),
        };
        Ok(Arc::new(
            Field::new(self.name(), DataType::Binary, true).with_metadata(geoarrow_field_metadata(&crs)),
        ))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DFResult<ColumnarValue> {
        let Some(first) = args.args.first() else {
            return exec_err!("{} needs a geometry argument", self.name());
        };
        match first {
            ColumnarValue::Array(a) => Ok(ColumnarValue::Array(Arc::new(self.convert(a)?))),
            ColumnarValue::Scalar(s) => {
                let wkb = self.convert(&s.to_array_of_size(1)?)?;
                let value = if wkb.is_null(0) { None } else { Some(wkb.value(0).to_vec()) };
                Ok(ColumnarValue::Scalar(ScalarValue::Binary(value)))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn return_field_carries_crs() {
        let f = GeomFrom::new(Input::Wkt);
        let text: FieldRef = Arc::new(Field::new("a", DataType::Utf8, true));
        let crs = ScalarValue::Utf8(Some("EPSG:32633".into()));
        let field = f
            .return_field_from_args(ReturnFieldArgs {
                arg_fields: &[text.clone(), text.clone()],
                scalar_arguments: &[None, Some(&crs)],
            })
            .unwrap();
        assert_eq!(field.metadata()["ARROW:extension:metadata"], r#"{"crs":"EPSG:32633"}"#);
        let default = f
            .return_field_from_args(ReturnFieldArgs { arg_fields: &[text], scalar_arguments: &[None] })
            .unwrap();
        assert_eq!(default.metadata()["ARROW:extension:metadata"], r#"{"crs":"OGC:CRS84"}"#);
    }

    #[test]
    fn converts_text_arrays() {
        let texts: ArrayRef = Arc::new(arrow_array::StringArray::from(vec![Some("POINT(1 2)"), None]));
        let wkb = wkb_of_texts(&texts).unwrap();
        assert_eq!(wkb.value(0).len(), 21);
        assert!(wkb.is_null(1));
        let bad: ArrayRef = Arc::new(arrow_array::StringArray::from(vec!["POINT(1"]));
        assert!(wkb_of_texts(&bad).is_err());
        let bytes: ArrayRef = Arc::new(arrow_array::BinaryArray::from_iter(vec![Some(wkb.value(0)), None]));
        assert_eq!(checked_wkb(&bytes).unwrap().value(0), wkb.value(0));
        let junk: ArrayRef = Arc::new(arrow_array::BinaryArray::from_iter_values([b"junk"]));
        assert!(checked_wkb(&junk).is_err());
    }
}
