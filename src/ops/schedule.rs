//! `kfadmin schedule`: the systemd units and timers (or the cron file) that run the nightly
//! backup and prune and the weekly drill, calling kfadmin by its absolute path, and installing
//! them: written atomically, mode 0644, never over a file kfadmin did not write (unless forced),
//! unchanged when already current, then enabled.

use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::error::{Error, IoContext, Result};

/// A path in a report, invalid UTF-8 replaced (this layer does not reach up into `commands`).
fn lossy_path<S: serde::Serializer>(p: &Path, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_str(&p.to_string_lossy())
}

/// The first line of every file `kfadmin schedule` writes: how it knows a file is its own.
pub const MARKER: &str = "# Written by kfadmin schedule";

/// How the jobs are run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Init {
    Systemd,
    Cron,
}

/// What to schedule: plain values, checked by [`Plan::new`].
#[derive(Debug, Clone)]
pub struct Request {
    /// The kfadmin binary the jobs call (absolute).
    pub binary: PathBuf,
    pub container: String,
    /// `--repo` for every job, when not the default.
    pub repo: Option<String>,
    pub metrics_file: Option<PathBuf>,
    /// Backup time, (hour, minute); the drill runs on Sundays 90 minutes later.
    pub at: (u8, u8),
    pub keep_daily: u32,
    pub keep_weekly: u32,
    pub keep_monthly: u32,
    pub drill: bool,
    pub init: Init,
}

/// One file to write.
#[derive(Debug, Clone, Serialize)]
pub struct File {
    /// Where it goes on the target system (`/etc/…`, without the root directory).
    #[serde(serialize_with = "lossy_path")]
    pub path: PathBuf,
    /// Octal, `0644`.
    pub mode: String,
    pub content: String,
}

/// The files of a schedule and the timers to enable.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub init: Init,
    #[serde(serialize_with = "lossy_path")]
    pub binary: PathBuf,
    pub files: Vec<File>,
    /// systemd timers to enable (empty for cron).
    pub timers: Vec<String>,
}

/// A word put into a unit or a cron line as is: no quoting exists that both read the same way
/// (cron turns `%` into a newline, systemd expands `%` specifiers and `$`), so anything but
/// these characters is refused.
fn plain(what: &str, s: &str) -> Result<String> {
    let ok = !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"/._:@+=,-".contains(&b));
    if ok {
        Ok(s.to_string())
    } else {
        Err(Error::usage(format!(
            "{what} {s:?} cannot be written into a unit or cron line as it is (only letters, digits and / . _ : @ + = , -)"
        ))
        .hint("use a path or name without spaces, %, $, quotes or other shell characters (a symlink to it works)"))
    }
}

/// `--at HH:MM`.
pub fn parse_at(s: &str) -> std::result::Result<(u8, u8), String> {
    let err = || format!("{s:?} is not a time of day: give HH:MM, e.g. 03:00");
    let (h, m) = s.trim().split_once(':').ok_or_else(err)?;
    let h: u8 = h.parse().map_err(|_| err())?;
    let m: u8 = m.parse().map_err(|_| err())?;
    if h > 23 || m > 59 {
        return Err(err());
    }
    Ok((h, m))
}

/// The running binary's absolute path, as the jobs must call it (cron's PATH has no
/// /usr/local/bin). A binary replaced or deleted since it started is refused.
pub fn running_binary() -> Result<PathBuf> {
    let exe = current_exe()?;
    // The path it was run by (a link such as /usr/local/bin/kfadmin survives an upgrade that
    // replaces its target), when it is the same file.
    let same =
        |p: &Path| std::fs::canonicalize(p).is_ok_and(|c| std::fs::canonicalize(&exe).is_ok_and(|e| e == c));
    if let Some(arg0) = std::env::args_os().next().map(PathBuf::from) {
        let by_name = if arg0.components().count() > 1 {
            std::path::absolute(&arg0).ok()
        } else {
            std::env::var_os("PATH").and_then(|p| {
                std::env::split_paths(&p).map(|d| d.join(&arg0)).find(|c| c.is_absolute() && c.is_file())
            })
        };
        if let Some(p) = by_name.filter(|p| same(p)) {
            return Ok(p);
        }
    }
    Ok(exe)
}

