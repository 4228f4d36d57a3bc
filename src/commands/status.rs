//! `kfadmin status (--container NAME | --db PATH)`: how the server and its backups stand;
//! exit 1 when the last backup is missing or older than `--max-age`, for a monitor.

use std::fmt::Write as _;
use std::path::PathBuf;

use serde::Serialize;

use super::{future_warning, human_bytes, in_future, now_unix, ArchiveKind, Ctx, Outcome};
use crate::archive::catalog;
use crate::cli::StatusArgs;
use crate::docker;
use crate::error::Result;
use crate::fsutil;
use crate::ops::container::{find_container, Found};
use crate::sqlite::{self, Journal};

#[derive(Debug, Serialize)]
pub struct StatusReport {
    pub ok: bool,
    pub problems: Vec<String>,
    pub container: Option<ContainerState>,
    pub database: DatabaseState,
    pub backups: BackupState,
    /// The last restore drill that passed (`kfadmin drill`), when one is recorded or
    /// `--max-drill-age` asks.
    pub drill: Option<DrillState>,
    /// `--to`: the newest backup at each offsite location.
    pub offsite: Vec<OffsiteState>,
    /// What guardians did in the last 7 days after a kfadmin run was killed (guardian.log).
    pub guardian: Vec<String>,
    /// `--max-lag`: point-in-time replication of this database.
    pub replication: Option<ReplicationState>,
}

#[derive(Debug, Serialize)]
pub struct DrillState {
    pub last: Option<LastDrillState>,
    /// `--max-drill-age`, when given.
    pub max_age_seconds: Option<u64>,
}

#[derive(Debug, Serialize)]
pub struct LastDrillState {
    pub archive: String,
    pub finished: String,
    pub age_seconds: u64,
    pub duration_ms: u64,
    /// The name the drilled archive carries, and how old that backup is now.
    pub archive_name: Option<String>,
    pub archive_age_seconds: Option<u64>,
}

/// The newest backup of this server at one offsite location.
#[derive(Debug, Serialize)]
pub struct OffsiteState {
    pub url: String,
    /// The newest backup's `s3://` URL (not dated in the future); None when there is none.
    pub newest: Option<String>,
    pub age_seconds: Option<u64>,
    /// There is one, and it is no older than `--max-age`.
    pub ok: bool,
    /// Objects under the prefix that are not kfadmin's (skipped): how many, the first names.
    pub skipped: crate::store::Skipped,
}

