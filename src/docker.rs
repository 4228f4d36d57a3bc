//! Every Docker Engine call kfadmin makes (bollard): find the container, the mount that holds
//! its database, stop and start it, wait until it is up. A blocking facade: the commands are
//! synchronous, and each call runs on a small runtime of its own.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bollard::errors::Error as BollardError;
use bollard::query_parameters::{
    InspectContainerOptions, ListContainersOptionsBuilder, StartContainerOptions, StopContainerOptionsBuilder,
};
use bollard::Docker;
use serde::Serialize;

use crate::error::{check_interrupt, Error, IoContext, Kind, Result};

/// What kfadmin needs to know about a container.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Container {
    pub id: String,
    pub name: String,
    pub image: String,
    pub status: String,
    pub running: bool,
    /// "starting", "healthy", "unhealthy", or None without a healthcheck.
    pub health: Option<String>,
    pub stop_timeout: Option<i64>,
    pub exit_code: Option<i64>,
    pub oom_killed: bool,
    /// Paused (`docker pause`); `running` is true as well.
    pub paused: bool,
    /// Waiting to be restarted by its restart policy (a crash loop).
    pub restarting: bool,
    /// Created with `--rm`: the engine deletes it as soon as it stops.
    pub auto_remove: bool,
    pub mounts: Vec<Mount>,
    #[serde(skip)]
    pub labels: HashMap<String, String>,
    /// When the engine last started it, as the engine writes it (RFC 3339 with nanoseconds):
    /// with `restart_count`, tells one run of the container from the next.
    pub started_at: String,
    /// When its last run ended (`0001-01-01T00:00:00Z` before the first).
    pub finished_at: String,
    /// Restarts by its restart policy since it was last started by hand (`docker start`
    /// resets it).
    pub restart_count: i64,
    /// `no`, `always`, `unless-stopped` or `on-failure`, for messages.
    pub restart_policy: Option<String>,
    /// Its healthcheck (its own or its image's), None without one.
    pub healthcheck: Option<Healthcheck>,
}

/// A container's healthcheck timing, with Docker's defaults filled in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Healthcheck {
    pub interval: Duration,
    pub timeout: Duration,
    pub retries: u32,
    pub start_period: Duration,
}

impl Healthcheck {
    /// From the engine's config (nanoseconds, 0 = Docker's default); None when there is no
    /// test or it is `NONE`.
    fn from_config(h: &bollard::models::HealthConfig) -> Option<Healthcheck> {
        let test = h.test.as_deref().unwrap_or_default();
        if test.is_empty() || test[0] == "NONE" {
            return None;
        }
        let dur = |ns: Option<i64>, default_s: u64| match ns {
            Some(ns) if ns > 0 => Duration::from_nanos(ns as u64),
            _ => Duration::from_secs(default_s),
        };
        Some(Healthcheck {
            interval: dur(h.interval, 30),
            timeout: dur(h.timeout, 30),
            retries: h.retries.filter(|r| *r > 0).map(|r| r.min(1000) as u32).unwrap_or(3),
            start_period: dur(h.start_period, 0),
        })
    }

    /// How long the engine may take to call it healthy or unhealthy after a start: its start
    /// period, then `retries` failed probes (each an interval plus its timeout), plus the first
    /// interval (the first probe runs an interval after the start) and 10 s of margin.
    pub fn verdict_within(&self) -> Duration {
        self.start_period
            + (self.interval + self.timeout) * self.retries
            + self.interval
            + Duration::from_secs(10)
    }

    fn describe(&self) -> String {
        format!(
            "start period {} s + {} retries x (interval {} s + timeout {} s) + the first interval + 10 s",
            self.start_period.as_secs_f64(),
            self.retries,
            self.interval.as_secs_f64(),
            self.timeout.as_secs_f64()
        )
    }
}

/// How long [`Engine::wait_up`] waits for a started container.
#[derive(Debug, Clone, Copy)]
pub struct UpWait {
    /// Without a healthcheck: how long it must keep running, unrestarted.
    pub settle: Duration,
    /// With a healthcheck: how long to wait for "healthy".
    pub health: Duration,
    /// The operator chose `health` (`--health-timeout`); otherwise it comes from the healthcheck.
    pub health_from_flag: bool,
    healthcheck: Option<Healthcheck>,
}

impl UpWait {
    /// `--settle`, and `--health-timeout` when given, for container `c`: the health wait
    /// defaults to what its healthcheck needs to reach a verdict.
    pub fn new(c: &Container, settle: Duration, health_timeout: Option<Duration>) -> UpWait {
        let derived = c.healthcheck.map(|h| h.verdict_within()).unwrap_or(settle);
        UpWait {
            settle,
            health: health_timeout.unwrap_or(derived),
            health_from_flag: health_timeout.is_some(),
            healthcheck: c.healthcheck,
        }
    }

    /// For a rollback: never shorter than what the healthcheck needs, whatever
    /// `--health-timeout` said (a too-short flag must not turn a rollback into exit 4).
    pub fn at_least_derived(self) -> UpWait {
        let derived = self.healthcheck.map(|h| h.verdict_within()).unwrap_or(self.settle);
        UpWait { health: self.health.max(derived), ..self }
    }

    fn too_slow(&self) -> String {
        let secs = self.health.as_secs();
        match (self.health_from_flag, self.healthcheck) {
            (true, Some(h)) => format!(
                "its healthcheck did not report healthy within --health-timeout {secs} s (the healthcheck may need up to {} s: {})",
                h.verdict_within().as_secs(),
                h.describe()
            ),
            (_, Some(h)) => format!(
                "its healthcheck did not report healthy within {secs} s ({}); pass --health-timeout to wait longer",
                h.describe()
            ),
            (_, None) => format!("it did not come up within {secs} s"),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Mount {
    /// "volume" or "bind" (or another driver's type, e.g. "tmpfs").
    pub kind: String,
    pub name: Option<String>,
    /// The host path: a bind source, a volume's mountpoint, or the device of a local volume
    /// with bind options (once [`data_location`] has resolved it).
    pub source: PathBuf,
    pub destination: PathBuf,
    pub rw: bool,
    /// A volume's driver: "local", or a plugin.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub driver: Option<String>,
    /// A volume's driver options (Compose `driver_opts`), filled in by [`Engine::find`]. They
    /// may hold credentials (CIFS `o: password=…`): never printed.
    #[serde(skip)]
    pub options: std::collections::BTreeMap<String, String>,
    /// Why the engine mounts this volume only while a container uses it (NFS, CIFS or tmpfs
    /// options, a volume plugin): stopped, its host path is an empty directory.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mounted_on_use: Option<String>,
}

impl Mount {
    /// "volume kfdata", "bind mount /srv/kf", for messages.
    pub fn describe(&self) -> String {
        match (self.kind.as_str(), &self.name) {
            ("volume", Some(n)) => format!("volume {n}"),
            ("bind", _) => format!("bind mount {}", self.source.display()),
            (kind, _) => format!("{kind} mount"),
        }
    }
}

/// Where a container's database lives on this host.
#[derive(Debug, Clone, Serialize)]
pub struct DataLocation {
    pub mount: Mount,
    /// The database's directory on the host.
    pub host_dir: PathBuf,
    /// The database file on the host.
    pub host_db: PathBuf,
    /// The database's path inside the container, its symbolic links followed.
    pub db_in_container: PathBuf,
    /// Mounts inside the data directory (`-v uploads:/data/uploads`), shallowest first.
    pub nested: Vec<Mount>,
}

impl DataLocation {
    /// The container's data directory.
    pub fn dir_in_container(&self) -> &Path {
        self.db_in_container.parent().unwrap_or(Path::new("/"))
    }

    /// The data directory as (path inside it, host directory) pairs: its own mount first
    /// (path ""), then each nested mount; `None` for a nested mount when `nested` is false (its
    /// mount point is left out, and so is what its parent hides under it).
    pub fn parts(&self, nested: bool) -> Vec<(PathBuf, Option<PathBuf>)> {
        let mut parts = vec![(PathBuf::new(), Some(self.host_dir.clone()))];
        for m in &self.nested {
            let rel = m.destination.strip_prefix(self.dir_in_container()).unwrap_or(&m.destination);
            parts.push((rel.to_path_buf(), nested.then(|| m.source.clone())));
        }
        parts
    }

    /// Why the data, or a mount nested in it, is on this host only while the container runs.
    pub fn mounted_on_use(&self) -> Option<&str> {
        std::iter::once(&self.mount).chain(&self.nested).find_map(|m| m.mounted_on_use.as_deref())
    }

    /// The nested mount that holds `rel`, a path relative to the data directory.
    pub fn nested_holding(&self, rel: &Path) -> Option<&Mount> {
        let abs = self.dir_in_container().join(rel);
        self.nested
            .iter()
            .filter(|m| abs.starts_with(&m.destination))
            .max_by_key(|m| m.destination.components().count())
    }
}

/// What kfadmin is about to do to a container, for [`Engine::check_stoppable`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    ColdBackup,
    Restore,
}

impl Purpose {
    fn action(self) -> &'static str {
        match self {
            Purpose::ColdBackup => "a cold backup",
            Purpose::Restore => "a restore",
        }
    }
}

/// How a stop ended.
#[derive(Debug, Clone, Serialize)]
pub struct Stopped {
    pub exit_code: Option<i64>,
    pub oom_killed: bool,
    pub duration_ms: u64,
}

pub struct Engine {
    rt: tokio::runtime::Runtime,
    docker: Docker,
    /// Where the engine is, for messages.
    pub host: String,
}

fn engine_host() -> String {
    std::env::var("DOCKER_HOST").unwrap_or_else(|_| "unix:///var/run/docker.sock".to_string())
}

impl Engine {
    /// Connect to the engine that `DOCKER_HOST` names (or the local socket) and negotiate
    /// the API version.
    pub fn connect() -> Result<Engine> {
        let host = engine_host();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::failed("cannot start the Docker client").source(e))?;
        let unreachable = |e: BollardError| {
            let text = e.to_string();
            let hint = if text.contains("ermission denied") {
                "run kfadmin as root or as a member of the docker group".to_string()
            } else {
                "is the Docker daemon running (`systemctl start docker`)? Set DOCKER_HOST to reach another engine".to_string()
            };
            Error::failed(format!("cannot reach the Docker engine at {host}")).hint(hint).source(e)
        };
        let docker = Docker::connect_with_defaults().map_err(unreachable)?;
        let docker = rt
            .block_on(async {
                tokio::time::timeout(Duration::from_secs(15), docker.negotiate_version()).await
            })
            .map_err(|_| Error::failed(format!("the Docker engine at {host} did not answer within 15 s")))?
            .map_err(unreachable)?;
        rt.block_on(docker.ping()).map_err(unreachable)?;
        Ok(Engine { rt, docker, host })
    }

