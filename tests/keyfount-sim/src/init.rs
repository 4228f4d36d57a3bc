//! `keyfount-sim init`: create a Keyfount-like database.

use crate::db::sidecar;
use crate::Fail;
use clap::Args;
use rusqlite::{params, Connection, Transaction};
use std::fs::{DirBuilder, OpenOptions};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

/// The schema version Keyfount is at: `schema_migrations` rows 1..=7 and `user_version`.
pub const SCHEMA_VERSION: i64 = 7;
/// Every user starts with this balance; `meta.total` = users × this.
pub const START_BALANCE: i64 = 1000;

#[derive(Args)]
pub struct InitArgs {
    /// Database to create; refused (exit 2) if it exists. Missing parent directories are
    /// created with mode 0700; the file gets mode 0600.
    #[arg(long, value_name = "PATH")]
    pub db: PathBuf,
    /// Approximate database size in MiB, reached with random (incompressible) vault blobs.
    #[arg(long, value_name = "N", default_value_t = 8)]
    pub size_mb: u64,
    /// Number of users (at least 2); each starts with a balance of 1000.
    #[arg(long, value_name = "N", default_value_t = 50,
          value_parser = clap::value_parser!(u32).range(2..=1_000_000))]
    pub users: u32,
    /// Size of each sync blob in KiB.
    #[arg(long, value_name = "K", default_value_t = 4,
          value_parser = clap::value_parser!(u32).range(1..=65536))]
    pub blob_kib: u32,
    /// A text-heavy database, like a server's after some history: vault items of varied sizes
    /// (random bytes, 100 B to 8 KiB) that are rewritten at other sizes over time, so B-tree
    /// page splits leave stale copies of cells in the pages, and an audit log of text rows with
    /// hex ids (devices, items, requests). `--blob-kib` does not apply.
    #[arg(long)]
    pub text_heavy: bool,
}

const SCHEMA: &str = "
CREATE TABLE schema_migrations(
    version INTEGER PRIMARY KEY,
    applied_at INTEGER NOT NULL
) STRICT;
CREATE TABLE server_keys(
    name TEXT PRIMARY KEY,
    key BLOB NOT NULL
) STRICT;
CREATE TABLE users(
    id INTEGER PRIMARY KEY,
    username TEXT NOT NULL UNIQUE,
    created_at INTEGER NOT NULL,
    balance INTEGER NOT NULL
) STRICT;
CREATE TABLE sync_blobs(
    user_id INTEGER NOT NULL REFERENCES users(id),
    item_id INTEGER NOT NULL,
    version INTEGER NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY(user_id, item_id)
) STRICT;
CREATE TABLE audit_log(
    seq INTEGER PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users(id),
    kind TEXT NOT NULL,
    amount INTEGER NOT NULL,
    at INTEGER NOT NULL,
    detail TEXT
) STRICT;
CREATE TABLE meta(
    key TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) STRICT;
";

pub fn init(a: &InitArgs) -> Result<ExitCode, Fail> {
    let db = &a.db;
    if std::fs::symlink_metadata(db).is_ok() {
        return Err(Fail::usage(format!("{} already exists", db.display())));
    }
    for suffix in ["-wal", "-shm", "-journal"] {
        let p = sidecar(db, suffix);
        if std::fs::symlink_metadata(&p).is_ok() {
            return Err(Fail::usage(format!("{} exists: a stale database file is in the way", p.display())));
        }
    }
    if let Some(parent) = db.parent().filter(|p| !p.as_os_str().is_empty()) {
        if !parent.exists() {
            DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(parent)
                .map_err(|e| Fail::op(format!("cannot create {}: {e}", parent.display())))?;
        }
    }
    // Create the file ourselves, 0600 from the first byte; SQLite treats an empty file as a new
    // database. create_new also closes the race with another creator.
    match OpenOptions::new().write(true).create_new(true).mode(0o600).open(db) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            return Err(Fail::usage(format!("{} already exists", db.display())))
        }
        Err(e) => return Err(Fail::op(format!("cannot create {}: {e}", db.display()))),
    }

    let started = Instant::now();
    match build(a) {
        Ok(filled) => {
            std::fs::set_permissions(db, std::fs::Permissions::from_mode(0o600))?;
            for suffix in ["-wal", "-shm"] {
                let p = sidecar(db, suffix);
                if p.exists() {
                    return Err(Fail::op(format!("{} remained after a clean close", p.display())));
                }
            }
            let size = std::fs::metadata(db)?.len();
            let blobs = if a.text_heavy {
                format!("{} blobs of 0.1 to 8 KiB, {} audit rows", filled.blobs, filled.audit_rows)
            } else {
                format!("{} blobs of {} KiB", filled.blobs, a.blob_kib)
            };
            eprintln!(
                "keyfount-sim: created {} ({} users, {blobs}, {:.1} MiB) in {:.2} s",
                db.display(),
                a.users,
                size as f64 / 1048576.0,
                started.elapsed().as_secs_f64()
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            // Leave nothing half-made behind.
            for suffix in ["", "-wal", "-shm", "-journal"] {
                let _ = std::fs::remove_file(sidecar(db, suffix));
            }
            Err(e)
        }
    }
}

