//! `kfadmin restore ARCHIVE --data-dir DIR`

use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

use crate::util::*;

fn restore(archive: &str, dir: &std::path::Path, extra: &[&str]) -> Run {
    let mut args = vec!["restore", archive, "--data-dir", dir.to_str().unwrap()];
    args.extend_from_slice(extra);
    kfadmin(args)
}

#[test]
fn restore_refuses_while_the_server_has_the_database_open() {
    let env = Env::new();
    let data = env.data_dir("data", 4);
    let db = data.join("keyfount.db");
    let report = backup(&db, &env.path("b"));
    let writer = env.start_writer(&db, 100, false);
    writer.wait_for(|s| s["last_seq"].as_i64().unwrap() >= 5);
    let r = restore(report["archive"].as_str().unwrap(), &data, &["--yes"]);
    r.code(2)
        .stderr_has("is open in process")
        .stderr_has(&writer.pid().to_string())
        .stderr_has("stop the Keyfount server");
    assert!(ls(&data).iter().all(|n| !n.starts_with(".kfadmin")), "left {:?}", ls(&data));
    writer.wait_for(|s| s["commits"].as_i64().unwrap() >= 20);
    let st = writer.stop();
    check_db(&db, st["last_seq"].as_i64().unwrap());
}

/// The server was SIGKILLed: its database has WAL frames. The restore moves the stale
/// -wal/-shm aside with the old database (a consistent safety copy) and leaves none beside
/// the restored one.
#[test]
fn restore_removes_a_stale_wal_and_keeps_a_consistent_safety_copy() {
    let env = Env::new();
    let data = env.data_dir("data", 4);
    let db = data.join("keyfount.db");
    let report = backup(&db, &env.path("b"));
    let backed_up = report["database"]["tables"]["audit_log"].as_i64().unwrap();
    let writer = env.start_writer(&db, 0, false);
    writer.wait_for(|s| s["last_seq"].as_i64().unwrap() >= 300);
    writer.kill();
    let wal = data.join("keyfount.db-wal");
    assert!(std::fs::metadata(&wal).unwrap().len() > 0, "SIGKILL leaves WAL frames");
    let live_seq = check_db(&db, 0)["last_seq"].as_i64().unwrap();

    let r = restore(report["archive"].as_str().unwrap(), &data, &["--yes", "--json"]);
    r.ok();
    let j = r.json();
    assert!(!wal.exists() && !data.join("keyfount.db-shm").exists(), "stale WAL left: {:?}", ls(&data));
    let restored = check_db(&db, 0);
    assert_eq!(restored["last_seq"].as_i64().unwrap(), backed_up);

    let safety = PathBuf::from(j["safety_dir"].as_str().unwrap());
    assert!(safety.starts_with(&data));
    let mut kept = ls(&safety);
    kept.retain(|n| n != "keyfount.db-shm");
    assert_eq!(kept, ["keyfount.db", "keyfount.db-wal"]);
    // The safety copy, database and WAL together, still holds everything the server committed.
    let copy = env.path("copy");
    std::fs::create_dir(&copy).unwrap();
    for n in ["keyfount.db", "keyfount.db-wal"] {
        std::fs::copy(safety.join(n), copy.join(n)).unwrap();
    }
    assert_eq!(check_db(&copy.join("keyfount.db"), live_seq)["last_seq"].as_i64().unwrap(), live_seq);
}

/// Restored files take the owner and mode of the database they replace, not the archive's.
#[test]
fn restore_keeps_the_owner_and_mode_of_the_replaced_database() {
    assert!(is_root(), "runs kfadmin as root, as operators do (CI runs as root)");
    let env = Env::new();
    // An archive whose manifest says 0:0 and 0644.
    let other = env.data_dir("other", 2);
    std::fs::set_permissions(other.join("keyfount.db"), std::os::unix::fs::PermissionsExt::from_mode(0o644))
        .unwrap();
    let report = backup(&other.join("keyfount.db"), &env.path("b"));
    assert_eq!(report["files"][0]["uid"], 0);

    let data = env.data_dir("data", 2);
    env.give_to_app(&data);
    let db = data.join("keyfount.db");
    let writer = env.start_writer(&db, 100, true);
    writer.wait_for(|s| s["last_seq"].as_i64().unwrap() >= 5);
    writer.stop();
    // A backup of another path: --force (the plan says so).
    restore(report["archive"].as_str().unwrap(), &data, &["--yes", "--force"])
        .ok()
        .stdout_has("from the replaced database");
    let m = std::fs::metadata(&db).unwrap();
    assert_eq!((m.uid(), m.gid(), m.mode() & 0o777), (APP_UID, APP_UID, 0o600));
    for (name, (uid, gid, _)) in owners(&data) {
        if !name.starts_with(".kfadmin-pre-restore-") {
            assert_eq!((uid, gid), (APP_UID, APP_UID), "{name}");
        }
    }
    // The server, as uid 1000, runs on the restored database.
    let again = env.start_writer(&db, 100, true);
    again.wait_for(|s| s["commits"].as_i64().unwrap() >= 10);
    let st = again.stop();
    check_db(&db, st["last_seq"].as_i64().unwrap());
}

