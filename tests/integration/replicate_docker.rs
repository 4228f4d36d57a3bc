//! Point-in-time recovery with a container (issue 18): `replicate --container` follows the
//! data of a real container whose writer commits like Keyfount, through a `docker restart`
//! and a recreation of the container on the same volume; `restore --at --container` goes
//! through the container's stop → swap → start → watch path; `drill --at` boots a throwaway
//! copy on a point; a data directory on FUSE (bindfs) is refused. These tests need the real
//! engine and fail without one.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bollard::query_parameters::RestartContainerOptionsBuilder;
use serde_json::Value;

use crate::dock::*;
use crate::util::*;

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as i64
}

fn rfc3339_ms(ms: i64) -> String {
    humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(ms as u64)).to_string()
}

fn ms_of(t: &str) -> i64 {
    humantime::parse_rfc3339(t).unwrap().duration_since(UNIX_EPOCH).unwrap().as_millis() as i64
}

fn replicate(env: &Env, container: &str, repo: &Path) -> Child {
    spawn_kf(env, &[], &["replicate", "--container", container, "-r", repo.to_str().unwrap(), "--json", "-v"])
}

fn sigterm(child: Child) -> Run {
    let pid = rustix::process::Pid::from_child(&child);
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
    child.wait_with_output().unwrap().into()
}

/// (seq, at in ms) of every audit row of a copy of the database in `data` (the live files are
/// copied first: the test never opens the server's own database).
fn audit(env: &Env, data: &Path, tag: &str) -> Vec<(i64, i64)> {
    let copy = env.path(&format!("audit-{tag}"));
    std::fs::create_dir_all(&copy).unwrap();
    for f in ["keyfount.db", "keyfount.db-wal"] {
        if data.join(f).exists() {
            std::fs::copy(data.join(f), copy.join(f)).unwrap();
        }
    }
    let c = rusqlite::Connection::open(copy.join("keyfount.db")).unwrap();
    let mut s = c.prepare("SELECT seq, at FROM audit_log ORDER BY seq").unwrap();
    s.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).unwrap().collect::<Result<_, _>>().unwrap()
}

/// `got` is the first rows of `live`; says where they differ, not all rows.
fn is_prefix(got: &[(i64, i64)], live: &[(i64, i64)], what: &str) {
    let first = got.iter().zip(live).position(|(a, b)| a != b);
    assert!(
        first.is_none() && got.len() <= live.len(),
        "{what}: {} rows (last {:?}), {} live (last {:?}); first difference at row {first:?}",
        got.len(),
        got.last(),
        live.len(),
        live.last()
    );
}

/// The last seq a point at `at_ms` must hold (committed by T − 1 s) and may hold (by T).
fn bounds(live: &[(i64, i64)], at_ms: i64) -> (i64, i64) {
    let must = live.iter().filter(|r| r.1 <= at_ms - 1000).map(|r| r.0).max().unwrap_or(0);
    let may = live.iter().filter(|r| r.1 <= at_ms).map(|r| r.0).max().unwrap_or(0);
    (must, may)
}

/// `restore --at T --data-dir` (a new directory) holds exactly the commits seen by T.
fn assert_point(env: &Env, repo: &Path, live: &[(i64, i64)], at_ms: i64, n: usize) {
    let dir = env.path(&format!("restored-{n}"));
    let run = kfadmin_fault(
        &env.path("state"),
        "",
        &[
            "restore",
            "--at",
            &rfc3339_ms(at_ms),
            "-r",
            repo.to_str().unwrap(),
            "--data-dir",
            dir.to_str().unwrap(),
            "--yes",
        ],
    );
    run.ok();
    check_db(&dir.join("keyfount.db"), 0);
    let got = audit(env, &dir, &format!("restored-{n}"));
    is_prefix(&got, live, &format!("restore --at {}", rfc3339_ms(at_ms)));
    let last = got.last().map(|r| r.0).unwrap_or(0);
    let (must, may) = bounds(live, at_ms);
    assert!(
        last >= must && last <= may,
        "restore --at {}: last seq {last}, but every seq up to {must} and none after {may} was expected",
        rfc3339_ms(at_ms)
    );
}

fn restart(kf: &Kf) {
    let opts = RestartContainerOptionsBuilder::default().t(10).build();
    block(docker().restart_container(&kf.name, Some(opts))).unwrap();
}

