//! The user's configuration directory, as Podman itself finds it (`$XDG_CONFIG_HOME`, else
//! `~/.config`): podlab writes user CDI specs and quadlet units below it, where Podman looks.
//! The cache directory (`$XDG_CACHE_HOME`, else `~/.cache`) keeps what podlab remembers
//! between runs.

use std::path::PathBuf;

use crate::{Error, Result};

/// `$XDG_CONFIG_HOME`, else `$HOME/.config`; an empty variable counts as unset.
pub fn config_home() -> Result<PathBuf> {
    xdg_home("XDG_CONFIG_HOME", ".config")
}

/// `$XDG_CACHE_HOME`, else `$HOME/.cache`; an empty variable counts as unset.
pub fn cache_home() -> Result<PathBuf> {
    xdg_home("XDG_CACHE_HOME", ".cache")
}

fn xdg_home(variable: &str, under_home: &str) -> Result<PathBuf> {
    std::env::var_os(variable)
        .filter(|dir| !dir.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|home| !home.is_empty())
                .map(|home| PathBuf::from(home).join(under_home))
        })
        .ok_or_else(|| {
            Error::env(format!("neither {variable} nor HOME is set"))
                .hint("export HOME=/home/$USER")
        })
}
