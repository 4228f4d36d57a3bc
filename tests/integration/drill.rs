//! `kfadmin drill`: a throwaway copy of the live container booted on a backup, against the real
//! engine and the real writer. The live container must never notice.

use std::collections::HashMap;

use bollard::query_parameters::{ListContainersOptionsBuilder, ListVolumesOptionsBuilder};
use serde_json::Value;
use sha2::Digest;

use crate::dock::*;
use crate::util::*;

fn kf(env: &Env, args: &[&str]) -> Run {
    let state = env.path("state");
    kfadmin_env(&[("KFADMIN_STATE_DIR", state.to_str().unwrap())], args)
}

/// What the drills of live container `live` left in the engine: containers and volumes.
fn leftovers(live: &str) -> (Vec<String>, Vec<String>) {
    let d = docker();
    let filters = HashMap::from([("label", vec![format!("kfadmin.drill.container={live}")])]);
    let opts = ListContainersOptionsBuilder::default().all(true).filters(&filters).build();
    let containers = block(d.list_containers(Some(opts)))
        .unwrap()
        .into_iter()
        .flat_map(|c| c.names.unwrap_or_default())
        .collect();
    let opts = ListVolumesOptionsBuilder::default().filters(&filters).build();
    let volumes = block(d.list_volumes(Some(opts)))
        .unwrap()
        .volumes
        .unwrap_or_default()
        .into_iter()
        .map(|v| v.name)
        .collect();
    (containers, volumes)
}

fn assert_nothing_left(live: &str, env: &Env) {
    assert_eq!(leftovers(live), (vec![], vec![]), "the drill left something in the engine");
    assert_eq!(journals(&env.path("state")), Vec::<String>::new(), "a drill journal was left");
}

/// An online backup of the live container in `env/backups`; returns the directory.
fn backup(env: &Env, c: &Kf) -> String {
    let out = env.path("backups");
    kf(env, &["backup", "--online", "--container", &c.name, "--out", out.to_str().unwrap(), "--quiet"]).ok();
    out.to_str().unwrap().to_string()
}

fn restart_count(c: &Kf) -> i64 {
    c.inspect().restart_count.unwrap_or(0)
}

/// The running copy of `live`: its image, command and user, one new volume at /data owned as
/// the backup records it, no network, no port, no restart policy, labels that say what it is.
fn the_copy_is_isolated(live: &Kf) {
    use std::os::unix::fs::MetadataExt;
    let d = docker();
    let filters = HashMap::from([("label", vec![format!("kfadmin.drill.container={}", live.name)])]);
    let opts = ListContainersOptionsBuilder::default().all(true).filters(&filters).build();
    let found = block(d.list_containers(Some(opts))).unwrap();
    assert_eq!(found.len(), 1);
    let no_opts = None::<bollard::query_parameters::InspectContainerOptions>;
    let copy = block(d.inspect_container(found[0].id.as_deref().unwrap(), no_opts)).unwrap();
    let (li, cc) = (live.inspect(), copy.config.clone().unwrap());
    let lc = li.config.unwrap();
    assert_eq!(copy.image, li.image);
    assert_eq!((cc.cmd, cc.entrypoint, cc.user), (lc.cmd, lc.entrypoint, lc.user));
    let labels = cc.labels.unwrap();
    assert_eq!(labels.get("kfadmin.drill").map(String::as_str), Some("1"));
    assert!(labels.get("kfadmin.drill.archive").is_some_and(|a| a.ends_with("-online.tar.gz")));
    let host = copy.host_config.unwrap();
    assert_eq!(host.network_mode.as_deref(), Some("none"));
    assert!(host.port_bindings.unwrap_or_default().is_empty());
    let policy = host.restart_policy.and_then(|p| p.name).map(|n| n.to_string()).unwrap_or_default();
    assert!(policy.is_empty() || policy == "no", "restart policy {policy}");
    let mounts = copy.mounts.unwrap();
    assert_eq!(mounts.len(), 1, "only the drill's own volume: {mounts:?}");
    let m = &mounts[0];
    assert_eq!(m.destination.as_deref(), Some("/data"));
    assert_ne!(m.name, live.volume, "the live volume is never mounted");
    assert!(m.name.as_deref().unwrap().starts_with(&format!("{}-kfadmin-drill-", live.name)));
    // A volume filled from the host: kfadmin gave its root and the database their owner and mode.
    let root = std::path::PathBuf::from(m.source.clone().unwrap());
    for (p, mode) in [(root.clone(), 0o700), (root.join("keyfount.db"), 0o600)] {
        let meta = std::fs::metadata(&p).unwrap();
        assert_eq!(
            (meta.uid(), meta.gid(), meta.mode() & 0o7777),
            (APP_UID, APP_UID, mode),
            "{}",
            p.display()
        );
    }
    assert_eq!(copy.state.unwrap().running, Some(true));
}

