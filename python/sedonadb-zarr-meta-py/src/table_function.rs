//! `ZarrMetaTableFunction`: `sd_read_zarr_meta` for datafusion-python via a
//! datafusion-ffi `FFI_TableFunction` capsule.

use std::ffi::CString;
use std::sync::Arc;

use datafusion_catalog::{TableFunctionArgs, TableFunctionImpl, TableProvider};
use datafusion_common::Result as DFResult;
use datafusion_ffi::proto::logical_extension_codec::FFI_LogicalExtensionCodec;
use datafusion_ffi::table_provider::{FFI_TableProvider, ForeignTableProvider};
use datafusion_ffi::udtf::FFI_TableFunction;
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::PyCapsule;
use sedonadb_zarr_meta_core::ZarrMetaTableFunction as CoreFunction;

use crate::{host, runtime};

/// The table function as handed to the host: the core function plus the
/// host's codec, needed to export the providers it returns.
#[derive(Debug)]
struct ExportedFunction {
    codec: FFI_LogicalExtensionCodec,
}

impl TableFunctionImpl for ExportedFunction {
    fn call_with_args(&self, args: TableFunctionArgs) -> DFResult<Arc<dyn TableProvider>> {
        let provider: Arc<dyn TableProvider> = CoreFunction.open(args.exprs())?;
        // datafusion-ffi exports a plain provider with filter pushdown off;
        // handing it one already exported (pushdown on) keeps filters flowing.
        let ffi = FFI_TableProvider::new_with_ffi_codec(
            provider,
            true,
            Some(runtime::handle()),
            self.codec.clone(),
        );
        Ok(Arc::new(ForeignTableProvider(ffi)))
    }
}

/// The host's logical extension codec, from its `SessionContext`.
fn codec_from_session(session: &Bound<'_, PyAny>) -> PyResult<FFI_LogicalExtensionCodec> {
    let name = "__datafusion_logical_extension_codec__";
    let obj = if session.hasattr(name)? { session.getattr(name)?.call0()? } else { session.clone() };
    let capsule = obj.cast::<PyCapsule>().map_err(|_| {
        PyTypeError::new_err(
            "expected a datafusion SessionContext (with __datafusion_logical_extension_codec__)",
        )
    })?;
    let ptr = capsule.pointer_checked(Some(c"datafusion_logical_extension_codec"))?;
    // SAFETY: the capsule name guarantees it holds an FFI_LogicalExtensionCodec
    // of the same datafusion-ffi major (checked by `host::check_datafusion`).
    let codec = unsafe { ptr.cast::<FFI_LogicalExtensionCodec>().as_ref() };
    Ok(codec.clone())
}

/// `sd_read_zarr_meta(uri [, options_json])` for datafusion-python.
///
/// Register with `datafusion.user_defined.TableFunction(name, obj, ctx)` so
/// arguments and filters decode against the user's context.
#[pyclass(module = "sedonadb_zarr_meta._lib", frozen)]
pub struct ZarrMetaTableFunction;

#[pymethods]
impl ZarrMetaTableFunction {
    #[new]
    fn new() -> Self {
        Self
    }

    fn __datafusion_table_function__<'py>(
        &self,
        py: Python<'py>,
        session: Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyCapsule>> {
        host::check_datafusion(py)?;
        let codec = codec_from_session(&session)?;
        let function = Arc::new(ExportedFunction { codec: codec.clone() });
        let ffi = FFI_TableFunction::new_with_ffi_codec(function, Some(runtime::handle()), codec);
        PyCapsule::new(py, ffi, Some(CString::new("datafusion_table_function").expect("static name")))
    }
}
