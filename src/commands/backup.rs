//! `kfadmin backup`: `--online` from a database file or a container's data, `--cold` from a
//! stopped container. Each path stages the files, then [`finish`] checks, hashes, archives and
//! verifies them.

use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use super::{human_bytes, Ctx, Outcome};
use crate::archive::manifest::ContainerRef;
use crate::archive::reader::{self, Options};
use crate::archive::writer::{self, Compression, Written};
use crate::archive::{FileEntry, Manifest, Mode, Source};
use crate::cli::{BackupArgs, ContainerArgs, EncryptArgs, OutputArgs};
use crate::crypto::{self, Encryption};
use crate::docker::{self, Container, Engine, StopGuard, Stopped};
use crate::error::{check_interrupt, Error, Kind, Result};
use crate::fsutil::{self, Copied};
use crate::monitor;
use crate::progress::Unit;
use crate::sqlite::{self, DbFacts, Journal, SnapshotStats};

#[derive(Debug, Default, Serialize)]
pub struct Timings {
    pub snapshot_ms: u64,
    pub check_ms: u64,
    pub archive_ms: u64,
    pub verify_ms: u64,
}

/// The `--json` report of a backup.
#[derive(Debug, Serialize)]
pub struct BackupReport {
    pub ok: bool,
    /// Encrypted with age (the file ends in .age).
    pub encrypted: bool,
    /// Who can decrypt it: the recipients as given, or "passphrase (scrypt)".
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub recipients: Vec<String>,
    pub archive: PathBuf,
    pub sidecar: PathBuf,
    pub sha256: String,
    pub bytes: u64,
    pub mode: Mode,
    pub created: String,
    pub source: Source,
    pub duration_ms: u64,
    /// Cold backups of a running container: from the stop request to the start call.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub downtime_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop: Option<Stopped>,
    /// WAL frames an unclean stop had left, folded into the database before copying.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wal_frames_folded: Option<u64>,
    pub timings: Timings,
    pub verified: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<SnapshotStats>,
    pub database: DbFacts,
    pub files: Vec<FileEntry>,
    pub warnings: Vec<String>,
}

pub fn compression(o: &OutputArgs) -> Compression {
    Compression { level: o.compression_level, ..Compression::default() }
}

fn check_name(n: &str) -> Result<String> {
    if n.is_empty()
        || n.len() > 100
        || n.starts_with('.')
        || !n.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
    {
        return Err(Error::usage(format!("--name {n:?} is not a usable archive name"))
            .hint("use letters, digits, '-', '_' and '.', not starting with '.'"));
    }
    Ok(n.to_string())
}

/// A Keyfount found through `--container`.
pub struct Found {
    pub engine: Engine,
    pub container: Container,
    pub location: docker::DataLocation,
}

/// The container `--container` names (and `--compose-project`, `--db-path`).
pub fn find_container(name: &str, args: &ContainerArgs) -> Result<Found> {
    let (project, db_path) = (args.compose_project.as_deref(), args.db_path.as_path());
    if !db_path.is_absolute() {
        return Err(Error::usage(format!(
            "--db-path {} must be an absolute path inside the container",
            db_path.display()
        )));
    }
    let engine = Engine::connect()?;
    let container = engine.find(name, project)?;
    let location = docker::data_location(&container, db_path)?;
    Ok(Found { engine, container, location })
}

pub fn container_source(f: &Found) -> Source {
    Source {
        kind: "container".into(),
        path: f.location.host_db.display().to_string(),
        host: fsutil::hostname(),
        container: Some(ContainerRef {
            name: f.container.name.clone(),
            id: f.container.id.clone(),
            image: f.container.image.clone(),
        }),
    }
}

pub fn run(args: BackupArgs, ctx: &Ctx) -> Result<Outcome> {
    let started = Instant::now();
    let mon = &args.monitor;
    if let Some(url) = &mon.ping_url {
        if let Some(w) = monitor::ping(url, monitor::Ping::Start, "") {
            ctx.warn(&w);
        }
    }
    let result = match (&args.target.docker.container, args.cold) {
        (Some(name), true) => cold(&args, name, ctx, started),
        (_, true) => Err(Error::usage("--cold stops a container and needs --container NAME")
            .hint("for a database file on this host, take an --online backup")),
        (_, false) => online(&args, ctx, started),
    };
    report_to_monitor(&args, ctx, &result, started);
    let report = result?;
    let human = human(&report);
    Ok(Outcome::new(0, human, &report))
}

