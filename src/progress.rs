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
}

impl Default for Bars {
    fn default() -> Self {
        Self::new()
    }
}

impl Bars {
    pub fn new() -> Self {
        Bars { multi: MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(10)) }
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
                "{prefix:>10.bold} [{bar:30}] {bytes:>10}/{total_bytes:<10} {binary_bytes_per_sec:>12} ETA {eta} {msg}"
            }
            Unit::Items => "{prefix:>10.bold} [{bar:30}] {human_pos:>9}/{human_len:<9} ETA {eta}",
        };
        let style =
            ProgressStyle::with_template(template).expect("valid progress template").progress_chars("=> ");
        let bar = self.multi.add(ProgressBar::new(total).with_style(style).with_prefix(name.to_string()));
        bar.enable_steady_tick(Duration::from_millis(200));
        Box::new(BarStage(bar))
    }
    fn log(&self, line: &str) {
        let _ = self.multi.println(line);
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
