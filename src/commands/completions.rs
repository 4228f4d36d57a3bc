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
    match target {
        Target::Bash => out.extend_from_slice(BASH_DYNAMIC.as_bytes()),
        Target::Fish => out.extend_from_slice(FISH_DYNAMIC.as_bytes()),
        Target::Zsh => out = zsh_dynamic(&String::from_utf8_lossy(&out)).into_bytes(),
        _ => {}
    }
    Ok(Outcome { code: 0, human: String::new(), json: serde_json::Value::Null, raw: Some(out) })
}

/// The hidden command the completion scripts call for what only the running system knows.
pub const DYNAMIC_ARG: &str = "__complete";

/// Appended to clap's bash script: values only the running system knows, asked of kfadmin
/// itself; everything else as clap's script completes it.
const BASH_DYNAMIC: &str = r#"
# Dynamic completion (kfadmin __complete): container names from the engine, archive names from
# the repository and archive files (never their .sha256 sidecars); everything else as above.
_kfadmin_dynamic() {
    local cur="${COMP_WORDS[COMP_CWORD]}" out
    if out=$("${COMP_WORDS[0]}" __complete "$COMP_CWORD" "${COMP_WORDS[@]}" 2>/dev/null); then
        [[ $cur == "=" ]] && cur=""
        local IFS=$'
'
        COMPREPLY=($(compgen -W "$out" -- "$cur"))
        [[ $cur == */* ]] && compopt -o filenames 2>/dev/null
        return 0
    fi
    _kfadmin "$@"
}
complete -F _kfadmin_dynamic -o nosort -o bashdefault -o default kfadmin
"#;

/// Appended to clap's fish script.
const FISH_DYNAMIC: &str = r#"
# Dynamic completion (kfadmin __complete): container names from the engine, archive names from the repository.
complete -c kfadmin -n "__fish_seen_subcommand_from backup restore drill status schedule" -s c -l container -x -a "(kfadmin __complete containers)"
complete -c kfadmin -n "__fish_seen_subcommand_from verify restore drill; and not string match -q -- '-*' (commandline -ct)" -f -a "(kfadmin __complete archives (commandline -opc) -- (commandline -ct))"
"#;

/// clap's zsh script with the values of `--container` and of an ARCHIVE asked of kfadmin.
fn zsh_dynamic(script: &str) -> String {
    let mut out = String::new();
    for line in script.lines() {
        let l = if (line.starts_with("'-c+[") || line.starts_with("'--container=["))
            && line.contains("]:NAME:_default'")
        {
            line.replace("]:NAME:_default'", "]:NAME:_kfadmin_containers'")
        } else if ["':archive -- ", "'::archive -- ", "'*::archives -- "].iter().any(|p| line.starts_with(p))
        {
            match line.rsplit_once(":_files'") {
                Some((head, tail)) => format!("{head}:_kfadmin_archives'{tail}"),
                None => line.to_string(),
            }
        } else {
            line.to_string()
        };
        if l.starts_with("if [ \"$funcstack[1]\" = \"_kfadmin\" ]; then") {
            out.push_str(ZSH_DYNAMIC);
        }
        out.push_str(&l);
        out.push('\n');
    }
    out
}

/// Inserted before the end of clap's zsh script.
const ZSH_DYNAMIC: &str = r#"# Dynamic completion (kfadmin __complete): container names from the engine, archive names from
# the repository and archive files (never their .sha256 sidecars).
(( $+functions[_kfadmin_containers] )) ||
_kfadmin_containers() {
    local -a names
    names=(${(f)"$(kfadmin __complete containers 2>/dev/null)"})
    compadd -a names
}
(( $+functions[_kfadmin_archives] )) ||
_kfadmin_archives() {
    local -a names line
    line=(${(z)BUFFER})
    if [[ $PREFIX == */* ]]; then
        names=(${(f)"$(kfadmin __complete archives ${line[@]} -- $PREFIX 2>/dev/null)"})
        compadd -U -Q -S '' -a names
    else
        names=(${(f)"$(kfadmin __complete archives ${line[@]} 2>/dev/null)"})
        compadd -a names
    fi
}

"#;

