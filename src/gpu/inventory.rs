//! Full driver discovery for CDI specs: GPUs, MIG devices, device nodes, driver libraries with
//! their SONAMEs, binaries, firmware, IPC sockets and config files, read from the host the way
//! `nvidia-ctk cdi generate` finds them, but without NVML (which fails without a loaded driver).
//!
//! Problems that still leave a usable GPU (a missing `nvidia-uvm`, an unreadable
//! `nvidia-caps`, a broken `ld.so.cache`, a truncated library) become [`Warning`]s; only "no
//! driver at all" is an error.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::rootfs::{self, Resolver, inside};
use super::{DeviceNode, DriverRoots, elf, is_version, ldcache};
use crate::{Error, Result};

/// One physical GPU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gpu {
    /// NVML's index: GPUs ordered by PCI bus id.
    pub index: u32,
    pub minor: u32,
    pub uuid: Option<String>,
    pub bus_id: Option<String>,
    pub model: Option<String>,
    /// `/dev/nvidia<minor>` and the GPU's DRM nodes.
    pub nodes: Vec<DeviceNode>,
}

/// One MIG device (a compute instance inside a GPU instance).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigDevice {
    pub gpu_index: u32,
    /// Position among its GPU's MIG devices, ordered by (gi, ci): the `1` in name `0:1`.
    pub index: u32,
    pub gi: u32,
    pub ci: u32,
    /// The parent GPU's node plus the two capability nodes.
    pub nodes: Vec<DeviceNode>,
}

/// A driver library.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Library {
    /// The real file on the host.
    pub host: PathBuf,
    /// Its ELF SONAME (`libcuda.so.1`), or its file name when it has none.
    pub soname: String,
    /// Lives in the `vdpau/` subdirectory of a library directory.
    pub vdpau: bool,
    /// Other names it is opened or linked by, relative to a library directory, sorted: the
    /// development links the driver's packages ship (`libcuda.so`, `libnvidia-ml.so`) and GBM's
    /// backend (`gbm/nvidia-drm_gbm.so`).
    pub aliases: Vec<String>,
}

/// A file mounted at a fixed container path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostFile {
    pub host: PathBuf,
    pub container: PathBuf,
}

/// A problem worth telling the user about, with its fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    pub message: String,
    pub hint: Option<String>,
}

/// What the host has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inventory {
    pub driver_version: String,
    pub gpus: Vec<Gpu>,
    pub mig: Vec<MigDevice>,
    /// `nvidiactl`, `nvidia-uvm`, `nvidia-uvm-tools`, `nvidia-modeset`: needed by every GPU.
    pub shared_nodes: Vec<DeviceNode>,
    pub libraries: Vec<Library>,
    /// The directories holding `libcuda.so.<version>`, as seen inside the driver root.
    pub library_dirs: Vec<PathBuf>,
    pub binaries: Vec<HostFile>,
    pub firmware: Vec<HostFile>,
    pub ipc: Vec<HostFile>,
    pub configs: Vec<HostFile>,
    pub warnings: Vec<Warning>,
}

/// What a spec was built from; a spec is stale when the host's differs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fingerprint {
    pub driver_version: String,
    /// `path major:minor` of every node the spec names.
    pub nodes: Vec<String>,
    /// Host paths of the mounted libraries.
    pub libraries: Vec<String>,
    /// `gpu<minor>/gi<g>/ci<c>` of each MIG device.
    pub mig: Vec<String>,
}

const SHARED_NODES: [&str; 4] = [
    "/dev/nvidiactl",
    "/dev/nvidia-uvm",
    "/dev/nvidia-uvm-tools",
    "/dev/nvidia-modeset",
];

const BINARIES: [&str; 5] = [
    "nvidia-smi",
    "nvidia-debugdump",
    "nvidia-persistenced",
    "nvidia-cuda-mps-control",
    "nvidia-cuda-mps-server",
];

const BINARY_DIRS: [&str; 8] = [
    "/usr/bin",
    "/usr/sbin",
    "/bin",
    "/sbin",
    "/usr/local/nvidia/bin",
    "/usr/local/bin",
    "/usr/lib/nvidia/current",
    "/usr/lib/nvidia",
];

const IPC: [&str; 3] = [
    "/run/nvidia-persistenced/socket",
    "/run/nvidia-fabricmanager/socket",
    "/tmp/nvidia-mps",
];

