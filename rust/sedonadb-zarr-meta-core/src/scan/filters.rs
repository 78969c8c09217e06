//! DataFusion filter expressions to pruning [`Predicate`]s.
//!
//! Understood: comparisons (`=`, `<`, `<=`, `>`, `>=`, `BETWEEN`, `IN`) of a
//! numeric, timestamp or text column with literals, `AND`, and the spatial
//! predicates `ST_Intersects`, `ST_Within`, `ST_Contains`, `ST_Covers`,
//! `ST_CoveredBy` (a geometry column and a WKB literal: all imply that the
//! bounding boxes intersect) and `ST_DWithin` (boxes within the distance).

use arrow_schema::TimeUnit;
use datafusion_common::{Column, ScalarValue};
use datafusion_expr::{Between, BinaryExpr, Expr, Operator};

use crate::geometry::{wkb_extent, Extent};
use crate::metadata::ColumnKind;
use crate::metadata::MetaGroup;
use crate::metadata::{unit_nanos, Lit};
use crate::scan::predicate::{Bound, Predicate, Test};

/// Spatial predicates whose truth implies intersecting bounding boxes.
const SPATIAL: [&str; 5] = ["st_intersects", "st_within", "st_contains", "st_covers", "st_coveredby"];

/// All predicates usable for pruning in `expr` (an implicit conjunction).
pub fn predicates_of(group: &MetaGroup, expr: &Expr) -> Vec<Predicate> {
    let mut out = Vec::new();
    collect(group, expr, &mut out);
    out
}

/// Whether `expr` yields at least one pruning predicate.
pub fn is_prunable(group: &MetaGroup, expr: &Expr) -> bool {
    !predicates_of(group, expr).is_empty()
}

fn collect(group: &MetaGroup, expr: &Expr, out: &mut Vec<Predicate>) {
    match expr {
        Expr::BinaryExpr(BinaryExpr { left, op: Operator::And, right }) => {
            collect(group, left, out);
            collect(group, right, out);
        }
        Expr::BinaryExpr(b) => out.extend(comparison(group, b)),
        Expr::Between(b) => out.extend(between(group, b)),
        Expr::InList(list) if !list.negated => {
            if let Some((column, kind)) = column_of(group, &list.expr) {
                let values: Option<Vec<Lit>> = list.list.iter().map(|e| literal(e, kind)).collect();
                if let Some(values) = values {
                    out.push(Predicate { column, test: Test::In(values) });
                }
            }
        }
        Expr::ScalarFunction(f) => out.extend(spatial(group, f.name(), &f.args)),
        _ => {}
    }
}

/// The comparison domain of the row-number column.
const ROW_NUMBER_KIND: ColumnKind = ColumnKind::Primitive(arrow_schema::DataType::UInt64);

fn column_of<'g>(group: &'g MetaGroup, expr: &Expr) -> Option<(usize, &'g ColumnKind)> {
    let Expr::Column(Column { name, .. }) = expr else { return None };
    if group.options.row_number.as_ref() == Some(name) {
        return Some((group.row_number_index()?, &ROW_NUMBER_KIND));
    }
    let i = group.column_index(name)?;
    Some((i, &group.columns[i].kind))
}

/// A literal in the comparison domain of a column of `kind`.
fn literal(expr: &Expr, kind: &ColumnKind) -> Option<Lit> {
    let Expr::Literal(value, _) = expr else { return None };
    if value.is_null() {
        return None;
    }
    match kind {
        ColumnKind::Timestamp(_) | ColumnKind::Duration(_) => {
            let (v, unit) =
                match value {
                    ScalarValue::TimestampSecond(Some(v), _) | ScalarValue::DurationSecond(Some(v)) => {
                        (*v, TimeUnit::Second)
                    }
                    ScalarValue::TimestampMillisecond(Some(v), _)
                    | ScalarValue::DurationMillisecond(Some(v)) => (*v, TimeUnit::Millisecond),
                    ScalarValue::TimestampMicrosecond(Some(v), _)
                    | ScalarValue::DurationMicrosecond(Some(v)) => (*v, TimeUnit::Microsecond),
                    ScalarValue::TimestampNanosecond(Some(v), _)
                    | ScalarValue::DurationNanosecond(Some(v)) => (*v, TimeUnit::Nanosecond),
                    _ => return None,
                };
            Some(Lit::Int(v as i128 * unit_nanos(unit)))
        }
        ColumnKind::Primitive(dt) if dt.is_numeric() => numeric(value),
        ColumnKind::Float16 => numeric(value),
        ColumnKind::Utf8(_) => match value {
            ScalarValue::Utf8(Some(s)) | ScalarValue::LargeUtf8(Some(s)) | ScalarValue::Utf8View(Some(s)) => {
                Some(Lit::Str(s.clone()))
            }
            _ => None,
        },
        _ => None,
    }
}

