//! Finding the Podman API socket and checking that it is alive.
//!
//! The liveness probe (`GET /_ping`) talks HTTP directly over the Unix socket with hyper 1
//! rather than through `podman-api`: the probe must run before a client exists, must give up
//! after a bounded time, and must tell "nothing listens" (try the next candidate, or start a
//! service) apart from "something listens but is not Podman" (a clear error). `podman-api`
//! has no timeouts and folds all of these into one error type.

use std::io::ErrorKind as IoErrorKind;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use http_body_util::Empty;
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use serde::Serialize;
use tokio::net::UnixStream;

use crate::{Error, Result};

/// How long one `_ping` may take before the socket counts as broken.
pub const PING_TIMEOUT: Duration = Duration::from_secs(5);

/// Where the socket path came from; shown by `podlab version`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SocketOrigin {
    /// `--url`.
    Flag,
    /// `CONTAINER_HOST`.
    ContainerHost,
    /// `$XDG_RUNTIME_DIR/podman/podman.sock`.
    UserDefault,
    /// `/run/podman/podman.sock`, used only when running as root.
    RootDefault,
    /// podlab's private `podman system service` under `$XDG_RUNTIME_DIR/podlab/`.
    PodlabService,
}

impl SocketOrigin {
    pub fn describe(self) -> &'static str {
        match self {
            Self::Flag => "--url",
            Self::ContainerHost => "CONTAINER_HOST",
            Self::UserDefault => "the user's podman socket",
            Self::RootDefault => "the system podman socket",
            Self::PodlabService => "podlab's private podman service",
        }
    }

    /// Whether the user named this socket; such a socket must answer, podlab starts no other.
    pub fn is_explicit(self) -> bool {
        matches!(self, Self::Flag | Self::ContainerHost)
    }
}

/// A candidate socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub path: PathBuf,
    pub origin: SocketOrigin,
}

/// The facts about the calling process that decide which sockets to try.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CallerEnv {
    /// `--url`, if given.
    pub url_flag: Option<String>,
    /// `$CONTAINER_HOST`, if set and not empty.
    pub container_host: Option<String>,
    /// `$XDG_RUNTIME_DIR`, if set and not empty.
    pub runtime_dir: Option<PathBuf>,
    /// Whether the effective user is root.
    pub is_root: bool,
}

impl CallerEnv {
    /// Reads the process environment. A relative `XDG_RUNTIME_DIR` is ignored, as the XDG
    /// base directory specification says (it would put sockets in the current directory).
    pub fn from_process(url_flag: Option<String>) -> Self {
        let non_empty = |name: &str| std::env::var(name).ok().filter(|value| !value.is_empty());
        let runtime_dir = non_empty("XDG_RUNTIME_DIR").map(PathBuf::from).filter(|dir| {
            let absolute = dir.is_absolute();
            if !absolute {
                tracing::warn!(
                    "ignoring XDG_RUNTIME_DIR={}: it is not an absolute path (set it to /run/user/$(id -u))",
                    dir.display()
                );
            }
            absolute
        });
        Self {
            url_flag,
            container_host: non_empty("CONTAINER_HOST"),
            runtime_dir,
            is_root: rustix::process::geteuid().is_root(),
        }
    }

    /// podlab's private directory, `$XDG_RUNTIME_DIR/podlab`.
    pub fn podlab_runtime_dir(&self) -> Result<PathBuf> {
        self.runtime_dir.as_ref().map(|dir| dir.join("podlab")).ok_or_else(|| {
            Error::env("XDG_RUNTIME_DIR is not set: cannot place podlab's private podman socket")
                .hint("export XDG_RUNTIME_DIR=/run/user/$(id -u) (log in through a session manager to get it set)")
        })
    }
}

/// The sockets to try, in order. An explicit `--url` or `CONTAINER_HOST` is the only candidate.
pub fn candidates(env: &CallerEnv) -> Result<Vec<Endpoint>> {
    let explicit = env
        .url_flag
        .as_deref()
        .map(|url| (url, SocketOrigin::Flag))
        .or_else(|| {
            env.container_host
                .as_deref()
                .map(|url| (url, SocketOrigin::ContainerHost))
        });
    if let Some((url, origin)) = explicit {
        return Ok(vec![Endpoint {
            path: parse_url(url, origin)?,
            origin,
        }]);
    }
    let mut found = Vec::new();
    if let Some(runtime_dir) = &env.runtime_dir {
        found.push(Endpoint {
            path: runtime_dir.join("podman/podman.sock"),
            origin: SocketOrigin::UserDefault,
        });
    }
    if env.is_root {
        found.push(Endpoint {
            path: PathBuf::from("/run/podman/podman.sock"),
            origin: SocketOrigin::RootDefault,
        });
    }
    Ok(found)
}

