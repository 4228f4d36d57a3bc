//! The container's lifecycle around kfadmin's stop and start, against the real engine: a
//! server started behind kfadmin's back, a crash-looping container, a stop still under way
//! when kfadmin was killed, a healthcheck slower than a fixed wait, a container recreated
//! between find and stop, start failures and deaths during a rollback, and the stop journal
//! with the engine down.
//!
//! Some tests stop kfadmin at a named point with the debug-build hook `KFADMIN_TEST_PAUSE_AT`
//! (see `kfadmin::fault::pause`): kfadmin creates `<dir>/<point>.reached` and waits for
//! `<dir>/<point>.go`.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::dock::*;
use crate::util::*;
use bollard::models::ContainerCreateBody;
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, InspectContainerOptions, RemoveContainerOptionsBuilder,
    StartContainerOptions,
};

/// kfadmin with the test's own state directory (for the stop journal).
fn kf(env: &Env, args: &[&str]) -> Run {
    kfadmin_env(&[("KFADMIN_STATE_DIR", env.path("state").to_str().unwrap())], args)
}

/// An online backup of the container: (archive, the writer's last seq in it).
fn online_archive(env: &Env, c: &Kf) -> (String, i64) {
    let out = env.path("backups");
    let r =
        kf(env, &["backup", "--online", "--container", &c.name, "--out", out.to_str().unwrap(), "--json"]);
    r.ok();
    let j = r.json();
    (j["archive"].as_str().unwrap().to_string(), j["database"]["tables"]["audit_log"].as_i64().unwrap())
}

/// A valid backup of a database this server refuses at start (schema version 3, not 7).
pub fn refused_archive(env: &Env) -> String {
    let odd = env.data_dir("odd", 1);
    let conn = rusqlite::Connection::open(odd.join("keyfount.db")).unwrap();
    conn.execute_batch("PRAGMA user_version=3").unwrap();
    drop(conn);
    backup(&odd.join("keyfount.db"), &env.path("odd-backups"))["archive"].as_str().unwrap().to_string()
}

