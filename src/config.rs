//! The configuration file (`/etc/kfadmin/config.toml`, or `KFADMIN_CONFIG`): any option, at the
//! top for every command that has it, or in a table per command.
//!
//! Precedence is flag > environment > file > default, and it is clap's own: every option has an
//! environment variable, and a setting from the file is handed to clap as that variable when the
//! variable is not set already. A setting whose option conflicts with a flag given on the command
//! line (the file's `container` against `--db`) is not applied: the flag wins.
//!
//! The file is checked before anything runs: group and others may not read or write it, it must
//! be owned by root or by the user running kfadmin, and every key must be an option (a typo is an
//! error naming the key and the file). Secrets are never written in it: options take files
//! (`identity`, `recipients-file`), and a passphrase comes from `KFADMIN_PASSPHRASE` or the
//! terminal.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::Read as _;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use clap::{Arg, ArgAction, Command};
use serde::Serialize;

use crate::error::{Error, Result};

/// Where the file is when `KFADMIN_CONFIG` does not say.
pub const DEFAULT_PATH: &str = "/etc/kfadmin/config.toml";

/// Options a top-level setting never reaches: they mean something else in that command
/// (`list --name` filters what is listed) or they must be chosen per command.
const NOT_FROM_TOP: &[(&str, &str)] = &[("list", "name")];
/// Options that only a command's own table may set.
const TABLE_ONLY: &[&str] = &["dry-run", "yes", "force", "install"];

/// A loaded, checked configuration file.
#[derive(Debug, Clone, Default)]
pub struct File {
    pub path: PathBuf,
    /// Top-level settings: key → value.
    pub top: BTreeMap<String, toml::Value>,
    /// `[command]` tables.
    pub tables: BTreeMap<String, BTreeMap<String, toml::Value>>,
}

/// The file to read: `KFADMIN_CONFIG` (empty: none), else [`DEFAULT_PATH`]; `true` when named
/// explicitly (then a missing file is an error).
pub fn location() -> Option<(PathBuf, bool)> {
    match std::env::var_os("KFADMIN_CONFIG") {
        Some(p) if p.is_empty() => None,
        Some(p) => Some((PathBuf::from(p), true)),
        None => Some((default_path(), false)),
    }
}

/// [`DEFAULT_PATH`]; in debug builds `KFADMIN_TEST_DEFAULT_CONFIG` stands in for it, so that
/// the tests never touch the host's /etc.
fn default_path() -> PathBuf {
    if cfg!(debug_assertions) {
        if let Some(p) = std::env::var_os("KFADMIN_TEST_DEFAULT_CONFIG") {
            return PathBuf::from(p);
        }
    }
    PathBuf::from(DEFAULT_PATH)
}

/// The default file exists but this user may not read it (it is root's, mode 0600): its
/// settings cannot be used. `Some(warning)` then; commands still run, as they would without it.
pub fn unreadable_default() -> Option<String> {
    if std::env::var_os("KFADMIN_CONFIG").is_some() {
        return None;
    }
    let p = default_path();
    match std::fs::File::open(&p) {
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => Some(format!(
            "cannot read the configuration file {} (permission denied): its settings are not used; run kfadmin as root, or set KFADMIN_CONFIG",
            p.display()
        )),
        _ => None,
    }
}

