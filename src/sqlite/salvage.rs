//! Salvage: every row SQLite can still read out of a damaged database, copied into a new one.
//!
//! The schema is recreated first (tables, then their indexes, so that a broken duplicate is
//! refused row by row), then each table is read in rowid order; where a page cannot be read,
//! the copy jumps ahead, further and further, until rows can be read again. Rows that point at
//! lost rows (foreign keys) are removed, then views and triggers are created. The result passes
//! `integrity_check` and `foreign_key_check`, and the counts say what was lost.
//!
//! (SQLite's own `.recover`, which reads pages directly, needs the `sqlite_dbpage` virtual
//! table: neither the bundled library nor Debian's `sqlite3` 3.40 has it.)

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use rusqlite::types::Value;
use rusqlite::{params_from_iter, Connection};
use serde::{Deserialize, Serialize};

use super::{open_immutable, sql_err};
use crate::error::{check_interrupt, Error, Result};

/// What became of one table (recorded in the manifest of a salvaged archive). The counts add
/// up: `before = read + unreadable`, `read = after + skipped`, `skipped = cross_linked +
/// rows_refused + orphans_removed`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableCopy {
    /// Rows before (None when the damaged table cannot even be counted).
    pub before: Option<u64>,
    /// Rows SQLite read out of the damaged table.
    #[serde(default)]
    pub read: u64,
    /// Rows counted but not read (on pages that cannot be read); None when `before` is.
    #[serde(default)]
    pub unreadable: Option<u64>,
    pub after: u64,
    /// Rows read but not copied: `cross_linked + rows_refused + orphans_removed`.
    #[serde(default)]
    pub skipped: u64,
    /// Places where SQLite could not read on (each one loses the rows up to the next readable one).
    #[serde(default)]
    pub read_errors: u64,
    /// Rows read but not copied because they sit on a page that another tree (or the
    /// freelist) also points at, under one, or overflow through one: whose rows they are
    /// cannot be told.
    #[serde(default)]
    pub cross_linked: u64,
    /// Rows read but refused by the new table (a broken value, a duplicate key), or not read
    /// because a value in them is over 32 MiB (`too_big`).
    #[serde(default)]
    pub rows_refused: u64,
    /// Of `rows_refused`: rows with a value over 32 MiB (memory stays bounded on a hostile file).
    #[serde(default)]
    pub too_big: u64,
    /// Rows removed because they referenced lost rows.
    #[serde(default)]
    pub orphans_removed: u64,
    /// Why not one row of the table was copied, when that is so by decision (empty otherwise).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub not_copied: String,
}

