//! What the fuzz targets share: the input format ([`input`]) and the
//! domain checks that parsed events are carried on to ([`decision`]).
//!
//! Nothing here is a target; the targets are the binaries in
//! `fuzz_targets/`. This crate is not part of the main workspace and is
//! built only by cargo-fuzz.

pub mod decision;
pub mod input;

pub use input::{split, Input, MAX_HEADERS};
