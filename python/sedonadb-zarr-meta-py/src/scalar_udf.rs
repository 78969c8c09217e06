//! `GeometryUdf`: `sd_geomfromtext` / `sd_geomfromwkb` for datafusion-python,
//! exported as datafusion-ffi `FFI_ScalarUDF` capsules (`__datafusion_scalar_udf__`).

use std::ffi::CString;
use std::sync::Arc;

use datafusion_expr::ScalarUDF;
use datafusion_ffi::udf::FFI_ScalarUDF;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyCapsule;
use sedonadb_zarr_meta_core::sql::crs_udf::{CrsIdiom, Idiom, Unavailable};
use sedonadb_zarr_meta_core::sql::geom_udf::{GeomFrom, Input};

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

/// One of SedonaDB's CRS idioms (`st_setsrid`, `st_setcrs`, `st_geomfromtext`,
/// `st_geomfromwkt`, `st_geomfromwkb`, `st_geomfromewkt`, `st_makeenvelope`)
/// reading its constant SRID/CRS, as a datafusion-python scalar function.
#[pyclass(module = "sedonadb_zarr_meta._lib", frozen)]
pub struct CrsIdiomUdf {
    /// `None`: a function this host cannot offer (see `Unavailable`).
    idiom: Option<Idiom>,
    name: String,
}

#[pymethods]
impl CrsIdiomUdf {
    #[new]
    fn new(name: &str) -> PyResult<Self> {
        let name = name.to_ascii_lowercase();
        let idiom = Idiom::ALL.into_iter().find(|i| i.name() == name);
        if idiom.is_none() && Unavailable::new(&name).is_none() {
            return Err(PyValueError::new_err(format!(
                "unknown function {name:?}; expected one of {}",
                Self::names().join(", ")
            )));
        }
        Ok(Self { idiom, name })
    }

    /// The SQL names of every idiom, and of the functions this host cannot offer.
    #[staticmethod]
    fn names() -> Vec<&'static str> {
        Idiom::ALL.iter().map(|i| i.name()).chain(Unavailable::FUNCTIONS.iter().map(|(n, _)| *n)).collect()
    }

    fn __datafusion_scalar_udf__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyCapsule>> {
        host::check_datafusion(py)?;
        let udf = Arc::new(match (self.idiom, Unavailable::new(&self.name)) {
            (Some(idiom), _) => ScalarUDF::new_from_impl(CrsIdiom::new(idiom)),
            (None, Some(unavailable)) => ScalarUDF::new_from_impl(unavailable),
            (None, None) => return Err(PyValueError::new_err(format!("unknown function {:?}", self.name))),
        });
        let ffi = FFI_ScalarUDF::from(udf);
        PyCapsule::new(py, ffi, Some(CString::new("datafusion_scalar_udf").expect("static name")))
    }
}
