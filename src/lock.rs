//! Locks between kfadmin runs, so two runs never work on one backup directory, data directory
//! or container at the same time (two backups of one name in the same second, a cold backup
//! restarting a container under a restore, a prune removing what a backup is verifying).
//!
//! One `flock(2)` per thing, on `<state dir>/locks/<key>.lock` (the directory 0700, the file
//! 0600, opened without following a link). The kernel releases a lock when its holder dies,
//! however it dies, so a lock is never stale; the holder writes its pid and command into the
//! file for the message of a run that has to wait. A run removes its lock files when it ends,
//! while it still holds them, and every run sweeps lock files nobody holds: a run that took a
//! lock checks that its file is still the one at the lock's path (not removed or replaced
//! meanwhile), and takes the new one otherwise, so two runs never hold "the same" lock.

use std::fs::File;
use std::io::{Read, Seek, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use crate::error::{check_interrupt, Error, IoContext, Kind, Result};

/// How often a waiting run tries again.
const POLL: Duration = Duration::from_millis(100);

/// What a lock protects: a file name in the locks directory, and words for messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key {
    file: String,
    what: String,
}

impl Key {
    /// A directory (a backup directory, a data directory), by its canonical path: the same
    /// directory reached through a symlink or a relative path is the same lock. A directory
    /// that does not exist yet is named by its nearest existing parent's canonical path.
    pub fn dir(what: &str, path: &Path) -> Key {
        let canonical = canonical(path);
        let hash = crate::fsutil::hex(&Sha256::digest(canonical.as_os_str().as_bytes())[..16]);
        Key { file: format!("dir-{hash}.lock"), what: format!("{what} {}", canonical.display()) }
    }

    /// The drills of a container (one at a time: each boots a copy of the server). Not the
    /// container's own lock: a drill never touches the container, and a restore or backup of it
    /// need not wait for one.
    pub fn drill(id: &str, name: &str) -> Key {
        let c = Key::container(id, name);
        Key { file: format!("drill-{}", c.file), what: format!("drills of container {name}") }
    }

    /// The lock file's name in the locks directory.
    pub fn file_name(&self) -> &str {
        &self.file
    }

    /// A remote location, by its URL: two runs on this host never write to it at once.
    pub fn url(what: &str, url: &str) -> Key {
        let hash = crate::fsutil::hex(&Sha256::digest(url.as_bytes())[..16]);
        Key { file: format!("url-{hash}.lock"), what: format!("{what} {url}") }
    }

    /// A restore into a data directory, held by `restore` from the moment it tells a running
    /// `replicate` of the directory's database to let go of it (ops::replicate::tell_followers)
    /// until it ends: while it is held the follower keeps none of the directory's files open.
    pub fn restoring(data_dir: &Path) -> Key {
        let canonical = canonical(data_dir);
        let hash = crate::fsutil::hex(&Sha256::digest(canonical.as_os_str().as_bytes())[..16]);
        Key {
            file: format!("restoring-{hash}.lock"),
            what: format!("a restore into {}", canonical.display()),
        }
    }

    /// A container, by its id (its name can change, and a Compose service has several names).
    pub fn container(id: &str, name: &str) -> Key {
        let safe = if !id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric()) {
            id.to_string()
        } else {
            crate::fsutil::hex(&Sha256::digest(id.as_bytes())[..16])
        };
        Key { file: format!("container-{safe}.lock"), what: format!("container {name}") }
    }
}

fn canonical(path: &Path) -> PathBuf {
    let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let mut base = abs.as_path();
    let mut rest = Vec::new();
    loop {
        if let Ok(c) = base.canonicalize() {
            return rest.iter().rev().fold(c, |p, part| p.join(part));
        }
        match (base.parent(), base.file_name()) {
            (Some(parent), Some(name)) => {
                rest.push(name.to_os_string());
                base = parent;
            }
            _ => return abs,
        }
    }
}

/// Locks held by this run; dropping them removes their files and releases them (the process
/// ending releases them too, leaving the files for the next run's sweep).
#[derive(Debug)]
pub struct Held {
    files: Vec<(PathBuf, File)>,
}

