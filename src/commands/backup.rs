//! `kfadmin backup`: `--online` from a database file or a container's data, `--cold` from a
//! stopped container. Each path stages the files, then [`finish`] checks, hashes, archives and
//! verifies them.

use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime};

use serde::Serialize;

use super::{human_bytes, Ctx, Outcome};
use crate::archive::writer::{Compression, Written};
use crate::archive::{FileEntry, Mode, Source};
use crate::cli::{BackupArgs, EncryptArgs, OutputArgs};
use crate::crypto::Encryption;
use crate::docker;
use crate::docker::{StopGuard, Stopped};
use crate::error::{check_interrupt, Error, Result};
use crate::fsutil::{self, Copied};
use crate::monitor;
use crate::ops::container::{cold_source, container_source, find_container, settle};
pub use crate::ops::make::Timings;
use crate::ops::make::{self, check_name, ArchiveSpec, Made};
use crate::ops::offsite::{self, Uploaded};
use crate::ops::staging::{Staging, STAGING_PREFIX};
use crate::sqlite::{self, DbFacts, Journal, MadeWhole, SnapshotStats};

/// The `--json` report of a backup.
#[derive(Debug, Serialize)]
pub struct BackupReport {
    pub ok: bool,
    /// Encrypted with age (the file ends in .age).
    pub encrypted: bool,
    /// Who can decrypt it: the recipients as given, or "passphrase (scrypt)".
    pub recipients: Vec<String>,
    /// The same in one line, as the summary says it: "2 recipients (age1…, ssh-ed25519 …)",
    /// "a passphrase (scrypt)"; null for a plain archive.
    pub encrypted_to: Option<String>,
    #[serde(serialize_with = "super::lossy::path")]
    pub archive: PathBuf,
    #[serde(serialize_with = "super::lossy::path")]
    pub sidecar: PathBuf,
    pub sha256: String,
    pub bytes: u64,
    pub mode: Mode,
    pub created: String,
    pub source: Source,
    pub duration_ms: u64,
    /// Cold backups of a running container: from the stop request to the start call.
    pub downtime_ms: Option<u64>,
    pub stop: Option<Stopped>,
    /// WAL frames an unclean stop had left, folded into the database before copying.
    pub wal_frames_folded: Option<u64>,
    /// Cold backups: every database of the data directory that had WAL frames or a hot
    /// journal, and what was done about it before copying.
    pub made_whole: Vec<MadeWhole>,
    pub timings: Timings,
    pub verified: bool,
    pub snapshot: Option<SnapshotStats>,
    pub database: DbFacts,
    pub files: Vec<FileEntry>,
    pub warnings: Vec<String>,
    /// `--to`: each destination's upload (absent without `--to`).
    pub offsite: Vec<Uploaded>,
}

pub fn compression(o: &OutputArgs) -> Compression {
    Compression { level: o.compression_level, ..Compression::default() }
}

pub fn run(args: BackupArgs, ctx: &Ctx) -> Result<Outcome> {
    let started = Instant::now();
    let dests = offsite_plan(&args)?;
    if args.dry_run {
        return dry_run(&args, &dests, ctx);
    }
    let mon = &args.monitor;
    if let Some(url) = &mon.ping_url {
        if let Some(w) = monitor::ping(url, monitor::Ping::Start, "") {
            ctx.warn(&w);
        }
    }
    let result = super::backup_locks(&args, &dests, ctx).and_then(|_locks| {
        offsite::preflight(&dests)?;
        let mut report = match (&args.target.docker.container, args.cold) {
            (Some(name), true) => cold(&args, name, ctx, started),
            (_, true) => Err(Error::usage("--cold stops a container and needs --container NAME")
                .hint("for a database file on this host, take an --online backup")),
            (_, false) => online(&args, ctx, started),
        }?;
        // The local archive is written and verified: now the offsite copies, one by one.
        let written = Written {
            path: report.archive.clone(),
            sidecar: report.sidecar.clone(),
            sha256: report.sha256.clone(),
            bytes: report.bytes,
        };
        for d in &dests {
            report.offsite.push(offsite::upload(d, &written, args.offsite.verify_offsite, ctx)?);
        }
        report.ok = report.offsite.iter().all(|u| u.ok);
        report.duration_ms = started.elapsed().as_millis() as u64;
        Ok(report)
    });
    let code = result.as_ref().map(|r| offsite::exit_code(&r.offsite)).unwrap_or_else(|e| e.kind.code());
    report_to_monitor(&args, ctx, &result, code, started);
    let report = result?;
    let human = human(&report);
    Ok(Outcome::new(code, human, &report))
}

