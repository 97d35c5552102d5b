//! `podlab doctor`: is this host ready for rootless GPU containers?
//!
//! Split in two so the verdicts are testable: [`gather`] reads the host (files under a root
//! directory, the PATH, the Podman socket) into plain [`Facts`], and [`checks`] turns facts into
//! verdicts without touching anything. Only `Fail` verdicts make the run fail; a host without
//! a GPU gets warnings, not failures.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::Error;
use crate::capabilities::{Capabilities, Feature, PodmanVersion};
use crate::cdi::freshness::{self, SpecStatus, State};
use crate::engine::{self, ConnectOptions, Connection, Engine, HostSummary, ServerVersion};
use crate::gpu::{DeviceNode, DriverRoots};

/// One verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pass,
    Warn,
    Fail,
}

impl Status {
    pub fn symbol(self) -> &'static str {
        match self {
            Self::Pass => "✔",
            Self::Warn => "⚠",
            Self::Fail => "✘",
        }
    }
}

/// One line of the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    pub name: &'static str,
    pub status: Status,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

impl Check {
    fn pass(name: &'static str, message: impl Into<String>) -> Self {
        Self {
            name,
            status: Status::Pass,
            message: message.into(),
            hint: None,
        }
    }
    fn warn(name: &'static str, message: impl Into<String>, hint: impl Into<String>) -> Self {
        Self {
            name,
            status: Status::Warn,
            message: message.into(),
            hint: Some(hint.into()),
        }
    }
    fn fail(name: &'static str, message: impl Into<String>, hint: impl Into<String>) -> Self {
        Self {
            name,
            status: Status::Fail,
            message: message.into(),
            hint: Some(hint.into()),
        }
    }
}

/// The cgroup layout of the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CgroupMode {
    V1,
    /// v1 controllers plus a v2 hierarchy at `/sys/fs/cgroup/unified`; crun refuses it.
    Hybrid,
    V2,
}

/// SELinux state, from `/sys/fs/selinux/enforce`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SelinuxMode {
    Disabled,
    Permissive,
    Enforcing,
}

/// A subordinate id range from `/etc/subuid` or `/etc/subgid`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct IdRange {
    pub start: u64,
    pub count: u64,
}

/// The socket, reached or not.
#[derive(Debug, Clone)]
pub enum SocketFact {
    Reached {
        connection: Connection,
        server: ServerVersion,
        host: Option<HostSummary>,
    },
    Failed(Error),
}

/// Everything doctor needs to know, read from the host once.
#[derive(Debug, Clone)]
pub struct Facts {
    pub uid: u32,
    pub user_name: Option<String>,
    /// `podman` on PATH and what `podman --version` says.
    pub podman: Option<(PathBuf, Option<PodmanVersion>)>,
    pub subuid: Option<IdRange>,
    pub subgid: Option<IdRange>,
    pub newuidmap: Option<PathBuf>,
    pub newgidmap: Option<PathBuf>,
    pub runtime_dir: Option<PathBuf>,
    /// Owner uid of `runtime_dir`, when it exists.
    pub runtime_dir_owner: Option<u32>,
    /// Permission bits of `runtime_dir`, when it exists.
    pub runtime_dir_mode: Option<u32>,
    pub socket: SocketFact,
    pub cgroup: CgroupMode,
    pub driver_version: Option<String>,
    pub device_nodes: Vec<DeviceNode>,
    pub selinux: SelinuxMode,
    pub quadlet_generator: Option<PathBuf>,
    /// The CDI specs podlab installed, with their freshness.
    pub cdi_specs: Vec<SpecStatus>,
    pub systemd_running: bool,
    pub linger: bool,
    /// The init `--init` runs as PID 1 in podlab's sessions and units (see [`find_init`]).
    pub init: InitFact,
}

/// The init Podman would run for `--init`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitFact {
    /// `init_path` from containers.conf, when one of them sets it.
    pub configured: Option<PathBuf>,
    /// The executable found: the configured one, else catatonit.
    pub found: Option<PathBuf>,
}

/// Where Podman looks for catatonit when containers.conf names no `init_path` (its helper
/// directories: Debian and Fedora, then Arch), before `PATH`.
const CATATONIT_DIRS: [&str; 2] = ["/usr/libexec/podman", "/usr/lib/podman"];

