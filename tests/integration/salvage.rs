//! `kfadmin import --salvage` against an adversary: a `-wal` of another database (whole, spliced
//! under this database's WAL header, or interleaved with this database's own frames), pages
//! cross-linked between tables (a child pointer, an overflow chain), zeroed index pages, a full
//! disk, kill -9 in the middle. Never a row of another database or of another table, never a
//! partial archive under a final name, and the report says per table what was read,
//! unreadable and skipped.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::dock::kfadmin_env;
use crate::util::*;

fn kf(env: &Env, args: &[&str]) -> Run {
    let state = env.path("state");
    kfadmin_env(&[("KFADMIN_STATE_DIR", state.to_str().unwrap())], args)
}

fn import_json(env: &Env, tarball: &Path, out: &Path, extra: &[&str]) -> (i32, Value) {
    let mut args = vec!["import", tarball.to_str().unwrap(), "--out", out.to_str().unwrap(), "--json"];
    args.extend(extra);
    let r = kf(env, &args);
    (r.code, r.json())
}

/// `tar czf OUT -C DIR WHAT…`.
fn tar_czf(out: &Path, dir: &Path, what: &[&str]) {
    let st = Command::new("tar").arg("czf").arg(out).arg("-C").arg(dir).args(what).status().unwrap();
    assert!(st.success(), "tar failed: {st}");
}

