//! What a session becomes on this host: the decisions that need host facts, made once before
//! the emitters run. Which user the host user maps to (from the image), and how GPUs reach
//! the container: by CDI name when Podman reads a fresh spec for them, else as the same edits
//! inline (device nodes, library mounts, env), so no root step is ever needed and a stale
//! spec is never used.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::cdi::freshness::{self, State};
use crate::cdi::generate::{self, Options};
use crate::cdi::spec::{ContainerEdits, Spec};
use crate::cdi::store;
use crate::cdi::validate::validate_file;
use crate::engine::ImagePath;
use crate::gpu::driver_capabilities::{self, DriverCapabilities};
use crate::gpu::inventory::{Inventory, Warning};
use crate::gpu::{DriverRoots, discover};
use crate::session::{GpuRequest, GpuSelector, UserMapping};
use crate::{Error, Result};

/// The CDI kind podlab's GPUs use.
pub const GPU_KIND: &str = "nvidia.com/gpu";

/// How GPUs reach the container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GpuMode {
    None,
    /// Qualified CDI names (`nvidia.com/gpu=0`) that Podman resolves from a spec it reads.
    Cdi(Vec<String>),
    /// The spec's edits, applied by podlab itself.
    Inline(ContainerEdits),
}

/// The GPU decision and the device names it stands for (`0`, `all`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GpuPlan {
    pub mode: GpuMode,
    pub names: Vec<String>,
    pub notices: Vec<Warning>,
    /// The host driver's version and the selected GPUs' models, when GPUs are planned: what
    /// [`plan_compat`] decides with.
    pub driver: Option<DriverFacts>,
    /// Environment the container gets besides the GPU edits' (see [`plan_compat`]).
    pub env: Vec<(String, String)>,
    /// The driver capabilities inline edits were fitted to ([`fit_to_image`]).
    pub capabilities: Option<DriverCapabilities>,
}

/// The host side of the forward-compatibility decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DriverFacts {
    pub version: String,
    /// `(index, model)` of each selected GPU; the model is unknown without the driver's proc
    /// files.
    pub gpus: Vec<(u32, Option<String>)>,
}

/// Decides how the requested GPUs reach the container: by CDI name when a fresh spec in
/// `spec_dirs` (the directories the target Podman reads, [`store::podman_spec_dirs`]) names
/// them all, else as inline edits. The caller resolves the directories, so that tests choose
/// them instead of reading whatever the host's /etc/cdi holds.
pub fn plan_gpus(
    request: &GpuRequest,
    roots: &DriverRoots,
    spec_dirs: &[PathBuf],
) -> Result<GpuPlan> {
    let none = |notices| GpuPlan {
        mode: GpuMode::None,
        names: Vec::new(),
        notices,
        driver: None,
        env: Vec::new(),
        capabilities: None,
    };
    if *request == GpuRequest::None {
        return Ok(none(Vec::new()));
    }
    let inventory = match discover(roots) {
        Ok(inventory) if !inventory.gpus.is_empty() => inventory,
        result => {
            if *request == GpuRequest::Auto {
                return Ok(none(vec![Warning {
                    message: "no NVIDIA GPU on this host: the session runs without GPUs".to_owned(),
                    hint: None,
                }]));
            }
            return Err(result.err().unwrap_or_else(|| {
                Error::user("no NVIDIA GPU device nodes on this host")
                    .hint("run without --gpus, or check podlab doctor")
            }));
        }
    };
    let names = selected_names(request, &inventory)?;
    let driver = Some(DriverFacts {
        version: inventory.driver_version.clone(),
        gpus: inventory
            .gpus
            .iter()
            .filter(|gpu| {
                names
                    .iter()
                    .any(|name| name == "all" || *name == gpu.index.to_string())
            })
            .map(|gpu| (gpu.index, gpu.model.clone()))
            .collect(),
    });
    let known = (roots, &inventory);
    if let Some(qualified) =
        fresh_spec(spec_dirs, Some(known)).and_then(|spec| qualified_names(&spec, &names))
    {
        return Ok(GpuPlan {
            mode: GpuMode::Cdi(qualified),
            names,
            notices: Vec::new(),
            driver,
            env: Vec::new(),
            capabilities: None,
        });
    }
    let generated = generate::generate(&inventory, roots, &Options::default())?;
    let mut edits = generated.spec.container_edits.clone();
    for name in &names {
        if let Some(device) = generated
            .spec
            .devices
            .iter()
            .find(|device| &device.name == name)
        {
            merge(&mut edits, &device.container_edits);
        }
    }
    Ok(GpuPlan {
        mode: GpuMode::Inline(edits),
        names,
        notices: generated.warnings,
        driver,
        env: Vec::new(),
        capabilities: None,
    })
}

