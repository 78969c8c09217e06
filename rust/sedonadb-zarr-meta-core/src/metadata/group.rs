//! Opening a store's `meta` group: locating it, finding its arrays, mapping
//! their types and building the Arrow schema — all without reading chunks.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use arrow_schema::{Field, Schema, SchemaRef};
use serde_json::{Map, Value};

use crate::error::{Result, ZarrMetaError};
use crate::geometry::{geoarrow_field_metadata, resolve_crs, Crs};
use crate::metadata::column::{attach_validity, open_column, MetaColumn};
use crate::metadata::nodes::{discover_arrays, GroupNodes, Place, RawArrayMeta};
use crate::metadata::{ChunkStats, ColumnKind};
use crate::options::ReadOptions;
use crate::store::{DynStorage, Identity, Store};

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
    /// What the store's metadata looked like when the group was opened, if
    /// the store can tell when it changes (see [`crate::metadata::cache`]).
    pub identity: Option<Identity>,
    /// A number no other group opened by this process has, naming this
    /// group's decoded chunks in the scan stage's chunk cache.
    pub id: u64,
}

/// The next [`MetaGroup::id`].
static NEXT_GROUP_ID: AtomicU64 = AtomicU64::new(1);

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
        let place = Place::new(&source, &options);
        if options.arrays.is_none() {
            // Without consolidated metadata the arrays must be listed: start
            // now, alongside the group's metadata, to save a round trip.
            source.start_listing(&place.prefix);
        }
        let use_consolidated = options.consolidated.unwrap_or(source.is_remote());
        let nodes = GroupNodes::read(&source, &place.prefix, use_consolidated, |m| place.invalid(m))?;
        let consolidated = nodes.consolidated.is_some();
        let mut keys = nodes.keys.clone();
        let Some(attributes) = nodes.attributes else {
            let what =
                if source.has_objects("")? { format!("group '{}'", place.group) } else { "store".into() };
            return Err(ZarrMetaError::NotFound { store: place.store, what });
        };
        let (selected, nested) = discover_arrays(&source, &place, nodes.consolidated, &options)?;
        if let Some(missing) =
            options.geometry_columns.iter().flatten().find(|g| !selected.iter().any(|(n, _)| n == *g))
        {
            return Err(ZarrMetaError::InvalidOption(format!(
                "geometry column '{missing}' is not an array of group '{}' in {}",
                place.group, place.store
            )));
        }
        let storage = source.storage();
        let (mut columns, mut fields, num_rows) =
            open_columns(&place, &storage, selected, &attributes, &options)?;
        attach_validity(&source, &storage, &place.prefix, &mut columns, &mut fields, nested, &options)?;
        let stats = ChunkStats::from_attributes(&attributes, num_rows, &columns);
        if let Some(name) = &options.row_number {
            if fields.iter().any(|f| f.name() == name) {
                return Err(ZarrMetaError::InvalidOption(format!(
                    "'row_number' column '{name}' is already an array of group '{}' in {}",
                    place.group, place.store
                )));
            }
            fields.push(Field::new(name, arrow_schema::DataType::UInt64, false));
        }
        // Without consolidated metadata the arrays' own documents, and the
        // group's directory (an array added changes it), describe the group.
        let mut dirs = Vec::new();
        if !consolidated {
            keys.extend(columns.iter().flat_map(|c| c.metadata_keys(&place.prefix)));
            dirs.push(place.prefix.trim_end_matches('/').to_string());
        }
        let identity = source.identity(&keys, &dirs);
        Ok(Self {
            store: place.store,
            group: place.group,
            attributes,
            columns,
            num_rows,
            schema: Arc::new(Schema::new(fields)),
            options,
            stats,
            source,
            identity,
            id: NEXT_GROUP_ID.fetch_add(1, Ordering::Relaxed),
        })
    }

    /// Index of the array column called `name`.
    pub fn column_index(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c.name == name)
    }

    /// Schema index of the row-number column (after the arrays' columns),
    /// when the `row_number` option asks for one.
    pub fn row_number_index(&self) -> Option<usize> {
        self.options.row_number.as_ref().map(|_| self.columns.len())
    }

    /// Whether schema index `i` is the row-number column.
    pub fn is_row_number(&self, i: usize) -> bool {
        self.row_number_index() == Some(i)
    }

    /// Number of columns in the schema (the arrays, and the row number if asked).
    pub fn width(&self) -> usize {
        self.schema.fields().len()
    }
}

