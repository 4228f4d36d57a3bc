//! Point-in-time replication (issue 18): `kfadmin replicate` follows a real writer process's
//! WAL; `kfadmin restore --at T` rebuilds exactly the commits seen by T.

use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;

use crate::util::*;

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as i64
}

fn rfc3339_ms(ms: i64) -> String {
    humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(ms as u64)).to_string()
}

fn replicate(env: &Env, db: &Path, repo: &Path, extra: &[&str]) -> Child {
    let mut args = vec!["replicate", "--db", db.to_str().unwrap(), "-r", repo.to_str().unwrap()];
    args.extend_from_slice(extra);
    spawn_kf(env, &[], &args)
}

fn sigterm(child: Child) -> Run {
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    child.wait_with_output().unwrap().into()
}

fn sigkill(mut child: Child) -> Run {
    child.kill().unwrap();
    child.wait_with_output().unwrap().into()
}

/// (seq, at in ms) of every audit row of a database, in order.
fn audit(db: &Path) -> Vec<(i64, i64)> {
    let c = rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    let mut s = c.prepare("SELECT seq, at FROM audit_log ORDER BY seq").unwrap();
    s.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).unwrap().collect::<Result<_, _>>().unwrap()
}

/// `got` is `want` (or, with `prefix`, its first rows); says where they differ, not all rows.
fn same_rows(got: &[(i64, i64)], want: &[(i64, i64)], prefix: bool, what: &str) {
    let n = if prefix { got.len().min(want.len()) } else { want.len() };
    let first = got.iter().zip(want).position(|(a, b)| a != b);
    assert!(
        first.is_none() && got.len() == n.max(if prefix { got.len() } else { 0 }) && got.len() <= want.len(),
        "{what}: {} rows restored (last {:?}), {} live (last {:?}); first difference at row {first:?}",
        got.len(),
        got.last(),
        want.len(),
        want.last()
    );
}

/// The gaps `list` reports whose commits were read late (not repairs), in ms.
fn read_late_gaps(env: &Env, repo: &Path) -> Vec<(i64, i64)> {
    let r = kfadmin_fault(&env.path("state"), "", &["list", "-r", repo.to_str().unwrap(), "--json"]);
    let ms =
        |s: &str| humantime::parse_rfc3339(s).unwrap().duration_since(UNIX_EPOCH).unwrap().as_millis() as i64;
    let mut out = Vec::new();
    for c in r.json()["chains"].as_array().cloned().unwrap_or_default() {
        for g in c["gaps"].as_array().cloned().unwrap_or_default() {
            if g["reason"].as_str().unwrap_or("").contains("stamped when read") {
                out.push((ms(g["from"].as_str().unwrap()), ms(g["to"].as_str().unwrap())));
            }
        }
    }
    out
}

/// `restore --at T` into a new data directory; returns its database.
fn restore_at(env: &Env, repo: &Path, at: &str, n: usize) -> (Run, PathBuf) {
    let dir = env.path(&format!("restored-{n}"));
    let run = kfadmin_fault(
        &env.path("state"),
        "",
        &["restore", "--at", at, "-r", repo.to_str().unwrap(), "--data-dir", dir.to_str().unwrap(), "--yes"],
    );
    (run, dir.join("keyfount.db"))
}

/// Restore at `at_ms` and check it holds exactly a prefix of the live history: every row whose
/// `at` is ≤ at_ms − 1 s, and none whose `at` is > at_ms; and the writer's invariants.
fn assert_point(env: &Env, repo: &Path, live: &[(i64, i64)], at_ms: i64, n: usize) {
    let (run, db) = restore_at(env, repo, &rfc3339_ms(at_ms), n);
    run.ok();
    check_db(&db, 0);
    let got = audit(&db);
    let last = got.last().map(|r| r.0).unwrap_or(0);
    same_rows(&got, live, true, "the restored rows are not a prefix of the live history");
    let must = live.iter().filter(|r| r.1 <= at_ms - 1000).map(|r| r.0).max().unwrap_or(0);
    let may = live.iter().filter(|r| r.1 <= at_ms).map(|r| r.0).max().unwrap_or(0);
    assert!(
        last >= must && last <= may,
        "restore --at {}: last seq {last}, but every seq up to {must} (committed by T - 1 s) and none after {may} (written by T) was expected",
        rfc3339_ms(at_ms)
    );
}

