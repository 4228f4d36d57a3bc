//! The kfadmin binary: parse, run, print, turn errors into exit codes.

// A closed stdout or stderr is not a reason to panic: no print macros (they panic on EPIPE).
#![deny(clippy::print_stdout, clippy::print_stderr)]

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;

use kfadmin::cli::{Cli, Command};
use kfadmin::commands::{self, Ctx};
use kfadmin::crypto::{redact, redact_json};
use kfadmin::error::interrupt;

/// A container that an earlier, killed kfadmin run left stopped is started before anything
/// else by the commands that work on a container (`--container`); when that is impossible the
/// operator hears it now (exit 4). The throwaway copy and volume of a killed drill are removed
/// by the same commands. The other commands only warn, naming the journal file: they must work
/// with the engine down, and never start or remove a container.
fn recover(cmd: &Command) -> kfadmin::Result<()> {
    let on_container = match cmd {
        Command::Backup(a) => a.target.docker.container.is_some(),
        Command::Restore(a) => a.docker.container.is_some(),
        Command::Status(a) => a.target.docker.container.is_some(),
        Command::Drill(_) => true,
        Command::Manpages(_) | Command::Completions(_) | Command::Config(_) | Command::Schedule(_) => {
            return Ok(())
        }
        // Import touches no container.
        Command::Verify(_) | Command::List(_) | Command::Prune(_) | Command::Import(_) => false,
        // A follower of a database on this host (issue 18): no container.
        Command::Replicate(_) => false,
    };
    // A dry run changes nothing, not even what a killed run left: it names it.
    let dry_run = match cmd {
        Command::Backup(a) => a.dry_run,
        Command::Drill(a) => a.dry_run,
        Command::Import(a) => a.dry_run,
        _ => false,
    };
    if dry_run {
        let lines = kfadmin::docker::journal_notes().into_iter().chain(kfadmin::ops::drill::notes());
        for line in lines {
            commands::stderr_line(&format!("warning: {line}"));
        }
        return Ok(());
    }
    for (path, why) in kfadmin::ops::staging::sweep_private() {
        commands::stderr_line(&format!(
            "warning: cannot remove {}, left by a killed kfadmin run: {why}",
            path.display()
        ));
    }
    // A half-done swap is put back before any container is started on that data.
    for line in kfadmin::ops::swap::recover()? {
        commands::stderr_line(&format!("warning: {line}"));
    }
    let mut lines =
        if on_container { kfadmin::docker::recover_journal()? } else { kfadmin::docker::journal_notes() };
    // What a killed drill left: removed by container commands, named by the others.
    lines.extend(if on_container { kfadmin::ops::drill::recover() } else { kfadmin::ops::drill::notes() });
    for line in lines {
        commands::stderr_line(&format!("warning: {line}"));
    }
    Ok(())
}

/// `KFADMIN_BACKUP_DIR`, the old name of `KFADMIN_REPO`, still works when the new one is unset.
fn old_env_names() {
    if std::env::var_os("KFADMIN_REPO").is_none() {
        if let Some(dir) = std::env::var_os("KFADMIN_BACKUP_DIR") {
            // Before any thread is started: nothing else reads the environment yet.
            std::env::set_var("KFADMIN_REPO", dir);
        }
    }
}

/// Variables that meant one thing to several commands and now have a name per command.
/// `KFADMIN_DRY_RUN` made both `restore` and `prune` dry runs: ignoring it would turn a `prune`
/// meant as a dry run into a real one, so those two refuse it. (`backup`, `drill` and `import`
/// never read it and still do not: a backup never stops for it.)
/// `KFADMIN_NAME` names the archives a backup writes and no longer filters `list` (harmless:
/// `list` shows more), which says so.
fn old_shared_names(cmd: &Command, quiet: bool) -> kfadmin::Result<()> {
    let var = match cmd {
        // Already a dry run: the old variable changes nothing.
        Command::Restore(a) if a.confirm.dry_run => return Ok(()),
        Command::Prune(a) if a.dry_run => return Ok(()),
        Command::Restore(_) => "KFADMIN_RESTORE_DRY_RUN",
        Command::Prune(_) => "KFADMIN_PRUNE_DRY_RUN",
        Command::List(a) => {
            if a.name.is_none() && !quiet && std::env::var_os("KFADMIN_NAME").is_some() {
                commands::stderr_line(
                    "note: KFADMIN_NAME is set but does not filter list (it names the archives backup writes): \
                     every name is listed; pass --name or set KFADMIN_LIST_NAME to list one",
                );
            }
            return Ok(());
        }
        _ => return Ok(()),
    };
    if std::env::var_os("KFADMIN_DRY_RUN").is_some() {
        return Err(kfadmin::Error::usage(
            "KFADMIN_DRY_RUN is no longer read: it made both restore and prune dry runs",
        )
        .hint(format!(
            "pass --dry-run, or set {var}=1 (each command has its own variable), and unset KFADMIN_DRY_RUN"
        )));
    }
    Ok(())
}

