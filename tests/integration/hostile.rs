//! The data directory as hostile input: a crashed rollback-mode server's hot journal, a
//! connection that holds no lock, links planted where a restore writes, and no plaintext
//! under `--out` when the backup is encrypted, even after kill -9.

use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use kfadmin::archive::writer::Compression;
use kfadmin::archive::{Mode, Source};
use kfadmin::ops::make::{self, ArchiveSpec};
use kfadmin::progress::{Notice, Progress, Silent};

use crate::util::*;

struct Quiet;

impl Notice for Quiet {
    fn progress(&self) -> &dyn Progress {
        &Silent
    }
    fn note(&self, _: &str) {}
    fn detail(&self, _: &str) {}
    fn warn(&self, _: &str) {}
}

/// An archive of a whole data directory (what a cold backup writes), made with the library.
pub fn archive_of_dir(env: &Env, src: &Path, tag: &str) -> PathBuf {
    let out = env.path(&format!("archives-{tag}"));
    std::fs::create_dir(&out).unwrap();
    archive_into(env, src, &out, tag).path
}

/// An archive of a whole data directory written into `out` by the library's writer alone.
pub fn archive_into(env: &Env, src: &Path, out: &Path, tag: &str) -> kfadmin::archive::writer::Written {
    let stage = env.path(&format!("stage-{tag}"));
    std::fs::create_dir(&stage).unwrap();
    let (mut files, _) = kfadmin::fsutil::copy_data_dir(src, &stage).unwrap();
    let db = Path::new("keyfount.db");
    files.sort_by_key(|c| (c.rel != db, c.rel.clone()));
    let source = Source {
        kind: "path".into(),
        path: src.display().to_string(),
        host: "test".into(),
        container: None,
        mounts: vec![],
    };
    let spec = ArchiveSpec {
        out,
        name: "keyfount",
        mode: Mode::Cold,
        source,
        created: std::time::SystemTime::now(),
        compression: Compression::default(),
        nice: 0,
    };
    make::make(&Quiet, &spec, &kfadmin::crypto::Encryption::None, &files).unwrap().written
}

fn sqlite3(db: &Path, script: &str) -> std::process::Output {
    let mut child = Command::new("sqlite3")
        .arg(db)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the sqlite3 shell (scripts/test.sh installs it)");
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), script.as_bytes()).unwrap();
    drop(child.stdin.take());
    child.wait_with_output().unwrap()
}

/// A server in rollback-journal mode killed in the middle of a transaction that had already
/// spilled pages into the database: a hot `-journal` beside a half-written database.
fn crash_mid_transaction(db: &Path) {
    sqlite3(
        db,
        "PRAGMA journal_mode=DELETE;\nPRAGMA cache_size=2;\nBEGIN;\n\
         UPDATE sync_blobs SET data = randomblob(length(data));\n.shell kill -9 $PPID\n",
    );
    let journal = db.with_file_name("keyfount.db-journal");
    assert!(std::fs::metadata(&journal).map(|m| m.len() > 0).unwrap_or(false), "no hot journal was left");
}

/// A hot journal stays beside the replaced database on today's code, and SQLite "rolls it
/// back" into the restored file on its first open: rows vanish, integrity fails. It must go
/// aside with the old database, which it belongs to.
#[test]
fn a_hot_journal_goes_aside_with_the_database_it_belongs_to() {
    let env = Env::new();
    let data = env.data_dir("data", 2);
    let db = data.join("keyfount.db");
    sqlite3(&db, "PRAGMA journal_mode=DELETE;\n");
    let report = backup(&db, &env.path("b"));
    let backed_up = report["database"]["tables"]["sync_blobs"].as_i64().unwrap();
    crash_mid_transaction(&db);

    let r = kfadmin([
        "restore",
        report["archive"].as_str().unwrap(),
        "--data-dir",
        data.to_str().unwrap(),
        "--yes",
        "--json",
    ]);
    r.ok();
    let j = r.json();
    assert!(
        !data.join("keyfount.db-journal").exists(),
        "a journal was left beside the restored database: {:?}",
        ls(&data)
    );
    let restored = check_db(&db, 0);
    assert_eq!(restored["blobs"].as_i64().unwrap(), backed_up, "{restored}");
    let moved: Vec<String> =
        j["moved_aside"].as_array().unwrap().iter().map(|p| p.as_str().unwrap().to_string()).collect();
    assert!(moved.iter().any(|p| p.ends_with("keyfount.db-journal")), "{j}");
    // The safety copy, database and journal together, opens as the database was before the crash.
    let safety = PathBuf::from(j["safety_dir"].as_str().unwrap());
    assert_eq!(ls(&safety), ["keyfount.db", "keyfount.db-journal"]);
    let copy = env.path("copy");
    std::fs::create_dir(&copy).unwrap();
    for n in ["keyfount.db", "keyfount.db-journal"] {
        std::fs::copy(safety.join(n), copy.join(n)).unwrap();
    }
    let out = sqlite3(&copy.join("keyfount.db"), "PRAGMA integrity_check;\n");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "ok");
    check_db(&copy.join("keyfount.db"), 0);
}