/// Reads and checks the configuration file against the command line definition `cli`.
pub fn load(cli: &Command) -> Result<Option<File>> {
    let Some((path, explicit)) = location() else { return Ok(None) };
    // Not hanging on a FIFO put in the file's place.
    let opened = {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC).open(&path)
    };
    let mut f = match opened {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicit => return Ok(None),
        // Root's own file, mode 0600, run by another user: said by `unreadable_default`.
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied && !explicit => return Ok(None),
        Err(e) => {
            return Err(Error::usage(format!("cannot read the configuration file {}", path.display()))
                .source(e)
                .hint("fix KFADMIN_CONFIG, or set KFADMIN_CONFIG= (empty) to read no file"))
        }
    };
    // The checks are on the file that was opened, not on a name that could be swapped after.
    let md = f.metadata().map_err(|e| Error::io("cannot read", &path, e))?;
    if !md.is_file() {
        return Err(Error::usage(format!("the configuration file {} is not a regular file", path.display())));
    }
    let me = rustix::process::geteuid().as_raw();
    if md.uid() != 0 && md.uid() != me {
        return Err(Error::usage(format!(
            "the configuration file {} is owned by uid {}, not by root or by you (uid {me}): it is not read",
            path.display(),
            md.uid()
        ))
        .hint(format!("chown root:root {} (whoever owns it decides what kfadmin does)", path.display())));
    }
    if md.mode() & 0o077 != 0 {
        return Err(Error::usage(format!(
            "the configuration file {} is mode {:04o}: group or others may read or write it, so it is not read",
            path.display(),
            md.mode() & 0o7777
        ))
        .hint(format!("chmod 600 {}", path.display())));
    }
    if md.len() > 1 << 20 {
        return Err(Error::usage(format!("the configuration file {} is larger than 1 MiB", path.display())));
    }
    let mut text = String::new();
    f.read_to_string(&mut text).map_err(|e| {
        Error::usage(format!("cannot read the configuration file {} as UTF-8 text", path.display())).source(e)
    })?;
    parse(cli, &path, &text).map(Some)
}

/// Parses and checks the text of a configuration file.
pub fn parse(cli: &Command, path: &Path, text: &str) -> Result<File> {
    let bad = |msg: String| Error::usage(format!("{}: {msg}", path.display()));
    let value: toml::Value = toml::from_str(text).map_err(|e| bad(format!("not valid TOML: {e}")))?;
    let toml::Value::Table(root) = value else { return Err(bad("not a TOML table".into())) };
    let mut file = File { path: path.to_path_buf(), ..File::default() };
    for (key, v) in root {
        if let toml::Value::Table(t) = v {
            let Some(sub) = cli.find_subcommand(&key).filter(|s| !s.is_hide_set()) else {
                return Err(bad(format!("[{key}] is not a kfadmin command")).hint(format!(
                    "a table is named after a command: {}",
                    visible_commands(cli).join(", ")
                )));
            };
            let mut table = BTreeMap::new();
            for (k, v) in t {
                let arg = find_option(sub, cli, &k).ok_or_else(|| {
                    bad(format!("unknown key {k:?} in [{key}]: {key} has no option --{k}"))
                        .hint(suggest(&k, options_of(sub, cli)))
                })?;
                check_value(arg, &format!("[{key}] {k}"), &v).map_err(&bad)?;
                table.insert(k, v);
            }
            file.tables.insert(key, table);
        } else {
            if TABLE_ONLY.contains(&key.as_str()) {
                return Err(bad(format!("{key} cannot be set for every command")).hint(format!(
                    "set it in the table of the command it is for, e.g. [prune] {key} = true"
                )));
            }
            let arg = std::iter::once(cli)
                .chain(cli.get_subcommands())
                .find_map(|c| find_option(c, cli, &key))
                .ok_or_else(|| {
                    let all: Vec<String> = std::iter::once(cli)
                        .chain(cli.get_subcommands())
                        .flat_map(|c| options_of(c, cli))
                        .collect();
                    bad(format!("unknown key {key:?}: no kfadmin command has an option --{key}"))
                        .hint(suggest(&key, all))
                })?;
            check_value(arg, &key, &v).map_err(&bad)?;
            file.top.insert(key, v);
        }
    }
    Ok(file)
}

fn visible_commands(cli: &Command) -> Vec<String> {
    cli.get_subcommands().filter(|s| !s.is_hide_set()).map(|s| s.get_name().to_string()).collect()
}

/// The options a file may set for `sub` (its own and the global ones), by long name.
fn options_of(sub: &Command, cli: &Command) -> Vec<String> {
    sub.get_arguments()
        .chain(cli.get_arguments().filter(|a| a.is_global_set()))
        .filter(|a| settable(a))
        .filter_map(|a| a.get_long().map(str::to_string))
        .collect()
}

fn settable(a: &Arg) -> bool {
    !a.is_positional()
        && a.get_env().is_some()
        && !matches!(a.get_action(), ArgAction::Help | ArgAction::Version)
}

