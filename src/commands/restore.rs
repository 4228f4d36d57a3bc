//! `kfadmin restore ARCHIVE (--container NAME | --data-dir DIR)`: verify in full (in a private
//! directory), plan, confirm, keep a safety copy, swap atomically, give the files their owner
//! and mode, and (for a container) start it and roll back if it does not come up.

use std::ffi::OsString;
use std::fmt::Write as _;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;

use super::{render, Ctx, Outcome};
use crate::archive::reader::{self, Options, Verdict};
use crate::archive::writer::Compression;
use crate::archive::{Manifest, Mode};
use crate::cli::RestoreArgs;
use crate::crypto::{Encryption, Keys};
use crate::docker::{self, Container, Start, StopGuard, UpWait};
use crate::error::{Error, IoContext, Kind, Result};
use crate::fsutil;
use crate::ops::container::{container_source, find_container, settle, Found};
use crate::ops::fetch::{fetch, Fetched};
use crate::ops::make::{self, ArchiveSpec};
use crate::ops::staging::{Staging, STAGING_PREFIX};
pub use crate::ops::swap::Owner;
use crate::ops::swap::{self, Journal, Owners, Plan, Swap};
use crate::safedir::Dir;
use crate::sqlite::{self, DB_FILE};
use crate::store::{is_remote_path, Remote, S3Url};

#[derive(Debug, Serialize)]
pub struct RestoreReport {
    pub ok: bool,
    pub dry_run: bool,
    pub restored: bool,
    #[serde(serialize_with = "super::lossy::path")]
    pub archive: PathBuf,
    #[serde(serialize_with = "super::lossy::path")]
    pub data_dir: PathBuf,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    pub backup_created: Option<String>,
    #[serde(serialize_with = "super::lossy::paths")]
    pub files: Vec<PathBuf>,
    /// Where the replaced files were kept (`--data-dir`; absent when nothing was replaced).
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "super::lossy::opt_path")]
    pub safety_dir: Option<PathBuf>,
    /// The pre-restore cold archive of the data that was replaced (`--container`).
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "super::lossy::opt_path")]
    pub safety_archive: Option<PathBuf>,
    /// Entries moved out of the way: SQLite sidecars (`-wal`, `-shm`, `-journal`) of the
    /// replaced files, and anything that stood where a restored file goes.
    #[serde(serialize_with = "super::lossy::paths")]
    pub moved_aside: Vec<PathBuf>,
    pub owner: Owner,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub downtime_ms: Option<u64>,
    /// `--container`: how it came up: "healthy" (its healthcheck) or "running for N s".
    #[serde(skip_serializing_if = "Option::is_none")]
    pub up: Option<String>,
    pub duration_ms: u64,
    #[serde(serialize_with = "super::lossy::verdict")]
    pub verification: Verdict,
    /// What went differently than planned without failing the restore.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// Where the restore goes, resolved and opened.
struct Target {
    found: Option<Found>,
    dir: PathBuf,
    data: Dir,
    /// The data directory did not exist: it was created, and goes again if the restore stops.
    created: bool,
}

impl Target {
    fn db(&self) -> PathBuf {
        self.dir.join(DB_FILE)
    }
}

