//! Import a tarball made by hand (`tar czf` of Keyfount's data directory, or of its database
//! alone) as a verified kfadmin archive: unpack it privately under the archive reader's rules,
//! find the database, make it whole the way SQLite would on its next open (roll back a hot
//! `-journal`, replay the complete commit frames of a `-wal`, never its `-shm`), check it, and
//! archive the data directory (mode `imported`). A database that fails its checks is refused,
//! or with `salvage` what can still be read of it is archived, marked salvaged.

use std::ffi::OsStr;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::archive::manifest::{ImportRecord, Salvage, TarballRef, WalReplay, LEFT_OUT_MAX};
use crate::archive::tarball::{self, Item, Unpacked};
use crate::archive::writer::Compression;
use crate::archive::{Mode, Source};
use crate::crypto::Encryption;
use crate::error::{Error, Kind, Result};
use crate::fsutil::{self, Copied};
use crate::ops::make::{self, ArchiveSpec, Made};
use crate::ops::staging::{Staging, STAGING_PREFIX};
use crate::progress::Notice;
use crate::safedir::Dir;
use crate::sqlite::{self, wal, DB_FILE};

/// What to import, and where the archive goes.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    pub tarball: &'a Path,
    /// The database's file name in the tarball (`keyfount.db`).
    pub db_name: &'a str,
    pub salvage: bool,
    /// Salvage the database file alone, leaving its `-wal` out (with `salvage`).
    pub without_wal: bool,
    pub tmp_dir: Option<&'a Path>,
    pub out: &'a Path,
    /// The archive's name (checked); None: from the tarball's file name.
    pub name: Option<&'a str>,
    pub compression: Compression,
    pub nice: u8,
}

/// What an import did.
#[derive(Debug)]
pub struct Imported {
    pub record: ImportRecord,
    /// What is wrong with the database as the tarball holds it (empty: nothing).
    pub problems: Vec<String>,
    /// The archive; None when the database was refused.
    pub made: Option<Made>,
    pub warnings: Vec<String>,
}

