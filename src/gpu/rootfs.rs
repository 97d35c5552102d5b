//! Paths inside a driver root. A driver root may be `/`, an unpacked package tree or a
//! containerized driver at `/run/nvidia/driver`; its symlinks are often absolute (Debian's
//! `/etc/alternatives`), so they must be followed *inside* the root, never on the host.

use std::collections::{HashMap, HashSet};
use std::ffi::{OsStr, OsString};
use std::fs;
use std::ops::Range;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

use rustix::fs::{Access, FileType, access};

/// How many symlinks one lookup may follow, as the kernel's limit.
const MAX_LINKS: usize = 40;

/// Resolves `path` (absolute, as seen inside `root`) to the real file under `root`, following
/// symlinks with absolute targets re-rooted. Returns the host path, or `None` when a component
/// is missing or the links loop.
pub fn resolve(root: &Path, path: &Path) -> Option<PathBuf> {
    Resolver::new(root).resolve(path)
}

/// What is at one path inside the root, as `lstat` (or a directory listing) says.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Entry {
    /// Missing, or not reachable (a component is not a directory, no permission).
    Missing,
    /// A symlink and its target: `None` until the target is read, and when it cannot be.
    Link(Option<PathBuf>),
    File,
    /// A directory or anything else that is neither a symlink nor a regular file.
    Other,
}

/// Why a walk stopped short.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Unresolved {
    /// A symlink was on the way: the host's own lookup of the joined path may differ.
    through_links: bool,
}

/// A resolved path.
#[derive(Debug)]
struct Walked {
    /// The real path, as seen inside the root.
    inside: Vec<u8>,
    /// It is a regular file.
    file: bool,
}

/// [`resolve`] for many paths under one root. Discovery resolves some hundred paths that share
/// most of their directories (`/usr`, `/usr/lib/<multiarch>`, ...) and lists the directories
/// that hold the libraries, so:
///
/// - each path inside the root is looked at (`lstat`, and `readlink` for a link) once;
/// - a listing of a real directory (no link on the way there) also records what each entry is,
///   from the kind the kernel returns with the names, and that nothing else is there, so the
///   entries of a listed directory cost no `lstat` at all.
///
/// The tree is assumed not to change while one resolver is in use. Paths inside the root are
/// handled as bytes, always normalised (`/` then names joined by single `/`s, no `.` or `..`).
#[derive(Debug)]
pub struct Resolver<'a> {
    root: &'a Path,
    seen: HashMap<OsString, Entry>,
    /// Names by directory (as asked for); `None` when it cannot be listed.
    listings: HashMap<PathBuf, Option<Vec<OsString>>>,
    /// Real directories inside the root whose every entry is in `seen`.
    complete: HashSet<OsString>,
    /// [`Self::walk`]'s buffers, kept between walks.
    scratch: (Vec<u8>, Vec<Range<usize>>),
}

impl<'a> Resolver<'a> {
    pub fn new(root: &'a Path) -> Self {
        Self {
            root,
            seen: HashMap::with_capacity(128),
            listings: HashMap::new(),
            complete: HashSet::new(),
            scratch: (Vec::new(), Vec::new()),
        }
    }

