//! Reads an archive in one streaming pass: the raw bytes are hashed for the `.sha256`
//! sidecar while they are decompressed, every tar entry is checked before anything of it is
//! used, and data files are hashed (and, for a restore, extracted into a private staging
//! directory). Nothing outside the staging directory is ever written.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{self, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::Arc;

use flate2::read::MultiGzDecoder;
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::entry::{self, kind_name, safe_path, Dot, Next};
use super::manifest::{self, FileEntry, Manifest, FORMAT, FORMAT_VERSION, MANIFEST_NAME};
use super::pool::Pool;
use crate::crypto::{self, Keys};
use crate::error::{check_interrupt, Error, IoContext, Kind, Result};
use crate::fsutil::hex;
use crate::progress::{Progress, Stage, Unit};
use crate::safedir::Dir;
use crate::sqlite;

/// The checks, in the order they are reported.
pub const CHECKS: [&str; 9] =
    ["sidecar", "decrypt", "gzip", "tar", "manifest", "files", "integrity", "foreign_keys", "facts"];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pass,
    Fail,
    Skip,
}

#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub name: &'static str,
    pub status: Status,
    pub detail: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    pub archive: PathBuf,
    pub ok: bool,
    pub checks: Vec<Check>,
    pub bytes: u64,
    pub sha256: String,
    #[serde(skip)]
    pub manifest: Option<Manifest>,
    /// Encrypted, and the keys given cannot open it (none given, none matching, a wrong
    /// passphrase): what to pass. The archive is not to blame; it is not verified either.
    pub needs_key: Option<String>,
}

impl Verdict {
    pub fn failed(&self) -> impl Iterator<Item = &Check> {
        self.checks.iter().filter(|c| c.status == Status::Fail)
    }
    fn set(&mut self, name: &'static str, status: Status, detail: impl Into<String>) {
        let c = self.checks.iter_mut().find(|c| c.name == name).expect("known check");
        c.status = status;
        c.detail = detail.into();
    }
    fn status(&self, name: &str) -> Status {
        self.checks.iter().find(|c| c.name == name).map(|c| c.status).unwrap_or(Status::Skip)
    }
}

pub struct Options<'a> {
    /// Run the SQLite checks (they need `extract_to`).
    pub sqlite: bool,
    /// Extract the data files here: an empty directory that only kfadmin can write (the SQLite
    /// checks open the database in it by path); nothing in it is ever followed.
    pub extract_to: Option<&'a Dir>,
    /// The checksum the archive must have; otherwise the sidecar beside it, when present.
    pub expected_sha256: Option<&'a str>,
    /// What may decrypt an encrypted archive.
    pub keys: Option<&'a Keys>,
}

/// What the reader thread sends.
enum Msg {
    /// Encrypted archives first: whether the age header could be opened with the keys.
    Header(std::result::Result<(), crypto::DecryptFailure>),
    Data(Vec<u8>),
    /// Decryption (or reading) failed at this point of the stream.
    Failed(io::Error),
}

impl Msg {
    fn header(self) -> std::result::Result<(), crypto::DecryptFailure> {
        match self {
            Msg::Header(h) => h,
            _ => Err(crypto::DecryptFailure { why: "the reader sent no header".into(), key: false }),
        }
    }
}

/// Raw bytes of the file: hashed, counted, shown on the bar; a read error is kept, since it
/// is trouble on this machine, not in the archive.
struct HashRead<'a> {
    inner: File,
    hash: Sha256,
    bytes: u64,
    stage: &'a dyn Stage,
    error: Option<io::ErrorKind>,
}

impl Read for HashRead<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf).inspect_err(|e| self.error = Some(e.kind()))?;
        self.hash.update(&buf[..n]);
        self.bytes += n as u64;
        self.stage.inc(n as u64);
        Ok(n)
    }
}

/// The reader thread: read and hash the whole file, decrypt when it is encrypted, and send
/// the (plain) gzip stream in chunks. Returns the file's sha256 and length.
fn produce(
    file: File,
    encrypted: bool,
    keys: &Keys,
    stage: &dyn Stage,
    tx: SyncSender<Msg>,
    pool: &Pool,
) -> io::Result<(String, u64)> {
    let mut raw = HashRead { inner: file, hash: Sha256::new(), bytes: 0, stage, error: None };
    if !encrypted {
        pump(&mut raw, &tx, pool);
        drop(tx);
        // The rest of the file, even when decoding stopped early, for the sidecar check.
        let mut chunk = pool.take_len(1 << 20);
        while !crate::error::interrupt::requested() {
            if raw.read(&mut chunk)? == 0 {
                break;
            }
        }
        return hashed(raw);
    }
    // Encrypted: this thread decrypts while another one reads and hashes the file.
    std::thread::scope(|scope| {
        let (raw_tx, raw_rx) = mpsc::sync_channel::<Vec<u8>>(4);
        let reader = scope.spawn(move || read_all(raw, raw_tx, pool));
        let input = BufReader::with_capacity(
            64 << 10,
            Chunks { rx: raw_rx, chunk: Vec::new(), pos: 0, pool: pool.clone() },
        );
        match keys.decrypt(input) {
            Ok(stream) => {
                let _ = tx.send(Msg::Header(Ok(())));
                pump(stream, &tx, pool);
            }
            Err(why) => {
                let _ = tx.send(Msg::Header(Err(why)));
            }
        }
        drop(tx);
        reader.join().unwrap_or_else(|_| Err(io::Error::other("the archive reader stopped")))
    })
}

