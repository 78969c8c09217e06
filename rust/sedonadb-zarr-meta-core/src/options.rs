//! Read options shared by every surface (`ZarrMetaSpec`, the SQL table
//! function's JSON argument): parsed once, strictly, here.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer};

use crate::error::{Result, ZarrMetaError};

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

/// Default number of rows per emitted `RecordBatch`.
pub const DEFAULT_BATCH_SIZE: usize = 65_536;

/// Default bound on concurrent requests to an object store.
pub const DEFAULT_MAX_CONCURRENCY: usize = 32;
/// Most arrays the `arrays` option may name.
pub const MAX_ARRAYS: usize = 65_536;
/// Largest accepted `max_concurrency`.
pub const MAX_CONCURRENCY: usize = 4096;
/// Options JSON longer than this is refused before it is parsed.
pub const MAX_OPTIONS_BYTES: usize = 1 << 20;

/// The option keys accepted everywhere, in documentation order.
pub const OPTION_KEYS: [&str; 13] = [
    "group",
    "arrays",
    "geometry_columns",
    "crs",
    "batch_size",
    "pushdown",
    "storage_options",
    "max_concurrency",
    "consolidated",
    "branch",
    "tag",
    "snapshot",
    "row_number",
];

/// Object-store configuration (`storage_options`): object_store keys such as
/// `aws_endpoint` or `google_service_account_key`, plus `max_retries` and
/// `retry_timeout`. Values may hold secrets, so `Debug` never shows them.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct StorageOptions(pub BTreeMap<String, String>);

impl std::fmt::Debug for StorageOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map().entries(self.0.keys().map(|k| (k, "<redacted>"))).finish()
    }
}

impl<'de> Deserialize<'de> for StorageOptions {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        use serde::de::Error;
        let map = BTreeMap::<String, serde_json::Value>::deserialize(deserializer)?;
        let mut out = BTreeMap::new();
        for (key, value) in map {
            // Never echo the value: it may be a secret.
            let text = match value {
                serde_json::Value::String(s) => s,
                serde_json::Value::Bool(b) => b.to_string(),
                serde_json::Value::Number(n) => n.to_string(),
                _ => {
                    return Err(D::Error::custom(format!(
                        "storage option '{key}' must be a string, number or boolean"
                    )))
                }
            };
            out.insert(key, text);
        }
        Ok(Self(out))
    }
}

/// How to read a `meta` group.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReadOptions {
    /// Path of the group inside the store (default `meta`; `""` or `/` is the root).
    #[serde(default = "default_group")]
    pub group: String,
    /// Only these arrays become columns (in this order); default: all, sorted by name.
    #[serde(default)]
    pub arrays: Option<Vec<String>>,
    /// Arrays to treat as geometry in addition to the detected ones.
    #[serde(default)]
    pub geometry_columns: Option<Vec<String>>,
    /// CRS to use for every geometry column, overriding the stored `proj:*` attributes.
    #[serde(default)]
    pub crs: Option<String>,
    /// Maximum rows per batch.
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    /// Use filters to skip chunks (on by default; off only to measure its effect).
    #[serde(default = "default_pushdown")]
    pub pushdown: bool,
    /// Object-store configuration; overrides the environment.
    #[serde(default)]
    pub storage_options: StorageOptions,
    /// At most this many requests to an object store at once.
    #[serde(default = "default_max_concurrency")]
    pub max_concurrency: usize,
    /// Use consolidated metadata when the store has it (default: for object
    /// stores only, where it saves round trips; local listings are cheap and
    /// never stale).
    #[serde(default)]
    pub consolidated: Option<bool>,
    /// Icechunk repositories: read the tip of this branch (default `main`).
    #[serde(default)]
    pub branch: Option<String>,
    /// Icechunk repositories: read the snapshot this tag names.
    #[serde(default)]
    pub tag: Option<String>,
    /// Icechunk repositories: read this snapshot (its id).
    #[serde(default)]
    pub snapshot: Option<String>,
    /// Add a column of this name holding each row's position in the group
    /// (0-based, `UInt64`): filters on it select row ranges without reading,
    /// and the scan is ordered by it.
    #[serde(default)]
    pub row_number: Option<String>,
}

fn default_max_concurrency() -> usize {
    DEFAULT_MAX_CONCURRENCY
}

fn default_pushdown() -> bool {
    true
}

fn default_group() -> String {
    "meta".to_string()
}

fn default_batch_size() -> usize {
    DEFAULT_BATCH_SIZE
}

