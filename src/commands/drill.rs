//! `kfadmin drill [ARCHIVE] --container NAME`: prove that a backup brings the server back, on a
//! throwaway copy of the container. This module picks the archive, hands the work to
//! [`crate::ops::drill`], and renders, records and reports the outcome.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use super::{future_warning, in_future, now_unix, ArchiveKind, Ctx, Outcome};
use crate::archive::reader::Verdict;
use crate::cli::DrillArgs;
use crate::docker::Engine;
use crate::error::{Error, Kind, Result};
use crate::lock::Key;
use crate::monitor;
use crate::ops::drill::{self, Drilled, LastDrill, Sources, Spec, LOG_LINES};
use crate::ops::replicate::{Point, PointArchive};
use crate::store::{is_remote_path, Location, Store};

/// The `--json` report of a drill.
#[derive(Debug, Serialize)]
pub struct DrillReport {
    pub ok: bool,
    /// The server came up on the backup, had its database open, and left it whole.
    pub passed: bool,
    /// Why the drill did not pass.
    pub reason: Option<String>,
    /// The live container (never touched).
    pub container: String,
    /// The archive drilled (None when none verified).
    #[serde(serialize_with = "super::lossy::opt_path")]
    pub archive: Option<PathBuf>,
    /// When the archive drilled was made (its manifest), RFC 3339.
    pub archive_created: Option<String>,
    #[serde(skip)]
    pub archive_created_unix: Option<u64>,
    /// "given", or "newest that verifies".
    pub chosen: &'static str,
    /// Every archive verified, newest first: those that failed, then the one drilled.
    #[serde(serialize_with = "super::lossy::verdicts")]
    pub verification: Vec<Verdict>,
    /// The server's last log lines when the drill did not pass.
    pub logs: Vec<String>,
    /// `--at`: the point drilled (chain, transaction, commit time, checksum), rebuilt from the
    /// repository's chain and checked before the copy was booted on it.
    pub point: Option<Point>,
    #[serde(flatten)]
    pub drill: Option<Drilled>,
    pub duration_ms: u64,
    pub warnings: Vec<String>,
}

pub fn run(mut args: DrillArgs, ctx: &Ctx) -> Result<Outcome> {
    let started = Instant::now();
    // `latest`, or a bare name as `list` prints it, is an archive in the repository.
    args.archive = args.archive.map(|a| crate::ops::names::resolve(&a, &args.out)).transpose()?;
    // `--at TIME`: the point is rebuilt, checked and archived privately, then drilled as a
    // given archive is (kept until the drill is done).
    let point = if args.dry_run { None } else { point_in_time(&mut args, ctx)? };
    if args.dry_run {
        return dry_run(&args, ctx);
    }
    if let Some(url) = &args.monitor.ping_url {
        if let Some(w) = monitor::ping(url, monitor::Ping::Start, "") {
            ctx.warn(&w);
        }
    }
    let result = drill(&args, ctx).map(|mut r| {
        if let Some(p) = &point {
            r.chosen = "point in time";
            r.point = Some(p.point.clone());
        }
        r
    });
    drop(point);
    let result = result.map(|mut r| {
        r.duration_ms = started.elapsed().as_millis() as u64;
        r
    });
    report_to_monitor(&args, ctx, &result, started);
    let mut report = result?;
    if report.passed {
        if let Err(e) = record(&report) {
            let w = format!("the drill passed, but cannot be recorded for `kfadmin status`: {}", e.chain());
            ctx.warn(&w);
            report.warnings.push(w);
        }
    }
    let code = if report.passed { 0 } else { Kind::Verification.code() };
    Ok(Outcome::new(code, human(&report), &report))
}

