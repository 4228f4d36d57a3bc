//! Long chains (issue 18, rule 3 and 5): a chain ends and a new one starts on a new base when
//! the application runs VACUUM or changes its page size, and when the database is restored (by
//! kfadmin, or replaced in place by `cp`), with a real writer process and a real `replicate`.
//! Every point before and after the change restores exactly.

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

fn replicate(env: &Env, db: &Path, repo: &Path) -> Child {
    replicate_with(env, db, repo, &[])
}

fn replicate_with(env: &Env, db: &Path, repo: &Path, extra: &[&str]) -> Child {
    let mut args =
        vec!["replicate", "--db", db.to_str().unwrap(), "-r", repo.to_str().unwrap(), "--json", "-v"];
    args.extend_from_slice(extra);
    spawn_kf(env, &[], &args)
}

/// SIGTERM: the report replicate prints when it stops.
fn stop_replicate(child: Child) -> (Run, Value) {
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let run: Run = child.wait_with_output().unwrap().into();
    let v = serde_json::from_str(&run.stdout).unwrap_or_else(|_| panic!("no report: {}", run.stderr));
    (run, v)
}

/// (seq, at in ms) of every audit row of a database, in order.
fn audit(db: &Path) -> Vec<(i64, i64)> {
    let c = rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    let mut s = c.prepare("SELECT seq, at FROM audit_log ORDER BY seq").unwrap();
    s.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).unwrap().collect::<Result<_, _>>().unwrap()
}

fn restore_at(env: &Env, repo: &Path, at: &str, n: usize) -> (Run, PathBuf) {
    let dir = env.path(&format!("restored-{n}"));
    let run = kfadmin_fault(
        &env.path("state"),
        "",
        &["restore", "--at", at, "-r", repo.to_str().unwrap(), "--data-dir", dir.to_str().unwrap(), "--yes"],
    );
    (run, dir.join("keyfount.db"))
}

/// `restore --at` at `at_ms` holds a prefix of `live`: every row written by T − 1 s and none
/// written after T; and the writer's invariants hold.
fn assert_point(env: &Env, repo: &Path, live: &[(i64, i64)], at_ms: i64, n: usize) {
    let (run, db) = restore_at(env, repo, &rfc3339_ms(at_ms), n);
    run.ok();
    check_db(&db, 0);
    let got = audit(&db);
    let k = got.len().min(live.len());
    assert!(got.len() <= live.len() && got[..k] == live[..k], "point {n}: not a prefix of the live history");
    let last = got.last().map(|r| r.0).unwrap_or(0);
    let must = live.iter().filter(|r| r.1 <= at_ms - 1000).map(|r| r.0).max().unwrap_or(0);
    let may = live.iter().filter(|r| r.1 <= at_ms).map(|r| r.0).max().unwrap_or(0);
    assert!(
        last >= must && last <= may,
        "restore --at {} (point {n}): last seq {last}, expected every seq up to {must} and none after {may}",
        rfc3339_ms(at_ms)
    );
}

fn chains(repo: &Path) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(repo.join("pitr"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.join("chain.json").is_file() && !p.file_name().unwrap().to_string_lossy().starts_with('.')
        })
        .collect();
    dirs.sort();
    dirs
}

fn chain_info(dir: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(dir.join("chain.json")).unwrap()).unwrap()
}

fn base_ms(dir: &Path) -> i64 {
    (chain_info(dir)["base_time_us"].as_u64().unwrap() / 1000) as i64
}

fn ms_of(t: &str) -> i64 {
    humantime::parse_rfc3339(t).unwrap().duration_since(UNIX_EPOCH).unwrap().as_millis() as i64
}

/// `verify` checks every chain, each commit's checksum against the page digests. The only gaps
/// are those of a server restart (as replicate has always reported them, by either of its two
/// reasons): none at a new base.
/// Returns the gaps (from, to) in ms.
fn assert_chains_verify(env: &Env, repo: &Path, want: usize) -> Vec<(i64, i64)> {
    let run = kfadmin_fault(&env.path("state"), "", &["verify", "-r", repo.to_str().unwrap(), "--json"]);
    let v = run.json();
    run.ok();
    let list = v["chains"].as_array().unwrap();
    assert_eq!(list.len(), want, "{v}");
    assert!(list.iter().all(|c| c["ok"] == true), "{v}");
    let mut gaps = Vec::new();
    for g in list.iter().flat_map(|c| c["gaps"].as_array().unwrap()) {
        let reason = g["reason"].as_str().unwrap();
        assert!(
            reason.contains("a WAL appeared") || reason.contains("the server"),
            "a gap that is not a restart: {v}"
        );
        gaps.push((ms_of(g["from"].as_str().unwrap()), ms_of(g["to"].as_str().unwrap())));
    }
    gaps
}

