//! Point-in-time chains (issue 18, docs/archive-format.md "Point-in-time chain"): follow a live
//! database's WAL and ship every commit into the repository ([`follow`]), rebuild the database
//! as of a time ([`rebuild`]), check a chain without materialising it ([`verify_chain`]) and
//! summarise the chains of a repository ([`chains`]).
//!
//! The follower never writes to the application's database or changes its settings: it reads
//! the `-wal` and the database file itself and holds a read transaction (a read mark) only while
//! it copies newly committed frames, so the server's own autocheckpoint keeps working.

use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rusqlite::config::DbConfig;
use rusqlite::{Connection, OpenFlags};
use serde::{Deserialize, Serialize};

use crate::archive::reader::{self, Options};
use crate::archive::writer::Compression;
use crate::archive::{Mode, Source};
use crate::crypto::Encryption;
use crate::error::{Error, IoContext, Result};
use crate::fsutil::{self, Copied};
use crate::ops::make::{self, ArchiveSpec};
use crate::ops::staging::{Staging, STAGING_PREFIX};
use crate::progress::Notice;
use crate::replicate::digest::Pages;
use crate::replicate::segment::{self, Decoded, Gap, Header, Record};
use crate::replicate::wal::{self, After, Pos};
use crate::sqlite;

mod compact;
mod rebase;
mod retain;

pub use compact::{compact, read_lease, Compacted};
pub use rebase::tell_followers;
pub use retain::{retain, Retained};

pub const FORMAT: &str = "kfadmin-chain";
pub const FORMAT_VERSION: u32 = 1;
/// The repository's directory of chains.
pub const PITR_DIR: &str = "pitr";
/// A commit read more than this long after the follower last knew the database is stamped too
/// late to keep "every transaction committed by T − 1 s is in the point of T": a gap.
const STAMP_WINDOW_US: u64 = 1_000_000;

/// At most this many bytes of pages are read per poll (whole transactions): what a poll holds
/// in memory (its pages, then the segment made of them). A poll that stops here reads on at
/// once, without waiting for the next interval.
const MAX_READ: u64 = 16 << 20;

/// `chain.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ChainInfo {
    pub format: String,
    pub format_version: u32,
    pub chain: String,
    pub created: String,
    pub source: String,
    pub host: String,
    pub base: String,
    pub base_sha256: String,
    pub page_size: u32,
    pub base_pages: u32,
    pub base_checksum: String,
    pub base_time_us: u64,
    pub wal: Option<Pos>,
}

/// `observed.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Observed {
    pub chain: String,
    pub txn: u64,
    pub time_us: u64,
}

pub fn now_us() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_micros() as u64).unwrap_or(0)
}

pub fn format_us(us: u64) -> String {
    humantime::format_rfc3339_micros(UNIX_EPOCH + Duration::from_micros(us)).to_string()
}

fn seg_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join("seg").join(segment::rel_path(seq))
}

fn read_info(dir: &Path) -> Result<ChainInfo> {
    let p = dir.join("chain.json");
    let text = std::fs::read(&p).ctx("cannot read", &p)?;
    let info: ChainInfo = serde_json::from_slice(&text)
        .map_err(|e| Error::verification(format!("{} cannot be read: {e}", p.display())))?;
    let plain_name = !info.base.is_empty() && !info.base.contains('/') && !info.base.starts_with('.');
    if !(512..=65536).contains(&info.page_size) || !info.page_size.is_power_of_two() || !plain_name {
        return Err(Error::verification(format!(
            "{} is not a chain kfadmin wrote (page size {}, base {:?})",
            p.display(),
            info.page_size,
            info.base
        )));
    }
    if info.format != FORMAT || info.format_version != FORMAT_VERSION {
        return Err(Error::verification(format!(
            "{} is of format {} version {}, not {FORMAT} version {FORMAT_VERSION}",
            p.display(),
            info.format,
            info.format_version
        )));
    }
    Ok(info)
}

/// The chain directories of a repository (complete ones: with a `chain.json`), oldest first.
pub fn chain_dirs(repo: &Path) -> Result<Vec<PathBuf>> {
    let root = repo.join(PITR_DIR);
    let mut out = Vec::new();
    let rd = match std::fs::read_dir(&root) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(Error::io("cannot read", &root, e)),
    };
    for e in rd {
        let e = e.ctx("cannot read", &root)?;
        let p = e.path();
        // `.removing-…`: a chain being removed (retention), out of sight.
        let hidden = e.file_name().to_string_lossy().starts_with('.');
        if !hidden && e.file_type().map(|t| t.is_dir()).unwrap_or(false) && p.join("chain.json").is_file() {
            out.push(p);
        }
    }
    out.sort();
    Ok(out)
}

