//! Decoded Zarr element bytes to Arrow arrays, one column kind at a time.
//!
//! Fixed-size numbers are handed to Arrow without a per-element copy when the
//! buffer is suitably aligned; variable-length strings and bytes arrive from
//! zarrs as one values buffer plus offsets and become Arrow arrays directly.

use std::sync::Arc;

use arrow_array::types::Int64Type;
use arrow_array::{
    make_array, Array, ArrayRef, ArrowPrimitiveType, BinaryArray, BooleanArray, Float32Array, PrimitiveArray,
    StringArray,
};
use arrow_buffer::{ArrowNativeType, Buffer, NullBuffer, OffsetBuffer, ScalarBuffer};
use arrow_schema::DataType;

use crate::geometry::{validate_wkb, wkt_to_wkb, GeometryEncoding};
use crate::metadata::temporal::TimeConversion;
use crate::metadata::{ColumnKind, Storage};

/// Element bytes of a run of rows as zarrs decoded them.
pub enum Elements {
    Fixed(Vec<u8>),
    /// Values and Arrow's `rows + 1` offsets into them.
    Variable {
        bytes: Vec<u8>,
        offsets: Vec<i32>,
    },
}

/// Convert decoded elements to an Arrow array of `kind`. Errors are plain
/// messages; the caller adds store and array names.
pub fn to_arrow(kind: &ColumnKind, elements: Elements, rows: usize) -> Result<ArrayRef, String> {
    match (kind, elements) {
        (ColumnKind::Primitive(dt), Elements::Fixed(raw)) => primitive(dt, raw, rows),
        (ColumnKind::Float16, Elements::Fixed(raw)) => {
            check_len(&raw, 2, rows)?;
            let values: Vec<f32> =
                raw.chunks_exact(2).map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32()).collect();
            Ok(Arc::new(Float32Array::from(values)))
        }
        (ColumnKind::Timestamp(conv), Elements::Fixed(raw)) => temporal(conv, raw, rows, false),
        (ColumnKind::Duration(conv), Elements::Fixed(raw)) => temporal(conv, raw, rows, true),
        (ColumnKind::Utf8(storage), elements) => {
            let (bytes, offsets) = variable_parts(*storage, elements, rows)?;
            let offsets = arrow_offsets(offsets, bytes.len())?;
            StringArray::try_new(offsets, Buffer::from_vec(bytes), None)
                .map(|a| Arc::new(a) as ArrayRef)
                .map_err(|e| format!("invalid UTF-8 text: {e}"))
        }
        (ColumnKind::Binary(storage), elements) => {
            let (bytes, offsets) = variable_parts(*storage, elements, rows)?;
            let offsets = arrow_offsets(offsets, bytes.len())?;
            Ok(Arc::new(BinaryArray::new(offsets, Buffer::from_vec(bytes), None)))
        }
        (ColumnKind::Geometry(storage, GeometryEncoding::Wkb), elements) => {
            let (bytes, offsets) = variable_parts(*storage, elements, rows)?;
            wkb_geometry(bytes, offsets)
        }
        (ColumnKind::Geometry(storage, encoding), elements) => {
            let (bytes, offsets) = variable_parts(*storage, elements, rows)?;
            geometry(*encoding, &bytes, &offsets)
        }
        (kind, _) => Err(format!("internal: unexpected element layout for {kind:?}")),
    }
}

fn check_len(raw: &[u8], width: usize, rows: usize) -> Result<(), String> {
    if raw.len() != width * rows {
        return Err(format!("decoded {} bytes for {rows} elements of {width} bytes", raw.len()));
    }
    Ok(())
}

/// Reinterpret native-endian element bytes as a typed buffer, copying only if
/// the allocation is not aligned for `T`.
fn scalar_buffer<T: ArrowNativeType>(raw: Vec<u8>, rows: usize) -> Result<ScalarBuffer<T>, String> {
    check_len(&raw, std::mem::size_of::<T>(), rows)?;
    let aligned = raw.as_ptr().align_offset(std::mem::align_of::<T>()) == 0;
    let buffer = if aligned { Buffer::from_vec(raw) } else { Buffer::from_slice_ref(&raw) };
    Ok(ScalarBuffer::new(buffer, 0, rows))
}

fn primitive_array<T: ArrowPrimitiveType>(raw: Vec<u8>, rows: usize) -> Result<ArrayRef, String> {
    let values = scalar_buffer::<T::Native>(raw, rows)?;
    Ok(Arc::new(PrimitiveArray::<T>::new(values, None)))
}