/// Points spread over [from, to), outside the gaps (and 100 ms around them): deterministic.
fn times_outside(from: i64, to: i64, k: usize, gaps: &[(i64, i64)]) -> Vec<i64> {
    (0..4 * k)
        .map(|i| from + (to - from) * (2 * i as i64 + 1) / (8 * k as i64))
        .filter(|at| !gaps.iter().any(|&(f, t)| *at >= f - 100 && *at <= t + 100))
        .step_by(2)
        .take(k)
        .collect()
}

/// The one new base the run started, and why.
fn one_new_base(report: &Value, says: &str) {
    let nb = report["new_bases"].as_array().unwrap_or_else(|| panic!("{report}"));
    assert_eq!(nb.len(), 1, "one new base expected: {report}");
    let reason = nb[0]["reason"].as_str().unwrap();
    assert!(reason.contains(says), "the new base's reason {reason:?} does not say {says:?}");
}

/// VACUUM by the application while the writer commits at 200/s: the old chain ends with the
/// VACUUM's commit, a new chain starts on a new base at once, both verify without a gap, and
/// points before, across and after the VACUUM restore exactly.
#[test]
fn vacuum_starts_a_new_base_and_every_point_before_and_after_restores() {
    let env = Env::new();
    let db = env.data_dir("data", 2).join("keyfount.db");
    let repo = env.path("repo");
    let writer = env.start_writer(&db, 200, false);
    let rep = replicate(&env, &db, &repo);
    std::thread::sleep(Duration::from_millis(2500));
    let vacuum = now_ms();
    let c = rusqlite::Connection::open(&db).unwrap();
    c.busy_timeout(Duration::from_secs(10)).unwrap();
    c.execute_batch("VACUUM").unwrap();
    drop(c);
    std::thread::sleep(Duration::from_millis(3000));
    writer.stop();
    std::thread::sleep(Duration::from_millis(1200));
    let (_, report) = stop_replicate(rep);
    one_new_base(&report, "VACUUM");
    let live = audit(&db);
    let dirs = chains(&repo);
    assert_eq!(dirs.len(), 2, "{dirs:?}");
    let gaps = assert_chains_verify(&env, &repo, 2);
    assert!(gaps.is_empty(), "{gaps:?}");
    let (first, second) = (base_ms(&dirs[0]), base_ms(&dirs[1]));
    assert!(second >= vacuum, "the new base is older than the VACUUM");
    for (n, at) in times_outside(first + 1000, now_ms(), 8, &[]).into_iter().enumerate() {
        assert_point(&env, &repo, &live, at, n);
    }
    let (run, restored) = restore_at(&env, &repo, "now", 99);
    run.ok();
    assert_eq!(audit(&restored), live, "restore --at now");
}

