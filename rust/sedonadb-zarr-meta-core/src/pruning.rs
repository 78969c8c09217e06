//! Predicates that let a scan skip chunks, and the evidence to skip them:
//! per-chunk statistics stored in the group's attributes, or, when a store
//! has none, the decoded filter columns of each chunk.
//!
//! Everything here is conservative: a predicate may only say "no row of
//! these rows can match"; the host always re-applies the real filter.

use std::cmp::Ordering;
use std::ops::Range;

use arrow_array::cast::AsArray;
use arrow_array::types::*;
use arrow_array::{Array, ArrayRef};
use arrow_buffer::BooleanBuffer;
use arrow_schema::{DataType, TimeUnit};
use serde_json::Value;

use crate::bounds::{intersects, wkb_extent, BBox, Extent};
use crate::decode::ColumnKind;
use crate::group::MetaGroup;

/// Group attribute holding per-chunk statistics (see [`ChunkStats`]).
pub const STATS_ATTRIBUTE: &str = "zarr_meta:stats";

/// A comparable value: integers (incl. timestamps in nanoseconds), floats, text.
#[derive(Debug, Clone, PartialEq)]
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

/// One end of a range.
#[derive(Debug, Clone, PartialEq)]
pub struct Bound {
    pub value: Lit,
    pub inclusive: bool,
}

/// What rows of one column must satisfy.
#[derive(Debug, Clone, PartialEq)]
pub enum Test {
    /// The geometry's bounding box intersects this box.
    BBox(BBox),
    /// `lower <(=) value <(=) upper`.
    Range { lower: Option<Bound>, upper: Option<Bound> },
    /// The value is one of these.
    In(Vec<Lit>),
}

/// A test on the column at `column` (index into the group's columns).
#[derive(Debug, Clone, PartialEq)]
pub struct Predicate {
    pub column: usize,
    pub test: Test,
}

impl Predicate {
    /// Could any value in `[min, max]` pass? `None` bounds mean unknown.
    fn may_match_range(&self, min: Option<&Lit>, max: Option<&Lit>) -> bool {
        let (Some(min), Some(max)) = (min, max) else { return true };
        match &self.test {
            Test::BBox(_) => true,
            Test::Range { lower, upper } => {
                let above = lower.as_ref().is_none_or(|l| match max.compare(&l.value) {
                    Some(Ordering::Less) => false,
                    Some(Ordering::Equal) => l.inclusive,
                    _ => true,
                });
                let below = upper.as_ref().is_none_or(|u| match min.compare(&u.value) {
                    Some(Ordering::Greater) => false,
                    Some(Ordering::Equal) => u.inclusive,
                    _ => true,
                });
                above && below
            }
            Test::In(values) => values.iter().any(|v| {
                !matches!(v.compare(min), Some(Ordering::Less))
                    && !matches!(v.compare(max), Some(Ordering::Greater))
            }),
        }
    }

    fn passes(&self, v: &Lit) -> bool {
        self.may_match_range(Some(v), Some(v))
    }

