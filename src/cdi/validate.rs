//! `podlab cdi validate`: checks a CDI spec file the way a container engine will, before Podman
//! does. Podman's CDI loader stops at the first problem and names neither the file's line nor
//! the field; a spec it cannot load makes every `--device nvidia.com/gpu=...` fail. So this
//! module reports every problem at once, each with its line, column and field path, for specs
//! podlab wrote and for hand-written or third-party ones alike.
//!
//! The rules follow the reference implementation (CNCF `container-device-interface`: its
//! `ValidateVendorName`, `ValidateClassName` and `ValidateDeviceName`, and the default
//! validator's checks on edits), plus the version rule of [`Spec::required_version`] and a few
//! checks the engines apply later (absolute container paths). Locations come from a second,
//! schema-free parse of the same text that records where every key and value sits, so they are
//! exact for YAML and for JSON.

use std::collections::HashMap;
use std::fmt;
use std::path::Path;
use std::str::FromStr;

use serde::Deserialize;
use serde::de::{self, MapAccess, SeqAccess, Visitor};
use serde_saphyr::{Location, MessageFormatter, Spanned, UserMessageFormatter};

use super::document::Format;
use super::spec::{ContainerEdits, Spec};
use crate::capabilities::CdiVersion;
use crate::{Error, Result};

/// One problem in a spec file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// 1-based column (in characters), when known.
    pub column: Option<usize>,
    /// The field path, e.g. `devices[1].name` or `cdiVersion`; empty when the parser cannot
    /// tell (a syntax error).
    pub field: String,
    pub message: String,
}

impl fmt::Display for Problem {
    /// `LINE:COL: FIELD: MESSAGE`, leaving out the parts that are unknown.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.line, self.column) {
            (Some(line), Some(column)) => write!(f, "{line}:{column}: ")?,
            (Some(line), None) => write!(f, "{line}: ")?,
            _ => {}
        }
        if !self.field.is_empty() {
            write!(f, "{}: ", self.field)?;
        }
        f.write_str(&self.message)
    }
}

/// The format a spec text is in: JSON when its first non-blank character is `{`, else YAML.
pub fn detect_format(text: &str) -> Format {
    if strip_bom(text).trim_start().starts_with('{') {
        Format::Json
    } else {
        Format::Yaml
    }
}

/// Parses (YAML, or JSON when the text starts with `{`) and checks a CDI spec.
pub fn validate_text(text: &str) -> Result<Spec, Vec<Problem>> {
    validate_text_as(text, detect_format(text))
}

/// Parses `text` in the given format and checks it as a CDI spec.
pub fn validate_text_as(text: &str, format: Format) -> Result<Spec, Vec<Problem>> {
    let text = strip_bom(text);
    let parsed = match format {
        Format::Yaml => {
            serde_saphyr::from_str::<Spec>(text).map_err(|err| yaml_problem(text, &err))
        }
        Format::Json => serde_json::from_str::<Spec>(text).map_err(|err| json_problem(text, &err)),
    };
    let spec = parsed.map_err(|problem| vec![problem])?;
    let tree = parse_tree(text);
    let mut problems: Vec<Problem> = check(&spec)
        .into_iter()
        .map(|(path, message)| {
            let location = tree.as_ref().and_then(|tree| locate(tree, &path.0));
            let (line, column) = split_location(location);
            Problem {
                line,
                column,
                field: path.to_string(),
                message,
            }
        })
        .collect();
    if problems.is_empty() {
        return Ok(spec);
    }
    // Document order; problems without a line go last.
    problems.sort_by_key(|problem| (problem.line.is_none(), problem.line, problem.column));
    Err(problems)
}

/// Reads FILE and validates it: JSON when it is named `*.json` or its text starts with `{`.
pub fn validate_file(path: &Path) -> Result<Result<Spec, Vec<Problem>>> {
    let text = std::fs::read_to_string(path).map_err(|err| {
        let shown = path.display();
        match err.kind() {
            std::io::ErrorKind::NotFound => Error::user(format!("cdi spec {shown} does not exist"))
                .hint("check the path; `podlab cdi generate` writes a spec for this host"),
            std::io::ErrorKind::InvalidData => Error::user(format!(
                "cdi spec {shown} is not utf-8 text"
            ))
            .hint("a cdi spec is yaml or json text; regenerate it with `podlab cdi generate`"),
            std::io::ErrorKind::PermissionDenied => {
                Error::user(format!("cannot read cdi spec {shown}: {err}"))
                    .hint(format!("check its permissions with `ls -l {shown}`"))
            }
            _ => Error::env(format!("cannot read cdi spec {shown}: {err}"))
                .hint(format!("check that {shown} is a readable file")),
        }
    })?;
    let is_json = path
        .extension()
        .is_some_and(|extension| extension.eq_ignore_ascii_case("json"));
    let format = if is_json {
        Format::Json
    } else {
        detect_format(&text)
    };
    Ok(validate_text_as(&text, format))
}