fn current_exe() -> Result<PathBuf> {
    let exe = std::env::current_exe().map_err(|e| {
        Error::failed("cannot find the path of the running kfadmin binary")
            .source(e)
            .hint("run kfadmin by its full path, e.g. /usr/local/bin/kfadmin schedule")
    })?;
    if exe.to_string_lossy().ends_with(" (deleted)") || !exe.is_file() {
        return Err(Error::failed(format!(
            "the running kfadmin binary {} is gone (replaced or deleted)",
            exe.display()
        ))
        .hint("run the installed kfadmin by its full path"));
    }
    Ok(exe)
}

impl Plan {
    pub fn new(r: &Request) -> Result<Plan> {
        if !r.binary.is_absolute() {
            return Err(Error::usage(format!("{} is not an absolute path", r.binary.display())));
        }
        let bin = plain("the kfadmin binary's path", &r.binary.to_string_lossy())?;
        let container = plain("the container name", &r.container)?;
        let mut common = String::new();
        if let Some(repo) = &r.repo {
            common.push_str(&format!(" --repo {}", plain("the repository", repo)?));
        }
        let metrics = match &r.metrics_file {
            Some(m) if !m.is_absolute() => {
                return Err(Error::usage(format!("--metrics-file {} is not an absolute path", m.display()))
                    .hint("jobs run from / : give the full path"))
            }
            Some(m) => format!(" --metrics-file {}", plain("the metrics file", &m.to_string_lossy())?),
            None => String::new(),
        };
        let backup = format!("{bin} backup --online --container {container}{common}{metrics} --quiet");
        let prune = format!(
            "{bin} prune{common} --keep-daily {} --keep-weekly {} --keep-monthly {} --quiet",
            r.keep_daily, r.keep_weekly, r.keep_monthly
        );
        let drill = format!("{bin} drill --container {container}{common}{metrics} --quiet");
        let status = format!("{bin} status --container {container}{common} --quiet");
        let (h, m) = r.at;
        let (dh, dm) = {
            let t = u32::from(h) * 60 + u32::from(m) + 90;
            (((t / 60) % 24) as u8, (t % 60) as u8)
        };
        // Past midnight the drill moves to Monday, still after Sunday night's backup.
        let drill_day =
            if u32::from(h) * 60 + u32::from(m) + 90 >= 24 * 60 { ("Mon", 1) } else { ("Sun", 0) };
        let head = format!("{MARKER}: run it again to change this file (kfadmin schedule --help).\n");
        let mut files = Vec::new();
        let mut timers = Vec::new();
        match r.init {
            Init::Systemd => {
                let dir = Path::new("/etc/systemd/system");
                let stop_post = format!(
                    "# If the unit is killed (kfadmin's guardian too): start what kfadmin stopped, remove a drill's copy.\nExecStopPost=-{status}\n"
                );
                files.push(File {
                    path: dir.join("kfadmin-backup.service"),
                    mode: "0644".into(),
                    content: format!(
                        "{head}[Unit]\nDescription=Online backup of the Keyfount database, then prune\n\
                         After=docker.service\n\n[Service]\nType=oneshot\nExecStart={backup}\n\
                         # Only after a backup that succeeded.\nExecStartPost={prune}\n{stop_post}"
                    ),
                });
                files.push(File {
                    path: dir.join("kfadmin-backup.timer"),
                    mode: "0644".into(),
                    content: format!(
                        "{head}[Unit]\nDescription=Nightly Keyfount backup\n\n[Timer]\n\
                         OnCalendar=*-*-* {h:02}:{m:02}:00\nRandomizedDelaySec=15m\nPersistent=true\n\n\
                         [Install]\nWantedBy=timers.target\n"
                    ),
                });
                timers.push("kfadmin-backup.timer".to_string());
                if r.drill {
                    files.push(File {
                        path: dir.join("kfadmin-drill.service"),
                        mode: "0644".into(),
                        content: format!(
                            "{head}[Unit]\nDescription=Restore drill: boot a throwaway Keyfount on the newest backup\n\
                             After=docker.service\n\n[Service]\nType=oneshot\nExecStart={drill}\n{stop_post}"
                        ),
                    });
                    files.push(File {
                        path: dir.join("kfadmin-drill.timer"),
                        mode: "0644".into(),
                        content: format!(
                            "{head}[Unit]\nDescription=Weekly Keyfount restore drill\n\n[Timer]\n\
                             OnCalendar={} *-*-* {dh:02}:{dm:02}:00\nRandomizedDelaySec=30m\nPersistent=true\n\n\
                             [Install]\nWantedBy=timers.target\n",
                            drill_day.0
                        ),
                    });
                    timers.push("kfadmin-drill.timer".to_string());
                }
            }
            Init::Cron => {
                let mut c = format!(
                    "{head}# kfadmin is called by its absolute path: cron's PATH has no /usr/local/bin.\n\
                     SHELL=/bin/sh\nPATH=/usr/sbin:/usr/bin:/sbin:/bin\n\
                     # m h dom mon dow user command\n\
                     {m} {h} * * *  root  {backup} && {prune}\n"
                );
                if r.drill {
                    c.push_str(&format!("{dm} {dh} * * {}  root  {drill}\n", drill_day.1));
                }
                files.push(File {
                    path: PathBuf::from("/etc/cron.d/kfadmin"),
                    mode: "0644".into(),
                    content: c,
                });
            }
        }
        Ok(Plan { init: r.init, binary: r.binary.clone(), files, timers })
    }
}

