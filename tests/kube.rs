//! End-to-end: `podlab kube generate | play | down` as the unprivileged test user against its
//! own socket, checked from inside the pods that `kube play` starts; and every
//! Kubernetes-flavor YAML (the references in `quadlets/` and freshly generated ones) checked
//! with `kubernetes-validate --strict`, the offline schemas that the provisioning script
//! installs.

#![allow(
    clippy::expect_used,
    reason = "test helpers: a failed setup step must fail the test at once"
)]

mod common;

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, MutexGuard, PoisonError};

use common::{ContainerGuard, Run, TestHost, free_port, host, inside_report};

const SYSTEM_SPEC: &str = "/etc/cdi/podlab-nvidia.yaml";
const HOST_ENV: &str = "/etc/podlab-test-host.env";
/// The oldest Kubernetes API the emitter targets (k8s-openapi's `v1_33`).
const KUBERNETES_VERSION: &str = "1.33";
/// A command that lives until the pod is taken down, and exits at once on SIGTERM (a shell
/// as PID 1 ignores it otherwise, and `kube down` would wait ten seconds).
const SERVE: &str = "trap 'exit 0' TERM; sleep 600 & wait";

/// The GPU tests install or remove the system CDI spec: they take turns.
static SYSTEM_SPEC_LOCK: Mutex<()> = Mutex::new(());

fn spec_lock() -> MutexGuard<'static, ()> {
    SYSTEM_SPEC_LOCK
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
}

/// `kubernetes-validate`: `$PODLAB_TEST_KUBERNETES_VALIDATE`, the provisioned host's, or one
/// on PATH. `None` (after printing why) when there is none and `PODLAB_E2E` is not 1.
fn kubernetes_validate() -> Option<PathBuf> {
    const VAR: &str = "PODLAB_TEST_KUBERNETES_VALIDATE";
    let from_host_env = || {
        fs::read_to_string(HOST_ENV).ok().and_then(|text| {
            text.lines()
                .find_map(|line| line.strip_prefix(&format!("{VAR}=")).map(PathBuf::from))
        })
    };
    let from_path = || {
        std::env::var_os("PATH").and_then(|path| {
            std::env::split_paths(&path)
                .map(|dir| dir.join("kubernetes-validate"))
                .find(|candidate| candidate.is_file())
        })
    };
    let found = std::env::var_os(VAR)
        .map(PathBuf::from)
        .or_else(from_host_env)
        .filter(|path| path.is_file())
        .or_else(from_path);
    if found.is_none() {
        let reason = format!(
            "kubernetes-validate is not installed (run sudo tests/host/provision.sh, or set {VAR})"
        );
        assert!(
            std::env::var("PODLAB_E2E").as_deref() != Ok("1"),
            "PODLAB_E2E=1 but {reason}"
        );
        eprintln!("skipping schema validation: {reason}");
    }
    found
}

/// Runs `kubernetes-validate --strict` on `file`; panics with its output unless it passes.
#[track_caller]
fn assert_schema_valid(tool: &Path, file: &Path) {
    let output = Command::new(tool)
        .args(["-k", KUBERNETES_VERSION, "--strict"])
        .arg(file)
        .output()
        .expect("run kubernetes-validate");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success() && !text.contains("ERROR"),
        "{} fails kubernetes-validate --strict:\n{text}",
        file.display()
    );
    assert!(text.contains("passed"), "{text}");
}

fn reference_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("quadlets")
}

#[test]
fn reference_kubernetes_yaml_passes_the_schemas() {
    let Some(tool) = kubernetes_validate() else {
        return;
    };
    let mut checked = 0;
    for entry in fs::read_dir(reference_dir()).expect("read quadlets/") {
        let path = entry.expect("entry").path();
        if path.to_string_lossy().ends_with(".kubernetes.yaml") {
            assert_schema_valid(&tool, &path);
            checked += 1;
        }
    }
    assert_eq!(checked, 3, "dev-session, train-job and notebook");
    // The schemas are strict: an unknown field fails (so a pass means something).
    let dir = tempfile::tempdir().expect("tempdir");
    let bad = dir.path().join("bad.yaml");
    fs::write(
        &bad,
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: x\nspec:\n  containers:\n  - name: x\n    image: y\n    bogus: 1\n",
    )
    .expect("write");
    let status = Command::new(&tool)
        .args(["-k", KUBERNETES_VERSION, "--strict"])
        .arg(&bad)
        .output()
        .expect("run kubernetes-validate");
    assert!(
        !status.status.success(),
        "--strict let an unknown field pass"
    );
}

