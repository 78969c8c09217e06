//! Icechunk repositories: recognised by their marker objects, opened at a
//! branch, tag or snapshot with icechunk, and read through zarrs' Icechunk
//! adapter like any object store (prefetching, bounded concurrency; see
//! [`super::remote`]).
//!
//! icechunk is built on object_store 0.14 while DataFusion and zarrs use 0.13;
//! remote repositories get a 0.14 store configured exactly like our 0.13 ones
//! (environment, then `storage_options`; see [`super::config`]).

use std::collections::BTreeMap;
use std::path::Path as FsPath;
use std::sync::Arc;

use futures::TryStreamExt;
use icechunk::format::SnapshotId;
use icechunk::repository::{RepositoryErrorKind, VersionInfo};
use icechunk::storage::{ObjectStoreBackend, Role, Settings, StorageErrorKind, StorageInfo};
use icechunk::{ObjectStorage, Repository, Storage, StorageError};
use serde::{Deserialize, Serialize};
use url::Url;
use zarrs_icechunk::AsyncIcechunkStore;

use super::config::{self, Redactor};
use crate::error::{Result, ZarrMetaError};
use crate::options::StorageOptions;
use crate::runtime::run;

/// Objects only an Icechunk repository has at its root: the repository info
/// of format version 2, and the `main` branch of format version 1.
pub const MARKERS: [&str; 2] = ["repo", "refs/branch.main/ref.json"];

/// What [`Repo::open`] reports missing when no repository is there.
pub const NOT_A_REPOSITORY: &str = "Icechunk repository";

/// The branch read when no version is chosen.
pub const DEFAULT_BRANCH: &str = "main";

/// Which version of a repository to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Version {
    Branch(String),
    Tag(String),
    Snapshot(String),
}

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Branch(b) => write!(f, "branch '{b}'"),
            Self::Tag(t) => write!(f, "tag '{t}'"),
            Self::Snapshot(s) => write!(f, "snapshot '{s}'"),
        }
    }
}

/// Whether the local directory `path` holds an Icechunk repository.
pub fn is_local_repository(path: &FsPath) -> bool {
    MARKERS.iter().any(|m| path.join(m).is_file())
}

/// Where a repository lives.
pub enum Location<'a> {
    Local(&'a FsPath),
    Remote(&'a Url),
}

/// An object-store backend for icechunk built by our configuration code, so a
/// repository honours the same environment and `storage_options` as a plain
/// store. (Constructed through serde: icechunk builds its storage from a
/// registered backend type.)
#[derive(Serialize, Deserialize)]
struct ConfiguredBackend {
    display: String,
    url: String,
    prefix: String,
    options: BTreeMap<String, String>,
}

impl std::fmt::Debug for ConfiguredBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConfiguredBackend").field("url", &self.display).finish_non_exhaustive()
    }
}

impl std::fmt::Display for ConfiguredBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.display)
    }
}

#[typetag::serde(name = "sedonadb_zarr_meta_object_store")]
impl ObjectStoreBackend for ConfiguredBackend {
    fn storage_info(&self) -> StorageInfo {
        StorageInfo { backend_type: "object store", fields: vec![("url", self.display.clone())] }
    }

    fn mk_object_store(
        &self,
        _settings: &Settings,
        _role: Role,
    ) -> std::result::Result<Arc<dyn object_store_icechunk::ObjectStore>, StorageError> {
        let other = |m: String| StorageError::capture(StorageErrorKind::Other(m));
        let url = Url::parse(&self.url).map_err(|e| other(format!("{}: {e}", self.display)))?;
        let options = StorageOptions(self.options.clone());
        let (store, _, _) =
            config::v014::build_store(&self.display, &url, &options).map_err(|e| other(e.to_string()))?;
        Ok(store)
    }

    fn prefix(&self) -> String {
        self.prefix.clone()
    }

    fn default_settings(&self) -> Settings {
        Settings::default()
    }

    fn can_write(&self) -> bool {
        false
    }
}

