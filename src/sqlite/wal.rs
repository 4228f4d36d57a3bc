//! SQLite's write-ahead log read byte by byte, as the file format describes it
//! (<https://www.sqlite.org/fileformat2.html#walformat>), for a `-wal` captured in a tarball:
//! which frames SQLite's own recovery would replay (every frame up to the last commit frame
//! before the first frame whose salt or cumulative checksum is wrong), and whether the `-shm`
//! captured beside it tells the same story. The `-shm` is never used to replay anything: it can
//! only give a reason to refuse.

use std::fs::File;
use std::io::{BufReader, Read, Seek};
use std::os::unix::fs::FileExt;

const HEADER: u64 = 32;
const FRAME_HEADER: u64 = 24;
const MAGIC: u32 = 0x377f_0682;
const VERSION: u32 = 3_007_000;

/// What a `-wal` holds.
#[derive(Debug, Clone, Default)]
pub struct Scan {
    /// The header is valid: SQLite would read the frames (otherwise it ignores the file, or
    /// refuses it).
    pub header_ok: bool,
    pub page_size: u32,
    pub salts: [u8; 8],
    /// Frames in the file; a torn last frame counts as one.
    pub frames: u64,
    /// Frames up to the last valid commit frame: what SQLite's recovery replays.
    pub valid: u64,
    /// Commit frames among them: transactions.
    pub commits: u64,
    /// The cumulative checksum at frame `valid`.
    pub checksum: (u32, u32),
    /// The database's size in pages after the last valid commit.
    pub db_pages: u32,
    /// Why the frames after `valid` are not replayed (empty when there are none).
    pub stop: String,
    /// The page number of each frame up to `valid`.
    pub pages: Vec<u32>,
}

impl Scan {
    pub fn dropped(&self) -> u64 {
        self.frames - self.valid
    }

    /// Where frame `n` (1-based) starts in the file.
    fn offset(&self, n: u64) -> u64 {
        HEADER + (n - 1) * (FRAME_HEADER + u64::from(self.page_size))
    }
}

fn be(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

/// SQLite's WAL checksum: a Fletcher-like sum over 32-bit words, read big-endian when
/// `big_endian` (the magic number's low bit), continuing from `s`.
pub(crate) fn checksum(big_endian: bool, data: &[u8], mut s: (u32, u32)) -> (u32, u32) {
    for w in data.chunks_exact(8) {
        let (a, b) = if big_endian {
            (be(&w[..4]), be(&w[4..]))
        } else {
            (u32::from_le_bytes([w[0], w[1], w[2], w[3]]), u32::from_le_bytes([w[4], w[5], w[6], w[7]]))
        };
        s.0 = s.0.wrapping_add(a).wrapping_add(s.1);
        s.1 = s.1.wrapping_add(b).wrapping_add(s.0);
    }
    s
}

/// Read a `-wal` of `size` bytes beside a database whose pages are `db_page_size` bytes.
pub fn scan(wal: &File, size: u64, db_page_size: u32) -> std::io::Result<Scan> {
    let mut s = Scan { page_size: db_page_size, ..Scan::default() };
    let frame_len = FRAME_HEADER + u64::from(db_page_size);
    if size > HEADER {
        let body = size - HEADER;
        s.frames = body / frame_len + u64::from(body % frame_len != 0);
    }
    let mut r = BufReader::with_capacity(1 << 20, wal);
    r.seek(std::io::SeekFrom::Start(0))?;
    let mut head = [0u8; HEADER as usize];
    if size < HEADER || r.read_exact(&mut head).is_err() {
        s.stop = "the WAL header is incomplete".into();
        return Ok(s);
    }
    let magic = be(&head[0..]);
    let big_endian = magic & 1 == 1;
    let why = if magic & !1 != MAGIC {
        Some("the WAL header's magic number is wrong".to_string())
    } else if be(&head[4..]) != VERSION {
        Some(format!("the WAL is of version {}, not {VERSION}", be(&head[4..])))
    } else if be(&head[8..]) != db_page_size {
        Some(format!("the WAL's page size {} is not the database's {db_page_size}", be(&head[8..])))
    } else if checksum(big_endian, &head[..24], (0, 0)) != (be(&head[24..]), be(&head[28..])) {
        Some("the WAL header's checksum is wrong".to_string())
    } else {
        None
    };
    if let Some(why) = why {
        s.stop = why;
        return Ok(s);
    }
    s.header_ok = true;
    s.salts.copy_from_slice(&head[16..24]);
    frames(&mut r, big_endian, (be(&head[24..]), be(&head[28..])), &mut s)?;
    Ok(s)
}

/// Walk the frames after the header; see [`scan`].
fn frames(r: &mut impl Read, big_endian: bool, mut sum: (u32, u32), s: &mut Scan) -> std::io::Result<()> {
    let mut frame = vec![0u8; FRAME_HEADER as usize + s.page_size as usize];
    let mut pages = Vec::new();
    let mut reason = None;
    for n in 1..=s.frames {
        if read_full(r, &mut frame)? < frame.len() {
            reason = Some(format!("frame {n} is torn (the file ends inside it)"));
            break;
        }
        let (h, page) = frame.split_at(FRAME_HEADER as usize);
        if h[8..16] != s.salts {
            reason = Some(format!(
                "frame {n}'s salt is not the WAL header's: it is left from an earlier use of the file"
            ));
            break;
        }
        let next = checksum(big_endian, page, checksum(big_endian, &h[..8], sum));
        if be(&h[0..]) == 0 || next != (be(&h[16..]), be(&h[20..])) {
            reason = Some(format!("frame {n}'s checksum is wrong: it is torn or was overwritten"));
            break;
        }
        sum = next;
        pages.push(be(&h[0..]));
        if be(&h[4..]) != 0 {
            s.valid = n;
            s.commits += 1;
            s.checksum = sum;
            s.db_pages = be(&h[4..]);
            s.pages.append(&mut pages);
        }
    }
    if s.valid < s.frames {
        let uncommitted = (!pages.is_empty())
            .then(|| format!("{} frame(s) of a transaction that never committed", pages.len()));
        s.stop = uncommitted.into_iter().chain(reason).collect::<Vec<_>>().join("; then ");
    }
    Ok(())
}

/// Damage in the middle of a `-wal`, not a torn tail: what SQLite's recovery would silently
/// leave out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Damage {
    /// The first frame recovery cannot read (0: the WAL header itself).
    pub at: u64,
    /// Committed transactions from there on that recovery would drop.
    pub lost_commits: u64,
}

