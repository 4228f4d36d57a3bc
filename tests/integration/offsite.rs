//! Offsite copies against a real S3 server (moto on 127.0.0.1): backup `--to`, then list,
//! verify, restore, prune and status on the remote location; failed, killed and interrupted
//! uploads; refused credentials; a missing bucket. No credential appears in any output
//! (`kf_s3` checks every run).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use serde_json::Value;

use crate::s3::*;
use crate::util::*;

/// An age key pair made by `age-keygen`: (identity file, recipient).
fn age_key(env: &Env) -> (PathBuf, String) {
    let path = env.path("age.key");
    let out = Command::new("age-keygen").arg("-o").arg(&path).output().expect("age-keygen (Debian's age)");
    assert!(out.status.success());
    let text = std::fs::read_to_string(&path).unwrap();
    let public = text.lines().find_map(|l| l.strip_prefix("# public key: ")).unwrap().to_string();
    (path, public)
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// An online backup of `db` into `out` with `args` added; the run.
fn backup(env: &Env, endpoint: &str, db: &Path, out: &Path, args: &[&str]) -> Run {
    let mut all = vec!["backup", "--online", "--db", s(db), "-r", s(out), "--json"];
    all.extend(args);
    kf_s3(env, endpoint, &[], &all)
}

#[test]
fn encrypted_round_trip_backup_list_verify_restore() {
    let env = Env::new();
    let moto = Moto::shared();
    let bucket = moto.bucket("rt");
    let data = env.data_dir("data", 4);
    let db = data.join("keyfount.db");
    let (identity, recipient) = age_key(&env);
    let out = env.path("out");
    let to = format!("s3://{bucket}/fleet/host1");
    let r = backup(
        &env,
        &moto.endpoint(),
        &db,
        &out,
        &["--to", &to, "--encrypt-to", &recipient, "--verify-offsite"],
    );
    r.ok();
    let j = r.json();
    let archive = PathBuf::from(j["archive"].as_str().unwrap());
    let name = archive.file_name().unwrap().to_str().unwrap().to_string();
    assert!(name.ends_with(".tar.gz.age"));
    let up = &j["offsite"][0];
    assert_eq!(up["url"], format!("{to}/{name}"));
    assert_eq!(up["ok"], true);
    assert!(up["error"].is_null());
    assert_eq!(up["bytes"], j["bytes"]);
    // What the store holds: the archive byte for byte, and the sidecar as written locally.
    // (and the record list and prune read instead of the archive: issue 17 item 11)
    assert_eq!(
        moto.keys(&bucket, "fleet/host1/"),
        [
            format!("fleet/host1/{name}"),
            format!("fleet/host1/{name}.json"),
            format!("fleet/host1/{name}.sha256")
        ]
    );
    let sidecar = moto.get(&bucket, &format!("fleet/host1/{name}.sha256")).unwrap();
    assert_eq!(sidecar, std::fs::read_to_string(format!("{}.sha256", archive.display())).unwrap());
    assert!(archive.is_file(), "the local copy stays");

    let l = kf_s3(&env, &moto.endpoint(), &[], &["list", &to, "--check", "--json"]);
    l.ok();
    let lj = l.json();
    assert_eq!(lj["dir"], to.as_str());
    assert_eq!(lj["archives"][0]["file_name"], name.as_str());
    assert_eq!(lj["archives"][0]["path"], up["url"]);
    assert_eq!(lj["archives"][0]["sidecar"], "ok");
    assert_eq!(lj["archives"][0]["encrypted"], true);

    let url = up["url"].as_str().unwrap();
    let v = kf_s3(&env, &moto.endpoint(), &[], &["verify", url, "-i", s(&identity), "--json"]);
    v.ok();
    let vj = v.json();
    assert_eq!(vj["archives"][0]["archive"], url);
    assert!(!v.stdout.contains("/proc/self/fd"), "the download's private path is not shown: {}", v.stdout);

    let into = env.path("restored");
    let rr = kf_s3(
        &env,
        &moto.endpoint(),
        &[],
        &["restore", url, "--data-dir", s(&into), "-i", s(&identity), "--yes", "--force", "--json"],
    );
    rr.ok();
    assert_eq!(rr.json()["archive"], url);
    assert_eq!(check_db(&into.join("keyfount.db"), 0)["ok"], true);
    // Nothing of the download is left in the private staging area.
    assert!(ls(&env.path("state/staging")).is_empty(), "{:?}", ls(&env.path("state/staging")));
}

#[test]
fn plaintext_stays_home_unless_asked_and_kfadmin_to_takes_several() {
    let env = Env::new();
    let moto = Moto::shared();
    let (b1, b2) = (moto.bucket("pt"), moto.bucket("pt"));
    let db = env.data_dir("data", 2).join("keyfount.db");
    let out = env.path("out");
    let to = format!("s3://{b1}/a s3://{b2}");
    // Refused before anything is written.
    let r = kf_s3(
        &env,
        &moto.endpoint(),
        &[("KFADMIN_TO", &to)],
        &["backup", "--online", "--db", s(&db), "-r", s(&out)],
    );
    r.code(2).stderr_has("plaintext").stderr_has("--plaintext-offsite");
    assert!(ls(&out).is_empty(), "nothing was written: {:?}", ls(&out));
    // With --plaintext-offsite: both destinations get it.
    let r = kf_s3(
        &env,
        &moto.endpoint(),
        &[("KFADMIN_TO", &to)],
        &["backup", "--online", "--db", s(&db), "--out", s(&out), "--plaintext-offsite", "--json"],
    );
    r.ok();
    let j = r.json();
    let urls: Vec<&str> =
        j["offsite"].as_array().unwrap().iter().map(|u| u["url"].as_str().unwrap()).collect();
    let name = Path::new(j["archive"].as_str().unwrap()).file_name().unwrap().to_str().unwrap().to_string();
    assert_eq!(urls, [format!("s3://{b1}/a/{name}"), format!("s3://{b2}/{name}")]);
    // The plaintext round trip: verify and restore straight from the bucket.
    kf_s3(&env, &moto.endpoint(), &[], &["verify", urls[1]]).ok().stdout_has("=> OK");
    let into = env.path("restored");
    kf_s3(&env, &moto.endpoint(), &[], &["restore", urls[0], "--data-dir", s(&into), "--yes", "--force"])
        .ok();
    check_db(&into.join("keyfount.db"), 0);
    // A malformed destination is bad input, before any work.
    kf_s3(
        &env,
        &moto.endpoint(),
        &[],
        &["backup", "--online", "--db", s(&db), "-r", s(&out), "--to", "s3://A_B", "--plaintext-offsite"],
    )
    .code(2)
    .stderr_has("not a usable s3:// location");
}

#[test]
fn a_part_upload_that_keeps_failing_is_aborted_and_the_local_archive_stays() {
    let env = Env::new();
    let moto = Arc::new(Moto::start());
    let bucket = moto.bucket("fail");
    let proxy = Proxy::start(Arc::clone(&moto), Parts::FailFrom(2));
    let db = env.data_dir("data", 12).join("keyfount.db");
    let out = env.path("out");
    let metrics = env.path("metrics.prom");
    let r = backup(
        &env,
        &proxy.endpoint(),
        &db,
        &out,
        &["--to", &format!("s3://{bucket}/p"), "--plaintext-offsite", "--metrics-file", s(&metrics)],
    );
    r.code(1);
    let j = r.json();
    assert_eq!(j["ok"], false);
    assert_eq!(j["offsite"][0]["ok"], false);
    let error = j["offsite"][0]["error"].as_str().unwrap();
    assert!(error.contains("InternalError"), "{error}");
    assert!(proxy.parts_seen.load(std::sync::atomic::Ordering::SeqCst) >= 3, "the failing part was retried");
    // The verified local archive stays; nothing is left in the bucket: no object, no parts.
    let archive = j["archive"].as_str().unwrap();
    kf_s3(&env, &moto.endpoint(), &[], &["verify", "--quick", archive]).ok();
    assert!(moto.keys(&bucket, "").is_empty(), "{:?}", moto.keys(&bucket, ""));
    assert!(moto.pending_uploads(&bucket).is_empty(), "orphan parts: {:?}", moto.pending_uploads(&bucket));
    // A monitor hears of it: the exit code, and no offsite success recorded.
    let m = std::fs::read_to_string(&metrics).unwrap();
    assert!(m.contains("kfadmin_backup_last_exit_code{name=\"keyfount\"} 1"), "{m}");
    assert!(!m.contains("kfadmin_offsite_last_success_timestamp_seconds{"), "{m}");
}

#[test]
fn the_server_killed_mid_upload_fails_the_backup_and_keeps_the_local_archive() {
    let env = Env::new();
    let moto = Arc::new(Moto::start());
    let bucket = moto.bucket("kill");
    let proxy = Proxy::start(Arc::clone(&moto), Parts::KillServerAt(2));
    let db = env.data_dir("data", 12).join("keyfount.db");
    let out = env.path("out");
    let r = backup(
        &env,
        &proxy.endpoint(),
        &db,
        &out,
        &["--to", &format!("s3://{bucket}"), "--plaintext-offsite"],
    );
    r.code(1);
    let j = r.json();
    assert_eq!(j["offsite"][0]["ok"], false, "{j}");
    assert!(r.stderr.contains("reachable"), "the hint says what to check: {}", r.stderr);
    let archive = j["archive"].as_str().unwrap();
    kf_s3(&env, &moto.endpoint(), &[], &["verify", archive]).ok();
    assert_eq!(ls(&out).len(), 2, "the archive and its sidecar: {:?}", ls(&out));
}

#[test]
fn sigterm_during_an_upload_exits_130_and_aborts_it() {
    let env = Env::new();
    let moto = Moto::shared();
    let bucket = moto.bucket("term");
    let db = env.data_dir("data", 12).join("keyfount.db");
    let out = env.path("out");
    let r = kf_s3(
        &env,
        &moto.endpoint(),
        &[("KFADMIN_TEST_FAULT", "offsite.part:term")],
        &[
            "backup",
            "--online",
            "--db",
            s(&db),
            "-r",
            s(&out),
            "--to",
            &format!("s3://{bucket}/x"),
            "--plaintext-offsite",
        ],
    );
    r.code(130);
    assert_eq!(ls(&out).len(), 2, "the local archive is kept: {:?}", ls(&out));
    assert!(moto.keys(&bucket, "").is_empty(), "{:?}", moto.keys(&bucket, ""));
    assert!(moto.pending_uploads(&bucket).is_empty(), "orphan parts: {:?}", moto.pending_uploads(&bucket));
}

#[test]
fn a_missing_bucket_is_named_before_any_backup_is_made() {
    let env = Env::new();
    let moto = Moto::shared();
    let db = env.data_dir("data", 2).join("keyfount.db");
    let out = env.path("out");
    let r = backup(
        &env,
        &moto.endpoint(),
        &db,
        &out,
        &["--to", "s3://kf-no-such-bucket/p", "--plaintext-offsite"],
    );
    // Found before the snapshot (issue 17 item 13): exit 2, nothing written.
    r.code(2).stderr_has("bucket kf-no-such-bucket does not exist");
    assert!(r.json()["error"]["message"].as_str().unwrap().contains("NoSuchBucket"), "{}", r.stdout);
    assert!(!out.exists() || ls(&out).is_empty(), "{:?}", ls(&out));
    kf_s3(&env, &moto.endpoint(), &[], &["list", "s3://kf-no-such-bucket"]).code(2);
}

#[test]
fn refused_credentials_name_the_variable_and_good_ones_work() {
    let env = Env::new();
    let moto = Moto::start();
    let bucket = moto.bucket("auth");
    // Authentication on, after three more unchecked actions: the IAM user, its keys, its policy.
    assert_eq!(http(moto.port, "POST", "/moto-api/reset-auth", b"3").unwrap().0, 200);
    let aws = |args: &[&str]| {
        let out = Command::new("aws")
            .args(args)
            .args(["--endpoint-url", &moto.endpoint(), "--output", "json"])
            .env("AWS_ACCESS_KEY_ID", "AKIAIOSFODNN7EXAMPLE")
            .env("AWS_SECRET_ACCESS_KEY", "anything")
            .env("AWS_DEFAULT_REGION", "us-east-1")
            .output()
            .expect("the AWS CLI (scripts/test.sh installs awscli with pip)");
        assert!(out.status.success(), "aws {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice::<Value>(&out.stdout).unwrap_or(Value::Null)
    };
    aws(&["iam", "create-user", "--user-name", "kfadmin"]);
    let key = aws(&["iam", "create-access-key", "--user-name", "kfadmin"]);
    let policy =
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*"}]}"#;
    aws(&[
        "iam",
        "put-user-policy",
        "--user-name",
        "kfadmin",
        "--policy-name",
        "s3",
        "--policy-document",
        policy,
    ]);
    let id = key["AccessKey"]["AccessKeyId"].as_str().unwrap().to_string();
    let secret = key["AccessKey"]["SecretAccessKey"].as_str().unwrap().to_string();

    let db = env.data_dir("data", 2).join("keyfount.db");
    let out = env.path("out");
    let to = format!("s3://{bucket}/h");
    // The test's own keys are unknown to this server.
    let r = backup(&env, &moto.endpoint(), &db, &out, &["--to", &to, "--plaintext-offsite"]);
    r.code(2).stderr_has("AWS_ACCESS_KEY_ID");
    assert_eq!(r.json()["ok"], false);
    assert!(!out.exists() || ls(&out).is_empty(), "refused before the snapshot: {:?}", ls(&out));
    // The right key with a wrong secret, from a profile: refused, and the profile is named.
    let home = env.path("home");
    std::fs::create_dir_all(home.join(".aws")).unwrap();
    let creds = format!("[kf]\naws_access_key_id = {id}\naws_secret_access_key = {SECRET}\n");
    std::fs::write(home.join(".aws/credentials"), creds).unwrap();
    let no_env = [
        ("AWS_ACCESS_KEY_ID", ""),
        ("AWS_SECRET_ACCESS_KEY", ""),
        ("AWS_SESSION_TOKEN", ""),
        ("AWS_PROFILE", "kf"),
    ];
    let r = kf_s3(&env, &moto.endpoint(), &no_env, &["list", &to]);
    r.code(2).stderr_has("profile kf");
    assert_no_credentials(&r, &[&id]);
    // The IAM keys, from the profile: the backup goes offsite.
    let creds = format!("[kf]\naws_access_key_id = {id}\naws_secret_access_key = {secret}\n");
    std::fs::write(home.join(".aws/credentials"), creds).unwrap();
    let all =
        ["backup", "--online", "--db", s(&db), "-r", s(&out), "--to", &to, "--plaintext-offsite", "--json"];
    let r = kf_s3(&env, &moto.endpoint(), &no_env, &all);
    r.ok();
    assert_eq!(r.json()["offsite"][0]["ok"], true);
    assert_no_credentials(&r, &[&id, &secret]);
    // Read back with them. (Not `list`: moto's signature check refuses every ListObjectsV2
    // with a delimiter, the AWS CLI's `aws s3 ls` included.)
    let url = r.json()["offsite"][0]["url"].as_str().unwrap().to_string();
    let v = kf_s3(&env, &moto.endpoint(), &no_env, &["verify", &url]);
    v.ok().stdout_has("=> OK");
    assert_no_credentials(&v, &[&id, &secret]);
}

#[test]
fn prune_on_a_remote_location_keeps_its_newest_that_verifies_and_leaves_local_alone() {
    let env = Env::new();
    let moto = Moto::shared();
    let bucket = moto.bucket("prune");
    let db = env.data_dir("data", 1).join("keyfount.db");
    let out = env.path("out");
    let to = format!("s3://{bucket}/p");
    let mut names = Vec::new();
    for _ in 0..3 {
        let j = backup(&env, &moto.endpoint(), &db, &out, &["--to", &to, "--plaintext-offsite"]).ok().json();
        names.push(
            Path::new(j["archive"].as_str().unwrap()).file_name().unwrap().to_str().unwrap().to_string(),
        );
    }
    // The newest offsite copy is damaged: it no longer matches its sidecar.
    let newest = names.last().unwrap();
    let (st, _) = http(moto.port, "PUT", &format!("/{bucket}/p/{newest}"), b"not an archive").unwrap();
    assert_eq!(st, 200);
    let r = kf_s3(&env, &moto.endpoint(), &[], &["prune", "-r", &to, "--keep-last", "1", "--json"]);
    r.ok();
    let j = r.json();
    assert_eq!(j["dir"], to.as_str());
    assert_eq!(j["removed"], 1, "{j}");
    let kept: Vec<String> = moto
        .keys(&bucket, "p/")
        .into_iter()
        .filter(|k| !k.ends_with(".sha256") && !k.ends_with(".json"))
        .collect();
    // The damaged one is kept (not counted), the newest that verifies is kept, the oldest goes
    // with its sidecar.
    let mut want = [format!("p/{}", names[1]), format!("p/{}", names[2])];
    want.sort();
    let mut kept = kept;
    kept.sort();
    assert_eq!(kept, want);
    assert!(!moto.keys(&bucket, "p/").contains(&format!("p/{}.sha256", names[0])));
    assert!(r.stderr.contains("does not match its .sha256"), "{}", r.stderr);
    // The local directory is untouched by the remote prune, and pruned by its own rules.
    assert_eq!(ls(&out).len(), 6);
    kf_s3(&env, &moto.endpoint(), &[], &["prune", s(&out), "--keep-last", "2"]).ok();
    assert_eq!(ls(&out).len(), 4);
}

#[test]
fn status_checks_the_newest_offsite_copy_against_max_age() {
    let env = Env::new();
    let moto = Moto::shared();
    let (full, empty) = (moto.bucket("st"), moto.bucket("st"));
    let db = env.data_dir("data", 1).join("keyfount.db");
    let out = env.path("out");
    let metrics = env.path("m.prom");
    backup(
        &env,
        &moto.endpoint(),
        &db,
        &out,
        &["--to", &format!("s3://{full}"), "--plaintext-offsite", "--metrics-file", s(&metrics)],
    )
    .ok();
    let m = std::fs::read_to_string(&metrics).unwrap();
    assert!(
        m.contains(&format!(
            "kfadmin_offsite_last_success_timestamp_seconds{{name=\"keyfount\",url=\"s3://{full}\"}}"
        )),
        "{m}"
    );
    let r = kf_s3(
        &env,
        &moto.endpoint(),
        &[],
        &["status", "--db", s(&db), "--repo", s(&out), "--to", &format!("s3://{full}"), "--json"],
    );
    r.ok();
    let o = &r.json()["offsite"][0];
    assert_eq!(o["ok"], true);
    assert!(o["newest"].as_str().unwrap().starts_with(&format!("s3://{full}/keyfount-")));
    assert!(o["age_seconds"].as_u64().unwrap() < 600);
    // A second host in the same bucket: list sums them up per name, --name shows one.
    backup(
        &env,
        &moto.endpoint(),
        &db,
        &out,
        &["--to", &format!("s3://{full}"), "--plaintext-offsite", "--name", "host2"],
    )
    .ok();
    let l = kf_s3(&env, &moto.endpoint(), &[], &["list", &format!("s3://{full}"), "--json"]).ok().json();
    let names: Vec<&str> =
        l["groups"].as_array().unwrap().iter().map(|g| g["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["host2", "keyfount"]);
    let l = kf_s3(
        &env,
        &moto.endpoint(),
        &[],
        &["list", "-r", &format!("s3://{full}"), "--name", "host2", "--json"],
    );
    assert_eq!(l.ok().json()["archives"].as_array().unwrap().len(), 1);
    let r = kf_s3(
        &env,
        &moto.endpoint(),
        &[("KFADMIN_TO", &format!("s3://{full} s3://{empty}"))],
        &["status", "--db", s(&db), "--backup-dir", s(&out), "--json"],
    );
    r.code(1);
    let j = r.json();
    assert_eq!(j["offsite"][1]["ok"], false);
    let want = format!("no offsite backup of keyfount in s3://{empty}");
    assert!(j["problems"].as_array().unwrap().iter().any(|p| p.as_str().unwrap().contains(&want)), "{j}");
}

#[test]
fn restore_into_a_container_from_a_remote_archive() {
    use crate::dock::{Kf, Spec};
    let env = Env::new();
    let moto = Moto::shared();
    let bucket = moto.bucket("dock");
    let c = Kf::start(&env, "offsite", Spec { rate: 50, init_mb: 2, ..Spec::default() });
    c.wait_for(|st| st["last_seq"].as_i64().unwrap() >= 20);
    let out = env.path("out");
    let to = format!("s3://{bucket}/c");
    let j = kf_s3(
        &env,
        &moto.endpoint(),
        &[],
        &[
            "backup",
            "--online",
            "--container",
            &c.name,
            "-r",
            s(&out),
            "--to",
            &to,
            "--plaintext-offsite",
            "--json",
        ],
    )
    .ok()
    .json();
    let url = j["offsite"][0]["url"].as_str().unwrap().to_string();
    // The local copy is gone (the disk died): the restore comes from the bucket alone.
    std::fs::remove_dir_all(&out).unwrap();
    let r = kf_s3(
        &env,
        &moto.endpoint(),
        &[],
        &["restore", &url, "--container", &c.name, "-r", s(&out), "--yes", "--settle", "2", "--json"],
    );
    r.ok();
    let rj = r.json();
    assert_eq!(rj["restored"], true);
    assert_eq!(rj["archive"], url.as_str());
    assert!(c.running());
    // The pre-restore safety archive went to the local repository, as for a local restore.
    assert!(ls(&out).iter().any(|n| n.contains("-pre-restore.tar.gz")), "{:?}", ls(&out));
}
