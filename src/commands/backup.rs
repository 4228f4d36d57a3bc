//! `kfadmin backup --online --db PATH`: plan, snapshot, check, archive, verify, report.

use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use super::{human_bytes, Ctx, Outcome};
use crate::archive::reader::{self, Options};
use crate::archive::writer::{self, Compression};
use crate::archive::{FileEntry, Manifest, Mode, Source};
use crate::cli::{BackupArgs, OutputArgs};
use crate::error::{Error, Kind, Result};
use crate::fsutil;
use crate::sqlite::{self, DbFacts, Journal, SnapshotStats, SourceInfo};

#[derive(Debug, Serialize)]
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
    pub archive: PathBuf,
    pub sidecar: PathBuf,
    pub sha256: String,
    pub bytes: u64,
    pub mode: Mode,
    pub created: String,
    pub source: Source,
    pub duration_ms: u64,
    pub timings: Timings,
    pub verified: bool,
    pub snapshot: SnapshotStats,
    pub database: DbFacts,
    pub files: Vec<FileEntry>,
    pub warnings: Vec<String>,
}

/// A checked plan: everything resolved before any work starts.
struct Plan {
    source: SourceInfo,
    out: PathBuf,
    name: String,
    compression: Compression,
}

fn plan(args: &BackupArgs) -> Result<Plan> {
    let source = sqlite::inspect(&args.db)?;
    let source =
        SourceInfo { path: std::path::absolute(&source.path).unwrap_or(source.path.clone()), ..source };
    let name = match &args.output.name {
        Some(n) => check_name(n)?,
        None => source
            .path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "keyfount".into()),
    };
    Ok(Plan { source, out: args.output.out.clone(), name, compression: compression(&args.output) })
}

pub fn compression(o: &OutputArgs) -> Compression {
    Compression { level: o.compression_level, ..Compression::default() }
}

fn check_name(n: &str) -> Result<String> {
    if n.is_empty()
        || n.len() > 100
        || !n.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        || n.starts_with('.')
    {
        return Err(Error::usage(format!("--name {n:?} is not a usable archive name"))
            .hint("use letters, digits, '-', '_' and '.', not starting with '.'"));
    }
    Ok(n.to_string())
}

pub fn run(args: BackupArgs, ctx: &Ctx) -> Result<Outcome> {
    let started = Instant::now();
    let plan = plan(&args)?;
    let mut warnings = Vec::new();
    if plan.source.journal == Journal::Rollback {
        let w = format!(
            "{} is in rollback-journal mode, not WAL: the server's writes wait while the copy runs",
            plan.source.path.display()
        );
        ctx.warn(&w);
        warnings.push(w);
    }
    fsutil::ensure_private_dir(&plan.out)?;
    let staging = fsutil::staging_dir(&plan.out, ".kfadmin-staging-")?;

    let created = SystemTime::now();
    let created_unix = created.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    ctx.note(&format!("Snapshotting {} ({})", plan.source.path.display(), human_bytes(plan.source.size)));
    let snap = staging.path().join(sqlite::DB_FILE);
    let stats = sqlite::snapshot(&plan.source.path, &snap, ctx.progress.as_ref())?;
    if stats.restarts > 0 {
        let w = format!("the snapshot restarted {} time(s)", stats.restarts);
        ctx.warn(&w);
        warnings.push(w);
    }

    let t = Instant::now();
    let (database, entry) = check_snapshot(&snap, &plan.source, ctx)?;
    let check_ms = t.elapsed().as_millis() as u64;

    let source = Source {
        kind: "path".into(),
        path: plan.source.path.display().to_string(),
        host: fsutil::hostname(),
        container: None,
    };
    let manifest = Manifest {
        format: crate::archive::manifest::FORMAT.into(),
        format_version: crate::archive::manifest::FORMAT_VERSION,
        kfadmin_version: env!("CARGO_PKG_VERSION").into(),
        created: humantime::format_rfc3339_seconds(created).to_string(),
        created_unix,
        mode: Mode::Online,
        source: source.clone(),
        files: vec![entry],
        database: database.clone(),
    };
    let file_name = writer::file_name(&plan.name, created_unix, Mode::Online.as_str());
    let (written, archive_ms, verify_ms) =
        write_and_verify(&plan.out, &file_name, &manifest, &[snap], plan.compression, ctx)?;
    drop(staging);

    let report = BackupReport {
        ok: true,
        archive: written.path.clone(),
        sidecar: written.sidecar.clone(),
        sha256: written.sha256.clone(),
        bytes: written.bytes,
        mode: Mode::Online,
        created: manifest.created.clone(),
        source,
        duration_ms: started.elapsed().as_millis() as u64,
        timings: Timings { snapshot_ms: stats.duration_ms, check_ms, archive_ms, verify_ms },
        verified: true,
        snapshot: stats,
        database,
        files: manifest.files.clone(),
        warnings,
    };
    let human = human(&report);
    Ok(Outcome::new(0, human, &report))
}

