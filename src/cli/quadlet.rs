//! `podlab quadlet generate|install|rm`: a session as a systemd user service, through
//! Podman's quadlet generator, with no daemon of podlab's own.
//!
//! `generate` prints one unit (or writes a set with `-o DIR`); `install` writes it into
//! podlab's unit directory and starts it when a systemd user instance runs, or says what to
//! run when none does; `rm` removes only files podlab wrote. The units come from
//! [`crate::emit::quadlet`], the host decisions and the unit directory from [`crate::ops::units`].

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use super::print_result;
use super::session_args::{SessionArgs, current_dir};
use crate::capabilities::{Capabilities, PodmanVersion, UnitType};
use crate::emit::quadlet::unit::check_unit_type;
use crate::emit::quadlet::unit::with_header;
use crate::emit::quadlet::{container_unit, kube_unit, set};
use crate::engine::{self, ConnectOptions, Engine};
use crate::ops::units::{self, ImageUser, Written};
use crate::session::{Session, UserMapping};
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

/// The unit type to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Kind {
    /// A `.container` unit: the session's container, as `podlab run` creates it.
    Container,
    /// A `.kube` unit running the session's pod YAML with podman kube play.
    Kube,
    /// A `.container` unit joined to a `.pod` unit of the same name (podman 5.0+), which
    /// owns the ports, shm and user mapping, so more containers can join the session.
    Pod,
}

#[derive(Debug, clap::Args)]
pub struct UnitArgs {
    /// A session (or any container) whose unit to write, rebuilt from its inspect data;
    /// session flags given with it override what it has (--name renames it).
    #[arg(value_name = "SESSION", conflicts_with_all = ["preset", "yaml"])]
    container: Option<String>,
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

async fn install(args: InstallArgs, connect: &ConnectOptions) -> Result<u8> {
    let built = build(&args.unit, connect).await?;
    let dir = units::unit_dir()?;
    if !built.files.iter().any(|(file, _)| dir.join(file).exists()) {
        units::check_ports(&built.session.ports)?;
    }
    let written = units::install(&dir, &built.files, args.unit.force).await?;
    print_written(&written)?;
    let service = built.service;
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

/// The files a session's units make: (file name, text), the main unit first.
struct Built {
    files: Vec<(String, String)>,
    /// The service that runs the session.
    service: String,
    session: Session,
}

/// The units (and the YAML a `.kube` unit plays) for the flags.
async fn build(args: &UnitArgs, connect: &ConnectOptions) -> Result<Built> {
    let caps = target(&args.podman_version)?;
    check_unit_type(
        &caps,
        match args.kind {
            Kind::Container => UnitType::Container,
            Kind::Kube => UnitType::Kube,
            Kind::Pod => UnitType::Pod,
        },
    )?;
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
    let name = session
        .name
        .clone()
        .unwrap_or_else(|| session.project.clone());
    let mut companions = Vec::new();
    let mut yaml_file = None;
    let emitted = match args.kind {
        Kind::Container | Kind::Pod => {
            let image_user = if session.user_map == UserMapping::Auto {
                image_user(&session, connect).await?
            } else {
                None
            };
            let planned = units::plan(&session, &caps, &name, image_user.as_ref())?;
            for notice in &planned.notices {
                tracing::warn!("{notice}");
            }
            let mut emitted = container_unit(
                &session,
                &planned.container,
                planned.cdi_spec_dir.as_deref(),
                &caps,
            )?;
            if args.kind == Kind::Pod {
                companions.push(set::join_pod(&mut emitted, &caps)?);
            }
            companions.extend(set::image_unit(
                &session.image,
                &mut emitted,
                args.pull_unit,
                &caps,
            )?);
            emitted
        }
        Kind::Kube => {
            let yaml = if let Some(path) = &args.yaml {
                let yaml = absolute(&cwd, path);
                if !yaml.is_file() {
                    return Err(
                        Error::user(format!("{} is not a file", yaml.display())).hint(
                            "write it first: podlab kube generate > pod.yaml, or leave out --yaml",
                        ),
                    );
                }
                yaml
            } else {
                let connected = engine::connect(connect).await?;
                let text = crate::ops::kube::podman_yaml(&connected.engine, caps, &session).await?;
                let file = format!("{name}.yaml");
                yaml_file = Some((file.clone(), with_header(&text)));
                // Quadlet resolves a relative path against the unit's own directory.
                PathBuf::from(file)
            };
            let (_, cdi_spec_dir) = units::plan_gpus(&session, &caps)?;
            kube_unit(&name, &yaml, cdi_spec_dir.as_deref())?
        }
    };
    for notice in &emitted.notices {
        tracing::warn!("{notice}");
    }
    let mut files = vec![(emitted.unit.file_name(), emitted.unit.render(&caps)?)];
    for unit in &companions {
        files.push((unit.file_name(), unit.render(&caps)?));
    }
    files.extend(yaml_file);
    Ok(Built {
        files,
        service: format!("{name}.service"),
        session,
    })
}

fn absolute(cwd: &Path, path: &Path) -> PathBuf {
    if path.is_absolute() {
        path.to_owned()
    } else {
        cwd.join(path)
    }
}

/// The image's user, asked from Podman; `None` when the image is not local.
pub(super) async fn image_user(
    session: &Session,
    connect: &ConnectOptions,
) -> Result<Option<ImageUser>> {
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
pub(super) fn target(version: &str) -> Result<Capabilities> {
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