fn primitive(dt: &DataType, raw: Vec<u8>, rows: usize) -> Result<ArrayRef, String> {
    use arrow_array::types::*;
    match dt {
        DataType::Boolean => {
            check_len(&raw, 1, rows)?;
            Ok(Arc::new(BooleanArray::from_iter(raw.iter().map(|b| Some(*b != 0)))))
        }
        DataType::Int8 => primitive_array::<Int8Type>(raw, rows),
        DataType::Int16 => primitive_array::<Int16Type>(raw, rows),
        DataType::Int32 => primitive_array::<Int32Type>(raw, rows),
        DataType::Int64 => primitive_array::<Int64Type>(raw, rows),
        DataType::UInt8 => primitive_array::<UInt8Type>(raw, rows),
        DataType::UInt16 => primitive_array::<UInt16Type>(raw, rows),
        DataType::UInt32 => primitive_array::<UInt32Type>(raw, rows),
        DataType::UInt64 => primitive_array::<UInt64Type>(raw, rows),
        DataType::Float32 => primitive_array::<Float32Type>(raw, rows),
        DataType::Float64 => primitive_array::<Float64Type>(raw, rows),
        other => Err(format!("internal: {other} is not a primitive column type")),
    }
}

fn temporal(conv: &TimeConversion, raw: Vec<u8>, rows: usize, duration: bool) -> Result<ArrayRef, String> {
    let stored = scalar_buffer::<i64>(raw, rows)?;
    let has_nat = stored.contains(&crate::metadata::temporal::NAT);
    let (values, nulls) = if conv.is_identity() {
        let nulls = has_nat
            .then(|| NullBuffer::from_iter(stored.iter().map(|v| *v != crate::metadata::temporal::NAT)));
        (stored, nulls)
    } else {
        let mut out = Vec::with_capacity(rows);
        let mut valid = Vec::with_capacity(if has_nat { rows } else { 0 });
        for v in stored.iter() {
            let converted = conv
                .convert(*v)
                .map_err(|_| format!("time value {v} is out of range for {:?}", conv.unit))?;
            out.push(converted.unwrap_or_default());
            if has_nat {
                valid.push(converted.is_some());
            }
        }
        (ScalarBuffer::from(out), has_nat.then(|| NullBuffer::from(valid)))
    };
    // Timestamps and durations of every unit are i64 values: build one and retype it.
    let data_type =
        if duration { DataType::Duration(conv.unit) } else { DataType::Timestamp(conv.unit, None) };
    let data = PrimitiveArray::<Int64Type>::new(values, nulls)
        .into_data()
        .into_builder()
        .data_type(data_type)
        .build()
        .map_err(|e| format!("internal: {e}"))?;
    Ok(make_array(data))
}

/// Text/bytes elements as one values buffer plus `rows + 1` offsets.
fn variable_parts(storage: Storage, elements: Elements, rows: usize) -> Result<(Vec<u8>, Vec<i32>), String> {
    match (storage, elements) {
        (Storage::Variable, Elements::Variable { bytes, offsets }) => {
            if offsets.len() != rows + 1 {
                return Err(format!("decoded {} offsets for {rows} elements", offsets.len()));
            }
            Ok((bytes, offsets))
        }
        (Storage::FixedBytes { length_bytes }, Elements::Fixed(raw)) => {
            check_len(&raw, length_bytes, rows)?;
            // The values are at most `raw`'s bytes: every offset fits once that does.
            offsets_fit(raw.len())?;
            let mut offsets = Vec::with_capacity(rows + 1);
            let mut bytes = Vec::with_capacity(raw.len());
            offsets.push(0);
            for item in raw.chunks_exact(length_bytes.max(1)) {
                let end = item.iter().rposition(|b| *b != 0).map_or(0, |p| p + 1);
                bytes.extend_from_slice(&item[..end]);
                offsets.push(bytes.len() as i32);
            }
            Ok((bytes, offsets))
        }
        (Storage::FixedUtf32 { length_bytes }, Elements::Fixed(raw)) => {
            check_len(&raw, length_bytes, rows)?;
            // UTF-8 takes at most the 4 bytes of each UTF-32 code unit.
            offsets_fit(raw.len())?;
            let mut offsets = Vec::with_capacity(rows + 1);
            let mut bytes = Vec::with_capacity(raw.len() / 4);
            offsets.push(0);
            for item in raw.chunks_exact(length_bytes.max(4)) {
                for unit in item.chunks_exact(4) {
                    let code = u32::from_le_bytes([unit[0], unit[1], unit[2], unit[3]]);
                    if code == 0 {
                        break;
                    }
                    let c =
                        char::from_u32(code).ok_or_else(|| format!("invalid UTF-32 code unit {code:#x}"))?;
                    let mut buf = [0u8; 4];
                    bytes.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                }
                offsets.push(bytes.len() as i32);
            }
            Ok((bytes, offsets))
        }
        (storage, _) => Err(format!("internal: unexpected element layout for {storage:?}")),
    }
}

/// The error of text/bytes beyond what Arrow's 32-bit offsets address.
pub const TOO_LARGE: &str = "more than 2 GiB of text/bytes in one batch; use a smaller batch_size";

