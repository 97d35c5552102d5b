//! The Podman engine: everything podlab asks of Podman goes through the [`Engine`] trait.
//!
//! [`connect`] finds a live socket (or starts podlab's private service), and returns a
//! [`Connected`] engine that has read the server version once; [`Capabilities`] derived from
//! it answer every "can this Podman do X" question for the rest of the run. The real engine
//! ([`podman::PodmanApi`]) uses the `podman-api` crate; unit tests use a fake.

pub mod autostart;
pub mod build_context;
pub mod frames;
pub mod http;
pub mod image_cache;
pub mod kube;
pub mod local_version;
pub mod podman;
pub mod secrets;
pub mod socket;

use std::future::Future;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::capabilities::{Capabilities, PodmanVersion};
use crate::{Error, Result};
use autostart::{ServicePaths, ensure_service};
use socket::{CallerEnv, Probe, SocketOrigin, candidates, ping};

/// The server's version, as Podman reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServerVersion {
    pub podman: PodmanVersion,
    /// The libpod API version (`Libpod-Api-Version`).
    pub api: String,
}

/// What `podman info` says about the host side of the service.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct HostSummary {
    pub rootless: bool,
    /// `v1` or `v2`.
    pub cgroup_version: String,
    pub cgroup_manager: String,
    pub oci_runtime: String,
}

/// The calls podlab makes to Podman. Each grows as commands need them.
pub trait Engine {
    /// `GET /libpod/info`, reduced to what podlab uses.
    fn host_summary(&self) -> impl Future<Output = Result<HostSummary>> + Send;
    /// The image's default user and its id, or `None` when the image is not present.
    fn inspect_image(&self, image: &str)
    -> impl Future<Output = Result<Option<ImageFacts>>> + Send;
    /// A small text file from the image (its `/etc/passwd`), or `None` when it has none.
    fn image_file(
        &self,
        image: &str,
        path: &str,
    ) -> impl Future<Output = Result<Option<String>>> + Send;
    /// Podman's stat of each of `paths` in the image, from one probe container, without
    /// reading the files (`/usr/local/cuda/compat/libcuda.so.1` is 30 MB); `None` for a path
    /// that is missing. The answers are in the order of `paths`.
    fn image_paths(
        &self,
        image: &str,
        paths: &[&str],
    ) -> impl Future<Output = Result<Vec<Option<ImagePath>>>> + Send;
    /// `POST /containers/create` with a complete libpod body; returns the container id.
    fn create_container(
        &self,
        body: &serde_json::Value,
    ) -> impl Future<Output = Result<String>> + Send;
    /// Attaches to the container's stdio (before start, so no output is lost).
    fn attach(&self, id: &str, stdin: bool) -> impl Future<Output = Result<Stdio>> + Send;
    fn start_container(&self, id: &str) -> impl Future<Output = Result<()>> + Send;
    /// Waits until the container exits; its exit code.
    fn wait_container(&self, id: &str) -> impl Future<Output = Result<i32>> + Send;
    /// Stops (SIGTERM, then SIGKILL after `timeout_secs`) and removes the container.
    fn stop_and_remove(
        &self,
        id: &str,
        timeout_secs: u32,
    ) -> impl Future<Output = Result<()>> + Send;
    /// The containers carrying `label` (`key` or `key=value`).
    fn list_containers(
        &self,
        label: &str,
    ) -> impl Future<Output = Result<Vec<ContainerSummary>>> + Send;
    /// Tells the container's TTY its new size.
    fn resize(&self, id: &str, rows: u16, cols: u16) -> impl Future<Output = Result<()>> + Send;
    /// One container by name or id, or `None` when there is no such container.
    fn inspect_container(
        &self,
        name: &str,
    ) -> impl Future<Output = Result<Option<ContainerFacts>>> + Send;
    /// The whole libpod inspect document of a container or an image, or `None` when there is
    /// no such object: [`crate::session::inspected`] rebuilds a session from far more of it
    /// than [`ContainerFacts`] keeps.
    fn inspect_json(
        &self,
        object: Inspectable,
        name: &str,
    ) -> impl Future<Output = Result<Option<serde_json::Value>>> + Send;
    /// Stops the container (SIGTERM, then SIGKILL after `timeout_secs`); stopping a stopped
    /// container is not an error.
    fn stop_container(
        &self,
        id: &str,
        timeout_secs: u32,
    ) -> impl Future<Output = Result<()>> + Send;
    /// Removes the container; `force` stops a running one first.
    fn remove_container(&self, id: &str, force: bool) -> impl Future<Output = Result<()>> + Send;
    /// The container's output so far (and, with `follow`, until it exits), as Podman's
    /// multiplexed frames (see [`frames`]).
    fn logs(&self, id: &str, follow: bool) -> impl Future<Output = Result<Output>> + Send;
    /// Creates an exec session running `command` in the running container; its id. With
    /// `tty`, the command gets a TTY and our stdin; without, neither.
    fn exec_create(
        &self,
        id: &str,
        command: &[String],
        tty: bool,
    ) -> impl Future<Output = Result<String>> + Send;
    /// Starts the exec session; its output as multiplexed frames, or with `tty` (as created)
    /// the TTY's bytes both ways.
    fn exec_start(&self, exec_id: &str, tty: bool) -> impl Future<Output = Result<Stdio>> + Send;
    /// Sets the window size of an exec session's TTY.
    fn exec_resize(
        &self,
        exec_id: &str,
        rows: u16,
        cols: u16,
    ) -> impl Future<Output = Result<()>> + Send;
    /// The exit code of a finished exec session.
    fn exec_exit_code(&self, exec_id: &str) -> impl Future<Output = Result<i32>> + Send;
    /// Builds an image, passing each line of build output to `output` as it comes; the new
    /// image's id. A failed step is a user error carrying Podman's last error line.
    fn build_image(
        &self,
        request: &BuildRequest<'_>,
        output: &mut (dyn FnMut(&str) + Send),
    ) -> impl Future<Output = Result<String>> + Send;
    /// Pulls an image, passing each progress line to `progress`; the image's id. Errors that
    /// Podman reports inside the stream are errors: a user error (exit 1) when the image or
    /// name does not exist, an environment error otherwise.
    fn pull_image(
        &self,
        reference: &str,
        policy: PullPolicy,
        progress: &mut (dyn FnMut(&str) + Send),
    ) -> impl Future<Output = Result<String>> + Send;

