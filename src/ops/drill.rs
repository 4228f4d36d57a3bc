//! A restore drill: boot a throwaway copy of a live Keyfount container on a verified backup and
//! see whether the server comes up on it.
//!
//! The copy runs the live container's image (by id), entrypoint, command, user, environment,
//! working directory and healthcheck, with the backup's files in a new, labelled volume at the
//! data directory's path, and nothing else of the host: no other mount, no published port,
//! `--network none`, no restart policy. The live container is only inspected, never stopped,
//! paused or mounted.
//!
//! The volume is filled through the engine's archive API on the created (not started)
//! container, so the engine itself gives the data directory and every file the owner and mode
//! the manifest records: that works wherever the engine is (rootless, another host, user
//! namespaces remapped), and kfadmin never writes into the engine's own directories.
//!
//! A journal in the state directory, locked while its run lives, names the container and the
//! volume before they exist: the next kfadmin run removes what a killed drill left ([`recover`]).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ffi::OsStr;
use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use rustix::fs::FlockOperation;
use serde::{Deserialize, Serialize};

use crate::archive::reader::{self, Options, Verdict};
use crate::archive::Manifest;
use crate::crypto::{self, Keys};
use crate::docker::{self, Blueprint, Container, Engine, Object, Stopped, Throwaway, UpWait};
use crate::error::{check_interrupt, interrupt, Error, IoContext, Result};
use crate::fsutil;
use crate::ops::fetch::{self, Fetched};
use crate::ops::staging::{self, Staging, STAGING_PREFIX};
use crate::ops::swap::{rel_of, Owners, Perm};
use crate::progress::{Notice, Stage, Unit};
use crate::safedir::{self, Dir};
use crate::sqlite::{self, DbFacts, DB_FILE};
use crate::store::{is_remote_path, Remote, S3Url};

/// Every drill container and volume carries `kfadmin.drill=1`.
pub const LABEL: &str = "kfadmin.drill";
/// The run that made it (a journal names it): recovery removes only what carries its run.
pub const LABEL_RUN: &str = "kfadmin.drill.run";
/// The archive it was made from.
pub const LABEL_ARCHIVE: &str = "kfadmin.drill.archive";
/// The live container it copies.
pub const LABEL_CONTAINER: &str = "kfadmin.drill.container";
/// How many of the server's last log lines a failed drill reports.
pub const LOG_LINES: usize = 50;

/// What to drill.
pub struct Spec<'a> {
    pub engine: &'a Engine,
    /// The live container: only inspected.
    pub live: &'a Container,
    /// The database's path inside the container, as the server opens it.
    pub db_path: &'a Path,
    pub archive: &'a Path,
    pub manifest: &'a Manifest,
    pub settle: Duration,
    pub health_timeout: Option<Duration>,
    /// Where the drilled database is checked (the private staging area by default).
    pub tmp_dir: Option<&'a Path>,
    /// The live container as a copy is made of it (checked before any verification: an image
    /// that is gone fails the drill at once).
    pub blueprint: &'a Blueprint,
}

/// How a drill went.
#[derive(Debug, Clone, Serialize)]
pub struct Drilled {
    /// The server came up on the backup, opened it, and left it whole.
    #[serde(skip)]
    pub passed: bool,
    /// Why it did not pass.
    #[serde(skip)]
    pub reason: Option<String>,
    pub drill_container: String,
    pub drill_volume: String,
    /// The image's id, and the name the live container was created from.
    pub image: String,
    pub image_ref: String,
    /// Where the backup's data directory was mounted in the copy.
    pub data_path: String,
    /// How it came up: "healthy", or "running for N s".
    pub up: Option<String>,
    /// The copy's exit code once it ended (or was stopped).
    pub exit_code: Option<i64>,
    /// The server's last log lines, when the drill did not pass.
    #[serde(skip)]
    pub logs: Vec<String>,
    /// Signs that the server opened the backup's database.
    pub opened: Vec<String>,
    /// The drilled database, checked again after the server stopped.
    pub after: Option<After>,
    /// The live container's mounts that the copy did not get.
    pub left_out: Vec<String>,
    pub stop: Option<Stopped>,
    pub timings: Timings,
    #[serde(skip)]
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Timings {
    /// Copying the backup into the volume.
    pub fill_ms: u64,
    /// From the start until it was up (or not).
    pub up_ms: u64,
    /// Stopping it and checking the database again.
    pub check_ms: u64,
}

/// The drilled database after the server ran on it and stopped.
#[derive(Debug, Clone, Serialize)]
pub struct After {
    /// `PRAGMA integrity_check` problems (empty: ok).
    pub integrity: Vec<String>,
    pub foreign_keys: Vec<String>,
    /// WAL frames the server left at its stop (folded in for the check).
    pub wal_frames: u64,
    /// It differs from the backup's database: the server wrote to it.
    pub changed: bool,
    pub database: Option<DbFacts>,
}

/// A verified archive, unpacked in a private staging directory.
pub struct Verified {
    pub archive: PathBuf,
    pub verdict: Verdict,
    pub manifest: Manifest,
    pub staged: Staging,
}

/// Where the candidates are read from, and with what.
pub struct Sources<'a> {
    /// Age identity files (`--identity`).
    pub identity: &'a [PathBuf],
    /// A passphrase may be asked on the terminal.
    pub interactive: bool,
    /// Downloads and unpacked archives go in a private directory here (`--tmp-dir`).
    pub tmp_dir: Option<&'a Path>,
}