/// Every row of every table, by table and rowid (a row as its values' debug text).
fn rows(db: &Path) -> Rows {
    let c = rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    let tables: Vec<String> = c
        .prepare("SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let mut out = BTreeMap::new();
    for t in tables {
        // A WITHOUT ROWID table's rows are keyed by a hash of the row.
        let (mut s, rowid) = match c.prepare(&format!("SELECT rowid, * FROM \"{t}\"")) {
            Ok(s) => (s, true),
            Err(_) => (c.prepare(&format!("SELECT 0, * FROM \"{t}\"")).unwrap(), false),
        };
        let n = s.column_count();
        let rows = s
            .query_map([], |r| {
                let vals: Vec<rusqlite::types::Value> = (1..n).map(|i| r.get(i).unwrap()).collect();
                let text = format!("{vals:?}");
                let key = if rowid {
                    r.get::<_, i64>(0)?
                } else {
                    use std::hash::{Hash, Hasher};
                    let mut h = std::collections::hash_map::DefaultHasher::new();
                    text.hash(&mut h);
                    h.finish() as i64
                };
                Ok((key, text))
            })
            .unwrap()
            .collect::<Result<BTreeMap<_, _>, _>>()
            .unwrap();
        out.insert(t, rows);
    }
    out
}

/// Restore an archive into a new directory: its database.
fn restored(env: &Env, archive: &str, tag: &str) -> PathBuf {
    let dir = env.path(&format!("restored-{tag}"));
    kf(env, &["restore", archive, "--data-dir", dir.to_str().unwrap(), "--yes"]).ok();
    dir.join("keyfount.db")
}

type Rows = BTreeMap<String, BTreeMap<i64, String>>;

/// Every row of `got` is the row of `want` with the same rowid (none from elsewhere).
fn only_rows_of(got: &Rows, want: &Rows, what: &str) {
    for (t, rows) in got {
        for (id, row) in rows {
            assert!(
                want[t].get(id) == Some(row),
                "{what}: table {t} rowid {id} is not the database's own row"
            );
        }
    }
}

/// `got` holds exactly the rows of `want`.
fn same_rows(got: &Rows, want: &Rows, what: &str) {
    only_rows_of(got, want, what);
    for (t, rows) in want {
        let missing: Vec<&i64> = rows.keys().filter(|id| !got[t].contains_key(id)).take(5).collect();
        assert!(missing.is_empty(), "{what}: table {t} lacks rowids {missing:?} (of {})", rows.len());
    }
}

/// A database and the `-wal` a killed writer left beside it.
fn killed_writer(env: &Env, rel: &str, size_mb: u32, min_seq: i64) -> (PathBuf, Vec<u8>) {
    let data = env.data_dir(rel, size_mb);
    let db = data.join("keyfount.db");
    let w = env.start_writer(&db, 200, false);
    w.wait_for(|s| s["last_seq"].as_i64().unwrap() >= min_seq);
    w.kill();
    let wal = std::fs::read(data.join("keyfount.db-wal")).unwrap();
    (db, wal)
}

/// The frames of a `-wal` in the header's use of the file: (page, commit size, page bytes).
fn frames(wal: &[u8]) -> Vec<(u32, u32, Vec<u8>)> {
    let size = u32::from_be_bytes(wal[8..12].try_into().unwrap()) as usize;
    let mut out = Vec::new();
    let mut off = 32;
    while off + 24 + size <= wal.len() && wal[off + 8..off + 16] == wal[16..24] {
        let be = |at: usize| u32::from_be_bytes(wal[at..at + 4].try_into().unwrap());
        out.push((be(off), be(off + 4), wal[off + 24..off + 24 + size].to_vec()));
        off += 24 + size;
    }
    out
}

/// SQLite's WAL checksum (the byte order of the header's magic number).
fn wal_sum(big: bool, data: &[u8], mut s: (u32, u32)) -> (u32, u32) {
    for w in data.chunks_exact(8) {
        let word = |b: &[u8]| {
            let b: [u8; 4] = b.try_into().unwrap();
            if big {
                u32::from_be_bytes(b)
            } else {
                u32::from_le_bytes(b)
            }
        };
        s.0 = s.0.wrapping_add(word(&w[..4])).wrapping_add(s.1);
        s.1 = s.1.wrapping_add(word(&w[4..])).wrapping_add(s.0);
    }
    s
}

/// A `-wal` with `header`'s first 32 bytes (its salts) and these frames, every checksum
/// made right: what an adversary (or a confused script) can write.
fn forge_wal(header: &[u8], frames: &[(u32, u32, Vec<u8>)]) -> Vec<u8> {
    let big = u32::from_be_bytes(header[0..4].try_into().unwrap()) & 1 == 1;
    let mut out = header[..32].to_vec();
    let mut sum = (
        u32::from_be_bytes(header[24..28].try_into().unwrap()),
        u32::from_be_bytes(header[28..32].try_into().unwrap()),
    );
    for (page, commit, data) in frames {
        let mut h = Vec::new();
        h.extend(page.to_be_bytes());
        h.extend(commit.to_be_bytes());
        h.extend(&header[16..24]);
        sum = wal_sum(big, data, wal_sum(big, &h[..8], sum));
        h.extend(sum.0.to_be_bytes());
        h.extend(sum.1.to_be_bytes());
        out.extend(h);
        out.extend(data);
    }
    out
}

/// A tarball `data/keyfount.db` + `data/keyfount.db-wal` from these bytes.
fn tarball(env: &Env, tag: &str, db: &Path, wal: &[u8]) -> PathBuf {
    let dir = env.path(&format!("tar-{tag}/data"));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(db, dir.join("keyfount.db")).unwrap();
    std::fs::write(dir.join("keyfount.db-wal"), wal).unwrap();
    let out = env.path(&format!("{tag}.tar.gz"));
    tar_czf(&out, dir.parent().unwrap(), &["data"]);
    out
}

/// The database file alone (its `-wal` moved away): what it holds without the `-wal`.
fn rows_without_wal(db: &Path) -> Rows {
    let t = db.with_file_name("alone.db");
    std::fs::copy(db, &t).unwrap();
    rows(&t)
}

#[test]
fn a_wal_of_another_database_is_left_out_never_mixed_in() {
    let env = Env::new();
    let (a, a_wal) = killed_writer(&env, "a", 2, 30);
    let (_b, b_wal) = killed_writer(&env, "b", 3, 60);
    let own = rows_without_wal(&a);
    let b_frames = frames(&b_wal);
    let a_frames = frames(&a_wal);
    assert!(!a_frames.is_empty() && !b_frames.is_empty());
    // Three ways another database's frames get beside this database file.
    let interleaved: Vec<_> = {
        let (mut out, mut i, mut j) = (Vec::new(), 0, 0);
        let take = |f: &[(u32, u32, Vec<u8>)], k: &mut usize, out: &mut Vec<_>| {
            while *k < f.len() {
                out.push(f[*k].clone());
                *k += 1;
                if f[*k - 1].1 != 0 {
                    break;
                }
            }
        };
        while i < a_frames.len() || j < b_frames.len() {
            take(&b_frames, &mut j, &mut out);
            take(&a_frames, &mut i, &mut out);
        }
        out
    };
    let cases = [
        ("other", b_wal.clone()),
        ("spliced", forge_wal(&a_wal, &b_frames)),
        ("interleaved", forge_wal(&a_wal, &interleaved)),
    ];
    for (tag, wal) in cases {
        let t = tarball(&env, tag, &a, &wal);
        let out = env.path(&format!("out-{tag}"));
        let (code, j) = import_json(&env, &t, &env.path(&format!("salvaged-{tag}")), &["--salvage"]);
        assert_eq!(code, 0, "{tag}: {j}");
        let got = rows(&restored(&env, j["archive"].as_str().unwrap(), tag));
        same_rows(&got, &own, tag);
        let sv = &j["import"]["salvaged"];
        assert!(sv["wal_left_out"].as_str().unwrap().contains("not this database file's"), "{tag}: {sv}");
        assert!(j["warnings"].to_string().contains("WAL LEFT OUT"), "{tag}: {j}");
        assert_eq!(j["import"]["wal"]["folded"], 0, "{tag}: {j}");
        let (code, j) = import_json(&env, &t, &out, &[]);
        assert_eq!(code, 3, "{tag}: {j}");
        let said = j["problems"].to_string();
        assert!(said.contains("not this database file's"), "{tag}: {said}");
        assert!(ls(&out).iter().all(|n| !n.contains(".tar.gz")), "{tag}: {:?}", ls(&out));
        let human = kf(&env, &["import", t.to_str().unwrap(), "--out", out.to_str().unwrap(), "--salvage"]);
        human.ok().stdout_has("WAL LEFT OUT").stdout_has("not this database file's");
    }
    // Its own -wal still replays (and is not salvaged).
    let t = tarball(&env, "own", &a, &a_wal);
    let (code, j) = import_json(&env, &t, &env.path("out-own"), &[]);
    assert_eq!((code, &j["salvaged"]), (0, &Value::Bool(false)), "{j}");
    assert!(j["import"]["wal"]["folded"].as_u64().unwrap() > 0, "{j}");
}

/// The database header's change counter (offsets 24 and 92) set to `n` in a page 1.
fn set_counter(page1: &mut [u8], n: u32) {
    page1[24..28].copy_from_slice(&n.to_be_bytes());
    page1[92..96].copy_from_slice(&n.to_be_bytes());
}

/// A leaf page of `table` that none of `frames` writes (to damage beside them).
fn leaf_not_in(db: &Path, table: &str, frames: &[(u32, u32, Vec<u8>)]) -> u32 {
    let c = rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    let pages: Vec<u32> = c
        .prepare("SELECT pageno FROM dbstat WHERE name = ?1 AND pagetype = 'leaf' ORDER BY pageno")
        .unwrap()
        .query_map([table], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    *pages.iter().find(|p| frames.iter().all(|f| f.0 != **p)).unwrap()
}

#[test]
fn a_foreign_wal_is_told_by_its_page_1_even_beside_a_damaged_file() {
    let env = Env::new();
    let (a, a_wal) = killed_writer(&env, "a", 2, 30);
    let (_b, b_wal) = killed_writer(&env, "b", 2, 30);
    let b_frames = frames(&b_wal);
    assert!(b_frames.iter().any(|f| f.0 == 1), "the writer's WAL writes page 1");
    // This database has seen more writers than the other: its header's change counter is
    // ahead (as are the versions of page 1 in its own WAL); one of its leaf pages is zeroed,
    // so that it fails its checks with or without any WAL.
    let alone = a.with_file_name("alone.db");
    std::fs::copy(&a, &alone).unwrap();
    let page = leaf_not_in(&alone, "sync_blobs", &frames(&a_wal));
    let mut bytes = std::fs::read(&a).unwrap();
    let ps = u16::from_be_bytes([bytes[16], bytes[17]]) as usize;
    let ahead = u32::from_be_bytes(bytes[24..28].try_into().unwrap()) + 1000;
    set_counter(&mut bytes, ahead);
    bytes[(page as usize - 1) * ps..page as usize * ps].fill(0);
    let damaged = env.path("damaged.db");
    std::fs::write(&damaged, &bytes).unwrap();
    let own = rows(&alone);
    let mut a_frames = frames(&a_wal);
    for f in a_frames.iter_mut().filter(|f| f.0 == 1) {
        set_counter(&mut f.2, ahead);
    }
    let mut interleaved = Vec::new();
    for (x, y) in a_frames.chunks(2).zip(b_frames.chunks(2)) {
        interleaved.extend(x.iter().cloned().map(|mut f| {
            f.1 = 0;
            f
        }));
        interleaved.extend(y.iter().cloned());
    }
    for (tag, wal) in [("older", b_wal.clone()), ("interleaved", forge_wal(&a_wal, &interleaved))] {
        let t = tarball(&env, tag, &damaged, &wal);
        let out = env.path(&format!("out-{tag}"));
        let (code, j) = import_json(&env, &t, &out, &[]);
        assert_eq!(code, 3, "{tag}: {j}");
        let said = j["problems"].to_string();
        assert!(
            said.contains("not this database file's") && said.contains("change counter"),
            "{tag}: {said}"
        );
        let (code, j) = import_json(&env, &t, &out, &["--salvage"]);
        assert_eq!(code, 0, "{tag}: {j}");
        let sv = &j["import"]["salvaged"];
        assert!(sv["wal_left_out"].as_str().unwrap().contains("change counter"), "{tag}: {sv}");
        let got = rows(&restored(&env, j["archive"].as_str().unwrap(), tag));
        only_rows_of(&got, &own, tag);
        // The rows of the zeroed page are gone, and cannot even be counted.
        let blobs = &sv["tables"]["sync_blobs"];
        assert!(blobs["read"].as_u64().unwrap() < own["sync_blobs"].len() as u64, "{tag}: {blobs}");
        assert_eq!(blobs["unreadable"], Value::Null, "{tag}: {blobs}");
    }
}

fn varint(b: &[u8]) -> (u64, usize) {
    let mut v = 0u64;
    for (i, &c) in b.iter().enumerate().take(8) {
        v = (v << 7) | u64::from(c & 0x7f);
        if c & 0x80 == 0 {
            return (v, i + 1);
        }
    }
    ((v << 8) | u64::from(b[8]), 9)
}

/// Pages of `table` of one type (`internal`, `leaf`, `overflow`), from dbstat.
fn pages_of(c: &rusqlite::Connection, table: &str, kind: &str) -> Vec<u32> {
    c.prepare("SELECT pageno FROM dbstat WHERE name = ?1 AND pagetype = ?2 ORDER BY pageno")
        .unwrap()
        .query_map([table, kind], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// Where, in the file, cell 0 of table leaf page `page` keeps its first overflow page number.
fn overflow_pointer_at(bytes: &[u8], ps: usize, page: u32) -> usize {
    let base = (page as usize - 1) * ps;
    let p = &bytes[base..base + ps];
    assert_eq!(p[0], 0x0d, "a table leaf page");
    let cell = u16::from_be_bytes([p[8], p[9]]) as usize;
    let (payload, a) = varint(&p[cell..]);
    let (_, b) = varint(&p[cell + a..]);
    let u = ps;
    let (x, m) = (u - 35, (u - 12) * 32 / 255 - 23);
    assert!(payload as usize > x, "cell 0 overflows");
    let k = m + (payload as usize - m) % (u - 4);
    let local = if k <= x { k } else { m };
    base + cell + a + b + local
}

/// Two tables of the same shape, and one of blobs that overflow: a pointer of one table bent
/// to a page of another makes SQLite read that table's rows as its own.
#[test]
fn rows_on_cross_linked_pages_are_never_copied() {
    let env = Env::new();
    let data = env.path("data");
    std::fs::create_dir_all(&data).unwrap();
    let db = data.join("keyfount.db");
    let c = rusqlite::Connection::open(&db).unwrap();
    c.execute_batch(
        "PRAGMA page_size=4096;
         CREATE TABLE schema_migrations(version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL) STRICT;
         INSERT INTO schema_migrations VALUES (1, 0);
         CREATE TABLE a(id INTEGER PRIMARY KEY, v TEXT NOT NULL);
         CREATE TABLE b(id INTEGER PRIMARY KEY, v TEXT NOT NULL);
         CREATE TABLE c(id INTEGER PRIMARY KEY, data BLOB NOT NULL);
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 3000)
         INSERT INTO a SELECT i, printf('a-%d-%.100c', i, 'x') FROM n;
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 3000)
         INSERT INTO b SELECT i, printf('b-%d-%.100c', i, 'y') FROM n;
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 40)
         INSERT INTO c SELECT i, randomblob(10000) FROM n;
         CREATE TABLE w(k TEXT PRIMARY KEY, v TEXT NOT NULL) WITHOUT ROWID;
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 3000)
         INSERT INTO w SELECT printf('k%06d', i), printf('%.100c', 'w') FROM n;",
    )
    .unwrap();
    let a_leaves = pages_of(&c, "a", "leaf");
    let b_root: u32 =
        c.query_row("SELECT rootpage FROM sqlite_schema WHERE name = 'b'", [], |r| r.get(0)).unwrap();
    let c_leaf = pages_of(&c, "c", "leaf")[1];
    let cells = |page: u32| -> u64 {
        c.query_row("SELECT ncell FROM dbstat WHERE pageno = ?1", [page], |r| r.get::<_, i64>(0)).unwrap()
            as u64
    };
    let (bent_child, bent_chain, bent_index) = (a_leaves[5], a_leaves[20], a_leaves[30]);
    let w_root: u32 =
        c.query_row("SELECT rootpage FROM sqlite_schema WHERE name = 'w'", [], |r| r.get(0)).unwrap();
    let on_a = cells(bent_child) + cells(bent_chain) + cells(bent_index);
    drop(c);
    let own = rows(&db);
    let mut bytes = std::fs::read(&db).unwrap();
    // b's root (interior): its first child becomes a leaf page of a.
    let root = (b_root as usize - 1) * 4096;
    assert_eq!(bytes[root], 0x05, "b's root is an interior page");
    let first = u16::from_be_bytes([bytes[root + 12], bytes[root + 13]]) as usize;
    bytes[root + first..root + first + 4].copy_from_slice(&bent_child.to_be_bytes());
    // The overflow chain of c's row on its second leaf runs into another leaf page of a.
    let at = overflow_pointer_at(&bytes, 4096, c_leaf);
    bytes[at..at + 4].copy_from_slice(&bent_chain.to_be_bytes());
    // w (WITHOUT ROWID: an index b-tree) gets a leaf page of a as a child too.
    let root = (w_root as usize - 1) * 4096;
    assert_eq!(bytes[root], 0x02, "w's root is an interior index page");
    let first = u16::from_be_bytes([bytes[root + 12], bytes[root + 13]]) as usize;
    bytes[root + first..root + first + 4].copy_from_slice(&bent_index.to_be_bytes());
    std::fs::write(&db, &bytes).unwrap();
    let t = env.path("bent.tar.gz");
    tar_czf(&t, env.dir.path(), &["data"]);
    let out = env.path("out");
    let (code, j) = import_json(&env, &t, &out, &[]);
    assert_eq!(code, 3, "{j}");
    assert!(j["problems"].to_string().contains("integrity_check"), "{j}");
    let (code, j) = import_json(&env, &t, &out, &["--salvage"]);
    assert_eq!(code, 0, "{j}");
    let got = rows(&restored(&env, j["archive"].as_str().unwrap(), "bent"));
    only_rows_of(&got, &own, "bent");
    let sv = &j["import"]["salvaged"];
    let crossed: Vec<u64> =
        sv["cross_linked_pages"].as_array().unwrap().iter().map(|p| p.as_u64().unwrap()).collect();
    assert!(crossed.contains(&u64::from(bent_child)) && crossed.contains(&u64::from(bent_chain)), "{sv}");
    let tables = &sv["tables"];
    assert_eq!(tables["a"]["cross_linked"].as_u64(), Some(on_a), "{tables}");
    // a's rows read through b's bent pointer are skipped; c's row whose chain runs into a is
    // lost (unreadable, or skipped when SQLite reads it), never copied with a's bytes.
    assert!(tables["b"]["cross_linked"].as_u64().unwrap() > 0, "{tables}");
    assert_eq!(tables["c"]["after"], 39, "{tables}");
    // Whose key a WITHOUT ROWID table's row is cannot be told from its rowid: none is copied.
    assert_eq!(tables["w"]["after"], 0, "{tables}");
    assert!(tables["w"]["not_copied"].as_str().unwrap().contains("WITHOUT ROWID"), "{tables}");
    // Every row is accounted for.
    for (name, t) in tables.as_object().unwrap() {
        let n = |k: &str| t[k].as_u64().unwrap();
        assert_eq!(n("read"), n("after") + n("skipped"), "{name}: {t}");
        assert_eq!(n("skipped"), n("cross_linked") + n("rows_refused") + n("orphans_removed"), "{name}: {t}");
        if let Some(before) = t["before"].as_u64() {
            assert_eq!(before, n("read") + n("unreadable"), "{name}: {t}");
        }
        assert_eq!(got[name].len() as u64, n("after"), "{name}: {t}");
    }
    let human = kf(&env, &["import", t.to_str().unwrap(), "--out", out.to_str().unwrap(), "--salvage"]);
    human.ok().stdout_has("Cross-linked pages").stdout_has("on cross-linked pages").stdout_has("unreadable");
}