    // --- podlab kube (see `kube`): plain libpod calls with a YAML body ------------------
    /// `POST /libpod/play/kube`: creates and starts the pods the YAML describes. Refusals
    /// are user errors carrying Podman's message.
    fn play_kube(&self, yaml: &str) -> impl Future<Output = Result<kube::PlayReport>> + Send;
    /// `DELETE /libpod/play/kube` with the YAML as the body: stops and removes its pods.
    fn down_kube(&self, yaml: &str) -> impl Future<Output = Result<kube::DownReport>> + Send;
    /// One pod by name, or `None` when there is no such pod.
    fn inspect_pod(
        &self,
        name: &str,
    ) -> impl Future<Output = Result<Option<kube::PodFacts>>> + Send;

    // --- podlab notebook (see `secrets`): a token in a Podman secret -----------------------
    /// `POST /libpod/secrets/create?name=NAME&labels=...` with `data` as the body; a name in
    /// use is a user error.
    fn create_secret(
        &self,
        name: &str,
        data: &[u8],
        labels: &std::collections::BTreeMap<String, String>,
    ) -> impl Future<Output = Result<()>> + Send;
    /// The secret's labels, or `None` when there is none (which secrets podlab made).
    fn secret_labels(
        &self,
        name: &str,
    ) -> impl Future<Output = Result<Option<std::collections::BTreeMap<String, String>>>> + Send;
    /// The secret's bytes (inspect with `showsecret=true`), or `None` when there is none.
    fn secret_data(&self, name: &str) -> impl Future<Output = Result<Option<SecretData>>> + Send;
    /// Removes the secret; `false` when there was none.
    fn remove_secret(&self, name: &str) -> impl Future<Output = Result<bool>> + Send;
}

/// A secret's data, as Podman shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretData {
    Shown(Vec<u8>),
    /// The secret exists, but this Podman never shows a secret's data (`showsecret` came in
    /// 4.5; Debian 12's 4.3.1 ignores it): only a container it was handed to can read it.
    Hidden,
}

/// What [`Engine::inspect_json`] inspects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inspectable {
    Container,
    Image,
}

impl Inspectable {
    /// The libpod path segment (`/libpod/containers/NAME/json`), also a word for messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Container => "containers",
            Self::Image => "images",
        }
    }
}

