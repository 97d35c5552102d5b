//! End-to-end: `podlab build`, `pull`, `ps`, `logs`, `exec`, `stop` and `rm` as the
//! unprivileged test user against its own socket, with local images only.

#![allow(
    clippy::expect_used,
    reason = "test helpers: a failed setup step must fail the test at once"
)]

mod common;

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use common::{Run, TestHost, host, wait_for};

/// `podlab ARGS` as the user, in `project`.
fn podlab(host: &TestHost, project: &Path, args: &[&str]) -> Run {
    host.podlab(args).cwd(project).output()
}

/// The project name podlab derives from a `user_dir` (lowercase, `[a-z0-9-]`).
fn project_name(dir: &Path) -> String {
    dir.file_name()
        .map(|name| name.to_string_lossy().to_lowercase())
        .unwrap_or_default()
}

/// Writes a file in the user's project directory, owned by the user.
fn write_user_file(host: &TestHost, path: &Path, text: &str) {
    fs::write(path, text).expect("write file");
    rustix::fs::chown(
        path,
        Some(rustix::fs::Uid::from_raw(host.uid)),
        Some(rustix::fs::Gid::from_raw(host.gid)),
    )
    .expect("chown file");
}

/// Removes the project's containers and the listed images, even when the test fails.
struct Cleanup<'a> {
    host: &'a TestHost,
    project: String,
    containers: Vec<String>,
    images: Vec<String>,
}

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        let filter = format!("label=io.podlab.project={}", self.project);
        let _ = self
            .host
            .command("podman", &["rm", "-f", "-t", "0", "--filter", &filter])
            .status_only();
        for name in &self.containers {
            let _ = self
                .host
                .command("podman", &["rm", "-f", "-t", "0", name])
                .status_only();
        }
        for image in &self.images {
            let _ = self
                .host
                .command("podman", &["rmi", "-f", image])
                .status_only();
        }
    }
}

#[track_caller]
fn assert_hint(run: &Run, message: &str, hint: &str) {
    assert!(
        run.stderr.contains(message)
            && run.stderr.contains("\nhint: ")
            && run.stderr.contains(hint),
        "want {message:?} and a hint with {hint:?}:\n{}",
        run.stderr
    );
}

#[test]
fn build_with_a_build_arg_then_run_the_tag() {
    let Some(host) = host() else { return };
    let project = host.user_dir("build");
    let name = project_name(&project);
    let tag = podlab::session::default_tag(&name, &project);
    let bad_tag = format!("localhost/{name}-bad:latest");
    let mut cleanup = Cleanup {
        host,
        project: name.clone(),
        containers: Vec::new(),
        images: vec![tag.clone(), bad_tag.clone()],
    };
    write_user_file(
        host,
        &project.join("Containerfile"),
        &format!(
            "FROM {}\nARG GREETING=unset\nRUN echo \"$GREETING\" > /built\n",
            host.image
        ),
    );
    write_user_file(
        host,
        &project.join("podlab.toml"),
        "gpus = \"none\"\n\n[build]\ncontainerfile = \"Containerfile\"\n\n[build.args]\nGREETING = \"from-podlab-toml\"\n",
    );

    // [build.args] from podlab.toml.
    let build = podlab(host, &project, &["build"]);
    build.expect_code(0);
    assert!(
        build.stderr.contains("STEP 1/3: FROM") && build.stderr.contains(&tag),
        "build output belongs on stderr:\n{}",
        build.stderr
    );
    let id = build.stdout.trim();
    assert_eq!(id.len(), 64, "image id on stdout: {:?}", build.stdout);
    // Issue 15: the id was printed twice, as the result and in the build log.
    assert!(
        !build.stderr.lines().any(|line| line.trim() == id),
        "the id belongs on stdout only:\n{}",
        build.stderr
    );
    // The next build takes the tag: remove this image by its id.
    cleanup.images.push(id.to_owned());
    let run = podlab(host, &project, &["run", "--", "cat", "/built"]);
    assert_eq!(run.expect_code(0).stdout, "from-podlab-toml\n");

    // --build-arg overrides the file.
    let build = podlab(
        host,
        &project,
        &["build", "--build-arg", "GREETING=built-by-podlab"],
    );
    build.expect_code(0);
    let run = podlab(host, &project, &["run", "--", "cat", "/built"]);
    assert_eq!(run.expect_code(0).stdout, "built-by-podlab\n");

    // A failing step: exit 1 with Podman's last error line.
    write_user_file(
        host,
        &project.join("Failing.containerfile"),
        &format!("FROM {}\nRUN echo about-to-fail; exit 3\n", host.image),
    );
    let failed = podlab(
        host,
        &project,
        &[
            "build",
            "--file",
            "Failing.containerfile",
            "--tag",
            &bad_tag,
        ],
    );
    failed.expect_code(1);
    assert!(failed.stderr.contains("about-to-fail"), "{}", failed.stderr);
    assert_hint(&failed, "error: build failed: ", "Containerfile");
    assert!(failed.stderr.contains("exit status 3"), "{}", failed.stderr);
    assert!(failed.stdout.is_empty(), "{}", failed.stdout);
}

