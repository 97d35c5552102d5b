//! End-to-end: `podlab run` as the unprivileged test user against its own socket, checked
//! from inside the containers it starts.

mod common;

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::{Mutex, MutexGuard, PoisonError};

use common::{Run, TestHost, exclusive_socket, host, listening, shared_socket, wait_for};

const SYSTEM_SPEC: &str = "/etc/cdi/podlab-nvidia.yaml";

/// GPU tests install or remove the system CDI spec: they take turns.
static SYSTEM_SPEC_LOCK: Mutex<()> = Mutex::new(());

fn spec_lock() -> MutexGuard<'static, ()> {
    SYSTEM_SPEC_LOCK
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
}

/// `podlab ARGS` as the user, in `project`.
fn podlab(host: &TestHost, project: &Path, args: &[&str]) -> Run {
    host.podlab(args).cwd(project).output()
}

/// Waits until the project has no containers: Podman removes `--rm` ones just after exit.
#[track_caller]
fn assert_none_left(host: &TestHost, project: &Path) {
    let name = project_name(project);
    wait_for("the project's containers to be removed", || {
        containers_of(host, &name).is_empty()
    });
}

/// The podlab containers of a project, as Podman lists them.
fn containers_of(host: &TestHost, project: &str) -> Vec<String> {
    let filter = format!("label=io.podlab.project={project}");
    let run = host
        .command(
            "podman",
            &["ps", "-a", "--filter", &filter, "--format", "{{.Names}}"],
        )
        .output();
    run.expect_code(0)
        .stdout
        .lines()
        .map(str::to_owned)
        .collect()
}

fn project_name(dir: &Path) -> String {
    dir.file_name()
        .map(|name| name.to_string_lossy().to_lowercase())
        .unwrap_or_default()
}

#[test]
fn run_propagates_exit_code_ownership_and_shm_size() {
    let Some(host) = host() else { return };
    let _socket = shared_socket();
    let project = host.user_dir("run-basics");
    let script =
        "touch /workspace/made-inside; df -k /dev/shm | tail -1; echo to-stderr >&2; exit 3";
    let args = [
        "run",
        "--gpus",
        "none",
        "--image",
        &host.image,
        "--shm-size",
        "256m",
        "--",
        "sh",
        "-c",
        script,
    ];
    let run = podlab(host, &project, &args);
    run.expect_code(3);
    // 256 MiB = 262144 KiB, as df reports it for the tmpfs.
    assert!(
        run.stdout.contains("262144"),
        "shm size not applied:\n{}",
        run.stdout
    );
    assert!(
        run.stderr.contains("to-stderr") && !run.stdout.contains("to-stderr"),
        "{run:?}"
    );
    let made = fs::metadata(project.join("made-inside")).expect("file made in /workspace");
    assert_eq!(
        (made.uid(), made.gid()),
        (host.uid, host.gid),
        "file not owned by the host user"
    );
    assert_none_left(host, &project);
    let _ = fs::remove_dir_all(project);
}

#[test]
fn the_image_user_is_mapped_to_the_host_user() {
    let Some(host) = host() else { return };
    let _socket = shared_socket();
    let project = host.user_dir("userns");
    // The test image has user dev (1000); --user-map 1000:1000 maps the host user onto it.
    let run = podlab(
        host,
        &project,
        &[
            "run",
            "--gpus",
            "none",
            "--image",
            &host.image,
            "--user-map",
            "1000:1000",
            "--",
            "id",
            "-u",
        ],
    );
    assert_eq!(run.expect_code(0).stdout.trim(), "1000");
    // Plain keep-id: the host uid itself, with a usable HOME.
    let args = [
        "run",
        "--gpus",
        "none",
        "--image",
        &host.image,
        "--user-map",
        "keep-id",
        "--",
        "sh",
        "-c",
        "id -u; touch $HOME/x && echo home-ok",
    ];
    let run = podlab(host, &project, &args);
    let out = &run.expect_code(0).stdout;
    assert!(
        out.contains(&host.uid.to_string()) && out.contains("home-ok"),
        "{out}"
    );
    let _ = fs::remove_dir_all(project);
}