/// A one-way stream of bytes from Podman (logs).
pub type Output = Box<dyn tokio::io::AsyncRead + Unpin + Send>;

/// What podlab needs to know about one container.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ContainerFacts {
    pub id: String,
    pub name: String,
    /// `running`, `exited`, `created`, `stopping`, ...
    pub state: String,
    pub running: bool,
    pub exit_code: i32,
    /// Whether it was created with a TTY.
    pub tty: bool,
    pub labels: std::collections::BTreeMap<String, String>,
    /// `State.Health.Status` (`starting`, `healthy`, `unhealthy`); `None` without a check.
    pub health: Option<String>,
}

/// An image build: the Containerfile must lie inside the context directory, which is sent
/// to Podman as a tar archive, less what its `.containerignore` (else `.dockerignore`) leaves
/// out (see [`build_context`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildRequest<'a> {
    pub containerfile: &'a std::path::Path,
    pub context: &'a std::path::Path,
    pub args: &'a std::collections::BTreeMap<String, String>,
    pub tag: &'a str,
    pub no_cache: bool,
}

/// When a pull contacts the registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PullPolicy {
    /// Always ask the registry, as `podman pull` does.
    #[default]
    Always,
    /// Only when the image is not in the local store.
    Missing,
    /// When the registry has a newer image than the local one.
    Newer,
}

impl PullPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Always => "always",
            Self::Missing => "missing",
            Self::Newer => "newer",
        }
    }
}

/// A container's stdio stream: raw bytes with a TTY, Docker's multiplexed frames without.
pub type Stdio = Box<dyn AsyncStdio>;

/// Both directions of an attached stream.
pub trait AsyncStdio: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> AsyncStdio for T {}

/// What podlab needs to know about an image.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ImageFacts {
    pub id: String,
    /// `Config.User`: empty, a name, `uid` or `uid:gid`.
    pub user: String,
    /// `Config.Env`: `KEY=value` entries.
    pub env: Vec<String>,
}

/// A path that exists in an image.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ImagePath {
    /// Where it leads, as an absolute path: a symlink's target resolved (Podman's
    /// `linkTarget`), otherwise the path itself; `None` when Podman does not say.
    pub link_target: Option<String>,
}

/// One line of `podlab ps`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ContainerSummary {
    pub id: String,
    pub name: String,
    pub image: String,
    pub state: String,
    /// The exit code of an exited container (0 otherwise).
    pub exit_code: i32,
    /// Seconds since the epoch.
    pub created: i64,
    pub labels: std::collections::BTreeMap<String, String>,
}

/// How podlab reached its socket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Connection {
    pub socket: PathBuf,
    pub origin: SocketOrigin,
    /// The libpod API version from `_ping`.
    pub api_version: String,
    /// Set when the socket is podlab's private service (started by this run or an earlier
    /// one): its pid.
    pub started_pid: Option<u32>,
}

impl Connection {
    /// Whether the socket is podlab's private service (started by this run or an earlier one).
    pub fn autostarted(&self) -> bool {
        self.started_pid.is_some() || self.origin == SocketOrigin::PodlabService
    }
}

/// A live engine whose server version has been read once, from `_ping`'s
/// `Libpod-Api-Version` header: Podman's API version is its release version, and
/// `GET /libpod/version` would cost half a second (it gathers host information).
#[derive(Debug)]
pub struct Connected<E> {
    pub engine: E,
    pub connection: Connection,
    pub server: ServerVersion,
}

impl<E: Engine> Connected<E> {
    pub fn new(engine: E, connection: Connection) -> Result<Self> {
        let podman = connection.api_version.parse().map_err(|_| {
            Error::env(format!(
                "podman reported an unreadable API version {:?}",
                connection.api_version
            ))
            .hint("upgrade podman to 4.4 or newer")
        })?;
        let server = ServerVersion {
            podman,
            api: connection.api_version.clone(),
        };
        Ok(Self {
            engine,
            connection,
            server,
        })
    }

    pub fn capabilities(&self) -> Capabilities {
        Capabilities::for_version(self.server.podman)
    }
}

/// How to reach Podman, from the command line.
#[derive(Debug, Clone, Default)]
pub struct ConnectOptions {
    pub url: Option<String>,
    /// Start podlab's private service when no socket answers.
    pub autostart: bool,
}

