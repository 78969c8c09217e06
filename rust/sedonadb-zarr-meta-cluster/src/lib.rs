//! `sd_read_zarr_meta` SQL on an Apache DataFusion Ballista cluster.
//!
//! Ballista's scheduler and executors, and a client, each with this
//! package's codecs ([`codec`]) and functions ([`functions`]). The scheduler
//! plans a store's scan once, pruning with the chunk statistics, and splits
//! the remaining row ranges into tasks; each executor reads only the ranges
//! of its tasks.
//!
//! This crate is a separate binary, not part of the Python extension: the
//! plugin's wheel does not carry Ballista, and the Python layer
//! (`sedonadb_zarr_meta.distributed`) runs the binary's roles and client.

pub mod client;
pub mod codec;
mod failed;
pub mod functions;
pub mod pinned;
pub mod roles;
mod wire;