/// Where NVIDIA's CUDA images keep the `cuda-compat` package's libraries: a libcuda (with its
/// JIT compilers) for a driver newer than the host's, which lets a CUDA newer than the host
/// driver run on data-center GPUs.
pub const COMPAT_DIR: &str = "/usr/local/cuda/compat";

/// The compat libcuda's SONAME link, whose target names its driver version.
pub const COMPAT_LIBCUDA: &str = "/usr/local/cuda/compat/libcuda.so.1";

/// Whether an image may carry compat libraries worth a probe: NVIDIA's CUDA images (the ones
/// that ship `cuda-compat`) say their CUDA version in `CUDA_VERSION`.
pub fn is_cuda_image(image_env: &[String]) -> bool {
    image_env
        .iter()
        .any(|entry| entry.starts_with("CUDA_VERSION="))
}

/// CUDA forward compatibility without NVIDIA's `enable-cuda-compat` hook (which runs ldconfig
/// in the container). `compat_libcuda` is where the image's [`COMPAT_LIBCUDA`] leads
/// (`.../libcuda.so.575.57.08`), `None` when it has none. When that driver version is newer
/// than the host's and every selected GPU supports forward compatibility, the container's
/// `LD_LIBRARY_PATH` gets [`COMPAT_DIR`] first (the image's own value after it), so the
/// loader takes the compat libcuda before the host's mounted one; otherwise the host's libcuda
/// stays and a notice says why. Only data-center GPUs (and some workstation ones) support
/// forward compatibility: GeForce and TITAN boards are known not to and keep the host's;
/// a GPU whose model is unknown is given the benefit of the doubt, and the notice says so.
pub fn plan_compat(gpus: &mut GpuPlan, compat_libcuda: Option<&str>, image_env: &[String]) {
    let (Some(target), Some(driver)) = (compat_libcuda, &gpus.driver) else {
        return;
    };
    let Some(compat) = Path::new(target)
        .file_name()
        .and_then(|name| name.to_str())
        .and_then(|name| name.strip_prefix("libcuda.so."))
        .filter(|version| crate::gpu::is_version(version))
    else {
        return;
    };
    let host = driver.version.as_str();
    let notice = |message: String, hint: Option<&str>| Warning {
        message,
        hint: hint.map(str::to_owned),
    };
    if version_key(compat) <= version_key(host) {
        gpus.notices.push(notice(
            format!(
                "the image's CUDA forward-compatibility libcuda {compat} is not newer than the host driver {host}: using the host's libcuda"
            ),
            None,
        ));
        return;
    }
    let consumer = driver.gpus.iter().find(|(_, model)| {
        model
            .as_deref()
            .is_some_and(|model| model.contains("GeForce") || model.contains("TITAN"))
    });
    if let Some((index, model)) = consumer {
        gpus.notices.push(notice(
            format!(
                "the image carries CUDA forward-compatibility libcuda {compat} for a driver newer than the host's {host}, but GPU {index} ({}) does not support forward compatibility: using the host's libcuda; CUDA programs that need driver {compat} will fail",
                model.as_deref().unwrap_or_default()
            ),
            Some(&format!("upgrade the host driver to {compat} or newer")),
        ));
        return;
    }
    let unknown = driver.gpus.iter().any(|(_, model)| model.is_none());
    gpus.notices.push(notice(
        format!(
            "using the image's CUDA forward-compatibility libcuda {compat} (newer than the host driver {host}){}",
            if unknown { "; the GPU model is unknown here, so its support for it could not be checked" } else { "" }
        ),
        None,
    ));
    let image_path = image_env
        .iter()
        .find_map(|entry| entry.strip_prefix("LD_LIBRARY_PATH="))
        .filter(|value| !value.is_empty());
    let value = match image_path {
        Some(rest) => format!("{COMPAT_DIR}:{rest}"),
        None => COMPAT_DIR.to_owned(),
    };
    gpus.env.push(("LD_LIBRARY_PATH".to_owned(), value));
}

/// `550.163.01` as numbers, for ordering driver versions.
fn version_key(version: &str) -> Vec<u64> {
    version
        .split('.')
        .map(|part| part.parse().unwrap_or(0))
        .collect()
}

