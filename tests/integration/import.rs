//! `kfadmin import`: tarballs made by hand (`tar czf` of a data directory or of the database
//! alone) become verified archives, or are refused with nothing written: stopped and killed
//! servers, captures taken while a writer commits, hostile and garbage tarballs, damaged
//! databases and `--salvage`.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::dock::kfadmin_env;
use crate::util::*;

/// kfadmin with the test's own state directory (its private staging area lives there).
fn kf(env: &Env, args: &[&str]) -> Run {
    let state = env.path("state");
    kfadmin_env(&[("KFADMIN_STATE_DIR", state.to_str().unwrap())], args)
}

/// `tar czf OUT -C DIR WHAT…` with GNU tar; a file changing while it is read is not an error.
fn tar_czf(out: &Path, dir: &Path, what: &[&str]) {
    let st = Command::new("tar").arg("czf").arg(out).arg("-C").arg(dir).args(what).status().unwrap();
    assert!(st.code().is_some_and(|c| c <= 1), "tar failed: {st}");
}

fn import_json(env: &Env, tarball: &Path, out: &Path, extra: &[&str]) -> (i32, Value) {
    let mut args = vec!["import", tarball.to_str().unwrap(), "--out", out.to_str().unwrap(), "--json"];
    args.extend(extra);
    let r = kf(env, &args);
    let code = r.code;
    (code, r.json())
}

/// Restore an archive into a new directory and check the writer's invariants there.
fn restored(env: &Env, archive: &str, tag: &str, min_seq: i64) -> Value {
    let dir = env.path(&format!("restored-{tag}"));
    kf(env, &["restore", archive, "--data-dir", dir.to_str().unwrap(), "--yes"]).ok();
    check_db(&dir.join("keyfount.db"), min_seq)
}

fn sha256_of(path: &Path) -> String {
    use sha2::{Digest, Sha256};
    format!("{:x}", Sha256::digest(std::fs::read(path).unwrap()))
}

/// Archives (and anything else) written into `out`.
fn written(out: &Path) -> Vec<String> {
    ls(out)
}

#[test]
fn a_tarball_of_a_stopped_data_directory_becomes_a_backup() {
    let env = Env::new();
    let data = env.data_dir("srv/keyfount/data", 2);
    std::fs::create_dir_all(data.join("uploads")).unwrap();
    std::fs::write(data.join("uploads/avatar.png"), b"png").unwrap();
    std::fs::create_dir_all(data.join(".kfadmin-pre-restore-20240101T000000Z")).unwrap();
    std::fs::write(data.join(".kfadmin-pre-restore-20240101T000000Z/keyfount.db"), b"old").unwrap();
    let mtime = std::fs::metadata(data.join("keyfount.db")).unwrap().modified().unwrap();
    let stamp = humantime::format_rfc3339_seconds(mtime).to_string().replace(['-', ':'], "");
    let tarball = env.path("keyfount-old.tar.gz");
    tar_czf(&tarball, &env.path("srv"), &["keyfount"]);
    let out = env.path("backups");
    let (code, j) = import_json(&env, &tarball, &out, &[]);
    assert_eq!(code, 0, "{j}");
    let archive = j["archive"].as_str().unwrap();
    assert!(archive.ends_with(&format!("/keyfount-old-{stamp}-imported.tar.gz")), "{archive}");
    assert_eq!(j["mode"], "imported");
    assert_eq!(j["salvaged"], false);
    assert_eq!(j["import"]["tarball"]["sha256"], sha256_of(&tarball));
    assert_eq!(j["import"]["tarball"]["file_name"], "keyfount-old.tar.gz");
    assert_eq!(j["import"]["database"], "keyfount/data/keyfount.db");
    let paths: Vec<&str> =
        j["files"].as_array().unwrap().iter().map(|f| f["path"].as_str().unwrap()).collect();
    assert_eq!(paths, ["data/keyfount.db", "data/uploads/avatar.png"]);
    assert!(j["import"]["left_out"].to_string().contains(".kfadmin-pre-restore-"), "{j}");
    // verify reads the manifest's import section; list, status and prune count it as a backup.
    kf(&env, &["verify", archive]).ok().stdout_has("imported from keyfount-old.tar.gz");
    let l = kf(&env, &["list", out.to_str().unwrap(), "--json"]);
    assert_eq!(l.ok().json()["archives"][0]["kind"], "backup");
    kf(&env, &["list", out.to_str().unwrap()]).ok().stdout_has("imported");
    // Named as the other backups of this database (status and prune group archives by name).
    let (code, j) = import_json(&env, &tarball, &out, &["--name", "keyfount"]);
    assert_eq!(code, 0, "{j}");
    let db = data.join("keyfount.db");
    let s = kf(
        &env,
        &[
            "status",
            "--db",
            db.to_str().unwrap(),
            "--backup-dir",
            out.to_str().unwrap(),
            "--max-age",
            "100000d",
            "--json",
        ],
    );
    assert_eq!(s.json()["backups"]["last"]["mode"], "imported", "{}", s.stdout);
    let restored = restored(&env, archive, "stopped", 0);
    assert_eq!(restored["users"], 50);
    assert_eq!(std::fs::read(env.path("restored-stopped/uploads/avatar.png")).unwrap(), b"png");
    assert!(!env.path("restored-stopped/.kfadmin-pre-restore-20240101T000000Z").exists());
    // Nothing of the import is left in the private staging area.
    assert_eq!(ls(&env.path("state/staging")), Vec::<String>::new());
}

