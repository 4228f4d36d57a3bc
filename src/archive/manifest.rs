//! `kfadmin-manifest.json`, the first entry of every archive.

use serde::{Deserialize, Serialize};

use crate::sqlite::salvage::TableCopy;
use crate::sqlite::DbFacts;

pub const MANIFEST_NAME: &str = "kfadmin-manifest.json";
pub const FORMAT: &str = "kfadmin-archive";
pub const FORMAT_VERSION: u32 = 1;
/// What any manifest may take, whatever it describes (the source, the database's facts).
pub const MANIFEST_BASE: u64 = 1 << 20;
/// What a manifest may take for each file it lists, besides six bytes for each byte of the
/// file's path (JSON's longest escape, `\u00XX`). A real entry takes about 230 bytes plus the
/// path.
pub const MANIFEST_PER_FILE: u64 = 512;
/// A manifest larger than this is refused unread, whatever it lists: it is read into memory
/// to be parsed. About 250,000 files.
pub const MANIFEST_MAX: u64 = 64 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    Online,
    Cold,
    PreRestore,
    /// Made by `kfadmin import` from a tarball made by hand.
    Imported,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Online => "online",
            Mode::Cold => "cold",
            Mode::PreRestore => "pre-restore",
            Mode::Imported => "imported",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Source {
    /// "path" for `--db`/`--data-dir`, "container" for `--container`.
    pub kind: String,
    /// The database path on the host kfadmin ran on.
    pub path: String,
    pub host: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<ContainerRef>,
    /// When the data directory spans several mounts (`-v kf:/data -v uploads:/data/uploads`):
    /// each of them, the data directory's own first. A file came from the mount with the
    /// longest `path` that is a prefix of its own.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mounts: Vec<SourceMount>,
}

/// One mount of a data directory that spans several.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceMount {
    /// Where its files are in the archive: `data`, `data/uploads`.
    pub path: String,
    /// "volume" or "bind".
    pub kind: String,
    /// The volume's name, or the bind mount's host path.
    pub source: String,
    /// Where it is mounted in the container.
    pub destination: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerRef {
    pub name: String,
    pub id: String,
    pub image: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    /// Path inside the archive, `data/…`.
    pub path: String,
    pub size: u64,
    pub sha256: String,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}

/// A directory of the data directory (`data` itself, or `data/…`), so that a restore can give
/// it back its owner and mode. Archives written before kfadmin 0.1 recorded directories have
/// none; a restore then creates directories 0700 and owned as the database.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirEntry {
    pub path: String,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: String,
    pub format_version: u32,
    pub kfadmin_version: String,
    /// RFC 3339, UTC, seconds.
    pub created: String,
    /// Seconds since the epoch, the same instant as `created`.
    pub created_unix: u64,
    pub mode: Mode,
    pub source: Source,
    pub files: Vec<FileEntry>,
    /// Directories, parents first (`data` itself first).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dirs: Vec<DirEntry>,
    pub database: DbFacts,
    /// Imported archives: where the data came from and what was done to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub import: Option<ImportRecord>,
    /// Pre-restore archives of a damaged database: what SQLite found. The data is kept as it
    /// was (the facts are what could be read, zero otherwise) and is not checked again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub damaged: Option<String>,
}

/// What `kfadmin import` records about the tarball an archive was made from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportRecord {
    /// The tarball as it was read.
    pub tarball: TarballRef,
    /// The database's path inside the tarball.
    pub database: String,
    /// Its directory inside the tarball, whose files became `data/…` ("" for the top).
    pub data_dir: String,
    /// What its `-wal` held, when the tarball had one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wal: Option<WalReplay>,
    /// A hot `-journal` was rolled back into the database.
    #[serde(default)]
    pub journal_rolled_back: bool,
    /// Entries of the tarball that are not in the archive (sidecars, files outside the data
    /// directory), at most [`LEFT_OUT_MAX`] of them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub left_out: Vec<String>,
    /// How many entries were left out in all.
    #[serde(default)]
    pub left_out_count: u64,
    /// The database failed its checks and the archive holds what could be salvaged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub salvaged: Option<Salvage>,
}

/// At most this many left-out entries (and problems) are named in a manifest.
pub const LEFT_OUT_MAX: usize = 50;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TarballRef {
    pub file_name: String,
    pub size: u64,
    pub sha256: String,
}

/// What replaying a captured `-wal` did: only complete, checksummed commit frames whose salt
/// matches the WAL header are folded in; the rest are dropped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WalReplay {
    /// Frames in the file (a torn last frame counts as one).
    pub frames: u64,
    /// Frames up to the last valid commit frame: folded into the database.
    pub folded: u64,
    /// Frames after that: torn, of an older generation, or of an uncommitted transaction.
    pub dropped: u64,
    /// Transactions (commit frames) folded.
    pub transactions: u64,
    /// Why the frames after the last folded one were dropped (empty when none were).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub dropped_because: String,
}

