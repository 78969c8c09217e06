//! Opening a store's `meta` group: locating it, listing its arrays, mapping
//! their types and building the Arrow schema — all without reading chunks.

use std::sync::Arc;

use arrow_schema::{DataType, Field, Schema, SchemaRef};
use bytes::Bytes;
use serde_json::{Map, Value};
use zarrs::array::{Array, ArrayMetadata};

use crate::decode::ColumnKind;
use crate::dtype::{self, DtypeMapping};
use crate::error::{Result, ZarrMetaError};
use crate::geometry::{self, Crs, GeometryEncoding, GEOMETRY_NAMES};
use crate::options::ReadOptions;
use crate::pruning::ChunkStats;
use crate::store::codec_guard::{Codec, CodecGuard, Layout};
pub use crate::store::DynStorage;
use crate::store::Store;

/// Arrays longer than this are refused as corrupt metadata rather than scanned.
pub const MAX_ROWS: u64 = 1 << 40;
/// Arrays with more chunks than this are refused (the chunk index is kept in memory).
pub const MAX_CHUNKS: u64 = 1 << 24;
/// A single decoded chunk may not exceed this many bytes.
pub const MAX_CHUNK_BYTES: u64 = 1 << 31;

/// One array of the group, ready to read.
pub struct MetaColumn {
    pub name: String,
    pub kind: ColumnKind,
    pub array: Array<DynStorage>,
    /// Chunk start rows followed by the array length: chunk `i` holds rows
    /// `bounds[i]..bounds[i + 1]`.
    pub chunk_bounds: Vec<u64>,
    pub attributes: Map<String, Value>,
    /// The column's validity array, when it declares one (`zarr_meta:validity`):
    /// `false` rows are null whatever the column holds.
    pub validity: Option<Box<MetaColumn>>,
    /// Whether whole chunks are read by [`crate::vlen`] instead of zarrs.
    pub direct_vlen: bool,
}

/// Column attribute naming the column's validity array, relative to the group.
pub const VALIDITY_ATTRIBUTE: &str = "zarr_meta:validity";
/// The group `write_meta` keeps validity arrays in (`_validity/<column>`).
pub const VALIDITY_GROUP: &str = "_validity";

/// An opened `meta` group: its columns and Arrow schema.
pub struct MetaGroup {
    /// The store as the user named it, for messages.
    pub store: String,
    pub group: String,
    pub attributes: Map<String, Value>,
    pub columns: Vec<MetaColumn>,
    pub num_rows: u64,
    pub schema: SchemaRef,
    pub options: ReadOptions,
    /// Per-chunk statistics from the group attributes, if present and current.
    pub stats: Option<ChunkStats>,
    /// Where the bytes come from (prefetching for remote stores).
    pub source: Arc<Store>,
}

impl std::fmt::Debug for MetaGroup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetaGroup")
            .field("store", &self.store)
            .field("group", &self.group)
            .field("num_rows", &self.num_rows)
            .field("schema", &self.schema)
            .finish()
    }
}

impl MetaGroup {
    /// Open `options.group` of the store at `uri`.
    pub fn open(uri: &str, options: ReadOptions) -> Result<Self> {
        let store = Store::open(uri, &options)?;
        match Self::open_store(store.clone(), options.clone()) {
            // An object store whose root holds an Icechunk repository.
            Err(e @ ZarrMetaError::NotFound { .. }) if store.version().is_none() && store.is_remote() => {
                match store.as_icechunk(uri, &options)? {
                    Some(repository) => Self::open_store(repository, options),
                    None => Err(e),
                }
            }
            other => other,
        }
    }

    /// Open a group of an already-opened zarrs storage.
    pub fn open_storage(uri: &str, storage: Arc<DynStorage>, options: ReadOptions) -> Result<Self> {
        Self::open_store(Store::from_storage(uri, storage), options)
    }

