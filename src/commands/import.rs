//! `kfadmin import TARBALL`: a tarball made by hand becomes a verified kfadmin archive
//! ([`crate::ops::import`] does the work; this parses, plans and renders).

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Instant;

use serde::Serialize;

use super::{human_bytes, Ctx, Outcome};
use crate::archive::manifest::ImportRecord;
use crate::archive::{FileEntry, Mode};
use crate::cli::ImportArgs;
use crate::error::{Error, Kind, Result};
use crate::lock::Key;
use crate::ops::import::{self, Imported, Request};
use crate::ops::make;
use crate::sqlite::DbFacts;

/// The `--json` report of an import.
#[derive(Debug, Serialize)]
pub struct ImportReport {
    /// False when the database was refused (exit 3).
    pub ok: bool,
    #[serde(serialize_with = "super::lossy::path")]
    pub tarball: PathBuf,
    /// The archive written; absent when the database was refused.
    #[serde(serialize_with = "super::lossy::opt_path")]
    pub archive: Option<PathBuf>,
    #[serde(serialize_with = "super::lossy::opt_path")]
    pub sidecar: Option<PathBuf>,
    pub sha256: Option<String>,
    pub bytes: Option<u64>,
    pub mode: Mode,
    pub created: Option<String>,
    pub encrypted: bool,
    pub recipients: Vec<String>,
    /// The manifest's `import` record: the tarball, the database in it, what was replayed or
    /// dropped, what was left out, what was salvaged.
    pub import: ImportRecord,
    /// The archive holds a salvaged copy of the database (rows were lost).
    pub salvaged: bool,
    /// What was wrong with the database as the tarball held it.
    pub problems: Vec<String>,
    pub database: Option<DbFacts>,
    pub files: Vec<FileEntry>,
    pub warnings: Vec<String>,
    pub duration_ms: u64,
}

pub fn run(args: ImportArgs, ctx: &Ctx) -> Result<Outcome> {
    let started = Instant::now();
    let name = args.output.name.as_deref().map(make::check_name).transpose()?;
    check_input(&args)?;
    let e = &args.encrypt;
    if args.dry_run {
        return dry_run(&args, name.as_deref(), ctx);
    }
    let encryption =
        make::encryption(e.passphrase, &e.encrypt_to, e.recipients_file.as_deref(), ctx.interactive)?;
    let _locks = ctx.lock("kfadmin import", vec![Key::dir("backup directory", &args.output.out)])?;
    let mut warnings = Vec::new();
    for w in crate::ops::staging::prepare_out(&args.output.out)? {
        ctx.warn(&w);
        warnings.push(w);
    }
    let o = &args.output;
    let req = Request {
        tarball: &args.tarball,
        db_name: &args.db_name,
        salvage: args.salvage,
        without_wal: args.without_wal,
        tmp_dir: o.tmp_dir.as_deref(),
        out: &o.out,
        name: name.as_deref(),
        compression: crate::archive::writer::Compression { level: o.compression_level, ..Default::default() },
        nice: o.nice,
    };
    let mut imported = import::import(ctx, &req, &encryption)?;
    if let Some(m) =
        imported.made.as_ref().filter(|m| super::in_future(m.manifest.created_unix, super::now_unix()))
    {
        let then =
            "the database's time in the tarball is wrong; status and prune do not count it as the newest";
        imported.warnings.push(super::future_warning(&m.written.path, &m.manifest.created, then));
    }
    for w in &imported.warnings {
        ctx.warn(w);
    }
    warnings.extend(imported.warnings.iter().cloned());
    let report = report(&args, imported, &encryption, warnings, started);
    let code = if report.ok { 0 } else { Kind::Verification.code() };
    Ok(Outcome::new(code, human(&report), &report))
}