/// The first of `candidates` (files, or `s3://` URLs: downloaded to a private directory, then
/// checked like a file) that verifies in full (unpacked, like a restore), and the verdicts of
/// those before it that did not.
pub fn first_verified(
    n: &dyn Notice,
    candidates: &[PathBuf],
    from: &Sources,
) -> Result<(Option<Verified>, Vec<Verdict>)> {
    let mut failed = Vec::new();
    let mut keys: Option<Keys> = None;
    let mut remote: Option<Remote> = None;
    for archive in candidates {
        check_interrupt()?;
        let fetched = download(n, archive, &mut remote, from.tmp_dir)?;
        let local = fetched.as_ref().map(Fetched::path).unwrap_or_else(|| archive.clone());
        let k = crypto::keys_next(keys.take(), &local, from.identity, from.interactive)?;
        let staged = Staging::private(from.tmp_dir, STAGING_PREFIX)?;
        n.note(&format!("Verifying {}", archive.display()));
        let opts =
            Options { sqlite: true, extract_to: Some(staged.dir()), expected_sha256: None, keys: Some(&k) };
        let verdict = reader::verify(&local, &opts, n.progress());
        keys = Some(k);
        let mut verdict = verdict?;
        if let Some(f) = &fetched {
            f.relabel(&mut verdict);
        }
        if let (false, Some(why)) = (verdict.ok, &verdict.needs_key) {
            // Never an older backup instead: a drill that passes on it says nothing of this one.
            return Err(Error::usage(format!("cannot open {}: {why}", archive.display())).hint(
                "a drill is of the newest backup: pass --identity FILE (or the passphrase) that opens it, or name an older ARCHIVE to drill that one on purpose",
            ));
        }
        match verdict.manifest.clone().filter(|_| verdict.ok) {
            Some(manifest) => {
                if let Some(w) = crate::ops::names::name_problem(archive, &manifest) {
                    n.warn(&w);
                }
                let v = Verified { archive: archive.clone(), verdict, manifest, staged };
                return Ok((Some(v), failed));
            }
            None => failed.push(verdict),
        }
    }
    Ok((None, failed))
}

/// A remote archive, downloaded (None for a local one); `remote` keeps the connection to its
/// location for the next one.
fn download(
    n: &dyn Notice,
    archive: &Path,
    remote: &mut Option<Remote>,
    tmp_dir: Option<&Path>,
) -> Result<Option<Fetched>> {
    if !is_remote_path(archive) {
        return Ok(None);
    }
    let (url, name) = S3Url::split_object(&archive.to_string_lossy())?;
    if remote.as_ref().is_some_and(|r| r.url != url) {
        *remote = None;
    }
    let r = match remote {
        Some(r) => r,
        None => remote.insert(Remote::connect(&url)?),
    };
    n.note(&format!("Downloading {}", url.object(&name)));
    fetch::fetch(r, &name, tmp_dir, n.progress()).map(Some)
}

/// Boot the throwaway copy on the archive's verified files in `staged` (removed once they are
/// in the copy's volume: the drilled database is copied out later), judge it, and remove it
/// (on every way out).
pub fn drill(n: &dyn Notice, spec: &Spec, staged: Staging) -> Result<Drilled> {
    let data_dir = data_dir(spec.live, spec.db_path)?;
    let bp = spec.blueprint;
    let names = Names::new(&spec.live.name);
    let mut d = Drilled {
        passed: false,
        reason: None,
        drill_container: names.container.clone(),
        drill_volume: names.volume.clone(),
        image: bp.image_id.clone(),
        image_ref: bp.image_ref.clone(),
        data_path: data_dir.display().to_string(),
        up: None,
        exit_code: None,
        logs: vec![],
        opened: vec![],
        after: None,
        left_out: left_out(spec.live, spec.db_path),
        stop: None,
        timings: Timings::default(),
        warnings: vec![],
    };
    let mut run = Run::begin(spec, &names)?;
    let went =
        run.prepare(n, spec, bp, &data_dir, staged, &mut d).and_then(|c| run.go(n, spec, bp, c, &mut d));
    let cleaned = run.clean_up();
    match (went, cleaned) {
        (Ok(()), Ok(())) => Ok(d),
        (Err(e), Ok(())) => Err(e),
        (Ok(()), Err(c)) => Err(c),
        (Err(e), Err(c)) => Err(Error::new(c.kind, format!("{}; then: {}", e.chain(), c.message))
            .hint(c.hint.unwrap_or_default())),
    }
}

