//! `kfadmin backup --online --db`: the upstream acceptance test, load, ownership, bad input.

use std::os::unix::fs::MetadataExt;

use crate::util::*;

/// The acceptance test from the upstream report: a backup in the middle of the writes holds
/// every transaction committed before it began, restores, checks, and the writer resumes.
#[test]
fn online_backup_mid_write_restores_and_the_writer_resumes() {
    let env = Env::new();
    let data = env.data_dir("data", 8);
    let db = data.join("keyfount.db");
    let writer = env.start_writer(&db, 200, false);
    writer.wait_for(|s| s["last_seq"].as_i64().unwrap() >= 50);
    let before = writer.last_seq();

    let report = backup(&db, &env.path("backups"));
    // The status file is rewritten every 50 ms: after 150 ms it holds at least every commit
    // made before the backup ended.
    std::thread::sleep(std::time::Duration::from_millis(150));
    let after = writer.last_seq();
    assert_eq!(report["ok"], true);
    assert_eq!(report["mode"], "online");
    assert_eq!(report["verified"], true);
    assert_eq!(report["snapshot"]["restarts"], 0);
    for key in ["archive", "sha256", "bytes", "duration_ms", "database"] {
        assert!(!report[key].is_null(), "report lacks {key}: {report}");
    }
    assert_eq!(report["database"]["journal_mode"], "wal");
    assert_eq!(report["database"]["schema_version"], 7);
    // The writer keeps committing after the backup (it was never blocked).
    writer.wait_for(|s| s["last_seq"].as_i64().unwrap() > after);
    writer.stop();

    // The archive: 0600, in a 0700 directory, with a sidecar that sha256sum accepts.
    let archive = std::path::PathBuf::from(report["archive"].as_str().unwrap());
    let name = archive.file_name().unwrap().to_string_lossy().into_owned();
    assert!(name.starts_with("keyfount-") && name.ends_with("-online.tar.gz"), "{name}");
    assert_eq!(std::fs::metadata(&archive).unwrap().mode() & 0o777, 0o600);
    assert_eq!(std::fs::metadata(env.path("backups")).unwrap().mode() & 0o777, 0o700);
    let sums = std::process::Command::new("sha256sum")
        .args(["-c", &format!("{name}.sha256")])
        .current_dir(env.path("backups"))
        .output()
        .unwrap();
    assert!(sums.status.success(), "sha256sum -c: {}", String::from_utf8_lossy(&sums.stdout));
    assert_eq!(
        ls(&env.path("backups")),
        vec![name.clone(), format!("{name}.sha256")],
        "no staging or partial left"
    );

    kfadmin(["verify".as_ref(), archive.as_os_str()]).ok().stdout_has("=> OK");

    let restored = env.path("restored");
    kfadmin([
        "restore".as_ref(),
        archive.as_os_str(),
        "--data-dir".as_ref(),
        restored.as_os_str(),
        "--yes".as_ref(),
    ])
    .ok();
    let rdb = restored.join("keyfount.db");
    let checked = check_db(&rdb, before);
    let seq = checked["last_seq"].as_i64().unwrap();
    assert!(seq >= before, "the snapshot lacks transactions committed before the backup began");
    assert!(seq <= after, "the snapshot holds transactions committed after the backup ended");
    assert_eq!(report["database"]["tables"]["audit_log"].as_i64().unwrap(), seq);

    // The writer starts on the restored database and carries on from its sequence.
    let again = env.start_writer(&rdb, 200, false);
    again.wait_for(|s| s["last_seq"].as_i64().unwrap() >= seq + 20);
    let st = again.stop();
    check_db(&rdb, st["last_seq"].as_i64().unwrap());
}

/// The writer at its highest rate for the whole backup: the backup finishes without a
/// restart, the writer keeps committing and sees no error.
#[test]
fn online_backup_under_full_write_load() {
    let env = Env::new();
    let data = env.data_dir("data", 48);
    let db = data.join("keyfount.db");
    let writer = env.start_writer(&db, 0, false);
    writer.wait_for(|s| s["commits"].as_i64().unwrap() >= 200);
    let before = writer.last_seq();
    let commits_before = writer.commits();
    let report = backup(&db, &env.path("backups"));
    std::thread::sleep(std::time::Duration::from_millis(150)); // the status file catches up
    let commits_after = writer.commits();
    assert_eq!(report["snapshot"]["restarts"], 0, "{report}");
    assert!(commits_after > commits_before, "the writer was blocked during the backup");
    let st = writer.stop();
    assert_eq!(st["errors"], 0);

    let archive = report["archive"].as_str().unwrap();
    let restored = env.path("restored");
    kfadmin(["restore", archive, "--data-dir", restored.to_str().unwrap(), "--yes"]).ok();
    check_db(&restored.join("keyfount.db"), before);
}