#[test]
fn without_wal_salvages_the_database_file_as_captured() {
    let env = Env::new();
    let (a, a_wal) = killed_writer(&env, "a", 1, 20);
    let commits = frames(&a_wal).iter().filter(|f| f.1 != 0).count() as u64;
    let own = rows_without_wal(&a);
    let t = tarball(&env, "own", &a, &a_wal);
    let out = env.path("out");
    // Only with --salvage.
    kf(&env, &["import", t.to_str().unwrap(), "--out", out.to_str().unwrap(), "--without-wal"])
        .code(2)
        .stderr_has("--salvage");
    let (code, j) = import_json(&env, &t, &out, &["--salvage", "--without-wal"]);
    assert_eq!(code, 0, "{j}");
    assert_eq!(j["salvaged"], true, "{j}");
    let sv = &j["import"]["salvaged"];
    let left = sv["wal_left_out"].as_str().unwrap();
    assert!(left.contains("--without-wal") && left.contains(&format!("its {commits} committed")), "{left}");
    assert_eq!(j["import"]["wal"]["folded"], 0, "{j}");
    assert!(j["problems"].to_string().contains("left out on request"), "{j}");
    same_rows(&rows(&restored(&env, j["archive"].as_str().unwrap(), "alone")), &own, "without-wal");
    // The same through the environment; and a tarball with no -wal only warns.
    let state = env.path("state");
    let r = kfadmin_env(
        &[("KFADMIN_STATE_DIR", state.to_str().unwrap()), ("KFADMIN_SALVAGE", "1")],
        ["import", t.to_str().unwrap(), "--out", out.to_str().unwrap(), "--without-wal"],
    );
    r.ok().stdout_has("WAL LEFT OUT");
    let bare = env.path("bare");
    std::fs::create_dir_all(bare.join("data")).unwrap();
    std::fs::copy(a.with_file_name("keyfount.db"), bare.join("data/keyfount.db")).unwrap();
    let tb = env.path("bare.tar.gz");
    tar_czf(&tb, &bare, &["data"]);
    let (code, j) = import_json(&env, &tb, &out, &["--salvage", "--without-wal"]);
    assert_eq!((code, &j["salvaged"]), (0, &Value::Bool(false)), "{j}");
    assert!(j["warnings"].to_string().contains("no -wal"), "{j}");
}

