//! Container layouts against the real engine: `--rm` containers, volumes the engine mounts only
//! while in use, mounts nested in the data directory, paused and crash-looping containers, a
//! database bind-mounted as a single file or reached through a symbolic link, and Compose
//! replicas sharing one volume. kfadmin handles each, or refuses before it stops anything.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bollard::query_parameters::RemoveVolumeOptionsBuilder;
use serde_json::Value;

use crate::dock::*;
use crate::util::*;

/// kfadmin with a private state directory (for the crash journal).
fn kf(env: &Env, args: &[&str]) -> Run {
    let state = env.path("state");
    kfadmin_env(&[("KFADMIN_STATE_DIR", state.to_str().unwrap())], args)
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// The container's StartedAt, or None once the engine has deleted it.
fn started_or_gone(name: &str) -> Option<String> {
    block(docker().inspect_container(name, None::<bollard::query_parameters::InspectContainerOptions>))
        .ok()
        .and_then(|c| c.state)
        .and_then(|s| s.started_at)
}

fn paused(c: &Kf) -> bool {
    c.inspect().state.and_then(|s| s.paused).unwrap_or(false)
}

fn online_backup(env: &Env, c: &Kf, out: &Path) -> Value {
    let r = kf(env, &["backup", "--online", "--container", &c.name, "--out", s(out), "--json"]);
    r.ok();
    r.json()
}

fn archive_paths(report: &Value) -> Vec<String> {
    report["files"].as_array().unwrap().iter().map(|f| f["path"].as_str().unwrap().to_string()).collect()
}

fn restore_args<'a>(archive: &'a str, c: &'a Kf, out: &'a Path) -> Vec<&'a str> {
    // --force: the archive may not be the newest of the container (the plan says so).
    vec![
        "restore",
        archive,
        "--container",
        &c.name,
        "--out",
        s(out),
        "--yes",
        "--force",
        "--settle",
        "1",
        "--json",
    ]
}

fn assert_lacks(text: &str, needle: &str) {
    assert!(!text.contains(needle), "must not say {needle:?}:\n{text}");
}

/// A named volume removed when dropped (declare it before the container that uses it).
struct Volume(String);

impl Volume {
    fn new(tag: &str) -> Volume {
        let nanos =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
        Volume(format!("kfadmin-test-{}-{nanos}-{tag}", std::process::id()))
    }

    fn mountpoint(&self) -> PathBuf {
        PathBuf::from(block(docker().inspect_volume(&self.0)).unwrap().mountpoint)
    }
}

impl Drop for Volume {
    fn drop(&mut self) {
        let opts = RemoveVolumeOptionsBuilder::default().force(true).build();
        let _ = block(docker().remove_volume(&self.0, Some(opts)));
    }
}

/// A `--rm` container is deleted by the engine once stopped: neither a cold backup nor a restore
/// stops it; both say what to do instead, and the container runs on untouched.
#[test]
fn a_rm_container_is_never_stopped() {
    let env = Env::new();
    let c = Kf::start(&env, "autorm", Spec { auto_remove: true, rate: 50, ..Spec::default() });
    let started = started_or_gone(&c.name);
    let out = env.path("backups");
    let r = kf(&env, &["backup", "--cold", "--container", &c.name, "--out", s(&out)]);
    r.code(2).stderr_has("--rm").stderr_has("backup --online");
    assert_eq!(started_or_gone(&c.name), started, "the container was stopped (or deleted)");
    let archive = online_backup(&env, &c, &out)["archive"].as_str().unwrap().to_string();
    let r = kf(&env, &restore_args(&archive, &c, &out));
    r.code(2).stderr_has("--rm").stderr_has("--data-dir");
    assert_eq!(started_or_gone(&c.name), started, "the container was stopped (or deleted)");
}

