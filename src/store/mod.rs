//! Where archives are kept: a local directory or an S3-compatible `s3://bucket/prefix`. Both
//! give the same [`Entry`] list (the catalog's name parsing), the same sidecar check and the
//! same removal, so every command that reads archives treats them alike.

use std::io::Read;
use std::path::{Path, PathBuf};

use crate::archive::catalog::{self, Entry};
use crate::archive::Manifest;
use crate::error::{Error, IoContext, Result};
use crate::progress::Stage;

pub mod awsconfig;
mod credsrc;
mod listing;
pub mod s3;
mod watch;

pub use s3::Remote;

/// The most a `.sha256` sidecar can hold (a hash, two spaces, a file name).
pub const SIDECAR_MAX: usize = 4096;
/// The most of an archive's start read for its manifest (a manifest of many files is large).
pub const HEAD_MAX: usize = 1 << 20;
/// What is read first (a usual manifest is a few KiB).
pub const HEAD_FIRST: usize = 64 << 10;

/// `s3://bucket[/prefix]`: a bucket and a prefix without leading or trailing slashes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Url {
    pub bucket: String,
    pub prefix: String,
}

impl std::fmt::Display for S3Url {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.prefix.is_empty() {
            write!(f, "s3://{}", self.bucket)
        } else {
            write!(f, "s3://{}/{}", self.bucket, self.prefix)
        }
    }
}

/// Whether `s` names a remote location (`s3://…`).
pub fn is_remote(s: &str) -> bool {
    s.get(..5).is_some_and(|p| p.eq_ignore_ascii_case("s3://"))
}

/// Whether a path as given on the command line is an `s3://` URL.
pub fn is_remote_path(p: &Path) -> bool {
    p.to_str().is_some_and(is_remote)
}

impl S3Url {
    /// Parse `s3://bucket[/prefix]`. Bucket names as S3 takes them (3–63 characters: lower-case
    /// letters, digits, `.` and `-`); no empty, `.` or `..` segment in the prefix.
    pub fn parse(s: &str) -> Result<S3Url> {
        let bad = |why: &str| {
            Error::usage(format!("{s:?} is not a usable s3:// location: {why}"))
                .hint("write it as s3://BUCKET or s3://BUCKET/PREFIX, e.g. s3://backups/keyfount/host1")
        };
        if !is_remote(s) {
            return Err(bad("it does not start with s3://"));
        }
        if s.contains(['?', '#', '@', '\\']) || s.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(bad("no ?, #, @, \\ or spaces, please"));
        }
        let rest = s[5..].trim_end_matches('/');
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        let valid = (3..=63).contains(&bucket.len())
            && bucket.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
            && bucket.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric());
        if !valid {
            return Err(bad("a bucket name has 3 to 63 characters: lower-case letters, digits, '.' and '-'"));
        }
        if !prefix.is_empty() && prefix.split('/').any(|seg| seg.is_empty() || seg == "." || seg == "..") {
            return Err(bad("the prefix has an empty, '.' or '..' part"));
        }
        // The S3 client stores such characters percent-encoded (`team~a` lands at `team%7Ea`):
        // refused, rather than write somewhere other than the URL says.
        if let Some(c) = prefix.chars().find(|c| !c.is_ascii() || "~%[]{}^`|<>\"*".contains(*c)) {
            return Err(bad(&format!(
                "the prefix has {c:?}, which S3 clients store percent-encoded (at another key than the one written): use letters, digits and - _ . / only"
            )));
        }
        Ok(S3Url { bucket: bucket.to_string(), prefix: prefix.to_string() })
    }

    /// The key of `name` under the prefix.
    pub fn key(&self, name: &str) -> String {
        if self.prefix.is_empty() {
            name.to_string()
        } else {
            format!("{}/{name}", self.prefix)
        }
    }

    /// The `s3://` URL of `name` under the prefix.
    pub fn object(&self, name: &str) -> String {
        format!("s3://{}/{}", self.bucket, self.key(name))
    }

    /// An object's URL split into its location and its name: `s3://b/p/NAME` → (`s3://b/p`,
    /// `NAME`).
    pub fn split_object(s: &str) -> Result<(S3Url, String)> {
        let url = S3Url::parse(s)?;
        match url.prefix.rsplit_once('/') {
            Some((dir, name)) => Ok((S3Url { bucket: url.bucket, prefix: dir.to_string() }, name.to_string())),
            None if !url.prefix.is_empty() => Ok((S3Url { bucket: url.bucket, prefix: String::new() }, url.prefix)),
            None => Err(Error::usage(format!("{s} names a bucket, not an archive"))
                .hint("pass the archive's URL: s3://BUCKET/PREFIX/NAME-…tar.gz[.age] (`kfadmin list s3://BUCKET/PREFIX` shows them)")),
        }
    }
}

