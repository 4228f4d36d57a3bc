//! Recovery after a killed restore: it runs only under the data directory's lock, judges a
//! journal dead by that lock (never by a program name or a pid), checks what is really there at
//! every undo step, and can itself be killed at any point.

use std::path::PathBuf;

use crate::dock::journals;
use crate::util::*;

/// A data directory whose server was SIGKILLed (its last commits only in the `-wal`), an
/// archive of an older state of it, and a state directory of its own.
struct Killed {
    env: Env,
    data: PathBuf,
    archive: String,
    repo: String,
    /// The writer's last committed sequence number (in the database and its WAL together).
    live_seq: i64,
    /// The sequence number in the archive.
    backed_up: i64,
    before: std::collections::BTreeMap<String, String>,
}

impl Killed {
    fn new() -> Killed {
        let env = Env::new();
        let data = env.data_dir("data", 2);
        let db = data.join("keyfount.db");
        let report = backup(&db, &env.path("b"));
        let backed_up = report["database"]["tables"]["audit_log"].as_i64().unwrap();
        let w = env.start_writer(&db, 0, false);
        w.wait_for(|s| s["last_seq"].as_i64().unwrap() >= backed_up + 150);
        w.kill();
        assert!(std::fs::metadata(data.join("keyfount.db-wal")).unwrap().len() > 0);
        let live_seq = check_db(&db, 0)["last_seq"].as_i64().unwrap();
        let before = snapshot_tree(&data);
        let archive = report["archive"].as_str().unwrap().to_string();
        let repo = env.path("b").to_str().unwrap().to_string();
        Killed { env, data, archive, repo, live_seq, backed_up, before }
    }

    fn run(&self, fault: &str, args: &[&str]) -> Run {
        kfadmin_fault(&self.env.path("state"), fault, args)
    }

    fn restore_args(&self) -> Vec<&str> {
        vec!["restore", &self.archive, "--data-dir", self.data.to_str().unwrap(), "--yes"]
    }

    /// A restore killed (SIGKILL) right after it placed the restored database.
    fn kill_restore(&self) {
        let r = self.run("swap.placed-one:kill", &self.restore_args());
        assert_eq!(r.code, -1, "killed: {}", r.stderr);
        assert_eq!(journals(&self.env.path("state")).len(), 1);
    }

    fn list(&self) -> Vec<&str> {
        vec!["list", "-r", &self.repo]
    }

    /// The data directory is exactly as before the restore, and every commit is there.
    fn assert_put_back(&self) {
        let now: std::collections::BTreeMap<String, String> =
            snapshot_tree(&self.data).into_iter().filter(|(k, _)| !k.starts_with(".kfadmin-")).collect();
        assert_eq!(now, self.before, "not put back as it was");
        let db = self.data.join("keyfount.db");
        assert_eq!(check_db(&db, self.live_seq)["last_seq"].as_i64().unwrap(), self.live_seq);
        assert!(journals(&self.env.path("state")).is_empty(), "journal left");
    }
}

/// Two runs start together after a killed restore: one recovers (held at a pause point while
/// it has the journal in hand), the other must not undo the same swap beside it. Neither may
/// move the old database's `-wal` (150 committed transactions) away.
#[test]
fn two_recoveries_at_once_lose_no_committed_transaction() {
    let k = Killed::new();
    k.kill_restore();
    let mut first = Paused::spawn(&k.env, "recover-rebuilt", &k.list());
    first.expect("recover-rebuilt");
    k.run("", &k.list()).ok();
    first.go("recover-rebuilt");
    first.finish().ok().stderr_has("was put back as it was");
    k.assert_put_back();
    // The restored files are kept for a post-mortem, the old ones are back: nothing else is left.
    let left: Vec<String> = ls(&k.data).into_iter().filter(|n| n.starts_with(".kfadmin-")).collect();
    assert_eq!(left.len(), 1, "{left:?}");
    assert_eq!(ls(&k.data.join(&left[0])), ["failed-restore"]);
}

