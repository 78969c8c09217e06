//! Opened groups kept for the queries that follow, so a catalogue's metadata
//! is read once per version, not once per query.
//!
//! An entry is keyed by the URI and the exact read options (credentials
//! included: a group opened with one user's credentials is never handed to
//! another's options) and is used again only while the store's metadata is
//! unchanged ([`crate::store::Identity`]): on local disk while its metadata
//! files and the group's directory keep their modification time, size and
//! inode; on an object store while its consolidated metadata keeps its
//! `ETag` (one conditional request per query; groups without consolidated
//! metadata are not kept); in an Icechunk repository while the branch read
//! has the same tip (tags and snapshots never change). A writer's new data
//! is thus visible to the next query. Entries are dropped after
//! [`MAX_AGE`], and the least recently used first beyond [`MAX_BYTES`] of
//! estimated memory or [`MAX_ENTRIES`] groups. Decoded chunks are kept apart, by the
//! scan stage's chunk cache.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::error::Result;
use crate::metadata::MetaGroup;
use crate::options::ReadOptions;

/// How long an opened group is used again at most.
pub const MAX_AGE: Duration = Duration::from_secs(600);
/// Estimated memory of the groups kept, at most.
pub const MAX_BYTES: usize = 64 << 20;
/// Groups kept, at most.
pub const MAX_ENTRIES: usize = 64;

struct Entry {
    group: Arc<MetaGroup>,
    opened: Instant,
    used: u64,
    bytes: usize,
}

#[derive(Default)]
struct Cache {
    entries: HashMap<String, Entry>,
    bytes: usize,
    clock: u64,
}

impl Cache {
    fn remove(&mut self, key: &str) {
        if let Some(entry) = self.entries.remove(key) {
            self.bytes -= entry.bytes;
        }
    }

    fn insert(&mut self, key: String, group: Arc<MetaGroup>) {
        self.remove(&key);
        let bytes = estimated_bytes(&group);
        while !self.entries.is_empty()
            && (self.entries.len() >= MAX_ENTRIES || self.bytes + bytes > MAX_BYTES)
        {
            let oldest = self.entries.iter().min_by_key(|(_, e)| e.used).map(|(k, _)| k.clone());
            if let Some(oldest) = oldest {
                self.remove(&oldest);
            }
        }
        if bytes <= MAX_BYTES {
            self.clock += 1;
            self.bytes += bytes;
            self.entries.insert(key, Entry { group, opened: Instant::now(), used: self.clock, bytes });
        }
    }
}

fn cache() -> &'static Mutex<Cache> {
    static CACHE: OnceLock<Mutex<Cache>> = OnceLock::new();
    CACHE.get_or_init(Mutex::default)
}

/// A rough size of an opened group: its attributes (where statistics live),
/// its columns and their chunk boundaries.
fn estimated_bytes(group: &MetaGroup) -> usize {
    let attributes = serde_json::to_string(&group.attributes).map_or(0, |s| s.len());
    let columns: usize = group.columns.iter().map(|c| 4096 + 8 * c.chunk_bounds.len()).sum();
    2 * attributes + columns
}

/// The group of `uri` under `options` (a JSON object, as the surfaces take
/// it), opened now or kept from an earlier query if its store is unchanged.
pub fn open(uri: &str, options_json: Option<&str>) -> Result<Arc<MetaGroup>> {
    let options = match options_json {
        Some(json) => ReadOptions::from_json(json)?,
        None => ReadOptions::default(),
    };
    let key = format!("{uri}\u{0}{}", options_json.unwrap_or(""));
    let kept = cache().lock().ok().and_then(|mut cache| {
        cache.clock += 1;
        let clock = cache.clock;
        let entry = cache.entries.get_mut(&key)?;
        entry.used = clock;
        (entry.opened.elapsed() < MAX_AGE).then(|| entry.group.clone())
    });
    if let Some(group) = kept {
        if group.identity.as_ref().is_some_and(|identity| group.source.still(identity)) {
            return Ok(group);
        }
    }
    let group = Arc::new(MetaGroup::open(uri, options)?);
    if let Ok(mut cache) = cache().lock() {
        if group.identity.is_some() {
            cache.insert(key, group.clone());
        } else {
            cache.remove(&key);
        }
    }
    Ok(group)
}

/// Forget every kept group (the next query of each store opens it afresh).
pub fn clear() {
    if let Ok(mut cache) = cache().lock() {
        *cache = Cache::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::write_store;

    #[test]
    fn a_group_is_kept_until_its_store_changes() {
        let dir = tempfile::tempdir().unwrap();
        write_store(dir.path(), false);
        let uri = dir.path().to_str().unwrap();
        let first = open(uri, None).unwrap();
        assert!(Arc::ptr_eq(&first, &open(uri, None).unwrap()));
        // Other options: another entry.
        let projected = open(uri, Some(r#"{"arrays": ["n"]}"#)).unwrap();
        assert!(!Arc::ptr_eq(&first, &projected));
        assert_eq!(projected.columns.len(), 1);
        // A writer adds an array: the group's directory changes.
        std::fs::create_dir(dir.path().join("meta/extra")).unwrap();
        std::fs::copy(dir.path().join("meta/n/zarr.json"), dir.path().join("meta/extra/zarr.json")).unwrap();
        let after = open(uri, None).unwrap();
        assert!(!Arc::ptr_eq(&first, &after));
        assert_eq!(after.columns.len(), 4);
        // A writer rewrites an array's metadata.
        let meta = dir.path().join("meta/name/zarr.json");
        let text = std::fs::read_to_string(&meta).unwrap();
        std::fs::write(&meta, text.replace("\"attributes\":{}", "\"attributes\":{\"x\":1}")).unwrap();
        let rewritten = open(uri, None).unwrap();
        assert!(!Arc::ptr_eq(&after, &rewritten));
        assert!(Arc::ptr_eq(&rewritten, &open(uri, None).unwrap()));
    }

    #[test]
    fn the_least_recently_used_go_first() {
        let dir = tempfile::tempdir().unwrap();
        write_store(dir.path(), false);
        let group = Arc::new(MetaGroup::open(dir.path().to_str().unwrap(), ReadOptions::default()).unwrap());
        let mut c = Cache::default();
        for i in 0..MAX_ENTRIES + 3 {
            c.insert(format!("k{i}"), group.clone());
        }
        assert_eq!(c.entries.len(), MAX_ENTRIES);
        assert!(!c.entries.contains_key("k0") && c.entries.contains_key(&format!("k{}", MAX_ENTRIES + 2)));
        assert_eq!(c.bytes, MAX_ENTRIES * estimated_bytes(&group));
    }
}
