//! A tarball made by hand (`tar czf`, `.tgz`, a plain `.tar`), unpacked into a private
//! directory under the rules of the archive reader ([`super::entry`]): plain relative names
//! (a leading `./` is allowed), only regular files and directories, no name twice, no more
//! entries than [`MAX_ENTRIES`], no more bytes than the file can hold, room checked before each
//! file is written. Gzip or not is told by the magic number, not by the name.

use std::collections::HashSet;
use std::fs::File;
use std::io::{self, BufReader, Read, Write};
use std::path::{Path, PathBuf};

use flate2::read::MultiGzDecoder;
use sha2::{Digest, Sha256};

use super::entry::{self, safe_path, Dot, Next};
use crate::error::{check_interrupt, Error, IoContext, Kind, Result};
use crate::fsutil::hex;
use crate::progress::{Progress, Stage, Unit};
use crate::safedir::Dir;

/// More entries than any data directory kfadmin archives (its manifests hold about 250,000).
pub const MAX_ENTRIES: u64 = 1_000_000;

/// One entry unpacked: a regular file or a directory.
#[derive(Debug, Clone)]
pub struct Item {
    /// Relative, plain components (a leading `./` stripped).
    pub path: PathBuf,
    pub dir: bool,
    pub size: u64,
    /// Permission bits.
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// Seconds since the epoch, as the tar header says.
    pub mtime: u64,
}

/// What a tarball held, and the tarball itself.
#[derive(Debug, Clone)]
pub struct Unpacked {
    pub items: Vec<Item>,
    pub bytes: u64,
    pub sha256: String,
    pub gzip: bool,
}

/// The raw file: hashed and counted as it is read.
struct Hashing<'a> {
    inner: BufReader<File>,
    hash: Sha256,
    bytes: u64,
    stage: &'a dyn Stage,
}

impl Read for Hashing<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hash.update(&buf[..n]);
        self.bytes += n as u64;
        self.stage.inc(n as u64);
        Ok(n)
    }
}

/// Trouble in the tarball (exit 2 or 3), or on this machine (the error itself).
enum Bad {
    Input(Error),
    Io(io::Error),
}

impl From<io::Error> for Bad {
    fn from(e: io::Error) -> Self {
        Bad::Io(e)
    }
}

impl From<Error> for Bad {
    fn from(e: Error) -> Self {
        Bad::Input(e)
    }
}

/// Unpack `tarball` into `into` (an empty private directory).
pub fn unpack(tarball: &Path, into: &Dir, progress: &dyn Progress) -> Result<Unpacked> {
    let file = open(tarball)?;
    let size = file.metadata().ctx("cannot read", tarball)?.len();
    let mut head = [0u8; 2];
    let gzip = {
        use std::os::unix::fs::FileExt;
        matches!(file.read_at(&mut head, 0), Ok(2)) && head == [0x1f, 0x8b]
    };
    let stage = progress.stage("unpack", size, Unit::Bytes);
    let mut raw = Hashing {
        inner: BufReader::with_capacity(1 << 20, file),
        hash: Sha256::new(),
        bytes: 0,
        stage: stage.as_ref(),
    };
    let ratio = if gzip { entry::MAX_RATIO } else { 1 };
    let walked = if gzip {
        walk(&mut tar::Archive::new(MultiGzDecoder::new(&mut raw)), into, size, ratio)
    } else {
        walk(&mut tar::Archive::new(&mut raw), into, size, ratio)
    };
    let items = match walked {
        Ok(items) => items,
        Err(Bad::Input(e)) => return Err(e),
        Err(Bad::Io(e)) if e.kind() == io::ErrorKind::Interrupted => return Err(Error::interrupted()),
        Err(Bad::Io(e)) => return Err(damaged(tarball, gzip, e)),
    };
    // The rest of the file (the tar's end blocks, trailing bytes), for the checksum.
    io::copy(&mut raw, &mut io::sink()).ctx("cannot read", tarball)?;
    stage.finish();
    Ok(Unpacked { items, bytes: raw.bytes, sha256: hex(&raw.hash.finalize()), gzip })
}

fn open(tarball: &Path) -> Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    // O_NONBLOCK: a FIFO put in its place cannot hang the open (no effect on a regular file).
    let opened =
        std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC).open(tarball);
    let file = opened.map_err(|e| {
        let err = Error::io("cannot read", tarball, e).kind(Kind::Usage);
        err.hint("pass the path of the tarball to import (a .tar.gz, .tgz or .tar)")
    })?;
    if !file.metadata().ctx("cannot read", tarball)?.is_file() {
        return Err(Error::usage(format!("{} is not a file", tarball.display())));
    }
    Ok(file)
}

fn damaged(tarball: &Path, gzip: bool, e: io::Error) -> Error {
    let layer = if gzip { "its gzip stream or the tar inside" } else { "its tar stream" };
    Error::verification(format!("{} is damaged: {layer} cannot be read to the end: {e}", tarball.display()))
        .hint(
        "nothing was written; the tarball is truncated or corrupt: look for an older or another copy of it",
    )
}