/// A restore run by a kfadmin of another name (a versioned install, an upgrade's
/// `kfadmin.new`) is alive while it holds its lock: a `list` beside it leaves its swap alone.
#[test]
fn a_running_restore_of_another_program_name_is_not_rolled_back_under_it() {
    let k = Killed::new();
    let bin = k.env.path("bin/kfadmin-0.1.0");
    std::fs::create_dir_all(bin.parent().unwrap()).unwrap();
    std::fs::copy(kfadmin_bin(), &bin).unwrap();
    let mut restore = Paused::spawn_bin(&k.env, &bin, "swap-kept", &k.restore_args());
    restore.expect("swap-kept");
    let r = k.run("", &k.list());
    r.ok();
    assert!(!r.stderr.contains("killed half-way"), "a live restore was taken for dead: {}", r.stderr);
    restore.go("swap-kept");
    restore.finish().ok();
    let db = k.data.join("keyfount.db");
    assert!(!k.data.join("keyfount.db-wal").exists(), "the old WAL beside the restored database");
    assert_eq!(check_db(&db, 0)["last_seq"].as_i64().unwrap(), k.backed_up);
    assert!(journals(&k.env.path("state")).is_empty());
}

/// A recovering run killed between its two steps of putting a replaced file back (the restored
/// one linked into `failed-restore/`, the old one not yet renamed back): the next run finishes
/// the job instead of failing on "File exists".
#[test]
fn a_recovery_killed_half_way_is_finished_by_the_next_run() {
    let k = Killed::new();
    k.kill_restore();
    let r = k.run("rollback.linked:kill", &k.list());
    assert_eq!(r.code, -1, "the recovery was killed: {}", r.stderr);
    k.run("", &k.list()).ok().stderr_has("was put back as it was");
    k.assert_put_back();
    // Once more: nothing left to do, nothing said.
    let r = k.run("", &k.list());
    r.ok();
    assert!(!r.stderr.contains("killed half-way"), "{}", r.stderr);
}

/// A sweep of a dead run's staging directory (the decrypted, verified copy of a restore) killed
/// half-way: the next run still tells the directory for a dead run's and removes it.
#[test]
fn a_sweep_killed_half_way_is_finished_by_the_next_run() {
    let k = Killed::new();
    let r = k.run("restore.verified:kill", &k.restore_args());
    assert_eq!(r.code, -1, "killed: {}", r.stderr);
    let staging = k.env.path("state/staging");
    let left = ls(&staging);
    assert_eq!(left.len(), 1, "the killed run's staging: {left:?}");
    assert!(ls(&staging.join(&left[0])).len() >= 2, "a lock and the staged files");
    let r = k.run("sweep.removed-one:kill", &k.list());
    assert_eq!(r.code, -1, "the sweep was killed: {}", r.stderr);
    k.run("", &k.list()).ok();
    assert!(ls(&staging).is_empty(), "left: {:?}", ls(&staging));
}

/// Every undo (a failure in the swap, put back at once; or a kill, put back by the next run)
/// leaves no empty `failed-restore/`: restored files a rollback took back are kept there for a
/// post-mortem, and a safety directory left with nothing in it goes.
#[test]
fn an_undo_leaves_no_empty_failed_restore_directory() {
    let k = Killed::new();
    for (fault, killed) in [
        ("swap.kept:fail", false),
        ("swap.placed-one:fail", false),
        ("restore.swapped:fail", false),
        ("swap.kept:kill", true),
        ("swap.placed-one:kill", true),
    ] {
        let r = k.run(fault, &k.restore_args());
        if killed {
            assert_eq!(r.code, -1, "{fault}: killed: {}", r.stderr);
            k.run("", &k.list()).ok().stderr_has("was put back as it was");
        } else {
            r.code(1).stderr_has("put back as it was");
        }
        k.assert_put_back();
        for d in ls(&k.data).into_iter().filter(|n| n.starts_with(".kfadmin-")) {
            let failed = k.data.join(&d).join("failed-restore");
            assert!(!ls(&k.data.join(&d)).is_empty(), "{fault}: an empty {d} is left");
            if failed.exists() {
                assert!(!ls(&failed).is_empty(), "{fault}: an empty {} is left", failed.display());
            }
            std::fs::remove_dir_all(k.data.join(&d)).unwrap();
        }
    }
}
