//! Small filesystem helpers shared by the commands: private directories, fsync, hashing,
//! and a guard that removes a half-written file unless it was finished.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::error::{check_interrupt, Error, IoContext, Kind, Result};
use crate::progress::Stage;

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
    let mut f = File::open(path).ctx("cannot read", path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0u64;
    loop {
        check_interrupt()?;
        let k = f.read(&mut buf).ctx("cannot read", path)?;
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
    let _ = std::fs::remove_file(&tmp);
    let guard = Partial::new(tmp.clone());
    let mut f = create_new(&tmp, mode)?;
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

/// Free bytes for an unprivileged writer on the filesystem that holds `path`.
pub fn free_space(path: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    // SAFETY: valid C string and a zeroed statvfs for the call to fill.
    let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::statvfs(c.as_ptr(), &mut s) };
    (rc == 0).then(|| s.f_bavail as u64 * s.f_frsize as u64)
}

/// The system's host name, for the manifest.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".to_string())
}

/// Copy `src` to a new file `dst` (mode 0600): a reflink where the filesystem can share
/// blocks (btrfs, XFS), an in-kernel copy otherwise. Returns whether it was a reflink.
pub fn clone_or_copy(src: &Path, dst: &Path) -> Result<bool> {
    use std::os::unix::io::AsRawFd;
    const FICLONE: libc::c_ulong = 0x4004_9409;
    let from = File::open(src).ctx("cannot read", src)?;
    let to = create_new(dst, 0o600)?;
    // SAFETY: two valid descriptors; FICLONE only reads the source and fills the target.
    let rc = unsafe { libc::ioctl(to.as_raw_fd(), FICLONE as _, from.as_raw_fd()) };
    if rc == 0 {
        return Ok(true);
    }
    let mut from = from;
    let mut to = to;
    io::copy(&mut from, &mut to).ctx("cannot copy into", dst)?;
    Ok(false)
}

/// A file of a data directory, copied aside.
#[derive(Debug, Clone)]
pub struct Copied {
    /// Relative to the data directory.
    pub rel: PathBuf,
    pub staged: PathBuf,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub reflinked: bool,
}

/// Copy a (stopped) data directory into `dst`: every regular file, recursively, except SQLite's
/// `-shm` files, empty `-wal` files and kfadmin's own `.kfadmin-*` entries. Anything else (a
/// symlink, a socket) is skipped with a warning. A non-empty `-wal` is an error: fold it first.
pub fn copy_data_dir(src: &Path, dst: &Path) -> Result<(Vec<Copied>, Vec<String>)> {
    use std::os::unix::fs::MetadataExt;
    let mut out = Vec::new();
    let mut warnings = Vec::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel_dir) = stack.pop() {
        let dir = src.join(&rel_dir);
        let mut names: Vec<_> = std::fs::read_dir(&dir)
            .ctx("cannot read the directory", &dir)?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<io::Result<_>>()
            .ctx("cannot read the directory", &dir)?;
        names.sort();
        for name in names {
            check_interrupt()?;
            let text = name.to_string_lossy();
            let rel = rel_dir.join(&name);
            let path = src.join(&rel);
            let meta = path.symlink_metadata().ctx("cannot read", &path)?;
            if text.starts_with(".kfadmin-") || text.ends_with("-shm") {
                continue;
            }
            if text.ends_with("-wal") && meta.is_file() {
                if meta.len() > 0 {
                    return Err(Error::failed(format!(
                        "{} holds frames that were not checkpointed",
                        path.display()
                    )));
                }
                continue;
            }
            if meta.is_dir() {
                std::fs::DirBuilder::new()
                    .mode(0o700)
                    .create(dst.join(&rel))
                    .ctx("cannot create", &dst.join(&rel))?;
                stack.push(rel);
            } else if meta.is_file() {
                let staged = dst.join(&rel);
                let reflinked = clone_or_copy(&path, &staged)?;
                out.push(Copied {
                    rel,
                    staged,
                    mode: meta.mode() & 0o7777,
                    uid: meta.uid(),
                    gid: meta.gid(),
                    reflinked,
                });
            } else {
                warnings.push(format!("{} is not a regular file; it is not in the backup", path.display()));
            }
        }
    }
    Ok((out, warnings))
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
    let mut out = Vec::new();
    let mut warnings = Vec::new();
    for (i, (rel, src)) in parts.iter().enumerate() {
        let Some(src) = src else { continue };
        let sub = dst.join(format!("part-{i}"));
        std::fs::DirBuilder::new().mode(0o700).create(&sub).ctx("cannot create", &sub)?;
        let (files, w) = match src.symlink_metadata() {
            // A single file mounted into the data directory (`-v /srv/kf/x.json:/data/x.json`).
            Ok(m) if m.is_file() => (vec![copy_one(src, &sub.join("file"), m)?], vec![]),
            _ => copy_data_dir(src, &sub)?,
        };
        warnings.extend(w);
        let deeper: Vec<&PathBuf> =
            parts.iter().map(|(r, _)| r).filter(|r| *r != rel && r.starts_with(rel)).collect();
        let mut hidden = Vec::new();
        for mut c in files {
            c.rel = if c.rel.as_os_str().is_empty() { rel.clone() } else { rel.join(&c.rel) };
            match deeper.iter().find(|d| c.rel.starts_with(d)) {
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
    use std::os::unix::fs::MetadataExt;
    let reflinked = clone_or_copy(src, staged)?;
    Ok(Copied {
        rel: PathBuf::new(),
        staged: staged.to_path_buf(),
        mode: meta.mode() & 0o7777,
        uid: meta.uid(),
        gid: meta.gid(),
        reflinked,
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
        let mut got: Vec<(String, Vec<u8>)> =
            files.iter().map(|c| (c.rel.display().to_string(), std::fs::read(&c.staged).unwrap())).collect();
        got.sort();
        let want = [("config.json", "photo"), ("keyfount.db", "db"), ("uploads/sub/photo.bin", "photo")];
        assert_eq!(got, want.map(|(p, d)| (p.to_string(), d.as_bytes().to_vec())));
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].contains("hidden.txt"), "{warnings:?}");
        // A nested mount left out (None): its files are not copied, nor what it hides.
        let out = tempfile::tempdir().unwrap();
        let (files, _) =
            copy_data_parts(&[parts[0].clone(), (PathBuf::from("uploads"), None)], out.path()).unwrap();
        assert_eq!(files.iter().map(|c| c.rel.clone()).collect::<Vec<_>>(), [PathBuf::from("keyfount.db")]);
    }
}