/// `--dry-run`: every check a backup makes before it starts (the target, its database, the
/// name, the encryption, the offsite locations), and what it would do. Nothing is written,
/// locked, pinged, stopped or started; a passphrase is not asked for.
fn dry_run(args: &BackupArgs, dests: &[crate::store::S3Url], ctx: &Ctx) -> Result<Outcome> {
    let e = &args.encrypt;
    // A passphrase is not asked for; without a terminal or KFADMIN_PASSPHRASE it fails as the
    // real run would.
    let (encrypted, recipients) = if e.passphrase && ctx.interactive && !crate::crypto::passphrase_given() {
        (true, vec!["passphrase (scrypt)".to_string()])
    } else {
        let enc = encryption(e, ctx)?;
        (enc.is_some(), enc.describe())
    };
    let mut steps = Vec::new();
    let (mode, db, source, default_name) = match (&args.target.docker.container, args.cold) {
        (Some(name), true) => {
            let d = &args.target.docker;
            let f = find_container(name, d.compose_project.as_deref(), &d.db_path)?;
            f.engine.check_stoppable(&f.container, &f.location, docker::Purpose::ColdBackup)?;
            let timeout = args.stop_timeout.map(i64::from).or(f.container.stop_timeout).unwrap_or(10);
            steps.push(if f.container.running {
                format!("stop container {} (SIGTERM, then SIGKILL after {timeout} s), copy its data directory aside, start it again", f.container.name)
            } else {
                format!("copy the data directory of container {} (it is not running, and stays stopped)", f.container.name)
            });
            (Mode::Cold, f.location.host_db.clone(), cold_source(&f), f.container.name.clone())
        }
        (_, true) => {
            return Err(Error::usage("--cold stops a container and needs --container NAME")
                .hint("for a database file on this host, take an --online backup"))
        }
        (_, false) => {
            let (db, source, name) = online_target(args)?;
            steps.push(format!(
                "snapshot {} through SQLite's online backup API (the server keeps running)",
                db.display()
            ));
            (Mode::Online, db, source, name)
        }
    };
    let info = sqlite::inspect(&db)?;
    let name = args.output.name.as_deref().map(check_name).transpose()?.unwrap_or(default_name);
    let out = &args.output.out;
    let now = crate::commands::now_unix();
    let file = crate::archive::writer::file_name(&name, now, mode.as_str(), encrypted);
    let archive = out.join(&file);
    steps.push(format!(
        "write and verify {}{} with its .sha256{}",
        archive.display(),
        if encrypted { format!(", encrypted to {}", recipients.join(", ")) } else { String::new() },
        if out.is_dir() { String::new() } else { format!(" (creating {}, mode 0700)", out.display()) }
    ));
    for d in dests {
        steps.push(format!("upload it and its .sha256 to {d}"));
    }
    if let Some(m) = &args.monitor.metrics_file {
        steps.push(format!("write metrics to {}", m.display()));
    }
    if args.monitor.ping_url.is_some() {
        steps.push("ping --ping-url at the start and the end".to_string());
    }
    let report = serde_json::json!({
        "ok": true,
        "dry_run": true,
        "mode": mode,
        "source": source,
        "database": { "path": db.to_string_lossy(), "size": info.size, "journal_mode": if info.journal == Journal::Wal { "wal" } else { "rollback" } },
        "archive": archive.to_string_lossy(),
        "repo": out.to_string_lossy(),
        "encrypted": encrypted,
        "recipients": recipients,
        "offsite": dests.iter().map(|d| d.to_string()).collect::<Vec<_>>(),
        "steps": steps,
    });
    Ok(Outcome::new(0, super::dry_run_text(&steps), &report))
}