impl Held {
    /// Does this hold `key`?
    pub fn holds(&self, key: &Key) -> bool {
        self.files.iter().any(|(p, _)| p.file_name().is_some_and(|f| f == key.file.as_str()))
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        for (path, file) in self.files.drain(..) {
            // Still locked: a run waiting on this file sees it gone once it gets it, and
            // takes the path anew.
            if is_at(&file, &path) {
                let _ = std::fs::remove_file(&path);
            }
            drop(file);
        }
    }
}

/// `file` is the file at `path` now (not removed or replaced since it was opened).
fn is_at(file: &File, path: &Path) -> bool {
    match (file.metadata(), path.symlink_metadata()) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

/// Remove the lock files in `dir` that no run holds (left by runs that were killed, or by
/// versions of kfadmin that kept them). Best effort: a file that cannot be checked stays.
fn sweep(dir: &Path) {
    let Ok(rd) = std::fs::read_dir(dir) else { return };
    for e in rd.flatten() {
        let path = e.path();
        if !e.file_name().to_string_lossy().ends_with(".lock") {
            continue;
        }
        let Ok(file) = open(&path) else { continue };
        if matches!(try_lock(&file, &path), Ok(true)) && is_at(&file, &path) {
            let _ = std::fs::remove_file(&path);
        }
    }
}

/// Who holds a lock, as its holder wrote it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Holder {
    pid: Option<u32>,
    command: String,
    since: String,
}

impl Holder {
    fn parse(text: &str) -> Holder {
        let field = |k: &str| {
            text.lines().find_map(|l| l.strip_prefix(k).map(|v| v.trim().to_string())).unwrap_or_default()
        };
        Holder { pid: field("pid=").parse().ok(), command: field("command="), since: field("since=") }
    }

    /// "pid 1234 (`kfadmin backup`, since 2026-11-26T03:00:00Z)", or "another kfadmin run".
    fn describe(&self) -> String {
        match self.pid.filter(|&p| alive(p)) {
            Some(pid) => format!("pid {pid} (`{}`, since {})", self.command, self.since),
            None => "another kfadmin run".to_string(),
        }
    }
}

fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// Take every lock in `keys` (in one fixed order, so two runs never wait on each other in a
/// circle), waiting at most `wait` for each run that holds one. `waiting` is called once, with
/// a line saying who it waits for. `command` is written into each lock for such lines.
pub fn acquire(mut keys: Vec<Key>, wait: Duration, command: &str, waiting: &dyn Fn(&str)) -> Result<Held> {
    keys.sort_by(|a, b| a.file.cmp(&b.file));
    keys.dedup_by(|a, b| a.file == b.file);
    let dir = locks_dir()?;
    sweep(&dir);
    let deadline = Instant::now() + wait;
    let mut said = false;
    let mut held = Held { files: Vec::with_capacity(keys.len()) };
    for key in &keys {
        let path = dir.join(&key.file);
        let mut file = open(&path)?;
        loop {
            if try_lock(&file, &path)? {
                if is_at(&file, &path) {
                    break;
                }
                // Its holder removed it as it ended: lock the path's new file.
                file = open(&path)?;
                continue;
            }
            let holder = holder(&path);
            if Instant::now() >= deadline {
                return Err(busy(key, &holder, wait));
            }
            if !said {
                said = true;
                waiting(&format!(
                    "{} is in use by {}; waiting up to {} for it (--lock-wait)",
                    key.what,
                    holder.describe(),
                    humantime::format_duration(wait)
                ));
            }
            check_interrupt()?;
            std::thread::sleep(POLL.min(deadline.saturating_duration_since(Instant::now())));
        }
        write_holder(&file, &path, command)?;
        held.files.push((path, file));
    }
    Ok(held)
}

/// Take `key` now if no other run holds it, without waiting: None when another run holds it.
/// A journal's owner holds its lock for as long as it lives (the kernel releases it however the
/// owner dies), so a free lock is how a recovery tells a dead owner's journal from a live one,
/// never by a program name or a pid (another name, another PID namespace, a reused pid).
pub fn try_hold(key: &Key, command: &str) -> Result<Option<Held>> {
    let path = locks_dir()?.join(&key.file);
    loop {
        let file = open(&path)?;
        if !try_lock(&file, &path)? {
            return Ok(None);
        }
        // A file a finished run or a sweep removed meanwhile locks nothing: take the new one.
        if is_at(&file, &path) {
            write_holder(&file, &path, command)?;
            return Ok(Some(Held { files: vec![(path, file)] }));
        }
    }
}

