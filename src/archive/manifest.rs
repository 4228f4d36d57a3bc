//! `kfadmin-manifest.json`, the first entry of every archive.

use serde::{Deserialize, Serialize};

use crate::sqlite::DbFacts;

pub const MANIFEST_NAME: &str = "kfadmin-manifest.json";
pub const FORMAT: &str = "kfadmin-archive";
pub const FORMAT_VERSION: u32 = 1;
/// A manifest larger than this is refused unread: a real one is a few KiB.
pub const MANIFEST_MAX: u64 = 1 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    Online,
    Cold,
    PreRestore,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Online => "online",
            Mode::Cold => "cold",
            Mode::PreRestore => "pre-restore",
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
}

impl Manifest {
    pub fn file(&self, path: &str) -> Option<&FileEntry> {
        self.files.iter().find(|f| f.path == path)
    }

    pub fn dir(&self, path: &str) -> Option<&DirEntry> {
        self.dirs.iter().find(|d| d.path == path)
    }
}