/// The spec's device names for the request: `all`, or one per selected GPU.
fn selected_names(request: &GpuRequest, inventory: &Inventory) -> Result<Vec<String>> {
    let GpuRequest::List(selectors) = request else {
        return Ok(vec!["all".to_owned()]);
    };
    let listing = || {
        inventory
            .gpus
            .iter()
            .map(|gpu| {
                let mut text = gpu.index.to_string();
                if let Some(model) = &gpu.model {
                    let _ = write!(text, " ({model})");
                }
                if let Some(uuid) = &gpu.uuid {
                    let _ = write!(text, " {uuid}");
                }
                text
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    selectors
        .iter()
        .map(|selector| {
            let found = inventory.gpus.iter().find(|gpu| match selector {
                GpuSelector::Index(index) => gpu.index == *index,
                GpuSelector::Uuid(uuid) => gpu.uuid.as_deref() == Some(uuid.as_str()),
            });
            found.map(|gpu| gpu.index.to_string()).ok_or_else(|| {
                let wanted = match selector {
                    GpuSelector::Index(index) => format!("GPU {index}"),
                    GpuSelector::Uuid(uuid) => uuid.clone(),
                };
                Error::user(format!("unknown {wanted}: this host has GPU {}", listing()))
                    .hint("pick from those with --gpus (all, none, 0,1 or a GPU-uuid)")
            })
        })
        .collect()
}

/// The qualified CDI names (`nvidia.com/gpu=0`) of `names` when the first fresh GPU spec in
/// `dirs` defines them all.
pub fn cdi_names_in(dirs: &[PathBuf], names: &[String]) -> Option<Vec<String>> {
    qualified_names(&fresh_spec(dirs, None)?, names)
}

/// The qualified names of `names` when `spec` defines them all.
fn qualified_names(spec: &Spec, names: &[String]) -> Option<Vec<String>> {
    let known = |name: &String| spec.devices.iter().any(|device| &device.name == name);
    names.iter().all(known).then(|| {
        names
            .iter()
            .map(|name| format!("{GPU_KIND}={name}"))
            .collect()
    })
}

/// The first GPU spec in `dirs` that still matches the host; `known` is this run's discovery
/// of one pair of roots, reused for a spec generated from them instead of discovering again.
fn fresh_spec(dirs: &[PathBuf], known: Option<(&DriverRoots, &Inventory)>) -> Option<Spec> {
    for dir in dirs {
        for file in store::spec_files(dir) {
            let Ok(Ok(spec)) = validate_file(&file) else {
                continue;
            };
            if spec.kind != GPU_KIND {
                continue;
            }
            let fresh = match freshness::check_with(&file, known) {
                Some(status) => status.state == State::Fresh,
                // Another tool's spec: fresh as long as everything it names still exists.
                None => spec.all_edits().all(|edits| {
                    edits
                        .mounts
                        .iter()
                        .all(|mount| Path::new(&mount.host_path).exists())
                        && edits.device_nodes.iter().all(|node| {
                            Path::new(node.host_path.as_deref().unwrap_or(&node.path)).exists()
                        })
                }),
            };
            if fresh {
                return Some(spec);
            }
            tracing::warn!(
                "{} is stale: passing the GPU edits inline instead",
                file.display()
            );
        }
    }
    None
}

/// The paths in the image that [`fit_to_image`] needs answers for when GPUs are requested
/// (`inline`: the edits may go inline): where its loader leads, and for a CUDA image, where
/// its forward-compatibility libcuda leads. One probe container answers them all.
pub fn image_probes(inline: bool, image_env: &[String]) -> Vec<&'static str> {
    let mut paths = Vec::new();
    if inline {
        paths.push(loader_path());
    }
    if is_cuda_image(image_env) {
        paths.push(COMPAT_LIBCUDA);
    }
    paths
}

/// Plans what depends on the image's files, from `image_path`'s answers to [`image_probes`]:
/// forward compatibility ([`plan_compat`]), then the fit of inline edits
/// ([`fit_to_container`]) to the image's library layout and to the driver capabilities the
/// container asks for. `session_env`: the session's own variables, which win over the
/// image's.
pub fn fit_to_image(
    gpus: &mut GpuPlan,
    session_env: &BTreeMap<String, String>,
    image_env: &[String],
    image_path: impl Fn(&str) -> Option<ImagePath>,
) -> Result<()> {
    if gpus.names.is_empty() {
        return Ok(());
    }
    if is_cuda_image(image_env) {
        let compat = image_path(COMPAT_LIBCUDA).and_then(|path| path.link_target);
        plan_compat(gpus, compat.as_deref(), image_env);
    }
    let GpuMode::Inline(edits) = &mut gpus.mode else {
        return Ok(());
    };
    // A variable's value in the container: the session's, else the GPU plan's or the edits',
    // else the image's (the order the create body and Podman apply).
    let value = |key: &str| {
        let prefix = format!("{key}=");
        session_env
            .get(key)
            .cloned()
            .or_else(|| {
                gpus.env
                    .iter()
                    .find(|(name, _)| name == key)
                    .map(|(_, value)| value.clone())
            })
            .or_else(|| {
                edits
                    .env
                    .iter()
                    .chain(image_env)
                    .find_map(|entry| entry.strip_prefix(prefix.as_str()).map(str::to_owned))
            })
    };
    let fit = ContainerFit {
        layout: LibraryLayout::of_loader(image_path(loader_path()).as_ref()),
        capabilities: driver_capabilities(session_env, image_env)?,
        library_path: value("LD_LIBRARY_PATH"),
        triton_path: session_env.get(generate::TRITON_LIBCUDA_PATH).cloned(),
    };
    fit_to_container(edits, &fit);
    gpus.capabilities = Some(fit.capabilities);
    Ok(())
}

/// The driver capabilities the container asks for: the session's
/// `NVIDIA_DRIVER_CAPABILITIES`, else the image's, else NVIDIA's default (`compute,utility`).
/// An unknown name is an error when the session gives it, and a warning (the name ignored)
/// when the image does.
fn driver_capabilities(
    session_env: &BTreeMap<String, String>,
    image_env: &[String],
) -> Result<DriverCapabilities> {
    let hint = "use compute, utility, video, graphics, display, compat32 or all, separated by commas (NVIDIA's names)";
    if let Some(value) = session_env.get(driver_capabilities::VARIABLE) {
        return DriverCapabilities::parse(value).map_err(|word| {
            Error::user(format!(
                "{}={value}: unknown driver capability {word:?}",
                driver_capabilities::VARIABLE
            ))
            .hint(hint)
        });
    }
    let prefix = format!("{}=", driver_capabilities::VARIABLE);
    let Some(value) = image_env
        .iter()
        .find_map(|entry| entry.strip_prefix(&prefix))
    else {
        return Ok(DriverCapabilities::default());
    };
    let known: Vec<&str> = value
        .split(',')
        .filter(|word| {
            let known = DriverCapabilities::parse(word).is_ok();
            if !known {
                tracing::warn!(
                    "the image's {}={value} names an unknown driver capability {:?}: ignored",
                    driver_capabilities::VARIABLE,
                    word.trim()
                );
            }
            known
        })
        .collect();
    Ok(DriverCapabilities::parse(&known.join(",")).unwrap_or_default())
}

/// Where the image's dynamic loader finds libraries without `LD_LIBRARY_PATH` or an
/// `ld.so.cache` entry: the one default directory the GPU libraries need to be mounted in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LibraryLayout {
    /// Debian and Ubuntu (and images built from them): `/usr/lib/<multiarch>`.
    Multiarch,
    /// Fedora, RHEL, SUSE; Arch, where `/usr/lib64` leads to `/usr/lib`: `/usr/lib64`.
    Lib64,
}

/// The glibc loader programs of this architecture name as their ELF interpreter: Debian's is
/// a link into the multiarch directory, the others' live in (or lead to) `/usr/lib64`.
pub const fn loader_path() -> &'static str {
    match std::env::consts::ARCH.as_bytes() {
        b"aarch64" => "/lib/ld-linux-aarch64.so.1",
        b"powerpc64" => "/lib64/ld64.so.2",
        _ => "/lib64/ld-linux-x86-64.so.2",
    }
}

