//! `replicate --container`: while the follower reads the database's host path, a thread looks
//! at the container every few seconds. A restart (restart policy, `docker restart`) changes
//! nothing here: the follower sees the server close and reopen the database (a gap, repaired
//! exactly). A container recreated on the same data (`docker compose up -d`) is the same
//! database: said, and followed on. A container gone (removed, or the engine down) is looked
//! for again, with a notice, while the data it left is still followed. A container that now
//! keeps its database anywhere else stops the follower: it never follows a different database
//! silently.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::docker::{self, Engine};
use crate::error::{Error, Result};

/// What the watching thread found.
pub enum Event {
    /// Something the operator should read (a warning when `warn`).
    Note { text: String, warn: bool },
    /// The container's database is no longer the one followed: stop.
    Moved(Error),
}

/// The watching thread; it ends on its own once this is dropped.
pub struct ContainerWatch {
    rx: Receiver<Event>,
    done: Arc<AtomicBool>,
}

/// The database's path, with links followed (as the follower's own `--db` path is): the
/// directory when the file itself is missing.
pub fn canonical_db(host_db: &Path) -> PathBuf {
    std::fs::canonicalize(host_db).unwrap_or_else(|_| {
        let dir = host_db.parent().unwrap_or(Path::new("/"));
        let dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
        dir.join(host_db.file_name().unwrap_or_default())
    })
}

/// What the thread looks for.
pub struct Watched {
    pub name: String,
    pub project: Option<String>,
    pub db_in_container: PathBuf,
    /// The database the follower reads (canonical).
    pub host_db: PathBuf,
    pub id: String,
    /// How often the container is looked at while it is there.
    pub every: Duration,
}

impl ContainerWatch {
    pub fn spawn(w: Watched) -> Result<ContainerWatch> {
        let (tx, rx) = mpsc::channel();
        let done = Arc::new(AtomicBool::new(false));
        let stop = done.clone();
        std::thread::Builder::new()
            .name("container-watch".into())
            .spawn(move || watch(w, &tx, &stop))
            .map_err(|e| Error::failed("cannot start the thread that watches the container").source(e))?;
        Ok(ContainerWatch { rx, done })
    }

    /// What was found since the last call.
    pub fn events(&self) -> Vec<Event> {
        self.rx.try_iter().collect()
    }
}

impl Drop for ContainerWatch {
    fn drop(&mut self) {
        self.done.store(true, Ordering::SeqCst);
    }
}

/// Where the container is now: Ok(its id) when its database is still `w.host_db`.
enum Seen {
    Same(String),
    /// Not found, or the engine does not answer (why).
    Gone(String),
    Moved(Error),
}

fn look(engine: &mut Option<Engine>, w: &Watched) -> Seen {
    let e = match engine.take() {
        Some(e) => e,
        None => match Engine::connect() {
            Ok(e) => e,
            Err(err) => return Seen::Gone(err.message),
        },
    };
    let c = match e.find(&w.name, w.project.as_deref()) {
        Ok(c) => c,
        // Not kept: the next look connects again (the engine may have been restarted).
        Err(err) => return Seen::Gone(err.message),
    };
    *engine = Some(e);
    let loc = match docker::data_location(&c, &w.db_in_container) {
        Ok(loc) => loc,
        Err(err) => {
            return Seen::Moved(
                Error::failed(format!(
                "container {} (id {}) no longer keeps its database where replicate was following it ({}): {}",
                c.name,
                short(&c.id),
                w.host_db.display(),
                err.message
            ))
                .hint(hint(&w.name)),
            )
        }
    };
    let now = canonical_db(&loc.host_db);
    if now != w.host_db {
        return Seen::Moved(
            Error::failed(format!(
                "container {} (id {}) now keeps its database {} in {} ({}), not in {} where replicate was following it: replicate stopped rather than follow a different database",
                c.name,
                short(&c.id),
                w.db_in_container.display(),
                now.display(),
                loc.mount.describe(),
                w.host_db.display()
            ))
            .hint(hint(&w.name)),
        );
    }
    Seen::Same(c.id)
}

fn hint(name: &str) -> String {
    format!(
        "the chain holds every commit of the old database up to now; to follow the container's new database, run `kfadmin replicate --container {name} -r REPO` again (it starts a new chain with a new base)"
    )
}

fn short(id: &str) -> &str {
    &id[..id.len().min(12)]
}

fn watch(w: Watched, tx: &Sender<Event>, done: &AtomicBool) {
    let mut engine = None;
    let mut id = w.id.clone();
    let mut gone: Option<(Instant, Instant)> = None;
    let mut wait = w.every;
    let note = |text: String, warn: bool| tx.send(Event::Note { text, warn }).is_ok();
    loop {
        let until = Instant::now() + wait;
        while Instant::now() < until {
            if done.load(Ordering::SeqCst) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        if done.load(Ordering::SeqCst) {
            return;
        }
        match look(&mut engine, &w) {
            Seen::Same(now) => {
                if let Some((since, _)) = gone.take().filter(|_| now == id) {
                    if !note(
                        format!(
                            "container {} is back after {} s, on the same data ({}): replication goes on",
                            w.name,
                            since.elapsed().as_secs(),
                            w.host_db.display()
                        ),
                        false,
                    ) {
                        return;
                    }
                }
                if now != id {
                    let text = format!(
                        "container {} was recreated (id {} after {}) on the same data ({}): it is the same database, and replication goes on",
                        w.name,
                        short(&now),
                        short(&id),
                        w.host_db.display()
                    );
                    if !note(text, false) {
                        return;
                    }
                    id = now;
                }
                wait = w.every;
            }
            Seen::Gone(why) => {
                let first = gone.is_none();
                let (since, told) = gone.get_or_insert((Instant::now(), Instant::now()));
                // A recreation takes seconds: looked for as often as ever for 30 s, then less
                // often while it stays gone (at most every 60 s), and said again every 10 minutes.
                if since.elapsed() >= Duration::from_secs(30) {
                    wait = (wait * 2).min(Duration::from_secs(60));
                }
                if first || told.elapsed() >= Duration::from_secs(600) {
                    *told = Instant::now();
                    let text = format!(
                        "container {} cannot be found ({why}){}: replicate keeps following its data at {} and looks for the container again (every {} s at most); when it comes back on the same data, replication goes on; if it is gone for good, stop replicate (Ctrl-C or `systemctl stop`)",
                        w.name,
                        if first { String::new() } else { format!(" for {} s", since.elapsed().as_secs()) },
                        w.host_db.display(),
                        Duration::from_secs(60).as_secs()
                    );
                    if !note(text, true) {
                        return;
                    }
                }
            }
            Seen::Moved(e) => {
                let _ = tx.send(Event::Moved(e));
                return;
            }
        }
    }
}
