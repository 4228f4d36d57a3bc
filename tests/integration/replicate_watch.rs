//! Watching point-in-time replication (issue 18): `status --max-lag`, the metrics file, the
//! progress line and the systemd unit, against a real writer process and a real `replicate`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;

use crate::terminal::{sh_quote, Tmux};
use crate::util::*;

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn replicate(env: &Env, db: &Path, repo: &Path, extra: &[&str]) -> Child {
    let mut args = vec!["replicate", "--db", s(db), "-r", s(repo)];
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

fn status(env: &Env, db: &Path, repo: &Path, max_lag: &str, extra: &[&str]) -> Run {
    let mut args = vec!["status", "--db", s(db), "-r", s(repo), "--max-lag", max_lag, "--json"];
    args.extend_from_slice(extra);
    kfadmin_fault(&env.path("state"), "", &args)
}

/// The chain directories in the repository.
fn chains(repo: &Path) -> Vec<PathBuf> {
    let root = repo.join("pitr");
    let mut v: Vec<PathBuf> = ls(&root).into_iter().map(|n| root.join(n)).filter(|p| p.is_dir()).collect();
    v.sort();
    v
}

fn follower(repo: &Path) -> Option<Value> {
    let dir = chains(repo).pop()?;
    serde_json::from_slice(&std::fs::read(dir.join("follower.json")).ok()?).ok()
}

/// Wait (at most a minute) until the follower reports something `f` accepts.
fn wait_follower(repo: &Path, f: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(v) = follower(repo).filter(&f) {
            return v;
        }
        assert!(Instant::now() < deadline, "the follower never reported as expected: {:?}", follower(repo));
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn followed(j: &Value) -> &Value {
    let chains = j["replication"]["chains"].as_array().unwrap();
    chains.iter().find(|c| c["followed"] == true).unwrap_or_else(|| panic!("no followed chain: {j}"))
}

fn problems(j: &Value) -> String {
    j["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap().to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

/// The value of a metric line `name{...} value`.
fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

fn now_s() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs_f64()
}

/// A follower that runs is current (`status --max-lag` exit 0, lag and last commit reported,
/// the metrics file written while it runs); killed with SIGKILL, it does not look current for
/// long: once its last report is older than --max-lag, status exits 1 naming it, and the lag
/// counts from its last report, not "fine at the time".
#[test]
fn status_max_lag_sees_a_running_follower_and_a_killed_one() {
    let env = Env::new();
    let db = env.data_dir("data", 1).join("keyfount.db");
    let repo = env.path("repo");
    let prom = env.path("replicate.prom");
    let status_prom = env.path("status.prom");
    backup(&db, &repo);
    let writer = env.start_writer(&db, 100, false);
    let rep = replicate(&env, &db, &repo, &["--metrics-file", s(&prom)]);
    wait_follower(&repo, |f| {
        f["txn"].as_u64().unwrap_or(0) > 20 && f["commits_shipped"].as_u64().unwrap_or(0) > 0
    });

    // Running: current, whatever the machine's load (a generous limit).
    let r = status(&env, &db, &repo, "60s", &["--metrics-file", s(&status_prom)]);
    r.ok();
    let j = r.json();
    assert_eq!(j["ok"], true, "{j}");
    let c = followed(&j);
    assert_eq!(c["ok"], true, "{c}");
    assert!(c["commits"].as_u64().unwrap() > 0, "{c}");
    assert!(!c["last_commit"].is_null() && !c["current_until"].is_null(), "{c}");
    assert!(c["lag_bytes"].is_u64(), "{c}");
    let lag = c["lag_seconds"].as_f64().unwrap();
    assert!((0.0..60.0).contains(&lag), "{c}");
    let f = &c["follower"];
    assert_eq!(f["reporting"], true, "{c}");
    assert_eq!(f["stopped"], false, "{c}");
    assert_eq!(f["pid"].as_u64().unwrap(), rep.id() as u64, "{c}");
    // The follower's counts are checked against the chain: it cannot claim more than is there.
    assert!(f["transactions"].as_u64().unwrap() <= c["commits"].as_u64().unwrap(), "{c}");
    let text = std::fs::read_to_string(&status_prom).unwrap();
    assert_eq!(metric(&text, "kfadmin_replication_up"), Some(1.0), "{text}");
    assert_eq!(metric(&text, "kfadmin_replication_chain_broken"), Some(0.0), "{text}");
    assert!(metric(&text, "kfadmin_replication_transactions").unwrap() > 0.0, "{text}");

    // replicate's own metrics file, written while it runs.
    let deadline = Instant::now() + Duration::from_secs(60);
    let text = loop {
        let t = std::fs::read_to_string(&prom).unwrap_or_default();
        if metric(&t, "kfadmin_replication_shipped_commits").unwrap_or(0.0) > 0.0 {
            break t;
        }
        assert!(
            Instant::now() < deadline,
            "replicate never wrote shipped commits into {}: {t}",
            prom.display()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(metric(&text, "kfadmin_replication_up"), Some(1.0), "{text}");
    assert!(text.contains("kfadmin_replication_lag_seconds{name=\"keyfount\"}"), "{text}");
    for m in [
        "kfadmin_replication_lag_bytes",
        "kfadmin_replication_current_timestamp_seconds",
        "kfadmin_replication_heartbeat_timestamp_seconds",
        "kfadmin_replication_last_commit_timestamp_seconds",
        "kfadmin_replication_shipped_bytes",
        "kfadmin_replication_gaps",
    ] {
        assert!(metric(&text, m).is_some_and(|v| v.is_finite()), "{m}: {text}");
    }

    // SIGKILL: no last word. The writer goes on committing.
    let killed = Instant::now();
    sigkill(rep);
    let heartbeat = follower(&repo).unwrap()["heartbeat_us"].as_u64().unwrap();
    // Once the last report is more than 3 s old, status must fail, however long that took.
    let deadline = Instant::now() + Duration::from_secs(60);
    let j = loop {
        let before = now_s();
        let r = status(&env, &db, &repo, "3s", &["--metrics-file", s(&status_prom)]);
        let j = r.json();
        if r.code == 1 {
            break j;
        }
        assert_eq!(r.code, 0, "{j}");
        // Exit 0 only while the follower's last report was at most 3 s old.
        let age = before - heartbeat as f64 / 1e6;
        assert!(age <= 3.0, "a follower killed {age:.1} s after its last report still looks current: {j}");
        assert!(Instant::now() < deadline, "status never noticed the killed follower: {j}");
        std::thread::sleep(Duration::from_millis(200));
    };
    let p = problems(&j);
    assert!(p.contains("more than --max-lag") || p.contains("last reported"), "{p}");
    let c = followed(&j);
    assert!(c["lag_seconds"].as_f64().unwrap() >= 3.0, "{c}");
    // And it stays that way: later, both the lag and the silence are named.
    while killed.elapsed() < Duration::from_secs(6) {
        std::thread::sleep(Duration::from_millis(100));
    }
    let r = status(&env, &db, &repo, "3s", &["--metrics-file", s(&status_prom)]);
    r.code(1);
    let j = r.json();
    let p = problems(&j);
    assert!(p.contains("more than --max-lag") && p.contains("last reported"), "{p}");
    assert_eq!(followed(&j)["follower"]["reporting"], false, "{j}");
    let text = std::fs::read_to_string(&status_prom).unwrap();
    assert_eq!(metric(&text, "kfadmin_replication_up"), Some(0.0), "{text}");
    assert!(metric(&text, "kfadmin_replication_lag_seconds").unwrap() >= 3.0, "{text}");
    // What replicate wrote last stays, with its heartbeat: an alert on time() - current holds.
    let text = std::fs::read_to_string(&prom).unwrap();
    assert!(now_s() - metric(&text, "kfadmin_replication_current_timestamp_seconds").unwrap() > 3.0);
    writer.stop();
}

/// The chains of another database, or of this path on another host, never satisfy the check
/// for this one; an empty repository fails it; a clean stop (SIGTERM) is said as such; a
/// follower state dated ahead of the clock is not believed; a broken chain fails it.
#[test]
fn status_max_lag_counts_only_this_databases_own_current_chain() {
    let env = Env::new();
    let db = env.data_dir("a", 1).join("keyfount.db");
    let other = env.data_dir("b", 1).join("keyfount.db");
    let repo = env.path("repo");

    // Empty repository.
    let r = status(&env, &db, &repo, "10s", &[]);
    r.code(1);
    let j = r.json();
    assert!(problems(&j).contains("no point-in-time chain of"), "{j}");
    assert_eq!(j["replication"]["chains"].as_array().unwrap().len(), 0, "{j}");

    // Another database's chain, its follower running, in the same repository. (Both are named
    // keyfount: this backup is the last backup of either, so only replication is judged.)
    backup(&other, &repo);
    let writer = env.start_writer(&other, 100, false);
    let rep = replicate(&env, &other, &repo, &[]);
    wait_follower(&repo, |f| f["txn"].as_u64().unwrap_or(0) > 5);
    status(&env, &other, &repo, "60s", &[]).ok();
    let r = status(&env, &db, &repo, "60s", &[]);
    r.code(1);
    let j = r.json();
    assert!(problems(&j).contains("no point-in-time chain of"), "{j}");
    assert_eq!(j["replication"]["other_chains"], 1, "{j}");

    // A clean stop: the follower says it stopped; status names it.
    sigterm(rep).ok();
    let f = follower(&repo).unwrap();
    assert_eq!(f["stopped"], true, "{f}");
    let r = status(&env, &other, &repo, "60s", &[]);
    r.code(1);
    assert!(problems(&r.json()).contains("replicate stopped following chain"), "{}", r.stdout);

    // A follower state dated an hour ahead (a wrong clock): never current.
    let dir = chains(&repo).pop().unwrap();
    let mut f = f;
    let ahead = (now_s() as u64 + 3600) * 1_000_000;
    f["heartbeat_us"] = ahead.into();
    f["current_us"] = ahead.into();
    f["stopped"] = false.into();
    std::fs::write(dir.join("follower.json"), serde_json::to_vec(&f).unwrap()).unwrap();
    let r = status(&env, &other, &repo, "60s", &[]);
    r.code(1);
    let j = r.json();
    assert!(problems(&j).contains("ahead of this machine's clock"), "{j}");
    assert!(followed(&j)["lag_seconds"].is_null(), "{j}");

    // A follower state of another chain copied in: not this chain's follower.
    f["heartbeat_us"] = ((now_s() * 1e6) as u64).into();
    f["current_us"] = f["heartbeat_us"].clone();
    f["chain"] = "keyfount-20261204T000000Z".into();
    std::fs::write(dir.join("follower.json"), serde_json::to_vec(&f).unwrap()).unwrap();
    let r = status(&env, &other, &repo, "60s", &[]);
    r.code(1);
    assert!(problems(&r.json()).contains("has no report from a follower"), "{}", r.stdout);

    // A report claiming more transactions than the chain holds (segments lost): not current.
    f["chain"] = dir.file_name().unwrap().to_str().unwrap().into();
    f["txn"] = 1_000_000_000u64.into();
    std::fs::write(dir.join("follower.json"), serde_json::to_vec(&f).unwrap()).unwrap();
    let r = status(&env, &other, &repo, "60s", &[]);
    r.code(1);
    let j = r.json();
    assert!(problems(&j).contains("but the chain holds"), "{j}");
    assert!(followed(&j)["lag_seconds"].is_null(), "{j}");

    // The same path on another host: not this host's chain.
    let info_path = dir.join("chain.json");
    let info = std::fs::read_to_string(&info_path).unwrap();
    let mut v: Value = serde_json::from_str(&info).unwrap();
    v["host"] = "elsewhere.example".into();
    std::fs::write(&info_path, serde_json::to_vec(&v).unwrap()).unwrap();
    let r = status(&env, &other, &repo, "60s", &[]);
    r.code(1);
    let j = r.json();
    assert!(problems(&j).contains("no point-in-time chain of"), "{j}");
    assert_eq!(j["replication"]["other_chains"], 1, "{j}");
    std::fs::write(&info_path, info).unwrap();

    // Running again, then a segment removed from the middle: broken, whatever the follower says.
    let rep = replicate(&env, &other, &repo, &[]);
    // This run's report (the one written above, with its old pid, satisfies the rest at once).
    let pid = rep.id();
    wait_follower(&repo, |f| {
        f["pid"] == pid && f["stopped"] == false && f["segments_written"].as_u64().unwrap_or(0) >= 3
    });
    status(&env, &other, &repo, "60s", &[]).ok();
    let seg = dir.join("seg");
    let sub = ls(&seg).into_iter().next().map(|n| seg.join(n)).unwrap();
    let first = ls(&sub).into_iter().filter(|n| n.ends_with(".kfseg")).min().unwrap();
    std::fs::remove_file(sub.join(&first)).unwrap();
    let r = status(&env, &other, &repo, "60s", &["--metrics-file", s(&env.path("m.prom"))]);
    r.code(1);
    let j = r.json();
    assert!(problems(&j).contains(&format!("chain {} is broken", ls(&repo.join("pitr"))[0])), "{j}");
    assert_eq!(followed(&j)["ok"], false, "{j}");
    let text = std::fs::read_to_string(env.path("m.prom")).unwrap();
    assert_eq!(metric(&text, "kfadmin_replication_chain_broken"), Some(1.0), "{text}");
    sigkill(rep);
    writer.stop();
}

/// A usage error is said before anything is read: a remote repository, a limit below what a
/// follower reporting once a second can meet.
#[test]
fn status_max_lag_refuses_what_it_cannot_check() {
    let env = Env::new();
    let db = env.data_dir("data", 1).join("keyfount.db");
    status(&env, &db, Path::new("s3://bucket/prefix"), "10s", &[]).code(2).stderr_has("local repository");
    status(&env, &db, &env.path("repo"), "1s", &[]).code(2).stderr_has("--max-lag");
}

/// replicate ending with an error pings URL/fail and sets kfadmin_replication_up to 0 in its
/// metrics file; status pings URL when all is well and URL/fail with its problems.
#[test]
fn replicate_and_status_ping_and_write_metrics_on_failure() {
    let env = Env::new();
    let db = env.data_dir("data", 1).join("keyfount.db");
    let repo = env.path("repo");
    let prom = env.path("kf.prom");
    let (url, seen) = crate::monitor::ping_server();
    // A database not in WAL mode is refused (exit 2).
    let plain = env.path("plain");
    std::fs::create_dir_all(&plain).unwrap();
    let plain_db = plain.join("keyfount.db");
    rusqlite::Connection::open(&plain_db)
        .unwrap()
        .execute_batch("CREATE TABLE t(x); INSERT INTO t VALUES (1);")
        .unwrap();
    std::fs::write(&prom, "# HELP node_other x\n# TYPE node_other gauge\nnode_other 7\n").unwrap();
    let r = kfadmin_fault(
        &env.path("state"),
        "",
        &["replicate", "--db", s(&plain_db), "-r", s(&repo), "--metrics-file", s(&prom), "--ping-url", &url],
    );
    r.code(2);
    let text = std::fs::read_to_string(&prom).unwrap();
    assert_eq!(metric(&text, "kfadmin_replication_up"), Some(0.0), "{text}");
    assert!(text.contains("node_other 7"), "{text}");
    let pings = seen.lock().unwrap().clone();
    assert!(
        pings.iter().any(|p| p.starts_with("/ping/abc-123/fail ") && p.contains("not in WAL mode")),
        "{pings:?}"
    );
    assert!(!pings.iter().any(|p| p.starts_with("/ping/abc-123/start")), "{pings:?}");

    // status: URL/fail with the problem (no chain), then URL once replication is current.
    seen.lock().unwrap().clear();
    backup(&db, &repo);
    let writer = env.start_writer(&db, 50, false);
    status(&env, &db, &repo, "60s", &["--ping-url", &url]).code(1);
    let rep = replicate(&env, &db, &repo, &["--metrics-file", s(&prom)]);
    wait_follower(&repo, |f| f["txn"].as_u64().unwrap_or(0) > 5);
    status(&env, &db, &repo, "60s", &["--ping-url", &url]).ok();
    sigterm(rep).ok();
    writer.stop();
    // A clean stop says so in the metrics too; the other metrics of the file stay.
    let text = std::fs::read_to_string(&prom).unwrap();
    assert_eq!(metric(&text, "kfadmin_replication_up"), Some(0.0), "{text}");
    assert!(metric(&text, "kfadmin_replication_transactions").unwrap() > 5.0, "{text}");
    assert!(text.contains("node_other 7"), "{text}");
    let pings = seen.lock().unwrap().clone();
    assert_eq!(pings.len(), 2, "{pings:?}");
    assert!(
        pings[0].starts_with("/ping/abc-123/fail ") && pings[0].contains("no point-in-time chain"),
        "{pings:?}"
    );
    assert!(pings[1].starts_with("/ping/abc-123 "), "{pings:?}");
}

/// On a terminal, replicate shows one line: lag, commits and bytes shipped, segments, last
/// commit. In a pipe, none of it (and no control characters).
#[test]
fn replicate_shows_a_progress_line_on_a_terminal_and_none_in_a_pipe() {
    let env = Env::new();
    let db = env.data_dir("data", 1).join("keyfount.db");
    let repo = env.path("repo");
    let writer = env.start_writer(&db, 50, false);
    let state = env.path("state");
    let t = Tmux::start(&format!(
        "trap : INT; KFADMIN_STATE_DIR={} {} replicate --db {} -r {}; echo EXIT=$?",
        sh_quote(&state),
        sh_quote(&kfadmin_bin()),
        sh_quote(&db),
        sh_quote(&repo)
    ));
    let deadline = Instant::now() + Duration::from_secs(90);
    let line = loop {
        let screen = t.screen();
        if let Some(l) = screen.lines().find(|l| l.contains("replicate") && l.contains("lag ")) {
            if l.contains("segment(s)") && !l.contains(" 0 commit(s)") && !l.contains("none yet") {
                break l.to_string();
            }
        }
        assert!(!screen.contains("EXIT="), "replicate ended:\n{screen}");
        assert!(Instant::now() < deadline, "no progress line with shipped commits:\n{screen}");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        line.contains("unshipped") && line.contains("last commit 20") && line.contains(" shipped in "),
        "{line}"
    );
    t.keys(&["C-c"]);
    let screen = t.wait_for("EXIT=", Duration::from_secs(30));
    assert!(screen.contains("EXIT=0") && screen.contains("Replication of"), "{screen}");
    drop(t);

    // A pipe: the notes, no progress line.
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "KFADMIN_STATE_DIR={} {} replicate --db {} -r {} --duration 3s 2>&1 | cat",
            sh_quote(&state),
            sh_quote(&kfadmin_bin()),
            sh_quote(&db),
            sh_quote(&repo)
        ))
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    writer.stop();
    assert!(text.contains("Replication of"), "{text}");
    assert!(!text.contains("lag ") && !text.contains("unshipped"), "{text}");
    assert!(
        !text.chars().any(|c| c.is_control() && c != '\n'),
        "control characters in piped output: {text:?}"
    );
}

/// install.sh installs kfadmin-replicate@.service (with --units-only, without building), with
/// restart on failure, and systemd-analyze verify accepts it.
#[test]
fn the_replicate_unit_is_installed_and_verifies() {
    let env = Env::new();
    let prefix = env.path("prefix");
    let units = env.path("units");
    std::fs::create_dir_all(prefix.join("bin")).unwrap();
    std::os::unix::fs::symlink(kfadmin_bin(), prefix.join("bin/kfadmin")).unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new("bash")
        .arg(root.join("install.sh"))
        .args(["--units-only", "--prefix", s(&prefix), "--unit-dir", s(&units)])
        .output()
        .unwrap();
    assert!(out.status.success(), "install.sh: {}", String::from_utf8_lossy(&out.stderr));
    let unit = units.join("kfadmin-replicate@.service");
    let text = std::fs::read_to_string(&unit).unwrap();
    assert!(text.contains(&format!("ExecStart={}/bin/kfadmin replicate", prefix.display())), "{text}");
    assert!(text.contains("Restart=on-failure"), "{text}");
    assert!(text.contains("EnvironmentFile=/etc/kfadmin/replicate-%i.env"), "{text}");
    assert!(!text.contains("@BIN@"), "{text}");
    assert_eq!(std::fs::metadata(&unit).unwrap().permissions().mode() & 0o777, 0o644);
    // Again: the same file, unchanged.
    let again = Command::new("bash")
        .arg(root.join("install.sh"))
        .args(["--units-only", "--prefix", s(&prefix), "--unit-dir", s(&units)])
        .output()
        .unwrap();
    assert!(again.status.success());
    assert_eq!(std::fs::read_to_string(&unit).unwrap(), text);
    if which("systemd-analyze") {
        // An instance of the template, as systemctl would load it.
        let inst = units.join("kfadmin-replicate@keyfount.service");
        std::fs::copy(&unit, &inst).unwrap();
        let out = Command::new("systemd-analyze").arg("verify").arg(&inst).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success() && !err.contains("kfadmin-replicate"), "systemd-analyze verify: {err}");
    }
}

fn which(cmd: &str) -> bool {
    Command::new("sh").arg("-c").arg(format!("command -v {cmd}")).output().is_ok_and(|o| o.status.success())
}

use std::os::unix::fs::PermissionsExt;
