//! `podlab quadlet generate|install|rm`: a session as a systemd user service, through
//! Podman's quadlet generator, with no daemon of podlab's own.
//!
//! `generate` prints one unit (or writes a set with `-o DIR`); `install` writes it into
//! podlab's unit directory and starts it when a systemd user instance runs, or says what to
//! run when none does; `rm` removes only files podlab wrote. The units come from
//! [`crate::emit::quadlet`], the host decisions and the unit directory from [`crate::units`].

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use super::print_result;
use super::session_args::{SessionArgs, current_dir};
use crate::capabilities::{Capabilities, PodmanVersion, UnitType};
use crate::emit::quadlet::unit::check_unit_type;
use crate::emit::quadlet::{Emitted, container_unit, kube_unit};
use crate::engine::{self, ConnectOptions, Engine};
use crate::session::{Session, UserMapping};
use crate::units::{self, ImageUser, Written};
use crate::{Error, Result};

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Print the session's unit on stdout, or write it into a directory (-o).
    Generate(GenerateArgs),
    /// Install the session's unit into ~/.config/containers/systemd/podlab/ and start it.
    Install(InstallArgs),
    /// Remove a unit podlab installed (never a file podlab did not write).
    Rm(RmArgs),
}

/// The unit type to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Kind {
    /// A `.container` unit: the session's container, as `podlab run` creates it.
    Container,
    /// A `.kube` unit running a YAML file (from `podlab kube generate`) with podman kube play.
    Kube,
}

#[derive(Debug, clap::Args)]
pub struct UnitArgs {
    #[command(flatten)]
    session: SessionArgs,
    /// Unit type.
    #[arg(long, value_enum, default_value = "container")]
    kind: Kind,
    /// The YAML a kube unit plays (required with --kind kube).
    #[arg(long, value_name = "FILE", required_if_eq("kind", "kube"))]
    yaml: Option<PathBuf>,
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
    name: String,
    /// Remove it even if it was edited since podlab wrote it.
    #[arg(short, long)]
    force: bool,
}

pub async fn run(command: Command, connect: &ConnectOptions) -> Result<u8> {
    match command {
        Command::Generate(args) => generate(args, connect).await,
        Command::Install(args) => install(args, connect).await,
        Command::Rm(args) => rm(&args).await,
    }
}

async fn generate(args: GenerateArgs, connect: &ConnectOptions) -> Result<u8> {
    let (emitted, caps, _) = build(&args.unit, connect).await?;
    let text = emitted.unit.render(&caps)?;
    let Some(dir) = args.output else {
        print_result(&text)?;
        return Ok(0);
    };
    let files = [(emitted.unit.file_name(), text)];
    let written = units::install(&dir, &files, args.unit.force).await?;
    print_written(&written)
}

async fn install(args: InstallArgs, connect: &ConnectOptions) -> Result<u8> {
    let (emitted, caps, session) = build(&args.unit, connect).await?;
    let text = emitted.unit.render(&caps)?;
    let dir = units::unit_dir()?;
    let file = emitted.unit.file_name();
    if !dir.join(&file).exists() {
        units::check_ports(&session.ports)?;
    }
    let written = units::install(&dir, &[(file, text)], args.unit.force).await?;
    print_written(&written)?;
    let service = format!("{}.service", emitted.unit.name);
    if units::systemd_user_instance() {
        units::systemctl(&["daemon-reload"])?;
        units::systemctl(&["restart", &service])?;
        tracing::warn!("started {service}");
    } else {
        tracing::warn!(
            "no systemd user instance runs here, so nothing was started; where one runs, run: systemctl --user daemon-reload && systemctl --user start {service}"
        );
    }
    if !units::lingering() {
        tracing::warn!(
            "lingering is off: your services stop when you log out (enable it with: loginctl enable-linger)"
        );
    }
    Ok(0)
}

async fn rm(args: &RmArgs) -> Result<u8> {
    let dir = units::unit_dir()?;
    let service = format!("{}.service", args.name);
    let running = units::systemd_user_instance();
    if running {
        // Stop it while its unit still exists; a unit that is not loaded is no error here.
        let _ = units::systemctl(&["stop", &service]);
    }
    let removed = units::remove(&dir, &args.name, args.force).await?;
    let mut out = String::new();
    for path in &removed {
        let _ = writeln!(out, "{}", path.display());
    }
    print_result(&out)?;
    if running {
        units::systemctl(&["daemon-reload"])?;
    } else {
        tracing::warn!(
            "no systemd user instance runs here; where one runs, run: systemctl --user stop {service} && systemctl --user daemon-reload"
        );
    }
    Ok(0)
}

