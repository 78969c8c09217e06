//! End-to-end reads of stores written with zarrs: schema, values, geometry
//! metadata, chunk skipping with and without statistics.

// Subsets of 1-D arrays are a single range.
#![allow(clippy::single_range_in_vec_init)]

use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::Int32Type;
use arrow_array::RecordBatch;
use serde_json::json;
use zarrs::array::{data_type, ArrayBuilder, ArraySubset, FillValue};
use zarrs::filesystem::FilesystemStore;
use zarrs::group::GroupBuilder;

use sedonadb_zarr_meta_core::metadata::STATS_ATTRIBUTE;
use sedonadb_zarr_meta_core::scan::{Predicate, Test};
use sedonadb_zarr_meta_core::{BatchReader, MetaGroup, ReadOptions, ScanMetrics};

const N: u64 = 10;

/// WKB of the axis-aligned box (x, 0)-(x + 1, 1).
fn wkb_box(x: f64) -> Vec<u8> {
    let mut out = Vec::new();
    let wkt = format!("POLYGON(({x} 0,{} 0,{} 1,{x} 1,{x} 0))", x + 1.0, x + 1.0);
    sedonadb_zarr_meta_core::geometry::wkt_to_wkb(&wkt, &mut out).unwrap();
    out
}

fn write_store(dir: &std::path::Path, with_stats: bool) {
    let store = Arc::new(FilesystemStore::new(dir).unwrap());
    let mut attrs = serde_json::Map::new();
    if with_stats {
        let boxes: Vec<_> = (0..3)
            .map(|b| json!([b as f64 * 4.0, 0.0, (b as f64 * 4.0 + 3.0).min(9.0) + 1.0, 1.0]))
            .collect();
        attrs.insert(
            STATS_ATTRIBUTE.into(),
            json!({"version": 1, "num_rows": N, "block_rows": 4, "columns": {"bbox": {"bbox": boxes}}}),
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

fn collect(reader: BatchReader) -> Vec<RecordBatch> {
    reader.collect::<Result<Vec<_>, _>>().unwrap()
}

#[test]
fn reads_values_schema_and_geometry() {
    let dir = tempfile::tempdir().unwrap();
    write_store(dir.path(), false);
    let group = Arc::new(MetaGroup::open(dir.path().to_str().unwrap(), ReadOptions::default()).unwrap());
    assert_eq!(group.num_rows, N);
    let names: Vec<_> = group.schema.fields().iter().map(|f| f.name().clone()).collect();
    assert_eq!(names, ["bbox", "n", "name"]);
    let bbox = group.schema.field(0);
    assert_eq!(bbox.metadata()["ARROW:extension:name"], "geoarrow.wkb");
    assert_eq!(bbox.metadata()["ARROW:extension:metadata"], r#"{"crs":"OGC:CRS84"}"#);

    // Chunk shapes differ (4 and 3): batches still line up.
    let batches = collect(BatchReader::new(group.clone(), Some(vec![1, 2]), 0..N, 100).unwrap());
    // A single stream decoding further ahead yields the same batches.
    for batch_size in [1, 3, 100] {
        let deeper = BatchReader::new(group.clone(), None, 0..N, batch_size).unwrap().as_single_stream();
        let plain = BatchReader::new(group.clone(), None, 0..N, batch_size).unwrap();
        assert_eq!(collect(deeper), collect(plain));
    }
    let n: Vec<i32> =
        batches.iter().flat_map(|b| b.column(0).as_primitive::<Int32Type>().values().to_vec()).collect();
    assert_eq!(n, (0..N as i32).collect::<Vec<_>>());
    let names: Vec<String> = batches
        .iter()
        .flat_map(|b| b.column(1).as_string::<i32>().iter().map(|s| s.unwrap().to_string()))
        .collect();
    assert_eq!(names[7], "item-7");
    assert!(batches.iter().all(|b| b.num_rows() <= 4));

    // No columns (count(*)) still yields the row count.
    let rows: usize =
        collect(BatchReader::new(group, Some(vec![]), 0..N, 3).unwrap()).iter().map(|b| b.num_rows()).sum();
    assert_eq!(rows as u64, N);
}

fn skipped_scan(with_stats: bool) -> (Vec<i32>, u64) {
    let dir = tempfile::tempdir().unwrap();
    write_store(dir.path(), with_stats);
    let group = Arc::new(MetaGroup::open(dir.path().to_str().unwrap(), ReadOptions::default()).unwrap());
    assert_eq!(group.stats.is_some(), with_stats);
    // Boxes x in [0, 10); query x in [8.5, 9.5] matches rows 8 and 9 (and 7 touches at 8).
    let predicates = vec![Predicate { column: 0, test: Test::BBox([8.5, 0.0, 9.5, 1.0]) }];
    let metrics = Arc::new(ScanMetrics::default());
    let reader = BatchReader::with_predicates(group, Some(vec![1]), 0..N, 100, predicates)
        .unwrap()
        .with_metrics(metrics.clone());
    let n = collect(reader)
        .iter()
        .flat_map(|b| b.column(0).as_primitive::<Int32Type>().values().to_vec())
        .collect();
    (n, metrics.chunks_read.load(std::sync::atomic::Ordering::Relaxed))
}

#[test]
fn statistics_skip_chunks_entirely() {
    let (rows, chunks) = skipped_scan(true);
    assert_eq!(rows, vec![8, 9]); // only the last chunk (rows 8..10)
    assert_eq!(chunks, 2); // bbox + n of one chunk
}

#[test]
fn without_statistics_only_filter_columns_are_read() {
    let (rows, chunks) = skipped_scan(false);
    assert_eq!(rows, vec![8, 9]);
    assert_eq!(chunks, 3 + 1); // bbox of every chunk, n of the matching one
}

#[test]
fn partitions_share_the_chunks_statistics_keep() {
    use sedonadb_zarr_meta_core::scan::partition_ranges;
    let dir = tempfile::tempdir().unwrap();
    write_store(dir.path(), true);
    let group = Arc::new(MetaGroup::open(dir.path().to_str().unwrap(), ReadOptions::default()).unwrap());
    let query = |x0: f64, x1: f64| vec![Predicate { column: 0, test: Test::BBox([x0, 0.0, x1, 1.0]) }];
    // `n` has chunks 0..4, 4..8, 8..10; the statistics keep blocks 4..8 and 8..10.
    let kept = query(4.5, 9.5);
    assert_eq!(partition_ranges(&group, &[1], &kept, 2, None), vec![vec![4..8], vec![8..10]]);
    assert_eq!(partition_ranges(&group, &[1], &kept, 1, None), vec![vec![4..10]]);
    assert_eq!(partition_ranges(&group, &[1], &[], 2, None), vec![vec![0..8], vec![8..10]]);
    assert_eq!(
        partition_ranges(&group, &[1], &query(20.0, 30.0), 2, None),
        vec![Vec::<std::ops::Range<u64>>::new()]
    );
    // Without predicates a limit keeps the first rows only; with them (the
    // host filters above the scan) it cannot, as any row may fail the filter.
    assert_eq!(partition_ranges(&group, &[1], &[], 2, Some(3)), vec![vec![0..3]]);
    assert_eq!(partition_ranges(&group, &[1], &[], 2, Some(9)), vec![vec![0..8], vec![8..9]]);
    assert_eq!(partition_ranges(&group, &[1], &[], 2, Some(0)), vec![Vec::<std::ops::Range<u64>>::new()]);
    assert_eq!(partition_ranges(&group, &[1], &kept, 2, Some(1)), vec![vec![4..8], vec![8..10]]);
    // Each partition's reader yields its own rows; together, every kept row once.
    let rows: Vec<i32> = partition_ranges(&group, &[1], &kept, 2, None)
        .into_iter()
        .flat_map(|ranges| {
            let reader = BatchReader::over_ranges(group.clone(), Some(vec![1]), ranges, 100, kept.clone());
            collect(reader.unwrap())
        })
        .flat_map(|b| b.column(0).as_primitive::<Int32Type>().values().to_vec())
        .collect();
    assert_eq!(rows, vec![4, 5, 6, 7, 8, 9]);
}

/// The same store read through object_store (the remote path: concurrent
/// metadata reads, chunk prefetching) gives the same batches.
#[test]
fn object_store_reads_equal_local_reads() {
    use object_store::local::LocalFileSystem;
    use sedonadb_zarr_meta_core::store::Store;

    let dir = tempfile::tempdir().unwrap();
    write_store(dir.path(), true);
    let local = Arc::new(MetaGroup::open(dir.path().to_str().unwrap(), ReadOptions::default()).unwrap());
    let fs = Arc::new(LocalFileSystem::new_with_prefix(dir.path()).unwrap());
    let options = ReadOptions { max_concurrency: 2, ..ReadOptions::default() };
    let store = Store::from_object_store("memory://test", fs, &options);
    assert!(store.is_remote());
    let remote = Arc::new(MetaGroup::open_store(store, options).unwrap());
    assert_eq!(remote.schema, local.schema);
    assert_eq!(remote.num_rows, N);
    for batch_size in [1, 3, 100] {
        let want = collect(BatchReader::new(local.clone(), None, 0..N, batch_size).unwrap());
        let got = collect(BatchReader::new(remote.clone(), None, 0..N, batch_size).unwrap());
        assert_eq!(got, want);
    }
    // A scan dropped half-way releases its prefetches; the next one still reads everything.
    let mut partial = BatchReader::new(remote.clone(), None, 0..N, 1).unwrap();
    partial.next().unwrap().unwrap();
    drop(partial);
    let predicates = vec![Predicate { column: 0, test: Test::BBox([8.5, 0.0, 9.5, 1.0]) }];
    let metrics = Arc::new(ScanMetrics::default());
    let reader = BatchReader::with_predicates(remote, Some(vec![1]), 0..N, 100, predicates)
        .unwrap()
        .with_metrics(metrics.clone());
    let n: Vec<i32> = collect(reader)
        .iter()
        .flat_map(|b| b.column(0).as_primitive::<Int32Type>().values().to_vec())
        .collect();
    assert_eq!(n, vec![8, 9]);
    assert_eq!(metrics.chunks_read.load(std::sync::atomic::Ordering::Relaxed), 2);
}