/// 32 bytes from the kernel's CSPRNG (getrandom(2): no /dev needed, e.g. in a scratch image).
fn random_key() -> Result<Vec<u8>, Fail> {
    let mut key = vec![0u8; 32];
    let mut filled = 0;
    while filled < key.len() {
        // SAFETY: the pointer and length describe the unfilled tail of `key`.
        let n = unsafe {
            libc::getrandom(key[filled..].as_mut_ptr().cast::<libc::c_void>(), key.len() - filled, 0)
        };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(Fail::op(format!("getrandom: {e}")));
        }
        filled += n as usize;
    }
    Ok(key)
}

/// Creates schema and data; returns what it wrote.
fn build(a: &InitArgs) -> Result<Filled, Fail> {
    let mut conn = Connection::open(&a.db)?;
    // Bulk load without a WAL (every page would be written twice: WAL, then checkpoint) and
    // without syncs; the database is switched to WAL once it is filled.
    let mode: String = conn.query_row("PRAGMA journal_mode=MEMORY", [], |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("memory") {
        return Err(Fail::op(format!("journal_mode=MEMORY gave {mode}")));
    }
    conn.execute_batch("PRAGMA synchronous=OFF; PRAGMA foreign_keys=ON; PRAGMA cache_size=-16384;")?;
    let page_size: i64 = conn.query_row("PRAGMA page_size", [], |r| r.get(0))?;
    let target_pages = (a.size_mb * 1024 * 1024) as i64 / page_size;
    let now_s = crate::db::now_ms() / 1000;
    let users = i64::from(a.users);

    let tx = conn.transaction()?;
    tx.execute_batch(SCHEMA)?;
    for v in 1..=SCHEMA_VERSION {
        tx.execute(
            "INSERT INTO schema_migrations(version, applied_at) VALUES (?1, ?2)",
            params![v, now_s - (SCHEMA_VERSION - v) * 86_400],
        )?;
    }
    for name in ["oprf_seed", "ake_private", "ake_public"] {
        tx.execute("INSERT INTO server_keys(name, key) VALUES (?1, ?2)", params![name, random_key()?])?;
    }
    {
        let mut ins =
            tx.prepare("INSERT INTO users(id, username, created_at, balance) VALUES (?1, ?2, ?3, ?4)")?;
        for id in 1..=users {
            ins.execute(params![id, format!("user{id:06}"), now_s, START_BALANCE])?;
        }
    }
    tx.execute(
        "INSERT INTO meta(key, value) VALUES ('last_seq', 0), ('total', ?1)",
        params![START_BALANCE * users],
    )?;
    let filled = if a.text_heavy {
        fill_text_heavy(&tx, users, target_pages)?
    } else {
        fill_blobs(&tx, users, target_pages, a.blob_kib)?
    };
    tx.execute_batch(&format!("PRAGMA user_version={SCHEMA_VERSION}"))?;
    tx.commit()?;

    let mode: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(Fail::op(format!("journal_mode=WAL gave {mode}")));
    }
    conn.close().map_err(|(_, e)| Fail::op(format!("close: {e}")))?;
    // Make the content durable: init ran with synchronous=OFF.
    std::fs::File::open(&a.db)?.sync_all()?;
    if let Some(dir) = Path::new(&a.db).parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(filled)
}

/// What the fill wrote.
struct Filled {
    blobs: u64,
    audit_rows: i64,
}

/// Does the database have `target_pages` pages yet?
fn full(tx: &Transaction, target_pages: i64) -> Result<bool, Fail> {
    Ok(tx.query_row("PRAGMA page_count", [], |r| r.get::<_, i64>(0))? >= target_pages)
}

/// Random blobs of `blob_kib` KiB, round-robin over the users, until the size is reached.
fn fill_blobs(tx: &Transaction, users: i64, target_pages: i64, blob_kib: u32) -> Result<Filled, Fail> {
    let mut ins =
        tx.prepare("INSERT INTO sync_blobs(user_id, item_id, version, data) VALUES (?1, ?2, 1, ?3)")?;
    let mut rng = fastrand::Rng::new();
    let mut buf = vec![0u8; blob_kib as usize * 1024];
    let mut blobs: u64 = 0;
    while blobs % 32 != 0 || !full(tx, target_pages)? {
        rng.fill(&mut buf);
        let n = blobs as i64;
        ins.execute(params![n % users + 1, n / users, &buf[..]])?;
        blobs += 1;
    }
    Ok(Filled { blobs, audit_rows: 0 })
}