fn print_written(written: &[(PathBuf, Written)]) -> Result<u8> {
    let mut out = String::new();
    for (path, outcome) in written {
        let what = match outcome {
            Written::Created => "created",
            Written::Replaced => "replaced",
            Written::Unchanged => "unchanged",
        };
        tracing::info!("{what} {}", path.display());
        let _ = writeln!(out, "{}", path.display());
    }
    print_result(&out)?;
    Ok(0)
}

/// The unit for the flags, the target's capabilities, and the session.
async fn build(
    args: &UnitArgs,
    connect: &ConnectOptions,
) -> Result<(Emitted, Capabilities, Session)> {
    let caps = target(&args.podman_version)?;
    check_unit_type(
        &caps,
        match args.kind {
            Kind::Container => UnitType::Container,
            Kind::Kube => UnitType::Kube,
        },
    )?;
    let cwd = current_dir()?;
    let session = args.session.resolve(&cwd, args.command.clone())?;
    let name = session
        .name
        .clone()
        .unwrap_or_else(|| session.project.clone());
    let emitted = match args.kind {
        Kind::Container => {
            let image_user = if session.user_map == UserMapping::Auto {
                image_user(&session, connect).await?
            } else {
                None
            };
            let planned = units::plan(&session, &caps, &name, image_user.as_ref())?;
            for notice in &planned.notices {
                tracing::warn!("{notice}");
            }
            container_unit(
                &session,
                &planned.container,
                planned.cdi_spec_dir.as_deref(),
                &caps,
            )?
        }
        Kind::Kube => {
            let yaml = args
                .yaml
                .as_deref()
                .map(|path| absolute(&cwd, path))
                .ok_or_else(|| Error::user("--kind kube needs --yaml FILE"))?;
            if !yaml.is_file() {
                return Err(Error::user(format!("{} is not a file", yaml.display()))
                    .hint("write it first: podlab kube generate > pod.yaml"));
            }
            let (_, cdi_spec_dir) = units::plan_gpus(&session, &caps)?;
            kube_unit(&name, &yaml, cdi_spec_dir.as_deref())?
        }
    };
    for notice in &emitted.notices {
        tracing::warn!("{notice}");
    }
    Ok((emitted, caps, session))
}

fn absolute(cwd: &Path, path: &Path) -> PathBuf {
    if path.is_absolute() {
        path.to_owned()
    } else {
        cwd.join(path)
    }
}

/// The image's user, asked from Podman; `None` when the image is not local.
async fn image_user(session: &Session, connect: &ConnectOptions) -> Result<Option<ImageUser>> {
    let connected = engine::connect(connect).await.map_err(|err| {
        let hint = err.hint_text().unwrap_or_default().to_owned();
        Error::env(format!(
            "--user-map auto needs the image's user from Podman: {}",
            err.message()
        ))
        .hint(format!(
            "{hint}{}pass --user-map keep-id or --user-map UID:GID to generate without Podman",
            if hint.is_empty() { "" } else { "; or " }
        ))
    })?;
    let image = session.image.reference();
    let Some(facts) = connected.engine.inspect_image(image).await? else {
        return Ok(None);
    };
    let passwd = if crate::plan::needs_passwd(&facts.user) {
        connected.engine.image_file(image, "/etc/passwd").await?
    } else {
        None
    };
    Ok(Some(ImageUser {
        user: facts.user,
        passwd,
    }))
}

/// The target Podman: a given version, or the local podman binary's, since its quadlet
/// generator is the one that will read the units.
fn target(version: &str) -> Result<Capabilities> {
    if version != "auto" {
        return Ok(Capabilities::for_version(version.parse()?));
    }
    let unknown = || {
        Error::env(
            "cannot tell which podman will read the units: `podman --version` did not answer",
        )
        .hint("install podman 4.4 or newer, or pass --podman-version V")
    };
    let podman = which::which("podman").map_err(|_| unknown())?;
    let out = std::process::Command::new(podman)
        .arg("--version")
        .output()
        .map_err(|_| unknown())?;
    let version: PodmanVersion = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .map_err(|_| unknown())?;
    Ok(Capabilities::for_version(version))
}
