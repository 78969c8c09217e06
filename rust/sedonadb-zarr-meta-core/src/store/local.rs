//! Local directories: zarrs' filesystem store behind checks that keep a
//! hostile directory from hanging or exhausting a scan. Only regular files
//! are read (a FIFO would block forever, a device never end), a file larger
//! than any chunk may be is refused before it is read, and listings report
//! names that are not UTF-8 or entries that cannot be resolved (symlink
//! loops) instead of skipping them.

use std::path::{Path, PathBuf};

use zarrs::filesystem::FilesystemStore;
use zarrs_storage::byte_range::{ByteRange, ByteRangeIterator};
use zarrs_storage::{MaybeBytes, MaybeBytesIterator, ReadableStorageTraits, StorageError, StoreKey};

use crate::limits::MAX_CHUNK_BYTES;

/// Largest file read from a store: a chunk may hold at most
/// [`MAX_CHUNK_BYTES`] decoded, plus room for codec framing.
pub const MAX_FILE_BYTES: u64 = MAX_CHUNK_BYTES + (1 << 20);

/// A local Zarr store.
pub struct LocalStorage {
    root: PathBuf,
    inner: FilesystemStore,
}

impl LocalStorage {
    pub fn new(root: &Path) -> Result<Self, StorageError> {
        let inner = FilesystemStore::new(root).map_err(|e| StorageError::Other(e.to_string()))?;
        Ok(Self { root: root.to_path_buf(), inner })
    }

    /// The store's root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Refuse what must not be read: non-regular files and oversized files.
    fn check(&self, key: &StoreKey) -> Result<(), StorageError> {
        match std::fs::metadata(self.root.join(key.as_str())) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(StorageError::Other(format!("{}: {e}", key.as_str()))),
            Ok(m) if !m.is_file() => {
                Err(StorageError::Other(format!("{}: not a regular file", key.as_str())))
            }
            Ok(m) if m.len() > MAX_FILE_BYTES => Err(StorageError::Other(format!(
                "{}: the file is {} bytes, more than any chunk may be ({MAX_FILE_BYTES})",
                key.as_str(),
                m.len()
            ))),
            Ok(_) => Ok(()),
        }
    }

    /// Names of the directories directly under `prefix` (`""` or `"a/"`).
    pub fn child_directories(&self, prefix: &str) -> Result<Vec<String>, String> {
        let dir = self.root.join(prefix);
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(format!("cannot list '{prefix}': {e}")),
        };
        let mut out = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| format!("cannot list '{prefix}': {e}"))?;
            let name = entry.file_name().into_string().map_err(|raw| {
                format!("'{prefix}' holds an entry whose name is not UTF-8: {}", raw.to_string_lossy())
            })?;
            // Follows symlinks; a loop or dangling link is reported, not skipped.
            match std::fs::metadata(entry.path()) {
                Ok(m) if m.is_dir() => out.push(name),
                Ok(_) => {}
                Err(e) if entry.file_type().is_ok_and(|t| t.is_symlink()) => {
                    return Err(format!("'{prefix}{name}' cannot be resolved: {e}"))
                }
                Err(e) => return Err(format!("'{prefix}{name}': {e}")),
            }
        }
        Ok(out)
    }
}

impl ReadableStorageTraits for LocalStorage {
    fn get(&self, key: &StoreKey) -> Result<MaybeBytes, StorageError> {
        self.check(key)?;
        self.inner.get(key)
    }

    fn get_partial_many<'a>(
        &'a self,
        key: &StoreKey,
        byte_ranges: ByteRangeIterator<'a>,
    ) -> Result<MaybeBytesIterator<'a>, StorageError> {
        self.check(key)?;
        // Byte ranges come from shard indexes, which may be corrupt: a range
        // past the end of the file is an error, never an allocation of its length.
        let size = match std::fs::metadata(self.root.join(key.as_str())) {
            Ok(m) => m.len(),
            Err(_) => return self.inner.get_partial_many(key, byte_ranges),
        };
        let ranges: Vec<ByteRange> = byte_ranges.collect();
        for range in &ranges {
            let inside = match range {
                ByteRange::FromStart(offset, Some(length)) => {
                    offset.checked_add(*length).is_some_and(|e| e <= size)
                }
                ByteRange::FromStart(offset, None) => *offset <= size,
                ByteRange::Suffix(length) => *length <= size,
            };
            if !inside {
                return Err(StorageError::Other(format!(
                    "{}: out-of-bounds byte range {range} of a {size}-byte file",
                    key.as_str()
                )));
            }
        }
        self.inner.get_partial_many(key, Box::new(ranges.into_iter()))
    }

    fn size_key(&self, key: &StoreKey) -> Result<Option<u64>, StorageError> {
        self.inner.size_key(key)
    }

    fn supports_get_partial(&self) -> bool {
        self.inner.supports_get_partial()
    }
}

delegate_listable!(LocalStorage, inner);
