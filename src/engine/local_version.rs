//! The local Podman's version when no socket answers: `podman --version`, remembered.
//!
//! Commands that only need a version to gate on (`podlab cdi generate`, `quadlet generate`)
//! would otherwise spawn podman on every run: about 20 ms and 30 MB, ten times what
//! generating a CDI spec costs. Where dpkg installed the binary, its database answers instead
//! (a read of a text file, no spawn), when it still vouches for the file: the package lists
//! it, is installed, and the file has not changed since dpkg wrote the list. The answer is
//! kept in the user's cache directory
//! (`$XDG_CACHE_HOME/podlab/podman-version.json`), keyed on the identity of the binary that
//! gave it: its path, device, inode, size, mtime and ctime. Upgrading podman replaces the file
//! (a new inode and ctime; package managers rename a new file into place), so the key changes
//! and podman is asked again; a stale entry is never used. Entries are trusted and written as
//! [`private_cache`] says (the user's own private files, atomic writes); one that does not
//! parse is ignored and rewritten.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::capabilities::PodmanVersion;
use crate::host::private_cache;

/// The cache file's name, under `podlab/` in the user's cache directory.
const CACHE_FILE: &str = "podman-version.json";

/// Bumped when the entry's meaning changes; an entry of another format is ignored.
const FORMAT: u32 = 1;

/// The identity of a podman binary: any upgrade, replacement or edit changes one of these.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct BinaryKey {
    path: PathBuf,
    dev: u64,
    ino: u64,
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl BinaryKey {
    /// The key of the file `path` leads to (symlinks followed), or `None` when it is gone.
    fn of(path: &Path) -> Option<Self> {
        let meta = fs::metadata(path).ok()?;
        Some(Self {
            path: path.to_owned(),
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.size(),
            mtime: (meta.mtime(), meta.mtime_nsec()),
            ctime: (meta.ctime(), meta.ctime_nsec()),
        })
    }
}

/// One remembered answer.
#[derive(Debug, Serialize, Deserialize)]
struct Entry {
    format: u32,
    binary: BinaryKey,
    version: String,
}

/// The podman on `PATH` and its version, or `None` when there is none or it does not say.
pub fn podman_on_path() -> Option<(PathBuf, Option<PodmanVersion>)> {
    let binary = which::which("podman").ok()?;
    let version = version_of(&binary, cache_file().as_deref());
    Some((binary, version))
}

/// dpkg's database.
const DPKG_ADMIN_DIR: &str = "/var/lib/dpkg";

/// The version `binary --version` prints, from the cache at `cache` when its entry matches
/// the binary's key, else from dpkg's database or by asking (and remembering the answer).
pub fn version_of(binary: &Path, cache: Option<&Path>) -> Option<PodmanVersion> {
    version_of_in(binary, cache, Path::new(DPKG_ADMIN_DIR))
}

fn version_of_in(binary: &Path, cache: Option<&Path>, dpkg: &Path) -> Option<PodmanVersion> {
    let key = BinaryKey::of(binary)?;
    if let Some(version) = cache.and_then(|cache| cached(cache, &key)) {
        return Some(version);
    }
    let version = dpkg_version(binary, dpkg).or_else(|| ask(binary))?;
    // Only a binary that did not change while it answered is remembered.
    if let Some(cache) = cache.filter(|_| BinaryKey::of(binary).as_ref() == Some(&key)) {
        remember(cache, key, version);
    }
    Some(version)
}

/// `$XDG_CACHE_HOME/podlab/podman-version.json`, else under `~/.cache`.
fn cache_file() -> Option<PathBuf> {
    private_cache::path(CACHE_FILE)
}