/// Config files the driver installs under more than one name (Fedora suffixes the Vulkan ICD
/// with the architecture): `(directory, prefix of the file names)`; what each names is read by
/// its loader (Vulkan, EGL, GLVND, OpenCL) from every file in the directory.
const CONFIG_DIRS: [(&str, &str); 9] = [
    ("/etc/OpenCL/vendors", "nvidia"),
    ("/etc/vulkan/icd.d", "nvidia_icd"),
    ("/etc/vulkan/implicit_layer.d", "nvidia_layers"),
    ("/usr/share/egl/egl_external_platform.d", ""),
    ("/usr/share/glvnd/egl_vendor.d", ""),
    ("/usr/share/vulkan/icd.d", "nvidia_icd"),
    ("/usr/share/vulkan/implicit_layer.d", "nvidia_layers"),
    ("/usr/share/vulkansc/icd.d", "nvidia_icd"),
    ("/usr/share/nvidia", "nvoptix.bin"),
];

/// Driver libraries whose file name is their SONAME, with no driver version in it: found by
/// name, as `*.so.<version>` cannot find them.
const UNVERSIONED_LIBS: [&str; 1] = ["libnvidia-api.so.1"];

const EGL_PLATFORM_LIBS: [&str; 4] = [
    "libnvidia-egl-gbm.so.",
    "libnvidia-egl-wayland.so.",
    "libnvidia-egl-xcb.so.",
    "libnvidia-egl-xlib.so.",
];

/// The multiarch tuple of this build's architecture (`x86_64-linux-gnu`).
pub fn multiarch() -> &'static str {
    match std::env::consts::ARCH {
        "aarch64" => "aarch64-linux-gnu",
        "powerpc64" => "powerpc64le-linux-gnu",
        _ => "x86_64-linux-gnu",
    }
}

/// Library directories searched under the driver root, most specific first, 64-bit only.
fn library_search_dirs() -> Vec<String> {
    let tuple = multiarch();
    vec![
        format!("/usr/lib/{tuple}/nvidia/current"),
        format!("/usr/lib/{tuple}"),
        format!("/lib/{tuple}"),
        "/usr/lib64/nvidia".to_owned(),
        "/usr/lib64".to_owned(),
        "/lib64".to_owned(),
        "/usr/local/nvidia/lib64".to_owned(),
        "/usr/local/nvidia/lib".to_owned(),
        "/usr/lib/nvidia".to_owned(),
        "/usr/lib".to_owned(),
    ]
}

/// One discovery's view of the driver root: each path inside it is resolved, each directory
/// listed and each file's ELF header read at most once, however many lookups share them.
struct DriverTree<'a> {
    resolver: Resolver<'a>,
    /// By host path.
    elves: HashMap<OsString, elf::Inspection>,
}

impl<'a> DriverTree<'a> {
    fn new(root: &'a Path) -> Self {
        Self {
            resolver: Resolver::new(root),
            elves: HashMap::new(),
        }
    }

    fn root(&self) -> &'a Path {
        self.resolver.root()
    }

    /// The names in `dir` (inside the root) that `keep` accepts, sorted.
    fn names(&mut self, dir: &Path, keep: impl Fn(&str) -> bool) -> Vec<String> {
        let mut names: Vec<String> = self
            .resolver
            .list(dir)
            .unwrap_or_default()
            .iter()
            .map(|name| name.to_string_lossy())
            .filter(|name| keep(name))
            .map(std::borrow::Cow::into_owned)
            .collect();
        names.sort();
        names
    }

    fn inspect(&mut self, host: &Path) -> &elf::Inspection {
        self.elves
            .entry(host.as_os_str().to_owned())
            .or_insert_with(|| elf::inspect(host))
    }

    /// Whether `host` is an ELF file for another word size or machine than podlab's own, such
    /// as Fedora's 32-bit `.i686` copies in `/usr/lib`, which share the 64-bit libraries' names
    /// and SONAMEs. A file that cannot be read or is not ELF is not foreign: it gets its own
    /// warning.
    fn foreign(&mut self, host: &Path) -> bool {
        self.inspect(host)
            .target
            .is_some_and(|target| !target.is_native())
    }
}

