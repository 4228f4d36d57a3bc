//! Test hooks, compiled into debug builds only. Fault injection: `KFADMIN_TEST_FAULT=POINT:ACTION`
//! makes kfadmin, on reaching the named step, kill itself (`kill`: SIGKILL, as the OOM killer
//! or a power cut would), signal itself (`term`, `int`: as an operator or systemd would), or fail
//! there (`fail`: any error; `full`: a full disk). The tests walk every step of backup and
//! restore with it and check that nothing is left half-done. Release builds ignore it.

use crate::error::Result;

/// A step kfadmin may be stopped at (see the `point(…)` calls for the names).
#[cfg(debug_assertions)]
pub fn point(name: &str) -> Result<()> {
    use crate::error::Error;
    let Ok(spec) = std::env::var("KFADMIN_TEST_FAULT") else { return Ok(()) };
    let Some((at, action)) = spec.split_once(':') else { return Ok(()) };
    if at != name {
        return Ok(());
    }
    let signal = |sig| {
        let _ = rustix::process::kill_process(rustix::process::getpid(), sig);
    };
    match action {
        "kill" => {
            signal(rustix::process::Signal::KILL);
            std::thread::sleep(std::time::Duration::from_secs(60));
            Ok(())
        }
        "term" | "int" => {
            signal(if action == "term" {
                rustix::process::Signal::TERM
            } else {
                rustix::process::Signal::INT
            });
            // The handler sets the flag; the step notices it as every loop would.
            std::thread::sleep(std::time::Duration::from_millis(50));
            crate::error::check_interrupt()
        }
        "full" => Err(Error::io(
            &format!("injected at {name}: cannot write"),
            std::path::Path::new(name),
            std::io::Error::from_raw_os_error(libc::ENOSPC),
        )),
        _ => Err(Error::failed(format!("injected failure at {name}"))),
    }
}

#[cfg(not(debug_assertions))]
#[inline(always)]
pub fn point(_name: &str) -> Result<()> {
    Ok(())
}

/// A test hook, compiled into debug builds only: when `KFADMIN_TEST_PAUSE_AT` (a comma-separated
/// list) names `point`, create `$KFADMIN_TEST_PAUSE_DIR/<point>.reached` and wait (at most 5
/// minutes) until `<point>.go` exists there. Release builds ignore both variables.
pub fn pause(point: &str) {
    #[cfg(debug_assertions)]
    {
        let named = std::env::var("KFADMIN_TEST_PAUSE_AT").is_ok_and(|v| v.split(',').any(|p| p == point));
        let Some(dir) =
            std::env::var_os("KFADMIN_TEST_PAUSE_DIR").filter(|_| named).map(std::path::PathBuf::from)
        else {
            return;
        };
        let _ = std::fs::write(dir.join(format!("{point}.reached")), b"");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(300);
        while !dir.join(format!("{point}.go")).exists() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
    #[cfg(not(debug_assertions))]
    let _ = point;
}

/// A test hook, compiled into debug builds only: `KFADMIN_TEST_NO_GUARDIAN=1` starts no guardian
/// (crate::ops::guardian), so that the tests can reach the journals, its second line of defence.
pub fn no_guardian() -> bool {
    cfg!(debug_assertions) && std::env::var_os("KFADMIN_TEST_NO_GUARDIAN").is_some_and(|v| v == "1")
}