/// Open the `selected` arrays as columns with their Arrow fields (geometry
/// typed with its CRS), checking they all have one length, which is returned.
fn open_columns(
    place: &Place,
    storage: &Arc<DynStorage>,
    selected: Vec<(String, RawArrayMeta)>,
    group_attributes: &Map<String, Value>,
    options: &ReadOptions,
) -> Result<(Vec<MetaColumn>, Vec<Field>, u64)> {
    let user_crs = options.crs.as_deref().map(Crs::from_user);
    let mut columns: Vec<MetaColumn> = Vec::with_capacity(selected.len());
    let mut fields = Vec::with_capacity(selected.len());
    for (name, raw) in selected {
        let column = open_column(&place.store, storage, &place.prefix, &name, raw, options)?;
        if let Some(first) = columns.first() {
            let (n, len) = (first.num_rows(), column.num_rows());
            if n != len {
                return Err(place.invalid(format!(
                    "arrays have different lengths: '{}' has {n} rows but '{name}' has {len}",
                    first.name
                )));
            }
        }
        let mut field = Field::new(&name, column.kind.arrow_type(), column.kind.nullable());
        if matches!(column.kind, ColumnKind::Geometry(..)) {
            let crs = user_crs.clone().unwrap_or_else(|| resolve_crs(&column.attributes, group_attributes));
            field = field.with_metadata(geoarrow_field_metadata(&crs));
        }
        fields.push(field);
        columns.push(column);
    }
    let num_rows = columns.first().map_or(0, MetaColumn::num_rows);
    Ok((columns, fields, num_rows))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{open_store, write_store, N};
    use crate::ZarrMetaError;

    fn open(dir: &std::path::Path, options: ReadOptions) -> Result<MetaGroup> {
        MetaGroup::open(dir.to_str().unwrap(), options)
    }

    #[test]
    fn columns_in_name_order_with_chunk_boundaries_and_geometry() {
        let (_dir, group) = open_store(false);
        assert_eq!(group.num_rows, N);
        let names: Vec<&str> = group.columns.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["bbox", "n", "name"]);
        assert_eq!(group.columns[1].chunk_bounds, [0, 4, 8, 10]);
        assert_eq!(group.columns[2].chunk_bounds, [0, 3, 6, 9, 10]);
        let bbox = group.schema.field(0);
        assert_eq!(bbox.metadata()["ARROW:extension:name"], "geoarrow.wkb");
        assert!(bbox.is_nullable());
        assert!(group.stats.is_none());
        assert_eq!(group.column_index("name"), Some(2));
    }

    #[test]
    fn statistics_are_read_when_they_cover_the_rows() {
        let (_dir, group) = open_store(true);
        let stats = group.stats.as_ref().expect("statistics");
        assert_eq!(stats.block_rows, 4);
        assert!(stats.columns[0].is_some() && stats.columns[1].is_some() && stats.columns[2].is_none());
        // Statistics of another row count are stale: not used.
        let mut attributes = group.attributes.clone();
        attributes[crate::metadata::STATS_ATTRIBUTE]["num_rows"] = 11.into();
        assert!(ChunkStats::from_attributes(&attributes, N, &group.columns).is_none());
    }

    #[test]
    fn the_arrays_option_selects_and_orders() {
        let dir = tempfile::tempdir().unwrap();
        write_store(dir.path(), false);
        let options = ReadOptions { arrays: Some(vec!["name".into(), "n".into()]), ..Default::default() };
        let group = open(dir.path(), options).unwrap();
        let names: Vec<&str> = group.schema.fields().iter().map(|f| f.name().as_str()).collect();
        assert_eq!(names, ["name", "n"]);
        let options = ReadOptions { arrays: Some(vec!["nope".into()]), ..Default::default() };
        let e = open(dir.path(), options).unwrap_err().to_string();
        assert!(e.contains("array 'nope' in group 'meta'"), "{e}");
    }

    #[test]
    fn groups_that_cannot_be_read_are_errors_naming_them() {
        let dir = tempfile::tempdir().unwrap();
        write_store(dir.path(), false);
        let options = ReadOptions { group: "items".into(), ..Default::default() };
        assert!(
            matches!(open(dir.path(), options), Err(ZarrMetaError::NotFound { what, .. }) if what == "group 'items'")
        );
        let options = ReadOptions { geometry_columns: Some(vec!["footprint".into()]), ..Default::default() };
        let e = open(dir.path(), options).unwrap_err().to_string();
        assert!(e.contains("geometry column 'footprint' is not an array of group 'meta'"), "{e}");
        // One array of another length.
        let short = serde_json::json!({"zarr_format": 3, "node_type": "array", "shape": [7],
            "data_type": "int8", "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": [7]}},
            "chunk_key_encoding": {"name": "default"}, "fill_value": 0, "codecs": [{"name": "bytes"}]});
        std::fs::create_dir(dir.path().join("meta/short")).unwrap();
        std::fs::write(dir.path().join("meta/short/zarr.json"), short.to_string()).unwrap();
        let e = open(dir.path(), ReadOptions::default()).unwrap_err().to_string();
        assert!(e.contains("arrays have different lengths: 'bbox' has 10 rows but 'short' has 7"), "{e}");
        // A group without arrays.
        let empty = tempfile::tempdir().unwrap();
        std::fs::create_dir(empty.path().join("meta")).unwrap();
        std::fs::write(empty.path().join("meta/zarr.json"), r#"{"zarr_format":3,"node_type":"group"}"#)
            .unwrap();
        let e = open(empty.path(), ReadOptions::default()).unwrap_err().to_string();
        assert!(e.contains("has no arrays"), "{e}");
    }
}
