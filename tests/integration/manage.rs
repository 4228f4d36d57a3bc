//! `list` and `prune` on real archive files: one real backup, copied under chosen names (with
//! matching `.sha256` sidecars), so a directory of dozens of archives costs one backup.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::util::*;

/// One real archive's bytes, to copy under any name.
struct Archive {
    bytes: Vec<u8>,
    /// The `kfadmin backup --json` report of the original.
    report: Value,
}

impl Archive {
    fn new(env: &Env) -> Archive {
        let data = env.data_dir("src", 1);
        let report = backup(&data.join("keyfount.db"), &env.path("orig"));
        let bytes = std::fs::read(report["archive"].as_str().unwrap()).unwrap();
        Archive { bytes, report }
    }

    /// A copy named `file_name` in `dir`, with a matching sidecar.
    fn put(&self, dir: &Path, file_name: &str) -> PathBuf {
        let path = self.put_bare(dir, file_name);
        sidecar(&path, &self.bytes);
        path
    }

    /// A copy without a sidecar.
    fn put_bare(&self, dir: &Path, file_name: &str) -> PathBuf {
        std::fs::create_dir_all(dir).unwrap();
        let path = dir.join(file_name);
        std::fs::write(&path, &self.bytes).unwrap();
        path
    }

    fn database_bytes(&self) -> u64 {
        let db = &self.report["database"];
        db["page_size"].as_u64().unwrap() * db["page_count"].as_u64().unwrap()
    }
}

/// `<sha256>  <file name>`, as sha256sum writes it, for `data`.
fn sidecar(archive: &Path, data: &[u8]) {
    let name = archive.file_name().unwrap().to_string_lossy();
    std::fs::write(format!("{}.sha256", archive.display()), format!("{:x}  {name}\n", Sha256::digest(data)))
        .unwrap();
}

/// Flip one byte in the middle: the sidecar no longer matches.
fn corrupt(path: &Path) {
    let mut b = std::fs::read(path).unwrap();
    let mid = b.len() / 2;
    b[mid] ^= 0x40;
    std::fs::write(path, b).unwrap();
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// file name → (action, reasons joined by ", ", good) from a `prune --json` report.
fn decisions(report: &Value) -> BTreeMap<String, (String, String, bool)> {
    report["archives"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            let reasons: Vec<&str> =
                a["reasons"].as_array().unwrap().iter().map(|r| r.as_str().unwrap()).collect();
            (
                a["path"].as_str().unwrap().rsplit('/').next().unwrap().to_string(),
                (a["action"].as_str().unwrap().to_string(), reasons.join(", "), a["good"].as_bool().unwrap()),
            )
        })
        .collect()
}

const REMOVE: &str = "no rule keeps it";

