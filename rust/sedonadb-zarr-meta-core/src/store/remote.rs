//! Reading from object stores and Icechunk repositories: concurrent metadata
//! reads, chunk prefetching under a bound on requests in flight, and the
//! synchronous storage that zarrs decodes from.
//!
//! Over a network, latency and not decoding sets the time, so a scan asks
//! for the chunks it will need next before it needs them ([`Remote::prefetch`]);
//! zarrs' reads then find the bytes already here ([`RemoteStorage`]).

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use object_store::path::Path;
use object_store::prefix::PrefixStore;
use object_store::{ObjectStore, ObjectStoreExt};
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use zarrs_object_store::AsyncObjectStore;
use zarrs_storage::byte_range::{ByteRange, ByteRangeIterator};
use zarrs_storage::{
    AsyncListableStorageTraits, AsyncReadableListableStorageTraits, AsyncReadableStorageTraits,
    ListableStorageTraits, MaybeBytes, MaybeBytesIterator, ReadableStorageTraits, StorageError, StoreKey,
    StoreKeys, StoreKeysPrefixes, StorePrefix,
};

use super::config::Redactor;
use crate::error::{Result, ZarrMetaError};
use crate::runtime::{run, spawn};

/// The asynchronous zarrs storage chunks are fetched through.
type ZarrStore = dyn AsyncReadableListableStorageTraits;

/// Objects up to this size are read whole when a part of one is asked for
/// (a shard's index, then its inner chunks): one request serves the parts
/// that follow, and a whole object's bytes are checked against its digest
/// ([`super::verified`]), which a byte range cannot be.
const WHOLE_READ_LIMIT: u64 = 16 << 20;
/// Whole objects kept for the partial reads that follow: at most this many
/// bytes, for at most [`RECENT_FOR`].
const RECENT_BYTES: usize = 64 << 20;
const RECENT_FOR: Duration = Duration::from_secs(10);

/// Whole objects read recently for partial reads, most recent last.
#[derive(Default)]
struct Recent {
    objects: VecDeque<(String, Instant, Bytes)>,
    bytes: usize,
}

impl Recent {
    fn get(&mut self, key: &str) -> Option<Bytes> {
        while self.objects.front().is_some_and(|(_, at, _)| at.elapsed() > RECENT_FOR) {
            self.pop();
        }
        self.objects.iter().find(|(k, ..)| k == key).map(|(.., b)| b.clone())
    }

    fn put(&mut self, key: &str, bytes: Bytes) {
        if bytes.len() > RECENT_BYTES || self.objects.iter().any(|(k, ..)| k == key) {
            return;
        }
        while self.bytes + bytes.len() > RECENT_BYTES {
            self.pop();
        }
        self.bytes += bytes.len();
        self.objects.push_back((key.to_string(), Instant::now(), bytes));
    }

    fn pop(&mut self) {
        if let Some((.., b)) = self.objects.pop_front() {
            self.bytes -= b.len();
        }
    }
}

/// A chunk being fetched ahead of need by the scan `owner`.
struct Prefetched {
    owner: u64,
    task: JoinHandle<()>,
    result: Receiver<Result<MaybeBytes, StorageError>>,
}

/// An object store holding a Zarr store at its root, or another
/// asynchronous zarrs storage (an Icechunk session).
pub struct Remote {
    display: String,
    /// The object store, for typed errors and delimited listings (`None`
    /// for Icechunk sessions, which are read through `zarr` alone).
    store: Option<Arc<dyn ObjectStore>>,
    zarr: Arc<ZarrStore>,
    limit: Arc<Semaphore>,
    inflight: Mutex<HashMap<String, Prefetched>>,
    /// A listing started ahead of need: (prefix, its result).
    listing: Mutex<Option<(String, Receiver<Listing>)>>,
    recent: Mutex<Recent>,
    /// The `ETag` of each metadata document [`Remote::get_many`] read, by key.
    etags: Mutex<HashMap<String, String>>,
    redactor: Redactor,
    listable: bool,
    /// Whether this is an Icechunk session (whose messages need tidying).
    icechunk: bool,
}

/// Why a request failed: object_store's typed error, or zarrs' storage error.
enum Failure {
    Object(object_store::Error),
    Storage(StorageError),
}

type Listing = std::result::Result<Vec<String>, Failure>;