#[test]
fn build_sends_only_what_the_containerignore_leaves() {
    use std::os::unix::fs::PermissionsExt as _;
    let Some(host) = host() else { return };
    let project = host.user_dir("build-ignore");
    let name = project_name(&project);
    let tag = podlab::session::default_tag(&name, &project);
    let _cleanup = Cleanup {
        host,
        project: name.clone(),
        containers: Vec::new(),
        images: vec![tag.clone()],
    };
    let data = project.join("data");
    fs::create_dir(&data).expect("create data dir");
    rustix::fs::chown(
        &data,
        Some(rustix::fs::Uid::from_raw(host.uid)),
        Some(rustix::fs::Gid::from_raw(host.gid)),
    )
    .expect("chown data dir");
    write_user_file(host, &data.join("big"), "a data set\n");
    write_user_file(host, &data.join("labels.csv"), "a,b\n");
    // Unreadable to the user: packing it would fail, so the build proves it was never opened.
    write_user_file(host, &data.join("locked"), "checkpoint\n");
    fs::set_permissions(data.join("locked"), fs::Permissions::from_mode(0o000))
        .expect("chmod locked");
    write_user_file(host, &project.join("keep.txt"), "kept\n");
    write_user_file(
        host,
        &project.join(".containerignore"),
        "# data sets stay home\ndata\n!data/labels.csv\nContainerfile\n",
    );
    write_user_file(
        host,
        &project.join("Containerfile"),
        &format!(
            "FROM {}\nCOPY . /ctx\nRUN test ! -e /ctx/data/big && test ! -e /ctx/data/locked \\\n && test -e /ctx/data/labels.csv && test -e /ctx/keep.txt\n",
            host.image
        ),
    );

    let build = podlab(host, &project, &["-v", "build", "--file", "Containerfile"]);
    build.expect_code(0);
    assert!(
        build
            .stderr
            .contains("paths left out by .containerignore: 2"),
        "data/big and data/locked:\n{}",
        build.stderr
    );
    assert_eq!(build.stdout.trim().len(), 64, "{}", build.stdout);

    // A file the build needs but the user cannot read: exit 1, naming it.
    write_user_file(host, &project.join(".containerignore"), "data/big\n");
    let failed = podlab(host, &project, &["build", "--file", "Containerfile"]);
    failed.expect_code(1);
    assert!(failed.stderr.contains("data/locked"), "{}", failed.stderr);
    assert_hint(&failed, "error: cannot read ", ".containerignore");
}

