//! Monitoring: `status` exit codes, the Prometheus metrics file, healthchecks-style pings
//! against a real HTTP server on loopback.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::os::unix::fs::MetadataExt;
use std::sync::{Arc, Mutex};

use crate::util::*;

#[test]
fn status_exit_codes_follow_the_age_of_the_last_backup() {
    let env = Env::new();
    let data = env.data_dir("data", 1);
    let db = data.join("keyfount.db");
    let dir = env.path("backups");
    std::fs::create_dir(&dir).unwrap();
    let status = |extra: &[&str]| {
        let mut a = vec!["status", "--db", db.to_str().unwrap(), "--backup-dir", dir.to_str().unwrap()];
        a.extend_from_slice(extra);
        kfadmin(a)
    };
    // No backup yet.
    status(&[]).code(1).stdout_has("no backup");
    let j = status(&["--json"]).json();
    assert_eq!(j["ok"], false);
    assert!(j["backups"]["last"].is_null());

    // A fresh one.
    let r = backup(&db, &dir);
    status(&[]).ok().stdout_has("=> OK").stdout_has("journal mode wal");
    let j = status(&["--json"]).json();
    assert_eq!(j["ok"], true);
    assert_eq!(j["backups"]["count"], 1);
    assert_eq!(j["backups"]["last"]["path"], r["archive"]);
    assert!(j["database"]["bytes"].as_u64().unwrap() > 0);

    // Older than --max-age: an archive named for a time three days ago is the newest.
    let old = std::time::SystemTime::now() - std::time::Duration::from_secs(3 * 86400);
    let stamp = humantime::format_rfc3339_seconds(old).to_string().replace(['-', ':'], "");
    let aged = env.path(&format!("keyfount-{stamp}-online.tar.gz"));
    std::fs::copy(r["archive"].as_str().unwrap(), &aged).unwrap();
    for n in ls(&dir) {
        std::fs::remove_file(dir.join(n)).unwrap();
    }
    std::fs::rename(&aged, dir.join(aged.file_name().unwrap())).unwrap();
    status(&["--max-age", "26h"]).code(1).stdout_has("more than --max-age");
    status(&["--max-age", "4d"]).ok();
    // Archives of another server do not count.
    let j = kfadmin([
        "status",
        "--db",
        env.path("data/other.db").to_str().unwrap(),
        "--backup-dir",
        dir.to_str().unwrap(),
    ]);
    j.code(2).stderr_has("does not exist");
}

#[test]
fn the_metrics_file_is_replaced_atomically_and_keeps_the_last_success() {
    let env = Env::new();
    let data = env.data_dir("data", 1);
    let db = data.join("keyfount.db");
    let metrics = env.path("kfadmin.prom");
    let out = env.path("backups");
    kfadmin([
        "backup",
        "--online",
        "--db",
        db.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--metrics-file",
        metrics.to_str().unwrap(),
    ])
    .ok();
    let first = std::fs::read_to_string(&metrics).unwrap();
    let line = |text: &str, m: &str| -> f64 {
        let l = text
            .lines()
            .find(|l| l.starts_with(&format!("{m}{{")))
            .unwrap_or_else(|| panic!("{m} missing:\n{text}"));
        // One stable label set per series (issue 19, item 13): no mode label to flip between
        // online and cold runs.
        assert!(l.contains("{name=\"keyfount\"} "), "{l}");
        l.rsplit(' ').next().unwrap().parse().unwrap()
    };
    assert_eq!(line(&first, "kfadmin_backup_last_exit_code"), 0.0);
    let success = line(&first, "kfadmin_backup_last_success_timestamp_seconds");
    assert!(success > 1.7e9);
    assert!(line(&first, "kfadmin_backup_size_bytes") > 0.0);
    assert!(first.contains("# TYPE kfadmin_backup_duration_seconds gauge"));
    let inode = std::fs::metadata(&metrics).unwrap().ino();

    // A failed run: the exit code changes, the last success stays.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let broken = env.path("broken.db");
    std::fs::write(&broken, vec![b'x'; 4096]).unwrap();
    kfadmin([
        "backup",
        "--online",
        "--db",
        broken.to_str().unwrap(),
        "--name",
        "keyfount",
        "--out",
        out.to_str().unwrap(),
        "--metrics-file",
        metrics.to_str().unwrap(),
    ])
    .code(2);
    let second = std::fs::read_to_string(&metrics).unwrap();
    assert_eq!(line(&second, "kfadmin_backup_last_exit_code"), 2.0);
    assert_eq!(line(&second, "kfadmin_backup_last_success_timestamp_seconds"), success);
    assert!(line(&second, "kfadmin_backup_last_run_timestamp_seconds") > success);
    // Replaced by a rename (a new inode), never rewritten in place; no temporary file left.
    assert_ne!(std::fs::metadata(&metrics).unwrap().ino(), inode);
    assert_eq!(ls(env.dir.path()).iter().filter(|n| n.starts_with("kfadmin.prom")).count(), 1);
}

/// A tiny HTTP server on loopback that records the paths it is asked for.
pub fn ping_server() -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/ping/abc-123", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    std::thread::spawn(move || {
        for stream in listener.incoming().take(100) {
            let Ok(mut s) = stream else { continue };
            let mut reader = BufReader::new(s.try_clone().unwrap());
            let mut request = String::new();
            reader.read_line(&mut request).unwrap();
            let mut len = 0usize;
            loop {
                let mut h = String::new();
                reader.read_line(&mut h).unwrap();
                if h.trim().is_empty() {
                    break;
                }
                if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap();
                }
            }
            let mut body = vec![0u8; len];
            std::io::Read::read_exact(&mut reader, &mut body).unwrap();
            let path = request.split_whitespace().nth(1).unwrap_or("").to_string();
            log.lock().unwrap().push(format!("{} {}", path, String::from_utf8_lossy(&body)));
            let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nOK");
        }
    });
    (url, seen)
}

