//! Opening a store's `meta` group: locating it, listing its arrays, mapping
//! their types and building the Arrow schema — all without reading chunks.

use std::path::PathBuf;
use std::sync::Arc;

use arrow_schema::{Field, Schema, SchemaRef};
use serde_json::{Map, Value};
use zarrs::array::{Array, ArrayMetadata};
use zarrs::filesystem::FilesystemStore;
use zarrs::storage::{ListableStorageTraits, ReadableListableStorageTraits, StoreKey, StorePrefix};

use crate::decode::ColumnKind;
use crate::dtype::{self, DtypeMapping};
use crate::error::{Result, ZarrMetaError};
use crate::geometry::{self, Crs, GeometryEncoding, GEOMETRY_NAMES};
use crate::options::ReadOptions;
use crate::pruning::ChunkStats;

/// Arrays longer than this are refused as corrupt metadata rather than scanned.
pub const MAX_ROWS: u64 = 1 << 40;
/// Arrays with more chunks than this are refused (the chunk index is kept in memory).
pub const MAX_CHUNKS: u64 = 1 << 24;
/// A single decoded chunk may not exceed this many bytes.
pub const MAX_CHUNK_BYTES: u64 = 1 << 31;

type DynStorage = dyn ReadableListableStorageTraits;

/// One array of the group, ready to read.
pub struct MetaColumn {
    pub name: String,
    pub kind: ColumnKind,
    pub array: Array<DynStorage>,
    /// Chunk start rows followed by the array length: chunk `i` holds rows
    /// `bounds[i]..bounds[i + 1]`.
    pub chunk_bounds: Vec<u64>,
    pub attributes: Map<String, Value>,
}

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