/// An idle connection in rollback-journal mode holds no lock at all; the restore must still see
/// that a process has the database open.
#[test]
fn a_restore_sees_an_idle_rollback_mode_connection() {
    let env = Env::new();
    let data = env.data_dir("data", 2);
    let db = data.join("keyfount.db");
    sqlite3(&db, "PRAGMA journal_mode=DELETE;\n");
    let report = backup(&db, &env.path("b"));
    let before = snapshot_tree(&data);
    let mut holder = Command::new("sqlite3")
        .arg(&db)
        .args(["SELECT count(*) FROM users;", ".shell sleep 60"])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !holds_open(holder.id(), &db) {
        assert!(Instant::now() < deadline, "sqlite3 never opened the database");
        std::thread::sleep(Duration::from_millis(20));
    }
    let r = kfadmin([
        "restore",
        report["archive"].as_str().unwrap(),
        "--data-dir",
        data.to_str().unwrap(),
        "--yes",
    ]);
    let _ = holder.kill();
    let _ = holder.wait();
    r.code(2).stderr_has("is open in process").stderr_has(&holder.id().to_string());
    assert_eq!(snapshot_tree(&data), before);
}

fn holds_open(pid: u32, file: &Path) -> bool {
    let want = std::fs::metadata(file).unwrap().ino();
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|rd| rd.flatten().any(|fd| std::fs::metadata(fd.path()).is_ok_and(|m| m.ino() == want)))
        .unwrap_or(false)
}

/// A data directory with a database, a sub-directory with an attachment, and a file of another
/// owner and mode.
fn rich_data_dir(env: &Env, tag: &str) -> PathBuf {
    let data = env.data_dir(tag, 1);
    let sub = data.join("attachments");
    std::fs::create_dir(&sub).unwrap();
    std::fs::write(sub.join("a.bin"), b"attachment").unwrap();
    std::fs::set_permissions(sub.join("a.bin"), std::fs::Permissions::from_mode(0o640)).unwrap();
    std::fs::set_permissions(&sub, std::fs::Permissions::from_mode(0o750)).unwrap();
    std::fs::write(data.join("config.json"), b"{}").unwrap();
    std::fs::set_permissions(data.join("config.json"), std::fs::Permissions::from_mode(0o644)).unwrap();
    env.give_to_app(&data);
    std::os::unix::fs::chown(data.join("config.json"), Some(1001), Some(1001)).unwrap();
    data
}

/// Links planted in the data directory (as a process in the container could) are never
/// followed: not into a linked sub-directory, not through a linked database or sidecar.
#[test]
fn links_in_the_data_directory_are_never_followed() {
    assert!(is_root(), "owners need root (CI runs as root)");
    let env = Env::new();
    let archive = archive_of_dir(&env, &rich_data_dir(&env, "src"), "rich");
    let archive = archive.to_str().unwrap();
    let victim = env.path("victim");
    std::fs::create_dir(&victim).unwrap();
    for (n, body) in [("a.bin", &b"precious"[..]), ("db", b"not yours"), ("wal", b"keep")] {
        std::fs::write(victim.join(n), body).unwrap();
    }
    let victim_before = (snapshot_tree(&victim), owners(&victim));

    // A linked sub-directory: refused, nothing changes anywhere.
    let data = env.data_dir("data", 1);
    symlink(&victim, data.join("attachments")).unwrap();
    let before = snapshot_tree(&data);
    kfadmin(["restore", archive, "--data-dir", data.to_str().unwrap(), "--yes"])
        .code(1)
        .stderr_has("attachments")
        .stderr_has("symbolic link");
    assert_eq!(snapshot_tree(&data), before);
    assert_eq!((snapshot_tree(&victim), owners(&victim)), victim_before);

    // A linked database and WAL: moved aside as links, their targets untouched.
    std::fs::remove_file(data.join("attachments")).unwrap();
    std::fs::remove_file(data.join("keyfount.db")).unwrap();
    symlink(victim.join("db"), data.join("keyfount.db")).unwrap();
    symlink(victim.join("wal"), data.join("keyfount.db-wal")).unwrap();
    let j =
        kfadmin(["restore", archive, "--data-dir", data.to_str().unwrap(), "--yes", "--json"]).ok().json();
    assert_eq!((snapshot_tree(&victim), owners(&victim)), victim_before);
    let db = data.join("keyfount.db");
    assert!(db.symlink_metadata().unwrap().is_file());
    check_db(&db, 0);
    let safety = PathBuf::from(j["safety_dir"].as_str().unwrap());
    for n in ["keyfount.db", "keyfount.db-wal"] {
        assert!(safety.join(n).symlink_metadata().unwrap().file_type().is_symlink(), "{n}");
    }
}

