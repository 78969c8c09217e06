//! Locating calls of a table function in SQL text, for hosts without a
//! table-function hook (SedonaDB 0.5): the query is parsed with sqlparser
//! (DataFusion's parser) and only the text of each call is reported, so the
//! caller can substitute it and leave everything else byte-for-byte.
//! Text in string literals or comments is never a call.

use std::ops::ControlFlow;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use sqlparser::ast::{
    Expr, FunctionArg, FunctionArgExpr, ObjectNamePart, TableFactor, Value, Visit, Visitor,
};
use sqlparser::dialect::GenericDialect;
use sqlparser::parser::Parser;
use sqlparser::tokenizer::{Location, Token, Tokenizer};

/// One call: its character range in the SQL and its string arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    pub start: usize,
    pub end: usize,
    pub args: Vec<String>,
}

struct CallFinder<'a> {
    function: &'a str,
    signature: &'a str,
    found: Vec<(Location, Vec<String>)>,
}

fn literal_text(
    arg: &FunctionArg,
    function: &str,
    signature: &str,
    position: usize,
) -> Result<String, String> {
    let expr = match arg {
        FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => e,
        _ => {
            return Err(format!(
                "{function}: argument {position} must be a string literal, not `{arg}`; usage: {signature}"
            ))
        }
    };
    match expr {
        Expr::Value(v) => match &v.value {
            Value::SingleQuotedString(s)
            | Value::DoubleQuotedString(s)
            | Value::TripleSingleQuotedString(s)
            | Value::TripleDoubleQuotedString(s)
            | Value::EscapedStringLiteral(s)
            | Value::UnicodeStringLiteral(s) => Ok(s.clone()),
            Value::DollarQuotedString(s) => Ok(s.value.clone()),
            Value::Null => Err(format!("{function}: argument {position} must not be NULL; usage: {signature}")),
            other => Err(format!(
                "{function}: argument {position} must be a string literal, got {other}; usage: {signature}"
            )),
        },
        other => Err(format!(
            "{function}: argument {position} must be a constant string, got the expression `{other}`; usage: {signature}"
        )),
    }
}

impl Visitor for CallFinder<'_> {
    type Break = String;

    fn pre_visit_table_factor(&mut self, factor: &TableFactor) -> ControlFlow<String> {
        let TableFactor::Table { name, args: Some(args), .. } = factor else {
            return ControlFlow::Continue(());
        };
        let [ObjectNamePart::Identifier(ident)] = name.0.as_slice() else {
            return ControlFlow::Continue(());
        };
        let matches = match ident.quote_style {
            None => ident.value.eq_ignore_ascii_case(self.function),
            Some(_) => ident.value == self.function,
        };
        if !matches {
            return ControlFlow::Continue(());
        }
        if args.args.is_empty() || args.args.len() > 2 {
            return ControlFlow::Break(format!(
                "{} takes 1 or 2 arguments, got {}; usage: {}",
                self.function,
                args.args.len(),
                self.signature
            ));
        }
        let mut values = Vec::with_capacity(args.args.len());
        for (i, arg) in args.args.iter().enumerate() {
            match literal_text(arg, self.function, self.signature, i + 1) {
                Ok(v) => values.push(v),
                Err(e) => return ControlFlow::Break(e),
            }
        }
        self.found.push((ident.span.start, values));
        ControlFlow::Continue(())
    }
}

/// Character index of each line start (1-based lines as sqlparser counts them).
fn line_starts(sql: &str) -> Vec<usize> {
    let mut starts = vec![0];
    for (i, c) in sql.chars().enumerate() {
        if c == '\n' {
            starts.push(i + 1);
        }
    }
    starts
}

fn char_index(starts: &[usize], loc: Location) -> Option<usize> {
    let line = usize::try_from(loc.line).ok()?.checked_sub(1)?;
    let col = usize::try_from(loc.column).ok()?.checked_sub(1)?;
    Some(starts.get(line)? + col)
}

