//! Small filesystem helpers shared by the commands: private directories, fsync, hashing,
//! and a guard that removes a half-written file unless it was finished.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::error::{check_interrupt, Error, IoContext, Kind, Result};
use crate::progress::Stage;
use crate::safedir::{self, Dir};

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Create `dir` (and its parents) when missing; a directory kfadmin creates is mode 0700.
pub fn ensure_private_dir(dir: &Path) -> Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    if dir.exists() {
        return Err(Error::usage(format!("{} exists and is not a directory", dir.display()))
            .hint("choose another output directory"));
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| Error::io("cannot create the directory", dir, e).kind(Kind::Usage))
}

/// Refuse (exit 2) a directory kfadmin cannot write in: read-only, or not permitted. Checked
/// before any work, so that a mistyped `--out` costs nothing.
pub fn ensure_writable(dir: &Path) -> Result<()> {
    rustix::fs::access(dir, rustix::fs::Access::WRITE_OK | rustix::fs::Access::EXEC_OK)
        .map_err(|e| Error::io("cannot write in", dir, io::Error::from(e)).kind(Kind::Usage))
}

/// A 0700 staging directory inside `parent`, removed with everything in it when dropped.
pub fn staging_dir(parent: &Path, prefix: &str) -> Result<tempfile::TempDir> {
    let dir = tempfile::Builder::new().prefix(prefix).tempdir_in(parent).map_err(|e| {
        let usage = matches!(
            e.kind(),
            io::ErrorKind::PermissionDenied
                | io::ErrorKind::ReadOnlyFilesystem
                | io::ErrorKind::NotADirectory
        );
        let err = Error::io("cannot write in", parent, e);
        if usage {
            err.kind(Kind::Usage)
        } else {
            err
        }
    })?;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700))
        .ctx("cannot set the mode of", dir.path())?;
    Ok(dir)
}

pub fn fsync_dir(dir: &Path) -> Result<()> {
    File::open(dir).and_then(|d| d.sync_all()).ctx("cannot sync the directory", dir)
}

/// Create a new file with mode `mode`; never follows a symlink, never replaces a file.
pub fn create_new(path: &Path, mode: u32) -> Result<File> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
        .ctx("cannot create", path)
}

/// SHA-256 and length of a file, in 1 MiB reads.
pub fn sha256_file(path: &Path, stage: Option<&dyn Stage>) -> Result<(String, u64)> {
    let f = File::open(path).ctx("cannot read", path)?;
    sha256_reader(f, stage).map_err(|e| match e.downcast::<crate::Error>() {
        Ok(e) => e,
        Err(e) => Error::io("cannot read", path, e),
    })
}