    /// The root this resolver looks under.
    pub fn root(&self) -> &'a Path {
        self.root
    }

    /// As [`resolve`].
    pub fn resolve(&mut self, path: &Path) -> Option<PathBuf> {
        let walked = self.walk(path).ok()?;
        Some(self.host(&walked.inside))
    }

    /// As [`resolve`], but only a regular file (after every link) counts.
    pub fn resolve_file(&mut self, path: &Path) -> Option<PathBuf> {
        let walked = self.walk(path).ok().filter(|walked| walked.file)?;
        Some(self.host(&walked.inside))
    }

    /// The names in directory `dir` (absolute, inside the root), in directory order, as
    /// `fs::read_dir` of `root + dir` gives them (entries that fail to read are left out);
    /// `None` when it cannot be read.
    pub fn list(&mut self, dir: &Path) -> Option<&[OsString]> {
        if !self.listings.contains_key(dir) {
            let names = self.read_listing(dir);
            self.listings.insert(dir.to_owned(), names);
        }
        self.listings.get(dir).and_then(Option::as_deref)
    }

    fn read_listing(&mut self, dir: &Path) -> Option<Vec<OsString>> {
        let host = join(self.root, dir);
        // Resolving `dir` costs nothing extra: its entries are resolved through it next.
        let real = match self.walk(dir) {
            // Missing with no link on the way: the host's lookup of `root + dir` fails as well.
            Err(Unresolved {
                through_links: false,
            }) => return None,
            Err(_) => None,
            // Reading the entries' kinds stands for `lstat`s only where those would succeed:
            // `dir` is `root + dir` itself, and may be searched, not just read.
            Ok(walked) => Some(walked.inside).filter(|real| {
                Path::new(OsStr::from_bytes(real)) == dir && access(&host, Access::EXEC_OK).is_ok()
            }),
        };
        let entries = fs::read_dir(&host).ok()?;
        let mut names = Vec::new();
        let mut every_kind = true;
        for entry in entries {
            let Ok(entry) = entry else {
                every_kind = false;
                continue;
            };
            let name = entry.file_name();
            if let Some(real) = &real {
                match entry.file_type() {
                    Ok(kind) => {
                        let known = if kind.is_symlink() {
                            Entry::Link(None)
                        } else if kind.is_file() {
                            Entry::File
                        } else {
                            Entry::Other
                        };
                        let mut path = Vec::with_capacity(real.len() + 1 + name.len());
                        path.extend_from_slice(real);
                        push_name(&mut path, name.as_bytes());
                        self.seen.entry(OsString::from_vec(path)).or_insert(known);
                    }
                    Err(_) => every_kind = false,
                }
            }
            names.push(name);
        }
        if let Some(real) = real.filter(|_| every_kind) {
            self.complete.insert(OsString::from_vec(real));
        }
        Some(names)
    }

    /// Where `path` leads, following links inside the root.
    fn walk(&mut self, path: &Path) -> Result<Walked, Unresolved> {
        // The names still to follow, as ranges of `names`, the next one last; a link's target
        // is added to `names` and its own names pushed on top.
        let (mut names, mut pending) = std::mem::take(&mut self.scratch);
        names.clear();
        names.extend_from_slice(path.as_os_str().as_bytes());
        pending.clear();
        push_ranges(&mut pending, &names, 0);
        let mut inside = vec![b'/'];
        // Whether `inside` is a regular file; `None` for the root, and after `..` or a link.
        let mut last = None;
        let mut links = 0;
        while let Some(range) = pending.pop() {
            let name = names.get(range).unwrap_or_default();
            if name == b".." {
                pop_name(&mut inside);
                last = None;
                continue;
            }
            let parent_len = inside.len();
            push_name(&mut inside, name);
            match self.entry(&inside) {
                Entry::Missing => {
                    self.scratch = (names, pending);
                    return Err(Unresolved {
                        through_links: links > 0,
                    });
                }
                Entry::Link(target) => {
                    inside.truncate(parent_len);
                    links += 1;
                    let Some(target) = target.filter(|_| links <= MAX_LINKS) else {
                        self.scratch = (names, pending);
                        return Err(Unresolved {
                            through_links: true,
                        });
                    };
                    let target = target.as_os_str().as_bytes();
                    if target.starts_with(b"/") {
                        inside.truncate(1);
                    }
                    let from = names.len();
                    names.extend_from_slice(target);
                    push_ranges(&mut pending, &names, from);
                    last = None;
                }
                entry => last = Some(entry == Entry::File),
            }
        }
        self.scratch = (names, pending);
        let file = match last {
            Some(file) => file,
            None => match self.seen.get(OsStr::from_bytes(&inside)) {
                Some(entry) => *entry == Entry::File,
                None => self.host(&inside).is_file(),
            },
        };
        Ok(Walked { inside, file })
    }

    /// What is at `inside` (a normalised path inside the root), looking only the first time.
    fn entry(&mut self, inside: &[u8]) -> Entry {
        let key = OsStr::from_bytes(inside);
        let listed_link = match self.seen.get(key) {
            Some(Entry::Link(None)) => true,
            Some(entry) => return entry.clone(),
            None if self.complete.contains(OsStr::from_bytes(parent_of(inside))) => {
                return Entry::Missing;
            }
            None => false,
        };
        let host = self.host(inside);
        let kind = if listed_link {
            Ok(FileType::Symlink)
        } else {
            rustix::fs::lstat(&host).map(|stat| FileType::from_raw_mode(stat.st_mode))
        };
        let entry = match kind {
            Err(_) => Entry::Missing,
            Ok(FileType::Symlink) => Entry::Link(read_link(&host)),
            Ok(FileType::RegularFile) => Entry::File,
            Ok(_) => Entry::Other,
        };
        self.seen.insert(key.to_owned(), entry.clone());
        entry
    }

    /// The host path of `inside`.
    fn host(&self, inside: &[u8]) -> PathBuf {
        self.root.join(OsStr::from_bytes(
            inside.strip_prefix(b"/").unwrap_or(inside),
        ))
    }
}

