//! VS Code attached to a running session (`podlab code`), through the Dev Containers
//! extension's "attach to container" URI; handed back when `code` is not on PATH, so it can
//! be opened from another machine's VS Code or pasted into `code --folder-uri`.

use std::fmt::Write as _;

use crate::engine::Engine;
use crate::ops::containers;
use crate::{Error, Result};

/// Opens `folder` of the running session `name` in VS Code; the attach URI when `code` is
/// not on PATH, for the user to open.
pub async fn attach<E: Engine>(engine: &E, name: &str, folder: &str) -> Result<Option<String>> {
    let session = containers::find_session(engine, name).await?;
    if !session.running {
        return Err(Error::user(format!("{} is not running", session.name))
            .hint("start a session that stays up: podlab run -d -- sleep infinity, or podlab shell --keep"));
    }
    let uri = attach_uri(&session.name, folder);
    if let Ok(code) = which::which("code") {
        let status = std::process::Command::new(&code)
            .args(["--folder-uri", &uri])
            .status()
            .map_err(|err| Error::env(format!("cannot run {}: {err}", code.display())))?;
        if !status.success() {
            return Err(Error::env(format!(
                "{} --folder-uri {uri} failed ({status})",
                code.display()
            ))
            .hint("open the URI yourself in VS Code with the Dev Containers extension"));
        }
        Ok(None)
    } else {
        tracing::warn!(
            "`code` is not on PATH: open this URI in VS Code (Dev Containers extension, with \
             dev.containers.dockerPath set to podman)"
        );
        Ok(Some(uri))
    }
}

/// `vscode-remote://attached-container+<hex of {"containerName":"/NAME"}><folder>`.
fn attach_uri(name: &str, folder: &str) -> String {
    let json = serde_json::json!({ "containerName": format!("/{name}") }).to_string();
    let hex = json.bytes().fold(String::new(), |mut out, byte| {
        let _ = write!(out, "{byte:02x}");
        out
    });
    format!("vscode-remote://attached-container+{hex}{folder}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uri_carries_the_container_name_in_hex() {
        let uri = attach_uri("demo-run-1", "/workspace");
        let hex = "7b22636f6e7461696e65724e616d65223a222f64656d6f2d72756e2d31227d";
        assert_eq!(
            uri,
            format!("vscode-remote://attached-container+{hex}/workspace")
        );
    }
}