/// Every entry, checked, unpacked into `into`.
fn walk<R: Read>(
    tar: &mut tar::Archive<R>,
    into: &Dir,
    size: u64,
    ratio: u64,
) -> std::result::Result<Vec<Item>, Bad> {
    let mut items = Vec::new();
    let mut seen = HashSet::new();
    let mut files: HashSet<PathBuf> = HashSet::new();
    let mut declared = 0u64;
    let mut buf = vec![0u8; 1 << 20];
    let mut entries = entry::entries(tar)?;
    loop {
        check_interrupt()?;
        let (mut e, name) = match entry::next_named(&mut entries, true) {
            Ok(None) => break,
            Ok(Some(named)) => (named.entry, named.name),
            Err(Next::Io(err)) if items.is_empty() && seen.is_empty() => {
                return Err(Bad::Input(not_a_tar(err)))
            }
            Err(Next::Io(err)) => return Err(Bad::Io(err)),
            Err(Next::Refused(why)) => return Err(refused(why)),
        };
        let item = check(&e, &name, &seen, &mut declared, size, ratio)?;
        seen.insert(item.path.clone());
        if item.path.as_os_str().is_empty() {
            items.push(item); // `./` itself: nothing to create, its owner and mode kept
            continue;
        }
        if let Some(file) = item.path.ancestors().skip(1).find(|a| files.contains(*a)) {
            let why = format!("{} is inside the file {}", item.path.display(), file.display());
            return Err(Bad::Input(Error::usage(format!("the tarball cannot be unpacked: {why}"))));
        }
        if item.dir {
            into.walk(&item.path, Some(0o700))?;
        } else {
            files.insert(item.path.clone());
            into.ensure_room(item.size, 1, "to unpack the tarball", ROOM_HINT)?;
            let (mut out, target) = create(into, &item.path)?;
            loop {
                check_interrupt()?;
                let n = e.read(&mut buf)?;
                if n == 0 {
                    break;
                }
                out.write_all(&buf[..n]).ctx("cannot write", &target)?;
            }
        }
        items.push(item);
    }
    if !items.iter().any(|i| !i.dir) {
        return Err(Bad::Input(Error::usage("the tarball holds no file").hint(NOT_A_TAR_HINT)));
    }
    Ok(items)
}

const ROOM_HINT: &str =
    "free some space there, or pass --tmp-dir DIR: a private directory on a filesystem with room";
const NOT_A_TAR_HINT: &str =
    "pass a tarball of Keyfount's data directory or of keyfount.db, made with tar (gzip-compressed or not)";

fn not_a_tar(e: io::Error) -> Error {
    Error::usage(format!("it is not a tar archive, gzip-compressed or not: {e}")).hint(NOT_A_TAR_HINT)
}

fn refused(why: String) -> Bad {
    Bad::Input(Error::usage(format!("refused: {why}")).hint("kfadmin imports only regular files and directories with plain relative names; make the tarball again without links or special files"))
}

/// The entry's item, or why the tarball is refused.
fn check<R: Read>(
    e: &tar::Entry<R>,
    raw: &[u8],
    seen: &HashSet<PathBuf>,
    declared: &mut u64,
    size: u64,
    ratio: u64,
) -> std::result::Result<Item, Bad> {
    let refuse = refused;
    let h = e.header();
    let kind = h.entry_type();
    let path = safe_path(raw, Dot::Strip).map_err(|why| refuse(format!("unsafe entry: {why}")))?;
    let dir = kind == tar::EntryType::Directory;
    if !dir && !entry::is_file(kind) {
        return Err(refuse(format!("{} is a {}", entry::shown(&path), entry::kind_name(kind))));
    }
    if seen.contains(&path) || seen.len() as u64 >= MAX_ENTRIES {
        return Err(refuse(format!(
            "{} appears twice, or the tarball has more than {MAX_ENTRIES} entries",
            entry::shown(&path)
        )));
    }
    let bytes = if dir { 0 } else { h.size()? };
    *declared = declared.checked_add(bytes).unwrap_or(u64::MAX);
    if let Some(why) =
        entry::declared_problem(Some(*declared), size, ratio, "its entries declare", "a tarball")
    {
        // Compressed: a lie (deflate cannot expand that much). Plain: the file was cut short.
        let short = io::Error::new(io::ErrorKind::UnexpectedEof, why.clone());
        return Err(if ratio > 1 { refuse(why) } else { Bad::Io(short) });
    }
    // Owner, mode and time are kept when the header has them (not every tool writes them).
    Ok(Item {
        path,
        dir,
        size: bytes,
        mode: h.mode().map(|m| m & 0o7777).unwrap_or(if dir { 0o700 } else { 0o600 }),
        uid: h.uid().ok().and_then(|u| u.try_into().ok()).unwrap_or(0),
        gid: h.gid().ok().and_then(|g| g.try_into().ok()).unwrap_or(0),
        mtime: h.mtime().unwrap_or(0),
    })
}

/// A new private file at `path` under `dir`, its directories created on the way.
fn create(dir: &Dir, path: &Path) -> Result<(File, PathBuf)> {
    let name =
        path.file_name().ok_or_else(|| Error::failed(format!("{} has no file name", path.display())))?;
    let parent = dir.walk(path.parent().unwrap_or(Path::new("")), Some(0o700))?;
    Ok((parent.create_file(name, 0o600)?, dir.display(path)))
}
