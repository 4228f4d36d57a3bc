//! `kfadmin restore ARCHIVE --data-dir DIR`: verify in full, plan, confirm, swap atomically,
//! keep a safety copy, give the files their owner and mode back.

use std::fmt::Write as _;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime};

use serde::Serialize;

use super::{verify::render, Ctx, Outcome};
use crate::archive::reader::{self, Options, Verdict};
use crate::archive::Manifest;
use crate::cli::RestoreArgs;
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
    pub backup_created: Option<String>,
    pub files: Vec<PathBuf>,
    /// Where the replaced files were kept (absent when nothing was replaced).
    pub safety_dir: Option<PathBuf>,
    pub moved_aside: Vec<PathBuf>,
    pub owner: Owner,
    pub duration_ms: u64,
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
        return Err(Error::usage("restore replaces the data in the data directory and needs a confirmation, but there is no terminal to ask on")
            .hint("pass --yes to confirm from a script, or --dry-run to see the plan"));
    }
    if !args.archive.is_file() {
        return Err(Error::usage(format!(
            "archive {} does not exist or is not a file",
            args.archive.display()
        ))
        .hint("pass the path of a .tar.gz that kfadmin backup wrote"));
    }
    let dir = std::path::absolute(&args.data_dir).unwrap_or(args.data_dir.clone());
    if dir.exists() && !dir.is_dir() {
        return Err(Error::usage(format!("{} is not a directory", dir.display()))
            .hint("--data-dir takes Keyfount's data directory, the one that holds keyfount.db"));
    }
    let db = dir.join(DB_FILE);
    refuse_if_in_use(&db)?;

    // A data directory that does not exist yet is created for the restore, and removed again
    // if the restore stops before the swap.
    let created_dir = !dir.exists();
    if created_dir {
        let parent = dir.parent().unwrap_or(Path::new("/"));
        if !parent.is_dir() {
            return Err(Error::usage(format!("{} does not exist", parent.display()))
                .hint("create the parent directory of the data directory first"));
        }
        std::fs::DirBuilder::new().mode_0700().create(&dir).ctx("cannot create the data directory", &dir)?;
    }
    let mut dir_guard = DirGuard { dir: created_dir.then(|| dir.clone()) };

    let staging = fsutil::staging_dir(&dir, ".kfadmin-restore-")?;
    ctx.note(&format!("Verifying {}", args.archive.display()));
    let opts = Options { sqlite: true, extract_to: Some(staging.path()), expected_sha256: None };
    let verdict = reader::verify(&args.archive, &opts, ctx.progress.as_ref())?;
    if !verdict.ok {
        drop(staging);
        let mut human = render(&verdict, false);
        let _ = writeln!(
            human,
            "Refusing to restore a backup that fails verification. Nothing in {} was changed.",
            dir.display()
        );
        let report = failed_report(&args.archive, &dir, verdict, started);
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
    let stale: Vec<PathBuf> =
        sqlite::sidecars(&db).into_iter().filter(|p| p.symlink_metadata().is_ok()).collect();
    let replaced: Vec<PathBuf> = targets.iter().map(|(_, t)| t.clone()).filter(|t| t.exists()).collect();
    let stamp = humantime::format_rfc3339_seconds(SystemTime::now()).to_string().replace(['-', ':'], "");
    let safety = (!replaced.is_empty() || !stale.is_empty())
        .then(|| dir.join(format!(".kfadmin-pre-restore-{stamp}")));

    let plan =
        plan_text(&args.archive, &manifest, &dir, &targets, &replaced, &stale, safety.as_deref(), owner);
    if confirm.dry_run {
        let report = RestoreReport {
            ok: true,
            dry_run: true,
            restored: false,
            archive: args.archive.clone(),
            data_dir: dir.clone(),
            backup_created: Some(manifest.created.clone()),
            files: targets.iter().map(|(_, t)| t.clone()).collect(),
            safety_dir: safety,
            moved_aside: replaced.iter().chain(&stale).cloned().collect(),
            owner,
            duration_ms: started.elapsed().as_millis() as u64,
            verification: verdict,
        };
        return Ok(Outcome::new(0, format!("{plan}Dry run: nothing was changed.\n"), &report));
    }
    if !confirm.yes {
        ctx.note(&plan);
        let yes = dialoguer::Confirm::new()
            .with_prompt(format!("Replace the database in {}?", dir.display()))
            .default(false)
            .interact_on(&dialoguer::console::Term::stderr())
            .map_err(|e| Error::failed("cannot read the answer").source(e))?;
        if !yes {
            return Err(Error::failed("restore cancelled; nothing was changed"));
        }
    }
    refuse_if_in_use(&db)?;

    // Owner and mode first, while the files are still private to the staging directory.
    for (staged, _) in &targets {
        set_owner(staged, owner)?;
        std::fs::File::open(staged).and_then(|f| f.sync_all()).ctx("cannot sync", staged)?;
    }
    fsutil::fsync_dir(staging.path())?;
    let moved = swap(&targets, &replaced, &stale, safety.as_deref(), &dir, owner)?;
    if created_dir {
        std::os::unix::fs::chown(&dir, Some(owner.uid), Some(owner.gid))
            .ctx("cannot set the owner of", &dir)?;
    }
    dir_guard.dir = None;
    drop(staging);
    fsutil::fsync_dir(&dir)?;

    let report = RestoreReport {
        ok: true,
        dry_run: false,
        restored: true,
        archive: args.archive.clone(),
        data_dir: dir.clone(),
        backup_created: Some(manifest.created.clone()),
        files: targets.iter().map(|(_, t)| t.clone()).collect(),
        safety_dir: safety.clone(),
        moved_aside: moved,
        owner,
        duration_ms: started.elapsed().as_millis() as u64,
        verification: verdict,
    };
    let mut human = format!(
        "Restored {} (backup of {}) into {}\n  owner {}:{} mode {:o} (from the {})\n",
        args.archive.display(),
        manifest.created,
        dir.display(),
        owner.uid,
        owner.gid,
        owner.mode,
        owner.from
    );
    if let Some(s) = &safety {
        let _ = writeln!(human, "  the replaced files are kept in {}", s.display());
        let _ = writeln!(human, "  remove that directory once the server runs well on the restored data");
    }
    Ok(Outcome::new(0, human, &report))
}

