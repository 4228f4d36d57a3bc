//! `keyfount-sim run`: the writer. Commits transfer transactions at a scheduled rate until
//! SIGTERM/SIGINT, `--duration` or `--max-commits`, then closes cleanly (checkpoint, no
//! `-wal`/`-shm` left) and exits 0 only if no statement failed.

use crate::db::{apply_keyfount_pragmas, now_ms, require_existing};
use crate::Fail;
use clap::Args;
use rusqlite::{params, Connection, OpenFlags};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Args)]
pub struct RunArgs {
    /// Existing database (made by `keyfount-sim init`); never created (exit 2 if missing).
    #[arg(long, value_name = "PATH")]
    pub db: PathBuf,
    /// Commits per second, kept by a schedule; 0 = as fast as possible.
    #[arg(long, value_name = "N", default_value_t = 100)]
    pub rate: u32,
    /// Stop after this many seconds (fractions allowed); default: until SIGTERM/SIGINT.
    #[arg(long, value_name = "SECS")]
    pub duration: Option<f64>,
    /// Stop after this many successful commits.
    #[arg(long, value_name = "N")]
    pub max_commits: Option<u64>,
    /// Rewrite this JSON status file atomically (FILE.tmp, then rename) every 50 ms and at exit:
    /// {"pid","last_seq","commits","errors","elapsed_ms","rate","done","sigterm"}; `rate` is the achieved
    /// commits/s, `last_seq` the last audit seq whose COMMIT returned OK, `sigterm` that an ignored
    /// SIGTERM arrived (--ignore-sigterm).
    #[arg(long, value_name = "FILE")]
    pub status_file: Option<PathBuf>,
    /// Drop to this uid before opening anything (needs --gid; run as root).
    #[arg(long, value_name = "U", requires = "gid")]
    pub uid: Option<u32>,
    /// Drop to this gid before opening anything (needs --uid; supplementary groups cleared).
    #[arg(long, value_name = "G", requires = "uid")]
    pub gid: Option<u32>,
    /// Size of the sync blob upserted by each transaction, in KiB.
    #[arg(long, value_name = "K", default_value_t = 4,
          value_parser = clap::value_parser!(u32).range(1..=65536))]
    pub blob_kib: u32,
    /// Blobs are upserted at item ids 0..ITEMS of a user, so the database stops growing.
    #[arg(long, value_name = "ITEMS", default_value_t = 32,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub items: u32,
    /// Create the database first (as `init --size-mb N`) when it does not exist: a server
    /// starting on an empty volume.
    #[arg(long, value_name = "N")]
    pub init_size_mb: Option<u64>,
    /// Ignore SIGTERM (an app that `docker stop` can only kill); SIGINT still stops it.
    #[arg(long)]
    pub ignore_sigterm: bool,
}

/// The schema version this "server" runs on; any other is refused at start (exit 3), as a
/// server refuses a database from an incompatible release.
pub const SCHEMA_VERSION: i64 = 7;

/// Counters shared with the status-file thread.
struct Shared {
    last_seq: AtomicI64,
    commits: AtomicU64,
    errors: AtomicU64,
    /// A SIGTERM arrived while `--ignore-sigterm` ignores it (a `docker stop` is under way).
    sigterm: Arc<AtomicBool>,
}

struct Status<'a> {
    path: &'a Path,
    tmp: PathBuf,
    start: Instant,
    complained: AtomicBool,
}

impl Status<'_> {
    fn write(&self, s: &Shared, done: bool) {
        let elapsed = self.start.elapsed();
        let commits = s.commits.load(Ordering::SeqCst);
        let secs = elapsed.as_secs_f64();
        let rate = if secs > 0.0 { commits as f64 / secs } else { 0.0 };
        let json = serde_json::json!({
            "pid": std::process::id(),
            "last_seq": s.last_seq.load(Ordering::SeqCst),
            "commits": commits,
            "errors": s.errors.load(Ordering::SeqCst),
            "elapsed_ms": elapsed.as_millis() as u64,
            "rate": (rate * 10.0).round() / 10.0,
            "done": done,
            "sigterm": s.sigterm.load(Ordering::SeqCst),
        });
        let res = std::fs::write(&self.tmp, format!("{json}\n"))
            .and_then(|()| std::fs::rename(&self.tmp, self.path));
        if let Err(e) = res {
            // Say it once, not 20 times a second.
            if !self.complained.swap(true, Ordering::SeqCst) {
                eprintln!("keyfount-sim: cannot write status file {}: {e}", self.path.display());
            }
        }
    }
}

fn drop_privileges(uid: u32, gid: u32) -> Result<(), Fail> {
    let os = |what: &str| Fail::op(format!("{what}: {}", std::io::Error::last_os_error()));
    // SAFETY: plain libc calls with valid arguments; no threads exist yet.
    unsafe {
        if libc::setgroups(0, std::ptr::null()) != 0 {
            return Err(os("setgroups([])"));
        }
        if libc::setgid(gid as libc::gid_t) != 0 {
            return Err(os(&format!("setgid({gid})")));
        }
        if libc::setuid(uid as libc::uid_t) != 0 {
            return Err(os(&format!("setuid({uid})")));
        }
        if libc::getuid() != uid || libc::geteuid() != uid || libc::getgid() != gid || libc::getegid() != gid
        {
            return Err(Fail::op(format!("privilege drop to {uid}:{gid} did not take effect")));
        }
        if uid != 0 && libc::setuid(0) == 0 {
            return Err(Fail::op("could regain root after dropping privileges"));
        }
    }
    Ok(())
}

