//! Where a catalogue's bytes come from: the one place that turns a URI plus
//! options into a store. Local paths and `file://` URLs read from disk;
//! `s3://`, `gs://`, `az://`/`abfs[s]://` and `http(s)://` through
//! object_store (configured by [`config`], read by [`remote`]); Icechunk
//! repositories, local or remote, at a branch, tag or snapshot through
//! [`icechunk`]. The group reader takes a [`Store`] and never branches on the
//! scheme.

/// `ListableStorageTraits` for a storage wrapper, passed through to its
/// field `$inner` (wrappers only change how values are read).
macro_rules! delegate_listable {
    ($ty:ty, $inner:ident) => {
        impl zarrs_storage::ListableStorageTraits for $ty {
            fn list(&self) -> Result<zarrs_storage::StoreKeys, zarrs_storage::StorageError> {
                zarrs_storage::ListableStorageTraits::list(&self.$inner)
            }

            fn list_prefix(
                &self,
                prefix: &zarrs_storage::StorePrefix,
            ) -> Result<zarrs_storage::StoreKeys, zarrs_storage::StorageError> {
                zarrs_storage::ListableStorageTraits::list_prefix(&self.$inner, prefix)
            }

            fn list_dir(
                &self,
                prefix: &zarrs_storage::StorePrefix,
            ) -> Result<zarrs_storage::StoreKeysPrefixes, zarrs_storage::StorageError> {
                zarrs_storage::ListableStorageTraits::list_dir(&self.$inner, prefix)
            }

            fn size_prefix(
                &self,
                prefix: &zarrs_storage::StorePrefix,
            ) -> Result<u64, zarrs_storage::StorageError> {
                zarrs_storage::ListableStorageTraits::size_prefix(&self.$inner, prefix)
            }
        }
    };
}

pub mod codec_guard;
pub mod config;
pub mod icechunk;
pub mod identity;
pub mod local;
pub mod remote;
pub mod verified;

use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use url::Url;
use zarrs::storage::{ListableStorageTraits, ReadableListableStorageTraits, StoreKey, StorePrefix};

use crate::error::{Result, ZarrMetaError};
use crate::options::ReadOptions;
use crate::options::Version;
use icechunk::{Location, Repo};
pub use identity::{FileStamp, Identity};
use local::LocalStorage;
use remote::{Remote, RemoteStorage};

/// The synchronous storage zarrs reads arrays from.
pub type DynStorage = dyn ReadableListableStorageTraits;

/// URI schemes read through object_store.
pub const OBJECT_STORE_SCHEMES: [&str; 10] =
    ["s3", "s3a", "gs", "az", "adl", "azure", "abfs", "abfss", "http", "https"];

/// An opened store: local or remote, with the same reading interface.
pub struct Store {
    display: String,
    storage: Arc<DynStorage>,
    local: Option<Arc<LocalStorage>>,
    remote: Option<Arc<Remote>>,
    /// The version read, for Icechunk repositories.
    version: Option<Version>,
    /// The Icechunk repository and the snapshot read, for telling whether a
    /// branch has moved on since.
    repository: Option<(Repo, String)>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("uri", &self.display).field("remote", &self.remote.is_some()).finish()
    }
}

/// The URI as shown in messages: no user name, password, query or fragment
/// (where a signed URL keeps its secrets).
fn display_uri(url: &Url) -> String {
    let mut shown = url.clone();
    let _ = shown.set_username("");
    let _ = shown.set_password(None);
    shown.set_query(None);
    shown.set_fragment(None);
    let text = shown.to_string();
    match text.strip_suffix('/') {
        Some(trimmed) if !trimmed.ends_with(':') && !trimmed.ends_with("//") => trimmed.to_string(),
        _ => text,
    }
}

/// `uri` as a URL, or `None` for a plain local path.
fn parse_uri(uri: &str) -> Result<Option<Url>> {
    if !uri.contains("://") {
        return Ok(None);
    }
    Url::parse(uri)
        .map(Some)
        .map_err(|e| ZarrMetaError::InvalidOption(format!("{uri}: not a valid URL: {e}")))
}

/// Resolve a local URI (`file://` URL or plain path) to a directory path.
fn local_path(uri: &str, url: Option<&Url>) -> Result<PathBuf> {
    match url {
        Some(url) => url.to_file_path().map_err(|_| {
            ZarrMetaError::InvalidOption(format!("{uri}: not a valid file:// URL of a local directory"))
        }),
        None => Ok(PathBuf::from(uri)),
    }
}

/// The error for a version option on a store that is not an Icechunk repository.
fn not_a_repository(display: &str, version: &Version) -> ZarrMetaError {
    let option = match version {
        Version::Branch(_) => "branch",
        Version::Tag(_) => "tag",
        Version::Snapshot(_) => "snapshot",
    };
    ZarrMetaError::InvalidOption(format!(
        "{display}: the '{option}' option applies only to Icechunk repositories, and this store is not one"
    ))
}