/// `podlab ARGS` as the user, in `project`.
fn podlab(host: &TestHost, project: &Path, args: &[&str]) -> Run {
    host.podlab(args).cwd(project).output()
}

/// `podman ARGS` as the user.
fn podman(host: &TestHost, args: &[&str]) -> Run {
    host.command("podman", args).output()
}

fn pod_exists(host: &TestHost, pod: &str) -> bool {
    podman(host, &["pod", "exists", pod]).code == 0
}

/// Removes a pod left by a failed test, so the next run starts clean.
fn remove_pod(host: &TestHost, pod: &str) {
    let _ = podman(host, &["pod", "rm", "-f", "-t", "0", pod]);
}

/// A file the test user can read, written by root.
fn write_for_user(path: &Path, text: &str) {
    fs::write(path, text).expect("write");
    fs::set_permissions(path, fs::Permissions::from_mode(0o644)).expect("chmod");
}

#[test]
fn generated_kubernetes_yaml_passes_the_schemas_and_has_no_podman_keys() {
    let Some(host) = host() else { return };
    let Some(tool) = kubernetes_validate() else {
        return;
    };
    let project = host.user_dir("kube-validate");
    let data = project.join("data");
    fs::create_dir(&data).expect("mkdir data");
    let data_arg = format!("{}:/data:ro", data.display());
    let variants: [&[&str]; 4] = [
        &[
            "--kind",
            "pod",
            "--gpus",
            "0,1",
            "--runtime-class",
            "nvidia",
        ],
        &[
            "--kind",
            "job",
            "--volumes",
            "pvc",
            "--pvc-size",
            "20Gi",
            "--storage-class",
            "fast-ssd",
            "--gpu-count",
            "4",
        ],
        &[
            "--kind",
            "deployment",
            "-p",
            "8888",
            "-p",
            "6006",
            "--gpus",
            "none",
        ],
        &[
            "--kind",
            "deployment",
            "--name",
            "My_Notebook.v2",
            "--user-map",
            "1000:100",
        ],
    ];
    for (index, variant) in variants.iter().enumerate() {
        let file = project.join(format!("out-{index}.yaml"));
        let file_arg = file.display().to_string();
        let mut args = vec![
            "kube",
            "generate",
            "--target",
            "kubernetes",
            "--image",
            &host.image,
            "-e",
            "RUN_DATE=2024-01-01",
            "--volume",
            &data_arg,
            "-o",
            &file_arg,
        ];
        args.extend_from_slice(variant);
        args.extend(["--", "python", "train.py", "--resume", "on"]);
        podlab(host, &project, &args).expect_code(0);
        let text = fs::read_to_string(&file).expect("read the YAML");
        assert!(
            !text.contains("podman"),
            "podman key in {variant:?}:\n{text}"
        );
        assert!(!text.contains("gpu="), "CDI name in {variant:?}:\n{text}");
        assert!(text.contains("\"2024-01-01\""), "unquoted date:\n{text}");
        assert_schema_valid(&tool, &file);
    }
    let text = fs::read_to_string(project.join("out-0.yaml")).expect("read");
    assert!(text.contains("nvidia.com/gpu: \"2\""), "{text}");
    assert!(text.contains("runtimeClassName: nvidia"), "{text}");
    let text = fs::read_to_string(project.join("out-1.yaml")).expect("read");
    assert!(
        text.contains("kind: PersistentVolumeClaim") && text.contains("storage: 20Gi"),
        "{text}"
    );
    assert!(text.contains("nvidia.com/gpu: \"4\""), "{text}");
    let text = fs::read_to_string(project.join("out-2.yaml")).expect("read");
    assert!(
        text.contains("kind: Service") && text.contains("name: tcp-6006"),
        "{text}"
    );
    let text = fs::read_to_string(project.join("out-3.yaml")).expect("read");
    assert!(text.contains("name: my-notebook-v2-"), "{text}");
    assert!(
        text.contains("runAsUser: 1000") && text.contains("fsGroup: 100"),
        "{text}"
    );
    let _ = fs::remove_dir_all(project);
}

