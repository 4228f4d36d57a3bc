//! The guardian: while kfadmin holds something it must give back (a container it stopped, a
//! swap under way, a drill's throwaway container and volume), a second process of the same
//! binary waits for it to die. Should kfadmin die without finishing (SIGKILL, the OOM killer),
//! the guardian runs the journals' recovery at once: the container runs again, the throwaway is
//! gone, within seconds and with no further command. The journals stay the second line.
//!
//! The guardian is started in its own session (a terminal's Ctrl-C or a kill of the parent's
//! process group does not reach it), with no terminal (stdin from /dev/null, stdout and stderr
//! appended to `<state dir>/guardian.log`), and waits on the parent's pidfd. It never races a
//! live run: the recovery functions touch only journals whose lock is free, and a run holds its
//! journal's lock until it is done. When the parent finishes, dropping [`Guardian`] kills and
//! reaps it: it had done nothing, and a killed guardian is harmless (it holds nothing).

use std::path::PathBuf;
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::Duration;

use crate::error::{Error, IoContext, Result};

/// The hidden first argument that makes the binary a guardian (never shown in `--help`).
pub const ARG: &str = "__guardian";

/// How often a guardian looks again at a journal whose container is still stopping.
const RETRY: Duration = Duration::from_millis(300);

/// A running guardian, for as long as it is held. Dropping it ends the guardian (the parent
/// finished: nothing is owed) and reaps it, so that no process is left behind.
#[derive(Debug)]
pub struct Guardian {
    child: Option<Child>,
}

/// `<state dir>/guardian.log`, where guardians say what they recovered.
pub fn log_path() -> PathBuf {
    crate::docker::state_dir().join("guardian.log")
}

/// What guardians recovered within the last `days` days, as their log says (at most the last
/// 20 lines, oldest first), for `status`.
pub fn recent(days: u64) -> Vec<String> {
    let text = std::fs::read_to_string(log_path()).unwrap_or_default();
    let since = std::time::SystemTime::now() - Duration::from_secs(days * 86_400);
    let mut lines: Vec<String> = text
        .lines()
        .filter(|l| !l.ends_with(": done"))
        .filter(|l| {
            l.split(' ').next().and_then(|t| humantime::parse_rfc3339(t).ok()).is_some_and(|t| t >= since)
        })
        .map(str::to_string)
        .collect();
    lines.drain(..lines.len().saturating_sub(20));
    lines
}

/// Start a guardian for this process. `what` says, in its log, what it watches over.
pub fn spawn(what: &str) -> Result<Guardian> {
    if crate::fault::no_guardian() {
        return Ok(Guardian { child: None });
    }
    let exe = std::env::current_exe()
        .map_err(|e| Error::failed("cannot find kfadmin's own executable to start its guardian").source(e))?;
    let dir = crate::docker::state_dir();
    crate::fsutil::ensure_private_dir(&dir)?;
    let log = log_path();
    let out = open_log(&log)?;
    let err = out.try_clone().ctx("cannot open", &log)?;
    let child = Command::new(exe)
        .arg(ARG)
        .arg(std::process::id().to_string())
        .arg(what)
        .env_remove("KFADMIN_TEST_FAULT")
        .env_remove("KFADMIN_TEST_PAUSE_AT")
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .map_err(|e| Error::failed("cannot start kfadmin's guardian process").source(e))?;
    Ok(Guardian { child: Some(child) })
}

impl Guardian {
    /// The guardian's process id (for tests and messages).
    pub fn id(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }
}

impl Drop for Guardian {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn open_log(path: &std::path::Path) -> Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .ctx("cannot open the guardian's log", path)
}

/// A line in the guardian's log (its stderr): a closed log is no reason to stop recovering.
fn say(line: &str) {
    use std::io::Write;
    let t = humantime::format_rfc3339_seconds(std::time::SystemTime::now());
    let _ = writeln!(std::io::stderr(), "{t} guardian {}: {line}", std::process::id());
}

/// The guardian's `main`: `kfadmin __guardian PARENT_PID WHAT`.
pub fn main(args: &[String]) -> ExitCode {
    let _ = rustix::process::setsid();
    let (Some(parent), what) = (args.first().and_then(|p| p.parse::<i32>().ok()), args.get(1)) else {
        say("usage: kfadmin __guardian PARENT_PID WHAT (started by kfadmin itself)");
        return ExitCode::from(2);
    };
    let what = what.map(String::as_str).unwrap_or("a kfadmin run");
    wait_for_death(parent);
    say(&format!("kfadmin (pid {parent}, {what}) ended without finishing; recovering what it left"));
    recover_until_settled();
    ExitCode::SUCCESS
}

/// Block until the process `parent` has ended. Its pidfd says so the moment it dies; a parent
/// that died before the pidfd was opened is told by this process having another parent now.
fn wait_for_death(parent: i32) {
    use rustix::event::{poll, PollFd, PollFlags};
    let Some(pid) = rustix::process::Pid::from_raw(parent) else { return };
    let Ok(fd) = rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty()) else { return };
    if rustix::process::getppid() != Some(pid) {
        return;
    }
    loop {
        let mut fds = [PollFd::new(&fd, PollFlags::IN)];
        match poll(&mut fds, None) {
            Ok(n) if n > 0 => return,
            Err(rustix::io::Errno::INTR) | Ok(_) => continue,
            Err(_) => return,
        }
    }
}

/// The recovery `kfadmin` runs at its start (main's `recover()`), over and over until nothing
/// a dead run left is pending: a stop of a container that is still under way is waited for,
/// then the container is started.
fn recover_until_settled() {
    let mut said = std::collections::HashSet::new();
    let mut say_once = |l: &str| {
        if said.insert(l.to_string()) {
            say(l);
        }
    };
    loop {
        crate::ops::staging::sweep_private();
        match crate::ops::swap::recover() {
            Ok(lines) => lines.iter().for_each(|l| say_once(l)),
            Err(e) => say_once(&format!("error: {}", e.chain())),
        }
        match crate::docker::recover_journal() {
            Ok(lines) => lines.iter().for_each(|l| say_once(l)),
            Err(e) => say_once(&format!("error: {}", e.chain())),
        }
        crate::ops::drill::recover().iter().for_each(|l| say_once(l));
        let Some(settle_by) = crate::docker::dead_journals_settle_by() else { break };
        if crate::docker::now_ms() > settle_by {
            say("a journal is still pending after its stop should have ended; the next kfadmin command on its container takes it up");
            break;
        }
        std::thread::sleep(RETRY);
    }
    say("done");
}
