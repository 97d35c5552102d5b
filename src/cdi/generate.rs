//! From a driver [`Inventory`] to a CDI [`Spec`].
//!
//! The default form is hook-free: every driver library is bind-mounted at its SONAME in the
//! directories the loader searches in common images (the multiarch directory for
//! Debian/Ubuntu, `/usr/lib64` for Fedora/RHEL, `/usr/local/nvidia/lib64` for NVIDIA's CUDA
//! images), so `dlopen("libcuda.so.1")` works with no createContainer hook and no `ldconfig`
//! in the container. `--hooks nvidia-cdi-hook` reproduces NVIDIA's hooked form instead.
//!
//! Programs that look for the driver rather than just load it need more than the loader does:
//! Triton (and so `torch.compile`) asks `ldconfig -p` for `libcuda.so.1`, then the
//! `LD_LIBRARY_PATH` directories, then `TRITON_LIBCUDA_PATH`, and links its launcher with
//! `-lcuda`, which needs the development name `libcuda.so` beside it. The image's
//! `ld.so.cache` is left alone: a spec does not know the image, and even where podlab does (its
//! own sessions) a cache mounted over the image's would be read-only, so the image's own
//! `ldconfig` (run by every `apt-get install` of a library) would fail to replace it. Nor is
//! `LD_LIBRARY_PATH` set: Podman replaces the image's value with the spec's, which breaks
//! images that rely on theirs. So each library is also
//! mounted under the development names its packages ship (`libcuda.so` always), and
//! [`TRITON_LIBCUDA_PATH`] names a directory that holds both `libcuda.so.1` and `libcuda.so`:
//! a variable nothing else reads. With a compiler in the image, `ctypes.util.find_library`
//! finds `libcuda.so` through the linker's default directories as well.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use crate::capabilities::CdiVersion;
use crate::gpu::inventory::{HostFile, Inventory, Warning, multiarch};
use crate::gpu::{DeviceNode, DriverRoots, rootfs};
use crate::{Error, Result};

use super::spec::{ContainerEdits, Device, DeviceNode as SpecNode, Hook, Mount, Spec};

/// Triton's override of its libcuda search, set to [`TRITON_LIBCUDA_DIR`] in the hook-free form.
pub const TRITON_LIBCUDA_PATH: &str = "TRITON_LIBCUDA_PATH";

/// The container directory Triton is pointed at: one of [`container_library_dirs`], the one
/// NVIDIA's CUDA images and GPU operators use, so it exists whatever the image's layout.
pub const TRITON_LIBCUDA_DIR: &str = "/usr/local/nvidia/lib64";

/// Mount options for driver files, as NVIDIA's generator uses.
pub const MOUNT_OPTIONS: [&str; 5] = ["ro", "nosuid", "nodev", "rbind", "rprivate"];

/// How the container finds the driver libraries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum HookMode {
    /// Libraries mounted at their SONAME in the loader's directories; no hooks.
    #[default]
    None,
    /// NVIDIA's form: libraries at their host paths, `nvidia-cdi-hook` runs ldconfig.
    NvidiaCdiHook,
}

/// Which device names to emit besides `all`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NameStyles {
    pub index: bool,
    pub uuid: bool,
}

impl Default for NameStyles {
    fn default() -> Self {
        Self {
            index: true,
            uuid: true,
        }
    }
}

/// Settings of one generation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// `vendor/class`, e.g. `nvidia.com/gpu`.
    pub kind: String,
    pub names: NameStyles,
    pub hooks: HookMode,
    /// The highest `cdiVersion` the target Podman loads; `None` means no limit.
    pub max_version: Option<CdiVersion>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            kind: "nvidia.com/gpu".to_owned(),
            names: NameStyles::default(),
            hooks: HookMode::None,
            max_version: None,
        }
    }
}

/// A generated spec and what the user should hear about it.
#[derive(Debug, Clone)]
pub struct Generated {
    pub spec: Spec,
    pub warnings: Vec<Warning>,
}

/// The container directories that receive a SONAME mount of each library (hook-free form):
/// the loader's default directory on Debian-like and on Fedora-like images, and
/// [`LD_LIBRARY_PATH_DIR`].
pub fn container_library_dirs() -> [String; 3] {
    [
        format!("/usr/lib/{}", multiarch()),
        "/usr/lib64".to_owned(),
        LD_LIBRARY_PATH_DIR.to_owned(),
    ]
}

/// The SONAME directory the loader searches only when `LD_LIBRARY_PATH` names it (NVIDIA's
/// CUDA images set `LD_LIBRARY_PATH=/usr/local/nvidia/lib:/usr/local/nvidia/lib64`).
pub const LD_LIBRARY_PATH_DIR: &str = "/usr/local/nvidia/lib64";