    /// A container by name or id, or by Compose service name when exactly one container has
    /// the label `com.docker.compose.service=NAME` (in `project` when given), with its volumes'
    /// driver options.
    pub fn find(&self, name: &str, project: Option<&str>) -> Result<Container> {
        let c = match self.inspect(name) {
            Ok(c) => c,
            Err(e) if e.kind == Kind::Usage => self.find_service(name, project)?,
            Err(e) => return Err(e),
        };
        self.with_volume_options(c)
    }

    fn find_service(&self, name: &str, project: Option<&str>) -> Result<Container> {
        let mut filters: HashMap<&str, Vec<String>> = HashMap::new();
        let mut labels = vec![format!("com.docker.compose.service={name}")];
        if let Some(p) = project {
            labels.push(format!("com.docker.compose.project={p}"));
        }
        filters.insert("label", labels);
        let opts = ListContainersOptionsBuilder::default().all(true).filters(&filters).build();
        let list =
            self.rt.block_on(self.docker.list_containers(Some(opts))).map_err(|e| self.api_err(e, name))?;
        match list.len() {
            0 => Err(Error::usage(format!(
                "no container is named {name}{}",
                if project.is_some() {
                    " or is that Compose service in that project"
                } else {
                    " or is a Compose service of that name"
                }
            ))
            .hint(
                "list the containers with `docker ps -a` and pass a name, an id or a Compose service name",
            )),
            1 => self.inspect(list[0].id.as_deref().unwrap_or_default()),
            _ => Err(ambiguous_service(name, &list)),
        }
    }

    /// Each volume's driver and options (`driver_opts`), which say whether the engine mounts
    /// it only while a container uses it.
    fn with_volume_options(&self, mut c: Container) -> Result<Container> {
        for m in c.mounts.iter_mut().filter(|m| m.kind == "volume") {
            let Some(name) = m.name.clone() else { continue };
            let v = self.rt.block_on(self.docker.inspect_volume(&name)).map_err(|e| {
                Error::failed(format!("cannot inspect volume {name} of container {}", c.name)).source(e)
            })?;
            m.options = v.options.into_iter().collect();
            if m.driver.as_deref().unwrap_or("").is_empty() {
                m.driver = Some(v.driver);
            }
        }
        Ok(c)
    }

    pub fn inspect(&self, name: &str) -> Result<Container> {
        let c = self
            .rt
            .block_on(self.docker.inspect_container(name, None::<InspectContainerOptions>))
            .map_err(|e| self.api_err(e, name))?;
        let state = c.state.unwrap_or_default();
        let config = c.config.unwrap_or_default();
        let auto_remove = c.host_config.as_ref().and_then(|h| h.auto_remove).unwrap_or(false);
        let restart_policy = c
            .host_config
            .and_then(|h| h.restart_policy)
            .and_then(|p| p.name)
            .map(|n| n.to_string())
            .filter(|n| !n.is_empty());
        let mounts = c
            .mounts
            .unwrap_or_default()
            .into_iter()
            .map(|m| Mount {
                kind: m.typ.unwrap_or_default(),
                name: m.name.filter(|n| !n.is_empty()),
                source: PathBuf::from(m.source.unwrap_or_default()),
                destination: PathBuf::from(m.destination.unwrap_or_default()),
                rw: m.rw.unwrap_or(false),
                driver: m.driver.filter(|d| !d.is_empty()),
                ..Mount::default()
            })
            .collect();
        Ok(Container {
            id: c.id.unwrap_or_default(),
            name: c.name.unwrap_or_default().trim_start_matches('/').to_string(),
            image: config.image.unwrap_or_default(),
            status: state.status.map(|s| s.to_string()).unwrap_or_default(),
            running: state.running.unwrap_or(false),
            health: state
                .health
                .and_then(|h| h.status)
                .map(|s| s.to_string())
                .filter(|s| !s.is_empty() && s != "none"),
            stop_timeout: config.stop_timeout,
            exit_code: state.exit_code,
            oom_killed: state.oom_killed.unwrap_or(false),
            paused: state.paused.unwrap_or(false),
            restarting: state.restarting.unwrap_or(false),
            auto_remove,
            mounts,
            labels: config.labels.unwrap_or_default(),
            started_at: state.started_at.unwrap_or_default(),
            finished_at: state.finished_at.unwrap_or_default(),
            restart_count: c.restart_count.unwrap_or(0),
            restart_policy,
            healthcheck: config.healthcheck.as_ref().and_then(Healthcheck::from_config),
        })
    }

    /// Stop gracefully: the stop signal (SIGTERM), then after `timeout_s` SIGKILL; returns
    /// once the container has exited, with how the stop ended and the container's state after
    /// it (which the caller judges: something may have started it again at once).
    pub fn stop(&self, c: &Container, timeout_s: i64) -> Result<(Stopped, Container)> {
        let started = Instant::now();
        let docker = self.docker.clone().with_timeout(Duration::from_secs(timeout_s.max(0) as u64 + 120));
        let opts = StopContainerOptionsBuilder::default().t(timeout_s as i32).build();
        self.rt.block_on(docker.stop_container(&c.id, Some(opts))).map_err(|e| self.api_err(e, &c.name))?;
        let after = self.inspect(&c.id)?;
        let stopped = Stopped {
            exit_code: after.exit_code,
            oom_killed: after.oom_killed,
            duration_ms: started.elapsed().as_millis() as u64,
        };
        Ok((stopped, after))
    }

    /// Start it. The engine also answers success when it already runs: callers that need to
    /// know who started it inspect first.
    pub fn start(&self, c: &Container) -> Result<()> {
        self.rt
            .block_on(self.docker.start_container(&c.id, None::<StartContainerOptions>))
            .map_err(|e| self.api_err(e, &c.name))
    }

    /// Wait until a container that was just started is up: healthy when it has a healthcheck,
    /// otherwise running for `settle`. Up means running, not restarting, not paused, and the
    /// same run the whole time (same StartedAt, no restart by its restart policy: a start by
    /// hand resets RestartCount). Returns the reason when it does not come up.
    pub fn wait_up(&self, c: &Container, wait: &UpWait) -> Result<std::result::Result<Container, String>> {
        self.wait_up_with(c, wait, false)
    }

    /// [`Engine::wait_up`] that gives up on Ctrl-C or SIGTERM (exit 130): for a container whose
    /// caller removes it on the way out (a drill's), not one that must be left running.
    pub fn wait_up_interruptible(
        &self,
        c: &Container,
        wait: &UpWait,
    ) -> Result<std::result::Result<Container, String>> {
        self.wait_up_with(c, wait, true)
    }

