//! A Slurm batch script that runs a session on several nodes at once.
//!
//! The script asks for `--nodes` nodes with one task each and their GPUs (`--gres=gpu:G`),
//! and `srun` starts one rootless `podlab run` per node: the same session (image, mounts,
//! shm, user mapping, env, command) with the GPUs Slurm gave that task and torchrun's
//! environment (`PET_*`: the first host of the allocation as master, the node's index as its
//! rank). Each container is named after the job and the node's index, so tasks that share one
//! user's Podman (several slurmd on one machine) never collide.
//!
//! GPUs come from `SLURM_STEP_GPUS`, the step's GPU indices on its own node (the same numbers
//! podlab's `--gpus` takes): `SLURM_JOB_GPUS` is the batch node's list, which srun copies to
//! every task (seen on Slurm 22.05), and `CUDA_VISIBLE_DEVICES` is renumbered from 0 when
//! Slurm constrains devices with cgroups. The containers are created by the user's Podman
//! service, outside the step's cgroup, so Slurm's own device limits do not reach them: the
//! GPU list is what keeps each task to its GPUs.
//!
//! `scancel` (and a time limit) sends each task SIGTERM, then SIGKILL after `KillWait`;
//! `podlab run` stops and removes its container on SIGTERM.
//!
//! Like the other emitters this one only serializes: every value goes through
//! [`super::shell::quote`], and the `#SBATCH` values are already validated names and numbers.

use super::header::with_note;
use super::shell::{join, quote};
use crate::emit::kube::MASTER_PORT;
use crate::gpu::DriverRoots;
use crate::session::Session;
use crate::{Error, Result};

/// Everything the script needs beyond the session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlurmPlan {
    /// The job's name, and the prefix of its containers' names (a valid container name).
    pub job_name: String,
    pub nodes: u32,
    /// GPUs per node (`--gres=gpu:G`); 0: none.
    pub gpus_per_node: u32,
    pub partition: Option<String>,
    /// sbatch's `--time`, already in one of its forms.
    pub time: Option<String>,
    /// The podlab binary each task runs (on a cluster: a path every node has).
    pub podlab: String,
}

