//! A quadlet unit as typed data, and its one serializer.
//!
//! Each unit type has a struct whose fields are named after the keys they become (as in
//! podlet), so an emitter fills in fields and never writes text. [`Unit::render`] is the only
//! code that writes unit files: it escapes every value through [`super::escape`] by its key's
//! parser class and refuses any key the target Podman's quadlet does not know, because quadlet
//! rejects a whole file over one unknown key and systemd then says only "unit not found".
//!
//! Files start with podlab's header ([`crate::emit::header`]), so `podlab quadlet install`
//! can tell its own unedited files from edited ones and from files it never wrote.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::escape;
use crate::capabilities::{Capabilities, UnitType, quadlet_key_since};
pub use crate::emit::header::{Origin, origin, with_header};
use crate::{Error, Result};

/// One unit file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unit {
    /// The file name without its extension; the service is `<name>.service`.
    pub name: String,
    /// `[Unit] Description=`.
    pub description: String,
    pub body: Body,
    /// `[Service]`.
    pub service: Service,
    /// `[Install]`.
    pub install: Install,
}

/// The unit type's own section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    Container(Box<Container>),
    Kube(Kube),
    Pod(Pod),
    Image(Image),
    Build(Build),
}

/// `[Container]` of a `.container` unit.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Container {
    /// `Image=`.
    pub image: String,
    /// `ContainerName=`.
    pub container_name: Option<String>,
    /// `UserNS=` (4.5+).
    pub user_ns: Option<String>,
    /// `ShmSize=` (4.7+).
    pub shm_size: Option<String>,
    /// `WorkingDir=` (4.6+).
    pub working_dir: Option<String>,
    /// `SecurityLabelDisable=true`.
    pub security_label_disable: bool,
    /// `RunInit=true`: an init as PID 1 (`podman run --init`).
    pub run_init: bool,
    /// `AddDevice=`, one per device: a node (`HOST[:CTR]`) or a CDI name.
    pub add_device: Vec<String>,
    /// `Volume=`, one per mount: `HOST:CTR[:OPTIONS]`.
    pub volume: Vec<String>,
    /// `PublishPort=`, one per port: `IP:HOST:CTR/PROTO`.
    pub publish_port: Vec<String>,
    /// `Environment=`, one line per variable.
    pub environment: BTreeMap<String, String>,
    /// `Label=`, one line per label.
    pub label: BTreeMap<String, String>,
    /// `GlobalArgs=` (4.8+), one line per argument: podman's own flags, before `run`.
    pub global_args: Vec<String>,
    /// `PodmanArgs=`, one line per argument: `podman run` flags quadlet has no key for.
    pub podman_args: Vec<String>,
    /// `Secret=`, one per secret: `NAME[,type=env,target=VAR]`.
    pub secret: Vec<String>,
    /// `HealthCmd=`: a shell command; exit 0 means healthy.
    pub health_cmd: Option<String>,
    /// `HealthInterval=`: how often the check runs (`10s`).
    pub health_interval: Option<String>,
    /// `Notify=`: `healthy` (5.0+) reports the service started once the check first passes.
    pub notify: Option<String>,
    /// `AutoUpdate=` (4.6+): `registry` lets `podman auto-update` pull and restart.
    pub auto_update: Option<String>,
    /// `Exec=`: the command; empty keeps the image's.
    pub exec: Vec<String>,
    /// `Pod=` (5.0+): the `.pod` unit the container joins.
    pub pod: Option<String>,
}

/// `[Pod]` of a `.pod` unit (5.0+): what the pod's containers share. A container in a pod
/// cannot have its own user namespace (`--userns and --pod cannot be set together`), and its
/// own `--shm-size` is silently ignored there, so both belong to the pod.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pod {
    /// `PodName=`.
    pub pod_name: String,
    /// `UserNS=`.
    pub user_ns: Option<String>,
    /// `ShmSize=` (5.4+).
    pub shm_size: Option<String>,
    /// `PublishPort=`, one per port.
    pub publish_port: Vec<String>,
    /// `PodmanArgs=`, one line per argument: `podman pod create` flags the target has no key for.
    pub podman_args: Vec<String>,
}

/// `[Image]` of an `.image` unit (4.8+): pulls the image in a service of its own before the
/// services that use it start.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Image {
    /// `Image=`: the reference pulled.
    pub image: String,
}

/// `[Build]` of a `.build` unit (5.2+): builds the session's image from its Containerfile
/// before the services that use it start.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Build {
    /// `ImageTag=`: the tag the container runs.
    pub image_tag: String,
    /// `File=`: the Containerfile, absolute.
    pub file: String,
    /// `SetWorkingDirectory=`: the build context, absolute.
    pub set_working_directory: String,
    /// `PodmanArgs=`, one line per argument: the build args (`BuildArg=` is newer than 5.4).
    pub podman_args: Vec<String>,
}

/// `[Kube]` of a `.kube` unit.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Kube {
    /// `Yaml=`: the absolute path of the YAML that `podman kube play` runs.
    pub yaml: String,
    /// `GlobalArgs=` (4.8+), one line per argument.
    pub global_args: Vec<String>,
}