/// A symlink's target; `None` when it cannot be read.
fn read_link(host: &Path) -> Option<PathBuf> {
    let target = rustix::fs::readlink(host, Vec::new()).ok()?;
    Some(PathBuf::from(OsString::from_vec(target.into_bytes())))
}

/// Pushes the ranges of the names (and `..`s) in `bytes[from..]` onto `pending`, the first name
/// last; empty names and `.` are left out, as `Path::components` leaves them out.
fn push_ranges(pending: &mut Vec<Range<usize>>, bytes: &[u8], from: usize) {
    let first = pending.len();
    let mut start = from;
    for name in bytes.get(from..).unwrap_or_default().split(|&b| b == b'/') {
        if !name.is_empty() && name != b"." {
            pending.push(start..start + name.len());
        }
        start += name.len() + 1;
    }
    if let Some(pushed) = pending.get_mut(first..) {
        pushed.reverse();
    }
}

/// `path` + `/name`, for a normalised `path`.
fn push_name(path: &mut Vec<u8>, name: &[u8]) {
    if path.len() > 1 {
        path.push(b'/');
    }
    path.extend_from_slice(name);
}

/// Drops the last name of a normalised `path`; the root stays the root.
fn pop_name(path: &mut Vec<u8>) {
    let len = parent_of(path).len();
    path.truncate(len);
}

/// The directory holding a normalised `path`; the root for the root.
fn parent_of(path: &[u8]) -> &[u8] {
    match path.iter().rposition(|&b| b == b'/') {
        Some(0) | None => b"/",
        Some(slash) => path.get(..slash).unwrap_or(b"/"),
    }
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
    fn listings_answer_later_lookups_the_same_way() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        fs::create_dir_all(r.join("usr/lib/real/sub")).unwrap();
        fs::write(r.join("usr/lib/real/libfoo.so.1.2"), "x").unwrap();
        symlink("libfoo.so.1.2", r.join("usr/lib/real/libfoo.so.1")).unwrap();
        symlink("/usr/lib/real", r.join("usr/lib/current")).unwrap();
        symlink("real", r.join("usr/lib/relative")).unwrap();
        symlink("missing", r.join("usr/lib/real/dangling")).unwrap();
        let names = |list: Option<&[std::ffi::OsString]>| -> Option<Vec<String>> {
            let mut names: Vec<String> = list?
                .iter()
                .map(|name| name.to_string_lossy().into_owned())
                .collect();
            names.sort();
            Some(names)
        };
        let mut resolver = Resolver::new(r);
        // As fs::read_dir sees `root + dir`, through links or not: the host follows
        // `/usr/lib/current`'s absolute target outside the root, to nothing.
        for dir in [
            "/usr/lib/real",
            "/usr/lib/relative",
            "/usr/lib/current",
            "/usr/lib",
            "/",
            "/usr/lib/real/sub",
            "/usr/lib/nothing",
            "/usr/lib/real/libfoo.so.1.2",
            "/usr/lib/relative/x/y",
        ] {
            let expected = fs::read_dir(join(r, Path::new(dir))).ok().map(|entries| {
                let mut names: Vec<String> = entries
                    .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
                    .collect();
                names.sort();
                names
            });
            assert_eq!(names(resolver.list(Path::new(dir))), expected, "{dir}");
        }
        // What the listings taught gives the answers a fresh lookup gives.
        for path in [
            "/usr/lib/real/libfoo.so.1",
            "/usr/lib/real/libfoo.so.1.2",
            "/usr/lib/real/dangling",
            "/usr/lib/real/sub",
            "/usr/lib/real/absent",
            "/usr/lib/current/libfoo.so.1",
            "/usr/lib/relative/sub/../dangling",
            "/usr/lib/absent/libfoo.so.1",
            "/usr/lib/real/sub/../libfoo.so.1",
        ] {
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