/// The writer runs inside the container; replicate follows the container's volume on this host.
/// A `docker restart` while it runs is a gap (reported, repaired exactly); then the container
/// is removed and created again on the same volume (what `docker compose up -d` does): the same
/// database, followed on without a new chain. Every point outside the gaps restores exactly.
#[test]
fn replicate_container_follows_through_a_restart_and_a_recreation() {
    let env = Env::new();
    let repo = env.path("repo");
    let kf = Kf::start(&env, "pitr-follow", Spec { rate: 150, ..Spec::default() });
    let rep = replicate(&env, &kf.name, &repo);
    std::thread::sleep(Duration::from_millis(3000));
    let seq = kf.status()["last_seq"].as_i64().unwrap();
    restart(&kf);
    kf.wait_writing_past(seq);
    std::thread::sleep(Duration::from_millis(2500));
    // Recreated on the same volume: the old container goes (for longer than the 2 s between
    // looks, so that its absence is seen), a new one (new id) takes its name.
    let old_id = kf.inspect().id.unwrap();
    let data = kf.host_data();
    let volume = kf.volume.clone().unwrap();
    kf.stop();
    recreate(&kf, &volume, Duration::from_millis(5000));
    let seq = kf.status()["last_seq"].as_i64().unwrap();
    kf.wait_writing_past(seq);
    assert_ne!(kf.inspect().id.unwrap(), old_id);
    std::thread::sleep(Duration::from_millis(3000));
    kf.stop();
    std::thread::sleep(Duration::from_millis(1200));
    let run = sigterm(rep);
    let log = run.stderr.clone();
    run.ok();
    assert!(log.contains("gap in chain"), "no gap reported for the restart:\n{log}");
    assert!(log.contains("was recreated"), "the recreation was not said:\n{log}");
    assert!(log.contains("cannot be found"), "the container's absence was not said:\n{log}");
    let report: Value = run.json();
    assert_eq!(report["new_chain"], true, "{report}");
    let gaps: Vec<(i64, i64)> = report["gaps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| (ms_of(g["from"].as_str().unwrap()), ms_of(g["to"].as_str().unwrap())))
        .collect();
    assert!(!gaps.is_empty(), "{report}");
    // One chain, of the container's volume.
    let chains: Vec<String> = ls(&repo.join("pitr"));
    assert_eq!(chains.len(), 1, "{chains:?}");
    let live = audit(&env, &data, "live");
    let end = live.last().unwrap().1;
    // Points from 1.5 s after replicate began (its base) to the end, outside the gaps (and a
    // second past each, where a point holds the repair's state).
    let mut x = end as u64 | 1;
    let mut n = 0;
    let base = chain_base_ms(&repo.join("pitr").join(&chains[0]));
    while n < 6 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let at = base + 1500 + (x % (end - base - 1500) as u64) as i64;
        if gaps.iter().any(|&(from, to)| at >= from - 100 && at <= to + 100) {
            continue;
        }
        assert_point(&env, &repo, &live, at, n);
        n += 1;
    }
    // Right after each gap: exact.
    for (k, &(_, to)) in gaps.iter().enumerate() {
        assert_point(&env, &repo, &live, to + 200, 10 + k);
    }
}

