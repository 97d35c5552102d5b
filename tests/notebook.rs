//! End-to-end: `podlab notebook` as the unprivileged test user, with no systemd (none runs on
//! the test host). The "JupyterLab" is busybox httpd in the test image; the unit is installed
//! into a config directory of the test's own (`XDG_CONFIG_HOME`), goes through Podman's quadlet
//! generator (`-dryrun`), and its `ExecStart=`, read the way systemd reads it and without the
//! systemd-only flags, is run as the user. Checked: the health check passes, the token reaches
//! the container only through the Podman secret (it is in no unit, label, command or inspect
//! output), `notebook url` answers on 127.0.0.1, `notebook rm` removes unit, container and
//! secret, and refused installs leave the unit directory and Podman as they were.

#![allow(
    clippy::panic,
    clippy::expect_used,
    reason = "test helpers: a failed step must fail the test at once"
)]

mod common;
#[path = "common/execstart.rs"]
mod execstart;

use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use common::{Run, TestHost, host, shared_socket, wait_for};

const QUADLET: &str = "/usr/libexec/podman/quadlet";
const HEALTH_CMD: &str = "wget -q -O /dev/null http://127.0.0.1:8888/lab";
/// busybox httpd serving `/lab` on 8888, as JupyterLab would.
const SERVER: &str =
    "mkdir -p /tmp/www && echo notebook-ok > /tmp/www/lab && exec httpd -f -p 8888 -h /tmp/www";

/// A project directory and a config directory of the test's own; removes the notebooks'
/// containers and secrets, and both directories, however the test ends.
struct Scratch<'a> {
    host: &'a TestHost,
    project: PathBuf,
    config: PathBuf,
    names: Vec<String>,
}

impl<'a> Scratch<'a> {
    fn new(host: &'a TestHost, tag: &str, names: &[&str]) -> Self {
        let project = host.user_dir(tag);
        let config = host.user_dir(&format!("{tag}-config"));
        // Podman settings of the test user (the OCI runtime), in case podlab starts a service
        // of its own under this config directory.
        let conf = host.home.join(".config/containers/containers.conf");
        if conf.exists() {
            let dir = config.join("containers");
            host.command("mkdir", &["-p", &dir.display().to_string()])
                .output()
                .expect_code(0);
            host.command(
                "cp",
                &[&conf.display().to_string(), &dir.display().to_string()],
            )
            .output()
            .expect_code(0);
        }
        Self {
            host,
            project,
            config,
            names: names.iter().map(|name| (*name).to_owned()).collect(),
        }
    }

    fn podlab(&self, args: &[&str]) -> Run {
        self.host
            .podlab(args)
            .cwd(&self.project)
            .env("XDG_CONFIG_HOME", self.config.display().to_string())
            .output()
    }

    fn podman(&self, args: &[&str]) -> Run {
        self.host.command("podman", args).output()
    }

    fn unit_dir(&self) -> PathBuf {
        self.config.join("containers/systemd/podlab")
    }

    /// The unit directory's entries, sorted.
    fn listing(&self) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(self.unit_dir())
            .map(|entries| {
                entries
                    .filter_map(Result::ok)
                    .map(|entry| entry.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }

    fn secret_exists(&self, name: &str) -> bool {
        let secret = format!("podlab-notebook-{name}");
        self.podman(&["secret", "exists", &secret]).code == 0
    }
}

impl Drop for Scratch<'_> {
    fn drop(&mut self) {
        for name in &self.names {
            let _ = self.podman(&["rm", "-f", "-t", "0", name]);
            let _ = self.podman(&["secret", "rm", &format!("podlab-notebook-{name}")]);
        }
        let _ = fs::remove_dir_all(&self.project);
        let _ = fs::remove_dir_all(&self.config);
    }
}

/// A TCP port nothing listens on now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("a free port")
}

/// `podman run ...` from the `ExecStart=` quadlet generates for `name`, as systemd would pass
/// it, without `--sdnotify=` and `--cgroups=split`.
fn podman_run(scratch: &Scratch<'_>, name: &str) -> Vec<String> {
    let dirs = scratch.config.join("containers/systemd");
    let run = scratch
        .host
        .command(QUADLET, &["-dryrun", "-user", "-no-kmsg-log"])
        .env("QUADLET_UNIT_DIRS", dirs.display().to_string())
        .output();
    let header = format!("---{name}.service---");
    let Some((_, rest)) = run.stdout.split_once(&header) else {
        panic!("no {header} from quadlet:\n{}", run.stderr);
    };
    let service = rest.split("\n---").next().unwrap_or_default();
    let line = service
        .lines()
        .find_map(|line| line.strip_prefix("ExecStart="))
        .expect("an ExecStart= line");
    let unit = format!("{name}.service");
    let runtime = scratch.host.runtime_dir.display().to_string();
    let words = execstart::parse(
        line,
        &execstart::Expansions {
            specifiers: &[(b't', &runtime), (b'N', name), (b'n', &unit)],
            env: &[("PODMAN_SYSTEMD_UNIT", &unit)],
        },
    )
    .unwrap_or_else(|err| panic!("{err}: {line}"));
    words
        .into_iter()
        .map(|arg| String::from_utf8(arg).expect("UTF-8 argument"))
        .filter(|arg| !arg.starts_with("--sdnotify=") && arg != "--cgroups=split")
        .collect()
}

