//! Pre-restore safety copies are the only copy of the data from before an incident: retention
//! keeps each one for a minimum age besides `--keep-pre-restore`.

use sha2::{Digest, Sha256};
use std::time::{Duration, SystemTime};

use crate::util::*;

/// `keyfount-<UTC time, `ago` before now>-<mode>.tar.gz`
fn name(ago: Duration, mode: &str) -> String {
    let t = humantime::format_rfc3339_seconds(SystemTime::now() - ago).to_string().replace(['-', ':'], "");
    format!("keyfount-{t}-{mode}.tar.gz")
}

/// Four restores in a minute, then `prune --keep-daily 7 --keep-weekly 4`: every safety copy
/// stays (the first is the data from before the incident); one older than the minimum age and
/// beyond `--keep-pre-restore` goes.
#[test]
fn four_restores_in_a_minute_keep_all_four_safety_copies() {
    let env = Env::new();
    let data = env.data_dir("src", 1);
    let report = backup(&data.join("keyfount.db"), &env.path("orig"));
    let bytes = std::fs::read(report["archive"].as_str().unwrap()).unwrap();
    let dir = env.path("backups");
    std::fs::create_dir_all(&dir).unwrap();
    let put = |n: &str| {
        std::fs::write(dir.join(n), &bytes).unwrap();
        std::fs::write(dir.join(format!("{n}.sha256")), format!("{:x}  {n}\n", Sha256::digest(&bytes)))
            .unwrap();
    };
    put(&name(Duration::from_secs(3600), "online"));
    let copies: Vec<String> = (0..4).map(|i| name(Duration::from_secs(60 - 15 * i), "pre-restore")).collect();
    let old = name(Duration::from_secs(30 * 86400), "pre-restore");
    for n in copies.iter().chain([&old]) {
        put(n);
    }
    let r = kfadmin(["prune", dir.to_str().unwrap(), "--keep-daily", "7", "--keep-weekly", "4", "--json"]);
    r.ok();
    let left = ls(&dir);
    for c in &copies {
        assert!(left.contains(c), "{c} was removed: {left:?}\n{}", r.stdout);
    }
    assert!(!left.contains(&old), "an old safety copy beyond --keep-pre-restore stays: {left:?}");
    assert_eq!(r.json()["policy"]["pre_restore_min_age_s"], 7 * 86400);
    // The minimum age is a flag (and a variable): 0 leaves the count rule alone.
    let r = kfadmin(["prune", dir.to_str().unwrap(), "--keep-daily", "7", "--keep-pre-restore-within", "0s"]);
    r.ok();
    assert!(!ls(&dir).contains(&copies[0]), "{:?}", ls(&dir));
}