/// Every page of every index zeroed (a table's own pages intact): every row is salvaged, and
/// counted before (a count must not go through a damaged index).
#[test]
fn zeroed_index_pages_lose_no_row() {
    let env = Env::new();
    let data = env.data_dir("data", 4);
    let db = data.join("keyfount.db");
    let own = rows(&db);
    let c = rusqlite::Connection::open(&db).unwrap();
    c.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)").unwrap();
    let ps: i64 = c.query_row("PRAGMA page_size", [], |r| r.get(0)).unwrap();
    let pages: Vec<i64> = c
        .prepare(
            "SELECT pageno FROM dbstat WHERE name IN (SELECT name FROM sqlite_schema WHERE type = 'index')",
        )
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    drop(c);
    assert!(pages.len() > 2, "{pages:?}");
    let mut bytes = std::fs::read(&db).unwrap();
    for p in &pages {
        let at = (*p as usize - 1) * ps as usize;
        bytes[at..at + ps as usize].fill(0);
    }
    std::fs::write(&db, &bytes).unwrap();
    let t = env.path("zeroed.tar.gz");
    tar_czf(&t, env.dir.path(), &["data"]);
    let out = env.path("out");
    let (code, _) = import_json(&env, &t, &out, &[]);
    assert_eq!(code, 3);
    let (code, j) = import_json(&env, &t, &out, &["--salvage"]);
    assert_eq!(code, 0, "{j}");
    for (name, t) in j["import"]["salvaged"]["tables"].as_object().unwrap() {
        let want = own[name].len() as u64;
        assert_eq!(
            (t["before"].as_u64(), t["read"].as_u64(), t["after"].as_u64(), t["skipped"].as_u64()),
            (Some(want), Some(want), Some(want), Some(0)),
            "{name}: {t}"
        );
    }
    same_rows(&rows(&restored(&env, j["archive"].as_str().unwrap(), "zeroed")), &own, "zeroed index");
}

