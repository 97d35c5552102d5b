//! Interactive sessions: a container with a TTY, driven from our terminal over the socket.
//!
//! The container gets its own TTY (`terminal: true`) and our terminal goes raw, so every byte
//! typed (Ctrl-C's 0x03 included) reaches the container's TTY unchanged and the container
//! decides what it means: Ctrl-C interrupts the command running in the shell, not podlab. The
//! attach stream is then plain bytes both ways.
//!
//! The order matters: attach before start, so the first prompt is not lost; the window size
//! between attach and start (attaching sets up the container's TTY), so the command starts at
//! our size, then again once running and on every `SIGWINCH`. The container's exit code
//! becomes ours. Every way out restores the terminal (a guard) and leaves no container
//! behind: on an error, or when podlab itself is told to stop (`SIGHUP` from a closed
//! terminal, `SIGTERM`, `SIGQUIT`, a `SIGINT` sent with kill, since raw mode makes Ctrl-C a
//! byte), the container is stopped and removed.
//!
//! Our stdin is read on a plain thread rather than with `tokio::io::stdin`: tokio's reader
//! blocks runtime shutdown until its pending `read` returns, which on a terminal means until
//! the next key press after the session ended.

use std::convert::Infallible;
use std::future::Future;
use std::pin::pin;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::signal::unix::{Signal, SignalKind};
use tokio::sync::mpsc;

use crate::emit::podman::create_body;
use crate::engine::{Engine, Stdio};
use crate::host::signals::{self, Interrupt, StopSignals};
use crate::host::terminal::{self, RawMode, Size};
use crate::plan::ContainerPlan;
use crate::session::Session;
use crate::{Error, Result};

/// What `podlab shell` runs when no command is given: the image's `$SHELL`, else bash, else
/// `sh` (busybox and Alpine images have only `/bin/sh`). Only `/bin/sh` itself is assumed.
pub const SHELL_SCRIPT: &str = r#"for shell in "${SHELL:-}" /bin/bash /bin/sh; do if [ -n "$shell" ] && [ -x "$shell" ]; then exec "$shell"; fi; done; echo "podlab: no shell found in this image" >&2; exit 127"#;

/// How long an interrupted session's container gets between SIGTERM and SIGKILL: none. Its
/// process is a shell as PID 1, which ignores SIGTERM, so waiting would only delay the
/// SIGKILL; and whoever sent podlab the signal may not wait long (`runuser` and `su` pass a
/// hangup on and kill their child 2 s later), while the removal must finish before that.
const STOP_TIMEOUT_SECS: u32 = 0;

/// After the container exits, how long its output may still take to arrive.
const DRAIN: Duration = Duration::from_secs(2);

/// After the output stream ends, how long the container may take to report its exit before
/// the session counts as broken (a detached or lost stream).
const EXIT_AFTER_EOF: Duration = Duration::from_secs(10);

/// The command for an interactive shell: [`SHELL_SCRIPT`] under `/bin/sh`.
pub fn default_shell_command() -> Vec<String> {
    vec!["/bin/sh".into(), "-c".into(), SHELL_SCRIPT.into()]
}

/// Runs `session`'s container attached to our terminal; returns its exit code (or 128 + the
/// signal's number when podlab was told to stop). Our stdin must be a terminal.
pub async fn run_interactive<E: Engine>(
    engine: &E,
    session: &Session,
    plan: &ContainerPlan,
) -> Result<i32> {
    let mut terminal = Terminal::open()?;
    let console = terminal.console()?;
    let stop = async move { terminal.signals.next_stop(&terminal.resize_tx).await };
    let ended = drive(engine, session, plan, console, stop).await;
    // The terminal is restored (here, or by the guard on the way out of `?`) before anything
    // more is printed, errors included.
    drop(terminal.raw);
    Ok(ended_code(
        ended?,
        &format!("stopped and removed {}", plan.name),
    ))
}

/// Runs `command` in the running container `container` (named `name`) with a TTY, attached to
/// our terminal; its exit code (or 128 + the signal's number when podlab was told to stop,
/// which hangs up the command's terminal). Our stdin must be a terminal.
pub async fn exec_interactive<E: Engine>(
    engine: &E,
    container: &str,
    name: &str,
    command: &[String],
) -> Result<i32> {
    let mut terminal = Terminal::open()?;
    let console = terminal.console()?;
    let exec_id = engine.exec_create(container, command, true).await?;
    let peer = ExecSession {
        engine,
        exec_id: &exec_id,
    };
    let ended = tokio::select! {
        code = converse(&peer, name, console) => code.map(Ended::Exited),
        interrupt = terminal.signals.next_stop(&terminal.resize_tx) => Ok(Ended::Stopped(interrupt)),
    };
    drop(terminal.raw);
    Ok(ended_code(
        ended?,
        &format!("hung up the command in {name}"),
    ))
}

