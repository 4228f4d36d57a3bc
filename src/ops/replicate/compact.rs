//! Compaction of a chain's files (docs/archive-format.md, "Merged segments"): runs of old
//! segments (no gap, not the chain's last) replaced by one merged segment each
//! (`crate::replicate::compact::merge`).
//!
//! Crash-safe: the merged segment is written complete (`.partial`, fsync) and renamed over the
//! run's first segment, so a reader finds either that segment or the merged one at that name,
//! never neither; the run's other segments, replaced by it, are skipped by every reader from
//! then on and removed after. Never under a reader: rebuilding a point and verifying a chain
//! hold a shared lock on the chain's `readers.lock` ([`read_lease`]); compaction takes it
//! exclusively, without waiting (a chain being read is left for the next run).

use std::fs::File;
use std::path::Path;

use serde::Serialize;

use super::{segment_files, sweep_partials, verify_chain};
use crate::error::{Error, IoContext, Result};
use crate::fsutil;
use crate::replicate::compact::{merge, Policy};
use crate::replicate::segment::{self, Decoded, Header};

pub const READERS_LOCK: &str = "readers.lock";
/// A run of segments merged at once holds at most this many bytes.
const MAX_RUN_BYTES: u64 = 64 << 20;

/// The chain's `readers.lock` (0600, created when missing, never through a link).
pub(super) fn open_lock_file(path: &Path) -> Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
        .ctx("cannot open", path)
}

/// A shared lock on the chain's `readers.lock` for as long as it is held (None when the chain's
/// directory cannot take the file: then a reader goes on without it).
pub fn read_lease(dir: &Path) -> Option<File> {
    let f = open_lock_file(&dir.join(READERS_LOCK)).ok()?;
    rustix::fs::flock(&f, rustix::fs::FlockOperation::LockShared).ok()?;
    Some(f)
}

/// What compaction did to a chain (or, `dry_run`, would do).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Compacted {
    pub chain: String,
    pub segments_before: u64,
    pub segments_after: u64,
    pub points_before: u64,
    pub points_after: u64,
    pub bytes_before: u64,
    pub bytes_after: u64,
    /// Why nothing was done (a restore or verify reading it, a broken chain).
    pub skipped: Option<String>,
}

struct Seg {
    seq: u64,
    path: std::path::PathBuf,
    len: u64,
    d: Decoded,
}

/// Compact the chain in `dir` as `policy` says, as of `now_us`.
pub fn compact(dir: &Path, policy: &Policy, now_us: u64, dry_run: bool) -> Result<Compacted> {
    let v = verify_chain(dir, None)?;
    let mut out = Compacted { chain: v.chain.clone(), ..Default::default() };
    if !v.ok {
        out.skipped = Some(format!("the chain is broken: {}", v.problem.unwrap_or_default()));
        return Ok(out);
    }
    let lock_path = dir.join(READERS_LOCK);
    let lock = open_lock_file(&lock_path)?;
    if rustix::fs::flock(&lock, rustix::fs::FlockOperation::NonBlockingLockExclusive).is_err() {
        out.skipped = Some("a restore or verify is reading the chain: left for the next run".into());
        return Ok(out);
    }
    if !dry_run {
        sweep_partials(dir);
    }
    // The segments in order; those a merged one replaced (left by a compaction that was
    // stopped) go now.
    let mut segs: Vec<Seg> = Vec::new();
    let mut want = 1;
    for (seq, path) in segment_files(dir)? {
        if seq < want {
            if !dry_run {
                std::fs::remove_file(&path).ctx("cannot remove", &path)?;
            }
            continue;
        }
        let bytes = std::fs::read(&path).ctx("cannot read", &path)?;
        let d =
            segment::decode(&bytes).map_err(|e| Error::verification(format!("{}: {e}", path.display())))?;
        want = d.header.seq_last.unwrap_or(seq) + 1;
        segs.push(Seg { seq, path, len: bytes.len() as u64, d });
    }
    out.segments_before = segs.len() as u64;
    out.points_before = segs.iter().map(|s| s.d.header.commits).sum();
    out.bytes_before = segs.iter().map(|s| s.len).sum();
    out.segments_after = out.segments_before;
    out.points_after = out.points_before;
    out.bytes_after = out.bytes_before;
    // Runs: consecutive segments with no gap, all their commits past the every-commit window,
    // never the last segment (the follower's tip).
    let eligible =
        |s: &Seg| s.d.header.gap.is_none() && policy.bucket(now_us, s.d.header.last_time_us).is_some();
    let last = segs.len().saturating_sub(1);
    let mut i = 0;
    while i < last {
        if !eligible(&segs[i]) {
            i += 1;
            continue;
        }
        let mut j = i;
        let mut bytes = segs[i].len;
        while j + 1 < last && eligible(&segs[j + 1]) && bytes + segs[j + 1].len <= MAX_RUN_BYTES {
            j += 1;
            bytes += segs[j].len;
        }
        let run = &segs[i..=j];
        let records: Vec<(u64, segment::Record)> = run
            .iter()
            .flat_map(|s| {
                let h = &s.d.header;
                let txns: Vec<u64> = match &h.txns {
                    Some(t) => t.clone(),
                    None => (h.txn_first..=h.txn_last).collect(),
                };
                txns.into_iter().zip(s.d.records.iter().cloned())
            })
            .collect();
        let before = records.len();
        let kept = merge(records, policy, now_us);
        if run.len() > 1 || kept.len() < before {
            let written = write_merged(run, &kept, dry_run)?;
            out.segments_after -= run.len() as u64 - 1;
            out.points_after -= (before - kept.len()) as u64;
            out.bytes_after = out.bytes_after + written - bytes;
        }
        i = j + 1;
    }
    drop(lock);
    Ok(out)
}