/// A writer at 200 commits/s with replicate running: for several times T, `restore --at T`
/// holds every transaction committed by T − 1 s and none committed after T, with the writer's
/// invariants. Then the writer stops, replicate is killed 1 s later (SIGKILL): the last commit
/// is restorable (`--at now`).
#[test]
fn every_point_restores_exactly_and_the_last_commit_survives_a_kill() {
    let env = Env::new();
    let db = env.data_dir("data", 2).join("keyfount.db");
    let repo = env.path("repo");
    let writer = env.start_writer(&db, 200, false);
    let rep = replicate(&env, &db, &repo, &[]);
    let begin = now_ms();
    std::thread::sleep(Duration::from_secs(4));
    let status = writer.stop();
    std::thread::sleep(Duration::from_millis(1200));
    sigkill(rep);
    let live = audit(&db);
    assert_eq!(live.last().unwrap().0, status["last_seq"].as_i64().unwrap());
    // The base was taken after `begin`: the times from 1 s after it to the end.
    let end = now_ms();
    // A poll held up for more than a second (a loaded machine) makes its commits a gap:
    // those windows are refused (replicate_stamps tests that), every other point is exact.
    let late = read_late_gaps(&env, &repo);
    let mut x = end as u64 | 1;
    let mut n = 0;
    while n < 5 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let at = begin + 1500 + (x % (end - begin - 1500) as u64) as i64;
        if late.iter().any(|&(from, to)| at >= from - 100 && at <= to + 100) {
            continue;
        }
        assert_point(&env, &repo, &live, at, n);
        n += 1;
    }
    let (run, restored) = restore_at(&env, &repo, "now", 99);
    run.ok();
    same_rows(&audit(&restored), &live, false, "restore --at now");
}

