//! `list_versions`: the branches, tags and snapshots of an Icechunk repository.

use std::collections::BTreeMap;

use pyo3::prelude::*;
use sedonadb_zarr_meta_core::store::Store;
use sedonadb_zarr_meta_core::ReadOptions;

use crate::error::BindingError;

/// One snapshot: (id, parent id, commit time in µs since the epoch, message).
type Snapshot = (String, Option<String>, i64, String);

/// `(branches, tags, snapshots)` of the repository at `uri`: branch and tag
/// names mapped to snapshot ids, and every snapshot reachable from them,
/// newest first. Only `storage_options` of `options_json` is used.
#[pyfunction]
#[pyo3(signature = (uri, options_json=None))]
#[allow(clippy::type_complexity)]
pub fn list_versions(
    py: Python<'_>,
    uri: String,
    options_json: Option<String>,
) -> PyResult<(BTreeMap<String, String>, BTreeMap<String, String>, Vec<Snapshot>)> {
    let options = match options_json {
        Some(json) => ReadOptions::from_json(&json).map_err(BindingError::from)?,
        None => ReadOptions::default(),
    };
    let versions = py
        .detach(|| Store::open_repository(&uri, &options).and_then(|repo| repo.versions()))
        .map_err(BindingError::from)?;
    let snapshots =
        versions.snapshots.into_iter().map(|s| (s.id, s.parent_id, s.time_us, s.message)).collect();
    Ok((versions.branches, versions.tags, snapshots))
}
