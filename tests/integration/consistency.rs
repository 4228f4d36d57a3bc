//! Issue 19: one spelling everywhere, durations, JSON usage errors, names an operator can type.

use crate::util::*;

/// Item 1: `-r/--repo` everywhere archives are read or written; the old spellings are hidden
/// aliases that still work.
#[test]
fn repo_flag_everywhere_old_spellings_hidden() {
    for sub in ["backup", "restore", "verify", "list", "prune", "status", "drill", "import"] {
        let r = kfadmin([sub, "--help"]);
        r.ok().stdout_has("-r, --repo");
        for old in ["--out", "--backup-dir", "-o,"] {
            assert!(!r.stdout.contains(old), "{sub} --help still shows {old}:\n{}", r.stdout);
        }
    }
    let env = Env::new();
    let repo = env.path("repo");
    let db = env.data_dir("data", 1).join("keyfount.db");
    backup(&db, &repo);
    let repo_s = repo.to_str().unwrap();
    // Old spellings, hidden, still accepted.
    kfadmin(["list", "--out", repo_s, "--json"]).ok();
    kfadmin(["prune", "-o", repo_s, "--keep-last", "1", "--dry-run"]).ok();
    kfadmin(["verify", "--quick", "-r", repo_s]).ok();
}

/// Item 2: every duration flag takes a bare number of seconds or a number with a unit.
#[test]
fn durations_take_seconds_or_units() {
    let env = Env::new();
    let repo = env.path("repo");
    let db = env.data_dir("data", 1).join("keyfount.db");
    backup(&db, &repo);
    let (db_s, repo_s) = (db.to_str().unwrap(), repo.to_str().unwrap());
    for age in ["93600", "26h", "1d 2h"] {
        kfadmin(["status", "--db", db_s, "-r", repo_s, "--max-age", age]).ok();
    }
    kfadmin(["--lock-wait", "30", "list", "-r", repo_s]).ok();
    kfadmin(["--lock-wait", "30s", "list", "-r", repo_s]).ok();
    // Parsing only: a non-existent container fails later, after the flags parsed.
    for flag in ["--settle", "--health-timeout"] {
        for v in ["10", "10s", "1m"] {
            let r = kfadmin(["drill", "-c", "kf-no-such-container-i19", flag, v]);
            assert!(r.stderr.contains("no container is named"), "drill {flag} {v}: {}", r.stderr);
        }
    }
    let r =
        kfadmin(["backup", "--cold", "-c", "kf-no-such-container-i19", "--stop-timeout", "1m", "-r", repo_s]);
    assert!(r.stderr.contains("no container is named"), "--stop-timeout 1m: {}", r.stderr);
    kfadmin(["status", "--db", db_s, "--max-age", "26 parsecs"]).code(2);
    kfadmin(["status", "--db", db_s, "--max-age", "-5"]).code(2);
}

/// Item 3: `--json` on a usage error: exit 2 and exactly one JSON object on stdout.
#[test]
fn json_usage_errors() {
    for args in [
        vec!["verify", "--json", "--no-such-flag"],
        vec!["--json", "frobnicate"],
        vec!["backup", "--db", "x.db", "--json"],
        vec!["completions", "bash", "--json"],
    ] {
        let r = kfadmin(&args);
        r.code(2);
        let v = r.json();
        assert_eq!(v["ok"], false, "{args:?}: {v}");
        assert_eq!(v["error"]["kind"], "usage", "{args:?}: {v}");
        assert_eq!(v["error"]["exit_code"], 2, "{args:?}: {v}");
        assert!(r.stdout.trim().lines().count() == 1, "{args:?}: {}", r.stdout);
    }
    // Help and version are not errors.
    kfadmin(["--json", "--version"]).ok();
}

/// Item 5: `latest` and the bare name `list` prints are archives, resolved against the repository.
#[test]
fn latest_and_bare_names_resolve() {
    let env = Env::new();
    let repo = env.path("repo");
    let db = env.data_dir("data", 1).join("keyfount.db");
    let first = backup(&db, &repo);
    let repo_s = repo.to_str().unwrap();
    let name = std::path::Path::new(first["archive"].as_str().unwrap())
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    let listed = kfadmin(["list", "-r", repo_s]);
    listed.ok().stdout_has(&name);
    kfadmin(["verify", "--quick", "-r", repo_s, &name]).ok().stdout_has(&name);
    kfadmin(["verify", "--quick", "-r", repo_s, "latest"]).ok().stdout_has(&name);
    let r = kfadmin(["verify", "--quick", "-r", repo_s, "nope.tar.gz"]);
    r.code(2).stderr_has("nope.tar.gz");
}

