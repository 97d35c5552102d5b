//! NVIDIA CDI specs on this host: generated for the target Podman, installed where it reads
//! them, checked for freshness (a stale spec of the user's own is regenerated), and listed.
//! The specs themselves come from [`crate::cdi`]; this module decides where they go.

use std::fmt::Write as _;
use std::path::PathBuf;

use serde::Serialize;

use crate::capabilities::{Capabilities, CdiVersion, Feature, PodmanVersion};
use crate::cdi::document::{Format, render};
use crate::cdi::freshness::{
    self, SpecStatus, State, check_all, install_dirs, options_of, refresh_command,
};
use crate::cdi::generate::{self, Options};
use crate::cdi::store::{
    self, DEFAULT_DIRS, SPEC_FILE, SYSTEM_DIR, Written, spec_files, user_dir, write_spec,
};
use crate::cdi::validate::validate_file;
use crate::engine::socket::{CallerEnv, Probe, candidates, ping};
use crate::gpu::inventory::Warning;
use crate::gpu::{DriverRoots, discover};
use crate::ops::units;
use crate::{Error, Result};

/// The target Podman: a given version, or the local one (its socket if one answers, else
/// `podman --version`, remembered while the binary stays the same). Never starts a service
/// just to learn a version.
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
    let from_binary = crate::engine::local_version::podman_on_path().and_then(|(_, v)| v);
    if from_binary.is_none() {
        tracing::warn!(
            "cannot find the local podman's version: generating for the newest cdiVersion podlab knows (use --podman-version to choose)"
        );
    }
    Ok(from_binary.map(Capabilities::for_version))
}

/// Logs the warnings of discovery and generation, each with its hint.
fn report_warnings(warnings: &[Warning]) {
    for warning in warnings {
        if let Some(hint) = &warning.hint {
            tracing::warn!("{}\n  hint: {hint}", warning.message);
        } else {
            tracing::warn!("{}", warning.message);
        }
    }
}

/// The spec for this host's driver under `roots`, rendered as `format` with podlab's
/// provenance header.
pub fn generate(roots: &DriverRoots, options: &Options, format: Format) -> Result<String> {
    let inventory = discover(roots)?;
    let generated = generate::generate(&inventory, roots, options)?;
    report_warnings(&generated.warnings);
    let provenance = freshness::provenance(roots, options, inventory.fingerprint());
    render(&generated.spec, format, Some(&provenance))
}

/// What `podlab cdi install` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Installed {
    /// The lines to print: the spec written, and the `containers.conf` change, if any.
    Written(String),
    /// Nothing: this Podman cannot read a spec a user installs; what to do instead.
    Unreadable(String),
}

/// Generates the spec and writes it where the target Podman (`caps`) reads it: `/etc/cdi`
/// for `system` (as root), else the user's own directory, added to `engine.cdi_spec_dirs`.
pub async fn install(
    roots: &DriverRoots,
    options: &Options,
    caps: Option<Capabilities>,
    system: bool,
    force: bool,
) -> Result<Installed> {
    let is_root = rustix::process::geteuid().is_root();
    let user_spec_dirs = caps.is_some_and(|caps| caps.has(Feature::CdiSpecDirs));
    let dir = if system {
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
        return Ok(Installed::Unreadable(format!(
            "{version} reads CDI specs only from {} and {}: it cannot read a spec installed by a user \
             (cdi_spec_dirs needs podman {}).\npodlab sessions, quadlet units and kube YAML carry the GPU edits inline \
             instead, so they need no spec. For plain `podman run --device nvidia.com/gpu=all`, have root run:\n  \
             sudo podlab cdi install --system",
            DEFAULT_DIRS[0],
            DEFAULT_DIRS[1],
            Feature::CdiSpecDirs.since()
        )));
    };
    std::fs::create_dir_all(&dir).map_err(|err| {
        Error::env(format!("cannot create {}: {err}", dir.display()))
            .hint("check the permissions of its parent")
    })?;
    let (text, warnings) = freshness::generate_document(roots, options)?;
    report_warnings(&warnings);
    let path = dir.join(SPEC_FILE);
    let written = write_spec(
        &path,
        &text,
        &options.kind,
        force,
        std::slice::from_ref(&dir),
    )
    .await?;
    let mut out = format!(
        "{}: {}\n",
        path.display(),
        match written {
            Written::Created => "installed",
            Written::Replaced => "replaced",
            Written::Unchanged => "already up to date",
        }
    );
    if !system {
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
            restart_api_services();
        }
    }
    Ok(Installed::Written(out))
}

