//! One error type for the whole tool: what failed, what the operator can do about it, and the
//! exit code that tells a script the verdict.

use std::fmt;
use std::path::Path;
use std::process::ExitCode;

/// The exit codes of the command contract (see `docs/exit-codes.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// 1: the operation failed; nothing half-done was left behind.
    Failed,
    /// 2: usage or bad input (a path, an archive name, a database that is not SQLite, ...).
    Usage,
    /// 3: a backup failed verification.
    Verification,
    /// 4: a container could not be brought back to the state it was in.
    ContainerState,
    /// 130: interrupted by Ctrl-C or SIGTERM; cleaned up.
    Interrupted,
}

impl Kind {
    pub fn code(self) -> u8 {
        match self {
            Kind::Failed => 1,
            Kind::Usage => 2,
            Kind::Verification => 3,
            Kind::ContainerState => 4,
            Kind::Interrupted => 130,
        }
    }
}

impl From<Kind> for ExitCode {
    fn from(k: Kind) -> ExitCode {
        ExitCode::from(k.code())
    }
}

#[derive(Debug)]
pub struct Error {
    pub kind: Kind,
    pub message: String,
    pub hint: Option<String>,
    pub source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn new(kind: Kind, message: impl Into<String>) -> Self {
        Error { kind, message: message.into(), hint: None, source: None }
    }
    pub fn failed(message: impl Into<String>) -> Self {
        Self::new(Kind::Failed, message)
    }
    pub fn usage(message: impl Into<String>) -> Self {
        Self::new(Kind::Usage, message)
    }
    pub fn verification(message: impl Into<String>) -> Self {
        Self::new(Kind::Verification, message)
    }
    pub fn interrupted() -> Self {
        Self::new(Kind::Interrupted, "interrupted; everything this run had started was cleaned up")
    }
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
    pub fn kind(mut self, kind: Kind) -> Self {
        self.kind = kind;
        self
    }
    pub fn source(mut self, e: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Box::new(e));
        self
    }

    /// The error and its causes, `: `-joined, the way `{:#}` prints an anyhow chain.
    pub fn chain(&self) -> String {
        let mut s = self.message.clone();
        let mut cur: Option<&(dyn std::error::Error + 'static)> =
            self.source.as_deref().map(|e| e as &(dyn std::error::Error + 'static));
        while let Some(e) = cur {
            let text = e.to_string();
            if !s.ends_with(&text) {
                s.push_str(": ");
                s.push_str(&text);
            }
            cur = e.source();
        }
        s
    }

    /// An I/O error on `path`, with a hint chosen by what went wrong.
    pub fn io(what: &str, path: &Path, e: std::io::Error) -> Self {
        use std::io::ErrorKind as K;
        let hint = match (e.kind(), e.raw_os_error()) {
            (K::StorageFull | K::QuotaExceeded, _) | (_, Some(libc::ENOSPC | libc::EDQUOT)) => Some(format!(
                "the disk is full: free some space on the filesystem that holds {}, or choose another directory",
                path.display()
            )),
            (K::PermissionDenied, _) => {
                Some("run kfadmin as a user that may read and write there (usually root), or choose another path".to_string())
            }
            (K::ReadOnlyFilesystem, _) => Some("that filesystem is mounted read-only; choose another path".to_string()),
            _ => None,
        };
        let kind = if e.kind() == std::io::ErrorKind::Interrupted { Kind::Interrupted } else { Kind::Failed };
        let mut err = Error::new(kind, format!("{what} {}", path.display())).source(e);
        err.hint = hint;
        err
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if f.alternate() {
            f.write_str(&self.chain())
        } else {
            f.write_str(&self.message)
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_deref().map(|e| e as &(dyn std::error::Error + 'static))
    }
}

/// `.ctx("reading", path)?` on any I/O result.
pub trait IoContext<T> {
    fn ctx(self, what: &str, path: &Path) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn ctx(self, what: &str, path: &Path) -> Result<T> {
        self.map_err(|e| Error::io(what, path, e))
    }
}

impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Self {
        Error::failed("SQLite error").source(e)
    }
}

/// Ctrl-C and SIGTERM set a flag; long loops call [`check_interrupt`] and unwind, so every
/// guard on the way out (partial files, staging directories, containers) does its cleanup.
pub mod interrupt {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use std::sync::OnceLock;

    static FLAG: OnceLock<Arc<AtomicBool>> = OnceLock::new();

    fn flag() -> &'static Arc<AtomicBool> {
        FLAG.get_or_init(|| Arc::new(AtomicBool::new(false)))
    }

    /// Install the handlers (SIGINT, SIGTERM, SIGHUP). Idempotent.
    pub fn install() {
        for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM, signal_hook::consts::SIGHUP] {
            let _ = signal_hook::flag::register(sig, Arc::clone(flag()));
        }
    }

    pub fn requested() -> bool {
        flag().load(Ordering::SeqCst)
    }
}

pub fn check_interrupt() -> Result<()> {
    if interrupt::requested() {
        Err(Error::interrupted())
    } else {
        Ok(())
    }
}
