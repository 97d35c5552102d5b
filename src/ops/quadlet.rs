//! Quadlet units from a session: a systemd user service through Podman's quadlet generator,
//! with no daemon of podlab's own.
//!
//! [`units()`] makes the files of a session's unit set (the main unit first, then a `.pod`,
//! `.image` or `.build` companion, or the YAML a `.kube` unit plays); [`install`] writes them
//! into podlab's unit directory and [`start`] starts the service when a systemd user instance
//! runs, or says what to run when none does; [`remove`] removes only files podlab wrote. The
//! units come from [`crate::emit::quadlet`], the host decisions and the unit directory from
//! [`crate::ops::units`].

use std::path::{Path, PathBuf};

use crate::capabilities::{Capabilities, Feature, UnitType};
use crate::emit::quadlet::service::plain_service;
use crate::emit::quadlet::unit::check_unit_type;
use crate::emit::quadlet::unit::with_header;
use crate::emit::quadlet::{container_unit, kube_unit, set};
use crate::engine::{self, ConnectOptions, Engine};
use crate::ops::kube::podman_yaml;
use crate::ops::units::{self, ImageUser, Written};
use crate::session::{Session, UserMapping};
use crate::{Error, Result};

/// The unit type to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Kind {
    /// A `.container` unit: the session's container, as `podlab run` creates it.
    Container,
    /// A `.kube` unit running the session's pod YAML with podman kube play.
    Kube,
    /// A `.container` unit joined to a `.pod` unit of the same name (podman 5.0+), which
    /// owns the ports, shm and user mapping, so more containers can join the session.
    Pod,
}

/// What to make of the session, beyond its unit type.
#[derive(Debug, Clone, Default)]
pub struct UnitOptions {
    /// The YAML a kube unit plays; without it, the session's own goes beside the unit.
    pub yaml: Option<PathBuf>,
    /// Also write an `.image` unit that pulls the image before the service starts.
    pub pull_unit: bool,
}

/// The target Podman for `--podman-version` (see [`target`]), checked to know `kind`'s unit
/// type.
pub fn target_for(version: &str, kind: Kind) -> Result<Capabilities> {
    let caps = target(version)?;
    if kind == Kind::Container && !caps.has(Feature::Quadlet) {
        // A plain .service instead (see [`units`]).
        return Ok(caps);
    }
    check_unit_type(
        &caps,
        match kind {
            Kind::Container => UnitType::Container,
            Kind::Kube => UnitType::Kube,
            Kind::Pod => UnitType::Pod,
        },
    )?;
    Ok(caps)
}

/// Writes the units into podlab's unit directory (checking the session's ports first when
/// none of its files is there yet); what became of each file. A name is refused when a container of that name that the unit would replace exists
/// (see [`units::check_container_free`]), or when a unit file of the user's of the same name
/// would shadow podlab's (see [`units::check_not_shadowed`]). A plain service goes to
/// [`units::service_dir`].
pub async fn install(
    built: &Built,
    force: bool,
    connect: &ConnectOptions,
) -> Result<Vec<(PathBuf, Written)>> {
    let dir = if built.plain {
        units::service_dir()?
    } else {
        let dir = units::unit_dir()?;
        units::check_not_shadowed(&units::quadlet_dirs()?, &dir, &built.files)?;
        dir
    };
    if built.replaces_container {
        let connected = engine::connect(connect).await?;
        let name = built.service.trim_end_matches(".service");
        units::check_container_free(&connected.engine, name, &[units::SERVICE_KIND]).await?;
    }
    if !built.files.iter().any(|(file, _)| dir.join(file).exists()) {
        units::check_ports(&built.session.ports)?;
    }
    units::install(&dir, &built.files, force).await
}

