//! Stores written with zarrs into a temporary directory, for unit tests.

// Row ranges of 1-D arrays: one range is a whole subset.
#![allow(clippy::single_range_in_vec_init)]

use std::path::Path;
use std::sync::Arc;

use serde_json::json;
use zarrs::array::{data_type, ArrayBuilder, ArraySubset, FillValue};
use zarrs::filesystem::FilesystemStore;
use zarrs::group::GroupBuilder;

use crate::metadata::{MetaGroup, STATS_ATTRIBUTE};
use crate::options::ReadOptions;

/// Rows of [`write_store`]'s group.
pub const N: u64 = 10;

/// WKB of the axis-aligned box (x, 0)-(x + 1, 1).
pub fn wkb_box(x: f64) -> Vec<u8> {
    let mut out = Vec::new();
    let wkt = format!("POLYGON(({x} 0,{} 0,{} 1,{x} 1,{x} 0))", x + 1.0, x + 1.0);
    crate::geometry::wkt_to_wkb(&wkt, &mut out).expect("valid WKT");
    out
}

/// A `meta` group of [`N`] rows: `n` (int32 `0..N`, chunks of 4), `name`
/// (`item-i`, chunks of 3) and `bbox` (row `i` the box from `x = i`, chunks
/// of 4); with `stats`, the bbox statistics of blocks of 4 rows.
pub fn write_store(dir: &Path, stats: bool) {
    let store = Arc::new(FilesystemStore::new(dir).expect("a directory"));
    let mut attrs = serde_json::Map::new();
    if stats {
        let boxes: Vec<_> =
            (0..3).map(|b| json!([b as f64 * 4.0, 0.0, (b as f64 * 4.0 + 4.0).min(10.0), 1.0])).collect();
        attrs.insert(
            STATS_ATTRIBUTE.into(),
            json!({"version": 1, "num_rows": N, "block_rows": 4,
                   "columns": {"bbox": {"bbox": boxes}, "n": {"min": [0, 4, 8], "max": [3, 7, 9]}}}),
        );
    }
    GroupBuilder::new().build(store.clone(), "/").unwrap().store_metadata().unwrap();
    GroupBuilder::new().attributes(attrs).build(store.clone(), "/meta").unwrap().store_metadata().unwrap();
    let all = ArraySubset::new_with_ranges(&[0..N]);
    let n = ArrayBuilder::new([N], [4], data_type::int32(), FillValue::from(0i32))
        .build(store.clone(), "/meta/n")
        .unwrap();
    n.store_metadata().unwrap();
    n.store_array_subset(&all, (0..N as i32).collect::<Vec<i32>>()).unwrap();
    let s = ArrayBuilder::new([N], [3], data_type::string(), "").build(store.clone(), "/meta/name").unwrap();
    s.store_metadata().unwrap();
    s.store_array_subset(&all, (0..N).map(|i| format!("item-{i}")).collect::<Vec<String>>()).unwrap();
    let b = ArrayBuilder::new([N], [4], data_type::bytes(), Vec::<u8>::new())
        .build(store.clone(), "/meta/bbox")
        .unwrap();
    b.store_metadata().unwrap();
    b.store_array_subset(&all, (0..N).map(|i| wkb_box(i as f64)).collect::<Vec<Vec<u8>>>()).unwrap();
}

/// [`write_store`] in a new temporary directory, opened.
pub fn open_store(stats: bool) -> (tempfile::TempDir, Arc<MetaGroup>) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    write_store(dir.path(), stats);
    let group =
        MetaGroup::open(dir.path().to_str().unwrap(), ReadOptions::default()).expect("the store opens");
    (dir, Arc::new(group))
}