/// Compose's `driver_opts: {type: none, o: bind, device: DIR}`: the engine mounts DIR on the
/// volume only while the container runs. kfadmin works on DIR itself: a cold backup copies it
/// (not the empty mount point), and a restore swaps the files into it.
#[test]
fn a_volume_with_bind_options_is_its_device() {
    assert!(is_root());
    let env = Env::new();
    let device = env.path("device");
    std::fs::create_dir(&device).unwrap();
    std::os::unix::fs::chown(&device, Some(APP_UID), Some(APP_UID)).unwrap();
    let opts = [("type", "none"), ("o", "bind"), ("device", s(&device))];
    let spec = Spec {
        volume_opts: opts.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        rate: 100,
        ..Spec::default()
    };
    let c = Kf::start(&env, "bindopts", spec);
    c.wait_for(|s| s["last_seq"].as_i64().unwrap() >= 20);
    std::fs::write(device.join("marker.txt"), b"only in the device directory").unwrap();
    let out = env.path("backups");
    let online = online_backup(&env, &c, &out);
    let backed_up = online["database"]["tables"]["audit_log"].as_i64().unwrap();

    let r = kf(&env, &["backup", "--cold", "--container", &c.name, "--out", s(&out), "--json"]);
    r.ok();
    let j = r.json();
    assert_eq!(j["source"]["path"], s(&device.join("keyfount.db")), "{j}");
    // Copied while the container was stopped: the mount point was empty then, the device not.
    assert!(archive_paths(&j).contains(&"data/marker.txt".to_string()), "{j}");
    assert!(j["database"]["tables"]["audit_log"].as_i64().unwrap() >= backed_up);
    assert!(c.running());

    c.wait_for(|s| s["last_seq"].as_i64().unwrap() >= backed_up + 100);
    let r = kf(&env, &restore_args(online["archive"].as_str().unwrap(), &c, &out));
    r.ok();
    let j = r.json();
    assert!(j["safety_archive"].as_str().unwrap().ends_with("-pre-restore.tar.gz"), "{j}");
    assert_eq!(j["data_dir"], s(&device));
    // The writer resumed on the restored database, in the device directory.
    c.wait_for(|s| {
        let (seq, commits) = (s["last_seq"].as_i64().unwrap(), s["commits"].as_i64().unwrap());
        s["done"] == false && commits > 0 && seq - commits == backed_up
    });
    assert_eq!(std::fs::metadata(device.join("keyfount.db")).unwrap().uid(), APP_UID);
}

/// A volume with tmpfs options (like NFS or CIFS ones) is mounted only while the container
/// runs: a cold backup or a restore would find an empty directory, so both refuse before
/// stopping anything; an online backup works; a stopped container's status says why there is
/// nothing to read (not "check --db").
#[test]
fn a_volume_mounted_only_while_in_use_is_refused_for_a_stop() {
    let env = Env::new();
    let opts = [("type", "tmpfs"), ("device", "tmpfs"), ("o", "size=64m,uid=1000,gid=1000,mode=0700")];
    let spec = Spec {
        volume_opts: opts.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        rate: 50,
        ..Spec::default()
    };
    let c = Kf::start(&env, "tmpfsvol", spec);
    let started = c.started_at();
    let out = env.path("backups");
    let r = kf(&env, &["backup", "--cold", "--container", &c.name, "--out", s(&out)]);
    r.code(2).stderr_has("tmpfs").stderr_has("only while a container uses it").stderr_has("--online");
    assert_eq!(c.started_at(), started, "nothing was stopped");
    let archive = online_backup(&env, &c, &out)["archive"].as_str().unwrap().to_string();
    kf(&env, &restore_args(&archive, &c, &out)).code(2).stderr_has("empty directory");
    assert_eq!(c.started_at(), started, "nothing was stopped");
    assert!(c.running());

    c.stop();
    let r = kf(&env, &["status", "--container", &c.name, "--backup-dir", s(&out)]);
    r.code(1).stderr_has("only while a container uses it").stderr_has("docker start");
    assert_lacks(&r.stderr, "--db");
    kf(&env, &["backup", "--online", "--container", &c.name, "--out", s(&out)])
        .code(1)
        .stderr_has("not on this host while the container is stopped");
}

