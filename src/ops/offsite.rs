//! Offsite copies of a verified local archive to `PREFIX/<file name>`: first its `.sha256`
//! sidecar, created only where there is none (it claims the name: two hosts never write one
//! archive), then the archive (a multipart upload: it appears whole or not at all), then
//! checked: the size and ETag the store holds, the sidecar read back, and with `verify` the
//! whole object read back and hashed. A copy known to be bad, a failed upload and an
//! interrupted one are undone for real (archive before sidecar, only objects still this run's,
//! not cut short by Ctrl-C), and the error says what is left in the bucket; a copy whose
//! read-back failed is not known bad and stays. The local archive is never touched.

use std::time::Instant;

use serde::Serialize;

use crate::archive::writer::Written;
use crate::error::{Error, Kind, Result};
use crate::progress::{Notice, Unit};
use crate::store::s3::Removal;
use crate::store::{record_name, Record, Remote, S3Url, RECORD_FORMAT, SIDECAR_MAX};

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

/// Check every destination's settings and reach before any work: the environment and AWS
/// files (`KFADMIN_OFFSITE_RETRY`, `AWS_PROFILE`, …), the bucket, the credentials, the region.
/// A bad setting is exit 2 before the snapshot, not an offsite failure after the backup.
pub fn preflight(dests: &[S3Url]) -> Result<()> {
    for d in dests {
        Remote::connect(d)?.probe()?;
    }
    Ok(())
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
    let sidecar_name = format!("{name}.sha256");
    let sidecar = std::fs::read(&w.sidecar).map_err(|e| Error::io("cannot read", &w.sidecar, e))?;
    // The sidecar first, created only where there is none (If-None-Match: *): it claims the
    // name, so a second host with the same name and prefix stops here, before it uploads or
    // removes anything. The archive appears whole (a multipart upload) only after it.
    let claim = remote.create_small(&sidecar_name, sidecar.clone())?;
    let mut own = Own { remote: &remote, name, sidecar: claim, archive: None, record: None };
    n.note(&format!("Uploading {} to {}", indicatif::BinaryBytes(w.bytes), done.url));
    let t = Instant::now();
    let file = std::fs::File::open(&w.path).map_err(|e| Error::io("cannot read", &w.path, e));
    let stage = n.progress().stage("upload", w.bytes, Unit::Bytes);
    let sent = file.and_then(|f| remote.upload(name, f, stage.as_ref()));
    stage.finish();
    match sent {
        Ok((bytes, etag)) => {
            done.bytes = bytes;
            done.upload_ms = t.elapsed().as_millis() as u64;
            own.archive = Some(etag);
        }
        Err(e) => return Err(own.undo(e)),
    }
    if let Err(e) = crate::fault::point("offsite.uploaded") {
        return Err(own.undo(e));
    }
    // The record beside it, so list and prune need not read the archive (only an
    // optimisation: without it they read the archive, as before).
    match remote.create_small(&record_name(name), record(w, name)) {
        Ok(etag) => own.record = Some(etag),
        Err(e) if e.kind == Kind::Interrupted => return Err(own.undo(e)),
        Err(e) => n.warn(&format!("{} (list and prune will read the archive instead)", e.chain())),
    }
    match check(&remote, w, name, &sidecar, own.archive.clone().flatten(), verify, n) {
        Ok(()) => {}
        Err(Check::Bad(e)) => return Err(own.undo(e)),
        Err(Check::Unsure(e)) => {
            let hint = format!(
                "the copy is left in place, unchecked; `kfadmin verify {}` checks it (and `kfadmin prune` does not count it until it passes)",
                done.url
            );
            return Err(e.hint(hint));
        }
    }
    n.detail(&format!("uploaded {} in {} ms and checked it", done.url, done.upload_ms));
    Ok(())
}

/// What this run wrote to the bucket, and its undoing.
struct Own<'a> {
    remote: &'a Remote,
    name: &'a str,
    /// The sidecar's ETag.
    sidecar: Option<String>,
    /// Some once the archive's upload completed (with its ETag).
    archive: Option<Option<String>>,
    /// Some once the record was written (with its ETag).
    record: Option<Option<String>>,
}