    fn wait_up_with(
        &self,
        c: &Container,
        wait: &UpWait,
        interruptible: bool,
    ) -> Result<std::result::Result<Container, String>> {
        let limit = if c.healthcheck.is_some() { wait.health } else { wait.settle };
        let deadline = Instant::now() + limit;
        let mut first: Option<Container> = None;
        loop {
            let now = self.inspect(&c.id)?;
            if let Some(why) = not_up(&now, first.as_ref()) {
                return Ok(Err(why));
            }
            first.get_or_insert_with(|| now.clone());
            let past = Instant::now() >= deadline;
            match now.health.as_deref() {
                Some("healthy") => return Ok(Ok(now)),
                Some("unhealthy") => return Ok(Err("its healthcheck reports unhealthy".into())),
                None if c.healthcheck.is_none() && past => return Ok(Ok(now)),
                _ if past => return Ok(Err(wait.too_slow())),
                _ => {}
            }
            std::thread::sleep(Duration::from_millis(200));
            if interruptible {
                check_interrupt()?;
            }
            // Otherwise an interrupt must not abandon a container half-started: keep waiting.
        }
    }

    fn api_err(&self, e: BollardError, what: &str) -> Error {
        match &e {
            BollardError::DockerResponseServerError { status_code: 404, message } => {
                Error::usage(format!("no such container: {what}")).hint(format!(
                    "the engine at {} says: {message}; list containers with `docker ps -a`",
                    self.host
                ))
            }
            BollardError::DockerResponseServerError { message, .. } => {
                Error::failed(format!("the Docker engine refused the request for {what}: {message}"))
            }
            _ => Error::failed(format!("the Docker engine at {} failed a request for {what}", self.host))
                .hint("check that the Docker daemon is running and reachable")
                .source(e),
        }
    }
}

impl Engine {
    /// Refuse (exit 2), before anything is stopped, a stop for `purpose` that would lose the
    /// container or its data or change a state the operator chose ([`refuse_to_stop`]), or
    /// that would leave another running container (a Compose replica) with the database open.
    pub fn check_stoppable(&self, c: &Container, loc: &DataLocation, purpose: Purpose) -> Result<()> {
        refuse_to_stop(c, loc, purpose)?;
        let busy: Vec<(String, String)> = self
            .others_using(c, loc)?
            .into_iter()
            .filter(|(_, state)| !matches!(state.as_str(), "exited" | "created" | "dead"))
            .collect();
        if busy.is_empty() {
            return Ok(());
        }
        let listed: Vec<String> = busy.iter().map(|(n, s)| format!("{n} ({s})")).collect();
        let names: Vec<&str> = busy.iter().map(|(n, _)| n.as_str()).collect();
        let also = if purpose == Purpose::ColdBackup {
            "; or take an online backup, which stops nothing"
        } else {
            ""
        };
        Err(Error::usage(format!(
            "other containers use the data of container {} ({} at {}) and are not stopped: {}; {} would stop {} alone while they keep the database open",
            c.name,
            loc.mount.describe(),
            loc.mount.destination.display(),
            listed.join(", "),
            purpose.action(),
            c.name
        ))
        .hint(format!("stop them first (`docker stop {}`), then run kfadmin again{also}", names.join(" "))))
    }

    /// Other containers that can write to the same data: a read-write mount of the same volume,
    /// or of the data directory (or a mount nested in it) or a directory inside it. A parent
    /// directory mounted whole (a monitoring agent's `-v /:/host`) does not count, nor does a
    /// read-only mount (a backup sidecar). Their names and states.
    pub fn others_using(&self, c: &Container, loc: &DataLocation) -> Result<Vec<(String, String)>> {
        let opts = ListContainersOptionsBuilder::default().all(true).build();
        let list = self
            .rt
            .block_on(self.docker.list_containers(Some(opts)))
            .map_err(|e| self.api_err(e, &c.name))?;
        let volumes: Vec<&str> = std::iter::once(&loc.mount)
            .chain(&loc.nested)
            .filter(|m| m.kind == "volume")
            .filter_map(|m| m.name.as_deref())
            .collect();
        let dirs: Vec<PathBuf> = loc.parts(true).into_iter().filter_map(|(_, d)| d).collect();
        let shares = |m: &bollard::models::MountPoint| {
            let src = Path::new(m.source.as_deref().unwrap_or(""));
            m.rw.unwrap_or(true)
                && ((m.typ.as_deref() == Some("volume")
                    && m.name.as_deref().is_some_and(|n| volumes.contains(&n)))
                    || (src.is_absolute() && dirs.iter().any(|d| src.starts_with(d))))
        };
        Ok(list
            .iter()
            .filter(|s| s.id.as_deref() != Some(c.id.as_str()))
            .filter(|s| s.mounts.iter().flatten().any(shares))
            .map(|s| {
                let name = s.names.as_ref().and_then(|n| n.first()).cloned().unwrap_or_default();
                let state = s.state.map(|st| st.to_string()).unwrap_or_default();
                (name.trim_start_matches('/').to_string(), state)
            })
            .collect())
    }
}

/// How to run a copy of a container: what the engine recorded of its `docker run` (the image's
/// own settings merged in). Nothing of the host: no mount, port, network or restart policy.
#[derive(Debug, Clone, Default)]
pub struct Blueprint {
    /// The image's id (`sha256:…`): the very image the container runs, whatever its tag says now.
    pub image_id: String,
    /// The image as the container was created from it (a tag), for messages.
    pub image_ref: String,
    pub entrypoint: Option<Vec<String>>,
    pub cmd: Option<Vec<String>>,
    pub user: Option<String>,
    pub env: Option<Vec<String>>,
    pub working_dir: Option<String>,
    /// The container's healthcheck, or its image's.
    pub healthcheck: Option<bollard::models::HealthConfig>,
    pub stop_signal: Option<String>,
    pub stop_timeout: Option<i64>,
    /// `--init`: an init process forwards the stop signal to the server.
    pub init: Option<bool>,
}

/// A throwaway container: a blueprint, one fresh volume mounted at `mount_at`, no network, no
/// published port, no restart policy.
pub struct Throwaway<'a> {
    pub name: &'a str,
    pub blueprint: &'a Blueprint,
    pub volume: &'a str,
    pub mount_at: &'a Path,
    pub labels: &'a HashMap<String, String>,
}

/// A container or a volume, for [`Engine::remove_labelled`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Object {
    Container,
    Volume,
}

impl Object {
    pub fn word(self) -> &'static str {
        match self {
            Object::Container => "container",
            Object::Volume => "volume",
        }
    }
}

/// How long a copy into or out of a container may take (bollard's default is 120 s).
const COPY_TIMEOUT: Duration = Duration::from_secs(3600);

/// What the engine answered, for errors that are not about a missing container.
fn engine_said(host: &str, e: BollardError, what: &str) -> Error {
    match &e {
        BollardError::DockerResponseServerError { message, .. } => {
            Error::failed(format!("the Docker engine refused {what}: {message}"))
        }
        _ => Error::failed(format!("the Docker engine at {host} failed {what}"))
            .hint("check that the Docker daemon is running and reachable")
            .source(e),
    }
}

fn not_found(e: &BollardError) -> bool {
    matches!(e, BollardError::DockerResponseServerError { status_code: 404, .. })
}

/// Feeds a blocking writer's bytes to an upload: bounded (a slow engine slows the writer), and
/// given up once the upload has ended (`done`).
struct ChanWriter<'a> {
    tx: std::sync::mpsc::SyncSender<std::io::Result<bytes::Bytes>>,
    done: &'a std::sync::atomic::AtomicBool,
}

impl std::io::Write for ChanWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        use std::sync::mpsc::TrySendError;
        let mut item = Ok(bytes::Bytes::copy_from_slice(buf));
        loop {
            match self.tx.try_send(item) {
                Ok(()) => return Ok(buf.len()),
                Err(TrySendError::Full(back)) if !self.done.load(std::sync::atomic::Ordering::SeqCst) => {
                    item = back;
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err(_) => return Err(std::io::ErrorKind::BrokenPipe.into()),
            }
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A download's body as a blocking reader, the engine's error kept for the caller.
struct StreamRead<'a, S> {
    rt: &'a tokio::runtime::Runtime,
    stream: std::pin::Pin<Box<S>>,
    buf: bytes::Bytes,
    error: Option<BollardError>,
}

impl<S: futures_util::Stream<Item = std::result::Result<bytes::Bytes, BollardError>>> std::io::Read
    for StreamRead<'_, S>
{
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        use futures_util::StreamExt;
        while self.buf.is_empty() {
            match self.rt.block_on(self.stream.next()) {
                None => return Ok(0),
                Some(Ok(b)) => self.buf = b,
                Some(Err(e)) => {
                    self.error = Some(e);
                    return Err(std::io::Error::other("the Docker engine failed the download"));
                }
            }
        }
        let n = out.len().min(self.buf.len());
        out[..n].copy_from_slice(&self.buf.split_to(n));
        Ok(n)
    }
}

