//! Encrypted archives (age): recipients, SSH keys, passphrases, the `age` command-line tool in
//! both directions, wrong keys, damaged files, and no plaintext left behind.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::util::*;

/// An age key pair made by `age-keygen`: (identity file, recipient).
fn age_key(env: &Env, name: &str) -> (PathBuf, String) {
    let path = env.path(&format!("{name}.key"));
    let out = Command::new("age-keygen").arg("-o").arg(&path).output().expect("age-keygen (Debian's age)");
    assert!(out.status.success());
    let text = std::fs::read_to_string(&path).unwrap();
    let recipient = text.lines().find_map(|l| l.strip_prefix("# public key: ")).unwrap().to_string();
    (path, recipient)
}

/// An unencrypted SSH key pair: (private key file, public key line).
fn ssh_key(env: &Env, name: &str, kind: &str) -> (PathBuf, String) {
    let path = env.path(name);
    let mut cmd = Command::new("ssh-keygen");
    cmd.args(["-q", "-t", kind, "-N", "", "-C", "kfadmin-test", "-f"]).arg(&path);
    if kind == "rsa" {
        cmd.args(["-b", "2048"]);
    }
    assert!(cmd.status().expect("ssh-keygen (openssh-client)").success());
    (path.clone(), std::fs::read_to_string(path.with_extension("pub")).unwrap().trim().to_string())
}

fn encrypted_backup(db: &Path, out: &Path, extra: &[&str]) -> serde_json::Value {
    let mut args =
        vec!["backup", "--online", "--db", db.to_str().unwrap(), "--out", out.to_str().unwrap(), "--json"];
    args.extend_from_slice(extra);
    let r = kfadmin(args);
    r.ok();
    r.json()
}

fn failed_checks(j: &serde_json::Value) -> Vec<String> {
    j["archives"][0]["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["status"] == "fail")
        .map(|c| format!("{}: {}", c["name"].as_str().unwrap(), c["detail"].as_str().unwrap()))
        .collect()
}

#[test]
fn an_archive_encrypted_to_an_age_key_is_verified_restored_and_read_by_the_age_tool() {
    let env = Env::new();
    let data = env.data_dir("data", 2);
    let (key, recipient) = age_key(&env, "alice");
    let j = encrypted_backup(&data.join("keyfount.db"), &env.path("b"), &["--encrypt-to", &recipient]);
    assert_eq!(j["encrypted"], true);
    assert_eq!(j["recipients"][0], recipient.as_str());
    let archive = j["archive"].as_str().unwrap().to_string();
    assert!(archive.ends_with("-online.tar.gz.age"), "{archive}");
    let bytes = std::fs::read(&archive).unwrap();
    assert!(bytes.starts_with(b"age-encryption.org/v1\n"));
    assert!(!bytes.windows(16).any(|w| w == b"SQLite format 3\0"), "plaintext in the archive");

    // The age tool decrypts it; GNU tar lists the manifest first.
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!("age -d -i '{}' '{}' | tar tzf -", key.display(), archive))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).lines().collect::<Vec<_>>(),
        ["kfadmin-manifest.json", "data/", "data/keyfount.db"]
    );

    // verify: with the identity everything is checked; without, a full check fails (3) and a
    // quick one checks the sidecar and says the contents were not checked.
    kfadmin(["verify", "-i", key.to_str().unwrap(), &archive]).ok().stdout_has("ok    decrypt");
    kfadmin(["verify", &archive]).code(2).stdout_has("pass --identity");
    kfadmin(["verify", "--quick", &archive]).ok().stdout_has("contents were not checked");
    let from_env: Run = Command::new(kfadmin_bin())
        .args(["verify", &archive])
        .env("KFADMIN_IDENTITY_FILE", &key)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap()
        .into();
    from_env.ok();

    let target = env.path("restored");
    kfadmin([
        "restore",
        &archive,
        "--data-dir",
        target.to_str().unwrap(),
        "--yes",
        "--force",
        "-i",
        key.to_str().unwrap(),
    ])
    .ok();
    check_db(&target.join("keyfount.db"), 0);

    // list, status and prune treat it like any other archive.
    kfadmin(["list", env.path("b").to_str().unwrap()]).ok().stdout_has("online (age)");
    kfadmin(["list", "--check", env.path("b").to_str().unwrap()]).ok();
    kfadmin([
        "status",
        "--db",
        data.join("keyfount.db").to_str().unwrap(),
        "--backup-dir",
        env.path("b").to_str().unwrap(),
    ])
    .ok();
    kfadmin(["prune", env.path("b").to_str().unwrap(), "--keep-last", "1", "--dry-run"])
        .ok()
        .stdout_has("KEEP");
}

