//! Planning a scan: which row ranges the statistics keep, how they are
//! shared between partitions, and the pieces a reader walks (each inside one
//! chunk of every column it reads).

use std::collections::VecDeque;
use std::ops::Range;

use crate::metadata::{Lit, MetaGroup};
use crate::scan::predicate::{Bound, Predicate, Test};

/// Split `rows` at every chunk boundary of the projected columns and every
/// `batch_size` rows after a boundary.
pub(super) fn plan_pieces(
    group: &MetaGroup,
    projection: &[usize],
    rows: Range<u64>,
    batch_size: usize,
) -> VecDeque<Range<u64>> {
    let mut cuts: Vec<u64> = projection
        .iter()
        .filter_map(|&c| group.columns.get(c))
        .flat_map(|column| column.chunk_bounds.iter().copied())
        .filter(|b| *b > rows.start && *b < rows.end)
        .collect();
    cuts.push(rows.end);
    cuts.sort_unstable();
    cuts.dedup();
    let mut pieces = VecDeque::new();
    let mut start = rows.start;
    for cut in cuts {
        while start < cut {
            let end = cut.min(start.saturating_add(batch_size as u64));
            pieces.push_back(start..end);
            start = end;
        }
    }
    pieces
}

/// The parts of `rows` (clamped to the group) whose statistics do not rule
/// out a match of every one of `predicates`. Tests of the row-number column
/// select their rows exactly, without statistics.
#[allow(clippy::single_range_in_vec_init)] // a list of row ranges that starts as one
pub(super) fn candidate_ranges(
    group: &MetaGroup,
    predicates: &[Predicate],
    rows: Range<u64>,
) -> Vec<Range<u64>> {
    let end = rows.end.min(group.num_rows);
    let start = rows.start.min(end);
    let (by_position, by_value): (Vec<&Predicate>, Vec<&Predicate>) =
        predicates.iter().partition(|p| group.is_row_number(p.column));
    let mut ranges = vec![start..end];
    for p in by_position {
        ranges = intersect(&ranges, &positions(&p.test));
    }
    let by_value: Vec<Predicate> = by_value.into_iter().cloned().collect();
    match &group.stats {
        Some(stats) if !by_value.is_empty() => {
            ranges.into_iter().flat_map(|r| stats.prune(&by_value, r)).collect()
        }
        _ => ranges.into_iter().filter(|r| r.start < r.end).collect(),
    }
}

/// The row positions that may pass `test` on the row-number column, as
/// sorted, disjoint ranges (a test it cannot bound keeps every row).
#[allow(clippy::single_range_in_vec_init)] // a list of row ranges, here of one
fn positions(test: &Test) -> Vec<Range<u64>> {
    const ALL: Range<u64> = 0..u64::MAX;
    match test {
        Test::Range { lower, upper } => {
            let start = lower.as_ref().map_or(Some(0), first_position);
            let end = upper.as_ref().map_or(Some(u64::MAX), end_position);
            match (start, end) {
                (Some(s), Some(e)) if s < e => vec![s..e],
                (Some(_), Some(_)) => Vec::new(),
                _ => vec![ALL],
            }
        }
        Test::In(values) => {
            let mut rows: Vec<u64> = Vec::with_capacity(values.len());
            for value in values {
                match value {
                    Lit::Int(v) => rows.extend(u64::try_from(*v).ok()),
                    Lit::Float(f) if f.is_finite() && f.fract() == 0.0 && *f >= 0.0 && *f < 1.8e19 => {
                        rows.push(*f as u64)
                    }
                    Lit::Float(f) if !f.is_nan() => {} // matches no position
                    _ => return vec![ALL],
                }
            }
            row_ranges(rows)
        }
        Test::BBox(_) => vec![ALL],
    }
}

/// The positions `rows` as sorted, disjoint ranges (runs of consecutive
/// positions merged; each position once).
pub fn row_ranges(mut rows: Vec<u64>) -> Vec<Range<u64>> {
    rows.sort_unstable();
    rows.dedup();
    let mut out: Vec<Range<u64>> = Vec::new();
    for row in rows {
        match out.last_mut() {
            Some(prev) if prev.end == row => prev.end = row + 1,
            _ => out.push(row..row.saturating_add(1)),
        }
    }
    out
}

/// The first position at or after a lower bound; `None` when it cannot be told.
fn first_position(bound: &Bound) -> Option<u64> {
    let first = match bound.value {
        Lit::Int(v) if bound.inclusive => v,
        Lit::Int(v) => v.saturating_add(1),
        Lit::Float(f) if f.is_nan() => return None,
        Lit::Float(f) if bound.inclusive => f.ceil().clamp(-1.0, 2e19) as i128,
        Lit::Float(f) => f.floor().clamp(-1.0, 2e19) as i128 + 1,
        Lit::Str(_) => return None,
    };
    Some(first.clamp(0, u64::MAX as i128) as u64)
}

/// The position after the last one an upper bound admits; `None` when it
/// cannot be told.
fn end_position(bound: &Bound) -> Option<u64> {
    let end = match bound.value {
        Lit::Int(v) if bound.inclusive => v.saturating_add(1),
        Lit::Int(v) => v,
        Lit::Float(f) if f.is_nan() => return None,
        Lit::Float(f) if bound.inclusive => f.floor().clamp(-2.0, 2e19) as i128 + 1,
        Lit::Float(f) => f.ceil().clamp(-1.0, 2e19) as i128,
        Lit::Str(_) => return None,
    };
    Some(end.clamp(0, u64::MAX as i128) as u64)
}

