//! podlab's sessions once they exist: finding one by name (and refusing containers podlab did
//! not create), listing them for `podlab ps`, copying their logs, and running commands in
//! them; and the session any container describes, from the inspect data fetched here and
//! handed to [`crate::session::inspected`]. A podlab session is a container carrying the
//! `io.podlab.project` label; the image probes that podlab creates and removes while planning
//! (`io.podlab.kind=probe`) are not sessions.

use std::path::Path;

use serde::Serialize;
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::emit::podman::labels;
use crate::engine::frames::demultiplex;
use crate::engine::{ContainerFacts, ContainerSummary, Engine, Inspectable};
use crate::host::signals::StopSignals;
use crate::session::{Session, inspected};
use crate::{Error, Result};

/// The kind of the short-lived containers that read files from images.
const PROBE_KIND: &str = "probe";

/// The podlab session named `name` (a name or an id).
pub async fn find_session<E: Engine>(engine: &E, name: &str) -> Result<ContainerFacts> {
    let Some(facts) = engine.inspect_container(name).await? else {
        return Err(Error::user(format!("no container named {name}"))
            .hint("podlab ps lists podlab's sessions and their names"));
    };
    if !facts.labels.contains_key(labels::PROJECT) {
        return Err(Error::user(format!("{name} is not a podlab session")).hint(
            "podlab manages only the containers it started (podlab ps lists them); use podman for others",
        ));
    }
    Ok(facts)
}

/// One line of `podlab ps`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SessionRow {
    pub name: String,
    pub id: String,
    pub project: String,
    /// `run`, `shell`, ...
    pub kind: String,
    /// `none`, `all`, or GPU indices.
    pub gpus: String,
    /// `127.0.0.1:8888->8888/tcp`, ...
    pub ports: Vec<String>,
    pub preset: Option<String>,
    pub image: String,
    /// Podman's state: `running`, `exited`, `created`, ...
    pub state: String,
    pub exit_code: i32,
    /// `running`, `exited (3)`, ...
    pub status: String,
    /// Seconds since the epoch.
    pub created: i64,
    pub age_seconds: i64,
}

/// podlab's sessions, of one project or of all; oldest first.
pub async fn list_sessions<E: Engine>(
    engine: &E,
    project: Option<&str>,
    now: i64,
) -> Result<Vec<SessionRow>> {
    let filter = match project {
        Some(project) => format!("{}={project}", labels::PROJECT),
        None => labels::PROJECT.to_owned(),
    };
    let mut rows: Vec<SessionRow> = engine
        .list_containers(&filter)
        .await?
        .into_iter()
        .filter(|summary| summary.labels.get(labels::KIND).map(String::as_str) != Some(PROBE_KIND))
        .map(|summary| row(summary, now))
        .collect();
    rows.sort_by(|a, b| (a.created, &a.project, &a.name).cmp(&(b.created, &b.project, &b.name)));
    Ok(rows)
}

fn row(summary: ContainerSummary, now: i64) -> SessionRow {
    let label = |key: &str| summary.labels.get(key).cloned().unwrap_or_default();
    let ports = label(labels::PORTS)
        .split(',')
        .filter(|port| !port.is_empty())
        .map(str::to_owned)
        .collect();
    SessionRow {
        project: label(labels::PROJECT),
        kind: label(labels::KIND),
        gpus: Some(label(labels::GPUS))
            .filter(|gpus| !gpus.is_empty())
            .unwrap_or_else(|| "none".to_owned()),
        ports,
        preset: summary.labels.get(labels::PRESET).cloned(),
        status: status_text(&summary.state, summary.exit_code),
        age_seconds: (now - summary.created).max(0),
        name: summary.name,
        id: summary.id,
        image: summary.image,
        state: summary.state,
        exit_code: summary.exit_code,
        created: summary.created,
    }
}

/// `running`, `exited (3)`, `created`.
pub fn status_text(state: &str, exit_code: i32) -> String {
    match state {
        "exited" | "stopped" => format!("exited ({exit_code})"),
        "" => "unknown".to_owned(),
        other => other.to_owned(),
    }
}

/// An age in its largest whole unit: `5s`, `3m`, `2h`, `4d`.
pub fn age(seconds: i64) -> String {
    let seconds = seconds.max(0);
    match seconds {
        0..60 => format!("{seconds}s"),
        60..3600 => format!("{}m", seconds / 60),
        3600..86_400 => format!("{}h", seconds / 3600),
        _ => format!("{}d", seconds / 86_400),
    }
}

