//! Reading a group's node metadata: the group's own `zarr.json` (or v2
//! `.zgroup`/`.zattrs`), consolidated metadata where there is some, else the
//! listed arrays' `zarr.json` (or `.zarray`/`.zattrs`), in as few round trips
//! as the store allows.

use std::collections::HashMap;

use bytes::Bytes;
use serde_json::{Map, Value};

use crate::error::{Result, ZarrMetaError};
use crate::options::ReadOptions;
use crate::store::Store;

/// Arrays by name, with their metadata as read.
pub(super) type Arrays = Vec<(String, RawArrayMeta)>;

/// An array's metadata document as read, before it is checked.
#[derive(Clone)]
pub(super) struct RawArrayMeta {
    pub(super) json: Value,
    pub(super) v3: bool,
}

fn parse_json(key: &str, bytes: Option<&Bytes>) -> std::result::Result<Option<Value>, String> {
    bytes
        .map(|b| serde_json::from_slice(b).map_err(|e| format!("invalid metadata JSON in '{key}': {e}")))
        .transpose()
}

/// Keys a v3 group's `zarr.json` may hold without `must_understand: false`.
const V3_GROUP_KEYS: [&str; 4] = ["zarr_format", "node_type", "attributes", "consolidated_metadata"];

/// A group's metadata declares the format it was read as and (v3) carries no
/// extension this reader would have to understand.
fn check_group_format(json: &Value, v3: bool) -> std::result::Result<(), String> {
    let Value::Object(map) = json else {
        return Err(format!(
            "the group metadata ('{}') is not a JSON object",
            if v3 { "zarr.json" } else { ".zgroup" }
        ));
    };
    let want = if v3 { 3 } else { 2 };
    match map.get("zarr_format").and_then(Value::as_u64) {
        Some(f) if f == want => {}
        _ => return Err(format!("the group metadata has no valid 'zarr_format' (expected {want})")),
    }
    match unknown_extension(map, &V3_GROUP_KEYS).filter(|_| v3) {
        Some(key) => Err(format!(
            "the group metadata has the extension '{key}', which a reader must understand and this one does not"
        )),
        None => Ok(()),
    }
}

/// The first key of a v3 node's metadata that is neither `known` nor marked
/// `must_understand: false`: an extension a reader would have to understand.
pub(super) fn unknown_extension<'a>(map: &'a Map<String, Value>, known: &[&str]) -> Option<&'a str> {
    map.iter()
        .find(|(key, value)| {
            !known.contains(&key.as_str())
                && value.get("must_understand").and_then(Value::as_bool) != Some(false)
        })
        .map(|(key, _)| key.as_str())
}

/// A node's attributes: absent is empty; anything but a JSON object is an
/// error (ignoring it would silently drop what it says, e.g. the CRS).
pub(super) fn attributes_of(
    value: Option<&Value>,
    key: &str,
) -> std::result::Result<Map<String, Value>, String> {
    match value {
        None | Some(Value::Null) => Ok(Map::new()),
        Some(Value::Object(map)) => Ok(map.clone()),
        Some(other) => {
            let shown: String = other.to_string().chars().take(60).collect();
            Err(format!("the attributes in '{key}' are not a JSON object (got {shown})"))
        }
    }
}

/// What one round trip tells about a group: its attributes (`None` if it is
/// not a group) and, from consolidated metadata, its arrays.
pub(super) struct GroupNodes {
    pub(super) attributes: Option<Map<String, Value>>,
    pub(super) consolidated: Option<Vec<(String, RawArrayMeta)>>,
    /// The documents the answer comes from: what the group's identity covers.
    pub(super) keys: Vec<String>,
}

