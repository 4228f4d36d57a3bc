//! The command line itself: help that teaches, completions, usage errors.

use clap::CommandFactory;

use crate::util::*;

#[test]
fn clap_definition_is_consistent() {
    kfadmin::cli::Cli::command().debug_assert();
}

#[test]
fn help_explains_with_examples() {
    let r = kfadmin(["--help"]);
    r.ok().stdout_has("Examples:").stdout_has("Exit codes");
    for sub in ["backup", "verify", "restore", "import", "completions"] {
        let r = kfadmin([sub, "--help"]);
        r.ok().stdout_has("Examples:");
    }
    kfadmin(["backup", "--help"]).stdout_has("--online").stdout_has("KFADMIN_BACKUP_DIR");
}

#[test]
fn completions_for_every_shell() {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let r = kfadmin(["completions", shell]);
        r.ok();
        assert!(r.stdout.contains("kfadmin") && r.stdout.len() > 500, "{shell}");
    }
}

#[test]
fn usage_errors_exit_2() {
    kfadmin(["backup", "--db", "x.db"]).code(2).stderr_has("--online");
    kfadmin(["verify"]).code(2);
    kfadmin(["frobnicate"]).code(2);
}

/// The committed completions and man pages match what the binary generates now.
#[test]
fn committed_completions_and_man_pages_are_fresh() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let stale = "is stale: run scripts/gen-assets.sh and commit the result";
    for (shell, file) in [
        ("bash", "kfadmin.bash"),
        ("zsh", "_kfadmin"),
        ("fish", "kfadmin.fish"),
        ("elvish", "kfadmin.elv"),
        ("powershell", "_kfadmin.ps1"),
    ] {
        let now = kfadmin(["completions", shell]);
        let committed = std::fs::read_to_string(root.join("completions").join(file)).unwrap_or_default();
        assert!(now.stdout == committed, "completions/{file} {stale}");
    }
    let env = Env::new();
    let dir = env.path("man");
    kfadmin(["manpages", dir.to_str().unwrap()]).ok();
    let generated = ls(&dir);
    assert_eq!(generated, ls(&root.join("man")), "man/ {stale}");
    assert!(
        generated.contains(&"kfadmin-backup.1".to_string()) && generated.contains(&"kfadmin.1".to_string())
    );
    for page in generated {
        let now = std::fs::read(dir.join(&page)).unwrap();
        let committed = std::fs::read(root.join("man").join(&page)).unwrap_or_default();
        assert!(now == committed, "man/{page} {stale}");
    }
}

/// Every `kfadmin …` command shown in README.md and docs/*.md parses with today's command line
/// (the behaviour behind each is exercised by the integration tests of that command).
#[test]
fn every_command_in_the_docs_parses() {
    use clap::Parser;
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = vec![root.join("README.md")];
    for e in std::fs::read_dir(root.join("docs")).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "md") {
            files.push(p);
        }
    }
    let mut checked = 0;
    let mut bad = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap().replace("\\\n", " ");
        let mut in_block = false;
        for line in text.lines() {
            if line.trim_start().starts_with("```") {
                in_block = !in_block;
                continue;
            }
            // Code: a fenced block's lines, and `inline code` spans elsewhere.
            let spans: Vec<&str> =
                if in_block { vec![line] } else { line.split('`').skip(1).step_by(2).collect() };
            for span in spans {
                for cmd in commands_in(span) {
                    checked += 1;
                    if let Err(e) = kfadmin::cli::Cli::try_parse_from(&cmd) {
                        bad.push(format!("{}: `{}`: {}", f.display(), cmd.join(" "), e.kind()));
                    }
                }
            }
        }
    }
    assert!(checked >= 20, "only {checked} commands found in the docs");
    assert!(bad.is_empty(), "commands in the docs that do not parse:\n{}", bad.join("\n"));
}

/// The kfadmin invocations in a line of shell: from a `kfadmin` word (or a path ending in
/// `/kfadmin`) up to a pipe, `;`, `&&`, `||`, a redirection or a comment.
fn commands_in(line: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let words: Vec<&str> = line.split_whitespace().collect();
    let mut i = 0;
    while i < words.len() {
        let w = words[i].trim_start_matches(['(', '\'', '"']);
        let w = w.strip_prefix("ExecStart=").or_else(|| w.strip_prefix("ExecStartPost=")).unwrap_or(w);
        if w == "kfadmin" || w.ends_with("/kfadmin") {
            let mut cmd = vec!["kfadmin".to_string()];
            let mut j = i + 1;
            while j < words.len() {
                let a = words[j];
                if ["|", ";", "&&", "||", ">", "2>&1", "#"].contains(&a)
                    || a.starts_with('>')
                    || a.starts_with('#')
                {
                    break;
                }
                cmd.push(a.trim_matches(['\'', '"']).trim_end_matches([';', ')']).to_string());
                j += 1;
            }
            // A prose mention ("kfadmin is …") is not a command.
            let subs = [
                "backup",
                "verify",
                "restore",
                "list",
                "prune",
                "status",
                "import",
                "drill",
                "config",
                "schedule",
                "replicate",
                "completions",
                "manpages",
                "--help",
                "--version",
            ];
            if cmd.len() > 1 && subs.contains(&cmd[1].as_str()) {
                out.push(cmd);
            }
            i = j;
        } else {
            i += 1;
        }
    }
    out
}

/// Every option of every command can also come from a `KFADMIN_…` (or `DOCKER_HOST`-style)
/// environment variable, shown in --help.
#[test]
fn every_flag_has_an_environment_variable() {
    let cmd = kfadmin::cli::Cli::command();
    let mut missing = Vec::new();
    let mut all: Vec<&clap::Command> = vec![&cmd];
    all.extend(cmd.get_subcommands());
    for c in all {
        for a in c.get_arguments() {
            let id = a.get_id().as_str();
            if a.is_positional() || ["help", "version"].contains(&id) || c.get_name() == "manpages" {
                continue;
            }
            match a.get_env() {
                Some(e) if e.to_string_lossy().starts_with("KFADMIN_") => {}
                _ => missing.push(format!("{} --{id}", c.get_name())),
            }
        }
    }
    assert!(missing.is_empty(), "flags without a KFADMIN_ environment variable: {missing:?}");
    kfadmin(["backup", "--help"]).stdout_has("[env: KFADMIN_CONTAINER=]");
}

#[test]
fn flags_from_the_environment_are_used() {
    let env = Env::new();
    let data = env.data_dir("data", 1);
    let out = env.path("from-env");
    let r: Run = std::process::Command::new(kfadmin_bin())
        .args(["backup"])
        .env("KFADMIN_ONLINE", "true")
        .env("KFADMIN_DB", data.join("keyfount.db"))
        .env("KFADMIN_BACKUP_DIR", &out)
        .env("KFADMIN_JSON", "1")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap()
        .into();
    r.ok();
    assert!(r.json()["archive"].as_str().unwrap().starts_with(out.to_str().unwrap()));
}