pub fn run(mut args: RestoreArgs, ctx: &Ctx) -> Result<Outcome> {
    let started = Instant::now();
    // `latest`, or a bare name as `list` prints it, is an archive in the repository.
    args.archive = crate::ops::names::resolve(&args.archive, &args.out)?;
    check_input(&args, ctx)?;
    let (found, dir) = resolve_target(&args)?;
    let _locks = super::restore_locks(&args, ctx, found.as_ref(), &dir)?;
    let target = open_target(found, dir)?;
    let mut guard = DirGuard { dir: target.created.then(|| target.dir.clone()) };
    // A remote archive is downloaded into a private directory (never beside the data) and
    // verified there in full, against its sidecar, like a local one.
    let fetched = fetch_remote(&args, ctx)?;
    let archive = fetched.as_ref().map(|f| f.path()).unwrap_or_else(|| args.archive.clone());
    let keys = crate::crypto::keys_for(&archive, &args.decrypt.identity, ctx.interactive)?;
    // Checked before any work: a bad recipient is bad input.
    let protect = if target.found.is_some() {
        safety_encryption(&args, &archive, &keys, ctx)?
    } else {
        Encryption::None
    };
    let private = Staging::private(args.tmp_dir.as_deref(), STAGING_PREFIX)?;
    ctx.note(&format!("Verifying {}", args.archive.display()));
    let opts =
        Options { sqlite: true, extract_to: Some(private.dir()), expected_sha256: None, keys: Some(&keys) };
    let mut verdict = reader::verify(&archive, &opts, ctx.progress.as_ref())?;
    if let Some(f) = &fetched {
        f.relabel(&mut verdict);
    }
    drop(fetched);
    let Some(manifest) = verdict.manifest.clone().filter(|_| verdict.ok) else {
        drop(private);
        let mut human = render::verdict(&verdict, false);
        let _ = writeln!(
            human,
            "Refusing to restore a backup that fails verification. Nothing in {} was changed.",
            target.dir.display()
        );
        let report = failed_report(&args, &target.dir, verdict, started);
        return Ok(Outcome::new(Kind::Verification.code(), human, &report));
    };
    crate::fault::point("restore.verified")?;
    if let Some(f) = &target.found {
        let rels = manifest.files.iter().filter_map(|e| Path::new(&e.path).strip_prefix("data").ok());
        docker::refuse_nested_targets(&f.container, &f.location, rels)?;
    }
    let owners = Owners::new(Some(&target.data), &manifest)?;
    let mut plan = Plan::new(&target.data, &manifest, &owners, safety_name(&target.data)?)?;
    let text = plan_text(&args, &manifest, &target, &plan, owners.db);
    let mut report = failed_report(&args, &target.dir, verdict, started);
    report.ok = true;
    report.backup_created = Some(manifest.created.clone());
    report.files = plan.files.iter().map(|f| target.dir.join(&f.rel)).collect();
    report.owner = owners.db;
    report.container = target.found.as_ref().map(|f| f.container.name.clone());
    if args.confirm.dry_run {
        report.duration_ms = started.elapsed().as_millis() as u64;
        return Ok(Outcome::new(0, format!("{text}Dry run: nothing was changed.\n"), &report));
    }
    confirm(&args, ctx, &text, &target.dir)?;
    let mut journal = Journal::begin(&target.data, &plan)?;
    let local = swap::place(&private, &target.data, &mut plan)?;
    let from = local.as_ref().map(Staging::dir).unwrap_or(private.dir());
    if target.created {
        let (uid, gid, mode) = owners.dir(manifest.dir("data"));
        target.data.chown(uid, gid)?;
        target.data.chmod(mode)?;
    }
    crate::fault::point("restore.placed")?;
    match &target.found {
        None => swap_dir(&target, from, &plan, &mut journal, &mut report)?,
        Some(f) => {
            restore_container(&args, ctx, f, &protect, &target, (from, &plan, &mut journal), &mut report)?
        }
    }
    guard.dir = None;
    report.restored = true;
    report.duration_ms = started.elapsed().as_millis() as u64;
    Ok(Outcome::new(0, human(&args, &manifest, &target, &report), &report))
}

/// The remote archive, downloaded (None for a local one).
fn fetch_remote(args: &RestoreArgs, ctx: &Ctx) -> Result<Option<Fetched>> {
    if !is_remote_path(&args.archive) {
        return Ok(None);
    }
    let (url, name) = S3Url::split_object(&args.archive.to_string_lossy())?;
    let remote = Remote::connect(&url)?;
    ctx.note(&format!("Downloading {}", url.object(&name)));
    fetch(&remote, &name, args.tmp_dir.as_deref(), ctx.progress.as_ref()).map(Some)
}

/// A name for the safety directory no earlier restore used: `.kfadmin-pre-restore-<UTC time>`,
/// with `-2`, `-3`… when that is taken.
fn safety_name(data: &Dir) -> Result<OsString> {
    let stamp = humantime::format_rfc3339_seconds(SystemTime::now()).to_string().replace(['-', ':'], "");
    for n in 1..1000 {
        let name = match n {
            1 => OsString::from(format!(".kfadmin-pre-restore-{stamp}")),
            n => OsString::from(format!(".kfadmin-pre-restore-{stamp}-{n}")),
        };
        if data.meta(&name)?.is_none() {
            return Ok(name);
        }
    }
    Err(Error::failed(format!(
        "{} holds too many safety directories from this second",
        data.path().display()
    )))
}