/// The retention fixture, newest first, with the decision worked out by hand for
/// `--keep-last 2 --keep-daily 7 --keep-weekly 4 --keep-monthly 3` (REMOVE, or the reasons).
///
/// 2026-09-28 (Mon, W40) to 2026-11-06 (Fri, W45), daily at 03:00, without 09-30, 10-03,
/// 10-10, 10-17, 10-18, 10-25 and 11-01, 11-04; a second archive at 15:00 on 10-26, 11-05
/// (cold) and 11-06, and a pre-restore safety copy at 15:00 on 11-02 (a restore that day),
/// which is not a backup: it is in a group of its own, kept by --keep-pre-restore (default 3),
/// and takes no backup's slot. ISO weeks: W44 is 10-26..11-01, so it spans October and
/// November; W40 spans September and October.
///
/// - last 2: both archives of 11-06.
/// - daily 7: the newest backup of the 7 newest days that have one: 11-06, 11-05 (15:00),
///   11-03, 11-02 (03:00), 10-31, 10-30, 10-29 (the missing 11-04 and 11-01 use no slot).
/// - weekly 4: W45 → 11-06 15:00, W44 → 10-31, W43 → 10-24 (10-25 is missing), W42 → 10-16.
/// - monthly 3: November → 11-06 15:00, October → 10-31, September → 09-29 (09-30 missing).
const RETENTION: &[(&str, &str)] = &[
    ("keyfount-20261106T150000Z-online.tar.gz", "last, daily, weekly, monthly, newest that verifies"),
    ("keyfount-20261106T030000Z-online.tar.gz", "last"),
    ("keyfount-20261105T150000Z-cold.tar.gz", "daily"),
    ("keyfount-20261105T030000Z-online.tar.gz", REMOVE),
    ("keyfount-20261103T030000Z-online.tar.gz", "daily"),
    ("keyfount-20261102T030000Z-online.tar.gz", "daily"),
    ("keyfount-20261031T030000Z-online.tar.gz", "daily, weekly, monthly"),
    ("keyfount-20261030T030000Z-online.tar.gz", "daily"),
    ("keyfount-20261029T030000Z-online.tar.gz", "daily"),
    ("keyfount-20261028T030000Z-online.tar.gz", REMOVE),
    ("keyfount-20261027T030000Z-online.tar.gz", REMOVE),
    ("keyfount-20261026T150000Z-online.tar.gz", REMOVE),
    ("keyfount-20261026T030000Z-online.tar.gz", REMOVE),
    ("keyfount-20261024T030000Z-online.tar.gz", "weekly"),
    ("keyfount-20261023T030000Z-online.tar.gz", REMOVE),
    ("keyfount-20261022T030000Z-online.tar.gz", REMOVE),
    ("keyfount-20261021T030000Z-online.tar.gz", REMOVE),
    ("keyfount-20261020T030000Z-online.tar.gz", REMOVE),
    ("keyfount-20261019T030000Z-online.tar.gz", REMOVE),
    ("keyfount-20261016T030000Z-online.tar.gz", "weekly"),
    ("keyfount-20261015T030000Z-online.tar.gz", REMOVE),
    ("keyfount-20261014T030000Z-online.tar.gz", REMOVE),
    ("keyfount-20261013T030000Z-online.tar.gz", REMOVE),
    ("keyfount-20261012T030000Z-online.tar.gz", REMOVE),
    ("keyfount-20261011T030000Z-online.tar.gz", REMOVE),
    ("keyfount-20261009T030000Z-online.tar.gz", REMOVE),
    ("keyfount-20261008T030000Z-online.tar.gz", REMOVE),
    ("keyfount-20261007T030000Z-online.tar.gz", REMOVE),
    ("keyfount-20261006T030000Z-online.tar.gz", REMOVE),
    ("keyfount-20261005T030000Z-online.tar.gz", REMOVE),
    ("keyfount-20261004T030000Z-online.tar.gz", REMOVE),
    ("keyfount-20261002T030000Z-online.tar.gz", REMOVE),
    ("keyfount-20261001T030000Z-online.tar.gz", REMOVE),
    ("keyfount-20260929T030000Z-online.tar.gz", "monthly"),
    ("keyfount-20260928T030000Z-online.tar.gz", REMOVE),
    // The safety copies of the same name come after its backups.
    ("keyfount-20261102T150000Z-pre-restore.tar.gz", "pre-restore"),
    // Another group, counted on its own: ten archives of one day.
    ("kf-staging-20261106T090000Z-online.tar.gz", "last, daily, weekly, monthly, newest that verifies"),
    ("kf-staging-20261106T080000Z-online.tar.gz", "last"),
    ("kf-staging-20261106T070000Z-online.tar.gz", REMOVE),
    ("kf-staging-20261106T060000Z-online.tar.gz", REMOVE),
    ("kf-staging-20261106T050000Z-online.tar.gz", REMOVE),
    ("kf-staging-20261106T040000Z-online.tar.gz", REMOVE),
    ("kf-staging-20261106T030000Z-online.tar.gz", REMOVE),
    ("kf-staging-20261106T020000Z-online.tar.gz", REMOVE),
    ("kf-staging-20261106T010000Z-online.tar.gz", REMOVE),
    ("kf-staging-20261106T000000Z-online.tar.gz", REMOVE),
];

const GFS: [&str; 8] = ["--keep-last", "2", "--keep-daily", "7", "--keep-weekly", "4", "--keep-monthly", "3"];

#[test]
fn prune_keeps_exactly_the_hand_computed_gfs_set() {
    let env = Env::new();
    let ar = Archive::new(&env);
    let dir = env.path("backups");
    // Written oldest first, so the directory order says nothing about the time.
    for (name, _) in RETENTION.iter().rev() {
        ar.put(&dir, name);
    }
    assert_eq!(RETENTION.len(), 46);
    let keep: Vec<&str> = RETENTION.iter().filter(|(_, why)| *why != REMOVE).map(|(n, _)| *n).collect();
    assert_eq!(keep.len(), 14);

    // --dry-run: the exact decision for each archive, and nothing touched.
    let before = snapshot_tree(&dir);
    let mut args = vec!["prune", s(&dir), "--dry-run", "--json"];
    args.extend(GFS);
    let r = kfadmin(&args);
    r.ok();
    let report = r.json();
    assert_eq!(snapshot_tree(&dir), before, "--dry-run changed the directory");
    assert_eq!(report["ok"], true);
    assert_eq!(report["dry_run"], true);
    assert_eq!(report["removed"], 0);
    assert_eq!(report["freed_bytes"], 0);
    let got = decisions(&report);
    assert_eq!(got.len(), RETENTION.len());
    for (name, why) in RETENTION {
        let (action, reasons, good) = &got[*name];
        assert!(good, "{name} should verify");
        let want = if *why == REMOVE { "remove" } else { "keep" };
        assert_eq!((action.as_str(), reasons.as_str()), (want, *why), "{name}");
    }
    // The order of the report: groups by name, newest first within each.
    let order: Vec<String> = report["archives"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["path"].as_str().unwrap().rsplit('/').next().unwrap().to_string())
        .collect();
    assert_eq!(order, RETENTION.iter().map(|(n, _)| n.to_string()).collect::<Vec<_>>());

    // The human --dry-run listing says KEEP/REMOVE with the rule, and removes nothing.
    let mut args = vec!["prune", s(&dir), "--dry-run"];
    args.extend(GFS);
    let r = kfadmin(&args);
    r.ok().stdout_has("KEEP").stdout_has("REMOVE").stdout_has("would remove 32 archives");
    let line = r.stdout.lines().find(|l| l.contains("keyfount-20260929T030000Z")).unwrap();
    assert!(line.trim_start().starts_with("KEEP") && line.ends_with("monthly"), "{line}");
    let line = r.stdout.lines().find(|l| l.contains("keyfount-20260928T030000Z")).unwrap();
    assert!(line.trim_start().starts_with("REMOVE") && line.ends_with("no rule keeps it"), "{line}");
    assert_eq!(snapshot_tree(&dir), before, "--dry-run changed the directory");

    // The real run removes exactly the REMOVE set, each with its sidecar.
    let mut args = vec!["prune", s(&dir), "--json"];
    args.extend(GFS);
    let r = kfadmin(&args);
    r.ok();
    let report = r.json();
    assert_eq!(report["dry_run"], false);
    assert_eq!(report["removed"], 32);
    assert_eq!(report["freed_bytes"], 32 * ar.bytes.len() as u64);
    let mut want: Vec<String> = keep.iter().flat_map(|n| [n.to_string(), format!("{n}.sha256")]).collect();
    want.sort();
    assert_eq!(ls(&dir), want);
    // What stayed is byte for byte what was there.
    let after = snapshot_tree(&dir);
    for (name, hash) in &after {
        assert_eq!(Some(hash), before.get(name), "{name} changed");
    }

    // Pruning again with the same rules removes nothing more.
    let mut args = vec!["prune", s(&dir), "--json"];
    args.extend(GFS);
    let r = kfadmin(&args);
    r.ok();
    assert_eq!(r.json()["removed"], 0);
    assert_eq!(ls(&dir), want);

    // The human report of a real run.
    ar.put(&dir, "keyfount-20260101T030000Z-online.tar.gz");
    let mut args = vec!["prune", s(&dir)];
    args.extend(GFS);
    kfadmin(&args).ok().stdout_has("Removed 1 archive, freed");
    assert_eq!(ls(&dir), want);
}