/// The `--to` destinations, checked before any work: well-formed, and (unless
/// `--plaintext-offsite`) only for an encrypted archive.
fn offsite_plan(args: &BackupArgs) -> Result<Vec<crate::store::S3Url>> {
    if crate::store::is_remote_path(&args.output.out) {
        return Err(Error::usage(format!(
            "-r/--repo {} is remote: a backup is written to a local directory first",
            args.output.out.display()
        ))
        .hint("pass the local directory with -r/--repo and the S3 location with --to s3://BUCKET/PREFIX"));
    }
    let dests = offsite::destinations(&args.offsite.to)?;
    let e = &args.encrypt;
    let encrypted = e.passphrase || !e.encrypt_to.is_empty() || e.recipients_file.is_some();
    if !dests.is_empty() && !encrypted && !args.offsite.plaintext_offsite {
        return Err(Error::usage(
            "--to would send a plaintext archive offsite: the database holds the server's long-term keys",
        )
        .hint("encrypt it (--encrypt-to age1… or ssh-ed25519 …, --recipients-file FILE, or --passphrase), or pass --plaintext-offsite if the storage is as trusted as this machine"));
    }
    Ok(dests)
}

/// Metrics file and ping, success or failure; a monitor that is down only warns.
fn report_to_monitor(
    args: &BackupArgs,
    ctx: &Ctx,
    result: &Result<BackupReport>,
    code: u8,
    started: Instant,
) {
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
        exit_code: code,
        duration_s: started.elapsed().as_secs_f64(),
        bytes: result.as_ref().ok().map(|r| r.bytes),
        database_bytes: result.as_ref().ok().map(|r| r.database.page_size * r.database.page_count),
        downtime_s: result.as_ref().ok().and_then(|r| r.downtime_ms).map(|ms| ms as f64 / 1000.0),
        offsite: result
            .as_ref()
            .map(|r| r.offsite.iter().map(|u| (u.location.clone(), u.ok)).collect())
            .unwrap_or_else(|_| {
                args.offsite.to.iter().map(|t| (t.trim().trim_end_matches('/').to_string(), false)).collect()
            }),
    };
    if let Some(path) = &mon.metrics_file {
        if let Some(w) = monitor::write_metrics(path, &facts) {
            ctx.warn(&w);
        }
    }
    if let Some(url) = &mon.ping_url {
        let (which, body) = match result {
            Ok(r) => {
                let mut body = format!("{} {} bytes sha256 {}", r.archive.display(), r.bytes, r.sha256);
                for u in &r.offsite {
                    match &u.error {
                        None => body.push_str(&format!("\noffsite {} ok", u.url)),
                        Some(e) => body.push_str(&format!("\noffsite {} FAILED: {e}", u.url)),
                    }
                }
                let which = if code == 0 { monitor::Ping::Success } else { monitor::Ping::Fail };
                (which, body)
            }
            Err(e) => (monitor::Ping::Fail, format!("exit {}: {}", e.kind.code(), e.chain())),
        };
        if let Some(w) = monitor::ping(url, which, &body) {
            ctx.warn(&w);
        }
    }
}

/// The encryption asked for, checked before any work (a bad recipient is bad input).
pub fn encryption(args: &EncryptArgs, ctx: &Ctx) -> Result<Encryption> {
    make::encryption(args.passphrase, &args.encrypt_to, args.recipients_file.as_deref(), ctx.interactive)
}

/// What to do when the private staging area is too small.
const ROOM_HINT: &str = "free some space there, or pass --tmp-dir DIR: a private directory on a filesystem with room (kfadmin keeps its copy there only while it runs)";

