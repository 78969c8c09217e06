//! Scanning a group: the DataFusion table provider and its execution plan,
//! the translation of filters into predicates, how statistics prune row
//! ranges and how ranges are shared between partitions, and the batch reader.

pub mod chunk_cache;
mod filters;
pub mod plan;
pub mod predicate;
mod provider;
mod reader;

pub use plan::{partition_ranges, row_ranges};
pub use predicate::{row_mask, Bound, Predicate, Test};
pub use provider::{ScanParts, TableCall, ZarrMetaExec, ZarrMetaTable};
pub use reader::{BatchReader, ScanMetrics};
