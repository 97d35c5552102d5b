//! End-to-end: what a hostile or careless user could break (issue 14, part A), run as the
//! unprivileged test user against real Podman. The hostile party is a second unprivileged
//! user, `podlabother` (made by `tests/host/provision.sh`, or here when an older host lacks
//! it), who plants a socket where podlab would look for Podman's.

#![allow(
    clippy::panic,
    clippy::expect_used,
    reason = "test helpers: a failed step must fail the test at once"
)]

mod common;

use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{ContainerGuard, TestHost, free_port, host};

const OTHER_USER: &str = "podlabother";

/// The second user's uid, created when missing (idempotent; `provision.sh --reset` removes it).
fn other_uid() -> u32 {
    let id = || {
        Command::new("id")
            .args(["-u", OTHER_USER])
            .output()
            .ok()
            .filter(|out| out.status.success())
            .and_then(|out| String::from_utf8_lossy(&out.stdout).trim().parse().ok())
    };
    if let Some(uid) = id() {
        return uid;
    }
    // Exit 9: another test created it meanwhile.
    let _ = Command::new("useradd")
        .args([
            "--system",
            "--no-create-home",
            "--shell",
            "/usr/sbin/nologin",
            OTHER_USER,
        ])
        .status();
    id().expect("create the second test user")
}

fn chown(path: &Path, uid: u32) {
    std::os::unix::fs::lchown(path, Some(uid), Some(uid)).expect("chown");
}

/// A socket planted by the other user: it records every byte sent to it and answers as a
/// Podman would (`_ping` with a `Libpod-Api-Version`), so a client that trusts it goes on to
/// send its requests.
struct Planted {
    received: Arc<Mutex<Vec<u8>>>,
    connections: Arc<Mutex<u32>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Planted {
    fn new(socket: &Path, owner: u32) -> Self {
        let listener = UnixListener::bind(socket).expect("bind the planted socket");
        fs::set_permissions(socket, fs::Permissions::from_mode(0o777)).expect("chmod socket");
        chown(socket, owner);
        listener.set_nonblocking(true).expect("nonblocking");
        let received = Arc::new(Mutex::new(Vec::new()));
        let connections = Arc::new(Mutex::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (got, count, done) = (received.clone(), connections.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                let Ok((mut stream, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(20));
                    continue;
                };
                *count.lock().expect("lock") += 1;
                let _ = stream.set_nonblocking(false);
                let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
                let mut buf = [0u8; 16384];
                if let Ok(n) = stream.read(&mut buf) {
                    got.lock()
                        .expect("lock")
                        .extend_from_slice(buf.get(..n).unwrap_or_default());
                }
                let _ = stream.write_all(
                    b"HTTP/1.1 200 OK\r\nLibpod-Api-Version: 5.4.2\r\nContent-Length: 2\r\n\r\nOK",
                );
            }
        });
        Self {
            received,
            connections,
            stop,
            thread: Some(thread),
        }
    }

    fn finish(mut self) -> (u32, String) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        let count = *self.connections.lock().expect("lock");
        let text = String::from_utf8_lossy(&self.received.lock().expect("lock")).into_owned();
        (count, text)
    }
}

/// A directory under /tmp, made and owned by `uid`, mode `mode`.
fn dir_of(name: &str, uid: u32, mode: u32) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("podlab-e2e-{}-{name}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).expect("mkdir");
    chown(&dir, uid);
    fs::set_permissions(&dir, fs::Permissions::from_mode(mode)).expect("chmod");
    dir
}