#[derive(Debug, Serialize)]
pub struct ContainerState {
    pub name: String,
    pub id: String,
    pub image: String,
    pub status: String,
    pub running: bool,
    pub health: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct DatabaseState {
    #[serde(serialize_with = "super::lossy::path")]
    pub path: PathBuf,
    pub bytes: u64,
    pub wal_bytes: u64,
    pub journal_mode: Journal,
}

#[derive(Debug, Serialize)]
pub struct BackupState {
    #[serde(serialize_with = "super::lossy::path")]
    pub dir: PathBuf,
    /// Backups of this server (by name) in the directory: pre-restore safety copies excluded.
    pub count: usize,
    /// Pre-restore safety copies of this server: never a backup, never `last`.
    pub safety_copies: usize,
    /// Archives of this server dated in the future (a wrong clock): never `last`, a problem.
    #[serde(serialize_with = "super::lossy::paths")]
    pub future: Vec<PathBuf>,
    /// The newest backup that is not dated in the future.
    pub last: Option<LastBackup>,
    pub max_age_seconds: u64,
    pub free_bytes: Option<u64>,
    /// Files in the directory that are not kfadmin's (skipped): how many, the first names.
    pub skipped: crate::store::Skipped,
}

#[derive(Debug, Serialize)]
pub struct LastBackup {
    #[serde(serialize_with = "super::lossy::path")]
    pub path: PathBuf,
    pub created: String,
    pub age_seconds: u64,
    pub mode: crate::archive::Mode,
    pub bytes: u64,
}

pub fn run(args: StatusArgs, ctx: &Ctx) -> Result<Outcome> {
    if let Some(max) = args.max_lag {
        if crate::store::is_remote_path(&args.backup_dir) {
            return Err(crate::error::Error::usage(format!(
                "--max-lag reads the point-in-time chains of a local repository, not {}",
                args.backup_dir.display()
            ))
            .hint("replicate writes into a local directory for now: pass that directory with -r"));
        }
        if max < MIN_MAX_LAG {
            return Err(crate::error::Error::usage(format!(
                "--max-lag {} is below {}: the follower reports once a second, so a healthy one would look late",
                humantime::format_duration(max),
                humantime::format_duration(MIN_MAX_LAG)
            )));
        }
    }
    let t = &args.target;
    let (db, name, container, mut problems) = match (&t.db, &t.docker.container) {
        (Some(db), _) => {
            let name =
                db.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "keyfount".into());
            let db = std::fs::canonicalize(db).or_else(|_| std::path::absolute(db)).unwrap_or(db.clone());
            (db, name, None, Vec::new())
        }
        (None, Some(n)) => {
            let f = find_container(n, t.docker.compose_project.as_deref(), &t.docker.db_path)?;
            let (state, problems) = container_state(&f)?;
            crate::ops::container::inspect_db(&f, &t.docker.db_path)?;
            (f.location.host_db.clone(), f.container.name.clone(), Some(state), problems)
        }
        (None, None) => unreachable!("clap requires --db or --container"),
    };
    // Archives made with backup --name (many hosts, one bucket) are followed by that name.
    let named = args.name.clone().unwrap_or_else(|| name.clone());
    let info = sqlite::inspect(&db)?;
    let [wal, _] = sqlite::sidecars(&db);
    let database = DatabaseState {
        path: db.clone(),
        bytes: info.size,
        wal_bytes: std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0),
        journal_mode: info.journal,
    };

    let dests = crate::ops::offsite::destinations(&args.to)?;
    let backups = backup_state(&args, &named, &mut problems);
    let drill = drill_state(&args, &name, &mut problems);
    let offsite = dests.iter().map(|d| offsite_state(d, &named, &args, &mut problems)).collect();
    problems.extend(leftovers());
    let replication = args.max_lag.map(|max| {
        let db = std::fs::canonicalize(&db).unwrap_or(db.clone());
        replication_state(&args.backup_dir, &db, max, &mut problems)
    });
    let guardian = crate::ops::guardian::recent(7);
    let report = StatusReport {
        ok: problems.is_empty(),
        problems,
        container,
        database,
        backups,
        drill,
        offsite,
        guardian,
        replication,
    };
    let code = if report.ok { 0 } else { 1 };
    monitor(&args, &name, &report, ctx);
    // `--quiet` (cron, systemd's ExecStopPost): the problems only, nothing when all is well.
    let text = if ctx.quiet { problems_only(&report) } else { human(&report) };
    Ok(Outcome::new(code, text, &report))
}

/// `--metrics-file` (with `--max-lag`: the replication metrics) and `--ping-url` (URL when all
/// is well, URL/fail with the problems). A monitor that is down is a warning.
fn monitor(args: &StatusArgs, name: &str, report: &StatusReport, ctx: &Ctx) {
    if let (Some(path), Some(r)) = (&args.metrics_file, &report.replication) {
        if let Some(w) = crate::monitor::write_replication_metrics(path, &replication_facts(name, r)) {
            ctx.warn(&format!("warning: {w}"));
        }
    }
    if let Some(url) = &args.ping_url {
        let (which, body) = match report.ok {
            true => (crate::monitor::Ping::Success, "kfadmin status: OK\n".to_string()),
            false => (crate::monitor::Ping::Fail, problems_only(report)),
        };
        if let Some(w) = crate::monitor::ping(url, which, &body) {
            ctx.warn(&format!("warning: {w}"));
        }
    }
}

/// What killed kfadmin runs left that no later run could clean up: private staging copies of
/// the data, swaps that could not be put back.
fn leftovers() -> Vec<String> {
    let mut out: Vec<String> = crate::ops::staging::sweep_private()
        .into_iter()
        .map(|(p, why)| {
            format!(
                "{} holds a copy of the data that a killed kfadmin run left, and it cannot be removed: {why}",
                p.display()
            )
        })
        .collect();
    out.extend(crate::ops::drill::pending().into_iter().map(|p| {
        format!(
            "{} records the throwaway container and volume of a killed drill that could not be removed yet; `docker ps -a --filter label=kfadmin.drill` lists them",
            p.display()
        )
    }));
    out.extend(crate::ops::swap::pending().into_iter().map(|p| {
        format!(
            "{} records a restore that was killed half-way and could not be put back; see its data directory",
            p.display()
        )
    }));
    out
}