/// The segments of a chain that have a final name, in order (`*.partial` files are not).
fn segment_files(dir: &Path) -> Result<Vec<(u64, PathBuf)>> {
    let mut out = Vec::new();
    let seg = dir.join("seg");
    let Ok(rd) = std::fs::read_dir(&seg) else { return Ok(out) };
    for sub in rd {
        let sub = sub.ctx("cannot read", &seg)?.path();
        let Ok(files) = std::fs::read_dir(&sub) else { continue };
        for f in files {
            let p = f.ctx("cannot read", &sub)?.path();
            let name = p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            if let Some(seq) = name.strip_suffix(".kfseg").and_then(|s| s.parse::<u64>().ok()) {
                out.push((seq, p));
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Remove what a killed follower left half-written in a chain (`*.partial`).
fn sweep_partials(dir: &Path) {
    let seg = dir.join("seg");
    let Ok(rd) = std::fs::read_dir(&seg) else { return };
    for sub in rd.flatten() {
        let Ok(files) = std::fs::read_dir(sub.path()) else { continue };
        for f in files.flatten() {
            if f.file_name().to_string_lossy().ends_with(".partial") {
                fsutil::remove_if_abandoned(&f.path());
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Walking a chain

/// A chain read in order, checked link by link: what was found, and where it broke.
#[derive(Debug, Clone, Serialize)]
pub struct ChainVerdict {
    pub chain: String,
    #[serde(serialize_with = "crate::commands::lossy::path")]
    pub dir: PathBuf,
    pub ok: bool,
    pub base: String,
    pub segments: u64,
    pub commits: u64,
    /// The first and last restorable times (RFC 3339), when there is any point.
    pub first: Option<String>,
    pub last: Option<String>,
    /// Until when the follower saw no other commit (observed.json).
    pub observed_until: Option<String>,
    pub gaps: Vec<GapReport>,
    /// What is wrong, when not ok: the first broken link; every point after it is unrestorable.
    pub problem: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct GapReport {
    pub from: String,
    pub to: String,
    pub reason: String,
}

/// Called for each commit record of a chain in order, with the running state.
struct Walk<'a> {
    info: ChainInfo,
    pages: Option<&'a mut Pages>,
    /// Segment files read, and their bytes (what compaction saves a restore).
    read_segments: u64,
    read_bytes: u64,
}

/// Check the segments of a chain in order (hash, `prev`, contiguous counters and checksums,
/// each commit's checksum against the running page digests when `pages` is given) and call
/// `each` per record; stop early when it returns false. Returns the last segment's header.
fn walk_chain(
    dir: &Path,
    w: &mut Walk,
    verdict: &mut ChainVerdict,
    mut each: impl FnMut(&Header, &Record, u64, &mut Option<&mut Pages>) -> Result<bool>,
) -> Result<Option<Header>> {
    let mut prev = w.info.base_sha256.clone();
    let mut txn = 0u64;
    let mut checksum = w.info.base_checksum.clone();
    let mut last: Option<Header> = None;
    let mut last_time = w.info.base_time_us;
    let mut size = w.info.base_pages;
    let mut want = 1u64;
    for (seq, path) in segment_files(dir)? {
        if seq < want {
            // Replaced by the merged segment before it (compaction removes it next).
            continue;
        }
        let fail = |verdict: &mut ChainVerdict, why: String| {
            verdict.ok = false;
            verdict.problem = Some(why);
        };
        if seq != want {
            fail(verdict, format!("segment {want} is missing (the next one found is {seq}); every point after it is unrestorable"));
            return Ok(last);
        }
        let bytes = std::fs::read(&path).ctx("cannot read", &path)?;
        w.read_segments += 1;
        w.read_bytes += bytes.len() as u64;
        let d: Decoded = match segment::decode(&bytes) {
            Ok(d) => d,
            Err(why) => {
                fail(
                    verdict,
                    format!(
                        "segment {seq} ({}): {why}; every point after it is unrestorable",
                        path.display()
                    ),
                );
                return Ok(last);
            }
        };
        let h = &d.header;
        let link = if h.chain != w.info.chain || h.seq != seq {
            Some(format!("it names chain {} segment {}", h.chain, h.seq))
        } else if h.prev != prev {
            Some("its predecessor's hash is not the one it records (a segment before it was changed or replaced)".into())
        } else if h.txn_first != txn + 1 || !spans_its_transactions(h, seq) {
            Some(format!("its transactions {}..{} do not follow {txn}", h.txn_first, h.txn_last))
        } else if h.checksum_before != checksum {
            Some("its checksum_before is not the checksum after its predecessor".into())
        } else if h.page_size != w.info.page_size {
            Some(format!("its page size {} is not the chain's {}", h.page_size, w.info.page_size))
        } else {
            None
        };
        if let Some(why) = link {
            fail(
                verdict,
                format!("segment {seq} ({}): {why}; every point after it is unrestorable", path.display()),
            );
            return Ok(last);
        }
        if let Some(g) = &h.gap {
            verdict.gaps.push(GapReport {
                from: format_us(g.from_us),
                to: format_us(g.to_us),
                reason: g.reason.clone(),
            });
        }
        for (k, r) in d.records.iter().enumerate() {
            let rtxn = h.txns.as_ref().map(|t| t[k]).unwrap_or(txn + 1);
            // A database grows only by pages a commit writes: a record that says otherwise
            // (crafted, or a bug) is refused before anything is sized by it.
            crate::error::check_interrupt()?;
            if !grows_by_pages_written(size, r, w.info.page_size) {
                fail(verdict, format!(
                    "segment {seq}: a commit sizes the database at {} pages (from {size}) without writing the pages it adds, or writes past its size",
                    r.db_pages
                ));
                return Ok(last);
            }
            size = r.db_pages;
            if r.time_us < last_time {
                fail(verdict, format!("segment {seq}: a commit's time goes back before its predecessor's"));
                return Ok(last);
            }
            last_time = r.time_us;
            if let Some(p) = w.pages.as_deref_mut() {
                for (pgno, page) in &r.pages {
                    p.set(*pgno, page);
                }
                p.resize(r.db_pages);
                if p.sum() != r.checksum {
                    fail(verdict, format!(
                        "segment {seq}: the database after transaction {rtxn} does not have the checksum the segment records"
                    ));
                    return Ok(last);
                }
            }
            verdict.commits += rtxn - txn;
            txn = rtxn;
            if verdict.first.is_none() {
                verdict.first = Some(format_us(r.time_us));
            }
            verdict.last = Some(format_us(r.time_us));
            if !each(h, r, rtxn, &mut w.pages)? {
                return Ok(Some(h.clone()));
            }
        }
        if d.records.last().map(|r| r.checksum.hex()) != Some(h.checksum_after.clone())
            && !d.records.is_empty()
        {
            fail(verdict, format!("segment {seq}: its checksum_after is not its last commit's"));
            return Ok(last);
        }
        checksum = h.checksum_after.clone();
        prev = h.end_hash.clone().unwrap_or(d.hash);
        want = h.seq_last.unwrap_or(seq) + 1;
        verdict.segments += 1;
        last = Some(d.header);
    }
    Ok(last)
}

/// The transactions a segment covers: one record each (`wal`, `repair`), or (`merged`) the
/// points kept, in order, the last one the segment's last transaction.
fn spans_its_transactions(h: &Header, seq: u64) -> bool {
    match &h.txns {
        None => h.seq_last.is_none() && h.txn_last + 1 == h.txn_first + h.commits,
        Some(t) => {
            t.len() as u64 == h.commits
                && t.windows(2).all(|w| w[0] < w[1])
                && t.first().is_some_and(|f| *f >= h.txn_first)
                && t.last() == Some(&h.txn_last)
                && h.seq_last.is_some_and(|l| l >= seq)
        }
    }
}

/// A database grows only by the pages a commit writes: every page past the old size up to the
/// new one is in the record, except SQLite's lock-byte page (the page holding the byte at
/// 1 GiB, never written). Nor does a record hold pages past its own size. A crafted record
/// that says otherwise would make kfadmin size its digests and files by it.
fn grows_by_pages_written(size: u32, r: &Record, page_size: u32) -> bool {
    if r.pages.iter().any(|(p, _)| *p > r.db_pages) {
        return false;
    }
    if r.db_pages <= size {
        return true;
    }
    let lock_page = (1u32 << 30) / page_size + 1;
    let mut need = u64::from(r.db_pages - size);
    if (size + 1..=r.db_pages).contains(&lock_page) {
        need -= 1;
    }
    let new: std::collections::HashSet<u32> = r.pages.iter().map(|(p, _)| *p).filter(|p| *p > size).collect();
    new.len() as u64 >= need
}

fn new_verdict(dir: &Path, info: &ChainInfo) -> ChainVerdict {
    ChainVerdict {
        chain: info.chain.clone(),
        dir: dir.to_path_buf(),
        ok: true,
        base: info.base.clone(),
        segments: 0,
        commits: 0,
        first: Some(format_us(info.base_time_us)),
        last: Some(format_us(info.base_time_us)),
        observed_until: None,
        gaps: Vec::new(),
        problem: None,
    }
}

fn read_observed(dir: &Path) -> Option<Observed> {
    serde_json::from_slice(&std::fs::read(dir.join("observed.json")).ok()?).ok()
}

/// Check a chain without materialising any point: the base archive's checksum (against
/// `chain.json`), every segment's hash and link, the contiguous transaction counter and
/// checksums, and that commit times never go back. With `deep` (a staging directory and a
/// notice sink), also verify the base archive in full and check every commit's recorded
/// database checksum against the page digests (base + pages shipped), never writing a
/// database.
pub fn verify_chain(dir: &Path, deep: Option<(Option<&Path>, &dyn Notice)>) -> Result<ChainVerdict> {
    let info = read_info(dir)?;
    // Compaction waits until this is done (it never removes a segment being read).
    let _lease = read_lease(dir);
    let mut verdict = new_verdict(dir, &info);
    let base = dir.join("base").join(&info.base);
    let broken = |mut v: ChainVerdict, why: String| {
        v.ok = false;
        v.problem = Some(why);
        v.first = None;
        v.last = None;
        Ok(v)
    };
    match fsutil::sha256_file(&base, None) {
        Ok((sum, _)) if sum == info.base_sha256 => {}
        Ok(_) => {
            return broken(
                verdict,
                format!(
                    "the base archive {} is not the one the chain was built on (its SHA-256 differs)",
                    base.display()
                ),
            )
        }
        Err(e) => return broken(verdict, format!("the base archive cannot be read: {}", e.chain())),
    }
    let mut pages = None;
    if let Some((tmp, n)) = deep {
        let staging = Staging::private(tmp, STAGING_PREFIX)?;
        let opts = Options {
            sqlite: true,
            extract_to: Some(staging.dir()),
            expected_sha256: Some(&info.base_sha256),
            keys: None,
        };
        let v = reader::verify(&base, &opts, n.progress())?;
        if !v.ok {
            let why: Vec<String> = v.failed().map(|c| format!("{}: {}", c.name, c.detail)).collect();
            return broken(verdict, format!("the base archive fails verification: {}", why.join("; ")));
        }
        let f = File::open(staging.fd_path(sqlite::DB_FILE)).ctx("cannot open", &staging.path())?;
        let p = digest_file(&f, info.page_size)?;
        if p.sum().hex() != info.base_checksum {
            return broken(
                verdict,
                "the base's database does not have the checksum chain.json records".into(),
            );
        }
        pages = Some(p);
    }
    let mut w = Walk { info, pages: pages.as_mut(), read_segments: 0, read_bytes: 0 };
    walk_chain(dir, &mut w, &mut verdict, |_, _, _, _| Ok(true))?;
    verdict.observed_until =
        read_observed(dir).filter(|o| o.chain == w.info.chain).map(|o| format_us(o.time_us));
    Ok(verdict)
}

/// Every chain of a repository, verified.
pub fn chains(repo: &Path, deep: Option<(Option<&Path>, &dyn Notice)>) -> Result<Vec<ChainVerdict>> {
    chain_dirs(repo)?.iter().map(|d| verify_chain(d, deep)).collect()
}

// ---------------------------------------------------------------------------------------------
// Rebuilding a point

/// A database rebuilt as of a time, checked.
#[derive(Debug, Clone, Serialize)]
pub struct Point {
    pub chain: String,
    /// The transaction counter of the last commit applied (0: the base itself).
    pub txn: u64,
    /// When that commit was seen committed.
    pub time: String,
    pub time_us: u64,
    pub checksum: String,
    /// Said when the time asked for is past what the follower last observed.
    pub note: Option<String>,
    /// Segment files read to rebuild it, and their bytes.
    pub segments_read: u64,
    pub segment_bytes_read: u64,
}

/// Unpack and verify the base archive into `into` (a private directory), then apply every
/// commit seen at or before `at_us`, checking each commit's checksum, and run
/// `integrity_check` on the result. The database is `into/keyfount.db`.
pub fn rebuild(dir: &Path, at_us: u64, into: &crate::safedir::Dir, n: &dyn Notice) -> Result<Point> {
    let info = read_info(dir)?;
    if at_us < info.base_time_us {
        return Err(Error::usage(format!(
            "{} is before the chain's base ({}): nothing to restore",
            format_us(at_us),
            format_us(info.base_time_us)
        )));
    }
    let _lease = read_lease(dir);
    crate::fault::pause("rebuild.leased");
    let base = dir.join("base").join(&info.base);
    n.note(&format!("Verifying the chain's base {}", base.display()));
    let opts = Options {
        sqlite: true,
        extract_to: Some(into),
        expected_sha256: Some(&info.base_sha256),
        keys: None,
    };
    let v = reader::verify(&base, &opts, n.progress())?;
    if !v.ok {
        let why: Vec<String> = v.failed().map(|c| format!("{}: {}", c.name, c.detail)).collect();
        return Err(Error::verification(format!(
            "the chain's base {} fails verification: {}",
            base.display(),
            why.join("; ")
        )));
    }
    let db_path = into.fd_path(sqlite::DB_FILE);
    let db =
        std::fs::OpenOptions::new().read(true).write(true).open(&db_path).ctx("cannot open", &db_path)?;
    let mut pages = digest_file(&db, info.page_size)?;
    if pages.sum().hex() != info.base_checksum {
        return Err(Error::verification(format!(
            "the chain's base {} does not have the checksum chain.json records",
            base.display()
        )));
    }
    let mut verdict = new_verdict(dir, &info);
    let mut point = Point {
        chain: info.chain.clone(),
        txn: 0,
        time: format_us(info.base_time_us),
        time_us: info.base_time_us,
        checksum: info.base_checksum.clone(),
        note: None,
        segments_read: 0,
        segment_bytes_read: 0,
    };
    let ps = u64::from(info.page_size);
    let mut inside_gap: Option<Gap> = None;
    let mut applied = 0u64;
    let mut w = Walk { info: info.clone(), pages: Some(&mut pages), read_segments: 0, read_bytes: 0 };
    walk_chain(dir, &mut w, &mut verdict, |h, r, rtxn, _| {
        if r.time_us > at_us {
            if let Some(g) = h.gap.as_ref().filter(|g| g.from_us < at_us && at_us < g.to_us) {
                inside_gap = Some(g.clone());
            }
            return Ok(false);
        }
        for (pgno, page) in &r.pages {
            db.write_all_at_ctx(page, u64::from(pgno - 1) * ps, &db_path)?;
        }
        db.set_len(u64::from(r.db_pages) * ps).ctx("cannot write", &db_path)?;
        applied += 1;
        point.txn = rtxn;
        point.time_us = r.time_us;
        point.time = format_us(r.time_us);
        point.checksum = r.checksum.hex();
        Ok(true)
    })?;
    point.segments_read = w.read_segments;
    point.segment_bytes_read = w.read_bytes;
    drop(w);
    if let Some(g) = inside_gap {
        return Err(Error::usage(format!(
            "{} falls inside a gap of chain {} ({} to {}: {}); no point strictly inside it can be restored",
            format_us(at_us),
            info.chain,
            format_us(g.from_us),
            format_us(g.to_us),
            g.reason
        ))
        .hint(format!(
            "restore a point at or before {}, or at or after {}",
            format_us(g.from_us),
            format_us(g.to_us)
        )));
    }
    if let Some(problem) = verdict.problem.clone().filter(|_| !verdict.ok) {
        // A broken link before the time asked for: the point cannot be proven.
        if point.time_us < at_us {
            return Err(Error::verification(format!(
                "chain {} is broken before {}: {problem}",
                info.chain,
                format_us(at_us)
            )));
        }
    }
    db.sync_all().ctx("cannot write", &db_path)?;
    let check = digest_file(&db, info.page_size)?;
    if check.sum().hex() != point.checksum {
        return Err(Error::verification(format!(
            "the database rebuilt at transaction {} does not have the checksum its segment records",
            point.txn
        )));
    }
    drop(db);
    let conn = sqlite::open_immutable(&db_path)?;
    let problems = sqlite::check(&conn, true)?;
    if !problems.is_empty() {
        return Err(Error::verification(format!(
            "the database rebuilt at transaction {} fails integrity_check: {}",
            point.txn,
            problems.join("; ")
        )));
    }
    match read_observed(dir).filter(|o| o.chain == info.chain) {
        Some(o) if at_us > o.time_us => {
            point.note = Some(format!(
                "replication last observed the database at {}; anything committed after that is not in the chain",
                format_us(o.time_us)
            ))
        }
        None if at_us > point.time_us => {
            point.note = Some(format!(
                "the chain does not record until when its follower observed the database; its last commit is of {}",
                point.time
            ))
        }
        _ => {}
    }
    Ok(point)
}

trait WriteAt {
    fn write_all_at_ctx(&self, buf: &[u8], at: u64, path: &Path) -> Result<()>;
}

impl WriteAt for File {
    fn write_all_at_ctx(&self, buf: &[u8], at: u64, path: &Path) -> Result<()> {
        use std::os::unix::fs::FileExt;
        self.write_all_at(buf, at).ctx("cannot write", path)
    }
}

/// The page digests of a database file (pages past its end: none; the file's size decides).
fn digest_file(f: &File, page_size: u32) -> Result<Pages> {
    use std::os::unix::fs::FileExt;
    let len =
        f.metadata().map_err(|e| Error::failed(format!("cannot read the rebuilt database: {e}")))?.len();
    let n = (len / u64::from(page_size)) as u32;
    let mut pages = Pages::new(page_size);
    let mut buf = vec![0u8; page_size as usize];
    for pgno in 1..=n {
        f.read_exact_at(&mut buf, u64::from(pgno - 1) * u64::from(page_size))
            .map_err(|e| Error::failed(format!("cannot read the rebuilt database: {e}")))?;
        pages.set(pgno, &buf);
    }
    Ok(pages)
}

/// The chain to restore from at `at_us`: the newest whose base is at or before it.
/// Which chain a point is taken from, when a repository holds chains of several databases.
#[derive(Debug, Default, Clone, Copy)]
pub struct ChainChoice<'a> {
    /// `--chain NAME`: exactly this chain.
    pub name: Option<&'a str>,
    /// The database the point is for, on this host (`--data-dir DIR`: DIR/keyfount.db; a
    /// container's database on the host): the chains replicated from it are taken first.
    pub target: Option<&'a Path>,
}

/// The same file, compared as canonical paths where they exist.
fn same_path(a: &Path, b: &Path) -> bool {
    let canon = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    a == b || canon(a) == canon(b)
}

/// The chain to rebuild `at_us` from: `--chain NAME` when given; else, among the chains whose
/// base is at or before the point, the newest (by its base's time) of the database the point is
/// for, or of the only database the repository holds chains of. Chains of several databases
/// and none of the target: refused (exit 2), naming them, never a guess.
pub fn chain_for(repo: &Path, at_us: u64, choice: ChainChoice) -> Result<PathBuf> {
    let mut chains = Vec::new();
    for d in chain_dirs(repo)? {
        let info = read_info(&d)?;
        chains.push((d, info));
    }
    let root = repo.join(PITR_DIR);
    if let Some(name) = choice.name {
        let (d, info) = chains.into_iter().find(|(_, i)| i.chain == name).ok_or_else(|| {
            Error::usage(format!("there is no point-in-time chain {name:?} in {}", root.display()))
                .hint("`kfadmin list -r REPO` names the chains")
        })?;
        if info.base_time_us > at_us {
            return Err(Error::usage(format!(
                "chain {name} begins at {}, after {}",
                format_us(info.base_time_us),
                format_us(at_us)
            ))
            .hint("`kfadmin list -r REPO` shows each chain's restorable times"));
        }
        return Ok(d);
    }
    let candidates: Vec<&(PathBuf, ChainInfo)> =
        chains.iter().filter(|(_, i)| i.base_time_us <= at_us).collect();
    let newest = |of: &[&(PathBuf, ChainInfo)]| {
        of.iter().max_by_key(|(_, i)| (i.base_time_us, i.chain.clone())).map(|(d, _)| d.clone())
    };
    let of_target: Vec<&(PathBuf, ChainInfo)> = match choice.target {
        Some(t) => candidates.iter().copied().filter(|(_, i)| same_path(Path::new(&i.source), t)).collect(),
        None => Vec::new(),
    };
    if let Some(d) = newest(&of_target) {
        return Ok(d);
    }
    let mut sources: Vec<(&str, &str)> =
        candidates.iter().map(|(_, i)| (i.host.as_str(), i.source.as_str())).collect();
    sources.sort();
    sources.dedup();
    if sources.len() > 1 {
        let listed: Vec<String> = sources
            .iter()
            .map(|(host, source)| {
                let last = candidates
                    .iter()
                    .filter(|(_, i)| i.host == *host && i.source == *source)
                    .max_by_key(|(_, i)| i.base_time_us)
                    .map(|(_, i)| i.chain.clone())
                    .unwrap_or_default();
                format!("{source} on {host} (chain {last})")
            })
            .collect();
        return Err(Error::usage(format!(
            "{} holds point-in-time chains of {} databases, and none of them is {}: {}",
            root.display(),
            sources.len(),
            choice.target.map(|t| t.display().to_string()).unwrap_or_else(|| "the target".into()),
            listed.join("; ")
        ))
        .hint(
            "pass --chain NAME with the chain to take the point from (`kfadmin list -r REPO` names them)",
        ));
    }
    newest(&candidates).ok_or_else(|| {
        Error::usage(format!(
            "no point-in-time chain in {} starts at or before {}",
            root.display(),
            format_us(at_us)
        ))
        .hint("`kfadmin list -r REPO` shows the chains and their restorable times")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_takes_rfc3339_now_and_a_time_ago() {
        assert_eq!(parse_at("2026-12-04T15:30:05Z").unwrap(), 1_796_398_205_000_000);
        assert_eq!(parse_at("2026-12-04T15:30:05.25Z").unwrap(), 1_796_398_205_250_000);
        let now = now_us();
        let ago = parse_at("-10m").unwrap();
        assert!(ago >= now - 600_000_000 && ago < now - 590_000_000);
        assert!(parse_at("now").unwrap() >= now);
        assert!(parse_at("yesterday").is_err());
        assert!(parse_at("2026-12-04 15:30").is_err());
    }

    #[test]
    fn a_commit_grows_the_database_only_by_pages_it_writes() {
        let rec = |db_pages, pages: &[u32]| Record {
            time_us: 0,
            db_pages,
            checksum: Default::default(),
            pages: pages.iter().map(|&p| (p, vec![])).collect(),
        };
        assert!(grows_by_pages_written(10, &rec(10, &[3]), 4096));
        assert!(grows_by_pages_written(10, &rec(5, &[]), 4096));
        assert!(grows_by_pages_written(10, &rec(12, &[11, 12, 2]), 4096));
        assert!(!grows_by_pages_written(10, &rec(12, &[12]), 4096));
        assert!(!grows_by_pages_written(10, &rec(1 << 31, &[1 << 31]), 4096));
        assert!(!grows_by_pages_written(10, &rec(10, &[11]), 4096));
        // The lock-byte page (at 1 GiB) is never written.
        let lock = (1 << 30) / 4096 + 1;
        assert!(grows_by_pages_written(lock - 1, &rec(lock + 1, &[lock + 1]), 4096));
    }
}

/// `--at`: RFC 3339 (UTC), `now`, or a time ago (`-10m`, `-1h30m`, `-45s`).
pub fn parse_at(s: &str) -> std::result::Result<u64, String> {
    let s = s.trim();
    if s == "now" {
        return Ok(now_us());
    }
    if let Some(ago) = s.strip_prefix('-') {
        let d = humantime::parse_duration(ago).map_err(|e| format!("{s:?}: {e}"))?;
        return Ok(now_us().saturating_sub(d.as_micros() as u64));
    }
    let t = humantime::parse_rfc3339(s).map_err(|e| {
        format!("{s:?} is not an RFC 3339 UTC time (2026-12-04T15:30:05Z), `now`, or a time ago (-10m): {e}")
    })?;
    Ok(t.duration_since(UNIX_EPOCH).map(|d| d.as_micros() as u64).unwrap_or(0))
}

// ---------------------------------------------------------------------------------------------
// Following

/// What `replicate` was asked to do.
#[derive(Debug, Clone)]
pub struct FollowOptions {
    pub db: PathBuf,
    pub repo: PathBuf,
    /// The first part of a new chain's name.
    pub name: String,
    pub source: Source,
    /// How often the WAL is read.
    pub interval: Duration,
    pub tmp_dir: Option<PathBuf>,
    pub compression: Compression,
    /// Compact the chain in the background this often, keeping what the policy says.
    pub compact: Option<(Duration, crate::replicate::compact::Policy)>,
    /// Start a new chain on a new base when the chain's base is this old.
    pub new_base_every: Option<Duration>,
}

/// What a follower did, for its report.
#[derive(Debug, Clone, Default, Serialize)]
pub struct FollowReport {
    pub chain: String,
    /// A new chain (and base) was started by this run.
    pub new_chain: bool,
    pub resumed_at_txn: u64,
    pub txn: u64,
    pub commits_shipped: u64,
    pub segments_written: u64,
    pub bytes_written: u64,
    pub gaps: Vec<GapReport>,
    pub last_commit: Option<String>,
    /// Chains this run ended and the new ones it started on a new base, and why.
    pub new_bases: Vec<NewBase>,
}

/// A chain ended and a new one started on a new base (`rebase`).
#[derive(Debug, Clone, Default, Serialize)]
pub struct NewBase {
    pub ended: String,
    pub chain: String,
    pub reason: String,
}

/// The chain's end, as the follower keeps it.
struct Tip {
    dir: PathBuf,
    info: ChainInfo,
    seq: u64,
    prev: String,
    txn: u64,
    pages: Pages,
    pos: Option<Pos>,
    last_time_us: u64,
    last_checksum: String,
    /// Frames were lost and the repair is still to be made (why).
    lost: Option<String>,
    /// The chain must end here and a new one start (why): see `rebase`.
    rebase: Option<String>,
    /// Commits read while the base was archived (when seen, what), to ship first.
    pending: Vec<(u64, Vec<wal::Commit>)>,
}

/// The WAL file the follower reads, kept open between polls: if the server deletes it (a
/// clean close), the frames of its last generation are still read through this descriptor.
struct Held {
    file: File,
    ino: (u64, u64),
    /// The longest this file was seen: shorter later means it was truncated.
    max_len: u64,
}

fn open_held(path: &Path) -> Option<Held> {
    let file = File::open(path).ok()?;
    let m = file.metadata().ok()?;
    Some(Held { ino: (m.dev(), m.ino()), max_len: m.len(), file })
}

/// A read transaction on the live database while frames are copied: the WAL cannot restart
/// under it. Only opened when `-wal` and `-shm` exist (a connection would create them, owned
/// by kfadmin's user, on a database no server has open). Never checkpoints, not even on close.
fn pin(db: &Path) -> Option<Connection> {
    if sqlite::sidecars(db).iter().any(|p| !p.exists()) {
        return None;
    }
    let c = Connection::open_with_flags(
        db,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_NOFOLLOW,
    )
    .ok()?;
    c.set_db_config(DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, true).ok()?;
    c.busy_timeout(Duration::from_secs(1)).ok()?;
    c.execute_batch("BEGIN").ok()?;
    c.query_row("SELECT count(*) FROM sqlite_schema", [], |r| r.get::<_, i64>(0)).ok()?;
    Some(c)
}

fn wal_path(db: &Path) -> PathBuf {
    sqlite::sidecars(db)[0].clone()
}

/// Follow `opts.db` until `stop()` says so (then one last poll), shipping every commit into
/// a chain of the repository: the newest chain of this database when it can be resumed
/// exactly, otherwise a new one with a new base.
pub fn follow(opts: &FollowOptions, n: &dyn Notice, stop: &dyn Fn() -> bool) -> Result<FollowReport> {
    follow_watched(opts, &Watch::default(), n, stop)
}

/// [`follow`], also writing the metrics `watch` asks for.
pub fn follow_watched(
    opts: &FollowOptions,
    watch: &Watch,
    n: &dyn Notice,
    stop: &dyn Fn() -> bool,
) -> Result<FollowReport> {
    let mut db_file = File::open(&opts.db).ctx("cannot open", &opts.db)?;
    let mut page_size = wal::db_page_size(&db_file)
        .ctx("cannot read", &opts.db)?
        .ok_or_else(|| Error::usage(format!("{} is not a SQLite database", opts.db.display())))?;
    if !wal::db_is_wal(&db_file).ctx("cannot read", &opts.db)? {
        return Err(Error::usage(format!(
            "{} is not in WAL mode: its commits go straight into the file, and replicate follows the WAL",
            opts.db.display()
        ))
        .hint("Keyfount opens its database with journal_mode=WAL; take backups of this one with kfadmin backup --online"));
    }
    let root = opts.repo.join(PITR_DIR);
    fsutil::ensure_private_dir(&opts.repo)?;
    fsutil::ensure_private_dir(&root)?;
    let mut report = FollowReport::default();
    // Resumed, the follower has not seen the WAL's history: it holds no file yet, so that its
    // first read treats a WAL shorter than where the chain stopped as possibly truncated.
    let mut held = None;
    let mut tip = match resume(opts, page_size, n)? {
        Some(t) => t,
        None => {
            report.new_chain = true;
            new_chain(opts, &db_file, page_size, &mut held, n)?
        }
    };
    report.chain = tip.info.chain.clone();
    report.resumed_at_txn = tip.txn;
    // Since when the follower knows nothing else was committed: after a stop, the last time
    // the chain's heartbeat says it looked (when it is of this very commit).
    let mut known_us = match read_observed(&tip.dir) {
        Some(o) if o.chain == tip.info.chain && o.txn == tip.txn => o.time_us.max(tip.last_time_us),
        _ => tip.last_time_us,
    };
    let mut last_observed_write = Instant::now() - Duration::from_secs(10);
    let mut watcher = Watcher::new(watch, &tip, n);
    let mut guard = rebase::Guard::new(&db_file);
    let mut background = opts.compact.map(|(every, policy)| compact::Background::new(every, policy));
    loop {
        let stopping = stop();
        let started = Instant::now();
        let mut backlog = false;
        // A restore by kfadmin says so first: ship what is committed, let go of the files until
        // it ends, then look at what it left.
        let mut told = false;
        if !stopping && rebase::restore_running(&opts.db) {
            poll(opts, &mut db_file, page_size, &mut tip, &mut held, &mut known_us, &mut report, n)?;
            let o = Observed { chain: tip.info.chain.clone(), txn: tip.txn, time_us: known_us };
            fsutil::write_atomic(
                &tip.dir.join("observed.json"),
                &serde_json::to_vec(&o).unwrap_or_default(),
                0o600,
            )?;
            n.note(&format!(
                "A restore into the directory of {} is running: replicate lets go of it until it ends",
                opts.db.display()
            ));
            held = None;
            db_file = rebase::wait_for_restore(&opts.db, db_file, stop)?;
            told = true;
        }
        // A change that ends the chain: VACUUM, another page size, the database replaced.
        // (the file itself changed: wait until it is settled before copying it).
        let (why, settle) = match guard.check(&opts.db, &db_file, &tip)? {
            Some(why) if told => (Some(format!("the database was restored by kfadmin ({why})")), true),
            Some(why) => (Some(why), true),
            None => {
                backlog =
                    poll(opts, &mut db_file, page_size, &mut tip, &mut held, &mut known_us, &mut report, n)?;
                (tip.rebase.take().or_else(|| rebase::scheduled(opts.new_base_every, &tip)), false)
            }
        };
        if let Some(why) = why.filter(|_| !stopping) {
            let o = Observed { chain: tip.info.chain.clone(), txn: tip.txn, time_us: known_us };
            fsutil::write_atomic(
                &tip.dir.join("observed.json"),
                &serde_json::to_vec(&o).unwrap_or_default(),
                0o600,
            )?;
            watcher.after_read(&tip, held.as_ref().map(|h| &h.file), known_us, &report, true);
            n.note(&format!(
                "Chain {} ends at transaction {}: {why}; starting a new chain with a new base",
                tip.info.chain, tip.txn
            ));
            if settle {
                db_file = rebase::settled(&opts.db, Duration::from_secs(10), stop)?;
            }
            if !wal::db_is_wal(&db_file).ctx("cannot read", &opts.db)? {
                return Err(Error::failed(format!(
                    "{} left WAL mode (journal_mode was changed): its commits can no longer be followed",
                    opts.db.display()
                ))
                .hint("the chain holds everything up to now; switch the database back to WAL and run replicate again"));
            }
            page_size = wal::db_page_size(&db_file).ctx("cannot read", &opts.db)?.ok_or_else(|| {
                Error::failed(format!("{} is no longer a SQLite database", opts.db.display()))
            })?;
            held = None;
            let old = tip.info.chain.clone();
            tip = new_chain(opts, &db_file, page_size, &mut held, n)?;
            report.new_bases.push(NewBase { ended: old, chain: tip.info.chain.clone(), reason: why });
            report.chain = tip.info.chain.clone();
            report.new_chain = true;
            known_us = tip.last_time_us;
            guard = rebase::Guard::new(&db_file);
            watcher = Watcher::new(watch, &tip, n);
            last_observed_write = Instant::now() - Duration::from_secs(10);
            continue;
        }
        if last_observed_write.elapsed() >= Duration::from_secs(1) || stopping {
            let o = Observed { chain: tip.info.chain.clone(), txn: tip.txn, time_us: known_us };
            fsutil::write_atomic(
                &tip.dir.join("observed.json"),
                &serde_json::to_vec(&o).unwrap_or_default(),
                0o600,
            )?;
            last_observed_write = Instant::now();
        }
        watcher.after_read(&tip, held.as_ref().map(|h| &h.file), known_us, &report, stopping);
        if stopping {
            break;
        }
        if let Some(b) = background.as_mut() {
            b.tick(&tip.dir, n);
        }
        let spent = started.elapsed();
        // A read that stopped at MAX_READ with more committed after it reads on at once.
        let mut left = if backlog { Duration::ZERO } else { opts.interval.saturating_sub(spent) };
        while !left.is_zero() && !stop() {
            let step = left.min(Duration::from_millis(20));
            std::thread::sleep(step);
            left -= step;
        }
    }
    report.txn = tip.txn;
    report.last_commit = (tip.txn > 0).then(|| format_us(tip.last_time_us));
    Ok(report)
}

/// One read of the WAL: ship what was committed since the last, repair a gap if frames were
/// lost. True when the read stopped at [`MAX_READ`] with more committed after it (a backlog:
/// the follower does not know the database up to the read's start, only up to its last commit).
#[allow(clippy::too_many_arguments)]
fn poll(
    opts: &FollowOptions,
    db_file: &mut File,
    page_size: u32,
    tip: &mut Tip,
    held: &mut Option<Held>,
    known_us: &mut u64,
    report: &mut FollowReport,
    n: &dyn Notice,
) -> Result<bool> {
    let path = wal_path(&opts.db);
    // Commits read while the base was archived: shipped first, the position after them.
    for (seen, commits) in std::mem::take(&mut tip.pending) {
        let Some(end) = commits.last().map(|c| c.end) else { continue };
        let time_us = seen.max(tip.last_time_us);
        let records = commits
            .iter()
            .map(|c| {
                for (pgno, page) in &c.pages {
                    tip.pages.set(*pgno, page);
                }
                tip.pages.resize(c.db_pages);
                Record { time_us, db_pages: c.db_pages, checksum: tip.pages.sum(), pages: c.pages.clone() }
            })
            .collect::<Vec<_>>();
        tip.pos = Some(end);
        ship(tip, "wal", records, tip.pos, None, report)?;
    }
    // Should the server close (and delete -wal/-shm) just as the read mark is taken, the
    // connection creates them: they go back to the database's owner.
    let owners = sqlite::SidecarOwners::record(&opts.db);
    let pinned = pin(&opts.db);
    let had_pin = pinned.is_some();
    let seen_us = now_us();
    let t0 = Instant::now();
    let current = open_held(&path);
    let mut commits: Vec<wal::Commit> = Vec::new();
    // A repair that could not be made at the last poll (no read mark) is made now.
    let mut lost: Option<String> = tip.lost.take();
    // A database file replaced under the follower (a restore by another tool): everything it
    // held is compared again, page by page.
    let (a, b) = (db_file.metadata(), std::fs::metadata(&opts.db));
    if let (Ok(a), Ok(b)) = (a, b) {
        if (a.dev(), a.ino()) != (b.dev(), b.ino()) {
            *db_file = File::open(&opts.db).ctx("cannot open", &opts.db)?;
            lost = Some("the database file was replaced".into());
        }
    }
    let same_inode = matches!((&*held, &current), (Some(h), Some(c)) if h.ino == c.ino);
    let mut backlog = false;
    // 1. The generation the chain is in: read on from where it stopped. Through the held file
    //    when there is one (a WAL the server deleted is still read to its end through it).
    let mut restarted = false;
    if let Some(pos) = tip.pos {
        // Without a held file (just resumed), whether the WAL was truncated is unknown.
        let (src, history) = match (held.as_ref(), current.as_ref()) {
            (Some(h), _) => (Some(h), true),
            (None, c) => (c, false),
        };
        match src {
            None => {
                restarted = true;
                lost = Some("the WAL kfadmin was reading is gone and it had not read it to the end".into());
            }
            Some(h) => {
                let read = wal::read_commits(&h.file, &pos, page_size, MAX_READ).ctx("cannot read", &path)?;
                backlog = read.more;
                let end = read.end;
                commits.extend(read.commits);
                tip.pos = Some(end);
                let hdr = current
                    .as_ref()
                    .map(|c| wal::header(&c.file))
                    .transpose()
                    .ctx("cannot read", &path)?
                    .flatten();
                let same_file = same_inode || (held.is_none() && current.is_some());
                let still = same_file && hdr.map(|x| u64::from_be_bytes(x.salts)) == Some(pos.salts);
                if !read.more && !still {
                    // The WAL restarted or is gone: was every frame of the old generation read?
                    restarted = true;
                    let len = h.file.metadata().map(|m| m.len()).unwrap_or(0);
                    let truncated = !history || len < h.max_len;
                    let overwritten = match read.after {
                        After::Frame(s) => {
                            let s1 = u32::from_be_bytes([s[0], s[1], s[2], s[3]]);
                            let d = s1.wrapping_sub(end.salt1());
                            d != 0 && d < (1 << 31)
                        }
                        After::Eof => truncated,
                    };
                    if overwritten {
                        lost = Some(format!(
                            "the WAL was restarted, and what followed frame {} of the generation kfadmin was reading was overwritten or truncated before it was read",
                            end.frame
                        ));
                    }
                }
            }
        }
    } else if current
        .as_ref()
        .map(|c| wal::header(&c.file))
        .transpose()
        .ctx("cannot read", &path)?
        .flatten()
        .is_some()
    {
        restarted = true;
        lost = Some("a WAL appeared where the chain's last state had none (the server was restarted, or the database replaced)".into());
    }
    // 2. The WAL restarted with nothing lost: the new generation follows on directly only when
    //    it is the next one in the file that was read to the end (its first salt one more:
    //    SQLite increments it at each restart; the checkpoint sequence number is each
    //    connection's own count, not the file's, and says nothing). That file is the held one:
    //    deleted by a server that closed the database, it still holds the last generation.
    if lost.is_some() {
        restarted = true;
    }
    if restarted && lost.is_none() {
        let old = tip.pos.expect("a position");
        let src = held.as_ref().or(current.as_ref());
        let src_is_current = held.is_none() || same_inode;
        let hdr = src.map(|c| wal::header(&c.file)).transpose().ctx("cannot read", &path)?.flatten();
        let salt1 = |h: &wal::Header| u32::from_be_bytes([h.salts[0], h.salts[1], h.salts[2], h.salts[3]]);
        match (src, hdr) {
            (Some(c), Some(h)) if h.page_size == page_size && salt1(&h) == old.salt1().wrapping_add(1) => {
                let read =
                    wal::read_commits(&c.file, &h.start(), page_size, MAX_READ).ctx("cannot read", &path)?;
                backlog |= read.more;
                commits.extend(read.commits);
                tip.pos = Some(read.end);
            }
            (Some(_), Some(h)) if h.page_size != page_size => {
                return Err(Error::failed(format!(
                    "the database's page size changed ({page_size} to {}): a new chain with a new base is needed",
                    h.page_size
                ))
                .hint("run kfadmin replicate again: it starts a new chain"));
            }
            (Some(_), Some(h)) if salt1(&h) != old.salt1() => {
                n.detail(&format!("WAL restarted: salt {:08x} after salt {:08x}", salt1(&h), old.salt1()));
                lost = Some("the WAL was restarted more than once since kfadmin last read it".into());
            }
            // The same generation still (its file was replaced since), or none (empty).
            _ => {}
        }
        if lost.is_none() && !src_is_current {
            // The file that was read to its end was replaced: the server closed the database
            // (the database file now holds everything), and maybe opened it again.
            let now = current
                .as_ref()
                .map(|c| wal::header(&c.file))
                .transpose()
                .ctx("cannot read", &path)?
                .flatten();
            if now.is_some() {
                lost = Some(
                    "the WAL file was replaced (the server closed the database and opened it again)".into(),
                );
            } else {
                tip.pos = None;
            }
        } else if lost.is_none() && hdr.is_none() {
            // The WAL is empty: the database file alone holds the state.
            tip.pos = None;
        }
    }
    // The read mark is held only while frames are copied (and while a repair reads the live
    // database, below).
    let pinned = if lost.is_some() { pinned } else { None };
    let copied = commits.len();
    // Without a WAL to follow, the database must still be in WAL mode: in rollback-journal
    // mode its commits would go into the file unseen.
    if tip.pos.is_none() && current.is_none() && !wal::db_is_wal(db_file).ctx("cannot read", &opts.db)? {
        return Err(Error::failed(format!(
            "{} left WAL mode (journal_mode was changed): its commits can no longer be followed",
            opts.db.display()
        ))
        .hint(
            "the chain holds everything up to now; switch the database back to WAL and run replicate again",
        ));
    }
    // 3. Commits copied: ship them.
    if !commits.is_empty() {
        tip.rebase = tip.rebase.take().or_else(|| rebase::after_commits(&commits, page_size));
        let time_us = now_us().max(tip.last_time_us);
        let records = commits
            .iter()
            .map(|c| {
                for (pgno, page) in &c.pages {
                    tip.pages.set(*pgno, page);
                }
                tip.pages.resize(c.db_pages);
                Record { time_us, db_pages: c.db_pages, checksum: tip.pages.sum(), pages: c.pages.clone() }
            })
            .collect::<Vec<_>>();
        let wal_end = tip.pos;
        drop(commits);
        // Each commit is stamped when it is read, at most about a second after it was made,
        // as long as the follower looks that often. Commits read longer after it last knew
        // the database (it was stopped or killed, or behind) were made at unknown times in
        // between: no point strictly inside that window is exact, so it is a gap.
        // (A repair in this same read covers the window with its own gap.)
        let gap = (lost.is_none() && *known_us + STAMP_WINDOW_US < time_us).then(|| Gap {
            from_us: *known_us,
            to_us: time_us,
            reason: format!(
                "these commits were read {:.1} s after the follower last knew the database (it was stopped, or behind), and are stamped when read",
                (time_us - *known_us) as f64 / 1e6
            ),
        });
        if let Some(g) = &gap {
            n.note(&format!(
                "warning: gap in chain {}: {}; points from {} to {} cannot be restored",
                tip.info.chain,
                g.reason,
                format_us(g.from_us),
                format_us(g.to_us)
            ));
            report.gaps.push(GapReport {
                from: format_us(g.from_us),
                to: format_us(g.to_us),
                reason: g.reason.clone(),
            });
        }
        ship(tip, "wal", records, wal_end, gap, report)?;
    }
    // 4. Frames were lost: ship the pages that differ from the live database.
    if let Some(reason) = lost.take().filter(|r| {
        // Without a read mark the live database may change under the read: the next poll does it.
        let later = pinned.is_none() && current.is_some();
        if later {
            n.detail(&format!("repair put off to the next read (no read mark on the database): {r}"));
            tip.lost = Some(r.clone());
        }
        !later
    }) {
        let wal_file = current.as_ref().map(|c| &c.file);
        let mut diff = Vec::new();
        let mut chain_pages = tip.pages.clone();
        let live = wal::live(db_file, wal_file, page_size, |pgno, page| {
            if tip.pages.get(pgno) != Some(&crate::replicate::digest::page(pgno, page)) {
                diff.push((pgno, page.to_vec()));
            }
            Ok(())
        })
        .ctx("cannot read", &opts.db)?;
        for (pgno, page) in &diff {
            chain_pages.set(*pgno, page);
        }
        chain_pages.resize(live.db_pages);
        if chain_pages.sum() != live.pages.sum() {
            return Err(Error::failed("the repair of a gap does not reproduce the live database's checksum"));
        }
        let time_us = now_us().max(tip.last_time_us);
        let gap = Gap { from_us: *known_us, to_us: time_us, reason: reason.clone() };
        n.note(&format!(
            "warning: gap in chain {}: {reason}; {} page(s) differ and were shipped; points from {} to {} cannot be restored",
            tip.info.chain,
            diff.len(),
            format_us(gap.from_us),
            format_us(gap.to_us)
        ));
        report.gaps.push(GapReport { from: format_us(gap.from_us), to: format_us(gap.to_us), reason });
        tip.pages = chain_pages;
        tip.pos = live.pos;
        let rec = Record { time_us, db_pages: live.db_pages, checksum: tip.pages.sum(), pages: diff };
        ship(tip, "repair", vec![rec], tip.pos, Some(gap), report)?;
    }
    drop(pinned);
    owners.restore()?;
    if copied > 0 || tip.lost.is_some() {
        n.detail(&format!(
            "read {copied} commit(s) in {} ms (read mark: {}, WAL: {}, position: {:?})",
            t0.elapsed().as_millis(),
            had_pin,
            if current.is_some() { "present" } else { "none" },
            tip.pos.map(|p| (p.salt1(), p.frame)),
        ));
    }
    // The held file follows the current one.
    if let Some(c) = current {
        let keep_max = held.as_ref().filter(|h| h.ino == c.ino).map(|h| h.max_len).unwrap_or(0);
        *held = Some(Held { max_len: keep_max.max(c.max_len), ..c });
    } else {
        *held = None;
    }
    // After a read that stopped at MAX_READ, commits not read yet were made before `seen_us`:
    // nothing new is known to be complete until a read gets to the end.
    if tip.lost.is_none() && !backlog {
        *known_us = seen_us.max(tip.last_time_us);
    }
    Ok(backlog)
}

/// Write the next segment: `.partial`, fsync, rename, directory fsync.
fn ship(
    tip: &mut Tip,
    kind: &str,
    records: Vec<Record>,
    wal: Option<Pos>,
    gap: Option<Gap>,
    report: &mut FollowReport,
) -> Result<()> {
    let seq = tip.seq + 1;
    let count = records.len() as u64;
    let h = Header {
        chain: tip.info.chain.clone(),
        seq,
        prev: tip.prev.clone(),
        kind: kind.into(),
        txn_first: tip.txn + 1,
        txn_last: tip.txn + count,
        commits: count,
        page_size: tip.info.page_size,
        checksum_before: if tip.seq == 0 { tip.info.base_checksum.clone() } else { String::new() },
        checksum_after: records.last().map(|r| r.checksum.hex()).unwrap_or_default(),
        first_time_us: records.first().map(|r| r.time_us).unwrap_or(0),
        last_time_us: records.last().map(|r| r.time_us).unwrap_or(0),
        wal,
        gap,
        compression: "none".into(),
        encryption: "none".into(),
        seq_last: None,
        end_hash: None,
        txns: None,
    };
    let mut h = h;
    if tip.seq > 0 {
        h.checksum_before = tip_checksum_before(tip);
    }
    let bytes = segment::encode(&h, &records);
    let path = seg_path(&tip.dir, seq);
    let parent = path.parent().expect("a directory");
    if !parent.is_dir() {
        // 0700 like the chain, each new directory made durable in its parent.
        let seg = parent.parent().expect("seg");
        if !seg.is_dir() {
            fsutil::ensure_private_dir(seg)?;
            fsutil::fsync_dir(&tip.dir)?;
        }
        fsutil::ensure_private_dir(parent)?;
        fsutil::fsync_dir(seg)?;
    }
    crate::fault::point("replicate.segment")?;
    fsutil::write_atomic(&path, &bytes, 0o600)?;
    crate::fault::point("replicate.shipped")?;
    tip.seq = seq;
    tip.prev = crate::fsutil::hex(&bytes[bytes.len() - 32..]);
    tip.txn += count;
    tip.last_time_us = h.last_time_us;
    tip.last_checksum = h.checksum_after.clone();
    report.commits_shipped += count;
    report.segments_written += 1;
    report.bytes_written += bytes.len() as u64;
    Ok(())
}

fn tip_checksum_before(tip: &Tip) -> String {
    tip.last_checksum.clone()
}

/// Start a new chain: copy the live database as of a known WAL position (under a pinned read
/// transaction), archive and verify it as the base, then write `chain.json`.
fn new_chain(
    opts: &FollowOptions,
    db_file: &File,
    page_size: u32,
    held: &mut Option<Held>,
    n: &dyn Notice,
) -> Result<Tip> {
    let created = SystemTime::now();
    let stamp = crate::archive::writer::file_name(
        &opts.name,
        created.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0),
        "x",
        false,
    );
    let stamp = stamp.trim_end_matches("-x.tar.gz").to_string();
    let mut id = stamp.clone();
    let mut k = 2;
    while opts.repo.join(PITR_DIR).join(&id).exists() {
        id = format!("{stamp}-{k}");
        k += 1;
    }
    let dir = opts.repo.join(PITR_DIR).join(&id);
    fsutil::ensure_private_dir(&dir)?;
    let base_dir = dir.join("base");
    fsutil::ensure_private_dir(&base_dir)?;
    let staging = Staging::private(opts.tmp_dir.as_deref(), STAGING_PREFIX)?;
    let copy = staging.path().join(sqlite::DB_FILE);
    n.note(&format!("Starting chain {id}: copying {} as its base", opts.db.display()));
    let mut tries = 0;
    let (live, time_us) = loop {
        let owners = sqlite::SidecarOwners::record(&opts.db);
        let pinned = pin(&opts.db);
        *held = open_held(&wal_path(&opts.db));
        if pinned.is_none() && held.is_some() {
            // A copy needs a read mark while the server writes (see `pin`).
            tries += 1;
            if tries > 200 {
                return Err(Error::failed(format!(
                    "cannot hold a read transaction on {} to copy it (it stayed locked for 10 s)",
                    opts.db.display()
                )));
            }
            crate::error::check_interrupt()?;
            std::thread::sleep(Duration::from_millis(50));
            continue;
        }
        // The base holds what the database file and the WAL hold when they are read here (the
        // read goes to the WAL's end at that moment, past the read mark's snapshot): it is
        // stamped once the read is done, never before a commit it holds.
        let out = fsutil::create_new(&copy, 0o600)?;
        let before =
            held.as_ref().map(|h| wal::header(&h.file)).transpose().ctx("cannot read", &opts.db)?.flatten();
        let live = wal::live(db_file, held.as_ref().map(|h| &h.file), page_size, |pgno, page| {
            use std::os::unix::fs::FileExt;
            out.write_all_at(page, u64::from(pgno - 1) * u64::from(page_size))
        })
        .ctx("cannot read", &opts.db)?;
        let after =
            held.as_ref().map(|h| wal::header(&h.file)).transpose().ctx("cannot read", &opts.db)?.flatten();
        let time_us = now_us();
        drop(pinned);
        owners.restore()?;
        out.set_len(u64::from(live.db_pages) * u64::from(page_size)).ctx("cannot write", &copy)?;
        out.sync_all().ctx("cannot write", &copy)?;
        if before == after {
            break (live, time_us);
        }
        // The WAL restarted while it was read: read again.
        std::fs::remove_file(&copy).ctx("cannot remove", &copy)?;
    };
    let meta = std::fs::metadata(&opts.db).ctx("cannot read", &opts.db)?;
    let staged = vec![Copied {
        rel: PathBuf::from(sqlite::DB_FILE),
        staged: copy,
        mode: meta.mode() & 0o777,
        uid: meta.uid(),
        gid: meta.gid(),
        reflinked: false,
        dir: false,
    }];
    let spec = ArchiveSpec {
        out: &base_dir,
        name: &opts.name,
        mode: Mode::Online,
        source: opts.source.clone(),
        created,
        compression: opts.compression,
        nice: 0,
    };
    // Archiving the base takes a while: meanwhile the commits after it are read as the
    // follower would (a read mark for milliseconds, every interval), so that a checkpoint and
    // WAL restart by the server in that time loses none of them. Shipped first in the chain.
    let wal_file = held.as_ref().and_then(|h| h.file.try_clone().ok());
    let (made, pending) = rebase::buffered(&opts.db, wal_file, page_size, live.pos, opts.interval, || {
        make::make(n, &spec, &Encryption::None, &staged)
    });
    let made = made?;
    let base = made.written.path.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default();
    let info = ChainInfo {
        format: FORMAT.into(),
        format_version: FORMAT_VERSION,
        chain: id.clone(),
        created: humantime::format_rfc3339_seconds(created).to_string(),
        source: opts.db.display().to_string(),
        host: fsutil::hostname(),
        base,
        base_sha256: made.written.sha256.clone(),
        page_size,
        base_pages: live.db_pages,
        base_checksum: live.pages.sum().hex(),
        base_time_us: time_us,
        wal: live.pos,
    };
    fsutil::write_atomic(
        &dir.join("chain.json"),
        &serde_json::to_vec_pretty(&info).unwrap_or_default(),
        0o600,
    )?;
    crate::fault::point("replicate.based")?;
    Ok(Tip {
        dir,
        prev: info.base_sha256.clone(),
        last_checksum: info.base_checksum.clone(),
        seq: 0,
        txn: 0,
        pages: live.pages,
        pos: live.pos,
        last_time_us: time_us,
        info,
        lost: None,
        rebase: None,
        pending,
    })
}

/// The newest chain of this database, read back to its end (its base unpacked and digested,
/// every segment checked and applied to the digests), when it can be followed on.
fn resume(opts: &FollowOptions, page_size: u32, n: &dyn Notice) -> Result<Option<Tip>> {
    let source = opts.db.display().to_string();
    let Some(dir) = chain_dirs(&opts.repo)?
        .into_iter()
        .rfind(|d| read_info(d).map(|i| i.source == source && i.page_size == page_size).unwrap_or(false))
    else {
        return Ok(None);
    };
    sweep_partials(&dir);
    let info = read_info(&dir)?;
    n.note(&format!("Resuming chain {}", info.chain));
    // A compaction by prune waits until the chain is read back.
    let _lease = read_lease(&dir);
    let staging = Staging::private(opts.tmp_dir.as_deref(), STAGING_PREFIX)?;
    let base = dir.join("base").join(&info.base);
    let ro = Options {
        sqlite: false,
        extract_to: Some(staging.dir()),
        expected_sha256: Some(&info.base_sha256),
        keys: None,
    };
    let v = reader::verify(&base, &ro, n.progress())?;
    if !v.ok {
        n.note(&format!(
            "warning: the base of chain {} fails verification; starting a new chain",
            info.chain
        ));
        return Ok(None);
    }
    let f = File::open(staging.fd_path(sqlite::DB_FILE)).ctx("cannot open", &staging.path())?;
    let mut pages = digest_file(&f, page_size)?;
    drop(f);
    if pages.sum().hex() != info.base_checksum {
        n.note(&format!(
            "warning: the base of chain {} does not have its recorded checksum; starting a new chain",
            info.chain
        ));
        return Ok(None);
    }
    let mut verdict = new_verdict(&dir, &info);
    let mut w = Walk { info: info.clone(), pages: Some(&mut pages), read_segments: 0, read_bytes: 0 };
    let last = walk_chain(&dir, &mut w, &mut verdict, |_, _, _, _| Ok(true))?;
    drop(w);
    if !verdict.ok {
        n.note(&format!(
            "warning: chain {} cannot be followed on ({}); starting a new chain",
            info.chain,
            verdict.problem.unwrap_or_default()
        ));
        return Ok(None);
    }
    let (seq, prev, txn, pos, last_time_us, last_checksum) = match &last {
        Some(h) => {
            let p = seg_path(&dir, h.seq);
            let bytes = std::fs::read(&p).ctx("cannot read", &p)?;
            let hash = crate::fsutil::hex(&bytes[bytes.len() - 32..]);
            let hash = h.end_hash.clone().unwrap_or(hash);
            (h.seq_last.unwrap_or(h.seq), hash, h.txn_last, h.wal, h.last_time_us, h.checksum_after.clone())
        }
        None => (0, info.base_sha256.clone(), 0, info.wal, info.base_time_us, info.base_checksum.clone()),
    };
    Ok(Some(Tip {
        dir,
        info,
        seq,
        prev,
        txn,
        pages,
        pos,
        last_time_us,
        last_checksum,
        lost: None,
        rebase: None,
        pending: Vec::new(),
    }))
}

/// A point rebuilt and written as an ordinary verified archive, for the restore path
/// (verify → plan → confirm → swap). The archive lives in a private staging directory that
/// goes when this is dropped.
pub struct PointArchive {
    pub point: Point,
    pub archive: PathBuf,
    _rebuilt: Staging,
    _out: Staging,
}

/// Rebuild the repository's database as of `at_us` ([`chain_for`], [`rebuild`]) and archive it.
pub fn point_archive(
    repo: &Path,
    at_us: u64,
    choice: ChainChoice,
    tmp_dir: Option<&Path>,
    n: &dyn Notice,
) -> Result<PointArchive> {
    let dir = chain_for(repo, at_us, choice)?;
    let info = read_info(&dir)?;
    let rebuilt = Staging::private(tmp_dir, STAGING_PREFIX)?;
    let point = rebuild(&dir, at_us, rebuilt.dir(), n)?;
    n.note(&format!(
        "Rebuilt chain {} at transaction {} (committed by {}) from {} segment(s), {} byte(s) read; checksum and integrity_check verified",
        point.chain, point.txn, point.time, point.segments_read, point.segment_bytes_read
    ));
    // The owner and mode the base recorded for the database.
    let base = dir.join("base").join(&info.base);
    let manifest = crate::archive::catalog::read_manifest(&base);
    let entry = manifest
        .as_ref()
        .and_then(|m| m.files.iter().find(|f| f.path == format!("data/{}", sqlite::DB_FILE)));
    let (mode, uid, gid) = entry.map(|e| (e.mode, e.uid, e.gid)).unwrap_or((0o600, 0, 0));
    let staged = vec![Copied {
        rel: PathBuf::from(sqlite::DB_FILE),
        staged: rebuilt.path().join(sqlite::DB_FILE),
        mode,
        uid,
        gid,
        reflinked: false,
        dir: false,
    }];
    let out = Staging::private(tmp_dir, STAGING_PREFIX)?;
    let out_path = out.path();
    let name = info.chain.rsplit_once('-').map(|(n, _)| n.to_string()).unwrap_or_else(|| "keyfount".into());
    let source = manifest.map(|m| m.source).unwrap_or(Source {
        kind: "path".into(),
        path: info.source.clone(),
        host: info.host.clone(),
        container: None,
        mounts: vec![],
    });
    let spec = ArchiveSpec {
        out: &out_path,
        name: &name,
        mode: Mode::Online,
        source,
        created: UNIX_EPOCH + Duration::from_micros(point.time_us),
        compression: Compression::default(),
        nice: 0,
    };
    let made = make::make(n, &spec, &Encryption::None, &staged)?;
    Ok(PointArchive { point, archive: made.written.path, _rebuilt: rebuilt, _out: out })
}

// ---------------------------------------------------------------------------------------------
// What the follower says about itself (`follower.json`): its heartbeat, lag and counts, for
// `status --max-lag`, the metrics file and the progress line.

/// The follower's state file in a chain's directory.
pub const FOLLOWER_FILE: &str = "follower.json";
/// How often the follower's state file is written (and the progress line's lag measured).
const STATE_EVERY: Duration = Duration::from_secs(1);
/// How often `--metrics-file` is written while following.
const METRICS_EVERY: Duration = Duration::from_secs(2);

/// `follower.json`: written by the follower after a read of the WAL, at most every second and
/// once more when it stops, atomically (`.partial`, fsync, rename, directory fsync).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FollowerState {
    pub chain: String,
    /// The database followed (as `chain.json` records it) and the host and process following.
    pub source: String,
    pub host: String,
    pub pid: u32,
    pub started_us: u64,
    /// When this was written (µs since the epoch): an old heartbeat is a follower that stopped.
    pub heartbeat_us: u64,
    /// Until when the follower knows every commit was shipped: the start of its last read
    /// that left nothing to repair. `heartbeat_us - current_us` is the lag it saw.
    pub current_us: u64,
    /// The chain's transaction counter, and when its last commit was seen committed.
    pub txn: u64,
    pub last_commit_us: Option<u64>,
    /// Bytes of committed WAL frames past the last one shipped (measured after the read).
    pub lag_bytes: u64,
    /// The size of the WAL file the follower reads.
    pub wal_bytes: u64,
    /// This run's counts.
    pub commits_shipped: u64,
    pub bytes_shipped: u64,
    pub segments_written: u64,
    /// Gaps in the chain (all of them, not only this run's).
    pub gaps: u64,
    /// The follower stopped cleanly (SIGTERM/SIGINT, after its last read); a killed one never
    /// says so.
    pub stopped: bool,
}

/// Read a chain's `follower.json`: None when there is none; an error (what to do) when it
/// cannot be read or is not a follower's report.
pub fn read_follower(dir: &Path) -> std::result::Result<Option<FollowerState>, String> {
    let p = dir.join(FOLLOWER_FILE);
    let bytes = match std::fs::read(&p) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(format!(
                "cannot read {}: {e} (run status as the user replicate runs as, root for the unit)",
                p.display()
            ))
        }
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| format!("{} is not a follower's report: {e}", p.display()))
}

/// The chain's source and host, as `chain.json` records them (for `status`).
pub fn chain_source(dir: &Path) -> Result<(String, String, u64)> {
    let info = read_info(dir)?;
    Ok((info.source, info.host, info.base_time_us))
}

/// What watches a follower besides its state file: the metrics file (path, `name` label).
#[derive(Debug, Clone, Default)]
pub struct Watch {
    pub metrics: Option<(PathBuf, String)>,
}

/// What a look at the WAL after a read found.
struct Unshipped {
    /// Bytes of committed frames past the position shipped.
    bytes: u64,
    /// The WAL file's size.
    len: u64,
    /// The generation (salts) and the frame count up to its last commit frame.
    end: Option<(u64, u64)>,
}

/// The committed frames past `pos` in the WAL (frames of its generation: the same salts, up
/// to the last commit frame), and the file's size. Headers only: the pages are not read.
fn unshipped_bytes(wal: &File, pos: Option<&Pos>, page_size: u32) -> Unshipped {
    use std::os::unix::fs::FileExt;
    let len = wal.metadata().map(|m| m.len()).unwrap_or(0);
    let (salts, start) = match pos {
        Some(p) => (p.salt_bytes(), p.frame),
        None => match wal::header(wal).ok().flatten() {
            Some(h) => (h.salts, 0),
            None => return Unshipped { bytes: 0, len, end: None },
        },
    };
    let frame_len = 24 + u64::from(page_size);
    let (mut frame, mut committed) = (start, start);
    let mut h = [0u8; 24];
    loop {
        let at = 32 + frame * frame_len;
        if at + frame_len > len || wal.read_exact_at(&mut h, at).is_err() || h[8..16] != salts {
            break;
        }
        frame += 1;
        if h[4..8] != [0; 4] {
            committed = frame;
        }
    }
    Unshipped {
        bytes: (committed - start) * frame_len,
        len,
        end: Some((u64::from_be_bytes(salts), committed)),
    }
}

/// The follower's heartbeat, progress line and metrics, updated after every read.
struct Watcher<'a> {
    watch: &'a Watch,
    state: FollowerState,
    /// Gaps in the chain before this run.
    base_gaps: u64,
    /// The end of the committed frames the last look at the WAL saw (salts, frame).
    seen_end: Option<(u64, u64)>,
    line: Box<dyn crate::progress::Stage>,
    written: Option<Instant>,
    metrics: Option<Instant>,
    warned: bool,
    n: &'a dyn Notice,
}

impl<'a> Watcher<'a> {
    fn new(watch: &'a Watch, tip: &Tip, n: &'a dyn Notice) -> Self {
        let gaps = verify_chain(&tip.dir, None).map(|v| v.gaps.len() as u64).unwrap_or(0);
        let line = n.progress().stage("replicate", 0, crate::progress::Unit::Line);
        let state = FollowerState {
            chain: tip.info.chain.clone(),
            source: tip.info.source.clone(),
            host: fsutil::hostname(),
            pid: std::process::id(),
            started_us: now_us(),
            heartbeat_us: now_us(),
            current_us: tip.last_time_us,
            txn: tip.txn,
            last_commit_us: (tip.txn > 0).then_some(tip.last_time_us),
            lag_bytes: 0,
            wal_bytes: 0,
            commits_shipped: 0,
            bytes_shipped: 0,
            segments_written: 0,
            gaps,
            stopped: false,
        };
        Watcher {
            watch,
            state,
            base_gaps: gaps,
            seen_end: None,
            line,
            written: None,
            metrics: None,
            warned: false,
            n,
        }
    }

    /// After a read: measure, show, and (every second, and when stopping) write.
    fn after_read(
        &mut self,
        tip: &Tip,
        wal: Option<&File>,
        known_us: u64,
        report: &FollowReport,
        stopping: bool,
    ) {
        let s = &mut self.state;
        s.gaps = self.base_gaps + report.gaps.len() as u64;
        // Current as of the read's start only if the read got past every commit the last
        // look saw (a read stops after 64 MiB: a backlog is not current, whatever it shipped).
        let caught_up = match (self.seen_end, tip.pos) {
            (Some((salts, end)), Some(p)) if p.salts == salts => p.frame >= end,
            _ => true,
        };
        if caught_up {
            s.current_us = known_us;
        }
        let u = wal.map(|f| unshipped_bytes(f, tip.pos.as_ref(), tip.info.page_size));
        let (lag_bytes, wal_bytes) = u.as_ref().map(|u| (u.bytes, u.len)).unwrap_or((0, 0));
        self.seen_end = u.and_then(|u| u.end);
        s.heartbeat_us = now_us();
        s.txn = tip.txn;
        s.last_commit_us = (tip.txn > 0).then_some(tip.last_time_us);
        s.lag_bytes = lag_bytes;
        s.wal_bytes = wal_bytes;
        s.commits_shipped = report.commits_shipped;
        s.bytes_shipped = report.bytes_written;
        s.segments_written = report.segments_written;
        s.stopped = stopping;
        self.line.message(progress_line(s));
        if stopping || self.written.is_none_or(|w| w.elapsed() >= STATE_EVERY) {
            let path = tip.dir.join(FOLLOWER_FILE);
            let bytes = serde_json::to_vec_pretty(&self.state).unwrap_or_default();
            if let Err(e) = fsutil::write_atomic(&path, &bytes, 0o600) {
                if !self.warned {
                    self.n.warn(&format!(
                        "warning: cannot write {} (status --max-lag will see this follower as stopped): {}",
                        path.display(),
                        e.chain()
                    ));
                    self.warned = true;
                }
            }
            self.written = Some(Instant::now());
        }
        if let Some((path, name)) = &self.watch.metrics {
            if stopping || self.metrics.is_none_or(|w| w.elapsed() >= METRICS_EVERY) {
                let facts = replication_facts(name, &self.state, !stopping, false, self.state.heartbeat_us);
                if let Some(w) = crate::monitor::write_replication_metrics(path, &facts) {
                    self.n.warn(&format!("warning: {w}"));
                }
                self.metrics = Some(Instant::now());
            }
        }
        if stopping {
            self.line.finish();
        }
    }
}

/// `lag 0.3 s, 0 B · 1,234 commits, 5.6 MiB in 42 segments · last commit 2026-12-04T15:30:05Z`
fn progress_line(s: &FollowerState) -> String {
    let lag = s.heartbeat_us.saturating_sub(s.current_us) as f64 / 1e6;
    format!(
        "lag {lag:.1} s, {} unshipped · {} commit(s), {} shipped in {} segment(s) · last commit {}",
        bytes(s.lag_bytes),
        s.commits_shipped,
        bytes(s.bytes_shipped),
        s.segments_written,
        s.last_commit_us
            .map(|t| humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_micros(t)).to_string())
            .unwrap_or_else(|| "none yet".into())
    )
}

fn bytes(n: u64) -> String {
    match n {
        n if n < 1024 => format!("{n} B"),
        n if n < 1 << 20 => format!("{:.1} KiB", n as f64 / 1024.0),
        n if n < 1 << 30 => format!("{:.1} MiB", n as f64 / 1048576.0),
        n => format!("{:.2} GiB", n as f64 / 1073741824.0),
    }
}

/// The metrics of a follower's state as of `now_us` (`up`: it is following; `broken`: its
/// chain is).
pub fn replication_facts(
    name: &str,
    s: &FollowerState,
    up: bool,
    broken: bool,
    now_us: u64,
) -> crate::monitor::ReplicationFacts {
    let secs = |us: u64| us as f64 / 1e6;
    crate::monitor::ReplicationFacts {
        name: name.to_string(),
        up,
        broken,
        lag_seconds: Some(secs(now_us.saturating_sub(s.current_us))),
        lag_bytes: Some(s.lag_bytes),
        current_unix: Some(secs(s.current_us)),
        heartbeat_unix: Some(secs(s.heartbeat_us)),
        last_commit_unix: s.last_commit_us.map(secs),
        transactions: Some(s.txn),
        commits_shipped: Some(s.commits_shipped),
        bytes_shipped: Some(s.bytes_shipped),
        gaps: Some(s.gaps),
    }
}

#[cfg(test)]
mod watch_tests {
    use super::*;

    /// The follower's lag in bytes counts the committed frames of the WAL's generation past
    /// the position shipped, by their headers, and nothing of another generation.
    #[test]
    fn unshipped_bytes_are_the_committed_frames_past_the_position() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("kf.db");
        let c = Connection::open(&db).unwrap();
        c.execute_batch("PRAGMA journal_mode=WAL; PRAGMA wal_autocheckpoint=0; CREATE TABLE t(x);").unwrap();
        for i in 0..3 {
            c.execute("INSERT INTO t VALUES (?1)", [i]).unwrap();
        }
        let wal = File::open(wal_path(&db)).unwrap();
        let len = wal.metadata().unwrap().len();
        let all = unshipped_bytes(&wal, None, 4096);
        assert_eq!(all.bytes, len - 32);
        assert_eq!(all.len, len);
        let (salts, end) = all.end.unwrap();
        assert_eq!(end, (len - 32) / (24 + 4096));
        // From the end: nothing; from a position of another generation: nothing either.
        let hdr = wal::header(&wal).unwrap().unwrap();
        let at_end = Pos { frame: end, ..hdr.start() };
        assert_eq!(at_end.salts, salts);
        assert_eq!(unshipped_bytes(&wal, Some(&at_end), 4096).bytes, 0);
        let from_one = Pos { frame: 1, ..hdr.start() };
        assert_eq!(unshipped_bytes(&wal, Some(&from_one), 4096).bytes, len - 32 - (24 + 4096));
        let other = Pos { salts: salts ^ 1, frame: 1, ..hdr.start() };
        assert_eq!(unshipped_bytes(&wal, Some(&other), 4096).bytes, 0);
    }

    #[test]
    fn replication_metrics_write_nan_for_what_is_unknown() {
        let f = crate::monitor::ReplicationFacts { name: "kf".into(), ..Default::default() };
        let text = crate::monitor::render_replication(&f);
        assert!(text.contains("kfadmin_replication_up{name=\"kf\"} 0\n"), "{text}");
        assert!(text.contains("kfadmin_replication_lag_seconds{name=\"kf\"} NaN\n"), "{text}");
        assert!(text.contains("kfadmin_replication_current_timestamp_seconds{name=\"kf\"} NaN\n"), "{text}");
    }
}
