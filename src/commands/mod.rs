//! One module per subcommand: parse → plan → run → report. A command returns an [`Outcome`]
//! (a human text and a JSON object); `main` prints whichever was asked for.

use std::io::IsTerminal;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

use crate::archive::Mode;
use crate::cli::{Command, Global};
use crate::error::Result;
use crate::lock::{self, Key};
use crate::ops::container::{find_container, Found};
use crate::progress::{Bars, Progress, Silent};

pub mod backup;
pub mod completions;
pub mod config;
pub mod drill;
pub mod import;
pub mod list;
pub mod prune;
pub mod render;
pub mod replicate;
pub mod restore;
pub mod schedule;
pub mod status;
pub mod verify;

/// What every command gets: how to report progress, and how the operator wants output.
pub struct Ctx {
    pub progress: Box<dyn Progress>,
    /// Bars are drawn (stderr is a terminal, and no `--json`, `--quiet` or `--no-progress`):
    /// lines then go through the bars' log so they do not tear them.
    bars: bool,
    pub json: bool,
    pub quiet: bool,
    pub verbose: u8,
    /// Both stdin and stderr are terminals: prompts are possible.
    pub interactive: bool,
    /// `--lock-wait`: how long to wait for another run's lock.
    pub lock_wait: std::time::Duration,
}

impl Ctx {
    pub fn new(g: &Global) -> Self {
        let stderr_tty = std::io::stderr().is_terminal();
        let bars = stderr_tty && !g.json && !g.quiet && !g.no_progress;
        Ctx {
            progress: if bars { Box::new(Bars::new()) } else { Box::new(Silent) },
            bars,
            json: g.json,
            quiet: g.quiet,
            verbose: g.verbose,
            interactive: stderr_tty && std::io::stdin().is_terminal(),
            lock_wait: g.lock_wait,
        }
    }

    /// A line on stderr (above any bars) unless `--quiet`.
    pub fn note(&self, line: &str) {
        if !self.quiet {
            self.say(line);
        }
    }

    /// A line on stderr with `-v`: what a step did, how long it took.
    pub fn detail(&self, line: &str) {
        if self.verbose > 0 && !self.quiet {
            self.say(line);
        }
    }

    /// A line on stderr that `--quiet` does not silence (warnings).
    pub fn warn(&self, line: &str) {
        self.say(&format!("warning: {line}"));
    }

    /// Take the locks of this run (see [`crate::lock`]), waiting at most `--lock-wait` and
    /// saying once whom it waits for.
    pub fn lock(&self, command: &str, keys: Vec<Key>) -> Result<lock::Held> {
        lock::acquire(keys, self.lock_wait, command, &|line| self.note(line))
    }

    fn say(&self, line: &str) {
        if self.bars {
            self.progress.log(&crate::crypto::redact(line));
        } else {
            stderr_line(line);
        }
    }
}

/// A line on stderr, secrets masked ([`crate::crypto::redact`]). A closed or broken stderr
/// (`kfadmin … 2>&1 | tee log` after tee died) is ignored: output is never a reason to panic
/// or to skip a cleanup step.
pub fn stderr_line(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr().lock(), "{}", crate::crypto::redact(line));
}

/// The `error:` line for a command that ran to its end with a failing verdict (exit 1 or 3:
/// an archive that fails verification, a drill that did not pass, a failed offsite copy, a
/// refused database), said on stderr like every other error, from its report. `None` for
/// `status`, whose `PROBLEM:` lines are that report.
pub fn failure_line(report: &serde_json::Value, code: u8) -> Option<String> {
    use serde_json::Value;
    if code == 0 || report.get("problems").is_some_and(|p| p.is_array()) && report.get("backups").is_some() {
        return None;
    }
    let text = |v: &Value| v.as_str().map(str::to_owned);
    if let Some(reason) = report.get("reason").and_then(text) {
        return Some(format!("the drill did not pass: {reason}"));
    }
    if let Some(archives) = report.get("archives").and_then(Value::as_array) {
        let bad: Vec<&Value> = archives.iter().filter(|a| a.get("ok") == Some(&Value::Bool(false))).collect();
        if !bad.is_empty() {
            let name =
                |a: &Value| a.get("archive").or_else(|| a.get("path")).and_then(text).unwrap_or_default();
            let keys = bad.iter().all(|a| a.get("needs_key").is_some_and(|k| !k.is_null()));
            let first = name(bad[0]);
            let more = if bad.len() > 1 { format!(" and {} more", bad.len() - 1) } else { String::new() };
            return Some(if keys {
                format!("{first}{more} could not be verified: the keys given cannot open it")
            } else {
                format!("{first}{more} failed verification")
            });
        }
        // `list --check`: archives that do not match their sidecar.
        let mismatched =
            archives.iter().filter(|a| a.get("sidecar").and_then(Value::as_str) == Some("mismatch"));
        let names: Vec<String> = mismatched.filter_map(|a| a.get("path").and_then(text)).collect();
        if let Some(first) = names.first() {
            let more = if names.len() > 1 { format!(" and {} more", names.len() - 1) } else { String::new() };
            return Some(format!("{first}{more} does not match its .sha256 sidecar"));
        }
    }
    if let Some(failed) = report
        .get("offsite")
        .and_then(Value::as_array)
        .and_then(|o| o.iter().find(|u| u.get("ok") == Some(&Value::Bool(false))))
    {
        let url = failed.get("url").and_then(text).unwrap_or_default();
        let why = failed.get("error").and_then(text).unwrap_or_default();
        return Some(format!("the offsite copy to {url} failed: {why}"));
    }
    if let Some(v) = report.get("verification").filter(|v| v.get("ok") == Some(&Value::Bool(false))) {
        let archive = report.get("archive").and_then(text).unwrap_or_default();
        return Some(if v.get("needs_key").is_some_and(|k| !k.is_null()) {
            format!("{archive} could not be verified: the keys given cannot open it; nothing was changed")
        } else {
            format!("{archive} failed verification; nothing was changed")
        });
    }
    if let Some(first) =
        report.get("problems").and_then(Value::as_array).and_then(|p| p.first()).and_then(text)
    {
        return Some(format!("refused: {first}"));
    }
    Some(format!("the command failed (exit {code}); the report above says why"))
}