impl LibraryLayout {
    /// From where the image's [`loader_path`] leads; `None` for an image without glibc's
    /// loader (static binaries, musl), where no layout is known and both directories are kept.
    pub fn of_loader(loader: Option<&ImagePath>) -> Option<Self> {
        let target = loader?.link_target.as_deref().unwrap_or_default();
        let multiarch = format!("/{}/", crate::gpu::inventory::multiarch());
        Some(if target.contains(&multiarch) {
            Self::Multiarch
        } else {
            Self::Lib64
        })
    }

    /// The container directory.
    pub fn dir(self) -> String {
        let [multiarch, lib64, _] = generate::container_library_dirs();
        match self {
            Self::Multiarch => multiarch,
            Self::Lib64 => lib64,
        }
    }
}

/// What [`fit_to_container`] fits inline edits to.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ContainerFit {
    /// The image's library layout, when known.
    pub layout: Option<LibraryLayout>,
    /// The driver capabilities the container asks for.
    pub capabilities: DriverCapabilities,
    /// `LD_LIBRARY_PATH` as the container will have it.
    pub library_path: Option<String>,
    /// The session's own `TRITON_LIBCUDA_PATH` (it wins over the edits').
    pub triton_path: Option<String>,
}

/// Fits inline edits to the container they go into; every bind mount left out is one Podman
/// does not make at each start (measured with benches/run-overhead.sh: 40 mounts made `podman
/// run` 1.26x, 16 mounts 1.04x).
///
/// - Only the driver files of the container's [`DriverCapabilities`] stay.
/// - With the image's [`LibraryLayout`] known, libraries are mounted only in its default
///   directory, and `TRITON_LIBCUDA_PATH` points there (it holds `libcuda.so.1` and
///   `libcuda.so`). That serves an `LD_LIBRARY_PATH` naming [`generate::LD_LIBRARY_PATH_DIR`]
///   too (NVIDIA's CUDA images set one): the loader goes on to its default directory, as
///   under NVIDIA's own runtime, which mounts only there.
/// - Without it, both default directories keep theirs, and the copies in
///   [`generate::LD_LIBRARY_PATH_DIR`] stay only for a container whose `LD_LIBRARY_PATH`
///   names that directory.
/// - Either way, that directory keeps `libcuda.so.1` and `libcuda.so` while the container's
///   `TRITON_LIBCUDA_PATH` points there.
pub fn fit_to_container(edits: &mut ContainerEdits, fit: &ContainerFit) {
    let wants = |path: &str| fit.capabilities.wants(Path::new(path));
    edits.mounts.retain(|mount| wants(&mount.container_path));
    edits.device_nodes.retain(|node| wants(&node.path));
    let loader_dir = fit.layout.map(LibraryLayout::dir);
    let triton_key = format!("{}=", generate::TRITON_LIBCUDA_PATH);
    if let Some(dir) = &loader_dir {
        for entry in &mut edits.env {
            if entry.starts_with(&triton_key) {
                *entry = format!("{triton_key}{dir}");
            }
        }
    }
    let nvidia_dir = Path::new(generate::LD_LIBRARY_PATH_DIR);
    let names = |path: Option<&str>| {
        path.is_some_and(|path| path.split(':').any(|entry| Path::new(entry) == nvidia_dir))
    };
    let triton_path = fit.triton_path.as_deref().or_else(|| {
        edits
            .env
            .iter()
            .find_map(|entry| entry.strip_prefix(&triton_key))
    });
    let keep_nvidia_dir = loader_dir.is_none() && names(fit.library_path.as_deref());
    let keep_triton = names(triton_path);
    let [multiarch, lib64, _] = generate::container_library_dirs();
    edits.mounts.retain(|mount| {
        let path = Path::new(&mount.container_path);
        if path.starts_with(nvidia_dir) {
            return keep_nvidia_dir
                || (keep_triton
                    && path.parent() == Some(nvidia_dir)
                    && path
                        .file_name()
                        .is_some_and(|name| name == "libcuda.so.1" || name == "libcuda.so"));
        }
        match &loader_dir {
            Some(dir) => {
                !(path.starts_with(&multiarch) || path.starts_with(&lib64)) || path.starts_with(dir)
            }
            None => true,
        }
    });
}

