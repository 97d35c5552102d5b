//! `podlab cdi generate | install | status | list | validate`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use super::session_args::RootArgs;
use super::{print_result, to_json};
use crate::capabilities::{Capabilities, CdiVersion, Feature, PodmanVersion};
use crate::cdi::document::{Format, render};
use crate::cdi::freshness::{self, State, check_all, install_dirs, options_of, refresh_command};
use crate::cdi::generate::{self, HookMode, NameStyles, Options};
use crate::cdi::store::{
    self, DEFAULT_DIRS, SPEC_FILE, SYSTEM_DIR, Written, spec_files, user_dir, write_spec,
};
use crate::cdi::validate::validate_file;
use crate::engine::socket::{CallerEnv, Probe, candidates, ping};
use crate::gpu::inventory::Warning;
use crate::gpu::{DriverRoots, discover};
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
    #[arg(long)]
    json: bool,
}

#[derive(Debug, clap::Args)]
pub struct ListArgs {
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
        Command::Generate(args) => generate_cmd(args, url).await,
        Command::Install(args) => install(args, url).await,
        Command::Status(args) => status(&args, url).await,
        Command::List(args) => list(&args, url).await,
        Command::Validate(args) => validate(&args),
    }
}

/// The target Podman: a given version, or the local one (its socket if one answers, else
/// `podman --version`). Never starts a service just to learn a version.
pub async fn target_podman(version: &str, url: Option<String>) -> Result<Option<Capabilities>> {
    if version != "auto" {
        return Ok(Some(Capabilities::for_version(version.parse()?)));
    }
    let caller = CallerEnv::from_process(url);
    for endpoint in candidates(&caller).unwrap_or_default() {
        if let Ok(Probe::Alive { api_version }) = ping(&endpoint.path).await {
            if let Ok(version) = api_version.parse::<PodmanVersion>() {
                return Ok(Some(Capabilities::for_version(version)));
            }
        }
    }
    let from_binary = which::which("podman").ok().and_then(|podman| {
        let out = std::process::Command::new(podman)
            .arg("--version")
            .output()
            .ok()?;
        String::from_utf8(out.stdout)
            .ok()?
            .trim()
            .parse::<PodmanVersion>()
            .ok()
    });
    if from_binary.is_none() {
        tracing::warn!(
            "cannot find the local podman's version: generating for the newest cdiVersion podlab knows (use --podman-version to choose)"
        );
    }
    Ok(from_binary.map(Capabilities::for_version))
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

fn report_warnings(warnings: &[Warning]) {
    for warning in warnings {
        if let Some(hint) = &warning.hint {
            tracing::warn!("{}\n  hint: {hint}", warning.message);
        } else {
            tracing::warn!("{}", warning.message);
        }
    }
}

async fn generate_cmd(args: GenerateArgs, url: Option<String>) -> Result<u8> {
    let roots = args.spec.roots.roots()?;
    let caps = target_podman(&args.spec.podman_version, url).await?;
    let options = options(&args.spec, caps.and_then(|caps| caps.max_cdi_version()));
    let inventory = discover(&roots)?;
    let generated = generate::generate(&inventory, &roots, &options)?;
    report_warnings(&generated.warnings);
    let provenance = freshness::provenance(&roots, &options, inventory.fingerprint());
    let text = render(&generated.spec, args.format, Some(&provenance))?;
    match args.output.as_deref() {
        None => print_result(&text)?,
        Some(path) if path == Path::new("-") => print_result(&text)?,
        Some(path) => {
            let written = write_spec(path, &text, &options.kind, args.force).await?;
            tracing::info!("{}: {written:?}", path.display());
        }
    }
    Ok(0)
}

async fn install(args: InstallArgs, url: Option<String>) -> Result<u8> {
    let is_root = rustix::process::geteuid().is_root();
    let caps = target_podman(&args.spec.podman_version, url).await?;
    let options = options(&args.spec, caps.and_then(|caps| caps.max_cdi_version()));
    let roots = args.spec.roots.roots()?;
    let user_spec_dirs = caps.is_some_and(|caps| caps.has(Feature::CdiSpecDirs));
    let dir = if args.system {
        if !is_root {
            return Err(
                Error::user(format!("--system writes {SYSTEM_DIR} and needs root"))
                    .hint("sudo podlab cdi install --system"),
            );
        }
        PathBuf::from(SYSTEM_DIR)
    } else if is_root {
        return Err(Error::user("running as root: say where to install")
            .hint("sudo podlab cdi install --system"));
    } else if user_spec_dirs {
        user_dir()?
    } else {
        let version = caps.map_or_else(
            || "this podman".to_owned(),
            |caps| format!("podman {}", caps.version()),
        );
        eprintln_plain(&format!(
            "{version} reads CDI specs only from {} and {}: it cannot read a spec installed by a user \
             (cdi_spec_dirs needs podman {}).\npodlab sessions, quadlet units and kube YAML carry the GPU edits inline \
             instead, so they need no spec. For plain `podman run --device nvidia.com/gpu=all`, have root run:\n  \
             sudo podlab cdi install --system",
            DEFAULT_DIRS[0],
            DEFAULT_DIRS[1],
            Feature::CdiSpecDirs.since()
        ));
        return Ok(0);
    };
    std::fs::create_dir_all(&dir).map_err(|err| {
        Error::env(format!("cannot create {}: {err}", dir.display()))
            .hint("check the permissions of its parent")
    })?;
    let (text, warnings) = freshness::generate_document(&roots, &options)?;
    report_warnings(&warnings);
    let path = dir.join(SPEC_FILE);
    let written = write_spec(&path, &text, &options.kind, args.force).await?;
    let mut out = format!(
        "{}: {}\n",
        path.display(),
        match written {
            Written::Created => "installed",
            Written::Replaced => "replaced",
            Written::Unchanged => "already up to date",
        }
    );
    if !args.system {
        let conf = store::containers_conf()?;
        let current = std::fs::read_to_string(&conf).unwrap_or_default();
        if let Some(updated) = store::with_cdi_spec_dir(&current, &dir)? {
            if let Some(parent) = conf.parent() {
                std::fs::create_dir_all(parent).map_err(|err| {
                    Error::env(format!("cannot create {}: {err}", parent.display()))
                })?;
            }
            crate::host::atomic::write_file(&conf, updated.as_bytes(), 0o644)?;
            let _ = writeln!(
                out,
                "{}: added {} to engine.cdi_spec_dirs",
                conf.display(),
                dir.display()
            );
        }
    }
    print_result(&out)?;
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
    let mut statuses = check_all(&install_dirs());
    let mut text = String::new();
    for status in &mut statuses {
        let path = status.path.clone();
        match status.state.clone() {
            State::Fresh => {
                let _ = writeln!(
                    text,
                    "✔ {}: fresh (driver {})",
                    path.display(),
                    status.driver_version
                );
            }
            State::Edited => {
                let _ = writeln!(
                    text,
                    "⚠ {}: edited by hand; podlab leaves it alone",
                    path.display()
                );
                let _ = writeln!(
                    text,
                    "  hint: to let podlab manage it again: {}",
                    refresh_command(&path)
                );
            }
            State::Stale { reason } => {
                if refresh(status, max_version).is_ok() {
                    let _ = writeln!(
                        text,
                        "✔ {}: was stale ({reason}); regenerated",
                        path.display()
                    );
                    status.state = State::Fresh;
                } else {
                    let _ = writeln!(text, "✘ {}: stale: {reason}", path.display());
                    let _ = writeln!(text, "  hint: {}", refresh_command(&path));
                }
            }
        }
    }
    if statuses.is_empty() {
        let _ = writeln!(
            text,
            "no CDI specs written by podlab in {}",
            display_dirs(&install_dirs())
        );
    }
    let ok = statuses
        .iter()
        .all(|status| !matches!(status.state, State::Stale { .. }));
    print_result(&if args.json { to_json(&statuses)? } else { text })?;
    Ok(u8::from(!ok))
}

/// Regenerates a stale spec the user may write (their own); root's specs are left to root.
fn refresh(status: &freshness::SpecStatus, max_version: Option<CdiVersion>) -> Result<()> {
    if rustix::fs::access(&status.path, rustix::fs::Access::WRITE_OK).is_err() {
        return Err(Error::env("not writable"));
    }
    let roots = DriverRoots {
        driver_root: status.provenance.driver_root.clone().into(),
        dev_root: status.provenance.dev_root.clone().into(),
    };
    let (text, warnings) =
        freshness::generate_document(&roots, &options_of(&status.provenance, max_version))?;
    report_warnings(&warnings);
    crate::host::atomic::write_file(&status.path, text.as_bytes(), 0o644)
}

fn display_dirs(dirs: &[PathBuf]) -> String {
    dirs.iter()
        .map(|dir| dir.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

async fn list(args: &ListArgs, url: Option<String>) -> Result<u8> {
    let caps = target_podman(&args.podman_version, url).await?;
    let dirs = caps.map_or_else(
        || DEFAULT_DIRS.iter().map(PathBuf::from).collect(),
        |caps| store::podman_spec_dirs(&caps),
    );
    let mut names = Vec::new();
    for dir in &dirs {
        for file in spec_files(dir) {
            match validate_file(&file)? {
                Ok(spec) => names.extend(
                    spec.devices
                        .iter()
                        .map(|device| format!("{}={}", spec.kind, device.name)),
                ),
                Err(problems) => {
                    let first = problems
                        .first()
                        .map(ToString::to_string)
                        .unwrap_or_default();
                    tracing::warn!("{}: podman will reject this spec: {first}", file.display());
                }
            }
        }
    }
    names.sort();
    names.dedup();
    if names.is_empty() {
        tracing::warn!("no CDI devices in {}", display_dirs(&dirs));
    }
    print_result(&names.iter().fold(String::new(), |mut out, name| {
        let _ = writeln!(out, "{name}");
        out
    }))?;
    Ok(0)
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
