//! A session as a `.container` unit: the same container `podlab run` creates (user mapping,
//! mounts, shm, ports, env, labels, GPUs), written as quadlet keys for a target Podman.
//!
//! Keys newer than the target are replaced by the `podman run` flag they stand for
//! (`PodmanArgs=--shm-size=...` before 4.7), and each replacement is reported as a notice, so
//! one session gives a working unit for every Podman that has quadlet. Without quadlet (before
//! 4.4) the unit becomes a plain service whose flags are all `podman run` flags anyway (see
//! [`super::service`]), so no replacement is worth a notice there.

use std::collections::BTreeMap;
use std::path::Path;

use super::unit::{Body, Container, Install, Service, Unit};
use crate::capabilities::{Capabilities, Feature, UnitType, quadlet_key_since};
use crate::emit::podman::container_labels;
use crate::plan::{ContainerPlan, GpuMode, UserNs};
use crate::session::Session;
use crate::{Error, Result};

/// Seconds systemd waits for the container to start: CUDA images take minutes to pull.
pub const TIMEOUT_START_SEC: u32 = 900;

/// The container's exit code when its init ended on the SIGTERM of a stop (128 + 15).
const SIGTERM_EXIT: u8 = 143;

/// A unit, and what the emitter had to do differently for the target Podman.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Emitted {
    pub unit: Unit,
    pub notices: Vec<String>,
}

/// The `.container` unit for `session` as planned; the unit and the container are both
/// named `plan.name`. `cdi_spec_dir`: a spec directory Podman must be told about
/// (`GlobalArgs=--cdi-spec-dir=`, 5.5+).
pub fn container_unit(
    session: &Session,
    plan: &ContainerPlan,
    cdi_spec_dir: Option<&Path>,
    caps: &Capabilities,
) -> Result<Emitted> {
    check_unit_name(&plan.name)?;
    let mut notices = Vec::new();
    let quadlet = caps.has(Feature::Quadlet);
    let mut container = Container {
        image: session.image.reference().to_owned(),
        container_name: Some(plan.name.clone()),
        security_label_disable: plan.label_disable,
        run_init: plan.init,
        label: container_labels(session, plan),
        exec: session.command.clone(),
        ..Container::default()
    };
    let mut key_or_flag = |key: &str, value: String, flag: &str| -> Option<String> {
        if caps.has_quadlet_key(UnitType::Container, key) {
            return Some(value);
        }
        if quadlet {
            notices.push(format!(
                "podman {} has no {key}= (it needs {}): using PodmanArgs={flag}={value} instead",
                caps.version(),
                quadlet_key_since(UnitType::Container, key)
            ));
        }
        container.podman_args.push(format!("{flag}={value}"));
        None
    };
    let mapping = match plan.userns {
        UserNs::KeepId => "keep-id".to_owned(),
        UserNs::KeepIdTo { uid, gid } => format!("keep-id:uid={uid},gid={gid}"),
    };
    let user_ns = key_or_flag("UserNS", mapping, "--userns");
    let shm_size = key_or_flag("ShmSize", session.shm_size.to_string(), "--shm-size");
    let working_dir = key_or_flag("WorkingDir", session.workdir.clone(), "--workdir");
    container.user_ns = user_ns;
    container.shm_size = shm_size;
    container.working_dir = working_dir;

    for mount in &session.mounts {
        let mode = if mount.read_only { "ro" } else { "rw" };
        let host = mount.host.to_str().ok_or_else(|| {
            Error::user(format!(
                "mount source {} is not UTF-8: a unit file cannot hold it",
                mount.host.display()
            ))
        })?;
        container
            .volume
            .push(volume("Volume", host, &mount.container, mode)?);
    }
    let mut env = gpus(&mut container, &plan.gpus.mode, cdi_spec_dir, &mut notices)?;
    env.extend(plan.gpus.env.iter().cloned());
    if let Some(home) = &plan.home {
        env.insert("HOME".to_owned(), home.clone());
    }
    env.extend(session.env.clone());
    container.environment = env;
    container.secret = session
        .secrets
        .iter()
        .map(|secret| format!("{},type=env,target={}", secret.name, secret.target))
        .collect();
    container.publish_port = session.ports.iter().map(ToString::to_string).collect();

    Ok(Emitted {
        unit: Unit {
            name: plan.name.clone(),
            description: format!("podlab {} session {}", session.project, plan.name),
            body: Body::Container(Box::new(container)),
            service: Service {
                timeout_start_sec: TIMEOUT_START_SEC,
                restart: None,
                success_exit_status: if plan.init {
                    vec![SIGTERM_EXIT]
                } else {
                    Vec::new()
                },
            },
            install: Install {
                wanted_by: vec!["default.target".to_owned()],
            },
        },
        notices,
    })
}