pub fn import(n: &dyn Notice, req: &Request, encryption: &Encryption) -> Result<Imported> {
    let staging = Staging::private(req.tmp_dir, STAGING_PREFIX)?;
    let tree = staging.dir().mkdir(OsStr::new("tree"), 0o700)?;
    n.note(&format!("Reading {}", req.tarball.display()));
    let unpacked = tarball::unpack(req.tarball, &tree, n.progress())?;
    let db = find_database(&unpacked.items, req.db_name)?;
    let root = db.path.parent().unwrap_or(Path::new("")).to_path_buf();
    let mut warnings = Vec::new();
    let work = staging.dir().mkdir(OsStr::new("work"), 0o700)?;
    let work_db = staging.path().join("work").join(DB_FILE);
    let shm = take_out(&tree.walk(&root, None)?, &work, req.db_name)?;
    let whole = make_whole(&work, &work_db, &shm, read_order(&unpacked.items, &db.path), req.without_wal)?;
    let mut problems = whole.problems;
    let checked = if whole.unreadable { Vec::new() } else { check(&work_db) };
    let fails_checks = !checked.is_empty();
    problems.extend(checked);
    let (mut wal_left_out, mut wal) = (whole.wal_left_out, whole.wal);
    let mut source_db = work_db.clone();
    // The database file as captured, put back from what the replay overwrote (only now: a
    // full copy for every import with a -wal would double its disk space and time).
    let captured = match (&whole.undo, fails_checks) {
        (Some(undo), true) => Some(put_back(&work, undo)?),
        _ => None,
    };
    // Replayed, the database fails its checks; as the file holds it, it passes: the frames do
    // not fit this file. Never mix them in: salvage (or refuse) the file without them.
    if let (Some(captured), true, None) = (&captured, fails_checks, &wal_left_out) {
        if check(captured).is_empty() {
            let why =
                "with it replayed the database fails its checks, without it the database file passes them";
            let w = wal.as_mut().expect("a -wal was replayed");
            // First: the checks' problems below are of the mix, not of the file archived.
            problems.insert(0, not_this_databases(why, w));
            wal_left_out = Some(format!("the -wal is not this database file's: {why}"));
            source_db = captured.clone();
        }
    }
    if req.without_wal {
        match &wal_left_out {
            Some(left) => problems.push(format!("the -wal was {left}")),
            None => warnings.push(
                "--without-wal: the tarball has no -wal with a committed transaction to leave out".into(),
            ),
        }
    }
    let mut record = ImportRecord {
        tarball: tarball_ref(req.tarball, &unpacked),
        database: db.path.display().to_string(),
        data_dir: root.display().to_string(),
        wal,
        journal_rolled_back: whole.journal_rolled_back,
        left_out: Vec::new(),
        left_out_count: 0,
        salvaged: None,
    };
    if !problems.is_empty() && !req.salvage {
        return Ok(Imported { record, problems, made: None, warnings });
    }
    let db_file = if problems.is_empty() {
        work_db
    } else {
        n.warn(&format!("{} fails its checks; salvaging what can be read of it", db.path.display()));
        let fallback = captured.as_deref().filter(|_| wal_left_out.is_none());
        // The pages integrity_check named as cross-linked, when it checked the file salvaged.
        let also =
            if source_db == work_db { sqlite::salvage::second_references(&problems) } else { Vec::new() };
        let (salvaged, done) = salvage(&source_db, &db.path, fallback, &problems, &also, wal_left_out)?;
        if let Some(why) = &done.wal_left_out {
            warnings.push(format!("WAL LEFT OUT: {why}; the archive holds the database file without it"));
        }
        record.salvaged = Some(done);
        salvaged
    };
    let tree_root = staging.path().join("tree").join(&root);
    other_databases(&tree, &tree_root, &unpacked.items, &root)?;
    let (staged, left_out) = stage(&unpacked.items, db, &root, req.db_name, &tree_root, db_file);
    record.left_out_count = left_out.len() as u64;
    record.left_out = left_out.into_iter().take(LEFT_OUT_MAX).collect();
    warnings.extend(outside_warning(&record.left_out, &root));
    let name = match req.name {
        Some(n) => n.to_string(),
        None => default_name(req.tarball),
    };
    let spec = ArchiveSpec {
        out: req.out,
        name: &name,
        mode: Mode::Imported,
        source: source(req.tarball),
        created: created(&unpacked.items, req.tarball),
        compression: req.compression,
        nice: req.nice,
    };
    let made = make::make_with(n, &spec, Some(record.clone()), encryption, &staged)?;
    Ok(Imported { record, problems, made: Some(made), warnings })
}

/// The warning for entries outside the data directory (SQLite's sidecars inside it are left
/// out as a matter of course).
fn outside_warning(left_out: &[String], root: &Path) -> Option<String> {
    let outside: Vec<&str> =
        left_out.iter().filter(|p| !Path::new(p).starts_with(root)).map(|p| p.as_str()).collect();
    if outside.is_empty() {
        return None;
    }
    let dir = if root.as_os_str().is_empty() {
        "(the top of the tarball)".into()
    } else {
        root.display().to_string()
    };
    let more = if outside.len() > 3 { ", …" } else { "" };
    Some(format!(
        "entries outside the data directory {dir} are not in the archive: {}{more}",
        outside[..outside.len().min(3)].join(", ")
    ))
}

