//! Cross-linked pages of a damaged database, read page by page as the file format describes
//! b-trees (<https://www.sqlite.org/fileformat2.html#b_tree_pages>): a page that two trees (or
//! one tree twice, or a tree and the freelist, or an overflow chain) point at holds rows of at
//! most one of them, and nobody can tell which. Salvage copies no row from such a page, nor a
//! row whose overflow chain runs through one, nor a row under an interior page that is one.
//!
//! Only what is needed is kept: one reference count per page (a byte), and the rowids of the
//! rows to skip, up to [`MAX_TAINTED`] in all (past that, a whole table is skipped).

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

/// At most this many rows (of all tables) are remembered as tainted; past that, a table is
/// given up whole (bounded memory on a hostile file).
pub const MAX_TAINTED: usize = 1_000_000;
/// No b-tree is deeper than this (SQLite's own limit is 20).
const MAX_DEPTH: usize = 40;

/// One tree to walk: its name, its root page, whether it is a table, and one with rowids.
#[derive(Debug, Clone)]
pub struct Tree {
    pub name: String,
    pub root: u32,
    pub table: bool,
    pub rowid: bool,
}

/// What is cross-linked, and which rows of which table sit on it.
#[derive(Debug, Default)]
pub struct CrossLinks {
    /// Pages referenced more than once (first ones, sorted).
    pub pages: Vec<u32>,
    /// Per table: the rowids of its rows to skip.
    pub rows: BTreeMap<String, BTreeSet<i64>>,
    /// Tables none of whose rows can be trusted (a WITHOUT ROWID table with a cross-linked
    /// page, or too many tainted rows), and why.
    pub whole: BTreeMap<String, String>,
}

struct DbFile {
    f: File,
    size: usize,
    usable: usize,
    pages: u32,
}

impl DbFile {
    fn page(&self, n: u32, buf: &mut [u8]) -> bool {
        n >= 1 && n <= self.pages && self.f.read_exact_at(buf, u64::from(n - 1) * self.size as u64).is_ok()
    }
}