#[test]
fn a_good_backup_passes_while_the_live_server_keeps_writing() {
    let env = Env::new();
    let c = Kf::start(&env, "drill-ok", Spec { init_mb: 2, rate: 50, ..Spec::default() });
    let out = backup(&env, &c);
    let started_at = c.started_at();
    // Before any drill, an overdue drill is a problem for status.
    kf(&env, &["status", "--container", &c.name, "--backup-dir", &out, "--max-drill-age", "8d"])
        .code(1)
        .stdout_has("no restore drill");
    let metrics = env.path("kfadmin.prom");
    write_file(&metrics, b"# HELP kfadmin_backup_size_bytes x\n# TYPE kfadmin_backup_size_bytes gauge\nkfadmin_backup_size_bytes{name=\"kf\",mode=\"online\"} 1234\n");
    let seq_before = c.status()["last_seq"].as_i64().unwrap();
    let m = metrics.to_str().unwrap();
    let args =
        ["drill", "--container", &c.name, "--out", &out, "--settle", "2", "--metrics-file", m, "--json"];
    let mut paused = Paused::spawn(&env, "drill-up", &args);
    paused.expect("drill-up");
    // While the copy is up: what it is, and what it is not.
    the_copy_is_isolated(&c);
    paused.go("drill-up");
    let r = paused.finish();
    r.ok();
    let j = r.json();
    assert_eq!(j["passed"], true, "{j}");
    assert_eq!(j["chosen"], "newest that verifies");
    assert_eq!(j["up"], "running for 2 s");
    let opened = j["opened"].to_string();
    assert!(opened.contains("-wal") && opened.contains("wrote to the database"), "{opened}");
    assert_eq!(j["after"]["integrity"], serde_json::json!([]));
    assert_eq!(j["after"]["database"]["schema_version"], 7);
    assert!(j["drill_container"].as_str().unwrap().starts_with(&format!("{}-kfadmin-drill-", c.name)));
    assert_eq!(j["left_out"].as_array().unwrap().len(), 1, "the /status bind mount is not given: {j}");
    // The live server was never stopped or restarted, and kept committing throughout.
    c.wait_writing_past(seq_before);
    assert_eq!(c.started_at(), started_at);
    assert_eq!(restart_count(&c), 0);
    assert!(c.running());
    assert_nothing_left(&c.name, &env);
    // The drill's metrics join the backup's; status knows the drill passed.
    let text = std::fs::read_to_string(&metrics).unwrap();
    assert!(text.contains("kfadmin_backup_size_bytes{name=\"kf\",mode=\"online\"} 1234"), "{text}");
    assert!(text.contains(&format!("kfadmin_drill_last_exit_code{{name=\"{}\"}} 0", c.name)), "{text}");
    assert!(text.contains("kfadmin_drill_last_success_timestamp_seconds{"), "{text}");
    assert!(text.contains("kfadmin_drill_duration_seconds{"), "{text}");
    let s = kf(
        &env,
        &["status", "--container", &c.name, "--backup-dir", &out, "--max-drill-age", "8d", "--json"],
    );
    s.ok();
    assert!(s.json()["drill"]["last"]["archive"].as_str().unwrap().ends_with("-online.tar.gz"));
    assert_eq!(s.json()["drill"]["last"]["archive_name"], c.name.as_str());
    assert!(s.json()["drill"]["last"]["archive_age_seconds"].as_u64().unwrap() < 3600);
}

