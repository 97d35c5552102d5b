//! End-to-end: the first hour of a new user (issue 15), as the unprivileged test user
//! against its own Podman: the scaffold builds on a host with no unqualified-search
//! registries, and bad names, privileged ports and unreadable files get errors that say what
//! to do.

#![allow(
    clippy::expect_used,
    reason = "test helpers: a failed setup step must fail the test at once"
)]

mod common;

use std::fs;
use std::path::Path;

use common::{Run, TestHost, host};

fn podlab(host: &TestHost, project: &Path, args: &[&str]) -> Run {
    host.podlab(args).cwd(project).output()
}

fn write_user_file(host: &TestHost, path: &Path, bytes: &[u8]) {
    fs::write(path, bytes).expect("write file");
    rustix::fs::chown(
        path,
        Some(rustix::fs::Uid::from_raw(host.uid)),
        Some(rustix::fs::Gid::from_raw(host.gid)),
    )
    .expect("chown file");
}

#[track_caller]
fn assert_hint(run: &Run, message: &str, hint: &str) {
    let hint_line = run
        .stderr
        .lines()
        .find(|line| line.starts_with("hint: "))
        .unwrap_or_default();
    assert!(
        run.stderr.contains(message) && hint_line.contains(hint),
        "want {message:?} and a hint with {hint:?}:\n{}",
        run.stderr
    );
}

/// Issue 15: `podlab init` then `podlab build` failed on stock Debian at
/// `FROM nvidia/cuda:...`: "short-name did not resolve to an alias". The scaffold names its
/// base image in full, so the build gets as far as pulling it: with no registry reachable here
/// that pull fails on the network, not on the name.
#[test]
fn scaffold_builds_on_stock_debian_its_first_from_is_pulled_by_full_name() {
    let Some(host) = host() else { return };
    let _socket = common::shared_socket();
    let project = host.user_dir("first-hour-init");
    podlab(host, &project, &["init"]).expect_code(0);
    let containerfile = fs::read_to_string(project.join("Containerfile")).expect("Containerfile");
    let base = containerfile
        .lines()
        .find_map(|line| line.strip_prefix("ARG BASE_IMAGE="))
        .expect("an ARG BASE_IMAGE line");
    assert!(
        base.starts_with("docker.io/nvidia/cuda:"),
        "fully qualified: {base}"
    );
    let toml = fs::read_to_string(project.join("podlab.toml")).expect("podlab.toml");
    for line in toml.lines().filter(|line| line.contains("image =")) {
        assert!(line.contains("nvcr.io/"), "fully qualified: {line}");
    }

    let build = podlab(host, &project, &["build"]);
    assert!(
        !build.stderr.contains("short-name"),
        "a name error:\n{}",
        build.stderr
    );
    assert!(
        build.stderr.contains("FROM"),
        "the build reached FROM:\n{}",
        build.stderr
    );
    assert!(
        build.stderr.contains("registry-1.docker.io")
            || build.stderr.contains("pinging container registry"),
        "the pull of the base image reached for Docker Hub:\n{}",
        build.stderr
    );
    build.expect_code(2);
    assert_hint(&build, "error: build failed: ", "network");
    assert!(build.stdout.is_empty(), "{}", build.stdout);

    // Issue 15: --pull-unit on a built image was ignored without a word.
    let units = host.user_dir("first-hour-units");
    let units_arg = units.display().to_string();
    let generate = podlab(
        host,
        &project,
        &["quadlet", "generate", "--pull-unit", "-o", &units_arg],
    );
    generate.expect_code(0);
    assert!(
        generate.stderr.contains("--pull-unit pulls a named image"),
        "{}",
        generate.stderr
    );
}

/// Issue 15: a short name of the user's own that no registry resolves gets the name to write.
#[test]
fn a_short_name_that_does_not_resolve_is_told_its_full_name() {
    let Some(host) = host() else { return };
    let _socket = common::shared_socket();
    let project = host.user_dir("first-hour-short");
    write_user_file(
        host,
        &project.join("Containerfile"),
        b"FROM nvidia/cuda:12.4.1-base-ubuntu22.04\n",
    );
    let build = podlab(host, &project, &["build", "--file", "Containerfile"]);
    build.expect_code(1);
    assert_hint(
        &build,
        "short-name",
        "docker.io/nvidia/cuda:12.4.1-base-ubuntu22.04",
    );
}

