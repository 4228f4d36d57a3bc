//! The Docker side of the test environment: the real engine (scripts/test.sh starts one), a
//! FROM-scratch image holding the static keyfount-sim writer (uid 1000, handles SIGTERM), and
//! containers with a named volume or a bind mount, removed when dropped.

#![allow(dead_code)]

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use bollard::models::{
    ContainerCreateBody, ContainerInspectResponse, HealthConfig, HostConfig, RestartPolicy,
};
use bollard::query_parameters::{
    BuildImageOptionsBuilder, CreateContainerOptionsBuilder, KillContainerOptionsBuilder,
    RemoveContainerOptionsBuilder, RemoveVolumeOptionsBuilder, StopContainerOptionsBuilder,
};
use bollard::Docker;
use futures_util::StreamExt;
use serde_json::Value;

use crate::util::*;

/// Run an async bollard call to completion on a small runtime of its own.
pub fn block<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(f)
}

/// The engine; a test that needs Docker fails (never skips) without one.
pub fn docker() -> Docker {
    let d = Docker::connect_with_defaults().expect("Docker client");
    block(async {
        let d = d.negotiate_version().await.unwrap_or_else(|e| {
            panic!("the Docker tests need a running Docker Engine (scripts/test.sh installs and starts one): {e}")
        });
        d.ping().await.unwrap_or_else(|e| panic!("the Docker engine does not answer: {e}"));
        d
    })
}

/// The test image: `FROM scratch`, the static writer, /data and /status owned by uid 1000.
pub fn image() -> String {
    static TAG: OnceLock<String> = OnceLock::new();
    TAG.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let bin = static_sim(root);
        use sha2::Digest;
        let tag = format!("kfadmin-test-sim:{}", &format!("{:x}", sha2::Sha256::digest(&bin))[..16]);
        let d = docker();
        if block(d.inspect_image(&tag)).is_ok() {
            return tag;
        }
        let dockerfile = "FROM scratch\n\
            COPY --chown=1000:1000 data/ /data/\n\
            COPY --chown=1000:1000 status/ /status/\n\
            COPY keyfount-sim /keyfount-sim\n\
            USER 1000:1000\n\
            ENTRYPOINT [\"/keyfount-sim\"]\n";
        let mut tar = tar::Builder::new(Vec::new());
        let mut add = |name: &str, data: &[u8], mode: u32, dir: bool| {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(if dir { tar::EntryType::Directory } else { tar::EntryType::Regular });
            h.set_size(data.len() as u64);
            h.set_mode(mode);
            h.set_cksum();
            tar.append_data(&mut h, name, data).unwrap();
        };
        add("Dockerfile", dockerfile.as_bytes(), 0o644, false);
        add("keyfount-sim", &bin, 0o755, false);
        add("data/", b"", 0o700, true);
        add("status/", b"", 0o755, true);
        let context = tar.into_inner().unwrap();
        let opts = BuildImageOptionsBuilder::default().t(&tag).rm(true).forcerm(true).build();
        block(async {
            let mut stream = d.build_image(opts, None, Some(bollard::body_full(bytes::Bytes::from(context))));
            while let Some(item) = stream.next().await {
                let info = item.unwrap_or_else(|e| panic!("building the test image failed: {e}"));
                if let Some(err) = info.error_detail {
                    panic!("building the test image failed: {err:?}");
                }
            }
        });
        tag
    })
    .clone()
}

/// An image built `FROM` the test image with more Dockerfile lines (e.g. `LABEL …`), tagged
/// `tag` (unique per test: a test may remove it).
pub fn derived_image(tag: &str, lines: &str) -> String {
    let dockerfile = format!("FROM {}\n{lines}\n", image());
    let mut context = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(dockerfile.len() as u64);
    h.set_mode(0o644);
    h.set_cksum();
    context.append_data(&mut h, "Dockerfile", dockerfile.as_bytes()).unwrap();
    let opts = BuildImageOptionsBuilder::default().t(tag).rm(true).build();
    let body = bollard::body_full(bytes::Bytes::from(context.into_inner().unwrap()));
    let d = docker();
    block(async {
        let mut stream = d.build_image(opts, None, Some(body));
        while let Some(item) = stream.next().await {
            assert!(item.unwrap().error_detail.is_none(), "building {tag} failed");
        }
    });
    tag.to_string()
}

/// keyfount-sim as a static binary for a FROM-scratch image: the musl target (with Debian's
/// musl-tools), or else glibc with `+crt-static`.
fn static_sim(root: &Path) -> Vec<u8> {
    let attempts: [(&str, &str, &str); 2] = [
        ("x86_64-unknown-linux-musl", "target/musl-sim", ""),
        ("x86_64-unknown-linux-gnu", "target/static-sim", "-C target-feature=+crt-static"),
    ];
    for (target, dir, flags) in attempts {
        let target_dir = root.join(dir);
        let mut cmd = Command::new(env!("CARGO"));
        cmd.args(["build", "--release", "--locked", "-p", "keyfount-sim", "--target", target])
            .env("CARGO_TARGET_DIR", &target_dir)
            .current_dir(root);
        if !flags.is_empty() {
            cmd.env("RUSTFLAGS", flags);
        }
        if cmd.status().is_ok_and(|s| s.success()) {
            return std::fs::read(target_dir.join(target).join("release/keyfount-sim")).unwrap();
        }
    }
    panic!(
        "building a static keyfount-sim failed for both the musl target (needs `rustup target add x86_64-unknown-linux-musl` and musl-tools) and static glibc"
    );
}