/// What installing did to one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Written,
    Replaced,
    Unchanged,
    /// kfadmin's cron file, replaced by systemd timers, or a unit of its own no longer asked
    /// for (`--no-drill`).
    Removed,
}

#[derive(Debug, Clone, Serialize)]
pub struct Installed {
    #[serde(serialize_with = "lossy_path")]
    pub path: PathBuf,
    pub action: Action,
}

/// `root` joined with an absolute target path.
pub fn under(root: &Path, path: &Path) -> PathBuf {
    root.join(path.strip_prefix("/").unwrap_or(path))
}

/// Whether a cron daemon is installed on this system.
pub fn cron_installed() -> bool {
    ["/usr/sbin/cron", "/usr/sbin/crond", "/usr/bin/crond", "/usr/bin/cron", "/sbin/crond"]
        .iter()
        .any(|p| Path::new(p).is_file())
}

/// Whether systemd runs the system under `root` (sd_booted: /run/systemd/system is a directory).
pub fn systemd_runs(root: &Path) -> bool {
    under(root, Path::new("/run/systemd/system")).is_dir()
}

/// Writes every file of the plan under `root`. Every file is checked before any is written: a
/// file that is not kfadmin's (no [`MARKER`] first line, a link, not a regular file) is refused
/// unless `force`. Each file is written to a temporary name beside it, given its mode, synced and
/// renamed over the old one.
pub fn install(plan: &Plan, root: &Path, force: bool) -> Result<Vec<Installed>> {
    // One scheduler at a time: both would run every job twice.
    let units = under(root, Path::new("/etc/systemd/system"));
    let cron = under(root, Path::new("/etc/cron.d/kfadmin"));
    if plan.init == Init::Cron {
        for t in ["kfadmin-backup.timer", "kfadmin-drill.timer"] {
            if is_ours(&units.join(t)) {
                return Err(Error::usage(format!(
                    "kfadmin's systemd timer {} is installed: a cron file too would run every job twice",
                    units.join(t).display()
                ))
                .hint("systemctl disable --now kfadmin-backup.timer kfadmin-drill.timer, remove /etc/systemd/system/kfadmin-*, then run this again"));
            }
        }
    }
    let mut todo = Vec::new();
    for f in &plan.files {
        let dest = under(root, &f.path);
        let action = match std::fs::symlink_metadata(&dest) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Action::Written,
            Err(e) => return Err(Error::io("cannot read", &dest, e)),
            Ok(md) => {
                let ours = is_ours(&dest);
                if !ours && !force {
                    return Err(Error::usage(format!(
                        "{} exists and was not written by kfadmin schedule: it is left as it is",
                        dest.display()
                    ))
                    .hint("move it aside, or run again with --force to replace it"));
                }
                let same = ours
                    && std::fs::read_to_string(&dest).is_ok_and(|t| t == f.content)
                    && md.mode() & 0o7777 == mode_of(f)
                    && md.uid() == rustix::process::geteuid().as_raw();
                if same {
                    Action::Unchanged
                } else {
                    Action::Replaced
                }
            }
        };
        todo.push((f, dest, action));
    }
    let mut done = Vec::new();
    for (f, dest, action) in todo {
        if action != Action::Unchanged {
            write_atomic(&dest, f.content.as_bytes(), mode_of(f))?;
        }
        done.push(Installed { path: dest, action });
    }
    if plan.init == Init::Systemd && is_ours(&cron) {
        std::fs::remove_file(&cron).ctx("cannot remove", &cron)?;
        done.push(Installed { path: cron, action: Action::Removed });
    }
    // kfadmin's own units that the plan no longer has (--no-drill): disabled and removed.
    if plan.init == Init::Systemd {
        for unit in ["kfadmin-drill.timer", "kfadmin-drill.service"] {
            let path = units.join(unit);
            if plan.files.iter().any(|f| f.path.file_name() == Some(std::ffi::OsStr::new(unit)))
                || !is_ours(&path)
            {
                continue;
            }
            if unit.ends_with(".timer") {
                if root == Path::new("/") && systemd_runs(root) {
                    run_systemctl(&["disable", "--now", unit])?;
                }
                let link = units.join("timers.target.wants").join(unit);
                if std::fs::symlink_metadata(&link).is_ok() {
                    std::fs::remove_file(&link).ctx("cannot remove", &link)?;
                }
            }
            std::fs::remove_file(&path).ctx("cannot remove", &path)?;
            done.push(Installed { path, action: Action::Removed });
        }
    }
    Ok(done)
}