fn restore_args<'a>(archive: &'a str, c: &'a Kf, out: &'a Path, extra: &[&'a str]) -> Vec<&'a str> {
    // --force: some tests restore a deliberately odd archive (the plan warns about it).
    let mut a =
        vec!["restore", archive, "--container", &c.name, "--out", out.to_str().unwrap(), "--yes", "--force"];
    a.extend_from_slice(extra);
    a
}

/// The writer's last seq in the container's live database.
fn live_seq(c: &Kf) -> i64 {
    check_db(&c.host_data().join("keyfount.db"), 0)["last_seq"].as_i64().unwrap()
}

/// Replaced files kept beside the data (`.kfadmin-pre-restore-*`).
fn safety_dirs(c: &Kf) -> Vec<String> {
    ls(&c.host_data()).into_iter().filter(|n| n.starts_with(".kfadmin-pre-restore-")).collect()
}

/// Starts the container again as soon as it is down, as `restart: always` after a dockerd
/// restart, `docker compose up -d` in a loop or Watchtower would.
struct Restarter {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Restarter {
    fn watch(name: &str) -> Restarter {
        let stop = Arc::new(AtomicBool::new(false));
        let (flag, name) = (Arc::clone(&stop), name.to_string());
        let d = docker();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            while !flag.load(Ordering::SeqCst) {
                let running = rt
                    .block_on(d.inspect_container(&name, None::<InspectContainerOptions>))
                    .ok()
                    .and_then(|c| c.state)
                    .and_then(|s| s.running);
                if running == Some(false) {
                    let _ = rt.block_on(d.start_container(&name, None::<StartContainerOptions>));
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        });
        Restarter { stop, thread: Some(thread) }
    }
}

impl Drop for Restarter {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Files the container's main process has open that were deleted.
fn deleted_open_files(c: &Kf) -> Vec<String> {
    let pid = c.inspect().state.and_then(|s| s.pid).unwrap();
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).unwrap();
    fds.filter_map(|e| std::fs::read_link(e.unwrap().path()).ok())
        .map(|p| p.display().to_string())
        .filter(|p| p.ends_with("(deleted)"))
        .collect()
}

/// Remove the container and create it again under its name, with the same configuration and
/// data, and start it (what `docker compose up` does when the configuration changed).
fn recreate(name: &str) {
    let d = docker();
    let old = block(d.inspect_container(name, None::<InspectContainerOptions>)).unwrap();
    let config = old.config.unwrap();
    let body = ContainerCreateBody {
        image: config.image,
        cmd: config.cmd,
        labels: config.labels,
        stop_timeout: config.stop_timeout,
        healthcheck: config.healthcheck,
        host_config: old.host_config,
        ..Default::default()
    };
    block(d.remove_container(name, Some(RemoveContainerOptionsBuilder::default().force(true).build())))
        .unwrap();
    let opts = CreateContainerOptionsBuilder::default().name(name).build();
    block(d.create_container(Some(opts), body)).unwrap();
    block(d.start_container(name, None::<StartContainerOptions>)).unwrap();
}

/// Replace the container's /status bind source by a file: `docker start` then fails. Returns
/// a closure that puts it back.
fn break_start(c: &Kf) -> impl FnOnce() + '_ {
    let moved = c.status_dir.with_extension("away");
    std::fs::rename(&c.status_dir, &moved).unwrap();
    std::fs::write(&c.status_dir, b"not a directory").unwrap();
    move || {
        std::fs::remove_file(&c.status_dir).unwrap();
        std::fs::rename(&moved, &c.status_dir).unwrap();
    }
}

/// Issue 11.1: something starts the container while kfadmin has it stopped for a restore. The
/// restore must not swap the database under that server: exit 1, nothing changed, and the
/// server holds no deleted database file.
#[test]
fn a_server_started_behind_kfadmins_back_aborts_the_restore_before_the_swap() {
    let env = Env::new();
    let c = Kf::start(&env, "behind", Spec { rate: 100, ..Spec::default() });
    let (archive, backed_up) = online_archive(&env, &c);
    c.wait_for(|s| s["last_seq"].as_i64().unwrap() >= backed_up + 100);
    let watcher = Restarter::watch(&c.name);
    let out = env.path("backups");
    let mut run = Paused::spawn(&env, "before-swap", &restore_args(&archive, &c, &out, &["--settle", "2"]));
    if run.reached("before-swap") {
        // Let the server that the watcher started open its database before kfadmin goes on.
        c.wait_for(|s| s["done"] == false && s["commits"].as_i64().unwrap() > 0);
        run.go("before-swap");
    }
    let r = run.finish();
    drop(watcher);
    r.code(1)
        .stderr_has("was started again")
        .stderr_has("by something other than kfadmin")
        .stderr_has("nothing in")
        .stderr_has("Watchtower");
    assert!(c.running());
    assert_eq!(deleted_open_files(&c), Vec::<String>::new(), "the server writes to deleted files");
    assert!(live_seq(&c) > backed_up + 100, "the live data was replaced by the backup");
    assert!(safety_dirs(&c).is_empty(), "{:?}", ls(&c.host_data()));
    assert!(journals(&env.path("state")).is_empty(), "journal left: {:?}", ls(&env.path("state")));
}

/// Issue 11.1: a start behind kfadmin's back while the files are swapped: the server may hold
/// the replaced database. Exit 4 (restart it now), and the replaced files stay.
#[test]
fn a_server_started_during_the_swap_is_exit_4_and_the_replaced_files_stay() {
    let env = Env::new();
    let c = Kf::start(&env, "duringswap", Spec { rate: 100, ..Spec::default() });
    let (archive, _) = online_archive(&env, &c);
    let out = env.path("backups");
    let mut run = Paused::spawn(&env, "after-swap", &restore_args(&archive, &c, &out, &["--settle", "1"]));
    run.expect("after-swap");
    block(docker().start_container(&c.name, None::<StartContainerOptions>)).unwrap();
    run.go("after-swap");
    let r = run.finish();
    r.code(4)
        .stderr_has("while the restored files were being swapped in")
        .stderr_has(&format!("docker restart {}", c.name))
        .stderr_has("-pre-restore.tar.gz");
    assert!(c.running());
    assert_eq!(safety_dirs(&c).len(), 1, "the replaced files stay: {:?}", ls(&c.host_data()));
    assert!(journals(&env.path("state")).is_empty(), "the container runs: no journal");
}

/// Issue 11.1: started by something else between the swap and kfadmin's start: on the
/// restored data. Reported (warning, JSON), never silent; the replaced files are kept.
#[test]
fn a_start_behind_kfadmins_back_after_the_swap_is_reported() {
    let env = Env::new();
    let c = Kf::start(&env, "afterswap", Spec { rate: 100, ..Spec::default() });
    let (archive, backed_up) = online_archive(&env, &c);
    let out = env.path("backups");
    let args = restore_args(&archive, &c, &out, &["--settle", "1", "--json"]);
    let mut run = Paused::spawn(&env, "before-start", &args);
    run.expect("before-start");
    block(docker().start_container(&c.name, None::<StartContainerOptions>)).unwrap();
    run.go("before-start");
    let r = run.finish();
    r.ok().stderr_has("already running when kfadmin went to start it");
    let j = r.json();
    assert!(j["warnings"][0].as_str().unwrap().contains("something else started it"), "{j}");
    assert!(j["safety_dir"].is_string(), "{j}");
    assert_eq!(safety_dirs(&c).len(), 1);
    c.wait_for(|s| {
        s["done"] == false && s["last_seq"].as_i64().unwrap() - s["commits"].as_i64().unwrap() == backed_up
    });
    assert!(journals(&env.path("state")).is_empty());
}

/// Issue 11.1, cold backup: a server started behind kfadmin's back during the copy may have
/// written to what was being copied: exit 1, no archive, the container runs, no journal.
#[test]
fn a_server_started_during_a_cold_copy_fails_the_backup() {
    let env = Env::new();
    let c = Kf::start(&env, "coldbehind", Spec { rate: 100, ..Spec::default() });
    let out = env.path("backups");
    let args = ["backup", "--cold", "--container", &c.name, "--out", out.to_str().unwrap()];
    let mut run = Paused::spawn(&env, "after-copy", &args);
    run.expect("after-copy");
    block(docker().start_container(&c.name, None::<StartContainerOptions>)).unwrap();
    run.go("after-copy");
    run.finish().code(1).stderr_has("was started again").stderr_has("by something other than kfadmin");
    assert!(c.running());
    assert!(ls(&out).iter().all(|n| !n.contains(".tar.gz")), "no archive: {:?}", ls(&out));
    assert!(journals(&env.path("state")).is_empty());
}

/// Issue 11.2: with `restart: unless-stopped` and no healthcheck, a server that exits at once
/// on the restored data is restarted over and over while `Running` stays true. That is not up:
/// the restore rolls back, exit 1, and the container runs on its previous data.
#[test]
fn a_crash_looping_container_is_not_up_and_the_restore_rolls_back() {
    let env = Env::new();
    let policy = Some("unless-stopped".to_string());
    let c = Kf::start(&env, "crashloop", Spec { rate: 100, restart_policy: policy, ..Spec::default() });
    c.wait_for(|s| s["last_seq"].as_i64().unwrap() >= 20);
    let archive = refused_archive(&env);
    let out = env.path("backups");
    let r = kf(&env, &restore_args(&archive, &c, &out, &["--settle", "3"]));
    r.code(1).stderr_has("keeps failing").stderr_has("previous data was put back");
    let state = c.inspect().state.unwrap();
    assert_eq!((state.running, state.restarting), (Some(true), Some(false)));
    let seq = c.status()["last_seq"].as_i64().unwrap();
    c.wait_writing_past(seq.max(20));
    check_db(&c.host_data().join("keyfount.db"), 20);
    assert!(journals(&env.path("state")).is_empty());
}

/// Issue 11.3: kfadmin killed while the engine is still stopping the container (an app that
/// ignores SIGTERM, a stop timeout of a few seconds). A kfadmin run within the stop timeout
/// must keep the journal; once the container is down, the next run starts it.
#[test]
fn a_journal_survives_a_stop_still_under_way_and_the_next_run_starts_the_container() {
    let env = Env::new();
    let spec = Spec { ignore_sigterm: true, stop_timeout: Some(8), ..Spec::default() };
    let c = Kf::start(&env, "slowstop", spec);
    let out = env.path("backups");
    let state = env.path("state");
    // The guardian would start it at once (tests/integration/guardian.rs): this is the journal,
    // the second line of defence.
    let mut run = Paused::spawn_with(
        &env,
        &kfadmin_bin(),
        "",
        &["backup", "--cold", "--container", &c.name, "--out", out.to_str().unwrap()],
        &[("KFADMIN_TEST_NO_GUARDIAN", "1")],
    );
    // SIGTERM has reached the app: the engine's stop is under way.
    c.wait_for(|s| s["sigterm"] == true);
    assert!(run.running(), "kfadmin is still waiting for the stop");
    run.kill();
    let backups = env.path("status-backups");
    let status = ["status", "--container", &c.name, "--backup-dir", backups.to_str().unwrap()];
    let r = kf(&env, &status);
    r.stderr_has("still under way");
    assert_eq!(journals(&state).len(), 1, "the journal stays while the stop is under way\n{}", r.stderr);
    c.wait_stopped();
    assert_eq!(c.exit_code(), Some(137), "killed at the end of the stop timeout");
    kf(&env, &status).stderr_has("kfadmin started it now");
    assert!(c.running());
    assert!(journals(&state).is_empty());
}

/// Issue 11.7: the health wait follows the healthcheck (a probe every 3 s). An explicit
/// `--health-timeout` that is too short fails and names the flag; the rollback then waits as
/// long as the healthcheck needs (no exit 4); without the flag the restore succeeds.
#[test]
fn the_health_wait_follows_the_healthcheck() {
    let env = Env::new();
    let spec = Spec { healthcheck: true, health_interval_ms: Some(3000), rate: 100, ..Spec::default() };
    let c = Kf::start(&env, "slowhealth", spec);
    let (archive, _) = online_archive(&env, &c);
    let out = env.path("backups");
    let r = kf(&env, &restore_args(&archive, &c, &out, &["--health-timeout", "1"]));
    r.code(1).stderr_has("within --health-timeout 1 s").stderr_has("previous data was put back");
    assert!(c.running());
    let r = kf(&env, &restore_args(&archive, &c, &out, &["--json"]));
    r.ok();
    assert_eq!(r.json()["up"], "healthy");
    assert!(journals(&env.path("state")).is_empty());
}

/// Issue 11.9: the container is recreated under its name between find and stop. kfadmin
/// stopped nothing: exit 1 (not 4), no journal, the new container untouched.
#[test]
fn a_container_recreated_between_find_and_stop_is_exit_1_and_nothing_changes() {
    let env = Env::new();
    let c = Kf::start(&env, "recreated", Spec { rate: 100, ..Spec::default() });
    let (archive, backed_up) = online_archive(&env, &c);
    let out = env.path("backups");
    let mut run = Paused::spawn(&env, "before-stop", &restore_args(&archive, &c, &out, &["--settle", "1"]));
    run.expect("before-stop");
    recreate(&c.name);
    let started = c.started_at();
    run.go("before-stop");
    run.finish().code(1).stderr_has("no longer exists").stderr_has("recreated");
    assert_eq!(c.started_at(), started, "the new container was not touched");
    c.wait_for(|s| s["done"] == false && s["commits"].as_i64().unwrap() > 10);
    assert!(live_seq(&c) > backed_up);
    assert!(journals(&env.path("state")).is_empty(), "no stale journal");

    // A cold backup of a container removed between find and stop: exit 1 too.
    let mut run = Paused::spawn(
        &env,
        "before-stop",
        &["backup", "--cold", "--container", &c.name, "--out", out.to_str().unwrap()],
    );
    assert!(run.reached("before-stop"));
    let opts = RemoveContainerOptionsBuilder::default().force(true).build();
    block(docker().remove_container(&c.name, Some(opts))).unwrap();
    run.go("before-stop");
    run.finish().code(1).stderr_has("no longer exists");
    assert!(journals(&env.path("state")).is_empty());
}

/// Issue 8.6: the start on the restored data fails: that triggers the rollback like a failed
/// wait. The rollback's stop is journaled; the container runs on its previous data; exit 1
/// naming the pre-restore archive.
#[test]
fn a_start_that_fails_on_the_restored_data_is_rolled_back() {
    let env = Env::new();
    let c = Kf::start(&env, "startfails", Spec { rate: 100, ..Spec::default() });
    let (archive, backed_up) = online_archive(&env, &c);
    c.wait_for(|s| s["last_seq"].as_i64().unwrap() >= backed_up + 100);
    let out = env.path("backups");
    let points = "after-swap,before-rollback-start";
    let mut run = Paused::spawn(&env, points, &restore_args(&archive, &c, &out, &["--settle", "1"]));
    run.expect("after-swap");
    let fix = break_start(&c);
    run.go("after-swap");
    assert!(run.reached("before-rollback-start"));
    assert_eq!(journals(&env.path("state")).len(), 1, "the rollback's stop is journaled");
    fix();
    run.go("before-rollback-start");
    run.finish().code(1).stderr_has("it could not be started").stderr_has("previous data was put back");
    assert!(c.running());
    c.wait_for(|s| s["done"] == false && s["commits"].as_i64().unwrap() > 0);
    assert!(live_seq(&c) > backed_up + 100, "the previous data is back");
    assert!(journals(&env.path("state")).is_empty());
}

/// Issue 8.6: the container cannot start, neither on the restored data nor after the rollback:
/// exit 4 naming the pre-restore archive and `docker start`; the journal stays, and once the
/// container can start the next kfadmin run on it starts it, on the previous data.
#[test]
fn a_container_that_cannot_start_after_the_rollback_is_exit_4_and_keeps_its_journal() {
    let env = Env::new();
    let c = Kf::start(&env, "nostartrb", Spec { rate: 100, ..Spec::default() });
    let (archive, backed_up) = online_archive(&env, &c);
    c.wait_for(|s| s["last_seq"].as_i64().unwrap() >= backed_up + 100);
    let out = env.path("backups");
    let mut run = Paused::spawn(&env, "after-swap", &restore_args(&archive, &c, &out, &["--settle", "1"]));
    run.expect("after-swap");
    let fix = break_start(&c);
    run.go("after-swap");
    run.finish()
        .code(4)
        .stderr_has("cannot be started")
        .stderr_has(&format!("docker start {}", c.name))
        .stderr_has("-pre-restore.tar.gz");
    assert!(!c.running());
    assert!(check_db(&c.host_data().join("keyfount.db"), 0)["last_seq"].as_i64().unwrap() > backed_up + 100);
    assert_eq!(journals(&env.path("state")).len(), 1, "the journal stays until the container runs");
    fix();
    let backups = env.path("status-backups");
    kf(&env, &["status", "--container", &c.name, "--backup-dir", backups.to_str().unwrap()])
        .stderr_has("kfadmin started it now");
    assert!(c.running());
    assert!(journals(&env.path("state")).is_empty());
}

/// Issue 8.6: kfadmin dies during the rollback, after stopping the container again: the
/// journal makes the next kfadmin run on the container start it.
#[test]
fn kfadmin_killed_during_the_rollback_leaves_a_journal_and_the_next_run_starts_the_container() {
    let env = Env::new();
    let c = Kf::start(&env, "rbkilled", Spec { rate: 100, ..Spec::default() });
    c.wait_for(|s| s["last_seq"].as_i64().unwrap() >= 20);
    let archive = refused_archive(&env);
    let out = env.path("backups");
    // The journal, the second line of defence: the guardian (tests/integration/restore_docker.rs)
    // would start the container at once.
    let args = restore_args(&archive, &c, &out, &["--settle", "1"]);
    let no_guardian = [("KFADMIN_TEST_NO_GUARDIAN", "1")];
    let mut run = Paused::spawn_with(&env, &kfadmin_bin(), "before-rollback-start", &args, &no_guardian);
    run.expect("before-rollback-start");
    run.kill();
    assert!(!c.running());
    assert_eq!(journals(&env.path("state")).len(), 1, "the rollback's stop is journaled");
    let backups = env.path("status-backups");
    kf(&env, &["status", "--container", &c.name, "--backup-dir", backups.to_str().unwrap()])
        .stderr_has("kfadmin started it now");
    assert!(c.running());
    let seq = c.status()["last_seq"].as_i64().unwrap();
    c.wait_writing_past(seq.max(20));
    assert!(journals(&env.path("state")).is_empty());
}

/// A journal as a killed kfadmin run leaves it, for container `id` stopped on run `started_at`.
fn write_journal(env: &Env, id: &str, name: &str, started_at: &str, since_ms: u128) -> PathBuf {
    let state = env.path("state");
    std::fs::create_dir_all(&state).unwrap();
    let path = state.join(format!("stopped-{id}.json"));
    let j = serde_json::json!({
        "container_id": id, "container_name": name, "pid": std::process::id(),
        "since_unix": (since_ms / 1000) as u64, "command": "kfadmin backup --cold",
        "since_ms": since_ms as u64, "started_at": started_at, "stop_timeout_s": 10,
    });
    std::fs::write(&path, j.to_string()).unwrap();
    path
}

fn now_ms() -> u128 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis()
}

