//! kfadmin against a real Docker Engine: cold backups, online backups and restores of a
//! running Keyfount-like container, the failure paths, and bad input.

use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::dock::*;
use crate::util::*;

/// kfadmin with a private state directory (for the crash journal).
fn kf(env: &Env, args: &[&str]) -> Run {
    let state = env.path("state");
    kfadmin_env(&[("KFADMIN_STATE_DIR", state.to_str().unwrap())], args)
}

fn restored_seq(env: &Env, archive: &str, tag: &str) -> Value {
    let dir = env.path(&format!("restored-{tag}"));
    kfadmin(["restore", archive, "--data-dir", dir.to_str().unwrap(), "--yes"]).ok();
    check_db(&dir.join("keyfount.db"), 0)
}

fn manifest_paths(report: &Value) -> Vec<String> {
    report["files"].as_array().unwrap().iter().map(|f| f["path"].as_str().unwrap().to_string()).collect()
}

#[test]
fn cold_backup_of_a_running_container_under_writes() {
    let env = Env::new();
    let c = Kf::start(&env, "cold", Spec { rate: 200, ..Spec::default() });
    c.wait_for(|s| s["last_seq"].as_i64().unwrap() >= 50);
    let out = env.path("backups");
    let r = kf(&env, &["backup", "--cold", "--container", &c.name, "--out", out.to_str().unwrap(), "--json"]);
    r.ok();
    let j = r.json();
    assert_eq!(j["mode"], "cold");
    assert!(j["downtime_ms"].as_u64().unwrap() < j["duration_ms"].as_u64().unwrap());
    assert_eq!(j["source"]["container"]["name"], c.name.as_str());
    assert_eq!(j["files"][0]["uid"], APP_UID);
    assert!(j["warnings"].as_array().unwrap().is_empty(), "a graceful stop warns of nothing: {j}");
    // What the writer had committed when it was stopped (its final status, written on SIGTERM).
    let at_stop = {
        let s = c.status();
        assert!(c.running(), "the container runs again");
        s
    };
    c.wait_writing_past(at_stop["last_seq"].as_i64().unwrap());
    assert!(manifest_paths(&j).iter().all(|p| !p.ends_with("-wal") && !p.ends_with("-shm")), "{j}");

    let restored = restored_seq(&env, j["archive"].as_str().unwrap(), "cold");
    // Every transaction committed before the stop is in the archive.
    let stopped_status: Value =
        serde_json::from_str(&std::fs::read_to_string(c.status_path()).unwrap()).unwrap();
    assert!(restored["last_seq"].as_i64().unwrap() >= 50);
    assert!(restored["last_seq"].as_i64().unwrap() <= stopped_status["last_seq"].as_i64().unwrap());
    // The state directory's journal is gone once the container runs again.
    assert!(journals(&env.path("state")).is_empty(), "journal left: {:?}", journals(&env.path("state")));
}

/// SIGKILL leaves committed transactions in the WAL only; the archive must hold them all, and
/// a container that was not running stays stopped.
#[test]
fn cold_backup_after_sigkill_folds_the_wal_and_leaves_the_container_stopped() {
    let env = Env::new();
    let c = Kf::start(&env, "killed", Spec { rate: 0, ..Spec::default() });
    c.wait_for(|s| s["last_seq"].as_i64().unwrap() >= 500);
    c.kill();
    let data = c.host_data();
    assert!(std::fs::metadata(data.join("keyfount.db-wal")).unwrap().len() > 0, "SIGKILL leaves WAL frames");
    let committed = check_db(&data.join("keyfount.db"), 0)["last_seq"].as_i64().unwrap();
    // What the database file holds without its WAL: a kill just after the writer restarted its
    // WAL (a checkpoint had put every frame into the file) leaves no committed frame to fold.
    let alone = env.path("file-alone");
    std::fs::create_dir_all(&alone).unwrap();
    std::fs::copy(data.join("keyfount.db"), alone.join("keyfount.db")).unwrap();
    let in_file = check_db(&alone.join("keyfount.db"), 0)["last_seq"].as_i64().unwrap();
    let before = owners(&data);

    let out = env.path("backups");
    let r = kf(&env, &["backup", "--cold", "--container", &c.name, "--out", out.to_str().unwrap(), "--json"]);
    r.ok();
    let j = r.json();
    assert!(j["downtime_ms"].is_null(), "nothing was stopped, so there was no downtime: {j}");
    if in_file < committed {
        assert!(j["wal_frames_folded"].as_u64().unwrap() > 0, "{j}");
        assert!(r.stderr.contains("unclean stop"), "{}", r.stderr);
    } else {
        eprintln!("the kill came just after a WAL restart: no committed frame was left to fold");
    }
    assert_eq!(manifest_paths(&j), ["data/keyfount.db"]);
    assert!(!c.running(), "a container that was stopped stays stopped");
    assert_eq!(
        restored_seq(&env, j["archive"].as_str().unwrap(), "killed")["last_seq"].as_i64().unwrap(),
        committed
    );
    // Files kfadmin touched keep their owner: nothing in the volume is root's.
    for (name, (uid, _, _)) in owners(&data) {
        assert_eq!(uid, APP_UID, "{name} is owned by {uid} (before: {before:?})");
    }
}