    /// Open a group of an opened store. Metadata is read in as few round
    /// trips as the store allows: the group's own metadata together with any
    /// consolidated metadata, then (without it) one listing and the arrays'
    /// metadata concurrently.
    pub fn open_store(source: Arc<Store>, options: ReadOptions) -> Result<Self> {
        let store = source.display().to_string();
        let group_path = options.group_path();
        let group_name = group_path.trim_start_matches('/').to_string();
        let prefix = if group_name.is_empty() { String::new() } else { format!("{group_name}/") };
        let use_consolidated = options.consolidated.unwrap_or(source.is_remote());

        let invalid = |m: String| ZarrMetaError::InvalidGroup {
            store: store.clone(),
            group: group_name.clone(),
            message: m,
        };
        if options.arrays.is_none() {
            // Without consolidated metadata the arrays must be listed: start
            // now, alongside the group's metadata, to save a round trip.
            source.start_listing(&prefix);
        }
        let nodes = GroupNodes::read(&source, &prefix, use_consolidated, invalid)?;
        let Some(group_attrs) = nodes.attributes else {
            let what =
                if source.has_objects("")? { format!("group '{group_name}'") } else { "store".to_string() };
            return Err(ZarrMetaError::NotFound { store, what });
        };

        // Only direct children that are arrays are columns; nested arrays
        // (validity arrays) are looked up by path when a column names one.
        let from_consolidated = nodes.consolidated.is_some();
        let mut nested: std::collections::HashMap<String, RawArrayMeta> = std::collections::HashMap::new();
        let found: Vec<(String, RawArrayMeta)> = match nodes.consolidated {
            Some(arrays) => {
                let (direct, deeper): (Vec<_>, Vec<_>) =
                    arrays.into_iter().partition(|(n, _)| !n.contains('/'));
                nested.extend(deeper);
                direct
            }
            None if !source.listable() && options.arrays.is_none() => {
                return Err(ZarrMetaError::Unsupported(format!(
                    "{store}: the arrays of group '{group_name}' cannot be listed over plain HTTP; the group \
                     needs consolidated metadata (write_meta writes it) or the 'arrays' option"
                )))
            }
            // Named arrays are read directly: no listing, and arrays left out
            // are never read (a broken one cannot fail the query).
            None => match &options.arrays {
                Some(wanted) => read_arrays_metadata(&source, &prefix, &sorted_names(wanted.clone()))?.0,
                None => read_listed_arrays(&source, &prefix)?,
            },
        };
        if found.is_empty() && options.arrays.is_none() {
            return Err(invalid("has no arrays (a meta group holds one 1-D array per item field)".into()));
        }
        let found = match &options.arrays {
            // Consolidated metadata may predate an array the user asks for.
            Some(wanted) if from_consolidated => {
                let known: std::collections::HashSet<&str> = found.iter().map(|(n, _)| n.as_str()).collect();
                let missing: Vec<String> =
                    wanted.iter().filter(|w| !known.contains(w.as_str())).cloned().collect();
                let mut all = found;
                if !missing.is_empty() {
                    all.extend(read_arrays_metadata(&source, &prefix, &missing)?.0);
                }
                all
            }
            _ => found,
        };

        let selected: Vec<(String, RawArrayMeta)> = match &options.arrays {
            None => found,
            Some(wanted) => {
                let mut by_name: std::collections::HashMap<String, RawArrayMeta> =
                    found.into_iter().collect();
                let mut out = Vec::with_capacity(wanted.len());
                for w in wanted {
                    let meta = by_name.remove(w).ok_or_else(|| ZarrMetaError::NotFound {
                        store: store.clone(),
                        what: format!("array '{w}' in group '{group_name}'"),
                    })?;
                    out.push((w.clone(), meta));
                }
                out
            }
        };
        if let Some(geoms) = &options.geometry_columns {
            for g in geoms {
                if !selected.iter().any(|(n, _)| n == g) {
                    return Err(ZarrMetaError::InvalidOption(format!(
                        "geometry column '{g}' is not an array of group '{group_name}' in {store}"
                    )));
                }
            }
        }

        let storage = source.storage();
        let user_crs = options.crs.as_deref().map(Crs::from_user);
        let mut columns = Vec::with_capacity(selected.len());
        let mut fields = Vec::with_capacity(selected.len());
        let mut num_rows: Option<(u64, String)> = None;
        for (name, raw) in selected {
            let column = open_column(&store, &storage, &prefix, &name, raw, &options)?;
            let len = *column.chunk_bounds.last().unwrap_or(&0);
            match &num_rows {
                None => num_rows = Some((len, name.clone())),
                Some((n, first)) if *n != len => {
                    return Err(ZarrMetaError::InvalidGroup {
                        store: store.clone(),
                        group: group_name.clone(),
                        message: format!(
                            "arrays have different lengths: '{first}' has {n} rows but '{name}' has {len}"
                        ),
                    })
                }
                _ => {}
            }
            let mut field = Field::new(&name, column.kind.arrow_type(), column.kind.nullable());
            if matches!(column.kind, ColumnKind::Geometry(..)) {
                let crs = user_crs
                    .clone()
                    .unwrap_or_else(|| geometry::resolve_crs(&column.attributes, &group_attrs));
                field = field.with_metadata(geometry::geoarrow_field_metadata(&crs));
            }
            fields.push(field);
            columns.push(column);
        }
        attach_validity(&source, &storage, &prefix, &mut columns, &mut fields, nested, &options)?;

        let mut group = Self {
            store,
            group: group_name,
            attributes: group_attrs,
            columns,
            num_rows: num_rows.map_or(0, |(n, _)| n),
            schema: Arc::new(Schema::new(fields)),
            options,
            stats: None,
            source,
        };
        group.stats = ChunkStats::from_group(&group);
        Ok(group)
    }

