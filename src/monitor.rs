//! Telling a monitor how a backup or a restore drill went: Prometheus textfile-collector metrics
//! written atomically (each run replaces its own metrics and keeps the others of the file), and
//! healthchecks.io-style pings (`URL/start`, `URL`, `URL/fail`). A monitor that is down never
//! fails a run: problems come back as warnings.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// What the metrics say about one run.
#[derive(Debug, Clone, Default)]
pub struct RunFacts {
    /// Label: the archive name (container or database).
    pub name: String,
    /// Label: online or cold.
    pub mode: String,
    pub exit_code: u8,
    pub duration_s: f64,
    /// On success: the archive's size.
    pub bytes: Option<u64>,
    pub database_bytes: Option<u64>,
    pub downtime_s: Option<f64>,
    /// Each `--to` destination (its `s3://` location) and whether its copy went.
    pub offsite: Vec<(String, bool)>,
}

const PING_TIMEOUT: Duration = Duration::from_secs(10);

fn now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// The value of `metric{…}` in an earlier metrics file, to carry a last success over a failure.
fn previous(text: &str, metric: &str) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find(|l| l.starts_with(metric) && l[metric.len()..].starts_with(['{', ' ']))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// One gauge with its HELP and TYPE lines (nothing when there is no value).
fn gauge(out: &mut String, name: &str, help: &str, labels: &str, value: Option<f64>) {
    if let Some(v) = value {
        out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} gauge\n{name}{labels} {v}\n"));
    }
}

/// The textfile for `f`. A failed run keeps the last success's timestamp, size and duration
/// from `old` (the file it replaces).
pub fn render(f: &RunFacts, old: &str) -> String {
    // One label set per series whatever the mode, so an alert never sees a series end and
    // another begin when a cold backup follows an online one.
    let labels = format!("{{name=\"{}\"}}", escape(&f.name));
    let ok = f.exit_code == 0;
    let mut out = String::new();
    let mut metric = |name: &str, help: &str, value: Option<f64>| gauge(&mut out, name, help, &labels, value);
    let t = now();
    let carry = |m: &str, v: Option<f64>| if ok { v } else { previous(old, m) };
    metric("kfadmin_backup_last_run_timestamp_seconds", "When the last backup run ended.", Some(t));
    metric(
        "kfadmin_backup_last_exit_code",
        "Exit code of the last backup run (0 is success).",
        Some(f64::from(f.exit_code)),
    );
    metric(
        "kfadmin_backup_last_success_timestamp_seconds",
        "When the last successful backup ended.",
        carry("kfadmin_backup_last_success_timestamp_seconds", Some(t)),
    );
    metric(
        "kfadmin_backup_duration_seconds",
        "How long the last successful backup took.",
        carry("kfadmin_backup_duration_seconds", Some(f.duration_s)),
    );
    metric(
        "kfadmin_backup_size_bytes",
        "Size of the last successful backup's archive.",
        carry("kfadmin_backup_size_bytes", f.bytes.map(|b| b as f64)),
    );
    metric(
        "kfadmin_backup_database_bytes",
        "Size of the database in the last successful backup.",
        carry("kfadmin_backup_database_bytes", f.database_bytes.map(|b| b as f64)),
    );
    metric(
        "kfadmin_backup_downtime_seconds",
        "Container downtime of the last successful cold backup.",
        // Only a successful cold backup measures downtime; any other run keeps the last one.
        match f.mode == "cold" && ok {
            true => f.downtime_s,
            false => previous(old, "kfadmin_backup_downtime_seconds"),
        },
    );
    out.push_str(&offsite_metrics(f, old, t));
    out
}

/// `kfadmin_offsite_last_success_timestamp_seconds`, one series per destination: now for a
/// copy that went, the earlier value for one that did not (none before the first success).
fn offsite_metrics(f: &RunFacts, old: &str, t: f64) -> String {
    const NAME: &str = "kfadmin_offsite_last_success_timestamp_seconds";
    let mut out = String::new();
    for (url, ok) in &f.offsite {
        let series = format!("{NAME}{{name=\"{}\",url=\"{}\"}}", escape(&f.name), escape(url));
        let value = if *ok {
            Some(t)
        } else {
            old.lines().find_map(|l| l.strip_prefix(&series)?.trim().parse::<f64>().ok())
        };
        if let Some(v) = value {
            if out.is_empty() {
                out.push_str(&format!(
                    "# HELP {NAME} When the last offsite copy to this destination was uploaded and checked.\n# TYPE {NAME} gauge\n"
                ));
            }
            out.push_str(&format!("{series} {v}\n"));
        }
    }
    out
}