/// The one file named `db_name`; exit 2 naming what there is when there is none, or several.
fn find_database<'a>(items: &'a [Item], db_name: &str) -> Result<&'a Item> {
    // Not the copies kfadmin's own restores keep (`.kfadmin-pre-restore-*`).
    let ours = |i: &Item| i.path.components().any(|c| c.as_os_str().as_bytes().starts_with(b".kfadmin-"));
    let named: Vec<&Item> = items
        .iter()
        .filter(|i| !i.dir && i.path.file_name() == Some(OsStr::new(db_name)) && !ours(i))
        .collect();
    match named.as_slice() {
        [one] => Ok(one),
        [] => {
            let files: Vec<String> =
                items.iter().filter(|i| !i.dir).take(10).map(|i| i.path.display().to_string()).collect();
            let more = items.iter().filter(|i| !i.dir).count().saturating_sub(files.len());
            let tail = if more > 0 { format!(" and {more} more") } else { String::new() };
            Err(Error::usage(format!("the tarball holds no {db_name}; it holds {}{tail}", files.join(", ")))
                .hint("pass the name of the database file with --db-name NAME, or the right tarball"))
        }
        many => {
            let all: Vec<String> = many.iter().map(|i| i.path.display().to_string()).collect();
            Err(Error::usage(format!(
                "the tarball holds {} files named {db_name}: {}",
                all.len(),
                all.join(", ")
            ))
            .hint("make a tarball of the one data directory to import"))
        }
    }
}

/// What was done to the database before it was checked.
struct Whole {
    wal: Option<WalReplay>,
    /// Why the `-wal` was not replayed, when it was not (on request, or not this database's).
    wal_left_out: Option<String>,
    /// What the replay of the `-wal` overwrote in the database file (when frames were).
    undo: Option<Undo>,
    journal_rolled_back: bool,
    problems: Vec<String>,
    /// SQLite cannot open the database at all (its checks would only say so again).
    unreadable: bool,
}

/// Move the database and its `-wal`/`-journal` out of the unpacked tree into `work`, as
/// `keyfount.db…`; its `-shm` stays there: its first bytes are returned, never used to replay.
fn take_out(root: &Dir, work: &Dir, db_name: &str) -> Result<Vec<u8>> {
    let side = |s: &str| std::ffi::OsString::from(format!("{db_name}{s}"));
    let present = |n: &OsStr| -> Result<bool> {
        Ok(root.meta(n)?.is_some_and(|m| m.kind == crate::safedir::Kind::File))
    };
    root.rename(OsStr::new(db_name), work, OsStr::new(DB_FILE))?;
    for s in ["-wal", "-journal"] {
        if present(&side(s))? {
            root.rename(&side(s), work, OsStr::new(&format!("{DB_FILE}{s}")))?;
        }
    }
    if present(&side("-shm"))? {
        read_head(root, &side("-shm"))
    } else {
        Ok(Vec::new())
    }
}

/// The pages of the database file that a replay of the `-wal` overwrites or cuts off, kept
/// (in `work/undo`, in this order) as they were, and the file's length: enough to put the
/// database file back as the tarball held it (its hot journal rolled back). That copy tells
/// whether the `-wal` fits the file, and is what `--salvage` falls back on. At most the size
/// of the `-wal` (plus what a shrinking commit cuts off).
struct Undo {
    len: u64,
    page_size: u64,
    pages: Vec<u32>,
}

fn keep_undo(work: &Dir, scan: &wal::Scan) -> Result<Undo> {
    use std::io::Write;
    use std::os::unix::fs::FileExt;
    let db = work.open_file(OsStr::new(DB_FILE))?;
    let read = |e| Error::io("cannot read", &work.display(DB_FILE), e);
    let len = db.metadata().map_err(read)?.len();
    let page_size = u64::from(scan.page_size);
    let whole = u32::try_from(len / page_size).unwrap_or(u32::MAX);
    let mut pages: Vec<u32> = scan.pages.iter().copied().filter(|&p| p <= whole).collect();
    pages.extend(scan.db_pages.saturating_add(1)..=whole);
    pages.sort_unstable();
    pages.dedup();
    let name = OsStr::new("undo");
    let mut out = std::io::BufWriter::new(work.create_file(name, 0o600)?);
    let mut page = vec![0u8; page_size as usize];
    for &p in &pages {
        db.read_exact_at(&mut page, u64::from(p - 1) * page_size).map_err(read)?;
        out.write_all(&page).map_err(|e| Error::io("cannot write", &work.display(name), e))?;
    }
    out.into_inner()
        .map_err(|e| Error::io("cannot write", &work.display(name), e.into_error()))?
        .sync_data()
        .map_err(|e| Error::io("cannot write", &work.display(name), e))?;
    Ok(Undo { len, page_size, pages })
}