/// The database an online backup copies, its source record and the archive's default name.
fn online_target(args: &BackupArgs) -> Result<(PathBuf, Source, String)> {
    match (&args.target.db, &args.target.docker.container) {
        (Some(db), _) => {
            // The operator's own links are followed here, once; kfadmin follows none after.
            let db = std::fs::canonicalize(db).or_else(|_| std::path::absolute(db)).unwrap_or(db.clone());
            let stem = db.file_stem().map(|s| s.to_string_lossy().into_owned()).filter(|s| !s.is_empty());
            let source = Source {
                kind: "path".into(),
                path: db.display().to_string(),
                host: fsutil::hostname(),
                container: None,
                mounts: vec![],
            };
            Ok((db, source, stem.unwrap_or_else(|| "keyfount".into())))
        }
        (None, Some(name)) => {
            let d = &args.target.docker;
            let f = find_container(name, d.compose_project.as_deref(), &d.db_path)?;
            docker::check_readable(&f.container, &f.location)?;
            crate::ops::container::inspect_db(&f, &d.db_path)?;
            Ok((f.location.host_db.clone(), container_source(&f), f.container.name.clone()))
        }
        (None, None) => Err(Error::usage("backup needs --db PATH or --container NAME")),
    }
}

fn prepare_out(out: &Path, ctx: &Ctx, warnings: &mut Vec<String>) -> Result<()> {
    for w in crate::ops::staging::prepare_out(out)? {
        warn(ctx, warnings, w);
    }
    Ok(())
}

fn online(args: &BackupArgs, ctx: &Ctx, started: Instant) -> Result<BackupReport> {
    let encryption = encryption(&args.encrypt, ctx)?;
    let (db, source, default_name) = online_target(args)?;
    let info = sqlite::inspect(&db)?;
    let name = args.output.name.as_deref().map(check_name).transpose()?.unwrap_or(default_name);
    let mut warnings = Vec::new();
    if info.journal == Journal::Rollback {
        let w = format!(
            "{} is in rollback-journal mode, not WAL: the server's writes wait while the copy runs",
            db.display()
        );
        warn(ctx, &mut warnings, w);
    }
    prepare_out(&args.output.out, ctx, &mut warnings)?;
    let staging = Staging::private(args.output.tmp_dir.as_deref(), STAGING_PREFIX)?;
    staging.dir().ensure_room(info.size, 1, "for a copy of the database", ROOM_HINT)?;
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
    crate::fault::point("backup.snapshot")?;
    let staged = vec![Copied {
        rel: PathBuf::from(sqlite::DB_FILE),
        staged: snap,
        mode: info.mode & 0o777,
        uid: info.uid,
        gid: info.gid,
        reflinked: false,
        dir: false,
    }];
    let made =
        make::make(ctx, &spec(&args.output, &name, Mode::Online, source, created), &encryption, &staged)?;
    let mut report = report(made, &encryption, started);
    report.timings.snapshot_ms = stats.duration_ms;
    report.snapshot = Some(stats);
    report.warnings.splice(0..0, warnings);
    Ok(report)
}

