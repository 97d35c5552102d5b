//! The user's configuration directory, as Podman itself finds it (`$XDG_CONFIG_HOME`, else
//! `~/.config`): podlab writes user CDI specs and quadlet units below it, where Podman looks.

use std::path::PathBuf;

use crate::{Error, Result};

/// `$XDG_CONFIG_HOME`, else `$HOME/.config`; an empty variable counts as unset.
pub fn config_home() -> Result<PathBuf> {
    std::env::var_os("XDG_CONFIG_HOME")
        .filter(|dir| !dir.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|home| !home.is_empty())
                .map(|home| PathBuf::from(home).join(".config"))
        })
        .ok_or_else(|| {
            Error::env("neither XDG_CONFIG_HOME nor HOME is set").hint("export HOME=/home/$USER")
        })
}