/// Remove the (stopped) container and create it again under the same name with `volume` at
/// /data, `gap` later, and start it, as `docker compose up -d` does after a change.
fn recreate(kf: &Kf, volume: &str, gap: Duration) {
    let body = bollard::models::ContainerCreateBody {
        image: Some(image()),
        cmd: Some(
            [
                "run",
                "--db",
                "/data/keyfount.db",
                "--init-size-mb",
                "1",
                "--rate",
                "150",
                "--status-file",
                "/status/status.json",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect(),
        ),
        host_config: Some(bollard::models::HostConfig {
            binds: Some(vec![format!("{volume}:/data"), format!("{}:/status", kf.status_dir.display())]),
            network_mode: Some("none".into()),
            ..Default::default()
        }),
        ..Default::default()
    };
    let d = docker();
    let rm = bollard::query_parameters::RemoveContainerOptionsBuilder::default().force(true).build();
    block(d.remove_container(&kf.name, Some(rm))).unwrap();
    std::thread::sleep(gap);
    let opts = bollard::query_parameters::CreateContainerOptionsBuilder::default().name(&kf.name).build();
    block(d.create_container(Some(opts), body)).unwrap();
    block(d.start_container(&kf.name, None::<bollard::query_parameters::StartContainerOptions>)).unwrap();
}

/// The container recreated on another volume keeps another database: replicate stops (exit 1)
/// and says so, rather than follow the old files or the new database silently.
#[test]
fn replicate_container_stops_when_the_container_keeps_another_database() {
    let env = Env::new();
    let repo = env.path("repo");
    let kf = Kf::start(&env, "pitr-moved", Spec { rate: 100, ..Spec::default() });
    let rep = replicate(&env, &kf.name, &repo);
    std::thread::sleep(Duration::from_millis(2500));
    kf.stop();
    let other = format!("{}-other", kf.name);
    recreate(&kf, &other, Duration::from_millis(100));
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let mut rep = rep;
    let status = loop {
        if let Some(s) = rep.try_wait().unwrap() {
            break s;
        }
        assert!(std::time::Instant::now() < deadline, "replicate went on following the old database");
        std::thread::sleep(Duration::from_millis(100));
    };
    let run: Run = rep.wait_with_output().unwrap().into();
    let d = docker();
    let rm = bollard::query_parameters::RemoveContainerOptionsBuilder::default().force(true).v(true).build();
    let _ = block(d.remove_container(&kf.name, Some(rm)));
    let _ = block(d.remove_volume(&other, None::<bollard::query_parameters::RemoveVolumeOptions>));
    assert_eq!(status.code(), Some(1), "{}", run.stderr);
    let j = run.json();
    let msg = j["error"]["message"].as_str().unwrap();
    assert!(msg.contains("now keeps its database") && msg.contains(&format!("volume {other}")), "{j}");
    assert!(j["error"]["hint"].as_str().unwrap().contains("replicate --container"), "{j}");
}

fn chain_base_ms(dir: &Path) -> i64 {
    let info: Value = serde_json::from_slice(&std::fs::read(dir.join("chain.json")).unwrap()).unwrap();
    (info["base_time_us"].as_u64().unwrap() / 1000) as i64
}

/// `restore --at T --container` goes through the container path: stop, swap, start, watch;
/// the server is back on exactly the commits seen by T. `drill --at T` (no --container: the
/// chain's) boots a throwaway copy on that point and records it as a drill of that point.
#[test]
fn restore_at_into_a_container_and_drill_at_a_point() {
    let env = Env::new();
    let repo = env.path("repo");
    let state = env.path("state");
    let kf = Kf::start(&env, "pitr-restore", Spec { rate: 150, ..Spec::default() });
    let rep = replicate(&env, &kf.name, &repo);
    std::thread::sleep(Duration::from_millis(4000));
    let run = sigterm(rep);
    run.ok();
    let chains = ls(&repo.join("pitr"));
    let base = chain_base_ms(&repo.join("pitr").join(&chains[0]));
    let at = base + 2000;
    assert!(at < now_ms() - 1500, "replicate ran for too short a time");
    let at_s = rfc3339_ms(at);
    // A dry run names the point and the container (the chain's), and does nothing.
    let dry = kfadmin_fault(
        &state,
        "",
        &["drill", "--at", &at_s, "-r", repo.to_str().unwrap(), "--dry-run", "--json"],
    );
    let dj = dry.json();
    assert_eq!(dj["container"], kf.name.as_str(), "{dj}");
    assert!(dj["steps"][0].as_str().unwrap().contains("rebuild the database as of"), "{dj}");
    // The drill (the live container keeps running, untouched).
    let started = kf.started_at();
    let drill = kfadmin_fault(
        &state,
        "",
        &["drill", "--at", &at_s, "-r", repo.to_str().unwrap(), "--settle", "3s", "--json"],
    );
    let dj = drill.json();
    assert_eq!(dj["passed"], true, "{}\n{}", drill.stdout, drill.stderr);
    assert_eq!(dj["container"], kf.name.as_str(), "{dj}");
    assert_eq!(dj["chosen"], "point in time", "{dj}");
    assert_eq!(dj["point"]["chain"], chains[0].as_str(), "{dj}");
    assert!(kf.running() && kf.started_at() == started, "the drill touched the live container");
    let record: Value = serde_json::from_slice(
        &std::fs::read(state.join("drills").join(format!("{}.json", kf.name))).unwrap(),
    )
    .unwrap();
    assert!(record["archive"].as_str().unwrap().contains(&chains[0]), "{record}");
    // The live history up to a little after T (rows past T are there too; the prefix is final).
    let data = kf.host_data();
    let live = audit(&env, &data, "live");
    let (must, may) = bounds(&live, at);
    assert!(live.last().unwrap().0 > may, "the writer wrote nothing after T");
    // A nightly backup taken after T is no reason to refuse the time asked for (only said).
    kfadmin_fault(&state, "", &["backup", "--online", "--container", &kf.name, "-r", repo.to_str().unwrap()])
        .ok();
    let restore = kfadmin_fault(
        &state,
        "",
        &["restore", "--at", &at_s, "-r", repo.to_str().unwrap(), "--container", &kf.name, "--yes", "--json"],
    );
    let rj = restore.json();
    assert_eq!(rj["restored"], true, "{}\n{}", restore.stdout, restore.stderr);
    assert_eq!(rj["container"], kf.name.as_str(), "{rj}");
    assert!(rj["up"].as_str().is_some(), "{rj}");
    assert!(rj["safety_archive"].as_str().is_some(), "{rj}");
    assert!(rj["warnings"].to_string().contains("a newer backup"), "{rj}");
    assert!(kf.running(), "the container is not running after the restore");
    // The server writes on from the restored state; stop it to read what it has.
    std::thread::sleep(Duration::from_millis(1000));
    kf.stop();
    let after = audit(&env, &data, "after");
    let upto: Vec<(i64, i64)> = after.iter().copied().filter(|r| r.1 <= at).collect();
    is_prefix(&upto, &live, "the restored container's rows up to T");
    let last = upto.last().map(|r| r.0).unwrap_or(0);
    assert!(last >= must && last <= may, "restored up to seq {last}, expected {must}..={may}");
    // Nothing the old server committed after T survived: every later row was written after
    // the restore, by the restarted server, and follows on from the point.
    let old_after_t: Vec<&(i64, i64)> = after.iter().filter(|r| r.1 > at && live.contains(r)).collect();
    assert!(
        old_after_t.is_empty(),
        "rows committed after T are still there: {:?}",
        &old_after_t[..old_after_t.len().min(3)]
    );
    let next = after.iter().find(|r| r.1 > at).map(|r| r.0);
    assert_eq!(next, Some(last + 1), "the server did not write on from the restored point");
    check_db(&data.join("keyfount.db"), 0);
}

/// A bindfs (FUSE) mount over a directory, removed when dropped.
struct Fuse {
    point: PathBuf,
}

impl Fuse {
    fn mount(source: &Path, point: &Path) -> Fuse {
        std::fs::create_dir_all(point).unwrap();
        let out = Command::new("bindfs")
            .arg(source)
            .arg(point)
            .output()
            .unwrap_or_else(|e| panic!("the FUSE test needs bindfs (scripts/test.sh installs it): {e}"));
        assert!(out.status.success(), "bindfs: {}", String::from_utf8_lossy(&out.stderr));
        Fuse { point: point.to_path_buf() }
    }
}

impl Drop for Fuse {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.point).status();
    }
}

