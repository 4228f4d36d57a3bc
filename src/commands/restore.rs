//! `kfadmin restore ARCHIVE (--container NAME | --data-dir DIR)`: verify in full, plan,
//! confirm, keep a safety copy, swap atomically, give the files their owner and mode back,
//! and (for a container) start it and roll back if it does not come up.

use std::fmt::Write as _;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;

use super::backup::{self, find_container, Found};
use super::{verify::render, Ctx, Outcome};
use crate::archive::reader::{self, Options, Verdict};
use crate::archive::{Manifest, Mode};
use crate::cli::{OutputArgs, RestoreArgs};
use crate::crypto::{Encryption, Keys};
use crate::docker::{self, Container, Start, StopGuard, UpWait};
use crate::error::{Error, IoContext, Kind, Result};
use crate::fsutil;
use crate::sqlite::{self, DB_FILE};

#[derive(Debug, Serialize)]
pub struct RestoreReport {
    pub ok: bool,
    pub dry_run: bool,
    pub restored: bool,
    pub archive: PathBuf,
    pub data_dir: PathBuf,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    pub backup_created: Option<String>,
    pub files: Vec<PathBuf>,
    /// Where the replaced files were kept (`--data-dir`; absent when nothing was replaced).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub safety_dir: Option<PathBuf>,
    /// The pre-restore cold archive of the data that was replaced (`--container`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub safety_archive: Option<PathBuf>,
    pub moved_aside: Vec<PathBuf>,
    pub owner: Owner,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub downtime_ms: Option<u64>,
    /// `--container`: how it came up: "healthy" (its healthcheck) or "running for N s".
    #[serde(skip_serializing_if = "Option::is_none")]
    pub up: Option<String>,
    pub duration_ms: u64,
    pub verification: Verdict,
    /// What went differently than planned without failing the restore.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, Copy, Serialize)]
pub struct Owner {
    pub uid: u32,
    pub gid: u32,
    pub mode: u32,
    /// "replaced database" or "manifest".
    pub from: &'static str,
}

pub fn run(args: RestoreArgs, ctx: &Ctx) -> Result<Outcome> {
    let started = Instant::now();
    let confirm = &args.confirm;
    if !confirm.yes && !confirm.dry_run && !ctx.interactive {
        return Err(Error::usage(
            "restore replaces Keyfount's data and needs a confirmation, but there is no terminal to ask on",
        )
        .hint("pass --yes to confirm from a script, or --dry-run to see the plan"));
    }
    if !args.archive.is_file() {
        return Err(Error::usage(format!(
            "archive {} does not exist or is not a file",
            args.archive.display()
        ))
        .hint("pass the path of a .tar.gz that kfadmin backup wrote"));
    }
    let found = match &args.docker.container {
        Some(name) => Some(find_container(name, &args.docker)?),
        None => None,
    };
    let dir = match (&found, &args.data_dir) {
        (Some(f), _) => {
            if f.location.host_db.file_name() != Some(DB_FILE.as_ref()) {
                return Err(Error::usage(format!(
                    "the database in container {} is {}; kfadmin restores {DB_FILE}",
                    f.container.name,
                    args.docker.db_path.display()
                )));
            }
            f.location.host_dir.clone()
        }
        (None, Some(d)) => std::path::absolute(d).unwrap_or(d.clone()),
        (None, None) => unreachable!("clap requires --data-dir or --container"),
    };
    if dir.exists() && !dir.is_dir() {
        return Err(Error::usage(format!("{} is not a directory", dir.display()))
            .hint("--data-dir takes Keyfount's data directory, the one that holds keyfount.db"));
    }
    let db = dir.join(DB_FILE);
    // A running container holds its own database open; anything else that does is refused.
    if !found.as_ref().is_some_and(|f| f.container.running) {
        refuse_if_in_use(&db)?;
    }

    // A data directory that does not exist yet is created for the restore, and removed again
    // if the restore stops before the swap.
    let created_dir = !dir.exists();
    if created_dir {
        let parent = dir.parent().unwrap_or(Path::new("/"));
        if !parent.is_dir() {
            return Err(Error::usage(format!("{} does not exist", parent.display()))
                .hint("create the parent directory of the data directory first"));
        }
        std::fs::DirBuilder::new().mode(0o700).create(&dir).ctx("cannot create the data directory", &dir)?;
    }
    let mut dir_guard = DirGuard { dir: created_dir.then(|| dir.clone()) };

    let staging = fsutil::staging_dir(&dir, ".kfadmin-restore-")?;
    ctx.note(&format!("Verifying {}", args.archive.display()));
    let keys = crate::crypto::keys_for(&args.archive, &args.decrypt.identity, ctx.interactive)?;
    // Checked before any work: a bad recipient is bad input.
    let protect = if found.is_some() { safety_encryption(&args, &keys, ctx)? } else { Encryption::None };
    let opts =
        Options { sqlite: true, extract_to: Some(staging.path()), expected_sha256: None, keys: Some(&keys) };
    let verdict = reader::verify(&args.archive, &opts, ctx.progress.as_ref())?;
    if !verdict.ok {
        drop(staging);
        let mut human = render(&verdict, false);
        let _ = writeln!(
            human,
            "Refusing to restore a backup that fails verification. Nothing in {} was changed.",
            dir.display()
        );
        let report = failed_report(&args, &dir, verdict, started);
        return Ok(Outcome::new(Kind::Verification.code(), human, &report));
    }
    let manifest = verdict.manifest.clone().expect("a verified archive has a manifest");
    let owner = owner_for(&db, &manifest)?;
    let targets: Vec<(PathBuf, PathBuf)> = manifest
        .files
        .iter()
        .map(|f| {
            let rel = Path::new(&f.path)
                .strip_prefix("data")
                .expect("verified paths are under data/")
                .to_path_buf();
            (staging.path().join(&rel), dir.join(&rel))
        })
        .collect();
    let stamp = humantime::format_rfc3339_seconds(SystemTime::now()).to_string().replace(['-', ':'], "");
    let safety = dir.join(format!(".kfadmin-pre-restore-{stamp}"));

    let plan = plan_text(&args, &manifest, &dir, &targets, &safety, owner, found.as_ref());
    let mut report = RestoreReport {
        ok: true,
        dry_run: confirm.dry_run,
        restored: false,
        archive: args.archive.clone(),
        data_dir: dir.clone(),
        container: found.as_ref().map(|f| f.container.name.clone()),
        backup_created: Some(manifest.created.clone()),
        files: targets.iter().map(|(_, t)| t.clone()).collect(),
        safety_dir: None,
        safety_archive: None,
        moved_aside: vec![],
        owner,
        downtime_ms: None,
        up: None,
        duration_ms: 0,
        verification: verdict,
        warnings: vec![],
    };
    if confirm.dry_run {
        report.duration_ms = started.elapsed().as_millis() as u64;
        return Ok(Outcome::new(0, format!("{plan}Dry run: nothing was changed.\n"), &report));
    }
    if !confirm.yes {
        ctx.note(&plan);
        let yes = dialoguer::Confirm::new()
            .with_prompt(format!("Replace Keyfount's data in {}?", dir.display()))
            .default(false)
            .interact_on(&dialoguer::console::Term::stderr())
            .map_err(|e| Error::failed("cannot read the answer").source(e))?;
        if !yes {
            return Err(Error::failed("restore cancelled; nothing was changed"));
        }
    }

    // Owner and mode first, while the files are still private to the staging directory.
    for (staged, _) in &targets {
        set_owner(staged, owner)?;
        std::fs::File::open(staged).and_then(|f| f.sync_all()).ctx("cannot sync", staged)?;
    }
    fsutil::fsync_dir(staging.path())?;

    match &found {
        None => {
            refuse_if_in_use(&db)?;
            let swapped = Swap::apply(&targets, &db, &dir, &safety, owner)?;
            report.safety_dir = swapped.safety.clone();
            report.moved_aside = swapped.kept.iter().map(|(_, orig)| orig.clone()).collect();
        }
        Some(f) => {
            restore_container(&args, ctx, f, &protect, &targets, &db, &dir, &safety, owner, &mut report)?
        }
    }
    if created_dir {
        std::os::unix::fs::chown(&dir, Some(owner.uid), Some(owner.gid))
            .ctx("cannot set the owner of", &dir)?;
    }
    dir_guard.dir = None;
    drop(staging);
    fsutil::fsync_dir(&dir)?;
    report.restored = true;
    report.duration_ms = started.elapsed().as_millis() as u64;

    let mut human = format!(
        "Restored {} (backup of {}) into {}\n  owner {}:{} mode {:o} (from the {})\n",
        args.archive.display(),
        manifest.created,
        report
            .container
            .as_deref()
            .map(|c| format!("container {c} ({})", dir.display()))
            .unwrap_or(dir.display().to_string()),
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
    Ok(Outcome::new(0, human, &report))
}

/// Stop, keep a pre-restore archive, swap, start, wait until up; roll back when it is not.
/// Before the swap and again before the start, the container must still be down on the run
/// kfadmin's stop ended: a server that something else started would keep the replaced files.
#[allow(clippy::too_many_arguments)]
fn restore_container(
    args: &RestoreArgs,
    ctx: &Ctx,
    f: &Found,
    protect: &Encryption,
    targets: &[(PathBuf, PathBuf)],
    db: &Path,
    dir: &Path,
    safety: &Path,
    owner: Owner,
    report: &mut RestoreReport,
) -> Result<()> {
    let c = &f.container;
    let timeout = args.stop_timeout.map(i64::from).or(c.stop_timeout).unwrap_or(10);
    let mut guard = StopGuard::new(&f.engine, c.clone());
    if c.running {
        ctx.note(&format!("Stopping container {} (stop timeout {timeout} s)", c.name));
    }
    let t0 = Instant::now();
    let archive = match pre_restore_archive(args, ctx, f, protect, &mut guard, timeout, db, dir) {
        Ok(a) => a,
        Err(e) => return backup::settle(Err(e), guard.restart().map(drop)),
    };
    let kept = Kept { archive: archive.clone(), dir: None };
    let swapped = match Swap::apply(targets, db, dir, safety, owner) {
        Ok(s) => s,
        Err(e) if e.kind == Kind::ContainerState => {
            // Half swapped, half put back: no server may start on that.
            guard.release();
            return Err(left_stopped(e, c, &kept));
        }
        Err(e) => return backup::settle(Err(e), guard.restart().map(drop)),
    };
    report.safety_archive = archive;
    report.moved_aside = swapped.kept.iter().map(|(_, orig)| orig.clone()).collect();
    let kept = Kept { dir: swapped.safety.clone(), ..kept };
    docker::test_pause("after-swap");
    match guard.started_since() {
        Ok(None) => {}
        Ok(Some(now)) => {
            guard.release();
            report.safety_dir = swapped.safety.clone();
            return Err(started_during_swap(c, &now, &kept));
        }
        Err(e) => return backup::settle(Err(e), guard.restart().map(drop)),
    }
    if !guard.was_running() {
        // A container that was not running is left as it was.
        report.safety_dir = swapped.safety.clone();
        ctx.note(&format!("Container {} was not running; it was left stopped", c.name));
        return Ok(());
    }
    ctx.note(&format!("Starting container {} on the restored data", c.name));
    let settle = Duration::from_secs(u64::from(args.settle));
    let wait = UpWait::new(c, settle, args.health_timeout.map(|s| Duration::from_secs(u64::from(s))));
    docker::test_pause("before-start");
    let (up, others) = bring_up(ctx, &mut guard, f, &wait, report)?;
    report.downtime_ms = Some(t0.elapsed().as_millis() as u64);
    let why = match up {
        Ok(now) => {
            came_up(report, &swapped, &now, settle, others);
            return Ok(());
        }
        Err(why) => why,
    };
    report.safety_dir = swapped.safety.clone();
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
        Rollback { ctx, f, swapped: &swapped, db, kept: &kept, timeout, wait: wait.at_least_derived() };
    Err(rollback.run(&mut guard, &why))
}

/// The swap failed and could not put everything back: the container stays down (exit 4).
fn left_stopped(e: Error, c: &Container, kept: &Kept) -> Error {
    Error::new(Kind::ContainerState, format!("{}; kfadmin left container {} stopped", e.chain(), c.name))
        .hint(format!("act now: {}", kept.restore_hint(&c.name)))
}

/// The container came up on the restored data: say how. The pre-restore archive is the safety
/// copy, so the in-place links of the replaced files go, unless something other than kfadmin
/// started the server (it might hold them).
fn came_up(report: &mut RestoreReport, swapped: &Swap, now: &Container, settle: Duration, others: bool) {
    report.up = Some(match now.health.as_deref() {
        Some(h) => h.to_string(),
        None => format!("running for {} s", settle.as_secs()),
    });
    match (&report.safety_archive, &swapped.safety) {
        (Some(_), Some(s)) if !others => {
            let _ = std::fs::remove_dir_all(s);
        }
        _ => report.safety_dir = swapped.safety.clone(),
    }
}

/// Stop the container (journaled), check that nothing started it again and that no process
/// has the database open, and keep the data being replaced as a cold pre-restore archive.
/// None when there was no database to keep. Checked again just before the swap.
#[allow(clippy::too_many_arguments)]
fn pre_restore_archive(
    args: &RestoreArgs,
    ctx: &Ctx,
    f: &Found,
    protect: &Encryption,
    guard: &mut StopGuard,
    timeout: i64,
    db: &Path,
    dir: &Path,
) -> Result<Option<PathBuf>> {
    let c = &f.container;
    // The server is down while this runs: no reason to give way.
    let output =
        OutputArgs { out: args.out.clone(), name: Some(c.name.clone()), compression_level: 6, nice: 0 };
    fsutil::ensure_private_dir(&output.out)?;
    guard.stop(timeout, "kfadmin restore").map_err(|e| unchanged(e, dir))?;
    still_down(guard, db, dir)?;
    // The data being replaced, as a cold archive: fold an unclean stop's WAL first.
    sqlite::fold_wal(db)?;
    let copy = fsutil::staging_dir(&output.out, ".kfadmin-staging-")?;
    let (mut files, _) = fsutil::copy_data_dir(dir, copy.path())?;
    files.sort_by_key(|c| (c.rel != Path::new(DB_FILE), c.rel.clone()));
    let archive = if files.first().is_some_and(|c| c.rel == Path::new(DB_FILE)) {
        ctx.note("Keeping the current data as a pre-restore archive");
        let r = backup::finish(
            ctx,
            &output,
            protect,
            &c.name,
            Mode::PreRestore,
            backup::container_source(f),
            SystemTime::now(),
            &files,
            Instant::now(),
        )?;
        Some(r.archive)
    } else {
        None
    };
    drop(copy);
    // Nothing may have started a server since the stop: the swap would go under it.
    docker::test_pause("before-swap");
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
    db: &'a Path,
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
        if let Err(e) = self.swapped.rollback(self.db) {
            guard.release();
            return act(format!(
                "and putting the previous data back failed: {}; kfadmin left it stopped, on data that is neither the restored nor the previous",
                e.chain()
            ))
            .hint(format!("act now: {}", self.kept.restore_hint(name)));
        }
        docker::test_pause("before-rollback-start");
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
                self.swapped.safety.as_ref().map(|s| s.join("failed-restore").display().to_string()).unwrap_or_default()
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
fn safety_encryption(args: &RestoreArgs, keys: &Keys, ctx: &Ctx) -> Result<Encryption> {
    let given = backup::recipients(&args.encrypt_to, args.recipients_file.as_deref())?;
    if given.is_some() {
        return Ok(given);
    }
    if crate::crypto::is_encrypted(&args.archive) {
        if let Some(p) = &keys.passphrase {
            return Ok(Encryption::Passphrase(p.clone()));
        }
        if !keys.own_recipients.is_empty() {
            return backup::recipients(&keys.own_recipients, None);
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
            "the database {} is open in process {} (it holds a lock on {}); restoring under a running server would corrupt it",
            db.display(),
            h.pid,
            h.file.display()
        ))
        .hint("stop the Keyfount server first (`docker stop <container>` or `systemctl stop keyfount`), then run restore again"));
    }
    Ok(())
}

fn owner_for(db: &Path, m: &Manifest) -> Result<Owner> {
    match std::fs::metadata(db) {
        Ok(meta) => Ok(Owner {
            uid: meta.uid(),
            gid: meta.gid(),
            mode: meta.mode() & 0o777,
            from: "replaced database",
        }),
        Err(_) => {
            let f = m.file(&format!("data/{DB_FILE}")).expect("verified manifest lists the database");
            Ok(Owner { uid: f.uid, gid: f.gid, mode: f.mode & 0o777, from: "manifest" })
        }
    }
}

fn set_owner(path: &Path, o: Owner) -> Result<()> {
    std::os::unix::fs::chown(path, Some(o.uid), Some(o.gid)).ctx("cannot set the owner of", path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(o.mode))
        .ctx("cannot set the mode of", path)
}

/// The swap of restored files into place, and how to undo it.
struct Swap {
    /// The directory that keeps what was replaced (None when nothing was).
    safety: Option<PathBuf>,
    /// (kept copy, original place): hard links of replaced files, and the moved `-wal`/`-shm`.
    kept: Vec<(PathBuf, PathBuf)>,
    /// Targets that did not exist before.
    created: Vec<PathBuf>,
}

impl Swap {
    /// Keep the current files in `safety` (hard links for the files being replaced, renames for
    /// the stale `-wal`/`-shm`), then rename each staged file over its target. Any failure puts
    /// everything back as it was.
    fn apply(
        targets: &[(PathBuf, PathBuf)],
        db: &Path,
        dir: &Path,
        safety: &Path,
        owner: Owner,
    ) -> Result<Swap> {
        let replaced: Vec<&PathBuf> = targets.iter().map(|(_, t)| t).filter(|t| t.exists()).collect();
        let stale: Vec<PathBuf> =
            sqlite::sidecars(db).into_iter().filter(|p| p.symlink_metadata().is_ok()).collect();
        let mut swap = Swap {
            safety: (!replaced.is_empty() || !stale.is_empty()).then(|| safety.to_path_buf()),
            kept: Vec::new(),
            created: targets.iter().map(|(_, t)| t.clone()).filter(|t| !t.exists()).collect(),
        };
        let result = (|| -> Result<()> {
            if swap.safety.is_some() {
                std::fs::DirBuilder::new()
                    .mode(0o700)
                    .create(safety)
                    .ctx("cannot create the safety directory", safety)?;
                std::os::unix::fs::chown(safety, Some(owner.uid), Some(owner.gid))
                    .ctx("cannot set the owner of", safety)?;
                for t in &replaced {
                    let keep = safety.join(t.strip_prefix(dir).unwrap_or(t));
                    if let Some(p) = keep.parent() {
                        std::fs::create_dir_all(p).ctx("cannot create", p)?;
                    }
                    std::fs::hard_link(t, &keep).ctx("cannot keep a safety copy of", t)?;
                    swap.kept.push((keep, (*t).clone()));
                }
                // The old WAL must go before the new database arrives: SQLite would replay it.
                for s in &stale {
                    let keep = safety.join(s.file_name().expect("sidecar has a name"));
                    std::fs::rename(s, &keep).ctx("cannot move aside", s)?;
                    swap.kept.push((keep, s.clone()));
                }
                fsutil::fsync_dir(safety)?;
            }
            for (staged, target) in targets {
                if let Some(p) = target.parent() {
                    std::fs::create_dir_all(p).ctx("cannot create", p)?;
                }
                std::fs::rename(staged, target).ctx("cannot move the restored file into", target)?;
            }
            fsutil::fsync_dir(dir)
        })();
        match result {
            Ok(()) => Ok(swap),
            Err(e) => match swap.rollback(db) {
                Ok(()) => {
                    Err(Error::failed(format!("{}; the data directory was put back as it was", e.message))
                        .hint(
                            e.hint
                                .clone()
                                .unwrap_or_else(|| "fix the cause above and run the restore again".into()),
                        )
                        .source(e))
                }
                // Exit 4: half swapped, half put back; an operator must act.
                Err(r) => Err(Error::new(
                    Kind::ContainerState,
                    format!(
                        "{}; then putting {} back as it was failed too: {}",
                        e.chain(),
                        dir.display(),
                        r.chain()
                    ),
                )
                .hint(format!(
                    "act now: {} holds part of the restored files; the files it replaced are in {}",
                    dir.display(),
                    safety.display()
                ))),
            },
        }
    }