impl std::fmt::Debug for Remote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Remote").field("store", &self.display).finish_non_exhaustive()
    }
}

impl Remote {
    /// `store` rooted at `prefix`; at most `max_concurrency` requests at once.
    /// `listable` is false for plain HTTP servers, which cannot list.
    pub fn new(
        display: String,
        store: Arc<dyn ObjectStore>,
        prefix: Path,
        redactor: Redactor,
        max_concurrency: usize,
        listable: bool,
    ) -> Self {
        let store: Arc<dyn ObjectStore> =
            if prefix.as_ref().is_empty() { store } else { Arc::new(PrefixStore::new(store, prefix)) };
        Self {
            display,
            zarr: Arc::new(AsyncObjectStore::new(store.clone())),
            store: Some(store),
            limit: Arc::new(Semaphore::new(max_concurrency.max(1))),
            inflight: Mutex::new(HashMap::new()),
            listing: Mutex::new(None),
            recent: Mutex::default(),
            etags: Mutex::default(),
            redactor,
            listable,
            icechunk: false,
        }
    }

    /// A store read through an asynchronous zarrs storage (an Icechunk
    /// session); at most `max_concurrency` requests at once.
    pub fn over_storage(
        display: String,
        zarr: Arc<ZarrStore>,
        redactor: Redactor,
        max_concurrency: usize,
    ) -> Self {
        Self {
            display,
            zarr,
            store: None,
            limit: Arc::new(Semaphore::new(max_concurrency.max(1))),
            inflight: Mutex::new(HashMap::new()),
            listing: Mutex::new(None),
            recent: Mutex::default(),
            etags: Mutex::default(),
            redactor,
            listable: true,
            icechunk: true,
        }
    }

    /// Whether the store can list its keys (not plain HTTP).
    pub fn listable(&self) -> bool {
        self.listable
    }

    fn error(&self, key: &str, e: object_store::Error) -> ZarrMetaError {
        let message = self.redactor.redact(&e.to_string());
        let message = if key.is_empty() { message } else { format!("{key}: {message}") };
        match e {
            object_store::Error::NotFound { .. } => {
                ZarrMetaError::NotFound { store: self.display.clone(), what: format!("object '{key}'") }
            }
            object_store::Error::PermissionDenied { .. } | object_store::Error::Unauthenticated { .. } => {
                ZarrMetaError::PermissionDenied { store: self.display.clone(), message }
            }
            _ => ZarrMetaError::Storage { store: self.display.clone(), message },
        }
    }

    fn failure(&self, key: &str, f: Failure) -> ZarrMetaError {
        match f {
            Failure::Object(e) => self.error(key, e),
            Failure::Storage(e) => ZarrMetaError::Storage {
                store: self.display.clone(),
                message: format!("{key}: {}", self.describe(&e.to_string())),
            },
        }
    }

    /// A storage error's message for users: secrets removed; for Icechunk,
    /// without the (empty) span trace icechunk appends, and saying what a
    /// missing object is.
    fn describe(&self, message: &str) -> String {
        let message = self.redactor.redact(message);
        if !self.icechunk {
            return message;
        }
        let message = message.split("\n\ncontext:").next().unwrap_or_default().trim_end();
        if message.ends_with("object not found") {
            format!(
                "{message} (a file this snapshot of the Icechunk repository refers to, a manifest or a chunk, \
                 is missing)"
            )
        } else if ["icechunk header", "magic numbers", "deserializ", "flatbuffer"]
            .iter()
            .any(|m| message.contains(m))
        {
            format!("{message} (a file this snapshot of the Icechunk repository refers to, such as a manifest, is damaged)")
        } else {
            message.to_string()
        }
    }

    fn cancelled(&self, key: &str, message: String) -> ZarrMetaError {
        ZarrMetaError::Storage { store: self.display.clone(), message: format!("{key}: {message}") }
    }

