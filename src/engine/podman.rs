//! The real [`Engine`]: `podman-api` for the calls it gets right, plain libpod HTTP
//! ([`super::http`]) for the container lifecycle.
//!
//! Known defects of podman-api 0.11 against Podman 5.x (see the project's field notes) are
//! worked around here, never in callers: `adjust_api_version()` would downgrade requests to
//! `/v1.41/libpod`, so it is never called; the liveness probe is done in [`super::socket`].

use std::collections::BTreeMap;
use std::path::Path;

use hyper::{Method, StatusCode};
use serde::Deserialize;

use super::http::{Libpod, query_escape};
use super::{ContainerSummary, Engine, HostSummary, ImageFacts, Stdio};
use crate::{Error, Result};

/// The engine backed by `podman_api::Podman` and direct libpod calls.
#[derive(Debug)]
pub struct PodmanApi {
    client: podman_api::Podman,
    libpod: Libpod,
}

impl PodmanApi {
    pub fn new(socket: &Path) -> Self {
        Self {
            client: podman_api::Podman::unix(socket),
            libpod: Libpod::new(socket),
        }
    }
}

fn api_error(call: &str, err: &podman_api::Error) -> Error {
    Error::env(format!("podman API call {call} failed: {err}"))
        .hint("check the service: podman info (run podlab -v for details)")
}

fn decode<T: for<'de> Deserialize<'de>>(call: &str, bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes)
        .map_err(|err| Error::env(format!("podman's answer to {call} is unreadable: {err}")))
}

#[derive(Deserialize)]
struct ImageInspect {
    #[serde(rename = "Id")]
    id: String,
    #[serde(rename = "Config", default)]
    config: Option<ImageConfig>,
}

#[derive(Deserialize)]
struct ImageConfig {
    #[serde(rename = "User", default)]
    user: Option<String>,
}

#[derive(Deserialize)]
struct Created {
    #[serde(rename = "Id")]
    id: String,
}

#[derive(Deserialize)]
struct ListEntry {
    #[serde(rename = "Id")]
    id: String,
    #[serde(rename = "Names", default)]
    names: Vec<String>,
    #[serde(rename = "Image", default)]
    image: String,
    #[serde(rename = "State", default)]
    state: String,
    #[serde(rename = "Created", default)]
    created: i64,
    #[serde(rename = "Labels", default)]
    labels: Option<BTreeMap<String, String>>,
}

impl Engine for PodmanApi {
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

    async fn inspect_image(&self, image: &str) -> Result<Option<ImageFacts>> {
        let path = format!("/images/{}/json", query_escape(image));
        match self.libpod.call(Method::GET, &path, None).await? {
            Ok(bytes) => {
                let inspect: ImageInspect = decode("image inspect", &bytes)?;
                Ok(Some(ImageFacts {
                    id: inspect.id,
                    user: inspect
                        .config
                        .and_then(|config| config.user)
                        .unwrap_or_default(),
                }))
            }
            Err(failure) if failure.status == StatusCode::NOT_FOUND => Ok(None),
            Err(failure) => Err(Error::env(format!(
                "cannot inspect image {image}: {}",
                failure.message
            ))),
        }
    }

    async fn image_file(&self, image: &str, path: &str) -> Result<Option<String>> {
        // The API reads files only from containers: create one (never started), copy, remove.
        let body = serde_json::json!({ "image": image, "command": ["true"], "labels": {"io.podlab.kind": "probe"} });
        let id = self.create_container(&body).await?;
        let archive = self
            .libpod
            .call(
                Method::GET,
                &format!("/containers/{id}/archive?path={}", query_escape(path)),
                None,
            )
            .await;
        self.stop_and_remove(&id, 0).await?;
        Ok(archive?.ok().and_then(|tar| first_file_in_tar(&tar)))
    }

    async fn create_container(&self, body: &serde_json::Value) -> Result<String> {
        match self
            .libpod
            .call(Method::POST, "/containers/create", Some(body))
            .await?
        {
            Ok(bytes) => Ok(decode::<Created>("container create", &bytes)?.id),
            Err(failure) if failure.status == StatusCode::NOT_FOUND => Err(Error::user(format!(
                "cannot create the container: {}",
                failure.message
            ))
            .hint("build or pull the image first: podlab build, or podlab pull IMAGE")),
            Err(failure) if failure.status == StatusCode::CONFLICT => Err(Error::user(format!(
                "cannot create the container: {}",
                failure.message
            ))
            .hint("choose another --name, or remove the old one: podlab rm NAME")),
            Err(failure) => Err(Error::env(format!(
                "cannot create the container: {}",
                failure.message
            ))
            .hint("run with -v to see the request podlab sent")),
        }
    }

