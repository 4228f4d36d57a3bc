//! `kfadmin config show`: every effective setting and where it came from.

use std::fmt::Write as _;

use clap::CommandFactory;
use serde::Serialize;

use super::{Ctx, Outcome};
use crate::cli::{Cli, ConfigAction, ConfigArgs};
use crate::config::{self, Origin, Setting};
use crate::error::Result;

#[derive(Serialize)]
struct Report {
    ok: bool,
    /// The file read, `null` when there is none.
    config_file: Option<String>,
    settings: Vec<Setting>,
}

pub fn run(args: ConfigArgs, _ctx: &Ctx) -> Result<Outcome> {
    let ConfigAction::Show(show) = args.action;
    let cli = Cli::command();
    let file = config::load(&cli)?;
    let settings = config::effective(&cli, file.as_ref(), show.command.as_deref())?;
    let mut human = String::new();
    match (&file, config::location()) {
        (Some(f), _) => {
            let _ = writeln!(human, "# configuration file: {}", f.path.display());
        }
        (None, Some((p, _))) => {
            let _ = writeln!(human, "# configuration file: none ({} does not exist)", p.display());
        }
        (None, None) => {
            let _ = writeln!(human, "# configuration file: none (KFADMIN_CONFIG is empty)");
        }
    }
    let _ = writeln!(human, "# a flag on the command line wins over all of these");
    let rows: Vec<(String, String)> = settings
        .iter()
        .map(|s| {
            let origin = match (&s.origin, &s.source) {
                (Origin::Env, Some(src)) => format!("env {src}"),
                (Origin::File, Some(src)) => format!("file {src}"),
                (Origin::Default, _) => "default".to_string(),
                _ => "unset".to_string(),
            };
            let value = match &s.value {
                Some(v) => format!("{}.{}={v}", s.command, s.key),
                None => format!("{}.{}", s.command, s.key),
            };
            (origin, value)
        })
        .collect();
    let w = rows.iter().map(|(o, _)| o.chars().count()).max().unwrap_or(0);
    for (origin, value) in rows {
        let _ = writeln!(human, "{origin:<w$}  {value}");
    }
    let report =
        Report { ok: true, config_file: file.map(|f| f.path.to_string_lossy().into_owned()), settings };
    Ok(Outcome::new(0, human, &report))
}
