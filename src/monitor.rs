//! Telling a monitor how a backup went: Prometheus textfile-collector metrics written
//! atomically, and healthchecks.io-style pings (`URL/start`, `URL`, `URL/fail`). A monitor
//! that is down never fails a backup: problems come back as warnings.

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

/// The textfile for `f`. A failed run keeps the last success's timestamp, size and duration
/// from `old` (the file it replaces).
pub fn render(f: &RunFacts, old: &str) -> String {
    let labels = format!("{{name=\"{}\",mode=\"{}\"}}", escape(&f.name), escape(&f.mode));
    let ok = f.exit_code == 0;
    let mut out = String::new();
    let mut metric = |name: &str, help: &str, value: Option<f64>| {
        if let Some(v) = value {
            out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} gauge\n{name}{labels} {v}\n"));
        }
    };
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
        carry("kfadmin_backup_downtime_seconds", f.downtime_s),
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

/// Write the metrics file atomically (mode 0644: node_exporter reads it). Returns a warning on
/// failure.
pub fn write_metrics(path: &Path, f: &RunFacts) -> Option<String> {
    let old = std::fs::read_to_string(path).unwrap_or_default();
    let text = crate::crypto::redact(&render(f, &old)).into_owned();
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
        Err(e) => Some(format!("cannot ping {url}: {e} (the backup itself is not affected)")),
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
        assert!(
            second.contains("kfadmin_backup_last_exit_code{name=\"kf\",mode=\"online\"} 1\n"),
            "{second}"
        );
        let series = "kfadmin_offsite_last_success_timestamp_seconds{name=\"kf\",url=\"s3://b/p\"}";
        assert_eq!(previous(&second, "kfadmin_offsite_last_success_timestamp_seconds"), Some(success));
        assert!(second.contains(series) && first.contains(series), "{second}");
    }
}
