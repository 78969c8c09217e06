//! Rows of one column as an Arrow array: its chunks decoded whole (zarrs,
//! or [`super::vlen`] for the common text layout), converted by
//! [`super::arrow`], with the column's validity array applied.

use std::ops::Range;

use arrow_array::{make_array, Array as _, ArrayRef, BooleanArray};
use arrow_buffer::NullBuffer;
use zarrs::array::ArrayBytes;

use crate::decode::arrow::{i32_offsets, offsets_fit, to_arrow, Elements};
use crate::error::{Result, ZarrMetaError};
use crate::metadata::MetaColumn;

impl MetaColumn {
    /// Decode rows `rows` of this column (which must lie in one chunk or be
    /// any range; zarrs stitches chunks together).
    pub fn read(&self, store: &str, rows: Range<u64>) -> Result<ArrayRef> {
        let err = |m: String| ZarrMetaError::array(store, &self.name, m);
        let n = (rows.end - rows.start) as usize;
        // Decoders index into data they decompressed; corrupt input must
        // surface as an error, never unwind into a host through FFI.
        let elements = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.elements(&rows)))
            .map_err(|_| {
                err(format!("rows {}..{}: chunk data is corrupt (decoder failed)", rows.start, rows.end))
            })?
            .map_err(|e| err(format!("cannot read rows {}..{}: {e}", rows.start, rows.end)))?;
        let values = to_arrow(&self.kind, elements, n)
            .map_err(|m| err(format!("rows {}..{}: {m}", rows.start, rows.end)))?;
        if values.len() != n {
            return Err(err(format!("rows {}..{}: decoded {} rows", rows.start, rows.end, values.len())));
        }
        match &self.validity {
            Some(validity) => with_validity(values, &validity.read(store, rows.clone())?)
                .map_err(|m| err(format!("rows {}..{}: {m}", rows.start, rows.end))),
            None => Ok(values),
        }
    }

    /// The element bytes of `rows`: the first rows of one chunk through
    /// [`crate::vlen`] where its layout allows, anything else from whole
    /// chunks decoded by zarrs.
    ///
    /// Chunks are always decoded whole, never partially: a whole chunk's
    /// decoding checks that it, and every inner chunk of a shard, holds
    /// exactly the bytes its shape says, where a partial decoder would read
    /// the first bytes of a longer one without complaint.
    pub(crate) fn elements(&self, rows: &Range<u64>) -> std::result::Result<Elements, String> {
        let chunk = self.chunk_of(rows.start);
        if self.direct_vlen
            && self.chunk_bounds[chunk] == rows.start
            && rows.end <= self.chunk_bounds[chunk + 1]
        {
            let key = self.array.chunk_key(&[chunk as u64]);
            let expected = self.array.chunk_shape(&[chunk as u64]).map_err(|e| e.to_string())?[0].get();
            // A missing chunk is the fill value, which zarrs makes below.
            if let Some(compressed) = self.array.storage().get(&key).map_err(|e| e.to_string())? {
                let keep = (rows.end - rows.start) as usize;
                let (bytes, offsets) =
                    crate::decode::vlen::decode_chunk(&compressed, expected as usize, keep)
                        .map_err(|e| format!("{key}: {e}"))?;
                return Ok(Elements::Variable { bytes, offsets });
            }
        }
        let mut parts = Vec::new();
        let mut at = rows.start;
        while at < rows.end {
            let chunk = self.chunk_of(at);
            let start = self.chunk_bounds[chunk];
            let end = rows.end.min(self.chunk_bounds[chunk + 1]);
            parts.push(self.chunk_part(chunk, (at - start) as usize..(end - start) as usize)?);
            at = end;
        }
        if parts.len() == 1 {
            return Ok(parts.pop().expect("one part"));
        }
        concat_elements(parts)
    }

    /// Elements `part` of chunk `chunk`, decoded whole.
    fn chunk_part(&self, chunk: usize, part: Range<usize>) -> std::result::Result<Elements, String> {
        let key = self.array.chunk_key(&[chunk as u64]);
        let shape = self.array.chunk_shape(&[chunk as u64]).map_err(|e| e.to_string())?[0].get();
        let decoded = self.array.retrieve_chunk::<ArrayBytes<'static>>(&[chunk as u64]).map_err(|e| {
            // Storage errors name the key already.
            let message = e.to_string();
            if message.contains(key.as_str()) {
                message
            } else {
                format!("{key}: {message}")
            }
        })?;
        match decoded {
            ArrayBytes::Fixed(raw) => {
                let size =
                    self.array.data_type().fixed_size().ok_or("internal: fixed bytes of a variable type")?;
                if raw.len() as u64 != shape.saturating_mul(size as u64) {
                    return Err(format!(
                        "{key}: the chunk decodes to {} bytes, not the {} of {shape} elements of {size} bytes",
                        raw.len(),
                        shape.saturating_mul(size as u64)
                    ));
                }
                let raw = raw.into_owned();
                if part.start == 0 && part.end * size == raw.len() {
                    return Ok(Elements::Fixed(raw));
                }
                Ok(Elements::Fixed(raw[part.start * size..part.end * size].to_vec()))
            }
            ArrayBytes::Variable(v) => {
                let (raw, offsets) = v.into_parts();
                if offsets.len() as u64 != shape + 1 {
                    return Err(format!(
                        "{key}: the chunk decodes to {} elements, not {shape}",
                        offsets.len() - 1
                    ));
                }
                let (first, last) = (offsets[part.start], offsets[part.end]);
                if first > last || last > raw.len() {
                    return Err(format!("{key}: element offsets out of bounds"));
                }
                let offsets = i32_offsets(offsets[part.start..=part.end].iter().map(|o| o - first))?;
                let bytes = if first == 0 && last == raw.len() {
                    raw.into_owned()
                } else {
                    raw[first..last].to_vec()
                };
                Ok(Elements::Variable { bytes, offsets })
            }
            ArrayBytes::Optional(_) => Err("optional (masked) data types are not supported".into()),
        }
    }
}

/// Parts of consecutive chunks as one run of elements.
fn concat_elements(parts: Vec<Elements>) -> std::result::Result<Elements, String> {
    let mut fixed = Vec::new();
    let (mut bytes, mut offsets) = (Vec::new(), vec![0i32]);
    let mut variable = false;
    for part in parts {
        match part {
            Elements::Fixed(raw) => fixed.extend_from_slice(&raw),
            Elements::Variable { bytes: b, offsets: o } => {
                variable = true;
                let base = bytes.len();
                offsets_fit(base.saturating_add(b.len()))?;
                bytes.extend_from_slice(&b);
                offsets.extend(o.iter().skip(1).map(|x| *x + base as i32));
            }
        }
    }
    Ok(if variable { Elements::Variable { bytes, offsets } } else { Elements::Fixed(fixed) })
}

/// `values` with the rows that `validity` marks `false` (or null) made null.
fn with_validity(values: ArrayRef, validity: &ArrayRef) -> std::result::Result<ArrayRef, String> {
    if validity.len() != values.len() {
        return Err(format!("validity array decoded {} rows for {}", validity.len(), values.len()));
    }
    let flags = validity.as_any().downcast_ref::<BooleanArray>().ok_or("validity array is not boolean")?;
    let valid = match flags.nulls() {
        Some(n) => flags.values() & n.inner(),
        None => flags.values().clone(),
    };
    let nulls = NullBuffer::union(values.nulls(), Some(&NullBuffer::new(valid)));
    let data = values.into_data().into_builder().nulls(nulls);
    Ok(make_array(data.build().map_err(|e| e.to_string())?))
}