fn drill(args: &DrillArgs, ctx: &Ctx) -> Result<DrillReport> {
    let d = &args.docker;
    let name = d.container.as_deref().ok_or_else(|| Error::usage("drill needs --container NAME"))?;
    let engine = Engine::connect()?;
    let live = engine.find(name, d.compose_project.as_deref())?;
    let _lock = ctx.lock("kfadmin drill", vec![Key::drill(&live.id, &live.name)])?;
    let mut report = DrillReport {
        ok: false,
        passed: false,
        reason: None,
        container: live.name.clone(),
        archive: None,
        archive_created: None,
        archive_created_unix: None,
        chosen: if args.archive.is_some() { "given" } else { "newest that verifies" },
        verification: vec![],
        logs: vec![],
        point: None,
        drill: None,
        duration_ms: 0,
        warnings: vec![],
    };
    // The image is checked before any archive is verified: a drill cannot run without it.
    let blueprint = engine.blueprint(&live)?;
    let candidates = candidates(args, args.name.as_deref().unwrap_or(&live.name), ctx, &mut report.warnings)?;
    let from = Sources {
        identity: &args.decrypt.identity,
        interactive: ctx.interactive,
        tmp_dir: args.tmp_dir.as_deref(),
    };
    let (verified, failed) = drill::first_verified(ctx, &candidates, &from)?;
    for v in &failed {
        let w =
            format!("{} fails verification ({}); it is not drilled", v.archive.display(), failed_checks(v));
        ctx.warn(&w);
        report.warnings.push(w);
    }
    report.verification = failed;
    let Some(v) = verified else {
        report.reason = Some(format!(
            "{} fails verification: refusing to drill a backup that is not whole",
            if candidates.len() == 1 { "the backup" } else { "every backup" }
        ));
        return Ok(report);
    };
    report.archive = Some(v.archive.clone());
    report.archive_created = Some(v.manifest.created.clone());
    report.archive_created_unix = Some(v.manifest.created_unix);
    report.verification.push(v.verdict.clone());
    let spec = Spec {
        engine: &engine,
        live: &live,
        db_path: &d.db_path,
        archive: &v.archive,
        manifest: &v.manifest,
        settle: Duration::from_secs(u64::from(args.settle)),
        health_timeout: args.health_timeout.map(|s| Duration::from_secs(u64::from(s))),
        tmp_dir: args.tmp_dir.as_deref(),
        blueprint: &blueprint,
    };
    let mut drilled = drill::drill(ctx, &spec, v.staged)?;
    for w in &drilled.warnings {
        ctx.warn(w);
    }
    report.warnings.append(&mut drilled.warnings);
    (report.passed, report.ok) = (drilled.passed, drilled.passed);
    report.reason = drilled.reason.clone();
    report.logs = std::mem::take(&mut drilled.logs);
    report.drill = Some(drilled);
    Ok(report)
}

