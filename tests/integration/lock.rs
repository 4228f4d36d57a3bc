//! Locks between kfadmin runs: two runs on one backup directory, data directory or container
//! take turns; a run that waits too long fails (exit 1) naming the pid and command holding the
//! lock; a lock dies with its holder, however it dies.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::dock::*;
use crate::terminal::{sh_quote, Tmux};
use crate::util::*;

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// kfadmin with a private state directory (its locks live there).
fn kf(env: &Env, args: &[&str]) -> Run {
    kfadmin_env(&[("KFADMIN_STATE_DIR", s(&env.path("state")))], args)
}

fn sha256_of(p: &Path) -> String {
    format!("{:x}", Sha256::digest(std::fs::read(p).unwrap()))
}

/// Two backups of one database into one directory at the same time (two overlapping cron
/// jobs): both succeed with an archive each. Without a lock, the loser's cleanup removed the
/// winner's `.partial` and both failed.
#[test]
fn two_concurrent_backups_of_one_name_both_succeed() {
    let env = Env::new();
    let data = env.data_dir("data", 4);
    let db = data.join("keyfount.db");
    let out = env.path("backups");
    let spawn = || {
        Command::new(kfadmin_bin())
            .args(["backup", "--online", "--db", s(&db), "--out", s(&out), "--json"])
            .env("KFADMIN_STATE_DIR", env.path("state"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn(), spawn());
    let runs: Vec<Run> = [a, b].into_iter().map(|c| c.wait_with_output().unwrap().into()).collect();
    let mut archives = Vec::new();
    for r in &runs {
        r.ok();
        archives.push(r.json()["archive"].as_str().unwrap().to_string());
    }
    assert_ne!(archives[0], archives[1]);
    for a in &archives {
        kfadmin(["verify", a]).ok();
    }
    let names = ls(&out);
    assert_eq!(names.iter().filter(|n| n.ends_with(".tar.gz")).count(), 2, "{names:?}");
    assert!(names.iter().all(|n| !n.ends_with(".partial") && !n.starts_with(".kfadmin")), "{names:?}");
}

/// A restore waiting at its prompt holds the data directory. Another restore into it waits
/// (saying for whom), and with `--lock-wait 1s` or `0` fails with exit 1 naming the holder's
/// pid and command, changing nothing; once the holder is answered it goes ahead; a holder
/// killed with SIGKILL leaves no lock behind.
#[test]
fn a_held_lock_waits_then_fails_naming_the_holder_and_dies_with_it() {
    let env = Env::new();
    let data = env.data_dir("data", 1);
    let report = backup(&data.join("keyfount.db"), &env.path("b"));
    let archive = report["archive"].as_str().unwrap().to_string();
    let restored = report["files"][0]["sha256"].as_str().unwrap().to_string();
    let target = env.data_dir("target", 1);
    let holder = format!(
        "env KFADMIN_STATE_DIR={} {} restore {} --data-dir {}; echo EXIT=$?",
        sh_quote(&env.path("state")),
        sh_quote(&kfadmin_bin()),
        sh_quote(Path::new(&archive)),
        sh_quote(&target)
    );
    let t = Tmux::start(&holder);
    t.wait_for("[y/N]", Duration::from_secs(60));
    let pid = t.command_pid();
    // (The holder has staged its files in there by now.)
    let before = snapshot_tree(&target);
    let restore = |wait: &str| {
        kf(&env, &["--lock-wait", wait, "restore", &archive, "--data-dir", s(&target), "--yes", "--force"])
    };

    let r = restore("1s");
    r.code(1).stderr_has(&format!("pid {pid} (`kfadmin restore`")).stderr_has("waited 1s");
    assert_eq!(r.stderr.matches("waiting up to 1s").count(), 1, "said once: {}", r.stderr);
    restore("0").code(1).stderr_has(&format!("pid {pid}")).stderr_has("did not wait");
    let r = kf(
        &env,
        &["--lock-wait", "0", "restore", &archive, "--data-dir", s(&target), "--yes", "--force", "--json"],
    );
    r.code(1);
    assert!(r.json()["error"]["message"].as_str().unwrap().contains(&format!("pid {pid}")));
    assert_eq!(snapshot_tree(&target), before, "a run that did not get the lock changed the data");

    // A run that waits long enough goes ahead once the holder is done.
    let mut waiter = Command::new(kfadmin_bin())
        .args(["--lock-wait", "5m", "restore", &archive, "--data-dir", s(&target), "--yes", "--force"])
        .env("KFADMIN_STATE_DIR", env.path("state"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(waiter.stderr.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    assert!(first.contains(&format!("pid {pid}")) && first.contains("waiting up to 5m"), "{first}");
    t.keys(&["n", "Enter"]);
    t.wait_for("EXIT=1", Duration::from_secs(30));
    let rest: Vec<String> = lines.map(|l| l.unwrap()).collect();
    assert!(waiter.wait().unwrap().success(), "the waiting restore failed: {rest:?}");
    assert_eq!(sha256_of(&target.join("keyfount.db")), restored);
    drop(t);

    // SIGKILL the holder at its prompt: the lock dies with it. (Another data directory: two
    // restores into one directory within a second collide on the safety directory's name.)
    let other = env.data_dir("other", 1);
    let t = Tmux::start(&holder.replace(&sh_quote(&target), &sh_quote(&other)));
    t.wait_for("[y/N]", Duration::from_secs(60));
    // SAFETY: signalling a process this test started (through tmux and sh).
    unsafe { libc::kill(t.command_pid() as i32, libc::SIGKILL) };
    t.wait_for("EXIT=137", Duration::from_secs(30));
    kf(&env, &["--lock-wait", "0", "restore", &archive, "--data-dir", s(&other), "--yes", "--force"]).ok();
    assert_eq!(sha256_of(&other.join("keyfount.db")), restored);
}

/// A restore into a container, waiting at its prompt, holds the container: a cold backup of it
/// does not stop it under the restore, but fails (exit 1) naming the restore's pid; once the
/// restore is answered, the cold backup runs.
#[test]
fn a_cold_backup_never_stops_a_container_that_a_restore_holds() {
    let env = Env::new();
    let c = Kf::start(&env, "held", Spec { rate: 50, ..Spec::default() });
    let out = env.path("backups");
    let r = kf(&env, &["backup", "--online", "--container", &c.name, "--out", s(&out), "--json"]);
    r.ok();
    let archive = r.json()["archive"].as_str().unwrap().to_string();
    let t = Tmux::start(&format!(
        "env KFADMIN_STATE_DIR={} {} restore {} --container {} --out {}; echo EXIT=$?",
        sh_quote(&env.path("state")),
        sh_quote(&kfadmin_bin()),
        sh_quote(Path::new(&archive)),
        c.name,
        sh_quote(&out)
    ));
    t.wait_for("[y/N]", Duration::from_secs(120));
    let pid = t.command_pid();
    let started = c.started_at();
    let cold = |wait: &str| {
        kf(
            &env,
            &["--lock-wait", wait, "backup", "--cold", "--container", &c.name, "--out", s(&env.path("cold"))],
        )
    };
    cold("1s").code(1).stderr_has(&format!("pid {pid} (`kfadmin restore`"));
    assert!(c.running() && c.started_at() == started, "the held container was stopped");
    assert!(ls(&env.path("cold")).iter().all(|n| !n.ends_with(".tar.gz")));
    t.keys(&["n", "Enter"]);
    t.wait_for("EXIT=1", Duration::from_secs(30));
    cold("0").ok();
    assert!(c.running());
}
