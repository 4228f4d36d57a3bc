//! `kfadmin completions SHELL`

use clap::CommandFactory;
use clap_complete::{generate, Shell as Target};

use super::Outcome;
use crate::cli::{Cli, CompletionsArgs, Shell};
use crate::error::Result;

/// A completion script is shell code, not a report: `--json` is refused (exit 2) rather than
/// ignored.
pub fn run(args: CompletionsArgs, json: bool) -> Result<Outcome> {
    if json {
        return Err(crate::error::Error::usage("completions prints a shell script; it has no JSON report")
            .hint("run kfadmin completions SHELL without --json"));
    }
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

/// `kfadmin manpages DIR`: kfadmin.1 and kfadmin-<sub>.1 for every visible subcommand.
pub fn manpages(args: crate::cli::ManpagesArgs) -> Result<Outcome> {
    use crate::error::IoContext;
    std::fs::create_dir_all(&args.dir).ctx("cannot create", &args.dir)?;
    let mut written = Vec::new();
    for (name, page) in manpage_files() {
        let path = args.dir.join(&name);
        std::fs::write(&path, page).ctx("cannot write", &path)?;
        written.push(path.display().to_string());
    }
    Ok(Outcome {
        code: 0,
        human: format!("{}\n", written.join("\n")),
        json: serde_json::json!({ "ok": true, "written": written }),
        raw: None,
    })
}

/// (file name, troff text) of every man page.
pub fn manpage_files() -> Vec<(String, Vec<u8>)> {
    let mut cmd = Cli::command();
    // Propagates the global flags (--json, --quiet, …) into every subcommand's page.
    cmd.build();
    let mut pages = Vec::new();
    let mut top = Vec::new();
    clap_mangen::Man::new(cmd.clone()).render(&mut top).expect("rendering into memory");
    pages.push(("kfadmin.1".to_string(), top));
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        let name = format!("kfadmin-{}", sub.get_name());
        let sub = sub.clone().name(name.clone()).version(env!("CARGO_PKG_VERSION"));
        let mut out = Vec::new();
        clap_mangen::Man::new(sub).render(&mut out).expect("rendering into memory");
        pages.push((format!("{name}.1"), out));
    }
    pages
}