/// The containers.conf files Podman reads, lowest precedence first: the system's (under
/// `root`), then the user's.
fn containers_confs(root: &HostRoot) -> Vec<PathBuf> {
    let mut files = vec![
        root.path("/usr/share/containers/containers.conf"),
        root.path("/etc/containers/containers.conf"),
    ];
    if let Ok(entries) = fs::read_dir(root.path("/etc/containers/containers.conf.d")) {
        let mut drop_ins: Vec<PathBuf> = entries
            .filter_map(|entry| entry.ok().map(|entry| entry.path()))
            .filter(|path| path.extension().is_some_and(|ext| ext == "conf"))
            .collect();
        drop_ins.sort();
        files.extend(drop_ins);
    }
    files.extend(crate::cdi::store::containers_conf().ok());
    files
}

/// The init for `--init`: the last `init_path` the `confs` set (in `[engine]`), else
/// catatonit in Podman's helper directories under `root`, else on `path` (`$PATH`).
pub fn find_init(root: &HostRoot, confs: &[PathBuf], path: Option<&std::ffi::OsStr>) -> InitFact {
    let configured = confs
        .iter()
        .rev()
        .filter_map(|file| fs::read_to_string(file).ok())
        .filter_map(|text| text.parse::<toml_edit::DocumentMut>().ok())
        .find_map(|doc| {
            doc.get("engine")
                .and_then(|engine| engine.get("init_path"))
                .and_then(|value| value.as_str())
                .filter(|value| !value.is_empty())
                .map(PathBuf::from)
        });
    let executable = |path: &Path| {
        fs::metadata(path).is_ok_and(|meta| meta.is_file() && meta.mode() & 0o111 != 0)
    };
    let found = match &configured {
        Some(init) => Some(root.path(&init.to_string_lossy())).filter(|path| executable(path)),
        None => CATATONIT_DIRS
            .iter()
            .map(|dir| root.path(&format!("{dir}/catatonit")))
            .find(|path| executable(path))
            .or_else(|| {
                let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
                which::which_in("catatonit", path, cwd).ok()
            }),
    };
    InitFact { configured, found }
}

/// Where [`gather`] reads host files; `/` except in tests.
#[derive(Debug, Clone)]
pub struct HostRoot(pub PathBuf);

impl HostRoot {
    fn path(&self, absolute: &str) -> PathBuf {
        self.0.join(absolute.trim_start_matches('/'))
    }
}

/// Reads the host.
pub async fn gather(root: &HostRoot, connect: &ConnectOptions) -> Facts {
    let uid = rustix::process::geteuid().as_raw();
    let user_name = std::env::var("USER")
        .ok()
        .filter(|name| !name.is_empty())
        .or_else(|| {
            user_name_for(
                &fs::read_to_string(root.path("/etc/passwd")).unwrap_or_default(),
                uid,
            )
        });
    let podman = crate::engine::local_version::podman_on_path();
    let id_range = |file: &str| {
        let text = fs::read_to_string(root.path(file)).unwrap_or_default();
        find_id_range(&text, user_name.as_deref(), uid)
    };
    let runtime_dir = std::env::var_os("XDG_RUNTIME_DIR")
        .filter(|dir| !dir.is_empty())
        .map(PathBuf::from);
    let runtime_dir_meta = runtime_dir.as_ref().and_then(|dir| fs::metadata(dir).ok());
    let runtime_dir_owner = runtime_dir_meta.as_ref().map(MetadataExt::uid);
    let runtime_dir_mode = runtime_dir_meta.as_ref().map(|meta| meta.mode() & 0o7777);
    let socket = match engine::connect(connect).await {
        Ok(connected) => SocketFact::Reached {
            host: connected.engine.host_summary().await.ok(),
            connection: connected.connection,
            server: connected.server,
        },
        Err(err) => SocketFact::Failed(err),
    };
    let driver = DriverRoots {
        driver_root: root.0.clone(),
        dev_root: root.0.clone(),
    };
    Facts {
        uid,
        podman,
        subuid: id_range("/etc/subuid"),
        subgid: id_range("/etc/subgid"),
        user_name: user_name.clone(),
        newuidmap: which::which("newuidmap").ok(),
        newgidmap: which::which("newgidmap").ok(),
        runtime_dir,
        runtime_dir_owner,
        runtime_dir_mode,
        socket,
        cgroup: cgroup_mode(root),
        driver_version: driver.driver_version(),
        device_nodes: driver.device_nodes(),
        selinux: selinux_mode(root),
        cdi_specs: freshness::check_all(&freshness::install_dirs()),
        quadlet_generator: crate::ops::units::QUADLET_GENERATORS
            .into_iter()
            .map(|path| root.path(path))
            .find(|path| path.exists()),
        systemd_running: root.path("/run/systemd/system").is_dir(),
        linger: user_name
            .as_ref()
            .is_some_and(|name| root.path("/var/lib/systemd/linger").join(name).exists()),
        init: find_init(
            root,
            &containers_confs(root),
            std::env::var_os("PATH").as_deref(),
        ),
    }
}

