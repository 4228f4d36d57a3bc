//! `kfadmin restore ARCHIVE (--container NAME | --data-dir DIR)`: verify in full (in a private
//! directory), plan, confirm, keep a safety copy, swap atomically, give the files their owner
//! and mode, and (for a container) start it and roll back if it does not come up.

use std::ffi::OsString;
use std::fmt::Write as _;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;

use super::{verify::render, Ctx, Outcome};
use crate::archive::reader::{self, Options, Verdict};
use crate::archive::writer::Compression;
use crate::archive::{Manifest, Mode};
use crate::cli::RestoreArgs;
use crate::crypto::{Encryption, Keys};
use crate::docker::{self, StopGuard};
use crate::error::{Error, IoContext, Kind, Result};
use crate::fsutil;
use crate::ops::container::{container_source, find_container, settle, Found};
use crate::ops::make::{self, ArchiveSpec};
use crate::ops::staging::{Staging, STAGING_PREFIX};
pub use crate::ops::swap::Owner;
use crate::ops::swap::{self, Journal, Owners, Plan, Swap};
use crate::safedir::Dir;
use crate::sqlite::{self, DB_FILE};

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

pub fn run(args: RestoreArgs, ctx: &Ctx) -> Result<Outcome> {
    let started = Instant::now();
    check_input(&args, ctx)?;
    let (found, dir) = resolve_target(&args)?;
    let _locks = super::restore_locks(&args, ctx, found.as_ref(), &dir)?;
    let target = open_target(found, dir)?;
    let mut guard = DirGuard { dir: target.created.then(|| target.dir.clone()) };
    let keys = crate::crypto::keys_for(&args.archive, &args.decrypt.identity, ctx.interactive)?;
    // Checked before any work: a bad recipient is bad input.
    let protect =
        if target.found.is_some() { safety_encryption(&args, &keys, ctx)? } else { Encryption::None };
    let private = Staging::private(args.tmp_dir.as_deref(), STAGING_PREFIX)?;
    ctx.note(&format!("Verifying {}", args.archive.display()));
    let opts =
        Options { sqlite: true, extract_to: Some(private.dir()), expected_sha256: None, keys: Some(&keys) };
    let verdict = reader::verify(&args.archive, &opts, ctx.progress.as_ref())?;
    let Some(manifest) = verdict.manifest.clone().filter(|_| verdict.ok) else {
        drop(private);
        let mut human = render(&verdict, false);
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
    let stamp = humantime::format_rfc3339_seconds(SystemTime::now()).to_string().replace(['-', ':'], "");
    let safety = OsString::from(format!(".kfadmin-pre-restore-{stamp}"));
    let mut plan = Plan::new(&target.data, &manifest, &owners, safety)?;
    let text = plan_text(&args, &manifest, &target, &plan, owners.db);
    let mut report = RestoreReport {
        ok: true,
        dry_run: args.confirm.dry_run,
        restored: false,
        archive: args.archive.clone(),
        data_dir: target.dir.clone(),
        container: target.found.as_ref().map(|f| f.container.name.clone()),
        backup_created: Some(manifest.created.clone()),
        files: plan.files.iter().map(|f| target.dir.join(&f.rel)).collect(),
        safety_dir: None,
        safety_archive: None,
        moved_aside: vec![],
        owner: owners.db,
        downtime_ms: None,
        up: None,
        duration_ms: 0,
        verification: verdict,
    };
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

/// What can be refused before anything is read.
fn check_input(args: &RestoreArgs, ctx: &Ctx) -> Result<()> {
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
        swapped.discard(&target.data, &plan.safety)?;
    }
    Ok(())
}

/// Stop, keep a pre-restore archive, swap, start, wait until up; roll back when it is not.
#[allow(clippy::too_many_arguments)]
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
    fsutil::ensure_private_dir(&args.out)?;
    fsutil::ensure_writable(&args.out)?;
    let mut guard = StopGuard::new(&f.engine, c.clone());
    if c.running {
        ctx.note(&format!("Stopping container {} (stop timeout {timeout} s)", c.name));
    }
    let t0 = Instant::now();
    let work = (|| -> Result<(Option<PathBuf>, Swap)> {
        guard.stop(timeout, "kfadmin restore")?;
        refuse_if_in_use(&target.db())?;
        crate::fault::point("restore.stopped")?;
        let archive = pre_restore_archive(args, ctx, f, protect, &target.dir)?;
        let swapped = Swap::apply(&target.data, from, plan, journal)?;
        if let Err(e) = crate::fault::point("restore.swapped") {
            return Err(swapped.undo(&target.data, e, journal));
        }
        Ok((archive, swapped))
    })();
    let (archive, swapped) = match work {
        Ok(x) => x,
        Err(e) => return settle(Err(e), guard.restart()),
    };
    journal.finish();
    report.safety_archive = archive;
    report.moved_aside = swapped.moved_aside().iter().map(|r| target.dir.join(r)).collect();
    let safety_dir = swapped.kept_anything().then(|| target.data.display(&plan.safety));

    if !guard.was_running() {
        // A container that was not running is left as it was.
        report.safety_dir = safety_dir;
        ctx.note(&format!("Container {} was not running; it was left stopped", c.name));
        return Ok(());
    }
    ctx.note(&format!("Starting container {} on the restored data", c.name));
    guard.restart()?;
    let settle_for = Duration::from_secs(u64::from(args.settle));
    let up = f.engine.wait_up(c, settle_for, Duration::from_secs(u64::from(args.health_timeout)))?;
    report.downtime_ms = Some(t0.elapsed().as_millis() as u64);
    let why = match up {
        Ok(now) => {
            report.up = Some(match now.health.as_deref() {
                Some(h) => h.to_string(),
                None => format!("running for {} s", settle_for.as_secs()),
            });
            // The pre-restore archive is the safety copy; the in-place links are not needed.
            if report.safety_archive.is_some() {
                swapped.discard(&target.data, &plan.safety)?;
            } else {
                report.safety_dir = safety_dir;
            }
            return Ok(());
        }
        Err(why) => why,
    };
    report.safety_dir = safety_dir;
    roll_back_container(args, ctx, f, target, &swapped, timeout, &why, report)
}