/// Issue 8.9: a journal with the engine down blocks only the commands that work on a
/// container (exit 4 naming the journal); verify, list and restore --data-dir warn and work.
#[test]
fn a_journal_with_the_engine_down_blocks_only_container_commands() {
    let env = Env::new();
    let db = env.data_dir("src", 1).join("keyfount.db");
    let out = env.path("backups");
    let archive = backup(&db, &out)["archive"].as_str().unwrap().to_string();
    let journal = write_journal(&env, "0123456789ab", "keyfount-gone", "2026-01-01T00:00:00Z", now_ms());
    let j = journal.to_str().unwrap();
    let state = env.path("state");
    let down =
        [("DOCKER_HOST", "unix:///nonexistent/docker.sock"), ("KFADMIN_STATE_DIR", state.to_str().unwrap())];
    let r = kfadmin_env(&down, ["verify", &archive]);
    r.ok().stderr_has("warning:").stderr_has(j).stderr_has("keyfount-gone");
    assert_eq!(r.stderr.matches(j).count(), 1, "warned once:\n{}", r.stderr);
    kfadmin_env(&down, ["list", out.to_str().unwrap()]).ok().stderr_has(j);
    let target = env.path("restored");
    kfadmin_env(&down, ["restore", &archive, "--data-dir", target.to_str().unwrap(), "--yes"])
        .ok()
        .stderr_has(j);
    kfadmin_env(&down, ["backup", "--cold", "--container", "keyfount-gone", "--out", out.to_str().unwrap()])
        .code(4)
        .stderr_has(j)
        .stderr_has("cannot be reached");
    assert!(journal.exists(), "the journal stays until the container is dealt with");
}

