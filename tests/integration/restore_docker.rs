//! Restores into a real container: the rollback journaled, damaged data replaced, every
//! database the archive restores checked for writers.

use std::process::{Command, Stdio};

use crate::dock::*;
use crate::util::*;

fn kf_fault(env: &Env, fault: &str, args: &[&str]) -> Run {
    Command::new(kfadmin_bin())
        .args(args)
        .env("KFADMIN_STATE_DIR", env.path("state"))
        .env("KFADMIN_TEST_FAULT", fault)
        .env_remove("KFADMIN_BACKUP_DIR")
        .stdin(Stdio::null())
        .output()
        .unwrap()
        .into()
}

/// A valid backup of a database the server refuses (an unsupported schema version).
fn refused_archive(env: &Env) -> String {
    let odd = env.data_dir("odd", 1);
    let conn = rusqlite::Connection::open(odd.join("keyfount.db")).unwrap();
    conn.execute_batch("PRAGMA user_version=3").unwrap();
    drop(conn);
    backup(&odd.join("keyfount.db"), &env.path("odd-backups"))["archive"].as_str().unwrap().to_string()
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
    for point in ["rollback.linked", "rollback.started"] {
        let r = kf_fault(
            &env,
            &format!("{point}:kill"),
            &[
                "restore",
                &archive,
                "--container",
                &c.name,
                "--out",
                out.to_str().unwrap(),
                "--yes",
                "--settle",
                "2",
            ],
        );
        assert_eq!(r.code, -1, "{point}: killed during the rollback: {}", r.stderr);
        assert!(!c.running());
        let r =
            kf_fault(&env, "", &["status", "--container", &c.name, "--backup-dir", out.to_str().unwrap()]);
        r.stderr_has("put back as it was");
        assert!(c.running(), "{point}: the next run starts the container again: {}", r.stderr);
        assert!(journals(&env.path("state")).is_empty(), "{point}: {:?}", journals(&env.path("state")));
        let seq = c.status()["last_seq"].as_i64().unwrap();
        c.wait_writing_past(seq.max(20));
        check_db(&c.host_data().join("keyfount.db"), 20);
    }
}
