//! Fault injection for the tests, compiled into debug builds only: `KFADMIN_TEST_FAULT=POINT:ACTION`
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
        // SAFETY: signalling this process.
        unsafe { libc::kill(libc::getpid(), sig) };
    };
    match action {
        "kill" => {
            signal(libc::SIGKILL);
            std::thread::sleep(std::time::Duration::from_secs(60));
            Ok(())
        }
        "term" | "int" => {
            signal(if action == "term" { libc::SIGTERM } else { libc::SIGINT });
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
