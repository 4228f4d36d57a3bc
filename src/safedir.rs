//! A directory that other processes may write (a container's data directory, a staging
//! directory inside it), used without ever following a symbolic link.
//!
//! Every call is relative to an open directory descriptor and refuses links (`O_NOFOLLOW`,
//! `AT_SYMLINK_NOFOLLOW`, `linkat` without `AT_SYMLINK_FOLLOW`), owners and modes are set
//! through descriptors (`fchown`, `fchmod`), and files are opened with `O_NONBLOCK` so that a
//! FIFO cannot hang kfadmin. A process that swaps an entry for a link (or a directory for a
//! link to `/etc`) can therefore not make kfadmin, running as root, read, write, chown or
//! chmod anything outside the directory it opened.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, RenameFlags};

use crate::error::{Error, IoContext, Result};

/// What kind of entry a name is (never followed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    File,
    Dir,
    Link,
    Other,
}

/// `lstat` of an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meta {
    pub kind: Kind,
    pub dev: u64,
    pub ino: u64,
    pub size: u64,
    /// Permission bits (`& 0o7777`).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub nlink: u64,
}

impl Meta {
    fn from(st: &rustix::fs::Stat) -> Meta {
        let kind = match FileType::from_raw_mode(st.st_mode) {
            FileType::RegularFile => Kind::File,
            FileType::Directory => Kind::Dir,
            FileType::Symlink => Kind::Link,
            _ => Kind::Other,
        };
        Meta {
            kind,
            dev: st.st_dev,
            ino: st.st_ino,
            size: st.st_size as u64,
            mode: st.st_mode & 0o7777,
            uid: st.st_uid,
            gid: st.st_gid,
            nlink: st.st_nlink,
        }
    }

    /// The same file (device and inode).
    pub fn same(&self, other: &Meta) -> bool {
        self.dev == other.dev && self.ino == other.ino
    }
}

/// Free space on a filesystem, for an unprivileged writer.
#[derive(Debug, Clone, Copy)]
pub struct Space {
    pub bytes: u64,
    pub inodes: u64,
}

/// An open directory; `path` is only for messages.
#[derive(Debug)]
pub struct Dir {
    fd: OwnedFd,
    path: PathBuf,
}

fn io(e: rustix::io::Errno) -> std::io::Error {
    std::io::Error::from(e)
}

impl<T> IoContext<T> for rustix::io::Result<T> {
    fn ctx(self, what: &str, path: &Path) -> Result<T> {
        self.map_err(|e| Error::io(what, path, io(e)))
    }
}

/// A single, plain name (no `/`, not `.` or `..`).
fn check_name(name: &OsStr) -> std::io::Result<&OsStr> {
    let b = name.as_bytes();
    if b.is_empty() || b == b"." || b == b".." || b.contains(&b'/') || b.contains(&0) {
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a plain file name"));
    }
    Ok(name)
}

const DIR_FLAGS: OFlags =
    OFlags::RDONLY.union(OFlags::DIRECTORY).union(OFlags::NOFOLLOW).union(OFlags::CLOEXEC);

impl Dir {
    /// Open the directory at `path`. The path up to it is trusted (the operator gave it, or the
    /// engine did); its last component must not be a link.
    pub fn open(path: &Path) -> Result<Dir> {
        let fd = rustix::fs::open(path, DIR_FLAGS, Mode::empty()).map_err(|e| Self::refused(path, e))?;
        Ok(Dir { fd, path: path.to_path_buf() })
    }