/// The GPU keys: CDI names (and the spec directory), or the edits inline; returns the GPU
/// environment.
fn gpus(
    container: &mut Container,
    mode: &GpuMode,
    cdi_spec_dir: Option<&Path>,
    notices: &mut Vec<String>,
) -> Result<BTreeMap<String, String>> {
    let mut env = BTreeMap::new();
    match mode {
        GpuMode::None => {}
        GpuMode::Cdi(names) => {
            container.add_device.extend(names.iter().cloned());
            if let Some(dir) = cdi_spec_dir {
                container
                    .global_args
                    .push(format!("--cdi-spec-dir={}", dir.display()));
            }
        }
        GpuMode::Inline(edits) => {
            notices.push(
                "GPUs are written inline (no fresh CDI spec Podman reads): after a driver upgrade, install the unit again"
                    .to_owned(),
            );
            for node in &edits.device_nodes {
                container.add_device.push(match &node.host_path {
                    Some(host) if host != &node.path => format!("{host}:{}", node.path),
                    _ => node.path.clone(),
                });
            }
            for mount in &edits.mounts {
                let options = mount.options.join(",");
                container.volume.push(volume(
                    "Volume",
                    &mount.host_path,
                    &mount.container_path,
                    &options,
                )?);
            }
            env.extend(edits.env.iter().filter_map(|entry| {
                entry
                    .split_once('=')
                    .map(|(key, value)| (key.to_owned(), value.to_owned()))
            }));
        }
    }
    Ok(env)
}

/// `HOST:CTR[:OPTIONS]`; Podman splits `-v` at `:`, so neither path may hold one.
fn volume(key: &str, host: &str, container: &str, options: &str) -> Result<String> {
    for path in [host, container] {
        if path.contains(':') {
            return Err(Error::user(format!(
                "{key}= cannot mount {path:?}: podman splits volumes at ':'"
            ))
            .hint("rename the directory, or mount a parent directory without ':'"));
        }
    }
    Ok(if options.is_empty() {
        format!("{host}:{container}")
    } else {
        format!("{host}:{container}:{options}")
    })
}