/// Reads everything podlab mounts or names in a CDI spec.
pub fn discover(roots: &DriverRoots) -> Result<Inventory> {
    let mut warnings = Vec::new();
    let mut tree = DriverTree::new(&roots.driver_root);
    let proc_version = roots.driver_version();
    let candidates = libcuda_candidates(&mut tree, &mut warnings);
    let Some(driver_version) = proc_version.or_else(|| candidates.keys().next_back().cloned())
    else {
        return Err(no_driver(roots));
    };
    let Some(library_dirs) = candidates.get(&driver_version) else {
        let found: Vec<&String> = candidates.keys().collect();
        return Err(Error::user(format!(
            "no NVIDIA driver libraries for the loaded driver {driver_version} under {} (found: {})",
            roots.driver_root.display(),
            if found.is_empty() { "none".to_owned() } else { found.iter().map(|v| v.as_str()).collect::<Vec<_>>().join(", ") }
        ))
        .hint("install the driver's userspace packages of the same version, or reboot into the new kernel module"));
    };
    if candidates.len() > 1 {
        warnings.push(Warning {
            message: format!(
                "several driver versions under {}: using {driver_version}",
                roots.driver_root.display()
            ),
            hint: Some("remove the old driver's libraries".to_owned()),
        });
    }
    let library_dirs: Vec<PathBuf> = library_dirs.iter().cloned().collect();
    let libraries = libraries(&mut tree, &library_dirs, &driver_version, &mut warnings);
    let (gpus, mut node_warnings) = gpus(roots);
    warnings.append(&mut node_warnings);
    let shared_nodes = shared_nodes(roots, &mut warnings);
    let mig = mig_devices(roots, &gpus, &mut warnings);
    Ok(Inventory {
        binaries: binaries(&mut tree.resolver),
        firmware: firmware(&mut tree.resolver, &driver_version),
        ipc: IPC
            .iter()
            .filter(|path| roots.dev_path(path).exists())
            .map(|path| HostFile {
                host: roots.dev_path(path),
                container: PathBuf::from(path),
            })
            .collect(),
        configs: configs(&mut tree),
        driver_version,
        gpus,
        mig,
        shared_nodes,
        libraries,
        library_dirs,
        warnings,
    })
}

fn no_driver(roots: &DriverRoots) -> Error {
    Error::user(format!("no NVIDIA driver found under {}", roots.driver_root.display())).hint(
        "install the NVIDIA driver, or point --driver-root at the directory that holds it (for example /run/nvidia/driver)",
    )
}

/// `libcuda.so.<version>` files, by version, with the directories (inside the root) holding them.
fn libcuda_candidates(
    tree: &mut DriverTree,
    warnings: &mut Vec<Warning>,
) -> BTreeMap<String, BTreeSet<PathBuf>> {
    let root = tree.root();
    let mut found: BTreeMap<String, BTreeSet<PathBuf>> = BTreeMap::new();
    let mut add = |tree: &mut DriverTree, real: &Path| {
        let Some(name) = real.file_name().and_then(|name| name.to_str()) else {
            return;
        };
        let Some(version) = name.strip_prefix("libcuda.so.").filter(|v| is_version(v)) else {
            return;
        };
        if tree.foreign(real) {
            return;
        }
        if let Some(dir) = real.parent().and_then(|dir| inside(root, dir)) {
            found.entry(version.to_owned()).or_default().insert(dir);
        }
    };
    for dir in library_search_dirs() {
        let dir = Path::new(&dir);
        let links: Vec<PathBuf> = tree
            .resolver
            .list(dir)
            .unwrap_or_default()
            .iter()
            .filter(|name| name.to_string_lossy().starts_with("libcuda.so."))
            .map(|name| dir.join(name))
            .collect();
        for link in links {
            if let Some(real) = tree.resolver.resolve(&link) {
                add(tree, &real);
            }
        }
    }
    let cache_path = rootfs::join(root, Path::new("/etc/ld.so.cache"));
    if let Ok(bytes) = fs::read(&cache_path) {
        match ldcache::parse(&bytes) {
            Ok(entries) => {
                for entry in entries
                    .iter()
                    .filter(|entry| entry.name.starts_with("libcuda.so"))
                {
                    if let Some(real) = tree.resolver.resolve(&entry.path) {
                        add(tree, &real);
                    }
                }
            }
            Err(err) => warnings.push(Warning {
                message: format!(
                    "{}: {err}; searching the standard library directories instead",
                    cache_path.display()
                ),
                hint: Some(format!("rebuild it: ldconfig -r {}", root.display())),
            }),
        }
    }
    found
}

