//! One array of the group as a column: its metadata checked and mapped to a
//! column kind, its zarrs array opened behind the codec guard, its chunk
//! boundaries, and its validity array.

use std::sync::Arc;

use arrow_schema::{DataType, Field};
use serde_json::{Map, Value};
use zarrs::array::{Array, ArrayMetadata};

use crate::error::{Result, ZarrMetaError};
use crate::geometry::{declared_encoding, GeometryEncoding, GEOMETRY_NAMES};
use crate::limits::{MAX_CHUNKS, MAX_CHUNK_BYTES, MAX_ROWS, VARIABLE_ELEMENT_MAX_BYTES};
use crate::metadata::dtype::{self, DtypeMapping};
use crate::metadata::nodes::{attributes_of, read_arrays_metadata, unknown_extension, RawArrayMeta};
use crate::metadata::ColumnKind;
use crate::options::ReadOptions;
use crate::store::codec_guard::{Codec, CodecGuard, Layout};
use crate::store::{DynStorage, Store};

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
    /// Whether whole chunks are read by [`crate::decode::vlen`] instead of zarrs.
    pub direct_vlen: bool,
}

/// Column attribute naming the column's validity array, relative to the group.
pub const VALIDITY_ATTRIBUTE: &str = "zarr_meta:validity";
/// The group `write_meta` keeps validity arrays in (`_validity/<column>`).
pub const VALIDITY_GROUP: &str = "_validity";

impl MetaColumn {
    /// The keys of this column's metadata documents (and its validity
    /// array's) in a group at `prefix`.
    pub fn metadata_keys(&self, prefix: &str) -> Vec<String> {
        let mut keys = match self.array.metadata() {
            ArrayMetadata::V3(_) => vec![format!("{prefix}{}/zarr.json", self.name)],
            ArrayMetadata::V2(_) => {
                vec![format!("{prefix}{}/.zarray", self.name), format!("{prefix}{}/.zattrs", self.name)]
            }
        };
        if let Some(validity) = &self.validity {
            keys.extend(validity.metadata_keys(prefix));
        }
        keys
    }

    /// Rows of the array.
    pub fn num_rows(&self) -> u64 {
        *self.chunk_bounds.last().unwrap_or(&0)
    }

    /// Store keys of chunk `chunk` and of the validity chunk holding its first row.
    pub fn chunk_keys(&self, chunk: usize) -> Vec<zarrs::storage::StoreKey> {
        let mut keys = vec![self.array.chunk_key(&[chunk as u64])];
        if let Some(validity) = &self.validity {
            let row = self.chunk_bounds[chunk];
            keys.push(validity.array.chunk_key(&[validity.chunk_of(row) as u64]));
        }
        keys
    }

