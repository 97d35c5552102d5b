//! Where specs live, and writing them safely.
//!
//! Podman reads every `*.yaml` / `*.json` in its CDI directories, and two files defining the
//! same device make that device unresolvable; so podlab writes one file per directory and
//! kind, refuses to add a second, never replaces a file it did not write or that was edited
//! since (without `--force`), and writes through [`crate::host::atomic`] under a directory lock.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::document::{Header, read_header};
use crate::capabilities::{Capabilities, Feature};
use crate::host::atomic;
use crate::{Error, Result};

/// podlab's spec file name in a CDI directory.
pub const SPEC_FILE: &str = "podlab-nvidia.yaml";
/// The system-wide directory every Podman reads.
pub const SYSTEM_DIR: &str = "/etc/cdi";
/// The directories Podman reads by default (before `cdi_spec_dirs` replaces them).
pub const DEFAULT_DIRS: [&str; 2] = ["/etc/cdi", "/var/run/cdi"];

/// The directories the target Podman reads specs from: `/etc/cdi`, `/var/run/cdi` while it
/// still scans it, or what `cdi_spec_dirs` in the user's containers.conf says on 5.5+.
pub fn podman_spec_dirs(caps: &Capabilities) -> Vec<PathBuf> {
    if caps.has(Feature::CdiSpecDirs) {
        if let Some(configured) = configured_spec_dirs() {
            return configured;
        }
    }
    let mut dirs = vec![PathBuf::from(SYSTEM_DIR)];
    if caps.scans_run_cdi() {
        dirs.push(PathBuf::from(DEFAULT_DIRS[1]));
    }
    dirs
}

/// The user's containers.conf.
pub fn containers_conf() -> Result<PathBuf> {
    Ok(user_dir()?
        .parent()
        .unwrap_or(Path::new("/"))
        .join("containers/containers.conf"))
}

fn configured_spec_dirs() -> Option<Vec<PathBuf>> {
    let text = fs::read_to_string(containers_conf().ok()?).ok()?;
    let doc: toml_edit::DocumentMut = text.parse().ok()?;
    let dirs = doc.get("engine")?.get("cdi_spec_dirs")?.as_array()?;
    Some(
        dirs.iter()
            .filter_map(|dir| dir.as_str().map(PathBuf::from))
            .collect(),
    )
}

/// What happened to the target file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    Created,
    Replaced,
    Unchanged,
}

/// The user's CDI directory: `$XDG_CONFIG_HOME/cdi`, else `~/.config/cdi`.
pub fn user_dir() -> Result<PathBuf> {
    let config = crate::host::xdg::config_home()?;
    Ok(config.join("cdi"))
}

#[derive(Deserialize)]
struct KindOnly {
    kind: String,
}

/// The `kind` a spec file declares, if it parses that far.
fn declared_kind(path: &Path) -> Option<String> {
    let text = fs::read_to_string(path).ok()?;
    let parsed: KindOnly = if path.extension().is_some_and(|ext| ext == "json") {
        serde_json::from_str(&text).ok()?
    } else {
        serde_saphyr::from_str(&text).ok()?
    };
    Some(parsed.kind)
}

/// The spec files in a directory (what Podman would load), sorted.
pub fn spec_files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(std::result::Result::ok)
        .map(|entry| entry.path())
        .filter(|path| {
            path.extension()
                .is_some_and(|ext| ext == "yaml" || ext == "json")
                && path.is_file()
        })
        .collect();
    files.sort();
    files
}