fn user_name_for(passwd: &str, uid: u32) -> Option<String> {
    passwd.lines().find_map(|line| {
        let mut fields = line.split(':');
        let name = fields.next()?;
        let line_uid: u32 = fields.nth(1)?.parse().ok()?;
        (line_uid == uid).then(|| name.to_owned())
    })
}

/// Finds the user's range in a subuid/subgid file (`name:start:count` or `uid:start:count`).
pub fn find_id_range(text: &str, user_name: Option<&str>, uid: u32) -> Option<IdRange> {
    let uid_text = uid.to_string();
    text.lines().find_map(|line| {
        let mut fields = line.trim().split(':');
        let owner = fields.next()?;
        if Some(owner) != user_name && owner != uid_text {
            return None;
        }
        let start = fields.next()?.parse().ok()?;
        let count = fields.next()?.parse().ok()?;
        (count > 0).then_some(IdRange { start, count })
    })
}

fn cgroup_mode(root: &HostRoot) -> CgroupMode {
    if root.path("/sys/fs/cgroup/cgroup.controllers").exists() {
        CgroupMode::V2
    } else if root.path("/sys/fs/cgroup/unified").is_dir() {
        CgroupMode::Hybrid
    } else {
        CgroupMode::V1
    }
}

fn selinux_mode(root: &HostRoot) -> SelinuxMode {
    match fs::read_to_string(root.path("/sys/fs/selinux/enforce"))
        .map(|text| text.trim().to_owned())
    {
        Ok(mode) if mode == "1" => SelinuxMode::Enforcing,
        Ok(_) => SelinuxMode::Permissive,
        Err(_) => SelinuxMode::Disabled,
    }
}

/// The verdicts, in report order.
pub fn checks(facts: &Facts) -> Vec<Check> {
    let user = facts
        .user_name
        .clone()
        .unwrap_or_else(|| facts.uid.to_string());
    let is_root = facts.uid == 0;
    let mut out = vec![podman_binary(facts), not_root(is_root)];
    for (name, range, file) in [
        ("subuid", facts.subuid, "/etc/subuid"),
        ("subgid", facts.subgid, "/etc/subgid"),
    ] {
        out.push(match range {
            _ if is_root => Check::pass(name, "not needed when running as root"),
            Some(range) => Check::pass(
                name,
                format!("{} ids from {} for {user}", range.count, range.start),
            ),
            None => Check::fail(
                name,
                format!(
                    "no range for {user} in {file}: rootless podman cannot map container users"
                ),
                format!(
                    "sudo usermod --add-subuids 100000-165535 --add-subgids 100000-165535 {user}"
                ),
            ),
        });
    }
    for (name, found) in [
        ("newuidmap", &facts.newuidmap),
        ("newgidmap", &facts.newgidmap),
    ] {
        out.push(match found {
            Some(path) => Check::pass(name, path.display().to_string()),
            None if is_root => Check::pass(name, "not needed when running as root"),
            None => Check::fail(
                name,
                format!("{name} is not installed"),
                "sudo apt-get install uidmap (Fedora: sudo dnf install shadow-utils)",
            ),
        });
    }
    out.push(runtime_dir(facts));
    out.push(socket(facts));
    out.push(cgroup_and_runtime(facts));
    out.push(init(&facts.init));
    out.extend(gpu(facts));
    out.push(match facts.selinux {
        SelinuxMode::Enforcing => Check::warn(
            "selinux",
            "enforcing: GPU containers need label=disable (podlab sets it)",
            "nothing to do for podlab sessions; for plain podman run add --security-opt label=disable",
        ),
        mode => Check::pass("selinux", format!("{mode:?}").to_lowercase()),
    });
    out.extend(cdi_specs(facts));
    out.push(quadlet(facts));
    out.push(linger(facts, &user));
    out
}

