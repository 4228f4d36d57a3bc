//! Throwaway copies of a container (drills): their volume, upload, logs, removal.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use bollard::errors::Error as BollardError;
use bollard::query_parameters::InspectContainerOptions;

use crate::error::{Error, Result};

use super::*;

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
    /// The live container's limits and hardening ([`limits_of`]), so the copy is bounded and
    /// confined as the server is.
    pub limits: bollard::models::HostConfig,
    /// Labels the image carries that would make the copy look like the service to Compose,
    /// Traefik or Swarm, each overridden (emptied, `traefik.enable=false`) on the copy.
    pub neutral_labels: HashMap<String, String>,
}

/// What of the live container's host configuration a drill copy keeps: memory, CPU, pids and
/// ulimits, a read-only root, tmpfs mounts, capabilities, security options, the log driver, the
/// shm size and the OOM score. Never privileged mode, devices, binds, volumes-from, or the
/// network, pid, ipc or uts modes: the copy is isolated from the host and from production.
pub fn limits_of(h: &bollard::models::HostConfig) -> bollard::models::HostConfig {
    bollard::models::HostConfig {
        memory: h.memory,
        memory_swap: h.memory_swap,
        memory_reservation: h.memory_reservation,
        memory_swappiness: h.memory_swappiness,
        nano_cpus: h.nano_cpus,
        cpu_shares: h.cpu_shares,
        cpu_period: h.cpu_period,
        cpu_quota: h.cpu_quota,
        cpuset_cpus: h.cpuset_cpus.clone(),
        cpuset_mems: h.cpuset_mems.clone(),
        blkio_weight: h.blkio_weight,
        pids_limit: h.pids_limit,
        ulimits: h.ulimits.clone(),
        readonly_rootfs: h.readonly_rootfs,
        tmpfs: h.tmpfs.clone(),
        cap_add: h.cap_add.clone(),
        cap_drop: h.cap_drop.clone(),
        security_opt: h.security_opt.clone(),
        log_config: h.log_config.clone(),
        shm_size: h.shm_size,
        oom_score_adj: h.oom_score_adj,
        oom_kill_disable: h.oom_kill_disable,
        ..Default::default()
    }
}

/// The image's labels a copy must not carry as they are: `com.docker.compose.*` (service
/// lookups by kfadmin and Compose would find two containers), `com.docker.swarm.*`, and
/// `traefik.*` (a proxy would route production traffic to the copy).
fn neutral_labels(image: &HashMap<String, String>) -> HashMap<String, String> {
    image
        .keys()
        .filter(|k| ["com.docker.compose.", "com.docker.swarm.", "traefik."].iter().any(|p| k.starts_with(p)))
        .map(|k| (k.clone(), if k == "traefik.enable" { "false".to_string() } else { String::new() }))
        .collect()
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
pub(super) const COPY_TIMEOUT: Duration = Duration::from_secs(3600);

/// Feeds a blocking writer's bytes to an upload: bounded (a slow engine slows the writer), and
/// given up once the upload has ended (`done`).
pub(super) struct ChanWriter<'a> {
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
pub(super) struct StreamRead<'a, S> {
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
                .hint(format!(
                    "a drill boots the very image the live container runs, by its id; pulling or building {image_ref} again gives another id and cannot help. Recreate the container from the image you want (e.g. `docker compose up -d`), then drill"
                ))
            } else {
                engine_said(&self.host, e, &format!("to inspect the image of container {}", c.name))
            }
        })?;
        let image_config = image.config.unwrap_or_default();
        let healthcheck = config.healthcheck.or(image_config.healthcheck);
        let host = r.host_config.unwrap_or_default();
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
            init: host.init,
            limits: limits_of(&host),
            neutral_labels: neutral_labels(&image_config.labels.unwrap_or_default()),
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
            labels: Some(bp.neutral_labels.clone().into_iter().chain(t.labels.clone()).collect()),
            host_config: Some(HostConfig {
                mounts: Some(vec![mount]),
                network_mode: Some("none".into()),
                init: bp.init,
                publish_all_ports: Some(false),
                ..bp.limits.clone()
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
pub(super) fn read_single_file(
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
