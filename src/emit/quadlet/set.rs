//! A session as a set of units: the `.container` unit, and the units it leans on.
//!
//! - `--kind pod`: the container joins a `.pod` unit of the same name (5.0+), so more
//!   containers can share the session's network and ports. The user mapping, shm and ports
//!   move to the pod: Podman refuses `--userns` on a container in a pod, and silently ignores
//!   its `--shm-size` there (seen on 5.4.2: 62.5 MB `/dev/shm` in a pod whatever was asked).
//! - a Containerfile session gets a `.build` unit (5.2+), so the service builds its own image;
//!   a named image gets an `.image` unit (4.8+) when asked (`--pull-unit`), which pulls it in a
//!   service of its own before the container starts. Every unit of a set is named after the
//!   session, so `podlab quadlet rm NAME` finds them all.

use super::container::{Emitted, TIMEOUT_START_SEC};
use super::unit::{Body, Build, Image, Install, Pod, Service, Unit};
use crate::capabilities::{Capabilities, UnitType, quadlet_key_since};
use crate::session::ImageSource;
use crate::{Error, Result};

/// Moves what the pod must own out of the container unit in `emitted` into a `.pod` unit of
/// the same name, which it returns; the container then joins it with `Pod=`.
pub fn join_pod(emitted: &mut Emitted, caps: &Capabilities) -> Result<Unit> {
    super::unit::check_unit_type(caps, UnitType::Pod)?;
    let name = emitted.unit.name.clone();
    let Body::Container(container) = &mut emitted.unit.body else {
        return Err(Error::user("only a .container unit can join a pod"));
    };
    let mut pod = Pod {
        pod_name: name.clone(),
        user_ns: container.user_ns.take(),
        publish_port: std::mem::take(&mut container.publish_port),
        ..Pod::default()
    };
    if let Some(shm) = container.shm_size.take() {
        if caps.has_quadlet_key(UnitType::Pod, "ShmSize") {
            pod.shm_size = Some(shm);
        } else {
            emitted.notices.push(format!(
                "podman {}'s .pod units have no ShmSize= (it needs {}): using PodmanArgs=--shm-size={shm} instead",
                caps.version(),
                quadlet_key_since(UnitType::Pod, "ShmSize")
            ));
            pod.podman_args.push(format!("--shm-size={shm}"));
        }
    }
    container.pod = Some(format!("{name}.pod"));
    Ok(Unit {
        name,
        description: format!("podlab pod for {}", emitted.unit.description),
        body: Body::Pod(pod),
        service: Service {
            timeout_start_sec: TIMEOUT_START_SEC,
            restart: None,
            success_exit_status: Vec::new(),
        },
        install: Install {
            wanted_by: vec!["default.target".to_owned()],
        },
    })
}

/// The unit that provides the session's image, if it gets one, pointing the container unit
/// in `emitted` at it: `.build` for a Containerfile, `.image` for a named image when `pull`.
pub fn image_unit(
    image: &ImageSource,
    emitted: &mut Emitted,
    pull: bool,
    caps: &Capabilities,
) -> Result<Option<Unit>> {
    let name = emitted.unit.name.clone();
    let (body, unit_type) = match image {
        ImageSource::Build {
            containerfile,
            context,
            args,
            tag,
        } => {
            if pull {
                emitted.notices.push(format!(
                    "--pull-unit pulls a named image; this session builds {tag}, so its .build unit makes the image instead"
                ));
            }
            if !caps.has_unit_type(UnitType::Build) {
                emitted.notices.push(format!(
                    "podman {} has no .build units (they need {}): the unit runs {tag}, so build it first with podlab build",
                    caps.version(),
                    UnitType::Build.since()
                ));
                return Ok(None);
            }
            let build = Build {
                image_tag: tag.clone(),
                file: utf8("File", containerfile)?,
                set_working_directory: utf8("SetWorkingDirectory", context)?,
                podman_args: args
                    .iter()
                    .map(|(key, value)| format!("--build-arg={key}={value}"))
                    .collect(),
            };
            (Body::Build(build), UnitType::Build)
        }
        ImageSource::Name(_) if !pull => return Ok(None),
        ImageSource::Name(reference) => {
            super::unit::check_unit_type(caps, UnitType::Image)?;
            let image = Image {
                image: reference.clone(),
            };
            (Body::Image(image), UnitType::Image)
        }
    };
    let Body::Container(container) = &mut emitted.unit.body else {
        return Err(Error::user(
            "only a .container unit can take its image from a unit",
        ));
    };
    container.image = format!("{name}.{}", unit_type.extension());
    let what = match unit_type {
        UnitType::Build => "build",
        _ => "pull",
    };
    Ok(Some(Unit {
        name,
        description: format!("podlab {what} of {}", image.reference()),
        body,
        service: Service {
            timeout_start_sec: TIMEOUT_START_SEC,
            restart: None,
            success_exit_status: Vec::new(),
        },
        // Started by the units that need it, not at boot on its own.
        install: Install {
            wanted_by: Vec::new(),
        },
    }))
}

