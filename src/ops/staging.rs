//! Private staging directories: where a snapshot, a cold copy or an unpacked archive waits
//! before it is archived or swapped in.
//!
//! Each one is a 0700 directory named `<prefix><pid>-<random>` holding a `.lock` file that
//! its run keeps locked (`flock`) until it ends; the lock dies with the process, so any later
//! run tells a dead run's leftovers (kill -9, OOM, power cut) from a live one's and removes
//! them. Plaintext never waits under `--out`: backups stage under the state directory (or
//! `--tmp-dir`), root-only.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::FlockOperation;

use crate::error::{Error, IoContext, Kind, Result};
use crate::safedir::{Dir, Kind as EntryKind};

pub const LOCK: &str = ".lock";
/// The prefix of every staging directory in the private staging area.
pub const STAGING_PREFIX: &str = "kfadmin-";

/// A staging directory inside `parent`, removed with everything in it when dropped. Nothing in
/// it is ever reached through a path: only through its descriptor.
#[derive(Debug)]
pub struct Staging {
    parent: Dir,
    name: OsString,
    dir: Dir,
    _lock: File,
}

impl Staging {
    /// A new staging directory in `parent` (which may be writable by others: a data directory).
    pub fn create(parent: &Dir, prefix: &str) -> Result<Staging> {
        let name = OsString::from(format!("{prefix}{}-{:016x}", std::process::id(), random()));
        let dir = parent.mkdir(&name, 0o700).map_err(|e| e.kind(Kind::Failed))?;
        let lock = dir.create_file(OsStr::new(LOCK), 0o600)?;
        rustix::fs::flock(&lock, FlockOperation::NonBlockingLockExclusive)
            .ctx("cannot lock", &dir.display(LOCK))?;
        Ok(Staging { parent: parent.try_clone()?, name, dir, _lock: lock })
    }

    /// A staging directory in kfadmin's private staging area: `tmp_dir` when given, else
    /// `<state dir>/staging`, created 0700. Leftovers of dead runs there are removed first.
    pub fn private(tmp_dir: Option<&Path>, prefix: &str) -> Result<Staging> {
        let root = private_root(tmp_dir)?;
        let _ = sweep(&root, prefix, false);
        Staging::create(&root, prefix)
    }

    pub fn dir(&self) -> &Dir {
        &self.dir
    }

    /// For messages.
    pub fn path(&self) -> PathBuf {
        self.parent.display(&self.name)
    }

    /// A path to an entry that goes through the directory's descriptor (for SQLite).
    pub fn fd_path(&self, name: impl AsRef<Path>) -> PathBuf {
        self.dir.fd_path(name)
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if let Ok(names) = self.dir.entries() {
            for n in names.iter().filter(|n| n.as_bytes() != LOCK.as_bytes()) {
                let _ = self.dir.remove_all(n);
            }
        }
        // Only our own directory goes, even if something renamed it and put another in its place.
        let ours = self.dir.self_meta().ok();
        if let (Some(ours), Ok(Some(now))) = (ours, self.parent.meta(&self.name)) {
            if ours.same(&now) {
                let _ = self.parent.remove_all(&self.name);
            }
        }
    }
}

/// Remove what dead runs left in the private staging areas kfadmin knows of without being
/// told: the state directory's, and `$KFADMIN_TMPDIR`'s. Returns what could not be removed.
pub fn sweep_private() -> Vec<(PathBuf, String)> {
    let mut roots = vec![crate::docker::state_dir().join("staging")];
    roots.extend(std::env::var_os("KFADMIN_TMPDIR").map(PathBuf::from));
    roots.iter().filter_map(|r| Dir::open(r).ok()).flat_map(|d| sweep(&d, STAGING_PREFIX, false)).collect()
}

/// The backup directory, ready to be written into: created 0700 when missing, writable (exit 2
/// otherwise), and cleared of what killed runs left there: the staging directories of older
/// kfadmin versions, and `.partial` archives and sidecars that no live kfadmin holds locked.
/// Returns warnings for what could not be removed.
pub fn prepare_out(out: &Path) -> Result<Vec<String>> {
    crate::fsutil::ensure_private_dir(out)?;
    crate::fsutil::ensure_writable(out)?;
    let dir = Dir::open(out)?;
    let mut warnings: Vec<String> = sweep(&dir, ".kfadmin-staging-", true)
        .into_iter()
        .map(|(p, why)| format!("cannot remove {}, left by an earlier run: {why}", p.display()))
        .collect();
    for n in dir.entries()? {
        let text = n.to_string_lossy();
        let Some(base) = text.strip_suffix(".partial") else { continue };
        let base = base.strip_suffix(".sha256").unwrap_or(base);
        if crate::archive::catalog::parse_name(base).is_none() {
            continue;
        }
        let path = dir.display(&n);
        if !crate::fsutil::remove_if_abandoned(&path) && path.symlink_metadata().is_ok() {
            warnings.push(format!("{} is being written by another kfadmin run; left alone", path.display()));
        }
    }
    Ok(warnings)
}