/// A page-size change by the application (journal_mode=DELETE, page_size, VACUUM, back to
/// WAL) while replicate runs: a new chain with the new page size; points before and after
/// restore exactly.
#[test]
fn a_page_size_change_starts_a_new_base() {
    let env = Env::new();
    let db = env.data_dir("data", 2).join("keyfount.db");
    let repo = env.path("repo");
    let writer = env.start_writer(&db, 200, false);
    let rep = replicate(&env, &db, &repo);
    std::thread::sleep(Duration::from_millis(2000));
    writer.stop();
    let before = audit(&db);
    let changed = now_ms();
    let c = rusqlite::Connection::open(&db).unwrap();
    c.busy_timeout(Duration::from_secs(10)).unwrap();
    c.execute_batch("PRAGMA journal_mode=DELETE; PRAGMA page_size=8192; VACUUM; PRAGMA journal_mode=WAL;")
        .unwrap();
    drop(c);
    std::thread::sleep(Duration::from_millis(2000));
    let writer = env.start_writer(&db, 200, false);
    std::thread::sleep(Duration::from_millis(2500));
    writer.stop();
    std::thread::sleep(Duration::from_millis(1200));
    let (_, report) = stop_replicate(rep);
    let dirs = chains(&repo);
    assert_eq!(dirs.len(), 2, "{dirs:?}: {report}");
    assert_eq!(chain_info(&dirs[1])["page_size"], 8192);
    assert_eq!(report["new_bases"].as_array().unwrap().len(), 1, "{report}");
    let gaps = assert_chains_verify(&env, &repo, 2);
    let live = audit(&db);
    for (n, at) in times_outside(base_ms(&dirs[0]) + 1000, changed, 3, &gaps).into_iter().enumerate() {
        assert_point(&env, &repo, &before, at, n);
    }
    for (n, at) in times_outside(base_ms(&dirs[1]) + 1000, now_ms(), 3, &gaps).into_iter().enumerate() {
        assert_point(&env, &repo, &live, at, 10 + n);
    }
}

/// A database restored by `kfadmin restore` (another file swapped in) and, later, one
/// overwritten in place by `cp` (the same inode), each while replicate runs and the server is
/// stopped: each starts a new chain (a server restart alone does not); every point restores
/// the history it belongs to.
#[test]
fn a_restore_by_kfadmin_and_one_by_cp_start_new_bases() {
    let env = Env::new();
    let data = env.data_dir("data", 2);
    let db = data.join("keyfount.db");
    let repo = env.path("repo");
    let backups = env.path("backups");
    let writer = env.start_writer(&db, 200, false);
    let rep = replicate(&env, &db, &repo);
    std::thread::sleep(Duration::from_millis(1500));
    let made = kfadmin_fault(
        &env.path("state"),
        "",
        &["backup", "--online", "--db", db.to_str().unwrap(), "-r", backups.to_str().unwrap(), "--json"],
    );
    made.ok();
    let archive = made.json()["archive"].as_str().unwrap().to_string();
    std::thread::sleep(Duration::from_millis(1500));
    writer.stop();
    // A server restart alone is no reason for a new base.
    std::thread::sleep(Duration::from_millis(600));
    let writer = env.start_writer(&db, 200, false);
    std::thread::sleep(Duration::from_millis(1000));
    writer.stop();
    let history1 = audit(&db);
    let end1 = now_ms();
    kfadmin_fault(
        &env.path("state"),
        "",
        &["restore", &archive, "--data-dir", data.to_str().unwrap(), "--yes"],
    )
    .ok();
    std::thread::sleep(Duration::from_millis(2000));
    let writer = env.start_writer(&db, 200, false);
    std::thread::sleep(Duration::from_millis(2500));
    writer.stop();
    let history2 = audit(&db);
    let end2 = now_ms();
    // A consistent copy of this state, in WAL mode like the server's.
    let old = env.path("old.db");
    let c = rusqlite::Connection::open(&db).unwrap();
    c.busy_timeout(Duration::from_secs(10)).unwrap();
    c.execute("VACUUM INTO ?1", [old.to_str().unwrap()]).unwrap();
    drop(c);
    rusqlite::Connection::open(&old).unwrap().execute_batch("PRAGMA journal_mode=WAL").unwrap();
    let writer = env.start_writer(&db, 200, false);
    std::thread::sleep(Duration::from_millis(1500));
    writer.stop();
    std::thread::sleep(Duration::from_millis(600));
    // In place: cp keeps the inode. As anyone restoring by hand must, the old -wal and -shm go
    // (replicate's read marks may have kept the server from removing them when it closed).
    let status = std::process::Command::new("cp").arg(&old).arg(&db).status().unwrap();
    assert!(status.success());
    for side in ["keyfount.db-wal", "keyfount.db-shm"] {
        let _ = std::fs::remove_file(data.join(side));
    }
    std::thread::sleep(Duration::from_millis(2000));
    let writer = env.start_writer(&db, 200, false);
    std::thread::sleep(Duration::from_millis(2500));
    writer.stop();
    std::thread::sleep(Duration::from_millis(1200));
    let (_, report) = stop_replicate(rep);
    let reasons: Vec<&str> =
        report["new_bases"].as_array().unwrap().iter().map(|b| b["reason"].as_str().unwrap()).collect();
    assert_eq!(reasons.len(), 2, "two new bases expected (the restore, the cp): {report}");
    assert!(reasons[0].contains("restored by kfadmin") && reasons[0].contains("replaced"), "{reasons:?}");
    // Seen whole (content not the chain's), or while cp was writing it (no WAL-mode header yet).
    assert!(
        reasons[1].contains("does not hold the chain's last state") || reasons[1].contains("left WAL mode"),
        "{reasons:?}"
    );
    let dirs = chains(&repo);
    assert_eq!(dirs.len(), 3, "{dirs:?}");
    let gaps = assert_chains_verify(&env, &repo, 3);
    let live = audit(&db);
    let mut n = 0;
    for (from, to, hist) in [
        (base_ms(&dirs[0]) + 1000, end1, &history1),
        (base_ms(&dirs[1]) + 1000, end2, &history2),
        (base_ms(&dirs[2]) + 1000, now_ms(), &live),
    ] {
        for at in times_outside(from, to, 3, &gaps) {
            assert_point(&env, &repo, hist, at, n);
            n += 1;
        }
    }
}

