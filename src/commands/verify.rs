//! `kfadmin verify ARCHIVE...`

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::{render, Ctx, Outcome};
use crate::archive::reader::{self, Options, Verdict};
use crate::cli::VerifyArgs;
use crate::crypto::Keys;
use crate::error::{Error, Result};
use crate::ops::fetch::fetch;
use crate::ops::names;
use crate::ops::staging::{Staging, STAGING_PREFIX};
use crate::store::{is_remote_path, Remote, S3Url};

#[derive(Debug, Serialize)]
pub struct VerifyReport {
    pub ok: bool,
    pub quick: bool,
    #[serde(serialize_with = "super::lossy::verdicts")]
    pub archives: Vec<Verdict>,
    /// Without ARCHIVE: the repository's point-in-time chains (`kfadmin replicate`), each
    /// checked link by link and commit by commit against its recorded checksums.
    pub chains: Vec<crate::ops::replicate::ChainVerdict>,
    /// Archives whose name and manifest disagree (renamed, or not what the name says).
    pub warnings: Vec<String>,
}

pub fn run(mut args: VerifyArgs, ctx: &Ctx) -> Result<Outcome> {
    let chains = chains(&args, ctx)?;
    args.archives = if chains.is_empty() || !args.archives.is_empty() {
        targets(&args, ctx)?
    } else {
        archives_or_none(&args)?
    };
    for a in args.archives.iter().filter(|a| !is_remote_path(a)) {
        if let Some(e) = names::unusable(a) {
            return Err(e);
        }
    }
    // Remote archives are checked as downloaded, one at a time, in a private directory.
    let mut remotes: Vec<(PathBuf, Remote, String)> = Vec::new();
    for a in args.archives.iter().filter(|a| is_remote_path(a)) {
        let (url, name) = S3Url::split_object(&a.to_string_lossy())?;
        remotes.push((a.clone(), Remote::connect(&url)?, name));
    }
    let mut keys: Option<Keys> = None;
    let mut archives = Vec::new();
    let mut warnings = Vec::new();
    for a in &args.archives {
        let fetched = match remotes.iter().find(|(p, _, _)| p == a) {
            Some((_, remote, name)) => {
                ctx.note(&format!("Downloading {}", remote.url.object(name)));
                Some(fetch(remote, name, args.tmp_dir.as_deref(), ctx.progress.as_ref())?)
            }
            None => None,
        };
        let local = fetched.as_ref().map(|f| f.path()).unwrap_or_else(|| a.clone());
        let k = crate::crypto::keys_next(keys.take(), &local, &args.decrypt.identity, ctx.interactive)?;
        let verdict = check(&local, &args, &k, ctx);
        keys = Some(k);
        let mut verdict = verdict?;
        match &fetched {
            Some(f) => f.relabel(&mut verdict),
            None => verdict.archive = a.clone(),
        }
        if let Some(w) = verdict.manifest.as_ref().and_then(|m| names::name_problem(a, m)) {
            ctx.warn(&w);
            warnings.push(w);
        }
        archives.push(verdict);
    }
    let ok = archives.iter().all(|v| v.ok) && chains.iter().all(|c| c.ok);
    // Exit 3 only for an archive that is damaged; one that the keys given cannot open is the
    // operator's to fix (exit 2, pass the key), and not verified either.
    let damaged = archives.iter().any(|v| !v.ok && v.needs_key.is_none()) || chains.iter().any(|c| !c.ok);
    let code = match (ok, damaged) {
        (true, _) => 0,
        (false, true) => 3,
        (false, false) => 2,
    };
    let report = VerifyReport { ok, quick: args.quick, archives, chains, warnings };
    let mut text = human(&report);
    for c in &report.chains {
        text.push_str(&render::chain(c));
    }
    Ok(Outcome::new(code, text, &report))
}

/// Without ARCHIVE, in a local repository: its point-in-time chains, verified.
fn chains(args: &VerifyArgs, ctx: &Ctx) -> Result<Vec<crate::ops::replicate::ChainVerdict>> {
    let repo = args.repo.location(None)?;
    if !args.archives.is_empty() || is_remote_path(&repo) {
        return Ok(Vec::new());
    }
    let deep = (!args.quick).then_some((args.tmp_dir.as_deref(), ctx as &dyn crate::progress::Notice));
    crate::ops::replicate::chains(&repo, deep)
}

/// Every archive of the repository (none is fine when it holds chains).
fn archives_or_none(args: &VerifyArgs) -> Result<Vec<PathBuf>> {
    Ok(names::archives(&args.repo.location(None)?)?.into_iter().map(|e| e.path).collect())
}

/// The archives to check: each ARCHIVE resolved against the repository (`latest`, a bare name
/// as `list` prints it), sidecars skipped (`verify DIR/*`); none given: every archive in the
/// repository (restic's and borg's `check`).
fn targets(args: &VerifyArgs, ctx: &Ctx) -> Result<Vec<PathBuf>> {
    let repo = args.repo.location(None)?;
    if args.archives.is_empty() {
        let all: Vec<PathBuf> = names::archives(&repo)?.into_iter().map(|e| e.path).collect();
        if all.is_empty() {
            return Err(Error::usage(format!("there is no archive in {} to verify", repo.display()))
                .hint("give the archives to check, or the repository that holds them with -r/--repo"));
        }
        return Ok(all);
    }
    let mut out = Vec::new();
    for a in &args.archives {
        if a.to_string_lossy().ends_with(".sha256") {
            ctx.detail(&format!("Skipping {}: a checksum sidecar, checked with its archive", a.display()));
            continue;
        }
        out.push(names::resolve(a, &repo)?);
    }
    if out.is_empty() {
        return Err(Error::usage("only .sha256 sidecars were given, no archive")
            .hint("give the .tar.gz (or .tar.gz.age) files; each is checked against its sidecar"));
    }
    Ok(out)
}

/// Verify one local file (a download, for a remote archive).
fn check(local: &Path, args: &VerifyArgs, keys: &Keys, ctx: &Ctx) -> Result<Verdict> {
    if args.quick {
        let opts = Options { sqlite: false, extract_to: None, expected_sha256: None, keys: Some(keys) };
        return reader::verify(local, &opts, ctx.progress.as_ref());
    }
    let tmp = Staging::private(args.tmp_dir.as_deref(), STAGING_PREFIX)?;
    let opts = Options { sqlite: true, extract_to: Some(tmp.dir()), expected_sha256: None, keys: Some(keys) };
    reader::verify(local, &opts, ctx.progress.as_ref())
}

fn human(r: &VerifyReport) -> String {
    let mut s: String = r.archives.iter().map(|v| render::verdict(v, r.quick)).collect::<Vec<_>>().join("\n");
    if r.archives.len() > 1 {
        let bad = r.archives.iter().filter(|v| !v.ok).count();
        let _ = writeln!(s, "\n{} of {} archive(s) passed", r.archives.len() - bad, r.archives.len());
    }
    s
}