/// The small object beside each offsite archive (`<archive>.json`), written at upload time, so
/// that `list` and `prune` need not read the archive: its size and sha256, and for a plaintext
/// archive its manifest (an encrypted archive's record says no more than its name and size
/// already do). Anyone with write access may have written it too: `prune` counts an archive
/// only when the record, the listed size, the sidecar and the archive's first bytes agree.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Record {
    pub format: String,
    pub bytes: u64,
    pub sha256: String,
    pub encrypted: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest: Option<Manifest>,
}

/// What a [`Record`] says it is.
pub const RECORD_FORMAT: &str = "kfadmin-offsite-record-1";
/// The most a record can hold (a manifest of many files).
pub const RECORD_MAX: usize = 1 << 20;

/// The record's object name beside `archive`.
pub fn record_name(archive: &str) -> String {
    format!("{archive}.json")
}

/// A location as given: a local directory or an S3 URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    Local(PathBuf),
    S3(S3Url),
}

impl Location {
    pub fn parse(s: &str) -> Result<Location> {
        if is_remote(s) {
            S3Url::parse(s).map(Location::S3)
        } else {
            Ok(Location::Local(PathBuf::from(s)))
        }
    }

    /// From a path given on the command line (a URL is kept in a `PathBuf` by clap).
    pub fn from_path(p: &Path) -> Result<Location> {
        match p.to_str() {
            Some(s) if is_remote(s) => S3Url::parse(s).map(Location::S3),
            _ => Ok(Location::Local(p.to_path_buf())),
        }
    }

    /// The lock that keeps two kfadmin runs on this host from writing to it at once.
    pub fn lock_key(&self, what: &str) -> crate::lock::Key {
        match self {
            Location::Local(d) => crate::lock::Key::dir(what, d),
            Location::S3(u) => crate::lock::Key::url("offsite location", &u.to_string()),
        }
    }

    /// For reports and messages: the directory, or the URL.
    pub fn shown(&self) -> PathBuf {
        match self {
            Location::Local(d) => d.clone(),
            Location::S3(u) => PathBuf::from(u.to_string()),
        }
    }
}

/// An open location.
pub enum Store {
    Local(PathBuf),
    S3(Box<Remote>),
}

/// What identifies a file or an object as it was checked: one replaced since is left alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stamp(String);

impl Store {
    pub fn open(location: &Location) -> Result<Store> {
        match location {
            Location::Local(d) => Ok(Store::Local(d.clone())),
            Location::S3(u) => Remote::connect(u).map(|r| Store::S3(Box::new(r))),
        }
    }

    pub fn is_remote(&self) -> bool {
        matches!(self, Store::S3(_))
    }

    /// The directory, or the URL.
    pub fn shown(&self) -> PathBuf {
        match self {
            Store::Local(d) => d.clone(),
            Store::S3(r) => PathBuf::from(r.url.to_string()),
        }
    }

    /// Every archive, newest first (see [`catalog::scan`]). The paths of remote entries (and
    /// their sidecars) are their `s3://` URLs.
    pub fn scan(&self) -> Result<Vec<Entry>> {
        self.scan_all().map(|(entries, _)| entries)
    }