/// (segments, bytes) a `restore --at` read, as its log says.
fn segments_read(run: &Run) -> (u64, u64) {
    let line =
        run.stderr.lines().find(|l| l.contains("segment(s),")).unwrap_or_else(|| panic!("{}", run.stderr));
    let words: Vec<&str> = line.split_whitespace().collect();
    let at = words.iter().position(|w| *w == "segment(s),").unwrap();
    (words[at - 1].parse().unwrap(), words[at + 1].parse().unwrap())
}

fn prune(env: &Env, repo: &Path, fault: &str, within: &str, minutely: &str) -> Run {
    kfadmin_fault(
        &env.path("state"),
        fault,
        &[
            "prune",
            "-r",
            repo.to_str().unwrap(),
            "--keep-last",
            "100",
            "--keep-commits-within",
            within,
            "--keep-minutely-within",
            minutely,
            "--json",
        ],
    )
}

fn segment_files(chain: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for d in std::fs::read_dir(chain.join("seg")).unwrap() {
        for f in std::fs::read_dir(d.unwrap().path()).unwrap() {
            out.push(f.unwrap().path());
        }
    }
    out.sort();
    out
}

/// A chain of a writer at 200 commits/s for 5 s; the writer stopped, replicate stopped.
/// Returns (repo, live rows, base ms, end ms).
fn a_chain(env: &Env) -> (PathBuf, Vec<(i64, i64)>, i64, i64) {
    let db = env.data_dir("data", 2).join("keyfount.db");
    let repo = env.path("repo");
    let writer = env.start_writer(&db, 200, false);
    let rep = replicate(env, &db, &repo);
    std::thread::sleep(Duration::from_millis(5000));
    writer.stop();
    std::thread::sleep(Duration::from_millis(1200));
    stop_replicate(rep).0.ok();
    let base = base_ms(&chains(&repo)[0]);
    (repo, audit(&db), base, now_ms())
}