/// Every restored file and directory gets the owner and mode the manifest recorded (the
/// database's owner mapped to the one it replaces), not the database's, and not root's.
#[test]
fn restored_files_and_directories_keep_their_own_owner_and_mode() {
    assert!(is_root(), "owners need root (CI runs as root)");
    let env = Env::new();
    let src = rich_data_dir(&env, "src");
    let archive = archive_of_dir(&env, &src, "rich");
    let fresh = env.path("fresh");
    kfadmin(["restore", archive.to_str().unwrap(), "--data-dir", fresh.to_str().unwrap(), "--yes"]).ok();
    let want = |p: &Path| {
        let m = p.symlink_metadata().unwrap();
        (m.uid(), m.gid(), m.mode() & 0o777)
    };
    for rel in ["", "keyfount.db", "attachments", "attachments/a.bin", "config.json"] {
        assert_eq!(want(&fresh.join(rel)), want(&src.join(rel)), "{rel:?}");
    }
    assert_eq!(std::fs::read(fresh.join("attachments/a.bin")).unwrap(), b"attachment");
}

/// An encrypted backup killed at any moment leaves no plaintext byte of the database under
/// `--out`; its private staging copy is removed by the next run.
#[test]
fn an_encrypted_backup_never_puts_plaintext_under_out() {
    let env = Env::new();
    let data = env.data_dir("data", 24);
    let db = data.join("keyfount.db");
    let key = age::x25519::Identity::generate().to_public().to_string();
    let out = env.path("out");
    let tmp = env.path("tmp");
    std::fs::create_dir(&tmp).unwrap();
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o700)).unwrap();
    let args = |extra: &[&str]| {
        let mut a: Vec<String> =
            ["backup", "--online", "--db", db.to_str().unwrap(), "--out", out.to_str().unwrap()]
                .iter()
                .map(|s| s.to_string())
                .collect();
        a.extend(["--tmp-dir".into(), tmp.to_str().unwrap().into(), "--encrypt-to".into(), key.clone()]);
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    };
    for point in ["backup.snapshot", "make.write", "make.written"] {
        let r = Command::new(kfadmin_bin())
            .args(args(&[]))
            .env("KFADMIN_TEST_FAULT", format!("{point}:kill"))
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert_eq!(r.status.code(), None, "{point}: killed by SIGKILL");
        assert_no_plaintext(&out, point);
        assert!(!ls(&tmp).is_empty(), "{point}: the killed run's staging copy is there");
    }
    kfadmin(args(&[])).ok();
    assert_no_plaintext(&out, "after");
    assert!(ls(&tmp).is_empty(), "the next run sweeps dead staging copies: {:?}", ls(&tmp));
}

fn assert_no_plaintext(dir: &Path, when: &str) {
    for n in ls(dir) {
        let p = dir.join(&n);
        assert!(p.symlink_metadata().unwrap().is_file(), "{when}: {n} under --out is not a file");
        let bytes = std::fs::read(&p).unwrap();
        assert!(
            !bytes.windows(16).any(|w| w == b"SQLite format 3\0"),
            "{when}: {n} under --out holds a plaintext database"
        );
        assert!(!n.ends_with(".tar.gz"), "{when}: {n} is an unencrypted archive");
    }
}