fn podman_binary(facts: &Facts) -> Check {
    match &facts.podman {
        None => Check::fail(
            "podman",
            "podman is not installed or not on PATH",
            "sudo apt-get install podman (Debian 12: from the trixie suite, for podman 5)",
        ),
        Some((path, None)) => Check::warn(
            "podman",
            format!("{}: cannot read its version", path.display()),
            "run podman --version to see what is wrong",
        ),
        Some((path, Some(version)))
            if !Capabilities::for_version(*version).has(Feature::Quadlet) =>
        {
            Check::warn(
                "podman",
                format!(
                    "{version} at {}: older than 4.4, no quadlet units",
                    path.display()
                ),
                "upgrade podman to 5.x (Debian 12: apt-get install -t trixie podman)",
            )
        }
        Some((path, Some(version))) => {
            Check::pass("podman", format!("{version} at {}", path.display()))
        }
    }
}

fn not_root(is_root: bool) -> Check {
    if is_root {
        Check::warn(
            "user",
            "running as root: podlab is built for rootless podman",
            "run podlab as your normal user",
        )
    } else {
        Check::pass("user", "not root")
    }
}

fn runtime_dir(facts: &Facts) -> Check {
    let name = "XDG_RUNTIME_DIR";
    let fix = format!(
        "sudo install -d -m 700 -o {0} /run/user/{0} && export XDG_RUNTIME_DIR=/run/user/{0}",
        facts.uid
    );
    match (&facts.runtime_dir, facts.runtime_dir_owner) {
        (None, _) => Check::fail(name, "XDG_RUNTIME_DIR is not set", fix),
        (Some(dir), None) => Check::fail(name, format!("{} does not exist", dir.display()), fix),
        (Some(dir), Some(owner)) if owner != facts.uid => Check::fail(
            name,
            format!(
                "{} belongs to uid {owner}, not {}",
                dir.display(),
                facts.uid
            ),
            fix,
        ),
        // Podman's rule, as podlab applies it before using a socket there
        // (`engine::socket::vet_runtime_dir`): writable by its owner only.
        (Some(dir), Some(_)) => match facts.runtime_dir_mode {
            Some(mode) if mode & 0o722 != 0o700 => Check::fail(
                name,
                format!(
                    "{} has mode {mode:o}: others can write into it, so podlab uses no socket there",
                    dir.display()
                ),
                format!("chmod 700 {}", dir.display()),
            ),
            _ => Check::pass(name, dir.display().to_string()),
        },
    }
}

fn socket(facts: &Facts) -> Check {
    match &facts.socket {
        SocketFact::Reached {
            connection, server, ..
        } => {
            let how = match connection.started_pid {
                Some(pid) => format!(", auto-started by podlab (pid {pid})"),
                None => format!(", {}", connection.origin.describe()),
            };
            Check::pass(
                "socket",
                format!(
                    "{} (podman {}, API {}{how})",
                    connection.socket.display(),
                    server.podman,
                    server.api
                ),
            )
        }
        SocketFact::Failed(err) => Check::fail(
            "socket",
            err.message().to_owned(),
            err.hint_text()
                .unwrap_or("podman system service --time=0 &")
                .to_owned(),
        ),
    }
}

fn cgroup_and_runtime(facts: &Facts) -> Check {
    let name = "cgroups";
    let mode = match facts.cgroup {
        CgroupMode::V1 => "v1",
        CgroupMode::Hybrid => "v1 (hybrid)",
        CgroupMode::V2 => "v2",
    };
    let SocketFact::Reached {
        host: Some(host), ..
    } = &facts.socket
    else {
        return Check::warn(
            name,
            format!("cgroup {mode}; OCI runtime unknown (no socket)"),
            "fix the socket check first",
        );
    };
    let runtime = if host.oci_runtime.is_empty() {
        "unknown"
    } else {
        host.oci_runtime.as_str()
    };
    if facts.cgroup == CgroupMode::Hybrid && runtime == "crun" {
        return Check::fail(
            name,
            format!("cgroup {mode} with OCI runtime crun: crun refuses hybrid cgroups"),
            "set runtime = \"runc\" under [engine] in ~/.config/containers/containers.conf (and install runc)",
        );
    }
    Check::pass(
        name,
        format!(
            "cgroup {mode}, manager {}, OCI runtime {runtime}",
            host.cgroup_manager
        ),
    )
}

