//! Small helpers for this host's files and terminal, shared by the layers above: atomic
//! writes and locks ([`atomic`]), the XDG config and cache directories ([`xdg`]), what podlab
//! remembers between runs ([`private_cache`]), the one YAML writer ([`yaml`]), raw mode and
//! window size of our own terminal ([`terminal`]), the log on stderr ([`logging`]), progress
//! on stderr ([`progress`]), the result on stdout ([`stdout`]), the stop signals
//! ([`signals`]), and the current directory, where the project is looked for.
//!
//! They know nothing of Podman, GPUs or sessions: the Podman socket is [`crate::engine`]'s and
//! the NVIDIA driver [`crate::gpu`]'s. They sit together so that `src/` shows the data flow in
//! its folder names, with these helpers out of the way.

pub mod atomic;
pub mod logging;
pub mod private_cache;
pub mod progress;
pub mod signals;
pub mod stdout;
pub mod terminal;
pub mod xdg;
pub mod yaml;

use std::path::PathBuf;

use crate::{Error, Result};

/// The current directory, where the project is looked for.
pub fn current_dir() -> Result<PathBuf> {
    std::env::current_dir().map_err(|err| {
        Error::env(format!("cannot read the current directory: {err}"))
            .hint("cd into an existing directory")
    })
}