trait Mode0700 {
    fn mode_0700(&mut self) -> &mut Self;
}
impl Mode0700 for std::fs::DirBuilder {
    fn mode_0700(&mut self) -> &mut Self {
        use std::os::unix::fs::DirBuilderExt;
        self.mode(0o700)
    }
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

/// Keep the current files in `safety` (hard links for the files being replaced, renames for
/// the stale `-wal`/`-shm`), then rename each staged file over its target. Any failure puts
/// everything back as it was.
fn swap(
    targets: &[(PathBuf, PathBuf)],
    replaced: &[PathBuf],
    stale: &[PathBuf],
    safety: Option<&Path>,
    dir: &Path,
    owner: Owner,
) -> Result<Vec<PathBuf>> {
    let mut undo: Vec<(PathBuf, PathBuf)> = Vec::new(); // (kept copy, original place)
    let mut linked: Vec<(PathBuf, PathBuf)> = Vec::new();
    let result = (|| -> Result<()> {
        if let Some(safety) = safety {
            std::fs::DirBuilder::new()
                .mode_0700()
                .create(safety)
                .ctx("cannot create the safety directory", safety)?;
            std::os::unix::fs::chown(safety, Some(owner.uid), Some(owner.gid))
                .ctx("cannot set the owner of", safety)?;
            for t in replaced {
                let keep = safety.join(t.strip_prefix(dir).unwrap_or(t));
                if let Some(p) = keep.parent() {
                    std::fs::create_dir_all(p).ctx("cannot create", p)?;
                }
                std::fs::hard_link(t, &keep).ctx("cannot keep a safety copy of", t)?;
                linked.push((keep, t.clone()));
            }
            // The old WAL must go before the new database arrives: SQLite would replay it.
            for s in stale {
                let keep = safety.join(s.file_name().expect("sidecar has a name"));
                std::fs::rename(s, &keep).ctx("cannot move aside", s)?;
                undo.push((keep, s.clone()));
            }
            fsutil::fsync_dir(safety)?;
        }
        for (staged, target) in targets {
            if let Some(p) = target.parent() {
                std::fs::create_dir_all(p).ctx("cannot create", p)?;
            }
            std::fs::rename(staged, target).ctx("cannot move the restored file into", target)?;
        }
        Ok(())
    })();
    match result {
        Ok(()) => Ok(replaced.iter().chain(stale).cloned().collect()),
        Err(e) => {
            // Roll back: the kept inodes go back to their names, atomically each.
            for (keep, orig) in linked.iter().chain(undo.iter()).rev() {
                let _ = std::fs::rename(keep, orig);
            }
            let _ = fsutil::fsync_dir(dir);
            Err(Error::failed(format!("{e}; the data directory was put back as it was"))
                .hint(
                    e.hint.clone().unwrap_or_else(|| "fix the cause above and run the restore again".into()),
                )
                .source(e))
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn plan_text(
    archive: &Path,
    m: &Manifest,
    dir: &Path,
    targets: &[(PathBuf, PathBuf)],
    replaced: &[PathBuf],
    stale: &[PathBuf],
    safety: Option<&Path>,
    owner: Owner,
) -> String {
    let mut s = String::new();
    let tables: u64 = m.database.tables.values().sum();
    let _ = writeln!(s, "Restore plan");
    let _ = writeln!(
        s,
        "  from     {} ({} backup of {}, taken {})",
        archive.display(),
        m.mode.as_str(),
        m.source.container.as_ref().map(|c| c.name.clone()).unwrap_or_else(|| m.source.path.clone()),
        m.created
    );
    let _ = writeln!(
        s,
        "  contents {} rows in {} tables, schema version {}",
        tables,
        m.database.tables.len(),
        m.database.schema_version.map(|v| v.to_string()).unwrap_or_else(|| "-".into())
    );
    let _ = writeln!(s, "  into     {}", dir.display());
    for (_, t) in targets {
        let verb = if replaced.contains(t) { "replace" } else { "create " };
        let _ = writeln!(s, "    {verb} {}", t.display());
    }
    for st in stale {
        let _ = writeln!(s, "    remove  {} (stale)", st.display());
    }
    if let Some(safety) = safety {
        let _ = writeln!(s, "  keep     the current files in {}", safety.display());
    }
    let _ =
        writeln!(s, "  owner    {}:{} mode {:o} (from the {})", owner.uid, owner.gid, owner.mode, owner.from);
    s
}

fn failed_report(archive: &Path, dir: &Path, verdict: Verdict, started: Instant) -> RestoreReport {
    RestoreReport {
        ok: false,
        dry_run: false,
        restored: false,
        archive: archive.to_path_buf(),
        data_dir: dir.to_path_buf(),
        backup_created: verdict.manifest.as_ref().map(|m| m.created.clone()),
        files: vec![],
        safety_dir: None,
        moved_aside: vec![],
        owner: Owner { uid: 0, gid: 0, mode: 0, from: "manifest" },
        duration_ms: started.elapsed().as_millis() as u64,
        verification: verdict,
    }
}
