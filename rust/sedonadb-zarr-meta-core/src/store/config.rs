//! Object-store configuration: the builders for each scheme, fed first from
//! object_store's standard environment variables and then from the
//! `storage_options` option (which wins), plus our retry and timeout policy
//! and the redaction of every secret from messages.

use std::sync::Arc;
use std::time::Duration;

use url::Url;

use crate::error::{Result, ZarrMetaError};
use crate::options::StorageOptions;

/// Retries of a failed request (5xx, connection reset, timeout) unless
/// `storage_options` says otherwise. object_store's own default (10 retries
/// within 3 minutes) makes an unreachable endpoint look like a hang.
pub const DEFAULT_MAX_RETRIES: usize = 3;
/// Time after which a request is no longer retried (seconds).
pub const DEFAULT_RETRY_TIMEOUT_SECS: f64 = 30.0;

/// Keys of `storage_options` we handle ourselves, for every scheme.
pub const OWN_KEYS: [&str; 2] = ["max_retries", "retry_timeout"];

/// Names (lower case) of configuration keys whose values are secrets.
const SECRET_MARKERS: [&str; 7] = ["secret", "token", "password", "sas", "signature", "credential", "key"];

/// Replaces every configured secret in a message by `***`.
#[derive(Clone, Default)]
pub struct Redactor {
    secrets: Vec<String>,
}

impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Redactor({} secrets)", self.secrets.len())
    }
}

impl Redactor {
    fn add(&mut self, key: &str, value: &str) {
        let key = key.to_ascii_lowercase();
        // Short values would blank out ordinary words of a message.
        let flag = value.eq_ignore_ascii_case("true") || value.eq_ignore_ascii_case("false");
        if value.len() >= 4 && !flag && SECRET_MARKERS.iter().any(|m| key.contains(m)) {
            self.secrets.push(value.to_string());
        }
    }

    /// `message` with every secret replaced.
    pub fn redact(&self, message: &str) -> String {
        self.secrets.iter().fold(message.to_string(), |m, s| m.replace(s.as_str(), "***"))
    }
}

fn invalid(display: &str, message: String) -> ZarrMetaError {
    ZarrMetaError::InvalidOption(format!("{display}: {message}"))
}

/// Our own keys: retries and the retry time budget (seconds).
pub(crate) fn retry_policy(display: &str, options: &StorageOptions) -> Result<(usize, Duration)> {
    let mut max_retries = DEFAULT_MAX_RETRIES;
    let mut retry_timeout = Duration::from_secs_f64(DEFAULT_RETRY_TIMEOUT_SECS);
    if let Some(v) = options.0.get("max_retries") {
        max_retries = v.parse().map_err(|_| {
            invalid(
                display,
                format!("storage option 'max_retries' must be a non-negative integer, got '{v}'"),
            )
        })?;
    }
    if let Some(v) = options.0.get("retry_timeout") {
        let secs = v.trim_end_matches('s').parse::<f64>().ok().filter(|s| s.is_finite() && *s >= 0.0);
        let secs = secs.ok_or_else(|| {
            invalid(display, format!("storage option 'retry_timeout' must be a number of seconds, got '{v}'"))
        })?;
        retry_timeout = Duration::from_secs_f64(secs.min(86_400.0));
    }
    Ok((max_retries, retry_timeout))
}

/// Collects secrets of the environment variables a builder reads.
fn env_secrets(redactor: &mut Redactor, prefix: &str) {
    for (key, value) in std::env::vars() {
        if key.starts_with(prefix) {
            redactor.add(&key, &value);
        }
    }
}

/// Apply `options` to a builder, each key parsed by the scheme's key type.
fn apply<B, K>(
    display: &str,
    scheme: &str,
    mut builder: B,
    options: &StorageOptions,
    with: impl Fn(B, K, &str) -> B,
) -> Result<B>
where
    K: std::str::FromStr,
{
    for (key, value) in &options.0 {
        if OWN_KEYS.contains(&key.as_str()) {
            continue;
        }
        let parsed: K = key.parse().map_err(|_| {
            invalid(
                display,
                format!("unknown storage option '{key}' for {scheme} stores (expected object_store configuration keys, or one of: {})", OWN_KEYS.join(", ")),
            )
        })?;
        builder = with(builder, parsed, value);
    }
    Ok(builder)
}

