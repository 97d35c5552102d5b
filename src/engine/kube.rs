//! `podman kube play` and `kube down` over the API, and pod inspection for them.
//!
//! These are plain libpod calls ([`Libpod::call_raw`]) rather than `podman-api`'s: its
//! `remove_kubernetes_pods()` sends no YAML body, so Podman removes nothing (see the field
//! notes), and the same call has to be made by hand anyway. Podman's answers are reduced to
//! what `podlab kube` prints; its refusals become errors carrying the server's own message,
//! never the raw JSON.

use std::collections::BTreeMap;

use hyper::{Method, StatusCode};
use serde::Deserialize;

use super::http::{Libpod, query_escape};
use crate::{Error, Result};

/// The media type Podman wants for a kube YAML body.
const YAML: &str = "application/x-yaml";

/// What `POST /libpod/play/kube` reports.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PlayReport {
    pub pods: Vec<PlayedPod>,
}

/// One pod that `kube play` created.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PlayedPod {
    pub id: String,
    /// Container ids.
    pub containers: Vec<String>,
    /// Containers that were created but failed to start (a bad command, an unresolvable CDI
    /// device): Podman answers 200 and reports them here.
    pub errors: Vec<String>,
}

/// What `DELETE /libpod/play/kube` reports: the pods it stopped and removed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DownReport {
    /// Pod ids removed, with the number of containers each had (its infra container too).
    pub removed: Vec<(String, usize)>,
    /// Errors Podman reported for single pods.
    pub errors: Vec<String>,
}

/// What podlab needs to know about one pod.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PodFacts {
    pub id: String,
    pub name: String,
    /// `Running`, `Exited`, `Created`, `Degraded`, ...
    pub state: String,
    pub labels: BTreeMap<String, String>,
    /// Container names (the infra container too).
    pub containers: Vec<String>,
}

#[derive(Deserialize)]
struct RawPlay {
    #[serde(rename = "Pods", default)]
    pods: Option<Vec<RawPlayedPod>>,
}

#[derive(Deserialize)]
struct RawPlayedPod {
    #[serde(rename = "ID", default)]
    id: String,
    #[serde(rename = "Containers", default)]
    containers: Option<Vec<String>>,
    #[serde(rename = "ContainerErrors", default)]
    container_errors: Option<Vec<String>>,
}

#[derive(Deserialize)]
struct RawDown {
    #[serde(rename = "RmReport", default)]
    rm: Option<Vec<RawRm>>,
    #[serde(rename = "StopReport", default)]
    stop: Option<Vec<RawStop>>,
}

#[derive(Deserialize)]
struct RawRm {
    #[serde(rename = "Id", default)]
    id: String,
    #[serde(rename = "RemovedCtrs", default)]
    removed: Option<BTreeMap<String, serde_json::Value>>,
    #[serde(rename = "Err", default)]
    err: serde_json::Value,
}

#[derive(Deserialize)]
struct RawStop {
    #[serde(rename = "RawInput", default)]
    input: String,
    #[serde(rename = "Errs", default)]
    errs: Option<Vec<serde_json::Value>>,
}

#[derive(Deserialize)]
struct RawPod {
    #[serde(rename = "Id", default)]
    id: String,
    #[serde(rename = "Name", default)]
    name: String,
    #[serde(rename = "State", default)]
    state: String,
    #[serde(rename = "Labels", default)]
    labels: Option<BTreeMap<String, String>>,
    #[serde(rename = "Containers", default)]
    containers: Option<Vec<RawPodContainer>>,
}

#[derive(Deserialize)]
struct RawPodContainer {
    #[serde(rename = "Name", default)]
    name: String,
}

fn decode<T: for<'de> Deserialize<'de>>(call: &str, bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes)
        .map_err(|err| Error::env(format!("podman's answer to {call} is unreadable: {err}")))
}

/// An error value from a Podman report (`null`, a string, or an object) as text.
fn error_text(value: &serde_json::Value) -> Option<String> {
    match value {
        serde_json::Value::Null => None,
        serde_json::Value::String(text) if text.is_empty() => None,
        serde_json::Value::String(text) => Some(text.clone()),
        serde_json::Value::Object(map) if map.is_empty() => None,
        other => Some(other.to_string()),
    }
}

/// The hint for a refused play, from the server's message.
fn play_hint(message: &str) -> &'static str {
    let lower = message.to_lowercase();
    if lower.contains("already exists") || lower.contains("is in use") {
        "take the old one down first (podlab kube down FILE), or rename it in the YAML"
    } else if lower.contains("initializing source")
        || lower.contains("pinging container registry")
        || lower.contains("manifest unknown")
        || lower.contains("image not known")
    {
        "the image is not in the local store: podlab pull IMAGE (or podlab build) first"
    } else {
        "fix the YAML and play it again; podlab kube generate writes YAML that podman accepts"
    }
}

