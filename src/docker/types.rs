//! What kfadmin knows of a container: its state, healthcheck, mounts, where its data is.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

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
    pub(super) fn from_config(h: &bollard::models::HealthConfig) -> Option<Healthcheck> {
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

    pub(super) fn describe(&self) -> String {
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

    pub(super) fn too_slow(&self) -> String {
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
    pub(super) fn action(self) -> &'static str {
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