/// The `podlab ps` table: a header, then one aligned line per session.
pub fn table(rows: &[SessionRow]) -> String {
    let header = ["NAME", "PROJECT", "KIND", "GPUS", "PORTS", "STATUS", "AGE"];
    let lines: Vec<[String; 7]> = rows
        .iter()
        .map(|row| {
            [
                row.name.clone(),
                row.project.clone(),
                row.kind.clone(),
                row.gpus.clone(),
                if row.ports.is_empty() {
                    "-".to_owned()
                } else {
                    row.ports.join(",")
                },
                row.status.clone(),
                age(row.age_seconds),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for line in &lines {
        for (width, cell) in widths.iter_mut().zip(line) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut push = |cells: &[&str]| {
        let mut text = String::new();
        for (index, (cell, width)) in cells.iter().zip(widths).enumerate() {
            if index + 1 == cells.len() {
                text.push_str(cell);
            } else {
                text.push_str(cell);
                let pad = width.saturating_sub(cell.chars().count()) + 2;
                text.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    push(&header);
    for line in &lines {
        let cells: Vec<&str> = line.iter().map(String::as_str).collect();
        push(&cells);
    }
    out
}

/// Copies the session's logs (with `follow`, until it exits) to `stdout` and `stderr`.
pub async fn copy_logs<E, O, W>(
    engine: &E,
    session: &ContainerFacts,
    follow: bool,
    stdout: &mut O,
    stderr: &mut W,
) -> Result<()>
where
    E: Engine,
    O: AsyncWrite + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut stream = engine.logs(&session.id, follow).await?;
    if !session.tty {
        return demultiplex(&mut stream, stdout, stderr).await;
    }
    // With a TTY there is one stream. Podman's libpod endpoint (unlike its Docker one) still
    // frames it, all as stdout; should a server send it raw, pass it through as it is.
    let mut head = Vec::with_capacity(8);
    while head.len() < 8 {
        let mut byte = [0u8; 8];
        let wanted = 8 - head.len();
        let read = stream
            .read(byte.get_mut(..wanted).unwrap_or_default())
            .await
            .map_err(|err| Error::env(format!("lost the container's log stream: {err}")))?;
        if read == 0 {
            break;
        }
        head.extend_from_slice(byte.get(..read).unwrap_or_default());
    }
    let mut rest = head.as_slice().chain(stream);
    if looks_framed(&head) {
        demultiplex(&mut rest, stdout, stderr).await
    } else {
        copy_raw(&mut rest, stdout).await
    }
}

/// Whether `head` starts like a frame header: stream 0-2, then three zero bytes.
fn looks_framed(head: &[u8]) -> bool {
    matches!(head, [0..=2, 0, 0, 0, _, _, _, _])
}

async fn copy_raw<R, O>(input: &mut R, stdout: &mut O) -> Result<()>
where
    R: AsyncRead + Unpin,
    O: AsyncWrite + Unpin,
{
    match tokio::io::copy(input, stdout).await {
        Err(err) if err.kind() != std::io::ErrorKind::BrokenPipe => Err(Error::env(format!(
            "cannot copy the container's logs: {err}"
        ))),
        _ => {
            let _ = stdout.flush().await;
            Ok(())
        }
    }
}

/// Fails unless the session runs: exec needs a running container.
pub fn require_running(session: &ContainerFacts) -> Result<()> {
    if session.running {
        return Ok(());
    }
    Err(Error::user(format!(
        "{} is not running ({})",
        session.name, session.state
    ))
    .hint("exec needs a running session: see podlab ps, or start one with podlab run -d"))
}

/// Runs `command` in the running session, its output on `stdout` and `stderr`; its exit code.
/// When podlab is told to stop (`SIGINT`, `SIGTERM`, `SIGHUP`, `SIGQUIT`) it returns 128 + the
/// signal's number: Podman offers no way to signal an exec'd command without a TTY (as with
/// `podman exec`), so the warning says it may still run and how to end it.
pub async fn exec<E, O, W>(
    engine: &E,
    session: &ContainerFacts,
    command: &[String],
    stdout: &mut O,
    stderr: &mut W,
) -> Result<i32>
where
    E: Engine,
    O: AsyncWrite + Unpin,
    W: AsyncWrite + Unpin,
{
    require_running(session)?;
    let mut signals = StopSignals::install()?;
    let exec_id = engine.exec_create(&session.id, command, false).await?;
    let ran = async {
        let mut stream = engine.exec_start(&exec_id, false).await?;
        demultiplex(&mut stream, stdout, stderr).await?;
        let _ = stdout.flush().await;
        engine.exec_exit_code(&exec_id).await
    };
    tokio::select! {
        code = ran => code,
        interrupt = signals.next() => {
            tracing::warn!(
                "{}: the command may still run in {}; it ends with the session (podlab stop {})",
                interrupt.signal,
                session.name,
                session.name
            );
            Ok(interrupt.code)
        }
    }
}

/// Removes the session; a running one only with `force`.
pub async fn remove<E: Engine>(engine: &E, session: &ContainerFacts, force: bool) -> Result<()> {
    if session.running && !force {
        return Err(
            Error::user(format!("{} is running", session.name)).hint(format!(
                "stop it first (podlab stop {0}), or stop and remove it at once: podlab rm -f {0}",
                session.name
            )),
        );
    }
    engine.remove_container(&session.id, force).await
}

/// Seconds since the epoch, now.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| {
            i64::try_from(elapsed.as_secs()).unwrap_or(i64::MAX)
        })
}

/// The session of the container `name` (by name or id), read from its inspect data, with
/// the command line's `flags` over it as over podlab.toml (see
/// [`crate::session::inspected::overlay`]); podlab.toml itself is not read.
pub async fn session_with_flags<E: Engine>(
    engine: &E,
    name: &str,
    cwd: &Path,
    flags: crate::session::Settings,
    new_name: Option<String>,
) -> Result<Session> {
    let base = inspect_session(engine, name, cwd).await?;
    let home = std::env::var_os("HOME").map(std::path::PathBuf::from);
    crate::session::inspected::overlay(base, flags, new_name, cwd, home.as_deref())
}

/// The session of the container `name` (by name or id), with what it could not carry
/// reported on stderr. A container that does not exist is a user error.
pub async fn inspect_session<E: Engine>(engine: &E, name: &str, cwd: &Path) -> Result<Session> {
    let Some(container) = engine.inspect_json(Inspectable::Container, name).await? else {
        return Err(Error::user(format!("no session or container named {name}")).hint(
            "podlab ps lists podlab's sessions (podman ps -a every container); or describe the session with flags instead of a name",
        ));
    };
    let image_id = container
        .get("Image")
        .and_then(Value::as_str)
        .filter(|id| !id.is_empty());
    let image = match image_id {
        Some(id) => engine.inspect_json(Inspectable::Image, id).await?,
        None => None,
    };
    if image.is_none() {
        tracing::warn!(
            "the image of {name} is not in the local store: its environment and command are kept whole, including what the image sets"
        );
    }
    let inspected = inspected::from_inspect(
        &container,
        image.as_ref(),
        inspected::HostIds::current(),
        cwd,
    )?;
    for skipped in &inspected.skipped {
        tracing::warn!("{name}: not carried over: {skipped}");
    }
    Ok(inspected.session)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::engine::fake::FakeEngine;

    const API: &str = include_str!("../../tests/fixtures/inspect/api-created.json");
    const ENV_IMAGE: &str = include_str!("../../tests/fixtures/inspect/image-env.json");

    fn json(text: &str) -> Value {
        serde_json::from_str(text).unwrap()
    }

    fn env(session: &Session) -> Vec<String> {
        session
            .env
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect()
    }

    fn facts(name: &str, project: Option<&str>, kind: &str, running: bool) -> ContainerFacts {
        let mut labels = BTreeMap::new();
        if let Some(project) = project {
            labels.insert(labels::PROJECT.to_owned(), project.to_owned());
            labels.insert(labels::KIND.to_owned(), kind.to_owned());
            labels.insert(labels::GPUS.to_owned(), "0,1".to_owned());
            labels.insert(
                labels::PORTS.to_owned(),
                "127.0.0.1:8888->8888/tcp".to_owned(),
            );
        }
        ContainerFacts {
            id: format!("{name}-id"),
            name: name.to_owned(),
            state: if running { "running" } else { "exited" }.to_owned(),
            running,
            exit_code: if running { 0 } else { 3 },
            tty: false,
            labels,
            health: None,
        }
    }

    fn engine() -> FakeEngine {
        let containers = [
            facts("demo-run-1", Some("demo"), "run", true),
            facts("demo-run-2", Some("demo"), "run", false),
            facts("other-shell-1", Some("other"), "shell", true),
            facts("probe", Some("demo"), PROBE_KIND, false),
            facts("theirs", None, "", true),
        ];
        FakeEngine {
            containers: containers
                .into_iter()
                .map(|facts| (facts.name.clone(), facts))
                .collect(),
            output: b"start\n".to_vec(),
            exit_code: 4,
            ..FakeEngine::default()
        }
    }

    #[test]
    fn ages_in_their_largest_unit() {
        assert_eq!(age(5), "5s");
        assert_eq!(age(59), "59s");
        assert_eq!(age(60 * 3 + 5), "3m");
        assert_eq!(age(3600 * 2 + 1), "2h");
        assert_eq!(age(86_400 * 4), "4d");
        assert_eq!(age(-3), "0s");
    }

    #[tokio::test]
    async fn ps_lists_sessions_but_not_probes_or_other_containers() {
        let engine = engine();
        let rows = list_sessions(&engine, None, 1_700_000_065).await.unwrap();
        let names: Vec<&str> = rows.iter().map(|row| row.name.as_str()).collect();
        assert_eq!(names, ["demo-run-1", "demo-run-2", "other-shell-1"]);
        assert_eq!(rows[1].status, "exited (3)");
        assert_eq!(rows[0].ports, ["127.0.0.1:8888->8888/tcp"]);
        let text = table(&rows);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "NAME           PROJECT  KIND   GPUS  PORTS                     STATUS      AGE"
        );
        assert_eq!(
            lines[2],
            "demo-run-2     demo     run    0,1   127.0.0.1:8888->8888/tcp  exited (3)  1m"
        );

        let demo = list_sessions(&engine, Some("demo"), 0).await.unwrap();
        assert_eq!(demo.len(), 2);
        assert!(
            engine
                .calls()
                .contains(&"list io.podlab.project=demo".to_owned())
        );
        assert_eq!(
            table(&[]),
            "NAME  PROJECT  KIND  GPUS  PORTS  STATUS  AGE\n"
        );
    }

    #[tokio::test]
    async fn unknown_and_foreign_names_are_user_errors_with_hints() {
        let engine = engine();
        let err = find_session(&engine, "nope").await.unwrap_err();
        assert_eq!(err.exit_code(), 1);
        assert_eq!(err.message(), "no container named nope");
        assert!(err.hint_text().unwrap().contains("podlab ps"));
        let err = find_session(&engine, "theirs").await.unwrap_err();
        assert_eq!(err.message(), "theirs is not a podlab session");
        assert!(err.hint_text().unwrap().contains("podlab ps"));
        assert!(find_session(&engine, "demo-run-1").await.is_ok());
    }

    #[tokio::test]
    async fn rm_of_a_running_session_needs_force() {
        let engine = engine();
        let running = find_session(&engine, "demo-run-1").await.unwrap();
        let err = remove(&engine, &running, false).await.unwrap_err();
        assert_eq!(err.exit_code(), 1);
        assert!(err.hint_text().unwrap().contains("podlab rm -f demo-run-1"));
        remove(&engine, &running, true).await.unwrap();
        let exited = find_session(&engine, "demo-run-2").await.unwrap();
        remove(&engine, &exited, false).await.unwrap();
        let calls = engine.calls();
        assert!(calls.contains(&"rm demo-run-1-id force=true".to_owned()));
        assert!(calls.contains(&"rm demo-run-2-id force=false".to_owned()));
        assert!(!calls.contains(&"rm demo-run-1-id force=false".to_owned()));
    }

    #[tokio::test]
    async fn exec_streams_output_and_returns_the_exit_code() {
        let engine = engine();
        let running = find_session(&engine, "demo-run-1").await.unwrap();
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let command = vec!["sh".to_owned(), "-c".to_owned(), "exit 4".to_owned()];
        let code = exec(&engine, &running, &command, &mut out, &mut err)
            .await
            .unwrap();
        assert_eq!(code, 4);
        assert_eq!(out, b"start\n");
        let exited = find_session(&engine, "demo-run-2").await.unwrap();
        let err = exec(&engine, &exited, &command, &mut Vec::new(), &mut Vec::new())
            .await
            .unwrap_err();
        assert_eq!(err.message(), "demo-run-2 is not running (exited)");
    }

    #[tokio::test]
    async fn logs_are_demultiplexed_with_or_without_a_tty() {
        let engine = engine();
        let mut session = find_session(&engine, "demo-run-1").await.unwrap();
        for tty in [false, true] {
            session.tty = tty;
            let (mut out, mut err) = (Vec::new(), Vec::new());
            copy_logs(&engine, &session, true, &mut out, &mut err)
                .await
                .unwrap();
            assert_eq!(out, b"start\n", "tty={tty}");
        }
        assert!(looks_framed(&[1, 0, 0, 0, 0, 0, 0, 6]));
        assert!(!looks_framed(b"hello, w"));
        assert!(!looks_framed(b"hi"));
    }

    #[tokio::test]
    async fn an_unknown_container_is_a_user_error_naming_it() {
        let err = inspect_session(&FakeEngine::default(), "nope", Path::new("/"))
            .await
            .unwrap_err();
        assert_eq!(err.message(), "no session or container named nope");
        assert!(err.hint_text().unwrap().contains("podlab ps"), "{err}");
        assert_eq!(err.exit_code(), 1);

        let engine = FakeEngine {
            inspect_documents: BTreeMap::from([
                ("containers/insp-api".to_owned(), json(API)),
                (
                    format!("images/{}", json(API)["Image"].as_str().unwrap()),
                    json(ENV_IMAGE),
                ),
            ]),
            ..FakeEngine::default()
        };
        let session = inspect_session(&engine, "insp-api", Path::new("/"))
            .await
            .unwrap();
        assert_eq!(
            env(&session),
            ["IMGVAR=changed", "USERVAR=y"],
            "the image was read"
        );
    }
}