impl Engine {
    /// What a copy of container `c` needs. Exit 1 when its image is gone from the engine.
    pub fn blueprint(&self, c: &Container) -> Result<Blueprint> {
        let r = self
            .rt
            .block_on(self.docker.inspect_container(&c.id, None::<InspectContainerOptions>))
            .map_err(|e| self.api_err(e, &c.name))?;
        let config = r.config.unwrap_or_default();
        let image_id = r.image.unwrap_or_default();
        let image_ref = config.image.clone().unwrap_or_else(|| image_id.clone());
        let image = self.rt.block_on(self.docker.inspect_image(&image_id)).map_err(|e| {
            if not_found(&e) {
                Error::failed(format!(
                    "the image of container {} ({image_ref}, id {image_id}) is no longer in the Docker engine",
                    c.name
                ))
                .hint(format!("pull or build it again (`docker pull {image_ref}`), then run the drill again"))
            } else {
                engine_said(&self.host, e, &format!("to inspect the image of container {}", c.name))
            }
        })?;
        let healthcheck = config.healthcheck.or(image.config.and_then(|i| i.healthcheck));
        Ok(Blueprint {
            image_id,
            image_ref,
            entrypoint: config.entrypoint,
            cmd: config.cmd,
            user: config.user.filter(|u| !u.is_empty()),
            env: config.env,
            working_dir: config.working_dir.filter(|w| !w.is_empty()),
            healthcheck,
            stop_signal: config.stop_signal,
            stop_timeout: config.stop_timeout,
            init: r.host_config.and_then(|h| h.init),
        })
    }

    /// A new local volume with these labels. The engine answers a create of an existing name
    /// with that volume: one without exactly these labels was there before, and is refused.
    pub fn create_volume(&self, name: &str, labels: &HashMap<String, String>) -> Result<()> {
        let req = bollard::models::VolumeCreateRequest {
            name: Some(name.to_string()),
            driver: Some("local".into()),
            labels: Some(labels.clone()),
            ..Default::default()
        };
        let v = self
            .rt
            .block_on(self.docker.create_volume(req))
            .map_err(|e| engine_said(&self.host, e, &format!("to create volume {name}")))?;
        if v.labels != *labels {
            return Err(Error::failed(format!("volume {name} exists already; kfadmin makes a new one only"))
                .hint("another run made it: wait a second and run kfadmin again"));
        }
        Ok(())
    }

    /// Create (not start) a throwaway container; returns it as inspected.
    pub fn create_throwaway(&self, t: &Throwaway) -> Result<Container> {
        use bollard::models::{ContainerCreateBody, HostConfig, MountType, MountVolumeOptions};
        let bp = t.blueprint;
        let mount = bollard::models::Mount {
            target: Some(t.mount_at.to_string_lossy().into_owned()),
            source: Some(t.volume.to_string()),
            typ: Some(MountType::VOLUME),
            // Exactly the archive's files: nothing of the image is copied in.
            volume_options: Some(MountVolumeOptions { no_copy: Some(true), ..Default::default() }),
            ..Default::default()
        };
        let body = ContainerCreateBody {
            image: Some(bp.image_id.clone()),
            entrypoint: bp.entrypoint.clone(),
            cmd: bp.cmd.clone(),
            user: bp.user.clone(),
            env: bp.env.clone(),
            working_dir: bp.working_dir.clone(),
            healthcheck: bp.healthcheck.clone(),
            stop_signal: bp.stop_signal.clone(),
            stop_timeout: bp.stop_timeout,
            labels: Some(t.labels.clone()),
            host_config: Some(HostConfig {
                mounts: Some(vec![mount]),
                network_mode: Some("none".into()),
                init: bp.init,
                publish_all_ports: Some(false),
                ..Default::default()
            }),
            ..Default::default()
        };
        let opts = bollard::query_parameters::CreateContainerOptionsBuilder::default().name(t.name).build();
        let created = self.rt.block_on(self.docker.create_container(Some(opts), body)).map_err(|e| {
            engine_said(&self.host, e, &format!("to create container {} from image {}", t.name, bp.image_ref))
        })?;
        self.inspect(&created.id)
    }

    /// Extract the tar that `write` produces into `into` in container `c` (created or stopped:
    /// the engine mounts its volumes for it), owners and modes as the tar says. The tar is
    /// streamed: it is never whole in memory or on disk.
    pub fn upload(
        &self,
        c: &Container,
        into: &Path,
        write: impl FnOnce(&mut dyn std::io::Write) -> Result<()> + Send,
    ) -> Result<()> {
        use std::sync::atomic::{AtomicBool, Ordering};
        let (tx, rx) = std::sync::mpsc::sync_channel::<std::io::Result<bytes::Bytes>>(8);
        let done = AtomicBool::new(false);
        let opts = bollard::query_parameters::UploadToContainerOptionsBuilder::default()
            .path(&into.to_string_lossy())
            .build();
        let docker = self.docker.clone().with_timeout(COPY_TIMEOUT);
        std::thread::scope(|s| {
            let done = &done;
            let producer = s.spawn(move || {
                let mut w = std::io::BufWriter::with_capacity(1 << 20, ChanWriter { tx: tx.clone(), done });
                let r = write(&mut w).and_then(|()| {
                    std::io::Write::flush(&mut w)
                        .map_err(|e| Error::failed("cannot send the data to the Docker engine").source(e))
                });
                if let Err(e) = &r {
                    let _ = tx.try_send(Err(std::io::Error::other(e.message.clone())));
                }
                r
            });
            let body = futures_util::stream::unfold(rx, |rx| async move { rx.recv().ok().map(|i| (i, rx)) });
            let sent = self.rt.block_on(docker.upload_to_container(
                &c.id,
                Some(opts),
                bollard::body_try_stream(body),
            ));
            done.store(true, Ordering::SeqCst);
            let wrote =
                producer.join().unwrap_or_else(|_| Err(Error::failed("the upload's writer panicked")));
            wrote?;
            sent.map_err(|e| engine_said(&self.host, e, &format!("to copy files into container {}", c.name)))
        })
    }

    /// Whether `path` exists in container `c` (its volumes included).
    pub fn exists_in(&self, c: &Container, path: &Path) -> Result<bool> {
        let opts = bollard::query_parameters::ContainerArchiveInfoOptionsBuilder::default()
            .path(&path.to_string_lossy())
            .build();
        match self.rt.block_on(self.docker.get_container_archive_info(&c.id, Some(opts))) {
            Ok(_) => Ok(true),
            Err(e) if not_found(&e) => Ok(false),
            Err(e) => Err(engine_said(
                &self.host,
                e,
                &format!("to look at {} in container {}", path.display(), c.name),
            )),
        }
    }

    /// Copy the regular file `path` of container `c` into `to`: None when there is no such file.
    /// `room` is called with its size before anything is copied (and may refuse it). Anything
    /// but a regular file (a link the container put there) is refused.
    pub fn download_file(
        &self,
        c: &Container,
        path: &Path,
        to: &mut dyn std::io::Write,
        room: &dyn Fn(u64) -> Result<()>,
    ) -> Result<Option<u64>> {
        let opts = bollard::query_parameters::DownloadFromContainerOptionsBuilder::default()
            .path(&path.to_string_lossy())
            .build();
        let docker = self.docker.clone().with_timeout(COPY_TIMEOUT);
        let stream = docker.download_from_container(&c.id, Some(opts));
        let mut reader =
            StreamRead { rt: &self.rt, stream: Box::pin(stream), buf: bytes::Bytes::new(), error: None };
        let what = format!("{} in container {}", path.display(), c.name);
        let copied = read_single_file(&mut reader, path, to, room, &what);
        match (reader.error.take(), copied) {
            (Some(e), _) if not_found(&e) => Ok(None),
            (Some(e), _) => Err(engine_said(&self.host, e, &format!("to copy {what}"))),
            (None, r) => r.map(Some),
        }
    }

    /// The last `lines` lines the container wrote (stdout and stderr).
    pub fn logs_tail(&self, c: &Container, lines: usize) -> Result<Vec<String>> {
        use futures_util::StreamExt;
        let opts = bollard::query_parameters::LogsOptionsBuilder::default()
            .stdout(true)
            .stderr(true)
            .tail(&lines.to_string())
            .build();
        let chunks: Vec<_> = self.rt.block_on(self.docker.logs(&c.id, Some(opts)).collect());
        let mut text = String::new();
        for chunk in chunks {
            let chunk = chunk
                .map_err(|e| engine_said(&self.host, e, &format!("the logs of container {}", c.name)))?;
            text.push_str(&chunk.to_string());
        }
        let all: Vec<String> = text.lines().map(|l| l.chars().take(2000).collect()).collect();
        Ok(all[all.len().saturating_sub(lines)..].to_vec())
    }

