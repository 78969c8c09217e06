//! The core's runtime ([`sedonadb_zarr_meta_core::runtime`]), owned here in
//! the handle SedonaDB's extension ABI takes: dropping it shuts the runtime
//! down on a thread of its own, never one attached to the interpreter.

use std::sync::{Arc, OnceLock};

use sedona_extension::runtime::RuntimeHandle;
use sedonadb_zarr_meta_core::runtime as core;

/// The plugin's runtime, installed as the core's on first use (the module
/// does so when it loads, before anything else can start one).
pub fn runtime() -> Arc<RuntimeHandle> {
    static RUNTIME: OnceLock<Arc<RuntimeHandle>> = OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            let runtime = Arc::new(RuntimeHandle::new(core::build()));
            core::install(runtime.handle().clone());
            runtime
        })
        .clone()
}

/// A handle of [`runtime`] for datafusion-ffi.
pub fn handle() -> tokio::runtime::Handle {
    runtime().handle().clone()
}
