//! `podlab exec NAME -- CMD...`: runs a command in a running session, without a TTY or
//! stdin; its output streams to our stdout/stderr and its exit code becomes ours.

use crate::Result;
use crate::containers;
use crate::engine::{self, ConnectOptions};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The session's name (see podlab ps).
    name: String,
    /// The command and its arguments.
    #[arg(last = true, required = true, value_name = "CMD")]
    command: Vec<String>,
}

pub async fn run(args: &Args, connect: &ConnectOptions) -> Result<u8> {
    let connected = engine::connect(connect).await?;
    let session = containers::find_session(&connected.engine, &args.name).await?;
    let (mut stdout, mut stderr) = (tokio::io::stdout(), tokio::io::stderr());
    let code = containers::exec(
        &connected.engine,
        &session,
        &args.command,
        &mut stdout,
        &mut stderr,
    )
    .await?;
    Ok(u8::try_from(code & 0xff).unwrap_or(1))
}