/// Issue 15: `podlab pull UPPER/Case` exited 2 with a network hint, and `run --image
/// UPPER/Case` said "pull it first": the name itself is bad, exit 1 with the naming rule.
#[test]
fn an_uppercase_image_name_is_a_bad_reference_not_a_network_error() {
    let Some(host) = host() else { return };
    let _socket = common::shared_socket();
    let project = host.user_dir("first-hour-upper");
    for args in [
        &["pull", "UPPER/Case"][..],
        &["run", "--image", "UPPER/Case", "--", "true"][..],
    ] {
        let run = podlab(host, &project, args);
        run.expect_code(1);
        assert!(
            run.stderr.contains("must be lowercase"),
            "{args:?}:\n{}",
            run.stderr
        );
        assert!(
            run.stderr.contains("[REGISTRY[:PORT]/]PATH[:TAG]"),
            "the naming rule, {args:?}:\n{}",
            run.stderr
        );
        assert!(
            !run.stderr.contains("pull it first") && !run.stderr.contains("network"),
            "{args:?}:\n{}",
            run.stderr
        );
    }
}

/// Issue 15: `-p 80:80` failed with "run with -v"; rootless Podman cannot bind below
/// `net.ipv4.ip_unprivileged_port_start`, and the hint says so.
#[test]
fn a_privileged_host_port_names_the_sysctl_and_a_higher_port() {
    let Some(host) = host() else { return };
    let _socket = common::shared_socket();
    let start: u16 = fs::read_to_string("/proc/sys/net/ipv4/ip_unprivileged_port_start")
        .expect("read the sysctl")
        .trim()
        .parse()
        .expect("a port number");
    if start <= 80 {
        eprintln!("port 80 is unprivileged on this host: nothing to check");
        return;
    }
    let project = host.user_dir("first-hour-port");
    let run = podlab(
        host,
        &project,
        &[
            "run",
            "--image",
            &host.image,
            "--gpus",
            "none",
            "-p",
            "80:80",
            "--",
            "true",
        ],
    );
    run.expect_code(2);
    // Podman reports it on attach (run attaches before it starts) or on start.
    assert_hint(&run, "port 80", "net.ipv4.ip_unprivileged_port_start");
    assert!(run.stderr.contains("above 1024"), "{}", run.stderr);
}

/// Issue 15: a podlab.toml in Latin-1 got "check that the file is readable".
#[test]
fn a_podlab_toml_that_is_not_utf8_is_called_so() {
    let Some(host) = host() else { return };
    let project = host.user_dir("first-hour-latin1");
    write_user_file(
        host,
        &project.join("podlab.toml"),
        b"# caf\xe9\ngpus = \"none\"\n",
    );
    let config = podlab(host, &project, &["config"]);
    config.expect_code(1);
    assert_hint(&config, "podlab.toml is not UTF-8 text", "UTF-8");
    assert!(!config.stderr.contains("readable"), "{}", config.stderr);
}

/// Issue 15: WARN lines carried ANSI colour escapes when stderr was redirected to a file.
/// Redirected, the log is plain text; on a terminal (a pty from `script`) it keeps colour.
#[test]
fn logs_have_no_colour_escapes_when_stderr_is_not_a_terminal() {
    let Some(host) = host() else { return };
    let _socket = common::shared_socket();
    let project = host.user_dir("first-hour-ansi");
    let redirected = podlab(host, &project, &["-vv", "version"]);
    redirected.expect_code(0);
    assert!(
        redirected.stderr.contains("DEBUG"),
        "log lines: {}",
        redirected.stderr
    );
    assert!(
        !redirected.stderr.contains('\x1b'),
        "escapes in redirected stderr: {:?}",
        redirected.stderr
    );
    let command = format!("{} -vv version", host.podlab.display());
    let terminal = host
        .command("script", &["-qefc", &command, "/dev/null"])
        .cwd(&project)
        .output();
    terminal.expect_code(0);
    assert!(
        terminal.stdout.contains("DEBUG") && terminal.stdout.contains("\x1b["),
        "colour on a terminal: {:?}",
        terminal.stdout
    );
}

/// Puts the user's socket and containers.conf back and stops podlab's private service, even
/// when an assertion fails, so other tests keep working.
struct Restore {
    host: &'static TestHost,
    conf: std::path::PathBuf,
    text: Vec<u8>,
}

impl Drop for Restore {
    fn drop(&mut self) {
        let _ = fs::write(&self.conf, &self.text);
        self.host.stop_private_service();
        self.host.start_user_socket();
    }
}

/// The pid `podlab version --json` reports for podlab's private service.
#[allow(clippy::indexing_slicing, reason = "a missing key reads as null")]
fn started_pid(run: &Run) -> Option<u64> {
    let report = run.json();
    assert_eq!(report["connection"]["origin"], "podlab-service");
    report["connection"]["started_pid"].as_u64()
}

