//! Synthetic NVIDIA driver roots for unit tests, shaped like real hosts.
//!
//! Each builder makes, in a temp dir, the files discovery reads on a real machine: the
//! driver's `/proc` files in the driver's own format, `/sys/bus/pci/devices/<bus>/drm`, the
//! `/dev` nodes, the libraries (tiny ELF files with the real SONAMEs, under their versioned
//! names, with the SONAME links the packages ship), binaries, GSP firmware, config files and,
//! for some roots, an `etc/ld.so.cache` written by the host's real `ldconfig -r`.
//!
//! Device nodes must be character devices and tests must not need root, so every node is a
//! symlink to a host character device (`/dev/null`, `/dev/zero`, ...): discovery reads node
//! metadata through links. Only the DRM render node of [`ubuntu_flat`] gets a group (to
//! exercise `additionalGids`): a host character device owned by a non-root group when there is
//! one, else (as root) a real node made with `mknod`; see [`Fixture::render_gid`].
//!
//! Layouts, one builder each:
//! - [`debian_like`]: Debian's `nvidia/current` directory with `/etc/alternatives` links;
//! - [`ubuntu_flat`]: NVIDIA's repo / Ubuntu flat multiarch directory, `ld.so.cache`;
//! - [`fedora_lib64`]: `/usr/lib64`, with 32-bit copies in `/usr/lib`;
//! - [`usr_local_nvidia`]: `/usr/local/nvidia/{lib64,bin}` (GKE and the like);
//! - [`split_roots`]: a GPU-operator driver root apart from the host's `/dev`;
//! - [`eight_gpus_mig`]: an 8-GPU H100 server with MIG on two GPUs;
//! - [`half_installed`]: an interrupted install (truncated libraries, missing nodes);
//! - [`no_driver`]: nothing at all.

use std::fmt::Write as _;
use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::Command;

use tempfile::TempDir;

use super::DriverRoots;
use super::elf::test_support::{build, shared_object};

/// Debian trixie's driver.
pub const V550: &str = "550.163.01";
/// A current production branch driver.
pub const V570: &str = "570.133.20";

/// The group the render node of [`ubuntu_flat`] is given when podlab makes the node itself, and
/// the number golden specs show whatever group the host lent it.
pub const RENDER_GID: u32 = 993;

/// One built root.
#[derive(Debug)]
pub struct Fixture {
    /// The builder's name (`debian_like`), also the golden file's.
    pub name: &'static str,
    /// Holds the whole tree; removed on drop.
    pub dir: TempDir,
    pub roots: DriverRoots,
    /// The driver version the tree is built for.
    pub version: &'static str,
    /// The group of the DRM render node, when this root asked for one and the host could give
    /// it (a host device of a non-root group, or `mknod` as root).
    pub render_gid: Option<u32>,
    /// Whether `etc/ld.so.cache` in the driver root was written by the host's `ldconfig`.
    pub ld_cache: bool,
}

impl Fixture {
    fn new(name: &'static str, version: &'static str) -> Self {
        let dir = tempfile::Builder::new()
            .prefix(&format!("podlab-{name}-"))
            .tempdir()
            .unwrap();
        let roots = DriverRoots {
            driver_root: dir.path().to_owned(),
            dev_root: dir.path().to_owned(),
        };
        Self {
            name,
            dir,
            roots,
            version,
            render_gid: None,
            ld_cache: false,
        }
    }

    fn driver(&self) -> Tree {
        Tree(self.roots.driver_root.clone())
    }

    fn dev(&self) -> Tree {
        Tree(self.roots.dev_root.clone())
    }
}

/// Writes into one root; paths are given as seen inside it (`/usr/lib/...`).
#[derive(Debug, Clone)]
struct Tree(PathBuf);

impl Tree {
    fn at(&self, path: &str) -> PathBuf {
        self.0.join(path.trim_start_matches('/'))
    }

    fn parent_of(path: &Path) {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
    }

    fn dir(&self, path: &str) {
        fs::create_dir_all(self.at(path)).unwrap();
    }

    fn write(&self, path: &str, bytes: impl AsRef<[u8]>) {
        let at = self.at(path);
        Self::parent_of(&at);
        fs::write(at, bytes).unwrap();
    }

    /// An executable (a shell script stands in for the ELF binary).
    fn exec(&self, path: &str) {
        let name = path.rsplit('/').next().unwrap();
        self.write(path, format!("#!/bin/sh\necho 'fake {name}'\n"));
        fs::set_permissions(self.at(path), fs::Permissions::from_mode(0o755)).unwrap();
    }

    fn remove(&self, path: &str) {
        fs::remove_file(self.at(path)).unwrap();
    }

    fn link(&self, path: &str, target: &str) {
        let at = self.at(path);
        Self::parent_of(&at);
        symlink(target, at).unwrap();
    }

    /// A device node: a link to a host character device.
    fn node(&self, path: &str, host: &str) {
        assert!(
            fs::metadata(host).unwrap().file_type().is_char_device(),
            "{host} is not a character device on this host"
        );
        self.link(path, host);
    }

    /// A listening socket's file, as a daemon leaves it.
    fn socket(&self, path: &str) {
        let at = self.at(path);
        Self::parent_of(&at);
        drop(std::os::unix::net::UnixListener::bind(at).unwrap());
    }

