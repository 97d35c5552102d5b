//! The resolved session: everything a podlab container is, as plain data.
//!
//! Data flows one way. The command line, `podlab.toml` (its top level and one preset) and
//! the environment each give a partial [`Settings`] layer; [`resolve`] merges them (flags >
//! `PODLAB_*` variables > preset > file > defaults), expands and checks host paths, and
//! returns one [`Session`]. The emitters (the podman create body, Kubernetes YAML, quadlet
//! units) only serialize a `Session`, so every rule about mounts, ports or defaults lives
//! here and nowhere else.

pub mod config;
pub mod inspected;
pub mod scaffold;
pub mod values;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Component, Path, PathBuf};

use serde::{Serialize, Serializer};

use crate::gpu::DriverRoots;
use crate::{Error, Result};
pub use config::ProjectFile;
pub use values::{ByteSize, GpuRequest, GpuSelector, Port, Protocol, UserMapping};

/// The working dir, where the project directory is mounted, unless configured.
pub const DEFAULT_WORKDIR: &str = "/workspace";
/// Shared memory unless configured: PyTorch's DataLoader workers pass tensors through it.
pub const DEFAULT_SHM_SIZE: ByteSize = ByteSize(16 << 30);

/// One session, resolved: what `podlab shell`, `run`, `kube` and `quadlet` turn into a
/// container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Session {
    /// The project's name: its directory's name, lowercase `[a-z0-9-]`.
    pub project: String,
    /// The directory holding `podlab.toml`, or the current directory without one.
    pub project_dir: PathBuf,
    /// The `podlab.toml` read, if any.
    pub config_file: Option<PathBuf>,
    /// The preset of `podlab.toml` applied, if any.
    pub preset: Option<String>,
    /// The container name; `None`: generated at run time.
    pub name: Option<String>,
    pub image: ImageSource,
    pub gpus: GpuRequest,
    /// `/dev/shm` size in bytes.
    pub shm_size: ByteSize,
    /// The container's working dir, where the project directory is mounted.
    pub workdir: String,
    /// The project directory at `workdir` (read-write) first, then the configured mounts.
    pub mounts: Vec<Mount>,
    pub env: BTreeMap<String, String>,
    pub ports: Vec<Port>,
    pub user_map: UserMapping,
    /// Where GPU discovery looks.
    #[serde(serialize_with = "serialize_roots")]
    pub driver_roots: DriverRoots,
    /// The command; empty: the image's own.
    pub command: Vec<String>,
    /// Podman secrets set as env variables (from a container's inspect data: a notebook's
    /// token); the value never passes through podlab.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub secrets: Vec<EnvSecret>,
}

/// A Podman secret set as the env variable `target` (`--secret NAME,type=env,target=VAR`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EnvSecret {
    /// The Podman secret's name.
    pub name: String,
    /// The env variable it becomes.
    pub target: String,
}

#[cfg(test)]
impl Session {
    /// A session for unit tests to start from (`Session { name: .., ..Session::example() }`):
    /// project `demo` in `/home/a/demo` mounted at `/workspace`, `localhost/img`, no GPUs, a
    /// 1 GiB `/dev/shm`, nothing else.
    pub fn example() -> Self {
        Self {
            project: "demo".into(),
            project_dir: "/home/a/demo".into(),
            config_file: None,
            preset: None,
            name: None,
            image: ImageSource::Name("localhost/img".into()),
            gpus: GpuRequest::None,
            shm_size: ByteSize(1 << 30),
            workdir: "/workspace".into(),
            mounts: vec![Mount {
                host: "/home/a/demo".into(),
                container: "/workspace".into(),
                read_only: false,
            }],
            env: BTreeMap::new(),
            ports: Vec::new(),
            user_map: UserMapping::Auto,
            driver_roots: DriverRoots::default(),
            command: Vec::new(),
            secrets: Vec::new(),
        }
    }
}

/// Where the image comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ImageSource {
    /// Pulled (or already local) by name.
    Name(String),
    /// Built from a Containerfile, then run as `tag`.
    Build {
        containerfile: PathBuf,
        context: PathBuf,
        args: BTreeMap<String, String>,
        /// `localhost/<project>-<hash of its path>:latest` unless configured (see [`default_tag`]).
        tag: String,
    },
}

impl ImageSource {
    /// The image reference the container runs.
    pub fn reference(&self) -> &str {
        match self {
            Self::Name(name) => name,
            Self::Build { tag, .. } => tag,
        }
    }
}

