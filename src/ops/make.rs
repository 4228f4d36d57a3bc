//! Make a verified archive from staged files: check the database, hash every file, write the
//! manifest and the archive, read it back, and only then give it its final name. Backups and
//! pre-restore safety copies (and, later, drills and imports) all end here.

use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use crate::archive::manifest::{DirEntry, ImportRecord, FORMAT, FORMAT_VERSION};
use crate::archive::reader::{self, Options};
use crate::archive::writer::{self, Compression, Written};
use crate::archive::{FileEntry, Manifest, Mode, Source};
use crate::crypto::{self, Encryption};
use crate::error::{Error, Kind, Result};
use crate::fsutil::{self, Copied};
use crate::progress::{Notice, Unit};
use crate::sqlite;

#[derive(Debug, Default, Clone, Serialize)]
pub struct Timings {
    pub snapshot_ms: u64,
    pub check_ms: u64,
    pub archive_ms: u64,
    pub verify_ms: u64,
}

/// What to write, and where.
#[derive(Debug, Clone)]
pub struct ArchiveSpec<'a> {
    pub out: &'a Path,
    /// The first part of the file name (a container's name, the database's stem).
    pub name: &'a str,
    pub mode: Mode,
    pub source: Source,
    pub created: SystemTime,
    pub compression: Compression,
    /// CPU priority for the work after the copy (0: unchanged).
    pub nice: u8,
}

/// A written and verified archive.
#[derive(Debug, Clone)]
pub struct Made {
    pub written: Written,
    pub manifest: Manifest,
    pub timings: Timings,
}

/// Check, hash, archive and verify staged files: the database first, directories flagged.
pub fn make(n: &dyn Notice, spec: &ArchiveSpec, encryption: &Encryption, staged: &[Copied]) -> Result<Made> {
    make_with(n, spec, None, encryption, staged)
}

/// [`make`], with the manifest's record of an imported tarball.
pub fn make_with(
    n: &dyn Notice,
    spec: &ArchiveSpec,
    import: Option<ImportRecord>,
    encryption: &Encryption,
    staged: &[Copied],
) -> Result<Made> {
    make_inner(n, spec, import, encryption, staged, None)
}

/// [`make`] of a pre-restore copy whose databases SQLite already found damaged (`known`: what
/// it found) and that are kept as they were, with their `-wal` or hot journal: the manifest says
/// so, whatever the check of the database file alone finds.
pub fn make_pre_restore(
    n: &dyn Notice,
    spec: &ArchiveSpec,
    encryption: &Encryption,
    staged: &[Copied],
    known: Option<String>,
) -> Result<Made> {
    make_inner(n, spec, None, encryption, staged, known)
}

fn make_inner(
    n: &dyn Notice,
    spec: &ArchiveSpec,
    import: Option<ImportRecord>,
    encryption: &Encryption,
    staged: &[Copied],
    known: Option<String>,
) -> Result<Made> {
    // From here on the work competes with the server for CPU, not for its data.
    lower_priority(spec.nice);
    let t = Instant::now();
    let files: Vec<&Copied> = staged.iter().filter(|c| !c.dir).collect();
    let db = files
        .first()
        .filter(|c| c.rel == Path::new(sqlite::DB_FILE))
        .ok_or_else(|| Error::failed(format!("no {} among the staged files", sqlite::DB_FILE)))?;
    // The quick_check and the facts (SQLite, one core) beside the checksums (the other).
    let ((database, damaged), entries) = std::thread::scope(|scope| {
        let check = scope.spawn(|| check_database(&db.staged, &spec.source, spec.mode));
        let entries = hash_files(n, &files);
        let database = check.join().unwrap_or_else(|_| Err(Error::failed("the database check stopped")));
        Ok::<_, Error>((database?, entries?))
    })?;
    let damaged = match (known, damaged) {
        (Some(k), Some(d)) if !k.contains(&d) => Some(format!("{k}; {d}")),
        (Some(k), _) => Some(k),
        (None, d) => d,
    };
    let check_ms = t.elapsed().as_millis() as u64;
    let dirs = staged
        .iter()
        .filter(|c| c.dir)
        .map(|c| DirEntry {
            path: if c.rel.as_os_str().is_empty() {
                "data".into()
            } else {
                format!("data/{}", c.rel.display())
            },
            mode: c.mode & 0o777,
            uid: c.uid,
            gid: c.gid,
        })
        .collect();
    let manifest = Manifest {
        format: FORMAT.into(),
        format_version: FORMAT_VERSION,
        kfadmin_version: env!("CARGO_PKG_VERSION").into(),
        created: humantime::format_rfc3339_seconds(spec.created).to_string(),
        created_unix: spec.created.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0),
        mode: spec.mode,
        source: spec.source.clone(),
        files: entries,
        dirs,
        database,
        import,
        damaged,
    };
    let paths: Vec<PathBuf> = files.iter().map(|c| c.staged.clone()).collect();
    let file_name =
        writer::file_name(spec.name, manifest.created_unix, spec.mode.as_str(), encryption.is_some());
    crate::fault::point("make.write")?;
    let (written, archive_ms, verify_ms) =
        write_and_verify(n, spec.out, &file_name, &manifest, &paths, spec.compression, encryption)?;
    crate::fault::point("make.written")?;
    n.detail(&format!("check and checksum {check_ms} ms, archive {archive_ms} ms, verify {verify_ms} ms"));
    Ok(Made { written, manifest, timings: Timings { snapshot_ms: 0, check_ms, archive_ms, verify_ms } })
}