/// A clock far ahead wrote one archive: prune and list name it, prune keeps it without
/// counting it, and the newest archive of today's clock is "the newest that verifies".
#[test]
fn a_future_dated_archive_is_named_kept_and_never_counted_as_newest() {
    let env = Env::new();
    let ar = Archive::new(&env);
    let dir = env.path("backups");
    let future = "keyfount-20990101T030000Z-online.tar.gz";
    ar.put(&dir, future);
    for d in 1..=5 {
        ar.put(&dir, &format!("keyfount-2024050{d}T030000Z-online.tar.gz"));
    }
    // The future one is also the oldest file on disk: the time in its name decides.
    let old = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000_000);
    std::fs::File::options().write(true).open(dir.join(future)).unwrap().set_modified(old).unwrap();

    let r = kfadmin(["list", s(&dir), "--json"]);
    r.ok().stderr_has(future).stderr_has("ahead of this machine's clock");
    let j = r.json();
    assert_eq!(j["archives"][0]["file_name"], future);
    assert_eq!(j["archives"][0]["in_future"], true);
    assert_eq!(j["archives"][1]["in_future"], false);
    kfadmin(["list", s(&dir)]).ok().stdout_has("2099-01-01 03:00:00 (future!)");

    let r = kfadmin(["prune", s(&dir), "--keep-last", "2", "--json"]);
    r.ok().stderr_has(future).stderr_has("does not count it");
    let got = decisions(&r.json());
    assert_eq!(got[future].0, "keep");
    assert_eq!(got[future].1, "dated in the future: not counted, not removed; check the clocks");
    assert_eq!(got["keyfount-20240505T030000Z-online.tar.gz"].1, "last, newest that verifies");
    assert_eq!(got["keyfount-20240504T030000Z-online.tar.gz"].1, "last");
    let mut want = vec![future.to_string(), format!("{future}.sha256")];
    for d in [4, 5] {
        want.push(format!("keyfount-2024050{d}T030000Z-online.tar.gz"));
        want.push(format!("keyfount-2024050{d}T030000Z-online.tar.gz.sha256"));
    }
    want.sort();
    assert_eq!(ls(&dir), want);
}