#[test]
fn pull_errors_in_the_stream_fail_and_a_local_image_needs_no_network() {
    let Some(host) = host() else { return };
    let project = host.user_dir("pull");
    let started = Instant::now();
    let pull = podlab(host, &project, &["pull", "localhost:1/nope:latest"]);
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "an unreachable registry must fail fast"
    );
    pull.expect_code(2);
    assert!(
        pull.stderr
            .contains("Trying to pull localhost:1/nope:latest"),
        "progress lines on stderr without a TTY:\n{}",
        pull.stderr
    );
    assert_hint(
        &pull,
        "error: cannot pull localhost:1/nope:latest: ",
        "registry",
    );
    assert!(pull.stdout.is_empty(), "{}", pull.stdout);

    // A name that cannot exist is the user's mistake: exit 1.
    let bad = podlab(host, &project, &["pull", "no-such-short-name:latest"]);
    bad.expect_code(1);
    assert_hint(
        &bad,
        "error: cannot pull no-such-short-name:latest",
        "write it fully qualified, docker.io/library/no-such-short-name:latest",
    );

    // The test image is only local: with the default policy Podman asks its registry,
    // which does not exist here; `--policy missing` finds it in the store.
    let local = podlab(
        host,
        &project,
        &["pull", "--policy", "missing", &host.image],
    );
    local.expect_code(0);
    let inspect = host
        .command(
            "podman",
            &["image", "inspect", "--format", "{{.Id}}", &host.image],
        )
        .output();
    assert_eq!(local.stdout.trim(), inspect.expect_code(0).stdout.trim());
    let always = podlab(host, &project, &["pull", &host.image]);
    if always.code != 0 {
        assert_hint(&always, "error: cannot pull", "--policy missing");
    }
}

/// The names of the project's sessions, as `podlab ps --json --project` lists them.
fn ps_names(host: &TestHost, project: &Path) -> Vec<String> {
    let name = project_name(project);
    let run = podlab(host, project, &["ps", "--json", "--project", &name]);
    let rows = run.expect_code(0).json();
    rows.as_array()
        .expect("ps --json is an array")
        .iter()
        .map(|row| {
            row.get("name")
                .and_then(|name| name.as_str())
                .unwrap_or_default()
                .to_owned()
        })
        .collect()
}

#[test]
fn two_detached_jobs_then_ps_logs_exec_stop_and_rm() {
    let Some(host) = host() else { return };
    let project = host.user_dir("jobs");
    let name = project_name(&project);
    let _cleanup = Cleanup {
        host,
        project: name.clone(),
        containers: Vec::new(),
        images: Vec::new(),
    };
    let job = [
        "run",
        "-d",
        "--gpus",
        "none",
        "--image",
        &host.image,
        "--",
        "sh",
        "-c",
        "echo start; echo to-stderr >&2; sleep 30",
    ];
    // Two at once: generated names must not clash.
    let (first, second) = std::thread::scope(|scope| {
        let a = scope.spawn(|| podlab(host, &project, &job));
        let b = scope.spawn(|| podlab(host, &project, &job));
        (a.join().expect("first job"), b.join().expect("second job"))
    });
    let first = first.expect_code(0).stdout.trim().to_owned();
    let second = second.expect_code(0).stdout.trim().to_owned();
    assert_ne!(first, second);

    let ps = podlab(host, &project, &["ps", "--json", "--project", &name]);
    let rows = ps.expect_code(0).json();
    let rows = rows.as_array().expect("array");
    assert_eq!(rows.len(), 2, "{rows:#?}");
    for row in rows {
        // Issue 15: the shape README.md documents.
        assert_eq!(common::json_keys(row), common::readme_json_keys("ps"));
        assert_eq!(row["project"], name.as_str());
        assert_eq!(row["kind"], "run");
        assert_eq!(row["gpus"], "none");
        assert_eq!(row["status"], "running");
        assert!(row["age_seconds"].as_i64().is_some_and(|age| age < 60));
    }
    let table = podlab(host, &project, &["ps"]);
    let table = table.expect_code(0).stdout.clone();
    let mut lines = table.lines();
    assert_eq!(
        lines
            .next()
            .map(|header| header.split_whitespace().collect::<Vec<_>>()),
        Some(vec![
            "NAME", "PROJECT", "KIND", "GPUS", "PORTS", "STATUS", "AGE"
        ])
    );
    for job in [&first, &second] {
        let line = table
            .lines()
            .find(|line| line.starts_with(job.as_str()))
            .unwrap_or_else(|| panic!("{job} missing from ps:\n{table}"));
        let cells: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(cells[1..6], [name.as_str(), "run", "none", "-", "running"]);
        assert!(cells[6].ends_with('s') || cells[6].ends_with('m'), "{line}");
    }

    // The job prints at once, but may not have started printing yet.
    let mut logs = podlab(host, &project, &["logs", &first]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !logs.stdout.contains("start") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
        logs = podlab(host, &project, &["logs", &first]);
    }
    logs.expect_code(0);
    assert_eq!(logs.stdout, "start\n");
    assert_eq!(logs.stderr, "to-stderr\n");

    let exec = podlab(
        host,
        &project,
        &["exec", &first, "--", "sh", "-c", "exit 4"],
    );
    exec.expect_code(4);
    let exec = podlab(
        host,
        &project,
        &["exec", &first, "--", "sh", "-c", "echo out; echo err >&2"],
    );
    exec.expect_code(0);
    assert_eq!(
        (exec.stdout.as_str(), exec.stderr.as_str()),
        ("out\n", "err\n")
    );

    stop_then_rm(host, &project, &first, &second);
}

