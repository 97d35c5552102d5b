//! Is an installed spec still true to the host? A spec hard-codes versioned library paths and
//! device nodes, so after a driver upgrade containers fail with "failed to stat CDI host
//! device". podlab records what each spec was built from (see [`super::document`]) and
//! compares it with a fresh discovery.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::document::{Format, Provenance, read_header, render};
use super::generate::{self, HookMode, NameStyles, Options};
use super::store::{DEFAULT_DIRS, SPEC_FILE, spec_files, user_dir};
use crate::Result;
use crate::capabilities::CdiVersion;
use crate::gpu::{DriverRoots, Inventory, discover};

/// The verdict on one spec file podlab wrote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "lowercase")]
pub enum State {
    Fresh,
    Stale {
        reason: String,
    },
    /// Edited by hand since podlab wrote it: podlab leaves it alone.
    Edited,
}

#[derive(Debug, Clone, Serialize)]
pub struct SpecStatus {
    pub path: PathBuf,
    pub driver_version: String,
    #[serde(flatten)]
    pub state: State,
    #[serde(skip)]
    pub provenance: Provenance,
}

/// Where podlab may have installed specs: the system directories and the user's.
pub fn install_dirs() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = DEFAULT_DIRS.iter().map(PathBuf::from).collect();
    if let Ok(dir) = user_dir() {
        dirs.push(dir);
    }
    dirs
}

/// Checks every podlab spec in `dirs`.
pub fn check_all(dirs: &[PathBuf]) -> Vec<SpecStatus> {
    let mut seen = Vec::new();
    let mut out = Vec::new();
    for dir in dirs {
        for path in spec_files(dir) {
            let canonical = path.canonicalize().unwrap_or_else(|_| path.clone());
            if seen.contains(&canonical) {
                continue;
            }
            seen.push(canonical);
            if let Some(status) = check(&path) {
                out.push(status);
            }
        }
    }
    out
}

/// Checks one file; `None` when podlab did not write it.
pub fn check(path: &Path) -> Option<SpecStatus> {
    check_with(path, None)
}

/// [`check`], with a discovery the caller already made of one pair of roots (`known`): a spec
/// generated from those roots is compared with it instead of discovering the host again.
pub fn check_with(path: &Path, known: Option<(&DriverRoots, &Inventory)>) -> Option<SpecStatus> {
    let text = std::fs::read_to_string(path).ok()?;
    let header = read_header(&text)?;
    let provenance = header.provenance;
    let state = if header.unedited {
        let roots = roots_of(&provenance);
        let discovered = match known {
            Some((known_roots, inventory)) if *known_roots == roots => Ok(inventory.fingerprint()),
            _ => discover(&roots).map(|inventory| inventory.fingerprint()),
        };
        match discovered {
            Ok(fingerprint) => match provenance.fingerprint.staleness(&fingerprint) {
                None => State::Fresh,
                Some(reason) => State::Stale { reason },
            },
            Err(err) => State::Stale {
                reason: err.message().to_owned(),
            },
        }
    } else {
        State::Edited
    };
    Some(SpecStatus {
        path: path.to_owned(),
        driver_version: provenance.fingerprint.driver_version.clone(),
        state,
        provenance,
    })
}

fn roots_of(provenance: &Provenance) -> DriverRoots {
    DriverRoots {
        driver_root: provenance.driver_root.clone().into(),
        dev_root: provenance.dev_root.clone().into(),
    }
}

/// The options a spec was generated with, read back from its provenance.
pub fn options_of(provenance: &Provenance, max_version: Option<CdiVersion>) -> Options {
    Options {
        kind: provenance.kind.clone(),
        names: NameStyles {
            index: provenance.names.contains("index"),
            uuid: provenance.names.contains("uuid"),
        },
        hooks: if provenance.hooks == "nvidia-cdi-hook" {
            HookMode::NvidiaCdiHook
        } else {
            HookMode::None
        },
        max_version,
    }
}

/// Builds the provenance record of a generation.
pub fn provenance(
    roots: &DriverRoots,
    options: &Options,
    fingerprint: crate::gpu::inventory::Fingerprint,
) -> Provenance {
    let mut names = Vec::new();
    if options.names.index {
        names.push("index");
    }
    if options.names.uuid {
        names.push("uuid");
    }
    Provenance {
        driver_root: roots.driver_root.display().to_string(),
        dev_root: roots.dev_root.display().to_string(),
        kind: options.kind.clone(),
        names: names.join(","),
        hooks: match options.hooks {
            HookMode::None => "none".to_owned(),
            HookMode::NvidiaCdiHook => "nvidia-cdi-hook".to_owned(),
        },
        fingerprint,
    }
}

/// Generates the YAML text of a spec with its provenance header.
pub fn generate_document(
    roots: &DriverRoots,
    options: &Options,
) -> Result<(String, Vec<crate::gpu::inventory::Warning>)> {
    let inventory = discover(roots)?;
    let generated = generate::generate(&inventory, roots, options)?;
    let provenance = provenance(roots, options, inventory.fingerprint());
    Ok((
        render(&generated.spec, Format::Yaml, Some(&provenance))?,
        generated.warnings,
    ))
}

/// The command that refreshes a spec someone else (root) owns.
pub fn refresh_command(path: &Path) -> String {
    if path.starts_with("/etc") || path.starts_with("/var/run") || path.starts_with("/run") {
        if path.file_name().is_some_and(|name| name == SPEC_FILE)
            && path.parent() == Some(Path::new("/etc/cdi"))
        {
            "sudo podlab cdi install --system".to_owned()
        } else {
            format!(
                "sudo podlab cdi generate --output {} --force",
                path.display()
            )
        }
    } else {
        format!("podlab cdi generate --output {} --force", path.display())
    }
}
