//! `keyfount-sim hostile`: a process in the container that attacks whatever runs as root on the
//! host against its data directory. In a loop, as fast as it can, it replaces every entry it
//! can reach in the directory (kfadmin's own staging and safety directories included) with a
//! symbolic link to a path on the HOST (`--target`): a sidecar, the database, a sub-directory.
//! A tool that follows any of those links as root writes, chowns or reads outside the data
//! directory; the test checks that nothing there ever changes.

use crate::Fail;
use clap::Args;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

#[derive(Args)]
pub struct HostileArgs {
    /// The data directory to attack.
    #[arg(long, value_name = "DIR")]
    pub dir: PathBuf,
    /// Where the links point (a path that exists on the host, not in the container).
    #[arg(long, value_name = "PATH")]
    pub target: PathBuf,
    /// Written once at start: {"last_seq": 1, "done": false}.
    #[arg(long, value_name = "FILE")]
    pub status_file: Option<PathBuf>,
}

pub fn hostile(a: &HostileArgs) -> Result<ExitCode, Fail> {
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(sig, Arc::clone(&stop))?;
    }
    if let Some(f) = &a.status_file {
        std::fs::write(f, br#"{"last_seq": 1, "done": false}"#)?;
    }
    let mut n = 0u64;
    while !stop.load(Ordering::SeqCst) {
        attack(&a.dir, &a.target, &mut n);
    }
    Ok(ExitCode::SUCCESS)
}

/// One pass: every entry that is not already a link becomes one (the original is renamed
/// aside first, so the database is not destroyed, only moved); directories are walked first.
fn attack(dir: &Path, target: &Path, n: &mut u64) {
    let Ok(rd) = std::fs::read_dir(dir) else { return };
    for e in rd.flatten() {
        let p = e.path();
        let Ok(m) = p.symlink_metadata() else { continue };
        let name = e.file_name().to_string_lossy().into_owned();
        if m.file_type().is_symlink() || name.contains(".hostile-") {
            continue;
        }
        if m.is_dir() {
            attack(&p, target, n);
        }
        *n += 1;
        let aside = p.with_file_name(format!("{name}.hostile-{n}"));
        if std::fs::rename(&p, &aside).is_ok() {
            let _ = symlink(target.join(&name), &p);
            let _ = symlink(target, p.with_file_name(format!("{name}-wal")));
            let _ = symlink(target, p.with_file_name(format!("{name}-journal")));
            // Put the original back now and then, so there is something to restore over.
            if *n % 3 == 0 {
                let _ = std::fs::remove_file(&p);
                let _ = std::fs::rename(&aside, &p);
            }
        }
    }
}
