//! `keyfount-sim check`: read-only verification of a database's integrity and of the writer's
//! invariants, all inside one read transaction (one snapshot, WAL included).

use crate::db::{require_existing, sidecar};
use crate::init::SCHEMA_VERSION;
use crate::Fail;
use clap::Args;
use rusqlite::{Connection, OpenFlags, OptionalExtension};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Args)]
pub struct CheckArgs {
    /// Database to check; opened read-only, never created (exit 2 if missing).
    #[arg(long, value_name = "PATH")]
    pub db: PathBuf,
    /// Fail unless meta.last_seq is at least N (e.g. the last_seq from a run's status file).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub min_seq: i64,
}

pub fn check(a: &CheckArgs) -> Result<ExitCode, Fail> {
    require_existing(&a.db)?;
    // A read-only connection on a WAL database creates `-wal` and `-shm` when they are missing
    // and cannot delete them at close, so a plain check would leave files behind that a clean
    // shutdown had removed. When neither exists, no connection has the database open in WAL
    // mode and every committed page is in the main file: read it as immutable (nothing
    // created). If a writer turns up during that check, do it again the ordinary way.
    if !sidecars_exist(&a.db) {
        let (ok, out) = check_once(a, true)?;
        if !sidecars_exist(&a.db) {
            return finish(ok, out);
        }
    }
    let (ok, out) = check_once(a, false)?;
    finish(ok, out)
}

fn sidecars_exist(db: &Path) -> bool {
    ["-wal", "-shm"].iter().any(|s| std::fs::symlink_metadata(sidecar(db, s)).is_ok())
}

fn finish(ok: bool, out: serde_json::Value) -> Result<ExitCode, Fail> {
    println!("{out}");
    Ok(if ok { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// `file:` URI for `path` (percent-encoding the characters a URI gives meaning to).
fn file_uri(path: &Path, query: &str) -> String {
    let mut uri = String::from("file:");
    for ch in path.to_string_lossy().chars() {
        match ch {
            '%' | '?' | '#' => uri.push_str(&format!("%{:02X}", ch as u32)),
            c => uri.push(c),
        }
    }
    uri.push('?');
    uri.push_str(query);
    uri
}

fn check_once(a: &CheckArgs, immutable: bool) -> Result<(bool, serde_json::Value), Fail> {
    let flags =
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_URI;
    let uri = file_uri(&a.db, if immutable { "mode=ro&immutable=1" } else { "mode=ro" });
    let conn = Connection::open_with_flags(&uri, flags)
        .map_err(|e| Fail::op(format!("cannot open {} read-only: {e}", a.db.display())))?;
    conn.busy_timeout(std::time::Duration::from_millis(5000))?;

    let mut problems: Vec<String> = Vec::new();
    // BEGIN is deferred; the first SELECT pins the snapshot for everything below.
    conn.execute_batch("BEGIN")?;
    let mut q = |what: &str, sql: &str| -> Option<i64> {
        match conn.query_row(sql, [], |r| r.get::<_, Option<i64>>(0)).optional() {
            Ok(Some(Some(v))) => Some(v),
            Ok(_) => {
                problems.push(format!("{what}: no value"));
                None
            }
            Err(e) => {
                problems.push(format!("{what}: {e}"));
                None
            }
        }
    };
    let users = q("users", "SELECT count(*) FROM users");
    let balance_sum = q("sum(balance)", "SELECT coalesce(sum(balance), 0) FROM users");
    let total = q("meta.total", "SELECT value FROM meta WHERE key = 'total'");
    let last_seq = q("meta.last_seq", "SELECT value FROM meta WHERE key = 'last_seq'");
    let audit_count = q("count(audit_log)", "SELECT count(*) FROM audit_log");
    let audit_max = q("max(audit_log.seq)", "SELECT coalesce(max(seq), 0) FROM audit_log");
    let audit_min = q("min(audit_log.seq)", "SELECT coalesce(min(seq), 1) FROM audit_log");
    let blobs = q("count(sync_blobs)", "SELECT count(*) FROM sync_blobs");
    let migration = q("max(schema_migrations.version)", "SELECT max(version) FROM schema_migrations");
    let user_version = q("user_version", "PRAGMA user_version");
    let keys = q("server_keys", "SELECT count(*) FROM server_keys");

    match conn
        .prepare("PRAGMA integrity_check")
        .and_then(|mut s| s.query_map([], |r| r.get::<_, String>(0))?.collect())
    {
        Ok(rows) => {
            let rows: Vec<String> = rows;
            if rows != ["ok"] {
                problems.extend(rows.into_iter().take(10).map(|r| format!("integrity: {r}")));
            }
        }
        Err(e) => problems.push(format!("integrity_check: {e}")),
    }
    match conn.prepare("PRAGMA foreign_key_check").and_then(|mut s| {
        s.query_map([], |r| {
            Ok(format!(
                "foreign key: {} rowid {:?} -> {}",
                r.get::<_, String>(0)?,
                r.get::<_, Option<i64>>(1)?,
                r.get::<_, String>(2)?
            ))
        })?
        .collect::<Result<Vec<_>, _>>()
    }) {
        Ok(rows) => problems.extend(rows.into_iter().take(10)),
        Err(e) => problems.push(format!("foreign_key_check: {e}")),
    }
    let _ = conn.execute_batch("COMMIT");

    if let (Some(s), Some(t)) = (balance_sum, total) {
        if s != t {
            problems.push(format!("sum(balance) {s} != meta.total {t}"));
        }
    }
    if let (Some(c), Some(m), Some(l)) = (audit_count, audit_max, last_seq) {
        if !(c == m && m == l) {
            problems.push(format!("audit sequence broken: count {c}, max(seq) {m}, meta.last_seq {l}"));
        }
    }
    if let Some(min) = audit_min {
        if min < 1 {
            problems.push(format!("audit_log has seq {min} < 1"));
        }
    }
    if let Some(l) = last_seq {
        if l < a.min_seq {
            problems.push(format!("meta.last_seq {l} < --min-seq {}", a.min_seq));
        }
    }
    if migration.is_some_and(|m| m != SCHEMA_VERSION) {
        problems.push(format!(
            "max schema_migrations version {} != {SCHEMA_VERSION}",
            migration.unwrap_or_default()
        ));
    }
    if user_version.is_some_and(|v| v != SCHEMA_VERSION) {
        problems.push(format!("user_version {} != {SCHEMA_VERSION}", user_version.unwrap_or_default()));
    }
    if keys.is_some_and(|k| k != 3) {
        problems.push(format!("{} server_keys rows, expected 3", keys.unwrap_or_default()));
    }

    let ok = problems.is_empty();
    let out = serde_json::json!({
        "ok": ok,
        "last_seq": last_seq,
        "users": users,
        "total": balance_sum,
        "blobs": blobs,
        "problems": problems,
    });
    drop(conn);
    Ok((ok, out))
}