/// What a played session looks like from inside, checked with `podman exec`.
fn check_inside(host: &TestHost, container: &str, project: &Path, uid: u32) {
    let script = "ls /dev/nvidia0 /dev/nvidiactl && dlopen-test libcuda.so.1 libnvidia-ml.so.1 \
                  && grep ' /dev/shm ' /proc/mounts && id -u && echo \"when=$WHEN\" \
                  && touch /workspace/made-inside";
    let run = podman(host, &["exec", container, "sh", "-c", script]);
    let out = &run.expect_code(0).stdout;
    assert!(
        out.contains("/dev/nvidia0") && out.contains("/dev/nvidiactl"),
        "{out}"
    );
    assert!(
        out.contains("ok libcuda.so.1") && out.contains("ok libnvidia-ml.so.1"),
        "{out}"
    );
    assert!(
        out.contains("tmpfs /dev/shm tmpfs"),
        "/dev/shm is no tmpfs:\n{out}"
    );
    assert!(
        out.lines().any(|line| line == uid.to_string()),
        "not uid {uid}:\n{out}"
    );
    assert!(
        out.contains("when=2024-01-01"),
        "date-like env retyped:\n{out}"
    );
    let made = fs::metadata(project.join("made-inside")).expect("file made in /workspace");
    assert_eq!(
        (made.uid(), made.gid()),
        (host.uid, host.gid),
        "file not owned by the host user"
    );
}

/// Generates podman-flavor YAML for a GPU session, plays it, checks it from inside, takes
/// it down; returns the YAML text and podlab's stderr of the generation.
fn play_gpu_session(host: &TestHost, name: &str, user_map: &str, uid: u32) -> (String, String) {
    let project = host.user_dir(name);
    let file = project.join("pod.yaml");
    let file_arg = file.display().to_string();
    let root = host.nvidia_root.display().to_string();
    let args = [
        "-v",
        "kube",
        "generate",
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
        "--user-map",
        user_map,
        "-e",
        "WHEN=2024-01-01",
        "-o",
        &file_arg,
        "--",
        "sh",
        "-c",
        SERVE,
    ];
    let generated = podlab(host, &project, &args);
    generated.expect_code(0);
    let yaml = fs::read_to_string(&file).expect("read the YAML");
    remove_pod(host, name);
    let played = podlab(host, &project, &["kube", "play", &file_arg]);
    let guard = PodGuard { host, pod: name };
    played.expect_code(0);
    assert!(
        played
            .stdout
            .contains(&format!("started pod {name} (running): {name}-main")),
        "{}",
        played.stdout
    );
    check_inside(host, &format!("{name}-main"), &project, uid);
    // podlab sees it as one of its sessions.
    let ps = podlab(host, &project, &["ps"]);
    assert!(
        ps.expect_code(0).stdout.contains(&format!("{name}-main")),
        "{}",
        ps.stdout
    );

    let down = podlab(host, &project, &["kube", "down", &file_arg]);
    down.expect_code(0);
    assert!(
        down.stdout
            .contains(&format!("removed pod {name}: {name}-main")),
        "{}",
        down.stdout
    );
    assert!(!pod_exists(host, name), "the pod is still there");
    let left = podman(
        host,
        &[
            "ps",
            "-a",
            "--filter",
            &format!("pod={name}"),
            "--format",
            "{{.Names}}",
        ],
    );
    assert_eq!(left.expect_code(0).stdout.trim(), "", "containers left");
    drop(guard);
    let _ = fs::remove_dir_all(project);
    (yaml, generated.stderr)
}

/// Removes the pod when a test fails half-way.
struct PodGuard<'a> {
    host: &'a TestHost,
    pod: &'a str,
}

impl Drop for PodGuard<'_> {
    fn drop(&mut self) {
        if pod_exists(self.host, self.pod) {
            remove_pod(self.host, self.pod);
        }
    }
}

#[test]
fn podman_flavor_with_cdi_names_plays_with_gpus_and_comes_down() {
    let Some(host) = host() else { return };
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
    // The host user's own uid inside: the glibc image has no user, so plain keep-id.
    let (yaml, stderr) = play_gpu_session(host, "kube-cdi", "auto", host.uid);
    assert!(
        stderr.contains("GPUs: by CDI name, nvidia.com/gpu=all"),
        "{stderr}"
    );
    assert!(yaml.contains("nvidia.com/gpu=all: \"1\""), "{yaml}");
    assert!(
        yaml.contains("io.podman.annotations.userns: keep-id\n"),
        "{yaml}"
    );
    assert!(!yaml.contains("podman.io/device="), "{yaml}");
}

