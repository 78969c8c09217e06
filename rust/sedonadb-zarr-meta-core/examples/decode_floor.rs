//! The physical limits of a full scan, for the benchmark (`bench/run.py`):
//! every chunk file of a store's `meta` arrays read and zstd-decompressed on
//! all cores (`zstd`), and, with `arrow`, each variable-length chunk then split
//! into the one values buffer and offsets an Arrow binary array needs — the
//! copy no reader producing Arrow can skip. Nothing else: no validation, no
//! Arrow arrays, no host.
//!
//! `decode_floor STORE zstd|arrow REPEAT` prints one JSON line with the
//! seconds of each repetition (after one warm-up). Each thread reuses its
//! buffers, so fresh pages are not counted either.

use std::path::{Path, PathBuf};
use std::time::Instant;

use rayon::prelude::*;
use sedonadb_zarr_meta_core::vlen;
use serde_json::Value;

/// One chunk file and whether its array is variable-length (`vlen-*` serializer).
struct Chunk {
    path: PathBuf,
    variable: bool,
}

/// The chunk files of the store's `meta` arrays, and the arrays' length.
fn chunks(store: &Path) -> Result<(Vec<Chunk>, u64), String> {
    let meta = store.join("meta");
    let mut out = Vec::new();
    let mut rows = 0;
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&meta)
        .map_err(|e| format!("{}: {e}", meta.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("zarr.json").is_file())
        .collect();
    dirs.sort();
    for dir in dirs {
        let text = std::fs::read_to_string(dir.join("zarr.json")).map_err(|e| e.to_string())?;
        let json: Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
        if json["node_type"] != "array" {
            continue;
        }
        let codecs: Vec<&str> =
            json["codecs"].as_array().into_iter().flatten().filter_map(|c| c["name"].as_str()).collect();
        if codecs.len() != 2 || codecs[1] != "zstd" {
            return Err(format!("{}: codecs {codecs:?}; only [serializer, zstd] is measured", dir.display()));
        }
        let variable = codecs[0].starts_with("vlen-");
        rows = rows.max(json["shape"][0].as_u64().unwrap_or(0));
        let mut files = Vec::new();
        collect_files(&dir.join("c"), &mut files);
        files.sort();
        out.extend(files.into_iter().map(|path| Chunk { path, variable }));
    }
    if out.is_empty() {
        return Err(format!("{}: no chunk files", meta.display()));
    }
    Ok((out, rows))
}

fn collect_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect_files(&path, out);
        } else if path.is_file() {
            out.push(path);
        }
    }
}

thread_local! {
    /// Each thread's buffers, reused from chunk to chunk: the measurement
    /// pays for decompressing and copying, not for fresh pages.
    static BUFFERS: std::cell::RefCell<(Vec<u8>, Vec<u8>, Vec<i32>)> = Default::default();
}

/// Decompress one chunk; with `arrow`, also split its vlen elements into
/// values and offsets with the reader's own split.
fn scan(chunk: &Chunk, arrow: bool) -> usize {
    let compressed = std::fs::read(&chunk.path).expect("read chunk file");
    let capacity = zstd::bulk::Decompressor::upper_bound(&compressed).expect("zstd frame");
    BUFFERS.with_borrow_mut(|(raw, values, offsets)| {
        raw.clear();
        raw.reserve(capacity);
        zstd::bulk::Decompressor::new()
            .expect("zstd")
            .decompress_to_buffer(&compressed, raw)
            .expect("zstd data");
        if arrow && chunk.variable {
            let n = u32::from_le_bytes(raw[..4].try_into().expect("4 bytes")) as usize;
            values.clear();
            offsets.clear();
            vlen::split_into(raw, n, n, values, offsets).expect("vlen-bytes data");
            std::hint::black_box((&values, &offsets));
        }
        raw.len()
    })
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 4 || !matches!(args[2].as_str(), "zstd" | "arrow") {
        eprintln!("usage: decode_floor STORE zstd|arrow REPEAT");
        std::process::exit(2);
    }
    let store = PathBuf::from(args[1].trim_start_matches("file://"));
    let arrow = args[2] == "arrow";
    let repeat: usize = args[3].parse().expect("REPEAT is a number");
    let (chunks, rows) = chunks(&store).unwrap_or_else(|e| {
        eprintln!("decode_floor: {e}");
        std::process::exit(1);
    });
    let run = || chunks.par_iter().map(|c| scan(c, arrow)).sum::<usize>();
    let decompressed = run(); // warm-up
    let seconds: Vec<f64> = (0..repeat)
        .map(|_| {
            let t = Instant::now();
            std::hint::black_box(run());
            t.elapsed().as_secs_f64()
        })
        .collect();
    println!(
        "{}",
        serde_json::json!({
            "rows": rows,
            "chunk_files": chunks.len(),
            "decompressed_bytes": decompressed,
            "threads": rayon::current_num_threads(),
            "seconds": seconds,
        })
    );
}
