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
    for sub in ["backup", "verify", "restore", "completions"] {
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