    /// Every archive, newest first, and what else is there that is not kfadmin's (skipped,
    /// left alone): files directly in a local directory, objects directly under the prefix.
    pub fn scan_all(&self) -> Result<(Vec<Entry>, Skipped)> {
        let mut skipped = Skipped::default();
        match self {
            Store::Local(d) => {
                let entries = catalog::scan(d)?;
                if let Ok(rd) = std::fs::read_dir(d) {
                    for e in rd.flatten() {
                        let name = e.file_name().to_string_lossy().into_owned();
                        if !e.file_type().is_ok_and(|t| t.is_dir()) && !is_kfadmins(&name) {
                            skipped.add(&name);
                        }
                    }
                }
                Ok((entries, skipped))
            }
            Store::S3(r) => {
                let objects = r.list()?;
                for o in objects.iter().filter(|o| !is_kfadmins(&o.name)) {
                    skipped.add(&o.name);
                }
                let listed: Vec<(String, u64)> = objects.iter().map(|o| (o.name.clone(), o.bytes)).collect();
                Ok((catalog::from_listing(&listed, |name| PathBuf::from(r.url.object(name))), skipped))
            }
        }
    }

    /// Whether the sidecar matches the archive (None when there is no sidecar); the archive is
    /// read in full, counted on `stage`.
    pub fn sidecar_matches(&self, e: &Entry, stage: Option<&dyn Stage>) -> Result<Option<bool>> {
        match self {
            Store::Local(_) => e.sidecar_matches(),
            Store::S3(r) => {
                if e.sidecar.is_none() {
                    return Ok(None);
                }
                let text = match r.get_small(&format!("{}.sha256", e.file_name), SIDECAR_MAX) {
                    Ok(Some(text)) => text,
                    Ok(None) => return Ok(None),
                    // Oversized: not kfadmin's sidecar, so this archive does not match it.
                    Err(err) if err.kind == crate::error::Kind::Verification => return Ok(Some(false)),
                    Err(err) => return Err(err),
                };
                let want = sidecar_hash(&text);
                let (got, _) = crate::fsutil::sha256_reader(r.reader(&e.file_name)?, stage)
                    .map_err(|err| Error::failed(format!("cannot read {}", e.path.display())).source(err))?;
                Ok(Some(want == got))
            }
        }
    }

    /// Whether the archive's first bytes are what its name says (see
    /// [`catalog::structure_problem`]); remote: at most [`HEAD_MAX`] bytes are read. In a
    /// bucket, which other hosts may write to, the manifest must also agree with the name (a
    /// local repository may hold copies renamed by hand, as the tests' fixtures are).
    pub fn structure_problem(&self, e: &Entry) -> Result<Option<String>> {
        match self {
            Store::Local(_) => {
                let f = std::fs::File::open(&e.path).ctx("cannot read", &e.path)?;
                Ok(catalog::structure_problem(e, std::io::BufReader::new(f), false))
            }
            Store::S3(r) => {
                // 64 KiB holds the manifest of a usual data directory; more only when needed.
                let head = r.get_head(&e.file_name, HEAD_FIRST)?;
                let found = catalog::structure_problem(e, std::io::Cursor::new(head), true);
                if found.is_none() || e.encrypted || e.bytes <= HEAD_FIRST as u64 {
                    return Ok(found);
                }
                let head = r.get_head(&e.file_name, HEAD_MAX)?;
                Ok(catalog::structure_problem(e, std::io::Cursor::new(head), true))
            }
        }
    }

    /// The manifest, from the archive's first entry (remote: from its record when it has one,
    /// else only the first bytes of the archive are read).
    pub fn manifest(&self, e: &Entry) -> Option<Manifest> {
        match self {
            Store::Local(_) => e.manifest(),
            Store::S3(r) => match self.record(e) {
                Some(rec) if rec.manifest.is_some() => rec.manifest,
                _ => catalog::manifest_from(std::io::Cursor::new(r.get_head(&e.file_name, HEAD_FIRST).ok()?))
                    .or_else(|| catalog::manifest_from(r.reader(&e.file_name).ok()?)),
            },
        }
    }

    /// The record beside a remote archive (None: local, none, or not one).
    pub fn record(&self, e: &Entry) -> Option<Record> {
        let Store::S3(r) = self else { return None };
        let text = r.get_small(&record_name(&e.file_name), RECORD_MAX).ok()??;
        serde_json::from_slice::<Record>(&text).ok().filter(|rec| rec.format == RECORD_FORMAT)
    }