    /// Fetch `keys` concurrently; a missing key is `None`.
    pub fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Bytes>>> {
        let requests: Vec<_> = keys
            .iter()
            .map(|key| {
                let store = self.store.clone();
                let zarr = self.zarr.clone();
                let limit = self.limit.clone();
                let key = key.clone();
                async move {
                    let _permit = limit.acquire_owned().await;
                    let Some(store) = store else {
                        let key = StoreKey::new(key).map_err(|e| Failure::Storage(e.into()))?;
                        return zarr.get(&key).await.map(|b| b.map(|b| (b, None))).map_err(Failure::Storage);
                    };
                    let result = match store.get(&Path::from(key.as_str())).await {
                        Ok(found) => {
                            let etag = found.meta.e_tag.clone();
                            found.bytes().await.map(|b| Some((b, etag)))
                        }
                        Err(e) => Err(e),
                    };
                    match result {
                        Err(object_store::Error::NotFound { .. }) => Ok(None),
                        other => other.map_err(Failure::Object),
                    }
                }
            })
            .collect();
        let results = run(futures::future::join_all(requests))
            .map_err(|m| self.cancelled(keys.first().map_or("", String::as_str), m))?;
        let mut out = Vec::with_capacity(keys.len());
        for (key, result) in keys.iter().zip(results) {
            let found = result.map_err(|f| self.failure(key, f))?;
            if let (Some((_, Some(etag))), Ok(mut etags)) = (&found, self.etags.lock()) {
                etags.insert(key.clone(), etag.clone());
            }
            out.push(found.map(|(bytes, _)| bytes));
        }
        Ok(out)
    }

    /// The `ETag` the document `key` had when [`Remote::get_many`] read it.
    pub fn etag(&self, key: &str) -> Option<String> {
        self.etags.lock().ok()?.get(key).cloned()
    }

    /// Whether every document of `etags` still has the `ETag` it was read at:
    /// one conditional request each, concurrently (a `304` has no body).
    pub fn unchanged(&self, etags: &[(String, String)]) -> bool {
        let Some(store) = self.store.clone() else { return false };
        let requests: Vec<_> = etags
            .iter()
            .map(|(key, etag)| {
                let (store, limit) = (store.clone(), self.limit.clone());
                let (path, etag) = (Path::from(key.as_str()), etag.clone());
                async move {
                    let _permit = limit.acquire_owned().await;
                    let options = object_store::GetOptions {
                        if_none_match: Some(etag.clone()),
                        head: true,
                        ..Default::default()
                    };
                    match store.get_opts(&path, options).await {
                        Err(object_store::Error::NotModified { .. }) => true,
                        // A server that ignores the condition answers with the current ETag.
                        Ok(result) => result.meta.e_tag.as_deref() == Some(etag.as_str()),
                        Err(_) => false,
                    }
                }
            })
            .collect();
        run(futures::future::join_all(requests)).is_ok_and(|answers| answers.into_iter().all(|same| same))
    }

