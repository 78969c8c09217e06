//! A storage wrapper for arrays whose outermost codec is zstd: a chunk whose
//! frame header declares more decoded bytes than the array's chunks can hold
//! is refused before the decoder allocates that much (zarrs' zstd decoder
//! allocates whatever the header declares, so a forged header would abort
//! the process).

use std::sync::Arc;

use zarrs_storage::byte_range::{ByteRange, ByteRangeIterator};
use zarrs_storage::{Bytes, MaybeBytes, MaybeBytesIterator, ReadableStorageTraits, StorageError, StoreKey};

use super::DynStorage;

const ZSTD_MAGIC: [u8; 4] = [0x28, 0xB5, 0x2F, 0xFD];

/// The decoded size a zstd frame header declares, if it declares one.
pub fn frame_content_size(bytes: &[u8]) -> Option<u64> {
    if bytes.get(..4)? != ZSTD_MAGIC {
        return None;
    }
    let descriptor = *bytes.get(4)?;
    let fcs_flag = descriptor >> 6;
    let single_segment = descriptor & 0x20 != 0;
    let dict_bytes = [0usize, 1, 2, 4][(descriptor & 0x03) as usize];
    let fcs_bytes = match fcs_flag {
        0 if single_segment => 1,
        0 => return None,
        1 => 2,
        2 => 4,
        _ => 8,
    };
    let start = 5 + usize::from(!single_segment) + dict_bytes;
    let field = bytes.get(start..start + fcs_bytes)?;
    let mut value = [0u8; 8];
    value[..fcs_bytes].copy_from_slice(field);
    let size = u64::from_le_bytes(value);
    Some(if fcs_bytes == 2 { size + 256 } else { size })
}

/// Storage of one array whose encoded chunks are zstd frames of at most
/// `limit` decoded bytes.
pub struct ZstdGuard {
    inner: Arc<DynStorage>,
    limit: u64,
}

impl ZstdGuard {
    pub fn new(inner: Arc<DynStorage>, limit: u64) -> Self {
        Self { inner, limit }
    }

    fn check(&self, key: &StoreKey, bytes: &Bytes) -> Result<(), StorageError> {
        match frame_content_size(bytes) {
            Some(size) if size > self.limit => Err(StorageError::Other(format!(
                "{}: the zstd frame declares {size} decoded bytes, more than a chunk of this array holds ({})",
                key.as_str(),
                self.limit
            ))),
            _ => Ok(()),
        }
    }
}

impl ReadableStorageTraits for ZstdGuard {
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

delegate_listable!(ZstdGuard, inner);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_declared_size() {
        // Single segment, 1-byte size field: 0x20, size 100.
        assert_eq!(frame_content_size(&[0x28, 0xB5, 0x2F, 0xFD, 0x20, 100]), Some(100));
        // 2-byte field adds 256; window descriptor present.
        assert_eq!(frame_content_size(&[0x28, 0xB5, 0x2F, 0xFD, 0x40, 0x00, 0x01, 0x00]), Some(257));
        // 8-byte field, single segment.
        let mut frame = vec![0x28, 0xB5, 0x2F, 0xFD, 0xE0];
        frame.extend_from_slice(&(1u64 << 60).to_le_bytes());
        assert_eq!(frame_content_size(&frame), Some(1 << 60));
        // No size declared, or not zstd at all.
        assert_eq!(frame_content_size(&[0x28, 0xB5, 0x2F, 0xFD, 0x00, 0x00]), None);
        assert_eq!(frame_content_size(b"not zstd"), None);
    }
}
