//! The build context `podlab build` sends: the context directory as a tar archive, less what
//! its `.containerignore` (else `.dockerignore`) leaves out.
//!
//! Deep-learning projects keep data sets and checkpoints (gigabytes) in the project directory,
//! next to the Containerfile. `podman-api`'s packer read the whole directory into memory and
//! sent everything; here the directory is walked once, ignored paths are never opened (an
//! ignored directory is not even entered unless a `!` exception could match inside it), and
//! the archive is written to an anonymous temp file that the request then streams from disk.
//!
//! Patterns follow Docker's and Podman's reading of the ignore file: relative to the context
//! root and anchored there, `*` and `?` within one path component, `[...]` classes, `**` for
//! any number of directories, `\` escapes, `!pattern` re-includes, later lines win, `#` starts
//! a comment line, blank lines are skipped, and leading `/` and `./` are dropped. A pattern
//! that matches a directory matches everything under it. The Containerfile and the ignore
//! file itself are always sent, as Podman and BuildKit do.

use std::collections::HashSet;
use std::ffi::OsString;
use std::fs::{self, File, Metadata};
use std::io::{self, BufWriter, Read, Seek};
use std::path::{Component, Path, PathBuf};

use globset::{GlobBuilder, GlobMatcher};

use crate::{Error, Result};

/// The ignore files Podman reads in the context root, in order of preference.
pub const IGNORE_FILES: [&str; 2] = [".containerignore", ".dockerignore"];

/// A packed build context, rewound and ready to send.
#[derive(Debug)]
pub struct Packed {
    /// The archive: an anonymous temp file, gone when closed.
    pub file: File,
    /// The archive's size in bytes.
    pub size: u64,
    /// Files, directories and links in the archive.
    pub entries: u64,
    /// Paths left out (an ignored directory counts once, unless something below it had to
    /// be looked at).
    pub ignored: u64,
    /// The ignore file that was read, if any.
    pub ignore_file: Option<&'static str>,
}

/// One line of an ignore file.
#[derive(Debug)]
struct Rule {
    /// The whole pattern, matched against a path relative to the context root.
    matcher: GlobMatcher,
    /// The pattern's components, each matched against one path component; `None` for a
    /// component holding `**`, which can span any number of them.
    components: Vec<Option<GlobMatcher>>,
    /// A `!pattern`: re-includes what it matches.
    exception: bool,
}

/// The rules of an ignore file plus the paths that are sent whatever it says.
#[derive(Debug, Default)]
pub struct IgnoreRules {
    rules: Vec<Rule>,
    always: Vec<PathBuf>,
}

impl IgnoreRules {
    /// Parses ignore-file text; `source` names the file in errors.
    pub fn parse(text: &str, source: &str) -> Result<Self> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let mut rules = Vec::new();
        for (index, line) in text.lines().enumerate() {
            if line.starts_with('#') {
                continue;
            }
            let line = line.trim();
            let (exception, pattern) = match line.strip_prefix('!') {
                Some(rest) => (true, rest.trim()),
                None => (false, line),
            };
            let pattern = clean(pattern);
            if pattern.is_empty() {
                continue;
            }
            let invalid = |err: globset::Error| {
                Error::user(format!(
                    "{source} line {}: invalid pattern {line:?}: {err}",
                    index + 1
                ))
                .hint(format!("fix or remove that line of {source}"))
            };
            let components = pattern
                .split('/')
                .map(|part| {
                    if part.contains("**") {
                        Ok(None)
                    } else {
                        glob(part).map(Some)
                    }
                })
                .collect::<std::result::Result<_, _>>()
                .map_err(invalid)?;
            rules.push(Rule {
                matcher: glob(&pattern).map_err(invalid)?,
                components,
                exception,
            });
        }
        Ok(Self {
            rules,
            always: Vec::new(),
        })
    }

    /// Sends `path` (relative to the context root) whatever the rules say.
    pub fn always_send(&mut self, path: &Path) {
        self.always.push(normalize(path));
    }

    /// Whether `path` (relative to the context root) is left out: the last rule that matches
    /// it or one of its parent directories decides.
    pub fn is_ignored(&self, path: &Path) -> bool {
        if self.always.iter().any(|always| always == path) {
            return false;
        }
        let mut ignored = false;
        for rule in &self.rules {
            // A rule can only change the verdict the other way.
            if rule.exception != ignored {
                continue;
            }
            if path.ancestors().any(|candidate| {
                !candidate.as_os_str().is_empty() && rule.matcher.is_match(candidate)
            }) {
                ignored = !rule.exception;
            }
        }
        ignored
    }

    /// Whether something under the ignored directory `dir` could still be sent: an always-sent
    /// path lies below it, or an exception's leading components match `dir`'s.
    pub fn may_send_below(&self, dir: &Path) -> bool {
        if self
            .always
            .iter()
            .any(|always| always != dir && always.starts_with(dir))
        {
            return true;
        }
        let parts: Vec<&std::ffi::OsStr> = dir.iter().collect();
        self.rules
            .iter()
            .filter(|rule| rule.exception)
            .any(|rule| could_match_below(&rule.components, &parts))
    }
}

