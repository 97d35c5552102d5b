//! End-to-end: CDI specs generated from real NVIDIA userspace files (Debian's packages,
//! unpacked by the provisioning script), loaded by the real Podman for the rootless test user.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use common::{TestHost, copy_tree, host};

const SYSTEM_SPEC: &str = "/etc/cdi/podlab-nvidia.yaml";

/// Tests that touch the test user's `~/.config/cdi` take turns.
static USER_CDI_DIR: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn user_cdi_dir() -> std::sync::MutexGuard<'static, ()> {
    USER_CDI_DIR
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn install_system_spec(host: &TestHost) {
    let root = host.nvidia_root.display().to_string();
    let run = host.podlab_as_root(&[
        "cdi",
        "install",
        "--system",
        "--driver-root",
        &root,
        "--podman-version",
        "5.4.2",
    ]);
    run.expect_code(0);
    assert!(run.stdout.contains(SYSTEM_SPEC), "{}", run.stdout);
}

/// Issue 15: `--json` on every listing, in the shape README.md documents (the system spec is
/// installed and fresh).
#[allow(
    clippy::indexing_slicing,
    clippy::expect_used,
    reason = "a test step: a missing key or value fails the test"
)]
fn listings_as_json_in_the_readme_shape(host: &TestHost) {
    let listed = host.podlab(&["cdi", "list", "--json"]).output();
    let devices = listed.expect_code(0).json();
    let all = devices
        .as_array()
        .expect("an array")
        .iter()
        .find(|device| device["name"] == "nvidia.com/gpu=all")
        .expect("the all device");
    assert_eq!(common::json_keys(all), common::readme_json_keys("cdi list"));
    assert_eq!(all["kind"], "nvidia.com/gpu");
    assert_eq!(all["device"], "all");
    assert_eq!(all["spec"], SYSTEM_SPEC);
    let statuses = host.podlab(&["cdi", "status", "--json"]).output();
    let statuses = statuses.expect_code(0).json();
    let system = statuses
        .as_array()
        .expect("an array")
        .iter()
        .find(|spec| spec["path"] == SYSTEM_SPEC)
        .expect("the system spec");
    // `reason` is there only while a spec is stale.
    assert_eq!(
        common::json_keys(system),
        common::readme_json_keys("cdi status")
            .into_iter()
            .filter(|key| key != "reason")
            .collect::<Vec<_>>()
    );
    assert_eq!(system["state"], "fresh");
    assert_eq!(system["driver_version"], host.nvidia_version.as_str());
    assert_eq!(system["refreshed"], false);
    assert!(system["stale"].is_null(), "{system}");
}

#[test]
fn system_spec_gives_rootless_containers_the_gpu_nodes_and_hook_free_libraries() {
    let Some(host) = host() else { return };
    install_system_spec(host);
    let mode = fs::metadata(SYSTEM_SPEC)
        .expect("spec installed")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o644);

    let valid = host.podlab(&["cdi", "validate", SYSTEM_SPEC]).output();
    assert!(
        valid
            .expect_code(0)
            .stdout
            .contains("valid (cdiVersion 0.5.0"),
        "{}",
        valid.stdout
    );
    let list = host.podlab(&["cdi", "list"]).output();
    let names: Vec<&str> = list.expect_code(0).stdout.lines().collect();
    assert!(
        names.contains(&"nvidia.com/gpu=all") && names.contains(&"nvidia.com/gpu=0"),
        "{names:?}"
    );
    let status = host.podlab(&["cdi", "status"]).output();
    let expected = format!("✔ {SYSTEM_SPEC}: fresh (driver {})", host.nvidia_version);
    assert!(
        status.expect_code(0).stdout.contains(&expected),
        "{}",
        status.stdout
    );
    listings_as_json_in_the_readme_shape(host);

    // No hook, no ldconfig, no ld.so.cache in the image: the loader finds the SONAMEs.
    let script = "ls /dev/nvidia0 /dev/nvidiactl /dev/nvidia-uvm && \
                  dlopen-test libcuda.so.1 libnvidia-ml.so.1 libnvidia-ptxjitcompiler.so.1 && \
                  echo NVIDIA_VISIBLE_DEVICES=$NVIDIA_VISIBLE_DEVICES";
    let args = [
        "run",
        "--rm",
        "--device",
        "nvidia.com/gpu=all",
        &host.glibc_image,
        "sh",
        "-c",
        script,
    ];
    let inside = host.command("podman", &args).output();
    inside.expect_code(0);
    for line in [
        "/dev/nvidia0",
        "ok libcuda.so.1",
        "ok libnvidia-ml.so.1",
        "NVIDIA_VISIBLE_DEVICES=void",
    ] {
        assert!(
            inside.stdout.contains(line),
            "missing {line:?} in:\n{}",
            inside.stdout
        );
    }

    // Without the device the same libraries are absent: the test above proves the spec.
    let args = [
        "run",
        "--rm",
        &host.glibc_image,
        "dlopen-test",
        "libcuda.so.1",
    ];
    let without = host.command("podman", &args).output();
    assert_eq!(without.code, 1, "{}", without.stdout);
    assert!(
        without.stdout.contains("FAIL libcuda.so.1"),
        "{}",
        without.stdout
    );
}

