//! JupyterLab as a systemd user service (`podlab notebook`), built on the quadlet units of
//! [`crate::ops::quadlet`].
//!
//! [`install`] writes the session's `.container` unit (see [`crate::emit::quadlet::notebook`])
//! into podlab's unit directory, with a fresh token kept in a Podman secret made through the
//! API: the token is never in the unit, a label, a command line or a log, and `url` reads it
//! back from the secret. On a Podman without quadlet (Debian 12's 4.3.1) the same unit is
//! written as a plain `.service` into the user's systemd directory (see
//! [`crate::emit::quadlet::service`]), and enabled; every command finds a notebook in either
//! place. Such a Podman never shows a secret's data, so `url` reads the token from the
//! running container (with `/bin/sh`, whose command line names only the variable). A name is taken when its unit, its secret or a container of that name
//! exists; a refused install changes nothing, and a unit that cannot be written takes its new
//! secret with it. `start`, `stop` and `logs` go through `systemctl --user` where a systemd
//! user instance runs; elsewhere `stop` and `logs` act on the container through the API, and
//! `start` says what to run.

use std::fmt::Write as _;
use std::io::Read as _;
use std::path::{Path, PathBuf};

use tokio::io::AsyncWrite;

use crate::capabilities::Feature;
use crate::emit::podman::labels;
use crate::emit::quadlet::container::check_unit_name;
use crate::emit::quadlet::notebook::{
    CONTAINER_PORT, DEFAULT_COMMAND, KIND, Notebook, TOKEN_ENV, notebook_unit, secret_name,
};
use crate::emit::quadlet::service::plain_service;
use crate::emit::quadlet::unit::{Origin, origin};
use crate::engine::frames::demultiplex;
use crate::engine::{self, ConnectOptions, ContainerFacts, Engine, SecretData};
use crate::ops::containers;
use crate::ops::quadlet::{image_user, target};
use crate::ops::units;
use crate::session::{Port, ProjectFile, Protocol, Session, UserMapping};
use crate::{Error, Result};

/// The notebook's name when `--name` is not given.
const DEFAULT_NAME: &str = "notebook";
/// The `podlab.toml` preset a notebook uses unless `--preset` names another.
pub const PRESET: &str = "notebook";
/// Bytes of randomness in a token (written as twice as many hex digits).
const TOKEN_BYTES: usize = 32;

/// How to install a notebook, beyond its session (the `notebook install` flags).
#[derive(Debug, Clone)]
pub struct InstallOptions {
    /// Host port on 127.0.0.1 that JupyterLab is published on.
    pub port: u16,
    /// Shell command in the container that exits 0 while the server answers.
    pub health_cmd: String,
    /// Let `podman auto-update` pull a newer image and restart the notebook.
    pub auto_update: bool,
}

/// A notebook just installed: its name and unit file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Install {
    pub name: String,
    pub path: PathBuf,
    /// A plain `.service` (Podman without quadlet), which must also be enabled.
    plain: bool,
}

/// Where notebooks' units are: podlab's quadlet directory (`NAME.container`) and, for a
/// Podman without quadlet, the user's systemd directory (`NAME.service`, a plain service).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Dirs {
    quadlet: PathBuf,
    plain: PathBuf,
}

impl Dirs {
    fn here() -> Result<Self> {
        Ok(Self {
            quadlet: units::unit_dir()?,
            plain: units::service_dir()?,
        })
    }

    /// Notebook `name`'s unit file in each form, quadlet's first, with whether it is plain.
    fn files(&self, name: &str) -> [(PathBuf, bool); 2] {
        [
            (self.quadlet.join(format!("{name}.container")), false),
            (self.plain.join(format!("{name}.service")), true),
        ]
    }

    fn describe(&self) -> String {
        format!("{} or {}", self.quadlet.display(), self.plain.display())
    }
}

/// Installs `session` as a notebook: its unit in podlab's unit directory and its token in a
/// Podman secret. Nothing is started (see [`start_installed`]); a refused install changes
/// nothing.
pub async fn install(
    session: Session,
    options: &InstallOptions,
    connect: &ConnectOptions,
) -> Result<Install> {
    let (session, port_notices) = notebook_session(session, options.port)?;
    let name = session
        .name
        .clone()
        .unwrap_or_else(|| DEFAULT_NAME.to_owned());
    check_unit_name(&name)?;
    let dirs = Dirs::here()?;
    check_unit_free(&dirs, &name)?;
    let caps = target("auto")?;
    let plain = !caps.has(Feature::Quadlet);
    if !plain {
        units::check_not_shadowed(
            &units::quadlet_dirs()?,
            &dirs.quadlet,
            &[(format!("{name}.container"), String::new())],
        )?;
    }
    let connected = engine::connect(connect).await?;
    check_name_free(&connected.engine, &name).await?;
    check_notebook_port(&dirs, options.port)?;
    units::check_ports(&session.ports)?;
    for notice in &port_notices {
        tracing::warn!("{notice}");
    }

    let image_user = if session.user_map == UserMapping::Auto {
        image_user(&session, connect).await?
    } else {
        None
    };
    let planned = units::plan(&session, &caps, &name, image_user.as_ref())?;
    for notice in &planned.notices {
        tracing::warn!("{notice}");
    }
    let notebook = Notebook {
        secret: secret_name(&name),
        health_cmd: options.health_cmd.clone(),
        auto_update: options.auto_update,
    };
    let emitted = notebook_unit(
        &session,
        &planned.container,
        planned.cdi_spec_dir.as_deref(),
        &caps,
        &notebook,
    )?;
    for notice in &emitted.notices {
        tracing::warn!("{notice}");
    }
    let (dir, file) = if plain {
        tracing::warn!(
            "podman {} has no quadlet (it needs {}): writing a plain systemd service instead",
            caps.version(),
            Feature::Quadlet.since()
        );
        let text = plain_service(&emitted.unit)?;
        (dirs.plain, (format!("{name}.service"), text))
    } else {
        let text = emitted.unit.render(&caps)?;
        (dirs.quadlet, (emitted.unit.file_name(), text))
    };
    let path = write(&connected.engine, &dir, &notebook.secret, &token()?, file).await?;
    Ok(Install { name, path, plain })
}

