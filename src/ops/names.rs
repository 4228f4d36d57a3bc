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

/// What is wrong when an archive's file name and its manifest disagree on when and how it was
/// made (None: they agree, or the name is not an archive's). A bucket or a directory others
/// can write to may hold a file renamed to pass for a newer backup: said, never silently
/// taken for what its name claims.
pub fn name_problem(archive: &Path, m: &crate::archive::Manifest) -> Option<String> {
    let file_name = archive.file_name()?.to_string_lossy().into_owned();
    let p = crate::archive::catalog::parse(&file_name)?;
    if p.created_unix == m.created_unix && p.mode == m.mode {
        return None;
    }
    // A manifest is the archive's word, not kfadmin's: a time past year 9999 is shown as a number.
    let at = |unix: u64| match unix {
        0..=253_402_300_799 => {
            humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + std::time::Duration::from_secs(unix))
                .to_string()
        }
        _ => format!("{unix} s after 1970"),
    };
    Some(format!(
        "{} is not what its name says: the name says {} {}, its manifest {} {} (renamed, or put there as another archive)",
        archive.display(),
        at(p.created_unix),
        p.mode.as_str(),
        at(m.created_unix),
        m.mode.as_str()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_its_manifest_disagrees_with_is_said_whatever_the_manifest_holds() {
        let json = |unix: u64, mode: &str| {
            serde_json::json!({
                "format": "kfadmin-backup", "format_version": 1, "kfadmin_version": "0",
                "created": "x", "created_unix": unix, "mode": mode,
                "source": {"kind": "path", "path": "/d/keyfount.db", "host": "h"},
                "files": [], "database": {"page_size": 4096, "page_count": 1, "journal_mode": "wal",
                "user_version": 0, "schema_version": null, "tables": {}}
            })
        };
        let name = Path::new("/b/kf-20261126T030000Z-online.tar.gz");
        let parse = |v: serde_json::Value| serde_json::from_value::<crate::archive::Manifest>(v);
        let same = parse(json(1_795_662_000, "online")).unwrap();
        assert_eq!(name_problem(name, &same), None);
        let cold = parse(json(1_795_662_000, "cold")).unwrap();
        assert!(name_problem(name, &cold).unwrap().contains("its manifest 2026-11-26T03:00:00Z cold"));
        let far = parse(json(u64::MAX, "online")).unwrap();
        assert!(name_problem(name, &far).unwrap().contains("s after 1970"));
        assert_eq!(name_problem(Path::new("/b/notes.txt"), &far), None);
    }
}