/// The size of a vault item: mostly small (logins), some notes, a few attachments.
fn item_size(rng: &mut fastrand::Rng) -> usize {
    match rng.u32(..100) {
        0..50 => rng.usize(100..600),
        50..85 => rng.usize(600..2500),
        _ => rng.usize(2500..8192),
    }
}

fn hex_id(rng: &mut fastrand::Rng, digits: usize) -> String {
    (0..digits).map(|_| char::from(b"0123456789abcdef"[rng.usize(..16)])).collect()
}

/// One audit row's text: what a sync server logs about a request.
fn audit_detail(rng: &mut fastrand::Rng, device: &str, item: i64, size: usize) -> (&'static str, String) {
    const KINDS: [&str; 5] = ["sync.push", "sync.pull", "sync.pull", "login", "device.seen"];
    const AGENTS: [&str; 4] = [
        "Keyfount/3.2.1 (iOS 17.5; iPhone15,2)",
        "Keyfount/3.2.0 (Android 14; Pixel 8)",
        "Keyfount-Desktop/1.9.4 (Windows NT 10.0; x64)",
        "Keyfount-Web/3.2.1 (Firefox 128.0)",
    ];
    let kind = KINDS[rng.usize(..KINDS.len())];
    let detail = format!(
        r#"{{"ip":"203.0.113.{}","ua":"{}","device":"{device}","item":"{item:016x}","req":"{}","bytes":{size},"ms":{}}}"#,
        rng.u8(1..255),
        AGENTS[rng.usize(..AGENTS.len())],
        hex_id(rng, 32),
        rng.u32(1..400),
    );
    (kind, detail)
}

/// A server's history: new vault items, rewrites of old ones at other sizes (B-tree page
/// splits in the middle of the table leave stale cell copies), and an audit row for each.
fn fill_text_heavy(tx: &Transaction, users: i64, target_pages: i64) -> Result<Filled, Fail> {
    let mut rng = fastrand::Rng::new();
    let devices: Vec<Vec<String>> =
        (0..users).map(|_| (0..3).map(|_| hex_id(&mut rng, 32)).collect()).collect();
    let mut next_item = vec![0i64; users as usize];
    let mut insert =
        tx.prepare("INSERT INTO sync_blobs(user_id, item_id, version, data) VALUES (?1, ?2, 1, ?3)")?;
    let mut rewrite = tx.prepare(
        "UPDATE sync_blobs SET version = version + 1, data = ?3 WHERE user_id = ?1 AND item_id = ?2",
    )?;
    let mut audit = tx.prepare(
        "INSERT INTO audit_log(seq, user_id, kind, amount, at, detail) VALUES (?1, ?2, ?3, 0, ?4, ?5)",
    )?;
    let mut buf = vec![0u8; 8192];
    let (mut blobs, mut seq) = (0u64, 0i64);
    let at0 = crate::db::now_ms() - 90 * 86_400_000;
    while seq % 64 != 0 || !full(tx, target_pages)? {
        let u = rng.usize(..users as usize);
        let size = item_size(&mut rng);
        rng.fill(&mut buf[..size]);
        let item = if next_item[u] == 0 || rng.u32(..100) < 55 {
            next_item[u] += 1;
            insert.execute(params![u as i64 + 1, next_item[u] - 1, &buf[..size]])?;
            blobs += 1;
            next_item[u] - 1
        } else {
            let item = rng.i64(0..next_item[u]);
            rewrite.execute(params![u as i64 + 1, item, &buf[..size]])?;
            item
        };
        seq += 1;
        let device = &devices[u][rng.usize(..3)];
        let (kind, detail) = audit_detail(&mut rng, device, item, size);
        audit.execute(params![seq, u as i64 + 1, kind, at0 + seq * 20, detail])?;
    }
    tx.execute("UPDATE meta SET value = ?1 WHERE key = 'last_seq'", params![seq])?;
    Ok(Filled { blobs, audit_rows: seq })
}

impl InitArgs {
    /// Defaults, as `init --db DB --size-mb SIZE_MB`.
    pub fn new(db: PathBuf, size_mb: u64) -> Self {
        InitArgs { db, size_mb, users: 50, blob_kib: 4, text_heavy: false }
    }
}
