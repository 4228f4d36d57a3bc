//! Every step of a backup (online and cold), a restore into a container and a prune, stopped by
//! kill -9, SIGTERM, SIGINT, an error or a full disk (`KFADMIN_TEST_FAULT`, debug builds only):
//! the exit code is the documented one, the container runs again (at once, or on the next
//! kfadmin run after a kill -9), the data is as it was or fully restored, and the backup
//! directory holds only complete archives that verify.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::dock::*;
use crate::util::*;

/// The exit code each fault action must give.
fn expected(action: &str) -> i32 {
    match action {
        "kill" => -1,
        "term" | "int" => 130,
        _ => 1,
    }
}

struct Faults {
    state: PathBuf,
    tmp: PathBuf,
}

impl Faults {
    fn new(env: &Env) -> Faults {
        let tmp = env.path("tmp");
        std::fs::create_dir_all(&tmp).unwrap();
        std::fs::set_permissions(&tmp, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
        Faults { state: env.path("state"), tmp }
    }

    fn run(&self, fault: &str, args: &[&str]) -> Run {
        Command::new(kfadmin_bin())
            .args(args)
            .env("KFADMIN_STATE_DIR", &self.state)
            .env("KFADMIN_TMPDIR", &self.tmp)
            .env("KFADMIN_TEST_FAULT", fault)
            // The journals, the second line of defence (the guardian: tests/integration/guardian.rs).
            .env("KFADMIN_TEST_NO_GUARDIAN", "1")
            .env_remove("KFADMIN_BACKUP_DIR")
            .stdin(Stdio::null())
            .output()
            .unwrap()
            .into()
    }

    /// After any run: no staging left once a later run has swept it, no journal.
    fn assert_clean(&self, when: &str) {
        assert!(ls(&self.tmp).is_empty(), "{when}: staging left: {:?}", ls(&self.tmp));
        assert!(journals(&self.state).is_empty(), "{when}: journal left: {:?}", journals(&self.state));
    }
}

/// Every archive in `out` is complete: it has its sidecar and verifies; nothing else is there.
fn assert_out_complete(out: &Path, when: &str) {
    for n in ls(out) {
        if n.ends_with(".sha256") {
            assert!(
                out.join(n.trim_end_matches(".sha256")).exists(),
                "{when}: a sidecar without its archive: {n}"
            );
            continue;
        }
        assert!(
            n.ends_with(".tar.gz") || n.ends_with(".tar.gz.age"),
            "{when}: {n} left in the backup directory"
        );
        assert!(out.join(format!("{n}.sha256")).exists(), "{when}: {n} has no sidecar");
        kfadmin(["verify", "--quick", out.join(&n).to_str().unwrap()]).ok();
    }
}

#[test]
fn an_online_backup_stopped_at_any_step_leaves_nothing_half_done() {
    let env = Env::new();
    let data = env.data_dir("data", 4);
    let db = data.join("keyfount.db");
    let f = Faults::new(&env);
    let out = env.path("out");
    let backup = ["backup", "--online", "--db", db.to_str().unwrap(), "--out", out.to_str().unwrap()];
    for point in ["backup.snapshot", "make.write", "make.written"] {
        for action in ["kill", "term", "int", "fail", "full"] {
            let when = format!("{point}:{action}");
            let r = f.run(&when, &backup);
            assert_eq!(r.code, expected(action), "{when}: {}", r.stderr);
            // The next run clears what this one left, and succeeds.
            f.run("", &backup).ok();
            assert_out_complete(&out, &when);
            f.assert_clean(&when);
        }
    }
}

#[test]
fn a_cold_backup_stopped_at_any_step_leaves_the_container_running() {
    let env = Env::new();
    let c = Kf::start(&env, "coldfault", Spec { rate: 50, ..Spec::default() });
    let f = Faults::new(&env);
    let out = env.path("out");
    let backup =
        ["backup", "--cold", "--container", &c.name, "--out", out.to_str().unwrap(), "--stop-timeout", "5"];
    for point in ["cold.stopped", "cold.copied", "make.write"] {
        for action in ["kill", "term", "fail", "full"] {
            let when = format!("{point}:{action}");
            let started = c.started_at();
            let r = f.run(&when, &backup);
            assert_eq!(r.code, expected(action), "{when}: {}", r.stderr);
            if action == "kill" {
                assert!(journals(&f.state).len() <= 1, "{when}");
                // The next kfadmin run on the container starts it again.
                f.run("", &["status", "--container", &c.name, "--backup-dir", out.to_str().unwrap()]);
            }
            assert!(c.running(), "{when}: the container is not running");
            assert_ne!(c.started_at(), started, "{when}: the container was stopped and started again");
            f.run("", &backup).ok();
            assert_out_complete(&out, &when);
            f.assert_clean(&when);
        }
    }
}

#[test]
fn a_container_restore_stopped_at_any_step_leaves_old_or_restored_data_and_a_running_container() {
    let env = Env::new();
    let c = Kf::start(&env, "restfault", Spec { rate: 20, ..Spec::default() });
    let f = Faults::new(&env);
    let out = env.path("out");
    c.wait_for(|s| s["last_seq"].as_i64().unwrap_or(0) >= 5);
    let r =
        f.run("", &["backup", "--online", "--container", &c.name, "--out", out.to_str().unwrap(), "--json"]);
    let archive = r.ok().json()["archive"].as_str().unwrap().to_string();
    let restore = [
        "restore",
        &archive,
        "--container",
        &c.name,
        "--out",
        out.to_str().unwrap(),
        "--yes",
        "--settle",
        "1",
    ];
    for point in ["restore.stopped", "restore.copied", "swap.kept", "swap.placed-one", "restore.swapped"] {
        for action in ["kill", "term", "fail"] {
            let when = format!("{point}:{action}");
            // The live data is well past the backup.
            let seq = c.status()["last_seq"].as_i64().unwrap();
            c.wait_for(|s| s["last_seq"].as_i64().unwrap_or(0) > seq + 20);
            let before = c.status()["last_seq"].as_i64().unwrap();
            let r = f.run(&when, &restore);
            assert_eq!(r.code, expected(action), "{when}: {}", r.stderr);
            if action == "kill" {
                f.run("", &["status", "--container", &c.name, "--backup-dir", out.to_str().unwrap()]);
            }
            assert!(c.running(), "{when}: the container is not running");
            // The server writes again, on the old data (or, killed after the swap, the restored).
            c.wait_writing_past(0);
            let now = check_db(&c.host_data().join("keyfount.db"), 0)["last_seq"].as_i64().unwrap();
            assert!(now >= before || action == "kill", "{when}: the data went back from {before} to {now}");
            let stale: Vec<String> =
                ls(&c.host_data()).into_iter().filter(|n| n.starts_with(".kfadmin-restore-")).collect();
            assert!(stale.is_empty(), "{when}: {stale:?}");
            assert_out_complete(&out, &when);
            f.assert_clean(&when);
        }
    }
}

#[test]
fn a_prune_killed_between_two_removals_leaves_whole_archives() {
    let env = Env::new();
    let data = env.data_dir("data", 1);
    let f = Faults::new(&env);
    let out = env.path("out");
    let names: Vec<String> = (1..=4).map(|d| format!("keyfount-2026110{d}T030000Z-online.tar.gz")).collect();
    let report = backup(&data.join("keyfount.db"), &out);
    let first = PathBuf::from(report["archive"].as_str().unwrap());
    for n in &names {
        std::fs::copy(&first, out.join(n)).unwrap();
        let sum = std::fs::read_to_string(format!("{}.sha256", first.display())).unwrap();
        let sum = sum.split_whitespace().next().unwrap().to_string();
        std::fs::write(out.join(format!("{n}.sha256")), format!("{sum}  {n}\n")).unwrap();
    }
    let prune = ["prune", out.to_str().unwrap(), "--keep-last", "1"];
    let r = f.run("prune.removed-one:kill", &prune);
    assert_eq!(r.code, -1, "{}", r.stderr);
    // What is left is whole archives (and at most the sidecar of the one being removed).
    let orphans: Vec<String> = ls(&out)
        .into_iter()
        .filter(|n| n.ends_with(".sha256") && !out.join(n.trim_end_matches(".sha256")).exists())
        .collect();
    assert!(orphans.len() <= 1, "{orphans:?}");
    for n in ls(&out).into_iter().filter(|n| n.ends_with(".tar.gz")) {
        kfadmin(["verify", "--quick", out.join(&n).to_str().unwrap()]).ok();
    }
    f.run("", &prune).ok();
    let left: Vec<String> = ls(&out).into_iter().filter(|n| n.ends_with(".tar.gz")).collect();
    assert_eq!(left.len(), 1, "{left:?}");
}