#[test]
fn a_drill_is_of_the_newest_backup_or_fails_and_status_counts_only_recent_backups_of_this_server() {
    let env = Env::new();
    let c = Kf::start(&env, "drill-newest", Spec { init_mb: 1, rate: 20, ..Spec::default() });
    let out = backup(&env, &c);
    // The newest backup is encrypted, and no key is given: no older plaintext one instead.
    let key = env.path("drill.key");
    let gen = std::process::Command::new("age-keygen").arg("-o").arg(&key).output().unwrap();
    assert!(gen.status.success(), "{gen:?}");
    let text = std::fs::read_to_string(&key).unwrap();
    let recipient = text.lines().find_map(|l| l.strip_prefix("# public key: ")).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let args =
        ["backup", "--online", "--container", &c.name, "--out", &out, "--encrypt-to", recipient, "--quiet"];
    kf(&env, &args).ok();
    let r = kf(&env, &["drill", "--container", &c.name, "--out", &out, "--settle", "1"]);
    r.code(2).stderr_has("cannot open").stderr_has("--identity");
    assert!(!r.stdout.contains("passed"), "{}", r.stdout);
    assert_nothing_left(&c.name, &env);
    let s = kf(
        &env,
        &["status", "--container", &c.name, "--backup-dir", &out, "--max-drill-age", "1h", "--json"],
    );
    assert_eq!(s.json()["drill"]["last"], Value::Null, "nothing counts as drilled: {}", s.stdout);
    // A backup of another server, drilled by hand, passes, but does not count for this one.
    let name = format!("{}-other", c.name);
    let archive = named_host_archive(&env, &name, "other", "SELECT 1");
    kf(&env, &["drill", archive.to_str().unwrap(), "--container", &c.name, "--settle", "1"]).ok();
    let s = kf(
        &env,
        &["status", "--container", &c.name, "--backup-dir", &out, "--max-drill-age", "1h", "--json"],
    );
    s.code(1);
    let j = s.json();
    assert!(
        j["problems"].to_string().contains(&format!("was of a backup of {name}, not of {}", c.name)),
        "{j}"
    );
    // With the key, the newest is drilled and counts.
    let k = key.to_str().unwrap();
    let r = kf(
        &env,
        &["drill", "--container", &c.name, "--out", &out, "--settle", "1", "--identity", k, "--json"],
    );
    r.ok();
    assert!(r.json()["archive"].as_str().unwrap().ends_with(".tar.gz.age"), "{}", r.stdout);
    let s = kf(
        &env,
        &["status", "--container", &c.name, "--backup-dir", &out, "--max-drill-age", "1h", "--json"],
    );
    assert!(!s.json()["problems"].to_string().contains("drill"), "{}", s.stdout);
    assert_nothing_left(&c.name, &env);
}

#[test]
fn a_backup_the_server_rejects_exits_3_with_its_own_error() {
    let env = Env::new();
    let c = Kf::start(&env, "drill-rejects", Spec { init_mb: 1, rate: 20, ..Spec::default() });
    // A database SQLite calls healthy, from a release this server refuses (schema version 3).
    let archive = host_archive(&env, &c, "PRAGMA user_version = 3");
    kf(&env, &["verify", archive.to_str().unwrap()]).ok();
    // A damaged copy of it is refused before anything is created (exit 3, no copy booted).
    let damaged = env.path("damaged-20260101T000000Z-online.tar.gz");
    let mut bytes = std::fs::read(&archive).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&damaged, bytes).unwrap();
    let r = kf(&env, &["drill", damaged.to_str().unwrap(), "--container", &c.name, "--json"]);
    r.code(3);
    let j = r.json();
    assert_eq!(j["reason"], "the backup fails verification: refusing to drill a backup that is not whole");
    assert_eq!(j["verification"][0]["ok"], false);
    assert_eq!(j["drill_container"], Value::Null);
    assert_nothing_left(&c.name, &env);
    let started_at = c.started_at();
    let (url, pings) = crate::monitor::ping_server();
    let archive_arg = archive.to_str().unwrap();
    let r = kf(&env, &["drill", archive_arg, "--container", &c.name, "--settle", "2", "--ping-url", &url]);
    r.code(3)
        .stdout_has("Drill FAILED")
        .stdout_has("exit code 3")
        .stdout_has("has schema version 3; this server runs version 7 only");
    // The monitor hears the failure, with the server's own words.
    let got = pings.lock().unwrap().clone();
    assert_eq!(got.len(), 2, "{got:?}");
    assert!(got[0].starts_with("/ping/abc-123/start"), "{got:?}");
    assert!(got[1].starts_with("/ping/abc-123/fail") && got[1].contains("has schema version 3"), "{got:?}");
    let r =
        kf(&env, &["drill", archive.to_str().unwrap(), "--container", &c.name, "--settle", "2", "--json"]);
    r.code(3);
    let j = r.json();
    assert_eq!(
        (j["passed"].clone(), j["ok"].clone(), j["exit_code"].clone()),
        (Value::Bool(false), Value::Bool(false), 3.into())
    );
    assert!(j["reason"].as_str().unwrap().contains("did not come up"), "{j}");
    let logs = j["logs"].to_string();
    assert!(logs.contains("has schema version 3"), "{logs}");
    assert_eq!(c.started_at(), started_at);
    assert!(c.running());
    assert_nothing_left(&c.name, &env);
}