/// The backups of `name` in `--backup-dir`, and what is wrong with them: none, the last one
/// too old, archives dated in the future, too little free space.
fn backup_state(args: &StatusArgs, name: &str, problems: &mut Vec<String>) -> BackupState {
    let (archives, skipped) = archives_of(&args.backup_dir, name, problems);
    let now = now_unix();
    let (future, last) = newest(&archives, now, problems);
    let last = last.map(|e| LastBackup {
        path: e.path.clone(),
        created: e.created.clone(),
        age_seconds: now.saturating_sub(e.created_unix),
        mode: e.mode,
        bytes: e.bytes,
    });
    let max_age = args.max_age.as_secs();
    match &last {
        None => problems.push(format!("there is no backup of {name} in {}", args.backup_dir.display())),
        Some(l) if l.age_seconds > max_age => problems.push(format!(
            "the last backup is {} old, more than --max-age {}",
            humantime::format_duration(std::time::Duration::from_secs(l.age_seconds)),
            humantime::format_duration(args.max_age)
        )),
        Some(_) => {}
    }
    let free = if crate::store::is_remote_path(&args.backup_dir) {
        None
    } else {
        fsutil::free_space(&args.backup_dir)
    };
    if let (Some(free), Some(l)) = (free, &last) {
        if free < l.bytes.saturating_mul(2) {
            problems.push(format!(
                "only {} free in {}: fewer than two more backups of {} fit",
                human_bytes(free),
                args.backup_dir.display(),
                human_bytes(l.bytes)
            ));
        }
    }
    let backups = archives.iter().filter(|e| ArchiveKind::of(e.mode) == ArchiveKind::Backup).count();
    BackupState {
        dir: args.backup_dir.clone(),
        count: backups,
        safety_copies: archives.len() - backups,
        future: future.iter().map(|e| e.path.clone()).collect(),
        last,
        max_age_seconds: max_age,
        free_bytes: free,
        skipped,
    }
}

/// The last drill of `name` that passed, and (with `--max-drill-age`) a problem when there is
/// none or it is too old.
fn drill_state(args: &StatusArgs, name: &str, problems: &mut Vec<String>) -> Option<DrillState> {
    let last = crate::ops::drill::last_success(name).map(|l| LastDrillState {
        age_seconds: now_unix().saturating_sub(l.finished_unix),
        archive_age_seconds: l.archive_created_unix.map(|c| now_unix().saturating_sub(c)),
        archive_name: l.archive_name,
        archive: l.archive,
        finished: l.finished,
        duration_ms: l.duration_ms,
    });
    let max = args.max_drill_age;
    match (&last, max) {
        (_, None) => {}
        (None, Some(_)) => problems.push(format!(
            "no restore drill of {name} has passed yet (on this machine): run `kfadmin drill --container {name}`"
        )),
        (Some(l), Some(max)) if l.age_seconds > max.as_secs() => problems.push(format!(
            "the last restore drill that passed is {} old, more than --max-drill-age {}",
            humantime::format_duration(std::time::Duration::from_secs(l.age_seconds)),
            humantime::format_duration(max)
        )),
        (Some(l), Some(max)) => {
            if let Some(p) = drilled_what(l, name, max) {
                problems.push(p);
            }
        }
    }
    (last.is_some() || max.is_some()).then(|| DrillState { last, max_age_seconds: max.map(|m| m.as_secs()) })
}

/// A drill counts for `--max-drill-age` only when it was of a backup of this container (by the
/// archive's name) that was itself made within `max`: a pass on an old archive, or on one of
/// another server given by hand, proves nothing about tonight's backups.
fn drilled_what(l: &LastDrillState, name: &str, max: std::time::Duration) -> Option<String> {
    let fmt = |s: u64| humantime::format_duration(std::time::Duration::from_secs(s)).to_string();
    match (&l.archive_name, l.archive_age_seconds) {
        (Some(n), _) if n != name => Some(format!(
            "the last restore drill that passed was of a backup of {n}, not of {name}: run `kfadmin drill --container {name}`"
        )),
        (Some(_), Some(age)) if age <= max.as_secs() => None,
        (Some(_), Some(age)) => Some(format!(
            "the last restore drill that passed was of a backup made {} ago, more than --max-drill-age {}: drill a recent backup (`kfadmin drill --container {name}` takes the newest)",
            fmt(age),
            humantime::format_duration(max)
        )),
        _ => Some(format!(
            "the last restore drill that passed was recorded by an older kfadmin that did not record which backup it drilled: run `kfadmin drill --container {name}`"
        )),
    }
}

