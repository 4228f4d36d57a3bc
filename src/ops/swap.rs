//! Swap restored files into a data directory, and undo it.
//!
//! The data directory is writable by the container: everything here goes through directory
//! descriptors and never follows a link ([`crate::safedir`]). The plan is made from what is
//! there before anything changes; the swap keeps what it replaces in a root-only
//! `.kfadmin-pre-restore-<time>/` directory inside the data directory (hard links for replaced
//! files, renames for SQLite's `-wal`, `-shm` and `-journal` files and for anything in the
//! way), checks that every staged file is still the one that was verified, then renames the
//! staged files into place. Any failure puts everything back, and says so only when it did.

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::archive::manifest::{DirEntry, FileEntry, Manifest};
use crate::error::{Error, Result};
use crate::ops::staging::{self, Staging};
use crate::safedir::{self, Dir, Kind, Meta};
use crate::sqlite::{self, DB_FILE};

/// The owner and mode the restored database gets, and where they come from.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Owner {
    pub uid: u32,
    pub gid: u32,
    pub mode: u32,
    /// "replaced database" or "manifest".
    pub from: &'static str,
}

/// Owners and modes of restored entries: as the manifest recorded them, except that the owner
/// the database had in the archive becomes the owner of the database being replaced (the
/// archive may come from a host where the server ran as another user), and the database keeps
/// the mode of the one it replaces.
#[derive(Debug, Clone, Copy)]
pub struct Owners {
    pub db: Owner,
    recorded: (u32, u32),
}

/// (uid, gid, mode)
pub type Perm = (u32, u32, u32);

impl Owners {
    pub fn new(data: Option<&Dir>, m: &Manifest) -> Result<Owners> {
        let rec = m
            .file(&format!("data/{DB_FILE}"))
            .ok_or_else(|| Error::failed("the manifest lists no database"))?;
        let now = match data {
            Some(d) => d.meta(OsStr::new(DB_FILE))?.filter(|m| m.kind == Kind::File),
            None => None,
        };
        let db = match now {
            Some(n) => Owner { uid: n.uid, gid: n.gid, mode: n.mode & 0o777, from: "replaced database" },
            None => Owner { uid: rec.uid, gid: rec.gid, mode: rec.mode & 0o777, from: "manifest" },
        };
        Ok(Owners { db, recorded: (rec.uid, rec.gid) })
    }

    fn map(&self, uid: u32, gid: u32) -> (u32, u32) {
        (
            if uid == self.recorded.0 { self.db.uid } else { uid },
            if gid == self.recorded.1 { self.db.gid } else { gid },
        )
    }

    pub fn file(&self, f: &FileEntry) -> Perm {
        if f.path == format!("data/{DB_FILE}") {
            return (self.db.uid, self.db.gid, self.db.mode);
        }
        let (u, g) = self.map(f.uid, f.gid);
        (u, g, f.mode & 0o777)
    }

    /// A directory's: as recorded, or (older archives) the database's owner and 0700.
    pub fn dir(&self, d: Option<&DirEntry>) -> Perm {
        match d {
            Some(d) => {
                let (u, g) = self.map(d.uid, d.gid);
                (u, g, d.mode & 0o777)
            }
            None => (self.db.uid, self.db.gid, 0o700),
        }
    }
}

/// One restored file.
#[derive(Debug, Clone)]
pub struct Placed {
    /// Relative to the data directory.
    pub rel: PathBuf,
    pub perm: Perm,
    /// A file of that name is there now (it is kept in the safety directory).
    pub replaces: bool,
    /// The staged file as it was prepared: it must still be that one at the swap.
    staged: Option<Meta>,
}

/// What a restore will do to a data directory, decided before anything changes.
#[derive(Debug, Clone)]
pub struct Plan {
    pub files: Vec<Placed>,
    /// Directories to create, parents first.
    pub new_dirs: Vec<(PathBuf, Perm)>,
    /// Entries moved into the safety directory: SQLite sidecars of restored files (a stale
    /// WAL or a hot journal would be replayed into the new file) and anything in the way.
    pub aside: Vec<PathBuf>,
    /// The safety directory's name inside the data directory.
    pub safety: OsString,
    /// Owner and mode of the directories the manifest records, and of any other.
    dir_perms: Vec<(PathBuf, Perm)>,
    default_dir: Perm,
}

