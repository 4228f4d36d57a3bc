//! The stop journal and the guard that starts a stopped container again on every way out,
//! and the recovery of journals that a killed kfadmin left.

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Serialize;

use crate::error::{Error, IoContext, Kind, Result};

use super::*;

/// A record, written before kfadmin stops a container, so that a kfadmin killed while the
/// container is down lets the next run start it again.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct JournalEntry {
    pub container_id: String,
    pub container_name: String,
    pub pid: u32,
    pub since_unix: u64,
    pub command: String,
    /// When the entry was written, in ms since the epoch (0 in journals of older versions).
    #[serde(default)]
    pub since_ms: u64,
    /// The StartedAt of the run kfadmin stopped: any other StartedAt means that the container
    /// was started after kfadmin's stop. None in journals of older versions.
    #[serde(default)]
    pub started_at: Option<String>,
    /// The stop timeout kfadmin gave the engine: a stop of kfadmin's ends within it.
    #[serde(default)]
    pub stop_timeout_s: Option<i64>,
}

impl JournalEntry {
    pub(super) fn new(c: &Container, stop_timeout_s: i64, command: &str) -> JournalEntry {
        let since_ms = now_ms();
        JournalEntry {
            container_id: c.id.clone(),
            container_name: c.name.clone(),
            pid: std::process::id(),
            since_unix: since_ms / 1000,
            command: command.to_string(),
            since_ms,
            started_at: Some(c.started_at.clone()),
            stop_timeout_s: Some(stop_timeout_s),
        }
    }

    /// Written under a temporary name, locked (`flock`), then renamed: a journal is never
    /// seen unlocked while its run lives, and the kernel frees the lock when the run dies,
    /// however it dies. The returned file holds the lock.
    pub(super) fn write(&self) -> Result<std::fs::File> {
        use std::io::Write;
        let dir = state_dir();
        crate::fsutil::ensure_private_dir(&dir)?;
        let json = serde_json::to_vec(self)
            .map_err(|e| Error::failed("cannot write kfadmin's stop journal").source(e))?;
        let tmp = dir.join(format!(".stopped-{}.{}.tmp", self.container_id, std::process::id()));
        let _ = std::fs::remove_file(&tmp);
        let mut f = crate::fsutil::create_new(&tmp, 0o600)?;
        rustix::fs::flock(&f, rustix::fs::FlockOperation::NonBlockingLockExclusive)
            .ctx("cannot lock", &tmp)?;
        f.write_all(&json).and_then(|()| f.sync_all()).ctx("cannot write", &tmp)?;
        let path = journal_path(&self.container_id);
        std::fs::rename(&tmp, &path).ctx("cannot rename", &tmp)?;
        crate::fsutil::fsync_dir(&dir)?;
        Ok(f)
    }

    /// `an earlier kfadmin run (pid N, `COMMAND`)`, for messages.
    pub(super) fn run(&self) -> String {
        format!("an earlier kfadmin run (pid {}, `{}`)", self.pid, self.command)
    }
}

/// The journal file of a container that kfadmin stopped.
pub fn journal_path(container_id: &str) -> PathBuf {
    state_dir().join(format!("stopped-{container_id}.json"))
}

pub(super) fn clear_journal(container_id: &str) {
    let _ = std::fs::remove_file(journal_path(container_id));
}

pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// An engine timestamp (RFC 3339, UTC) in ms since the epoch; None for the engine's zero time.
pub(super) fn unix_ms(rfc3339: &str) -> Option<u64> {
    let t = humantime::parse_rfc3339(rfc3339).ok()?;
    t.duration_since(std::time::UNIX_EPOCH).ok().map(|d| d.as_millis() as u64)
}

/// Something other than kfadmin started container `c` while kfadmin had it stopped.
pub(super) fn started_elsewhere(c: &Container, now: &Container) -> Error {
    let policy = match now.restart_policy.as_deref() {
        Some(p) if p != "no" => format!("its restart policy `{p}` (applied when dockerd restarts), "),
        _ => String::new(),
    };
    Error::failed(format!(
        "container {} was started again (at {}) by something other than kfadmin while kfadmin had it stopped",
        c.name, now.started_at
    ))
    .hint(format!(
        "something starts it behind kfadmin's back: {policy}`docker compose up`, Watchtower, a systemd unit or a colleague; stop that first (for a restart policy: `docker update --restart=no {}`), then run kfadmin again",
        c.name
    ))
}