/// The manifest entries of staged files: their sha256, size, mode and owner.
fn hash_files(n: &dyn Notice, files: &[&Copied]) -> Result<Vec<FileEntry>> {
    let total: u64 = files.iter().map(|c| std::fs::metadata(&c.staged).map(|m| m.len()).unwrap_or(0)).sum();
    let stage = n.progress().stage("checksum", total, Unit::Bytes);
    let mut entries = Vec::new();
    for c in files {
        let (sha256, size) = fsutil::sha256_file(&c.staged, Some(stage.as_ref()))?;
        entries.push(FileEntry {
            path: format!("data/{}", c.rel.display()),
            size,
            sha256,
            mode: c.mode & 0o777,
            uid: c.uid,
            gid: c.gid,
        });
    }
    stage.finish();
    Ok(entries)
}

/// `PRAGMA quick_check` and the facts of a staged copy. A damaged database fails a backup; a
/// pre-restore copy keeps it as it is (damage is the most common reason to restore), with what
/// was found (the second value) and the facts that could be read.
fn check_database(db: &Path, source: &Source, mode: Mode) -> Result<(sqlite::DbFacts, Option<String>)> {
    let checked = sqlite::open_immutable(db).and_then(|conn| {
        let problems = sqlite::check(&conn, false).or_else(stopped_on_damage)?;
        if problems.is_empty() {
            return Ok(Ok(sqlite::facts(&conn, db)?));
        }
        Ok(Err((first_problems(&problems), sqlite::facts(&conn, db).ok())))
    });
    let (problem, facts) = match (checked, mode) {
        (Ok(Ok(facts)), _) => return Ok((facts, None)),
        (Ok(Err(damage)), Mode::PreRestore) => damage,
        (Err(e), Mode::PreRestore) => (e.chain(), None),
        (Err(e), _) => return Err(e),
        (Ok(Err((problem, _))), _) => {
            return Err(Error::verification(format!(
                "the copy of {} fails PRAGMA quick_check: {problem}",
                source.path
            ))
            .hint("the database itself is damaged: check it with `sqlite3 keyfount.db 'PRAGMA integrity_check'` and keep your older backups"))
        }
    };
    let facts = facts.unwrap_or_else(|| sqlite::DbFacts {
        page_size: 0,
        page_count: 0,
        journal_mode: sqlite::Journal::Wal,
        user_version: 0,
        schema_version: None,
        tables: Default::default(),
    });
    Ok((facts, Some(problem)))
}

/// What a check found, short enough for a report: the first three problems.
fn first_problems(problems: &[String]) -> String {
    let lines: Vec<&str> =
        problems.iter().flat_map(|p| p.lines()).filter(|l| !l.starts_with("***")).collect();
    let mut s = lines.iter().take(3).copied().collect::<Vec<_>>().join("; ");
    if lines.len() > 3 {
        s.push_str(&format!("; and {} more", lines.len() - 3));
    }
    s
}