/// The data directory without kfadmin's own entries (safety copies, staging).
fn user_tree(dir: &Path) -> std::collections::BTreeMap<String, String> {
    snapshot_tree(dir).into_iter().filter(|(k, _)| !k.starts_with(".kfadmin-")).collect()
}

fn copy_tree(from: &Path, to: &Path) {
    let st = Command::new("cp").arg("-a").arg(from).arg(to).status().unwrap();
    assert!(st.success());
}

/// A restore stopped at every step (kill -9, SIGTERM, SIGINT, an error, a full disk) leaves
/// the data directory as it was, or (kill -9 after the swap) fully restored; after kill -9 the
/// next kfadmin run puts a half-done swap back. Exit codes as documented. Twice: with the data
/// directory on the staging area's filesystem (the files are renamed in), and on another one
/// (they are copied into the data directory first).
#[test]
fn a_restore_stopped_at_any_step_leaves_the_data_directory_whole() {
    assert!(is_root(), "a tmpfs needs root (CI runs as root)");
    let env = Env::new();
    let mounted = Tmpfs::mount(&env.path("elsewhere"), "256m", false);
    restore_faults(&env, &env.path("same"));
    restore_faults(&env, &mounted.dir);
}

fn restore_faults(env: &Env, base: &Path) {
    std::fs::create_dir_all(base).unwrap();
    let other = env.data_dir(&format!("other-{}", base.display()).replace('/', "_"), 1);
    let report = backup(&other.join("keyfount.db"), &env.path("b"));
    let archive = report["archive"].as_str().unwrap().to_string();
    let restored_db = report["files"][0]["sha256"].as_str().unwrap().to_string();
    // The current data: a server killed with WAL frames left.
    let template = env.data_dir(&format!("template-{}", base.display()).replace('/', "_"), 1);
    let w = env.start_writer(&template.join("keyfount.db"), 0, false);
    w.wait_for(|s| s["last_seq"].as_i64().unwrap() >= 100);
    w.kill();
    assert!(template.join("keyfount.db-wal").exists());
    let before = user_tree(&template);
    let state = env.path("state");
    let tmp = env.path("tmp");
    let points = ["restore.verified", "restore.placed", "swap.kept", "swap.placed-one", "restore.swapped"];
    for (i, point) in points.iter().enumerate() {
        for action in ["kill", "term", "int", "fail", "full"] {
            let data = base.join(format!("data-{i}-{action}"));
            copy_tree(&template, &data);
            let run = |fault: &str, args: &[&str]| -> Run {
                Command::new(kfadmin_bin())
                    .args(args)
                    .env("KFADMIN_STATE_DIR", &state)
                    .env("KFADMIN_TMPDIR", &tmp)
                    .env("KFADMIN_TEST_FAULT", fault)
                    .stdin(Stdio::null())
                    .output()
                    .unwrap()
                    .into()
            };
            let r = run(
                &format!("{point}:{action}"),
                &["restore", &archive, "--data-dir", data.to_str().unwrap(), "--yes", "--force"],
            );
            let want = match action {
                "kill" => -1,
                "term" | "int" => 130,
                _ => 1,
            };
            assert_eq!(r.code, want, "{point}:{action}: {}", r.stderr);
            if action == "kill" {
                // Any later run puts a half-done swap back first.
                run("", &["list", env.path("b").to_str().unwrap()]).ok();
            }
            let now = user_tree(&data);
            let fully_restored = now.get("keyfount.db") == Some(&restored_db)
                && !now.keys().any(|k| k.starts_with("keyfount.db-"));
            assert!(now == before || (action == "kill" && fully_restored), "{point}:{action}: {now:?}");
            assert!(ls(&tmp).is_empty(), "{point}:{action}: staging left: {:?}", ls(&tmp));
            let left: Vec<String> =
                ls(&data).into_iter().filter(|n| n.starts_with(".kfadmin-restore-")).collect();
            assert!(left.is_empty(), "{point}:{action}: staging left in the data directory: {left:?}");
            let journals: Vec<String> = ls(&state).into_iter().filter(|n| n.starts_with("swap-")).collect();
            assert!(journals.is_empty(), "{point}:{action}: journal left: {journals:?}");
        }
    }
}