/// Starts a notebook just installed where a systemd user instance runs (a plain service is
/// also enabled: systemd applies its `WantedBy=` only then); elsewhere says what to run.
pub fn start_installed(installed: &Install) -> Result<()> {
    let name = &installed.name;
    let service = format!("{name}.service");
    if units::systemd_user_instance() {
        units::reload_and("start", &service, &format!("podlab notebook rm {name}"))?;
        if installed.plain {
            units::systemctl(&["enable", &service])?;
        }
        tracing::warn!("started {service}; its URL: podlab notebook url {name}");
    } else {
        tracing::warn!(
            "no systemd user instance runs here, so nothing was started; where one runs, run: systemctl --user daemon-reload && systemctl --user start {service}"
        );
    }
    if !units::lingering() {
        tracing::warn!(
            "lingering is off: the notebook stops when you log out (enable it with: loginctl enable-linger)"
        );
    }
    Ok(())
}

/// The session as a notebook: JupyterLab's command unless one is given, and the notebook's
/// port (`127.0.0.1:PORT:8888`) instead of any other publishing of 8888 (the `notebook`
/// preset of `podlab init` has one); a notice names each publishing it replaced.
fn notebook_session(mut session: Session, port: u16) -> Result<(Session, Vec<String>)> {
    if session.command.is_empty() {
        session.command = DEFAULT_COMMAND.iter().map(|w| (*w).to_owned()).collect();
    }
    let published: Port = format!("127.0.0.1:{port}:{CONTAINER_PORT}")
        .parse()
        .map_err(|err: crate::session::values::Invalid| {
            Error::user(format!("--port {port}: {}", err.message))
        })?;
    let replaced: Vec<String> = session
        .ports
        .iter()
        .filter(|other| other.container_port == CONTAINER_PORT || other.same_binding(&published))
        .filter(|other| **other != published)
        .map(ToString::to_string)
        .collect();
    session
        .ports
        .retain(|other| other.container_port != CONTAINER_PORT && !other.same_binding(&published));
    session.ports.push(published);
    let notices = if replaced.is_empty() {
        Vec::new()
    } else {
        vec![format!(
            "the notebook publishes JupyterLab on 127.0.0.1:{port} only (the token guards it, not the network): {} from -p or podlab.toml is not used; choose the host port with --port",
            replaced.join(", ")
        )]
    };
    Ok((session, notices))
}

/// The notebook's host port must be free now and not the port of another notebook installed
/// (which may be stopped, or wait for a systemd that is not running here).
fn check_notebook_port(dirs: &Dirs, port: u16) -> Result<()> {
    for other in notebooks(dirs) {
        let Ok(installed) = installed(dirs, &other) else {
            continue;
        };
        if installed.port().is_ok_and(|taken| taken.host_port == port) {
            return Err(Error::user(format!(
                "port {port} is taken by notebook {other}"
            ))
            .hint(format!(
                "choose another host port with --port, or remove that notebook: podlab notebook rm {other}"
            )));
        }
    }
    if std::net::TcpListener::bind(("127.0.0.1", port)).is_err() {
        return Err(
            Error::user(format!("port 127.0.0.1:{port} is in use on this host"))
                .hint("choose another host port with --port, or stop what listens there"),
        );
    }
    Ok(())
}

/// Whether the project's `podlab.toml` has a `notebook` preset.
pub fn has_preset(cwd: &Path) -> Result<bool> {
    let Some(path) = ProjectFile::find(cwd) else {
        return Ok(false);
    };
    Ok(ProjectFile::load(&path, cwd)?.presets.contains_key(PRESET))
}

fn taken(name: &str, what: &str) -> Error {
    Error::user(format!("the notebook name {name} is taken: {what}")).hint(format!(
        "pick another --name, or remove the old notebook first: podlab notebook rm {name}"
    ))
}

/// Fails when a notebook unit file of that name exists, in either form.
fn check_unit_free(dirs: &Dirs, name: &str) -> Result<()> {
    for (path, _) in dirs.files(name) {
        if path.exists() {
            return Err(taken(name, &format!("{} exists", path.display())));
        }
    }
    Ok(())
}

