//! The syntax of single session values (sizes, ports, GPU lists, user mappings, volumes,
//! environment pairs), shared by the command line and `podlab.toml` so that `--shm-size 16g`
//! and `shm_size = "16g"` can never mean different things.
//!
//! Each parser returns an [`Invalid`] with a message and a hint; clap shows both under the
//! flag, and the `podlab.toml` reader adds the file, line, column and key in front.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::str::FromStr;

use serde::{Serialize, Serializer};

/// A value that does not parse: what is wrong, and how to write it instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    pub message: String,
    pub hint: String,
}

impl Invalid {
    fn new(message: impl Into<String>, hint: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            hint: hint.into(),
        }
    }
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}\nhint: {}", self.message, self.hint)
    }
}

impl std::error::Error for Invalid {}

/// A size in bytes (`--shm-size`, `shm_size`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct ByteSize(pub u64);

const SIZE_UNITS: [(&str, u32); 5] = [("", 0), ("k", 10), ("m", 20), ("g", 30), ("t", 40)];

impl FromStr for ByteSize {
    type Err = Invalid;

    /// `16g`, `512m`, `1073741824`, `16GiB`: a whole number with an optional binary unit.
    fn from_str(text: &str) -> Result<Self, Invalid> {
        let bad = || {
            Invalid::new(
                format!("invalid size {text:?}"),
                "write a whole number of bytes with an optional unit k, m, g or t: 512m, 16g",
            )
        };
        let digits = text.bytes().take_while(u8::is_ascii_digit).count();
        let (number, unit) = text.split_at_checked(digits).ok_or_else(bad)?;
        let unit = unit.to_ascii_lowercase();
        let unit = unit
            .strip_suffix("ib")
            .filter(|unit| !unit.is_empty())
            .or_else(|| unit.strip_suffix('b'))
            .unwrap_or(&unit);
        let shift = SIZE_UNITS
            .iter()
            .find(|(name, _)| *name == unit)
            .map(|(_, shift)| *shift)
            .ok_or_else(bad)?;
        let number: u64 = number.parse().map_err(|_| bad())?;
        // Podman keeps sizes in an int64: a larger one fails in the API (`run`) or when a
        // generated unit starts, so it is refused here, where every size is parsed.
        let too_large = || {
            Invalid::new(
                format!("size {text:?} is too large: podman takes at most 2^63-1 bytes"),
                "give a size of at most 8388607t",
            )
        };
        let bytes = number
            .checked_mul(1 << shift)
            .filter(|bytes| i64::try_from(*bytes).is_ok())
            .ok_or_else(too_large)?;
        if bytes == 0 {
            return Err(Invalid::new(
                format!("size {text:?} is zero"),
                "give a size greater than zero: 16g",
            ));
        }
        Ok(Self(bytes))
    }
}

impl fmt::Display for ByteSize {
    /// The largest unit that divides the size exactly: `16g`, `1536m`, `1000`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (unit, shift) = SIZE_UNITS
            .iter()
            .rev()
            .find(|(_, shift)| self.0 % (1 << shift) == 0)
            .copied()
            .unwrap_or(("", 0));
        write!(f, "{}{unit}", self.0 >> shift)
    }
}

/// Which GPUs a session gets.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum GpuRequest {
    /// All of them when the host has GPUs, none otherwise (decided at run time).
    #[default]
    Auto,
    All,
    None,
    /// These GPUs, in this order.
    List(Vec<GpuSelector>),
}

/// One GPU, as `nvidia-smi -L` names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GpuSelector {
    Index(u32),
    /// `GPU-8f6d...`.
    Uuid(String),
}

impl FromStr for GpuRequest {
    type Err = Invalid;

    /// `auto`, `all`, `none`, or a comma-separated list of indices and UUIDs: `0,1`, `GPU-…`.
    fn from_str(text: &str) -> Result<Self, Invalid> {
        match text.to_ascii_lowercase().as_str() {
            "auto" => return Ok(Self::Auto),
            "all" => return Ok(Self::All),
            "none" => return Ok(Self::None),
            _ => {}
        }
        text.split(',')
            .map(|item| item.trim().parse())
            .collect::<Result<Vec<_>, _>>()
            .map(Self::List)
    }
}

impl FromStr for GpuSelector {
    type Err = Invalid;

    fn from_str(item: &str) -> Result<Self, Invalid> {
        if !item.is_empty() && item.bytes().all(|b| b.is_ascii_digit()) {
            return item.parse().map(Self::Index).map_err(|_| {
                Invalid::new(
                    format!("GPU index {item} is too large"),
                    "nvidia-smi -L lists the GPUs",
                )
            });
        }
        let is_uuid = item.strip_prefix("GPU-").is_some_and(|rest| {
            !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-')
        });
        if is_uuid {
            return Ok(Self::Uuid(item.to_owned()));
        }
        Err(Invalid::new(
            format!("invalid GPU {item:?}"),
            "use all, none, auto, indices (0,1) or UUIDs from nvidia-smi -L (GPU-8f6d…)",
        ))
    }
}