/// `build_store` for one object_store major version: the 0.13 line serves
/// plain Zarr stores (with DataFusion), the 0.14 line Icechunk repositories
/// (icechunk 2.3 is built on it). Both are configured the same way.
macro_rules! build_store_fn {
    ($os:ident) => {
        /// Build the object store for `url` (whose scheme object_store recognised).
        /// Returns the store (rooted at the bucket, container or HTTP base), the path
        /// of the Zarr store inside it, and the redactor of the secrets involved.
        pub fn build_store(
            display: &str,
            url: &Url,
            options: &StorageOptions,
        ) -> Result<(Arc<dyn $os::ObjectStore>, $os::path::Path, Redactor)> {
            let (scheme, path) = $os::ObjectStoreScheme::parse(url).map_err(|e| {
                invalid(
                    display,
                    format!("not a valid object store URL ({e}); expected e.g. s3://bucket/path/store.zarr"),
                )
            })?;
            let (max_retries, retry_timeout) = retry_policy(display, options)?;
            let retry =
                $os::RetryConfig { max_retries, retry_timeout, backoff: $os::BackoffConfig::default() };
            let mut redactor = Redactor::default();
            for (key, value) in &options.0 {
                redactor.add(key, value);
            }
            match scheme {
                $os::ObjectStoreScheme::AmazonS3 => env_secrets(&mut redactor, "AWS_"),
                $os::ObjectStoreScheme::GoogleCloudStorage => env_secrets(&mut redactor, "GOOGLE_"),
                $os::ObjectStoreScheme::MicrosoftAzure => env_secrets(&mut redactor, "AZURE_"),
                _ => {}
            }
            let build_err = |e: $os::Error| invalid(display, redactor.redact(&e.to_string()));
            let (store, prefix): (Arc<dyn $os::ObjectStore>, $os::path::Path) = match scheme {
                $os::ObjectStoreScheme::AmazonS3 => {
                    let builder =
                        $os::aws::AmazonS3Builder::from_env().with_url(url.as_str()).with_retry(retry);
                    let builder =
                        apply(display, "s3://", builder, options, |b, k: $os::aws::AmazonS3ConfigKey, v| {
                            b.with_config(k, v)
                        })?;
                    (Arc::new(builder.build().map_err(build_err)?), path)
                }
                $os::ObjectStoreScheme::GoogleCloudStorage => {
                    let builder = $os::gcp::GoogleCloudStorageBuilder::from_env()
                        .with_url(url.as_str())
                        .with_retry(retry);
                    let builder =
                        apply(display, "gs://", builder, options, |b, k: $os::gcp::GoogleConfigKey, v| {
                            b.with_config(k, v)
                        })?;
                    (Arc::new(builder.build().map_err(build_err)?), path)
                }
                $os::ObjectStoreScheme::MicrosoftAzure => {
                    let builder = $os::azure::MicrosoftAzureBuilder::from_env()
                        .with_url(url.as_str())
                        .with_retry(retry);
                    let builder =
                        apply(display, "Azure", builder, options, |b, k: $os::azure::AzureConfigKey, v| {
                            b.with_config(k, v)
                        })?;
                    (Arc::new(builder.build().map_err(build_err)?), path)
                }
                $os::ObjectStoreScheme::Http => {
                    // The store's URL is the base; keys are relative to it.
                    let mut base = url.clone();
                    base.set_path(url.path().trim_end_matches('/'));
                    let mut builder = $os::http::HttpBuilder::new().with_url(base.as_str()).with_retry(retry);
                    if url.scheme() == "http" {
                        // The user wrote http:// explicitly.
                        builder = builder.with_config($os::ClientConfigKey::AllowHttp, "true");
                    }
                    let builder =
                        apply(display, "http(s)://", builder, options, |b, k: $os::ClientConfigKey, v| {
                            b.with_config(k, v)
                        })?;
                    (Arc::new(builder.build().map_err(build_err)?), $os::path::Path::default())
                }
                other => {
                    return Err(ZarrMetaError::Unsupported(format!(
                        "{display}: object store scheme {other:?} is not supported"
                    )))
                }
            };
            Ok((store, prefix, redactor))
        }
    };
}

/// Builders of the object_store line DataFusion and zarrs use.
pub mod v013 {
    use super::*;
    build_store_fn!(object_store);
}

/// Builders of the object_store line icechunk uses.
pub mod v014 {
    use super::*;
    build_store_fn!(object_store_icechunk);
}

pub use v013::build_store;

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(pairs: &[(&str, &str)]) -> StorageOptions {
        StorageOptions(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect())
    }

    #[test]
    fn unknown_keys_are_named() {
        let url = Url::parse("s3://bucket/store.zarr").unwrap();
        let e = build_store("s3://bucket/store.zarr", &url, &opts(&[("aws_endpoit", "x")]))
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("unknown storage option 'aws_endpoit'"), "{e}");
        let e = build_store("s3://bucket/store.zarr", &url, &opts(&[("max_retries", "many")]))
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("max_retries"), "{e}");
    }

    #[test]
    fn s3_store_and_prefix() {
        let url = Url::parse("s3://bucket/a/b/store.zarr").unwrap();
        let (_, prefix, redactor) = build_store(
            "s3://bucket/a/b/store.zarr",
            &url,
            &opts(&[
                ("aws_endpoint", "http://127.0.0.1:9"),
                ("aws_allow_http", "true"),
                ("aws_access_key_id", "AKIDEXAMPLE"),
                ("aws_secret_access_key", "wJalrXUtnFEMI"),
                ("aws_region", "us-east-1"),
            ]),
        )
        .unwrap();
        assert_eq!(prefix.as_ref(), "a/b/store.zarr");
        assert_eq!(redactor.redact("x wJalrXUtnFEMI y AKIDEXAMPLE"), "x *** y ***");
    }

    #[test]
    fn gcs_azure_and_http_stores_build_without_network() {
        let url = Url::parse("gs://bucket/cat/store.zarr").unwrap();
        let (_, prefix, _) = build_store("gs://bucket/cat/store.zarr", &url, &opts(&[])).unwrap();
        assert_eq!(prefix.as_ref(), "cat/store.zarr");
        let url = Url::parse("az://container/store.zarr").unwrap();
        let (_, prefix, redactor) = build_store(
            "az://container/store.zarr",
            &url,
            &opts(&[
                ("azure_storage_account_name", "acct"),
                ("azure_storage_account_key", "c2VjcmV0LWtleQ=="),
            ]),
        )
        .unwrap();
        assert_eq!(prefix.as_ref(), "store.zarr");
        assert_eq!(redactor.redact("key=c2VjcmV0LWtleQ=="), "key=***");
        let url = Url::parse("https://data.example.org/a/store.zarr").unwrap();
        let (_, prefix, _) = build_store("https://data.example.org/a/store.zarr", &url, &opts(&[])).unwrap();
        assert_eq!(prefix.as_ref(), "");
        let e =
            build_store("https://x/y", &Url::parse("https://x/y").unwrap(), &opts(&[("aws_region", "x")]))
                .err()
                .unwrap()
                .to_string();
        assert!(e.contains("unknown storage option 'aws_region' for http(s):// stores"), "{e}");
    }
}
