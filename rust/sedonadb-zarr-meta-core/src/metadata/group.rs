//! Opening a store's `meta` group: locating it, finding its arrays, mapping
//! their types and building the Arrow schema — all without reading chunks.

use std::sync::Arc;

use arrow_schema::{Field, Schema, SchemaRef};
use serde_json::{Map, Value};

use crate::error::{Result, ZarrMetaError};
use crate::geometry::{geoarrow_field_metadata, resolve_crs, Crs};
use crate::metadata::column::{attach_validity, open_column, MetaColumn};
use crate::metadata::nodes::{discover_arrays, GroupNodes, Place, RawArrayMeta};
use crate::metadata::{ChunkStats, ColumnKind};
use crate::options::ReadOptions;
use crate::store::{DynStorage, Store};

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
        let place = Place::new(&source, &options);
        if options.arrays.is_none() {
            // Without consolidated metadata the arrays must be listed: start
            // now, alongside the group's metadata, to save a round trip.
            source.start_listing(&place.prefix);
        }
        let use_consolidated = options.consolidated.unwrap_or(source.is_remote());
        let nodes = GroupNodes::read(&source, &place.prefix, use_consolidated, |m| place.invalid(m))?;
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
        })
    }

    /// Index of the column called `name`.
    pub fn column_index(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c.name == name)
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