/// A bind mount.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Mount {
    /// Absolute, with `~` expanded; it exists.
    pub host: PathBuf,
    pub container: String,
    pub read_only: bool,
}

fn serialize_roots<S: Serializer>(roots: &DriverRoots, serializer: S) -> Result<S::Ok, S::Error> {
    #[derive(Serialize)]
    struct Roots<'a> {
        driver_root: &'a Path,
        dev_root: &'a Path,
    }
    Roots {
        driver_root: &roots.driver_root,
        dev_root: &roots.dev_root,
    }
    .serialize(serializer)
}

/// Where a setting came from, named in errors: a flag, or a key at a line and column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    Flag(String),
    File {
        file: String,
        line: usize,
        column: usize,
        key: String,
    },
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Flag(flag) => f.write_str(flag),
            Self::File {
                file,
                line,
                column,
                key,
            } => write!(f, "{file}:{line}:{column}: {key}"),
        }
    }
}

/// A host path as written, with where it was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPath {
    /// As written: maybe relative, maybe starting with `~`.
    pub path: PathBuf,
    pub origin: Origin,
}

/// One layer of settings (flags, a preset, the file's top level); `None` and empty leave the
/// layer below in force. Host paths are kept as written and expanded by [`resolve`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Settings {
    pub image: Option<ImageSetting>,
    pub gpus: Option<GpuRequest>,
    pub shm_size: Option<ByteSize>,
    pub workdir: Option<String>,
    /// Added to the layers below; one at the same container path replaces theirs.
    pub mounts: Vec<MountSetting>,
    /// Added to the layers below, variable by variable.
    pub env: BTreeMap<String, String>,
    /// Added to the layers below; one on the same host address and port replaces theirs.
    pub ports: Vec<Port>,
    pub user_map: Option<UserMapping>,
    pub driver_root: Option<HostPath>,
    pub dev_root: Option<HostPath>,
    pub command: Option<Vec<String>>,
}

/// An image setting before its paths are expanded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageSetting {
    Name(String),
    Build {
        /// `Containerfile` in the project directory unless set.
        containerfile: Option<HostPath>,
        /// The project directory unless set.
        context: Option<HostPath>,
        args: BTreeMap<String, String>,
        tag: Option<String>,
    },
}

/// A mount setting before its host path is expanded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountSetting {
    pub host: HostPath,
    pub container: String,
    pub read_only: bool,
}

/// Everything [`resolve`] reads.
#[derive(Debug, Clone)]
pub struct Inputs<'a> {
    /// Relative host paths on the command line are relative to it.
    pub cwd: &'a Path,
    /// For `~`.
    pub home: Option<&'a Path>,
    /// The project's `podlab.toml`, if any; relative paths in it are relative to its directory.
    pub file: Option<ProjectFile>,
    pub flags: Settings,
    pub preset: Option<String>,
    pub name: Option<String>,
}

/// The session in `cwd`: `flags` (the top layer) merged with the nearest `podlab.toml`
/// (searched upward from `cwd`), its `preset`, and the defaults.
pub fn resolve_in(
    cwd: &Path,
    home: Option<&Path>,
    flags: Settings,
    preset: Option<String>,
    name: Option<String>,
) -> Result<Session> {
    let file = ProjectFile::find(cwd)
        .map(|path| ProjectFile::load(&path, cwd))
        .transpose()?;
    resolve(Inputs {
        cwd,
        home,
        file,
        flags,
        preset,
        name,
    })
}

