//! NVIDIA GPU and driver discovery: what the host really has, read from `/proc`, `/sys`,
//! `/dev` and the driver's files, with no NVML and no driver library loaded.
//!
//! Everything is read under two roots ([`DriverRoots`]): the driver root (libraries,
//! binaries, firmware, config files) and the dev root (`/dev`, `/proc`, `/sys`, IPC sockets).
//! Both are `/` on a normal host; a containerized driver lives at `/run/nvidia/driver`, and
//! unit tests point them at fake trees.

pub mod driver_capabilities;
pub mod elf;
#[cfg(test)]
pub mod fixtures;
pub mod inventory;
pub mod ldcache;
pub mod rootfs;

use std::fs;
use std::path::{Path, PathBuf};

use rustix::fs::{Access, FileType, access};
use serde::{Deserialize, Serialize};

pub use inventory::{Inventory, discover};

/// Where discovery looks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DriverRoots {
    /// Holds the driver's libraries and binaries; `/` on a normal host.
    pub driver_root: PathBuf,
    /// Holds `dev/`, `proc/`, `sys/` and `run/`; `/` on a normal host.
    pub dev_root: PathBuf,
}

impl Default for DriverRoots {
    fn default() -> Self {
        Self {
            driver_root: PathBuf::from("/"),
            dev_root: PathBuf::from("/"),
        }
    }
}

impl DriverRoots {
    /// The roots given on the command line (`--driver-root`, `--dev-root`), `/` where unset;
    /// each must be a directory.
    pub fn checked(driver_root: Option<PathBuf>, dev_root: Option<PathBuf>) -> crate::Result<Self> {
        let defaults = Self::default();
        let roots = Self {
            driver_root: driver_root.unwrap_or(defaults.driver_root),
            dev_root: dev_root.unwrap_or(defaults.dev_root),
        };
        for (flag, dir) in [
            ("--driver-root", &roots.driver_root),
            ("--dev-root", &roots.dev_root),
        ] {
            if !dir.is_dir() {
                return Err(crate::Error::user(format!("{flag} {} is not a directory", dir.display()))
                    .hint("point it at the directory that holds the driver (for example /run/nvidia/driver)"));
            }
        }
        Ok(roots)
    }
}

/// An NVIDIA device node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceNode {
    /// The path inside the dev root, which is also the path in the container: `/dev/nvidia0`.
    pub path: PathBuf,
    pub major: u32,
    pub minor: u32,
    /// The node's group, when it is not root's (DRM render nodes belong to `render`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gid: Option<u32>,
    /// Whether the current user may open it read-write.
    #[serde(skip)]
    pub read_write: bool,
}

impl DriverRoots {
    /// A path under the dev root.
    pub fn dev_path(&self, absolute: &str) -> PathBuf {
        rootfs::join(&self.dev_root, Path::new(absolute))
    }

    /// The loaded kernel module's version, from `/proc/driver/nvidia/version`.
    pub fn driver_version(&self) -> Option<String> {
        let text = fs::read_to_string(self.dev_path("/proc/driver/nvidia/version")).ok()?;
        parse_driver_version(&text)
    }

    /// The `/dev/nvidia*` character devices (GPUs, `nvidiactl`, `nvidia-uvm`, ...), sorted.
    pub fn device_nodes(&self) -> Vec<DeviceNode> {
        let Ok(entries) = fs::read_dir(self.dev_path("/dev")) else {
            return Vec::new();
        };
        let mut nodes: Vec<DeviceNode> = entries
            .filter_map(Result::ok)
            .filter(|entry| entry.file_name().to_string_lossy().starts_with("nvidia"))
            .filter_map(|entry| {
                let name = entry.file_name();
                self.device_node(&Path::new("/dev").join(name))
            })
            .collect();
        nodes.sort_by(|a, b| a.path.cmp(&b.path));
        nodes
    }

