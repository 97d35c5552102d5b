//! End-to-end under a real systemd and three real Podman versions: podlab runs inside the
//! systemd rig's machines (`tests/host/rig.sh`: Debian bookworm with Podman 4.3.1, trixie with
//! 5.4.2, forky with 5.8.6), as the machine's unprivileged user, from a transient user unit.
//! Units go through the real quadlet generator and a real `systemd --user`; GPUs are the
//! host's fake `/dev/nvidia*` nodes plus the real Debian driver libraries, bound into each
//! machine. Each test starts by removing whatever an earlier run may have left of its own
//! names, so none depends on an earlier run; machines stay up between runs.

#![allow(
    clippy::panic,
    clippy::expect_used,
    clippy::indexing_slicing,
    reason = "tests: a failed step must fail the test at once"
)]

mod common;
#[path = "common/rig.rs"]
mod rig;

use std::process::Command;
use std::time::Duration;

use podlab::capabilities::{Capabilities, CdiVersion, PodmanVersion, UnitType};
use rig::{Machine, Rig, rig};

const QUADLET: &str = "/usr/libexec/podman/quadlet";
/// busybox httpd serving `/lab` on 8888 as JupyterLab would. It has no SIGTERM handler:
/// the container's init passes the stop on.
const NOTEBOOK_SERVER: &str =
    "mkdir -p /tmp/www && echo notebook-ok > /tmp/www/lab && exec httpd -f -p 8888 -h /tmp/www";
const NOTEBOOK_HEALTH: &str = "wget -q -O /dev/null http://127.0.0.1:8888/lab";
/// A GPU session's command: serves `gpu-ok` on 8080 (no SIGTERM handler either).
const GPU_SERVER: &str =
    "mkdir -p /tmp/www && echo gpu-ok > /tmp/www/index.html && exec httpd -f -p 8080 -h /tmp/www";
/// What a GPU session sees from inside: the nodes, the driver library, its mounts and shm.
const GPU_REPORT: &str = "ls /dev/nvidia0 /dev/nvidiactl && dlopen-test libcuda.so.1 \
     && awk '$2 == \"/data\" || $2 == \"/dev/shm\" { split($4, o, \",\"); print $2, o[1] }' /proc/mounts | sort \
     && df -k /dev/shm | tail -1 | awk '{ print \"shm\", $2 }' && cat /data/marker";

fn up() -> Option<&'static Rig> {
    rig()
}

/// Removes what an earlier run may have left of unit `name`: podlab's unit files (a plain
/// service's too, and its `enable` links), the container, the notebook's secret, a failed
/// state.
fn forget(machine: &Machine, name: &str) {
    let script = format!(
        "systemctl --user stop {name}.service 2>/dev/null; \
         systemctl --user disable {name}.service 2>/dev/null; \
         rm -f ~/.config/containers/systemd/podlab/{name}.* ~/.config/containers/systemd/{name}.* \
               ~/.config/systemd/user/{name}.service; \
         systemctl --user daemon-reload; systemctl --user reset-failed {name}.service 2>/dev/null; \
         podman rm -f -t 0 {name} >/dev/null 2>&1; podman secret rm podlab-notebook-{name} >/dev/null 2>&1; true"
    );
    machine.sh(&script).expect_code(0);
}

/// Asserts that unit `name` left nothing: no unit file (nor a plain service or its `enable`
/// link), no container, no unit loaded, none failed.
#[track_caller]
fn assert_gone(machine: &Machine, name: &str) {
    let files = machine.sh(&format!(
        "ls ~/.config/containers/systemd/podlab/{name}.* ~/.config/containers/systemd/{name}.* \
         ~/.config/systemd/user/{name}.service ~/.config/systemd/user/*.wants/{name}.service \
         /run/user/$(id -u)/systemd/generator/{name}.service 2>/dev/null; true"
    ));
    assert_eq!(files.stdout, "", "unit files left on {}", machine.name);
    let exists = machine.run(&["podman", "container", "exists", name]);
    assert_eq!(exists.code, 1, "container {name} left on {}", machine.name);
    let unit = format!("{name}.service");
    let failed = machine.systemctl(&["is-failed", &unit]);
    assert_ne!(failed, "failed", "{unit} ended failed on {}", machine.name);
    let listed = machine.systemctl(&["list-units", "--all", "--no-legend", &unit]);
    assert_eq!(listed, "", "{unit} still loaded on {}", machine.name);
}

/// `GET URL` from inside the machine (busybox wget): the body.
fn fetch(machine: &Machine, url: &str) -> String {
    let run = machine.run(&["busybox", "wget", "-q", "-O", "-", url]);
    run.expect_code(0);
    run.stdout
}

/// `systemctl --user show -p KEY --value UNIT`.
fn show(machine: &Machine, unit: &str, key: &str) -> String {
    machine.systemctl(&["show", "-p", key, "--value", unit])
}

// --- the binary ------------------------------------------------------------------------------

/// The machines run a podlab built for glibc 2.34 (`rig.sh binary`): the host's build needs
/// the host's glibc (2.41) and does not start on bookworm (2.36), Ubuntu 22.04 or RHEL 9.
#[test]
fn the_rig_binary_needs_glibc_2_34_at_most_and_starts_on_every_machine() {
    let Some(rig) = up() else { return };
    let out = Command::new("objdump")
        .arg("-T")
        .arg(Rig::binary())
        .output()
        .expect("objdump");
    let text = String::from_utf8_lossy(&out.stdout);
    // objdump writes `(GLIBC_2.2.5)` for hidden versions: split on anything else.
    let versions: Vec<(u32, u32)> = text
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.'))
        .filter_map(|word| word.strip_prefix("GLIBC_"))
        .filter_map(|version| {
            let mut parts = version.split('.').map(str::parse::<u32>);
            Some((parts.next()?.ok()?, parts.next()?.ok()?))
        })
        .collect();
    let highest = versions.iter().max().expect("GLIBC_ symbol versions");
    assert!(
        *highest <= (2, 34),
        "the rig's podlab needs GLIBC_{}.{}",
        highest.0,
        highest.1
    );
    for name in rig.names() {
        let machine = rig.machine(&name);
        let run = machine.podlab(&["--version"]);
        run.expect_code(0);
        assert!(run.stdout.starts_with("podlab "), "{}", run.stdout);
    }
}

// --- GPU sessions as quadlet units -----------------------------------------------------------

