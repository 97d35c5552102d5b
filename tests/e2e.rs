//! End-to-end: the real binary, as the unprivileged test user, against real Podman.

mod common;

use std::fs;

use common::{exclusive_socket, host, ping, shared_socket};

#[test]
fn version_reports_the_users_socket_and_server() {
    let Some(host) = host() else { return };
    let _socket = shared_socket();
    let run = host.podlab(&["version", "--json"]).output();
    let report = run.expect_code(0).json();
    assert_eq!(report["connection"]["origin"], "user-default");
    assert_eq!(
        report["connection"]["socket"],
        host.socket.display().to_string()
    );
    assert_eq!(report["autostarted"], false);
    // The server version must be the one the podman CLI reports for the same user.
    let podman = host
        .command("podman", &["version", "--format", "{{.Server.Version}}"])
        .output();
    let expected = podman.expect_code(0).stdout.trim().to_owned();
    assert_eq!(report["server"]["podman"], expected.as_str());
    assert_eq!(
        report["capabilities"]["kube_play_cdi_limits"],
        expected.as_str() >= "5.4"
    );

    let text = host.podlab(&["version"]).output();
    assert!(
        text.expect_code(0)
            .stdout
            .contains(&format!("podman:              {expected}")),
        "{}",
        text.stdout
    );
}

#[test]
fn logs_go_to_stderr_and_results_to_stdout() {
    let Some(host) = host() else { return };
    let _socket = shared_socket();
    let run = host.podlab(&["-vv", "version", "--json"]).output();
    run.expect_code(0).json();
    assert!(
        run.stderr.contains("podman answers"),
        "debug log missing from stderr: {}",
        run.stderr
    );
}

#[test]
fn doctor_passes_on_the_provisioned_host() {
    let Some(host) = host() else { return };
    let _socket = shared_socket();
    let run = host.podlab(&["doctor", "--json"]).output();
    let report = run.expect_code(0).json();
    assert_eq!(report["ok"], true);
    let checks = report["checks"].as_array().expect("checks array");
    let status = |name: &str| {
        checks
            .iter()
            .find(|c| c["name"] == name)
            .map_or_else(|| panic!("no {name}"), |c| c["status"].clone())
    };
    for name in [
        "podman",
        "user",
        "subuid",
        "subgid",
        "newuidmap",
        "XDG_RUNTIME_DIR",
        "socket",
        "cgroups",
        "init",
        "quadlet",
    ] {
        assert_eq!(status(name), "pass", "{name}: {checks:#?}");
    }
    // The provisioned host has fake device nodes but no driver: GPU checks warn or pass, never fail.
    assert_eq!(status("nvidia devices"), "pass");
    assert_eq!(status("nvidia-uvm"), "pass");
    assert_eq!(
        status("nvidia driver"),
        if fs::metadata("/proc/driver/nvidia/version").is_ok() {
            "pass"
        } else {
            "warn"
        }
    );
    for check in checks.iter().filter(|c| c["status"] != "pass") {
        assert!(check["hint"].is_string(), "{check} has no hint");
    }

    let text = host.podlab(&["doctor"]).output();
    text.expect_code(0);
    for line in text.stdout.lines() {
        assert!(
            ["✔ ", "⚠ ", "✘ ", "  hint: "]
                .iter()
                .any(|prefix| line.starts_with(prefix)),
            "unexpected doctor line {line:?}"
        );
    }
    assert!(
        text.stdout
            .contains(&format!("✔ socket: {}", host.socket.display())),
        "{}",
        text.stdout
    );
}

#[test]
fn autostarts_a_private_service_when_the_user_socket_is_down() {
    let Some(host) = host() else { return };
    let _socket = exclusive_socket();
    let private_dir = host.runtime_dir.join("podlab");
    let private_socket = private_dir.join("podman.sock");
    host.stop_private_service();
    host.stop_user_socket();
    let restore = RestoreUserSocket(host);

    let refused = host.podlab(&["--no-autostart", "version"]).output();
    refused.expect_code(2);
    assert!(
        refused.stderr.contains("--no-autostart") && refused.stderr.contains("hint: "),
        "{}",
        refused.stderr
    );

    let started = host.podlab(&["version", "--json"]).output();
    let report = started.expect_code(0).json();
    assert_eq!(report["connection"]["origin"], "podlab-service");
    assert_eq!(
        report["connection"]["socket"],
        private_socket.display().to_string()
    );
    assert_eq!(report["autostarted"], true);
    let pid = report["connection"]["started_pid"]
        .as_u64()
        .expect("pid of the started service");
    assert_eq!(
        fs::read_to_string(private_dir.join("service.pid"))
            .expect("pid file")
            .trim(),
        pid.to_string()
    );
    // Detached: its own session, not the caller's.
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).expect("service alive");
    let fields: Vec<&str> = stat.rsplit_once(") ").expect("stat").1.split(' ').collect();
    assert_eq!(
        fields[3],
        pid.to_string(),
        "service is not a session leader: {stat}"
    );
    assert!(ping(&private_socket));

    // A second run reuses the live service instead of starting another.
    let second = host.podlab(&["version", "--json"]).output();
    let report = second.expect_code(0).json();
    assert_eq!(report["connection"]["origin"], "podlab-service");
    assert_eq!(report["connection"]["started_pid"], pid);

    let doctor = host.podlab(&["doctor", "--json"]).output();
    let doctor = doctor.expect_code(0).json();
    let socket = doctor["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .find(|c| c["name"] == "socket")
        .cloned();
    assert!(socket.is_some_and(
        |c| c["status"] == "pass" && c["message"].as_str().unwrap_or("").contains("podlab")
    ));

    host.stop_private_service();
    assert!(!ping(&private_socket));
    drop(restore);
    assert!(host.socket_alive());
}