/// The database file as captured: a copy of the replayed one with the kept pages put back.
fn put_back(work: &Dir, undo: &Undo) -> Result<PathBuf> {
    use std::os::unix::fs::FileExt;
    let name = OsStr::new("captured.db");
    let shown = work.display(name);
    let copy = work.create_file(name, 0o600)?;
    let write = |e| Error::io("cannot write", &shown, e);
    let to = copy.try_clone().map_err(write)?;
    fsutil::clone_or_copy(work.open_file(OsStr::new(DB_FILE))?, copy, &shown)?;
    let kept = work.open_file(OsStr::new("undo"))?;
    let mut page = vec![0u8; undo.page_size as usize];
    for (i, &p) in undo.pages.iter().enumerate() {
        kept.read_exact_at(&mut page, i as u64 * undo.page_size)
            .map_err(|e| Error::io("cannot read", &work.display("undo"), e))?;
        to.write_all_at(&page, u64::from(p - 1) * undo.page_size).map_err(write)?;
    }
    to.set_len(undo.len).map_err(write)?;
    Ok(work.path().join(name))
}

/// Roll back a hot journal, replay the WAL's committed frames (after the `-shm`, when there is
/// one, was compared with the `-wal` and the database).
fn make_whole(work: &Dir, work_db: &Path, shm: &[u8], order: Order, without_wal: bool) -> Result<Whole> {
    let mut w = Whole {
        wal: None,
        wal_left_out: None,
        undo: None,
        journal_rolled_back: false,
        problems: Vec::new(),
        unreadable: false,
    };
    let Ok(info) = sqlite::inspect(work_db) else {
        // Named by the caller as the tarball's member, never by the private staging path.
        let why = "it is not a database SQLite can open: it is empty, not SQLite, or its header is damaged";
        w.problems.push(why.into());
        w.unreadable = true;
        return Ok(w);
    };
    let wal_name = OsStr::new("keyfount.db-wal");
    let scan = match work.meta(wal_name)? {
        Some(m) => {
            let file = work.open_file(wal_name)?;
            let read = |e| Error::io("cannot read", &work.display(wal_name), e);
            let scan = wal::scan(&file, m.size, info.page_size).map_err(read)?;
            w.problems.extend(wal::damage(&file, m.size, &scan).map_err(read)?.map(damage_problem));
            Some(scan)
        }
        None => None,
    };
    if !shm.is_empty() {
        w.problems.extend(witness(work, scan.as_ref(), shm, order)?);
    }
    w.journal_rolled_back = sqlite::roll_back_journal(work_db)?;
    if let Some(scan) = &scan {
        w.wal = Some(replay_record(scan));
        let foreign = match scan.valid > 0 && !without_wal {
            true => {
                let (db, log) = (work.open_file(OsStr::new(DB_FILE))?, work.open_file(wal_name)?);
                wal::page1_problem(&db, &log, scan)
                    .map_err(|e| Error::io("cannot read", &work.display(wal_name), e))?
            }
            false => None,
        };
        if !scan.header_ok {
            work.unlink(wal_name)?;
        } else if without_wal && scan.valid > 0 {
            let record = w.wal.as_mut().expect("just set");
            (record.folded, record.transactions, record.dropped) = (0, 0, record.frames);
            record.dropped_because = "left out on request (--without-wal)".into();
            w.wal_left_out = Some(format!(
                "left out on request (--without-wal): its {} committed transaction(s) are not in the archive",
                scan.commits
            ));
            work.unlink(wal_name)?;
        } else if let Some(why) = foreign {
            let record = w.wal.as_mut().expect("just set");
            w.problems.push(not_this_databases(&why, record));
            w.wal_left_out = Some(format!("the -wal is not this database file's: {why}"));
            work.unlink(wal_name)?;
        } else if work.meta(wal_name)?.is_some() {
            if scan.valid > 0 {
                w.undo = Some(keep_undo(work, scan)?);
            }
            match sqlite::replay_wal(work_db) {
                Ok(n) if n == scan.valid => {}
                Ok(n) => {
                    return Err(Error::failed(format!(
                    "SQLite replayed {n} frame(s) of the -wal where kfadmin counted {}; nothing was written",
                    scan.valid
                ))
                    .hint("this is a bug in kfadmin: please report it with the tarball's -wal"))
                }
                Err(e) => w.problems.push(format!("the -wal cannot be replayed: {}", e.chain())),
            }
        }
    }
    Ok(w)
}