/// An online backup, named as `c`'s, of a database made on the host by the writer's `init`
/// and then changed by `sql`; returns the archive.
fn host_archive(env: &Env, c: &Kf, sql: &str) -> std::path::PathBuf {
    named_host_archive(env, &c.name, "old", sql)
}

/// An online backup named `name` (in `env/<dir>-backups`) of a database made on the host by the
/// writer's `init` in `env/<dir>` and then changed by `sql` (owned by the server's user, as its
/// own database would be); returns the archive.
fn named_host_archive(env: &Env, name: &str, dir: &str, sql: &str) -> std::path::PathBuf {
    let db = env.path(&format!("{dir}/keyfount.db"));
    std::fs::create_dir_all(db.parent().unwrap()).unwrap();
    let init = std::process::Command::new(sim_bin())
        .args(["init", "--db", db.to_str().unwrap(), "--size-mb", "1"])
        .output()
        .unwrap();
    assert!(init.status.success(), "{init:?}");
    rusqlite::Connection::open(&db).unwrap().execute_batch(sql).unwrap();
    std::os::unix::fs::chown(&db, Some(APP_UID), Some(APP_UID)).unwrap();
    let out = env.path(&format!("{dir}-backups"));
    let out = out.to_str().unwrap();
    kf(env, &["backup", "--online", "--db", db.to_str().unwrap(), "--name", name, "--out", out, "--quiet"])
        .ok();
    std::fs::read_dir(out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().ends_with(".tar.gz"))
        .unwrap()
}

#[test]
fn a_server_that_starts_on_other_data_fails_the_drill() {
    let env = Env::new();
    let c = Kf::start(&env, "drill-discards", Spec { init_mb: 1, rate: 20, ..Spec::default() });
    // The server moves this backup's database aside and starts, healthy, on a new one of the
    // same schema (a handful of rows): the backup's data never served a request.
    let archive = host_archive(&env, &c, "INSERT INTO meta(key, value) VALUES ('test.discard_on_start', 1)");
    let r =
        kf(&env, &["drill", archive.to_str().unwrap(), "--container", &c.name, "--settle", "2", "--json"]);
    r.code(3);
    let j = r.json();
    assert_eq!((j["passed"].clone(), j["ok"].clone()), (Value::Bool(false), Value::Bool(false)), "{j}");
    let reason = j["reason"].as_str().unwrap();
    assert!(reason.contains("not on the backup's data"), "{reason}");
    assert!(reason.contains("table users has 2 rows (50 in the backup)"), "{reason}");
    // Nothing recorded as a passed drill.
    let r = kf(&env, &["status", "--container", &c.name, "--max-drill-age", "1h", "--json"]);
    let j = r.json();
    assert_eq!(j["drill"]["last"], Value::Null, "{j}");
    assert!(j["problems"].to_string().contains("no restore drill"), "{j}");
    assert_nothing_left(&c.name, &env);
}

/// Beside the only archive in `out`, a copy dated a minute later whose bytes were damaged (with
/// a sidecar of the copy as written): the newest backup, and one that fails verification.
/// Returns the path of the good one.
fn newer_corrupt_copy(out: &std::path::Path) -> String {
    let good = std::fs::read_dir(out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().ends_with(".tar.gz"))
        .unwrap();
    let file_name = good.file_name().unwrap().to_str().unwrap();
    let (name, unix, _) = kfadmin::archive::catalog::parse_name(file_name).unwrap();
    let later = std::time::UNIX_EPOCH + std::time::Duration::from_secs(unix + 60);
    let stamp = humantime::format_rfc3339_seconds(later).to_string().replace(['-', ':'], "");
    let bad = out.join(format!("{name}-{stamp}-online.tar.gz"));
    let mut bytes = std::fs::read(&good).unwrap();
    std::fs::write(bad.with_extension("gz.sha256"), format!("{:x}  x\n", sha2::Sha256::digest(&bytes)))
        .unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&bad, bytes).unwrap();
    good.to_str().unwrap().to_string()
}

