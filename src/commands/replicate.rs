//! `kfadmin replicate --db PATH -r DIR`: follow a live database and ship every commit into a
//! point-in-time chain of the repository until SIGTERM/SIGINT (then a last read, exit 0).

use std::path::PathBuf;
use std::time::Instant;

use super::{Ctx, Outcome};
use crate::archive::Source;
use crate::cli::ReplicateArgs;
use crate::error::{interrupt, Error, Result};
use crate::lock::Key;
use crate::ops::replicate::{self, FollowOptions};
use crate::store::is_remote_path;

pub fn run(args: ReplicateArgs, ctx: &Ctx) -> Result<Outcome> {
    let monitor = (args.metrics_file.clone(), args.ping_url.clone());
    let label = args.db.as_ref().and_then(|d| d.file_stem()).map(|s| s.to_string_lossy().into_owned());
    let out = follow(args, ctx);
    if let Err(e) = &out {
        if e.kind != crate::error::Kind::Interrupted {
            monitor_failure(&monitor, label.as_deref().unwrap_or("keyfount"), e, ctx);
        }
    }
    out
}

fn follow(args: ReplicateArgs, ctx: &Ctx) -> Result<Outcome> {
    let repo = args.repo.location(None)?;
    if is_remote_path(&repo) {
        return Err(Error::usage(format!(
            "replicate writes to a local directory for now, not {}",
            repo.display()
        ))
        .hint("pass -r with a directory on this host"));
    }
    let db = args.db.clone().ok_or_else(|| Error::usage("replicate needs --db PATH"))?;
    // The operator's own links are followed here, once.
    let db = std::fs::canonicalize(&db).map_err(|e| Error::io("cannot open", &db, e))?;
    let name = db
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "keyfount".into());
    let name = crate::ops::make::check_name(&name).unwrap_or_else(|_| "keyfount".into());
    let source = Source {
        kind: "path".into(),
        path: db.display().to_string(),
        host: crate::fsutil::hostname(),
        container: None,
        mounts: vec![],
    };
    let key = Key::url("replication of", &format!("replicate:{}", db.display()));
    let _lock = ctx.lock("kfadmin replicate", vec![key])?;
    let opts = FollowOptions {
        db: db.clone(),
        repo: repo.clone(),
        name,
        source,
        interval: args.interval,
        tmp_dir: args.tmp_dir.clone(),
        compression: Default::default(),
    };
    let deadline = args.duration.map(|d| Instant::now() + d);
    let stop = || interrupt::requested() || deadline.is_some_and(|d| Instant::now() >= d);
    ctx.note(&format!(
        "Replicating {} into {} every {} ms; stop with Ctrl-C or SIGTERM",
        db.display(),
        repo.join(replicate::PITR_DIR).display(),
        args.interval.as_millis()
    ));
    let watch = replicate::Watch { metrics: args.metrics_file.clone().map(|p| (p, opts.name.clone())) };
    let report = replicate::follow_watched(&opts, &watch, ctx, &stop)?;
    let human = format!(
        "Replication of {} stopped: chain {}{}, {} commit(s) shipped in {} segment(s) this run, at transaction {}{}{}\n",
        db.display(),
        report.chain,
        if report.new_chain { " (new)" } else { "" },
        report.commits_shipped,
        report.segments_written,
        report.txn,
        report.last_commit.as_ref().map(|t| format!(", last commit seen {t}")).unwrap_or_default(),
        if report.gaps.is_empty() { String::new() } else { format!(", {} gap(s) repaired", report.gaps.len()) },
    );
    let _ = PathBuf::new();
    Ok(Outcome::new(0, human, &report))
}

/// replicate ended with an error: the metrics say it is down, the monitor gets URL/fail.
fn monitor_failure(monitor: &(Option<PathBuf>, Option<String>), name: &str, e: &Error, ctx: &Ctx) {
    if let Some(path) = &monitor.0 {
        if let Some(w) = crate::monitor::write_replication_down(path, name) {
            ctx.warn(&format!("warning: {w}"));
        }
    }
    if let Some(url) = &monitor.1 {
        let body = format!("kfadmin replicate exited {}: {}", e.kind.code(), e.chain());
        if let Some(w) = crate::monitor::ping(url, crate::monitor::Ping::Fail, &body) {
            ctx.warn(&format!("warning: {w}"));
        }
    }
}