/// (parent, name) of a relative path.
fn split(rel: &Path) -> Result<(&Path, &OsStr)> {
    let name = rel.file_name().ok_or_else(|| Error::failed(format!("{} has no file name", rel.display())))?;
    Ok((rel.parent().unwrap_or(Path::new("")), name))
}

fn with_suffix(name: &OsStr, suffix: &str) -> OsString {
    let mut s = name.to_os_string();
    s.push(suffix);
    s
}

/// The directory `rel` below `data` if every component exists as a real directory; None at
/// the first missing one; an error for a link or anything else in the way.
fn existing_dir(data: &Dir, rel: &Path) -> Result<Option<Dir>> {
    let mut cur = data.try_clone()?;
    for c in rel.components() {
        let name = c.as_os_str();
        match cur.meta(name)? {
            None => return Ok(None),
            Some(m) if m.kind == Kind::Dir => cur = cur.open_dir(name)?,
            Some(m) => {
                return Err(Error::failed(format!(
                    "{} is {} where the backup has a directory; refusing to restore through it",
                    cur.display(name).display(),
                    if m.kind == Kind::Link { "a symbolic link" } else { "not a directory" }
                ))
                .hint("move it out of the data directory (it may have been put there by the container), then run the restore again"))
            }
        }
    }
    Ok(Some(cur))
}

impl Plan {
    pub fn new(data: &Dir, m: &Manifest, owners: &Owners, safety: OsString) -> Result<Plan> {
        // kfadmin's own entries (safety and staging directories) are never restored over.
        let own = m.files.iter().map(|f| &f.path).chain(m.dirs.iter().map(|d| &d.path)).find(|p| {
            rel_of(p).components().any(|c| c.as_os_str().as_encoded_bytes().starts_with(b".kfadmin-"))
        });
        if let Some(p) = own {
            return Err(Error::usage(format!(
                "the archive holds {p}, a name kfadmin keeps for its own safety and staging directories; refusing to restore it"
            ))
            .hint("this archive was not written by kfadmin backup from a data directory: check where it comes from"));
        }
        let mut dir_perms: Vec<(PathBuf, Perm)> =
            m.dirs.iter().map(|d| (rel_of(&d.path), owners.dir(Some(d)))).collect();
        dir_perms.retain(|(d, _)| !d.as_os_str().is_empty());
        let files = m
            .files
            .iter()
            .map(|f| Placed { rel: rel_of(&f.path), perm: owners.file(f), replaces: false, staged: None })
            .collect();
        let mut plan =
            Plan { files, new_dirs: vec![], aside: vec![], safety, dir_perms, default_dir: owners.dir(None) };
        plan.survey(data)?;
        Ok(plan)
    }

    /// Look at the data directory as it is now: which files are replaced, which directories
    /// must be made, what must move aside. Done when the plan is made and again right before
    /// the swap (a container stop removes a `-wal`; an unclean one leaves a journal).
    pub fn survey(&mut self, data: &Dir) -> Result<()> {
        self.new_dirs.clear();
        self.aside.clear();
        let listed: Vec<PathBuf> = self.files.iter().map(|f| f.rel.clone()).collect();
        for i in 0..self.files.len() {
            let rel = self.files[i].rel.clone();
            let (parent, name) = split(&rel)?;
            self.files[i].replaces = match existing_dir(data, parent)? {
                None => {
                    self.add_dirs(parent);
                    false
                }
                Some(p) => self.look_at(&p, parent, name, &listed)?,
            };
        }
        Ok(())
    }

    /// Missing directories on the way to `rel`, parents first, each once.
    fn add_dirs(&mut self, rel: &Path) {
        let mut cur = PathBuf::new();
        for c in rel.components() {
            cur.push(c);
            if !self.new_dirs.iter().any(|(d, _)| d == &cur) {
                let perm = self.dir_perms.iter().find(|(d, _)| d == &cur).map(|(_, p)| *p);
                self.new_dirs.push((cur.clone(), perm.unwrap_or(self.default_dir)));
            }
        }
    }