/// The day: the 03:00 backup, then a restore at 10:00 that kept a pre-restore safety
/// copy of the (bad) data it replaced. The safety copy takes no backup slot: the 03:00 backup
/// that was restored from stays, and the safety copies are kept by their own rule.
#[test]
fn pre_restore_safety_copies_never_displace_a_backup() {
    let env = Env::new();
    let ar = Archive::new(&env);
    let dir = env.path("backups");
    ar.put(&dir, "keyfount-20261104T030000Z-online.tar.gz");
    ar.put(&dir, "keyfount-20261105T030000Z-online.tar.gz");
    ar.put(&dir, "keyfount-20261105T100000Z-pre-restore.tar.gz");
    for rule in [["--keep-daily", "1"], ["--keep-last", "1"]] {
        let r = kfadmin(["prune", s(&dir), rule[0], rule[1], "--dry-run", "--json"]);
        r.ok();
        let got = decisions(&r.json());
        let kept = &got["keyfount-20261105T030000Z-online.tar.gz"];
        assert_eq!(kept.0, "keep", "{rule:?}: the 03:00 backup must stay: {got:?}");
        assert_eq!(kept.1, format!("{}, newest that verifies", &rule[0][7..]));
        assert_eq!(got["keyfount-20261105T100000Z-pre-restore.tar.gz"].1, "pre-restore");
        assert_eq!(got["keyfount-20261104T030000Z-online.tar.gz"].0, "remove");
        let j = r.json();
        let kinds: Vec<&str> =
            j["archives"].as_array().unwrap().iter().map(|a| a["kind"].as_str().unwrap()).collect();
        assert_eq!(kinds, ["backup", "backup", "safety-copy"]);
    }

    // Five more restores: the newest 3 safety copies stay by default, N with --keep-pre-restore
    // (or KFADMIN_KEEP_PRE_RESTORE); the backups are untouched by that rule.
    for h in 11..=15 {
        ar.put(&dir, &format!("keyfount-20261105T{h}0000Z-pre-restore.tar.gz"));
    }
    let r = kfadmin(["prune", s(&dir), "--keep-last", "1", "--dry-run", "--json"]);
    r.ok();
    let got = decisions(&r.json());
    let kept: Vec<&String> = got.iter().filter(|(_, d)| d.1 == "pre-restore").map(|(n, _)| n).collect();
    assert_eq!(
        kept,
        [
            "keyfount-20261105T130000Z-pre-restore.tar.gz",
            "keyfount-20261105T140000Z-pre-restore.tar.gz",
            "keyfount-20261105T150000Z-pre-restore.tar.gz"
        ]
    );
    let r: Run = std::process::Command::new(kfadmin_bin())
        .args(["prune", s(&dir), "--keep-daily", "1", "--json"])
        .env("KFADMIN_KEEP_PRE_RESTORE", "1")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap()
        .into();
    r.ok();
    assert_eq!(r.json()["policy"]["pre_restore"], 1);
    assert_eq!(
        ls(&dir).into_iter().filter(|n| n.ends_with(".tar.gz")).collect::<Vec<_>>(),
        ["keyfount-20261105T030000Z-online.tar.gz", "keyfount-20261105T150000Z-pre-restore.tar.gz"]
    );
    let r = kfadmin(["prune", s(&dir), "--keep-last", "1"]);
    r.ok().stdout_has("keyfount (pre-restore safety copies, keep the newest 3): 1 archive");

    // list shows them as safety copies, not backups.
    let r = kfadmin(["list", s(&dir), "--json"]);
    r.ok();
    let a = r.json()["archives"].as_array().unwrap().clone();
    assert_eq!((a[0]["mode"].as_str(), a[0]["kind"].as_str()), (Some("pre-restore"), Some("safety-copy")));
    assert_eq!(a[1]["kind"], "backup");
    kfadmin(["list", s(&dir)])
        .ok()
        .stdout_has("pre-restore (safety copy)")
        .stdout_has("2 archives (1 of them pre-restore safety copy, not backups)");
}

#[test]
fn prune_never_counts_or_removes_a_corrupt_newest_archive() {
    let env = Env::new();
    let ar = Archive::new(&env);
    let dir = env.path("backups");
    let bad = ar.put(&dir, "keyfount-20261105T030000Z-online.tar.gz");
    corrupt(&bad);
    for d in 1..=4 {
        ar.put(&dir, &format!("keyfount-2026110{d}T030000Z-online.tar.gz"));
    }
    let bad_bytes = std::fs::read(&bad).unwrap();

    let r = kfadmin(["prune", s(&dir), "--keep-last", "1", "--json"]);
    r.ok();
    let report = r.json();
    let got = decisions(&report);
    let (action, reasons, good) = &got["keyfount-20261105T030000Z-online.tar.gz"];
    assert_eq!((action.as_str(), *good), ("keep", false));
    assert_eq!(reasons, "fails verification: not counted, not removed; remove it by hand");
    // The corrupt one did not use the only "last" slot: the newest good archive has it.
    let (action, reasons, good) = &got["keyfount-20261104T030000Z-online.tar.gz"];
    assert_eq!((action.as_str(), reasons.as_str(), *good), ("keep", "last, newest that verifies", true));
    assert_eq!(report["removed"], 3);
    assert!(r.stderr.contains("keyfount-20261105T030000Z-online.tar.gz"), "no warning: {}", r.stderr);
    assert_eq!(
        ls(&dir),
        [
            "keyfount-20261104T030000Z-online.tar.gz",
            "keyfount-20261104T030000Z-online.tar.gz.sha256",
            "keyfount-20261105T030000Z-online.tar.gz",
            "keyfount-20261105T030000Z-online.tar.gz.sha256",
        ]
    );
    assert_eq!(std::fs::read(&bad).unwrap(), bad_bytes, "the corrupt archive was changed");

    // Corrupt archives only: nothing to count, nothing removed.
    corrupt(&dir.join("keyfount-20261104T030000Z-online.tar.gz"));
    let before = snapshot_tree(&dir);
    let r = kfadmin(["prune", s(&dir), "--keep-last", "1", "--json"]);
    r.ok();
    assert_eq!(r.json()["removed"], 0);
    assert!(decisions(&r.json()).values().all(|(a, _, good)| a == "keep" && !good));
    assert_eq!(snapshot_tree(&dir), before);
}

