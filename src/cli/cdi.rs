//! `podlab cdi generate | install | status | list | validate`: the flags, and what
//! [`crate::ops::cdi`] returns.

use std::path::{Path, PathBuf};

use super::session_args::RootArgs;
use super::{print_result, to_json};
use crate::capabilities::CdiVersion;
use crate::cdi::document::Format;
use crate::cdi::freshness::State;
use crate::cdi::generate::{HookMode, NameStyles, Options};
use crate::cdi::store::write_spec;
use crate::cdi::validate::validate_file;
use crate::ops::cdi::{self, Installed, target_podman};
use crate::{Error, Result};

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Print (or write) a CDI spec for this host's NVIDIA driver.
    Generate(GenerateArgs),
    /// Generate and write the spec where the target Podman reads it.
    Install(InstallArgs),
    /// Say whether each spec podlab wrote is fresh or stale, and refresh the user's own.
    Status(StatusArgs),
    /// List the CDI device names Podman can see.
    List(ListArgs),
    /// Check a CDI spec file.
    Validate(ValidateArgs),
}

/// How to generate.
#[derive(Debug, Clone, clap::Args)]
pub struct SpecArgs {
    #[command(flatten)]
    roots: RootArgs,
    /// Target Podman version (decides the cdiVersion), or `auto` to ask the local Podman.
    #[arg(long, default_value = "auto", value_name = "V|auto")]
    podman_version: String,
    /// `none`: libraries at their SONAMEs, no hooks; `nvidia-cdi-hook`: NVIDIA's hooked form.
    #[arg(long, value_enum, default_value_t = HookMode::None)]
    hooks: HookMode,
    /// Vendor of the device kind.
    #[arg(long, default_value = "nvidia.com")]
    vendor: String,
    /// Class of the device kind.
    #[arg(long, default_value = "gpu")]
    class: String,
    /// Device names to emit besides `all`.
    #[arg(long, value_delimiter = ',', default_value = "index,uuid", value_parser = ["index", "uuid"])]
    names: Vec<String>,
}

#[derive(Debug, clap::Args)]
pub struct GenerateArgs {
    #[command(flatten)]
    spec: SpecArgs,
    /// Write to FILE (atomically) instead of stdout; `-` is stdout.
    #[arg(short, long, value_name = "FILE|-")]
    output: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t = Format::Yaml)]
    format: Format,
    /// Replace FILE even if it was edited or not written by podlab.
    #[arg(long)]
    force: bool,
}

#[derive(Debug, clap::Args)]
pub struct InstallArgs {
    #[command(flatten)]
    spec: SpecArgs,
    /// Install for every user in /etc/cdi (run as root).
    #[arg(long)]
    system: bool,
    /// Replace the spec even if it was edited or not written by podlab.
    #[arg(long)]
    force: bool,
}

#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// Print the specs as a JSON array instead of lines (shape in README.md).
    #[arg(long)]
    json: bool,
}

#[derive(Debug, clap::Args)]
pub struct ListArgs {
    /// Print the devices as a JSON array instead of names (shape in README.md).
    #[arg(long)]
    json: bool,
    /// Target Podman version, or `auto`.
    #[arg(long, default_value = "auto", value_name = "V|auto")]
    podman_version: String,
}

#[derive(Debug, clap::Args)]
pub struct ValidateArgs {
    file: PathBuf,
}

pub async fn run(command: Command, url: Option<String>) -> Result<u8> {
    match command {
        Command::Generate(args) => generate(args, url).await,
        Command::Install(args) => {
            let caps = target_podman(&args.spec.podman_version, url).await?;
            let options = options(&args.spec, caps.and_then(|caps| caps.max_cdi_version()));
            let roots = args.spec.roots.roots()?;
            match cdi::install(&roots, &options, caps, args.system, args.force).await? {
                Installed::Written(out) => print_result(&out)?,
                Installed::Unreadable(text) => eprintln_plain(&text),
            }
            Ok(0)
        }
        Command::Status(args) => status(&args, url).await,
        Command::List(args) => {
            let caps = target_podman(&args.podman_version, url).await?;
            let devices = cdi::devices(caps)?;
            print_result(&if args.json {
                to_json(&devices)?
            } else {
                devices
                    .iter()
                    .flat_map(|device| [device.name.as_str(), "\n"])
                    .collect()
            })?;
            Ok(0)
        }
        Command::Validate(args) => validate(&args),
    }
}

fn options(args: &SpecArgs, max_version: Option<CdiVersion>) -> Options {
    Options {
        kind: format!("{}/{}", args.vendor, args.class),
        names: NameStyles {
            index: args.names.iter().any(|n| n == "index"),
            uuid: args.names.iter().any(|n| n == "uuid"),
        },
        hooks: args.hooks,
        max_version,
    }
}

async fn generate(args: GenerateArgs, url: Option<String>) -> Result<u8> {
    let roots = args.spec.roots.roots()?;
    let caps = target_podman(&args.spec.podman_version, url).await?;
    let options = options(&args.spec, caps.and_then(|caps| caps.max_cdi_version()));
    let text = cdi::generate(&roots, &options, args.format)?;
    match args.output.as_deref() {
        None => print_result(&text)?,
        Some(path) if path == Path::new("-") => print_result(&text)?,
        Some(path) => {
            let podman_dirs = cdi::spec_dirs(caps);
            let written = write_spec(path, &text, &options.kind, args.force, &podman_dirs).await?;
            tracing::info!("{}: {written:?}", path.display());
        }
    }
    Ok(0)
}

fn eprintln_plain(text: &str) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stderr().lock(), "{text}");
}

async fn status(args: &StatusArgs, url: Option<String>) -> Result<u8> {
    let max_version = target_podman("auto", url)
        .await?
        .and_then(|caps| caps.max_cdi_version());
    let checked = cdi::check_and_refresh(max_version);
    let ok = checked
        .iter()
        .all(|spec| !matches!(spec.status.state, State::Stale { .. }));
    print_result(&if args.json {
        to_json(&checked)?
    } else {
        cdi::status_text(&checked)
    })?;
    Ok(u8::from(!ok))
}

fn validate(args: &ValidateArgs) -> Result<u8> {
    match validate_file(&args.file)? {
        Ok(spec) => {
            print_result(&format!(
                "{}: valid (cdiVersion {}, kind {}, {} devices)\n",
                args.file.display(),
                spec.cdi_version,
                spec.kind,
                spec.devices.len()
            ))?;
            Ok(0)
        }
        Err(problems) => {
            for problem in &problems {
                eprintln_plain(&format!("{}:{problem}", args.file.display()));
            }
            Err(Error::user(format!(
                "{} is not a valid CDI spec ({} problems)",
                args.file.display(),
                problems.len()
            ))
            .hint(
                "fix the fields named above; podlab cdi generate writes a valid spec for this host",
            ))
        }
    }
}