impl GroupNodes {
    pub(super) fn read(
        source: &Store,
        prefix: &str,
        use_consolidated: bool,
        invalid: impl Fn(String) -> ZarrMetaError,
    ) -> Result<Self> {
        let fetch = |keys: Vec<String>| -> Result<Vec<Option<Value>>> {
            let values = source.get_many(&keys)?;
            keys.iter()
                .zip(&values)
                .map(|(k, v)| parse_json(k, v.as_ref()))
                .collect::<std::result::Result<_, _>>()
                .map_err(&invalid)
        };
        // Zarr v3 first: the group's zarr.json, with the root's (whose
        // consolidated metadata may cover the group) in the same round.
        let nested = use_consolidated && !prefix.is_empty();
        let mut keys = vec![format!("{prefix}zarr.json")];
        if nested {
            keys.push("zarr.json".into());
        }
        let v3 = fetch(keys)?;
        if let Some(meta) = &v3[0] {
            if meta.get("node_type").and_then(Value::as_str) != Some("group") {
                return Err(invalid("is not a group (zarr.json node_type is not 'group')".into()));
            }
            check_group_format(meta, true).map_err(&invalid)?;
            let attributes = attributes_of(meta.get("attributes"), "zarr.json").map_err(&invalid)?;
            let mut consolidated = None;
            let mut keys = vec![format!("{prefix}zarr.json")];
            if use_consolidated {
                consolidated = consolidated_v3(meta, "").map_err(&invalid)?;
                if let (None, Some(Some(root))) = (&consolidated, v3.get(1)) {
                    consolidated = consolidated_v3(root, prefix).map_err(&invalid)?;
                    keys.push("zarr.json".into());
                }
            }
            return Ok(Self { attributes: Some(attributes), consolidated, keys });
        }
        // Zarr v2: .zgroup, .zattrs and consolidated .zmetadata (in the group or at the root).
        let mut keys = vec![format!("{prefix}.zgroup"), format!("{prefix}.zattrs")];
        let asked = keys.clone();
        if use_consolidated {
            keys.push(format!("{prefix}.zmetadata"));
            if nested {
                keys.push(".zmetadata".into());
            }
        }
        let mut v2 = fetch(keys)?;
        v2.resize(4, None);
        if v2[0].is_none() {
            return Ok(Self { attributes: None, consolidated: None, keys: Vec::new() });
        }
        if let Some(zgroup) = &v2[0] {
            check_group_format(zgroup, false).map_err(&invalid)?;
        }
        let attributes = attributes_of(v2[1].as_ref(), ".zattrs").map_err(&invalid)?;
        let mut keys = asked;
        let consolidated = match (&v2[2], &v2[3]) {
            (Some(zmeta), _) => {
                keys.push(format!("{prefix}.zmetadata"));
                consolidated_v2(zmeta, "").map_err(&invalid)?
            }
            (None, Some(zmeta)) => {
                keys.push(".zmetadata".into());
                consolidated_v2(zmeta, prefix).map_err(&invalid)?
            }
            (None, None) => None,
        };
        Ok(Self { attributes: Some(attributes), consolidated, keys })
    }
}

