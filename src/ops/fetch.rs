//! Downloads from a remote location into a private staging directory (0700, under the state
//! directory or `--tmp-dir`; never beside any data): an archive and its `.sha256` sidecar,
//! so the reader checks the download exactly as it checks a local file.

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};

use crate::error::Result;
use crate::ops::staging::{Staging, STAGING_PREFIX};
use crate::progress::{Progress, Unit};
use crate::store::{Remote, SIDECAR_MAX};

/// A downloaded archive; removed with its staging directory when dropped.
pub struct Fetched {
    staging: Staging,
    name: OsString,
    /// The archive's `s3://` URL.
    pub url: String,
    pub bytes: u64,
}

impl Fetched {
    /// A path to the download (through the staging directory's descriptor).
    pub fn path(&self) -> PathBuf {
        self.staging.fd_path(&self.name)
    }

    /// A verdict on the download, told about the remote archive: its URL, not the download's
    /// private path.
    pub fn relabel(&self, v: &mut crate::archive::reader::Verdict) {
        let local = self.path().to_string_lossy().into_owned();
        for c in &mut v.checks {
            if c.detail.contains(&local) {
                c.detail = c.detail.replace(&local, &self.url);
            }
        }
        v.archive = PathBuf::from(&self.url);
    }
}

/// Download `name` (and its sidecar, when there is one) from `remote`. An archive that is not
/// there is bad input (exit 2).
pub fn fetch(
    remote: &Remote,
    name: &str,
    tmp_dir: Option<&Path>,
    progress: &dyn Progress,
) -> Result<Fetched> {
    let url = remote.url.object(name);
    let Some(head) = remote.head(name)? else {
        // A HEAD cannot tell a missing bucket from a missing object: a listing can.
        remote.probe()?;
        return Err(crate::Error::usage(format!("archive {url} does not exist"))
            .hint(format!("`kfadmin list {}` shows the archives there", remote.url)));
    };
    let staging = Staging::private(tmp_dir, STAGING_PREFIX)?;
    let what = format!("for a download of {url}");
    staging.dir().ensure_room(
        head.bytes,
        2,
        &what,
        "pass --tmp-dir DIR: a private directory on a filesystem with room",
    )?;
    let sidecar = format!("{name}.sha256");
    if let Some(text) = remote.get_small(&sidecar, SIDECAR_MAX)? {
        let mut f = staging.dir().create_file(OsStr::new(&sidecar), 0o600)?;
        std::io::Write::write_all(&mut f, &text)
            .map_err(|e| crate::Error::io("cannot write", &staging.path().join(&sidecar), e))?;
    }
    let mut file = staging.dir().create_file(OsStr::new(name), 0o600)?;
    let stage = progress.stage("download", head.bytes, Unit::Bytes);
    let bytes = remote.download(name, &mut file, stage.as_ref())?;
    stage.finish();
    file.sync_all().map_err(|e| crate::Error::io("cannot write", &staging.path().join(name), e))?;
    Ok(Fetched { staging, name: OsString::from(name), url, bytes })
}
