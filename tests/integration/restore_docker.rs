//! Restores into a real container: the rollback journaled, damaged data replaced, every
//! database the archive restores checked for writers.

use std::process::Command;

use crate::lifecycle::refused_archive;

use crate::dock::*;
use crate::util::*;

fn kf_fault(env: &Env, fault: &str, args: &[&str]) -> Run {
    kfadmin_fault(&env.path("state"), fault, args)
}

/// kfadmin SIGKILLed in the middle of putting the previous data back (the container did not
/// come up on the restored data): the next run finishes the rollback before the container is
/// started again, so it runs on its previous data, not on a mix.
#[test]
fn a_rollback_killed_half_way_is_finished_before_the_container_starts() {
    let env = Env::new();
    let c = Kf::start(&env, "rbkill", Spec { rate: 100, ..Spec::default() });
    c.wait_for(|s| s["last_seq"].as_i64().unwrap() >= 20);
    let archive = refused_archive(&env);
    let out = env.path("backups");
    // rollback.linked: the journal and the next command (no guardian); rollback.started: the
    // guardian, with no other command at all.
    for (point, guardian) in [("rollback.linked", false), ("rollback.started", true)] {
        let no_guardian = if guardian { "" } else { "1" };
        let r = kfadmin_fault_env(
            &env.path("state"),
            &format!("{point}:kill"),
            &[("KFADMIN_TEST_NO_GUARDIAN", no_guardian)],
            &[
                "restore",
                &archive,
                "--container",
                &c.name,
                "--out",
                out.to_str().unwrap(),
                "--yes",
                "--force",
                "--settle",
                "2",
            ],
        );
        assert_eq!(r.code, -1, "{point}: killed during the rollback: {}", r.stderr);
        if guardian {
            let killed = std::time::Instant::now();
            while !(c.running() && journals(&env.path("state")).is_empty()) {
                assert!(killed.elapsed() < std::time::Duration::from_secs(15), "{point}: not back in 15 s");
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            let log = std::fs::read_to_string(env.path("state").join("guardian.log")).unwrap();
            assert!(log.contains("put back as it was"), "{point}: {log}");
        } else {
            assert!(!c.running());
            let r = kf_fault(
                &env,
                "",
                &["status", "--container", &c.name, "--backup-dir", out.to_str().unwrap()],
            );
            r.stderr_has("put back as it was");
            assert!(c.running(), "{point}: the next run starts the container again: {}", r.stderr);
        }
        assert!(journals(&env.path("state")).is_empty(), "{point}: {:?}", journals(&env.path("state")));
        let seq = c.status()["last_seq"].as_i64().unwrap();
        c.wait_writing_past(seq.max(20));
        check_db(&c.host_data().join("keyfount.db"), 20);
    }
}

/// Damage is the most common reason to restore: a container whose database has 16 corrupted
/// pages, then one whose header is zeroed, is restored (exit 0); the damaged database is kept
/// as it was, byte for byte, in the pre-restore archive, whose manifest and the report say it
/// is damaged; `verify` of that archive checks its files and says why it skips the database.
#[test]
fn a_damaged_database_is_replaced_and_kept_as_it_was() {
    use sha2::{Digest, Sha256};
    use std::io::{Seek, SeekFrom, Write};
    let env = Env::new();
    let c = Kf::start(&env, "damaged", Spec { rate: 100, ..Spec::default() });
    c.wait_for(|s| s["last_seq"].as_i64().unwrap() >= 20);
    let archive = backup(&c.host_data().join("keyfount.db"), &env.path("good"));
    let backed_up = archive["database"]["tables"]["audit_log"].as_i64().unwrap();
    let archive = archive["archive"].as_str().unwrap().to_string();
    c.stop();
    let db = c.host_data().join("keyfount.db");
    let out = env.path("backups");
    for (what, at, len) in [("16 corrupted pages", 2 * 4096, 16 * 4096), ("a zeroed header", 0, 100)] {
        let mut f = std::fs::OpenOptions::new().write(true).open(&db).unwrap();
        f.seek(SeekFrom::Start(at)).unwrap();
        f.write_all(&vec![if at == 0 { 0 } else { 0xA5 }; len]).unwrap();
        drop(f);
        let damaged = format!("{:x}", Sha256::digest(std::fs::read(&db).unwrap()));
        let r = kf_fault(
            &env,
            "",
            &["restore", &archive, "--container", &c.name, "--out", out.to_str().unwrap(), "--yes", "--json"],
        );
        r.ok();
        let j = r.json();
        assert!(j["replaced_damaged"].is_string(), "{what}: the report says the data was damaged: {j}");
        assert_eq!(check_db(&db, 0)["last_seq"].as_i64().unwrap(), backed_up, "{what}");
        let kept = j["safety_archive"].as_str().unwrap();
        let v = kfadmin(["verify", kept, "--json"]);
        v.ok();
        let m = Command::new("tar").args(["-xzOf", kept, "kfadmin-manifest.json"]).output().unwrap();
        let m: serde_json::Value = serde_json::from_slice(&m.stdout).unwrap();
        assert!(m["damaged"].is_string(), "{what}: the manifest says it is damaged: {m}");
        let file = m["files"].as_array().unwrap().iter().find(|f| f["path"] == "data/keyfount.db").unwrap();
        assert_eq!(file["sha256"].as_str().unwrap(), damaged, "{what}: kept as it was");
        assert!(v.stdout.contains("damaged database kept as it was"), "{}", v.stdout);
    }
}

/// Only `<database>-journal` beside a database is SQLite's: an attachment named
/// `travel-journal` is an ordinary file, kept in the pre-restore archive and left in place.
#[test]
fn a_file_named_like_a_journal_is_an_ordinary_file() {
    let env = Env::new();
    let c = Kf::start(&env, "journalname", Spec { rate: 50, ..Spec::default() });
    c.wait_for(|s| s["last_seq"].as_i64().unwrap() >= 10);
    let archive = backup(&c.host_data().join("keyfount.db"), &env.path("good"))["archive"]
        .as_str()
        .unwrap()
        .to_string();
    let att = c.host_data().join("attachments");
    std::fs::create_dir_all(&att).unwrap();
    std::fs::write(att.join("travel-journal"), b"Day 1: Lisbon. Day 2: Porto.\n").unwrap();
    std::fs::write(att.join("notes-wal"), b"not SQLite's\n").unwrap();
    let out = env.path("backups");
    let r = kf_fault(
        &env,
        "",
        &["restore", &archive, "--container", &c.name, "--out", out.to_str().unwrap(), "--yes", "--json"],
    );
    r.ok();
    assert!(c.running());
    assert_eq!(std::fs::read(att.join("travel-journal")).unwrap(), b"Day 1: Lisbon. Day 2: Porto.\n");
    let kept = r.json()["safety_archive"].as_str().unwrap().to_string();
    // The exact command that undoes it.
    assert_eq!(r.json()["undo"], format!("kfadmin restore '{kept}' --container '{}'", c.name));
    let m = Command::new("tar").args(["-xzOf", &kept, "kfadmin-manifest.json"]).output().unwrap();
    let m: serde_json::Value = serde_json::from_slice(&m.stdout).unwrap();
    let paths: Vec<&str> =
        m["files"].as_array().unwrap().iter().map(|f| f["path"].as_str().unwrap()).collect();
    assert!(paths.contains(&"data/attachments/travel-journal"), "{paths:?}");
    assert!(paths.contains(&"data/attachments/notes-wal"), "{paths:?}");
}

/// A container killed with committed transactions in its `-wal`, then restored: when the
/// database is sound the pre-restore archive holds it made whole (the WAL folded in a copy: no
/// `-wal` archived, nothing committed lost); when it is also damaged (16 corrupted pages, then
/// a zeroed header), SQLite cannot fold the WAL into it, and the restore still goes on (exit
/// 0): the pre-restore archive keeps the database and its `-wal` byte for byte, unfolded,
/// marked damaged (manifest and report), and `verify` passes it. The data is never changed in
/// place: the replaced files kept beside it are the ones captured.
#[test]
fn a_damaged_database_with_wal_frames_is_kept_with_its_wal() {
    use sha2::{Digest, Sha256};
    use std::io::{Seek, SeekFrom, Write};
    let env = Env::new();
    let c = Kf::start(&env, "damagedwal", Spec { rate: 0, ..Spec::default() });
    c.wait_for(|s| s["last_seq"].as_i64().unwrap() >= 20);
    let archive = backup(&c.host_data().join("keyfount.db"), &env.path("good"));
    let backed_up = archive["database"]["tables"]["audit_log"].as_i64().unwrap();
    let archive = archive["archive"].as_str().unwrap().to_string();
    let (db, wal) = (c.host_data().join("keyfount.db"), c.host_data().join("keyfount.db-wal"));
    let out = env.path("backups");
    let sha = |p: &std::path::Path| format!("{:x}", Sha256::digest(std::fs::read(p).unwrap()));
    for (what, damage) in
        [("a sound database", None), ("16 corrupted pages", Some(16)), ("64 corrupted pages", Some(64))]
    {
        if !c.running() {
            assert!(Command::new("docker").args(["start", &c.name]).status().unwrap().success());
        }
        let seq = c.status()["last_seq"].as_i64().unwrap();
        c.wait_writing_past(seq + 200);
        c.kill();
        assert!(
            std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0) > 0,
            "{what}: SIGKILL leaves WAL frames"
        );
        let live = c.status()["last_seq"].as_i64().unwrap();
        match damage {
            None => {}
            Some(n) => {
                // Pages a third into the file: old rows, not in the WAL.
                let len = std::fs::metadata(&db).unwrap().len();
                let mut f = std::fs::OpenOptions::new().write(true).open(&db).unwrap();
                f.seek(SeekFrom::Start(len / 3 / 4096 * 4096)).unwrap();
                f.write_all(&vec![0xA5; n * 4096]).unwrap();
            }
        }
        let (db_sha, wal_sha) = (sha(&db), sha(&wal));
        let r = kf_fault(
            &env,
            "",
            &["restore", &archive, "--container", &c.name, "--out", out.to_str().unwrap(), "--yes", "--json"],
        );
        r.ok();
        let j = r.json();
        assert_eq!(check_db(&db, 0)["last_seq"].as_i64().unwrap(), backed_up, "{what}");
        assert!(!wal.exists(), "{what}: no stale -wal beside the restored database");
        let kept = j["safety_archive"].as_str().unwrap();
        kfadmin(["verify", kept, "--json"]).ok();
        let m = Command::new("tar").args(["-xzOf", kept, "kfadmin-manifest.json"]).output().unwrap();
        let m: serde_json::Value = serde_json::from_slice(&m.stdout).unwrap();
        let file = |p: &str| m["files"].as_array().unwrap().iter().find(|f| f["path"] == p).cloned();
        if damage.is_none() {
            assert!(j["replaced_damaged"].is_null(), "{what}: {j}");
            assert!(m["damaged"].is_null(), "{what}: {m}");
            assert!(file("data/keyfount.db-wal").is_none(), "{what}: the WAL was folded in the copy: {m}");
            let x = env.path("sound");
            std::fs::create_dir_all(&x).unwrap();
            let t = Command::new("tar").args(["-xzf", kept, "-C", x.to_str().unwrap()]).status().unwrap();
            assert!(t.success());
            // Every transaction committed before the kill is in the archive.
            check_db(&x.join("data/keyfount.db"), live);
            continue;
        }
        assert!(j["replaced_damaged"].as_str().is_some_and(|d| d.contains("keyfount.db")), "{what}: {j}");
        assert!(m["damaged"].is_string(), "{what}: the manifest says it is damaged: {m}");
        let (d, w) = (file("data/keyfount.db").unwrap(), file("data/keyfount.db-wal").unwrap());
        assert_eq!(d["sha256"].as_str().unwrap(), db_sha, "{what}: the database kept as it was");
        assert_eq!(w["sha256"].as_str().unwrap(), wal_sha, "{what}: the -wal kept as it was");
        assert!(file("data/keyfount.db-shm").is_none(), "{m}");
        // Nothing was folded in place: the replaced files kept beside the data are as captured.
        let safety = std::path::PathBuf::from(j["safety_dir"].as_str().unwrap());
        assert_eq!(sha(&safety.join("keyfount.db")), db_sha, "{what}");
        assert_eq!(sha(&safety.join("keyfount.db-wal")), wal_sha, "{what}");
        // The archive's bytes themselves, not only the manifest.
        for (p, want) in [("data/keyfount.db", &db_sha), ("data/keyfount.db-wal", &wal_sha)] {
            let o = Command::new("tar").args(["-xzOf", kept, p]).output().unwrap();
            assert_eq!(&format!("{:x}", Sha256::digest(&o.stdout)), want, "{what}: {p}");
        }
        if damage == Some(16) {
            // Its undo puts back exactly what was there, -wal and all, but only when asked twice:
            // it is a damaged database.
            let undo = ["restore", kept, "--container", &c.name, "--out", out.to_str().unwrap(), "--yes"];
            kf_fault(&env, "", &undo).code(2).stderr_has("damaged database").stderr_has("--force");
            let mut forced = undo.to_vec();
            forced.push("--force");
            kf_fault(&env, "", &forced).ok();
            assert_eq!(sha(&db), db_sha, "{what}: undone");
            assert_eq!(sha(&wal), wal_sha, "{what}: undone, with its -wal");
        }
    }
}