/// The problem of a `-wal` whose frames do not fit the database file (`why`), and its record
/// made to say that nothing of it was replayed.
fn not_this_databases(why: &str, record: &mut WalReplay) -> String {
    let lost = record.transactions;
    (record.folded, record.transactions, record.dropped) = (0, 0, record.frames);
    record.dropped_because = format!("not this database file's: {why}");
    format!(
        "the -wal is not this database file's (another database's, a mix of two, or of another moment): {why}; its {lost} committed transaction(s) are not replayed, never mixed in (--salvage archives the database file without it)"
    )
}

/// Why a `-wal` damaged in the middle is refused: replaying it would lose committed work.
fn damage_problem(d: wal::Damage) -> String {
    let place = match d.at {
        0 => "in its header".to_string(),
        n => format!("at frame {n}"),
    };
    format!(
        "the -wal is damaged {place}, and frames after it still verify (damage, not a torn end): replaying it would lose {} committed transaction(s)",
        d.lost_commits
    )
}

/// The first bytes of a file (enough for a wal-index header).
fn read_head(dir: &Dir, name: &OsStr) -> Result<Vec<u8>> {
    let mut head = Vec::new();
    dir.open_file(name)?
        .take(136)
        .read_to_end(&mut head)
        .map_err(|e| Error::io("cannot read", &dir.display(name), e))?;
    Ok(head)
}

/// In which order tar read the files (the order of their entries).
#[derive(Debug, Clone, Copy, Default)]
struct Order {
    /// The `-shm` came after both the database and the `-wal`.
    shm_last: bool,
    /// The `-wal` came before the database.
    wal_first: bool,
}

fn read_order(items: &[Item], db: &Path) -> Order {
    let at = |suffix: &str| {
        let mut p = db.as_os_str().to_os_string();
        p.push(suffix);
        items.iter().position(|i| i.path.as_os_str() == p)
    };
    let (d, w, m) = (at(""), at("-wal"), at("-shm"));
    Order { shm_last: m > d && m > w, wal_first: w.is_some() && w < d }
}