/// The option `key` (its long name, or a hidden old spelling) of `sub`, or a global one.
fn find_option<'a>(sub: &'a Command, cli: &'a Command, key: &str) -> Option<&'a Arg> {
    let named = |a: &&Arg| {
        settable(a) && (a.get_long() == Some(key) || a.get_all_aliases().is_some_and(|v| v.contains(&key)))
    };
    sub.get_arguments().find(named).or_else(|| cli.get_arguments().filter(|a| a.is_global_set()).find(named))
}

fn suggest(key: &str, options: Vec<String>) -> String {
    let norm = |s: &str| s.replace('_', "-").to_ascii_lowercase();
    let k = norm(key);
    let close =
        options.iter().find(|o| **o == k || (o.len() > 3 && (o.contains(&k) || k.contains(o.as_str()))));
    match close {
        Some(o) => format!("did you mean {o:?}? Keys are the long option names without the dashes"),
        None => "keys are the long option names without the dashes, as kfadmin COMMAND --help shows them"
            .to_string(),
    }
}

/// A value the option can take: a switch takes true or false, a repeatable option a list.
fn check_value(arg: &Arg, key: &str, v: &toml::Value) -> std::result::Result<(), String> {
    let switch = matches!(arg.get_action(), ArgAction::SetTrue | ArgAction::SetFalse)
        || (arg.get_long() != Some("verbose") && !arg.get_action().takes_values());
    match v {
        toml::Value::Boolean(_) if switch => Ok(()),
        _ if switch && arg.get_long() == Some("passphrase") => Err(format!(
            "{key} takes true or false (whether to encrypt with a passphrase); the passphrase itself is never \
             written in the configuration: it comes from KFADMIN_PASSPHRASE or the terminal"
        )),
        _ if switch => Err(format!("{key} takes true or false")),
        toml::Value::Boolean(_) => Err(format!("{key} takes a value, not true or false")),
        toml::Value::Array(items) => {
            if arg.get_value_delimiter().is_none() && items.len() != 1 {
                return Err(format!("{key} takes one value, not a list"));
            }
            items.iter().try_for_each(|i| match i {
                toml::Value::String(_) | toml::Value::Integer(_) => Ok(()),
                _ => Err(format!("{key}: a list of strings or numbers")),
            })
        }
        toml::Value::String(_) | toml::Value::Integer(_) | toml::Value::Float(_) => Ok(()),
        _ => Err(format!("{key} takes a string, a number or true/false")),
    }
}

/// The value as its environment variable carries it.
fn env_value(arg: &Arg, v: &toml::Value) -> String {
    match v {
        toml::Value::String(s) => s.clone(),
        toml::Value::Array(items) => {
            let d = arg.get_value_delimiter().unwrap_or(',').to_string();
            items.iter().map(|i| env_value(arg, i)).collect::<Vec<_>>().join(&d)
        }
        other => other.to_string(),
    }
}

/// Where an effective setting comes from.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Origin {
    /// Its environment variable (named in `source`).
    Env,
    /// The configuration file (`source`: the file and its table).
    File,
    /// The option's default.
    Default,
    /// Not set at all.
    Unset,
}

/// One option of one command and its effective value.
#[derive(Debug, Clone, Serialize)]
pub struct Setting {
    /// The command (`kfadmin` for the options every command takes).
    pub command: String,
    pub key: String,
    pub value: Option<String>,
    pub origin: Origin,
    /// The variable, or `FILE [table]`; `null` for a default.
    pub source: Option<String>,
    /// The environment variable that sets it.
    pub env: String,
}

/// The setting of `key` for the command `sub` from the file: its own table first, then the top.
fn file_value<'a>(file: &'a File, sub: &str, key: &str, arg: &Arg) -> Option<(&'a toml::Value, String)> {
    let long = arg.get_long().unwrap_or(key);
    let names = |k: &String| k == long || arg.get_all_aliases().is_some_and(|v| v.contains(&k.as_str()));
    if let Some((_, v)) = file.tables.get(sub).and_then(|t| t.iter().find(|(k, _)| names(k))) {
        return Some((v, format!("{} [{sub}]", file.path.display())));
    }
    if NOT_FROM_TOP.contains(&(sub, long)) {
        return None;
    }
    file.top.iter().find(|(k, _)| names(k)).map(|(_, v)| (v, file.path.display().to_string()))
}