/// replicate killed (SIGKILL), the WAL checkpointed and truncated while it is down (the
/// writer goes on): restarted, it repairs the gap by shipping the pages that differ and says
/// so; every point after the gap restores exactly, a point inside it is refused.
#[test]
fn a_gap_while_down_is_repaired_reported_and_everything_after_restores() {
    let env = Env::new();
    let db = env.data_dir("data", 2).join("keyfount.db");
    let repo = env.path("repo");
    let writer = env.start_writer(&db, 200, false);
    let rep = replicate(&env, &db, &repo, &[]);
    std::thread::sleep(Duration::from_millis(2500));
    sigkill(rep);
    let down = now_ms();
    std::thread::sleep(Duration::from_millis(300));
    // The test's own doing: a second connection folds the WAL in and truncates it.
    let c = rusqlite::Connection::open(&db).unwrap();
    c.busy_timeout(Duration::from_secs(10)).unwrap();
    let (busy, _, _): (i64, i64, i64) = c
        .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap();
    assert_eq!(busy, 0, "the checkpoint could not run");
    drop(c);
    std::thread::sleep(Duration::from_millis(500));
    let rep = spawn_kf(
        &env,
        &[],
        &["replicate", "--db", db.to_str().unwrap(), "-r", repo.to_str().unwrap(), "--json", "-v"],
    );
    std::thread::sleep(Duration::from_millis(2500));
    let status = writer.stop();
    std::thread::sleep(Duration::from_millis(1200));
    let run = sigterm(rep);
    let rep_log = run.stderr.clone();
    run.ok().stderr_has("gap in chain");
    let report: Value = run.json();
    // The repair's gap (a loaded machine may add gaps of commits read late after it).
    let gaps: Vec<Value> = report["gaps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|g| !g["reason"].as_str().unwrap().contains("stamped when read"))
        .cloned()
        .collect();
    assert_eq!(gaps.len(), 1, "{report}");
    let live = audit(&db);
    assert_eq!(live.last().unwrap().0, status["last_seq"].as_i64().unwrap());
    let gap_to = humantime::parse_rfc3339(gaps[0]["to"].as_str().unwrap()).unwrap();
    let gap_to = gap_to.duration_since(UNIX_EPOCH).unwrap().as_millis() as i64;
    let end = now_ms();
    assert!(gap_to > down && gap_to < end, "{report}");
    // After the gap: exact (past any window a loaded machine made a gap of commits read late).
    let late = read_late_gaps(&env, &repo);
    let outside = |mut at: i64| {
        while let Some(&(_, to)) = late.iter().find(|&&(from, to)| at > from && at < to) {
            at = to + 1;
        }
        at
    };
    assert_point(&env, &repo, &live, outside(gap_to + 1), 0);
    assert_point(&env, &repo, &live, outside((gap_to + end) / 2), 1);
    // Before it (while replicate ran the first time): exact too.
    assert_point(&env, &repo, &live, outside(down - 600), 2);
    // Inside it: refused, nothing restored.
    let (run, restored) = restore_at(&env, &repo, &rfc3339_ms(down + 200), 3);
    run.code(2).stderr_has("inside a gap");
    assert!(!restored.exists());
    let (run4, restored) = restore_at(&env, &repo, "now", 4);
    run4.ok();
    let got = audit(&restored);
    if got.len() != live.len() {
        eprintln!("replicate's log:\n{rep_log}");
    }
    same_rows(&got, &live, false, "restore --at now");
}

fn walk_modes(dir: &Path) -> Vec<(PathBuf, u32)> {
    use std::os::unix::fs::PermissionsExt;
    let mut out = vec![(dir.to_path_buf(), std::fs::metadata(dir).unwrap().permissions().mode())];
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk_modes(&p));
        } else {
            out.push((p.clone(), std::fs::metadata(&p).unwrap().permissions().mode()));
        }
    }
    out
}