/// Why the captured `-shm` says the database and `-wal` are not one moment of the server.
///
/// Accepted: a `-shm` that tells exactly the story of the `-wal` (a server that had crashed,
/// or wrote nothing while tar read the files), with a database holding what the checkpoint it
/// records wrote. Also accepted: tar read the `-wal`, then the database, then the `-shm`, and
/// the `-shm` is of the same use of the `-wal` file and no checkpoint had gone past the
/// captured frames by then: whatever a checkpoint wrote while the database was read is among
/// the frames replayed over it. Anything else is refused.
fn witness(work: &Dir, scan: Option<&wal::Scan>, shm: &[u8], order: Order) -> Result<Option<String>> {
    let live = |why: String| {
        Some(format!("the files were captured at different moments while a server wrote them: {why}"))
    };
    let shm = match wal::read_shm(shm) {
        Ok(s) => s,
        Err(why) => return Ok(live(why)),
    };
    let problem = wal::shm_problem(scan, &shm);
    let Some(scan) = scan else { return Ok(problem.and_then(live)) };
    if let Some(why) = problem {
        let proven = order.shm_last
            && order.wal_first
            && shm.salts == scan.salts
            && shm.valid >= scan.valid
            && shm.attempted <= scan.valid;
        return Ok(if proven { None } else { live(why) });
    }
    let db = work.open_file(OsStr::new(DB_FILE))?;
    let log = work.open_file(OsStr::new("keyfount.db-wal"))?;
    let found = wal::backfill_problem(&db, &log, scan, &shm)
        .map_err(|e| Error::io("cannot read", &work.display(DB_FILE), e))?;
    Ok(found.and_then(live))
}

fn replay_record(s: &wal::Scan) -> WalReplay {
    WalReplay {
        frames: s.frames,
        folded: s.valid,
        dropped: s.dropped(),
        transactions: s.commits,
        dropped_because: s.stop.clone(),
    }
}

/// `PRAGMA integrity_check` and `foreign_key_check`: what is wrong.
fn check(db: &Path) -> Vec<String> {
    let conn = match sqlite::open_immutable(db) {
        Ok(c) => c,
        Err(e) => return vec![e.chain()],
    };
    let mut problems = match sqlite::check(&conn, true) {
        Ok(p) => p.into_iter().map(|p| format!("integrity_check: {p}")).collect(),
        Err(e) => vec![format!("integrity_check: {}", e.chain())],
    };
    match sqlite::foreign_key_check(&conn) {
        Ok(p) => problems.extend(p.into_iter().map(|p| format!("foreign_key_check: {p}"))),
        Err(e) => problems.push(format!("foreign_key_check: {}", e.chain())),
    }
    if problems.len() > PROBLEMS_MAX {
        let more = problems.len() - PROBLEMS_MAX;
        problems.truncate(PROBLEMS_MAX);
        problems.push(format!("… and {more} more"));
    }
    problems
}

/// At most this many problems are reported (integrity_check stops at 100 by itself).
const PROBLEMS_MAX: usize = 200;

/// Copy what can be read of `db` into a new database beside it; it must pass the checks. When
/// not even its schema can be read, what can be read of the `captured` file (the database as
/// the tarball held it, without its `-wal`).
fn salvage(
    db: &Path,
    member: &Path,
    captured: Option<&Path>,
    problems: &[String],
    crossed: &[u32],
    mut wal_left_out: Option<String>,
) -> Result<(PathBuf, Salvage)> {
    let out = db.with_file_name("salvaged.db");
    let wal = sqlite::inspect(db).is_ok_and(|i| i.journal == sqlite::Journal::Wal);
    let mut problems: Vec<String> = problems.iter().take(LEFT_OUT_MAX).cloned().collect();
    // Messages name the tarball's member, never the private staging copies.
    let named = |e: Error| {
        let mut text = e.chain();
        for copy in [Some(db), captured].into_iter().flatten() {
            text = text.replace(&copy.display().to_string(), &member.display().to_string());
        }
        text
    };
    let s = match (sqlite::salvage::salvage(db, &out, wal, crossed), captured) {
        (Err(e), Some(c)) if e.kind == Kind::Verification => {
            let _ = std::fs::remove_file(&out);
            problems
                .push(format!("{}; salvaged from the database file as captured, without its -wal", named(e)));
            wal_left_out = Some("with its -wal replayed the database cannot be read".into());
            sqlite::salvage::salvage(c, &out, wal, &[])
        }
        (s, _) => s,
    };
    let s = s.map_err(|e| match e.kind {
        Kind::Verification => Error::verification(named(e)).hint(NOTHING_SALVAGED),
        _ => e,
    })?;
    if s.tables.is_empty() {
        let why = format!("nothing of {} can be salvaged: not one table of it can be read", member.display());
        return Err(Error::verification(why).hint(NOTHING_SALVAGED));
    }
    let still = check(&out);
    if !still.is_empty() {
        return Err(Error::verification(format!(
            "even the salvaged copy of the database fails its checks: {}",
            still.join("; ")
        ))
        .hint("nothing was written; the tarball's data cannot be recovered by kfadmin"));
    }
    problems.extend(s.skipped.into_iter().map(|s| format!("not recreated: {s}")));
    let salvage = Salvage {
        method: "row-copy".into(),
        problems,
        tables: s.tables,
        wal_left_out,
        cross_linked_pages: s.cross_linked_pages,
    };
    Ok((out, salvage))
}

