//! Predicates that let a scan skip chunks, and how they are checked: against
//! the per-chunk statistics of the group ([`ChunkStats::prune`]), or, when a
//! store has none, against the decoded filter columns of each chunk
//! ([`row_mask`]).
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

use crate::geometry::{intersects, wkb_extent, BBox, Extent};
use crate::metadata::{unit_nanos, BlockStat, ChunkStats, Lit};

/// One end of a range.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Bound {
    pub value: Lit,
    pub inclusive: bool,
}

/// What rows of one column must satisfy.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Test {
    /// The geometry's bounding box intersects this box.
    BBox(BBox),
    /// `lower <(=) value <(=) upper`.
    Range { lower: Option<Bound>, upper: Option<Bound> },
    /// The value is one of these.
    In(Vec<Lit>),
}

/// A test on the column at `column` (index into the group's columns).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
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

impl ChunkStats {
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