    async fn attach(&self, id: &str, stdin: bool) -> Result<Stdio> {
        let path =
            format!("/containers/{id}/attach?stream=true&stdout=true&stderr=true&stdin={stdin}");
        Ok(Box::new(self.libpod.upgrade(&path, None).await?))
    }

    async fn start_container(&self, id: &str) -> Result<()> {
        match self
            .libpod
            .call(Method::POST, &format!("/containers/{id}/start"), None)
            .await?
        {
            Ok(_) => Ok(()),
            Err(failure) => {
                let hint = if failure
                    .message
                    .to_lowercase()
                    .contains("address already in use")
                {
                    "another process holds that port: pick another with -p HOST:CTR"
                } else {
                    "see the message above; podlab removed the container"
                };
                Err(
                    Error::env(format!("cannot start the container: {}", failure.message))
                        .hint(hint),
                )
            }
        }
    }

    async fn wait_container(&self, id: &str) -> Result<i32> {
        let bytes = self
            .libpod
            .expect(
                Method::POST,
                &format!("/containers/{id}/wait?condition=exited&interval=10ms"),
                None,
            )
            .await?;
        decode("container wait", &bytes)
    }

    async fn stop_and_remove(&self, id: &str, timeout_secs: u32) -> Result<()> {
        let path = format!("/containers/{id}?force=true&timeout={timeout_secs}");
        match self.libpod.call(Method::DELETE, &path, None).await? {
            Err(failure) if failure.status != StatusCode::NOT_FOUND => Err(Error::env(format!(
                "cannot remove container {id}: {}",
                failure.message
            ))
            .hint(format!("remove it by hand: podman rm -f {id}"))),
            _ => Ok(()),
        }
    }

    async fn list_containers(&self, label: &str) -> Result<Vec<ContainerSummary>> {
        let filters = serde_json::json!({ "label": [label] }).to_string();
        let path = format!(
            "/containers/json?all=true&filters={}",
            query_escape(&filters)
        );
        let bytes = self.libpod.expect(Method::GET, &path, None).await?;
        let entries: Vec<ListEntry> = decode("container list", &bytes)?;
        Ok(entries
            .into_iter()
            .map(|entry| ContainerSummary {
                name: entry
                    .names
                    .first()
                    .cloned()
                    .unwrap_or_else(|| entry.id.clone()),
                id: entry.id,
                image: entry.image,
                state: entry.state,
                created: entry.created,
                labels: entry.labels.unwrap_or_default(),
            })
            .collect())
    }

    async fn resize(&self, id: &str, rows: u16, cols: u16) -> Result<()> {
        let path = format!("/containers/{id}/resize?h={rows}&w={cols}");
        // A resize racing the container's exit is harmless.
        let _ = self.libpod.call(Method::POST, &path, None).await?;
        Ok(())
    }
}

/// The contents of the first regular file in a tar archive (ustar headers: name, octal size
/// at 124, type flag at 156), as text.
fn first_file_in_tar(tar: &[u8]) -> Option<String> {
    let mut offset = 0usize;
    while let Some(header) = tar.get(offset..offset + 512) {
        if header.iter().all(|byte| *byte == 0) {
            return None;
        }
        let size_field = std::str::from_utf8(header.get(124..136)?).ok()?;
        let size =
            usize::from_str_radix(size_field.trim_matches(|c: char| c == '\0' || c == ' '), 8)
                .ok()?;
        let kind = *header.get(156)?;
        let data = offset + 512;
        if kind == b'0' || kind == 0 {
            return tar
                .get(data..data + size)
                .map(|bytes| String::from_utf8_lossy(bytes).into_owned());
        }
        offset = data + size.div_ceil(512) * 512;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_first_file_of_a_real_tar() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("passwd"),
            "dev:x:1000:1000::/home/dev:/bin/sh\n",
        )
        .unwrap();
        let tar = std::process::Command::new("tar")
            .arg("-C")
            .arg(dir.path())
            .args(["-cf", "-", "passwd"])
            .output()
            .unwrap();
        assert_eq!(
            first_file_in_tar(&tar.stdout).as_deref(),
            Some("dev:x:1000:1000::/home/dev:/bin/sh\n")
        );
        assert_eq!(first_file_in_tar(&[0u8; 1024]), None);
        assert_eq!(first_file_in_tar(b"garbage"), None);
    }
}