/// Whether the frames past where [`scan`] stopped were written by the server in the same use
/// of the file (a frame that verifies against the checksum stored in the frame before it, with
/// the same salt): then the stop is damage (a flipped bit, a bad sector) and not a torn tail,
/// and every commit frame from the bad frame on is a committed transaction recovery would drop.
/// A damaged WAL header counts too when its first frame has the header's salt or verifies
/// against the header's stored checksum.
pub fn damage(wal: &File, size: u64, s: &Scan) -> std::io::Result<Option<Damage>> {
    let frame_len = FRAME_HEADER + u64::from(s.page_size);
    let whole = if size > HEADER { (size - HEADER) / frame_len } else { 0 };
    let mut head = [0u8; HEADER as usize];
    if whole == 0 || wal.read_exact_at(&mut head, 0).is_err() {
        return Ok(None);
    }
    let first = if s.header_ok { s.valid + 1 } else { 1 };
    if first > whole {
        return Ok(None);
    }
    let mut frame = vec![0u8; frame_len as usize];
    let mut seed = [0u8; 8];
    if first == 1 {
        seed.copy_from_slice(&head[24..32]);
    } else {
        wal.read_exact_at(&mut seed, s.offset(first - 1) + 16)?;
    }
    wal.read_exact_at(&mut frame, s.offset(first))?;
    let salts: [u8; 8] = if s.header_ok { s.salts } else { frame[8..16].try_into().unwrap_or_default() };
    // With a bad header, recovery reads no frame: the damage is before the first one.
    let mut bad = (!s.header_ok).then_some(0);
    let (mut lost, mut verified_after) = (0, false);
    for n in first..=whole {
        if n > first {
            wal.read_exact_at(&mut frame, s.offset(n))?;
        }
        let ok = frame[8..16] == salts && verifies(&frame, &seed);
        if n == first && !s.header_ok && !(head[16..24] == frame[8..16] || ok) {
            return Ok(None); // a header that is not this file's: nothing of it is the server's
        }
        let commit = frame[8..16] == salts && be(&frame[4..]) != 0;
        if bad.is_none() && !ok {
            bad = Some(n);
            lost += u64::from(commit); // the damaged frame's own transaction, when it says so
        } else if bad.is_some() && ok {
            verified_after = true;
            lost += u64::from(commit);
        }
        seed.copy_from_slice(&frame[16..24]);
    }
    let at = bad.unwrap_or(0);
    Ok(verified_after.then_some(Damage { at, lost_commits: lost }))
}

