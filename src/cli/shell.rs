//! `podlab shell [session flags] [--keep] [NAME] [-- CMD...]`: the main job, an interactive
//! shell in a new container of the session, on our terminal through the API (see
//! [`crate::ops::interactive`]). The container lives as long as the shell unless `--keep`, and the
//! shell's exit status becomes ours.
//!
//! A shell needs a terminal: without one (a pipe, a CI job) this fails at once and points to
//! `podlab run`, instead of starting a container whose prompt nobody can answer.

use std::path::Path;

use super::session_args::{SessionArgs, current_dir};
use crate::engine::{self, ConnectOptions};
use crate::host::terminal;
use crate::ops::interactive;
use crate::ops::run::{self as runner, Mode};
use crate::session::{Session, values};
use crate::{Error, Result};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    session: SessionArgs,
    /// Keep the container after the shell exits (see podman ps -a).
    #[arg(long)]
    keep: bool,
    /// Container name, as --name [default: generated]
    #[arg(id = "container", value_name = "NAME", value_parser = values::container_name)]
    container: Option<String>,
    /// The command instead of a shell: the image's $SHELL, else /bin/bash, else /bin/sh.
    /// podlab.toml's command is for podlab run and does not apply here.
    #[arg(last = true, value_name = "CMD")]
    command: Vec<String>,
}

pub async fn run(mut args: Args, connect: &ConnectOptions) -> Result<u8> {
    if !terminal::stdin_is_terminal() {
        return Err(Error::user("podlab shell needs a terminal, and stdin is not one")
            .hint("run it from an interactive terminal, or run a command without one: podlab run -- CMD"));
    }
    let session = resolve(&mut args, &current_dir()?)?;
    let connected = engine::connect(connect).await?;
    let mode = Mode {
        kind: "shell",
        tty: true,
        stdin: true,
        remove: !args.keep,
    };
    let plan = runner::plan_container(&connected.engine, &connected.capabilities(), &session, mode)
        .await?;
    let code = match interactive::run_interactive(&connected.engine, &session, &plan).await {
        Ok(code) => code,
        Err(err) => return Err(runner::remove_after_lost_socket(err, connect, &plan.name).await),
    };
    Ok(u8::try_from(code & 0xff).unwrap_or(1))
}

/// The session in `cwd`, named by NAME or `--name`, running the given command or a shell:
/// never podlab.toml's command (a job's, such as jupyter lab).
fn resolve(args: &mut Args, cwd: &Path) -> Result<Session> {
    args.session.name = one_name(args.session.name.take(), args.container.take())?;
    let mut session = args.session.resolve(cwd, Vec::new())?;
    session.command = if args.command.is_empty() {
        interactive::default_shell_command()
    } else {
        std::mem::take(&mut args.command)
    };
    Ok(session)
}

/// The container name from `--name` or the positional NAME, which must agree when both are
/// given.
fn one_name(flag: Option<String>, positional: Option<String>) -> Result<Option<String>> {
    match (flag, positional) {
        (Some(flag), Some(name)) if flag != name => Err(Error::user(format!(
            "two container names: --name {flag} and {name}"
        ))
        .hint("give the name once, as NAME or as --name")),
        (flag, positional) => Ok(flag.or(positional)),
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::cli::{Cli, Command, Deferred};

    fn parse(args: &[&str]) -> Args {
        let cli = Cli::try_parse_from([&["podlab", "shell"], args].concat()).unwrap();
        match cli.command {
            Command::Shell(Deferred(args)) => args,
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn takes_session_flags_a_name_and_a_command() {
        let args = parse(&["--gpus", "none", "--keep", "box1", "--", "python", "-i"]);
        assert!(args.keep);
        assert_eq!(args.container.as_deref(), Some("box1"));
        assert_eq!(args.command, ["python", "-i"]);
        assert_eq!(args.session.gpus, Some(crate::session::GpuRequest::None));

        let bare = parse(&[]);
        assert!(!bare.keep && bare.container.is_none() && bare.command.is_empty());
        assert!(Cli::try_parse_from(["podlab", "shell", "-bad-name"]).is_err());
    }

    #[test]
    fn runs_a_shell_or_the_given_command_never_the_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("podlab.toml"),
            "image = \"localhost/img\"\ncommand = [\"jupyter\", \"lab\"]\n",
        )
        .unwrap();
        let shell = resolve(&mut parse(&["--gpus", "none", "box1"]), dir.path()).unwrap();
        assert_eq!(shell.command, interactive::default_shell_command());
        assert_eq!(shell.name.as_deref(), Some("box1"));
        let given = resolve(&mut parse(&["--", "python", "-i"]), dir.path()).unwrap();
        assert_eq!(given.command, ["python", "-i"]);
        let clash = resolve(&mut parse(&["--name", "a", "b"]), dir.path()).unwrap_err();
        assert_eq!(clash.exit_code(), 1);
    }

    #[test]
    fn the_name_is_given_once_or_twice_the_same() {
        let name = |text: &str| Some(text.to_owned());
        assert_eq!(one_name(None, None).unwrap(), None);
        assert_eq!(one_name(name("a"), None).unwrap(), name("a"));
        assert_eq!(one_name(None, name("b")).unwrap(), name("b"));
        assert_eq!(one_name(name("a"), name("a")).unwrap(), name("a"));
        let err = one_name(name("a"), name("b")).unwrap_err();
        assert_eq!(err.exit_code(), 1);
        assert!(err.to_string().contains("--name a and b"), "{err}");
    }
}