/// Container `c` no longer exists (removed, or recreated under its name).
pub(super) fn vanished(c: &Container) -> Error {
    Error::failed(format!(
        "container {} (id {}) no longer exists: it was removed, or recreated under its name (as `docker compose up` does when its configuration changed), after kfadmin found it",
        c.name,
        &c.id[..c.id.len().min(12)]
    ))
    .hint(format!("check `docker ps -a --filter name={}`, then run kfadmin again", c.name))
}

/// How kfadmin's start of a stopped container ended.
#[derive(Debug)]
pub enum Start {
    /// kfadmin had not stopped it: nothing to do.
    NotStopped,
    /// kfadmin started it.
    Started,
    /// Something else had started it already (this is its state).
    AlreadyRunning(Box<Container>),
}

/// Keeps a container that kfadmin stopped on record until it runs again: [`StopGuard::stop`]
/// writes the journal, then stops; [`StopGuard::restart`] starts it again and clears the
/// journal. Every stop, a rollback's too ([`StopGuard::stop_again`]), is journaled. Dropped
/// while kfadmin owes the container a start, it still tries to start it.
pub struct StopGuard<'a> {
    engine: &'a Engine,
    container: Container,
    /// The container as kfadmin's last stop left it, while kfadmin owes it a start.
    stopped: Option<Container>,
    /// A start failed and was reported: dropping the guard does not try again (the journal
    /// stays for the next run).
    start_failed: bool,
    /// The lock on the journal on disk: while it is held, no recovery touches the journal.
    journal: Option<std::fs::File>,
}

impl<'a> StopGuard<'a> {
    pub fn new(engine: &'a Engine, container: Container) -> Self {
        StopGuard { engine, container, stopped: None, start_failed: false, journal: None }
    }

    /// Stop the container if it runs; a container that was not running stays as it is. Its
    /// state is read again first (a prompt may have taken minutes since it was found): the
    /// journal records the run that is being stopped, and one that is down by now stays down.
    pub fn stop(&mut self, timeout_s: i64, command: &str) -> Result<Option<Stopped>> {
        if !self.container.running {
            return Ok(None);
        }
        let now = self.engine.inspect(&self.container.id).map_err(|e| self.gone_or(e))?;
        if !now.running {
            self.container = now;
            return Ok(None);
        }
        self.stop_journaled(&now, timeout_s, command).map(Some)
    }

    /// Stop it again, journaled like the first stop (a rollback): a container that runs is
    /// stopped, one that does not (it crashed, or could not start) is put on the journal as it
    /// is, so that a kfadmin killed from here on leaves it to the next run to start.
    pub fn stop_again(&mut self, timeout_s: i64, command: &str) -> Result<()> {
        let now = self.engine.inspect(&self.container.id).map_err(|e| self.gone_or(e))?;
        if now.running {
            self.stop_journaled(&now, timeout_s, command)?;
        } else {
            self.journal = Some(JournalEntry::new(&now, timeout_s, command).write()?);
            self.stopped = Some(now);
        }
        Ok(())
    }