/// `-v kf:/data -v uploads:/data/uploads`: a cold backup copies both mounts and records them;
/// a file hidden under the nested mount point is left out, with a warning; restoring files into
/// the nested mount is refused before anything stops, and a database-only restore still works.
#[test]
fn mounts_nested_in_the_data_directory() {
    assert!(is_root());
    let env = Env::new();
    let uploads = Volume::new("uploads");
    let spec =
        Spec { extra_binds: vec![format!("{}:/data/uploads", uploads.0)], rate: 50, ..Spec::default() };
    let c = Kf::start(&env, "nested", spec);
    let up = uploads.mountpoint();
    std::fs::create_dir_all(up.join("sub")).unwrap();
    std::fs::write(up.join("photo.bin"), vec![7u8; 100_000]).unwrap();
    std::fs::write(up.join("sub/a.txt"), b"a").unwrap();
    chown_tree(&up, APP_UID, APP_UID);
    // In the data volume, under the mount point: invisible to the container.
    std::fs::write(c.host_data().join("uploads/hidden.txt"), b"shadowed").unwrap();
    let out = env.path("backups");
    let online = online_backup(&env, &c, &out);

    let r = kf(&env, &["backup", "--cold", "--container", &c.name, "--out", s(&out), "--json"]);
    r.ok().stderr_has("spans 2 mounts");
    let j = r.json();
    let paths = archive_paths(&j);
    for want in ["data/keyfount.db", "data/uploads/photo.bin", "data/uploads/sub/a.txt"] {
        assert!(paths.contains(&want.to_string()), "{want} missing: {paths:?}");
    }
    assert!(!paths.iter().any(|p| p.contains("hidden.txt")), "{paths:?}");
    let warnings = j["warnings"].to_string();
    assert!(warnings.contains("hidden.txt"), "{warnings}");
    let mounts = &j["source"]["mounts"];
    assert_eq!(mounts[1]["path"], "data/uploads", "{j}");
    assert_eq!(mounts[1]["source"], uploads.0.as_str());
    assert_eq!(mounts[0]["source"], c.name.as_str());
    let cold = j["archive"].as_str().unwrap().to_string();
    kfadmin(["verify", &cold]).ok();

    // Into a directory, every part comes back.
    let scratch = env.path("scratch");
    kfadmin(["restore", &cold, "--data-dir", s(&scratch), "--yes", "--force"]).ok();
    assert_eq!(std::fs::read(scratch.join("uploads/photo.bin")).unwrap(), vec![7u8; 100_000]);
    // Into the container, the uploads would land under the mount point: refused, nothing stops.
    let started = c.started_at();
    kf(&env, &restore_args(&cold, &c, &out)).code(2).stderr_has("data/uploads/").stderr_has(&uploads.0);
    assert_eq!(c.started_at(), started);
    // The database alone restores; the uploads volume is left as it is.
    kf(&env, &restore_args(online["archive"].as_str().unwrap(), &c, &out)).ok();
    assert_eq!(std::fs::read(up.join("photo.bin")).unwrap(), vec![7u8; 100_000]);
}

/// A paused container serves nothing: status says so (exit 1). A cold backup or a restore would
/// unpause it with the stop: both refuse, and it stays paused; an online backup works.
#[test]
fn a_paused_container_is_a_problem_and_stays_paused() {
    let env = Env::new();
    let c = Kf::start(&env, "paused", Spec { rate: 50, ..Spec::default() });
    let out = env.path("backups");
    let archive = online_backup(&env, &c, &out)["archive"].as_str().unwrap().to_string();
    kf(&env, &["status", "--container", &c.name, "--backup-dir", s(&out)]).ok();
    block(docker().pause_container(&c.name)).unwrap();

    let r = kf(&env, &["status", "--container", &c.name, "--backup-dir", s(&out), "--json"]);
    r.code(1);
    assert!(r.json()["problems"].to_string().contains("paused"), "{}", r.stdout);
    kf(&env, &["backup", "--cold", "--container", &c.name, "--out", s(&out)])
        .code(2)
        .stderr_has("paused")
        .stderr_has(&format!("docker unpause {}", c.name));
    assert!(paused(&c), "the cold backup changed the container's state");
    kf(&env, &restore_args(&archive, &c, &out)).code(2).stderr_has("docker unpause");
    assert!(paused(&c), "the restore changed the container's state");
    online_backup(&env, &c, &out);
    assert!(paused(&c));
    block(docker().unpause_container(&c.name)).unwrap();
}

