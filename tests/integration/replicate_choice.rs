//! Which chain `restore --at` takes when one repository holds chains of several databases:
//! the target's own, or the only database's; several and none of the target is refused
//! (exit 2) naming them, and `--chain NAME` picks one. Never the chain that merely sorts last.

use std::path::Path;
use std::process::Child;
use std::time::Duration;

use crate::util::*;

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

fn restore_at(env: &Env, repo: &Path, dir: &Path, extra: &[&str]) -> Run {
    let mut args =
        vec!["restore", "--at", "now", "-r", repo.to_str().unwrap(), "--data-dir", dir.to_str().unwrap()];
    args.extend_from_slice(extra);
    args.push("--yes");
    kfadmin_fault(&env.path("state"), "", &args)
}

fn chain_name(repo: &Path, source: &Path) -> String {
    for e in std::fs::read_dir(repo.join("pitr")).unwrap() {
        let d = e.unwrap().path();
        let info: serde_json::Value =
            serde_json::from_slice(&std::fs::read(d.join("chain.json")).unwrap()).unwrap();
        if Path::new(info["source"].as_str().unwrap()) == std::fs::canonicalize(source).unwrap() {
            return info["chain"].as_str().unwrap().to_string();
        }
    }
    panic!("no chain of {}", source.display());
}

#[test]
fn restore_at_takes_the_targets_own_chain_and_refuses_to_guess_between_databases() {
    let env = Env::new();
    let a = env.data_dir("a", 1).join("keyfount.db");
    let b = env.data_dir("b", 1).join("keyfount.db");
    let repo = env.path("repo");
    let (wa, wb) = (env.start_writer(&a, 100, false), env.start_writer(&b, 100, false));
    // b's chain begins first; a's (begun later) is the one that sorts last and is newest.
    let rb = replicate(&env, &b, &repo);
    std::thread::sleep(Duration::from_millis(2200));
    let ra = replicate(&env, &a, &repo);
    std::thread::sleep(Duration::from_millis(2500));
    wa.stop();
    wb.stop();
    std::thread::sleep(Duration::from_millis(1200));
    stop(ra).ok();
    stop(rb).ok();
    let (live_a, live_b) = (audit(&a), audit(&b));
    assert_ne!(live_a, live_b);
    let (chain_a, chain_b) = (chain_name(&repo, &a), chain_name(&repo, &b));
    assert_ne!(chain_a, chain_b);

    // Into b's own data directory (its server stopped): b's chain, though a's is newer.
    let r = restore_at(&env, &repo, b.parent().unwrap(), &[]);
    r.ok();
    assert!(r.stderr.contains(&chain_b), "{}", r.stderr);
    assert_eq!(audit(&b), live_b, "restore --at into b's directory must rebuild b's chain");

    // Into a new directory: two databases, none of them the target: refused, naming both.
    let fresh = env.path("fresh");
    let r = restore_at(&env, &repo, &fresh, &[]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    for want in [chain_a.as_str(), chain_b.as_str(), "--chain", "2 databases"] {
        assert!(r.stderr.contains(want), "{want:?} not in: {}", r.stderr);
    }
    assert!(!fresh.join("keyfount.db").exists(), "a refused restore wrote a database");

    // --chain picks one.
    let r = restore_at(&env, &repo, &fresh, &["--chain", &chain_a]);
    r.ok();
    assert_eq!(audit(&fresh.join("keyfount.db")), live_a);
    // A chain that is not there is named.
    let r = restore_at(&env, &repo, &env.path("other"), &["--chain", "keyfount-19991231T000000Z"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("no point-in-time chain \"keyfount-19991231T000000Z\""), "{}", r.stderr);
}