fn merge(into: &mut ContainerEdits, from: &ContainerEdits) {
    for node in &from.device_nodes {
        if !into
            .device_nodes
            .iter()
            .any(|known| known.path == node.path)
        {
            into.device_nodes.push(node.clone());
        }
    }
    into.env.extend(from.env.iter().cloned());
    into.mounts.extend(from.mounts.iter().cloned());
    for gid in &from.additional_gids {
        if !into.additional_gids.contains(gid) {
            into.additional_gids.push(*gid);
        }
    }
}

/// How the container is run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mode {
    /// `run` or `shell`, recorded as a label.
    pub kind: &'static str,
    pub tty: bool,
    pub stdin: bool,
    /// Podman removes the container when it exits.
    pub remove: bool,
}

/// Everything the create body needs beyond the session itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerPlan {
    pub name: String,
    pub mode: Mode,
    pub userns: UserNs,
    /// `HOME` for images without a user of their own (plain keep-id).
    pub home: Option<String>,
    pub gpus: GpuPlan,
    /// `label=disable`: GPU containers on SELinux-enforcing hosts.
    pub label_disable: bool,
    /// An init (Podman's catatonit) as PID 1: it passes SIGTERM on to the command and reaps
    /// zombies. Without it a shell or a server as PID 1 ignores SIGTERM (the kernel drops
    /// signals PID 1 has no handler for), so every stop waits out Podman's 10 s timeout and
    /// ends in SIGKILL, and a unit's service ends `failed`.
    pub init: bool,
}