/// `podlab quadlet install` of a GPU session (driver libraries from the bound driver root)
/// reaches `active` under systemd; from inside, the container has the GPU nodes, libcuda, its
/// read-only data mount, a 256 MiB /dev/shm and its published port; `quadlet rm` stops it
/// and leaves nothing behind.
fn a_gpu_session_unit_runs_and_is_removed_whole(rig: &Rig, machine: &Machine) {
    let name = "gpu-session";
    forget(machine, name);
    let project = machine.scratch_dir("gpu-project");
    let data = machine.scratch_dir("gpu-data");
    machine
        .sh(&format!("echo 'marker of {name}' > {data}/marker"))
        .expect_code(0);
    let volume = format!("{data}:/data:ro");
    let installed = machine.podlab_in(
        &project,
        &[
            "quadlet",
            "install",
            "--name",
            name,
            "--driver-root",
            &rig.nvidia_root,
            "--gpus",
            "all",
            "--image",
            &rig.glibc_image,
            "--shm-size",
            "256m",
            "-v",
            &volume,
            "-p",
            "127.0.0.1:18080:8080",
            "--",
            "sh",
            "-c",
            GPU_SERVER,
        ],
    );
    installed.expect_code(0);
    let unit = format!("{name}.service");
    machine.wait_active(&unit, "active", Duration::from_secs(60));

    let inside = machine.run(&["podman", "exec", name, "sh", "-c", GPU_REPORT]);
    inside.expect_code(0);
    for line in [
        "/dev/nvidia0",
        "ok libcuda.so.1",
        "/data ro",
        "/dev/shm rw",
        "shm 262144",
        "marker of gpu-session",
    ] {
        assert!(
            inside.stdout.contains(line),
            "no {line:?} inside on {}:\n{}",
            machine.name,
            inside.stdout
        );
    }
    assert_eq!(fetch(machine, "http://127.0.0.1:18080/"), "gpu-ok\n");

    let removed = machine.podlab_in(&project, &["quadlet", "rm", name]);
    removed.expect_code(0);
    assert_gone(machine, name);
}

#[test]
fn a_gpu_session_unit_runs_and_is_removed_whole_on_podman_5_4() {
    let Some(rig) = up() else { return };
    a_gpu_session_unit_runs_and_is_removed_whole(rig, &rig.machine("trixie"));
}

#[test]
fn a_gpu_session_unit_runs_and_is_removed_whole_on_podman_5_8() {
    let Some(rig) = up() else { return };
    a_gpu_session_unit_runs_and_is_removed_whole(rig, &rig.machine("forky"));
}

// --- notebooks ---------------------------------------------------------------------------------

