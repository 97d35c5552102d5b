//! The real [`Engine`]: `podman-api` for the calls it gets right, plain libpod HTTP
//! ([`super::http`]) for the container lifecycle.
//!
//! Known defects of podman-api 0.11 against Podman 5.x (see the project's field notes) are
//! worked around here, never in callers: `adjust_api_version()` would downgrade requests to
//! `/v1.41/libpod`, so it is never called; the liveness probe is done in [`super::socket`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine as _;
use hyper::{Method, StatusCode};
use serde::Deserialize;

use futures_util::StreamExt;

use super::http::{ApiFailure, FileBody, Libpod, query_escape};
use super::{
    BuildRequest, ContainerFacts, ContainerSummary, Engine, HostSummary, ImageFacts, ImagePath,
    Inspectable, Output, PullPolicy, Stdio,
};
use crate::{Error, Result};
use tokio::io::AsyncBufReadExt as _;

/// The engine backed by `podman_api::Podman` and direct libpod calls.
#[derive(Debug)]
pub struct PodmanApi {
    client: podman_api::Podman,
    libpod: Libpod,
    /// Held around each container create (see [`CREATE_LOCK`]); `None`: not serialized.
    create_lock: Option<PathBuf>,
}

/// The lock file, in `$XDG_RUNTIME_DIR/podlab`, that serializes this user's podlab processes'
/// container creates. Podman 5.4 (built with libsubid, as Debian builds it) reads
/// `/etc/subuid` through libsubid for every keep-id container it creates, and libsubid is not
/// safe to call from two threads: two creates at once (two `podlab run -d` started together,
/// a sweep's jobs) corrupted the service's heap. It aborted (`free(): invalid pointer` in
/// `subid_get_gid_ranges`, taking every client's connection with it), or passed runc a user
/// namespace with no mapping ("User namespaces enabled, but no user mapping found"). A create
/// takes milliseconds, so waiting for one costs little.
pub const CREATE_LOCK: &str = "create.lock";

/// How long a create waits for another podlab's before failing.
const CREATE_LOCK_TIMEOUT: Duration = Duration::from_secs(60);

impl PodmanApi {
    pub fn new(socket: &Path) -> Self {
        Self {
            client: podman_api::Podman::unix(socket),
            libpod: Libpod::new(socket),
            create_lock: None,
        }
    }

    /// Serializes container creates on the lock file `path` (see [`CREATE_LOCK`]).
    #[must_use]
    pub fn with_create_lock(mut self, path: Option<PathBuf>) -> Self {
        self.create_lock = path;
        self
    }

    /// The create lock, taken; `None` when there is none (its directory cannot be made).
    async fn lock_creates(&self) -> Result<Option<std::fs::File>> {
        let Some(path) = &self.create_lock else {
            return Ok(None);
        };
        if let Some(dir) = path.parent() {
            if super::autostart::create_private_dir(dir).is_err() {
                return Ok(None);
            }
        }
        crate::host::atomic::lock(path, CREATE_LOCK_TIMEOUT)
            .await
            .map(Some)
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
    #[serde(rename = "Env", default)]
    env: Option<Vec<String>>,
}

/// The `X-Docker-Container-Path-Stat` header of `HEAD /containers/{id}/archive`: base64 JSON.
#[derive(Deserialize)]
struct PathStat {
    #[serde(rename = "linkTarget", default)]
    link_target: String,
}

/// `X-Docker-Container-Path-Stat` of `path`: base64 JSON, or a refusal. Only a 404 means
/// missing (an answer that is remembered); another refusal is an error.
fn path_stat(
    path: &str,
    stat: std::result::Result<Option<String>, ApiFailure>,
) -> Result<Option<ImagePath>> {
    let encoded = match stat {
        Ok(Some(encoded)) => encoded,
        Ok(None) => {
            return Err(Error::env(format!(
                "podman's stat of {path} in the image came without its header"
            )));
        }
        Err(failure) if failure.status == StatusCode::NOT_FOUND => return Ok(None),
        Err(failure) => {
            return Err(Error::env(format!(
                "podman could not stat {path} in the image: {}",
                failure.message
            )));
        }
    };
    let json = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .map_err(|err| Error::env(format!("podman's stat of {path} is unreadable: {err}")))?;
    let stat: PathStat = decode("archive stat", &json)?;
    Ok(Some(ImagePath {
        link_target: Some(stat.link_target).filter(|target| !target.is_empty()),
    }))
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
    /// RFC 3339 text from libpod (`2026-01-02T03:04:05.6Z`), seconds from the compat API.
    #[serde(rename = "Created", default, deserialize_with = "epoch_seconds")]
    created: i64,
    #[serde(rename = "ExitCode", default)]
    exit_code: i32,
    #[serde(rename = "Labels", default)]
    labels: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize)]