/// Fails when the notebook's secret, or a container of that name, exists.
async fn check_name_free<E: Engine>(engine: &E, name: &str) -> Result<()> {
    let secret = secret_name(name);
    if engine.secret_labels(&secret).await?.is_some() {
        return Err(taken(name, &format!("the podman secret {secret} exists")));
    }
    units::check_container_free(engine, name, &[]).await
}

/// Creates the token secret, then writes the unit; a unit that cannot be written takes the
/// secret with it. The unit's path.
async fn write<E: Engine>(
    engine: &E,
    dir: &Path,
    secret: &str,
    token: &str,
    (file, text): (String, String),
) -> Result<PathBuf> {
    let labels = [(labels::KIND.to_owned(), KIND.to_owned())].into();
    engine
        .create_secret(secret, token.as_bytes(), &labels)
        .await?;
    match units::install(dir, &[(file.clone(), text)], false).await {
        Ok(_) => Ok(dir.join(file)),
        Err(err) => {
            if let Err(cleanup) = engine.remove_secret(secret).await {
                tracing::warn!(
                    "could not remove the secret {secret} again ({}): remove it with podman secret rm {secret}",
                    cleanup.message()
                );
            }
            Err(err)
        }
    }
}

/// A fresh token: [`TOKEN_BYTES`] from the kernel's random source, in hex.
fn token() -> Result<String> {
    let mut bytes = [0u8; TOKEN_BYTES];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut random| random.read_exact(&mut bytes))
        .map_err(|err| Error::env(format!("cannot read /dev/urandom for a token: {err}")))?;
    Ok(bytes.iter().fold(String::new(), |mut hex, byte| {
        let _ = write!(hex, "{byte:02x}");
        hex
    }))
}

/// An installed notebook: its name and unit file.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Installed {
    name: String,
    unit: PathBuf,
    text: String,
    /// A plain `.service`, not a quadlet unit.
    plain: bool,
}

/// Whether `text` is a notebook unit podlab wrote: its kind label is a `Label=` line of a
/// quadlet unit, or a `--label=` word of a plain service's `podman run`.
fn is_notebook(text: &str) -> bool {
    let label = format!("{}={KIND}", labels::KIND);
    origin(text) != Origin::Foreign
        && text.split_whitespace().any(|word| {
            word.strip_prefix("Label=")
                .or_else(|| word.strip_prefix("--label="))
                == Some(label.as_str())
        })
}

/// The names of the notebooks installed, in either form, sorted.
fn notebooks(dirs: &Dirs) -> Vec<String> {
    let mut names = Vec::new();
    for (dir, extension) in [(&dirs.quadlet, "container"), (&dirs.plain, "service")] {
        let Ok(entries) = std::fs::read_dir(dir) else {
            continue;
        };
        names.extend(
            entries
                .filter_map(std::result::Result::ok)
                .map(|entry| entry.path())
                .filter(|path| path.extension().is_some_and(|ext| ext == extension))
                .filter(|path| std::fs::read_to_string(path).is_ok_and(|text| is_notebook(&text)))
                .filter_map(|path| path.file_stem().map(|s| s.to_string_lossy().into_owned())),
        );
    }
    names.sort();
    names.dedup();
    names
}

/// The notebook `name` names, or the only one installed.
fn notebook_name(dirs: &Dirs, name: Option<&str>) -> Result<String> {
    if let Some(name) = name {
        crate::session::values::check_name(name)?;
        return Ok(name.to_owned());
    }
    let mut all = notebooks(dirs);
    match all.len() {
        1 => Ok(all.remove(0)),
        0 => Err(
            Error::user(format!("no notebook is installed in {}", dirs.describe()))
                .hint("install one: podlab notebook install --image IMAGE"),
        ),
        _ => Err(Error::user("several notebooks are installed: name one")
            .hint(format!("podlab's notebooks: {}", all.join(", ")))),
    }
}

/// The installed notebook `name`, in either form.
fn installed(dirs: &Dirs, name: &str) -> Result<Installed> {
    let missing = || {
        let known = notebooks(dirs);
        Error::user(format!("no notebook {name} in {}", dirs.describe())).hint(
            if known.is_empty() {
                "install one: podlab notebook install --name NAME --image IMAGE".to_owned()
            } else {
                format!("podlab's notebooks: {}", known.join(", "))
            },
        )
    };
    let Some((unit, plain)) = dirs.files(name).into_iter().find(|(path, _)| path.exists()) else {
        return Err(missing());
    };
    let text = match std::fs::read_to_string(&unit) {
        Ok(text) => text,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Err(missing()),
        Err(err) => {
            return Err(Error::env(format!("cannot read {}: {err}", unit.display())));
        }
    };
    if !is_notebook(&text) {
        return Err(Error::user(format!(
            "{} is not a notebook podlab installed",
            unit.display()
        ))
        .hint("podlab quadlet rm NAME removes other units podlab wrote"));
    }
    Ok(Installed {
        name: name.to_owned(),
        unit,
        text,
        plain,
    })
}

impl Installed {
    /// The directory of its unit file.
    fn dir(&self) -> &Path {
        self.unit.parent().unwrap_or(Path::new("."))
    }

