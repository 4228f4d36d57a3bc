//! The v1 archive: a manifest, then `data/…`, gzip-compressed, with a `.sha256` sidecar.

pub mod catalog;
pub mod entry;
pub mod manifest;
mod member;
pub mod pargz;
pub mod pool;
pub mod reader;
pub mod tarball;
pub mod writer;

pub use manifest::{FileEntry, Manifest, Mode, Source};