    /// What is at `parent/name` now, and its sidecars; returns whether a file is replaced.
    fn look_at(&mut self, p: &Dir, parent: &Path, name: &OsStr, listed: &[PathBuf]) -> Result<bool> {
        for suffix in sqlite::SIDECAR_SUFFIXES {
            let side = with_suffix(name, suffix);
            let rel = parent.join(&side);
            if p.meta(&side)?.is_some() && !listed.contains(&rel) && !self.aside.contains(&rel) {
                self.aside.push(rel);
            }
        }
        match p.meta(name)? {
            None => Ok(false),
            Some(m) if m.kind == Kind::File => Ok(true),
            Some(m) if m.kind == Kind::Dir => Err(Error::failed(format!(
                "{} is a directory where the backup has a file",
                p.display(name).display()
            ))
            .hint("move it out of the data directory, then run the restore again")),
            Some(_) => {
                self.aside.push(parent.join(name));
                Ok(false)
            }
        }
    }

    /// Give the staged files their owner and mode (through their descriptors), remember each
    /// one, so that the swap can tell if one was replaced meanwhile, and sync them all (one
    /// `syncfs`: an fsync per file is minutes for 50,000 small files).
    pub fn prepare(&mut self, staging: &Dir) -> Result<()> {
        for f in &mut self.files {
            let (parent, name) = split(&f.rel)?;
            let file = staging.walk(parent, None)?.open_file(name)?;
            let what = staging.display(&f.rel);
            safedir::set_owner(&file, f.perm.0, f.perm.1, &what)?;
            safedir::set_mode(&file, f.perm.2, &what)?;
            f.staged = Some(safedir::meta_of(&file, &what)?);
        }
        staging.sync_filesystem()
    }

    /// The replaced files that are SQLite databases now (they start with SQLite's header), each
    /// once, relative to the data directory: a process may hold any of them open.
    pub fn databases(&self, data: &Dir) -> Result<Vec<PathBuf>> {
        let mut out = Vec::new();
        for f in self.files.iter().filter(|f| f.replaces) {
            let (parent, name) = split(&f.rel)?;
            let Some(dir) = existing_dir(data, parent)? else { continue };
            if dir.meta(name)?.is_some_and(|m| m.kind == Kind::File) && sqlite::is_database(&dir, name)? {
                out.push(f.rel.clone());
            }
        }
        out.retain(|r| r != Path::new(DB_FILE));
        Ok(out)
    }

    /// Whether the swap keeps anything (a safety directory is made).
    pub fn keeps_anything(&self) -> bool {
        !self.aside.is_empty() || self.files.iter().any(|f| f.replaces)
    }
}

/// `data/x/y` → `x/y`
pub fn rel_of(archive_path: &str) -> PathBuf {
    let p = Path::new(archive_path);
    p.strip_prefix("data").unwrap_or(p).to_path_buf()
}

#[derive(Debug)]
enum Kept {
    /// A hard link of a replaced file.
    Linked(PathBuf),
    /// An entry moved out of the way.
    Moved(PathBuf),
}

/// A swap that happened, and how to undo it.
#[derive(Debug)]
pub struct Swap {
    safety: Dir,
    name: OsString,
    kept: Vec<Kept>,
    /// Restored files moved in: (relative path, device, inode).
    placed: Vec<(PathBuf, u64, u64)>,
    created_dirs: Vec<PathBuf>,
}

impl Swap {
    /// Keep what is replaced, then move the staged files in. On failure everything is put back
    /// (the error says whether that worked).
    pub fn apply(data: &Dir, staging: &Dir, plan: &Plan, journal: &mut Journal) -> Result<Swap> {
        let mut plan = plan.clone();
        plan.survey(data)?;
        let plan = &plan;
        journal.record(data, plan)?;
        let safety = data.mkdir(&plan.safety, 0o700)?;
        let mut swap =
            Swap { safety, name: plan.safety.clone(), kept: vec![], placed: vec![], created_dirs: vec![] };
        match swap.run(data, staging, plan) {
            Ok(()) => Ok(swap),
            Err(e) => Err(swap.undo(data, e, journal)),
        }
    }