/// Where the container's /data lives.
pub enum Data {
    /// A new named volume, initialised from the image (owned by uid 1000).
    Volume,
    /// A bind mount of this host directory.
    Bind(PathBuf),
    /// No mount at all: the data lives in the container's own layer.
    None,
}

pub struct Spec {
    pub data: Data,
    pub init_mb: u32,
    pub rate: u32,
    pub ignore_sigterm: bool,
    pub stop_timeout: Option<i64>,
    pub labels: Vec<(String, String)>,
    pub healthcheck: bool,
    /// Driver options for the `Data::Volume` volume (Compose `driver_opts`), created with them
    /// before the container.
    pub volume_opts: Vec<(String, String)>,
    /// More `-v` mounts (`SOURCE:DEST`), after the data mount.
    pub extra_binds: Vec<String>,
    /// `--rm`: the engine deletes the container once it stops.
    pub auto_remove: bool,
    /// With `healthcheck`: the probe interval (default 500 ms).
    pub health_interval_ms: Option<i64>,
    /// `unless-stopped`, `always`, `on-failure` (default: none).
    pub restart_policy: Option<String>,
    /// The sim's arguments instead of `run …` (e.g. `hostile …`); it must write
    /// /status/status.json with a `last_seq` of at least 1.
    pub command: Option<Vec<String>>,
    /// Another image than the test image (one built `FROM` it).
    pub image: Option<String>,
    /// Host configuration beyond the test's own (limits, hardening), merged under it.
    pub host: HostConfig,
}

impl Default for Spec {
    fn default() -> Self {
        Spec {
            data: Data::Volume,
            init_mb: 8,
            rate: 100,
            ignore_sigterm: false,
            stop_timeout: None,
            labels: vec![],
            healthcheck: false,
            volume_opts: vec![],
            extra_binds: vec![],
            auto_remove: false,
            health_interval_ms: None,
            restart_policy: None,
            command: None,
            image: None,
            host: HostConfig::default(),
        }
    }
}