    /// Whether a remote archive checks out without reading it: its record, its listed size,
    /// its sidecar and its first bytes agree (None: no record, read it in full instead).
    pub fn check_by_record(&self, e: &Entry) -> Result<Option<std::result::Result<(), String>>> {
        let (Store::S3(r), Some(_)) = (self, &e.sidecar) else { return Ok(None) };
        let Some(rec) = self.record(e) else { return Ok(None) };
        let sidecar = match r.get_small(&format!("{}.sha256", e.file_name), SIDECAR_MAX) {
            Ok(t) => t.map(|t| sidecar_hash(&t)),
            Err(err) if err.kind == crate::error::Kind::Verification => None,
            Err(err) => return Err(err),
        };
        if rec.bytes != e.bytes
            || sidecar.as_deref() != Some(rec.sha256.as_str())
            || rec.encrypted != e.encrypted
        {
            return Ok(Some(Err("does not agree with its .sha256 and .json record (size or sha256)".into())));
        }
        Ok(Some(match self.structure_problem(e)? {
            None => Ok(()),
            Some(p) => Err(p),
        }))
    }

    /// The archive's identity now; None when it is gone.
    pub fn stamp(&self, e: &Entry) -> Result<Option<Stamp>> {
        match self {
            Store::Local(_) => {
                use std::os::unix::fs::MetadataExt;
                match e.path.symlink_metadata() {
                    Ok(m) => Ok(Some(Stamp(format!(
                        "{} {} {} {} {}",
                        m.dev(),
                        m.ino(),
                        m.len(),
                        m.mtime(),
                        m.mtime_nsec()
                    )))),
                    Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
                    Err(err) => Err(Error::io("cannot read", &e.path, err)),
                }
            }
            Store::S3(r) => Ok(r.head(&e.file_name)?.map(|o| Stamp(format!("{} {}", o.bytes, o.version)))),
        }
    }

    /// Remove the archive, then its sidecar: a crash in between leaves a sidecar without an
    /// archive, which nothing reads, never an archive without its sidecar. `between` runs
    /// after the archive is gone (a fault-injection point). A sidecar that cannot be removed
    /// is returned as a warning.
    pub fn remove(&self, e: &Entry, between: impl FnOnce() -> Result<()>) -> Result<Option<String>> {
        match self {
            Store::Local(_) => {
                std::fs::remove_file(&e.path).ctx("cannot remove", &e.path)?;
                between()?;
                Ok(e.sidecar.as_ref().and_then(|sc| match std::fs::remove_file(sc) {
                    Ok(()) => None,
                    Err(err) if err.kind() == std::io::ErrorKind::NotFound => None,
                    Err(err) => Some(format!("removed {} but not its sidecar: {err}", e.path.display())),
                }))
            }
            Store::S3(r) => {
                r.delete(&e.file_name)?;
                between()?;
                Ok(e.sidecar.as_ref().and_then(|_| {
                    r.delete(&format!("{}.sha256", e.file_name)).err().map(|err| {
                        format!("removed {} but not its sidecar: {}", e.path.display(), err.chain())
                    })
                }))
            }
        }
    }
}

/// What a listing held that is not kfadmin's: skipped (never read, counted or removed) and
/// reported, as how many and the first few names.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Skipped {
    pub count: usize,
    /// The first [`SKIPPED_SHOWN`] names, each cut at 80 characters.
    pub names: Vec<String>,
}

/// How many skipped names a report shows.
pub const SKIPPED_SHOWN: usize = 5;

impl Skipped {
    fn add(&mut self, name: &str) {
        self.count += 1;
        if self.names.len() < SKIPPED_SHOWN {
            let cut: String = name.chars().take(80).collect();
            self.names.push(if cut.len() < name.len() { format!("{cut}…") } else { cut });
        }
    }