#[test]
fn podman_flavor_with_inline_gpus_plays_without_a_system_spec() {
    let Some(host) = host() else { return };
    let _spec = spec_lock();
    let _ = fs::remove_file(SYSTEM_SPEC);
    // Mapped onto uid 1000 in the container; files still land owned by the host user.
    let (yaml, stderr) = play_gpu_session(host, "kube-inline", "1000:1000", 1000);
    assert!(stderr.contains("GPUs: inline edits"), "{stderr}");
    assert!(
        yaml.contains("podman.io/device=/dev/nvidia0: \"1\""),
        "{yaml}"
    );
    assert!(
        yaml.contains("mountPath: /usr/lib/x86_64-linux-gnu/libcuda.so.1"),
        "{yaml}"
    );
    assert!(
        yaml.contains("io.podman.annotations.userns: keep-id:uid=1000,gid=1000"),
        "{yaml}"
    );
    assert!(!yaml.contains("nvidia.com/gpu="), "{yaml}");
}

#[test]
fn kube_down_leaves_pods_podlab_did_not_start_alone() {
    let Some(host) = host() else { return };
    let project = host.user_dir("kube-foreign");
    let name = "kube-foreign";
    let yaml = project.join("foreign.yaml");
    write_for_user(
        &yaml,
        &format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n  containers:\n  - name: main\n    image: {}\n    command: [\"sh\", \"-c\", \"{SERVE}\"]\n",
            host.image
        ),
    );
    remove_pod(host, name);
    let yaml_arg = yaml.display().to_string();
    podman(host, &["kube", "play", &yaml_arg]).expect_code(0);
    let _guard = PodGuard { host, pod: name };
    for target in [yaml_arg.as_str(), name] {
        let run = podlab(host, &project, &["kube", "down", target]);
        run.expect_code(1);
        assert!(
            run.stderr
                .contains(&format!("pod {name} was not started by podlab")),
            "{}",
            run.stderr
        );
        assert!(pod_exists(host, name), "podlab removed a foreign pod");
    }
    let run = podlab(host, &project, &["kube", "down", "no-such-pod-x"]);
    run.expect_code(1);
    assert!(
        run.stderr.contains("no file and no pod named"),
        "{}",
        run.stderr
    );
    let _ = fs::remove_dir_all(project);
}