    /// Index of the column called `name`.
    pub fn column_index(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c.name == name)
    }
}

impl ColumnKind {
    /// Whether the Arrow field may hold nulls (NaT, empty geometries).
    pub fn nullable(&self) -> bool {
        matches!(self, ColumnKind::Timestamp(_) | ColumnKind::Duration(_) | ColumnKind::Geometry(..))
    }
}

#[derive(Clone)]
struct RawArrayMeta {
    json: Value,
    v3: bool,
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

/// A node's attributes: absent is empty; anything but a JSON object is an
/// error (ignoring it would silently drop what it says, e.g. the CRS).
fn attributes_of(value: Option<&Value>, key: &str) -> std::result::Result<Map<String, Value>, String> {
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
struct GroupNodes {
    attributes: Option<Map<String, Value>>,
    consolidated: Option<Vec<(String, RawArrayMeta)>>,
}

impl GroupNodes {
    fn read(
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
            if use_consolidated {
                consolidated = consolidated_v3(meta, "").map_err(&invalid)?;
                if let (None, Some(Some(root))) = (&consolidated, v3.get(1)) {
                    consolidated = consolidated_v3(root, prefix).map_err(&invalid)?;
                }
            }
            return Ok(Self { attributes: Some(attributes), consolidated });
        }
        // Zarr v2: .zgroup, .zattrs and consolidated .zmetadata (in the group or at the root).
        let mut keys = vec![format!("{prefix}.zgroup"), format!("{prefix}.zattrs")];
        if use_consolidated {
            keys.push(format!("{prefix}.zmetadata"));
            if nested {
                keys.push(".zmetadata".into());
            }
        }
        let mut v2 = fetch(keys)?;
        v2.resize(4, None);
        if v2[0].is_none() {
            return Ok(Self { attributes: None, consolidated: None });
        }
        if let Some(zgroup) = &v2[0] {
            check_group_format(zgroup, false).map_err(&invalid)?;
        }
        let attributes = attributes_of(v2[1].as_ref(), ".zattrs").map_err(&invalid)?;
        let consolidated = match (&v2[2], &v2[3]) {
            (Some(zmeta), _) => consolidated_v2(zmeta, "").map_err(&invalid)?,
            (None, Some(zmeta)) => consolidated_v2(zmeta, prefix).map_err(&invalid)?,
            (None, None) => None,
        };
        Ok(Self { attributes: Some(attributes), consolidated })
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
fn read_arrays_metadata(
    source: &Store,
    prefix: &str,
    names: &[String],
) -> Result<(Vec<(String, RawArrayMeta)>, Vec<String>)> {
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

/// The id of the v2 filter/compressor that encodes object (`|O`) elements.
fn v2_object_codec(meta: &Value) -> Option<String> {
    let ids = meta
        .get("filters")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .chain(meta.get("compressor"))
        .filter_map(|f| f.get("id").and_then(Value::as_str));
    ids.into_iter().find(|id| id.starts_with("vlen-")).map(str::to_string)
}

fn open_column(
    store: &str,
    storage: &Arc<DynStorage>,
    prefix: &str,
    name: &str,
    raw: RawArrayMeta,
    options: &ReadOptions,
) -> Result<MetaColumn> {
    let err = |m: String| ZarrMetaError::array(store, name, m);
    let mut json = raw.json;
    check_format(&json, raw.v3).map_err(err)?;
    let shape: Vec<u64> = json
        .get("shape")
        .and_then(Value::as_array)
        .ok_or_else(|| err("metadata has no valid 'shape'".into()))?
        .iter()
        .map(|v| v.as_u64().ok_or_else(|| err(format!("invalid shape entry {v}"))))
        .collect::<Result<_>>()?;
    if shape.len() != 1 {
        return Err(err(format!(
            "is {}-dimensional (shape {shape:?}); meta arrays must be 1-D",
            shape.len()
        )));
    }
    if shape[0] > MAX_ROWS {
        return Err(err(format!("declared length {} is implausibly large", shape[0])));
    }
    let attributes =
        attributes_of(json.get("attributes"), if raw.v3 { "zarr.json" } else { ".zattrs" }).map_err(err)?;

    let mapping: DtypeMapping = if raw.v3 {
        dtype::from_v3(json.get("data_type").unwrap_or(&Value::Null))
    } else {
        dtype::from_v2(json.get("dtype").unwrap_or(&Value::Null), v2_object_codec(&json).as_deref())
    }
    .map_err(err)?;

    let kind = geometry_kind(name, mapping.kind.clone(), &attributes, options).map_err(err)?;

    // Patch the metadata so zarrs can decode types it does not know natively.
    let dtype_key = if raw.v3 { "data_type" } else { "dtype" };
    if let (Value::Object(m), Some(replacement)) = (&mut json, &mapping.zarrs_dtype) {
        m.insert(dtype_key.into(), replacement.clone());
        let fill = mapping
            .zarrs_fill_value
            .clone()
            .unwrap_or_else(|| patched_fill_value(m.get("fill_value"), replacement));
        m.insert("fill_value".into(), fill);
    }
    let guarded = guarded_layout(&json, raw.v3);
    let metadata: ArrayMetadata = if raw.v3 {
        ArrayMetadata::V3(
            serde_json::from_value(json).map_err(|e| err(format!("invalid array metadata: {e}")))?,
        )
    } else {
        ArrayMetadata::V2(
            serde_json::from_value(json).map_err(|e| err(format!("invalid array metadata: {e}")))?,
        )
    };
    let path = format!("/{prefix}{name}");
    let mut array = Array::new_with_metadata(storage.clone(), &path, metadata.clone())
        .map_err(|e| err(format!("cannot open array: {e}")))?;
    if let Some((layout, inner_rows)) = guarded {
        // Bound what a compressed (inner) chunk may make the decoder allocate.
        let rows = inner_rows.unwrap_or_else(|| array.chunk_shape(&[0]).map(|s| s[0].get()).unwrap_or(0));
        let limit = match array.data_type().fixed_size() {
            Some(size) => rows.saturating_mul(size as u64).saturating_add(CODEC_SLACK_BYTES),
            None => rows.saturating_mul(4 + VARIABLE_ELEMENT_MAX_BYTES).saturating_add(CODEC_SLACK_BYTES),
        };
        let guarded: Arc<DynStorage> =
            Arc::new(CodecGuard::new(storage.clone(), layout, limit.min(MAX_CHUNK_BYTES)));
        array = Array::new_with_metadata(guarded, &path, metadata)
            .map_err(|e| err(format!("cannot open array: {e}")))?;
    }

    let chunk_bounds = chunk_bounds(&array, shape[0]).map_err(err)?;
    if let Some(size) = array.data_type().fixed_size() {
        let widest = widest_chunk(&chunk_bounds).unwrap_or(0);
        let declared = array.chunk_shape(&[0]).map(|s| s[0].get()).unwrap_or(widest);
        if declared.saturating_mul(size as u64) > MAX_CHUNK_BYTES {
            return Err(err(format!("chunk shape {declared} is too large to decode")));
        }
    }
    let direct_vlen = crate::vlen::applies(&array);
    Ok(MetaColumn {
        name: name.to_string(),
        kind,
        array,
        chunk_bounds,
        attributes,
        validity: None,
        direct_vlen,
    })
}

/// Open the validity arrays the columns declare and make those columns nullable.
///
/// A column's `zarr_meta:validity` attribute names a boolean array of the
/// same length, relative to the group (`write_meta` writes `_validity/<name>`
/// for every column holding a missing value). Metadata comes from the
/// consolidated metadata when it covers the array, else in one round trip.
fn attach_validity(
    source: &Store,
    storage: &Arc<DynStorage>,
    prefix: &str,
    columns: &mut [MetaColumn],
    fields: &mut [Field],
    mut known: std::collections::HashMap<String, RawArrayMeta>,
    options: &ReadOptions,
) -> Result<()> {
    let store = source.display().to_string();
    let mut wanted: Vec<(usize, String)> = Vec::new();
    for (i, column) in columns.iter().enumerate() {
        let Some(value) = column.attributes.get(VALIDITY_ATTRIBUTE) else { continue };
        let path = value.as_str().filter(|p| !p.is_empty() && !p.starts_with('/') && !p.contains(".."));
        let Some(path) = path else {
            return Err(ZarrMetaError::array(
                &store,
                &column.name,
                format!("attribute '{VALIDITY_ATTRIBUTE}' must name an array of the group, got {value}"),
            ));
        };
        wanted.push((i, path.to_string()));
    }
    if wanted.is_empty() {
        return Ok(());
    }
    let missing: Vec<String> =
        wanted.iter().map(|(_, p)| p.clone()).filter(|p| !known.contains_key(p)).collect();
    if !missing.is_empty() {
        known.extend(read_arrays_metadata(source, prefix, &missing)?.0);
    }
    for (i, path) in wanted {
        let name = columns[i].name.clone();
        let err = |m: String| ZarrMetaError::array(&store, &name, m);
        let raw = known.get(&path).cloned().ok_or_else(|| {
            err(format!("its validity array '{path}' ('{VALIDITY_ATTRIBUTE}') is missing from the group"))
        })?;
        let validity = open_column(&store, storage, prefix, &path, raw, options)?;
        if validity.kind != ColumnKind::Primitive(DataType::Boolean) {
            return Err(err(format!(
                "its validity array '{path}' must hold booleans, not {}",
                validity.kind.arrow_type()
            )));
        }
        let (len, own) = (validity.chunk_bounds.last(), columns[i].chunk_bounds.last());
        if len != own {
            return Err(err(format!(
                "its validity array '{path}' has {} rows but the column has {}",
                len.unwrap_or(&0),
                own.unwrap_or(&0)
            )));
        }
        columns[i].validity = Some(Box::new(validity));
        fields[i] = fields[i].clone().with_nullable(true);
    }
    Ok(())
}

/// Bytes a compressed chunk may decode to beyond its elements (checksums and
/// other framing of inner codecs).
const CODEC_SLACK_BYTES: u64 = 64 << 10;

/// The most bytes one element of a variable-length array (a text, a WKB
/// geometry) may decode to: far above any item's metadata, it keeps a
/// compressed chunk of a few elements from asking for gigabytes.
pub const VARIABLE_ELEMENT_MAX_BYTES: u64 = 16 << 20;

/// The codec applied last when encoding (first when decoding) of a codec list, if guarded.
fn last_codec(codecs: Option<&Value>) -> Option<Codec> {
    let last = codecs.and_then(Value::as_array).and_then(|c| c.last());
    last.and_then(|c| c.get("name")).and_then(Value::as_str).and_then(Codec::from_name)
}

/// How the codec guard checks an array's chunks, and the rows of its inner
/// chunks if it is sharded; `None` where nothing is guarded.
fn guarded_layout(json: &Value, v3: bool) -> Option<(Layout, Option<u64>)> {
    if !v3 {
        let name = json.get("compressor").and_then(|c| c.get("id")).and_then(Value::as_str);
        return name.and_then(Codec::from_name).map(|c| (Layout::Plain(c), None));
    }
    let codecs = json.get("codecs").and_then(Value::as_array)?;
    if let Some(codec) =
        last_codec(json.get("codecs")).filter(|_| codecs.len() > 1 || !is_sharding(&codecs[0]))
    {
        return Some((Layout::Plain(codec), None));
    }
    let [sharding] = codecs.as_slice() else { return None };
    if !is_sharding(sharding) {
        return None;
    }
    let config = sharding.get("configuration")?;
    let inner_rows = config.get("chunk_shape")?.as_array()?.first()?.as_u64().filter(|r| *r > 0)?;
    let shard_rows =
        json.get("chunk_grid")?.get("configuration")?.get("chunk_shape")?.as_array()?.first()?.as_u64()?;
    // The index is read here only in the layout zarr-python and zarrs write:
    // plain little-endian words, with or without a crc32c checksum.
    let index_codecs: Vec<&str> = config
        .get("index_codecs")
        .and_then(Value::as_array)
        .map(|c| c.iter().map(|c| c.get("name").and_then(Value::as_str).unwrap_or("?")).collect())
        .unwrap_or_else(|| vec!["bytes", "crc32c"]);
    let plain_index = index_codecs.iter().all(|n| matches!(*n, "bytes" | "crc32c"));
    let index_checksum = if index_codecs.contains(&"crc32c") { 4 } else { 0 };
    let layout = Layout::Sharded {
        codec: last_codec(config.get("codecs")).filter(|_| plain_index),
        inner_chunks: usize::try_from(shard_rows.div_ceil(inner_rows)).ok()?,
        index_at_end: config.get("index_location").and_then(Value::as_str) != Some("start"),
        index_checksum,
    };
    Some((layout, Some(inner_rows)))
}

fn is_sharding(codec: &Value) -> bool {
    codec.get("name") == Some(&Value::from("sharding_indexed"))
}

/// Keys of Zarr v3 array metadata; any other key is an extension.
const V3_ARRAY_KEYS: [&str; 11] = [
    "zarr_format",
    "node_type",
    "shape",
    "data_type",
    "chunk_grid",
    "chunk_key_encoding",
    "fill_value",
    "codecs",
    "attributes",
    "storage_transformers",
    "dimension_names",
];

/// The first key of a v3 node's metadata that is neither `known` nor marked
/// `must_understand: false`: an extension a reader would have to understand.
fn unknown_extension<'a>(map: &'a Map<String, Value>, known: &[&str]) -> Option<&'a str> {
    map.iter()
        .find(|(key, value)| {
            !known.contains(&key.as_str())
                && value.get("must_understand").and_then(Value::as_bool) != Some(false)
        })
        .map(|(key, _)| key.as_str())
}

/// The metadata declares the format it was read as, and (v3) carries no
/// extension a reader must understand: those change what the bytes mean.
fn check_format(json: &Value, v3: bool) -> std::result::Result<(), String> {
    let Value::Object(map) = json else {
        return Err("array metadata is not a JSON object".into());
    };
    let want = if v3 { 3 } else { 2 };
    match map.get("zarr_format").and_then(Value::as_u64) {
        Some(f) if f == want => {}
        Some(f) => return Err(format!("zarr_format {f} is not supported here (expected {want})")),
        None => return Err(format!("metadata has no valid 'zarr_format' (expected {want})")),
    }
    match unknown_extension(map, &V3_ARRAY_KEYS).filter(|_| v3) {
        Some(key) => Err(format!(
            "metadata has the extension '{key}', which a reader must understand and this one does not"
        )),
        None => Ok(()),
    }
}

/// The fill value to pair with a replacement data type: NaT/integers for
/// datetimes stored as int64, zeros for raw bytes.
fn patched_fill_value(original: Option<&Value>, replacement: &Value) -> Value {
    let r = replacement.as_str().unwrap_or_default();
    if r.ends_with("i8") {
        return match original {
            Some(Value::Number(n)) if n.is_i64() => Value::Number(n.clone()),
            _ => Value::from(crate::temporal::NAT),
        };
    }
    Value::Null
}

/// Decide whether a column is geometry (option, attributes, or name).
fn geometry_kind(
    name: &str,
    kind: ColumnKind,
    attributes: &Map<String, Value>,
    options: &ReadOptions,
) -> std::result::Result<ColumnKind, String> {
    let requested = options.geometry_columns.as_ref().is_some_and(|g| g.iter().any(|n| n == name));
    let declared = geometry::declared_encoding(attributes);
    let by_name = GEOMETRY_NAMES.contains(&name);
    if !(requested || declared.is_some() || by_name) {
        return Ok(kind);
    }
    let (storage, natural) = match &kind {
        ColumnKind::Binary(s) => (*s, GeometryEncoding::Wkb),
        ColumnKind::Utf8(s) => (*s, GeometryEncoding::Wkt),
        _ if requested || declared.is_some() => {
            return Err(format!(
                "cannot be a geometry column: its type {} is neither bytes (WKB) nor text (WKT)",
                kind.arrow_type()
            ))
        }
        _ => return Ok(kind),
    };
    Ok(ColumnKind::Geometry(storage, declared.unwrap_or(natural)))
}

/// Rows of the widest chunk, from a column's chunk boundaries.
pub(crate) fn widest_chunk(bounds: &[u64]) -> Option<u64> {
    bounds.windows(2).map(|w| w[1] - w[0]).max()
}

/// Chunk start rows plus the array length, from zarrs' chunk grid.
fn chunk_bounds(array: &Array<DynStorage>, len: u64) -> std::result::Result<Vec<u64>, String> {
    let grid = array.chunk_grid_shape();
    let n_chunks = grid.first().copied().unwrap_or(0);
    if n_chunks > MAX_CHUNKS {
        return Err(format!("has {n_chunks} chunks, more than the {MAX_CHUNKS} supported; rechunk it"));
    }
    let mut bounds = Vec::with_capacity(n_chunks as usize + 1);
    for i in 0..n_chunks {
        let subset = array.chunk_subset(&[i]).map_err(|e| e.to_string())?;
        let start = subset.start()[0];
        if start >= len {
            break;
        }
        if bounds.last().is_some_and(|b| *b >= start) && i > 0 {
            return Err("chunk grid is not increasing".into());
        }
        bounds.push(start);
    }
    if len > 0 && bounds.first() != Some(&0) {
        return Err("chunk grid does not start at row 0".into());
    }
    bounds.push(len);
    Ok(bounds)
}