    fn refused(path: &Path, e: rustix::io::Errno) -> Error {
        if e == rustix::io::Errno::LOOP || e == rustix::io::Errno::NOTDIR {
            Error::failed(format!(
                "{} is a symbolic link or not a directory; kfadmin never follows links in a data directory",
                path.display()
            ))
            .hint("look at what replaced it (`ls -la` its parent); move it away, then run kfadmin again")
        } else {
            Error::io("cannot open the directory", path, io(e))
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The path of an entry, for messages.
    pub fn display(&self, name: impl AsRef<Path>) -> PathBuf {
        self.path.join(name)
    }

    /// A path that reaches `name` through this descriptor (`/proc/self/fd/N/name`), for
    /// libraries that take paths (SQLite): the directory cannot be swapped under it.
    pub fn fd_path(&self, name: impl AsRef<Path>) -> PathBuf {
        PathBuf::from(format!("/proc/self/fd/{}", self.fd.as_raw_fd())).join(name)
    }

    pub fn try_clone(&self) -> Result<Dir> {
        let fd = self.fd.try_clone().ctx("cannot duplicate the descriptor of", &self.path)?;
        Ok(Dir { fd, path: self.path.clone() })
    }

    /// `lstat` of an entry; None when it does not exist.
    pub fn meta(&self, name: &OsStr) -> Result<Option<Meta>> {
        let n = check_name(name).ctx("cannot look at", &self.display(name))?;
        match rustix::fs::statat(&self.fd, n, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => Ok(Some(Meta::from(&st))),
            Err(rustix::io::Errno::NOENT) => Ok(None),
            Err(e) => Err(Error::io("cannot look at", &self.display(name), io(e))),
        }
    }

    /// This directory's own `fstat`.
    pub fn self_meta(&self) -> Result<Meta> {
        let st = rustix::fs::fstat(&self.fd).ctx("cannot look at", &self.path)?;
        Ok(Meta::from(&st))
    }

    /// A sub-directory; a link or anything else is refused.
    pub fn open_dir(&self, name: &OsStr) -> Result<Dir> {
        let path = self.display(name);
        let n = check_name(name).ctx("cannot open", &path)?;
        let fd =
            rustix::fs::openat(&self.fd, n, DIR_FLAGS, Mode::empty()).map_err(|e| Self::refused(&path, e))?;
        Ok(Dir { fd, path })
    }

    /// A new sub-directory with exactly `mode` (not masked by the umask).
    pub fn mkdir(&self, name: &OsStr, mode: u32) -> Result<Dir> {
        let path = self.display(name);
        let n = check_name(name).ctx("cannot create", &path)?;
        rustix::fs::mkdirat(&self.fd, n, Mode::from_raw_mode(0o700)).ctx("cannot create", &path)?;
        let d = self.open_dir(name)?;
        rustix::fs::fchmod(&d.fd, Mode::from_raw_mode(mode)).ctx("cannot set the mode of", &path)?;
        Ok(d)
    }

    /// The directory at `rel` below this one, component by component, never through a link.
    /// Missing directories are created with mode `create` when given.
    pub fn walk(&self, rel: &Path, create: Option<u32>) -> Result<Dir> {
        let mut cur = self.try_clone()?;
        for c in rel.components() {
            let Component::Normal(name) = c else {
                return Err(Error::failed(format!("{} is not a plain relative path", rel.display())));
            };
            cur = match (cur.meta(name)?, create) {
                (None, Some(mode)) => cur.mkdir(name, mode)?,
                _ => cur.open_dir(name)?,
            };
        }
        Ok(cur)
    }

    /// Open a regular file for reading; a link, FIFO, device or directory is refused.
    pub fn open_file(&self, name: &OsStr) -> Result<File> {
        let path = self.display(name);
        let n = check_name(name).ctx("cannot read", &path)?;
        let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK | OFlags::NOCTTY;
        let fd = rustix::fs::openat(&self.fd, n, flags, Mode::empty()).map_err(|e| {
            if e == rustix::io::Errno::LOOP {
                Error::failed(format!(
                    "{} is a symbolic link; kfadmin never follows links in a data directory",
                    path.display()
                ))
            } else {
                Error::io("cannot read", &path, io(e))
            }
        })?;
        let st = rustix::fs::fstat(&fd).ctx("cannot read", &path)?;
        if Meta::from(&st).kind != Kind::File {
            return Err(Error::failed(format!("{} is not a regular file", path.display())));
        }
        Ok(File::from(fd))
    }

    /// Create a new file (never replacing anything, never through a link) with `mode`.
    pub fn create_file(&self, name: &OsStr, mode: u32) -> Result<File> {
        let path = self.display(name);
        let n = check_name(name).ctx("cannot create", &path)?;
        let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let fd =
            rustix::fs::openat(&self.fd, n, flags, Mode::from_raw_mode(mode)).ctx("cannot create", &path)?;
        rustix::fs::fchmod(&fd, Mode::from_raw_mode(mode)).ctx("cannot set the mode of", &path)?;
        Ok(File::from(fd))
    }

    /// Rename `name` to `to/to_name`, replacing what is there (`renameat`; links are renamed,
    /// never followed).
    pub fn rename(&self, name: &OsStr, to: &Dir, to_name: &OsStr) -> Result<()> {
        let (a, b) = (check_name(name), check_name(to_name));
        let (a, b) =
            (a.ctx("cannot move", &self.display(name))?, b.ctx("cannot move", &to.display(to_name))?);
        rustix::fs::renameat(&self.fd, a, &to.fd, b).ctx("cannot move", &self.display(name))
    }

    /// Rename `name` to `to/to_name`, failing when `to_name` exists.
    pub fn rename_new(&self, name: &OsStr, to: &Dir, to_name: &OsStr) -> Result<()> {
        let (a, b) = (check_name(name), check_name(to_name));
        let (a, b) =
            (a.ctx("cannot move", &self.display(name))?, b.ctx("cannot move", &to.display(to_name))?);
        rustix::fs::renameat_with(&self.fd, a, &to.fd, b, RenameFlags::NOREPLACE)
            .ctx("cannot move", &self.display(name))
    }

    /// A hard link `to/to_name` of `name` (a link is linked, never followed).
    pub fn link(&self, name: &OsStr, to: &Dir, to_name: &OsStr) -> Result<()> {
        let (a, b) = (check_name(name), check_name(to_name));
        let (a, b) =
            (a.ctx("cannot link", &self.display(name))?, b.ctx("cannot link", &to.display(to_name))?);
        rustix::fs::linkat(&self.fd, a, &to.fd, b, AtFlags::empty()).ctx("cannot link", &self.display(name))
    }

    /// Remove a file or link (not a directory).
    pub fn unlink(&self, name: &OsStr) -> Result<()> {
        let n = check_name(name).ctx("cannot remove", &self.display(name))?;
        rustix::fs::unlinkat(&self.fd, n, AtFlags::empty()).ctx("cannot remove", &self.display(name))
    }

    /// Remove an empty directory.
    pub fn rmdir(&self, name: &OsStr) -> Result<()> {
        let n = check_name(name).ctx("cannot remove", &self.display(name))?;
        rustix::fs::unlinkat(&self.fd, n, AtFlags::REMOVEDIR).ctx("cannot remove", &self.display(name))
    }

    /// Remove an entry and, for a directory, everything in it; links are removed, not followed.
    pub fn remove_all(&self, name: &OsStr) -> Result<()> {
        match self.meta(name)? {
            None => Ok(()),
            Some(m) if m.kind == Kind::Dir => {
                let sub = self.open_dir(name)?;
                for e in sub.entries()? {
                    sub.remove_all(&e)?;
                }
                drop(sub);
                let n = check_name(name).ctx("cannot remove", &self.display(name))?;
                rustix::fs::unlinkat(&self.fd, n, AtFlags::REMOVEDIR)
                    .ctx("cannot remove", &self.display(name))
            }
            Some(_) => self.unlink(name),
        }
    }

    /// The names in this directory (without `.` and `..`), sorted.
    pub fn entries(&self) -> Result<Vec<OsString>> {
        let rd = rustix::fs::Dir::read_from(&self.fd).ctx("cannot read the directory", &self.path)?;
        let mut out = Vec::new();
        for e in rd {
            let e = e.ctx("cannot read the directory", &self.path)?;
            let n = e.file_name().to_bytes();
            if n != b"." && n != b".." {
                out.push(OsStr::from_bytes(n).to_os_string());
            }
        }
        out.sort();
        Ok(out)
    }

    pub fn chown(&self, uid: u32, gid: u32) -> Result<()> {
        set_owner(self.fd.as_fd(), uid, gid, &self.path)
    }

    pub fn chmod(&self, mode: u32) -> Result<()> {
        rustix::fs::fchmod(&self.fd, Mode::from_raw_mode(mode)).ctx("cannot set the mode of", &self.path)
    }

    /// Flush everything written on this directory's filesystem (`syncfs`), the directory too.
    pub fn sync_filesystem(&self) -> Result<()> {
        rustix::fs::syncfs(&self.fd).ctx("cannot sync the filesystem of", &self.path)
    }

    pub fn sync(&self) -> Result<()> {
        rustix::fs::fsync(&self.fd).ctx("cannot sync the directory", &self.path)
    }

    /// The mount this directory is on (`statx` `STATX_MNT_ID`), when the kernel says: a rename
    /// between two directories works only within one mount.
    pub fn mount_id(&self) -> Option<u64> {
        let st = rustix::fs::statx(&self.fd, "", AtFlags::EMPTY_PATH, rustix::fs::StatxFlags::MNT_ID).ok()?;
        (st.stx_mask & rustix::fs::StatxFlags::MNT_ID.bits() != 0).then_some(st.stx_mnt_id)
    }

    /// Refuse unless the filesystem has room for `need` bytes with a tenth more (at least 64
    /// MiB) to spare, and inodes for `entries` files and directories with room to spare: a
    /// filesystem shared with a live server (whose WAL keeps growing) is never filled up.
    /// `what` says what needs the room ("to unpack the backup"), `hint` what to do instead.
    pub fn ensure_room(&self, need: u64, entries: u64, what: &str, hint: &str) -> Result<()> {
        let headroom = (need / 10).max(64 << 20);
        let free = self.space()?;
        if free.bytes < need.saturating_add(headroom) {
            return Err(Error::failed(format!(
                "not enough space in {} {what}: {} MiB needed with {} MiB to spare, {} MiB free",
                self.path.display(),
                need >> 20,
                headroom >> 20,
                free.bytes >> 20
            ))
            .hint(hint.to_string()));
        }
        if free.inodes != 0 && free.inodes < entries + entries / 10 + 1000 {
            return Err(Error::failed(format!(
                "not enough inodes in {} {what}: {entries} files and directories, {} inodes free",
                self.path.display(),
                free.inodes
            ))
            .hint(hint.to_string()));
        }
        Ok(())
    }

    /// Free bytes and inodes on this directory's filesystem.
    pub fn space(&self) -> Result<Space> {
        let s = rustix::fs::fstatvfs(&self.fd).ctx("cannot read the free space of", &self.path)?;
        Ok(Space { bytes: s.f_bavail.saturating_mul(s.f_frsize), inodes: s.f_favail })
    }
}

/// `fchown` through a descriptor (never a path).
pub fn set_owner(fd: impl AsFd, uid: u32, gid: u32, what: &Path) -> Result<()> {
    let (u, g) = (rustix::fs::Uid::from_raw(uid), rustix::fs::Gid::from_raw(gid));
    rustix::fs::fchown(fd, Some(u), Some(g)).ctx("cannot set the owner of", what)
}

/// `fchmod` through a descriptor (never a path).
pub fn set_mode(fd: impl AsFd, mode: u32, what: &Path) -> Result<()> {
    rustix::fs::fchmod(fd, Mode::from_raw_mode(mode)).ctx("cannot set the mode of", what)
}

/// `fstat` of an open file.
pub fn meta_of(fd: impl AsFd, what: &Path) -> Result<Meta> {
    let st = rustix::fs::fstat(fd).ctx("cannot look at", what)?;
    Ok(Meta::from(&st))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn links_are_never_followed() {
        let t = tempfile::tempdir().unwrap();
        let outside = t.path().join("outside");
        std::fs::create_dir(&outside).unwrap();
        std::fs::write(outside.join("secret"), b"s").unwrap();
        let data = t.path().join("data");
        std::fs::create_dir(&data).unwrap();
        symlink(&outside, data.join("sub")).unwrap();
        symlink(outside.join("secret"), data.join("file")).unwrap();
        let d = Dir::open(&data).unwrap();
        assert!(d.open_dir(OsStr::new("sub")).is_err());
        assert!(d.walk(Path::new("sub/x"), Some(0o700)).is_err());
        assert!(d.open_file(OsStr::new("file")).is_err());
        assert!(d.create_file(OsStr::new("file"), 0o600).is_err());
        assert_eq!(d.meta(OsStr::new("file")).unwrap().unwrap().kind, Kind::Link);
        d.remove_all(OsStr::new("sub")).unwrap();
        assert!(outside.join("secret").exists(), "removing a link leaves its target");
        assert!(Dir::open(&data.join("file")).is_err());
    }

    #[test]
    fn fifo_is_refused_without_hanging() {
        let t = tempfile::tempdir().unwrap();
        let fifo = t.path().join("fifo");
        rustix::fs::mknodat(rustix::fs::CWD, &fifo, FileType::Fifo, Mode::from_raw_mode(0o600), 0).unwrap();
        let d = Dir::open(t.path()).unwrap();
        assert!(d.open_file(OsStr::new("fifo")).is_err());
    }

    #[test]
    fn names_must_be_plain() {
        let t = tempfile::tempdir().unwrap();
        let d = Dir::open(t.path()).unwrap();
        for bad in ["..", ".", "a/b", ""] {
            assert!(d.create_file(OsStr::new(bad), 0o600).is_err(), "{bad}");
        }
    }
}
