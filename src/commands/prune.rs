//! `kfadmin prune [DIR] --keep-*`: grandfather-father-son retention, as restic's `forget`.
//!
//! Plan first, then act: every archive is checked (sidecar, or a quick verify when it has
//! none) and every decision made before the first file is removed, so an error on the way
//! leaves everything in place.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;

use serde::Serialize;

use super::render::{plural, table, when};
use super::{future_warning, human_bytes, in_future, now_unix, ArchiveKind, Ctx, Outcome};
use crate::archive::catalog::Entry;
use crate::archive::reader::{self, Options};
use crate::archive::Mode;
use crate::cli::PruneArgs;
use crate::error::{check_interrupt, Error, Kind, Result};
use crate::fsutil;
use crate::ops::fetch::fetch;
use crate::progress::Unit;
use crate::store::{Location, Stamp, Store};

/// Why an archive that fails verification stays.
pub const BAD: &str = "fails verification: not counted, not removed; remove it by hand";
/// Why the newest archive of a group that verifies stays, whatever the rules say.
pub const NEWEST: &str = "newest that verifies";
/// Why an archive goes.
pub const NO_RULE: &str = "no rule keeps it";
/// Why an archive dated in the future stays, whatever the rules say.
pub const FUTURE: &str = "dated in the future: not counted, not removed; check the clocks";
/// Why a pre-restore safety copy stays (`--keep-pre-restore`).
pub const PRE_RESTORE: &str = "pre-restore";
/// Why a pre-restore safety copy stays (`--keep-pre-restore-within`).
pub const PRE_RESTORE_YOUNG: &str = "pre-restore, younger than the minimum age";

/// How many archives each rule keeps; 0 turns a rule off. `last` to `monthly` apply to
/// backups; `pre_restore` keeps the newest pre-restore safety copies, which are never backups.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Policy {
    pub last: u32,
    pub daily: u32,
    pub weekly: u32,
    pub monthly: u32,
    pub pre_restore: u32,
    /// Every pre-restore safety copy younger than this (seconds) stays too.
    pub pre_restore_min_age_s: u64,
}

impl Policy {
    /// No backup rule (`pre_restore` alone removes no backup, so it does not count).
    pub fn is_empty(&self) -> bool {
        self.counts().iter().all(|&n| n == 0)
    }
    fn counts(&self) -> [u32; 4] {
        [self.last, self.daily, self.weekly, self.monthly]
    }
}

#[derive(Debug, Clone, Copy)]
enum Rule {
    Last,
    Daily,
    Weekly,
    Monthly,
}

/// In the order of [`Policy::counts`].
const RULES: [Rule; 4] = [Rule::Last, Rule::Daily, Rule::Weekly, Rule::Monthly];

impl Rule {
    fn name(self) -> &'static str {
        match self {
            Rule::Last => "last",
            Rule::Daily => "daily",
            Rule::Weekly => "weekly",
            Rule::Monthly => "monthly",
        }
    }

    /// The bucket an archive falls in (UTC); `nr`, its place in the group, makes every
    /// archive its own bucket for `last`.
    fn bucket(self, unix: u64, nr: usize) -> String {
        let days = (unix / 86_400) as i64;
        match self {
            Rule::Last => nr.to_string(),
            Rule::Daily => {
                let (y, m, d) = civil_from_days(days);
                format!("{y:04}-{m:02}-{d:02}")
            }
            Rule::Weekly => {
                let (y, w) = iso_week(days);
                format!("{y:04}-W{w:02}")
            }
            Rule::Monthly => {
                let (y, m, _) = civil_from_days(days);
                format!("{y:04}-{m:02}")
            }
        }
    }
}

/// What happens to one archive, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub keep: bool,
    pub reasons: Vec<&'static str>,
}

/// How an archive stands before any rule applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    Good,
    /// Fails its sidecar check or a quick verify: kept, not counted.
    Bad,
    /// Dated in the future (see [`super::in_future`]): kept, not counted.
    Future,
}

