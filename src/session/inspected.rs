//! A [`Session`] rebuilt from a container's inspect data, for `podlab kube generate SESSION`,
//! `kube play SESSION` and `quadlet generate SESSION` (`quadlet from CONTAINER`).
//!
//! The model takes the inspect documents handed to it: the engine fetches them, in
//! [`crate::ops::containers::inspect_session`].
//!
//! It reads what the container is, never its recorded command line: containers created
//! through the API (podlab's own among them) have no `CreateCommand`, and a `podman run` line
//! does not say what the image or Podman added. What would come back on its own is then
//! taken away again, so that the exported session is the one the user asked for: the
//! environment the image sets and Podman's defaults (`PATH`, `container`, `HOSTNAME`, `HOME`,
//! `TERM`), and for a podlab session its GPU edits, which the emitters plan again from the
//! `io.podlab.gpus` label.
//!
//! Podman 5.4.2 loses facts on the way into inspect, so they are recovered elsewhere:
//! - keep-id: `HostConfig.UsernsMode` reads `private`; `HostConfig.IDMappings` still shows the
//!   host user (id 0 of the rootless namespace) as the one-id range `C:0:1`, C being its uid
//!   in the container (the same in `GidMap`);
//! - devices: rootless `--device` nodes are missing from `HostConfig.Devices`, and CDI devices
//!   appear only resolved into their nodes, the CDI name lost; podlab's label names its GPUs.
//! - env secrets (a notebook's token): `Config.Env` holds `SECRET_NAME=*******`, Podman's mask,
//!   keyed by the secret's name; the variable it becomes is read from the `--secret` flags of
//!   `CreateCommand`, and the mask is never taken for a value.
//!
//! The conversion is best effort: whatever the session model cannot carry (other devices,
//! volumes, an entrypoint, capabilities) is dropped and reported key by key.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

use super::{
    DEFAULT_SHM_SIZE, ImageSource, Merged, Mount, Origin, Session, Settings, check_exists,
    check_roots, project_name,
};
use crate::emit::podman::labels;
use crate::gpu::DriverRoots;
use crate::session::{ByteSize, EnvSecret, GpuRequest, Port, Protocol, UserMapping};
use crate::{Error, Result};

/// `PATH` as Podman sets it for an image that sets none.
const PODMAN_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// The one variable podlab's NVIDIA edits set (see [`crate::cdi::generate`]).
const GPU_ENV: &str = "NVIDIA_VISIBLE_DEVICES=void";

/// The session, and what it could not carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inspected {
    pub session: Session,
    /// One line per inspect key dropped: the key, what it held, and why.
    pub skipped: Vec<String>,
}

/// The user podlab runs as, whose keep-id mapping is looked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostIds {
    pub uid: u32,
    pub gid: u32,
}