    /// The host side of the notebook's port, from the unit's `PublishPort=` lines (a plain
    /// service's `--publish=` words).
    fn port(&self) -> Result<Port> {
        self.text
            .split_whitespace()
            .filter_map(|word| {
                word.strip_prefix("PublishPort=")
                    .or_else(|| word.strip_prefix("--publish="))
            })
            .filter_map(|value| value.parse::<Port>().ok())
            .find(|port| port.container_port == CONTAINER_PORT && port.protocol == Protocol::Tcp)
            .ok_or_else(|| {
                Error::user(format!(
                    "{} publishes no port for {CONTAINER_PORT}",
                    self.unit.display()
                ))
                .hint(format!(
                    "install it again: podlab notebook rm {0} && podlab notebook install --name {0} ...",
                    self.name
                ))
            })
    }

    /// `http://127.0.0.1:PORT/lab`.
    fn base_url(&self) -> Result<String> {
        let port = self.port()?;
        let host = match port.host_ip {
            std::net::IpAddr::V4(ip) => ip.to_string(),
            std::net::IpAddr::V6(ip) => format!("[{ip}]"),
        };
        Ok(format!("http://{host}:{}/lab", port.host_port))
    }
}

/// The URL with the token, read from the notebook's secret (or, where Podman hides a
/// secret's data, from its running container).
async fn token_url<E: Engine>(engine: &E, notebook: &Installed) -> Result<String> {
    let secret = secret_name(&notebook.name);
    let data = engine.secret_data(&secret).await?.ok_or_else(|| {
        Error::user(format!(
            "notebook {} has no token: the podman secret {secret} is gone",
            notebook.name
        ))
        .hint(format!(
            "install it again: podlab notebook rm {0} && podlab notebook install --name {0} ...",
            notebook.name
        ))
    })?;
    let token = match data {
        SecretData::Shown(bytes) => String::from_utf8_lossy(&bytes).trim().to_owned(),
        SecretData::Hidden => token_in_container(engine, &notebook.name).await?,
    };
    Ok(format!("{}?token={token}", notebook.base_url()?))
}

/// The token as notebook `name`'s running container holds it, for a Podman that never shows
/// a secret's data (before 4.5): the container the secret was handed to is its only reader.
/// The command names the variable, never the token, on any command line; it is `/bin/sh`
/// by its path, since 4.3.1 gives an exec no `PATH` in an image that sets none.
async fn token_in_container<E: Engine>(engine: &E, name: &str) -> Result<String> {
    let Some(facts) = container(engine, name).await?.filter(|facts| facts.running) else {
        return Err(Error::user(format!(
            "notebook {name} is not running, and this podman never shows a secret's data (that needs 4.5): its token can be read only from its running container"
        ))
        .hint(format!("start it first: podlab notebook start {name}")));
    };
    let command = [
        "/bin/sh".to_owned(),
        "-c".to_owned(),
        format!("printf %s \"${TOKEN_ENV}\""),
    ];
    let exec = engine.exec_create(&facts.id, &command, false).await?;
    let mut stream = engine.exec_start(&exec, false).await?;
    let (mut out, mut err) = (Vec::new(), Vec::new());
    demultiplex(&mut stream, &mut out, &mut err).await?;
    let code = engine.exec_exit_code(&exec).await?;
    let token = String::from_utf8_lossy(&out).trim().to_owned();
    if code != 0 || token.is_empty() {
        let said = String::from_utf8_lossy(&err);
        let said = said.lines().next().map(|line| format!(": {line}"));
        return Err(Error::env(format!(
            "cannot read notebook {name}'s token from its container: /bin/sh printing ${TOKEN_ENV} exited {code}{}",
            said.unwrap_or_default()
        ))
        .hint("on podman before 4.5 the image needs /bin/sh for podlab to read the token; or upgrade podman"));
    }
    Ok(token)
}

/// The URL of notebook `name` (or the only one installed), with its token.
pub async fn url(name: Option<&str>, connect: &ConnectOptions) -> Result<String> {
    let dirs = Dirs::here()?;
    let notebook = installed(&dirs, &notebook_name(&dirs, name)?)?;
    let connected = engine::connect(connect).await?;
    token_url(&connected.engine, &notebook).await
}

/// The notebook's container, when one exists and is a podlab notebook.
async fn container<E: Engine>(engine: &E, name: &str) -> Result<Option<ContainerFacts>> {
    Ok(engine
        .inspect_container(name)
        .await?
        .filter(|facts| facts.labels.get(labels::KIND).map(String::as_str) == Some(KIND)))
}

/// `systemctl --user is-active SERVICE`'s answer.
fn service_state(service: &str) -> String {
    std::process::Command::new("systemctl")
        .args(["--user", "is-active", service])
        .output()
        .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_owned())
        .ok()
        .filter(|state| !state.is_empty())
        .unwrap_or_else(|| "unknown".to_owned())
}

/// The lines of `podlab notebook status`.
/// What `podlab notebook status` reports; as JSON, `{name, unit, edited, service,
/// container, health, url}` (`service` is null where no systemd user instance runs,
/// `container` and `health` null when there is no container or no health check).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Status {
    pub name: String,
    pub unit: PathBuf,
    /// The unit was edited since podlab wrote it.
    pub edited: bool,
    /// systemd's `ActiveState` of the service.
    pub service: Option<String>,
    /// Podman's state of the container.
    pub container: Option<String>,
    pub health: Option<String>,
    /// The URL without its token (`podlab notebook url` prints it with).
    pub url: String,
}