impl GpuRequest {
    /// Removes repeated GPUs from a list, keeping the first of each.
    pub(crate) fn deduplicated(self) -> Self {
        match self {
            Self::List(list) => {
                let mut unique: Vec<GpuSelector> = Vec::with_capacity(list.len());
                for gpu in list {
                    if !unique.contains(&gpu) {
                        unique.push(gpu);
                    }
                }
                Self::List(unique)
            }
            other => other,
        }
    }
}

/// Parses `--gpus`, dropping repeats.
pub fn parse_gpus(text: &str) -> Result<GpuRequest, Invalid> {
    text.parse::<GpuRequest>().map(GpuRequest::deduplicated)
}

impl fmt::Display for GpuSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Index(index) => write!(f, "{index}"),
            Self::Uuid(uuid) => f.write_str(uuid),
        }
    }
}

impl fmt::Display for GpuRequest {
    /// The `--gpus` syntax: `auto`, `all`, `none`, `0,1`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Auto => f.write_str("auto"),
            Self::All => f.write_str("all"),
            Self::None => f.write_str("none"),
            Self::List(list) => {
                let items: Vec<String> = list.iter().map(ToString::to_string).collect();
                f.write_str(&items.join(","))
            }
        }
    }
}

impl Serialize for GpuSelector {
    /// An index as a number, a UUID as a string.
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Index(index) => serializer.serialize_u32(*index),
            Self::Uuid(uuid) => serializer.serialize_str(uuid),
        }
    }
}

impl Serialize for GpuRequest {
    /// `"auto"`, `"all"`, `"none"`, or a list: `[0, "GPU-…"]`.
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::List(list) => list.serialize(serializer),
            other => serializer.serialize_str(&other.to_string()),
        }
    }
}

/// Whose uid owns files written in the mounts; Podman's `--userns=keep-id` family.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum UserMapping {
    /// Decided from the image at run time: `keep-id:uid=U,gid=G` to the image's non-root user,
    /// plain `keep-id` when it has none.
    #[default]
    Auto,
    /// `keep-id`: the host user keeps its uid inside the container.
    KeepId,
    /// `keep-id:uid=U,gid=G`: the host user becomes uid U, gid G inside.
    KeepIdTo { uid: u32, gid: u32 },
}

impl FromStr for UserMapping {
    type Err = Invalid;

    /// `auto`, `keep-id`, or `UID:GID`.
    fn from_str(text: &str) -> Result<Self, Invalid> {
        match text {
            "auto" => return Ok(Self::Auto),
            "keep-id" => return Ok(Self::KeepId),
            _ => {}
        }
        text.split_once(':')
            .and_then(|(uid, gid)| Some((uid.parse().ok()?, gid.parse().ok()?)))
            .map(|(uid, gid)| Self::KeepIdTo { uid, gid })
            .ok_or_else(|| {
                Invalid::new(
                    format!("invalid user mapping {text:?}"),
                    "use auto, keep-id, or the UID:GID of the image's user (1000:1000)",
                )
            })
    }
}

impl fmt::Display for UserMapping {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Auto => f.write_str("auto"),
            Self::KeepId => f.write_str("keep-id"),
            Self::KeepIdTo { uid, gid } => write!(f, "{uid}:{gid}"),
        }
    }
}

impl Serialize for UserMapping {
    /// The same words as the flag: `"auto"`, `"keep-id"`, `"1000:1000"`.
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// A published port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Port {
    /// 127.0.0.1 unless an address is given.
    pub host_ip: IpAddr,
    pub host_port: u16,
    pub container_port: u16,
    pub protocol: Protocol,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    #[default]
    Tcp,
    Udp,
}

impl Port {
    /// Whether both publish the same host socket (one replaces the other).
    pub fn same_binding(&self, other: &Self) -> bool {
        self.host_ip == other.host_ip
            && self.host_port == other.host_port
            && self.protocol == other.protocol
    }
}

impl FromStr for Port {
    type Err = Invalid;

