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
use crate::options::Version;
use crate::runtime::run;

/// Objects only an Icechunk repository has at its root: the repository info
/// of format version 2, and the `main` branch of format version 1.
pub const MARKERS: [&str; 2] = ["repo", "refs/branch.main/ref.json"];

/// What [`Repo::open`] reports missing when no repository is there.
pub const NOT_A_REPOSITORY: &str = "Icechunk repository";

/// The branch read when no version is chosen.
pub const DEFAULT_BRANCH: &str = "main";

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
    /// The object store's URL (empty for a local directory).
    url: String,
    prefix: String,
    options: BTreeMap<String, String>,
    /// A local repository's directory.
    local: Option<std::path::PathBuf>,
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
        if let Some(path) = &self.local {
            let path = std::fs::canonicalize(path).map_err(|e| other(format!("{}: {e}", self.display)))?;
            let fs = object_store_icechunk::local::LocalFileSystem::new_with_prefix(path)
                .map_err(|e| other(format!("{}: {e}", self.display)))?;
            return Ok(Arc::new(WholeReads(Arc::new(fs))));
        }
        let url = Url::parse(&self.url).map_err(|e| other(format!("{}: {e}", self.display)))?;
        let options = StorageOptions(self.options.clone());
        let (store, _, _) =
            config::v014::build_store(&self.display, &url, &options).map_err(|e| other(e.to_string()))?;
        Ok(store)
    }

    fn artificially_sort_refs_in_mem(&self) -> bool {
        // A local listing is not sorted.
        self.local.is_some()
    }

    fn supports_storage_class(&self) -> bool {
        self.local.is_none()
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
            Ok((backend_storage(display, "", "", options, Some(path))?, Redactor::default()))
        }
        Location::Remote(url) => {
            // Validates the options (and names a bad one) before any request.
            let (_, prefix, redactor) = config::v014::build_store(display, url, options)?;
            Ok((backend_storage(display, url.as_str(), prefix.as_ref(), options, None)?, redactor))
        }
    }
}

/// icechunk's storage over a [`ConfiguredBackend`].
fn backend_storage(
    display: &str,
    url: &str,
    prefix: &str,
    options: &StorageOptions,
    local: Option<&FsPath>,
) -> Result<Arc<dyn Storage + Send + Sync>> {
    let backend = serde_json::json!({
        "object_store_provider_type": "sedonadb_zarr_meta_object_store",
        "display": display,
        "url": url,
        "prefix": prefix,
        "options": options.0,
        "local": local,
    });
    let storage: ObjectStorage = serde_json::from_value(serde_json::json!({ "backend": backend }))
        .map_err(|e| storage_error(display, format!("configuring the Icechunk storage: {e}")))?;
    Ok(Arc::new(storage))
}

/// A local file system whose reads return each requested range in one piece.
/// object_store streams a local file in 8 KiB blocks, each its own blocking
/// task, which made reading an Icechunk chunk several times slower than
/// decoding it; one read per range costs what a plain store's read costs.
#[derive(Debug)]
struct WholeReads(Arc<dyn object_store_icechunk::ObjectStore>);

impl std::fmt::Display for WholeReads {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "WholeReads({})", self.0)
    }
}

#[async_trait::async_trait]
impl object_store_icechunk::ObjectStore for WholeReads {
    async fn put_opts(
        &self,
        location: &object_store_icechunk::path::Path,
        payload: object_store_icechunk::PutPayload,
        opts: object_store_icechunk::PutOptions,
    ) -> object_store_icechunk::Result<object_store_icechunk::PutResult> {
        self.0.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &object_store_icechunk::path::Path,
        opts: object_store_icechunk::PutMultipartOptions,
    ) -> object_store_icechunk::Result<Box<dyn object_store_icechunk::MultipartUpload>> {
        self.0.put_multipart_opts(location, opts).await
    }

    async fn get_opts(
        &self,
        location: &object_store_icechunk::path::Path,
        options: object_store_icechunk::GetOptions,
    ) -> object_store_icechunk::Result<object_store_icechunk::GetResult> {
        use futures::StreamExt;
        use object_store_icechunk::{GetResult, GetResultPayload};

        let head = options.head;
        let result = self.0.get_opts(location, options).await?;
        if head || !matches!(result.payload, GetResultPayload::File(..)) {
            return Ok(result);
        }
        let (meta, range, attributes, extensions) =
            (result.meta.clone(), result.range.clone(), result.attributes.clone(), result.extensions.clone());
        let bytes = result.bytes().await?;
        Ok(GetResult {
            payload: GetResultPayload::Stream(futures::stream::once(async move { Ok(bytes) }).boxed()),
            meta,
            range,
            attributes,
            extensions,
        })
    }

    fn delete_stream(
        &self,
        locations: futures::stream::BoxStream<
            'static,
            object_store_icechunk::Result<object_store_icechunk::path::Path>,
        >,
    ) -> futures::stream::BoxStream<'static, object_store_icechunk::Result<object_store_icechunk::path::Path>>
    {
        self.0.delete_stream(locations)
    }

    fn list(
        &self,
        prefix: Option<&object_store_icechunk::path::Path>,
    ) -> futures::stream::BoxStream<'static, object_store_icechunk::Result<object_store_icechunk::ObjectMeta>>
    {
        self.0.list(prefix)
    }

    async fn list_with_delimiter(
        &self,
        prefix: Option<&object_store_icechunk::path::Path>,
    ) -> object_store_icechunk::Result<object_store_icechunk::ListResult> {
        self.0.list_with_delimiter(prefix).await
    }

    async fn copy_opts(
        &self,
        from: &object_store_icechunk::path::Path,
        to: &object_store_icechunk::path::Path,
        options: object_store_icechunk::CopyOptions,
    ) -> object_store_icechunk::Result<()> {
        self.0.copy_opts(from, to, options).await
    }
}

/// An error of the repository's storage; a request the object store refused
/// for want of privileges or credentials is a permission error, as on plain stores.
fn storage_error(display: &str, message: impl Into<String>) -> ZarrMetaError {
    let message = message.into();
    // object_store's PermissionDenied and Unauthenticated errors, as icechunk words them.
    let denied = ["lacked the necessary privileges", "lacked valid authentication credentials"];
    if denied.iter().any(|d| message.contains(d)) {
        return ZarrMetaError::PermissionDenied { store: display.to_string(), message };
    }
    ZarrMetaError::Storage { store: display.to_string(), message }
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

    /// The snapshot at the tip of `branch` now.
    pub fn branch_tip(&self, branch: &str) -> Result<String> {
        let repository = self.repository.clone();
        let name = branch.to_string();
        let id = run(async move { repository.lookup_branch(&name).await })
            .map_err(|m| storage_error(&self.display, m))?
            .map_err(|e| self.error(&format!("looking up branch '{branch}'"), e.kind()))?;
        Ok(id.to_string())
    }

    /// A read-only session at `version`, as an asynchronous zarrs storage,
    /// and the id of the snapshot it reads.
    pub fn session(&self, version: &Version) -> Result<(AsyncIcechunkStore, String)> {
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
            Ok(session) => {
                let id = session.snapshot_id().to_string();
                Ok((AsyncIcechunkStore::new(session), id))
            }
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
