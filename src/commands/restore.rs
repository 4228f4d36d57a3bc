//! `kfadmin restore ARCHIVE (--container NAME | --data-dir DIR)`: verify in full (in a private
//! directory), plan, confirm, keep a safety copy, swap atomically, give the files their owner
//! and mode, and (for a container) start it and roll back if it does not come up.

use std::ffi::OsString;
use std::fmt::Write as _;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime};

use serde::Serialize;

use super::{render, Ctx, Outcome};
use crate::archive::reader::{self, Options, Verdict};
use crate::archive::Manifest;
use crate::cli::RestoreArgs;
use crate::crypto::{Encryption, Keys};
use crate::docker;
use crate::error::{Error, IoContext, Kind, Result};
use crate::ops::container::{find_container, Found};
use crate::ops::fetch::{fetch, Fetched};
use crate::ops::make;
use crate::ops::restore::{self, refuse_if_in_use, Target};
use crate::ops::staging::{Staging, STAGING_PREFIX};
pub use crate::ops::swap::Owner;
use crate::ops::swap::{self, Journal, Owners, Plan};
use crate::safedir::Dir;
use crate::sqlite::DB_FILE;
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
    pub container: Option<String>,
    pub backup_created: Option<String>,
    #[serde(serialize_with = "super::lossy::paths")]
    pub files: Vec<PathBuf>,
    /// Where the replaced files were kept (`--data-dir`; absent when nothing was replaced).
    #[serde(serialize_with = "super::lossy::opt_path")]
    pub safety_dir: Option<PathBuf>,
    /// The pre-restore cold archive of the data that was replaced (`--container`).
    #[serde(serialize_with = "super::lossy::opt_path")]
    pub safety_archive: Option<PathBuf>,
    /// The replaced database was damaged (what SQLite found): it is kept as it was in the
    /// pre-restore archive, whose manifest says so too.
    pub replaced_damaged: Option<String>,
    /// Entries moved out of the way: SQLite sidecars (`-wal`, `-shm`, `-journal`) of the
    /// replaced files, and anything that stood where a restored file goes.
    #[serde(serialize_with = "super::lossy::paths")]
    pub moved_aside: Vec<PathBuf>,
    pub owner: Owner,
    pub downtime_ms: Option<u64>,
    /// `--container`: how it came up: "healthy" (its healthcheck) or "running for N s".
    pub up: Option<String>,
    pub duration_ms: u64,
    #[serde(serialize_with = "super::lossy::verdict")]
    pub verification: Verdict,
    /// The command that undoes this restore (a finished one): restore the pre-restore archive
    /// (`--container`), or copy the kept files back (`--data-dir`, with the server stopped).
    pub undo: Option<String>,
    /// What went differently than planned without failing the restore.
    pub warnings: Vec<String>,
}