/// `GET` of an `http://127.0.0.1:PORT/...` URL: the whole answer.
fn fetch(url: &str) -> String {
    let rest = url.strip_prefix("http://").expect("an http URL");
    let (address, path) = rest.split_once('/').expect("a path");
    let mut stream = std::net::TcpStream::connect(address).expect("connect");
    write!(stream, "GET /{path} HTTP/1.0\r\nHost: {address}\r\n\r\n").expect("send");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("read");
    answer
}

fn install_args<'a>(name: &'a str, image: &'a str, port: &'a str) -> Vec<&'a str> {
    vec![
        "notebook",
        "install",
        "--name",
        name,
        "--image",
        image,
        "--gpus",
        "none",
        "--port",
        port,
        "--health-cmd",
        HEALTH_CMD,
        "--",
        "sh",
        "-c",
        SERVER,
    ]
}

/// Issue 15: `--json` on every listing, in the shape README.md documents (the notebook runs
/// and is healthy).
#[allow(
    clippy::indexing_slicing,
    clippy::expect_used,
    reason = "a test step: a missing key or value fails the test"
)]
fn status_as_json_in_the_readme_shape(scratch: &Scratch<'_>, name: &str, port: &str) {
    let json = scratch
        .podlab(&["notebook", "status", "--json", name])
        .expect_code(0)
        .json();
    assert_eq!(
        common::json_keys(&json),
        common::readme_json_keys("notebook status")
    );
    assert_eq!(json["name"], name);
    assert_eq!(json["container"], "running");
    assert_eq!(json["health"], "healthy");
    assert_eq!(json["edited"], false);
    assert_eq!(json["url"], format!("http://127.0.0.1:{port}/lab"));
}

#[test]
fn a_notebook_answers_with_its_secret_token_and_is_removed_whole() {
    let Some(host) = host() else { return };
    let _socket = shared_socket();
    host.start_user_socket();
    assert!(
        Path::new(QUADLET).exists(),
        "the test host has podman but no {QUADLET}"
    );
    let name = format!("podlab-e2e-nb{}", std::process::id());
    let scratch = Scratch::new(host, "notebook", &[&name]);
    let port = free_port().to_string();

    let installed = scratch.podlab(&install_args(&name, &host.image, &port));
    installed.expect_code(0);
    let unit = scratch.unit_dir().join(format!("{name}.container"));
    assert_eq!(installed.stdout.trim(), unit.display().to_string());
    assert!(
        installed
            .stderr
            .contains(&format!("systemctl --user start {name}.service")),
        "says what to run without systemd:\n{}",
        installed.stderr
    );
    let text = fs::read_to_string(&unit).expect("the unit");
    for line in [
        format!("Secret=podlab-notebook-{name},type=env,target=JUPYTER_TOKEN"),
        format!("PublishPort=127.0.0.1:{port}:8888/tcp"),
        format!("HealthCmd={HEALTH_CMD}"),
        "Notify=healthy".to_owned(),
        "Label=io.podlab.kind=notebook".to_owned(),
        "Restart=on-failure".to_owned(),
        "TimeoutStartSec=900".to_owned(),
        "WantedBy=default.target".to_owned(),
    ] {
        assert!(text.lines().any(|l| l == line), "no {line:?} in:\n{text}");
    }

    let podman = podman_run(&scratch, &name);
    assert!(podman.contains(&"-d".to_owned()), "{podman:?}");
    host.command(&podman[0], &podman[1..])
        .output()
        .expect_code(0);

    // No systemd runs the check on a timer here: run it until it passes.
    wait_for("the health check to pass", || {
        scratch.podman(&["healthcheck", "run", &name]).code == 0
    });
    let health = scratch.podman(&["inspect", "--format", "{{.State.Health.Status}}", &name]);
    assert_eq!(health.stdout.trim(), "healthy", "{}", health.stderr);
    let status = scratch.podlab(&["notebook", "status", &name]);
    status.expect_code(0);
    assert!(
        status
            .stdout
            .contains("container: running\nhealth:    healthy\n"),
        "{}",
        status.stdout
    );
    status_as_json_in_the_readme_shape(&scratch, &name, &port);

    let url = scratch.podlab(&["notebook", "url", &name]);
    url.expect_code(0);
    let url = url.stdout.trim().to_owned();
    let prefix = format!("http://127.0.0.1:{port}/lab?token=");
    let token = url
        .strip_prefix(&prefix)
        .unwrap_or_else(|| panic!("{url:?} does not start with {prefix:?}"));
    assert!(
        token.len() >= 64 && token.bytes().all(|b| b.is_ascii_hexdigit()),
        "{token:?}"
    );
    let answer = fetch(&url);
    assert!(
        answer.starts_with("HTTP/1.") && answer.contains(" 200 "),
        "{answer}"
    );
    assert!(answer.ends_with("notebook-ok\n"), "{answer}");

    // The token is in the container's environment, and nowhere podlab or Podman shows.
    let env = scratch.podman(&["exec", &name, "sh", "-c", "echo \"$JUPYTER_TOKEN\""]);
    assert_eq!(env.stdout.trim(), token, "{}", env.stderr);
    let inspect = scratch.podman(&["inspect", &name]);
    inspect.expect_code(0);
    let ps = scratch.podlab(&["ps", "--json"]);
    ps.expect_code(0);
    assert!(ps.stdout.contains(&name), "{}", ps.stdout);
    let logs = scratch.podlab(&["notebook", "logs", &name]);
    logs.expect_code(0);
    for (what, seen) in [
        ("the unit", &text),
        ("podman inspect", &inspect.stdout),
        ("podlab ps", &ps.stdout),
        ("podlab notebook status", &status.stdout),
        ("the install's output", &installed.stderr),
        ("the logs", &logs.stdout),
    ] {
        assert!(!seen.contains(token), "the token shows in {what}:\n{seen}");
    }

    let removed = scratch.podlab(&["notebook", "rm", &name]);
    removed.expect_code(0);
    assert!(
        removed.stdout.contains(&format!("container {name}")),
        "{}",
        removed.stdout
    );
    assert!(!unit.exists());
    assert_eq!(scratch.podman(&["container", "exists", &name]).code, 1);
    assert!(!scratch.secret_exists(&name));
}

