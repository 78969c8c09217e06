//! Zarr metadata: the group, its arrays as columns, their data types mapped
//! to column kinds, and the chunk statistics the group carries.

pub mod cache;
mod column;
pub mod dtype;
mod group;
mod kind;
mod nodes;
mod stats;
pub mod temporal;

pub use column::{widest_chunk, MetaColumn, VALIDITY_ATTRIBUTE, VALIDITY_GROUP};
pub use group::MetaGroup;
pub use kind::{ColumnKind, Storage};
pub use stats::{stats_report, unit_nanos, BlockStat, ChunkStats, Lit, STATS_ATTRIBUTE};