fn busy(key: &Key, holder: &Holder, wait: Duration) -> Error {
    let waited = if wait.is_zero() {
        "did not wait (--lock-wait 0)".to_string()
    } else {
        format!("waited {}", humantime::format_duration(wait))
    };
    Error::new(Kind::Failed, format!("{} is in use by {}; {waited}", key.what, holder.describe())).hint(
        "let that run finish (or stop it), then run this again; --lock-wait DURATION (KFADMIN_LOCK_WAIT) \
         sets how long to wait",
    )
}

/// `<state dir>/locks`, 0700, a real directory (not a link).
fn locks_dir() -> Result<PathBuf> {
    let dir = crate::docker::state_dir().join("locks");
    let hint = "kfadmin keeps its locks under its state directory: run it as root, or set KFADMIN_STATE_DIR \
                to a directory it may write";
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
        .map_err(|e| Error::io("cannot create the locks directory", &dir, e).hint(hint))?;
    let meta = dir.symlink_metadata().ctx("cannot read", &dir)?;
    let me = rustix::process::geteuid().as_raw();
    if !meta.is_dir() || meta.uid() != me || meta.mode() & 0o022 != 0 {
        return Err(Error::failed(format!(
            "{} is not a private directory of this user (a link, another owner, or writable by others)",
            dir.display()
        ))
        .hint(hint));
    }
    Ok(dir)
}

fn open(path: &Path) -> Result<File> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
        .ctx("cannot open the lock file", path)?;
    let meta = file.metadata().ctx("cannot read", path)?;
    if !meta.is_file() {
        return Err(Error::failed(format!("the lock file {} is not a regular file", path.display()))
            .hint("remove it; kfadmin creates it again"));
    }
    Ok(file)
}

/// `flock(LOCK_EX | LOCK_NB)`: true when this run holds it now.
fn try_lock(file: &File, path: &Path) -> Result<bool> {
    use rustix::fs::{flock, FlockOperation};
    loop {
        match flock(file, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => return Ok(true),
            Err(rustix::io::Errno::WOULDBLOCK) => return Ok(false),
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(Error::io("cannot lock", path, e.into())),
        }
    }
}

fn holder(path: &Path) -> Holder {
    let mut text = String::new();
    let _ = File::open(path).and_then(|f| f.take(4096).read_to_string(&mut text));
    Holder::parse(&text)
}

fn write_holder(mut file: &File, path: &Path, command: &str) -> Result<()> {
    let since = humantime::format_rfc3339_seconds(std::time::SystemTime::now());
    let text = format!("pid={}\ncommand={command}\nsince={since}\n", std::process::id());
    file.set_len(0)
        .and_then(|()| file.rewind())
        .and_then(|()| file.write_all(text.as_bytes()))
        .ctx("cannot write the lock file", path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_name_the_same_directory_the_same_way() {
        let tmp = tempfile::tempdir().unwrap();
        let real = tmp.path().join("real");
        std::fs::create_dir(&real).unwrap();
        std::os::unix::fs::symlink(&real, tmp.path().join("link")).unwrap();
        let k = Key::dir("backup directory", &real);
        assert_eq!(Key::dir("x", &tmp.path().join("link")).file, k.file);
        std::fs::create_dir(real.join("sub")).unwrap();
        assert_eq!(Key::dir("x", &real.join("sub/..")).file, k.file);
        // Not there yet: named through its existing parent, the same before and after.
        let later = tmp.path().join("link/new");
        let before = Key::dir("x", &later);
        std::fs::create_dir(real.join("new")).unwrap();
        assert_eq!(Key::dir("x", &later).file, before.file);
        assert!(k.file.starts_with("dir-") && k.file.ends_with(".lock"));
        assert_eq!(Key::container("../../etc", "x").file.len(), "container-.lock".len() + 32);
    }

    #[test]
    fn holder_lines_round_trip() {
        let h = Holder::parse("pid=42\ncommand=kfadmin prune\nsince=2026-11-26T03:00:00Z\n");
        assert_eq!(h.pid, Some(42));
        assert_eq!(h.command, "kfadmin prune");
        assert_eq!(Holder::parse("garbage").pid, None);
        assert_eq!(Holder::parse("").describe(), "another kfadmin run");
    }
}
