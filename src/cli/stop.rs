//! `podlab stop [-t SECONDS] NAME`: stops a session (SIGTERM, then SIGKILL after the grace
//! period) and keeps its container for `podlab logs`; its name goes to stdout.

use super::print_result;
use crate::Result;
use crate::engine::{self, ConnectOptions, Engine};
use crate::ops::containers;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Seconds to wait after SIGTERM before SIGKILL.
    #[arg(
        short = 't',
        long = "time",
        value_name = "SECONDS",
        default_value_t = 10
    )]
    time: u32,
    /// The session's name (see podlab ps).
    name: crate::session::values::Name,
}

pub async fn run(args: &Args, connect: &ConnectOptions) -> Result<u8> {
    let connected = engine::connect(connect).await?;
    let session = containers::find_session(&connected.engine, &args.name).await?;
    connected
        .engine
        .stop_container(&session.id, args.time)
        .await?;
    print_result(&format!("{}\n", session.name))?;
    Ok(0)
}
