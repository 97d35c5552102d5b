//! `podlab build [--file F] [--context DIR] [--build-arg K=V]... [--tag T] [session flags]`:
//! builds the session's image from `[build]` in podlab.toml (the flags override its fields)
//! through the API. Build output streams to stderr as it comes; the image id goes to stdout.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use super::print_result;
use super::session_args::{SessionArgs, current_dir};
use crate::engine::{self, BuildRequest, ConnectOptions, Engine};
use crate::session::values::{self, Invalid};
use crate::session::{ImageSource, ProjectFile, project_name};
use crate::{Error, Result};

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
    /// The image's name [default: [build] tag, else localhost/PROJECT:latest]
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

/// What to build, resolved from the flags, podlab.toml and the defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Build {
    containerfile: PathBuf,
    context: PathBuf,
    args: BTreeMap<String, String>,
    tag: String,
}

pub async fn run(args: Args, connect: &ConnectOptions) -> Result<u8> {
    let cwd = current_dir()?;
    let build = resolve(&args, &cwd, &|name| std::env::var(name).ok())?;
    let connected = engine::connect(connect).await?;
    tracing::info!(
        containerfile = %build.containerfile.display(),
        context = %build.context.display(),
        tag = %build.tag,
        "building"
    );
    let request = BuildRequest {
        containerfile: &build.containerfile,
        context: &build.context,
        args: &build.args,
        tag: &build.tag,
        no_cache: args.no_cache,
    };
    let mut stderr = std::io::stderr();
    let mut output = |text: &str| {
        let _ = stderr.write_all(text.as_bytes());
        let _ = stderr.flush();
    };
    let id = connected.engine.build_image(&request, &mut output).await?;
    print_result(&format!("{id}\n"))?;
    Ok(0)
}

fn resolve(args: &Args, cwd: &Path, lookup: &dyn Fn(&str) -> Option<String>) -> Result<Build> {
    let session = match args.session.resolve(cwd, Vec::new()) {
        Ok(session) => Some(session),
        // Without a podlab.toml, --file alone describes the build.
        Err(_) if args.file.is_some() && ProjectFile::find(cwd).is_none() => None,
        Err(err) => return Err(err),
    };
    let project = session
        .as_ref()
        .map_or_else(|| project_name(cwd), |session| session.project.clone());
    let configured = match session.map(|session| session.image) {
        Some(ImageSource::Build {
            containerfile,
            context,
            args,
            tag,
        }) => Some((containerfile, context, args, tag)),
        Some(ImageSource::Name(name)) if args.file.is_none() => {
            return Err(Error::user(format!(
                "this session runs the image {name}: there is nothing to build"
            ))
            .hint("add a [build] table to podlab.toml (podlab init writes one), or pass --file Containerfile"));
        }
        _ => None,
    };
    let (containerfile, context, mut build_args, tag) = match configured {
        Some((containerfile, context, build_args, tag)) => (
            args.file
                .as_ref()
                .map_or(containerfile, |file| cwd.join(file)),
            args.context
                .as_ref()
                .map_or(context, |context| cwd.join(context)),
            build_args,
            args.tag.clone().unwrap_or(tag),
        ),
        None => (
            cwd.join(args.file.clone().unwrap_or_else(|| "Containerfile".into())),
            cwd.join(args.context.clone().unwrap_or_default()),
            BTreeMap::new(),
            args.tag
                .clone()
                .unwrap_or_else(|| format!("localhost/{project}:latest")),
        ),
    };
    for (name, value) in &args.arg {
        let value = match value {
            Some(value) => value.clone(),
            None => lookup(name).ok_or_else(|| {
                Error::user(format!(
                    "--build-arg {name}: {name} is not set in this environment"
                ))
                .hint(format!("set it, or pass --build-arg {name}=VALUE"))
            })?,
        };
        build_args.insert(name.clone(), value);
    }
    Ok(Build {
        containerfile,
        context,
        args: build_args,
        tag,
    })
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
        assert_eq!(build.tag, "localhost/my-lab:latest");
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
        assert_eq!(build.tag, "localhost/proj:latest");
        // Without --file and without a [build], there is nothing to build.
        let err = resolve_in(&root, &[]).unwrap_err();
        assert_eq!(err.exit_code(), 1);
        let err = resolve_in(&root, &["--image", "docker.io/library/alpine"]).unwrap_err();
        assert!(err.message().contains("nothing to build"), "{err}");
    }
}
