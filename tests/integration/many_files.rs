//! A data directory with many files beside the database (attachments, caches): the manifest
//! of its archive is far past 1 MiB, and kfadmin must still write, verify, list and restore
//! it, through the real cold backup of a real container.

use std::path::PathBuf;

use crate::dock::*;
use crate::util::*;

const DIRS: usize = 50;
const PER_DIR: usize = 1000;

fn kf(env: &Env, args: &[&str]) -> Run {
    let state = env.path("state");
    kfadmin_env(&[("KFADMIN_STATE_DIR", state.to_str().unwrap())], args)
}

/// Everything on a tmpfs: extraction fsyncs every file, and 150,000 fsyncs on a shared CI
/// disk take minutes without testing anything more.
#[test]
fn a_cold_backup_of_50000_files_verifies_lists_and_restores() {
    let env = Env::new();
    let fs = Tmpfs::mount(&env.path("fs"), "2g", false);
    std::fs::set_permissions(&fs.dir, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let bind = fs.dir.join("bind-data");
    std::fs::create_dir(&bind).unwrap();
    std::os::unix::fs::chown(&bind, Some(APP_UID), Some(APP_UID)).unwrap();
    let c = Kf::start(&env, "many", Spec { data: Data::Bind(bind.clone()), init_mb: 1, ..Spec::default() });
    let attachments = bind.join("attachments");
    for d in 0..DIRS {
        let dir = attachments.join(format!("d{d:02}"));
        std::fs::create_dir_all(&dir).unwrap();
        for f in 0..PER_DIR {
            std::fs::write(dir.join(format!("attachment-{f:04}.bin")), format!("{d}/{f}\n")).unwrap();
        }
    }
    chown_tree(&attachments, APP_UID, APP_UID);

    let out = fs.dir.join("backups");
    let r = kf(&env, &["backup", "--cold", "--container", &c.name, "--out", out.to_str().unwrap(), "--json"]);
    r.ok();
    let j = r.json();
    assert_eq!(j["files"].as_array().unwrap().len(), DIRS * PER_DIR + 1);
    assert!(c.running());
    c.stop();
    let archive = PathBuf::from(j["archive"].as_str().unwrap());

    // verify in full; list reads the manifest (over 1 MiB) alone.
    let tmp = fs.dir.join("tmp");
    kfadmin(["verify".as_ref(), "--tmp-dir".as_ref(), tmp.as_os_str(), archive.as_os_str()])
        .ok()
        .stdout_has("50001 file(s)");
    let r = kfadmin(["list".as_ref(), "--json".as_ref(), out.as_os_str()]);
    let listed = r.json();
    assert_eq!(listed["archives"][0]["source"], c.name.as_str(), "{listed}");
    assert!(listed["archives"][0]["database_bytes"].as_u64().unwrap() > 0);

    let fresh = fs.dir.join("restored");
    kfadmin([
        "restore".as_ref(),
        archive.as_os_str(),
        "--data-dir".as_ref(),
        fresh.as_os_str(),
        "--yes".as_ref(),
    ])
    .ok();
    check_db(&fresh.join("keyfount.db"), 0);
    assert_eq!(snapshot_tree(&fresh.join("attachments")), snapshot_tree(&attachments));
}