/// What can be refused before anything is read.
fn check_input(args: &RestoreArgs, ctx: &Ctx) -> Result<()> {
    let confirm = &args.confirm;
    if !confirm.yes && !confirm.dry_run && !ctx.interactive {
        return Err(Error::usage(
            "restore replaces Keyfount's data and needs a confirmation, but there is no terminal to ask on",
        )
        .hint("pass --yes to confirm from a script, or --dry-run to see the plan"));
    }
    if !is_remote_path(&args.archive) && !args.archive.is_file() {
        return Err(Error::usage(format!(
            "archive {} does not exist or is not a file",
            args.archive.display()
        ))
        .hint("pass the path of a .tar.gz that kfadmin backup wrote"));
    }
    Ok(())
}

/// The container (if any) and the data directory.
fn resolve_target(args: &RestoreArgs) -> Result<(Option<Found>, PathBuf)> {
    let d = &args.docker;
    let found = match &d.container {
        Some(name) => Some(find_container(name, d.compose_project.as_deref(), &d.db_path)?),
        None => None,
    };
    if let Some(f) = &found {
        f.engine.check_stoppable(&f.container, &f.location, docker::Purpose::Restore)?;
    }
    let dir = match (&found, &args.data_dir) {
        (Some(f), _) => {
            if f.location.host_db.file_name() != Some(DB_FILE.as_ref()) {
                return Err(Error::usage(format!(
                    "the database in container {} is {}; kfadmin restores {DB_FILE}",
                    f.container.name,
                    d.db_path.display()
                )));
            }
            f.location.host_dir.clone()
        }
        (None, Some(dir)) => std::path::absolute(dir).unwrap_or(dir.clone()),
        (None, None) => return Err(Error::usage("restore needs --data-dir DIR or --container NAME")),
    };
    Ok((found, dir))
}

/// The data directory (created 0700 when missing), opened without following a link, and
/// refused while another process has the database open.
fn open_target(found: Option<Found>, dir: PathBuf) -> Result<Target> {
    if dir.symlink_metadata().is_ok_and(|m| !m.is_dir()) {
        return Err(Error::usage(format!("{} is not a directory", dir.display()))
            .hint("--data-dir takes Keyfount's data directory, the one that holds keyfount.db"));
    }
    // A running container holds its own database open; anything else that does is refused.
    if !found.as_ref().is_some_and(|f| f.container.running) {
        refuse_if_in_use(&dir.join(DB_FILE))?;
    }
    let created = !dir.exists();
    if created {
        let parent = dir.parent().unwrap_or(Path::new("/"));
        if !parent.is_dir() {
            return Err(Error::usage(format!("{} does not exist", parent.display()))
                .hint("create the parent directory of the data directory first"));
        }
        std::fs::DirBuilder::new().mode(0o700).create(&dir).ctx("cannot create the data directory", &dir)?;
    }
    let data = Dir::open(&dir)?;
    Ok(Target { found, dir, data, created })
}

fn confirm(args: &RestoreArgs, ctx: &Ctx, plan: &str, dir: &Path) -> Result<()> {
    if args.confirm.yes {
        return Ok(());
    }
    ctx.note(plan);
    let yes = dialoguer::Confirm::new()
        .with_prompt(format!("Replace Keyfount's data in {}?", dir.display()))
        .default(false)
        .interact_on(&dialoguer::console::Term::stderr())
        .map_err(|e| Error::failed("cannot read the answer").source(e))?;
    if yes {
        Ok(())
    } else {
        Err(Error::failed("restore cancelled; nothing was changed"))
    }
}