/// A regular file whose first line is [`MARKER`].
fn is_ours(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_file())
        && std::fs::read_to_string(path).is_ok_and(|t| t.starts_with(MARKER))
}

fn mode_of(f: &File) -> u32 {
    u32::from_str_radix(&f.mode, 8).unwrap_or(0o644)
}

fn write_atomic(dest: &Path, content: &[u8], mode: u32) -> Result<()> {
    let dir = dest.parent().ok_or_else(|| Error::usage(format!("{} has no directory", dest.display())))?;
    if !dir.is_dir() {
        std::fs::DirBuilder::new().recursive(true).mode(0o755).create(dir).ctx("cannot create", dir)?;
    }
    let mut tmp = tempfile::Builder::new()
        .prefix(".kfadmin-schedule-")
        .tempfile_in(dir)
        .ctx("cannot write a file in", dir)?;
    tmp.write_all(content).and_then(|()| tmp.as_file().sync_all()).ctx("cannot write", tmp.path())?;
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(mode))
        .ctx("cannot set the mode of", tmp.path())?;
    tmp.persist(dest).map_err(|e| Error::io("cannot write", dest, e.error))?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Enables the plan's timers. On the running system (`root` is `/` and systemd runs):
/// `systemctl daemon-reload`, then `systemctl enable --now`. Under another root directory (an
/// image being built): the `timers.target.wants` links `systemctl enable` would make. Returns
/// what was done, one line each.
pub fn enable(plan: &Plan, root: &Path) -> Result<Vec<String>> {
    let mut done = Vec::new();
    if plan.init != Init::Systemd || plan.timers.is_empty() {
        return Ok(done);
    }
    if root == Path::new("/") {
        if !systemd_runs(root) {
            return Err(Error::failed("systemd does not run this system: the timers cannot be enabled")
                .hint("run kfadmin schedule --install --init cron, or enable them when systemd runs"));
        }
        run_systemctl(&["daemon-reload"])?;
        done.push("systemctl daemon-reload".to_string());
        let mut args = vec!["enable", "--now"];
        args.extend(plan.timers.iter().map(String::as_str));
        run_systemctl(&args)?;
        done.push(format!("systemctl {}", args.join(" ")));
        return Ok(done);
    }
    let wants = under(root, Path::new("/etc/systemd/system/timers.target.wants"));
    for t in &plan.timers {
        let link = wants.join(t);
        let target = Path::new("/etc/systemd/system").join(t);
        match std::fs::read_link(&link) {
            Ok(old) if old == target => {}
            _ => {
                if !wants.is_dir() {
                    std::fs::DirBuilder::new()
                        .recursive(true)
                        .mode(0o755)
                        .create(&wants)
                        .ctx("cannot create", &wants)?;
                }
                let _ = std::fs::remove_file(&link);
                std::os::unix::fs::symlink(&target, &link).ctx("cannot link", &link)?;
            }
        }
        done.push(format!("{} -> {}", link.display(), target.display()));
    }
    Ok(done)
}

