//! `kfadmin schedule [--install]`: plan the jobs, print them or install and enable them.

use std::fmt::Write as _;

use serde::Serialize;

use super::{Ctx, Outcome};
use crate::cli::{InitSystem, ScheduleArgs};
use crate::error::Result;
use crate::ops::schedule::{self, Init, Installed, Plan, Request};

#[derive(Serialize)]
struct Report<'a> {
    ok: bool,
    installed: bool,
    #[serde(serialize_with = "super::lossy::path")]
    root: &'a std::path::Path,
    #[serde(flatten)]
    plan: &'a Plan,
    /// With --install: what happened to each file.
    written: Option<Vec<Installed>>,
    /// With --install: how the timers were enabled (systemctl commands, or links).
    enabled: Option<Vec<String>>,
    warnings: Vec<String>,
}

pub fn run(args: ScheduleArgs, ctx: &Ctx) -> Result<Outcome> {
    let root = std::path::absolute(&args.root).unwrap_or_else(|_| args.root.clone());
    let init = match args.init {
        Some(InitSystem::Systemd) => Init::Systemd,
        Some(InitSystem::Cron) => Init::Cron,
        None if schedule::systemd_runs(&root) => Init::Systemd,
        None => Init::Cron,
    };
    if let Some(r) = args.repo.repo.as_ref().filter(|r| crate::store::is_remote_path(r)) {
        return Err(crate::error::Error::usage(format!(
            "-r/--repo {} is remote: a backup job writes to a local directory first",
            r.display()
        ))
        .hint("give the local repository with --repo, and the S3 location in the configuration file ([backup] to = [\"s3://…\"])"));
    }
    let request = Request {
        binary: schedule::running_binary()?,
        container: args.container.clone(),
        // Jobs run from /: a relative path given here is made absolute now.
        repo: args.repo.repo.as_ref().map(|r| {
            if crate::store::is_remote_path(r) {
                r.to_string_lossy().into_owned()
            } else {
                std::path::absolute(r).unwrap_or_else(|_| r.clone()).to_string_lossy().into_owned()
            }
        }),
        metrics_file: args
            .metrics_file
            .as_ref()
            .map(|m| std::path::absolute(m).unwrap_or_else(|_| m.clone())),
        at: args.at,
        keep_daily: args.keep_daily,
        keep_weekly: args.keep_weekly,
        keep_monthly: args.keep_monthly,
        drill: !args.no_drill,
        init,
    };
    let plan = Plan::new(&request)?;
    let mut human = String::new();
    let mut warnings = Vec::new();
    let (written, enabled) = if args.install {
        // Checked before anything is written: files that nothing would run are not installed.
        let live = root == std::path::Path::new("/");
        if live && init == Init::Systemd && !schedule::systemd_runs(&root) {
            return Err(crate::error::Error::usage(
                "systemd does not run this system: its timers could not be enabled",
            )
            .hint("install a cron file instead (--init cron), or pass --root DIR to write into an image"));
        }
        if live && init == Init::Cron && !schedule::cron_installed() {
            let w = "no cron daemon is installed here (cron, cronie): nothing will run /etc/cron.d/kfadmin until one is".to_string();
            ctx.warn(&w);
            warnings.push(w);
        }
        let written = schedule::install(&plan, &root, args.force)?;
        for w in &written {
            let what = match w.action {
                schedule::Action::Written => "written",
                schedule::Action::Replaced => "replaced",
                schedule::Action::Unchanged => "unchanged",
                schedule::Action::Removed => "removed",
            };
            let _ = writeln!(human, "{what:>9}  {}", w.path.display());
        }
        let enabled = schedule::enable(&plan, &root)?;
        for e in &enabled {
            let _ = writeln!(human, "  enabled  {e}");
        }
        if init == Init::Cron {
            let _ =
                writeln!(human, "cron reads {} by itself: nothing to enable", plan.files[0].path.display());
        }
        ctx.detail(&format!("jobs call {}", plan.binary.display()));
        (Some(written), Some(enabled))
    } else {
        for f in &plan.files {
            let _ = writeln!(human, "# {} (mode {})\n{}", f.path.display(), f.mode, f.content);
        }
        let _ = writeln!(human, "# Install and enable these with: kfadmin schedule --install (same options)");
        (None, None)
    };
    let report =
        Report { ok: true, installed: args.install, root: &root, plan: &plan, written, enabled, warnings };
    Ok(Outcome::new(0, human, &report))
}
