//! End-to-end: `podlab shell` on a real terminal. tmux gives the test user's podlab a
//! pseudo-terminal; the test types into it (`send-keys`) and reads the screen
//! (`capture-pane`), as a person at the keyboard would.

#![allow(
    clippy::expect_used,
    reason = "test helpers: a failed step must fail the test at once"
)]

mod common;

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{TestHost, host, shared_socket, wait_for};

/// A detached tmux session on a server of its own (not the default one a person may use),
/// whose socket lives in a directory of the test's; the server is killed when dropped.
struct Tmux {
    socket: PathBuf,
    session: String,
}

impl Tmux {
    /// Starts `command` (run by `sh -c`) in a 120x30 window, with the server's socket in `dir`.
    fn start(name: &str, dir: &Path, command: &str) -> Self {
        let tmux = Self {
            socket: dir.join("tmux.sock"),
            session: name.to_owned(),
        };
        let status = tmux
            .command()
            .args(["new-session", "-d", "-s", name, "-x", "120", "-y", "30"])
            .arg(command)
            .status()
            .expect("run tmux (tests/host/provision.sh installs it)");
        assert!(status.success(), "tmux new-session failed");
        tmux
    }

    fn command(&self) -> Command {
        let mut command = Command::new("tmux");
        command.arg("-S").arg(&self.socket);
        command
    }

    fn tmux(&self, args: &[&str]) -> std::process::Output {
        self.command().args(args).output().expect("run tmux")
    }

    /// Types `text` literally, then Enter.
    fn type_line(&self, text: &str) {
        assert!(
            self.tmux(&["send-keys", "-t", &self.session, "-l", text])
                .status
                .success()
        );
        self.keys("Enter");
    }

    /// Sends tmux key names (`Enter`, `C-c`).
    fn keys(&self, keys: &str) {
        assert!(
            self.tmux(&["send-keys", "-t", &self.session, keys])
                .status
                .success()
        );
    }

    /// What the window shows now (empty once the session has ended).
    fn screen(&self) -> String {
        String::from_utf8_lossy(
            &self
                .tmux(&["capture-pane", "-p", "-t", &self.session])
                .stdout,
        )
        .into_owned()
    }