/// Compaction by `prune`: commits younger than the window stay commit by commit and restore
/// exactly as before; older ones are merged into a point per minute, each restoring exactly
/// the state of its last commit (`verify` checks every kept point's checksum); merged into
/// hours, `restore --at now` reads far fewer segments and bytes than before, with the same
/// result.
#[test]
fn compaction_keeps_every_kept_point_exact_and_a_restore_reads_far_less() {
    let env = Env::new();
    let (repo, live, base, end) = a_chain(&env);
    let ts = times_outside(base + 1000, end, 8, &[]);
    let before: Vec<Vec<(i64, i64)>> = ts
        .iter()
        .enumerate()
        .map(|(n, at)| {
            let (run, db) = restore_at(&env, &repo, &rfc3339_ms(*at), n);
            run.ok();
            audit(&db)
        })
        .collect();
    let (run, db) = restore_at(&env, &repo, "now", 100);
    run.ok();
    assert_eq!(audit(&db), live);
    let (segs0, bytes0) = segments_read(&run);
    // Every commit after the middle of the chain kept; one point per minute before it.
    let mid = (base + end) / 2;
    let window = format!("{}ms", now_ms() - mid);
    let run = prune(&env, &repo, "", &window, "1d");
    run.ok();
    let report = run.json();
    let c = &report["chains"][0];
    assert!(c["skipped"].is_null(), "{report}");
    assert!(c["points_after"].as_u64() < c["points_before"].as_u64(), "nothing merged: {report}");
    assert_chains_verify(&env, &repo, 1);
    for (n, at) in ts.iter().enumerate() {
        let (run, db) = restore_at(&env, &repo, &rfc3339_ms(*at), 200 + n);
        run.ok();
        let got = audit(&db);
        if *at > mid + 500 {
            assert_eq!(got, before[n], "point {n} (kept commit by commit) changed");
        } else {
            // The last kept point at or before T: a state the chain held, never a later one.
            assert!(got.len() <= before[n].len() && got[..] == before[n][..got.len()], "point {n}");
            check_db(&db, 0);
        }
    }
    // Everything merged by the hour: the same last state from far fewer segments and bytes.
    prune(&env, &repo, "", "0s", "0s").ok();
    assert_chains_verify(&env, &repo, 1);
    let (run, db) = restore_at(&env, &repo, "now", 300);
    run.ok();
    assert_eq!(audit(&db), live);
    let (segs1, bytes1) = segments_read(&run);
    assert!(segs1 <= 2 && segs1 * 4 < segs0, "{segs1} segments read after compaction, {segs0} before");
    assert!(bytes1 * 2 < bytes0, "{bytes1} bytes read after compaction, {bytes0} before");
}

/// kill -9 at every step of compaction (before the merged segment is written, right after it
/// replaced the run's first segment, while the others are removed): each time the chain
/// verifies and restores the last state exactly; the next prune finishes the work.
#[test]
fn a_kill_at_every_step_of_compaction_leaves_a_valid_chain() {
    let env = Env::new();
    let (pristine, live, _, _) = a_chain(&env);
    for (k, point) in ["compact.merge", "compact.replaced", "compact.removing"].iter().enumerate() {
        let repo = env.path(&format!("repo-{k}"));
        let cp = std::process::Command::new("cp").arg("-a").arg(&pristine).arg(&repo).status().unwrap();
        assert!(cp.success());
        let run = prune(&env, &repo, &format!("{point}:kill"), "0s", "0s");
        assert_eq!(run.code, -1, "prune was not killed at {point}: {}", run.stderr);
        assert_chains_verify(&env, &repo, 1);
        let (run, db) = restore_at(&env, &repo, "now", 10 * k);
        run.ok();
        assert_eq!(audit(&db), live, "after a kill at {point}");
        let run = prune(&env, &repo, "", "0s", "0s");
        run.ok();
        assert!(segment_files(&chains(&repo)[0]).len() <= 2, "the next prune did not finish: {}", run.stdout);
        assert!(segment_files(&chains(&repo)[0]).iter().all(|p| p.extension().unwrap() == "kfseg"));
        assert_chains_verify(&env, &repo, 1);
        let (run, db) = restore_at(&env, &repo, "now", 10 * k + 1);
        run.ok();
        assert_eq!(audit(&db), live, "after the prune that followed a kill at {point}");
    }
}

/// A `restore --at` reading the chain: compaction leaves it alone (says so) and removes
/// nothing; the restore finishes exactly.
#[test]
fn compaction_never_removes_a_segment_a_running_restore_reads() {
    let env = Env::new();
    let (repo, live, _, _) = a_chain(&env);
    let files = segment_files(&chains(&repo)[0]);
    let out = env.path("restored-paused");
    let mut restore = Paused::spawn(
        &env,
        "rebuild.leased",
        &[
            "restore",
            "--at",
            "now",
            "-r",
            repo.to_str().unwrap(),
            "--data-dir",
            out.to_str().unwrap(),
            "--yes",
        ],
    );
    restore.expect("rebuild.leased");
    let run = prune(&env, &repo, "", "0s", "0s");
    run.ok();
    let report = run.json();
    assert!(report["chains"][0]["skipped"].as_str().unwrap().contains("reading"), "{report}");
    assert_eq!(segment_files(&chains(&repo)[0]), files, "a segment changed under a restore");
    restore.go("rebuild.leased");
    restore.finish().ok();
    assert_eq!(audit(&out.join("keyfount.db")), live);
}

