//! Filesystems `replicate` refuses (issue 18, rule 6): where SQLite's shared memory (the
//! `-shm` file, mapped by every connection) and the `-wal` are not coherent between the server
//! and kfadmin. The server's read marks and WAL index would not be seen, so a copy of "newly
//! committed frames" could be torn or stale, and a restore point built from it wrong.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// A filesystem kind that cannot work, found by `statfs`'s `f_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused {
    /// The kernel's name for it.
    pub name: &'static str,
    /// What typically puts a data directory there.
    pub seen_as: &'static str,
}

/// `f_type` values (linux/magic.h and the filesystems' own headers) of filesystems whose
/// pages are not shared coherently between processes on both sides of the mount: network and
/// cluster filesystems (each side caches), FUSE (the daemon's files are not the pages a
/// `mmap` sees; virtiofs is FUSE too) and hypervisor shares.
pub fn refused(f_type: u64) -> Option<Refused> {
    let r = |name, seen_as| Some(Refused { name, seen_as });
    match f_type {
        0x6573_5546 => r(
            "FUSE",
            "virtiofs (Docker Desktop, Podman machine, Lima), bindfs, sshfs, s3fs, gcsfuse, GlusterFS, vmhgfs-fuse, ntfs-3g",
        ),
        0x0102_1997 => r("9p (v9fs)", "WSL 2 drive shares, QEMU and older Docker Desktop file sharing"),
        0x6969 => r("NFS", "a network share"),
        0x517b => r("SMB", "a Windows or Samba share"),
        0xff53_4d42 => r("CIFS", "a Windows or Samba share"),
        0xfe53_4d42 => r("SMB2/3", "a Windows or Samba share"),
        0x00c3_6400 => r("CephFS", "a Ceph cluster share"),
        0x0bd0_0bd0 => r("Lustre", "a cluster share"),
        0x4750_4653 => r("GPFS (IBM Spectrum Scale)", "a cluster share"),
        0x5346_414f | 0x6b41_4653 => r("AFS", "a network share"),
        0x7375_7245 => r("Coda", "a network share"),
        0x786f_4256 => r("vboxsf", "VirtualBox shared folders (Vagrant)"),
        _ => None,
    }
}

/// The mount `path` is on, from /proc/self/mountinfo: (mount point, type, source), for the
/// message ("fuse.sshfs from host:/srv"). None when it cannot be read.
fn mount_of(path: &Path) -> Option<(PathBuf, String, String)> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    let unescape = |s: &str| s.replace("\\040", " ").replace("\\011", "\t").replace("\\134", "\\");
    text.lines()
        .filter_map(|l| {
            let (left, right) = l.split_once(" - ")?;
            let point = PathBuf::from(unescape(left.split(' ').nth(4)?));
            let mut r = right.split(' ');
            let (kind, source) = (r.next()?.to_string(), unescape(r.next()?));
            path.starts_with(&point).then_some((point, kind, source))
        })
        .max_by_key(|(p, _, _)| p.components().count())
}

/// Refuse (exit 2) a database whose directory `dir` is on a filesystem in [`refused`], naming
/// the filesystem and the mount, and saying what to do; `what` says whose data it is.
pub fn check(dir: &Path, what: &str) -> Result<()> {
    let st = match rustix::fs::statfs(dir) {
        Ok(st) => st,
        // Not readable here: the caller's own open says why.
        Err(_) => return Ok(()),
    };
    #[allow(clippy::unnecessary_cast)]
    let Some(fs) = refused(st.f_type as u64) else {
        return Ok(());
    };
    let canonical = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    let mount = mount_of(&canonical)
        .map(|(p, kind, source)| format!(" (mounted at {}, type {kind}, from {source})", p.display()))
        .unwrap_or_default();
    Err(Error::usage(format!(
        "{what} is in {}, on a {} filesystem{mount}: SQLite's shared memory (the -shm file) and its -wal are not coherent across such a mount, so kfadmin could not see the server's commits and read marks as the server does, and a restore point could be torn; replicate refuses it ({} filesystems: {})",
        dir.display(),
        fs.name,
        fs.name,
        fs.seen_as
    ))
    .hint(
        "keep Keyfount's data on a local filesystem of the machine that runs both the server and kfadmin (a Docker named volume, or a directory on ext4/xfs/btrfs/zfs), or run kfadmin on that machine; until then take scheduled backups (`kfadmin backup --online`), which need no shared memory",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_f_type_table_refuses_shares_and_fuse_and_passes_local_filesystems() {
        for (magic, name) in [
            (0x6573_5546, "FUSE"),
            (0x0102_1997, "9p (v9fs)"),
            (0x6969, "NFS"),
            (0xff53_4d42, "CIFS"),
            (0xfe53_4d42, "SMB2/3"),
            (0x517b, "SMB"),
            (0x00c3_6400, "CephFS"),
            (0x786f_4256, "vboxsf"),
        ] {
            assert_eq!(refused(magic).map(|r| r.name), Some(name), "{magic:#x}");
        }
        assert!(refused(0x6573_5546).unwrap().seen_as.contains("virtiofs"));
        // ext4, xfs, btrfs, tmpfs, overlayfs, zfs: one kernel, one page cache.
        for local in [0xef53, 0x5846_5342, 0x9123_683e, 0x0102_1994, 0x794c_7630, 0x2fc1_2fc1] {
            assert_eq!(refused(local), None, "{local:#x}");
        }
    }

    #[test]
    fn a_local_directory_passes() {
        let d = std::env::temp_dir();
        check(&d, "the test's database").unwrap();
    }
}