impl Standing {
    /// The decision for an archive that no rule may count, if this is one.
    fn exempt(self) -> Option<Decision> {
        match self {
            Standing::Good => None,
            Standing::Bad => Some(Decision { keep: true, reasons: vec![BAD] }),
            Standing::Future => Some(Decision { keep: true, reasons: vec![FUTURE] }),
        }
    }
}

/// Apply `policy` to one group of backups, given newest first as (time from the file name,
/// standing).
///
/// restic's `forget`: for each archive in turn, each rule with a count left keeps it when its
/// bucket differs from the bucket of the last archive that rule kept, and keeping uses up one
/// of the rule's count. Buckets exist only for archives that exist, so a day without a backup
/// does not use up a daily slot. On top of that: an archive that does not verify, or is dated
/// in the future, is neither counted nor removed, and the newest one that verifies (and is
/// not in the future) is always kept.
///
/// (restic ≥ 0.16 also keeps the group's oldest snapshot while a rule has counts left; this
/// follows the plain rule above, as rustic does.)
pub fn decide(group: &[(u64, Standing)], policy: &Policy) -> Vec<Decision> {
    let mut left = policy.counts();
    let mut last: [Option<String>; 4] = Default::default();
    let mut newest_good = true;
    group
        .iter()
        .enumerate()
        .map(|(nr, &(unix, standing))| {
            if let Some(d) = standing.exempt() {
                return d;
            }
            let mut reasons = Vec::new();
            for (i, rule) in RULES.iter().enumerate() {
                if left[i] == 0 {
                    continue;
                }
                let bucket = rule.bucket(unix, nr);
                if last[i].as_deref() != Some(bucket.as_str()) {
                    last[i] = Some(bucket);
                    left[i] -= 1;
                    reasons.push(rule.name());
                }
            }
            if newest_good {
                newest_good = false;
                reasons.push(NEWEST);
            }
            if reasons.is_empty() {
                return Decision { keep: false, reasons: vec![NO_RULE] };
            }
            Decision { keep: true, reasons }
        })
        .collect()
}

/// Pre-restore safety copies, newest first: the newest `keep` that verify stay, as do those
/// that no rule may count; the others go.
pub fn decide_safety_copies(group: &[(u64, Standing)], keep: u32, min_age_s: u64, now: u64) -> Vec<Decision> {
    let mut left = keep;
    group
        .iter()
        .map(|&(created, standing)| match standing.exempt() {
            Some(d) => d,
            None if left > 0 => {
                left -= 1;
                Decision { keep: true, reasons: vec![PRE_RESTORE] }
            }
            None if now.saturating_sub(created) < min_age_s => {
                Decision { keep: true, reasons: vec![PRE_RESTORE_YOUNG] }
            }
            None => Decision { keep: false, reasons: vec![NO_RULE] },
        })
        .collect()
}

/// (year, month, day) of a day counted from 1970-01-01 (Howard Hinnant's civil_from_days).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// Day number (from 1970-01-01) of a date (Howard Hinnant's days_from_civil).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// ISO 8601 (year, week) of a day (`date +%G-W%V`): the week belongs to the year of its Thursday.
fn iso_week(days: i64) -> (i64, u32) {
    let weekday = (days + 3).rem_euclid(7); // 0 = Monday; 1970-01-01 was a Thursday
    let thursday = days - weekday + 3;
    let (year, _, _) = civil_from_days(thursday);
    (year, ((thursday - days_from_civil(year, 1, 1)) / 7 + 1) as u32)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Keep,
    Remove,
}