#[cfg(test)]
impl ContainerPlan {
    /// A plan for unit tests to start from (`ContainerPlan { .., ..ContainerPlan::example(n) }`):
    /// a service container named `name`, removed on exit, keep-id onto uid and gid 1000, no
    /// GPUs.
    pub fn example(name: &str) -> Self {
        Self {
            name: name.into(),
            mode: Mode {
                kind: "service",
                tty: false,
                stdin: false,
                remove: true,
            },
            userns: UserNs::KeepIdTo {
                uid: 1000,
                gid: 1000,
            },
            home: None,
            gpus: GpuPlan {
                mode: GpuMode::None,
                names: Vec::new(),
                notices: Vec::new(),
                driver: None,
                env: Vec::new(),
                capabilities: None,
            },
            label_disable: false,
            init: true,
        }
    }
}

/// `--gpus-per-node N` (a multi-node job's GPUs on each node) against `--gpus`: no more than
/// a list names, none with `none`; `all` and the default leave the count to the flag (a
/// cluster's nodes need not look like this host).
pub fn check_gpus_per_node(request: &GpuRequest, per_node: u32) -> Result<()> {
    let named = match request {
        GpuRequest::List(selectors) => selectors.len(),
        GpuRequest::None => 0,
        GpuRequest::All | GpuRequest::Auto => return Ok(()),
    };
    if usize::try_from(per_node).is_ok_and(|per_node| per_node > named) {
        return Err(Error::user(format!(
            "--gpus-per-node {per_node} is more GPUs than --gpus names ({named})"
        ))
        .hint(format!(
            "name as many (--gpus all, or a list of {per_node} indices), or pass --gpus-per-node {named}"
        )));
    }
    Ok(())
}

/// Whether SELinux enforces on this host.
pub fn selinux_enforcing() -> bool {
    std::fs::read_to_string("/sys/fs/selinux/enforce").is_ok_and(|mode| mode.trim() == "1")
}

/// A container name unique among concurrent jobs of one project: `<project>-<kind>-<hex>`.
pub fn container_name(project: &str, kind: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.subsec_nanos());
    let mixed = (u64::from(nanos) ^ (u64::from(std::process::id()) << 20))
        .wrapping_mul(0x9E37_79B9_7F4A_7C15);
    format!("{project}-{kind}-{:06x}", mixed >> 40)
}

/// The user namespace: the host user mapped onto the image's user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserNs {
    KeepId,
    KeepIdTo { uid: u32, gid: u32 },
}

/// Maps `mapping` onto the image: `auto` picks the image's non-root user (`uid[:gid]`, or a
/// name looked up in the image's `/etc/passwd` text when given), else plain keep-id.
pub fn plan_user(mapping: UserMapping, image_user: &str, image_passwd: Option<&str>) -> UserNs {
    match mapping {
        UserMapping::KeepId => UserNs::KeepId,
        UserMapping::KeepIdTo { uid, gid } => UserNs::KeepIdTo { uid, gid },
        UserMapping::Auto => image_ids(image_user, image_passwd)
            .filter(|(uid, _)| *uid != 0)
            .map_or(UserNs::KeepId, |(uid, gid)| UserNs::KeepIdTo { uid, gid }),
    }
}

/// The uid and gid of an image's `User` (`1000`, `1000:100`, `dev`, `dev:dev`).
fn image_ids(user: &str, passwd: Option<&str>) -> Option<(u32, u32)> {
    let (who, group) = user
        .split_once(':')
        .map_or((user, None), |(u, g)| (u, Some(g)));
    if who.is_empty() {
        return None;
    }
    let entry = passwd.and_then(|text| {
        text.lines().find_map(|line| {
            let fields: Vec<&str> = line.split(':').collect();
            let (name, uid, gid) = (fields.first()?, fields.get(2)?, fields.get(3)?);
            (*name == who || *uid == who).then(|| (uid.parse().ok(), gid.parse().ok()))
        })
    });
    let uid = who
        .parse()
        .ok()
        .or_else(|| entry.and_then(|(uid, _)| uid))?;
    let gid = group
        .and_then(|g| g.parse().ok())
        .or_else(|| entry.and_then(|(_, gid)| gid))
        .unwrap_or(uid);
    Some((uid, gid))
}

