//! Read options shared by every surface (`ZarrMetaSpec`, the SQL table
//! function's JSON argument): parsed once, strictly, here.

use serde::Deserialize;

use crate::error::{Result, ZarrMetaError};

/// Default number of rows per emitted `RecordBatch`.
pub const DEFAULT_BATCH_SIZE: usize = 65_536;

/// The option keys accepted everywhere, in documentation order.
pub const OPTION_KEYS: [&str; 6] = ["group", "arrays", "geometry_columns", "crs", "batch_size", "pushdown"];

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
        }
    }
}

impl ReadOptions {
    /// Parse options from a JSON object; unknown keys, wrong types and
    /// out-of-range values are errors that name the key.
    pub fn from_json(json: &str) -> Result<Self> {
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
        if self.batch_size == 0 {
            return Err(ZarrMetaError::InvalidOption("'batch_size' must be a positive integer".into()));
        }
        if let Some(arrays) = &self.arrays {
            if arrays.is_empty() {
                return Err(ZarrMetaError::InvalidOption("'arrays' must name at least one array".into()));
            }
        }
        Ok(())
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
    }
}
