//! `podlab completions bash|zsh|fish|elvish|powershell`: the shell's completion script, made
//! by clap_complete from the same definitions that parse the command line.

use clap::CommandFactory as _;

use super::{Cli, print_result};
use crate::Result;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The shell: bash, zsh, fish, elvish or powershell.
    shell: clap_complete::Shell,
}

pub fn run(args: &Args) -> Result<u8> {
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut Cli::command(), "podlab", &mut script);
    print_result(&String::from_utf8_lossy(&script))?;
    Ok(0)
}