fn gpu(facts: &Facts) -> Vec<Check> {
    let driver_loaded = facts.driver_version.is_some();
    let driver = match &facts.driver_version {
        Some(version) => Check::pass("nvidia driver", format!("{version} loaded")),
        None => Check::warn(
            "nvidia driver",
            "no NVIDIA driver loaded (/proc/driver/nvidia/version): GPU sessions are unavailable, CPU sessions work",
            "on a GPU host, install the NVIDIA driver and reboot or modprobe nvidia",
        ),
    };
    let problem = |name, message: String, hint: &str| {
        if driver_loaded {
            Check::fail(name, message, hint)
        } else {
            Check::warn(name, message, hint)
        }
    };
    let gpus: Vec<&DeviceNode> = facts
        .device_nodes
        .iter()
        .filter(|node| {
            node.path
                .to_string_lossy()
                .trim_start_matches("/dev/nvidia")
                .parse::<u32>()
                .is_ok()
        })
        .collect();
    let not_rw: Vec<String> = facts
        .device_nodes
        .iter()
        .filter(|node| !node.read_write)
        .map(|node| node.path.display().to_string())
        .collect();
    let nodes = if facts.device_nodes.is_empty() {
        problem(
            "nvidia devices",
            "no /dev/nvidia* device nodes".to_owned(),
            "load the driver: sudo nvidia-modprobe -c=0 (or sudo modprobe nvidia)",
        )
    } else if !not_rw.is_empty() {
        problem(
            "nvidia devices",
            format!("not read-write for you: {}", not_rw.join(", ")),
            "sudo chmod 666 /dev/nvidia* (or set NVreg_DeviceFileMode=0666 for the nvidia module)",
        )
    } else {
        let names: Vec<String> = facts
            .device_nodes
            .iter()
            .map(|node| node.path.display().to_string())
            .collect();
        Check::pass(
            "nvidia devices",
            format!(
                "{} GPU node(s), read-write: {}",
                gpus.len(),
                names.join(" ")
            ),
        )
    };
    let uvm = if facts
        .device_nodes
        .iter()
        .any(|node| node.path == Path::new("/dev/nvidia-uvm"))
    {
        Check::pass("nvidia-uvm", "/dev/nvidia-uvm present")
    } else {
        problem(
            "nvidia-uvm",
            "/dev/nvidia-uvm is missing: CUDA cannot allocate memory".to_owned(),
            "sudo nvidia-modprobe -u -c=0",
        )
    };
    vec![driver, nodes, uvm]
}

fn cdi_specs(facts: &Facts) -> Vec<Check> {
    let name = "cdi spec";
    if facts.cdi_specs.is_empty() {
        return vec![Check::pass(
            name,
            "none installed by podlab: podlab sessions pass the GPU edits inline",
        )];
    }
    facts
        .cdi_specs
        .iter()
        .map(|spec| {
            let path = spec.path.display();
            match &spec.state {
                State::Fresh => Check::pass(
                    name,
                    format!("{path}: fresh (driver {})", spec.driver_version),
                ),
                State::Edited => Check::warn(
                    name,
                    format!("{path}: edited by hand, so podlab cannot tell whether it is fresh"),
                    freshness::refresh_command(&spec.path),
                ),
                State::Stale { reason } => Check::fail(
                    name,
                    format!("{path}: stale ({reason}): containers using it fail to start"),
                    freshness::refresh_command(&spec.path),
                ),
            }
        })
        .collect()
}

/// Sessions and units run `--init` (an init as PID 1 passes a stop on to the command), so
/// without the init Podman names no container of podlab's starts.
fn init(init: &InitFact) -> Check {
    const HINT: &str = "install catatonit (Debian/Ubuntu: sudo apt-get install catatonit; Fedora: sudo dnf install catatonit)";
    match (&init.found, &init.configured) {
        (Some(path), _) => Check::pass(
            "init",
            format!("{} (PID 1 of podlab's containers)", path.display()),
        ),
        (None, Some(configured)) => Check::fail(
            "init",
            format!(
                "init_path {} in containers.conf is not an executable: podlab's sessions and units run --init and cannot start",
                configured.display()
            ),
            format!(
                "{HINT}, or set init_path in containers.conf's [engine] to an init that exists"
            ),
        ),
        (None, None) => Check::fail(
            "init",
            "no catatonit (Podman's init for --init) in /usr/libexec/podman, /usr/lib/podman or PATH: podlab's sessions and units run --init and cannot start",
            HINT,
        ),
    }
}