/// `--data-dir`: swap, and keep what was replaced in the safety directory.
fn swap_dir(
    target: &Target,
    from: &Dir,
    plan: &Plan,
    journal: &mut Journal,
    report: &mut RestoreReport,
) -> Result<()> {
    refuse_if_in_use(&target.db())?;
    let swapped = Swap::apply(&target.data, from, plan, journal)?;
    if let Err(e) = crate::fault::point("restore.swapped").and_then(|()| target.data.sync()) {
        return Err(swapped.undo(&target.data, e, journal));
    }
    journal.finish();
    report.moved_aside = swapped.moved_aside().iter().map(|r| target.dir.join(r)).collect();
    if swapped.kept_anything() {
        report.safety_dir = Some(target.data.display(&plan.safety));
    } else {
        swapped.discard(&target.data)?;
    }
    Ok(())
}

/// Stop, keep a pre-restore archive, swap, start, wait until up; roll back when it is not.
/// Before the swap and again before the start, the container must still be down on the run
/// kfadmin's stop ended: a server that something else started would keep the replaced files.
fn restore_container(
    args: &RestoreArgs,
    ctx: &Ctx,
    f: &Found,
    protect: &Encryption,
    target: &Target,
    (from, plan, journal): (&Dir, &Plan, &mut Journal),
    report: &mut RestoreReport,
) -> Result<()> {
    let c = &f.container;
    let timeout = args.stop_timeout.map(i64::from).or(c.stop_timeout).unwrap_or(10);
    for w in crate::ops::staging::prepare_out(&args.out)? {
        ctx.warn(&w);
    }
    let mut guard = StopGuard::new(&f.engine, c.clone());
    if c.running {
        ctx.note(&format!("Stopping container {} (stop timeout {timeout} s)", c.name));
    }
    let t0 = Instant::now();
    let archive = match pre_restore_archive(args, ctx, f, protect, &mut guard, timeout, target) {
        Ok(a) => a,
        Err(e) => return settle(Err(e), guard.restart().map(drop)),
    };
    let kept = Kept { archive: archive.clone(), dir: None };
    let swapped = match swap_in(target, from, plan, journal) {
        Ok(s) => s,
        Err(e) if e.kind == Kind::ContainerState => {
            // Half swapped, half put back: no server may start on that.
            guard.release();
            return Err(left_stopped(e, c, &kept));
        }
        Err(e) => return settle(Err(e), guard.restart().map(drop)),
    };
    report.safety_archive = archive;
    report.moved_aside = swapped.moved_aside().iter().map(|r| target.dir.join(r)).collect();
    let kept = Kept { dir: swapped.safety_dir(), ..kept };
    crate::fault::pause("after-swap");
    match guard.started_since() {
        Ok(None) => {}
        Ok(Some(now)) => {
            guard.release();
            report.safety_dir = swapped.safety_dir();
            return Err(started_during_swap(c, &now, &kept));
        }
        Err(e) => return settle(Err(e), guard.restart().map(drop)),
    }
    if !guard.was_running() {
        // A container that was not running is left as it was.
        report.safety_dir = swapped.safety_dir();
        ctx.note(&format!("Container {} was not running; it was left stopped", c.name));
        return Ok(());
    }
    up_or_roll_back(args, ctx, f, target, (&swapped, &kept), &mut guard, (timeout, t0), report)
}

/// Start the container on the restored data and wait until it is up; when it does not come
/// up, put the previous data back (unless `--no-rollback`).
#[allow(clippy::too_many_arguments)]
fn up_or_roll_back(
    args: &RestoreArgs,
    ctx: &Ctx,
    f: &Found,
    target: &Target,
    (swapped, kept): (&Swap, &Kept),
    guard: &mut StopGuard,
    (timeout, t0): (i64, Instant),
    report: &mut RestoreReport,
) -> Result<()> {
    let c = &f.container;
    ctx.note(&format!("Starting container {} on the restored data", c.name));
    let settle_for = Duration::from_secs(u64::from(args.settle));
    let wait = UpWait::new(c, settle_for, args.health_timeout.map(|s| Duration::from_secs(u64::from(s))));
    crate::fault::pause("before-start");
    let (up, others) = bring_up(ctx, guard, f, &wait, report)?;
    report.downtime_ms = Some(t0.elapsed().as_millis() as u64);
    let why = match up {
        Ok(now) => {
            came_up(report, swapped, target, &now, settle_for, others);
            return Ok(());
        }
        Err(why) => why,
    };
    report.safety_dir = swapped.safety_dir();
    if args.no_rollback {
        // Exit 4 when the container could not even be started: it is down.
        let kind = if guard.owes_start() { Kind::ContainerState } else { Kind::Failed };
        return Err(Error::new(
            kind,
            format!(
                "container {} did not come up on the restored data: {why}; the restored data was kept (--no-rollback)",
                c.name
            ),
        )
        .hint(format!("see `docker logs {}`; {}", c.name, kept.describe())));
    }
    let rollback =
        Rollback { ctx, f, swapped, data: &target.data, kept, timeout, wait: wait.at_least_derived() };
    Err(rollback.run(guard, &why))
}