struct ContainerInspect {
    #[serde(rename = "Id")]
    id: String,
    #[serde(rename = "Name", default)]
    name: String,
    #[serde(rename = "State", default)]
    state: Option<InspectState>,
    #[serde(rename = "Config", default)]
    config: Option<InspectConfig>,
}

#[derive(Deserialize)]
struct InspectState {
    #[serde(rename = "Status", default)]
    status: String,
    #[serde(rename = "Running", default)]
    running: bool,
    #[serde(rename = "ExitCode", default)]
    exit_code: i32,
    #[serde(rename = "Health", default)]
    health: Option<InspectHealth>,
}

#[derive(Deserialize)]
struct InspectHealth {
    #[serde(rename = "Status", default)]
    status: String,
}

#[derive(Deserialize)]
struct InspectConfig {
    #[serde(rename = "Tty", default)]
    tty: bool,
    #[serde(rename = "Labels", default)]
    labels: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize)]
struct ExecInspect {
    #[serde(rename = "ExitCode", default)]
    exit_code: Option<i32>,
    #[serde(rename = "Running", default)]
    running: bool,
}

/// A time as seconds since the epoch: a number, or RFC 3339 text.
fn epoch_seconds<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<i64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Time {
        Seconds(i64),
        Text(String),
    }
    Ok(match Time::deserialize(deserializer)? {
        Time::Seconds(seconds) => seconds,
        Time::Text(text) => parse_rfc3339(&text).unwrap_or(0),
    })
}

/// `2026-01-02T03:04:05.123456789Z` or `...+01:00` as seconds since the epoch.
fn parse_rfc3339(text: &str) -> Option<i64> {
    let number = |range: std::ops::Range<usize>| -> Option<i64> { text.get(range)?.parse().ok() };
    let (year, month, day) = (number(0..4)?, number(5..7)?, number(8..10)?);
    let (hour, minute, second) = (number(11..13)?, number(14..16)?, number(17..19)?);
    if text.get(4..5)? != "-" || !text.get(10..11)?.eq_ignore_ascii_case("T") {
        return None;
    }
    let rest = text
        .get(19..)?
        .trim_start_matches(|c: char| c == '.' || c.is_ascii_digit());
    let offset = match rest {
        "Z" | "z" => 0,
        _ => {
            let sign = match rest.get(..1)? {
                "+" => 1,
                "-" => -1,
                _ => return None,
            };
            let hours: i64 = rest.get(1..3)?.parse().ok()?;
            let minutes: i64 = rest.get(4..6)?.parse().ok()?;
            sign * (hours * 3600 + minutes * 60)
        }
    };
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + hour * 3600 + minute * 60 + second - offset)
}

/// One line of `POST /libpod/build` output.
#[derive(Debug, PartialEq, Eq)]
enum BuildEvent {
    /// `{"stream": ...}`: build output.
    Output(String),
    /// `{"error": ..., "errorDetail": {"message": ...}}`: the failed step's message.
    Failed(String),
    /// Anything else (`{"aux": ...}`, blank lines).
    Other,
}

#[derive(Deserialize)]
struct BuildLine {
    #[serde(default)]
    stream: Option<String>,
    #[serde(default)]
    error: Option<String>,
    #[serde(rename = "errorDetail", default)]
    error_detail: Option<BuildErrorDetail>,
}