#[test]
fn an_app_that_ignores_sigterm_is_killed_after_the_stop_timeout_and_the_report_warns() {
    let env = Env::new();
    let c = Kf::start(&env, "stubborn", Spec { ignore_sigterm: true, rate: 200, ..Spec::default() });
    c.wait_for(|s| s["last_seq"].as_i64().unwrap() >= 20);
    let out = env.path("backups");
    let t = Instant::now();
    let r = kf(
        &env,
        &[
            "backup",
            "--cold",
            "--container",
            &c.name,
            "--stop-timeout",
            "2",
            "--out",
            out.to_str().unwrap(),
            "--json",
        ],
    );
    r.ok();
    assert!(t.elapsed() >= Duration::from_secs(2), "the stop timeout applies");
    let j = r.json();
    assert_eq!(j["stop"]["exit_code"], 137);
    let w = j["warnings"].as_array().unwrap();
    assert!(w.iter().any(|w| w.as_str().unwrap().contains("was killed")), "{j}");
    assert!(c.running());
    // The killed app's WAL was folded in: the archive holds what it had committed.
    assert!(
        restored_seq(&env, j["archive"].as_str().unwrap(), "stubborn")["last_seq"].as_i64().unwrap() >= 20
    );
}

#[test]
fn a_full_output_directory_mid_backup_leaves_the_container_running() {
    assert!(is_root());
    let env = Env::new();
    let c = Kf::start(&env, "full", Spec { init_mb: 16, ..Spec::default() });
    let fs = Tmpfs::mount(&env.path("small"), "6m", false);
    let r = kf(&env, &["backup", "--cold", "--container", &c.name, "--out", fs.dir.to_str().unwrap()]);
    r.code(1).stderr_has("full");
    assert!(c.running(), "the container must be running again");
    assert!(ls(&fs.dir).is_empty(), "left behind: {:?}", ls(&fs.dir));
    assert!(journals(&env.path("state")).is_empty());
}

/// Start `kfadmin backup --cold` on `c`, wait until the container is down (or 30 s), send
/// `signal` to kfadmin and return what it printed. The window is short (the copy aside), so
/// callers retry when the container is already running again.
fn signal_while_down(c: &Kf, out: &std::path::Path, state: &std::path::Path, signal: i32) -> Run {
    let started = c.started_at();
    let child = std::process::Command::new(kfadmin_bin())
        .args(["backup", "--cold", "--container", &c.name, "--out", out.to_str().unwrap()])
        .env("KFADMIN_STATE_DIR", state)
        // The journal, the second line (the guardian: tests/integration/guardian.rs).
        .env("KFADMIN_TEST_NO_GUARDIAN", "1")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while c.running() && c.started_at() == started && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, signal) };
    child.wait_with_output().unwrap().into()
}

/// Ctrl-C while the container is stopped: kfadmin starts it again and exits 130.
#[test]
fn ctrl_c_during_a_cold_backup_starts_the_container_again() {
    let env = Env::new();
    let c = Kf::start(&env, "ctrlc", Spec { init_mb: 200, ..Spec::default() });
    let out = env.path("backups");
    let state = env.path("state");
    // Retry until the signal lands while the container is down (the window is the copy).
    for attempt in 0..5 {
        let run = signal_while_down(&c, &out, &state, libc::SIGINT);
        assert!(c.running(), "attempt {attempt}: the container was left stopped\n{}", run.stderr);
        if run.code == 130 {
            run.stderr_has("interrupted");
            assert!(
                ls(&out).iter().all(|n| !n.ends_with(".tar.gz")),
                "no archive after Ctrl-C: {:?}",
                ls(&out)
            );
            assert!(
                ls(&out).iter().all(|n| !n.starts_with(".kfadmin-staging")),
                "staging left: {:?}",
                ls(&out)
            );
            assert!(journals(&state).is_empty());
            return;
        }
        run.ok(); // the signal came too late: the backup finished; try again
        for n in ls(&out) {
            std::fs::remove_file(out.join(n)).unwrap();
        }
    }
    panic!("never managed to interrupt the backup while the container was down");
}

