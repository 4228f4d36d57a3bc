//! Offsite copies of a verified local archive: the archive, then its `.sha256` sidecar (so an
//! object with a sidecar is always complete), each to `PREFIX/<file name>`, then checked: the
//! size the store holds, the sidecar read back, and with `verify` the whole object read back
//! and hashed. A copy that fails is removed again; the local archive is never touched.

use std::time::Instant;

use serde::Serialize;

use crate::archive::writer::Written;
use crate::error::{Error, Kind, Result};
use crate::progress::{Notice, Unit};
use crate::store::{Remote, S3Url, SIDECAR_MAX};

/// One destination's outcome (the `--json` report's `offsite` entries).
#[derive(Debug, Clone, Serialize)]
pub struct Uploaded {
    /// The uploaded archive's `s3://` URL.
    pub url: String,
    pub bytes: u64,
    /// Archive and sidecar transfer, not the check after it.
    pub upload_ms: u64,
    pub ok: bool,
    pub error: Option<String>,
    /// What to do about the error.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
    /// The exit code this failure calls for (2: a missing bucket or refused credentials).
    #[serde(skip)]
    pub kind: Option<Kind>,
    /// The location (for metrics, one series per destination).
    #[serde(skip)]
    pub location: String,
}

/// Parse the destinations, before any work (a malformed URL is a usage error, exit 2).
pub fn destinations(to: &[String]) -> Result<Vec<S3Url>> {
    let mut out: Vec<S3Url> = Vec::new();
    for t in to.iter().map(|t| t.trim()).filter(|t| !t.is_empty()) {
        if !crate::store::is_remote(t) {
            return Err(Error::usage(format!("--to {t:?} is not an s3:// location"))
                .hint("--to takes s3://BUCKET[/PREFIX]; the local directory is -r/--repo"));
        }
        let url = S3Url::parse(t)?;
        if !out.contains(&url) {
            out.push(url);
        }
    }
    Ok(out)
}

/// Upload `written` to `dest` and check it. Err only when interrupted (exit 130): every other
/// failure is in the result, for the report.
pub fn upload(dest: &S3Url, written: &Written, verify: bool, n: &dyn Notice) -> Result<Uploaded> {
    let name = written.path.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default();
    let mut done = Uploaded {
        url: dest.object(&name),
        bytes: 0,
        upload_ms: 0,
        ok: false,
        error: None,
        hint: None,
        kind: None,
        location: dest.to_string(),
    };
    match copy(dest, written, &name, verify, n, &mut done) {
        Ok(()) => done.ok = true,
        Err(e) if e.kind == Kind::Interrupted => return Err(e),
        Err(e) => {
            n.warn(&format!(
                "{}{}",
                e.chain(),
                e.hint.as_deref().map(|h| format!(" ({h})")).unwrap_or_default()
            ));
            done.error = Some(e.chain());
            done.hint = e.hint;
            done.kind = Some(e.kind);
        }
    }
    Ok(done)
}

fn copy(
    dest: &S3Url,
    w: &Written,
    name: &str,
    verify: bool,
    n: &dyn Notice,
    done: &mut Uploaded,
) -> Result<()> {
    let remote = Remote::connect(dest)?;
    if remote.head(name)?.is_some() {
        return Err(Error::failed(format!(
            "{} already exists; kfadmin never replaces an offsite archive",
            done.url
        ))
        .hint(
            "another host writes archives of the same name there: give each host its own prefix or --name",
        ));
    }
    let sidecar_name = format!("{name}.sha256");
    let sidecar = std::fs::read(&w.sidecar).map_err(|e| Error::io("cannot read", &w.sidecar, e))?;
    n.note(&format!("Uploading {} to {}", indicatif::BinaryBytes(w.bytes), done.url));
    let t = Instant::now();
    let file = std::fs::File::open(&w.path).map_err(|e| Error::io("cannot read", &w.path, e))?;
    let stage = n.progress().stage("upload", w.bytes, Unit::Bytes);
    done.bytes = remote.upload(name, file, stage.as_ref())?;
    stage.finish();
    // From here on a copy without its sidecar, or one that fails its check, goes again.
    let checked = remote
        .put_small(&sidecar_name, sidecar.clone())
        .inspect(|()| done.upload_ms = t.elapsed().as_millis() as u64)
        .and_then(|()| check(&remote, w, name, &sidecar, verify, n));
    if let Err(e) = checked {
        let _ = remote.delete(&sidecar_name);
        let _ = remote.delete(name);
        return Err(e);
    }
    n.detail(&format!("uploaded {} in {} ms and checked it", done.url, done.upload_ms));
    Ok(())
}

/// What the store holds is what was written: its size and sidecar, and with `verify` its
/// sha256 (the whole object read back).
fn check(
    remote: &Remote,
    w: &Written,
    name: &str,
    sidecar: &[u8],
    verify: bool,
    n: &dyn Notice,
) -> Result<()> {
    let url = remote.url.object(name);
    let held = remote.head(name)?.map(|o| o.bytes);
    if held != Some(w.bytes) {
        return Err(Error::failed(format!(
            "{url} holds {} bytes after the upload, not {}",
            held.map(|b| b.to_string()).unwrap_or_else(|| "no".into()),
            w.bytes
        ))
        .hint("the copy was removed; run the backup again"));
    }
    let back = remote.get_small(&format!("{name}.sha256"), SIDECAR_MAX)?;
    if back.as_deref() != Some(sidecar) {
        return Err(Error::failed(format!("{url}.sha256 does not read back as it was written"))
            .hint("the copy was removed; run the backup again"));
    }
    if verify {
        let stage = n.progress().stage("verify offsite", w.bytes, Unit::Bytes);
        let (sha, _) =
            crate::fsutil::sha256_reader(remote.reader(name)?, Some(stage.as_ref())).map_err(|e| match e
                .downcast::<Error>()
            {
                Ok(e) => e,
                Err(e) => Error::failed(format!("cannot read {url} back")).source(e),
            })?;
        stage.finish();
        if sha != w.sha256 {
            return Err(Error::new(
                Kind::Verification,
                format!("{url} read back has sha256 {sha}, not {}", w.sha256),
            )
            .hint("the copy was removed; check the storage service, then run the backup again"));
        }
    }
    Ok(())
}

/// The exit code of a backup whose offsite copies are `done`: 0 when all went, 2 when one
/// failed for bad input (a missing bucket, refused credentials), else 1.
pub fn exit_code(done: &[Uploaded]) -> u8 {
    let failed: Vec<Kind> = done.iter().filter(|u| !u.ok).map(|u| u.kind.unwrap_or(Kind::Failed)).collect();
    if failed.is_empty() {
        0
    } else if failed.contains(&Kind::Usage) {
        2
    } else {
        1
    }
}