    /// Remove (by force, with its anonymous volumes) the container or volume `name` if it
    /// carries the label `key=value`; Ok(false) when there is none, or one of that name that
    /// does not carry it (it is left alone).
    pub fn remove_labelled(&self, what: Object, name: &str, (key, value): (&str, &str)) -> Result<bool> {
        let labels = match what {
            Object::Container => self
                .rt
                .block_on(self.docker.inspect_container(name, None::<InspectContainerOptions>))
                .map(|c| c.config.and_then(|c| c.labels).unwrap_or_default()),
            Object::Volume => self.rt.block_on(self.docker.inspect_volume(name)).map(|v| v.labels),
        };
        let labels = match labels {
            Ok(l) => l,
            Err(e) if not_found(&e) => return Ok(false),
            Err(e) => return Err(engine_said(&self.host, e, &format!("to inspect {} {name}", what.word()))),
        };
        if labels.get(key).map(String::as_str) != Some(value) {
            // Another one of that name: not ours to remove.
            return Ok(false);
        }
        let removed = match what {
            Object::Container => {
                let opts = bollard::query_parameters::RemoveContainerOptionsBuilder::default()
                    .force(true)
                    .v(true)
                    .build();
                self.rt.block_on(self.docker.remove_container(name, Some(opts)))
            }
            Object::Volume => {
                let opts =
                    bollard::query_parameters::RemoveVolumeOptionsBuilder::default().force(true).build();
                self.rt.block_on(self.docker.remove_volume(name, Some(opts)))
            }
        };
        match removed {
            Ok(()) => Ok(true),
            Err(e) if not_found(&e) => Ok(false),
            Err(e) => Err(engine_said(&self.host, e, &format!("to remove {} {name}", what.word()))),
        }
    }
}

/// The one entry of a download of a single file: a regular file named as asked, copied to `to`.
fn read_single_file(
    reader: &mut dyn std::io::Read,
    path: &Path,
    to: &mut dyn std::io::Write,
    room: &dyn Fn(u64) -> Result<()>,
    what: &str,
) -> Result<u64> {
    let bad = |why: String| Error::failed(format!("cannot copy {what}: {why}"));
    let mut ar = tar::Archive::new(reader);
    let mut entries = ar.entries().map_err(|e| bad(e.to_string()))?;
    let mut entry = match entries.next() {
        Some(Ok(e)) => e,
        Some(Err(e)) => return Err(bad(e.to_string())),
        None => return Err(bad("the engine sent an empty archive".into())),
    };
    let name = entry.path().map(|p| p.into_owned()).map_err(|e| bad(e.to_string()))?;
    if entry.header().entry_type() != tar::EntryType::Regular || name.file_name() != path.file_name() {
        return Err(bad(format!(
            "it is not a regular file (a {:?} named {}); kfadmin never follows links in a data directory",
            entry.header().entry_type(),
            name.display()
        )));
    }
    let size = entry.header().size().map_err(|e| bad(e.to_string()))?;
    room(size)?;
    let n = std::io::copy(&mut entry, to).map_err(|e| bad(e.to_string()))?;
    if n != size {
        return Err(bad(format!("{n} bytes arrived of {size}")));
    }
    Ok(n)
}

/// Why a container that was just started is not up (None: it is, so far). `first` is how it
/// was when the wait began.
fn not_up(now: &Container, first: Option<&Container>) -> Option<String> {
    let exit = now.exit_code.map(|c| c.to_string()).unwrap_or_else(|| "?".into());
    let restarted = now.restarting
        || now.restart_count > 0
        || first.is_some_and(|f| f.started_at != now.started_at || f.restart_count != now.restart_count);
    if restarted {
        return Some(format!(
            "it exited (exit code {exit}) and was restarted (restart policy {}, {} restart(s) so far): it keeps failing",
            now.restart_policy.as_deref().unwrap_or("none"),
            now.restart_count
        ));
    }
    if !now.running {
        return Some(format!("it is {} (exit code {exit})", now.status));
    }
    if now.paused {
        return Some("it is paused".into());
    }
    None
}

/// The mount that holds `db_in_container` (the longest destination that contains it), and
/// the database's path on this host. Symbolic links are followed as the container sees them,
/// and only on its mounts; a local volume with bind options is its device. Errors say what to
/// do when that path is not readable here (a remote engine, Docker Desktop, rootless Docker,
/// not root), and refuse layouts no backup can be consistent in (a single-file bind mount).
pub fn data_location(c: &Container, db_in_container: &Path) -> Result<DataLocation> {
    let mounts: Vec<Mount> = c.mounts.iter().cloned().map(resolve_volume).collect();
    let db = resolve_in_container(c, &mounts, db_in_container)?;
    let Some(mount) = holding(&mounts, &db).cloned() else {
        return Err(no_mount(c, db_in_container, &db));
    };
    if mount.destination == db {
        return Err(single_file(c, &mount, &db));
    }
    if !mount.source.is_absolute() {
        return Err(Error::usage(format!(
            "the data of container {}, {}, is on a {}: it lives in the container's memory, is lost when the container stops, and this host cannot read it",
            c.name,
            mount.destination.display(),
            mount.describe()
        ))
        .hint(format!("mount a volume or a host directory at {} instead", mount.destination.display())));
    }
    let rel = db.strip_prefix(&mount.destination).unwrap_or(Path::new(""));
    let host_db = mount.source.join(rel);
    let host_dir = host_db.parent().map(Path::to_path_buf).unwrap_or_else(|| mount.source.clone());
    if !mount.source.is_dir() {
        let why = match std::fs::metadata(&mount.source) {
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => "kfadmin may not read it (run as root)",
            _ => "it does not exist on this machine (a remote engine through DOCKER_HOST, Docker Desktop or rootless Docker keep it elsewhere)",
        };
        return Err(Error::usage(format!(
            "the {} of container {} is at {} on the Docker host, but {why}",
            mount.describe(),
            c.name,
            mount.source.display()
        ))
        .hint("run kfadmin as root on the machine that runs the Docker engine"));
    }
    let dir = db.parent().unwrap_or(Path::new("/"));
    let mut nested: Vec<Mount> = mounts
        .iter()
        .filter(|m| m.destination.starts_with(dir) && m.destination != dir && **m != mount)
        .cloned()
        .collect();
    nested.sort_by_key(|m| m.destination.components().count());
    Ok(DataLocation { mount, host_dir, host_db, db_in_container: db, nested })
}

/// The deepest mount that holds `path` (a path inside the container).
fn holding<'a>(mounts: &'a [Mount], path: &Path) -> Option<&'a Mount> {
    mounts
        .iter()
        .filter(|m| path.starts_with(&m.destination))
        .max_by_key(|m| m.destination.components().count())
}

/// A local volume with bind options (Compose `driver_opts: {type: none, o: bind, device:
/// /srv/kf}`) is its device on this host, whether or not the engine has it mounted now. Other
/// volumes with options, and a plugin's volumes, are mounted by the engine only while a
/// container uses them: the mount says so.
fn resolve_volume(mut m: Mount) -> Mount {
    if m.kind != "volume" {
        return m;
    }
    let name = m.name.clone().unwrap_or_default();
    let driver = m.driver.clone().unwrap_or_else(|| "local".into());
    if driver != "local" {
        m.mounted_on_use =
            Some(format!("volume {name} belongs to the volume plugin {driver}, which mounts it only while a container uses it"));
        return m;
    }
    if m.options.is_empty() {
        return m;
    }
    let bind = m.options.get("o").is_some_and(|o| o.split(',').any(|f| f == "bind" || f == "rbind"));
    match m.options.get("device").map(PathBuf::from) {
        Some(device) if bind && device.is_absolute() => m.source = device,
        _ => {
            let kind =
                m.options.get("type").map(String::as_str).filter(|t| !t.is_empty()).unwrap_or("device");
            m.mounted_on_use = Some(format!(
                "volume {name} is a {kind} mount (driver options type={kind}) that the engine mounts only while a container uses it"
            ));
        }
    }
    m
}

/// `path` inside the container with its symbolic links followed the way the container sees
/// them: an absolute target starts again at the container's root, and every step is looked at
/// on the container's mounts only, never on this host's own tree. A path that ends off the
/// mounts is refused by the caller; kfadmin never reads a host file that a link names.
fn resolve_in_container(c: &Container, mounts: &[Mount], path: &Path) -> Result<PathBuf> {
    use std::ffi::OsString;
    use std::path::Component;
    fn push_parts(todo: &mut Vec<OsString>, p: &Path) {
        for part in p.components().rev() {
            match part {
                Component::Normal(n) => todo.push(n.to_os_string()),
                Component::ParentDir => todo.push("..".into()),
                Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
            }
        }
    }
    let mut todo = Vec::new();
    push_parts(&mut todo, path);
    let mut done = PathBuf::from("/");
    let mut links = 0;
    while let Some(part) = todo.pop() {
        if part == ".." {
            done.pop();
            continue;
        }
        let next = done.join(&part);
        let host = holding(mounts, &next)
            .filter(|m| m.source.is_absolute())
            .map(|m| m.source.join(next.strip_prefix(&m.destination).unwrap_or(Path::new(""))));
        let link = host.filter(|h| h.symlink_metadata().is_ok_and(|m| m.file_type().is_symlink()));
        let Some(link) = link else {
            done = next;
            continue;
        };
        links += 1;
        if links > 40 {
            return Err(Error::usage(format!(
                "{} in container {} goes through more than 40 symbolic links",
                path.display(),
                c.name
            )));
        }
        let target = std::fs::read_link(&link).ctx("cannot read the symbolic link", &link)?;
        if target.is_absolute() {
            done = PathBuf::from("/");
        }
        push_parts(&mut todo, &target);
    }
    Ok(done)
}