#[test]
fn fake_gpus_inline_without_a_system_spec() {
    let Some(host) = host() else { return };
    let _socket = shared_socket();
    let _spec = spec_lock();
    let _ = fs::remove_file(SYSTEM_SPEC);
    let project = host.user_dir("gpu-inline");
    let root = host.nvidia_root.display().to_string();
    let script = "ls /dev/nvidia0 /dev/nvidiactl && dlopen-test libcuda.so.1 libnvidia-ml.so.1";
    let args = [
        "-v",
        "run",
        "--driver-root",
        &root,
        "--gpus",
        "all",
        "--image",
        &host.glibc_image,
        "--",
        "sh",
        "-c",
        script,
    ];
    let run = podlab(host, &project, &args);
    run.expect_code(0);
    assert!(run.stderr.contains("GPUs: inline edits"), "{}", run.stderr);
    assert!(
        run.stdout.contains("ok libcuda.so.1") && run.stdout.contains("ok libnvidia-ml.so.1"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("/dev/nvidia0"), "{}", run.stdout);
    let _ = fs::remove_dir_all(project);
}

/// Issue 12 (`--gpus all` started 1.14x slower than `--gpus none`): a session's inline GPU
/// edits are fitted to its image. The glibc image's loader lives in the multiarch directory, so
/// the libraries are mounted there only (not in /usr/lib64 or /usr/local/nvidia/lib64, where
/// Podman made two more bind mounts of each), Triton is pointed there, and only the driver
/// capabilities the container asks for come: compute and utility by default, the video
/// libraries when `NVIDIA_DRIVER_CAPABILITIES` names them.
#[test]
fn gpu_session_start_mounts_only_the_library_dirs_the_loader_searches() {
    let Some(host) = host() else { return };
    let _socket = shared_socket();
    let _spec = spec_lock();
    let _ = fs::remove_file(SYSTEM_SPEC);
    let project = host.user_dir("gpu-fit");
    let root = host.nvidia_root.display().to_string();
    let script = "dlopen-test libcuda.so.1 libnvidia-ml.so.1; \
        for f in /usr/lib/x86_64-linux-gnu/libcuda.so /usr/lib/x86_64-linux-gnu/libnvcuvid.so.1 \
                 /usr/lib64/libcuda.so.1 /usr/local/nvidia/lib64/libcuda.so.1; do \
          test -e $f && echo present $f; done; echo triton=$TRITON_LIBCUDA_PATH";
    let run_with = |env: &[&str]| {
        let mut args = vec!["-v", "run", "--driver-root", &root, "--gpus", "all"];
        for entry in env {
            args.extend(["-e", entry]);
        }
        args.extend(["--image", &host.glibc_image, "--", "sh", "-c", script]);
        podlab(host, &project, &args)
    };
    let default = run_with(&[]);
    default.expect_code(0);
    let out = &default.stdout;
    assert!(
        out.contains("ok libcuda.so.1") && out.contains("ok libnvidia-ml.so.1"),
        "{out}"
    );
    assert!(
        out.contains("present /usr/lib/x86_64-linux-gnu/libcuda.so\n"),
        "{out}"
    );
    assert!(out.contains("triton=/usr/lib/x86_64-linux-gnu\n"), "{out}");
    for absent in ["libnvcuvid", "/usr/lib64/", "/usr/local/nvidia/"] {
        assert!(!out.contains(absent), "{absent} in:\n{out}");
    }
    assert!(
        default
            .stderr
            .contains("for driver capabilities compute,utility"),
        "{}",
        default.stderr
    );

    let video = run_with(&["NVIDIA_DRIVER_CAPABILITIES=compute,utility,video"]);
    video.expect_code(0);
    assert!(
        video
            .stdout
            .contains("present /usr/lib/x86_64-linux-gnu/libnvcuvid.so.1"),
        "{}",
        video.stdout
    );
    let bogus = run_with(&["NVIDIA_DRIVER_CAPABILITIES=gpu"]);
    bogus.expect_code(1);
    assert!(
        bogus.stderr.contains("unknown driver capability \"gpu\"")
            && bogus.stderr.contains("hint:"),
        "{}",
        bogus.stderr
    );
    let _ = fs::remove_dir_all(project);
}

#[test]
fn fake_gpus_by_cdi_name_with_a_system_spec() {
    let Some(host) = host() else { return };
    let _socket = shared_socket();
    let _spec = spec_lock();
    let root = host.nvidia_root.display().to_string();
    host.podlab_as_root(&[
        "cdi",
        "install",
        "--system",
        "--driver-root",
        &root,
        "--podman-version",
        "5.4.2",
    ])
    .expect_code(0);
    let project = host.user_dir("gpu-cdi");
    let script = "ls /dev/nvidia0 && dlopen-test libcuda.so.1";
    let args = [
        "-v",
        "run",
        "--driver-root",
        &root,
        "--gpus",
        "0",
        "--image",
        &host.glibc_image,
        "--",
        "sh",
        "-c",
        script,
    ];
    let run = podlab(host, &project, &args);
    run.expect_code(0);
    assert!(
        run.stderr.contains("GPUs: by CDI name, nvidia.com/gpu=0"),
        "{}",
        run.stderr
    );
    assert!(run.stdout.contains("ok libcuda.so.1"), "{}", run.stdout);

    let args = [
        "run",
        "--driver-root",
        &root,
        "--gpus",
        "5",
        "--image",
        &host.glibc_image,
        "--",
        "true",
    ];
    let run = podlab(host, &project, &args);
    run.expect_code(1);
    assert!(
        run.stderr.contains("unknown GPU 5: this host has GPU 0"),
        "{}",
        run.stderr
    );
    let _ = fs::remove_dir_all(project);
}

#[test]
fn ports_are_published_on_loopback_only_and_a_busy_port_fails_cleanly() {
    let Some(host) = host() else { return };
    let _socket = shared_socket();
    let project = host.user_dir("ports");
    let serve = "while true; do echo hi-from-container | nc -l -p 8080; done";
    let args = [
        "run",
        "-d",
        "--gpus",
        "none",
        "--image",
        &host.image,
        "-p",
        "18080:8080",
        "--",
        "sh",
        "-c",
        serve,
    ];
    let run = podlab(host, &project, &args);
    let name = run.expect_code(0).stdout.trim().to_owned();
    wait_for("the port to listen", || {
        listening().iter().any(|addr| addr.ends_with(":18080"))
    });
    let addrs: Vec<String> = listening()
        .into_iter()
        .filter(|addr| addr.ends_with(":18080"))
        .collect();
    assert_eq!(
        addrs,
        ["127.0.0.1:18080"],
        "published beyond loopback: {addrs:?}"
    );
    host.command("podman", &["rm", "-f", "-t", "0", &name])
        .output()
        .expect_code(0);

    let _busy = std::net::TcpListener::bind("127.0.0.1:18081").expect("bind a port");
    let args = [
        "run",
        "--gpus",
        "none",
        "--image",
        &host.image,
        "-p",
        "18081:8080",
        "--",
        "true",
    ];
    let run = podlab(host, &project, &args);
    assert_ne!(run.code, 0);
    assert!(
        run.stderr.to_lowercase().contains("address already in use"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("hint: another process holds that port"),
        "{}",
        run.stderr
    );
    assert_none_left(host, &project);
    let _ = fs::remove_dir_all(project);
}

#[test]
fn bad_input_fails_clearly_and_leaves_nothing() {
    let Some(host) = host() else { return };
    let _socket = shared_socket();
    let project = host.user_dir("bad-input");
    let run = podlab(
        host,
        &project,
        &[
            "run",
            "--gpus",
            "none",
            "--image",
            "localhost/no-such-image:1",
            "--",
            "true",
        ],
    );
    run.expect_code(1);
    assert!(
        run.stderr
            .contains("image localhost/no-such-image:1 is not in the local store"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("hint: pull it first"), "{}", run.stderr);

    let toml = project.join("podlab.toml");
    fs::write(&toml, "image = \"x\"\nshm_size = \"16x\"\n").expect("write podlab.toml");
    fs::set_permissions(&toml, std::os::unix::fs::PermissionsExt::from_mode(0o644)).expect("chmod");
    let run = podlab(host, &project, &["run", "--", "true"]);
    run.expect_code(1);
    assert!(
        run.stderr.contains("podlab.toml:2:") && run.stderr.contains("shm_size"),
        "{}",
        run.stderr
    );

    fs::remove_file(&toml).expect("rm");
    let run = podlab(
        host,
        &project,
        &[
            "run",
            "--gpus",
            "none",
            "--image",
            &host.image,
            "--volume",
            "/no/such/dir:/data",
            "--",
            "true",
        ],
    );
    run.expect_code(1);
    assert!(run.stderr.contains("/no/such/dir"), "{}", run.stderr);
    assert_none_left(host, &project);
    let _ = fs::remove_dir_all(project);
}

#[test]
fn ctrl_c_stops_the_job_and_removes_its_container() {
    let Some(host) = host() else { return };
    let _socket = shared_socket();
    let project = host.user_dir("ctrl-c");
    let name = "podlab-e2e-ctrl-c";
    let mut child = host
        .podlab(&[
            "run",
            "--gpus",
            "none",
            "--image",
            &host.image,
            "--name",
            name,
            "--",
            "sleep",
            "60",
        ])
        .cwd(&project)
        .spawn();
    wait_for("the job to start", || {
        containers_of(host, &project_name(&project))
            .iter()
            .any(|n| n == name)
    });
    // SIGINT to podlab itself, as a terminal's Ctrl-C would deliver it.
    let pattern = format!(
        "{} run --gpus none --image {} --name {name}",
        host.podlab.display(),
        host.image
    );
    let pid = std::process::Command::new("pgrep")
        .args(["-u", &host.user, "-f", &pattern])
        .output()
        .expect("pgrep");
    let pid = String::from_utf8_lossy(&pid.stdout)
        .lines()
        .next()
        .unwrap_or_default()
        .trim()
        .to_owned();
    assert!(!pid.is_empty(), "podlab process not found");
    std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .expect("kill");
    let status = child.wait().expect("wait");
    assert_eq!(status.code(), Some(130));
    assert_none_left(host, &project);
    let _ = fs::remove_dir_all(project);
}

/// The pid of the `podlab run ... --name NAME` the test user runs.
fn podlab_pid(host: &TestHost, name: &str) -> Option<String> {
    let pattern = format!("{} run .*--name {name} ", host.podlab.display());
    let found = std::process::Command::new("pgrep")
        .args(["-u", &host.user, "-f", &pattern])
        .output()
        .ok()?;
    String::from_utf8_lossy(&found.stdout)
        .lines()
        .next()
        .map(|pid| pid.trim().to_owned())
        .filter(|pid| !pid.is_empty())
}

/// Whether the container `name` runs, as the podman command (not the socket) sees it.
fn running(host: &TestHost, name: &str) -> bool {
    let filter = format!("name=^{name}$");
    let args = [
        "ps",
        "--filter",
        "status=running",
        "--filter",
        &filter,
        "--format",
        "{{.Names}}",
    ];
    host.command("podman", &args)
        .output()
        .stdout
        .lines()
        .any(|line| line == name)
}

#[test]
fn l2_sigterm_to_a_foreground_run_stops_and_removes_its_job() {
    let Some(host) = host() else { return };
    let _socket = shared_socket();
    let project = host.user_dir("sigterm");
    // SIGTERM as timeout, a CI cancel or kill sends it; SIGQUIT and SIGHUP the same way.
    for (signal, code) in [("TERM", 143), ("QUIT", 131), ("HUP", 129)] {
        let name = format!("podlab-e2e-sig{}", signal.to_lowercase());
        let _ = host.command("podman", &["rm", "-f", &name]).output();
        let child = host
            .podlab(&[
                "run",
                "--gpus",
                "none",
                "--image",
                &host.image,
                "--name",
                &name,
                "--",
                "sleep",
                "600",
            ])
            .cwd(&project)
            .spawn();
        wait_for("the job to run", || running(host, &name));
        wait_for("podlab's process", || podlab_pid(host, &name).is_some());
        let pid = podlab_pid(host, &name).unwrap_or_default();
        std::process::Command::new("kill")
            .args([&format!("-{signal}"), &pid])
            .status()
            .expect("kill");
        let output = child.wait_with_output().expect("wait");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(code), "SIG{signal}: {stderr}");
        assert!(
            stderr.contains(&format!("SIG{signal}: stopping and removing {name}")),
            "{stderr}"
        );
        // Gone at once, not only once Podman gets round to it: it held its GPUs.
        let left = host
            .command("podman", &["ps", "-a", "--format", "{{.Names}}"])
            .output();
        assert!(
            !left.stdout.lines().any(|line| line == name),
            "SIG{signal} left {name}: {}",
            left.stdout
        );
    }
    assert_none_left(host, &project);
    let _ = fs::remove_dir_all(project);
}

#[test]
fn l2_a_hangup_ignored_at_start_as_under_nohup_leaves_the_job_running() {
    let Some(host) = host() else { return };
    let _socket = shared_socket();
    let project = host.user_dir("nohup");
    let name = "podlab-e2e-nohup";
    let _ = host.command("podman", &["rm", "-f", name]).output();
    // `nohup` ignores SIGHUP and execs the command: podlab must leave it ignored.
    let script = format!(
        "trap '' HUP; exec {} run --gpus none --image {} --name {name} -- sh -c 'sleep 3; exit 5'",
        host.podlab.display(),
        host.image
    );
    let child = host.command("sh", &["-c", &script]).cwd(&project).spawn();
    wait_for("the job to run", || running(host, name));
    wait_for("podlab's process", || podlab_pid(host, name).is_some());
    let pid = podlab_pid(host, name).unwrap_or_default();
    std::process::Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .expect("kill");
    let output = child.wait_with_output().expect("wait");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        output.status.code(),
        Some(5),
        "the job's own exit code: {stderr}"
    );
    assert!(!stderr.contains("SIGHUP"), "{stderr}");
    assert_none_left(host, &project);
    let _ = fs::remove_dir_all(project);
}

#[test]
fn l3_a_dying_service_leaves_the_job_running_and_podlab_follows_it_to_its_exit_code() {
    let Some(host) = host() else { return };
    let _socket = exclusive_socket();
    let project = host.user_dir("socket-dies");
    let name = "podlab-e2e-socket-dies";
    let _ = host.command("podman", &["rm", "-f", name]).output();
    let child = host
        .podlab(&[
            "run",
            "--gpus",
            "none",
            "--image",
            &host.image,
            "--name",
            name,
            "--",
            "sh",
            "-c",
            "sleep 8; echo finished >&2; exit 7",
        ])
        .cwd(&project)
        .spawn();
    wait_for("the job to run", || running(host, name));
    host.stop_user_socket();
    // The service died; the job did not.
    assert!(running(host, name), "the job stopped with the service");
    let output = child.wait_with_output().expect("wait");
    let stderr = String::from_utf8_lossy(&output.stderr);
    // podlab reached Podman again through its own service and followed the job.
    let private_pid = host.runtime_dir.join("podlab/service.pid");
    host.start_user_socket();
    assert_eq!(output.status.code(), Some(7), "{stderr}");
    assert!(
        stderr.contains(&format!("{name} keeps running")),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("reattached to {name}")),
        "{stderr}"
    );
    assert!(
        stderr.contains("finished"),
        "the job's output after the reattach: {stderr}"
    );
    assert_none_left(host, &project);
    if let Ok(pid) = fs::read_to_string(private_pid) {
        let _ = std::process::Command::new("kill")
            .arg(pid.trim())
            .stderr(std::process::Stdio::null())
            .status();
    }
    let _ = fs::remove_dir_all(project);
}

