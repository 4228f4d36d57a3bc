//! Every SQLite call kfadmin makes: the online snapshot with a pinned read transaction, the
//! checks, the facts recorded in a manifest, and the lock probe that tells whether a server
//! has the database open.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rusqlite::backup::{Backup, StepResult};
use rusqlite::config::DbConfig;
use rusqlite::{Connection, OpenFlags};
use serde::{Deserialize, Serialize};

use crate::error::{check_interrupt, Error, IoContext, Result};
use crate::progress::{Progress, Unit};

pub mod btree;
pub mod salvage;
pub mod wal;

/// Keyfount's database file name inside its data directory.
pub const DB_FILE: &str = "keyfount.db";
const HEADER: &[u8; 16] = b"SQLite format 3\0";

/// The files SQLite keeps beside a database: the WAL and its index (WAL mode), the rollback
/// journal (rollback mode). A stale one beside a swapped-in database gets replayed into it.
pub const SIDECAR_SUFFIXES: [&str; 3] = ["-wal", "-shm", "-journal"];

/// The sidecar files SQLite keeps beside a database in WAL mode.
pub fn sidecars(db: &Path) -> [PathBuf; 2] {
    let name = db.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    [db.with_file_name(format!("{name}-wal")), db.with_file_name(format!("{name}-shm"))]
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Journal {
    Wal,
    Rollback,
}

/// What kfadmin learns about a database file before it opens it.
#[derive(Debug, Clone)]
pub struct SourceInfo {
    pub path: PathBuf,
    pub size: u64,
    pub journal: Journal,
    pub page_size: u32,
    pub uid: u32,
    pub gid: u32,
    pub mode: u32,
}

/// Check that `path` is an existing SQLite database file, from its header alone.
pub fn inspect(path: &Path) -> Result<SourceInfo> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::usage(format!("database {} does not exist", path.display())).hint(
                "check the path given with --db (Keyfount keeps its database at /data/keyfount.db in its container)",
            ))
        }
        Err(e) => return Err(Error::io("cannot read", path, e).kind(crate::error::Kind::Usage)),
    };
    if meta.is_dir() {
        return Err(Error::usage(format!("{} is a directory, not a database file", path.display()))
            .hint(format!("pass the database file itself, e.g. --db {}", path.join(DB_FILE).display())));
    }
    if meta.file_type().is_symlink() {
        return Err(Error::usage(format!(
            "{} is a symbolic link; kfadmin does not follow links to a database it did not resolve itself",
            path.display()
        ))
        .hint(
            "pass the path of the database file itself (a link inside a container's data is never followed)",
        ));
    }
    if !meta.is_file() {
        return Err(Error::usage(format!("{} is not a regular file", path.display())));
    }
    let mut header = [0u8; 100];
    let n = open_nofollow(path)
        .and_then(|mut f| read_up_to(&mut f, &mut header))
        .map_err(|e| Error::io("cannot read", path, e).kind(crate::error::Kind::Usage))?;
    if n < 100 || &header[..16] != HEADER {
        return Err(Error::usage(format!(
            "{} is not a SQLite database (it does not start with the SQLite header)",
            path.display()
        ))
        .hint("point --db at Keyfount's keyfount.db"));
    }
    let page_size = match u16::from_be_bytes([header[16], header[17]]) {
        1 => 65536,
        n => u32::from(n),
    };
    let journal = if header[18] == 2 && header[19] == 2 { Journal::Wal } else { Journal::Rollback };
    Ok(SourceInfo {
        path: path.to_path_buf(),
        size: meta.len(),
        journal,
        page_size,
        uid: meta.uid(),
        gid: meta.gid(),
        mode: meta.mode() & 0o7777,
    })
}

/// Open a file for reading, never through a link at its last component (nor hanging on a FIFO).
fn open_nofollow(path: &Path) -> std::io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
}