/// Resolve a user URI (`file://` URL or plain path) to a local directory.
pub fn local_path(uri: &str) -> Result<PathBuf> {
    if let Some(rest) = uri.strip_prefix("file://") {
        // file:///abs/path or file://localhost/abs/path
        let path = rest.strip_prefix("localhost").unwrap_or(rest);
        return Ok(PathBuf::from(percent_decode(path)));
    }
    if let Some((scheme, _)) = uri.split_once("://") {
        return Err(ZarrMetaError::Unsupported(format!(
            "{uri}: URI scheme '{scheme}' is not supported yet; use a local path or a file:// URL"
        )));
    }
    Ok(PathBuf::from(uri))
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
            if let Ok(v) = u8::from_str_radix(hex, 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl MetaGroup {
    /// Open `options.group` of the store at `uri`.
    pub fn open(uri: &str, options: ReadOptions) -> Result<Self> {
        let path = local_path(uri)?;
        if !path.is_dir() {
            return Err(ZarrMetaError::NotFound {
                store: uri.to_string(),
                what: if path.exists() { "store (not a directory)".into() } else { "store".into() },
            });
        }
        let storage: Arc<DynStorage> = Arc::new(
            FilesystemStore::new(&path)
                .map_err(|e| ZarrMetaError::Storage { store: uri.to_string(), message: e.to_string() })?,
        );
        Self::open_storage(uri, storage, options)
    }

    /// Open a group of an already-opened store.
    pub fn open_storage(uri: &str, storage: Arc<DynStorage>, options: ReadOptions) -> Result<Self> {
        let store = uri.to_string();
        let group_path = options.group_path();
        let group_name = group_path.trim_start_matches('/').to_string();
        let prefix = if group_name.is_empty() { String::new() } else { format!("{group_name}/") };
        let storage_err = |e: &dyn std::fmt::Display| ZarrMetaError::Storage {
            store: store.clone(),
            message: e.to_string(),
        };

        let group_attrs = read_group_attributes(&*storage, &prefix)
            .map_err(|m| ZarrMetaError::InvalidGroup {
                store: store.clone(),
                group: group_name.clone(),
                message: m,
            })?
            .ok_or_else(|| ZarrMetaError::NotFound {
                store: store.clone(),
                what: format!("group '{group_name}'"),
            })?;

        let listing = storage
            .list_dir(&StorePrefix::new(prefix.clone()).map_err(|e| storage_err(&e))?)
            .map_err(|e| storage_err(&e))?;
        let mut child_names: Vec<String> = listing
            .prefixes()
            .iter()
            .filter_map(|p| p.as_str().strip_prefix(&prefix).map(|s| s.trim_end_matches('/').to_string()))
            .collect();
        child_names.sort();

        // Only direct children that are arrays; nested groups are ignored.
        let mut found = Vec::new();
        for name in child_names {
            if let Some(meta) = read_array_metadata(&*storage, &format!("{prefix}{name}/"))
                .map_err(|m| ZarrMetaError::array(&store, &name, m))?
            {
                found.push((name, meta));
            }
        }

        let selected: Vec<(String, RawArrayMeta)> = match &options.arrays {
            None => found,
            Some(wanted) => {
                let mut out = Vec::with_capacity(wanted.len());
                for w in wanted {
                    let pos =
                        found.iter().position(|(n, _)| n == w).ok_or_else(|| ZarrMetaError::NotFound {
                            store: store.clone(),
                            what: format!("array '{w}' in group '{group_name}'"),
                        })?;
                    out.push(found[pos].clone());
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

        let mut group = Self {
            store,
            group: group_name,
            attributes: group_attrs,
            columns,
            num_rows: num_rows.map_or(0, |(n, _)| n),
            schema: Arc::new(Schema::new(fields)),
            options,
            stats: None,
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

fn get_json(storage: &DynStorage, key: &str) -> std::result::Result<Option<Value>, String> {
    let key = StoreKey::new(key).map_err(|e| e.to_string())?;
    let Some(bytes) = storage.get(&key).map_err(|e| e.to_string())? else {
        return Ok(None);
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| format!("invalid metadata JSON in '{}': {e}", key.as_str()))
}

/// Group attributes if `prefix` is a group (v3 `zarr.json` or v2 `.zgroup`).
fn read_group_attributes(
    storage: &DynStorage,
    prefix: &str,
) -> std::result::Result<Option<Map<String, Value>>, String> {
    if let Some(meta) = get_json(storage, &format!("{prefix}zarr.json"))? {
        if meta.get("node_type").and_then(Value::as_str) != Some("group") {
            return Err("is not a group (zarr.json node_type is not 'group')".into());
        }
        return Ok(Some(meta.get("attributes").and_then(Value::as_object).cloned().unwrap_or_default()));
    }
    if get_json(storage, &format!("{prefix}.zgroup"))?.is_some() {
        let attrs = get_json(storage, &format!("{prefix}.zattrs"))?;
        return Ok(Some(attrs.and_then(|a| a.as_object().cloned()).unwrap_or_default()));
    }
    Ok(None)
}

/// Array metadata JSON if `prefix` is an array, `None` if it is something else.
fn read_array_metadata(
    storage: &DynStorage,
    prefix: &str,
) -> std::result::Result<Option<RawArrayMeta>, String> {
    if let Some(meta) = get_json(storage, &format!("{prefix}zarr.json"))? {
        return Ok((meta.get("node_type").and_then(Value::as_str) == Some("array"))
            .then_some(RawArrayMeta { json: meta, v3: true }));
    }
    if let Some(mut meta) = get_json(storage, &format!("{prefix}.zarray"))? {
        let attrs = get_json(storage, &format!("{prefix}.zattrs"))?.unwrap_or(Value::Object(Map::new()));
        if let Value::Object(m) = &mut meta {
            m.insert("attributes".into(), attrs);
        }
        return Ok(Some(RawArrayMeta { json: meta, v3: false }));
    }
    Ok(None)
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
    let attributes = json.get("attributes").and_then(Value::as_object).cloned().unwrap_or_default();

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
    let metadata: ArrayMetadata = if raw.v3 {
        ArrayMetadata::V3(
            serde_json::from_value(json).map_err(|e| err(format!("invalid array metadata: {e}")))?,
        )
    } else {
        ArrayMetadata::V2(
            serde_json::from_value(json).map_err(|e| err(format!("invalid array metadata: {e}")))?,
        )
    };
    let array = Array::new_with_metadata(storage.clone(), &format!("/{prefix}{name}"), metadata)
        .map_err(|e| err(format!("cannot open array: {e}")))?;

    let chunk_bounds = chunk_bounds(&array, shape[0]).map_err(err)?;
    if let Some(size) = array.data_type().fixed_size() {
        let widest = chunk_bounds.windows(2).map(|w| w[1] - w[0]).max().unwrap_or(0);
        let declared = array.chunk_shape(&[0]).map(|s| s[0].get()).unwrap_or(widest);
        if declared.saturating_mul(size as u64) > MAX_CHUNK_BYTES {
            return Err(err(format!("chunk shape {declared} is too large to decode")));
        }
    }
    Ok(MetaColumn { name: name.to_string(), kind, array, chunk_bounds, attributes })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris() {
        assert_eq!(local_path("file:///tmp/a%20b.zarr").unwrap(), PathBuf::from("/tmp/a b.zarr"));
        assert_eq!(local_path("/tmp/x.zarr").unwrap(), PathBuf::from("/tmp/x.zarr"));
        let e = local_path("s3://bucket/x.zarr").unwrap_err().to_string();
        assert!(e.contains("not supported yet") && e.contains("s3"), "{e}");
    }
}
