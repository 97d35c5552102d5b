//! `podlab rm [-f] NAME`: removes a session's container; a running one only with `-f`,
//! which stops it first. Its name goes to stdout.

use super::print_result;
use crate::Result;
use crate::engine::{self, ConnectOptions};
use crate::ops::containers;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Stop the session first if it is running.
    #[arg(short, long)]
    force: bool,
    /// The session's name (see podlab ps).
    name: crate::session::values::Name,
}

pub async fn run(args: &Args, connect: &ConnectOptions) -> Result<u8> {
    let connected = engine::connect(connect).await?;
    let session = containers::find_session(&connected.engine, &args.name).await?;
    containers::remove(&connected.engine, &session, args.force).await?;
    print_result(&format!("{}\n", session.name))?;
    Ok(0)
}