#[test]
fn s1_socket_in_a_foreign_runtime_dir_is_refused() {
    let Some(host) = host() else { return };
    let other = other_uid();
    let project = host.user_dir("s1-project");
    // The other user's directory, readable by all, with a socket anyone may connect to.
    let runtime = dir_of("s1-runtime", other, 0o755);
    let podman = runtime.join("podman");
    fs::create_dir(&podman).expect("mkdir podman");
    chown(&podman, other);
    fs::set_permissions(&podman, fs::Permissions::from_mode(0o755)).expect("chmod");
    let planted = Planted::new(&podman.join("podman.sock"), other);

    let run = host
        .podlab(&[
            "run",
            "-e",
            "API_KEY=s3cret",
            "--image",
            &host.image,
            "--gpus",
            "none",
            "--",
            "true",
        ])
        .env("XDG_RUNTIME_DIR", runtime.display().to_string())
        .cwd(&project)
        .output();
    let (connections, received) = planted.finish();
    assert_eq!(
        connections, 0,
        "podlab talked to the planted socket:\n{received}"
    );
    assert!(!received.contains("s3cret"));
    run.expect_code(2);
    assert!(
        run.stderr.contains(&format!(
            "XDG_RUNTIME_DIR {} belongs to uid {other}",
            runtime.display()
        )),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("hint: "), "{}", run.stderr);
    let _ = fs::remove_dir_all(&runtime);
    let _ = fs::remove_dir_all(&project);
}

#[test]
fn s1_relative_runtime_dir_is_ignored_and_a_missing_one_is_named() {
    let Some(host) = host() else { return };
    let project = host.user_dir("s1-relative");
    let run = host
        .podlab(&["ps"])
        .env("XDG_RUNTIME_DIR", "rel")
        .cwd(&project)
        .output();
    run.expect_code(2);
    assert!(
        run.stderr.contains("ignoring XDG_RUNTIME_DIR=rel"),
        "{}",
        run.stderr
    );
    assert!(
        !project.join("rel").exists(),
        "podlab made rel/ in the project"
    );

    let missing = project.join("gone");
    let run = host
        .podlab(&["ps"])
        .env("XDG_RUNTIME_DIR", missing.display().to_string())
        .cwd(&project)
        .output();
    run.expect_code(2);
    assert!(run.stderr.contains("does not exist"), "{}", run.stderr);
    assert!(run.stderr.contains("hint: "), "{}", run.stderr);
    assert!(!missing.exists());
    let _ = fs::remove_dir_all(&project);
}

/// `quadlet generate -o DIR` of a session named `name`, as the user; the unit's path.
fn generate_into(host: &TestHost, project: &Path, dir: &Path, name: &str) -> PathBuf {
    let dir_arg = dir.display().to_string();
    host.podlab(&[
        "quadlet",
        "generate",
        "--name",
        name,
        "--image",
        &host.image,
        "--gpus",
        "none",
        "--user-map",
        "keep-id",
        "--podman-version",
        "5.4.2",
        "-o",
        &dir_arg,
        "--",
        "sleep",
        "1",
    ])
    .cwd(project)
    .output()
    .expect_code(0);
    dir.join(format!("{name}.container"))
}

#[test]
fn s2_quadlet_rm_with_a_path_for_a_name_removes_nothing() {
    let Some(host) = host() else { return };
    let project = host.user_dir("s2-project");
    let elsewhere = host.user_dir("s2-units");
    let unit = generate_into(host, &project, &elsewhere, "q1");
    assert!(unit.is_file());
    let escape = format!("../../../../../../..{}/q1", elsewhere.display());
    for name in [escape.as_str(), "../q1"] {
        let run = host.podlab(&["quadlet", "rm", name]).cwd(&project).output();
        run.expect_code(1);
        assert!(run.stderr.contains("invalid name"), "{}", run.stderr);
    }
    assert!(
        unit.is_file(),
        "quadlet rm removed a unit outside podlab's directory"
    );
    // Every NAME goes through the same validator.
    for args in [
        vec!["notebook", "rm", "../x"],
        vec!["stop", "../x"],
        vec!["logs", "a/b"],
        vec!["kube", "down", "../no-such-file"],
    ] {
        let run = host.podlab(&args).cwd(&project).output();
        run.expect_code(1);
        assert!(
            run.stderr.contains("invalid name"),
            "{args:?}: {}",
            run.stderr
        );
    }
    let _ = fs::remove_dir_all(&elsewhere);
    let _ = fs::remove_dir_all(&project);
}