    /// `[IP:]HOST:CTR[/PROTO]` or `CTR` (the same port on the host); IPv6 in brackets:
    /// `[::1]:8888:8888`.
    fn from_str(text: &str) -> Result<Self, Invalid> {
        let bad = |why: &str| {
            Invalid::new(
                format!("invalid port {text:?}: {why}"),
                "write [IP:]HOST:CTR[/tcp|udp]: 8888, 8080:80, 0.0.0.0:6006:6006, [::1]:8888:8888",
            )
        };
        let (spec, protocol) = match text.rsplit_once('/') {
            Some((spec, "tcp")) => (spec, Protocol::Tcp),
            Some((spec, "udp")) => (spec, Protocol::Udp),
            Some(_) => return Err(bad("the protocol must be tcp or udp")),
            None => (text, Protocol::Tcp),
        };
        let (host_ip, ports) = if let Some(rest) = spec.strip_prefix('[') {
            let (ip, ports) = rest
                .split_once("]:")
                .ok_or_else(|| bad("a bracketed address must be followed by :HOST:CTR"))?;
            let ip: std::net::Ipv6Addr = ip.parse().map_err(|_| bad("not an IPv6 address"))?;
            (IpAddr::V6(ip), ports)
        } else {
            match spec.matches(':').count() {
                0 | 1 => (IpAddr::V4(Ipv4Addr::LOCALHOST), spec),
                2 => {
                    let (ip, ports) = spec.split_once(':').ok_or_else(|| bad("no ports"))?;
                    let ip: Ipv4Addr = ip
                        .parse()
                        .map_err(|_| bad("not an IPv4 address (put IPv6 in brackets)"))?;
                    (IpAddr::V4(ip), ports)
                }
                _ => return Err(bad("too many colons (put an IPv6 address in brackets)")),
            }
        };
        let number = |port: &str| match port.parse::<u16>() {
            Ok(0) | Err(_) => Err(bad(&format!("{port:?} is not a port number (1-65535)"))),
            Ok(port) => Ok(port),
        };
        let (host_port, container_port) = match ports.split_once(':') {
            Some((host, container)) => (number(host)?, number(container)?),
            None => (number(ports)?, number(ports)?),
        };
        Ok(Self {
            host_ip,
            host_port,
            container_port,
            protocol,
        })
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Tcp => "tcp",
            Self::Udp => "udp",
        })
    }
}

impl fmt::Display for Port {
    /// `127.0.0.1:8888:8888/tcp`, `[::1]:8888:8888/tcp`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.host_ip {
            IpAddr::V4(ip) => write!(f, "{ip}")?,
            IpAddr::V6(ip) => write!(f, "[{ip}]")?,
        }
        write!(
            f,
            ":{}:{}/{}",
            self.host_port, self.container_port, self.protocol
        )
    }
}

/// A path inside the container (working dir, mount target): absolute, not `/`, no `..`,
/// no `:` (Podman's volume syntax splits on it). Returned without a trailing slash.
pub fn container_path(text: &str) -> Result<String, Invalid> {
    let bad = |why: &str| {
        Invalid::new(
            format!("invalid container path {text:?}: {why}"),
            "use an absolute path such as /workspace or /data",
        )
    };
    if !text.starts_with('/') {
        return Err(bad("it must be absolute"));
    }
    if text.contains(':') || text.contains(',') {
        return Err(bad("it must not contain ':' or ','"));
    }
    if text.split('/').any(|part| part == "..") {
        return Err(bad("it must not contain '..'"));
    }
    let trimmed = text.trim_end_matches('/');
    if trimmed.is_empty() {
        return Err(bad("it must not be /"));
    }
    Ok(trimmed.to_owned())
}

/// A `-v HOST:CTR[:OPTIONS]` flag before its host path is expanded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Volume {
    pub host: PathBuf,
    pub container: String,
    pub read_only: bool,
}

/// Parses `HOST:CTR[:ro|:rw]`; volumes from the command line are read-write unless `:ro`.
pub fn parse_volume(text: &str) -> Result<Volume, Invalid> {
    let mut parts = text.splitn(3, ':');
    let (Some(host), Some(container)) = (parts.next(), parts.next()) else {
        return Err(Invalid::new(
            format!("invalid volume {text:?}"),
            "write HOST:CTR[:ro], for example ~/datasets:/data:ro",
        ));
    };
    if host.is_empty() {
        return Err(Invalid::new(
            format!("invalid volume {text:?}: no host path"),
            "write HOST:CTR[:ro], for example ~/datasets:/data:ro",
        ));
    }
    let read_only = match parts.next() {
        None => false,
        // `/co:lon:/data:ro`: what follows the container path is a path, so the host path
        // held a ':' that split it.
        Some(options) if options.contains(['/', ':']) => {
            return Err(Invalid::new(
                format!("invalid volume {text:?}: the host path holds a ':', where -v splits"),
                format!(
                    "mount it from podlab.toml, where the host path is a value of its own: [[mounts]] host = \"{host}:{container}\", container = \"{}\"",
                    options.split(':').next().unwrap_or(options)
                ),
            ));
        }
        Some(options) => read_only_option(options)?,
    };
    Ok(Volume {
        host: PathBuf::from(host),
        container: container_path(container)?,
        read_only,
    })
}