/// `--json` was asked for on the command line or in `KFADMIN_JSON` (looked at by hand when
/// the command line itself does not parse).
fn json_wanted() -> bool {
    let on_line = std::env::args_os().skip(1).take_while(|a| a != "--").any(|a| a == "--json");
    let from_env = std::env::var("KFADMIN_JSON")
        .is_ok_and(|v| matches!(v.to_ascii_lowercase().as_str(), "1" | "true" | "yes" | "on" | "y"));
    on_line || from_env
}

/// A command line clap refuses: its message on stderr and exit 2; with `--json`, also exactly
/// one JSON object on stdout. Help and version are printed as asked, exit 0.
fn usage_error(e: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
        e.exit();
    }
    let misplaced = misplaced_flag(&e);
    if !json_wanted() && misplaced.is_none() {
        e.exit();
    }
    let text = e.kind().as_str().map(str::to_owned).unwrap_or_else(|| e.to_string());
    let message = e.to_string();
    let first = message.lines().next().unwrap_or(&text).trim_start_matches("error: ").to_owned();
    let hint = match &misplaced {
        // clap's own "a similar argument exists" would point at an unrelated flag.
        Some(hint) => {
            commands::stderr_line(&format!("error: {first}\n  hint: {hint}"));
            hint.clone()
        }
        None => {
            let _ = e.print();
            "run kfadmin --help, or kfadmin COMMAND --help".to_string()
        }
    };
    if !json_wanted() {
        return ExitCode::from(2);
    }
    let j = serde_json::json!({
        "ok": false,
        "error": {
            "message": first,
            "hint": hint,
            "kind": kfadmin::error::Kind::Usage,
            "exit_code": 2,
        }
    });
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{j}").and_then(|()| out.flush());
    ExitCode::from(2)
}

/// Reads the configuration file and applies its settings for this command line.
fn apply_config() -> kfadmin::Result<()> {
    use clap::CommandFactory;
    let cmd = Cli::command();
    if let Some(w) = kfadmin::config::unreadable_default() {
        // Not for what reads no setting: help, version, completion scripts, man pages.
        let quiet_ones = ["--help", "-h", "help", "--version", "-V", "completions", "manpages"];
        if !std::env::args_os().skip(1).any(|a| quiet_ones.iter().any(|q| a == *q)) {
            commands::stderr_line(&format!("warning: {w}"));
        }
    }
    if let Some(file) = kfadmin::config::load(&cmd)? {
        let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
        kfadmin::config::apply(&cmd, &file, &args)?;
    }
    Ok(())
}

/// An error before the command line is parsed (the configuration file): on stderr, and as the
/// one JSON object with `--json`.
fn early_error(e: &kfadmin::Error) -> ExitCode {
    let mut line = format!("error: {}", e.chain());
    if let Some(h) = &e.hint {
        line.push_str(&format!("\n  hint: {h}"));
    }
    commands::stderr_line(&line);
    if json_wanted() {
        let j = serde_json::json!({
            "ok": false,
            "error": { "message": e.chain(), "hint": e.hint, "kind": e.kind, "exit_code": e.kind.code() }
        });
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{j}").and_then(|()| out.flush());
    }
    e.kind.into()
}