/// Compaction in the background of `replicate` (every second here, everything merged by the
/// hour) while the writer commits at 200/s: the chain stays a few segments long, verifies, and
/// the last state restores exactly, every other point is a state the chain held.
#[test]
fn replicate_compacts_in_the_background_while_it_ships() {
    let env = Env::new();
    let db = env.data_dir("data", 2).join("keyfount.db");
    let repo = env.path("repo");
    let writer = env.start_writer(&db, 200, false);
    let rep = replicate_with(
        &env,
        &db,
        &repo,
        &["--compact-every", "1s", "--keep-commits-within", "0s", "--keep-minutely-within", "0s"],
    );
    std::thread::sleep(Duration::from_millis(6000));
    writer.stop();
    std::thread::sleep(Duration::from_millis(2500));
    let (run, report) = stop_replicate(rep);
    assert!(run.stderr.contains("compacted chain"), "no compaction said: {}", run.stderr);
    let live = audit(&db);
    let chain = &chains(&repo)[0];
    let files = segment_files(chain).len() as u64;
    let written = report["segments_written"].as_u64().unwrap();
    assert!(files * 3 < written, "{files} segment files left of {written} written");
    assert_chains_verify(&env, &repo, 1);
    let (run, restored) = restore_at(&env, &repo, "now", 1);
    run.ok();
    assert_eq!(audit(&restored), live);
    for (n, at) in times_outside(base_ms(chain) + 1000, now_ms(), 4, &[]).into_iter().enumerate() {
        let (run, db) = restore_at(&env, &repo, &rfc3339_ms(at), 10 + n);
        run.ok();
        check_db(&db, 0);
        let got = audit(&db);
        assert!(got.len() <= live.len() && got[..] == live[..got.len()], "point {n}");
    }
}

