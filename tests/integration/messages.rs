//! Error messages that point the right way (issue 19, item 4): a non-root run is told to run
//! as root (not that an archive "does not exist", not to join the docker group), a flag of
//! another command is answered with the flag this one takes, a wrong `--db-path` is named as
//! such, every error starts with `error:`, and `status --quiet` prints only the problems.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::dock::{Kf, Spec};
use crate::util::*;

/// Run kfadmin as uid/gid 65534 (nobody), no supplementary groups, with its own state dir.
fn as_nobody(env: &Env, args: &[&str]) -> Run {
    let state = env.path("state-nobody");
    std::fs::create_dir_all(&state).unwrap();
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o777)).unwrap();
    Command::new("setpriv")
        .args(["--reuid", "65534", "--regid", "65534", "--clear-groups", "--"])
        .arg(kfadmin_bin())
        .args(args)
        .env("KFADMIN_STATE_DIR", &state)
        .env("HOME", &state)
        .env_remove("KFADMIN_BACKUP_DIR")
        .stdin(Stdio::null())
        .output()
        .expect("setpriv runs")
        .into()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn a_non_root_verify_of_a_private_repository_says_to_run_as_root() {
    if !is_root() {
        return;
    }
    let env = Env::new();
    let data = env.data_dir("data", 1);
    let repo = env.path("repo");
    let report = backup(&data.join("keyfount.db"), &repo);
    let archive = report["archive"].as_str().unwrap().to_string();
    assert_eq!(std::fs::metadata(&repo).unwrap().permissions().mode() & 0o777, 0o700);
    // The archive exists; this user may not look into its directory.
    let r = as_nobody(&env, &["verify", &archive]);
    assert!(!r.stderr.contains("does not exist"), "{}", r.stderr);
    assert!(r.stderr.starts_with("error: cannot read archive"), "{}", r.stderr);
    assert!(r.stderr.contains("not running as root") && r.stderr.contains("run it as root"), "{}", r.stderr);
    assert!(r.stderr.contains("ermission denied"), "{}", r.stderr);
    assert_eq!(r.code, 1, "{}", r.stderr);
    // An archive that really is not there still says so (exit 2).
    let r = kfadmin(["verify", s(&repo.join("keyfount-20200101T000000Z-online.tar.gz"))]);
    r.code(2).stderr_has("does not exist");
}

#[test]
fn a_non_root_backup_of_a_container_is_told_to_run_as_root_as_the_runbook_says() {
    if !is_root() || !Path::new("/var/run/docker.sock").exists() {
        return;
    }
    let env = Env::new();
    let repo = env.path("repo");
    let r = as_nobody(&env, &["backup", "--online", "--container", "keyfount", "-r", s(&repo)]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.starts_with("error: cannot reach the Docker engine"), "{}", r.stderr);
    assert!(r.stderr.contains("run kfadmin as root"), "{}", r.stderr);
    assert!(!r.stderr.contains("member of the docker group"), "{}", r.stderr);
}

#[test]
fn a_flag_of_another_command_is_answered_with_the_flag_this_one_takes() {
    let r = kfadmin(["backup", "--online", "--data-dir", "/srv/keyfount/data"]);
    r.code(2);
    assert!(r.stderr.starts_with("error: unexpected argument '--data-dir'"), "{}", r.stderr);
    assert!(r.stderr.contains("--db") && r.stderr.contains("--container"), "{}", r.stderr);
    assert!(!r.stderr.contains("--tmp-dir"), "{}", r.stderr);
    // The same with --json: one object, the same hint.
    let r = kfadmin(["backup", "--online", "--data-dir", "/srv/keyfount/data", "--json"]);
    r.code(2);
    let j = r.json();
    assert!(j["error"]["hint"].as_str().unwrap().contains("--db"), "{j}");
    let r = kfadmin(["restore", "latest", "--db", "/srv/keyfount/data/keyfount.db"]);
    r.code(2);
    assert!(r.stderr.contains("--data-dir") && !r.stderr.contains("--db-path"), "{}", r.stderr);
    // Other unknown flags keep clap's own message.
    kfadmin(["backup", "--online", "--no-such-flag"]).code(2).stderr_has("error: unexpected argument");
}