/// Whether a pattern with these components could match a path strictly below `dir`.
fn could_match_below(components: &[Option<GlobMatcher>], dir: &[&std::ffi::OsStr]) -> bool {
    for (index, part) in dir.iter().enumerate() {
        match components.get(index) {
            // The pattern ends at or above `dir`: it matches `dir` itself or nothing here,
            // and a later rule ignored `dir` and so everything below it.
            None => return false,
            Some(None) => return true,
            Some(Some(matcher)) => {
                if !matcher.is_match(part) {
                    return false;
                }
            }
        }
    }
    components.len() > dir.len()
}

/// A Docker-style glob: `*`, `?` and classes stop at `/`; `{` and `}` are literal.
fn glob(pattern: &str) -> std::result::Result<GlobMatcher, globset::Error> {
    let mut escaped = String::with_capacity(pattern.len());
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                escaped.push(c);
                if let Some(next) = chars.next() {
                    escaped.push(next);
                }
            }
            '{' | '}' => {
                escaped.push('\\');
                escaped.push(c);
            }
            _ => escaped.push(c),
        }
    }
    Ok(GlobBuilder::new(&escaped)
        .literal_separator(true)
        .backslash_escape(true)
        .build()?
        .compile_matcher())
}

/// A pattern as Go's `filepath.Clean` leaves it, without a leading `/`: no empty or `.`
/// components, `..` folded into its parent.
fn clean(pattern: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in pattern.split('/') {
        match part {
            "" | "." => {}
            ".." if parts.last().is_some_and(|last| *last != "..") => {
                parts.pop();
            }
            _ => parts.push(part),
        }
    }
    parts.join("/")
}

/// A relative path without `.` components (`./Containerfile` is `Containerfile`).
fn normalize(path: &Path) -> PathBuf {
    path.components()
        .filter(|component| !matches!(component, Component::CurDir))
        .collect()
}

/// Reads the context's ignore file, if any, and the rules it holds, with `containerfile`
/// (relative to the context) and the ignore file always sent.
fn rules_for(context: &Path, containerfile: &Path) -> Result<(IgnoreRules, Option<&'static str>)> {
    for name in IGNORE_FILES {
        let path = context.join(name);
        match fs::read(&path) {
            Ok(bytes) => {
                let text = String::from_utf8_lossy(&bytes);
                let mut rules = IgnoreRules::parse(&text, name)?;
                rules.always_send(Path::new(name));
                rules.always_send(containerfile);
                return Ok((rules, Some(name)));
            }
            Err(err) if err.kind() == io::ErrorKind::NotFound => {}
            Err(err) => return Err(unreadable(&path, &err)),
        }
    }
    Ok((IgnoreRules::default(), None))
}

fn unreadable(path: &Path, err: &io::Error) -> Error {
    Error::user(format!(
        "cannot read {} for the build context: {err}",
        path.display()
    ))
    .hint("make it readable (chmod u+r), or leave it out of the build: add its path to .containerignore in the context directory")
}

/// Where the archive is written: `$TMPDIR` when set, else `/var/tmp` (on disk, where Podman
/// itself keeps large temporary files; `/tmp` is often memory), else the system default.
fn spool_dir() -> PathBuf {
    if std::env::var_os("TMPDIR").is_none() {
        let var_tmp = Path::new("/var/tmp");
        if var_tmp.is_dir() {
            return var_tmp.to_owned();
        }
    }
    std::env::temp_dir()
}

