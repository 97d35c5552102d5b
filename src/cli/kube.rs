//! `podlab kube generate | play | down`: the flags, and the YAML or the lines
//! [`crate::ops::kube`] returns.
//!
//! `generate` resolves the session exactly as `podlab run` does (the same flags, `podlab.toml`
//! and `-- CMD`), or from a running container; `play` and `down` take a YAML file (`-`: stdin)
//! or a name.

use std::io::Read as _;
use std::path::{Path, PathBuf};

use super::print_result;
use super::session_args::{SessionArgs, current_dir};
use crate::capabilities::{Capabilities, PodmanVersion};
use crate::emit::kube::{Kind, Scale, Target, VolumeMode, parse_class_name, parse_quantity};
use crate::engine::{self, ConnectOptions};
use crate::ops::kube::{self, DEFAULT_PVC_SIZE, Options};
use crate::session::values;
use crate::{Error, Result};

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Print Kubernetes YAML for a session: for podman kube play (default) or for a cluster.
    Generate(Box<GenerateArgs>),
    /// Create and start the pods of a YAML file (or of a session, by name) through the API.
    Play(PlayArgs),
    /// Stop and remove the pods of a YAML file (or one pod, by name) that podlab started.
    Down(DownArgs),
}

#[derive(Debug, clap::Args)]
pub struct GenerateArgs {
    /// A running session (or any container) to export, rebuilt from its inspect data; session
    /// flags given with it override what it has (--name renames it).
    #[arg(value_name = "SESSION", conflicts_with = "preset")]
    container: Option<crate::session::values::Name>,
    #[command(flatten)]
    session: SessionArgs,
    #[command(flatten)]
    output: OutputArgs,
    /// Write the YAML to FILE (behind podlab's header; never over a file podlab did not write).
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    file: Option<PathBuf>,
    /// Replace FILE even if it was edited since podlab wrote it.
    #[arg(long)]
    force: bool,
    /// The command; the image's own when none is given.
    #[arg(last = true, value_name = "CMD")]
    command: Vec<String>,
}

/// What to generate, beyond the session.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Kubernetes")]
pub struct OutputArgs {
    /// Who reads the YAML: podman (kube play on this host) or kubernetes (a cluster with the
    /// NVIDIA device plugin).
    #[arg(long, value_enum, default_value_t)]
    target: Target,
    /// The workload: pod (a dev session), job (batch training; an Indexed Job with --nodes),
    /// deployment (a notebook; plus a Service for its ports on a cluster), jobset (a JobSet
    /// of --nodes pods).
    #[arg(long, value_enum, default_value_t)]
    kind: Kind,
    /// Kubernetes, --kind job|jobset: the pods (one per node) that train together, each given
    /// torchrun's PET_* environment.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = values::node_count)]
    nodes: u32,
    /// Kubernetes: the GPUs of each pod (node), at most what --gpus names.
    #[arg(long, value_name = "G", conflicts_with = "gpu_count")]
    gpus_per_node: Option<u32>,
    /// Kubernetes, --kind job|jobset: the Kueue LocalQueue that admits the workload.
    #[arg(long, value_name = "QUEUE", value_parser = parse_class_name)]
    queue: Option<String>,
    /// Kubernetes: hostpath keeps the host paths; pvc claims a PersistentVolumeClaim per
    /// mount.
    #[arg(long = "volumes", value_enum, default_value_t)]
    volume_mode: VolumeMode,
    /// Kubernetes, --volumes pvc: the size each claim requests.
    #[arg(long, value_name = "SIZE", default_value = DEFAULT_PVC_SIZE, value_parser = parse_quantity)]
    pvc_size: String,
    /// Kubernetes, --volumes pvc: the claims' storage class [default: the cluster's]
    #[arg(long, value_name = "NAME", value_parser = parse_class_name)]
    storage_class: Option<String>,
    /// Kubernetes: runtimeClassName for the pod, e.g. nvidia.
    #[arg(long, value_name = "NAME", value_parser = parse_class_name)]
    runtime_class: Option<String>,
    /// Kubernetes: the number of GPUs to request [default: from --gpus: a list's length,
    /// or this host's GPUs for all]
    #[arg(long, value_name = "N")]
    gpu_count: Option<u32>,
    /// Podman: the version that will play the YAML (decides CDI keys and the userns
    /// annotation), or auto for the server's.
    #[arg(long, value_name = "V|auto", default_value = "auto")]
    podman_version: String,
}

