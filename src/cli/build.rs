//! `podlab build [--file F] [--context DIR] [--build-arg K=V]... [--tag T] [session flags]`:
//! builds the session's image through the API (see [`crate::ops::build`]). Build output
//! streams to stderr as it comes; the image id goes to stdout.

use std::path::{Path, PathBuf};

use super::print_result;
use super::session_args::{SessionArgs, current_dir};
use crate::Result;
use crate::engine::{self, ConnectOptions};
use crate::ops::build::{self, Build, Flags};
use crate::session::values::{self, Invalid};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The Containerfile, relative to the current directory [default: [build] containerfile]
    #[arg(short, long, value_name = "FILE")]
    file: Option<PathBuf>,
    /// The build context directory, which must hold the Containerfile [default: [build]
    /// context, else the current directory]
    #[arg(long, value_name = "DIR")]
    context: Option<PathBuf>,
    /// A build argument, over [build.args]; a bare K passes K's value from this environment
    /// (repeatable).
    #[arg(long = "build-arg", value_name = "K=V|K", value_parser = parse_build_arg)]
    arg: Vec<(String, Option<String>)>,
    /// The image's name [default: [build] tag, else localhost/PROJECT-HASH:latest, HASH from the project's path]
    #[arg(short, long, value_name = "TAG", value_parser = values::image_name)]
    tag: Option<String>,
    /// Build every step again instead of reusing cached layers.
    #[arg(long)]
    no_cache: bool,
    #[command(flatten)]
    session: SessionArgs,
}

fn parse_build_arg(text: &str) -> Result<(String, Option<String>), Invalid> {
    let (name, value) = match text.split_once('=') {
        Some((name, value)) => (name, Some(value.to_owned())),
        None => (text, None),
    };
    Ok((values::env_name(name)?.to_owned(), value))
}

pub async fn run(args: Args, connect: &ConnectOptions) -> Result<u8> {
    let cwd = current_dir()?;
    let build = resolve(&args, &cwd, &|name| std::env::var(name).ok())?;
    let connected = engine::connect(connect).await?;
    let id = build::build(&connected.engine, &build, args.no_cache).await?;
    print_result(&format!("{id}\n"))?;
    Ok(0)
}

fn resolve(args: &Args, cwd: &Path, lookup: &dyn Fn(&str) -> Option<String>) -> Result<Build> {
    let flags = Flags {
        file: args.file.clone(),
        context: args.context.clone(),
        arg: args.arg.clone(),
        tag: args.tag.clone(),
    };
    build::resolve(&flags, args.session.resolve(cwd, Vec::new()), cwd, lookup)
}

#[cfg(test)]
mod tests {
    use std::fs;

    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        args: Args,
    }

    fn resolve_in(dir: &Path, flags: &[&str]) -> Result<Build> {
        let cli =
            Cli::try_parse_from(std::iter::once("podlab").chain(flags.iter().copied())).unwrap();
        resolve(&cli.args, dir, &|name| {
            (name == "FROM_ENV").then(|| "env value".to_owned())
        })
    }

    #[test]
    fn builds_from_the_build_table_with_flag_overrides() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("My Lab");
        fs::create_dir_all(root.join("docker")).unwrap();
        fs::write(
            root.join("podlab.toml"),
            "[build]\ncontainerfile = \"docker/Containerfile\"\n[build.args]\nA = \"file\"\nB = \"file\"\n",
        )
        .unwrap();
        fs::write(root.join("docker/Containerfile"), "FROM x\n").unwrap();
        let build = resolve_in(&root, &[]).unwrap();
        assert_eq!(build.containerfile, root.join("docker/Containerfile"));
        assert_eq!(build.context, root);
        assert_eq!(build.tag, crate::session::default_tag("my-lab", &root));
        assert_eq!(build.args["A"], "file");

        let build = resolve_in(
            &root,
            &[
                "--build-arg",
                "B=flag",
                "--build-arg",
                "FROM_ENV",
                "-t",
                "localhost/x:1",
                "--context",
                "docker",
            ],
        )
        .unwrap();
        assert_eq!(build.args["A"], "file");
        assert_eq!(build.args["B"], "flag");
        assert_eq!(build.args["FROM_ENV"], "env value");
        assert_eq!(build.tag, "localhost/x:1");
        assert_eq!(build.context, root.join("docker"));

        let err = resolve_in(&root, &["--build-arg", "UNSET"]).unwrap_err();
        assert!(err.message().contains("UNSET is not set"), "{err}");
    }

    #[test]
    fn file_alone_describes_a_build_without_podlab_toml() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("proj");
        fs::create_dir_all(&root).unwrap();
        fs::write(root.join("Dockerfile"), "FROM x\n").unwrap();
        let build = resolve_in(&root, &["-f", "Dockerfile"]).unwrap();
        assert_eq!(build.containerfile, root.join("Dockerfile"));
        assert_eq!(build.context, root);
        assert_eq!(build.tag, crate::session::default_tag("proj", &root));
        // Without --file and without a [build], there is nothing to build.
        let err = resolve_in(&root, &[]).unwrap_err();
        assert_eq!(err.exit_code(), 1);
        let err = resolve_in(&root, &["--image", "docker.io/library/alpine"]).unwrap_err();
        assert!(err.message().contains("nothing to build"), "{err}");
    }
}
