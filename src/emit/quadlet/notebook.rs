//! A JupyterLab notebook as a `.container` unit: the session's own unit (user mapping,
//! mounts, shm, GPUs, the port on 127.0.0.1), plus what a long-running web service needs.
//!
//! The token reaches the container only as an env secret (`Secret=...,type=env,
//! target=JUPYTER_TOKEN`, which JupyterLab reads itself), so it is in no unit file, label,
//! command line or log. A health check probes the server; on Podman 5.0 and newer
//! `Notify=healthy` makes systemd count the service as started only once it answers.
//! `Restart=on-failure` and `AutoUpdate=registry` (optional) keep it running.

use super::container::{Emitted, container_unit};
use super::unit::Body;
use crate::capabilities::{Capabilities, Feature, UnitType, quadlet_key_since};
use crate::plan::ContainerPlan;
use crate::session::Session;
use crate::{Error, Result};

/// The `io.podlab.kind` of a notebook's container and unit.
pub const KIND: &str = "notebook";
/// The port JupyterLab listens on inside the container.
pub const CONTAINER_PORT: u16 = 8888;
/// The variable JupyterLab reads its token from.
pub const TOKEN_ENV: &str = "JUPYTER_TOKEN";
/// JupyterLab's command when the session has none; the token comes from [`TOKEN_ENV`].
pub const DEFAULT_COMMAND: [&str; 5] = [
    "jupyter",
    "lab",
    "--ip=0.0.0.0",
    "--port=8888",
    "--no-browser",
];
/// Probes JupyterLab's `/api` (answered without a token) with the Python every JupyterLab
/// image has: curl and wget are not in all of them.
pub const DEFAULT_HEALTH_CMD: &str =
    "python3 -c 'import urllib.request as u; u.urlopen(\"http://127.0.0.1:8888/api\", timeout=5)'";
/// How often the health check runs.
const HEALTH_INTERVAL: &str = "10s";
/// The label `AutoUpdate=registry` stands for, on a Podman without that key.
const AUTO_UPDATE_LABEL: &str = "io.containers.autoupdate";

/// What makes a session's unit a notebook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notebook {
    /// The Podman secret that holds the token.
    pub secret: String,
    /// `HealthCmd=`: a shell command run in the container.
    pub health_cmd: String,
    /// `AutoUpdate=registry`.
    pub auto_update: bool,
}

/// The secret holding notebook `name`'s token.
pub fn secret_name(name: &str) -> String {
    format!("podlab-notebook-{name}")
}

/// The notebook's unit: `session` as planned (its kind label becomes [`KIND`]), with the
/// token secret, the health check, `Notify=healthy` where the target has it, and restart
/// and update settings.
pub fn notebook_unit(
    session: &Session,
    plan: &ContainerPlan,
    cdi_spec_dir: Option<&std::path::Path>,
    caps: &Capabilities,
    notebook: &Notebook,
) -> Result<Emitted> {
    let mut plan = plan.clone();
    plan.mode.kind = KIND;
    let mut emitted = container_unit(session, &plan, cdi_spec_dir, caps)?;
    let unit = &mut emitted.unit;
    unit.description = format!("podlab notebook {} ({})", plan.name, session.project);
    unit.service.restart = Some("on-failure".to_owned());
    let Body::Container(container) = &mut unit.body else {
        return Err(Error::env(
            "internal error: a session's unit is not a .container unit",
        ));
    };
    container
        .secret
        .push(format!("{},type=env,target={TOKEN_ENV}", notebook.secret));
    container.health_cmd = Some(notebook.health_cmd.clone());
    container.health_interval = Some(HEALTH_INTERVAL.to_owned());
    let quadlet = caps.has(Feature::Quadlet);
    if caps.has(Feature::NotifyHealthy) {
        container.notify = Some("healthy".to_owned());
    } else if !quadlet {
        emitted.notices.push(format!(
            "podman {} has no --sdnotify=healthy (it needs {}): systemd counts the notebook as started once its container runs, before JupyterLab answers",
            caps.version(),
            Feature::NotifyHealthy.since()
        ));
    } else {
        emitted.notices.push(format!(
            "podman {} has no Notify=healthy (it needs {}): systemd counts the notebook as started before JupyterLab answers",
            caps.version(),
            Feature::NotifyHealthy.since()
        ));
    }
    if notebook.auto_update {
        if caps.has_quadlet_key(UnitType::Container, "AutoUpdate") {
            container.auto_update = Some("registry".to_owned());
        } else {
            if quadlet {
                emitted.notices.push(format!(
                    "podman {} has no AutoUpdate= (it needs {}): using Label={AUTO_UPDATE_LABEL}=registry instead",
                    caps.version(),
                    quadlet_key_since(UnitType::Container, "AutoUpdate")
                ));
            }
            container
                .label
                .insert(AUTO_UPDATE_LABEL.to_owned(), "registry".to_owned());
        }
    }
    Ok(emitted)
}

#[cfg(test)]
mod tests {

    use super::*;
    use crate::capabilities::PodmanVersion;

    use crate::plan::UserNs;
    use crate::session::{ImageSource, UserMapping};

    fn caps(text: &str) -> Capabilities {
        Capabilities::for_version(text.parse::<PodmanVersion>().unwrap())
    }

