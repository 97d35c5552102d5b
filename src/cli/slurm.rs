//! `podlab slurm generate`: the flags, and the batch script [`crate::ops::slurm`] writes.

use std::path::PathBuf;

use super::print_result;
use super::session_args::{SessionArgs, current_dir};
use crate::Result;
use crate::ops::slurm::{self, Options};
use crate::session::values;

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Print an sbatch script that runs the session on --nodes nodes, one rootless podlab
    /// run per node with torchrun's environment.
    Generate(Box<GenerateArgs>),
}

#[derive(Debug, clap::Args)]
pub struct GenerateArgs {
    #[command(flatten)]
    session: SessionArgs,
    /// The nodes that train together, one task (one container) each.
    #[arg(long, value_name = "N", value_parser = values::node_count)]
    nodes: u32,
    /// The GPUs of each node (--gres=gpu:G), at most what --gpus names.
    #[arg(long, value_name = "G")]
    gpus_per_node: u32,
    /// The partition to submit to [default: the cluster's]
    #[arg(long, value_name = "P", value_parser = values::slurm_partition)]
    partition: Option<String>,
    /// The time limit, as sbatch takes it: MIN, H:MM:SS or D-HH:MM:SS.
    #[arg(long, value_name = "T", value_parser = values::slurm_time)]
    time: Option<String>,
    /// Write the script to FILE (only a new file, or one podlab wrote and nobody edited).
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    file: Option<PathBuf>,
    /// The command; the image's own when none is given.
    #[arg(last = true, value_name = "CMD")]
    command: Vec<String>,
}

pub fn run(command: Command) -> Result<u8> {
    let Command::Generate(args) = command;
    let args = *args;
    let session = args.session.resolve(&current_dir()?, args.command)?;
    let options = Options {
        nodes: args.nodes,
        gpus_per_node: args.gpus_per_node,
        partition: args.partition,
        time: args.time,
    };
    let script = slurm::generate(&session, &options)?;
    match args.file {
        Some(file) if file != std::path::Path::new("-") => {
            let written = slurm::write(&file, &script)?;
            tracing::info!("{written:?} {}", file.display());
            print_result(&format!("{}\n", file.display()))?;
        }
        _ => print_result(&script)?,
    }
    Ok(0)
}
