//! The Podman engine: everything podlab asks of Podman goes through the [`Engine`] trait.
//!
//! [`connect`] finds a live socket (or starts podlab's private service), and returns a
//! [`Connected`] engine that has read the server version once; [`Capabilities`] derived from
//! it answer every "can this Podman do X" question for the rest of the run. The real engine
//! ([`podman::PodmanApi`]) uses the `podman-api` crate; unit tests use a fake.

pub mod autostart;
pub mod podman;
pub mod socket;

use std::future::Future;
use std::path::PathBuf;

use serde::Serialize;

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
    /// `GET /libpod/version`.
    fn podman_version(&self) -> impl Future<Output = Result<PodmanVersion>> + Send;
    /// `GET /libpod/info`, reduced to what podlab uses.
    fn host_summary(&self) -> impl Future<Output = Result<HostSummary>> + Send;
}

/// How podlab reached its socket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Connection {
    pub socket: PathBuf,
    pub origin: SocketOrigin,
    /// The libpod API version from `_ping`.
    pub api_version: String,
    /// Set when this run started podlab's private service: its pid.
    pub started_pid: Option<u32>,
}

impl Connection {
    pub fn autostarted(&self) -> bool {
        self.started_pid.is_some()
    }
}

/// A live engine whose server version has been read once.
#[derive(Debug)]
pub struct Connected<E> {
    pub engine: E,
    pub connection: Connection,
    pub server: ServerVersion,
}

impl<E: Engine> Connected<E> {
    /// Reads the server version through `engine`.
    pub async fn new(engine: E, connection: Connection) -> Result<Self> {
        let podman = engine.podman_version().await?;
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
    for endpoint in candidates(caller)? {
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
                socket: paths.socket,
                origin: SocketOrigin::PodlabService,
                api_version,
                started_pid: None,
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

/// Connects the real engine.
pub async fn connect(options: &ConnectOptions) -> Result<Connected<podman::PodmanApi>> {
    let caller = CallerEnv::from_process(options.url.clone());
    let connection = find_socket(options, &caller).await?;
    let engine = podman::PodmanApi::new(&connection.socket);
    Connected::new(engine, connection).await
}

#[cfg(test)]
pub mod fake {
    //! An in-memory engine for unit tests.
    use super::{Engine, HostSummary, PodmanVersion, Result};

    #[derive(Debug, Clone)]
    pub struct FakeEngine {
        pub version: PodmanVersion,
        pub host: HostSummary,
    }

    impl Engine for FakeEngine {
        async fn podman_version(&self) -> Result<PodmanVersion> {
            Ok(self.version)
        }

        async fn host_summary(&self) -> Result<HostSummary> {
            Ok(self.host.clone())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capabilities::Feature;

    #[tokio::test]
    async fn connected_reads_version_once_and_derives_capabilities() {
        let engine = fake::FakeEngine {
            version: PodmanVersion::new(5, 4, 2),
            host: HostSummary::default(),
        };
        let connection = Connection {
            socket: "/run/user/1000/podman/podman.sock".into(),
            origin: SocketOrigin::UserDefault,
            api_version: "5.4.2".into(),
            started_pid: None,
        };
        let connected = Connected::new(engine, connection).await.unwrap();
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