/// kfadmin SIGKILLed while the container is stopped: the next kfadmin run starts it again.
#[test]
fn a_killed_kfadmin_leaves_a_journal_and_the_next_run_starts_the_container() {
    let env = Env::new();
    let c = Kf::start(&env, "sigkill", Spec { init_mb: 200, ..Spec::default() });
    let out = env.path("backups");
    let state = env.path("state");
    for attempt in 0..5 {
        signal_while_down(&c, &out, &state, libc::SIGKILL);
        if c.running() {
            continue; // too late: kfadmin had started it already
        }
        assert_eq!(journals(&state).len(), 1, "attempt {attempt}: the journal records the stopped container");
        // The next kfadmin command on the container starts it again, and says so.
        let r = kf(&env, &["status", "--container", &c.name, "--backup-dir", out.to_str().unwrap()]);
        r.stderr_has("was killed before starting it again").stderr_has(&c.name);
        assert!(c.running(), "the next kfadmin run must start the container");
        assert!(journals(&state).is_empty());
        // Staging left by the killed run holds a private copy; it is 0700 and recognisable.
        for n in ls(&out) {
            if n.starts_with(".kfadmin-staging-") {
                assert_eq!(std::fs::metadata(out.join(&n)).unwrap().mode() & 0o777, 0o700);
            }
        }
        return;
    }
    panic!("never managed to kill kfadmin while the container was down");
}

#[test]
fn bind_mounts_and_compose_service_names() {
    assert!(is_root());
    let env = Env::new();
    let bind = env.path("bind-data");
    std::fs::create_dir(&bind).unwrap();
    std::os::unix::fs::chown(&bind, Some(APP_UID), Some(APP_UID)).unwrap();
    let labels = |project: &str| {
        vec![
            ("com.docker.compose.service".to_string(), format!("kf-{}", std::process::id())),
            ("com.docker.compose.project".to_string(), project.to_string()),
        ]
    };
    let a = Kf::start(
        &env,
        "bind",
        Spec { data: Data::Bind(bind.clone()), labels: labels("alpha"), ..Spec::default() },
    );
    let service = format!("kf-{}", std::process::id());
    let out = env.path("backups");
    // Found by its Compose service name; the bind mount is the data.
    let r =
        kf(&env, &["backup", "--cold", "--container", &service, "--out", out.to_str().unwrap(), "--json"]);
    r.ok();
    let j = r.json();
    assert_eq!(j["source"]["container"]["name"], a.name.as_str());
    assert_eq!(j["source"]["path"], bind.join("keyfount.db").to_str().unwrap());
    assert!(a.running());
    // A second project with the same service: ambiguous unless --compose-project narrows it.
    let b = Kf::start(&env, "other", Spec { labels: labels("beta"), ..Spec::default() });
    let r = kf(&env, &["backup", "--online", "--container", &service, "--out", out.to_str().unwrap()]);
    r.code(2).stderr_has("several containers").stderr_has("--compose-project");
    let r = kf(
        &env,
        &[
            "backup",
            "--online",
            "--container",
            &service,
            "--compose-project",
            "beta",
            "--out",
            out.to_str().unwrap(),
            "--json",
        ],
    );
    r.ok();
    assert_eq!(r.json()["source"]["container"]["name"], b.name.as_str());
}