/// The archives of `name` at a location (a directory or an S3 URL); a location that cannot
/// be read is a problem, and no archive.
fn archives_of(
    location: &std::path::Path,
    name: &str,
    problems: &mut Vec<String>,
) -> (Vec<catalog::Entry>, crate::store::Skipped) {
    let scanned = crate::store::Location::from_path(location)
        .and_then(|l| crate::store::Store::open(&l))
        .and_then(|s| s.scan_all());
    match scanned {
        Ok((all, skipped)) => (all.into_iter().filter(|e| e.name == name).collect(), skipped),
        Err(e) => {
            problems.push(e.chain());
            Default::default()
        }
    }
}

/// The archives dated in the future (each a problem), and the newest backup among the rest.
fn newest<'a>(
    archives: &'a [catalog::Entry],
    now: u64,
    problems: &mut Vec<String>,
) -> (Vec<&'a catalog::Entry>, Option<&'a catalog::Entry>) {
    let (future, present): (Vec<&catalog::Entry>, Vec<&catalog::Entry>) =
        archives.iter().partition(|e| in_future(e.created_unix, now));
    for e in &future {
        problems.push(future_warning(&e.path, &e.created, "it does not count as the last backup"));
    }
    let last = present.into_iter().find(|e| ArchiveKind::of(e.mode) == ArchiveKind::Backup);
    (future, last)
}

/// The newest backup of `name` at an offsite location, checked against `--max-age`.
fn offsite_state(
    dest: &crate::store::S3Url,
    name: &str,
    args: &StatusArgs,
    problems: &mut Vec<String>,
) -> OffsiteState {
    let url = dest.to_string();
    // kfadmin writes an offsite archive's sidecar before the archive: one without its sidecar
    // is an unfinished or foreign copy, never the newest backup.
    let (listed, skipped) = archives_of(std::path::Path::new(&url), name, problems);
    let (archives, orphans): (Vec<_>, Vec<_>) = listed.into_iter().partition(|e| e.sidecar.is_some());
    for e in &orphans {
        problems.push(format!(
            "{} has no .sha256 sidecar: an unfinished or foreign copy, not counted",
            e.path.display()
        ));
    }
    let now = now_unix();
    let (_, last) = newest(&archives, now, problems);
    let age = last.map(|e| now.saturating_sub(e.created_unix));
    let ok = match age {
        None => {
            problems.push(format!("there is no offsite backup of {name} in {url}"));
            false
        }
        Some(a) if a > args.max_age.as_secs() => {
            problems.push(format!(
                "the newest offsite backup in {url} is {} old, more than --max-age {}",
                humantime::format_duration(std::time::Duration::from_secs(a)),
                humantime::format_duration(args.max_age)
            ));
            false
        }
        Some(_) => true,
    };
    OffsiteState {
        url,
        newest: last.map(|e| e.path.to_string_lossy().into_owned()),
        age_seconds: age,
        ok,
        skipped,
    }
}

/// The container's state, and what is wrong with it: not running, restarting (a crash loop),
/// paused, unhealthy. A stopped container whose database the engine mounts only while it runs
/// leaves nothing to read: that is the answer (exit 1), not a wrong --db.
fn container_state(f: &Found) -> Result<(ContainerState, Vec<String>)> {
    let c = &f.container;
    docker::check_readable(c, &f.location)?;
    let state = ContainerState {
        name: c.name.clone(),
        id: c.id.clone(),
        image: c.image.clone(),
        status: c.status.clone(),
        running: c.running,
        health: c.health.clone(),
    };
    let n = &c.name;
    let problem = if c.restarting {
        Some(format!("container {n} is restarting: it keeps exiting and its restart policy starts it again (see `docker logs {n}`)"))
    } else if c.paused {
        Some(format!("container {n} is paused: it serves nothing until `docker unpause {n}`"))
    } else if !c.running {
        Some(format!("container {n} is {}", c.status))
    } else if c.health.as_deref() == Some("unhealthy") {
        Some(format!("container {n} is unhealthy"))
    } else {
        None
    };
    Ok((state, problem.into_iter().collect()))
}

