//! Every Docker Engine call kfadmin makes (bollard): find the container, the mount that holds
//! its database, stop and start it, wait until it is up. A blocking facade: the commands are
//! synchronous, and each call runs on a small runtime of its own.

mod engine;
mod guard;
mod location;
mod throwaway;
mod types;

pub use engine::*;
pub use guard::*;
pub use location::*;
pub use throwaway::*;
pub use types::*;

use std::path::PathBuf;

/// kfadmin's state directory: `$KFADMIN_STATE_DIR`, or `/var/lib/kfadmin` for root, or
/// `$XDG_STATE_HOME/kfadmin` (`~/.local/state/kfadmin`).
pub fn state_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("KFADMIN_STATE_DIR") {
        return PathBuf::from(d);
    }
    if rustix::process::geteuid().is_root() {
        return PathBuf::from("/var/lib/kfadmin");
    }
    if let Some(d) = std::env::var_os("XDG_STATE_HOME") {
        return PathBuf::from(d).join("kfadmin");
    }
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/tmp"));
    home.join(".local/state/kfadmin")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::path::Path;
    use std::time::Duration;

    use crate::error::Kind;

    fn container(mounts: Vec<(&str, &str)>) -> Container {
        Container {
            id: "abc".into(),
            name: "keyfount".into(),
            image: "keyfount:1".into(),
            status: "running".into(),
            running: true,
            mounts: mounts
                .into_iter()
                .map(|(src, dst)| Mount {
                    kind: "volume".into(),
                    name: Some("kfdata".into()),
                    source: PathBuf::from(src),
                    destination: PathBuf::from(dst),
                    rw: true,
                    ..Mount::default()
                })
                .collect(),
            ..Container::default()
        }
    }

    fn options(pairs: &[(&str, &str)]) -> std::collections::BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn a_local_volume_with_bind_options_is_its_device() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = container(vec![("/var/lib/docker/volumes/kfdata/_data-empty", "/data")]);
        c.mounts[0].driver = Some("local".into());
        c.mounts[0].options =
            options(&[("type", "none"), ("o", "bind"), ("device", dir.path().to_str().unwrap())]);
        let loc = data_location(&c, Path::new("/data/keyfount.db")).unwrap();
        assert_eq!(loc.host_db, dir.path().join("keyfount.db"));
        assert!(loc.mounted_on_use().is_none());
    }

    #[test]
    fn volumes_mounted_only_on_use_are_named_and_refused_for_a_stop() {
        let dir = tempfile::tempdir().unwrap();
        for (driver, opts, says) in [
            (
                "local",
                options(&[("type", "nfs"), ("o", "addr=10.0.0.1,rw"), ("device", ":/kf")]),
                "nfs mount",
            ),
            ("local", options(&[("type", "tmpfs"), ("device", "tmpfs")]), "tmpfs mount"),
            ("rexray/ebs", options(&[]), "volume plugin rexray/ebs"),
        ] {
            let mut c = container(vec![(dir.path().to_str().unwrap(), "/data")]);
            c.mounts[0].driver = Some(driver.into());
            c.mounts[0].options = opts;
            let loc = data_location(&c, Path::new("/data/keyfount.db")).unwrap();
            assert!(loc.mounted_on_use().unwrap().contains(says), "{:?}", loc.mounted_on_use());
            let e = refuse_to_stop(&c, &loc, Purpose::ColdBackup).unwrap_err();
            assert_eq!(e.kind, Kind::Usage);
            assert!(e.message.contains("empty directory"), "{}", e.message);
            assert!(e.hint.unwrap().contains("--online"));
            // Running, its files are there: an online backup reads them.
            check_readable(&c, &loc).unwrap();
            c.running = false;
            c.status = "exited".into();
            let e = check_readable(&c, &loc).unwrap_err();
            assert_eq!(e.kind, Kind::Failed);
            assert!(!e.chain().contains("--db"), "{}", e.chain());
            assert!(!e.chain().contains("addr="), "driver options may hold secrets: {}", e.chain());
        }
    }

    #[test]
    fn links_are_followed_inside_the_container_s_mounts_only() {
        let vol = tempfile::tempdir().unwrap();
        std::fs::create_dir(vol.path().join("db")).unwrap();
        std::os::unix::fs::symlink("/data/db/keyfount.db", vol.path().join("keyfount.db")).unwrap();
        let c = container(vec![(vol.path().to_str().unwrap(), "/data")]);
        let loc = data_location(&c, Path::new("/data/keyfount.db")).unwrap();
        assert_eq!(loc.host_db, vol.path().join("db/keyfount.db"));
        assert_eq!(loc.host_dir, vol.path().join("db"));
        assert_eq!(loc.db_in_container, Path::new("/data/db/keyfount.db"));
        // Relative links and `..` resolve the same way.
        std::fs::remove_file(vol.path().join("keyfount.db")).unwrap();
        std::os::unix::fs::symlink("./db/../db/keyfount.db", vol.path().join("keyfount.db")).unwrap();
        assert_eq!(
            data_location(&c, Path::new("/data/keyfount.db")).unwrap().host_db,
            vol.path().join("db/keyfount.db")
        );
        // A link to a host file, absolute or through `..`, is not followed on this host.
        let host = tempfile::tempdir().unwrap();
        let decoy = host.path().join("decoy.db");
        std::fs::write(&decoy, b"x").unwrap();
        for target in [decoy.clone(), PathBuf::from("../../../..").join(decoy.strip_prefix("/").unwrap())] {
            std::fs::remove_file(vol.path().join("keyfount.db")).unwrap();
            std::os::unix::fs::symlink(&target, vol.path().join("keyfount.db")).unwrap();
            let e = data_location(&c, Path::new("/data/keyfount.db")).unwrap_err();
            assert_eq!(e.kind, Kind::Usage);
            assert!(e.message.contains("symbolic link"), "{}", e.message);
        }
        // A loop ends.
        std::fs::remove_file(vol.path().join("keyfount.db")).unwrap();
        std::os::unix::fs::symlink("/data/keyfount.db", vol.path().join("keyfount.db")).unwrap();
        let e = data_location(&c, Path::new("/data/keyfount.db")).unwrap_err();
        assert!(e.message.contains("more than 40"), "{}", e.message);
    }

    #[test]
    fn a_single_file_bind_mount_of_the_database_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("keyfount.db");
        std::fs::write(&file, b"").unwrap();
        let mut c = container(vec![(file.to_str().unwrap(), "/data/keyfount.db")]);
        c.mounts[0].kind = "bind".into();
        let e = data_location(&c, Path::new("/data/keyfount.db")).unwrap_err();
        assert_eq!(e.kind, Kind::Usage);
        assert!(e.message.contains("-wal") && e.message.contains("container's own layer"), "{}", e.message);
        assert!(e.hint.unwrap().contains(&format!("-v {}:/data", dir.path().display())));
    }

    #[test]
    fn mounts_nested_in_the_data_directory_are_its_parts() {
        let (a, b, d) =
            (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let c = container(vec![
            (a.path().to_str().unwrap(), "/data"),
            (d.path().to_str().unwrap(), "/data/uploads/thumbs"),
            (b.path().to_str().unwrap(), "/data/uploads"),
            ("/srv/logs", "/logs"),
        ]);
        let loc = data_location(&c, Path::new("/data/keyfount.db")).unwrap();
        let parts = loc.parts(true);
        assert_eq!(
            parts,
            vec![
                (PathBuf::new(), Some(a.path().to_path_buf())),
                (PathBuf::from("uploads"), Some(b.path().to_path_buf())),
                (PathBuf::from("uploads/thumbs"), Some(d.path().to_path_buf())),
            ]
        );
        assert_eq!(loc.parts(false)[1], (PathBuf::from("uploads"), None));
        let holder = |rel: &str| loc.nested_holding(Path::new(rel)).map(|m| m.destination.clone());
        assert_eq!(holder("uploads/x/y.png"), Some(PathBuf::from("/data/uploads")));
        assert_eq!(holder("uploads/thumbs/y.png"), Some(PathBuf::from("/data/uploads/thumbs")));
        assert_eq!(holder("keyfount.db"), None);
        assert_eq!(holder("uploadsx"), None);
        let rels = [Path::new("keyfount.db"), Path::new("uploads/a.png")];
        let e = refuse_nested_targets(&c, &loc, rels).unwrap_err();
        assert!(
            e.message.contains("data/uploads/a.png") && e.message.contains("/data/uploads"),
            "{}",
            e.message
        );
        refuse_nested_targets(&c, &loc, [Path::new("keyfount.db")]).unwrap();
    }

    #[test]
    fn paused_and_rm_containers_are_not_stopped() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = container(vec![(dir.path().to_str().unwrap(), "/data")]);
        let loc = data_location(&c, Path::new("/data/keyfount.db")).unwrap();
        refuse_to_stop(&c, &loc, Purpose::ColdBackup).unwrap();
        c.paused = true;
        let e = refuse_to_stop(&c, &loc, Purpose::Restore).unwrap_err();
        assert!(e.message.contains("paused") && e.hint.unwrap().contains("docker unpause keyfount"));
        c.paused = false;
        c.auto_remove = true;
        let e = refuse_to_stop(&c, &loc, Purpose::ColdBackup).unwrap_err();
        assert!(e.message.contains("--rm") && e.hint.unwrap().contains("--online"));
        // A stopped --rm container is not stopped again: nothing to refuse.
        c.running = false;
        refuse_to_stop(&c, &loc, Purpose::Restore).unwrap();
    }

    #[test]
    fn replicas_of_one_project_are_told_apart_by_name_not_by_project() {
        let summary = |name: &str, project: &str| bollard::models::ContainerSummary {
            names: Some(vec![format!("/{name}")]),
            labels: Some(HashMap::from([("com.docker.compose.project".to_string(), project.to_string())])),
            ..Default::default()
        };
        let e = ambiguous_service("kf", &[summary("p-kf-1", "p"), summary("p-kf-2", "p")]);
        let hint = e.hint.unwrap();
        assert!(!hint.contains("--compose-project") && hint.contains("--container p-kf-1"), "{hint}");
        let e = ambiguous_service("kf", &[summary("a-kf-1", "a"), summary("b-kf-1", "b")]);
        assert!(e.hint.unwrap().contains("--compose-project"));
    }

    #[test]
    fn the_deepest_mount_holding_the_database_wins() {
        let dir = tempfile::tempdir().unwrap();
        let deep = dir.path().join("deep");
        std::fs::create_dir(&deep).unwrap();
        let c = container(vec![(dir.path().to_str().unwrap(), "/"), (deep.to_str().unwrap(), "/data")]);
        let loc = data_location(&c, Path::new("/data/keyfount.db")).unwrap();
        assert_eq!(loc.host_db, deep.join("keyfount.db"));
        assert_eq!(loc.host_dir, deep);
    }

    #[test]
    fn a_mount_path_that_is_not_on_this_machine_says_so() {
        let c = container(vec![("/var/lib/docker/volumes/kfdata/_data-not-here", "/data")]);
        let e = data_location(&c, Path::new("/data/keyfount.db")).unwrap_err();
        assert_eq!(e.kind, Kind::Usage);
        assert!(e.message.contains("does not exist on this machine"), "{}", e.message);
        assert!(e.message.contains("DOCKER_HOST"), "{}", e.message);
        assert!(e.hint.unwrap().contains("machine that runs the Docker engine"));
    }

    #[test]
    fn no_mount_for_the_database_is_bad_input() {
        let c = container(vec![("/srv/logs", "/logs")]);
        let e = data_location(&c, Path::new("/data/keyfount.db")).unwrap_err();
        assert_eq!(e.kind, Kind::Usage);
        assert!(
            e.message.contains("no volume or bind mount that holds /data/keyfount.db (its mounts: /logs)"),
            "{}",
            e.message
        );
    }

    fn hc(
        interval: Option<i64>,
        timeout: Option<i64>,
        retries: Option<i64>,
        start: Option<i64>,
    ) -> Option<Healthcheck> {
        Healthcheck::from_config(&bollard::models::HealthConfig {
            test: Some(vec!["CMD".into(), "/check".into()]),
            interval,
            timeout,
            retries,
            start_period: start,
            start_interval: None,
        })
    }

    #[test]
    fn the_health_wait_follows_the_healthcheck() {
        const S: i64 = 1_000_000_000;
        // Docker's defaults: 30 s interval, 30 s timeout, 3 retries, no start period.
        let d = hc(None, None, None, None).unwrap();
        assert_eq!(d.verdict_within(), Duration::from_secs(3 * 60 + 30 + 10));
        // A slow one: 5 min interval, 10 s timeout, 2 retries, 60 s start period.
        let slow = hc(Some(300 * S), Some(10 * S), Some(2), Some(60 * S)).unwrap();
        assert_eq!(slow.verdict_within(), Duration::from_secs(60 + 2 * 310 + 300 + 10));
        assert!(slow.verdict_within() > Duration::from_secs(120), "longer than the old fixed default");
        // No test, or NONE: no healthcheck.
        assert_eq!(Healthcheck::from_config(&bollard::models::HealthConfig::default()), None);
        let none = bollard::models::HealthConfig { test: Some(vec!["NONE".into()]), ..Default::default() };
        assert_eq!(Healthcheck::from_config(&none), None);
    }

    #[test]
    fn health_timeout_only_overrides_and_a_rollback_waits_at_least_the_derived_time() {
        let c = Container {
            healthcheck: hc(Some(3_000_000_000), Some(5_000_000_000), Some(2), None),
            ..Container::default()
        };
        let settle = Duration::from_secs(5);
        let derived = UpWait::new(&c, settle, None);
        assert_eq!(derived.health, Duration::from_secs(2 * 8 + 3 + 10));
        assert!(!derived.health_from_flag);
        assert!(derived.too_slow().contains("--health-timeout"), "{}", derived.too_slow());
        let flag = UpWait::new(&c, settle, Some(Duration::from_secs(1)));
        assert_eq!(flag.health, Duration::from_secs(1));
        assert!(flag.too_slow().contains("--health-timeout 1 s"), "{}", flag.too_slow());
        assert_eq!(flag.at_least_derived().health, derived.health);
        let long = UpWait::new(&c, settle, Some(Duration::from_secs(600)));
        assert_eq!(long.at_least_derived().health, Duration::from_secs(600));
    }

    fn state(running: bool, started_at: &str, finished_at: &str) -> Container {
        Container {
            running,
            started_at: started_at.into(),
            finished_at: finished_at.into(),
            ..Container::default()
        }
    }

    #[test]
    fn a_restarting_or_restarted_container_is_not_up() {
        let first = Container { running: true, started_at: "a".into(), ..Container::default() };
        assert_eq!(not_up(&first, None), None);
        assert_eq!(not_up(&first, Some(&first)), None);
        let restarting = Container { restarting: true, restart_count: 1, ..first.clone() };
        assert!(not_up(&restarting, Some(&first)).unwrap().contains("keeps failing"));
        let again = Container { started_at: "b".into(), ..first.clone() };
        assert!(not_up(&again, Some(&first)).is_some());
        let paused = Container { paused: true, ..first.clone() };
        assert_eq!(not_up(&paused, Some(&first)).as_deref(), Some("it is paused"));
        let exited = Container { running: false, status: "exited".into(), exit_code: Some(3), ..first };
        assert_eq!(not_up(&exited, None).as_deref(), Some("it is exited (exit code 3)"));
    }

    #[test]
    fn a_journal_is_judged_by_the_containers_run_and_times() {
        let since_ms = unix_ms("2026-01-01T10:00:00Z").unwrap();
        let j = JournalEntry {
            container_id: "abc".into(),
            container_name: "kf".into(),
            pid: 1,
            since_unix: since_ms / 1000,
            command: "kfadmin backup --cold".into(),
            since_ms,
            started_at: Some("2026-01-01T09:00:00.123456789Z".into()),
            stop_timeout_s: Some(5),
        };
        let run = "2026-01-01T09:00:00.123456789Z";
        let later = "2026-01-01T10:00:20Z";
        // Still the run kfadmin stopped, within the stop timeout: the stop is under way.
        assert_eq!(judge(&j, &state(true, run, ""), since_ms + 3_000), Fate::StopUnderWay);
        // ... long after: the stop never took effect.
        assert_eq!(judge(&j, &state(true, run, ""), since_ms + 3_600_000), Fate::NeverStopped);
        // Another run: started since.
        assert_eq!(judge(&j, &state(true, later, ""), since_ms + 3_000), Fate::StartedSince);
        // Down since kfadmin's stop: a start is owed.
        assert_eq!(
            judge(&j, &state(false, run, "2026-01-01T10:00:05Z"), since_ms + 60_000),
            Fate::OwedAStart
        );
        // Down, but stopped long after kfadmin's stop could have ended, or on another run.
        assert_eq!(
            judge(&j, &state(false, run, "2026-01-01T11:00:00Z"), since_ms + 7_200_000),
            Fate::StoppedByOther
        );
        assert_eq!(judge(&j, &state(false, later, "2026-01-01T10:30:00Z"), since_ms), Fate::StoppedByOther);
        // A journal of an older version: running or not is all there is.
        let old = JournalEntry { started_at: None, stop_timeout_s: None, since_ms: 0, ..j };
        assert_eq!(judge(&old, &state(true, later, ""), 0), Fate::StartedSince);
        assert_eq!(judge(&old, &state(false, run, ""), 0), Fate::OwedAStart);
        let parsed: JournalEntry = serde_json::from_str(
            r#"{"container_id":"a","container_name":"kf","pid":2,"since_unix":3,"command":"x"}"#,
        )
        .unwrap();
        assert_eq!(parsed.started_at, None);
    }
}