    /// Runs the host's `ldconfig -X -r ROOT` (no links touched: the tree already has the ones
    /// the packages ship). False, with a note, when the host has no `ldconfig`.
    fn ldconfig(&self) -> bool {
        let Some(ldconfig) = ["/sbin/ldconfig", "/usr/sbin/ldconfig"]
            .into_iter()
            .map(Path::new)
            .find(|path| path.is_file())
        else {
            eprintln!("note: no ldconfig on this host: fixture without etc/ld.so.cache");
            return false;
        };
        let out = Command::new(ldconfig)
            .arg("-X")
            .arg("-r")
            .arg(&self.0)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "ldconfig -r {}: {}",
            self.0.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        self.at("/etc/ld.so.cache").is_file()
    }

    /// Debian/Ubuntu/Fedora's merged `/usr`: `/lib`, `/bin`, ... are relative links into it.
    fn merged_usr(&self, lib64: bool) {
        for dir in ["bin", "sbin", "lib"] {
            self.dir(&format!("/usr/{dir}"));
            self.link(&format!("/{dir}"), &format!("usr/{dir}"));
        }
        if lib64 {
            self.dir("/usr/lib64");
            self.link("/lib64", "usr/lib64");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Libraries

/// A driver library: its file-name stem and the part of its SONAME after `.so.`, or `None`
/// when the SONAME is the full versioned name (NVIDIA's internal libraries).
type Lib = (&'static str, Option<&'static str>);

/// What the compute packages install (`libnvidia-compute-*`, `libcuda1`, `libnvidia-nvvm4`,
/// ...).
const COMPUTE: [Lib; 13] = [
    ("libcuda", Some("1")),
    ("libcudadebugger", Some("1")),
    ("libnvcuvid", Some("1")),
    ("libnvidia-allocator", Some("1")),
    ("libnvidia-cfg", Some("1")),
    ("libnvidia-encode", Some("1")),
    ("libnvidia-gpucomp", None),
    ("libnvidia-ml", Some("1")),
    ("libnvidia-nvvm", Some("4")),
    ("libnvidia-opencl", Some("1")),
    ("libnvidia-opticalflow", Some("1")),
    ("libnvidia-pkcs11-openssl3", None),
    ("libnvidia-ptxjitcompiler", Some("1")),
];

/// New in the 570 branch (NVIDIA's generator reads the driver version from it).
const SANDBOXUTILS: Lib = ("libnvidia-sandboxutils", Some("1"));

/// What the GL/EGL/Vulkan packages install.
const GRAPHICS: [Lib; 12] = [
    ("libEGL_nvidia", Some("0")),
    ("libGLESv1_CM_nvidia", Some("1")),
    ("libGLESv2_nvidia", Some("2")),
    ("libGLX_nvidia", Some("0")),
    ("libnvidia-eglcore", None),
    ("libnvidia-fbc", Some("1")),
    ("libnvidia-glcore", None),
    ("libnvidia-glsi", None),
    ("libnvidia-glvkspirv", None),
    ("libnvidia-rtcore", None),
    ("libnvidia-tls", None),
    ("libnvoptix", Some("1")),
];

fn soname(lib: Lib, version: &str) -> String {
    format!("{}.so.{}", lib.0, lib.1.unwrap_or(version))
}

fn file_name(lib: Lib, version: &str) -> String {
    format!("{}.so.{version}", lib.0)
}

/// Installs each library in `dir` under its versioned name, with its SONAME link (and the
/// `libcuda.so` development link), as the packages do.
fn install_libs(tree: &Tree, dir: &str, version: &str, libs: &[Lib]) {
    install_libs_as(tree, dir, version, libs, shared_object);
}

/// Like [`install_libs`], with the ELF bytes made by `make` from the SONAME.
fn install_libs_as(
    tree: &Tree,
    dir: &str,
    version: &str,
    libs: &[Lib],
    make: impl Fn(&str) -> Vec<u8>,
) {
    for &lib in libs {
        let (file, soname) = (file_name(lib, version), soname(lib, version));
        tree.write(&format!("{dir}/{file}"), make(&soname));
        if soname != file {
            tree.link(&format!("{dir}/{soname}"), &file);
        }
        if lib.0 == "libcuda" {
            tree.link(&format!("{dir}/libcuda.so"), &soname);
        }
    }
}

/// An EGL external platform library (own version, e.g. `libnvidia-egl-wayland.so.1.1.13`).
fn egl_platform(tree: &Tree, dir: &str, stem: &str, version: &str, make: fn(&str) -> Vec<u8>) {
    let soname = format!("{stem}.so.1");
    let file = format!("{stem}.so.{version}");
    tree.write(&format!("{dir}/{file}"), make(&soname));
    tree.link(&format!("{dir}/{soname}"), &file);
}

/// A 32-bit i386 shared object, as the multilib (`.i686`) packages install in `/usr/lib`.
fn i386_object(soname: &str) -> Vec<u8> {
    const EM_386: u16 = 3;
    build(soname, false, false, EM_386)
}

/// `vdpau/libvdpau_nvidia.so.<version>` under `dir`, with its SONAME link.
fn vdpau(tree: &Tree, dir: &str, version: &str) {
    install_libs(
        tree,
        &format!("{dir}/vdpau"),
        version,
        &[("libvdpau_nvidia", Some("1"))],
    );
}

fn ld_so_conf(tree: &Tree, extra: &[(&str, &str)]) {
    tree.write("/etc/ld.so.conf", "include /etc/ld.so.conf.d/*.conf\n\n");
    for (name, text) in extra {
        tree.write(&format!("/etc/ld.so.conf.d/{name}"), text);
    }
}

// ---------------------------------------------------------------------------------------------
// Binaries, firmware, configs

const ALL_BINARIES: [&str; 5] = [
    "nvidia-smi",
    "nvidia-debugdump",
    "nvidia-persistenced",
    "nvidia-cuda-mps-control",
    "nvidia-cuda-mps-server",
];

fn binaries(tree: &Tree, dir: &str, names: &[&str]) {
    for name in names {
        tree.exec(&format!("{dir}/{name}"));
    }
}

/// GSP firmware for Turing (`tu10x`) and Ampere and newer (`ga10x`).
fn firmware(tree: &Tree, base: &str, version: &str) {
    for name in ["gsp_ga10x.bin", "gsp_tu10x.bin"] {
        tree.write(
            &format!("{base}/nvidia/{version}/{name}"),
            b"\x7fELF\x02\x01\x01\0gsp-firmware",
        );
    }
}

const EGL_VENDOR_JSON: &str = "{\n    \"file_format_version\" : \"1.0.0\",\n    \"ICD\" : {\n        \"library_path\" : \"libEGL_nvidia.so.0\"\n    }\n}\n";

const VULKAN_ICD_JSON: &str = "{\n    \"file_format_version\" : \"1.0.1\",\n    \"ICD\": {\n        \"library_path\": \"libGLX_nvidia.so.0\",\n        \"api_version\" : \"1.4.303\"\n    }\n}\n";

fn egl_platform_json(library: &str) -> String {
    format!(
        "{{\n    \"file_format_version\" : \"1.0.0\",\n    \"ICD\" : {{\n        \"library_path\" : \"{library}\"\n    }}\n}}\n"
    )
}

const OPENCL_ICD: &str = "libnvidia-opencl.so.1\n";

// ---------------------------------------------------------------------------------------------
// /proc, /sys, /dev

/// `/proc/driver/nvidia/version` as the proprietary or the open kernel module prints it.
fn proc_version(tree: &Tree, version: &str, open: bool) {
    let text = if open {
        format!(
            "NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  {version}  Release Build  (dvs-builder@U16-I3-B03-4-3)  Tue Mar 25 22:27:41 UTC 2025\n\
             GCC version:  gcc version 13.3.0 (Ubuntu 13.3.0-6ubuntu2~24.04) \n"
        )
    } else {
        format!(
            "NVRM version: NVIDIA UNIX x86_64 Kernel Module  {version}  Tue Jun  3 20:26:52 UTC 2025\n\
             GCC version:  gcc version 14.2.0 (Debian 14.2.0-19) \n"
        )
    };
    tree.write("/proc/driver/nvidia/version", text);
    // The module writes these on every host, MIG-capable or not.
    mig_minors(tree);
    cap_file(tree, "/proc/driver/nvidia/capabilities/mig/config", 1);
    cap_file(tree, "/proc/driver/nvidia/capabilities/mig/monitor", 2);
}

/// One GPU as the driver describes it.
#[derive(Debug, Clone)]
struct Card {
    bus: &'static str,
    minor: u32,
    uuid: String,
    model: &'static str,
    /// `(cardN, renderDN)` when `nvidia-drm` made DRM nodes for it.
    drm: Option<(u32, u32)>,
}

impl Card {
    fn new(bus: &'static str, minor: u32, model: &'static str, seed: u64) -> Self {
        Self {
            bus,
            minor,
            uuid: uuid(seed),
            model,
            drm: None,
        }
    }

    fn drm(mut self, card: u32, render: u32) -> Self {
        self.drm = Some((card, render));
        self
    }
}

/// A stable, real-looking `GPU-xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`.
fn uuid(seed: u64) -> String {
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut hex = String::new();
    while hex.len() < 32 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        write!(hex, "{state:016x}").unwrap();
    }
    format!(
        "GPU-{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// The GPU's proc file, PCI sysfs directory, `/dev/nvidia<minor>` and DRM nodes.
/// `render_host` is the host device the render node links to.
fn gpu(tree: &Tree, card: &Card, version: &str, render_host: &str) {
    tree.write(
        &format!("/proc/driver/nvidia/gpus/{}/information", card.bus),
        format!(
            "Model: \t\t {}\n\
             IRQ:   \t\t 0\n\
             GPU UUID: \t {}\n\
             Video BIOS: \t 96.00.99.00.01\n\
             Bus Type: \t PCIe\n\
             DMA Size: \t 52 bits\n\
             DMA Mask: \t 0xfffffffffffff\n\
             Bus Location: \t {}\n\
             Device Minor: \t {}\n\
             GPU Firmware: \t {version}\n\
             GPU Excluded:\t No\n",
            card.model, card.uuid, card.bus, card.minor
        ),
    );
    let sys = format!("/sys/bus/pci/devices/{}", card.bus);
    tree.write(&format!("{sys}/vendor"), "0x10de\n");
    tree.write(&format!("{sys}/class"), "0x030200\n");
    tree.node(&format!("/dev/nvidia{}", card.minor), "/dev/zero");
    if let Some((n, render)) = card.drm {
        tree.dir(&format!("{sys}/drm/card{n}"));
        tree.dir(&format!("{sys}/drm/renderD{render}"));
        tree.node(&format!("/dev/dri/card{n}"), "/dev/zero");
        tree.link(&format!("/dev/dri/renderD{render}"), render_host);
    }
}

/// `nvidiactl`, `nvidia-uvm`, `nvidia-uvm-tools` and (when asked) `nvidia-modeset`.
fn control_nodes(tree: &Tree, uvm: bool, modeset: bool) {
    tree.node("/dev/nvidiactl", "/dev/null");
    if uvm {
        tree.node("/dev/nvidia-uvm", "/dev/full");
        tree.node("/dev/nvidia-uvm-tools", "/dev/random");
    }
    if modeset {
        tree.node("/dev/nvidia-modeset", "/dev/urandom");
    }
}

/// How many GPUs the driver's `mig-minors` table covers, whatever the host has.
const MIG_MINORS_GPUS: u32 = 32;
const MIG_GIS: u32 = 15;
const MIG_CIS: u32 = 8;

/// The capability minor of `gpu<gpu>/gi<gi>/access` (`ci: None`) or
/// `gpu<gpu>/gi<gi>/ci<ci>/access`, in the driver's numbering: `config 1`, `monitor 2`, then
/// per GPU per GPU instance the instance followed by its eight compute instances.
fn cap_minor(gpu: u32, gi: u32, ci: Option<u32>) -> u32 {
    3 + gpu * MIG_GIS * (MIG_CIS + 1) + gi * (MIG_CIS + 1) + ci.map_or(0, |ci| ci + 1)
}

/// `/proc/driver/nvidia-caps/mig-minors` as the driver writes it: every possible capability.
fn mig_minors(tree: &Tree) {
    let mut text = String::from("config 1\nmonitor 2\n");
    for gpu in 0..MIG_MINORS_GPUS {
        for gi in 0..MIG_GIS {
            writeln!(text, "gpu{gpu}/gi{gi}/access {}", cap_minor(gpu, gi, None)).unwrap();
            for ci in 0..MIG_CIS {
                let minor = cap_minor(gpu, gi, Some(ci));
                writeln!(text, "gpu{gpu}/gi{gi}/ci{ci}/access {minor}").unwrap();
            }
        }
    }
    tree.write("/proc/driver/nvidia-caps/mig-minors", text);
}

fn cap_file(tree: &Tree, path: &str, minor: u32) {
    tree.write(
        path,
        format!("DeviceFileMinor: {minor}\nDeviceFileMode: 292\nDeviceFileModify: 1\n"),
    );
}

/// The `config` and `monitor` capability nodes `nvidia-modprobe` makes for MIG.
fn mig_enabled(tree: &Tree) {
    tree.node("/dev/nvidia-caps/nvidia-cap1", "/dev/null");
    tree.node("/dev/nvidia-caps/nvidia-cap2", "/dev/null");
}

/// One GPU instance with its compute instances, on the GPU of `minor`: the proc capability
/// files and (with `nodes`) the `/dev/nvidia-caps` nodes `nvidia-modprobe` makes for them.
fn mig_instance(tree: &Tree, minor: u32, gi: u32, cis: &[u32], nodes: bool) {
    let base = format!("/proc/driver/nvidia/capabilities/gpu{minor}/mig/gi{gi}");
    let gi_minor = cap_minor(minor, gi, None);
    cap_file(tree, &format!("{base}/access"), gi_minor);
    let mut minors = vec![gi_minor];
    for &ci in cis {
        let ci_minor = cap_minor(minor, gi, Some(ci));
        cap_file(tree, &format!("{base}/ci{ci}/access"), ci_minor);
        minors.push(ci_minor);
    }
    if nodes {
        for minor in minors {
            tree.node(&format!("/dev/nvidia-caps/nvidia-cap{minor}"), "/dev/null");
        }
    }
}

/// The render node of the root that exercises `additionalGids`: a link to a host character
/// device of a non-root group if there is one, else (as root) a real node of group
/// [`RENDER_GID`]. Returns the group it got; `None` leaves a link to `/dev/full` (group root).
fn render_node_with_group(tree: &Tree, path: &str) -> Option<u32> {
    for host in [
        "/dev/dri/renderD128",
        "/dev/tty",
        "/dev/ptmx",
        "/dev/kvm",
        "/dev/fuse",
    ] {
        if let Ok(meta) = fs::metadata(host) {
            if meta.file_type().is_char_device() && meta.gid() != 0 {
                tree.link(path, host);
                return Some(meta.gid());
            }
        }
    }
    let at = tree.at(path);
    Tree::parent_of(&at);
    let made = rustix::fs::mknodat(
        rustix::fs::CWD,
        &at,
        rustix::fs::FileType::CharacterDevice,
        rustix::fs::Mode::from_raw_mode(0o660),
        rustix::fs::makedev(226, 128),
    )
    .is_ok();
    if made && std::os::unix::fs::chown(&at, None, Some(RENDER_GID)).is_ok() {
        return Some(RENDER_GID);
    }
    if made {
        fs::remove_file(&at).unwrap();
    }
    eprintln!("note: no host device of a non-root group and no mknod: render node without a group");
    tree.link(path, "/dev/full");
    None
}

// ---------------------------------------------------------------------------------------------
// The roots

/// Debian 13 with `nvidia-driver` 550 from non-free: libraries in
/// `/usr/lib/x86_64-linux-gnu/nvidia/current`, reached from the multiarch directory through
/// absolute `/etc/alternatives` links (`nvidia-alternative`), `nvidia-smi` in
/// `/usr/lib/nvidia/current`; two GPUs with DRM nodes; no `ld.so.cache`.
pub fn debian_like() -> Fixture {
    let fixture = Fixture::new("debian_like", V550);
    let t = fixture.driver();
    let version = V550;
    t.merged_usr(true);
    let multiarch = "/usr/lib/x86_64-linux-gnu";
    let current = format!("{multiarch}/nvidia/current");
    let libs: Vec<Lib> = COMPUTE.iter().chain(&GRAPHICS).copied().collect();
    install_libs(&t, &current, version, &libs);
    // nvidia-alternative: one slave link per public SONAME (and libcuda.so).
    let public = [
        "libcuda.so",
        "libcuda.so.1",
        "libnvidia-ml.so.1",
        "libnvidia-ptxjitcompiler.so.1",
        "libnvidia-nvvm.so.4",
        "libnvidia-cfg.so.1",
        "libnvidia-allocator.so.1",
        "libnvcuvid.so.1",
        "libnvidia-encode.so.1",
        "libGLX_nvidia.so.0",
        "libEGL_nvidia.so.0",
        "libGLESv2_nvidia.so.2",
        "libGLESv1_CM_nvidia.so.1",
    ];
    t.link("/etc/alternatives/nvidia", "/usr/lib/nvidia/current");
    for name in public {
        let alternative = format!("/etc/alternatives/nvidia--{name}-x86_64-linux-gnu");
        t.link(&alternative, &format!("{current}/{name}"));
        t.link(&format!("{multiarch}/{name}"), &alternative);
    }
    // nvidia-vdpau-driver installs in the multiarch vdpau/ directory, not in nvidia/current.
    vdpau(&t, multiarch, version);
    // libnvidia-egl-wayland1 and libnvidia-egl-gbm1 are packaged apart, with their own versions.
    egl_platform(
        &t,
        multiarch,
        "libnvidia-egl-wayland",
        "1.1.13",
        shared_object,
    );
    egl_platform(&t, multiarch, "libnvidia-egl-gbm", "1.1.2", shared_object);
    // nvidia-smi and nvidia-debugdump live in /usr/lib/nvidia/current behind alternatives.
    for name in ["nvidia-smi", "nvidia-debugdump"] {
        t.exec(&format!("/usr/lib/nvidia/current/{name}"));
        let alternative = format!("/etc/alternatives/nvidia--{name}");
        t.link(&alternative, &format!("/usr/lib/nvidia/current/{name}"));
        t.link(&format!("/usr/bin/{name}"), &alternative);
    }
    binaries(&t, "/usr/bin", &["nvidia-persistenced", "nvidia-cdi-hook"]);
    firmware(&t, "/usr/lib/firmware", version);
    t.write(
        "/usr/share/glvnd/egl_vendor.d/10_nvidia.json",
        EGL_VENDOR_JSON,
    );
    t.write("/usr/lib/nvidia/current/nvidia_icd.json", VULKAN_ICD_JSON);
    t.link(
        "/etc/alternatives/nvidia--nvidia_icd.json",
        "/usr/lib/nvidia/current/nvidia_icd.json",
    );
    t.link(
        "/usr/share/vulkan/icd.d/nvidia_icd.json",
        "/etc/alternatives/nvidia--nvidia_icd.json",
    );
    t.write("/etc/OpenCL/vendors/nvidia.icd", OPENCL_ICD);

    let d = fixture.dev();
    proc_version(&d, version, false);
    for card in [
        Card::new("0000:01:00.0", 0, "NVIDIA GeForce RTX 4090", 1).drm(0, 128),
        Card::new("0000:21:00.0", 1, "NVIDIA RTX A4000", 2).drm(1, 129),
    ] {
        gpu(&d, &card, version, "/dev/full");
    }
    control_nodes(&d, true, true);
    d.socket("/run/nvidia-persistenced/socket");
    fixture
}

/// Ubuntu 24.04 with NVIDIA's packages (or NVIDIA's CUDA repo): everything flat in the
/// multiarch directory, `vdpau/`, EGL platform libraries, an `ld.so.cache`; one GPU whose
/// render node belongs to a non-root group (exercises `additionalGids`).
pub fn ubuntu_flat() -> Fixture {
    let mut fixture = Fixture::new("ubuntu_flat", V570);
    let t = fixture.driver();
    let version = V570;
    t.merged_usr(true);
    let multiarch = "/usr/lib/x86_64-linux-gnu";
    let libs: Vec<Lib> = COMPUTE
        .iter()
        .chain(&GRAPHICS)
        .chain([&SANDBOXUTILS])
        .copied()
        .collect();
    install_libs(&t, multiarch, version, &libs);
    vdpau(&t, multiarch, version);
    egl_platform(
        &t,
        multiarch,
        "libnvidia-egl-wayland",
        "1.1.13",
        shared_object,
    );
    egl_platform(&t, multiarch, "libnvidia-egl-gbm", "1.1.2", shared_object);
    egl_platform(&t, multiarch, "libnvidia-egl-xcb", "1.0.1", shared_object);
    egl_platform(&t, multiarch, "libnvidia-egl-xlib", "1.0.1", shared_object);
    binaries(&t, "/usr/bin", &ALL_BINARIES);
    firmware(&t, "/usr/lib/firmware", version);
    t.write(
        "/usr/share/glvnd/egl_vendor.d/10_nvidia.json",
        EGL_VENDOR_JSON,
    );
    t.write("/usr/share/vulkan/icd.d/nvidia_icd.json", VULKAN_ICD_JSON);
    t.write(
        "/usr/share/vulkan/implicit_layer.d/nvidia_layers.json",
        "{\n    \"file_format_version\" : \"1.0.1\",\n    \"layer\": {\n        \"name\": \"VK_LAYER_NV_optimus\"\n    }\n}\n",
    );
    for (file, library) in [
        ("10_nvidia_wayland.json", "libnvidia-egl-wayland.so.1"),
        ("15_nvidia_gbm.json", "libnvidia-egl-gbm.so.1"),
        ("20_nvidia_xcb.json", "libnvidia-egl-xcb.so.1"),
        ("20_nvidia_xlib.json", "libnvidia-egl-xlib.so.1"),
    ] {
        t.write(
            &format!("/usr/share/egl/egl_external_platform.d/{file}"),
            egl_platform_json(library),
        );
    }
    t.write("/usr/share/nvidia/nvoptix.bin", b"nvoptix");
    t.write("/etc/OpenCL/vendors/nvidia.icd", OPENCL_ICD);
    ld_so_conf(
        &t,
        &[(
            "x86_64-linux-gnu.conf",
            "# Multiarch support\n/usr/local/lib/x86_64-linux-gnu\n/lib/x86_64-linux-gnu\n/usr/lib/x86_64-linux-gnu\n",
        )],
    );
    fixture.ld_cache = t.ldconfig();

    let d = fixture.dev();
    proc_version(&d, version, true);
    let card = Card::new("0000:01:00.0", 0, "NVIDIA GeForce RTX 4090", 3).drm(1, 128);
    gpu(&d, &card, version, "/dev/full");
    d.remove("/dev/dri/renderD128");
    fixture.render_gid = render_node_with_group(&d, "/dev/dri/renderD128");
    control_nodes(&d, true, true);
    d.socket("/run/nvidia-persistenced/socket");
    fixture
}

/// Fedora with RPM Fusion's `xorg-x11-drv-nvidia`: 64-bit libraries in `/usr/lib64`, the
/// `.i686` multilib copies (32-bit ELF, same names and SONAMEs) in `/usr/lib`, which must not
/// be picked; an `ld.so.cache` that lists both.
pub fn fedora_lib64() -> Fixture {
    let mut fixture = Fixture::new("fedora_lib64", V570);
    let t = fixture.driver();
    let version = V570;
    t.merged_usr(true);
    let libs: Vec<Lib> = COMPUTE
        .iter()
        .chain(&GRAPHICS)
        .chain([&SANDBOXUTILS])
        .copied()
        .collect();
    install_libs(&t, "/usr/lib64", version, &libs);
    vdpau(&t, "/usr/lib64", version);
    egl_platform(
        &t,
        "/usr/lib64",
        "libnvidia-egl-wayland",
        "1.1.13",
        shared_object,
    );
    // The 32-bit packages: cuda-libs.i686, libs.i686, egl-wayland.i686.
    let multilib: Vec<Lib> = [
        "libcuda",
        "libnvcuvid",
        "libnvidia-encode",
        "libnvidia-ml",
        "libnvidia-nvvm",
        "libnvidia-opencl",
        "libnvidia-ptxjitcompiler",
        "libEGL_nvidia",
        "libGLX_nvidia",
        "libnvidia-glcore",
        "libnvidia-tls",
    ]
    .iter()
    .filter_map(|stem| libs.iter().find(|lib| lib.0 == *stem).copied())
    .collect();
    install_libs_as(&t, "/usr/lib", version, &multilib, i386_object);
    vdpau_i386(&t, version);
    egl_platform(
        &t,
        "/usr/lib",
        "libnvidia-egl-wayland",
        "1.1.13",
        i386_object,
    );
    binaries(&t, "/usr/bin", &ALL_BINARIES);
    firmware(&t, "/usr/lib/firmware", version);
    t.write(
        "/usr/share/glvnd/egl_vendor.d/10_nvidia.json",
        EGL_VENDOR_JSON,
    );
    t.write("/etc/OpenCL/vendors/nvidia.icd", OPENCL_ICD);
    // Fedora's ldconfig searches /usr/lib64 and /usr/lib by itself; the host's (Debian's) one,
    // which builds this cache, must be told about /usr/lib64.
    ld_so_conf(&t, &[("lib64.conf", "/usr/lib64\n")]);
    fixture.ld_cache = t.ldconfig();

    let d = fixture.dev();
    proc_version(&d, version, true);
    let card = Card::new("0000:65:00.0", 0, "NVIDIA RTX A6000", 4).drm(0, 128);
    gpu(&d, &card, version, "/dev/full");
    control_nodes(&d, true, true);
    fixture
}

fn vdpau_i386(tree: &Tree, version: &str) {
    install_libs_as(
        tree,
        "/usr/lib/vdpau",
        version,
        &[("libvdpau_nvidia", Some("1"))],
        i386_object,
    );
}

/// A host whose driver is installed under `/usr/local/nvidia` (GKE's and some clusters'
/// driver installers): `lib64/` and `bin/`, nothing in the system directories, no firmware;
/// a headless T4.
pub fn usr_local_nvidia() -> Fixture {
    let fixture = Fixture::new("usr_local_nvidia", V550);
    let t = fixture.driver();
    let version = V550;
    install_libs(&t, "/usr/local/nvidia/lib64", version, &COMPUTE);
    binaries(&t, "/usr/local/nvidia/bin", &ALL_BINARIES);

    let d = fixture.dev();
    proc_version(&d, version, false);
    gpu(
        &d,
        &Card::new("0000:00:04.0", 0, "Tesla T4", 5),
        version,
        "/dev/full",
    );
    control_nodes(&d, true, false);
    fixture
}

/// The GPU operator's layout: the driver container's root at `<dir>/driver` (the host's
/// `/run/nvidia/driver`: Ubuntu-style multiarch libraries, binaries, firmware, an
/// `ld.so.cache`) and the host's `/dev`, `/proc`, `/sys` and `/run` at `<dir>/host`.
pub fn split_roots() -> Fixture {
    let mut fixture = Fixture::new("split_roots", V570);
    fixture.roots = DriverRoots {
        driver_root: fixture.dir.path().join("driver"),
        dev_root: fixture.dir.path().join("host"),
    };
    let t = fixture.driver();
    let version = V570;
    t.merged_usr(true);
    let libs: Vec<Lib> = COMPUTE.iter().chain([&SANDBOXUTILS]).copied().collect();
    install_libs(&t, "/usr/lib/x86_64-linux-gnu", version, &libs);
    binaries(&t, "/usr/bin", &ALL_BINARIES);
    firmware(&t, "/usr/lib/firmware", version);
    ld_so_conf(
        &t,
        &[(
            "x86_64-linux-gnu.conf",
            "/lib/x86_64-linux-gnu\n/usr/lib/x86_64-linux-gnu\n",
        )],
    );
    fixture.ld_cache = t.ldconfig();

    let d = fixture.dev();
    proc_version(&d, version, true);
    for card in [
        Card::new("0000:07:00.0", 0, "NVIDIA A100-SXM4-80GB", 6),
        Card::new("0000:0f:00.0", 1, "NVIDIA A100-SXM4-80GB", 7),
    ] {
        gpu(&d, &card, version, "/dev/full");
    }
    control_nodes(&d, true, false);
    d.socket("/run/nvidia-persistenced/socket");
    fixture
}

/// GPU index (bus order) → minor on the 8-GPU server: the driver numbers GPUs in probe order,
/// which need not follow the bus.
pub const EIGHT_GPU_MINORS: [u32; 8] = [2, 3, 0, 1, 6, 7, 4, 5];

/// GPU instances with their compute instances: `[(gi, [ci...])]`.
pub type MigLayout = &'static [(u32, &'static [u32])];

/// MIG layout of [`eight_gpus_mig`]: `(GPU index, instances)`.
pub const EIGHT_GPU_MIG: [(u32, MigLayout); 2] = [
    // Two 3g.40gb instances, the first split into three 1c compute instances.
    (2, &[(1, &[0, 1, 2]), (2, &[0])]),
    // Four 1g.10gb instances.
    (5, &[(7, &[0]), (8, &[0]), (9, &[0]), (10, &[0])]),
];

/// An HGX H100 server (NVIDIA's repo layout, open kernel module, fabric manager): 8 GPUs,
/// minors in probe order, MIG enabled on GPUs 2 and 5 with a few instances each.
pub fn eight_gpus_mig() -> Fixture {
    let fixture = Fixture::new("eight_gpus_mig", V570);
    let t = fixture.driver();
    let version = V570;
    t.merged_usr(true);
    let libs: Vec<Lib> = COMPUTE.iter().chain([&SANDBOXUTILS]).copied().collect();
    install_libs(&t, "/usr/lib/x86_64-linux-gnu", version, &libs);
    binaries(&t, "/usr/bin", &ALL_BINARIES);
    firmware(&t, "/usr/lib/firmware", version);

    let d = fixture.dev();
    proc_version(&d, version, true);
    let buses = [
        "0000:18:00.0",
        "0000:2a:00.0",
        "0000:3a:00.0",
        "0000:5d:00.0",
        "0000:9a:00.0",
        "0000:ab:00.0",
        "0000:ba:00.0",
        "0000:db:00.0",
    ];
    for (seed, (bus, minor)) in (10..).zip(buses.into_iter().zip(EIGHT_GPU_MINORS)) {
        let card = Card::new(bus, minor, "NVIDIA H100 80GB HBM3", seed);
        gpu(&d, &card, version, "/dev/full");
    }
    control_nodes(&d, true, false);
    mig_enabled(&d);
    for (index, instances) in EIGHT_GPU_MIG {
        let minor = EIGHT_GPU_MINORS[index as usize];
        for (gi, cis) in instances {
            mig_instance(&d, minor, *gi, cis, true);
        }
    }
    d.socket("/run/nvidia-persistenced/socket");
    d.socket("/run/nvidia-fabricmanager/socket");
    fixture
}

/// The libraries [`half_installed`] breaks, and how.
pub const HALF_INSTALLED_BROKEN: [&str; 3] = [
    // Empty: dpkg was interrupted after creating the file.
    "libnvidia-ptxjitcompiler.so.550.163.01",
    // Cut inside the ELF header.
    "libnvidia-nvvm.so.550.163.01",
    // Not ELF at all.
    "libnvidia-opencl.so.550.163.01",
];

/// An interrupted install on Ubuntu: the module is loaded, but three libraries are empty,
/// truncated or garbage, `ld.so.cache` is cut short, `nvidia-uvm` was never loaded, the second
/// GPU has no `/dev/nvidia1`, and GPU 0 has a MIG instance but there is no `/dev/nvidia-caps`.
pub fn half_installed() -> Fixture {
    let fixture = Fixture::new("half_installed", V550);
    let t = fixture.driver();
    let version = V550;
    t.merged_usr(true);
    let multiarch = "/usr/lib/x86_64-linux-gnu";
    install_libs(&t, multiarch, version, &COMPUTE);
    let [empty, cut, garbage] = HALF_INSTALLED_BROKEN;
    t.write(&format!("{multiarch}/{empty}"), b"");
    t.write(
        &format!("{multiarch}/{cut}"),
        &shared_object("libnvidia-nvvm.so.4")[..40],
    );
    t.write(
        &format!("{multiarch}/{garbage}"),
        b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03 not a library",
    );
    binaries(&t, "/usr/bin", &["nvidia-smi"]);
    t.write("/etc/ld.so.cache", b"glibc-ld.so.cache1.1\x2a\0\0");

    let d = fixture.dev();
    proc_version(&d, version, false);
    let first = Card::new("0000:41:00.0", 0, "NVIDIA A100 80GB PCIe", 20);
    let second = Card::new("0000:c1:00.0", 1, "NVIDIA A100 80GB PCIe", 21);
    gpu(&d, &first, version, "/dev/full");
    gpu(&d, &second, version, "/dev/full");
    d.remove("/dev/nvidia1");
    control_nodes(&d, false, false);
    // MIG is on and an instance exists, but nvidia-modprobe never made /dev/nvidia-caps.
    mig_instance(&d, 0, 1, &[0], false);
    fixture
}

/// An empty host: a few standard directories, no driver.
pub fn no_driver() -> Fixture {
    let fixture = Fixture::new("no_driver", V550);
    let t = fixture.driver();
    t.merged_usr(true);
    t.dir("/usr/lib/x86_64-linux-gnu");
    t.dir("/proc/driver");
    t.node("/dev/null", "/dev/null");
    fixture
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gpu::elf::read_soname;
    use crate::gpu::ldcache;

    #[test]
    fn cap_minors_follow_the_driver_numbering() {
        assert_eq!(cap_minor(0, 0, None), 3);
        assert_eq!(cap_minor(0, 0, Some(0)), 4);
        assert_eq!(cap_minor(0, 1, None), 12);
        assert_eq!(cap_minor(0, 1, Some(0)), 13);
        assert_eq!(cap_minor(1, 0, None), 138);
    }

    #[test]
    fn libraries_carry_their_sonames_behind_links() {
        let fixture = debian_like();
        let root = &fixture.roots.driver_root;
        let multiarch = root.join("usr/lib/x86_64-linux-gnu");
        let nvvm = multiarch.join("nvidia/current/libnvidia-nvvm.so.4");
        assert_eq!(
            read_soname(&nvvm).unwrap().as_deref(),
            Some("libnvidia-nvvm.so.4")
        );
        let alternative = fs::read_link(multiarch.join("libcuda.so.1")).unwrap();
        assert_eq!(
            alternative,
            Path::new("/etc/alternatives/nvidia--libcuda.so.1-x86_64-linux-gnu")
        );
        let gpucomp = multiarch.join(format!("nvidia/current/libnvidia-gpucomp.so.{V550}"));
        assert_eq!(
            read_soname(&gpucomp).unwrap(),
            Some(format!("libnvidia-gpucomp.so.{V550}"))
        );
    }

    #[test]
    fn ld_cache_comes_from_the_real_ldconfig() {
        let fixture = fedora_lib64();
        if !fixture.ld_cache {
            return;
        }
        let bytes = fs::read(fixture.roots.driver_root.join("etc/ld.so.cache")).unwrap();
        let cuda: Vec<_> = ldcache::parse(&bytes)
            .unwrap()
            .into_iter()
            .filter(|entry| entry.name == "libcuda.so.1")
            .map(|entry| entry.path)
            .collect();
        // Both the 64-bit and the 32-bit copy, as on a real Fedora host.
        assert!(
            cuda.contains(&PathBuf::from("/usr/lib64/libcuda.so.1")),
            "{cuda:?}"
        );
        // ldconfig names the 32-bit one through the merged-/usr link: /lib or /usr/lib.
        assert!(
            cuda.iter()
                .any(|path| path == Path::new("/usr/lib/libcuda.so.1")
                    || path == Path::new("/lib/libcuda.so.1")),
            "{cuda:?}"
        );
    }

    #[test]
    fn device_nodes_are_character_devices() {
        let fixture = eight_gpus_mig();
        let nodes = fixture.roots.device_nodes();
        let names: Vec<String> = nodes.iter().map(|n| n.path.display().to_string()).collect();
        assert!(names.contains(&"/dev/nvidia7".to_owned()), "{names:?}");
        assert!(names.contains(&"/dev/nvidiactl".to_owned()), "{names:?}");
        assert_eq!(
            fixture.roots.driver_version().as_deref(),
            Some(V570),
            "proc version line"
        );
    }
}