#[test]
fn pings_on_start_success_and_failure() {
    let env = Env::new();
    let data = env.data_dir("data", 1);
    let db = data.join("keyfount.db");
    let out = env.path("backups");
    let (url, seen) = ping_server();
    let r = kfadmin([
        "backup",
        "--online",
        "--db",
        db.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--ping-url",
        &url,
        "--json",
    ]);
    r.ok();
    let sha = r.json()["sha256"].as_str().unwrap().to_string();
    {
        let got = seen.lock().unwrap();
        assert_eq!(got.len(), 2, "{got:?}");
        assert!(got[0].starts_with("/ping/abc-123/start"), "{got:?}");
        assert!(got[1].starts_with("/ping/abc-123 ") && got[1].contains(&sha), "{got:?}");
    }
    let missing = env.path("missing.db");
    kfadmin([
        "backup",
        "--online",
        "--db",
        missing.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--ping-url",
        &url,
    ])
    .code(2);
    let got = seen.lock().unwrap();
    assert_eq!(got.len(), 4, "{got:?}");
    assert!(got[2].starts_with("/ping/abc-123/start"));
    assert!(got[3].starts_with("/ping/abc-123/fail") && got[3].contains("does not exist"), "{got:?}");
}

#[test]
fn a_dead_ping_url_does_not_fail_the_backup() {
    let env = Env::new();
    let data = env.data_dir("data", 1);
    // A port nothing listens on.
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("http://127.0.0.1:{port}/ping");
    let r = kfadmin([
        "backup",
        "--online",
        "--db",
        data.join("keyfount.db").to_str().unwrap(),
        "--out",
        env.path("b").to_str().unwrap(),
        "--ping-url",
        &url,
        "--json",
    ]);
    r.ok().stderr_has("cannot ping").stderr_has("not affected");
    assert_eq!(r.json()["ok"], true);
}

/// `<name>-<stamp>-<mode>.tar.gz` for a time `ago` seconds before now (negative: ahead).
fn named_at(ago: i64, mode: &str) -> String {
    let now = std::time::SystemTime::now();
    let t = if ago >= 0 {
        now - std::time::Duration::from_secs(ago as u64)
    } else {
        now + std::time::Duration::from_secs((-ago) as u64)
    };
    let stamp = humantime::format_rfc3339_seconds(t).to_string().replace(['-', ':'], "");
    format!("keyfount-{stamp}-{mode}.tar.gz")
}

/// Neither a pre-restore safety copy (the data a restore replaced) nor an archive dated in the
/// future (a wrong clock) is ever "the last backup": the three-day-old backup behind them is,
/// and status says so (exit 1) instead of OK.
#[test]
fn status_counts_neither_safety_copies_nor_future_archives_as_the_last_backup() {
    let env = Env::new();
    let data = env.data_dir("data", 1);
    let db = data.join("keyfount.db");
    let made = backup(&db, &env.path("made"));
    let bytes = std::fs::read(made["archive"].as_str().unwrap()).unwrap();
    let dir = env.path("backups");
    std::fs::create_dir(&dir).unwrap();
    let old = named_at(3 * 86400, "online");
    std::fs::write(dir.join(&old), &bytes).unwrap();
    let status = |extra: &[&str]| {
        let mut a = vec!["status", "--db", db.to_str().unwrap(), "--backup-dir", dir.to_str().unwrap()];
        a.extend_from_slice(extra);
        kfadmin(a)
    };
    status(&["--max-age", "4d"]).ok();

    // A restore an hour ago kept a safety copy: not a backup.
    std::fs::write(dir.join(named_at(3600, "pre-restore")), &bytes).unwrap();
    let r = status(&["--max-age", "26h", "--json"]);
    r.code(1);
    let j = r.json();
    assert_eq!(j["backups"]["last"]["path"], dir.join(&old).to_str().unwrap(), "{j}");
    assert_eq!(j["backups"]["last"]["mode"], "online");
    assert_eq!((j["backups"]["count"].as_u64(), j["backups"]["safety_copies"].as_u64()), (Some(1), Some(1)));
    status(&["--max-age", "26h"])
        .code(1)
        .stdout_has("more than --max-age")
        .stdout_has("1 pre-restore safety copy");

    // An archive dated far ahead (a wrong clock) neither masks the old backup nor passes.
    let future = "keyfount-20990101T030000Z-online.tar.gz";
    std::fs::write(dir.join(future), &bytes).unwrap();
    let r = status(&["--max-age", "26h", "--json"]);
    r.code(1);
    let j = r.json();
    assert_eq!(j["backups"]["last"]["path"], dir.join(&old).to_str().unwrap(), "{j}");
    assert_eq!(j["backups"]["future"][0], dir.join(future).to_str().unwrap());
    let problems = j["problems"].to_string();
    assert!(problems.contains(future) && problems.contains("more than --max-age"), "{problems}");
    // A fresh backup is the last one, but the future archive stays a problem until it is dealt with.
    std::fs::write(dir.join(named_at(60, "cold")), &bytes).unwrap();
    let r = status(&["--max-age", "26h", "--json"]);
    r.code(1);
    let j = r.json();
    assert_eq!(j["backups"]["last"]["mode"], "cold");
    assert_eq!(j["problems"].as_array().unwrap().len(), 1, "{j}");
    std::fs::remove_file(dir.join(future)).unwrap();
    status(&["--max-age", "26h"]).ok().stdout_has("=> OK");
}
