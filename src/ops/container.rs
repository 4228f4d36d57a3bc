//! Find a Keyfount container and where its data is on this host; what an archive of it says
//! about its source; how work done while it was stopped and its restart add up.

use crate::archive::manifest::{ContainerRef, SourceMount};
use crate::archive::Source;
use crate::docker::{self, Container, Engine};
use crate::error::{Error, Kind, Result};
use crate::fsutil;
use std::path::Path;

/// A Keyfount found through `--container`.
pub struct Found {
    pub engine: Engine,
    pub container: Container,
    pub location: docker::DataLocation,
}

/// The container's database (`--db-path` inside it), checked as [`crate::sqlite::inspect`]
/// checks a file; what is wrong is said in terms of `--db-path`, the flag that names it.
pub fn inspect_db(f: &Found, db_path: &Path) -> Result<crate::sqlite::SourceInfo> {
    let host = &f.location.host_db;
    let look = format!(
        "`docker exec {} ls -l {}` shows what is there; pass the database's path inside the container with --db-path (Keyfount's default is /data/keyfount.db)",
        f.container.name,
        db_path.parent().unwrap_or(Path::new("/")).display()
    );
    if matches!(host.symlink_metadata(), Err(e) if e.kind() == std::io::ErrorKind::NotFound) {
        return Err(Error::usage(format!(
            "container {} has no database at {} (--db-path; on this host: {}, which does not exist)",
            f.container.name,
            db_path.display(),
            host.display()
        ))
        .hint(look));
    }
    crate::sqlite::inspect(host).map_err(|mut e| {
        if e.hint.as_deref().is_some_and(|h| h.contains("--db")) {
            e.message =
                format!("{} (--db-path {} in container {})", e.message, db_path.display(), f.container.name);
            e.hint = Some(look);
        }
        e
    })
}

/// The container `name` (a name, an id or a Compose service in `project`) and the mount that
/// holds `db_path` inside it.
pub fn find_container(name: &str, project: Option<&str>, db_path: &Path) -> Result<Found> {
    if !db_path.is_absolute() {
        return Err(Error::usage(format!(
            "--db-path {} must be an absolute path inside the container",
            db_path.display()
        )));
    }
    let engine = Engine::connect()?;
    let container = engine.find(name, project)?;
    let location = docker::data_location(&container, db_path)?;
    Ok(Found { engine, container, location })
}

pub fn container_source(f: &Found) -> Source {
    Source {
        kind: "container".into(),
        path: f.location.host_db.display().to_string(),
        host: fsutil::hostname(),
        container: Some(ContainerRef {
            name: f.container.name.clone(),
            id: f.container.id.clone(),
            image: f.container.image.clone(),
        }),
        mounts: vec![],
    }
}

/// The source of a copy of the whole data directory: with the mounts it spans, when several.
pub fn cold_source(f: &Found) -> Source {
    let loc = &f.location;
    let mut source = container_source(f);
    if loc.nested.is_empty() {
        return source;
    }
    let record = |path: String, m: &docker::Mount| SourceMount {
        path,
        kind: m.kind.clone(),
        source: m.name.clone().unwrap_or_else(|| m.source.display().to_string()),
        destination: m.destination.display().to_string(),
    };
    source.mounts.push(record("data".into(), &loc.mount));
    for ((rel, _), m) in loc.parts(true).iter().skip(1).zip(&loc.nested) {
        source.mounts.push(record(format!("data/{}", rel.display()), m));
    }
    source
}

/// The outcome of work done while a container was stopped, and of starting it again: a
/// container that cannot be started again outranks every other error (exit 4).
pub fn settle<T>(work: Result<T>, restarted: Result<()>) -> Result<T> {
    match (work, restarted) {
        (Ok(x), Ok(())) => Ok(x),
        (Err(e), Ok(())) => Err(e),
        (Ok(_), Err(r)) => Err(r),
        (Err(e), Err(r)) => {
            Err(Error::new(Kind::ContainerState, format!("{}; then: {}", e.chain(), r.message))
                .hint(r.hint.unwrap_or_default()))
        }
    }
}

/// The database on this host a point-in-time restore or drill is for (`--container`: the
/// container's database, found as any command finds it; `--data-dir DIR`: DIR/keyfount.db), so
/// the chain replicated from it is the one taken ([`crate::ops::replicate::ChainChoice`]).
pub fn point_target(
    d: &crate::cli::ContainerArgs,
    data_dir: Option<&Path>,
) -> Result<Option<std::path::PathBuf>> {
    Ok(match (&d.container, data_dir) {
        (Some(name), _) => {
            Some(find_container(name, d.compose_project.as_deref(), &d.db_path)?.location.host_db)
        }
        (None, Some(dir)) => Some(dir.join(crate::sqlite::DB_FILE)),
        (None, None) => None,
    })
}