/// The data directory inside the container: the database's directory, which a mount of the
/// live container must hold (otherwise `--db-path` is not where its data is).
fn data_dir(live: &Container, db: &Path) -> Result<PathBuf> {
    let dir = db.parent().filter(|d| d.is_absolute() && *d != Path::new("/"));
    let Some(dir) = dir.filter(|_| db.file_name() == Some(OsStr::new(DB_FILE))) else {
        return Err(Error::usage(format!(
            "--db-path {} is not a {DB_FILE} in a directory of the container; kfadmin drills {DB_FILE} in its data directory",
            db.display()
        ))
        .hint("pass the database's path inside the container, e.g. --db-path /data/keyfount.db"));
    };
    if !live.mounts.iter().any(|m| db.starts_with(&m.destination)) {
        let have: Vec<String> = live.mounts.iter().map(|m| m.destination.display().to_string()).collect();
        return Err(Error::usage(format!(
            "container {} has no volume or bind mount that holds {} (its mounts: {})",
            live.name,
            db.display(),
            if have.is_empty() { "none".into() } else { have.join(", ") }
        ))
        .hint("pass the database's path inside the container with --db-path"));
    }
    Ok(dir.to_path_buf())
}

/// The live container's mounts that the copy does not get (all but the data's own).
fn left_out(live: &Container, db: &Path) -> Vec<String> {
    let data = live
        .mounts
        .iter()
        .filter(|m| db.starts_with(&m.destination))
        .max_by_key(|m| m.destination.components().count());
    live.mounts
        .iter()
        .filter(|m| Some(*m) != data)
        .map(|m| format!("{} ({})", m.destination.display(), m.describe()))
        .collect()
}

/// The names of a drill's container and volume, and of its run.
struct Names {
    run: String,
    container: String,
    volume: String,
}

impl Names {
    fn new(live: &str) -> Names {
        let stamp = humantime::format_rfc3339_seconds(SystemTime::now()).to_string().replace(['-', ':'], "");
        let name = format!("{live}-kfadmin-drill-{stamp}");
        Names {
            run: format!("{}-{:016x}", std::process::id(), staging::random()),
            container: name.clone(),
            volume: name,
        }
    }

    fn labels(&self, spec: &Spec) -> HashMap<String, String> {
        HashMap::from([
            (LABEL.to_string(), "1".to_string()),
            (LABEL_RUN.to_string(), self.run.clone()),
            (LABEL_ARCHIVE.to_string(), spec.archive.display().to_string()),
            (LABEL_CONTAINER.to_string(), spec.live.name.clone()),
            (format!("{LABEL_CONTAINER}-id"), spec.live.id.clone()),
        ])
    }
}

/// A drill under way: its journal (locked), and what it must remove.
struct Run<'a> {
    engine: &'a Engine,
    names: &'a Names,
    journal: Option<Held>,
    /// Removes the copy and its volume at once should this run be killed.
    _guardian: super::guardian::Guardian,
}

impl<'a> Run<'a> {
    fn begin(spec: &Spec<'a>, names: &'a Names) -> Result<Run<'a>> {
        let j = DrillJournal {
            pid: std::process::id(),
            run: names.run.clone(),
            since: humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
            live_container: spec.live.name.clone(),
            container: names.container.clone(),
            volume: names.volume.clone(),
        };
        let guardian = super::guardian::spawn(&format!("a drill of container {}", spec.live.name))?;
        Ok(Run { engine: spec.engine, names, journal: Some(j.write()?), _guardian: guardian })
    }

    /// Create the volume and the copy (not started), and fill the volume.
    fn prepare(
        &mut self,
        n: &dyn Notice,
        spec: &Spec,
        bp: &Blueprint,
        data_dir: &Path,
        staged: Staging,
        d: &mut Drilled,
    ) -> Result<Container> {
        let (e, names) = (self.engine, self.names);
        let labels = names.labels(spec);
        e.create_volume(&names.volume, &labels)?;
        crate::fault::point("drill.volume")?;
        let t = Throwaway {
            name: &names.container,
            blueprint: bp,
            volume: &names.volume,
            mount_at: data_dir,
            labels: &labels,
        };
        let t0 = Instant::now();
        let c = if bp.limits.readonly_rootfs == Some(true) {
            // The engine copies nothing into a container whose root is read-only, even into a
            // volume: the volume is filled through a writable copy first, which is removed,
            // and the copy that runs is created read-only on the filled volume.
            let mut writable = bp.clone();
            writable.limits.readonly_rootfs = Some(false);
            let loader = e.create_throwaway(&Throwaway { blueprint: &writable, ..t })?;
            crate::fault::point("drill.created")?;
            fill(n, e, &loader, spec, data_dir, &staged)?;
            e.remove_labelled(Object::Container, &names.container, (LABEL_RUN, names.run.as_str()))?;
            e.create_throwaway(&t)?
        } else {
            let c = e.create_throwaway(&t)?;
            crate::fault::point("drill.created")?;
            fill(n, e, &c, spec, data_dir, &staged)?;
            c
        };
        d.timings.fill_ms = t0.elapsed().as_millis() as u64;
        Ok(c)
    }

    /// Start the copy, wait until it is up, stop it, check the database it leaves.
    fn go(
        &mut self,
        n: &dyn Notice,
        spec: &Spec,
        bp: &Blueprint,
        c: Container,
        d: &mut Drilled,
    ) -> Result<()> {
        let (e, names) = (self.engine, self.names);
        n.note(&format!(
            "Starting {} (image {}, no network) on the backup; container {} is not touched",
            names.container, bp.image_ref, spec.live.name
        ));
        let t0 = Instant::now();
        e.start(&c)?;
        crate::fault::point("drill.started")?;
        let c = e.inspect(&c.id)?;
        let up = e.wait_up_interruptible(&c, &UpWait::new(&c, spec.settle, spec.health_timeout))?;
        d.timings.up_ms = t0.elapsed().as_millis() as u64;
        if let Err(why) = up {
            d.reason = Some(format!("the server did not come up on the backup: {why}"));
            return finish_failed(e, &c, d);
        }
        d.up = Some(if c.healthcheck.is_some() {
            "healthy".to_string()
        } else {
            format!("running for {} s", spec.settle.as_secs())
        });
        d.opened = signs_while_up(e, &c, spec.db_path)?;
        crate::fault::point("drill.up")?;
        crate::fault::pause("drill-up");
        let t0 = Instant::now();
        stop(n, e, &c, bp, d)?;
        let after = check_after(e, &c, spec)?;
        d.timings.check_ms = t0.elapsed().as_millis() as u64;
        check_interrupt()?;
        judge(d, after, spec);
        if d.passed {
            Ok(())
        } else {
            finish_failed(e, &c, d)
        }
    }

    /// Remove the container (by force: a server still running is killed) and the volume, then
    /// the journal. When one cannot be removed, the journal stays for the next run.
    fn clean_up(&mut self) -> Result<()> {
        let Some(journal) = self.journal.take() else { return Ok(()) };
        let run = (LABEL_RUN, self.names.run.as_str());
        let mut failed = Vec::new();
        for (what, name) in [(Object::Container, &self.names.container), (Object::Volume, &self.names.volume)]
        {
            if let Err(e) = self.engine.remove_labelled(what, name, run) {
                failed.push(e.chain());
            }
        }
        if failed.is_empty() {
            let _ = std::fs::remove_file(&journal.path);
            return Ok(());
        }
        Err(Error::failed(format!("the drill's container and volume could not be removed: {}", failed.join("; "))).hint(
            format!(
                "remove them (`docker rm -f {c}`, `docker volume rm {v}`); until then {} keeps the record and the next kfadmin command with --container tries again",
                journal.path.display(),
                c = self.names.container,
                v = self.names.volume
            ),
        ))
    }
}

