//! The operations the commands share, below `commands/` and above the mechanisms (`sqlite`,
//! `archive`, `docker`, `safedir`, `crypto`): find a container and its data, stage files
//! privately, make a verified archive, swap a data directory safely, drill a backup on a
//! throwaway copy of the server. They take plain values and a [`crate::progress::Notice`], and
//! never print.

pub mod container;
pub mod drill;
pub mod fetch;
pub mod guardian;
pub mod import;
pub mod make;
pub mod names;
pub mod offsite;
pub mod replicate;
pub mod restore;
pub mod schedule;
pub mod staging;
pub mod swap;
pub mod watch;
