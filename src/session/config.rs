//! `podlab.toml`: the project's settings, read into [`Settings`] layers (the top level and
//! one per `[presets.NAME]`).
//!
//! The file is walked by hand over `toml_edit`'s span-keeping document instead of derived
//! with serde, so that every error (a syntax error, an unknown key, a wrong type, a bad
//! value) names the file, line, column and full key (`podlab.toml:7:12: shm_size: invalid
//! size "16x"`) and carries a hint, and so that values are checked by the same parsers as
//! the flags ([`super::values`]).

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};

use toml_edit::{ImDocument, Item, TableLike, Value};

use super::values::{self, GpuRequest, GpuSelector, Invalid};
use super::{HostPath, ImageSetting, MountSetting, Origin, Settings};
use crate::{Error, Result};

/// The project file's name; the directory holding it is the project directory.
pub const FILE_NAME: &str = "podlab.toml";

/// The keys of the top level and of a preset, with an example of each for hints.
const KEYS: [(&str, &str); 12] = [
    ("image", r#"image = "nvcr.io/nvidia/pytorch:24.12-py3""#),
    (
        "build",
        r#"[build] containerfile = "Containerfile", context = ".""#,
    ),
    (
        "gpus",
        r#"gpus = "all" (or "auto", "none", [0, 1], ["GPU-8f6d…"])"#,
    ),
    ("shm_size", r#"shm_size = "16g""#),
    ("workdir", r#"workdir = "/workspace""#),
    (
        "mounts",
        r#"[[mounts]] host = "~/datasets", container = "/data", writable = false"#,
    ),
    ("env", r#"[env] WANDB_MODE = "offline""#),
    ("ports", r#"ports = ["8888", "127.0.0.1:6006:6006"]"#),
    (
        "user_map",
        r#"user_map = "auto" (or "keep-id", "1000:1000")"#,
    ),
    ("driver_root", r#"driver_root = "/run/nvidia/driver""#),
    ("dev_root", r#"dev_root = "/run/nvidia/driver""#),
    ("command", r#"command = ["python", "train.py"]"#),
];
/// The example of a key in [`KEYS`], for hints.
fn example_of(key: &str) -> &'static str {
    KEYS.iter()
        .find(|(known, _)| *known == key)
        .map_or(PRESETS_EXAMPLE, |(_, example)| *example)
}

const PRESETS_EXAMPLE: &str = r#"[presets.notebook] ports = ["8888"]"#;
const BUILD_KEYS: [&str; 4] = ["containerfile", "context", "args", "tag"];
const MOUNT_KEYS: [&str; 3] = ["host", "container", "writable"];

/// A parsed `podlab.toml`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectFile {
    pub path: PathBuf,
    /// The top level.
    pub base: Settings,
    /// `[presets.NAME]` tables, each overlaying the top level when chosen with `--preset`.
    pub presets: BTreeMap<String, Settings>,
}

impl ProjectFile {
    /// The nearest `podlab.toml` in `start` or one of its parents.
    pub fn find(start: &Path) -> Option<PathBuf> {
        start
            .ancestors()
            .map(|dir| dir.join(FILE_NAME))
            .find(|path| path.is_file())
    }

    /// Reads and parses `path`; errors show it relative to `cwd` when it is below it.
    pub fn load(path: &Path, cwd: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|err| {
            Error::user(format!("cannot read {}: {err}", path.display()))
                .hint("check that the file is readable by you")
        })?;
        let text = String::from_utf8(bytes).map_err(|err| {
            Error::user(format!(
                "{} is not UTF-8 text: byte {} is not valid UTF-8",
                path.display(),
                err.utf8_error().valid_up_to()
            ))
            .hint(format!(
                "save it as UTF-8 (TOML files must be), e.g. iconv -f LATIN1 -t UTF-8 {0} > {0}.utf8 && mv {0}.utf8 {0}",
                path.display()
            ))
        })?;
        let shown = path.strip_prefix(cwd).unwrap_or(path).display().to_string();
        Self::parse(&text, path.to_path_buf(), &shown)
    }

    /// Parses the text of the file at `path`; errors name the file as `shown_as`.
    pub fn parse(text: &str, path: PathBuf, shown_as: &str) -> Result<Self> {
        let reader = Reader {
            text,
            file: shown_as,
        };
        let document = ImDocument::parse(text).map_err(|err| {
            let message = err.message().trim().replace('\n', "; ");
            reader.error(
                err.span(),
                None,
                &format!("invalid TOML: {message}"),
                "fix the syntax; https://toml.io describes it",
            )
        })?;
        let mut presets = BTreeMap::new();
        let base = reader.settings(document.as_table(), "", Some(&mut presets))?;
        Ok(Self {
            path,
            base,
            presets,
        })
    }
}

/// Turns spans into `file:line:column: key:` prefixes and reads typed values.
struct Reader<'a> {
    text: &'a str,
    file: &'a str,
}

type Span = Option<Range<usize>>;

/// One key of a table: its full dotted name, where it is, and its value.
struct Entry<'t> {
    name: &'t str,
    key: String,
    key_span: Span,
    /// The value's span, or the key's when the value has none (implicit tables).
    span: Span,
    item: &'t Item,
    /// How to write it, for hints.
    example: &'static str,
}

/// One element of an array value, with its full name (`ports[1]`).
struct Element<'t> {
    key: String,
    span: Span,
    value: &'t Value,
}

impl Reader<'_> {
    /// The 1-based line and column (in characters) where `span` starts.
    fn position(&self, span: Span) -> (usize, usize) {
        let offset = span.map_or(0, |span| span.start);
        let before = self.text.get(..offset).unwrap_or(self.text);
        let line = before.matches('\n').count() + 1;
        let column = before
            .rsplit_once('\n')
            .map_or(before, |(_, last)| last)
            .chars()
            .count()
            + 1;
        (line, column)
    }

    fn origin(&self, span: Span, key: &str) -> Origin {
        let (line, column) = self.position(span);
        Origin::File {
            file: self.file.to_owned(),
            line,
            column,
            key: key.to_owned(),
        }
    }

    /// `file:line:column: key: message` (no key for syntax errors), with a hint.
    fn error(&self, span: Span, key: Option<&str>, message: &str, hint: &str) -> Error {
        let text = if let Some(key) = key {
            format!("{}: {message}", self.origin(span, key))
        } else {
            let (line, column) = self.position(span);
            format!("{}:{line}:{column}: {message}", self.file)
        };
        Error::user(text).hint(hint)
    }

    fn invalid(&self, span: Span, key: &str, invalid: &Invalid) -> Error {
        self.error(span, Some(key), &invalid.message, &invalid.hint)
    }

    fn wrong_type(
        &self,
        span: Span,
        key: &str,
        expected: &str,
        found: &str,
        example: &str,
    ) -> Error {
        self.error(
            span,
            Some(key),
            &format!("expected {expected}, found {found}"),
            &format!("write it like {example}"),
        )
    }

    fn unknown(&self, entry: &Entry<'_>, known: &[&str]) -> Error {
        self.error(
            entry.key_span.clone().or_else(|| entry.span.clone()),
            Some(&entry.key),
            "unknown key",
            &format!("the keys here are {}", known.join(", ")),
        )
    }

    /// The keys of `table`, named `{prefix}{key}`.
    fn entries<'t>(
        table: &'t dyn TableLike,
        prefix: &str,
        example: fn(&str) -> &'static str,
    ) -> Vec<Entry<'t>> {
        table
            .iter()
            .map(|(name, item)| {
                let key_span = table.key(name).and_then(toml_edit::Key::span);
                Entry {
                    name,
                    key: format!("{prefix}{name}"),
                    span: item.span().or_else(|| key_span.clone()),
                    key_span,
                    item,
                    example: example(name),
                }
            })
            .collect()
    }

    fn string<'t>(&self, entry: &Entry<'t>) -> Result<&'t str> {
        entry.item.as_str().ok_or_else(|| {
            self.wrong_type(
                entry.span.clone(),
                &entry.key,
                "a string",
                entry.item.type_name(),
                entry.example,
            )
        })
    }

    /// A string checked by one of the shared value parsers.
    fn parsed<T>(
        &self,
        entry: &Entry<'_>,
        parse: impl Fn(&str) -> Result<T, Invalid>,
    ) -> Result<T> {
        parse(self.string(entry)?).map_err(|err| self.invalid(entry.span.clone(), &entry.key, &err))
    }

    fn host_path(&self, entry: &Entry<'_>) -> Result<HostPath> {
        let path = self.string(entry)?;
        if path.is_empty() {
            return Err(self.error(
                entry.span.clone(),
                Some(&entry.key),
                "empty path",
                &format!("write it like {}", entry.example),
            ));
        }
        Ok(HostPath {
            path: PathBuf::from(path),
            origin: self.origin(entry.span.clone(), &entry.key),
        })
    }

    fn table<'t>(&self, entry: &Entry<'t>) -> Result<&'t dyn TableLike> {
        entry.item.as_table_like().ok_or_else(|| {
            self.wrong_type(
                entry.span.clone(),
                &entry.key,
                "a table",
                entry.item.type_name(),
                entry.example,
            )
        })
    }

    fn elements<'t>(&self, entry: &Entry<'t>) -> Result<Vec<Element<'t>>> {
        let array = entry.item.as_array().ok_or_else(|| {
            self.wrong_type(
                entry.span.clone(),
                &entry.key,
                "an array",
                entry.item.type_name(),
                entry.example,
            )
        })?;
        Ok(array
            .iter()
            .enumerate()
            .map(|(index, value)| Element {
                key: format!("{}[{index}]", entry.key),
                span: value.span(),
                value,
            })
            .collect())
    }

    /// An array of strings (`command`), or of strings and integers (`ports = [8888]`).
    fn words<'t>(&self, entry: &Entry<'t>, integers: bool) -> Result<Vec<(String, Element<'t>)>> {
        let mut words = Vec::new();
        for element in self.elements(entry)? {
            let word = match element.value {
                Value::String(text) => text.value().clone(),
                Value::Integer(number) if integers => number.value().to_string(),
                other => {
                    return Err(self.wrong_type(
                        element.span,
                        &element.key,
                        "a string",
                        other.type_name(),
                        entry.example,
                    ));
                }
            };
            words.push((word, element));
        }
        Ok(words)
    }

    /// One layer: the top level (with `presets` to fill) or a preset (`presets` is `None`).
    fn settings(
        &self,
        table: &dyn TableLike,
        prefix: &str,
        mut presets: Option<&mut BTreeMap<String, Settings>>,
    ) -> Result<Settings> {
        let mut settings = Settings::default();
        let mut image_key: Option<String> = None;
        for entry in Self::entries(table, prefix, example_of) {
            match entry.name {
                "image" | "build" => {
                    if let Some(other) = &image_key {
                        return Err(self.error(
                            entry.key_span,
                            Some(&entry.key),
                            &format!("{other} is also set"),
                            "set either image (a name to pull) or [build] (a Containerfile), not both",
                        ));
                    }
                    settings.image = Some(if entry.name == "image" {
                        ImageSetting::Name(self.parsed(&entry, values::image_name)?)
                    } else {
                        self.build(&entry)?
                    });
                    image_key = Some(entry.key);
                }
                "gpus" => settings.gpus = Some(self.gpus(&entry)?),
                "shm_size" => settings.shm_size = Some(self.shm_size(&entry)?),
                "workdir" => settings.workdir = Some(self.parsed(&entry, values::container_path)?),
                "mounts" => settings.mounts = self.mounts(&entry)?,
                "env" => settings.env = self.strings(&entry, true)?,
                "ports" => {
                    for (text, element) in self.words(&entry, true)? {
                        let port = text
                            .parse()
                            .map_err(|err| self.invalid(element.span, &element.key, &err))?;
                        settings.ports.push(port);
                    }
                }
                "user_map" => settings.user_map = Some(self.parsed(&entry, str::parse)?),
                "driver_root" => settings.driver_root = Some(self.host_path(&entry)?),
                "dev_root" => settings.dev_root = Some(self.host_path(&entry)?),
                "command" => {
                    let words = self.words(&entry, false)?;
                    settings.command = Some(words.into_iter().map(|(word, _)| word).collect());
                }
                "presets" if presets.is_some() => {
                    for preset in
                        Self::entries(self.table(&entry)?, "presets.", |_| PRESETS_EXAMPLE)
                    {
                        let layer =
                            self.settings(self.table(&preset)?, &format!("{}.", preset.key), None)?;
                        if let Some(presets) = presets.as_deref_mut() {
                            presets.insert(preset.name.to_owned(), layer);
                        }
                    }
                }
                _ => {
                    let mut known: Vec<&str> = KEYS.iter().map(|(known, _)| *known).collect();
                    if presets.is_some() {
                        known.push("presets");
                    }
                    return Err(self.unknown(&entry, &known));
                }
            }
        }
        Ok(settings)
    }

    /// `"16g"`, or a number of bytes.
    fn shm_size(&self, entry: &Entry<'_>) -> Result<values::ByteSize> {
        let Some(bytes) = entry.item.as_integer() else {
            return self.parsed(entry, str::parse);
        };
        u64::try_from(bytes)
            .ok()
            .filter(|bytes| *bytes > 0)
            .map(values::ByteSize)
            .ok_or_else(|| {
                self.error(
                    entry.span.clone(),
                    Some(&entry.key),
                    &format!("invalid size {bytes}"),
                    "give a size greater than zero: \"16g\"",
                )
            })
    }

    fn build(&self, entry: &Entry<'_>) -> Result<ImageSetting> {
        let mut containerfile = None;
        let mut context = None;
        let mut args = BTreeMap::new();
        let mut tag = None;
        let prefix = format!("{}.", entry.key);
        for entry in Self::entries(self.table(entry)?, &prefix, |_| example_of("build")) {
            match entry.name {
                "containerfile" => containerfile = Some(self.host_path(&entry)?),
                "context" => context = Some(self.host_path(&entry)?),
                "args" => {
                    let entry = Entry {
                        example: r#"[build.args] BASE_IMAGE = "nvcr.io/nvidia/pytorch:24.12-py3""#,
                        ..entry
                    };
                    args = self.strings(&entry, false)?;
                }
                "tag" => tag = Some(self.parsed(&entry, values::image_name)?),
                _ => return Err(self.unknown(&entry, &BUILD_KEYS)),
            }
        }
        Ok(ImageSetting::Build {
            containerfile,
            context,
            args,
            tag,
        })
    }

    /// `"all"`, `"0,1"`, or `[0, "GPU-…"]`.
    fn gpus(&self, entry: &Entry<'_>) -> Result<GpuRequest> {
        if entry.item.is_str() {
            return self.parsed(entry, values::parse_gpus);
        }
        let mut gpus = Vec::new();
        for element in self.elements(entry)? {
            let selector: std::result::Result<GpuSelector, Invalid> = match element.value {
                Value::Integer(index) => index.value().to_string().parse(),
                Value::String(text) => text.value().parse(),
                other => {
                    return Err(self.wrong_type(
                        element.span,
                        &element.key,
                        "a GPU index or UUID",
                        other.type_name(),
                        entry.example,
                    ));
                }
            };
            gpus.push(selector.map_err(|err| self.invalid(element.span, &element.key, &err))?);
        }
        Ok(GpuRequest::List(gpus).deduplicated())
    }

    /// A table of strings (`[env]`, `[build.args]`); `env_names` checks the keys as variable names.
    fn strings(&self, entry: &Entry<'_>, env_names: bool) -> Result<BTreeMap<String, String>> {
        let mut map = BTreeMap::new();
        let prefix = format!("{}.", entry.key);
        let example = entry.example;
        for entry in Self::entries(self.table(entry)?, &prefix, |_| "") {
            if env_names {
                values::env_name(entry.name)
                    .map_err(|err| self.invalid(entry.key_span.clone(), &entry.key, &err))?;
            }
            let text = entry.item.as_str().ok_or_else(|| {
                self.wrong_type(
                    entry.span.clone(),
                    &entry.key,
                    "a string",
                    entry.item.type_name(),
                    &format!("{example} (quote numbers)"),
                )
            })?;
            map.insert(entry.name.to_owned(), text.to_owned());
        }
        Ok(map)
    }

    /// `[[mounts]]` tables or an array of inline tables; read-only unless `writable = true`.
    fn mounts(&self, entry: &Entry<'_>) -> Result<Vec<MountSetting>> {
        let tables: Vec<(&dyn TableLike, Span)> =
            if let Some(array) = entry.item.as_array_of_tables() {
                array
                    .iter()
                    .map(|table| (table as &dyn TableLike, table.span()))
                    .collect()
            } else {
                let mut tables = Vec::new();
                for element in self.elements(entry)? {
                    let table = element.value.as_inline_table().ok_or_else(|| {
                        self.wrong_type(
                            element.span.clone(),
                            &element.key,
                            "a table",
                            element.value.type_name(),
                            entry.example,
                        )
                    })?;
                    tables.push((table as &dyn TableLike, table.span()));
                }
                tables
            };
        let mut mounts = Vec::new();
        for (index, (table, table_span)) in tables.into_iter().enumerate() {
            let name = format!("{}[{index}]", entry.key);
            let mut host = None;
            let mut container = None;
            let mut read_only = true;
            for entry in Self::entries(table, &format!("{name}."), |_| example_of("mounts")) {
                match entry.name {
                    "host" => host = Some(self.host_path(&entry)?),
                    "container" => container = Some(self.parsed(&entry, values::container_path)?),
                    "writable" => {
                        read_only = !entry.item.as_bool().ok_or_else(|| {
                            self.wrong_type(
                                entry.span.clone(),
                                &entry.key,
                                "true or false",
                                entry.item.type_name(),
                                "writable = true",
                            )
                        })?;
                    }
                    _ => return Err(self.unknown(&entry, &MOUNT_KEYS)),
                }
            }
            let missing = |what: &str| {
                self.error(
                    table_span.clone(),
                    Some(&name),
                    &format!("{what} is missing"),
                    &format!("write it like {}", entry.example),
                )
            };
            mounts.push(MountSetting {
                host: host.ok_or_else(|| missing("host"))?,
                container: container.ok_or_else(|| missing("container"))?,
                read_only,
            });
        }
        Ok(mounts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::values::{ByteSize, Port, UserMapping};

    fn parse(text: &str) -> Result<ProjectFile> {
        ProjectFile::parse(text, PathBuf::from("/p/podlab.toml"), "podlab.toml")
    }

    fn message(text: &str) -> String {
        parse(text).unwrap_err().message().to_owned()
    }

    #[test]
    fn a_full_file() {
        let file = parse(
            r#"
gpus = [0, "GPU-ab12"]
shm_size = "8g"
workdir = "/work/"
ports = ["8888", 6006]
user_map = "1000:1000"
driver_root = "/run/nvidia/driver"
command = ["python", "train.py"]

[build]
containerfile = "docker/Containerfile"
args = { CUDA = "12.4" }

[env]
WANDB_MODE = "offline"

[[mounts]]
host = "~/datasets"
container = "/data"

[[mounts]]
host = "cache"
container = "/cache"
writable = true

[presets.notebook]
ports = ["8888"]
command = ["jupyter", "lab"]
"#,
        )
        .unwrap();
        let base = &file.base;
        assert_eq!(
            base.gpus,
            Some(GpuRequest::List(vec![
                GpuSelector::Index(0),
                GpuSelector::Uuid("GPU-ab12".into())
            ]))
        );
        assert_eq!(base.shm_size, Some(ByteSize(8 << 30)));
        assert_eq!(base.workdir.as_deref(), Some("/work"));
        assert_eq!(
            base.ports,
            vec![
                "8888".parse::<Port>().unwrap(),
                "6006".parse::<Port>().unwrap()
            ]
        );
        assert_eq!(
            base.user_map,
            Some(UserMapping::KeepIdTo {
                uid: 1000,
                gid: 1000
            })
        );
        assert_eq!(
            base.driver_root.as_ref().map(|root| &root.path),
            Some(&PathBuf::from("/run/nvidia/driver"))
        );
        let Some(ImageSetting::Build {
            containerfile,
            context,
            args,
            tag,
        }) = &base.image
        else {
            panic!("{:?}", base.image)
        };
        assert_eq!(
            containerfile.as_ref().map(|c| c.path.clone()),
            Some("docker/Containerfile".into())
        );
        assert!(context.is_none() && tag.is_none());
        assert_eq!(args.get("CUDA").map(String::as_str), Some("12.4"));
        assert_eq!(
            base.env.get("WANDB_MODE").map(String::as_str),
            Some("offline")
        );
        let mounts: Vec<_> = base
            .mounts
            .iter()
            .map(|m| {
                (
                    m.host.path.to_str().unwrap(),
                    m.container.as_str(),
                    m.read_only,
                )
            })
            .collect();
        assert_eq!(
            mounts,
            [("~/datasets", "/data", true), ("cache", "/cache", false)]
        );
        assert_eq!(
            base.mounts[0].host.origin.to_string(),
            "podlab.toml:18:8: mounts[0].host"
        );
        let notebook = &file.presets["notebook"];
        assert_eq!(notebook.command, Some(vec!["jupyter".into(), "lab".into()]));
        assert!(notebook.image.is_none());
    }

    #[test]
    fn value_errors_name_the_file_line_column_and_key() {
        let err =
            parse("image = \"a\"\n\n\nworkdir = \"/w\"\n\n\nshm_size = \"16x\"\n").unwrap_err();
        assert_eq!(
            err.message(),
            r#"podlab.toml:7:12: shm_size: invalid size "16x""#
        );
        assert!(err.hint_text().unwrap().contains("16g"));
        assert_eq!(
            message("[presets.a]\nports = [\"1\", \"x\"]"),
            r#"podlab.toml:2:15: presets.a.ports[1]: invalid port "x": "x" is not a port number (1-65535)"#
        );
        assert_eq!(
            message("[[mounts]]\nhost = \"/d\"\ncontainer = \"data\""),
            r#"podlab.toml:3:13: mounts[0].container: invalid container path "data": it must be absolute"#
        );
        assert_eq!(
            message("gpus = [0, true]"),
            "podlab.toml:1:12: gpus[1]: expected a GPU index or UUID, found boolean"
        );
        assert_eq!(
            message("shm_size = 0"),
            "podlab.toml:1:12: shm_size: invalid size 0"
        );
        assert_eq!(
            message("user_map = 1000"),
            "podlab.toml:1:12: user_map: expected a string, found integer"
        );
        assert_eq!(
            message("[env]\nA = 1"),
            "podlab.toml:2:5: env.A: expected a string, found integer"
        );
        assert_eq!(
            message("[[mounts]]\ncontainer = \"/d\""),
            "podlab.toml:1:1: mounts[0]: host is missing"
        );
    }

    #[test]
    fn unknown_keys_are_errors_at_the_key() {
        let err = parse("image = \"a\"\n  shm = \"16g\"\n").unwrap_err();
        assert_eq!(err.message(), "podlab.toml:2:3: shm: unknown key");
        assert!(err.hint_text().unwrap().contains("shm_size"), "{err}");
        assert_eq!(
            message("[presets.x]\npresets = {}"),
            "podlab.toml:2:1: presets.x.presets: unknown key"
        );
        assert_eq!(
            message("[build]\nfile = \"C\""),
            "podlab.toml:2:1: build.file: unknown key"
        );
        assert_eq!(
            message("[[mounts]]\nhost = \"/\"\ncontainer = \"/d\"\nread_only = true"),
            "podlab.toml:4:1: mounts[0].read_only: unknown key"
        );
    }

    #[test]
    fn syntax_errors_have_a_position() {
        let err = message("image = \"a\"\ngpus = \n");
        assert!(err.starts_with("podlab.toml:2:8: invalid TOML: "), "{err}");
        assert!(!err.contains('\n'), "{err}");
    }

    #[test]
    fn image_and_build_exclude_each_other() {
        assert_eq!(
            message("image = \"a\"\n[build]\n"),
            "podlab.toml:2:2: build: image is also set"
        );
    }

    #[test]
    fn presets_parse_like_the_top_level() {
        let file = parse("[presets.nb]\nimage = \"x\"\nshm_size = 1073741824\n").unwrap();
        assert_eq!(file.presets["nb"].shm_size, Some(ByteSize(1 << 30)));
        assert_eq!(
            file.presets["nb"].image,
            Some(ImageSetting::Name("x".into()))
        );
        assert_eq!(
            message("presets = 1"),
            "podlab.toml:1:11: presets: expected a table, found integer"
        );
    }

    #[test]
    fn find_searches_upward() {
        let dir = tempfile::tempdir().unwrap();
        let deep = dir.path().join("a/b");
        std::fs::create_dir_all(&deep).unwrap();
        std::fs::write(dir.path().join(FILE_NAME), "").unwrap();
        assert_eq!(ProjectFile::find(&deep), Some(dir.path().join(FILE_NAME)));
        let loaded = ProjectFile::load(&dir.path().join(FILE_NAME), &deep).unwrap();
        assert_eq!(loaded.base, Settings::default());
    }

    /// Issue 15: a Latin-1 podlab.toml was told to "check that the file is readable".
    #[test]
    fn a_podlab_toml_that_is_not_utf8_is_called_so() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        std::fs::write(&path, b"# caf\xe9\nshm_size = \"1g\"\n").unwrap();
        let err = ProjectFile::load(&path, dir.path()).unwrap_err();
        assert_eq!(err.exit_code(), 1);
        assert!(err.message().contains("is not UTF-8 text: byte 5"), "{err}");
        assert!(err.hint_text().unwrap().contains("iconv"), "{err}");
        assert!(!err.to_string().contains("readable"), "{err}");
    }
}