/// Starts (restarts) the installed service of `built` where a systemd user instance runs;
/// elsewhere says what to run. A plain service is also enabled: quadlet applies a unit's
/// `WantedBy=` itself, systemd does so for a plain one only through `enable`.
pub fn start(built: &Built) -> Result<()> {
    let service = built.service.as_str();
    if units::systemd_user_instance() {
        let name = service.strip_suffix(".service").unwrap_or(service);
        units::reload_and("restart", service, &format!("podlab quadlet rm {name}"))?;
        if built.plain {
            units::systemctl(&["enable", service])?;
        }
        tracing::warn!("started {service}");
    } else {
        tracing::warn!(
            "no systemd user instance runs here, so nothing was started; where one runs, run: systemctl --user daemon-reload && systemctl --user start {service}"
        );
    }
    if !units::lingering() {
        tracing::warn!(
            "lingering is off: your services stop when you log out (enable it with: loginctl enable-linger)"
        );
    }
    Ok(())
}

/// A removal of podlab's unit `name`: its files are gone; [`Removal::finish`] tells systemd.
#[derive(Debug)]
pub struct Removal {
    /// The files removed.
    pub removed: Vec<PathBuf>,
    service: String,
    running: bool,
}

/// Stops the unit's service where systemd runs, then removes its files (never a file podlab
/// did not write, nor its service; an edited one only with `force`).
pub async fn remove(name: &str, force: bool) -> Result<Removal> {
    // podlab's quadlet directory, or for a plain service (Podman without quadlet) the
    // user's systemd directory.
    let mut dir = units::unit_dir()?;
    let mut plain = false;
    if units::removable(&dir, name, force).is_err() {
        let services = units::service_dir()?;
        if services.join(format!("{name}.service")).is_file() {
            dir = services;
            plain = true;
        }
    }
    let service = format!("{name}.service");
    let running = units::systemd_user_instance();
    // Nothing is stopped that podlab will not remove.
    units::removable(&dir, name, force)?;
    if running {
        // Stop it while its unit still exists; a unit that is not loaded is no error here.
        let _ = units::systemctl(&["stop", &service]);
        if plain {
            // The links `enable` made; quadlet's units have none.
            let _ = units::systemctl(&["disable", &service]);
        }
    }
    let removed = units::remove(&dir, name, force).await?;
    Ok(Removal {
        removed,
        service,
        running,
    })
}

impl Removal {
    /// Reloads systemd's view of the units, or says what to run where it runs.
    pub fn finish(&self) -> Result<()> {
        if self.running {
            units::systemctl(&["daemon-reload"])?;
        } else {
            tracing::warn!(
                "no systemd user instance runs here; where one runs, run: systemctl --user stop {} && systemctl --user daemon-reload",
                self.service
            );
        }
        Ok(())
    }
}

/// The files a session's units make: (file name, text), the main unit first.
#[derive(Debug)]
pub struct Built {
    pub files: Vec<(String, String)>,
    /// The service that runs the session.
    pub service: String,
    pub session: Session,
    /// A plain `.service` (Podman without quadlet), which goes to [`units::service_dir`].
    pub plain: bool,
    /// Whether the service runs a container named after it with `--replace`.
    pub replaces_container: bool,
}

