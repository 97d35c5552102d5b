//! `podlab slurm generate`: a session as a Slurm batch job across nodes.
//!
//! The session is resolved as for `podlab run`; this plans the job (its name, the per-node
//! GPUs against `--gpus`, the podlab binary each node runs), has [`crate::emit::slurm`]
//! serialize it, and writes it to a file only when that file is podlab's own and unedited.

use std::fs;
use std::path::Path;

use crate::emit::header::{Origin, origin};
use crate::emit::slurm::{self, SlurmPlan};
use crate::ops::units::Written;
use crate::session::{ImageSource, Session, values};
use crate::{Error, Result, plan};

/// What to generate, beyond the session (the `slurm generate` flags).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    pub nodes: u32,
    pub gpus_per_node: u32,
    pub partition: Option<String>,
    pub time: Option<String>,
}

/// The batch script of `session` for `options`, its notices logged.
pub fn generate(session: &Session, options: &Options) -> Result<String> {
    let plan = plan_job(session, options)?;
    for notice in notices(session) {
        tracing::warn!("{notice}");
    }
    slurm::file(session, &plan)
}

/// The job's name and GPUs, checked, and the podlab binary the nodes run: this one, by its
/// path (on a cluster, installed where every node sees it).
fn plan_job(session: &Session, options: &Options) -> Result<SlurmPlan> {
    plan::check_gpus_per_node(&session.gpus, options.gpus_per_node)?;
    let job_name = session
        .name
        .clone()
        .unwrap_or_else(|| session.project.clone());
    let job_name = values::container_name(&job_name).map_err(|invalid| {
        Error::user(format!("the job cannot be named: {}", invalid.message))
            .hint("pass --name with a name of letters, digits, '_', '.' and '-'")
    })?;
    let podlab = std::env::current_exe()
        .ok()
        .and_then(|path| path.to_str().map(str::to_owned))
        .ok_or_else(|| {
            Error::env("cannot tell where this podlab binary is")
                .hint("run podlab by a UTF-8 path, as every node of the job must")
        })?;
    Ok(SlurmPlan {
        job_name,
        nodes: options.nodes,
        gpus_per_node: options.gpus_per_node,
        partition: options.partition.clone(),
        time: options.time.clone(),
        podlab,
    })
}

/// What a session on several nodes needs from the cluster, or loses.
fn notices(session: &Session) -> Vec<String> {
    let mut out = Vec::new();
    if !session.ports.is_empty() {
        out.push(
            "the job publishes no ports: its nodes run one container each, and a port on every node serves no one"
                .to_owned(),
        );
    }
    let image = session.image.reference();
    if matches!(session.image, ImageSource::Build { .. }) || image.starts_with("localhost/") {
        out.push(format!(
            "image {image} is local to this host: every node needs it (podlab build there, or push it to a registry)"
        ));
    }
    out.push(format!(
        "the project {} and the mounts must be at the same paths on every node (a shared file system)",
        session.project_dir.display()
    ));
    out
}

/// Writes the script to `path` (mode 0755): a new file, or one podlab wrote and nobody
/// edited since; anything else is left as it is.
pub fn write(path: &Path, text: &str) -> Result<Written> {
    let dir = path
        .parent()
        .filter(|dir| !dir.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if !dir.is_dir() {
        return Err(Error::user(format!(
            "cannot write {}: the directory {} is missing",
            path.display(),
            dir.display()
        ))
        .hint(format!(
            "create it first (mkdir -p {}), or choose another -o FILE",
            dir.display()
        )));
    }
    let written = match fs::read_to_string(path) {
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Written::Created,
        Err(err) => {
            return Err(
                Error::user(format!("cannot read {}: {err}", path.display()))
                    .hint("choose another -o FILE"),
            );
        }
        Ok(existing) => match origin(&existing) {
            Origin::Unedited if existing == text => return Ok(Written::Unchanged),
            Origin::Unedited => Written::Replaced,
            Origin::Edited => {
                return Err(Error::user(format!(
                    "{} was edited since podlab wrote it: podlab leaves it alone",
                    path.display()
                ))
                .hint("write elsewhere (-o FILE), or move it away to keep your edits"));
            }
            Origin::Foreign => {
                return Err(Error::user(format!(
                    "{} was not written by podlab: podlab never overwrites it",
                    path.display()
                ))
                .hint("choose another -o FILE, or move that file away yourself"));
            }
        },
    };
    crate::host::atomic::write_file(path, text.as_bytes(), 0o755)?;
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::GpuRequest;
    use crate::session::GpuSelector;

    fn options() -> Options {
        Options {
            nodes: 2,
            gpus_per_node: 2,
            partition: None,
            time: None,
        }
    }

    #[test]
    fn gpus_per_node_over_what_gpus_names_is_refused() {
        let session = Session {
            gpus: GpuRequest::List(vec![GpuSelector::Index(0)]),
            ..Session::example()
        };
        let err = generate(&session, &options()).unwrap_err();
        assert_eq!(
            err.message(),
            "--gpus-per-node 2 is more GPUs than --gpus names (1)"
        );
        assert!(err.hint_text().unwrap().contains("--gpus all"), "{err}");
        let none = Session {
            gpus: GpuRequest::None,
            ..Session::example()
        };
        assert!(generate(&none, &options()).is_err());
        let all = Session {
            gpus: GpuRequest::All,
            ..Session::example()
        };
        assert!(generate(&all, &options()).is_ok());
    }

    #[test]
    fn writes_new_and_own_files_and_refuses_others() {
        let dir = tempfile::tempdir().unwrap();
        let text = generate(
            &Session {
                gpus: GpuRequest::All,
                ..Session::example()
            },
            &options(),
        )
        .unwrap();
        let path = dir.path().join("job.sbatch");
        assert_eq!(write(&path, &text).unwrap(), Written::Created);
        assert_eq!(write(&path, &text).unwrap(), Written::Unchanged);
        let other = text.replace("--nodes=2", "--nodes=3");
        // An edited script: its checksum no longer matches.
        fs::write(&path, &other).unwrap();
        let err = write(&path, &text).unwrap_err();
        assert!(err.message().contains("was edited"), "{err}");
        assert_eq!(fs::read_to_string(&path).unwrap(), other);
        let foreign = dir.path().join("mine.sh");
        fs::write(&foreign, "#!/bin/bash\necho mine\n").unwrap();
        let err = write(&foreign, &text).unwrap_err();
        assert!(err.message().contains("was not written by podlab"), "{err}");
        assert_eq!(
            fs::read_to_string(&foreign).unwrap(),
            "#!/bin/bash\necho mine\n"
        );
        let err = write(&dir.path().join("no/such/job.sbatch"), &text).unwrap_err();
        assert!(err.message().contains("is missing"), "{err}");
    }
}
