//! Shared plumbing for the end-to-end tests: they run the built `podlab` binary as the
//! unprivileged test user that `tests/host/provision.sh` creates, against that user's own
//! Podman socket.
//!
//! On a host that was not provisioned the tests print why and pass as skipped, unless
//! `PODLAB_E2E=1` (set by `.ci/run`), which turns the skip into a failure.

#![allow(
    dead_code,
    reason = "each test binary uses a different part of this module"
)]
#![allow(
    clippy::panic,
    clippy::expect_used,
    reason = "test support code: a failed setup step must fail the test at once"
)]

use std::collections::HashMap;
use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{OnceLock, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

const HOST_ENV: &str = "/etc/podlab-test-host.env";

/// The provisioned test host, from `/etc/podlab-test-host.env`.
#[derive(Debug, Clone)]
pub struct TestHost {
    pub user: String,
    pub uid: u32,
    pub gid: u32,
    pub home: PathBuf,
    pub runtime_dir: PathBuf,
    pub socket: PathBuf,
    pub image: String,
    /// A glibc-based image with `dlopen-test`.
    pub glibc_image: String,
    /// Real NVIDIA userspace files from Debian's packages, unpacked.
    pub nvidia_root: PathBuf,
    pub nvidia_version: String,
    /// The podlab binary, copied where the test user can execute it.
    pub podlab: PathBuf,
}

/// Tests that stop the user's socket take the write side; all others the read side.
static SOCKET_LOCK: RwLock<()> = RwLock::new(());

pub fn shared_socket() -> RwLockReadGuard<'static, ()> {
    SOCKET_LOCK
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

pub fn exclusive_socket() -> RwLockWriteGuard<'static, ()> {
    SOCKET_LOCK
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The test host, or `None` (after printing why) when the e2e tests must skip.
pub fn host() -> Option<&'static TestHost> {
    static HOST: OnceLock<Result<TestHost, String>> = OnceLock::new();
    match HOST.get_or_init(load) {
        Ok(host) => Some(host),
        Err(reason) if std::env::var("PODLAB_E2E").as_deref() == Ok("1") => {
            panic!("PODLAB_E2E=1 but the e2e host is not usable: {reason}")
        }
        Err(reason) => {
            eprintln!(
                "skipping end-to-end test: {reason} (run sudo tests/host/provision.sh; PODLAB_E2E=1 makes this a failure)"
            );
            None
        }
    }
}

fn load() -> Result<TestHost, String> {
    let text = fs::read_to_string(HOST_ENV).map_err(|err| format!("{HOST_ENV}: {err}"))?;
    if !rustix::process::geteuid().is_root() {
        return Err("the e2e tests run podlab through runuser and must run as root".into());
    }
    let vars: HashMap<&str, &str> = text
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| line.split_once('='))
        .collect();
    let get = |key: &str| {
        vars.get(key)
            .map(|v| (*v).to_owned())
            .ok_or(format!("{HOST_ENV} lacks {key}"))
    };
    let parse = |key: &str| {
        get(key)?
            .parse::<u32>()
            .map_err(|err| format!("{key}: {err}"))
    };
    let podlab = install_binary()?;
    Ok(TestHost {
        user: get("PODLAB_TEST_USER")?,
        uid: parse("PODLAB_TEST_UID")?,
        gid: parse("PODLAB_TEST_GID")?,
        home: get("PODLAB_TEST_HOME")?.into(),
        runtime_dir: get("PODLAB_TEST_RUNTIME_DIR")?.into(),
        socket: get("PODLAB_TEST_SOCKET")?.into(),
        image: get("PODLAB_TEST_IMAGE")?,
        glibc_image: get("PODLAB_TEST_GLIBC_IMAGE")?,
        nvidia_root: get("PODLAB_TEST_NVIDIA_ROOT")?.into(),
        nvidia_version: get("PODLAB_TEST_NVIDIA_VERSION")?,
        podlab,
    })
}