/// The end of a job's life: `rm` refuses it while it runs, `stop` keeps it for its logs, `rm`
/// removes it; `rm -f` removes a running one.
fn stop_then_rm(host: &TestHost, project: &Path, first: &str, second: &str) {
    let name = project_name(project);
    let refused = podlab(host, project, &["rm", first]);
    refused.expect_code(1);
    assert_hint(
        &refused,
        &format!("error: {first} is running"),
        "podlab stop",
    );

    let stop = podlab(host, project, &["stop", "-t", "1", first]);
    assert_eq!(stop.expect_code(0).stdout.trim(), first);
    let ps = podlab(host, project, &["ps", "--json", "--project", &name]);
    let rows = ps.expect_code(0).json();
    let stopped = rows
        .as_array()
        .and_then(|rows| {
            rows.iter()
                .find(|row| row.get("name").and_then(|name| name.as_str()) == Some(first))
        })
        .cloned()
        .expect("the stopped job is still listed");
    assert_eq!(
        stopped.get("state").and_then(|state| state.as_str()),
        Some("exited"),
        "{stopped}"
    );
    // Its logs outlive it, and -f returns once it has exited.
    let follow = podlab(host, project, &["logs", "-f", first]);
    assert_eq!(follow.expect_code(0).stdout, "start\n");
    let exec = podlab(host, project, &["exec", first, "--", "true"]);
    exec.expect_code(1);
    assert_hint(&exec, "is not running", "podlab ps");

    let rm = podlab(host, project, &["rm", first]);
    assert_eq!(rm.expect_code(0).stdout.trim(), first);
    let rm = podlab(host, project, &["rm", "-f", second]);
    rm.expect_code(0);
    wait_for("the project's sessions to go", || {
        ps_names(host, project).is_empty()
    });
}

#[test]
fn logs_follow_streams_until_the_job_exits() {
    let Some(host) = host() else { return };
    let project = host.user_dir("follow");
    let name = project_name(&project);
    let _cleanup = Cleanup {
        host,
        project: name,
        containers: Vec::new(),
        images: Vec::new(),
    };
    let job = podlab(
        host,
        &project,
        &[
            "run",
            "-d",
            "--gpus",
            "none",
            "--image",
            &host.image,
            "--",
            "sh",
            "-c",
            "echo one; sleep 2; echo two",
        ],
    );
    let job = job.expect_code(0).stdout.trim().to_owned();
    let started = Instant::now();
    let follow = podlab(host, &project, &["logs", "--follow", &job]);
    assert_eq!(follow.expect_code(0).stdout, "one\ntwo\n");
    assert!(started.elapsed() < Duration::from_secs(20));
    podlab(host, &project, &["rm", &job]).expect_code(0);
}