/// The rows in both `a` and `b` (each sorted and disjoint).
fn intersect(a: &[Range<u64>], b: &[Range<u64>]) -> Vec<Range<u64>> {
    let (mut i, mut j, mut out) = (0, 0, Vec::new());
    while i < a.len() && j < b.len() {
        let (start, end) = (a[i].start.max(b[j].start), a[i].end.min(b[j].end));
        if start < end {
            out.push(start..end);
        }
        if a[i].end < b[j].end {
            i += 1;
        } else {
            j += 1;
        }
    }
    out
}

/// The first `n` rows of `ranges`.
fn first_rows(ranges: Vec<Range<u64>>, mut n: u64) -> Vec<Range<u64>> {
    let mut out = Vec::new();
    for range in ranges {
        if n == 0 {
            break;
        }
        let end = range.end.min(range.start.saturating_add(n));
        n -= end - range.start;
        out.push(range.start..end);
    }
    out
}

/// The rows of a scan split into at most `partitions` runs of row ranges,
/// for partitions that decode in parallel. Rows that the statistics rule out
/// for `predicates` are left out first, so the rows that remain (a selective
/// query's few chunks) are shared evenly instead of falling in one partition.
/// Without predicates, a `limit` keeps only the first `limit` rows, so a
/// query peeking at a catalogue decodes one chunk, not one per partition.
/// Cuts fall on chunk boundaries of the first projected column.
pub fn partition_ranges(
    group: &MetaGroup,
    projection: &[usize],
    predicates: &[Predicate],
    partitions: usize,
    limit: Option<usize>,
) -> Vec<Vec<Range<u64>>> {
    let mut candidates = candidate_ranges(group, predicates, 0..group.num_rows);
    // Row-number tests are exact on the candidates: a limit still keeps the first rows.
    if let (true, Some(limit)) = (predicates.iter().all(|p| group.is_row_number(p.column)), limit) {
        candidates = first_rows(candidates, limit as u64);
    }
    let column = projection
        .iter()
        .chain(predicates.iter().map(|p| &p.column))
        .find(|c| !group.is_row_number(**c))
        .copied()
        .unwrap_or(0);
    let bounds: &[u64] = match group.columns.get(column) {
        Some(c) if partitions > 1 => &c.chunk_bounds,
        _ => return vec![candidates],
    };
    // The candidate rows cut at chunk boundaries: units no partition splits.
    let mut units: Vec<Range<u64>> = Vec::new();
    for range in candidates {
        let mut start = range.start;
        while start < range.end {
            let next = bounds[bounds.partition_point(|b| *b <= start)..].first().copied();
            let end = next.map_or(range.end, |b| b.min(range.end));
            units.push(start..end);
            start = end;
        }
    }
    if units.is_empty() {
        return vec![Vec::new()];
    }
    let per = units.len().div_ceil(partitions);
    units
        .chunks(per)
        .map(|part| {
            let mut merged: Vec<Range<u64>> = Vec::new();
            for unit in part {
                match merged.last_mut() {
                    Some(prev) if prev.end == unit.start => prev.end = unit.end,
                    _ => merged.push(unit.clone()),
                }
            }
            merged
        })
        .collect()
}

#[cfg(test)]
// Row ranges of 1-D arrays: one range is a whole run.
#[allow(clippy::single_range_in_vec_init)]
mod tests {
    use super::*;
    use crate::metadata::Lit;
    use crate::scan::predicate::{Bound, Test};
    use crate::testing::open_store;

    fn n_at_least(v: i128) -> Predicate {
        Predicate {
            column: 1,
            test: Test::Range { lower: Some(Bound { value: Lit::Int(v), inclusive: true }), upper: None },
        }
    }

    #[test]
    fn pieces_cut_at_every_chunk_boundary_and_batch_size() {
        let (_dir, group) = open_store(false);
        // n: chunks of 4; name: chunks of 3.
        let pieces: Vec<_> = plan_pieces(&group, &[1, 2], 0..10, 100).into_iter().collect();
        assert_eq!(pieces, [0..3, 3..4, 4..6, 6..8, 8..9, 9..10]);
        let pieces: Vec<_> = plan_pieces(&group, &[1], 2..10, 3).into_iter().collect();
        assert_eq!(pieces, [2..4, 4..7, 7..8, 8..10]);
    }

    #[test]
    fn first_rows_of_ranges() {
        assert_eq!(first_rows(vec![0..3, 5..9], 5), [0..3, 5..7]);
        assert_eq!(first_rows(vec![0..3], 0), Vec::<Range<u64>>::new());
    }

    #[test]
    fn partitions_share_the_chunks_statistics_keep() {
        let (_dir, group) = open_store(true);
        // No predicate: the chunks of the first projected column, shared evenly.
        assert_eq!(partition_ranges(&group, &[1], &[], 2, None), [vec![0..8], vec![8..10]]);
        assert_eq!(partition_ranges(&group, &[1], &[], 1, None), [vec![0..10]]);
        // n >= 5: block 0 (0..4, max 3) is ruled out by the statistics.
        assert_eq!(partition_ranges(&group, &[1], &[n_at_least(5)], 2, None), [vec![4..8], vec![8..10]]);
        // A LIMIT without predicates reads only the first rows.
        assert_eq!(partition_ranges(&group, &[1], &[], 2, Some(3)), [vec![0..3]]);
        // Nothing can match: one empty partition.
        assert_eq!(partition_ranges(&group, &[1], &[n_at_least(50)], 2, None), [Vec::<Range<u64>>::new()]);
    }
}