impl Own<'_> {
    /// Remove what this run wrote, the archive before its sidecar, even after Ctrl-C, and only
    /// objects that are still this run's; then say on `err` what is left in the bucket.
    fn undo(&self, err: Error) -> Error {
        let r = self.remote;
        let sidecar = format!("{}.sha256", self.name);
        let mut left = Vec::new();
        match &self.archive {
            Some(etag) => match r.delete_own(self.name, etag.as_deref()) {
                Removal::Removed | Removal::Gone | Removal::NotOurs => {}
                Removal::Failed(why) => {
                    left.push(format!("{} (not removed: {why})", r.url.object(self.name)))
                }
            },
            // The upload was aborted; had its completion raced the interrupt, the object is
            // there: not known to be this run's, so only reported.
            None => {
                if r.exists_now(self.name) != Some(false) {
                    left.push(format!(
                        "{} (maybe this run's copy, unchecked: verify it, or remove it)",
                        r.url.object(self.name)
                    ));
                }
            }
        }
        if let Some(etag) = &self.record {
            let rec = record_name(self.name);
            if let Removal::Failed(why) = r.delete_own(&rec, etag.as_deref()) {
                left.push(format!("{} (not removed: {why})", r.url.object(&rec)));
            }
        }
        let archive_gone = !left.iter().any(|l| l.starts_with(&format!("{} ", r.url.object(self.name))));
        if archive_gone {
            match r.delete_own(&sidecar, self.sidecar.as_deref()) {
                Removal::Removed | Removal::Gone | Removal::NotOurs => {}
                Removal::Failed(why) => left.push(format!("{} (not removed: {why})", r.url.object(&sidecar))),
            }
        } else {
            left.push(r.url.object(&sidecar));
        }
        let what = if left.is_empty() {
            "nothing of this copy is left in the bucket".to_string()
        } else {
            format!("left in the bucket: {}", left.join(", "))
        };
        let message = if err.kind == Kind::Interrupted {
            format!("interrupted during the offsite copy; {what}")
        } else {
            format!("{}; {what}", err.message)
        };
        let hint = match (left.is_empty(), &err.hint) {
            (true, Some(h)) => h.clone(),
            (true, None) => "run the backup again".to_string(),
            (false, h) => format!(
                "{}remove what is left with `aws s3 rm` (a key that may write but not delete cannot)",
                h.as_deref().map(|h| format!("{h}; ")).unwrap_or_default()
            ),
        };
        Error { message, hint: Some(hint), ..err }
    }
}

/// The record of the archive `w` (see [`Record`]): for a plaintext archive its manifest too.
fn record(w: &Written, name: &str) -> Vec<u8> {
    let encrypted = name.ends_with(".age");
    let rec = Record {
        format: RECORD_FORMAT.into(),
        bytes: w.bytes,
        sha256: w.sha256.clone(),
        encrypted,
        manifest: if encrypted { None } else { crate::archive::catalog::read_manifest(&w.path) },
    };
    serde_json::to_vec(&rec).unwrap_or_default()
}

/// Why a check failed: the copy is known bad (removed), or it could not be checked (kept).
enum Check {
    Bad(Error),
    Unsure(Error),
}

/// What the store holds is what was written: its size and ETag, its sidecar, and with
/// `verify` its sha256 (the whole object read back).
fn check(
    remote: &Remote,
    w: &Written,
    name: &str,
    sidecar: &[u8],
    etag: Option<String>,
    verify: bool,
    n: &dyn Notice,
) -> std::result::Result<(), Check> {
    let url = remote.url.object(name);
    let held = remote.head(name).map_err(Check::Unsure)?;
    if held.as_ref().map(|o| o.bytes) != Some(w.bytes) {
        return Err(Check::Bad(Error::failed(format!(
            "{url} holds {} bytes after the upload, not {}",
            held.map(|o| o.bytes.to_string()).unwrap_or_else(|| "no".into()),
            w.bytes
        ))));
    }
    let held_etag = held.and_then(|o| o.etag);
    if etag.is_some() && held_etag != etag {
        return Err(Check::Bad(
            Error::failed(format!("{url} was replaced by another writer during the upload"))
                .hint("give each host its own prefix or --name"),
        ));
    }
    let back = remote.get_small(&format!("{name}.sha256"), SIDECAR_MAX).map_err(Check::Unsure)?;
    if back.as_deref() != Some(sidecar) {
        return Err(Check::Bad(Error::failed(format!("{url}.sha256 does not read back as it was written"))));
    }
    if verify {
        let stage = n.progress().stage("verify offsite", w.bytes, Unit::Bytes);
        let reader = remote.reader(name).map_err(Check::Unsure)?;
        let (sha, _) = crate::fsutil::sha256_reader(reader, Some(stage.as_ref())).map_err(|e| {
            Check::Unsure(match e.downcast::<Error>() {
                Ok(e) => e,
                Err(e) => Error::failed(format!("cannot read {url} back")).source(e),
            })
        })?;
        stage.finish();
        if sha != w.sha256 {
            return Err(Check::Bad(
                Error::new(Kind::Verification, format!("{url} read back has sha256 {sha}, not {}", w.sha256))
                    .hint("check the storage service, then run the backup again"),
            ));
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