/// An online backup of a running container never stops it, and no file in its volume
/// changes owner or mode.
#[test]
fn online_backup_of_a_running_container() {
    let env = Env::new();
    let c = Kf::start(&env, "online", Spec { rate: 300, ..Spec::default() });
    c.wait_for(|s| s["last_seq"].as_i64().unwrap() >= 30);
    let started = c.started_at();
    let data = c.host_data();
    let before = owners(&data);
    let seq = c.status()["last_seq"].as_i64().unwrap();
    let out = env.path("backups");
    let r =
        kf(&env, &["backup", "--online", "--container", &c.name, "--out", out.to_str().unwrap(), "--json"]);
    r.ok();
    let j = r.json();
    assert_eq!(j["mode"], "online");
    assert!(j["downtime_ms"].is_null());
    assert_eq!(c.started_at(), started, "the container was never restarted");
    assert!(c.running());
    let name =
        PathBuf::from(j["archive"].as_str().unwrap()).file_name().unwrap().to_string_lossy().into_owned();
    assert!(name.starts_with(&format!("{}-", c.name)), "{name}");
    let after = owners(&data);
    for (n, o) in &before {
        if let Some(a) = after.get(n) {
            assert_eq!(a, o, "{n} changed owner or mode");
        }
    }
    assert!(after.values().all(|(uid, _, _)| *uid == APP_UID), "{after:?}");
    assert!(
        restored_seq(&env, j["archive"].as_str().unwrap(), "online")["last_seq"].as_i64().unwrap() >= seq
    );
    c.wait_writing_past(seq + 50);
}

#[test]
fn restore_into_a_container_replaces_the_data_and_the_writer_resumes() {
    let env = Env::new();
    // With a healthcheck: kfadmin waits until the container reports healthy.
    let c = Kf::start(&env, "restore", Spec { rate: 200, healthcheck: true, ..Spec::default() });
    c.wait_for(|s| s["last_seq"].as_i64().unwrap() >= 20);
    let out = env.path("backups");
    let r =
        kf(&env, &["backup", "--online", "--container", &c.name, "--out", out.to_str().unwrap(), "--json"]);
    let archive = r.json()["archive"].as_str().unwrap().to_string();
    let backed_up = r.json()["database"]["tables"]["audit_log"].as_i64().unwrap();
    c.wait_for(|s| s["last_seq"].as_i64().unwrap() >= backed_up + 200);

    // Dry run: nothing stopped, nothing changed.
    let started = c.started_at();
    kf(&env, &["restore", &archive, "--container", &c.name, "--dry-run"])
        .ok()
        .stdout_has("pre-restore archive");
    assert_eq!(c.started_at(), started);

    let r = kf(
        &env,
        &[
            "restore",
            &archive,
            "--container",
            &c.name,
            "--out",
            out.to_str().unwrap(),
            "--yes",
            "--settle",
            "2",
            "--json",
        ],
    );
    r.ok();
    let j = r.json();
    assert_eq!(j["restored"], true);
    assert_eq!(j["up"], "healthy", "{j}");
    assert!(c.running());
    let data = c.host_data();
    let m = std::fs::metadata(data.join("keyfount.db")).unwrap();
    assert_eq!((m.uid(), m.gid(), m.mode() & 0o777), (APP_UID, APP_UID, 0o600));
    assert!(ls(&data).iter().all(|n| !n.starts_with(".kfadmin")), "{:?}", ls(&data));
    // The safety copy is a verified pre-restore archive holding the data that was replaced.
    let safety = j["safety_archive"].as_str().unwrap();
    assert!(safety.ends_with("-pre-restore.tar.gz"), "{safety}");
    kfadmin(["verify", safety]).ok();
    assert!(restored_seq(&env, safety, "safety")["last_seq"].as_i64().unwrap() >= backed_up + 200);
    // The writer resumed on the restored data: its sequence restarted from the backup's.
    c.wait_for(|s| {
        let (seq, commits) = (s["last_seq"].as_i64().unwrap(), s["commits"].as_i64().unwrap());
        s["done"] == false && commits > 0 && seq - commits == backed_up
    });
}

/// The restored database is refused by the server (another schema version): the previous
/// data goes back and the container runs on it again; exit 1.
#[test]
fn a_restore_the_container_cannot_start_on_is_rolled_back() {
    let env = Env::new();
    let c = Kf::start(&env, "rollback", Spec { rate: 100, ..Spec::default() });
    c.wait_for(|s| s["last_seq"].as_i64().unwrap() >= 20);
    // A valid backup of a database with an unsupported schema version.
    let odd = env.data_dir("odd", 1);
    let conn = rusqlite::Connection::open(odd.join("keyfount.db")).unwrap();
    conn.execute_batch("PRAGMA user_version=3").unwrap();
    drop(conn);
    let archive =
        backup(&odd.join("keyfount.db"), &env.path("odd-backups"))["archive"].as_str().unwrap().to_string();
    let out = env.path("backups");
    let r = kf(
        &env,
        &[
            "restore",
            &archive,
            "--container",
            &c.name,
            "--out",
            out.to_str().unwrap(),
            "--yes",
            "--force",
            "--settle",
            "3",
        ],
    );
    r.code(1).stderr_has("did not come up").stderr_has("previous data was put back");
    assert!(c.running(), "the container runs again on its previous data");
    let seq_before = c.status()["last_seq"].as_i64().unwrap();
    c.wait_writing_past(seq_before.max(20));
    let data = c.host_data();
    check_db(&data.join("keyfount.db"), 20);
}