#[derive(Debug, Serialize)]
pub struct Pruned {
    #[serde(serialize_with = "super::lossy::path")]
    pub path: PathBuf,
    pub file_name: String,
    pub name: String,
    pub created: String,
    pub mode: Mode,
    /// `backup`, or `safety-copy` (pre-restore: its own group, kept by `--keep-pre-restore`).
    pub kind: ArchiveKind,
    pub bytes: u64,
    pub action: Action,
    pub reasons: Vec<String>,
    /// Its sidecar matches, or it has none and passes a quick verify.
    pub good: bool,
    /// What failed, when it does not verify.
    pub problem: Option<String>,
}

/// The `--json` report of `kfadmin prune`.
#[derive(Debug, Serialize)]
pub struct PruneReport {
    pub ok: bool,
    pub dry_run: bool,
    #[serde(serialize_with = "super::lossy::path")]
    pub dir: PathBuf,
    pub policy: Policy,
    pub archives: Vec<Pruned>,
    /// Archives actually removed (0 with --dry-run).
    pub removed: usize,
    pub freed_bytes: u64,
    /// What the plan removes (what --dry-run would remove).
    pub planned_removals: usize,
    pub planned_bytes: u64,
    /// What is there that is not kfadmin's (never counted nor removed): how many, the first names.
    pub skipped: crate::store::Skipped,
    /// Point-in-time chains compacted (or, with --dry-run, what compaction would do); `[]`
    /// for an `s3://` location.
    pub chains: Vec<crate::ops::replicate::Compacted>,
    /// With --keep-points-within: what became of each chain (kept, and why; or removed);
    /// `[]` without it, and for an `s3://` location.
    pub chain_retention: Vec<crate::ops::replicate::Retained>,
}

struct Checked {
    good: bool,
    problem: Option<String>,
    /// The archive as it was checked: one replaced since is left alone.
    stamp: Option<Stamp>,
}

pub fn run(args: PruneArgs, ctx: &Ctx) -> Result<Outcome> {
    let policy = Policy {
        last: args.keep_last.unwrap_or(0),
        daily: args.keep_daily.unwrap_or(0),
        weekly: args.keep_weekly.unwrap_or(0),
        monthly: args.keep_monthly.unwrap_or(0),
        pre_restore: args.keep_pre_restore,
        pre_restore_min_age_s: args.keep_pre_restore_within.as_secs(),
    };
    if policy.is_empty() {
        return Err(Error::usage("no retention rule given: prune removes nothing without one").hint(
            "pass at least one --keep-* rule, e.g. --keep-daily 7 --keep-weekly 4 --keep-monthly 12 \
             (add --dry-run to see what it would remove)",
        ));
    }
    let location = Location::from_path(&args.repo.location(args.dir.as_ref())?)?;
    // A dry run removes nothing: like list and status it reads without waiting for a backup
    // (archives get their final names only once complete).
    let _lock = match args.dry_run {
        true => None,
        false => Some(ctx.lock("kfadmin prune", vec![location.lock_key("backup directory")])?),
    };
    let store = Store::open(&location)?;
    let (entries, skipped) = store.scan_all()?;
    let checked = check_all(&store, &entries, &args, ctx)?;
    let (archives, stamps) = plan(&entries, &checked, &policy, now_unix());
    for a in &archives {
        if !a.good {
            ctx.warn(&format!(
                "{}: {}; prune keeps it and does not count it (check it with `kfadmin verify`, then remove it by hand)",
                a.path.display(),
                a.problem.as_deref().unwrap_or("fails verification")
            ));
        } else if a.reasons.iter().any(|r| r == FUTURE) {
            ctx.warn(&future_warning(&a.path, &a.created, "prune keeps it and does not count it"));
        }
    }
    let planned: Vec<usize> = (0..archives.len()).filter(|&i| archives[i].action == Action::Remove).collect();
    let mut report = PruneReport {
        ok: true,
        dry_run: args.dry_run,
        dir: store.shown(),
        policy,
        planned_removals: planned.len(),
        planned_bytes: planned.iter().map(|&i| archives[i].bytes).sum(),
        archives,
        removed: 0,
        freed_bytes: 0,
        skipped,
        chains: Vec::new(),
        chain_retention: Vec::new(),
    };
    if !args.dry_run && !planned.is_empty() {
        let result = remove_planned(&store, &mut report, &planned, &stamps, ctx);
        // Whatever happened, make the removals that did happen durable.
        let synced = match &store {
            Store::Local(dir) => fsutil::fsync_dir(dir),
            Store::S3(_) => Ok(()),
        };
        result?;
        synced?;
    }
    if let Store::Local(dir) = &store {
        let keep = crate::replicate::compact::Policy {
            every_commit_us: args.keep_commits_within.as_micros() as u64,
            minutely_us: args.keep_minutely_within.as_micros() as u64,
        };
        let now = crate::ops::replicate::now_us();
        if let Some(within) = args.keep_points_within {
            report.chain_retention =
                crate::ops::replicate::retain(dir, within.as_micros() as u64, now, args.dry_run)?;
        }
        for chain in crate::ops::replicate::chain_dirs(dir)? {
            let c = crate::ops::replicate::compact(&chain, &keep, now, args.dry_run)?;
            if let Some(why) = &c.skipped {
                ctx.warn(&format!("chain {}: not compacted: {why}", c.chain));
            }
            report.chains.push(c);
        }
    }
    Ok(Outcome::new(0, human(&report), &report))
}

