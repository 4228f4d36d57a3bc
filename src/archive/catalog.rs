//! The kfadmin archives in a directory: found by name
//! (`<name>-<YYYYMMDDTHHMMSSZ>-<mode>.tar.gz`), newest first. Anything else is not ours and is
//! never touched.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use flate2::read::MultiGzDecoder;
use serde::Serialize;

use super::manifest::{Manifest, MANIFEST_MAX, MANIFEST_NAME};
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

/// Parse `<name>-<YYYYMMDDTHHMMSSZ>-<mode>.tar.gz` (or `.tar.gz.age`, encrypted).
pub fn parse_name(file_name: &str) -> Option<(String, u64, Mode)> {
    let file_name = file_name.strip_suffix(".age").unwrap_or(file_name);
    let stem = file_name.strip_suffix(".tar.gz")?;
    let (rest, mode) = if let Some(r) = stem.strip_suffix("-pre-restore") {
        (r, Mode::PreRestore)
    } else if let Some(r) = stem.strip_suffix("-online") {
        (r, Mode::Online)
    } else if let Some(r) = stem.strip_suffix("-cold") {
        (r, Mode::Cold)
    } else {
        return None;
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
    let unix = t.duration_since(std::time::UNIX_EPOCH).ok()?.as_secs();
    Some((name.to_string(), unix, mode))
}

/// Every kfadmin archive in `dir`, newest first (by the time in its name, then by name).
pub fn scan(dir: &Path) -> Result<Vec<Entry>> {
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::usage(format!("backup directory {} does not exist", dir.display()))
                .hint("pass the directory kfadmin backup writes to (--out), or set KFADMIN_BACKUP_DIR"))
        }
        Err(e) => return Err(Error::io("cannot read the directory", dir, e).kind(Kind::Usage)),
    };
    let mut out = Vec::new();
    for e in rd {
        let e = e.ctx("cannot read the directory", dir)?;
        let file_name = e.file_name().to_string_lossy().into_owned();
        let Some((name, created_unix, mode)) = parse_name(&file_name) else { continue };
        let encrypted = file_name.ends_with(".age");
        let path = e.path();
        let Ok(meta) = path.symlink_metadata() else { continue };
        if !meta.is_file() {
            continue;
        }
        let sidecar = PathBuf::from(format!("{}.sha256", path.display()));
        let created = humantime::format_rfc3339_seconds(
            std::time::UNIX_EPOCH + std::time::Duration::from_secs(created_unix),
        )
        .to_string();
        out.push(Entry {
            path,
            file_name,
            name,
            created_unix,
            created,
            mode,
            encrypted,
            bytes: meta.len(),
            sidecar: sidecar.is_file().then_some(sidecar),
        });
    }
    out.sort_by(|a, b| b.created_unix.cmp(&a.created_unix).then_with(|| b.file_name.cmp(&a.file_name)));
    Ok(out)
}

/// The manifest of an archive, from its first tar entry.
pub fn read_manifest(path: &Path) -> Option<Manifest> {
    let f = File::open(path).ok()?;
    let mut ar = tar::Archive::new(MultiGzDecoder::new(std::io::BufReader::new(f)));
    let mut entries = ar.entries().ok()?;
    let mut first = entries.next()?.ok()?;
    if first.path().ok()?.as_ref() != Path::new(MANIFEST_NAME) || first.header().size().ok()? > MANIFEST_MAX {
        return None;
    }
    let mut json = Vec::new();
    first.read_to_end(&mut json).ok()?;
    serde_json::from_slice(&json).ok()
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
        ] {
            assert!(parse_name(bad).is_none(), "{bad}");
        }
    }
}