/// A quick_check that stops on a damaged page (SQLite answers "malformed" instead of listing
/// problems) found a problem too.
fn stopped_on_damage(e: Error) -> Result<Vec<String>> {
    let sqlite = e.source.as_ref().and_then(|s| s.downcast_ref::<rusqlite::Error>());
    match sqlite.and_then(|s| s.sqlite_error_code()) {
        Some(rusqlite::ErrorCode::DatabaseCorrupt | rusqlite::ErrorCode::NotADatabase) => {
            Ok(vec![sqlite.map(|s| s.to_string()).unwrap_or_default()])
        }
        _ => Err(e),
    }
}

/// Make every copied database that has a non-empty `-wal` or a hot journal beside it whole, in
/// a scratch copy of its own (the copy it came from stays as it was captured until the result
/// checks out). A database SQLite cannot make whole or finds damaged is kept as it was, with its
/// `-wal` or journal, unfolded: what was found, for the manifest (a pre-restore copy keeps it;
/// a backup fails). The live data is never changed: a container's directory is written by its
/// server, and SQLite, which opens files by path, could be led through a link planted there.
pub fn make_whole_copies(
    root: &Path,
    files: &mut Vec<Copied>,
) -> Result<(Vec<sqlite::MadeWhole>, Option<String>)> {
    use std::os::unix::ffi::OsStrExt;
    let mut found = Vec::new();
    let mut whole = Vec::new();
    let mut folded: Vec<PathBuf> = Vec::new();
    // The databases that have a sidecar among the files (by name: 50,000 attachments are
    // looked at once each).
    let bases: std::collections::HashSet<PathBuf> = files
        .iter()
        .filter(|c| !c.dir)
        .filter_map(|c| {
            let b = c.rel.as_os_str().as_bytes();
            let base = b.strip_suffix(b"-wal").or_else(|| b.strip_suffix(b"-journal"))?;
            Some(PathBuf::from(std::ffi::OsStr::from_bytes(base)))
        })
        .collect();
    let dbs: Vec<(PathBuf, PathBuf)> = files
        .iter()
        .filter(|c| !c.dir && bases.contains(&c.rel))
        .map(|c| (c.rel.clone(), c.staged.clone()))
        .collect();
    for (n, (rel, staged)) in dbs.iter().enumerate() {
        let scratch = root.join(format!("whole-{n}"));
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&scratch)
            .map_err(|e| Error::io("cannot create", &scratch, e))?;
        let work = scratch.join(sqlite::DB_FILE);
        let sides: Vec<(&str, PathBuf, PathBuf)> = ["-wal", "-journal"]
            .into_iter()
            .filter_map(|x| {
                let mut side_rel = rel.clone().into_os_string();
                side_rel.push(x);
                let side_rel = PathBuf::from(side_rel);
                files.iter().find(|c| c.rel == side_rel).map(|c| (x, side_rel, c.staged.clone()))
            })
            .collect();
        let copy = |from: &Path, to: &Path| -> Result<()> {
            let src = std::fs::File::open(from).map_err(|e| Error::io("cannot read", from, e))?;
            fsutil::clone_or_copy(src, fsutil::create_new(to, 0o600)?, to).map(drop)
        };
        copy(staged, &work)?;
        for (x, _, s) in &sides {
            copy(s, &work.with_file_name(format!("{}{x}", sqlite::DB_FILE)))?;
        }
        match sqlite::make_whole_copy(&work)? {
            Ok(frames) => {
                whole.push(sqlite::MadeWhole {
                    path: rel.clone(),
                    wal_frames_folded: frames,
                    journal_rolled_back: sides.iter().any(|(x, _, _)| *x == "-journal"),
                });
                std::fs::rename(&work, staged).map_err(|e| Error::io("cannot rename into", staged, e))?;
                for (_, side_rel, s) in &sides {
                    std::fs::remove_file(s).map_err(|e| Error::io("cannot remove", s, e))?;
                    folded.push(side_rel.clone());
                }
            }
            Err(why) => found.push(format!("{}: {why}", rel.display())),
        }
        let _ = std::fs::remove_dir_all(&scratch);
    }
    files.retain(|c| !folded.contains(&c.rel));
    Ok((whole, (!found.is_empty()).then(|| found.join("; "))))
}