#[test]
fn a_healthcheck_that_never_turns_healthy_exits_3_within_the_timeout() {
    let env = Env::new();
    // The first probe would run an hour after the start: "starting" until then.
    let spec = Spec {
        init_mb: 1,
        rate: 20,
        healthcheck: true,
        health_interval_ms: Some(3_600_000),
        ..Spec::default()
    };
    let c = Kf::start(&env, "drill-health", spec);
    let out = backup(&env, &c);
    let good = newer_corrupt_copy(std::path::Path::new(&out));
    let r = kf(&env, &["drill", "--container", &c.name, "--out", &out, "--health-timeout", "2", "--json"]);
    r.code(3);
    let j = r.json();
    assert_eq!(j["passed"], false);
    // The newest backup fails verification: it is named and passed over for the one before.
    assert_eq!(j["archive"].as_str(), Some(good.as_str()));
    let verified: Vec<bool> = j["verification"].as_array().unwrap().iter().map(|v| v["ok"] == true).collect();
    assert_eq!(verified, vec![false, true]);
    r.stderr_has("fails verification");
    let reason = j["reason"].as_str().unwrap();
    assert!(reason.contains("did not report healthy within --health-timeout 2 s"), "{reason}");
    assert!(j["logs"].as_array().is_some_and(|l| !l.is_empty()), "the server's log is reported: {j}");
    assert_nothing_left(&c.name, &env);
}

#[test]
fn a_drill_interrupted_or_killed_leaves_nothing_once_kfadmin_runs_again() {
    let env = Env::new();
    let c = Kf::start(&env, "drill-killed", Spec { init_mb: 1, rate: 20, ..Spec::default() });
    let out = backup(&env, &c);
    let state = env.path("state");
    let state = state.to_str().unwrap();
    let drill = |fault: &str| {
        kfadmin_env(
            // No guardian (tests/integration/guardian.rs): the journal, the second line.
            &[("KFADMIN_STATE_DIR", state), ("KFADMIN_TEST_FAULT", fault), ("KFADMIN_TEST_NO_GUARDIAN", "1")],
            ["drill", "--container", &c.name, "--out", &out, "--settle", "2"],
        )
    };
    // SIGTERM (systemd stopping the timer's unit) or Ctrl-C: cleaned up at once, exit 130.
    for fault in ["drill.filled:term", "drill.started:term", "drill.up:int"] {
        drill(fault).code(130);
        assert_nothing_left(&c.name, &env);
    }
    // SIGKILL with only the volume made, the copy created, running, stopped: what exists is
    // left, and the journal says so.
    for (point, copies) in
        [("drill.volume", 0), ("drill.created", 1), ("drill.started", 1), ("drill.stopped", 1)]
    {
        let r = drill(&format!("{point}:kill"));
        assert_eq!(r.code, -1, "killed by SIGKILL at {point}: {}", r.stderr);
        let (containers, volumes) = leftovers(&c.name);
        assert_eq!((containers.len(), volumes.len()), (copies, 1), "{point}: {containers:?} {volumes:?}");
        assert_eq!(journals(&env.path("state")).len(), 1, "{point}");
        // A command that does not touch containers names them and leaves them.
        kf(&env, &["list", &out]).ok().stderr_has("was killed during a drill").stderr_has(&volumes[0]);
        assert_eq!(leftovers(&c.name).1.len(), 1);
        // Any command on a container removes them.
        kf(&env, &["status", "--container", &c.name, "--backup-dir", &out])
            .ok()
            .stderr_has("kfadmin removed what it left");
        assert_nothing_left(&c.name, &env);
    }
    assert!(c.running());
}

/// A container removed (by force) when dropped.
struct Gone(String);

impl Drop for Gone {
    fn drop(&mut self) {
        let opts = bollard::query_parameters::RemoveContainerOptionsBuilder::default().force(true).build();
        let _ = block(docker().remove_container(&self.0, Some(opts)));
    }
}