#[test]
fn other_layouts_dot_slash_plain_tar_and_the_database_alone() {
    let env = Env::new();
    let data = env.data_dir("data", 1);
    let out = env.path("backups");
    // `tar czf x.tgz .` from inside the data directory: every name starts with `./`.
    let dot = env.path("dot.tgz");
    tar_czf(&dot, &data, &["."]);
    let (code, j) = import_json(&env, &dot, &out, &["--name", "kf"]);
    assert_eq!(code, 0, "{j}");
    assert!(j["archive"].as_str().unwrap().contains("/kf-"), "{j}");
    // A plain .tar named .tar.gz: told by its content, not its name.
    let plain = env.path("plain.tar.gz");
    let st =
        Command::new("tar").arg("cf").arg(&plain).arg("-C").arg(env.dir.path()).arg("data").status().unwrap();
    assert!(st.success());
    let (code, j) = import_json(&env, &plain, &out, &[]);
    assert_eq!(code, 0, "{j}");
    // Another database in the data directory, its rows only in its WAL, and a WAL of none.
    let other = rusqlite::Connection::open(data.join("other.db")).unwrap();
    other
        .execute_batch("PRAGMA journal_mode=WAL; PRAGMA wal_autocheckpoint=0; CREATE TABLE t(x); INSERT INTO t VALUES (42);")
        .unwrap();
    std::fs::write(data.join("ghost.db-wal"), b"frames of a database that is gone").unwrap();
    let both = env.path("both.tar.gz");
    tar_czf(&both, env.dir.path(), &["data"]);
    std::mem::forget(other); // its -wal stays as a crash leaves it
    let (code, j) = import_json(&env, &both, &out, &[]);
    assert_eq!(code, 0, "{j}");
    let paths = j["files"].to_string();
    assert!(
        paths.contains("data/other.db") && !paths.contains("-wal") && !paths.contains("ghost"),
        "{paths}"
    );
    assert!(j["import"]["left_out"].to_string().contains("data/ghost.db-wal"), "{j}");
    let dir = env.path("restored-both");
    kf(&env, &["restore", j["archive"].as_str().unwrap(), "--data-dir", dir.to_str().unwrap(), "--yes"]).ok();
    let x: i64 = rusqlite::Connection::open(dir.join("other.db"))
        .unwrap()
        .query_row("SELECT x FROM t", [], |r| r.get(0))
        .unwrap();
    assert_eq!(x, 42);
    // The database file alone, deep down, under another name.
    let deep = env.path("deep/var/lib/kf");
    std::fs::create_dir_all(&deep).unwrap();
    std::fs::copy(data.join("keyfount.db"), deep.join("kf.sqlite")).unwrap();
    let alone = env.path("alone.tar.gz");
    tar_czf(&alone, &env.path("deep"), &["var/lib/kf/kf.sqlite"]);
    let (code, j) = import_json(&env, &alone, &out, &["--db-name", "kf.sqlite"]);
    assert_eq!(code, 0, "{j}");
    assert_eq!(j["files"][0]["path"], "data/keyfount.db");
    restored(&env, j["archive"].as_str().unwrap(), "alone", 0);
    assert_eq!(written(&out).iter().filter(|n| n.ends_with("-imported.tar.gz")).count(), 4);
}

