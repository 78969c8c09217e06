//! A storage wrapper for arrays whose outermost codec is zstd, blosc or gzip,
//! or whose shards' inner chunks are: a chunk (each inner chunk of a shard)
//! is checked before zarrs decodes it, so hostile bytes fail that chunk with
//! a clear error instead of aborting the process or being read leniently.
//!
//! The bound is what a chunk of the array may legitimately decode to (its
//! elements' bytes for fixed-size types; a generous bound per element for
//! variable-length ones); a chunk within it that still asks for more memory
//! than the process may take (under an address-space limit, say) is refused
//! by a trial allocation, since zarrs' decoders abort the process on a failed
//! allocation.
//!
//! - zstd: frames declaring more decoded bytes than a chunk of the array
//!   holds are refused (zarrs' decoder allocates whatever they declare);
//!   frames declaring no size are decoded into nothing, at most a chunk's
//!   size, first (a compression bomb stops there).
//! - blosc: the header's decoded size must fit a chunk, and its compressed
//!   size must be the chunk's size (no truncation, no trailing bytes).
//! - gzip: the stream is inflated into nothing, at most a chunk's size (a
//!   compression bomb stops there), and must end where the chunk ends.

use std::sync::Arc;

use zarrs_storage::byte_range::{ByteRange, ByteRangeIterator};
use zarrs_storage::{Bytes, MaybeBytes, MaybeBytesIterator, ReadableStorageTraits, StorageError, StoreKey};

use super::DynStorage;

/// The most a zstd block decodes to: a frame's decoded size is bounded by
/// its declared size, or, where it declares none, by its blocks × this.
const ZSTD_BLOCK_MAX: u64 = 128 << 10;
/// Decoded sizes above this are tried as an allocation first.
const TRIAL_ALLOCATION_ABOVE: u64 = 64 << 20;

/// Whether `bytes` bytes can be allocated now: refused with a message if not.
fn allocation_problem(bytes: u64) -> Option<String> {
    if bytes <= TRIAL_ALLOCATION_ABOVE {
        return None;
    }
    let mut trial: Vec<u8> = Vec::new();
    match usize::try_from(bytes).ok().map(|n| trial.try_reserve_exact(n)) {
        Some(Ok(())) => None,
        _ => Some(format!("decoding it needs {bytes} bytes of memory, which cannot be allocated")),
    }
}

/// Whether zstd frames may decode to more than `limit` bytes (zarrs allocates
/// the frames' upper bound before decoding): refused before any allocation.
/// The bound is the declared sizes, or blocks × 128 KiB where a frame
/// declares none, so a compression bomb is refused by its block count.
fn zstd_problem(bytes: &[u8], limit: u64) -> Option<String> {
    match zstd::bulk::Decompressor::upper_bound(bytes) {
        Some(bound) if bound as u64 > limit.saturating_add(ZSTD_BLOCK_MAX) => Some(format!(
            "the zstd frame declares {bound} decoded bytes, more than a chunk of this array holds ({limit})"
        )),
        Some(bound) => allocation_problem(bound as u64),
        None => Some("invalid zstd stream (no valid frame header)".to_string()),
    }
}

/// The outermost codec of an array's chunks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    Zstd,
    Blosc,
    Gzip,
}

impl Codec {
    /// The codec of this name (v3 codec names, v2 compressor ids), if guarded.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "zstd" => Some(Self::Zstd),
            "blosc" => Some(Self::Blosc),
            "gzip" => Some(Self::Gzip),
            _ => None,
        }
    }
}

/// Decoded and compressed sizes a blosc header declares.
pub fn blosc_sizes(bytes: &[u8]) -> Option<(u64, u64)> {
    let header = bytes.get(..16)?;
    let word =
        |i: usize| u64::from(u32::from_le_bytes([header[i], header[i + 1], header[i + 2], header[i + 3]]));
    Some((word(4), word(12)))
}