/// Every option of every visible command (or of `only`) and where its value comes from.
pub fn effective(cli: &Command, file: Option<&File>, only: Option<&str>) -> Result<Vec<Setting>> {
    if let Some(o) = only {
        if o != "kfadmin" && cli.find_subcommand(o).is_none_or(|s| s.is_hide_set()) {
            return Err(Error::usage(format!("{o} is not a kfadmin command"))
                .hint(format!("one of: {}", visible_commands(cli).join(", "))));
        }
    }
    let mut out = Vec::new();
    let mut one = |command: &str, arg: &Arg| {
        let Some(env) = arg.get_env().map(|e| e.to_string_lossy().into_owned()) else { return };
        let key = arg.get_long().unwrap_or(arg.get_id().as_str()).to_string();
        let (value, origin, source) = if let Some(v) = from_environment(&env) {
            (Some(v.to_string_lossy().into_owned()), Origin::Env, Some(env.clone()))
        } else if let Some((v, src)) = file.and_then(|f| file_value(f, command, &key, arg)) {
            (Some(env_value(arg, v)), Origin::File, Some(src))
        } else if key == "repo" && arg.get_default_values().is_empty() {
            // `-r/--repo` of the commands that read archives defaults in code, not in clap.
            (Some(crate::cli::DEFAULT_REPO.to_string()), Origin::Default, None)
        } else if !arg.get_default_values().is_empty() {
            let d: Vec<String> =
                arg.get_default_values().iter().map(|v| v.to_string_lossy().into_owned()).collect();
            (Some(d.join(",")), Origin::Default, None)
        } else {
            (None, Origin::Unset, None)
        };
        out.push(Setting { command: command.to_string(), key, value, origin, source, env });
    };
    if only.is_none_or(|o| o == "kfadmin") {
        for a in cli.get_arguments().filter(|a| a.is_global_set() && settable(a)) {
            one("kfadmin", a);
        }
    }
    for sub in cli.get_subcommands().filter(|s| !s.is_hide_set()) {
        if only.is_some_and(|o| o != sub.get_name()) {
            continue;
        }
        for a in sub.get_arguments().filter(|a| settable(a) && !a.is_hide_set()) {
            one(sub.get_name(), a);
        }
    }
    Ok(out)
}

/// The variables [`apply`] set from the file: not the environment's, for [`effective`].
static INJECTED: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

fn from_environment(env: &str) -> Option<OsString> {
    let injected = INJECTED.lock().unwrap_or_else(|p| p.into_inner()).iter().any(|v| v == env);
    if injected {
        None
    } else {
        std::env::var_os(env)
    }
}

/// What [`apply`] did, for `-v`.
#[derive(Debug, Clone)]
pub struct Applied {
    pub key: String,
    pub env: String,
    /// `None` when applied; else why not (the variable is set, a flag conflicts).
    pub skipped: Option<String>,
}