/// Every decision, before anything is removed: groups by name, and within a name the backups
/// and the pre-restore safety copies apart (in that order), each newest first (scan's order).
/// Returns the archives in that order, with the stamps to check before removing each.
fn plan(
    entries: &[Entry],
    checked: &[Checked],
    policy: &Policy,
    now: u64,
) -> (Vec<Pruned>, Vec<(Option<Stamp>, Entry)>) {
    let mut groups: BTreeMap<(&str, ArchiveKind), Vec<usize>> = BTreeMap::new();
    for (i, e) in entries.iter().enumerate() {
        groups.entry((e.name.as_str(), ArchiveKind::of(e.mode))).or_default().push(i);
    }
    let standing = |i: usize| match (checked[i].good, in_future(entries[i].created_unix, now)) {
        (false, _) => Standing::Bad,
        (true, true) => Standing::Future,
        (true, false) => Standing::Good,
    };
    let mut archives = Vec::with_capacity(entries.len());
    let mut stamps = Vec::with_capacity(entries.len());
    for ((_, kind), members) in &groups {
        let input: Vec<(u64, Standing)> =
            members.iter().map(|&i| (entries[i].created_unix, standing(i))).collect();
        let decisions = match kind {
            ArchiveKind::Backup => decide(&input, policy),
            ArchiveKind::SafetyCopy => {
                decide_safety_copies(&input, policy.pre_restore, policy.pre_restore_min_age_s, now)
            }
        };
        for (&i, d) in members.iter().zip(decisions) {
            let e = &entries[i];
            archives.push(Pruned {
                path: e.path.clone(),
                file_name: e.file_name.clone(),
                name: e.name.clone(),
                created: e.created.clone(),
                mode: e.mode,
                kind: *kind,
                bytes: e.bytes,
                action: if d.keep { Action::Keep } else { Action::Remove },
                reasons: d.reasons.iter().map(|r| r.to_string()).collect(),
                good: checked[i].good,
                problem: checked[i].problem.clone(),
            });
            stamps.push((checked[i].stamp.clone(), e.clone()));
        }
    }
    (archives, stamps)
}