/// Issue 15: after following doctor's hint (runtime = "runc" in
/// ~/.config/containers/containers.conf), the next podlab run still met the old setting: its
/// private service had started before the edit. A changed containers.conf restarts
/// podlab's own service, said on stderr; an unchanged one reuses it.
#[test]
fn a_changed_containers_conf_restarts_podlabs_own_service() {
    let Some(host) = host() else { return };
    let _socket = common::exclusive_socket();
    let conf = host.home.join(".config/containers/containers.conf");
    let text = fs::read(&conf).expect("the test user's containers.conf");
    host.stop_private_service();
    host.stop_user_socket();
    let _restore = Restore {
        host,
        conf: conf.clone(),
        text: text.clone(),
    };

    let first = host.podlab(&["version", "--json"]).output();
    let first_pid = started_pid(first.expect_code(0)).expect("podlab started its service");

    let mut edited = text.clone();
    edited.extend_from_slice(b"\n# podlab e2e: a setting changed after the service started\n");
    fs::write(&conf, &edited).expect("edit containers.conf");
    let second = host.podlab(&["version", "--json"]).output();
    let second_pid = started_pid(second.expect_code(0)).expect("a restarted service");
    assert_ne!(first_pid, second_pid);
    assert!(
        second.stderr.contains(&format!(
            "podlab's podman service started before {} changed: restarting it",
            conf.display()
        )),
        "{}",
        second.stderr
    );
    common::wait_for("the old service to exit", || {
        !Path::new(&format!("/proc/{first_pid}")).exists()
    });

    let third = host.podlab(&["version", "--json"]).output();
    assert_eq!(
        started_pid(third.expect_code(0)),
        Some(second_pid),
        "the restarted service is reused"
    );
    assert!(!third.stderr.contains("restarting"), "{}", third.stderr);
}

/// Issue 15: `cdi generate -o DIR/FILE` treated any directory as a CDI directory: another
/// spec for the same kind in a directory Podman never reads refused the write. Only the
/// target Podman's CDI directories have the one-spec-per-kind rule.
#[test]
fn cdi_generate_into_a_directory_podman_never_reads_ignores_other_specs_there() {
    let Some(host) = host() else { return };
    let dir = host.user_dir("first-hour-cdi-out");
    let root = host.nvidia_root.display().to_string();
    let generate = |file: &str| {
        let out = dir.join(file).display().to_string();
        host.podlab(&[
            "cdi",
            "generate",
            "--driver-root",
            &root,
            "--podman-version",
            "5.4.2",
            "-o",
            &out,
        ])
        .output()
    };
    generate("first.yaml").expect_code(0);
    let second = generate("second.yaml");
    second.expect_code(0);
    assert!(
        !second.stderr.contains("already defines"),
        "{}",
        second.stderr
    );
    for file in ["first.yaml", "second.yaml"] {
        let text = fs::read_to_string(dir.join(file)).expect("spec written");
        assert!(text.contains("kind: nvidia.com/gpu"), "{file}: {text}");
    }
}

/// Issue 15: `kube generate --target kubernetes` needed a running Podman only to look at the
/// image's user. With no socket it starts no service, writes the YAML, and says on stderr
/// what it assumed.
#[test]
fn kube_for_a_cluster_needs_no_podman_and_says_what_it_assumed() {
    let Some(host) = host() else { return };
    let _socket = common::exclusive_socket();
    let conf = host.home.join(".config/containers/containers.conf");
    let text = fs::read(&conf).expect("the test user's containers.conf");
    host.stop_private_service();
    host.stop_user_socket();
    let _restore = Restore { host, conf, text };
    let project = host.user_dir("first-hour-kube");
    let args = [
        "kube",
        "generate",
        "--target",
        "kubernetes",
        "--image",
        "docker.io/library/busybox:1",
        "--gpus",
        "none",
        "--",
        "true",
    ];
    let run = podlab(host, &project, &args);
    run.expect_code(0);
    assert!(
        run.stdout.contains("kind: Pod")
            && run.stdout.contains("image: docker.io/library/busybox:1"),
        "{}",
        run.stdout
    );
    assert!(!run.stdout.contains("runAsUser"), "{}", run.stdout);
    assert!(
        run.stderr
            .contains("no podman socket answers, and --target kubernetes starts none")
            && run.stderr.contains("the pod runs as the image's own user"),
        "{}",
        run.stderr
    );
    let private = host.runtime_dir.join("podlab/podman.sock");
    assert!(!common::ping(&private), "a service was started");

    // --user-map names the user: the YAML carries it and stderr says where it came from.
    let mapped: Vec<&str> = args
        .iter()
        .copied()
        .take(8)
        .chain(["--user-map", "1000:1000", "--", "true"])
        .collect();
    let run = podlab(host, &project, &mapped);
    run.expect_code(0);
    assert!(run.stdout.contains("runAsUser: 1000"), "{}", run.stdout);
    assert!(run.stderr.contains("from --user-map"), "{}", run.stderr);
}

