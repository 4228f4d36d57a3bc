//! The rules every tar entry kfadmin reads must pass, whoever wrote the tar: a kfadmin archive
//! (`reader`) or a tarball made by hand (`tarball`). Only plain relative names, only regular
//! files and directories, and no more bytes than the compressed stream can hold.

use std::path::{Component, Path, PathBuf};

/// Deflate cannot shrink data more than 1032 times: a tar that declares more bytes than that
/// per compressed byte lies, and is refused before any space is set aside for it.
pub const MAX_RATIO: u64 = 1032;

/// How a leading `./` is taken: a kfadmin archive never has one; `tar czf x.tgz .` writes one
/// in front of every name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dot {
    Refuse,
    Strip,
}

/// A path inside a tar as plain components, or why it is refused: not UTF-8, absolute, with
/// a `..` anywhere, or (with [`Dot::Refuse`]) a `.` component.
pub fn safe_path(raw: &[u8], dot: Dot) -> Result<PathBuf, String> {
    let text = String::from_utf8_lossy(raw);
    if raw.is_empty() {
        return Err("an entry has an empty name".into());
    }
    let path = Path::new(std::str::from_utf8(raw).map_err(|_| format!("the name {text:?} is not UTF-8"))?);
    let mut clean = PathBuf::new();
    for c in path.components() {
        match c {
            Component::Normal(p) => clean.push(p),
            Component::RootDir | Component::Prefix(_) => return Err(format!("{text:?} is an absolute path")),
            Component::ParentDir => return Err(format!("{text:?} climbs out with `..`")),
            Component::CurDir if dot == Dot::Strip => {}
            Component::CurDir => return Err(format!("{text:?} has a `.` component")),
        }
    }
    Ok(clean)
}

/// A regular file's entry (GNU tar's contiguous files are regular files).
pub fn is_file(kind: tar::EntryType) -> bool {
    matches!(kind, tar::EntryType::Regular | tar::EntryType::Continuous)
}

/// What an entry that is neither a regular file nor a directory is, for messages.
pub fn kind_name(kind: tar::EntryType) -> &'static str {
    match kind {
        tar::EntryType::Symlink => "symbolic link",
        tar::EntryType::Link => "hard link",
        tar::EntryType::Char => "character device",
        tar::EntryType::Block => "block device",
        tar::EntryType::Fifo => "FIFO",
        tar::EntryType::Directory => "directory outside data/",
        _ => "special entry",
    }
}

/// Why `declared` bytes of files cannot come out of a stream of `stream_bytes` bytes (None when
/// they can). `ratio`: [`MAX_RATIO`] for a compressed stream, 1 for a plain tar. `what` says who
/// declares them ("the manifest lists"), `holder` what holds them ("an archive").
pub fn declared_problem(
    declared: Option<u64>,
    stream_bytes: u64,
    ratio: u64,
    what: &str,
    holder: &str,
) -> Option<String> {
    match declared {
        Some(total) if total <= stream_bytes.saturating_mul(ratio) => None,
        _ => Some(format!(
            "{what} {} bytes of files, more than {holder} of {stream_bytes} bytes can hold",
            declared.map(|t| t.to_string()).unwrap_or_else(|| "more than 2^64".into())
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(safe_path(b"data/keyfount.db", Dot::Refuse).unwrap(), Path::new("data/keyfount.db"));
        assert!(safe_path(b"./data", Dot::Refuse).is_err());
        assert_eq!(safe_path(b"./data/./kf.db", Dot::Strip).unwrap(), Path::new("data/kf.db"));
        assert_eq!(safe_path(b"./", Dot::Strip).unwrap(), Path::new(""));
        for bad in [&b"/etc/passwd"[..], b"a/../../x", b"..", b"", b"a\xff"] {
            assert!(safe_path(bad, Dot::Strip).is_err(), "{bad:?}");
        }
        assert!(declared_problem(Some(1033), 1, MAX_RATIO, "x", "y").is_some());
        assert!(declared_problem(Some(1032), 1, MAX_RATIO, "x", "y").is_none());
        assert!(declared_problem(None, 1, MAX_RATIO, "x", "y").is_some());
        assert!(declared_problem(Some(2), 1, 1, "x", "y").is_some());
    }
}