/// Checks `$XDG_RUNTIME_DIR` before podlab uses a socket in it, or makes its own there, with
/// Podman's own rule (containers/storage `pkg/homedir`: the directory must be owned by the
/// user and writable by no one else, `perm & 0o722 == 0o700`). Another user who owns or can
/// write into it could plant `podman/podman.sock` there and receive every request podlab
/// sends, secrets in `-e` included. Symlinks are followed, as Podman resolves the variable.
pub fn vet_runtime_dir(dir: &Path) -> Result<()> {
    let fix = "set XDG_RUNTIME_DIR to your own runtime directory: export XDG_RUNTIME_DIR=/run/user/$(id -u) (log in through a session manager to get it made), or create one: sudo install -d -m 700 -o $(id -u) /run/user/$(id -u)";
    let meta = match std::fs::metadata(dir) {
        Ok(meta) => meta,
        Err(err) if err.kind() == IoErrorKind::NotFound => {
            return Err(
                Error::env(format!("XDG_RUNTIME_DIR {} does not exist", dir.display())).hint(fix),
            );
        }
        Err(err) => {
            return Err(Error::env(format!(
                "cannot check XDG_RUNTIME_DIR {}: {err}",
                dir.display()
            ))
            .hint(fix));
        }
    };
    let euid = rustix::process::geteuid().as_raw();
    let problem = if !meta.is_dir() {
        Some("is not a directory".to_owned())
    } else if meta.uid() != euid {
        Some(format!(
            "belongs to uid {}, not to you (uid {euid})",
            meta.uid()
        ))
    } else if meta.mode() & 0o722 != 0o700 {
        Some(format!(
            "has mode {:o}: others can write into it (podman requires it writable by its owner only)",
            meta.mode() & 0o7777
        ))
    } else {
        None
    };
    match problem {
        Some(problem) => Err(Error::env(format!(
            "XDG_RUNTIME_DIR {} {problem}: podlab will not use a podman socket in it",
            dir.display()
        ))
        .hint(fix)),
        None => Ok(()),
    }
}

/// Checks that a socket podlab found by itself (not one the user named) belongs to the user:
/// a vetted runtime directory admits no one else's, but `/run/podman` is root's.
pub fn vet_socket_owner(path: &Path) -> Result<()> {
    let euid = rustix::process::geteuid().as_raw();
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.uid() != euid => Err(Error::env(format!(
            "podman socket {} belongs to uid {}, not to you (uid {euid}): podlab will not send it your session",
            path.display(),
            meta.uid()
        ))
        .hint("remove it if you do not know who made it, or name a socket you trust with --url unix:///path/to/podman.sock")),
        _ => Ok(()),
    }
}

/// Warns when a socket the user named (`--url`, `CONTAINER_HOST`) belongs to neither the user
/// nor root. Decided: such a socket is used anyway. The user chose that path, and shared
/// sockets are legitimate (a rootful Podman's socket opened to a group, a service account's
/// socket shared on purpose); the owner check above exists for sockets podlab finds by itself
/// in a directory someone else may control. The warning makes an unexpected owner visible.
pub fn warn_foreign_explicit_socket(path: &Path) {
    let euid = rustix::process::geteuid().as_raw();
    let owner = std::fs::symlink_metadata(path).ok().map(|meta| meta.uid());
    if let Some(owner) = owner.filter(|owner| *owner != euid && *owner != 0) {
        tracing::warn!(
            "podman socket {} belongs to uid {}, not to you: everything podlab sends (env values included) goes to that user's service",
            path.display(),
            owner
        );
    }
}

/// Turns `unix:///path` into the path; refuses other schemes with the reason.
pub fn parse_url(url: &str, origin: SocketOrigin) -> Result<PathBuf> {
    let source = origin.describe();
    if let Some(path) = url.strip_prefix("unix://") {
        if !path.starts_with('/') {
            return Err(Error::user(format!(
                "{source} {url:?} must name an absolute socket path"
            ))
            .hint("use unix:///run/user/$(id -u)/podman/podman.sock"));
        }
        return Ok(PathBuf::from(path));
    }
    if url.starts_with("ssh://") {
        return Err(Error::user(format!("{source} {url:?}: ssh connections are not supported yet"))
            .hint("run podlab on that host, or forward its socket: ssh -L /tmp/podman.sock:/run/user/UID/podman/podman.sock HOST, then --url unix:///tmp/podman.sock"));
    }
    Err(
        Error::user(format!("{source} {url:?}: unsupported connection scheme"))
            .hint("podlab talks to a local Podman socket: --url unix:///path/to/podman.sock"),
    )
}

/// The outcome of probing a socket path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe {
    /// Podman answered; `api_version` is its `Libpod-Api-Version` header.
    Alive { api_version: String },
    /// Nothing listens: no file, or a stale socket file nobody accepts on.
    Absent,
}