/// Swap the restored files in (the swap journal covers it until it is final).
fn swap_in(target: &Target, from: &Dir, plan: &Plan, journal: &mut Journal) -> Result<Swap> {
    let swapped = Swap::apply(&target.data, from, plan, journal)?;
    if let Err(e) = crate::fault::point("restore.swapped") {
        return Err(swapped.undo(&target.data, e, journal));
    }
    journal.finish();
    Ok(swapped)
}

/// The swap failed and could not put everything back: the container stays down (exit 4).
fn left_stopped(e: Error, c: &Container, kept: &Kept) -> Error {
    Error::new(Kind::ContainerState, format!("{}; kfadmin left container {} stopped", e.chain(), c.name))
        .hint(format!("act now: {}", kept.restore_hint(&c.name)))
}

/// The container came up on the restored data: say how. The pre-restore archive is the safety
/// copy, so the in-place links of the replaced files go, unless something other than kfadmin
/// started the server (it might hold them).
fn came_up(
    report: &mut RestoreReport,
    swapped: &Swap,
    target: &Target,
    now: &Container,
    settle: Duration,
    others: bool,
) {
    report.up = Some(match now.health.as_deref() {
        Some(h) => h.to_string(),
        None => format!("running for {} s", settle.as_secs()),
    });
    if report.safety_archive.is_some() && !others && swapped.discard(&target.data).is_ok() {
        return;
    }
    report.safety_dir = swapped.safety_dir();
}

/// Stop the container (journaled), check that nothing started it again and that no process
/// has the database open, and keep the data being replaced as a cold pre-restore archive in
/// `--out` (the databases made whole first). None when there was no database to keep. Checked
/// again just before the swap.
fn pre_restore_archive(
    args: &RestoreArgs,
    ctx: &Ctx,
    f: &Found,
    protect: &Encryption,
    guard: &mut StopGuard,
    timeout: i64,
    target: &Target,
) -> Result<Option<PathBuf>> {
    let (db, dir) = (&target.db(), &target.dir);
    guard.stop(timeout, "kfadmin restore").map_err(|e| unchanged(e, dir))?;
    still_down(guard, db, dir)?;
    crate::fault::point("restore.stopped")?;
    sqlite::make_whole(dir)?;
    let copy = Staging::private(args.tmp_dir.as_deref(), STAGING_PREFIX)?;
    // What the swap replaces: the data directory's own mount (nested mounts stay as they are).
    let (mut files, _) = fsutil::copy_data_parts(&f.location.parts(false), &copy.path())?;
    let db_rel = Path::new(DB_FILE);
    files.sort_by_key(|c| (c.rel != db_rel, c.rel.clone()));
    let archive = if files.iter().any(|c| c.rel == db_rel) {
        ctx.note("Keeping the current data as a pre-restore archive");
        let spec = ArchiveSpec {
            out: &args.out,
            name: &f.container.name,
            mode: Mode::PreRestore,
            source: container_source(f),
            created: SystemTime::now(),
            // The server is down while this runs: no reason to give way.
            compression: Compression { level: 6, ..Compression::default() },
            nice: 0,
        };
        Some(make::make(ctx, &spec, protect, &files)?.written.path)
    } else {
        None
    };
    drop(copy);
    // Nothing may have started a server since the stop: the swap would go under it.
    crate::fault::pause("before-swap");
    still_down(guard, db, dir)?;
    Ok(archive)
}