/// What a command produced.
pub struct Outcome {
    /// 0, or 3 when a verification failed.
    pub code: u8,
    pub human: String,
    pub json: serde_json::Value,
    /// Printed as is, whatever the output mode (completion scripts, man pages).
    pub raw: Option<Vec<u8>>,
}

impl Outcome {
    /// Paths in reports are written with [`lossy`]; should a report still fail to serialize,
    /// the JSON says so (with the verdict of `code`) instead of panicking.
    pub fn new(code: u8, human: String, report: &impl Serialize) -> Self {
        let json = serde_json::to_value(report).unwrap_or_else(|e| {
            serde_json::json!({
                "ok": code == 0,
                "exit_code": code,
                "report_error": format!("the report cannot be written as JSON ({e}); run without --json to see it"),
            })
        });
        Outcome { code, human, json, raw: None }
    }
}

/// `#[serde(serialize_with = "…")]` for paths in reports. A path that is not valid UTF-8
/// (Linux file names are bytes) is written with U+FFFD in place of each invalid byte sequence,
/// as `Path::to_string_lossy` does; serde's own `Path` impl fails the whole report instead.
pub mod lossy {
    use std::path::{Path, PathBuf};

    use serde::{Serialize, Serializer};

    use crate::archive::reader::Verdict;

    /// The path with invalid UTF-8 replaced by U+FFFD.
    pub fn buf(p: &Path) -> PathBuf {
        PathBuf::from(p.to_string_lossy().into_owned())
    }

    pub fn path<S: Serializer>(p: &Path, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&p.to_string_lossy())
    }

    pub fn opt_path<S: Serializer>(p: &Option<PathBuf>, s: S) -> Result<S::Ok, S::Error> {
        match p {
            Some(p) => s.serialize_some(&*p.to_string_lossy()),
            None => s.serialize_none(),
        }
    }

    pub fn paths<S: Serializer>(v: &[PathBuf], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(v.iter().map(|p| p.to_string_lossy()))
    }

    /// A verify verdict, its archive's path written lossily.
    pub fn verdict<S: Serializer>(v: &Verdict, s: S) -> Result<S::Ok, S::Error> {
        if v.archive.to_str().is_some() {
            return v.serialize(s);
        }
        let mut v = v.clone();
        v.archive = buf(&v.archive);
        v.serialize(s)
    }

    pub fn verdicts<S: Serializer>(v: &[Verdict], s: S) -> Result<S::Ok, S::Error> {
        struct One<'a>(&'a Verdict);
        impl Serialize for One<'_> {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                verdict(self.0, s)
            }
        }
        s.collect_seq(v.iter().map(One))
    }
}

pub fn run(cmd: Command, ctx: &Ctx) -> Result<Outcome> {
    match cmd {
        Command::Backup(a) => backup::run(a, ctx),
        Command::Verify(a) => verify::run(a, ctx),
        Command::Restore(a) => restore::run(a, ctx),
        Command::List(a) => list::run(a, ctx),
        Command::Prune(a) => prune::run(a, ctx),
        Command::Status(a) => status::run(a, ctx),
        Command::Drill(a) => drill::run(a, ctx),
        Command::Import(a) => import::run(a, ctx),
        Command::Schedule(a) => schedule::run(a, ctx),
        Command::Config(a) => config::run(a, ctx),
        Command::Replicate(a) => replicate::run(a, ctx),
        Command::Completions(a) => completions::run(a, ctx.json),
        Command::Manpages(a) => completions::manpages(a),
    }
}