/// Raise this thread's nice value (Linux: per thread; the compression and verification threads
/// started after this inherit it). Best effort: a failure leaves the priority as it was.
fn lower_priority(nice: u8) {
    if nice == 0 {
        return;
    }
    use rustix::process::{getpriority_process, setpriority_process};
    // `None`: the calling thread (Linux keeps nice values per thread).
    if getpriority_process(None).is_ok_and(|now| now < i32::from(nice)) {
        let _ = setpriority_process(None, i32::from(nice));
    }
}

/// Write the archive and verify the `.partial` (gzip, tar, manifest, every file's sha256)
/// before it gets its final name. Returns the archive and the two phases' durations.
pub fn write_and_verify(
    n: &dyn Notice,
    out: &Path,
    file_name: &str,
    manifest: &Manifest,
    files: &[PathBuf],
    compression: Compression,
    encryption: &Encryption,
) -> Result<(Written, u64, u64)> {
    let t = Instant::now();
    let mut verify_ms = 0;
    // An encrypted archive is read back with the one-time key (or the passphrase).
    let check_keys = encryption.check_keys();
    let written = writer::write(
        out,
        file_name,
        manifest,
        files,
        compression,
        encryption,
        n.progress(),
        |partial, sha| {
            let t = Instant::now();
            let opts = Options {
                sqlite: false,
                extract_to: None,
                expected_sha256: Some(sha),
                keys: Some(&check_keys),
            };
            let verdict = reader::verify(partial, &opts, n.progress())?;
            verify_ms = t.elapsed().as_millis() as u64;
            if verdict.ok {
                Ok(())
            } else {
                let failed: Vec<String> =
                    verdict.failed().map(|c| format!("{}: {}", c.name, c.detail)).collect();
                Err(Error::new(Kind::Verification, format!("the new archive failed verification: {}", failed.join("; ")))
                .hint("the archive was removed; check the disk and memory of this machine, then run the backup again"))
            }
        },
    )?;
    let archive_ms = (t.elapsed().as_millis() as u64).saturating_sub(verify_ms);
    Ok((written, archive_ms, verify_ms))
}

/// An archive name given with `--name`, checked: it becomes the first part of a file name.
pub fn check_name(n: &str) -> Result<String> {
    if n.is_empty()
        || n.len() > 100
        || n.starts_with('.')
        || !n.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
    {
        return Err(Error::usage(format!("--name {n:?} is not a usable archive name"))
            .hint("use letters, digits, '-', '_' and '.', not starting with '.'"));
    }
    Ok(n.to_string())
}

/// The encryption asked for: a passphrase (asked twice, or `KFADMIN_PASSPHRASE`), or the
/// recipients of `--encrypt-to` and `--recipients-file`, or none.
pub fn encryption(
    passphrase: bool,
    encrypt_to: &[String],
    recipients_file: Option<&Path>,
    interactive: bool,
) -> Result<Encryption> {
    if passphrase {
        return Ok(Encryption::Passphrase(crypto::passphrase(interactive, true)?));
    }
    let chosen = recipients(encrypt_to, recipients_file)?;
    if matches!(chosen, Encryption::None) && crypto::passphrase_given() {
        let what = if std::env::var_os("KFADMIN_PASSPHRASE").is_some() {
            "KFADMIN_PASSPHRASE is set"
        } else {
            "--passphrase-file is given"
        };
        return Err(Error::usage(format!(
            "{what} but --passphrase is not given: the archive would be written unencrypted"
        ))
        .hint("add --passphrase (or KFADMIN_USE_PASSPHRASE=1) to encrypt with it, or unset KFADMIN_PASSPHRASE / drop --passphrase-file"));
    }
    Ok(chosen)
}

/// Recipients from `--encrypt-to` and `--recipients-file` (no encryption when neither is given).
pub fn recipients(encrypt_to: &[String], file: Option<&Path>) -> Result<Encryption> {
    let mut recipients = Vec::new();
    let mut described = Vec::new();
    for r in encrypt_to {
        recipients.push(crypto::parse_recipient(r)?);
        described.push(r.trim().to_string());
    }
    if let Some(f) = file {
        for (r, d) in crypto::read_recipients_file(f)? {
            recipients.push(r);
            described.push(d);
        }
    }
    Ok(if recipients.is_empty() { Encryption::None } else { Encryption::recipients(recipients, described) })
}
