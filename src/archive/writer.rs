//! Writes a v1 archive atomically: `<final>.partial` (mode 0600, created exclusively: it
//! reserves the name), fsync, check, hard link to the final name (never replacing a file),
//! fsync of the directory, then the `.sha256` sidecar the same way. A file under a final name
//! is always complete and checked; two runs that pick the same name in the same second get
//! `<name>-<stamp>-2-<mode>.tar.gz` and so on, and neither touches the other's files.

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::manifest::{Manifest, MANIFEST_NAME};
use super::pargz::{ParGzWriter, BLOCK};
use super::pool::Pool;
use super::{catalog, reader};
use crate::crypto::Encryption;
use crate::error::{check_interrupt, Error, IoContext, Result};
use crate::fsutil::{create_new, fsync_dir, hex, lock_file, write_atomic, Partial};
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

/// Where the gzip stream goes: a thread that hashes and writes the file, with a thread before
/// it that encrypts when asked, so that compression, encryption, hashing and the disk overlap.
enum Sink {
    Plain(Threaded<HashWriter<Writeback>>),
    Age(Threaded<age::stream::StreamWriter<Threaded<HashWriter<Writeback>>>>),
}

impl Write for Sink {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        match self {
            Sink::Plain(w) => w.write(data),
            Sink::Age(w) => w.write(data),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Sink {
    fn finish(self) -> io::Result<HashWriter<Writeback>> {
        match self {
            Sink::Plain(w) => w.finish(),
            Sink::Age(w) => w.finish()?.finish()?.finish(),
        }
    }
}

/// A writer on a thread of its own: what is written here is gathered into blocks of the
/// pipeline's [`Pool`] and handed over a block at a time; the thread gives each block back.
struct Threaded<S: Write + Send + 'static> {
    tx: Option<std::sync::mpsc::SyncSender<Vec<u8>>>,
    thread: Option<std::thread::JoinHandle<io::Result<S>>>,
    buf: Vec<u8>,
    pool: Pool,
}

impl<S: Write + Send + 'static> Threaded<S> {
    fn spawn(mut sink: S, pool: &Pool) -> Threaded<S> {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(4);
        let back = pool.clone();
        let thread = std::thread::spawn(move || {
            for chunk in rx {
                sink.write_all(&chunk)?;
                back.give(chunk);
            }
            Ok(sink)
        });
        Threaded { tx: Some(tx), thread: Some(thread), buf: pool.take(), pool: pool.clone() }
    }

    /// Hand the gathered bytes to the thread.
    fn send(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let tx = self.tx.as_ref().ok_or_else(|| io::Error::other("the archive writer stopped"))?;
        let block = std::mem::replace(&mut self.buf, self.pool.take());
        if tx.send(block).is_err() {
            return Err(self.failure());
        }
        Ok(())
    }

    /// The writing thread's error, once it has stopped.
    fn failure(&mut self) -> io::Error {
        self.tx.take();
        match self.thread.take().map(|t| t.join()) {
            Some(Ok(Err(e))) => e,
            _ => io::Error::other("the archive writer stopped"),
        }
    }

    fn finish(mut self) -> io::Result<S> {
        self.send()?;
        self.tx.take();
        match self.thread.take().map(|t| t.join()) {
            Some(Ok(r)) => r,
            _ => Err(io::Error::other("the archive writer stopped")),
        }
    }
}

