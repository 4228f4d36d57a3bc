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

use crate::error::{check_interrupt, Error, Kind, Result};

/// What kfadmin needs to know about a container.
#[derive(Debug, Clone, Serialize)]
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
    pub mounts: Vec<Mount>,
    #[serde(skip)]
    pub labels: HashMap<String, String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Mount {
    /// "volume" or "bind" (or another driver's type).
    pub kind: String,
    pub name: Option<String>,
    /// The host path: a bind source or a volume's mountpoint.
    pub source: PathBuf,
    pub destination: PathBuf,
    pub rw: bool,
}

/// Where a container's database lives on this host.
#[derive(Debug, Clone, Serialize)]
pub struct DataLocation {
    pub mount: Mount,
    /// The database's directory on the host.
    pub host_dir: PathBuf,
    /// The database file on the host.
    pub host_db: PathBuf,
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
    /// the label `com.docker.compose.service=NAME` (in `project` when given).
    pub fn find(&self, name: &str, project: Option<&str>) -> Result<Container> {
        match self.inspect(name) {
            Ok(c) => return Ok(c),
            Err(e) if e.kind == Kind::Usage => {}
            Err(e) => return Err(e),
        }
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
            _ => {
                let names: Vec<String> = list
                    .iter()
                    .map(|c| {
                        let n = c.names.as_ref().and_then(|n| n.first()).cloned().unwrap_or_default();
                        let p = c
                            .labels
                            .as_ref()
                            .and_then(|l| l.get("com.docker.compose.project"))
                            .cloned()
                            .unwrap_or_default();
                        format!("{} (project {p})", n.trim_start_matches('/'))
                    })
                    .collect();
                Err(Error::usage(format!(
                    "several containers are Compose service {name}: {}",
                    names.join(", ")
                ))
                .hint("pass --compose-project, or the container's own name"))
            }
        }
    }

    pub fn inspect(&self, name: &str) -> Result<Container> {
        let c = self
            .rt
            .block_on(self.docker.inspect_container(name, None::<InspectContainerOptions>))
            .map_err(|e| self.api_err(e, name))?;
        let state = c.state.unwrap_or_default();
        let config = c.config.unwrap_or_default();
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
            mounts,
            labels: config.labels.unwrap_or_default(),
        })
    }

    /// Stop gracefully: the stop signal (SIGTERM), then after `timeout_s` SIGKILL; returns
    /// once the container has exited, with its exit code.
    pub fn stop(&self, c: &Container, timeout_s: i64) -> Result<Stopped> {
        let started = Instant::now();
        let docker = self.docker.clone().with_timeout(Duration::from_secs(timeout_s.max(0) as u64 + 120));
        let opts = StopContainerOptionsBuilder::default().t(timeout_s as i32).build();
        self.rt.block_on(docker.stop_container(&c.id, Some(opts))).map_err(|e| self.api_err(e, &c.name))?;
        let after = self.inspect(&c.id)?;
        if after.running {
            return Err(Error::failed(format!("container {} is still running after the stop", c.name)));
        }
        Ok(Stopped {
            exit_code: after.exit_code,
            oom_killed: after.oom_killed,
            duration_ms: started.elapsed().as_millis() as u64,
        })
    }

    pub fn start(&self, c: &Container) -> Result<()> {
        self.rt
            .block_on(self.docker.start_container(&c.id, None::<StartContainerOptions>))
            .map_err(|e| self.api_err(e, &c.name))
    }

    /// Wait until the container is up: healthy when it has a healthcheck, otherwise running
    /// and still running after `settle`. Returns the reason when it does not come up.
    pub fn wait_up(
        &self,
        c: &Container,
        settle: Duration,
        timeout: Duration,
    ) -> Result<std::result::Result<Container, String>> {
        let deadline = Instant::now() + timeout.max(settle);
        let mut running_since: Option<Instant> = None;
        loop {
            let now = self.inspect(&c.id)?;
            if !now.running {
                return Ok(Err(format!(
                    "it is {} (exit code {})",
                    now.status,
                    now.exit_code.map(|c| c.to_string()).unwrap_or_else(|| "?".into())
                )));
            }
            match now.health.as_deref() {
                Some("healthy") => return Ok(Ok(now)),
                Some("unhealthy") => return Ok(Err("its healthcheck reports unhealthy".into())),
                Some(_) => {}
                None => {
                    let since = *running_since.get_or_insert_with(Instant::now);
                    if since.elapsed() >= settle {
                        return Ok(Ok(now));
                    }
                }
            }
            if Instant::now() >= deadline {
                return Ok(Err(format!("it did not become healthy within {} s", timeout.as_secs())));
            }
            std::thread::sleep(Duration::from_millis(200));
            // An interrupt here must not abandon a container half-started: keep waiting.
            let _ = check_interrupt();
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

/// The mount that holds `db_in_container` (the longest destination that contains it), and
/// the database's path on this host. Errors say what to do when that path is not readable
/// here (a remote engine, Docker Desktop, rootless Docker, not root).
pub fn data_location(c: &Container, db_in_container: &Path) -> Result<DataLocation> {
    let mount = c
        .mounts
        .iter()
        .filter(|m| db_in_container.starts_with(&m.destination))
        .max_by_key(|m| m.destination.components().count())
        .cloned()
        .ok_or_else(|| {
            let have: Vec<String> = c.mounts.iter().map(|m| m.destination.display().to_string()).collect();
            Error::usage(format!(
                "container {} has no volume or bind mount that holds {} (its mounts: {})",
                c.name,
                db_in_container.display(),
                if have.is_empty() { "none".to_string() } else { have.join(", ") }
            ))
            .hint("without a mount the data lives in the container's own layer and is lost with it; pass --db-path if the database is elsewhere")
        })?;
    let rel = db_in_container.strip_prefix(&mount.destination).expect("filtered on the prefix");
    let host_db = mount.source.join(rel);
    let host_dir = host_db.parent().map(Path::to_path_buf).unwrap_or_else(|| mount.source.clone());
    if !mount.source.is_dir() {
        let why = match std::fs::metadata(&mount.source) {
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => "kfadmin may not read it (run as root)",
            _ => "it does not exist on this machine (a remote engine through DOCKER_HOST, Docker Desktop or rootless Docker keep it elsewhere)",
        };
        return Err(Error::usage(format!(
            "the {} {} of container {} is at {} on the Docker host, but {why}",
            mount.kind,
            mount.name.as_deref().unwrap_or(""),
            c.name,
            mount.source.display()
        ))
        .hint("run kfadmin as root on the machine that runs the Docker engine"));
    }
    Ok(DataLocation { mount, host_dir, host_db })
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

fn journal_path(container_id: &str) -> PathBuf {
    state_dir().join(format!("stopped-{container_id}.json"))
}

/// Keeps a container that kfadmin stopped on record until it runs again: [`StopGuard::stop`]
/// writes the journal and stops; [`StopGuard::restart`] starts it again and clears the
/// journal. Dropped without `restart`, it still tries to start the container.
pub struct StopGuard<'a> {
    engine: &'a Engine,
    container: Container,
    stopped: bool,
}

impl<'a> StopGuard<'a> {
    pub fn new(engine: &'a Engine, container: Container) -> Self {
        StopGuard { engine, container, stopped: false }
    }

    /// Stop the container if it runs; a container that was not running stays as it is.
    pub fn stop(&mut self, timeout_s: i64, command: &str) -> Result<Option<Stopped>> {
        if !self.container.running {
            return Ok(None);
        }
        let entry = JournalEntry {
            container_id: self.container.id.clone(),
            container_name: self.container.name.clone(),
            pid: std::process::id(),
            since_unix: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
            command: command.to_string(),
        };
        let dir = state_dir();
        crate::fsutil::ensure_private_dir(&dir)?;
        crate::fsutil::write_atomic(
            &journal_path(&self.container.id),
            &serde_json::to_vec(&entry).expect("json"),
            0o600,
        )?;
        self.stopped = true;
        self.engine.stop(&self.container, timeout_s).map(Some)
    }

    pub fn was_running(&self) -> bool {
        self.container.running
    }

    /// Start the container again if kfadmin stopped it. A failure is exit 4: the operator
    /// must act.
    pub fn restart(&mut self) -> Result<()> {
        if !self.stopped {
            return Ok(());
        }
        self.stopped = false;
        match self.engine.start(&self.container) {
            Ok(()) => {
                let _ = std::fs::remove_file(journal_path(&self.container.id));
                Ok(())
            }
            Err(e) => Err(Error::new(
                Kind::ContainerState,
                format!(
                    "kfadmin stopped container {} and cannot start it again: {}",
                    self.container.name,
                    e.chain()
                ),
            )
            .hint(format!(
                "start it now: `docker start {}`, and check `docker logs {}`",
                self.container.name, self.container.name
            ))),
        }
    }
}

impl Drop for StopGuard<'_> {
    fn drop(&mut self) {
        let _ = self.restart();
    }
}

/// Containers that an earlier kfadmin run stopped and did not start again (it was killed):
/// start them, and say so. Returns the lines to print, or exit 4 when one cannot be started.
pub fn recover_journal() -> Result<Vec<String>> {
    let dir = state_dir();
    let Ok(rd) = std::fs::read_dir(&dir) else { return Ok(vec![]) };
    let entries: Vec<(PathBuf, JournalEntry)> = rd
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("stopped-")))
        .filter_map(|p| {
            let text = std::fs::read(&p).ok()?;
            serde_json::from_slice::<JournalEntry>(&text).ok().map(|j| (p, j))
        })
        .filter(|(_, j)| !process_alive(j.pid))
        .collect();
    if entries.is_empty() {
        return Ok(vec![]);
    }
    let engine = Engine::connect().map_err(|e| {
        Error::new(
            Kind::ContainerState,
            format!(
                "an earlier kfadmin run stopped container {} and was killed before starting it again, and the Docker engine cannot be reached: {}",
                entries[0].1.container_name,
                e.chain()
            ),
        )
        .hint(format!("start the Docker engine, then `docker start {}`", entries[0].1.container_name))
    })?;
    let mut said = Vec::new();
    for (path, j) in entries {
        match engine.inspect(&j.container_id) {
            Ok(c) if c.running => said.push(format!(
                "an earlier kfadmin run (pid {}) had stopped container {}; it is running again",
                j.pid, j.container_name
            )),
            Ok(c) => {
                engine.start(&c).map_err(|e| {
                    Error::new(
                        Kind::ContainerState,
                        format!(
                            "an earlier kfadmin run (pid {}, `{}`) stopped container {} and was killed; kfadmin cannot start it again: {}",
                            j.pid,
                            j.command,
                            j.container_name,
                            e.chain()
                        ),
                    )
                    .hint(format!("start it now: `docker start {}`", j.container_name))
                })?;
                said.push(format!(
                    "an earlier kfadmin run (pid {}, `{}`) stopped container {} and was killed before starting it again; kfadmin started it now",
                    j.pid, j.command, j.container_name
                ));
            }
            Err(e) if e.kind == Kind::Usage => said.push(format!(
                "an earlier kfadmin run stopped container {}, which no longer exists; nothing to start",
                j.container_name
            )),
            Err(e) => return Err(e.kind(Kind::ContainerState)),
        }
        let _ = std::fs::remove_file(path);
    }
    Ok(said)
}

fn process_alive(pid: u32) -> bool {
    // Alive and a kfadmin (pids are reused).
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|c| String::from_utf8_lossy(&c).split('\0').next().is_some_and(|a| a.ends_with("kfadmin")))
        .unwrap_or(false)
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
            health: None,
            stop_timeout: None,
            exit_code: None,
            oom_killed: false,
            mounts: mounts
                .into_iter()
                .map(|(src, dst)| Mount {
                    kind: "volume".into(),
                    name: Some("kfdata".into()),
                    source: PathBuf::from(src),
                    destination: PathBuf::from(dst),
                    rw: true,
                })
                .collect(),
            labels: HashMap::new(),
        }
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
}