#[test]
fn a_tarball_of_a_killed_server_keeps_every_committed_transaction() {
    let env = Env::new();
    let data = env.data_dir("data", 2);
    let db = data.join("keyfount.db");
    let w = env.start_writer(&db, 300, false);
    w.wait_for(|s| s["last_seq"].as_i64().unwrap() >= 400);
    let status = w.status.clone();
    w.kill();
    let last_seq = serde_json::from_str::<Value>(&std::fs::read_to_string(status).unwrap()).unwrap()
        ["last_seq"]
        .as_i64()
        .unwrap();
    assert!(std::fs::metadata(format!("{}-wal", db.display())).unwrap().len() > 0);
    // The database file alone lacks what only the WAL holds: that is what the replay is for.
    let alone = env.path("alone");
    std::fs::create_dir(&alone).unwrap();
    std::fs::copy(&db, alone.join("keyfount.db")).unwrap();
    let plain: Value = serde_json::from_slice(
        &Command::new(sim_bin())
            .args(["check", "--db"])
            .arg(alone.join("keyfount.db"))
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    assert!(plain["last_seq"].as_i64().unwrap() < last_seq, "the WAL held nothing new: {plain}");

    let tarball = env.path("killed.tar.gz");
    tar_czf(&tarball, env.dir.path(), &["data"]);
    let out = env.path("backups");
    let (code, j) = import_json(&env, &tarball, &out, &[]);
    assert_eq!(code, 0, "{j}");
    let wal = &j["import"]["wal"];
    assert!(wal["folded"].as_u64().unwrap() > 0 && wal["transactions"].as_u64().unwrap() > 0, "{wal}");
    assert_eq!(
        wal["frames"].as_u64().unwrap(),
        wal["folded"].as_u64().unwrap() + wal["dropped"].as_u64().unwrap()
    );
    let paths = j["files"].to_string();
    assert!(!paths.contains("-wal") && !paths.contains("-shm"), "{paths}");
    restored(&env, j["archive"].as_str().unwrap(), "killed", last_seq);

    // Without its -shm (never needed: the WAL alone is replayed), the same.
    let no_shm = env.path("no-shm.tar.gz");
    let st = Command::new("tar")
        .arg("czf")
        .arg(&no_shm)
        .arg("--exclude=*-shm")
        .arg("-C")
        .arg(env.dir.path())
        .arg("data")
        .status()
        .unwrap();
    assert!(st.success());
    let (code, j) = import_json(&env, &no_shm, &out, &[]);
    assert_eq!(code, 0, "{j}");
    restored(&env, j["archive"].as_str().unwrap(), "no-shm", last_seq);
}

#[test]
fn tarballs_taken_while_a_writer_commits_are_consistent_or_refused() {
    let env = Env::new();
    let data = env.data_dir("data", 2);
    let out = env.path("backups");
    let mut refused = None;
    for (rate, runs) in [(0u32, 4), (100, 6)] {
        let w = env.start_writer(&data.join("keyfount.db"), rate, false);
        for run in 0..runs {
            w.wait_for(|s| s["commits"].as_i64().unwrap() > 20);
            let tarball = env.path(&format!("live-{rate}-{run}.tar.gz"));
            tar_czf(&tarball, env.dir.path(), &["data"]);
            let before = written(&out);
            let (code, j) = import_json(&env, &tarball, &out, &[]);
            match code {
                0 => {
                    restored(&env, j["archive"].as_str().unwrap(), &format!("{rate}-{run}"), 0);
                }
                3 => {
                    assert_eq!(j["ok"], false);
                    assert!(!j["problems"].as_array().unwrap().is_empty(), "{j}");
                    assert_eq!(written(&out), before, "a refused import wrote something");
                    refused = Some(tarball);
                }
                _ => panic!("exit {code}: {j}"),
            }
        }
        w.stop();
    }
    // What --salvage makes of a refused capture: an archive marked salvaged that verifies (or,
    // when not even the schema of the file as captured can be read, a refusal saying so).
    if let Some(tarball) = refused {
        let (code, j) = import_json(&env, &tarball, &out, &["--salvage"]);
        if code == 3 {
            assert!(j["error"]["message"].as_str().unwrap().contains("cannot be read"), "{j}");
            return;
        }
        assert_eq!(code, 0, "{j}");
        assert_eq!(j["salvaged"], true);
        assert_eq!(j["import"]["salvaged"]["method"], "row-copy");
        kf(&env, &["verify", j["archive"].as_str().unwrap()]).ok().stdout_has("SALVAGED");
        kf(&env, &["list", out.to_str().unwrap()]).ok().stdout_has("salvaged");
    }
}

#[test]
fn a_damaged_database_is_refused_and_salvaged_on_request() {
    let env = Env::new();
    let data = env.data_dir("data", 2);
    let db = data.join("keyfount.db");
    // Overwrite two leaf pages of sync_blobs with garbage.
    let (page_size, pages): (u64, Vec<i64>) = {
        let c = rusqlite::Connection::open(&db).unwrap();
        let ps: i64 = c.query_row("PRAGMA page_size", [], |r| r.get(0)).unwrap();
        let pages = c
            .prepare("SELECT pageno FROM dbstat WHERE name = 'sync_blobs' AND pagetype = 'leaf' ORDER BY pageno LIMIT 2 OFFSET 3")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        (ps as u64, pages)
    };
    assert_eq!(pages.len(), 2);
    {
        use std::os::unix::fs::FileExt;
        let f = std::fs::OpenOptions::new().write(true).open(&db).unwrap();
        for p in &pages {
            f.write_all_at(&vec![0xA5; page_size as usize], (*p as u64 - 1) * page_size).unwrap();
        }
    }
    let tarball = env.path("damaged.tar.gz");
    tar_czf(&tarball, env.dir.path(), &["data"]);
    let out = env.path("backups");
    let r = kf(&env, &["import", tarball.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    r.code(3).stdout_has("integrity_check").stdout_has("--salvage");
    assert!(written(&out).iter().all(|n| !n.contains(".tar.gz")), "{:?}", written(&out));

    let (code, j) = import_json(&env, &tarball, &out, &["--salvage"]);
    assert_eq!(code, 0, "{j}");
    assert_eq!(j["salvaged"], true);
    let tables = &j["import"]["salvaged"]["tables"];
    assert_eq!(tables["users"]["after"], 50, "{tables}");
    assert_eq!(tables["server_keys"]["after"], 3, "{tables}");
    let blobs = &tables["sync_blobs"];
    assert!(blobs["read_errors"].as_u64().unwrap() >= 1, "{blobs}");
    let (before, after) = (blobs["before"].as_u64().unwrap_or(448), blobs["after"].as_u64().unwrap());
    assert!(after > 0 && after < before, "rows after the damage are kept, the damaged ones lost: {blobs}");
    assert!(j["problems"].to_string().contains("integrity_check"), "{j}");
    let archive = j["archive"].as_str().unwrap();
    kf(&env, &["verify", archive]).ok();
    let human = kf(&env, &["import", tarball.to_str().unwrap(), "--out", out.to_str().unwrap(), "--salvage"]);
    human.ok().stdout_has("SALVAGED").stdout_has("sync_blobs");
}

#[test]
fn hostile_and_garbage_tarballs_are_refused_and_nothing_is_written() {
    let env = Env::new();
    let data = env.data_dir("data", 1);
    let db = std::fs::read(data.join("keyfount.db")).unwrap();
    let evil = format!("/tmp/kfadmin-import-evil-{}", std::process::id());
    let good = craft_tar(vec![(b"data/".to_vec(), Kind::Dir), file("data/keyfount.db", &db)]);
    let with = |extra: (Vec<u8>, Kind)| craft(vec![file("data/keyfount.db", &db), extra]);
    let cases: Vec<(&str, Vec<u8>, i32, &str)> = vec![
        ("dotdot", with(file("data/../../kfadmin-evil", b"x")), 2, "climbs out"),
        ("absolute", with((evil.as_bytes().to_vec(), Kind::File(b"x".to_vec()))), 2, "absolute"),
        (
            "symlink",
            craft(vec![(b"data/keyfount.db".to_vec(), Kind::Symlink("/etc/shadow"))]),
            2,
            "symbolic link",
        ),
        ("hardlink", with((b"data/keyfount.db-wal".to_vec(), Kind::HardLink("/etc/shadow"))), 2, "hard link"),
        ("device", with((b"data/null".to_vec(), Kind::CharDevice)), 2, "character device"),
        ("fifo", with((b"data/pipe".to_vec(), Kind::Fifo)), 2, "FIFO"),
        ("huge", with((b"data/huge.bin".to_vec(), Kind::Lying(1 << 40))), 2, "can hold"),
        ("twice", with(file("data/keyfount.db", b"second")), 2, "appears twice"),
        ("inside-a-file", with(file("data/keyfount.db/x", b"x")), 2, "inside the file"),
        ("text", b"my shopping list\n".to_vec(), 2, "not a tar archive"),
        ("empty", vec![], 2, "holds no file"),
        ("gzip-of-noise", gzip_bytes(&[7u8; 5000]), 2, "not a tar archive"),
        (
            "truncated-gzip",
            {
                let g = gzip_bytes(&good);
                g[..g.len() / 2].to_vec()
            },
            3,
            "is damaged",
        ),
        ("truncated-tar", good[..good.len() - 3000].to_vec(), 3, "is damaged"),
        (
            "no-database",
            craft(vec![file("data/notes.txt", b"x"), file("data/other.db", &db)]),
            2,
            "holds no keyfount.db",
        ),
        (
            "two-databases",
            craft(vec![file("a/keyfount.db", &db), file("b/keyfount.db", &db)]),
            2,
            "a/keyfount.db, b/keyfount.db",
        ),
        (
            "not-sqlite",
            craft(vec![file("data/keyfount.db", b"not a database at all")]),
            3,
            "data/keyfount.db cannot be trusted",
        ),
    ];
    let out = env.path("backups");
    for (name, bytes, want, says) in cases {
        let path = env.path(&format!("{name}.tar.gz"));
        std::fs::write(&path, &bytes).unwrap();
        let r = kf(&env, &["import", path.to_str().unwrap(), "--out", out.to_str().unwrap()]);
        assert_eq!(r.code, want, "{name}: {}", r.stderr);
        // A refused database is a verdict, on stdout; other refusals are errors, on stderr.
        assert!(r.stderr.contains(says) || r.stdout.contains(says), "{name}: {}{}", r.stdout, r.stderr);
        let (code, j) = import_json(&env, &path, &out, &[]);
        assert_eq!(code, want, "{name}: {j}");
        // A refused database is reported as the import's verdict (ok: false), others as an error.
        let verdict =
            want == 3 && j["ok"] == false && j["problems"].as_array().is_some_and(|p| !p.is_empty());
        assert!(verdict || j["error"]["exit_code"].as_i64() == Some(want as i64), "{name}: {j}");
        assert!(written(&out).iter().all(|n| !n.contains(".tar.gz")), "{name}: {:?}", written(&out));
        assert_eq!(ls(&env.path("state/staging")), Vec::<String>::new(), "{name}: staging left behind");
        std::fs::remove_file(&path).unwrap();
    }
    assert!(!Path::new(&evil).exists());
    assert!(!env.dir.path().parent().unwrap().join("kfadmin-evil").exists());
    // A name that is not a file name, and a tarball that is not there: usage errors.
    kf(&env, &["import", "nope.tar.gz"]).code(2);
    let ok = env.path("ok.tar.gz");
    std::fs::write(&ok, gzip_bytes(&good)).unwrap();
    kf(&env, &["import", ok.to_str().unwrap(), "--db-name", "../keyfount.db"])
        .code(2)
        .stderr_has("--db-name");
    kf(&env, &["import", ok.to_str().unwrap(), "--name", "../x"]).code(2).stderr_has("--name");
}

#[test]
fn verify_and_restore_of_a_hand_made_tarball_say_how_to_import_it() {
    let env = Env::new();
    let data = env.data_dir("data", 1);
    let gz = env.path("old.tar.gz");
    tar_czf(&gz, env.dir.path(), &["data"]);
    let plain = env.path("old.tar");
    assert!(Command::new("tar")
        .arg("cf")
        .arg(&plain)
        .arg("-C")
        .arg(env.dir.path())
        .arg("data")
        .status()
        .unwrap()
        .success());
    for t in [&gz, &plain] {
        let hint = format!("turn it into a kfadmin archive with: kfadmin import {}", t.display());
        kf(&env, &["verify", t.to_str().unwrap()])
            .code(3)
            .stdout_has("looks like a tarball made by hand")
            .stdout_has(&hint);
        let target = env.path("target");
        kf(&env, &["restore", t.to_str().unwrap(), "--data-dir", target.to_str().unwrap(), "--yes"])
            .code(3)
            .stdout_has(&hint);
    }
    let _ = data;
}

#[test]
fn an_import_can_be_encrypted_and_pruned_like_a_backup() {
    let env = Env::new();
    let data = env.data_dir("data", 1);
    let out = env.path("backups");
    let state = env.path("state");
    let pass =
        [("KFADMIN_STATE_DIR", state.to_str().unwrap()), ("KFADMIN_PASSPHRASE", "correct horse battery")];
    let mut archives: Vec<PathBuf> = Vec::new();
    for (i, t) in ["2024-01-01 03:00 UTC", "2024-02-01 03:00 UTC"].iter().enumerate() {
        let st = Command::new("touch").args(["-d", t]).arg(data.join("keyfount.db")).status().unwrap();
        assert!(st.success());
        let tarball = env.path(&format!("old-{i}.tar.gz"));
        tar_czf(&tarball, env.dir.path(), &["data"]);
        let r = kfadmin_env(
            &pass,
            [
                "import",
                tarball.to_str().unwrap(),
                "--out",
                out.to_str().unwrap(),
                "--name",
                "kf",
                "--passphrase",
                "--json",
            ],
        );
        let j = r.ok().json();
        assert_eq!(j["encrypted"], true);
        archives.push(PathBuf::from(j["archive"].as_str().unwrap()));
    }
    assert!(
        archives[0].to_str().unwrap().ends_with("kf-20240101T030000Z-imported.tar.gz.age"),
        "{archives:?}"
    );
    kfadmin_env(&pass, ["verify", archives[1].to_str().unwrap()]).ok();
    let r = kf(&env, &["prune", out.to_str().unwrap(), "--keep-last", "1", "--json"]);
    let j = r.ok().json();
    assert_eq!(j["removed"], 1, "{j}");
    assert!(!archives[0].exists() && archives[1].exists());
}

/// Run kfadmin and return its exit code, stdout, stderr and peak resident memory in bytes
/// (kfadmin's alone, measured by GNU time: see `under_time`).
fn peak_rss(env: &Env, args: &[&str]) -> (i32, String, String, u64) {
    let mut cmd = Command::new(kfadmin_bin());
    cmd.args(args).env("KFADMIN_STATE_DIR", env.path("state")).env_remove("KFADMIN_BACKUP_DIR");
    let (mut cmd, file) = under_time(&cmd, env.dir.path());
    let out = cmd.stdin(std::process::Stdio::null()).output().unwrap();
    let code = out.status.code().unwrap_or(-1);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    (code, stdout, stderr, peak_kib(&file) * 1024)
}

/// A tar.gz that starts with a GNU long-name record declaring 2 GiB, of which 512 MiB of
/// zeros follow (a multi-member gzip of well under 1 MB): read whole, it takes gigabytes.
fn long_name_bomb() -> Vec<u8> {
    let mut h = tar::Header::new_gnu();
    h.as_old_mut().name[..13].copy_from_slice(b"././@LongLink");
    h.set_entry_type(tar::EntryType::GNULongName);
    h.set_size(2 << 30);
    h.set_mode(0o644);
    h.set_cksum();
    let mut gz = gzip_bytes(h.as_bytes());
    let mib = {
        use std::io::Write;
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        e.write_all(&vec![0u8; 1 << 20]).unwrap();
        e.finish().unwrap()
    };
    for _ in 0..512 {
        gz.extend_from_slice(&mib);
    }
    gz
}

#[test]
fn a_huge_long_name_record_is_refused_before_it_is_read() {
    let env = Env::new();
    let bomb = env.path("bomb.tar.gz");
    std::fs::write(&bomb, long_name_bomb()).unwrap();
    let out = env.path("backups");
    std::fs::create_dir_all(&out).unwrap();
    let (code, _, err, rss) =
        peak_rss(&env, &["import", bomb.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("long-name record declares 2147483648 bytes"), "{err}");
    assert!(rss <= 256 << 20, "import peaked at {rss} bytes");
    assert_eq!(written(&out), Vec::<String>::new());
    // The same record at the start of a file named like an archive: verify fails it on the
    // tar check with a short line, in bounded memory; list does not choke on it.
    let repo = env.path("repo");
    std::fs::create_dir_all(&repo).unwrap();
    let archive = repo.join("kf-20260101T000000Z-online.tar.gz");
    std::fs::copy(&bomb, &archive).unwrap();
    let (code, stdout, err, rss) = peak_rss(&env, &["verify", archive.to_str().unwrap()]);
    assert_eq!(code, 3, "{stdout}{err}");
    assert!(stdout.contains("long-name record declares"), "{stdout}");
    assert!(stdout.lines().all(|l| l.len() < 1000), "{stdout}");
    assert!(rss <= 256 << 20, "verify peaked at {rss} bytes");
    let (_, _, _, rss) = peak_rss(&env, &["list", "-r", repo.to_str().unwrap()]);
    assert!(rss <= 256 << 20, "list peaked at {rss} bytes");
}

#[test]
fn long_names_are_cut_in_messages_and_a_pax_global_header_is_accepted() {
    let env = Env::new();
    let data = env.data_dir("data", 1);
    let db = std::fs::read(data.join("keyfount.db")).unwrap();
    // A 10 000-byte name (a GNU long-name record of 10 kB: allowed, but not worth quoting whole).
    let long = format!("/{}", "a".repeat(10_000));
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(1);
    h.set_mode(0o600);
    b.append_data(&mut h, "data/keyfount.db", &db[..]).ok();
    let mut t = tar::Header::new_gnu();
    t.set_size(1);
    t.set_mode(0o600);
    t.set_entry_type(tar::EntryType::Regular);
    b.append_data(&mut t, "x", &b"x"[..]).unwrap();
    let mut tar = b.into_inner().unwrap();
    // Put the long absolute name in through a GNU long-name record written by hand.
    let mut l = tar::Header::new_gnu();
    l.as_old_mut().name[..13].copy_from_slice(b"././@LongLink");
    l.set_entry_type(tar::EntryType::GNULongName);
    l.set_size(long.len() as u64 + 1);
    l.set_cksum();
    let mut rec = l.as_bytes().to_vec();
    rec.extend_from_slice(long.as_bytes());
    rec.resize(512 + (long.len() + 1).div_ceil(512) * 512, 0);
    tar.splice(0..0, rec);
    let path = env.path("long.tar.gz");
    std::fs::write(&path, gzip_bytes(&tar)).unwrap();
    let out = env.path("backups");
    let r = kf(&env, &["import", path.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    r.code(2).stderr_has("is an absolute path").stderr_has("(10001 bytes in all)");
    assert!(r.stderr.len() < 2000, "{}", r.stderr);

    // `git archive` starts its tarball with a PAX global header (the commit id).
    let repo = env.path("git");
    std::fs::create_dir_all(repo.join("data")).unwrap();
    std::fs::copy(data.join("keyfount.db"), repo.join("data/keyfount.db")).unwrap();
    let git = |args: &[&str]| {
        let st = Command::new("git")
            .args(["-c", "user.name=t", "-c", "user.email=t@t", "-c", "safe.directory=*"])
            .args(args)
            .current_dir(&repo)
            .output()
            .unwrap();
        assert!(st.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&st.stderr));
        st.stdout
    };
    git(&["init", "-q"]);
    git(&["add", "data"]);
    git(&["commit", "-qm", "db"]);
    let gz = env.path("git.tar.gz");
    std::fs::write(&gz, git(&["archive", "--format=tar.gz", "HEAD"])).unwrap();
    let (code, j) = import_json(&env, &gz, &out, &[]);
    assert_eq!(code, 0, "{j}");
}

#[test]
fn an_unreadable_database_is_refused_by_its_name_and_an_import_is_dated_by_its_newest_member() {
    let env = Env::new();
    let data = env.data_dir("data", 1);
    let mut db = std::fs::read(data.join("keyfount.db")).unwrap();
    let out = env.path("backups");
    let staging = env.path("state").display().to_string();
    db[16..20].copy_from_slice(b"XXXX"); // the page size and format bytes of the header
    let cases = [("empty", Vec::new()), ("not-sqlite", b"hello, not a database".repeat(50)), ("header", db)];
    for (name, bytes) in cases {
        let path = env.path(&format!("{name}.tar.gz"));
        std::fs::write(&path, craft(vec![file("data/keyfount.db", &bytes)])).unwrap();
        for salvage in [&[][..], &["--salvage"][..]] {
            let mut args = vec!["import", path.to_str().unwrap(), "--out", out.to_str().unwrap()];
            args.extend(salvage);
            let r = kf(&env, &args);
            r.code(3);
            let said = format!("{}{}", r.stdout, r.stderr);
            assert!(
                said.contains("data/keyfount.db") && !said.contains(&staging),
                "{name} {salvage:?}: {said}"
            );
            assert!(!salvage.is_empty() || said.contains("--salvage"), "{name}: {said}");
            assert!(written(&out).iter().all(|n| !n.contains(".tar.gz")), "{name}: {:?}", written(&out));
        }
    }
    // A WAL server's database file is as old as its last checkpoint; its -wal is newer.
    let mut b = tar::Builder::new(Vec::new());
    for (member, mtime) in [("data/keyfount.db", 1_600_000_000u64), ("data/keyfount.db-wal", 1_700_000_000)] {
        let body = if member.ends_with("-wal") {
            Vec::new()
        } else {
            std::fs::read(data.join("keyfount.db")).unwrap()
        };
        let mut h = tar::Header::new_gnu();
        h.set_size(body.len() as u64);
        h.set_mode(0o600);
        h.set_mtime(mtime);
        b.append_data(&mut h, member, &body[..]).unwrap();
    }
    let path = env.path("dated.tar.gz");
    std::fs::write(&path, gzip_bytes(&b.into_inner().unwrap())).unwrap();
    let (code, j) = import_json(&env, &path, &out, &[]);
    assert_eq!(code, 0, "{j}");
    assert!(written(&out).iter().any(|n| n.contains("20231114T221320Z-imported")), "{:?}", written(&out));
}

/// Where each commit frame of a `-wal` starts, in the header's use of the file (its salt).
fn commit_frames(wal: &[u8]) -> Vec<usize> {
    let page = u32::from_be_bytes(wal[8..12].try_into().unwrap()) as usize;
    let mut at = Vec::new();
    let mut off = 32;
    while off + 24 + page <= wal.len() && wal[off + 8..off + 16] == wal[16..24] {
        if wal[off + 4..off + 8] != [0; 4] {
            at.push(off);
        }
        off += 24 + page;
    }
    at
}

#[test]
fn a_wal_damaged_in_the_middle_is_refused_whatever_the_member_order() {
    let env = Env::new();
    let data = env.data_dir("data", 1);
    let db = data.join("keyfount.db");
    let w = env.start_writer(&db, 200, false);
    w.wait_for(|s| s["last_seq"].as_i64().unwrap() >= 40);
    w.kill();
    let wal_path = data.join("keyfount.db-wal");
    let intact = std::fs::read(&wal_path).unwrap();
    let commits = commit_frames(&intact);
    assert!(commits.len() >= 5, "the writer's WAL holds {} commits", commits.len());
    let out = env.path("backups");
    let orders: [&[&str]; 4] = [
        &["data/keyfount.db-wal", "data/keyfount.db", "data/keyfount.db-shm"],
        &["data/keyfount.db", "data/keyfount.db-wal", "data/keyfount.db-shm"],
        &["data/keyfount.db-shm", "data/keyfount.db", "data/keyfount.db-wal"],
        &["data/keyfount.db-wal", "data/keyfount.db"],
    ];
    // One bit of the 4th commit's page flipped; one bit of the WAL header flipped.
    let mut mid = intact.clone();
    mid[commits[3] + 24 + 100] ^= 0x10;
    let mut head = intact.clone();
    head[12] ^= 0x01;
    for (what, bytes, lost) in [("mid", &mid, commits.len() - 3), ("header", &head, commits.len())] {
        std::fs::write(&wal_path, bytes).unwrap();
        for (i, members) in orders.iter().enumerate() {
            let tarball = env.path(&format!("{what}-{i}.tar.gz"));
            tar_czf(&tarball, env.dir.path(), members);
            let (code, j) = import_json(&env, &tarball, &out, &[]);
            assert_eq!(code, 3, "{what} {members:?}: {j}");
            let said = j["problems"].to_string();
            assert!(
                said.contains(&format!("would lose {lost} committed transaction(s)")),
                "{what} {members:?}: {said}"
            );
            assert!(written(&out).iter().all(|n| !n.contains(".tar.gz")), "{:?}", written(&out));
        }
        let tarball = env.path(&format!("{what}-0.tar.gz"));
        let (code, j) = import_json(&env, &tarball, &env.path(&format!("salvaged-{what}")), &["--salvage"]);
        assert_eq!((code, &j["salvaged"]), (0, &Value::Bool(true)), "{what}: {j}");
    }
    // The intact WAL still imports whole.
    std::fs::write(&wal_path, &intact).unwrap();
    let tarball = env.path("intact.tar.gz");
    tar_czf(&tarball, env.dir.path(), orders[0]);
    let (code, j) = import_json(&env, &tarball, &out, &[]);
    assert_eq!(code, 0, "{j}");
    assert_eq!(j["import"]["wal"]["transactions"].as_u64(), Some(commits.len() as u64), "{j}");
}

#[test]
fn salvage_copies_every_row_readable_past_30_zeroed_pages() {
    let env = Env::new();
    let data = env.data_dir("data", 4);
    let db = data.join("keyfount.db");
    let c = rusqlite::Connection::open(&db).unwrap();
    let pages: Vec<i64> = c
        .prepare("SELECT pageno FROM dbstat WHERE name = 'sync_blobs' AND pagetype = 'leaf' ORDER BY pageno LIMIT 30 OFFSET 20")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let ps: i64 = c.query_row("PRAGMA page_size", [], |r| r.get(0)).unwrap();
    let max: i64 = c.query_row("SELECT max(rowid) FROM sync_blobs", [], |r| r.get(0)).unwrap();
    c.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)").unwrap();
    drop(c);
    assert_eq!(pages.len(), 30);
    {
        use std::os::unix::fs::FileExt;
        let f = std::fs::OpenOptions::new().write(true).open(&db).unwrap();
        for p in &pages {
            f.write_all_at(&vec![0; ps as usize], (*p as u64 - 1) * ps as u64).unwrap();
        }
    }
    // What can be read at all: each row looked up by its rowid.
    let c = rusqlite::Connection::open_with_flags(&db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    let readable = (1..=max)
        .filter(|i| c.query_row("SELECT data FROM sync_blobs WHERE rowid = ?1", [i], |_| Ok(())).is_ok())
        .count() as u64;
    drop(c);
    let tarball = env.path("zeroed.tar.gz");
    tar_czf(&tarball, env.dir.path(), &["data"]);
    let (code, j) = import_json(&env, &tarball, &env.path("backups"), &["--salvage"]);
    assert_eq!(code, 0, "{j}");
    let t = &j["import"]["salvaged"]["tables"]["sync_blobs"];
    let copied = t["after"].as_u64().unwrap() + t["orphans_removed"].as_u64().unwrap();
    assert_eq!(copied + t["rows_refused"].as_u64().unwrap(), readable, "{t}");
}