/// Packs `context` into a temp file, honouring its ignore file; `containerfile` is relative to
/// `context` and always sent. Blocking: call it off the async runtime.
pub fn pack(context: &Path, containerfile: &Path) -> Result<Packed> {
    let (rules, ignore_file) = rules_for(context, containerfile)?;
    let dir = spool_dir();
    let spool_error = |err: &io::Error| {
        Error::env(format!(
            "cannot write the build context archive in {}: {err}",
            dir.display()
        ))
        .hint("free space there, or point TMPDIR at a directory with room for the context")
    };
    let file = tempfile::tempfile_in(&dir).map_err(|err| spool_error(&err))?;
    let mut packer = Packer {
        root: context,
        rules: &rules,
        tar: tar::Builder::new(BufWriter::new(file)),
        sent_dirs: HashSet::new(),
        entries: 0,
        ignored: 0,
    };
    packer.walk(Path::new(""))?;
    let Packer {
        tar,
        entries,
        ignored,
        ..
    } = packer;
    let mut file = tar
        .into_inner()
        .map_err(|err| spool_error(&err))?
        .into_inner()
        .map_err(|err| spool_error(err.error()))?;
    let size = file.stream_position().map_err(|err| spool_error(&err))?;
    file.rewind().map_err(|err| spool_error(&err))?;
    Ok(Packed {
        file,
        size,
        entries,
        ignored,
        ignore_file,
    })
}

struct Packer<'a> {
    root: &'a Path,
    rules: &'a IgnoreRules,
    tar: tar::Builder<BufWriter<File>>,
    /// Directories already in the archive.
    sent_dirs: HashSet<PathBuf>,
    entries: u64,
    ignored: u64,
}

impl Packer<'_> {
    /// Packs what `dir` (relative to the root) holds, in name order.
    fn walk(&mut self, dir: &Path) -> Result<()> {
        let abs = self.root.join(dir);
        let mut names = fs::read_dir(&abs)
            .and_then(|entries| {
                entries
                    .map(|entry| entry.map(|entry| entry.file_name()))
                    .collect::<io::Result<Vec<OsString>>>()
            })
            .map_err(|err| unreadable(&abs, &err))?;
        names.sort();
        for name in names {
            let relative = dir.join(&name);
            let path = self.root.join(&relative);
            let meta = fs::symlink_metadata(&path).map_err(|err| unreadable(&path, &err))?;
            let ignored = self.rules.is_ignored(&relative);
            if !ignored {
                self.add(&relative, &path, &meta)?;
                if meta.is_dir() {
                    self.walk(&relative)?;
                }
            } else if meta.is_dir() && self.rules.may_send_below(&relative) {
                // Counted as it goes: what it holds is ignored, or sent.
                self.walk(&relative)?;
            } else {
                self.ignored += 1;
            }
        }
        Ok(())
    }

    /// Adds one entry, after any parent directories not yet in the archive (those of a file
    /// sent from inside an ignored directory).
    fn add(&mut self, relative: &Path, path: &Path, meta: &Metadata) -> Result<()> {
        let missing: Vec<&Path> = relative
            .ancestors()
            .skip(1)
            .take_while(|parent| {
                !parent.as_os_str().is_empty() && !self.sent_dirs.contains(*parent)
            })
            .collect();
        for parent in missing.into_iter().rev() {
            let parent_path = self.root.join(parent);
            let parent_meta =
                fs::symlink_metadata(&parent_path).map_err(|err| unreadable(&parent_path, &err))?;
            self.append(parent, &parent_path, &parent_meta)?;
        }
        self.append(relative, path, meta)
    }

    fn append(&mut self, relative: &Path, path: &Path, meta: &Metadata) -> Result<()> {
        let mut header = tar::Header::new_gnu();
        header.set_metadata_in_mode(meta, tar::HeaderMode::Complete);
        // Owned by root in the archive, as `docker build` and `podman-remote build` send it.
        header.set_uid(0);
        header.set_gid(0);
        let kind = meta.file_type();
        let written = if kind.is_dir() {
            self.sent_dirs.insert(relative.to_owned());
            self.tar.append_data(&mut header, relative, io::empty())
        } else if kind.is_symlink() {
            let target = fs::read_link(path).map_err(|err| unreadable(path, &err))?;
            self.tar.append_link(&mut header, relative, target)
        } else if kind.is_file() {
            let file = File::open(path).map_err(|err| unreadable(path, &err))?;
            let mut reader = Exact {
                file,
                left: meta.len(),
                failed: None,
            };
            let written = self.tar.append_data(&mut header, relative, &mut reader);
            if let Some(err) = reader.failed {
                return Err(unreadable(path, &err));
            }
            written
        } else {
            // Sockets, FIFOs and device nodes have no content a build could copy.
            tracing::warn!(
                "left out of the build context: {} is not a file, directory or link",
                path.display()
            );
            self.ignored += 1;
            return Ok(());
        };
        written.map_err(|err| {
            Error::env(format!("cannot write the build context archive: {err}")).hint(
                "free space in $TMPDIR (or /var/tmp), or point TMPDIR at a directory with room",
            )
        })?;
        self.entries += 1;
        Ok(())
    }
}