/// The icechunk storage of a repository at `location`.
fn storage(
    display: &str,
    location: Location<'_>,
    options: &StorageOptions,
) -> Result<(Arc<dyn Storage + Send + Sync>, Redactor)> {
    match location {
        Location::Local(path) => {
            let path = path.to_path_buf();
            let storage = run(async move { icechunk::new_local_filesystem_storage(&path).await })
                .map_err(|m| storage_error(display, m))?
                .map_err(|e| storage_error(display, e.kind().to_string()))?;
            Ok((storage, Redactor::default()))
        }
        Location::Remote(url) => {
            // Validates the options (and names a bad one) before any request.
            let (_, prefix, redactor) = config::v014::build_store(display, url, options)?;
            let backend = serde_json::json!({
                "object_store_provider_type": "sedonadb_zarr_meta_object_store",
                "display": display,
                "url": url.as_str(),
                "prefix": prefix.as_ref(),
                "options": options.0,
            });
            let storage: ObjectStorage = serde_json::from_value(serde_json::json!({ "backend": backend }))
                .map_err(|e| storage_error(display, format!("configuring the Icechunk storage: {e}")))?;
            Ok((Arc::new(storage), redactor))
        }
    }
}

fn storage_error(display: &str, message: impl Into<String>) -> ZarrMetaError {
    ZarrMetaError::Storage { store: display.to_string(), message: message.into() }
}

/// An opened Icechunk repository.
pub struct Repo {
    display: String,
    repository: Arc<Repository>,
    redactor: Redactor,
}

impl std::fmt::Debug for Repo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Repo").field("repository", &self.display).finish_non_exhaustive()
    }
}

/// One commit of a repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotEntry {
    pub id: String,
    pub parent_id: Option<String>,
    /// Commit time, microseconds since the Unix epoch (UTC).
    pub time_us: i64,
    pub message: String,
}

/// The versions a repository holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Versions {
    /// Branch name → the snapshot at its tip.
    pub branches: BTreeMap<String, String>,
    /// Tag name → the snapshot it names.
    pub tags: BTreeMap<String, String>,
    /// Every snapshot reachable from a branch or tag, newest first.
    pub snapshots: Vec<SnapshotEntry>,
}

impl Repo {
    /// Open the repository at `location`; `NotFound` if none is there.
    pub fn open(display: &str, location: Location<'_>, options: &StorageOptions) -> Result<Self> {
        let (storage, redactor) = storage(display, location, options)?;
        let repository = run(async move { Repository::open(storage).execute().await })
            .map_err(|m| storage_error(display, m))?
            .map_err(|e| match e.kind() {
                RepositoryErrorKind::RepositoryDoesntExist => {
                    ZarrMetaError::NotFound { store: display.to_string(), what: NOT_A_REPOSITORY.into() }
                }
                kind => storage_error(
                    display,
                    redactor.redact(&format!("cannot open the Icechunk repository: {kind}")),
                ),
            })?;
        Ok(Self { display: display.to_string(), repository: Arc::new(repository), redactor })
    }

    fn error(&self, doing: &str, kind: &RepositoryErrorKind) -> ZarrMetaError {
        storage_error(&self.display, self.redactor.redact(&format!("{doing}: {kind}")))
    }

    /// The secrets of this repository's configuration, for messages.
    pub fn redactor(&self) -> &Redactor {
        &self.redactor
    }

    /// The repository's branch and tag names.
    fn refs(&self) -> Result<(Vec<String>, Vec<String>)> {
        let repository = self.repository.clone();
        let (branches, tags) = run(async move {
            let branches = repository.list_branches().await?;
            let tags = repository.list_tags().await?;
            Ok::<_, icechunk::repository::RepositoryError>((branches, tags))
        })
        .map_err(|m| storage_error(&self.display, m))?
        .map_err(|e| self.error("listing branches and tags", e.kind()))?;
        Ok((branches.into_iter().collect(), tags.into_iter().collect()))
    }

