//! The real [`Engine`]: the `podman-api` crate over the Unix socket.
//!
//! Known defects of podman-api 0.11 against Podman 5.x (see the project's field notes) are
//! worked around here, never in callers: `adjust_api_version()` would downgrade requests to
//! `/v1.41/libpod`, so it is never called; the liveness probe is done in [`super::socket`].

use std::path::Path;

use super::{Engine, HostSummary};
use crate::capabilities::PodmanVersion;
use crate::{Error, Result};

/// The engine backed by `podman_api::Podman`.
#[derive(Debug)]
pub struct PodmanApi {
    client: podman_api::Podman,
}

impl PodmanApi {
    pub fn new(socket: &Path) -> Self {
        Self {
            client: podman_api::Podman::unix(socket),
        }
    }
}

fn api_error(call: &str, err: &podman_api::Error) -> Error {
    Error::env(format!("podman API call {call} failed: {err}"))
        .hint("check the service: podman info (run podlab -v for details)")
}

impl Engine for PodmanApi {
    async fn podman_version(&self) -> Result<PodmanVersion> {
        let version = self
            .client
            .version()
            .await
            .map_err(|err| api_error("GET /libpod/version", &err))?;
        let text = version.version.ok_or_else(|| {
            Error::env("podman's version reply has no Version field")
                .hint("upgrade podman to 4.4 or newer")
        })?;
        text.parse()
            .map_err(|_| Error::env(format!("podman reported an unreadable version {text:?}")))
    }

    async fn host_summary(&self) -> Result<HostSummary> {
        let info = self
            .client
            .info()
            .await
            .map_err(|err| api_error("GET /libpod/info", &err))?;
        let Some(host) = info.host else {
            return Err(Error::env("podman's info reply has no host section")
                .hint("upgrade podman to 4.4 or newer"));
        };
        Ok(HostSummary {
            rootless: host
                .security
                .and_then(|security| security.rootless)
                .unwrap_or(false),
            cgroup_version: host.cgroup_version.unwrap_or_default(),
            cgroup_manager: host.cgroup_manager.unwrap_or_default(),
            oci_runtime: host
                .oci_runtime
                .and_then(|runtime| runtime.name)
                .unwrap_or_default(),
        })
    }
}