/// A damaged database of about `size_mb` MB in a tarball (leaf pages of sync_blobs zeroed).
fn damaged_tarball(env: &Env, size_mb: u32) -> (PathBuf, u64) {
    let data = env.data_dir("data", size_mb);
    let db = data.join("keyfount.db");
    let c = rusqlite::Connection::open(&db).unwrap();
    c.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)").unwrap();
    let leaves = pages_of(&c, "sync_blobs", "leaf");
    drop(c);
    let mut bytes = std::fs::read(&db).unwrap();
    let ps = u16::from_be_bytes([bytes[16], bytes[17]]) as usize;
    for p in leaves.iter().skip(3).step_by(7) {
        bytes[(*p as usize - 1) * ps..*p as usize * ps].fill(0);
    }
    std::fs::write(&db, &bytes).unwrap();
    let t = env.path("damaged.tar.gz");
    tar_czf(&t, env.dir.path(), &["data"]);
    (t, bytes.len() as u64)
}

/// A salvage into a full disk (its staging area, then the archive's directory): exit 1, the
/// disk named, no file under a final name, no staging left.
#[test]
fn a_salvage_into_a_full_disk_leaves_nothing_behind() {
    assert!(is_root(), "a small tmpfs needs root (CI runs as root)");
    let env = Env::new();
    let (t, size) = damaged_tarball(&env, 8);
    let roomy = env.path("roomy");
    std::fs::create_dir(&roomy).unwrap();
    // Room to unpack the tarball, not to write the salvaged copy beside it; room for half an archive.
    let small_tmp = Tmpfs::mount(&env.path("small-tmp"), &(size * 3 / 2).to_string(), false);
    let small_out = Tmpfs::mount(&env.path("small-out"), &(size / 3).to_string(), false);
    for (tag, tmp, out) in [("staging", &small_tmp.dir, &roomy), ("archive", &roomy, &small_out.dir)] {
        let r = kf(
            &env,
            &[
                "import",
                t.to_str().unwrap(),
                "--salvage",
                "--out",
                out.to_str().unwrap(),
                "--tmp-dir",
                tmp.to_str().unwrap(),
                "--json",
            ],
        );
        assert_eq!(r.code, 1, "{tag}: {}\n{}", r.stdout, r.stderr);
        assert!(r.stderr.contains("full") || r.stderr.contains("space"), "{tag}: {}", r.stderr);
        for d in [tmp, out] {
            assert!(ls(d).is_empty(), "{tag}: left behind in {}: {:?}", d.display(), ls(d));
        }
    }
}