pub fn run(mut args: RestoreArgs, ctx: &Ctx) -> Result<Outcome> {
    let started = Instant::now();
    // `--at TIME` (issue 18): the point is rebuilt from the repository's chain, checked, and
    // written as an archive in a private directory; from here on it is restored as any other.
    let _point = point_in_time(&mut args, ctx)?;
    // `latest`, or a bare name as `list` prints it, is an archive in the repository.
    args.archive = crate::ops::names::resolve(&args.archive, &args.out)?;
    check_input(&args, ctx)?;
    let (found, dir) = resolve_target(&args)?;
    let _locks = super::restore_locks(&args, ctx, found.as_ref(), &dir)?;
    let mut target = open_target(found, dir)?;
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
    if let (false, Some(why)) = (verdict.ok, &verdict.needs_key) {
        return Err(Error::usage(format!(
            "cannot open {}: {why}. Nothing in {} was changed",
            args.archive.display(),
            target.dir.display()
        ))
        .hint("the archive is not known to be damaged: pass --identity FILE with a key it was encrypted to (or the passphrase), then restore again"));
    }
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
    target.dbs.extend(plan.databases(&target.data)?.into_iter().map(|r| target.dir.join(r)));
    if target.found.is_none() {
        target.refuse_if_in_use()?;
    }
    // Another path's backup, or an older one than the newest: worth a second answer when a
    // database would be replaced (into an empty directory, nothing is lost: only said).
    let replaces_db = plan.files.iter().any(|f| f.replaces && f.rel == Path::new(DB_FILE));
    let mut doubts = wrong_archive(&manifest, &target, replaces_db);
    // `--at TIME` names the moment to go back to: a newer backup is said, never a reason to stop.
    let newer_blocks = replaces_db && args.at.is_none();
    doubts.extend(newer_backup(&args.archive, &args.out, &target).map(|n| (n, newer_blocks)));
    doubts.extend(crate::ops::names::name_problem(&args.archive, &manifest).map(|n| (n, false)));
    let mut text = plan_text(&args, &manifest, &target, &plan, owners.db);
    for (d, _) in &doubts {
        let _ = writeln!(text, "  WARNING  {d}");
    }
    let mut report = planned_report(&args, (&target, &plan, &owners), verdict, &doubts, started);
    if args.confirm.dry_run {
        report.duration_ms = started.elapsed().as_millis() as u64;
        return Ok(Outcome::new(0, format!("{text}Dry run: nothing was changed.\n"), &report));
    }
    confirm(&args, ctx, &text, &target.dir)?;
    confirm_doubts(&args, &doubts)?;
    let mut journal = Journal::begin(&target.data, &plan)?;
    let local = swap::place(&private, &target.data, &mut plan)?;
    let from = local.as_ref().map(Staging::dir).unwrap_or(private.dir());
    if target.created {
        let (uid, gid, mode) = owners.dir(manifest.dir("data"));
        target.data.chown(uid, gid)?;
        target.data.chmod(mode)?;
    }
    crate::fault::point("restore.placed")?;
    let mut done = restore::Done::default();
    match &target.found {
        None => restore::into_dir(&target, from, &plan, (&mut journal, args.tmp_dir.as_deref()), &mut done)?,
        Some(f) => restore::into_container(
            &container_options(&args),
            ctx,
            f,
            &protect,
            &target,
            (from, &plan, &mut journal),
            &mut done,
        )?,
    }
    report.absorb(done);
    guard.dir = None;
    report.restored = true;
    report.undo = undo_command(&report);
    report.duration_ms = started.elapsed().as_millis() as u64;
    Ok(Outcome::new(0, human(&args, &manifest, &target, &report), &report))
}