/// Metrics file and ping, success or failure; a monitor that is down only warns.
fn report_to_monitor(args: &BackupArgs, ctx: &Ctx, result: &Result<BackupReport>, started: Instant) {
    let mon = &args.monitor;
    if mon.metrics_file.is_none() && mon.ping_url.is_none() {
        return;
    }
    let name = match result {
        Ok(r) => r
            .archive
            .file_name()
            .and_then(|n| crate::archive::catalog::parse_name(&n.to_string_lossy()))
            .map(|p| p.0),
        Err(_) => None,
    }
    .or(args.output.name.clone())
    .or(args.target.docker.container.clone())
    .or(args.target.db.as_ref().and_then(|d| d.file_stem()).map(|s| s.to_string_lossy().into_owned()))
    .unwrap_or_else(|| "keyfount".into());
    let facts = monitor::RunFacts {
        name,
        mode: if args.cold { "cold" } else { "online" }.into(),
        exit_code: result.as_ref().map(|_| 0).unwrap_or_else(|e| e.kind.code()),
        duration_s: started.elapsed().as_secs_f64(),
        bytes: result.as_ref().ok().map(|r| r.bytes),
        database_bytes: result.as_ref().ok().map(|r| r.database.page_size * r.database.page_count),
        downtime_s: result.as_ref().ok().and_then(|r| r.downtime_ms).map(|ms| ms as f64 / 1000.0),
    };
    if let Some(path) = &mon.metrics_file {
        if let Some(w) = monitor::write_metrics(path, &facts) {
            ctx.warn(&w);
        }
    }
    if let Some(url) = &mon.ping_url {
        let (which, body) = match result {
            Ok(r) => (
                monitor::Ping::Success,
                format!("{} {} bytes sha256 {}", r.archive.display(), r.bytes, r.sha256),
            ),
            Err(e) => (monitor::Ping::Fail, format!("exit {}: {}", e.kind.code(), e.chain())),
        };
        if let Some(w) = monitor::ping(url, which, &body) {
            ctx.warn(&w);
        }
    }
}

/// The encryption asked for, checked before any work (a bad recipient is bad input).
pub fn encryption(args: &EncryptArgs, ctx: &Ctx) -> Result<Encryption> {
    if args.passphrase {
        return Ok(Encryption::Passphrase(crypto::passphrase(ctx.interactive, true)?));
    }
    recipients(&args.encrypt_to, args.recipients_file.as_deref())
}

/// Recipients from `--encrypt-to` and `--recipients-file` (no encryption when neither is given).
pub fn recipients(encrypt_to: &[String], file: Option<&Path>) -> Result<Encryption> {
    let mut recipients = Vec::new();
    let mut described = Vec::new();
    for r in encrypt_to {
        recipients.push(crypto::parse_recipient(r)?);
        described.push(r.trim().to_string());
    }
    if let Some(f) = file {
        for (r, d) in crypto::read_recipients_file(f)? {
            recipients.push(r);
            described.push(d);
        }
    }
    Ok(if recipients.is_empty() { Encryption::None } else { Encryption::recipients(recipients, described) })
}