/// A container in a crash loop (restart policy, a database it refuses) is a problem for
/// status, even when the engine reports it "running" between two attempts.
#[test]
fn a_restarting_container_is_a_problem() {
    let env = Env::new();
    let c = Kf::start(&env, "crashloop", Spec { rate: 50, ..Spec::default() });
    let out = env.path("backups");
    online_backup(&env, &c, &out);
    c.stop();
    c.wait_stopped();
    // A schema version the server refuses: it exits at once, and its policy starts it again.
    let db = c.host_data().join("keyfount.db");
    rusqlite::Connection::open(&db).unwrap().execute_batch("PRAGMA user_version=3").unwrap();
    let policy = bollard::models::RestartPolicy {
        name: Some(bollard::models::RestartPolicyNameEnum::ALWAYS),
        maximum_retry_count: None,
    };
    let update = bollard::models::ContainerUpdateBody { restart_policy: Some(policy), ..Default::default() };
    block(docker().update_container(&c.name, update)).unwrap();
    block(docker().start_container(&c.name, None::<bollard::query_parameters::StartContainerOptions>))
        .unwrap();
    let restarting = || {
        let i = c.inspect();
        i.state.and_then(|s| s.restarting).unwrap_or(false) && i.restart_count.unwrap_or(0) >= 3
    };
    // The back-off between attempts grows (0.1 s, 0.2 s, 0.4 s, …); kfadmin must run inside one.
    let mut said = String::new();
    for _attempt in 0..5 {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !restarting() {
            assert!(Instant::now() < deadline, "{} never went into a restart loop", c.name);
            std::thread::sleep(Duration::from_millis(50));
        }
        let r = kf(&env, &["status", "--container", &c.name, "--backup-dir", s(&out)]);
        said = r.stdout.clone();
        if r.code == 1 && r.stdout.contains(&format!("PROBLEM: container {} is restarting", c.name)) {
            return;
        }
    }
    panic!("status never reported the crash loop:\n{said}");
}

/// `-v /srv/kf/keyfount.db:/data/keyfount.db`: the -wal and -shm live in the container's own
/// layer, so no backup can be consistent from the host. kfadmin says exactly that (not "the
/// bind mount does not exist"), and stops nothing.
#[test]
fn a_database_bind_mounted_as_a_single_file_is_refused_with_the_reason() {
    assert!(is_root());
    let env = Env::new();
    let dir = env.data_dir("single", 1);
    env.give_to_app(&dir);
    let db = dir.join("keyfount.db");
    let spec = Spec {
        data: Data::None,
        extra_binds: vec![format!("{}:/data/keyfount.db", db.display())],
        ..Spec::default()
    };
    let c = Kf::start(&env, "single", spec);
    let started = c.started_at();
    let out = env.path("backups");
    for mode in ["--online", "--cold"] {
        let r = kf(&env, &["backup", mode, "--container", &c.name, "--out", s(&out)]);
        r.code(2).stderr_has("single file").stderr_has("-wal").stderr_has("container's own layer");
        r.stderr_has(&format!("-v {}:/data", dir.display()));
        assert_lacks(&r.stderr, "does not exist");
    }
    assert_eq!(c.started_at(), started, "nothing was stopped");
}