/// A full disk where kfadmin makes the pre-restore copy whole (`--tmp-dir` on a tmpfs with room
/// for the verified archive and the copy of the data, not for the scratch copy a WAL is folded
/// in): exit 1, nothing in the data directory changed (the database and its `-wal` as they
/// were), nothing left on the full filesystem, no journal.
#[test]
fn a_full_disk_while_the_pre_restore_copy_is_made_whole_changes_nothing() {
    use sha2::{Digest, Sha256};
    assert!(is_root(), "a tmpfs needs root (CI runs as root)");
    let env = Env::new();
    let c = Kf::start(&env, "fullwhole", Spec { rate: 0, init_mb: 40, ..Spec::default() });
    c.wait_for(|s| s["last_seq"].as_i64().unwrap() >= 20);
    let report = backup(&c.host_data().join("keyfount.db"), &env.path("good"));
    let archive = report["archive"].as_str().unwrap().to_string();
    let seq = c.status()["last_seq"].as_i64().unwrap();
    c.wait_writing_past(seq + 300);
    c.kill();
    let (db, wal) = (c.host_data().join("keyfount.db"), c.host_data().join("keyfount.db-wal"));
    let size = |p: &std::path::Path| std::fs::metadata(p).unwrap().len();
    assert!(size(&wal) > 0, "SIGKILL leaves WAL frames");
    let sha = |p: &std::path::Path| format!("{:x}", Sha256::digest(std::fs::read(p).unwrap()));
    let before = (sha(&db), sha(&wal));
    // Room for the verified archive (kfadmin unpacks only with 64 MiB to spare) and the copy of
    // the data, not for a second copy of it.
    let live = size(&db) + size(&wal);
    let spare = (68u64 << 20).max(live * 3 / 2);
    assert!(spare < 2 * live, "the live data ({live} bytes) is too small for this test");
    let room = report["files"][0]["size"].as_u64().unwrap() + spare;
    let tmp = Tmpfs::mount(&env.path("tmp"), &room.to_string(), false);
    let out = env.path("backups");
    let r = kf_fault(
        &env,
        "",
        &[
            "restore",
            &archive,
            "--container",
            &c.name,
            "--out",
            out.to_str().unwrap(),
            "--tmp-dir",
            tmp.dir.to_str().unwrap(),
            "--yes",
        ],
    );
    // Failed where the copy is made whole (its scratch copy), and says nothing changed.
    r.code(1).stderr_has("No space left").stderr_has("whole-0").stderr_has("nothing in");
    assert_eq!((sha(&db), sha(&wal)), before, "the data as it was: {}", r.stderr);
    assert!(
        ls(&tmp.dir).iter().all(|n| ls(&tmp.dir.join(n)).is_empty()),
        "left on the tmpfs: {:?}",
        ls(&tmp.dir)
    );
    assert!(journals(&env.path("state")).is_empty());
    assert!(ls(&c.host_data()).iter().all(|n| !n.starts_with(".kfadmin")), "{:?}", ls(&c.host_data()));
}