/// Our terminal, raw, with the signals a session handles.
struct Terminal {
    signals: Signals,
    resize_tx: mpsc::UnboundedSender<Size>,
    resizes: Option<mpsc::UnboundedReceiver<Size>>,
    raw: RawMode,
}

impl Terminal {
    /// Raw from before the command exists: keys typed while it starts are not echoed twice.
    fn open() -> Result<Self> {
        let signals = Signals::install()?;
        let (resize_tx, resizes) = mpsc::unbounded_channel();
        let raw = RawMode::stdin()?;
        if let Some(size) = terminal::stdin_size() {
            let _ = resize_tx.send(size);
        }
        Ok(Self {
            signals,
            resize_tx,
            resizes: Some(resizes),
            raw,
        })
    }

    /// Our stdin, stdout and window sizes, for one conversation.
    fn console(&mut self) -> Result<Console<tokio::io::Stdout>> {
        let resizes = self
            .resizes
            .take()
            .ok_or_else(|| Error::env("the terminal has one console"))?;
        Ok(Console {
            input: read_stdin()?,
            output: tokio::io::stdout(),
            resizes,
        })
    }
}

/// The exit code a session ended with; `what` says what stopping it did.
fn ended_code(ended: Ended, what: &str) -> i32 {
    match ended {
        Ended::Exited(code) => code,
        Ended::Stopped(interrupt) => {
            // Not after a hangup: the terminal is gone, and the log writer treats a failed
            // write to stderr as fatal.
            if interrupt.signal != "SIGHUP" {
                tracing::warn!("{}: {what}", interrupt.signal);
            }
            interrupt.code
        }
    }
}

/// The engine calls a session makes. Every [`Engine`] makes them; the unit tests' fake
/// container makes only these, so it does not follow every change of the full trait.
trait SessionCalls {
    fn create_container(&self, body: &serde_json::Value) -> impl Future<Output = Result<String>>;
    fn attach(&self, id: &str, stdin: bool) -> impl Future<Output = Result<Stdio>>;
    fn start_container(&self, id: &str) -> impl Future<Output = Result<()>>;
    fn wait_container(&self, id: &str) -> impl Future<Output = Result<i32>>;
    fn stop_and_remove(&self, id: &str, timeout_secs: u32) -> impl Future<Output = Result<()>>;
    fn resize(&self, id: &str, rows: u16, cols: u16) -> impl Future<Output = Result<()>>;
}

impl<E: Engine> SessionCalls for E {
    fn create_container(&self, body: &serde_json::Value) -> impl Future<Output = Result<String>> {
        Engine::create_container(self, body)
    }
    fn attach(&self, id: &str, stdin: bool) -> impl Future<Output = Result<Stdio>> {
        Engine::attach(self, id, stdin)
    }
    fn start_container(&self, id: &str) -> impl Future<Output = Result<()>> {
        Engine::start_container(self, id)
    }
    fn wait_container(&self, id: &str) -> impl Future<Output = Result<i32>> {
        Engine::wait_container(self, id)
    }
    fn stop_and_remove(&self, id: &str, timeout_secs: u32) -> impl Future<Output = Result<()>> {
        Engine::stop_and_remove(self, id, timeout_secs)
    }
    fn resize(&self, id: &str, rows: u16, cols: u16) -> impl Future<Output = Result<()>> {
        Engine::resize(self, id, rows, cols)
    }
}

/// Where a session's bytes come from and go to.
struct Console<O> {
    /// What is typed, in chunks; closed at end of input.
    input: mpsc::Receiver<Vec<u8>>,
    output: O,
    /// Window sizes to send, the current one first.
    resizes: mpsc::UnboundedReceiver<Size>,
}

/// How a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ended {
    /// The container exited with this code.
    Exited(i32),
    /// podlab was told to stop, and stopped and removed the container.
    Stopped(Interrupt),
}