/// A database reached through a symbolic link in the volume is followed as the container sees
/// it; a link to a host path (which the container does not have) is refused, never read.
#[test]
fn a_symlinked_database_is_resolved_inside_the_container_only() {
    assert!(is_root());
    let env = Env::new();
    let bind = env.path("linked");
    std::fs::create_dir(&bind).unwrap();
    let real = env.data_dir("linked/db", 1).join("keyfount.db");
    std::os::unix::fs::symlink("/data/db/keyfount.db", bind.join("keyfount.db")).unwrap();
    env.give_to_app(&bind);
    let c = Kf::start(&env, "linked", Spec { data: Data::Bind(bind.clone()), rate: 100, ..Spec::default() });
    c.wait_for(|s| s["last_seq"].as_i64().unwrap() >= 20);
    let out = env.path("backups");
    let j = online_backup(&env, &c, &out);
    assert_eq!(j["source"]["path"], s(&real), "{j}");
    assert!(j["database"]["tables"]["audit_log"].as_i64().unwrap() >= 20);
    let r = kf(&env, &["backup", "--cold", "--container", &c.name, "--out", s(&out), "--json"]);
    r.ok();
    assert_eq!(archive_paths(&r.json())[0], "data/keyfount.db");
    assert!(c.running());

    // The link now names a database on this host, outside every mount of the container.
    c.stop();
    let decoy = env.data_dir("decoy", 1).join("keyfount.db");
    std::fs::remove_file(bind.join("keyfount.db")).unwrap();
    std::os::unix::fs::symlink(&decoy, bind.join("keyfount.db")).unwrap();
    let elsewhere = env.path("decoy-backups");
    for args in [
        vec!["backup", "--online", "--container", &c.name, "--out", s(&elsewhere)],
        vec!["status", "--container", &c.name, "--backup-dir", s(&elsewhere)],
    ] {
        kf(&env, &args).code(2).stderr_has("symbolic link").stderr_has(s(&decoy));
    }
    assert!(ls(&elsewhere).is_empty(), "the host file was backed up: {:?}", ls(&elsewhere));
}

/// Two replicas of one Compose service on one volume: the service name is ambiguous (and
/// --compose-project cannot help), and a cold backup or restore of one replica refuses while
/// the other runs, naming it, before stopping anything. A stopped replica, or a container that
/// mounts the volume read-only, is no obstacle.
#[test]
fn compose_replicas_sharing_a_volume() {
    let env = Env::new();
    let project = format!("kfadmin-test-{}-replicas", std::process::id());
    let labels = vec![
        ("com.docker.compose.project".to_string(), project.clone()),
        ("com.docker.compose.service".to_string(), "kf".to_string()),
    ];
    let a = Kf::start(&env, "replica1", Spec { labels: labels.clone(), rate: 20, ..Spec::default() });
    let volume = a.volume.clone().unwrap();
    let spec = Spec {
        data: Data::None,
        extra_binds: vec![format!("{volume}:/data")],
        labels,
        rate: 20,
        ..Spec::default()
    };
    let b = Kf::start(&env, "replica2", spec);
    // A container that mounts the volume read-only cannot change the data: no obstacle.
    let spec =
        Spec { data: Data::None, extra_binds: vec![format!("{volume}:/mirror:ro")], ..Spec::default() };
    let _reader = Kf::start(&env, "reader", spec);
    let out = env.path("backups");
    let r =
        kf(&env, &["backup", "--cold", "--container", "kf", "--compose-project", &project, "--out", s(&out)]);
    r.code(2).stderr_has("several containers").stderr_has("replicas").stderr_has(&a.name);
    assert_lacks(&r.stderr, "pass --compose-project");

    let started = a.started_at();
    let r = kf(&env, &["backup", "--cold", "--container", &a.name, "--out", s(&out)]);
    r.code(2).stderr_has(&b.name).stderr_has("docker stop");
    assert_eq!(a.started_at(), started, "replica 1 was stopped");
    let archive = online_backup(&env, &a, &out)["archive"].as_str().unwrap().to_string();
    kf(&env, &restore_args(&archive, &a, &out)).code(2).stderr_has(&b.name);
    assert_eq!(a.started_at(), started, "replica 1 was stopped");
    assert!(a.running() && b.running());

    b.stop();
    b.wait_stopped();
    kf(&env, &["backup", "--cold", "--container", &a.name, "--out", s(&out)]).ok();
    assert!(a.running());
}