/// Check every archive: its sidecar when it has one (a full read), else a quick verify (a
/// remote archive is downloaded for it).
fn check_all(store: &Store, entries: &[Entry], args: &PruneArgs, ctx: &Ctx) -> Result<Vec<Checked>> {
    let total = entries.iter().filter(|e| e.sidecar.is_some()).map(|e| e.bytes).sum();
    let stage = ctx.progress.stage("verifying", total, Unit::Bytes);
    let mut out = Vec::with_capacity(entries.len());
    // Remote: each name's newest archive that passes is read in full; those older are checked
    // by their record, sidecar and first bytes (not a download of the whole repository).
    let mut read_in_full = std::collections::BTreeSet::new();
    for e in entries {
        check_interrupt()?;
        let stamp = store.stamp(e)?;
        let group = (e.name.clone(), ArchiveKind::of(e.mode));
        if read_in_full.contains(&group) {
            if let Some(verdict) = store.check_by_record(e)? {
                let (good, problem) = match verdict {
                    Ok(()) => (true, None),
                    Err(p) => (false, Some(p)),
                };
                out.push(Checked { good, problem, stamp });
                continue;
            }
        }
        let remote = store.is_remote().then_some(stage.as_ref());
        let (good, problem) = match store.sidecar_matches(e, remote)? {
            // A matching sidecar proves nothing about a file anyone with write access made:
            // only what starts as a kfadmin archive of that name counts.
            Some(true) => match store.structure_problem(e)? {
                None => (true, None),
                Some(p) => (false, Some(p)),
            },
            Some(false) => (false, Some("does not match its .sha256 sidecar".to_string())),
            None => quick_verify(store, e, args, ctx)?,
        };
        if e.sidecar.is_some() && !store.is_remote() {
            stage.inc(e.bytes);
        }
        if good && store.is_remote() {
            read_in_full.insert(group);
        }
        out.push(Checked { good, problem, stamp });
    }
    stage.finish();
    Ok(out)
}

/// A quick verify of an archive that has no sidecar: whether it passes, and why not.
fn quick_verify(store: &Store, e: &Entry, args: &PruneArgs, ctx: &Ctx) -> Result<(bool, Option<String>)> {
    let opts = Options { sqlite: false, extract_to: None, expected_sha256: None, keys: None };
    let v = match store {
        Store::Local(_) => reader::verify(&e.path, &opts, ctx.progress.as_ref())?,
        Store::S3(r) => {
            let got = fetch(r, &e.file_name, args.tmp_dir.as_deref(), ctx.progress.as_ref())?;
            reader::verify(&got.path(), &opts, ctx.progress.as_ref())?
        }
    };
    let failed: Vec<&str> = v.failed().map(|c| c.name).collect();
    let problem = (!v.ok).then(|| {
        if failed.is_empty() {
            "has no .sha256 sidecar and fails a quick verify".to_string()
        } else {
            format!("has no .sha256 sidecar and fails a quick verify ({})", failed.join(", "))
        }
    });
    Ok((v.ok, problem))
}

/// Remove the planned archives, each with its sidecar. An archive that changed since it was
/// checked is left alone (and reported as kept).
fn remove_planned(
    store: &Store,
    report: &mut PruneReport,
    planned: &[usize],
    stamps: &[(Option<Stamp>, Entry)],
    ctx: &Ctx,
) -> Result<()> {
    let n = planned.len();
    for &i in planned {
        if crate::error::interrupt::requested() {
            return Err(Error::new(
                Kind::Interrupted,
                format!(
                    "interrupted after removing {} of {n} archives; the others are untouched",
                    report.removed
                ),
            ));
        }
        let (stamp, entry) = &stamps[i];
        let a = &mut report.archives[i];
        match store.stamp(entry)? {
            Some(now) if Some(&now) == stamp.as_ref() => {}
            Some(_) => {
                ctx.warn(&format!("{} changed since it was checked; left alone", a.path.display()));
                a.action = Action::Keep;
                a.reasons = vec!["changed since it was checked: left alone".into()];
                continue;
            }
            None => {
                // Already gone (another prune?): nothing to do, nothing freed.
                ctx.warn(&format!("{} disappeared before it could be removed", a.path.display()));
                continue;
            }
        }
        let removed = report.removed;
        let warning = store.remove(entry, || crate::fault::point("prune.removed-one")).map_err(|e| {
            Error { message: format!("removed {removed} of {n} archives, then {}", e.message), ..e }
        })?;
        if let Some(w) = warning {
            ctx.warn(&w);
        }
        report.removed += 1;
        report.freed_bytes += a.bytes;
        if ctx.verbose > 0 {
            ctx.note(&format!("removed {}", a.path.display()));
        }
    }
    Ok(())
}