    /// The error for a version the repository does not have, listing those it has.
    fn missing(&self, version: &Version) -> ZarrMetaError {
        let listed = match self.refs() {
            Ok((branches, tags)) => {
                let list = |names: &[String]| {
                    if names.is_empty() {
                        "none".to_string()
                    } else {
                        names.iter().map(|n| format!("'{n}'")).collect::<Vec<_>>().join(", ")
                    }
                };
                format!(" (the repository has branches {}; tags {})", list(&branches), list(&tags))
            }
            Err(_) => String::new(),
        };
        ZarrMetaError::NotFound {
            store: self.display.clone(),
            what: format!("{version} of the Icechunk repository{listed}"),
        }
    }

    /// A read-only session at `version`, as an asynchronous zarrs storage.
    pub fn session(&self, version: &Version) -> Result<AsyncIcechunkStore> {
        let info = match version {
            Version::Branch(b) => VersionInfo::BranchTipRef(b.clone()),
            Version::Tag(t) => VersionInfo::TagRef(t.clone()),
            Version::Snapshot(s) => {
                VersionInfo::SnapshotId(SnapshotId::try_from(s.as_str()).map_err(|_| {
                    ZarrMetaError::InvalidOption(format!(
                        "{}: snapshot '{s}' is not an Icechunk snapshot id (20 characters, e.g. from \
                     list_versions)",
                        self.display
                    ))
                })?)
            }
        };
        let repository = self.repository.clone();
        let session = run(async move { repository.readonly_session(&info).await })
            .map_err(|m| storage_error(&self.display, m))?;
        match session {
            Ok(session) => Ok(AsyncIcechunkStore::new(session)),
            Err(e) => Err(match e.kind() {
                RepositoryErrorKind::Ref(_) | RepositoryErrorKind::SnapshotNotFound { .. } => {
                    self.missing(version)
                }
                RepositoryErrorKind::FormatError(
                    icechunk::format::IcechunkFormatErrorKind::BranchNotFound { .. }
                    | icechunk::format::IcechunkFormatErrorKind::TagNotFound { .. }
                    | icechunk::format::IcechunkFormatErrorKind::SnapshotIdNotFound { .. },
                ) => self.missing(version),
                kind => self.error(&format!("cannot open {version}"), kind),
            }),
        }
    }

    /// The repository's branches, tags and snapshots.
    pub fn versions(&self) -> Result<Versions> {
        let (branch_names, tag_names) = self.refs()?;
        let repository = self.repository.clone();
        let result = run(async move {
            let mut branches = BTreeMap::new();
            let mut tags = BTreeMap::new();
            let mut snapshots: BTreeMap<String, SnapshotEntry> = BTreeMap::new();
            let mut heads = Vec::new();
            for name in branch_names {
                let id = repository.lookup_branch(&name).await?;
                branches.insert(name.clone(), id.to_string());
                heads.push(VersionInfo::BranchTipRef(name));
            }
            for name in tag_names {
                let id = repository.lookup_tag(&name).await?;
                tags.insert(name.clone(), id.to_string());
                heads.push(VersionInfo::TagRef(name));
            }
            for head in heads {
                let ancestry = repository.ancestry(&head).await?;
                let infos: Vec<_> = ancestry.try_collect().await?;
                for info in infos {
                    snapshots.entry(info.id.to_string()).or_insert_with(|| SnapshotEntry {
                        id: info.id.to_string(),
                        parent_id: info.parent_id.as_ref().map(ToString::to_string),
                        time_us: info.flushed_at.timestamp_micros(),
                        message: info.message.clone(),
                    });
                }
            }
            let mut snapshots: Vec<SnapshotEntry> = snapshots.into_values().collect();
            snapshots.sort_by(|a, b| b.time_us.cmp(&a.time_us).then_with(|| a.id.cmp(&b.id)));
            Ok::<_, icechunk::repository::RepositoryError>(Versions { branches, tags, snapshots })
        })
        .map_err(|m| storage_error(&self.display, m))?;
        result.map_err(|e| self.error("listing versions", e.kind()))
    }
}