/// A running test container (and its volume), removed when dropped.
pub struct Kf {
    pub name: String,
    pub volume: Option<String>,
    pub status_dir: PathBuf,
    bind: Option<PathBuf>,
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

impl Kf {
    pub fn start(env: &Env, tag: &str, spec: Spec) -> Kf {
        let image = spec.image.clone().unwrap_or_else(image);
        let d = docker();
        let name =
            format!("kfadmin-test-{}-{}-{tag}", std::process::id(), COUNTER.fetch_add(1, Ordering::SeqCst));
        let status_dir = env.path(&format!("status-{tag}"));
        std::fs::create_dir_all(&status_dir).unwrap();
        std::fs::set_permissions(&status_dir, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
        let (volume, bind, data_bind) = match &spec.data {
            Data::Volume => (Some(name.clone()), None, Some(format!("{name}:/data"))),
            Data::Bind(p) => (None, Some(p.clone()), Some(format!("{}:/data", p.display()))),
            Data::None => (None, None, None),
        };
        if let (Some(v), false) = (&volume, spec.volume_opts.is_empty()) {
            let opts = bollard::models::VolumeCreateRequest {
                name: Some(v.clone()),
                driver: Some("local".into()),
                driver_opts: Some(spec.volume_opts.iter().cloned().collect()),
                ..Default::default()
            };
            block(d.create_volume(opts)).unwrap_or_else(|e| panic!("creating volume {v}: {e}"));
        }
        let mut binds = vec![format!("{}:/status", status_dir.display())];
        binds.extend(data_bind);
        binds.extend(spec.extra_binds.iter().cloned());
        let mut cmd = vec![
            "run".to_string(),
            "--db".into(),
            "/data/keyfount.db".into(),
            "--init-size-mb".into(),
            spec.init_mb.to_string(),
            "--rate".into(),
            spec.rate.to_string(),
            "--status-file".into(),
            "/status/status.json".into(),
        ];
        if spec.ignore_sigterm {
            cmd.push("--ignore-sigterm".into());
        }
        if let Some(c) = &spec.command {
            cmd = c.clone();
        }
        let body = ContainerCreateBody {
            image: Some(image),
            cmd: Some(cmd),
            labels: Some(spec.labels.into_iter().collect::<HashMap<_, _>>()),
            stop_timeout: spec.stop_timeout,
            healthcheck: spec.healthcheck.then(|| HealthConfig {
                test: Some(vec![
                    "CMD".into(),
                    "/keyfount-sim".into(),
                    "check".into(),
                    "--db".into(),
                    "/data/keyfount.db".into(),
                ]),
                interval: Some(spec.health_interval_ms.unwrap_or(500) * 1_000_000),
                timeout: Some(5_000_000_000),
                retries: Some(2),
                start_period: Some(0),
                start_interval: None,
            }),
            host_config: Some(HostConfig {
                binds: Some(binds),
                network_mode: Some("none".into()),
                auto_remove: Some(spec.auto_remove),
                restart_policy: spec.restart_policy.as_deref().map(|p| RestartPolicy {
                    name: Some(p.parse().unwrap_or_else(|_| panic!("restart policy {p}"))),
                    maximum_retry_count: None,
                }),
                ..spec.host
            }),
            ..Default::default()
        };
        let opts = CreateContainerOptionsBuilder::default().name(&name).build();
        block(d.create_container(Some(opts), body)).unwrap_or_else(|e| panic!("creating {name}: {e}"));
        let kf = Kf { name, volume, status_dir, bind };
        block(d.start_container(&kf.name, None::<bollard::query_parameters::StartContainerOptions>))
            .unwrap_or_else(|e| panic!("starting {}: {e}", kf.name));
        kf.wait_for(|s| s["last_seq"].as_i64().unwrap_or(-1) >= 1);
        kf
    }

    pub fn inspect(&self) -> ContainerInspectResponse {
        block(
            docker()
                .inspect_container(&self.name, None::<bollard::query_parameters::InspectContainerOptions>),
        )
        .unwrap()
    }

    pub fn running(&self) -> bool {
        self.inspect().state.and_then(|s| s.running).unwrap_or(false)
    }

    pub fn started_at(&self) -> String {
        self.inspect().state.and_then(|s| s.started_at).unwrap_or_default()
    }

    pub fn exit_code(&self) -> Option<i64> {
        self.inspect().state.and_then(|s| s.exit_code)
    }

    /// The data directory on this host.
    pub fn host_data(&self) -> PathBuf {
        match (&self.volume, &self.bind) {
            (Some(v), _) => PathBuf::from(block(docker().inspect_volume(v)).unwrap().mountpoint),
            (None, Some(b)) => b.clone(),
            _ => panic!("{} has no data mount", self.name),
        }
    }

    pub fn status_path(&self) -> PathBuf {
        self.status_dir.join("status.json")
    }

    /// The writer's status; `None` while the file does not exist yet.
    pub fn status(&self) -> Value {
        for _ in 0..100 {
            if let Ok(t) = std::fs::read_to_string(self.status_path()) {
                if let Ok(v) = serde_json::from_str(&t) {
                    return v;
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("no status from {}", self.name)
    }

    pub fn wait_for(&self, f: impl Fn(&Value) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Ok(t) = std::fs::read_to_string(self.status_path()) {
                if let Ok(v) = serde_json::from_str::<Value>(&t) {
                    if f(&v) {
                        return;
                    }
                }
            }
            if !self.running() && !self.status_path().exists() {
                panic!("{} exited before writing a status", self.name);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("{} never reached the expected state", self.name);
    }

    pub fn kill(&self) {
        let opts = KillContainerOptionsBuilder::default().signal("SIGKILL").build();
        block(docker().kill_container(&self.name, Some(opts))).unwrap();
        self.wait_stopped();
    }

    pub fn stop(&self) {
        let opts = StopContainerOptionsBuilder::default().t(30).build();
        block(docker().stop_container(&self.name, Some(opts))).unwrap();
    }

    pub fn wait_stopped(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.running() {
            assert!(Instant::now() < deadline, "{} did not stop", self.name);
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Wait until the container runs again and its writer has moved past `seq`.
    pub fn wait_writing_past(&self, seq: i64) {
        self.wait_for(|s| s["last_seq"].as_i64().unwrap_or(-1) > seq && s["done"] == false);
    }
}

impl Drop for Kf {
    fn drop(&mut self) {
        let d = docker();
        let opts = RemoveContainerOptionsBuilder::default().force(true).v(true).build();
        let _ = block(d.remove_container(&self.name, Some(opts)));
        if let Some(v) = &self.volume {
            let _ =
                block(d.remove_volume(v, Some(RemoveVolumeOptionsBuilder::default().force(true).build())));
        }
    }
}

/// Run kfadmin with extra environment (e.g. DOCKER_HOST, KFADMIN_STATE_DIR).
pub fn kfadmin_env<I, S>(env: &[(&str, &str)], args: I) -> Run
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let mut cmd = Command::new(kfadmin_bin());
    cmd.args(args).stdin(std::process::Stdio::null()).env_remove("KFADMIN_BACKUP_DIR");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("kfadmin runs").into()
}

pub fn write_file(path: &Path, data: &[u8]) {
    let mut f = std::fs::File::create(path).unwrap();
    f.write_all(data).unwrap();
}

/// The journals in a state directory: containers kfadmin stopped, swaps and drills in progress
/// (it also holds kfadmin's `locks/`, private `staging/` and the record of passed `drills/`).
pub fn journals(state: &Path) -> Vec<String> {
    ls(state)
        .into_iter()
        .filter(|n| n.starts_with("stopped-") || n.starts_with("swap-") || n.starts_with("drill-"))
        .collect()
}
