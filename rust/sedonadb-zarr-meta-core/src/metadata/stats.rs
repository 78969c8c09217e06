//! The statistics a group may carry for each block of rows of each column
//! (the `zarr_meta:stats` attribute that `write_meta` records), parsed once:
//! a scan trusts well-formed statistics, as Parquet readers trust theirs,
//! and never uses malformed ones.

use std::cmp::Ordering;

use arrow_schema::{DataType, TimeUnit};
use serde_json::Value;

use crate::geometry::BBox;
use crate::metadata::{ColumnKind, MetaColumn};

/// Group attribute holding per-chunk statistics (see [`ChunkStats`]).
pub const STATS_ATTRIBUTE: &str = "zarr_meta:stats";

/// A comparable value: integers (incl. timestamps in nanoseconds), floats, text.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Lit {
    Int(i128),
    Float(f64),
    Str(String),
}

impl Lit {
    /// Total order where it is known; `None` when the comparison is uncertain.
    pub fn compare(&self, other: &Lit) -> Option<Ordering> {
        const EXACT: i128 = 1 << 53;
        match (self, other) {
            (Lit::Int(a), Lit::Int(b)) => Some(a.cmp(b)),
            (Lit::Float(a), Lit::Float(b)) => a.partial_cmp(b),
            (Lit::Int(a), Lit::Float(b)) if a.abs() < EXACT => (*a as f64).partial_cmp(b),
            (Lit::Float(a), Lit::Int(b)) if b.abs() < EXACT => a.partial_cmp(&(*b as f64)),
            (Lit::Str(a), Lit::Str(b)) => Some(a.cmp(b)),
            _ => None,
        }
    }
}

/// Statistics of one column for one block of rows.
#[derive(Debug, Clone, PartialEq)]
pub enum BlockStat {
    MinMax(Option<Lit>, Option<Lit>),
    BBox(Option<BBox>),
}

/// Per-block statistics read from [`STATS_ATTRIBUTE`].
///
/// ```json
/// {"version": 1, "num_rows": 1000000, "block_rows": 100000,
///  "columns": {"bbox": {"bbox": [[xmin, ymin, xmax, ymax], null, ...]},
///              "date": {"min": [...], "max": [...]}}}
/// ```
/// Values are stored values (for `datetime64` the integers NumPy stores);
/// `null` marks a block without valid values. Statistics whose `num_rows`
/// differs from the arrays' length are stale and ignored.
#[derive(Debug, Clone, PartialEq)]
pub struct ChunkStats {
    pub block_rows: u64,
    /// `columns[i]` are the stats of group column `i`, one per block, if any.
    pub columns: Vec<Option<Vec<BlockStat>>>,
}

fn json_lit(v: &Value, kind: &ColumnKind) -> Option<Lit> {
    match kind {
        ColumnKind::Timestamp(conv) | ColumnKind::Duration(conv) => {
            let raw = v.as_i64()?;
            let value = conv.convert(raw).ok()??;
            Some(Lit::Int(value as i128 * unit_nanos(conv.unit)))
        }
        ColumnKind::Primitive(dt) if dt.is_integer() => {
            v.as_i64().map(|i| Lit::Int(i as i128)).or_else(|| v.as_u64().map(|u| Lit::Int(u as i128)))
        }
        ColumnKind::Primitive(DataType::Float32 | DataType::Float64) | ColumnKind::Float16 => {
            v.as_f64().map(Lit::Float)
        }
        ColumnKind::Utf8(_) => v.as_str().map(|s| Lit::Str(s.to_string())),
        _ => None,
    }
}

fn json_bbox(v: &Value) -> Option<BBox> {
    let a = v.as_array()?;
    if a.len() != 4 {
        return None;
    }
    let mut b = [0.0; 4];
    for (i, x) in a.iter().enumerate() {
        b[i] = x.as_f64().filter(|f| f.is_finite())?;
    }
    (b[0] <= b[2] && b[1] <= b[3]).then_some(b)
}

/// One block's statistic: `null` is a block without valid values; anything
/// malformed is `Err`, and then the column's statistics are not used at all
/// (malformed statistics must never prune).
fn block_stat(s: &Value, block: usize, kind: &ColumnKind) -> Result<BlockStat, ()> {
    if let Some(boxes) = s.get("bbox") {
        let b = boxes.as_array().and_then(|b| b.get(block)).ok_or(())?;
        return if b.is_null() {
            Ok(BlockStat::BBox(None))
        } else {
            json_bbox(b).map(|b| BlockStat::BBox(Some(b))).ok_or(())
        };
    }
    let bound = |key: &str| -> Result<Option<Lit>, ()> {
        let v = s.get(key).and_then(Value::as_array).and_then(|a| a.get(block)).ok_or(())?;
        if v.is_null() {
            return Ok(None);
        }
        json_lit(v, kind).filter(|l| !matches!(l, Lit::Float(f) if f.is_nan())).map(Some).ok_or(())
    };
    let (min, max) = (bound("min")?, bound("max")?);
    match (&min, &max) {
        (Some(lo), Some(hi)) if lo.compare(hi) != Some(Ordering::Greater) => Ok(BlockStat::MinMax(min, max)),
        (None, None) => Ok(BlockStat::MinMax(None, None)),
        _ => Err(()),
    }
}