/// Every library of the driver's version wherever the loader finds it: `*.so.<version>` (and
/// [`UNVERSIONED_LIBS`]) in the directories holding `libcuda` (with their `vdpau/`), in the
/// standard library directories, and in the root's `ld.so.cache`; plus the EGL platform
/// libraries, which carry versions of their own. Debian, for one, keeps the public libraries
/// in `nvidia/current` but the internal ones (`libnvidia-gpucomp`, `-glcore`, ...) in the
/// multiarch directory. 32-bit copies are left out; the first file of each SONAME wins.
fn libraries(
    tree: &mut DriverTree,
    dirs: &[PathBuf],
    version: &str,
    warnings: &mut Vec<Warning>,
) -> Vec<Library> {
    let suffix = format!(".so.{version}");
    let is_driver_lib = |name: &str| name.ends_with(&suffix) || UNVERSIONED_LIBS.contains(&name);
    let is_egl_platform = |name: &str| {
        EGL_PLATFORM_LIBS.iter().any(|prefix| {
            name.strip_prefix(prefix)
                .is_some_and(|v| v.split('.').count() >= 3)
        })
    };
    let search: Vec<PathBuf> = library_search_dirs()
        .into_iter()
        .map(PathBuf::from)
        .collect();
    let mut files: Vec<(PathBuf, bool)> = Vec::new();
    for dir in dirs.iter().chain(&search) {
        for (sub, vdpau) in [(dir.clone(), false), (dir.join("vdpau"), true)] {
            let names = tree.names(&sub, |name| {
                is_driver_lib(name) || (!vdpau && is_egl_platform(name))
            });
            files.extend(names.into_iter().map(|name| (sub.join(name), vdpau)));
        }
    }
    for entry in cache_entries(tree) {
        let name = entry
            .path
            .file_name()
            .map(|name| name.to_string_lossy().into_owned());
        let real = tree.resolver.resolve_file(&entry.path);
        let real_name = real
            .as_ref()
            .and_then(|host| host.file_name())
            .map(|name| name.to_string_lossy().into_owned());
        if [name, real_name]
            .iter()
            .flatten()
            .any(|name| is_driver_lib(name))
        {
            let vdpau = entry
                .path
                .parent()
                .is_some_and(|dir| dir.ends_with("vdpau"));
            files.push((entry.path, vdpau));
        }
    }
    let mut seen_hosts: BTreeSet<OsString> = BTreeSet::new();
    let mut seen_sonames = BTreeSet::new();
    let mut out = Vec::new();
    for (path, vdpau) in files {
        let Some(host) = tree
            .resolver
            .resolve_file(&path)
            .filter(|host| !tree.foreign(host))
        else {
            continue;
        };
        if !seen_hosts.insert(host.as_os_str().to_owned()) {
            continue;
        }
        let soname = match &tree.inspect(&host).soname {
            Ok(Some(soname)) => soname.clone(),
            Ok(None) => host
                .file_name()
                .map(|name| name.to_string_lossy().into_owned())
                .unwrap_or_default(),
            Err(err) => {
                warnings.push(Warning {
                    // The error names the file.
                    message: format!("skipping {err}"),
                    hint: Some("reinstall the NVIDIA driver's userspace packages".to_owned()),
                });
                continue;
            }
        };
        // VDPAU drivers are loaded from `vdpau/` whatever directory the package keeps them in
        // (Debian: `nvidia/current`, behind an alternatives link in the multiarch `vdpau/`).
        let vdpau = vdpau || soname.starts_with("libvdpau_");
        if seen_sonames.insert((soname.clone(), vdpau)) {
            out.push(Library {
                host,
                soname,
                vdpau,
                aliases: Vec::new(),
            });
        }
    }
    add_aliases(tree, dirs.iter().chain(&search), &mut out);
    out.sort_by(|a, b| (a.vdpau, &a.soname).cmp(&(b.vdpau, &b.soname)));
    out
}

/// The entries of the driver root's `ld.so.cache` (none when it is missing or unreadable: the
/// libcuda search has said so already).
fn cache_entries(tree: &DriverTree) -> Vec<ldcache::CacheEntry> {
    let path = rootfs::join(tree.root(), Path::new("/etc/ld.so.cache"));
    fs::read(path)
        .ok()
        .and_then(|bytes| ldcache::parse(&bytes).ok())
        .unwrap_or_default()
}