/// What the metrics say about one drill.
#[derive(Debug, Clone, Default)]
pub struct DrillFacts {
    /// Label: the live container's name.
    pub name: String,
    /// 0 passed, 3 the server did not come up on the backup, 1 the drill could not run.
    pub exit_code: u8,
    pub duration_s: f64,
}

/// The drill's metrics; a failed drill keeps the last success's timestamp and duration.
pub fn render_drill(f: &DrillFacts, old: &str) -> String {
    let labels = format!("{{name=\"{}\"}}", escape(&f.name));
    let ok = f.exit_code == 0;
    let mut out = String::new();
    let mut metric = |name: &str, help: &str, value: Option<f64>| gauge(&mut out, name, help, &labels, value);
    let t = now();
    let carry = |m: &str, v: f64| if ok { Some(v) } else { previous(old, m) };
    metric("kfadmin_drill_last_run_timestamp_seconds", "When the last restore drill ended.", Some(t));
    metric(
        "kfadmin_drill_last_exit_code",
        "Exit code of the last restore drill (0 passed, 3 the server did not come up on the backup).",
        Some(f64::from(f.exit_code)),
    );
    metric(
        "kfadmin_drill_last_success_timestamp_seconds",
        "When the last restore drill that passed ended.",
        carry("kfadmin_drill_last_success_timestamp_seconds", t),
    );
    metric(
        "kfadmin_drill_duration_seconds",
        "How long the last restore drill that passed took.",
        carry("kfadmin_drill_duration_seconds", f.duration_s),
    );
    out
}

/// What the metrics say about point-in-time replication of one database (`replicate` while it
/// follows, and `status --max-lag`).
#[derive(Debug, Clone, Default)]
pub struct ReplicationFacts {
    /// Label: the database's name (container or database file).
    pub name: String,
    /// A follower is running and reporting.
    pub up: bool,
    /// The chain is broken (a point after the break cannot be restored).
    pub broken: bool,
    pub lag_seconds: Option<f64>,
    pub lag_bytes: Option<u64>,
    /// Until when the chain holds every commit (the follower saw the database current).
    pub current_unix: Option<f64>,
    pub heartbeat_unix: Option<f64>,
    pub last_commit_unix: Option<f64>,
    pub transactions: Option<u64>,
    pub commits_shipped: Option<u64>,
    pub bytes_shipped: Option<u64>,
    pub gaps: Option<u64>,
}

/// The replication metrics. An alert on `time() - kfadmin_replication_current_timestamp_seconds`
/// holds even when nothing rewrites the file any more (a follower killed with SIGKILL).
pub fn render_replication(f: &ReplicationFacts) -> String {
    let labels = format!("{{name=\"{}\"}}", escape(&f.name));
    let mut out = String::new();
    // Unknown is NaN, never left out: a left-out series would keep an older run's value.
    let mut metric = |name: &str, help: &str, value: Option<f64>| {
        gauge(&mut out, name, help, &labels, Some(value.unwrap_or(f64::NAN)))
    };
    let n = |v: Option<u64>| v.map(|v| v as f64);
    metric(
        "kfadmin_replication_up",
        "1 while a replicate follower runs and reports, 0 when it stopped.",
        Some(if f.up { 1.0 } else { 0.0 }),
    );
    metric(
        "kfadmin_replication_chain_broken",
        "1 when the chain being followed is broken (the points after the break cannot be restored).",
        Some(if f.broken { 1.0 } else { 0.0 }),
    );
    metric(
        "kfadmin_replication_lag_seconds",
        "Seconds since the follower last saw the database with every commit shipped, when written.",
        f.lag_seconds,
    );
    metric(
        "kfadmin_replication_lag_bytes",
        "Bytes of committed WAL frames not yet shipped, at the follower's last read.",
        n(f.lag_bytes),
    );
    metric(
        "kfadmin_replication_current_timestamp_seconds",
        "Until when the chain holds every commit (the follower saw the database current).",
        f.current_unix,
    );
    metric(
        "kfadmin_replication_heartbeat_timestamp_seconds",
        "When the follower last reported (its state file was written).",
        f.heartbeat_unix,
    );
    metric(
        "kfadmin_replication_last_commit_timestamp_seconds",
        "When the last commit shipped was seen committed.",
        f.last_commit_unix,
    );
    metric("kfadmin_replication_transactions", "The chain's transaction counter.", n(f.transactions));
    metric(
        "kfadmin_replication_shipped_commits",
        "Commits shipped by the current (or last) replicate run.",
        n(f.commits_shipped),
    );
    metric(
        "kfadmin_replication_shipped_bytes",
        "Bytes of segments written by the current (or last) replicate run.",
        n(f.bytes_shipped),
    );
    metric("kfadmin_replication_gaps", "Gaps in the chain (periods that cannot be restored).", n(f.gaps));
    out
}