impl Drop for Run<'_> {
    fn drop(&mut self) {
        let _ = self.clean_up();
    }
}

/// Copy the backup into the volume, through the engine.
fn fill(
    n: &dyn Notice,
    e: &Engine,
    c: &Container,
    spec: &Spec,
    data_dir: &Path,
    staged: &Staging,
) -> Result<()> {
    let (Some(parent), Some(base)) = (data_dir.parent(), data_dir.file_name()) else {
        return Err(Error::usage(format!("{} is not a data directory path", data_dir.display())));
    };
    let total: u64 = spec.manifest.files.iter().map(|f| f.size).sum();
    n.note(&format!("Copying the backup into the copy's volume ({})", indicatif::BinaryBytes(total)));
    let stage = n.progress().stage("copy in", total, Unit::Bytes);
    let staged = staged.dir();
    let stage_ref = stage.as_ref();
    let sent = e.upload(c, parent, |w| write_tar(w, staged, spec.manifest, Path::new(base), stage_ref));
    check_interrupt()?;
    sent?;
    stage.finish();
    crate::fault::point("drill.filled")
}

/// The backup's data directory as a tar for the engine: `base/` (the data directory itself),
/// its directories, then its files, each with the owner and mode the manifest records (older
/// archives without directories: the database's owner, 0700).
pub fn write_tar(
    w: &mut dyn Write,
    staged: &Dir,
    m: &Manifest,
    base: &Path,
    stage: &dyn Stage,
) -> Result<()> {
    let owners = Owners::new(None, m)?;
    let tar_err =
        |e: std::io::Error| Error::failed("cannot send the backup's files to the Docker engine").source(e);
    let mut b = tar::Builder::new(w);
    for (rel, perm) in dirs(m, &owners) {
        let mut h = header(tar::EntryType::Directory, 0, perm, m.created_unix);
        b.append_data(&mut h, base.join(&rel), std::io::empty()).map_err(tar_err)?;
    }
    for f in &m.files {
        let rel = rel_of(&f.path);
        let (Some(parent), Some(name)) = (rel.parent(), rel.file_name()) else { continue };
        let file = staged.walk(parent, None)?.open_file(name)?;
        let size = safedir::meta_of(&file, &staged.display(&rel))?.size;
        let mut h = header(tar::EntryType::Regular, size, owners.file(f), m.created_unix);
        let counted = Counted { inner: file.take(size), stage };
        b.append_data(&mut h, base.join(&rel), counted).map_err(tar_err)?;
    }
    b.into_inner().map(drop).map_err(tar_err)
}

/// The data directory and every directory in it: as the manifest records them, and every
/// parent of a file (parents before children).
fn dirs(m: &Manifest, owners: &Owners) -> Vec<(PathBuf, Perm)> {
    let mut rels: BTreeSet<PathBuf> = BTreeSet::from([PathBuf::new()]);
    rels.extend(m.dirs.iter().map(|d| rel_of(&d.path)));
    for f in &m.files {
        let mut p = rel_of(&f.path);
        while p.pop() {
            rels.insert(p.clone());
        }
    }
    rels.into_iter()
        .map(|rel| {
            let path = if rel.as_os_str().is_empty() {
                "data".to_string()
            } else {
                format!("data/{}", rel.display())
            };
            let perm = owners.dir(m.dir(&path));
            (rel, perm)
        })
        .collect()
}