/// The freshly built binary may sit under a directory the test user cannot enter (CI clones
/// under /root): copy it to a world-readable place. One copy per build, shared by every test
/// binary of the run (a debug build is ~170 MB: a copy per test process filled the disk), and
/// copies of earlier builds are removed once they are an hour old.
fn install_binary() -> Result<PathBuf, String> {
    let source = Path::new(env!("CARGO_BIN_EXE_podlab"));
    let meta = fs::metadata(source).map_err(|err| format!("{}: {err}", source.display()))?;
    let built = meta
        .modified()
        .ok()
        .and_then(|time| time.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |age| age.as_nanos());
    let parent = std::env::temp_dir();
    let prefix = "podlab-e2e-bin-";
    let dir = parent.join(format!("{prefix}{}-{built}", meta.len()));
    let target = dir.join("podlab");
    if !target.exists() {
        fs::create_dir_all(&dir).map_err(|err| err.to_string())?;
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755))
            .map_err(|err| err.to_string())?;
        // Copied under a name of this process's, then renamed: test binaries start at once.
        let staged = dir.join(format!(".podlab-{}", std::process::id()));
        fs::copy(source, &staged).map_err(|err| format!("copy podlab: {err}"))?;
        fs::set_permissions(&staged, fs::Permissions::from_mode(0o755))
            .map_err(|err| err.to_string())?;
        fs::rename(&staged, &target).map_err(|err| format!("install podlab: {err}"))?;
    }
    let hour = Duration::from_secs(3600);
    for entry in fs::read_dir(&parent).into_iter().flatten().flatten() {
        let path = entry.path();
        let stale = entry.file_name().to_string_lossy().starts_with(prefix)
            && path != dir
            && entry
                .metadata()
                .and_then(|meta| meta.modified())
                .is_ok_and(|time| time.elapsed().is_ok_and(|age| age > hour));
        if stale {
            let _ = fs::remove_dir_all(&path);
        }
    }
    Ok(target)
}

/// A command run as the test user, with a clean login-like environment.
#[derive(Debug)]
pub struct UserCommand<'a> {
    host: &'a TestHost,
    env: Vec<(String, String)>,
    program: PathBuf,
    args: Vec<String>,
    cwd: PathBuf,
}