#[test]
fn bad_container_input_stops_nothing() {
    let env = Env::new();
    let out = env.path("backups");
    // No such container.
    let r = kf(
        &env,
        &["backup", "--cold", "--container", "kfadmin-no-such-container", "--out", out.to_str().unwrap()],
    );
    r.code(2).stderr_has("kfadmin-no-such-container").stderr_has("docker ps -a");
    // A container without a mount for the database.
    let c = Kf::start(&env, "nomount", Spec { data: Data::None, ..Spec::default() });
    let started = c.started_at();
    let r = kf(&env, &["backup", "--cold", "--container", &c.name, "--out", out.to_str().unwrap()]);
    r.code(2).stderr_has("no volume or bind mount").stderr_has("/data/keyfount.db");
    assert_eq!(c.started_at(), started, "nothing was stopped");
    // The engine cannot be reached.
    let r = kfadmin_env(
        &[
            ("DOCKER_HOST", "unix:///nonexistent/docker.sock"),
            ("KFADMIN_STATE_DIR", env.path("state").to_str().unwrap()),
        ],
        ["backup", "--cold", "--container", &c.name, "--out", out.to_str().unwrap()],
    );
    r.code(1).stderr_has("cannot reach the Docker engine").stderr_has("unix:///nonexistent/docker.sock");
    assert!(c.running());
    // --cold without a container.
    kfadmin(["backup", "--cold", "--db", "/tmp/x.db"]).code(2).stderr_has("--container");
    assert!(!out.exists() || ls(&out).is_empty());
}

/// A container that is not running stays stopped through a restore; its data is replaced and
/// the replaced files are kept beside it.
#[test]
fn restore_into_a_stopped_container_leaves_it_stopped() {
    let env = Env::new();
    let c = Kf::start(&env, "stopped", Spec { rate: 200, ..Spec::default() });
    c.wait_for(|s| s["last_seq"].as_i64().unwrap() >= 20);
    let out = env.path("backups");
    let r =
        kf(&env, &["backup", "--online", "--container", &c.name, "--out", out.to_str().unwrap(), "--json"]);
    let archive = r.json()["archive"].as_str().unwrap().to_string();
    let backed_up = r.json()["database"]["tables"]["audit_log"].as_i64().unwrap();
    c.wait_for(|s| s["last_seq"].as_i64().unwrap() >= backed_up + 100);
    c.stop();
    c.wait_stopped();
    let r = kf(
        &env,
        &["restore", &archive, "--container", &c.name, "--out", out.to_str().unwrap(), "--yes", "--json"],
    );
    r.ok().stderr_has("left stopped");
    assert!(!c.running(), "a stopped container is not started by a restore");
    let data = c.host_data();
    assert_eq!(check_db(&data.join("keyfount.db"), 0)["last_seq"].as_i64().unwrap(), backed_up);
    let m = std::fs::metadata(data.join("keyfount.db")).unwrap();
    assert_eq!((m.uid(), m.mode() & 0o777), (APP_UID, 0o600));
    let j = r.json();
    assert!(j["safety_archive"].as_str().unwrap().ends_with("-pre-restore.tar.gz"));
    assert!(j["up"].is_null());
}