#[test]
fn kube_play_shows_the_servers_message_and_leaves_nothing() {
    let Some(host) = host() else { return };
    let project = host.user_dir("kube-refused");
    let generate = |name: &str, image: &str, command: &str| {
        let file = project.join(format!("{name}.yaml"));
        let file_arg = file.display().to_string();
        let args = [
            "kube", "generate", "--gpus", "none", "--name", name, "--image", image, "-o",
            &file_arg, "--", "sh", "-c", command,
        ];
        podlab(host, &project, &args).expect_code(0);
        file_arg
    };
    // An image that is nowhere: Podman refuses, and leaves a pod behind, which podlab removes.
    let missing = generate("kube-no-image", "localhost/no-such-image:1", "true");
    let run = podlab(host, &project, &["kube", "play", &missing]);
    run.expect_code(1);
    assert!(
        run.stderr.contains("error: podman kube play failed: "),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("localhost/no-such-image"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("{\""), "raw JSON:\n{}", run.stderr);
    assert!(run.stderr.contains("hint: "), "{}", run.stderr);
    assert!(
        !pod_exists(host, "kube-no-image"),
        "a failed play left its pod"
    );

    // A command that does not exist: Podman answers 200 with a container error.
    let broken = generate("kube-bad-cmd", &host.image, "true");
    let text = fs::read_to_string(&broken)
        .expect("read")
        .replace("- sh\n", "- /no/such/program\n");
    write_for_user(Path::new(&broken), &text);
    let run = podlab(host, &project, &["kube", "play", &broken]);
    run.expect_code(1);
    assert!(
        run.stderr.contains("could not start the session")
            && run.stderr.contains("/no/such/program"),
        "{}",
        run.stderr
    );
    assert!(
        !pod_exists(host, "kube-bad-cmd"),
        "a failed play left its pod"
    );

    // Not YAML at all: Podman's parser speaks.
    let garbage = project.join("garbage.yaml");
    write_for_user(&garbage, "kind: Pod\nmetadata: [\n");
    let run = podlab(
        host,
        &project,
        &["kube", "play", &garbage.display().to_string()],
    );
    run.expect_code(1);
    assert!(
        run.stderr.contains("podman kube play failed: "),
        "{}",
        run.stderr
    );
    let _ = fs::remove_dir_all(project);
}

#[test]
fn bad_input_to_kube_generate_fails_clearly() {
    let Some(host) = host() else { return };
    let project = host.user_dir("kube-bad-input");
    let cases: [(&[&str], &str); 4] = [
        (
            &["--gpus", "none", "--name", "2024.01"],
            "cannot become a Kubernetes name",
        ),
        (
            &["--target", "kubernetes", "--gpus", "GPU-0123abcd"],
            "cannot become a GPU count",
        ),
        (
            &["--gpus", "none", "--volume", "/no/such/dir:/data"],
            "/no/such/dir does not exist",
        ),
        (
            &["--gpus", "none", "--volumes", "pvc"],
            "--volumes pvc is for --target kubernetes",
        ),
    ];
    for (flags, message) in cases {
        let mut args = vec!["kube", "generate", "--image", &host.image];
        args.extend_from_slice(flags);
        let run = podlab(host, &project, &args);
        run.expect_code(1);
        assert!(run.stderr.contains(message), "{flags:?}:\n{}", run.stderr);
        assert!(run.stderr.contains("hint: "), "{flags:?}:\n{}", run.stderr);
        assert!(run.stdout.is_empty(), "{flags:?} printed YAML");
    }
    let _ = fs::remove_dir_all(project);
}

#[test]
fn a_session_exported_from_inspect_data_plays_under_another_name_with_the_same_view() {
    let Some(host) = host() else { return };
    let _socket = common::shared_socket();
    let _spec = spec_lock();
    let id = std::process::id();
    let name = format!("kube-rt-{id}");
    let copy = format!("kube-rt-copy-{id}");
    let project = host.user_dir("kube-roundtrip");
    let _containers = ContainerGuard {
        host,
        names: vec![name.clone()],
    };
    let data = common::start_session(host, &project, &name, free_port());

    let file = project.join("copy.yaml");
    let file_arg = file.display().to_string();
    // The copy publishes its own port: the session holds its port still.
    let publish = format!("127.0.0.1:{}:8080", free_port());
    let root = host.nvidia_root.display().to_string();
    let args = [
        "kube",
        "generate",
        &name,
        "--name",
        &copy,
        "-p",
        &publish,
        "--driver-root",
        &root,
        "-o",
        &file_arg,
    ];
    podlab(host, &project, &args).expect_code(0);
    let yaml = fs::read_to_string(&file).expect("read the YAML");
    for default in ["name: HOSTNAME", "name: container\n", "name: PATH"] {
        assert!(
            !yaml.contains(default),
            "podman's {default} exported:\n{yaml}"
        );
    }
    remove_pod(host, &copy);
    let played = podlab(host, &project, &["kube", "play", &file_arg]);
    let _pod = PodGuard { host, pod: &copy };
    played.expect_code(0);

    let original = inside_report(host, &name);
    let replayed = inside_report(host, &format!("{copy}-main"));
    for line in [
        "/dev/nvidia0",
        "ok libcuda.so.1",
        "/dev/shm tmpfs rw",
        "WHEN=2024-01-01 ROUNDTRIP=yes",
        &format!("marker of {name}"),
        "shm 262144",
    ] {
        assert!(
            original.contains(line),
            "session lacks {line:?}:\n{original}"
        );
    }
    assert!(
        original
            .lines()
            .any(|line| line.starts_with("/data ") && line.ends_with(" ro")),
        "{original}"
    );
    // Podman 5.4.2's kube play drops an emptyDir's sizeLimit (fixed upstream in podman
    // #29565), so /dev/shm is compared by type and options only.
    let sizeless = |report: &str| {
        report
            .lines()
            .filter(|line| !line.starts_with("shm "))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(sizeless(&replayed), sizeless(&original));

    podlab(host, &project, &["kube", "down", &file_arg]).expect_code(0);
    assert!(!pod_exists(host, &copy), "the copy's pod is still there");
    let _ = fs::remove_dir_all(project);
    let _ = fs::remove_dir_all(data);
}

#[test]
fn kube_play_takes_a_session_name() {
    let Some(host) = host() else { return };
    let _socket = common::shared_socket();
    let name = format!("kube-ps-{}", std::process::id());
    let project = host.user_dir("kube-play-session");
    let _containers = ContainerGuard {
        host,
        names: vec![name.clone()],
    };
    let args = [
        "run",
        "--detach",
        "--name",
        &name,
        "--image",
        &host.image,
        "--gpus",
        "none",
        "-e",
        "ROUNDTRIP=yes",
        "--",
        "sh",
        "-c",
        SERVE,
    ];
    podlab(host, &project, &args).expect_code(0);
    remove_pod(host, &name);
    let played = podlab(host, &project, &["kube", "play", &name]);
    let _pod = PodGuard { host, pod: &name };
    played.expect_code(0);
    assert!(
        played
            .stdout
            .contains(&format!("started pod {name} (running): {name}-main")),
        "{}",
        played.stdout
    );
    let env = podman(
        host,
        &[
            "exec",
            &format!("{name}-main"),
            "sh",
            "-c",
            "echo $ROUNDTRIP",
        ],
    );
    assert_eq!(env.expect_code(0).stdout.trim(), "yes");
    podlab(host, &project, &["kube", "down", &name]).expect_code(0);
    assert!(!pod_exists(host, &name), "the pod is still there");
    let _ = fs::remove_dir_all(project);
}

#[test]
fn bad_session_names_fail_clearly() {
    let Some(host) = host() else { return };
    let _socket = common::shared_socket();
    let project = host.user_dir("kube-bad-session");
    let missing = format!("no-such-session-{}", std::process::id());
    let digits = format!("9-{}", std::process::id());
    let _containers = ContainerGuard {
        host,
        names: vec![digits.clone()],
    };
    podman(host, &["create", "--name", &digits, &host.image, "true"]).expect_code(0);
    let cases: [(&[&str], String); 4] = [
        (
            &["kube", "generate", &missing],
            format!("error: no session or container named {missing}"),
        ),
        (
            &["kube", "play", &missing],
            format!("error: no file and no session named {missing}"),
        ),
        (
            &["kube", "generate", &digits],
            format!("{digits:?} cannot become a Kubernetes name"),
        ),
        (
            &["kube", "generate", &digits, "--preset", "nb"],
            "cannot be used with".to_owned(),
        ),
    ];
    for (args, message) in cases {
        let run = podlab(host, &project, args);
        run.expect_code(1);
        assert!(run.stderr.contains(&message), "{args:?}:\n{}", run.stderr);
        assert!(run.stdout.is_empty(), "{args:?} printed YAML");
    }
    let run = podlab(host, &project, &["kube", "generate", &missing]);
    assert!(run.stderr.contains("hint: podlab ps"), "{}", run.stderr);
    let _ = fs::remove_dir_all(project);
}

// --- Multi-node training (issue 16) ---------------------------------------------------------

/// JobSet's published CRD, kept as test data (see its SOURCE).
fn jobset_crd() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/jobset/jobset.x-k8s.io_jobsets.yaml")
}

/// `validate-crd.py CRD FILE` with the python of kubernetes-validate's venv (its `jsonschema`
/// and PyYAML); the run.
fn validate_crd(tool: &Path, file: &Path) -> std::process::Output {
    let python = tool.with_file_name("python");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/host/validate-crd.py");
    Command::new(python)
        .arg(script)
        .arg(jobset_crd())
        .arg(file)
        .output()
        .expect("run validate-crd.py")
}

/// The arguments of a 2-node, 4-GPU-per-node training on a cluster, of `kind`.
fn multi_node_args<'a>(host: &'a TestHost, kind: &'a str, file: &'a str) -> Vec<&'a str> {
    vec![
        "kube",
        "generate",
        "--target",
        "kubernetes",
        "--kind",
        kind,
        "--nodes",
        "2",
        "--gpus-per-node",
        "4",
        "--volumes",
        "pvc",
        "--queue",
        "team-a",
        "--runtime-class",
        "nvidia",
        "--name",
        "train",
        "--image",
        &host.image,
        "-e",
        "NCCL_DEBUG=INFO",
        "-o",
        file,
        "--",
        "torchrun",
        "train.py",
    ]
}

