//! Decoded chunks kept for the scans that follow, so a catalogue searched
//! again and again (a server's pages, a notebook's repeated queries) decodes
//! each chunk once, not once per query.
//!
//! A chunk is named by the opened group it was read through
//! ([`MetaGroup::id`]) with its column and index: a group is used again only
//! while its store's metadata is unchanged ([`crate::metadata::cache`]), so a
//! rewritten array, or a branch that moved, is read afresh. A kept chunk is
//! used again only where the store can also tell that the chunk itself is
//! unchanged:
//!
//! - in an Icechunk snapshot, always (a snapshot never changes);
//! - on local disk, while its files keep their modification time, size and
//!   inode. Files modified in the last [`SETTLE`] are not kept: a rewrite
//!   within the file system's timestamp granularity could not be told apart;
//! - on object stores, never (telling would cost the round trip that
//!   reading does).
//!
//! At most [`DEFAULT_MAX_BYTES`] of decoded chunks are kept, the least
//! recently used going first; the environment variable [`MAX_MB_VARIABLE`]
//! sets another bound in MiB (`0` keeps none).

use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use arrow_array::{Array as _, ArrayRef};
use quick_cache::sync::Cache;
use quick_cache::Weighter;

use crate::error::Result;
use crate::metadata::MetaGroup;
use crate::store::FileStamp;

/// Decoded bytes kept at most, unless [`MAX_MB_VARIABLE`] says otherwise.
pub const DEFAULT_MAX_BYTES: u64 = 256 << 20;
/// The environment variable bounding the decoded chunks kept, in MiB.
pub const MAX_MB_VARIABLE: &str = "ZARR_META_CHUNK_CACHE_MB";
/// How long a local chunk file must have been left unmodified to be kept.
pub const SETTLE: Duration = Duration::from_secs(2);

#[derive(Clone, PartialEq, Eq, Hash)]
struct Key {
    group: u64,
    column: usize,
    chunk: usize,
}

#[derive(Clone)]
struct Kept {
    values: ArrayRef,
    stamp: Vec<Option<FileStamp>>,
    bytes: u64,
}

#[derive(Clone)]
struct DecodedBytes;

impl Weighter<Key, Kept> for DecodedBytes {
    fn weight(&self, _key: &Key, kept: &Kept) -> u64 {
        kept.bytes.max(1)
    }
}

/// The bound [`MAX_MB_VARIABLE`] sets, or [`DEFAULT_MAX_BYTES`].
fn max_bytes() -> u64 {
    let Ok(text) = std::env::var(MAX_MB_VARIABLE) else {
        return DEFAULT_MAX_BYTES;
    };
    match text.trim().parse::<u64>() {
        Ok(mb) => mb.saturating_mul(1 << 20),
        Err(_) => {
            let default_mb = DEFAULT_MAX_BYTES >> 20;
            log::warn!("{MAX_MB_VARIABLE}={text:?} is not a number of MiB; keeping at most {default_mb} MiB");
            DEFAULT_MAX_BYTES
        }
    }
}

/// The process's kept chunks; `None` when none may be kept.
fn cache() -> Option<&'static Cache<Key, Kept, DecodedBytes>> {
    static CACHE: OnceLock<Option<Cache<Key, Kept, DecodedBytes>>> = OnceLock::new();
    CACHE
        .get_or_init(|| {
            let max = max_bytes();
            (max > 0).then(|| Cache::with_weighter(4096, max, DecodedBytes))
        })
        .as_ref()
}