fn header(kind: tar::EntryType, size: u64, (uid, gid, mode): Perm, mtime: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_size(size);
    h.set_uid(u64::from(uid));
    h.set_gid(u64::from(gid));
    h.set_mode(mode & 0o7777);
    h.set_mtime(mtime);
    h
}

/// A file's bytes on their way to the engine: counted on the progress bar, and given up on
/// Ctrl-C or SIGTERM.
struct Counted<'a, R> {
    inner: R,
    stage: &'a dyn Stage,
}

impl<R: Read> Read for Counted<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if interrupt::requested() {
            return Err(std::io::Error::other("interrupted"));
        }
        let n = self.inner.read(buf)?;
        self.stage.inc(n as u64);
        Ok(n)
    }
}

/// While it runs: SQLite's `-wal` and `-shm` beside the database show that the server has it
/// open (in WAL mode).
fn signs_while_up(e: &Engine, c: &Container, db: &Path) -> Result<Vec<String>> {
    let mut found = Vec::new();
    for suffix in ["-wal", "-shm"] {
        let p = PathBuf::from(format!("{}{suffix}", db.display()));
        if e.exists_in(c, &p)? {
            found.push(suffix);
        }
    }
    Ok(match found.as_slice() {
        [] => vec![],
        s => vec![format!(
            "it had the database open while it ran ({} {} beside it)",
            db.display(),
            s.join(" and ")
        )],
    })
}

/// Stop the copy gracefully (its stop signal, then its stop timeout).
fn stop(n: &dyn Notice, e: &Engine, c: &Container, bp: &Blueprint, d: &mut Drilled) -> Result<()> {
    let timeout = bp.stop_timeout.unwrap_or(10);
    n.note(&format!(
        "The server came up ({}); stopping {} (stop timeout {timeout} s)",
        d.up.as_deref().unwrap_or("up"),
        c.name
    ));
    let (stopped, after) = e.stop(c, timeout)?;
    crate::fault::point("drill.stopped")?;
    d.exit_code = after.exit_code;
    if stopped.exit_code == Some(137) || stopped.oom_killed {
        d.warnings.push(format!(
            "the server did not stop within its stop timeout of {timeout} s and was killed (exit code {}): the live server may not stop cleanly either; its unfinished WAL was folded in for the check",
            stopped.exit_code.unwrap_or(-1)
        ));
    }
    d.stop = Some(stopped);
    Ok(())
}

/// Copy the drilled database (and a WAL the stop left) out of the stopped copy into a private
/// staging directory and check it again. None when the database is gone.
fn check_after(e: &Engine, c: &Container, spec: &Spec) -> Result<Option<After>> {
    let staging = Staging::private(spec.tmp_dir, STAGING_PREFIX)?;
    if fetch(e, c, &staging, spec.db_path, DB_FILE)?.is_none() {
        return Ok(None);
    }
    let wal_name = format!("{DB_FILE}-wal");
    let wal = fetch(e, c, &staging, &PathBuf::from(format!("{}-wal", spec.db_path.display())), &wal_name)?;
    let path = staging.path().join(DB_FILE);
    let wal_bytes = wal.unwrap_or(0);
    let mut after = After {
        integrity: vec![],
        foreign_keys: vec![],
        wal_frames: 0,
        changed: wal_bytes > 0,
        database: None,
    };
    // What the server left is checked as SQLite finds it: a WAL it cannot fold in, a file that
    // is no database any more, are problems of the drilled database (exit 3), not of kfadmin.
    let checked = (|| -> Result<_> {
        let frames = if wal_bytes > 0 { sqlite::fold_wal(&path)? } else { 0 };
        let conn = sqlite::open_immutable(&path)?;
        let integrity = sqlite::check(&conn, true)?;
        Ok((frames, integrity, sqlite::foreign_key_check(&conn)?, sqlite::facts(&conn, &path)?))
    })();
    match checked {
        Ok((frames, i, f, facts)) => {
            (after.wal_frames, after.integrity, after.foreign_keys) = (frames, i, f);
            after.database = Some(facts);
        }
        Err(e) => after.integrity = vec![e.chain()],
    }
    let (sha, _) = fsutil::sha256_file(&path, None)?;
    let backup_sha = spec.manifest.file(&format!("data/{DB_FILE}")).map(|f| f.sha256.as_str());
    after.changed |= Some(sha.as_str()) != backup_sha;
    Ok(Some(after))
}

/// One file of the stopped copy into the staging directory; None when it is not there.
fn fetch(
    e: &Engine,
    c: &Container,
    staging: &Staging,
    in_container: &Path,
    name: &str,
) -> Result<Option<u64>> {
    let dir = staging.dir();
    let mut f = dir.create_file(OsStr::new(name), 0o600)?;
    let room = |size: u64| {
        dir.ensure_room(
            size,
            1,
            "for a copy of the drilled database",
            "free some space there, or pass --tmp-dir DIR: a private directory on a filesystem with room",
        )
    };
    let got = e.download_file(c, in_container, &mut f, &room)?;
    if got.is_none() {
        drop(f);
        dir.unlink(OsStr::new(name))?;
    }
    Ok(got)
}