/// Read and hash the whole file, handing the bytes on while the decryption takes them (and
/// after it stopped, read on to the end: the sidecar check needs the whole file's hash).
fn read_all(mut raw: HashRead, tx: SyncSender<Vec<u8>>, pool: &Pool) -> io::Result<(String, u64)> {
    let mut open = true;
    while !crate::error::interrupt::requested() {
        let mut chunk = pool.take_len(1 << 20);
        let n = raw.read(&mut chunk)?;
        if n == 0 {
            pool.give(chunk);
            break;
        }
        chunk.truncate(n);
        if open {
            open = tx.send(chunk).is_ok();
        } else {
            pool.give(chunk);
        }
    }
    drop(tx);
    hashed(raw)
}

fn hashed(raw: HashRead) -> io::Result<(String, u64)> {
    if let Some(kind) = raw.error {
        return Err(io::Error::from(kind));
    }
    Ok((hex(&raw.hash.finalize()), raw.bytes))
}

/// The raw bytes from the reading thread, as a reader (end of file when it stops).
struct Chunks {
    rx: Receiver<Vec<u8>>,
    chunk: Vec<u8>,
    pos: usize,
    pool: Pool,
}

impl Read for Chunks {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.chunk.len() {
            match self.rx.recv() {
                Ok(c) => {
                    self.pool.give(std::mem::replace(&mut self.chunk, c));
                    self.pos = 0;
                }
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.chunk.len() - self.pos);
        buf[..n].copy_from_slice(&self.chunk[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// Send what `from` reads in blocks of the pool, each filled as far as the reads go, then the
/// error that stopped it, if one did.
fn pump(mut from: impl Read, tx: &SyncSender<Msg>, pool: &Pool) {
    loop {
        let mut chunk = pool.take_len(1 << 20);
        let (n, failed) = read_full(&mut from, &mut chunk);
        chunk.truncate(n);
        if n > 0 {
            if tx.send(Msg::Data(chunk)).is_err() {
                return; // the decoder stopped
            }
        } else {
            pool.give(chunk);
        }
        match failed {
            Some(e) => {
                let _ = tx.send(Msg::Failed(e));
                return;
            }
            None if n == 0 => return,
            None => {}
        }
    }
}

/// Read into `buf` until it is full, the reader ends, or it fails: how many bytes were read,
/// and the error that stopped it.
fn read_full(from: &mut impl Read, buf: &mut [u8]) -> (usize, Option<io::Error>) {
    let mut n = 0;
    while n < buf.len() {
        match from.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return (n, Some(e)),
        }
    }
    (n, None)
}

/// The decoder's end of the channel.
struct ChanReader {
    rx: Receiver<Msg>,
    chunk: Vec<u8>,
    pos: usize,
    failed: Arc<AtomicBool>,
    pool: Pool,
}

impl Read for ChanReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.chunk.len() {
            match self.rx.recv() {
                Ok(Msg::Data(c)) => {
                    self.pool.give(std::mem::replace(&mut self.chunk, c));
                    self.pos = 0;
                }
                Ok(Msg::Failed(e)) => {
                    self.failed.store(true, Ordering::SeqCst);
                    return Err(e);
                }
                Ok(Msg::Header(_)) => {}
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.chunk.len() - self.pos);
        buf[..n].copy_from_slice(&self.chunk[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// Remembers whether a layer (decryption, gzip) failed, to tell which one an error came from.
struct Watch<R> {
    inner: R,
    failed: Arc<AtomicBool>,
}

impl<R: Read> Read for Watch<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read(buf).inspect_err(|_| self.failed.store(true, Ordering::SeqCst))
    }
}

/// Checks an archive; `Err` only for trouble outside the archive (an unreadable file, a full
/// staging disk, an interrupt). Problems with the archive itself are failed checks.
pub fn verify(archive: &Path, opts: &Options, progress: &dyn Progress) -> Result<Verdict> {
    let (file, len) = open_archive(archive)?;
    let mut v = Verdict {
        archive: archive.to_path_buf(),
        ok: false,
        checks: CHECKS
            .iter()
            .map(|&name| Check { name, status: Status::Skip, detail: String::new() })
            .collect(),
        bytes: 0,
        sha256: String::new(),
        manifest: None,
        needs_key: None,
    };
    let expected = match opts.expected_sha256 {
        Some(h) => Some((h.to_string(), "the checksum computed while writing".to_string())),
        None => read_sidecar(archive, &mut v),
    };
    let stage = progress.stage("verify", len, Unit::Bytes);
    let encrypted = crypto::is_encrypted(archive);
    let plain_tar = !encrypted && is_plain_tar(&file);
    let no_keys = Keys::default();
    let keys = opts.keys.unwrap_or(&no_keys);
    let stage_ref: &dyn Stage = stage.as_ref();
    // Two threads: one reads the file, hashes it for the sidecar and decrypts; this one
    // decompresses, walks the tar and hashes the files.
    // The chunks handed between the two threads are recycled through this pool.
    let pool = Pool::new();
    let pool_ref = &pool;
    let produced = std::thread::scope(|scope| -> Result<(String, u64)> {
        let (tx, rx) = mpsc::sync_channel::<Msg>(4);
        let producer = scope.spawn(move || produce(file, encrypted, keys, stage_ref, tx, pool_ref));
        let header = encrypted.then(|| {
            rx.recv().map_or_else(
                |_| Err(crypto::DecryptFailure { why: "the reader stopped".into(), key: false }),
                Msg::header,
            )
        });
        let outside = if judge_header(header, keys, opts, &mut v) {
            read_tar(rx, opts, len, encrypted, &mut v, &pool)
        } else {
            drop(rx);
            None
        };
        let hashed =
            producer.join().expect("the reader thread does not panic").ctx("cannot read", archive)?;
        match outside {
            Some(e) => Err(e),
            None => Ok(hashed),
        }
    });
    let (sha256, bytes) = produced?;
    stage.finish();
    v.bytes = bytes;
    v.sha256 = sha256;
    if plain_tar && v.status("gzip") == Status::Fail {
        v.set(
            "gzip",
            Status::Fail,
            format!("it is a plain tar, not gzip-compressed: {}", hand_made(archive)),
        );
    }
    conclude(&mut v, expected, opts, encrypted)?;
    Ok(v)
}

/// What `verify` and `restore` say about a tar that is not a kfadmin archive.
pub fn hand_made(archive: &Path) -> String {
    format!(
        "this looks like a tarball made by hand; turn it into a kfadmin archive with: kfadmin import {}",
        archive.display()
    )
}

/// Whether a file starts with a tar header (`ustar` at offset 257) and not with gzip's magic.
fn is_plain_tar(file: &File) -> bool {
    use std::os::unix::fs::FileExt;
    let mut head = [0u8; 262];
    matches!(file.read_at(&mut head, 0), Ok(262)) && head[..2] != [0x1f, 0x8b] && &head[257..262] == b"ustar"
}

/// The archive, opened for reading, and its length; a missing path or a directory is bad input.
fn open_archive(archive: &Path) -> Result<(File, u64)> {
    let file = match File::open(archive) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(Error::usage(format!("archive {} does not exist", archive.display()))
                .hint("pass the path of a .tar.gz that kfadmin backup wrote; `ls` its directory"))
        }
        Err(e) => return Err(Error::io("cannot read", archive, e).kind(Kind::Usage)),
    };
    let meta = file.metadata().ctx("cannot read", archive)?;
    if !meta.is_file() {
        return Err(Error::usage(format!("{} is not a file", archive.display())));
    }
    Ok((file, meta.len()))
}

/// Whether the contents can be read: not encrypted, or the age header opened with the keys.
fn judge_header(
    header: Option<std::result::Result<(), crypto::DecryptFailure>>,
    keys: &Keys,
    opts: &Options,
    v: &mut Verdict,
) -> bool {
    match header {
        None => {
            v.set("decrypt", Status::Skip, "not encrypted");
            true
        }
        Some(Ok(())) => {
            v.set("decrypt", Status::Pass, "age: the header and every chunk authenticate");
            true
        }
        Some(Err(f)) if keys.is_empty() && !opts.sqlite => {
            v.set("decrypt", Status::Skip, format!("{}; the contents were not checked", f.why));
            false
        }
        // No key to open it: nothing is known against the archive, and it is not verified.
        Some(Err(f)) if f.key => {
            v.set("decrypt", Status::Skip, format!("{}; the contents were not checked", f.why));
            v.needs_key = Some(f.why);
            false
        }
        Some(Err(f)) => {
            v.set("decrypt", Status::Fail, f.why);
            false
        }
    }
}

/// Decompress and walk the tar the reader thread sends, and tell which layer failed (age, gzip
/// or tar). Returns trouble outside the archive (a full staging disk, an interrupt).
fn read_tar(
    rx: Receiver<Msg>,
    opts: &Options,
    len: u64,
    encrypted: bool,
    v: &mut Verdict,
    pool: &Pool,
) -> Option<Error> {
    let dec_failed = Arc::new(AtomicBool::new(false));
    let gz_failed = Arc::new(AtomicBool::new(false));
    let chan =
        ChanReader { rx, chunk: Vec::new(), pos: 0, failed: Arc::clone(&dec_failed), pool: pool.clone() };
    let gz = Watch { inner: MultiGzDecoder::new(chan), failed: Arc::clone(&gz_failed) };
    let mut tar = tar::Archive::new(gz);
    let walked = walk(&mut tar, opts, len, v);
    // Read whatever the tar layer left: the gzip trailer, trailing members, trailing junk.
    let mut gz = tar.into_inner();
    let drained = match &walked {
        Ok(()) => drain(&mut gz),
        Err(_) => Ok(0),
    };
    drop(gz); // lets the reader thread stop decrypting and finish hashing
    match (walked, drained) {
        (Err(Walk::Outside(e)), _) => return Some(e),
        (Err(Walk::Archive(e)), _) | (Ok(()), Err(e)) => {
            if dec_failed.load(Ordering::SeqCst) && encrypted {
                v.set("decrypt", Status::Fail, format!("the encrypted stream is damaged or truncated: {e}"));
            } else if gz_failed.load(Ordering::SeqCst) {
                v.set("gzip", Status::Fail, format!("the gzip stream is damaged: {e}"));
            } else {
                v.set("gzip", Status::Pass, "");
                v.set("tar", Status::Fail, format!("the tar stream is damaged: {e}"));
            }
        }
        (Ok(()), Ok(0)) => v.set("gzip", Status::Pass, "every member's CRC-32 matches"),
        (Ok(()), Ok(junk)) => {
            v.set("gzip", Status::Pass, "every member's CRC-32 matches");
            v.set(
                "tar",
                Status::Fail,
                format!("{junk} bytes that are not zero follow the end of the tar archive"),
            );
        }
    }
    None
}

/// The checks that follow the read: tar, the sidecar, SQLite (when asked and the files
/// matched), and the verdict.
fn conclude(
    v: &mut Verdict,
    expected: Option<(String, String)>,
    opts: &Options,
    encrypted: bool,
) -> Result<()> {
    if v.status("tar") == Status::Skip
        && v.status("gzip") == Status::Pass
        && v.status("manifest") != Status::Skip
    {
        v.set("tar", Status::Pass, "only regular files and directories, all under data/, no duplicates");
    }

    if let Some((want, from)) = expected {
        if want == v.sha256 {
            v.set("sidecar", Status::Pass, format!("sha256 matches {from}"));
        } else {
            v.set("sidecar", Status::Fail, format!("sha256 is {} but {from} says {want}", v.sha256));
        }
    }

    let files_ok = v.status("files") == Status::Pass;
    // A pre-restore copy of a damaged database is kept as it was: its files are checked, its
    // database is not (it is known not to pass).
    let damaged = v
        .manifest
        .as_ref()
        .filter(|m| m.mode == crate::archive::Mode::PreRestore)
        .and_then(|m| m.damaged.clone());
    if let Some(d) = &damaged {
        for n in ["integrity", "foreign_keys", "facts"] {
            v.set(n, Status::Skip, format!("a damaged database kept as it was before a restore ({d})"));
        }
    } else if opts.sqlite && files_ok {
        if let (Some(dir), Some(m)) = (opts.extract_to, v.manifest.clone()) {
            sqlite_checks(&dir.display(sqlite::DB_FILE), &m, v)?;
        }
    }
    let no_fail = v.checks.iter().all(|c| c.status != Status::Fail);
    if !no_fail {
        // A failed check (a sidecar that does not match) says the file is damaged: that is the
        // verdict, whatever the keys could or could not open (a damaged header opens with none).
        v.needs_key = None;
    }
    v.ok = if v.needs_key.is_some() {
        false
    } else if encrypted && v.status("decrypt") == Status::Skip {
        // Encrypted and no key given to a quick check: the sidecar is all that can be checked.
        no_fail && v.status("sidecar") == Status::Pass
    } else {
        no_fail
            && ["gzip", "tar", "manifest", "files"].iter().all(|n| v.status(n) == Status::Pass)
            && (!opts.sqlite
                || damaged.is_some()
                || ["integrity", "foreign_keys", "facts"].iter().all(|n| v.status(n) == Status::Pass))
    };
    Ok(())
}

/// Read what follows the end of the tar (its last zero block, the gzip trailer, any further
/// members); the number of bytes among them that are not zero.
fn drain(from: &mut impl Read) -> io::Result<u64> {
    let mut buf = vec![0u8; 64 << 10];
    let mut junk = 0u64;
    loop {
        match from.read(&mut buf) {
            Ok(0) => return Ok(junk),
            Ok(n) => junk += buf[..n].iter().filter(|&&b| b != 0).count() as u64,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

fn read_sidecar(archive: &Path, v: &mut Verdict) -> Option<(String, String)> {
    let sidecar = PathBuf::from(format!("{}.sha256", archive.display()));
    match std::fs::read_to_string(&sidecar) {
        Err(_) => {
            v.set("sidecar", Status::Skip, format!("no {} beside the archive", sidecar.display()));
            None
        }
        Ok(text) => {
            let word = text.split_whitespace().next().unwrap_or("");
            if word.len() == 64 && word.bytes().all(|b| b.is_ascii_hexdigit()) {
                Some((word.to_ascii_lowercase(), sidecar.display().to_string()))
            } else {
                v.set("sidecar", Status::Fail, format!("{} is not in sha256sum format", sidecar.display()));
                None
            }
        }
    }
}

enum Walk {
    /// The archive is damaged: reported as a failed gzip or tar check.
    Archive(io::Error),
    /// Trouble on our side (staging disk full, interrupt): the whole command fails.
    Outside(Error),
}

impl From<io::Error> for Walk {
    fn from(e: io::Error) -> Self {
        Walk::Archive(e)
    }
}

/// Whether the walk goes on after an entry, or stops (the verdict says why).
enum Flow {
    Next,
    Stop,
}

/// What the walk through the tar has seen so far.
struct Walker<'a> {
    opts: &'a Options<'a>,
    /// The length of the archive file, which bounds what it can hold.
    archive_bytes: u64,
    seen: HashSet<PathBuf>,
    /// The manifest's files by path (an archive may list many thousands).
    wanted: HashMap<String, FileEntry>,
    files_seen: HashSet<String>,
    /// Paths already reported as wrong.
    wrong: HashSet<String>,
    problems: Vec<String>,
    buf: Vec<u8>,
}

/// Walk the tar: the manifest first, then `data/…`, every entry checked before it is used.
fn walk<R: Read>(
    tar: &mut tar::Archive<R>,
    opts: &Options,
    archive_bytes: u64,
    v: &mut Verdict,
) -> std::result::Result<(), Walk> {
    let mut w = Walker {
        opts,
        archive_bytes,
        seen: HashSet::new(),
        wanted: HashMap::new(),
        files_seen: HashSet::new(),
        wrong: HashSet::new(),
        problems: Vec::new(),
        buf: vec![0u8; 1 << 20],
    };
    let mut entries = entry::entries(tar)?;
    for i in 0.. {
        check_interrupt().map_err(Walk::Outside)?;
        let (mut entry, name) = match entry::next_named(&mut entries, false) {
            Ok(Some(named)) => (named.entry, named.name),
            Ok(None) => break,
            Err(Next::Io(e)) => return Err(Walk::Archive(e)),
            Err(Next::Refused(why)) => {
                v.set("tar", Status::Fail, why);
                return Ok(());
            }
        };
        if i == 0 && name != MANIFEST_NAME.as_bytes() {
            not_an_archive(&entry, &name, v);
            return Ok(());
        }
        let Some(path) = w.admit(&entry, &name, v) else { return Ok(()) };
        let flow = if i == 0 { w.manifest(&mut entry, v)? } else { w.data(&mut entry, &path, v)? };
        if let Flow::Stop = flow {
            return Ok(());
        }
    }
    w.finish(v);
    Ok(())
}

/// The first entry is not the manifest: most likely a tarball made by hand (say how to import
/// it), and say what is wrong with the entry itself too.
fn not_an_archive<R: Read>(entry: &tar::Entry<R>, raw: &[u8], v: &mut Verdict) {
    let kind = entry.header().entry_type();
    let name = entry::cut(raw);
    let why = format!("the first entry is {name}, not {MANIFEST_NAME}: {}", hand_made(&v.archive));
    v.set("manifest", Status::Fail, why);
    if let Err(why) = safe_path(raw, Dot::Refuse) {
        v.set("tar", Status::Fail, format!("unsafe entry: {why}"));
    } else if !entry::is_file(kind) && kind != tar::EntryType::Directory {
        v.set("tar", Status::Fail, format!("{name} is a {}", kind_name(kind)));
    }
}

impl Walker<'_> {
    /// The entry's path when it is a safe, new path of an allowed kind; None (and a failed
    /// check) otherwise.
    fn admit<R: Read>(&mut self, entry: &tar::Entry<R>, raw: &[u8], v: &mut Verdict) -> Option<PathBuf> {
        let kind = entry.header().entry_type();
        let path = match safe_path(raw, Dot::Refuse) {
            Ok(p) => p,
            Err(why) => {
                v.set("tar", Status::Fail, format!("unsafe entry: {why}"));
                return None;
            }
        };
        if !self.seen.insert(path.clone()) {
            v.set("tar", Status::Fail, format!("{} appears twice", entry::shown(&path)));
            return None;
        }
        let allowed = entry::is_file(kind) || (kind == tar::EntryType::Directory && path.starts_with("data"));
        if !allowed {
            let why = format!(
                "{} is a {}; kfadmin archives hold only regular files and directories",
                entry::shown(&path),
                kind_name(kind)
            );
            v.set("tar", Status::Fail, why);
            return None;
        }
        Some(path)
    }

    /// The first entry: the manifest, read within its bound and checked before anything of the
    /// archive is trusted.
    fn manifest<R: Read>(
        &mut self,
        entry: &mut tar::Entry<R>,
        v: &mut Verdict,
    ) -> std::result::Result<Flow, Walk> {
        let size = entry.header().size()?;
        if let Some(problem) = manifest::unread_size_problem(size) {
            v.set("manifest", Status::Fail, problem);
            return Ok(Flow::Stop);
        }
        let mut json = Vec::with_capacity(size as usize);
        entry.take(size).read_to_end(&mut json)?;
        let m = match manifest::parse(&json) {
            Ok(m) => m,
            Err(problem) => {
                v.set("manifest", Status::Fail, problem);
                return Ok(Flow::Stop);
            }
        };
        if m.format != FORMAT || m.format_version != FORMAT_VERSION {
            let why = format!(
                "format {} version {} is not known to kfadmin {} (it reads {FORMAT} version {FORMAT_VERSION}); use a newer kfadmin",
                m.format,
                m.format_version,
                env!("CARGO_PKG_VERSION")
            );
            v.set("manifest", Status::Fail, why);
            return Ok(Flow::Stop);
        }
        if let Some(problem) = manifest_problem(&m).or_else(|| declared_problem(&m, self.archive_bytes)) {
            v.set("manifest", Status::Fail, problem);
            return Ok(Flow::Stop);
        }
        if let Some(dir) = self.opts.extract_to {
            check_room(dir, &m).map_err(Walk::Outside)?;
        }
        let origin = match &m.import {
            Some(i) if i.salvaged.is_some() => format!(
                ", imported from {}, SALVAGED: its database had failed its checks; this holds what could be read of it",
                i.tarball.file_name
            ),
            Some(i) => format!(", imported from {}", i.tarball.file_name),
            None => String::new(),
        };
        let detail = format!("format version {}, {} file(s){origin}", m.format_version, m.files.len());
        v.set("manifest", Status::Pass, detail);
        self.wanted = m.files.iter().map(|f| (f.path.clone(), f.clone())).collect();
        v.manifest = Some(m);
        Ok(Flow::Next)
    }

    /// An entry under `data/`: a directory (made in the extraction), or a file hashed (and
    /// extracted) against what the manifest says of it.
    fn data<R: Read>(
        &mut self,
        entry: &mut tar::Entry<R>,
        path: &Path,
        v: &mut Verdict,
    ) -> std::result::Result<Flow, Walk> {
        if !path.starts_with("data") {
            v.set("tar", Status::Fail, format!("{} is outside data/", entry::shown(path)));
            return Ok(Flow::Stop);
        }
        if entry.header().entry_type() == tar::EntryType::Directory {
            if let Some(file) = listed_file_at_or_above(path, &self.wanted) {
                let why =
                    format!("{} is a directory, but the manifest lists {file} as a file", path.display());
                v.set("tar", Status::Fail, why);
                return Ok(Flow::Stop);
            }
            if let (Some(dir), Ok(rel)) = (self.opts.extract_to, path.strip_prefix("data")) {
                dir.walk(rel, Some(0o700)).map_err(Walk::Outside)?;
            }
            return Ok(Flow::Next);
        }
        let name = path.to_string_lossy().into_owned();
        let Some(want) = self.wanted.get(&name).cloned() else {
            self.problems.push(format!("{name} is in the archive but not in the manifest"));
            return Ok(Flow::Next);
        };
        let size = entry.header().size()?;
        if size != want.size {
            self.problems.push(format!("{name} is {size} bytes, the manifest says {}", want.size));
            self.wrong.insert(name);
            return Ok(Flow::Next);
        }
        let (sum, got) = self.hash(entry, path)?;
        if got != want.size {
            self.problems.push(format!("{name} ends after {got} of {} bytes", want.size));
        } else if sum != want.sha256 {
            self.problems.push(format!("{name} has sha256 {sum}, the manifest says {}", want.sha256));
        }
        self.files_seen.insert(name);
        Ok(Flow::Next)
    }

    /// Read a file entry to its end: its sha256 and length, extracted on the way when asked.
    fn hash<R: Read>(
        &mut self,
        entry: &mut tar::Entry<R>,
        path: &Path,
    ) -> std::result::Result<(String, u64), Walk> {
        let mut out = match self.opts.extract_to {
            Some(dir) => Some(extract_file(dir, path).map_err(Walk::Outside)?),
            None => None,
        };
        let mut h = Sha256::new();
        let mut got = 0u64;
        loop {
            check_interrupt().map_err(Walk::Outside)?;
            let n = entry.read(&mut self.buf)?;
            if n == 0 {
                break;
            }
            h.update(&self.buf[..n]);
            got += n as u64;
            if let Some((f, target)) = out.as_mut() {
                f.write_all(&self.buf[..n]).ctx("cannot write", target).map_err(Walk::Outside)?;
            }
        }
        // Not synced one by one: a restore syncs the whole staging filesystem once before it
        // swaps anything in (an fsync per file made 50,000 small files take minutes).
        Ok((hex(&h.finalize()), got))
    }

    /// After the last entry: every listed file was there and matched.
    fn finish(self, v: &mut Verdict) {
        let Some(m) = v.manifest.as_ref() else {
            let why = format!("the archive holds no {MANIFEST_NAME}; is it a kfadmin archive?");
            v.set("manifest", Status::Fail, why);
            return;
        };
        let mut problems = self.problems;
        for f in &m.files {
            if !self.files_seen.contains(&f.path) && !self.wrong.contains(&f.path) {
                problems.push(format!("{} is in the manifest but missing from the archive", f.path));
            }
        }
        if problems.is_empty() {
            v.set(
                "files",
                Status::Pass,
                format!("{} file(s), sizes and sha256 match", self.files_seen.len()),
            );
        } else {
            v.set("files", Status::Fail, problems.join("; "));
        }
    }
}

/// Room to unpack `m` in `dir`, with room to spare.
fn check_room(dir: &Dir, m: &Manifest) -> Result<()> {
    let need: u64 = m.files.iter().map(|f| f.size).sum();
    let entries = (m.files.len() + m.dirs.len()) as u64;
    dir.ensure_room(
        need,
        entries,
        "to unpack the backup",
        "free some space there, or unpack elsewhere: --tmp-dir DIR (a private directory on a filesystem with room)",
    )
}

/// A new private file for the archive's `data/…` entry `path` under `dir`, its directories
/// created on the way, nothing followed.
fn extract_file(dir: &Dir, path: &Path) -> Result<(File, PathBuf)> {
    let rel = path
        .strip_prefix("data")
        .map_err(|_| Error::failed(format!("{} is outside data/", path.display())))?;
    let name =
        rel.file_name().ok_or_else(|| Error::failed(format!("{} has no file name", path.display())))?;
    let parent = dir.walk(rel.parent().unwrap_or(Path::new("")), Some(0o700))?;
    Ok((parent.create_file(name, 0o600)?, dir.display(rel)))
}

/// `path` or the first of its parents that the manifest lists as a file.
fn listed_file_at_or_above<'a>(path: &'a Path, files: &HashMap<String, FileEntry>) -> Option<&'a str> {
    path.ancestors().filter_map(|p| p.to_str()).find(|p| files.contains_key(*p))
}

/// A manifest that lists a path twice, or a file inside another file, cannot be unpacked.
fn layout_problem(m: &Manifest) -> Option<String> {
    let mut paths: HashSet<&str> = HashSet::with_capacity(m.files.len());
    for f in &m.files {
        if !paths.insert(&f.path) {
            return Some(format!("the manifest lists {} twice", f.path));
        }
    }
    for f in &m.files {
        let mut above = Path::new(&f.path).ancestors().skip(1).filter_map(|p| p.to_str());
        if let Some(file) = above.find(|p| paths.contains(p)) {
            return Some(format!("the manifest lists {} inside the file {file}", f.path));
        }
    }
    None
}

/// What must hold in any manifest before its files are trusted (the writer checks it too).
pub fn manifest_problem(m: &Manifest) -> Option<String> {
    let db = format!("data/{}", sqlite::DB_FILE);
    if m.file(&db).is_none() {
        return Some(format!("the manifest lists no {db}"));
    }
    if let Some(problem) = layout_problem(m) {
        return Some(problem);
    }
    // kfadmin's own entries (safety and staging directories) are never in a backup (every copy
    // leaves them out): restoring one would put files where kfadmin keeps what it replaced.
    let own = m.files.iter().map(|f| &f.path).chain(m.dirs.iter().map(|d| &d.path)).find(|p| {
        Path::new(p).components().any(|c| c.as_os_str().as_encoded_bytes().starts_with(b".kfadmin-"))
    });
    if let Some(p) = own {
        return Some(format!(
            "the manifest lists {p}, a name kfadmin keeps for its own safety and staging directories; no kfadmin backup carries one"
        ));
    }
    for f in &m.files {
        match safe_path(f.path.as_bytes(), Dot::Refuse) {
            Ok(p) if p.starts_with("data") && p != Path::new("data") => {}
            Ok(_) => return Some(format!("the manifest lists {:?}, outside data/", f.path)),
            Err(why) => return Some(format!("the manifest lists an unsafe path: {why}")),
        }
        if f.path.ends_with("-shm") {
            return Some(format!("the manifest lists {}; a -shm file is never archived", f.path));
        }
        // Only a listed database's sidecars are SQLite's: `attachments/travel-journal` is a file.
        let beside_a_db = |suffix: &str| {
            f.path.strip_suffix(suffix).is_some_and(|base| m.files.iter().any(|g| g.path == base))
        };
        // A pre-restore copy of a damaged database keeps its -wal and hot journal as they were
        // (SQLite could not fold them into it): restoring it puts back exactly what was there.
        let kept_as_it_was = m.mode == crate::archive::Mode::PreRestore && m.damaged.is_some();
        if beside_a_db("-wal") && f.size > 0 && !kept_as_it_was {
            return Some(format!(
                "the manifest lists a non-empty {}; a backup never carries WAL frames",
                f.path
            ));
        }
        if beside_a_db("-journal") && f.size > 0 && !kept_as_it_was {
            return Some(format!(
                "the manifest lists a non-empty {}: a hot rollback journal, which SQLite would roll back into the database on its next open; a backup never carries one",
                f.path
            ));
        }
    }
    let mut dirs = HashSet::new();
    for d in &m.dirs {
        match safe_path(d.path.as_bytes(), Dot::Refuse) {
            Ok(p) if p.starts_with("data") => {}
            Ok(_) => return Some(format!("the manifest lists the directory {:?}, outside data/", d.path)),
            Err(why) => return Some(format!("the manifest lists an unsafe directory: {why}")),
        }
        if !dirs.insert(d.path.as_str()) || m.file(&d.path).is_some() {
            return Some(format!("the manifest lists {} twice", d.path));
        }
    }
    None
}

fn declared_problem(m: &Manifest, archive_bytes: u64) -> Option<String> {
    let declared = m.files.iter().try_fold(0u64, |sum, f| sum.checked_add(f.size));
    entry::declared_problem(declared, archive_bytes, entry::MAX_RATIO, "the manifest lists", "an archive")
}

fn sqlite_checks(db: &Path, m: &Manifest, v: &mut Verdict) -> Result<()> {
    let conn = match sqlite::open_immutable(db) {
        Ok(c) => c,
        Err(e) => {
            v.set("integrity", Status::Fail, format!("{e:#}"));
            return Ok(());
        }
    };
    match sqlite::check(&conn, true) {
        Ok(p) if p.is_empty() => v.set("integrity", Status::Pass, "PRAGMA integrity_check: ok"),
        Ok(p) => v.set("integrity", Status::Fail, first_problems(&p)),
        Err(e) => {
            v.set("integrity", Status::Fail, format!("{e:#}"));
            return Ok(());
        }
    }
    match sqlite::foreign_key_check(&conn) {
        Ok(p) if p.is_empty() => {
            v.set("foreign_keys", Status::Pass, "PRAGMA foreign_key_check: no violations")
        }
        Ok(p) => v.set("foreign_keys", Status::Fail, first_problems(&p)),
        Err(e) => v.set("foreign_keys", Status::Fail, format!("{e:#}")),
    }
    match sqlite::facts(&conn, db) {
        Ok(f) if f == m.database => v.set(
            "facts",
            Status::Pass,
            format!(
                "{} pages of {} bytes, {} tables, schema version {}",
                f.page_count,
                f.page_size,
                f.tables.len(),
                f.schema_version.map(|v| v.to_string()).unwrap_or_else(|| "-".into())
            ),
        ),
        Ok(f) => v.set("facts", Status::Fail, facts_diff(&m.database, &f)),
        Err(e) => v.set("facts", Status::Fail, format!("{e:#}")),
    }
    Ok(())
}

fn facts_diff(want: &sqlite::DbFacts, got: &sqlite::DbFacts) -> String {
    let mut d = Vec::new();
    if want.page_size != got.page_size {
        d.push(format!("page_size {} (manifest {})", got.page_size, want.page_size));
    }
    if want.page_count != got.page_count {
        d.push(format!("page_count {} (manifest {})", got.page_count, want.page_count));
    }
    if want.journal_mode != got.journal_mode {
        d.push(format!("journal_mode {:?} (manifest {:?})", got.journal_mode, want.journal_mode));
    }
    if want.user_version != got.user_version {
        d.push(format!("user_version {} (manifest {})", got.user_version, want.user_version));
    }
    if want.schema_version != got.schema_version {
        d.push(format!("schema version {:?} (manifest {:?})", got.schema_version, want.schema_version));
    }
    for (t, n) in &want.tables {
        match got.tables.get(t) {
            Some(g) if g == n => {}
            Some(g) => d.push(format!("table {t} has {g} rows (manifest {n})")),
            None => d.push(format!("table {t} is missing")),
        }
    }
    for t in got.tables.keys().filter(|t| !want.tables.contains_key(*t)) {
        d.push(format!("table {t} is not in the manifest"));
    }
    format!("the database does not match its manifest: {}", d.join(", "))
}

/// The first problems SQLite found, and how many more: a damaged database can have thousands,
/// and a verdict's detail is one line.
fn first_problems(p: &[String]) -> String {
    const SHOWN: usize = 10;
    let mut s = p.iter().take(SHOWN).cloned().collect::<Vec<_>>().join("; ");
    if p.len() > SHOWN {
        s.push_str(&format!("; … and {} more", p.len() - SHOWN));
    }
    s
}