/// `quick_check`, facts and sha256 of a staged database; its manifest entry keeps the
/// original file's owner and mode.
pub fn check_snapshot(snap: &Path, original: &SourceInfo, ctx: &Ctx) -> Result<(DbFacts, FileEntry)> {
    let conn = sqlite::open_immutable(snap)?;
    let problems = sqlite::check(&conn, false)?;
    if !problems.is_empty() {
        return Err(Error::verification(format!(
            "the snapshot of {} fails PRAGMA quick_check: {}",
            original.path.display(),
            problems.join("; ")
        ))
        .hint("the live database itself is damaged: run `sqlite3 keyfount.db 'PRAGMA integrity_check'` and keep your older backups"));
    }
    let facts = sqlite::facts(&conn, snap)?;
    drop(conn);
    let stage = ctx.progress.stage(
        "checksum",
        std::fs::metadata(snap).map(|m| m.len()).unwrap_or(0),
        crate::progress::Unit::Bytes,
    );
    let (sha256, size) = fsutil::sha256_file(snap, Some(stage.as_ref()))?;
    stage.finish();
    let entry = FileEntry {
        path: format!("data/{}", sqlite::DB_FILE),
        size,
        sha256,
        mode: original.mode & 0o777,
        uid: original.uid,
        gid: original.gid,
    };
    Ok((facts, entry))
}

/// Write the archive and verify the `.partial` (gzip, tar, manifest, every file's sha256)
/// before it gets its final name. Returns the archive and the two phases' durations.
pub fn write_and_verify(
    out: &Path,
    file_name: &str,
    manifest: &Manifest,
    files: &[PathBuf],
    compression: Compression,
    ctx: &Ctx,
) -> Result<(writer::Written, u64, u64)> {
    let t = Instant::now();
    let mut verify_ms = 0;
    let written = writer::write(
        out,
        file_name,
        manifest,
        files,
        compression,
        ctx.progress.as_ref(),
        |partial, sha| {
            let t = Instant::now();
            let opts = Options { sqlite: false, extract_to: None, expected_sha256: Some(sha) };
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
    let tables: u64 = r.database.tables.values().sum();
    format!(
        "Backup written and verified: {}\n  sha256   {}\n  size     {} (database {}, {} rows in {} tables, schema version {})\n  time     {:.2} s (snapshot {:.2} s, archive {:.2} s, verify {:.2} s)\n",
        r.archive.display(),
        r.sha256,
        human_bytes(r.bytes),
        human_bytes(r.database.page_size * r.database.page_count),
        tables,
        r.database.tables.len(),
        r.database.schema_version.map(|v| v.to_string()).unwrap_or_else(|| "-".into()),
        r.duration_ms as f64 / 1000.0,
        r.timings.snapshot_ms as f64 / 1000.0,
        r.timings.archive_ms as f64 / 1000.0,
        r.timings.verify_ms as f64 / 1000.0,
    )
}
