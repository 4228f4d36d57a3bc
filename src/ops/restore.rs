//! The restore transaction, shared by `restore` and `restore --at`: for a data directory, the
//! swap and the checks after it; for a container, stop, pre-restore archive, swap, start, watch,
//! and roll back when the server does not come up, each step covered by the swap journal (see
//! [`crate::ops::swap`]) so that a kfadmin killed anywhere in it is recovered by the next run.
//! `commands/restore.rs` parses, plans, confirms and renders; this does the work, with plain
//! values and a notice sink.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use crate::archive::writer::Compression;
use crate::archive::Mode;
use crate::crypto::Encryption;
use crate::docker::{Container, Start, StopGuard, UpWait};
use crate::error::{Error, Kind, Result};
use crate::fsutil;
use crate::ops::container::{container_source, settle, Found};
use crate::ops::make::{self, ArchiveSpec};
use crate::ops::staging::{Staging, STAGING_PREFIX};
use crate::ops::swap::{Journal, Phase, Plan, Swap};
use crate::progress::Notice;
use crate::safedir::Dir;
use crate::sqlite::{self, DB_FILE};

/// How a container restore runs (from `restore`'s flags).
#[derive(Debug, Clone)]
pub struct Options {
    /// Where the pre-restore archive goes.
    pub out: PathBuf,
    /// Where the data being replaced is copied before it is archived.
    pub tmp_dir: Option<PathBuf>,
    pub stop_timeout: Option<u32>,
    /// Seconds a container without a healthcheck must stay running.
    pub settle: u32,
    pub health_timeout: Option<u32>,
    /// Keep the restored data even when the container does not come up on it.
    pub no_rollback: bool,
}

/// What a restore did, for the report.
#[derive(Debug, Default)]
pub struct Done {
    pub safety_dir: Option<PathBuf>,
    pub safety_archive: Option<PathBuf>,
    pub replaced_damaged: Option<String>,
    pub moved_aside: Vec<PathBuf>,
    pub downtime_ms: Option<u64>,
    pub up: Option<String>,
    pub warnings: Vec<String>,
}

/// Where the restore goes, resolved and opened.
pub struct Target {
    pub found: Option<Found>,
    pub dir: PathBuf,
    pub data: Dir,
    /// The data directory did not exist: it was created, and goes again if the restore stops.
    pub created: bool,
    /// Every database the restore replaces (keyfount.db and any other): no process may have
    /// one open when the files are swapped.
    pub dbs: Vec<PathBuf>,
}

impl Target {
    /// Refused (exit 2) while a process has any database being replaced open.
    pub fn refuse_if_in_use(&self) -> Result<()> {
        self.dbs.iter().try_for_each(|db| refuse_if_in_use(db))
    }
}

