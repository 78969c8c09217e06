//! The core's one tokio runtime, for object-store requests and for producing
//! scan batches off the host's threads.
//!
//! Scans are driven by host executors (or by the binding's runtime, whose
//! workers block while they decode); a request must make progress while they
//! wait for it, and this library's tokio is invisible to a host's (each links
//! its own copy). Waiting uses plain channels, never a tokio or futures
//! executor, so it works on any thread.

use std::future::Future;
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::OnceLock;

use tokio::runtime::Runtime;
use tokio::task::JoinHandle;

fn runtime() -> &'static Runtime {
    static RUNTIME: OnceLock<Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .thread_name("sedonadb-zarr-meta-io")
            .build()
            .expect("creating the sedonadb-zarr-meta I/O runtime")
    })
}

/// Start `future` on the runtime; the receiver yields its output.
pub fn spawn<T: Send + 'static>(
    future: impl Future<Output = T> + Send + 'static,
) -> (JoinHandle<()>, Receiver<T>) {
    let (tx, rx) = sync_channel(1);
    let task = runtime().spawn(async move {
        let _ = tx.send(future.await);
    });
    (task, rx)
}

/// Run `future` on the runtime and wait for it from any thread.
pub fn run<T: Send + 'static>(future: impl Future<Output = T> + Send + 'static) -> Result<T, String> {
    let (_task, rx) = spawn(future);
    rx.recv().map_err(|_| "the request was cancelled".to_string())
}

/// Run blocking work (decoding a scan) on the runtime's blocking threads.
pub fn spawn_blocking(work: impl FnOnce() + Send + 'static) {
    runtime().spawn_blocking(work);
}