impl TestHost {
    /// `podlab ARGS` as the test user.
    pub fn podlab<S: AsRef<str>>(&self, args: &[S]) -> UserCommand<'_> {
        self.command(&self.podlab, args)
    }

    /// `podlab ARGS` as root (the tests run as root), for steps such as `--system` installs.
    pub fn podlab_as_root<S: AsRef<str>>(&self, args: &[S]) -> Run {
        let output = Command::new(&self.podlab)
            .args(args.iter().map(AsRef::as_ref))
            .env_remove("XDG_RUNTIME_DIR")
            .stdin(Stdio::null())
            .output()
            .expect("run podlab as root");
        Run::from(output)
    }

    /// Any program as the test user.
    pub fn command<S: AsRef<str>>(&self, program: impl AsRef<Path>, args: &[S]) -> UserCommand<'_> {
        UserCommand {
            host: self,
            env: vec![
                ("HOME".into(), self.home.display().to_string()),
                ("USER".into(), self.user.clone()),
                ("LOGNAME".into(), self.user.clone()),
                (
                    "PATH".into(),
                    "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin".into(),
                ),
                (
                    "XDG_RUNTIME_DIR".into(),
                    self.runtime_dir.display().to_string(),
                ),
                ("PODMAN_IGNORE_CGROUPSV1_WARNING".into(), "1".into()),
            ],
            program: program.as_ref().to_owned(),
            args: args.iter().map(|arg| arg.as_ref().to_owned()).collect(),
            cwd: PathBuf::from("/"),
        }
    }

    /// Makes a directory owned by the test user, mode 0700 (a runtime dir of its own).
    pub fn user_dir(&self, name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("podlab-e2e-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("create user dir");
        rustix::fs::chown(
            &dir,
            Some(rustix::fs::Uid::from_raw(self.uid)),
            Some(rustix::fs::Gid::from_raw(self.gid)),
        )
        .expect("chown user dir");
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).expect("chmod user dir");
        dir
    }

    /// Whether the user's API socket answers `_ping`.
    pub fn socket_alive(&self) -> bool {
        ping(&self.socket)
    }

    /// Stops the user's API service and waits until its socket no longer answers.
    pub fn stop_user_socket(&self) {
        let pattern = format!(
            "podman system service --time=0 unix://{}",
            self.socket.display()
        );
        let _ = Command::new("pkill")
            .args(["-u", &self.user, "-f", &pattern])
            .status();
        wait_for("the user's socket to stop", || !self.socket_alive());
    }

    /// Stops podlab's private service (in `$XDG_RUNTIME_DIR/podlab`) and waits until its
    /// socket no longer answers, through podlab's own stop: it signals the pid in the pid
    /// file only while that process serves podlab's socket. These tests run as root, and a
    /// stale pid file can name a pid the system has since given to another process (pids wrap
    /// at 32768 here), such as the user's own podman service.
    pub fn stop_private_service(&self) {
        podlab::engine::autostart::stop_private_service(&self.runtime_dir);
        let socket = self.runtime_dir.join("podlab/podman.sock");
        wait_for("the private service to stop", || !ping(&socket));
    }

    /// Starts the user's API service again, as the provisioning script does.
    pub fn start_user_socket(&self) {
        if self.socket_alive() {
            return;
        }
        let url = format!("unix://{}", self.socket.display());
        // `setsid -f` forks the service into its own session and returns at once. Its log is
        // kept beside the provisioning script's service.log (root's file), appended: a
        // service that dies mid-run says why.
        let log = self.socket.with_file_name("restarted-service.log");
        let script = format!(
            "exec setsid -f podman system service --time=0 {url} </dev/null >>'{}' 2>&1",
            log.display()
        );
        let started = self.command("sh", &["-c", &script]).status_only();
        assert_eq!(started, 0, "cannot restart the user's podman socket");
        wait_for("the user's socket to answer", || self.socket_alive());
    }
}

impl UserCommand<'_> {
    /// Runs in `dir` (it must be readable by the test user) instead of `/`.
    pub fn cwd(mut self, dir: &Path) -> Self {
        dir.clone_into(&mut self.cwd);
        self
    }

    pub fn env(mut self, key: &str, value: impl AsRef<str>) -> Self {
        self.env.retain(|(k, _)| k != key);
        self.env.push((key.to_owned(), value.as_ref().to_owned()));
        self
    }

    fn build(&self) -> Command {
        let mut command = Command::new("runuser");
        command.args(["-u", &self.host.user, "--", "env", "-i"]);
        command.args(self.env.iter().map(|(k, v)| format!("{k}={v}")));
        command
            .arg(&self.program)
            .args(&self.args)
            .current_dir(&self.cwd)
            .stdin(Stdio::null());
        command
    }

    /// Starts it in the background, stdout on /dev/null and stderr captured.
    pub fn spawn(&self) -> std::process::Child {
        self.build()
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn runuser")
    }

    /// Runs with stdio on /dev/null (for commands that leave a daemon holding their output).
    pub fn status_only(&self) -> i32 {
        let status = self
            .build()
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        status.expect("run runuser").code().unwrap_or(-1)
    }

    pub fn output(&self) -> Run {
        let output = self.build().output().expect("run runuser");
        Run::from(output)
    }

    /// The exit code and the raw stdout (an image archive, say).
    pub fn output_bytes(&self) -> (i32, Vec<u8>) {
        let output = self.build().output().expect("run runuser");
        (output.status.code().unwrap_or(-1), output.stdout)
    }
}

/// A finished command.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Run {
    fn from(output: Output) -> Self {
        Self {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }
}