/// A file's first `left` bytes, as its header announced them; a file that shrank meanwhile
/// is an error (the archive would be corrupt), a file that grew is cut at the announced size.
struct Exact {
    file: File,
    left: u64,
    /// The read error, kept to name the file in the error podlab reports.
    failed: Option<io::Error>,
}

impl Read for Exact {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let want = usize::try_from(self.left).map_or(buf.len(), |left| left.min(buf.len()));
        let Some(buf) = buf.get_mut(..want) else {
            return Ok(0);
        };
        if buf.is_empty() {
            return Ok(0);
        }
        let result = match self.file.read(buf) {
            Ok(0) => Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the file shrank while it was packed",
            )),
            other => other,
        };
        match result {
            Ok(n) => {
                self.left -= n as u64;
                Ok(n)
            }
            Err(err) => {
                let kind = err.kind();
                self.failed = Some(err);
                Err(io::Error::new(kind, "read failed"))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(text: &str) -> IgnoreRules {
        let mut rules = IgnoreRules::parse(text, ".containerignore").unwrap();
        rules.always_send(Path::new(".containerignore"));
        rules.always_send(Path::new("./docker/Containerfile"));
        rules
    }

    #[test]
    fn ignore_patterns_follow_docker() {
        // (ignore file, path, ignored)
        let table: &[(&str, &str, bool)] = &[
            // anchored at the root, a directory match covers everything below it
            ("data", "data", true),
            ("data", "data/big.bin", true),
            ("data", "data/a/b/c", true),
            ("data", "src/data", false),
            ("data", "database", false),
            ("/data/", "data/x", true),
            ("./data", "data/x", true),
            ("data/../ckpt", "ckpt/x", true),
            // `*` and `?` stay within one component
            ("*.ckpt", "model.ckpt", true),
            ("*.ckpt", "runs/model.ckpt", false),
            ("*/*.ckpt", "runs/model.ckpt", true),
            ("run?", "run1/x", true),
            ("run?", "run10", false),
            ("[a-c].txt", "b.txt", true),
            ("[!a-c].txt", "b.txt", false),
            ("[!a-c].txt", "d.txt", true),
            // `**` spans any number of directories, none included
            ("**/*.pyc", "a.pyc", true),
            ("**/*.pyc", "src/pkg/a.pyc", true),
            ("**/__pycache__", "src/__pycache__/a", true),
            ("data/**", "data/x/y", true),
            ("data/**", "data", false),
            ("a/**/b", "a/b", true),
            ("a/**/b", "a/x/y/b", true),
            ("**", "anything/at/all", true),
            // `!` re-includes; the last matching line wins
            ("data\n!data/keep.txt", "data/keep.txt", false),
            ("data\n!data/keep.txt", "data/other.txt", true),
            ("*.md\n!README.md", "README.md", false),
            ("!README.md\n*.md", "README.md", true),
            ("data\n!data/keep\ndata/keep/tmp", "data/keep/tmp/x", true),
            ("data\n!data/keep\ndata/keep/tmp", "data/keep/y", false),
            // comments, blank lines, surrounding spaces, literal braces, escapes
            ("# data\n\n  \n", "# data", false),
            ("# data", "data", false),
            ("  data  ", "data/x", true),
            ("{a,b}", "a", false),
            ("{a,b}", "{a,b}", true),
            ("\\*", "*", true),
            ("\\*", "x", false),
            // the Containerfile and the ignore file are always sent
            (".containerignore", ".containerignore", false),
            ("*\n.*", ".containerignore", false),
            ("docker", "docker/Containerfile", false),
            ("docker", "docker/other", true),
            ("**", "docker/Containerfile", false),
        ];
        for (text, path, ignored) in table {
            assert_eq!(
                rules(text).is_ignored(Path::new(path)),
                *ignored,
                "{text:?} on {path}"
            );
        }
    }

    #[test]
    fn ignored_directories_are_entered_only_when_something_below_may_be_sent() {
        // (ignore file, ignored directory, entered)
        let table: &[(&str, &str, bool)] = &[
            ("data", "data", false),
            ("data\n!data/keep.txt", "data", true),
            ("data\n!data/keep.txt", "data/sub", false),
            ("data\n!data/*/keep.txt", "data/sub", true),
            ("data\n!data/sub", "data/other", false),
            ("data\n!**/*.py", "data/a/b", true),
            ("data\n!other/x", "data", false),
            // the path to an always-sent file
            ("docker", "docker", true),
            ("*", "docker", true),
            ("*", "src", false),
        ];
        for (text, dir, entered) in table {
            assert_eq!(
                rules(text).may_send_below(Path::new(dir)),
                *entered,
                "{text:?} on {dir}"
            );
        }
    }

    #[test]
    fn a_bad_pattern_names_its_line() {
        let err = IgnoreRules::parse("data\n[z-a\n", ".dockerignore").unwrap_err();
        assert!(err.message().contains(".dockerignore line 2"), "{err}");
        assert_eq!(err.exit_code(), 1);
    }

    fn write(path: &Path, text: &str) {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
    }

    /// The archive's entries: (path, kind, link target, content, mode).
    fn entries(packed: Packed) -> Vec<(String, char, String, String, u32)> {
        let mut archive = tar::Archive::new(packed.file);
        archive
            .entries()
            .unwrap()
            .map(|entry| {
                let mut entry = entry.unwrap();
                let header = entry.header().clone();
                let mut content = String::new();
                entry.read_to_string(&mut content).unwrap();
                let kind = match header.entry_type() {
                    tar::EntryType::Directory => 'd',
                    tar::EntryType::Symlink => 'l',
                    tar::EntryType::Regular => 'f',
                    other => panic!("unexpected entry type {other:?}"),
                };
                let path = entry.path().unwrap().display().to_string();
                let target = entry
                    .link_name()
                    .unwrap()
                    .map(|target| target.display().to_string())
                    .unwrap_or_default();
                (path, kind, target, content, header.mode().unwrap() & 0o7777)
            })
            .collect()
    }

    #[test]
    fn packs_what_the_ignore_file_leaves() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let ctx = dir.path();
        write(
            &ctx.join(".containerignore"),
            "# data sets stay home\ndata\n!data/labels.csv\n*.ckpt\ndocker\n",
        );
        write(&ctx.join("docker/Containerfile"), "FROM x\n");
        write(&ctx.join("docker/notes"), "ignored\n");
        write(&ctx.join("data/big.bin"), "gigabytes\n");
        write(&ctx.join("data/labels.csv"), "a,b\n");
        write(&ctx.join("src/train.py"), "print(1)\n");
        write(&ctx.join("model.ckpt"), "weights\n");
        write(&ctx.join("run.sh"), "#!/bin/sh\n");
        fs::set_permissions(ctx.join("run.sh"), fs::Permissions::from_mode(0o750)).unwrap();
        // Links are sent as links, never followed, dangling or not.
        std::os::unix::fs::symlink("data/big.bin", ctx.join("link")).unwrap();
        std::os::unix::fs::symlink("/nowhere", ctx.join("dangling")).unwrap();
        std::os::unix::fs::symlink(dir.path().join("src"), ctx.join("srclink")).unwrap();
        // An ignored file no one may read is never opened.
        write(&ctx.join("data/secret"), "x");
        fs::set_permissions(ctx.join("data/secret"), fs::Permissions::from_mode(0o000)).unwrap();

        let packed = pack(ctx, Path::new("docker/Containerfile")).unwrap();
        assert_eq!(packed.ignore_file, Some(".containerignore"));
        // data/big.bin, data/secret, docker/notes, model.ckpt
        assert_eq!(packed.ignored, 4);
        assert_eq!(packed.entries, 11);
        let size = packed.size;
        let entries = entries(packed);
        let names: Vec<&str> = entries.iter().map(|entry| entry.0.as_str()).collect();
        assert_eq!(
            names,
            [
                ".containerignore",
                "dangling",
                "data",
                "data/labels.csv",
                "docker",
                "docker/Containerfile",
                "link",
                "run.sh",
                "src",
                "src/train.py",
                "srclink",
            ]
        );
        assert_eq!(size % 512, 0);
        let find = |name: &str| entries.iter().find(|entry| entry.0 == name).unwrap();
        assert_eq!(find("link").1, 'l');
        assert_eq!(find("link").2, "data/big.bin");
        assert_eq!(find("dangling").2, "/nowhere");
        assert_eq!(find("srclink").1, 'l');
        assert_eq!(find("data").1, 'd');
        assert_eq!(find("data/labels.csv").3, "a,b\n");
        assert_eq!(find("docker/Containerfile").3, "FROM x\n");
        assert_eq!(find("run.sh").4, 0o750);
    }

    #[test]
    fn without_an_ignore_file_everything_is_sent_and_dockerignore_is_the_fallback() {
        let dir = tempfile::tempdir().unwrap();
        let ctx = dir.path();
        write(&ctx.join("Containerfile"), "FROM x\n");
        write(&ctx.join("data/big.bin"), "x");
        let packed = pack(ctx, Path::new("Containerfile")).unwrap();
        assert_eq!((packed.ignore_file, packed.ignored), (None, 0));
        let names: Vec<String> = entries(packed).into_iter().map(|entry| entry.0).collect();
        assert_eq!(names, ["Containerfile", "data", "data/big.bin"]);

        write(&ctx.join(".dockerignore"), "data\nContainerfile\n");
        let packed = pack(ctx, Path::new("Containerfile")).unwrap();
        assert_eq!(packed.ignore_file, Some(".dockerignore"));
        let names: Vec<String> = entries(packed).into_iter().map(|entry| entry.0).collect();
        assert_eq!(names, [".dockerignore", "Containerfile"]);

        // .containerignore wins over .dockerignore.
        write(&ctx.join(".containerignore"), ".dockerignore\n");
        let packed = pack(ctx, Path::new("Containerfile")).unwrap();
        assert_eq!(packed.ignore_file, Some(".containerignore"));
        let names: Vec<String> = entries(packed).into_iter().map(|entry| entry.0).collect();
        assert_eq!(
            names,
            [".containerignore", "Containerfile", "data", "data/big.bin"]
        );
    }

    #[test]
    fn an_unreadable_file_that_is_sent_is_a_user_error_naming_it() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let ctx = dir.path();
        write(&ctx.join("Containerfile"), "FROM x\n");
        write(&ctx.join("secret"), "x");
        fs::set_permissions(ctx.join("secret"), fs::Permissions::from_mode(0o000)).unwrap();
        // A context that cannot be listed, whoever runs the test.
        let err = pack(&ctx.join("Containerfile"), Path::new("Containerfile")).unwrap_err();
        assert!(err.message().contains("Containerfile"), "{err}");
        assert_eq!(err.exit_code(), 1);
        // root reads anything: nothing more to check there.
        if File::open(ctx.join("secret")).is_ok() {
            return;
        }
        let err = pack(ctx, Path::new("Containerfile")).unwrap_err();
        assert!(err.message().contains("secret"), "{err}");
        assert!(
            err.hint_text().unwrap().contains(".containerignore"),
            "{err}"
        );
        assert_eq!(err.exit_code(), 1);
    }

    #[test]
    fn a_file_that_shrinks_while_packed_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        write(&dir.path().join("f"), "abc");
        let mut reader = Exact {
            file: File::open(dir.path().join("f")).unwrap(),
            left: 5,
            failed: None,
        };
        let mut out = Vec::new();
        assert!(reader.read_to_end(&mut out).is_err());
        assert_eq!(reader.failed.unwrap().kind(), io::ErrorKind::UnexpectedEof);
        let mut reader = Exact {
            file: File::open(dir.path().join("f")).unwrap(),
            left: 2,
            failed: None,
        };
        let mut out = Vec::new();
        reader.read_to_end(&mut out).unwrap();
        assert_eq!(out, b"ab");
    }
}