/// Find every call of `function` used as a table in `sql`.
///
/// Returns an empty list when the SQL does not parse (the host then reports
/// its own error on the unchanged text), and `Err` for a call whose
/// arguments are not what the function accepts.
pub fn find_calls(sql: &str, function: &str, signature: &str) -> Result<Vec<Call>, String> {
    let dialect = GenericDialect {};
    let Ok(statements) = Parser::parse_sql(&dialect, sql) else {
        return Ok(vec![]);
    };
    let mut finder = CallFinder { function, signature, found: vec![] };
    if let ControlFlow::Break(e) = statements.visit(&mut finder) {
        return Err(e);
    }
    if finder.found.is_empty() {
        return Ok(vec![]);
    }
    let tokens = Tokenizer::new(&dialect, sql)
        .tokenize_with_location()
        .map_err(|e| format!("cannot tokenize query: {e}"))?;
    let starts = line_starts(sql);
    let mut calls = Vec::with_capacity(finder.found.len());
    for (name_start, args) in finder.found {
        let first = tokens
            .iter()
            .position(|t| t.span.start == name_start)
            .ok_or_else(|| format!("internal: cannot locate the call of {function}"))?;
        let mut depth = 0usize;
        let mut close = None;
        for t in &tokens[first + 1..] {
            match t.token {
                Token::LParen => depth += 1,
                Token::RParen => {
                    depth = depth.saturating_sub(1);
                    if depth == 0 {
                        close = Some(t.span.start);
                        break;
                    }
                }
                _ => {}
            }
        }
        let close = close.ok_or_else(|| format!("internal: unbalanced call of {function}"))?;
        let start = char_index(&starts, name_start).ok_or("internal: bad location")?;
        let end = char_index(&starts, close).ok_or("internal: bad location")? + 1;
        calls.push(Call { start, end, args });
    }
    calls.sort_by_key(|c| c.start);
    Ok(calls)
}

/// Python: `find_table_function_calls(sql, function, signature)` →
/// `[(start, end, [args...]), ...]` with character offsets into `sql`.
#[pyfunction]
pub fn find_table_function_calls(
    sql: &str,
    function: &str,
    signature: &str,
) -> PyResult<Vec<(usize, usize, Vec<String>)>> {
    find_calls(sql, function, signature)
        .map(|calls| calls.into_iter().map(|c| (c.start, c.end, c.args)).collect())
        .map_err(PyValueError::new_err)
}

#[cfg(test)]
mod tests {
    use super::*;

    const F: &str = "sd_read_zarr_meta";

    fn texts(sql: &str) -> Vec<(String, Vec<String>)> {
        let chars: Vec<char> = sql.chars().collect();
        find_calls(sql, F, "sig")
            .unwrap()
            .into_iter()
            .map(|c| (chars[c.start..c.end].iter().collect(), c.args))
            .collect()
    }

    #[test]
    fn finds_calls_in_joins_ctes_and_subqueries() {
        let sql = "WITH a AS (SELECT * FROM sd_read_zarr_meta('x'))\n SELECT * FROM a JOIN \
                   SD_READ_ZARR_META('y', '{\"group\": \"m\"}') AS b ON true \
                   WHERE b.id IN (SELECT id FROM sd_read_zarr_meta('ü'))";
        let got = texts(sql);
        assert_eq!(got.len(), 3);
        assert_eq!(got[0], ("sd_read_zarr_meta('x')".into(), vec!["x".to_string()]));
        assert_eq!(got[1].1, vec!["y".to_string(), "{\"group\": \"m\"}".to_string()]);
        assert_eq!(got[2].0, "sd_read_zarr_meta('ü')");
    }

    #[test]
    fn ignores_strings_comments_and_other_functions() {
        assert!(texts("SELECT 'sd_read_zarr_meta(''x'')' AS s -- sd_read_zarr_meta('y')").is_empty());
        assert!(texts("SELECT * FROM other('x')").is_empty());
        assert!(texts("SELECT * FROM \"SD_READ_ZARR_META\"('x')").is_empty());
        assert!(texts("not sql at all (").is_empty());
    }

    #[test]
    fn rejects_bad_arguments() {
        for (sql, msg) in [
            ("SELECT * FROM sd_read_zarr_meta()", "takes 1 or 2 arguments, got 0"),
            ("SELECT * FROM sd_read_zarr_meta('a', 'b', 'c')", "got 3"),
            ("SELECT * FROM sd_read_zarr_meta(NULL)", "must not be NULL"),
            ("SELECT * FROM sd_read_zarr_meta(42)", "must be a string literal"),
            ("SELECT * FROM sd_read_zarr_meta(x)", "must be a constant string"),
        ] {
            let e = find_calls(sql, F, "sig").unwrap_err();
            assert!(e.contains(msg) && e.contains("usage: sig"), "{sql}: {e}");
        }
    }
}