/// Creates the container, converses until it exits or `stop` resolves, and cleans up.
async fn drive<E: SessionCalls, O: AsyncWrite + Unpin>(
    engine: &E,
    session: &Session,
    plan: &ContainerPlan,
    console: Console<O>,
    stop: impl Future<Output = Interrupt>,
) -> Result<Ended> {
    let body = create_body(session, plan);
    tracing::debug!(body = %body, "creating the container");
    let id = engine.create_container(&body).await?;
    let peer = NewContainer { engine, id: &id };
    let outcome = tokio::select! {
        outcome = converse(&peer, &plan.name, console) => outcome,
        interrupt = stop => {
            engine.stop_and_remove(&id, STOP_TIMEOUT_SECS).await?;
            return Ok(Ended::Stopped(interrupt));
        }
    };
    if outcome.is_err() {
        // A failed start (a port in use) or a lost stream: leave no container behind.
        let _ = engine.stop_and_remove(&id, 0).await;
    }
    outcome.map(Ended::Exited)
}

/// The other end of a conversation: where the command with the TTY runs.
trait Peer {
    /// Starts the command at window size `first` (when known); its terminal stream.
    fn open(&self, first: Option<Size>) -> impl Future<Output = Result<Stdio>>;
    /// Sends a window size; a failure only costs the command a wrong size.
    fn resize(&self, size: Size) -> impl Future<Output = ()>;
    /// The command's exit code, once it has exited.
    fn exit_code(&self) -> impl Future<Output = Result<i32>>;
    /// Whether the terminal stream ends only once the command has exited, so the exit code
    /// is asked for then, not waited for alongside.
    fn stream_ends_at_exit(&self) -> bool;
}

/// A new container, run with a TTY (`podlab shell`).
struct NewContainer<'a, E> {
    engine: &'a E,
    id: &'a str,
}

impl<E: SessionCalls> Peer for NewContainer<'_, E> {
    async fn open(&self, first: Option<Size>) -> Result<Stdio> {
        let stream = self.engine.attach(self.id, true).await?;
        // Attaching has set up the container's TTY: sized now, the command starts at our size
        // instead of 80x24 (vim or htop as the command read it once, at start). The same size
        // is sent again once running, for a Podman that resizes only running containers.
        if let Some(size) = first {
            self.resize(size).await;
        }
        self.engine.start_container(self.id).await?;
        if let Some(size) = first {
            self.resize(size).await;
        }
        Ok(stream)
    }

    async fn resize(&self, size: Size) {
        if let Err(err) = self.engine.resize(self.id, size.rows, size.cols).await {
            tracing::debug!("resize to {}x{}: {err}", size.rows, size.cols);
        }
    }

    fn exit_code(&self) -> impl Future<Output = Result<i32>> {
        self.engine.wait_container(self.id)
    }

    fn stream_ends_at_exit(&self) -> bool {
        false
    }
}

/// A command run with a TTY in a running container (`podlab exec -it`). Its stream ends when
/// the command exits, and only then does Podman have its exit code: there is nothing to wait
/// on alongside.
struct ExecSession<'a, E> {
    engine: &'a E,
    exec_id: &'a str,
}

impl<E: Engine> Peer for ExecSession<'_, E> {
    async fn open(&self, first: Option<Size>) -> Result<Stdio> {
        let stream = self.engine.exec_start(self.exec_id, true).await?;
        if let Some(size) = first {
            self.resize(size).await;
        }
        Ok(stream)
    }

    async fn resize(&self, size: Size) {
        let resized = self
            .engine
            .exec_resize(self.exec_id, size.rows, size.cols)
            .await;
        if let Err(err) = resized {
            tracing::debug!("exec resize to {}x{}: {err}", size.rows, size.cols);
        }
    }

    fn exit_code(&self) -> impl Future<Output = Result<i32>> {
        self.engine.exec_exit_code(self.exec_id)
    }

    fn stream_ends_at_exit(&self) -> bool {
        true
    }
}

/// Starts the peer's command, then pumps both ways until it exits; its exit code.
async fn converse<P: Peer, O: AsyncWrite + Unpin>(
    peer: &P,
    name: &str,
    console: Console<O>,
) -> Result<i32> {
    let Console {
        mut input,
        mut output,
        mut resizes,
    } = console;
    let first = resizes.try_recv().ok();
    let stream = peer.open(first).await?;
    let (mut from_container, mut to_container) = tokio::io::split(stream);
    let forward = async {
        let mut typing = true;
        loop {
            tokio::select! {
                chunk = input.recv(), if typing => match chunk {
                    Some(bytes) => {
                        if let Err(err) = send(&mut to_container, &bytes).await {
                            // The container is going away; its exit decides the outcome.
                            tracing::debug!("stdin to the container: {err}");
                            typing = false;
                        }
                    }
                    None => typing = false,
                },
                Some(size) = resizes.recv() => peer.resize(size).await,
                else => return std::future::pending::<Infallible>().await,
            }
        }
    };
    let shown = show(&mut from_container, &mut output);
    let exited = async {
        if peer.stream_ends_at_exit() {
            shown.await?;
            peer.exit_code().await
        } else {
            finish(shown, peer.exit_code(), name).await
        }
    };
    tokio::select! {
        never = forward => match never {},
        code = exited => code,
    }
}

