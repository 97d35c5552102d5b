//! `podlab version`: podlab's version, the server's, the socket, and what that Podman can do.

use super::{print_result, to_json};
use crate::Result;
use crate::engine::{self, ConnectOptions};
use crate::ops::version::{Report, render};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

pub async fn run(args: &Args, connect: &ConnectOptions) -> Result<u8> {
    let connected = engine::connect(connect).await?;
    let report = Report::of(&connected);
    let text = if args.json {
        to_json(&report)?
    } else {
        render(&report)
    };
    print_result(&text)?;
    Ok(0)
}