/// `--dry-run`: the live container and its image (checked as a drill checks them first), and
/// the archives it would verify, newest first, to boot a copy on the first that verifies.
/// Nothing is verified, created, locked, recorded or pinged.
fn dry_run(args: &DrillArgs, ctx: &Ctx) -> Result<Outcome> {
    let d = &args.docker;
    // `--at`: the chain that holds the point, and the container it was replicated from.
    let chain = match &args.at {
        Some(at) => {
            let at_us = crate::ops::replicate::parse_at(at).map_err(Error::usage)?;
            let target = crate::ops::container::point_target(d, None)?;
            let choice =
                crate::ops::replicate::ChainChoice { name: args.chain.as_deref(), target: target.as_deref() };
            let dir = crate::ops::replicate::chain_for(&args.out, at_us, choice)?;
            let from = std::fs::read_dir(dir.join("base"))
                .ok()
                .and_then(|mut rd| {
                    rd.find_map(|e| {
                        e.ok().map(|e| e.path()).filter(|p| p.extension().is_some_and(|x| x == "gz"))
                    })
                })
                .and_then(|b| crate::archive::catalog::read_manifest(&b))
                .and_then(|m| m.source.container)
                .map(|c| c.name);
            Some((dir, crate::ops::replicate::format_us(at_us), from))
        }
        None => None,
    };
    let name = d
        .container
        .as_deref()
        .or(chain.as_ref().and_then(|c| c.2.as_deref()))
        .ok_or_else(|| Error::usage("drill needs --container NAME"))?;
    let engine = Engine::connect()?;
    let live = engine.find(name, d.compose_project.as_deref())?;
    engine.blueprint(&live)?;
    let mut warnings = Vec::new();
    let candidates = match &chain {
        Some((dir, at, _)) => vec![PathBuf::from(format!("the point {at} of chain {}", dir.display()))],
        None => candidates(args, args.name.as_deref().unwrap_or(&live.name), ctx, &mut warnings)?,
    };
    let mut steps = vec![if let Some((dir, at, _)) = &chain {
        format!(
            "rebuild the database as of {at} from chain {} and check it against that point's checksum and integrity_check",
            dir.display()
        )
    } else if candidates.len() == 1 {
        format!("verify {} in full", candidates[0].display())
    } else {
        format!(
            "verify the backups of {} newest first ({} of them, the newest {}) until one passes",
            live.name,
            candidates.len(),
            candidates[0].display()
        )
    }];
    steps.push(format!(
        "boot a throwaway copy of container {} ({}) on it, in a new volume, with no network; the live container is not touched",
        live.name, live.image
    ));
    steps.push(
        "check that the server came up on the backup's data, stop it, remove the copy and its volume".into(),
    );
    let report = serde_json::json!({
        "ok": true,
        "dry_run": true,
        "container": live.name,
        "image": live.image,
        "candidates": candidates.iter().map(|c| c.to_string_lossy()).collect::<Vec<_>>(),
        "steps": steps,
        "warnings": warnings,
    });
    Ok(Outcome::new(0, super::dry_run_text(&steps), &report))
}

/// The archive to drill, or the container's backups in the repository (a directory or an
/// `s3://` location), newest first (pre-restore safety copies and archives dated in the future
/// are not backups to drill).
fn candidates(args: &DrillArgs, name: &str, ctx: &Ctx, warnings: &mut Vec<String>) -> Result<Vec<PathBuf>> {
    if let Some(a) = &args.archive {
        if let Some(e) = Some(a).filter(|a| !is_remote_path(a)).and_then(|a| crate::ops::names::unusable(a)) {
            return Err(e);
        }
        return Ok(vec![a.clone()]);
    }
    let store = Store::open(&Location::from_path(&args.out)?)?;
    let now = now_unix();
    let mut list = Vec::new();
    for e in store.scan()?.into_iter().filter(|e| e.name == name) {
        if ArchiveKind::of(e.mode) != ArchiveKind::Backup {
            continue;
        }
        if in_future(e.created_unix, now) {
            let w = future_warning(&e.path, &e.created, "it is not taken as the newest backup");
            ctx.warn(&w);
            warnings.push(w);
            continue;
        }
        list.push(e.path);
    }
    if list.is_empty() {
        return Err(Error::usage(format!(
            "there is no backup of container {name} in {}",
            store.shown().display()
        ))
        .hint("pass the archive to drill, or the repository with -r/--repo (or KFADMIN_REPO)"));
    }
    Ok(list)
}

fn failed_checks(v: &Verdict) -> String {
    let failed: Vec<String> = v.failed().map(|c| format!("{}: {}", c.name, c.detail)).collect();
    if failed.is_empty() {
        "not every check could run".into()
    } else {
        failed.join("; ")
    }
}

/// The last drill that passed, for `kfadmin status --max-drill-age`.
fn record(r: &DrillReport) -> Result<()> {
    let now = SystemTime::now();
    drill::record_success(&LastDrill {
        container: r.container.clone(),
        archive: shown(r),
        finished: humantime::format_rfc3339_seconds(now).to_string(),
        finished_unix: now.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0),
        duration_ms: r.duration_ms,
        archive_name: r
            .archive
            .as_ref()
            .and_then(|a| a.file_name())
            .and_then(|n| crate::archive::catalog::parse_name(&n.to_string_lossy()))
            .map(|(name, _, _)| name),
        archive_created_unix: r.archive_created_unix,
    })
}