fn online(args: &BackupArgs, ctx: &Ctx, started: Instant) -> Result<BackupReport> {
    let encryption = encryption(&args.encrypt, ctx)?;
    let (db, source, default_name) = match (&args.target.db, &args.target.docker.container) {
        (Some(db), _) => {
            let db = std::path::absolute(db).unwrap_or(db.clone());
            let stem = db.file_stem().map(|s| s.to_string_lossy().into_owned()).filter(|s| !s.is_empty());
            let source = Source {
                kind: "path".into(),
                path: db.display().to_string(),
                host: fsutil::hostname(),
                container: None,
            };
            (db, source, stem.unwrap_or_else(|| "keyfount".into()))
        }
        (None, Some(name)) => {
            let f = find_container(name, &args.target.docker)?;
            (f.location.host_db.clone(), container_source(&f), f.container.name.clone())
        }
        (None, None) => unreachable!("clap requires --db or --container"),
    };
    let info = sqlite::inspect(&db)?;
    let name = args.output.name.as_deref().map(check_name).transpose()?.unwrap_or(default_name);
    let mut warnings = Vec::new();
    if info.journal == Journal::Rollback {
        warn(
            ctx,
            &mut warnings,
            format!(
                "{} is in rollback-journal mode, not WAL: the server's writes wait while the copy runs",
                db.display()
            ),
        );
    }
    fsutil::ensure_private_dir(&args.output.out)?;
    let staging = fsutil::staging_dir(&args.output.out, ".kfadmin-staging-")?;
    let created = SystemTime::now();
    ctx.note(&format!("Snapshotting {} ({})", db.display(), human_bytes(info.size)));
    let snap = staging.path().join(sqlite::DB_FILE);
    let stats = sqlite::snapshot(&db, &snap, ctx.progress.as_ref())?;
    ctx.detail(&format!(
        "snapshot: {} pages of {} bytes in {} steps, {} restarts, {} busy retries, {} ms",
        stats.page_count, stats.page_size, stats.steps, stats.restarts, stats.busy_retries, stats.duration_ms
    ));
    if stats.restarts > 0 {
        warn(ctx, &mut warnings, format!("the snapshot restarted {} time(s)", stats.restarts));
    }
    let staged = vec![Copied {
        rel: PathBuf::from(sqlite::DB_FILE),
        staged: snap,
        mode: info.mode & 0o777,
        uid: info.uid,
        gid: info.gid,
        reflinked: false,
    }];
    let mut report =
        finish(ctx, &args.output, &encryption, &name, Mode::Online, source, created, &staged, started)?;
    report.timings.snapshot_ms = stats.duration_ms;
    report.snapshot = Some(stats);
    report.warnings.splice(0..0, warnings);
    Ok(report)
}

fn cold(args: &BackupArgs, name: &str, ctx: &Ctx, started: Instant) -> Result<BackupReport> {
    let encryption = encryption(&args.encrypt, ctx)?;
    let f = find_container(name, &args.target.docker)?;
    sqlite::inspect(&f.location.host_db)?;
    let archive_name =
        args.output.name.as_deref().map(check_name).transpose()?.unwrap_or(f.container.name.clone());
    fsutil::ensure_private_dir(&args.output.out)?;
    let staging = fsutil::staging_dir(&args.output.out, ".kfadmin-staging-")?;
    let timeout = args.stop_timeout.map(i64::from).or(f.container.stop_timeout).unwrap_or(10);

    let created = SystemTime::now();
    let mut guard = StopGuard::new(&f.engine, f.container.clone());
    if guard.was_running() {
        ctx.note(&format!("Stopping container {} (stop timeout {timeout} s)", f.container.name));
    }
    let t0 = Instant::now();
    let copied = (|| -> Result<_> {
        let stopped = guard.stop(timeout, "kfadmin backup --cold")?;
        check_interrupt()?;
        let folded = sqlite::fold_wal(&f.location.host_db)?;
        check_interrupt()?;
        let (files, warnings) = fsutil::copy_data_dir(&f.location.host_dir, staging.path())?;
        // A server started behind kfadmin's back during the copy makes it inconsistent.
        docker::test_pause("after-copy");
        guard.ensure_stopped()?;
        check_interrupt()?;
        Ok((stopped, folded, files, warnings))
    })();
    let restarted = guard.restart().map(drop);
    let downtime_ms = guard.was_running().then(|| t0.elapsed().as_millis() as u64);
    let (stopped, folded, files, copy_warnings) = settle(copied, restarted)?;
    if let Some(s) = &stopped {
        ctx.detail(&format!(
            "stop: {} ms, exit code {}",
            s.duration_ms,
            s.exit_code.map(|c| c.to_string()).unwrap_or("?".into())
        ));
    }
    for f in &files {
        ctx.detail(&format!("copied {} ({})", f.rel.display(), if f.reflinked { "reflink" } else { "copy" }));
    }
    if let Some(ms) = downtime_ms {
        ctx.note(&format!(
            "Container {} is running again after {:.2} s of downtime",
            f.container.name,
            ms as f64 / 1000.0
        ));
    }

    let mut warnings = Vec::new();
    if let Some(s) = &stopped {
        if s.oom_killed {
            warn(
                ctx,
                &mut warnings,
                format!("container {} was killed for lack of memory while stopping", f.container.name),
            );
        } else if s.exit_code == Some(137) {
            warn(
                ctx,
                &mut warnings,
                format!(
                    "container {} did not stop within its stop timeout of {timeout} s and was killed (exit code 137); its unfinished WAL was folded in",
                    f.container.name
                ),
            );
        }
    }
    if folded > 0 {
        warn(
            ctx,
            &mut warnings,
            format!(
                "{folded} WAL frame(s) left by an unclean stop were checkpointed into {}",
                f.location.host_db.display()
            ),
        );
    }
    for w in copy_warnings {
        warn(ctx, &mut warnings, w);
    }
    let db_rel = Path::new(sqlite::DB_FILE);
    let mut files = files;
    files.sort_by_key(|c| (c.rel != db_rel, c.rel.clone()));
    if files.first().map(|c| c.rel.as_path()) != Some(db_rel) {
        return Err(Error::failed(format!(
            "{} disappeared while the container was stopped",
            f.location.host_db.display()
        )));
    }
    let mut report = finish(
        ctx,
        &args.output,
        &encryption,
        &archive_name,
        Mode::Cold,
        container_source(&f),
        created,
        &files,
        started,
    )?;
    report.downtime_ms = downtime_ms;
    report.stop = stopped;
    report.wal_frames_folded = Some(folded);
    report.warnings.splice(0..0, warnings);
    Ok(report)
}