/// Inflate a gzip member into nothing, at most `limit` bytes; returns the
/// bytes left after the member and the bytes it inflated to.
fn gzip_trailing(bytes: &[u8], limit: u64) -> Result<(usize, u64), String> {
    use std::io::Read;
    let mut decoder = flate2::bufread::GzDecoder::new(bytes);
    let inflated = std::io::copy(&mut (&mut decoder).take(limit + 1), &mut std::io::sink())
        .map_err(|e| format!("invalid gzip stream: {e}"))?;
    if inflated > limit {
        return Err(format!(
            "the gzip stream inflates to more than a chunk of this array holds ({limit} bytes)"
        ));
    }
    Ok((decoder.into_inner().len(), inflated))
}

/// How an array's chunks are laid out, as far as the guard checks them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// Each chunk is one encoded stream whose outermost codec is this.
    Plain(Codec),
    /// Each chunk is a shard of `inner_chunks` inner chunks encoded with
    /// `codec` (outermost, if guarded), indexed by `(offset, size)` pairs of
    /// little-endian u64 followed by `index_checksum` bytes (crc32c: 4) at the
    /// shard's end (or start).
    Sharded { codec: Option<Codec>, inner_chunks: usize, index_at_end: bool, index_checksum: usize },
}

/// Storage of one array whose (inner) chunks decode to at most `limit` bytes.
pub struct CodecGuard {
    inner: Arc<DynStorage>,
    layout: Layout,
    limit: u64,
}

/// What is wrong with a stream in `codec` that should decode to at most `limit` bytes.
fn stream_problem(codec: Codec, bytes: &[u8], limit: u64) -> Option<String> {
    match codec {
        Codec::Zstd => zstd_problem(bytes, limit),
        Codec::Blosc => match blosc_sizes(bytes) {
            None => Some(format!("{} bytes are too few for a blosc header", bytes.len())),
            Some((decoded, _)) if decoded > limit => Some(format!(
                "the blosc header declares {decoded} decoded bytes, more than a chunk of this array holds \
                     ({limit})"
            )),
            Some((_, compressed)) if compressed != bytes.len() as u64 => Some(format!(
                "the blosc header declares {compressed} compressed bytes but the chunk has {}",
                bytes.len()
            )),
            Some((decoded, _)) => allocation_problem(decoded),
        },
        Codec::Gzip => match gzip_trailing(bytes, limit) {
            Err(e) => Some(e),
            Ok((0, inflated)) => allocation_problem(inflated),
            Ok((n, _)) => Some(format!("{n} trailing bytes after the gzip stream")),
        },
    }
}

/// The `(offset, size)` pairs of a shard's index, if it has one of that many entries.
fn shard_index(bytes: &[u8], entries: usize, at_end: bool, checksum: usize) -> Option<Vec<(u64, u64)>> {
    let len = entries.checked_mul(16)?.checked_add(checksum)?;
    let index = if at_end { bytes.get(bytes.len().checked_sub(len)?..)? } else { bytes.get(..len)? };
    let word = |i: usize| u64::from_le_bytes(index[8 * i..8 * i + 8].try_into().expect("8 bytes"));
    Some((0..entries).map(|e| (word(2 * e), word(2 * e + 1))).collect())
}

impl CodecGuard {
    pub fn new(inner: Arc<DynStorage>, layout: Layout, limit: u64) -> Self {
        Self { inner, layout, limit }
    }

    fn check(&self, key: &StoreKey, bytes: &Bytes) -> Result<(), StorageError> {
        let problem = match self.layout {
            Layout::Plain(codec) => stream_problem(codec, bytes, self.limit),
            Layout::Sharded { codec: Some(codec), inner_chunks, index_at_end, index_checksum } => {
                // A malformed index is zarrs' to report; the inner chunks it
                // locates inside the shard are checked here.
                let index =
                    shard_index(bytes, inner_chunks, index_at_end, index_checksum).unwrap_or_default();
                index.into_iter().enumerate().find_map(|(i, (offset, size))| {
                    let end = offset.checked_add(size)?;
                    let inner = bytes.get(usize::try_from(offset).ok()?..usize::try_from(end).ok()?)?;
                    stream_problem(codec, inner, self.limit).map(|p| format!("inner chunk {i}: {p}"))
                })
            }
            Layout::Sharded { codec: None, .. } => None,
        };
        match problem {
            Some(p) => Err(StorageError::Other(format!("{}: {p}", key.as_str()))),
            None => Ok(()),
        }
    }
}

