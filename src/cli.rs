//! The command line: clap derive, shared flag groups flattened into each subcommand.

use std::path::PathBuf;

use clap::{ArgAction, Args, Parser, Subcommand, ValueEnum};

const ABOUT: &str = "Back up, verify and restore a self-hosted Keyfount sync server";

const LONG_ABOUT: &str = "\
kfadmin backs up, verifies and restores the data of a self-hosted Keyfount sync server: one
SQLite database in WAL mode (keyfount.db) that holds every user's synced vault metadata and the
server's own long-term keys.

An online backup takes a consistent snapshot while the server keeps serving. Every archive is
a .tar.gz with a manifest and a .sha256 sidecar, is checked before it gets its final name, and
is readable by the operator only (mode 0600).";

const EXAMPLES: &str = "\
Examples:
  Take an online backup while the server runs:
    kfadmin backup --online --db /srv/keyfount/data/keyfount.db --repo /var/backups/keyfount

  Check a backup completely (checksums, gzip, tar, SQLite integrity):
    kfadmin verify /var/backups/keyfount/keyfount-20261126T030000Z-online.tar.gz

  Restore it into a data directory (the server must be stopped):
    kfadmin restore /var/backups/keyfount/keyfount-20261126T030000Z-online.tar.gz --data-dir /srv/keyfount/data

Exit codes: 0 success, 1 failed (nothing half-done left), 2 usage or bad input,
3 a backup failed verification (or a drill on it did not come up), 4 a container was not
brought back, 130 interrupted.";

#[derive(Debug, Parser)]
#[command(name = "kfadmin", version, about = ABOUT, long_about = LONG_ABOUT, after_help = EXAMPLES)]
#[command(propagate_version = true, max_term_width = 100)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// Output flags every subcommand takes.
#[derive(Debug, Args, Clone)]
pub struct Global {
    /// Print exactly one JSON object on stdout at the end, and nothing else there
    #[arg(long, global = true, env = "KFADMIN_JSON", value_parser = clap::builder::BoolishValueParser::new())]
    pub json: bool,
    /// Print only errors and warnings (and the JSON report with --json)
    #[arg(short, long, global = true, env = "KFADMIN_QUIET", value_parser = clap::builder::BoolishValueParser::new())]
    pub quiet: bool,
    /// Never draw progress bars (they are only drawn when stderr is a terminal anyway)
    #[arg(long, global = true, env = "KFADMIN_NO_PROGRESS", value_parser = clap::builder::BoolishValueParser::new())]
    pub no_progress: bool,
    /// Say more about each step (repeat for more)
    #[arg(short, long, global = true, action = ArgAction::Count, env = "KFADMIN_VERBOSE")]
    pub verbose: u8,
    /// How long to wait for another kfadmin run working on the same backup directory, data
    /// directory or container (e.g. 30s, 10m; 0: do not wait), then fail naming its pid
    #[arg(long, global = true, value_name = "DURATION", env = "KFADMIN_LOCK_WAIT", default_value = "5m", value_parser = parse_duration)]
    pub lock_wait: std::time::Duration,
    /// The passphrase is the first line of FILE (mode 0600, owned by root or you): to encrypt
    /// with --passphrase, and to open passphrase-encrypted archives, without a terminal. The way
    /// a configuration file names it (it never holds the secret itself)
    #[arg(long, global = true, value_name = "FILE", env = "KFADMIN_PASSPHRASE_FILE")]
    pub passphrase_file: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    Backup(BackupArgs),
    Verify(VerifyArgs),
    Restore(RestoreArgs),
    List(ListArgs),
    Prune(PruneArgs),
    Status(StatusArgs),
    Drill(DrillArgs),
    Import(ImportArgs),
    Config(ConfigArgs),
    Schedule(ScheduleArgs),
    Replicate(ReplicateArgs),
    Completions(CompletionsArgs),
    /// Write the man pages (kfadmin.1 and one per subcommand) into a directory
    #[command(hide = true)]
    Manpages(ManpagesArgs),
}

/// Take a consistent, checksummed, verified backup
///
/// --online copies the database through SQLite's online backup API while the server keeps
/// writing: one read transaction is held for the whole copy, so it never restarts and never
/// blocks the server (in WAL mode), and kfadmin never checkpoints the live database.
///
/// --cold stops the container gracefully (SIGTERM, then its stop timeout), folds any WAL
/// frames an unclean stop left into the database, copies the data directory aside, starts the
/// container again at once, and only then compresses and verifies. The container is started
/// again on every way out; the downtime is measured and reported.
///
/// The archive is written as <name>-<UTC time>-<mode>.tar.gz (mode 0600, its directory 0700)
/// with a .sha256 sidecar. It is checked before it gets its final name: a file with a final
/// name is always complete.
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  kfadmin backup --online --container keyfount --repo /var/backups/keyfount
  kfadmin backup --online --db /srv/keyfount/data/keyfount.db --repo /var/backups/keyfount
  kfadmin backup --cold --container keyfount --repo /var/backups/keyfount
  kfadmin backup --online --container keyfount --json | jq -r .archive
  kfadmin backup --online --container keyfount --recipients-file /etc/kfadmin/recipients.txt
  kfadmin backup --online --container keyfount --recipients-file /etc/kfadmin/recipients.txt --to s3://kf-backups/host1

From cron, every night at 03:00 (by its absolute path; kfadmin schedule writes this):
  0 3 * * *  root  /usr/local/bin/kfadmin backup --online --container keyfount --repo /var/backups/keyfount --quiet")]
#[command(group(clap::ArgGroup::new("how").required(true).args(["online", "cold"])))]
pub struct BackupArgs {
    /// Copy the database while the server keeps running (SQLite online backup API)
    #[arg(long, env = "KFADMIN_ONLINE", value_parser = clap::builder::BoolishValueParser::new())]
    pub online: bool,
    /// Stop the container, copy its data directory, start it again (needs --container)
    #[arg(long, env = "KFADMIN_COLD", value_parser = clap::builder::BoolishValueParser::new())]
    pub cold: bool,
    #[command(flatten)]
    pub target: TargetArgs,
    /// How long between SIGTERM and SIGKILL when stopping (e.g. 30, 30s, 2m) [default: the container's own stop timeout, or 10]
    #[arg(long, value_name = "DURATION", env = "KFADMIN_STOP_TIMEOUT", value_parser = parse_secs)]
    pub stop_timeout: Option<u32>,
    #[command(flatten)]
    pub output: OutputArgs,
    #[command(flatten)]
    pub encrypt: EncryptArgs,
    #[command(flatten)]
    pub offsite: OffsiteArgs,
    #[command(flatten)]
    pub monitor: MonitorArgs,
    /// Check everything a backup checks first (the database or container, the name, the
    /// encryption, the offsite locations) and say what would be done; write, lock, stop and ping
    /// nothing
    #[arg(long, env = "KFADMIN_BACKUP_DRY_RUN", value_parser = clap::builder::BoolishValueParser::new())]
    pub dry_run: bool,
}

