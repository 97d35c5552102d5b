//! The command line: parse flags, set up logging, run one subcommand, map the outcome to an
//! exit code (0 ok, 1 user or validation error, 2 environment or internal error, 130
//! interrupted). Each subcommand lives in its own file: its flags, the session they resolve
//! (flags shared by every session command are in [`session_args`]), one call into
//! [`crate::ops`], and the printing of what it returns; results go to stdout, logs and
//! progress to stderr. No subcommand's module uses another's: what two commands share lives
//! in the library.

mod build;
mod cdi;
mod code;
mod completions;
mod config;
mod deferred;
mod doctor;
mod exec;
mod init;
mod kube;
mod logs;
mod man;
mod notebook;
mod ps;
mod pull;
mod quadlet;
mod rm;
mod run;
pub mod session_args;
mod shell;
mod slurm;
mod stop;
mod version;

use std::io::Write;
use std::process::ExitCode;

use clap::{ArgAction, Parser, Subcommand};

use crate::engine::ConnectOptions;
use crate::host::stdout::{print_result, to_json};
use crate::{Error, Result};
use deferred::Deferred;

/// podlab: rootless GPU deep-learning environments on Podman.
#[derive(Debug, Parser)]
#[command(name = "podlab", version, about, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Flags every subcommand accepts.
#[derive(Debug, clap::Args)]
pub struct GlobalArgs {
    /// Podman API socket, as unix:///path/to/podman.sock [default: $CONTAINER_HOST, then
    /// $XDG_RUNTIME_DIR/podman/podman.sock, then podlab's own service]
    #[arg(long, global = true, value_name = "URL")]
    pub url: Option<String>,
    /// Do not start a private `podman system service` when no socket answers.
    #[arg(long, global = true)]
    pub no_autostart: bool,
    /// More log output on stderr (-v info, -vv debug, -vvv trace); RUST_LOG overrides. Give
    /// it before the subcommand (podlab -v run ...): after it, -v is --volume.
    #[arg(short, long, action = ArgAction::Count, conflicts_with = "quiet")]
    pub verbose: u8,
    /// Only errors on stderr (before the subcommand).
    #[arg(short, long)]
    pub quiet: bool,
}

impl GlobalArgs {
    fn connect_options(&self) -> ConnectOptions {
        ConnectOptions {
            url: self.url.clone(),
            autostart: !self.no_autostart,
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show podlab's version, the Podman server's version and the socket in use.
    Version(Deferred<version::Args>),
    /// Check that this host is ready for rootless GPU containers.
    Doctor(Deferred<doctor::Args>),
    /// NVIDIA CDI specs: generate, install, check freshness, list, validate.
    Cdi {
        #[command(subcommand)]
        command: Deferred<cdi::Command>,
    },
    /// Write a commented podlab.toml and a Containerfile for a CUDA/PyTorch/JupyterLab image.
    Init(Deferred<init::Args>),
    /// Print the session that flags, podlab.toml and the defaults resolve to.
    Config(Deferred<config::Args>),
    /// Build the session's image from [build] in podlab.toml (or --file) through the API.
    Build(Deferred<build::Args>),
    /// Pull an image through the API.
    Pull(Deferred<pull::Args>),
    /// Open VS Code attached to a running session (or print the attach URI).
    Code(Deferred<code::Args>),
    /// Run a command in a new container of the session, as one job, and return its exit code.
    Run(Deferred<run::Args>),
    /// Open an interactive shell in a new container of the session.
    Shell(Deferred<shell::Args>),
    /// Run a command in a running session and return its exit code.
    Exec(Deferred<exec::Args>),
    /// List podlab's sessions: name, project, kind, GPUs, ports, status, age.
    Ps(Deferred<ps::Args>),
    /// Print a session's output (-f: follow it until the session exits).
    Logs(Deferred<logs::Args>),
    /// Stop a session, keeping its container for podlab logs.
    Stop(Deferred<stop::Args>),
    /// Remove a session's container (-f: a running one too).
    Rm(Deferred<rm::Args>),
    /// Kubernetes YAML from a session (for podman kube play or a cluster); kube play / down.
    Kube {
        #[command(subcommand)]
        command: Deferred<kube::Command>,
    },
    /// Quadlet units: a session as a systemd user service (generate, install, rm).
    Quadlet {
        #[command(subcommand)]
        command: Deferred<quadlet::Command>,
    },
    /// JupyterLab as a systemd user service: install, url, status, logs, start, stop, rm.
    Notebook {
        #[command(subcommand)]
        command: Deferred<notebook::Command>,
    },
    /// Slurm batch jobs from a session: one rootless podlab run per node.
    Slurm {
        #[command(subcommand)]
        command: Deferred<slurm::Command>,
    },
    /// Print the completion script for a shell (see README.md to install it).
    Completions(Deferred<completions::Args>),
    /// Print podlab's manual page (roff): podlab man | man -l -
    Man(Deferred<man::Args>),
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            let _ = err.print();
            // clap's own exit code for usage errors is 2; podlab reserves 2 for the environment.
            return ExitCode::from(u8::from(err.use_stderr()));
        }
    };
    crate::host::logging::init(cli.global.quiet, cli.global.verbose);
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            return report(&Error::env(format!(
                "cannot start the async runtime: {err}"
            )));
        }
    };
    // Ctrl-C keeps its default effect (exit, status 130) except in commands that own a
    // container, which catch it to stop and remove the container first.
    match runtime.block_on(run(cli)) {
        Ok(code) => ExitCode::from(code),
        Err(err) => report(&err),
    }
}

/// Runs one subcommand; the `u8` is the exit code of a run that did not fail outright.
async fn run(cli: Cli) -> Result<u8> {
    let connect = cli.global.connect_options();
    match cli.command {
        Command::Version(Deferred(args)) => version::run(&args, &connect).await,
        Command::Doctor(Deferred(args)) => doctor::run(&args, &connect).await,
        Command::Cdi {
            command: Deferred(command),
        } => cdi::run(command, connect.url).await,
        Command::Init(Deferred(args)) => init::run(&args),
        Command::Config(Deferred(args)) => config::run(args),
        Command::Build(Deferred(args)) => build::run(args, &connect).await,
        Command::Pull(Deferred(args)) => pull::run(&args, &connect).await,
        Command::Run(Deferred(args)) => run::run(args, &connect).await,
        Command::Code(Deferred(args)) => code::run(&args, &connect).await,
        Command::Shell(Deferred(args)) => shell::run(args, &connect).await,
        Command::Exec(Deferred(args)) => exec::run(&args, &connect).await,
        Command::Ps(Deferred(args)) => ps::run(&args, &connect).await,
        Command::Logs(Deferred(args)) => logs::run(&args, &connect).await,
        Command::Stop(Deferred(args)) => stop::run(&args, &connect).await,
        Command::Rm(Deferred(args)) => rm::run(&args, &connect).await,
        Command::Kube {
            command: Deferred(command),
        } => kube::run(command, &connect).await,
        Command::Quadlet {
            command: Deferred(command),
        } => quadlet::run(command, &connect).await,
        Command::Notebook {
            command: Deferred(command),
        } => notebook::run(command, &connect).await,
        Command::Slurm {
            command: Deferred(command),
        } => slurm::run(command),
        Command::Completions(Deferred(args)) => completions::run(&args),
        Command::Man(Deferred(args)) => man::run(&args),
    }
}

fn report(err: &Error) -> ExitCode {
    let _ = writeln!(std::io::stderr().lock(), "{err}");
    ExitCode::from(err.exit_code())
}
