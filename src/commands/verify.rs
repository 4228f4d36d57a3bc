//! `kfadmin verify ARCHIVE...`

use std::fmt::Write as _;

use serde::Serialize;

use super::{render, Ctx, Outcome};
use crate::archive::reader::{self, Options, Verdict};
use crate::cli::VerifyArgs;
use crate::error::{Error, Result};
use crate::ops::staging::{Staging, STAGING_PREFIX};

#[derive(Debug, Serialize)]
pub struct VerifyReport {
    pub ok: bool,
    pub quick: bool,
    #[serde(serialize_with = "super::lossy::verdicts")]
    pub archives: Vec<Verdict>,
}

pub fn run(args: VerifyArgs, ctx: &Ctx) -> Result<Outcome> {
    for a in &args.archives {
        if !a.exists() {
            return Err(Error::usage(format!("archive {} does not exist", a.display()))
                .hint("pass the path of a .tar.gz that kfadmin backup wrote"));
        }
    }
    // The keys once for all archives: a passphrase is asked at most once.
    let first_encrypted = args.archives.iter().find(|a| crate::crypto::is_encrypted(a));
    let keys = match first_encrypted {
        Some(a) => crate::crypto::keys_for(a, &args.decrypt.identity, ctx.interactive)?,
        None => crate::crypto::Keys::from_files(&args.decrypt.identity)?,
    };
    let mut archives = Vec::new();
    for a in &args.archives {
        let verdict = if args.quick {
            let opts = Options { sqlite: false, extract_to: None, expected_sha256: None, keys: Some(&keys) };
            reader::verify(a, &opts, ctx.progress.as_ref())?
        } else {
            let tmp = Staging::private(args.tmp_dir.as_deref(), STAGING_PREFIX)?;
            let opts = Options {
                sqlite: true,
                extract_to: Some(tmp.dir()),
                expected_sha256: None,
                keys: Some(&keys),
            };
            reader::verify(a, &opts, ctx.progress.as_ref())?
        };
        archives.push(verdict);
    }
    let ok = archives.iter().all(|v| v.ok);
    let report = VerifyReport { ok, quick: args.quick, archives };
    Ok(Outcome::new(if ok { 0 } else { 3 }, human(&report), &report))
}

fn human(r: &VerifyReport) -> String {
    let mut s: String = r.archives.iter().map(|v| render::verdict(v, r.quick)).collect::<Vec<_>>().join("\n");
    if r.archives.len() > 1 {
        let bad = r.archives.iter().filter(|v| !v.ok).count();
        let _ = writeln!(s, "\n{} of {} archive(s) passed", r.archives.len() - bad, r.archives.len());
    }
    s
}