fn strip_bom(text: &str) -> &str {
    text.strip_prefix('\u{feff}').unwrap_or(text)
}

fn split_location(location: Option<Location>) -> (Option<usize>, Option<usize>) {
    let part = |value: u64| usize::try_from(value).ok().filter(|&value| value > 0);
    match location {
        Some(location) => {
            let line = part(location.line());
            (line, line.and(part(location.column())))
        }
        None => (None, None),
    }
}

// ---------------------------------------------------------------------------------------------
// Parse errors

fn yaml_problem(text: &str, err: &serde_saphyr::Error) -> Problem {
    let (line, column) = split_location(err.location());
    let field = error_field(text, err).unwrap_or_default();
    Problem {
        line,
        column,
        field,
        message: UserMessageFormatter.format_message(err).into_owned(),
    }
}

/// serde_json gives a line and column but no path; the field comes from the YAML parser, which
/// reads JSON too and stops at the same problem.
fn json_problem(text: &str, err: &serde_json::Error) -> Problem {
    let full = err.to_string();
    let message = match full.rfind(" at line ") {
        Some(at) if err.line() > 0 => full.get(..at).unwrap_or(&full).to_owned(),
        _ => full,
    };
    let line = Some(err.line()).filter(|&line| line > 0);
    let field = serde_saphyr::from_str::<Spec>(text)
        .err()
        // Only when both parsers stop on the same line, so it is the same problem.
        .filter(|yaml_err| split_location(yaml_err.location()).0 == line)
        .and_then(|yaml_err| error_field(text, &yaml_err))
        .unwrap_or_default();
    Problem {
        line,
        column: line.and(Some(err.column())).filter(|&column| column > 0),
        field,
        message,
    }
}

/// The field a parse error is about, found by matching its location against the tree.
fn error_field(text: &str, err: &serde_saphyr::Error) -> Option<String> {
    let location = err.location()?;
    let tree = parse_tree(text)?;
    let inner = err.without_snippet();
    if let serde_saphyr::Error::SerdeMissingField { field, .. } = inner {
        // Reported at the start of the mapping that lacks the field.
        let mut path = find_deepest(&tree, None, &mut Vec::new(), &|_, value| {
            matches!(value.value, Node::Map(_)) && same_place(value.referenced, location)
        })?;
        path.push(Segment::Key((*field).to_owned()));
        return Some(FieldPath(path).to_string());
    }
    let on_value =
        |_: Option<&Spanned<Node>>, value: &Spanned<Node>| same_place(value.referenced, location);
    let on_key = |key: Option<&Spanned<Node>>, _: &Spanned<Node>| {
        key.is_some_and(|key| same_place(key.referenced, location))
    };
    let path = if matches!(inner, serde_saphyr::Error::SerdeUnknownField { .. }) {
        find_deepest(&tree, None, &mut Vec::new(), &on_key)
    } else {
        find_deepest(&tree, None, &mut Vec::new(), &on_value)
            .or_else(|| find_deepest(&tree, None, &mut Vec::new(), &on_key))
    };
    path.filter(|path| !path.is_empty())
        .map(|path| FieldPath(path).to_string())
}

fn same_place(a: Location, b: Location) -> bool {
    a.line() == b.line() && a.column() == b.column()
}

// ---------------------------------------------------------------------------------------------
// Where things are: a schema-free tree of the document with the position of every node

/// A YAML (or JSON) node; the scalar text is kept for mapping keys.
#[derive(Debug)]
enum Node {
    Scalar(String),
    Seq(Vec<Spanned<Node>>),
    Map(Vec<(Spanned<Node>, Spanned<Node>)>),
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct NodeVisitor;

