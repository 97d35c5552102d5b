//! NVIDIA GPU and driver discovery: what the host really has, read from `/proc` and `/dev`
//! with no NVML and no driver library needed.
//!
//! All reads go through a [`DriverHost`] rooted at configurable directories, so unit tests
//! point it at a fake tree and hosts with a containerized driver point it at the driver root.

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use rustix::fs::{Access, access};
use serde::Serialize;

/// Where discovery looks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DriverHost {
    /// Holds `proc/driver/nvidia/...`; `/` on a normal host.
    pub proc_root: PathBuf,
    /// Holds `dev/nvidia*`; `/` on a normal host.
    pub dev_root: PathBuf,
}

impl Default for DriverHost {
    fn default() -> Self {
        Self {
            proc_root: PathBuf::from("/"),
            dev_root: PathBuf::from("/"),
        }
    }
}

/// An NVIDIA device node found under `/dev`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeviceNode {
    /// The path as the host sees it, e.g. `/dev/nvidia0`.
    pub path: PathBuf,
    pub major: u32,
    pub minor: u32,
    /// Whether the current user may open it read-write.
    pub read_write: bool,
}

impl DriverHost {
    /// The loaded kernel module's version, from `/proc/driver/nvidia/version`.
    pub fn driver_version(&self) -> Option<String> {
        let text = fs::read_to_string(self.proc_root.join("proc/driver/nvidia/version")).ok()?;
        parse_driver_version(&text)
    }

    /// The `/dev/nvidia*` character devices (GPUs, `nvidiactl`, `nvidia-uvm`, ...), sorted.
    pub fn device_nodes(&self) -> Vec<DeviceNode> {
        let dev = self.dev_root.join("dev");
        let Ok(entries) = fs::read_dir(&dev) else {
            return Vec::new();
        };
        let mut nodes: Vec<DeviceNode> = entries
            .filter_map(Result::ok)
            .filter(|entry| entry.file_name().to_string_lossy().starts_with("nvidia"))
            .filter_map(|entry| self.device_node(&entry.path()))
            .collect();
        nodes.sort_by(|a, b| a.path.cmp(&b.path));
        nodes
    }

    fn device_node(&self, path: &Path) -> Option<DeviceNode> {
        let meta = fs::metadata(path).ok()?;
        if !meta.file_type().is_char_device() {
            return None;
        }
        let rdev = meta.rdev();
        let relative = path.strip_prefix(&self.dev_root).ok()?;
        Some(DeviceNode {
            path: Path::new("/").join(relative),
            major: rustix::fs::major(rdev),
            minor: rustix::fs::minor(rdev),
            read_write: access(path, Access::READ_OK | Access::WRITE_OK).is_ok(),
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
        .find(|word| {
            word.split('.').count() >= 2
                && word
                    .split('.')
                    .all(|part| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit()))
        })
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let host = DriverHost {
            proc_root: root.path().into(),
            dev_root: root.path().into(),
        };
        assert_eq!(host.driver_version(), None);
        assert!(host.device_nodes().is_empty());
    }

    #[test]
    fn reads_version_file_under_the_proc_root() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("proc/driver/nvidia");
        fs::create_dir_all(&dir).unwrap();
        fs::write(
            dir.join("version"),
            "NVRM version: NVIDIA UNIX x86_64 Kernel Module  535.261.03  Wed\n",
        )
        .unwrap();
        let host = DriverHost {
            proc_root: root.path().into(),
            dev_root: root.path().into(),
        };
        assert_eq!(host.driver_version().as_deref(), Some("535.261.03"));
    }

    #[test]
    fn regular_files_are_not_device_nodes() {
        let root = tempfile::tempdir().unwrap();
        fs::create_dir_all(root.path().join("dev")).unwrap();
        fs::write(root.path().join("dev/nvidia0"), "").unwrap();
        let host = DriverHost {
            proc_root: root.path().into(),
            dev_root: root.path().into(),
        };
        assert!(host.device_nodes().is_empty());
    }

    #[test]
    fn finds_real_character_devices() {
        // /dev/null is a character device every Linux host has; link it in under a fake name.
        let root = tempfile::tempdir().unwrap();
        fs::create_dir_all(root.path().join("dev")).unwrap();
        std::os::unix::fs::symlink("/dev/null", root.path().join("dev/nvidiactl")).unwrap();
        let host = DriverHost {
            proc_root: root.path().into(),
            dev_root: root.path().into(),
        };
        let nodes = host.device_nodes();
        assert_eq!(nodes.len(), 1);
        assert_eq!(nodes[0].path, PathBuf::from("/dev/nvidiactl"));
        assert_eq!((nodes[0].major, nodes[0].minor), (1, 3));
        assert!(nodes[0].read_write);
    }
}