/// What a group's statistics document covers and whether readers use it, as
/// a JSON object: `present`, `current`, `problem` (why not current),
/// `num_rows`, `block_rows`, `num_blocks` and `columns` (each column's
/// statistic kinds, sorted). The command-line tool reports it.
pub fn stats_report(attributes: &serde_json::Map<String, Value>, num_rows: u64) -> Value {
    let Some(stats) = attributes.get(STATS_ATTRIBUTE) else {
        return serde_json::json!({"present": false, "current": false, "problem": null});
    };
    let malformed = |why: &str| serde_json::json!({"present": true, "current": false, "problem": format!("malformed statistics ({why})")});
    let Some(block_rows) = stats.get("block_rows").and_then(Value::as_u64).filter(|b| *b > 0) else {
        return malformed("block_rows must be a positive integer");
    };
    let Some(recorded) = stats.get("num_rows").and_then(Value::as_u64) else {
        return malformed("num_rows must be a non-negative integer");
    };
    let Some(columns) = stats.get("columns").and_then(Value::as_object) else {
        return malformed("columns must be an object");
    };
    if stats.get("version").and_then(Value::as_u64) != Some(1) {
        return malformed("version must be 1");
    }
    let blocks = recorded.div_ceil(block_rows);
    let mut problem: Option<String> = None;
    let mut kinds = serde_json::Map::new();
    for (name, entry) in columns {
        let Some(entry) = entry.as_object() else {
            problem.get_or_insert_with(|| format!("malformed statistics of column '{name}'"));
            continue;
        };
        let mut names: Vec<&String> = entry.keys().collect();
        names.sort();
        kinds.insert(name.clone(), Value::from(names.into_iter().cloned().collect::<Vec<_>>()));
        if entry.values().any(|v| v.as_array().is_none_or(|a| a.len() as u64 != blocks)) {
            problem.get_or_insert_with(|| {
                format!("column '{name}' has statistics for another number of chunks than {blocks}")
            });
        }
    }
    if recorded != num_rows {
        problem = Some(format!("the statistics cover {recorded} rows but the group has {num_rows}"));
    }
    serde_json::json!({
        "present": true,
        "current": problem.is_none(),
        "problem": problem,
        "num_rows": recorded,
        "block_rows": block_rows,
        "num_blocks": blocks,
        "columns": kinds,
    })
}

impl ChunkStats {
    /// Read statistics from a group's attributes, for its `columns` of
    /// `num_rows` rows; `None` if absent, stale or malformed.
    pub fn from_attributes(
        attributes: &serde_json::Map<String, Value>,
        num_rows: u64,
        columns: &[MetaColumn],
    ) -> Option<ChunkStats> {
        let stats = attributes.get(STATS_ATTRIBUTE)?;
        if stats.get("version")?.as_u64()? != 1 || stats.get("num_rows")?.as_u64()? != num_rows {
            return None;
        }
        let block_rows = stats.get("block_rows")?.as_u64().filter(|b| *b > 0)?;
        let blocks = num_rows.div_ceil(block_rows) as usize;
        let by_name = stats.get("columns")?.as_object()?;
        let columns = columns
            .iter()
            .map(|c| {
                let s = by_name.get(&c.name)?;
                let lengths_ok = ["bbox", "min", "max"]
                    .iter()
                    .filter_map(|k| s.get(*k))
                    .all(|v| v.as_array().is_some_and(|a| a.len() == blocks));
                if !lengths_ok {
                    return None;
                }
                (0..blocks).map(|b| block_stat(s, b, &c.kind)).collect::<Result<Vec<_>, ()>>().ok()
            })
            .collect();
        Some(ChunkStats { block_rows, columns })
    }
}

/// Nanoseconds per unit.
pub fn unit_nanos(unit: TimeUnit) -> i128 {
    match unit {
        TimeUnit::Second => 1_000_000_000,
        TimeUnit::Millisecond => 1_000_000,
        TimeUnit::Microsecond => 1_000,
        TimeUnit::Nanosecond => 1,
    }
}
