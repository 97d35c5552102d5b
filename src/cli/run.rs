//! `podlab run [session flags] [--detach] [--keep] [-- CMD...]`: one container per job, the
//! habit of people who train from scripts. Output streams to our stdout/stderr, the job's exit
//! code becomes ours, and Ctrl-C, SIGTERM, SIGHUP or SIGQUIT stop and remove it (unless -d).

use super::print_result;
use super::session_args::{SessionArgs, current_dir};
use crate::Result;
use crate::engine::{self, ConnectOptions};
use crate::ops::run::{self as runner, Mode};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    session: SessionArgs,
    /// Start the job and return; its name goes to stdout (see podlab logs / stop / rm).
    #[arg(short, long)]
    detach: bool,
    /// Keep the container after it exits (for podlab logs).
    #[arg(long)]
    keep: bool,
    /// The command; the image's own when none is given.
    #[arg(last = true, value_name = "CMD")]
    command: Vec<String>,
}

pub async fn run(args: Args, connect: &ConnectOptions) -> Result<u8> {
    let session = args.session.resolve(&current_dir()?, args.command)?;
    let connected = engine::connect(connect).await?;
    let mode = Mode {
        kind: "run",
        tty: false,
        stdin: false,
        remove: !args.keep && !args.detach,
    };
    let plan = runner::plan_container(&connected.engine, &connected.capabilities(), &session, mode)
        .await?;
    if args.detach {
        let name = runner::start_detached(&connected.engine, &session, &plan).await?;
        print_result(&format!("{name}\n"))?;
        return Ok(0);
    }
    let reconnect = || async { engine::connect(connect).await.map(|again| again.engine) };
    let code = runner::run_attached(&connected.engine, &session, &plan, reconnect).await?;
    Ok(u8::try_from(code & 0xff).unwrap_or(1))
}
