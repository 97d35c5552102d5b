//! Atomic file writes: a temporary file in the target's directory, flushed to disk, then
//! renamed over the target. Readers see the old file or the new one, never half of one; a
//! killed podlab leaves at most a hidden `.podlab-*.tmp` file, which no CDI or quadlet reader
//! picks up (they read only their own extensions). [`lock`] serialises writers of one place.

use std::fs::{self, File, OpenOptions, Permissions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::time::{Duration, Instant};

use rustix::fs::{FlockOperation, flock};

use crate::{Error, Result};

/// Writes `contents` to `path` atomically with permission bits `mode`.
pub fn write_file(path: &Path, contents: &[u8], mode: u32) -> Result<()> {
    let dir = path
        .parent()
        .filter(|dir| !dir.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let fail = |err: &dyn std::fmt::Display| {
        Error::env(format!("cannot write {}: {err}", path.display())).hint(format!(
            "check that {} exists and is writable by you",
            dir.display()
        ))
    };
    let mut file = tempfile::Builder::new()
        .prefix(".podlab-")
        .suffix(".tmp")
        .tempfile_in(dir)
        .map_err(|err| fail(&err))?;
    file.write_all(contents).map_err(|err| fail(&err))?;
    file.as_file()
        .set_permissions(Permissions::from_mode(mode))
        .map_err(|err| fail(&err))?;
    file.as_file().sync_all().map_err(|err| fail(&err))?;
    file.persist(path).map_err(|err| fail(&err.error))?;
    if let Ok(dir) = fs::File::open(dir) {
        let _ = dir.sync_all();
    }
    Ok(())
}

/// Takes an exclusive lock on `path`, released when the file is dropped. Blocks at most
/// `timeout`, polling, so a wedged peer cannot hang podlab forever. A directory is locked
/// itself (flock works on a directory's descriptor), so writers of a user's directory
/// (`quadlet generate -o DIR`) leave no lock file in it; any other path is a lock file,
/// created when missing.
pub async fn lock(path: &Path, timeout: Duration) -> Result<File> {
    let file = if path.is_dir() {
        File::open(path)
    } else {
        OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(path)
    }
    .map_err(|err| Error::env(format!("cannot open lock file {}: {err}", path.display())))?;
    let deadline = Instant::now() + timeout;
    loop {
        match flock(&file, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => return Ok(file),
            Err(rustix::io::Errno::WOULDBLOCK) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(err) => {
                return Err(Error::env(format!("cannot lock {}: {err}", path.display()))
                    .hint("another podlab is working on the same files; try again"));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn replaces_the_file_with_the_requested_mode_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("spec.yaml");
        fs::write(&path, "old").unwrap();
        write_file(&path, b"new", 0o644).unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "new");
        assert_eq!(fs::metadata(&path).unwrap().mode() & 0o777, 0o644);
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn missing_directory_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let err = write_file(&dir.path().join("nope/spec.yaml"), b"x", 0o644)
            .err()
            .unwrap();
        assert!(err.to_string().contains("cannot write"), "{err}");
        assert!(err.hint_text().is_some());
    }

    #[tokio::test]
    async fn lock_is_exclusive_between_opens() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("l.lock");
        let held = lock(&path, Duration::from_secs(1)).await.unwrap();
        let other = File::open(&path).unwrap();
        assert!(flock(&other, FlockOperation::NonBlockingLockExclusive).is_err());
        drop(held);
        assert!(flock(&other, FlockOperation::NonBlockingLockExclusive).is_ok());
    }

    #[tokio::test]
    async fn a_directory_is_locked_itself_and_gets_no_lock_file() {
        let dir = tempfile::tempdir().unwrap();
        let held = lock(dir.path(), Duration::from_secs(1)).await.unwrap();
        let other = File::open(dir.path()).unwrap();
        assert!(flock(&other, FlockOperation::NonBlockingLockExclusive).is_err());
        drop(held);
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