        impl<'de> Visitor<'de> for NodeVisitor {
            type Value = Node;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any YAML node")
            }
            fn visit_bool<E>(self, value: bool) -> Result<Node, E> {
                Ok(Node::Scalar(value.to_string()))
            }
            fn visit_i64<E>(self, value: i64) -> Result<Node, E> {
                Ok(Node::Scalar(value.to_string()))
            }
            fn visit_u64<E>(self, value: u64) -> Result<Node, E> {
                Ok(Node::Scalar(value.to_string()))
            }
            fn visit_i128<E>(self, value: i128) -> Result<Node, E> {
                Ok(Node::Scalar(value.to_string()))
            }
            fn visit_u128<E>(self, value: u128) -> Result<Node, E> {
                Ok(Node::Scalar(value.to_string()))
            }
            fn visit_f64<E>(self, value: f64) -> Result<Node, E> {
                Ok(Node::Scalar(value.to_string()))
            }
            fn visit_str<E>(self, value: &str) -> Result<Node, E> {
                Ok(Node::Scalar(value.to_owned()))
            }
            fn visit_string<E>(self, value: String) -> Result<Node, E> {
                Ok(Node::Scalar(value))
            }
            fn visit_bytes<E>(self, value: &[u8]) -> Result<Node, E> {
                Ok(Node::Scalar(String::from_utf8_lossy(value).into_owned()))
            }
            fn visit_unit<E>(self) -> Result<Node, E> {
                Ok(Node::Scalar(String::new()))
            }
            fn visit_none<E>(self) -> Result<Node, E> {
                Ok(Node::Scalar(String::new()))
            }
            fn visit_some<D: de::Deserializer<'de>>(
                self,
                deserializer: D,
            ) -> Result<Node, D::Error> {
                Node::deserialize(deserializer)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element()? {
                    items.push(item);
                }
                Ok(Node::Seq(items))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
                let mut entries = Vec::new();
                while let Some(entry) = map.next_entry()? {
                    entries.push(entry);
                }
                Ok(Node::Map(entries))
            }
        }

        deserializer.deserialize_any(NodeVisitor)
    }
}

fn parse_tree(text: &str) -> Option<Spanned<Node>> {
    serde_saphyr::from_str::<Spanned<Node>>(text).ok()
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Key(String),
    Index(usize),
}

/// A field path such as `devices[1].containerEdits.mounts[0].containerPath`.
#[derive(Debug, Clone, Default)]
struct FieldPath(Vec<Segment>);

impl FieldPath {
    fn key(&self, key: &str) -> Self {
        let mut path = self.clone();
        path.0.push(Segment::Key(key.to_owned()));
        path
    }

    fn index(&self, index: usize) -> Self {
        let mut path = self.clone();
        path.0.push(Segment::Index(index));
        path
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (position, segment) in self.0.iter().enumerate() {
            match segment {
                Segment::Key(key) if position == 0 => f.write_str(key)?,
                Segment::Key(key) => write!(f, ".{key}")?,
                Segment::Index(index) => write!(f, "[{index}]")?,
            }
        }
        Ok(())
    }
}

/// Where the node at `path` is: a scalar's value, else the key that names the node (or the
/// sequence item itself). A path that runs out early points at the deepest node found.
fn locate(root: &Spanned<Node>, path: &[Segment]) -> Option<Location> {
    let mut node = root;
    let mut key: Option<&Spanned<Node>> = None;
    for segment in path {
        let next = match (segment, &node.value) {
            (Segment::Key(name), Node::Map(entries)) => entries
                .iter()
                .find(
                    |(entry_key, _)| matches!(&entry_key.value, Node::Scalar(text) if text == name),
                )
                .map(|(entry_key, value)| (Some(entry_key), value)),
            (Segment::Index(index), Node::Seq(items)) => items.get(*index).map(|item| (None, item)),
            _ => None,
        };
        let Some((next_key, next_node)) = next else {
            break;
        };
        key = next_key;
        node = next_node;
    }
    let location = match (&node.value, key) {
        (Node::Map(_) | Node::Seq(_), Some(key)) => key.referenced,
        _ => node.referenced,
    };
    Some(location).filter(|location| location.line() > 0)
}

/// A test on a node, given its key when it is a mapping value.
type Wanted<'a> = dyn Fn(Option<&Spanned<Node>>, &Spanned<Node>) -> bool + 'a;