impl Store {
    /// Open the store `uri` names, configured by `options`.
    pub fn open(uri: &str, options: &ReadOptions) -> Result<Arc<Self>> {
        match parse_uri(uri)? {
            Some(url) if OBJECT_STORE_SCHEMES.contains(&url.scheme()) => {
                let Some(version) = options.version() else { return Self::open_remote(&url, options) };
                let display = display_uri(&url);
                match Self::open_icechunk(&display, Location::Remote(&url), options) {
                    Err(ZarrMetaError::NotFound { what, .. }) if what == icechunk::NOT_A_REPOSITORY => {
                        if Self::open_remote(&url, options)?.has_objects("")? {
                            Err(not_a_repository(&display, &version))
                        } else {
                            Err(ZarrMetaError::NotFound { store: display, what: "store".into() })
                        }
                    }
                    other => other,
                }
            }
            Some(url) if url.scheme() != "file" => Err(ZarrMetaError::Unsupported(format!(
                "{}: URI scheme '{}' is not supported; use a local path, file://, s3://, gs://, az://, \
                 abfs[s]:// or http(s)://",
                display_uri(&url),
                url.scheme()
            ))),
            url => Self::open_local(uri, &local_path(uri, url.as_ref())?, options),
        }
    }

    fn open_local(uri: &str, path: &std::path::Path, options: &ReadOptions) -> Result<Arc<Self>> {
        if !path.is_dir() {
            return Err(ZarrMetaError::NotFound {
                store: uri.to_string(),
                what: if path.exists() { "store (not a directory)".into() } else { "store".into() },
            });
        }
        if icechunk::is_local_repository(path) {
            return Self::open_icechunk(uri, Location::Local(path), options);
        }
        if let Some(version) = options.version() {
            return Err(not_a_repository(uri, &version));
        }
        let local = Arc::new(
            LocalStorage::new(path)
                .map_err(|e| ZarrMetaError::Storage { store: uri.to_string(), message: e.to_string() })?,
        );
        Ok(Arc::new(Self {
            display: uri.to_string(),
            storage: local.clone(),
            local: Some(local),
            remote: None,
            version: None,
            repository: None,
        }))
    }

    /// Open the Icechunk repository at `location` at the version `options`
    /// choose (default: branch `main`).
    fn open_icechunk(display: &str, location: Location<'_>, options: &ReadOptions) -> Result<Arc<Self>> {
        let repo = Repo::open(display, location, &options.storage_options)?;
        let version = options.version().unwrap_or_else(|| Version::Branch(icechunk::DEFAULT_BRANCH.into()));
        let (session, snapshot) = repo.session(&version)?;
        let remote = Arc::new(Remote::over_storage(
            display.to_string(),
            Arc::new(session),
            repo.redactor().clone(),
            options.max_concurrency,
        ));
        Ok(Arc::new(Self {
            display: display.to_string(),
            storage: Arc::new(RemoteStorage(remote.clone())),
            local: None,
            remote: Some(remote),
            version: Some(version),
            repository: Some((repo, snapshot)),
        }))
    }

    /// The Icechunk repository at `uri` (to list its versions).
    pub fn open_repository(uri: &str, options: &ReadOptions) -> Result<Repo> {
        match parse_uri(uri)? {
            Some(url) if OBJECT_STORE_SCHEMES.contains(&url.scheme()) => {
                Repo::open(&display_uri(&url), Location::Remote(&url), &options.storage_options)
            }
            url => {
                let path = local_path(uri, url.as_ref())?;
                if !path.is_dir() {
                    return Err(ZarrMetaError::NotFound { store: uri.to_string(), what: "store".into() });
                }
                Repo::open(uri, Location::Local(&path), &options.storage_options)
            }
        }
    }

    /// This store read as the Icechunk repository it holds, if it holds one
    /// (object stores are recognised only once their Zarr metadata is found
    /// missing, so plain stores pay nothing).
    pub fn as_icechunk(&self, uri: &str, options: &ReadOptions) -> Result<Option<Arc<Self>>> {
        if self.version.is_some() || self.remote.is_none() {
            return Ok(None);
        }
        let markers: Vec<String> = icechunk::MARKERS.iter().map(|m| m.to_string()).collect();
        if self.get_many(&markers)?.iter().all(Option::is_none) {
            return Ok(None);
        }
        match parse_uri(uri)? {
            Some(url) => Self::open_icechunk(&self.display, Location::Remote(&url), options).map(Some),
            None => Ok(None),
        }
    }

    /// The version read, for Icechunk repositories.
    pub fn version(&self) -> Option<&Version> {
        self.version.as_ref()
    }

