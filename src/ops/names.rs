//! Archive names an operator can type: `latest`, or the bare file name `list` prints, resolved
//! against the repository (restic's `latest`, borg's `REPO::NAME`).

use std::path::{Path, PathBuf};

use crate::archive::catalog::Entry;
use crate::archive::Mode;
use crate::error::{Error, Result};
use crate::store::{is_remote_path, Location, Store};

/// The word that names the newest backup (not a pre-restore safety copy) in the repository.
pub const LATEST: &str = "latest";

/// The archive `arg` names: an existing path or a URL as given; `latest`; or a bare file name
/// in `repo`. Anything else is returned as given, for the caller to report.
pub fn resolve(arg: &Path, repo: &Path) -> Result<PathBuf> {
    if is_remote_path(arg) || arg.symlink_metadata().is_ok() {
        return Ok(arg.to_path_buf());
    }
    let bare = arg.components().count() == 1 && arg.parent().is_some_and(|p| p.as_os_str().is_empty());
    if !bare {
        return Ok(arg.to_path_buf());
    }
    let entries = archives(repo)?;
    if arg.as_os_str() == LATEST {
        return entries.into_iter().find(|e| e.mode != Mode::PreRestore).map(|e| e.path).ok_or_else(|| {
            Error::usage(format!("there is no backup in {} for `latest` to name", repo.display()))
                .hint("take one with kfadmin backup, or give -r/--repo the repository that holds them")
        });
    }
    let name = arg.to_string_lossy();
    match entries.into_iter().find(|e| e.file_name == name) {
        Some(e) => Ok(e.path),
        None => Err(Error::usage(format!(
            "archive {name} is neither a file here nor an archive in {}",
            repo.display()
        ))
        .hint("run kfadmin list -r REPO to see the names it holds, or give the archive's full path")),
    }
}

/// Why a local archive path cannot be used, when it cannot: it does not exist (bad input,
/// exit 2), it is not a file, or it cannot be looked at. A repository is mode 0700 and root's:
/// for another user every archive in it answers "permission denied", which is not "does not
/// exist", and the way out is to run as root.
pub fn unusable(archive: &Path) -> Option<Error> {
    match std::fs::metadata(archive) {
        Ok(m) if m.is_file() => None,
        Ok(_) => Some(
            Error::usage(format!("archive {} is not a file", archive.display()))
                .hint("pass the path of a .tar.gz that kfadmin backup wrote, or a name kfadmin list prints"),
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Some(
            Error::usage(format!("archive {} does not exist", archive.display()))
                .hint("pass the path of a .tar.gz that kfadmin backup wrote, or a name kfadmin list prints"),
        ),
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            let who =
                if rustix::process::geteuid().is_root() { "" } else { " (kfadmin is not running as root)" };
            Some(
                Error::failed(format!("cannot read archive {}{who}", archive.display()))
                .hint("kfadmin's repositories are mode 0700, owned by root: run it as root (`sudo kfadmin …`)")
                .source(e),
            )
        }
        Err(e) => Some(Error::io("cannot read archive", archive, e)),
    }
}

/// Every archive in the repository, newest first.
pub fn archives(repo: &Path) -> Result<Vec<Entry>> {
    Store::open(&Location::from_path(repo)?)?.scan()
}