    /// Put the replaced files back. What the restore placed (and any `-wal`/`-shm` a server
    /// made beside it) goes into `<safety>/failed-restore/`, not away.
    fn rollback(&self, db: &Path) -> Result<()> {
        let failed = self.safety.as_ref().map(|s| s.join("failed-restore"));
        if let Some(f) = &failed {
            std::fs::DirBuilder::new().recursive(true).mode(0o700).create(f).ctx("cannot create", f)?;
        }
        let aside = |p: &Path| -> Result<()> {
            if p.symlink_metadata().is_err() {
                return Ok(());
            }
            match &failed {
                Some(f) => {
                    std::fs::rename(p, f.join(p.file_name().expect("a file"))).ctx("cannot move aside", p)
                }
                None => std::fs::remove_file(p).ctx("cannot remove", p),
            }
        };
        for s in sqlite::sidecars(db) {
            aside(&s)?;
        }
        for c in &self.created {
            aside(c)?;
        }
        for (keep, orig) in self.kept.iter().rev() {
            if let Some(f) = &failed {
                if orig.exists()
                    && !orig.to_string_lossy().ends_with("-wal")
                    && !orig.to_string_lossy().ends_with("-shm")
                {
                    // Keep the restored file for a post-mortem before the old one takes its name.
                    let _ = std::fs::hard_link(orig, f.join(orig.file_name().expect("a file")));
                }
            }
            std::fs::rename(keep, orig).ctx("cannot put back", orig)?;
        }
        if let Some(dir) = db.parent() {
            fsutil::fsync_dir(dir)?;
        }
        Ok(())
    }
}

fn plan_text(
    args: &RestoreArgs,
    m: &Manifest,
    dir: &Path,
    targets: &[(PathBuf, PathBuf)],
    safety: &Path,
    owner: Owner,
    found: Option<&Found>,
) -> String {
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
    if let Some(f) = found {
        let _ = writeln!(
            s,
            "  into     container {} ({}), data in {}",
            f.container.name,
            if f.container.running { "running: it will be stopped" } else { "not running" },
            dir.display()
        );
    } else {
        let _ = writeln!(s, "  into     {}", dir.display());
    }
    for (_, t) in targets {
        let verb = if t.exists() { "replace" } else { "create " };
        let _ = writeln!(s, "    {verb} {}", t.display());
    }
    for st in sqlite::sidecars(&dir.join(DB_FILE)) {
        if st.exists() {
            let _ = writeln!(s, "    remove  {} (stale once the database is replaced)", st.display());
        }
    }
    match found {
        Some(f) => {
            let _ =
                writeln!(s, "  keep     the current data as a pre-restore archive in {}", args.out.display());
            let _ = writeln!(
                s,
                "  then     start {} and wait until it {}; roll back if it does not{}",
                f.container.name,
                if f.container.health.is_some() { "is healthy" } else { &"stays running" },
                if args.no_rollback { " (--no-rollback: keep the restored data)" } else { "" }
            );
        }
        None => {
            let _ = writeln!(s, "  keep     the current files in {}", safety.display());
        }
    }
    let _ =
        writeln!(s, "  owner    {}:{} mode {:o} (from the {})", owner.uid, owner.gid, owner.mode, owner.from);
    s
}

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