    /// Waits until the screen shows `text`; the screen, for the next check.
    #[track_caller]
    fn wait_for_text(&self, text: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let screen = self.screen();
            if screen.contains(text) {
                return screen;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {text:?} on the screen:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until a shell prompt (a line ending in `$` or `#`) is the last line shown.
    #[track_caller]
    fn wait_for_prompt(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let screen = self.screen();
            let last = screen.lines().rev().find(|line| !line.trim().is_empty());
            if last.is_some_and(|line| line.trim_end().ends_with(['$', '#'])) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for a prompt:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Types `line` until the screen shows `text`.
    #[track_caller]
    fn ask_until(&self, line: &str, text: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            self.type_line(line);
            let asked = Instant::now();
            while asked.elapsed() < Duration::from_secs(1) {
                if self.screen().contains(text) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {text:?} on the screen:\n{}",
                self.screen()
            );
        }
    }

    fn resize(&self, cols: u16, rows: u16) {
        let (cols, rows) = (cols.to_string(), rows.to_string());
        let resized = self.tmux(&[
            "resize-window",
            "-t",
            &self.session,
            "-x",
            &cols,
            "-y",
            &rows,
        ]);
        assert!(resized.status.success(), "{resized:?}");
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.tmux(&["kill-server"]);
    }
}

/// Single-quotes `text` for `sh`.
fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// A pane command: in `project`, record the terminal settings, run `podlab ARGS` as the
/// test user, then record its exit status and the terminal settings again under `marks`.
fn pane_command(host: &TestHost, project: &Path, marks: &Path, args: &[&str]) -> String {
    let env = [
        format!("HOME={}", host.home.display()),
        format!("USER={}", host.user),
        format!("LOGNAME={}", host.user),
        "PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin".to_owned(),
        format!("XDG_RUNTIME_DIR={}", host.runtime_dir.display()),
        "PODMAN_IGNORE_CGROUPSV1_WARNING=1".to_owned(),
        "TERM=xterm".to_owned(),
    ];
    let mut podlab = vec![host.podlab.display().to_string()];
    podlab.extend(args.iter().map(|arg| (*arg).to_owned()));
    let quoted = |words: &[String]| words.iter().map(|word| quote(word)).collect::<Vec<_>>();
    let mark = |name: &str| quote(&marks.join(name).display().to_string());
    format!(
        "cd {project} && stty -g > {before}; runuser -u {user} -- env -i {env} {podlab}; echo $? > {status}; stty -g > {after}; touch {done}",
        project = quote(&project.display().to_string()),
        before = mark("stty-before"),
        user = quote(&host.user),
        env = quoted(&env).join(" "),
        podlab = quoted(&podlab).join(" "),
        status = mark("status"),
        after = mark("stty-after"),
        done = mark("done"),
    )
}

/// The exit status of `podlab`, once it has exited.
#[track_caller]
fn exit_status(marks: &Path) -> i32 {
    wait_for("podlab shell to exit", || marks.join("done").exists());
    let text = fs::read_to_string(marks.join("status")).expect("status file");
    text.trim().parse().expect("a number")
}

/// The terminal settings after podlab are those from before it: raw mode was undone.
#[track_caller]
fn assert_terminal_restored(marks: &Path) {
    let read = |name: &str| fs::read_to_string(marks.join(name)).expect(name);
    assert_eq!(read("stty-after"), read("stty-before"));
}

/// The project's containers, as the user's Podman lists them.
fn containers(host: &TestHost, project: &Path) -> Vec<String> {
    let name = project
        .file_name()
        .map(|name| name.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    let filter = format!("label=io.podlab.project={name}");
    let run = host
        .command(
            "podman",
            &[
                "ps",
                "-a",
                "--filter",
                &filter,
                "--format",
                "{{.Names}} {{.Status}}",
            ],
        )
        .output();
    run.expect_code(0)
        .stdout
        .lines()
        .map(str::to_owned)
        .collect()
}

/// A root-owned directory for the pane's marks, out of the container's sight.
fn marks_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("podlab-e2e-{}-{name}-marks", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).expect("marks dir");
    dir
}

fn remove_dirs(dirs: &[&Path]) {
    for dir in dirs {
        let _ = fs::remove_dir_all(dir);
    }
}

#[test]
fn an_interactive_shell_runs_commands_and_exits_with_their_status() {
    let Some(host) = host() else { return };
    let _socket = shared_socket();
    let project = host.user_dir("shell");
    let marks = marks_dir("shell");
    let args = ["shell", "--gpus", "none", "--image", &host.image];
    let tmux = Tmux::start(
        "shell",
        &marks,
        &pane_command(host, &project, &marks, &args),
    );

    tmux.wait_for_prompt();
    tmux.type_line("echo hello-$((6*7))");
    // The command line shows `$((6*7))`: only the shell's output shows 42.
    tmux.wait_for_text("hello-42");

    // The window size reached the container's TTY at start, and again after a resize (sent
    // on SIGWINCH, so it may land just after the next line typed: ask until it shows).
    tmux.ask_until("echo size=$(stty size)", "size=30 120");
    tmux.resize(100, 20);
    tmux.ask_until("echo size=$(stty size)", "size=20 100");

    // Ctrl-C interrupts the command in the container; podlab and the shell carry on.
    tmux.type_line("sleep 3217");
    wait_for("sleep to run in the container", || {
        // keep-id: the container's processes run as the test user on the host.
        Command::new("pgrep")
            .args(["-u", &host.user, "-f", "^sleep 3217$"])
            .output()
            .is_ok_and(|found| found.status.success())
    });
    tmux.keys("C-c");
    tmux.type_line("echo interrupted=$?");
    tmux.wait_for_text("interrupted=130");

    tmux.type_line("touch /workspace/from-shell; exit 7");
    assert_eq!(exit_status(&marks), 7, "screen:\n{}", tmux.screen());
    assert_terminal_restored(&marks);

    let file = fs::metadata(project.join("from-shell")).expect("the file made in the shell");
    assert_eq!((file.uid(), file.gid()), (host.uid, host.gid));
    wait_for("the shell's container to be removed", || {
        containers(host, &project).is_empty()
    });
    remove_dirs(&[&project, &marks]);
}

#[test]
fn keep_leaves_the_named_container_and_a_command_replaces_the_shell() {
    let Some(host) = host() else { return };
    let _socket = shared_socket();
    let project = host.user_dir("shell-keep");
    let marks = marks_dir("shell-keep");
    let name = format!("podlab-e2e-{}-kept", std::process::id());
    let args = [
        "shell",
        "--gpus",
        "none",
        "--image",
        &host.image,
        "--keep",
        &name,
        "--",
        "sh",
        "-c",
        "test -t 0 && exit 3",
    ];
    let _tmux = Tmux::start(
        "shell-keep",
        &marks,
        &pane_command(host, &project, &marks, &args),
    );

    // `test -t 0` passes: the command has a TTY of its own.
    assert_eq!(exit_status(&marks), 3);
    assert_terminal_restored(&marks);
    let left = containers(host, &project);
    assert!(
        left.len() == 1 && left[0].starts_with(&format!("{name} Exited (3)")),
        "{left:?}"
    );
    host.command("podman", &["rm", "-f", &name])
        .output()
        .expect_code(0);
    remove_dirs(&[&project, &marks]);
}

#[test]
fn without_a_terminal_shell_fails_and_points_to_run() {
    let Some(host) = host() else { return };
    let _socket = shared_socket();
    let run = host
        .podlab(&["shell", "--gpus", "none", "--image", &host.image])
        .output();
    run.expect_code(1);
    assert!(
        run.stderr.contains("stdin is not")
            && run.stderr.contains("hint: ")
            && run.stderr.contains("podlab run"),
        "{}",
        run.stderr
    );
    assert!(run.stdout.is_empty());
}

/// `podlab exec -it` gives a second shell in a running session: a TTY at our window size,
/// Ctrl-C for the command in it, and the shell's exit status; the session keeps running.
#[test]
fn exec_it_opens_a_shell_in_a_running_session() {
    let Some(host) = host() else { return };
    let _socket = shared_socket();
    let project = host.user_dir("exec-it");
    let marks = marks_dir("exec-it");
    let name = format!("podlab-e2e-exec{}", std::process::id());
    let started = host
        .podlab(&[
            "run",
            "--detach",
            "--name",
            &name,
            "--gpus",
            "none",
            "--image",
            &host.image,
            "--",
            "sleep",
            "600",
        ])
        .cwd(&project)
        .output();
    started.expect_code(0);
    let _guard = common::ContainerGuard {
        host,
        names: vec![name.clone()],
    };
    let args = ["exec", "-it", &name, "--", "sh"];
    let tmux = Tmux::start(
        "exec-it",
        &marks,
        &pane_command(host, &project, &marks, &args),
    );
    tmux.wait_for_prompt();
    tmux.type_line("echo tty=$(tty) hello-$((6*7))");
    tmux.wait_for_text("hello-42");
    assert!(tmux.screen().contains("tty=/dev/pts/"), "{}", tmux.screen());
    tmux.ask_until("echo size=$(stty size)", "size=30 120");
    tmux.type_line("sleep 3218");
    wait_for("sleep to run in the session", || {
        Command::new("pgrep")
            .args(["-u", &host.user, "-f", "^sleep 3218$"])
            .output()
            .is_ok_and(|found| found.status.success())
    });
    tmux.keys("C-c");
    tmux.type_line("echo interrupted=$?");
    tmux.wait_for_text("interrupted=130");
    tmux.type_line("exit 5");
    assert_eq!(exit_status(&marks), 5, "screen:\n{}", tmux.screen());
    assert_terminal_restored(&marks);
    let state = host
        .command(
            "podman",
            &["inspect", "--format", "{{.State.Status}}", &name],
        )
        .output();
    assert_eq!(state.expect_code(0).stdout.trim(), "running");
    remove_dirs(&[&project, &marks]);
}

#[test]
fn l2_sigquit_to_a_shell_stops_and_removes_its_container() {
    let Some(host) = host() else { return };
    let _socket = shared_socket();
    let project = host.user_dir("shell-quit");
    let marks = marks_dir("shell-quit");
    let name = format!("podlab-e2e-quit{}", std::process::id());
    let args = [
        "shell",
        "--gpus",
        "none",
        "--image",
        &host.image,
        "--name",
        &name,
    ];
    let tmux = Tmux::start(
        "shell-quit",
        &marks,
        &pane_command(host, &project, &marks, &args),
    );
    tmux.wait_for_prompt();
    // SIGQUIT to podlab itself (Ctrl-\ would reach the container's TTY as a byte).
    let pattern = format!("{} shell .*--name {name}$", host.podlab.display());
    let mut pid = String::new();
    wait_for("podlab's process", || {
        pid = Command::new("pgrep")
            .args(["-u", &host.user, "-f", &pattern])
            .output()
            .map(|found| String::from_utf8_lossy(&found.stdout).trim().to_owned())
            .unwrap_or_default();
        !pid.is_empty()
    });
    Command::new("kill")
        .args(["-QUIT", &pid])
        .status()
        .expect("kill");
    assert_eq!(exit_status(&marks), 131, "screen:\n{}", tmux.screen());
    assert_terminal_restored(&marks);
    assert!(
        containers(host, &project).is_empty(),
        "the shell's container is left: {:?}",
        containers(host, &project)
    );
    remove_dirs(&[&project, &marks]);
}