impl Status {
    /// The lines of `podlab notebook status`.
    pub fn text(&self) -> String {
        let none = || "none".to_owned();
        format!(
            "notebook:  {}\nunit:      {}{}\nservice:   {}\ncontainer: {}\nhealth:    {}\nurl:       {}\n",
            self.name,
            self.unit.display(),
            if self.edited { " (edited)" } else { "" },
            self.service
                .clone()
                .unwrap_or_else(|| "unknown (no systemd user instance runs here)".to_owned()),
            self.container.clone().unwrap_or_else(none),
            self.health.clone().unwrap_or_else(none),
            self.url
        )
    }
}

async fn status_of<E: Engine>(
    engine: &E,
    notebook: &Installed,
    service: Option<String>,
) -> Result<Status> {
    let facts = container(engine, &notebook.name).await?;
    Ok(Status {
        name: notebook.name.clone(),
        unit: notebook.unit.clone(),
        edited: origin(&notebook.text) == Origin::Edited,
        service,
        container: facts.as_ref().map(|facts| facts.state.clone()),
        health: facts.and_then(|facts| facts.health),
        url: notebook.base_url()?,
    })
}

/// The status of notebook `name` (or the only one installed).
pub async fn status(name: Option<&str>, connect: &ConnectOptions) -> Result<Status> {
    let dirs = Dirs::here()?;
    let notebook = installed(&dirs, &notebook_name(&dirs, name)?)?;
    let service = units::systemd_user_instance()
        .then(|| service_state(&format!("{}.service", notebook.name)));
    let connected = engine::connect(connect).await?;
    status_of(&connected.engine, &notebook, service).await
}

/// Copies the output of notebook `name` (or the only one installed): its stdout to
/// `stdout`, its stderr to `stderr`; with `follow`, until it stops.
pub async fn logs<O, W>(
    name: Option<&str>,
    follow: bool,
    connect: &ConnectOptions,
    stdout: &mut O,
    stderr: &mut W,
) -> Result<()>
where
    O: AsyncWrite + Unpin,
    W: AsyncWrite + Unpin,
{
    let dirs = Dirs::here()?;
    let notebook = installed(&dirs, &notebook_name(&dirs, name)?)?;
    let connected = engine::connect(connect).await?;
    let Some(facts) = container(&connected.engine, &notebook.name).await? else {
        let service = format!("{}.service", notebook.name);
        return Err(
            Error::user(format!("notebook {} has no container now", notebook.name)).hint(
                if units::systemd_user_instance() {
                    format!("the service's own log: journalctl --user -u {service}")
                } else {
                    format!(
                        "start it where a systemd user instance runs: podlab notebook start {}",
                        notebook.name
                    )
                },
            ),
        );
    };
    containers::copy_logs(&connected.engine, &facts, follow, stdout, stderr).await
}

/// Starts the service of notebook `name` (or the only one installed); its name.
pub fn start(name: Option<&str>) -> Result<String> {
    let dirs = Dirs::here()?;
    let notebook = installed(&dirs, &notebook_name(&dirs, name)?)?;
    let service = format!("{}.service", notebook.name);
    if !units::systemd_user_instance() {
        return Err(Error::env(format!(
            "no systemd user instance runs here, so podlab cannot start {service}"
        ))
        .hint(format!(
            "where one runs: systemctl --user daemon-reload && systemctl --user start {service}"
        )));
    }
    units::reload_and(
        "start",
        &service,
        &format!("podlab notebook rm {}", notebook.name),
    )?;
    Ok(notebook.name)
}

/// Stops notebook `name` (or the only one installed): its service, or where no systemd user
/// instance runs, its container. Its name.
pub async fn stop(name: Option<&str>, connect: &ConnectOptions) -> Result<String> {
    let dirs = Dirs::here()?;
    let notebook = installed(&dirs, &notebook_name(&dirs, name)?)?;
    if units::systemd_user_instance() {
        units::systemctl(&["stop", &format!("{}.service", notebook.name)])?;
    } else {
        let connected = engine::connect(connect).await?;
        if let Some(facts) = container(&connected.engine, &notebook.name).await? {
            connected.engine.stop_container(&facts.id, 10).await?;
        } else {
            tracing::warn!("notebook {} is not running", notebook.name);
        }
    }
    Ok(notebook.name)
}

