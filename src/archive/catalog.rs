//! The kfadmin archives in a directory: found by name
//! (`<name>-<YYYYMMDDTHHMMSSZ>[-<n>]-<mode>.tar.gz`), newest first. Anything else is not ours
//! and is never touched.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use flate2::read::MultiGzDecoder;
use serde::Serialize;

use super::manifest::{self, Manifest, MANIFEST_NAME};
use super::Mode;
use crate::error::{Error, IoContext, Kind, Result};

/// One archive found in a directory.
#[derive(Debug, Clone, Serialize)]
pub struct Entry {
    pub path: PathBuf,
    pub file_name: String,
    /// The name part: a container's name, or the database file's stem.
    pub name: String,
    /// From the file name (UTC seconds since the epoch).
    pub created_unix: u64,
    pub created: String,
    pub mode: Mode,
    /// 1, or the `-<n>` a backup took when its name was taken in the same second.
    pub seq: u32,
    /// Encrypted with age (`.tar.gz.age`).
    pub encrypted: bool,
    pub bytes: u64,
    /// The `.sha256` beside it, when there is one.
    pub sidecar: Option<PathBuf>,
}

impl Entry {
    /// Whether the sidecar matches the file (None when there is no sidecar).
    pub fn sidecar_matches(&self) -> Result<Option<bool>> {
        let Some(sc) = &self.sidecar else { return Ok(None) };
        let text = std::fs::read_to_string(sc).ctx("cannot read", sc)?;
        let want = text.split_whitespace().next().unwrap_or("").to_ascii_lowercase();
        let (got, _) = crate::fsutil::sha256_file(&self.path, None)?;
        Ok(Some(want == got))
    }

    /// The manifest, read from the first entry only (cheap); None when it cannot be read.
    pub fn manifest(&self) -> Option<Manifest> {
        read_manifest(&self.path)
    }
}

/// What an archive's file name says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed {
    pub name: String,
    pub created_unix: u64,
    /// 1 for `<name>-<stamp>-<mode>`, n for `<name>-<stamp>-<n>-<mode>` (n ≥ 2): the n-th
    /// archive of that name written in that second.
    pub seq: u32,
    pub mode: Mode,
}

/// `(stem before the mode, mode, "-<mode>.tar.gz[.age]")` of an archive's file name.
fn split_mode(file_name: &str) -> Option<(&str, Mode, &str)> {
    let plain = file_name.strip_suffix(".age").unwrap_or(file_name);
    let stem = plain.strip_suffix(".tar.gz")?;
    [Mode::PreRestore, Mode::Online, Mode::Cold, Mode::Imported].into_iter().find_map(|mode| {
        let rest = stem.strip_suffix(mode.as_str())?.strip_suffix('-')?;
        Some((rest, mode, &file_name[rest.len()..]))
    })
}

/// Parse `<name>-<YYYYMMDDTHHMMSSZ>[-<n>]-<mode>.tar.gz` (or `.tar.gz.age`, encrypted).
pub fn parse(file_name: &str) -> Option<Parsed> {
    let (rest, mode, _) = split_mode(file_name)?;
    let (rest, seq) = match rest.rsplit_once('-') {
        Some((r, n)) if !n.is_empty() && n.len() <= 9 && n.bytes().all(|b| b.is_ascii_digit()) => {
            let seq: u32 = n.parse().ok()?;
            // `-1` and leading zeros are never written: one name for each archive.
            if seq < 2 || n.starts_with('0') {
                return None;
            }
            (r, seq)
        }
        _ => (rest, 1),
    };
    let (name, stamp) = rest.rsplit_once('-')?;
    if name.is_empty() || stamp.len() != 16 {
        return None;
    }
    let b = stamp.as_bytes();
    if b[8] != b'T' || b[15] != b'Z' || !b[..8].iter().chain(&b[9..15]).all(u8::is_ascii_digit) {
        return None;
    }
    let rfc = format!(
        "{}-{}-{}T{}:{}:{}Z",
        &stamp[0..4],
        &stamp[4..6],
        &stamp[6..8],
        &stamp[9..11],
        &stamp[11..13],
        &stamp[13..15]
    );
    let t = humantime::parse_rfc3339(&rfc).ok()?;
    let created_unix = t.duration_since(std::time::UNIX_EPOCH).ok()?.as_secs();
    Some(Parsed { name: name.to_string(), created_unix, seq, mode })
}

/// `(name, created_unix, mode)` of an archive's file name; see [`parse`].
pub fn parse_name(file_name: &str) -> Option<(String, u64, Mode)> {
    parse(file_name).map(|p| (p.name, p.created_unix, p.mode))
}