#[test]
fn unknown_names_and_other_containers_are_refused_with_a_hint() {
    let Some(host) = host() else { return };
    let project = host.user_dir("refuse");
    let foreign = format!("podlab-e2e-{}-foreign", std::process::id());
    let _cleanup = Cleanup {
        host,
        project: project_name(&project),
        containers: vec![foreign.clone()],
        images: Vec::new(),
    };
    let unknown = format!("podlab-e2e-{}-no-such-session", std::process::id());
    for command in [
        vec!["rm", unknown.as_str()],
        vec!["rm", "-f", unknown.as_str()],
        vec!["stop", unknown.as_str()],
        vec!["logs", unknown.as_str()],
        vec!["exec", unknown.as_str(), "--", "true"],
    ] {
        let run = podlab(host, &project, &command);
        run.expect_code(1);
        assert_hint(
            &run,
            &format!("error: no container named {unknown}"),
            "podlab ps",
        );
    }

    // A container the user made with podman itself: podlab leaves it alone.
    host.command(
        "podman",
        &["create", "--name", &foreign, &host.image, "true"],
    )
    .output()
    .expect_code(0);
    for command in [
        vec!["rm", foreign.as_str()],
        vec!["rm", "-f", foreign.as_str()],
        vec!["stop", foreign.as_str()],
        vec!["logs", foreign.as_str()],
        vec!["exec", foreign.as_str(), "--", "true"],
    ] {
        let run = podlab(host, &project, &command);
        run.expect_code(1);
        assert_hint(
            &run,
            &format!("error: {foreign} is not a podlab session"),
            "podlab ps",
        );
    }
    let exists = host
        .command("podman", &["container", "exists", &foreign])
        .status_only();
    assert_eq!(exists, 0, "podlab removed a container that is not its own");
    let ps = podlab(host, &project, &["ps", "--json"]);
    let rows = ps.expect_code(0).json();
    assert!(
        !rows
            .as_array()
            .expect("array")
            .iter()
            .any(|row| row["name"] == foreign.as_str()),
        "ps lists a container podlab did not start"
    );
}

#[test]
fn l2_sigterm_to_exec_exits_143_and_says_the_command_may_still_run() {
    let Some(host) = host() else { return };
    let project = host.user_dir("exec-term");
    let name = format!("podlab-e2e-exec-term{}", std::process::id());
    let _cleanup = Cleanup {
        host,
        project: project_name(&project),
        containers: vec![name.clone()],
        images: Vec::new(),
    };
    let serve = "trap 'exit 0' TERM; sleep 600 & wait";
    let job = [
        "run",
        "-d",
        "--gpus",
        "none",
        "--image",
        &host.image,
        "--name",
        &name,
        "--",
        "sh",
        "-c",
        serve,
    ];
    podlab(host, &project, &job).expect_code(0);
    let child = host
        .podlab(&["exec", &name, "--", "sleep", "4321"])
        .cwd(&project)
        .spawn();
    let pattern = format!("{} exec {name} -- sleep 4321", host.podlab.display());
    let mut pid = String::new();
    wait_for("podlab exec and its command to run", || {
        pid = std::process::Command::new("pgrep")
            .args(["-u", &host.user, "-f", &pattern])
            .output()
            .map(|found| String::from_utf8_lossy(&found.stdout).trim().to_owned())
            .unwrap_or_default();
        let command = std::process::Command::new("pgrep")
            .args(["-u", &host.user, "-x", "-f", "sleep 4321"])
            .output()
            .is_ok_and(|found| found.status.success());
        !pid.is_empty() && command
    });
    std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    let output = child.wait_with_output().expect("wait");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(143), "{stderr}");
    assert!(
        stderr.contains(&format!("SIGTERM: the command may still run in {name}")),
        "{stderr}"
    );
    assert!(stderr.contains(&format!("podlab stop {name}")), "{stderr}");
    podlab(host, &project, &["rm", "-f", &name]).expect_code(0);
    let _ = fs::remove_dir_all(project);
}