/// Rule 6: a data directory on FUSE is refused by `replicate --db` and `--container` (exit 2),
/// naming the filesystem and the mount and saying what to do; nothing is written to the
/// repository. The same database outside the FUSE mount is followed.
#[test]
fn replicate_refuses_a_data_directory_on_fuse() {
    let env = Env::new();
    let src = env.data_dir("src", 1);
    env.give_to_app(&src);
    let fuse = Fuse::mount(&src, &env.path("fuse"));
    let repo = env.path("repo");
    let db = fuse.point.join("keyfount.db");
    let state = env.path("state");
    let r =
        kfadmin_fault(&state, "", &["replicate", "--db", db.to_str().unwrap(), "-r", repo.to_str().unwrap()]);
    r.code(2).stderr_has("FUSE filesystem").stderr_has(&format!("mounted at {}", fuse.point.display()));
    r.stderr_has("virtiofs").stderr_has("hint: keep Keyfount's data on a local filesystem");
    assert!(!repo.join("pitr").exists(), "replicate wrote to the repository: {:?}", ls(&repo));
    // The container whose /data is that FUSE directory.
    let kf = Kf::start(
        &env,
        "pitr-fuse",
        Spec { data: Data::Bind(fuse.point.clone()), rate: 20, ..Spec::default() },
    );
    let r = kfadmin_fault(
        &state,
        "",
        &["replicate", "--container", &kf.name, "-r", repo.to_str().unwrap(), "--json"],
    );
    r.code(2);
    let j = r.json();
    let msg = j["error"]["message"].as_str().unwrap();
    assert!(msg.contains(&format!("the data of container {}", kf.name)) && msg.contains("FUSE"), "{j}");
    assert!(!repo.join("pitr").exists(), "replicate wrote to the repository: {:?}", ls(&repo));
    drop(kf);
    // The same database, not through FUSE: followed.
    let r = kfadmin_fault(
        &state,
        "",
        &[
            "replicate",
            "--db",
            src.join("keyfount.db").to_str().unwrap(),
            "-r",
            repo.to_str().unwrap(),
            "--duration",
            "1s",
            "--json",
        ],
    );
    r.ok();
    assert_eq!(r.json()["new_chain"], true);
    // drill --at on a chain of a database file: no container to copy unless one is named.
    let d = kfadmin_fault(&state, "", &["drill", "--at", "now", "-r", repo.to_str().unwrap()]);
    d.code(2).stderr_has("replicated from a database file").stderr_has("pass --container NAME");
}

