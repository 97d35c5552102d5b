//! The systemd rig from the tests' side: three Debian machines booted by `tests/host/rig.sh`,
//! each with a real systemd as PID 1, a lingering user manager and its own real Podman
//! (bookworm 4.3.1, trixie 5.4.2, forky 5.8.6). Commands run as the machine's user inside a
//! transient user unit (`rig.sh run`), so seccomp, cgroups and the user bus are a real unit's.
//!
//! The first test to ask for the rig builds podlab for glibc 2.34 (`rig.sh binary`: the host's
//! own build does not start on bookworm's glibc), boots the machines (`rig.sh up`, idempotent:
//! machines may stay up after the tests) and loads the host test user's images into each
//! machine user's storage. Without `/etc/podlab-test-rig.env` (written by `rig.sh build`, which
//! provisioning runs) the tests skip with the reason, unless `PODLAB_E2E=1` makes that a failure.

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
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use crate::common::{Run, TestHost, host};

const RIG_ENV: &str = "/etc/podlab-test-rig.env";

/// The machines and what the tests need to know about them.
#[derive(Debug)]
pub struct Rig {
    script: PathBuf,
    pub user: String,
    pub uid: u32,
    /// podlab inside the machines.
    pub podlab: String,
    /// The NVIDIA driver root, bound read-only at the same path in every machine.
    pub nvidia_root: String,
    /// Machine name to its Podman version, as the root's package database says.
    podman: HashMap<String, String>,
    /// One lock per machine: a test holds its machine for its whole run (some change the
    /// user's Podman configuration), tests on different machines run side by side.
    locks: HashMap<String, Mutex<()>>,
    /// The host test user's images, loaded into every machine.
    pub image: String,
    pub glibc_image: String,
}

/// One machine, held by one test.
#[derive(Debug)]
pub struct Machine {
    rig: &'static Rig,
    pub name: String,
    _held: MutexGuard<'static, ()>,
}

/// The rig, up and loaded, or `None` (after printing why) when the tests must skip.
pub fn rig() -> Option<&'static Rig> {
    static RIG: OnceLock<Result<Rig, String>> = OnceLock::new();
    let host = host()?;
    match RIG.get_or_init(|| load(host)) {
        Ok(rig) => Some(rig),
        Err(reason) if std::env::var("PODLAB_E2E").as_deref() == Ok("1") => {
            panic!("PODLAB_E2E=1 but the systemd rig is not usable: {reason}")
        }
        Err(reason) => {
            eprintln!(
                "skipping systemd rig test: {reason} (run sudo tests/host/provision.sh; PODLAB_E2E=1 makes this a failure)"
            );
            None
        }
    }
}

fn load(host: &TestHost) -> Result<Rig, String> {
    let text = fs::read_to_string(RIG_ENV).map_err(|err| format!("{RIG_ENV}: {err}"))?;
    let vars: HashMap<&str, &str> = text
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| line.split_once('='))
        .collect();
    let get = |key: &str| {
        vars.get(key)
            .map(|v| (*v).to_owned())
            .ok_or(format!("{RIG_ENV} lacks {key}"))
    };
    let names = get("PODLAB_RIG_MACHINES")?;
    let mut podman = HashMap::new();
    let mut locks = HashMap::new();
    for name in names.split_whitespace() {
        podman.insert(
            name.to_owned(),
            get(&format!("PODLAB_RIG_PODMAN_{}", name.to_uppercase()))?,
        );
        locks.insert(name.to_owned(), Mutex::new(()));
    }
    let rig = Rig {
        script: PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/host/rig.sh"),
        user: get("PODLAB_RIG_USER")?,
        uid: get("PODLAB_RIG_UID")?
            .parse()
            .map_err(|err| format!("PODLAB_RIG_UID: {err}"))?,
        podlab: get("PODLAB_RIG_PODLAB")?,
        nvidia_root: get("PODLAB_RIG_NVIDIA_ROOT")?,
        podman,
        locks,
        image: host.image.clone(),
        glibc_image: host.glibc_image.clone(),
    };
    let started = Instant::now();
    let built = rig.script_run(&["binary"]);
    if built.code != 0 {
        return Err(format!("rig.sh binary failed:\n{}", built.stderr));
    }
    let mut up = vec!["up"];
    up.extend(names.split_whitespace());
    let booted = rig.script_run(&up);
    if booted.code != 0 {
        return Err(format!("rig.sh up failed:\n{}", booted.stderr));
    }
    for name in names.split_whitespace() {
        for image in [&rig.image, &rig.glibc_image] {
            load_image(&rig, host, name, image)?;
        }
    }
    eprintln!(
        "rig: binary, machines and images ready in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(rig)
}

/// Loads `image` from the host test user's storage into the machine user's, unless the
/// machine has it already under the same image ID.
fn load_image(rig: &Rig, host: &TestHost, machine: &str, image: &str) -> Result<(), String> {
    let want = host
        .command(
            "podman",
            &["image", "inspect", "--format", "{{.Id}}", image],
        )
        .output();
    if want.code != 0 {
        return Err(format!("the host has no {image}: {}", want.stderr));
    }
    let have = rig.user_run(
        machine,
        &["podman", "image", "inspect", "--format", "{{.Id}}", image],
        None,
    );
    if have.code == 0 && have.stdout.trim() == want.stdout.trim() {
        return Ok(());
    }
    let saved = host.command("podman", &["save", image]).output_bytes();
    if saved.0 != 0 {
        return Err(format!("podman save {image} failed"));
    }
    let loaded = rig.user_run(machine, &["podman", "load"], Some(&saved.1));
    if loaded.code != 0 {
        return Err(format!(
            "podman load into {machine} failed: {}",
            loaded.stderr
        ));
    }
    Ok(())
}