/// SHA-256 and length of everything `r` gives, in 1 MiB reads; an interrupt is an
/// `io::Error` wrapping [`Error::interrupted`].
pub fn sha256_reader(mut r: impl Read, stage: Option<&dyn Stage>) -> std::io::Result<(String, u64)> {
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0u64;
    loop {
        check_interrupt().map_err(std::io::Error::other)?;
        let k = match r.read(&mut buf) {
            Ok(k) => k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if k == 0 {
            break;
        }
        h.update(&buf[..k]);
        n += k as u64;
        if let Some(s) = stage {
            s.inc(k as u64);
        }
    }
    Ok((hex(&h.finalize()), n))
}

/// Removes its file when dropped, unless [`Partial::keep`] was called.
pub struct Partial {
    path: Option<PathBuf>,
}

impl Partial {
    pub fn new(path: PathBuf) -> Self {
        Partial { path: Some(path) }
    }
    pub fn path(&self) -> &Path {
        self.path.as_deref().expect("partial still armed")
    }
    pub fn keep(mut self) {
        self.path = None;
    }
}

impl Drop for Partial {
    fn drop(&mut self) {
        if let Some(p) = self.path.take() {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// Write `contents` to `path` atomically: `<path>.partial`, fsync, rename. Mode `mode`.
pub fn write_atomic(path: &Path, contents: &[u8], mode: u32) -> Result<()> {
    let tmp = PathBuf::from(format!("{}.partial", path.display()));
    let mut f = match create_new(&tmp, mode) {
        Ok(f) => f,
        // A dead run's leftover is removed; a live run's is not (it fails this write).
        Err(_) if remove_if_abandoned(&tmp) => create_new(&tmp, mode)?,
        Err(e) => return Err(e),
    };
    let guard = Partial::new(tmp.clone());
    lock_file(&f, &tmp)?;
    f.write_all(contents).ctx("cannot write", &tmp)?;
    f.sync_all().ctx("cannot write", &tmp)?;
    drop(f);
    std::fs::rename(&tmp, path).ctx("cannot rename into", path)?;
    guard.keep();
    if let Some(dir) = path.parent() {
        fsync_dir(if dir.as_os_str().is_empty() { Path::new(".") } else { dir })?;
    }
    Ok(())
}

/// Lock a file kfadmin is writing (`flock`, exclusive) for as long as it (or a clone of its
/// descriptor) is open: the mark of a live writer.
pub fn lock_file(f: &File, path: &Path) -> Result<()> {
    rustix::fs::flock(f, rustix::fs::FlockOperation::NonBlockingLockExclusive)
        .map_err(|e| Error::io("cannot lock", path, io::Error::from(e)))
}

/// Remove a `.partial` file that no live kfadmin holds (its writer was killed); true when it
/// is gone. Never follows a link; a file someone holds stays.
pub fn remove_if_abandoned(path: &Path) -> bool {
    let Ok(f) = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
    else {
        return false;
    };
    if rustix::fs::flock(&f, rustix::fs::FlockOperation::NonBlockingLockExclusive).is_err() {
        return false;
    }
    std::fs::remove_file(path).is_ok()
}

/// Free bytes for an unprivileged writer on the filesystem that holds `path`.
pub fn free_space(path: &Path) -> Option<u64> {
    let s = rustix::fs::statvfs(path).ok()?;
    Some(s.f_bavail.saturating_mul(s.f_frsize))
}

/// The system's host name, for the manifest.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".to_string())
}

/// Copy an open file into a new one: a reflink where the filesystem can share blocks (btrfs,
/// XFS), an in-kernel copy otherwise. Returns whether it was a reflink.
pub fn clone_or_copy(mut from: File, mut to: File, dst: &Path) -> Result<bool> {
    if rustix::fs::ioctl_ficlone(&to, &from).is_ok() {
        return Ok(true);
    }
    io::copy(&mut from, &mut to).ctx("cannot copy into", dst)?;
    Ok(false)
}

/// A file or directory of a data directory, copied aside.
#[derive(Debug, Clone)]
pub struct Copied {
    /// Relative to the data directory (empty: the data directory itself).
    pub rel: PathBuf,
    pub staged: PathBuf,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub reflinked: bool,
    /// A directory (its owner and mode are recorded; nothing is archived for it).
    pub dir: bool,
}

/// Copy a (stopped) data directory into `dst`, walking it without ever following a link (the
/// container can write it): every regular file and directory, except SQLite's `-shm` files,
/// empty `-wal` files, rollback journals that are not hot, and kfadmin's own `.kfadmin-*`
/// entries. Anything else (a link, a FIFO, a socket) is left out with a warning. A non-empty
/// `-wal` or a hot journal is an error: make the databases whole first
/// ([`crate::sqlite::make_whole`]). The first entry is the data directory itself.
pub fn copy_data_dir(src: &Path, dst: &Path) -> Result<(Vec<Copied>, Vec<String>)> {
    copy_data_dir_with(src, dst, false)
}

/// [`copy_data_dir`], and with `carry`, a non-empty `-wal` and a hot journal beside a database
/// are copied as they are (listed like any file), for the caller to make whole in its copy.
fn copy_data_dir_with(src: &Path, dst: &Path, carry: bool) -> Result<(Vec<Copied>, Vec<String>)> {
    let from = Dir::open(src)?;
    let to = Dir::open(dst)?;
    let root = from.self_meta()?;
    let mut out = vec![Copied {
        rel: PathBuf::new(),
        staged: dst.to_path_buf(),
        mode: root.mode,
        uid: root.uid,
        gid: root.gid,
        reflinked: false,
        dir: true,
    }];
    let mut warnings = Vec::new();
    copy_tree(&from, &to, Path::new(""), (&mut out, &mut warnings), carry)?;
    Ok((out, warnings))
}

fn copy_tree(
    from: &Dir,
    to: &Dir,
    rel: &Path,
    (out, warnings): (&mut Vec<Copied>, &mut Vec<String>),
    carry: bool,
) -> Result<()> {
    use std::os::unix::ffi::OsStrExt;
    for name in from.entries()? {
        check_interrupt()?;
        let b = name.as_bytes();
        let Some(meta) = from.meta(&name)? else { continue };
        let path = from.display(&name);
        if b.starts_with(b".kfadmin-") || (b.ends_with(b"-shm") && meta.kind == safedir::Kind::File) {
            continue;
        }
        // Only a database's own sidecars: `notes-wal` with no database `notes` is a file.
        let sidecar = match meta.kind {
            safedir::Kind::File => crate::sqlite::sidecar_of_database(from, &name)?,
            _ => None,
        };
        let wal = sidecar.as_ref().is_some_and(|s| s.1);
        let journal = sidecar.as_ref().is_some_and(|s| !s.1);
        let unfolded = wal && meta.size > 0 || journal && crate::sqlite::journal_is_hot(&path)?;
        if unfolded && carry {
            let dst = to.create_file(&name, 0o600)?;
            let staged = to.display(&name);
            let reflinked = clone_or_copy(from.open_file(&name)?, dst, &staged)?;
            let (mode, uid, gid) = (meta.mode, meta.uid, meta.gid);
            out.push(Copied { rel: rel.join(&name), staged, mode, uid, gid, reflinked, dir: false });
            continue;
        }
        if unfolded {
            return Err(Error::failed(format!(
                "{} holds {} that were not folded into its database",
                path.display(),
                if wal { "WAL frames" } else { "a hot rollback journal's pages" }
            ))
            .hint("something wrote in the data directory after it was stopped; run the backup again"));
        }
        if wal || journal {
            continue;
        }
        let r = rel.join(&name);
        let staged = to.display(&name);
        let mut entry = Copied {
            rel: r.clone(),
            staged,
            mode: meta.mode,
            uid: meta.uid,
            gid: meta.gid,
            reflinked: false,
            dir: false,
        };
        match meta.kind {
            safedir::Kind::Dir => {
                let sub = to.mkdir(&name, 0o700)?;
                entry.dir = true;
                out.push(entry);
                copy_tree(&from.open_dir(&name)?, &sub, &r, (&mut *out, &mut *warnings), carry)?;
            }
            safedir::Kind::File => {
                let src = from.open_file(&name)?;
                let dst = to.create_file(&name, 0o600)?;
                entry.reflinked = clone_or_copy(src, dst, &entry.staged)?;
                out.push(entry);
            }
            safedir::Kind::Link | safedir::Kind::Other => warnings.push(format!(
                "{} is {}; it is not in the backup",
                path.display(),
                if meta.kind == safedir::Kind::Link { "a symbolic link" } else { "not a regular file" }
            )),
        }
    }
    Ok(())
}

/// Bytes in regular files and the number of entries under `dir`, walked without following links.
pub fn tree_size(dir: &Path) -> Result<(u64, u64)> {
    fn walk(d: &Dir, acc: &mut (u64, u64)) -> Result<()> {
        for name in d.entries()? {
            let Some(m) = d.meta(&name)? else { continue };
            acc.1 += 1;
            match m.kind {
                safedir::Kind::File => acc.0 += m.size,
                safedir::Kind::Dir => walk(&d.open_dir(&name)?, acc)?,
                _ => {}
            }
        }
        Ok(())
    }
    let mut acc = (0, 1);
    walk(&Dir::open(dir)?, &mut acc)?;
    Ok(acc)
}

/// Copy a data directory that spans several mounts into `dst`: `parts` are (path inside the data
/// directory, host directory) pairs, the directory's own mount first (path ""), then each mount
/// nested in it. Each part goes into a sub-directory of `dst` of its own through
/// [`copy_data_dir`]; every file is named by its path in the data directory. A part without a
/// host directory is left out. A file that a deeper part's mount point hides (the container
/// never sees it) is left out too, with a warning.
pub fn copy_data_parts(
    parts: &[(PathBuf, Option<PathBuf>)],
    dst: &Path,
) -> Result<(Vec<Copied>, Vec<String>)> {
    copy_data_parts_with(parts, dst, false)
}

/// [`copy_data_parts`] of a data directory whose databases were not made whole: a non-empty
/// `-wal` or a hot journal beside a database is copied as it is (a pre-restore copy makes
/// them whole in the copy, or keeps them as they were when the database is damaged).
pub fn copy_data_parts_as_they_are(
    parts: &[(PathBuf, Option<PathBuf>)],
    dst: &Path,
) -> Result<(Vec<Copied>, Vec<String>)> {
    copy_data_parts_with(parts, dst, true)
}

fn copy_data_parts_with(
    parts: &[(PathBuf, Option<PathBuf>)],
    dst: &Path,
    carry: bool,
) -> Result<(Vec<Copied>, Vec<String>)> {
    let mut out = Vec::new();
    let mut warnings = Vec::new();
    for (i, (rel, src)) in parts.iter().enumerate() {
        let Some(src) = src else { continue };
        let sub = dst.join(format!("part-{i}"));
        std::fs::DirBuilder::new().mode(0o700).create(&sub).ctx("cannot create", &sub)?;
        let sub = &sub;
        let (files, w) = match src.symlink_metadata() {
            // A single file mounted into the data directory (`-v /srv/kf/x.json:/data/x.json`).
            Ok(m) if m.is_file() => (vec![copy_one(src, &sub.join("file"), m)?], vec![]),
            _ => copy_data_dir_with(src, sub, carry)?,
        };
        warnings.extend(w);
        let deeper: Vec<&PathBuf> =
            parts.iter().map(|(r, _)| r).filter(|r| *r != rel && r.starts_with(rel)).collect();
        let mut hidden = Vec::new();
        for mut c in files {
            c.rel = if c.rel.as_os_str().is_empty() { rel.clone() } else { rel.join(&c.rel) };
            match deeper.iter().find(|d| c.rel.starts_with(d)) {
                // The mount point itself: the deeper part records it.
                Some(d) if c.dir && c.rel == **d => {}
                Some(_) => hidden.push(src.join(c.rel.strip_prefix(rel).unwrap_or(&c.rel))),
                None => out.push(c),
            }
        }
        if let Some(first) = hidden.first() {
            warnings.push(format!(
                "{} file(s) in {} (e.g. {}) lie under the mount point of another mount, where the container cannot see them; they are not in the backup",
                hidden.len(),
                src.display(),
                first.display()
            ));
        }
    }
    Ok((out, warnings))
}

/// One file copied aside to `staged`, named "" in its part (the part's path is its name).
fn copy_one(src: &Path, staged: &Path, meta: std::fs::Metadata) -> Result<Copied> {
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
    let from = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(src)
        .ctx("cannot read", src)?;
    let reflinked = clone_or_copy(from, create_new(staged, 0o600)?, staged)?;
    Ok(Copied {
        rel: PathBuf::new(),
        staged: staged.to_path_buf(),
        mode: meta.mode() & 0o7777,
        uid: meta.uid(),
        gid: meta.gid(),
        reflinked,
        dir: false,
    })
}

#[cfg(test)]
mod parts_tests {
    use super::*;

    #[test]
    fn every_part_is_copied_under_its_path_and_hidden_files_are_left_out_with_a_warning() {
        let (a, b, out) =
            (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        std::fs::write(a.path().join("keyfount.db"), b"db").unwrap();
        std::fs::create_dir(a.path().join("uploads")).unwrap();
        std::fs::write(a.path().join("uploads/hidden.txt"), b"under the mount point").unwrap();
        std::fs::create_dir(b.path().join("sub")).unwrap();
        std::fs::write(b.path().join("sub/photo.bin"), b"photo").unwrap();
        let single = b.path().join("sub/photo.bin");
        let parts = vec![
            (PathBuf::new(), Some(a.path().to_path_buf())),
            (PathBuf::from("uploads"), Some(b.path().to_path_buf())),
            (PathBuf::from("config.json"), Some(single)),
        ];
        let (files, warnings) = copy_data_parts(&parts, out.path()).unwrap();
        let mut got: Vec<(String, Vec<u8>)> = files
            .iter()
            .filter(|c| !c.dir)
            .map(|c| (c.rel.display().to_string(), std::fs::read(&c.staged).unwrap()))
            .collect();
        got.sort();
        let want = [("config.json", "photo"), ("keyfount.db", "db"), ("uploads/sub/photo.bin", "photo")];
        assert_eq!(got, want.map(|(p, d)| (p.to_string(), d.as_bytes().to_vec())));
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].contains("hidden.txt"), "{warnings:?}");
        // A nested mount left out (None): its files are not copied, nor what it hides.
        let out = tempfile::tempdir().unwrap();
        let (files, _) =
            copy_data_parts(&[parts[0].clone(), (PathBuf::from("uploads"), None)], out.path()).unwrap();
        let got: Vec<PathBuf> = files.iter().filter(|c| !c.dir).map(|c| c.rel.clone()).collect();
        assert_eq!(got, [PathBuf::from("keyfount.db")]);
    }
}