    /// [`Predicate::passes`] for text without allocating; `None` when the
    /// test holds non-text values (the caller falls back to `passes`).
    fn passes_str(&self, v: &str) -> Option<bool> {
        fn text(l: &Lit) -> Option<&str> {
            if let Lit::Str(s) = l {
                Some(s.as_str())
            } else {
                None
            }
        }
        match &self.test {
            Test::In(values) => {
                let mut any = false;
                for value in values {
                    any |= text(value)? == v;
                }
                Some(any)
            }
            Test::Range { lower, upper } => {
                let above = match lower {
                    None => true,
                    Some(l) => match v.cmp(text(&l.value)?) {
                        Ordering::Greater => true,
                        Ordering::Equal => l.inclusive,
                        Ordering::Less => false,
                    },
                };
                let below = match upper {
                    None => true,
                    Some(u) => match v.cmp(text(&u.value)?) {
                        Ordering::Less => true,
                        Ordering::Equal => u.inclusive,
                        Ordering::Greater => false,
                    },
                };
                Some(above && below)
            }
            Test::BBox(_) => None,
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
    /// Read statistics from the group's attributes; `None` if absent, stale or malformed.
    pub fn from_group(group: &MetaGroup) -> Option<ChunkStats> {
        let stats = group.attributes.get(STATS_ATTRIBUTE)?;
        if stats.get("version")?.as_u64()? != 1 || stats.get("num_rows")?.as_u64()? != group.num_rows {
            return None;
        }
        let block_rows = stats.get("block_rows")?.as_u64().filter(|b| *b > 0)?;
        let blocks = group.num_rows.div_ceil(block_rows) as usize;
        let by_name = stats.get("columns")?.as_object()?;
        let columns = group
            .columns
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

    /// Row ranges of `rows` that may hold matches of all `predicates`.
    pub fn prune(&self, predicates: &[Predicate], rows: Range<u64>) -> Vec<Range<u64>> {
        let mut out: Vec<Range<u64>> = Vec::new();
        if rows.start >= rows.end {
            return out;
        }
        let first = rows.start / self.block_rows;
        let last = (rows.end - 1) / self.block_rows;
        for block in first..=last {
            let keep = predicates.iter().all(|p| {
                let Some(Some(stats)) = self.columns.get(p.column) else { return true };
                match (stats.get(block as usize), &p.test) {
                    (Some(BlockStat::BBox(None)), Test::BBox(_)) => false,
                    (Some(BlockStat::BBox(Some(b))), Test::BBox(q)) => intersects(b, q),
                    (Some(BlockStat::MinMax(None, None)), Test::Range { .. } | Test::In(_)) => false,
                    (Some(BlockStat::MinMax(min, max)), _) => p.may_match_range(min.as_ref(), max.as_ref()),
                    _ => true,
                }
            });
            if keep {
                let start = (block * self.block_rows).max(rows.start);
                let end = ((block + 1) * self.block_rows).min(rows.end);
                match out.last_mut() {
                    Some(prev) if prev.end == start => prev.end = end,
                    _ => out.push(start..end),
                }
            }
        }
        out
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

/// Value of row `i` of a decoded column as a [`Lit`] (`None` for null or unsupported).
fn row_lit(array: &ArrayRef, i: usize) -> Option<Lit> {
    if array.is_null(i) {
        return None;
    }
    macro_rules! int {
        ($t:ty) => {
            Some(Lit::Int(array.as_primitive::<$t>().value(i) as i128))
        };
    }
    match array.data_type() {
        DataType::Int8 => int!(Int8Type),
        DataType::Int16 => int!(Int16Type),
        DataType::Int32 => int!(Int32Type),
        DataType::Int64 => int!(Int64Type),
        DataType::UInt8 => int!(UInt8Type),
        DataType::UInt16 => int!(UInt16Type),
        DataType::UInt32 => int!(UInt32Type),
        DataType::UInt64 => int!(UInt64Type),
        DataType::Float32 => Some(Lit::Float(array.as_primitive::<Float32Type>().value(i) as f64)),
        DataType::Float64 => Some(Lit::Float(array.as_primitive::<Float64Type>().value(i))),
        DataType::Timestamp(unit, _) | DataType::Duration(unit) => {
            let raw = match (array.data_type(), unit) {
                (DataType::Timestamp(..), TimeUnit::Second) => {
                    array.as_primitive::<TimestampSecondType>().value(i)
                }
                (DataType::Timestamp(..), TimeUnit::Millisecond) => {
                    array.as_primitive::<TimestampMillisecondType>().value(i)
                }
                (DataType::Timestamp(..), TimeUnit::Microsecond) => {
                    array.as_primitive::<TimestampMicrosecondType>().value(i)
                }
                (DataType::Timestamp(..), TimeUnit::Nanosecond) => {
                    array.as_primitive::<TimestampNanosecondType>().value(i)
                }
                (_, TimeUnit::Second) => array.as_primitive::<DurationSecondType>().value(i),
                (_, TimeUnit::Millisecond) => array.as_primitive::<DurationMillisecondType>().value(i),
                (_, TimeUnit::Microsecond) => array.as_primitive::<DurationMicrosecondType>().value(i),
                (_, TimeUnit::Nanosecond) => array.as_primitive::<DurationNanosecondType>().value(i),
            };
            Some(Lit::Int(raw as i128 * unit_nanos(*unit)))
        }
        DataType::Utf8 => Some(Lit::Str(array.as_string::<i32>().value(i).to_string())),
        _ => None,
    }
}

/// [`row_mask`] of an integer range over 64-bit integers, timestamps or
/// durations, on the raw values (the common time-window filter); `None`
/// for other tests and types.
fn int_range_mask(test: &Test, array: &ArrayRef) -> Option<BooleanBuffer> {
    let Test::Range { lower, upper } = test else { return None };
    let scale = match array.data_type() {
        DataType::Int64 => 1,
        DataType::Timestamp(unit, _) | DataType::Duration(unit) => unit_nanos(*unit),
        _ => return None,
    };
    let bound = |b: &Option<Bound>| match b {
        None => Some(None),
        Some(Bound { value: Lit::Int(v), inclusive }) => Some(Some((*v, *inclusive))),
        Some(_) => None,
    };
    let (lo, hi) = (bound(lower)?, bound(upper)?);
    let data = array.to_data();
    let values: &[i64] = data.buffer::<i64>(0);
    let nulls = array.nulls();
    Some(BooleanBuffer::collect_bool(array.len(), |i| {
        let v = values[i] as i128 * scale;
        nulls.is_none_or(|n| n.is_valid(i))
            && lo.is_none_or(|(l, inclusive)| if inclusive { v >= l } else { v > l })
            && hi.is_none_or(|(h, inclusive)| if inclusive { v <= h } else { v < h })
    }))
}

/// Which rows of `array` (a decoded column) may pass `test`: `false` only
/// for rows that certainly fail it (nulls fail every test, as in SQL).
/// `None` when every row may pass (the test cannot be checked on this type).
pub fn row_mask(test: &Test, array: &ArrayRef) -> Option<BooleanBuffer> {
    let n = array.len();
    let mask = |f: &dyn Fn(usize) -> bool| Some(BooleanBuffer::collect_bool(n, f));
    match test {
        Test::BBox(q) => match array.data_type() {
            DataType::Binary => {
                let b = array.as_binary::<i32>();
                mask(&|i| {
                    b.is_valid(i)
                        && match wkb_extent(b.value(i)) {
                            Extent::Box(e) => intersects(&e, q),
                            Extent::Empty => false,
                            Extent::Unknown => true,
                        }
                })
            }
            _ => None,
        },
        Test::Range { .. } | Test::In(_) => {
            let predicate = Predicate { column: 0, test: test.clone() };
            match array.data_type() {
                DataType::Utf8 => {
                    let s = array.as_string::<i32>();
                    let passes = |i: usize| {
                        s.is_valid(i)
                            && predicate
                                .passes_str(s.value(i))
                                .unwrap_or_else(|| predicate.passes(&Lit::Str(s.value(i).to_string())))
                    };
                    mask(&passes)
                }
                DataType::Boolean | DataType::Binary => None,
                _ => int_range_mask(test, array)
                    .or_else(|| mask(&|i| row_lit(array, i).is_some_and(|v| predicate.passes(&v)))),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn range(lo: Option<(i128, bool)>, hi: Option<(i128, bool)>) -> Test {
        let b = |x: Option<(i128, bool)>| x.map(|(v, inclusive)| Bound { value: Lit::Int(v), inclusive });
        Test::Range { lower: b(lo), upper: b(hi) }
    }

    #[test]
    fn range_against_min_max() {
        let p = |t| Predicate { column: 0, test: t };
        let (min, max) = (Lit::Int(10), Lit::Int(20));
        assert!(p(range(Some((20, true)), None)).may_match_range(Some(&min), Some(&max)));
        assert!(!p(range(Some((20, false)), None)).may_match_range(Some(&min), Some(&max)));
        assert!(!p(range(None, Some((10, false)))).may_match_range(Some(&min), Some(&max)));
        assert!(p(range(Some((0, true)), Some((30, true)))).may_match_range(Some(&min), Some(&max)));
        assert!(!p(Test::In(vec![Lit::Int(5), Lit::Int(25)])).may_match_range(Some(&min), Some(&max)));
        assert!(p(Test::In(vec![Lit::Int(15)])).may_match_range(Some(&min), Some(&max)));
        // Unknown comparisons keep the block.
        let big = Lit::Int(1 << 60);
        assert!(p(Test::In(vec![Lit::Float(1.0)])).may_match_range(Some(&big), Some(&big)));
    }

    #[test]
    fn row_masks_keep_every_row_that_may_pass() {
        let ints: ArrayRef = Arc::new(arrow_array::Int64Array::from(vec![Some(1), None, Some(9), Some(5)]));
        let m = row_mask(&range(Some((5, true)), None), &ints).unwrap();
        assert_eq!(m.iter().collect::<Vec<_>>(), vec![false, false, true, true]);
        let text: ArrayRef =
            Arc::new(arrow_array::StringArray::from(vec![Some("b"), Some("a"), None, Some("c")]));
        let between = Test::Range {
            lower: Some(Bound { value: Lit::Str("b".into()), inclusive: true }),
            upper: Some(Bound { value: Lit::Str("c".into()), inclusive: false }),
        };
        assert_eq!(
            row_mask(&between, &text).unwrap().iter().collect::<Vec<_>>(),
            vec![true, false, false, false]
        );
        let any_of = Test::In(vec![Lit::Str("a".into()), Lit::Str("c".into())]);
        assert_eq!(
            row_mask(&any_of, &text).unwrap().iter().collect::<Vec<_>>(),
            vec![false, true, false, true]
        );
        // A value of another type cannot be compared: the row stays.
        let mixed = Test::In(vec![Lit::Int(1)]);
        assert_eq!(
            row_mask(&mixed, &text).unwrap().iter().collect::<Vec<_>>(),
            vec![true, true, false, true]
        );
        // Boxes: rows whose extent misses the query box go, unknown extents stay.
        let boxes: ArrayRef = Arc::new(arrow_array::BinaryArray::from(vec![
            Some(&point(0.5, 0.5)[..]),
            Some(&point(5.0, 5.0)[..]),
            Some(&[1u8, 99, 0, 0, 0][..]),
            None,
        ]));
        let q = Test::BBox([0.0, 0.0, 1.0, 1.0]);
        assert_eq!(row_mask(&q, &boxes).unwrap().iter().collect::<Vec<_>>(), vec![true, false, true, false]);
    }

    fn point(x: f64, y: f64) -> Vec<u8> {
        let mut out = vec![1u8, 1, 0, 0, 0];
        out.extend_from_slice(&x.to_le_bytes());
        out.extend_from_slice(&y.to_le_bytes());
        out
    }

    /// Whether any row of `array` (a decoded column) may pass `test`.
    fn any_row_matches(test: &Test, array: &ArrayRef) -> bool {
        row_mask(test, array).is_none_or(|mask| mask.count_set_bits() > 0)
    }

    #[test]
    fn rows_of_decoded_columns() {
        let ints: ArrayRef = Arc::new(arrow_array::Int32Array::from(vec![1, 5, 9]));
        assert!(any_row_matches(&range(Some((8, true)), None), &ints));
        assert!(!any_row_matches(&range(Some((9, false)), None), &ints));
        let text: ArrayRef = Arc::new(arrow_array::StringArray::from(vec!["a", "b"]));
        assert!(any_row_matches(&Test::In(vec![Lit::Str("b".into())]), &text));
        assert!(!any_row_matches(&Test::In(vec![Lit::Str("c".into())]), &text));
    }
}