    /// The id of the Icechunk snapshot read, whatever version named it.
    pub fn snapshot(&self) -> Option<&str> {
        self.repository.as_ref().map(|(_, id)| id.as_str())
    }

    fn open_remote(url: &Url, options: &ReadOptions) -> Result<Arc<Self>> {
        let display = display_uri(url);
        let (store, prefix, redactor) = config::build_store(&display, url, &options.storage_options)?;
        let (retries, budget) = config::retry_policy(&display, &options.storage_options)?;
        let kind = match object_store::ObjectStoreScheme::parse(url).map(|(s, _)| s) {
            Ok(object_store::ObjectStoreScheme::AmazonS3) => "S3",
            Ok(object_store::ObjectStoreScheme::GoogleCloudStorage) => "GCS",
            Ok(object_store::ObjectStoreScheme::MicrosoftAzure) => "MicrosoftAzure",
            _ => "HTTP",
        };
        let store = Arc::new(verified::Verified::new(store, kind, retries, budget));
        let listable = !matches!(url.scheme(), "http" | "https")
            || object_store::ObjectStoreScheme::parse(url)
                .is_ok_and(|(s, _)| s != object_store::ObjectStoreScheme::Http);
        let remote = Arc::new(Remote::new(
            display.clone(),
            store,
            prefix,
            redactor,
            options.max_concurrency,
            listable,
        ));
        Ok(Arc::new(Self {
            display,
            storage: Arc::new(RemoteStorage(remote.clone())),
            local: None,
            remote: Some(remote),
            version: None,
            repository: None,
        }))
    }

    /// A store over an object store the caller configured, holding the Zarr
    /// store at its root (read as a remote store: prefetching, concurrency).
    pub fn from_object_store(
        uri: &str,
        store: Arc<dyn object_store::ObjectStore>,
        options: &ReadOptions,
    ) -> Arc<Self> {
        let store = Arc::new(verified::Verified::new(
            store,
            "object store",
            config::DEFAULT_MAX_RETRIES,
            std::time::Duration::from_secs_f64(config::DEFAULT_RETRY_TIMEOUT_SECS),
        ));
        let remote = Arc::new(Remote::new(
            uri.to_string(),
            store,
            object_store::path::Path::default(),
            config::Redactor::default(),
            options.max_concurrency,
            true,
        ));
        Arc::new(Self {
            display: uri.to_string(),
            storage: Arc::new(RemoteStorage(remote.clone())),
            local: None,
            remote: Some(remote),
            version: None,
            repository: None,
        })
    }

    /// A store over an already-opened zarrs storage (read as a local store).
    pub fn from_storage(uri: &str, storage: Arc<DynStorage>) -> Arc<Self> {
        Arc::new(Self {
            display: uri.to_string(),
            storage,
            local: None,
            remote: None,
            version: None,
            repository: None,
        })
    }

    /// What the metadata documents `keys` and the directories `dirs` (both
    /// relative to the store's root) look like now, if this store can tell
    /// whether they change: see [`identity`]. Object stores tell it only for
    /// documents read by [`Store::get_many`] with an `ETag`, and not for
    /// directories (a listing would cost what reading does).
    pub fn identity(&self, keys: &[String], dirs: &[String]) -> Option<Identity> {
        if let Some((_, snapshot)) = &self.repository {
            let branch = match &self.version {
                Some(Version::Branch(b)) => Some(b.clone()),
                _ => None,
            };
            return Some(Identity::Snapshot { id: snapshot.clone(), branch });
        }
        if let Some(local) = &self.local {
            let stamp = |p: &String| (p.clone(), FileStamp::of(&local.root().join(p)));
            return Some(Identity::Files(keys.iter().chain(dirs).map(stamp).collect()));
        }
        let remote = self.remote.as_ref()?;
        if !dirs.is_empty() {
            return None;
        }
        let etags: Option<Vec<(String, String)>> =
            keys.iter().map(|k| remote.etag(k).map(|e| (k.clone(), e))).collect();
        etags.map(Identity::Etags)
    }

    /// Whether `identity` still describes this store (`false` when that
    /// cannot be told, e.g. on an error).
    pub fn still(&self, identity: &Identity) -> bool {
        match identity {
            Identity::Files(stamps) => self.local.as_ref().is_some_and(|local| {
                stamps.iter().all(|(p, stamp)| FileStamp::of(&local.root().join(p)) == *stamp)
            }),
            Identity::Etags(etags) => self.remote.as_ref().is_some_and(|remote| remote.unchanged(etags)),
            Identity::Snapshot { id, branch } => match (&self.repository, branch) {
                (_, None) => true,
                (Some((repo, _)), Some(branch)) => repo.branch_tip(branch).is_ok_and(|tip| tip == *id),
                (None, Some(_)) => false,
            },
        }
    }