/// Merges the layers into one checked [`Session`].
pub fn resolve(inputs: Inputs<'_>) -> Result<Session> {
    let Inputs {
        cwd,
        home,
        file,
        flags,
        preset,
        name,
    } = inputs;
    let project_dir = file
        .as_ref()
        .and_then(|file| file.path.parent())
        .unwrap_or(cwd)
        .to_path_buf();
    let project = project_name(&project_dir);
    let config_file = file.as_ref().map(|file| file.path.clone());
    let mut layers: Vec<(Settings, &Path)> = Vec::new();
    if let Some(mut file) = file {
        let preset_layer = match &preset {
            Some(wanted) => Some(file.presets.remove(wanted).ok_or_else(|| {
                let known: Vec<&str> = file.presets.keys().map(String::as_str).collect();
                Error::user(format!("{} has no preset {wanted:?}", file.path.display())).hint(
                    if known.is_empty() {
                        "add a [presets.NAME] table to podlab.toml, or drop --preset".to_owned()
                    } else {
                        format!("presets defined there: {}", known.join(", "))
                    },
                )
            })?),
            None => None,
        };
        layers.push((file.base, &project_dir));
        layers.extend(preset_layer.map(|layer| (layer, project_dir.as_path())));
    } else if let Some(wanted) = &preset {
        return Err(
            Error::user(format!("no podlab.toml defines preset {wanted:?}"))
                .hint("presets live in podlab.toml (podlab init writes one), found by searching up from the current directory"),
        );
    }
    layers.push((flags, cwd));

    let mut merged = Merged::default();
    for (layer, base) in layers {
        merged.apply(layer, base, home)?;
    }
    merged.finish(project, project_dir, config_file, preset, name)
}

/// The layers merged so far, host paths expanded but not yet checked.
#[derive(Debug, Default)]
struct Merged {
    image: Option<(ImageSource, Vec<(PathBuf, Origin)>)>,
    gpus: GpuRequest,
    shm_size: Option<ByteSize>,
    workdir: Option<String>,
    mounts: Vec<(Mount, Origin)>,
    env: BTreeMap<String, String>,
    ports: Vec<Port>,
    user_map: UserMapping,
    driver_root: Option<(PathBuf, Origin)>,
    dev_root: Option<(PathBuf, Origin)>,
    command: Vec<String>,
}

impl Merged {
    fn apply(&mut self, layer: Settings, base: &Path, home: Option<&Path>) -> Result<()> {
        let expand = |host: HostPath| -> Result<(PathBuf, Origin)> {
            Ok((expand_path(&host, base, home)?, host.origin))
        };
        if let Some(image) = layer.image {
            self.image = Some(match image {
                ImageSetting::Name(name) => (ImageSource::Name(name), Vec::new()),
                ImageSetting::Build {
                    containerfile,
                    context,
                    args,
                    tag,
                } => {
                    let containerfile = containerfile.map(expand).transpose()?;
                    let context = context.map(expand).transpose()?;
                    let source = ImageSource::Build {
                        containerfile: containerfile
                            .as_ref()
                            .map_or_else(|| base.join("Containerfile"), |(path, _)| path.clone()),
                        context: context
                            .as_ref()
                            .map_or_else(|| base.to_path_buf(), |(path, _)| path.clone()),
                        args,
                        // Filled in by `finish`, which knows the project.
                        tag: tag.unwrap_or_default(),
                    };
                    (source, containerfile.into_iter().chain(context).collect())
                }
            });
        }
        if let Some(gpus) = layer.gpus {
            self.gpus = gpus;
        }
        self.shm_size = layer.shm_size.or(self.shm_size);
        self.workdir = layer.workdir.or(self.workdir.take());
        let mut added: Vec<(Mount, Origin)> = Vec::new();
        for mount in layer.mounts {
            let (host, origin) = expand(mount.host)?;
            if let Some((_, first)) = added.iter().find(|(m, _)| m.container == mount.container) {
                return Err(Error::user(format!(
                    "{origin}: two mounts at {} (the other: {first})",
                    mount.container
                ))
                .hint("mount each container path once"));
            }
            added.push((
                Mount {
                    host,
                    container: mount.container,
                    read_only: mount.read_only,
                },
                origin,
            ));
        }
        self.mounts
            .retain(|(old, _)| !added.iter().any(|(new, _)| new.container == old.container));
        self.mounts.extend(added);
        self.env.extend(layer.env);
        for (index, port) in layer.ports.iter().enumerate() {
            if layer
                .ports
                .iter()
                .take(index)
                .any(|other| other.same_binding(port))
            {
                return Err(Error::user(format!("port {port} is published twice"))
                    .hint("publish each host address and port once"));
            }
        }
        self.ports
            .retain(|old| !layer.ports.iter().any(|new| new.same_binding(old)));
        self.ports.extend(layer.ports);
        if let Some(user_map) = layer.user_map {
            self.user_map = user_map;
        }
        if let Some(root) = layer.driver_root {
            self.driver_root = Some(expand(root)?);
        }
        if let Some(root) = layer.dev_root {
            self.dev_root = Some(expand(root)?);
        }
        if let Some(command) = layer.command {
            self.command = command;
        }
        Ok(())
    }

