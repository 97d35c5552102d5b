//! podlab's private Podman service: started when no socket answers, so a user needs no
//! `systemctl --user enable podman.socket` (and hosts without a systemd user instance work).
//!
//! The service lives at `$XDG_RUNTIME_DIR/podlab/podman.sock`, runs in its own session (no
//! controlling terminal, so Ctrl-C and closing the terminal do not reach it) and exits by
//! itself after [`IDLE_EXIT_SECS`] without clients. Later podlab runs reuse it while it lives.
//! A lock file keeps two podlab processes from starting two services on one socket.
//!
//! A service reads `containers.conf`, `storage.conf` and `registries.conf` once, when it
//! starts: a user who follows a hint (`runtime = "runc"`) and runs podlab again within the
//! idle time would meet the old settings. So the service's start records what those files
//! held (`service.config`: each path with the SHA-256 of its contents, or `absent`), and a
//! later run that finds those same files changed stops that service (its pid file names it, and its
//! command line must name podlab's socket: never the user's own service) and starts a new
//! one, saying so on stderr.

use std::fmt::Write as _;
use std::fs::{self, File};
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::socket::{Probe, ping};
use crate::{Error, Result};

/// `podman system service --time`: seconds without clients before the service exits.
pub const IDLE_EXIT_SECS: u32 = 60;
/// How long podlab waits for the service's socket to answer.
pub const START_TIMEOUT: Duration = Duration::from_secs(20);

/// Files of the private service inside `$XDG_RUNTIME_DIR/podlab`.
#[derive(Debug, Clone)]
pub struct ServicePaths {
    pub dir: PathBuf,
    pub socket: PathBuf,
    pub log: PathBuf,
    pub pid: PathBuf,
    /// The configuration the service started with (see the module doc).
    pub config: PathBuf,
    lock: PathBuf,
}

impl ServicePaths {
    pub fn new(dir: PathBuf) -> Self {
        Self {
            socket: dir.join("podman.sock"),
            log: dir.join("service.log"),
            pid: dir.join("service.pid"),
            config: dir.join("service.config"),
            lock: dir.join("service.lock"),
            dir,
        }
    }
}

/// A running private service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Started {
    pub api_version: String,
    /// The service's pid: started by this run or reused from an earlier one (`None` when a
    /// reused service's pid file is gone or names another process).
    pub pid: Option<u32>,
}

/// Ends podlab's private service if one runs (the next podlab run starts a fresh one, which
/// reads containers.conf anew); whether one was running. Only the process whose pid podlab
/// recorded, and only while it is still that service.
pub fn stop_private_service(runtime_dir: &Path) -> bool {
    let paths = ServicePaths::new(runtime_dir.join("podlab"));
    let Some(pid) = service_pid(&paths)
        .and_then(|pid| i32::try_from(pid).ok())
        .and_then(rustix::process::Pid::from_raw)
    else {
        return false;
    };
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).is_ok()
}