impl Rig {
    fn script_run(&self, args: &[&str]) -> Run {
        let output = Command::new("bash")
            .arg(&self.script)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run rig.sh");
        Run::from(output)
    }

    fn user_run(&self, machine: &str, command: &[&str], stdin: Option<&[u8]>) -> Run {
        self.transient("run", machine, command, stdin)
    }

    fn transient(&self, how: &str, machine: &str, command: &[&str], stdin: Option<&[u8]>) -> Run {
        let mut child = Command::new("bash")
            .arg(&self.script)
            .args([how, machine, "--"])
            .args(command)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run rig.sh");
        if let Some(bytes) = stdin {
            let mut pipe = child.stdin.take().expect("stdin");
            pipe.write_all(bytes).expect("write stdin");
        }
        Run::from(child.wait_with_output().expect("wait for rig.sh"))
    }

    /// The machine `name`, held by the calling test until it drops it.
    pub fn machine(&'static self, name: &str) -> Machine {
        let lock = self
            .locks
            .get(name)
            .unwrap_or_else(|| panic!("no machine {name} in {RIG_ENV}"));
        Machine {
            rig: self,
            name: name.to_owned(),
            _held: lock
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        }
    }

    /// The machines' names, bookworm first.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.podman.keys().cloned().collect();
        names.sort_by_key(|name| self.podman[name].clone());
        names
    }

    /// The rig's podlab binary on the host.
    pub fn binary() -> PathBuf {
        PathBuf::from("/var/cache/podlab-test/rig/bin/podlab")
    }
}

impl Machine {
    /// The machine's Podman version (`4.3.1`, ...).
    pub fn podman_version(&self) -> &str {
        &self.rig.podman[&self.name]
    }

    pub fn home(&self) -> String {
        format!("/home/{}", self.rig.user)
    }

    /// CMD as the machine's user, in a transient user unit.
    pub fn run(&self, command: &[&str]) -> Run {
        self.rig.user_run(&self.name, command, None)
    }

    /// CMD as the machine's user, with `stdin`.
    pub fn run_with_input(&self, command: &[&str], stdin: &[u8]) -> Run {
        self.rig.user_run(&self.name, command, Some(stdin))
    }

    /// A shell script as the machine's user.
    pub fn sh(&self, script: &str) -> Run {
        self.run(&["sh", "-c", script])
    }

    /// CMD as root, in a transient system unit.
    pub fn root(&self, command: &[&str]) -> Run {
        self.rig.transient("exec", &self.name, command, None)
    }

    /// podlab ARGS as the machine's user, in `dir` (the user's home when `None`).
    pub fn podlab_in(&self, dir: &str, args: &[&str]) -> Run {
        let mut command = vec!["env", "-C", dir, self.rig.podlab.as_str()];
        command.extend_from_slice(args);
        self.run(&command)
    }

    pub fn podlab(&self, args: &[&str]) -> Run {
        let home = self.home();
        self.podlab_in(&home, args)
    }

    /// `systemctl --user ARGS` as the machine's user; its stdout, trimmed.
    pub fn systemctl(&self, args: &[&str]) -> String {
        let mut command = vec!["systemctl", "--user"];
        command.extend_from_slice(args);
        self.run(&command).stdout.trim().to_owned()
    }

    /// Waits until `systemctl --user is-active UNIT` prints `state`.
    #[track_caller]
    pub fn wait_active(&self, unit: &str, state: &str, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            let now = self.systemctl(&["is-active", unit]);
            if now == state {
                return;
            }
            if Instant::now() > deadline {
                let status = self.run(&["systemctl", "--user", "status", "--no-pager", unit]);
                let journal =
                    self.run(&["journalctl", "--user", "-u", unit, "--no-pager", "-n", "40"]);
                panic!(
                    "{unit} on {}: {now}, not {state}, after {within:?}\n{}\n{}{}",
                    self.name, status.stdout, journal.stdout, journal.stderr
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Writes `contents` to `path` as the machine's user.
    pub fn write(&self, path: &str, contents: &str) {
        self.run_with_input(
            &["sh", "-c", "cat > \"$1\"", "sh", path],
            contents.as_bytes(),
        )
        .expect_code(0);
    }

    /// Writes `contents` to `path` as root.
    pub fn write_as_root(&self, path: &str, contents: &str) {
        self.rig
            .transient(
                "exec",
                &self.name,
                &["sh", "-c", "cat > \"$1\"", "sh", path],
                Some(contents.as_bytes()),
            )
            .expect_code(0);
    }

    /// A fresh directory in the user's home, empty.
    pub fn scratch_dir(&self, tag: &str) -> String {
        let dir = format!("{}/{tag}", self.home());
        self.run(&["sh", "-c", &format!("rm -rf '{dir}' && mkdir -p '{dir}'")])
            .expect_code(0);
        dir
    }
}
