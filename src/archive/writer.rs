//! Writes a v1 archive atomically: `<final>.partial` (mode 0600), fsync, check, hard link to
//! the final name (never replacing a file), fsync of the directory, then the `.sha256`
//! sidecar the same way. A file under a final name is always complete and checked.

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::manifest::{Manifest, MANIFEST_NAME};
use super::pargz::ParGzWriter;
use crate::crypto::Encryption;
use crate::error::{check_interrupt, Error, IoContext, Result};
use crate::fsutil::{create_new, fsync_dir, hex, write_atomic, Partial};
use crate::progress::{Progress, Stage, Unit};

/// The finished archive.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Written {
    pub path: PathBuf,
    pub sidecar: PathBuf,
    pub sha256: String,
    pub bytes: u64,
}

/// How to compress.
#[derive(Debug, Clone, Copy)]
pub struct Compression {
    pub level: u32,
    pub threads: usize,
}

impl Default for Compression {
    fn default() -> Self {
        let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
        Compression { level: 6, threads }
    }
}

/// `<name>-<UTC YYYYMMDDTHHMMSSZ>-<mode>.tar.gz`, with `.age` when encrypted.
pub fn file_name(name: &str, created_unix: u64, mode: &str, encrypted: bool) -> String {
    let stamp = humantime::format_rfc3339_seconds(
        std::time::UNIX_EPOCH + std::time::Duration::from_secs(created_unix),
    )
    .to_string()
    .replace(['-', ':'], "");
    format!("{name}-{stamp}-{mode}.tar.gz{}", if encrypted { ".age" } else { "" })
}

/// Where the gzip stream goes: the file, or an age stream into the file.
enum Sink {
    Plain(HashWriter<File>),
    Age(age::stream::StreamWriter<HashWriter<File>>),
}

impl Write for Sink {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        match self {
            Sink::Plain(w) => w.write(data),
            Sink::Age(w) => w.write(data),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Sink::Plain(w) => w.flush(),
            Sink::Age(w) => w.flush(),
        }
    }
}

impl Sink {
    fn finish(self) -> io::Result<HashWriter<File>> {
        match self {
            Sink::Plain(w) => Ok(w),
            Sink::Age(w) => w.finish(),
        }
    }
}

/// Hands the compressed stream to a thread that encrypts (when asked) and writes it, so
/// encryption and the disk overlap with compression.
struct Threaded {
    tx: Option<std::sync::mpsc::SyncSender<Vec<u8>>>,
    thread: Option<std::thread::JoinHandle<io::Result<Sink>>>,
}

impl Threaded {
    fn spawn(mut sink: Sink) -> Threaded {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(4);
        let thread = std::thread::spawn(move || {
            for chunk in rx {
                sink.write_all(&chunk)?;
            }
            Ok(sink)
        });
        Threaded { tx: Some(tx), thread: Some(thread) }
    }

    /// The writing thread's error, once it has stopped.
    fn failure(&mut self) -> io::Error {
        self.tx.take();
        match self.thread.take().map(|t| t.join()) {
            Some(Ok(Err(e))) => e,
            _ => io::Error::other("the archive writer stopped"),
        }
    }

    fn finish(mut self) -> io::Result<Sink> {
        self.tx.take();
        match self.thread.take().map(|t| t.join()) {
            Some(Ok(r)) => r,
            _ => Err(io::Error::other("the archive writer stopped")),
        }
    }
}