async fn send<W: AsyncWrite + Unpin>(to: &mut W, bytes: &[u8]) -> std::io::Result<()> {
    to.write_all(bytes).await?;
    to.flush().await
}

/// Copies the container's output to ours as it comes, until the stream ends.
async fn show<R: AsyncRead + Unpin, W: AsyncWrite + Unpin>(from: &mut R, to: &mut W) -> Result<()> {
    let mut buffer = vec![0u8; 16 * 1024];
    loop {
        let read = from
            .read(&mut buffer)
            .await
            .map_err(|err| Error::env(format!("lost the container's terminal stream: {err}")))?;
        let Some(chunk) = buffer.get(..read).filter(|chunk| !chunk.is_empty()) else {
            return Ok(());
        };
        if let Err(err) = send(to, chunk).await {
            // Our output is gone (a closed window): keep the session going until it exits.
            tracing::debug!("writing the container's output: {err}");
        }
    }
}

/// The exit code, once the output is shown: neither the last output nor the exit code is
/// lost, and neither a stream that stays open nor one that closes early blocks forever.
async fn finish(
    shown: impl Future<Output = Result<()>>,
    wait: impl Future<Output = Result<i32>>,
    name: &str,
) -> Result<i32> {
    let (mut shown, mut wait) = (pin!(shown), pin!(wait));
    tokio::select! {
        result = &mut shown => {
            result?;
            tokio::time::timeout(EXIT_AFTER_EOF, wait).await.map_err(|_| {
                Error::env(format!("the terminal stream of {name} closed while it still runs"))
                    .hint("run it again; podlab removed the container")
            })?
        }
        code = &mut wait => {
            let code = code?;
            match tokio::time::timeout(DRAIN, shown).await {
                Ok(Err(err)) => tracing::debug!("after the exit: {err}"),
                Err(_) => tracing::debug!("the terminal stream stayed open after the exit"),
                Ok(Ok(())) => {}
            }
            Ok(code)
        }
    }
}

/// Reads our stdin on its own thread, in chunks as they arrive (a key press at a time in raw
/// mode). The thread ends at end of input or when the session drops the receiver and one
/// more chunk arrives; a read still pending at exit ends with the process.
fn read_stdin() -> Result<mpsc::Receiver<Vec<u8>>> {
    let (tx, rx) = mpsc::channel(64);
    std::thread::Builder::new()
        .name("podlab-stdin".into())
        .spawn(move || {
            let stdin = std::io::stdin();
            let mut buffer = vec![0u8; 4096];
            loop {
                match rustix::io::read(&stdin, &mut buffer) {
                    Ok(read) => {
                        let Some(chunk) = buffer.get(..read).filter(|chunk| !chunk.is_empty())
                        else {
                            return;
                        };
                        if tx.blocking_send(chunk.to_vec()).is_err() {
                            return;
                        }
                    }
                    Err(rustix::io::Errno::INTR) => {}
                    Err(err) => {
                        tracing::debug!("reading stdin: {err}");
                        return;
                    }
                }
            }
        })
        .map_err(|err| Error::env(format!("cannot start the stdin reader: {err}")))?;
    Ok(rx)
}

/// The signals an interactive session handles: window changes, and those that stop it.
struct Signals {
    window_change: Signal,
    stop: StopSignals,
}

impl Signals {
    fn install() -> Result<Self> {
        Ok(Self {
            window_change: signals::catch(SignalKind::window_change())?,
            stop: StopSignals::install()?,
        })
    }

    /// Sends the new window size on every `SIGWINCH`; returns at the first signal that stops
    /// podlab.
    async fn next_stop(&mut self, resizes: &mpsc::UnboundedSender<Size>) -> Interrupt {
        loop {
            tokio::select! {
                Some(()) = self.window_change.recv() => {
                    if let Some(size) = terminal::stdin_size() {
                        let _ = resizes.send(size);
                    }
                }
                interrupt = self.stop.next() => return interrupt,
            }
        }
    }
}

