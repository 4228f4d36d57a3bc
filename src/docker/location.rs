//! Where a container's database is on this host, and the layouts that cannot be stopped,
//! read or restored safely.

use std::path::{Path, PathBuf};

use bollard::query_parameters::ListContainersOptionsBuilder;

use crate::error::{Error, IoContext, Result};

use super::*;

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
pub(super) fn holding<'a>(mounts: &'a [Mount], path: &Path) -> Option<&'a Mount> {
    mounts
        .iter()
        .filter(|m| path.starts_with(&m.destination))
        .max_by_key(|m| m.destination.components().count())
}

/// A local volume with bind options (Compose `driver_opts: {type: none, o: bind, device:
/// /srv/kf}`) is its device on this host, whether or not the engine has it mounted now. Other
/// volumes with options, and a plugin's volumes, are mounted by the engine only while a
/// container uses them: the mount says so.
pub(super) fn resolve_volume(mut m: Mount) -> Mount {
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
pub(super) fn resolve_in_container(c: &Container, mounts: &[Mount], path: &Path) -> Result<PathBuf> {
    use std::ffi::OsString;
    use std::path::Component;
    pub(super) fn push_parts(todo: &mut Vec<OsString>, p: &Path) {
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

pub(super) fn no_mount(c: &Container, asked: &Path, resolved: &Path) -> Error {
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

pub(super) fn single_file(c: &Container, m: &Mount, db: &Path) -> Error {
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
pub(super) fn ambiguous_service(service: &str, list: &[bollard::models::ContainerSummary]) -> Error {
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