    fn finish(
        self,
        project: String,
        project_dir: PathBuf,
        config_file: Option<PathBuf>,
        preset: Option<String>,
        name: Option<String>,
    ) -> Result<Session> {
        let Some((mut image, image_paths)) = self.image else {
            return Err(Error::user("no image for this session").hint(
                "pass --image IMAGE, or set image (or [build]) in podlab.toml; podlab init writes one with a Containerfile",
            ));
        };
        if let ImageSource::Build {
            containerfile,
            context,
            tag,
            ..
        } = &mut image
        {
            if tag.is_empty() {
                *tag = default_tag(&project, &project_dir);
            }
            let build_inputs = [
                (&*containerfile, false, "Containerfile"),
                (&*context, true, "build context"),
            ];
            for (path, dir, what) in build_inputs {
                let origin = image_paths.iter().find(|(p, _)| p == path).map(|(_, o)| o);
                check_exists(path, dir, origin, what).map_err(|err| {
                    err.hint("podlab init writes a Containerfile; or set [build] containerfile and context in podlab.toml")
                })?;
            }
        }
        let workdir = self.workdir.unwrap_or_else(|| DEFAULT_WORKDIR.to_owned());
        let mut mounts = vec![Mount {
            host: project_dir.clone(),
            container: workdir.clone(),
            read_only: false,
        }];
        for (mount, origin) in self.mounts {
            if mount.container == workdir {
                return Err(Error::user(format!(
                    "{origin}: {workdir} is the working dir, where the project directory is mounted"
                ))
                .hint(
                    "mount it elsewhere (for example /data), or move the project with --workdir",
                ));
            }
            check_exists(&mount.host, false, Some(&origin), "mount source")?;
            mounts.push(mount);
        }
        let roots = check_roots(self.driver_root, self.dev_root)?;
        Ok(Session {
            project,
            project_dir,
            config_file,
            preset,
            name,
            image,
            gpus: self.gpus,
            shm_size: self.shm_size.unwrap_or(DEFAULT_SHM_SIZE),
            workdir,
            mounts,
            env: self.env,
            ports: self.ports,
            user_map: self.user_map,
            driver_roots: roots,
            command: self.command,
            secrets: Vec::new(),
        })
    }
}

/// The driver and dev roots, `/` unless set; a set one must be a directory.
fn check_roots(
    driver_root: Option<(PathBuf, Origin)>,
    dev_root: Option<(PathBuf, Origin)>,
) -> Result<DriverRoots> {
    let mut roots = DriverRoots::default();
    if let Some((path, origin)) = driver_root {
        check_exists(&path, true, Some(&origin), "driver root")?;
        roots.driver_root = path;
    }
    if let Some((path, origin)) = dev_root {
        check_exists(&path, true, Some(&origin), "dev root")?;
        roots.dev_root = path;
    }
    Ok(roots)
}

/// Fails unless `path` exists (and is a directory when `dir`); podlab never creates mount
/// sources, because a typo would silently become an empty data set.
fn check_exists(path: &Path, dir: bool, origin: Option<&Origin>, what: &str) -> Result<()> {
    let prefix = origin
        .map(|origin| format!("{origin}: "))
        .unwrap_or_default();
    match std::fs::metadata(path) {
        Ok(meta) if dir && !meta.is_dir() => Err(Error::user(format!(
            "{prefix}{what} {} is not a directory",
            path.display()
        ))
        .hint("point it at a directory")),
        Ok(_) => Ok(()),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Err(Error::user(format!(
            "{prefix}{what} {} does not exist",
            path.display()
        ))
        .hint("create it or fix the path; podlab never creates it for you")),
        Err(err) => Err(Error::user(format!(
            "{prefix}cannot read {what} {}: {err}",
            path.display()
        ))
        .hint("check the path and its permissions")),
    }
}

/// `~` and `~/x` against `home`, relative paths against `base`, `.` components removed.
fn expand_path(host: &HostPath, base: &Path, home: Option<&Path>) -> Result<PathBuf> {
    let path = &host.path;
    let expanded = match path.strip_prefix("~") {
        Ok(rest) => {
            let home = home.ok_or_else(|| {
                Error::user(format!(
                    "{}: cannot expand ~ in {}: HOME is not set",
                    host.origin,
                    path.display()
                ))
                .hint("write the path in full")
            })?;
            home.join(rest)
        }
        Err(_) => base.join(path),
    };
    Ok(expanded
        .components()
        .filter(|part| *part != Component::CurDir)
        .collect())
}