/// `POST /libpod/play/kube` with `yaml` as the body.
pub async fn play(libpod: &Libpod, yaml: &str) -> Result<PlayReport> {
    let answer = libpod
        .call_raw(Method::POST, "/play/kube", YAML, yaml.as_bytes().to_vec())
        .await?;
    let bytes = answer.map_err(|failure| {
        Error::user(format!("podman kube play failed: {}", failure.message))
            .hint(play_hint(&failure.message))
    })?;
    let raw: RawPlay = decode("kube play", &bytes)?;
    Ok(PlayReport {
        pods: raw
            .pods
            .unwrap_or_default()
            .into_iter()
            .map(|pod| PlayedPod {
                id: pod.id,
                containers: pod.containers.unwrap_or_default(),
                errors: pod.container_errors.unwrap_or_default(),
            })
            .collect(),
    })
}

/// `DELETE /libpod/play/kube` with `yaml` as the body: stops and removes the pods the YAML
/// describes (Podman finds them by the names in it), keeping volumes.
pub async fn down(libpod: &Libpod, yaml: &str) -> Result<DownReport> {
    let answer = libpod
        .call_raw(Method::DELETE, "/play/kube", YAML, yaml.as_bytes().to_vec())
        .await?;
    let bytes = answer.map_err(|failure| {
        Error::env(format!("podman kube down failed: {}", failure.message))
            .hint("check podman's own view: podman pod ps")
    })?;
    let raw: RawDown = decode("kube down", &bytes)?;
    let mut errors: Vec<String> = Vec::new();
    for stop in raw.stop.unwrap_or_default() {
        for err in stop.errs.unwrap_or_default() {
            if let Some(text) = error_text(&err) {
                errors.push(format!("stopping {}: {text}", stop.input));
            }
        }
    }
    let mut removed = Vec::new();
    for rm in raw.rm.unwrap_or_default() {
        match error_text(&rm.err) {
            Some(text) => errors.push(format!("removing pod {}: {text}", rm.id)),
            None => removed.push((rm.id, rm.removed.map_or(0, |ctrs| ctrs.len()))),
        }
    }
    Ok(DownReport { removed, errors })
}

/// `GET /libpod/pods/NAME/json`, or `None` when there is no such pod.
pub async fn inspect_pod(libpod: &Libpod, name: &str) -> Result<Option<PodFacts>> {
    let path = format!("/pods/{}/json", query_escape(name));
    match libpod.call(Method::GET, &path, None).await? {
        Ok(bytes) => {
            let raw: RawPod = decode("pod inspect", &bytes)?;
            Ok(Some(PodFacts {
                id: raw.id,
                name: raw.name,
                state: raw.state,
                labels: raw.labels.unwrap_or_default(),
                containers: raw
                    .containers
                    .unwrap_or_default()
                    .into_iter()
                    .map(|c| c.name)
                    .collect(),
            }))
        }
        Err(failure) if failure.status == StatusCode::NOT_FOUND => Ok(None),
        Err(failure) => Err(
            Error::env(format!("cannot inspect pod {name}: {}", failure.message))
                .hint("check podman's own view: podman pod ps"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_reports_podman_sends() {
        let raw: RawPlay = serde_json::from_str(
            r#"{"Pods":[{"ID":"2a","Containers":["ef"],"InitContainers":null,"Logs":null,"ContainerErrors":["starting container ef: unresolvable CDI devices nvidia.com/gpu=7"]}],"Volumes":null}"#,
        )
        .unwrap();
        let pods = raw.pods.unwrap();
        assert_eq!(pods[0].id, "2a");
        assert_eq!(pods[0].container_errors.as_ref().unwrap().len(), 1);
        let raw: RawDown = serde_json::from_str(
            r#"{"Pods":null,"StopReport":[{"Errs":null,"Id":"2a","RawInput":"kx-pod"}],"RmReport":[{"RemovedCtrs":{"c8":null,"ef":null},"Err":null,"Id":"2a"}],"VolumeRmReport":null}"#,
        )
        .unwrap();
        let rm = raw.rm.unwrap();
        assert_eq!(rm[0].removed.as_ref().unwrap().len(), 2);
        assert_eq!(error_text(&rm[0].err), None);
        assert_eq!(
            error_text(&serde_json::json!("no such pod")).as_deref(),
            Some("no such pod")
        );
    }

    #[test]
    fn refusals_get_a_hint_that_fits() {
        assert!(
            play_hint(
                "playing YAML file: adding pod to state: name \"bad\" is in use: pod already exists"
            )
            .contains("kube down")
        );
        assert!(play_hint("playing YAML file: initializing source docker://localhost/nope:1: pinging container registry localhost").contains("podlab pull"));
        assert!(
            play_hint("yaml: line 2: did not find expected node content").contains("fix the YAML")
        );
    }
}
