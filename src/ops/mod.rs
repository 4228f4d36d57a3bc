//! The operations the commands share, below `commands/` and above the mechanisms (`sqlite`,
//! `archive`, `docker`, `safedir`, `crypto`): find a container and its data, stage files
//! privately, make a verified archive, swap a data directory safely. They take plain values
//! and a [`crate::progress::Notice`], and never print.

pub mod container;
pub mod import;
pub mod make;
pub mod staging;
pub mod swap;