    /// Index of the chunk holding `row`.
    pub fn chunk_of(&self, row: u64) -> usize {
        self.chunk_bounds.partition_point(|b| *b <= row).saturating_sub(1)
    }
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

/// Open the array `name` of the group at `prefix` from its metadata `raw`.
pub(super) fn open_column(
    store: &str,
    storage: &Arc<DynStorage>,
    prefix: &str,
    name: &str,
    raw: RawArrayMeta,
    options: &ReadOptions,
) -> Result<MetaColumn> {
    let err = |m: String| ZarrMetaError::array(store, name, m);
    let (json, len, attributes, kind) = checked_metadata(raw, name, options).map_err(err)?;
    let array = guarded_array(storage, &format!("/{prefix}{name}"), json).map_err(err)?;
    let chunk_bounds = chunk_bounds(&array, len).map_err(err)?;
    if let Some(size) = array.data_type().fixed_size() {
        let widest = widest_chunk(&chunk_bounds).unwrap_or(0);
        let declared = array.chunk_shape(&[0]).map(|s| s[0].get()).unwrap_or(widest);
        if declared.saturating_mul(size as u64) > MAX_CHUNK_BYTES {
            return Err(err(format!("chunk shape {declared} is too large to decode")));
        }
    }
    let direct_vlen = direct_vlen(&array);
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

/// An array's metadata checked and mapped: the JSON zarrs opens (with data
/// types it does not know replaced by ones it decodes), the array's length,
/// its attributes and its column kind.
fn checked_metadata(
    raw: RawArrayMeta,
    name: &str,
    options: &ReadOptions,
) -> std::result::Result<(Value, u64, Map<String, Value>, ColumnKind), String> {
    let mut json = raw.json;
    check_format(&json, raw.v3)?;
    let shape: Vec<u64> = json
        .get("shape")
        .and_then(Value::as_array)
        .ok_or("metadata has no valid 'shape'")?
        .iter()
        .map(|v| v.as_u64().ok_or_else(|| format!("invalid shape entry {v}")))
        .collect::<std::result::Result<_, _>>()?;
    if shape.len() != 1 {
        return Err(format!("is {}-dimensional (shape {shape:?}); meta arrays must be 1-D", shape.len()));
    }
    if shape[0] > MAX_ROWS {
        return Err(format!("declared length {} is implausibly large", shape[0]));
    }
    let attributes = attributes_of(json.get("attributes"), if raw.v3 { "zarr.json" } else { ".zattrs" })?;
    let mapping: DtypeMapping = if raw.v3 {
        dtype::from_v3(json.get("data_type").unwrap_or(&Value::Null))
    } else {
        dtype::from_v2(json.get("dtype").unwrap_or(&Value::Null), v2_object_codec(&json).as_deref())
    }?;
    let kind = geometry_kind(name, mapping.kind.clone(), &attributes, options)?;
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
    Ok((json, shape[0], attributes, kind))
}

/// The zarrs array of `json` at `path`, reading through the codec guard that
/// bounds what a compressed (inner) chunk may make the decoder allocate.
fn guarded_array(
    storage: &Arc<DynStorage>,
    path: &str,
    json: Value,
) -> std::result::Result<Array<DynStorage>, String> {
    let v3 = json.get("zarr_format").and_then(Value::as_u64) == Some(3);
    let guarded = guarded_layout(&json, v3);
    let metadata: ArrayMetadata = if v3 {
        ArrayMetadata::V3(serde_json::from_value(json).map_err(|e| format!("invalid array metadata: {e}"))?)
    } else {
        ArrayMetadata::V2(serde_json::from_value(json).map_err(|e| format!("invalid array metadata: {e}"))?)
    };
    let array = Array::new_with_metadata(storage.clone(), path, metadata.clone())
        .map_err(|e| format!("cannot open array: {e}"))?;
    let Some((layout, inner_rows)) = guarded else { return Ok(array) };
    let rows = inner_rows.unwrap_or_else(|| array.chunk_shape(&[0]).map(|s| s[0].get()).unwrap_or(0));
    let limit = match array.data_type().fixed_size() {
        Some(size) => rows.saturating_mul(size as u64).saturating_add(CODEC_SLACK_BYTES),
        None => rows.saturating_mul(4 + VARIABLE_ELEMENT_MAX_BYTES).saturating_add(CODEC_SLACK_BYTES),
    };
    let guarded: Arc<DynStorage> =
        Arc::new(CodecGuard::new(storage.clone(), layout, limit.min(MAX_CHUNK_BYTES)));
    Array::new_with_metadata(guarded, path, metadata).map_err(|e| format!("cannot open array: {e}"))
}

/// Whether [`crate::decode::vlen`] reads `array`'s chunks: exactly the codecs
/// `vlen-bytes`/`vlen-utf8` then `zstd`, a regular grid, no storage transformer.
fn direct_vlen(array: &Array<DynStorage>) -> bool {
    match array.metadata() {
        ArrayMetadata::V3(m) => {
            m.storage_transformers.is_empty()
                && m.chunk_grid.name() == "regular"
                && m.codecs.len() == 2
                && matches!(m.codecs[0].name(), "vlen-bytes" | "vlen-utf8")
                && m.codecs[1].name() == "zstd"
        }
        ArrayMetadata::V2(_) => false,
    }
}

/// Open the validity arrays the columns declare and make those columns nullable.
///
/// A column's `zarr_meta:validity` attribute names a boolean array of the
/// same length, relative to the group (`write_meta` writes `_validity/<name>`
/// for every column holding a missing value). Metadata comes from the
/// consolidated metadata when it covers the array, else in one round trip.
pub(super) fn attach_validity(
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
            _ => Value::from(crate::metadata::temporal::NAT),
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
    let declared = declared_encoding(attributes);
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
pub fn widest_chunk(bounds: &[u64]) -> Option<u64> {
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