/// kill -9 while the rows are copied: no archive under a final name; the next import cleans
/// up and succeeds.
#[test]
fn a_salvage_killed_midway_leaves_no_archive_and_the_next_one_succeeds() {
    let env = Env::new();
    let (t, _) = damaged_tarball(&env, 40);
    let (out, tmp) = (env.path("out"), env.path("tmp"));
    std::fs::create_dir_all(&tmp).unwrap();
    std::fs::set_permissions(&tmp, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    let state = env.path("state");
    let mut child = Command::new(kfadmin_bin())
        .args(["import", t.to_str().unwrap(), "--salvage", "--out", out.to_str().unwrap(), "--tmp-dir"])
        .arg(&tmp)
        .env("KFADMIN_STATE_DIR", &state)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let salvaging = |dir: &Path| -> bool {
        let Ok(rd) = std::fs::read_dir(dir) else { return false };
        rd.flatten().any(|e| e.path().join("work/salvaged.db").exists())
    };
    let started = std::time::Instant::now();
    while !salvaging(&tmp) {
        assert!(child.try_wait().unwrap().is_none(), "the import ended before its salvage could be killed");
        assert!(started.elapsed() < std::time::Duration::from_secs(120), "no salvage started");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let finals = |out: &Path| {
        ls(out).into_iter().filter(|n| n.ends_with(".tar.gz") || n.ends_with(".sha256")).collect::<Vec<_>>()
    };
    assert!(finals(&out).is_empty(), "{:?}", ls(&out));
    let (code, j) = import_json(&env, &t, &out, &["--salvage", "--tmp-dir", tmp.to_str().unwrap()]);
    assert_eq!(code, 0, "{j}");
    assert_eq!(finals(&out).len(), 2, "{:?}", ls(&out));
    assert!(ls(&tmp).iter().all(|n| !salvaging(&tmp.join(n))), "{:?}", ls(&tmp));
    kf(&env, &["verify", j["archive"].as_str().unwrap()]).ok().stdout_has("SALVAGED");
}

/// Exit code and peak RSS (bytes) of kfadmin with these arguments (measured by GNU time: see
/// `under_time`).
fn peak_rss(env: &Env, args: &[&str]) -> (i32, u64) {
    let mut cmd = Command::new(kfadmin_bin());
    cmd.args(args).env("KFADMIN_STATE_DIR", env.path("state"));
    let (mut cmd, file) = under_time(&cmd, env.dir.path());
    let st = cmd
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    (st.code().unwrap_or(-1), peak_kib(&file) * 1024)
}

/// A damaged database with a 300 MB value in it (a tarball of well under 1 MB): the salvage
/// refuses that row, copies the others, and stays under 256 MiB.
#[test]
fn a_huge_value_is_refused_and_memory_stays_bounded() {
    let env = Env::new();
    let data = env.path("data");
    std::fs::create_dir_all(&data).unwrap();
    let db = data.join("keyfount.db");
    let c = rusqlite::Connection::open(&db).unwrap();
    c.execute_batch(
        "PRAGMA page_size=4096;
         CREATE TABLE schema_migrations(version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL) STRICT;
         INSERT INTO schema_migrations VALUES (1, 0);
         CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB);
         INSERT INTO t VALUES (1, x'01'), (2, zeroblob(300000000)), (3, x'03');
         CREATE TABLE u(id INTEGER PRIMARY KEY, v TEXT);
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2000)
         INSERT INTO u SELECT i, printf('%.200c', 'u') FROM n;",
    )
    .unwrap();
    let leaf = pages_of(&c, "u", "leaf")[3];
    drop(c);
    let f = std::fs::OpenOptions::new().write(true).open(&db).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&f, &[0u8; 4096], (u64::from(leaf) - 1) * 4096).unwrap();
    drop(f);
    let t = env.path("huge.tar.gz");
    tar_czf(&t, env.dir.path(), &["data"]);
    std::fs::remove_dir_all(&data).unwrap();
    assert!(std::fs::metadata(&t).unwrap().len() < 2 << 20);
    let out = env.path("out");
    let (code, rss) =
        peak_rss(&env, &["import", t.to_str().unwrap(), "--salvage", "--out", out.to_str().unwrap()]);
    assert_eq!(code, 0);
    assert!(rss < 256 << 20, "peak RSS {} MiB", rss >> 20);
    let (code, j) = import_json(&env, &t, &env.path("out-json"), &["--salvage"]);
    assert_eq!(code, 0, "{j}");
    let tables = &j["import"]["salvaged"]["tables"];
    assert_eq!(
        (&tables["t"]["too_big"], &tables["t"]["after"]),
        (&Value::from(1), &Value::from(2)),
        "{tables}"
    );
    kf(&env, &["import", t.to_str().unwrap(), "--salvage", "--out", env.path("out-text").to_str().unwrap()])
        .ok()
        .stdout_has("over 32 MiB");
}