/// Offsite copies: after the local archive is written and verified, it is uploaded too.
#[derive(Debug, Args, Clone, Default)]
pub struct OffsiteArgs {
    /// Also upload the verified archive and its .sha256 to s3://BUCKET[/PREFIX] (repeatable;
    /// KFADMIN_TO takes several, separated by spaces). Credentials, region and endpoint as the
    /// AWS CLI reads them (AWS_ACCESS_KEY_ID…, AWS_PROFILE, AWS_REGION, AWS_ENDPOINT_URL),
    /// checked before the snapshot. Parts of 5 MiB, six at a time; a transfer fails only when no
    /// byte moved for KFADMIN_OFFSITE_IDLE (60s), never for being slow
    #[arg(long = "to", value_name = "URL", env = "KFADMIN_TO", value_delimiter = ' ')]
    pub to: Vec<String>,
    /// Allow --to without encryption: the database holds the server's long-term keys, so a
    /// plaintext archive is refused offsite unless this is given
    #[arg(long, env = "KFADMIN_PLAINTEXT_OFFSITE", value_parser = clap::builder::BoolishValueParser::new())]
    pub plaintext_offsite: bool,
    /// After each upload, read the whole object back and check its sha256 (besides its size
    /// and its sidecar, always checked); a read-back that fails keeps the copy, unchecked
    #[arg(long, env = "KFADMIN_VERIFY_OFFSITE", value_parser = clap::builder::BoolishValueParser::new())]
    pub verify_offsite: bool,
}

/// The default repository: where archives are written and read.
pub const DEFAULT_REPO: &str = "/var/backups/keyfount";

/// The repository of a command that reads archives: a backup directory or an S3 location.
#[derive(Debug, Args, Clone, Default)]
pub struct RepoArgs {
    /// The repository: a backup directory or s3://BUCKET[/PREFIX] [default: /var/backups/keyfount]
    #[arg(
        long = "repo",
        short = 'r',
        alias = "out",
        short_alias = 'o',
        value_name = "LOCATION",
        env = "KFADMIN_REPO"
    )]
    pub repo: Option<PathBuf>,
}

impl RepoArgs {
    /// The positional LOCATION (the old spelling), else `--repo`, else the default; both given
    /// and different is a usage error.
    pub fn location(&self, positional: Option<&PathBuf>) -> crate::Result<PathBuf> {
        match (positional, &self.repo) {
            (Some(p), Some(r))
                if p != r && std::env::var_os("KFADMIN_REPO").as_deref() != Some(r.as_os_str()) =>
            {
                Err(crate::Error::usage(format!(
                    "two locations given: {} and --repo {}",
                    p.display(),
                    r.display()
                ))
                .hint("give one: LOCATION or -r/--repo"))
            }
            (Some(p), _) => Ok(p.clone()),
            (None, Some(r)) => Ok(r.clone()),
            (None, None) => Ok(PathBuf::from(DEFAULT_REPO)),
        }
    }
}

/// Encrypting the archive with age, so the machine that stores it cannot read it.
#[derive(Debug, Args, Clone, Default)]
pub struct EncryptArgs {
    /// Encrypt to this recipient: an age key (age1…) or an SSH public key (ssh-ed25519 …, ssh-rsa …); repeatable
    #[arg(long, value_name = "RECIPIENT", env = "KFADMIN_ENCRYPT_TO", value_delimiter = ',')]
    pub encrypt_to: Vec<String>,
    /// Encrypt to every recipient listed in FILE (one a line, # comments)
    #[arg(long, value_name = "FILE", env = "KFADMIN_RECIPIENTS_FILE")]
    pub recipients_file: Option<PathBuf>,
    /// Encrypt with a passphrase: asked twice on the terminal, or read from KFADMIN_PASSPHRASE or
    /// --passphrase-file
    #[arg(long, env = "KFADMIN_USE_PASSPHRASE", conflicts_with_all = ["encrypt_to", "recipients_file"], value_parser = clap::builder::BoolishValueParser::new())]
    pub passphrase: bool,
}

/// Decrypting encrypted archives.
#[derive(Debug, Args, Clone, Default)]
pub struct DecryptArgs {
    /// An age identity file or an unencrypted SSH private key to decrypt with; repeatable. Without
    /// one, a passphrase-encrypted archive asks for its passphrase (or reads KFADMIN_PASSPHRASE)
    #[arg(long, short = 'i', value_name = "FILE", env = "KFADMIN_IDENTITY_FILE", value_delimiter = ',')]
    pub identity: Vec<PathBuf>,
}

/// Telling a monitor how the backup went.
#[derive(Debug, Args, Clone, Default)]
pub struct MonitorArgs {
    /// Write Prometheus textfile-collector metrics here (atomically), success or failure
    #[arg(long, value_name = "PATH", env = "KFADMIN_METRICS_FILE")]
    pub metrics_file: Option<PathBuf>,
    /// Ping this URL healthchecks.io-style: URL/start before, URL on success, URL/fail on failure
    #[arg(long, value_name = "URL", env = "KFADMIN_PING_URL", value_parser = parse_ping_url)]
    pub ping_url: Option<String>,
}

/// Which Keyfount: a database file on this host, or a container.
#[derive(Debug, Args, Clone)]
#[command(group(clap::ArgGroup::new("target").required(true).args(["db", "container"])))]
pub struct TargetArgs {
    /// The Keyfount database file on this host
    #[arg(long, value_name = "PATH", env = "KFADMIN_DB")]
    pub db: Option<PathBuf>,
    #[command(flatten)]
    pub docker: ContainerArgs,
}

/// A Keyfount container and where its database is inside it.
#[derive(Debug, Args, Clone)]
pub struct ContainerArgs {
    /// The Keyfount container: a name, an id, or a Compose service name
    #[arg(long, short = 'c', value_name = "NAME", env = "KFADMIN_CONTAINER")]
    pub container: Option<String>,
    /// With --container: the Compose project, when several projects have that service
    #[arg(long, value_name = "PROJECT", env = "KFADMIN_COMPOSE_PROJECT", requires = "container")]
    pub compose_project: Option<String>,
    /// With --container: the database's path inside the container
    #[arg(long, value_name = "PATH", env = "KFADMIN_DB_PATH", default_value = "/data/keyfount.db")]
    pub db_path: PathBuf,
}