/// A unit's name goes through podlab's one name validator
/// ([`crate::session::values::container_name`]): its rules are stricter than systemd's
/// (no `:`, no `@`) and its length limit leaves room for every file a unit set derives.
pub fn check_unit_name(name: &str) -> Result<()> {
    crate::session::values::check_name(name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capabilities::PodmanVersion;
    use crate::cdi::spec::{ContainerEdits, DeviceNode, Mount as CdiMount};

    use crate::plan::GpuPlan;
    use crate::session::{ByteSize, GpuRequest, ImageSource};

    fn caps(text: &str) -> Capabilities {
        Capabilities::for_version(text.parse::<PodmanVersion>().unwrap())
    }

    fn session() -> Session {
        Session {
            image: ImageSource::Name("localhost/img:latest".into()),
            gpus: GpuRequest::All,
            shm_size: ByteSize(16 << 30),
            env: BTreeMap::from([("WANDB_MODE".into(), "offline".into())]),
            ports: vec!["8888".parse().unwrap()],
            ..Session::example()
        }
    }

    fn plan(mode: GpuMode) -> ContainerPlan {
        ContainerPlan {
            gpus: GpuPlan {
                mode,
                names: vec!["all".into()],
                notices: vec![],
                driver: None,
                env: Vec::new(),
                capabilities: None,
            },
            label_disable: true,
            ..ContainerPlan::example("demo")
        }
    }

    fn inline() -> GpuMode {
        GpuMode::Inline(ContainerEdits {
            env: vec!["NVIDIA_VISIBLE_DEVICES=void".into()],
            device_nodes: vec![DeviceNode {
                path: "/dev/nvidia0".into(),
                ..DeviceNode::default()
            }],
            mounts: vec![CdiMount {
                host_path: "/usr/lib/libcuda.so.550".into(),
                container_path: "/usr/lib/x86_64-linux-gnu/libcuda.so.1".into(),
                options: vec!["ro".into(), "nosuid".into()],
                kind: None,
            }],
            ..ContainerEdits::default()
        })
    }

    fn container(emitted: &Emitted) -> &Container {
        let Body::Container(container) = &emitted.unit.body else {
            panic!("not a container unit")
        };
        container
    }

    #[test]
    fn a_session_keeps_its_mapping_mounts_shm_ports_and_gpus() {
        let emitted = container_unit(&session(), &plan(inline()), None, &caps("5.4.2")).unwrap();
        let c = container(&emitted);
        assert_eq!(c.user_ns.as_deref(), Some("keep-id:uid=1000,gid=1000"));
        assert_eq!(c.shm_size.as_deref(), Some("16g"));
        assert_eq!(c.working_dir.as_deref(), Some("/workspace"));
        assert_eq!(c.add_device, ["/dev/nvidia0"]);
        assert_eq!(
            c.volume,
            [
                "/home/a/demo:/workspace:rw",
                "/usr/lib/libcuda.so.550:/usr/lib/x86_64-linux-gnu/libcuda.so.1:ro,nosuid"
            ]
        );
        assert_eq!(c.publish_port, ["127.0.0.1:8888:8888/tcp"]);
        assert_eq!(c.environment["NVIDIA_VISIBLE_DEVICES"], "void");
        assert_eq!(c.label["io.podlab.kind"], "service");
        assert!(c.security_label_disable && c.global_args.is_empty());
        assert_eq!(emitted.notices.len(), 1, "{:?}", emitted.notices);
    }

    #[test]
    fn w5_env_secrets_become_secret_keys() {
        let session = Session {
            secrets: vec![crate::session::EnvSecret {
                name: "podlab-notebook-nb1".into(),
                target: "JUPYTER_TOKEN".into(),
            }],
            ..session()
        };
        let emitted = container_unit(&session, &plan(inline()), None, &caps("5.4.2")).unwrap();
        let c = container(&emitted);
        assert_eq!(
            c.secret,
            ["podlab-notebook-nb1,type=env,target=JUPYTER_TOKEN"]
        );
        assert!(!c.environment.contains_key("podlab-notebook-nb1"));
    }

    #[test]
    fn cdi_names_and_the_spec_dir_flag() {
        let mode = GpuMode::Cdi(vec!["nvidia.com/gpu=all".into()]);
        let dir = Path::new("/home/a/.config/cdi");
        let emitted = container_unit(&session(), &plan(mode), Some(dir), &caps("5.5.0")).unwrap();
        let c = container(&emitted);
        assert_eq!(c.add_device, ["nvidia.com/gpu=all"]);
        assert_eq!(c.global_args, ["--cdi-spec-dir=/home/a/.config/cdi"]);
        assert!(emitted.notices.is_empty());
    }

    /// Issue 12: forward compatibility reaches units too (by CDI name here, where the spec
    /// cannot carry it).
    #[test]
    fn forward_compat_libs_reach_the_units_environment() {
        let mut planned = plan(GpuMode::Cdi(vec!["nvidia.com/gpu=all".into()]));
        planned.gpus.env = vec![(
            "LD_LIBRARY_PATH".to_owned(),
            "/usr/local/cuda/compat:/usr/local/nvidia/lib64".to_owned(),
        )];
        let emitted = container_unit(&session(), &planned, None, &caps("5.4.2")).unwrap();
        assert_eq!(
            container(&emitted).environment["LD_LIBRARY_PATH"],
            "/usr/local/cuda/compat:/usr/local/nvidia/lib64"
        );
    }

    #[test]
    fn old_podman_gets_flags_for_missing_keys_and_says_so() {
        let emitted =
            container_unit(&session(), &plan(GpuMode::None), None, &caps("4.4.0")).unwrap();
        let c = container(&emitted);
        assert_eq!(c.shm_size, None);
        assert_eq!(
            c.podman_args,
            [
                "--userns=keep-id:uid=1000,gid=1000",
                "--shm-size=16g",
                "--workdir=/workspace"
            ]
        );
        assert!(
            emitted.notices[1]
                .contains("podman 4.4.0 has no ShmSize= (it needs 4.7.0): using PodmanArgs=--shm-size=16g instead"),
            "{:?}",
            emitted.notices
        );
        assert!(emitted.unit.render(&caps("4.4.0")).is_ok());
        let err = container_unit(&session(), &plan(GpuMode::None), None, &caps("4.3.1"))
            .and_then(|emitted| emitted.unit.render(&caps("4.3.1")))
            .unwrap_err();
        assert_eq!(
            err.message(),
            "podman 4.3.1 has no .container units: they need podman 4.4.0 or newer"
        );
    }

    /// A plain service (Podman without quadlet) has no keys to replace: the same flags, and no
    /// "using PodmanArgs=" notice, which would name a key it does not have.
    #[test]
    fn podman_args_notices_are_not_printed_for_plain_services() {
        let emitted =
            container_unit(&session(), &plan(GpuMode::None), None, &caps("4.3.1")).unwrap();
        assert_eq!(
            container(&emitted).podman_args,
            [
                "--userns=keep-id:uid=1000,gid=1000",
                "--shm-size=16g",
                "--workdir=/workspace"
            ]
        );
        assert!(
            !emitted.notices.iter().any(|n| n.contains("PodmanArgs")),
            "{:?}",
            emitted.notices
        );
        let text = super::super::service::plain_service(&emitted.unit).unwrap();
        assert!(text.contains(" --shm-size=16g "), "{text}");
    }

    #[test]
    fn bad_names_and_paths_are_refused() {
        let mut bad = plan(GpuMode::None);
        bad.name = "a b".into();
        assert!(container_unit(&session(), &bad, None, &caps("5.4.2")).is_err());
        let mut colon = session();
        colon.mounts[0].host = "/a:b".into();
        let err = container_unit(&colon, &plan(GpuMode::None), None, &caps("5.4.2"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("Volume= cannot mount \"/a:b\""), "{err}");
        assert!(check_unit_name("x@y").is_err() && check_unit_name("ok_1.a-b").is_ok());
    }
}