#[test]
fn prune_skips_archives_that_fail_verification_in_the_middle() {
    let env = Env::new();
    let ar = Archive::new(&env);
    let dir = env.path("backups");
    // Newest: no sidecar but a sound archive, so it counts.
    ar.put_bare(&dir, "keyfount-20261106T030000Z-online.tar.gz");
    // A sidecar mismatch.
    corrupt(&ar.put(&dir, "keyfount-20261105T030000Z-online.tar.gz"));
    // No sidecar, and cut short: a quick verify fails.
    let cut = dir.join("keyfount-20261104T030000Z-online.tar.gz");
    std::fs::write(&cut, &ar.bytes[..ar.bytes.len() / 2]).unwrap();
    ar.put(&dir, "keyfount-20261103T030000Z-online.tar.gz");
    ar.put(&dir, "keyfount-20261102T030000Z-online.tar.gz");
    ar.put(&dir, "keyfount-20261101T030000Z-online.tar.gz");

    let r = kfadmin(["prune", s(&dir), "--keep-last", "2", "--dry-run", "--json"]);
    r.ok();
    let got = decisions(&r.json());
    let bad = "fails verification: not counted, not removed; remove it by hand";
    let want: BTreeMap<String, (String, String, bool)> = [
        ("keyfount-20261106T030000Z-online.tar.gz", "keep", "last, newest that verifies", true),
        ("keyfount-20261105T030000Z-online.tar.gz", "keep", bad, false),
        ("keyfount-20261104T030000Z-online.tar.gz", "keep", bad, false),
        ("keyfount-20261103T030000Z-online.tar.gz", "keep", "last", true),
        ("keyfount-20261102T030000Z-online.tar.gz", "remove", REMOVE, true),
        ("keyfount-20261101T030000Z-online.tar.gz", "remove", REMOVE, true),
    ]
    .into_iter()
    .map(|(n, a, why, good)| (n.to_string(), (a.to_string(), why.to_string(), good)))
    .collect();
    assert_eq!(got, want);

    let r = kfadmin(["prune", s(&dir), "--keep-last", "2"]);
    r.ok().stdout_has("Removed 2 archives");
    assert_eq!(
        ls(&dir),
        [
            "keyfount-20261103T030000Z-online.tar.gz",
            "keyfount-20261103T030000Z-online.tar.gz.sha256",
            "keyfount-20261104T030000Z-online.tar.gz",
            "keyfount-20261105T030000Z-online.tar.gz",
            "keyfount-20261105T030000Z-online.tar.gz.sha256",
            "keyfount-20261106T030000Z-online.tar.gz",
        ]
    );
}

#[test]
fn prune_without_a_keep_rule_refuses() {
    let env = Env::new();
    let ar = Archive::new(&env);
    let dir = env.path("backups");
    for d in 1..=3 {
        ar.put(&dir, &format!("keyfount-2026110{d}T030000Z-online.tar.gz"));
    }
    let before = snapshot_tree(&dir);
    kfadmin(["prune", s(&dir)]).code(2).stderr_has("--keep-");
    kfadmin([
        "prune",
        s(&dir),
        "--keep-last",
        "0",
        "--keep-daily",
        "0",
        "--keep-weekly",
        "0",
        "--keep-monthly",
        "0",
    ])
    .code(2)
    .stderr_has("--keep-");
    let r = kfadmin(["prune", s(&dir), "--json"]);
    r.code(2);
    assert_eq!(r.json()["ok"], false);
    assert_eq!(snapshot_tree(&dir), before);
}

#[test]
fn prune_and_list_leave_foreign_files_alone() {
    let env = Env::new();
    let ar = Archive::new(&env);
    let dir = env.path("backups");
    for d in 1..=3 {
        ar.put(&dir, &format!("keyfount-2026110{d}T030000Z-online.tar.gz"));
    }
    std::fs::write(dir.join("notes.txt"), "rotation notes\n").unwrap();
    ar.put(&dir, "x.tar.gz");
    std::fs::write(dir.join("keyfount-20261001T030000Z-online.tar.gz.partial"), &ar.bytes).unwrap();
    std::fs::write(dir.join("keyfount-20261001T030000Z-hot.tar.gz"), &ar.bytes).unwrap();
    std::fs::write(dir.join("keyfount-20260901T030000Z-online.tar.gz.sha256"), "0  orphan\n").unwrap();
    let d = dir.join("keyfount-20260801T030000Z-online.tar.gz");
    std::fs::create_dir(&d).unwrap();
    std::fs::write(d.join("inside"), "x").unwrap();
    // A symlink named like an old archive, to an archive somewhere else: neither is touched.
    let elsewhere = ar.put(&env.path("elsewhere"), "keyfount-20250101T030000Z-online.tar.gz");
    std::os::unix::fs::symlink(&elsewhere, dir.join("keyfount-20250101T030000Z-online.tar.gz")).unwrap();
    let foreign = [
        "keyfount-20250101T030000Z-online.tar.gz",
        "keyfount-20260801T030000Z-online.tar.gz/",
        "keyfount-20260801T030000Z-online.tar.gz/inside",
        "keyfount-20260901T030000Z-online.tar.gz.sha256",
        "keyfount-20261001T030000Z-hot.tar.gz",
        "keyfount-20261001T030000Z-online.tar.gz.partial",
        "notes.txt",
        "x.tar.gz",
        "x.tar.gz.sha256",
    ];
    let before = snapshot_tree(&dir);
    for f in foreign {
        assert!(before.contains_key(f), "{f} missing from the fixture");
    }

    let r = kfadmin(["list", s(&dir), "--json", "--check"]);
    r.ok();
    let j = r.json();
    let names: Vec<&str> =
        j["archives"].as_array().unwrap().iter().map(|a| a["file_name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "keyfount-20261103T030000Z-online.tar.gz",
            "keyfount-20261102T030000Z-online.tar.gz",
            "keyfount-20261101T030000Z-online.tar.gz"
        ]
    );

    let r = kfadmin(["prune", s(&dir), "--keep-last", "1", "--json"]);
    r.ok();
    let report = r.json();
    assert_eq!(report["archives"].as_array().unwrap().len(), 3);
    assert_eq!(report["removed"], 2);
    let after = snapshot_tree(&dir);
    for f in foreign {
        assert_eq!(after.get(f), before.get(f), "{f} was touched");
    }
    assert!(after.contains_key("keyfount-20261103T030000Z-online.tar.gz"));
    assert!(!after.contains_key("keyfount-20261102T030000Z-online.tar.gz"));
    assert!(!after.contains_key("keyfount-20261101T030000Z-online.tar.gz.sha256"));
    assert_eq!(after.len(), before.len() - 4);
    assert!(elsewhere.is_file() && dir.join("keyfount-20250101T030000Z-online.tar.gz").is_symlink());
}