/// Item 6: `verify` with no archive checks the whole repository; sidecars given by a glob are skipped.
#[test]
fn verify_whole_repository() {
    let env = Env::new();
    let repo = env.path("repo");
    let db = env.data_dir("data", 1).join("keyfount.db");
    let a = backup(&db, &repo);
    std::thread::sleep(std::time::Duration::from_millis(1100));
    backup(&db, &repo);
    let repo_s = repo.to_str().unwrap();
    let v = kfadmin(["verify", "--quick", "-r", repo_s, "--json"]);
    v.ok();
    assert_eq!(v.json()["archives"].as_array().unwrap().len(), 2, "{}", v.stdout);
    // A glob over the directory: sidecars are not archives.
    let all: Vec<String> =
        ls(&repo).into_iter().map(|n| repo.join(n).to_string_lossy().into_owned()).collect();
    assert!(all.iter().any(|n| n.ends_with(".sha256")));
    let mut args = vec!["verify".to_owned(), "--quick".to_owned(), "--json".to_owned()];
    args.extend(all);
    let v = kfadmin(&args);
    v.ok();
    assert_eq!(v.json()["archives"].as_array().unwrap().len(), 2, "{}", v.stdout);
    // One damaged archive: exit 3.
    let path = a["archive"].as_str().unwrap();
    let mut bytes = std::fs::read(path).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(path, bytes).unwrap();
    kfadmin(["verify", "--quick", "-r", repo_s]).code(3);
}

/// Item 12: a run removes its lock files when it ends, and stale ones are swept; a lock another
/// run holds is never removed.
#[test]
fn lock_files_do_not_accumulate() {
    let env = Env::new();
    let (state, locks) = private_state(&env);
    for i in 0..20 {
        std::fs::write(locks.join(format!("dir-stale{i}.lock")), "pid=1\ncommand=kfadmin backup\n").unwrap();
    }
    let db = env.data_dir("data", 1).join("keyfount.db");
    let repo = env.path("repo");
    let st = state.to_str().unwrap();
    for args in [
        vec!["backup", "--online", "--db", db.to_str().unwrap(), "-r", repo.to_str().unwrap()],
        vec!["prune", "-r", repo.to_str().unwrap(), "--keep-last", "1"],
        vec!["list", "-r", repo.to_str().unwrap()],
    ] {
        crate::dock::kfadmin_env(&[("KFADMIN_STATE_DIR", st)], &args).ok();
        assert_eq!(ls(&locks), Vec::<String>::new(), "after {args:?}");
    }
    // A lock held by a live run stays while it runs.
    let held = locks.join("dir-held.lock");
    let f = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(&held).unwrap();
    rustix::fs::flock(&f, rustix::fs::FlockOperation::LockExclusive).unwrap();
    crate::dock::kfadmin_env(&[("KFADMIN_STATE_DIR", st)], ["list", "-r", repo.to_str().unwrap()]).ok();
    assert_eq!(ls(&locks), vec!["dir-held.lock".to_string()]);
}

/// Item 10: KFADMIN_PASSPHRASE without --passphrase never writes a plaintext archive silently.
#[test]
fn passphrase_variable_without_flag_is_refused() {
    let env = Env::new();
    let db = env.data_dir("data", 1).join("keyfount.db");
    let repo = env.path("repo");
    let args = ["backup", "--online", "--db", db.to_str().unwrap(), "-r", repo.to_str().unwrap()];
    let r = crate::dock::kfadmin_env(&[("KFADMIN_PASSPHRASE", "correct horse battery")], args);
    r.code(2).stderr_has("--passphrase");
    assert!(ls(&repo).iter().all(|n| !n.contains(".tar.gz")), "{:?}", ls(&repo));
    let with = [&args[..], &["--passphrase"]].concat();
    crate::dock::kfadmin_env(&[("KFADMIN_PASSPHRASE", "correct horse battery")], with).ok();
    assert!(ls(&repo).iter().any(|n| n.ends_with(".tar.gz.age")), "{:?}", ls(&repo));
}