/// The batch script's body for `session` as planned: its `#SBATCH` lines and commands.
fn script(session: &Session, plan: &SlurmPlan) -> Result<String> {
    let mut out = String::new();
    let mut line = |text: &str| {
        out.push_str(text);
        out.push('\n');
    };
    line(&format!("#SBATCH --job-name={}", plan.job_name));
    line(&format!("#SBATCH --nodes={}", plan.nodes));
    line("#SBATCH --ntasks-per-node=1");
    if plan.gpus_per_node > 0 {
        line(&format!("#SBATCH --gres=gpu:{}", plan.gpus_per_node));
    }
    if let Some(partition) = &plan.partition {
        line(&format!("#SBATCH --partition={partition}"));
    }
    if let Some(time) = &plan.time {
        line(&format!("#SBATCH --time={time}"));
    }
    line("set -euo pipefail");
    line("");
    line("# The project directory (on a file system every node shares), as on the machine");
    line("# that wrote this script; each task's Podman socket is under its runtime dir.");
    line(&format!("cd {}", quote(&path_text(&session.project_dir)?)?));
    line(r#"export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/run/user/$(id -u)}""#);
    line("");
    line("# torchrun's rendezvous: the first node of the allocation is the master.");
    line(r#"PET_MASTER_ADDR=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)"#);
    line(&format!(
        r#"export PET_MASTER_ADDR PET_MASTER_PORT={MASTER_PORT} PET_NNODES="$SLURM_NNODES" PET_NPROC_PER_NODE={}"#,
        plan.gpus_per_node.max(1)
    ));
    line("");
    line("# One task per node: the session as a rootless podlab run, with this task's GPUs,");
    line("# its rank, and the job's NCCL_* settings.");
    line("podlab_task() {");
    if plan.gpus_per_node > 0 {
        line("  local gpus=${SLURM_STEP_GPUS:-${CUDA_VISIBLE_DEVICES:-}}");
        line(r"  if [[ -z $gpus ]]; then");
        line(r#"    echo "podlab: Slurm gave task $SLURM_PROCID on $SLURMD_NODENAME no GPUs" >&2"#);
        line("    return 1");
        line("  fi");
    } else {
        line("  local gpus=none");
    }
    line("  local nccl=() var");
    line("  for var in $(compgen -e); do");
    line(r#"    if [[ $var == NCCL_* ]]; then nccl+=(-e "$var"); fi"#);
    line("  done");
    let name = quote(&plan.job_name)?;
    line(&format!(
        r#"  exec {} run --name {name}-"$SLURM_JOB_ID"-"$SLURM_NODEID" --gpus "$gpus" \"#,
        quote(&plan.podlab)?
    ));
    line(r"    -e PET_MASTER_ADDR -e PET_MASTER_PORT -e PET_NNODES -e PET_NPROC_PER_NODE \");
    line(r#"    -e PET_NODE_RANK="$SLURM_NODEID" "${nccl[@]}" \"#);
    for words in session_flags(session)? {
        line(&format!("    {} \\", join(&words)?));
    }
    let mut command = vec!["--".to_owned()];
    command.extend(session.command.iter().cloned());
    line(&format!("    {}", join(&command)?));
    line("}");
    line("export -f podlab_task");
    line("");
    line("# A task that fails ends the others: torchrun's ranks cannot go on without it.");
    line("srun --kill-on-bad-exit=1 bash -c podlab_task");
    Ok(out)
}

/// The session as `podlab run` flags, a group of words per flag: the image, shm, user
/// mapping, working dir, mounts other than the project's, env, and the driver roots when
/// they are not `/`.
fn session_flags(session: &Session) -> Result<Vec<Vec<String>>> {
    let mut flags = vec![
        vec!["--image".to_owned(), session.image.reference().to_owned()],
        vec!["--shm-size".to_owned(), session.shm_size.to_string()],
        vec!["--user-map".to_owned(), session.user_map.to_string()],
        vec!["--workdir".to_owned(), session.workdir.clone()],
    ];
    // The project directory at the working dir is mounted by `podlab run` itself, run from
    // the project directory (the script's `cd`).
    for mount in session
        .mounts
        .iter()
        .filter(|m| m.container != session.workdir)
    {
        let mut text = format!("{}:{}", path_text(&mount.host)?, mount.container);
        if mount.read_only {
            text.push_str(":ro");
        }
        flags.push(vec!["-v".to_owned(), text]);
    }
    for (name, value) in &session.env {
        flags.push(vec!["-e".to_owned(), format!("{name}={value}")]);
    }
    let defaults = DriverRoots::default();
    if session.driver_roots.driver_root != defaults.driver_root {
        flags.push(vec![
            "--driver-root".to_owned(),
            path_text(&session.driver_roots.driver_root)?,
        ]);
    }
    if session.driver_roots.dev_root != defaults.dev_root {
        flags.push(vec![
            "--dev-root".to_owned(),
            path_text(&session.driver_roots.dev_root)?,
        ]);
    }
    Ok(flags)
}

fn path_text(path: &std::path::Path) -> Result<String> {
    path.to_str().map(str::to_owned).ok_or_else(|| {
        Error::user(format!("path {} is not UTF-8", path.display()))
            .hint("rename it, or mount a parent directory whose path is UTF-8")
    })
}

/// The file for `sbatch`: the interpreter line, podlab's header, then [`script`]'s body.
pub fn file(session: &Session, plan: &SlurmPlan) -> Result<String> {
    let body = script(session, plan)?;
    Ok(format!(
        "#!/bin/bash\n{}",
        with_note(
            "podlab slurm generate -o replaces this file only while it is unedited.",
            &body
        )
    ))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::session::{ByteSize, Mount};

    fn plan() -> SlurmPlan {
        SlurmPlan {
            job_name: "train".into(),
            nodes: 2,
            gpus_per_node: 4,
            partition: Some("gpu".into()),
            time: Some("12:00:00".into()),
            podlab: "/usr/local/bin/podlab".into(),
        }
    }

    fn session() -> Session {
        Session {
            name: Some("train".into()),
            shm_size: ByteSize(16 << 30),
            mounts: vec![
                Mount {
                    host: "/home/a/demo".into(),
                    container: "/workspace".into(),
                    read_only: false,
                },
                Mount {
                    host: "/data/it's here".into(),
                    container: "/data".into(),
                    read_only: true,
                },
            ],
            env: BTreeMap::from([("WANDB_NOTES".to_owned(), "a $b `c`".to_owned())]),
            command: vec!["torchrun".into(), "train.py".into(), "--lr=1e-3".into()],
            ..Session::example()
        }
    }

    #[test]
    fn asks_for_the_nodes_their_gpus_and_one_task_each() {
        let text = script(&session(), &plan()).unwrap();
        let directives: Vec<&str> = text.lines().filter(|l| l.starts_with("#SBATCH")).collect();
        assert_eq!(
            directives,
            [
                "#SBATCH --job-name=train",
                "#SBATCH --nodes=2",
                "#SBATCH --ntasks-per-node=1",
                "#SBATCH --gres=gpu:4",
                "#SBATCH --partition=gpu",
                "#SBATCH --time=12:00:00",
            ]
        );
        assert!(text.contains("PET_NPROC_PER_NODE=4"), "{text}");
        assert!(text.contains(r#"--gpus "$gpus""#), "{text}");
        assert!(text.contains("SLURM_STEP_GPUS"), "{text}");
        assert!(text.contains("srun --kill-on-bad-exit=1 bash -c podlab_task"));
    }

    #[test]
    fn every_session_value_is_quoted() {
        let text = script(&session(), &plan()).unwrap();
        assert!(text.contains(r"-v '/data/it'\''s here:/data:ro'"), "{text}");
        assert!(text.contains("-e 'WANDB_NOTES=a $b `c`'"), "{text}");
        assert!(text.contains("-- torchrun train.py --lr=1e-3"), "{text}");
        assert!(text.contains("--shm-size 16g"), "{text}");
    }

    #[test]
    fn without_gpus_there_is_no_gres_and_gpus_none() {
        let plan = SlurmPlan {
            gpus_per_node: 0,
            partition: None,
            time: None,
            ..plan()
        };
        let text = script(&session(), &plan).unwrap();
        assert!(!text.contains("--gres"), "{text}");
        assert!(text.contains("local gpus=none"), "{text}");
        assert!(text.contains("PET_NPROC_PER_NODE=1"), "{text}");
    }

    #[test]
    fn the_script_is_valid_bash() {
        let text = file(&session(), &plan()).unwrap();
        assert!(
            text.starts_with("#!/bin/bash\n# Generated by podlab."),
            "{text}"
        );
        let output = std::process::Command::new("bash")
            .args(["-n", "-c", &text])
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}