/// What was drilled, for people and the record: the archive, or the point of a chain (the
/// archive it was rebuilt into is private and gone once the drill ends).
fn shown(r: &DrillReport) -> String {
    match (&r.point, &r.archive) {
        (Some(p), _) => format!("the point {} of chain {} (transaction {})", p.time, p.chain, p.txn),
        (None, Some(a)) => a.display().to_string(),
        (None, None) => "-".into(),
    }
}

/// With `--at`: the point rebuilt from the repository's chain and archived privately, now
/// `args.archive`; without --container, the container the chain was replicated from.
fn point_in_time(args: &mut DrillArgs, ctx: &Ctx) -> Result<Option<PointArchive>> {
    let Some(at) = args.at.clone() else { return Ok(None) };
    let at_us = crate::ops::replicate::parse_at(&at).map_err(Error::usage)?;
    if is_remote_path(&args.out) {
        return Err(Error::usage(format!(
            "drill --at rebuilds a point from a chain in a local repository, not {}",
            args.out.display()
        ))
        .hint("pass -r with the directory replicate writes to"));
    }
    let target = crate::ops::container::point_target(&args.docker, None)?;
    let choice =
        crate::ops::replicate::ChainChoice { name: args.chain.as_deref(), target: target.as_deref() };
    let p = crate::ops::replicate::point_archive(&args.out, at_us, choice, args.tmp_dir.as_deref(), ctx)?;
    if let Some(note) = &p.point.note {
        ctx.warn(note);
    }
    if args.docker.container.is_none() {
        let m = crate::archive::catalog::read_manifest(&p.archive);
        let from = m.and_then(|m| m.source.container).map(|c| c.name);
        let Some(name) = from else {
            return Err(Error::usage(format!(
                "chain {} was replicated from a database file, not a container: the drill needs a container to copy",
                p.point.chain
            ))
            .hint("pass --container NAME: the Keyfount container whose image and settings the throwaway copy takes"));
        };
        args.docker.container = Some(name);
    }
    args.archive = Some(p.archive.clone());
    Ok(Some(p))
}

/// Metrics file and ping, whatever the outcome; a monitor that is down only warns.
fn report_to_monitor(args: &DrillArgs, ctx: &Ctx, result: &Result<DrillReport>, started: Instant) {
    let mon = &args.monitor;
    if mon.metrics_file.is_none() && mon.ping_url.is_none() {
        return;
    }
    let name = match result {
        Ok(r) => r.container.clone(),
        Err(_) => args.docker.container.clone().unwrap_or_default(),
    };
    let exit_code = match result {
        Ok(r) if r.passed => 0,
        Ok(_) => Kind::Verification.code(),
        Err(e) => e.kind.code(),
    };
    if let Some(path) = &mon.metrics_file {
        let facts = monitor::DrillFacts {
            name: name.clone(),
            exit_code,
            duration_s: started.elapsed().as_secs_f64(),
        };
        if let Some(w) = monitor::write_drill_metrics(path, &facts) {
            ctx.warn(&w);
        }
    }
    if let Some(url) = &mon.ping_url {
        let (which, body) = match result {
            Ok(r) if r.passed => (
                monitor::Ping::Success,
                format!(
                    "drill of {name} passed on {}",
                    r.archive.as_ref().map(|a| a.display().to_string()).unwrap_or_default()
                ),
            ),
            Ok(r) => (
                monitor::Ping::Fail,
                format!(
                    "drill of {name} failed: {}\n{}",
                    r.reason.as_deref().unwrap_or(""),
                    r.logs.join("\n")
                ),
            ),
            Err(e) => (monitor::Ping::Fail, format!("exit {}: {}", e.kind.code(), e.chain())),
        };
        if let Some(w) = monitor::ping(url, which, &body) {
            ctx.warn(&w);
        }
    }
}