    /// The node at `path` (as seen in the dev root) if it is a character device.
    pub fn device_node(&self, path: &Path) -> Option<DeviceNode> {
        let host = rootfs::join(&self.dev_root, path);
        let stat = rustix::fs::stat(&host).ok()?;
        if FileType::from_raw_mode(stat.st_mode) != FileType::CharacterDevice {
            return None;
        }
        Some(DeviceNode {
            path: path.to_owned(),
            major: rustix::fs::major(stat.st_rdev),
            minor: rustix::fs::minor(stat.st_rdev),
            gid: Some(stat.st_gid).filter(|gid| *gid != 0),
            read_write: access(&host, Access::READ_OK | Access::WRITE_OK).is_ok(),
        })
    }
}

/// Reads the version from the first line of `/proc/driver/nvidia/version`:
/// `NVRM version: NVIDIA UNIX x86_64 Kernel Module  550.54.14  Thu Feb 22 01:44:30 UTC 2024`
/// (open kernel modules say `NVIDIA UNIX Open Kernel Module for x86_64`).
pub fn parse_driver_version(text: &str) -> Option<String> {
    let line = text
        .lines()
        .find(|line| line.starts_with("NVRM version:"))?;
    line.split_whitespace()
        .find(|word| is_version(word))
        .map(str::to_owned)
}

/// `550.54.14`, `535.261.03`, `470.42`: two or more dot-separated numbers.
pub fn is_version(word: &str) -> bool {
    word.split('.').count() >= 2
        && word
            .split('.')
            .all(|part| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roots(dir: &Path) -> DriverRoots {
        DriverRoots {
            driver_root: dir.into(),
            dev_root: dir.into(),
        }
    }

    #[test]
    fn driver_version_from_proc_text() {
        let proprietary = "NVRM version: NVIDIA UNIX x86_64 Kernel Module  550.54.14  Thu Feb 22 01:44:30 UTC 2024\nGCC version:  gcc version 12.2.0\n";
        assert_eq!(
            parse_driver_version(proprietary).as_deref(),
            Some("550.54.14")
        );
        let open = "NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  570.133.20  Release Build  (dvs-builder@U16-I3-B03-4-3)\n";
        assert_eq!(parse_driver_version(open).as_deref(), Some("570.133.20"));
        assert_eq!(parse_driver_version("garbage"), None);
    }

    #[test]
    fn missing_driver_and_nodes_are_empty_not_errors() {
        let root = tempfile::tempdir().unwrap();
        assert_eq!(roots(root.path()).driver_version(), None);
        assert!(roots(root.path()).device_nodes().is_empty());
    }

    #[test]
    fn reads_version_file_under_the_dev_root() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("proc/driver/nvidia");
        fs::create_dir_all(&dir).unwrap();
        fs::write(
            dir.join("version"),
            "NVRM version: NVIDIA UNIX x86_64 Kernel Module  535.261.03  Wed\n",
        )
        .unwrap();
        assert_eq!(
            roots(root.path()).driver_version().as_deref(),
            Some("535.261.03")
        );
    }

    #[test]
    fn regular_files_are_not_device_nodes() {
        let root = tempfile::tempdir().unwrap();
        fs::create_dir_all(root.path().join("dev")).unwrap();
        fs::write(root.path().join("dev/nvidia0"), "").unwrap();
        assert!(roots(root.path()).device_nodes().is_empty());
    }

    #[test]
    fn finds_real_character_devices() {
        // /dev/null is a character device every Linux host has; link it in under a fake name.
        let root = tempfile::tempdir().unwrap();
        fs::create_dir_all(root.path().join("dev")).unwrap();
        std::os::unix::fs::symlink("/dev/null", root.path().join("dev/nvidiactl")).unwrap();
        let nodes = roots(root.path()).device_nodes();
        assert_eq!(nodes.len(), 1);
        assert_eq!(nodes[0].path, PathBuf::from("/dev/nvidiactl"));
        assert_eq!((nodes[0].major, nodes[0].minor), (1, 3));
        assert!(nodes[0].read_write);
    }
}