impl OutputArgs {
    fn options(&self) -> Options {
        Options {
            target: self.target,
            kind: self.kind,
            volume_mode: self.volume_mode,
            pvc_size: self.pvc_size.clone(),
            storage_class: self.storage_class.clone(),
            runtime_class: self.runtime_class.clone(),
            gpu_count: self.gpu_count,
            gpus_per_node: self.gpus_per_node,
            scale: Scale {
                nodes: self.nodes,
                queue: self.queue.clone(),
            },
        }
    }
}

#[derive(Debug, clap::Args)]
pub struct PlayArgs {
    /// The YAML file (`-`: stdin), as podlab kube generate writes it; or a session (any
    /// container) to play as a pod of the same name, as podlab kube generate SESSION
    /// describes it.
    #[arg(value_name = "FILE|SESSION")]
    target: String,
}

#[derive(Debug, clap::Args)]
pub struct DownArgs {
    /// The YAML file that was played (`-`: stdin), or the name of one pod.
    #[arg(value_name = "FILE|POD")]
    target: String,
}

pub async fn run(command: Command, connect: &ConnectOptions) -> Result<u8> {
    match command {
        Command::Generate(args) => generate(*args, connect).await,
        Command::Play(args) => {
            let path = Path::new(&args.target);
            let file = args.target == "-" || path.exists();
            let yaml = if file { Some(read_yaml(path)?) } else { None };
            let connected = engine::connect(connect).await?;
            let yaml = match yaml {
                Some(yaml) => yaml,
                None => {
                    kube::session_yaml(&connected.engine, connected.capabilities(), &args.target)
                        .await?
                }
            };
            print_result(&kube::play(&connected.engine, &yaml).await?)?;
            Ok(0)
        }
        Command::Down(args) => {
            let connected = engine::connect(connect).await?;
            let path = Path::new(&args.target);
            let yaml = if args.target == "-" || path.exists() {
                read_yaml(path)?
            } else {
                kube::pod_yaml(&connected.engine, &args.target).await?
            };
            print_result(&kube::down(&connected.engine, &yaml).await?)?;
            Ok(0)
        }
    }
}

async fn generate(args: GenerateArgs, connect: &ConnectOptions) -> Result<u8> {
    let cwd = current_dir()?;
    let (session, connected) = if let Some(container) = &args.container {
        let connected = engine::connect(connect).await?;
        let session = args
            .session
            .resolve_container(&connected.engine, container, &cwd, args.command)
            .await?;
        (session, connected)
    } else {
        let session = args.session.resolve(&cwd, args.command)?;
        if args.output.target == Target::Kubernetes {
            // A cluster needs only the image's user from Podman: never start a service for it.
            let running = ConnectOptions {
                autostart: false,
                ..connect.clone()
            };
            let Ok(connected) = engine::connect(&running).await else {
                let yaml = kube::cluster_yaml_without_podman(&session, &args.output.options())?;
                return write_yaml(args.file.as_deref(), &yaml, args.force).await;
            };
            (session, connected)
        } else {
            (session, engine::connect(connect).await?)
        }
    };
    let caps = if args.output.podman_version == "auto" {
        connected.capabilities()
    } else {
        Capabilities::for_version(args.output.podman_version.parse::<PodmanVersion>()?)
    };
    let yaml = kube::generate(&connected.engine, caps, &session, &args.output.options()).await?;
    write_yaml(args.file.as_deref(), &yaml, args.force).await
}

/// The YAML to FILE, or to stdout without one (or for `-`).
async fn write_yaml(file: Option<&Path>, yaml: &str, force: bool) -> Result<u8> {
    match file {
        Some(file) if file != Path::new("-") => {
            kube::write_yaml(file, yaml, force).await?;
            tracing::info!("wrote {}", file.display());
        }
        _ => print_result(yaml)?,
    }
    Ok(0)
}

/// The YAML of FILE, or of stdin for `-`.
fn read_yaml(file: &Path) -> Result<String> {
    if file == Path::new("-") {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|err| Error::env(format!("cannot read the YAML from stdin: {err}")))?;
        return Ok(text);
    }
    std::fs::read_to_string(file).map_err(|err| {
        Error::user(format!("cannot read {}: {err}", file.display()))
            .hint("write one with podlab kube generate -o FILE")
    })
}