/// The path of the deepest node (in document order, the last) that `wanted` accepts.
fn find_deepest(
    node: &Spanned<Node>,
    key: Option<&Spanned<Node>>,
    path: &mut Vec<Segment>,
    wanted: &Wanted<'_>,
) -> Option<Vec<Segment>> {
    let mut found = wanted(key, node).then(|| path.clone());
    match &node.value {
        Node::Scalar(_) => {}
        Node::Seq(items) => {
            for (index, item) in items.iter().enumerate() {
                path.push(Segment::Index(index));
                found = find_deepest(item, None, path, wanted).or(found);
                path.pop();
            }
        }
        Node::Map(entries) => {
            for (entry_key, value) in entries {
                let name = match &entry_key.value {
                    Node::Scalar(text) => text.clone(),
                    _ => String::from("?"),
                };
                path.push(Segment::Key(name));
                found = find_deepest(value, Some(entry_key), path, wanted).or(found);
                path.pop();
            }
        }
    }
    found
}

// ---------------------------------------------------------------------------------------------
// The checks

/// Every semantic problem in a parsed spec, with the path of the field it is about.
fn check(spec: &Spec) -> Vec<(FieldPath, String)> {
    let root = FieldPath::default();
    let mut problems = Vec::new();
    let mut report = |path: FieldPath, message: String| problems.push((path, message));

    match CdiVersion::from_str(&spec.cdi_version) {
        Err(_) => {
            let known: Vec<String> = CdiVersion::ALL.iter().map(ToString::to_string).collect();
            report(
                root.key("cdiVersion"),
                format!(
                    "unknown cdiVersion {:?}: use one of {}",
                    spec.cdi_version,
                    known.join(", ")
                ),
            );
        }
        Ok(version) => {
            let need = spec.required_version();
            if version < need.version {
                report(
                    root.key("cdiVersion"),
                    format!(
                        "cdiVersion {version} is too low: {} needs {}",
                        need.reason, need.version
                    ),
                );
            }
        }
    }

    if let Some(message) = kind_problem(&spec.kind) {
        report(root.key("kind"), message);
    }

    check_edits(
        &spec.container_edits,
        &root.key("containerEdits"),
        &mut report,
    );

    if spec.devices.is_empty() {
        report(
            root.key("devices"),
            "no devices: a spec needs at least one device".to_owned(),
        );
    }
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (index, device) in spec.devices.iter().enumerate() {
        let path = root.key("devices").index(index);
        if let Some(problem) = device_name_problem(&device.name) {
            report(
                path.key("name"),
                format!("invalid device name {:?}: {problem}", device.name),
            );
        }
        if let Some(first) = seen.get(device.name.as_str()) {
            report(
                path.key("name"),
                format!(
                    "duplicate device name {:?}: devices[{first}] has it too",
                    device.name
                ),
            );
        } else {
            seen.insert(&device.name, index);
        }
        let edits = path.key("containerEdits");
        if device.container_edits.is_empty() {
            report(
                edits.clone(),
                "a device needs at least one container edit".to_owned(),
            );
        }
        check_edits(&device.container_edits, &edits, &mut report);
    }
    problems
}

const HOOK_NAMES: [&str; 6] = [
    "prestart",
    "createRuntime",
    "createContainer",
    "startContainer",
    "poststart",
    "poststop",
];

fn check_edits(
    edits: &ContainerEdits,
    path: &FieldPath,
    report: &mut impl FnMut(FieldPath, String),
) {
    for (index, entry) in edits.env.iter().enumerate() {
        if let Some(message) = env_problem(entry) {
            report(path.key("env").index(index), message);
        }
    }
    for (index, node) in edits.device_nodes.iter().enumerate() {
        let path = path.key("deviceNodes").index(index);
        if let Some(message) = absolute_problem("path", &node.path) {
            report(path.key("path"), message);
        }
        if let Some(host_path) = &node.host_path {
            if let Some(message) = absolute_problem("hostPath", host_path) {
                report(path.key("hostPath"), message);
            }
        }
        // An empty type or permissions means "unset", as in the reference implementation.
        if let Some(kind) = &node.kind {
            if !["", "b", "c", "u", "p"].contains(&kind.as_str()) {
                report(
                    path.key("type"),
                    format!("invalid device type {kind:?}: use b, c, u or p"),
                );
            }
        }
        if let Some(permissions) = &node.permissions {
            if permissions
                .chars()
                .any(|bit| !matches!(bit, 'r' | 'w' | 'm'))
            {
                report(
                    path.key("permissions"),
                    format!("invalid permissions {permissions:?}: use only r, w and m"),
                );
            }
        }
        for (field, number) in [("major", node.major), ("minor", node.minor)] {
            if number.is_some_and(|number| number < 0) {
                report(
                    path.key(field),
                    format!("{field} must not be negative (-1 would mean any device)"),
                );
            }
        }
    }
    for (index, mount) in edits.mounts.iter().enumerate() {
        let path = path.key("mounts").index(index);
        if mount.host_path.is_empty() {
            report(path.key("hostPath"), "hostPath is empty".to_owned());
        }
        if let Some(message) = absolute_problem("containerPath", &mount.container_path) {
            report(path.key("containerPath"), message);
        }
    }
    for (index, hook) in edits.hooks.iter().enumerate() {
        let path = path.key("hooks").index(index);
        if !HOOK_NAMES.contains(&hook.hook_name.as_str()) {
            report(
                path.key("hookName"),
                format!(
                    "unknown hook name {:?}: use one of {}",
                    hook.hook_name,
                    HOOK_NAMES.join(", ")
                ),
            );
        }
        if let Some(message) = absolute_problem("path", &hook.path) {
            report(path.key("path"), message);
        }
        for (env_index, entry) in hook.env.iter().enumerate() {
            if let Some(message) = env_problem(entry) {
                report(path.key("env").index(env_index), message);
            }
        }
    }
}

