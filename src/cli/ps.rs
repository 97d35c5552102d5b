//! `podlab ps [--json] [--project NAME]`: podlab's own sessions (containers labelled
//! `io.podlab.project`), of every project unless one is named.

use super::{print_result, to_json};
use crate::Result;
use crate::engine::{self, ConnectOptions};
use crate::ops::containers;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print the sessions as a JSON array instead of a table.
    #[arg(long)]
    json: bool,
    /// Only the sessions of this project (its directory's name, as the PROJECT column shows
    /// it) [default: every project]
    #[arg(long, value_name = "NAME")]
    project: Option<crate::session::values::Name>,
}

pub async fn run(args: &Args, connect: &ConnectOptions) -> Result<u8> {
    let connected = engine::connect(connect).await?;
    let rows = containers::list_sessions(
        &connected.engine,
        args.project.as_deref(),
        containers::now(),
    )
    .await?;
    if args.json {
        print_result(&to_json(&rows)?)?;
    } else {
        print_result(&containers::table(&rows))?;
    }
    Ok(0)
}