/// Checks that a Podman API service answers on `path`. Returns `Absent` when nothing is
/// there to answer, and an error for anything that is there but broken.
pub async fn ping(path: &Path) -> Result<Probe> {
    match std::fs::metadata(path) {
        Err(err) if err.kind() == IoErrorKind::NotFound => return Ok(Probe::Absent),
        Err(err) => {
            return Err(Error::env(format!(
                "cannot stat podman socket {}: {err}",
                path.display()
            ))
            .hint(format!("check the permissions of {}", parent_display(path))));
        }
        Ok(meta) if !meta.file_type().is_socket() => {
            return Err(
                Error::env(format!("{} exists but is not a socket", path.display())).hint(format!(
                    "remove it (rm {}) or point --url at the real podman socket",
                    path.display()
                )),
            );
        }
        Ok(_) => {}
    }
    match tokio::time::timeout(PING_TIMEOUT, ping_socket(path)).await {
        Ok(result) => result,
        Err(_) => Err(Error::env(format!(
            "podman socket {} did not answer within {} s",
            path.display(),
            PING_TIMEOUT.as_secs()
        ))
        .hint(
            "restart the service: podman system service --time=0 unix://".to_owned()
                + &path.display().to_string(),
        )),
    }
}

async fn ping_socket(path: &Path) -> Result<Probe> {
    let stream = match UnixStream::connect(path).await {
        Ok(stream) => stream,
        Err(err) if err.kind() == IoErrorKind::ConnectionRefused => return Ok(Probe::Absent),
        Err(err) => {
            return Err(Error::env(format!(
                "cannot connect to podman socket {}: {err}",
                path.display()
            ))
            .hint(
                "check that the socket belongs to you: ls -l ".to_owned()
                    + &path.display().to_string(),
            ));
        }
    };
    let garbage = |detail: String| {
        Error::env(format!(
            "{} answered, but not as a podman API service: {detail}",
            path.display()
        ))
        .hint("point --url at a podman socket (podman system service), not another service's")
    };
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|err| garbage(err.to_string()))?;
    let driver = tokio::spawn(connection);
    let request = hyper::Request::get("/_ping")
        .header(hyper::header::HOST, "d")
        .body(Empty::<Bytes>::new())
        .map_err(|err| Error::env(format!("cannot build the _ping request: {err}")))?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|err| garbage(err.to_string()));
    driver.abort();
    let response = response?;
    if !response.status().is_success() {
        return Err(garbage(format!(
            "_ping returned HTTP {}",
            response.status()
        )));
    }
    let api_version = response
        .headers()
        .get("Libpod-Api-Version")
        .and_then(|value| value.to_str().ok())
        .ok_or_else(|| garbage("no Libpod-Api-Version header (is this Docker?)".to_owned()))?;
    Ok(Probe::Alive {
        api_version: api_version.to_owned(),
    })
}

