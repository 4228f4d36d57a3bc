//! Issue 19, "set up once": the configuration file, `config show`, `schedule`, `--dry-run`,
//! command-specific environment variables, dynamic completions.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::util::*;

/// kfadmin with these environment variables (and nothing from the caller's KFADMIN_CONFIG).
fn kf(vars: &[(&str, &str)], args: &[&str]) -> Run {
    Command::new(kfadmin_bin())
        .env_remove("KFADMIN_BACKUP_DIR")
        .env_remove("KFADMIN_REPO")
        .env("KFADMIN_CONFIG", "")
        .envs(vars.iter().copied())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
        .into()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn mode(p: &Path) -> u32 {
    std::fs::symlink_metadata(p).unwrap().mode() & 0o7777
}

fn write_config(path: &Path, text: &str, mode: u32) {
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// Item 9: `schedule` prints and, with --install, writes (0644, atomically) and enables the
/// runbook's jobs with the binary's absolute path; a second run changes nothing; a file kfadmin
/// did not write is never replaced without --force; systemd accepts the units; the cron line
/// runs under cron's own PATH.
#[test]
fn schedule_installs_jobs_with_absolute_paths_idempotently_and_never_over_a_foreign_file() {
    let env = Env::new();
    let bin = std::fs::canonicalize(kfadmin_bin()).unwrap();
    let bin_s = bin.to_str().unwrap().to_string();
    let repo = env.path("repo");

    // Printed, not written.
    let root = env.path("root");
    let r =
        kf(&[], &["schedule", "--container", "keyfount", "--init", "systemd", "--root", s(&root), "--json"]);
    r.ok();
    let j = r.json();
    assert_eq!(j["installed"], false);
    assert!(!root.exists(), "schedule without --install wrote something");
    let files = j["files"].as_array().unwrap();
    let names: Vec<&str> = files.iter().map(|f| f["path"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "/etc/systemd/system/kfadmin-backup.service",
            "/etc/systemd/system/kfadmin-backup.timer",
            "/etc/systemd/system/kfadmin-drill.service",
            "/etc/systemd/system/kfadmin-drill.timer"
        ]
    );

    // systemd: written, enabled by its links, accepted by systemd-analyze.
    let args = [
        "schedule",
        "-c",
        "keyfount",
        "--repo",
        s(&repo),
        "--init",
        "systemd",
        "--install",
        "--root",
        s(&root),
    ];
    let r = kf(&[], &args);
    r.ok();
    let units = root.join("etc/systemd/system");
    let service = std::fs::read_to_string(units.join("kfadmin-backup.service")).unwrap();
    assert!(
        service.contains(&format!(
            "ExecStart={bin_s} backup --online --container keyfount --repo {} --quiet",
            s(&repo)
        )),
        "{service}"
    );
    assert!(service.contains(&format!("ExecStartPost={bin_s} prune --repo {}", s(&repo))), "{service}");
    for line in service.lines().filter(|l| l.starts_with("Exec")) {
        let cmd = line.split_once('=').unwrap().1.trim_start_matches('-');
        assert!(cmd.starts_with('/'), "not an absolute path: {line}");
    }
    for f in
        ["kfadmin-backup.service", "kfadmin-backup.timer", "kfadmin-drill.service", "kfadmin-drill.timer"]
    {
        assert_eq!(mode(&units.join(f)), 0o644, "{f}");
        assert_eq!(std::fs::metadata(units.join(f)).unwrap().uid(), rustix_euid());
    }
    for t in ["kfadmin-backup.timer", "kfadmin-drill.timer"] {
        let link = units.join("timers.target.wants").join(t);
        assert_eq!(std::fs::read_link(&link).unwrap(), Path::new("/etc/systemd/system").join(t));
    }
    if which("systemd-analyze") {
        let paths: Vec<PathBuf> =
            std::fs::read_dir(&units).unwrap().map(|e| e.unwrap().path()).filter(|p| p.is_file()).collect();
        let out = Command::new("systemd-analyze").arg("verify").args(&paths).output().unwrap();
        assert!(out.status.success(), "systemd-analyze verify: {}", String::from_utf8_lossy(&out.stderr));
    }

    // Again: nothing changes (same inode, same content).
    let before = std::fs::metadata(units.join("kfadmin-backup.service")).unwrap().ino();
    let r = kf(&[], &[&args[..], &["--json"]].concat());
    r.ok();
    let j = r.json();
    assert!(j["written"].as_array().unwrap().iter().all(|w| w["action"] == "unchanged"), "{j}");
    assert_eq!(std::fs::metadata(units.join("kfadmin-backup.service")).unwrap().ino(), before);

    // A changed option replaces kfadmin's own files.
    let r = kf(&[], &[&args[..], &["--at", "02:15", "--json"]].concat());
    r.ok();
    let timer = std::fs::read_to_string(units.join("kfadmin-backup.timer")).unwrap();
    assert!(timer.contains("OnCalendar=*-*-* 02:15:00"), "{timer}");
    assert!(std::fs::read_to_string(units.join("kfadmin-drill.timer"))
        .unwrap()
        .contains("Sun *-*-* 03:45:00"));

    // A file kfadmin did not write is left alone (exit 2, nothing written), unless --force.
    let theirs = "[Unit]\nDescription=the admin's own drill\n";
    std::fs::write(units.join("kfadmin-drill.service"), theirs).unwrap();
    let r = kf(&[], &[&args[..], &["--at", "01:00"]].concat());
    r.code(2).stderr_has("was not written by kfadmin schedule").stderr_has("--force");
    assert_eq!(std::fs::read_to_string(units.join("kfadmin-drill.service")).unwrap(), theirs);
    assert!(
        timer == std::fs::read_to_string(units.join("kfadmin-backup.timer")).unwrap(),
        "a file was written"
    );
    // A link is not kfadmin's either.
    std::fs::remove_file(units.join("kfadmin-drill.service")).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", units.join("kfadmin-drill.service")).unwrap();
    kf(&[], &args).code(2);
    kf(&[], &[&args[..], &["--force"]].concat()).ok();
    assert!(std::fs::symlink_metadata(units.join("kfadmin-drill.service")).unwrap().file_type().is_file());
    assert!(std::fs::read_to_string(units.join("kfadmin-drill.service"))
        .unwrap()
        .starts_with("# Written by kfadmin"));

    // --no-drill takes kfadmin's drill units away (and their link), nothing else.
    let r = kf(&[], &[&args[..], &["--no-drill", "--json"]].concat());
    r.ok();
    assert!(!units.join("kfadmin-drill.timer").exists() && !units.join("kfadmin-drill.service").exists());
    assert!(std::fs::symlink_metadata(units.join("timers.target.wants/kfadmin-drill.timer")).is_err());
    assert!(units.join("kfadmin-backup.timer").exists());
    assert!(std::fs::symlink_metadata(units.join("timers.target.wants/kfadmin-backup.timer")).is_ok());
    assert_eq!(r.stdout.matches("\"removed\"").count(), 2, "{}", r.stdout);
    kf(&[], &[&args[..], &["--force"]].concat()).ok();
    assert!(units.join("kfadmin-drill.timer").exists());

    // Cron, where systemd does not run: one file, 0644, lines that run under cron's PATH.
    let croot = env.path("croot");
    let cargs =
        ["schedule", "-c", "keyfount", "--repo", s(&repo), "--install", "--root", s(&croot), "--json"];
    let r = kf(&[], &cargs);
    r.ok();
    assert_eq!(r.json()["init"], "cron", "no /run/systemd/system under the root: cron");
    let cron = croot.join("etc/cron.d/kfadmin");
    assert_eq!(mode(&cron), 0o644);
    let text = std::fs::read_to_string(&cron).unwrap();
    let jobs: Vec<&str> = text.lines().filter(|l| !l.starts_with('#') && l.contains(" root ")).collect();
    assert_eq!(jobs.len(), 2, "{text}");
    for job in &jobs {
        let cmd = job.split_once(" root ").unwrap().1.trim();
        assert!(cmd.starts_with(&bin_s), "{job}");
        for part in cmd.split("&&") {
            assert!(part.trim().starts_with(&bin_s), "{job}");
        }
    }
    // The prune job of the cron line, run as cron runs it: no /usr/local/bin, no kfadmin on PATH.
    std::fs::create_dir_all(&repo).unwrap();
    std::fs::set_permissions(&repo, std::fs::Permissions::from_mode(0o700)).unwrap();
    let prune = jobs[0].split("&&").nth(1).unwrap().trim();
    let out = Command::new("/bin/sh")
        .args(["-c", prune])
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("KFADMIN_CONFIG", "")
        .env("KFADMIN_STATE_DIR", env.path("state"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{prune}: {}", String::from_utf8_lossy(&out.stderr));
    let r = kf(&[], &cargs);
    r.ok();
    assert!(r.json()["written"][0]["action"] == "unchanged");
    // Systemd timers where kfadmin's cron file is: the cron file goes (never both).
    let r = kf(
        &[],
        &["schedule", "-c", "keyfount", "--init", "systemd", "--install", "--root", s(&croot), "--json"],
    );
    r.ok();
    assert!(!cron.exists(), "the cron file stayed beside the timers");
    assert!(r.stdout.contains("\"removed\""));
    // And the other way round is refused while kfadmin's timers are there.
    kf(&[], &["schedule", "-c", "keyfount", "--init", "cron", "--install", "--root", s(&croot)])
        .code(2)
        .stderr_has("twice");

    // Run by a link (as /usr/local/bin/kfadmin often is), the jobs call the link, which an
    // upgrade that replaces its target keeps valid; a relative --repo is made absolute.
    let link_dir = env.path("usr-local-bin");
    std::fs::create_dir_all(&link_dir).unwrap();
    std::os::unix::fs::symlink(&bin, link_dir.join("kfadmin")).unwrap();
    let out = Command::new(link_dir.join("kfadmin"))
        .args(["schedule", "-c", "keyfount", "--init", "cron", "--repo", "rel/repo", "--json"])
        .env("KFADMIN_CONFIG", "")
        .current_dir(env.dir.path())
        .output()
        .unwrap();
    let r: Run = out.into();
    r.ok();
    let text = r.json()["files"][0]["content"].as_str().unwrap().to_string();
    let link = link_dir.join("kfadmin");
    assert!(text.contains(&format!("root  {} backup", s(&link))), "{text}");
    assert!(text.contains(&format!("--repo {}/rel/repo", s(env.dir.path()))), "{text}");

    // Timers on this very system while systemd does not run it: refused before anything is
    // written (only where systemd does not run here, so that the host's /etc is never touched).
    if !Path::new("/run/systemd/system").exists() {
        let before = std::fs::read_dir("/etc/systemd/system").map(|d| d.count()).unwrap_or(0);
        kf(&[], &["schedule", "-c", "keyfount", "--init", "systemd", "--install"])
            .code(2)
            .stderr_has("--init cron");
        assert_eq!(std::fs::read_dir("/etc/systemd/system").map(|d| d.count()).unwrap_or(0), before);
        assert!(!Path::new("/etc/systemd/system/kfadmin-backup.service").exists());
    }

    // Words no unit or cron line can carry as they are.
    kf(&[], &["schedule", "-c", "kf%n", "--root", s(&croot)]).code(2);
    kf(&[], &["schedule", "-c", "keyfount", "--repo", "/var/backups/a b", "--root", s(&croot)]).code(2);
    kf(&[], &["schedule", "-c", "keyfount", "--at", "25:00"]).code(2);
    // A backup job cannot write to S3 directly: refused, with where the S3 location goes.
    kf(&[], &["schedule", "-c", "keyfount", "--repo", "s3://kf-backups/host1"])
        .code(2)
        .stderr_has("[backup] to");
}

fn rustix_euid() -> u32 {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() }
}

fn which(prog: &str) -> bool {
    Command::new("sh").args(["-c", &format!("command -v {prog}")]).output().is_ok_and(|o| o.status.success())
}

/// Item 9: the runbook's cron lines call kfadmin by its absolute path (cron's PATH has no
/// /usr/local/bin: a bare `kfadmin` exits 127 there).
#[test]
fn the_runbooks_cron_lines_call_kfadmin_by_its_absolute_path() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let runbook = std::fs::read_to_string(root.join("docs/runbook.md")).unwrap();
    let mut found = 0;
    for line in runbook.lines() {
        // A cron.d line: five time fields, a user, a command.
        let words: Vec<&str> = line.trim().trim_matches(['(', ')', '`']).split_whitespace().collect();
        if words.len() > 6
            && words[5] == "root"
            && words[..5].iter().all(|w| w.chars().all(|c| "0123456789*/,-".contains(c)))
        {
            found += 1;
            // The command, and each one chained after it with && or ||, start with a path.
            let starts = std::iter::once(6)
                .chain((6..words.len()).filter(|&i| ["&&", "||", ";"].contains(&words[i - 1])));
            for i in starts {
                let w = words[i].trim_matches('`');
                assert!(
                    w.starts_with('/'),
                    "a cron line calls {w} by a bare name (cron's PATH has no /usr/local/bin): {line}"
                );
            }
        }
    }
    assert!(found >= 2, "the runbook shows no cron lines any more ({found})");
}

/// Item 8: flag > environment > file > default, through the real binary; `config show` says
/// where each setting came from; a setting that conflicts with a flag on the command line is
/// not applied (the flag wins).
#[test]
fn config_file_precedence_and_show_origin() {
    let env = Env::new();
    let db = env.data_dir("data", 1).join("keyfount.db");
    let conf = env.path("config.toml");
    let (from_file, from_env, from_flag) =
        (env.path("file-repo"), env.path("env-repo"), env.path("flag-repo"));
    write_config(
        &conf,
        &format!(
            "container = \"keyfount-from-file\"\nrepo = \"{}\"\n[backup]\nonline = true\nname = \"fromfile\"\ncompression-level = 1\n[prune]\nkeep-daily = 9\n",
            s(&from_file)
        ),
        0o600,
    );
    let c = s(&conf);
    let state = env.path("state");
    let st = s(&state);
    // File: repo, name, online from the file; the file's container is overridden by --db.
    let r = kf(&[("KFADMIN_CONFIG", c), ("KFADMIN_STATE_DIR", st)], &["backup", "--db", s(&db), "--json"]);
    r.ok();
    let a = r.json()["archive"].as_str().unwrap().to_string();
    assert!(a.starts_with(s(&from_file)) && a.contains("/fromfile-"), "{a}");
    // Environment over the file.
    let r = kf(
        &[("KFADMIN_CONFIG", c), ("KFADMIN_STATE_DIR", st), ("KFADMIN_REPO", s(&from_env))],
        &["backup", "--db", s(&db), "--json"],
    );
    r.ok();
    assert!(r.json()["archive"].as_str().unwrap().starts_with(s(&from_env)));
    // A flag over both.
    let r = kf(
        &[("KFADMIN_CONFIG", c), ("KFADMIN_STATE_DIR", st), ("KFADMIN_REPO", s(&from_env))],
        &["backup", "--db", s(&db), "--repo", s(&from_flag), "--name", "flag", "--json"],
    );
    r.ok();
    let a = r.json()["archive"].as_str().unwrap().to_string();
    assert!(a.starts_with(s(&from_flag)) && a.contains("/flag-"), "{a}");

    // A file's `online` never fights a `--cold` on the line (the flag wins: a cold backup is
    // tried, and fails for its own reason, not as a usage conflict).
    let r = kf(&[("KFADMIN_CONFIG", c), ("KFADMIN_STATE_DIR", st)], &["backup", "--cold", "--db", s(&db)]);
    r.code(2).stderr_has("--cold stops a container");

    // config show: every setting and its origin.
    let r = kf(&[("KFADMIN_CONFIG", c), ("KFADMIN_NICE", "3")], &["config", "show", "--json"]);
    r.ok();
    let j = r.json();
    assert_eq!(j["config_file"], c);
    let find = |cmd: &str, key: &str| {
        j["settings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["command"] == cmd && x["key"] == key)
            .unwrap_or_else(|| panic!("no {cmd}.{key} in {j}"))
            .clone()
    };
    let repo = find("backup", "repo");
    assert_eq!((repo["origin"].as_str(), repo["value"].as_str()), (Some("file"), Some(s(&from_file))));
    assert_eq!(repo["source"], c);
    let level = find("backup", "compression-level");
    assert_eq!((level["origin"].as_str(), level["value"].as_str()), (Some("file"), Some("1")));
    assert_eq!(level["source"], format!("{c} [backup]"));
    let nice = find("backup", "nice");
    assert_eq!(
        (nice["origin"].as_str(), nice["source"].as_str(), nice["value"].as_str()),
        (Some("env"), Some("KFADMIN_NICE"), Some("3"))
    );
    assert_eq!(find("restore", "settle")["origin"], "default");
    assert_eq!(find("prune", "keep-daily")["value"], "9");
    assert_eq!(find("prune", "keep-weekly")["origin"], "unset");
    // Settings the file gives every command (so config show too) are still the file's.
    write_config(&conf, "quiet = false\nlock-wait = 30\n", 0o600);
    let r = kf(&[("KFADMIN_CONFIG", c)], &["config", "show", "--command", "kfadmin", "--json"]);
    let quiet =
        r.json()["settings"].as_array().unwrap().iter().find(|x| x["key"] == "quiet").unwrap().clone();
    assert_eq!((quiet["origin"].as_str(), quiet["source"].as_str()), (Some("file"), Some(c)), "{quiet}");
    // A top-level name never filters list (it means the archives' name elsewhere).
    write_config(&conf, "name = \"kf\"\n", 0o600);
    let r = kf(&[("KFADMIN_CONFIG", c)], &["config", "show", "--command", "list", "--json"]);
    assert_eq!(
        r.json()["settings"].as_array().unwrap().iter().find(|x| x["key"] == "name").unwrap()["origin"],
        "unset"
    );
    let r = kf(&[("KFADMIN_CONFIG", c)], &["config", "show", "--command", "backup"]);
    r.ok().stdout_has(&format!("file {c}")).stdout_has("backup.name=kf");
}

/// Item 8: a configuration file others may read or write, or owned by another user, is refused;
/// a typo is an error naming the key and the file; a secret is never a value.
#[test]
fn config_file_refused_when_readable_by_others_foreign_or_mistyped() {
    let env = Env::new();
    let conf = env.path("config.toml");
    let c = s(&conf);
    let show =
        |vars: &[(&str, &str)]| kf(&[&[("KFADMIN_CONFIG", c)], vars].concat(), &["config", "show", "--json"]);
    write_config(&conf, "repo = \"/var/backups/keyfount\"\n", 0o644);
    let r = show(&[]);
    r.code(2).stderr_has("group or others").stderr_has("chmod 600");
    assert_eq!(r.json()["error"]["exit_code"], 2);
    // Every command refuses it, not only config show.
    kf(&[("KFADMIN_CONFIG", c)], &["list", "/nonexistent"]).code(2).stderr_has(c);
    std::fs::set_permissions(&conf, std::fs::Permissions::from_mode(0o620)).unwrap();
    show(&[]).code(2);
    std::fs::set_permissions(&conf, std::fs::Permissions::from_mode(0o600)).unwrap();
    show(&[]).ok();
    if is_root() {
        std::os::unix::fs::chown(&conf, Some(APP_UID), Some(APP_UID)).unwrap();
        show(&[]).code(2).stderr_has("owned by uid 1000");
        std::os::unix::fs::chown(&conf, Some(0), Some(0)).unwrap();
    }
    for (text, needle) in [
        ("[backup]\nkeep-daly = 7\n", "keep-daly"),
        ("[prune]\nkeep_daily = 7\n", "did you mean \"keep-daily\""),
        ("contaner = \"kf\"\n", "contaner"),
        ("[bakup]\nonline = true\n", "[bakup]"),
        ("[backup]\npassphrase = \"hunter2\"\n", "never"),
        ("dry-run = true\n", "[prune] dry-run"),
        ("repo = \n", "TOML"),
    ] {
        write_config(&conf, text, 0o600);
        let r = show(&[]);
        r.code(2).stderr_has(needle).stderr_has(c);
        assert!(!r.stdout.contains("hunter2") && !r.stderr.contains("hunter2"), "the secret was repeated");
    }
    // A value the option refuses names the file and the key.
    write_config(&conf, "[backup]\nnice = 40\n", 0o600);
    kf(&[("KFADMIN_CONFIG", c)], &["backup", "--online", "--db", "/nonexistent.db"])
        .code(2)
        .stderr_has(&format!("{c}: [backup] nice = 40"));
    // The runbook's example is a valid configuration.
    let runbook =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/runbook.md")).unwrap();
    let example = runbook.split("```toml\n").nth(1).unwrap().split("```").next().unwrap();
    write_config(&conf, example, 0o600);
    let r = show(&[]);
    r.ok();
    assert!(r.json()["settings"]
        .as_array()
        .unwrap()
        .iter()
        .any(|x| x["command"] == "drill" && x["key"] == "identity" && x["origin"] == "file"));
    // A named file that does not exist is an error; KFADMIN_CONFIG= (empty) reads none.
    kf(&[("KFADMIN_CONFIG", s(&env.path("missing.toml")))], &["config", "show"]).code(2);
    kf(&[("KFADMIN_CONFIG", "")], &["config", "show"]).ok().stdout_has("none");
}

/// Every file under `dir` (relative paths), to prove a dry run wrote nothing.
fn tree(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else { continue };
        for e in rd {
            let p = e.unwrap().path();
            out.push(p.strip_prefix(dir).unwrap().display().to_string());
            if p.is_dir() && !p.is_symlink() {
                todo.push(p);
            }
        }
    }
    out.sort();
    out
}

/// Item 11: `backup --dry-run` and `import --dry-run` say what they would do (JSON too) and touch
/// nothing: no archive, no repository directory, no staging, no lock file, no metrics, even with
/// a lock held by another run.
#[test]
fn backup_and_import_dry_runs_write_and_lock_nothing() {
    let env = Env::new();
    let data = env.data_dir("data", 1);
    let db = data.join("keyfount.db");
    let before = snapshot_tree(&data);
    let repo = env.path("repo");
    let state = env.path("state");
    std::fs::create_dir_all(&state).unwrap();
    let metrics = env.path("kf.prom");
    let vars = [("KFADMIN_STATE_DIR", s(&state))];
    let r = kf(
        &vars,
        &[
            "backup",
            "--online",
            "--db",
            s(&db),
            "--repo",
            s(&repo),
            "--metrics-file",
            s(&metrics),
            "--dry-run",
            "--json",
        ],
    );
    r.ok();
    let j = r.json();
    assert_eq!(j["dry_run"], true);
    let archive = j["archive"].as_str().unwrap();
    assert!(
        archive.starts_with(&format!("{}/keyfount-", s(&repo))) && archive.ends_with("-online.tar.gz"),
        "{j}"
    );
    assert!(j["steps"].as_array().unwrap().len() >= 2, "{j}");
    assert!(!repo.exists(), "a dry run created the repository");
    assert!(!metrics.exists(), "a dry run wrote metrics");
    assert_eq!(tree(&state), Vec::<String>::new(), "a dry run left something in the state directory");
    assert_eq!(snapshot_tree(&data), before, "a dry run changed the data directory");
    // Human text, and what a real backup would refuse is refused by the dry run too.
    kf(&vars, &["backup", "--online", "--db", s(&db), "--repo", s(&repo), "--dry-run"])
        .ok()
        .stdout_has("Dry run: nothing was changed");
    kf(&vars, &["backup", "--online", "--db", s(&env.path("nope.db")), "--dry-run"]).code(2);
    kf(&vars, &["backup", "--online", "--db", s(&db), "--name", "../x", "--dry-run"]).code(2);
    kf(&vars, &["backup", "--online", "--db", s(&db), "--encrypt-to", "age1notakey", "--dry-run"]).code(2);
    assert_eq!(tree(&state), Vec::<String>::new());

    // A lock held by another run does not make a dry run wait (it takes none).
    let locks = state.join("locks");
    std::fs::create_dir_all(&locks).unwrap();
    let key = kfadmin::lock::Key::dir("backup directory", &repo);
    let f = std::fs::File::create(locks.join(key.file_name())).unwrap();
    rustix::fs::flock(&f, rustix::fs::FlockOperation::LockExclusive).unwrap();
    let held = [("KFADMIN_STATE_DIR", s(&state)), ("KFADMIN_LOCK_WAIT", "0")];
    kf(&held, &["backup", "--online", "--db", s(&db), "--repo", s(&repo), "--dry-run"]).ok();
    kf(&held, &["backup", "--online", "--db", s(&db), "--repo", s(&repo)]).code(1).stderr_has("in use");
    drop(f);

    // Import: the tarball is not unpacked, nothing written.
    let tarball = env.path("old.tar.gz");
    let st = Command::new("tar")
        .arg("czf")
        .arg(&tarball)
        .arg("-C")
        .arg(&data)
        .arg("keyfount.db")
        .status()
        .unwrap();
    assert!(st.success());
    let state2 = env.path("state2");
    std::fs::create_dir_all(&state2).unwrap();
    let r = kf(
        &[("KFADMIN_STATE_DIR", s(&state2))],
        &["import", s(&tarball), "--repo", s(&repo), "--dry-run", "--json"],
    );
    r.ok();
    let j = r.json();
    assert_eq!((j["dry_run"].as_bool(), j["name"].as_str()), (Some(true), Some("old")), "{j}");
    assert!(!repo.exists(), "an import dry run created the repository");
    assert_eq!(tree(&state2), Vec::<String>::new());
    kf(&[("KFADMIN_STATE_DIR", s(&state2))], &["import", s(&env.path("none.tgz")), "--dry-run"]).code(2);
}

/// Item 11, with a real engine: a cold `backup --dry-run` never stops the container, and a
/// `drill --dry-run` creates no container or volume; both name what they would do.
#[test]
fn cold_backup_and_drill_dry_runs_never_stop_or_create_a_container() {
    use crate::dock::{Kf, Spec};
    let env = Env::new();
    let c = Kf::start(&env, "dry", Spec { init_mb: 1, rate: 20, ..Spec::default() });
    let state = env.path("state");
    std::fs::create_dir_all(&state).unwrap();
    let repo = env.path("repo");
    let vars = [("KFADMIN_STATE_DIR", s(&state))];
    let started_at = c.started_at();
    let r =
        kf(&vars, &["backup", "--cold", "--container", &c.name, "--repo", s(&repo), "--dry-run", "--json"]);
    r.ok();
    let j = r.json();
    assert_eq!(j["mode"], "cold");
    assert!(j["steps"][0].as_str().unwrap().starts_with(&format!("stop container {}", c.name)), "{j}");
    assert!(c.running() && c.started_at() == started_at, "a dry run stopped the container");
    assert!(!repo.exists());
    assert_eq!(tree(&state), Vec::<String>::new(), "a dry run left a journal, lock or staging directory");

    // A real backup, then a drill dry run: it names the archive, creates nothing.
    let real = env.path("real");
    kf(&vars, &["backup", "--online", "--container", &c.name, "--repo", s(&real), "--quiet"]).ok();
    let state2 = env.path("state2");
    std::fs::create_dir_all(&state2).unwrap();
    let r = kf(
        &[("KFADMIN_STATE_DIR", s(&state2))],
        &["drill", "--container", &c.name, "--repo", s(&real), "--dry-run", "--json"],
    );
    r.ok();
    let j = r.json();
    assert_eq!(j["dry_run"], true);
    assert_eq!(j["candidates"].as_array().unwrap().len(), 1, "{j}");
    let d = crate::dock::docker();
    let filters =
        std::collections::HashMap::from([("label", vec![format!("kfadmin.drill.container={}", c.name)])]);
    let opts = bollard::query_parameters::ListContainersOptionsBuilder::default()
        .all(true)
        .filters(&filters)
        .build();
    assert!(
        crate::dock::block(d.list_containers(Some(opts))).unwrap().is_empty(),
        "a drill dry run created a container"
    );
    let opts = bollard::query_parameters::ListVolumesOptionsBuilder::default().filters(&filters).build();
    assert!(crate::dock::block(d.list_volumes(Some(opts))).unwrap().volumes.unwrap_or_default().is_empty());
    assert_eq!(tree(&state2), Vec::<String>::new());
    assert!(c.running() && c.started_at() == started_at);
    // Nothing to drill is said by the dry run as by the drill.
    kf(&vars, &["drill", "--container", &c.name, "--repo", s(&env.path("empty")), "--dry-run"]).code(2);
}

/// Item 10: a variable never means different things to different commands. `--dry-run` and
/// `list --name` have variables of their own; the old shared `KFADMIN_DRY_RUN` is refused by
/// restore and prune (ignoring it would make a prune meant as a dry run a real one) and left
/// alone by backup; `KFADMIN_NAME` (the archives' name for backup) no longer filters `list`.
#[test]
fn environment_variables_mean_one_thing_per_command() {
    use clap::CommandFactory;
    let cmd = kfadmin::cli::Cli::command();
    let mut by_var: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for sub in cmd.get_subcommands() {
        for a in sub.get_arguments() {
            if let Some(e) = a.get_env() {
                by_var.entry(e.to_string_lossy().into_owned()).or_default().push(format!(
                    "{} --{}",
                    sub.get_name(),
                    a.get_long().unwrap_or(a.get_id().as_str())
                ));
            }
        }
    }
    for (var, users) in &by_var {
        let flags: std::collections::BTreeSet<&str> =
            users.iter().map(|u| u.split_once(' ').unwrap().1).collect();
        assert!(flags.len() == 1, "{var} sets different options in different commands: {users:?}");
        if var.contains("DRY_RUN") || var == "KFADMIN_FORCE" || var == "KFADMIN_YES" {
            assert_eq!(users.len(), 1, "{var} is shared: {users:?}");
        }
    }
    assert_eq!(by_var["KFADMIN_LIST_NAME"], ["list --name"]);
    assert!(!by_var["KFADMIN_NAME"].iter().any(|u| u.starts_with("list ")));

    let env = Env::new();
    let db = env.data_dir("data", 1).join("keyfount.db");
    let repo = env.path("repo");
    let state = env.path("state");
    let st = s(&state);
    let r = kf(
        &[("KFADMIN_STATE_DIR", st)],
        &["backup", "--online", "--db", s(&db), "--repo", s(&repo), "--json"],
    );
    r.ok();
    kf(
        &[("KFADMIN_STATE_DIR", st)],
        &["backup", "--online", "--db", s(&db), "--repo", s(&repo), "--name", "other"],
    )
    .ok();
    let archives = ls(&repo).into_iter().filter(|n| n.ends_with(".tar.gz")).count();
    assert_eq!(archives, 2);
    // The old variable: refused by prune and restore, with the new name in the hint; nothing removed.
    let old = [("KFADMIN_STATE_DIR", st), ("KFADMIN_DRY_RUN", "1")];
    kf(&old, &["prune", "-r", s(&repo), "--keep-last", "1"]).code(2).stderr_has("KFADMIN_PRUNE_DRY_RUN");
    let a = r.json()["archive"].as_str().unwrap().to_string();
    kf(&old, &["restore", &a, "--data-dir", s(&env.path("data2"))])
        .code(2)
        .stderr_has("KFADMIN_RESTORE_DRY_RUN");
    assert_eq!(ls(&repo).into_iter().filter(|n| n.ends_with(".tar.gz")).count(), 2);
    // With --dry-run given there is nothing to misread.
    kf(&old, &["prune", "-r", s(&repo), "--keep-last", "1", "--dry-run"]).ok();
    // Backup never read it: it still backs up.
    kf(&old, &["backup", "--online", "--db", s(&db), "--repo", s(&repo), "--quiet"]).ok();
    // The new, command-specific ones.
    let r = kf(
        &[("KFADMIN_STATE_DIR", st), ("KFADMIN_PRUNE_DRY_RUN", "1")],
        &["prune", "-r", s(&repo), "--keep-last", "1", "--json"],
    );
    r.ok();
    assert_eq!(r.json()["dry_run"], true);
    assert_eq!(ls(&repo).into_iter().filter(|n| n.ends_with(".tar.gz")).count(), 3);
    // KFADMIN_NAME (set for backups) does not filter list; KFADMIN_LIST_NAME does.
    let r = kf(&[("KFADMIN_NAME", "other")], &["list", "-r", s(&repo), "--json"]);
    r.ok().stderr_has("KFADMIN_LIST_NAME");
    assert_eq!(r.json()["archives"].as_array().unwrap().len(), 3);
    let r = kf(&[("KFADMIN_LIST_NAME", "other")], &["list", "-r", s(&repo), "--json"]);
    assert_eq!(r.json()["archives"].as_array().unwrap().len(), 1);
}

/// Runs bash's completion for `words` (the last one being completed) with the generated
/// script, `kfadmin` on PATH being this binary; returns COMPREPLY.
fn bash_complete(env: &Env, words: &[&str], vars: &[(&str, &str)]) -> Vec<String> {
    let bin = env.path("bin");
    if !bin.exists() {
        std::fs::create_dir_all(&bin).unwrap();
        std::os::unix::fs::symlink(kfadmin_bin(), bin.join("kfadmin")).unwrap();
        let script = kf(&[], &["completions", "bash"]);
        script.ok();
        std::fs::write(env.path("kfadmin.bash"), &script.stdout).unwrap();
    }
    let quoted: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
    let cur = words.last().unwrap();
    let prev = words.get(words.len().saturating_sub(2)).copied().unwrap_or("");
    let line = words.join(" ");
    let script = format!(
        "source '{}'\nCOMP_WORDS=({})\nCOMP_CWORD={}\nCOMP_LINE='{line}'\nCOMP_POINT=${{#COMP_LINE}}\n_kfadmin_dynamic kfadmin '{cur}' '{prev}'\nprintf '%s\\n' \"${{COMPREPLY[@]}}\"\n",
        s(&env.path("kfadmin.bash")),
        quoted.join(" "),
        words.len() - 1
    );
    let path = format!("{}:{}", s(&bin), std::env::var("PATH").unwrap_or_default());
    let out = Command::new("bash")
        .args(["--norc", "-c", &script])
        .env("PATH", path)
        .env("KFADMIN_CONFIG", "")
        .env_remove("KFADMIN_REPO")
        .envs(vars.iter().copied())
        .output()
        .unwrap();
    assert!(out.status.success(), "bash: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).lines().filter(|l| !l.is_empty()).map(str::to_string).collect()
}

/// Item 7: bash completion, for real: container names from the engine after --container,
/// `latest` and the repository's archive names (as `list` prints them) for an ARCHIVE, archive
/// files for a path, and never a `.sha256` sidecar; options as before.
#[test]
fn bash_completes_containers_and_archives_never_sidecars() {
    use crate::dock::{Kf, Spec};
    let env = Env::new();
    let c = Kf::start(&env, "complete", Spec { init_mb: 1, rate: 10, ..Spec::default() });
    let repo = env.path("repo");
    let state = env.path("state");
    let vars = [("KFADMIN_STATE_DIR", s(&state))];
    let r = kf(&vars, &["backup", "--online", "--container", &c.name, "--repo", s(&repo), "--json"]);
    r.ok();
    let archive = PathBuf::from(r.json()["archive"].as_str().unwrap());
    let file = archive.file_name().unwrap().to_str().unwrap().to_string();
    assert!(repo.join(format!("{file}.sha256")).exists());

    let prefix = &c.name[..c.name.len() - 3];
    for words in [
        vec!["kfadmin", "restore", "latest", "--container", prefix],
        vec!["kfadmin", "backup", "--online", "-c", prefix],
        vec!["kfadmin", "drill", "--container", "=", prefix],
    ] {
        let got = bash_complete(&env, &words, &[]);
        assert_eq!(got, std::slice::from_ref(&c.name), "{words:?}");
    }
    // The forms the fish script calls.
    let r = kf(&[], &["__complete", "containers"]);
    r.ok();
    assert!(r.stdout.lines().any(|l| l == c.name), "{}", r.stdout);
    let r = kf(&[], &["__complete", "archives", "kfadmin", "verify", "-r", s(&repo)]);
    assert_eq!(r.stdout, format!("latest\n{file}\n"));
    // Archive names in the repository given on the line, or in KFADMIN_REPO.
    let got = bash_complete(&env, &["kfadmin", "verify", "-r", s(&repo), ""], &[]);
    assert_eq!(got, ["latest".to_string(), file.clone()]);
    let got = bash_complete(&env, &["kfadmin", "restore", ""], &[("KFADMIN_REPO", s(&repo))]);
    assert_eq!(got, ["latest".to_string(), file.clone()]);
    // A path: archive files and directories there, no sidecar.
    let got = bash_complete(&env, &["kfadmin", "verify", &format!("{}/", s(&repo))], &[]);
    assert_eq!(got, [s(&archive).to_string()]);
    // Everything else as the static script: options, and subcommands.
    let got = bash_complete(&env, &["kfadmin", "verify", "--qu"], &[]);
    assert_eq!(got, ["--quick", "--quiet"]);
    let got = bash_complete(&env, &["kfadmin", "sched"], &[]);
    assert_eq!(got, ["schedule"]);
    // fish, for real (`complete -C`), where fish is installed.
    if which("fish") {
        let script = kf(&[], &["completions", "fish"]).stdout;
        std::fs::write(env.path("kfadmin.fish"), script).unwrap();
        let fish = |line: &str| -> Vec<String> {
            let cmd = format!("source '{}'; complete -C '{line}'", s(&env.path("kfadmin.fish")));
            let out = Command::new("fish")
                .args(["--no-config", "-c", &cmd])
                .env("PATH", format!("{}:{}", s(&env.path("bin")), std::env::var("PATH").unwrap()))
                .env("KFADMIN_CONFIG", "")
                .env_remove("KFADMIN_REPO")
                .output()
                .unwrap();
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .map(|l| l.split('\t').next().unwrap().to_string())
                .collect()
        };
        assert_eq!(fish(&format!("kfadmin restore --container {prefix}")), std::slice::from_ref(&c.name));
        let mut got = fish(&format!("kfadmin verify -r {} ", s(&repo)));
        got.sort();
        assert_eq!(got, [file.clone(), "latest".to_string()]);
        assert_eq!(fish(&format!("kfadmin verify {}/", s(&repo))), [s(&archive).to_string()]);
    }
    // zsh: the script hands --container and ARCHIVE to kfadmin's functions, which ask kfadmin
    // (run here with compadd printing what it is given).
    let zscript = kf(&[], &["completions", "zsh"]).stdout;
    assert!(zscript.contains("--container=[The Keyfount container\\: a name, an id, or a Compose service name]:NAME:_kfadmin_containers'"));
    assert_eq!(zscript.matches(":_kfadmin_archives'").count(), 3, "verify, restore and drill");
    if which("zsh") {
        std::fs::write(env.path("_kfadmin"), &zscript).unwrap();
        let zsh = |buffer: &str, prefix: &str, func: &str| -> Vec<String> {
            let test = format!(
                "compadd() {{ print -rl -- \"${{(@P)${{@[-1]}}}}\" }}\ncompdef() {{ : }}\nsource '{}'\nBUFFER='{buffer}'\nPREFIX='{prefix}'\n{func}\n",
                s(&env.path("_kfadmin"))
            );
            let out = Command::new("zsh")
                .args(["-f", "-c", &test])
                .env("PATH", format!("{}:{}", s(&env.path("bin")), std::env::var("PATH").unwrap()))
                .env("KFADMIN_CONFIG", "")
                .env_remove("KFADMIN_REPO")
                .output()
                .unwrap();
            String::from_utf8_lossy(&out.stdout).lines().map(str::to_string).collect()
        };
        assert!(zsh("kfadmin backup -c ", "", "_kfadmin_containers").contains(&c.name));
        assert_eq!(
            zsh(&format!("kfadmin verify -r {} ", s(&repo)), "", "_kfadmin_archives"),
            ["latest".to_string(), file.clone()]
        );
        let dir = format!("{}/", s(&repo));
        assert_eq!(
            zsh(&format!("kfadmin verify {dir}"), &dir, "_kfadmin_archives"),
            [s(&archive).to_string()]
        );
    }
    // No sidecar anywhere in what a completion offered.
    for words in
        [vec!["kfadmin", "verify", "-r", s(&repo), "keyf"], vec!["kfadmin", "drill", "-r", s(&repo), ""]]
    {
        assert!(bash_complete(&env, &words, &[]).iter().all(|w| !w.ends_with(".sha256")));
    }
}

/// Item 8: root's configuration file (0600) run by another user: commands still run, saying that
/// its settings are not used; help and completion scripts say nothing; a file named by
/// KFADMIN_CONFIG that cannot be read is an error.
#[test]
fn a_configuration_file_another_user_cannot_read_is_named_not_fatal() {
    if !is_root() {
        return;
    }
    let env = Env::new();
    let conf = env.path("root-config.toml");
    write_config(&conf, "repo = \"/var/backups/keyfount\"\n", 0o600);
    let repo = env.path("repo");
    std::fs::create_dir_all(&repo).unwrap();
    std::os::unix::fs::chown(&repo, Some(APP_UID), Some(APP_UID)).unwrap();
    let as_app = |vars: &[(&str, &str)], args: &[&str]| -> Run {
        Command::new("setpriv")
            .args(["--reuid", "1000", "--regid", "1000", "--clear-groups", "--"])
            .arg(kfadmin_bin())
            .args(args)
            .env_remove("KFADMIN_CONFIG")
            .env("KFADMIN_TEST_DEFAULT_CONFIG", &conf)
            .env("KFADMIN_STATE_DIR", env.path("app-state"))
            .envs(vars.iter().copied())
            .stdin(Stdio::null())
            .output()
            .unwrap()
            .into()
    };
    let r = as_app(&[], &["list", "-r", s(&repo)]);
    r.ok().stderr_has("its settings are not used");
    let r = as_app(&[], &["completions", "bash"]);
    r.ok();
    assert!(!r.stderr.contains("warning"), "{}", r.stderr);
    as_app(&[], &["--help"]).ok();
    as_app(&[("KFADMIN_CONFIG", s(&conf))], &["list", "-r", s(&repo)])
        .code(2)
        .stderr_has("cannot read the configuration file");
}

/// Item 8: a secret is named by a file, never written in the configuration: `passphrase-file`
/// encrypts a backup and opens it again with no terminal and no KFADMIN_PASSPHRASE; a
/// passphrase file others may read is refused; a passphrase file without `--passphrase` would
/// write a plaintext archive and is refused.
#[test]
fn a_passphrase_file_named_in_the_configuration_encrypts_and_opens() {
    let env = Env::new();
    let db = env.data_dir("data", 1).join("keyfount.db");
    let repo = env.path("repo");
    let secret = env.path("passphrase");
    write_config(&secret, "correct horse battery staple\n", 0o600);
    let conf = env.path("config.toml");
    write_config(
        &conf,
        &format!(
            "repo = \"{}\"\npassphrase-file = \"{}\"\n[backup]\npassphrase = true\n",
            s(&repo),
            s(&secret)
        ),
        0o600,
    );
    let state = env.path("state");
    let vars = [("KFADMIN_CONFIG", s(&conf)), ("KFADMIN_STATE_DIR", s(&state))];
    let r = kf(&vars, &["backup", "--online", "--db", s(&db), "--json"]);
    r.ok();
    let j = r.json();
    assert_eq!(j["encrypted"], true, "{j}");
    let archive = j["archive"].as_str().unwrap().to_string();
    assert!(archive.ends_with(".tar.gz.age"));
    assert!(!r.stdout.contains("correct horse") && !r.stderr.contains("correct horse"));
    // Opened again with the same file: every check passes, the SQLite ones too.
    let r = kf(&vars, &["verify", &archive, "--json"]);
    r.ok();
    assert!(!r.stdout.contains("correct horse"));
    // Without it, the archive cannot be opened (exit 2: pass the key), not a damaged one.
    kf(&[("KFADMIN_STATE_DIR", s(&env.path("state")))], &["verify", &archive]).code(2);
    // A passphrase file others may read is refused.
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o644)).unwrap();
    kf(&vars, &["verify", &archive]).code(2).stderr_has("chmod 600");
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    // A passphrase file for a backup that is not asked to encrypt would mean a plaintext archive.
    kf(
        &[("KFADMIN_STATE_DIR", s(&env.path("state")))],
        &["backup", "--online", "--db", s(&db), "-r", s(&repo), "--passphrase-file", s(&secret)],
    )
    .code(2)
    .stderr_has("unencrypted");
    // Two passphrases: which one?
    kf(&[&vars[..], &[("KFADMIN_PASSPHRASE", "other")]].concat(), &["verify", &archive])
        .code(2)
        .stderr_has("both");
}