#[test]
fn two_recipients_either_can_restore_including_ssh_keys() {
    let env = Env::new();
    let data = env.data_dir("data", 2);
    let (age_id, age_r) = age_key(&env, "ops");
    let (ed_id, ed_r) = ssh_key(&env, "id_ed25519", "ed25519");
    let (rsa_id, rsa_r) = ssh_key(&env, "id_rsa", "rsa");
    let recipients = env.path("recipients.txt");
    std::fs::write(&recipients, format!("# who may read Keyfount's backups\n{ed_r}\n\n{rsa_r}\n")).unwrap();
    let j = encrypted_backup(
        &data.join("keyfount.db"),
        &env.path("b"),
        &["--encrypt-to", &age_r, "--recipients-file", recipients.to_str().unwrap()],
    );
    assert_eq!(j["recipients"].as_array().unwrap().len(), 3);
    let archive = j["archive"].as_str().unwrap().to_string();
    for (tag, id) in [("age", &age_id), ("ed25519", &ed_id), ("rsa", &rsa_id)] {
        let target = env.path(&format!("restored-{tag}"));
        kfadmin([
            "restore",
            &archive,
            "--data-dir",
            target.to_str().unwrap(),
            "--yes",
            "--force",
            "--identity",
            id.to_str().unwrap(),
        ])
        .ok();
        check_db(&target.join("keyfount.db"), 0);
    }
    // The age tool reads it with the SSH key as well.
    let st = Command::new("sh")
        .arg("-c")
        .arg(format!("age -d -i '{}' '{}' | tar tzf - >/dev/null", ed_id.display(), archive))
        .status()
        .unwrap();
    assert!(st.success());
}

#[test]
fn kfadmin_restores_what_the_age_tool_encrypted() {
    let env = Env::new();
    let data = env.data_dir("data", 2);
    let (key, recipient) = age_key(&env, "k");
    let plain = backup(&data.join("keyfount.db"), &env.path("b"))["archive"].as_str().unwrap().to_string();
    let encrypted = format!("{plain}.age");
    let st = Command::new("age").args(["-r", &recipient, "-o", &encrypted, &plain]).status().unwrap();
    assert!(st.success());
    let j = kfadmin(["verify", "--json", "-i", key.to_str().unwrap(), &encrypted]);
    j.ok();
    assert_eq!(j.json()["archives"][0]["checks"][1]["status"], "pass");
    let target = env.path("restored");
    kfadmin([
        "restore",
        &encrypted,
        "--data-dir",
        target.to_str().unwrap(),
        "--yes",
        "--force",
        "-i",
        key.to_str().unwrap(),
    ])
    .ok();
    check_db(&target.join("keyfount.db"), 0);
}

#[test]
fn passphrase_encryption_and_a_wrong_passphrase() {
    let env = Env::new();
    let data = env.data_dir("data", 2);
    let run = |args: &[&str], pass: Option<&str>| -> Run {
        let mut cmd = Command::new(kfadmin_bin());
        cmd.args(args).stdin(std::process::Stdio::null());
        if let Some(p) = pass {
            cmd.env("KFADMIN_PASSPHRASE", p);
        }
        cmd.output().unwrap().into()
    };
    let db = data.join("keyfount.db");
    let out = env.path("b");
    // Without a terminal and without KFADMIN_PASSPHRASE: a clear refusal before any work.
    run(
        &["backup", "--online", "--db", db.to_str().unwrap(), "--out", out.to_str().unwrap(), "--passphrase"],
        None,
    )
    .code(2)
    .stderr_has("KFADMIN_PASSPHRASE");
    assert!(!out.exists());
    let r = run(
        &[
            "backup",
            "--online",
            "--db",
            db.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--passphrase",
            "--json",
        ],
        Some("correct horse battery staple"),
    );
    r.ok();
    let archive = r.json()["archive"].as_str().unwrap().to_string();
    assert_eq!(r.json()["recipients"][0], "passphrase (scrypt)");
    run(&["verify", &archive], Some("correct horse battery staple")).ok();
    // A wrong passphrase is the operator's to fix (exit 2), not a damaged archive (exit 3).
    let wrong = run(&["verify", "--json", &archive], Some("Tr0ub4dor&3"));
    wrong.code(2);
    let j = wrong.json();
    assert_eq!(j["ok"], false);
    assert!(j["archives"][0]["needs_key"].as_str().unwrap().contains("passphrase is wrong"), "{j}");
    assert!(failed_checks(&j).is_empty(), "nothing is held against the archive: {j}");
    let target = env.data_dir("target", 1);
    let before = snapshot_tree(&target);
    run(
        &["restore", &archive, "--data-dir", target.to_str().unwrap(), "--yes", "--force"],
        Some("Tr0ub4dor&3"),
    )
    .code(2)
    .stderr_has("passphrase is wrong")
    .stderr_has("not known to be damaged");
    assert_eq!(snapshot_tree(&target), before);
    run(
        &["restore", &archive, "--data-dir", target.to_str().unwrap(), "--yes", "--force"],
        Some("correct horse battery staple"),
    )
    .ok();
    check_db(&target.join("keyfount.db"), 0);
}