    /// Roll back after `e`, and say how that went: the error to report. When putting things
    /// back fails, the journal stays for the next run (and the operator) to finish it.
    pub fn undo(&self, data: &Dir, e: Error, journal: &mut Journal) -> Error {
        match self.rollback(data) {
            Ok(()) => {
                self.discard_if_empty(data);
                let hint =
                    e.hint.clone().unwrap_or_else(|| "fix the cause above and run the restore again".into());
                Error::new(e.kind, format!("{}; the data directory was put back as it was", e.chain()))
                    .hint(hint)
            }
            Err(r) => {
                journal.keep = true;
                Error::failed(format!(
                    "{}; putting the data directory back failed too: {}",
                    e.chain(),
                    r.chain()
                ))
                .hint(format!(
                    "the replaced files are kept in {}: move them back by hand before starting the server",
                    data.display(&self.name).display()
                ))
            }
        }
    }

    fn run(&mut self, data: &Dir, staging: &Dir, plan: &Plan) -> Result<()> {
        for (rel, (uid, gid, mode)) in &plan.new_dirs {
            let (parent, name) = split(rel)?;
            let d = data.walk(parent, None)?.mkdir(name, *mode)?;
            self.created_dirs.push(rel.clone());
            d.chown(*uid, *gid)?;
        }
        for rel in &plan.aside {
            let (parent, name) = split(rel)?;
            let keep = self.safety.walk(parent, Some(0o700))?;
            data.walk(parent, None)?.rename_new(name, &keep, name)?;
            self.kept.push(Kept::Moved(rel.clone()));
        }
        for f in plan.files.iter().filter(|f| f.replaces) {
            let (parent, name) = split(&f.rel)?;
            let keep = self.safety.walk(parent, Some(0o700))?;
            data.walk(parent, None)?.link(name, &keep, name)?;
            self.kept.push(Kept::Linked(f.rel.clone()));
        }
        self.safety.sync()?;
        crate::fault::point("swap.kept")?;
        crate::fault::pause("swap-kept");
        for f in &plan.files {
            let (parent, name) = split(&f.rel)?;
            let from = staging.walk(parent, None)?;
            let now = from.meta(name)?;
            if now.is_none() || now.zip(f.staged).is_none_or(|(n, s)| !n.same(&s) || n.kind != Kind::File) {
                return Err(Error::failed(format!(
                    "the staged copy of {} was changed after it was verified",
                    f.rel.display()
                ))
                .hint("something else writes in the data directory (a process in the container?); stop it and run the restore again"));
            }
            let to = data.walk(parent, None)?;
            from.rename(name, &to, name)?;
            let now = now.expect("checked above");
            self.placed.push((f.rel.clone(), now.dev, now.ino));
            to.sync()?;
            crate::fault::point("swap.placed-one")?;
        }
        data.sync()
    }

    /// Put back what the swap replaced. The restored files (and any `-wal`/`-shm`/`-journal` a
    /// server made beside them) go into `<safety>/failed-restore/`, not away. Every step is
    /// tried; the error lists the ones that failed.
    /// Each step looks at what is there first, so that a rollback killed half-way can be run
    /// again from the journal and finish the job.
    pub fn rollback(&self, data: &Dir) -> Result<()> {
        let mut problems = Vec::new();
        let failed = self.safety.walk(Path::new(FAILED), Some(0o700))?;
        for placed in self.placed.iter().rev() {
            if let Err(e) = self.unplace(data, &failed, placed) {
                problems.push(e.chain());
            }
        }
        for k in self.kept.iter().rev() {
            if let Kept::Moved(rel) = k {
                if let Err(e) = self.put_back(data, rel) {
                    problems.push(e.chain());
                }
            }
        }
        for rel in self.created_dirs.iter().rev() {
            let r = split(rel).and_then(|(p, n)| match data.walk(p, None)?.meta(n)? {
                Some(_) => data.walk(p, None)?.rmdir(n),
                None => Ok(()),
            });
            if let Err(e) = r {
                problems.push(e.chain());
            }
        }
        drop(failed);
        // Nothing restored was kept: no empty directory stays behind.
        let _ = self.safety.rmdir(OsStr::new(FAILED));
        let _ = data.sync();
        if problems.is_empty() {
            Ok(())
        } else {
            Err(Error::failed(problems.join("; ")))
        }
    }