#[cfg(test)]
mod tests {

    use std::sync::{Arc, Mutex};

    use tokio::sync::watch;

    use super::*;
    use crate::plan::{Mode, UserNs};

    /// A container with a TTY: echoes what it gets (as a TTY does) and exits with status 7
    /// once it has read `exit\r`.
    #[derive(Debug, Clone)]
    struct TtyEngine {
        calls: Arc<Mutex<Vec<String>>>,
        received: Arc<Mutex<Vec<u8>>>,
        exited: Arc<watch::Sender<Option<i32>>>,
        start_failure: bool,
    }

    impl TtyEngine {
        fn new() -> Self {
            Self {
                calls: Arc::default(),
                received: Arc::default(),
                exited: Arc::new(watch::channel(None).0),
                start_failure: false,
            }
        }

        fn record(&self, call: String) {
            self.calls.lock().unwrap().push(call);
        }

        fn calls(&self) -> Vec<String> {
            self.calls.lock().unwrap().clone()
        }
    }

    impl SessionCalls for TtyEngine {
        async fn create_container(&self, body: &serde_json::Value) -> Result<String> {
            self.record(format!(
                "create terminal={} stdin={}",
                body["terminal"], body["stdin"]
            ));
            Ok("c0ffee".to_owned())
        }

        async fn attach(&self, id: &str, stdin: bool) -> Result<Stdio> {
            self.record(format!("attach {id} stdin={stdin}"));
            let (mut container, ours) = tokio::io::duplex(64 * 1024);
            let (received, exited) = (self.received.clone(), self.exited.clone());
            tokio::spawn(async move {
                container.write_all(b"$ ").await.unwrap();
                let mut buffer = [0u8; 1024];
                loop {
                    let read = container.read(&mut buffer).await.unwrap();
                    let chunk = &buffer[..read];
                    container.write_all(chunk).await.unwrap();
                    let mut all = received.lock().unwrap();
                    all.extend_from_slice(chunk);
                    if all.ends_with(b"exit\r") {
                        break;
                    }
                }
                container.write_all(b"\r\nbye\r\n").await.unwrap();
                container.shutdown().await.unwrap();
                exited.send_replace(Some(7));
            });
            Ok(Box::new(ours))
        }

        async fn start_container(&self, id: &str) -> Result<()> {
            self.record(format!("start {id}"));
            if self.start_failure {
                return Err(Error::env("address already in use"));
            }
            Ok(())
        }

        async fn wait_container(&self, id: &str) -> Result<i32> {
            self.record(format!("wait {id}"));
            let mut exited = self.exited.subscribe();
            let code = exited.wait_for(Option::is_some).await.unwrap();
            Ok(code.unwrap_or(-1))
        }

        async fn stop_and_remove(&self, id: &str, timeout_secs: u32) -> Result<()> {
            self.record(format!("remove {id} timeout={timeout_secs}"));
            Ok(())
        }

        async fn resize(&self, id: &str, rows: u16, cols: u16) -> Result<()> {
            self.record(format!("resize {id} {rows}x{cols}"));
            Ok(())
        }
    }

    fn session() -> Session {
        Session {
            mounts: Vec::new(),
            command: default_shell_command(),
            ..Session::example()
        }
    }

    fn plan() -> ContainerPlan {
        ContainerPlan {
            mode: Mode {
                kind: "shell",
                tty: true,
                stdin: true,
                remove: true,
            },
            userns: UserNs::KeepId,
            ..ContainerPlan::example("demo-shell-1")
        }
    }

    /// A console fed with `typed`, whose output lands in the returned buffer.
    fn console(
        typed: &[&[u8]],
        sizes: &[Size],
    ) -> (Console<tokio::io::DuplexStream>, tokio::io::DuplexStream) {
        let (input_tx, input) = mpsc::channel(16);
        for chunk in typed {
            input_tx.try_send(chunk.to_vec()).unwrap();
        }
        let (resize_tx, resizes) = mpsc::unbounded_channel();
        for size in sizes {
            resize_tx.send(*size).unwrap();
        }
        let (output, screen) = tokio::io::duplex(64 * 1024);
        (
            Console {
                input,
                output,
                resizes,
            },
            screen,
        )
    }

    const RESIZED: Size = Size {
        rows: 20,
        cols: 100,
    };
    const SIZE: Size = Size {
        rows: 30,
        cols: 120,
    };

