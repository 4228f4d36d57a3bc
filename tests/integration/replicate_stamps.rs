//! A commit is stamped when the follower reads it. Commits read long after the follower last
//! knew the database (it was stopped while the server wrote on, with nothing checkpointed
//! away) were made at unknown times in between: a point inside that window would miss
//! commits made before it, so it is a gap (refused, exit 2), and every point outside is exact.

use std::path::Path;
use std::process::Child;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::util::*;

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as i64
}

fn rfc3339_ms(ms: i64) -> String {
    humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(ms as u64)).to_string()
}

fn audit(db: &Path) -> Vec<(i64, i64)> {
    let c = rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    let mut s = c.prepare("SELECT seq, at FROM audit_log ORDER BY seq").unwrap();
    s.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).unwrap().collect::<Result<_, _>>().unwrap()
}

fn replicate(env: &Env, db: &Path, repo: &Path) -> Child {
    spawn_kf(env, &[], &["replicate", "--db", db.to_str().unwrap(), "-r", repo.to_str().unwrap()])
}

fn stop(child: Child) -> Run {
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    child.wait_with_output().unwrap().into()
}

fn restore_at(env: &Env, repo: &Path, at_ms: i64, n: usize) -> (Run, std::path::PathBuf) {
    let dir = env.path(&format!("restored-{n}"));
    let r = kfadmin_fault(
        &env.path("state"),
        "",
        &[
            "restore",
            "--at",
            &rfc3339_ms(at_ms),
            "-r",
            repo.to_str().unwrap(),
            "--data-dir",
            dir.to_str().unwrap(),
            "--yes",
        ],
    );
    (r, dir.join("keyfount.db"))
}

#[test]
fn commits_made_while_replicate_was_stopped_are_a_gap_not_an_older_point() {
    let env = Env::new();
    let db = env.data_dir("data", 1).join("keyfount.db");
    let repo = env.path("repo");
    let writer = env.start_writer(&db, 100, false);
    let rep = replicate(&env, &db, &repo);
    std::thread::sleep(Duration::from_millis(2500));
    // A reader holds the WAL where it is, so nothing is checkpointed away while replicate is
    // stopped: the frames are all there when it starts again (no repair, no lost frames).
    let pin = rusqlite::Connection::open(&db).unwrap();
    pin.execute_batch("BEGIN; SELECT count(*) FROM audit_log;").unwrap();
    let first = stop(rep);
    first.ok();
    let stopped = now_ms();
    std::thread::sleep(Duration::from_millis(3000));
    let restarted = now_ms();
    let rep = replicate(&env, &db, &repo);
    std::thread::sleep(Duration::from_millis(2500));
    drop(pin);
    writer.stop();
    std::thread::sleep(Duration::from_millis(1200));
    let second = stop(rep);
    second.ok();
    assert!(second.stderr.contains("gap in chain"), "{}", second.stderr);
    let live = audit(&db);
    let during: Vec<_> = live.iter().filter(|r| r.1 > stopped + 100 && r.1 < restarted - 100).collect();
    assert!(during.len() > 100, "the writer wrote while replicate was stopped: {}", during.len());

    // Inside the window: refused, naming the gap; nothing restored.
    let (r, out) = restore_at(&env, &repo, restarted - 1000, 1);
    assert_eq!(r.code, 2, "a point while replicate was stopped: {}\n{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("falls inside a gap"), "{}", r.stderr);
    assert!(!out.exists());
    // Before the stop and after the restart: exact (every row by T - 1 s, none after T).
    for (n, at) in [(2, stopped - 1200), (3, restarted + 2000)] {
        let (r, out) = restore_at(&env, &repo, at, n);
        r.ok();
        let got = audit(&out);
        assert_eq!(got[..], live[..got.len()], "not a prefix of the live history");
        let last = got.last().map(|r| r.0).unwrap_or(0);
        let must = live.iter().filter(|r| r.1 <= at - 1000).map(|r| r.0).max().unwrap_or(0);
        let may = live.iter().filter(|r| r.1 <= at).map(|r| r.0).max().unwrap_or(0);
        assert!(
            last >= must && last <= may,
            "point {}: last seq {last}, expected {must}..={may}",
            rfc3339_ms(at)
        );
    }
}
