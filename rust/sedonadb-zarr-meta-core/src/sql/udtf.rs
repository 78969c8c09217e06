//! The SQL table function `sd_read_zarr_meta(uri [, options_json])`.

use std::hash::{Hash, Hasher};
use std::sync::Arc;

use datafusion_catalog::{TableFunctionArgs, TableFunctionImpl, TableProvider};
use datafusion_common::{plan_err, Result as DFResult, ScalarValue};
use datafusion_expr::Expr;

use crate::options::ReadOptions;
use crate::scan::ZarrMetaTable;

/// Name under which the table function is registered.
pub const FUNCTION_NAME: &str = "sd_read_zarr_meta";
/// The call signature shown in planning errors.
pub const SIGNATURE: &str = "sd_read_zarr_meta(uri VARCHAR [, options_json VARCHAR])";

/// Opens a `meta` group as a table when called from SQL.
#[derive(Debug, Default)]
pub struct ZarrMetaTableFunction;

/// The (uri, options) of one call, checked.
pub fn parse_call_args(exprs: &[Expr]) -> DFResult<(String, Option<String>)> {
    if exprs.is_empty() || exprs.len() > 2 {
        return plan_err!("{FUNCTION_NAME} takes 1 or 2 arguments, got {}; usage: {SIGNATURE}", exprs.len());
    }
    let text = |i: usize, what: &str| -> DFResult<String> {
        match &exprs[i] {
            Expr::Literal(ScalarValue::Utf8(Some(s)) | ScalarValue::LargeUtf8(Some(s)) | ScalarValue::Utf8View(Some(s)), _) => {
                Ok(s.clone())
            }
            Expr::Literal(v, _) if v.is_null() => {
                plan_err!("{FUNCTION_NAME}: {what} must not be NULL; usage: {SIGNATURE}")
            }
            Expr::Literal(v, _) => {
                plan_err!("{FUNCTION_NAME}: {what} must be a string literal, got {} {v}; usage: {SIGNATURE}", v.data_type())
            }
            other => plan_err!(
                "{FUNCTION_NAME}: {what} must be a constant string, got the expression `{other}`; usage: {SIGNATURE}"
            ),
        }
    };
    let uri = text(0, "the store URI (argument 1)")?;
    let options = match exprs.len() {
        2 => {
            let json = text(1, "options_json (argument 2)")?;
            ReadOptions::from_json(&json)
                .or_else(|e| plan_err!("{FUNCTION_NAME}: {e}; usage: {SIGNATURE}"))?;
            Some(json)
        }
        _ => None,
    };
    Ok((uri, options))
}

impl ZarrMetaTableFunction {
    /// Open the table a call names.
    pub fn open(&self, exprs: &[Expr]) -> DFResult<Arc<ZarrMetaTable>> {
        let (uri, options) = parse_call_args(exprs)?;
        // A digest of the arguments (never the arguments: they may hold secrets).
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        for e in exprs {
            e.to_string().hash(&mut hasher);
        }
        let group = crate::metadata::cache::open(&uri, options.as_deref())?;
        Ok(Arc::new(
            ZarrMetaTable::new(group)
                .with_source(format!("{FUNCTION_NAME} call {:016x}", hasher.finish()))
                .with_call(uri, options),
        ))
    }
}

impl TableFunctionImpl for ZarrMetaTableFunction {
    fn call_with_args(&self, args: TableFunctionArgs) -> DFResult<Arc<dyn TableProvider>> {
        Ok(self.open(args.exprs())?)
    }
}