    #[tokio::test]
    async fn bytes_pass_through_unchanged_and_the_exit_code_is_ours() {
        let engine = TtyEngine::new();
        // Ctrl-C is 0x03 on the wire: the container's TTY makes it a signal, not podlab.
        let typed: &[&[u8]] = &[b"sleep 9\r", b"\x03", b"echo hi\r", b"exit\r"];
        // The size at start, then one change (a SIGWINCH).
        let (console, mut screen) = console(typed, &[SIZE, RESIZED]);
        let stop = std::future::pending();
        let code = drive(&engine, &session(), &plan(), console, stop)
            .await
            .unwrap();
        assert_eq!(code, Ended::Exited(7));
        assert_eq!(*engine.received.lock().unwrap(), typed.concat());
        let mut shown = Vec::new();
        screen.read_to_end(&mut shown).await.unwrap();
        let mut expected = b"$ ".to_vec();
        expected.extend(typed.concat());
        expected.extend(b"\r\nbye\r\n");
        assert_eq!(shown, expected);

        let calls = engine.calls();
        // Sized between attach and start (the TTY exists, the command has not read its size
        // yet), again once running, then on the change.
        assert_eq!(
            calls[..5],
            [
                "create terminal=true stdin=true",
                "attach c0ffee stdin=true",
                "resize c0ffee 30x120",
                "start c0ffee",
                "resize c0ffee 30x120",
            ]
        );
        assert!(
            calls[5..].contains(&"resize c0ffee 20x100".to_owned()),
            "{calls:?}"
        );
        assert!(calls.contains(&"wait c0ffee".to_owned()), "{calls:?}");
        assert!(
            !calls.iter().any(|call| call.starts_with("remove")),
            "{calls:?}"
        );
    }

    #[tokio::test]
    async fn a_failed_start_removes_the_container() {
        let engine = TtyEngine {
            start_failure: true,
            ..TtyEngine::new()
        };
        let (console, _screen) = console(&[], &[SIZE]);
        let err = drive(
            &engine,
            &session(),
            &plan(),
            console,
            std::future::pending(),
        )
        .await
        .err()
        .unwrap();
        assert!(err.to_string().contains("address already in use"), "{err}");
        assert_eq!(
            engine.calls(),
            [
                "create terminal=true stdin=true",
                "attach c0ffee stdin=true",
                "resize c0ffee 30x120",
                "start c0ffee",
                "remove c0ffee timeout=0",
            ]
        );
    }

    #[tokio::test]
    async fn a_hangup_stops_and_removes_the_container() {
        let engine = TtyEngine::new();
        let (console, _screen) = console(&[b"sleep 100\r"], &[]);
        let stop = async {
            tokio::time::sleep(Duration::from_millis(20)).await;
            Interrupt {
                signal: "SIGHUP",
                code: 129,
            }
        };
        let code = drive(&engine, &session(), &plan(), console, stop)
            .await
            .unwrap();
        assert_eq!(
            code,
            Ended::Stopped(Interrupt {
                signal: "SIGHUP",
                code: 129
            })
        );
        assert_eq!(
            engine.calls().last().unwrap(),
            &format!("remove c0ffee timeout={STOP_TIMEOUT_SECS}")
        );
    }

    #[tokio::test]
    async fn output_that_outlives_the_exit_is_still_shown() {
        let (mut container, mut ours) = tokio::io::duplex(1024);
        let (mut screen_in, mut screen) = tokio::io::duplex(1024);
        let writer = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            container.write_all(b"late\r\n").await.unwrap();
        });
        let shown = show(&mut ours, &mut screen_in);
        let code = finish(shown, async { Ok(3) }, "demo").await.unwrap();
        assert_eq!(code, 3);
        writer.await.unwrap();
        drop(screen_in);
        let mut text = Vec::new();
        screen.read_to_end(&mut text).await.unwrap();
        assert_eq!(text, b"late\r\n");
    }

    #[test]
    fn the_default_shell_prefers_shell_then_bash_then_sh() {
        let run = |shell: &str| {
            std::process::Command::new("/bin/sh")
                .args(["-c", SHELL_SCRIPT])
                .env("SHELL", shell)
                .stdin(std::process::Stdio::null())
                .output()
                .unwrap()
        };
        // `$SHELL` is exec'd when it exists: /bin/echo prints an empty line.
        let echoed = run("/bin/echo");
        assert_eq!(echoed.stdout, b"\n");
        // A missing `$SHELL` falls through to a real shell, which reads EOF and exits 0.
        let fallback = run("/nonexistent/zsh");
        assert!(fallback.status.success(), "{fallback:?}");
    }
}