fn parent_display(path: &Path) -> String {
    path.parent().unwrap_or(path).display().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::UnixListener;

    fn env(runtime_dir: Option<&str>, is_root: bool) -> CallerEnv {
        CallerEnv {
            runtime_dir: runtime_dir.map(PathBuf::from),
            is_root,
            ..CallerEnv::default()
        }
    }

    #[test]
    fn flag_beats_container_host_and_defaults() {
        let mut caller = env(Some("/run/user/1000"), false);
        caller.url_flag = Some("unix:///tmp/a.sock".into());
        caller.container_host = Some("unix:///tmp/b.sock".into());
        let found = candidates(&caller).unwrap_or_default();
        assert_eq!(
            found,
            [Endpoint {
                path: "/tmp/a.sock".into(),
                origin: SocketOrigin::Flag
            }]
        );
        caller.url_flag = None;
        let found = candidates(&caller).unwrap_or_default();
        assert_eq!(
            found,
            [Endpoint {
                path: "/tmp/b.sock".into(),
                origin: SocketOrigin::ContainerHost
            }]
        );
    }

    #[test]
    fn rootless_then_root_socket() {
        let paths = |caller: &CallerEnv| -> Vec<PathBuf> {
            candidates(caller)
                .unwrap_or_default()
                .into_iter()
                .map(|e| e.path)
                .collect()
        };
        assert_eq!(
            paths(&env(Some("/run/user/1000"), false)),
            [PathBuf::from("/run/user/1000/podman/podman.sock")]
        );
        assert_eq!(
            paths(&env(Some("/run/user/0"), true)),
            [
                PathBuf::from("/run/user/0/podman/podman.sock"),
                PathBuf::from("/run/podman/podman.sock")
            ]
        );
        assert!(paths(&env(None, false)).is_empty());
    }

    #[test]
    fn s1_runtime_dir_owned_by_another_user_or_writable_by_others_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let own = dir.path().join("own");
        std::fs::create_dir(&own).unwrap();
        std::fs::set_permissions(&own, std::fs::Permissions::from_mode(0o700)).unwrap();
        assert_eq!(vet_runtime_dir(&own), Ok(()));
        std::fs::set_permissions(&own, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(
            vet_runtime_dir(&own),
            Ok(()),
            "readable by others, as Podman allows"
        );
        for mode in [0o777, 0o770, 0o702, 0o500] {
            std::fs::set_permissions(&own, std::fs::Permissions::from_mode(mode)).unwrap();
            let err = vet_runtime_dir(&own).unwrap_err();
            assert_eq!(err.exit_code(), 2);
            assert!(
                err.to_string()
                    .contains("podlab will not use a podman socket in it"),
                "{err}"
            );
            assert!(
                err.hint_text().unwrap().contains("/run/user/$(id -u)"),
                "{err}"
            );
        }
        if rustix::process::geteuid().is_root() {
            std::fs::set_permissions(&own, std::fs::Permissions::from_mode(0o700)).unwrap();
            std::os::unix::fs::chown(&own, Some(65534), None).unwrap();
            let err = vet_runtime_dir(&own).unwrap_err();
            assert!(err.to_string().contains("belongs to uid 65534"), "{err}");
        }
        let missing = vet_runtime_dir(&dir.path().join("none")).unwrap_err();
        assert!(missing.to_string().contains("does not exist"), "{missing}");
        assert!(
            missing.hint_text().unwrap().contains("install -d -m 700"),
            "{missing}"
        );
        let file = dir.path().join("file");
        std::fs::write(&file, "").unwrap();
        assert!(
            vet_runtime_dir(&file)
                .unwrap_err()
                .to_string()
                .contains("is not a directory")
        );
    }

    #[test]
    fn ssh_and_unknown_schemes_are_refused_clearly() {
        let err = parse_url("ssh://core@host/run/podman/podman.sock", SocketOrigin::Flag).err();
        let err = err.map(|e| e.to_string()).unwrap_or_default();
        assert!(
            err.contains("ssh connections are not supported yet"),
            "{err}"
        );
        assert!(err.contains("\nhint: "), "{err}");
        assert!(parse_url("tcp://localhost:8080", SocketOrigin::ContainerHost).is_err());
        assert!(parse_url("unix://relative.sock", SocketOrigin::Flag).is_err());
    }

    #[tokio::test]
    async fn missing_path_is_absent_and_regular_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(ping(&dir.path().join("none.sock")).await, Ok(Probe::Absent));
        let file = dir.path().join("file.sock");
        std::fs::write(&file, "x").unwrap();
        let err = ping(&file)
            .await
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("exists but is not a socket"), "{err}");
    }

    #[tokio::test]
    async fn stale_socket_file_is_absent() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("stale.sock");
        drop(std::os::unix::net::UnixListener::bind(&path));
        assert_eq!(ping(&path).await, Ok(Probe::Absent));
    }

    fn serve_once(path: &Path, reply: &'static [u8]) {
        let listener = UnixListener::bind(path).unwrap();
        tokio::spawn(async move {
            if let Ok((mut stream, _)) = listener.accept().await {
                let mut buf = [0u8; 1024];
                let _ = stream.read(&mut buf).await;
                let _ = stream.write_all(reply).await;
                let _ = stream.shutdown().await;
            }
        });
    }

    #[tokio::test]
    async fn garbage_answer_is_an_environment_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("garbage.sock");
        serve_once(&path, b"SSH-2.0-OpenSSH_9.2\r\n");
        let err = ping(&path).await.err();
        assert_eq!(err.as_ref().map(Error::exit_code), Some(2));
        let text = err.map(|e| e.to_string()).unwrap_or_default();
        assert!(text.contains("not as a podman API service"), "{text}");
    }

    #[tokio::test]
    async fn docker_like_answer_is_refused_and_podman_answer_accepted() {
        let dir = tempfile::tempdir().unwrap();
        let docker = dir.path().join("docker.sock");
        serve_once(
            &docker,
            b"HTTP/1.1 200 OK\r\nApi-Version: 1.45\r\nContent-Length: 2\r\n\r\nOK",
        );
        let text = ping(&docker)
            .await
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(text.contains("is this Docker?"), "{text}");

        let podman = dir.path().join("podman.sock");
        serve_once(
            &podman,
            b"HTTP/1.1 200 OK\r\nLibpod-Api-Version: 5.4.2\r\nContent-Length: 2\r\n\r\nOK",
        );
        assert_eq!(
            ping(&podman).await,
            Ok(Probe::Alive {
                api_version: "5.4.2".into()
            })
        );
    }
}
