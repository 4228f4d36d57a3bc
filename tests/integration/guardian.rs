//! Issue 15: the guardian. kfadmin SIGKILLed while it holds a container down, and no other
//! command: the container runs again within seconds. A normal run leaves no guardian behind,
//! and a guardian killed changes nothing for its run. (The drill's: tests/integration/drill.rs.)

use std::time::{Duration, Instant};

use crate::dock::*;
use crate::util::*;

fn cold(c: &Kf, out: &std::path::Path) -> Vec<String> {
    ["backup", "--cold", "--container", &c.name, "--out", out.to_str().unwrap()].map(String::from).to_vec()
}

fn log(env: &Env) -> String {
    std::fs::read_to_string(env.path("state").join("guardian.log")).unwrap_or_default()
}

#[test]
fn a_cold_backup_killed_during_a_long_stop_has_its_container_started_by_the_guardian() {
    let env = Env::new();
    let spec = Spec { ignore_sigterm: true, stop_timeout: Some(4), ..Spec::default() };
    let c = Kf::start(&env, "guard-slowstop", spec);
    let started = c.started_at();
    let out = env.path("backups");
    let args = cold(&c, &out);
    let mut run = Paused::spawn(&env, "", &args.iter().map(String::as_str).collect::<Vec<_>>());
    // SIGTERM has reached the app: the engine's stop is under way.
    c.wait_for(|s| s["sigterm"] == true);
    let pid = run.pid();
    assert_eq!(guardians_of(pid).len(), 1, "one guardian watches the cold backup");
    run.kill();
    // The stop ends at its timeout (the app ignores SIGTERM); nobody runs kfadmin again.
    let deadline = Instant::now() + Duration::from_secs(30);
    while c.running() && c.started_at() == started {
        assert!(Instant::now() < deadline, "the stop never ended");
        std::thread::sleep(Duration::from_millis(20));
    }
    let stopped = Instant::now();
    while !(c.running() && c.started_at() != started) {
        assert!(
            stopped.elapsed() < Duration::from_secs(15),
            "not running 15 s after the stop:\n{}",
            log(&env)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    while !journals(&env.path("state")).is_empty() {
        assert!(
            stopped.elapsed() < Duration::from_secs(20),
            "journal left: {:?}",
            journals(&env.path("state"))
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let log = log(&env);
    assert!(log.contains("ended without finishing") && log.contains("kfadmin started it now"), "{log}");
    // `status` says what the guardian did.
    let backups = env.path("status-backups");
    let state = env.path("state");
    let r = kfadmin_env(
        &[("KFADMIN_STATE_DIR", state.to_str().unwrap())],
        ["status", "--container", &c.name, "--backup-dir", backups.to_str().unwrap(), "--json"],
    );
    let lines = r.json()["guardian"].to_string();
    assert!(lines.contains("kfadmin started it now"), "{}", r.stdout);
}

#[test]
fn a_normal_run_leaves_no_guardian_and_a_killed_guardian_changes_nothing() {
    let env = Env::new();
    let c = Kf::start(&env, "guard-normal", Spec::default());
    let out = env.path("backups");
    let args = cold(&c, &out);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    // A normal run: the guardian is there while the container is down, gone after.
    let mut run = Paused::spawn(&env, "before-stop", &args);
    run.expect("before-stop");
    let pid = run.pid();
    let guardians = guardians_of(pid);
    assert_eq!(guardians.len(), 1);
    run.go("before-stop");
    run.finish().ok();
    assert!(guardians_of(pid).is_empty(), "a guardian was left behind");
    assert!(!std::path::Path::new(&format!("/proc/{}", guardians[0])).exists(), "guardian not reaped");
    assert!(!log(&env).contains("ended without finishing"), "{}", log(&env));
    assert!(c.running());
    // The guardian SIGKILLed: the run goes on and ends as usual.
    let mut run = Paused::spawn(&env, "before-stop", &args);
    run.expect("before-stop");
    let pid = run.pid();
    for g in guardians_of(pid) {
        // SAFETY: signalling a process of this test's kfadmin run.
        unsafe { libc::kill(g as i32, libc::SIGKILL) };
    }
    run.go("before-stop");
    run.finish().ok().stderr_has("running again");
    assert!(c.running());
    assert!(journals(&env.path("state")).is_empty());
    assert!(guardians_of(pid).is_empty());
}