/// Where and how archives are written.
#[derive(Debug, Args, Clone)]
pub struct OutputArgs {
    /// The repository: the directory the archive is written to (created with mode 0700 when
    /// missing); KFADMIN_BACKUP_DIR, its old variable, still works
    #[arg(
        long = "repo",
        short = 'r',
        alias = "out",
        short_alias = 'o',
        value_name = "DIR",
        env = "KFADMIN_REPO",
        default_value = DEFAULT_REPO
    )]
    pub out: PathBuf,
    /// First part of the archive's name [default: the container's name, or the database file's name without .db; import: the tarball's name without .tar.gz]
    #[arg(long, value_name = "NAME", env = "KFADMIN_NAME")]
    pub name: Option<String>,
    /// CPU priority (nice) for checking, compressing and verifying, after the snapshot is taken
    /// or the container runs again: the server keeps its speed; 0 keeps kfadmin's own priority
    #[arg(long, value_name = "N", default_value_t = 10, value_parser = clap::value_parser!(u8).range(0..=19), env = "KFADMIN_NICE")]
    pub nice: u8,
    /// Where kfadmin keeps its private copy of the data while it archives it (created 0700, emptied
    /// when kfadmin ends) [default: the state directory's staging/, /var/lib/kfadmin/staging]
    #[arg(long, value_name = "DIR", env = "KFADMIN_TMPDIR")]
    pub tmp_dir: Option<PathBuf>,
    /// gzip level, 1 (fastest) to 9 (smallest); Keyfount's vaults are encrypted and barely compress
    #[arg(long, value_name = "N", default_value_t = 6, value_parser = clap::value_parser!(u32).range(1..=9), env = "KFADMIN_COMPRESSION_LEVEL")]
    pub compression_level: u32,
}