/// `[Service]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    /// `TimeoutStartSec=`: big images take minutes to pull.
    pub timeout_start_sec: u32,
    /// `Restart=`: `on-failure` for long-running services.
    pub restart: Option<String>,
    /// `SuccessExitStatus=`: exit codes that count as a clean stop. With `RunInit=true` a
    /// command stopped by SIGTERM makes the container exit 143 (128 + 15), which systemd
    /// would otherwise record as a failure.
    pub success_exit_status: Vec<u8>,
}

/// `[Install]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Install {
    /// `WantedBy=`: quadlet's generator applies it (`systemctl --user enable` cannot).
    pub wanted_by: Vec<String>,
}

impl Unit {
    pub fn unit_type(&self) -> UnitType {
        match self.body {
            Body::Container(_) => UnitType::Container,
            Body::Kube(_) => UnitType::Kube,
            Body::Pod(_) => UnitType::Pod,
            Body::Image(_) => UnitType::Image,
            Body::Build(_) => UnitType::Build,
        }
    }

    /// The file name: `<name>.<extension>`.
    pub fn file_name(&self) -> String {
        format!("{}.{}", self.name, self.unit_type().extension())
    }

    /// The file's text for the target Podman: podlab's header, then the sections.
    pub fn render(&self, caps: &Capabilities) -> Result<String> {
        let unit_type = self.unit_type();
        check_unit_type(caps, unit_type)?;
        let mut body = String::new();
        let unit = [(
            "Description",
            escape::raw("Description", &self.description)?,
        )];
        section(&mut body, "Unit", &unit);
        let (name, lines) = match &self.body {
            Body::Container(container) => ("Container", container.lines()?),
            Body::Kube(kube) => ("Kube", kube.lines()?),
            Body::Pod(pod) => ("Pod", pod.lines()?),
            Body::Image(image) => (
                "Image",
                vec![("Image", escape::unquoted("Image", &image.image)?)],
            ),
            Body::Build(build) => ("Build", build.lines()?),
        };
        for (key, _) in &lines {
            if !caps.has_quadlet_key(unit_type, key) {
                return Err(Error::user(format!(
                    "podman {}'s quadlet does not know {key}= in .{} units: it needs podman {}",
                    caps.version(),
                    unit_type.extension(),
                    quadlet_key_since(unit_type, key)
                ))
                .hint("target a newer podman with --podman-version, or drop the setting that needs it"));
            }
        }
        section(&mut body, name, &lines);
        let mut service = vec![(
            "TimeoutStartSec",
            self.service.timeout_start_sec.to_string(),
        )];
        if let Some(restart) = &self.service.restart {
            service.push(("Restart", escape::raw("Restart", restart)?));
        }
        if !self.service.success_exit_status.is_empty() {
            let codes: Vec<String> = self
                .service
                .success_exit_status
                .iter()
                .map(ToString::to_string)
                .collect();
            service.push(("SuccessExitStatus", codes.join(" ")));
        }
        section(&mut body, "Service", &service);
        let install: Vec<_> = self
            .install
            .wanted_by
            .iter()
            .map(|target| ("WantedBy", target.clone()))
            .collect();
        section(&mut body, "Install", &install);
        Ok(with_header(&body))
    }
}

/// Fails when the target Podman's quadlet does not read `unit_type` files.
pub fn check_unit_type(caps: &Capabilities, unit_type: UnitType) -> Result<()> {
    if caps.has_unit_type(unit_type) {
        return Ok(());
    }
    Err(Error::user(format!(
        "podman {} has no .{} units: they need podman {} or newer",
        caps.version(),
        unit_type.extension(),
        unit_type.since()
    ))
    .hint("pick another --kind, or a newer --podman-version"))
}

