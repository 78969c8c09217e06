//! The physical limits of a full scan, for the benchmark (`bench/run.py`):
//! every chunk file of a store's `meta` arrays read and zstd-decompressed on
//! all cores (`zstd`), and, with `arrow`, each variable-length chunk then split
//! into the one values buffer and offsets an Arrow binary array needs — the
//! copy no reader producing Arrow can skip. Nothing else: no validation, no
//! Arrow arrays, no host. Each thread reuses its buffers, so fresh pages are
//! not counted either.
//!
//! `kept` adds what a reader that keeps its guarantees and hands its arrays
//! to a host cannot skip either: every chunk lands in memory of its own that
//! is kept until the whole scan is done (as a host keeps a query's result),
//! the WKB of `bbox`/`geometry` arrays is validated and `vlen-utf8` text is
//! checked as UTF-8. Still no Arrow arrays and no host.
//!
//! `decode_floor STORE zstd|arrow|kept REPEAT` prints one JSON line with the
//! seconds of each repetition (after one warm-up).

use std::path::{Path, PathBuf};
use std::time::Instant;

use rayon::prelude::*;
use sedonadb_zarr_meta_core::decode::{pages, vlen};
use sedonadb_zarr_meta_core::geometry;
use serde_json::Value;

/// One chunk file, whether its array is variable-length (`vlen-*`
/// serializer) and what `kept` checks of its elements.
struct Chunk {
    path: PathBuf,
    variable: bool,
    check: Check,
}

#[derive(Clone, Copy, PartialEq)]
enum Check {
    None,
    Wkb,
    Utf8,
}

/// Which mode a repetition runs.
#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Zstd,
    Arrow,
    Kept,
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
        let name = dir.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let check = match (codecs[0], name) {
            ("vlen-bytes", "bbox" | "geometry") => Check::Wkb,
            ("vlen-utf8", _) => Check::Utf8,
            _ => Check::None,
        };
        rows = rows.max(json["shape"][0].as_u64().unwrap_or(0));
        let mut files = Vec::new();
        collect_files(&dir.join("c"), &mut files);
        files.sort();
        out.extend(files.into_iter().map(|path| Chunk { path, variable, check }));
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

/// The values and offsets of one chunk, in memory of their own (`kept`).
type Kept = (Vec<u8>, Vec<i32>);

/// Decompress one chunk; with `arrow`, also split its vlen elements into
/// values and offsets with the reader's own split; with `kept`, into fresh
/// memory returned to the caller, elements checked.
fn scan(chunk: &Chunk, mode: Mode) -> (usize, Option<Kept>) {
    let compressed = std::fs::read(&chunk.path).expect("read chunk file");
    let capacity = zstd::bulk::Decompressor::upper_bound(&compressed).expect("zstd frame");
    let mut decompressor = zstd::bulk::Decompressor::new().expect("zstd");
    if mode == Mode::Kept && !chunk.variable {
        // Decoded straight into the memory the array keeps.
        let mut out = pages::values_buffer(capacity);
        decompressor.decompress_to_buffer(&compressed, &mut out).expect("zstd data");
        return (out.len(), Some((out, Vec::new())));
    }
    BUFFERS.with_borrow_mut(|(raw, values, offsets)| {
        raw.clear();
        raw.reserve(capacity);
        decompressor.decompress_to_buffer(&compressed, raw).expect("zstd data");
        if mode == Mode::Zstd || !chunk.variable {
            return (raw.len(), None);
        }
        let n = u32::from_le_bytes(raw[..4].try_into().expect("4 bytes")) as usize;
        if mode == Mode::Arrow {
            values.clear();
            offsets.clear();
            vlen::split_into(raw, n, n, values, offsets).expect("vlen-bytes data");
            std::hint::black_box((&values, &offsets));
            return (raw.len(), None);
        }
        let mut values = pages::values_buffer(raw.len().saturating_sub(4 * (n + 1)));
        let mut offsets = Vec::with_capacity(n + 1);
        vlen::split_into(raw, n, n, &mut values, &mut offsets).expect("vlen-bytes data");
        match chunk.check {
            Check::Wkb => offsets.windows(2).for_each(|w| {
                let item = &values[w[0] as usize..w[1] as usize];
                if !item.is_empty() {
                    geometry::validate_wkb(item).expect("valid WKB");
                }
            }),
            Check::Utf8 => {
                std::str::from_utf8(&values).expect("UTF-8 text");
            }
            Check::None => {}
        }
        (raw.len(), Some((values, offsets)))
    })
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mode = match args.get(2).map(String::as_str) {
        Some("zstd") => Some(Mode::Zstd),
        Some("arrow") => Some(Mode::Arrow),
        Some("kept") => Some(Mode::Kept),
        _ => None,
    };
    let (Some(mode), 4) = (mode, args.len()) else {
        eprintln!("usage: decode_floor STORE zstd|arrow|kept REPEAT");
        std::process::exit(2);
    };
    let store = PathBuf::from(args[1].trim_start_matches("file://"));
    let repeat: usize = args[3].parse().expect("REPEAT is a number");
    let (chunks, rows) = chunks(&store).unwrap_or_else(|e| {
        eprintln!("decode_floor: {e}");
        std::process::exit(1);
    });
    // The decompressed bytes, and the memory `kept` hands over (dropped
    // after the clock stops, as a host frees a result after the query).
    let run = || {
        let out: Vec<_> = chunks.par_iter().map(|c| scan(c, mode)).collect();
        (out.iter().map(|(n, _)| n).sum::<usize>(), out)
    };
    let (decompressed, _) = run(); // warm-up
    let seconds: Vec<f64> = (0..repeat)
        .map(|_| {
            let t = Instant::now();
            let kept = std::hint::black_box(run());
            let elapsed = t.elapsed().as_secs_f64();
            drop(kept);
            elapsed
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