/// kfadmin's private staging area, created 0700 when missing.
pub fn private_root(tmp_dir: Option<&Path>) -> Result<Dir> {
    let root = match tmp_dir {
        Some(d) => d.to_path_buf(),
        None => crate::docker::state_dir().join("staging"),
    };
    crate::fsutil::ensure_private_dir(&root)?;
    let dir = Dir::open(&root)?;
    let meta = dir.self_meta()?;
    if meta.mode & 0o022 != 0 {
        return Err(Error::usage(format!(
            "{} is writable by other users (mode {:o}); kfadmin stages plaintext data there only in a private directory",
            root.display(),
            meta.mode
        ))
        .hint(format!("`chmod 700 {}`, or pass --tmp-dir with a private directory", root.display())));
    }
    Ok(dir)
}

/// Remove the staging directories (`<prefix>*`) in `parent` whose run is gone: their lock is
/// free (or, with `legacy`, they have none: the staging directories older kfadmin versions
/// left under `--out`). Returns what could not be removed.
pub fn sweep(parent: &Dir, prefix: &str, legacy: bool) -> Vec<(PathBuf, String)> {
    let mut failed = Vec::new();
    let Ok(names) = parent.entries() else { return failed };
    for n in names.iter().filter(|n| n.as_bytes().starts_with(prefix.as_bytes())) {
        match parent.meta(n) {
            Ok(Some(m)) if m.kind == EntryKind::Dir => {}
            _ => continue,
        }
        if let Err(e) = remove_if_dead(parent, n, legacy) {
            failed.push((parent.display(n), e.chain()));
        }
    }
    failed
}

/// The lock goes last, held while everything else goes: a sweep killed half-way leaves a
/// directory that the next sweep still tells for dead (a directory without its lock is taken
/// for one being made).
fn remove_if_dead(parent: &Dir, name: &OsStr, legacy: bool) -> Result<()> {
    let dir = parent.open_dir(name)?;
    let lock = dir.open_file(OsStr::new(LOCK));
    let alive = match &lock {
        Ok(f) => rustix::fs::flock(f, FlockOperation::NonBlockingLockExclusive).is_err(),
        Err(_) => !legacy,
    };
    if alive {
        return Ok(());
    }
    for n in dir.entries()?.iter().filter(|n| n.as_bytes() != LOCK.as_bytes()) {
        dir.remove_all(n)?;
        crate::fault::point("sweep.removed-one")?;
    }
    drop((dir, lock));
    parent.remove_all(name)
}

/// 64 random bits (from the kernel), for names nobody can guess.
pub fn random() -> u64 {
    let mut b = [0u8; 8];
    if rustix::rand::getrandom(&mut b, rustix::rand::GetRandomFlags::empty()).is_err() {
        let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        return t.as_nanos() as u64 ^ u64::from(std::process::id()).rotate_left(32);
    }
    u64::from_le_bytes(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dead_runs_staging_is_swept_and_a_live_one_is_not() {
        let t = tempfile::tempdir().unwrap();
        let parent = Dir::open(t.path()).unwrap();
        let live = Staging::create(&parent, ".kfadmin-x-").unwrap();
        // A dead run's: no lock held (the file exists, nobody holds it).
        let dead = parent.mkdir(OsStr::new(".kfadmin-x-1-dead"), 0o700).unwrap();
        dead.create_file(OsStr::new(LOCK), 0o600).unwrap();
        dead.create_file(OsStr::new("keyfount.db"), 0o600).unwrap();
        assert!(sweep(&parent, ".kfadmin-x-", false).is_empty());
        assert!(parent.meta(OsStr::new(".kfadmin-x-1-dead")).unwrap().is_none());
        assert!(parent.meta(&live.name).unwrap().is_some());
        let name = live.name.clone();
        drop(live);
        assert!(parent.meta(&name).unwrap().is_none());
    }
}