/// `ro`, `rw`; refuses `U`, `Z` and `z` with the reason.
fn read_only_option(options: &str) -> Result<bool, Invalid> {
    let mut read_only = false;
    for option in options.split(',') {
        match option {
            "ro" => read_only = true,
            "rw" => read_only = false,
            "U" => {
                return Err(Invalid::new(
                    "mount option :U is not supported: it would chown every file under the host path",
                    "drop :U; podlab maps your user into the container (--user-map), so the files are already yours",
                ));
            }
            "Z" | "z" => {
                return Err(Invalid::new(
                    format!(
                        "mount option :{option} is not supported: it would relabel every file under the host path for SELinux, breaking other programs that use your home or data set"
                    ),
                    format!(
                        "drop :{option}; on SELinux hosts podlab runs sessions with label=disable instead"
                    ),
                ));
            }
            other => {
                return Err(Invalid::new(
                    format!("unsupported mount option {other:?}"),
                    "podlab accepts :ro and :rw",
                ));
            }
        }
    }
    Ok(read_only)
}

/// `-e K=V`, or `-e K` (`value` is `None`: taken from podlab's environment).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvArg {
    pub name: String,
    pub value: Option<String>,
}

pub fn parse_env(text: &str) -> Result<EnvArg, Invalid> {
    let (name, value) = match text.split_once('=') {
        Some((name, value)) => (name, Some(value.to_owned())),
        None => (text, None),
    };
    Ok(EnvArg {
        name: env_name(name)?.to_owned(),
        value,
    })
}

/// The `--env` values: each bare `NAME` is taken from `lookup` (podlab's environment); one
/// that is not set there is a user error.
pub fn env_values(
    env: &[EnvArg],
    lookup: &dyn Fn(&str) -> Option<String>,
) -> crate::Result<std::collections::BTreeMap<String, String>> {
    let mut values = std::collections::BTreeMap::new();
    for arg in env {
        let value = match &arg.value {
            Some(value) => value.clone(),
            None => lookup(&arg.name).ok_or_else(|| {
                crate::Error::user(format!(
                    "--env {}: {} is not set in this environment",
                    arg.name, arg.name
                ))
                .hint(format!("set it, or pass --env {}=VALUE", arg.name))
            })?,
        };
        values.insert(arg.name.clone(), value);
    }
    Ok(values)
}

/// An environment variable name: not empty, no `=`, no NUL.
pub fn env_name(name: &str) -> Result<&str, Invalid> {
    if name.is_empty() || name.contains(['=', '\0']) {
        return Err(Invalid::new(
            format!("invalid environment variable name {name:?}"),
            "write NAME=VALUE, for example -e WANDB_MODE=offline",
        ));
    }
    Ok(name)
}

/// The naming rule of image references, for hints.
pub const IMAGE_NAME_RULE: &str = "write [REGISTRY[:PORT]/]PATH[:TAG][@DIGEST] with a lowercase PATH of [a-z0-9] parts joined by '.', '_', '__' or '-', e.g. docker.io/library/ubuntu:24.04 (only the registry may have capitals)";

/// An image reference as the container tools parse it (the grammar of
/// `github.com/distribution/reference`): an optional registry (a first part with a `.` or a
/// `:`, or `localhost`), a lowercase path, an optional tag and an optional digest. A name
/// that breaks it would only fail later, at the registry, with a misleading network error.
pub fn image_name(text: &str) -> Result<String, Invalid> {
    match image_reference_problem(text) {
        None => Ok(text.to_owned()),
        Some(problem) => Err(Invalid::new(
            format!("invalid image name {text:?}: {problem}"),
            IMAGE_NAME_RULE,
        )),
    }
}