/// The units (and the YAML a `.kube` unit plays) of `session` for the target Podman `caps`
/// (see [`target_for`]); `cwd` resolves a relative `--yaml`. Podman is asked only when the
/// units need it: the image's user for `--user-map auto`, the session's own YAML.
pub async fn units(
    caps: Capabilities,
    session: Session,
    kind: Kind,
    options: &UnitOptions,
    cwd: &Path,
    connect: &ConnectOptions,
) -> Result<Built> {
    let name = session
        .name
        .clone()
        .unwrap_or_else(|| session.project.clone());
    let mut companions = Vec::new();
    let mut yaml_file = None;
    let emitted = match kind {
        Kind::Container | Kind::Pod => {
            let image_user = if session.user_map == UserMapping::Auto {
                image_user(&session, connect).await?
            } else {
                None
            };
            let planned = units::plan(&session, &caps, &name, image_user.as_ref())?;
            for notice in &planned.notices {
                tracing::warn!("{notice}");
            }
            let mut emitted = container_unit(
                &session,
                &planned.container,
                planned.cdi_spec_dir.as_deref(),
                &caps,
            )?;
            if kind == Kind::Pod {
                companions.push(set::join_pod(&mut emitted, &caps)?);
            }
            companions.extend(set::image_unit(
                &session.image,
                &mut emitted,
                options.pull_unit,
                &caps,
            )?);
            emitted
        }
        Kind::Kube => {
            let yaml = if let Some(path) = &options.yaml {
                let yaml = absolute(cwd, path);
                if !yaml.is_file() {
                    return Err(
                        Error::user(format!("{} is not a file", yaml.display())).hint(
                            "write it first: podlab kube generate > pod.yaml, or leave out --yaml",
                        ),
                    );
                }
                yaml
            } else {
                let connected = engine::connect(connect).await?;
                let text = podman_yaml(&connected.engine, caps, &session).await?;
                let file = format!("{name}.yaml");
                yaml_file = Some((file.clone(), with_header(&text)));
                // Quadlet resolves a relative path against the unit's own directory.
                PathBuf::from(file)
            };
            let (_, cdi_spec_dir) = units::plan_gpus(&session, &caps)?;
            kube_unit(&name, &yaml, cdi_spec_dir.as_deref())?
        }
    };
    for notice in &emitted.notices {
        tracing::warn!("{notice}");
    }
    // Without quadlet (before 4.4) the container unit becomes the service quadlet would have
    // generated from it.
    let plain = kind == Kind::Container && !caps.has(Feature::Quadlet);
    let main = if plain {
        tracing::warn!(
            "podman {} has no quadlet (it needs {}): writing a plain systemd service instead",
            caps.version(),
            Feature::Quadlet.since()
        );
        (format!("{name}.service"), plain_service(&emitted.unit)?)
    } else {
        (emitted.unit.file_name(), emitted.unit.render(&caps)?)
    };
    let mut files = vec![main];
    for unit in &companions {
        files.push((unit.file_name(), unit.render(&caps)?));
    }
    files.extend(yaml_file);
    Ok(Built {
        files,
        service: format!("{name}.service"),
        session,
        plain,
        replaces_container: kind != Kind::Kube,
    })
}

fn absolute(cwd: &Path, path: &Path) -> PathBuf {
    if path.is_absolute() {
        path.to_owned()
    } else {
        cwd.join(path)
    }
}

/// The image's user (and, with GPUs, what [`crate::plan::image_probes`] asks of it), from
/// Podman; `None` when the image is not local.
pub async fn image_user(session: &Session, connect: &ConnectOptions) -> Result<Option<ImageUser>> {
    let connected = engine::connect(connect).await.map_err(|err| {
        let hint = err.hint_text().unwrap_or_default().to_owned();
        Error::env(format!(
            "--user-map auto needs the image's user from Podman: {}",
            err.message()
        ))
        .hint(format!(
            "{hint}{}pass --user-map keep-id or --user-map UID:GID to generate without Podman",
            if hint.is_empty() { "" } else { "; or " }
        ))
    })?;
    let image = session.image.reference();
    let Some(facts) = connected.engine.inspect_image(image).await? else {
        return Ok(None);
    };
    let passwd = if crate::plan::needs_passwd(&facts.user) {
        connected.engine.image_file(image, "/etc/passwd").await?
    } else {
        None
    };
    let probes = if session.gpus == crate::session::GpuRequest::None {
        Vec::new()
    } else {
        crate::plan::image_probes(true, &facts.env)
    };
    let answers = crate::engine::image_cache::image_paths_or_unknown(
        &connected.engine,
        &facts,
        image,
        &probes,
    )
    .await;
    Ok(Some(ImageUser {
        user: facts.user,
        passwd,
        env: facts.env,
        paths: probes
            .iter()
            .map(|path| (*path).to_owned())
            .zip(answers)
            .collect(),
    }))
}

/// The target Podman: a given version, or the local podman binary's, since its quadlet
/// generator is the one that will read the units.
pub fn target(version: &str) -> Result<Capabilities> {
    if version != "auto" {
        return Ok(Capabilities::for_version(version.parse()?));
    }
    let unknown = || {
        Error::env(
            "cannot tell which podman will read the units: `podman --version` did not answer",
        )
        .hint("install podman 4.4 or newer, or pass --podman-version V")
    };
    let version = crate::engine::local_version::podman_on_path()
        .and_then(|(_, version)| version)
        .ok_or_else(unknown)?;
    Ok(Capabilities::for_version(version))
}