#[test]
fn a_container_whose_image_is_gone_cannot_be_drilled_exit_1() {
    let env = Env::new();
    let d = docker();
    // An image of its own (the test image plus a label), so that removing it touches no other test.
    let unique = env.dir.path().file_name().unwrap().to_string_lossy().to_lowercase().replace('_', "-");
    let tag =
        derived_image(&format!("kfadmin-test-gone:{unique}"), &format!("LABEL kfadmin.test.gone={unique}"));
    let name = format!("kfadmin-test-{}-{unique}", std::process::id());
    let data = env.path("data");
    std::fs::create_dir_all(&data).unwrap();
    let body = bollard::models::ContainerCreateBody {
        image: Some(tag.clone()),
        cmd: Some(vec!["run".into(), "--db".into(), "/data/keyfount.db".into()]),
        host_config: Some(bollard::models::HostConfig {
            binds: Some(vec![format!("{}:/data", data.display())]),
            network_mode: Some("none".into()),
            ..Default::default()
        }),
        ..Default::default()
    };
    let opts = bollard::query_parameters::CreateContainerOptionsBuilder::default().name(&name).build();
    block(d.create_container(Some(opts), body)).unwrap();
    let _gone = Gone(name.clone());
    let opts = bollard::query_parameters::RemoveImageOptionsBuilder::default().force(true).build();
    block(d.remove_image(&tag, Some(opts), None)).unwrap();
    // A good backup of it.
    let db = data.join("keyfount.db");
    let init = std::process::Command::new(sim_bin())
        .args(["init", "--db", db.to_str().unwrap(), "--size-mb", "1"])
        .output()
        .unwrap();
    assert!(init.status.success(), "{init:?}");
    let out = env.path("backups");
    let out = out.to_str().unwrap();
    kf(&env, &["backup", "--online", "--container", &name, "--out", out, "--quiet"]).ok();
    let r = kf(&env, &["drill", "--container", &name, "--out", out, "--json"]);
    // Said at once, before any archive is verified, and without a hint that cannot help.
    r.code(1).stderr_has("is no longer in the Docker engine").stderr_has("pulling or building");
    assert!(r.stderr.contains("cannot help") && !r.stderr.contains("Verifying"), "{}", r.stderr);
    assert_eq!(r.json()["error"]["kind"], "failed");
    assert_nothing_left(&name, &env);
}

#[test]
fn a_drill_takes_the_newest_offsite_copy_that_verifies_when_the_local_disk_is_gone() {
    use crate::s3::{kf_s3, Moto};
    let env = Env::new();
    let moto = Moto::shared();
    let bucket = moto.bucket("drill");
    let c = Kf::start(&env, "drill-s3", Spec { init_mb: 2, rate: 50, ..Spec::default() });
    let out = env.path("backups");
    let to = format!("s3://{bucket}/host1");
    let backup = ["backup", "--online", "--container", &c.name, "-r", out.to_str().unwrap()];
    let j = kf_s3(
        &env,
        &moto.endpoint(),
        &[],
        &[&backup[..], &["--to", &to, "--plaintext-offsite", "--json"]].concat(),
    )
    .ok()
    .json();
    let url = j["offsite"][0]["url"].as_str().unwrap().to_string();
    // A newer copy in the bucket whose bytes were damaged (its sidecar is of the copy as
    // written): the newest backup there, and one that fails verification.
    let good = newer_corrupt_copy(&out);
    let good_name = std::path::Path::new(&good).file_name().unwrap().to_str().unwrap().to_string();
    let mut bad_url = String::new();
    for name in ls(&out).into_iter().filter(|n| !n.starts_with(&good_name)) {
        moto.put(&bucket, &format!("host1/{name}"), &out.join(&name));
        if name.ends_with(".tar.gz") {
            bad_url = format!("{to}/{name}");
        }
    }
    // The local disk is gone: the drill comes from the bucket alone.
    std::fs::remove_dir_all(&out).unwrap();
    let seq_before = c.status()["last_seq"].as_i64().unwrap();
    let r = kf_s3(
        &env,
        &moto.endpoint(),
        &[],
        &["drill", "--container", &c.name, "--repo", &to, "--settle", "2", "--json"],
    );
    r.ok().stderr_has(&format!("{bad_url} fails verification"));
    let j = r.json();
    assert_eq!(
        (j["passed"].clone(), j["chosen"].clone()),
        (Value::Bool(true), "newest that verifies".into()),
        "{j}"
    );
    assert_eq!(j["archive"], url.as_str());
    let checked: Vec<(String, bool)> = j["verification"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| (v["archive"].as_str().unwrap().to_string(), v["ok"] == true))
        .collect();
    assert_eq!(checked, vec![(bad_url.clone(), false), (url.clone(), true)]);
    // Nothing of the drill, and no download, is left; the live server wrote on throughout.
    assert_nothing_left(&c.name, &env);
    let staging = env.path("state").join("staging");
    let left: Vec<String> = ls(&staging).into_iter().filter(|n| !n.ends_with(".lock")).collect();
    assert_eq!(
        left,
        Vec::<String>::new(),
        "downloads or unpacked archives were left in {}",
        staging.display()
    );
    c.wait_writing_past(seq_before);
    // One archive by its URL; one that is not there is bad input, named.
    let j = kf_s3(
        &env,
        &moto.endpoint(),
        &[],
        &["drill", &url, "--container", &c.name, "--settle", "2", "--json"],
    )
    .ok()
    .json();
    assert_eq!((j["passed"].clone(), j["chosen"].clone()), (Value::Bool(true), "given".into()), "{j}");
    let missing = format!("{to}/drill-s3-20200101T000000Z-online.tar.gz");
    kf_s3(&env, &moto.endpoint(), &[], &["drill", &missing, "--container", &c.name])
        .code(2)
        .stderr_has(&format!("archive {missing} does not exist"));
    assert_nothing_left(&c.name, &env);
}

