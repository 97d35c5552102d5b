//! `podlab init [--image BASE]`: writes a commented `podlab.toml`, a Containerfile for a
//! CUDA + PyTorch + JupyterLab image, and a `requirements.txt`, in the current directory.
//! Never overwrites (see [`crate::session::scaffold`]).

use std::fmt::Write as _;
use std::path::Path;

use super::print_result;
use super::session_args::current_dir;
use crate::Result;
use crate::session::scaffold::{self, DEFAULT_BASE_IMAGE, Outcome};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Base image of the Containerfile (its FROM) [default:
    /// docker.io/nvidia/cuda:12.4.1-cudnn-runtime-ubuntu22.04]
    #[arg(long, value_name = "IMAGE")]
    image: Option<String>,
}

pub fn run(args: &Args) -> Result<u8> {
    let dir = current_dir()?;
    let outcomes = scaffold::write(&dir, args.image.as_deref())?;
    let shown = |path: &Path| {
        path.strip_prefix(&dir)
            .unwrap_or(path)
            .display()
            .to_string()
    };
    let mut text = String::new();
    for outcome in &outcomes {
        let _ = match outcome {
            Outcome::Written(path) => writeln!(text, "wrote {}", shown(path)),
            Outcome::Kept(path) => {
                writeln!(text, "kept {} (the Containerfile installs it)", shown(path))
            }
        };
    }
    let _ = writeln!(
        text,
        "base image: {}",
        args.image.as_deref().unwrap_or(DEFAULT_BASE_IMAGE)
    );
    print_result(&text)?;
    Ok(0)
}
