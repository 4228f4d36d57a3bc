//! The rules every tar entry kfadmin reads must pass, whoever wrote the tar: a kfadmin archive
//! (`reader`) or a tarball made by hand (`tarball`). Only plain relative names, only regular
//! files and directories, and no more bytes than the compressed stream can hold.

use std::io::{self, Read};
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
    let text = cut(raw);
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

/// The most bytes kfadmin reads of a GNU long-name or long-link record or a PAX header: a
/// name that long is no name, and a record that declares more is refused before it is read
/// (the `tar` crate would read all of it into memory: 2 GiB declared, 8 GiB allocated).
pub const MAX_EXTENSION: u64 = 64 << 10;

/// The longest part of a name a message quotes.
const SHOWN: usize = 120;

/// A name from a tar for a message: lossy UTF-8, cut after [`SHOWN`] characters.
pub fn cut(raw: &[u8]) -> String {
    let text = String::from_utf8_lossy(raw);
    match text.char_indices().nth(SHOWN) {
        Some((at, _)) => format!("{}… ({} bytes in all)", &text[..at], raw.len()),
        None => text.into_owned(),
    }
}

/// A path from a tar for a message, cut like [`cut`].
pub fn shown(path: &Path) -> String {
    use std::os::unix::ffi::OsStrExt;
    cut(path.as_os_str().as_bytes())
}

/// Why the next entry of a tar cannot be had.
pub enum Next {
    /// The stream cannot be read (damaged or cut short).
    Io(io::Error),
    /// The tar is readable but hostile or not understood: what is wrong.
    Refused(String),
}

/// A tar entry and its whole name (a GNU long name or a PAX `path` applied).
pub struct Named<'a, R: 'a + Read> {
    pub entry: tar::Entry<'a, R>,
    pub name: Vec<u8>,
}

/// The entries of `tar`, raw: read them with [`next_named`], which bounds the records that
/// name an entry (the `tar` crate's own handling reads them whole, whatever their size).
pub fn entries<R: Read>(tar: &mut tar::Archive<R>) -> io::Result<tar::Entries<'_, R>> {
    Ok(tar.entries()?.raw(true))
}

/// The next entry with its whole name, after any GNU long-name/long-link records and PAX
/// headers before it, each refused when it declares more than [`MAX_EXTENSION`] bytes. A PAX
/// global header (`git archive` writes one) is read and set aside when `global_ok` (hand-made
/// tarballs), refused otherwise (kfadmin never writes one in an archive).
pub fn next_named<'a, R: Read>(
    entries: &mut tar::Entries<'a, R>,
    global_ok: bool,
) -> Result<Option<Named<'a, R>>, Next> {
    use tar::EntryType as T;
    let (mut long_name, mut pax_path, mut pax_size, mut pending) = (None, None, None, false);
    loop {
        let Some(mut entry) = entries.next().transpose().map_err(Next::Io)? else {
            return match pending {
                true => Err(Next::Refused(
                    "the tar ends after a long-name or PAX record, with no entry for it".into(),
                )),
                false => Ok(None),
            };
        };
        let kind = entry.header().entry_type();
        let what = match kind {
            T::GNULongName => "a GNU long-name record",
            T::GNULongLink => "a GNU long-link record",
            T::XHeader => "a PAX extended header",
            T::XGlobalHeader => "a PAX global header",
            _ => {
                let size = entry.header().size().map_err(Next::Io)?;
                if let Some(declared) = pax_size.filter(|s| *s != size) {
                    let why = format!("a PAX header gives an entry {declared} bytes and its tar header {size}: refused (kfadmin reads entry sizes from the tar header)");
                    return Err(Next::Refused(why));
                }
                let name = long_name.or(pax_path).unwrap_or_else(|| entry.path_bytes().into_owned());
                return Ok(Some(Named { entry, name }));
            }
        };
        if kind == T::XGlobalHeader && !global_ok {
            return Err(Next::Refused(format!("{what}: kfadmin never writes one in an archive")));
        }
        let body = extension(&mut entry, what)?;
        match kind {
            T::GNULongName if long_name.is_some() => {
                return Err(Next::Refused("two GNU long-name records for one entry".into()))
            }
            T::GNULongName => long_name = Some(body.split(|b| *b == 0).next().unwrap_or(&[]).to_vec()),
            T::XHeader => {
                for ext in tar::PaxExtensions::new(&body) {
                    let ext = ext.map_err(|_| Next::Refused(format!("{what} cannot be parsed")))?;
                    match ext.key_bytes() {
                        b"path" => pax_path = Some(ext.value_bytes().to_vec()),
                        b"size" => {
                            pax_size = Some(ext.value().ok().and_then(|v| v.parse().ok()).unwrap_or(u64::MAX))
                        }
                        _ => {}
                    }
                }
            }
            _ => {}
        }
        pending |= kind != T::XGlobalHeader;
    }
}

/// The body of a long-name, long-link or PAX record, read only when it is at most
/// [`MAX_EXTENSION`] bytes.
fn extension<R: Read>(entry: &mut tar::Entry<'_, R>, what: &str) -> Result<Vec<u8>, Next> {
    let size = entry.header().size().map_err(Next::Io)?;
    if size > MAX_EXTENSION {
        return Err(Next::Refused(format!(
            "{what} declares {size} bytes, more than the {MAX_EXTENSION} kfadmin reads of one (no name is that long)"
        )));
    }
    let mut body = Vec::with_capacity(size as usize);
    entry.take(size).read_to_end(&mut body).map_err(Next::Io)?;
    Ok(body)
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
