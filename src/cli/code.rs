//! `podlab code NAME [--folder DIR]`: VS Code attached to a running session (see
//! [`crate::ops::code`]); the attach URI goes to stdout when `code` is not on PATH.

use super::print_result;
use crate::Result;
use crate::engine::{self, ConnectOptions};
use crate::ops::code::attach;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The folder to open inside the container.
    #[arg(long, default_value = "/workspace", value_name = "DIR")]
    folder: String,
    /// The session's name (see podlab ps).
    name: crate::session::values::Name,
}

pub async fn run(args: &Args, connect: &ConnectOptions) -> Result<u8> {
    let connected = engine::connect(connect).await?;
    if let Some(uri) = attach(&connected.engine, &args.name, &args.folder).await? {
        print_result(&format!("{uri}\n"))?;
    }
    Ok(0)
}