impl ReadableStorageTraits for CodecGuard {
    fn get(&self, key: &StoreKey) -> Result<MaybeBytes, StorageError> {
        let value = self.inner.get(key)?;
        if let Some(bytes) = &value {
            self.check(key, bytes)?;
        }
        Ok(value)
    }

    fn get_partial_many<'a>(
        &'a self,
        key: &StoreKey,
        byte_ranges: ByteRangeIterator<'a>,
    ) -> Result<MaybeBytesIterator<'a>, StorageError> {
        let ranges: Vec<ByteRange> = byte_ranges.collect();
        let Some(parts) = self.inner.get_partial_many(key, Box::new(ranges.clone().into_iter()))? else {
            return Ok(None);
        };
        let parts: Vec<Result<Bytes, StorageError>> = parts.collect();
        for (range, part) in ranges.iter().zip(&parts) {
            if let (ByteRange::FromStart(0, _), Ok(bytes)) = (range, part) {
                self.check(key, bytes)?;
            }
        }
        Ok(Some(Box::new(parts.into_iter())))
    }

    fn size_key(&self, key: &StoreKey) -> Result<Option<u64>, StorageError> {
        self.inner.size_key(key)
    }

    fn supports_get_partial(&self) -> bool {
        self.inner.supports_get_partial()
    }
}

delegate_listable!(CodecGuard, inner);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zstd_bounds() {
        let big = vec![5u8; 1 << 20];
        let frame = zstd::bulk::compress(&big, 3).unwrap();
        assert_eq!(zstd_problem(&frame, 1 << 20), None);
        assert!(zstd_problem(&frame, 1000).unwrap().contains("declares 1048576 decoded bytes"));
        // Two frames: their sizes add up.
        let two = [frame.clone(), frame.clone()].concat();
        assert!(zstd_problem(&two, 1 << 20).unwrap().contains("declares 2097152"));
        // A frame without a declared size (a compression bomb looks like this)
        // is bounded by its blocks.
        let mut encoder = zstd::stream::write::Encoder::new(Vec::new(), 3).unwrap();
        encoder.include_contentsize(false).unwrap();
        std::io::Write::write_all(&mut encoder, &vec![0u8; 8 << 20]).unwrap();
        let unsized_frame = encoder.finish().unwrap();
        assert!(unsized_frame.len() < 2048, "{}", unsized_frame.len());
        assert_eq!(zstd_problem(&unsized_frame, 8 << 20), None);
        let e = zstd_problem(&unsized_frame, 1 << 20).unwrap();
        assert!(e.contains("more than a chunk of this array holds"), "{e}");
        assert!(zstd_problem(b"not zstd at all", 10).unwrap().contains("invalid zstd stream"));
    }

    #[test]
    fn blosc_and_gzip_checks() {
        let mut header = vec![2u8, 1, 0, 8];
        header.extend_from_slice(&64u32.to_le_bytes());
        header.extend_from_slice(&64u32.to_le_bytes());
        header.extend_from_slice(&20u32.to_le_bytes());
        header.extend_from_slice(&[0; 4]);
        assert_eq!(blosc_sizes(&header), Some((64, 20)));
        use std::io::Write;
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        encoder.write_all(&[7u8; 1000]).unwrap();
        let mut gz = encoder.finish().unwrap();
        assert_eq!(gzip_trailing(&gz, 1000), Ok((0, 1000)));
        assert!(gzip_trailing(&gz, 999).unwrap_err().contains("inflates to more than"));
        gz.extend_from_slice(b"junk");
        assert_eq!(gzip_trailing(&gz, 1000), Ok((4, 1000)));
        assert!(gzip_trailing(b"not gzip", 10).is_err());
    }
}