/// Finds a live Podman socket: an explicit one, the user's (or root's) default, a private
/// service from an earlier run, or a newly started private service.
pub async fn find_socket(options: &ConnectOptions, caller: &CallerEnv) -> Result<Connection> {
    let found = candidates(caller)?;
    let explicit = found.first().is_some_and(|e| e.origin.is_explicit());
    if let Some(dir) = caller.runtime_dir.as_ref().filter(|_| !explicit) {
        socket::vet_runtime_dir(dir)?;
    }
    for endpoint in found {
        if endpoint.origin.is_explicit() {
            socket::warn_foreign_explicit_socket(&endpoint.path);
        } else {
            socket::vet_socket_owner(&endpoint.path)?;
        }
        match ping(&endpoint.path).await? {
            Probe::Alive { api_version } => {
                tracing::debug!(socket = %endpoint.path.display(), origin = ?endpoint.origin, "podman answers");
                return Ok(Connection {
                    socket: endpoint.path,
                    origin: endpoint.origin,
                    api_version,
                    started_pid: None,
                });
            }
            Probe::Absent if endpoint.origin.is_explicit() => {
                return Err(Error::env(format!(
                    "no podman service answers on {} (from {})",
                    endpoint.path.display(),
                    endpoint.origin.describe()
                ))
                .hint(format!(
                    "start one: podman system service --time=0 unix://{} &",
                    endpoint.path.display()
                )));
            }
            Probe::Absent => tracing::debug!(socket = %endpoint.path.display(), "nothing listens"),
        }
    }
    let paths = ServicePaths::new(caller.podlab_runtime_dir()?);
    if !options.autostart {
        if let Probe::Alive { api_version } = ping(&paths.socket).await? {
            return Ok(Connection {
                started_pid: autostart::service_pid(&paths),
                socket: paths.socket,
                origin: SocketOrigin::PodlabService,
                api_version,
            });
        }
        return Err(Error::env("no podman socket answers and --no-autostart is set")
            .hint("start the user socket (systemctl --user enable --now podman.socket, or podman system service --time=0 &), or drop --no-autostart"));
    }
    let started = ensure_service(&paths).await?;
    Ok(Connection {
        socket: paths.socket,
        origin: SocketOrigin::PodlabService,
        api_version: started.api_version,
        started_pid: started.pid,
    })
}

/// The hint for a container that could not publish its ports (Podman says so on start or,
/// for a container attached first, on attach), or `None` for any other failure.
pub fn port_failure_hint(message: &str) -> Option<&'static str> {
    let lower = message.to_lowercase();
    if lower.contains("address already in use") {
        Some("another process holds that port: pick another with -p HOST:CTR")
    } else if lower.contains("privileged port")
        || (lower.contains("bind port") && lower.contains("permission denied"))
    {
        Some(
            "rootless Podman cannot bind a host port below net.ipv4.ip_unprivileged_port_start (1024 by default): publish a port above 1024 (-p 8080:80), or lower that limit: sudo sysctl net.ipv4.ip_unprivileged_port_start=80",
        )
    } else {
        None
    }
}

/// Connects the real engine.
pub async fn connect(options: &ConnectOptions) -> Result<Connected<podman::PodmanApi>> {
    let caller = CallerEnv::from_process(options.url.clone());
    let connection = find_socket(options, &caller).await?;
    let create_lock = caller
        .podlab_runtime_dir()
        .ok()
        .map(|dir| dir.join(podman::CREATE_LOCK));
    let engine = podman::PodmanApi::new(&connection.socket).with_create_lock(create_lock);
    Connected::new(engine, connection)
}

#[cfg(test)]
pub mod fake {
    //! An in-memory engine for unit tests: records every call, answers from its fields.
    use std::collections::BTreeMap;
    use std::sync::{Arc, Mutex};

    use tokio::io::AsyncWriteExt;

    use super::{
        BuildRequest, ContainerFacts, ContainerSummary, Engine, HostSummary, ImageFacts, ImagePath,
        Output, PodmanVersion, PullPolicy, Result, Stdio,
    };
    use crate::Error;

    /// A secret's data and labels.
    pub type Secret = (Vec<u8>, BTreeMap<String, String>);