/// Sleeps until `due`, waking every 20 ms to notice a stop request. False: stop now.
fn sleep_until(due: Instant, stop: &AtomicBool, deadline: Option<Instant>) -> bool {
    loop {
        if stop.load(Ordering::SeqCst) {
            return false;
        }
        let now = Instant::now();
        if deadline.is_some_and(|d| now >= d) {
            return false;
        }
        if now >= due {
            return true;
        }
        std::thread::sleep((due - now).min(Duration::from_millis(20)));
    }
}

struct Writer<'c> {
    conn: &'c Connection,
    rng: fastrand::Rng,
    users: Vec<i64>,
    blob: Vec<u8>,
    items: i64,
}

impl Writer<'_> {
    /// One Keyfount-like transaction. Returns the audit seq it committed.
    fn transaction(&mut self) -> Result<i64, String> {
        let e = |what: &'static str| move |err: rusqlite::Error| format!("{what}: {err}");
        let c = self.conn;
        c.execute_batch("BEGIN IMMEDIATE").map_err(e("BEGIN IMMEDIATE"))?;
        let last: i64 = c
            .prepare_cached("SELECT value FROM meta WHERE key = 'last_seq'")
            .and_then(|mut s| s.query_row([], |r| r.get(0)))
            .map_err(e("read meta.last_seq"))?;
        let n = self.users.len();
        let i = self.rng.usize(..n);
        let j = (i + 1 + self.rng.usize(..n - 1)) % n;
        let (from, to) = (self.users[i], self.users[j]);
        let amount = self.rng.i64(1..=50);
        for (delta, user) in [(-amount, from), (amount, to)] {
            let changed = c
                .prepare_cached("UPDATE users SET balance = balance + ?1 WHERE id = ?2")
                .and_then(|mut s| s.execute(params![delta, user]))
                .map_err(e("update balance"))?;
            if changed != 1 {
                return Err(format!("update balance of user {user}: {changed} rows"));
            }
        }
        self.rng.fill(&mut self.blob);
        let owner = if self.rng.bool() { from } else { to };
        let item = self.rng.i64(0..self.items);
        c.prepare_cached(
            "INSERT INTO sync_blobs(user_id, item_id, version, data) VALUES (?1, ?2, 1, ?3)
             ON CONFLICT(user_id, item_id) DO UPDATE SET version = version + 1, data = excluded.data",
        )
        .and_then(|mut s| s.execute(params![owner, item, &self.blob[..]]))
        .map_err(e("upsert sync_blobs"))?;
        let seq = last + 1;
        c.prepare_cached(
            "INSERT INTO audit_log(seq, user_id, kind, amount, at) VALUES (?1, ?2, 'transfer', ?3, ?4)",
        )
        .and_then(|mut s| s.execute(params![seq, from, amount, now_ms()]))
        .map_err(e("insert audit_log"))?;
        c.prepare_cached("UPDATE meta SET value = ?1 WHERE key = 'last_seq'")
            .and_then(|mut s| s.execute(params![seq]))
            .map_err(e("update meta.last_seq"))?;
        c.execute_batch("COMMIT").map_err(e("COMMIT"))?;
        Ok(seq)
    }
}

/// A misbehaving server, for the drill tests: when the database's `meta` table holds the key
/// `test.discard_on_start`, the database is moved aside (`keyfount.db.discarded`) and the
/// server starts on a new, nearly empty one of the same schema, as a server that loses its
/// data on start would. It stays up and healthy.
fn discard_if_asked(db: &Path) -> Result<(), Fail> {
    let asked = {
        let conn = Connection::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
        conn.query_row("SELECT count(*) FROM meta WHERE key = 'test.discard_on_start'", [], |r| {
            r.get::<_, i64>(0)
        })? > 0
    };
    if !asked {
        return Ok(());
    }
    let mut aside = db.as_os_str().to_owned();
    aside.push(".discarded");
    std::fs::rename(db, &aside)?;
    for suffix in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(crate::db::sidecar(db, suffix));
    }
    let mut fresh = crate::init::InitArgs::new(db.to_path_buf(), 0);
    fresh.users = 2;
    crate::init::init(&fresh)?;
    eprintln!("keyfount-sim: discarded {} and started on a new database", db.display());
    Ok(())
}

