//! Paths inside a driver root. A driver root may be `/`, an unpacked package tree or a
//! containerized driver at `/run/nvidia/driver`; its symlinks are often absolute (Debian's
//! `/etc/alternatives`), so they must be followed *inside* the root, never on the host.

use std::fs;
use std::path::{Component, Path, PathBuf};

/// How many symlinks one lookup may follow, as the kernel's limit.
const MAX_LINKS: usize = 40;

/// Resolves `path` (absolute, as seen inside `root`) to the real file under `root`, following
/// symlinks with absolute targets re-rooted. Returns the host path, or `None` when a component
/// is missing or the links loop.
pub fn resolve(root: &Path, path: &Path) -> Option<PathBuf> {
    let mut pending: Vec<std::ffi::OsString> = path
        .components()
        .rev()
        .filter_map(|c| match c {
            Component::Normal(name) => Some(name.to_owned()),
            Component::ParentDir => Some("..".into()),
            _ => None,
        })
        .collect();
    let mut inside = PathBuf::from("/");
    let mut links = 0;
    while let Some(name) = pending.pop() {
        if name == ".." {
            inside.pop();
            continue;
        }
        let candidate = inside.join(&name);
        let host = join(root, &candidate);
        let meta = fs::symlink_metadata(&host).ok()?;
        if meta.file_type().is_symlink() {
            links += 1;
            if links > MAX_LINKS {
                return None;
            }
            let target = fs::read_link(&host).ok()?;
            if target.is_absolute() {
                inside = PathBuf::from("/");
            }
            pending.extend(target.components().rev().filter_map(|c| match c {
                Component::Normal(part) => Some(part.to_owned()),
                Component::ParentDir => Some("..".into()),
                _ => None,
            }));
        } else {
            inside = candidate;
        }
    }
    Some(join(root, &inside))
}

/// `root` + absolute `path`.
pub fn join(root: &Path, path: &Path) -> PathBuf {
    root.join(path.strip_prefix("/").unwrap_or(path))
}

/// The path as seen inside `root` (the inverse of [`join`]); `None` when it is outside.
pub fn inside(root: &Path, host: &Path) -> Option<PathBuf> {
    host.strip_prefix(root)
        .ok()
        .map(|rest| Path::new("/").join(rest))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn absolute_links_stay_inside_the_root() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        fs::create_dir_all(r.join("usr/lib/x86_64-linux-gnu/nvidia/current")).unwrap();
        fs::create_dir_all(r.join("etc/alternatives")).unwrap();
        fs::write(
            r.join("usr/lib/x86_64-linux-gnu/nvidia/current/libcuda.so.550.1"),
            "x",
        )
        .unwrap();
        symlink(
            "libcuda.so.550.1",
            r.join("usr/lib/x86_64-linux-gnu/nvidia/current/libcuda.so.1"),
        )
        .unwrap();
        symlink(
            "/usr/lib/x86_64-linux-gnu/nvidia/current/libcuda.so.1",
            r.join("etc/alternatives/libcuda.so.1"),
        )
        .unwrap();
        symlink(
            "/etc/alternatives/libcuda.so.1",
            r.join("usr/lib/x86_64-linux-gnu/libcuda.so.1"),
        )
        .unwrap();
        assert_eq!(
            resolve(r, Path::new("/usr/lib/x86_64-linux-gnu/libcuda.so.1")),
            Some(r.join("usr/lib/x86_64-linux-gnu/nvidia/current/libcuda.so.550.1"))
        );
    }

    #[test]
    fn dangling_and_looping_links_give_none() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        symlink("/nowhere", r.join("dangling")).unwrap();
        symlink("/b", r.join("a")).unwrap();
        symlink("/a", r.join("b")).unwrap();
        assert_eq!(resolve(r, Path::new("/dangling")), None);
        assert_eq!(resolve(r, Path::new("/a")), None);
    }

    #[test]
    fn parent_components_cannot_escape() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        fs::write(r.join("f"), "x").unwrap();
        symlink("../../../../f", r.join("up")).unwrap();
        assert_eq!(resolve(r, Path::new("/up")), Some(r.join("f")));
        assert_eq!(
            inside(r, &r.join("usr/lib")),
            Some(PathBuf::from("/usr/lib"))
        );
    }
}