    #[derive(Debug, Clone, Default)]
    pub struct FakeEngine {
        pub version: Option<PodmanVersion>,
        pub host: HostSummary,
        pub images: BTreeMap<String, ImageFacts>,
        /// What the container prints on stdout (sent as one multiplexed frame).
        pub output: Vec<u8>,
        pub exit_code: i32,
        /// Makes `start_container` fail with this message.
        pub start_failure: Option<String>,
        /// Makes `wait_container` fail with this message (a socket lost under a running job).
        pub wait_failure: Option<String>,
        /// Containers by name, for `inspect_container` and `list_containers`.
        pub containers: BTreeMap<String, ContainerFacts>,
        /// Lines a build or pull reports, in order.
        pub stream_lines: Vec<String>,
        /// Makes `build_image` and `pull_image` fail with this error after the lines.
        pub stream_failure: Option<Error>,
        pub calls: Arc<Mutex<Vec<String>>>,
        pub bodies: Arc<Mutex<Vec<serde_json::Value>>>,
        /// Inspect documents for `inspect_json`, by `containers/NAME` or `images/NAME`.
        pub inspect_documents: BTreeMap<String, serde_json::Value>,
        /// Pods by name, for `inspect_pod`; `kube play` and `kube down` only record.
        pub pods: BTreeMap<String, super::kube::PodFacts>,
        /// Paths in images, by `IMAGE:PATH`, for `image_paths`; any other path is missing.
        pub image_paths: BTreeMap<String, ImagePath>,
        /// Makes `image_paths` fail with this message (a probe container Podman refuses).
        pub probe_failure: Option<String>,
        /// Secrets by name, shared between clones (`create_secret` adds, `remove_secret` drops).
        pub secrets: Arc<Mutex<BTreeMap<String, Secret>>>,
        /// Shows no secret's data, as Podman before 4.5.
        pub hides_secret_data: bool,
    }

    impl FakeEngine {
        fn record(&self, call: String) {
            self.calls
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push(call);
        }

        /// `output` as one stdout frame, readable from the returned end.
        fn framed_output(&self) -> tokio::io::DuplexStream {
            let (mut ours, theirs) = tokio::io::duplex(64 * 1024);
            let mut frame = vec![1, 0, 0, 0];
            frame.extend_from_slice(&u32::try_from(self.output.len()).unwrap_or(0).to_be_bytes());
            frame.extend_from_slice(&self.output);
            tokio::spawn(async move {
                let _ = ours.write_all(&frame).await;
                let _ = ours.shutdown().await;
            });
            theirs
        }

        fn replay(&self, sink: &mut (dyn FnMut(&str) + Send)) -> Result<String> {
            for line in &self.stream_lines {
                sink(line);
            }
            match &self.stream_failure {
                Some(err) => Err(err.clone()),
                None => Ok("5ca1ab1e".to_owned()),
            }
        }

        pub fn calls(&self) -> Vec<String> {
            self.calls
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .clone()
        }
    }

    impl Engine for FakeEngine {
        async fn host_summary(&self) -> Result<HostSummary> {
            Ok(self.host.clone())
        }

        async fn inspect_image(&self, image: &str) -> Result<Option<ImageFacts>> {
            self.record(format!("inspect {image}"));
            Ok(self.images.get(image).cloned())
        }

        async fn image_file(&self, image: &str, path: &str) -> Result<Option<String>> {
            self.record(format!("read {image}:{path}"));
            Ok(None)
        }

        async fn image_paths(&self, image: &str, paths: &[&str]) -> Result<Vec<Option<ImagePath>>> {
            self.record(format!("stat {image}:{}", paths.join(",")));
            if let Some(message) = &self.probe_failure {
                return Err(Error::env(message.clone()));
            }
            Ok(paths
                .iter()
                .map(|path| self.image_paths.get(&format!("{image}:{path}")).cloned())
                .collect())
        }

        async fn create_container(&self, body: &serde_json::Value) -> Result<String> {
            self.record("create".to_owned());
            self.bodies
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push(body.clone());
            Ok("c0ffee".to_owned())
        }

        async fn attach(&self, id: &str, stdin: bool) -> Result<Stdio> {
            self.record(format!("attach {id} stdin={stdin}"));
            Ok(Box::new(self.framed_output()))
        }

        async fn start_container(&self, id: &str) -> Result<()> {
            self.record(format!("start {id}"));
            match &self.start_failure {
                Some(message) => Err(Error::env(message.clone())),
                None => Ok(()),
            }
        }

        async fn wait_container(&self, id: &str) -> Result<i32> {
            self.record(format!("wait {id}"));
            match &self.wait_failure {
                Some(message) => Err(Error::env(message.clone())),
                None => Ok(self.exit_code),
            }
        }