    fn list_request(&self, prefix: &str) -> impl Future<Output = Listing> + Send + 'static {
        let store = self.store.clone();
        let zarr = self.zarr.clone();
        let prefix = prefix.to_string();
        async move {
            let Some(store) = store else {
                let store_prefix =
                    StorePrefix::new(prefix.as_str()).map_err(|e| Failure::Storage(e.into()))?;
                let listing = zarr.list_dir(&store_prefix).await.map_err(Failure::Storage)?;
                return Ok(listing
                    .prefixes()
                    .iter()
                    .filter_map(|p| p.as_str().strip_prefix(prefix.as_str()))
                    .map(|p| p.trim_end_matches('/').to_string())
                    .collect());
            };
            let path = Path::from(prefix.trim_end_matches('/'));
            let path = (!path.as_ref().is_empty()).then_some(path);
            let listing = store.list_with_delimiter(path.as_ref()).await.map_err(Failure::Object)?;
            Ok(listing.common_prefixes.iter().filter_map(|p| p.filename().map(str::to_string)).collect())
        }
    }

    /// Start listing `prefix` now, in parallel with other requests; the next
    /// [`Remote::list_children`] of the same prefix takes the result.
    pub fn start_listing(&self, prefix: &str) {
        if let Ok(mut listing) = self.listing.lock() {
            let (_task, rx) = spawn(self.list_request(prefix));
            *listing = Some((prefix.to_string(), rx));
        }
    }

    /// Names of the "directories" directly under `prefix` (`""` or `"a/b/"`).
    pub fn list_children(&self, prefix: &str) -> Result<Vec<String>> {
        let started = self.listing.lock().ok().and_then(|mut l| l.take()).filter(|(p, _)| p == prefix);
        let result = match started {
            Some((_, rx)) => rx.recv().map_err(|_| "the request was cancelled".to_string()),
            None => run(self.list_request(prefix)),
        };
        result.map_err(|m| self.cancelled(prefix, m))?.map_err(|f| self.failure(prefix, f))
    }

    /// Whether any object exists under `prefix`.
    pub fn has_objects(&self, prefix: &str) -> Result<bool> {
        let Some(store) = self.store.clone().filter(|_| self.listable) else {
            return Ok(true);
        };
        let path = Path::from(prefix.trim_end_matches('/'));
        let first = run(async move {
            let path = (!path.as_ref().is_empty()).then_some(path);
            store.list(path.as_ref()).next().await
        })
        .map_err(|m| self.cancelled(prefix, m))?;
        match first {
            None => Ok(false),
            Some(Ok(_)) => Ok(true),
            Some(Err(object_store::Error::NotFound { .. })) => Ok(false),
            // A missing bucket or container answers a listing with 404.
            Some(Err(e)) if e.to_string().contains("404 Not Found") => Ok(false),
            Some(Err(e)) => Err(self.error(prefix, e)),
        }
    }

    /// Start fetching `keys` for the scan `owner` (keys already on their way
    /// are skipped). The bytes wait until zarrs reads them or `owner` releases.
    pub fn prefetch(&self, owner: u64, keys: impl IntoIterator<Item = StoreKey>) {
        let Ok(mut inflight) = self.inflight.lock() else { return };
        for key in keys {
            if inflight.contains_key(key.as_str()) {
                continue;
            }
            let zarr = self.zarr.clone();
            let limit = self.limit.clone();
            let name = key.as_str().to_string();
            let (task, result) = spawn(async move {
                let _permit = limit.acquire_owned().await;
                zarr.get(&key).await
            });
            inflight.insert(name, Prefetched { owner, task, result });
        }
    }

    /// Cancel and forget the fetches of `keys` that `owner` started and nobody read.
    pub fn forget(&self, owner: u64, keys: &[StoreKey]) {
        if let Ok(mut inflight) = self.inflight.lock() {
            for key in keys {
                if inflight.get(key.as_str()).is_some_and(|p| p.owner == owner) {
                    if let Some(p) = inflight.remove(key.as_str()) {
                        p.task.abort();
                    }
                }
            }
        }
    }

    /// Cancel and forget every fetch `owner` started and nobody read.
    pub fn release(&self, owner: u64) {
        if let Ok(mut inflight) = self.inflight.lock() {
            inflight.retain(|_, p| {
                if p.owner == owner {
                    p.task.abort();
                }
                p.owner != owner
            });
        }
    }

    /// The prefetched value of `key`, if a fetch was started (waits for it).
    fn take(&self, key: &StoreKey) -> Option<Result<MaybeBytes, StorageError>> {
        let prefetched = self.inflight.lock().ok()?.remove(key.as_str())?;
        Some(prefetched.result.recv().unwrap_or_else(|_| {
            Err(StorageError::Other(format!("{}: the prefetch was cancelled", key.as_str())))
        }))
    }

    fn storage_error(&self, key: &str, e: StorageError) -> StorageError {
        StorageError::Other(format!("{key}: {}", self.describe(&e.to_string())))
    }

    /// Run one zarrs storage request under the concurrency bound.
    fn request<T: Send + 'static, F>(
        &self,
        key: &str,
        f: impl FnOnce(Arc<ZarrStore>) -> F,
    ) -> Result<T, StorageError>
    where
        F: Future<Output = Result<T, StorageError>> + Send + 'static,
    {
        let limit = self.limit.clone();
        let future = f(self.zarr.clone());
        run(async move {
            let _permit = limit.acquire_owned().await;
            future.await
        })
        .map_err(StorageError::Other)
        .and_then(|r| r)
        .map_err(|e| self.storage_error(key, e))
    }
}

impl Drop for Remote {
    fn drop(&mut self) {
        if let Ok(inflight) = self.inflight.get_mut() {
            inflight.values().for_each(|p| p.task.abort());
        }
    }
}

/// The synchronous zarrs storage over a [`Remote`].
pub struct RemoteStorage(pub Arc<Remote>);

