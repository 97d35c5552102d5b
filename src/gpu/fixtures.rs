//! Synthetic NVIDIA driver roots for unit tests, shaped like real hosts.
//!
//! Each builder makes, in a temp dir, the files discovery reads on a real machine: the
//! driver's `/proc` files in the driver's own format, `/sys/bus/pci/devices/<bus>/drm`, the
//! `/dev` nodes, and the driver's files exactly where a real installation puts them: the
//! manifests in `cdi/roots/` list them from real packages (Debian's `.deb`s, Canonical's and
//! RPM Fusion's packaging), none is placed by hand here. Libraries become tiny ELF files with
//! the SONAMEs the manifests record, programs small scripts, config files keep their real
//! text; some roots get an `etc/ld.so.cache` written by the host's real `ldconfig -r`.
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
use super::elf::test_support::{EM_386, EM_X86_64, build, shared_object, without_soname};

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
    /// The driver version the tree is built for (its manifest's).
    pub version: String,
    /// The group of the DRM render node, when this root asked for one and the host could give
    /// it (a host device of a non-root group, or `mknod` as root).
    pub render_gid: Option<u32>,
    /// Whether `etc/ld.so.cache` in the driver root was written by the host's `ldconfig`.
    pub ld_cache: bool,
}

impl Fixture {
    fn new(name: &'static str, version: &str) -> Self {
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
            version: version.to_owned(),
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
// Driver files from the manifests in cdi/roots/

/// What one manifest entry is (see `cdi/roots/lib.sh` for the format).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    /// A shared object: 64-bit or not, with its SONAME (X and GBM modules have none).
    Elf {
        wide: bool,
        soname: Option<String>,
    },
    Exec,
    /// A small config file and its real content.
    Text(Vec<u8>),
    Data,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Entry {
    File { path: String, mode: u32, kind: Kind },
    Link { path: String, target: String },
}

/// One driver installation's files, as its packages put them on disk.
#[derive(Debug, Clone)]
pub struct Manifest {
    pub version: String,
    entries: Vec<Entry>,
}

impl Manifest {
    /// `cdi/roots/<name>.files`.
    ///
    /// # Panics
    ///
    /// When the file is missing or does not parse.
    pub fn load(name: &str) -> Self {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("cdi/roots")
            .join(format!("{name}.files"));
        let text = fs::read_to_string(&path).unwrap();
        Self::parse(&text).unwrap_or_else(|err| panic!("{}: {err}", path.display()))
    }

    fn parse(text: &str) -> Result<Self, String> {
        let mut version = None;
        let mut entries = Vec::new();
        for (number, line) in (1..).zip(text.lines()) {
            let fields: Vec<&str> = line.split(' ').collect();
            let bad = || format!("line {number}: cannot read {line:?}");
            match fields.as_slice() {
                [] | ["#" | "source" | "package", ..] => {}
                ["version", v] => version = Some((*v).to_owned()),
                ["link", path, target] => entries.push(Entry::Link {
                    path: (*path).to_owned(),
                    target: (*target).to_owned(),
                }),
                ["file", path, mode, kind] => entries.push(Entry::File {
                    path: (*path).to_owned(),
                    mode: u32::from_str_radix(mode, 8).map_err(|_| bad())?,
                    kind: parse_kind(kind).ok_or_else(bad)?,
                }),
                _ if line.starts_with('#') => {}
                _ => return Err(bad()),
            }
        }
        Ok(Self {
            version: version.ok_or("no version line")?,
            entries,
        })
    }

    /// The paths of the 64-bit shared objects that have a SONAME: the libraries a program of
    /// podlab's architecture can load.
    pub fn libraries(&self) -> Vec<&str> {
        self.entries
            .iter()
            .filter_map(|entry| match entry {
                Entry::File {
                    path,
                    kind:
                        Kind::Elf {
                            wide: true,
                            soname: Some(_),
                        },
                    ..
                } => Some(path.as_str()),
                _ => None,
            })
            .collect()
    }

    /// Writes every file and link into `tree`.
    fn install(&self, tree: &Tree) {
        self.install_as(tree, |wide, soname| {
            build(soname, wide, false, if wide { EM_X86_64 } else { EM_386 })
        });
    }

    fn install_as(&self, tree: &Tree, elf: impl Fn(bool, &str) -> Vec<u8>) {
        for entry in &self.entries {
            match entry {
                Entry::File { path, mode, kind } => {
                    let bytes = match kind {
                        Kind::Elf { wide, soname } => match soname {
                            Some(soname) => elf(*wide, soname),
                            None => without_soname(*wide),
                        },
                        Kind::Exec => {
                            let name = path.rsplit('/').next().unwrap_or_default();
                            format!("#!/bin/sh\necho 'fake {name}'\n").into_bytes()
                        }
                        Kind::Text(text) => text.clone(),
                        Kind::Data => Vec::new(),
                    };
                    tree.write(path, bytes);
                    fs::set_permissions(tree.at(path), fs::Permissions::from_mode(*mode)).unwrap();
                }
                Entry::Link { path, target } => tree.link(path, target),
            }
        }
    }
}

fn parse_kind(text: &str) -> Option<Kind> {
    let (head, rest) = text
        .split_once(':')
        .map_or((text, None), |(h, r)| (h, Some(r)));
    Some(match head {
        "elf64" | "elf32" => Kind::Elf {
            wide: head == "elf64",
            soname: rest.map(str::to_owned),
        },
        "exec" => Kind::Exec,
        "text" => Kind::Text(base64_decode(rest?)?),
        "data" => Kind::Data,
        _ => return None,
    })
}

/// Standard base64 (with `=` padding), as `base64 -w0` writes it.
fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let value = |c: u8| -> Option<u32> {
        Some(
            match c {
                b'A'..=b'Z' => c - b'A',
                b'a'..=b'z' => c - b'a' + 26,
                b'0'..=b'9' => c - b'0' + 52,
                b'+' => 62,
                b'/' => 63,
                _ => return None,
            }
            .into(),
        )
    };
    let bytes = text.trim_end_matches('=').as_bytes();
    let mut out = Vec::with_capacity(bytes.len() * 3 / 4);
    for chunk in bytes.chunks(4) {
        let mut acc = 0u32;
        for slot in 0..4 {
            acc = acc << 6 | chunk.get(slot).map_or(Some(0), |&c| value(c))?;
        }
        let [_, a, b, c] = acc.to_be_bytes();
        out.extend_from_slice(&[a, b, c][..chunk.len() - 1]);
    }
    Some(out)
}

fn ld_so_conf(tree: &Tree, extra: &[(&str, &str)]) {
    tree.write("/etc/ld.so.conf", "include /etc/ld.so.conf.d/*.conf\n\n");
    for (name, text) in extra {
        tree.write(&format!("/etc/ld.so.conf.d/{name}"), text);
    }
}

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

const MULTIARCH_CONF: (&str, &str) = (
    "x86_64-linux-gnu.conf",
    "# Multiarch support\n/usr/local/lib/x86_64-linux-gnu\n/lib/x86_64-linux-gnu\n/usr/lib/x86_64-linux-gnu\n",
);

/// Debian 13 with `nvidia-driver` 550 from non-free (`cdi/roots/debian-trixie.files`): the
/// public libraries in `/usr/lib/x86_64-linux-gnu/nvidia/current`, reached from the multiarch
/// directory through absolute `/etc/alternatives` links, the internal ones (`libnvidia-gpucomp`,
/// `-glcore`, ...) in the multiarch directory itself, `nvidia-smi` in `/usr/lib/nvidia/current`;
/// two GPUs with DRM nodes; no `ld.so.cache`.
pub fn debian_like() -> Fixture {
    let manifest = Manifest::load("debian-trixie");
    let fixture = Fixture::new("debian_like", &manifest.version);
    let t = fixture.driver();
    t.merged_usr(true);
    manifest.install(&t);

    let d = fixture.dev();
    proc_version(&d, &fixture.version, false);
    for card in [
        Card::new("0000:01:00.0", 0, "NVIDIA GeForce RTX 4090", 1).drm(0, 128),
        Card::new("0000:21:00.0", 1, "NVIDIA RTX A4000", 2).drm(1, 129),
    ] {
        gpu(&d, &card, &fixture.version, "/dev/full");
    }
    control_nodes(&d, true, true);
    d.socket("/run/nvidia-persistenced/socket");
    fixture
}

/// Ubuntu 24.04 with `nvidia-driver-570` (`cdi/roots/ubuntu-noble.files`; NVIDIA's CUDA repo
/// and the `.run` installer put the same files in the same places): everything flat in the
/// multiarch directory, `vdpau/`, `gbm/`, EGL platform libraries, an `ld.so.cache`; one GPU
/// whose render node belongs to a non-root group (exercises `additionalGids`).
pub fn ubuntu_flat() -> Fixture {
    let manifest = Manifest::load("ubuntu-noble");
    let mut fixture = Fixture::new("ubuntu_flat", &manifest.version);
    let t = fixture.driver();
    t.merged_usr(true);
    manifest.install(&t);
    ld_so_conf(&t, &[MULTIARCH_CONF]);
    fixture.ld_cache = t.ldconfig();

    let d = fixture.dev();
    proc_version(&d, &fixture.version, true);
    let card = Card::new("0000:01:00.0", 0, "NVIDIA GeForce RTX 4090", 3).drm(1, 128);
    gpu(&d, &card, &fixture.version, "/dev/full");
    d.remove("/dev/dri/renderD128");
    fixture.render_gid = render_node_with_group(&d, "/dev/dri/renderD128");
    control_nodes(&d, true, true);
    d.socket("/run/nvidia-persistenced/socket");
    fixture
}

/// Fedora with RPM Fusion's `xorg-x11-drv-nvidia` (`cdi/roots/fedora-rpmfusion.files`):
/// 64-bit libraries in `/usr/lib64`, the `.i686` multilib copies (32-bit ELF, same names and
/// SONAMEs) in `/usr/lib`, which must not be picked; an `ld.so.cache` that lists both.
pub fn fedora_lib64() -> Fixture {
    let manifest = Manifest::load("fedora-rpmfusion");
    let mut fixture = Fixture::new("fedora_lib64", &manifest.version);
    let t = fixture.driver();
    t.merged_usr(true);
    manifest.install(&t);
    // Fedora's ldconfig searches /usr/lib64 and /usr/lib by itself; the host's (Debian's) one,
    // which builds this cache, must be told about both.
    ld_so_conf(&t, &[("lib64.conf", "/usr/lib64\n/usr/lib\n")]);
    fixture.ld_cache = t.ldconfig();

    let d = fixture.dev();
    proc_version(&d, &fixture.version, true);
    let card = Card::new("0000:65:00.0", 0, "NVIDIA RTX A6000", 4).drm(0, 128);
    gpu(&d, &card, &fixture.version, "/dev/full");
    control_nodes(&d, true, true);
    fixture
}

/// A host whose driver is installed under `/usr/local/nvidia` (GKE's and some clusters'
/// driver installers; `cdi/roots/usr-local-nvidia.files`): `lib64/` and `bin/`, nothing in the
/// system directories, no firmware; a headless T4.
pub fn usr_local_nvidia() -> Fixture {
    let manifest = Manifest::load("usr-local-nvidia");
    let fixture = Fixture::new("usr_local_nvidia", &manifest.version);
    manifest.install(&fixture.driver());

    let d = fixture.dev();
    proc_version(&d, &fixture.version, false);
    gpu(
        &d,
        &Card::new("0000:00:04.0", 0, "Tesla T4", 5),
        &fixture.version,
        "/dev/full",
    );
    control_nodes(&d, true, false);
    fixture
}

/// The GPU operator's layout: the driver container's root at `<dir>/driver` (the host's
/// `/run/nvidia/driver`: Ubuntu's packages, an `ld.so.cache`) and the host's `/dev`, `/proc`,
/// `/sys` and `/run` at `<dir>/host`.
pub fn split_roots() -> Fixture {
    let manifest = Manifest::load("ubuntu-noble");
    let mut fixture = Fixture::new("split_roots", &manifest.version);
    fixture.roots = DriverRoots {
        driver_root: fixture.dir.path().join("driver"),
        dev_root: fixture.dir.path().join("host"),
    };
    let t = fixture.driver();
    t.merged_usr(true);
    manifest.install(&t);
    ld_so_conf(&t, &[MULTIARCH_CONF]);
    fixture.ld_cache = t.ldconfig();

    let d = fixture.dev();
    proc_version(&d, &fixture.version, true);
    for card in [
        Card::new("0000:07:00.0", 0, "NVIDIA A100-SXM4-80GB", 6),
        Card::new("0000:0f:00.0", 1, "NVIDIA A100-SXM4-80GB", 7),
    ] {
        gpu(&d, &card, &fixture.version, "/dev/full");
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

/// An HGX H100 server (Ubuntu's packages, open kernel module, fabric manager): 8 GPUs, minors
/// in probe order, MIG enabled on GPUs 2 and 5 with a few instances each.
pub fn eight_gpus_mig() -> Fixture {
    let manifest = Manifest::load("ubuntu-noble");
    let fixture = Fixture::new("eight_gpus_mig", &manifest.version);
    let t = fixture.driver();
    t.merged_usr(true);
    manifest.install(&t);

    let d = fixture.dev();
    proc_version(&d, &fixture.version, true);
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
        gpu(&d, &card, &fixture.version, "/dev/full");
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

/// The libraries [`half_installed`] breaks (by stem; the files are `<stem>.so.<version>`), and
/// how.
pub const HALF_INSTALLED_BROKEN: [&str; 3] = [
    // Empty: dpkg was interrupted after creating the file.
    "libnvidia-ptxjitcompiler",
    // Cut inside the ELF header.
    "libnvidia-nvvm",
    // Not ELF at all.
    "libnvidia-opencl",
];

/// An interrupted install of Ubuntu's packages: the module is loaded, but three libraries are
/// empty, truncated or garbage, `ld.so.cache` is cut short, `nvidia-uvm` was never loaded, the
/// second GPU has no `/dev/nvidia1`, and GPU 0 has a MIG instance but there is no
/// `/dev/nvidia-caps`.
pub fn half_installed() -> Fixture {
    let manifest = Manifest::load("ubuntu-noble");
    let fixture = Fixture::new("half_installed", &manifest.version);
    let version = fixture.version.clone();
    let t = fixture.driver();
    t.merged_usr(true);
    manifest.install(&t);
    let multiarch = "/usr/lib/x86_64-linux-gnu";
    let [empty, cut, garbage] =
        HALF_INSTALLED_BROKEN.map(|stem| format!("{multiarch}/{stem}.so.{version}"));
    t.write(&empty, b"");
    t.write(&cut, &shared_object("libnvidia-nvvm.so.4")[..40]);
    t.write(
        &garbage,
        b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03 not a library",
    );
    t.write("/etc/ld.so.cache", b"glibc-ld.so.cache1.1\x2a\0\0");

    let d = fixture.dev();
    proc_version(&d, &version, false);
    let first = Card::new("0000:41:00.0", 0, "NVIDIA A100 80GB PCIe", 20);
    let second = Card::new("0000:c1:00.0", 1, "NVIDIA A100 80GB PCIe", 21);
    gpu(&d, &first, &version, "/dev/full");
    gpu(&d, &second, &version, "/dev/full");
    d.remove("/dev/nvidia1");
    control_nodes(&d, false, false);
    // MIG is on and an instance exists, but nvidia-modprobe never made /dev/nvidia-caps.
    mig_instance(&d, 0, 1, &[0], false);
    fixture
}

/// An empty host: a few standard directories, no driver.
pub fn no_driver() -> Fixture {
    let fixture = Fixture::new("no_driver", "0.0");
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
        // Debian installs the internal libraries beside the multiarch ones, not in nvidia/current.
        let version = &fixture.version;
        let gpucomp = multiarch.join(format!("libnvidia-gpucomp.so.{version}"));
        assert_eq!(
            read_soname(&gpucomp).unwrap(),
            Some(format!("libnvidia-gpucomp.so.{version}"))
        );
        assert!(
            !multiarch
                .join(format!("nvidia/current/libnvidia-gpucomp.so.{version}"))
                .exists()
        );
    }

    #[test]
    fn manifests_give_real_config_text_and_elf_classes() {
        let fixture = debian_like();
        let root = &fixture.roots.driver_root;
        let icd = fs::read_to_string(root.join("etc/OpenCL/vendors/nvidia.icd")).unwrap();
        assert_eq!(icd, "libnvidia-opencl.so.1\n");
        let egl =
            fs::read_to_string(root.join("usr/share/glvnd/egl_vendor.d/10_nvidia.json")).unwrap();
        assert!(
            egl.contains("\"library_path\" : \"libEGL_nvidia.so.0\""),
            "{egl}"
        );
        let smi = root.join("usr/lib/nvidia/current/nvidia-smi");
        assert_eq!(
            fs::metadata(&smi).unwrap().permissions().mode() & 0o777,
            0o755
        );
        // Fedora's i686 copies are 32-bit ELF with the same SONAME.
        let fedora = fedora_lib64();
        let i686 = fedora
            .roots
            .driver_root
            .join(format!("usr/lib/libcuda.so.{}", fedora.version));
        let inspected = crate::gpu::elf::inspect(&i686);
        assert_eq!(inspected.soname.unwrap().as_deref(), Some("libcuda.so.1"));
        assert!(!inspected.target.unwrap().is_native());
        assert_eq!(base64_decode("aGk="), Some(b"hi".to_vec()));
        assert_eq!(base64_decode("aGkh"), Some(b"hi!".to_vec()));
        let good = "version 1.0\nfile /x 0644 elf64:libx.so.1\nlink /y x\n";
        assert_eq!(Manifest::parse(good).unwrap().libraries(), ["/x"]);
        assert!(Manifest::parse("version 1.0\nfile /x 0644 elf99:libx.so.1\n").is_err());
        assert!(Manifest::parse("version 1.0\nlink /x\n").is_err());
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
            Some(fixture.version.as_str()),
            "proc version line"
        );
    }
}
