//! `podlab quadlet generate|install|rm`: the flags, and the unit or the paths
//! [`crate::ops::quadlet`] returns.
//!
//! `generate` prints one unit (or writes a set with `-o DIR`); `install` writes it into
//! podlab's unit directory and starts it; `rm` removes only files podlab wrote.

use std::fmt::Write as _;
use std::path::PathBuf;

use super::print_result;
use super::session_args::{SessionArgs, current_dir};
use crate::engine::{self, ConnectOptions};
use crate::ops::quadlet::{self, Built, Kind, UnitOptions};
use crate::ops::units::{self, Written};
use crate::{Error, Result};

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Print the session's unit on stdout, or write it into a directory (-o); as from
    /// CONTAINER, the unit of a running container, read from its inspect data.
    #[command(visible_alias = "from")]
    Generate(GenerateArgs),
    /// Install the session's unit into ~/.config/containers/systemd/podlab/ and start it.
    Install(InstallArgs),
    /// Remove a unit podlab installed (never a file podlab did not write).
    Rm(RmArgs),
}

#[derive(Debug, clap::Args)]
pub struct UnitArgs {
    /// A session (or any container) whose unit to write, rebuilt from its inspect data;
    /// session flags given with it override what it has (--name renames it).
    #[arg(value_name = "SESSION", conflicts_with_all = ["preset", "yaml"])]
    container: Option<crate::session::values::Name>,
    #[command(flatten)]
    session: SessionArgs,
    /// Unit type.
    #[arg(long, value_enum, default_value = "container")]
    kind: Kind,
    /// The YAML a kube unit plays; without it, the session's own (as podlab kube generate
    /// writes it) goes beside the unit as NAME.yaml.
    #[arg(long, value_name = "FILE")]
    yaml: Option<PathBuf>,
    /// Also write an .image unit that pulls the image before the service starts (podman
    /// 4.8+). A session built from a Containerfile always gets a .build unit (5.2+).
    #[arg(long)]
    pull_unit: bool,
    /// Target Podman version (decides the keys used), or `auto` for the local podman.
    #[arg(long, default_value = "auto", value_name = "V|auto")]
    podman_version: String,
    /// Replace a unit file that was edited since podlab wrote it.
    #[arg(long)]
    force: bool,
    /// The command; the image's own when none is given.
    #[arg(last = true, value_name = "CMD")]
    command: Vec<String>,
}

#[derive(Debug, clap::Args)]
pub struct GenerateArgs {
    #[command(flatten)]
    unit: UnitArgs,
    /// Write the unit files into DIR (created if missing) instead of printing.
    #[arg(short, long, value_name = "DIR")]
    output: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct InstallArgs {
    #[command(flatten)]
    unit: UnitArgs,
}

#[derive(Debug, clap::Args)]
pub struct RmArgs {
    /// The unit's name (its file name without the extension).
    name: crate::session::values::Name,
    /// Remove it even if it was edited since podlab wrote it.
    #[arg(short, long)]
    force: bool,
}

pub async fn run(command: Command, connect: &ConnectOptions) -> Result<u8> {
    match command {
        Command::Generate(args) => generate(args, connect).await,
        Command::Install(args) => {
            let built = build(&args.unit, connect).await?;
            print_written(&quadlet::install(&built, args.unit.force, connect).await?)?;
            quadlet::start(&built)?;
            Ok(0)
        }
        Command::Rm(args) => {
            let removal = quadlet::remove(&args.name, args.force).await?;
            let mut out = String::new();
            for path in &removal.removed {
                let _ = writeln!(out, "{}", path.display());
            }
            print_result(&out)?;
            removal.finish()?;
            Ok(0)
        }
    }
}

async fn generate(args: GenerateArgs, connect: &ConnectOptions) -> Result<u8> {
    let built = build(&args.unit, connect).await?;
    let Some(dir) = args.output else {
        let [(_, main), rest @ ..] = built.files.as_slice() else {
            return Err(Error::env("podlab made no unit"));
        };
        if !rest.is_empty() {
            let names: Vec<&str> = rest.iter().map(|(name, _)| name.as_str()).collect();
            return Err(Error::user(format!(
                "this unit needs {} as well, and stdout holds one file",
                names.join(", ")
            ))
            .hint(
                "write the set into a directory with -o DIR, or install it: podlab quadlet install",
            ));
        }
        print_result(main)?;
        return Ok(0);
    };
    let written = units::install(&dir, &built.files, args.unit.force).await?;
    print_written(&written)
}

fn print_written(written: &[(PathBuf, Written)]) -> Result<u8> {
    let mut out = String::new();
    for (path, outcome) in written {
        if *outcome == Written::Removed {
            tracing::warn!("removed {} (not in the new set)", path.display());
            continue;
        }
        tracing::info!("{} {}", outcome.describe(), path.display());
        let _ = writeln!(out, "{}", path.display());
    }
    print_result(&out)?;
    Ok(0)
}

/// The session the flags describe (or the container's), made into units.
async fn build(args: &UnitArgs, connect: &ConnectOptions) -> Result<Built> {
    let caps = quadlet::target_for(&args.podman_version, args.kind)?;
    let cwd = current_dir()?;
    let session = match &args.container {
        Some(container) => {
            let connected = engine::connect(connect).await?;
            args.session
                .resolve_container(&connected.engine, container, &cwd, args.command.clone())
                .await?
        }
        None => args.session.resolve(&cwd, args.command.clone())?,
    };
    let options = UnitOptions {
        yaml: args.yaml.clone(),
        pull_unit: args.pull_unit,
    };
    quadlet::units(caps, session, args.kind, &options, &cwd, connect).await
}