fn no_mount(c: &Container, asked: &Path, resolved: &Path) -> Error {
    let have: Vec<String> = c.mounts.iter().map(|m| m.destination.display().to_string()).collect();
    let have = if have.is_empty() { "none".to_string() } else { have.join(", ") };
    if asked != resolved {
        return Error::usage(format!(
            "{} in container {} is a symbolic link to {}, which no volume or bind mount of the container holds (its mounts: {have})",
            asked.display(),
            c.name,
            resolved.display()
        ))
        .hint("kfadmin follows links inside the container's mounts only; point the link at a file on the data volume, or pass that file with --db-path");
    }
    Error::usage(format!(
        "container {} has no volume or bind mount that holds {} (its mounts: {have})",
        c.name,
        asked.display(),
    ))
    .hint("without a mount the data lives in the container's own layer and is lost with it; pass --db-path if the database is elsewhere")
}

fn single_file(c: &Container, m: &Mount, db: &Path) -> Error {
    Error::usage(format!(
        "the database of container {}, {}, is a bind mount of the single file {}: SQLite keeps its -wal and -shm beside it, in the container's own layer, where this host cannot see them, so neither an online nor a cold backup can be consistent from here (and committed transactions in the -wal are lost with the container)",
        c.name,
        db.display(),
        m.source.display()
    ))
    .hint(format!(
        "mount the directory instead (e.g. `-v {}:{}`), then back up",
        m.source.parent().unwrap_or(Path::new("/")).display(),
        db.parent().unwrap_or(Path::new("/")).display()
    ))
}

/// Several containers are that Compose service: replicas in one project (name one of them),
/// or the service in several projects (name the project).
fn ambiguous_service(service: &str, list: &[bollard::models::ContainerSummary]) -> Error {
    let project = |c: &bollard::models::ContainerSummary| {
        c.labels.as_ref().and_then(|l| l.get("com.docker.compose.project")).cloned().unwrap_or_default()
    };
    let names: Vec<String> = list
        .iter()
        .map(|c| {
            let n = c.names.as_ref().and_then(|n| n.first()).cloned().unwrap_or_default();
            format!("{} (project {})", n.trim_start_matches('/'), project(c))
        })
        .collect();
    let mut projects: Vec<String> = list.iter().map(project).collect();
    projects.sort();
    projects.dedup();
    let hint = match projects.as_slice() {
        [one] => format!(
            "they are replicas of that service in project {one}: pass the name of one of them, e.g. --container {}",
            names[0].split(' ').next().unwrap_or_default()
        ),
        _ => "pass --compose-project, or the container's own name".to_string(),
    };
    Error::usage(format!("several containers are Compose service {service}: {}", names.join(", "))).hint(hint)
}

/// What a stop for `purpose` would break, checked before anything is stopped: a paused
/// container (the stop unpauses it), a `--rm` one (the engine deletes it once stopped), and
/// data the engine mounts only while the container runs (stopped, it is an empty directory).
pub fn refuse_to_stop(c: &Container, loc: &DataLocation, purpose: Purpose) -> Result<()> {
    let (n, action) = (&c.name, purpose.action());
    let online =
        format!("take an online backup (`kfadmin backup --online --container {n}`), which stops nothing");
    if c.paused {
        return Err(Error::usage(format!(
            "container {n} is paused: {action} would stop it, and so unpause it; kfadmin leaves it as it is"
        ))
        .hint(match purpose {
            Purpose::ColdBackup => {
                format!("{online} (a paused server's files do not change), or `docker unpause {n}` first")
            }
            Purpose::Restore => format!("`docker unpause {n}` (or `docker stop {n}`) first, then restore"),
        }));
    }
    if c.auto_remove && c.running {
        return Err(Error::usage(format!(
            "container {n} was created with --rm (AutoRemove): {action} would stop it, and the engine would then delete it"
        ))
        .hint(match purpose {
            Purpose::ColdBackup => format!("{online}; or recreate the container without --rm (with a restart policy such as `--restart unless-stopped`)"),
            Purpose::Restore => format!(
                "stop it the way it is managed (e.g. `systemctl stop keyfount`; the engine deletes the container, its data stays), restore with `kfadmin restore ARCHIVE --data-dir {}`, then start it again; or recreate it without --rm",
                loc.host_dir.display()
            ),
        }));
    }
    if let Some(why) = loc.mounted_on_use() {
        return Err(match purpose {
            Purpose::ColdBackup => Error::usage(format!(
                "{why}: once container {n} stops, its mount point on this host is an empty directory, so a cold backup cannot copy the data"
            ))
            .hint(online),
            Purpose::Restore => Error::usage(format!(
                "{why}: while container {n} is stopped, its mount point on this host is an empty directory, and files restored there would be hidden under the volume once it is mounted again"
            ))
            .hint("restore where the volume's storage is: mount it on this host, stop the container, and restore with `kfadmin restore ARCHIVE --data-dir DIR`"),
        });
    }
    Ok(())
}

/// A stopped container whose database the engine mounts only while it runs leaves nothing on
/// this host to read: exit 1 (the container's state is the problem), with how to get it back.
pub fn check_readable(c: &Container, loc: &DataLocation) -> Result<()> {
    match &loc.mount.mounted_on_use {
        Some(why) if !c.running => Err(Error::failed(format!(
            "container {} is {}, and {why}: its database is not on this host while the container is stopped",
            c.name,
            if c.status.is_empty() { "stopped" } else { &c.status }
        ))
        .hint(format!("start it (`docker start {}`), then run kfadmin again", c.name))),
        _ => Ok(()),
    }
}

/// Files of an archive (paths relative to the data directory) that a restore would put inside
/// a mount nested in the data directory: kfadmin swaps files into the data directory's own
/// mount only, so it refuses (exit 2) rather than hide them under that mount point.
pub fn refuse_nested_targets<'a>(
    c: &Container,
    loc: &DataLocation,
    rels: impl IntoIterator<Item = &'a Path>,
) -> Result<()> {
    let mut hit: Vec<(&Mount, &Path)> = Vec::new();
    for rel in rels {
        if let Some(m) = loc.nested_holding(rel) {
            hit.push((m, rel));
        }
    }
    let Some((m, first)) = hit.first() else { return Ok(()) };
    Err(Error::usage(format!(
        "the archive holds {} file(s) (e.g. data/{}) that belong in {}, which container {} mounts at {} inside its data directory: kfadmin restores into the data directory's own mount only, and refuses rather than hide them under that mount point",
        hit.len(),
        first.display(),
        m.describe(),
        c.name,
        m.destination.display()
    ))
    .hint(format!(
        "restore into a scratch directory (`kfadmin restore ARCHIVE --data-dir DIR`), stop the container, and copy each part into its own mount ({} into {}); an archive of the database alone (an online backup) restores with --container",
        m.destination.display(),
        m.source.display()
    )))
}

/// A record, written before kfadmin stops a container, so that a kfadmin killed while the
/// container is down lets the next run start it again.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct JournalEntry {
    pub container_id: String,
    pub container_name: String,
    pub pid: u32,
    pub since_unix: u64,
    pub command: String,
    /// When the entry was written, in ms since the epoch (0 in journals of older versions).
    #[serde(default)]
    pub since_ms: u64,
    /// The StartedAt of the run kfadmin stopped: any other StartedAt means that the container
    /// was started after kfadmin's stop. None in journals of older versions.
    #[serde(default)]
    pub started_at: Option<String>,
    /// The stop timeout kfadmin gave the engine: a stop of kfadmin's ends within it.
    #[serde(default)]
    pub stop_timeout_s: Option<i64>,
}

impl JournalEntry {
    fn new(c: &Container, stop_timeout_s: i64, command: &str) -> JournalEntry {
        let since_ms = now_ms();
        JournalEntry {
            container_id: c.id.clone(),
            container_name: c.name.clone(),
            pid: std::process::id(),
            since_unix: since_ms / 1000,
            command: command.to_string(),
            since_ms,
            started_at: Some(c.started_at.clone()),
            stop_timeout_s: Some(stop_timeout_s),
        }
    }