#[test]
fn restore_into_a_new_directory_uses_the_manifest_owner() {
    let env = Env::new();
    let data = env.data_dir("data", 2);
    let report = backup(&data.join("keyfount.db"), &env.path("b"));
    let fresh = env.path("fresh/data");
    // The parent must exist; the data directory itself is created 0700.
    restore(report["archive"].as_str().unwrap(), &fresh, &["--yes"]).code(2).stderr_has("does not exist");
    std::fs::create_dir(env.path("fresh")).unwrap();
    restore(report["archive"].as_str().unwrap(), &fresh, &["--yes", "--force"])
        .ok()
        .stdout_has("from the manifest");
    assert_eq!(std::fs::metadata(&fresh).unwrap().mode() & 0o777, 0o700);
    assert_eq!(std::fs::metadata(fresh.join("keyfount.db")).unwrap().mode() & 0o777, 0o600);
    assert_eq!(ls(&fresh), ["keyfount.db"]);
    check_db(&fresh.join("keyfount.db"), 0);
}

#[test]
fn dry_run_shows_the_plan_and_changes_nothing() {
    let env = Env::new();
    let data = env.data_dir("data", 2);
    let report = backup(&data.join("keyfount.db"), &env.path("b"));
    let before = snapshot_tree(&data);
    let r = restore(report["archive"].as_str().unwrap(), &data, &["--dry-run"]);
    r.ok().stdout_has("Restore plan").stdout_has("replace").stdout_has("Dry run: nothing was changed");
    assert_eq!(snapshot_tree(&data), before);
    let j = restore(report["archive"].as_str().unwrap(), &data, &["--dry-run", "--json"]).json();
    assert_eq!(j["dry_run"], true);
    assert_eq!(j["restored"], false);
    assert_eq!(snapshot_tree(&data), before);
}

#[test]
fn restore_without_a_terminal_needs_yes() {
    let env = Env::new();
    let data = env.data_dir("data", 2);
    let report = backup(&data.join("keyfount.db"), &env.path("b"));
    let before = snapshot_tree(&data);
    restore(report["archive"].as_str().unwrap(), &data, &[]).code(2).stderr_has("--yes");
    assert_eq!(snapshot_tree(&data), before);
}

/// An archive that restores a second database (`other.db`) while a process writes it: refused
/// like the main one (exit 2, nothing changed), not swapped in under the writer.
#[test]
fn restore_refuses_while_any_restored_database_is_open() {
    let env = Env::new();
    let src = env.data_dir("src", 1);
    let other_src = env.data_dir("other-src", 1);
    std::fs::copy(other_src.join("keyfount.db"), src.join("other.db")).unwrap();
    let tarball = env.path("old.tar.gz");
    let st = std::process::Command::new("tar")
        .arg("czf")
        .arg(&tarball)
        .arg("-C")
        .arg(&src)
        .args(["keyfount.db", "other.db"])
        .status()
        .unwrap();
    assert!(st.success());
    let r =
        kfadmin(["import", tarball.to_str().unwrap(), "--out", env.path("b").to_str().unwrap(), "--json"]);
    r.ok();
    let archive = r.json()["archive"].as_str().unwrap().to_string();
    let data = env.data_dir("data", 1);
    let other = env.data_dir("other", 1);
    std::fs::rename(other.join("keyfount.db"), data.join("other.db")).unwrap();
    let writer = env.start_writer(&data.join("other.db"), 100, false);
    writer.wait_for(|s| s["last_seq"].as_i64().unwrap() >= 5);
    let before = snapshot_tree(&data);
    let r = restore(&archive, &data, &["--yes"]);
    r.code(2).stderr_has("is open in process").stderr_has(&writer.pid().to_string()).stderr_has("other.db");
    let st = writer.stop();
    let now: std::collections::BTreeMap<_, _> =
        snapshot_tree(&data).into_iter().filter(|(k, _)| k == "keyfount.db").collect();
    assert_eq!(now.get("keyfount.db"), before.get("keyfount.db"), "nothing replaced");
    check_db(&data.join("other.db"), st["last_seq"].as_i64().unwrap());
}