/// Whether a frame's stored checksum follows from `seed` (the checksum stored before it), in
/// either byte order (a damaged header's magic number cannot be trusted to say which).
fn verifies(frame: &[u8], seed: &[u8]) -> bool {
    let (h, page) = frame.split_at(FRAME_HEADER as usize);
    let want = (be(&h[16..]), be(&h[20..]));
    [true, false]
        .into_iter()
        .any(|big| checksum(big, page, checksum(big, &h[..8], (be(seed), be(&seed[4..])))) == want)
}

fn read_full(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// The wal-index header of a captured `-shm`: what the server had committed, and how much of
/// it a checkpoint had copied into the database, when the `-shm` was read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shm {
    pub valid: u64,
    pub salts: [u8; 8],
    pub checksum: (u32, u32),
    /// Frames a checkpoint finished copying into the database.
    pub backfilled: u64,
    /// Frames a checkpoint had started to copy (some of them may be in the database).
    pub attempted: u64,
}

fn ne(b: &[u8]) -> u32 {
    u32::from_ne_bytes([b[0], b[1], b[2], b[3]])
}

/// Parse the first 136 bytes of a `-shm` (native byte order, as SQLite writes it); Err says why
/// it is not a consistent wal-index header.
pub fn read_shm(b: &[u8]) -> Result<Shm, String> {
    if b.len() < 136 {
        return Err(format!("the -shm is {} bytes, too short for a wal-index header", b.len()));
    }
    if b[..48] != b[48..96] {
        return Err("the -shm's two header copies differ: it was captured while the server updated it".into());
    }
    let sum = checksum(cfg!(target_endian = "big"), &b[..40], (0, 0));
    if ne(&b[0..]) != VERSION || b[12] != 1 || sum != (ne(&b[40..]), ne(&b[44..])) {
        return Err("the -shm's header is not a valid wal-index header".into());
    }
    let mut salts = [0u8; 8];
    salts.copy_from_slice(&b[32..40]);
    Ok(Shm {
        valid: u64::from(ne(&b[16..])),
        salts,
        checksum: (ne(&b[24..]), ne(&b[28..])),
        backfilled: u64::from(ne(&b[96..])),
        attempted: u64::from(ne(&b[128..])),
    })
}

/// Why the `-wal` and `-shm` captured together cannot be one moment of the same server (None
/// when they agree). `wal`: None when the tarball has no `-wal`.
pub fn shm_problem(wal: Option<&Scan>, shm: &Shm) -> Option<String> {
    let Some(wal) = wal else {
        return (shm.valid > 0).then(|| {
            format!(
                "the -shm says the WAL held {} committed frame(s), but the tarball has no -wal",
                shm.valid
            )
        });
    };
    if shm.valid == 0 && wal.valid == 0 {
        return None;
    }
    if shm.salts != wal.salts {
        return Some("the -shm describes another use of the -wal file (their salts differ)".into());
    }
    if shm.valid != wal.valid || shm.checksum != wal.checksum {
        return Some(format!(
            "the -shm says the WAL held {} committed frame(s), the -wal holds {}",
            shm.valid, wal.valid
        ));
    }
    None
}

/// Whether the database file holds what the checkpoint the `-shm` describes copied into it:
/// for every page among the frames it backfilled, the version of the last such frame (or of
/// the last frame it had started to copy). Anything else means the database file was read at
/// another moment than the `-wal` and `-shm`. Returns the first page that differs.
pub fn backfill_problem(db: &File, wal: &File, scan: &Scan, shm: &Shm) -> std::io::Result<Option<String>> {
    let done = shm.backfilled.min(scan.valid) as usize;
    let tried = shm.attempted.clamp(shm.backfilled, scan.valid) as usize;
    // For each page: the last frame up to `done`, and the last one up to `tried`.
    let mut last: std::collections::BTreeMap<u32, (Option<u64>, u64)> = Default::default();
    for (i, &p) in scan.pages[..tried].iter().enumerate() {
        let e = last.entry(p).or_insert((None, 0));
        if i < done {
            e.0 = Some(i as u64 + 1);
        }
        e.1 = i as u64 + 1;
    }
    let size = scan.page_size as usize;
    let (mut have, mut want) = (vec![0u8; size], vec![0u8; size]);
    for (&page, &(done_frame, tried_frame)) in &last {
        let Some(done_frame) = done_frame else { continue };
        if page > scan.db_pages {
            continue;
        }
        let n = db.read_at(&mut have, u64::from(page - 1) * size as u64)?;
        let mut same = false;
        for frame in [done_frame, tried_frame] {
            wal.read_exact_at(&mut want, scan.offset(frame) + FRAME_HEADER)?;
            same |= n == size && have == want;
        }
        if !same {
            return Ok(Some(format!(
                "page {page} of the database is not what the checkpoint the -shm records wrote there"
            )));
        }
    }
    Ok(None)
}