fn human(r: &DrillReport) -> String {
    let mut s = String::new();
    let archive = shown(r);
    if r.passed {
        let _ = writeln!(s, "Drill passed: a copy of container {} came up on {archive}", r.container);
    } else {
        let _ =
            writeln!(s, "Drill FAILED for container {}: {}", r.container, r.reason.as_deref().unwrap_or("?"));
    }
    for v in r.verification.iter().filter(|v| !v.ok) {
        let _ = writeln!(s, "  FAIL     {}: {}", v.archive.display(), failed_checks(v));
    }
    if let (Some(m), Some(p)) =
        (r.verification.iter().find(|v| v.ok).and_then(|v| v.manifest.as_ref()), &r.point)
    {
        let rows: u64 = m.database.tables.values().sum();
        let _ = writeln!(
            s,
            "  point    {archive}: rebuilt, checksum {} and integrity_check verified, {rows} rows",
            &p.checksum[..p.checksum.len().min(16)]
        );
    } else if let Some(m) = r.verification.iter().find(|v| v.ok).and_then(|v| v.manifest.as_ref()) {
        let rows: u64 = m.database.tables.values().sum();
        let _ = writeln!(
            s,
            "  backup   {archive} ({} backup taken {}, {rows} rows; verified)",
            m.mode.as_str(),
            m.created
        );
    }
    if let Some(d) = &r.drill {
        render_drill(&mut s, r, d);
    }
    s
}

fn render_drill(s: &mut String, r: &DrillReport, d: &Drilled) {
    let short = d.image.strip_prefix("sha256:").unwrap_or(&d.image);
    let _ = writeln!(
        s,
        "  copy     {} (image {}, {}), no network, data in volume {} at {}",
        d.drill_container,
        d.image_ref,
        &short[..short.len().min(12)],
        d.drill_volume,
        d.data_path
    );
    if let Some(up) = &d.up {
        let _ = writeln!(s, "  up       {up}");
    }
    for o in &d.opened {
        let _ = writeln!(s, "  opened   {o}");
    }
    if let Some(f) = d.after.as_ref().and_then(|a| a.database.as_ref()) {
        let rows: u64 = f.tables.values().sum();
        let integrity =
            if d.after.as_ref().is_some_and(|a| a.integrity.is_empty()) { "ok" } else { "FAILED" };
        let version = f.schema_version.map(|v| v.to_string()).unwrap_or_else(|| "-".into());
        let _ = writeln!(s, "  after    integrity {integrity}, schema version {version}, {rows} rows");
    }
    let t = &d.timings;
    let phases: Vec<String> =
        [("copy in", t.fill_ms), ("start to verdict", t.up_ms), ("stop and check", t.check_ms)]
            .iter()
            .filter(|(_, ms)| *ms > 0)
            .map(|(what, ms)| format!("{what} {:.1} s", *ms as f64 / 1000.0))
            .collect();
    let _ = writeln!(s, "  time     {:.1} s ({})", r.duration_ms as f64 / 1000.0, phases.join(", "));
    if !r.passed {
        if !d.left_out.is_empty() {
            let _ = writeln!(s, "  not given the live container's other mounts: {}", d.left_out.join(", "));
        }
        let _ = writeln!(s, "  the server's last {} log lines:", r.logs.len().min(LOG_LINES));
        for l in &r.logs {
            let _ = writeln!(s, "    | {l}");
        }
        let _ = writeln!(
            s,
            "The server does not come up on this backup as it is: a restore of it would leave Keyfount down. Keep the older backups; see the log above."
        );
    }
    let _ = writeln!(s, "The copy and its volume were removed; container {} was not touched.", r.container);
}