impl RemoteStorage {
    /// `ranges` of `key`, neither prefetched nor read recently: from the whole
    /// object where it is small (kept for the parts that follow), else by range.
    fn read_parts<'a>(
        &'a self,
        key: &StoreKey,
        ranges: Vec<ByteRange>,
    ) -> Result<MaybeBytesIterator<'a>, StorageError> {
        if self.0.store.is_some() {
            let size = ReadableStorageTraits::size_key(self, key)?;
            let Some(size) = size else { return Ok(None) };
            if size <= WHOLE_READ_LIMIT {
                let Some(bytes) = ReadableStorageTraits::get(self, key)? else { return Ok(None) };
                if let Ok(mut recent) = self.0.recent.lock() {
                    recent.put(key.as_str(), bytes.clone());
                }
                let parts = slice_ranges(key, &bytes, &ranges)?;
                return Ok(Some(Box::new(parts.into_iter().map(Ok))));
            }
        }
        let owned = key.clone();
        let parts: Option<Vec<Result<Bytes, StorageError>>> =
            self.0.request(key.as_str(), move |zarr| async move {
                match zarr.get_partial_many(&owned, Box::new(ranges.into_iter())).await? {
                    Some(stream) => Ok(Some(stream.collect::<Vec<_>>().await)),
                    None => Ok(None),
                }
            })?;
        Ok(parts.map(|p| Box::new(p.into_iter()) as Box<dyn Iterator<Item = _>>))
    }
}

fn slice_ranges(key: &StoreKey, bytes: &Bytes, ranges: &[ByteRange]) -> Result<Vec<Bytes>, StorageError> {
    let size = bytes.len() as u64;
    ranges
        .iter()
        .map(|r| {
            let range = r.to_range(size);
            if range.start > range.end || range.end > size {
                return Err(StorageError::Other(format!(
                    "{}: byte range {range:?} is outside the {size}-byte object",
                    key.as_str()
                )));
            }
            Ok(bytes.slice(range.start as usize..range.end as usize))
        })
        .collect()
}

impl ReadableStorageTraits for RemoteStorage {
    fn get(&self, key: &StoreKey) -> Result<MaybeBytes, StorageError> {
        if let Some(prefetched) = self.0.take(key) {
            return prefetched.map_err(|e| self.0.storage_error(key.as_str(), e));
        }
        let owned = key.clone();
        self.0.request(key.as_str(), move |zarr| async move { zarr.get(&owned).await })
    }

    fn get_partial_many<'a>(
        &'a self,
        key: &StoreKey,
        byte_ranges: ByteRangeIterator<'a>,
    ) -> Result<MaybeBytesIterator<'a>, StorageError> {
        let ranges: Vec<ByteRange> = byte_ranges.collect();
        let whole = match self.0.take(key) {
            Some(prefetched) => prefetched.map_err(|e| self.0.storage_error(key.as_str(), e))?,
            None => match self.0.recent.lock().ok().and_then(|mut r| r.get(key.as_str())) {
                Some(bytes) => Some(bytes),
                None => return self.read_parts(key, ranges),
            },
        };
        let Some(bytes) = whole else { return Ok(None) };
        let parts = slice_ranges(key, &bytes, &ranges)?;
        Ok(Some(Box::new(parts.into_iter().map(Ok))))
    }

    fn size_key(&self, key: &StoreKey) -> Result<Option<u64>, StorageError> {
        let owned = key.clone();
        self.0.request(key.as_str(), move |zarr| async move { zarr.size_key(&owned).await })
    }

    fn supports_get_partial(&self) -> bool {
        true
    }
}

impl ListableStorageTraits for RemoteStorage {
    fn list(&self) -> Result<StoreKeys, StorageError> {
        self.0.request("", |zarr| async move { zarr.list().await })
    }

    fn list_prefix(&self, prefix: &StorePrefix) -> Result<StoreKeys, StorageError> {
        let owned = prefix.clone();
        self.0.request(prefix.as_str(), move |zarr| async move { zarr.list_prefix(&owned).await })
    }

    fn list_dir(&self, prefix: &StorePrefix) -> Result<StoreKeysPrefixes, StorageError> {
        let owned = prefix.clone();
        self.0.request(prefix.as_str(), move |zarr| async move { zarr.list_dir(&owned).await })
    }

    fn size_prefix(&self, prefix: &StorePrefix) -> Result<u64, StorageError> {
        let owned = prefix.clone();
        self.0.request(prefix.as_str(), move |zarr| async move { zarr.size_prefix(&owned).await })
    }
}