/// Restoring an encrypted backup into a container: the pre-restore archive of the replaced
/// data is encrypted too (recipients from the environment, as the backups use), so copying the
/// backup directory offsite never ships the server's keys in the clear.
#[test]
fn the_pre_restore_archive_of_an_encrypted_restore_is_encrypted() {
    let env = Env::new();
    let c = Kf::start(&env, "encsafety", Spec { rate: 100, ..Spec::default() });
    c.wait_for(|s| s["last_seq"].as_i64().unwrap() >= 10);
    let key = env.path("ops.key");
    assert!(std::process::Command::new("age-keygen").arg("-o").arg(&key).output().unwrap().status.success());
    let recipient = std::fs::read_to_string(&key)
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("# public key: ").map(String::from))
        .unwrap();
    let recipients = env.path("recipients.txt");
    std::fs::write(&recipients, format!("{recipient}\n")).unwrap();
    let out = env.path("backups");
    let envs = [("KFADMIN_STATE_DIR", env.path("state")), ("KFADMIN_RECIPIENTS_FILE", recipients.clone())];
    let envs: Vec<(&str, &str)> = envs.iter().map(|(k, v)| (*k, v.to_str().unwrap())).collect();
    let r = kfadmin_env(
        &envs,
        ["backup", "--online", "--container", &c.name, "--out", out.to_str().unwrap(), "--json"],
    );
    r.ok();
    let archive = r.json()["archive"].as_str().unwrap().to_string();
    assert!(archive.ends_with(".tar.gz.age"));
    // Restore with an identity; `envs` decides whether the recipients file is set.
    let restore = |envs: &[(&str, &str)], archive: &str, id: &std::path::Path| {
        let r = kfadmin_env(
            envs,
            [
                "restore",
                archive,
                "--container",
                &c.name,
                "--out",
                out.to_str().unwrap(),
                "--identity",
                id.to_str().unwrap(),
                "--yes",
                "--settle",
                "1",
                "--json",
            ],
        );
        r.ok();
        r
    };
    let safety = restore(&envs, &archive, &key).json()["safety_archive"].as_str().unwrap().to_string();
    assert!(safety.ends_with("-pre-restore.tar.gz.age"), "{safety}");
    let bytes = std::fs::read(&safety).unwrap();
    assert!(bytes.starts_with(b"age-encryption.org/v1\n"));
    kfadmin(["verify", "--identity", key.to_str().unwrap(), &safety]).ok();
    assert!(c.running());

    // Without recipients in the environment, the age identity's own public key is used.
    let state_only = &envs[..1];
    let safety = restore(state_only, &archive, &key).json()["safety_archive"].as_str().unwrap().to_string();
    assert!(safety.ends_with("-pre-restore.tar.gz.age"), "{safety}");
    kfadmin(["verify", "--identity", key.to_str().unwrap(), &safety]).ok();

    // With an SSH key alone there is no recipient to derive: a warning, and a plain safety copy.
    let ssh = env.path("id_ed25519");
    let st = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&ssh)
        .status()
        .unwrap();
    assert!(st.success());
    let pubkey = std::fs::read_to_string(ssh.with_extension("pub")).unwrap();
    let r = kf(
        &env,
        &[
            "backup",
            "--online",
            "--container",
            &c.name,
            "--out",
            out.to_str().unwrap(),
            "--encrypt-to",
            pubkey.trim(),
            "--json",
        ],
    );
    r.ok();
    let archive = r.json()["archive"].as_str().unwrap().to_string();
    let r = restore(state_only, &archive, &ssh);
    r.stderr_has("will not be");
    assert!(r.json()["safety_archive"].as_str().unwrap().ends_with("-pre-restore.tar.gz"));
}

/// kfadmin was killed while the container was down, and the container can no longer start
/// (its bind-mounted directory is gone): the next kfadmin run says so and exits 4, keeps the
/// journal, and a later run starts the container once it can.
#[test]
fn a_container_that_cannot_be_started_again_is_exit_4_until_it_can() {
    let env = Env::new();
    let c = Kf::start(&env, "nostart", Spec { init_mb: 200, ..Spec::default() });
    let out = env.path("backups");
    let state = env.path("state");
    for _attempt in 0..5 {
        signal_while_down(&c, &out, &state, libc::SIGKILL);
        if c.running() {
            continue;
        }
        // The container's /status bind source is now a file, not a directory: `docker start`
        // fails (a missing source would just be created again).
        let moved = c.status_dir.with_extension("away");
        std::fs::rename(&c.status_dir, &moved).unwrap();
        std::fs::write(&c.status_dir, b"not a directory").unwrap();
        let status = ["status", "--container", &c.name, "--backup-dir", out.to_str().unwrap()];
        let r = kf(&env, &status);
        r.code(4).stderr_has("cannot start it again").stderr_has(&format!("docker start {}", c.name));
        assert!(!c.running());
        assert_eq!(journals(&state).len(), 1, "the journal stays until the container runs again");
        // Once it can start, the next run does it.
        std::fs::remove_file(&c.status_dir).unwrap();
        std::fs::rename(&moved, &c.status_dir).unwrap();
        kf(&env, &status).stderr_has("kfadmin started it now");
        assert!(c.running());
        assert!(journals(&state).is_empty());
        return;
    }
    panic!("never managed to kill kfadmin while the container was down");
}
