//! Atomic file writes: a temporary file in the target's directory, flushed to disk, then
//! renamed over the target. Readers see the old file or the new one, never half of one; a
//! killed podlab leaves at most a hidden `.podlab-PID-*.tmp` file, which no CDI or quadlet
//! reader picks up (they read only their own extensions), and the next write into that
//! directory removes it once its writer is gone ([`remove_stale_temps`]). [`lock`] serialises
//! writers of one place.

use std::fs::{self, File, OpenOptions, Permissions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::time::{Duration, Instant};

use rustix::fs::{FlockOperation, flock};

use crate::{Error, Result};

/// Temporary files of a write are named `{TEMP_PREFIX}{writer's pid}-{random}{TEMP_SUFFIX}`.
const TEMP_PREFIX: &str = ".podlab-";
const TEMP_SUFFIX: &str = ".tmp";

/// How old a temporary file must be to count as stale even while a process of its writer's
/// pid lives (the pid may have been reused; a write takes milliseconds).
const STALE_AFTER: Duration = Duration::from_secs(600);

/// Removes the temporary files that killed podlab writes left in `dir`: podlab's own names
/// only, and only once their writer's pid is gone or they are older than [`STALE_AFTER`].
/// A file it may not remove (another user's, in `/etc/cdi`) is left for its owner.
pub fn remove_stale_temps(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.filter_map(std::result::Result::ok) {
        let name = entry.file_name();
        let Some(middle) = name
            .to_str()
            .and_then(|name| name.strip_prefix(TEMP_PREFIX))
            .and_then(|name| name.strip_suffix(TEMP_SUFFIX))
        else {
            continue;
        };
        let writer_gone = middle
            .split_once('-')
            .and_then(|(pid, _)| pid.parse::<u32>().ok())
            .is_some_and(|pid| !Path::new(&format!("/proc/{pid}")).exists());
        let old = entry
            .metadata()
            .and_then(|meta| meta.modified())
            .ok()
            .and_then(|modified| modified.elapsed().ok())
            .is_some_and(|age| age > STALE_AFTER);
        if (writer_gone || old) && entry.file_type().is_ok_and(|kind| kind.is_file()) {
            match fs::remove_file(entry.path()) {
                Ok(()) => tracing::debug!("removed the stale {}", entry.path().display()),
                Err(err) => tracing::debug!("left {}: {err}", entry.path().display()),
            }
        }
    }
}

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
    remove_stale_temps(dir);
    let mut file = tempfile::Builder::new()
        .prefix(&format!("{TEMP_PREFIX}{}-", std::process::id()))
        .suffix(TEMP_SUFFIX)
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

    #[test]
    fn l6_stale_temp_files_of_dead_writers_are_removed_and_others_kept() {
        let dir = tempfile::tempdir().unwrap();
        // A pid that no process has: above the kernel's pid_max.
        let dead = dir.path().join(".podlab-4194305-abc123.tmp");
        let live = dir
            .path()
            .join(format!(".podlab-{}-def456.tmp", std::process::id()));
        let theirs = dir.path().join(".other-1-x.tmp");
        let unit = dir.path().join("kk.container");
        for path in [&dead, &live, &theirs, &unit] {
            fs::write(path, "x").unwrap();
        }
        write_file(&dir.path().join("spec.yaml"), b"new", 0o644).unwrap();
        assert!(!dead.exists(), "a dead writer's temp file stays");
        assert!(live.exists(), "a live writer's temp file was removed");
        assert!(theirs.exists() && unit.exists());
        // The write's own temp file carries its pid, and is gone once renamed.
        let left: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|entry| entry.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(left.len(), 4, "{left:?}");
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