/// Returns the private service's socket, reusing a live service or starting one.
pub async fn ensure_service(paths: &ServicePaths) -> Result<Started> {
    create_private_dir(&paths.dir)?;
    let _lock = crate::host::atomic::lock(&paths.lock, START_TIMEOUT).await?;
    if let Probe::Alive { api_version } = ping(&paths.socket).await? {
        let changed = fs::read_to_string(&paths.config)
            .map(|recorded| changed_since(&recorded))
            .unwrap_or_default();
        if changed.is_empty() {
            tracing::debug!(socket = %paths.socket.display(), "reusing podlab's private podman service");
            return Ok(Started {
                api_version,
                pid: service_pid(paths),
            });
        }
        tracing::warn!(
            "podlab's podman service started before {} changed: restarting it so that it reads the new settings",
            changed.join(", ")
        );
        stop_service(paths).await?;
    }
    let podman = which::which("podman").map_err(|_| {
        Error::env("podman is not installed or not on PATH: cannot start a podman service")
            .hint("install podman (Debian/Ubuntu: sudo apt-get install podman), or pass --url unix:///path/to/podman.sock")
    })?;
    match fs::remove_file(&paths.socket) {
        Ok(()) => tracing::debug!("removed a stale socket file"),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
        Err(err) => {
            return Err(Error::env(format!(
                "cannot remove stale socket {}: {err}",
                paths.socket.display()
            )));
        }
    }
    let log = File::create(&paths.log)
        .map_err(|err| Error::env(format!("cannot create {}: {err}", paths.log.display())))?;
    let log_err = log
        .try_clone()
        .map_err(|err| Error::env(format!("cannot open {}: {err}", paths.log.display())))?;
    let url = format!("unix://{}", paths.socket.display());
    tracing::info!(socket = %paths.socket.display(), "no podman socket answers; starting podlab's private podman service");
    let mut command = Command::new(&podman);
    command
        .args([
            "system",
            "service",
            &format!("--time={IDLE_EXIT_SECS}"),
            &url,
        ])
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_err)
        .current_dir("/");
    detach(&mut command);
    let mut child = command.spawn().map_err(|err| {
        Error::env(format!(
            "cannot start {} system service: {err}",
            podman.display()
        ))
        .hint("check that podman runs: podman info")
    })?;
    let pid = child.id();
    crate::host::atomic::write_file(&paths.pid, format!("{pid}\n").as_bytes(), 0o644)?;
    let files = config_files(&|key| std::env::var_os(key));
    crate::host::atomic::write_file(&paths.config, record(&files).as_bytes(), 0o644)?;

    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(Error::env(format!(
                "podman system service exited ({status}) before its socket answered: {}",
                log_tail(&paths.log)
            ))
            .hint(format!(
                "see {} and run podman info to check the podman setup",
                paths.log.display()
            )));
        }
        if let Probe::Alive { api_version } = ping(&paths.socket).await? {
            return Ok(Started {
                api_version,
                pid: Some(pid),
            });
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(Error::env(format!(
                "podlab's podman service did not answer on {} within {} s",
                paths.socket.display(),
                START_TIMEOUT.as_secs()
            ))
            .hint(format!(
                "see {}, or start one yourself: podman system service --time=0 {url} &",
                paths.log.display()
            )));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The pid of the private service that podlab started (this run or an earlier one) and that
/// still serves `paths.socket`: from its pid file, checked against the process's command line
/// so that a reused pid never counts.
pub fn service_pid(paths: &ServicePaths) -> Option<u32> {
    let pid: u32 = fs::read_to_string(&paths.pid).ok()?.trim().parse().ok()?;
    let cmdline = fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let url = format!("unix://{}", paths.socket.display());
    let args: Vec<&[u8]> = cmdline.split(|byte| *byte == 0).collect();
    let serves = args
        .windows(2)
        .any(|pair| pair == [&b"system"[..], &b"service"[..]])
        && args.contains(&url.as_bytes());
    serves.then_some(pid)
}

/// The files a Podman service reads its settings from when it starts, as containers/common
/// and containers/storage look them up: the `CONTAINERS_*` overrides, else the system files
/// and the user's (`$XDG_CONFIG_HOME`, else `~/.config`), with their `.d` directories.
fn config_files(env: &dyn Fn(&str) -> Option<std::ffi::OsString>) -> Vec<PathBuf> {
    let user = env("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .filter(|dir| dir.is_absolute())
        .or_else(|| env("HOME").map(|home| PathBuf::from(home).join(".config")))
        .map(|dir| dir.join("containers"));
    let mut files = Vec::new();
    let mut add = |override_key: &str, name: &str, with_dirs: bool| {
        if let Some(path) = env(override_key) {
            files.push(PathBuf::from(path));
            return;
        }
        for dir in [
            Path::new("/usr/share/containers"),
            Path::new("/etc/containers"),
        ]
        .into_iter()
        .chain(user.as_deref())
        {
            files.push(dir.join(name));
            if with_dirs {
                files.push(dir.join(format!("{name}.d")));
            }
        }
    };
    add("CONTAINERS_CONF", "containers.conf", true);
    add("CONTAINERS_STORAGE_CONF", "storage.conf", false);
    add("CONTAINERS_REGISTRIES_CONF", "registries.conf", true);
    if let Some(path) = env("CONTAINERS_CONF_OVERRIDE") {
        files.push(PathBuf::from(path));
    }
    files
}

/// One line per file: its path and the SHA-256 of its contents, `absent`, or (a `.d`
/// directory) a line for each file in it, in name order.
fn config_fingerprint(files: &[PathBuf]) -> String {
    use sha2::Digest as _;
    let mut out = String::new();
    for path in files {
        if path.is_dir() {
            let mut entries: Vec<PathBuf> = fs::read_dir(path)
                .map(|dir| dir.flatten().map(|entry| entry.path()).collect())
                .unwrap_or_default();
            entries.sort();
            let _ = writeln!(out, "{} directory", path.display());
            out.push_str(&config_fingerprint(&entries));
            continue;
        }
        let state = fs::read(path).map_or_else(
            |_| "absent".to_owned(),
            |bytes| {
                sha2::Sha256::digest(&bytes)
                    .iter()
                    .fold(String::new(), |mut hex, byte| {
                        let _ = write!(hex, "{byte:02x}");
                        hex
                    })
            },
        );
        let _ = writeln!(out, "{} {state}", path.display());
    }
    out
}

/// What `service.config` holds: the files the service's environment named (a `files` line,
/// tab-separated), then their fingerprint. A later run checks those files, not the ones its
/// own environment would name: the service read what its starter's environment said.
fn record(files: &[PathBuf]) -> String {
    let names: Vec<String> = files
        .iter()
        .map(|file| file.display().to_string())
        .collect();
    format!("files\t{}\n{}", names.join("\t"), config_fingerprint(files))
}

/// The files of a record that changed since it was written.
fn changed_since(recorded: &str) -> Vec<String> {
    let Some((first, fingerprint)) = recorded.split_once('\n') else {
        return Vec::new();
    };
    let Some(names) = first.strip_prefix("files\t") else {
        return Vec::new();
    };
    let files: Vec<PathBuf> = names.split('\t').map(PathBuf::from).collect();
    changed_files(fingerprint, &config_fingerprint(&files))
}

/// The files whose line differs between two fingerprints.
fn changed_files(recorded: &str, current: &str) -> Vec<String> {
    let path_of = |line: &str| {
        line.rsplit_once(' ')
            .map_or(line, |(path, _)| path)
            .to_owned()
    };
    let old: std::collections::BTreeSet<&str> = recorded.lines().collect();
    let new: std::collections::BTreeSet<&str> = current.lines().collect();
    let mut changed: Vec<String> = old
        .symmetric_difference(&new)
        .map(|line| path_of(line))
        .collect();
    changed.sort();
    changed.dedup();
    changed
}

/// Stops podlab's own service (the process [`service_pid`] finds), waiting until the process
/// is gone. Not until its socket stops answering: while the service shuts down, its socket
/// still accepts and then drops a request, which a ping reports as "not a podman service".
async fn stop_service(paths: &ServicePaths) -> Result<()> {
    let refuse = |why: &str| {
        Error::env(format!(
            "cannot restart podlab's podman service on {}: {why}",
            paths.socket.display()
        ))
        .hint(format!(
            "stop it yourself (it serves unix://{}), then run podlab again",
            paths.socket.display()
        ))
    };
    let pid = service_pid(paths)
        .and_then(|pid| i32::try_from(pid).ok())
        .and_then(rustix::process::Pid::from_raw)
        .ok_or_else(|| refuse("its pid file names no process that serves it"))?;
    rustix::process::kill_process(pid, rustix::process::Signal::TERM)
        .map_err(|err| refuse(&err.to_string()))?;
    let deadline = Instant::now() + START_TIMEOUT;
    while process_lives(pid) {
        if Instant::now() >= deadline {
            return Err(refuse("it did not stop"));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

/// Whether process `pid` still runs: it has a `/proc` entry and is not a zombie waiting for
/// its parent (the service is not our child, so someone else reaps it).
fn process_lives(pid: rustix::process::Pid) -> bool {
    fs::read_to_string(format!("/proc/{}/stat", pid.as_raw_nonzero())).is_ok_and(|stat| {
        // The state follows the command name, which is in parentheses and may hold any byte.
        let state = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.trim_start().chars().next());
        !matches!(state, Some('Z' | 'X') | None)
    })
}

/// Puts the service in a session of its own, away from the terminal's signals.
#[expect(
    unsafe_code,
    reason = "pre_exec is unsafe; the closure only calls setsid(2), which is async-signal-safe"
)]
fn detach(command: &mut Command) {
    // SAFETY: runs between fork and exec; setsid touches no memory of the parent.
    unsafe {
        command.pre_exec(|| {
            rustix::process::setsid()
                .map(drop)
                .map_err(std::io::Error::from)
        });
    }
}

pub(super) fn create_private_dir(dir: &Path) -> Result<()> {
    let fail = |err: std::io::Error| Error::env(format!("cannot create {}: {err}", dir.display()));
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(fail)?;
    let meta = fs::metadata(dir).map_err(fail)?;
    if meta.uid() != rustix::process::geteuid().as_raw() {
        return Err(
            Error::env(format!("{} belongs to another user", dir.display()))
                .hint("set XDG_RUNTIME_DIR to your own runtime directory, /run/user/$(id -u)"),
        );
    }
    Ok(())
}

fn log_tail(log: &Path) -> String {
    let text = fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text
        .lines()
        .filter(|line| !line.trim().is_empty())
        .collect();
    let tail = lines
        .get(lines.len().saturating_sub(3)..)
        .unwrap_or_default();
    if tail.is_empty() {
        "it printed nothing".to_owned()
    } else {
        tail.join(" | ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 15 (a restart of the private service): a service that is shutting down still
    /// accepts on its socket, so the restart waits for the process, which a zombie no longer is.
    #[test]
    fn a_stopped_service_counts_as_gone_once_it_exits_even_unreaped() {
        let own = rustix::process::getpid();
        assert!(process_lives(own));
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = rustix::process::Pid::from_raw(i32::try_from(child.id()).unwrap()).unwrap();
        // Not waited for yet: a zombie once it exits.
        let deadline = Instant::now() + Duration::from_secs(10);
        while process_lives(pid) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(
            !process_lives(pid),
            "an exited, unreaped child counts as running"
        );
        child.wait().unwrap();
        assert!(!process_lives(pid));
    }

    #[test]
    fn a_pid_file_counts_only_while_its_process_serves_the_socket() {
        let dir = tempfile::tempdir().unwrap();
        let paths = ServicePaths::new(dir.path().to_owned());
        assert_eq!(service_pid(&paths), None, "no pid file");
        // A live process that is not the service (this test) does not count.
        fs::write(&paths.pid, format!("{}\n", std::process::id())).unwrap();
        assert_eq!(service_pid(&paths), None);
        let url = format!("unix://{}", paths.socket.display());
        let mut service = Command::new("sh")
            .args([
                "-c",
                "sleep 30; true",
                "podman",
                "system",
                "service",
                "--time=60",
                &url,
            ])
            .spawn()
            .unwrap();
        // sh keeps its own arguments in its command line.
        fs::write(&paths.pid, format!("{}\n", service.id())).unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        while service_pid(&paths).is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(service_pid(&paths), Some(service.id()));
        service.kill().unwrap();
        service.wait().unwrap();
        assert_eq!(service_pid(&paths), None, "a dead service");
    }

    #[test]
    fn the_config_files_follow_podmans_lookup() {
        let env = |key: &str| match key {
            "HOME" => Some("/home/u".into()),
            "CONTAINERS_STORAGE_CONF" => Some("/tmp/storage.conf".into()),
            _ => None,
        };
        let files = config_files(&env);
        for path in [
            "/etc/containers/containers.conf",
            "/etc/containers/containers.conf.d",
            "/home/u/.config/containers/containers.conf",
            "/home/u/.config/containers/registries.conf",
            "/tmp/storage.conf",
        ] {
            assert!(files.contains(&PathBuf::from(path)), "{path}: {files:?}");
        }
        assert!(!files.contains(&PathBuf::from("/etc/containers/storage.conf")));
        let env = |key: &str| (key == "XDG_CONFIG_HOME").then(|| "/x".into());
        assert!(config_files(&env).contains(&PathBuf::from("/x/containers/containers.conf")));
    }

    /// Issue 15: after the user set runtime = "runc" in containers.conf, podlab kept using
    /// the service that had started with the old file.
    #[test]
    fn an_edited_containers_conf_is_a_changed_fingerprint() {
        let dir = tempfile::tempdir().unwrap();
        let conf = dir.path().join("containers.conf");
        let drop_in = dir.path().join("containers.conf.d");
        let files = [conf.clone(), drop_in.clone()];
        let before = config_fingerprint(&files);
        assert!(before.contains(" absent\n"), "{before}");
        assert!(changed_files(&before, &config_fingerprint(&files)).is_empty());
        let recorded = record(&files);
        assert!(changed_since(&recorded).is_empty());
        fs::write(&conf, "[engine]\nruntime = \"runc\"\n").unwrap();
        let written = config_fingerprint(&files);
        assert_eq!(
            changed_files(&before, &written),
            [conf.display().to_string()]
        );
        // The recorded files are checked, whatever this process's environment would name.
        assert_eq!(changed_since(&recorded), [conf.display().to_string()]);
        fs::create_dir(&drop_in).unwrap();
        fs::write(drop_in.join("10-gpu.conf"), "").unwrap();
        let changed = changed_files(&written, &config_fingerprint(&files));
        assert!(
            changed.contains(&drop_in.join("10-gpu.conf").display().to_string()),
            "{changed:?}"
        );
    }

    #[test]
    fn log_tail_keeps_the_last_lines() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("service.log");
        fs::write(&log, "a\n\nb\nc\nd\n").unwrap();
        assert_eq!(log_tail(&log), "b | c | d");
        fs::write(&log, "").unwrap();
        assert_eq!(log_tail(&log), "it printed nothing");
    }
}