/// A flag of another command given to this one (`backup --data-dir`, `restore --db`): what
/// this command takes instead. clap would suggest the nearest spelling (`--tmp-dir`), which
/// points the wrong way.
fn misplaced_flag(e: &clap::Error) -> Option<String> {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    if e.kind() != ErrorKind::UnknownArgument {
        return None;
    }
    let Some(ContextValue::String(arg)) = e.get(ContextKind::InvalidArg) else { return None };
    let flag = arg.split('=').next().unwrap_or(arg);
    let command = std::env::args().skip(1).find(|a| !a.starts_with('-'))?;
    let database = "pass the database file with --db (e.g. --db /srv/keyfount/data/keyfount.db), or the container with --container NAME";
    match (command.as_str(), flag) {
        ("backup", "--data-dir") => {
            Some(format!("backup reads a database, not a directory: {database}; --data-dir is where restore writes"))
        }
        ("status", "--data-dir") => Some(format!("status looks at a database: {database}")),
        ("restore", "--db") => Some(
            "restore writes into a data directory: pass --data-dir DIR (the directory that holds keyfount.db), or the container with --container NAME".to_string(),
        ),
        _ => None,
    }
}

fn main() -> ExitCode {
    // A guardian (kfadmin::ops::guardian), started by kfadmin itself: not a command.
    if std::env::args_os().nth(1).is_some_and(|a| a == kfadmin::ops::guardian::ARG) {
        let args: Vec<String> =
            std::env::args_os().skip(2).map(|a| a.to_string_lossy().into_owned()).collect();
        return kfadmin::ops::guardian::main(&args);
    }
    old_env_names();
    // The completion scripts' question (kfadmin __complete …): candidates on stdout, exit 1 for
    // "no dynamic answer here" (the script then completes as clap's static script does).
    if std::env::args_os().nth(1).is_some_and(|a| a == commands::completions::DYNAMIC_ARG) {
        let args: Vec<String> =
            std::env::args_os().skip(2).map(|a| a.to_string_lossy().into_owned()).collect();
        let Some(list) = commands::completions::dynamic(&args) else { return ExitCode::from(1) };
        let mut out = std::io::stdout().lock();
        for c in list {
            let _ = writeln!(out, "{c}");
        }
        let _ = out.flush();
        return ExitCode::SUCCESS;
    }
    // The configuration file, handed to clap as environment variables where they are unset:
    // before the parse and before any thread.
    if let Err(e) = apply_config() {
        return early_error(&e);
    }
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage_error(e),
    };
    if let Err(e) = old_shared_names(&cli.command, cli.global.quiet) {
        return early_error(&e);
    }
    if let Some(f) = &cli.global.passphrase_file {
        if let Err(e) = kfadmin::crypto::set_passphrase_file(f) {
            return early_error(&e);
        }
    }
    interrupt::install();
    let ctx = Ctx::new(&cli.global);
    let result = recover(&cli.command).and_then(|()| commands::run(cli.command, &ctx));
    let mut out = std::io::stdout().lock();
    // Secrets are masked in everything printed (kfadmin::crypto::redact), the last line of
    // defence behind messages that never quote a key.
    let printed = match &result {
        Ok(o) => {
            if let Some(raw) = &o.raw {
                out.write_all(raw)
            } else if ctx.json {
                let mut json = o.json.clone();
                redact_json(&mut json);
                writeln!(out, "{json}")
            } else if !ctx.quiet || o.code != 0 {
                out.write_all(redact(&o.human).as_bytes())
            } else {
                Ok(())
            }
        }
        Err(e) => {
            let mut line = format!("error: {}", e.chain());
            if let Some(h) = &e.hint {
                line.push_str(&format!("\n  hint: {h}"));
            }
            commands::stderr_line(&line);
            if ctx.json {
                let mut j = serde_json::json!({
                    "ok": false,
                    "error": {
                        "message": e.chain(),
                        "hint": e.hint,
                        "kind": e.kind,
                        "exit_code": e.kind.code(),
                    }
                });
                redact_json(&mut j);
                writeln!(out, "{j}")
            } else {
                Ok(())
            }
        }
    };
    let _ = printed.and_then(|_| out.flush()); // a closed pipe is not an error
                                               // A verdict that fails (exit 1 or 3) is an error too: said after the report, on stderr.
    if let Some(line) = result.as_ref().ok().and_then(|o| commands::failure_line(&o.json, o.code)) {
        commands::stderr_line(&format!("error: {line}"));
    }
    match result {
        Ok(o) => ExitCode::from(o.code),
        Err(e) => e.kind.into(),
    }
}