/// Pass or fail on what the check after the stop found.
fn judge(d: &mut Drilled, after: Option<After>, spec: &Spec) {
    let db = spec.db_path.display();
    let Some(after) = after else {
        d.reason = Some(format!(
            "the server came up, but once it stopped there was no database at {db}: it removed or moved it"
        ));
        return;
    };
    if after.changed {
        d.opened.push("it wrote to the database (it differs from the backup's)".into());
    }
    let before = spec.manifest.database.schema_version;
    let now = after.database.as_ref().and_then(|f| f.schema_version);
    if now != before {
        let v = |x: Option<i64>| x.map(|v| v.to_string()).unwrap_or_else(|| "none".into());
        d.opened.push(format!("it migrated the database (schema version {} -> {})", v(before), v(now)));
    }
    if !after.foreign_keys.is_empty() {
        d.warnings.push(format!(
            "after the server ran on it, the database has {} foreign key violation(s), e.g. {}",
            after.foreign_keys.len(),
            after.foreign_keys[0]
        ));
    }
    d.reason = if !after.integrity.is_empty() {
        let shown: Vec<&str> = after.integrity.iter().take(5).map(String::as_str).collect();
        Some(format!(
            "after the server ran on it, the database fails PRAGMA integrity_check: {}",
            shown.join("; ")
        ))
    } else if let Some(lost) = after
        .database
        .as_ref()
        .map(|now| lost_data(&spec.manifest.database.tables, &now.tables))
        .filter(|l| !l.is_empty())
    {
        let shown: Vec<&str> = lost.iter().take(5).map(String::as_str).collect();
        Some(format!(
            "the server came up, but not on the backup's data: {}{} (a server started on a backup keeps every table and at least half of the rows of each; did it move {db} aside or start on another database?)",
            shown.join("; "),
            if lost.len() > shown.len() { format!("; and {} more", lost.len() - shown.len()) } else { String::new() }
        ))
    } else if d.opened.is_empty() {
        Some(format!(
            "the server came up but left no sign of opening {db}: no -wal or -shm beside it while it ran, and the database is byte for byte the backup's (is --db-path where the server keeps its database? a server that opens it only on its first request cannot be drilled this way)"
        ))
    } else {
        None
    };
    d.passed = d.reason.is_none();
    d.after = Some(after);
}

/// Tables of the backup that the drilled server lost: gone, emptied, or (with 10 rows or more)
/// down to less than half. Keyfount deletes rows only one by one as users act (expired
/// sessions, a device removed), never most of a table on start: a server that did has thrown
/// the backup's data away (moved the database aside, started on another one), whatever its
/// healthcheck says.
pub fn lost_data(before: &BTreeMap<String, u64>, after: &BTreeMap<String, u64>) -> Vec<String> {
    let mut lost = Vec::new();
    for (table, &was) in before {
        match after.get(table) {
            None => lost.push(format!("table {table} ({was} rows in the backup) is gone")),
            Some(0) if was > 0 => lost.push(format!("table {table} is empty ({was} rows in the backup)")),
            Some(&now) if was >= 10 && now.saturating_mul(2) < was => {
                lost.push(format!("table {table} has {now} rows ({was} in the backup)"))
            }
            Some(_) => {}
        }
    }
    lost
}

/// A drill that did not pass: the copy's exit code and its last log lines, for the report.
fn finish_failed(e: &Engine, c: &Container, d: &mut Drilled) -> Result<()> {
    d.passed = false;
    if let Ok(now) = e.inspect(&c.id) {
        if !now.running {
            d.exit_code = now.exit_code;
        }
    }
    match e.logs_tail(c, LOG_LINES) {
        Ok(lines) => d.logs = lines,
        Err(err) => d.warnings.push(format!("cannot read the logs of {}: {}", c.name, err.chain())),
    }
    Ok(())
}

/// A drill in progress, on disk: what it made, so that a killed run's leftovers can be removed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DrillJournal {
    pub pid: u32,
    pub run: String,
    pub since: String,
    pub live_container: String,
    pub container: String,
    pub volume: String,
}

/// A journal file, locked (`flock`) as long as its run lives: the kernel releases the lock when
/// the run dies, however it dies.
struct Held {
    path: PathBuf,
    _file: File,
}

impl DrillJournal {
    /// Written under a temporary name, locked, then renamed: a journal is never seen unlocked
    /// while its run lives.
    fn write(&self) -> Result<Held> {
        let dir = docker::state_dir();
        fsutil::ensure_private_dir(&dir)?;
        let tmp = dir.join(format!(".drill-{}.tmp", self.run));
        let path = dir.join(format!("drill-{}.json", self.run));
        let mut f = fsutil::create_new(&tmp, 0o600)?;
        rustix::fs::flock(&f, FlockOperation::NonBlockingLockExclusive).ctx("cannot lock", &tmp)?;
        let json = serde_json::to_vec(self)
            .map_err(|e| Error::failed("cannot write kfadmin's drill journal").source(e))?;
        f.write_all(&json).and_then(|()| f.sync_all()).ctx("cannot write", &tmp)?;
        std::fs::rename(&tmp, &path).ctx("cannot rename", &tmp)?;
        fsutil::fsync_dir(&dir)?;
        Ok(Held { path, _file: f })
    }

    fn run_by(&self) -> String {
        format!(
            "a kfadmin run (pid {}, since {}) was killed during a drill of container {}",
            self.pid, self.since, self.live_container
        )
    }
}

