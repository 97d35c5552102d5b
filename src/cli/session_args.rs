//! The session flags, one `clap` group flattened into every command that starts or
//! describes a session (`shell`, `run`, `config`, later `kube generate` and `quadlet
//! generate`), so that a flag means the same everywhere. Flags only parse here; merging
//! them with `podlab.toml` is [`crate::session::resolve`]'s job.

use std::path::{Path, PathBuf};

use crate::Result;
use crate::engine::Engine;
use crate::gpu::DriverRoots;
use crate::session::values::{self, EnvArg, Volume};
use crate::session::{
    self, ByteSize, GpuRequest, HostPath, ImageSetting, MountSetting, Origin, Port, Session,
    Settings, UserMapping,
};

pub use crate::host::current_dir;

/// Session flags; each overrides podlab.toml (and its preset), which overrides the defaults.
#[derive(Debug, Clone, Default, clap::Args)]
#[command(next_help_heading = "Session")]
pub struct SessionArgs {
    /// Image to run, instead of podlab.toml's image or [build].
    #[arg(long, value_name = "IMAGE", value_parser = values::image_name)]
    pub image: Option<String>,
    /// GPUs: all, none, indices (0,1, not a count) or UUIDs (GPU-…) [default: auto: all when
    /// the host has GPUs, none otherwise]
    #[arg(long, value_name = "all|none|0,1|GPU-UUID", value_parser = values::parse_gpus)]
    pub gpus: Option<GpuRequest>,
    /// Size of /dev/shm: 16g, 512m, or bytes [default: 16g]
    #[arg(long, value_name = "SIZE")]
    pub shm_size: Option<ByteSize>,
    /// Bind-mount HOST at CTR, read-write unless :ro; ~ and relative paths are expanded, and
    /// HOST must exist (repeatable).
    #[arg(short = 'v', long = "volume", value_name = "HOST:CTR[:ro]", value_parser = values::parse_volume)]
    pub volumes: Vec<Volume>,
    /// Set K=V in the container; a bare K passes K's value from this environment (repeatable).
    #[arg(short, long = "env", value_name = "K=V|K", value_parser = values::parse_env)]
    pub env: Vec<EnvArg>,
    /// Publish a port on 127.0.0.1 unless IP is given; HOST defaults to CTR; IPv6 in
    /// brackets: [::1]:8888:8888 (repeatable).
    #[arg(short, long = "publish", value_name = "[IP:]HOST:CTR[/udp]")]
    pub publish: Vec<Port>,
    /// Working dir in the container, where the project directory is mounted [default:
    /// /workspace]
    #[arg(long, value_name = "DIR", value_parser = values::container_path)]
    pub workdir: Option<String>,
    /// Container name [default: generated]
    #[arg(long, value_parser = values::container_name)]
    pub name: Option<String>,
    /// Apply podlab.toml's [presets.NAME] over its top level.
    #[arg(long, value_name = "NAME")]
    pub preset: Option<String>,
    /// Who owns files written in mounts: auto (your user maps onto the image's non-root user),
    /// keep-id, or the UID:GID of the image's user [default: auto]
    #[arg(long, value_name = "auto|keep-id|UID:GID")]
    pub user_map: Option<UserMapping>,
    #[command(flatten)]
    pub roots: RootArgs,
}

/// Where GPU discovery looks.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct RootArgs {
    /// Root of the driver's files (libraries, binaries), e.g. /run/nvidia/driver [default: /]
    #[arg(long, env = "PODLAB_DRIVER_ROOT", value_name = "DIR")]
    pub driver_root: Option<PathBuf>,
    /// Root holding dev/, proc/ and sys/ for the GPUs [default: /]
    #[arg(long, env = "PODLAB_DEV_ROOT", value_name = "DIR")]
    pub dev_root: Option<PathBuf>,
}

impl RootArgs {
    /// The roots for commands outside a session (`podlab cdi`): `/` unless set.
    pub fn roots(&self) -> Result<DriverRoots> {
        DriverRoots::checked(self.driver_root.clone(), self.dev_root.clone())
    }
}

impl SessionArgs {
    /// The session these flags describe in `cwd`: merged with the nearest `podlab.toml`
    /// (searched upward from `cwd`) and the defaults. `command` is what follows `--`; empty
    /// leaves the file's or the image's.
    pub fn resolve(&self, cwd: &Path, command: Vec<String>) -> Result<Session> {
        let home = std::env::var_os("HOME").map(PathBuf::from);
        self.resolve_with(cwd, command, home.as_deref(), &|name| {
            std::env::var(name).ok()
        })
    }