fn read_up_to(f: &mut File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// How the snapshot went.
#[derive(Debug, Clone, Serialize)]
pub struct SnapshotStats {
    pub page_size: u32,
    pub page_count: u32,
    pub steps: u32,
    /// Times the copy started over because the source changed under it: 0 with a pinned
    /// read transaction, and reported so that a regression would show.
    pub restarts: u32,
    pub busy_retries: u32,
    pub duration_ms: u64,
}

/// Pages copied per backup step: 8 MiB at 4 KiB pages. Large steps are fast; the pinned
/// snapshot makes the step size irrelevant to consistency.
const PAGES_PER_STEP: i32 = 2048;

/// Copy `src` into a new file `dst` through SQLite's online backup API while other processes
/// keep writing to `src`.
///
/// The source connection is read-only, never checkpoints (not even on close), and holds ONE
/// read transaction for the whole copy, so every step reads the same snapshot and the copy
/// never restarts. In WAL mode that does not block the writers.
pub fn snapshot(src: &Path, dst: &Path, progress: &dyn Progress) -> Result<SnapshotStats> {
    let started = Instant::now();
    let guard = SidecarOwners::record(src);
    let result = snapshot_inner(src, dst, progress, started);
    guard.restore()?;
    result
}

fn snapshot_inner(
    src: &Path,
    dst: &Path,
    progress: &dyn Progress,
    started: Instant,
) -> Result<SnapshotStats> {
    // Never through a link: the data may be a container's, which can put one there.
    let src = &canonical_parent(src)?;
    let source = Connection::open_with_flags(
        src,
        OpenFlags::SQLITE_OPEN_READ_ONLY
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_URI
            | OpenFlags::SQLITE_OPEN_NOFOLLOW,
    )
    .map_err(|e| sql_err(e, "cannot open the database", src))?;
    source.set_db_config(DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, true)?;
    source.busy_timeout(Duration::from_secs(10))?;
    // BEGIN is deferred: the first read is what pins the snapshot.
    source.execute_batch("BEGIN")?;
    source
        .query_row("SELECT count(*) FROM sqlite_schema", [], |r| r.get::<_, i64>(0))
        .map_err(|e| sql_err(e, "cannot read the database", src))?;

    let page_bytes = source.query_row("PRAGMA page_size", [], |r| r.get::<_, i64>(0))? as u64;
    let mut dest = Connection::open(dst).map_err(|e| sql_err(e, "cannot create the snapshot", dst))?;
    // The staging copy is thrown away after archiving: no journal, no syncs.
    dest.execute_batch("PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF;")?;

    let mut stats =
        SnapshotStats { page_size: 0, page_count: 0, steps: 0, restarts: 0, busy_retries: 0, duration_ms: 0 };
    {
        let backup = Backup::new(&source, &mut dest)?;
        let stage = progress.stage("snapshot", 0, Unit::Bytes);
        let mut last_remaining = i32::MAX;
        loop {
            check_interrupt()?;
            let step = backup.step(PAGES_PER_STEP).map_err(|e| sql_err(e, "the snapshot failed", dst))?;
            stats.steps += 1;
            let p = backup.progress();
            if p.remaining > last_remaining {
                stats.restarts += 1;
            }
            last_remaining = p.remaining;
            stage.set_total(p.pagecount as u64 * page_bytes);
            stage.set((p.pagecount - p.remaining) as u64 * page_bytes);
            stage.message(format!("{}/{} pages", p.pagecount - p.remaining, p.pagecount));
            match step {
                StepResult::Done => {
                    stats.page_count = p.pagecount as u32;
                    break;
                }
                StepResult::More => {}
                StepResult::Busy | StepResult::Locked => {
                    stats.busy_retries += 1;
                    if stats.busy_retries > 1000 {
                        return Err(Error::failed(format!(
                            "the database {} stayed locked for more than 10 s",
                            src.display()
                        ))
                        .hint("another process holds an exclusive lock; try again when it is done"));
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
                _ => {}
            }
        }
        stage.finish();
    }
    source.execute_batch("COMMIT")?;
    source.close().map_err(|(_, e)| sql_err(e, "cannot close the database", src))?;
    stats.page_size = dest.query_row("PRAGMA page_size", [], |r| r.get::<_, u32>(0))?;
    dest.close().map_err(|(_, e)| sql_err(e, "cannot close the snapshot", dst))?;
    stats.duration_ms = started.elapsed().as_millis() as u64;
    Ok(stats)
}

/// Turn a SQLite error on `path` into an operator-facing error, keeping disk-full visible.
pub fn sql_err(e: rusqlite::Error, what: &str, path: &Path) -> Error {
    let code = e.sqlite_error_code();
    let mut err = Error::failed(format!("{what} {}", path.display())).source(e);
    match code {
        Some(rusqlite::ErrorCode::DiskFull) => {
            err = err.hint(format!("the disk that holds {} is full; free some space", path.display()))
        }
        Some(rusqlite::ErrorCode::NotADatabase) => {
            err = err
                .kind(crate::error::Kind::Usage)
                .hint("the file is not a SQLite database, or it is damaged")
        }
        Some(rusqlite::ErrorCode::CannotOpen) | Some(rusqlite::ErrorCode::PermissionDenied) => {
            err = err.hint("check that kfadmin may read the file and write beside it (run it as root)")
        }
        _ => {}
    }
    err
}

/// Remembers which of a database's `-wal`/`-shm` existed before kfadmin opened it, and hands
/// any that kfadmin's own connection created to the database file's owner, with its mode.
/// A root-owned `-shm` left beside a database locks out a server running as uid 1000.
pub struct SidecarOwners {
    db: PathBuf,
    existed: [bool; 2],
}

impl SidecarOwners {
    pub fn record(db: &Path) -> Self {
        let existed = sidecars(db).map(|p| p.symlink_metadata().is_ok());
        SidecarOwners { db: db.to_path_buf(), existed }
    }

    /// Through descriptors opened without following a link: a sidecar swapped for a link
    /// after it was looked at never passes its owner or mode to what the link points at.
    pub fn restore(&self) -> Result<()> {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        let Ok(meta) = std::fs::symlink_metadata(&self.db) else { return Ok(()) };
        if !meta.is_file() {
            return Ok(());
        }
        for (path, existed) in sidecars(&self.db).iter().zip(self.existed) {
            if existed {
                continue;
            }
            let opened = std::fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
                .open(path);
            let Ok(file) = opened else { continue };
            let side = file.metadata().ctx("cannot read", path)?;
            // Not a file kfadmin's connection made: a link to another file (a hard link, which
            // O_NOFOLLOW does not see) would pass the owner to that file.
            if !side.is_file() || side.nlink() != 1 {
                continue;
            }
            if side.uid() != meta.uid() || side.gid() != meta.gid() {
                std::os::unix::fs::fchown(&file, Some(meta.uid()), Some(meta.gid()))
                    .ctx("cannot give back the owner of", path)?;
            }
            if side.mode() & 0o777 != meta.mode() & 0o777 {
                file.set_permissions(std::fs::Permissions::from_mode(meta.mode() & 0o777))
                    .ctx("cannot set the mode of", path)?;
            }
        }
        Ok(())
    }
}

/// Open a file that no other process uses (a staged snapshot, an extracted backup) read-only
/// and immutable: no locks, no `-wal` or `-shm` created.
pub fn open_immutable(path: &Path) -> Result<Connection> {
    let uri = format!("file:{}?immutable=1", uri_escape(path));
    let conn = Connection::open_with_flags(
        uri,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_URI | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| sql_err(e, "cannot open", path))?;
    Ok(conn)
}

fn uri_escape(path: &Path) -> String {
    use std::os::unix::ffi::OsStrExt;
    let mut s = String::new();
    for &b in path.as_os_str().as_bytes() {
        if b.is_ascii_alphanumeric() || b"/-_.~".contains(&b) {
            s.push(b as char);
        } else {
            s.push_str(&format!("%{b:02X}"));
        }
    }
    s
}

/// `PRAGMA quick_check` (or `integrity_check` when `full`): the problems found, empty when ok.
pub fn check(conn: &Connection, full: bool) -> Result<Vec<String>> {
    let sql = if full { "PRAGMA integrity_check" } else { "PRAGMA quick_check" };
    let mut stmt = conn.prepare(sql)?;
    let rows: Vec<String> =
        stmt.query_map([], |r| r.get::<_, String>(0))?.collect::<rusqlite::Result<_>>()?;
    // SQLite gives a b-tree's problems as one row of several lines ("*** in database main ***",
    // then one line per page): one problem per line, so that callers can count and cut them.
    Ok(rows
        .iter()
        .flat_map(|r| r.lines())
        .map(str::trim_end)
        .filter(|l| !l.is_empty() && *l != "ok" && !l.starts_with("*** in database"))
        .map(str::to_string)
        .collect())
}

/// `PRAGMA foreign_key_check`: one line per violation.
pub fn foreign_key_check(conn: &Connection) -> Result<Vec<String>> {
    let mut stmt = conn.prepare("PRAGMA foreign_key_check")?;
    let rows = stmt
        .query_map([], |r| {
            let table: String = r.get(0)?;
            let rowid: Option<i64> = r.get(1)?;
            let parent: String = r.get(2)?;
            Ok(format!("{table} row {} references a missing row in {parent}", rowid.unwrap_or(-1)))
        })?
        .collect::<rusqlite::Result<_>>()?;
    Ok(rows)
}

/// The facts about a database that a manifest records and `verify` checks again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DbFacts {
    pub page_size: u64,
    pub page_count: u64,
    pub journal_mode: Journal,
    pub user_version: i64,
    /// Highest `schema_migrations.version`, when that table exists.
    pub schema_version: Option<i64>,
    /// Rows per table (SQLite's internal tables excepted).
    pub tables: BTreeMap<String, u64>,
}

pub fn facts(conn: &Connection, path: &Path) -> Result<DbFacts> {
    let journal_mode = inspect(path)?.journal;
    let page_size = conn.query_row("PRAGMA page_size", [], |r| r.get::<_, i64>(0))? as u64;
    let page_count = conn.query_row("PRAGMA page_count", [], |r| r.get::<_, i64>(0))? as u64;
    let user_version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    let names: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name")?
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let mut tables = BTreeMap::new();
    for name in &names {
        let quoted = name.replace('"', "\"\"");
        let n =
            conn.query_row(&format!("SELECT count(*) FROM \"{quoted}\""), [], |r| r.get::<_, i64>(0))? as u64;
        tables.insert(name.clone(), n);
    }
    let schema_version = if names.iter().any(|n| n == "schema_migrations") {
        conn.query_row("SELECT max(version) FROM schema_migrations", [], |r| r.get::<_, Option<i64>>(0))?
    } else {
        None
    };
    Ok(DbFacts { page_size, page_count, journal_mode, user_version, schema_version, tables })
}

/// A process that has the database open, found through SQLite's own file locks.
#[derive(Debug, Clone)]
pub struct Holder {
    pub pid: i32,
    pub file: PathBuf,
}

/// Whether another process has `db` open. Two ways, because either alone misses one: in WAL
/// mode every connection holds a shared lock on the `-shm` file's "dead man switch" byte for as
/// long as it is open, and in rollback mode a connection locks the database's lock bytes while
/// it reads or writes, but an idle rollback-mode connection holds no lock at all; so every
/// process's open files are looked at too (`/proc/<pid>/fd`, by device and inode, which also
/// sees a server in a container).
pub fn in_use(db: &Path) -> Result<Option<Holder>> {
    if let Some(h) = lock_holder(db)? {
        return Ok(Some(h));
    }
    let mut files = vec![db.to_path_buf()];
    files.extend(SIDECAR_SUFFIXES.iter().map(|s| with_suffix(db, s)));
    let ids: Vec<((u64, u64), PathBuf)> = files
        .into_iter()
        .filter_map(|f| {
            std::fs::symlink_metadata(&f).ok().filter(|m| m.is_file()).map(|m| ((m.dev(), m.ino()), f))
        })
        .collect();
    Ok(open_by(&ids))
}

fn with_suffix(db: &Path, suffix: &str) -> PathBuf {
    let mut s = db.as_os_str().to_os_string();
    s.push(suffix);
    PathBuf::from(s)
}

fn lock_holder(db: &Path) -> Result<Option<Holder>> {
    use rustix::process::{fcntl_getlk, Flock, FlockOffsetType, FlockType};
    use std::os::unix::fs::OpenOptionsExt;
    const PENDING_BYTE: u64 = 0x4000_0000;
    const SHM_DMS: u64 = 120 + 8;
    let [_, shm] = sidecars(db);
    for (file, start, len) in [(shm, SHM_DMS, 1), (db.to_path_buf(), PENDING_BYTE, 512)] {
        let opened = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open(&file);
        let f = match opened {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            // A link is never followed: what it points to is not this database's file.
            Err(e) if e.raw_os_error() == Some(libc::ELOOP) => continue,
            Err(e) => return Err(Error::io("cannot check the locks on", &file, e)),
        };
        let want = Flock {
            start,
            length: len,
            pid: None,
            typ: FlockType::WriteLock,
            offset_type: FlockOffsetType::Set,
        };
        match fcntl_getlk(&f, &want) {
            Err(e) => return Err(Error::io("cannot check the locks on", &file, std::io::Error::from(e))),
            Ok(None) => {}
            Ok(Some(held)) => {
                let pid = rustix::process::Pid::as_raw(held.pid);
                return Ok(Some(Holder { pid, file }));
            }
        }
    }
    Ok(None)
}

/// The first other process that has one of these files (by device and inode) open.
fn open_by(ids: &[((u64, u64), PathBuf)]) -> Option<Holder> {
    if ids.is_empty() {
        return None;
    }
    let me = std::process::id();
    let procs = std::fs::read_dir("/proc").ok()?;
    for p in procs.flatten() {
        let Some(pid) = p.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
        if pid == me {
            continue;
        }
        let Ok(fds) = std::fs::read_dir(p.path().join("fd")) else { continue };
        for fd in fds.flatten() {
            // stat follows the fd's magic link to the open file itself, whatever namespace.
            let Ok(m) = std::fs::metadata(fd.path()) else { continue };
            if let Some((_, file)) = ids.iter().find(|(id, _)| *id == (m.dev(), m.ino())) {
                return Some(Holder { pid: pid as i32, file: file.clone() });
            }
        }
    }
    None
}

/// Fold the frames that an unclean stop left in `-wal` into the database, with
/// `PRAGMA wal_checkpoint(TRUNCATE)`, on a database no process has open, in a directory only
/// kfadmin writes (a private copy: never a container's data directory, see [`make_whole`]).
/// Returns how many frames there were; the `-wal` is empty or gone afterwards.
pub fn fold_wal(db: &Path) -> Result<u64> {
    let db = &canonical_parent(db)?;
    let [wal, _] = sidecars(db);
    let size = match std::fs::symlink_metadata(&wal).ok().filter(|m| m.is_file()) {
        Some(m) => m.len(),
        None => return Ok(0),
    };
    if size == 0 {
        return Ok(0);
    }
    if let Some(h) = in_use(db)? {
        return Err(Error::failed(format!(
            "{} is still open in process {} after the container stopped",
            db.display(),
            h.pid
        ))
        .hint("another process uses the database; stop it, then run kfadmin again"));
    }
    let page_size = u64::from(inspect(db)?.page_size);
    let owners = SidecarOwners::record(db);
    let result = (|| -> Result<()> {
        let conn = open_stopped(db)?;
        let (busy, log, done): (i64, i64, i64) = conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .map_err(|e| sql_err(e, "cannot checkpoint the WAL of", db))?;
        if busy != 0 {
            return Err(Error::failed(format!(
                "the WAL of {} could not be checkpointed (busy={busy}, log={log}, checkpointed={done})",
                db.display()
            ))
            .hint("another process holds the database open; stop it and run kfadmin again"));
        }
        conn.close().map_err(|(_, e)| sql_err(e, "cannot close", db))?;
        Ok(())
    })();
    owners.restore()?;
    result?;
    let left = std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0);
    if left != 0 {
        return Err(Error::failed(format!(
            "{} still holds {left} bytes after the checkpoint",
            wal.display()
        )));
    }
    Ok(size.saturating_sub(32) / (page_size + 24))
}

/// Replay the `-wal` beside a private copy of a database (in a directory only kfadmin uses,
/// with no `-shm`) the way SQLite recovers a WAL on open: only the frames up to the last valid
/// commit frame. Then checkpoint them in and remove the `-wal`. Returns how many frames SQLite
/// replayed.
pub fn replay_wal(db: &Path) -> Result<u64> {
    let db = &canonical_parent(db)?;
    let conn = open_stopped(db)?;
    conn.query_row("SELECT count(*) FROM sqlite_schema", [], |r| r.get::<_, i64>(0))
        .map_err(|e| sql_err(e, "cannot replay the WAL of", db))?;
    let checkpoint = |how: &str| -> Result<(i64, i64, i64)> {
        conn.query_row(&format!("PRAGMA wal_checkpoint({how})"), [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .map_err(|e| sql_err(e, "cannot checkpoint the WAL of", db))
    };
    // PASSIVE first: it reports how many frames recovery found (TRUNCATE reports 0 after the reset).
    let (_, replayed, _) = checkpoint("PASSIVE")?;
    let (busy, log, done) = checkpoint("TRUNCATE")?;
    if busy != 0 || log != 0 || done != 0 {
        return Err(Error::failed(format!(
            "the WAL of {} could not be checkpointed (busy={busy}, log={log}, checkpointed={done})",
            db.display()
        )));
    }
    conn.close().map_err(|(_, e)| sql_err(e, "cannot close", db))?;
    Ok(replayed.max(0) as u64)
}

/// Make a private copy of a database whole (its `-wal` checkpointed in, or its hot journal
/// rolled back, the way SQLite recovers them on open) and check it (`PRAGMA quick_check`), in a
/// directory only kfadmin uses: `db` and its sidecars are kfadmin's own copies, and change.
/// `Ok(Ok(frames))`: whole and sound (how many WAL frames were folded in), no `-wal`, `-shm` or
/// `-journal` left beside it. `Ok(Err(why))`: SQLite cannot open it or finds it damaged (what
/// it found). An error is anything else (a full disk, an I/O error): not a verdict on the
/// database.
pub fn make_whole_copy(db: &Path) -> Result<std::result::Result<u64, String>> {
    let db = &canonical_parent(db)?;
    let damage = |e: &rusqlite::Error| -> Option<String> {
        matches!(
            e.sqlite_error_code(),
            Some(rusqlite::ErrorCode::DatabaseCorrupt | rusqlite::ErrorCode::NotADatabase)
        )
        .then(|| e.to_string())
    };
    let run = |conn: &Connection| -> std::result::Result<(u64, Vec<String>), rusqlite::Error> {
        // The first read replays the WAL (or rolls back the journal); then the WAL goes into
        // the file (PASSIVE first: it says how many frames there were), and the whole database
        // is checked.
        conn.query_row("SELECT count(*) FROM sqlite_schema", [], |r| r.get::<_, i64>(0))?;
        let checkpoint = |how: &str| {
            conn.query_row(&format!("PRAGMA wal_checkpoint({how})"), [], |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?, r.get::<_, i64>(2)?))
            })
        };
        let (_, frames, _) = checkpoint("PASSIVE")?;
        let (busy, _, _) = checkpoint("TRUNCATE")?;
        if busy != 0 {
            return Err(rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_BUSY),
                Some("the WAL could not be checkpointed".into()),
            ));
        }
        let mut stmt = conn.prepare("PRAGMA quick_check")?;
        let rows: Vec<String> =
            stmt.query_map([], |r| r.get::<_, String>(0))?.collect::<rusqlite::Result<_>>()?;
        Ok((frames.max(0) as u64, rows.into_iter().filter(|r| r != "ok").collect()))
    };
    let conn = match Connection::open_with_flags(
        db,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_NOFOLLOW,
    ) {
        Ok(c) => c,
        Err(e) => return damage(&e).map(Err).ok_or_else(|| sql_err(e, "cannot open", db)),
    };
    let (frames, problems) = match run(&conn) {
        Ok(p) => p,
        Err(e) => return damage(&e).map(Err).ok_or_else(|| sql_err(e, "cannot make whole", db)),
    };
    conn.close().map_err(|(_, e)| sql_err(e, "cannot close", db))?;
    if !problems.is_empty() {
        let lines: Vec<&str> =
            problems.iter().flat_map(|p| p.lines()).filter(|l| !l.starts_with("***")).collect();
        let mut s = lines.iter().take(3).copied().collect::<Vec<_>>().join("; ");
        if lines.len() > 3 {
            s.push_str(&format!("; and {} more", lines.len() - 3));
        }
        return Ok(Err(s));
    }
    for suffix in SIDECAR_SUFFIXES {
        let side = with_suffix(db, suffix);
        match std::fs::symlink_metadata(&side) {
            Ok(m) if m.len() > 0 && suffix != "-shm" => {
                return Err(Error::failed(format!(
                    "{} still holds {} bytes after it was made whole",
                    side.display(),
                    m.len()
                )))
            }
            Ok(_) => std::fs::remove_file(&side).ctx("cannot remove", &side)?,
            Err(_) => {}
        }
    }
    Ok(Ok(frames))
}