/// The outcome of work done while a container was stopped, and of starting it again: a
/// container that cannot be started again outranks every other error (exit 4).
pub fn settle<T>(work: Result<T>, restarted: Result<()>) -> Result<T> {
    match (work, restarted) {
        (Ok(x), Ok(())) => Ok(x),
        (Err(e), Ok(())) => Err(e),
        (Ok(_), Err(r)) => Err(r),
        (Err(e), Err(r)) => {
            Err(Error::new(Kind::ContainerState, format!("{}; then: {}", e.chain(), r.message))
                .hint(r.hint.unwrap_or_default()))
        }
    }
}

/// Raise this thread's nice value (Linux: per thread; the compression and verification threads
/// started after this inherit it). Best effort: a failure leaves the priority as it was.
fn lower_priority(nice: u8) {
    if nice == 0 {
        return;
    }
    // SAFETY: plain syscalls on the calling thread.
    unsafe {
        let now = libc::getpriority(libc::PRIO_PROCESS as _, 0);
        if now < i32::from(nice) {
            libc::setpriority(libc::PRIO_PROCESS as _, 0, i32::from(nice));
        }
    }
}

fn warn(ctx: &Ctx, warnings: &mut Vec<String>, w: String) {
    ctx.warn(&w);
    warnings.push(w);
}

/// Check, hash, archive and verify staged files (the database first).
#[allow(clippy::too_many_arguments)]
pub fn finish(
    ctx: &Ctx,
    output: &OutputArgs,
    encryption: &Encryption,
    name: &str,
    mode: Mode,
    source: Source,
    created: SystemTime,
    staged: &[Copied],
    started: Instant,
) -> Result<BackupReport> {
    let created_unix = created.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    // From here on the work competes with the server for CPU, not for its data.
    lower_priority(output.nice);
    let t = Instant::now();
    let db = &staged[0];
    let conn = sqlite::open_immutable(&db.staged)?;
    let problems = sqlite::check(&conn, false)?;
    if !problems.is_empty() {
        return Err(Error::verification(format!(
            "the copy of {} fails PRAGMA quick_check: {}",
            source.path,
            problems.join("; ")
        ))
        .hint("the database itself is damaged: check it with `sqlite3 keyfount.db 'PRAGMA integrity_check'` and keep your older backups"));
    }
    let database = sqlite::facts(&conn, &db.staged)?;
    drop(conn);
    let total: u64 = staged.iter().map(|c| std::fs::metadata(&c.staged).map(|m| m.len()).unwrap_or(0)).sum();
    let stage = ctx.progress.stage("checksum", total, Unit::Bytes);
    let mut files = Vec::new();
    for c in staged {
        let (sha256, size) = fsutil::sha256_file(&c.staged, Some(stage.as_ref()))?;
        files.push(FileEntry {
            path: format!("data/{}", c.rel.display()),
            size,
            sha256,
            mode: c.mode & 0o777,
            uid: c.uid,
            gid: c.gid,
        });
    }
    stage.finish();
    let check_ms = t.elapsed().as_millis() as u64;

    let manifest = Manifest {
        format: crate::archive::manifest::FORMAT.into(),
        format_version: crate::archive::manifest::FORMAT_VERSION,
        kfadmin_version: env!("CARGO_PKG_VERSION").into(),
        created: humantime::format_rfc3339_seconds(created).to_string(),
        created_unix,
        mode,
        source: source.clone(),
        files: files.clone(),
        database: database.clone(),
    };
    let file_name = writer::file_name(name, created_unix, mode.as_str(), encryption.is_some());
    let paths: Vec<PathBuf> = staged.iter().map(|c| c.staged.clone()).collect();
    let (written, archive_ms, verify_ms) =
        write_and_verify(&output.out, &file_name, &manifest, &paths, compression(output), encryption, ctx)?;
    ctx.detail(&format!("check and checksum {check_ms} ms, archive {archive_ms} ms, verify {verify_ms} ms"));
    Ok(BackupReport {
        ok: true,
        encrypted: encryption.is_some(),
        recipients: encryption.describe(),
        archive: written.path.clone(),
        sidecar: written.sidecar.clone(),
        sha256: written.sha256.clone(),
        bytes: written.bytes,
        mode,
        created: manifest.created.clone(),
        source,
        duration_ms: started.elapsed().as_millis() as u64,
        downtime_ms: None,
        stop: None,
        wal_frames_folded: None,
        timings: Timings { snapshot_ms: 0, check_ms, archive_ms, verify_ms },
        verified: true,
        snapshot: None,
        database,
        files,
        warnings: Vec::new(),
    })
}