fn human(r: &PruneReport) -> String {
    let mut out = human_archives(r);
    for c in &r.chain_retention {
        let what = match (c.action.as_str(), c.removed) {
            ("remove", true) => "removed",
            ("remove", false) => "would remove",
            _ => "keep",
        };
        out.push_str(&format!("\nchain {}: {what} ({})", c.chain, c.reason));
    }
    for c in r.chains.iter().filter(|c| c.skipped.is_none()) {
        let verb = if r.dry_run { "would compact" } else { "compacted" };
        out.push_str(&format!(
            "\nchain {}: {verb} {} segment(s) with {} point(s), {} byte(s) into {} segment(s) with {} point(s), {} byte(s)",
            c.chain, c.segments_before, c.points_before, c.bytes_before, c.segments_after, c.points_after, c.bytes_after
        ));
    }
    out
}

fn human_archives(r: &PruneReport) -> String {
    let skipped = super::render::skipped_line(&r.dir, &r.skipped);
    if r.archives.is_empty() {
        return format!("No kfadmin archives in {}; nothing to prune\n{skipped}", r.dir.display());
    }
    let mut s = String::new();
    let mut start = 0;
    while start < r.archives.len() {
        let (name, kind) = (&r.archives[start].name, r.archives[start].kind);
        let end =
            start + r.archives[start..].iter().take_while(|a| &a.name == name && a.kind == kind).count();
        let group = &r.archives[start..end];
        let removing = group.iter().filter(|a| a.action == Action::Remove).count();
        let what = match kind {
            ArchiveKind::Backup => String::new(),
            ArchiveKind::SafetyCopy => {
                format!(" (pre-restore safety copies, keep the newest {})", r.policy.pre_restore)
            }
        };
        let _ = writeln!(
            s,
            "{name}{what}: {} archive{}, keep {}, remove {}",
            group.len(),
            plural(group.len()),
            group.len() - removing,
            removing
        );
        let rows: Vec<Vec<String>> = group
            .iter()
            .map(|a| {
                let mut why = a.reasons.join(", ");
                if let Some(p) = &a.problem {
                    let _ = write!(why, " ({p})");
                }
                vec![
                    match a.action {
                        Action::Keep => "KEEP".to_string(),
                        Action::Remove => "REMOVE".to_string(),
                    },
                    when(&a.created),
                    a.mode.as_str().to_string(),
                    human_bytes(a.bytes),
                    a.file_name.clone(),
                    why,
                ]
            })
            .collect();
        let t = table(&["ACTION", "TIME (UTC)", "MODE", "SIZE", "FILE", "WHY"], &rows, &[3]);
        for line in t.lines() {
            let _ = writeln!(s, "  {line}");
        }
        s.push('\n');
        start = end;
    }
    if r.dry_run {
        let _ = writeln!(
            s,
            "Dry run: would remove {} archive{}, freeing {}; nothing was removed",
            r.planned_removals,
            plural(r.planned_removals),
            human_bytes(r.planned_bytes)
        );
    } else {
        let _ = writeln!(
            s,
            "Removed {} archive{}, freed {}",
            r.removed,
            plural(r.removed),
            human_bytes(r.freed_bytes)
        );
    }
    s.push_str(&skipped);
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(y: i64, m: u32, d: u32) -> i64 {
        days_from_civil(y, m, d)
    }

    #[test]
    fn calendar() {
        assert_eq!(day(1970, 1, 1), 0);
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(day(2024, 2, 29)), (2024, 2, 29));
        assert_eq!(civil_from_days(day(2026, 11, 26)), (2026, 11, 26));
        for d in -1000..40_000 {
            let (y, m, dd) = civil_from_days(d);
            assert_eq!(days_from_civil(y, m, dd), d);
        }
        // `date -u -d DAY +%G-W%V`
        for (y, m, d, want) in [
            (2020, 12, 31, (2020, 53)),
            (2021, 1, 3, (2020, 53)),
            (2021, 1, 4, (2021, 1)),
            (2024, 12, 30, (2025, 1)),
            (2026, 10, 26, (2026, 44)),
            (2026, 11, 1, (2026, 44)),
            (2026, 12, 28, (2026, 53)),
            (2027, 1, 3, (2026, 53)),
            (2027, 1, 4, (2027, 1)),
        ] {
            assert_eq!(iso_week(day(y, m, d)), want, "{y}-{m}-{d}");
        }
    }

    fn at(y: i64, m: u32, d: u32, h: u64) -> u64 {
        day(y, m, d) as u64 * 86_400 + h * 3600
    }

    #[test]
    fn daily_skips_gaps_and_takes_the_newest_of_a_day() {
        let group = [
            (at(2026, 11, 5, 15), Standing::Good),
            (at(2026, 11, 5, 3), Standing::Good),
            (at(2026, 11, 3, 3), Standing::Good),
            (at(2026, 11, 1, 3), Standing::Good),
            (at(2026, 10, 31, 3), Standing::Good),
        ];
        let p = Policy { daily: 3, ..Policy::default() };
        let keep: Vec<bool> = decide(&group, &p).iter().map(|d| d.keep).collect();
        assert_eq!(keep, [true, false, true, true, false]);
    }

    #[test]
    fn bad_archives_are_kept_and_not_counted() {
        let group = [
            (at(2026, 11, 5, 3), Standing::Bad),
            (at(2026, 11, 4, 3), Standing::Good),
            (at(2026, 11, 3, 3), Standing::Good),
        ];
        let d = decide(&group, &Policy { last: 1, ..Policy::default() });
        assert_eq!(d[0], Decision { keep: true, reasons: vec![BAD] });
        assert_eq!(d[1], Decision { keep: true, reasons: vec!["last", NEWEST] });
        assert_eq!(d[2], Decision { keep: false, reasons: vec![NO_RULE] });
    }

    #[test]
    fn a_future_archive_is_kept_but_never_the_newest_nor_counted() {
        let group = [
            (at(2099, 1, 1, 3), Standing::Future),
            (at(2026, 11, 5, 3), Standing::Good),
            (at(2026, 11, 4, 3), Standing::Good),
        ];
        let d = decide(&group, &Policy { last: 1, daily: 1, ..Policy::default() });
        assert_eq!(d[0], Decision { keep: true, reasons: vec![FUTURE] });
        assert_eq!(d[1], Decision { keep: true, reasons: vec!["last", "daily", NEWEST] });
        assert_eq!(d[2], Decision { keep: false, reasons: vec![NO_RULE] });
    }

    #[test]
    fn safety_copies_keep_their_newest_n_and_no_newest_guard() {
        let group = [
            (at(2026, 11, 5, 10), Standing::Good),
            (at(2026, 11, 4, 10), Standing::Bad),
            (at(2026, 11, 3, 10), Standing::Good),
            (at(2026, 11, 2, 10), Standing::Good),
        ];
        let keep: Vec<Vec<&str>> =
            decide_safety_copies(&group, 2, 0, 0).into_iter().map(|d| d.reasons).collect();
        assert_eq!(keep, [vec![PRE_RESTORE], vec![BAD], vec![PRE_RESTORE], vec![NO_RULE]]);
        assert!(decide_safety_copies(&group, 0, 0, 0).iter().all(|d| !d.keep || d.reasons == [BAD]));
    }
}