#[test]
fn taken_names_busy_ports_and_bad_names_change_nothing() {
    let Some(host) = host() else { return };
    let _socket = shared_socket();
    host.start_user_socket();
    let pid = std::process::id();
    let (first, squatted, busy) = (
        format!("podlab-e2e-nba{pid}"),
        format!("podlab-e2e-nbb{pid}"),
        format!("podlab-e2e-nbc{pid}"),
    );
    let scratch = Scratch::new(host, "notebook-bad", &[&first, &squatted, &busy]);
    let port = free_port().to_string();
    // Issue 15: -p for JupyterLab's port was dropped without a word.
    let mut first_args = install_args(&first, &host.image, &port);
    let at = first_args.len() - 4;
    first_args.splice(at..at, ["-p", "9999:8888"]);
    let installed = scratch.podlab(&first_args);
    installed.expect_code(0);
    assert!(
        installed
            .stderr
            .contains("127.0.0.1:9999:8888/tcp from -p or podlab.toml is not used"),
        "{}",
        installed.stderr
    );
    let unit = scratch.unit_dir().join(format!("{first}.container"));
    let text = fs::read_to_string(&unit).expect("the unit");
    let url = scratch.podlab(&["notebook", "url", &first]);
    url.expect_code(0);

    let before = scratch.listing();
    let refuse = |args: &[&str], message: &str| {
        let run = scratch.podlab(args);
        run.expect_code(1);
        assert!(run.stderr.contains(message), "{message}:\n{}", run.stderr);
        assert!(run.stderr.contains("hint: "), "{}", run.stderr);
        assert_eq!(
            scratch.listing(),
            before,
            "unit directory changed by {args:?}"
        );
    };

    // The name of an installed notebook: its unit and its token stay as they were.
    let other_port = free_port().to_string();
    refuse(
        &install_args(&first, &host.image, &other_port),
        &format!("the notebook name {first} is taken"),
    );
    assert_eq!(fs::read_to_string(&unit).expect("the unit"), text);
    assert_eq!(
        scratch.podlab(&["notebook", "url", &first]).stdout,
        url.stdout
    );

    // A name whose secret exists already.
    let value = scratch.project.join("secret");
    fs::write(&value, "not podlab's").expect("secret file");
    let secret = format!("podlab-notebook-{squatted}");
    scratch
        .podman(&["secret", "create", &secret, &value.display().to_string()])
        .expect_code(0);
    refuse(
        &install_args(&squatted, &host.image, &other_port),
        &format!("the podman secret {secret} exists"),
    );

    // Issue 15: the port of another notebook, installed but not running.
    refuse(
        &install_args(&busy, &host.image, &port),
        &format!("port {port} is taken by notebook {first}"),
    );

    // A port in use: no secret is left behind either.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let taken = listener.local_addr().expect("addr").port().to_string();
    refuse(
        &install_args(&busy, &host.image, &taken),
        "is in use on this host",
    );
    assert!(!scratch.secret_exists(&busy));

    // A name systemd would reject (podman accepts it).
    let long = "n".repeat(250);
    refuse(
        &install_args(&long, &host.image, &other_port),
        "podlab takes at most 237",
    );
    let run = scratch.podlab(&install_args("a@b", &host.image, &other_port));
    run.expect_code(1);
    assert!(run.stderr.contains("invalid name"), "{}", run.stderr);
    assert_eq!(scratch.listing(), before);

    scratch.podlab(&["notebook", "rm", &first]).expect_code(0);
    assert!(!unit.exists() && !scratch.secret_exists(&first));
    let again = scratch.podlab(&["notebook", "rm", &first]);
    again.expect_code(1);
    assert!(
        again.stderr.contains(&format!("no notebook {first}")),
        "{}",
        again.stderr
    );
}
