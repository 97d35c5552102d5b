//! `podlab pull [--policy P] IMAGE`: pulls an image through the API (see
//! [`crate::ops::pull`]), progress on stderr; the image id goes to stdout. Exit 1 when the
//! image or name does not exist, 2 when the registry cannot be reached.

use super::print_result;
use crate::Result;
use crate::engine::{self, ConnectOptions, PullPolicy};
use crate::ops::pull::pull;
use crate::session::values;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// When to contact the registry: always (as podman pull), missing (only when the image is
    /// not here yet), newer (when the registry has a newer one).
    #[arg(long, value_enum, default_value_t = Policy::Always)]
    policy: Policy,
    /// The image, best fully qualified: docker.io/library/ubuntu:24.04.
    #[arg(value_parser = values::image_name)]
    image: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Policy {
    Always,
    Missing,
    Newer,
}

impl From<Policy> for PullPolicy {
    fn from(policy: Policy) -> Self {
        match policy {
            Policy::Always => Self::Always,
            Policy::Missing => Self::Missing,
            Policy::Newer => Self::Newer,
        }
    }
}

pub async fn run(args: &Args, connect: &ConnectOptions) -> Result<u8> {
    let connected = engine::connect(connect).await?;
    let id = pull(&connected.engine, &args.image, args.policy.into()).await?;
    print_result(&format!("{id}\n"))?;
    Ok(0)
}