        async fn stop_and_remove(&self, id: &str, timeout_secs: u32) -> Result<()> {
            self.record(format!("remove {id} timeout={timeout_secs}"));
            Ok(())
        }

        async fn list_containers(&self, label: &str) -> Result<Vec<ContainerSummary>> {
            self.record(format!("list {label}"));
            let (key, value) = label
                .split_once('=')
                .map_or((label, None), |(key, value)| (key, Some(value)));
            Ok(self
                .containers
                .values()
                .filter(|facts| match (facts.labels.get(key), value) {
                    (Some(found), Some(wanted)) => found == wanted,
                    (found, None) => found.is_some(),
                    (None, Some(_)) => false,
                })
                .map(|facts| ContainerSummary {
                    id: facts.id.clone(),
                    name: facts.name.clone(),
                    image: "localhost/img".to_owned(),
                    state: facts.state.clone(),
                    exit_code: facts.exit_code,
                    created: 1_700_000_000,
                    labels: facts.labels.clone(),
                })
                .collect())
        }

        async fn resize(&self, id: &str, rows: u16, cols: u16) -> Result<()> {
            self.record(format!("resize {id} {rows}x{cols}"));
            Ok(())
        }

        async fn inspect_container(&self, name: &str) -> Result<Option<ContainerFacts>> {
            self.record(format!("inspect-container {name}"));
            Ok(self.containers.get(name).cloned())
        }

        async fn inspect_json(
            &self,
            object: super::Inspectable,
            name: &str,
        ) -> Result<Option<serde_json::Value>> {
            let key = format!("{}/{name}", object.as_str());
            self.record(format!("inspect-json {key}"));
            Ok(self.inspect_documents.get(&key).cloned())
        }

        async fn stop_container(&self, id: &str, timeout_secs: u32) -> Result<()> {
            self.record(format!("stop {id} timeout={timeout_secs}"));
            Ok(())
        }

        async fn remove_container(&self, id: &str, force: bool) -> Result<()> {
            self.record(format!("rm {id} force={force}"));
            Ok(())
        }

        async fn logs(&self, id: &str, follow: bool) -> Result<Output> {
            self.record(format!("logs {id} follow={follow}"));
            Ok(Box::new(self.framed_output()))
        }

        async fn exec_create(&self, id: &str, command: &[String], tty: bool) -> Result<String> {
            self.record(format!("exec {id} tty={tty} {}", command.join(" ")));
            Ok("e0".to_owned())
        }

        async fn exec_start(&self, exec_id: &str, tty: bool) -> Result<Stdio> {
            self.record(format!("exec-start {exec_id} tty={tty}"));
            Ok(Box::new(self.framed_output()))
        }

        async fn exec_resize(&self, exec_id: &str, rows: u16, cols: u16) -> Result<()> {
            self.record(format!("exec-resize {exec_id} {rows}x{cols}"));
            Ok(())
        }

        async fn exec_exit_code(&self, exec_id: &str) -> Result<i32> {
            self.record(format!("exec-inspect {exec_id}"));
            Ok(self.exit_code)
        }

        async fn build_image(
            &self,
            request: &BuildRequest<'_>,
            output: &mut (dyn FnMut(&str) + Send),
        ) -> Result<String> {
            let args: Vec<String> = request
                .args
                .iter()
                .map(|(key, value)| format!("{key}={value}"))
                .collect();
            self.record(format!(
                "build {} {} -t {} args={}",
                request.context.display(),
                request.containerfile.display(),
                request.tag,
                args.join(",")
            ));
            self.replay(output)
        }

        async fn pull_image(
            &self,
            reference: &str,
            policy: PullPolicy,
            progress: &mut (dyn FnMut(&str) + Send),
        ) -> Result<String> {
            self.record(format!("pull {reference} policy={}", policy.as_str()));
            self.replay(progress)
        }

        // --- podlab kube -------------------------------------------------------------------
        async fn play_kube(&self, yaml: &str) -> Result<super::kube::PlayReport> {
            self.record(format!("play-kube {} bytes", yaml.len()));
            Ok(super::kube::PlayReport::default())
        }

        async fn down_kube(&self, yaml: &str) -> Result<super::kube::DownReport> {
            self.record(format!("down-kube {} bytes", yaml.len()));
            Ok(super::kube::DownReport::default())
        }

