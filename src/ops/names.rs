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

/// Every archive in the repository, newest first.
pub fn archives(repo: &Path) -> Result<Vec<Entry>> {
    Store::open(&Location::from_path(repo)?)?.scan()
}