#[test]
fn user_install_explains_that_podman_5_4_cannot_read_it() {
    let Some(host) = host() else { return };
    let _dir = user_cdi_dir();
    let root = host.nvidia_root.display().to_string();
    let run = host
        .podlab(&[
            "cdi",
            "install",
            "--driver-root",
            &root,
            "--podman-version",
            "5.4.2",
        ])
        .output();
    run.expect_code(0);
    assert!(
        run.stderr
            .contains("cannot read a spec installed by a user"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("sudo podlab cdi install --system"),
        "{}",
        run.stderr
    );
    assert!(!host.home.join(".config/cdi/podlab-nvidia.yaml").exists());
}

#[test]
fn a_user_spec_goes_stale_after_a_driver_upgrade_and_is_regenerated() {
    let Some(host) = host() else { return };
    let _dir = user_cdi_dir();
    // A private copy of the driver root (hard links: cheap), which we then "upgrade".
    let root = host.user_dir("upgrade-root");
    copy_tree(&host.nvidia_root, &root);
    let spec_dir = host.home.join(".config/cdi");
    let spec = spec_dir.join("podlab-nvidia.yaml");
    let _ = fs::remove_file(&spec);
    let root_arg = root.display().to_string();
    let spec_arg = spec.display().to_string();
    host.command("mkdir", &["-p", &spec_dir.display().to_string()])
        .output()
        .expect_code(0);
    let made = host.podlab(&[
        "cdi",
        "generate",
        "--driver-root",
        &root_arg,
        "--podman-version",
        "5.4.2",
        "-o",
        &spec_arg,
    ]);
    made.output().expect_code(0);

    let lib_dir = root.join("usr/lib/x86_64-linux-gnu/nvidia/current");
    let old = lib_dir.join(format!("libcuda.so.{}", host.nvidia_version));
    fs::rename(&old, lib_dir.join("libcuda.so.999.1.2")).expect("upgrade libcuda");
    let status = host.podlab(&["cdi", "status"]).output();
    let text = &status.expect_code(0).stdout;
    let expected = format!(
        "{spec_arg}: was stale (driver changed from {} to 999.1.2); regenerated",
        host.nvidia_version
    );
    assert!(text.contains(&expected), "{text}");
    let regenerated = fs::read_to_string(&spec).expect("spec");
    assert!(
        regenerated.contains("libcuda.so.999.1.2"),
        "spec was not refreshed"
    );

    // An edited spec is left alone and reported.
    fs::write(
        &spec,
        regenerated.replace("NVIDIA_VISIBLE_DEVICES=void", "NVIDIA_VISIBLE_DEVICES=all"),
    )
    .expect("edit");
    let status = host.podlab(&["cdi", "status"]).output();
    assert!(
        status
            .stdout
            .contains(&format!("⚠ {spec_arg}: edited by hand")),
        "{}",
        status.stdout
    );
    let doctor = host.podlab(&["doctor"]).output();
    assert!(
        doctor
            .stdout
            .contains(&format!("⚠ cdi spec: {spec_arg}: edited by hand")),
        "{}",
        doctor.stdout
    );
    fs::remove_file(&spec).expect("clean up");
    let _ = fs::remove_dir_all(root);
}

#[test]
fn bad_input_fails_clearly_and_writes_nothing() {
    let Some(host) = host() else { return };
    let empty = host.user_dir("no-driver");
    let empty_arg = empty.display().to_string();
    let out = empty.join("spec.yaml");
    let out_arg = out.display().to_string();
    let run = host.podlab(&[
        "cdi",
        "generate",
        "--driver-root",
        &empty_arg,
        "--podman-version",
        "5.4.2",
        "-o",
        &out_arg,
    ]);
    let run = run.output();
    run.expect_code(1);
    assert!(
        run.stderr
            .contains(&format!("error: no NVIDIA driver found under {empty_arg}")),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("\nhint: "), "{}", run.stderr);
    assert!(!out.exists());

    let root = host.nvidia_root.display().to_string();

    // A Podman older than the content needs: refused, with the way out.
    let run = host
        .podlab(&[
            "cdi",
            "generate",
            "--driver-root",
            &root,
            "--podman-version",
            "4.2.0",
        ])
        .output();
    run.expect_code(1);
    assert!(
        run.stderr
            .contains("needs 0.5.0 for device names starting with a digit"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("hint: generate with --names uuid"),
        "{}",
        run.stderr
    );
    let run = host
        .podlab(&[
            "cdi",
            "generate",
            "--driver-root",
            &root,
            "--podman-version",
            "4.2.0",
            "--names",
            "uuid",
        ])
        .output();
    assert!(
        run.expect_code(0).stdout.contains("cdiVersion: \"0.3.0\""),
        "{}",
        run.stdout
    );

    let broken = empty.join("broken.yaml");
    fs::write(&broken, "cdiVersion: \"0.5.0\"\nkind: nvidia.com/gpu\ndevices:\n- name: \"gpu 0\"\n  containerEdits:\n    env: [A=1]\n")
        .expect("write");
    fs::set_permissions(&broken, fs::Permissions::from_mode(0o644)).expect("chmod");
    let run = host
        .podlab(&["cdi", "validate", &broken.display().to_string()])
        .output();
    run.expect_code(1);
    assert!(
        run.stderr.contains(":4:") && run.stderr.contains("devices[0].name"),
        "{}",
        run.stderr
    );
    let _ = fs::remove_dir_all(empty);
}

/// Issue 11: this test read the state of /etc/cdi, which another test of the same run creates;
/// on a fresh machine it saw a missing directory (reported as "not a directory") instead of
/// an unwritable one. It now makes both directories itself.
#[test]
fn cdi_output_into_a_missing_or_unwritable_directory_fails_clearly() {
    let Some(host) = host() else { return };
    let root = host.nvidia_root.display().to_string();
    let generate_into = |out: &Path| {
        host.podlab(&[
            "cdi",
            "generate",
            "--driver-root",
            &root,
            "--podman-version",
            "5.4.2",
            "-o",
            &out.display().to_string(),
        ])
        .output()
    };

    // A directory that does not exist: called missing, with the mkdir that fixes it.
    let missing = host.user_dir("cdi-missing-parent").join("absent");
    let run = generate_into(&missing.join("spec.yaml"));
    run.expect_code(1);
    assert!(
        run.stderr
            .contains(&format!("{} does not exist", missing.display()))
            && run.stderr.contains(&format!(
                "hint: create it first (mkdir -p {})",
                missing.display()
            )),
        "{}",
        run.stderr
    );
    assert!(!missing.exists());

    // A directory of root's, as /etc/cdi is: the user cannot write there.
    let system_like =
        std::env::temp_dir().join(format!("podlab-e2e-{}-root-cdi", std::process::id()));
    let _ = fs::remove_dir_all(&system_like);
    fs::create_dir_all(&system_like).expect("create root's directory");
    fs::set_permissions(&system_like, fs::Permissions::from_mode(0o755)).expect("chmod");
    let run = generate_into(&system_like.join("user.yaml"));
    assert_ne!(run.code, 0);
    assert!(
        run.stderr
            .contains(&format!("cannot write to {}", system_like.display()))
            && run.stderr.contains("hint: "),
        "{}",
        run.stderr
    );
    assert!(fs::read_dir(&system_like).expect("list").next().is_none());
    let _ = fs::remove_dir_all(&system_like);
}

/// Issue 12: `podlab cdi generate` in a user's shell (no socket, no `--podman-version`) ran
/// `podman --version` on every run: 22.7 ms and 40 MB against 1.5 ms when pinned. The version
/// is now remembered, keyed on the podman binary: the first run asks it, the next ones do
/// not, and an upgraded (replaced) binary or a corrupt entry makes podlab ask again. Each
/// answer gates the spec: a 4.2 podman cannot load the cdiVersion the index names need.
#[test]
fn cdi_generate_in_a_users_shell_asks_podman_its_version_once() {
    let Some(host) = host() else { return };
    // A home of its own (its ~/.cache starts empty), a runtime dir where no socket listens,
    // and a podman on PATH that records each call before running the real one.
    let home = host.user_dir("version-cache-home");
    let runtime = host.user_dir("version-cache-runtime");
    let bin = host.user_dir("version-cache-bin");
    let calls = home.join("podman-calls");
    let install_podman = |body: &str| {
        let staged = bin.join("podman.new");
        fs::write(
            &staged,
            format!("#!/bin/sh\necho \"$*\" >> '{}'\n{body}\n", calls.display()),
        )
        .expect("write podman wrapper");
        fs::set_permissions(&staged, fs::Permissions::from_mode(0o755)).expect("chmod");
        // Renamed into place, as a package manager replaces a binary.
        fs::rename(&staged, bin.join("podman")).expect("install podman wrapper");
    };
    install_podman("exec /usr/bin/podman \"$@\"");
    let called = || {
        fs::read_to_string(&calls)
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    let root = host.nvidia_root.display().to_string();
    let generate = || {
        host.podlab(&["cdi", "generate", "--driver-root", &root])
            .env("HOME", home.display().to_string())
            .env("XDG_RUNTIME_DIR", runtime.display().to_string())
            .env("PATH", format!("{}:/usr/bin:/bin", bin.display()))
            .output()
    };

    // Podman 5.4.2 (the real one): the spec gets the cdiVersion its index names need.
    let first = generate();
    assert!(
        first
            .expect_code(0)
            .stdout
            .contains("cdiVersion: \"0.5.0\""),
        "{}",
        first.stdout
    );
    assert_eq!(called(), ["--version"]);
    let cache = home.join(".cache/podlab/podman-version.json");
    let entry = fs::read_to_string(&cache).expect("the version is remembered");
    assert!(entry.contains("\"version\":\"5.4.2\""), "{entry}");
    assert_eq!(
        fs::metadata(&cache).expect("cache").permissions().mode() & 0o777,
        0o600
    );

    let second = generate();
    assert_eq!(second.expect_code(0).stdout, first.stdout);
    assert_eq!(called(), ["--version"], "the second run spawned podman");

    // An upgrade (here a downgrade, to show the gating): a new binary is asked again.
    install_podman("echo 'podman version 4.2.1'");
    let old = generate();
    old.expect_code(1);
    assert!(
        old.stderr
            .contains("loads cdiVersion 0.4.0 at most, but this spec needs 0.5.0"),
        "{}",
        old.stderr
    );
    assert_eq!(called().len(), 2, "{:?}", called());

    // A corrupt entry is ignored (podman is asked) and rewritten.
    fs::write(&cache, "{\"format\":1,").expect("corrupt the cache");
    generate().expect_code(1);
    assert_eq!(called().len(), 3, "{:?}", called());
    generate().expect_code(1);
    assert_eq!(called().len(), 3, "{:?}", called());

    for dir in [home, runtime, bin] {
        let _ = fs::remove_dir_all(dir);
    }
}