fn cold(args: &BackupArgs, name: &str, ctx: &Ctx, started: Instant) -> Result<BackupReport> {
    let encryption = encryption(&args.encrypt, ctx)?;
    let d = &args.target.docker;
    let f = find_container(name, d.compose_project.as_deref(), &d.db_path)?;
    f.engine.check_stoppable(&f.container, &f.location, docker::Purpose::ColdBackup)?;
    crate::ops::container::inspect_db(&f, &d.db_path)?;
    let archive_name =
        args.output.name.as_deref().map(check_name).transpose()?.unwrap_or(f.container.name.clone());
    let mut warnings = Vec::new();
    prepare_out(&args.output.out, ctx, &mut warnings)?;
    let staging = Staging::private(args.output.tmp_dir.as_deref(), STAGING_PREFIX)?;
    let parts = f.location.parts(true);
    let (mut bytes, mut entries) = (0, 0);
    for dir in parts.iter().filter_map(|(_, d)| d.as_ref()).filter(|d| d.is_dir()) {
        let (b, e) = fsutil::tree_size(dir)?;
        (bytes, entries) = (bytes + b, entries + e);
    }
    staging.dir().ensure_room(bytes, entries, "for a copy of the data directory", ROOM_HINT)?;
    let timeout = args.stop_timeout.map(i64::from).or(f.container.stop_timeout).unwrap_or(10);

    let created = SystemTime::now();
    // Starts the container again at once should this run be killed while it is down.
    let _guardian = crate::ops::guardian::spawn(&format!("a cold backup of container {}", f.container.name))?;
    let mut guard = StopGuard::new(&f.engine, f.container.clone());
    if guard.was_running() {
        ctx.note(&format!("Stopping container {} (stop timeout {timeout} s)", f.container.name));
    }
    if !f.location.nested.is_empty() {
        let all: Vec<String> = std::iter::once(&f.location.mount)
            .chain(&f.location.nested)
            .map(|m| format!("{} ({})", m.destination.display(), m.describe()))
            .collect();
        ctx.note(&format!("The data directory spans {} mounts, all copied: {}", all.len(), all.join(", ")));
    }
    let t0 = Instant::now();
    let copied = stop_and_copy(&mut guard, timeout, &parts, &staging);
    let restarted = guard.restart().map(drop);
    let downtime_ms = guard.was_running().then(|| t0.elapsed().as_millis() as u64);
    let (stopped, mut files, copy_warnings) = settle(copied, restarted)?;
    let (whole, damaged) = make::make_whole_copies(&staging.path(), &mut files)?;
    if let Some(d) = damaged {
        return Err(Error::verification(format!(
            "the data of container {} is damaged, with its WAL or journal: {d}",
            f.container.name
        ))
        .hint("the database itself is damaged: check it with `sqlite3 keyfount.db 'PRAGMA integrity_check'` and keep your older backups"));
    }
    if let Some(ms) = downtime_ms {
        ctx.note(&format!(
            "Container {} is running again after {:.2} s of downtime",
            f.container.name,
            ms as f64 / 1000.0
        ));
    }
    cold_warnings(ctx, &mut warnings, &f.container.name, timeout, stopped.as_ref(), &whole, &files);
    for w in copy_warnings {
        warn(ctx, &mut warnings, w);
    }
    let db_rel = Path::new(sqlite::DB_FILE);
    files.sort_by_key(|c| (c.rel != db_rel, c.rel.clone()));
    if files.first().map(|c| c.rel.as_path()) != Some(db_rel) {
        return Err(Error::failed(format!(
            "{} disappeared while the container was stopped",
            f.location.host_db.display()
        )));
    }
    let source = cold_source(&f);
    let made = make::make(
        ctx,
        &spec(&args.output, &archive_name, Mode::Cold, source, created),
        &encryption,
        &files,
    )?;
    let mut report = report(made, &encryption, started);
    report.downtime_ms = downtime_ms;
    report.stop = stopped;
    report.wal_frames_folded =
        Some(whole.iter().filter(|w| w.path == db_rel).map(|w| w.wal_frames_folded).sum());
    report.made_whole = whole;
    report.warnings.splice(0..0, warnings);
    Ok(report)
}

/// How the stop ended, the copied files, warnings about the copy.
type CopiedAside = (Option<Stopped>, Vec<Copied>, Vec<String>);

/// What a cold backup does while the container is down: stop it, copy the data aside, and
/// check that nothing started it meanwhile.
fn stop_and_copy(
    guard: &mut StopGuard,
    timeout: i64,
    parts: &[(PathBuf, Option<PathBuf>)],
    staging: &Staging,
) -> Result<CopiedAside> {
    let stopped = guard.stop(timeout, "kfadmin backup --cold")?;
    crate::fault::point("cold.stopped")?;
    check_interrupt()?;
    // Copied as they are (a -wal an unclean stop left, a hot journal) and made whole in the
    // copy once the container runs again: the live data is never changed.
    let (files, warnings) = fsutil::copy_data_parts_as_they_are(parts, &staging.path())?;
    crate::fault::point("cold.copied")?;
    // A server started behind kfadmin's back during the copy makes it inconsistent.
    crate::fault::pause("after-copy");
    guard.ensure_stopped()?;
    check_interrupt()?;
    Ok((stopped, files, warnings))
}