#[test]
fn run_of_a_missing_command_exits_127_and_of_a_non_executable_one_126() {
    let Some(host) = host() else { return };
    let _socket = shared_socket();
    let project = host.user_dir("no-command");
    for (command, code, says) in [
        ("/nonexistent", 127, "was not found"),
        ("/etc/passwd", 126, "is not executable"),
    ] {
        let run = podlab(
            host,
            &project,
            &[
                "run",
                "--gpus",
                "none",
                "--image",
                &host.image,
                "--",
                command,
            ],
        );
        run.expect_code(code);
        assert!(
            run.stderr.contains(says) && run.stderr.contains(command),
            "{}",
            run.stderr
        );
        assert!(run.stderr.contains("hint: "), "{}", run.stderr);
        assert!(!run.stderr.contains("run with -v"), "{}", run.stderr);
        // As podman exec reports it.
        let podman = host
            .command("podman", &["run", "--rm", &host.image, command])
            .output();
        assert_eq!(podman.code, code, "{}", podman.stderr);
    }
    assert_none_left(host, &project);
    let _ = fs::remove_dir_all(project);
}

#[test]
fn code_prints_the_attach_uri_without_vscode_and_runs_code_when_present() {
    let Some(host) = host() else { return };
    let _socket = shared_socket();
    let project = host.user_dir("code");
    let args = [
        "run",
        "-d",
        "--gpus",
        "none",
        "--image",
        &host.image,
        "--",
        "sleep",
        "60",
    ];
    let name = podlab(host, &project, &args)
        .expect_code(0)
        .stdout
        .trim()
        .to_owned();
    let run = podlab(host, &project, &["code", &name]);
    let uri = run.expect_code(0).stdout.trim().to_owned();
    let hex: String =
        format!("{{\"containerName\":\"/{name}\"}}")
            .bytes()
            .fold(String::new(), |mut out, b| {
                use std::fmt::Write as _;
                let _ = write!(out, "{b:02x}");
                out
            });
    assert_eq!(
        uri,
        format!("vscode-remote://attached-container+{hex}/workspace")
    );

    // A `code` on PATH is run with the URI.
    let bin = host.user_dir("code-bin");
    let record = bin.join("args");
    let script = format!("#!/bin/sh\necho \"$@\" > {}\n", record.display());
    fs::write(bin.join("code"), script).expect("write fake code");
    fs::set_permissions(
        bin.join("code"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .expect("chmod");
    let _ = std::process::Command::new("chown")
        .arg(format!("{}:{}", host.uid, host.gid))
        .arg(bin.join("code"))
        .status();
    let path = format!("{}:/usr/bin:/bin", bin.display());
    let run = host
        .podlab(&["code", &name])
        .cwd(&project)
        .env("PATH", &path)
        .output();
    assert!(run.expect_code(0).stdout.is_empty(), "{}", run.stdout);
    assert_eq!(
        fs::read_to_string(&record).expect("code was run").trim(),
        format!("--folder-uri {uri}")
    );

    host.command("podman", &["rm", "-f", "-t", "0", &name])
        .output()
        .expect_code(0);
    let run = podlab(host, &project, &["code", &name]);
    run.expect_code(1);
    let _ = fs::remove_dir_all(project);
    let _ = fs::remove_dir_all(bin);
}
