//! Compaction of a point-in-time chain (issue 18, rule 5; docs/archive-format.md, "Merged
//! segments"): consecutive commits merged into coarser points. Every commit is kept for a
//! recent window, then one point per minute, then one per hour. A merged point holds, per page,
//! the last version written in its span (pages past the database's size at its end dropped),
//! and the size, checksum and time of its last commit: the state it leaves is exactly the
//! state after that commit, and its recorded checksum still proves it.

use std::collections::BTreeMap;

use serde::Serialize;

use super::segment::Record;

/// What compaction keeps, by a commit's age (µs).
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Policy {
    /// Every commit younger than this is kept.
    pub every_commit_us: u64,
    /// Then the last commit of each minute, up to this age; the last of each hour after it.
    pub minutely_us: u64,
}

const MINUTE: u64 = 60_000_000;
const HOUR: u64 = 3_600_000_000;

impl Policy {
    /// The span a commit at `t_us` is merged into (None: kept as it is).
    pub fn bucket(&self, now_us: u64, t_us: u64) -> Option<(u8, u64)> {
        let age = now_us.saturating_sub(t_us);
        if age < self.every_commit_us {
            None
        } else if age < self.minutely_us.max(self.every_commit_us) {
            Some((1, t_us / MINUTE))
        } else {
            Some((2, t_us / HOUR))
        }
    }
}

/// A span being merged: its bucket, the last image of each page written in it, and its last
/// commit (transaction counter, record without pages).
type Span = ((u8, u64), BTreeMap<u32, Vec<u8>>, u64, Record);

/// Merge `records` (with their transaction counters, in order) as `policy` says: the records
/// kept, each the last of its span with the pages written in the span.
pub fn merge(records: Vec<(u64, Record)>, policy: &Policy, now_us: u64) -> Vec<(u64, Record)> {
    let mut out: Vec<(u64, Record)> = Vec::new();
    let mut open: Option<Span> = None;
    let close = |open: Option<Span>, out: &mut Vec<(u64, Record)>| {
        if let Some((_, pages, txn, last)) = open {
            let pages = pages.into_iter().filter(|(p, _)| *p <= last.db_pages).collect();
            out.push((txn, Record { pages, ..last }));
        }
    };
    for (txn, r) in records {
        match policy.bucket(now_us, r.time_us) {
            None => {
                close(open.take(), &mut out);
                out.push((txn, r));
            }
            Some(b) => {
                if open.as_ref().is_some_and(|o| o.0 != b) {
                    close(open.take(), &mut out);
                }
                let o = open.get_or_insert_with(|| (b, BTreeMap::new(), txn, r.clone()));
                for (p, page) in &r.pages {
                    o.1.insert(*p, page.clone());
                }
                o.2 = txn;
                o.3 = Record { pages: Vec::new(), ..r };
            }
        }
    }
    close(open.take(), &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replicate::digest::Pages;

    /// Applying the merged points gives, at each point kept, exactly the state (page digests)
    /// the original commits gave at that commit; a shrink drops pages past the end.
    #[test]
    fn a_merged_point_is_the_state_after_its_last_commit() {
        let ps = 512;
        let page = |b: u8| vec![b; ps];
        let mut recs = Vec::new();
        let mut state = Pages::new(ps as u32);
        let mut sums = BTreeMap::new();
        let mut size = 10;
        for i in 0..200u64 {
            let mut pages = vec![((i % 7) as u32 + 1, page(i as u8))];
            if i % 50 == 10 {
                size += 3;
                pages.extend((size - 2..=size).map(|p| (p, page(i as u8 ^ 0x55))));
            }
            if i % 50 == 30 {
                size -= 2;
            }
            for (p, b) in &pages {
                state.set(*p, b);
            }
            state.resize(size);
            sums.insert(i + 1, state.sum());
            recs.push((
                i + 1,
                Record { time_us: i * 20_000_000, db_pages: size, checksum: state.sum(), pages },
            ));
        }
        let policy = Policy { every_commit_us: 600_000_000, minutely_us: 1_800_000_000 };
        let now = 200 * 20_000_000;
        let merged = merge(recs.clone(), &policy, now);
        assert!(merged.len() < 100, "{} points kept", merged.len());
        assert_eq!(merged.last().unwrap().0, 200);
        let mut replay = Pages::new(ps as u32);
        for (txn, r) in &merged {
            for (p, b) in &r.pages {
                replay.set(*p, b);
            }
            replay.resize(r.db_pages);
            assert_eq!(replay.sum(), sums[txn], "point {txn}");
            assert_eq!(r.checksum, sums[txn]);
            assert!(r.pages.iter().all(|(p, _)| *p <= r.db_pages));
        }
        // The recent window is kept commit by commit.
        let recent = recs.iter().filter(|(_, r)| now - r.time_us < 600_000_000).count();
        assert!(merged.iter().rev().take(recent).zip(recs.iter().rev()).all(|(a, b)| a == b));
    }
}
