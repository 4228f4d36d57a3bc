//! Output that cannot be written: stdout and stderr as pipes whose reader has gone
//! (`kfadmin … 2>&1 | tee log` after tee died). kfadmin finishes its work, cleans up, and
//! exits with the documented code, never 101 (a panic).

use std::os::fd::{FromRawFd, OwnedFd};
use std::path::Path;
use std::process::{Command, Stdio};

use crate::util::*;

/// The writing end of a pipe whose reading end is already closed: every write fails (EPIPE).
fn dead_pipe() -> Stdio {
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills both descriptors; the reading end is closed at once and the
    // writing end is owned by the returned Stdio.
    unsafe {
        assert_eq!(libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC), 0);
        libc::close(fds[0]);
        Stdio::from(OwnedFd::from_raw_fd(fds[1]))
    }
}

/// Run kfadmin with stdout and/or stderr dead; the exit code.
fn run_dead(args: &[&str], stdout_dead: bool, stderr_dead: bool) -> i32 {
    let mut cmd = Command::new(kfadmin_bin());
    cmd.args(args).stdin(Stdio::null()).env_remove("KFADMIN_BACKUP_DIR");
    cmd.stdout(if stdout_dead { dead_pipe() } else { Stdio::null() });
    cmd.stderr(if stderr_dead { dead_pipe() } else { Stdio::null() });
    cmd.status().unwrap().code().expect("kfadmin exits, it is not killed by a signal")
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn a_backup_with_dead_stdout_and_stderr_completes_and_exits_0() {
    let env = Env::new();
    let data = env.data_dir("data", 2);
    let db = data.join("keyfount.db");
    for (i, (out_dead, err_dead, json)) in
        [(false, true, false), (true, true, false), (true, true, true), (true, false, true)]
            .into_iter()
            .enumerate()
    {
        let out = env.path(&format!("b{i}"));
        let mut args = vec!["backup", "--online", "--db", s(&db), "--out", s(&out), "-v"];
        if json {
            args.push("--json");
        }
        assert_eq!(run_dead(&args, out_dead, err_dead), 0, "stdout dead {out_dead}, stderr dead {err_dead}");
        let archives: Vec<String> = ls(&out).into_iter().filter(|n| n.ends_with(".tar.gz")).collect();
        assert_eq!(archives.len(), 1, "{:?}", ls(&out));
        kfadmin(["verify", s(&out.join(&archives[0]))]).ok();
        assert!(ls(&out).iter().all(|n| !n.starts_with(".kfadmin-staging")), "{:?}", ls(&out));
    }
}

#[test]
fn a_restore_with_dead_stdout_and_stderr_completes() {
    let env = Env::new();
    let data = env.data_dir("data", 2);
    let report = backup(&data.join("keyfount.db"), &env.path("b"));
    let archive = report["archive"].as_str().unwrap();
    let want = report["files"][0]["sha256"].as_str().unwrap();
    let target = env.data_dir("target", 1);
    assert_eq!(run_dead(&["restore", archive, "--data-dir", s(&target), "--yes", "--force"], true, true), 0);
    use sha2::Digest;
    let got = format!("{:x}", sha2::Sha256::digest(std::fs::read(target.join("keyfount.db")).unwrap()));
    assert_eq!(got, want, "the restored database is the archive's");
    check_db(&target.join("keyfount.db"), 0);
    // The replaced files are kept, and no staging is left behind.
    let names = ls(&target);
    assert!(names.iter().any(|n| n.starts_with(".kfadmin-pre-restore-")), "{names:?}");
    assert!(names.iter().all(|n| !n.starts_with(".kfadmin-restore-")), "{names:?}");
}

#[test]
fn errors_and_refusals_with_a_dead_stderr_keep_their_exit_code() {
    let env = Env::new();
    let missing = env.path("missing.tar.gz");
    assert_eq!(run_dead(&["verify", s(&missing)], false, true), 2);
    assert_eq!(run_dead(&["verify", s(&missing), "--json"], true, true), 2);
    // A refused restore (no --yes, no terminal) changes nothing.
    let data = env.data_dir("data", 1);
    let archive = backup(&data.join("keyfount.db"), &env.path("b"))["archive"].as_str().unwrap().to_string();
    let target = env.data_dir("target", 1);
    let before = snapshot_tree(&target);
    assert_eq!(run_dead(&["restore", &archive, "--data-dir", s(&target)], true, true), 2);
    assert_eq!(snapshot_tree(&target), before);
    // A warning on the way (a rollback-journal database) does not stop a backup either.
    let db = env.path("rollback/keyfount.db");
    std::fs::create_dir_all(db.parent().unwrap()).unwrap();
    let c = rusqlite::Connection::open(&db).unwrap();
    c.execute_batch("PRAGMA journal_mode=DELETE; CREATE TABLE t(x); INSERT INTO t VALUES (1);").unwrap();
    drop(c);
    assert_eq!(run_dead(&["backup", "--online", "--db", s(&db), "--out", s(&env.path("b2"))], true, true), 0);
}