fn numeric(value: &ScalarValue) -> Option<Lit> {
    Some(match value {
        ScalarValue::Int8(Some(v)) => Lit::Int(*v as i128),
        ScalarValue::Int16(Some(v)) => Lit::Int(*v as i128),
        ScalarValue::Int32(Some(v)) => Lit::Int(*v as i128),
        ScalarValue::Int64(Some(v)) => Lit::Int(*v as i128),
        ScalarValue::UInt8(Some(v)) => Lit::Int(*v as i128),
        ScalarValue::UInt16(Some(v)) => Lit::Int(*v as i128),
        ScalarValue::UInt32(Some(v)) => Lit::Int(*v as i128),
        ScalarValue::UInt64(Some(v)) => Lit::Int(*v as i128),
        ScalarValue::Float32(Some(v)) => Lit::Float(*v as f64),
        ScalarValue::Float64(Some(v)) => Lit::Float(*v),
        _ => return None,
    })
}

fn comparison(group: &MetaGroup, b: &BinaryExpr) -> Option<Predicate> {
    let (column, kind, value, op) = match (column_of(group, &b.left), column_of(group, &b.right)) {
        (Some((c, k)), None) => (c, k, &*b.right, b.op),
        (None, Some((c, k))) => (c, k, &*b.left, b.op.swap()?),
        _ => return None,
    };
    let value = literal(value, kind)?;
    let bound = |inclusive| Some(Bound { value: value.clone(), inclusive });
    let test = match op {
        Operator::Eq => Test::In(vec![value.clone()]),
        Operator::Lt => Test::Range { lower: None, upper: bound(false) },
        Operator::LtEq => Test::Range { lower: None, upper: bound(true) },
        Operator::Gt => Test::Range { lower: bound(false), upper: None },
        Operator::GtEq => Test::Range { lower: bound(true), upper: None },
        _ => return None,
    };
    if matches!(value, Lit::Str(_)) && !matches!(test, Test::In(_)) {
        return None; // text: equality only
    }
    Some(Predicate { column, test })
}

fn between(group: &MetaGroup, b: &Between) -> Option<Predicate> {
    if b.negated {
        return None;
    }
    let (column, kind) = column_of(group, &b.expr)?;
    let low = literal(&b.low, kind)?;
    let high = literal(&b.high, kind)?;
    Some(Predicate {
        column,
        test: Test::Range {
            lower: Some(Bound { value: low, inclusive: true }),
            upper: Some(Bound { value: high, inclusive: true }),
        },
    })
}

fn wkb_literal(expr: &Expr) -> Option<&[u8]> {
    match expr {
        Expr::Literal(
            ScalarValue::Binary(Some(w))
            | ScalarValue::LargeBinary(Some(w))
            | ScalarValue::BinaryView(Some(w)),
            _,
        ) => Some(w),
        _ => None,
    }
}

fn spatial(group: &MetaGroup, name: &str, args: &[Expr]) -> Option<Predicate> {
    let name = name.to_ascii_lowercase();
    let dwithin = name == "st_dwithin";
    if !(dwithin || SPATIAL.contains(&name.as_str())) {
        return None;
    }
    let (geom_col, other, distance) = match (args, dwithin) {
        ([a, b], false) => (a, b, 0.0),
        ([a, b, d], true) => (a, b, numeric_value(d)?),
        _ => return None,
    };
    let ((column, kind), wkb) = match (column_of(group, geom_col), column_of(group, other)) {
        (Some(c), None) => (c, wkb_literal(other)?),
        (None, Some(c)) => (c, wkb_literal(geom_col)?),
        _ => return None,
    };
    if !matches!(kind, ColumnKind::Geometry(..)) || distance.is_nan() || distance < 0.0 {
        return None;
    }
    match wkb_extent(wkb) {
        Extent::Box([a, b, c, d]) => Some(Predicate {
            column,
            test: Test::BBox([a - distance, b - distance, c + distance, d + distance]),
        }),
        // An empty literal intersects nothing; an unknown one tells nothing.
        Extent::Empty => Some(Predicate { column, test: Test::In(vec![]) }),
        Extent::Unknown => None,
    }
}