/// `--data-dir`: swap, and keep what was replaced in the safety directory.
pub fn into_dir(
    target: &Target,
    from: &Dir,
    plan: &Plan,
    (journal, tmp_dir): (&mut Journal, Option<&Path>),
    report: &mut Done,
) -> Result<()> {
    target.refuse_if_in_use()?;
    let swapped = Swap::apply(&target.data, from, plan, journal)?;
    if let Err(e) = crate::fault::point("restore.swapped").and_then(|()| target.data.sync()) {
        return Err(swapped.undo(&target.data, e, journal));
    }
    journal.finish();
    // A server started during the swap has the replaced database (or the restored one) open,
    // and its files beside the restored one: putting things back under it would not help.
    let intruders = swapped.intruders(&target.data)?;
    if !intruders.is_empty() {
        return Err(Error::new(
            Kind::ContainerState,
            format!(
                "a process used the database while the restored files were swapped into {}: {}",
                target.dir.display(),
                intruders.join("; ")
            ),
        )
        .hint(format!(
            "act now: stop that server, move the files that appeared beside the restored database out of the data directory, and run the restore again; the replaced files are kept in {}",
            target.data.display(&plan.safety).display()
        )));
    }
    report.moved_aside = swapped.moved_aside().iter().map(|r| target.dir.join(r)).collect();
    // The replaced database is kept as it was either way; the report says when it was damaged.
    match replaced_damage(swapped.kept(), tmp_dir) {
        Ok(d) => report.replaced_damaged = d,
        Err(e) => report.warnings.push(format!(
            "kfadmin could not check the replaced database kept in {}: {}",
            target.data.display(&plan.safety).display(),
            e.chain()
        )),
    }
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
pub fn into_container(
    opts: &Options,
    ctx: &dyn Notice,
    f: &Found,
    protect: &Encryption,
    target: &Target,
    (from, plan, journal): (&Dir, &Plan, &mut Journal),
    report: &mut Done,
) -> Result<()> {
    let c = &f.container;
    let timeout = opts.stop_timeout.map(i64::from).or(c.stop_timeout).unwrap_or(10);
    for w in crate::ops::staging::prepare_out(&opts.out)? {
        ctx.warn(&w);
    }
    // Issue 15: kfadmin killed while the container is down gets it back within seconds: the
    // guardian puts a half-done swap back (swap::recover) before it starts the container.
    let _guardian = crate::ops::guardian::spawn(&format!("a restore into container {}", c.name))?;
    let mut guard = StopGuard::new(&f.engine, c.clone());
    if c.running {
        ctx.note(&format!("Stopping container {} (stop timeout {timeout} s)", c.name));
    }
    let t0 = Instant::now();
    let archive = match pre_restore_archive(opts, ctx, f, protect, &mut guard, timeout, target) {
        Ok((a, damaged)) => {
            report.replaced_damaged = damaged;
            a
        }
        // Before the swap: whatever failed (a full disk while the copy is made whole), the data
        // directory is as it was.
        Err(e) => return settle(Err(unchanged(e, &target.dir)), guard.restart().map(drop)),
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
    up_or_roll_back(opts, ctx, f, target, (&swapped, &kept, journal), &mut guard, (timeout, t0), report)
}

/// Start the container on the restored data and wait until it is up; when it does not come
/// up, put the previous data back (unless `--no-rollback`).
#[allow(clippy::too_many_arguments)]
fn up_or_roll_back(
    opts: &Options,
    ctx: &dyn Notice,
    f: &Found,
    target: &Target,
    (swapped, kept, journal): (&Swap, &Kept, &mut Journal),
    guard: &mut StopGuard,
    (timeout, t0): (i64, Instant),
    report: &mut Done,
) -> Result<()> {
    let c = &f.container;
    ctx.note(&format!("Starting container {} on the restored data", c.name));
    let settle_for = Duration::from_secs(u64::from(opts.settle));
    let wait = UpWait::new(c, settle_for, opts.health_timeout.map(|s| Duration::from_secs(u64::from(s))));
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
    if opts.no_rollback {
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
    Err(rollback.run(guard, journal, &why))
}

/// Swap the restored files in (the swap journal covers it until it is final).
fn swap_in(target: &Target, from: &Dir, plan: &Plan, journal: &mut Journal) -> Result<Swap> {
    let swapped = Swap::apply(&target.data, from, plan, journal)?;
    if let Err(e) = crate::fault::point("restore.swapped").and_then(|()| journal.phase(Phase::Swapped)) {
        return Err(swapped.undo(&target.data, e, journal));
    }
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
    report: &mut Done,
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
/// `--out` (the databases made whole first). None when there was no database to keep; with
/// what SQLite found when the database was damaged (kept as it is). Checked again just before
/// the swap.
fn pre_restore_archive(
    opts: &Options,
    ctx: &dyn Notice,
    f: &Found,
    protect: &Encryption,
    guard: &mut StopGuard,
    timeout: i64,
    target: &Target,
) -> Result<(Option<PathBuf>, Option<String>)> {
    let dir = &target.dir;
    guard.stop(timeout, "kfadmin restore").map_err(|e| unchanged(e, dir))?;
    still_down(guard, target)?;
    crate::fault::point("restore.stopped")?;
    let copy = Staging::private(opts.tmp_dir.as_deref(), STAGING_PREFIX)?;
    // What the swap replaces: the data directory's own mount (nested mounts stay as they are),
    // copied as it is (the data is never changed in place: a damaged database cannot take its
    // WAL), then made whole in the copy, or kept as it was when SQLite finds it damaged.
    let (mut files, _) = fsutil::copy_data_parts_as_they_are(&f.location.parts(false), &copy.path())?;
    crate::fault::point("restore.copied")?;
    let (_, known) = make::make_whole_copies(&copy.path(), &mut files)?;
    let db_rel = Path::new(DB_FILE);
    files.sort_by_key(|c| (c.rel != db_rel, c.rel.clone()));
    let archive = if files.iter().any(|c| c.rel == db_rel) {
        ctx.note("Keeping the current data as a pre-restore archive");
        let spec = ArchiveSpec {
            out: &opts.out,
            name: &f.container.name,
            mode: Mode::PreRestore,
            source: container_source(f),
            created: SystemTime::now(),
            // The server is down while this runs: no reason to give way.
            compression: Compression { level: 6, ..Compression::default() },
            nice: 0,
        };
        let made = make::make_pre_restore(ctx, &spec, protect, &files, known)?;
        if let Some(d) = &made.manifest.damaged {
            ctx.warn(&format!(
                "the current database is damaged ({d}); it is kept as it is in {}, marked damaged",
                made.written.path.display()
            ));
        }
        (Some(made.written.path), made.manifest.damaged)
    } else {
        (None, None)
    };
    drop(copy);
    // Nothing may have started a server since the stop: the swap would go under it.
    crate::fault::pause("before-swap");
    still_down(guard, target)?;
    Ok(archive)
}

/// What SQLite finds wrong with the database a `--data-dir` restore replaced (None when it is
/// sound, or when there was none), checked in a private copy of it and its `-wal` or journal
/// (the kept files are never opened by SQLite: that would change them).
fn replaced_damage(kept: &Dir, tmp_dir: Option<&Path>) -> Result<Option<String>> {
    let file = |n: &str| -> Result<bool> {
        Ok(kept.meta(n.as_ref())?.is_some_and(|m| m.kind == crate::safedir::Kind::File))
    };
    if !file(DB_FILE)? {
        return Ok(None);
    }
    let scratch = Staging::private(tmp_dir, STAGING_PREFIX)?;
    for name in [DB_FILE.to_string(), format!("{DB_FILE}-wal"), format!("{DB_FILE}-journal")] {
        if file(&name)? {
            let name = std::ffi::OsStr::new(&name);
            let to = scratch.dir().create_file(name, 0o600)?;
            fsutil::clone_or_copy(kept.open_file(name)?, to, &scratch.dir().display(name))?;
        }
    }
    Ok(sqlite::make_whole_copy(&scratch.path().join(DB_FILE))?.err())
}

/// The container is still down on the run kfadmin's stop ended (or, not running, as found),
/// and no process holds the database open. Errors say that nothing was changed.
fn still_down(guard: &StopGuard, target: &Target) -> Result<()> {
    let dir = &target.dir;
    guard.ensure_stopped().map_err(|e| unchanged(e, dir))?;
    // A server that was starting while the container was checked holds the database: say who.
    target.refuse_if_in_use().map_err(|e| unchanged(guard.ensure_stopped().err().unwrap_or(e), dir))
}

/// An error before the swap: the data directory is as it was.
fn unchanged(e: Error, dir: &Path) -> Error {
    let said = format!("nothing in {} was changed", dir.display());
    if e.message.contains(&said) {
        return e;
    }
    Error { message: format!("{}; {said}", e.message), ..e }
}

/// Start the container on the restored data and wait until it is up. Err(why) when it cannot
/// be started or does not come up; `true` when something else had started it already.
fn bring_up(
    ctx: &dyn Notice,
    guard: &mut StopGuard,
    f: &Found,
    wait: &UpWait,
    report: &mut Done,
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
    ctx: &'a dyn Notice,
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
    fn run(&self, guard: &mut StopGuard, journal: &mut Journal, why: &str) -> Error {
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
        // From here a killed run's rollback is finished by the next run (or the guardian).
        let rolled = journal
            .phase(Phase::RollingBack)
            .and_then(|()| crate::fault::point("rollback.started"))
            .and_then(|()| self.swapped.rollback(self.data));
        if let Err(e) = rolled {
            journal.keep();
            guard.release();
            return act(format!(
                "and putting the previous data back failed: {}; kfadmin left it stopped, on data that is neither the restored nor the previous",
                e.chain()
            ))
            .hint(format!("act now: {}", self.kept.restore_hint(name)));
        }
        journal.finish();
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

pub fn refuse_if_in_use(db: &Path) -> Result<()> {
    // A running `replicate` of this database is told first, and lets go of its files.
    crate::ops::replicate::tell_followers(db)?;
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