const NOTHING_SALVAGED: &str = "nothing was written; keep the tarball: a tool that reads pages directly (the sqlite3 shell's .recover, where its library has the sqlite_dbpage table) may get more out of it";

/// The other databases of the data directory (not Keyfount's, which was handled) made whole
/// the way a cold backup does it, from their WAL alone: every `-shm` goes first, and so does a
/// `-wal` or `-journal` with no database beside it (none of them is archived).
fn other_databases(tree: &Dir, tree_root: &Path, items: &[Item], root: &Path) -> Result<()> {
    let files: std::collections::HashSet<&Path> =
        items.iter().filter(|i| !i.dir).map(|i| i.path.as_path()).collect();
    for i in items.iter().filter(|i| !i.dir && i.path.starts_with(root)) {
        let name = i.path.file_name().unwrap_or_default().as_bytes();
        let base = ["-wal", "-journal"].iter().find_map(|s| name.strip_suffix(s.as_bytes()));
        let lone =
            base.is_some_and(|b| !files.contains(i.path.with_file_name(OsStr::from_bytes(b)).as_path()));
        if name.ends_with(b"-shm") || lone {
            let dir = tree.walk(i.path.parent().unwrap_or(Path::new("")), None)?;
            if dir.meta(OsStr::from_bytes(name))?.is_some() {
                dir.unlink(OsStr::from_bytes(name))?;
            }
        }
    }
    sqlite::make_whole(tree_root).map(drop)
}

/// The files to archive (the database first, as `keyfount.db`, then the data directory's other
/// files and its directories) and the entries left out.
fn stage(
    items: &[Item],
    db: &Item,
    root: &Path,
    db_name: &str,
    tree_root: &Path,
    db_file: PathBuf,
) -> (Vec<Copied>, Vec<String>) {
    let copied = |rel: PathBuf, staged: PathBuf, i: &Item| Copied {
        rel,
        staged,
        mode: i.mode & 0o777,
        uid: i.uid,
        gid: i.gid,
        reflinked: false,
        dir: i.dir,
    };
    let mut staged = vec![copied(PathBuf::from(DB_FILE), db_file, db)];
    let top = items.iter().find(|i| i.dir && i.path == root).cloned();
    let top = top.unwrap_or(Item { path: root.to_path_buf(), dir: true, mode: 0o700, ..db.clone() });
    staged.push(copied(PathBuf::new(), tree_root.to_path_buf(), &top));
    let mut left_out = Vec::new();
    for i in items.iter().filter(|i| i.path != db.path && !(i.dir && i.path == root)) {
        match i.path.strip_prefix(root) {
            Ok(rel) if carried(rel, db_name) => {
                staged.push(copied(rel.to_path_buf(), tree_root.join(rel), i))
            }
            _ => left_out.push(i.path.display().to_string()),
        }
    }
    (staged, left_out)
}

