//! `kfadmin list [LOCATION] [--check]`: the kfadmin archives in a backup directory or an S3
//! location, newest first, grouped by archive name (host or container) in a fleet's bucket.

use std::fmt::Write as _;
use std::path::PathBuf;

use serde::Serialize;

use super::render::{self, plural, table, when};
use super::{future_warning, human_bytes, in_future, now_unix, ArchiveKind, Ctx, Outcome};
use crate::archive::catalog::Entry;
use crate::archive::{Manifest, Mode};
use crate::cli::ListArgs;
use crate::error::{check_interrupt, Result};
use crate::progress::Unit;
use crate::store::{Location, Store};

/// What the `.sha256` beside an archive says about it (only with `--check`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Sidecar {
    Ok,
    Mismatch,
    Missing,
}

#[derive(Debug, Serialize)]
pub struct Listed {
    #[serde(serialize_with = "super::lossy::path")]
    pub path: PathBuf,
    pub file_name: String,
    pub name: String,
    pub created: String,
    pub created_unix: u64,
    pub mode: Mode,
    /// `backup`, or `safety-copy` (pre-restore: the data a restore replaced; not a backup).
    pub kind: ArchiveKind,
    /// Dated more than a few minutes ahead of this machine's clock (see `status`).
    pub in_future: bool,
    /// Encrypted with age: source and database size are inside, unreadable without a key.
    pub encrypted: bool,
    pub bytes: u64,
    /// page_size × page_count from the manifest; None when the manifest cannot be read.
    pub database_bytes: Option<u64>,
    /// The container's name, else the database's path; None when the manifest cannot be read.
    pub source: Option<String>,
    /// The host the backup was made on (the manifest's); None when it cannot be read.
    pub host: Option<String>,
    /// None when not checked (no `--check`).
    pub sidecar: Option<Sidecar>,
    /// An import whose database failed its checks: it holds what `--salvage` could read.
    pub salvaged: bool,
}

/// The `--json` report of `kfadmin list`.
#[derive(Debug, Serialize)]
pub struct ListReport {
    /// False only when `--check` found a sidecar that does not match.
    pub ok: bool,
    #[serde(serialize_with = "super::lossy::path")]
    pub dir: PathBuf,
    pub checked: bool,
    pub archives: Vec<Listed>,
    /// One entry per archive name (a host or container in a fleet's bucket), by name.
    pub groups: Vec<Group>,
    /// Point-in-time chains (`kfadmin replicate`, local repositories): base, first and last
    /// restorable time, gaps, and whether every link holds.
    pub chains: Vec<crate::ops::replicate::ChainVerdict>,
    /// What is there that is not kfadmin's (skipped, left alone): how many, the first names.
    pub skipped: crate::store::Skipped,
}

/// The archives of one name.
#[derive(Debug, Serialize)]
pub struct Group {
    pub name: String,
    /// Backups (pre-restore safety copies not counted).
    pub backups: usize,
    pub safety_copies: usize,
    /// The newest backup's time (not dated in the future), if any.
    pub newest: Option<String>,
    pub bytes: u64,
    /// The hosts its archives were made on, as far as their manifests can be read.
    pub hosts: Vec<String>,
}

