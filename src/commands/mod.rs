//! One module per subcommand: parse → plan → run → report. A command returns an [`Outcome`]
//! (a human text and a JSON object); `main` prints whichever was asked for.

use std::io::IsTerminal;

use serde::Serialize;

use crate::cli::{Command, Global};
use crate::error::Result;
use crate::progress::{Bars, Progress, Silent};

pub mod backup;
pub mod completions;
pub mod list;
pub mod prune;
pub mod restore;
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

    fn say(&self, line: &str) {
        if self.bars {
            self.progress.log(line);
        } else {
            stderr_line(line);
        }
    }
}

/// A line on stderr. A closed or broken stderr (`kfadmin … 2>&1 | tee log` after tee died) is
/// ignored: output is never a reason to panic or to skip a cleanup step.
pub fn stderr_line(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr().lock(), "{line}");
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
    pub fn new(code: u8, human: String, report: &impl Serialize) -> Self {
        Outcome { code, human, json: serde_json::to_value(report).expect("report serializes"), raw: None }
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
        Command::Completions(a) => completions::run(a),
        Command::Manpages(a) => completions::manpages(a),
    }
}

pub(crate) fn human_bytes(n: u64) -> String {
    indicatif::BinaryBytes(n).to_string()
}