#[test]
fn list_shows_archives_newest_first_with_mode_source_and_sizes() {
    let env = Env::new();
    let ar = Archive::new(&env);
    let dir = env.path("backups");
    ar.put(&dir, "keyfount-20261101T030000Z-online.tar.gz");
    ar.put(&dir, "keyfount-20261103T030000Z-cold.tar.gz");
    ar.put(&dir, "keyfount-20261102T120000Z-pre-restore.tar.gz");
    ar.put(&dir, "kf-other-20261102T030000Z-online.tar.gz");
    // Named like an archive, but not one: listed, with what cannot be known shown as "?".
    std::fs::write(dir.join("keyfount-20261020T030000Z-online.tar.gz"), "not gzip\n").unwrap();
    std::fs::write(dir.join("notes.txt"), "x").unwrap();

    let r = kfadmin(["list", s(&dir), "--json"]);
    r.ok();
    let j = r.json();
    assert_eq!(j["ok"], true);
    assert_eq!(j["dir"], s(&dir));
    let a = j["archives"].as_array().unwrap();
    let rows: Vec<(&str, &str, &str)> = a
        .iter()
        .map(|x| (x["file_name"].as_str().unwrap(), x["name"].as_str().unwrap(), x["mode"].as_str().unwrap()))
        .collect();
    assert_eq!(
        rows,
        [
            ("keyfount-20261103T030000Z-cold.tar.gz", "keyfount", "cold"),
            ("keyfount-20261102T120000Z-pre-restore.tar.gz", "keyfount", "pre-restore"),
            ("kf-other-20261102T030000Z-online.tar.gz", "kf-other", "online"),
            ("keyfount-20261101T030000Z-online.tar.gz", "keyfount", "online"),
            ("keyfount-20261020T030000Z-online.tar.gz", "keyfount", "online"),
        ]
    );
    let first = &a[0];
    assert_eq!(first["path"], s(&dir.join("keyfount-20261103T030000Z-cold.tar.gz")));
    assert_eq!(first["created"], "2026-11-03T03:00:00Z");
    assert_eq!(first["created_unix"], 1_793_674_800u64);
    assert_eq!(first["bytes"], ar.bytes.len() as u64);
    assert_eq!(first["database_bytes"], ar.database_bytes());
    assert_eq!(first["source"], ar.report["source"]["path"]);
    assert!(first["sidecar"].is_null(), "not checked without --check");
    let unreadable = &a[4];
    assert!(unreadable["source"].is_null() && unreadable["database_bytes"].is_null());

    // The human table: same order, one-line total.
    let r = kfadmin(["list", s(&dir)]);
    r.ok().stdout_has("TIME (UTC)").stdout_has("5 archives").stdout_has("2026-11-03 03:00:00");
    let pos =
        |needle: &str| r.stdout.find(needle).unwrap_or_else(|| panic!("{needle} missing:\n{}", r.stdout));
    assert!(pos("20261103T030000Z-cold") < pos("20261102T120000Z-pre-restore"));
    assert!(pos("20261102T120000Z-pre-restore") < pos("kf-other-20261102T030000Z"));
    assert!(pos("kf-other-20261102T030000Z") < pos("20261101T030000Z-online"));
    let line = r.stdout.lines().find(|l| l.contains("20261020T030000Z")).unwrap();
    assert!(line.contains(" ? "), "{line}");
    // notes.txt is no archive: only named as skipped.
    let said: Vec<&str> = r.stdout.lines().filter(|l| l.contains("notes.txt")).collect();
    assert!(said.len() == 1 && said[0].starts_with("Skipped "), "{}", r.stdout);
    let header = r.stdout.lines().next().unwrap();
    let row = r.stdout.lines().nth(1).unwrap();
    // Aligned: the MODE column starts at the same place in the header and the rows.
    assert_eq!(header.find("MODE"), row.find("cold"), "\n{header}\n{row}");

    // An empty directory is not an error.
    std::fs::create_dir(env.path("empty")).unwrap();
    let r = kfadmin(["list", s(&env.path("empty")), "--json"]);
    r.ok();
    assert_eq!(r.json()["archives"].as_array().unwrap().len(), 0);
}

