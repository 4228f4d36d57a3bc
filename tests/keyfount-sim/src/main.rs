//! `keyfount-sim`: a stand-in for the Keyfount sync server's database traffic, for kfadmin's
//! integration tests.
//!
//! It opens its SQLite database exactly as Keyfount does (WAL, `synchronous=NORMAL`,
//! `foreign_keys=ON`, `busy_timeout=5000`) in its own process and commits small transactions
//! whose invariants (no gaps in the audit sequence, a constant total balance) a checker can
//! verify on any consistent snapshot: the live file, a backup, or a restored copy.

mod check;
mod db;
mod hostile;
mod init;
mod run;

use clap::{Parser, Subcommand};
use std::fmt;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "keyfount-sim",
    version,
    about = "A Keyfount-like SQLite writer process (test helper for kfadmin)"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Create a new Keyfount-like database (WAL mode, schema v7, random vault blobs).
    Init(init::InitArgs),
    /// Commit Keyfount-like transactions into an existing database until told to stop.
    Run(run::RunArgs),
    /// Attack a data directory from inside a container: swap entries for links to host paths.
    Hostile(hostile::HostileArgs),
    /// Check a database read-only: integrity and the writer's invariants; prints one JSON object.
    Check(check::CheckArgs),
}

/// A failure with the exit code it maps to (2: usage or bad input, 1: anything else).
#[derive(Debug)]
pub struct Fail {
    pub code: u8,
    pub msg: String,
}

impl Fail {
    pub fn usage(msg: impl Into<String>) -> Self {
        Fail { code: 2, msg: msg.into() }
    }
    pub fn op(msg: impl Into<String>) -> Self {
        Fail { code: 1, msg: msg.into() }
    }
}

impl fmt::Display for Fail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.msg)
    }
}

impl From<rusqlite::Error> for Fail {
    fn from(e: rusqlite::Error) -> Self {
        Fail::op(format!("sqlite: {e}"))
    }
}

impl From<std::io::Error> for Fail {
    fn from(e: std::io::Error) -> Self {
        Fail::op(format!("io: {e}"))
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let res = match cli.cmd {
        Cmd::Init(a) => init::init(&a),
        Cmd::Run(a) => run::run(&a),
        Cmd::Check(a) => check::check(&a),
        Cmd::Hostile(a) => hostile::hostile(&a),
    };
    match res {
        Ok(code) => code,
        Err(e) => {
            eprintln!("keyfount-sim: {e}");
            ExitCode::from(e.code)
        }
    }
}