    /// Undo one placed file: keep it (and sidecars made beside it) in `failed`, put the old one
    /// back. Only while the file there is still the restored one.
    fn unplace(&self, data: &Dir, failed: &Dir, (rel, dev, ino): &(PathBuf, u64, u64)) -> Result<()> {
        let (parent, name) = split(rel)?;
        let here = data.walk(parent, None)?;
        let now = here.meta(name)?;
        if !now.is_some_and(|m| m.dev == *dev && m.ino == *ino) {
            // Already undone (a rollback killed after this step), or replaced by something else.
            return Ok(());
        }
        let post_mortem = failed.walk(parent, Some(0o700))?;
        for suffix in sqlite::SIDECAR_SUFFIXES {
            // A sidecar here now was made after the swap (a server), unless the restore placed it.
            let side = with_suffix(name, suffix);
            if here.meta(&side)?.is_some() && !self.placed.iter().any(|p| p.0 == parent.join(&side)) {
                here.rename(&side, &post_mortem, &side)?;
            }
        }
        let linked = self.kept.iter().any(|k| matches!(k, Kept::Linked(r) if r == rel));
        if !linked {
            return here.rename_new(name, &post_mortem, name);
        }
        // A rollback killed between these two steps left the link: it is not made twice.
        let kept = post_mortem.meta(name)?;
        if !kept.zip(now).is_some_and(|(k, n)| k.same(&n)) {
            here.link(name, &post_mortem, name)?;
        }
        crate::fault::point("rollback.linked")?;
        self.safety.walk(parent, None)?.rename(name, &here, name)
    }

    /// Move an entry that was moved out of the way back, unless that was done already.
    fn put_back(&self, data: &Dir, rel: &Path) -> Result<()> {
        let (parent, name) = split(rel)?;
        let Some(from) = existing_dir(&self.safety, parent)? else { return Ok(()) };
        if from.meta(name)?.is_none() {
            return Ok(());
        }
        from.rename_new(name, &data.walk(parent, None)?, name)
    }

    /// What shows that a process used a database during the swap: one holds a restored
    /// database or a replaced one open, or SQLite files appeared beside a restored database that
    /// the restore did not place (a server's `-wal` of the replaced database would corrupt the
    /// restored one on its next open). Empty when there is none.
    pub fn intruders(&self, data: &Dir) -> Result<Vec<String>> {
        let mut found = Vec::new();
        for (rel, _, _) in &self.placed {
            let (parent, name) = split(rel)?;
            let here = data.walk(parent, None)?;
            if here.meta(name)?.is_none_or(|m| m.kind != Kind::File) || !sqlite::is_database(&here, name)? {
                continue;
            }
            for suffix in sqlite::SIDECAR_SUFFIXES {
                let side = with_suffix(name, suffix);
                if here.meta(&side)?.is_some() && !self.placed.iter().any(|p| p.0 == parent.join(&side)) {
                    found.push(format!(
                        "{} appeared beside the restored database",
                        here.display(&side).display()
                    ));
                }
            }
            let mut paths = vec![here.display(name)];
            if self.kept.iter().any(|k| matches!(k, Kept::Linked(r) if r == rel)) {
                paths.push(self.safety.path().join(rel));
            }
            for p in paths {
                if let Some(h) = sqlite::in_use(&p)? {
                    found.push(format!("process {} has {} open", h.pid, h.file.display()));
                }
            }
        }
        Ok(found)
    }

    /// The entries that were moved out of the way (relative to the data directory).
    pub fn moved_aside(&self) -> Vec<PathBuf> {
        self.kept
            .iter()
            .filter_map(|k| match k {
                Kept::Moved(r) => Some(r.clone()),
                Kept::Linked(_) => None,
            })
            .collect()
    }

    /// The safety directory, opened (what the swap replaced is kept in it).
    pub fn kept(&self) -> &Dir {
        &self.safety
    }

    /// Whether anything was kept (the safety directory holds something).
    pub fn kept_anything(&self) -> bool {
        !self.kept.is_empty()
    }

    /// Where what was replaced is kept (None when nothing was).
    pub fn safety_dir(&self) -> Option<PathBuf> {
        self.kept_anything().then(|| self.safety.path().to_path_buf())
    }

    /// After a rollback: the safety directory goes when nothing is left in it.
    fn discard_if_empty(&self, data: &Dir) {
        if self.safety.entries().is_ok_and(|e| e.is_empty()) {
            let _ = self.discard(data);
        }
    }