/// Why the `-wal`'s versions of page 1 (the database header) cannot follow the database
/// file's page 1 (None: they can, or the `-wal` never writes page 1). SQLite keeps the page
/// size, reserved space and text encoding for a database's life, and the header's change
/// counter never goes down: a writer stamps page 1 with the counter it last read, plus one.
/// So the `-wal`'s page-1 frames must agree with the file on the first, and their counters
/// must not fall, from the file's to the last frame's, unless the file's page 1 is one of
/// those frames (a checkpoint copied it there). A `-wal` that breaks this is another
/// database's, a mix of two, or of another moment.
pub fn page1_problem(db: &File, wal: &File, scan: &Scan) -> std::io::Result<Option<String>> {
    let size = scan.page_size as usize;
    let mut mine = vec![0u8; size];
    if size < 100 || db.read_exact_at(&mut mine, 0).is_err() {
        return Ok(None);
    }
    let mut theirs = vec![0u8; size];
    let (mut counters, mut copied) = (Vec::new(), false);
    for (i, _) in scan.pages.iter().enumerate().filter(|(_, &p)| p == 1) {
        wal.read_exact_at(&mut theirs, scan.offset(i as u64 + 1) + FRAME_HEADER)?;
        let fixed = |b: &[u8]| [&b[..18], &b[20..24], &b[56..60]].concat();
        if fixed(&theirs) != fixed(&mine) {
            return Ok(Some(format!(
                "frame {}, a version of page 1, has another header than the database file's (page size, reserved space or text encoding)",
                i + 1
            )));
        }
        copied |= theirs == mine;
        counters.push((i + 1, be(&theirs[24..])));
    }
    let Some(&(first_frame, first)) = counters.first() else { return Ok(None) };
    if let Some(w) = counters.windows(2).find(|w| w[1].1 < w[0].1) {
        return Ok(Some(format!(
            "the database header's change counter goes back from {} (frame {}) to {} (frame {}): its frames are of two databases",
            w[0].1, w[0].0, w[1].1, w[1].0
        )));
    }
    let have = be(&mine[24..]);
    if have > first && !copied {
        return Ok(Some(format!(
            "the database file's header has change counter {have}, its first version in the -wal (frame {first_frame}) the older {first}"
        )));
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// A WAL of the frames `(page, db size after commit or 0)`, little-endian checksums.
    fn wal(page_size: u32, frames: &[(u32, u32)]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut h = Vec::new();
        h.extend(MAGIC.to_be_bytes());
        h.extend(VERSION.to_be_bytes());
        h.extend(page_size.to_be_bytes());
        h.extend(0u32.to_be_bytes());
        h.extend([1, 2, 3, 4, 5, 6, 7, 8]);
        let mut sum = checksum(false, &h, (0, 0));
        h.extend(sum.0.to_be_bytes());
        h.extend(sum.1.to_be_bytes());
        out.extend(&h);
        for &(page, commit) in frames {
            let mut f = Vec::new();
            f.extend(page.to_be_bytes());
            f.extend(commit.to_be_bytes());
            f.extend([1, 2, 3, 4, 5, 6, 7, 8]);
            let data = vec![page as u8; page_size as usize];
            sum = checksum(false, &data, checksum(false, &f[..8], sum));
            f.extend(sum.0.to_be_bytes());
            f.extend(sum.1.to_be_bytes());
            f.extend(data);
            out.extend(f);
        }
        out
    }

    fn scan_bytes(bytes: &[u8], page_size: u32) -> Scan {
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(bytes).unwrap();
        scan(&f, bytes.len() as u64, page_size).unwrap()
    }

    #[test]
    fn only_committed_checksummed_frames_count() {
        let w = wal(512, &[(1, 0), (2, 2), (3, 0), (1, 3), (2, 0)]);
        let s = scan_bytes(&w, 512);
        assert_eq!((s.frames, s.valid, s.commits, s.db_pages), (5, 4, 2, 3));
        assert!(s.stop.contains("never committed"), "{}", s.stop);
        // Torn in the middle of frame 4: frames 1-2 stay.
        let s = scan_bytes(&w[..32 + 3 * 536 + 100], 512);
        assert_eq!((s.frames, s.valid, s.commits), (4, 2, 1));
        assert!(s.stop.contains("torn"), "{}", s.stop);
        // A flipped byte in frame 2's page breaks the chain from there on.
        let mut bad = w.clone();
        bad[32 + 536 + 30] ^= 1;
        let s = scan_bytes(&bad, 512);
        assert_eq!((s.valid, s.dropped()), (0, 5));
        assert!(s.stop.contains("frame 2's checksum"), "{}", s.stop);
        // Another salt in frame 3 (left from an earlier use of the file).
        let mut old = w.clone();
        old[32 + 2 * 536 + 8] ^= 1;
        let s = scan_bytes(&old, 512);
        assert_eq!(s.valid, 2);
        assert!(s.stop.contains("salt"), "{}", s.stop);
        // A header for another page size is not replayed at all.
        assert_eq!(scan_bytes(&w, 1024).valid, 0);
        assert_eq!(scan_bytes(&w[..20], 512).stop, "the WAL header is incomplete");
    }

    fn damage_of(bytes: &[u8]) -> Option<Damage> {
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(bytes).unwrap();
        damage(&f, bytes.len() as u64, &scan(&f, bytes.len() as u64, 512).unwrap()).unwrap()
    }

    #[test]
    fn damage_in_the_middle_is_told_from_a_torn_or_unfinished_end() {
        let w = wal(512, &[(1, 0), (2, 2), (3, 0), (1, 3), (2, 0), (4, 4), (5, 5)]);
        assert_eq!(damage_of(&w), None);
        // A torn last frame, an unfinished transaction, frames of an earlier use: not damage.
        assert_eq!(damage_of(&w[..32 + 6 * 536 + 100]), None);
        assert_eq!(damage_of(&w[..32 + 5 * 536]), None);
        let mut old = w.clone();
        old[32 + 4 * 536 + 8] ^= 1;
        old[32 + 5 * 536 + 8] ^= 1;
        old[32 + 6 * 536 + 8] ^= 1;
        assert_eq!(damage_of(&old), None);
        // A flipped bit in frame 4 (a commit) with frames after it that verify: 3 commits lost.
        let mut bad = w.clone();
        bad[32 + 3 * 536 + 30] ^= 1;
        assert_eq!(damage_of(&bad), Some(Damage { at: 4, lost_commits: 3 }));
        // A flipped bit in the header: every commit.
        let mut head = w.clone();
        head[13] ^= 1;
        assert_eq!(damage_of(&head), Some(Damage { at: 0, lost_commits: 4 }));
    }

    #[test]
    fn shm_must_tell_the_same_story() {
        let s = scan_bytes(&wal(512, &[(1, 1), (2, 2)]), 512);
        let mut shm = Shm { valid: 2, salts: s.salts, checksum: s.checksum, backfilled: 0, attempted: 0 };
        assert_eq!(shm_problem(Some(&s), &shm), None);
        shm.valid = 1;
        assert!(shm_problem(Some(&s), &shm).is_some());
        assert!(shm_problem(None, &shm).unwrap().contains("no -wal"));
        shm.valid = 2;
        shm.salts[0] ^= 1;
        assert!(shm_problem(Some(&s), &shm).unwrap().contains("salts"));
    }
}

#[cfg(test)]
mod against_sqlite {
    use super::*;

    /// A copy of a database and its `-wal`, taken while a connection is in the middle of a
    /// transaction that spilled uncommitted frames into the WAL: kfadmin counts exactly the
    /// frames SQLite's recovery replays, and the `-shm` agrees.
    #[test]
    fn kfadmin_counts_what_sqlite_replays() {
        let t = tempfile::tempdir().unwrap();
        let db = t.path().join("live.db");
        let c = rusqlite::Connection::open(&db).unwrap();
        c.execute_batch(
            "PRAGMA journal_mode=WAL; PRAGMA wal_autocheckpoint=0; PRAGMA cache_size=2;
             CREATE TABLE t(x BLOB);",
        )
        .unwrap();
        for _ in 0..5 {
            c.execute_batch("INSERT INTO t VALUES (randomblob(3000))").unwrap();
        }
        c.execute_batch(
            "BEGIN; WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 24)
             INSERT INTO t SELECT randomblob(3000) FROM n;",
        )
        .unwrap();
        let copy = t.path().join("copy");
        std::fs::create_dir(&copy).unwrap();
        for s in ["", "-wal", "-shm"] {
            std::fs::copy(format!("{}{s}", db.display()), copy.join(format!("kf.db{s}"))).unwrap();
        }
        c.execute_batch("ROLLBACK").unwrap();
        let wal = File::open(copy.join("kf.db-wal")).unwrap();
        let scan = scan(&wal, wal.metadata().unwrap().len(), 4096).unwrap();
        assert!(scan.valid > 0 && scan.frames > scan.valid, "{scan:?}");
        assert!(scan.stop.contains("never committed"), "{}", scan.stop);
        let shm = std::fs::read(copy.join("kf.db-shm")).unwrap();
        let shm = read_shm(&shm).unwrap();
        assert_eq!(shm_problem(Some(&scan), &shm), None);
        std::fs::remove_file(copy.join("kf.db-shm")).unwrap();
        assert_eq!(crate::sqlite::replay_wal(&copy.join("kf.db")).unwrap(), scan.valid);
    }
}

#[cfg(test)]
mod page1 {
    use super::*;

    /// `(db, wal)` copies of a live WAL database after `writes` commits by two connections, and
    /// optionally a PASSIVE checkpoint (the database's page 1 then is one of the frames).
    fn capture(dir: &std::path::Path, checkpoint: bool) -> (std::path::PathBuf, std::path::PathBuf) {
        let dir = &dir.join(format!("live-{checkpoint}"));
        std::fs::create_dir(dir).unwrap();
        let db = dir.join("live.db");
        let a = rusqlite::Connection::open(&db).unwrap();
        a.execute_batch("PRAGMA journal_mode=WAL; PRAGMA wal_autocheckpoint=0; CREATE TABLE t(x BLOB);")
            .unwrap();
        a.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)").unwrap();
        let b = rusqlite::Connection::open(&db).unwrap();
        for i in 0..6 {
            let c = if i % 2 == 0 { &a } else { &b };
            c.execute_batch("INSERT INTO t VALUES (randomblob(5000))").unwrap();
        }
        if checkpoint {
            a.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())).unwrap();
        }
        let (d, w) = (dir.join(format!("copy{checkpoint}.db")), dir.join(format!("copy{checkpoint}.db-wal")));
        std::fs::copy(&db, &d).unwrap();
        std::fs::copy(dir.join("live.db-wal"), &w).unwrap();
        (d, w)
    }

    fn problem(db: &std::path::Path, wal: &std::path::Path) -> Option<String> {
        let (d, w) = (File::open(db).unwrap(), File::open(wal).unwrap());
        let s = scan(&w, w.metadata().unwrap().len(), 4096).unwrap();
        assert!(s.pages.contains(&1), "{s:?}");
        page1_problem(&d, &w, &s).unwrap()
    }

    #[test]
    fn a_wal_of_the_database_fits_its_page_1_and_one_behind_it_does_not() {
        let t = tempfile::tempdir().unwrap();
        for checkpoint in [false, true] {
            let (db, wal) = capture(t.path(), checkpoint);
            assert_eq!(problem(&db, &wal), None, "checkpointed: {checkpoint}");
            // The database file's header ahead of the -wal's: the -wal is of another one.
            let mut bytes = std::fs::read(&db).unwrap();
            let ahead = u32::from_be_bytes(bytes[24..28].try_into().unwrap()) + 100;
            bytes[24..28].copy_from_slice(&ahead.to_be_bytes());
            std::fs::write(&db, &bytes).unwrap();
            assert!(problem(&db, &wal).unwrap().contains("change counter"), "checkpointed: {checkpoint}");
            // Another text encoding.
            bytes[56..60].copy_from_slice(&2u32.to_be_bytes());
            std::fs::write(&db, &bytes).unwrap();
            assert!(problem(&db, &wal).unwrap().contains("another header"), "checkpointed: {checkpoint}");
        }
    }
}