#[test]
fn list_check_flags_a_mismatching_sidecar_and_exits_3() {
    let env = Env::new();
    let ar = Archive::new(&env);
    let dir = env.path("backups");
    ar.put(&dir, "keyfount-20261103T030000Z-online.tar.gz");
    corrupt(&ar.put(&dir, "keyfount-20261102T030000Z-online.tar.gz"));
    ar.put_bare(&dir, "keyfount-20261101T030000Z-online.tar.gz");

    // Without --check nothing is read, so nothing fails.
    kfadmin(["list", s(&dir)]).ok();

    let r = kfadmin(["list", s(&dir), "--check", "--json"]);
    r.code(3);
    let j = r.json();
    assert_eq!(j["ok"], false);
    let sidecars: Vec<&str> =
        j["archives"].as_array().unwrap().iter().map(|a| a["sidecar"].as_str().unwrap()).collect();
    assert_eq!(sidecars, ["ok", "mismatch", "missing"]);

    let r = kfadmin(["list", s(&dir), "--check"]);
    r.code(3).stdout_has("MISMATCH").stdout_has("no sidecar").stdout_has("1 ok, 1 MISMATCH, 1 missing");
    let line = r.stdout.lines().find(|l| l.contains("20261102T030000Z")).unwrap();
    assert!(line.contains("MISMATCH"), "{line}");
    let line = r.stdout.lines().find(|l| l.contains("20261103T030000Z")).unwrap();
    assert!(line.contains(" ok "), "{line}");

    // A missing sidecar alone is not a failure.
    std::fs::remove_file(dir.join("keyfount-20261102T030000Z-online.tar.gz")).unwrap();
    kfadmin(["list", s(&dir), "--check"]).ok();
}

#[test]
fn list_and_prune_on_a_missing_directory_exit_2() {
    let env = Env::new();
    let missing = env.path("nope");
    kfadmin(["list", s(&missing)]).code(2).stderr_has("does not exist");
    let r = kfadmin(["list", s(&missing), "--json"]);
    r.code(2);
    assert_eq!(r.json()["ok"], false);
    kfadmin(["prune", s(&missing), "--keep-last", "1"]).code(2).stderr_has("does not exist");
    assert!(!missing.exists());
}

/// Linux file names are bytes: an archive name or a backup directory that is not valid UTF-8
/// is listed, pruned, verified and reported (U+FFFD in JSON), never a panic (exit 101).
#[test]
fn paths_that_are_not_utf8_never_panic() {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    let env = Env::new();
    let ar = Archive::new(&env);
    let dir = env.path("backups");
    ar.put(&dir, "keyfount-20261103T030000Z-online.tar.gz");
    let odd = |stamp: &str| {
        let mut name = b"kf\xff-".to_vec();
        name.extend_from_slice(format!("{stamp}-online.tar.gz").as_bytes());
        dir.join(OsStr::from_bytes(&name))
    };
    for stamp in ["20261102T030000Z", "20261101T030000Z"] {
        std::fs::write(odd(stamp), &ar.bytes).unwrap();
    }
    let lossy = "kf\u{FFFD}-20261102T030000Z-online.tar.gz";

    let r = kfadmin(["list", s(&dir), "--json"]);
    r.ok();
    let j = r.json();
    let a = &j["archives"][1];
    assert_eq!(a["file_name"], lossy);
    assert_eq!(a["path"], format!("{}/{lossy}", s(&dir)));
    assert_eq!(a["name"], "kf\u{FFFD}");
    kfadmin(["list", s(&dir)]).ok().stdout_has(lossy);
    kfadmin(["list", s(&dir), "--check", "--json"]).ok();

    let r = kfadmin(["prune", s(&dir), "--keep-last", "1", "--json"]);
    r.ok();
    assert_eq!(r.json()["removed"], 1);
    assert!(odd("20261102T030000Z").is_file() && !odd("20261101T030000Z").exists());
    kfadmin(["prune", s(&dir), "--keep-last", "1", "--dry-run"]).ok().stdout_has(lossy);

    let r = kfadmin(["verify".as_ref(), "--json".as_ref(), odd("20261102T030000Z").as_os_str()]);
    r.ok();
    assert_eq!(r.json()["archives"][0]["archive"], format!("{}/{lossy}", s(&dir)));

    // A backup directory whose own name is not UTF-8 (written under a plain name, then
    // renamed: the archive writer's sidecar path is its own matter).
    let data = env.data_dir("data", 1);
    let db = data.join("keyfount.db");
    let bad_dir = env.dir.path().join(OsStr::from_bytes(b"backups-\xfe"));
    let lossy_dir = format!("{}/backups-\u{FFFD}", env.dir.path().display());
    let written =
        backup(&db, &env.path("plain"))["archive"].as_str().unwrap().rsplit('/').next().unwrap().to_string();
    std::fs::rename(env.path("plain"), &bad_dir).unwrap();
    let archive = format!("{lossy_dir}/{written}");
    let r = kfadmin(["list".as_ref(), bad_dir.as_os_str(), "--json".as_ref()]);
    r.ok();
    assert_eq!(r.json()["dir"], lossy_dir.as_str());
    let r = kfadmin([
        "status".as_ref(),
        "--db".as_ref(),
        db.as_os_str(),
        "--backup-dir".as_ref(),
        bad_dir.as_os_str(),
        "--json".as_ref(),
    ]);
    r.ok();
    assert_eq!(r.json()["backups"]["last"]["path"], archive.as_str());
    let r = kfadmin([
        "prune".as_ref(),
        bad_dir.as_os_str(),
        "--keep-last".as_ref(),
        "1".as_ref(),
        "--json".as_ref(),
    ]);
    r.ok();
    let real = ls(&bad_dir).into_iter().find(|n| n.ends_with(".tar.gz")).unwrap();
    let r = kfadmin(["verify".as_ref(), bad_dir.join(real).as_os_str(), "--json".as_ref()]);
    r.ok();
    assert_eq!(r.json()["archives"][0]["archive"], archive.as_str());
}