    /// Remove the safety directory (the swap is final, or nothing was kept).
    pub fn discard(&self, data: &Dir) -> Result<()> {
        let now = data.meta(&self.name)?;
        if now.is_some_and(|n| self.safety.self_meta().is_ok_and(|s| s.same(&n))) {
            data.remove_all(&self.name)?;
        }
        Ok(())
    }
}

/// Where the swap takes the restored files from: the private staging directory they were
/// verified in, when it is on the data directory's mount (a rename moves them in); otherwise a
/// staging directory inside the data directory that they are copied into first (after a check
/// for room). Either way the staged files get their owner and mode here.
pub fn place(private: &Staging, data: &Dir, plan: &mut Plan) -> Result<Option<Staging>> {
    plan.prepare(private.dir())?;
    let same = matches!((private.dir().mount_id(), data.mount_id()), (Some(a), Some(b)) if a == b);
    if same {
        return Ok(None);
    }
    let _ = staging::sweep(data, RESTORE_PREFIX, true);
    let need: u64 = plan.files.iter().filter_map(|f| f.staged.map(|m| m.size)).sum();
    data.ensure_room(
        need,
        (plan.files.len() + plan.new_dirs.len()) as u64,
        "for the restored files",
        "free some space on the data directory's filesystem, then run the restore again",
    )?;
    let local = Staging::create(data, RESTORE_PREFIX)?;
    for f in &plan.files {
        let (parent, name) = split(&f.rel)?;
        let mut from = private.dir().walk(parent, None)?.open_file(name)?;
        let mut to = local.dir().walk(parent, Some(0o700))?.create_file(name, 0o600)?;
        std::io::copy(&mut from, &mut to)
            .map_err(|e| Error::io("cannot copy into", &local.dir().display(&f.rel), e))?;
    }
    plan.prepare(local.dir())?;
    Ok(Some(local))
}

/// Where a rollback keeps the restored files, inside the safety directory.
const FAILED: &str = "failed-restore";

/// The prefix of the staging directory a restore makes inside a data directory.
pub const RESTORE_PREFIX: &str = ".kfadmin-restore-";

/// What a swap is about to do, written to the state directory before the first change and
/// removed after the last: a kfadmin killed in the middle (kill -9, OOM, power cut) leaves it,
/// and the next run (or the guardian) puts the data directory back as it was ([`recover`]).
/// Its owner holds the data directory's lock ([`owner_lock`]) from before it is written until
/// after it is removed: a journal whose lock is free is a dead run's.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct SwapJournal {
    /// For messages only: liveness is the lock's.
    pub pid: u32,
    pub data_dir: PathBuf,
    pub safety: PathBuf,
    /// (relative path, device, inode of the staged file that goes there, replaces a file)
    pub files: Vec<(PathBuf, u64, u64, bool)>,
    pub aside: Vec<PathBuf>,
    pub new_dirs: Vec<PathBuf>,
    #[serde(default)]
    pub phase: Phase,
}

/// Where a restore is, for a recovery after its owner died.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    /// Files are being swapped in: a dead run's swap is undone.
    #[default]
    Swapping,
    /// The swap is complete and a container is started on it: a dead run's restored data stays
    /// (the container's stop journal starts it again).
    Swapped,
    /// The container did not come up on the restored data, which is being put back: a dead
    /// run's rollback is finished.
    RollingBack,
}

/// The lock a journal's owner holds: the data directory's (every restore takes it first).
pub fn owner_lock(data_dir: &Path) -> crate::lock::Key {
    crate::lock::Key::dir("data directory", data_dir)
}

/// The journal of a restore in progress: written when the plan is made (before anything is
/// copied into the data directory), brought up to date right before the swap and at each
/// phase, removed when the restore ends, one way or the other (kept when putting things back
/// failed). Only while holding [`owner_lock`] of the data directory.
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    keep: bool,
    state: Option<SwapJournal>,
}

impl Journal {
    pub fn begin(data: &Dir, plan: &Plan) -> Result<Journal> {
        let mut j = Journal { path: journal_path(data.path()), keep: false, state: None };
        j.record(data, plan)?;
        Ok(j)
    }

    fn record(&mut self, data: &Dir, plan: &Plan) -> Result<()> {
        let j = SwapJournal::of(data, plan);
        j.write(&self.path)?;
        self.state = Some(j);
        Ok(())
    }