fn image_reference_problem(text: &str) -> Option<&'static str> {
    if text.is_empty() {
        return Some("it is empty");
    }
    let (name, digest) = match text.split_once('@') {
        Some((name, digest)) => (name, Some(digest)),
        None => (text, None),
    };
    if let Some(digest) = digest {
        let valid = digest.split_once(':').is_some_and(|(algorithm, hex)| {
            !algorithm.is_empty()
                && algorithm
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"+._-".contains(&b))
                && hex.len() >= 32
                && hex
                    .bytes()
                    .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        });
        if !valid {
            return Some("the digest is not ALGORITHM:HEX");
        }
    }
    // A tag follows the last ':' after the last '/' (a ':' before it is a registry's port).
    let last_slash = name.rfind('/').map_or(0, |at| at + 1);
    let (name, tag) = match name.get(last_slash..).and_then(|tail| tail.rfind(':')) {
        Some(colon) => name
            .split_at_checked(last_slash + colon)
            .map_or((name, None), |(name, tag)| (name, tag.get(1..))),
        None => (name, None),
    };
    if let Some(tag) = tag {
        let mut bytes = tag.bytes();
        let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
        let valid = tag.len() <= 128
            && bytes.next().is_some_and(word)
            && bytes.all(|b| word(b) || b == b'.' || b == b'-');
        if !valid {
            return Some("the tag is not [A-Za-z0-9_][A-Za-z0-9_.-]* (128 at most)");
        }
    }
    let mut parts: Vec<&str> = name.split('/').collect();
    if parts.len() > 1
        && parts
            .first()
            .is_some_and(|first| first.contains(['.', ':']) || *first == "localhost")
    {
        let registry = parts.remove(0);
        let (host, port) = match registry.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (registry, None),
        };
        let host_ok = !host.is_empty()
            && host.split('.').all(|label| {
                !label.is_empty()
                    && !label.starts_with('-')
                    && !label.ends_with('-')
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            });
        let port_ok =
            port.is_none_or(|port| !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()));
        if !host_ok || !port_ok {
            return Some("the registry is not HOST[:PORT]");
        }
    }
    for part in parts {
        if part.bytes().any(|b| b.is_ascii_uppercase()) {
            return Some("the repository path must be lowercase");
        }
        if !path_component(part) {
            return Some("a path part is not [a-z0-9] runs joined by '.', '_', '__' or '-'");
        }
    }
    None
}

/// `[a-z0-9]+` runs joined by one separator: `.`, `_`, `__`, or any number of `-`.
fn path_component(part: &str) -> bool {
    let alnum = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let bytes = part.as_bytes();
    if !bytes.first().is_some_and(alnum) || !bytes.last().is_some_and(alnum) {
        return false;
    }
    let mut separator = String::new();
    for &byte in bytes {
        if alnum(&byte) {
            let valid = matches!(separator.as_str(), "" | "." | "_" | "__")
                || separator.bytes().all(|b| b == b'-');
            if !valid {
                return false;
            }
            separator.clear();
        } else {
            separator.push(char::from(byte));
        }
    }
    true
}

/// What to write for a short name (`nvidia/cuda:12`, `ubuntu`) that Podman could not resolve
/// because no unqualified-search registry is set: its Docker Hub spelling.
pub fn fully_qualified(short: &str) -> String {
    if short.contains('/') {
        format!("docker.io/{short}")
    } else {
        format!("docker.io/library/{short}")
    }
}

/// The hint for Podman's "short-name did not resolve" error in `message`: the name written
/// out in full, or `None` when the message is about something else.
pub fn short_name_hint(message: &str) -> Option<String> {
    let at = message.find("short-name")?;
    let rest = message.get(at..)?;
    let name = rest
        .split('"')
        .nth(1)
        .filter(|name| !name.is_empty() && !name.contains(char::is_whitespace));
    Some(match name {
        Some(name) => format!(
            "no registry is configured to search for the short name {name}: write it fully qualified, {} (or list registries under unqualified-search-registries in ~/.config/containers/registries.conf)",
            fully_qualified(name)
        ),
        None => "write the image name fully qualified, e.g. docker.io/library/ubuntu:24.04 (or list registries under unqualified-search-registries in ~/.config/containers/registries.conf)".to_owned(),
    })
}

/// The longest name podlab accepts. A name becomes file and object names that have limits
/// of their own: the quadlet generator writes `NAME-build.service` and `NAME-image.service`
/// (the longest suffix podlab's unit sets derive, 14 bytes) into a directory, so NAME_MAX
/// (255) leaves 241; a notebook's token lives in the Podman secret `podlab-notebook-NAME`,
/// and Podman refuses secret names over 253 characters, which leaves 237. The staging files
/// of atomic writes (`.podlab-XXXXXX.tmp`) do not carry the name.
pub const NAME_MAX_LEN: usize = {
    let units = 255 - "-build.service".len();
    let secrets = 253 - "podlab-notebook-".len();
    if units < secrets { units } else { secrets }
};

/// The one validator for every name a user gives podlab (`--name`, and the NAME, SESSION and
/// POD arguments of every command): a container name as Podman accepts it,
/// `[a-zA-Z0-9][a-zA-Z0-9_.-]*`, at most [`NAME_MAX_LEN`] characters. It keeps `/`, `..`
/// and anything a unit file, a file name or a secret name could not hold out of every path
/// and object podlab derives from a name.
pub fn container_name(text: &str) -> Result<String, Invalid> {
    let mut bytes = text.bytes();
    let valid = bytes.next().is_some_and(|b| b.is_ascii_alphanumeric())
        && bytes.all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
    if !valid {
        return Err(Invalid::new(
            format!("invalid name {text:?}"),
            "use letters, digits, '_', '.' and '-', starting with a letter or digit",
        ));
    }
    if text.len() > NAME_MAX_LEN {
        return Err(Invalid::new(
            format!(
                "name {}... is {} characters long: podlab takes at most {NAME_MAX_LEN}",
                text.get(..16).unwrap_or(text),
                text.len()
            ),
            "pick a shorter --name",
        ));
    }
    Ok(text.to_owned())
}