/// Retention of whole chains: three chains (two VACUUMs), a window starting between the second
/// and third bases. The first chain goes (dry run first: said, nothing removed; a restore
/// reading it: kept for the next run); the second, which the window's oldest points need, and
/// the newest stay; every point of the window still restores exactly, and a point older than
/// it is refused, not rebuilt from what is left.
#[test]
fn prune_removes_whole_chains_only_no_kept_point_needs() {
    let env = Env::new();
    let db = env.data_dir("data", 2).join("keyfount.db");
    let repo = env.path("repo");
    let writer = env.start_writer(&db, 200, false);
    let rep = replicate(&env, &db, &repo);
    for _ in 0..2 {
        std::thread::sleep(Duration::from_millis(2000));
        let c = rusqlite::Connection::open(&db).unwrap();
        c.busy_timeout(Duration::from_secs(10)).unwrap();
        c.execute_batch("VACUUM").unwrap();
    }
    std::thread::sleep(Duration::from_millis(2500));
    writer.stop();
    std::thread::sleep(Duration::from_millis(1200));
    stop_replicate(rep).0.ok();
    let live = audit(&db);
    let dirs = chains(&repo);
    assert_eq!(dirs.len(), 3, "{dirs:?}");
    let (t0, t1, t2) = (base_ms(&dirs[0]), base_ms(&dirs[1]), base_ms(&dirs[2]));
    let start = t1 + (t2 - t1) / 2;
    let keep = |run: &str| -> Run {
        let within = format!("{}ms", now_ms() - start);
        let mut args =
            vec!["prune", "-r", repo.to_str().unwrap(), "--keep-last", "100", "--keep-points-within"];
        args.push(&within);
        args.extend(["--keep-commits-within", "1h", "--json"]);
        if run == "dry" {
            args.push("--dry-run");
        }
        kfadmin_fault(&env.path("state"), "", &args)
    };
    let actions = |v: &Value| -> Vec<(String, bool)> {
        v["chain_retention"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| (c["action"].as_str().unwrap().to_string(), c["removed"].as_bool().unwrap()))
            .collect()
    };
    let dry = keep("dry");
    dry.ok();
    let v = dry.json();
    let want_dry = [("remove", false), ("keep", false), ("keep", false)].map(|(a, r)| (a.to_string(), r));
    assert_eq!(actions(&v), want_dry, "{v}");
    assert_eq!(chains(&repo).len(), 3, "a dry run removed a chain");
    // A restore reading the first chain: it stays until the restore is done.
    let out = env.path("restored-reading");
    let at0 = rfc3339_ms(t0 + (t1 - t0) / 2);
    let mut reading = Paused::spawn(
        &env,
        "rebuild.leased",
        &[
            "restore",
            "--at",
            &at0,
            "-r",
            repo.to_str().unwrap(),
            "--data-dir",
            out.to_str().unwrap(),
            "--yes",
        ],
    );
    reading.expect("rebuild.leased");
    let run = keep("real");
    run.ok();
    let v = run.json();
    assert_eq!(actions(&v)[0], ("keep".to_string(), false), "{v}");
    assert!(v["chain_retention"][0]["reason"].as_str().unwrap().contains("reading"), "{v}");
    reading.go("rebuild.leased");
    reading.finish().ok();
    let run = keep("real");
    run.ok();
    let v = run.json();
    let want = [("remove", true), ("keep", false), ("keep", false)].map(|(a, r)| (a.to_string(), r));
    assert_eq!(actions(&v), want, "{v}");
    assert_eq!(chains(&repo), dirs[1..].to_vec());
    assert!(std::fs::read_dir(repo.join("pitr")).unwrap().all(|e| !e
        .unwrap()
        .file_name()
        .to_string_lossy()
        .starts_with(".removing")));
    assert_chains_verify(&env, &repo, 2);
    for (n, at) in times_outside(start, now_ms(), 4, &[]).into_iter().enumerate() {
        assert_point(&env, &repo, &live, at, n);
    }
    let (run, _) = restore_at(&env, &repo, &at0, 50);
    assert_eq!(run.code, 2, "a point older than every chain left: {}", run.stderr);
    // kill -9 right after a chain was renamed out of sight: no reader sees it, the next prune
    // finishes its removal.
    let all = format!("{}ms", now_ms() - t2 - 200);
    let args =
        ["prune", "-r", repo.to_str().unwrap(), "--keep-last", "100", "--keep-points-within", &all, "--json"];
    let run = kfadmin_fault(&env.path("state"), "retain.renamed:kill", &args);
    assert_eq!(run.code, -1, "prune was not killed after the rename: {}", run.stderr);
    assert_eq!(chains(&repo), dirs[2..].to_vec());
    assert_chains_verify(&env, &repo, 1);
    kfadmin_fault(&env.path("state"), "", &args).ok();
    assert_eq!(std::fs::read_dir(repo.join("pitr")).unwrap().count(), 1, "the removal was not finished");
}

/// A new base on a schedule (every 2 s here, daily by default) while the writer commits at
/// 200/s: each chain ends where the next begins with no gap, every chain verifies, and points
/// spread over all of them restore exactly (every commit by T − 1 s, none after T).
#[test]
fn a_new_base_on_a_schedule_leaves_no_gap_between_chains() {
    let env = Env::new();
    let db = env.data_dir("data", 2).join("keyfount.db");
    let repo = env.path("repo");
    let writer = env.start_writer(&db, 200, false);
    let rep = replicate_with(&env, &db, &repo, &["--new-base-every", "2s"]);
    std::thread::sleep(Duration::from_millis(7000));
    writer.stop();
    std::thread::sleep(Duration::from_millis(1200));
    let (_, report) = stop_replicate(rep);
    let bases = report["new_bases"].as_array().unwrap();
    assert!(bases.len() >= 2, "{report}");
    assert!(bases.iter().all(|b| b["reason"].as_str().unwrap().contains("a new base every")), "{report}");
    let dirs = chains(&repo);
    assert_eq!(dirs.len(), bases.len() + 1);
    let gaps = assert_chains_verify(&env, &repo, dirs.len());
    assert!(gaps.is_empty(), "{gaps:?}");
    let live = audit(&db);
    let first = base_ms(&dirs[0]);
    for (n, at) in times_outside(first + 1000, now_ms(), 10, &[]).into_iter().enumerate() {
        assert_point(&env, &repo, &live, at, n);
    }
}