/// Junk with matching sidecars, named as the newest backups, in a LOCAL repository: random
/// bytes, random bytes named `.age`, and a gzip'd tar with no manifest. None of them counts as
/// a backup (the same structural check as in a bucket), so `--keep-last 3` keeps the three
/// newest genuine archives, not the junk.
#[test]
fn prune_does_not_count_local_junk_with_matching_sidecars_as_backups() {
    let env = Env::new();
    let ar = Archive::new(&env);
    let dir = env.path("backups");
    for d in 1..=4 {
        ar.put(&dir, &format!("keyfount-2026110{d}T030000Z-online.tar.gz"));
    }
    let random: Vec<u8> = (0..1000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    let no_manifest = craft(vec![file("data/keyfount.db", b"SQLite format 3\0")]);
    let junk = [
        ("keyfount-20261105T030000Z-online.tar.gz", random.clone()),
        ("keyfount-20261106T030000Z-online.tar.gz.age", random),
        ("keyfount-20261107T030000Z-cold.tar.gz", no_manifest),
    ];
    for (name, body) in &junk {
        let path = dir.join(name);
        std::fs::write(&path, body).unwrap();
        sidecar(&path, body);
    }
    let r = kfadmin(["prune", s(&dir), "--keep-last", "3", "--json"]);
    r.ok();
    let got = decisions(&r.json());
    for (name, _) in &junk {
        let (action, reasons, good) = &got[*name];
        assert_eq!((action.as_str(), *good), ("keep", false), "{name}: {reasons}");
        assert!(r.stderr.contains(name), "{name} is named in a warning: {}", r.stderr);
    }
    r.stderr_has("not a kfadmin archive").stderr_has("age header");
    for d in 2..=4 {
        let (action, _, good) = &got[&format!("keyfount-2026110{d}T030000Z-online.tar.gz")];
        assert_eq!((action.as_str(), *good), ("keep", true));
    }
    assert_eq!(got["keyfount-20261101T030000Z-online.tar.gz"].0, "remove");
    assert_eq!(r.json()["removed"], 1);
}

/// Two servers backed up under one name (a copied config): `list` names the hosts and warns,
/// since prune would count their backups against each other.
#[test]
fn list_warns_when_one_name_holds_backups_made_on_several_hosts() {
    use std::io::{Read, Write};
    let env = Env::new();
    let ar = Archive::new(&env);
    let dir = env.path("backups");
    ar.put(&dir, "keyfount-20261101T030000Z-online.tar.gz");
    // The same archive as another host made it: its manifest's host replaced (same length, so
    // the tar header still holds).
    let host = ar.report["source"]["host"].as_str().unwrap().to_string();
    let mut tar = Vec::new();
    flate2::read::MultiGzDecoder::new(&ar.bytes[..]).read_to_end(&mut tar).unwrap();
    let from = format!("\"host\": \"{host}\"");
    let other: String = host.chars().map(|c| if c == 'z' { 'y' } else { 'z' }).collect();
    let to = format!("\"host\": \"{other}\"");
    let at = tar.windows(from.len()).position(|w| w == from.as_bytes()).expect("the manifest names its host");
    tar[at..at + to.len()].copy_from_slice(to.as_bytes());
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&tar).unwrap();
    let bytes = gz.finish().unwrap();
    let path = dir.join("keyfount-20261102T030000Z-online.tar.gz");
    std::fs::write(&path, &bytes).unwrap();
    sidecar(&path, &bytes);
    let r = kfadmin(["list", s(&dir), "--json"]);
    r.ok().stderr_has("archives named keyfount were made on 2 hosts").stderr_has(&other);
    let hosts = &r.json()["groups"][0]["hosts"];
    assert_eq!(hosts.as_array().unwrap().len(), 2, "{hosts}");
    // One host: no warning.
    std::fs::remove_file(&path).unwrap();
    let r = kfadmin(["list", s(&dir), "--json"]);
    assert!(!r.ok().stderr.contains("hosts"), "{}", r.stderr);
}
