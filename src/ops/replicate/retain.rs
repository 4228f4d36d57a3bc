//! Retention of whole chains (`prune --keep-points-within`): a chain goes only when no point
//! the operator keeps needs it. A point at time T is rebuilt from the newest chain whose base is
//! at or before T (`chain_for`), so the points within the window need the newest chain based at
//! or before its start and every chain based after it; the newest chain of each database (the
//! one a follower continues) is always kept, and so is a chain a follower is writing.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::{read_follower, read_info, ChainInfo, PITR_DIR};
use crate::error::{IoContext, Result};
use crate::fsutil;

/// What retention decided for a chain.
#[derive(Debug, Clone, Serialize)]
pub struct Retained {
    pub chain: String,
    /// "keep" or "remove" (with --dry-run: what would be done).
    pub action: String,
    pub reason: String,
    /// Removed (false with --dry-run, or when a reader held it).
    pub removed: bool,
}

/// Decide for each chain of `repo` (oldest first) whether a point within `keep_us` of `now_us`
/// needs it; remove those none needs unless `dry_run`. A chain being read (a restore, verify or
/// compaction) is kept for the next run.
pub fn retain(repo: &Path, keep_us: u64, now_us: u64, dry_run: bool) -> Result<Vec<Retained>> {
    sweep_removing(repo);
    let dirs = super::chain_dirs(repo)?;
    let infos: Vec<(PathBuf, ChainInfo)> =
        dirs.into_iter().filter_map(|d| read_info(&d).ok().map(|i| (d, i))).collect();
    let start = now_us.saturating_sub(keep_us);
    // The chain serving the window's start, overall and per database.
    let serving = |of: Option<&str>| {
        infos
            .iter()
            .filter(|(_, i)| i.base_time_us <= start && of.is_none_or(|s| i.source == s))
            .max_by_key(|(_, i)| i.base_time_us)
            .map(|(_, i)| i.chain.clone())
    };
    let newest_of = |s: &str| {
        infos
            .iter()
            .filter(|(_, i)| i.source == s)
            .max_by_key(|(_, i)| i.base_time_us)
            .map(|(_, i)| i.chain.clone())
    };
    let mut out = Vec::new();
    for (dir, info) in &infos {
        let following = read_follower(dir)
            .ok()
            .flatten()
            .is_some_and(|f| !f.stopped && now_us.saturating_sub(f.heartbeat_us) < 60_000_000);
        let reason = if info.base_time_us > start {
            Some("its points are within the window kept".to_string())
        } else if serving(None).as_deref() == Some(&info.chain)
            || serving(Some(&info.source)).as_deref() == Some(&info.chain)
        {
            Some("the oldest points kept are rebuilt from it".into())
        } else if newest_of(&info.source).as_deref() == Some(&info.chain) {
            Some("the newest chain of its database".into())
        } else if following {
            Some("a follower is writing it".into())
        } else {
            None
        };
        let mut r = Retained {
            chain: info.chain.clone(),
            action: if reason.is_some() { "keep" } else { "remove" }.into(),
            reason: reason.unwrap_or_else(|| {
                format!("every point is older than the window kept (from {})", super::format_us(start))
            }),
            removed: false,
        };
        if r.action == "remove" && !dry_run {
            match remove_chain(repo, dir)? {
                true => r.removed = true,
                false => {
                    r.action = "keep".into();
                    r.reason = "a restore or verify is reading it: left for the next run".into();
                }
            }
        }
        out.push(r);
    }
    Ok(out)
}

/// Remove a chain: renamed out of sight first (`pitr/.removing-<chain>`, which no reader lists),
/// under the exclusive lock of its readers, then deleted. False when a reader holds it.
fn remove_chain(repo: &Path, dir: &Path) -> Result<bool> {
    let lock = super::compact::open_lock_file(&dir.join(super::compact::READERS_LOCK))?;
    if rustix::fs::flock(&lock, rustix::fs::FlockOperation::NonBlockingLockExclusive).is_err() {
        return Ok(false);
    }
    let root = repo.join(PITR_DIR);
    let name = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let gone = root.join(format!(".removing-{name}"));
    crate::fault::point("retain.remove")?;
    std::fs::rename(dir, &gone).ctx("cannot rename", dir)?;
    fsutil::fsync_dir(&root)?;
    crate::fault::point("retain.renamed")?;
    drop(lock);
    std::fs::remove_dir_all(&gone).ctx("cannot remove", &gone)?;
    Ok(true)
}

/// What a stopped removal left.
fn sweep_removing(repo: &Path) {
    let root = repo.join(PITR_DIR);
    let Ok(rd) = std::fs::read_dir(&root) else { return };
    for e in rd.flatten() {
        if e.file_name().to_string_lossy().starts_with(".removing-") {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}
