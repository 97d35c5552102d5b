//! Podman secrets over the API, for `podlab notebook`: a notebook's token lives in a secret,
//! so that it never appears in a unit file, a label, a command line or a log.
//!
//! Plain libpod calls ([`Libpod::call_raw`]): `POST /secrets/create` takes the secret's bytes
//! themselves as the body (Podman reads an empty body when a form content type is sent, and
//! answers "secret data must be larger than 0"), which the JSON helpers cannot send. Podman
//! answers a name in use with a 500 whose message says so; that is the user's error.

use std::collections::BTreeMap;

use hyper::{Method, StatusCode};
use serde::Deserialize;

use super::SecretData;
use super::http::{Libpod, query_escape};
use crate::{Error, Result};

#[derive(Deserialize)]
struct Inspect {
    #[serde(rename = "SecretData", default)]
    data: Option<String>,
    #[serde(rename = "Spec", default)]
    spec: Spec,
}

#[derive(Deserialize, Default)]
struct Spec {
    #[serde(rename = "Labels", default)]
    labels: Option<BTreeMap<String, String>>,
}

/// Creates the secret `name` holding `data`, with `labels` (the `labels` query parameter
/// takes a JSON object, as Podman's own bindings send it); a name in use is a user error.
pub async fn create(
    libpod: &Libpod,
    name: &str,
    data: &[u8],
    labels: &BTreeMap<String, String>,
) -> Result<()> {
    let labels = serde_json::to_string(labels)
        .map_err(|err| Error::env(format!("cannot encode secret labels: {err}")))?;
    let path = format!(
        "/secrets/create?name={}&labels={}",
        query_escape(name),
        query_escape(&labels)
    );
    match libpod
        .call_raw(
            Method::POST,
            &path,
            "application/octet-stream",
            data.to_vec(),
        )
        .await?
    {
        Ok(_) => Ok(()),
        Err(failure) if failure.message.contains("in use") => Err(Error::user(format!(
            "a podman secret named {name} already exists"
        ))
        .hint(format!(
            "remove it (podman secret rm {name}) or pick another name"
        ))),
        Err(failure) => Err(Error::env(format!(
            "cannot create the podman secret {name}: {}",
            failure.message
        ))
        .hint("check podman's own view: podman secret ls")),
    }
}

/// The secret's bytes (`showsecret=true`), or `None` when there is no such secret; a Podman
/// that ignores `showsecret` (before 4.5) answers without `SecretData`: hidden.
pub async fn data(libpod: &Libpod, name: &str) -> Result<Option<SecretData>> {
    let path = format!("/secrets/{}/json?showsecret=true", query_escape(name));
    match libpod.call(Method::GET, &path, None).await? {
        Ok(bytes) => {
            let inspect: Inspect = serde_json::from_slice(&bytes).map_err(|err| {
                Error::env(format!(
                    "podman's answer to secret inspect is unreadable: {err}"
                ))
            })?;
            Ok(Some(inspect.data.map_or(SecretData::Hidden, |data| {
                SecretData::Shown(data.into_bytes())
            })))
        }
        Err(failure) if failure.status == StatusCode::NOT_FOUND => Ok(None),
        Err(failure) => Err(Error::env(format!(
            "cannot read the podman secret {name}: {}",
            failure.message
        ))
        .hint("check podman's own view: podman secret ls")),
    }
}

/// The secret's labels, or `None` when there is no such secret.
pub async fn labels(libpod: &Libpod, name: &str) -> Result<Option<BTreeMap<String, String>>> {
    let path = format!("/secrets/{}/json", query_escape(name));
    match libpod.call(Method::GET, &path, None).await? {
        Ok(bytes) => {
            let inspect: Inspect = serde_json::from_slice(&bytes).map_err(|err| {
                Error::env(format!(
                    "podman's answer to secret inspect is unreadable: {err}"
                ))
            })?;
            Ok(Some(inspect.spec.labels.unwrap_or_default()))
        }
        Err(failure) if failure.status == StatusCode::NOT_FOUND => Ok(None),
        Err(failure) => Err(Error::env(format!(
            "cannot inspect the podman secret {name}: {}",
            failure.message
        ))
        .hint("check podman's own view: podman secret ls")),
    }
}

/// Removes the secret; `false` when there was none.
pub async fn remove(libpod: &Libpod, name: &str) -> Result<bool> {
    let path = format!("/secrets/{}", query_escape(name));
    match libpod.call(Method::DELETE, &path, None).await? {
        Ok(_) => Ok(true),
        Err(failure) if failure.status == StatusCode::NOT_FOUND => Ok(false),
        Err(failure) => Err(Error::env(format!(
            "cannot remove the podman secret {name}: {}",
            failure.message
        ))
        .hint(format!("remove it by hand: podman secret rm {name}"))),
    }
}