fn section(out: &mut String, name: &str, lines: &[(&'static str, String)]) {
    if lines.is_empty() {
        return;
    }
    if !out.is_empty() {
        out.push('\n');
    }
    let _ = writeln!(out, "[{name}]");
    for (key, value) in lines {
        let _ = writeln!(out, "{key}={value}");
    }
}

type Lines = Vec<(&'static str, String)>;

impl Container {
    /// The `[Container]` lines, escaped, in a fixed order.
    fn lines(&self) -> Result<Lines> {
        let mut lines = vec![("Image", escape::unquoted("Image", &self.image)?)];
        let single = [
            ("ContainerName", &self.container_name),
            ("UserNS", &self.user_ns),
            ("ShmSize", &self.shm_size),
            ("WorkingDir", &self.working_dir),
            ("HealthCmd", &self.health_cmd),
            ("HealthInterval", &self.health_interval),
            ("Notify", &self.notify),
            ("AutoUpdate", &self.auto_update),
            ("Pod", &self.pod),
        ];
        for (key, value) in single {
            if let Some(value) = value {
                lines.push((key, escape::unquoted(key, value)?));
            }
        }
        if self.security_label_disable {
            lines.push(("SecurityLabelDisable", "true".to_owned()));
        }
        if self.run_init {
            lines.push(("RunInit", "true".to_owned()));
        }
        for device in &self.add_device {
            lines.push(("AddDevice", escape::word("AddDevice", device)?));
        }
        for (key, values) in [
            ("Volume", &self.volume),
            ("PublishPort", &self.publish_port),
        ] {
            for value in values {
                lines.push((key, escape::raw(key, value)?));
            }
        }
        for (key, map) in [("Environment", &self.environment), ("Label", &self.label)] {
            for (name, value) in map {
                lines.push((key, escape::assignment(key, name, value)?));
            }
        }
        args(&mut lines, "GlobalArgs", &self.global_args)?;
        args(&mut lines, "PodmanArgs", &self.podman_args)?;
        args(&mut lines, "Secret", &self.secret)?;
        if !self.exec.is_empty() {
            let words: Vec<&str> = self.exec.iter().map(String::as_str).collect();
            lines.push(("Exec", escape::exec("Exec", &words)?));
        }
        Ok(lines)
    }
}

impl Pod {
    fn lines(&self) -> Result<Lines> {
        let mut lines = vec![("PodName", escape::unquoted("PodName", &self.pod_name)?)];
        for (key, value) in [("UserNS", &self.user_ns), ("ShmSize", &self.shm_size)] {
            if let Some(value) = value {
                lines.push((key, escape::unquoted(key, value)?));
            }
        }
        for port in &self.publish_port {
            lines.push(("PublishPort", escape::raw("PublishPort", port)?));
        }
        args(&mut lines, "PodmanArgs", &self.podman_args)?;
        Ok(lines)
    }
}

impl Build {
    fn lines(&self) -> Result<Lines> {
        let mut lines = vec![
            ("ImageTag", escape::word("ImageTag", &self.image_tag)?),
            ("File", escape::unquoted("File", &self.file)?),
            (
                "SetWorkingDirectory",
                escape::unquoted("SetWorkingDirectory", &self.set_working_directory)?,
            ),
        ];
        args(&mut lines, "PodmanArgs", &self.podman_args)?;
        Ok(lines)
    }
}

impl Kube {
    fn lines(&self) -> Result<Lines> {
        let mut lines = vec![("Yaml", escape::unquoted("Yaml", &self.yaml)?)];
        args(&mut lines, "GlobalArgs", &self.global_args)?;
        Ok(lines)
    }
}

/// One exec-class line per argument.
fn args(lines: &mut Lines, key: &'static str, values: &[String]) -> Result<()> {
    for value in values {
        lines.push((key, escape::exec(key, &[value])?));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capabilities::PodmanVersion;

    fn caps(major: u32, minor: u32) -> Capabilities {
        Capabilities::for_version(PodmanVersion::new(major, minor, 0))
    }

    fn unit(container: Container) -> Unit {
        Unit {
            name: "demo".into(),
            description: "podlab demo".into(),
            body: Body::Container(Box::new(container)),
            service: Service {
                timeout_start_sec: 900,
                restart: None,
                success_exit_status: Vec::new(),
            },
            install: Install {
                wanted_by: vec!["default.target".into()],
            },
        }
    }

    #[test]
    fn renders_sections_in_order_with_escaped_values() {
        let text = unit(Container {
            image: "localhost/img:latest".into(),
            shm_size: Some("16g".into()),
            environment: BTreeMap::from([("A".into(), "50% $HOME".into())]),
            exec: vec!["echo".into(), "a b".into()],
            ..Container::default()
        })
        .render(&caps(5, 4))
        .unwrap();
        let body = text.split_once("\n[Unit]").unwrap().1;
        assert_eq!(
            body,
            "\nDescription=podlab demo\n\n[Container]\nImage=localhost/img:latest\nShmSize=16g\n\
             Environment=\"A=50%% $$HOME\"\nExec=echo \"a b\"\n\n[Service]\nTimeoutStartSec=900\n\n\
             [Install]\nWantedBy=default.target\n"
        );
        assert_eq!(origin(&text), Origin::Unedited);
        assert_eq!(origin(&text.replace("16g", "8g")), Origin::Edited);
        assert_eq!(origin("[Container]\nImage=x\n"), Origin::Foreign);
    }

    #[test]
    fn keys_and_types_the_target_lacks_are_errors() {
        let container = unit(Container {
            image: "i".into(),
            shm_size: Some("1g".into()),
            ..Container::default()
        });
        let err = container.render(&caps(4, 6)).unwrap_err().to_string();
        assert!(
            err.contains("podman 4.6.0's quadlet does not know ShmSize= in .container units: it needs podman 4.7.0"),
            "{err}"
        );
        let err = container.render(&caps(4, 3)).unwrap_err().to_string();
        assert!(err.contains("has no .container units"), "{err}");
    }

    #[test]
    fn an_unrepresentable_value_names_its_key() {
        let err = unit(Container {
            image: "i".into(),
            volume: vec!["/a\nb:/c".into()],
            ..Container::default()
        })
        .render(&caps(5, 4))
        .unwrap_err()
        .to_string();
        assert!(err.contains("Volume=\"/a\\nb:/c\""), "{err}");
    }
}
