//! Chunk bytes to Arrow: whole chunks decoded (by zarrs, or directly for the
//! common text layout), converted to Arrow arrays of the column's kind.

pub mod arrow;
mod column;
pub mod pages;
pub mod vlen;