/// What can be refused before anything is read.
/// `--dry-run`: the checks made before the tarball is read, and what would be written. The
/// tarball is not unpacked (its database is checked only by the import itself).
fn dry_run(args: &ImportArgs, name: Option<&str>, ctx: &Ctx) -> Result<Outcome> {
    let e = &args.encrypt;
    // A passphrase is not asked for; without a terminal or KFADMIN_PASSPHRASE it fails as the
    // real run would.
    let (encrypted, recipients) = if e.passphrase && ctx.interactive && !crate::crypto::passphrase_given() {
        (true, vec!["passphrase (scrypt)".to_string()])
    } else {
        let enc =
            make::encryption(e.passphrase, &e.encrypt_to, e.recipients_file.as_deref(), ctx.interactive)?;
        (enc.is_some(), enc.describe())
    };
    if crate::store::is_remote_path(&args.output.out) {
        return Err(Error::usage(format!(
            "-r/--repo {} is remote: import writes to a local directory",
            args.output.out.display()
        )));
    }
    let name = name.map(str::to_string).unwrap_or_else(|| import::default_name(&args.tarball));
    let size = std::fs::metadata(&args.tarball).map(|m| m.len()).unwrap_or(0);
    let out = &args.output.out;
    let pattern = format!(
        "{name}-<time of the newest file in the tarball>-imported.tar.gz{}",
        if encrypted { ".age" } else { "" }
    );
    let steps = vec![
        format!(
            "read {} ({}) into a private directory and find {} in it",
            args.tarball.display(),
            human_bytes(size),
            args.db_name
        ),
        format!(
            "check the database (integrity_check, foreign_key_check){}",
            if args.salvage { ", salvaging what can be read if it fails" } else { "; refuse it if it fails" }
        ),
        format!(
            "write and verify {}{} with its .sha256",
            out.join(&pattern).display(),
            if encrypted { format!(", encrypted to {}", recipients.join(", ")) } else { String::new() }
        ),
    ];
    let report = serde_json::json!({
        "ok": true,
        "dry_run": true,
        "tarball": args.tarball.to_string_lossy(),
        "bytes": size,
        "name": name,
        "archive": out.join(&pattern).to_string_lossy(),
        "repo": out.to_string_lossy(),
        "encrypted": encrypted,
        "recipients": recipients,
        "salvage": args.salvage,
        "steps": steps,
    });
    Ok(Outcome::new(0, super::dry_run_text(&steps), &report))
}

fn check_input(args: &ImportArgs) -> Result<()> {
    let n = &args.db_name;
    if n.is_empty() || n.contains('/') || n == "." || n == ".." {
        return Err(Error::usage(format!("--db-name {n:?} is not a file name"))
            .hint("pass the database's file name alone, e.g. --db-name keyfount.db"));
    }
    if let Some(e) = crate::ops::names::unusable(&args.tarball) {
        // (Not there, not a file, or not readable: a non-root run is told to run as root.)
        return Err(e.hint("pass the path of the tarball to import (a .tar.gz, .tgz or .tar), as root"));
    }
    Ok(())
}

fn report(
    args: &ImportArgs,
    i: Imported,
    encryption: &crate::crypto::Encryption,
    warnings: Vec<String>,
    started: Instant,
) -> ImportReport {
    let made = i.made;
    ImportReport {
        ok: made.is_some(),
        tarball: args.tarball.clone(),
        archive: made.as_ref().map(|m| m.written.path.clone()),
        sidecar: made.as_ref().map(|m| m.written.sidecar.clone()),
        sha256: made.as_ref().map(|m| m.written.sha256.clone()),
        bytes: made.as_ref().map(|m| m.written.bytes),
        mode: Mode::Imported,
        created: made.as_ref().map(|m| m.manifest.created.clone()),
        encrypted: made.is_some() && encryption.is_some(),
        recipients: if made.is_some() { encryption.describe() } else { Vec::new() },
        salvaged: i.record.salvaged.is_some(),
        import: i.record,
        problems: i.problems,
        database: made.as_ref().map(|m| m.manifest.database.clone()),
        files: made.map(|m| m.manifest.files).unwrap_or_default(),
        warnings,
        duration_ms: started.elapsed().as_millis() as u64,
    }
}