#[test]
fn multi_node_job_passes_the_kubernetes_schemas() {
    let Some(host) = host() else { return };
    let Some(tool) = kubernetes_validate() else {
        return;
    };
    let project = host.user_dir("kube-indexed-job");
    let file = project.join("train.yaml");
    let file_arg = file.display().to_string();
    podlab(host, &project, &multi_node_args(host, "job", &file_arg)).expect_code(0);
    assert_schema_valid(&tool, &file);
    let text = fs::read_to_string(&file).expect("read");
    for expected in [
        "kind: Job",
        "completionMode: Indexed",
        "completions: 2",
        "parallelism: 2",
        "backoffLimit: 0",
        "subdomain: train",
        "kind: Service",
        "clusterIP: None",
        "value: train-0.train",
        "fieldPath: metadata.annotations['batch.kubernetes.io/job-completion-index']",
        "kueue.x-k8s.io/queue-name: team-a",
        "nvidia.com/gpu: \"4\"",
        "key: nvidia.com/gpu",
        "medium: Memory",
        "runtimeClassName: nvidia",
        "name: NCCL_DEBUG",
        "- ReadWriteMany",
    ] {
        assert!(text.contains(expected), "no {expected:?} in:\n{text}");
    }
    let _ = fs::remove_dir_all(project);
}