/// Fills in [`Library::aliases`]: each unversioned `lib*.so` development link in the library
/// directories, and each `gbm/*_gbm.so` backend, that leads to a library's file. `libcuda.so`
/// is always there: Triton and torch's inductor link their launchers with `-lcuda`, which
/// needs it, and not every driver package ships it.
fn add_aliases<'a>(
    tree: &mut DriverTree,
    dirs: impl Iterator<Item = &'a PathBuf>,
    libraries: &mut [Library],
) {
    let mut seen_dirs = BTreeSet::new();
    for dir in dirs {
        if !seen_dirs.insert(dir.clone()) {
            continue;
        }
        for (sub, prefix) in [(dir.clone(), ""), (dir.join("gbm"), "gbm/")] {
            let names = tree.names(&sub, |name| {
                if prefix.is_empty() {
                    name.starts_with("lib")
                        && Path::new(name).extension().is_some_and(|ext| ext == "so")
                } else {
                    name.ends_with("_gbm.so")
                }
            });
            for name in names {
                let Some(host) = tree.resolver.resolve_file(&sub.join(&name)) else {
                    continue;
                };
                if let Some(lib) = libraries
                    .iter_mut()
                    .find(|lib| !lib.vdpau && lib.host == host)
                {
                    let alias = format!("{prefix}{name}");
                    if alias != lib.soname && !lib.aliases.contains(&alias) {
                        lib.aliases.push(alias);
                    }
                }
            }
        }
    }
    if let Some(cuda) = libraries
        .iter_mut()
        .find(|lib| lib.soname == "libcuda.so.1")
    {
        if !cuda.aliases.iter().any(|alias| alias == "libcuda.so") {
            cuda.aliases.push("libcuda.so".to_owned());
        }
    }
    for lib in libraries {
        lib.aliases.sort();
    }
}

/// The config files of [`CONFIG_DIRS`] that name NVIDIA's libraries, at their own paths.
fn configs(tree: &mut DriverTree) -> Vec<HostFile> {
    let mut out = Vec::new();
    for (dir, prefix) in CONFIG_DIRS {
        let names = tree.names(Path::new(dir), |name| {
            name.starts_with(prefix) && (!prefix.is_empty() || name.contains("nvidia"))
        });
        for name in names {
            let path = Path::new(dir).join(name);
            if let Some(host) = tree.resolver.resolve_file(&path) {
                out.push(HostFile {
                    host,
                    container: path,
                });
            }
        }
    }
    out
}

/// `(bus id, device minor, UUID, model)` as `/proc/driver/nvidia/gpus/*/information` says.
type GpuDescription = (Option<String>, u32, Option<String>, Option<String>);

/// GPUs from `/proc/driver/nvidia/gpus/*/information`, or from `/dev/nvidia<N>` when the
/// driver's proc files are absent.
fn gpus(roots: &DriverRoots) -> (Vec<Gpu>, Vec<Warning>) {
    let mut warnings = Vec::new();
    let mut described: Vec<GpuDescription> = Vec::new();
    if let Ok(entries) = fs::read_dir(roots.dev_path("/proc/driver/nvidia/gpus")) {
        for entry in entries.filter_map(std::result::Result::ok) {
            let Ok(text) = fs::read_to_string(entry.path().join("information")) else {
                continue;
            };
            let field = |key: &str| {
                text.lines()
                    .find_map(|line| {
                        line.strip_prefix(key)
                            .and_then(|rest| rest.strip_prefix(':'))
                    })
                    .map(|value| value.trim().to_owned())
                    .filter(|value| !value.is_empty())
            };
            let Some(minor) = field("Device Minor").and_then(|minor| minor.parse().ok()) else {
                continue;
            };
            let bus = field("Bus Location")
                .or_else(|| Some(entry.file_name().to_string_lossy().into_owned()));
            described.push((bus, minor, field("GPU UUID"), field("Model")));
        }
    }
    if described.is_empty() {
        let mut minors: Vec<u32> = roots
            .device_nodes()
            .iter()
            .filter_map(|node| {
                node.path
                    .to_str()?
                    .strip_prefix("/dev/nvidia")?
                    .parse()
                    .ok()
            })
            .collect();
        minors.sort_unstable();
        described = minors
            .into_iter()
            .map(|minor| (None, minor, None, None))
            .collect();
    }
    described.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
    let mut gpus = Vec::new();
    for (index, (bus_id, minor, uuid, model)) in (0u32..).zip(described) {
        let node_path = PathBuf::from(format!("/dev/nvidia{minor}"));
        let Some(node) = roots.device_node(&node_path) else {
            warnings.push(Warning {
                message: format!("GPU {index} has no device node {}", node_path.display()),
                hint: Some(format!("sudo nvidia-modprobe -c={minor}")),
            });
            continue;
        };
        let mut nodes = vec![node];
        if let Some(bus) = &bus_id {
            nodes.extend(drm_nodes(roots, bus));
        }
        gpus.push(Gpu {
            index,
            minor,
            uuid,
            bus_id,
            model,
            nodes,
        });
    }
    (gpus, warnings)
}