fn env_problem(entry: &str) -> Option<String> {
    match entry.find('=') {
        Some(position) if position > 0 => None,
        Some(_) => Some(format!(
            "environment entry {entry:?} has an empty name: write KEY=VALUE"
        )),
        None => Some(format!("environment entry {entry:?} is not KEY=VALUE")),
    }
}

fn absolute_problem(field: &str, path: &str) -> Option<String> {
    if path.is_empty() {
        Some(format!("{field} is empty"))
    } else if path.starts_with('/') {
        None
    } else {
        Some(format!(
            "{field} {path:?} is not absolute: it must start with /"
        ))
    }
}

/// `kind` is `vendor/class`, split at the first `/` (so a class cannot contain one).
fn kind_problem(kind: &str) -> Option<String> {
    let Some((vendor, class)) = kind
        .split_once('/')
        .filter(|(vendor, class)| !vendor.is_empty() && !class.is_empty())
    else {
        return Some(format!(
            "invalid kind {kind:?}: write vendor/class, e.g. nvidia.com/gpu"
        ));
    };
    if let Some(problem) = vendor_or_class_problem(vendor) {
        return Some(format!(
            "invalid kind {kind:?}: vendor {vendor:?} {problem}"
        ));
    }
    vendor_or_class_problem(class)
        .map(|problem| format!("invalid kind {kind:?}: class {class:?} {problem}"))
}

/// Vendor and class names: ASCII letters, digits, `_`, `-` and `.`, starting with a letter and
/// ending with a letter or digit (the reference implementation's `validateVendorOrClassName`).
fn vendor_or_class_problem(name: &str) -> Option<String> {
    name_problem(
        name,
        char::is_ascii_alphabetic,
        "a letter",
        &['_', '-', '.'],
    )
}

/// Device names: ASCII letters, digits, `_`, `-`, `.` and `:`, starting and ending with a
/// letter or digit (the reference implementation's `ValidateDeviceName`).
fn device_name_problem(name: &str) -> Option<String> {
    name_problem(
        name,
        char::is_ascii_alphanumeric,
        "a letter or digit",
        &['_', '-', '.', ':'],
    )
}