/// `db` with its directory resolved (`realpath`), so that SQLite, told never to follow a link
/// (`SQLITE_OPEN_NOFOLLOW`: it then refuses any link in the path), still opens a database whose
/// trusted parent path goes through one (`/var/lib/docker` moved and linked, say).
fn canonical_parent(db: &Path) -> Result<PathBuf> {
    let (Some(dir), Some(name)) = (db.parent(), db.file_name()) else {
        return Err(Error::usage(format!("{} is not a database file path", db.display())));
    };
    let dir = if dir.as_os_str().is_empty() { Path::new(".") } else { dir };
    Ok(std::fs::canonicalize(dir).ctx("cannot resolve", dir)?.join(name))
}

/// Open a database that no process uses (a stopped container's) read-write, never through a
/// link (a container could have put one there).
fn open_stopped(db: &Path) -> Result<Connection> {
    let conn = Connection::open_with_flags(
        db,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_NOFOLLOW,
    )
    .map_err(|e| sql_err(e, "cannot open", db))?;
    conn.busy_timeout(Duration::from_secs(5))?;
    Ok(conn)
}

/// `(database name, is a WAL)` when `name` in `d` is SQLite's `-wal` or `-journal` of a
/// database beside it: `<base>-wal` or `<base>-journal` where `<base>` is a regular file that
/// starts with SQLite's header. An ordinary file named like `travel-journal` or `notes-wal` is
/// none (nothing is read through a link).
pub fn sidecar_of_database(
    d: &crate::safedir::Dir,
    name: &std::ffi::OsStr,
) -> Result<Option<(PathBuf, bool)>> {
    use std::os::unix::ffi::OsStrExt;
    let bytes = name.as_bytes();
    let (base, is_wal) = match (bytes.strip_suffix(b"-wal"), bytes.strip_suffix(b"-journal")) {
        (Some(b), _) => (b, true),
        (_, Some(b)) => (b, false),
        _ => return Ok(None),
    };
    let base = std::ffi::OsStr::from_bytes(base);
    if base.is_empty() || !d.meta(base)?.is_some_and(|m| m.kind == crate::safedir::Kind::File) {
        return Ok(None);
    }
    Ok(is_database(d, base)?.then(|| (PathBuf::from(base), is_wal)))
}