impl Default for ReadOptions {
    fn default() -> Self {
        Self {
            group: default_group(),
            arrays: None,
            geometry_columns: None,
            crs: None,
            batch_size: DEFAULT_BATCH_SIZE,
            pushdown: true,
            storage_options: StorageOptions::default(),
            max_concurrency: DEFAULT_MAX_CONCURRENCY,
            consolidated: None,
            branch: None,
            tag: None,
            snapshot: None,
            row_number: None,
        }
    }
}

/// Whether `crs` has the form of a CRS: `AUTHORITY:CODE`, a PROJJSON object
/// or WKT2 (what hosts parse; anything else fails inside them, unnamed).
fn is_crs_text(crs: &str) -> bool {
    let t = crs.trim();
    if t.starts_with('{') {
        return matches!(serde_json::from_str::<serde_json::Value>(t), Ok(serde_json::Value::Object(_)));
    }
    if t.contains('[') {
        return true;
    }
    let word = |w: &str| !w.is_empty() && w.chars().all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
    matches!(t.split_once(':'), Some((authority, code)) if word(authority) && word(code))
}

impl ReadOptions {
    /// Parse options from a JSON object; unknown keys, wrong types and
    /// out-of-range values are errors that name the key.
    pub fn from_json(json: &str) -> Result<Self> {
        if json.len() > MAX_OPTIONS_BYTES {
            return Err(ZarrMetaError::InvalidOption(format!(
                "options JSON is {} bytes, more than the {MAX_OPTIONS_BYTES} accepted",
                json.len()
            )));
        }
        let value: serde_json::Value = serde_json::from_str(json)
            .map_err(|e| ZarrMetaError::InvalidOption(format!("options are not valid JSON: {e}")))?;
        Self::from_value(value)
    }

    /// Parse options from an already-decoded JSON value.
    pub fn from_value(value: serde_json::Value) -> Result<Self> {
        let serde_json::Value::Object(map) = &value else {
            return Err(ZarrMetaError::InvalidOption(format!("options must be a JSON object, got {value}")));
        };
        if let Some(key) = map.keys().find(|k| !OPTION_KEYS.contains(&k.as_str())) {
            return Err(ZarrMetaError::InvalidOption(format!(
                "unknown option '{key}' (expected one of: {})",
                OPTION_KEYS.join(", ")
            )));
        }
        let options: ReadOptions = serde_json::from_value(value).map_err(|e| {
            ZarrMetaError::InvalidOption(format!("{e} (expected keys: {})", OPTION_KEYS.join(", ")))
        })?;
        options.validate()?;
        Ok(options)
    }

    fn validate(&self) -> Result<()> {
        if self.row_number.as_deref().is_some_and(|n| n.trim().is_empty()) {
            return Err(ZarrMetaError::InvalidOption("'row_number' must name a column".into()));
        }
        if self.batch_size == 0 {
            return Err(ZarrMetaError::InvalidOption("'batch_size' must be a positive integer".into()));
        }
        if let Some(arrays) = &self.arrays {
            if arrays.is_empty() {
                return Err(ZarrMetaError::InvalidOption("'arrays' must name at least one array".into()));
            }
            if let Some(bad) =
                arrays.iter().find(|a| a.is_empty() || a.contains('/') || *a == "." || *a == "..")
            {
                return Err(ZarrMetaError::InvalidOption(format!(
                    "'arrays' entry '{bad}' is not the name of an array in the group"
                )));
            }
            let mut seen = std::collections::HashSet::with_capacity(arrays.len());
            if let Some(twice) = arrays.iter().find(|a| !seen.insert(a.as_str())) {
                return Err(ZarrMetaError::InvalidOption(format!("'arrays' names '{twice}' more than once")));
            }
        }
        if self.crs.as_deref().is_some_and(|c| c.trim().is_empty()) {
            return Err(ZarrMetaError::InvalidOption("'crs' must be a non-empty string".into()));
        }
        if let Some(crs) = self.crs.as_deref().filter(|c| !is_crs_text(c)) {
            let shown: String = crs.chars().take(60).collect();
            return Err(ZarrMetaError::InvalidOption(format!(
                "'crs' must be an authority code such as \"EPSG:32633\", a PROJJSON object or WKT2, got \"{shown}\""
            )));
        }
        let versions = [("branch", &self.branch), ("tag", &self.tag), ("snapshot", &self.snapshot)];
        let chosen: Vec<&str> = versions.iter().filter(|(_, v)| v.is_some()).map(|(k, _)| *k).collect();
        if chosen.len() > 1 {
            return Err(ZarrMetaError::InvalidOption(format!(
                "at most one of 'branch', 'tag' and 'snapshot' may be given, got {}",
                chosen.join(" and ")
            )));
        }
        if let Some((key, _)) =
            versions.iter().find(|(_, v)| v.as_deref().is_some_and(|v| v.trim().is_empty()))
        {
            return Err(ZarrMetaError::InvalidOption(format!("'{key}' must be a non-empty string")));
        }
        if self.max_concurrency == 0 || self.max_concurrency > MAX_CONCURRENCY {
            return Err(ZarrMetaError::InvalidOption(format!(
                "'max_concurrency' must be an integer from 1 to {MAX_CONCURRENCY}"
            )));
        }
        Ok(())
    }

