//! The connection to the engine, and the calls on one container: find, inspect, stop,
//! start, wait until it is up.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use bollard::errors::Error as BollardError;
use bollard::query_parameters::{
    InspectContainerOptions, ListContainersOptionsBuilder, StartContainerOptions, StopContainerOptionsBuilder,
};
use bollard::Docker;

use crate::error::{check_interrupt, Error, Kind, Result};

use super::*;

pub struct Engine {
    pub(super) rt: tokio::runtime::Runtime,
    pub(super) docker: Docker,
    /// Where the engine is, for messages.
    pub host: String,
}

pub(super) fn engine_host() -> String {
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
            // The cause is deep in the chain (bollard → hyper → the socket's io::Error).
            let mut text = e.to_string();
            let mut cause: Option<&dyn std::error::Error> = std::error::Error::source(&e);
            while let Some(c) = cause {
                text.push_str(&format!(": {c}"));
                cause = c.source();
            }
            let hint = if text.contains("ermission denied") {
                "run kfadmin as root (`sudo kfadmin …`), as the runbook says: it reads the volume's files on this host directly, which membership of the docker group does not allow".to_string()
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

    pub(super) fn find_service(&self, name: &str, project: Option<&str>) -> Result<Container> {
        let mut filters: HashMap<&str, Vec<String>> = HashMap::new();
        let mut labels = vec![format!("com.docker.compose.service={name}")];
        if let Some(p) = project {
            labels.push(format!("com.docker.compose.project={p}"));
        }
        filters.insert("label", labels);
        let opts = ListContainersOptionsBuilder::default().all(true).filters(&filters).build();
        let mut list =
            self.rt.block_on(self.docker.list_containers(Some(opts))).map_err(|e| self.api_err(e, name))?;
        // A drill's throwaway copy is never the service, whatever labels its image carries.
        list.retain(|c| !c.labels.as_ref().is_some_and(|l| l.contains_key("kfadmin.drill")));
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
    pub(super) fn with_volume_options(&self, mut c: Container) -> Result<Container> {
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

    /// The names of every container (running or not) but drills' throwaway copies, for
    /// completion.
    pub fn container_names(&self) -> Result<Vec<String>> {
        let opts = ListContainersOptionsBuilder::default().all(true).build();
        let list =
            self.rt.block_on(self.docker.list_containers(Some(opts))).map_err(|e| self.api_err(e, "*"))?;
        Ok(list
            .into_iter()
            .filter(|c| !c.labels.as_ref().is_some_and(|l| l.contains_key("kfadmin.drill")))
            .flat_map(|c| c.names.unwrap_or_default())
            .map(|n| n.trim_start_matches('/').to_string())
            .collect())
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

    pub(super) fn wait_up_with(
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

    pub(super) fn api_err(&self, e: BollardError, what: &str) -> Error {
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

/// What the engine answered, for errors that are not about a missing container.
pub(super) fn engine_said(host: &str, e: BollardError, what: &str) -> Error {
    match &e {
        BollardError::DockerResponseServerError { message, .. } => {
            Error::failed(format!("the Docker engine refused {what}: {message}"))
        }
        _ => Error::failed(format!("the Docker engine at {host} failed {what}"))
            .hint("check that the Docker daemon is running and reachable")
            .source(e),
    }
}

pub(super) fn not_found(e: &BollardError) -> bool {
    matches!(e, BollardError::DockerResponseServerError { status_code: 404, .. })
}

/// Why a container that was just started is not up (None: it is, so far). `first` is how it
/// was when the wait began.
pub(super) fn not_up(now: &Container, first: Option<&Container>) -> Option<String> {
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