/// With `--at`: the rebuilt point's archive (kept until the restore is done), now `args.archive`.
fn point_in_time(args: &mut RestoreArgs, ctx: &Ctx) -> Result<Option<crate::ops::replicate::PointArchive>> {
    let Some(at) = args.at.clone() else { return Ok(None) };
    let at_us = crate::ops::replicate::parse_at(&at).map_err(Error::usage)?;
    let target = crate::ops::container::point_target(&args.docker, args.data_dir.as_deref())?;
    let choice =
        crate::ops::replicate::ChainChoice { name: args.chain.as_deref(), target: target.as_deref() };
    let p = crate::ops::replicate::point_archive(&args.out, at_us, choice, args.tmp_dir.as_deref(), ctx)?;
    if let Some(note) = &p.point.note {
        ctx.warn(note);
    }
    args.archive = p.archive.clone();
    Ok(Some(p))
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
    if !is_remote_path(&args.archive) {
        // Not there, not a file, or not readable (a non-root run is told to run as root).
        if let Some(e) = crate::ops::names::unusable(&args.archive) {
            return Err(e);
        }
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
    let dbs = vec![dir.join(DB_FILE)];
    Ok(Target { found, dir, data, created, dbs })
}

/// Show the plan (also with `--yes`: the log then records what was replaced) and ask.
fn confirm(args: &RestoreArgs, ctx: &Ctx, plan: &str, dir: &Path) -> Result<()> {
    ctx.note(plan);
    if args.confirm.yes {
        return Ok(());
    }
    if ask(&format!("Replace Keyfount's data in {}?", dir.display()))? {
        Ok(())
    } else {
        Err(Error::failed("restore cancelled; nothing was changed"))
    }
}

/// Why the archive may be the wrong one for this target: (what, whether `--yes` alone is not
/// enough to go on). Another container's backup, a `--data-dir` backup of another path (over a
/// database: `replaces_db`), a damaged database (a pre-restore copy of one), no Keyfount
/// schema, a database that would shrink by more than half.
fn wrong_archive(m: &Manifest, target: &Target, replaces_db: bool) -> Vec<(String, bool)> {
    let mut doubts = Vec::new();
    let db = target.dir.join(DB_FILE);
    // The same file, however the paths were spelled (a link, `..`).
    let resolved = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    match (&target.found, &m.source.container) {
        (Some(f), Some(c)) if c.name != f.container.name => {
            doubts.push((format!("the backup is of container {}, not of {}", c.name, f.container.name), true))
        }
        (None, c) if resolved(Path::new(&m.source.path)) != resolved(&db) => doubts.push((
            format!(
                "the backup is of {}{}, not of {}",
                m.source.path,
                c.as_ref().map(|c| format!(" (container {})", c.name)).unwrap_or_default(),
                db.display()
            ),
            replaces_db,
        )),
        _ => {}
    }
    if let Some(d) = &m.damaged {
        doubts.push((
            format!("the archive holds a damaged database, kept as it was before a restore ({d})"),
            true,
        ));
    }
    if !m.database.tables.contains_key("schema_migrations") {
        doubts
            .push(("the backup's database has no Keyfount schema (no schema_migrations table)".into(), true));
    }
    let now = std::fs::symlink_metadata(&db).map(|m| m.len()).unwrap_or(0);
    let new = m.database.page_size * m.database.page_count;
    if new.saturating_mul(2) < now {
        doubts.push((
            format!(
                "the database would shrink by more than half: {} now, {} in the backup",
                super::human_bytes(now),
                super::human_bytes(new)
            ),
            true,
        ));
    }
    doubts
}

/// A backup of the target newer than the archive: one of the archive's name (or of the
/// target container's) taken after it, in the repository (`-r`, local or `s3://`) or beside
/// the archive (its directory, or its `s3://` prefix). Restoring an older one is rarely meant.
/// A repository that cannot be read is passed over (it says nothing either way).
fn newer_backup(archive: &Path, repo: &Path, target: &Target) -> Option<String> {
    let file_name = match is_remote_path(archive) {
        true => S3Url::split_object(&archive.to_string_lossy()).ok()?.1,
        false => archive.file_name()?.to_string_lossy().into_owned(),
    };
    let (name, created, _) = crate::archive::catalog::parse_name(&file_name)?;
    let mut names = vec![name];
    names.extend(target.found.as_ref().map(|f| f.container.name.clone()));
    let beside = match is_remote_path(archive) {
        true => {
            let (url, _) = S3Url::split_object(&archive.to_string_lossy()).ok()?;
            PathBuf::from(format!("s3://{}/{}", url.bucket, url.prefix))
        }
        false => archive.parent().map(Path::to_path_buf).unwrap_or_default(),
    };
    let mut places = vec![repo.to_path_buf()];
    if !places.contains(&beside) && !beside.as_os_str().is_empty() {
        places.push(beside);
    }
    let newest = places
        .iter()
        .filter(|p| is_remote_path(p) || p.is_dir())
        .filter_map(|p| crate::ops::names::archives(p).ok().map(|e| (p, e)))
        .flat_map(|(p, entries)| entries.into_iter().map(move |e| (p, e)))
        .filter(|(_, e)| names.contains(&e.name) && e.created_unix > created)
        .filter(|(_, e)| !matches!(e.mode, crate::archive::Mode::PreRestore))
        .max_by_key(|(_, e)| e.created_unix)?;
    Some(format!(
        "a newer backup of {} is in {}: {} (taken {})",
        newest.1.name,
        newest.0.display(),
        newest.1.file_name,
        newest.1.created
    ))
}

/// The plan warned that the archive may be the wrong one (another container's or path's, no
/// Keyfount schema, much smaller, an older one than the newest of the target): a second,
/// explicit answer on the terminal, or `--force` with `--yes`.
fn confirm_doubts(args: &RestoreArgs, doubts: &[(String, bool)]) -> Result<()> {
    if args.force || !doubts.iter().any(|d| d.1) {
        return Ok(());
    }
    if args.confirm.yes {
        let what: Vec<&str> = doubts.iter().filter(|d| d.1).map(|d| d.0.as_str()).collect();
        return Err(Error::usage(format!(
            "this archive may not be the one to restore here: {}; nothing was changed",
            what.join("; ")
        ))
        .hint("check the archive (`kfadmin list`, `kfadmin verify`); pass --force with --yes to restore it anyway"));
    }
    if ask("The plan warns that this archive may be the wrong one (see WARNING above). Restore it anyway?")? {
        Ok(())
    } else {
        Err(Error::failed("restore cancelled; nothing was changed"))
    }
}

/// Ask a question on the terminal: true only for `y` or `yes` and Enter. Keys typed before the
/// question appeared are thrown away (the terminal's input queue is flushed), so a key pressed
/// early never answers it. Ctrl-C at the question is an interruption (exit 130).
fn ask(question: &str) -> Result<bool> {
    use std::io::{BufRead, Write};
    let stdin = std::io::stdin();
    let mut err = std::io::stderr();
    let _ = rustix::termios::tcflush(&stdin, rustix::termios::QueueSelector::IFlush);
    // The cursor shown (a progress bar may have hidden it) where the answer goes.
    let _ = write!(err, "\x1b[?25h{question} Type y or yes and press Enter [y/N]: ");
    let _ = err.flush();
    let wait = rustix::event::Timespec { tv_sec: 0, tv_nsec: 100_000_000 };
    loop {
        if let Err(e) = crate::error::check_interrupt() {
            // On a new line, with the cursor shown.
            let _ = writeln!(err, "\x1b[?25h");
            return Err(e);
        }
        let mut fds = [rustix::event::PollFd::new(&stdin, rustix::event::PollFlags::IN)];
        match rustix::event::poll(&mut fds, Some(&wait)) {
            Ok(0) | Err(rustix::io::Errno::INTR) => continue,
            Ok(_) => break,
            Err(e) => return Err(Error::failed("cannot read the answer").source(std::io::Error::from(e))),
        }
    }
    let mut line = String::new();
    stdin.lock().read_line(&mut line).map_err(|e| Error::failed("cannot read the answer").source(e))?;
    Ok(matches!(line.trim().to_ascii_lowercase().as_str(), "y" | "yes"))
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
    if let Some(d) = &report.replaced_damaged {
        let _ = writeln!(human, "  the database it replaced was damaged ({d}); it is kept as it was");
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
    if let Some(u) = &report.undo {
        let _ = writeln!(human, "  to undo it: {u}");
    }
    human
}

/// The exact command that puts back what a finished restore replaced.
fn undo_command(r: &RestoreReport) -> Option<String> {
    let q = |p: &Path| format!("'{}'", p.display().to_string().replace('\'', "'\\''"));
    match (&r.container, &r.safety_archive, &r.safety_dir) {
        (Some(c), Some(a), _) => Some(format!("kfadmin restore {} --container {}", q(a), q(Path::new(c)))),
        (None, _, Some(s)) => Some(format!("(with the server stopped) cp -a {}/. {}/", q(s), q(&r.data_dir))),
        _ => None,
    }
}

impl RestoreReport {
    /// What the restore transaction did.
    fn absorb(&mut self, d: restore::Done) {
        self.safety_dir = d.safety_dir;
        self.safety_archive = d.safety_archive;
        self.replaced_damaged = d.replaced_damaged;
        self.moved_aside = d.moved_aside;
        self.downtime_ms = d.downtime_ms;
        self.up = d.up;
        self.warnings.extend(d.warnings);
    }
}

/// The report of a restore whose plan is made (nothing done yet).
fn planned_report(
    args: &RestoreArgs,
    (target, plan, owners): (&Target, &Plan, &Owners),
    verdict: Verdict,
    doubts: &[(String, bool)],
    started: Instant,
) -> RestoreReport {
    let mut report = failed_report(args, &target.dir, verdict, started);
    report.ok = true;
    report.backup_created = report.verification.manifest.as_ref().map(|m| m.created.clone());
    report.files = plan.files.iter().map(|f| target.dir.join(&f.rel)).collect();
    report.owner = owners.db;
    report.container = target.found.as_ref().map(|f| f.container.name.clone());
    report.warnings.extend(doubts.iter().map(|(d, _)| d.clone()));
    report
}

/// The container restore's flags, as the restore transaction takes them.
fn container_options(args: &RestoreArgs) -> restore::Options {
    restore::Options {
        out: args.out.clone(),
        tmp_dir: args.tmp_dir.clone(),
        stop_timeout: args.stop_timeout,
        settle: args.settle,
        health_timeout: args.health_timeout,
        no_rollback: args.no_rollback,
    }
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
        replaced_damaged: None,
        undo: None,
        moved_aside: vec![],
        owner: Owner { uid: 0, gid: 0, mode: 0, from: "manifest" },
        downtime_ms: None,
        up: None,
        duration_ms: started.elapsed().as_millis() as u64,
        verification: verdict,
        warnings: vec![],
    }
}
