//! What a store's metadata looked like when a group was opened from it, so a
//! later query can tell cheaply whether an opened group is still current:
//!
//! - local files and directories: modification time, size and inode (a
//!   writer that adds an array changes its group's directory);
//! - object-store documents: the `ETag` each was read at, checked with a
//!   conditional request (`If-None-Match`: a `304` answer carries no body);
//! - an Icechunk repository: the snapshot read, and for a branch whether it
//!   is still the branch's tip (tags and snapshots never change).

use std::path::Path;
use std::time::SystemTime;

/// Modification time, size and inode of a local file or directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileStamp {
    modified: Option<SystemTime>,
    len: u64,
    inode: u64,
}

impl FileStamp {
    /// The stamp of `path` now; `None` if it does not exist (or cannot be read).
    pub fn of(path: &Path) -> Option<Self> {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata(path).ok()?;
        Some(Self { modified: m.modified().ok(), len: m.len(), inode: m.ino() })
    }

    /// Whether the file was last modified before `time` (`false` when its
    /// modification time is unknown).
    pub fn modified_before(&self, time: SystemTime) -> bool {
        self.modified.is_some_and(|m| m < time)
    }
}

/// See the module documentation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    /// Local paths (relative to the store's root) and their stamps.
    Files(Vec<(String, Option<FileStamp>)>),
    /// Object-store keys and the `ETag` each was read at.
    Etags(Vec<(String, String)>),
    /// The Icechunk snapshot read; `branch` if it was that branch's tip.
    Snapshot { id: String, branch: Option<String> },
}