/// Issue 15: shell completions and a manual page, generated from the clap definitions. The
/// bash script parses (`bash -n`) and completes flags of deferred subcommands; the pages
/// pass groff with every warning on.
#[test]
fn completions_and_manual_pages_come_from_the_command_line_definitions() {
    let Some(host) = host() else { return };
    let project = host.user_dir("first-hour-docs");
    let bash = podlab(host, &project, &["completions", "bash"]);
    bash.expect_code(0);
    for needle in [
        "_podlab()",
        "complete -F _podlab",
        "--driver-root",
        "notebook",
    ] {
        assert!(bash.stdout.contains(needle), "{needle} missing");
    }
    let script = project.join("podlab.bash");
    write_user_file(host, &script, bash.stdout.as_bytes());
    let script_arg = script.display().to_string();
    host.command("bash", &["-n", &script_arg])
        .output()
        .expect_code(0);
    for shell in ["zsh", "fish"] {
        let run = podlab(host, &project, &["completions", shell]);
        assert!(
            run.expect_code(0).stdout.contains("podlab"),
            "{shell}: {}",
            run.stdout
        );
    }
    podlab(host, &project, &["completions", "tcsh"]).expect_code(1);

    for (args, title) in [
        (&["man"][..], ".TH podlab 1"),
        (&["man", "cdi", "generate"][..], ".TH podlab-cdi-generate 1"),
    ] {
        let page = podlab(host, &project, args);
        page.expect_code(0);
        assert!(page.stdout.contains(title), "{args:?}: {}", page.stdout);
        let file = project.join("page.1");
        write_user_file(host, &file, page.stdout.as_bytes());
        let file_arg = file.display().to_string();
        let groff = host
            .command("groff", &["-man", "-ww", "-z", &file_arg])
            .output();
        groff.expect_code(0);
        assert!(groff.stderr.is_empty(), "{args:?}: {}", groff.stderr);
    }
    let unknown = podlab(host, &project, &["man", "nope"]);
    unknown.expect_code(1);
    assert_hint(&unknown, "podlab has no subcommand nope", "podlab --help");
}

/// Issue 15: progress that looks like progress. On a terminal (a pty from `script`) a build
/// shows a live status line (spinner, elapsed time, the current step) under its output and a
/// closing line; redirected, only the output lines, with no escape sequences.
#[test]
fn build_progress_is_a_status_line_on_a_terminal_and_plain_lines_otherwise() {
    let Some(host) = host() else { return };
    let _socket = common::shared_socket();
    let project = host.user_dir("first-hour-progress");
    let tag = format!(
        "localhost/podlab-e2e-progress-{}:latest",
        std::process::id()
    );
    write_user_file(
        host,
        &project.join("Containerfile"),
        format!("FROM {}\nRUN sleep 1\n", host.image).as_bytes(),
    );
    let _cleanup = common::ContainerGuard {
        host,
        names: Vec::new(),
    };
    let redirected = podlab(
        host,
        &project,
        &["build", "--file", "Containerfile", "--tag", &tag],
    );
    redirected.expect_code(0);
    assert!(
        redirected.stderr.contains("STEP 2/2: RUN sleep 1"),
        "{}",
        redirected.stderr
    );
    assert!(
        !redirected.stderr.contains('\x1b') && !redirected.stderr.contains("✔ built"),
        "{:?}",
        redirected.stderr
    );

    let command = format!(
        "stty cols 100 rows 30; {} build --no-cache --file Containerfile --tag {tag}",
        host.podlab.display()
    );
    let terminal = host
        .command("script", &["-qefc", &command, "/dev/null"])
        .cwd(&project)
        .env("TERM", "xterm")
        .output();
    let _ = host.command("podman", &["rmi", "-f", &tag]).output();
    terminal.expect_code(0);
    assert!(
        terminal.stdout.contains(&format!("building {tag}"))
            && terminal.stdout.contains("STEP 2/2: RUN sleep 1")
            && terminal.stdout.contains(&format!("✔ built {tag} in "))
            && terminal.stdout.contains("\x1b["),
        "{:?}",
        terminal.stdout
    );
}