/// Removes what is left of notebook `name`: its unit (only podlab's, and unedited unless
/// `force`; checked before anything is removed), its container and its secret (only one
/// carrying podlab's label). What was
/// removed, one per line; an error when nothing was there.
async fn remove<E: Engine>(engine: &E, dirs: &Dirs, name: &str, force: bool) -> Result<String> {
    let mut out = String::new();
    if dirs.files(name).iter().any(|(path, _)| path.exists()) {
        let notebook = installed(dirs, name)?;
        for path in units::remove(notebook.dir(), name, force).await? {
            let _ = writeln!(out, "{}", path.display());
        }
    }
    if let Some(facts) = container(engine, name).await? {
        engine.stop_and_remove(&facts.id, 10).await?;
        let _ = writeln!(out, "container {name}");
    }
    let secret = secret_name(name);
    // Only a secret podlab labelled when it made it: a user's own of that name stays.
    if let Some(found) = engine.secret_labels(&secret).await? {
        if found.get(labels::KIND).map(String::as_str) != Some(KIND) {
            tracing::warn!(
                "the podman secret {secret} was not made by podlab (it lacks the label {}={KIND}): podlab leaves it alone; if it is yours and no longer needed, remove it with: podman secret rm {secret}",
                labels::KIND
            );
        } else if engine.remove_secret(&secret).await? {
            let _ = writeln!(out, "secret {secret}");
        }
    }
    if out.is_empty() {
        return Err(installed(dirs, name).err().unwrap_or_else(|| {
            Error::user(format!("no notebook {name}")).hint("podlab notebook install")
        }));
    }
    Ok(out)
}

/// A removal of a notebook: what was removed, one per line; [`Removal::finish`] tells
/// systemd.
#[derive(Debug)]
pub struct Removal {
    pub removed: String,
    running: bool,
}

/// Removes notebook `name` (or the only one installed), its service stopped first where
/// systemd runs.
pub async fn rm(name: Option<&str>, force: bool, connect: &ConnectOptions) -> Result<Removal> {
    let dirs = Dirs::here()?;
    let name = notebook_name(&dirs, name)?;
    let service = format!("{name}.service");
    let running = units::systemd_user_instance();
    // Nothing is stopped that podlab will not remove.
    let mut plain = false;
    if dirs.files(&name).iter().any(|(path, _)| path.exists()) {
        let notebook = installed(&dirs, &name)?;
        units::removable(notebook.dir(), &name, force)?;
        plain = notebook.plain;
    }
    if running {
        // Stop it while its unit still exists; a unit that is not loaded is no error here.
        let _ = units::systemctl(&["stop", &service]);
        if plain {
            // The links `enable` made at install.
            let _ = units::systemctl(&["disable", &service]);
        }
    }
    let connected = engine::connect(connect).await?;
    let removed = remove(&connected.engine, &dirs, &name, force).await?;
    Ok(Removal { removed, running })
}