    /// Journal, stop, then judge the state the stop left: only a run that really ended puts
    /// the container in kfadmin's charge.
    pub(super) fn stop_journaled(&mut self, c: &Container, timeout_s: i64, command: &str) -> Result<Stopped> {
        self.journal = Some(JournalEntry::new(c, timeout_s, command).write()?);
        crate::fault::pause("before-stop");
        let t0 = Instant::now();
        let result = self.engine.stop(c, timeout_s);
        let after = match &result {
            Ok((_, after)) => Ok(after.clone()),
            Err(_) => self.engine.inspect(&c.id),
        };
        match after {
            Ok(now) if !now.running => {
                let stopped = match result {
                    Ok((s, _)) => s,
                    Err(_) => Stopped {
                        exit_code: now.exit_code,
                        oom_killed: now.oom_killed,
                        duration_ms: t0.elapsed().as_millis() as u64,
                    },
                };
                self.stopped = Some(now);
                Ok(stopped)
            }
            Ok(now) => {
                clear_journal(&c.id);
                if now.started_at != c.started_at {
                    return Err(started_elsewhere(c, &now));
                }
                Err(result.err().unwrap_or_else(|| {
                    Error::failed(format!("container {} is still running after the stop", c.name))
                }))
            }
            Err(e) if e.kind == Kind::Usage => {
                clear_journal(&c.id);
                Err(vanished(c))
            }
            Err(e) => {
                // The engine cannot say: keep the journal and try a start on the way out.
                self.stopped = Some(c.clone());
                Err(result.err().unwrap_or(e))
            }
        }
    }

    pub fn was_running(&self) -> bool {
        self.container.running
    }

    /// kfadmin stopped the container and has not started it again (its journal is on disk).
    pub fn owes_start(&self) -> bool {
        self.stopped.is_some()
    }

    /// The container's state when it has been started since kfadmin stopped it (or, when
    /// kfadmin did not stop it, since it was found): None while it is still down, on the same
    /// run. Errors when it no longer exists.
    pub fn started_since(&self) -> Result<Option<Container>> {
        let base = self.stopped.as_ref().unwrap_or(&self.container);
        let now = self.engine.inspect(&base.id).map_err(|e| self.gone_or(e))?;
        Ok((now.running || now.started_at != base.started_at).then_some(now))
    }

    /// Errors (exit 1, saying what probably started it) unless the container is still down on
    /// the run kfadmin's stop ended: checked before anything touches its data.
    pub fn ensure_stopped(&self) -> Result<()> {
        match self.started_since()? {
            None => Ok(()),
            Some(now) => Err(started_elsewhere(&self.container, &now)),
        }
    }

    /// Start the container again if kfadmin stopped it, and clear the journal once it runs.
    /// Something else may have started it meanwhile: [`Start::AlreadyRunning`] says so. A
    /// failure is exit 4 and keeps the journal: the operator must act, and the next kfadmin
    /// run on the container tries again.
    pub fn restart(&mut self) -> Result<Start> {
        let Some(base) = self.stopped.clone() else { return Ok(Start::NotStopped) };
        let now = match self.engine.inspect(&base.id) {
            Ok(now) => now,
            Err(e) if e.kind == Kind::Usage => {
                self.release();
                return Err(self.removed_while_stopped());
            }
            Err(e) => {
                self.start_failed = true;
                return Err(self.cannot_start(e));
            }
        };
        if now.running {
            self.release();
            return Ok(Start::AlreadyRunning(Box::new(now)));
        }
        match self.engine.start(&base) {
            Ok(()) => {
                self.start_failed = false;
                self.release();
                Ok(Start::Started)
            }
            Err(e) => {
                self.start_failed = true;
                Err(self.cannot_start(e))
            }
        }
    }

    /// kfadmin no longer owes the container a start: it runs, or it must stay down (its data
    /// is in a state no server may start on). Clears the journal.
    pub fn release(&mut self) {
        if self.stopped.take().is_some() {
            clear_journal(&self.container.id);
        }
        self.journal = None;
    }

    pub(super) fn gone_or(&self, e: Error) -> Error {
        if e.kind == Kind::Usage {
            vanished(&self.container)
        } else {
            e
        }
    }

    pub(super) fn cannot_start(&self, e: Error) -> Error {
        let name = &self.container.name;
        Error::new(Kind::ContainerState, format!("kfadmin stopped container {name} and cannot start it again: {}", e.chain()))
            .hint(format!(
                "start it now: `docker start {name}`, and check `docker logs {name}`; until it runs, {} keeps the record and the next `kfadmin status --container {name}` tries again",
                journal_path(&self.container.id).display()
            ))
    }

