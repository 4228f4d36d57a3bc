//! `kfadmin replicate (--db PATH | --container NAME) -r DIR`: follow a live database and ship every commit into a
//! point-in-time chain of the repository until SIGTERM/SIGINT (then a last read, exit 0).

use std::path::PathBuf;
use std::time::Instant;

use super::{Ctx, Outcome};
use crate::archive::Source;
use crate::cli::ReplicateArgs;
use crate::error::{interrupt, Error, Result};
use crate::lock::Key;
use crate::ops::container::{container_source, find_container};
use crate::ops::replicate::{self, FollowOptions};
use crate::ops::watch::{canonical_db, ContainerWatch, Event, Watched};
use crate::replicate::fstype;
use crate::store::is_remote_path;

/// How often `--container` looks at the container while it is there.
const WATCH_EVERY: std::time::Duration = std::time::Duration::from_secs(2);

pub fn run(args: ReplicateArgs, ctx: &Ctx) -> Result<Outcome> {
    let monitor = (args.metrics_file.clone(), args.ping_url.clone());
    let label = match &args.db {
        Some(d) => d.file_stem().map(|s| s.to_string_lossy().into_owned()),
        None => args.docker.container.clone(),
    };
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
    let (db, source, name, watch) = resolve(&args)?;
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
        compact: (!args.compact_every.is_zero()).then(|| {
            let policy = crate::replicate::compact::Policy {
                every_commit_us: args.keep_commits_within.as_micros() as u64,
                minutely_us: args.keep_minutely_within.as_micros() as u64,
            };
            (args.compact_every, policy)
        }),
        new_base_every: (!args.new_base_every.is_zero()).then_some(args.new_base_every),
    };
    let deadline = args.duration.map(|d| Instant::now() + d);
    // `--container`: what the watching thread found is said here, between reads.
    let moved = std::cell::RefCell::new(None);
    let stop = || {
        for e in watch.as_ref().map(ContainerWatch::events).unwrap_or_default() {
            match e {
                Event::Note { text, warn: true } => ctx.warn(&text),
                Event::Note { text, .. } => ctx.note(&text),
                Event::Moved(e) => *moved.borrow_mut() = Some(e),
            }
        }
        interrupt::requested() || deadline.is_some_and(|d| Instant::now() >= d) || moved.borrow().is_some()
    };
    let of = opts.source.container.as_ref().map(|c| format!("the database of container {} (", c.name));
    ctx.note(&format!(
        "Replicating {}{}{} into {} every {} ms; stop with Ctrl-C or SIGTERM",
        of.as_deref().unwrap_or(""),
        db.display(),
        if of.is_some() { ")" } else { "" },
        repo.join(replicate::PITR_DIR).display(),
        args.interval.as_millis()
    ));
    let reporting = replicate::Watch { metrics: args.metrics_file.clone().map(|p| (p, opts.name.clone())) };
    let report = replicate::follow_watched(&opts, &reporting, ctx, &stop)?;
    if let Some(mut e) = moved.take() {
        e.message = format!(
            "{}; chain {} holds its commits up to transaction {}",
            e.message, report.chain, report.txn
        );
        return Err(e);
    }
    let human = format!(
        "Replication of {} stopped: chain {}{}, {} commit(s) shipped in {} segment(s) this run, at transaction {}{}{}{}\n",
        db.display(),
        report.chain,
        if report.new_chain { " (new)" } else { "" },
        report.commits_shipped,
        report.segments_written,
        report.txn,
        report.last_commit.as_ref().map(|t| format!(", last commit seen {t}")).unwrap_or_default(),
        if report.gaps.is_empty() { String::new() } else { format!(", {} gap(s) repaired", report.gaps.len()) },
        if report.new_bases.is_empty() {
            String::new()
        } else {
            format!(", {} new base(s): {}", report.new_bases.len(), report.new_bases.iter().map(|b| b.reason.as_str()).collect::<Vec<_>>().join("; "))
        },
    );
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

/// The database to follow (canonical), its source for the base's manifest, the first part of
/// a new chain's name, and with `--container` the thread that keeps watching the container.
/// Either way, a data directory on a filesystem whose shared memory is not coherent is refused.
fn resolve(args: &ReplicateArgs) -> Result<(PathBuf, Source, String, Option<ContainerWatch>)> {
    let d = &args.docker;
    let (db, source, name, watch) = match (&args.db, &d.container) {
        (Some(db), None) => {
            // The operator's own links are followed here, once.
            let db = std::fs::canonicalize(db).map_err(|e| Error::io("cannot open", db, e))?;
            let name = db
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| "keyfount".into());
            let source = Source {
                kind: "path".into(),
                path: db.display().to_string(),
                host: crate::fsutil::hostname(),
                container: None,
                mounts: vec![],
            };
            (db, source, name, None)
        }
        (None, Some(container)) => {
            // Found as `backup --online --container` finds it, with the same errors.
            let f = find_container(container, d.compose_project.as_deref(), &d.db_path)?;
            crate::docker::check_readable(&f.container, &f.location)?;
            let dir = &f.location.host_dir;
            fstype::check(
                dir,
                &format!("the data of container {} ({})", f.container.name, f.location.mount.describe()),
            )?;
            crate::ops::container::inspect_db(&f, &d.db_path)?;
            let db = canonical_db(&f.location.host_db);
            let mut source = container_source(&f);
            source.path = db.display().to_string();
            let watch = ContainerWatch::spawn(Watched {
                name: container.clone(),
                project: d.compose_project.clone(),
                db_in_container: d.db_path.clone(),
                host_db: db.clone(),
                id: f.container.id.clone(),
                every: WATCH_EVERY,
            })?;
            (db, source, f.container.name.clone(), Some(watch))
        }
        _ => return Err(Error::usage("replicate needs exactly one of --db PATH and --container NAME")),
    };
    if let Some(dir) = db.parent() {
        fstype::check(dir, &format!("the database {}", db.display()))?;
    }
    let name = crate::ops::make::check_name(&name).unwrap_or_else(|_| "keyfount".into());
    Ok((db, source, name, watch))
}
