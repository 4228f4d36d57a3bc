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
fn check_input(args: &ImportArgs) -> Result<()> {
    let n = &args.db_name;
    if n.is_empty() || n.contains('/') || n == "." || n == ".." {
        return Err(Error::usage(format!("--db-name {n:?} is not a file name"))
            .hint("pass the database's file name alone, e.g. --db-name keyfount.db"));
    }
    if !args.tarball.is_file() {
        return Err(Error::usage(format!("{} does not exist or is not a file", args.tarball.display()))
            .hint("pass the path of the tarball to import (a .tar.gz, .tgz or .tar)"));
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
    let _ = writeln!(s, "Imported and verified: {}", archive.display());
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

/// What a salvage lost, table by table.
fn salvaged(s: &mut String, sv: &crate::archive::manifest::Salvage, all: &[String]) {
    let _ =
        writeln!(s, "SALVAGED: the database failed its checks; the archive holds what could be read of it:");
    problems(s, all);
    let rows: Vec<Vec<String>> = sv
        .tables
        .iter()
        .map(|(t, c)| {
            let before = c.before.map(|b| b.to_string()).unwrap_or_else(|| "?".into());
            let lost = c.before.map(|b| b.saturating_sub(c.after).to_string()).unwrap_or_else(|| "?".into());
            vec![format!("  {t}"), before, c.after.to_string(), lost]
        })
        .collect();
    s.push_str(&super::render::table(&["  table", "before", "after", "lost"], &rows, &[1, 2, 3]));
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
