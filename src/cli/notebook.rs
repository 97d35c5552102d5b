//! `podlab notebook install|url|status|logs|start|stop|rm`: the flags, and what
//! [`crate::ops::notebook`] returns.
//!
//! `install` resolves the session as `podlab run` does, with `podlab.toml`'s `notebook`
//! preset when it has one and no `--preset` is given.

use super::session_args::{SessionArgs, current_dir};
use super::{print_result, to_json};
use crate::Result;
use crate::emit::quadlet::notebook::{CONTAINER_PORT, DEFAULT_HEALTH_CMD};
use crate::engine::ConnectOptions;
use crate::ops::notebook::{self, InstallOptions, PRESET};

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Install a JupyterLab service (unit and token secret), and start it where systemd runs.
    Install(Box<InstallArgs>),
    /// Print the notebook's URL with its token.
    Url(NameArgs),
    /// The notebook's unit, service, container and health.
    Status(StatusArgs),
    /// The notebook's output (-f: follow it).
    Logs(LogsArgs),
    /// Start the notebook's service (systemctl --user).
    Start(NameArgs),
    /// Stop the notebook's service (or its container, where no systemd user instance runs).
    Stop(NameArgs),
    /// Remove the notebook: its unit, its container and its token secret.
    Rm(RmArgs),
}

#[derive(Debug, clap::Args)]
pub struct InstallArgs {
    #[command(flatten)]
    session: SessionArgs,
    /// Host port on 127.0.0.1 that JupyterLab is published on.
    #[arg(long, default_value_t = CONTAINER_PORT, value_parser = clap::value_parser!(u16).range(1..))]
    port: u16,
    /// Shell command in the container that exits 0 while the server answers.
    #[arg(long, value_name = "CMD", default_value = DEFAULT_HEALTH_CMD)]
    health_cmd: String,
    /// Let `podman auto-update` pull a newer image and restart the notebook.
    #[arg(long)]
    auto_update: bool,
    /// The command [default: jupyter lab --ip=0.0.0.0 --port=8888 --no-browser]; the token
    /// reaches it as $JUPYTER_TOKEN.
    #[arg(last = true, value_name = "CMD")]
    command: Vec<String>,
}

#[derive(Debug, clap::Args)]
pub struct NameArgs {
    /// The notebook [default: the only one installed].
    name: Option<crate::session::values::Name>,
}

#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// Print the status as a JSON object instead of lines (shape in README.md).
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    name: NameArgs,
}

#[derive(Debug, clap::Args)]
pub struct LogsArgs {
    /// Keep printing new output until the notebook stops.
    #[arg(short, long)]
    follow: bool,
    #[command(flatten)]
    name: NameArgs,
}

#[derive(Debug, clap::Args)]
pub struct RmArgs {
    /// Remove the unit even if it was edited since podlab wrote it.
    #[arg(short, long)]
    force: bool,
    #[command(flatten)]
    name: NameArgs,
}

pub async fn run(command: Command, connect: &ConnectOptions) -> Result<u8> {
    match command {
        Command::Install(args) => install(*args, connect).await?,
        Command::Url(args) => {
            let url = notebook::url(args.name.as_deref(), connect).await?;
            print_result(&format!("{url}\n"))?;
        }
        Command::Status(args) => {
            let status = notebook::status(args.name.name.as_deref(), connect).await?;
            print_result(&if args.json {
                to_json(&status)?
            } else {
                status.text()
            })?;
        }
        Command::Logs(args) => {
            let (mut stdout, mut stderr) = (tokio::io::stdout(), tokio::io::stderr());
            let name = args.name.name.as_deref();
            notebook::logs(name, args.follow, connect, &mut stdout, &mut stderr).await?;
        }
        Command::Start(args) => {
            print_result(&format!("{}\n", notebook::start(args.name.as_deref())?))?;
        }
        Command::Stop(args) => {
            let name = notebook::stop(args.name.as_deref(), connect).await?;
            print_result(&format!("{name}\n"))?;
        }
        Command::Rm(args) => {
            let removal = notebook::rm(args.name.name.as_deref(), args.force, connect).await?;
            print_result(&removal.removed)?;
            removal.finish()?;
        }
    }
    Ok(0)
}

async fn install(args: InstallArgs, connect: &ConnectOptions) -> Result<()> {
    let cwd = current_dir()?;
    let mut flags = args.session.clone();
    if flags.preset.is_none() && notebook::has_preset(&cwd)? {
        tracing::info!("using podlab.toml's [presets.{PRESET}]");
        flags.preset = Some(PRESET.to_owned());
    }
    let session = flags.resolve(&cwd, args.command.clone())?;
    let options = InstallOptions {
        port: args.port,
        health_cmd: args.health_cmd.clone(),
        auto_update: args.auto_update,
    };
    let installed = notebook::install(session, &options, connect).await?;
    print_result(&format!("{}\n", installed.path.display()))?;
    notebook::start_installed(&installed)
}