fn human(r: &ImportReport) -> String {
    let mut s = String::new();
    let i = &r.import;
    let Some(archive) = &r.archive else {
        let _ = writeln!(
            s,
            "Refusing to import {}: its database {} cannot be trusted:",
            r.tarball.display(),
            i.database
        );
        problems(&mut s, &r.problems);
        let _ = writeln!(
            s,
            "Nothing was written. `kfadmin import --salvage {}` archives what can still be read of it, marked salvaged.",
            r.tarball.display()
        );
        return s;
    };
    // A salvaged import is an archive of what could still be read, not the tarball's database:
    // its first line says so, never "Imported and verified" alone.
    if i.salvaged.is_some() {
        let _ = writeln!(
            s,
            "Imported a SALVAGED copy (rows were lost, see below); the archive itself is verified: {}",
            archive.display()
        );
    } else {
        let _ = writeln!(s, "Imported and verified: {}", archive.display());
    }
    let _ = writeln!(
        s,
        "  from     {} ({}, sha256 {}), database {}",
        i.tarball.file_name,
        human_bytes(i.tarball.size),
        i.tarball.sha256,
        i.database
    );
    if let Some(w) = &i.wal {
        let _ = writeln!(
            s,
            "  wal      {} frame(s) of {} transaction(s) replayed, {} dropped{}",
            w.folded,
            w.transactions,
            w.dropped,
            if w.dropped_because.is_empty() { String::new() } else { format!(": {}", w.dropped_because) }
        );
    }
    if i.journal_rolled_back {
        let _ = writeln!(s, "  journal  a hot rollback journal was rolled back");
    }
    if let (Some(d), Some(sha), Some(bytes)) = (&r.database, &r.sha256, r.bytes) {
        let rows: u64 = d.tables.values().sum();
        let _ = writeln!(
            s,
            "  sha256   {sha}\n  size     {} (database {}, {rows} rows in {} tables, schema version {})",
            human_bytes(bytes),
            human_bytes(d.page_size * d.page_count),
            d.tables.len(),
            d.schema_version.map(|v| v.to_string()).unwrap_or_else(|| "-".into())
        );
    }
    if let Some(sv) = &i.salvaged {
        salvaged(&mut s, sv, &r.problems);
    }
    s
}

/// What a salvage lost, table by table: rows read, unreadable and skipped (and why).
fn salvaged(s: &mut String, sv: &crate::archive::manifest::Salvage, all: &[String]) {
    let _ =
        writeln!(s, "SALVAGED: the database failed its checks; the archive holds what could be read of it:");
    problems(s, all);
    if let Some(why) = &sv.wal_left_out {
        let _ = writeln!(s, "WAL LEFT OUT: {why}; the archive holds the database file without it");
    }
    if !sv.cross_linked_pages.is_empty() {
        let pages: Vec<String> = sv.cross_linked_pages.iter().map(|p| p.to_string()).collect();
        let _ = writeln!(s, "Cross-linked pages (no row copied from them): {}", pages.join(", "));
    }
    let opt = |v: Option<u64>| v.map(|b| b.to_string()).unwrap_or_else(|| "?".into());
    let rows: Vec<Vec<String>> = sv
        .tables
        .iter()
        .map(|(t, c)| {
            let lost = c.before.map(|b| b.saturating_sub(c.after));
            vec![
                format!("  {t}"),
                opt(c.before),
                c.read.to_string(),
                opt(c.unreadable),
                c.skipped.to_string(),
                c.after.to_string(),
                opt(lost),
            ]
        })
        .collect();
    s.push_str(&super::render::table(
        &["  table", "before", "read", "unreadable", "skipped", "after", "lost"],
        &rows,
        &[1, 2, 3, 4, 5, 6],
    ));
    for (t, c) in &sv.tables {
        let mut why = Vec::new();
        if !c.not_copied.is_empty() {
            why.push(c.not_copied.clone());
        }
        for (n, what) in [
            (c.cross_linked, "on cross-linked pages"),
            (
                c.rows_refused - c.too_big.min(c.rows_refused),
                "refused by the new table (a broken value, a duplicate key)",
            ),
            (c.too_big, "with a value over 32 MiB (not read: memory stays bounded)"),
            (c.orphans_removed, "pointing at lost rows (foreign keys)"),
        ] {
            if n > 0 {
                why.push(format!("{n} {what}"));
            }
        }
        if c.read_errors > 0 {
            why.push(format!("{} place(s) SQLite could not read on", c.read_errors));
        }
        if !why.is_empty() {
            let _ = writeln!(s, "  {t}: {}", why.join("; "));
        }
    }
}

/// The first problems, one a line.
fn problems(s: &mut String, all: &[String]) {
    for p in all.iter().take(10) {
        let _ = writeln!(s, "  - {p}");
    }
    if all.len() > 10 {
        let _ = writeln!(s, "  - … and {} more (--json lists them)", all.len() - 10);
    }
}