pub fn run(a: &RunArgs) -> Result<ExitCode, Fail> {
    if let (Some(uid), Some(gid)) = (a.uid, a.gid) {
        drop_privileges(uid, gid)?;
    }
    if a.duration.is_some_and(|d| !(d >= 0.0 && d.is_finite())) {
        return Err(Fail::usage("--duration must be a non-negative number of seconds"));
    }

    // SIGTERM/SIGINT set `stop`: the current transaction finishes, then a clean close. A second
    // signal while stopping exits at once (like a SIGKILL: the WAL stays).
    let stop = Arc::new(AtomicBool::new(false));
    let sigterm = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        if sig == signal_hook::consts::SIGTERM && a.ignore_sigterm {
            // Registered but ignored (only noted in the status): as PID 1 in a container, an
            // unhandled SIGTERM is ignored too.
            signal_hook::flag::register(sig, Arc::clone(&sigterm))?;
            continue;
        }
        signal_hook::flag::register_conditional_shutdown(sig, 1, Arc::clone(&stop))?;
        signal_hook::flag::register(sig, Arc::clone(&stop))?;
    }

    if let (Some(size_mb), Err(_)) = (a.init_size_mb, std::fs::symlink_metadata(&a.db)) {
        crate::init::init(&crate::init::InitArgs::new(a.db.clone(), size_mb))?;
    }
    require_existing(&a.db)?;
    discard_if_asked(&a.db)?;
    let flags =
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_URI;
    let conn = Connection::open_with_flags(&a.db, flags)
        .map_err(|e| Fail::op(format!("cannot open {}: {e}", a.db.display())))?;
    apply_keyfount_pragmas(&conn)?;
    conn.set_prepared_statement_cache_capacity(16);
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version != SCHEMA_VERSION {
        eprintln!(
            "keyfount-sim: {} has schema version {version}; this server runs version {SCHEMA_VERSION} only",
            a.db.display()
        );
        return Ok(ExitCode::from(3));
    }

    let users: Vec<i64> = conn
        .prepare("SELECT id FROM users ORDER BY id")?
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()
        .map_err(|e| Fail::op(format!("read users: {e}")))?;
    if users.len() < 2 {
        return Err(Fail::op(format!("{} has {} users; at least 2 are needed", a.db.display(), users.len())));
    }
    let start_seq: i64 = conn
        .query_row("SELECT value FROM meta WHERE key = 'last_seq'", [], |r| r.get(0))
        .map_err(|e| Fail::op(format!("read meta.last_seq: {e}")))?;

    let shared = Arc::new(Shared {
        last_seq: AtomicI64::new(start_seq),
        commits: AtomicU64::new(0),
        errors: AtomicU64::new(0),
        sigterm,
    });
    {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "ready");
        let _ = out.flush();
    }
    let start = Instant::now();
    let status = a.status_file.as_deref().map(|p| Status {
        path: p,
        tmp: crate::db::sidecar(p, ".tmp"),
        start,
        complained: AtomicBool::new(false),
    });
    let status_done = AtomicBool::new(false);

    let mut writer = Writer {
        conn: &conn,
        rng: fastrand::Rng::new(),
        users,
        blob: vec![0u8; a.blob_kib as usize * 1024],
        items: i64::from(a.items),
    };
    let deadline = a.duration.map(|d| start + Duration::from_secs_f64(d));

    std::thread::scope(|scope| {
        if let Some(st) = &status {
            st.write(&shared, false);
            let (shared, status_done) = (&shared, &status_done);
            scope.spawn(move || {
                while !status_done.load(Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_millis(50));
                    st.write(shared, false);
                }
            });
        }

        let mut attempts: u64 = 0;
        loop {
            if stop.load(Ordering::SeqCst)
                || deadline.is_some_and(|d| Instant::now() >= d)
                || a.max_commits.is_some_and(|m| shared.commits.load(Ordering::SeqCst) >= m)
            {
                break;
            }
            if a.rate > 0 {
                let due = start + Duration::from_secs_f64(attempts as f64 / f64::from(a.rate));
                if !sleep_until(due, &stop, deadline) {
                    break;
                }
            }
            attempts += 1;
            match writer.transaction() {
                Ok(seq) => {
                    shared.last_seq.store(seq, Ordering::SeqCst);
                    shared.commits.fetch_add(1, Ordering::SeqCst);
                }
                Err(msg) => {
                    shared.errors.fetch_add(1, Ordering::SeqCst);
                    eprintln!("keyfount-sim: transaction failed: {msg}");
                    if !conn.is_autocommit() {
                        if let Err(e) = conn.execute_batch("ROLLBACK") {
                            eprintln!("keyfount-sim: ROLLBACK failed: {e}");
                        }
                    }
                }
            }
        }
        status_done.store(true, Ordering::SeqCst);
    });

    drop(writer);
    // Explicit close: the last connection checkpoints and deletes -wal and -shm.
    if let Err((_conn, e)) = conn.close() {
        shared.errors.fetch_add(1, Ordering::SeqCst);
        eprintln!("keyfount-sim: close failed: {e}");
    }
    if let Some(st) = &status {
        st.write(&shared, true);
    }
    let errors = shared.errors.load(Ordering::SeqCst);
    eprintln!(
        "keyfount-sim: stopped after {} commits ({} errors) in {:.2} s, last_seq {}",
        shared.commits.load(Ordering::SeqCst),
        errors,
        start.elapsed().as_secs_f64(),
        shared.last_seq.load(Ordering::SeqCst)
    );
    Ok(if errors == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}
