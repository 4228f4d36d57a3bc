//! Opening the database the way Keyfount does, and small file helpers.

use crate::Fail;
use rusqlite::Connection;
use std::path::{Path, PathBuf};

/// `PATH-wal` / `PATH-shm` beside the database.
pub fn sidecar(db: &Path, suffix: &str) -> PathBuf {
    let mut s = db.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// Applies Keyfount's connection pragmas, in Keyfount's order:
/// `journal_mode=WAL; synchronous=NORMAL; foreign_keys=ON; busy_timeout=5000`.
///
/// The busy timeout is also set first through the C API (better-sqlite3, which Keyfount uses,
/// opens every connection with a 5000 ms timeout), so that switching the journal mode waits
/// instead of failing at once when another process holds a lock.
pub fn apply_keyfount_pragmas(conn: &Connection) -> Result<(), Fail> {
    conn.busy_timeout(std::time::Duration::from_millis(5000))?;
    let mode: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(Fail::op(format!("PRAGMA journal_mode=WAL left the database in journal mode {mode:?}")));
    }
    conn.execute_batch("PRAGMA synchronous=NORMAL")?;
    conn.execute_batch("PRAGMA foreign_keys=ON")?;
    let timeout: i64 = conn.query_row("PRAGMA busy_timeout=5000", [], |r| r.get(0))?;
    if timeout != 5000 {
        return Err(Fail::op(format!("busy_timeout is {timeout}, wanted 5000")));
    }
    Ok(())
}

/// Fails with exit code 2 when `db` does not exist (the writer and the checker never create one).
pub fn require_existing(db: &Path) -> Result<(), Fail> {
    match std::fs::metadata(db) {
        Ok(m) if m.is_file() => Ok(()),
        Ok(_) => Err(Fail::usage(format!("{} is not a regular file", db.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(Fail::usage(format!(
            "database {} does not exist (create it with `keyfount-sim init`)",
            db.display()
        ))),
        Err(e) => Err(Fail::op(format!("cannot stat {}: {e}", db.display()))),
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
