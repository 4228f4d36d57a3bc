//! When a chain must end and a new one start on a new base (issue 18, rule 3): the application
//! ran `VACUUM` (a commit rewrote every page), changed the page size, or the database was
//! replaced under the follower, by kfadmin or anyone else (another inode; or, in place, content
//! that is not the chain's last state). Continuing the old chain across such a change would
//! either fail (another page size) or record a restore as a gap in the history it replaced;
//! a new base is an ordinary verified copy of the database as it is now.

use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, Instant};

use super::{digest_file, Tip};
use crate::error::{IoContext, Result};
use crate::replicate::wal;

/// A commit that rewrote every page of the database it leaves (as `VACUUM` does): the chain
/// ends after it. A database of one or two pages is not judged (any commit rewrites it).
pub(super) fn after_commits(commits: &[wal::Commit], page_size: u32) -> Option<String> {
    let lock_page = (1u32 << 30) / page_size + 1;
    commits.iter().find_map(|c| {
        let mut written: Vec<u32> = c.pages.iter().map(|(p, _)| *p).filter(|p| *p <= c.db_pages).collect();
        written.sort_unstable();
        written.dedup();
        let need = c.db_pages as usize - usize::from((1..=c.db_pages).contains(&lock_page));
        (c.db_pages > 2 && written.first() == Some(&1) && written.len() >= need)
            .then(|| format!("a commit rewrote every page of the database ({} pages: VACUUM)", c.db_pages))
    })
}

/// What the follower last knew of the database file itself.
pub(super) struct Guard {
    ino: (u64, u64),
    /// (size, mtime ns, ctime ns) when the file alone was last found to be the chain's state.
    checked: Option<(u64, i128, i128)>,
}

fn stat(m: &std::fs::Metadata) -> (u64, i128, i128) {
    (
        m.len(),
        i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec()),
        i128::from(m.ctime()) * 1_000_000_000 + i128::from(m.ctime_nsec()),
    )
}

impl Guard {
    pub(super) fn new(db_file: &File) -> Self {
        let ino = db_file.metadata().map(|m| (m.dev(), m.ino())).unwrap_or((0, 0));
        Guard { ino, checked: None }
    }

    /// Before a read: why the chain must end here, if it must.
    pub(super) fn check(&mut self, db: &Path, db_file: &File, tip: &Tip) -> Result<Option<String>> {
        let Ok(m) = std::fs::metadata(db) else { return Ok(None) };
        if (m.dev(), m.ino()) != self.ino {
            return Ok(Some(
                "the database file was replaced (another file now has its name: restored or copied in)"
                    .into(),
            ));
        }
        if !wal::db_is_wal(db_file).ctx("cannot read", db)? {
            // Left for a moment to change the page size (or for good: refused after a wait).
            return Ok(Some("the database left WAL mode".into()));
        }
        if let Some(ps) = wal::db_page_size(db_file).ctx("cannot read", db)? {
            if ps != tip.info.page_size {
                return Ok(Some(format!(
                    "the database's page size changed ({} to {ps})",
                    tip.info.page_size
                )));
            }
        }
        // Where the chain's last state has no WAL frames, the database file alone is that
        // state: when the file changed since it was last found so, compare it page by page.
        if tip.pos.is_none() && tip.lost.is_none() && self.checked != Some(stat(&m)) {
            let pages = digest_file(db_file, tip.info.page_size)?;
            if pages.sum() != tip.pages.sum() {
                return Ok(Some(
                    "the database file does not hold the chain's last state (it was overwritten in place, e.g. by cp, or restored)"
                        .into(),
                ));
            }
            self.checked = Some(stat(&m));
        }
        Ok(None)
    }
}