/// The container is still down on the run kfadmin's stop ended (or, not running, as found),
/// and no process holds the database open. Errors say that nothing was changed.
fn still_down(guard: &StopGuard, db: &Path, dir: &Path) -> Result<()> {
    guard.ensure_stopped().map_err(|e| unchanged(e, dir))?;
    // A server that was starting while the container was checked holds the database: say who.
    refuse_if_in_use(db).map_err(|e| unchanged(guard.ensure_stopped().err().unwrap_or(e), dir))
}

/// An error before the swap: the data directory is as it was.
fn unchanged(e: Error, dir: &Path) -> Error {
    Error { message: format!("{}; nothing in {} was changed", e.message, dir.display()), ..e }
}

/// Start the container on the restored data and wait until it is up. Err(why) when it cannot
/// be started or does not come up; `true` when something else had started it already.
fn bring_up(
    ctx: &Ctx,
    guard: &mut StopGuard,
    f: &Found,
    wait: &UpWait,
    report: &mut RestoreReport,
) -> Result<(std::result::Result<Container, String>, bool)> {
    let c = &f.container;
    let others = match guard.restart() {
        Ok(Start::AlreadyRunning(now)) => {
            let w = format!(
                "container {} was already running when kfadmin went to start it: something else started it (at {}) after the swap, on the restored data; find what starts it behind kfadmin's back (a restart policy, `docker compose up`, Watchtower, a systemd unit)",
                c.name, now.started_at
            );
            ctx.warn(&w);
            report.warnings.push(w);
            true
        }
        Ok(_) => false,
        Err(e) => return Ok((Err(format!("it could not be started: {}", e.chain())), false)),
    };
    Ok((f.engine.wait_up(c, wait)?, others))
}

/// Something started the container during the swap: its server may hold the replaced database
/// open and write to it (and to a new WAL beside the restored one). Exit 4: it must be
/// restarted now, and the replaced files must stay.
fn started_during_swap(c: &Container, now: &Container, kept: &Kept) -> Error {
    Error::new(
        Kind::ContainerState,
        format!(
            "container {} was started by something other than kfadmin (at {}) while the restored files were being swapped in: its server may still have the replaced database open and write to it",
            c.name, now.started_at
        ),
    )
    .hint(format!(
        "act now: restart it (`docker restart {}`) so that it opens the restored data, and stop what starts it behind kfadmin's back (a restart policy, `docker compose up`, Watchtower, a systemd unit); {}; do not delete them yet",
        c.name,
        kept.describe()
    ))
}

/// Where the data that a container restore replaced is kept, for messages.
struct Kept {
    /// The pre-restore archive (None when there was no database to keep).
    archive: Option<PathBuf>,
    /// The replaced files, beside the data (after the swap).
    dir: Option<PathBuf>,
}

impl Kept {
    fn describe(&self) -> String {
        match (&self.archive, &self.dir) {
            (Some(a), Some(d)) => {
                format!(
                    "the previous data is kept in {} and the replaced files in {}",
                    a.display(),
                    d.display()
                )
            }
            (Some(a), None) => format!("the previous data is kept in {}", a.display()),
            (None, Some(d)) => format!("the replaced files are kept in {}", d.display()),
            (None, None) => "there was no previous database to keep".to_string(),
        }
    }

    fn restore_hint(&self, container: &str) -> String {
        match &self.archive {
            Some(a) => format!(
                "put the previous data back with `kfadmin restore {} --container {container}`{}",
                a.display(),
                self.dir
                    .as_ref()
                    .map(|d| format!(" (the replaced files are also in {})", d.display()))
                    .unwrap_or_default()
            ),
            None => format!("check the data directory of {container}; {}", self.describe()),
        }
    }
}

/// Putting the previous data back after the restored data did not come up.
struct Rollback<'a> {
    ctx: &'a Ctx,
    f: &'a Found,
    swapped: &'a Swap,
    data: &'a Dir,
    kept: &'a Kept,
    timeout: i64,
    wait: UpWait,
}