    fn write(&self) -> Result<()> {
        crate::fsutil::ensure_private_dir(&state_dir())?;
        let json = serde_json::to_vec(self)
            .map_err(|e| Error::failed("cannot write kfadmin's stop journal").source(e))?;
        crate::fsutil::write_atomic(&journal_path(&self.container_id), &json, 0o600)
    }

    /// `an earlier kfadmin run (pid N, `COMMAND`)`, for messages.
    fn run(&self) -> String {
        format!("an earlier kfadmin run (pid {}, `{}`)", self.pid, self.command)
    }
}

/// kfadmin's state directory: `$KFADMIN_STATE_DIR`, or `/var/lib/kfadmin` for root, or
/// `$XDG_STATE_HOME/kfadmin` (`~/.local/state/kfadmin`).
pub fn state_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("KFADMIN_STATE_DIR") {
        return PathBuf::from(d);
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        return PathBuf::from("/var/lib/kfadmin");
    }
    if let Some(d) = std::env::var_os("XDG_STATE_HOME") {
        return PathBuf::from(d).join("kfadmin");
    }
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/tmp"));
    home.join(".local/state/kfadmin")
}

/// The journal file of a container that kfadmin stopped.
pub fn journal_path(container_id: &str) -> PathBuf {
    state_dir().join(format!("stopped-{container_id}.json"))
}

fn clear_journal(container_id: &str) {
    let _ = std::fs::remove_file(journal_path(container_id));
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// An engine timestamp (RFC 3339, UTC) in ms since the epoch; None for the engine's zero time.
fn unix_ms(rfc3339: &str) -> Option<u64> {
    let t = humantime::parse_rfc3339(rfc3339).ok()?;
    t.duration_since(std::time::UNIX_EPOCH).ok().map(|d| d.as_millis() as u64)
}

/// A test hook, compiled into debug builds only: when `KFADMIN_TEST_PAUSE_AT` (a comma-separated
/// list) names `point`, create `$KFADMIN_TEST_PAUSE_DIR/<point>.reached` and wait (at most 5
/// minutes) until `<point>.go` exists there. Release builds ignore both variables.
pub fn test_pause(point: &str) {
    #[cfg(debug_assertions)]
    {
        let named = std::env::var("KFADMIN_TEST_PAUSE_AT").is_ok_and(|v| v.split(',').any(|p| p == point));
        let Some(dir) = std::env::var_os("KFADMIN_TEST_PAUSE_DIR").filter(|_| named).map(PathBuf::from)
        else {
            return;
        };
        let _ = std::fs::write(dir.join(format!("{point}.reached")), b"");
        let deadline = Instant::now() + Duration::from_secs(300);
        while !dir.join(format!("{point}.go")).exists() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    #[cfg(not(debug_assertions))]
    let _ = point;
}

/// Something other than kfadmin started container `c` while kfadmin had it stopped.
fn started_elsewhere(c: &Container, now: &Container) -> Error {
    let policy = match now.restart_policy.as_deref() {
        Some(p) if p != "no" => format!("its restart policy `{p}` (applied when dockerd restarts), "),
        _ => String::new(),
    };
    Error::failed(format!(
        "container {} was started again (at {}) by something other than kfadmin while kfadmin had it stopped",
        c.name, now.started_at
    ))
    .hint(format!(
        "something starts it behind kfadmin's back: {policy}`docker compose up`, Watchtower, a systemd unit or a colleague; stop that first (for a restart policy: `docker update --restart=no {}`), then run kfadmin again",
        c.name
    ))
}

/// Container `c` no longer exists (removed, or recreated under its name).
fn vanished(c: &Container) -> Error {
    Error::failed(format!(
        "container {} (id {}) no longer exists: it was removed, or recreated under its name (as `docker compose up` does when its configuration changed), after kfadmin found it",
        c.name,
        &c.id[..c.id.len().min(12)]
    ))
    .hint(format!("check `docker ps -a --filter name={}`, then run kfadmin again", c.name))
}

/// How kfadmin's start of a stopped container ended.
#[derive(Debug)]
pub enum Start {
    /// kfadmin had not stopped it: nothing to do.
    NotStopped,
    /// kfadmin started it.
    Started,
    /// Something else had started it already (this is its state).
    AlreadyRunning(Box<Container>),
}

/// Keeps a container that kfadmin stopped on record until it runs again: [`StopGuard::stop`]
/// writes the journal, then stops; [`StopGuard::restart`] starts it again and clears the
/// journal. Every stop, a rollback's too ([`StopGuard::stop_again`]), is journaled. Dropped
/// while kfadmin owes the container a start, it still tries to start it.
pub struct StopGuard<'a> {
    engine: &'a Engine,
    container: Container,
    /// The container as kfadmin's last stop left it, while kfadmin owes it a start.
    stopped: Option<Container>,
    /// A start failed and was reported: dropping the guard does not try again (the journal
    /// stays for the next run).
    start_failed: bool,
}

impl<'a> StopGuard<'a> {
    pub fn new(engine: &'a Engine, container: Container) -> Self {
        StopGuard { engine, container, stopped: None, start_failed: false }
    }

    /// Stop the container if it runs; a container that was not running stays as it is. Its
    /// state is read again first (a prompt may have taken minutes since it was found): the
    /// journal records the run that is being stopped, and one that is down by now stays down.
    pub fn stop(&mut self, timeout_s: i64, command: &str) -> Result<Option<Stopped>> {
        if !self.container.running {
            return Ok(None);
        }
        let now = self.engine.inspect(&self.container.id).map_err(|e| self.gone_or(e))?;
        if !now.running {
            self.container = now;
            return Ok(None);
        }
        self.stop_journaled(&now, timeout_s, command).map(Some)
    }

    /// Stop it again, journaled like the first stop (a rollback): a container that runs is
    /// stopped, one that does not (it crashed, or could not start) is put on the journal as it
    /// is, so that a kfadmin killed from here on leaves it to the next run to start.
    pub fn stop_again(&mut self, timeout_s: i64, command: &str) -> Result<()> {
        let now = self.engine.inspect(&self.container.id).map_err(|e| self.gone_or(e))?;
        if now.running {
            self.stop_journaled(&now, timeout_s, command)?;
        } else {
            JournalEntry::new(&now, timeout_s, command).write()?;
            self.stopped = Some(now);
        }
        Ok(())
    }

    /// Journal, stop, then judge the state the stop left: only a run that really ended puts
    /// the container in kfadmin's charge.
    fn stop_journaled(&mut self, c: &Container, timeout_s: i64, command: &str) -> Result<Stopped> {
        JournalEntry::new(c, timeout_s, command).write()?;
        test_pause("before-stop");
        let t0 = Instant::now();
        let result = self.engine.stop(c, timeout_s);
        let after = match &result {
            Ok((_, after)) => Ok(after.clone()),
            Err(_) => self.engine.inspect(&c.id),
        };
        match after {
            Ok(now) if !now.running => {
                let stopped = match result {
                    Ok((s, _)) => s,
                    Err(_) => Stopped {
                        exit_code: now.exit_code,
                        oom_killed: now.oom_killed,
                        duration_ms: t0.elapsed().as_millis() as u64,
                    },
                };
                self.stopped = Some(now);
                Ok(stopped)
            }
            Ok(now) => {
                clear_journal(&c.id);
                if now.started_at != c.started_at {
                    return Err(started_elsewhere(c, &now));
                }
                Err(result.err().unwrap_or_else(|| {
                    Error::failed(format!("container {} is still running after the stop", c.name))
                }))
            }
            Err(e) if e.kind == Kind::Usage => {
                clear_journal(&c.id);
                Err(vanished(c))
            }
            Err(e) => {
                // The engine cannot say: keep the journal and try a start on the way out.
                self.stopped = Some(c.clone());
                Err(result.err().unwrap_or(e))
            }
        }
    }

    pub fn was_running(&self) -> bool {
        self.container.running
    }

    /// kfadmin stopped the container and has not started it again (its journal is on disk).
    pub fn owes_start(&self) -> bool {
        self.stopped.is_some()
    }

    /// The container's state when it has been started since kfadmin stopped it (or, when
    /// kfadmin did not stop it, since it was found): None while it is still down, on the same
    /// run. Errors when it no longer exists.
    pub fn started_since(&self) -> Result<Option<Container>> {
        let base = self.stopped.as_ref().unwrap_or(&self.container);
        let now = self.engine.inspect(&base.id).map_err(|e| self.gone_or(e))?;
        Ok((now.running || now.started_at != base.started_at).then_some(now))
    }

    /// Errors (exit 1, saying what probably started it) unless the container is still down on
    /// the run kfadmin's stop ended: checked before anything touches its data.
    pub fn ensure_stopped(&self) -> Result<()> {
        match self.started_since()? {
            None => Ok(()),
            Some(now) => Err(started_elsewhere(&self.container, &now)),
        }
    }

    /// Start the container again if kfadmin stopped it, and clear the journal once it runs.
    /// Something else may have started it meanwhile: [`Start::AlreadyRunning`] says so. A
    /// failure is exit 4 and keeps the journal: the operator must act, and the next kfadmin
    /// run on the container tries again.
    pub fn restart(&mut self) -> Result<Start> {
        let Some(base) = self.stopped.clone() else { return Ok(Start::NotStopped) };
        let now = match self.engine.inspect(&base.id) {
            Ok(now) => now,
            Err(e) if e.kind == Kind::Usage => {
                self.release();
                return Err(self.removed_while_stopped());
            }
            Err(e) => {
                self.start_failed = true;
                return Err(self.cannot_start(e));
            }
        };
        if now.running {
            self.release();
            return Ok(Start::AlreadyRunning(Box::new(now)));
        }
        match self.engine.start(&base) {
            Ok(()) => {
                self.start_failed = false;
                self.release();
                Ok(Start::Started)
            }
            Err(e) => {
                self.start_failed = true;
                Err(self.cannot_start(e))
            }
        }
    }

    /// kfadmin no longer owes the container a start: it runs, or it must stay down (its data
    /// is in a state no server may start on). Clears the journal.
    pub fn release(&mut self) {
        if self.stopped.take().is_some() {
            clear_journal(&self.container.id);
        }
    }

    fn gone_or(&self, e: Error) -> Error {
        if e.kind == Kind::Usage {
            vanished(&self.container)
        } else {
            e
        }
    }

    fn cannot_start(&self, e: Error) -> Error {
        let name = &self.container.name;
        Error::new(Kind::ContainerState, format!("kfadmin stopped container {name} and cannot start it again: {}", e.chain()))
            .hint(format!(
                "start it now: `docker start {name}`, and check `docker logs {name}`; until it runs, {} keeps the record and the next `kfadmin status --container {name}` tries again",
                journal_path(&self.container.id).display()
            ))
    }

    /// The container was removed while it was down: exit 4 unless a container of that name
    /// runs again (recreated).
    fn removed_while_stopped(&self) -> Error {
        let c = &self.container;
        match self.engine.inspect(&c.name) {
            Ok(new) if new.running => Error::failed(format!(
                "container {} was removed while kfadmin had it stopped; a new container {} (id {}) runs now",
                c.name,
                new.name,
                &new.id[..new.id.len().min(12)]
            ))
            .hint("check that the new container uses the same data (`docker inspect`)"),
            _ => Error::new(
                Kind::ContainerState,
                format!("container {} was removed while kfadmin had it stopped, and no container of that name runs", c.name),
            )
            .hint("act now: Keyfount is down; recreate its container (`docker compose up -d`, or your `docker run` command)"),
        }
    }
}

impl Drop for StopGuard<'_> {
    fn drop(&mut self) {
        if !self.start_failed {
            let _ = self.restart();
        }
    }
}