/// A Podman API service reads containers.conf once, when it starts: one that runs would not
/// see the `cdi_spec_dirs` just added, and `podlab run --gpus` through it would fail with
/// "unresolvable CDI devices". Restarts the user's `podman.service` if it runs (socket
/// activated, its socket stays) and ends podlab's private service (the next run starts a fresh
/// one); says what it did, and what to do about a service it cannot restart.
fn restart_api_services() {
    if let Some(runtime_dir) = std::env::var_os("XDG_RUNTIME_DIR").filter(|dir| !dir.is_empty()) {
        if crate::engine::autostart::stop_private_service(std::path::Path::new(&runtime_dir)) {
            tracing::warn!(
                "stopped podlab's private podman service: the next podlab run starts one that reads the new cdi_spec_dirs"
            );
        }
    }
    if !units::systemd_user_instance()
        || units::systemctl(&["is-active", "--quiet", "podman.service"]).is_err()
    {
        return;
    }
    match units::systemctl(&["try-restart", "podman.service"]) {
        Ok(()) => tracing::warn!(
            "restarted podman.service (systemctl --user) so that it reads the new cdi_spec_dirs"
        ),
        Err(err) => tracing::warn!(
            "podman.service still reads the old cdi_spec_dirs ({}): restart it: systemctl --user restart podman.service",
            err.message()
        ),
    }
}

/// A spec podlab wrote, as `podlab cdi status` found it; as JSON, `{path, driver_version,
/// state: fresh|stale|edited, reason (stale only), stale, refreshed}`.
#[derive(Debug, Clone, Serialize)]
pub struct Checked {
    /// Its state after the check (`Fresh` once regenerated).
    #[serde(flatten)]
    pub status: SpecStatus,
    /// Why it was stale, when it was; `refreshed` says whether it was regenerated.
    pub stale: Option<String>,
    pub refreshed: bool,
}

/// The lines of `podlab cdi status`: a verdict per spec, with a `hint:` under each problem.
pub fn status_text(checked: &[Checked]) -> String {
    let mut text = String::new();
    for spec in checked {
        let path = spec.status.path.display();
        let _ = match (&spec.stale, spec.refreshed) {
            (Some(reason), true) => writeln!(text, "✔ {path}: was stale ({reason}); regenerated"),
            (Some(reason), false) => writeln!(
                text,
                "✘ {path}: stale: {reason}\n  hint: {}",
                refresh_command(&spec.status.path)
            ),
            (None, _) if spec.status.state == State::Edited => writeln!(
                text,
                "⚠ {path}: edited by hand; podlab leaves it alone\n  hint: to let podlab manage it again: {}",
                refresh_command(&spec.status.path)
            ),
            (None, _) => writeln!(
                text,
                "✔ {path}: fresh (driver {})",
                spec.status.driver_version
            ),
        };
    }
    if checked.is_empty() {
        let _ = writeln!(
            text,
            "no CDI specs written by podlab in {}",
            display_dirs(&install_dirs())
        );
    }
    text
}

/// One device of `podlab cdi list`; as JSON, `{name, kind, device, spec}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Device {
    /// The fully qualified CDI name, `KIND=DEVICE`.
    pub name: String,
    pub kind: String,
    pub device: String,
    /// The spec file that declares it (the first, when several do).
    pub spec: PathBuf,
}

/// The specs podlab wrote in the directories Podman reads, each checked; a stale spec the
/// user may write is regenerated for `max_version`.
pub fn check_and_refresh(max_version: Option<CdiVersion>) -> Vec<Checked> {
    check_all(&install_dirs())
        .into_iter()
        .map(|mut status| {
            let (stale, refreshed) = match status.state.clone() {
                State::Stale { reason } => {
                    let refreshed = refresh(&status, max_version).is_ok();
                    if refreshed {
                        status.state = State::Fresh;
                    }
                    (Some(reason), refreshed)
                }
                State::Fresh | State::Edited => (None, false),
            };
            Checked {
                status,
                stale,
                refreshed,
            }
        })
        .collect()
}

/// Regenerates a stale spec the user may write (their own); root's specs are left to root.
fn refresh(status: &SpecStatus, max_version: Option<CdiVersion>) -> Result<()> {
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

/// The CDI devices in the specs the target Podman (`caps`) reads, sorted by name; specs
/// Podman would reject are skipped with a warning.
pub fn devices(caps: Option<Capabilities>) -> Result<Vec<Device>> {
    let dirs = spec_dirs(caps);
    let mut devices: Vec<Device> = Vec::new();
    for dir in &dirs {
        for file in spec_files(dir) {
            match validate_file(&file)? {
                Ok(spec) => devices.extend(spec.devices.iter().map(|device| Device {
                    name: format!("{}={}", spec.kind, device.name),
                    kind: spec.kind.clone(),
                    device: device.name.clone(),
                    spec: file.clone(),
                })),
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
    // Stable: the first spec that declares a name keeps it.
    devices.sort_by(|a, b| a.name.cmp(&b.name));
    devices.dedup_by(|later, first| later.name == first.name);
    if devices.is_empty() {
        tracing::warn!("no CDI devices in {}", display_dirs(&dirs));
    }
    Ok(devices)
}

/// The directories the target Podman (`caps`, else any) reads CDI specs from.
pub fn spec_dirs(caps: Option<Capabilities>) -> Vec<PathBuf> {
    caps.map_or_else(
        || DEFAULT_DIRS.iter().map(PathBuf::from).collect(),
        |caps| store::podman_spec_dirs(&caps),
    )
}

/// The directories, comma-separated, for messages.
pub fn display_dirs(dirs: &[PathBuf]) -> String {
    dirs.iter()
        .map(|dir| dir.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}
