//! The kfadmin binary: parse, run, print, turn errors into exit codes.

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;

use kfadmin::cli::{Cli, Command};
use kfadmin::commands::{self, Ctx};
use kfadmin::error::interrupt;

/// A container that an earlier, killed kfadmin run left stopped is started before anything
/// else by the commands that work on a container (`--container`); when that is impossible the
/// operator hears it now (exit 4). The other commands only warn, naming the journal file: they
/// must work with the engine down, and never start a container.
fn recover(cmd: &Command) -> kfadmin::Result<()> {
    let on_container = match cmd {
        Command::Backup(a) => a.target.docker.container.is_some(),
        Command::Restore(a) => a.docker.container.is_some(),
        Command::Status(a) => a.target.docker.container.is_some(),
        Command::Manpages(_) => return Ok(()),
        Command::Verify(_) | Command::List(_) | Command::Prune(_) | Command::Completions(_) => false,
    };
    let lines =
        if on_container { kfadmin::docker::recover_journal()? } else { kfadmin::docker::journal_notes() };
    for line in lines {
        eprintln!("warning: {line}");
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    interrupt::install();
    let ctx = Ctx::new(&cli.global);
    let result = recover(&cli.command).and_then(|()| commands::run(cli.command, &ctx));
    let mut out = std::io::stdout().lock();
    let printed = match &result {
        Ok(o) => {
            if let Some(raw) = &o.raw {
                out.write_all(raw)
            } else if ctx.json {
                writeln!(out, "{}", o.json)
            } else if !ctx.quiet || o.code != 0 {
                out.write_all(o.human.as_bytes())
            } else {
                Ok(())
            }
        }
        Err(e) => {
            let mut line = format!("error: {}", e.chain());
            if let Some(h) = &e.hint {
                line.push_str(&format!("\n  hint: {h}"));
            }
            eprintln!("{line}");
            if ctx.json {
                let j = serde_json::json!({
                    "ok": false,
                    "error": {
                        "message": e.chain(),
                        "hint": e.hint,
                        "kind": e.kind,
                        "exit_code": e.kind.code(),
                    }
                });
                writeln!(out, "{j}")
            } else {
                Ok(())
            }
        }
    };
    let _ = printed.and_then(|_| out.flush()); // a closed pipe is not an error
    match result {
        Ok(o) => ExitCode::from(o.code),
        Err(e) => e.kind.into(),
    }
}