    /// The Icechunk version these options choose, if any.
    pub fn version(&self) -> Option<Version> {
        match (&self.branch, &self.tag, &self.snapshot) {
            (Some(b), _, _) => Some(Version::Branch(b.clone())),
            (_, Some(t), _) => Some(Version::Tag(t.clone())),
            (_, _, Some(s)) => Some(Version::Snapshot(s.clone())),
            _ => None,
        }
    }

    /// The group path in the form zarrs expects (`/meta`, `/` for the root).
    pub fn group_path(&self) -> String {
        let trimmed = self.group.trim_matches('/');
        format!("/{trimmed}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_full_parse() {
        assert_eq!(ReadOptions::from_json("{}").unwrap(), ReadOptions::default());
        let o = ReadOptions::from_json(
            r#"{"group": "items/meta", "arrays": ["a", "b"], "geometry_columns": ["g"],
                "crs": "EPSG:4326", "batch_size": 10}"#,
        )
        .unwrap();
        assert_eq!(o.group_path(), "/items/meta");
        assert_eq!(o.arrays.as_deref(), Some(&["a".to_string(), "b".to_string()][..]));
        assert_eq!(o.batch_size, 10);
    }

    #[test]
    fn rejects_bad_options_naming_the_key() {
        let e = ReadOptions::from_json(r#"{"grop": "x"}"#).unwrap_err().to_string();
        assert!(e.contains("unknown option 'grop'"), "{e}");
        let e = ReadOptions::from_json(r#"{"batch_size": "x"}"#).unwrap_err().to_string();
        assert!(e.contains("invalid type"), "{e}");
        let e = ReadOptions::from_json(r#"{"batch_size": 0}"#).unwrap_err().to_string();
        assert!(e.contains("batch_size"), "{e}");
        let e = ReadOptions::from_json("[1]").unwrap_err().to_string();
        assert!(e.contains("JSON object"), "{e}");
        let e = ReadOptions::from_json("{").unwrap_err().to_string();
        assert!(e.contains("not valid JSON"), "{e}");
        let e = ReadOptions::from_json(r#"{"max_concurrency": 0}"#).unwrap_err().to_string();
        assert!(e.contains("max_concurrency"), "{e}");
        let e = ReadOptions::from_json(r#"{"crs": "meta"}"#).unwrap_err().to_string();
        assert!(e.contains("'crs' must be an authority code"), "{e}");
        for ok in [
            r#"{"crs": "EPSG:32633"}"#,
            r#"{"crs": "OGC:CRS84"}"#,
            r#"{"crs": "{\"type\": \"GeographicCRS\"}"}"#,
        ] {
            assert!(ReadOptions::from_json(ok).is_ok(), "{ok}");
        }
        let e = ReadOptions::from_json(r#"{"branch": "dev", "tag": "v1"}"#).unwrap_err().to_string();
        assert!(e.contains("at most one of 'branch', 'tag' and 'snapshot'"), "{e}");
        let e = ReadOptions::from_json(r#"{"tag": " "}"#).unwrap_err().to_string();
        assert!(e.contains("'tag' must be a non-empty string"), "{e}");
        let o = ReadOptions::from_json(r#"{"snapshot": "1CECHNKREP0F1RSTCMT0"}"#).unwrap();
        assert_eq!(o.version(), Some(Version::Snapshot("1CECHNKREP0F1RSTCMT0".into())));
    }

    #[test]
    fn storage_options_are_scalars_and_never_shown() {
        let o = ReadOptions::from_json(
            r#"{"storage_options": {"aws_secret_access_key": "s3cr3t-value", "aws_allow_http": true,
                "max_retries": 2}}"#,
        )
        .unwrap();
        assert_eq!(o.storage_options.0["aws_allow_http"], "true");
        assert_eq!(o.storage_options.0["max_retries"], "2");
        let shown = format!("{o:?}");
        assert!(!shown.contains("s3cr3t") && shown.contains("aws_secret_access_key"), "{shown}");
        let e = ReadOptions::from_json(r#"{"storage_options": {"aws_secret_access_key": ["s3cr3t"]}}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("aws_secret_access_key") && !e.contains("s3cr3t"), "{e}");
    }
}