/// Write the archive and verify the `.partial` (gzip, tar, manifest, every file's sha256)
/// before it gets its final name. Returns the archive and the two phases' durations.
pub fn write_and_verify(
    out: &Path,
    file_name: &str,
    manifest: &Manifest,
    files: &[PathBuf],
    compression: Compression,
    encryption: &Encryption,
    ctx: &Ctx,
) -> Result<(Written, u64, u64)> {
    let t = Instant::now();
    let mut verify_ms = 0;
    // An encrypted archive is read back with the one-time key (or the passphrase).
    let check_keys = encryption.check_keys();
    let written = writer::write(
        out,
        file_name,
        manifest,
        files,
        compression,
        encryption,
        ctx.progress.as_ref(),
        |partial, sha| {
            let t = Instant::now();
            let opts = Options {
                sqlite: false,
                extract_to: None,
                expected_sha256: Some(sha),
                keys: Some(&check_keys),
            };
            let verdict = reader::verify(partial, &opts, ctx.progress.as_ref())?;
            verify_ms = t.elapsed().as_millis() as u64;
            if verdict.ok {
                Ok(())
            } else {
                let failed: Vec<String> =
                    verdict.failed().map(|c| format!("{}: {}", c.name, c.detail)).collect();
                Err(Error::new(Kind::Verification, format!("the new archive failed verification: {}", failed.join("; ")))
                .hint("the archive was removed; check the disk and memory of this machine, then run the backup again"))
            }
        },
    )?;
    let archive_ms = (t.elapsed().as_millis() as u64).saturating_sub(verify_ms);
    Ok((written, archive_ms, verify_ms))
}

fn human(r: &BackupReport) -> String {
    let rows: u64 = r.database.tables.values().sum();
    let mut s = format!(
        "Backup written and verified: {}\n  sha256   {}\n  size     {} (database {}, {} rows in {} tables, schema version {})\n  time     {:.2} s (snapshot {:.2} s, archive {:.2} s, verify {:.2} s)\n",
        r.archive.display(),
        r.sha256,
        human_bytes(r.bytes),
        human_bytes(r.database.page_size * r.database.page_count),
        rows,
        r.database.tables.len(),
        r.database.schema_version.map(|v| v.to_string()).unwrap_or_else(|| "-".into()),
        r.duration_ms as f64 / 1000.0,
        r.timings.snapshot_ms as f64 / 1000.0,
        r.timings.archive_ms as f64 / 1000.0,
        r.timings.verify_ms as f64 / 1000.0,
    );
    if let Some(d) = r.downtime_ms {
        s.push_str(&format!(
            "  downtime {:.2} s (container {})\n",
            d as f64 / 1000.0,
            r.source.container.as_ref().map(|c| c.name.as_str()).unwrap_or("")
        ));
    }
    s
}