impl TableCopy {
    /// Fill in the totals once the copy is done.
    fn totals(&mut self) {
        self.skipped = self.cross_linked + self.rows_refused + self.orphans_removed;
        self.unreadable = self.before.map(|b| b.saturating_sub(self.read));
    }
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Salvaged {
    pub tables: BTreeMap<String, TableCopy>,
    /// Schema objects that could not be recreated, and why.
    pub skipped: Vec<String>,
    /// Pages referenced more than once (the first 50): no row was copied from them.
    pub cross_linked_pages: Vec<u32>,
}

/// The pages `integrity_check` names in "2nd reference to page N".
pub fn second_references(problems: &[String]) -> Vec<u32> {
    const SAID: &str = "2nd reference to page ";
    // One problem can hold many lines (integrity_check's messages joined).
    problems
        .iter()
        .flat_map(|p| p.match_indices(SAID).map(move |(at, _)| &p[at + SAID.len()..]))
        .filter_map(|rest| rest.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok())
        .collect()
}

/// One schema entry: (type, name, table, sql).
type Object = (String, String, String, String);

/// After this many read errors in one table, the rest of it is given up.
const MAX_READ_ERRORS: u64 = 10_000;

/// Copy what can be read of `src` into the new database `dst` (in WAL mode when `wal`); no row
/// is copied from a cross-linked page (found by walking the file's b-trees, and `also`: pages
/// `integrity_check` named).
pub fn salvage(src: &Path, dst: &Path, wal: bool, also: &[u32]) -> Result<Salvaged> {
    let from = open_immutable(src)?;
    let schema: Vec<Object> = from
        .prepare("SELECT type, name, tbl_name, sql FROM sqlite_schema WHERE sql IS NOT NULL ORDER BY rowid")
        .and_then(|mut s| s.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?.collect())
        .map_err(|e| {
            Error::verification(format!(
                "the schema of {} cannot be read: nothing can be salvaged",
                src.display()
            ))
            .source(e)
            .hint("nothing was written; keep the tarball: a tool that reads pages directly (the sqlite3 shell's .recover, where its library has the sqlite_dbpage table) may get more out of it")
        })?;
    let links = cross_links(&from, src, also)?;
    // SAFETY: the handle is this open connection's; sqlite3_limit only sets a limit on it.
    unsafe { rusqlite::ffi::sqlite3_limit(from.handle(), rusqlite::ffi::SQLITE_LIMIT_LENGTH, MAX_VALUE) };
    let to = Connection::open(dst).map_err(|e| sql_err(e, "cannot create", dst))?;
    copy_settings(&from, &to).map_err(|e| sql_err(e, "cannot set up", dst))?;
    to.execute_batch("BEGIN").map_err(|e| sql_err(e, "cannot write", dst))?;
    let mut out = Salvaged { cross_linked_pages: links.pages.clone(), ..Salvaged::default() };
    let is = |t: &str, o: &Object| o.0 == t && !o.1.starts_with("sqlite_");
    let virtual_table = |o: &Object| o.3.trim_start().to_ascii_uppercase().starts_with("CREATE VIRTUAL");
    for o in schema.iter().filter(|o| is("table", o) || is("index", o)) {
        if virtual_table(o) {
            out.skipped.push(format!("{} {}: a virtual table is not copied", o.0, o.1));
        } else if let Err(e) = to.execute_batch(&o.3) {
            out.skipped.push(format!("{} {}: {e}", o.0, o.1));
        }
    }
    for o in schema.iter().filter(|o| is("table", o) && !virtual_table(o)) {
        check_interrupt()?;
        let copy = match links.whole.get(&o.1) {
            Some(why) => TableCopy {
                before: count(&from, &o.1),
                not_copied: format!("no row copied: {why}"),
                ..TableCopy::default()
            },
            None => copy_table(&from, &to, &o.1, links.rows.get(&o.1))
                .map_err(|e| sql_err(e, "cannot write", dst))?,
        };
        out.tables.insert(o.1.clone(), copy);
    }
    check_interrupt()?;
    copy_sequence(&from, &to);
    remove_orphans(&to, &mut out.tables).map_err(|e| sql_err(e, "cannot write", dst))?;
    for o in schema.iter().filter(|o| is("view", o) || is("trigger", o)) {
        if let Err(e) = to.execute_batch(&o.3) {
            out.skipped.push(format!("{} {}: {e}", o.0, o.1));
        }
    }
    to.execute_batch("COMMIT").map_err(|e| sql_err(e, "cannot write", dst))?;
    for (name, t) in out.tables.iter_mut() {
        t.after = count(&to, name).unwrap_or(0);
        t.totals();
    }
    if wal {
        to.query_row("PRAGMA journal_mode=WAL", [], |r| r.get::<_, String>(0))
            .map_err(|e| sql_err(e, "cannot set the journal mode of", dst))?;
    }
    to.close().map_err(|(_, e)| sql_err(e, "cannot close", dst))?;
    Ok(out)
}

/// Page size, encoding, auto-vacuum, user_version and application_id of `from` (what can be
/// read of them); the new database is written without a journal (it is thrown away on failure).
fn copy_settings(from: &Connection, to: &Connection) -> rusqlite::Result<()> {
    let get = |p: &str| from.query_row(&format!("PRAGMA {p}"), [], |r| r.get::<_, Value>(0)).ok();
    let mut sql = String::new();
    if let Some(Value::Integer(n)) = get("page_size") {
        sql.push_str(&format!("PRAGMA page_size={n};"));
    }
    if let Some(Value::Text(e)) = get("encoding") {
        sql.push_str(&format!("PRAGMA encoding='{}';", e.replace('\'', "")));
    }
    if let Some(Value::Integer(n)) = get("auto_vacuum") {
        sql.push_str(&format!("PRAGMA auto_vacuum={n};"));
    }
    for p in ["user_version", "application_id"] {
        if let Some(Value::Integer(n)) = get(p) {
            sql.push_str(&format!("PRAGMA {p}={n};"));
        }
    }
    // Foreign keys are checked once every row is in (a child may come before its parent).
    sql.push_str("PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF; PRAGMA foreign_keys=OFF;");
    to.execute_batch(&sql)
}

fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn count(conn: &Connection, table: &str) -> Option<u64> {
    // NOT INDEXED: count the table's own b-tree, not a (possibly damaged) index of it.
    conn.query_row(&format!("SELECT count(*) FROM {} NOT INDEXED", quote(table)), [], |r| r.get::<_, i64>(0))
        .ok()
        .map(|n| n as u64)
}

/// The columns a row is written with (generated columns are computed again), and whether the
/// table has a rowid.
fn columns(from: &Connection, table: &str) -> rusqlite::Result<(Vec<String>, bool)> {
    let cols = from
        .prepare(&format!("SELECT name, hidden FROM pragma_table_xinfo({})", quote_literal(table)))?
        .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let without_rowid: bool = from
        .query_row("SELECT wr FROM pragma_table_list WHERE schema = 'main' AND name = ?1", [table], |r| {
            r.get(0)
        })
        .unwrap_or(false);
    Ok((cols.into_iter().filter(|(_, h)| *h == 0).map(|(n, _)| n).collect(), !without_rowid))
}

fn quote_literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// Copy one table's readable rows, but not those in `skip` (rowids on cross-linked pages).
fn copy_table(
    from: &Connection,
    to: &Connection,
    table: &str,
    skip: Option<&BTreeSet<i64>>,
) -> rusqlite::Result<TableCopy> {
    let mut t = TableCopy { before: count(from, table), ..TableCopy::default() };
    let (cols, rowid) = match columns(from, table) {
        Ok(c) => c,
        Err(_) => {
            t.read_errors = 1;
            return Ok(t);
        }
    };
    let list = cols.iter().map(|c| quote(c)).collect::<Vec<_>>().join(", ");
    let (select, insert_cols) = if rowid {
        (
            // NOT INDEXED: read the table's own b-tree (an index is rebuilt, never read from).
            format!("SELECT rowid, {list} FROM {} NOT INDEXED WHERE rowid > ?1 ORDER BY rowid", quote(table)),
            format!("rowid, {list}"),
        )
    } else {
        (format!("SELECT {list} FROM {} NOT INDEXED", quote(table)), list.clone())
    };
    let marks = vec!["?"; cols.len() + usize::from(rowid)].join(", ");
    let mut insert = to.prepare(&format!("INSERT INTO {}({insert_cols}) VALUES ({marks})", quote(table)))?;
    let mut read = from.prepare(&select)?;
    let mut after = i64::MIN;
    let next_rowid =
        format!("SELECT rowid FROM {} NOT INDEXED WHERE rowid > ?1 ORDER BY rowid LIMIT 1", quote(table));
    loop {
        let stop = copy_rows(&mut read, &mut insert, rowid, &mut after, skip, &mut t)?;
        if stop == Stop::TooBig && rowid {
            // The next row holds a value too big to read: refused, and the copy goes on after it.
            if let Ok(r) = from.query_row(&next_rowid, [after], |r| r.get::<_, i64>(0)) {
                (t.read, t.rows_refused, t.too_big, after) =
                    (t.read + 1, t.rows_refused + 1, t.too_big + 1, r);
                continue;
            }
        }
        let failed = stop != Stop::End;
        if !failed || !rowid {
            t.read_errors += u64::from(failed);
            return Ok(t);
        }
        t.read_errors += 1;
        let stuck = after;
        let Some(next) = next_readable(from, table, after).filter(|_| t.read_errors < MAX_READ_ERRORS) else {
            return Ok(t);
        };
        if let Some(row) = next.alone {
            let mut one = from.prepare(&select.replace("rowid > ?1", "rowid = ?1 + 1"))?;
            let mut at = row - 1;
            if copy_rows(&mut one, &mut insert, rowid, &mut at, skip, &mut t)? == Stop::TooBig {
                (t.read, t.rows_refused, t.too_big) = (t.read + 1, t.rows_refused + 1, t.too_big + 1);
            }
        }
        match next.from {
            // A row whose rowid can be read but not the row itself (a broken overflow chain, a
            // value too big) would be tried again and again: it is lost, the copy goes on after it.
            Some(n) if n - 1 <= stuck => after = n,
            Some(n) => after = n - 1,
            None => return Ok(t),
        }
    }
}

/// Why [`copy_rows`] stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    End,
    /// SQLite could not read on.
    Failed,
    /// The next row holds a value over [`MAX_VALUE`].
    TooBig,
}