    fn session() -> Session {
        Session {
            name: Some("nb".into()),
            image: ImageSource::Name("quay.io/jupyter/base-notebook:latest".into()),
            mounts: vec![],
            ports: vec!["127.0.0.1:9999:8888".parse().unwrap()],
            user_map: UserMapping::KeepId,
            command: DEFAULT_COMMAND.iter().map(|w| (*w).to_owned()).collect(),
            ..Session::example()
        }
    }

    fn plan() -> ContainerPlan {
        ContainerPlan {
            userns: UserNs::KeepId,
            home: Some("/tmp".into()),
            ..ContainerPlan::example("nb")
        }
    }

    fn notebook(auto_update: bool) -> Notebook {
        Notebook {
            secret: secret_name("nb"),
            health_cmd: DEFAULT_HEALTH_CMD.to_owned(),
            auto_update,
        }
    }

    #[test]
    fn a_notebook_unit_has_its_secret_health_check_and_service_settings() {
        let caps = caps("5.4.2");
        let emitted = notebook_unit(&session(), &plan(), None, &caps, &notebook(true)).unwrap();
        assert!(emitted.notices.is_empty(), "{:?}", emitted.notices);
        let text = emitted.unit.render(&caps).unwrap();
        for line in [
            "Description=podlab notebook nb (demo)",
            "PublishPort=127.0.0.1:9999:8888/tcp",
            "Label=io.podlab.kind=notebook",
            "Secret=podlab-notebook-nb,type=env,target=JUPYTER_TOKEN",
            "HealthCmd=python3 -c 'import urllib.request as u; u.urlopen(\"http://127.0.0.1:8888/api\", timeout=5)'",
            "HealthInterval=10s",
            "Notify=healthy",
            "AutoUpdate=registry",
            "Exec=jupyter lab --ip=0.0.0.0 --port=8888 --no-browser",
            "TimeoutStartSec=900",
            "Restart=on-failure",
            "WantedBy=default.target",
        ] {
            assert!(text.lines().any(|l| l == line), "no {line:?} in:\n{text}");
        }
        assert!(!text.contains("token="), "{text}");
    }

    #[test]
    fn older_podman_gets_equivalents_and_notices() {
        let caps = caps("4.5.0");
        let emitted = notebook_unit(&session(), &plan(), None, &caps, &notebook(true)).unwrap();
        let text = emitted.unit.render(&caps).unwrap();
        assert!(!text.contains("Notify="), "{text}");
        assert!(!text.contains("AutoUpdate="), "{text}");
        assert!(
            text.contains("Label=io.containers.autoupdate=registry"),
            "{text}"
        );
        let said = |notices: &[String], what: &str| notices.iter().any(|n| n.contains(what));
        assert!(
            said(&emitted.notices, "has no Notify=healthy (it needs 5.0.0)"),
            "{:?}",
            emitted.notices
        );
        assert!(
            said(
                &emitted.notices,
                "using Label=io.containers.autoupdate=registry"
            ),
            "{:?}",
            emitted.notices
        );
        let plain = notebook_unit(&session(), &plan(), None, &caps, &notebook(false)).unwrap();
        assert!(!said(&plain.notices, "AutoUpdate"), "{:?}", plain.notices);
    }

    /// Without quadlet (4.3.1) the notebook is a plain service: the token as an env secret,
    /// the health check, the init, restart on failure, the port on 127.0.0.1, enabled for
    /// `default.target`; no notice names a quadlet key.
    #[test]
    fn a_notebook_on_podman_without_quadlet_is_a_plain_service() {
        let caps = caps("4.3.1");
        let emitted = notebook_unit(&session(), &plan(), None, &caps, &notebook(true)).unwrap();
        assert_eq!(emitted.notices.len(), 1, "{:?}", emitted.notices);
        assert!(
            emitted.notices[0].contains("has no --sdnotify=healthy (it needs 5.0.0)"),
            "{:?}",
            emitted.notices
        );
        let text = super::super::service::plain_service(&emitted.unit).unwrap();
        let exec = text
            .lines()
            .find(|line| line.starts_with("ExecStart=podman "))
            .unwrap_or_else(|| panic!("no ExecStart= in:\n{text}"));
        let words: Vec<&str> = exec.split(' ').collect();
        for word in [
            "--sdnotify=conmon",
            "--init",
            "--secret=podlab-notebook-nb,type=env,target=JUPYTER_TOKEN",
            "--publish=127.0.0.1:9999:8888/tcp",
            "--label=io.podlab.kind=notebook",
            "--label=io.containers.autoupdate=registry",
            "--health-interval=10s",
        ] {
            assert!(words.contains(&word), "no {word:?} in {exec}");
        }
        assert!(exec.contains(" \"--health-cmd=python3 -c "), "{exec}");
        for line in [
            "Type=notify",
            "Restart=on-failure",
            "SuccessExitStatus=143",
            "WantedBy=default.target",
        ] {
            assert!(text.lines().any(|l| l == line), "no {line:?} in:\n{text}");
        }
        assert!(!text.contains("token="), "{text}");
    }

    #[test]
    fn a_health_command_no_unit_can_carry_is_refused() {
        let mut bad = notebook(false);
        bad.health_cmd = "wget -q -O- \"http://127.0.0.1:8888/\"".into();
        let err = notebook_unit(&session(), &plan(), None, &caps("5.4.2"), &bad)
            .and_then(|emitted| emitted.unit.render(&caps("5.4.2")))
            .unwrap_err()
            .to_string();
        assert!(err.contains("HealthCmd="), "{err}");
    }
}