/// The version of the `podman` package dpkg (database in `admin`) installed `binary` from:
/// `None` unless the package lists the binary's real path, is installed, and the binary has
/// not changed since dpkg wrote that list (a podman built and copied over it later is asked).
fn dpkg_version(binary: &Path, admin: &Path) -> Option<PodmanVersion> {
    let real = fs::canonicalize(binary).ok()?;
    let list_path = admin.join("info/podman.list");
    let list = fs::read_to_string(&list_path).ok()?;
    if !list.lines().any(|line| Path::new(line) == real) {
        return None;
    }
    let written = fs::metadata(&list_path).ok()?;
    let file = fs::metadata(&real).ok()?;
    if (file.ctime(), file.ctime_nsec()) > (written.mtime(), written.mtime_nsec()) {
        return None;
    }
    let status = fs::read_to_string(admin.join("status")).ok()?;
    let stanza = status
        .split("\n\n")
        .find(|stanza| stanza.lines().any(|line| line == "Package: podman"))?;
    let field = |name: &str| {
        stanza
            .lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(": "))
    };
    if field("Status") != Some("install ok installed") {
        return None;
    }
    // [epoch:]upstream[-revision]; the upstream version's leading numbers (5.4.2+ds1 -> 5.4.2).
    let version = field("Version")?;
    let upstream = version.split_once(':').map_or(version, |(_, rest)| rest);
    let numeric: String = upstream
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    numeric.trim_end_matches('.').parse().ok()
}

/// Runs `binary --version`.
fn ask(binary: &Path) -> Option<PodmanVersion> {
    let out = std::process::Command::new(binary)
        .arg("--version")
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    String::from_utf8(out.stdout).ok()?.trim().parse().ok()
}

/// The cached version for `key`, when the entry is trustworthy and matches.
fn cached(cache: &Path, key: &BinaryKey) -> Option<PodmanVersion> {
    let entry: Entry = serde_json::from_str(&private_cache::read(cache)?).ok()?;
    if entry.format != FORMAT || entry.binary != *key {
        return None;
    }
    entry.version.parse().ok()
}