/// Whether the image names a user that only its `/etc/passwd` can turn into ids.
pub fn needs_passwd(image_user: &str) -> bool {
    let who = image_user.split(':').next().unwrap_or_default();
    !who.is_empty() && who.parse::<u32>().is_err()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_maps_onto_the_images_user() {
        let passwd = "root:x:0:0::/root:/bin/sh\ndev:x:1000:1000::/home/dev:/bin/bash\n";
        assert_eq!(plan_user(UserMapping::Auto, "", None), UserNs::KeepId);
        assert_eq!(
            plan_user(UserMapping::Auto, "root", Some(passwd)),
            UserNs::KeepId
        );
        assert_eq!(plan_user(UserMapping::Auto, "0", None), UserNs::KeepId);
        assert_eq!(
            plan_user(UserMapping::Auto, "dev", Some(passwd)),
            UserNs::KeepIdTo {
                uid: 1000,
                gid: 1000
            }
        );
        assert_eq!(
            plan_user(UserMapping::Auto, "1001:100", None),
            UserNs::KeepIdTo {
                uid: 1001,
                gid: 100
            }
        );
        assert_eq!(
            plan_user(UserMapping::Auto, "1001", None),
            UserNs::KeepIdTo {
                uid: 1001,
                gid: 1001
            }
        );
        assert_eq!(
            plan_user(UserMapping::Auto, "ghost", Some(passwd)),
            UserNs::KeepId
        );
        assert_eq!(
            plan_user(UserMapping::KeepId, "dev", Some(passwd)),
            UserNs::KeepId
        );
        assert!(needs_passwd("dev") && !needs_passwd("1000") && !needs_passwd(""));
    }

    #[test]
    fn unknown_gpu_index_lists_the_gpus_that_exist() {
        let fixture = crate::gpu::fixtures::debian_like();
        let inventory = discover(&fixture.roots).unwrap();
        let request = GpuRequest::List(vec![GpuSelector::Index(7)]);
        let err = selected_names(&request, &inventory)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("unknown GPU 7: this host has GPU 0"), "{err}");
        let request = GpuRequest::List(vec![GpuSelector::Index(1), GpuSelector::Index(0)]);
        assert_eq!(selected_names(&request, &inventory).unwrap(), ["1", "0"]);
    }

    #[test]
    fn inline_mode_carries_nodes_libraries_and_env() {
        let fixture = crate::gpu::fixtures::debian_like();
        let request = GpuRequest::List(vec![GpuSelector::Index(1)]);
        let plan = plan_gpus(&request, &fixture.roots, &[]).unwrap();
        let GpuMode::Inline(edits) = plan.mode else {
            panic!("expected inline mode, got {:?}", plan.mode)
        };
        let nodes: Vec<&str> = edits
            .device_nodes
            .iter()
            .map(|node| node.path.as_str())
            .collect();
        assert!(
            nodes.contains(&"/dev/nvidia1") && !nodes.contains(&"/dev/nvidia0"),
            "{nodes:?}"
        );
        assert!(nodes.contains(&"/dev/nvidiactl"), "{nodes:?}");
        assert!(
            edits
                .mounts
                .iter()
                .any(|m| m.container_path == "/usr/lib/x86_64-linux-gnu/libcuda.so.1")
        );
        assert!(
            edits
                .env
                .contains(&"NVIDIA_VISIBLE_DEVICES=void".to_owned())
        );
    }

    #[test]
    fn a_spec_of_this_runs_roots_is_checked_against_this_runs_discovery() {
        let fixture = crate::gpu::fixtures::debian_like();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(store::SPEC_FILE);
        let (text, _) = freshness::generate_document(&fixture.roots, &Options::default()).unwrap();
        std::fs::write(&path, text).unwrap();
        let inventory = discover(&fixture.roots).unwrap();
        let state = |known| freshness::check_with(&path, known).unwrap().state;
        assert_eq!(state(Some((&fixture.roots, &inventory))), State::Fresh);
        let dirs = [dir.path().to_owned()];
        assert!(fresh_spec(&dirs, Some((&fixture.roots, &inventory))).is_some());
        // The known discovery is what the spec is compared with: no second look at the host.
        let upgraded = Inventory {
            driver_version: "999.1.2".to_owned(),
            ..inventory.clone()
        };
        assert!(matches!(
            state(Some((&fixture.roots, &upgraded))),
            State::Stale { .. }
        ));
        assert!(fresh_spec(&dirs, Some((&fixture.roots, &upgraded))).is_none());
        // A discovery of other roots is not used: the spec's own roots are discovered.
        let other = DriverRoots {
            driver_root: dir.path().join("elsewhere"),
            dev_root: dir.path().join("elsewhere"),
        };
        assert_eq!(state(Some((&other, &upgraded))), State::Fresh);
        assert_eq!(state(None), State::Fresh);
    }

    #[test]
    fn auto_without_gpus_is_none_with_a_notice_but_explicit_request_fails() {
        let fixture = crate::gpu::fixtures::no_driver();
        let plan = plan_gpus(&GpuRequest::Auto, &fixture.roots, &[]).unwrap();
        assert_eq!(plan.mode, GpuMode::None);
        assert_eq!(plan.notices.len(), 1);
        assert!(plan_gpus(&GpuRequest::All, &fixture.roots, &[]).is_err());
    }

    /// A plan for GPUs on a host with driver `version`, GPU models as given.
    fn gpu_plan(version: &str, models: &[Option<&str>]) -> GpuPlan {
        GpuPlan {
            mode: GpuMode::Cdi(vec!["nvidia.com/gpu=all".to_owned()]),
            names: vec!["all".to_owned()],
            notices: Vec::new(),
            driver: Some(DriverFacts {
                version: version.to_owned(),
                gpus: (0..)
                    .zip(models)
                    .map(|(index, model)| (index, model.map(str::to_owned)))
                    .collect(),
            }),
            env: Vec::new(),
            capabilities: None,
        }
    }

    const COMPAT_575: &str = "/usr/local/cuda-12.9/compat/libcuda.so.575.57.08";

    /// Issue 12: a CUDA image newer than the host driver got no compat handling; now its compat
    /// libcuda comes first on the loader's path, before the image's own directories.
    #[test]
    fn forward_compat_libs_newer_than_the_host_driver_are_used() {
        let mut gpus = gpu_plan("550.163.01", &[Some("NVIDIA H100 80GB HBM3")]);
        let env = [
            "CUDA_VERSION=12.9.0".to_owned(),
            "LD_LIBRARY_PATH=/usr/local/nvidia/lib:/usr/local/nvidia/lib64".to_owned(),
        ];
        assert!(is_cuda_image(&env));
        plan_compat(&mut gpus, Some(COMPAT_575), &env);
        assert_eq!(
            gpus.env,
            [(
                "LD_LIBRARY_PATH".to_owned(),
                "/usr/local/cuda/compat:/usr/local/nvidia/lib:/usr/local/nvidia/lib64".to_owned()
            )]
        );
        assert!(
            gpus.notices[0]
                .message
                .contains("using the image's CUDA forward-compatibility libcuda 575.57.08"),
            "{:?}",
            gpus.notices
        );
        // Without an image value, the compat directory alone; an unknown model is said so.
        let mut gpus = gpu_plan("550.163.01", &[None]);
        plan_compat(
            &mut gpus,
            Some(COMPAT_575),
            &["CUDA_VERSION=12.9.0".to_owned()],
        );
        assert_eq!(
            gpus.env,
            [("LD_LIBRARY_PATH".to_owned(), COMPAT_DIR.to_owned())]
        );
        assert!(
            gpus.notices[0].message.contains("could not be checked"),
            "{:?}",
            gpus.notices
        );
    }

    #[test]
    fn forward_compat_libs_not_newer_keep_the_host_libcuda_and_say_so() {
        for (host, compat) in [("575.57.08", COMPAT_575), ("580.65.06", COMPAT_575)] {
            let mut gpus = gpu_plan(host, &[Some("NVIDIA A100-SXM4-80GB")]);
            plan_compat(&mut gpus, Some(compat), &[]);
            assert!(gpus.env.is_empty(), "{host}");
            assert!(
                gpus.notices[0].message.contains(&format!(
                    "not newer than the host driver {host}: using the host's libcuda"
                )),
                "{:?}",
                gpus.notices
            );
        }
    }

    #[test]
    fn forward_compat_needs_a_gpu_that_supports_it() {
        let mut gpus = gpu_plan(
            "550.163.01",
            &[
                Some("NVIDIA H100 80GB HBM3"),
                Some("NVIDIA GeForce RTX 4090"),
            ],
        );
        plan_compat(&mut gpus, Some(COMPAT_575), &[]);
        assert!(gpus.env.is_empty());
        let notice = &gpus.notices[0];
        assert!(notice.message.contains("GPU 1 (NVIDIA GeForce RTX 4090) does not support forward compatibility: using the host's libcuda"), "{notice:?}");
        assert_eq!(
            notice.hint.as_deref(),
            Some("upgrade the host driver to 575.57.08 or newer")
        );
    }

    #[test]
    fn no_compat_libs_or_no_gpus_change_nothing() {
        let mut gpus = gpu_plan("550.163.01", &[Some("Tesla T4")]);
        plan_compat(&mut gpus, None, &[]);
        plan_compat(&mut gpus, Some("/usr/local/cuda/compat/libcuda.so"), &[]);
        assert!(gpus.env.is_empty() && gpus.notices.is_empty());
        let mut none = gpu_plan("550.163.01", &[]);
        none.driver = None;
        plan_compat(&mut none, Some(COMPAT_575), &[]);
        assert!(none.env.is_empty() && none.notices.is_empty());
        assert!(!is_cuda_image(&["PATH=/usr/bin".to_owned()]));
    }
}