/// Wait until the database file is settled (the same inode, size and times for half a second,
/// in WAL mode) before a new base is copied from it, for at most `limit`: a file being copied
/// in, or a page-size change in progress (WAL mode left for a moment). Returns the file open.
pub(super) fn settled(db: &Path, limit: Duration, stop: &dyn Fn() -> bool) -> Result<File> {
    let deadline = Instant::now() + limit;
    let mut last = None;
    loop {
        let f = File::open(db).ctx("cannot open", db)?;
        let m = f.metadata().ctx("cannot read", db)?;
        let now = ((m.dev(), m.ino()), stat(&m), wal::db_is_wal(&f).ctx("cannot read", db)?);
        if last.as_ref() == Some(&now) && now.2 {
            return Ok(f);
        }
        if Instant::now() >= deadline || stop() {
            return Ok(f);
        }
        last = Some(now);
        crate::error::check_interrupt()?;
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Held by this process once it told the followers of a data directory (for as long as it
/// lives: the kernel releases the lock however it ends).
static TOLD: std::sync::Mutex<Vec<crate::lock::Held>> = std::sync::Mutex::new(Vec::new());

/// Is `pid` a kfadmin `replicate`?
fn is_follower(pid: i32) -> bool {
    let Ok(cmd) = std::fs::read(format!("/proc/{pid}/cmdline")) else { return false };
    let mut args = cmd.split(|b| *b == 0).map(|a| String::from_utf8_lossy(a).into_owned());
    let exe = args.next().unwrap_or_default();
    exe.rsplit('/').next().is_some_and(|b| b.starts_with("kfadmin")) && args.any(|a| a == "replicate")
}

/// Before a restore replaces `db`: tell a running `replicate` of it (the lock
/// `lock::Key::restoring` of its directory, held until this process ends), and wait (at most
/// 10 s) until no follower keeps the database open. The follower ships what is committed,
/// lets go, and after the restore starts a new chain on the restored database.
pub fn tell_followers(db: &Path) -> Result<()> {
    let Some(dir) = db.parent() else { return Ok(()) };
    let key = crate::lock::Key::restoring(dir);
    {
        let mut told = TOLD.lock().unwrap_or_else(|e| e.into_inner());
        if !told.iter().any(|h| h.holds(&key)) {
            told.push(crate::lock::acquire(vec![key], Duration::from_secs(5), "restore", &|_| {})?);
        }
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        match crate::sqlite::in_use(db)? {
            Some(h) if is_follower(h.pid) => std::thread::sleep(Duration::from_millis(50)),
            _ => break,
        }
    }
    Ok(())
}

/// Is a restore into the directory of `db` running (its lock held by another process)?
/// Looked at without writing anything: the lock file, when there is one, is held by another
/// process when a shared lock cannot be had on it.
pub(super) fn restore_running(db: &Path) -> bool {
    use std::os::unix::fs::OpenOptionsExt;
    let Some(dir) = db.parent() else { return false };
    let key = crate::lock::Key::restoring(dir);
    let path = crate::docker::state_dir().join("locks").join(key.file_name());
    let Ok(f) =
        std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC).open(&path)
    else {
        return false;
    };
    rustix::fs::flock(&f, rustix::fs::FlockOperation::NonBlockingLockShared).is_err()
}

/// Keep none of the database's files open until the restore ends (the lock is free again), or
/// until stopped; then open the database again (the restored one, or the same one when the
/// restore changed nothing).
pub(super) fn wait_for_restore(db: &Path, open: File, stop: &dyn Fn() -> bool) -> Result<File> {
    drop(open);
    while restore_running(db) && !stop() {
        crate::error::check_interrupt()?;
        std::thread::sleep(Duration::from_millis(100));
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match File::open(db) {
            Ok(f) => return Ok(f),
            Err(e) if Instant::now() >= deadline || stop() => return Err(e).ctx("cannot open", db),
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

/// The chain's base is as old as the schedule says a base may be (a lost repair or a gap
/// pending waits for its repair first).
pub(super) fn scheduled(every: Option<Duration>, tip: &Tip) -> Option<String> {
    let every = every?;
    let age = super::now_us().saturating_sub(tip.info.base_time_us);
    (tip.lost.is_none() && age >= every.as_micros() as u64).then(|| {
        format!(
            "its base is {} old (a new base every {})",
            humantime::format_duration(Duration::from_secs(age / 1_000_000)),
            humantime::format_duration(every)
        )
    })
}

/// Run `f` (archiving a new base) while a thread reads the commits after `from` in the WAL
/// generation it names, every `interval`, each read under a read mark held for as long as it
/// takes: returns what `f` returned and the commits read (when seen, what), in order. It reads
/// only that generation: a WAL restarted meanwhile is the follower's to judge afterwards.
pub(super) fn buffered<T>(
    db: &Path,
    wal_file: Option<File>,
    page_size: u32,
    from: Option<wal::Pos>,
    interval: Duration,
    f: impl FnOnce() -> T,
) -> (T, Vec<(u64, Vec<wal::Commit>)>) {
    let (Some(wal_file), Some(mut pos)) = (wal_file, from) else { return (f(), Vec::new()) };
    let done = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        let reader = s.spawn(|| {
            let mut out = Vec::new();
            loop {
                let last = done.load(std::sync::atomic::Ordering::SeqCst);
                let owners = crate::sqlite::SidecarOwners::record(db);
                let pinned = super::pin(db);
                if pinned.is_some() {
                    match wal::read_commits(&wal_file, &pos, page_size, super::MAX_READ) {
                        Ok(r) => {
                            pos = r.end;
                            if !r.commits.is_empty() {
                                // Stamped once read: never earlier than the commit.
                                out.push((super::now_us(), r.commits));
                            }
                        }
                        Err(_) => break,
                    }
                }
                drop(pinned);
                let _ = owners.restore();
                if last {
                    break;
                }
                std::thread::sleep(interval);
            }
            out
        });
        let result = f();
        done.store(true, std::sync::atomic::Ordering::SeqCst);
        let pending = reader.join().unwrap_or_default();
        (result, pending)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn commit(db_pages: u32, pages: &[u32]) -> wal::Commit {
        wal::Commit {
            pages: pages.iter().map(|p| (*p, vec![0u8; 4096])).collect(),
            db_pages,
            end: wal::Pos { salts: 0, checkpoint_seq: 0, frame: 0, cksum: [0, 0], big_endian: false },
        }
    }

    /// VACUUM rewrites every page of the database it leaves (page 1 included): a new base.
    /// An ordinary commit, or any commit on a database of two pages, is not one.
    #[test]
    fn a_commit_that_rewrites_every_page_is_a_vacuum() {
        let all: Vec<u32> = (1..=50).collect();
        assert!(after_commits(&[commit(50, &all)], 4096).unwrap().contains("VACUUM"));
        assert!(after_commits(&[commit(60, &[1, 2, 3]), commit(50, &all)], 4096).is_some());
        assert!(after_commits(&[commit(50, &all[1..])], 4096).is_none());
        assert!(after_commits(&[commit(50, &[1, 7, 9])], 4096).is_none());
        assert!(after_commits(&[commit(2, &[1, 2])], 4096).is_none());
    }
}