/// The locks of a backup: its backup directory and the data it reads (the database's
/// directory; with `--container`, the container too).
pub(crate) fn backup_locks(
    args: &crate::cli::BackupArgs,
    offsite: &[crate::store::S3Url],
    ctx: &Ctx,
) -> Result<lock::Held> {
    let mut keys = vec![Key::dir("backup directory", &args.output.out)];
    keys.extend(offsite.iter().map(|u| Key::url("offsite location", &u.to_string())));
    match (&args.target.db, &args.target.docker.container) {
        (Some(db), _) => {
            let db = std::path::absolute(db).unwrap_or_else(|_| db.clone());
            keys.extend(db.parent().map(|d| Key::dir("data directory", d)));
        }
        (None, Some(name)) => {
            let d = &args.target.docker;
            keys.extend(container_keys(&find_container(name, d.compose_project.as_deref(), &d.db_path)?))
        }
        (None, None) => {}
    }
    ctx.lock("kfadmin backup", keys)
}

/// The locks of a restore into `dir`: the data directory; with a container, the container and
/// the backup directory that receives the pre-restore archive.
pub(crate) fn restore_locks(
    args: &crate::cli::RestoreArgs,
    ctx: &Ctx,
    found: Option<&Found>,
    dir: &std::path::Path,
) -> Result<lock::Held> {
    let mut keys = vec![Key::dir("data directory", dir)];
    if let Some(f) = found {
        keys.extend(container_keys(f));
        keys.push(Key::dir("backup directory", &args.out));
    }
    ctx.lock("kfadmin restore", keys)
}

fn container_keys(f: &Found) -> [Key; 2] {
    [Key::container(&f.container.id, &f.container.name), Key::dir("data directory", &f.location.host_dir)]
}

/// The human text of a `--dry-run`: what would be done, numbered.
pub(crate) fn dry_run_text(steps: &[String]) -> String {
    let mut s = String::from("Dry run: nothing was changed. Without --dry-run kfadmin would:\n");
    for (i, step) in steps.iter().enumerate() {
        s.push_str(&format!("  {}. {step}\n", i + 1));
    }
    s
}

pub(crate) fn human_bytes(n: u64) -> String {
    indicatif::BinaryBytes(n).to_string()
}

impl crate::progress::Notice for Ctx {
    fn progress(&self) -> &dyn Progress {
        self.progress.as_ref()
    }
    fn note(&self, line: &str) {
        Ctx::note(self, line)
    }
    fn detail(&self, line: &str) {
        Ctx::detail(self, line)
    }
    fn warn(&self, line: &str) {
        Ctx::warn(self, line)
    }
}

/// What an archive is to retention and monitoring. Pre-restore archives are safety copies of
/// data that a restore replaced (possibly the bad data that made the restore necessary): they
/// never count as a backup, never take a backup's retention slot, and are never "the last
/// backup". Every other mode (online, cold, and imported ones) is a backup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ArchiveKind {
    Backup,
    SafetyCopy,
}

impl ArchiveKind {
    pub fn of(mode: Mode) -> ArchiveKind {
        match mode {
            Mode::PreRestore => ArchiveKind::SafetyCopy,
            _ => ArchiveKind::Backup,
        }
    }
}

/// An archive whose name is dated further ahead of this machine's clock than this was written
/// by a machine with a wrong clock (or renamed by hand): it is named in a warning, and never
/// counts as the newest archive.
pub const FUTURE_SLACK_S: u64 = 5 * 60;

pub fn now_unix() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

pub fn in_future(created_unix: u64, now: u64) -> bool {
    created_unix > now.saturating_add(FUTURE_SLACK_S)
}

/// The warning (or status problem) for an archive dated in the future; `then` says what the
/// command does with it.
pub fn future_warning(path: &std::path::Path, created: &str, then: &str) -> String {
    format!(
        "{} is dated {created}, more than {} min ahead of this machine's clock: {then}; check the \
         clock of the machine that wrote it (and this one's), then rename or remove the archive",
        path.display(),
        FUTURE_SLACK_S / 60
    )
}

#[cfg(test)]
mod tests {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    use std::path::PathBuf;

    use super::*;

    #[test]
    fn a_path_that_is_not_utf8_never_fails_a_report() {
        let odd = PathBuf::from(OsStr::from_bytes(b"/b/kf\xff.tar.gz"));
        #[derive(Serialize)]
        struct Plain {
            path: PathBuf,
        }
        #[derive(Serialize)]
        struct Lossy {
            #[serde(serialize_with = "lossy::path")]
            path: PathBuf,
            #[serde(serialize_with = "lossy::paths")]
            more: Vec<PathBuf>,
        }
        let o = Outcome::new(0, String::new(), &Lossy { path: odd.clone(), more: vec![odd.clone()] });
        assert_eq!(o.json["path"], "/b/kf\u{FFFD}.tar.gz");
        assert_eq!(o.json["more"][0], "/b/kf\u{FFFD}.tar.gz");
        // Without the helper serde refuses the path: the report says so, and keeps the verdict.
        let o = Outcome::new(3, String::new(), &Plain { path: odd });
        assert_eq!(o.json["ok"], false);
        assert_eq!(o.json["exit_code"], 3);
        assert!(o.json["report_error"].as_str().unwrap().contains("cannot be written as JSON"));
    }
}