/// The named devices, sorted (GPU indices, then MIG devices, then UUIDs), followed by `all`:
/// the union of their nodes and groups.
fn named_devices(inventory: &Inventory, roots: &DriverRoots, options: &Options) -> Vec<Device> {
    let node = |node: &DeviceNode| spec_node(node, &roots.dev_root);
    let mut devices = Vec::new();
    let mut all_nodes: Vec<SpecNode> = Vec::new();
    let mut all_gids = BTreeSet::new();
    for gpu in &inventory.gpus {
        let edits = device_edits(
            gpu.nodes.iter().map(node),
            gpu.nodes.iter().filter_map(|n| n.gid),
        );
        push_unique(&mut all_nodes, &edits.device_nodes);
        all_gids.extend(edits.additional_gids.iter().copied());
        if options.names.index {
            devices.push((0, gpu.index, 0, gpu.index.to_string(), edits.clone()));
        }
        if options.names.uuid {
            if let Some(uuid) = &gpu.uuid {
                devices.push((2, gpu.index, 0, uuid.clone(), edits.clone()));
            }
        }
    }
    for mig in &inventory.mig {
        let edits = device_edits(
            mig.nodes.iter().map(node),
            mig.nodes.iter().filter_map(|n| n.gid),
        );
        push_unique(&mut all_nodes, &edits.device_nodes);
        if options.names.index {
            devices.push((
                1,
                mig.gpu_index,
                mig.index,
                format!("{}:{}", mig.gpu_index, mig.index),
                edits,
            ));
        }
    }
    devices.sort_by(|a, b| (a.0, a.1, a.2, &a.3).cmp(&(b.0, b.1, b.2, &b.3)));
    let mut devices: Vec<Device> = devices
        .into_iter()
        .map(|(_, _, _, name, container_edits)| Device {
            name,
            annotations: BTreeMap::default(),
            container_edits,
        })
        .collect();
    if !all_nodes.is_empty() {
        devices.push(Device {
            name: "all".to_owned(),
            annotations: BTreeMap::default(),
            container_edits: ContainerEdits {
                device_nodes: all_nodes,
                additional_gids: all_gids.into_iter().collect(),
                ..ContainerEdits::default()
            },
        });
    }
    devices
}

/// Builds the spec.
pub fn generate(
    inventory: &Inventory,
    roots: &DriverRoots,
    options: &Options,
) -> Result<Generated> {
    let mut warnings = inventory.warnings.clone();
    let node = |node: &DeviceNode| spec_node(node, &roots.dev_root);
    let mut devices = named_devices(inventory, roots, options);
    if devices.is_empty() {
        return Err(Error::user(format!(
            "no NVIDIA GPU device nodes under {}/dev",
            roots.dev_root.display().to_string().trim_end_matches('/')
        ))
        .hint("load the driver (sudo nvidia-modprobe -c=0), or point --dev-root at the root that holds dev/nvidia*"));
    }
    let mut mounts = match options.hooks {
        HookMode::None => hook_free_library_mounts(inventory),
        HookMode::NvidiaCdiHook => inventory
            .libraries
            .iter()
            .filter_map(|lib| {
                rootfs::inside(&roots.driver_root, &lib.host)
                    .map(|container| mount(&lib.host, &container, &[]))
            })
            .collect(),
    };
    let files = |list: &[HostFile], extra: &[&str]| -> Vec<Mount> {
        list.iter()
            .map(|file| mount(&file.host, &file.container, extra))
            .collect()
    };
    mounts.extend(files(&inventory.binaries, &[]));
    mounts.extend(files(&inventory.firmware, &[]));
    mounts.extend(files(&inventory.configs, &[]));
    mounts.extend(files(&inventory.ipc, &["noexec"]));
    mounts.sort_by(|a, b| a.container_path.cmp(&b.container_path));
    mounts.dedup_by(|a, b| a.container_path == b.container_path);

    let mut env = vec!["NVIDIA_VISIBLE_DEVICES=void".to_owned()];
    let has_libcuda = inventory
        .libraries
        .iter()
        .any(|lib| lib.soname == "libcuda.so.1");
    if options.hooks == HookMode::None && has_libcuda {
        env.push(format!("{TRITON_LIBCUDA_PATH}={TRITON_LIBCUDA_DIR}"));
    }
    let mut spec = Spec {
        cdi_version: String::new(),
        kind: options.kind.clone(),
        annotations: BTreeMap::default(),
        devices: std::mem::take(&mut devices),
        container_edits: ContainerEdits {
            env,
            device_nodes: inventory.shared_nodes.iter().map(node).collect(),
            hooks: match options.hooks {
                HookMode::None => Vec::new(),
                HookMode::NvidiaCdiHook => nvidia_hooks(inventory, roots),
            },
            mounts,
            ..ContainerEdits::default()
        },
    };
    fit_version(&mut spec, options.max_version, &mut warnings)?;
    Ok(Generated { spec, warnings })
}

fn spec_node(node: &DeviceNode, dev_root: &Path) -> SpecNode {
    SpecNode {
        path: node.path.to_string_lossy().into_owned(),
        host_path: (dev_root != Path::new("/")).then(|| {
            rootfs::join(dev_root, &node.path)
                .to_string_lossy()
                .into_owned()
        }),
        ..SpecNode::default()
    }
}