impl HostIds {
    pub fn current() -> Self {
        Self {
            uid: rustix::process::getuid().as_raw(),
            gid: rustix::process::getgid().as_raw(),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
struct Container {
    name: String,
    image_name: String,
    config: Config,
    host_config: HostConfig,
    mounts: Option<Vec<MountEntry>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
struct Config {
    image: String,
    cmd: Option<Vec<String>>,
    entrypoint: Option<Words>,
    env: Option<Vec<String>>,
    working_dir: String,
    tty: bool,
    labels: Option<BTreeMap<String, String>>,
    create_command: Option<Vec<String>>,
}

/// `Config.Entrypoint`: one string, the words joined by spaces, in the v4 answers podlab asks
/// for (the engine's `PREFIX`); a list in v5 answers and in image inspect.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Words {
    Joined(String),
    List(Vec<String>),
}

impl Words {
    fn joined(&self) -> String {
        match self {
            Self::Joined(text) => text.clone(),
            Self::List(words) => words.join(" "),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
struct HostConfig {
    shm_size: u64,
    port_bindings: Option<BTreeMap<String, Option<Vec<Binding>>>>,
    devices: Option<Vec<Device>>,
    #[serde(rename = "IDMappings")]
    id_mappings: Option<IdMappings>,
    privileged: bool,
    cap_add: Option<Vec<String>>,
    tmpfs: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
struct Binding {
    host_ip: String,
    host_port: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
struct Device {
    path_in_container: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
struct IdMappings {
    uid_map: Option<Vec<String>>,
    gid_map: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
struct MountEntry {
    #[serde(rename = "Type")]
    kind: String,
    name: String,
    source: String,
    destination: String,
    options: Option<Vec<String>>,
    #[serde(rename = "RW")]
    rw: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
struct Image {
    config: ImageConfig,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
struct ImageConfig {
    env: Option<Vec<String>>,
    cmd: Option<Vec<String>>,
    entrypoint: Option<Words>,
}

/// The session a container's inspect document describes, given its image's (when known) and
/// the host user; `cwd` is the project directory when no mount sits at the working dir.
pub fn from_inspect(
    container: &Value,
    image: Option<&Value>,
    host: HostIds,
    cwd: &Path,
) -> Result<Inspected> {
    let unreadable = |what: &str, err: serde_json::Error| {
        Error::env(format!(
            "podman's inspect data for the {what} is unreadable: {err}"
        ))
        .hint("upgrade podman to 4.4 or newer")
    };
    let container =
        Container::deserialize(container).map_err(|err| unreadable("container", err))?;
    let image = image
        .map(Image::deserialize)
        .transpose()
        .map_err(|err| unreadable("image", err))?
        .map(|image| image.config);
    let Container {
        name,
        image_name,
        config,
        host_config,
        mounts,
    } = container;
    let mut skipped = Vec::new();
    let labels = config.labels.clone().unwrap_or_default();
    let gpus = match labels.get(labels::GPUS) {
        Some(text) => text.parse::<GpuRequest>().unwrap_or_else(|_| {
            skipped.push(format!("label {}={text} (not a GPU list)", labels::GPUS));
            GpuRequest::None
        }),
        None => GpuRequest::None,
    };
    // A podlab session's GPU edits: planned again from the label, so left out here.
    let own_gpus = labels.contains_key(labels::PROJECT) && gpus != GpuRequest::None;
    report_extras(&config, &host_config, own_gpus, &mut skipped);

    let workdir = if config.working_dir.is_empty() {
        "/".to_owned()
    } else {
        config.working_dir.clone()
    };
    let mounts = binds(mounts.unwrap_or_default(), &workdir, own_gpus, &mut skipped);
    let project_dir = mounts
        .first()
        .filter(|mount| mount.container == workdir)
        .map_or_else(|| cwd.to_path_buf(), |mount| mount.host.clone());
    let (env, secrets) = env_and_secrets(&config, image.as_ref(), own_gpus, &mut skipped);
    let ports = ports(host_config.port_bindings.unwrap_or_default(), &mut skipped);
    let user_map = keep_id(host_config.id_mappings.as_ref(), host).unwrap_or_else(|| {
        skipped.push(
            "HostConfig.IDMappings (no keep-id: the host user is not mapped to one id of its own), so the user is mapped with --user-map auto".to_owned(),
        );
        UserMapping::Auto
    });
    let command = command(config.cmd, config.entrypoint.as_ref(), image, &mut skipped);
    Ok(Inspected {
        session: Session {
            project: labels
                .get(labels::PROJECT)
                .cloned()
                .unwrap_or_else(|| project_name(&project_dir)),
            project_dir,
            config_file: None,
            preset: labels.get(labels::PRESET).cloned(),
            name: Some(name.trim_start_matches('/').to_owned()),
            image: ImageSource::Name(if image_name.is_empty() {
                config.image
            } else {
                image_name
            }),
            gpus,
            shm_size: if host_config.shm_size == 0 {
                DEFAULT_SHM_SIZE
            } else {
                ByteSize(host_config.shm_size)
            },
            workdir,
            mounts,
            env,
            ports,
            user_map,
            driver_roots: DriverRoots::default(),
            command,
            secrets,
        },
        skipped,
    })
}

/// Reports what no session carries: devices (but podlab's own GPU nodes), privileges,
/// capabilities, tmpfs mounts.
fn report_extras(
    config: &Config,
    host_config: &HostConfig,
    own_gpus: bool,
    skipped: &mut Vec<String>,
) {
    let devices: Vec<&str> = host_config
        .devices
        .iter()
        .flatten()
        .map(|device| device.path_in_container.as_str())
        .filter(|path| !(own_gpus && path.starts_with("/dev/nvidia")))
        .collect();
    if !devices.is_empty() {
        skipped.push(format!(
            "HostConfig.Devices {} (inspect shows CDI devices only as their nodes: ask for NVIDIA GPUs with --gpus)",
            devices.join(", ")
        ));
    }
    let device_flags = device_flags(config.create_command.as_deref().unwrap_or_default());
    if !device_flags.is_empty() {
        skipped.push(format!(
            "Config.CreateCommand {} (a rootless inspect lists no such device: ask for NVIDIA GPUs with --gpus)",
            device_flags.join(" ")
        ));
    }
    if host_config.privileged {
        skipped.push("HostConfig.Privileged".to_owned());
    }
    if let Some(caps) = host_config.cap_add.as_ref().filter(|caps| !caps.is_empty()) {
        skipped.push(format!("HostConfig.CapAdd {}", caps.join(", ")));
    }
    if let Some(tmpfs) = host_config.tmpfs.as_ref().filter(|tmpfs| !tmpfs.is_empty()) {
        let paths: Vec<&str> = tmpfs.keys().map(String::as_str).collect();
        skipped.push(format!("HostConfig.Tmpfs {}", paths.join(", ")));
    }
}

/// The bind mounts, the one at the working dir (the project directory) first; without
/// podlab's own GPU library mounts when `own_gpus`.
fn binds(
    mounts: Vec<MountEntry>,
    workdir: &str,
    own_gpus: bool,
    skipped: &mut Vec<String>,
) -> Vec<Mount> {
    let mut binds = Vec::new();
    for mount in mounts {
        let options = mount.options.unwrap_or_default();
        let has = |wanted: &str| options.iter().any(|option| option == wanted);
        if mount.kind != "bind" {
            let what = if mount.name.is_empty() {
                mount.source
            } else {
                mount.name
            };
            skipped.push(format!(
                "Mounts: {} {what} at {} (a session mounts host paths only)",
                mount.kind, mount.destination
            ));
        } else if !(own_gpus && has("nosuid") && has("nodev")) {
            // podlab's own mounts never carry nosuid and nodev; its GPU library mounts do.
            binds.push(Mount {
                host: PathBuf::from(mount.source),
                container: mount.destination,
                read_only: !mount.rw,
            });
        }
    }
    if let Some(index) = binds.iter().position(|mount| mount.container == workdir) {
        if let Some(head) = binds.get_mut(..=index) {
            head.rotate_right(1);
        }
    }
    binds
}

/// Podman's stand-in for an env secret's value in inspect data (`SECRET_NAME=*******`).
const SECRET_MASK: &str = "*******";

/// The environment the user asked for (without what the image sets, Podman's defaults, and
/// podlab's GPU variable when `own_gpus`), and the env secrets. Inspect data shows an env
/// secret only as `NAME=*******`, keyed by the secret's name: its target comes from the
/// `--secret` flags of `CreateCommand` (a quadlet unit's, a `podman run`'s). The mask is never
/// taken for a value; a secret whose target is unknown is reported, not guessed.
fn env_and_secrets(
    config: &Config,
    image: Option<&ImageConfig>,
    own_gpus: bool,
    skipped: &mut Vec<String>,
) -> (BTreeMap<String, String>, Vec<EnvSecret>) {
    let image_env: BTreeSet<&str> = image
        .and_then(|image| image.env.as_ref())
        .map(|env| env.iter().map(String::as_str).collect())
        .unwrap_or_default();
    let flags = secret_flags(config.create_command.as_deref().unwrap_or_default());
    let mut env = BTreeMap::new();
    let mut secrets = Vec::new();
    for entry in config.env.iter().flatten() {
        let Some((key, value)) = entry.split_once('=') else {
            continue;
        };
        if value == SECRET_MASK {
            match flags.iter().find(|secret| secret.name == key) {
                Some(secret) => secrets.push(secret.clone()),
                None => skipped.push(format!(
                    "Config.Env {key}={SECRET_MASK} (the env secret {key}, whose variable podman does not show; add it yourself: --secret {key},type=env,target=VAR)"
                )),
            }
            continue;
        }
        let podman_default = matches!(key, "HOSTNAME" | "HOME")
            || entry == "container=podman"
            || entry == PODMAN_PATH
            || (key == "TERM" && config.tty);
        if !(image_env.contains(entry.as_str()) || podman_default || (own_gpus && entry == GPU_ENV))
        {
            env.insert(key.to_owned(), value.to_owned());
        }
    }
    (env, secrets)
}

/// The env secrets named by `--secret NAME,type=env[,target=VAR]` in a create command.
fn secret_flags(create_command: &[String]) -> Vec<EnvSecret> {
    let mut values = Vec::new();
    let mut words = create_command.iter();
    while let Some(word) = words.next() {
        if word == "--secret" {
            values.extend(words.next().map(String::as_str));
        } else if let Some(value) = word.strip_prefix("--secret=") {
            values.push(value);
        }
    }
    values
        .into_iter()
        .filter_map(|value| {
            let mut parts = value.split(',');
            let name = parts.next()?.to_owned();
            let (mut env_type, mut target) = (false, None);
            for option in parts {
                match option.split_once('=') {
                    Some(("type", "env")) => env_type = true,
                    Some(("target", var)) => target = Some(var.to_owned()),
                    _ => {}
                }
            }
            env_type.then(|| EnvSecret {
                target: target.unwrap_or_else(|| name.clone()),
                name,
            })
        })
        .collect()
}

/// The published ports; a binding the session cannot carry is reported.
fn ports(bindings: BTreeMap<String, Option<Vec<Binding>>>, skipped: &mut Vec<String>) -> Vec<Port> {
    let mut ports = Vec::new();
    for (key, bindings) in bindings {
        for binding in bindings.unwrap_or_default() {
            match port(&key, &binding) {
                Some(port) => ports.push(port),
                None => skipped.push(format!(
                    "HostConfig.PortBindings {key} on {:?}:{:?}",
                    binding.host_ip, binding.host_port
                )),
            }
        }
    }
    ports
}

/// The command as run, empty when it is the image's own; a changed entrypoint is reported.
fn command(
    cmd: Option<Vec<String>>,
    entrypoint: Option<&Words>,
    image: Option<ImageConfig>,
    skipped: &mut Vec<String>,
) -> Vec<String> {
    let command = cmd.unwrap_or_default();
    let entrypoint = entrypoint.map(Words::joined).unwrap_or_default();
    let (image_cmd, image_entrypoint) = image
        .map(|image| (image.cmd, image.entrypoint.as_ref().map(Words::joined)))
        .unwrap_or_default();
    let image_entrypoint = image_entrypoint.unwrap_or_default();
    if entrypoint != image_entrypoint {
        skipped.push(format!(
            "Config.Entrypoint {entrypoint:?} (a session runs the image's entrypoint {image_entrypoint:?})"
        ));
    }
    if image_cmd.as_ref() == Some(&command) {
        Vec::new()
    } else {
        command
    }
}

/// `--device X`, `--device=X`, `--gpus X` and `--gpus=X` in a recorded command line.
fn device_flags(words: &[String]) -> Vec<String> {
    let mut found = Vec::new();
    let mut words = words.iter();
    while let Some(word) = words.next() {
        if word == "--device" || word == "--gpus" {
            if let Some(value) = words.next() {
                found.push(format!("{word} {value}"));
            }
        } else if word.starts_with("--device=") || word.starts_with("--gpus=") {
            found.push(word.clone());
        }
    }
    found
}

/// A binding of `8080/tcp`; an empty host address is every address, as Podman binds it.
fn port(key: &str, binding: &Binding) -> Option<Port> {
    let (container_port, protocol) = key.split_once('/').unwrap_or((key, "tcp"));
    let protocol = match protocol {
        "tcp" => Protocol::Tcp,
        "udp" => Protocol::Udp,
        _ => return None,
    };
    let host_ip = if binding.host_ip.is_empty() {
        IpAddr::V4(Ipv4Addr::UNSPECIFIED)
    } else {
        binding.host_ip.parse().ok()?
    };
    Some(Port {
        host_ip,
        host_port: binding.host_port.parse().ok()?,
        container_port: container_port.parse().ok()?,
        protocol,
    })
}

/// The keep-id mapping: the container ids of the host user (`C:0:1` in both maps), as plain
/// keep-id when they are the host user's own ids. `None` when the host user has no one-id
/// range of its own, or is root inside.
fn keep_id(mappings: Option<&IdMappings>, host: HostIds) -> Option<UserMapping> {
    let inside = |map: Option<&Vec<String>>| {
        map?.iter().find_map(|range| {
            let mut parts = range.split(':').map(str::parse::<u32>);
            match (parts.next(), parts.next(), parts.next(), parts.next()) {
                (Some(Ok(inside)), Some(Ok(0)), Some(Ok(1)), None) => Some(inside),
                _ => None,
            }
        })
    };
    let mappings = mappings?;
    let uid = inside(mappings.uid_map.as_ref()).filter(|uid| *uid != 0)?;
    let gid = inside(mappings.gid_map.as_ref())?;
    Some(if (uid, gid) == (host.uid, host.gid) {
        UserMapping::KeepId
    } else {
        UserMapping::KeepIdTo { uid, gid }
    })
}

/// `base` with the session flags over it, merged as a flag layer merges over `podlab.toml`
/// (a mount on the same container path replaces the session's, env adds, the rest replaces),
/// except that ports given replace all of the session's: a copy played beside a running
/// session cannot have its host ports. `name` (from `--name`) renames the session.
pub fn overlay(
    base: Session,
    flags: Settings,
    name: Option<String>,
    cwd: &Path,
    home: Option<&Path>,
) -> Result<Session> {
    let origin = Origin::Flag(format!(
        "session {}",
        base.name.as_deref().unwrap_or(&base.project)
    ));
    let mut merged = Merged {
        image: None,
        gpus: base.gpus,
        shm_size: Some(base.shm_size),
        workdir: Some(base.workdir),
        mounts: base
            .mounts
            .into_iter()
            .map(|mount| (mount, origin.clone()))
            .collect(),
        env: base.env,
        ports: if flags.ports.is_empty() {
            base.ports
        } else {
            Vec::new()
        },
        user_map: base.user_map,
        driver_root: None,
        dev_root: None,
        command: base.command,
    };
    merged.apply(flags, cwd, home)?;
    for (mount, origin) in &merged.mounts {
        check_exists(&mount.host, false, Some(origin), "mount source")?;
    }
    let driver_roots = check_roots(merged.driver_root, merged.dev_root)?;
    Ok(Session {
        project: base.project,
        project_dir: base.project_dir,
        config_file: None,
        preset: base.preset,
        name: name.or(base.name),
        image: merged.image.map_or(base.image, |(image, _)| image),
        gpus: merged.gpus,
        shm_size: merged.shm_size.unwrap_or(DEFAULT_SHM_SIZE),
        workdir: merged
            .workdir
            .unwrap_or_else(|| super::DEFAULT_WORKDIR.to_owned()),
        mounts: merged.mounts.into_iter().map(|(mount, _)| mount).collect(),
        env: merged.env,
        ports: merged.ports,
        user_map: merged.user_map,
        driver_roots,
        command: merged.command,
        secrets: base.secrets,
    })
}

#[cfg(test)]
mod tests {
    //! The fixtures are Podman 5.4.2's real answers on the test host to the calls podlab
    //! makes (`GET /v4.0.0/libpod/containers/NAME/json` and `.../images/ID/json`, ids and the
    //! project's host paths replaced): containers that `podlab run --detach` made with inline
    //! and CDI GPUs as the test user (uid 1001), one created through the API, and one by
    //! `podman run --device`.
    use super::*;

    const INLINE: &str = include_str!("../../tests/fixtures/inspect/podlab-run-inline-gpus.json");
    const CDI: &str = include_str!("../../tests/fixtures/inspect/podlab-run-cdi-gpus.json");
    const API: &str = include_str!("../../tests/fixtures/inspect/api-created.json");
    const CLI: &str = include_str!("../../tests/fixtures/inspect/cli-created.json");
    const GLIBC: &str = include_str!("../../tests/fixtures/inspect/image-glibc.json");
    const ENV_IMAGE: &str = include_str!("../../tests/fixtures/inspect/image-env.json");
    /// `podman run --secret podlab-notebook-nb1,type=env,target=JUPYTER_TOKEN --env A=1`, as a
    /// notebook's unit runs it.
    const ENV_SECRET: &str = include_str!("../../tests/fixtures/inspect/cli-env-secret.json");
    const TEST_USER: HostIds = HostIds {
        uid: 1001,
        gid: 1001,
    };

    fn json(text: &str) -> Value {
        serde_json::from_str(text).unwrap()
    }

    fn convert(container: &str, image: &str, host: HostIds) -> Inspected {
        from_inspect(
            &json(container),
            Some(&json(image)),
            host,
            Path::new("/cwd"),
        )
        .unwrap()
    }

    fn env(session: &Session) -> Vec<String> {
        session
            .env
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect()
    }

    fn mounts(session: &Session) -> Vec<String> {
        session
            .mounts
            .iter()
            .map(|m| {
                format!(
                    "{}:{}:{}",
                    m.host.display(),
                    m.container,
                    if m.read_only { "ro" } else { "rw" }
                )
            })
            .collect()
    }

    #[test]
    fn a_podlab_session_with_inline_gpus_comes_back_as_it_was_asked_for() {
        let Inspected { session, skipped } = convert(INLINE, GLIBC, TEST_USER);
        assert_eq!(skipped, Vec::<String>::new());
        assert_eq!(session.name.as_deref(), Some("insp-inline"));
        assert_eq!(session.project, "proj");
        assert_eq!(session.project_dir, Path::new("/home/podlabtest/proj"));
        assert_eq!(
            session.image,
            ImageSource::Name("localhost/podlab-test/glibc:latest".into())
        );
        assert_eq!(session.gpus, GpuRequest::All);
        assert_eq!(session.shm_size, ByteSize(256 << 20));
        assert_eq!(session.workdir, "/workspace");
        // The 40 driver library mounts are the GPU edits, planned again from the label.
        assert_eq!(
            mounts(&session),
            [
                "/home/podlabtest/proj:/workspace:rw",
                "/home/podlabtest/data:/data:ro"
            ]
        );
        // Not PATH, container, HOSTNAME, podlab's HOME=/tmp or the GPU variable.
        assert_eq!(env(&session), ["FOO=bar", "WHEN=2024-01-01"]);
        let ports: Vec<String> = session.ports.iter().map(ToString::to_string).collect();
        assert_eq!(ports, ["127.0.0.1:18777:8080/tcp"]);
        // UsernsMode says "private": keep-id is read from IDMappings.
        assert_eq!(session.user_map, UserMapping::KeepId);
        assert_eq!(
            session.command,
            ["sh", "-c", "trap 'exit 0' TERM; sleep 600 & wait"]
        );
        assert_eq!(session.config_file, None);

        let other_user = HostIds {
            uid: 1000,
            gid: 1000,
        };
        let mapped = convert(INLINE, GLIBC, other_user).session.user_map;
        assert_eq!(
            mapped,
            UserMapping::KeepIdTo {
                uid: 1001,
                gid: 1001
            }
        );
    }

    #[test]
    fn cdi_gpus_show_as_nodes_which_a_podlab_session_leaves_to_its_label() {
        let Inspected { session, skipped } = convert(CDI, GLIBC, TEST_USER);
        assert_eq!(skipped, Vec::<String>::new());
        assert_eq!(session.gpus, GpuRequest::All);
        assert_eq!(env(&session), ["WHEN=2024-01-01"]);
        assert_eq!(session.mounts.len(), 2);

        // The same container without podlab's labels: its devices cannot be told apart.
        let mut foreign = json(CDI);
        foreign["Config"]["Labels"] = json("{}");
        let Inspected { session, skipped } =
            from_inspect(&foreign, Some(&json(GLIBC)), TEST_USER, Path::new("/cwd")).unwrap();
        assert_eq!(session.gpus, GpuRequest::None);
        assert_eq!(session.project, "proj", "named after the project mount");
        assert_eq!(skipped.len(), 1, "{skipped:?}");
        assert!(
            skipped[0].starts_with(
                "HostConfig.Devices /dev/nvidiactl, /dev/nvidia-uvm, /dev/nvidia-uvm-tools, /dev/nvidia0 ("
            ),
            "{skipped:?}"
        );
        assert!(env(&session).contains(&GPU_ENV.to_owned()));
    }

    #[test]
    fn an_api_container_loses_what_its_image_and_podman_set() {
        let Inspected { session, skipped } = convert(API, ENV_IMAGE, TEST_USER);
        // Podman 5.4.2 lists no rootless device in inspect: the API's /dev/nvidia0 is lost
        // without a trace (there is no CreateCommand either).
        assert_eq!(skipped, Vec::<String>::new());
        // The image sets A=1, IMGVAR=from-image and its own PATH.
        assert_eq!(env(&session), ["IMGVAR=changed", "USERVAR=y"]);
        assert!(session.command.is_empty(), "the image's own CMD");
        assert_eq!(session.workdir, "/tmp");
        assert_eq!(
            session.project_dir,
            Path::new("/cwd"),
            "no mount at the workdir"
        );
        assert_eq!(session.project, "cwd");
        assert_eq!(mounts(&session), ["/home/podlabtest/data:/data:ro"]);
        let ports: Vec<String> = session.ports.iter().map(ToString::to_string).collect();
        assert_eq!(ports, ["0.0.0.0:18779:80/tcp"]);
        assert_eq!(session.shm_size, ByteSize(64 << 20));
        assert_eq!(session.user_map, UserMapping::KeepId);
        assert_eq!(session.gpus, GpuRequest::None);

        // Without the image, its environment and command cannot be told from the user's.
        let alone = from_inspect(&json(API), None, TEST_USER, Path::new("/cwd")).unwrap();
        assert!(env(&alone.session).contains(&"A=1".to_owned()));
        assert_eq!(alone.session.command, ["sleep", "600"]);
    }

    #[test]
    fn a_podman_run_container_reports_the_devices_its_command_line_names() {
        let Inspected { session, skipped } = convert(CLI, GLIBC, TEST_USER);
        assert_eq!(
            session.user_map,
            UserMapping::KeepIdTo {
                uid: 1000,
                gid: 1000
            }
        );
        assert_eq!(env(&session), ["A=1"]);
        assert_eq!(session.command, ["sleep", "600"], "the image has no CMD");
        assert_eq!(session.shm_size, ByteSize(64 << 20));
        assert_eq!(skipped.len(), 1, "{skipped:?}");
        assert!(
            skipped[0].starts_with("Config.CreateCommand --device /dev/nvidia0 ("),
            "{skipped:?}"
        );
    }

    #[test]
    fn what_a_session_cannot_carry_is_reported_key_by_key() {
        let mut container = json(API);
        container["HostConfig"]["IDMappings"] =
            json(r#"{"UidMap":["0:0:1","1:1:65536"],"GidMap":["0:0:1","1:1:65536"]}"#);
        container["HostConfig"]["CapAdd"] = json(r#"["CAP_SYS_ADMIN"]"#);
        container["Config"]["Entrypoint"] = json(r#""/bin/tini --""#);
        container["Mounts"] = json(
            r#"[{"Type":"volume","Name":"cache","Source":"/v","Destination":"/cache","RW":true}]"#,
        );
        container["HostConfig"]["PortBindings"] =
            json(r#"{"53/sctp":[{"HostIp":"","HostPort":"53"}]}"#);
        let Inspected { session, skipped } = from_inspect(
            &container,
            Some(&json(ENV_IMAGE)),
            TEST_USER,
            Path::new("/cwd"),
        )
        .unwrap();
        assert_eq!(
            session.user_map,
            UserMapping::Auto,
            "root inside is no keep-id"
        );
        assert!(session.mounts.is_empty() && session.ports.is_empty());
        let keys: Vec<&str> = skipped
            .iter()
            .map(|line| line.split_whitespace().next().unwrap_or_default())
            .collect();
        assert_eq!(
            keys,
            [
                "HostConfig.CapAdd",
                "Mounts:",
                "HostConfig.PortBindings",
                "HostConfig.IDMappings",
                "Config.Entrypoint"
            ],
            "{skipped:?}"
        );
        assert!(skipped[1].contains("volume cache at /cache"), "{skipped:?}");
        let broken = from_inspect(
            &json(r#"{"Config":{"Cmd":"sh"}}"#),
            None,
            TEST_USER,
            Path::new("/"),
        );
        assert_eq!(broken.unwrap_err().exit_code(), 2);
    }

    #[test]
    fn flags_override_the_inspected_session() {
        let dir = tempfile::tempdir().unwrap();
        let mut base = convert(INLINE, GLIBC, TEST_USER).session;
        for (index, mount) in base.mounts.iter_mut().enumerate() {
            mount.host = dir.path().join(index.to_string());
            std::fs::create_dir(&mount.host).unwrap();
        }
        let flags = Settings {
            shm_size: Some(ByteSize(1 << 30)),
            env: BTreeMap::from([("FOO".to_owned(), "baz".to_owned())]),
            ports: vec!["9000:8080".parse().unwrap()],
            mounts: vec![super::super::MountSetting {
                host: super::super::HostPath {
                    path: ".".into(),
                    origin: Origin::Flag("--volume .".into()),
                },
                container: "/data".into(),
                read_only: false,
            }],
            ..Settings::default()
        };
        let session = overlay(base.clone(), flags, Some("copy".into()), dir.path(), None).unwrap();
        assert_eq!(session.name.as_deref(), Some("copy"));
        assert_eq!(session.shm_size, ByteSize(1 << 30));
        assert_eq!(env(&session), ["FOO=baz", "WHEN=2024-01-01"]);
        assert_eq!(
            session.mounts.len(),
            2,
            "the flag's /data replaces the session's"
        );
        assert_eq!(session.mounts[1].host, dir.path());
        let ports: Vec<String> = session.ports.iter().map(ToString::to_string).collect();
        assert_eq!(ports, ["127.0.0.1:9000:8080/tcp"], "replaced, not added");
        assert_eq!(session.gpus, GpuRequest::All, "kept");
        assert_eq!(session.command, base.command, "kept");

        std::fs::remove_dir(&base.mounts[1].host).unwrap();
        let err = overlay(base, Settings::default(), None, dir.path(), None).unwrap_err();
        assert!(
            err.message()
                .starts_with("session insp-inline: mount source "),
            "{err}"
        );
    }

    #[test]
    fn w5_an_env_secret_is_carried_as_a_secret_and_its_mask_never_as_a_value() {
        let inspected =
            from_inspect(&json(ENV_SECRET), None, TEST_USER, Path::new("/cwd")).unwrap();
        let session = &inspected.session;
        assert!(
            !env(session).iter().any(|entry| entry.contains(SECRET_MASK)),
            "{:?}",
            session.env
        );
        assert_eq!(
            session.secrets,
            [EnvSecret {
                name: "podlab-notebook-nb1".into(),
                target: "JUPYTER_TOKEN".into()
            }]
        );
        // Without the create command its variable is unknown: named, never guessed.
        let mut bare = json(ENV_SECRET);
        bare["Config"]["CreateCommand"] = Value::Null;
        let inspected = from_inspect(&bare, None, TEST_USER, Path::new("/cwd")).unwrap();
        assert!(inspected.session.secrets.is_empty());
        assert!(
            !env(&inspected.session)
                .iter()
                .any(|e| e.contains(SECRET_MASK))
        );
        assert!(
            inspected
                .skipped
                .iter()
                .any(|line| line.contains("the env secret podlab-notebook-nb1")),
            "{:?}",
            inspected.skipped
        );
    }

    #[test]
    fn w5_secret_flags_read_both_spellings_and_only_env_secrets() {
        let words: Vec<String> = [
            "podman",
            "run",
            "--secret",
            "a,type=env,target=A_VAR",
            "--secret=b,type=env",
            "--secret",
            "c",
        ]
        .map(String::from)
        .to_vec();
        assert_eq!(
            secret_flags(&words),
            [
                EnvSecret {
                    name: "a".into(),
                    target: "A_VAR".into()
                },
                EnvSecret {
                    name: "b".into(),
                    target: "b".into()
                }
            ]
        );
    }
}