/// Check archives: checksums, gzip, tar, manifest, SQLite integrity
///
/// Checks, in this order, each reported by name: the .sha256 sidecar (when present), the
/// gzip stream, the tar entries (only regular files and directories under data/, no absolute
/// path, no `..`, no links or devices, no duplicates), the manifest, every file's size and
/// sha256, then PRAGMA integrity_check and foreign_key_check on the database and its facts
/// against the manifest. Exit code 0 when every archive passes, 3 when any is damaged, 2 when
/// an encrypted one cannot be opened with the keys given (pass --identity: not a damaged archive).
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  kfadmin verify /var/backups/keyfount/keyfount-20261126T030000Z-online.tar.gz
  kfadmin verify --quick /var/backups/keyfount/*.tar.gz
  kfadmin verify s3://kf-backups/host1/keyfount-20261126T030000Z-online.tar.gz.age -i /root/kfadmin.key
  kfadmin verify --json backup.tar.gz | jq '.archives[].checks[] | select(.status == \"fail\")'")]
pub struct VerifyArgs {
    /// The archives to check: files, names in the repository as `kfadmin list` prints them,
    /// `latest`, or s3://BUCKET/PREFIX/NAME URLs (downloaded into a private directory and checked
    /// there) [default: every archive in the repository]. .sha256 sidecars are skipped
    #[arg(value_name = "ARCHIVE")]
    pub archives: Vec<PathBuf>,
    #[command(flatten)]
    pub repo: RepoArgs,
    /// Stop before the SQLite checks (no need to unpack the database)
    #[arg(long, env = "KFADMIN_QUICK", value_parser = clap::builder::BoolishValueParser::new())]
    pub quick: bool,
    /// Where to unpack the database for the SQLite checks (a private directory is made there)
    #[arg(long, value_name = "DIR", env = "KFADMIN_TMPDIR")]
    pub tmp_dir: Option<PathBuf>,
    #[command(flatten)]
    pub decrypt: DecryptArgs,
}

/// Restore a backup into a container or a data directory
///
/// Verifies the archive in full first and refuses one that fails, shows the plan and asks for
/// confirmation (or takes --yes).
///
/// With --container: stops the container, keeps the current data as a pre-restore cold
/// archive in the backup directory, swaps the restored files in with an atomic rename, removes
/// stale keyfount.db-wal and -shm, gives the files the owner and mode of the current database
/// (Keyfount's image runs as uid 1000), starts the container and waits until it stays up (or
/// is healthy, when it has a healthcheck). If it does not come up, the previous data is put
/// back and the container started again (unless --no-rollback).
///
/// With --data-dir: refuses while the database is open in another process (stop the server
/// first); the current files are kept in a .kfadmin-pre-restore-<time> directory inside it.
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  kfadmin restore /var/backups/keyfount/keyfount-20261126T030000Z-online.tar.gz --container keyfount --dry-run
  kfadmin restore /var/backups/keyfount/keyfount-20261126T030000Z-online.tar.gz --container keyfount
  kfadmin restore /var/backups/keyfount/keyfount-20261126T030000Z-online.tar.gz --data-dir /srv/keyfount/data --yes
  kfadmin restore --at 2026-12-04T15:30:05Z -r /var/backups/keyfount --data-dir /srv/keyfount/data --yes")]
#[command(group(clap::ArgGroup::new("target").required(true).args(["data_dir", "container"])))]
pub struct RestoreArgs {
    /// The archive to restore: a file, or an s3://BUCKET/PREFIX/NAME URL (downloaded into a
    /// private directory and verified in full before anything is touched)
    #[arg(
        value_name = "ARCHIVE",
        required = false,
        required_unless_present = "at",
        default_value_if("at", clap::builder::ArgPredicate::IsPresent, Some(POINT_IN_TIME))
    )]
    pub archive: PathBuf,
    /// Restore the database as of TIME from the repository's point-in-time chain (kfadmin
    /// replicate): RFC 3339 UTC (2026-12-04T15:30:05Z), `now`, or a time ago (-10m). The state
    /// of the last transaction seen committed at or before TIME, rebuilt and checked against
    /// the checksum recorded for that point and integrity_check before anything is touched
    #[arg(
        long,
        value_name = "TIME",
        env = "KFADMIN_RESTORE_AT",
        conflicts_with = "archive",
        allow_hyphen_values = true
    )]
    pub at: Option<String>,
    /// With --at: the chain to take the point from (`kfadmin list -r REPO` names them). Needed
    /// only when the repository holds chains of several databases and none is of the target
    #[arg(long, value_name = "NAME", requires = "at", env = "KFADMIN_RESTORE_CHAIN")]
    pub chain: Option<String>,
    /// Keyfount's data directory on this host (the one that holds keyfount.db)
    #[arg(long, value_name = "DIR", env = "KFADMIN_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    #[command(flatten)]
    pub docker: ContainerArgs,
    /// With --container: encrypt the pre-restore safety archive to this recipient (age1…, ssh-…); repeatable
    #[arg(long, value_name = "RECIPIENT", env = "KFADMIN_ENCRYPT_TO", value_delimiter = ',')]
    pub encrypt_to: Vec<String>,
    /// With --container: encrypt the pre-restore safety archive to every recipient in FILE
    #[arg(long, value_name = "FILE", env = "KFADMIN_RECIPIENTS_FILE")]
    pub recipients_file: Option<PathBuf>,
    /// With --container: the repository (a directory) the pre-restore safety archive goes to
    #[arg(
        long = "repo",
        short = 'r',
        alias = "out",
        short_alias = 'o',
        value_name = "DIR",
        env = "KFADMIN_REPO",
        default_value = DEFAULT_REPO
    )]
    pub out: PathBuf,
    /// Where kfadmin unpacks and checks the backup before it swaps it in (created 0700, emptied
    /// when kfadmin ends) [default: the state directory's staging/, /var/lib/kfadmin/staging]
    #[arg(long, value_name = "DIR", env = "KFADMIN_TMPDIR")]
    pub tmp_dir: Option<PathBuf>,
    /// How long between SIGTERM and SIGKILL when stopping (e.g. 30, 30s, 2m) [default: the container's own stop timeout, or 10]
    #[arg(long, value_name = "DURATION", env = "KFADMIN_STOP_TIMEOUT", value_parser = parse_secs)]
    pub stop_timeout: Option<u32>,
    /// How long the container must stay running to count as up (without a healthcheck)
    #[arg(long, value_name = "DURATION", default_value = "5s", env = "KFADMIN_SETTLE", value_parser = parse_secs)]
    pub settle: u32,
    /// How long to wait for a healthcheck to report healthy [default: what the container's healthcheck needs for a verdict: start period + retries × (interval + timeout) + one interval + 10 s]
    #[arg(long, value_name = "DURATION", env = "KFADMIN_HEALTH_TIMEOUT", value_parser = parse_secs)]
    pub health_timeout: Option<u32>,
    /// Keep the restored data even if the container does not come up on it
    #[arg(long, env = "KFADMIN_NO_ROLLBACK", value_parser = clap::builder::BoolishValueParser::new())]
    pub no_rollback: bool,
    /// Restore even when the plan warns that the archive may be the wrong one (another
    /// container's or path's, no Keyfount schema, less than half the size of the current
    /// database, older than the newest backup of the target in the repository or beside it);
    /// needed with --yes, where there is no second question to answer
    #[arg(long, env = "KFADMIN_FORCE", value_parser = clap::builder::BoolishValueParser::new())]
    pub force: bool,
    #[command(flatten)]
    pub decrypt: DecryptArgs,
    #[command(flatten)]
    pub confirm: ConfirmArgs,
}

/// Ship every commit of a live database into a point-in-time chain, until SIGTERM/SIGINT
///
/// Starts a chain in REPO/pitr/ (a base: an ordinary verified archive of the live database,
/// taken while the server runs) or resumes this database's newest chain exactly where it
/// stopped, then reads the database's -wal every --interval and writes each batch of newly
/// committed transactions as a segment (fsynced before the next read): every commit is durable
/// in the repository within about a second. It never writes to the database or changes its
/// settings, and holds a read transaction only while it copies new frames, so the server's own
/// checkpoints keep working. Frames lost to a checkpoint while it was not reading (it was down)
/// are repaired by shipping the pages that differ, and the gap is recorded. Restore a point
/// with `kfadmin restore --at TIME`. Exit 0 after a final read on SIGTERM/SIGINT.
///
/// With --container, the database is found as `backup --online --container` finds it and its
/// files are read on this host. The container may be restarted (a gap, repaired exactly) or
/// recreated on the same data (the same database: followed on); when it cannot be found it is
/// looked for again, with a notice, and when it now keeps its database elsewhere replicate
/// stops (exit 1) rather than follow a different database. A data directory on a filesystem
/// whose shared memory is not coherent between the server and kfadmin (FUSE and virtiofs, 9p,
/// NFS, SMB/CIFS, Ceph and other network or cluster filesystems, VirtualBox shares) is refused.
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  kfadmin replicate --db /srv/keyfount/data/keyfount.db -r /var/backups/keyfount
  kfadmin replicate --container keyfount -r /var/backups/keyfount
  kfadmin restore --at 2026-12-04T15:30:05Z -r /var/backups/keyfount --data-dir /srv/keyfount/data")]
#[command(group(clap::ArgGroup::new("source").required(true).args(["db", "container"])))]
pub struct ReplicateArgs {
    /// The Keyfount database file on this host
    #[arg(long, value_name = "PATH", env = "KFADMIN_DB")]
    pub db: Option<PathBuf>,
    // --container: its data volume or bind mount is followed on this host (the container may
    // restart or be recreated on the same data meanwhile).
    #[command(flatten)]
    pub docker: ContainerArgs,
    #[command(flatten)]
    pub repo: RepoArgs,
    /// How often the WAL is read (at most 500ms: every commit must be durable within a second)
    #[arg(long, value_name = "DURATION", env = "KFADMIN_REPLICATE_INTERVAL", default_value = "200ms", value_parser = parse_interval)]
    pub interval: std::time::Duration,
    /// Where the base is staged before it is archived (a private directory is made there)
    #[arg(long, value_name = "DIR", env = "KFADMIN_TMPDIR")]
    pub tmp_dir: Option<PathBuf>,
    /// Stop (as on SIGTERM) after this long (tests and benchmarks)
    #[arg(long, value_name = "DURATION", env = "KFADMIN_REPLICATE_DURATION", hide = true, value_parser = parse_duration)]
    pub duration: Option<std::time::Duration>,
    /// Write Prometheus textfile-collector metrics of the replication here (lag, what was shipped), every 2 seconds and at exit, atomically
    #[arg(long, value_name = "PATH", env = "KFADMIN_METRICS_FILE")]
    pub metrics_file: Option<PathBuf>,
    /// Ping URL/fail (healthchecks.io-style) when replicate exits with an error
    #[arg(long, value_name = "URL", env = "KFADMIN_REPLICATE_PING_URL", value_parser = parse_ping_url)]
    pub ping_url: Option<String>,
    /// Compact the chain in the background this often (as `prune` does; 0s: never)
    #[arg(long, value_name = "DURATION", env = "KFADMIN_COMPACT_EVERY", default_value = "10m", value_parser = humantime::parse_duration)]
    pub compact_every: std::time::Duration,
    /// Compaction keeps every commit younger than this; older ones become one point per minute
    #[arg(long, value_name = "DURATION", env = "KFADMIN_KEEP_COMMITS_WITHIN", default_value = "1h", value_parser = humantime::parse_duration)]
    pub keep_commits_within: std::time::Duration,
    /// Compaction keeps one point per minute up to this age, one per hour after it
    #[arg(long, value_name = "DURATION", env = "KFADMIN_KEEP_MINUTELY_WITHIN", default_value = "1d", value_parser = humantime::parse_duration)]
    pub keep_minutely_within: std::time::Duration,
    /// Start a new chain on a new base (a verified online backup) this often (0s: never)
    #[arg(long, value_name = "DURATION", env = "KFADMIN_NEW_BASE_EVERY", default_value = "1d", value_parser = humantime::parse_duration)]
    pub new_base_every: std::time::Duration,
}

fn parse_interval(s: &str) -> Result<std::time::Duration, String> {
    let d = humantime::parse_duration(s.trim()).map_err(|e| e.to_string())?;
    if d.is_zero() || d > std::time::Duration::from_millis(500) {
        return Err("the interval must be more than 0 and at most 500ms".into());
    }
    Ok(d)
}

/// What `archive` holds when `--at` is given (the point is rebuilt into an archive first).
pub const POINT_IN_TIME: &str = "@point-in-time";

/// Prove that a backup brings the server back: boot a throwaway copy of the container on it
///
/// Verifies the archive in full (without ARCHIVE: the newest backup of the container in the
/// repository that verifies; a remote one is downloaded to a private directory first), then starts a copy of the live container (same image id,
/// entrypoint, command, user, environment, working directory and healthcheck) with the
/// restored data in a new volume at the same path, owned as the archive records, and nothing
/// else: no other mount, no published port, --network none, no restart policy. The live
/// container is never stopped, paused or touched, and its volume is never mounted.
///
/// The drill passes when the server comes up on the backup (healthy, with a healthcheck;
/// otherwise running, unrestarted, for --settle seconds), had the database open, and left it
/// whole after a graceful stop, with every table of the backup still there and none emptied or
/// down to under half its rows (a server on other data than the backup's fails). The copy and its volume are removed on every way out; a
/// killed drill's are removed by the next kfadmin command with --container.
///
/// Exit codes: 0 passed, 3 the server did not come up on this backup (or it fails
/// verification), 1 the drill could not run (image gone, engine error), 2 usage, or the
/// newest backup is encrypted and the keys given cannot open it (never an older one instead).
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  kfadmin drill --container keyfount
  kfadmin drill /var/backups/keyfount/keyfount-20261126T030000Z-online.tar.gz --container keyfount
  kfadmin drill --container keyfount --repo s3://backups/keyfount/host1
  kfadmin drill --at 2026-12-04T15:30:05Z -r /var/backups/keyfount
  kfadmin drill --container keyfount --json | jq '{passed, reason, logs}'")]
#[command(group(clap::ArgGroup::new("target").required(true).multiple(true).args(["container", "at"])))]
pub struct DrillArgs {
    /// The archive to drill: a file, or s3://BUCKET/PREFIX/NAME.tar.gz[.age] [default: the newest
    /// backup of the container in the repository that verifies]
    #[arg(value_name = "ARCHIVE")]
    pub archive: Option<PathBuf>,
    /// Drill the database as of TIME, rebuilt from the repository's point-in-time chain (kfadmin
    /// replicate) and checked against that point's checksum and integrity_check: RFC 3339 UTC
    /// (2026-12-04T15:30:05Z), `now`, or a time ago (-10m). Without --container, the container
    /// the chain was replicated from
    #[arg(
        long,
        value_name = "TIME",
        env = "KFADMIN_DRILL_AT",
        conflicts_with = "archive",
        allow_hyphen_values = true
    )]
    pub at: Option<String>,
    /// With --at: the chain to take the point from (`kfadmin list -r REPO` names them). Needed
    /// only when the repository holds chains of several databases and none is of --container
    #[arg(long, value_name = "NAME", requires = "at", env = "KFADMIN_DRILL_CHAIN")]
    pub chain: Option<String>,
    #[command(flatten)]
    pub docker: ContainerArgs,
    /// The repository to take the newest backup from: a backup directory or
    /// s3://BUCKET[/PREFIX]
    #[arg(
        long = "repo",
        short = 'r',
        alias = "out",
        short_alias = 'o',
        value_name = "LOCATION",
        env = "KFADMIN_REPO",
        default_value = DEFAULT_REPO
    )]
    pub out: PathBuf,
    /// How long the copy must stay running to count as up (without a healthcheck)
    #[arg(long, value_name = "DURATION", default_value = "10s", env = "KFADMIN_SETTLE", value_parser = parse_secs)]
    pub settle: u32,
    /// How long to wait for the copy's healthcheck to report healthy [default: what the healthcheck needs for a verdict: start period + retries × (interval + timeout) + one interval + 10 s]
    #[arg(long, value_name = "DURATION", env = "KFADMIN_HEALTH_TIMEOUT", value_parser = parse_secs)]
    pub health_timeout: Option<u32>,
    /// Where kfadmin unpacks and checks the backup (created 0700, emptied when kfadmin ends)
    /// [default: the state directory's staging/, /var/lib/kfadmin/staging]
    #[arg(long, value_name = "DIR", env = "KFADMIN_TMPDIR")]
    pub tmp_dir: Option<PathBuf>,
    /// Drill the newest backup of this name, as backup --name wrote it [default: the container's name]
    #[arg(long, value_name = "NAME", env = "KFADMIN_NAME")]
    pub name: Option<String>,
    #[command(flatten)]
    pub decrypt: DecryptArgs,
    #[command(flatten)]
    pub monitor: MonitorArgs,
    /// Find the container, check its image, and name the archives the drill would verify and
    /// boot a copy on; verify, create, lock and ping nothing
    #[arg(long, env = "KFADMIN_DRILL_DRY_RUN", value_parser = clap::builder::BoolishValueParser::new())]
    pub dry_run: bool,
}

/// Confirmation for commands that replace data.
#[derive(Debug, Args, Clone)]
pub struct ConfirmArgs {
    /// Do not ask for confirmation (needed when stdin is not a terminal)
    #[arg(short, long, env = "KFADMIN_YES", value_parser = clap::builder::BoolishValueParser::new())]
    pub yes: bool,
    /// Verify and show the plan, then stop without changing anything
    #[arg(long, env = "KFADMIN_RESTORE_DRY_RUN", value_parser = clap::builder::BoolishValueParser::new())]
    pub dry_run: bool,
}

/// List the kfadmin archives in a backup directory or an S3 location, newest first
///
/// Shows each archive's time, mode (online, cold, or a pre-restore safety copy), source, size
/// and database size. Files that are not kfadmin archives are ignored. --check also checks
/// every archive against its .sha256 sidecar.
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  kfadmin list /var/backups/keyfount
  kfadmin list --check
  kfadmin list s3://kf-backups/host1
  kfadmin list --json | jq -r '.archives[0].path'")]
pub struct ListArgs {
    /// The repository: a backup directory or s3://BUCKET[/PREFIX] (the same as -r/--repo)
    #[arg(value_name = "LOCATION")]
    pub dir: Option<PathBuf>,
    #[command(flatten)]
    pub repo: RepoArgs,
    /// Check every archive against its .sha256 sidecar (reads every archive in full)
    #[arg(long, env = "KFADMIN_CHECK", value_parser = clap::builder::BoolishValueParser::new())]
    pub check: bool,
    /// Only the archives of this name (a host or container, e.g. in a fleet's bucket);
    /// KFADMIN_NAME, which names the archives backup writes, does not filter list
    #[arg(long, value_name = "NAME", env = "KFADMIN_LIST_NAME")]
    pub name: Option<String>,
}

/// Remove old archives by grandfather-father-son retention (as restic's forget)
///
/// Archives are grouped by name (container or database), and within a group each rule keeps
/// the newest archive of each of the last N days/weeks/months that have one; an archive
/// that any rule keeps is kept. The newest archive of each group that verifies is always kept,
/// archives that fail their sidecar check or are dated in the future never count toward a rule
/// and are never removed, nothing is removed without a --keep-* rule, and files that are not
/// kfadmin archives are never touched. An archive is removed together with its .sha256.
///
/// Pre-restore archives (the safety copy a restore keeps of the data it replaced) are not
/// backups: they form their own group per name, kept by --keep-pre-restore alone, and never
/// take a backup's place.
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  kfadmin prune /var/backups/keyfount --keep-daily 7 --keep-weekly 4 --keep-monthly 12 --dry-run
  kfadmin prune --keep-last 3 --keep-daily 14")]
pub struct PruneArgs {
    /// The repository: a backup directory or s3://BUCKET[/PREFIX] (the same as -r/--repo)
    #[arg(value_name = "LOCATION")]
    pub dir: Option<PathBuf>,
    #[command(flatten)]
    pub repo: RepoArgs,
    /// Keep the N newest archives
    #[arg(long, value_name = "N", env = "KFADMIN_KEEP_LAST")]
    pub keep_last: Option<u32>,
    /// Keep the newest archive of each of the last N days that have one
    #[arg(long, value_name = "N", env = "KFADMIN_KEEP_DAILY")]
    pub keep_daily: Option<u32>,
    /// Keep the newest archive of each of the last N ISO weeks that have one
    #[arg(long, value_name = "N", env = "KFADMIN_KEEP_WEEKLY")]
    pub keep_weekly: Option<u32>,
    /// Keep the newest archive of each of the last N months that have one
    #[arg(long, value_name = "N", env = "KFADMIN_KEEP_MONTHLY")]
    pub keep_monthly: Option<u32>,
    /// Keep the N newest pre-restore safety copies of each name (they are never counted as backups)
    #[arg(long, value_name = "N", env = "KFADMIN_KEEP_PRE_RESTORE", default_value_t = 3)]
    pub keep_pre_restore: u32,
    /// Keep every pre-restore safety copy younger than this too, however many there are
    /// (the first one may be the only copy of the data from before an incident; 0s: count only)
    #[arg(long, value_name = "DURATION", env = "KFADMIN_KEEP_PRE_RESTORE_WITHIN", default_value = "7d", value_parser = humantime::parse_duration)]
    pub keep_pre_restore_within: std::time::Duration,
    /// Point-in-time chains: keep every commit younger than this; older commits are merged
    /// into one point per minute (compaction)
    #[arg(long, value_name = "DURATION", env = "KFADMIN_KEEP_COMMITS_WITHIN", default_value = "1h", value_parser = humantime::parse_duration)]
    pub keep_commits_within: std::time::Duration,
    /// Point-in-time chains: one point per minute up to this age, one per hour after it
    #[arg(long, value_name = "DURATION", env = "KFADMIN_KEEP_MINUTELY_WITHIN", default_value = "1d", value_parser = humantime::parse_duration)]
    pub keep_minutely_within: std::time::Duration,
    /// Point-in-time chains: keep the points of this long back and every chain they need;
    /// remove whole chains that only hold older points [default: keep every chain]
    #[arg(long, value_name = "DURATION", env = "KFADMIN_KEEP_POINTS_WITHIN", value_parser = humantime::parse_duration)]
    pub keep_points_within: Option<std::time::Duration>,
    /// Show KEEP or REMOVE and the deciding rule for each archive; remove nothing
    #[arg(long, env = "KFADMIN_PRUNE_DRY_RUN", value_parser = clap::builder::BoolishValueParser::new())]
    pub dry_run: bool,
    /// Where a remote archive without a sidecar is downloaded for its check (a private
    /// directory is made there) [default: the state directory's staging/]
    #[arg(long, value_name = "DIR", env = "KFADMIN_TMPDIR")]
    pub tmp_dir: Option<PathBuf>,
}

/// How a Keyfount server and its backups stand; exit 1 when the last backup is too old
///
/// Shows the container's state and health, the database's size, its WAL's size and journal
/// mode, the free space in the backup directory against the size of the last archive, the
/// last backup and its age, and the last restore drill that passed. Exits 1 when there is no
/// backup, or the last one is older than --max-age (or, with --max-drill-age, no drill passed
/// within it), so a monitor can run it. With --quiet it prints only the PROBLEM lines
/// (nothing when all is well).
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  kfadmin status --container keyfount --repo /var/backups/keyfount
  kfadmin status --db /srv/keyfount/data/keyfount.db --max-age 26h --json")]
pub struct StatusArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    /// The repository: a backup directory or s3://BUCKET[/PREFIX]
    #[arg(long = "repo", short = 'r', alias = "backup-dir", value_name = "LOCATION", env = "KFADMIN_REPO", default_value = DEFAULT_REPO)]
    pub backup_dir: PathBuf,
    /// Also check the newest backup at this offsite location, s3://BUCKET[/PREFIX], against
    /// --max-age (repeatable; KFADMIN_TO takes several, separated by spaces)
    #[arg(long = "to", value_name = "URL", env = "KFADMIN_TO", value_delimiter = ' ')]
    pub to: Vec<String>,
    /// The oldest the last backup may be (e.g. 26h, 2d, 90m)
    #[arg(long, value_name = "AGE", env = "KFADMIN_MAX_AGE", default_value = "26h", value_parser = parse_duration)]
    pub max_age: std::time::Duration,
    /// A problem when the last drill that passed (`kfadmin drill`) is older than this (e.g. 8d), or there is none, or it was of a backup older than this or of another server
    #[arg(long, value_name = "AGE", env = "KFADMIN_MAX_DRILL_AGE", value_parser = parse_duration)]
    pub max_drill_age: Option<std::time::Duration>,
    /// The archives' name, as backup --name wrote them [default: the container's name, or the database file's name without .db]
    #[arg(long, value_name = "NAME", env = "KFADMIN_NAME")]
    pub name: Option<String>,
    /// Check point-in-time replication of this database in the repository: a problem when its
    /// chain lags more than this (e.g. 10s), its follower stopped reporting, or it is broken
    #[arg(long, value_name = "DURATION", env = "KFADMIN_MAX_LAG", value_parser = parse_duration)]
    pub max_lag: Option<std::time::Duration>,
    /// With --max-lag: write Prometheus textfile-collector metrics of the replication here (atomically)
    #[arg(long, value_name = "PATH", env = "KFADMIN_METRICS_FILE")]
    pub metrics_file: Option<PathBuf>,
    /// Ping this URL healthchecks.io-style: URL when all is well, URL/fail with the problems
    #[arg(long, value_name = "URL", env = "KFADMIN_STATUS_PING_URL", value_parser = parse_ping_url)]
    pub ping_url: Option<String>,
}

/// Turn a tarball made by hand (tar czf) into a verified kfadmin archive
///
/// Reads a .tar.gz, .tgz or .tar of Keyfount's data directory, or of keyfount.db alone, at any
/// depth, under the rules verify holds archives to (no links, devices, absolute names or `..`;
/// sizes bounded), into a private directory. Finds the database (--db-name), rolls back a hot
/// -journal and replays the complete, checksummed commit frames of a captured -wal the way
/// SQLite's own recovery does (a -shm is never used, only compared), then runs
/// integrity_check and foreign_key_check. A tarball taken while the server wrote is usually
/// damaged: its database is refused (exit 3, nothing written) and --salvage archives what can
/// still be read of it, marked salvaged.
///
/// A -wal damaged in the middle (frames after a bad one still verify) is refused too, with
/// the committed transactions replaying it would lose.
/// So is a -wal that is not the database file's (its page-1 header contradicts the file's, or
/// the database fails its checks with it and passes without it): --salvage then archives the
/// file without it, never mixed. A salvage copies no row from a cross-linked page and reports,
/// per table, the rows read, unreadable and skipped.
///
/// The archive is <name>-<time>-imported.tar.gz in the repository, -r/--repo (time: the newest modification time
/// of a file in the tarball), with a manifest that records the tarball's name, size and sha256 and
/// what was replayed or dropped. verify, restore, list and prune take it like any backup.
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  kfadmin import /root/keyfount-2024-05-01.tar.gz --repo /var/backups/keyfount
  kfadmin import old/kf-data.tgz --name keyfount --json | jq -r .archive
  kfadmin import live-capture.tar.gz --salvage
  kfadmin import live-capture.tar.gz --salvage --without-wal

Exit codes: 0 imported, 2 not a usable tarball (no database, several, links or devices in
it), 3 the tarball or its database is damaged (nothing written; see --salvage).")]
pub struct ImportArgs {
    /// The tarball: a .tar.gz, .tgz or .tar of Keyfount's data directory or of its database
    #[arg(value_name = "TARBALL")]
    pub tarball: PathBuf,
    /// The database's file name in the tarball
    #[arg(long, value_name = "NAME", env = "KFADMIN_DB_NAME", default_value = "keyfount.db")]
    pub db_name: String,
    /// When the database fails its checks, archive what can still be read of it, marked salvaged, instead of refusing
    #[arg(long, env = "KFADMIN_SALVAGE", value_parser = clap::builder::BoolishValueParser::new())]
    pub salvage: bool,
    /// With --salvage: salvage the database file alone, as captured, leaving the tarball's -wal out (its committed transactions are lost; the report says how many)
    #[arg(
        long,
        requires = "salvage",
        env = "KFADMIN_WITHOUT_WAL",
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    pub without_wal: bool,
    #[command(flatten)]
    pub output: OutputArgs,
    #[command(flatten)]
    pub encrypt: EncryptArgs,
    /// Check the tarball, the name and the encryption and say what would be written; unpack,
    /// write and lock nothing
    #[arg(long, env = "KFADMIN_IMPORT_DRY_RUN", value_parser = clap::builder::BoolishValueParser::new())]
    pub dry_run: bool,
}

/// The configuration file: every setting and where it comes from
///
/// kfadmin reads /etc/kfadmin/config.toml (or the file KFADMIN_CONFIG names; KFADMIN_CONFIG=""
/// reads none). It can set any option, by its long name without the dashes: at the top for
/// every command that has that option, or in a table per command (`[backup]`, `[prune]`, …).
/// A flag on the command line wins over its environment variable, which wins over the file,
/// which wins over the default. Secrets are never written into it: name a file instead
/// (identity, recipients-file). A file that group or others can read or write, or that is owned
/// by another user than root or the one running kfadmin, is refused, and so is a key that is
/// not an option (a typo), naming the key and the file.
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  kfadmin config show
  kfadmin config show --command backup
  kfadmin config show --json | jq '.settings[] | select(.origin != \"default\")'

/etc/kfadmin/config.toml (mode 0600, owned by root):
  container = \"keyfount\"
  repo = \"/var/backups/keyfount\"
  [backup]
  online = true
  recipients-file = \"/etc/kfadmin/recipients.txt\"
  [prune]
  keep-daily = 7")]
pub struct ConfigArgs {
    #[command(subcommand)]
    pub action: ConfigAction,
}

#[derive(Debug, Subcommand)]
pub enum ConfigAction {
    /// Print every effective setting of every command (or of one) and where it came from:
    /// the environment (naming the variable), the file (naming it and its table), or the default
    Show(ConfigShowArgs),
}

#[derive(Debug, Args)]
pub struct ConfigShowArgs {
    /// Only the settings of this command (backup, restore, prune, …)
    #[arg(long, value_name = "COMMAND", env = "KFADMIN_CONFIG_SHOW_COMMAND")]
    pub command: Option<String>,
}

/// Print, or install and enable, the systemd timers (or cron file) that run the backups
///
/// The nightly online backup (then prune, only when the backup succeeded) and the weekly
/// restore drill of one container, as the runbook describes them, each calling this kfadmin
/// binary by its absolute path (cron's PATH has no /usr/local/bin). Other settings (encryption,
/// --ping-url, offsite copies) come from the config file when the jobs run
/// (`kfadmin config show`).
///
/// Without --install the files are printed. --install writes them (mode 0644, atomically) and
/// enables the timers (systemctl daemon-reload, systemctl enable --now); a file kfadmin did not
/// write is never replaced without --force, and running it again changes nothing when the files
/// are current. systemd is used where it runs the system (/run/systemd/system), cron otherwise
/// (/etc/cron.d/kfadmin; cron reads it by itself).
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  kfadmin schedule --container keyfount
  kfadmin schedule --container keyfount --repo /var/backups/keyfount --install
  kfadmin schedule --container keyfount --init cron --at 02:30 --install
  kfadmin schedule --container keyfount --install --root /mnt/image")]
pub struct ScheduleArgs {
    /// The Keyfount container the jobs back up and drill
    #[arg(long, short = 'c', value_name = "NAME", env = "KFADMIN_CONTAINER")]
    pub container: String,
    #[command(flatten)]
    pub repo: RepoArgs,
    /// The backup and drill jobs write Prometheus metrics here
    #[arg(long, value_name = "PATH", env = "KFADMIN_METRICS_FILE")]
    pub metrics_file: Option<PathBuf>,
    /// The nightly backup's time (local time, HH:MM); the weekly drill runs on Sundays 90
    /// minutes later
    #[arg(long, value_name = "HH:MM", default_value = "03:00", env = "KFADMIN_SCHEDULE_AT", value_parser = crate::ops::schedule::parse_at)]
    pub at: (u8, u8),
    /// The prune job's --keep-daily
    #[arg(long, value_name = "N", default_value_t = 7, env = "KFADMIN_SCHEDULE_KEEP_DAILY")]
    pub keep_daily: u32,
    /// The prune job's --keep-weekly
    #[arg(long, value_name = "N", default_value_t = 4, env = "KFADMIN_SCHEDULE_KEEP_WEEKLY")]
    pub keep_weekly: u32,
    /// The prune job's --keep-monthly
    #[arg(long, value_name = "N", default_value_t = 12, env = "KFADMIN_SCHEDULE_KEEP_MONTHLY")]
    pub keep_monthly: u32,
    /// No weekly drill
    #[arg(long, env = "KFADMIN_SCHEDULE_NO_DRILL", value_parser = clap::builder::BoolishValueParser::new())]
    pub no_drill: bool,
    /// systemd timers or a cron file [default: systemd when it runs the system, else cron]
    #[arg(long, value_enum, value_name = "INIT", env = "KFADMIN_SCHEDULE_INIT")]
    pub init: Option<InitSystem>,
    /// Write the files and enable the timers
    #[arg(long, env = "KFADMIN_SCHEDULE_INSTALL", value_parser = clap::builder::BoolishValueParser::new())]
    pub install: bool,
    /// Replace files of the same names that kfadmin did not write
    #[arg(long, env = "KFADMIN_SCHEDULE_FORCE", value_parser = clap::builder::BoolishValueParser::new())]
    pub force: bool,
    /// Install under this directory instead of / (an image being built): the timers are
    /// enabled by their links, without systemctl
    #[arg(long, value_name = "DIR", env = "KFADMIN_SCHEDULE_ROOT", default_value = "/")]
    pub root: PathBuf,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum InitSystem {
    Systemd,
    Cron,
}

#[derive(Debug, Args)]
pub struct ManpagesArgs {
    /// Directory to write the pages into
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
}

/// Print a shell completion script to stdout
///
/// bash, zsh and fish: container names (asked of the Docker engine) after --container, and
/// `latest`, the repository's archive names and archive files (never their .sha256 sidecars)
/// where an ARCHIVE goes, through the hidden `kfadmin __complete`; elvish and powershell:
/// commands and options.
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  kfadmin completions bash > /etc/bash_completion.d/kfadmin
  kfadmin completions zsh > \"${fpath[1]}/_kfadmin\"
  kfadmin completions fish > ~/.config/fish/completions/kfadmin.fish")]
pub struct CompletionsArgs {
    #[arg(value_enum)]
    pub shell: Shell,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
    Elvish,
    Powershell,
}

/// A duration flag's value: a bare number of seconds (`30`) or numbers with units as
/// humantime reads them (`30s`, `10m`, `26h`, `1d 2h`).
pub fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let t = s.trim();
    if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) {
        return t
            .parse::<u64>()
            .map(std::time::Duration::from_secs)
            .map_err(|_| format!("{s} seconds is too long"));
    }
    humantime::parse_duration(t)
        .map_err(|e| format!("{e}: give seconds (30) or a number with a unit (30s, 10m, 26h, 2d)"))
}

/// A duration flag kept in whole seconds (see [`parse_duration`]); a fraction is rounded up.
pub fn parse_secs(s: &str) -> Result<u32, String> {
    let d = parse_duration(s)?;
    let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    u32::try_from(secs).map_err(|_| format!("{s} is too long"))
}

/// `--ping-url`: an http(s) URL with a host, checked before the run starts (a typo found at
/// the end would leave the monitor without its start ping).
pub fn parse_ping_url(s: &str) -> Result<String, String> {
    let uri: ureq::http::Uri = s.trim().parse().map_err(|e| format!("not a URL ({e})"))?;
    let scheme_ok = matches!(uri.scheme_str(), Some("http" | "https"));
    if !scheme_ok || uri.host().is_none_or(str::is_empty) {
        return Err("give an http:// or https:// URL with a host, e.g. https://hc-ping.com/UUID".into());
    }
    Ok(s.trim().to_string())
}