#[test]
fn a_wrong_db_path_is_named_as_db_path() {
    if !is_root() || !Path::new("/var/run/docker.sock").exists() {
        return;
    }
    let env = Env::new();
    let c = Kf::start(&env, "dbpath", Spec::default());
    let repo = env.path("repo");
    let state = env.path("state");
    for mode in ["--online", "--cold"] {
        let r = kfadmin_fault(
            &state,
            "",
            &["backup", mode, "--container", &c.name, "--db-path", "/data/nothere.db", "-r", s(&repo)],
        );
        r.code(2);
        assert!(r.stderr.starts_with("error: container"), "{}", r.stderr);
        assert!(r.stderr.contains("/data/nothere.db") && r.stderr.contains("--db-path"), "{}", r.stderr);
        assert!(!r.stderr.contains("given with --db ") && !r.stderr.contains("--db)"), "{}", r.stderr);
        assert!(c.running(), "nothing was stopped");
    }
    let r = kfadmin_fault(&state, "", &["status", "--container", &c.name, "--db-path", "/data/nothere.db"]);
    r.code(2).stderr_has("--db-path");
}

/// Every error a command reports starts its line with `error:` (warnings with `warning:`).
#[test]
fn errors_begin_with_error() {
    let env = Env::new();
    let missing = env.path("nothing/keyfount.db");
    let repo = env.path("repo");
    let target = env.path("d");
    let cases: Vec<Vec<&str>> = vec![
        vec!["backup", "--online", "--db", s(&missing), "-r", s(&repo)],
        vec!["verify", s(&missing)],
        vec!["list", "-r", s(&repo)],
        vec!["prune", "-r", s(&repo), "--keep-last", "1"],
        vec!["status", "--db", s(&missing), "-r", s(&repo)],
        vec!["restore", "latest", "--data-dir", s(&target), "-r", s(&repo), "--yes"],
        vec!["import", s(&missing), "-r", s(&repo)],
        vec!["backup", "--bogus"],
        vec!["nosuchcommand"],
    ];
    for args in cases {
        let r = kfadmin_fault(&env.path("state"), "", &args);
        assert_ne!(r.code, 0, "{args:?}");
        let first = r.stderr.lines().find(|l| !l.starts_with("warning:")).unwrap_or("");
        assert!(first.starts_with("error: "), "{args:?}: {}", r.stderr);
    }
}

/// A command that runs to its end with a failing verdict says so on stderr too, after its
/// report: a damaged archive (exit 3) is an `error:` line, not only a table on stdout.
#[test]
fn a_failing_verdict_is_an_error_line_too() {
    let env = Env::new();
    let data = env.data_dir("data", 1);
    let repo = env.path("repo");
    let archive = backup(&data.join("keyfount.db"), &repo)["archive"].as_str().unwrap().to_string();
    let mut bytes = std::fs::read(&archive).unwrap();
    let at = bytes.len() / 2;
    bytes[at..at + 4].copy_from_slice(b"XXXX");
    std::fs::write(&archive, bytes).unwrap();
    let r = kfadmin(["verify", &archive]);
    r.code(3).stdout_has("FAIL");
    assert_eq!(
        r.stderr.trim_end(),
        format!("error: {archive} failed verification"),
        "the verdict's error line: {}",
        r.stderr
    );
    // With --json, stdout is the one object; the line is on stderr all the same.
    let r = kfadmin(["verify", &archive, "--json"]);
    r.code(3);
    assert_eq!(r.json()["ok"], false);
    assert!(r.stderr.starts_with("error: "), "{}", r.stderr);
    // `list --check` finds the same archive against its sidecar.
    let r = kfadmin(["list", "-r", s(&repo), "--check"]);
    r.code(3);
    assert_eq!(
        r.stderr.lines().last().unwrap_or(""),
        format!("error: {archive} does not match its .sha256 sidecar"),
        "{}",
        r.stderr
    );
}

#[test]
fn status_quiet_prints_only_the_problems() {
    let env = Env::new();
    let data = env.data_dir("data", 1);
    let db = data.join("keyfount.db");
    let repo = env.path("repo");
    std::fs::create_dir_all(&repo).unwrap();
    std::fs::set_permissions(&repo, std::fs::Permissions::from_mode(0o700)).unwrap();
    let state = env.path("state");
    // No backup yet: a problem, and only the problem.
    let r = kfadmin_fault(&state, "", &["status", "--db", s(&db), "-r", s(&repo), "--quiet"]);
    r.code(1);
    assert!(!r.stdout.is_empty(), "the problem is printed");
    assert_eq!(r.stderr, "", "the problems are the report: no error line besides");
    assert!(r.stdout.lines().all(|l| l.starts_with("PROBLEM: ")), "{}", r.stdout);
    // Without --quiet the whole status.
    let r = kfadmin_fault(&state, "", &["status", "--db", s(&db), "-r", s(&repo)]);
    r.code(1).stdout_has("database").stdout_has("PROBLEM: ");
    // All well: nothing at all.
    backup(&db, &repo);
    let r = kfadmin_fault(&state, "", &["status", "--db", s(&db), "-r", s(&repo), "--quiet"]);
    r.code(0);
    assert_eq!(r.stdout, "", "nothing when all is well");
}