fn quadlet(facts: &Facts) -> Check {
    match &facts.quadlet_generator {
        Some(path) => Check::pass("quadlet", path.display().to_string()),
        None => Check::warn(
            "quadlet",
            "podman's quadlet generator is missing: podlab quadlet units will not run",
            "install podman 4.4 or newer (Debian 12: apt-get install -t trixie podman)",
        ),
    }
}

fn linger(facts: &Facts, user: &str) -> Check {
    if !facts.systemd_running {
        Check::pass(
            "linger",
            "systemd is not running here: user services do not apply",
        )
    } else if facts.linger {
        Check::pass("linger", format!("enabled for {user}"))
    } else {
        Check::warn(
            "linger",
            format!("lingering is off for {user}: user services stop when you log out"),
            format!("sudo loginctl enable-linger {user}"),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::socket::SocketOrigin;

    fn healthy() -> Facts {
        Facts {
            uid: 1000,
            user_name: Some("alice".into()),
            podman: Some(("/usr/bin/podman".into(), Some(PodmanVersion::new(5, 4, 2)))),
            subuid: Some(IdRange {
                start: 100_000,
                count: 65536,
            }),
            subgid: Some(IdRange {
                start: 100_000,
                count: 65536,
            }),
            newuidmap: Some("/usr/bin/newuidmap".into()),
            newgidmap: Some("/usr/bin/newgidmap".into()),
            runtime_dir: Some("/run/user/1000".into()),
            runtime_dir_owner: Some(1000),
            runtime_dir_mode: Some(0o700),
            socket: SocketFact::Reached {
                connection: Connection {
                    socket: "/run/user/1000/podman/podman.sock".into(),
                    origin: SocketOrigin::UserDefault,
                    api_version: "5.4.2".into(),
                    started_pid: None,
                },
                server: ServerVersion {
                    podman: PodmanVersion::new(5, 4, 2),
                    api: "5.4.2".into(),
                },
                host: Some(HostSummary {
                    rootless: true,
                    cgroup_version: "v1".into(),
                    cgroup_manager: "cgroupfs".into(),
                    oci_runtime: "runc".into(),
                }),
            },
            cgroup: CgroupMode::Hybrid,
            driver_version: None,
            device_nodes: Vec::new(),
            selinux: SelinuxMode::Disabled,
            quadlet_generator: Some("/usr/libexec/podman/quadlet".into()),
            cdi_specs: Vec::new(),
            systemd_running: false,
            linger: false,
            init: InitFact {
                configured: None,
                found: Some("/usr/libexec/podman/catatonit".into()),
            },
        }
    }

    fn status_of(checks: &[Check], name: &str) -> Status {
        checks
            .iter()
            .find(|check| check.name == name)
            .map_or_else(|| panic!("no check {name}"), |check| check.status)
    }

    fn node(path: &str, read_write: bool) -> DeviceNode {
        DeviceNode {
            path: path.into(),
            major: 195,
            minor: 0,
            gid: None,
            read_write,
        }
    }

    #[test]
    fn a_gpu_less_host_only_warns() {
        let checks = checks(&healthy());
        assert!(
            checks.iter().all(|check| check.status != Status::Fail),
            "{checks:#?}"
        );
        assert_eq!(status_of(&checks, "nvidia driver"), Status::Warn);
        assert_eq!(status_of(&checks, "nvidia-uvm"), Status::Warn);
        assert!(
            checks
                .iter()
                .filter(|c| c.status != Status::Pass)
                .all(|c| c.hint.is_some())
        );
    }

    #[test]
    fn missing_uvm_fails_only_with_a_driver() {
        let mut facts = healthy();
        facts.driver_version = Some("550.163.01".into());
        facts.device_nodes = vec![node("/dev/nvidia0", true), node("/dev/nvidiactl", true)];
        let checks = checks(&facts);
        assert_eq!(status_of(&checks, "nvidia devices"), Status::Pass);
        let uvm = checks.iter().find(|c| c.name == "nvidia-uvm").unwrap();
        assert_eq!(uvm.status, Status::Fail);
        assert_eq!(uvm.hint.as_deref(), Some("sudo nvidia-modprobe -u -c=0"));
    }

    #[test]
    fn unwritable_nodes_are_named() {
        let mut facts = healthy();
        facts.driver_version = Some("550.163.01".into());
        facts.device_nodes = vec![node("/dev/nvidia0", false), node("/dev/nvidia-uvm", true)];
        let check = checks(&facts)
            .into_iter()
            .find(|c| c.name == "nvidia devices")
            .unwrap();
        assert_eq!(check.status, Status::Fail);
        assert!(check.message.contains("/dev/nvidia0"), "{}", check.message);
    }

    #[test]
    fn rootless_prerequisites_fail_with_fixes() {
        let mut facts = healthy();
        facts.subuid = None;
        facts.newgidmap = None;
        facts.runtime_dir_owner = Some(0);
        let checks = checks(&facts);
        for name in ["subuid", "newgidmap", "XDG_RUNTIME_DIR"] {
            assert_eq!(status_of(&checks, name), Status::Fail, "{name}");
        }
        let mut open = healthy();
        open.runtime_dir_mode = Some(0o777);
        let open_checks = super::checks(&open);
        assert_eq!(status_of(&open_checks, "XDG_RUNTIME_DIR"), Status::Fail);
        let subuid = checks.iter().find(|c| c.name == "subuid").unwrap();
        assert!(
            subuid
                .hint
                .as_deref()
                .unwrap_or_default()
                .contains("usermod --add-subuids")
        );
    }

    #[test]
    fn root_and_old_podman_warn() {
        let mut facts = healthy();
        facts.uid = 0;
        facts.podman = Some(("/usr/bin/podman".into(), Some(PodmanVersion::new(4, 3, 1))));
        let checks = checks(&facts);
        assert_eq!(status_of(&checks, "user"), Status::Warn);
        assert_eq!(status_of(&checks, "podman"), Status::Warn);
        assert_eq!(status_of(&checks, "subuid"), Status::Pass);
    }

    #[test]
    fn crun_on_hybrid_cgroups_fails() {
        let mut facts = healthy();
        if let SocketFact::Reached {
            host: Some(host), ..
        } = &mut facts.socket
        {
            host.oci_runtime = "crun".into();
        }
        assert_eq!(status_of(&checks(&facts), "cgroups"), Status::Fail);
    }

    #[test]
    fn unreachable_socket_carries_the_connect_hint() {
        let mut facts = healthy();
        facts.socket = SocketFact::Failed(
            Error::env("no podman socket answers").hint("podman system service"),
        );
        let checks = checks(&facts);
        let socket = checks.iter().find(|c| c.name == "socket").unwrap();
        assert_eq!(socket.status, Status::Fail);
        assert_eq!(socket.hint.as_deref(), Some("podman system service"));
    }

    #[test]
    fn linger_matters_only_under_systemd() {
        let mut facts = healthy();
        assert_eq!(status_of(&checks(&facts), "linger"), Status::Pass);
        facts.systemd_running = true;
        assert_eq!(status_of(&checks(&facts), "linger"), Status::Warn);
        facts.linger = true;
        assert_eq!(status_of(&checks(&facts), "linger"), Status::Pass);
    }

    #[test]
    fn id_ranges_by_name_or_uid() {
        let text = "bob:100000:65536\n1000:300000:65536\nalice:200000:0\n";
        assert_eq!(
            find_id_range(text, Some("bob"), 1),
            Some(IdRange {
                start: 100_000,
                count: 65536
            })
        );
        assert_eq!(
            find_id_range(text, Some("alice"), 1000),
            Some(IdRange {
                start: 300_000,
                count: 65536
            })
        );
        assert_eq!(find_id_range(text, Some("carol"), 5), None);
    }

    #[test]
    fn host_files_under_a_fake_root() {
        let root = tempfile::tempdir().unwrap();
        let host = HostRoot(root.path().to_owned());
        fs::create_dir_all(root.path().join("sys/fs/cgroup/unified")).unwrap();
        assert_eq!(cgroup_mode(&host), CgroupMode::Hybrid);
        fs::write(root.path().join("sys/fs/cgroup/cgroup.controllers"), "cpu").unwrap();
        assert_eq!(cgroup_mode(&host), CgroupMode::V2);
        assert_eq!(selinux_mode(&host), SelinuxMode::Disabled);
        fs::create_dir_all(root.path().join("sys/fs/selinux")).unwrap();
        fs::write(root.path().join("sys/fs/selinux/enforce"), "1\n").unwrap();
        assert_eq!(selinux_mode(&host), SelinuxMode::Enforcing);
        assert_eq!(
            user_name_for(
                "root:x:0:0::/root:/bin/sh\nalice:x:1000:1000::/home/alice:/bin/sh\n",
                1000
            )
            .as_deref(),
            Some("alice")
        );
    }

    fn executable(path: &Path) {
        use std::os::unix::fs::PermissionsExt as _;
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, "#!/bin/sh\n").unwrap();
        fs::set_permissions(path, fs::Permissions::from_mode(0o755)).unwrap();
    }

    /// Doctor finds the init for `--init` as Podman does: `init_path` from containers.conf
    /// (the last file that sets it), else catatonit in Podman's helper directory, else on
    /// PATH; without one, the check fails with a hint to install catatonit.
    #[test]
    fn doctor_checks_the_init_that_sessions_and_units_run_as_pid_1() {
        let dir = tempfile::tempdir().unwrap();
        let host = HostRoot(dir.path().join("root"));
        let bin = dir.path().join("bin");
        fs::create_dir_all(&bin).unwrap();
        let path = Some(bin.as_os_str());
        let mut facts = healthy();

        // Nothing anywhere: a failure naming catatonit.
        facts.init = find_init(&host, &[], path);
        assert_eq!(
            facts.init,
            InitFact {
                configured: None,
                found: None
            }
        );
        let check = checks(&facts)
            .into_iter()
            .find(|c| c.name == "init")
            .unwrap();
        assert_eq!(check.status, Status::Fail);
        assert!(check.message.contains("no catatonit"), "{}", check.message);
        assert!(check.hint.unwrap().contains("apt-get install catatonit"));

        // On PATH, then in Podman's helper directory (which wins).
        executable(&bin.join("catatonit"));
        assert_eq!(
            find_init(&host, &[], path).found,
            Some(bin.join("catatonit"))
        );
        let helper = dir.path().join("root/usr/libexec/podman/catatonit");
        executable(&helper);
        assert_eq!(find_init(&host, &[], path).found, Some(helper.clone()));
        facts.init = find_init(&host, &[], path);
        assert_eq!(status_of(&checks(&facts), "init"), Status::Pass);

        // init_path set (the user's file after the system's): that one, and only that one.
        let system = dir.path().join("system.conf");
        let user = dir.path().join("user.conf");
        fs::write(&system, "[engine]\ninit_path = \"/usr/bin/tini\"\n").unwrap();
        fs::write(&user, "[engine]\ninit_path = \"/opt/init/dumb-init\"\n").unwrap();
        facts.init = find_init(&host, &[system.clone(), user.clone()], path);
        assert_eq!(
            facts.init,
            InitFact {
                configured: Some("/opt/init/dumb-init".into()),
                found: None
            }
        );
        let check = checks(&facts)
            .into_iter()
            .find(|c| c.name == "init")
            .unwrap();
        assert_eq!(check.status, Status::Fail);
        assert!(
            check.message.contains("init_path /opt/init/dumb-init"),
            "{}",
            check.message
        );
        assert!(check.hint.unwrap().contains("set init_path"));
        let dumb = dir.path().join("root/opt/init/dumb-init");
        executable(&dumb);
        assert_eq!(find_init(&host, &[system, user], path).found, Some(dumb));
    }

    #[test]
    fn stale_cdi_spec_fails_with_the_refresh_command() {
        let mut facts = healthy();
        let provenance = crate::cdi::document::Provenance {
            driver_root: "/".into(),
            dev_root: "/".into(),
            kind: "nvidia.com/gpu".into(),
            names: "index".into(),
            hooks: "none".into(),
            fingerprint: crate::gpu::inventory::Fingerprint {
                driver_version: "550.163.01".into(),
                nodes: vec![],
                libraries: vec![],
                mig: vec![],
            },
        };
        facts.cdi_specs = vec![SpecStatus {
            path: "/etc/cdi/podlab-nvidia.yaml".into(),
            driver_version: "550.163.01".into(),
            state: State::Stale {
                reason: "driver changed from 550.163.01 to 570.1.2".into(),
            },
            provenance,
        }];
        let check = checks(&facts)
            .into_iter()
            .find(|c| c.name == "cdi spec")
            .unwrap();
        assert_eq!(check.status, Status::Fail);
        assert!(
            check.message.contains("driver changed"),
            "{}",
            check.message
        );
        assert_eq!(
            check.hint.as_deref(),
            Some("sudo podlab cdi install --system")
        );
    }
}