impl<S: Write + Send + 'static> Write for Threaded<S> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.tx.is_none() {
            return Err(io::Error::other("the archive writer stopped"));
        }
        let n = (BLOCK - self.buf.len().min(BLOCK)).min(data.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() >= BLOCK {
            self.send()?;
        }
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<S: Write + Send + 'static> Drop for Threaded<S> {
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

/// The archive file. Every 8 MiB written are handed to the disk at once
/// (`sync_file_range(SYNC_FILE_RANGE_WRITE)` starts the writeback and does not wait), so that
/// the fsync at the end has little left to wait for.
struct Writeback {
    file: File,
    written: u64,
    started: u64,
}

impl Write for Writeback {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        use std::os::unix::io::AsRawFd;
        let n = self.file.write(data)?;
        self.written += n as u64;
        if self.written - self.started >= 8 << 20 {
            // SAFETY: a valid descriptor (this file, open for the whole call) and a range of
            // it; the call reads no memory of ours. Only a hint: a failure to write shows in
            // the fsync that follows the last byte. (libc: rustix 1.1 has no sync_file_range.)
            unsafe {
                libc::sync_file_range(
                    self.file.as_raw_fd(),
                    self.started as libc::off64_t,
                    (self.written - self.started) as libc::off64_t,
                    libc::SYNC_FILE_RANGE_WRITE,
                );
            }
            self.started = self.written;
        }
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
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

/// How many names of one second a writer tries (`<name>-<stamp>-<n>-<mode>`) before it
/// gives up.
const MAX_SEQ: u32 = 1000;

/// Write `manifest` and then `files` (archive path, file on disk) into `out_dir/file_name`,
/// or, when that name is taken (another backup of the same name in the same second), into
/// the first free `<name>-<stamp>-<n>-<mode>.tar.gz` (see [`catalog::with_seq`]); the name
/// taken is in the result. `check` runs on the fsynced `.partial` before it gets its final
/// name; an error from it removes the partial. Only files this call created are ever removed.
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
    let json = manifest_json(manifest)?;
    // `_held` keeps the partial locked until it has its final name: a later run removes only
    // partials nobody holds (see `fsutil::remove_if_abandoned`).
    let (partial, file, seq) = reserve(out_dir, file_name)?;
    let _held = file.try_clone().ctx("cannot write", partial.path())?;
    let (sha256, bytes) =
        write_tar(file, partial.path(), &json, manifest, files, compression, encryption, progress)?;
    check(partial.path(), &sha256)?;

    let (final_path, final_name) = publish(out_dir, file_name, seq, partial)?;
    let done = Partial::new(final_path.clone());
    fsync_dir(out_dir)?;

    let sidecar = PathBuf::from(format!("{}.sha256", final_path.display()));
    write_atomic(&sidecar, format!("{sha256}  {final_name}\n").as_bytes(), 0o600)?;
    done.keep();
    Ok(Written { path: final_path, sidecar, sha256, bytes })
}

/// The manifest's JSON, held to what every reader holds it to: kfadmin never writes an
/// archive it would refuse.
fn manifest_json(manifest: &Manifest) -> Result<Vec<u8>> {
    if let Some(problem) = reader::manifest_problem(manifest) {
        return Err(Error::failed(format!("this backup cannot be written: {problem}"))
            .hint("kfadmin would refuse this archive when reading it back, so nothing was written; if the data directory holds a -journal or -wal, let the server stop cleanly (it folds them in) and run again"));
    }
    let json = serde_json::to_vec_pretty(manifest)
        .map_err(|e| Error::failed("cannot write the archive's manifest").source(e))?;
    match manifest.size_problem(json.len() as u64) {
        None => Ok(json),
        Some(problem) => Err(Error::failed(format!(
            "this backup cannot be written: {problem}, so kfadmin could not read it back"
        ))
        .hint("the data directory holds too many files: move caches and attachments out of it")),
    }
}

/// `file_name` with sequence number `seq`.
fn candidate(file_name: &str, seq: u32, out_dir: &Path) -> Result<String> {
    catalog::with_seq(file_name, seq).ok_or_else(|| {
        Error::failed(format!("{} already exists", out_dir.join(file_name).display()))
            .hint("choose another --name or --out")
    })
}

fn already_exists(e: &Error) -> bool {
    e.source
        .as_ref()
        .and_then(|s| s.downcast_ref::<io::Error>())
        .is_some_and(|e| e.kind() == io::ErrorKind::AlreadyExists)
}

/// Reserve the first free name: its `.partial` created with O_EXCL. A name whose final file
/// or partial exists belongs to another run (or an older archive) and is skipped, never
/// touched.
fn reserve(out_dir: &Path, file_name: &str) -> Result<(Partial, File, u32)> {
    for seq in 1..=MAX_SEQ {
        let name = candidate(file_name, seq, out_dir)?;
        if out_dir.join(&name).symlink_metadata().is_ok() {
            continue;
        }
        let path = out_dir.join(format!("{name}.partial"));
        match create_new(&path, 0o600) {
            // Armed only now: this run created the file.
            Ok(file) => {
                let partial = Partial::new(path);
                lock_file(&file, partial.path())?;
                return Ok((partial, file, seq));
            }
            Err(e) if already_exists(&e) => continue,
            Err(e) => return Err(e),
        }
    }
    Err(too_many(out_dir, file_name))
}

fn too_many(out_dir: &Path, file_name: &str) -> Error {
    Error::failed(format!("{MAX_SEQ} archives named like {file_name} already exist in {}", out_dir.display()))
        .hint("remove the leftover .partial files of dead runs there, or choose another --out")
}

/// Give the checked partial the first free final name from `seq` on. A hard link (or a
/// rename that never replaces) fails when the name is taken, and the next one is tried.
fn publish(out_dir: &Path, file_name: &str, mut seq: u32, partial: Partial) -> Result<(PathBuf, String)> {
    loop {
        let name = candidate(file_name, seq, out_dir)?;
        let final_path = out_dir.join(&name);
        match std::fs::hard_link(partial.path(), &final_path) {
            Ok(()) => {
                drop(partial);
                return Ok((final_path, name));
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            // A filesystem without hard links.
            Err(_) => match rename_noreplace(partial.path(), &final_path) {
                Ok(()) => {
                    // The partial's name is free again: another run may take it now.
                    partial.keep();
                    return Ok((final_path, name));
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(Error::io("cannot give the archive its final name", &final_path, e)),
            },
        }
        if seq >= MAX_SEQ {
            return Err(too_many(out_dir, file_name));
        }
        seq += 1;
    }
}

/// `rename(2)` that fails with `AlreadyExists` instead of replacing `to`.
fn rename_noreplace(from: &Path, to: &Path) -> io::Result<()> {
    use rustix::fs::{renameat_with, RenameFlags, CWD};
    renameat_with(CWD, from, CWD, to, RenameFlags::NOREPLACE).map_err(io::Error::from)
}

#[allow(clippy::too_many_arguments)]
fn write_tar(
    file: File,
    path: &Path,
    json: &[u8],
    manifest: &Manifest,
    files: &[PathBuf],
    compression: Compression,
    encryption: &Encryption,
    progress: &dyn Progress,
) -> Result<(String, u64)> {
    let total: u64 = manifest.files.iter().map(|f| f.size).sum();
    let stage = progress.stage(if encryption.is_some() { "encrypt" } else { "compress" }, total, Unit::Bytes);
    crate::fault::pause("archive-started");
    let hashed =
        HashWriter { inner: Writeback { file, written: 0, started: 0 }, hash: Sha256::new(), bytes: 0 };
    // Every block of this pipeline comes from, and goes back to, this pool.
    let pool = Pool::new();
    let sink = match encryption.encryptor()? {
        None => Sink::Plain(Threaded::spawn(hashed, &pool)),
        Some(enc) => Sink::Age(Threaded::spawn(
            enc.wrap_output(Threaded::spawn(hashed, &pool)).ctx("cannot write", path)?,
            &pool,
        )),
    };
    let gz = ParGzWriter::with_pool(sink, compression.level, compression.threads, pool.clone());
    let mut tar = tar::Builder::new(Tick { inner: gz, stage: stage.as_ref() });

    let mtime = manifest.created_unix;
    let mut h = header(tar::EntryType::Regular, json.len() as u64, 0o600, 0, 0, mtime);
    tar.append_data(&mut h, MANIFEST_NAME, json).map_err(|e| tar_err(e, path))?;

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
        if entry.path.len() < 100 {
            // The file starts after its 512-byte header (a longer name would need two): a
            // database's pages are compressed on their own grid.
            let gz = &mut tar.get_mut().inner;
            gz.align_pages(gz.position() + 512);
        }
        tar.append_data(&mut h, &entry.path, io::Read::take(f, entry.size)).map_err(|e| tar_err(e, path))?;
    }
    let tick = tar.into_inner().map_err(|e| tar_err(e, path))?;
    stage.finish();
    let sink = tick.inner.finish().map_err(|e| tar_err(e, path))?;
    let mut sink = sink.finish().map_err(|e| tar_err(e, path))?;
    sink.flush().ctx("cannot write", path)?;
    sink.inner.file.sync_all().ctx("cannot write", path)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(m: &Manifest) -> Error {
        let dir = tempfile::tempdir().unwrap();
        let e = write(
            dir.path(),
            "kf-20261126T030000Z-cold.tar.gz",
            m,
            &[],
            Compression::default(),
            &Encryption::None,
            &crate::progress::Silent,
            |_, _| Ok(()),
        )
        .unwrap_err();
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "nothing is written");
        e
    }

    #[test]
    fn a_manifest_past_the_readers_bound_is_refused_before_anything_is_written() {
        let e = refused(&super::super::manifest::tests::manifest(1, &"h".repeat(2 << 20)));
        assert!(e.message.contains("kfadmin could not read it back"), "{}", e.message);
    }

    #[test]
    fn a_manifest_the_reader_refuses_is_refused_before_anything_is_written() {
        let mut m = super::super::manifest::tests::manifest(1, "host");
        let mut journal = m.files[0].clone();
        journal.path = "data/keyfount.db-journal".into();
        m.files.push(journal);
        let e = refused(&m);
        assert!(e.message.contains("keyfount.db-journal: a hot rollback journal"), "{}", e.message);
    }
}