#[test]
fn wrong_keys_and_damaged_encrypted_files_fail_and_restore_changes_nothing() {
    let env = Env::new();
    let data = env.data_dir("data", 2);
    let (key, recipient) = age_key(&env, "right");
    let (other, _) = age_key(&env, "wrong");
    let archive = encrypted_backup(&data.join("keyfount.db"), &env.path("b"), &["--encrypt-to", &recipient])
        ["archive"]
        .as_str()
        .unwrap()
        .to_string();
    let bytes = std::fs::read(&archive).unwrap();
    let truncated = env.path("truncated.tar.gz.age");
    std::fs::write(&truncated, &bytes[..bytes.len() - 1000]).unwrap();
    let tampered = env.path("tampered.tar.gz.age");
    let mut t = bytes.clone();
    let mid = t.len() / 2;
    t[mid] ^= 1;
    std::fs::write(&tampered, &t).unwrap();

    let target = env.data_dir("target", 1);
    let before = snapshot_tree(&target);
    // Keys that cannot open a whole archive: exit 2, "pass --identity", nothing failed against
    // it. Damage: exit 3, decrypt failed.
    let cases: [(&str, &Path, &str, i32); 4] = [
        (archive.as_str(), other.as_path(), "none of the identities", 2),
        (truncated.to_str().unwrap(), key.as_path(), "damaged or truncated", 3),
        (tampered.to_str().unwrap(), key.as_path(), "damaged or truncated", 3),
        (archive.as_str(), Path::new(""), "pass --identity", 2),
    ];
    for (file, id, why, code) in cases {
        let mut args = vec!["verify", "--json", file];
        if !id.as_os_str().is_empty() {
            args.extend(["--identity", id.to_str().unwrap()]);
        }
        let r = kfadmin(args.clone());
        r.code(code);
        let j = r.json();
        let failed = failed_checks(&j);
        if code == 3 {
            assert!(
                failed.iter().any(|c| c.starts_with("decrypt") && c.contains(why)),
                "{file} with {id:?}: {failed:?}"
            );
            assert_eq!(j["archives"][0]["needs_key"], serde_json::Value::Null);
        } else {
            assert!(failed.is_empty(), "{file} with {id:?}: {failed:?}");
            assert!(j["archives"][0]["needs_key"].as_str().unwrap().contains(why), "{j}");
            let human = kfadmin(args.iter().filter(|a| **a != "--json").copied().collect::<Vec<_>>());
            human.code(2).stdout_has("NOT VERIFIED: the keys given cannot open it");
            assert!(!human.stdout.contains("FAIL"), "{}", human.stdout);
            assert!(!human.stderr.contains("SSH"), "no SSH key was involved: {}", human.stderr);
        }
        let mut args = vec!["restore", file, "--data-dir", target.to_str().unwrap(), "--yes", "--force"];
        if !id.as_os_str().is_empty() {
            args.extend(["--identity", id.to_str().unwrap()]);
        }
        let r = kfadmin(args);
        r.code(code);
        if code == 2 {
            r.stderr_has(why);
            assert!(!r.stderr.contains("fails verification"), "{}", r.stderr);
        }
        assert_eq!(snapshot_tree(&target), before, "{file}: the data directory changed");
    }
    // A damaged age header opens with no key, but the sidecar shows the damage: exit 3, never
    // "pass --identity".
    let header_hit = env.path("header.tar.gz.age");
    let mut h = bytes.clone();
    let at = h.windows(9).position(|w| w == b"-> X25519").unwrap() + 20;
    h[at] = if h[at] == b'A' { b'B' } else { b'A' };
    std::fs::write(&header_hit, &h).unwrap();
    let sidecar = std::fs::read_to_string(format!("{archive}.sha256")).unwrap();
    let digest = sidecar.split_whitespace().next().unwrap();
    std::fs::write(format!("{}.sha256", header_hit.display()), format!("{digest}  header.tar.gz.age\n"))
        .unwrap();
    let r = kfadmin(["verify", "--json", header_hit.to_str().unwrap(), "--identity", key.to_str().unwrap()]);
    r.code(3);
    assert_eq!(r.json()["archives"][0]["needs_key"], serde_json::Value::Null, "{}", r.stdout);
    kfadmin([
        "restore",
        header_hit.to_str().unwrap(),
        "--data-dir",
        target.to_str().unwrap(),
        "--yes",
        "--force",
        "-i",
        key.to_str().unwrap(),
    ])
    .code(3);
    assert_eq!(snapshot_tree(&target), before, "the data directory changed");
    // A recipient that is not a key is bad input, refused before any work.
    let out = env.path("never");
    kfadmin([
        "backup",
        "--online",
        "--db",
        data.join("keyfount.db").to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--encrypt-to",
        "bob@example.com",
    ])
    .code(2)
    .stderr_has("bob@example.com")
    .stderr_has("age1");
    assert!(!out.exists());
    // An identity file that is not one.
    let junk = env.path("junk.key");
    std::fs::write(&junk, "hello\n").unwrap();
    kfadmin(["verify", "-i", junk.to_str().unwrap(), &archive]).code(2).stderr_has("neither an age identity");
}

