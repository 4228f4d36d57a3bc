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
use crate::docker::StopGuard;
use crate::error::{Error, IoContext, Kind, Result};
use crate::fsutil;
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
    let _locks = super::restore_locks(&args, ctx, found.as_ref(), &dir)?;
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
    // The server is down while this runs: no reason to give way.
    let output =
        OutputArgs { out: args.out.clone(), name: Some(c.name.clone()), compression_level: 6, nice: 0 };
    fsutil::ensure_private_dir(&output.out)?;
    let mut guard = StopGuard::new(&f.engine, c.clone());
    if c.running {
        ctx.note(&format!("Stopping container {} (stop timeout {timeout} s)", c.name));
    }
    let t0 = Instant::now();
    let work = (|| -> Result<(PathBuf, Swap)> {
        guard.stop(timeout, "kfadmin restore")?;
        refuse_if_in_use(db)?;
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
            r.archive
        } else {
            PathBuf::new()
        };
        drop(copy);
        let swapped = Swap::apply(targets, db, dir, safety, owner)?;
        Ok((archive, swapped))
    })();
    let (archive, swapped) = match work {
        Ok(x) => x,
        Err(e) => return backup::settle(Err(e), guard.restart()),
    };
    report.safety_archive = (!archive.as_os_str().is_empty()).then_some(archive);
    report.moved_aside = swapped.kept.iter().map(|(_, orig)| orig.clone()).collect();

    if !guard.was_running() {
        // A container that was not running is left as it was.
        report.safety_dir = swapped.safety.clone();
        ctx.note(&format!("Container {} was not running; it was left stopped", c.name));
        return Ok(());
    }
    ctx.note(&format!("Starting container {} on the restored data", c.name));
    guard.restart()?;
    let settle = Duration::from_secs(u64::from(args.settle));
    let up = f.engine.wait_up(c, settle, Duration::from_secs(u64::from(args.health_timeout)))?;
    report.downtime_ms = Some(t0.elapsed().as_millis() as u64);
    let why = match up {
        Ok(now) => {
            report.up = Some(match now.health.as_deref() {
                Some(h) => h.to_string(),
                None => format!("running for {} s", settle.as_secs()),
            });
            // The pre-restore archive is the safety copy; the in-place links are not needed.
            if report.safety_archive.is_some() {
                if let Some(s) = &swapped.safety {
                    let _ = std::fs::remove_dir_all(s);
                }
            } else {
                report.safety_dir = swapped.safety.clone();
            }
            return Ok(());
        }
        Err(why) => why,
    };
    let kept = report.safety_archive.as_ref().map(|a| a.display().to_string()).unwrap_or_default();
    if args.no_rollback {
        report.safety_dir = swapped.safety.clone();
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
    swapped.rollback(db)?;
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
    match f.engine.wait_up(c, settle, Duration::from_secs(u64::from(args.health_timeout)))? {
        Ok(_) => Err(Error::failed(format!(
            "container {} did not come up on the restored data ({why}); the previous data was put back and the container runs on it again",
            c.name
        ))
        .hint(format!(
            "see `docker logs {}` for why the restored data was refused; the restored files are in {}",
            c.name,
            safety.join("failed-restore").display()
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
            Err(e) => {
                let _ = swap.rollback(db);
                Err(Error::failed(format!("{}; the data directory was put back as it was", e.message))
                    .hint(
                        e.hint
                            .clone()
                            .unwrap_or_else(|| "fix the cause above and run the restore again".into()),
                    )
                    .source(e))
            }
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
    }
}
