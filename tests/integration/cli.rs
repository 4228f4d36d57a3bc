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