fn groups(archives: &[Listed]) -> Vec<Group> {
    let mut out: Vec<Group> = Vec::new();
    for a in archives {
        let i = match out.iter().position(|g| g.name == a.name) {
            Some(i) => i,
            None => {
                out.push(Group {
                    name: a.name.clone(),
                    backups: 0,
                    safety_copies: 0,
                    newest: None,
                    bytes: 0,
                    hosts: Vec::new(),
                });
                out.len() - 1
            }
        };
        let g = &mut out[i];
        g.bytes += a.bytes;
        if let Some(h) = a.host.as_ref().filter(|h| !g.hosts.contains(h)) {
            g.hosts.push(h.clone());
            g.hosts.sort();
        }
        if a.kind == ArchiveKind::SafetyCopy {
            g.safety_copies += 1;
            continue;
        }
        g.backups += 1;
        if g.newest.is_none() && !a.in_future {
            g.newest = Some(a.created.clone());
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

pub fn run(args: ListArgs, ctx: &Ctx) -> Result<Outcome> {
    let location = Location::from_path(&args.repo.location(args.dir.as_ref())?)?;
    let store = Store::open(&location)?;
    let (mut entries, skipped) = store.scan_all()?;
    if let Some(n) = &args.name {
        entries.retain(|e| &e.name == n);
    }
    let now = now_unix();
    let sidecars = if args.check { Some(check_sidecars(&store, &entries, ctx)?) } else { None };
    let archives: Vec<Listed> = entries
        .into_iter()
        .enumerate()
        .map(|(i, e)| {
            // An encrypted archive's manifest is encrypted too: not read here.
            let manifest = if e.encrypted { None } else { store.manifest(&e) };
            Listed {
                source: manifest.as_ref().map(source_of),
                host: manifest.as_ref().map(|m| m.source.host.clone()),
                database_bytes: manifest.as_ref().map(|m| m.database.page_size * m.database.page_count),
                sidecar: sidecars.as_ref().map(|s| s[i]),
                salvaged: manifest
                    .as_ref()
                    .and_then(|m| m.import.as_ref())
                    .is_some_and(|i| i.salvaged.is_some()),
                path: e.path,
                file_name: e.file_name,
                name: e.name,
                created: e.created,
                created_unix: e.created_unix,
                mode: e.mode,
                kind: ArchiveKind::of(e.mode),
                in_future: in_future(e.created_unix, now),
                encrypted: e.encrypted,
                bytes: e.bytes,
            }
        })
        .collect();
    for a in archives.iter().filter(|a| a.in_future) {
        ctx.warn(&future_warning(&a.path, &a.created, "status and prune do not count it as the newest"));
    }
    let mismatches = archives.iter().filter(|a| a.sidecar == Some(Sidecar::Mismatch)).count();
    for a in archives.iter().filter(|a| a.sidecar == Some(Sidecar::Mismatch)) {
        ctx.warn(&format!(
            "{} does not match its .sha256: it is damaged; run `kfadmin verify` on it, and do not restore it",
            a.path.display()
        ));
    }
    let groups = groups(&archives);
    for g in groups.iter().filter(|g| g.hosts.len() > 1) {
        ctx.warn(&format!(
            "archives named {} were made on {} hosts ({}): if they are different servers, give each its own --name (and prefix), or prune counts their backups against each other",
            g.name,
            g.hosts.len(),
            g.hosts.iter().map(|h| format!("{h:?}")).collect::<Vec<_>>().join(", ")
        ));
    }
    let chains = match &location {
        Location::Local(dir) => crate::ops::replicate::chains(dir, None)?,
        _ => Vec::new(),
    };
    let report = ListReport {
        ok: mismatches == 0,
        dir: store.shown(),
        checked: args.check,
        archives,
        groups,
        chains,
        skipped,
    };
    let mut text = human(&report);
    for c in &report.chains {
        text.push_str(&super::render::chain(c));
    }
    Ok(Outcome::new(if report.ok { 0 } else { 3 }, text, &report))
}

/// Hash every archive and compare with its sidecar, one bar over all the bytes.
fn check_sidecars(store: &Store, entries: &[Entry], ctx: &Ctx) -> Result<Vec<Sidecar>> {
    let total = entries.iter().filter(|e| e.sidecar.is_some()).map(|e| e.bytes).sum();
    let stage = ctx.progress.stage("checking", total, Unit::Bytes);
    let mut out = Vec::with_capacity(entries.len());
    for e in entries {
        check_interrupt()?;
        let remote = store.is_remote().then_some(stage.as_ref());
        out.push(match store.sidecar_matches(e, remote)? {
            Some(true) => Sidecar::Ok,
            Some(false) => Sidecar::Mismatch,
            None => Sidecar::Missing,
        });
        if e.sidecar.is_some() && !store.is_remote() {
            stage.inc(e.bytes);
        }
    }
    stage.finish();
    Ok(out)
}

/// The container's name when it came from a container, else the database's path on its host.
pub(crate) fn source_of(m: &Manifest) -> String {
    match &m.source.container {
        Some(c) => c.name.clone(),
        None => m.source.path.clone(),
    }
}

fn human(r: &ListReport) -> String {
    if r.archives.is_empty() {
        return format!(
            "No kfadmin archives in {}\n{}",
            r.dir.display(),
            render::skipped_line(&r.dir, &r.skipped)
        );
    }
    let mut header = vec!["TIME (UTC)", "MODE", "SOURCE", "SIZE", "DATABASE"];
    if r.checked {
        header.push("SHA256");
    }
    header.push("FILE");
    let rows: Vec<Vec<String>> = r
        .archives
        .iter()
        .map(|a| {
            let mut row = vec![
                if a.in_future { format!("{} (future!)", when(&a.created)) } else { when(&a.created) },
                mode_label(a),
                a.source.clone().unwrap_or_else(|| if a.encrypted { "(encrypted)" } else { "?" }.into()),
                human_bytes(a.bytes),
                a.database_bytes
                    .map(human_bytes)
                    .unwrap_or_else(|| if a.encrypted { "-" } else { "?" }.into()),
            ];
            if r.checked {
                row.push(
                    match a.sidecar {
                        Some(Sidecar::Ok) => "ok",
                        Some(Sidecar::Mismatch) => "MISMATCH",
                        Some(Sidecar::Missing) | None => "no sidecar",
                    }
                    .to_string(),
                );
            }
            row.push(a.file_name.clone());
            row
        })
        .collect();
    // Sizes right-aligned, everything else left-aligned.
    let right = [3, 4];
    let mut s = table(&header, &rows, &right);
    let total: u64 = r.archives.iter().map(|a| a.bytes).sum();
    let n = r.archives.len();
    let _ = write!(s, "{n} archive{}", plural(n));
    let safety = r.archives.iter().filter(|a| a.kind == ArchiveKind::SafetyCopy).count();
    if safety > 0 {
        let _ = write!(
            s,
            " ({safety} of them pre-restore safety cop{}, not backups)",
            if safety == 1 { "y" } else { "ies" }
        );
    }
    let _ = write!(s, " in {}, {} in total", r.dir.display(), human_bytes(total));
    if r.checked {
        let count = |want: Sidecar| r.archives.iter().filter(|a| a.sidecar == Some(want)).count();
        let _ = write!(
            s,
            "; sidecars: {} ok, {} MISMATCH, {} missing",
            count(Sidecar::Ok),
            count(Sidecar::Mismatch),
            count(Sidecar::Missing)
        );
    }
    s.push('\n');
    group_lines(r, &mut s);
    s.push_str(&render::skipped_line(&r.dir, &r.skipped));
    s
}

/// One line per archive name (host, container) when there are several.
fn group_lines(r: &ListReport, s: &mut String) {
    if r.groups.len() > 1 {
        for g in &r.groups {
            let _ = writeln!(
                s,
                "  {}: {} backup{}{}, newest {}",
                g.name,
                g.backups,
                plural(g.backups),
                if g.safety_copies > 0 {
                    format!(" (+{} pre-restore)", g.safety_copies)
                } else {
                    String::new()
                },
                g.newest.as_deref().map(when).unwrap_or_else(|| "-".into())
            );
        }
    }
}

/// `online`, `cold (age)`, `pre-restore (safety copy)`, `pre-restore (safety copy, age)`,
/// `imported (salvaged)`.
fn mode_label(a: &Listed) -> String {
    let mut tags = Vec::new();
    if a.kind == ArchiveKind::SafetyCopy {
        tags.push("safety copy");
    }
    if a.salvaged {
        tags.push("salvaged");
    }
    if a.encrypted {
        tags.push("age");
    }
    if tags.is_empty() {
        a.mode.as_str().to_string()
    } else {
        format!("{} ({})", a.mode.as_str(), tags.join(", "))
    }
}