/// A full disk in the middle of an encrypted backup: nothing is left, plaintext or not.
#[test]
fn a_failed_encrypted_backup_leaves_no_file_behind() {
    assert!(is_root(), "a small tmpfs needs root (CI runs as root)");
    let env = Env::new();
    let data = env.data_dir("data", 8);
    let db = data.join("keyfount.db");
    let size = std::fs::metadata(&db).unwrap().len();
    let (_, recipient) = age_key(&env, "k");
    // Room for half the archive: the write fails midway.
    let fs = Tmpfs::mount(&env.path("small"), &(size / 2).to_string(), false);
    let r = kfadmin([
        "backup",
        "--online",
        "--db",
        db.to_str().unwrap(),
        "--out",
        fs.dir.to_str().unwrap(),
        "--encrypt-to",
        &recipient,
    ]);
    r.code(1);
    assert!(ls(&fs.dir).is_empty(), "left behind: {:?}", ls(&fs.dir));
}

/// Everything a run left for the operator to read: stdout (with the JSON report), stderr,
/// the ping bodies a real HTTP receiver got, and the metrics file.
fn everything_said(r: &Run, pings: &std::sync::Mutex<Vec<String>>, metrics: &Path) -> String {
    format!(
        "{}\n{}\n{}\n{}",
        r.stdout,
        r.stderr,
        pings.lock().unwrap().join("\n"),
        std::fs::read_to_string(metrics).unwrap_or_default()
    )
}