    /// The session of the container `container` (by name or id), read from its inspect
    /// data, with these flags over it as over podlab.toml (see
    /// [`session::inspected::overlay`]); podlab.toml itself is not read.
    pub async fn resolve_container<E: Engine>(
        &self,
        engine: &E,
        container: &str,
        cwd: &Path,
        command: Vec<String>,
    ) -> Result<Session> {
        let flags = self.settings(command, &|name| std::env::var(name).ok())?;
        crate::ops::containers::session_with_flags(engine, container, cwd, flags, self.name.clone())
            .await
    }

    fn resolve_with(
        &self,
        cwd: &Path,
        command: Vec<String>,
        home: Option<&Path>,
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Session> {
        let flags = self.settings(command, lookup)?;
        session::resolve_in(cwd, home, flags, self.preset.clone(), self.name.clone())
    }

    /// The flags as the top settings layer.
    fn settings(
        &self,
        command: Vec<String>,
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Settings> {
        let env = values::env_values(&self.env, lookup)?;
        let root = |path: &Option<PathBuf>, flag: &str, var: &str| {
            path.as_ref().map(|path| HostPath {
                path: path.clone(),
                origin: Origin::Flag(format!("{flag} (or {var})")),
            })
        };
        Ok(Settings {
            image: self.image.clone().map(ImageSetting::Name),
            gpus: self.gpus.clone(),
            shm_size: self.shm_size,
            workdir: self.workdir.clone(),
            mounts: self
                .volumes
                .iter()
                .map(|volume| MountSetting {
                    host: HostPath {
                        path: volume.host.clone(),
                        origin: Origin::Flag(format!("--volume {}", volume.host.display())),
                    },
                    container: volume.container.clone(),
                    read_only: volume.read_only,
                })
                .collect(),
            env,
            ports: self.publish.clone(),
            user_map: self.user_map,
            driver_root: root(
                &self.roots.driver_root,
                "--driver-root",
                "PODLAB_DRIVER_ROOT",
            ),
            dev_root: root(&self.roots.dev_root, "--dev-root", "PODLAB_DEV_ROOT"),
            command: Some(command).filter(|command| !command.is_empty()),
        })
    }
}

#[cfg(test)]
mod tests {
    use std::fs;

    use clap::Parser;

    use super::*;
    use crate::session::{GpuSelector, ImageSource};

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        session: SessionArgs,
        #[arg(last = true)]
        command: Vec<String>,
    }

    fn args(flags: &[&str]) -> Cli {
        Cli::try_parse_from(std::iter::once("podlab").chain(flags.iter().copied())).unwrap()
    }

    fn resolve(dir: &Path, flags: &[&str]) -> Result<Session> {
        let cli = args(flags);
        let home = dir.join("home");
        cli.session
            .resolve_with(dir, cli.command, Some(&home), &|name| {
                (name == "FROM_HOST").then(|| "host value".to_owned())
            })
    }

    const FILE: &str = r#"
image = "file-image"
shm_size = "8g"
gpus = "none"
workdir = "/file"
user_map = "keep-id"
ports = ["8888"]
command = ["python", "file.py"]

[env]
A = "file"
B = "file"

[[mounts]]
host = "data"
container = "/data"

[presets.nb]
shm_size = "4g"
gpus = [1]
command = ["jupyter", "lab"]
ports = ["6006"]

[presets.nb.env]
B = "preset"
C = "preset"
"#;

    fn project() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("podlab.toml"), FILE).unwrap();
        fs::create_dir_all(dir.path().join("data")).unwrap();
        fs::create_dir_all(dir.path().join("home/sets")).unwrap();
        dir
    }

    #[test]
    fn the_file_overrides_the_defaults() {
        let dir = project();
        let session = resolve(dir.path(), &[]).unwrap();
        assert_eq!(session.config_file, Some(dir.path().join("podlab.toml")));
        assert_eq!(session.image, ImageSource::Name("file-image".into()));
        assert_eq!(session.shm_size, ByteSize(8 << 30));
        assert_eq!(session.gpus, GpuRequest::None);
        assert_eq!(session.workdir, "/file");
        assert_eq!(session.user_map, UserMapping::KeepId);
        assert_eq!(session.command, ["python", "file.py"]);
        assert_eq!(session.mounts.len(), 2);
        assert_eq!(session.mounts[1].host, dir.path().join("data"));
        assert!(
            session.mounts[1].read_only,
            "file mounts are read-only unless writable"
        );
    }

    #[test]
    fn a_preset_overrides_the_file() {
        let dir = project();
        let session = resolve(dir.path(), &["--preset", "nb"]).unwrap();
        assert_eq!(session.preset.as_deref(), Some("nb"));
        assert_eq!(session.shm_size, ByteSize(4 << 30));
        assert_eq!(session.gpus, GpuRequest::List(vec![GpuSelector::Index(1)]));
        assert_eq!(session.command, ["jupyter", "lab"]);
        assert_eq!(session.workdir, "/file", "kept from the top level");
        let env: Vec<_> = session
            .env
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        assert_eq!(env, ["A=file", "B=preset", "C=preset"]);
        let ports: Vec<_> = session.ports.iter().map(|p| p.host_port).collect();
        assert_eq!(ports, [8888, 6006]);
    }

    #[test]
    fn flags_override_the_preset() {
        let dir = project();
        let session = resolve(
            dir.path(),
            &[
                "--preset",
                "nb",
                "--shm-size",
                "512m",
                "--gpus",
                "all",
                "--image",
                "flag",
                "--workdir",
                "/flag",
                "--user-map",
                "1000:100",
                "-e",
                "C=flag",
                "-e",
                "FROM_HOST",
                "--volume",
                "~/sets:/data:ro",
                "--name",
                "job1",
                "--",
                "bash",
                "-l",
            ],
        )
        .unwrap();
        assert_eq!(session.shm_size, ByteSize(512 << 20));
        assert_eq!(session.gpus, GpuRequest::All);
        assert_eq!(session.image, ImageSource::Name("flag".into()));
        assert_eq!(session.workdir, "/flag");
        assert_eq!(
            session.user_map,
            UserMapping::KeepIdTo {
                uid: 1000,
                gid: 100
            }
        );
        assert_eq!(session.env.get("C").map(String::as_str), Some("flag"));
        assert_eq!(
            session.env.get("FROM_HOST").map(String::as_str),
            Some("host value")
        );
        assert_eq!(session.name.as_deref(), Some("job1"));
        assert_eq!(session.command, ["bash", "-l"]);
        let data: Vec<_> = session
            .mounts
            .iter()
            .filter(|m| m.container == "/data")
            .collect();
        assert_eq!(data.len(), 1, "the flag's /data replaces the file's");
        assert_eq!(data[0].host, dir.path().join("home/sets"));
        assert_eq!(session.mounts[0].container, "/flag");
    }

    #[test]
    fn a_subdirectory_finds_the_project_and_expands_flags_against_itself() {
        let dir = project();
        let sub = dir.path().join("src");
        fs::create_dir_all(sub.join("local")).unwrap();
        let session = resolve(&sub, &["--volume", "local:/local"]).unwrap();
        assert_eq!(session.project_dir, dir.path());
        assert_eq!(session.mounts[0].host, dir.path());
        assert_eq!(session.mounts[1].host, dir.path().join("data"));
        assert_eq!(session.mounts[2].host, sub.join("local"));
        assert!(
            !session.mounts[2].read_only,
            "flag volumes are read-write unless :ro"
        );
    }

    #[test]
    fn an_unset_env_var_is_an_error() {
        let dir = project();
        let err = resolve(dir.path(), &["-e", "NOT_SET"]).unwrap_err();
        assert_eq!(
            err.message(),
            "--env NOT_SET: NOT_SET is not set in this environment"
        );
    }

    #[test]
    fn bad_flags_are_refused_by_the_parser() {
        for flags in [
            ["--volume", "~:/home:U"],
            ["--volume", "/d:/data:Z"],
            ["--shm-size", "16x"],
            ["--publish", "[::1]8888"],
            ["--gpus", "two"],
            ["--user-map", "me"],
            ["--name", "-x"],
            ["--env", "=x"],
        ] {
            let parsed = Cli::try_parse_from(std::iter::once("podlab").chain(flags));
            assert!(parsed.is_err(), "{flags:?}");
        }
        let err = Cli::try_parse_from(["podlab", "--volume", "~:/home:U"]).unwrap_err();
        assert!(err.to_string().contains("chown"), "{err}");
    }

    #[test]
    fn ipv6_publish() {
        let cli = args(&["-p", "[::1]:8888:8888", "--publish", "9000:90/udp"]);
        let ports: Vec<String> = cli
            .session
            .publish
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(ports, ["[::1]:8888:8888/tcp", "127.0.0.1:9000:90/udp"]);
    }

    #[test]
    fn the_session_flags_clash_with_no_other_flag() {
        use clap::CommandFactory;
        crate::cli::Cli::command().debug_assert();
    }

    #[test]
    fn root_args_default_to_slash_for_cdi() {
        let roots = RootArgs::default().roots().unwrap();
        assert_eq!(roots, DriverRoots::default());
        let missing = RootArgs {
            driver_root: Some("/nonexistent".into()),
            dev_root: None,
        };
        assert!(missing.roots().is_err());
    }
}
