//! `kfadmin prune` (being written).

use super::{Ctx, Outcome};
use crate::cli::PruneArgs;
use crate::error::{Error, Result};

pub fn run(_args: PruneArgs, _ctx: &Ctx) -> Result<Outcome> {
    Err(Error::failed("not written yet"))
}