fn chain_dir(repo: &Path) -> PathBuf {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(repo.join("pitr"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    assert_eq!(dirs.len(), 1, "one chain expected: {dirs:?}");
    dirs.pop().unwrap()
}

fn segments(chain: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for d in std::fs::read_dir(chain.join("seg")).unwrap() {
        for f in std::fs::read_dir(d.unwrap().path()).unwrap() {
            out.push(f.unwrap().path());
        }
    }
    out.sort();
    out
}

fn verify_chains(env: &Env, repo: &Path) -> (Run, Value) {
    let run = kfadmin_fault(&env.path("state"), "", &["verify", "-r", repo.to_str().unwrap(), "--json"]);
    let v = run.json();
    (run, v)
}

/// Each commit the writer made after the base is in the chain exactly once: the chain's
/// transaction counter is the number of writer transactions since the base (no gap), and
/// `verify` checks every commit's checksum.
fn assert_counted(env: &Env, repo: &Path, live: &[(i64, i64)]) {
    let (run, v) = verify_chains(env, repo);
    run.ok();
    let chain = &v["chains"][0];
    assert_eq!(chain["ok"], true, "{v}");
    let info: Value =
        serde_json::from_slice(&std::fs::read(chain_dir(repo).join("chain.json")).unwrap()).unwrap();
    let base_us = info["base_time_us"].as_u64().unwrap();
    let base_at = humantime::format_rfc3339_micros(UNIX_EPOCH + Duration::from_micros(base_us)).to_string();
    // The base itself, restored: its last seq.
    let (run, db) = restore_at(env, repo, &base_at, 1000);
    run.ok();
    let base_seq = audit(&db).last().map(|r| r.0).unwrap_or(0);
    if chain["gaps"].as_array().is_none_or(|g| g.is_empty()) {
        assert_eq!(
            chain["commits"].as_i64().unwrap(),
            live.last().unwrap().0 - base_seq,
            "the chain does not hold each writer transaction after its base exactly once: {} commits in the chain, {} writer transactions after the base (seq {base_seq} to {}): {v}",
            chain["commits"],
            live.last().unwrap().0 - base_seq,
            live.last().unwrap().0
        );
    }
}

/// A segment damaged (one flipped byte) or missing: `verify` and `list` say where the chain
/// breaks (exit 3 for verify), a point after the break is refused (exit 3), a point before it
/// still restores exactly.
#[test]
fn a_damaged_or_missing_segment_breaks_the_points_after_it_and_is_reported() {
    let env = Env::new();
    let db = env.data_dir("data", 2).join("keyfount.db");
    let repo = env.path("repo");
    let writer = env.start_writer(&db, 200, false);
    let rep = replicate(&env, &db, &repo, &[]);
    std::thread::sleep(Duration::from_secs(3));
    writer.stop();
    std::thread::sleep(Duration::from_millis(1200));
    sigterm(rep).ok();
    let live = audit(&db);
    assert_counted(&env, &repo, &live);
    let chain = chain_dir(&repo);
    // The chain holds the server's keys: private, like every archive.
    for (path, mode) in walk_modes(&repo.join("pitr")) {
        let want = if path.is_dir() { 0o700 } else { 0o600 };
        assert_eq!(mode & 0o777, want, "{} has mode {:o}", path.display(), mode & 0o777);
    }
    let segs = segments(&chain);
    assert!(segs.len() >= 6, "{segs:?}");
    let k = segs.len() / 2;
    let header_of = |p: &Path| -> Value {
        let b = std::fs::read(p).unwrap();
        let n = u32::from_le_bytes(b[8..12].try_into().unwrap()) as usize;
        serde_json::from_slice(&b[12..12 + n]).unwrap()
    };
    let before_ms = (header_of(&segs[k - 1])["last_time_us"].as_u64().unwrap() / 1000) as i64;
    let after_ms = (header_of(&segs[k + 1])["last_time_us"].as_u64().unwrap() / 1000) as i64 + 1;
    let bytes_ok = std::fs::read(&segs[k]).unwrap();
    let mut bytes = bytes_ok.clone();
    let at = bytes.len() - 100;
    bytes[at] ^= 0x40;
    std::fs::write(&segs[k], &bytes).unwrap();
    let (run, v) = verify_chains(&env, &repo);
    run.code(3);
    let problem = v["chains"][0]["problem"].as_str().unwrap().to_string();
    assert!(problem.contains(&format!("segment {}", k + 1)) && problem.contains("damaged"), "{v}");
    kfadmin_fault(&env.path("state"), "", &["list", "-r", repo.to_str().unwrap()]).ok().stdout_has("BROKEN");
    let (run, restored) = restore_at(&env, &repo, &rfc3339_ms(after_ms), 1);
    run.code(3).stderr_has("broken");
    assert!(!restored.exists());
    let (run, restored) = restore_at(&env, &repo, &rfc3339_ms(before_ms), 2);
    run.ok();
    same_rows(&audit(&restored), &live, true, "a point before the damage");
    // Crafted instead (a valid hash over a record that sizes the database at 2^31 pages):
    // refused as broken, nothing sized by it.
    std::fs::write(&segs[k], &bytes_ok).unwrap();
    let mut d = kfadmin::replicate::segment::decode(&bytes_ok).unwrap();
    d.records[0].db_pages = 1 << 31;
    d.records[0].pages.push((1 << 31, vec![0u8; d.header.page_size as usize]));
    std::fs::write(&segs[k], kfadmin::replicate::segment::encode(&d.header, &d.records)).unwrap();
    let (run, v) = verify_chains(&env, &repo);
    run.code(3);
    assert!(v["chains"][0]["problem"].as_str().unwrap().contains("sizes the database"), "{v}");
    restore_at(&env, &repo, &rfc3339_ms(after_ms), 4).0.code(3);
    // Missing instead of damaged: the same.
    std::fs::remove_file(&segs[k]).unwrap();
    let (run, v) = verify_chains(&env, &repo);
    run.code(3);
    assert!(v["chains"][0]["problem"].as_str().unwrap().contains("missing"), "{v}");
    restore_at(&env, &repo, &rfc3339_ms(after_ms), 3).0.code(3);
}

/// SIGKILL at each step of `replicate` (after the base, before a segment is written, after
/// it is renamed), each time restarted while the writer goes on: no commit is lost or shipped
/// twice, the chain verifies, and the last state restores exactly.
#[test]
fn a_kill_at_every_step_of_replicate_resumes_without_loss_or_duplication() {
    let env = Env::new();
    let db = env.data_dir("data", 2).join("keyfount.db");
    let repo = env.path("repo");
    let writer = env.start_writer(&db, 200, false);
    for point in ["replicate.based", "replicate.segment", "replicate.shipped", "replicate.segment"] {
        let run = kfadmin_fault(
            &env.path("state"),
            &format!("{point}:kill"),
            &["replicate", "--db", db.to_str().unwrap(), "-r", repo.to_str().unwrap(), "--duration", "5s"],
        );
        assert_eq!(run.code, -1, "replicate was not killed at {point}: {}", run.stderr);
        std::thread::sleep(Duration::from_millis(150));
    }
    let rep = replicate(&env, &db, &repo, &["-v"]);
    std::thread::sleep(Duration::from_millis(1500));
    writer.stop();
    std::thread::sleep(Duration::from_millis(1200));
    let log = sigkill(rep).stderr;
    let live = audit(&db);
    assert!(segments(&chain_dir(&repo)).iter().all(|p| p.extension().unwrap() == "kfseg"));
    assert_counted(&env, &repo, &live);
    let (run, restored) = restore_at(&env, &repo, "now", 7);
    run.ok();
    let got = audit(&restored);
    if got.len() != live.len() {
        eprintln!("replicate's log:\n{log}");
    }
    same_rows(&got, &live, false, "restore --at now");
}

fn signal(pid: u32, sig: i32) {
    // SAFETY: signalling our own child.
    unsafe { libc::kill(pid as i32, sig) };
}

/// (id, balance) of every user.
fn balances(db: &Path) -> Vec<(i64, i64)> {
    let c = rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    let mut s = c.prepare("SELECT id, balance FROM users ORDER BY id").unwrap();
    s.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).unwrap().collect::<Result<_, _>>().unwrap()
}

/// The WAL truncated while replicate is down, and the new generation shorter than where
/// replicate had read to: nothing of the old generation is left to read, and the new one is
/// the very next (one checkpoint and one salt later), so it looks like it follows on. A commit
/// made between the kill and the checkpoint is in no frame replicate can read: it must report
/// a gap and repair it, never carry on as if nothing was lost.
#[test]
fn a_truncated_wal_shorter_than_where_replicate_stopped_is_a_gap() {
    let env = Env::new();
    let db = env.data_dir("data", 2).join("keyfount.db");
    let repo = env.path("repo");
    let writer = env.start_writer(&db, 200, false);
    let rep = replicate(&env, &db, &repo, &[]);
    std::thread::sleep(Duration::from_millis(1500));
    signal(writer.pid(), libc::SIGSTOP);
    std::thread::sleep(Duration::from_millis(800));
    sigkill(rep);
    // The test's own commits (a transfer: the total stays): one before the checkpoint, in the
    // generation replicate was reading, one after it, in the new, short one.
    let c = rusqlite::Connection::open(&db).unwrap();
    c.busy_timeout(Duration::from_secs(10)).unwrap();
    let transfer = "BEGIN; UPDATE users SET balance = balance + 7 WHERE id = (SELECT min(id) FROM users);
                    UPDATE users SET balance = balance - 7 WHERE id = (SELECT max(id) FROM users); COMMIT;";
    c.execute_batch(transfer).unwrap();
    let (busy, _, _): (i64, i64, i64) = c
        .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap();
    assert_eq!(busy, 0, "the checkpoint could not run");
    c.execute_batch(transfer).unwrap();
    let expected = balances(&db);
    drop(c);
    let rep = spawn_kf(
        &env,
        &[],
        &["replicate", "--db", db.to_str().unwrap(), "-r", repo.to_str().unwrap(), "--json", "-v"],
    );
    std::thread::sleep(Duration::from_millis(1500));
    let run = sigterm(rep);
    run.ok();
    let report = run.json();
    assert_eq!(report["gaps"].as_array().map(|g| g.len()), Some(1), "no gap reported: {report}");
    let (run, restored) = restore_at(&env, &repo, "now", 0);
    run.ok();
    assert_eq!(balances(&restored), expected, "the restored database lacks a commit");
    signal(writer.pid(), libc::SIGCONT);
    writer.stop();
}

/// Between two reads of replicate, the WAL restarts (a new generation in the same file, a few
/// frames) and the last connection closes (checkpoint, WAL deleted). The new generation's
/// commits are still in the deleted file replicate holds open: they are shipped, not lost.
#[test]
fn commits_of_a_restart_just_before_the_server_closes_are_shipped() {
    let env = Env::new();
    let db = env.data_dir("data", 2).join("keyfount.db");
    let repo = env.path("repo");
    let writer = env.start_writer(&db, 200, false);
    let rep = replicate(&env, &db, &repo, &["--interval", "500ms"]);
    std::thread::sleep(Duration::from_millis(1500));
    writer.kill();
    std::thread::sleep(Duration::from_millis(1200));
    let transfer = "BEGIN; UPDATE users SET balance = balance + 7 WHERE id = (SELECT min(id) FROM users);
                    UPDATE users SET balance = balance - 7 WHERE id = (SELECT max(id) FROM users); COMMIT;";
    // replicate stopped between two reads (never while it holds a read mark: the RESTART
    // checkpoint would not get through then).
    let c = rusqlite::Connection::open(&db).unwrap();
    loop {
        signal(rep.id(), libc::SIGSTOP);
        c.busy_timeout(Duration::from_millis(300)).unwrap();
        let busy: i64 = c.query_row("PRAGMA wal_checkpoint(RESTART)", [], |r| r.get(0)).unwrap();
        if busy == 0 {
            break;
        }
        signal(rep.id(), libc::SIGCONT);
        std::thread::sleep(Duration::from_millis(50));
    }
    c.execute_batch(transfer).unwrap();
    let expected = balances(&db);
    c.close().unwrap();
    assert!(!db.with_file_name("keyfount.db-wal").exists(), "the last connection did not delete the WAL");
    signal(rep.id(), libc::SIGCONT);
    std::thread::sleep(Duration::from_millis(1500));
    let run = sigterm(rep);
    run.ok();
    let (run, restored) = restore_at(&env, &repo, "now", 0);
    run.ok();
    assert_eq!(balances(&restored), expected, "the commit made after the restart was lost");
}

/// A database in rollback-journal mode commits straight into its file: there is no WAL to
/// follow, and replicate refuses it (exit 2) instead of shipping nothing while claiming to run.
#[test]
fn a_database_not_in_wal_mode_is_refused() {
    let env = Env::new();
    let db = env.data_dir("data", 1).join("keyfount.db");
    let c = rusqlite::Connection::open(&db).unwrap();
    let mode: String = c.query_row("PRAGMA journal_mode=DELETE", [], |r| r.get(0)).unwrap();
    assert_eq!(mode, "delete");
    drop(c);
    let repo = env.path("repo");
    let run = kfadmin_fault(
        &env.path("state"),
        "",
        &["replicate", "--db", db.to_str().unwrap(), "-r", repo.to_str().unwrap(), "--duration", "2s"],
    );
    run.code(2).stderr_has("not in WAL mode");
    assert!(!repo.join("pitr").exists() || std::fs::read_dir(repo.join("pitr")).unwrap().next().is_none());
}