/// `replicate --container` finds the database as `backup --online --container` does, and
/// refuses what it refuses with the same words: no such container, no data mount, no database
/// at `--db-path`. Nothing is written to the repository.
#[test]
fn replicate_container_errors_are_those_of_backup() {
    let env = Env::new();
    let repo = env.path("repo");
    let state = env.path("state");
    let r = repo.to_str().unwrap();
    let vol = Kf::start(&env, "pitr-err-vol", Spec { rate: 10, ..Spec::default() });
    let none = Kf::start(&env, "pitr-err-none", Spec { data: Data::None, rate: 10, ..Spec::default() });
    let missing = format!("kfadmin-test-{}-no-such", std::process::id());
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["--container", &missing], "no container is named"),
        (vec!["--container", &none.name], "has no volume or bind mount that holds /data/keyfount.db"),
        (vec!["--container", &vol.name, "--db-path", "/data/nope.db"], "has no database at /data/nope.db"),
    ];
    for (args, want) in cases {
        let mut rep = vec!["replicate", "-r", r, "--json"];
        rep.extend(&args);
        let got = kfadmin_fault(&state, "", &rep);
        got.code(2);
        let mut bk = vec!["backup", "--online", "-r", r, "--json"];
        bk.extend(&args);
        let backup = kfadmin_fault(&state, "", &bk);
        let (g, b) = (got.json(), backup.json());
        assert!(g["error"]["message"].as_str().unwrap().contains(want), "{args:?}: {g}");
        assert_eq!(g["error"], b["error"], "{args:?}: replicate and backup say different things");
    }
    // A Compose service name finds its one container, as for a backup.
    let service = format!("kf-svc-{}", std::process::id());
    let labels = vec![
        ("com.docker.compose.service".to_string(), service.clone()),
        ("com.docker.compose.project".to_string(), format!("pitr{}", std::process::id())),
    ];
    let svc = Kf::start(&env, "pitr-err-svc", Spec { rate: 10, labels, ..Spec::default() });
    let run = kfadmin_fault(
        &state,
        "",
        &["replicate", "-r", r, "--container", &service, "--duration", "1s", "--json"],
    );
    run.ok();
    assert_eq!(run.json()["new_chain"], true);
    let chain = repo.join("pitr").join(run.json()["chain"].as_str().unwrap());
    let info: Value = serde_json::from_slice(&std::fs::read(chain.join("chain.json")).unwrap()).unwrap();
    let data = std::fs::canonicalize(svc.host_data().join("keyfount.db")).unwrap();
    assert_eq!(info["source"], data.to_str().unwrap(), "{info}");
    assert!(run.json()["chain"].as_str().unwrap().starts_with(&svc.name), "{}", run.stdout);
    std::fs::remove_dir_all(repo.join("pitr")).unwrap();
    let both = kfadmin_fault(
        &state,
        "",
        &["replicate", "-r", r, "--db", "/x/keyfount.db", "--container", &vol.name],
    );
    both.code(2).stderr_has("cannot be used with");
    assert!(!repo.join("pitr").exists(), "replicate wrote to the repository");
}