/// Issue 8.9: with the engine up, commands that do not work on a container never start one;
/// a container command starts it only when kfadmin's stop was the last thing that happened to
/// it, and leaves it stopped when the operator stopped it since.
#[test]
fn only_kfadmins_own_stop_is_undone() {
    let env = Env::new();
    let c = Kf::start(&env, "operator", Spec { rate: 100, ..Spec::default() });
    let id = c.inspect().id.unwrap();
    let backups = env.path("status-backups");
    let status = ["status", "--container", &c.name, "--backup-dir", backups.to_str().unwrap()];
    // kfadmin stopped this run and was killed: verify warns but starts nothing; status starts it.
    let journal = write_journal(&env, &id, &c.name, &c.started_at(), now_ms());
    c.stop();
    c.wait_stopped();
    kf(&env, &["list", env.path("none").to_str().unwrap()]).stderr_has(journal.to_str().unwrap());
    assert!(!c.running(), "list must not start a container");
    kf(&env, &status).stderr_has("kfadmin started it now");
    assert!(c.running());
    assert!(!journal.exists());
    // kfadmin stopped an earlier run; the container was started and then stopped again by the
    // operator: it stays stopped, and the journal is cleared.
    let journal = write_journal(&env, &id, &c.name, "2026-01-01T00:00:00.000000001Z", now_ms());
    c.stop();
    c.wait_stopped();
    kf(&env, &status).stderr_has("leaves it stopped");
    assert!(!c.running(), "the operator's stop stands");
    assert!(!journal.exists());
}
