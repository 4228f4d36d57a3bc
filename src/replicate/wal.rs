//! Following a live server's `-wal` from another process, read-only: frames are taken only
//! when their salts are the WAL header's and SQLite's cumulative checksum verifies, and only up
//! to the last commit frame. Nothing here writes to the server's files.

use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::FileExt;

use serde::{Deserialize, Serialize};

use super::digest::Pages;
use crate::sqlite::wal::checksum;

const HEADER: u64 = 32;
const FRAME_HEADER: u64 = 24;
const MAGIC: u32 = 0x377f_0682;
const VERSION: u32 = 3_007_000;

fn be(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

/// A WAL header that SQLite would accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub big_endian: bool,
    pub page_size: u32,
    pub checkpoint_seq: u32,
    pub salts: [u8; 8],
    pub cksum: (u32, u32),
}

impl Header {
    /// The position before this generation's first frame.
    pub fn start(&self) -> Pos {
        Pos {
            salts: u64::from_be_bytes(self.salts),
            checkpoint_seq: self.checkpoint_seq,
            frame: 0,
            cksum: [self.cksum.0, self.cksum.1],
            big_endian: self.big_endian,
        }
    }
}

/// A position in one generation of the WAL: after frame `frame` (0: before the first), whose
/// cumulative checksum is `cksum`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pos {
    /// The header's two salts, as one big-endian integer.
    pub salts: u64,
    pub checkpoint_seq: u32,
    pub frame: u64,
    pub cksum: [u32; 2],
    pub big_endian: bool,
}

impl Pos {
    pub fn salt_bytes(&self) -> [u8; 8] {
        self.salts.to_be_bytes()
    }
    /// The first salt, which SQLite increments at each restart of the WAL.
    pub fn salt1(&self) -> u32 {
        (self.salts >> 32) as u32
    }
}

/// The WAL's header, when it has a valid one.
pub fn header(f: &File) -> std::io::Result<Option<Header>> {
    let mut h = [0u8; HEADER as usize];
    match f.read_exact_at(&mut h, 0) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let magic = be(&h);
    let big_endian = magic & 1 == 1;
    let page_size = be(&h[8..]);
    if magic & !1 != MAGIC
        || be(&h[4..]) != VERSION
        || !(512..=65536).contains(&page_size)
        || !page_size.is_power_of_two()
        || checksum(big_endian, &h[..24], (0, 0)) != (be(&h[24..]), be(&h[28..]))
    {
        return Ok(None);
    }
    let mut salts = [0u8; 8];
    salts.copy_from_slice(&h[16..24]);
    Ok(Some(Header {
        big_endian,
        page_size,
        checkpoint_seq: be(&h[12..]),
        salts,
        cksum: (be(&h[24..]), be(&h[28..])),
    }))
}

fn offset(page_size: u32, frame: u64) -> u64 {
    HEADER + (frame - 1) * (FRAME_HEADER + u64::from(page_size))
}

/// One committed transaction: the last version of each page it wrote.
#[derive(Debug, Clone)]
pub struct Commit {
    pub pages: Vec<(u32, Vec<u8>)>,
    pub db_pages: u32,
    pub end: Pos,
}

/// What lies after the last commit frame that verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum After {
    /// The file ends there.
    Eof,
    /// A frame header with these salts (a frame of this generation that is not committed or
    /// does not verify, or a frame of another generation).
    Frame([u8; 8]),
}

/// Frames read from a position on.
#[derive(Debug, Clone)]
pub struct Read {
    pub commits: Vec<Commit>,
    /// Where reading stopped (after the last commit; `from` when there was none).
    pub end: Pos,
    /// Whether there may be more committed frames past `max_bytes`.
    pub more: bool,
    pub after: After,
}