/// Whether values of up to `len` bytes are addressed by Arrow's 32-bit offsets.
pub fn offsets_fit(len: usize) -> Result<(), String> {
    i32::try_from(len).map(|_| ()).map_err(|_| TOO_LARGE.to_string())
}

/// Offsets from zarrs (`usize`) as Arrow's 32-bit offsets.
pub fn i32_offsets(offsets: impl ExactSizeIterator<Item = usize>) -> Result<Vec<i32>, String> {
    offsets.map(|o| i32::try_from(o).map_err(|_| TOO_LARGE.to_string())).collect()
}

/// `offsets` as an Arrow offset buffer over `len` bytes of values, without
/// a copy, once checked: at least one, starting at 0 or more, never
/// decreasing, ending within the values.
fn arrow_offsets(offsets: Vec<i32>, len: usize) -> Result<OffsetBuffer<i32>, String> {
    let (Some(first), Some(last)) = (offsets.first(), offsets.last()) else {
        return Err("no element offsets".into());
    };
    if *first < 0 || offsets.windows(2).any(|w| w[0] > w[1]) {
        return Err("element offsets are not increasing".into());
    }
    if *last as usize > len {
        return Err("element offsets out of bounds".into());
    }
    Ok(OffsetBuffer::new(ScalarBuffer::from(offsets)))
}

/// WKB values validated in parallel and handed to Arrow without a copy;
/// empty elements are null.
fn wkb_geometry(bytes: Vec<u8>, offsets: Vec<i32>) -> Result<ArrayRef, String> {
    use rayon::prelude::*;
    let offsets = arrow_offsets(offsets, bytes.len())?;
    let rows = offsets.len() - 1;
    const PER_TASK: usize = 16_384;
    let first_error = (0..rows.div_ceil(PER_TASK))
        .into_par_iter()
        .map(|task| {
            let (lo, hi) = (task * PER_TASK, ((task + 1) * PER_TASK).min(rows));
            for row in lo..hi {
                // Checked above: increasing and within the values.
                let (a, b) = (offsets[row] as usize, offsets[row + 1] as usize);
                if a < b {
                    if let Err(e) = validate_wkb(&bytes[a..b]) {
                        return Some(format!("row {row}: {e}"));
                    }
                }
            }
            None
        })
        .find_first(|e| e.is_some())
        .flatten();
    if let Some(e) = first_error {
        return Err(e);
    }
    let nulls = offsets
        .windows(2)
        .any(|w| w[0] == w[1])
        .then(|| NullBuffer::from_iter(offsets.windows(2).map(|w| w[0] < w[1])));
    Ok(Arc::new(BinaryArray::new(offsets, Buffer::from_vec(bytes), nulls)))
}