#[test]
fn jobset_passes_jobsets_published_crd() {
    let Some(host) = host() else { return };
    let Some(tool) = kubernetes_validate() else {
        return;
    };
    let project = host.user_dir("kube-jobset");
    let file = project.join("train.yaml");
    let file_arg = file.display().to_string();
    podlab(host, &project, &multi_node_args(host, "jobset", &file_arg)).expect_code(0);
    let run = validate_crd(&tool, &file);
    let out = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(
        out.contains("PASS JobSet/train against jobset.x-k8s.io/v1alpha2"),
        "{out}"
    );
    let text = fs::read_to_string(&file).expect("read");
    assert!(text.contains("value: train-node-0-0.train"), "{text}");
    // The claims beside it are core kinds: kubernetes-validate checks them.
    let claims: Vec<&str> = text
        .split("---\n")
        .filter(|doc| doc.contains("kind: PersistentVolumeClaim"))
        .collect();
    assert_eq!(claims.len(), 1, "{text}");
    let claim = project.join("claim.yaml");
    fs::write(&claim, claims[0]).expect("write");
    assert_schema_valid(&tool, &claim);
    // The validator is strict: an unknown field and a duplicate env name fail it.
    let bogus = project.join("bogus.yaml");
    fs::write(
        &bogus,
        text.replace(
            "completionMode: Indexed",
            "completionMode: Indexed\n        bogusField: 1",
        ),
    )
    .expect("write");
    let run = validate_crd(&tool, &bogus);
    assert!(!run.status.success(), "an unknown field passed");
    assert!(String::from_utf8_lossy(&run.stdout).contains("'bogusField' was unexpected"));
    let _ = fs::remove_dir_all(project);
}

#[test]
fn kube_generate_from_a_running_session_makes_a_multi_node_job() {
    let Some(host) = host() else { return };
    let Some(tool) = kubernetes_validate() else {
        return;
    };
    let _guard = common::shared_socket();
    let project = host.user_dir("kube-mn-session");
    let name = format!("mn-session-{}", std::process::id());
    let _containers = ContainerGuard {
        host,
        names: vec![name.clone()],
    };
    common::start_session(host, &project, &name, free_port());
    let file = project.join("train.yaml");
    let file_arg = file.display().to_string();
    let args = [
        "kube",
        "generate",
        &name,
        "--target",
        "kubernetes",
        "--kind",
        "job",
        "--nodes",
        "3",
        "--gpus-per-node",
        "1",
        "--volumes",
        "pvc",
        "-o",
        &file_arg,
    ];
    podlab(host, &project, &args).expect_code(0);
    assert_schema_valid(&tool, &file);
    let text = fs::read_to_string(&file).expect("read");
    for expected in [
        "completions: 3",
        &format!("value: {name}-0.{name}"),
        "name: WHEN",
        "value: \"2024-01-01\"",
        "nvidia.com/gpu: \"1\"",
        "mountPath: /data",
    ] {
        assert!(text.contains(expected), "no {expected:?} in:\n{text}");
    }
    let _ = fs::remove_dir_all(project);
}

/// `kube generate ARGS` in a fresh project; the run, which must fail with a hint and print
/// nothing on stdout.
#[track_caller]
fn refused(host: &TestHost, dir: &str, args: &[&str]) -> Run {
    let project = host.user_dir(dir);
    let mut all = vec!["kube", "generate", "--image", &host.image];
    all.extend_from_slice(args);
    let run = podlab(host, &project, &all);
    run.expect_code(1);
    assert!(run.stderr.contains("hint:"), "{}", run.stderr);
    assert!(run.stdout.is_empty(), "{}", run.stdout);
    let _ = fs::remove_dir_all(project);
    run
}

#[test]
fn nodes_0_is_refused_with_a_hint() {
    let Some(host) = host() else { return };
    let run = refused(
        host,
        "kube-nodes-0",
        &["--target", "kubernetes", "--kind", "job", "--nodes", "0"],
    );
    assert!(
        run.stderr
            .contains("--nodes 0: a training run needs at least one node"),
        "{}",
        run.stderr
    );
}