/// The largest string or blob read out of a damaged database: a bigger one is refused (a
/// hostile file can declare values up to 1 GB, and a copy holds a value several times).
pub const MAX_VALUE: i32 = 32 << 20;

/// Copy rows from `read` (rowid > `after` when `rowid`) into `insert` until the end or the
/// first read error; `after` follows the last rowid read.
fn copy_rows(
    read: &mut rusqlite::Statement,
    insert: &mut rusqlite::Statement,
    rowid: bool,
    after: &mut i64,
    skip: Option<&BTreeSet<i64>>,
    t: &mut TableCopy,
) -> rusqlite::Result<Stop> {
    let n = read.column_count();
    let mut rows = if rowid { read.query([*after])? } else { read.query([])? };
    for k in 0u64.. {
        // Interrupted: stop here; the caller's next check fails the whole salvage.
        if k % 1024 == 0 && crate::error::interrupt::requested() {
            return Ok(Stop::End);
        }
        let row = match rows.next() {
            Ok(Some(row)) => row,
            Ok(None) => return Ok(Stop::End),
            Err(rusqlite::Error::SqliteFailure(e, _)) if e.code == rusqlite::ErrorCode::TooBig => {
                return Ok(Stop::TooBig)
            }
            Err(_) => return Ok(Stop::Failed),
        };
        t.read += 1;
        let values: rusqlite::Result<Vec<Value>> = (0..n).map(|i| row.get::<_, Value>(i)).collect();
        let Ok(values) = values else {
            t.rows_refused += 1;
            continue;
        };
        if rowid {
            match values[0] {
                Value::Integer(r) if r > *after => *after = r,
                _ => {
                    t.read -= 1;
                    return Ok(Stop::Failed);
                }
            }
            if skip.is_some_and(|s| s.contains(after)) {
                t.cross_linked += 1;
                continue;
            }
        }
        if insert.execute(params_from_iter(values.iter())).is_err() {
            t.rows_refused += 1;
        }
    }
    Ok(Stop::End)
}