    /// `skipped N objects that are not kfadmin's: "a", "b", …` (None when nothing was).
    pub fn line(&self, remote: bool) -> Option<String> {
        if self.count == 0 {
            return None;
        }
        let what = match (remote, self.count) {
            (true, 1) => "object",
            (true, _) => "objects",
            (false, 1) => "file",
            (false, _) => "files",
        };
        let shown: Vec<String> = self.names.iter().map(|n| format!("{n:?}")).collect();
        let more = if self.count > self.names.len() { ", …" } else { "" };
        Some(format!(
            "skipped {} {what} that {} not kfadmin's (left alone): {}{more}",
            self.count,
            if self.count == 1 { "is" } else { "are" },
            shown.join(", ")
        ))
    }
}

/// Whether a name in a repository is kfadmin's: an archive, an archive's `.sha256` or `.json`
/// record, a `.partial` being written, or kfadmin's own dot-files.
pub fn is_kfadmins(name: &str) -> bool {
    if name.starts_with(".kfadmin-") {
        return true;
    }
    let base = name.strip_suffix(".partial").unwrap_or(name);
    let base = base.strip_suffix(".sha256").or_else(|| base.strip_suffix(".json")).unwrap_or(base);
    catalog::parse(base).is_some()
}

/// The hash a `sha256sum`-format sidecar holds (lower case).
pub fn sidecar_hash(text: &[u8]) -> String {
    String::from_utf8_lossy(text).split_whitespace().next().unwrap_or("").to_ascii_lowercase()
}

/// Read all of `r` (for tests and small objects).
pub fn read_all(mut r: impl Read) -> std::io::Result<Vec<u8>> {
    let mut v = Vec::new();
    r.read_to_end(&mut v)?;
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let u = S3Url::parse("s3://kf-backups/fleet/host1/").unwrap();
        assert_eq!((u.bucket.as_str(), u.prefix.as_str()), ("kf-backups", "fleet/host1"));
        assert_eq!(u.to_string(), "s3://kf-backups/fleet/host1");
        assert_eq!(u.object("a.tar.gz"), "s3://kf-backups/fleet/host1/a.tar.gz");
        assert_eq!(S3Url::parse("S3://bkt").unwrap().key("x"), "x");
        for bad in [
            "s3://",
            "s3://ab",
            "s3://Bucket",
            "s3://b_c",
            "s3://bkt//x",
            "s3://bkt/../x",
            "s3://bkt/a?x",
            "s3://bkt/team~a/host1",
            "s3://bkt/50%",
            "s3://bkt/h\u{e9}",
            "s3://bkt/a*b",
            "/tmp",
        ] {
            assert!(S3Url::parse(bad).is_err(), "{bad}");
        }
        let (loc, name) = S3Url::split_object("s3://bkt/p/q/kf-20261126T030000Z-online.tar.gz").unwrap();
        assert_eq!(
            (loc.to_string().as_str(), name.as_str()),
            ("s3://bkt/p/q", "kf-20261126T030000Z-online.tar.gz")
        );
        assert_eq!(S3Url::split_object("s3://bkt/n").unwrap().0.prefix, "");
        assert!(S3Url::split_object("s3://bkt").is_err());
        assert_eq!(Location::parse("/var/b").unwrap(), Location::Local("/var/b".into()));
    }

    #[test]
    fn what_is_not_kfadmins_is_counted_and_cut() {
        let a = "kf-20261126T030000Z-online.tar.gz";
        for ours in [
            a.to_string(),
            format!("{a}.sha256"),
            format!("{a}.json"),
            format!("{a}.partial"),
            format!("{a}.sha256.partial"),
            format!("{a}.age.sha256"),
            ".kfadmin-staging-x".into(),
        ] {
            assert!(is_kfadmins(&ours), "{ours}");
        }
        let mut s = Skipped::default();
        for stray in ["notes.txt", "~home", "", "a\tb", &"l".repeat(300), "x.json", "y", "z"] {
            assert!(!is_kfadmins(stray), "{stray}");
            s.add(stray);
        }
        assert_eq!(s.count, 8);
        assert_eq!(s.names.len(), SKIPPED_SHOWN);
        assert!(s.names[4].chars().count() == 81 && s.names[4].ends_with('…'));
        let line = s.line(true).unwrap();
        assert!(
            line.starts_with("skipped 8 objects that are not kfadmin's") && line.ends_with(", …"),
            "{line}"
        );
        assert_eq!(Skipped::default().line(false), None);
    }
}