/// Writes a spec to `path`, atomically, under a lock on its directory. In a directory the
/// target Podman reads (`podman_dirs`), a second spec for `kind` would make every one of its
/// devices unresolvable, so another file there that declares `kind` refuses the write;
/// anywhere else (`/tmp`, a project directory) the other files are none of podlab's business
/// and are not read.
pub async fn write_spec(
    path: &Path,
    text: &str,
    kind: &str,
    force: bool,
    podman_dirs: &[PathBuf],
) -> Result<Written> {
    let dir = path
        .parent()
        .filter(|dir| !dir.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    match fs::metadata(dir) {
        Ok(meta) if meta.is_dir() => {}
        Ok(_) => {
            return Err(Error::user(format!(
                "cannot write {}: {} is not a directory",
                path.display(),
                dir.display()
            ))
            .hint("choose another --output"));
        }
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::user(format!(
                "cannot write {}: {} does not exist",
                path.display(),
                dir.display()
            ))
            .hint(format!(
                "create it first (mkdir -p {}) or choose another --output",
                dir.display()
            )));
        }
        Err(err) => {
            return Err(Error::env(format!("cannot write to {}: {err}", dir.display())).hint(
                format!(
                    "choose a directory you can write with --output, or run as root for {SYSTEM_DIR} (sudo podlab cdi install --system)"
                ),
            ));
        }
    }
    let _lock = atomic::lock(&dir.join(".podlab-cdi.lock"), Duration::from_secs(10))
        .await
        .map_err(|err| {
            Error::env(format!("cannot write to {}: {}", dir.display(), err.message())).hint(format!(
                "choose a directory you can write with --output, or run as root for {SYSTEM_DIR} (sudo podlab cdi install --system)"
            ))
        })?;
    let existing = match fs::read_to_string(path) {
        Ok(text) => Some(text),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => None,
        Err(err) => return Err(Error::env(format!("cannot read {}: {err}", path.display()))),
    };
    if let Some(old) = &existing {
        if old == text {
            return Ok(Written::Unchanged);
        }
        if !force {
            match read_header(old) {
                Some(Header { unedited: true, .. }) => {}
                Some(_) => {
                    return Err(Error::user(format!("{} was edited since podlab wrote it", path.display()))
                        .hint("keep your edits by writing elsewhere (--output FILE), or replace it with --force"));
                }
                None => {
                    return Err(Error::user(format!(
                        "{} was not written by podlab",
                        path.display()
                    ))
                    .hint(
                        "move it away, write elsewhere (--output FILE), or replace it with --force",
                    ));
                }
            }
        }
    }
    let canonical = |dir: &Path| dir.canonicalize().unwrap_or_else(|_| dir.to_owned());
    let read_by_podman = podman_dirs
        .iter()
        .any(|podman_dir| canonical(podman_dir) == canonical(dir));
    let others = if read_by_podman {
        spec_files(dir)
    } else {
        Vec::new()
    };
    for other in others {
        if other != path && declared_kind(&other).as_deref() == Some(kind) {
            return Err(Error::user(format!(
                "{} already defines {kind} devices: a second spec for them in {} makes every one unresolvable",
                other.display(),
                dir.display()
            ))
            .hint(format!(
                "remove it (rm {}), or regenerate that file itself: podlab cdi generate --output {} --force",
                other.display(),
                other.display()
            )));
        }
    }
    atomic::write_file(path, text.as_bytes(), 0o644)?;
    Ok(if existing.is_some() {
        Written::Replaced
    } else {
        Written::Created
    })
}