/// Whether an entry of the data directory goes into the archive: not SQLite's sidecars (the
/// WALs were replayed, journals rolled back) nor anything inside something named like one,
/// not kfadmin's own `.kfadmin-*` entries, not a second `keyfount.db` when the database had
/// another name.
fn carried(rel: &Path, db_name: &str) -> bool {
    let odd = rel.components().any(|c| {
        let name = c.as_os_str().as_bytes();
        name.starts_with(b".kfadmin-")
            || sqlite::SIDECAR_SUFFIXES.iter().any(|s| name.ends_with(s.as_bytes()))
    });
    let shadow = rel.starts_with(DB_FILE) && db_name != DB_FILE;
    !odd && !shadow
}

fn tarball_ref(path: &Path, u: &Unpacked) -> TarballRef {
    TarballRef {
        file_name: path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
        size: u.bytes,
        sha256: u.sha256.clone(),
    }
}

fn source(tarball: &Path) -> Source {
    let abs = std::fs::canonicalize(tarball)
        .or_else(|_| std::path::absolute(tarball))
        .unwrap_or(tarball.to_path_buf());
    Source {
        kind: "tarball".into(),
        path: abs.display().to_string(),
        host: fsutil::hostname(),
        container: None,
        mounts: vec![],
    }
}

/// When the data is from: the newest modification time of a file in the tarball (a WAL
/// server's database file is as old as its last checkpoint; its `-wal` is newer), or the
/// tarball's own when no header has one.
fn created(items: &[Item], tarball: &Path) -> SystemTime {
    if let Some(newest) = items.iter().filter(|i| !i.dir).map(|i| i.mtime).max().filter(|m| *m > 0) {
        return UNIX_EPOCH + Duration::from_secs(newest);
    }
    std::fs::metadata(tarball).and_then(|m| m.modified()).unwrap_or_else(|_| SystemTime::now())
}

/// The archive's name from the tarball's: `keyfount-2024-05-01.tar.gz` → `keyfount-2024-05-01`,
/// with anything but letters, digits, `-`, `_` and `.` made a `-`.
pub fn default_name(tarball: &Path) -> String {
    let file = tarball.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let mut stem = file.as_str();
    for ext in [".gz", ".tgz", ".tar"] {
        stem = stem.strip_suffix(ext).unwrap_or(stem);
    }
    let clean: String =
        stem.chars().map(|c| if c.is_ascii_alphanumeric() || "-_.".contains(c) { c } else { '-' }).collect();
    let clean = clean.trim_start_matches('.').chars().take(100).collect::<String>();
    if clean.is_empty() {
        "keyfount".into()
    } else {
        clean
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_from_tarballs() {
        assert_eq!(default_name(Path::new("/b/keyfount-2024-05-01.tar.gz")), "keyfount-2024-05-01");
        assert_eq!(default_name(Path::new("kf.tgz")), "kf");
        assert_eq!(default_name(Path::new("kf.tar")), "kf");
        assert_eq!(default_name(Path::new("my backup (old).tar.gz")), "my-backup--old-");
        assert_eq!(default_name(Path::new(".tar.gz")), "keyfount");
        assert!(make::check_name(&default_name(Path::new("..x y.tar.gz"))).is_ok());
    }

    #[test]
    fn what_is_carried() {
        assert!(carried(Path::new("keyfount.db"), "keyfount.db"));
        assert!(carried(Path::new("uploads/a.bin"), "keyfount.db"));
        assert!(!carried(Path::new("keyfount.db-wal"), "keyfount.db"));
        assert!(!carried(Path::new("keyfount.db-wal/x"), "keyfount.db"));
        assert!(!carried(Path::new("other.db-shm"), "keyfount.db"));
        assert!(!carried(Path::new(".kfadmin-pre-restore-x/keyfount.db"), "keyfount.db"));
        assert!(!carried(Path::new("keyfount.db"), "kf.sqlite"));
        assert!(!carried(Path::new("keyfount.db/x"), "kf.sqlite"));
    }
}