/// Whether the regular file `name` in `d` starts with SQLite's header (read through the
/// directory's descriptor, never through a link).
pub fn is_database(d: &crate::safedir::Dir, name: &std::ffi::OsStr) -> Result<bool> {
    let mut head = [0u8; 16];
    let n = read_up_to(&mut d.open_file(name)?, &mut head).ctx("cannot read", &d.display(name))?;
    Ok(n == 16 && &head == HEADER)
}

/// Whether a rollback journal is hot (a crash left a transaction half-written into the
/// database; SQLite rolls it back on the next open, into whatever file has the database's
/// name): it has content and its header is not zeroed (`journal_mode=PERSIST` zeroes it).
pub fn journal_is_hot(journal: &Path) -> Result<bool> {
    use std::os::unix::fs::OpenOptionsExt;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(journal);
    let mut f = match f {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(Error::io("cannot read", journal, e)),
    };
    let mut head = [0u8; 8];
    let n = read_up_to(&mut f, &mut head).ctx("cannot read", journal)?;
    Ok(n > 0 && head[..n].iter().any(|&b| b != 0))
}

/// Roll back the hot journal of a database no process uses (a stopped container's), the way
/// SQLite does on its next open. Returns whether there was one.
pub fn roll_back_journal(db: &Path) -> Result<bool> {
    let db = &canonical_parent(db)?;
    let journal = with_suffix(db, "-journal");
    if !journal_is_hot(&journal)? {
        return Ok(false);
    }
    if let Some(h) = in_use(db)? {
        return Err(Error::failed(format!("{} is still open in process {}", db.display(), h.pid))
            .hint("another process uses the database; stop it, then run kfadmin again"));
    }
    let owners = SidecarOwners::record(db);
    let result = open_stopped(db).and_then(|conn| {
        conn.query_row("SELECT count(*) FROM sqlite_schema", [], |r| r.get::<_, i64>(0))
            .map_err(|e| sql_err(e, "cannot roll back the journal of", db))?;
        conn.close().map_err(|(_, e)| sql_err(e, "cannot close", db))
    });
    owners.restore()?;
    result?;
    if journal_is_hot(&journal)? {
        return Err(Error::failed(format!("the hot journal {} could not be rolled back", journal.display()))
            .hint("check that the filesystem is writable, then run kfadmin again"));
    }
    Ok(true)
}

