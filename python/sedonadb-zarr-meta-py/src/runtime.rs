//! The plugin's one tokio runtime.
//!
//! This library links its own copy of tokio, so the host's runtime is
//! invisible here (`Handle::current()` would panic). The FFI layers enter
//! this runtime around `execute`/`poll_next`, and SedonaDB's extension ABI
//! drives scans and streams on it; it lives for the whole process.

use std::sync::{Arc, OnceLock};

use sedona_extension::runtime::RuntimeHandle;

/// The process-wide runtime (multi-threaded, with timers: the SedonaDB
/// stream bridge sleeps while it waits for batches).
pub fn runtime() -> Arc<RuntimeHandle> {
    static RUNTIME: OnceLock<Arc<RuntimeHandle>> = OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .thread_name("sedonadb-zarr-meta")
                .build()
                .expect("creating the plugin's tokio runtime");
            Arc::new(RuntimeHandle::new(rt))
        })
        .clone()
}

/// A handle of [`runtime`] for datafusion-ffi.
pub fn handle() -> tokio::runtime::Handle {
    runtime().handle().clone()
}