/// The writer runs as uid 1000 and kfadmin as root: no file in the data directory changes
/// owner or mode, and no -wal/-shm ends up owned by root (with and without a running writer).
#[test]
fn online_backup_keeps_owners_and_modes() {
    assert!(is_root(), "this test runs kfadmin as root, as operators do (CI runs as root)");
    let env = Env::new();
    let data = env.data_dir("data", 8);
    let db = data.join("keyfount.db");
    env.give_to_app(&data);

    // No server running: no -wal/-shm yet; kfadmin's own connection must not leave root's.
    let before = owners(&data);
    assert!(!data.join("keyfount.db-wal").exists());
    backup(&db, &env.path("backups1"));
    for (name, (uid, gid, mode)) in owners(&data) {
        assert_eq!((uid, gid), (APP_UID, APP_UID), "{name} is owned by {uid}:{gid}");
        if let Some(old) = before.get(&name) {
            assert_eq!((uid, gid, mode), *old, "{name} changed owner or mode");
        } else {
            assert_eq!(mode, 0o600, "{name} has mode {mode:o}");
        }
    }

    // A running server as uid 1000.
    let writer = env.start_writer(&db, 100, true);
    writer.wait_for(|s| s["last_seq"].as_i64().unwrap() >= 10);
    let before = owners(&data);
    backup(&db, &env.path("backups2"));
    assert_eq!(owners(&data), before, "owners or modes changed during the backup");
    let st = writer.stop();
    assert_eq!(st["errors"], 0);
    for (name, (uid, gid, _)) in owners(&data) {
        assert_eq!((uid, gid), (APP_UID, APP_UID), "{name} is owned by {uid}:{gid}");
    }
    // The server can still open its database as uid 1000 after kfadmin ran as root.
    let again = env.start_writer(&db, 100, true);
    again.wait_for(|s| s["last_seq"].as_i64().unwrap() >= st["last_seq"].as_i64().unwrap() + 5);
    again.stop();
}

#[test]
fn a_missing_database_is_bad_input() {
    let env = Env::new();
    let out = env.path("backups");
    let missing = env.path("nope/keyfount.db");
    let r = kfadmin([
        "backup".as_ref(),
        "--online".as_ref(),
        "--db".as_ref(),
        missing.as_os_str(),
        "--out".as_ref(),
        out.as_os_str(),
    ]);
    r.code(2).stderr_has("does not exist").stderr_has(missing.to_str().unwrap());
    assert!(!out.exists(), "nothing may be created for a failed plan");
}

#[test]
fn a_directory_is_not_a_database() {
    let env = Env::new();
    let data = env.data_dir("data", 1);
    let out = env.path("backups");
    let r = kfadmin([
        "backup".as_ref(),
        "--online".as_ref(),
        "--db".as_ref(),
        data.as_os_str(),
        "--out".as_ref(),
        out.as_os_str(),
    ]);
    r.code(2).stderr_has("is a directory").stderr_has("keyfount.db");
    assert!(!out.exists());
}

#[test]
fn a_file_that_is_not_sqlite_is_refused() {
    let env = Env::new();
    let fake = env.path("keyfount.db");
    std::fs::write(
        &fake,
        "this is not a database, just some text that is long enough to have a header ".repeat(4),
    )
    .unwrap();
    let out = env.path("backups");
    let r = kfadmin([
        "backup".as_ref(),
        "--online".as_ref(),
        "--db".as_ref(),
        fake.as_os_str(),
        "--out".as_ref(),
        out.as_os_str(),
        "--json".as_ref(),
    ]);
    r.code(2).stderr_has("is not a SQLite database");
    let j = r.json();
    assert_eq!(j["ok"], false);
    assert_eq!(j["error"]["exit_code"], 2);
    assert!(!out.exists());
}