fn drm_nodes(roots: &DriverRoots, bus: &str) -> Vec<DeviceNode> {
    let dir = roots.dev_path(&format!("/sys/bus/pci/devices/{}/drm", bus.to_lowercase()));
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .filter_map(std::result::Result::ok)
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with("card") || name.starts_with("renderD"))
        .collect();
    names.sort();
    names
        .iter()
        .filter_map(|name| roots.device_node(&Path::new("/dev/dri").join(name)))
        .collect()
}

fn shared_nodes(roots: &DriverRoots, warnings: &mut Vec<Warning>) -> Vec<DeviceNode> {
    let nodes: Vec<DeviceNode> = SHARED_NODES
        .iter()
        .filter_map(|path| roots.device_node(Path::new(path)))
        .collect();
    if !nodes
        .iter()
        .any(|node| node.path == Path::new("/dev/nvidia-uvm"))
    {
        warnings.push(Warning {
            message: "/dev/nvidia-uvm is missing: CUDA programs will fail to allocate memory"
                .to_owned(),
            hint: Some("sudo nvidia-modprobe -u -c=0".to_owned()),
        });
    }
    if !nodes
        .iter()
        .any(|node| node.path == Path::new("/dev/nvidiactl"))
    {
        warnings.push(Warning {
            message: "/dev/nvidiactl is missing".to_owned(),
            hint: Some("sudo nvidia-modprobe".to_owned()),
        });
    }
    nodes
}

/// Fills in the minors of the wanted capability names from `mig-minors` text (`NAME MINOR`
/// lines); as in a map built from every line, a later valid line wins. The file lists every
/// capability of 32 GPUs, so the lines of GPUs with no wanted name are passed over unhashed.
fn fill_cap_minors(text: &str, wanted: &mut HashMap<String, Option<u32>>) {
    let gpu_of = |name: &str| name.split_once('/').map_or("", |(gpu, _)| gpu).to_owned();
    let gpus: BTreeSet<String> = wanted.keys().map(|name| gpu_of(name)).collect();
    for line in text.lines() {
        let Some((name, minor)) = line.split_once(' ') else {
            continue;
        };
        let gpu = name.split_once('/').map_or("", |(gpu, _)| gpu);
        if !gpus.contains(gpu) {
            continue;
        }
        if let Some(slot) = wanted.get_mut(name) {
            if let Ok(minor) = minor.trim().parse() {
                *slot = Some(minor);
            }
        }
    }
}

