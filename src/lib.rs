//! kfadmin: the operator's toolkit for a self-hosted Keyfount sync server.
//!
//! The library does the work and never prints: operations report progress through
//! [`progress::Progress`] and return reports; the binary (`src/main.rs`) owns all output.

// Output goes through `commands::stderr_line` and `main`, which never panic on a closed pipe.
#![deny(clippy::print_stdout, clippy::print_stderr)]

pub mod archive;
pub mod cli;
pub mod commands;
pub mod config;
pub mod crypto;
pub mod docker;
pub mod error;
pub mod fault;
pub mod fsutil;
pub mod lock;
pub mod monitor;
pub mod ops;
pub mod progress;
pub mod replicate;
pub mod safedir;
pub mod sqlite;
pub mod store;

pub use error::{Error, Kind, Result};