/// Write the merged segment of `run` over its first segment's name, then remove the others.
/// Returns its size.
fn write_merged(run: &[Seg], kept: &[(u64, segment::Record)], dry_run: bool) -> Result<u64> {
    let (first, last) = (&run[0].d.header, &run[run.len() - 1]);
    let lh = &last.d.header;
    let h = Header {
        chain: first.chain.clone(),
        seq: first.seq,
        prev: first.prev.clone(),
        kind: "merged".into(),
        txn_first: first.txn_first,
        txn_last: lh.txn_last,
        commits: kept.len() as u64,
        page_size: first.page_size,
        checksum_before: first.checksum_before.clone(),
        checksum_after: lh.checksum_after.clone(),
        first_time_us: kept.first().map(|k| k.1.time_us).unwrap_or(first.first_time_us),
        last_time_us: kept.last().map(|k| k.1.time_us).unwrap_or(lh.last_time_us),
        wal: lh.wal,
        gap: None,
        compression: "none".into(),
        encryption: "none".into(),
        seq_last: Some(lh.seq_last.unwrap_or(last.seq)),
        end_hash: Some(lh.end_hash.clone().unwrap_or_else(|| last.d.hash.clone())),
        txns: Some(kept.iter().map(|k| k.0).collect()),
    };
    let records: Vec<segment::Record> = kept.iter().map(|k| k.1.clone()).collect();
    let bytes = segment::encode(&h, &records);
    if dry_run {
        return Ok(bytes.len() as u64);
    }
    crate::fault::point("compact.merge")?;
    fsutil::write_atomic(&run[0].path, &bytes, 0o600)?;
    crate::fault::point("compact.replaced")?;
    for (k, s) in run[1..].iter().enumerate() {
        std::fs::remove_file(&s.path).ctx("cannot remove", &s.path)?;
        if k == 0 {
            crate::fault::point("compact.removing")?;
        }
    }
    for p in [&run[0].path, &last.path].iter().filter_map(|p| p.parent()) {
        fsutil::fsync_dir(p)?;
    }
    Ok(bytes.len() as u64)
}

/// Compaction in the background of a follower: every `every`, in a thread of its own (shipping
/// never waits for it), one run at a time. A follower stopped (or killed) in the middle leaves a
/// valid chain, as any stopped compaction.
pub(super) struct Background {
    every: std::time::Duration,
    policy: Policy,
    last: std::time::Instant,
    running: Option<std::thread::JoinHandle<Result<Compacted>>>,
}

impl Background {
    pub(super) fn new(every: std::time::Duration, policy: Policy) -> Self {
        Background { every, policy, last: std::time::Instant::now(), running: None }
    }

    /// Between reads: say how the last run went when it is done; start the next when due.
    pub(super) fn tick(&mut self, dir: &Path, n: &dyn crate::progress::Notice) {
        if self.running.as_ref().is_some_and(|h| h.is_finished()) {
            match self.running.take().map(|h| h.join()) {
                Some(Ok(Ok(c))) if c.skipped.is_none() && c.segments_after < c.segments_before => {
                    n.detail(&format!(
                        "compacted chain {}: {} segment(s) with {} point(s) into {} with {} point(s)",
                        c.chain, c.segments_before, c.points_before, c.segments_after, c.points_after
                    ))
                }
                Some(Ok(Ok(c))) => {
                    if let Some(why) = c.skipped {
                        n.detail(&format!("chain {} not compacted: {why}", c.chain));
                    }
                }
                Some(Ok(Err(e))) => n.warn(&format!(
                    "warning: compaction failed (the chain is unchanged or valid): {}",
                    e.chain()
                )),
                Some(Err(_)) | None => {
                    n.warn("warning: compaction stopped unexpectedly (the chain stays valid)")
                }
            }
        }
        if self.running.is_none() && self.last.elapsed() >= self.every {
            self.last = std::time::Instant::now();
            let (dir, policy) = (dir.to_path_buf(), self.policy);
            self.running = Some(std::thread::spawn(move || compact(&dir, &policy, super::now_us(), false)));
        }
    }
}
