//! An object store that checks every body it hands on: the bytes a reader
//! gets are the bytes the server holds, or the read fails (or is retried).
//!
//! object_store trusts a response's framing. A `Content-Length` that lies
//! short ends a body early without an error; a proxy's HTML error page with
//! status 200 is a body like any other; bits flipped on a plain-HTTP path go
//! unnoticed; a `Content-Length` that lies long sizes a buffer before the
//! bytes arrive. So here every body is collected with its size bounded by what
//! its headers announce (and never allocated from that announcement alone),
//! must be exactly the announced range, and:
//!
//! - a whole object whose `ETag` is an MD5 digest (S3 and S3-compatible
//!   servers, for objects written in one request) must have that digest. Where
//!   a server's `ETag`s are not digests (S3 with SSE-KMS or SSE-C), two reads
//!   of the same version agree with each other but not with their `ETag`; the
//!   store then stops comparing digests;
//! - a byte range must come from the version of the object read before
//!   (`ETag`), so a shard's index and its inner chunks come from one version.
//!
//! A read that fails a check is repeated, within the store's retry count and
//! time budget; then it fails with a message naming the object and what was
//! wrong with it.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use futures::StreamExt;
use md5::{Digest, Md5};
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, GetResultPayload, ListResult, MultipartUpload, ObjectMeta,
    ObjectStore, PutMultipartOptions, PutOptions, PutPayload, PutResult, RenameOptions, Result,
};

/// Bytes reserved up front for a body: what its headers announce, at most
/// this (a lying `Content-Length` must not size an allocation).
const RESERVE_LIMIT: u64 = 64 << 20;
/// Objects whose `ETag` is remembered to pin later range reads to a version;
/// past this many, the oldest half is forgotten.
const PINNED_LIMIT: usize = 1 << 16;
/// First pause before repeating a read that failed a check.
const FIRST_BACKOFF: Duration = Duration::from_millis(50);

/// Whether this store's `ETag`s are MD5 digests of whole objects.
const DIGESTS_UNKNOWN: u8 = 0;
const DIGESTS_NO: u8 = 2;

/// The object store wrapper; see the module documentation.
#[derive(Debug)]
pub struct Verified {
    inner: Arc<dyn ObjectStore>,
    /// The kind of store, as object_store names it in messages ("S3", "HTTP").
    kind: &'static str,
    retries: usize,
    budget: Duration,
    digests: AtomicU8,
    pinned: Mutex<HashMap<Path, String>>,
}

/// Why a body was refused.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Refused(String);

fn refused(kind: &'static str, location: &Path, message: String) -> object_store::Error {
    object_store::Error::Generic { store: kind, source: Box::new(Refused(format!("{location}: {message}"))) }
}

/// The MD5 digest an `ETag` is, if it is one (32 hex digits, quoted or not).
fn etag_digest(etag: &str) -> Option<[u8; 16]> {
    let hex = etag.trim().trim_start_matches("W/").trim_matches('"');
    if hex.len() != 32 {
        return None;
    }
    let mut out = [0u8; 16];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// What one read returned, checked for its length.
struct Body {
    meta: ObjectMeta,
    range: Range<u64>,
    attributes: object_store::Attributes,
    bytes: Bytes,
}

impl Verified {
    /// `inner`, with a failed check repeated up to `retries` times within `budget`.
    pub fn new(inner: Arc<dyn ObjectStore>, kind: &'static str, retries: usize, budget: Duration) -> Self {
        Self {
            inner,
            kind,
            retries,
            budget,
            digests: AtomicU8::new(DIGESTS_UNKNOWN),
            pinned: Mutex::new(HashMap::new()),
        }
    }

    /// One read, its body collected: exactly the announced range, never more.
    async fn read(&self, location: &Path, options: GetOptions) -> Result<Body> {
        let result = self.inner.get_opts(location, options).await?;
        let expected = result.range.end.saturating_sub(result.range.start);
        let (meta, range, attributes) =
            (result.meta.clone(), result.range.clone(), result.attributes.clone());
        let mut stream = match result.payload {
            GetResultPayload::Stream(stream) => stream,
            // A local file: object_store reads exactly the range.
            GetResultPayload::File(..) => {
                return Ok(Body { bytes: result.bytes().await?, meta, range, attributes });
            }
        };
        let mut bytes = Vec::with_capacity(expected.min(RESERVE_LIMIT) as usize);
        while let Some(part) = stream.next().await {
            let part = part?;
            if bytes.len() as u64 + part.len() as u64 > expected {
                return Err(refused(
                    self.kind,
                    location,
                    format!("the response carries more than the {expected} bytes its headers announce"),
                ));
            }
            bytes.extend_from_slice(&part);
        }
        if bytes.len() as u64 != expected {
            return Err(refused(
                self.kind,
                location,
                format!(
                    "the response ended after {} of the {expected} bytes its headers announce",
                    bytes.len()
                ),
            ));
        }
        Ok(Body { meta, range, attributes, bytes: bytes.into() })
    }

    /// Whether `body`, read with `options`, is what the server holds: `Ok(None)`
    /// when it is, else what is wrong with it.
    fn check(
        &self,
        location: &Path,
        options: &GetOptions,
        body: &Body,
        previous: Option<&Body>,
    ) -> Option<String> {
        let etag = body.meta.e_tag.as_deref();
        if options.range.is_some() {
            let mut pinned = self.pinned.lock().ok()?;
            return match (pinned.get(location), etag) {
                (Some(seen), Some(now)) if seen != now => {
                    Some(format!("the object changed while it was read (ETag {seen} before, {now} now)"))
                }
                (None, Some(now)) => {
                    if pinned.len() >= PINNED_LIMIT {
                        let forget: Vec<Path> = pinned.keys().take(PINNED_LIMIT / 2).cloned().collect();
                        forget.iter().for_each(|k| drop(pinned.remove(k)));
                    }
                    pinned.insert(location.clone(), now.to_string());
                    None
                }
                _ => None,
            };
        }
        if let (Ok(mut pinned), Some(now)) = (self.pinned.lock(), etag) {
            if let Some(seen) = pinned.get_mut(location) {
                *seen = now.to_string();
            }
        }
        let digest = etag.and_then(etag_digest)?;
        if self.digests.load(Ordering::Relaxed) == DIGESTS_NO || body.range != (0..body.meta.size) {
            return None;
        }
        let actual: [u8; 16] = Md5::digest(&body.bytes).into();
        if actual == digest {
            return None;
        }
        // Two reads of one version that agree with each other and not with
        // their ETag: this server's ETags are not digests (SSE-KMS, SSE-C).
        if let Some(previous) = previous {
            if previous.meta.e_tag.as_deref() == etag && previous.bytes == body.bytes {
                self.digests.store(DIGESTS_NO, Ordering::Relaxed);
                return None;
            }
        }
        Some(format!(
            "the body's MD5 digest does not match its ETag {} (the bytes were damaged on the way)",
            etag.unwrap_or_default()
        ))
    }
}

impl Body {
    fn into_result(self) -> GetResult {
        GetResult {
            payload: GetResultPayload::Stream(
                futures::stream::once(futures::future::ready(Ok(self.bytes))).boxed(),
            ),
            meta: self.meta,
            range: self.range,
            attributes: self.attributes,
        }
    }
}

impl std::fmt::Display for Verified {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Verified({})", self.inner)
    }
}

