//! `podlab logs [-f] NAME`: a session's output, its stdout on stdout and its stderr on
//! stderr; with `-f`, followed until the session exits.

use crate::Result;
use crate::engine::{self, ConnectOptions};
use crate::ops::containers;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Keep printing new output until the session exits.
    #[arg(short, long)]
    follow: bool,
    /// The session's name (see podlab ps).
    name: crate::session::values::Name,
}

pub async fn run(args: &Args, connect: &ConnectOptions) -> Result<u8> {
    let connected = engine::connect(connect).await?;
    let session = containers::find_session(&connected.engine, &args.name).await?;
    let (mut stdout, mut stderr) = (tokio::io::stdout(), tokio::io::stderr());
    containers::copy_logs(
        &connected.engine,
        &session,
        args.follow,
        &mut stdout,
        &mut stderr,
    )
    .await?;
    Ok(0)
}