impl Removal {
    /// Reloads systemd's view of the units, or says what to run where it runs.
    pub fn finish(&self) -> Result<()> {
        if self.running {
            units::systemctl(&["daemon-reload"])?;
        } else {
            tracing::warn!(
                "no systemd user instance runs here; where one runs, run: systemctl --user daemon-reload"
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::capabilities::{Capabilities, PodmanVersion};
    use crate::emit::quadlet::notebook::DEFAULT_HEALTH_CMD;
    use crate::engine::fake::FakeEngine;
    use crate::plan::{ContainerPlan, UserNs};
    use crate::session::ImageSource;

    fn session() -> Session {
        Session {
            preset: Some("notebook".into()),
            name: Some("nb".into()),
            image: ImageSource::Name("localhost/lab:latest".into()),
            mounts: vec![],
            ports: vec!["8888".parse().unwrap(), "6006".parse().unwrap()],
            user_map: UserMapping::KeepId,
            ..Session::example()
        }
    }

    fn dirs(root: &Path) -> Dirs {
        Dirs {
            quadlet: root.join("podlab"),
            plain: root.join("systemd/user"),
        }
    }

    /// The text of notebook `nb`'s unit, publishing `port`.
    fn unit_text(port: u16) -> (String, String) {
        unit_text_for(port, "5.4.2")
    }

    /// The same for Podman `version`: a plain service without quadlet.
    fn unit_text_for(port: u16, version: &str) -> (String, String) {
        let (session, _) = notebook_session(session(), port).unwrap();
        let plan = ContainerPlan {
            userns: UserNs::KeepId,
            ..ContainerPlan::example("nb")
        };
        let caps = Capabilities::for_version(version.parse::<PodmanVersion>().unwrap());
        let notebook = Notebook {
            secret: secret_name("nb"),
            health_cmd: DEFAULT_HEALTH_CMD.into(),
            auto_update: false,
        };
        let emitted = notebook_unit(&session, &plan, None, &caps, &notebook).unwrap();
        if caps.has(Feature::Quadlet) {
            (
                emitted.unit.file_name(),
                emitted.unit.render(&caps).unwrap(),
            )
        } else {
            (
                "nb.service".to_owned(),
                plain_service(&emitted.unit).unwrap(),
            )
        }
    }

    fn listing(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .map(|entries| {
                entries
                    .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }

    #[test]
    fn the_notebook_port_replaces_the_presets_and_jupyter_is_the_default_command() {
        let (session, notices) = notebook_session(session(), 9000).unwrap();
        let ports: Vec<String> = session.ports.iter().map(ToString::to_string).collect();
        assert_eq!(
            ports,
            ["127.0.0.1:6006:6006/tcp", "127.0.0.1:9000:8888/tcp"]
        );
        assert_eq!(session.command, DEFAULT_COMMAND);
        // Issue 15: the replaced publishing was dropped without a word.
        assert_eq!(notices.len(), 1, "{notices:?}");
        assert!(
            notices[0].contains("127.0.0.1:8888:8888/tcp from -p or podlab.toml is not used")
                && notices[0].contains("--port"),
            "{notices:?}"
        );
        let mut given = self::session();
        given.command = vec!["httpd".into()];
        let (given, notices) = notebook_session(given, 8888).unwrap();
        assert_eq!(given.command, ["httpd"]);
        assert!(notices.is_empty(), "the same publishing: {notices:?}");
    }

    #[test]
    fn tokens_are_fresh_hex() {
        let (a, b) = (token().unwrap(), token().unwrap());
        assert_eq!(a.len(), 2 * TOKEN_BYTES);
        assert!(a.bytes().all(|b| b.is_ascii_hexdigit()), "{a}");
        assert_ne!(a, b);
    }

    #[tokio::test]
    async fn install_url_status_and_rm_through_the_engine() {
        let dir = tempfile::tempdir().unwrap();
        let dirs = dirs(dir.path());
        let units = dirs.quadlet.clone();
        let engine = FakeEngine::default();
        check_unit_free(&dirs, "nb").unwrap();
        check_name_free(&engine, "nb").await.unwrap();
        let path = write(
            &engine,
            &units,
            "podlab-notebook-nb",
            "t0ken-xyz",
            unit_text(9000),
        )
        .await
        .unwrap();
        assert_eq!(path, units.join("nb.container"));
        assert!(
            !std::fs::read_to_string(&path)
                .unwrap()
                .contains("t0ken-xyz")
        );

        assert_eq!(notebooks(&dirs), ["nb"]);
        assert_eq!(notebook_name(&dirs, None).unwrap(), "nb");
        let notebook = installed(&dirs, "nb").unwrap();
        assert_eq!(
            token_url(&engine, &notebook).await.unwrap(),
            "http://127.0.0.1:9000/lab?token=t0ken-xyz"
        );

        let mut engine = engine;
        let mut labels = BTreeMap::new();
        labels.insert(labels::KIND.to_owned(), KIND.to_owned());
        engine.containers.insert(
            "nb".into(),
            ContainerFacts {
                id: "nb-id".into(),
                name: "nb".into(),
                state: "running".into(),
                running: true,
                labels,
                health: Some("healthy".into()),
                ..ContainerFacts::default()
            },
        );
        let status = status_of(&engine, &notebook, None).await.unwrap();
        assert_eq!(status.container.as_deref(), Some("running"));
        assert!(!status.edited);
        let text = status.text();
        assert!(
            text.contains("container: running\nhealth:    healthy\n"),
            "{text}"
        );
        assert!(
            text.contains("url:       http://127.0.0.1:9000/lab\n"),
            "{text}"
        );

        // Taken: the unit, the secret, and a container of that name.
        let err = check_unit_free(&dirs, "nb").unwrap_err();
        assert!(err.message().contains("is taken"), "{err}");
        assert!(err.hint_text().unwrap().contains("podlab notebook rm nb"));
        let err = check_name_free(&engine, "nb").await.unwrap_err();
        assert!(
            err.message().contains("secret podlab-notebook-nb exists"),
            "{err}"
        );

        let removed = remove(&engine, &dirs, "nb", false).await.unwrap();
        assert_eq!(
            removed,
            format!(
                "{}\ncontainer nb\nsecret podlab-notebook-nb\n",
                units.join("nb.container").display()
            )
        );
        assert!(
            engine
                .calls()
                .contains(&"remove nb-id timeout=10".to_owned())
        );
        assert!(listing(&units).iter().all(|file| file.starts_with('.')));
        assert!(
            engine
                .secret_labels("podlab-notebook-nb")
                .await
                .unwrap()
                .is_none()
        );
        engine.containers.clear();
        let err = remove(&engine, &dirs, "nb", false).await.unwrap_err();
        assert!(err.message().starts_with("no notebook nb"), "{err}");
    }

    #[tokio::test]
    async fn a_unit_that_cannot_be_written_takes_its_secret_with_it() {
        let dir = tempfile::tempdir().unwrap();
        let dirs = dirs(dir.path());
        let units = dirs.quadlet.clone();
        std::fs::create_dir_all(&units).unwrap();
        std::fs::write(units.join("nb.container"), "[Container]\nImage=mine\n").unwrap();
        let engine = FakeEngine::default();
        let err = write(
            &engine,
            &units,
            "podlab-notebook-nb",
            "t0ken-xyz",
            unit_text(9000),
        )
        .await
        .unwrap_err();
        assert!(err.message().contains("was not written by podlab"), "{err}");
        assert!(
            engine
                .secret_labels("podlab-notebook-nb")
                .await
                .unwrap()
                .is_none()
        );
        assert_eq!(
            std::fs::read_to_string(units.join("nb.container")).unwrap(),
            "[Container]\nImage=mine\n"
        );
        // Someone else's unit is no notebook of podlab's, and rm leaves it alone.
        assert!(notebooks(&dirs).is_empty());
        let err = remove(&engine, &dirs, "nb", true).await.unwrap_err();
        assert!(
            err.message().contains("is not a notebook podlab installed"),
            "{err}"
        );
        assert!(units.join("nb.container").exists());
    }

    #[tokio::test]
    async fn l5_notebook_rm_leaves_a_secret_podlab_did_not_create() {
        let dir = tempfile::tempdir().unwrap();
        let dirs = dirs(dir.path());
        let units = dirs.quadlet.clone();
        let engine = FakeEngine::default();
        // The user's own secret of that name: no podlab label.
        engine
            .create_secret("podlab-notebook-nb", b"theirs", &BTreeMap::new())
            .await
            .unwrap();
        let err = remove(&engine, &dirs, "nb", false).await.unwrap_err();
        assert!(err.message().starts_with("no notebook nb"), "{err}");
        assert_eq!(
            engine.secret_data("podlab-notebook-nb").await.unwrap(),
            Some(SecretData::Shown(b"theirs".to_vec()))
        );
        assert!(
            !engine
                .calls()
                .iter()
                .any(|call| call.starts_with("secret-rm"))
        );

        // What podlab creates carries the label, and rm removes it.
        write(
            &engine,
            &units,
            "podlab-notebook-ok",
            "t0ken",
            unit_text(9000),
        )
        .await
        .unwrap();
        assert_eq!(
            engine
                .secret_labels("podlab-notebook-ok")
                .await
                .unwrap()
                .unwrap()
                .get(labels::KIND)
                .map(String::as_str),
            Some(KIND)
        );
    }

    /// On Podman 4.3.1 (no quadlet, no `showsecret`) the notebook is a plain service in the
    /// user's systemd directory: found there by name and as the only one, its URL's token read
    /// from the running container with `/bin/sh` (refused with a hint while it is stopped),
    /// and removed whole with its container and secret.
    #[tokio::test]
    async fn a_plain_service_notebook_is_found_read_and_removed_on_podman_4_3() {
        let dir = tempfile::tempdir().unwrap();
        let dirs = dirs(dir.path());
        let mut engine = FakeEngine {
            hides_secret_data: true,
            output: b"t0ken-xyz\n".to_vec(),
            ..FakeEngine::default()
        };
        check_name_free(&engine, "nb").await.unwrap();
        let path = write(
            &engine,
            &dirs.plain,
            "podlab-notebook-nb",
            "t0ken-xyz",
            unit_text_for(9000, "4.3.1"),
        )
        .await
        .unwrap();
        assert_eq!(path, dirs.plain.join("nb.service"));
        assert!(
            !std::fs::read_to_string(&path)
                .unwrap()
                .contains("t0ken-xyz")
        );
        let err = check_name_free(&engine, "nb").await.unwrap_err();
        assert!(
            err.message().contains("secret podlab-notebook-nb exists"),
            "{err}"
        );
        assert!(check_unit_free(&dirs, "nb").is_err());
        assert_eq!(notebooks(&dirs), ["nb"]);
        let notebook = installed(&dirs, &notebook_name(&dirs, None).unwrap()).unwrap();
        assert!(notebook.plain);
        assert_eq!(notebook.base_url().unwrap(), "http://127.0.0.1:9000/lab");

        let err = token_url(&engine, &notebook).await.unwrap_err();
        assert!(err.message().contains("nb is not running"), "{err}");
        assert_eq!(
            err.hint_text(),
            Some("start it first: podlab notebook start nb")
        );
        let mut labels = BTreeMap::new();
        labels.insert(labels::KIND.to_owned(), KIND.to_owned());
        engine.containers.insert(
            "nb".into(),
            ContainerFacts {
                id: "nb-id".into(),
                name: "nb".into(),
                state: "running".into(),
                running: true,
                labels,
                ..ContainerFacts::default()
            },
        );
        assert_eq!(
            token_url(&engine, &notebook).await.unwrap(),
            "http://127.0.0.1:9000/lab?token=t0ken-xyz"
        );
        assert!(
            engine.calls().contains(
                &"exec nb-id tty=false /bin/sh -c printf %s \"$JUPYTER_TOKEN\"".to_owned()
            ),
            "{:?}",
            engine.calls()
        );
        let text = status_of(&engine, &notebook, None).await.unwrap().text();
        assert!(
            text.contains(&format!("unit:      {}\n", path.display())),
            "{text}"
        );

        let removed = remove(&engine, &dirs, "nb", false).await.unwrap();
        assert_eq!(
            removed,
            format!(
                "{}\ncontainer nb\nsecret podlab-notebook-nb\n",
                path.display()
            )
        );
        assert!(!path.exists());
        assert!(notebooks(&dirs).is_empty());
    }

    #[tokio::test]
    async fn name_taken_hint_for_a_non_podlab_container_is_not_notebook_rm() {
        let mut engine = FakeEngine::default();
        engine.containers.insert(
            "mine".into(),
            ContainerFacts {
                id: "mine-id".into(),
                name: "mine".into(),
                ..ContainerFacts::default()
            },
        );
        let err = check_name_free(&engine, "mine").await.unwrap_err();
        let hint = err.hint_text().unwrap();
        assert!(!hint.contains("podlab notebook rm"), "{hint}");
        assert!(hint.contains("podman rm -f mine"), "{hint}");
        assert!(err.message().contains("not podlab's"), "{err}");
    }
}