/// A backup pointed at a secret key instead of a recipient: refused (exit 2) with the line and
/// the command that gives the public key, and the secret is in no output, report, ping or
/// metric.
#[test]
fn a_secret_key_given_as_a_recipient_is_refused_and_never_repeated() {
    let env = Env::new();
    let data = env.data_dir("data", 1);
    let db = data.join("keyfount.db");
    let (age_id, _) = age_key(&env, "ops");
    let age_secret = std::fs::read_to_string(&age_id)
        .unwrap()
        .lines()
        .find(|l| l.starts_with("AGE-SECRET-KEY-1"))
        .unwrap()
        .to_string();
    let (ed_id, _) = ssh_key(&env, "id_ed25519", "ed25519");
    let (rsa_id, _) = ssh_key(&env, "id_rsa", "rsa");
    let (url, pings) = crate::monitor::ping_server();
    let metrics = env.path("kfadmin.prom");
    let out = env.path("b");
    // The secret material of each: the age key, and every body line of the SSH keys.
    let secrets = |file: &Path| -> Vec<String> {
        let text = std::fs::read_to_string(file).unwrap();
        text.lines()
            .filter(|l| l.len() > 20 && !l.starts_with("-----") && !l.starts_with('#'))
            .map(String::from)
            .collect()
    };
    let cases: Vec<(Vec<String>, Vec<String>, &str)> = vec![
        (
            vec!["--recipients-file".into(), age_id.to_str().unwrap().into()],
            vec![age_secret.clone()],
            "line 3 of",
        ),
        (vec!["--encrypt-to".into(), age_secret.clone()], vec![age_secret.clone()], "age-keygen -y"),
        (
            vec!["--recipients-file".into(), ed_id.to_str().unwrap().into()],
            secrets(&ed_id),
            "ssh-keygen -y -f",
        ),
        (
            vec!["--recipients-file".into(), rsa_id.to_str().unwrap().into()],
            secrets(&rsa_id),
            "ssh-keygen -y -f",
        ),
    ];
    for (extra, secret, says) in &cases {
        assert!(!secret.is_empty());
        for json in [false, true] {
            let mut args: Vec<&str> = vec![
                "backup",
                "--online",
                "--db",
                db.to_str().unwrap(),
                "--out",
                out.to_str().unwrap(),
                "--ping-url",
                &url,
                "--metrics-file",
                metrics.to_str().unwrap(),
                "-v",
            ];
            args.extend(extra.iter().map(String::as_str));
            if json {
                args.push("--json");
            }
            let pinged = pings.lock().unwrap().len();
            let r = kfadmin(&args);
            r.code(2).stderr_has(says).stderr_has("not a recipient");
            {
                let got = pings.lock().unwrap();
                assert_eq!(got.len(), pinged + 2, "start and fail pings: {got:?}");
                assert!(got[pinged + 1].contains("/fail") && got[pinged + 1].contains("not a recipient"));
            }
            if json {
                assert_eq!(r.json()["error"]["kind"], "usage");
            }
            let all = everything_said(&r, &pings, &metrics);
            assert!(all.contains("kfadmin_backup_last_exit_code{"), "metrics were written: {all}");
            for s in secret {
                assert!(!all.contains(s.as_str()), "{extra:?} leaked a secret line:\n{all}");
            }
            assert!(!out.exists(), "nothing is written for bad input");
        }
    }
    // The same mistake through the environment.
    let r: Run = Command::new(kfadmin_bin())
        .args(["backup", "--online", "--db", db.to_str().unwrap(), "--out", out.to_str().unwrap(), "--json"])
        .env("KFADMIN_ENCRYPT_TO", &age_secret)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap()
        .into();
    r.code(2).stderr_has("age identity (a secret key)");
    assert!(!format!("{}{}", r.stdout, r.stderr).contains(&age_secret));
}

/// A passphrase from KFADMIN_PASSPHRASE is never printed, reported, pinged or measured: not by
/// a backup, a verify, a restore, nor by a wrong passphrase or a failed run.
#[test]
fn the_passphrase_never_appears_in_any_output() {
    let env = Env::new();
    let data = env.data_dir("data", 1);
    let db = data.join("keyfount.db");
    let (url, pings) = crate::monitor::ping_server();
    let metrics = env.path("kfadmin.prom");
    let out = env.path("b");
    let pass = "Kf-passphrase-that-must-stay-secret-7319";
    let run = |args: &[&str], pass: &str| -> Run {
        Command::new(kfadmin_bin())
            .args(args)
            .env("KFADMIN_PASSPHRASE", pass)
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap()
            .into()
    };
    let backup = |db: &Path, json: bool| {
        let mut a = vec![
            "backup",
            "--online",
            "--passphrase",
            "--db",
            db.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--ping-url",
            &url,
            "--metrics-file",
            metrics.to_str().unwrap(),
            "-vv",
        ];
        if json {
            a.push("--json");
        }
        run(&a, pass)
    };
    let mut said = Vec::new();
    let r = backup(&db, true);
    r.ok();
    let archive = r.json()["archive"].as_str().unwrap().to_string();
    said.push(everything_said(&r, &pings, &metrics));
    let r = backup(&env.path("missing.db"), false);
    r.code(2);
    said.push(everything_said(&r, &pings, &metrics));
    for args in [vec!["verify", "-v", &archive], vec!["verify", "--json", &archive]] {
        let r = run(&args, pass);
        r.ok();
        said.push(format!("{}{}", r.stdout, r.stderr));
        let r = run(&args, "a wrong passphrase");
        r.code(2);
        said.push(format!("{}{}", r.stdout, r.stderr));
    }
    let target = env.path("restored");
    let r = run(
        &["restore", &archive, "--data-dir", target.to_str().unwrap(), "--yes", "--force", "--json", "-v"],
        pass,
    );
    r.ok();
    said.push(format!("{}{}", r.stdout, r.stderr));
    for s in &said {
        assert!(!s.contains(pass), "the passphrase was printed:\n{s}");
    }
    let bytes = std::fs::read(&archive).unwrap();
    assert!(!bytes.windows(pass.len()).any(|w| w == pass.as_bytes()), "the passphrase is in the archive");
}