/// What `--salvage` got out of a database that failed its checks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Salvage {
    /// How: `row-copy` (every readable row copied into a new database, through SQLite).
    pub method: String,
    /// What was wrong with the database (the first of them).
    pub problems: Vec<String>,
    /// Rows per table: before (None when the damaged table could not be counted), read,
    /// unreadable, skipped (and why) and after.
    pub tables: std::collections::BTreeMap<String, TableCopy>,
    /// Why the tarball's `-wal` is not in the salvaged database (on request, or its frames
    /// are not this database file's); absent when it was replayed or there was none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wal_left_out: Option<String>,
    /// Pages referenced more than once (the first 50): no row was copied from them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cross_linked_pages: Vec<u32>,
}

impl Manifest {
    pub fn file(&self, path: &str) -> Option<&FileEntry> {
        self.files.iter().find(|f| f.path == path)
    }

    pub fn dir(&self, path: &str) -> Option<&DirEntry> {
        self.dirs.iter().find(|d| d.path == path)
    }

    /// The most bytes this manifest's JSON may take: a base, plus an allowance for each file
    /// it lists, never more than [`MANIFEST_MAX`]. The writer and every reader hold manifests
    /// to this same bound, so kfadmin never writes an archive it would refuse.
    pub fn size_limit(&self) -> u64 {
        let paths = self.files.iter().map(|f| &f.path).chain(self.dirs.iter().map(|d| &d.path));
        let entries: u64 = paths.map(|p| MANIFEST_PER_FILE.saturating_add(6 * p.len() as u64)).sum();
        MANIFEST_BASE.saturating_add(entries).min(MANIFEST_MAX)
    }

    /// Why the JSON of this manifest, `size` bytes, is refused (None when it is not).
    pub fn size_problem(&self, size: u64) -> Option<String> {
        let limit = self.size_limit();
        (size > limit).then(|| {
            format!(
                "{MANIFEST_NAME} is {size} bytes, more than the {limit} bytes allowed for a manifest of {} file(s)",
                self.files.len()
            )
        })
    }
}

/// Why a manifest of `size` bytes is refused before it is read (None when it may be read).
pub fn unread_size_problem(size: u64) -> Option<String> {
    (size > MANIFEST_MAX).then(|| {
        format!(
            "{MANIFEST_NAME} is {size} bytes, more than any manifest kfadmin reads ({MANIFEST_MAX} bytes)"
        )
    })
}

/// A manifest from its JSON, held to [`Manifest::size_limit`]; Err says why not.
pub fn parse(json: &[u8]) -> Result<Manifest, String> {
    if let Some(problem) = unread_size_problem(json.len() as u64) {
        return Err(problem);
    }
    let m: Manifest =
        serde_json::from_slice(json).map_err(|e| format!("{MANIFEST_NAME} cannot be parsed: {e}"))?;
    match m.size_problem(json.len() as u64) {
        Some(problem) => Err(problem),
        None => Ok(m),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub fn manifest(files: usize, host: &str) -> Manifest {
        Manifest {
            format: FORMAT.into(),
            format_version: FORMAT_VERSION,
            kfadmin_version: "0.1.0".into(),
            created: "2026-11-26T03:00:00Z".into(),
            created_unix: 1795662000,
            mode: Mode::Cold,
            source: Source {
                kind: "path".into(),
                path: "/srv/kf/keyfount.db".into(),
                host: host.into(),
                container: None,
                mounts: vec![],
            },
            files: (0..files)
                .map(|i| FileEntry {
                    path: if i == 0 {
                        "data/keyfount.db".into()
                    } else {
                        format!("data/attachments/{i:08}.bin")
                    },
                    size: u64::MAX,
                    sha256: "f".repeat(64),
                    mode: 0o100600,
                    uid: u32::MAX,
                    gid: u32::MAX,
                })
                .collect(),
            dirs: vec![],
            database: DbFacts {
                page_size: 4096,
                page_count: 1,
                journal_mode: crate::sqlite::Journal::Wal,
                user_version: 0,
                schema_version: None,
                tables: Default::default(),
            },
            import: None,
            damaged: None,
        }
    }

    #[test]
    fn the_bound_grows_with_the_files_and_holds_what_the_writer_writes() {
        for n in [1, 15_000, 100_000] {
            let m = manifest(n, "host");
            let json = serde_json::to_vec_pretty(&m).unwrap();
            assert!(json.len() as u64 > MANIFEST_BASE || n < 1000);
            assert_eq!(parse(&json).unwrap().files.len(), n);
        }
        // Padding is not described by anything.
        let mut json = serde_json::to_vec_pretty(&manifest(1, "host")).unwrap();
        json.extend(std::iter::repeat_n(b' ', 1 << 20));
        assert!(parse(&json).unwrap_err().contains("allowed for a manifest of 1 file(s)"));
        // Never past the hard cap, whatever it lists.
        let big = manifest(300_000, "host");
        assert_eq!(big.size_limit(), MANIFEST_MAX);
        assert!(unread_size_problem(MANIFEST_MAX + 1).is_some());
    }
}