#[test]
fn the_copy_keeps_the_servers_limits_and_never_passes_for_the_compose_service() {
    let env = Env::new();
    let unique = env.dir.path().file_name().unwrap().to_string_lossy().to_lowercase().replace('_', "-");
    let service = format!("svc-{unique}");
    // An image built by Compose carries its labels; a proxy routes by traefik labels.
    let tag = derived_image(
        &format!("kfadmin-test-labels:{unique}"),
        &format!(
            "LABEL com.docker.compose.service={service} com.docker.compose.project=kfproj traefik.enable=true traefik.http.routers.kf.rule=Host(`kf.example`)"
        ),
    );
    let host = bollard::models::HostConfig {
        memory: Some(256 << 20),
        nano_cpus: Some(500_000_000),
        pids_limit: Some(64),
        ulimits: Some(vec![bollard::models::ResourcesUlimits {
            name: Some("nofile".into()),
            soft: Some(1024),
            hard: Some(2048),
        }]),
        readonly_rootfs: Some(true),
        tmpfs: Some([("/tmp".to_string(), "size=16m".to_string())].into()),
        cap_drop: Some(vec!["ALL".into()]),
        security_opt: Some(vec!["no-new-privileges".into()]),
        log_config: Some(bollard::models::HostConfigLogConfig {
            typ: Some("json-file".into()),
            config: Some([("max-size".to_string(), "1m".to_string())].into()),
        }),
        ..Default::default()
    };
    let labels = vec![("com.docker.compose.service".to_string(), service.clone())];
    let spec = Spec { init_mb: 1, rate: 20, image: Some(tag.clone()), host, labels, ..Spec::default() };
    let c = Kf::start(&env, "drill-limits", spec);
    let out = backup(&env, &c);
    let args = ["drill", "--container", &service, "--out", &out, "--settle", "1", "--json"];
    let mut paused = Paused::spawn(&env, "drill-up", &args);
    paused.expect("drill-up");
    // While the copy runs: a nightly backup by service name still finds the one server.
    kf(&env, &["backup", "--online", "--container", &service, "--out", &out, "--quiet"]).ok();
    let filters = HashMap::from([("label", vec![format!("kfadmin.drill.container={}", c.name)])]);
    let opts = ListContainersOptionsBuilder::default().all(true).filters(&filters).build();
    let found = block(docker().list_containers(Some(opts))).unwrap();
    let no_opts = None::<bollard::query_parameters::InspectContainerOptions>;
    let copy = block(docker().inspect_container(found[0].id.as_deref().unwrap(), no_opts)).unwrap();
    let labels = copy.config.unwrap().labels.unwrap();
    assert_eq!(labels.get("com.docker.compose.service").map(String::as_str), Some(""), "{labels:?}");
    assert_eq!(labels.get("com.docker.compose.project").map(String::as_str), Some(""), "{labels:?}");
    assert_eq!(labels.get("traefik.enable").map(String::as_str), Some("false"), "{labels:?}");
    assert_eq!(labels.get("traefik.http.routers.kf.rule").map(String::as_str), Some(""), "{labels:?}");
    let (h, live) = (copy.host_config.unwrap(), c.inspect().host_config.unwrap());
    assert_eq!((h.memory, h.nano_cpus, h.pids_limit), (Some(256 << 20), Some(500_000_000), Some(64)));
    assert_eq!(
        (h.ulimits.clone(), h.readonly_rootfs, h.tmpfs.clone()),
        (live.ulimits, Some(true), live.tmpfs)
    );
    assert_eq!((h.cap_drop.clone(), h.security_opt.clone()), (live.cap_drop, live.security_opt));
    assert_eq!(h.log_config.and_then(|l| l.config), live.log_config.and_then(|l| l.config));
    // Still isolated: no network, no binds, not privileged.
    assert_eq!(h.network_mode.as_deref(), Some("none"));
    assert!(h.binds.unwrap_or_default().is_empty());
    assert_ne!(h.privileged, Some(true));
    paused.go("drill-up");
    let r = paused.finish();
    r.ok();
    assert_eq!(r.json()["passed"], true);
    assert_nothing_left(&c.name, &env);
    let opts = bollard::query_parameters::RemoveImageOptionsBuilder::default().force(true).build();
    drop(c);
    let _ = block(docker().remove_image(&tag, Some(opts), None));
}