/// The first rowid after `after` that can be read, found by jumping further and further past
/// the damage, then searching back between the last jump that failed and the one that
/// landed (the jump alone would skip the readable rows in between); None when there is none.
fn next_readable(from: &Connection, table: &str, after: i64) -> Option<Next> {
    let sql = format!("SELECT rowid FROM {} WHERE rowid > ?1 ORDER BY rowid LIMIT 1", quote(table));
    let probe = |at: i64| match from.query_row(&sql, [at], |r| r.get::<_, i64>(0)) {
        Ok(r) => Some(Some(r)),
        Err(rusqlite::Error::QueryReturnedNoRows) => Some(None),
        Err(_) => None,
    };
    let (mut failed, mut step) = (after, 1i64);
    let (mut landed, mut found) = loop {
        let at = failed.checked_add(step)?;
        match probe(at) {
            Some(None) => return Some(Next { alone: None, from: None }),
            Some(found) => break (at, found),
            None => (failed, step) = (at, step.saturating_mul(2)),
        }
    };
    // Every probe in (failed, landed] that answers narrows it down; one that fails moves up.
    while landed - failed > 1 {
        let mid = failed + (landed - failed) / 2;
        match probe(mid) {
            Some(f) => (landed, found) = (mid, f),
            None => failed = mid,
        }
    }
    // `landed` itself (a probe answers with the rows after it), when it can be read alone.
    let alone = format!("SELECT rowid FROM {} WHERE rowid = ?1", quote(table));
    let alone = from.query_row(&alone, [landed], |r| r.get::<_, i64>(0)).ok();
    Some(Next { alone, from: found })
}