/// The decoded rows of chunk `chunk` of column `column` of `group`, and
/// whether they were kept from an earlier read; `read` decodes them when
/// they were not.
pub(crate) fn decoded(
    group: &MetaGroup,
    column: usize,
    chunk: usize,
    read: impl FnOnce() -> Result<ArrayRef>,
) -> Result<(ArrayRef, bool)> {
    // Stamped before reading: a rewrite during the read then fails the next check.
    let stamped = cache().and_then(|cache| {
        let stamp = group.source.chunk_stamp(&group.columns[column].chunk_keys(chunk))?;
        Some((cache, stamp))
    });
    let Some((cache, stamp)) = stamped else {
        return Ok((read()?, false));
    };
    let key = Key { group: group.id, column, chunk };
    if let Some(kept) = cache.get(&key) {
        if kept.stamp == stamp {
            return Ok((kept.values, true));
        }
        cache.remove(&key);
    }
    let values = read()?;
    let settled = SystemTime::now().checked_sub(SETTLE);
    if stamp.iter().flatten().all(|s| settled.is_some_and(|t| s.modified_before(t))) {
        let bytes = values.get_array_memory_size() as u64;
        cache.insert(key, Kept { values: values.clone(), stamp, bytes });
    }
    Ok((values, false))
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::sync::atomic::Ordering;
    use std::sync::Arc;

    use arrow_array::cast::AsArray;
    use arrow_array::types::Int32Type;

    use super::*;
    use crate::options::ReadOptions;
    use crate::scan::{BatchReader, ScanMetrics};
    use crate::testing::{write_store, N};

    /// Set every file under `dir` an hour back, as a catalogue written earlier.
    fn age(dir: &Path) {
        let then = SystemTime::now() - Duration::from_secs(3600);
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                age(&path);
            } else {
                std::fs::File::options().write(true).open(&path).unwrap().set_modified(then).unwrap();
            }
        }
    }

    /// Column `n` of `group`, with the chunks the scan read and of those, kept.
    fn scan(group: &Arc<MetaGroup>) -> (Vec<i32>, u64, u64) {
        let metrics = Arc::new(ScanMetrics::default());
        let n = group.column_index("n").unwrap();
        let reader =
            BatchReader::new(group.clone(), Some(vec![n]), 0..N, 100).unwrap().with_metrics(metrics.clone());
        let values =
            reader.flat_map(|b| b.unwrap().column(0).as_primitive::<Int32Type>().values().to_vec()).collect();
        (values, metrics.chunks_read.load(Ordering::Relaxed), metrics.chunks_kept.load(Ordering::Relaxed))
    }

    #[test]
    fn chunks_are_kept_until_their_files_change() {
        let dir = tempfile::tempdir().unwrap();
        write_store(dir.path(), false);
        age(dir.path());
        let group = Arc::new(MetaGroup::open(dir.path().to_str().unwrap(), ReadOptions::default()).unwrap());
        let all: Vec<i32> = (0..N as i32).collect();
        assert_eq!(scan(&group), (all.clone(), 3, 0));
        assert_eq!(scan(&group), (all, 3, 3));
        // A writer rewrites chunk 0 of `n` in place, with chunk 1's rows (4..8).
        let chunks = dir.path().join("meta/n/c");
        std::fs::write(chunks.join("0"), std::fs::read(chunks.join("1")).unwrap()).unwrap();
        let (values, read, kept) = scan(&group);
        assert_eq!(values, vec![4, 5, 6, 7, 4, 5, 6, 7, 8, 9]);
        assert_eq!((read, kept), (3, 2));
        // The file just written is not kept until it has settled.
        assert_eq!(scan(&group).2, 2);
        // Another group (the store reopened) never sees this one's chunks.
        let reopened =
            Arc::new(MetaGroup::open(dir.path().to_str().unwrap(), ReadOptions::default()).unwrap());
        assert_eq!(scan(&reopened).2, 0);
    }

    #[test]
    fn files_just_written_are_read_each_time() {
        let dir = tempfile::tempdir().unwrap();
        write_store(dir.path(), false);
        let group = Arc::new(MetaGroup::open(dir.path().to_str().unwrap(), ReadOptions::default()).unwrap());
        assert_eq!(scan(&group).2, 0);
        assert_eq!(scan(&group).2, 0);
    }
}