/// Item 14: `prune --dry-run` removes nothing, so it does not wait for a backup's lock (as
/// `list`, `status` and `verify` do not); a real prune still does.
#[test]
fn prune_dry_run_does_not_wait_for_a_lock() {
    let env = Env::new();
    let db = env.data_dir("data", 1).join("keyfount.db");
    let repo = env.path("repo");
    backup(&db, &repo);
    let (state, locks) = private_state(&env);
    let key = kfadmin::lock::Key::dir("backup directory", &repo);
    let f = std::fs::File::create(locks.join(key.file_name())).unwrap();
    rustix::fs::flock(&f, rustix::fs::FlockOperation::LockExclusive).unwrap();
    let st = state.to_str().unwrap();
    let r = repo.to_str().unwrap();
    let env_ = [("KFADMIN_STATE_DIR", st), ("KFADMIN_LOCK_WAIT", "0")];
    crate::dock::kfadmin_env(&env_, ["prune", "-r", r, "--keep-last", "1", "--dry-run"]).ok();
    crate::dock::kfadmin_env(&env_, ["prune", "-r", r, "--keep-last", "1"]).code(1).stderr_has("in use");
}

/// Item 4 (in part): a malformed --ping-url is a usage error at start, not a warning at the
/// end; import --help does not advertise --to, which import does not take.
#[test]
fn ping_url_checked_at_start_and_import_help_honest() {
    let env = Env::new();
    let db = env.data_dir("data", 1).join("keyfount.db");
    let repo = env.path("repo");
    for bad in ["not a url", "ftp://monitor.example/x", "http://"] {
        let args = [
            "backup",
            "--online",
            "--db",
            db.to_str().unwrap(),
            "-r",
            repo.to_str().unwrap(),
            "--ping-url",
            bad,
        ];
        kfadmin(args).code(2).stderr_has("--ping-url");
        assert!(ls(&repo).is_empty(), "{bad}: {:?}", ls(&repo));
    }
    let help = kfadmin(["import", "--help"]);
    assert!(!help.ok().stdout.contains("--to"), "{}", help.stdout);
}

/// Item 13: every metric kfadmin writes is documented in the runbook.
#[test]
fn every_metric_name_is_documented() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let src = std::fs::read_to_string(root.join("src/monitor.rs")).unwrap();
    let runbook = std::fs::read_to_string(root.join("docs/runbook.md")).unwrap();
    let mut names: Vec<&str> = src
        .split('"')
        .filter(|s| s.starts_with("kfadmin_") && s.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'))
        .collect();
    names.extend(src.split("NAME: &str = \"").skip(1).filter_map(|s| s.split('"').next()));
    assert!(names.len() >= 10, "{names:?}");
    for n in names {
        let named = runbook.contains(&format!("`{n}`")) || runbook.contains(&format!("`{n}{{"));
        assert!(named, "metric {n} is not in docs/runbook.md");
    }
}

/// Item 15 (in part): the libc calls rustix has a safe API for are made through rustix.
#[test]
fn no_unsafe_libc_where_rustix_has_a_safe_api() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut dirs = vec![root];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                dirs.push(p);
                continue;
            }
            let text = std::fs::read_to_string(&p).unwrap_or_default();
            for call in [
                "geteuid(",
                "flock(",
                "statvfs(",
                "ioctl(",
                "getpriority(",
                "setpriority(",
                "kill(",
                "renameat2(",
            ] {
                assert!(!text.contains(&format!("libc::{call}")), "{}: libc::{call}", p.display());
            }
        }
    }
}

/// A private state directory (KFADMIN_STATE_DIR) with its locks directory, both 0700.
fn private_state(env: &Env) -> (std::path::PathBuf, std::path::PathBuf) {
    let state = env.path("state");
    let locks = state.join("locks");
    std::fs::create_dir_all(&locks).unwrap();
    for d in [&state, &locks] {
        std::fs::set_permissions(d, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    }
    (state, locks)
}