/// A `-wal` of this database damaged in the middle is not "another database's": --salvage
/// keeps the transactions before the damage (and says nothing of leaving the -wal out).
#[test]
fn a_wal_damaged_in_the_middle_is_salvaged_with_what_replays() {
    let env = Env::new();
    let (a, a_wal) = killed_writer(&env, "a", 1, 40);
    let fs = frames(&a_wal);
    let commits: Vec<usize> = fs.iter().enumerate().filter(|(_, f)| f.1 != 0).map(|(i, _)| i).collect();
    assert!(commits.len() >= 5, "{} commits", commits.len());
    let mut bad = a_wal.clone();
    let ps = u32::from_be_bytes(a_wal[8..12].try_into().unwrap()) as usize;
    bad[32 + commits[3] * (24 + ps) + 24 + 100] ^= 0x10;
    let t = tarball(&env, "mid", &a, &bad);
    let (code, j) = import_json(&env, &t, &env.path("out"), &["--salvage"]);
    assert_eq!(code, 0, "{j}");
    assert_eq!(j["salvaged"], true, "{j}");
    assert_eq!(j["import"]["salvaged"]["wal_left_out"], Value::Null, "{j}");
    assert_eq!(j["import"]["wal"]["transactions"], 3, "{j}");
    assert!(!j["warnings"].to_string().contains("WAL LEFT OUT"), "{j}");
}