/// MIG devices: instances listed under `/proc/driver/nvidia/capabilities/gpu<minor>/mig/`,
/// with capability node minors from `/proc/driver/nvidia-caps/mig-minors`.
fn mig_devices(roots: &DriverRoots, gpus: &[Gpu], warnings: &mut Vec<Warning>) -> Vec<MigDevice> {
    let mig_dirs: Vec<PathBuf> = gpus
        .iter()
        .map(|gpu| {
            roots.dev_path(&format!(
                "/proc/driver/nvidia/capabilities/gpu{}/mig",
                gpu.minor
            ))
        })
        .collect();
    let gis: Vec<Vec<u32>> = mig_dirs.iter().map(|dir| numbered(dir, "gi")).collect();
    // The driver writes `mig-minors` on every host, MIG or not (a few thousand lines), and
    // `/dev/nvidia-caps` is made only when needed: both matter only where MIG instances exist.
    if gis.iter().all(Vec::is_empty) {
        return Vec::new();
    }
    let Ok(minors_text) = fs::read_to_string(roots.dev_path("/proc/driver/nvidia-caps/mig-minors"))
    else {
        return Vec::new();
    };
    if fs::read_dir(roots.dev_path("/dev/nvidia-caps")).is_err() {
        warnings.push(Warning {
            message: "/dev/nvidia-caps is missing or unreadable: MIG devices are left out"
                .to_owned(),
            hint: Some(
                "sudo nvidia-modprobe -f /proc/driver/nvidia/capabilities/mig/config".to_owned(),
            ),
        });
        return Vec::new();
    }
    // Each GPU's (gi, ci) pairs, sorted.
    let instances: Vec<Vec<(u32, u32)>> = mig_dirs
        .iter()
        .zip(gis)
        .map(|(dir, gis)| {
            let mut pairs: Vec<(u32, u32)> = gis
                .into_iter()
                .flat_map(|gi| {
                    numbered(&dir.join(format!("gi{gi}")), "ci")
                        .into_iter()
                        .map(move |ci| (gi, ci))
                })
                .collect();
            pairs.sort_unstable();
            pairs
        })
        .collect();
    // The capability names those instances need, looked up in one pass over the file.
    let keys = |minor: u32, gi: u32, ci: u32| {
        [
            format!("gpu{minor}/gi{gi}/access"),
            format!("gpu{minor}/gi{gi}/ci{ci}/access"),
        ]
    };
    let mut cap_minors: HashMap<String, Option<u32>> = gpus
        .iter()
        .zip(&instances)
        .flat_map(|(gpu, pairs)| pairs.iter().flat_map(|&(gi, ci)| keys(gpu.minor, gi, ci)))
        .map(|key| (key, None))
        .collect();
    fill_cap_minors(&minors_text, &mut cap_minors);
    let mut out = Vec::new();
    for (gpu, pairs) in gpus.iter().zip(instances) {
        for (index, (gi, ci)) in (0u32..).zip(pairs) {
            let caps: Option<Vec<DeviceNode>> = keys(gpu.minor, gi, ci)
                .iter()
                .map(|key| {
                    let minor = cap_minors.get(key.as_str()).copied().flatten()?;
                    roots.device_node(&PathBuf::from(format!(
                        "/dev/nvidia-caps/nvidia-cap{minor}"
                    )))
                })
                .collect();
            let Some(caps) = caps else {
                warnings.push(Warning {
                    message: format!(
                        "MIG device {}:{index} (gi {gi}, ci {ci}) has no capability nodes",
                        gpu.index
                    ),
                    hint: Some(
                        "sudo nvidia-modprobe -f /proc/driver/nvidia/capabilities/mig/config"
                            .to_owned(),
                    ),
                });
                continue;
            };
            let mut nodes: Vec<DeviceNode> = gpu.nodes.iter().take(1).cloned().collect();
            nodes.extend(caps);
            out.push(MigDevice {
                gpu_index: gpu.index,
                index,
                gi,
                ci,
                nodes,
            });
        }
    }
    out
}

/// The numbers N of entries `<prefix>N` in a directory.
fn numbered(dir: &Path, prefix: &str) -> Vec<u32> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .filter_map(std::result::Result::ok)
        .filter_map(|entry| {
            entry
                .file_name()
                .to_str()?
                .strip_prefix(prefix)?
                .parse()
                .ok()
        })
        .collect()
}

fn binaries(resolver: &mut Resolver) -> Vec<HostFile> {
    BINARIES
        .iter()
        .filter_map(|name| {
            BINARY_DIRS.iter().find_map(|dir| {
                resolver
                    .resolve_file(&Path::new(dir).join(name))
                    .map(|host| HostFile {
                        host,
                        container: Path::new("/usr/bin").join(name),
                    })
            })
        })
        .collect()
}

fn firmware(resolver: &mut Resolver, version: &str) -> Vec<HostFile> {
    let mut out = Vec::new();
    for base in ["/lib/firmware/nvidia", "/usr/lib/firmware/nvidia"] {
        let dir = Path::new(base).join(version);
        let Some(host_dir) = resolver.resolve(&dir) else {
            continue;
        };
        let Ok(entries) = fs::read_dir(&host_dir) else {
            continue;
        };
        let mut names: Vec<String> = entries
            .filter_map(std::result::Result::ok)
            .map(|entry| entry.file_name().to_string_lossy().into_owned())
            .filter(|name| {
                name.starts_with("gsp")
                    && Path::new(name)
                        .extension()
                        .is_some_and(|ext| ext.eq_ignore_ascii_case("bin"))
            })
            .collect();
        names.sort();
        out.extend(names.into_iter().map(|name| HostFile {
            host: host_dir.join(&name),
            container: Path::new("/lib/firmware/nvidia").join(version).join(name),
        }));
        if !out.is_empty() {
            break;
        }
    }
    out
}

