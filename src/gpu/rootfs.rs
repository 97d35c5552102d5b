//! Paths inside a driver root. A driver root may be `/`, an unpacked package tree or a
//! containerized driver at `/run/nvidia/driver`; its symlinks are often absolute (Debian's
//! `/etc/alternatives`), so they must be followed *inside* the root, never on the host.

use std::collections::HashMap;
use std::fs;
use std::path::{Component, Path, PathBuf};

/// How many symlinks one lookup may follow, as the kernel's limit.
const MAX_LINKS: usize = 40;

/// Resolves `path` (absolute, as seen inside `root`) to the real file under `root`, following
/// symlinks with absolute targets re-rooted. Returns the host path, or `None` when a component
/// is missing or the links loop.
pub fn resolve(root: &Path, path: &Path) -> Option<PathBuf> {
    Resolver::new(root).resolve(path)
}

/// What `lstat` found at one path inside the root.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Entry {
    /// Missing, or not reachable (a component is not a directory, no permission).
    Missing,
    Link(PathBuf),
    File,
    /// A directory or anything else that is neither a symlink nor a regular file.
    Other,
}

/// [`resolve`] for many paths under one root. Discovery resolves some hundred paths that share
/// most of their directories (`/usr`, `/usr/lib/<multiarch>`, ...), so each path inside the
/// root is looked at (`lstat`, and `readlink` for a link) once and remembered; the tree is
/// assumed not to change while one resolver is in use.
#[derive(Debug)]
pub struct Resolver<'a> {
    root: &'a Path,
    seen: HashMap<PathBuf, Entry>,
}

impl<'a> Resolver<'a> {
    pub fn new(root: &'a Path) -> Self {
        Self {
            root,
            seen: HashMap::new(),
        }
    }

    /// The root this resolver looks under.
    pub fn root(&self) -> &'a Path {
        self.root
    }

    /// As [`resolve`].
    pub fn resolve(&mut self, path: &Path) -> Option<PathBuf> {
        self.walk(path).map(|(host, _)| host)
    }

    /// As [`resolve`], but only a regular file (after every link) counts.
    pub fn resolve_file(&mut self, path: &Path) -> Option<PathBuf> {
        self.walk(path)
            .filter(|(_, file)| *file)
            .map(|(host, _)| host)
    }

    /// The host path `path` resolves to, and whether it is a regular file.
    fn walk(&mut self, path: &Path) -> Option<(PathBuf, bool)> {
        let mut pending: Vec<std::ffi::OsString> = Vec::new();
        push_components(&mut pending, path);
        let mut inside = PathBuf::from("/");
        let mut links = 0;
        while let Some(name) = pending.pop() {
            if name == ".." {
                inside.pop();
                continue;
            }
            let candidate = inside.join(&name);
            match self.entry(&candidate) {
                Entry::Missing => return None,
                Entry::Link(target) => {
                    links += 1;
                    if links > MAX_LINKS {
                        return None;
                    }
                    if target.is_absolute() {
                        inside = PathBuf::from("/");
                    }
                    push_components(&mut pending, &target);
                }
                Entry::File | Entry::Other => inside = candidate,
            }
        }
        let host = join(self.root, &inside);
        // The last step landed on a path already looked at, unless it is the root itself.
        let file = match self.seen.get(&inside) {
            Some(entry) => *entry == Entry::File,
            None => host.is_file(),
        };
        Some((host, file))
    }

    /// What is at `inside` (a path inside the root), looking only the first time.
    fn entry(&mut self, inside: &Path) -> Entry {
        if let Some(entry) = self.seen.get(inside) {
            return entry.clone();
        }
        let host = join(self.root, inside);
        let entry = match fs::symlink_metadata(&host) {
            Err(_) => Entry::Missing,
            Ok(meta) if meta.file_type().is_symlink() => {
                fs::read_link(&host).map_or(Entry::Missing, Entry::Link)
            }
            Ok(meta) if meta.is_file() => Entry::File,
            Ok(_) => Entry::Other,
        };
        self.seen.insert(inside.to_owned(), entry.clone());
        entry
    }
}

/// Pushes the names and `..`s of `path` onto `pending` so that the first one is popped first.
fn push_components(pending: &mut Vec<std::ffi::OsString>, path: &Path) {
    pending.extend(path.components().rev().filter_map(|c| match c {
        Component::Normal(name) => Some(name.to_owned()),
        Component::ParentDir => Some("..".into()),
        _ => None,
    }));
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
    fn one_resolver_answers_many_paths_as_resolve_does() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        fs::create_dir_all(r.join("usr/lib/real")).unwrap();
        fs::write(r.join("usr/lib/real/libfoo.so.1.2"), "x").unwrap();
        symlink("libfoo.so.1.2", r.join("usr/lib/real/libfoo.so.1")).unwrap();
        symlink("/usr/lib/real", r.join("usr/lib/current")).unwrap();
        symlink("/nowhere", r.join("usr/lib/dangling")).unwrap();
        let paths = [
            "/usr/lib/current/libfoo.so.1",
            "/usr/lib/current/libfoo.so.1.2",
            "/usr/lib/current",
            "/usr/lib/real/../current/libfoo.so.1",
            "/usr/lib/dangling",
            "/usr/lib/missing/libfoo.so.1",
            "/usr/lib/real/libfoo.so.1.2/x",
            "/",
        ];
        let mut resolver = Resolver::new(r);
        // Twice: the second round answers from what the first one saw.
        for _ in 0..2 {
            for path in paths {
                let path = Path::new(path);
                let expected = resolve(r, path);
                assert_eq!(resolver.resolve(path), expected, "{}", path.display());
                assert_eq!(
                    resolver.resolve_file(path),
                    expected.filter(|host| host.is_file()),
                    "{}",
                    path.display()
                );
            }
        }
        assert_eq!(
            resolver.resolve_file(Path::new("/usr/lib/current/libfoo.so.1")),
            Some(r.join("usr/lib/real/libfoo.so.1.2"))
        );
        assert_eq!(resolver.resolve_file(Path::new("/usr/lib/current")), None);
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