fn varint(b: &[u8]) -> Option<(u64, usize)> {
    let mut v = 0u64;
    for i in 0..9 {
        let c = *b.get(i)?;
        if i == 8 {
            return Some(((v << 8) | u64::from(c), 9));
        }
        v = (v << 7) | u64::from(c & 0x7f);
        if c & 0x80 == 0 {
            return Some((v, i + 1));
        }
    }
    None
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn u16_at(b: &[u8], at: usize) -> Option<usize> {
    Some(usize::from(u16::from_be_bytes(b.get(at..at + 2)?.try_into().ok()?)))
}

/// A page's parsed cells: children (interior), and for each cell its rowid (table leaf) and
/// first overflow page with the number of overflow pages.
#[derive(Default)]
struct Page {
    children: Vec<u32>,
    cells: Vec<Cell>,
}

/// A cell's rowid (table leaf cells) and overflow chain (first page, number of pages).
type Cell = (Option<i64>, Option<(u32, u64)>);

fn parse(db: &DbFile, n: u32, buf: &[u8]) -> Option<Page> {
    let h = if n == 1 { 100 } else { 0 };
    let kind = *buf.get(h)?;
    let interior = matches!(kind, 0x02 | 0x05);
    if !matches!(kind, 0x02 | 0x05 | 0x0a | 0x0d) {
        return None;
    }
    let count = u16_at(buf, h + 3)?;
    let ptrs = h + if interior { 12 } else { 8 };
    let mut p = Page::default();
    if interior {
        p.children.push(u32_at(buf, h + 8)?);
    }
    let u = db.usable;
    for i in 0..count {
        let Some(at) = u16_at(buf, ptrs + 2 * i) else { break };
        let Some(cell) = buf.get(at..db.usable.min(buf.len())) else { continue };
        let mut off = 0;
        if interior {
            let Some(c) = u32_at(cell, 0) else { continue };
            p.children.push(c);
            off = 4;
        }
        if kind == 0x05 {
            continue;
        }
        let Some((payload, k)) = varint(&cell[off..]) else { continue };
        off += k;
        let mut rowid = None;
        if kind == 0x0d {
            let Some((r, k)) = varint(&cell[off..]) else { continue };
            rowid = Some(r as i64);
            off += k;
        }
        let x = if kind == 0x0d { u - 35 } else { (u - 12) * 64 / 255 - 23 };
        let overflow = if payload as usize > x {
            let m = (u - 12) * 32 / 255 - 23;
            let kk = m + (payload as usize - m) % (u - 4);
            let local = if kk <= x { kk } else { m };
            let pages = (payload - local as u64).div_ceil(u as u64 - 4);
            u32_at(cell, off + local).map(|first| (first, pages))
        } else {
            None
        };
        p.cells.push((rowid, overflow));
    }
    Some(p)
}

/// Count every reference to every page: each tree's pages and overflow chains, and the
/// freelist; then the rows of each rowid table to skip.
pub fn cross_links(path: &Path, trees: &[Tree], also: &[u32]) -> std::io::Result<CrossLinks> {
    let f = File::open(path)?;
    let mut head = [0u8; 100];
    match f.read_exact_at(&mut head, 0) {
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(CrossLinks::default()),
        r => r?,
    }
    let size = match u16::from_be_bytes([head[16], head[17]]) {
        1 => 65536,
        n => usize::from(n),
    };
    let mut out = CrossLinks::default();
    if !(512..=65536).contains(&size) || !size.is_power_of_two() || usize::from(head[20]) + 480 > size {
        return Ok(out);
    }
    let len = f.metadata()?.len();
    let pages = u32::try_from(len / size as u64).unwrap_or(u32::MAX);
    let db = DbFile { f, size, usable: size - usize::from(head[20]), pages };
    let mut refs = vec![0u8; pages as usize + 1];
    let mut buf = vec![0u8; size];
    // The freelist: trunk pages, each with the leaf pages it lists.
    let (mut trunk, mut left) = (u32_at(&head, 32).unwrap_or(0), pages);
    while trunk != 0 && trunk <= pages && left > 0 && db.page(trunk, &mut buf) {
        if !bump(&mut refs, trunk) {
            break;
        }
        let n = (u32_at(&buf, 4).unwrap_or(0) as usize).min((db.usable - 8) / 4);
        for i in 0..n {
            if let Some(p) = u32_at(&buf, 8 + 4 * i).filter(|p| (1..=pages).contains(p)) {
                bump(&mut refs, p);
            }
        }
        trunk = u32_at(&buf, 0).unwrap_or(0);
        left -= 1;
    }
    // Every tree, each page descended into once.
    for t in trees {
        let mut stack = vec![(t.root, 0usize)];
        while let Some((n, depth)) = stack.pop() {
            if n == 0 || n > pages || !bump(&mut refs, n) || depth > MAX_DEPTH || !db.page(n, &mut buf) {
                continue;
            }
            let Some(p) = parse(&db, n, &buf) else { continue };
            stack.extend(p.children.iter().map(|&c| (c, depth + 1)));
            for (_, o) in p.cells.iter() {
                if let Some((first, count)) = *o {
                    chain(&db, first, count, |o| bump(&mut refs, o));
                }
            }
        }
    }
    for &p in also {
        if let Some(r) = refs.get_mut(p as usize) {
            *r = (*r).max(2);
        }
    }
    let crossed = |n: u32| refs.get(n as usize).is_some_and(|&r| r > 1);
    out.pages = (1..=pages).filter(|&n| crossed(n)).take(50).collect();
    if out.pages.is_empty() {
        return Ok(out);
    }
    // Which rows sit on (or under, or overflow through) a cross-linked page.
    let mut seen = vec![0u64; pages as usize / 64 + 1];
    let mut budget = MAX_TAINTED;
    for t in trees.iter().filter(|t| t.table) {
        seen.fill(0);
        let mut stack = vec![(t.root, 0usize, false)];
        let mut rows = BTreeSet::new();
        let mut any = false;
        while let Some((n, depth, tainted)) = stack.pop() {
            if n == 0 || n > pages || depth > MAX_DEPTH || !first_visit(&mut seen, n) || !db.page(n, &mut buf)
            {
                continue;
            }
            let tainted = tainted || crossed(n);
            any |= tainted;
            let Some(p) = parse(&db, n, &buf) else { continue };
            stack.extend(p.children.iter().map(|&c| (c, depth + 1, tainted)));
            for (rowid, o) in p.cells.iter() {
                let mut bad = tainted;
                if let (false, Some((first, count))) = (bad, *o) {
                    // Stops at the first cross-linked page (a cycle is cut where it comes back).
                    chain(&db, first, count, |o| {
                        bad |= crossed(o);
                        !bad
                    });
                }
                any |= bad;
                if let (true, Some(r)) = (bad, rowid) {
                    rows.insert(*r);
                }
            }
            if rows.len() > budget {
                break;
            }
        }
        if !any {
            continue;
        }
        if !t.rowid {
            out.whole.insert(t.name.clone(), "a WITHOUT ROWID table with cross-linked pages".into());
        } else if rows.len() > budget {
            out.whole.insert(t.name.clone(), format!("more than {MAX_TAINTED} rows on cross-linked pages"));
        } else if !rows.is_empty() {
            budget -= rows.len();
            out.rows.insert(t.name.clone(), rows);
        }
    }
    Ok(out)
}

/// Mark page `n` seen; true when it was not.
fn first_visit(seen: &mut [u64], n: u32) -> bool {
    let (word, bit) = (n as usize / 64, 1u64 << (n % 64));
    let first = seen[word] & bit == 0;
    seen[word] |= bit;
    first
}

/// Count one more reference to page `n`; true when it is the first.
fn bump(refs: &mut [u8], n: u32) -> bool {
    let r = &mut refs[n as usize];
    *r = r.saturating_add(1);
    *r == 1
}

/// Follow an overflow chain of at most `count` pages, calling `each` on every page (stop when
/// it returns false).
fn chain(db: &DbFile, first: u32, count: u64, mut each: impl FnMut(u32) -> bool) {
    let mut next = [0u8; 4];
    let mut n = first;
    for _ in 0..count.min(u64::from(db.pages)) {
        if n == 0 || n > db.pages || !each(n) {
            return;
        }
        if db.f.read_exact_at(&mut next, u64::from(n - 1) * db.size as u64).is_err() {
            return;
        }
        n = u32::from_be_bytes(next);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_or_healthy_file_has_no_cross_links() {
        let t = tempfile::tempdir().unwrap();
        let empty = t.path().join("empty.db");
        std::fs::write(&empty, b"").unwrap();
        let tree = Tree { name: "t".into(), root: 2, table: true, rowid: true };
        assert!(cross_links(&empty, std::slice::from_ref(&tree), &[]).unwrap().pages.is_empty());
        let db = t.path().join("ok.db");
        let c = rusqlite::Connection::open(&db).unwrap();
        c.execute_batch(
            "CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB);
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 500)
             INSERT INTO t SELECT i, randomblob(i * 20) FROM n;
             DELETE FROM t WHERE id % 3 = 0;",
        )
        .unwrap();
        drop(c);
        let links = cross_links(&db, std::slice::from_ref(&tree), &[]).unwrap();
        assert!(links.pages.is_empty() && links.rows.is_empty(), "{links:?}");
        // A page integrity_check names is taken as cross-linked: the rows on it are skipped.
        let links = cross_links(&db, &[tree], &[2]).unwrap();
        assert_eq!(links.pages, vec![2]);
        assert_eq!(links.rows["t"].len(), 334);
    }
}