/// Write the replication metrics into the file, keeping its other metrics.
pub fn write_replication_metrics(path: &Path, f: &ReplicationFacts) -> Option<String> {
    write_with(path, |_| render_replication(f))
}

/// A follower that ended with an error: `kfadmin_replication_up` goes to 0, the rest stays as
/// the follower last wrote it.
pub fn write_replication_down(path: &Path, name: &str) -> Option<String> {
    let labels = format!("{{name=\"{}\"}}", escape(name));
    write_with(path, |_| {
        let mut out = String::new();
        gauge(
            &mut out,
            "kfadmin_replication_up",
            "1 while a replicate follower runs and reports, 0 when it stopped.",
            &labels,
            Some(0.0),
        );
        out
    })
}

/// The metric family a line of a textfile belongs to (None for other comments, blank lines).
fn family(line: &str) -> Option<&str> {
    let l = line.trim_start();
    if let Some(rest) = l.strip_prefix("# HELP ").or_else(|| l.strip_prefix("# TYPE ")) {
        return rest.split_whitespace().next();
    }
    if l.is_empty() || l.starts_with('#') {
        return None;
    }
    l.split(['{', ' ']).next()
}

/// `new` after what `old` has of other metric families: backups and drills (and anything
/// else) can share one textfile without erasing each other's metrics.
fn merge(old: &str, new: &str) -> String {
    let ours: std::collections::HashSet<&str> = new.lines().filter_map(family).collect();
    let mut out: String = old
        .lines()
        .filter(|l| family(l).is_some_and(|f| !ours.contains(f)))
        .map(|l| format!("{l}\n"))
        .collect();
    out.push_str(new);
    out
}

/// Write the backup's metrics into the file atomically (mode 0644: node_exporter reads it),
/// keeping its other metrics. Returns a warning on failure.
pub fn write_metrics(path: &Path, f: &RunFacts) -> Option<String> {
    write_with(path, |old| render(f, old))
}

/// Write the drill's metrics into the file, keeping its other metrics (a backup's).
pub fn write_drill_metrics(path: &Path, f: &DrillFacts) -> Option<String> {
    write_with(path, |old| render_drill(f, old))
}

fn write_with(path: &Path, render: impl FnOnce(&str) -> String) -> Option<String> {
    let old = std::fs::read_to_string(path).unwrap_or_default();
    let text = crate::crypto::redact(&merge(&old, &render(&old))).into_owned();
    crate::fsutil::write_atomic(path, text.as_bytes(), 0o644)
        .err()
        .map(|e| format!("cannot write the metrics file {}: {}", path.display(), e.chain()))
}

/// Which ping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ping {
    Start,
    Success,
    Fail,
}

