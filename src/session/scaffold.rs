//! `podlab init`'s files: a commented `podlab.toml`, a Containerfile for a CUDA + PyTorch +
//! JupyterLab image with a fixed non-root user, and a `requirements.txt` it installs.
//!
//! Scaffolding never overwrites: every target is checked before any is written, so a
//! refused `init` leaves the directory as it was.

use std::path::{Path, PathBuf};

use super::config::FILE_NAME;
use super::values;
use crate::{Error, Result};

/// The Containerfile's base image unless `podlab init --image` names another.
pub const DEFAULT_BASE_IMAGE: &str = "docker.io/nvidia/cuda:12.4.1-cudnn-runtime-ubuntu22.04";

const PODLAB_TOML: &str = include_str!("templates/podlab.toml");
const CONTAINERFILE: &str = include_str!("templates/Containerfile");
const REQUIREMENTS: &str = include_str!("templates/requirements.txt");

/// What happened to one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Written(PathBuf),
    /// An existing `requirements.txt`, which the Containerfile installs as it is.
    Kept(PathBuf),
}

/// The Containerfile's text for a base image.
pub fn containerfile(base_image: &str) -> String {
    CONTAINERFILE.replace("@BASE_IMAGE@", base_image)
}

/// Writes the scaffold into `dir`; refuses, writing nothing, when `podlab.toml` or the
/// Containerfile is already there.
pub fn write(dir: &Path, base_image: Option<&str>) -> Result<Vec<Outcome>> {
    let base_image = match base_image {
        Some(image) => values::image_name(image)
            .map_err(|err| Error::user(format!("--image: {}", err.message)).hint(err.hint))?,
        None => DEFAULT_BASE_IMAGE.to_owned(),
    };
    let files = [
        (dir.join(FILE_NAME), PODLAB_TOML.to_owned()),
        (dir.join("Containerfile"), containerfile(&base_image)),
    ];
    let existing: Vec<String> = files
        .iter()
        .filter(|(path, _)| path.symlink_metadata().is_ok())
        .map(|(path, _)| path.display().to_string())
        .collect();
    if !existing.is_empty() {
        return Err(Error::user(format!(
            "{} already {}; podlab init wrote nothing",
            existing.join(" and "),
            if existing.len() == 1 { "exists" } else { "exist" }
        ))
        .hint("podlab init never overwrites: edit the existing files, or move them aside and run it again"));
    }
    let mut outcomes = Vec::new();
    for (path, text) in files {
        crate::host::atomic::write_file(&path, text.as_bytes(), 0o644)?;
        outcomes.push(Outcome::Written(path));
    }
    let requirements = dir.join("requirements.txt");
    if requirements.symlink_metadata().is_ok() {
        outcomes.push(Outcome::Kept(requirements));
    } else {
        crate::host::atomic::write_file(&requirements, REQUIREMENTS.as_bytes(), 0o644)?;
        outcomes.push(Outcome::Written(requirements));
    }
    Ok(outcomes)
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;
    use crate::session::config::ProjectFile;
    use crate::session::{ImageSetting, ImageSource, Inputs, Settings, UserMapping, resolve};

    #[test]
    fn the_scaffold_parses_and_resolves_to_a_build() {
        let dir = tempfile::tempdir().unwrap();
        let outcomes = write(dir.path(), None).unwrap();
        assert_eq!(outcomes.len(), 3);
        let path = dir.path().join(FILE_NAME);
        let file = ProjectFile::load(&path, dir.path()).unwrap();
        assert!(matches!(file.base.image, Some(ImageSetting::Build { .. })));
        assert_eq!(file.base.user_map, Some(UserMapping::Auto));
        let notebook = &file.presets["notebook"];
        assert_eq!(notebook.ports.len(), 1);
        let session = resolve(Inputs {
            cwd: dir.path(),
            home: None,
            file: Some(file),
            flags: Settings::default(),
            preset: Some("notebook".into()),
            name: None,
        })
        .unwrap();
        let ImageSource::Build {
            containerfile,
            context,
            tag,
            ..
        } = &session.image
        else {
            panic!("{:?}", session.image)
        };
        assert_eq!(containerfile, &dir.path().join("Containerfile"));
        assert_eq!(context, dir.path());
        assert!(
            tag.starts_with("localhost/") && tag.ends_with(":latest"),
            "{tag}"
        );
        assert_eq!(session.command.first().map(String::as_str), Some("jupyter"));
    }

    #[test]
    fn the_containerfile_has_the_conventions() {
        let text = containerfile("nvcr.io/nvidia/pytorch:24.12-py3");
        for needle in [
            "ARG BASE_IMAGE=nvcr.io/nvidia/pytorch:24.12-py3\nFROM ${BASE_IMAGE}",
            "PYTHONDONTWRITEBYTECODE=1",
            "PYTHONUNBUFFERED=1",
            "TORCH_HOME=/data/cache/torch",
            "useradd --uid 1000 --gid 1000",
            "USER dev",
            "jupyterlab -r /tmp/requirements.txt",
        ] {
            assert!(text.contains(needle), "{needle}");
        }
        let user = text.find("USER dev").unwrap();
        assert!(
            text.find("pip install jupyterlab").unwrap() > user,
            "installed as the user"
        );
        assert!(!text.contains('@'), "placeholder left");
    }

    /// Issue 15: `nvidia/cuda:...` did not resolve on a host without unqualified-search
    /// registries (stock Debian). Every image name the scaffold writes, commented or not,
    /// names its registry.
    #[test]
    fn scaffold_image_names_are_fully_qualified() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), None).unwrap();
        let mut names = Vec::new();
        for file in [FILE_NAME, "Containerfile"] {
            let text = fs::read_to_string(dir.path().join(file)).unwrap();
            for word in text.split(|c: char| c.is_whitespace() || "\"'=,".contains(c)) {
                let word = word.trim_matches(['(', ')', '.', ':', '`']);
                // An image reference: a path with a tag (not a file path or a URL).
                if word.contains('/')
                    && word.contains(':')
                    && !word.starts_with(['/', '~', '$'])
                    && !word.contains("://")
                {
                    names.push(word.to_owned());
                }
            }
        }
        assert!(names.len() >= 3, "{names:?}");
        for name in &names {
            let registry = name.split('/').next().unwrap();
            assert!(
                registry.contains('.') || registry == "localhost",
                "{name} is a short name"
            );
            // `localhost/<project>:latest` in a comment stands for the name podlab derives.
            if !name.contains('<') {
                assert_eq!(values::image_name(name).as_deref(), Ok(name.as_str()));
            }
        }
        assert!(names.iter().any(|name| name == DEFAULT_BASE_IMAGE));
        assert!(DEFAULT_BASE_IMAGE.starts_with("docker.io/"));
    }

    #[test]
    fn init_refuses_to_overwrite_and_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("Containerfile"), "FROM mine\n").unwrap();
        let err = write(dir.path(), None).unwrap_err();
        assert_eq!(err.exit_code(), 1);
        assert!(
            err.message().contains("Containerfile already exists"),
            "{err}"
        );
        assert!(err.hint_text().unwrap().contains("never overwrites"));
        assert!(!dir.path().join(FILE_NAME).exists(), "nothing written");
        assert!(
            !dir.path().join("requirements.txt").exists(),
            "nothing written"
        );
        assert_eq!(
            fs::read_to_string(dir.path().join("Containerfile")).unwrap(),
            "FROM mine\n"
        );
        fs::write(dir.path().join(FILE_NAME), "").unwrap();
        let err = write(dir.path(), None).unwrap_err();
        assert!(err.message().contains(" and "), "{err}");
    }

    #[test]
    fn an_existing_requirements_file_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("requirements.txt"), "numpy\n").unwrap();
        let outcomes = write(dir.path(), Some("img:1")).unwrap();
        assert_eq!(
            outcomes.last(),
            Some(&Outcome::Kept(dir.path().join("requirements.txt")))
        );
        assert_eq!(
            fs::read_to_string(dir.path().join("requirements.txt")).unwrap(),
            "numpy\n"
        );
        assert!(
            fs::read_to_string(dir.path().join("Containerfile"))
                .unwrap()
                .contains("ARG BASE_IMAGE=img:1\n")
        );
        let fresh = tempfile::tempdir().unwrap();
        let err = write(fresh.path(), Some("bad image")).unwrap_err();
        assert!(
            err.message().starts_with("--image: invalid image name"),
            "{err}"
        );
    }
}
