//! `podlab man [SUBCOMMAND...]`: podlab's manual page (roff, section 1), or a subcommand's
//! (`podlab man cdi generate` is podlab-cdi-generate(1)), made by clap_mangen from the same
//! definitions that parse the command line; `podlab man | man -l -` reads it.

use clap::CommandFactory as _;

use super::{Cli, print_result};
use crate::{Error, Result};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// A subcommand whose page to print instead, e.g. cdi generate.
    #[arg(value_name = "SUBCOMMAND")]
    command: Vec<String>,
}

pub fn run(args: &Args) -> Result<u8> {
    let mut command = Cli::command().disable_help_subcommand(true);
    // Names every subcommand podlab-cdi-generate and builds its deferred flags.
    command.build();
    for name in &args.command {
        command = command.find_subcommand(name).cloned().ok_or_else(|| {
            Error::user(format!(
                "podlab has no subcommand {}",
                args.command.join(" ")
            ))
            .hint("podlab --help lists them")
        })?;
    }
    let mut page = Vec::new();
    clap_mangen::Man::new(command)
        .render(&mut page)
        .map_err(|err| Error::env(format!("cannot render the manual page: {err}")))?;
    print_result(&String::from_utf8_lossy(&page))?;
    Ok(0)
}
