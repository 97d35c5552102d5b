//! A `.kube` unit: `podman kube play` of a YAML file as a service. The YAML (written by
//! `podlab kube generate`) carries the pod itself; the unit only points at it, and tells Podman
//! about a user CDI spec directory when GPUs come from one.

use std::path::Path;

use super::container::{Emitted, TIMEOUT_START_SEC, check_unit_name};
use super::unit::{Body, Install, Kube, Service, Unit};
use crate::{Error, Result};

/// The `.kube` unit `name` for the YAML at `yaml`: absolute, or relative to the unit file's
/// directory (quadlet resolves it there).
pub fn kube_unit(name: &str, yaml: &Path, cdi_spec_dir: Option<&Path>) -> Result<Emitted> {
    check_unit_name(name)?;
    let yaml_text = yaml
        .to_str()
        .ok_or_else(|| Error::user(format!("Yaml= needs a UTF-8 path, not {}", yaml.display())))?;
    Ok(Emitted {
        unit: Unit {
            name: name.to_owned(),
            description: format!("podlab kube play {name}"),
            body: Body::Kube(Kube {
                yaml: yaml_text.to_owned(),
                global_args: cdi_spec_dir
                    .map(|dir| format!("--cdi-spec-dir={}", dir.display()))
                    .into_iter()
                    .collect(),
            }),
            service: Service {
                timeout_start_sec: TIMEOUT_START_SEC,
                restart: None,
                success_exit_status: Vec::new(),
            },
            install: Install {
                wanted_by: vec!["default.target".to_owned()],
            },
        },
        notices: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capabilities::{Capabilities, PodmanVersion};

    #[test]
    fn points_at_the_yaml() {
        let caps = Capabilities::for_version(PodmanVersion::new(5, 4, 2));
        let emitted = kube_unit("nb", Path::new("/srv/pod one.yaml"), None).unwrap();
        let text = emitted.unit.render(&caps).unwrap();
        assert!(text.contains("[Kube]\nYaml=/srv/pod one.yaml\n"), "{text}");
        assert_eq!(emitted.unit.file_name(), "nb.kube");
        let err = kube_unit("nb", Path::new("/a\nb.yaml"), None)
            .and_then(|emitted| emitted.unit.render(&caps))
            .unwrap_err()
            .to_string();
        assert!(err.contains("Yaml=\"/a\\nb.yaml\""), "{err}");
    }
}