    /// The container was removed while it was down: exit 4 unless a container of that name
    /// runs again (recreated).
    pub(super) fn removed_while_stopped(&self) -> Error {
        let c = &self.container;
        match self.engine.inspect(&c.name) {
            Ok(new) if new.running => Error::failed(format!(
                "container {} was removed while kfadmin had it stopped; a new container {} (id {}) runs now",
                c.name,
                new.name,
                &new.id[..new.id.len().min(12)]
            ))
            .hint("check that the new container uses the same data (`docker inspect`)"),
            _ => Error::new(
                Kind::ContainerState,
                format!("container {} was removed while kfadmin had it stopped, and no container of that name runs", c.name),
            )
            .hint("act now: Keyfount is down; recreate its container (`docker compose up -d`, or your `docker run` command)"),
        }
    }
}

impl Drop for StopGuard<'_> {
    fn drop(&mut self) {
        if !self.start_failed {
            let _ = self.restart();
        }
    }
}

/// How long after kfadmin's stop request a stop may still end (beyond the stop timeout).
pub(super) const STOP_MARGIN_S: u64 = 30;

/// What became of a container that a killed kfadmin run had stopped.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Fate {
    /// Started again since: the journal is done.
    StartedSince,
    /// Still the run kfadmin was stopping, within the stop timeout: the stop is under way.
    StopUnderWay,
    /// Still the run kfadmin meant to stop, long after: the stop never took effect.
    NeverStopped,
    /// Down, but not by kfadmin's stop (started and stopped since, or stopped later than
    /// kfadmin's stop could have ended): left as the operator left it.
    StoppedByOther,
    /// Down since kfadmin's stop: kfadmin owes it a start.
    OwedAStart,
}

pub(super) fn judge(j: &JournalEntry, now: &Container, now_ms: u64) -> Fate {
    let Some(run) = &j.started_at else {
        // A journal of an older version: only "running" can be told.
        return if now.running { Fate::StartedSince } else { Fate::OwedAStart };
    };
    let timeout = j.stop_timeout_s.unwrap_or(10).max(0) as u64;
    let stop_ends = j.since_ms + (timeout + STOP_MARGIN_S) * 1000;
    match (now.running, &now.started_at == run) {
        (true, false) => Fate::StartedSince,
        (true, true) if now_ms > stop_ends => Fate::NeverStopped,
        (true, true) => Fate::StopUnderWay,
        (false, false) => Fate::StoppedByOther,
        (false, true) => match unix_ms(&now.finished_at) {
            Some(finished) if finished > stop_ends => Fate::StoppedByOther,
            _ => Fate::OwedAStart,
        },
    }
}

/// Journals of kfadmin runs that died (a live run's journal is its own business): a journal
/// is live while its lock is held (never judged by a pid or a program name). Each comes with
/// its file, locked, so that no other recovery works on it at the same time.
pub(super) fn pending_journals() -> Vec<(PathBuf, JournalEntry, std::fs::File)> {
    let Ok(rd) = std::fs::read_dir(state_dir()) else { return vec![] };
    let mut entries: Vec<(PathBuf, JournalEntry, std::fs::File)> = rd
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| {
            p.file_name().is_some_and(|n| {
                let n = n.to_string_lossy();
                n.starts_with("stopped-") && n.ends_with(".json")
            })
        })
        .filter_map(|p| {
            let (f, text) = lock_journal(&p)?;
            serde_json::from_slice::<JournalEntry>(&text).ok().map(|j| (p, j, f))
        })
        .collect();
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    entries
}

/// Open and lock a journal file without waiting: None while its run (or another recovery)
/// holds it, or when the name has meanwhile been given to a newer journal.
fn lock_journal(p: &Path) -> Option<(std::fs::File, Vec<u8>)> {
    use std::io::Read;
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(p)
        .ok()?;
    rustix::fs::flock(&f, rustix::fs::FlockOperation::NonBlockingLockExclusive).ok()?;
    let (now, held) = (p.symlink_metadata().ok()?, f.metadata().ok()?);
    if (now.dev(), now.ino()) != (held.dev(), held.ino()) || !held.is_file() {
        return None;
    }
    let mut text = Vec::new();
    f.read_to_end(&mut text).ok()?;
    Some((f, text))
}