#[derive(Deserialize)]
struct BuildErrorDetail {
    #[serde(default)]
    message: Option<String>,
}

fn build_event(line: &str) -> Result<BuildEvent> {
    if line.trim().is_empty() {
        return Ok(BuildEvent::Other);
    }
    let parsed: BuildLine = serde_json::from_str(line).map_err(|err| {
        Error::env(format!(
            "podman's build output is unreadable ({err}): {line}"
        ))
        .hint("check the service: podman info (run podlab -v for details)")
    })?;
    let error = [
        parsed.error,
        parsed.error_detail.and_then(|detail| detail.message),
    ]
    .into_iter()
    .flatten()
    .map(|text| text.trim().to_owned())
    .find(|text| !text.is_empty());
    Ok(match (error, parsed.stream) {
        (Some(text), _) => BuildEvent::Failed(text),
        (None, Some(text)) => BuildEvent::Output(text),
        (None, None) => BuildEvent::Other,
    })
}

/// Whether a pull error says the image or its name does not exist (the user's mistake)
/// rather than that the registry could not be reached.
fn pull_error_is_unknown_image(message: &str) -> bool {
    let lower = message.to_ascii_lowercase();
    [
        "manifest unknown",
        "name unknown",
        "not found",
        "does not exist",
        "short-name",
        "invalid reference format",
        "requested access to the resource is denied",
    ]
    .iter()
    .any(|needle| lower.contains(needle))
}