/// Hands the file's settings for the command on `args` to clap, as the environment variables
/// of their options, where the variable is not set and no flag on the command line conflicts.
/// Must run before any thread is started (it sets environment variables).
/// A value the file gives that the option refuses is an error naming the file and the key.
pub fn apply(cli: &Command, file: &File, args: &[OsString]) -> Result<Vec<Applied>> {
    let Ok(matches) = cli.clone().ignore_errors(true).try_get_matches_from(args) else {
        return Ok(Vec::new());
    };
    let Some((name, sub_m)) = matches.subcommand() else { return Ok(Vec::new()) };
    let Some(sub) = cli.find_subcommand(name) else { return Ok(Vec::new()) };
    let on_line = |id: &str| {
        sub_m.try_contains_id(id).unwrap_or(false)
            && sub_m.value_source(id) == Some(clap::parser::ValueSource::CommandLine)
    };
    let mut done = Vec::new();
    let mut candidates: Vec<&Arg> = sub.get_arguments().filter(|a| settable(a)).collect();
    candidates.extend(cli.get_arguments().filter(|a| a.is_global_set() && settable(a)));
    for arg in candidates {
        let key = arg.get_long().unwrap_or_default().to_string();
        let Some((v, _)) = file_value(file, name, &key, arg) else { continue };
        let env = arg.get_env().map(|e| e.to_string_lossy().into_owned()).unwrap_or_default();
        let id = arg.get_id().as_str();
        let skipped = if std::env::var_os(&env).is_some() {
            Some(format!("{env} is set"))
        } else if on_line(id) {
            Some(format!("--{key} is given"))
        } else {
            conflicting_on_line(sub, arg, &on_line).map(|other| format!("--{other} is given"))
        };
        if skipped.is_none() {
            let value = env_value(arg, v);
            let parts: Vec<&str> = match arg.get_value_delimiter() {
                Some(d) => value.split(d).collect(),
                None => vec![value.as_str()],
            };
            for part in parts {
                // The option's own parser, on a command of its own.
                let probe = Command::new("kfadmin").no_binary_name(true).arg(
                    Arg::new("v")
                        .value_parser(arg.get_value_parser().clone())
                        .action(ArgAction::Set)
                        .allow_hyphen_values(true),
                );
                if let Err(e) = probe.try_get_matches_from([part]) {
                    let why = e.to_string();
                    let why = why
                        .lines()
                        .next()
                        .unwrap_or_default()
                        .trim_start_matches("error: ")
                        .replace(" for '[v]'", "");
                    let table = if file.tables.get(name).is_some_and(|t| t.contains_key(&key)) {
                        format!("[{name}] ")
                    } else {
                        String::new()
                    };
                    return Err(Error::usage(format!("{}: {table}{key} = {v}: {why}", file.path.display()))
                        .hint(format!("fix {key} in {}", file.path.display())));
                }
            }
            // Before any thread is started: nothing else reads the environment yet.
            std::env::set_var(&env, value);
            INJECTED.lock().unwrap_or_else(|p| p.into_inner()).push(env.clone());
        }
        done.push(Applied { key, env, skipped });
    }
    Ok(done)
}

/// A flag on the command line that `arg` cannot be given with: a member of one of its
/// one-of groups, or an explicit conflict.
fn conflicting_on_line(sub: &Command, arg: &Arg, on_line: &dyn Fn(&str) -> bool) -> Option<String> {
    let me = arg.get_id();
    for g in sub.get_groups() {
        let mut g = g.clone();
        let members: Vec<_> = g.get_args().cloned().collect();
        if g.is_multiple() || !members.contains(me) {
            continue;
        }
        if let Some(o) = members.iter().find(|m| *m != me && on_line(m.as_str())) {
            let long = sub.get_arguments().find(|a| a.get_id() == o).and_then(Arg::get_long);
            return Some(long.unwrap_or(o.as_str()).to_string());
        }
    }
    if arg.is_global_set() {
        return None;
    }
    sub.get_arg_conflicts_with(arg)
        .into_iter()
        .find(|o| on_line(o.get_id().as_str()))
        .map(|o| o.get_long().unwrap_or(o.get_id().as_str()).to_string())
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    fn cli() -> Command {
        crate::cli::Cli::command()
    }

    #[test]
    fn a_typo_is_refused_naming_the_key_and_the_file() {
        let p = Path::new("/etc/kfadmin/config.toml");
        let e = parse(&cli(), p, "[backup]\nkeep-daly = 7\n").unwrap_err();
        assert!(
            e.message.contains("keep-daly") && e.message.contains("/etc/kfadmin/config.toml"),
            "{}",
            e.message
        );
        let e = parse(&cli(), p, "[prune]\nkeep_daily = 7\n").unwrap_err();
        assert!(e.hint.unwrap().contains("keep-daily"));
        let e = parse(&cli(), p, "contaner = \"kf\"\n").unwrap_err();
        assert!(e.message.contains("contaner"));
        assert!(parse(&cli(), p, "[bakup]\nonline = true\n").unwrap_err().message.contains("[bakup]"));
        assert!(parse(&cli(), p, "dry-run = true\n").is_err());
        assert!(parse(&cli(), p, "[backup]\npassphrase = \"hunter2\"\n")
            .unwrap_err()
            .message
            .contains("never"));
        let f =
            parse(&cli(), p, "container = \"kf\"\nrepo = \"/b\"\n[prune]\nkeep-daily = 7\ndry-run = true\n")
                .unwrap();
        assert_eq!(f.tables["prune"].len(), 2);
    }
}