/// The data being replaced, as a cold archive in `--out` (the databases made whole first).
fn pre_restore_archive(
    args: &RestoreArgs,
    ctx: &Ctx,
    f: &Found,
    protect: &Encryption,
    dir: &Path,
) -> Result<Option<PathBuf>> {
    sqlite::make_whole(dir)?;
    let copy = Staging::private(args.tmp_dir.as_deref(), STAGING_PREFIX)?;
    // What the swap replaces: the data directory's own mount (nested mounts stay as they are).
    let (mut files, _) = fsutil::copy_data_parts(&f.location.parts(false), &copy.path())?;
    let db = Path::new(DB_FILE);
    files.sort_by_key(|c| (c.rel != db, c.rel.clone()));
    if !files.iter().any(|c| c.rel == db) {
        return Ok(None);
    }
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
    Ok(Some(make::make(ctx, &spec, protect, &files)?.written.path))
}

/// The container did not come up on the restored data: put the previous data back (unless
/// `--no-rollback`) and start it on that.
#[allow(clippy::too_many_arguments)]
fn roll_back_container(
    args: &RestoreArgs,
    ctx: &Ctx,
    f: &Found,
    target: &Target,
    swapped: &Swap,
    timeout: i64,
    why: &str,
    report: &RestoreReport,
) -> Result<()> {
    let c = &f.container;
    let kept = report.safety_archive.as_ref().map(|a| a.display().to_string()).unwrap_or_default();
    if args.no_rollback {
        return Err(Error::failed(format!(
            "container {} did not come up on the restored data: {why}; the restored data was kept (--no-rollback)",
            c.name
        ))
        .hint(format!("see `docker logs {}`; the previous data is in {kept}", c.name)));
    }
    ctx.warn(&format!("container {} did not come up on the restored data: {why}; rolling back", c.name));
    let now = f.engine.inspect(&c.id)?;
    if now.running {
        f.engine.stop(&now, timeout)?;
    }
    swapped.rollback(&target.data)?;
    f.engine.start(c).map_err(|e| {
        Error::new(
            Kind::ContainerState,
            format!(
                "the rollback put the previous data back, but container {} cannot be started: {}",
                c.name,
                e.chain()
            ),
        )
        .hint(format!("start it now: `docker start {}`", c.name))
    })?;
    let settle_for = Duration::from_secs(u64::from(args.settle));
    match f.engine.wait_up(c, settle_for, Duration::from_secs(u64::from(args.health_timeout)))? {
        Ok(_) => Err(Error::failed(format!(
            "container {} did not come up on the restored data ({why}); the previous data was put back and the container runs on it again",
            c.name
        ))
        .hint(format!(
            "see `docker logs {}` for why the restored data was refused; the restored files are in {}",
            c.name,
            report.safety_dir.clone().unwrap_or_default().join("failed-restore").display()
        ))),
        Err(again) => Err(Error::new(
            Kind::ContainerState,
            format!("container {} did not come up on the restored data ({why}), nor on its previous data after the rollback ({again})", c.name),
        )
        .hint(format!("act now: see `docker logs {}`; the previous data is also in {kept}", c.name))),
    }
}

/// How the pre-restore archive is encrypted: to `--encrypt-to`/`--recipients-file` when given;
/// for an encrypted backup, with its own passphrase, or to the public keys of the age identities
/// that decrypt it; otherwise not, and when the backup was encrypted the operator hears it.
fn safety_encryption(args: &RestoreArgs, keys: &Keys, ctx: &Ctx) -> Result<Encryption> {
    let given = make::recipients(&args.encrypt_to, args.recipients_file.as_deref())?;
    if given.is_some() {
        return Ok(given);
    }
    if crate::crypto::is_encrypted(&args.archive) {
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
    }
}