/// `podlab notebook install` reaches `active` once healthy (`Notify=healthy`; on 4.3.1, a
/// plain service, once its container runs, and healthy soon after), answers on its URL, is
/// restarted by systemd after its container is killed, stops, starts and is removed whole;
/// its token is in no unit file, no journal line of its service and no process's arguments.
fn a_notebook_lives_under_systemd(rig: &Rig, machine: &Machine) {
    let name = "nb";
    // Podman 4.3.1 has no quadlet: a plain service in the user's systemd directory.
    let plain = machine.podman_version().starts_with("4.3.");
    forget(machine, name);
    let installed = machine.podlab(&[
        "notebook",
        "install",
        "--name",
        name,
        "--image",
        &rig.image,
        "--gpus",
        "none",
        "--port",
        "18888",
        "--health-cmd",
        NOTEBOOK_HEALTH,
        "--",
        "sh",
        "-c",
        NOTEBOOK_SERVER,
    ]);
    installed.expect_code(0);
    let unit = format!("{name}.service");
    let health = || {
        let health = machine.run(&[
            "podman",
            "inspect",
            "--format",
            "{{.State.Health.Status}}",
            name,
        ]);
        health.stdout.trim().to_owned()
    };
    if plain {
        let file = format!("{}/.config/systemd/user/{unit}", machine.home());
        assert_eq!(installed.stdout.trim(), file);
        assert!(
            installed.stderr.contains("podman 4.3.1 has no quadlet")
                && !installed.stderr.contains("PodmanArgs"),
            "{}",
            installed.stderr
        );
        assert_eq!(machine.systemctl(&["is-active", &unit]), "active");
        assert_eq!(machine.systemctl(&["is-enabled", &unit]), "enabled");
        // No Notify=healthy before 5.0: the first health check passes soon after the start.
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while health() != "healthy" {
            assert!(
                std::time::Instant::now() < deadline,
                "{name} not healthy on {}: {}",
                machine.name,
                health()
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    } else {
        // `systemctl start` of a Notify=healthy unit returns once the health check passed.
        assert_eq!(machine.systemctl(&["is-active", &unit]), "active");
        assert_eq!(health(), "healthy");
    }

    let url = machine.podlab(&["notebook", "url", name]);
    url.expect_code(0);
    let url = url.stdout.trim().to_owned();
    let token = url
        .strip_prefix("http://127.0.0.1:18888/lab?token=")
        .unwrap_or_else(|| panic!("unexpected notebook url {url:?}"))
        .to_owned();
    assert!(token.len() >= 32, "{token:?}");
    assert_eq!(fetch(machine, &url), "notebook-ok\n");

    // systemd restarts the service when its container dies.
    assert_eq!(show(machine, &unit, "NRestarts"), "0");
    machine.run(&["podman", "kill", name]).expect_code(0);
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while show(machine, &unit, "NRestarts") == "0" {
        assert!(
            std::time::Instant::now() < deadline,
            "{unit} not restarted after podman kill on {}",
            machine.name
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    machine.wait_active(&unit, "active", Duration::from_secs(60));
    assert_eq!(fetch(machine, &url), "notebook-ok\n");

    assert_token_hidden(machine, name, &token, plain);

    machine.podlab(&["notebook", "stop", name]).expect_code(0);
    assert_eq!(machine.systemctl(&["is-active", &unit]), "inactive");
    machine.podlab(&["notebook", "start", name]).expect_code(0);
    assert_eq!(machine.systemctl(&["is-active", &unit]), "active");
    assert_eq!(fetch(machine, &url), "notebook-ok\n");

    machine.podlab(&["notebook", "rm", name]).expect_code(0);
    assert_gone(machine, name);
    // `podman secret exists` came after 4.3.1: the list, on every version.
    let secrets = machine.run(&["podman", "secret", "ls", "--format", "{{.Name}}"]);
    secrets.expect_code(0);
    assert!(
        !secrets
            .stdout
            .lines()
            .any(|line| line == format!("podlab-notebook-{name}")),
        "the token's secret is left on {}",
        machine.name
    );
}

/// The token is not in the unit podlab wrote, nor the one the generator made (`plain`: the
/// plain service, no generator), nor the service's journal, nor any process's arguments (all
/// users', read as root).
fn assert_token_hidden(machine: &Machine, name: &str, token: &str, plain: bool) {
    let unit = format!("{name}.service");
    let unit_files = machine.sh(&if plain {
        format!("cat ~/.config/systemd/user/{unit}")
    } else {
        format!(
            "cat ~/.config/containers/systemd/podlab/{name}.container /run/user/$(id -u)/systemd/generator/{unit}"
        )
    });
    unit_files.expect_code(0);
    let journal = machine.run(&[
        "journalctl",
        "--user",
        "-u",
        &unit,
        "--no-pager",
        "-o",
        "cat",
    ]);
    journal.expect_code(0);
    assert!(
        journal.stdout.lines().count() > 2,
        "no journal of {unit} to check on {}: {}",
        machine.name,
        journal.stderr
    );
    let ps = machine.root(&["ps", "-eo", "args", "ww"]);
    ps.expect_code(0);
    for (what, seen) in [
        ("the unit files", &unit_files.stdout),
        ("the journal", &journal.stdout),
        ("ps", &ps.stdout),
    ] {
        assert!(
            !seen.contains(token),
            "the token shows in {what} on {}",
            machine.name
        );
    }
}

/// Issue 11: on Debian 12's Podman 4.3.1 (no quadlet) the notebook is a plain service.
#[test]
fn a_notebook_lives_under_systemd_on_podman_4_3() {
    let Some(rig) = up() else { return };
    a_notebook_lives_under_systemd(rig, &rig.machine("bookworm"));
}

#[test]
fn a_notebook_lives_under_systemd_on_podman_5_4() {
    let Some(rig) = up() else { return };
    a_notebook_lives_under_systemd(rig, &rig.machine("trixie"));
}

#[test]
fn a_notebook_lives_under_systemd_on_podman_5_8() {
    let Some(rig) = up() else { return };
    a_notebook_lives_under_systemd(rig, &rig.machine("forky"));
}

// --- CDI with no root step (Podman 5.5+) ---------------------------------------------------------

/// The user's containers.conf as the rig writes it, and no CDI spec of the user's.
fn reset_user_config(machine: &Machine) {
    machine.run(&["rm", "-rf", ".config/cdi"]).expect_code(0);
    machine.write(
        &format!("{}/.config/containers/containers.conf", machine.home()),
        "[containers]\npids_limit = 0\n",
    );
}

/// On forky (5.8.6), `podlab cdi install` as the user, with no root step at all, writes the
/// user's spec and adds its directory to `cdi_spec_dirs`; then plain `podman run --device
/// nvidia.com/gpu=all`, `podlab run`, a quadlet unit and `kube play` all get the GPU by CDI
/// name. A unit that `podman quadlet install` put beside podlab's runs too, and podlab leaves
/// it alone.
#[test]
fn a_user_cdi_install_serves_podman_podlab_units_and_kube_on_podman_5_8() {
    let Some(rig) = up() else { return };
    let machine = rig.machine("forky");
    for name in [CDI_UNIT, FOREIGN] {
        forget(&machine, name);
    }
    machine
        .sh(&format!(
            "podman pod rm -f -t 0 {CDI_POD} >/dev/null 2>&1; true"
        ))
        .expect_code(0);
    // forky's crun fails any container with a CDI GPU in a pod with a keep-id user namespace
    // ("crun: read status from sync socket"; runc runs it), which is what kube play of a
    // session makes: this test runs on runc, set the way a user would, and so also proves that
    // `cdi install` keeps the user's own settings.
    reset_user_config(&machine);
    machine.write(
        &format!("{}/.config/containers/containers.conf", machine.home()),
        "[containers]\npids_limit = 0\n\n[engine]\nruntime = \"runc\"\n",
    );
    cdi_install_as_user(rig, &machine);
    jobs_get_the_gpu_by_cdi_name(rig, &machine);
    let project = machine.scratch_dir("cdi-project");
    a_unit_gets_the_gpu_by_cdi_name_beside_a_foreign_unit(rig, &machine, &project);
    kube_play_gets_the_gpu_by_cdi_name(rig, &machine, &project);

    // podlab's unit goes; Podman's stays until Podman removes it.
    machine
        .podlab_in(&project, &["quadlet", "rm", CDI_UNIT])
        .expect_code(0);
    assert_gone(&machine, CDI_UNIT);
    assert_eq!(
        machine.systemctl(&["is-active", &format!("{FOREIGN}.service")]),
        "active"
    );
    machine
        .run(&[
            "podman",
            "quadlet",
            "rm",
            "--force",
            &format!("{FOREIGN}.container"),
        ])
        .expect_code(0);
    reset_user_config(&machine);
}

const CDI_UNIT: &str = "cdi-unit";
const CDI_POD: &str = "cdi-kube";
const FOREIGN: &str = "foreign";
const CDI_CHECK: &str = "ls /dev/nvidia0 && dlopen-test libcuda.so.1";
const WAIT_FOR_TERM: &str = "trap 'exit 0' TERM; sleep 600 & wait";

/// `podlab cdi install` as the user writes the user's spec and adds its directory to
/// `cdi_spec_dirs`, keeping the user's other settings.
fn cdi_install_as_user(rig: &Rig, machine: &Machine) {
    let installed = machine.podlab(&["cdi", "install", "--driver-root", &rig.nvidia_root]);
    installed.expect_code(0);
    let spec = format!("{}/.config/cdi/podlab-nvidia.yaml", machine.home());
    machine.run(&["test", "-f", &spec]).expect_code(0);
    let conf = machine.run(&["cat", ".config/containers/containers.conf"]);
    assert!(
        conf.stdout.contains("cdi_spec_dirs") && conf.stdout.contains("/.config/cdi"),
        "no cdi_spec_dirs in:\n{}",
        conf.stdout
    );
    assert!(
        conf.stdout.contains("pids_limit = 0") && conf.stdout.contains("runtime = \"runc\""),
        "the user's settings were lost:\n{}",
        conf.stdout
    );
}

/// Plain `podman run --device nvidia.com/gpu=all` and `podlab run --gpus all` see the nodes
/// and libcuda.
fn jobs_get_the_gpu_by_cdi_name(rig: &Rig, machine: &Machine) {
    let plain = machine.run(&[
        "podman",
        "run",
        "--rm",
        "--device",
        "nvidia.com/gpu=all",
        &rig.glibc_image,
        "sh",
        "-c",
        CDI_CHECK,
    ]);
    plain.expect_code(0);
    assert!(plain.stdout.contains("ok libcuda.so.1"), "{}", plain.stdout);
    let job = machine.podlab(&[
        "run",
        "--image",
        &rig.glibc_image,
        "--gpus",
        "all",
        "--driver-root",
        &rig.nvidia_root,
        "--",
        "sh",
        "-c",
        CDI_CHECK,
    ]);
    job.expect_code(0);
    assert!(job.stdout.contains("ok libcuda.so.1"), "{}", job.stdout);
}

/// podlab's unit names the GPU by CDI name and runs; a unit `podman quadlet install` put
/// beside it runs too.
fn a_unit_gets_the_gpu_by_cdi_name_beside_a_foreign_unit(
    rig: &Rig,
    machine: &Machine,
    project: &str,
) {
    let unit = machine.podlab_in(
        project,
        &[
            "quadlet",
            "install",
            "--name",
            CDI_UNIT,
            "--driver-root",
            &rig.nvidia_root,
            "--gpus",
            "all",
            "--image",
            &rig.glibc_image,
            "--",
            "sh",
            "-c",
            WAIT_FOR_TERM,
        ],
    );
    unit.expect_code(0);
    let text = machine.run(&[
        "cat",
        &format!(".config/containers/systemd/podlab/{CDI_UNIT}.container"),
    ]);
    assert!(
        text.stdout
            .lines()
            .any(|l| l == "AddDevice=nvidia.com/gpu=all"),
        "not by CDI name:\n{}",
        text.stdout
    );
    machine.wait_active(
        &format!("{CDI_UNIT}.service"),
        "active",
        Duration::from_secs(60),
    );
    machine
        .run(&["podman", "exec", CDI_UNIT, "sh", "-c", CDI_CHECK])
        .expect_code(0);

    let dir = machine.scratch_dir("foreign");
    let file = format!("{dir}/{FOREIGN}.container");
    machine.write(
        &file,
        &format!(
            "[Container]\nImage={}\nExec=sh -c \"{WAIT_FOR_TERM}\"\n",
            rig.image
        ),
    );
    machine
        .run(&["podman", "quadlet", "install", &file])
        .expect_code(0);
    let service = format!("{FOREIGN}.service");
    machine
        .run(&["systemctl", "--user", "start", &service])
        .expect_code(0);
    machine.wait_active(&service, "active", Duration::from_secs(30));
    let listed = machine.run(&["podman", "quadlet", "list"]);
    listed.expect_code(0);
    assert!(listed.stdout.contains(FOREIGN), "{}", listed.stdout);
}

/// `podlab kube generate` names the GPU by CDI name in the limits; `podlab kube play` of it
/// runs with the GPU; `kube down` removes it.
fn kube_play_gets_the_gpu_by_cdi_name(rig: &Rig, machine: &Machine, project: &str) {
    let yaml = format!("{project}/{CDI_POD}.yaml");
    machine
        .podlab_in(
            project,
            &[
                "kube",
                "generate",
                "--name",
                CDI_POD,
                "--driver-root",
                &rig.nvidia_root,
                "--gpus",
                "all",
                "--image",
                &rig.glibc_image,
                "-o",
                &yaml,
                "--",
                "sh",
                "-c",
                WAIT_FOR_TERM,
            ],
        )
        .expect_code(0);
    let text = machine.run(&["cat", &yaml]);
    assert!(
        text.stdout.contains("nvidia.com/gpu=all"),
        "{}",
        text.stdout
    );
    machine
        .podlab_in(project, &["kube", "play", &yaml])
        .expect_code(0);
    machine
        .run(&[
            "podman",
            "exec",
            &format!("{CDI_POD}-main"),
            "sh",
            "-c",
            CDI_CHECK,
        ])
        .expect_code(0);
    machine
        .podlab_in(project, &["kube", "down", &yaml])
        .expect_code(0);
    assert_eq!(machine.run(&["podman", "pod", "exists", CDI_POD]).code, 1);
}

// --- Podman 4.3.1 (Debian 12) ------------------------------------------------------------------

/// On bookworm's Podman 4.3.1 podlab's session commands work (`run`, `ps`, `logs`, `stop`,
/// `rm`, `kube generate|play|down`); a notebook, which has no quadlet there, is installed as
/// a plain service in the user's systemd directory (nothing goes to quadlet's), and `notebook
/// rm` removes it (the whole life of one: `a_notebook_lives_under_systemd_on_podman_4_3`).
#[test]
fn sessions_kube_and_notebooks_work_on_podman_4_3() {
    let Some(rig) = up() else { return };
    let machine = rig.machine("bookworm");
    let (session, pod) = ("old-session", "old-kube");
    machine
        .sh(&format!(
            "podman rm -f -t 0 {session} {pod}-main >/dev/null 2>&1; podman pod rm -f -t 0 {pod} >/dev/null 2>&1; true"
        ))
        .expect_code(0);
    let project = machine.scratch_dir("old-project");
    // 4.3.1's kube play gives no default PATH to an image without one (the test images have
    // none): absolute programs.
    let command = "echo hello-from-4.3; trap 'exit 0' TERM; sleep 600 & wait";
    let run = machine.podlab_in(
        &project,
        &[
            "run", "--detach", "--name", session, "--image", &rig.image, "--", "/bin/sh", "-c",
            command,
        ],
    );
    run.expect_code(0);
    let ps = machine.podlab_in(&project, &["ps"]);
    ps.expect_code(0);
    assert!(
        ps.stdout
            .lines()
            .any(|l| l.starts_with(session) && l.contains("running")),
        "{}",
        ps.stdout
    );
    let logs = machine.podlab_in(&project, &["logs", session]);
    logs.expect_code(0);
    assert_eq!(logs.stdout, "hello-from-4.3\n");
    machine
        .podlab_in(&project, &["stop", session])
        .expect_code(0);
    let state = machine.run(&[
        "podman",
        "inspect",
        "--format",
        "{{.State.Status}}",
        session,
    ]);
    assert_eq!(state.stdout.trim(), "exited");
    machine.podlab_in(&project, &["rm", session]).expect_code(0);
    assert_eq!(
        machine
            .run(&["podman", "container", "exists", session])
            .code,
        1
    );

    let yaml = format!("{project}/{pod}.yaml");
    machine
        .podlab_in(
            &project,
            &[
                "kube", "generate", "--name", pod, "--image", &rig.image, "-o", &yaml, "--",
                "/bin/sh", "-c", command,
            ],
        )
        .expect_code(0);
    let played = machine.podlab_in(&project, &["kube", "play", &yaml]);
    played.expect_code(0);
    assert!(
        played
            .stdout
            .contains(&format!("started pod {pod} (running): {pod}-main")),
        "{}",
        played.stdout
    );
    let logs = machine.podlab_in(&project, &["logs", &format!("{pod}-main")]);
    assert_eq!(logs.stdout, "hello-from-4.3\n", "{}", logs.stderr);
    machine
        .podlab_in(&project, &["kube", "down", &yaml])
        .expect_code(0);
    assert_eq!(machine.run(&["podman", "pod", "exists", pod]).code, 1);

    a_notebook_is_a_plain_service(rig, &machine, &project);
}

/// `notebook install` on 4.3.1 writes a plain service in the user's systemd directory and
/// nothing to quadlet's; `notebook rm` removes it whole.
fn a_notebook_is_a_plain_service(rig: &Rig, machine: &Machine, project: &str) {
    let notebook = "old-nb";
    forget(machine, notebook);
    let installed = machine.podlab_in(
        project,
        &[
            "notebook",
            "install",
            "--name",
            notebook,
            "--image",
            &rig.image,
            "--gpus",
            "none",
            "--port",
            "18887",
            "--health-cmd",
            NOTEBOOK_HEALTH,
            "--",
            "sh",
            "-c",
            NOTEBOOK_SERVER,
        ],
    );
    installed.expect_code(0);
    assert_eq!(
        installed.stdout.trim(),
        format!("{}/.config/systemd/user/{notebook}.service", machine.home())
    );
    let units = machine.sh("ls -A ~/.config/containers/systemd/podlab/old-nb.* 2>/dev/null; true");
    assert_eq!(
        units.stdout, "",
        "a quadlet unit on a podman without quadlet"
    );
    machine
        .podlab_in(project, &["notebook", "rm", notebook])
        .expect_code(0);
    assert_gone(machine, notebook);
}

// --- the capability table against the real Podman versions ------------------------------------

/// The quadlet unit files that probe which unit types a generator reads: (file, contents).
fn unit_type_probes(image: &str) -> Vec<(UnitType, String, String)> {
    UnitType::ALL
        .into_iter()
        .map(|unit| {
            let ext = unit.extension();
            let body = match unit {
                UnitType::Container => format!("[Container]\nImage={image}\n"),
                UnitType::Volume => "[Volume]\n".to_owned(),
                UnitType::Network => "[Network]\n".to_owned(),
                UnitType::Kube => "[Kube]\nYaml=/tmp/probe.yaml\n".to_owned(),
                UnitType::Image => format!("[Image]\nImage={image}\n"),
                UnitType::Pod => "[Pod]\n".to_owned(),
                UnitType::Build => {
                    "[Build]\nImageTag=localhost/probe\nFile=/tmp/Containerfile\n".to_owned()
                }
            };
            (unit, format!("t{ext}.{ext}"), body)
        })
        .collect()
}

/// Keys added to quadlet after 4.4 that podlab gates, each in a unit of its own.
fn key_probes(image: &str) -> Vec<(UnitType, &'static str, String, String)> {
    let container = |key: &'static str, line: &str| {
        (
            UnitType::Container,
            key,
            format!("k{}.container", key.to_lowercase()),
            format!("[Container]\nImage={image}\n{line}\n"),
        )
    };
    vec![
        container("UserNS", "UserNS=keep-id"),
        container("WorkingDir", "WorkingDir=/tmp"),
        container("AutoUpdate", "AutoUpdate=local"),
        container("ShmSize", "ShmSize=64m"),
        container("GlobalArgs", "GlobalArgs=--log-level=info"),
        container("Notify", "Notify=healthy"),
        container("Pod", "Pod=kbase.pod"),
        container("Entrypoint", "Entrypoint=/bin/sh"),
        container("GroupAdd", "GroupAdd=keep-groups"),
        container("RunInit", "RunInit=true"),
        (
            UnitType::Pod,
            "ShmSize",
            "kpodshm.pod".to_owned(),
            "[Pod]\nShmSize=64m\n".to_owned(),
        ),
        (
            UnitType::Kube,
            "GlobalArgs",
            "kkubeglobal.kube".to_owned(),
            "[Kube]\nYaml=/tmp/probe.yaml\nGlobalArgs=--log-level=info\n".to_owned(),
        ),
    ]
}

/// Runs the machine's quadlet generator over `files` (name, contents); returns the names of
/// the files it turned into a service.
fn generated(machine: &Machine, tag: &str, files: &[(String, String)]) -> Vec<String> {
    let dir = machine.scratch_dir(tag);
    for (name, body) in files {
        machine.write(&format!("{dir}/{name}"), body);
    }
    let run = machine.run(&[
        "env",
        &format!("QUADLET_UNIT_DIRS={dir}"),
        QUADLET,
        "-dryrun",
        "-user",
        "-no-kmsg-log",
    ]);
    let headers: Vec<&str> = run
        .stdout
        .lines()
        .filter_map(|l| l.strip_prefix("---"))
        .collect();
    files
        .iter()
        .filter(|(name, _)| {
            let stem = name.split('.').next().unwrap_or_default();
            headers.iter().any(|h| {
                h.strip_prefix(stem)
                    .is_some_and(|rest| rest.starts_with('.') || rest.starts_with('-'))
            })
        })
        .map(|(name, _)| name.clone())
        .collect()
}

/// `podman run --device KIND=x` of the busybox image with extra args before it; the value
/// of `$PODLAB_PROBE` inside, or `None` when Podman could not resolve the device.
fn probe_device(machine: &Machine, rig: &Rig, env: &[&str], device: &str) -> Option<String> {
    let mut command: Vec<&str> = vec!["env"];
    command.extend_from_slice(env);
    command.extend_from_slice(&[
        "podman",
        "run",
        "--rm",
        "--network",
        "none",
        "--device",
        device,
        &rig.image,
        "sh",
        "-c",
        "echo \"$PODLAB_PROBE\"",
    ]);
    let run = machine.run(&command);
    (run.code == 0).then(|| run.stdout.trim().to_owned())
}

fn probe_spec(version: &str, kind: &str) -> String {
    format!(
        r#"{{"cdiVersion":"{version}","kind":"{kind}","devices":[{{"name":"x","containerEdits":{{"env":["PODLAB_PROBE={version}"]}}}}]}}"#
    )
}

/// Checks what `podlab version --json` and the capability table claim for the machine's
/// Podman against what that Podman does: which quadlet unit types and keys its generator
/// accepts, the highest `cdiVersion` `podman run` loads, CDI names in `kube play` limits, and
/// `cdi_spec_dirs`.
fn the_capability_table_holds(rig: &Rig, machine: &Machine) {
    let version: PodmanVersion = machine.podman_version().parse().expect("a version");
    let caps = Capabilities::for_version(version);
    let report = machine.podlab(&["version", "--json"]);
    report.expect_code(0);
    let report = report.json();
    let claims = &report["capabilities"];
    assert_eq!(report["server"]["podman"], version.to_string(), "{report}");

    quadlet_claims_hold(rig, machine, caps, claims);
    cdi_claims_hold(rig, machine, version, claims);
}

/// The unit types and keys quadlet accepts: what the machine's generator makes a service of.
fn quadlet_claims_hold(
    rig: &Rig,
    machine: &Machine,
    caps: Capabilities,
    claims: &serde_json::Value,
) {
    let version = caps.version();
    let claimed_types: Vec<String> = claims["quadlet_unit_types"]
        .as_array()
        .expect("quadlet_unit_types")
        .iter()
        .map(|t| t.as_str().unwrap_or_default().to_owned())
        .collect();
    let has_generator = machine.run(&["test", "-x", QUADLET]).code == 0;
    if has_generator {
        let probes = unit_type_probes(&rig.image);
        let files: Vec<(String, String)> = probes
            .iter()
            .map(|(_, f, b)| (f.clone(), b.clone()))
            .collect();
        let made = generated(machine, "probe-types", &files);
        let accepted: Vec<String> = probes
            .iter()
            .filter(|(_, file, _)| made.contains(file))
            .map(|(unit, _, _)| unit.extension().to_owned())
            .collect();
        assert_eq!(claimed_types, accepted, "unit types on podman {version}");

        let probes = key_probes(&rig.image);
        let mut files: Vec<(String, String)> = probes
            .iter()
            .map(|(_, _, f, b)| (f.clone(), b.clone()))
            .collect();
        files.push(("kbase.pod".to_owned(), "[Pod]\n".to_owned()));
        let made = generated(machine, "probe-keys", &files);
        for (unit, key, file, _) in &probes {
            assert_eq!(
                caps.has_quadlet_key(*unit, key),
                made.contains(file),
                "{key}= in a .{} unit on podman {version}",
                unit.extension()
            );
        }
    } else {
        assert!(claimed_types.is_empty(), "podman {version} has no quadlet");
    }
}

/// The highest cdiVersion, CDI names in kube play limits, and cdi_spec_dirs.
fn cdi_claims_hold(
    rig: &Rig,
    machine: &Machine,
    version: PodmanVersion,
    claims: &serde_json::Value,
) {
    // The highest cdiVersion `podman run` loads, from /etc/cdi (every version reads it).
    let mut loaded = Vec::new();
    for cdi in CdiVersion::ALL {
        machine.root(&["mkdir", "-p", "/etc/cdi"]).expect_code(0);
        machine.write_as_root(
            "/etc/cdi/podlab-probe.json",
            &probe_spec(&cdi.to_string(), "podlab.test/probe"),
        );
        if probe_device(machine, rig, &[], "podlab.test/probe=x") == Some(cdi.to_string()) {
            loaded.push(cdi);
        }
    }
    let highest = loaded.last().map(ToString::to_string);
    assert_eq!(
        claims["max_cdi_version"].as_str().map(str::to_owned),
        highest,
        "max cdiVersion on podman {version} (loaded: {loaded:?})"
    );

    // CDI names as kube play resource limits.
    machine.write_as_root(
        "/etc/cdi/podlab-probe.json",
        &probe_spec("0.5.0", "podlab.test/kube"),
    );
    let dir = machine.scratch_dir("probe-kube");
    let yaml = format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: capprobe\nspec:\n  restartPolicy: Never\n  containers:\n  - name: main\n    image: {}\n    command: [/bin/sh, -c, 'echo probe=$PODLAB_PROBE']\n    resources:\n      limits:\n        podlab.test/kube=x: 1\n",
        rig.image
    );
    machine.write(&format!("{dir}/pod.yaml"), &yaml);
    machine
        .sh("podman pod rm -f -t 0 capprobe >/dev/null 2>&1; true")
        .expect_code(0);
    let played = machine.sh(&format!(
        "podman kube play --network none {dir}/pod.yaml >/dev/null && podman wait capprobe-main >/dev/null && podman logs capprobe-main; podman kube down {dir}/pod.yaml >/dev/null 2>&1"
    ));
    let kube_cdi = played.stdout.contains("probe=0.5.0");
    assert_eq!(
        claims["kube_play_cdi_limits"].as_bool(),
        Some(kube_cdi),
        "kube play CDI limits on podman {version}: {}{}",
        played.stdout,
        played.stderr
    );
    machine
        .root(&["rm", "-f", "/etc/cdi/podlab-probe.json"])
        .expect_code(0);

    // cdi_spec_dirs, through a containers.conf of the probe's own.
    let dir = machine.scratch_dir("probe-dirs");
    machine.write(
        &format!("{dir}/probe.json"),
        &probe_spec("0.5.0", "podlab.test/dirs"),
    );
    machine.write(
        &format!("{dir}/containers.conf"),
        &format!("[containers]\npids_limit = 0\n\n[engine]\ncdi_spec_dirs = [\"{dir}\"]\n"),
    );
    let conf = format!("CONTAINERS_CONF={dir}/containers.conf");
    let honoured = probe_device(machine, rig, &[&conf], "podlab.test/dirs=x").is_some();
    assert_eq!(
        claims["cdi_spec_dirs"].as_bool(),
        Some(honoured),
        "cdi_spec_dirs on podman {version}"
    );
}

#[test]
fn the_capability_table_holds_on_podman_4_3() {
    let Some(rig) = up() else { return };
    the_capability_table_holds(rig, &rig.machine("bookworm"));
}

#[test]
fn the_capability_table_holds_on_podman_5_4() {
    let Some(rig) = up() else { return };
    the_capability_table_holds(rig, &rig.machine("trixie"));
}

#[test]
fn the_capability_table_holds_on_podman_5_8() {
    let Some(rig) = up() else { return };
    the_capability_table_holds(rig, &rig.machine("forky"));
}

// --- lingering ----------------------------------------------------------------------------------

/// With lingering off, an install says that the service stops at logout, and how to keep it.
#[test]
fn an_install_with_lingering_off_warns_on_podman_5_4() {
    let Some(rig) = up() else { return };
    let machine = rig.machine("trixie");
    let name = "no-linger";
    forget(&machine, name);
    let linger = format!("/var/lib/systemd/linger/{}", rig.user);
    machine.root(&["rm", "-f", &linger]).expect_code(0);
    let project = machine.scratch_dir("no-linger");
    let installed = machine.podlab_in(
        &project,
        &[
            "quadlet",
            "install",
            "--name",
            name,
            "--image",
            &rig.image,
            "--gpus",
            "none",
            "--",
            "sh",
            "-c",
            WAIT_FOR_TERM,
        ],
    );
    machine.root(&["touch", &linger]).expect_code(0);
    installed.expect_code(0);
    assert!(
        installed.stderr.contains("lingering is off")
            && installed.stderr.contains("loginctl enable-linger"),
        "{}",
        installed.stderr
    );
    machine
        .podlab_in(&project, &["quadlet", "rm", name])
        .expect_code(0);
    assert_gone(&machine, name);
}

// --- regressions found under the real systemd ----------------------------------------------------

/// `podlab quadlet rm` of a unit podlab did not write refuses, and leaves that unit running
/// (it used to stop the service before it looked at whose the file was).
#[test]
fn quadlet_rm_of_a_unit_podlab_did_not_write_leaves_it_running_on_podman_5_8() {
    let Some(rig) = up() else { return };
    let machine = rig.machine("forky");
    forget(&machine, FOREIGN);
    let dir = machine.scratch_dir("foreign-rm");
    let file = format!("{dir}/{FOREIGN}.container");
    machine.write(
        &file,
        &format!(
            "[Container]\nImage={}\nExec=sh -c \"{WAIT_FOR_TERM}\"\n",
            rig.image
        ),
    );
    machine
        .run(&["podman", "quadlet", "install", &file])
        .expect_code(0);
    let service = format!("{FOREIGN}.service");
    machine
        .run(&["systemctl", "--user", "start", &service])
        .expect_code(0);
    machine.wait_active(&service, "active", Duration::from_secs(30));
    // Podman's unit sits in ~/.config/containers/systemd; a copy of it in podlab's own
    // directory is not podlab's either.
    machine
        .sh(&format!(
            "mkdir -p ~/.config/containers/systemd/podlab && cp {file} ~/.config/containers/systemd/podlab/{FOREIGN}.container"
        ))
        .expect_code(0);
    let refused = machine.podlab(&["quadlet", "rm", FOREIGN]);
    refused.expect_code(1);
    assert!(
        refused.stderr.contains("was not written by podlab"),
        "{}",
        refused.stderr
    );
    assert_eq!(machine.systemctl(&["is-active", &service]), "active");
    forget(&machine, FOREIGN);
}

/// A unit whose command ignores SIGTERM (a shell as PID 1 that only waits) stops at once
/// and ends `inactive`, not `failed`: podlab's units run an init as PID 1 that passes the
/// signal on, and count the 143 that follows as a clean stop.
fn a_unit_whose_command_ignores_sigterm_stops_at_once(rig: &Rig, machine: &Machine) {
    let name = "no-trap";
    forget(machine, name);
    let project = machine.scratch_dir("no-trap");
    machine
        .podlab_in(
            &project,
            &[
                "quadlet",
                "install",
                "--name",
                name,
                "--image",
                &rig.image,
                "--gpus",
                "none",
                "--",
                "sh",
                "-c",
                "echo up && sleep 300",
            ],
        )
        .expect_code(0);
    let unit = format!("{name}.service");
    machine.wait_active(&unit, "active", Duration::from_secs(30));
    let started = std::time::Instant::now();
    machine
        .podlab_in(&project, &["quadlet", "rm", name])
        .expect_code(0);
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(5),
        "stopping {unit} took {took:?} on {}",
        machine.name
    );
    assert_gone(machine, name);
}

#[test]
fn a_unit_whose_command_ignores_sigterm_stops_at_once_on_podman_5_4() {
    let Some(rig) = up() else { return };
    a_unit_whose_command_ignores_sigterm_stops_at_once(rig, &rig.machine("trixie"));
}

#[test]
fn a_unit_whose_command_ignores_sigterm_stops_at_once_on_podman_5_8() {
    let Some(rig) = up() else { return };
    a_unit_whose_command_ignores_sigterm_stops_at_once(rig, &rig.machine("forky"));
}

/// `podlab stop` of a session whose command ignores SIGTERM takes no stop timeout: the
/// session runs an init as PID 1 (`"init": true`), on every Podman version.
#[test]
fn a_session_whose_command_ignores_sigterm_stops_at_once() {
    let Some(rig) = up() else { return };
    for name in rig.names() {
        let machine = rig.machine(&name);
        let session = "no-trap-session";
        machine
            .sh(&format!(
                "podman rm -f -t 0 {session} >/dev/null 2>&1; true"
            ))
            .expect_code(0);
        let project = machine.scratch_dir("no-trap-session");
        machine
            .podlab_in(
                &project,
                &[
                    "run",
                    "--detach",
                    "--name",
                    session,
                    "--image",
                    &rig.image,
                    "--gpus",
                    "none",
                    "--",
                    "/bin/sh",
                    "-c",
                    "echo up && sleep 300",
                ],
            )
            .expect_code(0);
        let started = std::time::Instant::now();
        machine
            .podlab_in(&project, &["stop", session])
            .expect_code(0);
        let took = started.elapsed();
        assert!(
            took < Duration::from_secs(5),
            "podlab stop took {took:?} on podman {}",
            machine.podman_version()
        );
        machine.podlab_in(&project, &["rm", session]).expect_code(0);
    }
}

/// A unit file the quadlet generator rejects (here: a key the user added by hand) makes
/// `podlab notebook start` fail with the generator's own reason, not only systemd's "not
/// found".
#[test]
fn a_unit_the_generator_rejects_is_reported_with_its_reason_on_podman_5_8() {
    let Some(rig) = up() else { return };
    let machine = rig.machine("forky");
    let name = "nb-bad";
    forget(&machine, name);
    machine
        .podlab(&[
            "notebook",
            "install",
            "--name",
            name,
            "--image",
            &rig.image,
            "--gpus",
            "none",
            "--port",
            "18889",
            "--health-cmd",
            NOTEBOOK_HEALTH,
            "--",
            "sh",
            "-c",
            NOTEBOOK_SERVER,
        ])
        .expect_code(0);
    machine.podlab(&["notebook", "stop", name]).expect_code(0);
    machine
        .sh(&format!(
            "sed -i 's/^\\[Container\\]$/[Container]\\nNoSuchKey=1/' ~/.config/containers/systemd/podlab/{name}.container"
        ))
        .expect_code(0);
    let start = machine.podlab(&["notebook", "start", name]);
    start.expect_code(2);
    assert!(
        start.stderr.contains("unsupported key 'NoSuchKey'"),
        "{}",
        start.stderr
    );
    assert!(start.stderr.contains("hint: "), "{}", start.stderr);
    let removed = machine.podlab(&["notebook", "rm", "--force", name]);
    removed.expect_code(0);
    assert_gone(&machine, name);
}

/// When `systemctl --user daemon-reload` fails (here: the user manager cannot be reached
/// through the runtime directory podlab was given), the install says so with systemctl's
/// reason and what to run once systemd answers, instead of a bare exit status.
#[test]
fn a_daemon_reload_failure_is_reported_with_systemctls_reason_on_podman_5_4() {
    let Some(rig) = up() else { return };
    let machine = rig.machine("trixie");
    let name = "no-reload";
    forget(&machine, name);
    // A runtime directory whose manager socket is no socket: systemctl cannot reach systemd.
    machine
        .sh("rm -rf /tmp/dead-runtime && mkdir -p -m 700 /tmp/dead-runtime/systemd && touch /tmp/dead-runtime/systemd/private")
        .expect_code(0);
    let project = machine.scratch_dir("no-reload");
    let socket = format!(
        "CONTAINER_HOST=unix:///run/user/{}/podman/podman.sock",
        rig.uid
    );
    let podlab = rig.podlab.clone();
    let installed = machine.run(&[
        "env",
        "-C",
        &project,
        "-u",
        "DBUS_SESSION_BUS_ADDRESS",
        "XDG_RUNTIME_DIR=/tmp/dead-runtime",
        &socket,
        &podlab,
        "quadlet",
        "install",
        "--name",
        name,
        "--image",
        &rig.image,
        "--gpus",
        "none",
        "--",
        "sh",
        "-c",
        WAIT_FOR_TERM,
    ]);
    installed.expect_code(2);
    assert!(
        installed
            .stderr
            .contains("systemd did not reload the unit files, so no-reload.service is not loaded")
            && installed.stderr.contains("daemon-reload failed")
            && installed.stderr.contains("hint: the unit file is in place"),
        "{}",
        installed.stderr
    );
    machine
        .podlab_in(&project, &["quadlet", "rm", name])
        .expect_code(0);
    assert_gone(&machine, name);
}

/// Right after `podlab cdi install` added the user's directory to `cdi_spec_dirs`, `podlab run
/// --gpus all` gets the GPU, though the user's Podman API service was running since before
/// the install (it reads containers.conf once, when it starts).
#[test]
fn podlab_run_right_after_a_user_cdi_install_sees_the_spec_on_podman_5_8() {
    let Some(rig) = up() else { return };
    let machine = rig.machine("forky");
    reset_user_config(&machine);
    // The socket-activated service, up before the install.
    machine.podlab(&["version"]).expect_code(0);
    assert_eq!(
        machine.systemctl(&["is-active", "podman.service"]),
        "active"
    );
    let installed = machine.podlab(&["cdi", "install", "--driver-root", &rig.nvidia_root]);
    installed.expect_code(0);
    assert!(
        installed.stderr.contains("restarted podman.service"),
        "{}",
        installed.stderr
    );
    let job = machine.podlab(&[
        "run",
        "--image",
        &rig.glibc_image,
        "--gpus",
        "all",
        "--driver-root",
        &rig.nvidia_root,
        "--",
        "sh",
        "-c",
        CDI_CHECK,
    ]);
    reset_user_config(&machine);
    job.expect_code(0);
    assert!(job.stdout.contains("ok libcuda.so.1"), "{}", job.stdout);
}

/// On Podman 4.3.1, which has no quadlet, `podlab quadlet install` writes a plain systemd
/// service (as `podman generate systemd --new` would), enabled and started: it reaches
/// `active` and serves its port; `quadlet rm` stops it at once, disables it and leaves
/// nothing.
#[test]
fn a_unit_on_podman_4_3_is_a_plain_service_that_runs_and_is_removed_whole() {
    let Some(rig) = up() else { return };
    let machine = rig.machine("bookworm");
    let name = "plain-unit";
    forget(&machine, name);
    machine
        .sh(&format!(
            "systemctl --user disable {name}.service 2>/dev/null; rm -f ~/.config/systemd/user/{name}.service; systemctl --user daemon-reload; true"
        ))
        .expect_code(0);
    let project = machine.scratch_dir("plain-unit");
    let installed = machine.podlab_in(
        &project,
        &[
            "quadlet", "install", "--name", name, "--image", &rig.image, "--gpus", "none", "-p",
            "127.0.0.1:18082:8080", "--", "/bin/sh", "-c",
            "mkdir -p /tmp/www && echo plain-ok > /tmp/www/index.html && exec httpd -f -p 8080 -h /tmp/www",
        ],
    );
    installed.expect_code(0);
    let file = format!("{}/.config/systemd/user/{name}.service", machine.home());
    assert_eq!(installed.stdout.trim(), file);
    assert!(
        installed.stderr.contains("podman 4.3.1 has no quadlet"),
        "{}",
        installed.stderr
    );
    let unit = format!("{name}.service");
    machine.wait_active(&unit, "active", Duration::from_secs(60));
    assert_eq!(machine.systemctl(&["is-enabled", &unit]), "enabled");
    assert_eq!(fetch(&machine, "http://127.0.0.1:18082/"), "plain-ok\n");

    let started = std::time::Instant::now();
    machine
        .podlab_in(&project, &["quadlet", "rm", name])
        .expect_code(0);
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(5),
        "removing {unit} took {took:?}"
    );
    machine.run(&["test", "-e", &file]).expect_code(1);
    let wants = machine.sh(&format!(
        "ls ~/.config/systemd/user/default.target.wants/{unit} 2>/dev/null; true"
    ));
    assert_eq!(wants.stdout, "", "{unit} left enabled");
    assert_gone(&machine, name);
}