fn device_edits(
    nodes: impl Iterator<Item = SpecNode>,
    gids: impl Iterator<Item = u32>,
) -> ContainerEdits {
    let gids: BTreeSet<u32> = gids.collect();
    ContainerEdits {
        device_nodes: nodes.collect(),
        additional_gids: gids.into_iter().collect(),
        ..ContainerEdits::default()
    }
}

fn push_unique(into: &mut Vec<SpecNode>, nodes: &[SpecNode]) {
    for node in nodes {
        if !into.iter().any(|known| known.path == node.path) {
            into.push(node.clone());
        }
    }
}

fn mount(host: &Path, container: &Path, extra: &[&str]) -> Mount {
    Mount {
        host_path: host.to_string_lossy().into_owned(),
        container_path: container.to_string_lossy().into_owned(),
        kind: None,
        options: MOUNT_OPTIONS
            .iter()
            .chain(extra)
            .map(|option| (*option).to_owned())
            .collect(),
    }
}

/// Each library at its SONAME and at each of its aliases, in every directory of
/// [`container_library_dirs`].
fn hook_free_library_mounts(inventory: &Inventory) -> Vec<Mount> {
    let mut mounts = Vec::new();
    for dir in container_library_dirs() {
        for lib in &inventory.libraries {
            let base = if lib.vdpau {
                PathBuf::from(&dir).join("vdpau")
            } else {
                PathBuf::from(&dir)
            };
            for name in std::iter::once(&lib.soname).chain(&lib.aliases) {
                mounts.push(mount(&lib.host, &base.join(name), &[]));
            }
        }
    }
    mounts
}

fn nvidia_hooks(inventory: &Inventory, roots: &DriverRoots) -> Vec<Hook> {
    let hook_binary = ["/usr/bin/nvidia-cdi-hook", "/usr/local/bin/nvidia-cdi-hook"]
        .iter()
        .find(|path| {
            rootfs::resolve(&roots.driver_root, Path::new(path)).is_some_and(|host| host.is_file())
        })
        .map_or("/usr/bin/nvidia-cdi-hook", |path| path);
    let hook = |args: Vec<String>| Hook {
        hook_name: "createContainer".to_owned(),
        path: hook_binary.to_owned(),
        args: std::iter::once("nvidia-cdi-hook".to_owned())
            .chain(args)
            .collect(),
        env: Vec::new(),
        timeout: None,
    };
    let mut hooks = Vec::new();
    if let Some(cuda) = inventory
        .libraries
        .iter()
        .find(|lib| lib.soname == "libcuda.so.1")
    {
        if let Some(container) = rootfs::inside(&roots.driver_root, &cuda.host) {
            let dir = container.parent().unwrap_or(Path::new("/"));
            hooks.push(hook(vec![
                "create-symlinks".to_owned(),
                "--link".to_owned(),
                format!("libcuda.so.1::{}", dir.join("libcuda.so").display()),
            ]));
        }
    }
    hooks.push(hook(vec![
        "enable-cuda-compat".to_owned(),
        format!("--host-driver-version={}", inventory.driver_version),
    ]));
    let mut update = vec!["update-ldcache".to_owned()];
    for dir in &inventory.library_dirs {
        update.push("--folder".to_owned());
        update.push(dir.display().to_string());
    }
    hooks.push(hook(update));
    hooks
}

/// Sets the lowest `cdiVersion` the content needs, dropping what the target cannot read where
/// that is safe and refusing where it is not.
fn fit_version(
    spec: &mut Spec,
    max: Option<CdiVersion>,
    warnings: &mut Vec<Warning>,
) -> Result<()> {
    let mut need = spec.required_version();
    if let Some(max) = max {
        if need.version > max && need.reason == "additionalGids" {
            for device in &mut spec.devices {
                device.container_edits.additional_gids.clear();
            }
            spec.container_edits.additional_gids.clear();
            warnings.push(Warning {
                message: format!(
                    "dropped additionalGids: the target podman loads cdiVersion {max} at most; \
                     processes in the container may lack the group of some device nodes"
                ),
                hint: Some("upgrade podman to 5.1 or newer to keep them".to_owned()),
            });
            need = spec.required_version();
        }
        if need.version > max {
            let hint = match need.reason {
                "device names starting with a digit" => {
                    "generate with --names uuid, or upgrade podman"
                }
                "deviceNodes[].hostPath" => {
                    "generate on a host whose /dev holds the nodes (no --dev-root), or upgrade podman"
                }
                _ => "upgrade podman",
            };
            return Err(Error::user(format!(
                "the target podman loads cdiVersion {max} at most, but this spec needs {} for {}",
                need.version, need.reason
            ))
            .hint(hint));
        }
    }
    spec.cdi_version = need.version.to_string();
    Ok(())
}