impl Write for Threaded {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let tx = self.tx.as_ref().ok_or_else(|| io::Error::other("the archive writer stopped"))?;
        if tx.send(data.to_vec()).is_err() {
            return Err(self.failure());
        }
        Ok(data.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for Threaded {
    fn drop(&mut self) {
        self.tx.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Hashes and counts what goes to the file.
struct HashWriter<W> {
    inner: W,
    hash: Sha256,
    bytes: u64,
}

impl<W: Write> Write for HashWriter<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(data)?;
        self.hash.update(&data[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Counts the uncompressed bytes for the progress bar and stops on Ctrl-C.
struct Tick<'a, W> {
    inner: W,
    stage: &'a dyn Stage,
}

impl<W: Write> Write for Tick<'_, W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if crate::error::interrupt::requested() {
            return Err(io::Error::other(Error::interrupted()));
        }
        let n = self.inner.write(data)?;
        self.stage.inc(n as u64);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

fn tar_err(e: io::Error, path: &Path) -> Error {
    match e.get_ref().and_then(|i| i.downcast_ref::<Error>()) {
        Some(inner) if inner.kind == crate::error::Kind::Interrupted => Error::interrupted(),
        _ => Error::io("cannot write the archive", path, e),
    }
}

/// Write `manifest` and then `files` (archive path, file on disk) into `out_dir/file_name`.
/// `check` runs on the fsynced `.partial` before it gets its final name; an error from it
/// removes the partial.
#[allow(clippy::too_many_arguments)]
pub fn write(
    out_dir: &Path,
    file_name: &str,
    manifest: &Manifest,
    files: &[PathBuf],
    compression: Compression,
    encryption: &Encryption,
    progress: &dyn Progress,
    check: impl FnOnce(&Path, &str) -> Result<()>,
) -> Result<Written> {
    let final_path = out_dir.join(file_name);
    if final_path.symlink_metadata().is_ok() {
        return Err(Error::failed(format!("{} already exists", final_path.display()))
            .hint("another backup was written in the same second; wait a second and run again"));
    }
    let partial = Partial::new(out_dir.join(format!("{file_name}.partial")));
    let file = create_new(partial.path(), 0o600)?;
    let (sha256, bytes) =
        write_tar(file, partial.path(), manifest, files, compression, encryption, progress)?;
    check(partial.path(), &sha256)?;

    std::fs::hard_link(partial.path(), &final_path)
        .or_else(|_| {
            if final_path.symlink_metadata().is_ok() {
                Err(io::Error::from(io::ErrorKind::AlreadyExists))
            } else {
                std::fs::rename(partial.path(), &final_path)
            }
        })
        .ctx("cannot give the archive its final name", &final_path)?;
    drop(partial);
    let done = Partial::new(final_path.clone());
    fsync_dir(out_dir)?;

    let sidecar = PathBuf::from(format!("{}.sha256", final_path.display()));
    write_atomic(&sidecar, format!("{sha256}  {file_name}\n").as_bytes(), 0o600)?;
    done.keep();
    Ok(Written { path: final_path, sidecar, sha256, bytes })
}

fn write_tar(
    file: File,
    path: &Path,
    manifest: &Manifest,
    files: &[PathBuf],
    compression: Compression,
    encryption: &Encryption,
    progress: &dyn Progress,
) -> Result<(String, u64)> {
    let total: u64 = manifest.files.iter().map(|f| f.size).sum();
    let stage = progress.stage(if encryption.is_some() { "encrypt" } else { "compress" }, total, Unit::Bytes);
    let hashed = HashWriter { inner: file, hash: Sha256::new(), bytes: 0 };
    let sink = match encryption.encryptor()? {
        None => Sink::Plain(hashed),
        Some(enc) => Sink::Age(enc.wrap_output(hashed).ctx("cannot write", path)?),
    };
    let gz = ParGzWriter::new(Threaded::spawn(sink), compression.level, compression.threads);
    let mut tar = tar::Builder::new(Tick { inner: gz, stage: stage.as_ref() });

    let json = serde_json::to_vec_pretty(manifest).expect("manifest serializes");
    let mtime = manifest.created_unix;
    let mut h = header(tar::EntryType::Regular, json.len() as u64, 0o600, 0, 0, mtime);
    tar.append_data(&mut h, MANIFEST_NAME, &json[..]).map_err(|e| tar_err(e, path))?;

    if manifest.dirs.is_empty() {
        let (uid, gid) = manifest.files.first().map(|f| (f.uid, f.gid)).unwrap_or((0, 0));
        let mut h = header(tar::EntryType::Directory, 0, 0o700, uid, gid, mtime);
        tar.append_data(&mut h, "data/", io::empty()).map_err(|e| tar_err(e, path))?;
    }
    for d in &manifest.dirs {
        let mut h = header(tar::EntryType::Directory, 0, d.mode, d.uid, d.gid, mtime);
        tar.append_data(&mut h, format!("{}/", d.path), io::empty()).map_err(|e| tar_err(e, path))?;
    }

    for (entry, disk) in manifest.files.iter().zip(files) {
        check_interrupt()?;
        let f = File::open(disk).ctx("cannot read", disk)?;
        let len = f.metadata().ctx("cannot read", disk)?.len();
        if len != entry.size {
            return Err(Error::failed(format!(
                "{} changed while it was archived ({} bytes, expected {})",
                disk.display(),
                len,
                entry.size
            )));
        }
        let mut h = header(tar::EntryType::Regular, entry.size, entry.mode, entry.uid, entry.gid, mtime);
        tar.append_data(&mut h, &entry.path, io::Read::take(f, entry.size)).map_err(|e| tar_err(e, path))?;
    }
    let tick = tar.into_inner().map_err(|e| tar_err(e, path))?;
    stage.finish();
    let threaded = tick.inner.finish().map_err(|e| tar_err(e, path))?;
    let sink = threaded.finish().map_err(|e| tar_err(e, path))?;
    let mut sink = sink.finish().map_err(|e| tar_err(e, path))?;
    sink.flush().ctx("cannot write", path)?;
    sink.inner.sync_all().ctx("cannot write", path)?;
    Ok((hex(&sink.hash.finalize()), sink.bytes))
}

fn header(kind: tar::EntryType, size: u64, mode: u32, uid: u32, gid: u32, mtime: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_size(size);
    h.set_mode(mode);
    h.set_uid(uid as u64);
    h.set_gid(gid as u64);
    h.set_mtime(mtime);
    h
}
