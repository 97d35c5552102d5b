//! Building a session's image from `[build]` in podlab.toml (the flags override its fields)
//! through the API; the build output streams to stderr as it comes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::engine::{BuildRequest, Engine};
use crate::host::progress::Status;
use crate::session::{ImageSource, ProjectFile, Session, project_name};
use crate::{Error, Result};

/// The `podlab build` flags that override `[build]`.
#[derive(Debug, Clone, Default)]
pub struct Flags {
    /// The Containerfile, relative to the current directory.
    pub file: Option<PathBuf>,
    /// The build context directory, relative to the current directory.
    pub context: Option<PathBuf>,
    /// Build arguments over `[build.args]`; `None` takes the value from the environment.
    pub arg: Vec<(String, Option<String>)>,
    /// The image's name.
    pub tag: Option<String>,
}

/// What to build, resolved from the flags, podlab.toml and the defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Build {
    pub containerfile: PathBuf,
    pub context: PathBuf,
    pub args: BTreeMap<String, String>,
    pub tag: String,
}

/// Builds `build` through the API (every step again with `no_cache`); the image id.
pub async fn build<E: Engine>(engine: &E, build: &Build, no_cache: bool) -> Result<String> {
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
        no_cache,
    };
    let status = Status::start(&format!("building {}", build.tag));
    let mut output = |text: &str| {
        if !status.is_live() {
            status.line(text);
            return;
        }
        for line in text.lines() {
            status.line(line);
            if line.starts_with("STEP ") {
                status.report(line);
            }
        }
    };
    let result = engine.build_image(&request, &mut output).await;
    let done = result.is_ok().then(|| format!("built {}", build.tag));
    status.finish(done.as_deref());
    result
}

/// What to build in `cwd`: the session's `[build]` (`session`, as the session flags resolve
/// it) with `flags` over it; without a podlab.toml, `--file` alone describes the build.
pub fn resolve(
    flags: &Flags,
    session: Result<Session>,
    cwd: &Path,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<Build> {
    let session = match session {
        Ok(session) => Some(session),
        // Without a podlab.toml, --file alone describes the build.
        Err(_) if flags.file.is_some() && ProjectFile::find(cwd).is_none() => None,
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
        Some(ImageSource::Name(name)) if flags.file.is_none() => {
            return Err(Error::user(format!(
                "this session runs the image {name}: there is nothing to build"
            ))
            .hint("add a [build] table to podlab.toml (podlab init writes one), or pass --file Containerfile"));
        }
        _ => None,
    };
    let (containerfile, context, mut build_args, tag) = match configured {
        Some((containerfile, context, build_args, tag)) => (
            flags
                .file
                .as_ref()
                .map_or(containerfile, |file| cwd.join(file)),
            flags
                .context
                .as_ref()
                .map_or(context, |context| cwd.join(context)),
            build_args,
            flags.tag.clone().unwrap_or(tag),
        ),
        None => (
            cwd.join(flags.file.clone().unwrap_or_else(|| "Containerfile".into())),
            cwd.join(flags.context.clone().unwrap_or_default()),
            BTreeMap::new(),
            flags
                .tag
                .clone()
                .unwrap_or_else(|| crate::session::default_tag(&project, cwd)),
        ),
    };
    for (name, value) in &flags.arg {
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