#[test]
fn a_rollback_journal_database_is_backed_up_with_a_warning() {
    let env = Env::new();
    let db = env.path("legacy.db");
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.execute_batch(
        "PRAGMA journal_mode=DELETE; CREATE TABLE t(x INTEGER); INSERT INTO t VALUES (1),(2),(3); PRAGMA user_version=3;",
    )
    .unwrap();
    drop(conn);
    let r = kfadmin([
        "backup".as_ref(),
        "--online".as_ref(),
        "--db".as_ref(),
        db.as_os_str(),
        "--out".as_ref(),
        env.path("b").as_os_str(),
        "--json".as_ref(),
    ]);
    r.ok().stderr_has("rollback-journal");
    let j = r.json();
    assert_eq!(j["database"]["journal_mode"], "rollback");
    assert_eq!(j["database"]["tables"]["t"], 3);
    assert!(j["warnings"][0].as_str().unwrap().contains("rollback-journal"));
    assert!(j["archive"].as_str().unwrap().contains("/legacy-"));
    kfadmin(["verify", j["archive"].as_str().unwrap()]).ok();
}

/// The quick_check runs beside the checksums: a damaged database still fails the backup with
/// exit 3, naming the check, and nothing is left in the output directory.
#[test]
fn a_database_that_fails_quick_check_is_not_archived() {
    let env = Env::new();
    let db = env.path("damaged.db");
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.execute_batch(
        "PRAGMA journal_mode=DELETE; CREATE TABLE t(x TEXT);
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2000)
         INSERT INTO t SELECT printf('%0500d', i) FROM n;",
    )
    .unwrap();
    drop(conn);
    // A leaf page in the middle of t with a page type SQLite does not know.
    let mut bytes = std::fs::read(&db).unwrap();
    assert!(bytes.len() > 101 * 4096);
    bytes[100 * 4096..100 * 4096 + 8].fill(0xff);
    std::fs::write(&db, bytes).unwrap();
    let out = env.path("backups");
    let r = kfadmin([
        "backup".as_ref(),
        "--online".as_ref(),
        "--db".as_ref(),
        db.as_os_str(),
        "--out".as_ref(),
        out.as_os_str(),
        "--json".as_ref(),
    ]);
    r.code(3).stderr_has("fails PRAGMA quick_check");
    assert_eq!(r.json()["error"]["exit_code"], 3);
    assert!(ls(&out).is_empty(), "left behind: {:?}", ls(&out));
}

#[test]
fn an_output_directory_that_cannot_be_written_is_refused() {
    assert!(is_root(), "a read-only mount needs root (CI runs as root)");
    let env = Env::new();
    let data = env.data_dir("data", 1);
    let ro = Tmpfs::mount(&env.path("ro"), "1m", true);
    let r = kfadmin([
        "backup".as_ref(),
        "--online".as_ref(),
        "--db".as_ref(),
        data.join("keyfount.db").as_os_str(),
        "--out".as_ref(),
        ro.dir.as_os_str(),
    ]);
    r.code(2).stderr_has(ro.dir.to_str().unwrap());
    assert!(ls(&ro.dir).is_empty());
}

/// A staging area too small for the snapshot (refused before any copy), and a full disk while
/// the archive is written: exit 1, no file under a final name, no partial, no staging left.
#[test]
fn a_full_disk_leaves_nothing_behind() {
    assert!(is_root(), "a small tmpfs needs root (CI runs as root)");
    let env = Env::new();
    let data = env.data_dir("data", 8);
    let db = data.join("keyfount.db");
    let size = std::fs::metadata(&db).unwrap().len();
    let roomy = env.path("roomy");
    std::fs::create_dir(&roomy).unwrap();
    // (--tmp-dir, --out): a tmp too small for the copy; an out too small for the archive.
    let small_tmp = Tmpfs::mount(&env.path("small-tmp"), &(size / 2).to_string(), false);
    let small_out = Tmpfs::mount(&env.path("small-out"), &(size / 2).to_string(), false);
    for (tag, tmp, out) in [("staging", &small_tmp.dir, &roomy), ("archive", &roomy, &small_out.dir)] {
        let r = kfadmin([
            "backup".as_ref(),
            "--online".as_ref(),
            "--db".as_ref(),
            db.as_os_str(),
            "--out".as_ref(),
            out.as_os_str(),
            "--tmp-dir".as_ref(),
            tmp.as_os_str(),
            "--json".as_ref(),
        ]);
        r.code(1);
        let j = r.json();
        assert_eq!(j["ok"], false);
        assert!(
            r.stderr.contains("full") || r.stderr.contains("space"),
            "{tag}: the error must say the disk is full:\n{}",
            r.stderr
        );
        for d in [tmp, out] {
            assert!(ls(d).is_empty(), "{tag}: left behind in {}: {:?}", d.display(), ls(d));
        }
    }
}