    /// The restore moved on: a recovery after this point does what `phase` says.
    pub fn phase(&mut self, phase: Phase) -> Result<()> {
        let Some(j) = self.state.as_mut() else { return Ok(()) };
        j.phase = phase;
        j.write(&self.path)
    }

    /// Putting things back failed: the journal stays for the next run (and the operator).
    pub fn keep(&mut self) {
        self.keep = true;
    }

    /// The swap is final: nothing for a later run to put back.
    pub fn finish(&mut self) {
        self.keep = false;
        let _ = std::fs::remove_file(&self.path);
    }
}

impl Drop for Journal {
    fn drop(&mut self) {
        if !self.keep {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

fn journal_path(data_dir: &Path) -> PathBuf {
    use sha2::Digest;
    let h = sha2::Sha256::digest(data_dir.as_os_str().as_encoded_bytes());
    crate::docker::state_dir().join(format!("swap-{}.json", &crate::fsutil::hex(&h)[..16]))
}

impl SwapJournal {
    fn of(data: &Dir, plan: &Plan) -> SwapJournal {
        SwapJournal {
            pid: std::process::id(),
            data_dir: data.path().to_path_buf(),
            safety: PathBuf::from(&plan.safety),
            files: plan
                .files
                .iter()
                .map(|f| {
                    let (dev, ino) = f.staged.map(|m| (m.dev, m.ino)).unwrap_or_default();
                    (f.rel.clone(), dev, ino, f.replaces)
                })
                .collect(),
            aside: plan.aside.clone(),
            new_dirs: plan.new_dirs.iter().map(|(d, _)| d.clone()).collect(),
            phase: Phase::Swapping,
        }
    }

    fn write(&self, path: &Path) -> Result<()> {
        let text = serde_json::to_vec(self).map_err(|e| {
            Error::failed(format!(
                "cannot record the restore of {} in kfadmin's state directory",
                self.data_dir.display()
            ))
            .source(e)
        })?;
        crate::fsutil::ensure_private_dir(&crate::docker::state_dir())?;
        crate::fsutil::write_atomic(path, &text, 0o600)
    }

    fn read(path: &Path) -> Option<SwapJournal> {
        std::fs::read(path).ok().and_then(|t| serde_json::from_slice(&t).ok())
    }

    /// Rebuild the swap from what is on disk and undo it. Under the data directory's lock.
    fn roll_back(&self) -> Result<()> {
        // A server started on the half-swapped data (a restart policy) must not have it changed
        // under it: that is for the operator now.
        if let Some(h) = crate::sqlite::in_use(&self.data_dir.join(DB_FILE))? {
            return Err(Error::failed(format!(
                "process {} has the database open; the data directory is half swapped under it",
                h.pid
            )));
        }
        let data = Dir::open(&self.data_dir)?;
        let _ = staging::sweep(&data, RESTORE_PREFIX, true);
        let name = self.safety.as_os_str();
        let Some(safety) =
            data.meta(name)?.filter(|m| m.kind == Kind::Dir).map(|_| data.open_dir(name)).transpose()?
        else {
            // Nothing was kept yet: at most new, empty directories were made.
            for d in self.new_dirs.iter().rev() {
                let _ = split(d).and_then(|(p, n)| data.walk(p, None)?.rmdir(n));
            }
            return Ok(());
        };
        let swap = self.rebuild(&data, safety, name)?;
        crate::fault::pause("recover-rebuilt");
        swap.rollback(&data)?;
        swap.discard_if_empty(&data);
        Ok(())
    }

    /// The swap as it is on disk: what is kept in the safety directory, which restored files are
    /// in place (by inode), which new directories exist.
    fn rebuild(&self, data: &Dir, safety: Dir, name: &OsStr) -> Result<Swap> {
        let exists = |dir: &Dir, rel: &Path| -> bool {
            split(rel).and_then(|(p, n)| dir.walk(p, None)?.meta(n)).ok().flatten().is_some()
        };
        let mut kept: Vec<Kept> =
            self.aside.iter().filter(|r| exists(&safety, r)).cloned().map(Kept::Moved).collect();
        kept.extend(
            self.files.iter().filter(|f| f.3 && exists(&safety, &f.0)).map(|f| Kept::Linked(f.0.clone())),
        );
        let placed = self
            .files
            .iter()
            .filter(|(rel, dev, ino, _)| {
                split(rel)
                    .and_then(|(p, n)| data.walk(p, None)?.meta(n))
                    .ok()
                    .flatten()
                    .is_some_and(|m| m.dev == *dev && m.ino == *ino)
            })
            .map(|f| (f.0.clone(), f.1, f.2))
            .collect();
        let created_dirs = self.new_dirs.iter().filter(|d| exists(data, d)).cloned().collect();
        Ok(Swap { safety, name: name.to_os_string(), kept, placed, created_dirs })
    }
}

/// The swap journals in the state directory.
fn journal_files() -> Vec<PathBuf> {
    let Ok(rd) = std::fs::read_dir(crate::docker::state_dir()) else { return vec![] };
    let mut v: Vec<PathBuf> = rd
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name().is_some_and(|n| {
                let n = n.to_string_lossy();
                n.starts_with("swap-") && n.ends_with(".json")
            })
        })
        .collect();
    v.sort();
    v
}

/// The journal at `path`, with the lock of its data directory held, when its owner is dead
/// (read again under the lock: the owner may have finished meanwhile). None when the owner (or
/// another run recovering it) holds the lock, or when nothing is left to recover.
fn take_dead(path: &Path) -> Result<Option<(SwapJournal, crate::lock::Held)>> {
    let Some(j) = SwapJournal::read(path) else { return Ok(None) };
    let Some(held) = crate::lock::try_hold(&owner_lock(&j.data_dir), "kfadmin (recovery of a restore)")?
    else {
        return Ok(None);
    };
    Ok(SwapJournal::read(path).map(|j| (j, held)))
}

/// Restores killed half-way that no run could put back yet: their journals (and journals
/// kfadmin cannot read).
pub fn pending() -> Vec<PathBuf> {
    journal_files()
        .into_iter()
        .filter(|p| match SwapJournal::read(p) {
            None => p.exists(),
            Some(j) => {
                crate::lock::try_hold(&owner_lock(&j.data_dir), "kfadmin status").ok().flatten().is_some()
            }
        })
        .collect()
}

/// Swaps that a killed kfadmin left half-done: put each data directory back as it was (or
/// finish its rollback), each under its data directory's lock; a journal whose lock is held
/// belongs to a live run and is left alone. Safe to call from any process at any time, and
/// again after being killed at any point. Returns what was done, for the operator; an error when
/// one cannot be put back (exit 4: act now).
pub fn recover() -> Result<Vec<String>> {
    let mut said = Vec::new();
    for p in journal_files() {
        if p.exists() && SwapJournal::read(&p).is_none() {
            said.push(format!("{} is not a journal kfadmin can read; look at it and remove it", p.display()));
            continue;
        }
        let (j, _held) = match take_dead(&p) {
            Ok(Some(t)) => t,
            Ok(None) => continue,
            Err(e) => {
                said.push(format!(
                    "cannot tell whether the restore of {} is still running: {}",
                    p.display(),
                    e.chain()
                ));
                continue;
            }
        };
        said.push(recover_one(&p, &j)?);
    }
    Ok(said)
}

/// Recover one dead run's restore, as its journal's phase says; the journal goes when done.
fn recover_one(p: &Path, j: &SwapJournal) -> Result<String> {
    let dir = j.data_dir.display();
    let kept = j.data_dir.join(&j.safety);
    if j.phase == Phase::Swapped {
        let _ = std::fs::remove_file(p);
        return Ok(format!(
            "a restore into {dir} (pid {}) was killed after its swap; the restored data stays (the replaced files are kept in {})",
            j.pid,
            kept.display()
        ));
    }
    j.roll_back().map_err(|e| {
        Error::new(
            crate::error::Kind::ContainerState,
            format!(
                "a restore into {dir} was killed half-way, and putting the data directory back failed: {}",
                e.chain()
            ),
        )
        .hint(format!(
            "act now: the replaced files are in {}; move them back before starting the server (the journal is {})",
            kept.display(),
            p.display()
        ))
    })?;
    let _ = std::fs::remove_file(p);
    let failed = kept.join(FAILED);
    Ok(format!(
        "a restore into {dir} (pid {}) was killed half-way; the data directory was put back as it was{}",
        j.pid,
        if failed.exists() {
            format!(" (the restored files are kept in {})", failed.display())
        } else {
            String::new()
        }
    ))
}