/// The `PROBLEM:` lines alone.
fn problems_only(r: &StatusReport) -> String {
    r.problems.iter().map(|p| format!("PROBLEM: {p}\n")).collect()
}

fn human(r: &StatusReport) -> String {
    let mut s = String::new();
    if let Some(c) = &r.container {
        let health = c.health.as_deref().map(|h| format!(", {h}")).unwrap_or_default();
        let _ = writeln!(s, "container  {} ({}{health}), image {}", c.name, c.status, c.image);
    }
    for line in &r.guardian {
        let _ = writeln!(s, "guardian   {line}");
    }
    let d = &r.database;
    let _ = writeln!(
        s,
        "database   {} ({}, WAL {}, journal mode {})",
        d.path.display(),
        human_bytes(d.bytes),
        human_bytes(d.wal_bytes),
        match d.journal_mode {
            Journal::Wal => "wal",
            Journal::Rollback => "rollback",
        }
    );
    let b = &r.backups;
    match &b.last {
        Some(l) => {
            let _ = writeln!(
                s,
                "last       {} ({}, {} ago, {})",
                l.path.display(),
                l.mode.as_str(),
                humantime::format_duration(std::time::Duration::from_secs(l.age_seconds)),
                human_bytes(l.bytes)
            );
        }
        None => {
            let _ = writeln!(s, "last       no backup in {}", b.dir.display());
        }
    }
    let safety = match b.safety_copies {
        0 => String::new(),
        n => format!(" (and {n} pre-restore safety cop{})", if n == 1 { "y" } else { "ies" }),
    };
    let _ = writeln!(
        s,
        "backups    {} in {}{safety}, {} free",
        b.count,
        b.dir.display(),
        b.free_bytes.map(human_bytes).unwrap_or_else(|| "?".into())
    );
    if let Some(l) = b.skipped.line(crate::store::is_remote_path(&b.dir)) {
        let _ = writeln!(s, "           {l}");
    }
    drill_and_offsite(r, &mut s);
    if let Some(rep) = &r.replication {
        replication_lines(rep, &mut s);
    }
    if r.ok {
        let _ = writeln!(s, "=> OK");
    } else {
        for p in &r.problems {
            let _ = writeln!(s, "PROBLEM: {p}");
        }
    }
    s
}