        async fn inspect_pod(&self, name: &str) -> Result<Option<super::kube::PodFacts>> {
            self.record(format!("inspect-pod {name}"));
            Ok(self.pods.get(name).cloned())
        }

        // --- podlab notebook ---------------------------------------------------------------
        async fn create_secret(
            &self,
            name: &str,
            data: &[u8],
            labels: &BTreeMap<String, String>,
        ) -> Result<()> {
            self.record(format!("secret-create {name}"));
            let mut secrets = self
                .secrets
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if secrets.contains_key(name) {
                return Err(Error::user(format!(
                    "a podman secret named {name} already exists"
                )));
            }
            secrets.insert(name.to_owned(), (data.to_vec(), labels.clone()));
            Ok(())
        }

        async fn secret_labels(&self, name: &str) -> Result<Option<BTreeMap<String, String>>> {
            self.record(format!("secret-labels {name}"));
            Ok(self
                .secrets
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .get(name)
                .map(|(_, labels)| labels.clone()))
        }

        async fn secret_data(&self, name: &str) -> Result<Option<super::SecretData>> {
            self.record(format!("secret-inspect {name}"));
            Ok(self
                .secrets
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .get(name)
                .map(|(data, _)| {
                    if self.hides_secret_data {
                        super::SecretData::Hidden
                    } else {
                        super::SecretData::Shown(data.clone())
                    }
                }))
        }

        async fn remove_secret(&self, name: &str) -> Result<bool> {
            self.record(format!("secret-rm {name}"));
            Ok(self
                .secrets
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .remove(name)
                .is_some())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_failures_get_a_hint_for_their_cause() {
        let pasta = "preparing container 0171 for attach: pasta failed with exit code 1:\nFailed to bind port 80 (Permission denied) for option '-t 127.0.0.1/80-80:80-80'";
        assert!(
            port_failure_hint(pasta)
                .unwrap()
                .contains("ip_unprivileged_port_start")
        );
        let rootlessport = "rootlessport cannot expose privileged port 80, you can add 'net.ipv4.ip_unprivileged_port_start=80' to /etc/sysctl.conf";
        assert!(
            port_failure_hint(rootlessport)
                .unwrap()
                .contains("above 1024")
        );
        assert!(
            port_failure_hint("listen tcp 127.0.0.1:8080: bind: address already in use")
                .unwrap()
                .contains("another process")
        );
        assert_eq!(port_failure_hint("OCI runtime error"), None);
    }
    use crate::capabilities::Feature;

    #[tokio::test]
    async fn connected_reads_version_once_and_derives_capabilities() {
        let engine = fake::FakeEngine {
            version: Some(PodmanVersion::new(5, 4, 2)),
            ..fake::FakeEngine::default()
        };
        let connection = Connection {
            socket: "/run/user/1000/podman/podman.sock".into(),
            origin: SocketOrigin::UserDefault,
            api_version: "5.4.2".into(),
            started_pid: None,
        };
        let connected = Connected::new(engine, connection).unwrap();
        assert_eq!(connected.server.podman.to_string(), "5.4.2");
        assert!(connected.capabilities().has(Feature::KubeCdiLimits));
        assert!(!connected.capabilities().has(Feature::CdiSpecDirs));
    }

    #[tokio::test]
    async fn explicit_socket_that_is_down_is_an_error_not_an_autostart() {
        let dir = tempfile::tempdir().unwrap();
        let caller = CallerEnv {
            url_flag: Some(format!("unix://{}/none.sock", dir.path().display())),
            runtime_dir: Some(dir.path().to_owned()),
            ..CallerEnv::default()
        };
        let options = ConnectOptions {
            url: caller.url_flag.clone(),
            autostart: true,
        };
        let err = find_socket(&options, &caller)
            .await
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("no podman service answers on"), "{err}");
        assert!(!dir.path().join("podlab").exists());
    }

    #[tokio::test]
    async fn no_autostart_says_how_to_start_a_socket() {
        let dir = tempfile::tempdir().unwrap();
        let caller = CallerEnv {
            runtime_dir: Some(dir.path().to_owned()),
            ..CallerEnv::default()
        };
        let options = ConnectOptions {
            url: None,
            autostart: false,
        };
        let err = find_socket(&options, &caller)
            .await
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("--no-autostart"), "{err}");
        assert!(err.contains("hint: "), "{err}");
    }
}