/// What the operator hears about a cold backup's stop, the databases made whole, the copy.
fn cold_warnings(
    ctx: &Ctx,
    warnings: &mut Vec<String>,
    name: &str,
    timeout: i64,
    stopped: Option<&Stopped>,
    whole: &[MadeWhole],
    files: &[Copied],
) {
    if let Some(s) = stopped {
        ctx.detail(&format!(
            "stop: {} ms, exit code {}",
            s.duration_ms,
            s.exit_code.map(|c| c.to_string()).unwrap_or("?".into())
        ));
        if s.oom_killed {
            warn(ctx, warnings, format!("container {name} was killed for lack of memory while stopping"));
        } else if s.exit_code == Some(137) {
            warn(ctx, warnings, format!(
                "container {name} did not stop within its stop timeout of {timeout} s and was killed (exit code 137); its unfinished WAL was folded in"
            ));
        }
    }
    for f in files.iter().filter(|f| !f.dir) {
        ctx.detail(&format!("copied {} ({})", f.rel.display(), if f.reflinked { "reflink" } else { "copy" }));
    }
    for w in whole {
        if w.wal_frames_folded > 0 {
            warn(
                ctx,
                warnings,
                format!(
                    "{} WAL frame(s) left by an unclean stop were checkpointed into the copy of {}",
                    w.wal_frames_folded,
                    w.path.display()
                ),
            );
        }
        if w.journal_rolled_back {
            warn(
                ctx,
                warnings,
                format!(
                    "{} had a hot rollback journal (a crash mid-transaction); it was rolled back in the copy",
                    w.path.display()
                ),
            );
        }
    }
}

fn warn(ctx: &Ctx, warnings: &mut Vec<String>, w: String) {
    ctx.warn(&w);
    warnings.push(w);
}

/// The spec of an archive written into `--out`.
pub fn spec<'a>(
    output: &'a OutputArgs,
    name: &'a str,
    mode: Mode,
    source: Source,
    created: SystemTime,
) -> ArchiveSpec<'a> {
    ArchiveSpec {
        out: &output.out,
        name,
        mode,
        source,
        created,
        compression: compression(output),
        nice: output.nice,
    }
}

/// The report of a made archive.
fn report(made: Made, encryption: &Encryption, started: Instant) -> BackupReport {
    let m = made.manifest;
    BackupReport {
        ok: true,
        encrypted: encryption.is_some(),
        recipients: encryption.describe(),
        encrypted_to: super::render::encrypted_to(&encryption.describe(), SUMMARY_WIDTH),
        archive: made.written.path,
        sidecar: made.written.sidecar,
        sha256: made.written.sha256,
        bytes: made.written.bytes,
        mode: m.mode,
        created: m.created,
        source: m.source,
        duration_ms: started.elapsed().as_millis() as u64,
        downtime_ms: None,
        stop: None,
        wal_frames_folded: None,
        made_whole: Vec::new(),
        timings: made.timings,
        verified: true,
        snapshot: None,
        database: m.database,
        files: m.files,
        warnings: Vec::new(),
        offsite: Vec::new(),
    }
}

/// How wide the recipients may be in the summary's `  encrypted to …` line (100 columns).
const SUMMARY_WIDTH: usize = 85;

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
    match &r.encrypted_to {
        Some(to) => s.push_str(&format!("  encrypted to {to}\n")),
        None => s.push_str("  not encrypted\n"),
    }
    for u in &r.offsite {
        match &u.error {
            None => s.push_str(&format!(
                "  offsite  {} ({} in {:.2} s, checked)\n",
                u.url,
                human_bytes(u.bytes),
                u.upload_ms as f64 / 1000.0
            )),
            Some(e) => s.push_str(&format!("  offsite  FAILED {}: {e}\n", u.url)),
        }
    }
    if let Some(d) = r.downtime_ms {
        s.push_str(&format!(
            "  downtime {:.2} s (container {})\n",
            d as f64 / 1000.0,
            r.source.container.as_ref().map(|c| c.name.as_str()).unwrap_or("")
        ));
    }
    s
}