impl Inventory {
    /// What a spec built from this inventory depends on.
    pub fn fingerprint(&self) -> Fingerprint {
        let mut nodes: BTreeSet<String> = BTreeSet::new();
        let all_nodes = self
            .gpus
            .iter()
            .flat_map(|gpu| &gpu.nodes)
            .chain(self.mig.iter().flat_map(|mig| &mig.nodes))
            .chain(&self.shared_nodes);
        for node in all_nodes {
            nodes.insert(format!(
                "{} {}:{}",
                node.path.display(),
                node.major,
                node.minor
            ));
        }
        let mut libraries: Vec<String> = self
            .libraries
            .iter()
            .map(|lib| lib.host.display().to_string())
            .collect();
        libraries.sort();
        let minor_of = |index: u32| {
            self.gpus
                .iter()
                .find(|gpu| gpu.index == index)
                .map_or(index, |gpu| gpu.minor)
        };
        Fingerprint {
            driver_version: self.driver_version.clone(),
            nodes: nodes.into_iter().collect(),
            libraries,
            mig: self
                .mig
                .iter()
                .map(|mig| format!("gpu{}/gi{}/ci{}", minor_of(mig.gpu_index), mig.gi, mig.ci))
                .collect(),
        }
    }
}

impl Fingerprint {
    /// Why `self` (recorded) no longer matches `now` (the host), or `None` when it does.
    pub fn staleness(&self, now: &Self) -> Option<String> {
        if self.driver_version != now.driver_version {
            return Some(format!(
                "driver changed from {} to {}",
                self.driver_version, now.driver_version
            ));
        }
        if self.nodes != now.nodes {
            let gone: Vec<&String> = self
                .nodes
                .iter()
                .filter(|n| !now.nodes.contains(n))
                .collect();
            let new: Vec<&String> = now
                .nodes
                .iter()
                .filter(|n| !self.nodes.contains(n))
                .collect();
            return Some(format!(
                "device nodes changed (gone: {gone:?}, new: {new:?})"
            ));
        }
        if self.libraries != now.libraries {
            let gone = self
                .libraries
                .iter()
                .filter(|l| !now.libraries.contains(l))
                .count();
            let new = now
                .libraries
                .iter()
                .filter(|l| !self.libraries.contains(l))
                .count();
            return Some(format!("driver libraries changed ({gone} gone, {new} new)"));
        }
        if self.mig != now.mig {
            return Some(format!(
                "MIG layout changed from {:?} to {:?}",
                self.mig, now.mig
            ));
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cap_minors_come_from_the_wanted_lines_only() {
        let text = "config 1\nmonitor 2\ngpu0/gi1/access 12\ngpu0/gi1/ci0/access 13\n\
                    gpu10/gi1/access 99\ngpu1/gi1/access 21\ngpu1/gi1/access x\n\
                    gpu1/gi1/access 22\ngpu1/gi1/ci0/access\n";
        let mut wanted: HashMap<String, Option<u32>> = [
            "gpu0/gi1/access",
            "gpu0/gi1/ci0/access",
            "gpu1/gi1/access",
            "gpu1/gi1/ci0/access",
            "gpu1/gi2/access",
        ]
        .into_iter()
        .map(|name| (name.to_owned(), None))
        .collect();
        fill_cap_minors(text, &mut wanted);
        let found: BTreeMap<&str, Option<u32>> = wanted
            .iter()
            .map(|(name, minor)| (name.as_str(), *minor))
            .collect();
        assert_eq!(
            found,
            BTreeMap::from([
                ("gpu0/gi1/access", Some(12)),
                ("gpu0/gi1/ci0/access", Some(13)),
                // A later valid line wins; an unparsable one does not count.
                ("gpu1/gi1/access", Some(22)),
                ("gpu1/gi1/ci0/access", None),
                ("gpu1/gi2/access", None),
            ])
        );
    }
}