/// Walk frames after `from`; call `each` for every verified frame (page number, its offset in
/// the file, commit size or 0, the page, the position after it). Stops at the first frame that
/// does not verify, or after a commit once `max_frames` were walked. Returns the position after
/// the last commit frame, whether it stopped for `max_frames`, and what follows that commit.
fn walk(
    f: &File,
    from: &Pos,
    page_size: u32,
    max_frames: u64,
    mut each: impl FnMut(u32, u64, u32, &[u8], &Pos) -> std::io::Result<()>,
) -> std::io::Result<(Pos, bool, After)> {
    let frame_len = FRAME_HEADER + u64::from(page_size);
    let mut h = [0u8; FRAME_HEADER as usize];
    let mut page = vec![0u8; page_size as usize];
    let salts = from.salt_bytes();
    let mut here = *from;
    let mut last = *from;
    let size = f.metadata()?.len();
    loop {
        let at = offset(page_size, here.frame + 1);
        if at + frame_len > size {
            break;
        }
        f.read_exact_at(&mut h, at)?;
        f.read_exact_at(&mut page, at + FRAME_HEADER)?;
        let pgno = be(&h);
        if h[8..16] != salts || pgno == 0 {
            break;
        }
        let sum = (here.cksum[0], here.cksum[1]);
        let next = checksum(from.big_endian, &page, checksum(from.big_endian, &h[..8], sum));
        if next != (be(&h[16..]), be(&h[20..])) {
            break;
        }
        here = Pos { frame: here.frame + 1, cksum: [next.0, next.1], ..*from };
        let commit = be(&h[4..]);
        each(pgno, at, commit, &page, &here)?;
        if commit != 0 {
            last = here;
            if last.frame - from.frame >= max_frames {
                return Ok((last, true, read_salts(f, offset(page_size, last.frame + 1))?));
            }
        }
    }
    Ok((last, false, read_salts(f, offset(page_size, last.frame + 1))?))
}

fn read_salts(f: &File, at: u64) -> std::io::Result<After> {
    let mut h = [0u8; FRAME_HEADER as usize];
    match f.read_exact_at(&mut h, at) {
        Ok(()) => Ok(After::Frame(h[8..16].try_into().expect("8 bytes"))),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(After::Eof),
        Err(e) => Err(e),
    }
}

/// The committed transactions after `from`, at most about `max_bytes` of pages (always whole
/// transactions).
pub fn read_commits(f: &File, from: &Pos, page_size: u32, max_bytes: u64) -> std::io::Result<Read> {
    let max_frames = (max_bytes / u64::from(page_size)).max(1);
    let mut commits = Vec::new();
    let mut pending: Vec<(u32, Vec<u8>)> = Vec::new();
    let mut index: HashMap<u32, usize> = HashMap::new();
    let (end, more, after) = walk(f, from, page_size, max_frames, |pgno, _, commit, page, here| {
        match index.get(&pgno) {
            Some(&i) => pending[i].1.copy_from_slice(page),
            None => {
                index.insert(pgno, pending.len());
                pending.push((pgno, page.to_vec()));
            }
        }
        if commit != 0 {
            index.clear();
            // Pages the transaction wrote and then cut off are not part of what it committed.
            let mut pages = std::mem::take(&mut pending);
            pages.retain(|(p, _)| *p <= commit);
            commits.push(Commit { pages, db_pages: commit, end: *here });
        }
        Ok(())
    })?;
    Ok(Read { commits, end, more, after })
}

/// The live database as of the last commit in its WAL's current generation: the database file
/// overlaid with the last committed version of each page in the WAL. The file is stable under
/// a pinned read transaction (a checkpoint only writes pages that are in the WAL).
pub struct Live {
    pub pages: Pages,
    /// The WAL position the state is of (None: no valid WAL; the database file alone).
    pub pos: Option<Pos>,
    pub db_pages: u32,
}

/// The page size a database file's header records.
pub fn db_page_size(db: &File) -> std::io::Result<Option<u32>> {
    let mut h = [0u8; 100];
    match db.read_exact_at(&mut h, 0) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    if &h[..16] != b"SQLite format 3\0" {
        return Ok(None);
    }
    let raw = u32::from(u16::from_be_bytes([h[16], h[17]]));
    Ok(Some(if raw == 1 { 65536 } else { raw }))
}