/// WKT per row converted to WKB; empty elements are null.
fn geometry(encoding: GeometryEncoding, bytes: &[u8], offsets: &[i32]) -> Result<ArrayRef, String> {
    let rows = offsets.len().saturating_sub(1);
    let mut out_offsets = Vec::with_capacity(rows + 1);
    let mut valid = Vec::with_capacity(rows);
    out_offsets.push(0i32);
    let mut out: Vec<u8> = Vec::with_capacity(match encoding {
        GeometryEncoding::Wkb => bytes.len(),
        GeometryEncoding::Wkt => bytes.len() / 2,
    });
    for (row, w) in offsets.windows(2).enumerate() {
        let (a, b) = (usize::try_from(w[0]), usize::try_from(w[1]));
        let item = a
            .ok()
            .zip(b.ok())
            .and_then(|(a, b)| bytes.get(a..b))
            .ok_or_else(|| "element offsets out of bounds".to_string())?;
        if item.is_empty() {
            valid.push(false);
        } else {
            match encoding {
                GeometryEncoding::Wkb => {
                    validate_wkb(item).map_err(|e| format!("row {row}: {e}"))?;
                    out.extend_from_slice(item);
                }
                GeometryEncoding::Wkt => {
                    let text = std::str::from_utf8(item)
                        .map_err(|e| format!("row {row}: invalid UTF-8 in WKT: {e}"))?;
                    if text.trim().is_empty() {
                        valid.push(false);
                        out_offsets.push(out_offsets[out_offsets.len() - 1]);
                        continue;
                    }
                    wkt_to_wkb(text, &mut out).map_err(|e| format!("row {row}: {e}"))?;
                }
            }
            valid.push(true);
        }
        let end = i32::try_from(out.len()).map_err(|_| TOO_LARGE.to_string())?;
        out_offsets.push(end);
    }
    let nulls = valid.iter().any(|v| !v).then(|| NullBuffer::from(valid));
    Ok(Arc::new(BinaryArray::new(
        OffsetBuffer::new(ScalarBuffer::from(out_offsets)),
        Buffer::from_vec(out),
        nulls,
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::temporal::{NumpyUnit, NAT};
    use arrow_array::cast::AsArray;
    use arrow_array::Array;

    #[test]
    fn primitives_and_half_floats() {
        let raw: Vec<u8> = [1i32, -2, 3].iter().flat_map(|v| v.to_ne_bytes()).collect();
        let a = to_arrow(&ColumnKind::Primitive(DataType::Int32), Elements::Fixed(raw), 3).unwrap();
        assert_eq!(a.as_primitive::<arrow_array::types::Int32Type>().values(), &[1, -2, 3]);
        let raw: Vec<u8> = [half::f16::from_f32(1.5), half::f16::from_f32(-2.0)]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let a = to_arrow(&ColumnKind::Float16, Elements::Fixed(raw), 2).unwrap();
        assert_eq!(a.as_primitive::<arrow_array::types::Float32Type>().values(), &[1.5, -2.0]);
        assert!(to_arrow(&ColumnKind::Primitive(DataType::Int32), Elements::Fixed(vec![0; 5]), 2).is_err());
    }

    #[test]
    fn nat_is_null() {
        let conv = TimeConversion::new(NumpyUnit::Day, 1, true).unwrap();
        let raw: Vec<u8> = [1i64, NAT].iter().flat_map(|v| v.to_ne_bytes()).collect();
        let a = to_arrow(&ColumnKind::Timestamp(conv), Elements::Fixed(raw), 2).unwrap();
        assert_eq!(a.data_type(), &DataType::Timestamp(arrow_schema::TimeUnit::Second, None));
        assert!(a.is_valid(0) && a.is_null(1));
        assert_eq!(a.as_primitive::<arrow_array::types::TimestampSecondType>().value(0), 86_400);
    }

    #[test]
    fn fixed_width_text_and_bytes() {
        let mut raw = Vec::new();
        for s in ["ab", "", "wxyz"] {
            let mut units: Vec<u32> = s.chars().map(|c| c as u32).collect();
            units.resize(4, 0);
            raw.extend(units.iter().flat_map(|u| u.to_le_bytes()));
        }
        let a =
            to_arrow(&ColumnKind::Utf8(Storage::FixedUtf32 { length_bytes: 16 }), Elements::Fixed(raw), 3)
                .unwrap();
        let s = a.as_string::<i32>();
        assert_eq!((s.value(0), s.value(1), s.value(2)), ("ab", "", "wxyz"));
        let raw = b"ab\0\0xyz\0".to_vec();
        let a =
            to_arrow(&ColumnKind::Binary(Storage::FixedBytes { length_bytes: 4 }), Elements::Fixed(raw), 2)
                .unwrap();
        assert_eq!(a.as_binary::<i32>().value(1), b"xyz");
    }

    #[test]
    fn offsets_are_checked_before_arrow_sees_them() {
        let binary = ColumnKind::Binary(Storage::Variable);
        let wkb = ColumnKind::Geometry(Storage::Variable, GeometryEncoding::Wkb);
        for kind in [&binary, &wkb] {
            for (offsets, message) in [
                (vec![-1, 2], "not increasing"),
                (vec![0, 3, 2], "not increasing"),
                (vec![0, 5], "out of bounds"),
            ] {
                let rows = offsets.len() - 1;
                let elements = Elements::Variable { bytes: b"abcd".to_vec(), offsets };
                let e = to_arrow(kind, elements, rows).unwrap_err();
                assert!(e.contains(message), "{kind:?}: {e}");
            }
        }
        let elements = Elements::Variable { bytes: b"abcd".to_vec(), offsets: vec![0, 1, 4] };
        let a = to_arrow(&binary, elements, 2).unwrap();
        assert_eq!((a.as_binary::<i32>().value(0), a.as_binary::<i32>().value(1)), (&b"a"[..], &b"bcd"[..]));
    }

    #[test]
    fn wkt_geometry_becomes_wkb_and_empty_is_null() {
        let text = "POINT (1 2)";
        let end = text.len() as i32;
        let elements = Elements::Variable { bytes: text.as_bytes().to_vec(), offsets: vec![0, end, end] };
        let a =
            to_arrow(&ColumnKind::Geometry(Storage::Variable, GeometryEncoding::Wkt), elements, 2).unwrap();
        let b = a.as_binary::<i32>();
        assert_eq!(b.value(0).len(), 21);
        assert!(b.is_null(1));
        let elements = Elements::Variable { bytes: b"nope".to_vec(), offsets: vec![0, 4] };
        let e = to_arrow(&ColumnKind::Geometry(Storage::Variable, GeometryEncoding::Wkb), elements, 1)
            .unwrap_err();
        assert!(e.contains("row 0: invalid WKB"), "{e}");
    }
}