/// The latest moment (ms since the epoch) a stop recorded in a dead run's journal may still
/// end, or None when no such journal is left: a guardian keeps trying until then.
pub fn dead_journals_settle_by() -> Option<u64> {
    pending_journals()
        .iter()
        .map(|(_, j, _)| j.since_ms + (j.stop_timeout_s.unwrap_or(10).max(0) as u64 + STOP_MARGIN_S) * 1000)
        .max()
}

/// For commands that do not touch containers: one line per journal a killed run left, naming
/// the file and what to do. The engine is not asked, and nothing is started.
pub fn journal_notes() -> Vec<String> {
    pending_journals()
        .into_iter()
        .map(|(path, j, _lock)| {
            format!(
                "{} stopped container {} and was killed before starting it again (journal {}): `kfadmin status --container {}` starts it again, or start it yourself (`docker start {}`) and delete that file",
                j.run(),
                j.container_name,
                path.display(),
                j.container_name,
                j.container_name
            )
        })
        .collect()
}

/// For commands that touch containers: containers that an earlier kfadmin run stopped and did
/// not start again (it was killed) are started, when kfadmin's stop was the last thing that
/// happened to them. Returns the lines to print, or exit 4 when one cannot be started.
pub fn recover_journal() -> Result<Vec<String>> {
    let entries = pending_journals();
    let Some((first_path, first, _)) = entries.first() else { return Ok(vec![]) };
    let engine = Engine::connect().map_err(|e| {
        Error::new(
            Kind::ContainerState,
            format!(
                "{} stopped container {} and was killed before starting it again (journal {}), and the Docker engine cannot be reached: {}",
                first.run(),
                first.container_name,
                first_path.display(),
                e.chain()
            ),
        )
        .hint(format!(
            "start the Docker engine, then run kfadmin again (or `docker start {}` and delete {})",
            first.container_name,
            first_path.display()
        ))
    })?;
    let mut said = Vec::new();
    for (path, j, _lock) in &entries {
        if let Some(line) = recover_one(&engine, path, j)? {
            said.push(line);
        }
    }
    Ok(said)
}

/// One journal: judge what became of its container, start it if kfadmin owes it a start, and
/// clear the journal unless the stop is still under way.
pub(super) fn recover_one(engine: &Engine, path: &Path, j: &JournalEntry) -> Result<Option<String>> {
    let (run, name) = (j.run(), &j.container_name);
    let now = match engine.inspect(&j.container_id) {
        Ok(c) => c,
        Err(e) if e.kind == Kind::Usage => {
            let _ = std::fs::remove_file(path);
            return Ok(Some(format!(
                "{run} stopped container {name}, which no longer exists; nothing to start"
            )));
        }
        Err(e) => return Err(e.kind(Kind::ContainerState)),
    };
    let line = match judge(j, &now, now_ms()) {
        Fate::StopUnderWay => {
            return Ok(Some(format!(
                "{run} was killed while stopping container {name}; the stop is still under way, so its journal {} stays and the next kfadmin run on the container starts it once it is down",
                path.display()
            )))
        }
        Fate::StartedSince => format!("{run} had stopped container {name}; it has been started again since"),
        Fate::NeverStopped => format!("{run} was killed before its stop of container {name} took effect; it kept running"),
        Fate::StoppedByOther => format!(
            "{run} had stopped container {name}; it was stopped again since by something else, so kfadmin leaves it stopped (`docker start {name}` when it should run)"
        ),
        Fate::OwedAStart => {
            engine.start(&now).map_err(|e| {
                Error::new(
                    Kind::ContainerState,
                    format!("{run} stopped container {name} and was killed; kfadmin cannot start it again: {}", e.chain()),
                )
                .hint(format!(
                    "start it now: `docker start {name}` (the journal {} stays until it runs)",
                    path.display()
                ))
            })?;
            format!("{run} stopped container {name} and was killed before starting it again; kfadmin started it now")
        }
    };
    let _ = std::fs::remove_file(path);
    Ok(Some(line))
}