/// A name the user gave, checked by [`container_name`]: command-line arguments of this type
/// (NAME, SESSION) cannot skip the validator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Name(String);

impl FromStr for Name {
    type Err = Invalid;

    fn from_str(text: &str) -> Result<Self, Invalid> {
        container_name(text).map(Self)
    }
}

impl std::ops::Deref for Name {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

/// [`container_name`] for operations that take a name from elsewhere than a flag (a unit
/// name from the project's folder, a `FILE|POD` argument that is not a file): the same rules,
/// as podlab's error.
pub fn check_name(text: &str) -> crate::Result<()> {
    container_name(text)
        .map(drop)
        .map_err(|invalid| crate::Error::user(invalid.message).hint(invalid.hint))
}

/// `--nodes`: how many machines train together, at least one.
pub fn node_count(text: &str) -> Result<u32, Invalid> {
    match text.parse::<u32>() {
        Ok(0) => Err(Invalid::new(
            "--nodes 0: a training run needs at least one node",
            "pass --nodes 1 for one machine, or the number of machines to train on",
        )),
        Ok(nodes) => Ok(nodes),
        Err(_) => Err(Invalid::new(
            format!("invalid node count {text:?}"),
            "give a whole number of nodes, such as --nodes 2",
        )),
    }
}

/// A Slurm partition name: `[A-Za-z0-9_.-]`, as `sinfo` lists them.
pub fn slurm_partition(text: &str) -> Result<String, Invalid> {
    let valid = !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
    if valid {
        Ok(text.to_owned())
    } else {
        Err(Invalid::new(
            format!("invalid partition name {text:?}"),
            "name a partition as sinfo lists it, such as --partition gpu",
        ))
    }
}

/// A Slurm time limit in one of sbatch's forms: `MIN`, `MIN:SEC`, `H:MIN:SEC`, `D-H`,
/// `D-H:MIN`, `D-H:MIN:SEC`.
pub fn slurm_time(text: &str) -> Result<String, Invalid> {
    let numbers = |part: &str, most: usize| {
        let fields: Vec<&str> = part.split(':').collect();
        fields.len() <= most
            && fields
                .iter()
                .all(|field| !field.is_empty() && field.bytes().all(|b| b.is_ascii_digit()))
    };
    let valid = match text.split_once('-') {
        Some((days, rest)) => numbers(days, 1) && numbers(rest, 3),
        None => numbers(text, 3),
    };
    if valid {
        Ok(text.to_owned())
    } else {
        Err(Invalid::new(
            format!("invalid time limit {text:?}"),
            "write minutes (90), H:MM:SS (12:00:00) or D-HH:MM:SS (2-00:00:00)",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_counts_partitions_and_time_limits() {
        assert_eq!(node_count("4"), Ok(4));
        let zero = node_count("0").unwrap_err();
        assert!(zero.message.contains("at least one node"), "{zero}");
        assert!(zero.hint.contains("--nodes 1"), "{zero}");
        assert!(node_count("-1").is_err() && node_count("two").is_err());
        assert_eq!(slurm_partition("gpu-a100_x.2"), Ok("gpu-a100_x.2".into()));
        for bad in ["", "gpu a", "gpu;rm", "gpu\n#SBATCH"] {
            assert!(slurm_partition(bad).is_err(), "{bad:?}");
        }
        for good in ["90", "90:30", "12:00:00", "2-12", "2-12:30", "2-12:30:00"] {
            assert_eq!(slurm_time(good), Ok(good.to_owned()));
        }
        for bad in ["", "1:2:3:4", "1-", "-1", "1h", "2-1:2:3:4", "1 ", "a:b"] {
            assert!(slurm_time(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn image_names_follow_the_reference_grammar() {
        for good in [
            "ubuntu",
            "ubuntu:24.04",
            "docker.io/library/ubuntu:24.04",
            "docker.io/nvidia/cuda:12.4.1-cudnn-runtime-ubuntu22.04",
            "nvcr.io/nvidia/pytorch:24.12-py3",
            "localhost/podlab-test/busybox:latest",
            "localhost:5000/a/b",
            "Registry.Example.COM:443/team/img__x:Tag_1",
            "quay.io/a/b@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            "a--b.c_d",
        ] {
            assert_eq!(image_name(good).as_deref(), Ok(good), "{good}");
        }
        for (bad, problem) in [
            ("", "empty"),
            ("UPPER/Case", "lowercase"),
            ("docker.io/Library/ubuntu", "lowercase"),
            ("my image", "path part"),
            ("a/-b", "path part"),
            ("a/b.", "path part"),
            ("a/b..c", "path part"),
            ("a:", "tag"),
            ("a:-x", "tag"),
            ("a@sha256:xyz", "digest"),
            ("bad_host.io:x/a", "registry"),
        ] {
            let err = image_name(bad).unwrap_err();
            assert!(err.message.contains(problem), "{bad}: {err}");
            assert_eq!(err.hint, IMAGE_NAME_RULE);
        }
    }

    #[test]
    fn a_short_name_that_did_not_resolve_gets_its_full_spelling() {
        let message = r#"creating build container: short-name "nvidia/cuda:12.4.1-cudnn-runtime-ubuntu22.04" did not resolve to an alias and no unqualified-search registries are defined in "/home/u/.config/containers/registries.conf""#;
        let hint = short_name_hint(message).unwrap();
        assert!(
            hint.contains("docker.io/nvidia/cuda:12.4.1-cudnn-runtime-ubuntu22.04"),
            "{hint}"
        );
        assert!(
            short_name_hint(r#"short-name "ubuntu" did not resolve"#)
                .unwrap()
                .contains("docker.io/library/ubuntu")
        );
        assert_eq!(short_name_hint("manifest unknown"), None);
    }

    #[test]
    fn sizes() {
        let gib = 1 << 30;
        assert_eq!("16g".parse(), Ok(ByteSize(16 * gib)));
        assert_eq!("16G".parse(), Ok(ByteSize(16 * gib)));
        assert_eq!("16GiB".parse(), Ok(ByteSize(16 * gib)));
        assert_eq!("16gb".parse(), Ok(ByteSize(16 * gib)));
        assert_eq!("512m".parse(), Ok(ByteSize(512 << 20)));
        assert_eq!("1073741824".parse(), Ok(ByteSize(gib)));
        assert_eq!("100b".parse(), Ok(ByteSize(100)));
        let bad = "16x".parse::<ByteSize>().unwrap_err();
        assert_eq!(bad.message, r#"invalid size "16x""#);
        assert!(bad.hint.contains("16g"));
        for text in [
            "",
            "g",
            "1.5g",
            "-1g",
            " 16g",
            "16 g",
            "0",
            "0g",
            "99999999999t",
        ] {
            assert!(text.parse::<ByteSize>().is_err(), "{text:?}");
        }
        assert_eq!(ByteSize(16 * gib).to_string(), "16g");
        assert_eq!(ByteSize(1536 << 20).to_string(), "1536m");
        assert_eq!(ByteSize(1000).to_string(), "1000");
    }

    #[test]
    fn shm_size_above_the_int64_limit_is_refused_where_it_is_parsed() {
        let max = i64::MAX.to_string();
        assert_eq!(max.parse(), Ok(ByteSize(i64::MAX.unsigned_abs())));
        assert_eq!("8388607t".parse(), Ok(ByteSize(8_388_607 << 40)));
        for text in [
            "9223372036854775808",
            "18446744073709551615",
            "8388608t",
            "99999999999t",
        ] {
            let err = text.parse::<ByteSize>().unwrap_err();
            assert!(err.message.contains("is too large"), "{text}: {err}");
            assert!(err.hint.contains("8388607t"), "{err}");
        }
    }

    #[test]
    fn a_host_path_holding_a_colon_is_named_with_the_podlab_toml_way_to_mount_it() {
        for text in ["/co:lon:/data:ro", "/co:lon:/data"] {
            let err = parse_volume(text).unwrap_err();
            assert!(err.message.contains("the host path holds a ':'"), "{err}");
            assert!(!err.message.contains("unsupported mount option"), "{err}");
            assert!(
                err.hint
                    .contains(r#"[[mounts]] host = "/co:lon", container = "/data""#),
                "{err}"
            );
        }
    }

    fn port(ip: &str, host: u16, container: u16, protocol: Protocol) -> Port {
        Port {
            host_ip: ip.parse().unwrap(),
            host_port: host,
            container_port: container,
            protocol,
        }
    }

    #[test]
    fn ports() {
        use Protocol::{Tcp, Udp};
        assert_eq!("8888".parse(), Ok(port("127.0.0.1", 8888, 8888, Tcp)));
        assert_eq!("8080:80".parse(), Ok(port("127.0.0.1", 8080, 80, Tcp)));
        assert_eq!(
            "0.0.0.0:6006:6006/udp".parse(),
            Ok(port("0.0.0.0", 6006, 6006, Udp))
        );
        assert_eq!("[::1]:8888:8888".parse(), Ok(port("::1", 8888, 8888, Tcp)));
        assert_eq!("[fe80::1]:1:2/tcp".parse(), Ok(port("fe80::1", 1, 2, Tcp)));
        for text in [
            "",
            "0",
            "70000",
            "a:1",
            "::1:8888:8888",
            "1.2.3:1:1",
            "[::1]8888",
            "[1.2.3.4]:1:1",
            "8888/sctp",
            "127.0.0.1::8888",
            "1:2:3:4",
        ] {
            assert!(text.parse::<Port>().is_err(), "{text:?}");
        }
        assert_eq!(
            port("::1", 8888, 8888, Tcp).to_string(),
            "[::1]:8888:8888/tcp"
        );
        assert_eq!(
            port("127.0.0.1", 1, 2, Udp).to_string(),
            "127.0.0.1:1:2/udp"
        );
    }

    #[test]
    fn gpus() {
        assert_eq!(parse_gpus("all"), Ok(GpuRequest::All));
        assert_eq!(parse_gpus("None"), Ok(GpuRequest::None));
        assert_eq!(
            parse_gpus("0,1,0"),
            Ok(GpuRequest::List(vec![
                GpuSelector::Index(0),
                GpuSelector::Index(1)
            ]))
        );
        assert_eq!(
            parse_gpus("GPU-8f6d-11aa"),
            Ok(GpuRequest::List(vec![GpuSelector::Uuid(
                "GPU-8f6d-11aa".into()
            )]))
        );
        for text in ["", "0,", "two", "GPU-", "GPU-xyz", "-1"] {
            assert!(parse_gpus(text).is_err(), "{text:?}");
        }
        let json = serde_json::to_string(&parse_gpus("0,GPU-ab").unwrap()).unwrap();
        assert_eq!(json, r#"[0,"GPU-ab"]"#);
        assert_eq!(
            serde_json::to_string(&GpuRequest::Auto).unwrap(),
            r#""auto""#
        );
    }

    #[test]
    fn user_mappings() {
        assert_eq!("auto".parse(), Ok(UserMapping::Auto));
        assert_eq!("keep-id".parse(), Ok(UserMapping::KeepId));
        assert_eq!(
            "1000:100".parse(),
            Ok(UserMapping::KeepIdTo {
                uid: 1000,
                gid: 100
            })
        );
        for text in ["", "1000", "a:b", "keepid", "1000:"] {
            assert!(text.parse::<UserMapping>().is_err(), "{text:?}");
        }
    }

    #[test]
    fn volumes() {
        assert_eq!(
            parse_volume("~/data:/data/"),
            Ok(Volume {
                host: "~/data".into(),
                container: "/data".into(),
                read_only: false
            })
        );
        assert!(parse_volume("/d:/data:ro").unwrap().read_only);
        assert!(!parse_volume("/d:/data:rw").unwrap().read_only);
        for text in [
            "/d",
            ":/data",
            "/d:data",
            "/d:/",
            "/d:/a/../b",
            "/d:/data:nocopy",
        ] {
            assert!(parse_volume(text).is_err(), "{text:?}");
        }
    }

    #[test]
    fn relabel_and_chown_options_are_refused_with_the_reason() {
        let err = parse_volume("~:/home:U").unwrap_err();
        assert!(
            err.message.contains(":U") && err.message.contains("chown"),
            "{err}"
        );
        for option in ["Z", "z", "ro,Z"] {
            let err = parse_volume(&format!("~/data:/data:{option}")).unwrap_err();
            assert!(err.message.contains("relabel"), "{err}");
            assert!(err.hint.contains("label=disable"), "{err}");
        }
    }

    #[test]
    fn name_limits_the_longest_accepted_name_fits_every_derived_name() {
        assert_eq!(NAME_MAX_LEN, 237);
        let longest = "a".repeat(NAME_MAX_LEN);
        assert!(container_name(&longest).is_ok());
        let err = container_name(&format!("{longest}a")).unwrap_err();
        assert!(err.message.contains("at most 237"), "{err}");
        // Every file podlab or the quadlet generator makes from the name fits NAME_MAX, and
        // the notebook's secret name fits Podman's limit.
        let dir = tempfile::tempdir().unwrap();
        for suffix in [
            ".container",
            ".service",
            "-build.service",
            "-image.service",
            "-pod.service",
            ".yaml",
        ] {
            std::fs::write(dir.path().join(format!("{longest}{suffix}")), "").unwrap();
        }
        assert!(format!("podlab-notebook-{longest}").len() <= 253);
        // 246 characters, the old limit, is refused with a clear message (it failed with
        // ENAMETOOLONG before).
        assert!(container_name(&"a".repeat(246)).is_err());
    }

    #[test]
    fn names() {
        assert!(container_name("job-1.a_b").is_ok());
        for text in ["", "-a", "a b", "a/b", "../evil", "..", ".a"] {
            assert!(container_name(text).is_err(), "{text:?}");
        }
        assert!(env_name("A").is_ok());
        assert!(env_name("").is_err());
        assert!(env_name("A=B").is_err());
    }
}