/// The project's name from its directory: lowercase `[a-z0-9-]`, runs of anything else
/// become one `-`; `project` when nothing is left.
/// The image tag of a project's build when `[build] tag` names none:
/// `localhost/PROJECT-HASH:latest`, HASH the first 8 hex digits of the SHA-256 of the
/// project's canonical path, so that two projects with the same folder name (`~/p2` and
/// `~/other/p2`) never build over each other's image.
pub fn default_tag(project: &str, project_dir: &Path) -> String {
    let dir = std::fs::canonicalize(project_dir).unwrap_or_else(|_| project_dir.to_owned());
    let hash = crate::cdi::document::sha256_hex(dir.as_os_str().as_encoded_bytes());
    format!(
        "localhost/{project}-{}:latest",
        hash.get(..8).unwrap_or(&hash)
    )
}

pub fn project_name(dir: &Path) -> String {
    let raw = dir
        .file_name()
        .map(|name| name.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    let mut name = String::with_capacity(raw.len());
    for c in raw.chars() {
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            name.push(c);
        } else if !name.ends_with('-') {
            name.push('-');
        }
    }
    let name = name.trim_matches('-');
    if name.is_empty() {
        "project".to_owned()
    } else {
        name.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;

    fn flag(path: &str) -> HostPath {
        HostPath {
            path: path.into(),
            origin: Origin::Flag("--volume".into()),
        }
    }

    fn inputs(cwd: &Path, file: Option<ProjectFile>, flags: Settings) -> Inputs<'_> {
        Inputs {
            cwd,
            home: None,
            file,
            flags,
            preset: None,
            name: None,
        }
    }

    fn with_image() -> Settings {
        Settings {
            image: Some(ImageSetting::Name("img".into())),
            ..Settings::default()
        }
    }

    #[test]
    fn flags_alone_describe_a_session_with_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let cwd = dir.path().join("My Project_2");
        fs::create_dir(&cwd).unwrap();
        let session = resolve(inputs(&cwd, None, with_image())).unwrap();
        assert_eq!(session.project, "my-project-2");
        assert_eq!(session.project_dir, cwd);
        assert_eq!(session.image, ImageSource::Name("img".into()));
        assert_eq!(session.gpus, GpuRequest::Auto);
        assert_eq!(session.shm_size, ByteSize(16 << 30));
        assert_eq!(session.workdir, "/workspace");
        assert_eq!(
            session.mounts,
            vec![Mount {
                host: cwd.clone(),
                container: "/workspace".into(),
                read_only: false
            }]
        );
        assert_eq!(session.user_map, UserMapping::Auto);
        assert_eq!(session.driver_roots, DriverRoots::default());
        assert!(session.command.is_empty() && session.ports.is_empty());
    }

    #[test]
    fn no_image_is_an_error_with_a_hint() {
        let dir = tempfile::tempdir().unwrap();
        let err = resolve(inputs(dir.path(), None, Settings::default())).unwrap_err();
        assert_eq!(err.message(), "no image for this session");
        assert!(err.hint_text().unwrap().contains("--image"));
    }

    #[test]
    fn tilde_expands_against_home_and_relative_paths_against_the_base() {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("home");
        fs::create_dir_all(home.join("datasets")).unwrap();
        fs::create_dir_all(dir.path().join("data")).unwrap();
        let mut flags = with_image();
        flags.mounts = vec![
            MountSetting {
                host: flag("~/datasets"),
                container: "/datasets".into(),
                read_only: true,
            },
            MountSetting {
                host: flag("./data"),
                container: "/data".into(),
                read_only: false,
            },
        ];
        let mut inputs = inputs(dir.path(), None, flags);
        inputs.home = Some(&home);
        let session = resolve(inputs).unwrap();
        let mounts: Vec<_> = session.mounts.iter().map(|m| m.host.clone()).collect();
        assert_eq!(
            mounts,
            vec![
                dir.path().to_path_buf(),
                home.join("datasets"),
                dir.path().join("data")
            ]
        );
        assert!(session.mounts[1].read_only);
    }

    #[test]
    fn a_missing_host_path_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let mut flags = with_image();
        flags.mounts = vec![MountSetting {
            host: flag("nope"),
            container: "/data".into(),
            read_only: false,
        }];
        let err = resolve(inputs(dir.path(), None, flags)).unwrap_err();
        let missing = dir.path().join("nope");
        assert_eq!(
            err.message(),
            format!(
                "--volume: mount source {} does not exist",
                missing.display()
            )
        );
        assert!(!missing.exists(), "never created");
    }

    #[test]
    fn a_mount_at_the_workdir_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut flags = with_image();
        flags.mounts = vec![MountSetting {
            host: flag("."),
            container: "/workspace".into(),
            read_only: false,
        }];
        let err = resolve(inputs(dir.path(), None, flags)).unwrap_err();
        assert!(err.message().contains("working dir"), "{err}");
    }

    #[test]
    fn a_bad_driver_root_names_its_origin() {
        let dir = tempfile::tempdir().unwrap();
        let mut flags = with_image();
        flags.driver_root = Some(HostPath {
            path: "/nonexistent/driver".into(),
            origin: Origin::Flag("--driver-root".into()),
        });
        let err = resolve(inputs(dir.path(), None, flags)).unwrap_err();
        assert_eq!(
            err.message(),
            "--driver-root: driver root /nonexistent/driver does not exist"
        );
    }

    #[test]
    fn later_layers_replace_ports_on_the_same_binding_and_add_others() {
        let dir = tempfile::tempdir().unwrap();
        let mut file = ProjectFile::parse(
            "image = \"a\"\nports = [\"8888\", \"6006\"]\n",
            dir.path().join("podlab.toml"),
            "podlab.toml",
        )
        .unwrap();
        file.base.ports.push("8080:80".parse().unwrap());
        let flags = Settings {
            ports: vec!["8888:9999".parse().unwrap(), "7000".parse().unwrap()],
            ..Settings::default()
        };
        let session = resolve(inputs(dir.path(), Some(file), flags)).unwrap();
        let ports: Vec<String> = session.ports.iter().map(ToString::to_string).collect();
        assert_eq!(
            ports,
            [
                "127.0.0.1:6006:6006/tcp",
                "127.0.0.1:8080:80/tcp",
                "127.0.0.1:8888:9999/tcp",
                "127.0.0.1:7000:7000/tcp"
            ]
        );
        let flags = Settings {
            ports: vec!["1".parse().unwrap(), "1:2".parse().unwrap()],
            ..Settings::default()
        };
        let err = resolve(inputs(dir.path(), None, flags)).unwrap_err();
        assert!(err.message().contains("published twice"), "{err}");
    }

    #[test]
    fn an_unknown_preset_lists_the_known_ones() {
        let dir = tempfile::tempdir().unwrap();
        let file = ProjectFile::parse(
            "image = \"a\"\n[presets.notebook]\n[presets.train]\n",
            dir.path().join("podlab.toml"),
            "podlab.toml",
        )
        .unwrap();
        let mut inputs = inputs(dir.path(), Some(file), Settings::default());
        inputs.preset = Some("nb".into());
        let err = resolve(inputs).unwrap_err();
        assert!(err.message().ends_with("has no preset \"nb\""), "{err}");
        assert_eq!(
            err.hint_text(),
            Some("presets defined there: notebook, train")
        );
        let mut no_file = self::inputs(dir.path(), None, with_image());
        no_file.preset = Some("nb".into());
        assert!(resolve(no_file).is_err());
    }

    #[test]
    fn w4_two_projects_with_the_same_folder_name_get_different_default_tags() {
        let root = tempfile::tempdir().unwrap();
        let one = root.path().join("p2");
        let two = root.path().join("other/p2");
        fs::create_dir_all(&one).unwrap();
        fs::create_dir_all(&two).unwrap();
        let (a, b) = (default_tag("p2", &one), default_tag("p2", &two));
        assert_ne!(a, b);
        assert!(
            a.starts_with("localhost/p2-") && a.ends_with(":latest"),
            "{a}"
        );
        assert_eq!(
            a,
            default_tag("p2", &root.path().join("other/../p2")),
            "canonical"
        );
    }

    #[test]
    fn project_names() {
        assert_eq!(project_name(Path::new("/x/My_Lab 2")), "my-lab-2");
        assert_eq!(project_name(Path::new("/x/--a--")), "a");
        assert_eq!(project_name(Path::new("/")), "project");
        assert_eq!(project_name(Path::new("/x/Ünï")), "n");
    }
}
