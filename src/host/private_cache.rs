//! What podlab remembers between runs, in the user's cache directory
//! (`$XDG_CACHE_HOME/podlab`, else `~/.cache/podlab`): answers that are slow to get again (a
//! spawned `podman --version`, a probe container) and that have a key telling when they stop
//! being true. An entry is read only from a regular file owned by the user, not a symlink,
//! in a directory owned by the user, neither writable by anyone else; anything else is
//! ignored, as is text the caller cannot parse. Entries are written atomically (a temporary
//! file renamed into place) with mode 0600, in directories made with mode 0700; a failed
//! write only costs the next run the slow way.

use std::fs;
use std::io::Read as _;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rustix::fs::{Mode, OFlags};

/// Entries are small; a larger file is not one of podlab's.
const MAX_ENTRY: u64 = 64 * 1024;

/// `NAME` under podlab's cache directory, when the user has one.
pub fn path(name: &str) -> Option<PathBuf> {
    crate::host::xdg::cache_home()
        .ok()
        .map(|dir| dir.join("podlab").join(name))
}

/// The entry's text, when the file and its directory are the user's own and private.
pub fn read(path: &Path) -> Option<String> {
    let me = rustix::process::geteuid().as_raw();
    let private = |meta: &fs::Metadata| meta.uid() == me && meta.permissions().mode() & 0o022 == 0;
    let dir = fs::symlink_metadata(path.parent()?).ok()?;
    if !dir.is_dir() || !private(&dir) {
        return None;
    }
    let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let mut file = fs::File::from(rustix::fs::open(path, flags, Mode::empty()).ok()?);
    let meta = file.metadata().ok()?;
    if !meta.is_file() || !private(&meta) || meta.len() > MAX_ENTRY {
        return None;
    }
    let mut text = String::new();
    file.read_to_string(&mut text).ok()?;
    Some(text)
}

/// Writes the entry atomically; `what` names it in the debug log when that fails.
pub fn write(path: &Path, text: &str, what: &str) {
    let Some(dir) = path.parent() else { return };
    let made = fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir);
    let written = made.map_err(|err| err.to_string()).and_then(|()| {
        crate::host::atomic::write_file(path, text.as_bytes(), 0o600)
            .map_err(|err| err.message().to_owned())
    });
    if let Err(err) = written {
        tracing::debug!("not remembering {what}: {err}");
    }
}