    /// What the objects of a chunk (`keys`) look like now, where a decoded
    /// copy can be told apart from a later rewrite
    /// (the scan stage's chunk cache): nothing to check in an Icechunk
    /// snapshot (it never changes), each file's stamp on local disk (`None`
    /// for a missing file), and `None` on object stores.
    pub fn chunk_stamp(&self, keys: &[StoreKey]) -> Option<Vec<Option<FileStamp>>> {
        if self.repository.is_some() {
            return Some(Vec::new());
        }
        let local = self.local.as_ref()?;
        Some(keys.iter().map(|k| FileStamp::of(&local.root().join(k.as_str()))).collect())
    }

    /// The store as shown in messages.
    pub fn display(&self) -> &str {
        &self.display
    }

    /// The storage zarrs reads arrays from.
    pub fn storage(&self) -> Arc<DynStorage> {
        self.storage.clone()
    }

    /// Whether reads cross a network (so round trips matter).
    pub fn is_remote(&self) -> bool {
        self.remote.is_some()
    }

    /// Whether the arrays of a group can be discovered by listing.
    pub fn listable(&self) -> bool {
        self.remote.as_ref().is_none_or(|r| r.listable())
    }

    fn storage_error(&self, key: &str, e: impl std::fmt::Display) -> ZarrMetaError {
        ZarrMetaError::Storage { store: self.display.clone(), message: format!("{key}: {e}") }
    }

    /// The values of `keys` (`None` where missing), fetched concurrently from
    /// object stores.
    pub fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Bytes>>> {
        if let Some(remote) = &self.remote {
            return remote.get_many(keys);
        }
        keys.iter()
            .map(|key| {
                let store_key = StoreKey::new(key.as_str()).map_err(|e| self.storage_error(key, e))?;
                self.storage.get(&store_key).map_err(|e| self.storage_error(key, e))
            })
            .collect()
    }

    /// Names of the child nodes ("directories") under `prefix` (`""` or `"a/"`).
    pub fn list_children(&self, prefix: &str) -> Result<Vec<String>> {
        if let Some(remote) = &self.remote {
            return remote.list_children(prefix);
        }
        if let Some(local) = &self.local {
            return local.child_directories(prefix).map_err(|message| ZarrMetaError::InvalidGroup {
                store: self.display.clone(),
                group: prefix.trim_end_matches('/').to_string(),
                message,
            });
        }
        let store_prefix = StorePrefix::new(prefix).map_err(|e| self.storage_error(prefix, e))?;
        let listing = self.storage.list_dir(&store_prefix).map_err(|e| self.storage_error(prefix, e))?;
        Ok(listing
            .prefixes()
            .iter()
            .filter_map(|p| p.as_str().strip_prefix(prefix).map(|s| s.trim_end_matches('/').to_string()))
            .collect())
    }

    /// Start listing `prefix` in parallel with the next requests (object
    /// stores only), saving a round trip if the listing is needed.
    pub fn start_listing(&self, prefix: &str) {
        if let Some(remote) = self.remote.as_ref().filter(|r| r.listable()) {
            remote.start_listing(prefix);
        }
    }

    /// Whether anything exists under `prefix` (to tell a missing store from a
    /// missing group).
    pub fn has_objects(&self, prefix: &str) -> Result<bool> {
        match &self.remote {
            Some(remote) => remote.has_objects(prefix),
            None => Ok(true),
        }
    }

    /// Start fetching `keys` for the scan `owner` (object stores only).
    pub fn prefetch(&self, owner: u64, keys: impl IntoIterator<Item = StoreKey>) {
        if let Some(remote) = &self.remote {
            remote.prefetch(owner, keys);
        }
    }

    /// Forget the unread prefetches of `keys` by the scan `owner`.
    pub fn forget(&self, owner: u64, keys: &[StoreKey]) {
        if let Some(remote) = &self.remote {
            remote.forget(owner, keys);
        }
    }

    /// Forget the unread prefetches of the scan `owner`.
    pub fn release(&self, owner: u64) {
        if let Some(remote) = &self.remote {
            remote.release(owner);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris() {
        let url = Url::parse("file:///tmp/a%20b.zarr").unwrap();
        assert_eq!(local_path("", Some(&url)).unwrap(), PathBuf::from("/tmp/a b.zarr"));
        assert_eq!(local_path("/tmp/x.zarr", None).unwrap(), PathBuf::from("/tmp/x.zarr"));
        let e = Store::open("ftp://host/x.zarr", &ReadOptions::default()).unwrap_err().to_string();
        assert!(e.contains("'ftp' is not supported"), "{e}");
        let url = Url::parse("https://user:pw@example.org/a/store.zarr/?sig=abc#f").unwrap();
        assert_eq!(display_uri(&url), "https://example.org/a/store.zarr");
    }
}