/// How long after kfadmin's stop request a stop may still end (beyond the stop timeout).
const STOP_MARGIN_S: u64 = 30;

/// What became of a container that a killed kfadmin run had stopped.
#[derive(Debug, PartialEq, Eq)]
enum Fate {
    /// Started again since: the journal is done.
    StartedSince,
    /// Still the run kfadmin was stopping, within the stop timeout: the stop is under way.
    StopUnderWay,
    /// Still the run kfadmin meant to stop, long after: the stop never took effect.
    NeverStopped,
    /// Down, but not by kfadmin's stop (started and stopped since, or stopped later than
    /// kfadmin's stop could have ended): left as the operator left it.
    StoppedByOther,
    /// Down since kfadmin's stop: kfadmin owes it a start.
    OwedAStart,
}

fn judge(j: &JournalEntry, now: &Container, now_ms: u64) -> Fate {
    let Some(run) = &j.started_at else {
        // A journal of an older version: only "running" can be told.
        return if now.running { Fate::StartedSince } else { Fate::OwedAStart };
    };
    let timeout = j.stop_timeout_s.unwrap_or(10).max(0) as u64;
    let stop_ends = j.since_ms + (timeout + STOP_MARGIN_S) * 1000;
    match (now.running, &now.started_at == run) {
        (true, false) => Fate::StartedSince,
        (true, true) if now_ms > stop_ends => Fate::NeverStopped,
        (true, true) => Fate::StopUnderWay,
        (false, false) => Fate::StoppedByOther,
        (false, true) => match unix_ms(&now.finished_at) {
            Some(finished) if finished > stop_ends => Fate::StoppedByOther,
            _ => Fate::OwedAStart,
        },
    }
}

/// Journals of kfadmin runs that died (a live run's journal is its own business).
fn pending_journals() -> Vec<(PathBuf, JournalEntry)> {
    let Ok(rd) = std::fs::read_dir(state_dir()) else { return vec![] };
    let mut entries: Vec<(PathBuf, JournalEntry)> = rd
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| {
            p.file_name().is_some_and(|n| {
                let n = n.to_string_lossy();
                n.starts_with("stopped-") && n.ends_with(".json")
            })
        })
        .filter_map(|p| {
            let text = std::fs::read(&p).ok()?;
            serde_json::from_slice::<JournalEntry>(&text).ok().map(|j| (p, j))
        })
        .filter(|(_, j)| !crate::fsutil::kfadmin_alive(j.pid))
        .collect();
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    entries
}

/// For commands that do not touch containers: one line per journal a killed run left, naming
/// the file and what to do. The engine is not asked, and nothing is started.
pub fn journal_notes() -> Vec<String> {
    pending_journals()
        .into_iter()
        .map(|(path, j)| {
            format!(
                "{} stopped container {} and was killed before starting it again (journal {}): `kfadmin status --container {}` starts it again, or start it yourself (`docker start {}`) and delete that file",
                j.run(),
                j.container_name,
                path.display(),
                j.container_name,
                j.container_name
            )
        })
        .collect()
}

/// For commands that touch containers: containers that an earlier kfadmin run stopped and did
/// not start again (it was killed) are started, when kfadmin's stop was the last thing that
/// happened to them. Returns the lines to print, or exit 4 when one cannot be started.
pub fn recover_journal() -> Result<Vec<String>> {
    let entries = pending_journals();
    let Some((first_path, first)) = entries.first() else { return Ok(vec![]) };
    let engine = Engine::connect().map_err(|e| {
        Error::new(
            Kind::ContainerState,
            format!(
                "{} stopped container {} and was killed before starting it again (journal {}), and the Docker engine cannot be reached: {}",
                first.run(),
                first.container_name,
                first_path.display(),
                e.chain()
            ),
        )
        .hint(format!(
            "start the Docker engine, then run kfadmin again (or `docker start {}` and delete {})",
            first.container_name,
            first_path.display()
        ))
    })?;
    let mut said = Vec::new();
    for (path, j) in &entries {
        if let Some(line) = recover_one(&engine, path, j)? {
            said.push(line);
        }
    }
    Ok(said)
}

/// One journal: judge what became of its container, start it if kfadmin owes it a start, and
/// clear the journal unless the stop is still under way.
fn recover_one(engine: &Engine, path: &Path, j: &JournalEntry) -> Result<Option<String>> {
    let (run, name) = (j.run(), &j.container_name);
    let now = match engine.inspect(&j.container_id) {
        Ok(c) => c,
        Err(e) if e.kind == Kind::Usage => {
            let _ = std::fs::remove_file(path);
            return Ok(Some(format!(
                "{run} stopped container {name}, which no longer exists; nothing to start"
            )));
        }
        Err(e) => return Err(e.kind(Kind::ContainerState)),
    };
    let line = match judge(j, &now, now_ms()) {
        Fate::StopUnderWay => {
            return Ok(Some(format!(
                "{run} was killed while stopping container {name}; the stop is still under way, so its journal {} stays and the next kfadmin run on the container starts it once it is down",
                path.display()
            )))
        }
        Fate::StartedSince => format!("{run} had stopped container {name}; it has been started again since"),
        Fate::NeverStopped => format!("{run} was killed before its stop of container {name} took effect; it kept running"),
        Fate::StoppedByOther => format!(
            "{run} had stopped container {name}; it was stopped again since by something else, so kfadmin leaves it stopped (`docker start {name}` when it should run)"
        ),
        Fate::OwedAStart => {
            engine.start(&now).map_err(|e| {
                Error::new(
                    Kind::ContainerState,
                    format!("{run} stopped container {name} and was killed; kfadmin cannot start it again: {}", e.chain()),
                )
                .hint(format!(
                    "start it now: `docker start {name}` (the journal {} stays until it runs)",
                    path.display()
                ))
            })?;
            format!("{run} stopped container {name} and was killed before starting it again; kfadmin started it now")
        }
    };
    let _ = std::fs::remove_file(path);
    Ok(Some(line))
}

#[cfg(test)]
mod tests {
    use super::*;

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