/// `quadlet install --name NAME` of a short job, as the user.
fn install(host: &TestHost, project: &Path, name: &str) -> common::Run {
    let port = format!("127.0.0.1:{}:80", free_port());
    host.podlab(&[
        "quadlet",
        "install",
        "--name",
        name,
        "--image",
        &host.image,
        "--gpus",
        "none",
        "--user-map",
        "keep-id",
        "-p",
        &port,
        "--",
        "sleep",
        "1",
    ])
    .cwd(project)
    .output()
}

fn unit_dir(host: &TestHost) -> PathBuf {
    host.home.join(".config/containers/systemd")
}

#[test]
fn l1_installing_a_unit_over_a_users_own_container_is_refused() {
    let Some(host) = host() else { return };
    let project = host.user_dir("l1-project");
    let name = format!("podlab-e2e-precious{}", std::process::id());
    let _guard = ContainerGuard {
        host,
        names: vec![name.clone()],
    };
    host.command(
        "podman",
        &["run", "-d", "--name", &name, &host.image, "sleep", "3000"],
    )
    .output()
    .expect_code(0);
    let run = install(host, &project, &name);
    run.expect_code(1);
    assert!(run.stderr.contains("would replace it"), "{}", run.stderr);
    assert!(
        run.stderr.contains(&format!("podman rm -f {name}")),
        "{}",
        run.stderr
    );
    assert!(
        !unit_dir(host)
            .join(format!("podlab/{name}.container"))
            .exists()
    );
    let state = host
        .command(
            "podman",
            &["inspect", "--format", "{{.State.Running}}", &name],
        )
        .output();
    assert_eq!(
        state.stdout.trim(),
        "true",
        "the user's container was touched"
    );
    let _ = fs::remove_dir_all(&project);
}

#[test]
fn w3_a_users_own_unit_of_the_same_name_is_refused() {
    let Some(host) = host() else { return };
    let project = host.user_dir("w3-project");
    let name = format!("podlab-e2e-mine{}", std::process::id());
    let dir = unit_dir(host);
    // The user's own unit, where quadlet looks before podlab's subdirectory.
    host.command("mkdir", &["-p", &dir.display().to_string()])
        .output()
        .expect_code(0);
    let mine = dir.join(format!("{name}.container"));
    host.command(
        "sh",
        &[
            "-c",
            &format!("printf '[Container]\\nImage=mine\\n' > {}", mine.display()),
        ],
    )
    .output()
    .expect_code(0);
    let run = install(host, &project, &name);
    let _ = fs::remove_file(&mine);
    run.expect_code(1);
    assert!(
        run.stderr.contains(&mine.display().to_string()),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("hint: pick another --name"),
        "{}",
        run.stderr
    );
    assert!(!dir.join(format!("podlab/{name}.container")).exists());
    let _ = fs::remove_dir_all(&project);
}

#[test]
fn l5_notebook_rm_leaves_a_secret_podlab_did_not_create() {
    let Some(host) = host() else { return };
    let project = host.user_dir("l5-project");
    let name = format!("podlab-e2e-l5{}", std::process::id());
    let secret = format!("podlab-notebook-{name}");
    let value = project.join("value");
    fs::write(&value, "theirs").expect("write");
    fs::set_permissions(&value, fs::Permissions::from_mode(0o644)).expect("chmod");
    host.command(
        "podman",
        &["secret", "create", &secret, &value.display().to_string()],
    )
    .output()
    .expect_code(0);
    let run = host
        .podlab(&["notebook", "rm", &name])
        .cwd(&project)
        .output();
    let still = host
        .command("podman", &["secret", "inspect", &secret])
        .output()
        .code;
    let _ = host.command("podman", &["secret", "rm", &secret]).output();
    assert_eq!(
        still, 0,
        "notebook rm removed a secret podlab did not create"
    );
    run.expect_code(1);
    assert!(
        run.stderr.contains("was not made by podlab"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains(&format!("podman secret rm {secret}")),
        "{}",
        run.stderr
    );
    let _ = fs::remove_dir_all(&project);
}