impl Run {
    #[track_caller]
    pub fn expect_code(&self, code: i32) -> &Self {
        assert_eq!(
            self.code, code,
            "exit code\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout, self.stderr
        );
        self
    }

    #[track_caller]
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|err| {
            panic!(
                "stdout is not JSON ({err}):\n{}\n--- stderr\n{}",
                self.stdout, self.stderr
            )
        })
    }
}

/// `GET /_ping` over a Unix socket; true when Podman answers `OK`.
pub fn ping(socket: &Path) -> bool {
    let Ok(mut stream) = UnixStream::connect(socket) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    if stream
        .write_all(b"GET /_ping HTTP/1.0\r\nHost: d\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut reply = String::new();
    let _ = stream.read_to_string(&mut reply);
    reply.starts_with("HTTP/1.") && reply.contains(" 200 ") && reply.ends_with("OK")
}

#[track_caller]
pub fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Recreates `from` under `to` with hard links for files and copies of symlinks.
pub fn copy_tree(from: &Path, to: &Path) {
    for entry in fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        let kind = entry.file_type().expect("type");
        if kind.is_dir() {
            fs::create_dir_all(&target).expect("mkdir");
            copy_tree(&entry.path(), &target);
        } else if kind.is_symlink() {
            std::os::unix::fs::symlink(fs::read_link(entry.path()).expect("link"), &target)
                .expect("symlink");
        } else {
            // Hard links are cheap; a copy when /tmp is another file system.
            if fs::hard_link(entry.path(), &target).is_err() {
                fs::copy(entry.path(), &target).expect("copy");
            }
        }
    }
}

/// Listening TCP addresses on the host, as `ss` shows them.
pub fn listening() -> Vec<String> {
    let out = std::process::Command::new("ss")
        .args(["-ltnH"])
        .output()
        .expect("ss");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| line.split_whitespace().nth(3).map(str::to_owned))
        .collect()
}

/// A TCP port nothing listens on now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("a free port")
}

/// Removes the test user's containers when a test ends, failed or not.
pub struct ContainerGuard<'a> {
    pub host: &'a TestHost,
    pub names: Vec<String>,
}

impl Drop for ContainerGuard<'_> {
    fn drop(&mut self) {
        for name in &self.names {
            let _ = self
                .host
                .command("podman", &["rm", "-f", "-t", "0", name])
                .output();
        }
    }
}

/// What a session sees from inside that a copy of it must see too, one fact a line: the GPU
/// nodes and driver library, the type and `ro`/`rw` of `/workspace`, `/data` and `/dev/shm`,
/// the size of `/dev/shm` (`shm KiB`), `$WHEN` and `$ROUNDTRIP`, `/data/marker`, the uid, and
/// what `/workspace` holds.
pub fn inside_report(host: &TestHost, container: &str) -> String {
    let script = r#"ls /dev/nvidia0 /dev/nvidiactl && dlopen-test libcuda.so.1 \
        && awk '$2 == "/workspace" || $2 == "/data" || $2 == "/dev/shm" { split($4, o, ","); print $2, $3, o[1] }' /proc/mounts | sort \
        && df -k /dev/shm | tail -1 | awk '{ print "shm", $2 }' \
        && echo "WHEN=$WHEN ROUNDTRIP=$ROUNDTRIP" && cat /data/marker && id -u && ls /workspace"#;
    let run = host
        .command("podman", &["exec", container, "sh", "-c", script])
        .output();
    run.expect_code(0);
    run.stdout
}

