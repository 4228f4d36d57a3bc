//! Offsite copies over a network that is slow, stalls, cuts connections and refuses deletes,
//! and a bucket others can write to: the real binary against moto, through the test's own
//! fault-injecting proxy (netfault.rs). Timeouts are small (KFADMIN_OFFSITE_IDLE=1s), so each
//! test takes seconds.

use std::path::{Path, PathBuf};

use crate::netfault::{Act, Net};
use crate::s3::*;
use crate::util::*;

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A plaintext online backup of `db` into `out`, offsite to `to` with `args` added.
fn backup_to(env: &Env, endpoint: &str, extra: &[(&str, &str)], db: &Path, to: &str, args: &[&str]) -> Run {
    let out = env.path("out");
    let mut all =
        vec!["backup", "--online", "--db", s(db), "-r", s(&out), "--to", to, "--plaintext-offsite", "--json"];
    all.extend(args);
    kf_s3(env, endpoint, extra, &all)
}

/// The archive's file name in a backup's JSON report.
fn archive_name(j: &serde_json::Value) -> String {
    PathBuf::from(j["archive"].as_str().unwrap()).file_name().unwrap().to_str().unwrap().to_string()
}

/// Short timeouts: a request with no byte moving for 1 s is stalled; transient errors are
/// retried for 1 s in all.
const QUICK: [(&str, &str); 2] = [("KFADMIN_OFFSITE_IDLE", "1s"), ("KFADMIN_OFFSITE_RETRY", "1s")];

#[test]
fn a_slow_link_that_keeps_moving_never_fails() {
    let env = Env::new();
    let moto = Moto::shared();
    let bucket = moto.bucket("slow");
    let db = env.data_dir("data", 1).join("keyfount.db");
    let net = Net::start(moto.port);
    // ~1 MB at 128 KiB/s: every transfer of the archive takes longer than the 5 s a request
    // could take before, and longer than the whole retry budget.
    net.rate(128 << 10);
    let to = format!("s3://{bucket}/slow");
    let r = backup_to(&env, &net.endpoint(), &QUICK, &db, &to, &["--verify-offsite"]);
    r.ok();
    let j = r.json();
    assert_eq!(j["offsite"][0]["ok"], true, "{j}");
    let name = archive_name(&j);
    assert!(moto.keys(&bucket, "slow/").contains(&format!("slow/{name}")));
}

#[test]
fn a_download_cut_or_stalled_midway_resumes_where_it_stopped() {
    let env = Env::new();
    let moto = Moto::shared();
    let bucket = moto.bucket("resume");
    let db = env.data_dir("data", 1).join("keyfount.db");
    let to = format!("s3://{bucket}/r");
    let j = backup_to(&env, &moto.endpoint(), &[], &db, &to, &[]).ok().json();
    let name = archive_name(&j);
    let url = format!("{to}/{name}");
    let net = Net::start(moto.port);
    // The first GET of the archive stalls after 200 KB (longer than the retry budget), the
    // next is cut after 100 KB more, the next stalls again: each resumes from where it stopped.
    net.rule("GET", &name, Act::StallAfter(200_000), 1).rule("GET", &name, Act::CutAfter(100_000), 1).rule(
        "GET",
        &name,
        Act::StallAfter(100_000),
        1,
    );
    let v = kf_s3(&env, &net.endpoint(), &QUICK, &["verify", &url, "--json"]);
    v.ok();
    assert_eq!(v.json()["ok"], true);
    let gets: Vec<String> =
        net.requests().into_iter().filter(|l| l.starts_with("GET ") && l.contains(&name)).collect();
    assert!(gets.len() >= 4, "the download was resumed: {gets:?}");
    // A download that never moves again fails, and says it stalled.
    net.rule("GET", &name, Act::StallAfter(0), 100);
    let v = kf_s3(&env, &net.endpoint(), &QUICK, &["verify", &url]);
    v.code(1).stderr_has("no data moved");
}
