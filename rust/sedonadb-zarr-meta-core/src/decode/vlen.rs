//! A direct reader for the layout most text and WKB columns have: `vlen-bytes`
//! or `vlen-utf8` followed by `zstd`, on a regular 1-D chunk grid.
//!
//! zarrs decompresses each such chunk into a new buffer of the chunk's size,
//! copies the elements out of it and frees it; for chunks of megabytes the
//! system allocator returns that buffer to the kernel and the next chunk
//! faults fresh zeroed pages in again. Here each thread decompresses into a
//! buffer it keeps, and the elements are copied from it into the values
//! buffer that becomes the Arrow array. The encoding (zarr v3 `vlen-bytes`):
//! a little-endian `u32` element count, then per element a `u32` length and
//! that many bytes.

use std::cell::RefCell;

/// A thread's decompression buffer is kept up to this size between chunks.
const KEEP_BYTES: usize = 64 << 20;

thread_local! {
    static BUFFER: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// The first `keep` elements of a chunk of `expected` elements, from its
/// zstd-compressed bytes, as one values buffer and `keep + 1` Arrow offsets.
///
/// The store's codec guard has refused frames declaring more decoded bytes
/// than a chunk holds, so the declared size bounds the buffer.
pub fn decode_chunk(compressed: &[u8], expected: usize, keep: usize) -> Result<(Vec<u8>, Vec<i32>), String> {
    let capacity = zstd::bulk::Decompressor::upper_bound(compressed)
        .ok_or("invalid zstd stream (no valid frame header)")?;
    BUFFER.with_borrow_mut(|raw| {
        raw.clear();
        // The store's codec guard bounded `capacity`; the memory may still be
        // unavailable (an address-space limit): an error, not an abort.
        raw.try_reserve(capacity).map_err(|_| {
            format!("decoding the chunk needs {capacity} bytes of memory, which cannot be allocated")
        })?;
        let decoded = zstd::bulk::Decompressor::new()
            .and_then(|mut d| d.decompress_to_buffer(compressed, raw))
            .map_err(|e| format!("cannot decompress the chunk (zstd: {e})"));
        let out = decoded.and_then(|_| split(raw, expected, keep.min(expected)));
        if raw.capacity() > KEEP_BYTES {
            *raw = Vec::new();
        }
        out
    })
}

/// Split decoded `vlen-bytes` into the first `keep` elements' values and offsets.
fn split(raw: &[u8], expected: usize, keep: usize) -> Result<(Vec<u8>, Vec<i32>), String> {
    let mut values = crate::decode::pages::values_buffer(raw.len().saturating_sub(4 * (expected + 1)));
    let mut offsets = Vec::with_capacity(keep + 1);
    split_into(raw, expected, keep, &mut values, &mut offsets)?;
    Ok((values, offsets))
}

/// Append the first `keep` elements of decoded `vlen-bytes` of `expected`
/// elements to `values`, and to `offsets` the start and each element's end
/// in `values` (Arrow's 32-bit offsets).
pub fn split_into(
    raw: &[u8],
    expected: usize,
    keep: usize,
    values: &mut Vec<u8>,
    offsets: &mut Vec<i32>,
) -> Result<(), String> {
    let word =
        |at: usize| raw.get(at..at + 4).map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")) as usize);
    let count = word(0).ok_or("the chunk is shorter than its element count")?;
    if count != expected {
        return Err(format!("the chunk's header counts {count} elements, its chunk shape {expected}"));
    }
    // Elements lie inside `raw`, so `values` grows by less than its length
    // and every offset below fits once the end does.
    crate::decode::arrow::offsets_fit(values.len().saturating_add(raw.len()))?;
    offsets.push(values.len() as i32);
    let mut at = 4;
    for element in 0..expected {
        let item = word(at)
            .and_then(|len| raw.get(at + 4..at + 4 + len))
            .ok_or_else(|| format!("the chunk ends inside element {element} of its {expected}"))?;
        if element < keep {
            values.extend_from_slice(item);
            offsets.push(values.len() as i32);
        }
        at += 4 + item.len();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(items: &[&[u8]]) -> Vec<u8> {
        let mut raw = (items.len() as u32).to_le_bytes().to_vec();
        for item in items {
            raw.extend_from_slice(&(item.len() as u32).to_le_bytes());
            raw.extend_from_slice(item);
        }
        raw
    }

    #[test]
    fn elements_and_a_last_chunk() {
        let big = vec![7u8; 300_000];
        let items: Vec<&[u8]> = vec![b"a", b"", &big, b"xyz", b""];
        let compressed = zstd::bulk::compress(&encode(&items), 3).unwrap();
        let (values, offsets) = decode_chunk(&compressed, 5, 5).unwrap();
        let n = big.len() as i32;
        assert_eq!(offsets, vec![0, 1, 1, 1 + n, 4 + n, 4 + n]);
        assert_eq!((&values[..1], &values[values.len() - 3..]), (&b"a"[..], &b"xyz"[..]));
        // A last chunk keeps its first elements.
        assert_eq!(decode_chunk(&compressed, 5, 2).unwrap(), (b"a".to_vec(), vec![0, 1, 1]));
        // Two frames in a row decode as one stream.
        let raw = encode(&items);
        let mut two = zstd::bulk::compress(&raw[..9], 1).unwrap();
        two.extend(zstd::bulk::compress(&raw[9..], 1).unwrap());
        assert_eq!(decode_chunk(&two, 5, 5).unwrap().1.len(), 6);
    }

    #[test]
    fn values_of_megabytes() {
        // Values past 2 MiB land in a buffer whose whole 2 MiB pages are
        // advised as huge pages: the contents are the same.
        let items: Vec<Vec<u8>> =
            (0..5_000u32).map(|i| vec![(i % 251) as u8; 1_000 + (i % 7) as usize]).collect();
        let refs: Vec<&[u8]> = items.iter().map(|v| v.as_slice()).collect();
        let compressed = zstd::bulk::compress(&encode(&refs), 1).unwrap();
        let (values, offsets) = decode_chunk(&compressed, refs.len(), refs.len()).unwrap();
        assert!(values.len() > 4 << 20);
        assert_eq!(offsets.len(), items.len() + 1);
        for (i, item) in items.iter().enumerate() {
            assert_eq!(&values[offsets[i] as usize..offsets[i + 1] as usize], item.as_slice());
        }
    }

    #[test]
    fn broken_chunks_are_errors() {
        let raw = encode(&[b"abc", b"de"]);
        let ok = zstd::bulk::compress(&raw, 3).unwrap();
        assert!(decode_chunk(&ok, 3, 3).unwrap_err().contains("counts 2 elements, its chunk shape 3"));
        let short = zstd::bulk::compress(&raw[..raw.len() - 1], 3).unwrap();
        assert!(decode_chunk(&short, 2, 2).unwrap_err().contains("ends inside element 1 of its 2"));
        assert!(decode_chunk(&ok[..ok.len() - 2], 2, 2).unwrap_err().contains("zstd"));
        assert!(decode_chunk(b"not zstd", 2, 2).unwrap_err().contains("zstd"));
        let empty = zstd::bulk::compress(&[], 3).unwrap();
        assert!(decode_chunk(&empty, 2, 2).unwrap_err().contains("shorter than its element count"));
    }
}
