//! The bounds every stage shares: what metadata may declare before it is
//! refused as corrupt, and what a chunk may decode to.

/// Arrays longer than this are refused as corrupt metadata rather than scanned.
pub const MAX_ROWS: u64 = 1 << 40;
/// Arrays with more chunks than this are refused (the chunk index is kept in memory).
pub const MAX_CHUNKS: u64 = 1 << 24;
/// A single decoded chunk may not exceed this many bytes.
pub const MAX_CHUNK_BYTES: u64 = 1 << 31;
/// The most bytes one element of a variable-length array (a text, a WKB
/// geometry) may decode to: far above any item's metadata, it keeps a
/// compressed chunk of a few elements from asking for gigabytes.
pub const VARIABLE_ELEMENT_MAX_BYTES: u64 = 16 << 20;
