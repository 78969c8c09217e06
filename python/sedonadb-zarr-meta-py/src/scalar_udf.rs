//! `GeometryUdf`: `sd_geomfromtext` / `sd_geomfromwkb` for datafusion-python,
//! exported as datafusion-ffi `FFI_ScalarUDF` capsules (`__datafusion_scalar_udf__`).

use std::ffi::CString;
use std::sync::Arc;

use datafusion_expr::ScalarUDF;
use datafusion_ffi::udf::FFI_ScalarUDF;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyCapsule;
use sedonadb_zarr_meta_core::geom_udf::{GeomFrom, Input};

use crate::host;

/// `sd_geomfromtext(wkt [, crs])` (`input="wkt"`) or `sd_geomfromwkb(wkb [, crs])`
/// (`input="wkb"`) as a datafusion-python scalar function.
#[pyclass(module = "sedonadb_zarr_meta._lib", frozen)]
pub struct GeometryUdf {
    input: Input,
}

#[pymethods]
impl GeometryUdf {
    #[new]
    fn new(input: &str) -> PyResult<Self> {
        let input = match input {
            "wkt" => Input::Wkt,
            "wkb" => Input::Wkb,
            other => {
                return Err(PyValueError::new_err(format!("input must be 'wkt' or 'wkb', got {other:?}")))
            }
        };
        Ok(Self { input })
    }

    fn __datafusion_scalar_udf__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyCapsule>> {
        host::check_datafusion(py)?;
        let udf = Arc::new(ScalarUDF::new_from_impl(GeomFrom::new(self.input)));
        let ffi = FFI_ScalarUDF::from(udf);
        PyCapsule::new(py, ffi, Some(CString::new("datafusion_scalar_udf").expect("static name")))
    }
}