/// The group's arrays (direct children and nested ones, by relative path)
/// from v3 inline consolidated metadata of
/// the node `meta` (keys relative to it; `prefix` selects our group below it).
fn consolidated_v3(
    meta: &Value,
    prefix: &str,
) -> std::result::Result<Option<Vec<(String, RawArrayMeta)>>, String> {
    let Some(entries) = meta.get("consolidated_metadata").filter(|c| !c.is_null()) else {
        return Ok(None);
    };
    let entries = entries
        .get("metadata")
        .and_then(Value::as_object)
        .ok_or("consolidated_metadata has no 'metadata' object")?;
    if !prefix.is_empty() && !entries.contains_key(prefix.trim_end_matches('/')) {
        return Ok(None);
    }
    let mut out = Vec::new();
    for (path, node) in entries {
        // Nested arrays are kept too: validity arrays live in a subgroup.
        let Some(name) = path.strip_prefix(prefix).filter(|n| !n.is_empty()) else {
            continue;
        };
        match node.get("node_type").and_then(Value::as_str) {
            Some("array") => out.push((name.to_string(), RawArrayMeta { json: node.clone(), v3: true })),
            Some("group") => {}
            _ => {
                return Err(format!("consolidated metadata of '{path}' is neither array nor group metadata"))
            }
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(Some(out))
}

/// The group's arrays (direct children and nested ones, by relative path)
/// from a v2 `.zmetadata` document.
fn consolidated_v2(
    zmeta: &Value,
    prefix: &str,
) -> std::result::Result<Option<Vec<(String, RawArrayMeta)>>, String> {
    let entries =
        zmeta.get("metadata").and_then(Value::as_object).ok_or(".zmetadata has no 'metadata' object")?;
    if !entries.contains_key(&format!("{prefix}.zgroup")) {
        return Ok(None);
    }
    let mut out = Vec::new();
    for (key, node) in entries {
        let Some(name) =
            key.strip_prefix(prefix).and_then(|k| k.strip_suffix("/.zarray")).filter(|n| !n.is_empty())
        else {
            continue;
        };
        let mut json = node.clone();
        let Value::Object(m) = &mut json else {
            return Err(format!(".zmetadata entry '{key}' is not an object"));
        };
        let attrs =
            entries.get(&format!("{prefix}{name}/.zattrs")).cloned().unwrap_or(Value::Object(Map::new()));
        m.insert("attributes".into(), attrs);
        out.push((name.to_string(), RawArrayMeta { json, v3: false }));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(Some(out))
}

fn sorted_names(mut names: Vec<String>) -> Vec<String> {
    names.sort();
    names.dedup();
    names
}

/// The arrays a listing of the group finds. A listed name without any node
/// metadata is most often a stray directory, but may be a listing damaged on
/// the way (an object store's listing carries no checksum): the group is
/// listed once more, and the second listing is used if the two differ.
fn read_listed_arrays(source: &Store, prefix: &str) -> Result<Vec<(String, RawArrayMeta)>> {
    let names = sorted_names(source.list_children(prefix)?);
    let (found, unknown) = read_arrays_metadata(source, prefix, &names)?;
    if unknown.is_empty() && !names.is_empty() {
        return Ok(found);
    }
    let again = sorted_names(source.list_children(prefix)?);
    if again == names {
        return Ok(found);
    }
    Ok(read_arrays_metadata(source, prefix, &again)?.0)
}

/// Metadata of the arrays among `names` under `prefix`, fetched concurrently:
/// v3 `zarr.json` first, v2 `.zarray`/`.zattrs` where absent. Groups are
/// skipped; names with neither array nor v3 group metadata are returned second.
pub(super) fn read_arrays_metadata(
    source: &Store,
    prefix: &str,
    names: &[String],
) -> Result<(Arrays, Vec<String>)> {
    let store = source.display();
    let keys: Vec<String> = names.iter().map(|n| format!("{prefix}{n}/zarr.json")).collect();
    let v3 = source.get_many(&keys)?;
    let mut out = Vec::new();
    let mut v2_names = Vec::new();
    for ((name, key), value) in names.iter().zip(&keys).zip(&v3) {
        match parse_json(key, value.as_ref()).map_err(|m| ZarrMetaError::array(store, name, m))? {
            Some(meta) => match meta.get("node_type").and_then(Value::as_str) {
                Some("array") => out.push((name.clone(), RawArrayMeta { json: meta, v3: true })),
                // Nested groups are not columns.
                Some("group") => {}
                // Anything else must not silently drop a column.
                _ => {
                    return Err(ZarrMetaError::array(
                        store,
                        name,
                        format!("'{key}' is neither array nor group metadata (node_type must be \"array\")"),
                    ))
                }
            },
            None => v2_names.push(name.clone()),
        }
    }
    let mut unknown = Vec::new();
    if !v2_names.is_empty() {
        let keys: Vec<String> = v2_names
            .iter()
            .flat_map(|n| [format!("{prefix}{n}/.zarray"), format!("{prefix}{n}/.zattrs")])
            .collect();
        let values = source.get_many(&keys)?;
        for (i, name) in v2_names.iter().enumerate() {
            let err = |m| ZarrMetaError::array(store, name, m);
            let Some(mut meta) = parse_json(&keys[2 * i], values[2 * i].as_ref()).map_err(err)? else {
                unknown.push(name.clone());
                continue;
            };
            let attrs = parse_json(&keys[2 * i + 1], values[2 * i + 1].as_ref())
                .map_err(|m| ZarrMetaError::array(store, name, m))?
                .unwrap_or(Value::Object(Map::new()));
            if let Value::Object(m) = &mut meta {
                m.insert("attributes".into(), attrs);
            }
            out.push((name.clone(), RawArrayMeta { json: meta, v3: false }));
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok((out, unknown))
}

/// Where a group is, as messages name it.
pub(super) struct Place {
    /// The store as the user named it.
    pub(super) store: String,
    /// The group's path in the store, without a leading `/`.
    pub(super) group: String,
    /// The keys' prefix of the group's nodes (`""` or `"meta/"`).
    pub(super) prefix: String,
}

impl Place {
    pub(super) fn new(source: &Store, options: &ReadOptions) -> Self {
        let group = options.group_path().trim_start_matches('/').to_string();
        let prefix = if group.is_empty() { String::new() } else { format!("{group}/") };
        Self { store: source.display().to_string(), group, prefix }
    }

    /// The error of a group whose metadata is wrong.
    pub(super) fn invalid(&self, message: String) -> ZarrMetaError {
        ZarrMetaError::InvalidGroup { store: self.store.clone(), group: self.group.clone(), message }
    }
}

/// Arrays of the group in name order, and nested arrays (validity arrays) by
/// relative path: from consolidated metadata when the group has it, else
/// listed (or named by the `arrays` option) and read concurrently.
pub(super) fn discover_arrays(
    source: &Store,
    place: &Place,
    consolidated: Option<Vec<(String, RawArrayMeta)>>,
    options: &ReadOptions,
) -> Result<(Arrays, HashMap<String, RawArrayMeta>)> {
    let from_consolidated = consolidated.is_some();
    let mut nested = HashMap::new();
    let found: Vec<(String, RawArrayMeta)> = match consolidated {
        // Only direct children that are arrays are columns.
        Some(arrays) => {
            let (direct, deeper): (Vec<_>, Vec<_>) = arrays.into_iter().partition(|(n, _)| !n.contains('/'));
            nested.extend(deeper);
            direct
        }
        None if !source.listable() && options.arrays.is_none() => {
            return Err(ZarrMetaError::Unsupported(format!(
                "{}: the arrays of group '{}' cannot be listed over plain HTTP; the group needs consolidated \
                 metadata (write_meta writes it) or the 'arrays' option",
                place.store, place.group
            )))
        }
        // Named arrays are read directly: no listing, and arrays left out
        // are never read (a broken one cannot fail the query).
        None => match &options.arrays {
            Some(wanted) => read_arrays_metadata(source, &place.prefix, &sorted_names(wanted.clone()))?.0,
            None => read_listed_arrays(source, &place.prefix)?,
        },
    };
    let Some(wanted) = &options.arrays else {
        if found.is_empty() {
            return Err(
                place.invalid("has no arrays (a meta group holds one 1-D array per item field)".into())
            );
        }
        return Ok((found, nested));
    };
    let mut by_name: HashMap<String, RawArrayMeta> = found.into_iter().collect();
    // Consolidated metadata may predate an array the user asks for.
    let missing: Vec<String> = wanted.iter().filter(|w| !by_name.contains_key(*w)).cloned().collect();
    if from_consolidated && !missing.is_empty() {
        by_name.extend(read_arrays_metadata(source, &place.prefix, &missing)?.0);
    }
    let selected = wanted
        .iter()
        .map(|w| match by_name.remove(w) {
            Some(meta) => Ok((w.clone(), meta)),
            None => Err(ZarrMetaError::NotFound {
                store: place.store.clone(),
                what: format!("array '{w}' in group '{}'", place.group),
            }),
        })
        .collect::<Result<_>>()?;
    Ok((selected, nested))
}