/// Where a copy goes on past damage: a row that can be read only alone, then the first row
/// from which rows can be read in order again.
struct Next {
    alone: Option<i64>,
    from: Option<i64>,
}

/// The cross-linked pages of `src` and the rows on them (none when the file cannot be walked).
fn cross_links(from: &Connection, src: &Path, also: &[u32]) -> Result<super::btree::CrossLinks> {
    let wr: BTreeMap<String, bool> = from
        .prepare("SELECT name, wr FROM pragma_table_list WHERE schema = 'main'")
        .and_then(|mut s| s.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?.collect())
        .unwrap_or_default();
    let mut trees =
        vec![super::btree::Tree { name: "sqlite_schema".into(), root: 1, table: true, rowid: true }];
    let sql = "SELECT type, name, rootpage, coalesce(sql, '') FROM sqlite_schema WHERE rootpage > 0";
    if let Ok(mut s) = from.prepare(sql) {
        if let Ok(rows) = s.query_map([], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, i64>(2)?, r.get::<_, String>(3)?))
        }) {
            for (kind, name, root, sql) in rows.flatten() {
                let table = kind == "table";
                // pragma_table_list says; when it cannot be read, the table's SQL does.
                let without = wr.get(&name).copied().unwrap_or_else(|| {
                    sql.to_ascii_uppercase()
                        .split_whitespace()
                        .collect::<Vec<_>>()
                        .join(" ")
                        .contains("WITHOUT ROWID")
                });
                let rowid = table && !without;
                trees.push(super::btree::Tree {
                    name,
                    root: root.clamp(0, i64::from(u32::MAX)) as u32,
                    table,
                    rowid,
                });
            }
        }
    }
    super::btree::cross_links(src, &trees, also).map_err(|e| Error::io("cannot read", src, e))
}

/// AUTOINCREMENT counters, so that new rows never reuse a lost row's id.
fn copy_sequence(from: &Connection, to: &Connection) {
    let Ok(mut s) = from.prepare("SELECT name, seq FROM sqlite_sequence") else { return };
    let Ok(rows) = s.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))) else { return };
    for (name, seq) in rows.flatten() {
        let _ = to.execute("DELETE FROM sqlite_sequence WHERE name = ?1", [&name]);
        let _ = to
            .execute("INSERT INTO sqlite_sequence(name, seq) VALUES (?1, ?2)", rusqlite::params![name, seq]);
    }
}

