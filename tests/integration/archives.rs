//! Corrupt and hostile archives: `verify` exits 3 naming the failed check, and `restore`
//! refuses with the data directory unchanged and nothing written outside it.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use crate::util::*;

/// A real archive's manifest and database bytes, to build fixtures from.
struct Parts {
    manifest: Vec<u8>,
    db: Vec<u8>,
}

fn real_archive(env: &Env) -> (PathBuf, Parts) {
    let data = env.data_dir("src", 2);
    let report = backup(&data.join("keyfount.db"), &env.path("good"));
    let path = PathBuf::from(report["archive"].as_str().unwrap());
    let mut ar = tar::Archive::new(flate2::read::MultiGzDecoder::new(std::fs::File::open(&path).unwrap()));
    let mut manifest = Vec::new();
    let mut db = Vec::new();
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        let p = e.path().unwrap().into_owned();
        if p == Path::new("kfadmin-manifest.json") {
            e.read_to_end(&mut manifest).unwrap();
        } else if p == Path::new("data/keyfount.db") {
            e.read_to_end(&mut db).unwrap();
        }
    }
    assert!(!manifest.is_empty() && !db.is_empty());
    (path, Parts { manifest, db })
}

/// Each fixture, and the check that must name it.
fn fixtures(env: &Env, good: &Path, p: &Parts) -> Vec<(&'static str, PathBuf, &'static [&'static str])> {
    let dir = env.path("bad");
    std::fs::create_dir_all(&dir).unwrap();
    let bytes = std::fs::read(good).unwrap();
    let sidecar = std::fs::read_to_string(format!("{}.sha256", good.display())).unwrap();
    let evil_abs = format!("/tmp/kfadmin-evil-{}", std::process::id());
    let mut out = Vec::new();
    let mut put =
        |name: &'static str, data: Vec<u8>, with_sidecar: Option<String>, checks: &'static [&'static str]| {
            let path = dir.join(format!("{name}.tar.gz"));
            std::fs::write(&path, data).unwrap();
            if let Some(s) = with_sidecar {
                std::fs::write(format!("{}.sha256", path.display()), s).unwrap();
            }
            out.push((name, path, checks));
        };
    put("truncated", bytes[..bytes.len() / 2].to_vec(), Some(sidecar.clone()), &["gzip"]);
    let mut flipped = bytes.clone();
    let mid = flipped.len() / 2;
    flipped[mid] ^= 0x40;
    put("flipped", flipped, Some(sidecar.clone()), &["gzip", "files"]);
    put("wrong-checksum", bytes.clone(), Some(format!("{}  x.tar.gz\n", "0".repeat(64))), &["sidecar"]);
    put(
        "no-manifest",
        craft(vec![(b"data/".to_vec(), Kind::Dir), file("data/keyfount.db", &p.db)]),
        None,
        &["manifest"],
    );
    let mut huge = p.manifest.clone();
    huge.extend(std::iter::repeat_n(b' ', 2 << 20));
    put(
        "huge-manifest",
        craft(vec![file("kfadmin-manifest.json", &huge), file("data/keyfount.db", &p.db)]),
        None,
        &["manifest"],
    );
    put(
        "dotdot",
        craft(vec![
            file("kfadmin-manifest.json", &p.manifest),
            (b"data/".to_vec(), Kind::Dir),
            file("data/../../kfadmin-evil", b"pwned"),
            file("data/keyfount.db", &p.db),
        ]),
        None,
        &["tar"],
    );
    put(
        "absolute",
        craft(vec![
            file("kfadmin-manifest.json", &p.manifest),
            (evil_abs.as_bytes().to_vec(), Kind::File(b"pwned".to_vec())),
            file("data/keyfount.db", &p.db),
        ]),
        None,
        &["tar"],
    );
    put(
        "symlink",
        craft(vec![
            file("kfadmin-manifest.json", &p.manifest),
            (b"data/".to_vec(), Kind::Dir),
            (b"data/keyfount.db".to_vec(), Kind::Symlink("/etc/passwd")),
        ]),
        None,
        &["tar"],
    );
    put(
        "hardlink",
        craft(vec![
            file("kfadmin-manifest.json", &p.manifest),
            (b"data/".to_vec(), Kind::Dir),
            file("data/keyfount.db", &p.db),
            (b"data/keyfount.db-wal".to_vec(), Kind::HardLink("/etc/passwd")),
        ]),
        None,
        &["tar"],
    );
    put(
        "device",
        craft(vec![
            file("kfadmin-manifest.json", &p.manifest),
            (b"data/".to_vec(), Kind::Dir),
            (b"data/keyfount.db".to_vec(), Kind::CharDevice),
        ]),
        None,
        &["tar"],
    );
    // A hot rollback journal beside the database, listed with its true size and hash.
    let journal = b"\xd9\xd5\x05\xf9\x20\xa1\x63\xd7 a hot journal header and pages".to_vec();
    let mut m: serde_json::Value = serde_json::from_slice(&p.manifest).unwrap();
    m["files"].as_array_mut().unwrap().push(serde_json::json!({
        "path": "data/keyfount.db-journal",
        "size": journal.len(),
        "sha256": format!("{:x}", <sha2::Sha256 as sha2::Digest>::digest(&journal)),
        "mode": 384, "uid": 0, "gid": 0
    }));
    put(
        "hot-journal",
        craft(vec![
            file("kfadmin-manifest.json", &serde_json::to_vec_pretty(&m).unwrap()),
            (b"data/".to_vec(), Kind::Dir),
            file("data/keyfount.db", &p.db),
            file("data/keyfount.db-journal", &journal),
        ]),
        None,
        &["manifest"],
    );
    // A file inside kfadmin's own safety directory's name, listed with its true size and hash:
    // restoring it would put a file where kfadmin keeps what a restore replaced.
    let mut m: serde_json::Value = serde_json::from_slice(&p.manifest).unwrap();
    m["files"].as_array_mut().unwrap().push(serde_json::json!({
        "path": "data/.kfadmin-pre-restore-20260101T000000Z/keyfount.db",
        "size": p.db.len(),
        "sha256": format!("{:x}", <sha2::Sha256 as sha2::Digest>::digest(&p.db)),
        "mode": 384, "uid": 0, "gid": 0
    }));
    put(
        "kfadmin-own-name",
        craft(vec![
            file("kfadmin-manifest.json", &serde_json::to_vec_pretty(&m).unwrap()),
            (b"data/".to_vec(), Kind::Dir),
            file("data/keyfount.db", &p.db),
            (b"data/.kfadmin-pre-restore-20260101T000000Z/".to_vec(), Kind::Dir),
            file("data/.kfadmin-pre-restore-20260101T000000Z/keyfount.db", &p.db),
        ]),
        None,
        &["manifest"],
    );
    let mut noise = vec![0u8; 4096];
    for (i, b) in noise.iter_mut().enumerate() {
        *b = (i * 131 % 251) as u8;
    }
    put("not-an-archive", noise, None, &["gzip"]);
    put("text-file", b"hello, I am a shopping list\n".to_vec(), None, &["gzip"]);
    out
}

/// The manifest of a real archive, edited.
fn edited(p: &Parts, edit: impl FnOnce(&mut serde_json::Value)) -> Vec<u8> {
    let mut m: serde_json::Value = serde_json::from_slice(&p.manifest).unwrap();
    edit(&mut m);
    serde_json::to_vec_pretty(&m).unwrap()
}

/// Archives the property tests (props.rs) found verify or restore mishandling.
fn found_by_properties(
    env: &Env,
    good: &Path,
    p: &Parts,
) -> Vec<(&'static str, PathBuf, &'static [&'static str])> {
    let dir = env.path("found");
    std::fs::create_dir_all(&dir).unwrap();
    let mut out = Vec::new();
    let mut put = |name: &'static str, data: Vec<u8>, checks: &'static [&'static str]| {
        let path = dir.join(format!("{name}.tar.gz"));
        std::fs::write(&path, data).unwrap();
        out.push((name, path, checks));
    };
    // A manifest that declares a terabyte: verify and restore said "not enough space" (exit 1).
    let huge = edited(p, |m| m["files"][0]["size"] = (1u64 << 40).into());
    put(
        "declares-a-terabyte",
        craft(vec![
            file("kfadmin-manifest.json", &huge),
            (b"data/".to_vec(), Kind::Dir),
            file("data/keyfount.db", &p.db),
        ]),
        &["manifest"],
    );
    // Sizes that add up past 2^64: a panic (debug) or a wrapped sum (release).
    let overflow = edited(p, |m| {
        m["files"][0]["size"] = u64::MAX.into();
        let mut second = m["files"][0].clone();
        second["path"] = "data/other.bin".into();
        m["files"].as_array_mut().unwrap().push(second);
    });
    put(
        "sizes-overflow",
        craft(vec![
            file("kfadmin-manifest.json", &overflow),
            (b"data/".to_vec(), Kind::Dir),
            file("data/keyfount.db", &p.db),
        ]),
        &["manifest"],
    );
    // Another gzip member after the end of the tar: verify said ok.
    let mut junk = std::fs::read(good).unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(b"hidden after the end of the archive").unwrap();
    junk.extend(gz.finish().unwrap());
    put("junk-after-the-end", junk, &["tar"]);
    // A directory where the manifest has a file: verify and restore failed with "cannot
    // create … File exists" (exit 1).
    put(
        "directory-over-the-database",
        craft(vec![
            file("kfadmin-manifest.json", &p.manifest),
            (b"data/".to_vec(), Kind::Dir),
            (b"data/keyfount.db/inner/".to_vec(), Kind::Dir),
            file("data/keyfount.db", &p.db),
        ]),
        &["tar"],
    );
    // A file inside another file: the same, from the manifest.
    let inner = b"inside the database file".to_vec();
    let nested = edited(p, |m| {
        m["files"].as_array_mut().unwrap().push(serde_json::json!({
            "path": "data/keyfount.db/inner",
            "size": inner.len(),
            "sha256": format!("{:x}", <sha2::Sha256 as sha2::Digest>::digest(&inner)),
            "mode": 384, "uid": 0, "gid": 0
        }))
    });
    put(
        "file-inside-a-file",
        craft(vec![
            file("kfadmin-manifest.json", &nested),
            (b"data/".to_vec(), Kind::Dir),
            file("data/keyfount.db", &p.db),
            file("data/keyfount.db/inner", &inner),
        ]),
        &["manifest"],
    );
    // The database listed twice.
    let twice = edited(p, |m| {
        let db = m["files"][0].clone();
        m["files"].as_array_mut().unwrap().push(db);
    });
    put(
        "listed-twice",
        craft(vec![
            file("kfadmin-manifest.json", &twice),
            (b"data/".to_vec(), Kind::Dir),
            file("data/keyfount.db", &p.db),
        ]),
        &["manifest"],
    );
    out
}

#[test]
fn corrupt_and_hostile_archives_fail_verification_and_restore_changes_nothing() {
    let env = Env::new();
    let (good, parts) = real_archive(&env);
    let target = env.data_dir("target", 1);
    let mut fixtures = fixtures(&env, &good, &parts);
    fixtures.extend(found_by_properties(&env, &good, &parts));
    // Everything under the test's directory, which holds the data directory and the parent
    // that a `../` entry would climb into.
    let before = snapshot_tree(env.dir.path());
    for (name, path, checks) in fixtures {
        // verify: exit 3, the failed check named in text and JSON.
        let r = kfadmin(["verify".as_ref(), path.as_os_str()]);
        r.code(3);
        assert!(r.stdout.contains("FAIL"), "{name}: {}", r.stdout);
        let r = kfadmin(["verify".as_ref(), "--json".as_ref(), path.as_os_str()]);
        r.code(3);
        let j = r.json();
        assert_eq!(j["ok"], false, "{name}");
        let failed: Vec<String> = j["archives"][0]["checks"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["status"] == "fail")
            .map(|c| c["name"].as_str().unwrap().to_string())
            .collect();
        assert!(
            failed.iter().any(|f| checks.contains(&f.as_str())),
            "{name}: expected a failed {checks:?}, got {failed:?}"
        );
        if name == "hot-journal" {
            let text = j["archives"][0]["checks"].to_string();
            assert!(text.contains("keyfount.db-journal: a hot rollback journal"), "{text}");
        }
        if name == "kfadmin-own-name" {
            let text = j["archives"][0]["checks"].to_string();
            assert!(text.contains("a name kfadmin keeps for its own safety and staging"), "{text}");
        }

        // restore: refused, the data directory and everything around it unchanged.
        let r = kfadmin([
            "restore".as_ref(),
            path.as_os_str(),
            "--data-dir".as_ref(),
            target.as_os_str(),
            "--yes".as_ref(),
        ]);
        r.code(3).stdout_has("Nothing in");
        // A restore into a directory that does not exist yet leaves none behind.
        let fresh = env.path("fresh");
        kfadmin([
            "restore".as_ref(),
            path.as_os_str(),
            "--data-dir".as_ref(),
            fresh.as_os_str(),
            "--yes".as_ref(),
        ])
        .code(3);
        assert!(!fresh.exists(), "{name}: a refused restore left {} behind", fresh.display());
        assert_eq!(snapshot_tree(env.dir.path()), before, "{name}: files changed");
        assert!(!Path::new(&format!("/tmp/kfadmin-evil-{}", std::process::id())).exists());
        assert!(!env.dir.path().parent().unwrap().join("kfadmin-evil").exists());
    }
}

#[test]
fn a_good_archive_passes_every_check_and_gnu_tar_reads_it() {
    let env = Env::new();
    let (good, _) = real_archive(&env);
    let r = kfadmin(["verify".as_ref(), "--json".as_ref(), good.as_os_str()]);
    r.ok();
    let j = r.json();
    let checks = j["archives"][0]["checks"].as_array().unwrap();
    let names: Vec<&str> = checks.iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        ["sidecar", "decrypt", "gzip", "tar", "manifest", "files", "integrity", "foreign_keys", "facts"]
    );
    for c in checks {
        let want = if c["name"] == "decrypt" { "skip" } else { "pass" };
        assert_eq!(c["status"], want, "{j}");
    }

    // --quick stops before SQLite and says so.
    let r = kfadmin(["verify".as_ref(), "--quick".as_ref(), good.as_os_str()]);
    r.ok().stdout_has("not run (--quick)");

    // The format is plain: GNU tar lists the manifest first, then data/.
    let out = std::process::Command::new("tar").arg("tzf").arg(&good).output().unwrap();
    assert!(out.status.success());
    let listing = String::from_utf8_lossy(&out.stdout);
    let names: Vec<&str> = listing.lines().collect();
    assert_eq!(names, ["kfadmin-manifest.json", "data/", "data/keyfount.db"]);
}

#[test]
fn verify_of_a_missing_archive_is_bad_input() {
    let env = Env::new();
    kfadmin(["verify".as_ref(), env.path("nope.tar.gz").as_os_str()]).code(2).stderr_has("does not exist");
}

/// Every name of the next minute is taken: by another archive, and its `-2-` by another
/// run's `.partial`. The backup takes `-3-`, and no file of the others changes.
#[test]
fn a_taken_name_gets_the_next_number_and_nothing_of_another_run_is_touched() {
    use kfadmin::archive::{catalog, writer};
    let env = Env::new();
    let data = env.data_dir("src", 1);
    let out = env.path("out");
    std::fs::create_dir(&out).unwrap();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    for t in now - 2..now + 60 {
        let base = writer::file_name("keyfount", t, "cold", false);
        std::fs::write(out.join(&base), b"another archive").unwrap();
        let second = catalog::with_seq(&base, 2).unwrap();
        std::fs::write(out.join(format!("{second}.partial")), b"another run's partial").unwrap();
    }
    let before = snapshot_tree(&out);
    // The writer itself (a backup command, holding the directory's lock, would also clear the
    // partials of dead runs first; the writer never touches a file it did not make).
    let written = crate::hostile::archive_into(&env, &data, &out, "taken");
    let j = serde_json::json!({ "archive": written.path, "sha256": written.sha256 });
    let archive = PathBuf::from(j["archive"].as_str().unwrap());
    let name = archive.file_name().unwrap().to_string_lossy().into_owned();
    let parsed = catalog::parse(&name).unwrap_or_else(|| panic!("{name} is not an archive name"));
    assert_eq!((parsed.name.as_str(), parsed.seq), ("keyfount", 3), "{name}");
    let after = snapshot_tree(&out);
    for (file, sum) in &before {
        assert_eq!(after.get(file), Some(sum), "{file} was changed or removed");
    }
    let sidecar = std::fs::read_to_string(format!("{}.sha256", archive.display())).unwrap();
    assert_eq!(sidecar, format!("{}  {name}\n", j["sha256"].as_str().unwrap()));
    kfadmin(["verify".as_ref(), archive.as_os_str()]).ok();
    // The newest archive of that second is listed first.
    let r = kfadmin(["list".as_ref(), "--json".as_ref(), out.as_os_str()]);
    let listed = r.json();
    let first =
        listed["archives"].as_array().unwrap().iter().find(|a| a["created_unix"] == parsed.created_unix);
    assert_eq!(first.unwrap()["file_name"], name.as_str());
}

/// Two real backups of one database into one directory, started together until they land
/// in the same second: both succeed, with distinct names, and both verify.
#[test]
fn two_backups_of_one_name_in_the_same_second_both_succeed() {
    use kfadmin::archive::catalog;
    let env = Env::new();
    let db = env.data_dir("src", 1).join("keyfount.db");
    for attempt in 0..20 {
        let out = env.path(&format!("out-{attempt}"));
        // Two state directories: two kfadmins that do not share a lock (two users, two
        // installations), so nothing but the names keeps them apart.
        let spawn = |state: &str| {
            std::process::Command::new(kfadmin_bin())
                .env("KFADMIN_STATE_DIR", env.path(state))
                .args(["backup", "--online", "--json", "--db"])
                .arg(&db)
                .arg("--out")
                .arg(&out)
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        };
        let (a, b) = (spawn("state-a"), spawn("state-b"));
        let runs: Vec<Run> = [a, b].into_iter().map(|c| c.wait_with_output().unwrap().into()).collect();
        let mut names = Vec::new();
        for r in &runs {
            r.ok();
            let path = PathBuf::from(r.json()["archive"].as_str().unwrap());
            kfadmin(["verify".as_ref(), path.as_os_str()]).ok();
            names.push(path.file_name().unwrap().to_string_lossy().into_owned());
        }
        assert_ne!(names[0], names[1]);
        let parsed: Vec<_> = names.iter().map(|n| catalog::parse(n).unwrap()).collect();
        if parsed[0].created_unix == parsed[1].created_unix {
            let mut seqs = [parsed[0].seq, parsed[1].seq];
            seqs.sort();
            assert_eq!(seqs, [1, 2], "{names:?}");
            let left: Vec<String> = ls(&out).into_iter().filter(|f| f.ends_with(".partial")).collect();
            assert!(left.is_empty(), "left behind: {left:?}");
            return;
        }
    }
    panic!("20 pairs of backups never started in the same second");
}

/// Bytes of `gzip -6` of a file (the system's gzip).
fn gzip6_bytes(file: &Path) -> u64 {
    let out = std::process::Command::new("gzip").args(["-6", "-c"]).arg(file).output().unwrap();
    assert!(out.status.success());
    out.stdout.len() as u64
}

#[test]
fn archives_are_as_small_as_gzip_6_on_text_heavy_and_random_databases() {
    // A text-heavy database (an audit log with hex ids between random vault blobs, pages
    // split by rewrites) and the default one (random 4 KiB blobs): the archive is at most
    // 2 % larger than `gzip -6` of the database file, GNU tar reads it, and it verifies.
    let env = Env::new();
    for (name, extra) in [("text", &["--text-heavy"][..]), ("random", &[][..])] {
        let db = env.path(name).join("keyfount.db");
        let out = std::process::Command::new(sim_bin())
            .args(["init", "--size-mb", "8", "--db"])
            .arg(&db)
            .args(extra)
            .output()
            .unwrap();
        assert!(out.status.success(), "init failed: {}", String::from_utf8_lossy(&out.stderr));
        let gzip6 = gzip6_bytes(&db);
        let report = backup(&db, &env.path(&format!("out-{name}")));
        let archive = PathBuf::from(report["archive"].as_str().unwrap());
        let bytes = std::fs::metadata(&archive).unwrap().len();
        assert!(
            bytes as f64 <= gzip6 as f64 * 1.02,
            "{name}: the archive has {bytes} bytes, gzip -6 of the database {gzip6} ({:.3}×)",
            bytes as f64 / gzip6 as f64
        );
        let t = std::process::Command::new("tar").arg("tzf").arg(&archive).output().unwrap();
        assert!(t.status.success(), "{name}: GNU tar: {}", String::from_utf8_lossy(&t.stderr));
        assert_eq!(String::from_utf8_lossy(&t.stdout), "kfadmin-manifest.json\ndata/\ndata/keyfount.db\n");
        kfadmin(["verify".as_ref(), archive.as_os_str()]).ok();
    }
}