/// `kfadmin __complete CWORD WORD…` (bash: the index of the word being completed, then every
/// word, the first being kfadmin), `__complete containers`, `__complete archives WORD… [--
/// CURRENT]` (fish: the words before the one being completed, then it): the
/// candidates, one a line, or `None` when clap's static completion should answer.
pub fn dynamic(args: &[String]) -> Option<Vec<String>> {
    match args.first().map(String::as_str) {
        Some("containers") => return containers(),
        Some("archives") => {
            // `archives WORD… [-- CURRENT]`
            let rest = &args[1..];
            return match rest.iter().rposition(|a| a == "--") {
                Some(i) => archives(&rest[..i], rest.get(i + 1).map(String::as_str).unwrap_or("")),
                None => archives(rest, ""),
            };
        }
        _ => {}
    }
    let cword: usize = args.first()?.parse().ok()?;
    let words = &args[1..];
    let mut cur = words.get(cword).map(String::as_str).unwrap_or("");
    let mut prev = cword.checked_sub(1).and_then(|i| words.get(i)).map(String::as_str).unwrap_or("");
    // bash splits --container=NAME at the `=`.
    if cur == "=" {
        cur = "";
    } else if prev == "=" {
        prev = cword.checked_sub(2).and_then(|i| words.get(i)).map(String::as_str).unwrap_or("");
    }
    let cli = Cli::command();
    let sub = words.iter().take(cword).skip(1).find_map(|w| cli.find_subcommand(w))?;
    let takes_value = |flag: &str| {
        sub.get_arguments().chain(cli.get_arguments()).any(|a| {
            let named = match flag.strip_prefix("--") {
                Some(long) => {
                    a.get_long() == Some(long) || a.get_all_aliases().is_some_and(|v| v.contains(&long))
                }
                None => flag.len() == 2 && flag.starts_with('-') && a.get_short() == flag.chars().nth(1),
            };
            named && a.get_action().takes_values()
        })
    };
    if (prev == "--container" || prev == "-c") && takes_value(prev) {
        return containers();
    }
    let positional_archive = matches!(sub.get_name(), "verify" | "restore" | "drill");
    if positional_archive && !cur.starts_with('-') && !(prev.starts_with('-') && takes_value(prev)) {
        return archives(&words[..cword.min(words.len())], cur);
    }
    None
}

fn containers() -> Option<Vec<String>> {
    let engine = crate::docker::Engine::connect().ok()?;
    engine.container_names().ok()
}

/// `latest` and the archives of the repository the words name (`-r/--repo`, else
/// `KFADMIN_REPO` or the configuration file, else the default) by their bare names; when `cur`
/// is a path, the directories and archive files there. Never a `.sha256` sidecar.
fn archives(words: &[String], cur: &str) -> Option<Vec<String>> {
    if cur.contains('/') {
        let (dir, _) = cur.rsplit_once('/')?;
        let shown = format!("{dir}/");
        let read = if dir.is_empty() { "/" } else { dir };
        let mut out = Vec::new();
        for e in std::fs::read_dir(read).ok()?.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let is_dir = e.file_type().is_ok_and(|t| t.is_dir());
            if is_dir || crate::archive::catalog::parse_name(&name).is_some() {
                out.push(format!("{shown}{name}"));
            }
        }
        out.sort();
        return Some(out);
    }
    let cli = Cli::command();
    if let Ok(Some(file)) = crate::config::load(&cli) {
        let mut argv: Vec<std::ffi::OsString> = words.iter().map(Into::into).collect();
        if argv.is_empty() {
            argv.push("kfadmin".into());
        }
        let _ = crate::config::apply(&cli, &file, &argv);
    }
    let mut repo = std::env::var_os("KFADMIN_REPO").map(std::path::PathBuf::from);
    for (i, w) in words.iter().enumerate() {
        for flag in ["--repo", "--out"] {
            if let Some(v) = w.strip_prefix(flag).and_then(|r| r.strip_prefix('=')) {
                repo = Some(v.into());
            }
        }
        if ["--repo", "-r", "--out", "-o"].contains(&w.as_str()) {
            let mut v = words.get(i + 1).map(String::as_str);
            if v == Some("=") {
                v = words.get(i + 2).map(String::as_str);
            }
            if let Some(v) = v {
                repo = Some(v.into());
            }
        }
    }
    let repo = repo.unwrap_or_else(|| crate::cli::DEFAULT_REPO.into());
    let store = crate::store::Store::open(&crate::store::Location::from_path(&repo).ok()?).ok()?;
    let mut out = vec!["latest".to_string()];
    out.extend(store.scan().ok()?.into_iter().map(|e| e.file_name));
    Some(out)
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