/// Starts a session with `podlab run --detach` as the user in `project`, for the round trips
/// through kube and quadlet: every GPU (inline or by CDI name, as the host offers) from the
/// NVIDIA root, `WHEN` and `ROUNDTRIP` set, a data directory holding `marker` read-only at
/// `/data`, a 256m `/dev/shm`, and `port` published for 8080. It runs until it is removed.
/// Returns the data directory.
pub fn start_session(host: &TestHost, project: &Path, name: &str, port: u16) -> PathBuf {
    let data = host.user_dir(&format!("{name}-data"));
    fs::write(data.join("marker"), format!("marker of {name}\n")).expect("write marker");
    fs::set_permissions(data.join("marker"), fs::Permissions::from_mode(0o644))
        .expect("chmod marker");
    let volume = format!("{}:/data:ro", data.display());
    let publish = format!("127.0.0.1:{port}:8080");
    let root = host.nvidia_root.display().to_string();
    let args = [
        "run",
        "--detach",
        "--name",
        name,
        "--image",
        &host.glibc_image,
        "--gpus",
        "all",
        "--driver-root",
        &root,
        "--shm-size",
        "256m",
        "-e",
        "WHEN=2024-01-01",
        "-e",
        "ROUNDTRIP=yes",
        "-v",
        &volume,
        "-p",
        &publish,
        "--",
        "sh",
        "-c",
        "trap 'exit 0' TERM; sleep 600 & wait",
    ];
    host.podlab(&args).cwd(project).output().expect_code(0);
    data
}

const DL_ENV: &str = "/etc/podlab-test-dl.env";

/// The deep-learning test image that `tests/host/dl-image.sh` imports (python3, gcc and the real
/// `triton` wheel, no NVIDIA environment), from `/etc/podlab-test-dl.env`; `None` (after saying
/// why) where the e2e tests skip.
pub fn dl_image() -> Option<&'static str> {
    static IMAGE: OnceLock<Result<String, String>> = OnceLock::new();
    let loaded = IMAGE.get_or_init(|| {
        let text = fs::read_to_string(DL_ENV).map_err(|err| format!("{DL_ENV}: {err}"))?;
        text.lines()
            .find_map(|line| line.strip_prefix("PODLAB_TEST_DL_IMAGE="))
            .map(str::to_owned)
            .ok_or(format!("{DL_ENV} lacks PODLAB_TEST_DL_IMAGE"))
    });
    match loaded {
        Ok(image) => Some(image),
        Err(reason) if std::env::var("PODLAB_E2E").as_deref() == Ok("1") => {
            panic!("PODLAB_E2E=1 but the deep-learning test image is not there: {reason}")
        }
        Err(reason) => {
            eprintln!("skipping end-to-end test: {reason} (run sudo tests/host/provision.sh)");
            None
        }
    }
}

/// The keys README.md documents for `podlab COMMAND --json` (its "JSON output" list: the
/// backticked names after the command, outside parentheses), sorted.
pub fn readme_json_keys(command: &str) -> Vec<String> {
    let readme = include_str!("../../README.md");
    let marker = format!("- `podlab {command} --json`");
    let mut entry = String::new();
    let mut lines = readme.lines().skip_while(|line| !line.starts_with(&marker));
    if let Some(first) = lines.next() {
        entry.push_str(first);
    }
    for line in lines.take_while(|line| line.starts_with("  ")) {
        entry.push(' ');
        entry.push_str(line.trim());
    }
    let described = entry.split_once("`: ").map_or_else(
        || panic!("README.md documents no {marker}"),
        |(_, rest)| rest,
    );
    // Values are named in parentheses after their key: leave them out.
    let mut depth = 0_u32;
    let described: String = described
        .chars()
        .filter(|c| {
            match c {
                '(' => depth += 1,
                ')' => depth = depth.saturating_sub(1),
                _ => return depth == 0,
            }
            false
        })
        .collect();
    let mut keys: Vec<String> = described
        .split('`')
        .skip(1)
        .step_by(2)
        .filter(|word| word.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'))
        .map(str::to_owned)
        .collect();
    keys.sort();
    keys.dedup();
    keys
}

/// The keys of a JSON object, sorted.
#[track_caller]
pub fn json_keys(value: &serde_json::Value) -> Vec<String> {
    let mut keys: Vec<String> = value
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {value}"))
        .keys()
        .cloned()
        .collect();
    keys.sort();
    keys
}
