//! `podlab exec [-it] NAME -- CMD...`: runs a command in a running session. Its output streams
//! to our stdout/stderr and its exit code becomes ours; with `-it` (as `podman exec -it`) the
//! command gets a TTY and our terminal, for a second shell in a running session.

use crate::engine::{self, ConnectOptions};
use crate::host::terminal;
use crate::ops::{containers, interactive};
use crate::{Error, Result};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Attach our stdin (with -t: a shell, an editor).
    #[arg(short, long)]
    interactive: bool,
    /// Give the command a TTY: our terminal, raw, with its window size (needs -i).
    #[arg(short, long, requires = "interactive")]
    tty: bool,
    /// The session's name (see podlab ps).
    name: crate::session::values::Name,
    /// The command and its arguments.
    #[arg(last = true, required = true, value_name = "CMD")]
    command: Vec<String>,
}

pub async fn run(args: &Args, connect: &ConnectOptions) -> Result<u8> {
    if args.interactive && !args.tty {
        return Err(
            Error::user("-i without -t is not supported: stdin goes with a TTY").hint(
                "use -it for an interactive command, or leave both out to only stream output",
            ),
        );
    }
    if args.tty && !terminal::stdin_is_terminal() {
        return Err(Error::user("-t needs a terminal on stdin")
            .hint("run it from a terminal, or leave out -it to only stream output"));
    }
    let connected = engine::connect(connect).await?;
    let session = containers::find_session(&connected.engine, &args.name).await?;
    let code = if args.tty {
        containers::require_running(&session)?;
        interactive::exec_interactive(&connected.engine, &session.id, &session.name, &args.command)
            .await?
    } else {
        let (mut stdout, mut stderr) = (tokio::io::stdout(), tokio::io::stderr());
        containers::exec(
            &connected.engine,
            &session,
            &args.command,
            &mut stdout,
            &mut stderr,
        )
        .await?
    };
    Ok(u8::try_from(code & 0xff).unwrap_or(1))
}
