//! Progress reporting behind a small trait, so the library never prints. The binary hands in
//! [`Bars`] on a terminal and [`Silent`] everywhere else (pipes, `--json`, `--quiet`,
//! `--no-progress`).

use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// What a stage counts, so the bar can show the right units.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Bytes,
    Items,
    /// No bar and no count: a line that says how a long-running job stands (its message),
    /// such as `replicate`'s lag and what it shipped.
    Line,
}

pub trait Progress: Send + Sync {
    /// Start a stage of `total` units (0 when unknown).
    fn stage(&self, name: &str, total: u64, unit: Unit) -> Box<dyn Stage>;
    /// A line for the operator (a warning, a step done) that must not tear the bars.
    fn log(&self, line: &str);
}

pub trait Stage: Send + Sync {
    /// A short note shown after the bar (e.g. pages copied).
    fn message(&self, _msg: String) {}
    fn set(&self, pos: u64);
    fn inc(&self, delta: u64);
    fn set_total(&self, total: u64);
    fn finish(&self);
}

/// No output at all.
#[derive(Default, Clone)]
pub struct Silent;

struct NoStage;

impl Stage for NoStage {
    fn set(&self, _: u64) {}
    fn inc(&self, _: u64) {}
    fn set_total(&self, _: u64) {}
    fn finish(&self) {}
}

impl Progress for Silent {
    fn stage(&self, _: &str, _: u64, _: Unit) -> Box<dyn Stage> {
        Box::new(NoStage)
    }
    fn log(&self, _: &str) {}
}

/// indicatif bars on stderr, all under one `MultiProgress` so log lines print above them.
pub struct Bars {
    multi: MultiProgress,
    /// The terminal's settings before the bars, when `ECHOCTL` had to be turned off.
    echoctl: Option<rustix::termios::Termios>,
}

impl Default for Bars {
    fn default() -> Self {
        Self::new()
    }
}

impl Bars {
    pub fn new() -> Self {
        Bars {
            multi: MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(10)),
            echoctl: quiet_ctrl_c(),
        }
    }
}

/// indicatif fills each bar's line to the terminal's width and leaves the cursor at its right
/// edge, so the `^C` the terminal echoes for Ctrl-C wraps onto a line indicatif does not know
/// of, and its last redraw (the interrupted bar) lands one line low: the bar twice. While the
/// bars are drawn the terminal echoes Ctrl-C without `^C` (`stty -echoctl`); dropping the
/// bars puts its setting back.
fn quiet_ctrl_c() -> Option<rustix::termios::Termios> {
    use rustix::termios::{tcgetattr, tcsetattr, LocalModes, OptionalActions};
    let stderr = std::io::stderr();
    // Only in the terminal's foreground: a background job (`kfadmin backup &`) that changed
    // the terminal's settings would be stopped by SIGTTOU.
    if rustix::termios::tcgetpgrp(&stderr).ok()? != rustix::process::getpgrp() {
        return None;
    }
    let before = tcgetattr(&stderr).ok()?;
    if !before.local_modes.contains(LocalModes::ECHOCTL) {
        return None;
    }
    let mut quiet = before.clone();
    quiet.local_modes.remove(LocalModes::ECHOCTL);
    tcsetattr(&stderr, OptionalActions::Now, &quiet).ok()?;
    Some(before)
}

impl Drop for Bars {
    fn drop(&mut self) {
        if let Some(before) = self.echoctl.take() {
            let stderr = std::io::stderr();
            // Moved to the background since (Ctrl-Z, bg): leave it to the shell.
            if rustix::termios::tcgetpgrp(&stderr).ok() != Some(rustix::process::getpgrp()) {
                return;
            }
            if let Ok(mut now) = rustix::termios::tcgetattr(&stderr) {
                // Only ECHOCTL is put back: whatever else changed since (a prompt) stays.
                now.local_modes.insert(before.local_modes & rustix::termios::LocalModes::ECHOCTL);
                let _ = rustix::termios::tcsetattr(&stderr, rustix::termios::OptionalActions::Now, &now);
            }
        }
    }
}

struct BarStage(ProgressBar);

impl Stage for BarStage {
    fn message(&self, msg: String) {
        self.0.set_message(msg);
    }
    fn set(&self, pos: u64) {
        self.0.set_position(pos);
    }
    fn inc(&self, delta: u64) {
        self.0.inc(delta);
    }
    fn set_total(&self, total: u64) {
        self.0.set_length(total);
    }
    fn finish(&self) {
        self.0.finish();
    }
}

impl Drop for BarStage {
    fn drop(&mut self) {
        if !self.0.is_finished() {
            self.0.abandon();
        }
    }
}

impl Progress for Bars {
    fn stage(&self, name: &str, total: u64, unit: Unit) -> Box<dyn Stage> {
        let template = match unit {
            Unit::Bytes => {
                "{prefix:>10.bold} [{bar:30}] {bytes:>10}/{total_bytes:<10} {binary_bytes_per_sec:>12} {eta_known} {msg}"
            }
            Unit::Items => "{prefix:>10.bold} [{bar:30}] {human_pos:>9}/{human_len:<9} {eta_known}",
            Unit::Line => "{prefix:>10.bold} {msg}",
        };
        let style = ProgressStyle::with_template(template)
            .expect("valid progress template")
            .with_key("eta_known", eta_known)
            .progress_chars("=> ");
        let bar = self.multi.add(ProgressBar::new(total).with_style(style).with_prefix(name.to_string()));
        bar.enable_steady_tick(Duration::from_millis(200));
        Box::new(BarStage(bar))
    }
    fn log(&self, line: &str) {
        let _ = self.multi.println(line);
    }
}

/// `ETA 12s` once a rate is known: nothing before the first byte, at 0 B/s, or with no total
/// (indicatif's own `{eta}` says `0s` there, which reads as "done").
fn eta_known(state: &indicatif::ProgressState, w: &mut dyn std::fmt::Write) {
    let total = state.len().unwrap_or(0);
    let rate = state.per_sec();
    let running = state.pos() > 0 && state.pos() < total && !state.is_finished();
    if running && rate.is_finite() && rate >= 1.0 {
        let _ = write!(w, "ETA {:#}", indicatif::HumanDuration(state.eta()));
    }
}

/// Where an operation's notes go; the command decides what is shown (`--quiet`, `-v`, a
/// terminal with bars). Operations below `commands/` take this instead of the command context.
pub trait Notice {
    fn progress(&self) -> &dyn Progress;
    /// A step done, unless `--quiet`.
    fn note(&self, line: &str);
    /// What a step did, with `-v`.
    fn detail(&self, line: &str);
    /// A warning, always.
    fn warn(&self, line: &str);
}