/// Remove rows whose foreign keys point at missing rows, again until none are left (removing a
/// row can orphan others).
fn remove_orphans(to: &Connection, tables: &mut BTreeMap<String, TableCopy>) -> rusqlite::Result<()> {
    for _ in 0..100 {
        let orphans: Vec<(String, Option<i64>)> = to
            .prepare("PRAGMA foreign_key_check")?
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<_>>()?;
        let mut removed = 0;
        for (table, rowid) in orphans {
            let Some(rowid) = rowid else { continue };
            let n = to.execute(&format!("DELETE FROM {} WHERE rowid = ?1", quote(&table)), [rowid])?;
            tables.entry(table).or_default().orphans_removed += n as u64;
            removed += n;
        }
        if removed == 0 {
            break;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_second_reference_is_read_from_the_problems() {
        let problems = vec![
            "integrity_check: *** in database main ***\nTree 7 page 454 cell 4: 2nd reference to page 460\nTree 9 page 3: 2nd reference to page 12".to_string(),
            "integrity_check: Page 99: never used".to_string(),
        ];
        assert_eq!(second_references(&problems), vec![460, 12]);
    }

    #[test]
    fn a_healthy_database_is_copied_whole_and_orphans_go() {
        let t = tempfile::tempdir().unwrap();
        let src = t.path().join("src.db");
        let c = Connection::open(&src).unwrap();
        c.execute_batch(
            "PRAGMA foreign_keys=OFF; PRAGMA user_version=7; PRAGMA journal_mode=WAL;
             CREATE TABLE u(id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE) STRICT;
             CREATE TABLE b(user_id INTEGER NOT NULL REFERENCES u(id), data BLOB) STRICT;
             CREATE TABLE k(name TEXT PRIMARY KEY, v INT) WITHOUT ROWID;
             CREATE INDEX b_user ON b(user_id);
             CREATE VIEW names AS SELECT name FROM u;
             INSERT INTO u VALUES (1, 'a'), (2, 'b');
             INSERT INTO b VALUES (1, randomblob(9000)), (2, x'00'), (3, x'01');
             INSERT INTO k VALUES ('x', 1), ('y', 2);",
        )
        .unwrap();
        drop(c);
        let dst = t.path().join("dst.db");
        let s = salvage(&src, &dst, true, &[]).unwrap();
        assert!(s.skipped.is_empty(), "{:?}", s.skipped);
        assert_eq!(
            s.tables["u"],
            TableCopy { before: Some(2), read: 2, unreadable: Some(0), after: 2, ..Default::default() }
        );
        assert_eq!(s.tables["k"].after, 2);
        let b = &s.tables["b"];
        assert_eq!((b.before, b.after, b.orphans_removed), (Some(3), 2, 1));
        let c = open_immutable(&dst).unwrap();
        assert!(crate::sqlite::check(&c, true).unwrap().is_empty());
        assert!(crate::sqlite::foreign_key_check(&c).unwrap().is_empty());
        assert_eq!(c.query_row("PRAGMA user_version", [], |r| r.get::<_, i64>(0)).unwrap(), 7);
        assert_eq!(c.query_row("SELECT count(*) FROM names", [], |r| r.get::<_, i64>(0)).unwrap(), 2);
        assert_eq!(crate::sqlite::inspect(&dst).unwrap().journal, crate::sqlite::Journal::Wal);
    }

    #[test]
    fn every_row_readable_past_zeroed_pages_is_salvaged() {
        let t = tempfile::tempdir().unwrap();
        let src = t.path().join("src.db");
        let c = Connection::open(&src).unwrap();
        c.execute_batch(
            "PRAGMA page_size=4096; CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB);
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 5000)
             INSERT INTO t SELECT i, randomblob(300) FROM n;",
        )
        .unwrap();
        drop(c);
        // 30 leaf pages in the middle of the table zeroed, as a bad disk does.
        let mut bytes = std::fs::read(&src).unwrap();
        bytes[100 * 4096..130 * 4096].fill(0);
        std::fs::write(&src, &bytes).unwrap();
        let c = open_immutable(&src).unwrap();
        let readable = (1..=5000)
            .filter(|i| {
                c.query_row("SELECT v FROM t WHERE rowid = ?1", [i], |r| r.get::<_, Vec<u8>>(0)).is_ok()
            })
            .count() as u64;
        assert!(readable < 5000 && readable > 4000, "{readable}");
        let s = salvage(&src, &t.path().join("dst.db"), false, &[]).unwrap();
        assert_eq!(s.tables["t"].after, readable, "{:?}", s.tables["t"]);
    }
}