/// Makes Podman (5.5+) read `user_dir` by listing it in `cdi_spec_dirs` in containers.conf.
/// The setting replaces Podman's defaults, so those are kept in the list; everything else in
/// the file is left as the user wrote it. Returns the new text, or `None` when nothing changes.
pub fn with_cdi_spec_dir(conf_text: &str, user_dir: &Path) -> Result<Option<String>> {
    let mut doc: toml_edit::DocumentMut = conf_text.parse().map_err(|err| {
        Error::user(format!("cannot parse containers.conf: {err}"))
            .hint("fix the TOML syntax in containers.conf, then run again")
    })?;
    let engine = doc
        .entry("engine")
        .or_insert_with(|| toml_edit::Item::Table(toml_edit::Table::new()))
        .as_table_like_mut()
        .ok_or_else(|| {
            Error::user("containers.conf: [engine] is not a table").hint("fix containers.conf")
        })?;
    let wanted = user_dir.display().to_string();
    let item = engine
        .entry("cdi_spec_dirs")
        .or_insert(toml_edit::value(toml_edit::Array::new()));
    let array = item.as_array_mut().ok_or_else(|| {
        Error::user("containers.conf: engine.cdi_spec_dirs is not an array")
            .hint("make it a list of directories")
    })?;
    let before = array.len();
    if before == 0 {
        for dir in DEFAULT_DIRS {
            array.push(dir);
        }
    }
    if array
        .iter()
        .any(|value| value.as_str() == Some(wanted.as_str()))
    {
        if before != 0 {
            return Ok(None);
        }
    } else {
        array.push(wanted);
    }
    Ok(Some(doc.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cdi::document::{Format, Provenance, render};
    use crate::cdi::spec::Spec;
    use crate::gpu::inventory::Fingerprint;

    fn spec_text(env: &str, with_header: bool) -> String {
        let spec: Spec = serde_json::from_value(serde_json::json!({
            "cdiVersion": "0.3.0", "kind": "nvidia.com/gpu",
            "devices": [{"name": "all", "containerEdits": {"env": [env]}}]
        }))
        .unwrap();
        let provenance = Provenance {
            driver_root: "/".into(),
            dev_root: "/".into(),
            kind: "nvidia.com/gpu".into(),
            names: "index".into(),
            hooks: "none".into(),
            fingerprint: Fingerprint {
                driver_version: "1.2".into(),
                nodes: vec![],
                libraries: vec![],
                mig: vec![],
            },
        };
        render(&spec, Format::Yaml, with_header.then_some(&provenance)).unwrap()
    }

    #[tokio::test]
    async fn creates_replaces_and_keeps_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(SPEC_FILE);
        assert_eq!(
            write_spec(&path, &spec_text("A=1", true), "nvidia.com/gpu", false, &[])
                .await
                .unwrap(),
            Written::Created
        );
        assert_eq!(
            write_spec(&path, &spec_text("A=1", true), "nvidia.com/gpu", false, &[])
                .await
                .unwrap(),
            Written::Unchanged
        );
        assert_eq!(
            write_spec(&path, &spec_text("A=2", true), "nvidia.com/gpu", false, &[])
                .await
                .unwrap(),
            Written::Replaced
        );
    }

    /// Issue 11: a missing output directory was reported as "not a directory".
    #[tokio::test]
    async fn missing_directory_is_called_missing_not_a_non_directory() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("absent");
        let err = write_spec(
            &missing.join(SPEC_FILE),
            &spec_text("A=1", true),
            "nvidia.com/gpu",
            false,
            &[],
        )
        .await
        .err()
        .unwrap();
        let text = err.to_string();
        assert!(
            text.contains(&format!("{} does not exist", missing.display())),
            "{text}"
        );
        assert!(!text.contains("not a directory"), "{text}");
        assert!(!missing.exists());

        let file = dir.path().join("a-file");
        fs::write(&file, "x").unwrap();
        let err = write_spec(
            &file.join(SPEC_FILE),
            &spec_text("A=1", true),
            "nvidia.com/gpu",
            false,
            &[],
        )
        .await
        .err()
        .unwrap();
        assert!(
            err.to_string()
                .contains(&format!("{} is not a directory", file.display())),
            "{err}"
        );
    }

    #[tokio::test]
    async fn never_clobbers_edited_or_foreign_files_without_force() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(SPEC_FILE);
        fs::write(&path, spec_text("A=1", true).replace("A=1", "A=edited")).unwrap();
        let err = write_spec(&path, &spec_text("A=2", true), "nvidia.com/gpu", false, &[])
            .await
            .err()
            .unwrap();
        assert!(
            err.to_string().contains("was edited since podlab wrote it"),
            "{err}"
        );
        fs::write(&path, spec_text("A=1", false)).unwrap();
        let err = write_spec(&path, &spec_text("A=2", true), "nvidia.com/gpu", false, &[])
            .await
            .err()
            .unwrap();
        assert!(
            err.to_string().contains("was not written by podlab"),
            "{err}"
        );
        assert_eq!(
            write_spec(&path, &spec_text("A=2", true), "nvidia.com/gpu", true, &[])
                .await
                .unwrap(),
            Written::Replaced
        );
    }

    #[tokio::test]
    async fn refuses_a_second_spec_for_the_same_kind() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("nvidia.yaml"), spec_text("A=1", false)).unwrap();
        let path = dir.path().join(SPEC_FILE);
        let podman_dirs = [dir.path().to_owned()];
        let err = write_spec(
            &path,
            &spec_text("A=2", true),
            "nvidia.com/gpu",
            true,
            &podman_dirs,
        )
        .await
        .err()
        .unwrap();
        assert!(
            err.to_string()
                .contains("already defines nvidia.com/gpu devices"),
            "{err}"
        );
        assert!(!path.exists());
        // Issue 15: a directory Podman never reads (/tmp) is no CDI directory: the other
        // spec there is not podlab's business.
        assert_eq!(
            write_spec(&path, &spec_text("A=2", true), "nvidia.com/gpu", false, &[])
                .await
                .unwrap(),
            Written::Created
        );
        fs::remove_file(&path).unwrap();
        // Another kind in the same directory is fine.
        assert!(
            write_spec(
                &path,
                &spec_text("A=2", true).replace("nvidia.com/gpu", "example.com/x"),
                "example.com/x",
                false,
                &podman_dirs
            )
            .await
            .is_ok()
        );
    }

    #[tokio::test]
    async fn missing_directory_is_a_user_error() {
        let dir = tempfile::tempdir().unwrap();
        let err = write_spec(&dir.path().join("none/x.yaml"), "x", "a/b", false, &[])
            .await
            .err()
            .unwrap();
        assert_eq!(err.exit_code(), 1);
    }

    #[test]
    fn cdi_spec_dirs_keeps_defaults_and_user_settings() {
        let user = Path::new("/home/a/.config/cdi");
        let conf = "# my settings\n[containers]\nlog_size_max = 100\n\n[engine]\nruntime = \"runc\" # needed here\n";
        let out = with_cdi_spec_dir(conf, user).unwrap().unwrap();
        assert!(
            out.contains("# my settings") && out.contains("runtime = \"runc\" # needed here"),
            "{out}"
        );
        assert!(
            out.contains(r#"cdi_spec_dirs = ["/etc/cdi", "/var/run/cdi", "/home/a/.config/cdi"]"#),
            "{out}"
        );
        assert_eq!(with_cdi_spec_dir(&out, user).unwrap(), None);

        let theirs = "[engine]\ncdi_spec_dirs = [\"/opt/cdi\"]\n";
        let out = with_cdi_spec_dir(theirs, user).unwrap().unwrap();
        assert!(
            out.contains(r#"cdi_spec_dirs = ["/opt/cdi", "/home/a/.config/cdi"]"#),
            "{out}"
        );
        let out = with_cdi_spec_dir("", user).unwrap().unwrap();
        assert!(out.contains("[engine]"), "{out}");
        assert!(with_cdi_spec_dir("[engine\n", user).is_err());
    }
}
