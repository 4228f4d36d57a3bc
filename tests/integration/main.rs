//! Integration tests: the real kfadmin binary, a real Keyfount-like writer process
//! (`tests/keyfount-sim`), real SQLite files, real filesystems (tmpfs for a full disk).

mod util;

mod archives;
mod backup;
mod cli;
mod consistency;
mod dock;
mod docker;
mod drill;
mod encrypt;
mod faults;
mod guardian;
mod hostile;
mod import;
mod json_keys;
mod layouts;
mod lifecycle;
mod lock;
mod manage;
mod many_files;
mod messages;
mod monitor;
mod netfault;
mod offsite;
mod offsite_net;
mod output;
mod props;
mod recovery;
mod replicate;
mod replicate_choice;
mod replicate_docker;
mod replicate_long;
mod replicate_stamps;
mod replicate_watch;
mod restore;
mod restore_docker;
mod s3;
mod safety_copies;
mod salvage;
mod setup;
mod terminal;