/// Remembers the answer; a failure only costs the next run a spawn.
fn remember(cache: &Path, binary: BinaryKey, version: PodmanVersion) {
    let entry = Entry {
        format: FORMAT,
        binary,
        version: version.to_string(),
    };
    if let Ok(text) = serde_json::to_string(&entry) {
        private_cache::write(cache, &text, "the podman version");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::File;
    use std::os::unix::fs::PermissionsExt;

    /// A podman stand-in that records each call and prints `podman version VERSION`.
    struct FakePodman {
        dir: tempfile::TempDir,
    }

    impl FakePodman {
        fn new(version: &str) -> Self {
            let fake = Self {
                dir: tempfile::tempdir().unwrap(),
            };
            fake.install(version);
            fake
        }

        fn binary(&self) -> PathBuf {
            self.dir.path().join("podman")
        }

        fn cache(&self) -> PathBuf {
            self.dir.path().join("cache/podlab").join(CACHE_FILE)
        }

        /// Replaces the binary as a package manager does: a new file renamed into place.
        fn install(&self, version: &str) {
            let calls = self.dir.path().join("calls");
            let script = format!(
                "#!/bin/sh\necho \"$*\" >> '{}'\necho 'podman version {version}'\n",
                calls.display()
            );
            let staged = self.dir.path().join("podman.new");
            fs::write(&staged, script).unwrap();
            fs::set_permissions(&staged, fs::Permissions::from_mode(0o755)).unwrap();
            fs::rename(&staged, self.binary()).unwrap();
        }

        fn calls(&self) -> usize {
            fs::read_to_string(self.dir.path().join("calls")).map_or(0, |text| text.lines().count())
        }

        fn version(&self) -> Option<String> {
            version_of(&self.binary(), Some(&self.cache())).map(|v| v.to_string())
        }
    }

    #[test]
    fn asks_podman_once_then_remembers_its_version_privately() {
        let podman = FakePodman::new("5.4.2");
        assert_eq!(podman.version().as_deref(), Some("5.4.2"));
        assert_eq!(podman.version().as_deref(), Some("5.4.2"));
        assert_eq!(podman.calls(), 1);
        let mode = |path: &Path| fs::metadata(path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&podman.cache()), 0o600);
        assert_eq!(mode(podman.cache().parent().unwrap()), 0o700);
    }

    #[test]
    fn a_podman_upgrade_is_asked_again() {
        let podman = FakePodman::new("5.4.2");
        assert_eq!(podman.version().as_deref(), Some("5.4.2"));
        podman.install("5.8.6");
        assert_eq!(podman.version().as_deref(), Some("5.8.6"));
        assert_eq!(podman.version().as_deref(), Some("5.8.6"));
        assert_eq!(podman.calls(), 2);
    }

    #[test]
    fn an_edit_in_place_that_keeps_size_and_mtime_is_asked_again() {
        let podman = FakePodman::new("5.4.2");
        assert_eq!(podman.version().as_deref(), Some("5.4.2"));
        let before = fs::metadata(podman.binary()).unwrap();
        let text = fs::read_to_string(podman.binary()).unwrap();
        fs::write(podman.binary(), text.replace("5.4.2", "5.4.3")).unwrap();
        File::options()
            .write(true)
            .open(podman.binary())
            .unwrap()
            .set_modified(before.modified().unwrap())
            .unwrap();
        let after = fs::metadata(podman.binary()).unwrap();
        assert_eq!((before.len(), before.ino()), (after.len(), after.ino()));
        assert_eq!(before.modified().unwrap(), after.modified().unwrap());
        assert_eq!(podman.version().as_deref(), Some("5.4.3"));
        assert_eq!(podman.calls(), 2);
    }

    #[test]
    fn a_corrupt_cache_is_ignored_and_rewritten() {
        let podman = FakePodman::new("5.4.2");
        assert_eq!(podman.version().as_deref(), Some("5.4.2"));
        for garbage in ["", "{", "{\"format\":1}", "\u{0}\u{1}not json"] {
            fs::write(podman.cache(), garbage).unwrap();
            assert_eq!(podman.version().as_deref(), Some("5.4.2"), "{garbage:?}");
        }
        let text = fs::read_to_string(podman.cache()).unwrap();
        fs::write(podman.cache(), text.replace("5.4.2", "9.x")).unwrap();
        assert_eq!(podman.version().as_deref(), Some("5.4.2"));
        assert_eq!(podman.calls(), 6);
        assert_eq!(podman.version().as_deref(), Some("5.4.2"));
        assert_eq!(podman.calls(), 6);
    }

    #[test]
    fn an_entry_others_could_write_is_not_trusted() {
        let podman = FakePodman::new("5.4.2");
        assert_eq!(podman.version().as_deref(), Some("5.4.2"));
        let forged = fs::read_to_string(podman.cache())
            .unwrap()
            .replace("5.4.2", "4.2.1");
        fs::write(podman.cache(), &forged).unwrap();
        fs::set_permissions(podman.cache(), fs::Permissions::from_mode(0o666)).unwrap();
        assert_eq!(podman.version().as_deref(), Some("5.4.2"));

        let dir = podman.cache().parent().unwrap().to_owned();
        fs::write(podman.cache(), &forged).unwrap();
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o777)).unwrap();
        assert_eq!(podman.version().as_deref(), Some("5.4.2"));
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).unwrap();

        // A symlink is not followed, even to a file of the user's own.
        let elsewhere = podman.dir.path().join("elsewhere.json");
        fs::write(&elsewhere, &forged).unwrap();
        fs::set_permissions(&elsewhere, fs::Permissions::from_mode(0o600)).unwrap();
        fs::remove_file(podman.cache()).unwrap();
        std::os::unix::fs::symlink(&elsewhere, podman.cache()).unwrap();
        assert_eq!(podman.version().as_deref(), Some("5.4.2"));
        assert_eq!(podman.calls(), 4);
        assert!(fs::symlink_metadata(podman.cache()).unwrap().is_file());
    }

    #[test]
    fn a_podman_that_does_not_say_is_not_remembered() {
        let podman = FakePodman::new("5.4.2");
        fs::write(podman.binary(), "#!/bin/sh\necho nonsense\n").unwrap();
        assert_eq!(podman.version(), None);
        assert!(!podman.cache().exists());
        fs::write(
            podman.binary(),
            "#!/bin/sh\necho 'podman version 5.4.2'\nexit 3\n",
        )
        .unwrap();
        assert_eq!(podman.version(), None);
        assert!(!podman.cache().exists());
        assert_eq!(version_of(&podman.dir.path().join("missing"), None), None);
    }

    /// A dpkg database in the fake's directory that installed its binary as `version`.
    fn dpkg_installed(podman: &FakePodman, version: &str, status: &str) -> PathBuf {
        let admin = podman.dir.path().join("dpkg");
        fs::create_dir_all(admin.join("info")).unwrap();
        let real = fs::canonicalize(podman.binary()).unwrap();
        fs::write(
            admin.join("info/podman.list"),
            format!("/.\n/usr\n{}\n", real.display()),
        )
        .unwrap();
        fs::write(
            admin.join("status"),
            format!(
                "Package: podman-docker\nStatus: install ok installed\nVersion: 1.0\n\n\
                 Package: podman\nStatus: {status}\nPriority: optional\nVersion: {version}\n\n"
            ),
        )
        .unwrap();
        admin
    }

    #[test]
    fn dpkgs_database_answers_for_the_binary_it_installed_without_a_spawn() {
        let podman = FakePodman::new("5.4.2");
        let dpkg = dpkg_installed(&podman, "5.4.2+ds1-2+b2", "install ok installed");
        let version = |cache: Option<&Path>| {
            version_of_in(&podman.binary(), cache, &dpkg).map(|v| v.to_string())
        };
        assert_eq!(version(Some(&podman.cache())).as_deref(), Some("5.4.2"));
        assert_eq!(version(None).as_deref(), Some("5.4.2"));
        assert_eq!(podman.calls(), 0);
        // An epoch, a pre-release.
        let dpkg = dpkg_installed(&podman, "4:5.0.0~rc1-1", "install ok installed");
        assert_eq!(
            version_of_in(&podman.binary(), None, &dpkg).map(|v| v.to_string()),
            Some("5.0.0".to_owned())
        );
        assert_eq!(podman.calls(), 0);
    }

    #[test]
    fn a_binary_dpkg_no_longer_vouches_for_is_asked() {
        let podman = FakePodman::new("5.4.2");
        let ask = |dpkg: &Path| version_of_in(&podman.binary(), None, dpkg).map(|v| v.to_string());
        // Removed, with its config files left: the database's version is not the binary's.
        let dpkg = dpkg_installed(&podman, "4.3.1+ds1-8", "deinstall ok config-files");
        assert_eq!(ask(&dpkg).as_deref(), Some("5.4.2"));
        assert_eq!(podman.calls(), 1);
        // Not the file the package lists.
        let dpkg = dpkg_installed(&podman, "4.3.1+ds1-8", "install ok installed");
        fs::write(dpkg.join("info/podman.list"), "/usr/bin/podman\n").unwrap();
        assert_eq!(ask(&dpkg).as_deref(), Some("5.4.2"));
        assert_eq!(podman.calls(), 2);
        // Replaced after dpkg installed it (a podman built from source, copied over it).
        let dpkg = dpkg_installed(&podman, "4.3.1+ds1-8", "install ok installed");
        std::thread::sleep(std::time::Duration::from_millis(20));
        podman.install("5.4.2");
        assert_eq!(ask(&dpkg).as_deref(), Some("5.4.2"));
        assert_eq!(podman.calls(), 3);
    }

    #[test]
    fn without_a_cache_directory_podman_is_asked_each_time() {
        let podman = FakePodman::new("5.4.2");
        for _ in 0..2 {
            assert_eq!(
                version_of(&podman.binary(), None).map(|v| v.to_string()),
                Some("5.4.2".to_owned())
            );
        }
        assert_eq!(podman.calls(), 2);
    }
}