/// A server started in the middle of a `--data-dir` swap (after the old files were kept, before
/// the restored ones were moved in) keeps the replaced database open and leaves its `-wal`
/// beside the restored one: the restore fails loudly (exit 4, naming the process), never
/// "Restored".
#[test]
fn a_server_started_during_the_swap_is_caught_after_it() {
    let env = Env::new();
    let data = env.data_dir("data", 2);
    let db = data.join("keyfount.db");
    let archive = backup(&db, &env.path("b"))["archive"].as_str().unwrap().to_string();
    let mut run = Paused::spawn(
        &env,
        "swap-kept",
        &["restore", &archive, "--data-dir", data.to_str().unwrap(), "--yes"],
    );
    run.expect("swap-kept");
    let writer = env.start_writer(&db, 100, false);
    writer.wait_for(|s| s["last_seq"].as_i64().unwrap() >= 5);
    run.go("swap-kept");
    let r = run.finish();
    r.code(4)
        .stderr_has("used the database while the restored files were swapped")
        .stderr_has(&writer.pid().to_string());
    assert!(!r.stdout.contains("Restored"), "{}", r.stdout);
    drop(writer);
}

/// `--yes` still prints the plan (on stderr: a log records what was replaced), and a finished
/// restore ends with the exact command that undoes it; run, it puts the old data back.
#[test]
fn a_finished_restore_names_the_command_that_undoes_it() {
    let env = Env::new();
    let src = env.data_dir("src", 1);
    let archive = backup(&src.join("keyfount.db"), &env.path("b"))["archive"].as_str().unwrap().to_string();
    let data = env.data_dir("data", 2);
    let old = snapshot_tree(&data);
    let r = restore(&archive, &data, &["--yes", "--force"]);
    r.ok().stderr_has("Restore plan").stderr_has("replace");
    let undo = r
        .stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("to undo it: "))
        .expect("an undo line")
        .to_string();
    let cmd = undo.strip_prefix("(with the server stopped) ").unwrap();
    let st = std::process::Command::new("sh").arg("-c").arg(cmd).status().unwrap();
    assert!(st.success(), "{cmd}");
    let now: std::collections::BTreeMap<String, String> =
        snapshot_tree(&data).into_iter().filter(|(k, _)| !k.starts_with(".kfadmin-")).collect();
    assert_eq!(now, old, "{cmd}");
    let j = restore(&archive, &data, &["--yes", "--force", "--json"]);
    assert!(j.json()["undo"].as_str().unwrap().contains("cp -a"));
}

/// A backup of another database (2 rows, no Keyfount schema) against a live 8 MiB one: the
/// plan warns, `--yes` alone refuses (exit 2, nothing changed), `--yes --force` restores.
#[test]
fn the_wrong_archive_is_not_restored_without_force() {
    let env = Env::new();
    let other = env.path("other");
    std::fs::create_dir_all(&other).unwrap();
    let conn = rusqlite::Connection::open(other.join("keyfount.db")).unwrap();
    conn.execute_batch("PRAGMA journal_mode=WAL; CREATE TABLE notes(x); INSERT INTO notes VALUES (1), (2);")
        .unwrap();
    drop(conn);
    let archive = backup(&other.join("keyfount.db"), &env.path("b"))["archive"].as_str().unwrap().to_string();
    let data = env.data_dir("data", 8);
    let before = snapshot_tree(&data);
    let r = restore(&archive, &data, &["--dry-run"]);
    r.ok().stdout_has("WARNING").stdout_has("no Keyfount schema").stdout_has("shrink by more than half");
    let r = restore(&archive, &data, &["--yes"]);
    r.code(2).stderr_has("may not be the one").stderr_has("--force");
    assert_eq!(snapshot_tree(&data), before);
    let r = restore(&archive, &data, &["--yes", "--force", "--json"]);
    r.ok();
    let w = r.json()["warnings"].to_string();
    assert!(w.contains("no Keyfount schema"), "{w}");
}