/// Whether `line` is an image id (64 hex digits), which a build prints last.
fn is_image_id(line: &str) -> bool {
    line.len() == 64 && line.bytes().all(|b| b.is_ascii_hexdigit())
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
                let (user, env) = inspect
                    .config
                    .map(|config| (config.user, config.env))
                    .unwrap_or_default();
                Ok(Some(ImageFacts {
                    id: inspect.id,
                    user: user.unwrap_or_default(),
                    env: env.unwrap_or_default(),
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

    async fn image_paths(&self, image: &str, paths: &[&str]) -> Result<Vec<Option<ImagePath>>> {
        // As image_file, but HEAD: Podman states each path (a link's target resolved, as an
        // absolute path) in a header and sends no file.
        let body = serde_json::json!({ "image": image, "command": ["true"], "labels": {"io.podlab.kind": "probe"} });
        let id = self.create_container(&body).await?;
        let mut answers = Vec::with_capacity(paths.len());
        for path in paths {
            let stat = self
                .libpod
                .head(
                    &format!("/containers/{id}/archive?path={}", query_escape(path)),
                    "X-Docker-Container-Path-Stat",
                )
                .await;
            answers.push(stat.and_then(|stat| path_stat(path, stat)));
        }
        self.stop_and_remove(&id, 0).await?;
        answers.into_iter().collect()
    }

    async fn create_container(&self, body: &serde_json::Value) -> Result<String> {
        let created = {
            let _lock = self.lock_creates().await?;
            self.libpod
                .call(Method::POST, "/containers/create", Some(body))
                .await?
        };
        match created {
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
            Err(failure) => Err(super::http::start_failure(
                "cannot start the container",
                &failure.message,
            )),
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
                exit_code: entry.exit_code,
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

    async fn inspect_container(&self, name: &str) -> Result<Option<ContainerFacts>> {
        let path = format!("/containers/{}/json", query_escape(name));
        match self.libpod.call(Method::GET, &path, None).await? {
            Ok(bytes) => {
                let inspect: ContainerInspect = decode("container inspect", &bytes)?;
                let state = inspect.state.unwrap_or(InspectState {
                    status: String::new(),
                    running: false,
                    exit_code: 0,
                    health: None,
                });
                let (tty, labels) = inspect
                    .config
                    .map(|config| (config.tty, config.labels.unwrap_or_default()))
                    .unwrap_or_default();
                Ok(Some(ContainerFacts {
                    name: inspect.name.trim_start_matches('/').to_owned(),
                    id: inspect.id,
                    state: state.status,
                    running: state.running,
                    exit_code: state.exit_code,
                    tty,
                    labels,
                    // Podman reports an empty status for a container without a check.
                    health: state
                        .health
                        .map(|health| health.status)
                        .filter(|status| !status.is_empty()),
                }))
            }
            Err(failure) if failure.status == StatusCode::NOT_FOUND => Ok(None),
            Err(failure) => Err(Error::env(format!(
                "cannot inspect container {name}: {}",
                failure.message
            ))
            .hint("check podman's own view: podman ps -a")),
        }
    }

    async fn inspect_json(
        &self,
        object: Inspectable,
        name: &str,
    ) -> Result<Option<serde_json::Value>> {
        let kind = object.as_str();
        let path = format!("/{kind}/{}/json", query_escape(name));
        match self.libpod.call(Method::GET, &path, None).await? {
            Ok(bytes) => decode(&format!("{kind} inspect"), &bytes).map(Some),
            Err(failure) if failure.status == StatusCode::NOT_FOUND => Ok(None),
            Err(failure) => Err(Error::env(format!(
                "cannot inspect {name} ({kind}): {}",
                failure.message
            ))
            .hint(format!("check podman's own view: podman inspect {name}"))),
        }
    }

    async fn stop_container(&self, id: &str, timeout_secs: u32) -> Result<()> {
        let path = format!("/containers/{id}/stop?timeout={timeout_secs}");
        match self.libpod.call(Method::POST, &path, None).await? {
            // 304: it was not running.
            Err(failure) if failure.status != StatusCode::NOT_MODIFIED => Err(Error::env(format!(
                "cannot stop container {id}: {}",
                failure.message
            ))
            .hint(format!("stop it by hand: podman stop {id}"))),
            _ => Ok(()),
        }
    }

    async fn remove_container(&self, id: &str, force: bool) -> Result<()> {
        let path = format!("/containers/{id}?force={force}");
        match self.libpod.call(Method::DELETE, &path, None).await? {
            Ok(_) => Ok(()),
            Err(failure) if failure.message.contains("without force") => Err(Error::user(format!(
                "cannot remove container {id}: it is running"
            ))
            .hint("stop it first (podlab stop NAME), or remove it anyway: podlab rm -f NAME")),
            Err(failure) => Err(Error::env(format!(
                "cannot remove container {id}: {}",
                failure.message
            ))
            .hint(format!("remove it by hand: podman rm -f {id}"))),
        }
    }

    async fn logs(&self, id: &str, follow: bool) -> Result<Output> {
        let path = format!("/containers/{id}/logs?follow={follow}&stdout=true&stderr=true");
        match self.libpod.stream(Method::GET, &path, None).await? {
            Ok(body) => Ok(Box::new(body)),
            Err(failure) => Err(Error::env(format!(
                "cannot read the logs of container {id}: {}",
                failure.message
            ))
            .hint(format!("check podman's own view: podman logs {id}"))),
        }
    }

    async fn exec_create(&self, id: &str, command: &[String], tty: bool) -> Result<String> {
        let body = serde_json::json!({
            "Cmd": command,
            "AttachStdin": tty,
            "AttachStdout": true,
            "AttachStderr": true,
            "Tty": tty,
        });
        let path = format!("/containers/{id}/exec");
        match self.libpod.call(Method::POST, &path, Some(&body)).await? {
            Ok(bytes) => Ok(decode::<Created>("exec create", &bytes)?.id),
            Err(failure) if failure.status == StatusCode::CONFLICT => Err(Error::user(format!(
                "cannot run a command in container {id}: {}",
                failure.message
            ))
            .hint("exec needs a running session: see podlab ps")),
            Err(failure) => Err(Error::env(format!(
                "cannot run a command in container {id}: {}",
                failure.message
            ))
            .hint("check the service: podlab doctor")),
        }
    }

    async fn exec_start(&self, exec_id: &str, tty: bool) -> Result<Stdio> {
        let body = serde_json::json!({ "Detach": false, "Tty": tty });
        let path = format!("/exec/{exec_id}/start");
        Ok(Box::new(self.libpod.upgrade(&path, Some(&body)).await?))
    }

    async fn exec_resize(&self, exec_id: &str, rows: u16, cols: u16) -> Result<()> {
        let path = format!("/exec/{exec_id}/resize?h={rows}&w={cols}");
        // A resize racing the command's exit is harmless.
        let _ = self.libpod.call(Method::POST, &path, None).await?;
        Ok(())
    }

    async fn exec_exit_code(&self, exec_id: &str) -> Result<i32> {
        let path = format!("/exec/{exec_id}/json");
        // The output stream ends when the process exits; Podman may record the exit code a
        // moment later.
        for _ in 0..100 {
            let bytes = self.libpod.expect(Method::GET, &path, None).await?;
            let inspect: ExecInspect = decode("exec inspect", &bytes)?;
            match inspect.exit_code {
                Some(code) if !inspect.running => return Ok(code),
                _ => tokio::time::sleep(std::time::Duration::from_millis(50)).await,
            }
        }
        Err(Error::env(format!(
            "exec session {exec_id} has no exit code after its output ended"
        ))
        .hint("check podman's own view: podman ps -a"))
    }

    async fn build_image(
        &self,
        request: &BuildRequest<'_>,
        output: &mut (dyn FnMut(&str) + Send),
    ) -> Result<String> {
        let dockerfile = containerfile_in_context(request.containerfile, request.context)?;
        let context = request.context.to_owned();
        let relative = std::path::PathBuf::from(&dockerfile);
        let packed =
            tokio::task::spawn_blocking(move || super::build_context::pack(&context, &relative))
                .await
                .map_err(|err| Error::env(format!("packing the build context failed: {err}")))??;
        tracing::info!(
            "build context {}: {} entries, {} bytes; paths left out by {}: {}",
            request.context.display(),
            packed.entries,
            packed.size,
            packed.ignore_file.unwrap_or("no ignore file"),
            packed.ignored
        );
        let args = serde_json::to_string(request.args)
            .map_err(|err| Error::env(format!("cannot encode the build args: {err}")))?;
        // The query podman-api's ImageBuildOpts sent, less its client-side `path`.
        let path = format!(
            "/build?dockerfile={}&t={}&buildargs={}&nocache={}",
            query_escape(&dockerfile),
            query_escape(request.tag),
            query_escape(&args),
            request.no_cache
        );
        let body = FileBody::new(packed.file, packed.size);
        let reader = match self
            .libpod
            .upload(Method::POST, &path, "application/x-tar", body)
            .await?
        {
            Ok(reader) => reader,
            Err(failure) => {
                return Err(
                    Error::env(format!("podman refused the build: {}", failure.message))
                        .hint("check the service: podman info (run podlab -v for details)"),
                );
            }
        };
        let mut lines = tokio::io::BufReader::new(reader).lines();
        let mut image_id = None;
        loop {
            let line = lines.next_line().await.map_err(|err| {
                Error::env(format!("the build's output broke off: {err}"))
                    .hint("check the service (podlab doctor) and run again")
            })?;
            let Some(line) = line else { break };
            match build_event(&line)? {
                BuildEvent::Output(text) => {
                    let trimmed = text.trim_end();
                    // The id goes to stdout once, as the result, not to the log too.
                    if is_image_id(trimmed) {
                        image_id = Some(trimmed.to_owned());
                    } else {
                        output(&text);
                    }
                }
                BuildEvent::Failed(text) => return Err(build_failed(&text)),
                BuildEvent::Other => {}
            }
        }
        image_id.ok_or_else(|| {
            Error::env("the build ended without naming an image")
                .hint("see the build output above; check podman's own view: podman images")
        })
    }

    async fn pull_image(
        &self,
        reference: &str,
        policy: PullPolicy,
        progress: &mut (dyn FnMut(&str) + Send),
    ) -> Result<String> {
        let policy = match policy {
            PullPolicy::Always => podman_api::opts::PullPolicy::Always,
            PullPolicy::Missing => podman_api::opts::PullPolicy::Missing,
            PullPolicy::Newer => podman_api::opts::PullPolicy::Newer,
        };
        let opts = podman_api::opts::PullOpts::builder()
            .reference(reference)
            .policy(policy)
            .build();
        let images = self.client.images();
        let mut stream = images.pull(&opts);
        let mut image_id = None;
        while let Some(item) = stream.next().await {
            let report = match item {
                Ok(report) => report,
                Err(podman_api::Error::Fault { code, message }) if code.is_client_error() => {
                    return Err(pull_failed(reference, &message, true));
                }
                Err(err) => return Err(api_error("POST /libpod/images/pull", &err)),
            };
            // Podman reports a failed pull inside a 200 stream.
            if let Some(message) = report.error {
                let unknown = pull_error_is_unknown_image(&message);
                return Err(pull_failed(reference, message.trim(), unknown));
            }
            if let Some(line) = &report.stream {
                progress(line);
            }
            if let Some(id) = report.id {
                image_id = Some(id);
            }
        }
        image_id.ok_or_else(|| {
            Error::env(format!(
                "the pull of {reference} ended without naming an image"
            ))
            .hint(format!("check podman's own view: podman pull {reference}"))
        })
    }

    // --- podlab kube: plain libpod calls (see `super::kube`) -------------------------------
    async fn play_kube(&self, yaml: &str) -> Result<super::kube::PlayReport> {
        super::kube::play(&self.libpod, yaml).await
    }

    async fn down_kube(&self, yaml: &str) -> Result<super::kube::DownReport> {
        super::kube::down(&self.libpod, yaml).await
    }

    async fn inspect_pod(&self, name: &str) -> Result<Option<super::kube::PodFacts>> {
        super::kube::inspect_pod(&self.libpod, name).await
    }

    // --- podlab notebook: plain libpod calls (see `super::secrets`) ------------------------
    async fn create_secret(
        &self,
        name: &str,
        data: &[u8],
        labels: &std::collections::BTreeMap<String, String>,
    ) -> Result<()> {
        super::secrets::create(&self.libpod, name, data, labels).await
    }

    async fn secret_labels(
        &self,
        name: &str,
    ) -> Result<Option<std::collections::BTreeMap<String, String>>> {
        super::secrets::labels(&self.libpod, name).await
    }

    async fn secret_data(&self, name: &str) -> Result<Option<super::SecretData>> {
        super::secrets::data(&self.libpod, name).await
    }

    async fn remove_secret(&self, name: &str) -> Result<bool> {
        super::secrets::remove(&self.libpod, name).await
    }
}

fn pull_failed(reference: &str, message: &str, unknown: bool) -> Error {
    if unknown {
        Error::user(format!("cannot pull {reference}: {message}")).hint(
            crate::session::values::short_name_hint(message).unwrap_or_else(|| {
                "check the name: a full reference such as docker.io/library/ubuntu:24.04 (podman search NAME lists candidates)".to_owned()
            }),
        )
    } else {
        Error::env(format!("cannot pull {reference}: {message}"))
            .hint("check the network and the registry (podman pull gives the same answer)")
    }
}

/// A failed build: the user's Containerfile (a step, a short name no registry resolves), or
/// a registry out of reach while pulling a base image (the environment).
fn build_failed(text: &str) -> Error {
    if let Some(hint) = crate::session::values::short_name_hint(text) {
        return Error::user(format!("build failed: {text}"))
            .hint(format!("in the Containerfile's FROM, {hint}"));
    }
    if !pull_error_is_unknown_image(text) && registry_unreachable(text) {
        return Error::env(format!("build failed: {text}")).hint(
            "a base image could not be pulled: check the network and the registry (podman pull IMAGE gives the same answer)",
        );
    }
    Error::user(format!("build failed: {text}"))
        .hint("fix the step shown above in the Containerfile, then run podlab build again")
}

/// Whether a pull error says the registry could not be reached.
fn registry_unreachable(message: &str) -> bool {
    let lower = message.to_ascii_lowercase();
    [
        "pinging container registry",
        "dial tcp",
        "no such host",
        "connection refused",
        "i/o timeout",
    ]
    .iter()
    .any(|needle| lower.contains(needle))
}

/// The Containerfile's path inside the context, which is all the build API can name.
fn containerfile_in_context(containerfile: &Path, context: &Path) -> Result<String> {
    let canonical = |path: &Path, what: &str| {
        path.canonicalize().map_err(|err| {
            Error::user(format!("cannot read the {what} {}: {err}", path.display()))
                .hint("fix the path in [build] (podlab.toml) or the flag")
        })
    };
    let file = canonical(containerfile, "Containerfile")?;
    let dir = canonical(context, "build context")?;
    match file.strip_prefix(&dir) {
        Ok(relative) => Ok(relative.display().to_string()),
        Err(_) => Err(Error::user(format!(
            "the Containerfile {} is outside the build context {}",
            containerfile.display(),
            context.display()
        ))
        .hint("the build API reads the Containerfile from the context: move it into the context, or widen the context")),
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

    /// Two `podlab run -d` started together crashed Podman 5.4's service (libsubid, which
    /// keep-id creates call, is not thread-safe): this user's podlab processes now take turns
    /// to create, on a lock file in their private runtime directory.
    #[tokio::test]
    async fn two_creates_at_once_take_turns_as_podmans_libsubid_is_not_thread_safe() {
        let dir = tempfile::tempdir().unwrap();
        let private = dir.path().join("podlab");
        let api = PodmanApi::new(Path::new("/nonexistent/podman.sock"))
            .with_create_lock(Some(private.join(CREATE_LOCK)));
        let first = api.lock_creates().await.unwrap();
        assert!(first.is_some());
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(&private).unwrap().permissions(),
        );
        assert_eq!(mode & 0o777, 0o700);
        let waiting = tokio::time::timeout(Duration::from_millis(300), api.lock_creates()).await;
        assert!(
            waiting.is_err(),
            "the second create must wait for the first"
        );
        drop(first);
        assert!(api.lock_creates().await.unwrap().is_some());
        // Without a runtime directory there is nothing to lock, and nothing waits.
        let unlocked = PodmanApi::new(Path::new("/nonexistent/podman.sock"));
        assert!(unlocked.lock_creates().await.unwrap().is_none());
    }

    /// What a probe remembers must be what the image holds: only a 404 is "missing"; a
    /// refused stat is an error (not remembered), never a missing path.
    #[test]
    fn only_a_404_stat_means_a_path_is_missing() {
        // Podman's header for /lib64/ld-linux-x86-64.so.2 in the glibc test image.
        let header = base64::engine::general_purpose::STANDARD.encode(
            r#"{"name":"ld-linux-x86-64.so.2","size":46,"mode":134218239,"mtime":"2026-12-05T05:38:03Z","isDir":false,"linkTarget":"/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"}"#,
        );
        let path = "/lib64/ld-linux-x86-64.so.2";
        assert_eq!(
            path_stat(path, Ok(Some(header))).unwrap(),
            Some(ImagePath {
                link_target: Some("/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2".into())
            })
        );
        let refused = |status| ApiFailure {
            status,
            message: "refused".into(),
        };
        assert_eq!(
            path_stat(path, Err(refused(StatusCode::NOT_FOUND))).unwrap(),
            None
        );
        for failure in [Err(refused(StatusCode::INTERNAL_SERVER_ERROR)), Ok(None)] {
            assert!(path_stat(path, failure).is_err());
        }
        assert!(path_stat(path, Ok(Some("not base64!".into()))).is_err());
    }

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

    #[test]
    fn reads_libpod_and_compat_creation_times() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            parse_rfc3339("2026-11-23T06:36:47.378287649Z"),
            Some(1_795_415_807)
        );
        assert_eq!(
            parse_rfc3339("2026-11-23T07:36:47+01:00"),
            Some(1_795_415_807)
        );
        assert_eq!(parse_rfc3339("2000-02-29T12:00:00Z"), Some(951_825_600));
        assert_eq!(parse_rfc3339("yesterday"), None);
        let entries: Vec<ListEntry> = serde_json::from_str(
            r#"[{"Id":"a","Created":"2026-11-23T06:36:47.3Z","ExitCode":3},{"Id":"b","Created":1795415807}]"#,
        )
        .unwrap();
        assert_eq!(entries[0].created, 1_795_415_807);
        assert_eq!(entries[0].exit_code, 3);
        assert_eq!(entries[1].created, 1_795_415_807);
    }

    #[test]
    fn build_output_lines_are_read_like_podman_writes_them() {
        assert_eq!(
            build_event(r#"{"stream":"STEP 1/2: FROM x\n"}"#).unwrap(),
            BuildEvent::Output("STEP 1/2: FROM x\n".to_owned())
        );
        assert_eq!(
            build_event(
                r#"{"error":"building at STEP \"RUN exit 3\": exit status 3\n","errorDetail":{"message":"building at STEP \"RUN exit 3\": exit status 3\n"}}"#
            )
            .unwrap(),
            BuildEvent::Failed("building at STEP \"RUN exit 3\": exit status 3".to_owned())
        );
        assert_eq!(
            build_event(r#"{"errorDetail":{"message":"only here"}}"#).unwrap(),
            BuildEvent::Failed("only here".to_owned())
        );
        assert_eq!(
            build_event(r#"{"aux":{"ID":"sha256:ab"}}"#).unwrap(),
            BuildEvent::Other
        );
        assert_eq!(build_event("").unwrap(), BuildEvent::Other);
        assert_eq!(build_event("not json").unwrap_err().exit_code(), 2);
        assert!(is_image_id(&"a".repeat(64)));
        assert!(!is_image_id("Successfully tagged localhost/x:latest"));
    }

    #[test]
    fn pull_errors_are_classified() {
        assert!(pull_error_is_unknown_image(
            "initializing source docker://quay.io/x/y:z: reading manifest z in quay.io/x/y: manifest unknown"
        ));
        assert!(pull_error_is_unknown_image(
            "short-name \"nope:latest\" did not resolve to an alias"
        ));
        assert!(!pull_error_is_unknown_image(
            "pinging container registry localhost:1: dial tcp 127.0.0.1:1: connect: connection refused"
        ));
        assert_eq!(pull_failed("x", "manifest unknown", true).exit_code(), 1);
        let unreachable = build_failed(
            "creating build container: initializing source docker://nvidia/cuda:12: pinging container registry registry-1.docker.io: Get \"https://registry-1.docker.io/v2/\": dial tcp: lookup registry-1.docker.io: no such host",
        );
        assert_eq!(unreachable.exit_code(), 2);
        assert!(unreachable.hint_text().unwrap().contains("network"));
        let short = build_failed(r#"short-name "nvidia/cuda:12" did not resolve to an alias"#);
        assert_eq!(short.exit_code(), 1);
        assert!(
            short
                .hint_text()
                .unwrap()
                .contains("docker.io/nvidia/cuda:12")
        );
        assert_eq!(build_failed("exit status 3").exit_code(), 1);
        assert_eq!(pull_failed("x", "connection refused", false).exit_code(), 2);
    }

    #[test]
    fn the_containerfile_must_be_inside_the_context() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("ctx/sub")).unwrap();
        std::fs::write(dir.path().join("ctx/sub/Containerfile"), "FROM x\n").unwrap();
        std::fs::write(dir.path().join("Outside"), "FROM x\n").unwrap();
        let ctx = dir.path().join("ctx");
        assert_eq!(
            containerfile_in_context(&ctx.join("sub/Containerfile"), &ctx).unwrap(),
            "sub/Containerfile"
        );
        let err = containerfile_in_context(&dir.path().join("Outside"), &ctx).unwrap_err();
        assert!(err.message().contains("outside the build context"), "{err}");
        assert_eq!(err.exit_code(), 1);
    }
}