/// The journals of drills whose run died (their lock is free), each held locked while it is
/// looked at, with what it says (None: unreadable).
fn dead_journals() -> Vec<(PathBuf, File, Option<DrillJournal>)> {
    use std::os::unix::fs::OpenOptionsExt;
    let Ok(rd) = std::fs::read_dir(docker::state_dir()) else { return vec![] };
    let mut out: Vec<(PathBuf, File, Option<DrillJournal>)> = rd
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            let n = p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            n.starts_with("drill-") && n.ends_with(".json")
        })
        .filter_map(|p| {
            let mut f = std::fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
                .open(&p)
                .ok()?;
            rustix::fs::flock(&f, FlockOperation::NonBlockingLockExclusive).ok()?;
            let mut text = Vec::new();
            let j = f.read_to_end(&mut text).ok().and_then(|_| serde_json::from_slice(&text).ok());
            Some((p, f, j))
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// Journals of killed drills that no run could clean up yet.
pub fn pending() -> Vec<PathBuf> {
    dead_journals().into_iter().map(|(p, _, _)| p).collect()
}

/// For commands that do not touch containers: one line per killed drill, naming what it left.
/// The engine is not asked.
pub fn notes() -> Vec<String> {
    dead_journals()
        .into_iter()
        .map(|(p, _, j)| match j {
            Some(j) => format!(
                "{} and left container {c} and volume {v} (journal {}): any kfadmin command with --container removes them, or `docker rm -f {c}` and `docker volume rm {v}`, then delete that file",
                j.run_by(),
                p.display(),
                c = j.container,
                v = j.volume
            ),
            None => unreadable(&p),
        })
        .collect()
}

fn unreadable(p: &Path) -> String {
    format!("{} is not a drill journal kfadmin can read; look at it and remove it", p.display())
}

/// For commands that touch containers: remove what killed drills left (their container, with a
/// server that may still run, and their volume). Returns the lines to print; never fails (a
/// leftover copy harms no data: it has no network and its own volume).
pub fn recover() -> Vec<String> {
    sweep_tmp();
    let dead = dead_journals();
    if dead.is_empty() {
        return vec![];
    }
    let engine = match Engine::connect() {
        Ok(e) => e,
        Err(e) => {
            return dead
                .iter()
                .map(|(p, _, _)| {
                    format!(
                        "{} records a killed drill's container and volume, and the Docker engine cannot be reached to remove them: {}",
                        p.display(),
                        e.chain()
                    )
                })
                .collect()
        }
    };
    dead.into_iter().filter_map(|(p, _lock, j)| recover_one(&engine, &p, j)).collect()
}

/// Journals that a run killed while writing them left under their temporary name (it had
/// created nothing yet): nobody holds their lock.
fn sweep_tmp() {
    let Ok(rd) = std::fs::read_dir(docker::state_dir()) else { return };
    for p in rd.flatten().map(|e| e.path()) {
        let n = p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        if !(n.starts_with(".drill-") && n.ends_with(".tmp")) {
            continue;
        }
        let free = File::open(&p)
            .is_ok_and(|f| rustix::fs::flock(&f, FlockOperation::NonBlockingLockExclusive).is_ok());
        if free {
            let _ = std::fs::remove_file(&p);
        }
    }
}

fn recover_one(engine: &Engine, path: &Path, j: Option<DrillJournal>) -> Option<String> {
    let Some(j) = j else { return Some(unreadable(path)) };
    let (mut removed, mut failed) = (Vec::new(), Vec::new());
    for (what, name) in [(Object::Container, &j.container), (Object::Volume, &j.volume)] {
        match engine.remove_labelled(what, name, (LABEL_RUN, &j.run)) {
            Ok(true) => removed.push(format!("{} {name}", what.word())),
            Ok(false) => {}
            Err(e) => failed.push(e.chain()),
        }
    }
    if !failed.is_empty() {
        return Some(format!(
            "{}; kfadmin cannot remove what it left: {}; remove them yourself (`docker rm -f {}`, `docker volume rm {}`) and delete {}",
            j.run_by(),
            failed.join("; "),
            j.container,
            j.volume,
            path.display()
        ));
    }
    let _ = std::fs::remove_file(path);
    (!removed.is_empty())
        .then(|| format!("{}; kfadmin removed what it left: {}", j.run_by(), removed.join(", ")))
}

/// The last drill that passed, per container, kept in the state directory for `status`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LastDrill {
    pub container: String,
    pub archive: String,
    /// RFC 3339, UTC.
    pub finished: String,
    pub finished_unix: u64,
    pub duration_ms: u64,
    /// The name the drilled archive carries (`<name>-<time>-<mode>.tar.gz`) and when it was
    /// made: a drill counts for `status --max-drill-age` only when it was of a recent backup
    /// of that container. None in records written before they were kept.
    #[serde(default)]
    pub archive_name: Option<String>,
    #[serde(default)]
    pub archive_created_unix: Option<u64>,
}

fn last_path(name: &str) -> PathBuf {
    use sha2::Digest;
    let safe = if !name.is_empty()
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        && !name.starts_with('.')
    {
        name.to_string()
    } else {
        fsutil::hex(&sha2::Sha256::digest(name.as_bytes())[..16])
    };
    docker::state_dir().join("drills").join(format!("{safe}.json"))
}

/// Record a drill that passed.
pub fn record_success(last: &LastDrill) -> Result<()> {
    let path = last_path(&last.container);
    let dir = path.parent().unwrap_or(Path::new("/"));
    fsutil::ensure_private_dir(&docker::state_dir())?;
    fsutil::ensure_private_dir(dir)?;
    let json = serde_json::to_vec(last).map_err(|e| Error::failed("cannot record the drill").source(e))?;
    fsutil::write_atomic(&path, &json, 0o600)
}

/// The last drill of container `name` that passed, if one is recorded.
pub fn last_success(name: &str) -> Option<LastDrill> {
    let text = std::fs::read(last_path(name)).ok()?;
    serde_json::from_slice(&text).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::archive::manifest::{DirEntry, FileEntry, Source, FORMAT, FORMAT_VERSION};
    use crate::archive::Mode;
    use crate::error::Kind;
    use crate::progress::Progress;

    fn manifest(dirs: Vec<DirEntry>) -> Manifest {
        let file = |path: &str, mode| FileEntry {
            path: path.into(),
            size: 3,
            sha256: String::new(),
            mode,
            uid: 1000,
            gid: 1000,
        };
        Manifest {
            format: FORMAT.into(),
            format_version: FORMAT_VERSION,
            kfadmin_version: "0".into(),
            created: "2026-01-01T00:00:00Z".into(),
            created_unix: 1_767_225_600,
            mode: Mode::Cold,
            source: Source {
                kind: "path".into(),
                path: "/x".into(),
                host: "h".into(),
                container: None,
                mounts: vec![],
            },
            files: vec![file("data/keyfount.db", 0o600), file("data/uploads/a/b.png", 0o640)],
            dirs,
            import: None,
            damaged: None,
            database: DbFacts {
                page_size: 4096,
                page_count: 1,
                journal_mode: sqlite::Journal::Wal,
                user_version: 7,
                schema_version: Some(7),
                tables: Default::default(),
            },
        }
    }

    fn entries(m: &Manifest) -> Vec<(String, tar::EntryType, u64, u32)> {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(t.path().join("uploads/a")).unwrap();
        std::fs::write(t.path().join("keyfount.db"), b"abc").unwrap();
        std::fs::write(t.path().join("uploads/a/b.png"), b"png").unwrap();
        let mut out = Vec::new();
        let stage = crate::progress::Silent.stage("", 0, Unit::Bytes);
        write_tar(&mut out, &Dir::open(t.path()).unwrap(), m, Path::new("data"), stage.as_ref()).unwrap();
        let mut ar = tar::Archive::new(&out[..]);
        ar.entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let h = e.header();
                (e.path().unwrap().display().to_string(), h.entry_type(), h.uid().unwrap(), h.mode().unwrap())
            })
            .collect()
    }

    #[test]
    fn the_data_directory_and_its_files_get_the_recorded_owner_and_mode() {
        let dir = |path: &str, mode| DirEntry { path: path.into(), mode, uid: 1000, gid: 1000 };
        let m = manifest(vec![dir("data", 0o750), dir("data/uploads", 0o755)]);
        let got = entries(&m);
        let want = vec![
            ("data/".to_string(), tar::EntryType::Directory, 1000, 0o750),
            ("data/uploads".to_string(), tar::EntryType::Directory, 1000, 0o755),
            // Not recorded: the database's owner, 0700.
            ("data/uploads/a".to_string(), tar::EntryType::Directory, 1000, 0o700),
            ("data/keyfount.db".to_string(), tar::EntryType::Regular, 1000, 0o600),
            ("data/uploads/a/b.png".to_string(), tar::EntryType::Regular, 1000, 0o640),
        ];
        assert_eq!(got, want);
        // An archive that recorded no directories: the data directory is the database owner's, 0700.
        let got = entries(&manifest(vec![]));
        assert_eq!(got[0], ("data/".to_string(), tar::EntryType::Directory, 1000, 0o700));
    }

    #[test]
    fn the_data_directory_must_be_a_mount_of_the_live_container() {
        let mut live = Container { name: "kf".into(), ..Container::default() };
        live.mounts.push(docker::Mount {
            destination: "/data".into(),
            kind: "volume".into(),
            name: Some("v".into()),
            ..Default::default()
        });
        assert_eq!(data_dir(&live, Path::new("/data/keyfount.db")).unwrap(), Path::new("/data"));
        for bad in ["/keyfount.db", "/data/other.db", "data/keyfount.db"] {
            assert_eq!(data_dir(&live, Path::new(bad)).unwrap_err().kind, Kind::Usage, "{bad}");
        }
        let e = data_dir(&live, Path::new("/srv/keyfount.db")).unwrap_err();
        assert!(
            e.message.contains("no volume or bind mount that holds /srv/keyfount.db (its mounts: /data)"),
            "{}",
            e.message
        );
        live.mounts.push(docker::Mount {
            destination: "/status".into(),
            kind: "bind".into(),
            source: "/srv/st".into(),
            ..Default::default()
        });
        assert_eq!(
            left_out(&live, Path::new("/data/keyfount.db")),
            vec!["/status (bind mount /srv/st)".to_string()]
        );
    }
}
