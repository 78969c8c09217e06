//! The plugin's one tokio runtime: object-store requests, the batches a scan
//! produces off the host's threads, and (through the binding) the FFI
//! bridges of both hosts all run on it.
//!
//! A host links its own copy of tokio, so its runtime is invisible here
//! (`Handle::current()` would panic in plugin code); this one lives for the
//! whole process. The binding crate owns it — SedonaDB's extension ABI wants
//! it in a handle that shuts it down off the interpreter's threads — and
//! hands it over with [`install`] when the extension module loads; plain
//! Rust users get one built on first use.
//!
//! Waiting for a request uses plain channels, never a tokio or futures
//! executor, so it works on any thread. A wait on one of this runtime's own
//! worker threads first moves that worker's other tasks elsewhere
//! (`block_in_place`), so the requests it waits for keep running however
//! many workers wait.

use std::future::Future;
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::OnceLock;

use tokio::runtime::{Handle, Runtime};
use tokio::task::JoinHandle;

static HANDLE: OnceLock<Handle> = OnceLock::new();

/// A new runtime configured as the plugin's: multi-threaded (at least two
/// workers), with I/O and timers.
pub fn build() -> Runtime {
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get().max(2));
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .thread_name("sedonadb-zarr-meta")
        .build()
        .expect("creating the sedonadb-zarr-meta runtime")
}

/// Make `handle`'s runtime the plugin's, if none is in use yet; returns
/// whether it is now.
pub fn install(handle: Handle) -> bool {
    HANDLE.set(handle.clone()).is_ok() || HANDLE.get().is_some_and(|h| h.id() == handle.id())
}

/// The plugin's runtime (built here if none was installed).
pub fn handle() -> &'static Handle {
    HANDLE.get_or_init(|| {
        static OWN: OnceLock<Runtime> = OnceLock::new();
        OWN.get_or_init(build).handle().clone()
    })
}

/// Start `future` on the runtime; the receiver yields its output.
pub fn spawn<T: Send + 'static>(
    future: impl Future<Output = T> + Send + 'static,
) -> (JoinHandle<()>, Receiver<T>) {
    let (tx, rx) = sync_channel(1);
    let task = handle().spawn(async move {
        let _ = tx.send(future.await);
    });
    (task, rx)
}

/// Run `future` on the runtime and wait for it from any thread.
pub fn run<T: Send + 'static>(future: impl Future<Output = T> + Send + 'static) -> Result<T, String> {
    let (_task, rx) = spawn(future);
    let wait = || rx.recv().map_err(|_| "the request was cancelled".to_string());
    match Handle::try_current() {
        Ok(current) if current.id() == handle().id() => tokio::task::block_in_place(wait),
        _ => wait(),
    }
}

/// Run blocking work (decoding a scan) on the runtime's blocking threads.
pub fn spawn_blocking(work: impl FnOnce() + Send + 'static) {
    handle().spawn_blocking(work);
}