fn name_problem(
    name: &str,
    first_ok: fn(&char) -> bool,
    first_rule: &str,
    extra: &[char],
) -> Option<String> {
    let mut chars = name.chars();
    let Some(first) = chars.next() else {
        return Some("is empty".to_owned());
    };
    if !first_ok(&first) {
        return Some(format!("must start with {first_rule}, not {first:?}"));
    }
    let last = chars.next_back();
    if let Some(bad) = chars.find(|c| !c.is_ascii_alphanumeric() && !extra.contains(c)) {
        let allowed: Vec<String> = extra.iter().map(|c| format!("{c:?}")).collect();
        return Some(format!(
            "contains {bad:?}: use letters, digits and {}",
            allowed.join(" ")
        ));
    }
    match last {
        Some(last) if !last.is_ascii_alphanumeric() => {
            Some(format!("must end with a letter or digit, not {last:?}"))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "\
# Generated by podlab for NVIDIA driver 550.54.15.
# podlab-sha256: 0000
cdiVersion: 0.5.0
kind: nvidia.com/gpu
containerEdits:
  env:
    - NVIDIA_VISIBLE_DEVICES=void
  deviceNodes:
    - path: /dev/nvidiactl
  mounts:
    - hostPath: /usr/lib/x86_64-linux-gnu/libcuda.so.550.54.15
      containerPath: /usr/lib/x86_64-linux-gnu/libcuda.so.550.54.15
      options: [ro, nosuid, nodev, bind]
  hooks:
    - hookName: createContainer
      path: /usr/bin/nvidia-cdi-hook
      args: [nvidia-cdi-hook, update-ldcache]
devices:
  - name: \"0\"
    containerEdits:
      deviceNodes:
        - path: /dev/nvidia0
          hostPath: /dev/nvidia0
          type: c
          permissions: rw
  - name: GPU-8e3b2c1a
    containerEdits:
      deviceNodes:
        - path: /dev/nvidia0
  - name: all
    containerEdits:
      deviceNodes:
        - path: /dev/nvidia0
";

    /// The 1-based line of the `nth` (0-based) line containing `needle`.
    fn line_of(text: &str, needle: &str, nth: usize) -> usize {
        text.lines()
            .enumerate()
            .filter(|(_, line)| line.contains(needle))
            .nth(nth)
            .map_or_else(
                || panic!("{needle:?} not in\n{text}"),
                |(index, _)| index + 1,
            )
    }

    fn problems(text: &str) -> Vec<Problem> {
        match validate_text(text) {
            Ok(spec) => panic!("expected problems, got {spec:?}"),
            Err(problems) => problems,
        }
    }

    fn only(text: &str) -> Problem {
        let mut all = problems(text);
        assert_eq!(all.len(), 1, "{all:#?}");
        all.remove(0)
    }

    fn broken(from: &str, to: &str) -> String {
        assert!(GOOD.contains(from), "{from:?}");
        GOOD.replacen(from, to, 1)
    }

    #[test]
    fn good_yaml_with_header_and_its_json_twin_pass() {
        let spec = validate_text(GOOD).unwrap();
        assert_eq!(spec.devices.len(), 3);
        assert_eq!(spec.cdi_version, "0.5.0");
        let json = serde_json::to_string_pretty(&spec).unwrap();
        assert_eq!(detect_format(&json), Format::Json);
        assert_eq!(validate_text(&json).unwrap(), spec);
        let compact = serde_json::to_string(&spec).unwrap();
        assert_eq!(validate_text_as(&compact, Format::Json).unwrap(), spec);
    }

    #[test]
    fn bad_kind() {
        let text = broken("kind: nvidia.com/gpu", "kind: nvidia.com");
        let problem = only(&text);
        assert_eq!(problem.field, "kind");
        assert_eq!(problem.line, Some(line_of(&text, "kind:", 0)));
        assert_eq!(problem.column, Some(7));
        assert!(problem.message.contains("vendor/class"), "{problem}");

        let problem = only(&broken("kind: nvidia.com/gpu", "kind: 1nvidia.com/gpu"));
        assert!(
            problem.message.contains("must start with a letter"),
            "{problem}"
        );
        let problem = only(&broken("kind: nvidia.com/gpu", "kind: nvidia.com/gpu/x"));
        assert!(
            problem.message.contains("class \"gpu/x\" contains '/'"),
            "{problem}"
        );
        let problem = only(&broken("kind: nvidia.com/gpu", "kind: nvidia.com/gpu-"));
        assert!(
            problem.message.contains("must end with a letter or digit"),
            "{problem}"
        );
    }

    #[test]
    fn names_follow_the_reference_rules() {
        for good in ["nvidia.com", "Vendor_X.io", "a", "a-b.c_D9"] {
            assert_eq!(vendor_or_class_problem(good), None, "{good}");
        }
        for bad in ["", "9vendor", "-a", "a-", "a b", "a:b", "é"] {
            assert!(vendor_or_class_problem(bad).is_some(), "{bad}");
        }
        for good in ["0", "all", "GPU-8e3b2c1a", "0:1", "MIG-x_y.z"] {
            assert_eq!(device_name_problem(good), None, "{good}");
        }
        for bad in ["", "gpu 0", ":0", "0:", "a/b", "gpu=0"] {
            assert!(device_name_problem(bad).is_some(), "{bad}");
        }
    }

    #[test]
    fn duplicate_device_name() {
        let text = broken("name: all", "name: GPU-8e3b2c1a");
        let problem = only(&text);
        assert_eq!(problem.field, "devices[2].name");
        assert_eq!(problem.line, Some(line_of(&text, "name: GPU-8e3b2c1a", 1)));
        assert!(problem.message.contains("devices[1]"), "{problem}");
    }

    #[test]
    fn invalid_device_name() {
        let text = broken("name: \"0\"", "name: gpu 0");
        let problem = only(&text);
        assert_eq!(problem.field, "devices[0].name");
        assert_eq!(problem.line, Some(line_of(&text, "name: gpu 0", 0)));
        assert_eq!(
            problem.to_string(),
            format!(
                "{}:11: devices[0].name: invalid device name \"gpu 0\": contains ' ': use letters, digits and '_' '-' '.' ':'",
                problem.line.unwrap()
            )
        );
    }

    #[test]
    fn relative_container_path() {
        let text = broken("containerPath: /usr", "containerPath: usr");
        let problem = only(&text);
        assert_eq!(problem.field, "containerEdits.mounts[0].containerPath");
        assert_eq!(problem.line, Some(line_of(&text, "containerPath:", 0)));
        assert!(problem.message.contains("not absolute"), "{problem}");
    }

    #[test]
    fn cdi_version_too_low_for_host_path() {
        let text = broken("cdiVersion: 0.5.0", "cdiVersion: 0.3.0");
        let problem = only(&text);
        assert_eq!(problem.field, "cdiVersion");
        assert_eq!(problem.line, Some(3));
        assert_eq!(
            problem.message,
            "cdiVersion 0.3.0 is too low: deviceNodes[].hostPath needs 0.5.0"
        );
    }

    #[test]
    fn unknown_cdi_version() {
        let text = broken("cdiVersion: 0.5.0", "cdiVersion: \"9.9.9\"");
        let problem = only(&text);
        assert_eq!(
            (problem.field.as_str(), problem.line),
            ("cdiVersion", Some(3))
        );
        assert!(
            problem.message.starts_with("unknown cdiVersion \"9.9.9\""),
            "{problem}"
        );
    }

    #[test]
    fn unknown_field_is_a_parse_error_with_its_line_and_path() {
        let text = broken("  env:\n", "  envs:\n");
        let problem = only(&text);
        assert_eq!(problem.field, "containerEdits.envs");
        assert_eq!(problem.line, Some(line_of(&text, "envs:", 0)));
        assert_eq!(problem.column, Some(3));
        assert!(
            problem.message.contains("unknown field `envs`"),
            "{problem}"
        );

        let json = serde_json::to_string_pretty(&validate_text(GOOD).unwrap()).unwrap();
        let json = json.replacen("\"permissions\"", "\"perms\"", 1);
        let problem = only(&json);
        assert_eq!(
            problem.field,
            "devices[0].containerEdits.deviceNodes[0].perms"
        );
        assert_eq!(problem.line, Some(line_of(&json, "\"perms\"", 0)));
        assert!(
            problem.message.starts_with("unknown field `perms`"),
            "{problem}"
        );
    }

    #[test]
    fn wrong_type_and_missing_field_name_the_field() {
        let text = broken("type: c", "type: [c]");
        let problem = only(&text);
        assert_eq!(
            problem.field,
            "devices[0].containerEdits.deviceNodes[0].type"
        );
        assert_eq!(problem.line, Some(line_of(&text, "type:", 0)));

        let text = broken(
            "    containerEdits:\n      deviceNodes:\n        - path: /dev/nvidia0\n  - name: all",
            "  - name: all",
        );
        let problem = only(&text);
        assert_eq!(problem.field, "devices[1].containerEdits");
        assert_eq!(problem.line, Some(line_of(&text, "name: GPU-8e3b2c1a", 0)));
        assert!(
            problem.message.contains("missing field `containerEdits`"),
            "{problem}"
        );
    }

    #[test]
    fn yaml_syntax_error_has_its_line() {
        let text = broken("options: [ro, nosuid, nodev, bind]", "options: [ro, nosuid");
        let problem = only(&text);
        // The parser notices the unclosed '[' at the next key, and says so there.
        assert_eq!(
            problem.line,
            Some(line_of(&text, "  hooks:", 0)),
            "{problem}"
        );
        assert_eq!(problem.field, "");
        assert!(problem.message.contains("':'"), "{problem}");

        let text = broken("kind: nvidia.com/gpu", "kind: \"nvidia.com/gpu");
        let problem = only(&text);
        assert!(problem.line.is_some(), "{problem}");

        let text = broken(
            "kind: nvidia.com/gpu",
            "kind: nvidia.com/gpu\n  bad: indent",
        );
        let problem = only(&text);
        assert_eq!(
            problem.line,
            Some(line_of(&text, "bad: indent", 0)),
            "{problem}"
        );

        let problem = only("{\"cdiVersion\": \"0.5.0\",\n \"kind\": }");
        assert_eq!(problem.line, Some(2));
        assert!(!problem.message.contains(" at line "), "{problem}");
    }

    #[test]
    fn several_problems_are_all_reported_in_document_order() {
        let text = GOOD
            .replacen("kind: nvidia.com/gpu", "kind: nvidia.com", 1)
            .replacen("NVIDIA_VISIBLE_DEVICES=void", "=void", 1)
            .replacen("containerPath: /usr", "containerPath: usr", 1)
            .replacen("hookName: createContainer", "hookName: precreate", 1)
            .replacen("name: \"0\"", "name: gpu 0", 1)
            .replacen("permissions: rw", "permissions: rwx", 1)
            .replacen("type: c", "type: x", 1)
            .replacen("  - name: all\n    containerEdits:\n      deviceNodes:\n        - path: /dev/nvidia0\n", "  - name: all\n    containerEdits: {}\n", 1);
        let all = problems(&text);
        let fields: Vec<&str> = all.iter().map(|problem| problem.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "kind",
                "containerEdits.env[0]",
                "containerEdits.mounts[0].containerPath",
                "containerEdits.hooks[0].hookName",
                "devices[0].name",
                "devices[0].containerEdits.deviceNodes[0].type",
                "devices[0].containerEdits.deviceNodes[0].permissions",
                "devices[2].containerEdits",
            ],
            "{all:#?}"
        );
        for (problem, needle) in all.iter().zip([
            "kind:",
            "=void",
            "containerPath:",
            "hookName:",
            "name: gpu 0",
            "type: x",
            "permissions: rwx",
            "containerEdits: {}",
        ]) {
            assert_eq!(problem.line, Some(line_of(&text, needle, 0)), "{problem}");
        }
    }

    #[test]
    fn json_problems_point_at_the_json_line() {
        let json = serde_json::to_string_pretty(&validate_text(GOOD).unwrap()).unwrap();
        let json = json.replacen("\"all\"", "\"gpu all\"", 1).replacen(
            "/dev/nvidiactl",
            "dev/nvidiactl",
            1,
        );
        let all = problems(&json);
        assert_eq!(all.len(), 2, "{all:#?}");
        // serde_json writes devices before the top-level containerEdits.
        assert_eq!(all[0].field, "devices[2].name");
        assert_eq!(all[0].line, Some(line_of(&json, "\"gpu all\"", 0)));
        assert_eq!(all[1].field, "containerEdits.deviceNodes[0].path");
        assert_eq!(all[1].line, Some(line_of(&json, "\"dev/nvidiactl\"", 0)));
    }

    #[test]
    fn no_devices() {
        let problem = only("cdiVersion: 0.3.0\nkind: nvidia.com/gpu\ndevices: []\n");
        assert_eq!((problem.field.as_str(), problem.line), ("devices", Some(3)));
    }

    #[test]
    fn display_leaves_out_unknown_parts() {
        let mut problem = Problem {
            line: Some(4),
            column: Some(2),
            field: "kind".into(),
            message: "bad".into(),
        };
        assert_eq!(problem.to_string(), "4:2: kind: bad");
        problem.column = None;
        assert_eq!(problem.to_string(), "4: kind: bad");
        problem.line = None;
        problem.field.clear();
        assert_eq!(problem.to_string(), "bad");
    }

    #[test]
    fn files_are_read_and_unreadable_ones_explained() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nvidia.yaml");
        std::fs::write(&path, GOOD).unwrap();
        assert!(validate_file(&path).unwrap().is_ok());

        let missing = validate_file(&dir.path().join("absent.yaml")).unwrap_err();
        assert!(missing.message().contains("does not exist"), "{missing}");
        assert!(missing.hint_text().is_some());

        let binary = dir.path().join("binary.yaml");
        std::fs::write(&binary, [0xff, 0xfe, 0x00]).unwrap();
        assert!(validate_file(&binary).unwrap_err().hint_text().is_some());
    }
}