#[test]
fn version_says_started_by_podlab_for_its_own_reused_private_service() {
    let Some(host) = host() else { return };
    let _socket = exclusive_socket();
    let private_dir = host.runtime_dir.join("podlab");
    host.stop_private_service();
    host.stop_user_socket();
    let restore = RestoreUserSocket(host);
    let first = host.podlab(&["version"]).output();
    first.expect_code(0);
    let pid = fs::read_to_string(private_dir.join("service.pid")).expect("pid file");
    let line = format!("started by podlab:   yes (pid {}, ", pid.trim());
    assert!(first.stdout.contains(&line), "{}", first.stdout);
    // A later run reuses that service: still podlab's, and it says so.
    let reused = host.podlab(&["version"]).output();
    reused.expect_code(0);
    assert!(reused.stdout.contains(&line), "{}", reused.stdout);
    let json = host.podlab(&["version", "--json"]).output();
    assert_eq!(json.expect_code(0).json()["autostarted"], true);
    host.stop_private_service();
    drop(restore);
}

/// Puts the user's socket back even when an assertion fails, so other tests keep working.
struct RestoreUserSocket(&'static common::TestHost);

impl Drop for RestoreUserSocket {
    fn drop(&mut self) {
        self.0.start_user_socket();
    }
}

#[test]
fn missing_podman_is_a_clear_error() {
    let Some(host) = host() else { return };
    // A runtime dir of its own: no socket there, so podlab would have to start podman.
    let runtime = host.user_dir("nopodman");
    let run = host
        .podlab(&["version"])
        .env("PATH", "/nonexistent")
        .env("XDG_RUNTIME_DIR", runtime.display().to_string())
        .output();
    run.expect_code(2);
    assert!(
        run.stderr
            .contains("error: podman is not installed or not on PATH"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("\nhint: install podman"),
        "{}",
        run.stderr
    );
    assert!(run.stdout.is_empty());

    let doctor = host
        .podlab(&["doctor"])
        .env("PATH", "/nonexistent")
        .env("XDG_RUNTIME_DIR", runtime.display().to_string())
        .output();
    doctor.expect_code(1);
    assert!(
        doctor
            .stdout
            .contains("✘ podman: podman is not installed or not on PATH"),
        "{}",
        doctor.stdout
    );
    let _ = fs::remove_dir_all(runtime);
}

#[test]
fn bad_sockets_and_flags_fail_with_the_right_codes() {
    let Some(host) = host() else { return };
    let dir = host.user_dir("badsock");
    let not_socket = dir.join("podman.sock");
    fs::write(&not_socket, "not a socket").expect("write");
    let url = format!("unix://{}", not_socket.display());

    let run = host.podlab(&["--url", &url, "version"]).output();
    run.expect_code(2);
    assert!(
        run.stderr.contains("exists but is not a socket") && run.stderr.contains("hint: "),
        "{}",
        run.stderr
    );

    let run = host
        .podlab(&["version"])
        .env(
            "CONTAINER_HOST",
            "ssh://core@example/run/podman/podman.sock",
        )
        .output();
    run.expect_code(1);
    assert!(
        run.stderr.contains("ssh connections are not supported yet"),
        "{}",
        run.stderr
    );

    host.podlab(&["no-such-command"]).output().expect_code(1);
    host.podlab(&["version", "--no-such-flag"])
        .output()
        .expect_code(1);
    let help = host.podlab(&["--help"]).output();
    assert!(help.expect_code(0).stdout.contains("doctor"));
    let _ = fs::remove_dir_all(dir);
}