/// A real container whose process swaps every entry of its data directory (and kfadmin's
/// staging and safety directories in it) for links to host paths, as fast as it can, while
/// kfadmin restores into that directory (`--data-dir`: the process holds no database open) and
/// backs the container up online. Nothing outside the data directory ever changes, no archive
/// holds the host's files, and every run ends with a documented exit code.
#[test]
fn a_hostile_container_cannot_make_kfadmin_touch_the_host() {
    use crate::dock::*;
    assert!(is_root(), "containers and owners need root (CI runs as root)");
    let env = Env::new();
    // What the links point at: host files named like the data directory's entries.
    let canary = env.path("canary");
    std::fs::create_dir_all(canary.join("attachments")).unwrap();
    for n in ["keyfount.db-wal", "keyfount.db-shm", "keyfount.db-journal", "config.json", "attachments/a.bin"]
    {
        std::fs::write(canary.join(n), format!("host file {n}")).unwrap();
    }
    sqlite3(
        &canary.join("keyfount.db"),
        "CREATE TABLE canary_secret(x);\nINSERT INTO canary_secret VALUES ('host');\n",
    );
    let canary_before = (snapshot_tree(&canary), owners(&canary), owners(&canary.join("attachments")));

    let archive = archive_of_dir(&env, &rich_data_dir(&env, "src"), "src");
    let data = rich_data_dir(&env, "data");
    let command: Vec<String> = [
        "hostile",
        "--dir",
        "/data",
        "--target",
        canary.to_str().unwrap(),
        "--status-file",
        "/status/status.json",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let c = Kf::start(
        &env,
        "hostile",
        Spec { data: Data::Bind(data.clone()), command: Some(command), ..Spec::default() },
    );
    let (state, tmp, out) = (env.path("state"), env.path("tmp"), env.path("out"));
    let envs = [("KFADMIN_STATE_DIR", state.to_str().unwrap()), ("KFADMIN_TMPDIR", tmp.to_str().unwrap())];
    for attempt in 0..6 {
        let r = kfadmin_env(
            &envs,
            ["restore", archive.to_str().unwrap(), "--data-dir", data.to_str().unwrap(), "--yes"],
        );
        assert!([0, 1, 2, 4].contains(&r.code), "restore {attempt}: exit {}\n{}", r.code, r.stderr);
        let r = kfadmin_env(
            &envs,
            ["backup", "--online", "--container", &c.name, "--out", out.to_str().unwrap(), "--json"],
        );
        assert!([0, 1, 2].contains(&r.code), "backup {attempt}: exit {}\n{}", r.code, r.stderr);
        if r.code == 0 {
            let j = r.json();
            assert!(
                j["database"]["tables"].get("canary_secret").is_none(),
                "a host database was archived: {j}"
            );
        }
        for s in [&r.stderr, &r.stdout] {
            assert!(!s.contains("panicked"), "{s}");
        }
        assert!(c.running(), "the hostile container keeps running");
    }
    assert_eq!((snapshot_tree(&canary), owners(&canary), owners(&canary.join("attachments"))), canary_before);
}

/// A data directory on a filesystem too small for the restored files (kfadmin stages on
/// another one, so it must copy them in): refused before anything is copied, with the space
/// it needs and has; nothing in the data directory changes.
#[test]
fn a_full_data_directory_filesystem_refuses_the_restore_and_changes_nothing() {
    assert!(is_root(), "a tmpfs needs root (CI runs as root)");
    let env = Env::new();
    let other = env.data_dir("other", 2);
    let report = backup(&other.join("keyfount.db"), &env.path("b"));
    let small = Tmpfs::mount(&env.path("small"), "8m", false);
    let data = small.dir.join("data");
    copy_tree(&env.data_dir("current", 2), &data);
    let before = snapshot_tree(&small.dir);
    let r = kfadmin([
        "restore",
        report["archive"].as_str().unwrap(),
        "--data-dir",
        data.to_str().unwrap(),
        "--yes",
        "--force",
    ]);
    r.code(1).stderr_has("not enough space").stderr_has(data.to_str().unwrap());
    assert_eq!(snapshot_tree(&small.dir), before);
}

/// A process racing kfadmin (as one in the container could) swaps a sub-directory holding a
/// database with WAL frames for a link to a host directory that holds one too, again and again,
/// while kfadmin stops the container and copies its data (cold backup) or keeps it before a
/// restore. kfadmin walks the data by descriptors and makes databases whole only in its private
/// copy: the host's database and `-wal`, their owner and mode, never change.
#[test]
fn a_directory_swapped_for_a_link_never_gets_a_host_database_folded() {
    use crate::dock::*;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    assert!(is_root(), "containers and owners need root (CI runs as root)");
    let env = Env::new();
    let victim = env.path("victim");
    let data = rich_data_dir(&env, "data");
    let sub = data.join("sub");
    // Forty small databases, each with committed frames in its -wal, in both places: the more
    // there are, the longer a walk through them, the likelier a swap lands in the middle.
    for d in [&victim, &sub] {
        std::fs::create_dir(d).unwrap();
        for i in 0..40 {
            let conn = rusqlite::Connection::open(d.join(format!("other-{i}.db"))).unwrap();
            conn.set_db_config(rusqlite::config::DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, true).unwrap();
            conn.execute_batch(
                "PRAGMA journal_mode=WAL; PRAGMA wal_autocheckpoint=0;
                 CREATE TABLE t(x); INSERT INTO t VALUES (randomblob(3000)), (randomblob(3000));",
            )
            .unwrap();
            drop(conn);
            assert!(std::fs::metadata(d.join(format!("other-{i}.db-wal"))).unwrap().len() > 0);
            std::fs::remove_file(d.join(format!("other-{i}.db-shm"))).ok();
        }
    }
    env.give_to_app(&sub);
    for n in ls(&victim) {
        std::fs::set_permissions(victim.join(&n), std::fs::Permissions::from_mode(0o640)).unwrap();
        std::os::unix::fs::chown(victim.join(&n), Some(4321), Some(4321)).unwrap();
    }
    let victim_before = (snapshot_tree(&victim), owners(&victim));
    let c = Kf::start(&env, "racer", Spec { data: Data::Bind(data.clone()), rate: 50, ..Spec::default() });
    let archive =
        backup(&data.join("keyfount.db"), &env.path("good"))["archive"].as_str().unwrap().to_string();
    let stop = Arc::new(AtomicBool::new(false));
    let racer = {
        let (stop, sub, victim) = (Arc::clone(&stop), sub.clone(), victim.clone());
        std::thread::spawn(move || {
            let real = sub.with_file_name("sub.real");
            let mut swaps = 0u64;
            while !stop.load(Ordering::SeqCst) {
                if std::fs::rename(&sub, &real).is_ok() {
                    let _ = symlink(&victim, &sub);
                    std::thread::sleep(Duration::from_micros(300));
                    let _ = std::fs::remove_file(&sub);
                    let _ = std::fs::rename(&real, &sub);
                    swaps += 1;
                }
                std::thread::sleep(Duration::from_micros(300));
            }
            swaps
        })
    };
    let out = env.path("out");
    let (state, tmp) = (env.path("state"), env.path("tmp"));
    let envs = [("KFADMIN_STATE_DIR", state.to_str().unwrap()), ("KFADMIN_TMPDIR", tmp.to_str().unwrap())];
    for attempt in 0..3 {
        let r =
            kfadmin_env(&envs, ["backup", "--cold", "--container", &c.name, "--out", out.to_str().unwrap()]);
        assert!([0, 1].contains(&r.code), "cold backup {attempt}: exit {}\n{}", r.code, r.stderr);
        let r = kfadmin_env(
            &envs,
            ["restore", &archive, "--container", &c.name, "--out", out.to_str().unwrap(), "--yes", "--force"],
        );
        assert!([0, 1].contains(&r.code), "restore {attempt}: exit {}\n{}", r.code, r.stderr);
        unchanged(&victim, &victim_before, &format!("after attempt {attempt}"));
    }
    stop.store(true, Ordering::SeqCst);
    assert!(racer.join().unwrap() > 10, "the racer ran");
    unchanged(&victim, &victim_before, "at the end");
    assert!(c.running());
}

/// The host files that changed (content, owner or mode), named: none.
type Tree = (std::collections::BTreeMap<String, String>, std::collections::BTreeMap<String, (u32, u32, u32)>);
fn unchanged(dir: &Path, before: &Tree, when: &str) {
    let now = (snapshot_tree(dir), owners(dir));
    let changed: Vec<&String> = before
        .0
        .keys()
        .chain(now.0.keys())
        .filter(|k| before.0.get(*k) != now.0.get(*k) || before.1.get(*k) != now.1.get(*k))
        .collect();
    assert!(changed.is_empty(), "{when}: host files changed: {changed:?}");
}