fn utf8(key: &str, path: &std::path::Path) -> Result<String> {
    path.to_str().map(str::to_owned).ok_or_else(|| {
        Error::user(format!(
            "{key}= needs a UTF-8 path, not {}: a unit file cannot hold it",
            path.display()
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capabilities::PodmanVersion;
    use crate::emit::quadlet::unit::Container;
    use std::collections::BTreeMap;
    use std::path::PathBuf;

    fn caps(major: u32, minor: u32) -> Capabilities {
        Capabilities::for_version(PodmanVersion::new(major, minor, 0))
    }

    fn emitted() -> Emitted {
        Emitted {
            unit: Unit {
                name: "demo".into(),
                description: "podlab demo session demo".into(),
                body: Body::Container(Box::new(Container {
                    image: "localhost/demo:latest".into(),
                    user_ns: Some("keep-id:uid=1000,gid=1000".into()),
                    shm_size: Some("16g".into()),
                    publish_port: vec!["127.0.0.1:8888:8888".into()],
                    ..Container::default()
                })),
                service: Service {
                    timeout_start_sec: 900,
                    restart: None,
                    success_exit_status: Vec::new(),
                },
                install: Install {
                    wanted_by: vec!["default.target".into()],
                },
            },
            notices: Vec::new(),
        }
    }

    fn body(text: &str) -> &str {
        text.split_once("\n[Unit]").unwrap().1
    }

    #[test]
    fn the_pod_takes_the_user_mapping_shm_and_ports() {
        let mut container = emitted();
        let pod = join_pod(&mut container, &caps(5, 4)).unwrap();
        assert!(container.notices.is_empty());
        assert_eq!(pod.file_name(), "demo.pod");
        assert_eq!(
            body(&pod.render(&caps(5, 4)).unwrap()),
            "\nDescription=podlab pod for podlab demo session demo\n\n[Pod]\nPodName=demo\n\
             UserNS=keep-id:uid=1000,gid=1000\nShmSize=16g\nPublishPort=127.0.0.1:8888:8888\n\n\
             [Service]\nTimeoutStartSec=900\n\n[Install]\nWantedBy=default.target\n"
        );
        let text = container.unit.render(&caps(5, 4)).unwrap();
        assert!(text.contains("\nPod=demo.pod\n"), "{text}");
        for moved in ["UserNS=", "ShmSize=", "PublishPort="] {
            assert!(!text.contains(moved), "{moved} stayed: {text}");
        }
    }

    #[test]
    fn before_5_4_the_pod_gets_shm_as_a_flag_and_before_5_0_no_pod() {
        let mut container = emitted();
        let pod = join_pod(&mut container, &caps(5, 2)).unwrap();
        let text = pod.render(&caps(5, 2)).unwrap();
        assert!(text.contains("\nPodmanArgs=--shm-size=16g\n"), "{text}");
        assert!(!text.contains("ShmSize="), "{text}");
        assert_eq!(container.notices.len(), 1, "{:?}", container.notices);
        assert!(container.notices[0].contains("needs 5.4.0"));
        let err = join_pod(&mut emitted(), &caps(4, 9))
            .unwrap_err()
            .to_string();
        assert!(err.contains("has no .pod units"), "{err}");
    }

    #[test]
    fn a_containerfile_session_builds_its_image_in_a_build_unit() {
        let image = ImageSource::Build {
            containerfile: PathBuf::from("/src/proj/Containerfile"),
            context: PathBuf::from("/src/proj"),
            args: BTreeMap::from([("CUDA".into(), "12.4 $x".into())]),
            tag: "localhost/proj:latest".into(),
        };
        let mut container = emitted();
        let build = image_unit(&image, &mut container, false, &caps(5, 4))
            .unwrap()
            .unwrap();
        assert_eq!(build.file_name(), "demo.build");
        assert_eq!(
            body(&build.render(&caps(5, 4)).unwrap()),
            "\nDescription=podlab build of localhost/proj:latest\n\n[Build]\n\
             ImageTag=localhost/proj:latest\nFile=/src/proj/Containerfile\n\
             SetWorkingDirectory=/src/proj\nPodmanArgs=\"--build-arg=CUDA=12.4 $$x\"\n\n\
             [Service]\nTimeoutStartSec=900\n"
        );
        let text = container.unit.render(&caps(5, 4)).unwrap();
        assert!(text.contains("\nImage=demo.build\n"), "{text}");
        assert!(container.notices.is_empty(), "{:?}", container.notices);
        // Issue 15: --pull-unit on a built image was ignored without a word.
        let mut asked = emitted();
        image_unit(&image, &mut asked, true, &caps(5, 4)).unwrap();
        assert!(
            asked
                .notices
                .iter()
                .any(|notice| notice.contains("--pull-unit")
                    && notice.contains("builds localhost/proj:latest")),
            "{:?}",
            asked.notices
        );

        let mut older = emitted();
        assert_eq!(
            image_unit(&image, &mut older, false, &caps(5, 1)).unwrap(),
            None
        );
        assert!(older.notices[0].contains("build it first with podlab build"));
        assert!(
            older
                .unit
                .render(&caps(5, 1))
                .unwrap()
                .contains("\nImage=localhost/demo:latest\n")
        );
    }

    #[test]
    fn a_named_image_gets_an_image_unit_only_when_asked() {
        let image = ImageSource::Name("docker.io/library/busybox:1".into());
        let mut container = emitted();
        assert_eq!(
            image_unit(&image, &mut container, false, &caps(5, 4)).unwrap(),
            None
        );
        let pull = image_unit(&image, &mut container, true, &caps(5, 4))
            .unwrap()
            .unwrap();
        assert!(
            pull.render(&caps(5, 4))
                .unwrap()
                .contains("\n[Image]\nImage=docker.io/library/busybox:1\n")
        );
        let text = container.unit.render(&caps(5, 4)).unwrap();
        assert!(text.contains("\nImage=demo.image\n"), "{text}");
        let err = image_unit(&image, &mut emitted(), true, &caps(4, 7))
            .unwrap_err()
            .to_string();
        assert!(err.contains("has no .image units"), "{err}");
    }
}