/// Issue 15: kfadmin SIGKILLed while its drill's copy runs, and no other command: its guardian
/// removes the copy and its volume within seconds.
#[test]
fn a_drill_killed_is_cleaned_up_by_its_guardian_with_no_other_command() {
    let env = Env::new();
    let c = Kf::start(&env, "drill-guarded", Spec { init_mb: 1, rate: 20, ..Spec::default() });
    let out = backup(&env, &c);
    let mut run = Paused::spawn(&env, "drill-up", &["drill", "--container", &c.name, "--out", &out]);
    run.expect("drill-up");
    let pid = run.pid();
    assert_eq!(guardians_of(pid).len(), 1, "one guardian watches the drill");
    assert_eq!(leftovers(&c.name).0.len(), 1, "the copy runs");
    run.kill();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    while leftovers(&c.name) != (vec![], vec![]) || !journals(&env.path("state")).is_empty() {
        assert!(std::time::Instant::now() < deadline, "left after 15 s: {:?}", leftovers(&c.name));
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_nothing_left(&c.name, &env);
    let log = std::fs::read_to_string(env.path("state").join("guardian.log")).unwrap();
    assert!(log.contains("kfadmin removed what it left"), "{log}");
    assert!(c.running());
}

/// `--name` (and `KFADMIN_NAME`): the drill takes the newest backup made under that name (the
/// runbook's "many hosts, one bucket" recipe), not the newest of the container's own name.
#[test]
fn drill_name_takes_the_newest_backup_made_under_that_name() {
    let env = Env::new();
    let c = Kf::start(&env, "drill-named", Spec { init_mb: 1, rate: 20, ..Spec::default() });
    let out = env.path("backups");
    let o = out.to_str().unwrap();
    let named = "fleet-host7";
    kf(&env, &["backup", "--online", "--container", &c.name, "--name", named, "--out", o, "--quiet"]).ok();
    std::thread::sleep(std::time::Duration::from_millis(1100));
    // The container's own name: newer.
    kf(&env, &["backup", "--online", "--container", &c.name, "--out", o, "--quiet"]).ok();
    let drilled = |r: &Run| {
        r.ok();
        let j = r.json();
        assert_eq!(j["passed"], true, "{j}");
        let archive = j["archive"].as_str().unwrap().to_string();
        std::path::Path::new(&archive).file_name().unwrap().to_str().unwrap().to_string()
    };
    let base = ["drill", "--container", &c.name, "--out", o, "--settle", "1", "--json"];
    let r = kf(&env, &[&base[..], &["--name", named]].concat());
    assert!(drilled(&r).starts_with(&format!("{named}-")), "{}", r.stdout);
    let state = env.path("state");
    let by_env =
        kfadmin_env(&[("KFADMIN_STATE_DIR", state.to_str().unwrap()), ("KFADMIN_NAME", named)], base);
    assert!(drilled(&by_env).starts_with(&format!("{named}-")), "{}", by_env.stdout);
    let r = kf(&env, &base);
    assert!(drilled(&r).starts_with(&format!("{}-", c.name)), "{}", r.stdout);
    // A name with no backup is an error naming it, not another name's backup.
    let r = kf(&env, &[&base[..], &["--name", "fleet-host8"]].concat());
    r.code(2).stderr_has("fleet-host8");
    assert_nothing_left(&c.name, &env);
}
