//! `kfadmin completions SHELL`

use clap::CommandFactory;
use clap_complete::{generate, Shell as Target};

use super::Outcome;
use crate::cli::{Cli, CompletionsArgs, Shell};
use crate::error::Result;

pub fn run(args: CompletionsArgs) -> Result<Outcome> {
    let target = match args.shell {
        Shell::Bash => Target::Bash,
        Shell::Zsh => Target::Zsh,
        Shell::Fish => Target::Fish,
        Shell::Elvish => Target::Elvish,
        Shell::Powershell => Target::PowerShell,
    };
    let mut out = Vec::new();
    generate(target, &mut Cli::command(), "kfadmin", &mut out);
    Ok(Outcome { code: 0, human: String::new(), json: serde_json::Value::Null, raw: Some(out) })
}