/// What [`make_whole`] did to one database.
#[derive(Debug, Clone, Serialize)]
pub struct MadeWhole {
    /// Relative to the data directory.
    pub path: PathBuf,
    pub wal_frames_folded: u64,
    pub journal_rolled_back: bool,
}

/// Every SQLite database in a directory tree only kfadmin writes (an import's private copy)
/// made whole: WAL frames an unclean stop left are checkpointed in, a hot journal is rolled
/// back. Never on a container's data directory: SQLite opens files by path, and a process there
/// could swap a directory for a link between the walk and the open; copy such data as it is
/// and make the copy whole ([`crate::ops::make::make_whole_copies`]). A `-wal` or
/// hot `-journal` with no database beside it is refused (it is not kfadmin's to delete). The
/// directory is walked without following links.
pub fn make_whole(dir: &Path) -> Result<Vec<MadeWhole>> {
    let root = crate::safedir::Dir::open(&std::fs::canonicalize(dir).ctx("cannot resolve", dir)?)?;
    let mut done = Vec::new();
    make_whole_in(&root, Path::new(""), &mut done)?;
    Ok(done)
}

fn make_whole_in(d: &crate::safedir::Dir, rel: &Path, done: &mut Vec<MadeWhole>) -> Result<()> {
    use crate::safedir::Kind;
    use std::os::unix::ffi::OsStrExt;
    for name in d.entries()? {
        let Some(meta) = d.meta(&name)? else { continue };
        let bytes = name.as_bytes();
        if meta.kind == Kind::Dir && !bytes.starts_with(b".kfadmin-") {
            make_whole_in(&d.open_dir(&name)?, &rel.join(&name), done)?;
            continue;
        }
        let Some((base, is_wal)) = sidecar_of_database(d, &name)? else { continue };
        match is_wal {
            true if meta.size > 0 => {}
            false if journal_is_hot(&d.display(&name))? => {}
            _ => continue,
        }
        let base = base.as_os_str();
        let path = d.display(base);
        let mut m = MadeWhole { path: rel.join(base), wal_frames_folded: 0, journal_rolled_back: false };
        if is_wal {
            m.wal_frames_folded = fold_wal(&path)?;
        } else {
            m.journal_rolled_back = roll_back_journal(&path)?;
        }
        done.push(m);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// SQLite reports a damaged b-tree as one row of many lines: `check` gives one problem per
    /// line, so that reports can count and cut them (a verdict's detail, import's first ten).
    #[test]
    fn every_problem_is_one_line() {
        let t = tempfile::tempdir().unwrap();
        let db = t.path().join("d.db");
        {
            let c = Connection::open(&db).unwrap();
            c.execute_batch(
                "PRAGMA page_size=4096; CREATE TABLE a(x); CREATE TABLE b(y);
                 WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i<3000)
                 INSERT INTO a SELECT printf('%0100d', i) FROM n;
                 INSERT INTO b SELECT x FROM a;",
            )
            .unwrap();
        }
        // Five more pages in the file and in the header's page count, used by no tree: one
        // "never used" line each, which SQLite gives as one row.
        let mut bytes = std::fs::read(&db).unwrap();
        let pages = (bytes.len() / 4096 + 5) as u32;
        bytes.resize(pages as usize * 4096, 0);
        bytes[28..32].copy_from_slice(&pages.to_be_bytes());
        std::fs::write(&db, &bytes).unwrap();
        let c = Connection::open(&db).unwrap();
        let p = check(&c, true).unwrap();
        assert!(p.len() > 1, "{p:?}");
        assert!(p.iter().all(|l| !l.contains('\n') && !l.is_empty() && !l.starts_with("***")), "{p:?}");
    }
}