/// The same archive name with sequence number `seq` (`seq` 1 is the name itself): the name
/// a writer takes when `file_name` is already taken. None for a name that is not an
/// archive's, or one that already carries a number.
pub fn with_seq(file_name: &str, seq: u32) -> Option<String> {
    if parse(file_name)?.seq != 1 {
        return None;
    }
    if seq <= 1 {
        return Some(file_name.to_string());
    }
    let (rest, _, tail) = split_mode(file_name)?;
    Some(format!("{rest}-{seq}{tail}"))
}

/// Every kfadmin archive in `dir`, newest first (by the time in its name, then its sequence
/// number, then by name).
pub fn scan(dir: &Path) -> Result<Vec<Entry>> {
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::usage(format!("backup directory {} does not exist", dir.display()))
                .hint("pass the directory kfadmin backup writes to (-r/--repo), or set KFADMIN_REPO"))
        }
        Err(e) => return Err(Error::io("cannot read the directory", dir, e).kind(Kind::Usage)),
    };
    let mut out = Vec::new();
    for e in rd {
        let e = e.ctx("cannot read the directory", dir)?;
        let file_name = e.file_name().to_string_lossy().into_owned();
        if parse(&file_name).is_none() {
            continue;
        }
        let path = e.path();
        let Ok(meta) = path.symlink_metadata() else { continue };
        if !meta.is_file() {
            continue;
        }
        let sidecar = PathBuf::from(format!("{}.sha256", path.display()));
        let sidecar = sidecar.is_file().then_some(sidecar);
        out.extend(entry(file_name, path, meta.len(), sidecar));
    }
    sort(&mut out);
    Ok(out)
}

/// The archives among a listing of `(file name, bytes)` (an object store's), newest first as
/// [`scan`]; `path_of` gives an object's path (its URL).
pub fn from_listing(objects: &[(String, u64)], path_of: impl Fn(&str) -> PathBuf) -> Vec<Entry> {
    let names: std::collections::HashSet<&str> = objects.iter().map(|(n, _)| n.as_str()).collect();
    let mut out: Vec<Entry> = objects
        .iter()
        .filter_map(|(name, bytes)| {
            let sidecar = format!("{name}.sha256");
            let sidecar = names.contains(sidecar.as_str()).then(|| path_of(&sidecar));
            entry(name.clone(), path_of(name), *bytes, sidecar)
        })
        .collect();
    sort(&mut out);
    out
}

/// The entry of an archive named `file_name` (None when the name is not an archive's).
fn entry(file_name: String, path: PathBuf, bytes: u64, sidecar: Option<PathBuf>) -> Option<Entry> {
    let Parsed { name, created_unix, seq, mode } = parse(&file_name)?;
    let created = humantime::format_rfc3339_seconds(
        std::time::UNIX_EPOCH + std::time::Duration::from_secs(created_unix),
    )
    .to_string();
    let encrypted = file_name.ends_with(".age");
    Some(Entry { path, file_name, name, created_unix, created, mode, seq, encrypted, bytes, sidecar })
}

/// Within one second, `-3-` was written after `-2-`, which came after the plain name.
fn sort(out: &mut [Entry]) {
    out.sort_by(|a, b| {
        (b.created_unix, b.seq).cmp(&(a.created_unix, a.seq)).then_with(|| b.file_name.cmp(&a.file_name))
    });
}

/// The manifest of an archive, from its first tar entry, held to the bound `verify` holds
/// it to.
pub fn read_manifest(path: &Path) -> Option<Manifest> {
    manifest_from(std::io::BufReader::new(File::open(path).ok()?))
}

/// The first bytes of every age-encrypted file.
pub const AGE_MAGIC: &[u8] = b"age-encryption.org/v1\n";

/// Whether the start of an archive's byte stream is what its name says (None), or what is
/// wrong (Some): plaintext, a gzip'd tar whose first entry is a manifest (with `by_name`, of
/// the time and mode in the name); encrypted, an age header. Only the first bytes are read.
pub fn structure_problem(e: &Entry, mut r: impl Read, by_name: bool) -> Option<String> {
    if e.encrypted {
        let mut head = vec![0u8; AGE_MAGIC.len()];
        return match r.read_exact(&mut head) {
            Ok(()) if head == AGE_MAGIC => None,
            _ => Some("is named .age but has no age header: not a kfadmin archive".into()),
        };
    }
    let Some(m) = manifest_from(r) else {
        return Some("has no readable kfadmin manifest at its start: not a kfadmin archive".into());
    };
    if by_name && (m.created_unix != e.created_unix || m.mode != e.mode) {
        return Some(format!(
            "its name says {} {}, its manifest {} {}: renamed or not what it claims",
            e.created,
            e.mode.as_str(),
            m.created,
            m.mode.as_str()
        ));
    }
    None
}