/// The drill and offsite lines of the status.
fn drill_and_offsite(r: &StatusReport, s: &mut String) {
    if let Some(d) = &r.drill {
        match &d.last {
            Some(l) => {
                let _ = writeln!(
                    s,
                    "drill      passed {} ago, on {}",
                    humantime::format_duration(std::time::Duration::from_secs(l.age_seconds)),
                    l.archive
                );
            }
            None => {
                let _ = writeln!(s, "drill      none has passed");
            }
        }
    }
    for o in &r.offsite {
        match (&o.newest, o.age_seconds) {
            (Some(n), Some(a)) => {
                let _ = writeln!(
                    s,
                    "offsite    {n} ({} ago)",
                    humantime::format_duration(std::time::Duration::from_secs(a))
                );
            }
            _ => {
                let _ = writeln!(s, "offsite    no backup in {}", o.url);
            }
        }
        if let Some(l) = o.skipped.line(true) {
            let _ = writeln!(s, "           {l}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// `--max-lag`: point-in-time replication of this database

/// A follower state dated this far ahead of this machine's clock is not believed.
const CLOCK_SLACK_US: u64 = 2_000_000;
/// The follower reports every second: a smaller `--max-lag` would fire on a healthy one.
pub const MIN_MAX_LAG: std::time::Duration = std::time::Duration::from_secs(3);

/// Replication of this database, as its chains and its follower's state say.
#[derive(Debug, Serialize)]
pub struct ReplicationState {
    pub max_lag_seconds: f64,
    /// The chains of this database (its path, on this host) in the repository, oldest first;
    /// the last is the one a follower follows.
    pub chains: Vec<ChainState>,
    /// Chains in the repository of another database or another host: never counted here.
    pub other_chains: usize,
}

#[derive(Debug, Serialize)]
pub struct ChainState {
    pub chain: String,
    #[serde(serialize_with = "super::lossy::path")]
    pub dir: PathBuf,
    /// The newest chain of this database: the one the follower ships into.
    pub followed: bool,
    /// Every link checked (hashes, counters, checksums): false when the chain is broken.
    pub ok: bool,
    pub problem: Option<String>,
    pub commits: u64,
    /// The first and last restorable times.
    pub first: Option<String>,
    pub last: Option<String>,
    /// When the last commit shipped was seen committed (`null`: none yet).
    pub last_commit: Option<String>,
    pub gaps: Vec<crate::ops::replicate::GapReport>,
    /// The followed chain only: seconds since the follower last saw the database with every
    /// commit shipped (as of now, not as of its last report), bytes of committed WAL it had not
    /// shipped at its last read; `null` when unknown (no follower state, a clock ahead).
    pub lag_seconds: Option<f64>,
    pub lag_bytes: Option<u64>,
    pub current_until: Option<String>,
    pub follower: Option<FollowerSeen>,
}

/// The follower's own report (`follower.json`), checked against the chain.
#[derive(Debug, Serialize)]
pub struct FollowerSeen {
    pub pid: u32,
    pub started: String,
    pub heartbeat: String,
    pub heartbeat_age_seconds: f64,
    /// It stopped cleanly (SIGTERM/SIGINT).
    pub stopped: bool,
    /// Running and reporting: not stopped, heartbeat no older than --max-lag (at least 5 s).
    pub reporting: bool,
    pub transactions: u64,
    pub commits_shipped: u64,
    pub bytes_shipped: u64,
    pub segments_written: u64,
    pub wal_bytes: u64,
}

fn secs(us: u64) -> f64 {
    (us as f64 / 1e3).round() / 1e3
}

fn ago(us: u64) -> String {
    format!("{:.1} s", us as f64 / 1e6)
}

/// The replication state of `db` in `repo` (local), and its problems: no chain, a lag over
/// `max`, a follower that stopped reporting, a broken chain, a state dated in the future.
pub(crate) fn replication_state(
    repo: &std::path::Path,
    db: &std::path::Path,
    max: std::time::Duration,
    problems: &mut Vec<String>,
) -> ReplicationState {
    use crate::ops::replicate as rep;
    let source = db.display().to_string();
    let host = fsutil::hostname();
    let max_us = max.as_micros() as u64;
    let mut state =
        ReplicationState { max_lag_seconds: max.as_secs_f64(), chains: Vec::new(), other_chains: 0 };
    let dirs = match rep::chain_dirs(repo) {
        Ok(d) => d,
        Err(e) => {
            problems.push(format!("cannot read the chains in {}: {}", repo.display(), e.chain()));
            return state;
        }
    };
    let mut ours = Vec::new();
    for d in dirs {
        match rep::chain_source(&d) {
            Ok((s, h, _)) if s == source && h == host => ours.push(d),
            Ok(_) => state.other_chains += 1,
            Err(e) => problems.push(format!("{}: {}", d.display(), e.chain())),
        }
    }
    let Some(followed) = ours.last().cloned() else {
        problems.push(format!(
            "no point-in-time chain of {source} (on {host}) in {}{}: replicate is not running for this database",
            repo.join(rep::PITR_DIR).display(),
            if state.other_chains > 0 {
                format!(" ({} chain(s) of other databases or hosts there do not count)", state.other_chains)
            } else {
                String::new()
            }
        ));
        return state;
    };
    for dir in &ours {
        let is_followed = *dir == followed;
        // The follower's report first, then the chain: the chain can only be ahead of it.
        let follower = match is_followed.then(|| rep::read_follower(dir)) {
            Some(Ok(f)) => f,
            Some(Err(why)) => {
                problems.push(why);
                None
            }
            None => None,
        };
        let now = rep::now_us();
        let verdict = match rep::verify_chain(dir, None) {
            Ok(v) => v,
            Err(e) => {
                problems.push(format!("chain {} cannot be read: {}", dir.display(), e.chain()));
                continue;
            }
        };
        if !verdict.ok {
            problems.push(format!(
                "chain {} is broken: {}",
                verdict.chain,
                verdict.problem.clone().unwrap_or_default()
            ));
        }
        let mut c = ChainState {
            chain: verdict.chain.clone(),
            dir: dir.clone(),
            followed: is_followed,
            ok: verdict.ok,
            problem: verdict.problem.clone(),
            commits: verdict.commits,
            first: verdict.first.clone(),
            last: verdict.last.clone(),
            last_commit: (verdict.commits > 0).then(|| verdict.last.clone()).flatten(),
            gaps: verdict.gaps.clone(),
            lag_seconds: None,
            lag_bytes: None,
            current_until: None,
            follower: None,
        };
        if is_followed {
            judge_follower(&mut c, follower, &verdict, now, max_us, &source, &host, problems);
        }
        state.chains.push(c);
    }
    state
}

/// The followed chain's lag and follower, judged against the chain and this machine's clock.
#[allow(clippy::too_many_arguments)]
fn judge_follower(
    c: &mut ChainState,
    follower: Option<crate::ops::replicate::FollowerState>,
    verdict: &crate::ops::replicate::ChainVerdict,
    now: u64,
    max_us: u64,
    source: &str,
    host: &str,
    problems: &mut Vec<String>,
) {
    use crate::ops::replicate as rep;
    let name = &c.chain;
    let start =
        format!("start it again (systemctl restart kfadmin-replicate@…, or kfadmin replicate --db {source})");
    // Only this chain's own follower, of this database on this host, counts.
    let f = follower.filter(|f| f.chain == *name && f.source == source && f.host == host);
    let Some(f) = f else {
        problems.push(format!(
            "chain {name} has no report from a follower (no {} of this chain, database and host): replicate is not running on it; {start}",
            rep::FOLLOWER_FILE
        ));
        return;
    };
    if f.heartbeat_us > now + CLOCK_SLACK_US || f.current_us > f.heartbeat_us + CLOCK_SLACK_US {
        problems.push(format!(
            "the follower of chain {name} reported at {} (current until {}), ahead of this machine's clock ({}): its lag cannot be known; check the clock",
            rep::format_us(f.heartbeat_us),
            rep::format_us(f.current_us),
            rep::format_us(now)
        ));
    } else if f.txn > verdict.commits {
        // It says it shipped commits the chain does not hold (segments lost or removed).
        problems.push(format!(
            "the follower of chain {name} reports transaction {} shipped, but the chain holds {}: its lag cannot be known",
            f.txn, verdict.commits
        ));
    } else {
        let lag = now.saturating_sub(f.current_us);
        c.lag_seconds = Some(secs(lag));
        c.lag_bytes = Some(f.lag_bytes);
        c.current_until = Some(rep::format_us(f.current_us));
        if lag > max_us {
            problems.push(format!(
                "replication of chain {name} lags {}, more than --max-lag {} (the chain holds every commit until {}{})",
                ago(lag),
                ago(max_us),
                rep::format_us(f.current_us),
                if f.lag_bytes > 0 { format!("; {} of committed WAL not shipped", human_bytes(f.lag_bytes)) } else { String::new() }
            ));
        }
    }
    let age = now.saturating_sub(f.heartbeat_us);
    let reporting = !f.stopped && age <= max_us.max(5_000_000);
    if f.stopped {
        problems.push(format!(
            "replicate stopped following chain {name} at {} (SIGTERM or Ctrl-C): commits since are not shipped; {start}",
            rep::format_us(f.heartbeat_us)
        ));
    } else if !reporting {
        problems.push(format!(
            "the follower of chain {name} (pid {} on {}) last reported {} ago, at {}: it is not running (killed?) or stuck; {start}",
            f.pid,
            f.host,
            ago(age),
            rep::format_us(f.heartbeat_us)
        ));
    }
    c.follower = Some(FollowerSeen {
        pid: f.pid,
        started: rep::format_us(f.started_us),
        heartbeat: rep::format_us(f.heartbeat_us),
        heartbeat_age_seconds: secs(age),
        stopped: f.stopped,
        reporting,
        transactions: f.txn,
        commits_shipped: f.commits_shipped,
        bytes_shipped: f.bytes_shipped,
        segments_written: f.segments_written,
        wal_bytes: f.wal_bytes,
    });
}

/// The name a chain's follower gives its metrics: the chain's id without its time stamp
/// (`keyfount-20261204T221500Z-2` → `keyfount`), so that status and replicate write one series.
fn chain_label(id: &str) -> Option<&str> {
    let is_stamp = |s: &str| s.len() == 16 && s.as_bytes()[8] == b'T' && s.ends_with('Z');
    let (rest, last) = id.rsplit_once('-')?;
    if is_stamp(last) {
        return Some(rest);
    }
    let (name, stamp) = rest.rsplit_once('-')?;
    (last.bytes().all(|b| b.is_ascii_digit()) && is_stamp(stamp)).then_some(name)
}

/// The metrics of the followed chain (nothing known: NaN, so no older value lingers).
fn replication_facts(name: &str, r: &ReplicationState) -> crate::monitor::ReplicationFacts {
    let Some(c) = r.chains.iter().find(|c| c.followed) else {
        return crate::monitor::ReplicationFacts { name: name.into(), ..Default::default() };
    };
    let name = chain_label(&c.chain).unwrap_or(name);
    let unix = |t: &Option<String>| {
        t.as_deref()
            .and_then(|t| humantime::parse_rfc3339(t).ok())
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| d.as_secs_f64())
    };
    let f = c.follower.as_ref();
    crate::monitor::ReplicationFacts {
        name: name.into(),
        up: f.is_some_and(|f| f.reporting),
        broken: !c.ok,
        lag_seconds: c.lag_seconds,
        lag_bytes: c.lag_bytes,
        current_unix: unix(&c.current_until),
        heartbeat_unix: f.and_then(|f| unix(&Some(f.heartbeat.clone()))),
        last_commit_unix: unix(&c.last_commit),
        transactions: Some(c.commits),
        commits_shipped: f.map(|f| f.commits_shipped),
        bytes_shipped: f.map(|f| f.bytes_shipped),
        gaps: Some(c.gaps.len() as u64),
    }
}

fn replication_lines(r: &ReplicationState, s: &mut String) {
    if r.chains.is_empty() {
        let _ = writeln!(s, "replicate  no chain of this database");
    }
    for c in &r.chains {
        let restorable = match (&c.first, &c.last) {
            (Some(a), Some(b)) => format!("restorable {a} to {b}"),
            _ => "nothing restorable".into(),
        };
        let gaps = match c.gaps.len() {
            0 => String::new(),
            n => format!(", {n} gap(s)"),
        };
        let verdict = if c.ok { "" } else { ", BROKEN" };
        if !c.followed {
            let _ = writeln!(
                s,
                "chain      {} (older): {} commit(s), {restorable}{gaps}{verdict}",
                c.chain, c.commits
            );
            continue;
        }
        let lag = match (c.lag_seconds, c.lag_bytes) {
            (Some(l), Some(b)) => format!("lag {l:.1} s, {} unshipped", human_bytes(b)),
            (Some(l), None) => format!("lag {l:.1} s"),
            _ => "lag unknown".into(),
        };
        let _ = writeln!(
            s,
            "replicate  chain {}: {lag}; last commit {}; {} commit(s), {restorable}{gaps}{verdict}",
            c.chain,
            c.last_commit.as_deref().unwrap_or("none yet"),
            c.commits
        );
        match &c.follower {
            Some(f) => {
                let _ = writeln!(
                    s,
                    "           follower pid {} since {}, {} ({:.1} s ago){}",
                    f.pid,
                    f.started,
                    if f.stopped { "stopped" } else { "last reported" },
                    f.heartbeat_age_seconds,
                    if f.reporting { "" } else { ", NOT REPORTING" }
                );
            }
            None => {
                let _ = writeln!(s, "           no follower report");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_chains_metrics_label_is_its_name_without_the_stamp() {
        assert_eq!(super::chain_label("keyfount-20261204T221500Z"), Some("keyfount"));
        assert_eq!(super::chain_label("kf-prod-20261204T221500Z-2"), Some("kf-prod"));
        assert_eq!(super::chain_label("keyfount"), None);
        assert_eq!(super::chain_label("a-b-c"), None);
    }
}