fn numeric_value(expr: &Expr) -> Option<f64> {
    let Expr::Literal(v, _) = expr else { return None };
    match numeric(v)? {
        Lit::Int(i) => Some(i as f64),
        Lit::Float(f) => Some(f),
        Lit::Str(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_schema::DataType;
    use datafusion_expr::{col, create_udf, lit, ColumnarValue, Volatility};

    use super::*;
    use crate::testing::{open_store, wkb_box};

    fn st(name: &str, args: Vec<Expr>) -> Expr {
        let udf = create_udf(
            name,
            vec![DataType::Binary, DataType::Binary],
            DataType::Boolean,
            Volatility::Immutable,
            Arc::new(|_: &[ColumnarValue]| unreachable!("never evaluated here")),
        );
        Expr::ScalarFunction(datafusion_expr::expr::ScalarFunction::new_udf(Arc::new(udf), args))
    }

    fn int(v: i128, inclusive: bool) -> Option<Bound> {
        Some(Bound { value: Lit::Int(v), inclusive })
    }

    #[test]
    fn comparisons_ranges_and_lists() {
        let (_dir, group) = open_store(false);
        let p = predicates_of(&group, &col("n").gt(lit(3)).and(col("n").lt_eq(lit(7))));
        assert_eq!(
            p,
            [
                Predicate { column: 1, test: Test::Range { lower: int(3, false), upper: None } },
                Predicate { column: 1, test: Test::Range { lower: None, upper: int(7, true) } },
            ]
        );
        // A literal on the left is the same comparison turned around.
        assert_eq!(predicates_of(&group, &lit(3).lt(col("n"))), p[..1]);
        let p = predicates_of(&group, &col("name").in_list(vec![lit("item-1"), lit("item-2")], false));
        assert_eq!(
            p,
            [Predicate {
                column: 2,
                test: Test::In(vec![Lit::Str("item-1".into()), Lit::Str("item-2".into())])
            }]
        );
        let p = predicates_of(&group, &col("n").between(lit(2), lit(4)));
        assert_eq!(
            p,
            [Predicate { column: 1, test: Test::Range { lower: int(2, true), upper: int(4, true) } }]
        );
    }

    #[test]
    fn what_cannot_prune_gives_nothing() {
        let (_dir, group) = open_store(false);
        for expr in [
            col("n").in_list(vec![lit(1)], true),
            col("n").gt(lit(1)).or(col("n").lt(lit(0))),
            col("missing").gt(lit(1)),
            col("n").gt(col("n")),
            st("st_area", vec![col("bbox"), lit(ScalarValue::Binary(Some(wkb_box(0.0))))]),
        ] {
            assert!(predicates_of(&group, &expr).is_empty(), "{expr}");
            assert!(!is_prunable(&group, &expr));
        }
    }

    #[test]
    fn spatial_predicates_become_boxes() {
        let (_dir, group) = open_store(false);
        let area = lit(ScalarValue::Binary(Some(wkb_box(2.0))));
        let expected = [Predicate { column: 0, test: Test::BBox([2.0, 0.0, 3.0, 1.0]) }];
        assert_eq!(predicates_of(&group, &st("ST_Intersects", vec![col("bbox"), area.clone()])), expected);
        assert_eq!(predicates_of(&group, &st("st_within", vec![area.clone(), col("bbox")])), expected);
        // Within a distance: the box grows by it.
        let near = Expr::ScalarFunction(datafusion_expr::expr::ScalarFunction::new_udf(
            Arc::new(create_udf(
                "st_dwithin",
                vec![DataType::Binary, DataType::Binary, DataType::Float64],
                DataType::Boolean,
                Volatility::Immutable,
                Arc::new(|_: &[ColumnarValue]| unreachable!("never evaluated here")),
            )),
            vec![col("bbox"), area.clone(), lit(0.5)],
        ));
        assert_eq!(
            predicates_of(&group, &near),
            [Predicate { column: 0, test: Test::BBox([1.5, -0.5, 3.5, 1.5]) }]
        );
        // A text column is not geometry.
        assert!(predicates_of(&group, &st("st_intersects", vec![col("name"), area])).is_empty());
    }
}