#[async_trait]
impl ObjectStore for Verified {
    async fn put_opts(&self, location: &Path, payload: PutPayload, opts: PutOptions) -> Result<PutResult> {
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        if options.head {
            return self.inner.get_opts(location, options).await;
        }
        let started = Instant::now();
        let mut backoff = FIRST_BACKOFF;
        let mut previous: Option<Body> = None;
        let mut attempt = 0;
        loop {
            let error = match self.read(location, options.clone()).await {
                Ok(body) => match self.check(location, &options, &body, previous.as_ref()) {
                    None => return Ok(body.into_result()),
                    Some(problem) => {
                        previous = Some(body);
                        refused(self.kind, location, problem)
                    }
                },
                // object_store has retried what failed on its side already.
                Err(e) => return Err(e),
            };
            attempt += 1;
            if attempt > self.retries || started.elapsed() + backoff > self.budget {
                if let Ok(mut pinned) = self.pinned.lock() {
                    // The next read starts from whatever version the server holds then.
                    pinned.remove(location);
                }
                return Err(error);
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(2));
        }
    }

    async fn get_ranges(&self, location: &Path, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
        let mut out = Vec::with_capacity(ranges.len());
        for range in ranges {
            let options = GetOptions { range: Some(range.clone().into()), ..Default::default() };
            out.push(self.get_opts(location, options).await?.bytes().await?);
        }
        Ok(out)
    }

    fn delete_stream(&self, locations: BoxStream<'static, Result<Path>>) -> BoxStream<'static, Result<Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        self.inner.list(prefix)
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, Result<ObjectMeta>> {
        self.inner.list_with_offset(prefix, offset)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        self.inner.copy_opts(from, to, options).await
    }

    async fn rename_opts(&self, from: &Path, to: &Path, options: RenameOptions) -> Result<()> {
        self.inner.rename_opts(from, to, options).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::memory::InMemory;
    use object_store::ObjectStoreExt;

    #[test]
    fn etags_that_are_digests() {
        let d = etag_digest("\"0cc175b9c0f1b6a831c399e269772661\"").unwrap();
        assert_eq!(d[0], 0x0c);
        assert_eq!(etag_digest("\"0cc175b9c0f1b6a831c399e269772661-2\""), None);
        assert_eq!(etag_digest("abc"), None);
        assert_eq!(etag_digest("\"zzc175b9c0f1b6a831c399e269772661\""), None);
    }

    #[test]
    fn reads_pass_through_unchanged() {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let inner = Arc::new(InMemory::new());
            let path = Path::from("a/b");
            inner.put(&path, Bytes::from_static(b"hello world").into()).await.unwrap();
            let store = Verified::new(inner, "memory", 2, Duration::from_secs(5));
            assert_eq!(store.get(&path).await.unwrap().bytes().await.unwrap(), &b"hello world"[..]);
            assert_eq!(store.get_range(&path, 6..11).await.unwrap(), &b"world"[..]);
            assert_eq!(store.get_ranges(&path, &[0..1, 2..4]).await.unwrap(), vec![&b"h"[..], &b"ll"[..]]);
            assert_eq!(store.head(&path).await.unwrap().size, 11);
            assert!(matches!(
                store.get(&Path::from("missing")).await,
                Err(object_store::Error::NotFound { .. })
            ));
        });
    }
}