#[test]
fn gpus_per_node_over_what_gpus_names_is_refused() {
    let Some(host) = host() else { return };
    let run = refused(
        host,
        "kube-gpus-per-node",
        &[
            "--target",
            "kubernetes",
            "--kind",
            "job",
            "--nodes",
            "2",
            "--volumes",
            "pvc",
            "--gpus",
            "0",
            "--gpus-per-node",
            "2",
        ],
    );
    assert!(
        run.stderr
            .contains("--gpus-per-node 2 is more GPUs than --gpus names (1)"),
        "{}",
        run.stderr
    );
}

#[test]
fn host_path_on_a_multi_node_target_is_refused() {
    let Some(host) = host() else { return };
    let run = refused(
        host,
        "kube-hostpath",
        &["--target", "kubernetes", "--kind", "jobset", "--nodes", "2"],
    );
    assert!(
        run.stderr.contains("cannot be mounted on a 2-node run"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("--volumes pvc"), "{}", run.stderr);
}

#[test]
fn session_name_over_63_character_dns_names_is_refused() {
    let Some(host) = host() else { return };
    let name = format!("t{}", "x".repeat(59));
    let run = refused(
        host,
        "kube-long-name",
        &[
            "--target",
            "kubernetes",
            "--kind",
            "jobset",
            "--nodes",
            "2",
            "--volumes",
            "pvc",
            "--name",
            &name,
        ],
    );
    assert!(
        run.stderr.contains("a DNS label holds 63"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("--name with at most 54 characters"),
        "{}",
        run.stderr
    );
}

#[test]
fn podman_flavor_refuses_more_than_one_node() {
    let Some(host) = host() else { return };
    let run = refused(
        host,
        "kube-podman-nodes",
        &["--kind", "job", "--nodes", "2"],
    );
    assert!(
        run.stderr.contains("ignores its completions"),
        "{}",
        run.stderr
    );
}

/// Prints its argument, an env value and a few literals that hold `$(...)` and `$$`, one
/// bracketed word each, on one line.
const DOLLARS_SCRIPT: &str =
    r#"printf '[%s]' "$1" "$AWK" "$(echo sub)" '$(HOME)' '$$' '$$(HOME)' 'cost$'; echo"#;
const DOLLARS_ARG: &str = "$(HOME) $$ $( ) $$(X) $HOME";
const DOLLARS_ENV: &str = "AWK=$(HOME)-$$-$(NOPE";

#[test]
fn w2_kube_play_runs_dollar_paren_strings_as_podlab_run_does() {
    let Some(host) = host() else { return };
    let name = "podlab-e2e-dollars";
    let project = host.user_dir(name);
    let session = [
        "--gpus",
        "none",
        "--image",
        &host.image,
        "-e",
        DOLLARS_ENV,
        "--name",
        name,
    ];
    let command = ["--", "sh", "-c", DOLLARS_SCRIPT, "sh", DOLLARS_ARG];
    let mut args = vec!["run"];
    args.extend(session);
    args.extend(command);
    let ran = podlab(host, &project, &args);
    ran.expect_code(0);
    let expected = ran.stdout.lines().next().unwrap_or_default().to_owned();
    assert!(expected.contains("[$(HOME)]"), "{}", ran.stdout);

    let file = project.join("pod.yaml");
    let file_arg = file.display().to_string();
    let mut args = vec!["kube", "generate", "-o", &file_arg];
    args.extend(session);
    args.extend(command);
    podlab(host, &project, &args).expect_code(0);
    let yaml = fs::read_to_string(&file).expect("read the YAML");
    assert!(yaml.contains("$$(HOME)"), "{yaml}");
    remove_pod(host, name);
    let played = podlab(host, &project, &["kube", "play", &file_arg]);
    let guard = PodGuard { host, pod: name };
    played.expect_code(0);
    let container = format!("{name}-main");
    let mut logs = String::new();
    common::wait_for("the played job's output", || {
        logs = podman(host, &["logs", &container]).stdout;
        logs.contains('\n')
    });
    assert_eq!(
        logs.lines().next().unwrap_or_default(),
        expected,
        "kube play ran other strings than podlab run"
    );
    podlab(host, &project, &["kube", "down", &file_arg]).expect_code(0);
    drop(guard);
    let _ = fs::remove_dir_all(project);
}