impl Rollback<'_> {
    /// Stop the container again (journaled), put the previous data back, start it and wait.
    /// Always an error: exit 1 when it runs on its previous data again, exit 4 when it does not.
    fn run(&self, guard: &mut StopGuard, why: &str) -> Error {
        let name = &self.f.container.name;
        self.ctx.warn(&format!("container {name} did not come up on the restored data: {why}; rolling back"));
        let act = |what: String| {
            Error::new(
                Kind::ContainerState,
                format!("container {name} did not come up on the restored data ({why}), {what}"),
            )
        };
        if let Err(e) = guard.stop_again(self.timeout, "kfadmin restore (rollback)") {
            return act(format!("and kfadmin cannot stop it to roll back: {}", e.chain())).hint(format!(
                "act now: stop it (`docker stop {name}`), then {}",
                self.kept.restore_hint(name)
            ));
        }
        if let Err(e) = self.swapped.rollback(self.data) {
            guard.release();
            return act(format!(
                "and putting the previous data back failed: {}; kfadmin left it stopped, on data that is neither the restored nor the previous",
                e.chain()
            ))
            .hint(format!("act now: {}", self.kept.restore_hint(name)));
        }
        crate::fault::pause("before-rollback-start");
        if let Err(e) = guard.restart() {
            return act(format!(
                "and after the previous data was put back it cannot be started: {}",
                e.chain()
            ))
            .hint(format!(
                "act now: `docker start {name}` and see `docker logs {name}`; {}",
                self.kept.describe()
            ));
        }
        match self.f.engine.wait_up(&self.f.container, &self.wait) {
            Ok(Ok(_)) => Error::failed(format!(
                "container {name} did not come up on the restored data ({why}); the previous data was put back and the container runs on it again"
            ))
            .hint(format!(
                "see `docker logs {name}` for why the restored data was refused; the restored files are in {}",
                self.swapped.safety_dir().map(|s| s.join("failed-restore").display().to_string()).unwrap_or_default()
            )),
            Ok(Err(again)) => act(format!("nor on its previous data after the rollback ({again})"))
                .hint(format!("act now: see `docker logs {name}`; {}", self.kept.describe())),
            Err(e) => act(format!("and kfadmin cannot tell whether it came up on its previous data: {}", e.chain()))
                .hint(format!("check it now: `docker ps -a --filter name={name}`; {}", self.kept.describe())),
        }
    }
}

/// How the pre-restore archive is encrypted: to `--encrypt-to`/`--recipients-file` when given;
/// for an encrypted backup, with its own passphrase, or to the public keys of the age identities
/// that decrypt it; otherwise not, and when the backup was encrypted the operator hears it.
fn safety_encryption(args: &RestoreArgs, archive: &Path, keys: &Keys, ctx: &Ctx) -> Result<Encryption> {
    let given = make::recipients(&args.encrypt_to, args.recipients_file.as_deref())?;
    if given.is_some() {
        return Ok(given);
    }
    if crate::crypto::is_encrypted(archive) {
        if let Some(p) = &keys.passphrase {
            return Ok(Encryption::Passphrase(p.clone()));
        }
        if !keys.own_recipients.is_empty() {
            return make::recipients(&keys.own_recipients, None);
        }
        ctx.warn(
            "the backup is encrypted but the pre-restore archive of the current data will not be (an SSH \
             key gives kfadmin no recipient to encrypt to): pass --encrypt-to or --recipients-file \
             (or set KFADMIN_RECIPIENTS_FILE) to encrypt it too",
        );
    }
    Ok(Encryption::None)
}

/// Removes a data directory this run created, unless the restore got that far.
struct DirGuard {
    dir: Option<PathBuf>,
}