/// Send a ping with `body` (the monitor keeps it as the run's log; secrets in it are masked
/// with [`crate::crypto::redact`]). Returns a warning when the monitor cannot be reached;
/// never an error.
pub fn ping(base: &str, which: Ping, body: &str) -> Option<String> {
    let body = crate::crypto::redact(body);
    let base = base.trim_end_matches('/');
    let url = match which {
        Ping::Start => format!("{base}/start"),
        Ping::Success => base.to_string(),
        Ping::Fail => format!("{base}/fail"),
    };
    let agent: ureq::Agent = ureq::Agent::config_builder().timeout_global(Some(PING_TIMEOUT)).build().into();
    match agent
        .post(&url)
        .header("User-Agent", concat!("kfadmin/", env!("CARGO_PKG_VERSION")))
        .send(body.as_bytes())
    {
        Ok(_) => None,
        Err(e) => Some(format!("cannot ping {url}: {e} (the run itself is not affected)")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_keeps_the_last_success() {
        let ok = RunFacts {
            name: "kf".into(),
            mode: "online".into(),
            exit_code: 0,
            duration_s: 2.5,
            bytes: Some(1000),
            database_bytes: Some(4096),
            downtime_s: None,
            offsite: vec![("s3://b/p".into(), true)],
        };
        let first = render(&ok, "");
        let success = previous(&first, "kfadmin_backup_last_success_timestamp_seconds").unwrap();
        assert_eq!(previous(&first, "kfadmin_backup_size_bytes"), Some(1000.0));
        let failed = RunFacts {
            exit_code: 1,
            bytes: None,
            duration_s: 0.1,
            offsite: vec![("s3://b/p".into(), false)],
            ..ok
        };
        let second = render(&failed, &first);
        assert_eq!(previous(&second, "kfadmin_backup_last_exit_code"), Some(1.0));
        assert_eq!(previous(&second, "kfadmin_backup_last_success_timestamp_seconds"), Some(success));
        assert_eq!(previous(&second, "kfadmin_backup_size_bytes"), Some(1000.0));
        assert_eq!(previous(&second, "kfadmin_backup_duration_seconds"), Some(2.5));
        assert!(second.contains("kfadmin_backup_last_exit_code{name=\"kf\"} 1\n"), "{second}");
        let series = "kfadmin_offsite_last_success_timestamp_seconds{name=\"kf\",url=\"s3://b/p\"}";
        assert_eq!(previous(&second, "kfadmin_offsite_last_success_timestamp_seconds"), Some(success));
        assert!(second.contains(series) && first.contains(series), "{second}");
    }

    #[test]
    fn backups_and_drills_keep_each_others_metrics() {
        let backup =
            RunFacts { name: "kf".into(), mode: "online".into(), duration_s: 2.0, ..RunFacts::default() };
        let drill = DrillFacts { name: "kf".into(), exit_code: 0, duration_s: 12.5 };
        let other = "# HELP node_custom Something else.\n# TYPE node_custom gauge\nnode_custom 7\n";
        let first = merge(other, &render(&backup, other));
        let both = merge(&first, &render_drill(&drill, &first));
        assert!(both.contains("node_custom 7\n"), "{both}");
        assert_eq!(previous(&both, "kfadmin_backup_duration_seconds"), Some(2.0));
        assert_eq!(previous(&both, "kfadmin_drill_duration_seconds"), Some(12.5));
        let success = previous(&both, "kfadmin_drill_last_success_timestamp_seconds").unwrap();
        // A failed drill keeps the last success; the next backup keeps the drill's metrics.
        let failed = DrillFacts { exit_code: 3, duration_s: 1.0, ..drill };
        let after = merge(&both, &render_drill(&failed, &both));
        assert_eq!(previous(&after, "kfadmin_drill_last_exit_code"), Some(3.0));
        assert_eq!(previous(&after, "kfadmin_drill_last_success_timestamp_seconds"), Some(success));
        assert_eq!(previous(&after, "kfadmin_drill_duration_seconds"), Some(12.5));
        let again = merge(&after, &render(&backup, &after));
        assert_eq!(previous(&again, "kfadmin_drill_last_exit_code"), Some(3.0));
        assert_eq!(again.matches("# TYPE kfadmin_backup_duration_seconds").count(), 1, "{again}");
        assert_eq!(again.matches("# TYPE kfadmin_drill_duration_seconds").count(), 1, "{again}");
    }
}