/// Whether a database file's header says it is in WAL mode (read and write versions 2): in
/// rollback-journal mode, commits go straight into the file and no WAL can be followed.
pub fn db_is_wal(db: &File) -> std::io::Result<bool> {
    let mut h = [0u8; 20];
    match db.read_exact_at(&mut h, 0) {
        Ok(()) => Ok(h[18] == 2 && h[19] == 2),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(false),
        Err(e) => Err(e),
    }
}

/// Read the live state (see [`Live`]), calling `each` with every page in order.
pub fn live(
    db: &File,
    wal: Option<&File>,
    page_size: u32,
    mut each: impl FnMut(u32, &[u8]) -> std::io::Result<()>,
) -> std::io::Result<Live> {
    let mut latest: HashMap<u32, u64> = HashMap::new();
    let mut pos = None;
    let mut db_pages = (db.metadata()?.len() / u64::from(page_size)) as u32;
    if let Some(wal) = wal {
        if let Some(h) = header(wal)?.filter(|h| h.page_size == page_size) {
            let start = h.start();
            let mut pending: Vec<(u32, u64)> = Vec::new();
            let (end, _, _) = walk(wal, &start, page_size, u64::MAX, |pgno, at, commit, _, _| {
                pending.push((pgno, at));
                if commit != 0 {
                    latest.extend(pending.drain(..));
                    db_pages = commit;
                }
                Ok(())
            })?;
            pos = Some(end);
        }
    }
    let mut pages = Pages::new(page_size);
    let mut buf = vec![0u8; page_size as usize];
    for pgno in 1..=db_pages {
        buf.fill(0);
        match latest.get(&pgno) {
            Some(&at) => wal.expect("frames come from the WAL").read_exact_at(&mut buf, at + FRAME_HEADER)?,
            None => {
                let mut got = 0;
                let base = u64::from(pgno - 1) * u64::from(page_size);
                while got < buf.len() {
                    match db.read_at(&mut buf[got..], base + got as u64)? {
                        0 => break,
                        k => got += k,
                    }
                }
            }
        }
        pages.set(pgno, &buf);
        each(pgno, &buf)?;
    }
    pages.resize(db_pages);
    Ok(Live { pages, pos, db_pages })
}

#[cfg(test)]
mod against_sqlite {
    use super::*;

    /// What the follower reads from a live WAL is what SQLite committed: one record per
    /// transaction, and the database file overlaid with the WAL has exactly the pages the
    /// database has once SQLite checkpoints it.
    #[test]
    fn the_follower_reads_what_sqlite_committed() {
        let t = tempfile::tempdir().unwrap();
        let db = t.path().join("live.db");
        let c = rusqlite::Connection::open(&db).unwrap();
        c.execute_batch("PRAGMA journal_mode=WAL; PRAGMA wal_autocheckpoint=0; CREATE TABLE t(x BLOB);")
            .unwrap();
        c.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)").unwrap();
        for i in 0..7 {
            c.execute("INSERT INTO t VALUES (randomblob(?1))", [1000 + i * 900]).unwrap();
        }
        c.execute_batch("DELETE FROM t WHERE rowid % 2 = 0").unwrap();
        let wal_file = File::open(t.path().join("live.db-wal")).unwrap();
        let h = header(&wal_file).unwrap().expect("a valid header");
        let read = read_commits(&wal_file, &h.start(), h.page_size, u64::MAX).unwrap();
        assert_eq!(read.commits.len(), 8);
        assert!(!read.more);
        // From the middle on: the same commits after it.
        let half = read_commits(&wal_file, &read.commits[3].end, h.page_size, u64::MAX).unwrap();
        assert_eq!(half.commits.len(), 4);
        assert_eq!(half.end, read.end);
        let db_file = File::open(&db).unwrap();
        let live = live(&db_file, Some(&wal_file), h.page_size, |_, _| Ok(())).unwrap();
        assert_eq!(live.pos, Some(read.end));
        c.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)").unwrap();
        let after = live_of_file(&db, h.page_size);
        assert_eq!(live.db_pages, after.len());
        assert_eq!(live.pages.sum(), after.sum());
    }

    fn live_of_file(db: &std::path::Path, page_size: u32) -> Pages {
        let f = File::open(db).unwrap();
        live(&f, None, page_size, |_, _| Ok(())).unwrap().pages
    }
}