/// Restoring an archive when a newer backup of the same name lies beside it: the plan says so.
#[test]
fn the_plan_names_a_newer_backup_beside_the_archive() {
    let env = Env::new();
    let data = env.data_dir("data", 1);
    let archive = backup(&data.join("keyfount.db"), &env.path("b"))["archive"].as_str().unwrap().to_string();
    let newer = env.path("b/keyfount-29991231T000000Z-online.tar.gz");
    std::fs::copy(&archive, &newer).unwrap();
    let before = snapshot_tree(&data);
    let r = restore(&archive, &data, &["--dry-run"]);
    r.ok()
        .stdout_has("WARNING")
        .stdout_has("a newer backup of keyfount is in")
        .stdout_has("keyfount-29991231T000000Z-online.tar.gz");
    // A script restoring an older backup than the newest must say --force (issue 15 item 13).
    let r = restore(&archive, &data, &["--yes"]);
    r.code(2).stderr_has("a newer backup of keyfount").stderr_has("--force");
    assert_eq!(snapshot_tree(&data), before, "nothing changed");
    let r = restore(newer.to_str().unwrap(), &data, &["--dry-run"]);
    assert!(!r.stdout.contains("a newer backup"), "{}", r.stdout);
    // The repository (-r) counts too, not only the archive's own directory.
    let elsewhere = env.path("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    let copy = elsewhere.join(std::path::Path::new(&archive).file_name().unwrap());
    std::fs::copy(&archive, &copy).unwrap();
    std::fs::copy(format!("{archive}.sha256"), format!("{}.sha256", copy.display())).unwrap();
    let repo = env.path("b");
    let r = restore(copy.to_str().unwrap(), &data, &["--yes", "-r", repo.to_str().unwrap()]);
    r.code(2).stderr_has("keyfount-29991231T000000Z-online.tar.gz").stderr_has("--force");
    restore(copy.to_str().unwrap(), &data, &["--yes", "--force", "-r", repo.to_str().unwrap()]).ok();
}

/// A `--data-dir` backup of another path: the plan warns, `--yes` alone refuses (exit 2,
/// naming the path and --force, nothing changed), `--yes --force` restores. The same path
/// spelled another way (through `..`) is the same target.
#[test]
fn a_backup_of_another_path_is_not_restored_without_force() {
    let env = Env::new();
    let src = env.data_dir("src", 1);
    let archive = backup(&src.join("keyfount.db"), &env.path("b"))["archive"].as_str().unwrap().to_string();
    let data = env.data_dir("data", 1);
    let before = snapshot_tree(&data);
    restore(&archive, &data, &["--dry-run"]).ok().stdout_has("WARNING").stdout_has("the backup is of");
    let r = restore(&archive, &data, &["--yes"]);
    r.code(2).stderr_has("the backup is of").stderr_has(src.to_str().unwrap()).stderr_has("--force");
    assert_eq!(snapshot_tree(&data), before, "nothing changed");
    restore(&archive, &data, &["--yes", "--force"]).ok();
    // Its own backup, its directory named through `..`: no doubt.
    let own = backup(&data.join("keyfount.db"), &env.path("c"))["archive"].as_str().unwrap().to_string();
    let other_spelling = env.path("c/../data");
    let r = restore(&own, &other_spelling, &["--yes"]);
    r.ok();
    assert!(!r.stderr.contains("WARNING"), "{}", r.stderr);
}

/// `--data-dir` over a database a killed server left with committed frames in its `-wal`: sound,
/// the report says nothing of damage; with 16 corrupted pages in the main file, the restore goes
/// on (exit 0), keeps the database and its `-wal` byte for byte in the safety directory, and
/// the report says the replaced database was damaged (what SQLite found).
#[test]
fn restore_over_a_damaged_database_with_wal_frames_keeps_both_and_says_damaged() {
    use sha2::{Digest, Sha256};
    use std::io::{Seek, SeekFrom, Write};
    let env = Env::new();
    let data = env.data_dir("data", 4);
    let db = data.join("keyfount.db");
    let report = backup(&db, &env.path("b"));
    let archive = report["archive"].as_str().unwrap().to_string();
    let sha = |p: &std::path::Path| format!("{:x}", Sha256::digest(std::fs::read(p).unwrap()));
    for damaged in [false, true] {
        let wal = data.join("keyfount.db-wal");
        // A writer killed with committed frames in its -wal (under load, a kill has been seen to
        // find it empty: then once more).
        for attempt in 0..3 {
            let writer = env.start_writer(&db, 0, false);
            writer.wait_for(|s| s["commits"].as_i64().unwrap() >= 300);
            writer.kill();
            if std::fs::metadata(&wal).is_ok_and(|m| m.len() > 0) {
                break;
            }
            assert!(attempt < 2, "SIGKILL leaves WAL frames: {:?}", ls(&data));
        }
        if damaged {
            let len = std::fs::metadata(&db).unwrap().len();
            let mut f = std::fs::OpenOptions::new().write(true).open(&db).unwrap();
            f.seek(SeekFrom::Start(len / 3 / 4096 * 4096)).unwrap();
            f.write_all(&vec![0xA5; 16 * 4096]).unwrap();
        }
        let (db_sha, wal_sha) = (sha(&db), sha(&wal));
        let r = restore(&archive, &data, &["--yes", "--json"]);
        r.ok();
        let j = r.json();
        let safety = PathBuf::from(j["safety_dir"].as_str().unwrap());
        assert_eq!(sha(&safety.join("keyfount.db")), db_sha, "kept byte for byte");
        assert_eq!(sha(&safety.join("keyfount.db-wal")), wal_sha, "kept byte for byte");
        if damaged {
            assert!(j["replaced_damaged"].as_str().is_some_and(|d| !d.is_empty()), "{j}");
        } else {
            assert!(j["replaced_damaged"].is_null(), "a sound database is not called damaged: {j}");
        }
        check_db(&db, 0);
        std::fs::remove_dir_all(&safety).unwrap();
    }
}

/// A newer backup of the target in an `s3://` repository counts as one in a local one: an s3://
/// archive with a newer one beside it in its bucket prefix, and a local archive restored with
/// `-r s3://…` that holds a newer one, both need --force with --yes (exit 2 naming it).
#[test]
fn a_newer_backup_in_an_s3_repository_needs_force() {
    use crate::s3::*;
    let env = Env::new();
    let moto = Moto::shared();
    let bucket = moto.bucket("newer");
    let to = format!("s3://{bucket}/p");
    let data = env.data_dir("data", 1);
    let db = data.join("keyfount.db");
    let out = env.path("out");
    let up = |e: &Env| {
        let r = kf_s3(
            e,
            &moto.endpoint(),
            &[],
            &["backup", "--online", "--db", db.to_str().unwrap(), "-r", out.to_str().unwrap(), "--to", &to]
                .iter()
                .chain(&["--plaintext-offsite", "--json"])
                .copied()
                .collect::<Vec<_>>(),
        );
        r.ok();
        r.json()
    };
    let first = up(&env);
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let second = up(&env);
    let newer_name =
        std::path::Path::new(second["archive"].as_str().unwrap()).file_name().unwrap().to_owned();
    let newer_name = newer_name.to_string_lossy();
    let before = snapshot_tree(&data);
    // The s3:// archive: the newer one is beside it, in its prefix.
    let url = first["offsite"][0]["url"].as_str().unwrap();
    let lone = env.path("lone");
    std::fs::create_dir_all(&lone).unwrap();
    let args = ["restore", url, "--data-dir", data.to_str().unwrap(), "-r", lone.to_str().unwrap(), "--yes"];
    let r = kf_s3(&env, &moto.endpoint(), &[], &args);
    r.code(2).stderr_has("a newer backup of keyfount").stderr_has(&newer_name).stderr_has("--force");
    assert_eq!(snapshot_tree(&data), before, "nothing changed");
    // A local archive alone in its directory, with -r s3://… holding a newer one.
    let local = std::path::Path::new(first["archive"].as_str().unwrap());
    let copy = lone.join(local.file_name().unwrap());
    std::fs::copy(local, &copy).unwrap();
    std::fs::copy(format!("{}.sha256", local.display()), format!("{}.sha256", copy.display())).unwrap();
    let args = ["restore", copy.to_str().unwrap(), "--data-dir", data.to_str().unwrap(), "-r", &to, "--yes"];
    let r = kf_s3(&env, &moto.endpoint(), &[], &args);
    r.code(2).stderr_has(&to).stderr_has(&newer_name).stderr_has("--force");
    assert_eq!(snapshot_tree(&data), before, "nothing changed");
    let mut forced = args.to_vec();
    forced.push("--force");
    kf_s3(&env, &moto.endpoint(), &[], &forced).ok();
}