/// The manifest at the start of an archive's byte stream (only what it needs is read).
pub fn manifest_from(r: impl Read) -> Option<Manifest> {
    let mut ar = tar::Archive::new(MultiGzDecoder::new(std::io::BufReader::new(r)));
    let mut entries = super::entry::entries(&mut ar).ok()?;
    let first = super::entry::next_named(&mut entries, false).ok()??;
    let (first, name) = (first.entry, first.name);
    let size = first.header().size().ok()?;
    if name != MANIFEST_NAME.as_bytes() || manifest::unread_size_problem(size).is_some() {
        return None;
    }
    let mut json = Vec::new();
    first.take(size).read_to_end(&mut json).ok()?;
    manifest::parse(&json).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        let (n, t, m) = parse_name("keyfount-20261126T030000Z-online.tar.gz").unwrap();
        assert_eq!((n.as_str(), m), ("keyfount", Mode::Online));
        assert_eq!(t, 1795662000);
        assert_eq!(parse_name("my-kf-1-20261126T030000Z-pre-restore.tar.gz").unwrap().0, "my-kf-1");
        assert_eq!(parse_name("kf-20261126T030000Z-cold.tar.gz").unwrap().2, Mode::Cold);
        assert_eq!(parse_name("kf-20261126T030000Z-online.tar.gz.age").unwrap().0, "kf");
        assert_eq!(parse_name("old-kf-20231126T030000Z-imported.tar.gz").unwrap().2, Mode::Imported);
        for bad in [
            "keyfount-20261126T030000Z-online.tar.gz.sha256",
            "keyfount-20261126T030000Z-online.tar.gz.partial",
            "keyfount-20261126T030000Z-online.tar.gz.age.sha256",
            "keyfount-20261126T030000Z-online.age",
            "keyfount-2026112T030000Z-online.tar.gz",
            "keyfount-20261126T030000Z-hot.tar.gz",
            "-20261126T030000Z-online.tar.gz",
            "notes.txt",
            "keyfount-20261399T030000Z-online.tar.gz",
            "keyfount-20261126T030000Z-1-online.tar.gz",
            "keyfount-20261126T030000Z-02-online.tar.gz",
            "keyfount-20261126T030000Z--online.tar.gz",
            "keyfount-20261126T030000Z-2-online.tar.gz.partial",
            "keyfount-2-online.tar.gz",
            "keyfount-20261126T030000Z-9999999999-online.tar.gz",
        ] {
            assert!(parse_name(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn sequence_numbers() {
        let p = parse("my-kf-1-20261126T030000Z-12-pre-restore.tar.gz.age").unwrap();
        assert_eq!(
            p,
            Parsed { name: "my-kf-1".into(), created_unix: 1795662000, seq: 12, mode: Mode::PreRestore }
        );
        assert_eq!(parse("kf-2-20261126T030000Z-online.tar.gz").unwrap().seq, 1);
        let base = "kf-20261126T030000Z-online.tar.gz.age";
        assert_eq!(with_seq(base, 1).unwrap(), base);
        let second = with_seq(base, 2).unwrap();
        assert_eq!(second, "kf-20261126T030000Z-2-online.tar.gz.age");
        assert_eq!(parse(&second).unwrap().seq, 2);
        assert_eq!(parse(&second).unwrap().name, "kf");
        assert!(with_seq(&second, 3).is_none(), "a numbered name is not numbered again");
        assert!(with_seq("notes.txt", 2).is_none());
    }

    #[test]
    fn numbered_archives_sort_after_the_first_of_their_second() {
        let dir = tempfile::tempdir().unwrap();
        for n in [
            "kf-20261126T030000Z-online.tar.gz",
            "kf-20261126T030000Z-10-online.tar.gz",
            "kf-20261126T030000Z-2-online.tar.gz",
            "kf-20261126T030001Z-online.tar.gz",
            "kf-20261126T025959Z-3-online.tar.gz",
        ] {
            std::fs::write(dir.path().join(n), b"x").unwrap();
        }
        let names: Vec<String> = scan(dir.path()).unwrap().into_iter().map(|e| e.file_name).collect();
        assert_eq!(
            names,
            [
                "kf-20261126T030001Z-online.tar.gz",
                "kf-20261126T030000Z-10-online.tar.gz",
                "kf-20261126T030000Z-2-online.tar.gz",
                "kf-20261126T030000Z-online.tar.gz",
                "kf-20261126T025959Z-3-online.tar.gz",
            ]
        );
    }
}