fn run_systemctl(args: &[&str]) -> Result<()> {
    let out = std::process::Command::new("systemctl")
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| Error::failed("cannot run systemctl").source(e))?;
    if !out.status.success() {
        return Err(Error::failed(format!(
            "systemctl {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
        .hint("the unit files are written; read the message, then run that systemctl command by hand"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(init: Init) -> Request {
        Request {
            binary: PathBuf::from("/usr/local/bin/kfadmin"),
            container: "keyfount".into(),
            repo: None,
            metrics_file: None,
            at: (3, 0),
            keep_daily: 7,
            keep_weekly: 4,
            keep_monthly: 12,
            drill: true,
            init,
        }
    }

    #[test]
    fn every_job_calls_kfadmin_by_its_absolute_path() {
        let p = Plan::new(&req(Init::Cron)).unwrap();
        let c = &p.files[0].content;
        assert!(c.contains("0 3 * * *  root  /usr/local/bin/kfadmin backup --online --container keyfount --quiet && /usr/local/bin/kfadmin prune --keep-daily 7"));
        assert!(c.contains("30 4 * * 0  root  /usr/local/bin/kfadmin drill --container keyfount --quiet"));
        let p = Plan::new(&req(Init::Systemd)).unwrap();
        assert_eq!(p.files.len(), 4);
        assert!(p.files.iter().all(|f| f.content.starts_with(MARKER)));
        assert!(p.files[0].content.contains("ExecStart=/usr/local/bin/kfadmin backup"));
    }

    #[test]
    fn a_late_backup_moves_the_drill_to_monday_and_odd_words_are_refused() {
        let mut r = req(Init::Cron);
        r.at = (23, 15);
        let c = Plan::new(&r).unwrap().files[0].content.clone();
        assert!(c.contains("45 0 * * 1  root"), "{c}");
        r.container = "kf%x".into();
        assert!(Plan::new(&r).is_err());
        r.container = "keyfount".into();
        r.repo = Some("/var/backups/with space".into());
        assert!(Plan::new(&r).is_err());
        assert!(parse_at("24:00").is_err() && parse_at("3").is_err());
        assert_eq!(parse_at("3:05").unwrap(), (3, 5));
    }
}