impl Drop for DirGuard {
    fn drop(&mut self) {
        if let Some(d) = self.dir.take() {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

fn refuse_if_in_use(db: &Path) -> Result<()> {
    if let Some(h) = sqlite::in_use(db)? {
        return Err(Error::usage(format!(
            "the database {} is open in process {} (it holds {} open); restoring under a running server would corrupt it",
            db.display(),
            h.pid,
            h.file.display()
        ))
        .hint("stop the Keyfount server first (`docker stop <container>` or `systemctl stop keyfount`), then run restore again"));
    }
    Ok(())
}

fn plan_text(args: &RestoreArgs, m: &Manifest, target: &Target, plan: &Plan, owner: Owner) -> String {
    let mut s = String::new();
    let rows: u64 = m.database.tables.values().sum();
    let _ = writeln!(s, "Restore plan");
    let _ = writeln!(
        s,
        "  from     {} ({} backup of {}, taken {})",
        args.archive.display(),
        m.mode.as_str(),
        m.source.container.as_ref().map(|c| c.name.clone()).unwrap_or_else(|| m.source.path.clone()),
        m.created
    );
    let _ = writeln!(
        s,
        "  contents {} rows in {} tables, schema version {}",
        rows,
        m.database.tables.len(),
        m.database.schema_version.map(|v| v.to_string()).unwrap_or_else(|| "-".into())
    );
    let dir = &target.dir;
    match &target.found {
        Some(f) => {
            let state = if f.container.running { "running: it will be stopped" } else { "not running" };
            let _ =
                writeln!(s, "  into     container {} ({state}), data in {}", f.container.name, dir.display());
        }
        None => {
            let _ = writeln!(s, "  into     {}", dir.display());
        }
    }
    for (d, _) in &plan.new_dirs {
        let _ = writeln!(s, "    mkdir   {}/", dir.join(d).display());
    }
    for f in &plan.files {
        let verb = if f.replaces { "replace" } else { "create " };
        let _ = writeln!(s, "    {verb} {}", dir.join(&f.rel).display());
    }
    for a in &plan.aside {
        let _ = writeln!(
            s,
            "    remove  {} (moved aside: stale once the database is replaced)",
            dir.join(a).display()
        );
    }
    match &target.found {
        Some(f) => {
            let _ =
                writeln!(s, "  keep     the current data as a pre-restore archive in {}", args.out.display());
            let _ = writeln!(
                s,
                "  then     start {} and wait until it {}; roll back if it does not{}",
                f.container.name,
                if f.container.health.is_some() { "is healthy" } else { "stays running" },
                if args.no_rollback { " (--no-rollback: keep the restored data)" } else { "" }
            );
        }
        None => {
            let _ = writeln!(s, "  keep     the current files in {}", dir.join(&plan.safety).display());
        }
    }
    let _ =
        writeln!(s, "  owner    {}:{} mode {:o} (from the {})", owner.uid, owner.gid, owner.mode, owner.from);
    s
}

fn human(args: &RestoreArgs, m: &Manifest, target: &Target, report: &RestoreReport) -> String {
    let owner = report.owner;
    let into = match &report.container {
        Some(c) => format!("container {c} ({})", target.dir.display()),
        None => target.dir.display().to_string(),
    };
    let mut human = format!(
        "Restored {} (backup of {}) into {into}\n  owner {}:{} mode {:o} (from the {})\n",
        args.archive.display(),
        m.created,
        owner.uid,
        owner.gid,
        owner.mode,
        owner.from
    );
    if let Some(a) = &report.safety_archive {
        let _ = writeln!(human, "  the data it replaced is kept in {}", a.display());
    }
    if let (Some(d), Some(up)) = (report.downtime_ms, &report.up) {
        let _ = writeln!(
            human,
            "  the container is up again ({up}) {:.1} s after it was stopped",
            d as f64 / 1000.0
        );
    }
    if let Some(s) = &report.safety_dir {
        let _ = writeln!(human, "  the replaced files are kept in {}", s.display());
        let _ = writeln!(human, "  remove that directory once the server runs well on the restored data");
    }
    human
}

/// The report of a restore that did not get past verification (the others start from it).
fn failed_report(args: &RestoreArgs, dir: &Path, verdict: Verdict, started: Instant) -> RestoreReport {
    RestoreReport {
        ok: false,
        dry_run: args.confirm.dry_run,
        restored: false,
        archive: args.archive.clone(),
        data_dir: dir.to_path_buf(),
        container: args.docker.container.clone(),
        backup_created: verdict.manifest.as_ref().map(|m| m.created.clone()),
        files: vec![],
        safety_dir: None,
        safety_archive: None,
        moved_aside: vec![],
        owner: Owner { uid: 0, gid: 0, mode: 0, from: "manifest" },
        downtime_ms: None,
        up: None,
        duration_ms: started.elapsed().as_millis() as u64,
        verification: verdict,
        warnings: vec![],
    }
}
