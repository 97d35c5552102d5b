//! Quadlet units on this host: what a session becomes as a service (the image's user, how
//! GPUs reach it), and podlab's own unit directory.
//!
//! podlab installs into `~/.config/containers/systemd/podlab/`, a directory of its own:
//! quadlet drops every unit of a directory when one file there fails to parse, so a broken
//! file of the user's never takes podlab's units down, nor the other way round. In it podlab
//! replaces only files that carry its header and still match their checksum (an edited file
//! needs `--force`), never touches a file without the header, checks every file of a set
//! before writing any, and writes atomically.

use std::collections::BTreeMap;
use std::fs;
use std::net::{TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::capabilities::{Capabilities, Feature, UnitType};
use crate::cdi::store;
use crate::emit::quadlet::unit::{Origin, origin};
use crate::engine::ImagePath;
use crate::host::atomic;
use crate::plan::{self, ContainerPlan, GpuMode, GpuPlan, Mode, UserNs};
use crate::session::{Port, Protocol, Session, UserMapping};
use crate::{Error, Result};

/// podlab's subdirectory of the user's quadlet directory.
pub const SUBDIR: &str = "podlab";

/// `$XDG_CONFIG_HOME/containers/systemd/podlab` (`~/.config/...` by default), where quadlet
/// looks for a user's units (it searches subdirectories).
pub fn unit_dir() -> Result<PathBuf> {
    let config = crate::host::xdg::config_home()?;
    Ok(config.join("containers/systemd").join(SUBDIR))
}

/// `$XDG_CONFIG_HOME/systemd/user` (`~/.config/...` by default): where plain `.service`
/// units go for a Podman without quadlet.
pub fn service_dir() -> Result<PathBuf> {
    Ok(crate::host::xdg::config_home()?.join("systemd/user"))
}

/// The `io.podlab.kind` of the container a `.container` unit runs: an install may replace
/// such a container of its name (see [`check_container_free`]).
pub const SERVICE_KIND: &str = "service";

/// The host decisions for a unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Planned {
    pub container: ContainerPlan,
    /// A user spec directory the unit must name (`--cdi-spec-dir`, 5.5+).
    pub cdi_spec_dir: Option<PathBuf>,
    pub notices: Vec<String>,
}

/// The image's `User` and, when it names a user, its `/etc/passwd`; its `Env`, and the
/// answers to [`plan::image_probes`] that GPUs need (where its loader and its CUDA
/// forward-compatibility libcuda lead).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageUser {
    pub user: String,
    pub passwd: Option<String>,
    pub env: Vec<String>,
    /// By path; a path missing from the image, or not asked, is `None`.
    pub paths: BTreeMap<String, Option<ImagePath>>,
}

/// Plans `session` as the unit `name` for the target Podman. `image_user`: the image's user,
/// needed by `--user-map auto` (`None`: the image is not local, so plain keep-id).
pub fn plan(
    session: &Session,
    caps: &Capabilities,
    name: &str,
    image_user: Option<&ImageUser>,
) -> Result<Planned> {
    let mut notices = Vec::new();
    let userns = if let Some(image) = image_user {
        plan::plan_user(session.user_map, &image.user, image.passwd.as_deref())
    } else {
        if session.user_map == UserMapping::Auto {
            notices.push(format!(
                "image {} is not in the local store: mapping your user with plain keep-id (pass --user-map UID:GID to map onto the image's user)",
                session.image.reference()
            ));
        }
        plan::plan_user(session.user_map, "", None)
    };
    let (mut gpus, cdi_spec_dir) = plan_gpus(session, caps)?;
    if let Some(image) = image_user {
        plan::fit_to_image(&mut gpus, &session.env, &image.env, |path| {
            image.paths.get(path).cloned().flatten()
        })?;
    }
    notices.extend(gpus.notices.iter().map(|notice| notice.message.clone()));
    let home =
        (userns == UserNs::KeepId && !session.env.contains_key("HOME")).then(|| "/tmp".to_owned());
    Ok(Planned {
        container: ContainerPlan {
            name: name.to_owned(),
            mode: Mode {
                kind: SERVICE_KIND,
                tty: false,
                stdin: false,
                remove: true,
            },
            userns,
            home,
            label_disable: !gpus.names.is_empty() && plan::selinux_enforcing(),
            gpus,
            init: true,
        },
        cdi_spec_dir,
        notices,
    })
}

/// GPUs as `podlab run` plans them; where that would inline them, a fresh spec in the user's
/// own CDI directory serves instead on Podman 5.5 and newer, named with `--cdi-spec-dir`.
pub fn plan_gpus(session: &Session, caps: &Capabilities) -> Result<(GpuPlan, Option<PathBuf>)> {
    let mut gpus = plan::plan_gpus(
        &session.gpus,
        &session.driver_roots,
        &store::podman_spec_dirs(caps),
    )?;
    if !matches!(gpus.mode, GpuMode::Inline(_)) || !caps.has(Feature::CdiSpecDirFlag) {
        return Ok((gpus, None));
    }
    let Ok(dir) = store::user_dir() else {
        return Ok((gpus, None));
    };
    match plan::cdi_names_in(std::slice::from_ref(&dir), &gpus.names) {
        Some(names) => {
            gpus.mode = GpuMode::Cdi(names);
            gpus.notices.clear();
            Ok((gpus, Some(dir)))
        }
        None => Ok((gpus, None)),
    }
}

/// What happened to a unit file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    Created,
    Replaced,
    Unchanged,
    /// A file of the set installed before under this name that the new set has no use for
    /// (a re-install under another `--kind`).
    Removed,
}

impl Written {
    /// What became of the file, in a word or two.
    pub fn describe(self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::Replaced => "replaced",
            Self::Unchanged => "unchanged",
            Self::Removed => "removed (not in the new set)",
        }
    }
}

/// One change to the unit directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Write { path: PathBuf, text: String },
    Remove { path: PathBuf },
}

/// Whether quadlet reads `file` as a unit that names other files of its set (a `.container`
/// names its `.pod`, `.build` or `.image`; a `.kube` its YAML). Such a unit must never be
/// there without them.
fn refers_to_others(file: &Path) -> bool {
    matches!(
        file.extension().and_then(|ext| ext.to_str()),
        Some("container" | "kube")
    )
}

/// The files of the set installed as `name` in `dir`: every unit type, the YAML, and the plain
/// `.service` written where Podman has no quadlet.
fn installed_set(dir: &Path, name: &str) -> Vec<PathBuf> {
    UnitType::ALL
        .iter()
        .map(|unit| unit.extension())
        .chain(["yaml", "service"])
        .map(|extension| dir.join(format!("{name}.{extension}")))
        .filter(|path| path.is_file())
        .collect()
}

/// The changes that turn the set installed under the name of `files`' first file into
/// `files` (file name, text), with what becomes of each file; fails, before any change, on a
/// file podlab did not write or (without `force`) one edited since.
///
/// The order keeps every state in between one the generator can read (quadlet fails a unit
/// whose `Pod=`, `Image=` or `Yaml=` file is missing, and two units of one name fight over
/// one service): first the old units that refer to others and have no place in the new set
/// go, then the new referenced files are written, then the new referring units, and last the
/// old referenced files nothing refers to any more go. Each write is atomic.
pub fn plan_install(
    dir: &Path,
    files: &[(String, String)],
    force: bool,
) -> Result<Vec<(Step, Written)>> {
    let mut writes = Vec::new();
    for (file, text) in files {
        let path = dir.join(file);
        let outcome = match fs::read_to_string(&path) {
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Written::Created,
            Err(err) => {
                return Err(Error::env(format!("cannot read {}: {err}", path.display())));
            }
            Ok(existing) => {
                ours(&path, &existing, force)?;
                if existing == *text {
                    Written::Unchanged
                } else {
                    Written::Replaced
                }
            }
        };
        writes.push((path, text.clone(), outcome));
    }
    let name = files
        .first()
        .and_then(|(file, _)| Path::new(file).file_stem())
        .map(|stem| stem.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut stale = Vec::new();
    for path in installed_set(dir, &name) {
        if writes.iter().any(|(new, _, _)| *new == path) {
            continue;
        }
        let text = fs::read_to_string(&path)
            .map_err(|err| Error::env(format!("cannot read {}: {err}", path.display())))?;
        ours(&path, &text, force).map_err(|err| {
            let hint = err.hint_text().unwrap_or_default().to_owned();
            Error::user(format!(
                "{} (it belongs to the unit {name} that this install replaces)",
                err.message()
            ))
            .hint(hint)
        })?;
        stale.push(path);
    }
    let mut steps = Vec::new();
    let (stale_referring, stale_referenced): (Vec<PathBuf>, Vec<PathBuf>) =
        stale.into_iter().partition(|path| refers_to_others(path));
    let remove = |path: PathBuf| (Step::Remove { path }, Written::Removed);
    steps.extend(stale_referring.into_iter().map(remove));
    let (referring, referenced): (Vec<_>, Vec<_>) = writes
        .into_iter()
        .partition(|(path, _, _)| refers_to_others(path));
    for (path, text, outcome) in referenced.into_iter().chain(referring) {
        steps.push((Step::Write { path, text }, outcome));
    }
    steps.extend(stale_referenced.into_iter().map(remove));
    Ok(steps)
}

/// Makes one change (an unchanged file is left alone).
pub fn apply(step: &Step, outcome: Written) -> Result<()> {
    match step {
        Step::Write { .. } if outcome == Written::Unchanged => Ok(()),
        Step::Write { path, text } => atomic::write_file(path, text.as_bytes(), 0o644),
        Step::Remove { path } => fs::remove_file(path)
            .map_err(|err| Error::env(format!("cannot remove {}: {err}", path.display()))),
    }
}

/// Installs `files` (file name, text) into `dir` as one set: it replaces the whole set that
/// podlab installed under the same name (another `--kind` leaves nothing behind), checks
/// every file first, and orders the changes so the generator never sees half a set (see
/// [`plan_install`]).
pub async fn install(
    dir: &Path,
    files: &[(String, String)],
    force: bool,
) -> Result<Vec<(PathBuf, Written)>> {
    fs::create_dir_all(dir).map_err(|err| {
        Error::env(format!("cannot create {}: {err}", dir.display()))
            .hint("check that your config directory is writable")
    })?;
    let _lock = atomic::lock(dir, std::time::Duration::from_secs(10)).await?;
    let steps = plan_install(dir, files, force)?;
    let mut done = Vec::new();
    for (step, outcome) in steps {
        apply(&step, outcome)?;
        let (Step::Write { path, .. } | Step::Remove { path }) = step;
        done.push((path, outcome));
    }
    // Reported in the set's own order (the main unit first), then what was removed.
    let position = |path: &PathBuf| {
        files
            .iter()
            .position(|(file, _)| dir.join(file) == *path)
            .unwrap_or(files.len())
    };
    done.sort_by_key(|(path, _)| position(path));
    Ok(done)
}

/// Fails unless `path` is podlab's (and unedited, unless `force`).
fn ours(path: &Path, text: &str, force: bool) -> Result<()> {
    match origin(text) {
        Origin::Unedited => Ok(()),
        Origin::Edited if force => Ok(()),
        Origin::Edited => Err(Error::user(format!(
            "{} was edited since podlab wrote it: podlab leaves it alone",
            path.display()
        ))
        .hint("pass --force to replace or remove it anyway (your edits are lost)")),
        Origin::Foreign => Err(Error::user(format!(
            "{} was not written by podlab: podlab never touches it",
            path.display()
        ))
        .hint("pick another --name or output path, or move that file away yourself")),
    }
}

/// Removes podlab's unit files named `name` (any unit type) from `dir`.
pub async fn remove(dir: &Path, name: &str, force: bool) -> Result<Vec<PathBuf>> {
    let candidates = candidates(dir, name)?;
    let _lock = atomic::lock(dir, std::time::Duration::from_secs(10)).await?;
    check_removable(&candidates, force)?;
    for path in &candidates {
        fs::remove_file(path)
            .map_err(|err| Error::env(format!("cannot remove {}: {err}", path.display())))?;
    }
    Ok(candidates)
}

/// Fails unless [`remove`] would remove unit `name`: it is in `dir`, podlab wrote it, and it
/// is unedited (unless `force`). Checked before its service is stopped, so that a unit podlab
/// leaves alone is not stopped either.
pub fn removable(dir: &Path, name: &str, force: bool) -> Result<()> {
    check_removable(&candidates(dir, name)?, force)
}

fn check_removable(candidates: &[PathBuf], force: bool) -> Result<()> {
    for path in candidates {
        let text = fs::read_to_string(path)
            .map_err(|err| Error::env(format!("cannot read {}: {err}", path.display())))?;
        ours(path, &text, force)?;
    }
    Ok(())
}

/// The files of unit `name` in `dir`; an error naming podlab's units when there are none.
fn candidates(dir: &Path, name: &str) -> Result<Vec<PathBuf>> {
    crate::session::values::check_name(name)?;
    // The units of one session share its name, as does the YAML its `.kube` unit plays.
    let candidates = installed_set(dir, name);
    if candidates.is_empty() {
        let known = installed(dir);
        return Err(
            Error::user(format!("no unit {name} in {}", dir.display())).hint(if known.is_empty() {
                "podlab has installed no units (podlab quadlet install)".to_owned()
            } else {
                format!("podlab's units there: {}", known.join(", "))
            }),
        );
    }
    Ok(candidates)
}

/// The directories the user's quadlet generator reads, as Podman's `getRootlessDirs` lists
/// them: `$XDG_RUNTIME_DIR/containers/systemd`, `$XDG_CONFIG_HOME/containers/systemd`,
/// `/etc/containers/systemd/users` and `/etc/containers/systemd/users/UID`, each with its
/// subdirectories (but not drop-in `*.d` directories, nor other users' numbered ones).
pub fn quadlet_dirs() -> Result<Vec<PathBuf>> {
    let mut roots = Vec::new();
    if let Some(runtime) = std::env::var_os("XDG_RUNTIME_DIR").filter(|dir| !dir.is_empty()) {
        roots.push(PathBuf::from(runtime).join("containers/systemd"));
    }
    roots.push(crate::host::xdg::config_home()?.join("containers/systemd"));
    let admin = PathBuf::from("/etc/containers/systemd/users");
    let uid = rustix::process::getuid().as_raw().to_string();
    roots.push(admin.join(&uid));
    let mut dirs = Vec::new();
    for root in roots {
        walk(&root, &admin, &uid, &mut dirs);
    }
    walk(&admin, &admin, &uid, &mut dirs);
    Ok(dirs)
}

fn walk(dir: &Path, admin: &Path, uid: &str, out: &mut Vec<PathBuf>) {
    let numbered = |path: &Path| {
        path.parent() == Some(admin)
            && path.file_name().is_some_and(|name| {
                name != uid && name.to_string_lossy().bytes().all(|b| b.is_ascii_digit())
            })
    };
    if out.iter().any(|seen| seen == dir)
        || dir.extension().is_some_and(|ext| ext == "d")
        || numbered(dir)
        || !dir.is_dir()
    {
        return;
    }
    out.push(dir.to_owned());
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    let mut children: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    children.sort();
    for child in children {
        walk(&child, admin, uid, out);
    }
}

/// Fails when a unit file of the user's (outside podlab's `own` directory) has the name of
/// one of `files`: quadlet reads the first file of a name it finds, and the user's own
/// directory comes before podlab's, so `systemctl --user start` would run the user's unit
/// (or podlab's would hide the user's).
pub fn check_not_shadowed(dirs: &[PathBuf], own: &Path, files: &[(String, String)]) -> Result<()> {
    for dir in dirs.iter().filter(|dir| dir.as_path() != own) {
        for (file, _) in files {
            let path = dir.join(file);
            if path.exists() {
                return Err(Error::user(format!(
                    "{} has the name of podlab's unit {file}: quadlet would run one of them in place of the other",
                    path.display()
                ))
                .hint("pick another --name, or rename or remove that file yourself"));
            }
        }
    }
    Ok(())
}

/// Fails when a container named `name` exists that a unit of that name would replace (its
/// `podman run --name NAME --replace` removes it): unless its `io.podlab.kind` label is one of
/// `replaceable` (the unit's own container from an earlier install), it is someone's work.
/// The hint says what removes it: `podlab notebook rm`, `podlab rm`, or for a container
/// podlab did not make, `podman rm` by the user's own decision.
pub async fn check_container_free<E: crate::engine::Engine>(
    engine: &E,
    name: &str,
    replaceable: &[&str],
) -> Result<()> {
    let Some(facts) = engine.inspect_container(name).await? else {
        return Ok(());
    };
    let kind = facts.labels.get(crate::emit::podman::labels::KIND);
    if kind.is_some_and(|kind| replaceable.contains(&kind.as_str())) {
        return Ok(());
    }
    let (whose, remove) = match kind.map(String::as_str) {
        Some("notebook") => ("a podlab notebook", format!("podlab notebook rm {name}")),
        Some(_) => ("a podlab session", format!("podlab rm -f {name}")),
        None => (
            "not podlab's",
            format!("podman rm -f {name}, if you no longer need it"),
        ),
    };
    Err(Error::user(format!(
        "the name {name} is taken: a container named {name} exists ({whose}), and the unit would replace it"
    ))
    .hint(format!("pick another --name, or remove that container first: {remove}")))
}

/// The names of the units podlab wrote in `dir`: unit files only, never a temporary file
/// of a write (`.podlab-*.tmp`) or a lock.
fn installed(dir: &Path) -> Vec<String> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .filter_map(std::result::Result::ok)
        .filter(|entry| {
            let path = entry.path();
            let extension = path.extension().and_then(|ext| ext.to_str());
            UnitType::ALL
                .iter()
                .any(|unit| Some(unit.extension()) == extension)
        })
        .filter(|entry| {
            fs::read_to_string(entry.path()).is_ok_and(|text| origin(&text) != Origin::Foreign)
        })
        .filter_map(|entry| {
            let path = entry.path();
            path.file_stem()
                .map(|stem| stem.to_string_lossy().into_owned())
        })
        .collect();
    names.sort();
    names.dedup();
    names
}

/// Fails when one of `ports` is taken on this host: the service could not start.
pub fn check_ports(ports: &[Port]) -> Result<()> {
    for port in ports {
        let address = (port.host_ip, port.host_port);
        let free = match port.protocol {
            Protocol::Tcp => TcpListener::bind(address).is_ok(),
            Protocol::Udp => UdpSocket::bind(address).is_ok(),
        };
        if !free {
            return Err(Error::user(format!(
                "port {port} is in use on this host: the service could not start"
            ))
            .hint("publish another host port (-p HOST:CTR), or stop what listens there"));
        }
    }
    Ok(())
}

/// Whether a systemd user instance runs for this user (its private socket exists).
pub fn systemd_user_instance() -> bool {
    std::env::var_os("XDG_RUNTIME_DIR")
        .is_some_and(|dir| Path::new(&dir).join("systemd/private").exists())
}

/// Whether lingering is on for this user (their services outlive their sessions).
pub fn lingering() -> bool {
    let user = rustix::process::getuid().as_raw();
    let name = std::env::var("USER").unwrap_or_else(|_| user.to_string());
    Path::new("/var/lib/systemd/linger").join(name).exists()
}

/// Where distributions put Podman's quadlet generator (Debian and Fedora, then Arch).
pub const QUADLET_GENERATORS: [&str; 2] =
    ["/usr/libexec/podman/quadlet", "/usr/lib/podman/quadlet"];

/// Runs `systemctl --user ARGS`; a failure carries what systemctl said.
pub fn systemctl(args: &[&str]) -> Result<()> {
    let output = Command::new("systemctl")
        .arg("--user")
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|err| Error::env(format!("cannot run systemctl: {err}")))?;
    if output.status.success() {
        return Ok(());
    }
    let said = String::from_utf8_lossy(&output.stderr);
    let said = said.trim();
    Err(Error::env(format!(
        "systemctl --user {} failed ({}){}",
        args.join(" "),
        output.status,
        if said.is_empty() {
            String::new()
        } else {
            format!(": {said}")
        }
    ))
    .hint("see journalctl --user -xe"))
}

/// Has systemd load the unit files again (`daemon-reload`, which runs the quadlet generator),
/// then runs `systemctl --user VERB SERVICE`. When systemd then has no such service, the
/// generator rejected its file, and systemd says only "not found": the error carries the
/// generator's own reason, from a dry run of it. `remove`: the podlab command that removes
/// the unit, for the hints.
pub fn reload_and(verb: &str, service: &str, remove: &str) -> Result<()> {
    systemctl(&["daemon-reload"]).map_err(|err| {
        Error::env(format!(
            "systemd did not reload the unit files, so {service} is not loaded: {}",
            err.message()
        ))
        .hint(format!(
            "the unit file is in place: once `systemctl --user daemon-reload` works, run \
             systemctl --user {verb} {service} (or remove it: {remove})"
        ))
    })?;
    let Err(err) = systemctl(&[verb, service]) else {
        return Ok(());
    };
    let name = service.strip_suffix(".service").unwrap_or(service);
    match generator_rejection(name) {
        Some(reason) => Err(Error::env(format!(
            "systemd has no {service}: the quadlet generator rejected its unit file: {reason}"
        ))
        .hint(format!(
            "fix that file, or remove it ({remove} --force) and install again"
        ))),
        None => Err(err),
    }
}

/// The quadlet generator's complaint about unit `name` (any unit type), from a dry run over
/// the user's unit directories; `None` when it has none or cannot run.
fn generator_rejection(name: &str) -> Option<String> {
    let generator = QUADLET_GENERATORS
        .into_iter()
        .map(Path::new)
        .find(|path| path.exists())?;
    let output = Command::new(generator)
        .args(["-dryrun", "-user", "-no-kmsg-log"])
        .stdin(std::process::Stdio::null())
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&output.stderr);
    let reasons: Vec<&str> = text
        .lines()
        .filter_map(|line| line.split_once(&format!("converting \"{name}.")))
        .filter_map(|(_, rest)| rest.split_once("\": ").map(|(_, reason)| reason.trim()))
        .collect();
    (!reasons.is_empty()).then(|| reasons.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capabilities::PodmanVersion;
    use crate::emit::quadlet::unit::{Body, Container, Install, Service, Unit};
    use std::process::Command;

    fn text(image: &str) -> String {
        Unit {
            name: "demo".into(),
            description: "d".into(),
            body: Body::Container(Box::new(Container {
                image: image.into(),
                ..Container::default()
            })),
            service: Service {
                timeout_start_sec: 900,
                restart: None,
                success_exit_status: Vec::new(),
            },
            install: Install { wanted_by: vec![] },
        }
        .render(&Capabilities::for_version(PodmanVersion::new(5, 4, 2)))
        .unwrap()
    }

    /// Issue 12: a unit's inline GPU edits are fitted to its image as `podlab run`'s are:
    /// libraries only in the directory its loader searches, only the driver capabilities it
    /// asks for.
    #[test]
    fn a_gpu_units_inline_edits_are_fitted_to_its_image() {
        let fixture = crate::gpu::fixtures::debian_like();
        let session = Session {
            gpus: crate::session::GpuRequest::All,
            driver_roots: fixture.roots.clone(),
            ..Session::example()
        };
        // Podman 5.4 has no --cdi-spec-dir: no spec of the user's own is looked for.
        let caps = Capabilities::for_version(PodmanVersion::new(5, 4, 2));
        let image = ImageUser {
            user: String::new(),
            passwd: None,
            env: Vec::new(),
            paths: BTreeMap::from([(
                plan::loader_path().to_owned(),
                Some(ImagePath {
                    link_target: Some("/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2".into()),
                }),
            )]),
        };
        let mounts = |image: Option<&ImageUser>| {
            let planned = plan(&session, &caps, "demo", image).unwrap();
            let GpuMode::Inline(edits) = planned.container.gpus.mode else {
                panic!("expected inline edits")
            };
            edits
                .mounts
                .into_iter()
                .map(|mount| mount.container_path)
                .collect::<Vec<_>>()
        };
        let fitted = mounts(Some(&image));
        assert!(fitted.contains(&"/usr/lib/x86_64-linux-gnu/libcuda.so.1".to_owned()));
        assert!(
            !fitted.iter().any(|path| path.starts_with("/usr/lib64/")),
            "{fitted:?}"
        );
        assert!(
            !fitted.iter().any(|path| path.contains("libnvidia-encode")),
            "{fitted:?}"
        );
        // An image that is not local: nothing known of it, every file in every directory.
        let unknown = mounts(None);
        assert!(unknown.contains(&"/usr/lib64/libnvidia-encode.so.1".to_owned()));
    }

    #[tokio::test]
    async fn installs_replaces_and_refuses_edited_or_foreign_files() {
        let dir = tempfile::tempdir().unwrap();
        let units = dir.path().join("podlab");
        let one = vec![("demo.container".to_owned(), text("a"))];
        let written = install(&units, &one, false).await.unwrap();
        assert_eq!(written[0].1, Written::Created);
        assert_eq!(
            install(&units, &one, false).await.unwrap()[0].1,
            Written::Unchanged
        );
        let two = vec![("demo.container".to_owned(), text("b"))];
        assert_eq!(
            install(&units, &two, false).await.unwrap()[0].1,
            Written::Replaced
        );

        let path = units.join("demo.container");
        let edited = fs::read_to_string(&path).unwrap() + "Environment=X=1\n";
        fs::write(&path, &edited).unwrap();
        let err = install(&units, &one, false).await.unwrap_err().to_string();
        assert!(err.contains("was edited since podlab wrote it"), "{err}");
        assert_eq!(fs::read_to_string(&path).unwrap(), edited, "left unchanged");
        assert!(remove(&units, "demo", false).await.is_err());
        assert_eq!(
            install(&units, &one, true).await.unwrap()[0].1,
            Written::Replaced
        );

        fs::write(units.join("mine.container"), "[Container]\nImage=x\n").unwrap();
        let set = vec![
            ("ok.container".to_owned(), text("a")),
            ("mine.container".to_owned(), text("a")),
        ];
        let err = install(&units, &set, true).await.unwrap_err().to_string();
        assert!(err.contains("was not written by podlab"), "{err}");
        assert!(!units.join("ok.container").exists(), "all or none");
        assert!(remove(&units, "mine", true).await.is_err());
        assert!(units.join("mine.container").exists());

        assert_eq!(
            remove(&units, "demo", false).await.unwrap(),
            [units.join("demo.container")]
        );
        let err = remove(&units, "demo", false).await.unwrap_err();
        assert_eq!(
            err.hint_text(),
            Some("podlab has installed no units (podlab quadlet install)")
        );
    }

    #[tokio::test]
    async fn s2_quadlet_rm_refuses_a_name_that_leaves_the_unit_directory() {
        let dir = tempfile::tempdir().unwrap();
        let units = dir.path().join("systemd/podlab");
        fs::create_dir_all(&units).unwrap();
        // A unit podlab generated elsewhere (quadlet generate -o), one level up and far away.
        let evil = dir.path().join("systemd/evil.container");
        fs::write(&evil, text("a")).unwrap();
        for name in ["../evil", "../../systemd/evil", "/tmp/evil", "a/../../evil"] {
            let err = remove(&units, name, true).await.unwrap_err();
            assert_eq!(err.exit_code(), 1, "{err}");
            assert!(err.to_string().contains("invalid name"), "{err}");
            assert!(err.hint_text().is_some());
        }
        assert!(
            evil.exists(),
            "a file outside podlab's directory is never removed"
        );
    }

    #[tokio::test]
    async fn quadlet_generate_into_a_directory_leaves_no_lock_file() {
        let dir = tempfile::tempdir().unwrap();
        let one = vec![("demo.container".to_owned(), text("a"))];
        install(dir.path(), &one, false).await.unwrap();
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["demo.container"]);
        remove(dir.path(), "demo", false).await.unwrap();
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn w3_a_users_own_unit_of_the_same_name_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("containers/systemd");
        let own = root.join("podlab");
        fs::create_dir_all(&own).unwrap();
        fs::create_dir_all(root.join("zz")).unwrap();
        fs::create_dir_all(root.join("x.container.d")).unwrap();
        let files = vec![("precious.container".to_owned(), text("a"))];
        let dirs = || {
            let mut out = Vec::new();
            walk(
                &root,
                Path::new("/etc/containers/systemd/users"),
                "1000",
                &mut out,
            );
            out
        };
        assert_eq!(
            dirs(),
            [root.clone(), own.clone(), root.join("zz")],
            "no drop-in dirs"
        );
        check_not_shadowed(&dirs(), &own, &files).unwrap();
        // podlab's own file of that name is no conflict (install replaces it or refuses).
        fs::write(own.join("precious.container"), text("a")).unwrap();
        check_not_shadowed(&dirs(), &own, &files).unwrap();
        for place in [root.clone(), root.join("zz")] {
            let mine = place.join("precious.container");
            fs::write(&mine, "[Container]\nImage=mine\n").unwrap();
            let err = check_not_shadowed(&dirs(), &own, &files).unwrap_err();
            assert!(
                err.to_string().contains(&mine.display().to_string()),
                "{err}"
            );
            assert!(err.hint_text().unwrap().contains("--name"), "{err}");
            fs::remove_file(&mine).unwrap();
        }
    }

    #[tokio::test]
    async fn l1_a_users_own_container_of_the_unit_name_is_refused() {
        use crate::engine::ContainerFacts;
        use crate::engine::fake::FakeEngine;
        let mut engine = FakeEngine::default();
        check_container_free(&engine, "precious", &["service"])
            .await
            .unwrap();
        let container = |kind: Option<&str>| ContainerFacts {
            id: "id".into(),
            name: "precious".into(),
            labels: kind
                .map(|kind| [("io.podlab.kind".to_owned(), kind.to_owned())].into())
                .unwrap_or_default(),
            ..ContainerFacts::default()
        };
        engine.containers.insert("precious".into(), container(None));
        let err = check_container_free(&engine, "precious", &["service"])
            .await
            .unwrap_err();
        assert_eq!(err.exit_code(), 1);
        assert!(err.message().contains("would replace it"), "{err}");
        assert!(
            err.hint_text().unwrap().contains("podman rm -f precious"),
            "{err}"
        );
        // A podlab session gets podlab's own command, a notebook its own.
        engine
            .containers
            .insert("precious".into(), container(Some("job")));
        let err = check_container_free(&engine, "precious", &["service"])
            .await
            .unwrap_err();
        assert!(
            err.hint_text().unwrap().contains("podlab rm -f precious"),
            "{err}"
        );
        engine
            .containers
            .insert("precious".into(), container(Some("notebook")));
        let err = check_container_free(&engine, "precious", &["service"])
            .await
            .unwrap_err();
        assert!(
            err.hint_text()
                .unwrap()
                .contains("podlab notebook rm precious"),
            "{err}"
        );
        // The unit's own container from an earlier install is replaced as before.
        engine
            .containers
            .insert("precious".into(), container(Some("service")));
        check_container_free(&engine, "precious", &["service"])
            .await
            .unwrap();
    }

    #[test]
    fn a_port_in_use_is_refused() {
        let taken = TcpListener::bind("127.0.0.1:0").unwrap();
        let port: Port = format!("127.0.0.1:{0}:80", taken.local_addr().unwrap().port())
            .parse()
            .unwrap();
        let err = check_ports(&[port]).unwrap_err().to_string();
        assert!(err.contains("is in use on this host"), "{err}");
    }

    const QUADLET: &str = "/usr/libexec/podman/quadlet";

    /// A golden unit set from `quadlets/` (files of stem `stem`), renamed to `kk` and given
    /// a fresh header, the main unit first.
    fn golden_set(stem: &str, files: &[&str]) -> Vec<(String, String)> {
        let golden = Path::new(env!("CARGO_MANIFEST_DIR")).join("quadlets");
        files
            .iter()
            .map(|file| {
                let text = fs::read_to_string(golden.join(file)).unwrap();
                let body: String = text
                    .split_inclusive('\n')
                    .skip_while(|line| line.starts_with('#'))
                    .collect();
                let body = body
                    .replace(&format!("{stem}.podman.yaml"), "kk.yaml")
                    .replace(stem, "kk");
                let extension = Path::new(file).extension().unwrap().to_str().unwrap();
                (
                    format!("kk.{extension}"),
                    crate::emit::quadlet::unit::with_header(&body),
                )
            })
            .collect()
    }

    fn sets() -> Vec<(&'static str, Vec<(String, String)>)> {
        vec![
            (
                "container",
                golden_set("dev-session", &["dev-session.container"]),
            ),
            (
                "pod",
                golden_set("dev-pod", &["dev-pod.container", "dev-pod.pod"]),
            ),
            (
                "kube",
                golden_set(
                    "dev-session",
                    &["dev-session.kube", "dev-session.podman.yaml"],
                ),
            ),
            (
                "build",
                golden_set(
                    "train-build",
                    &["train-build.container", "train-build.build"],
                ),
            ),
        ]
    }

    /// Why the generator cannot read `dir` as it is, if it cannot: quadlet fails it, two
    /// units make one service, or a `.kube` unit's YAML is missing.
    fn unreadable(dir: &Path) -> Option<String> {
        let output = Command::new(QUADLET)
            .args(["-dryrun", "-user", "-no-kmsg-log"])
            .env("QUADLET_UNIT_DIRS", dir)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        if !output.status.success() {
            return Some(String::from_utf8_lossy(&output.stderr).into_owned());
        }
        let mut services: Vec<&str> = stdout.lines().filter(|l| l.starts_with("---")).collect();
        let all = services.len();
        services.sort_unstable();
        services.dedup();
        if services.len() != all {
            return Some(format!("two units make one service: {stdout}"));
        }
        for entry in fs::read_dir(dir).unwrap() {
            let text = fs::read_to_string(entry.unwrap().path()).unwrap_or_default();
            for yaml in text.lines().filter_map(|line| line.strip_prefix("Yaml=")) {
                if !dir.join(yaml).is_file() {
                    return Some(format!("Yaml={yaml} is missing"));
                }
            }
        }
        None
    }

    fn listing(dir: &Path) -> Vec<String> {
        let mut files: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().into_string().unwrap())
            .filter(|name| !name.starts_with('.'))
            .collect();
        files.sort();
        files
    }

    #[tokio::test]
    async fn l6_every_state_between_two_sets_passes_quadlet_dryrun() {
        if !Path::new(QUADLET).exists() {
            assert!(
                std::env::var("PODLAB_E2E").as_deref() != Ok("1"),
                "PODLAB_E2E=1 but {QUADLET} is missing"
            );
            eprintln!("skipping: {QUADLET} is missing");
            return;
        }
        for (from, old) in sets() {
            for (to, new) in sets() {
                let dir = tempfile::tempdir().unwrap();
                install(dir.path(), &old, false).await.unwrap();
                assert_eq!(unreadable(dir.path()), None, "{from} alone");
                let steps = plan_install(dir.path(), &new, false).unwrap();
                for (step, outcome) in &steps {
                    apply(step, *outcome).unwrap();
                    if let Some(why) = unreadable(dir.path()) {
                        panic!("{from} -> {to}, after {step:?}: {why}");
                    }
                }
                let mut expected: Vec<String> = new.iter().map(|(file, _)| file.clone()).collect();
                expected.sort();
                assert_eq!(listing(dir.path()), expected, "{from} -> {to}");
            }
        }
    }

    #[tokio::test]
    async fn w1_reinstalling_under_another_kind_replaces_the_whole_set() {
        let sets = sets();
        let (kube, container) = (&sets[2].1, &sets[0].1);
        let dir = tempfile::tempdir().unwrap();
        install(dir.path(), kube, false).await.unwrap();
        assert_eq!(listing(dir.path()), ["kk.kube", "kk.yaml"]);
        let written = install(dir.path(), container, false).await.unwrap();
        assert_eq!(listing(dir.path()), ["kk.container"]);
        assert!(written.contains(&(dir.path().join("kk.kube"), Written::Removed)));
        assert!(written.contains(&(dir.path().join("kk.yaml"), Written::Removed)));

        // A file of that name that podlab did not write is never touched: nothing changes.
        fs::write(dir.path().join("kk.kube"), "[Kube]\nYaml=mine.yaml\n").unwrap();
        let err = install(dir.path(), &sets[1].1, true).await.unwrap_err();
        assert!(err.message().contains("was not written by podlab"), "{err}");
        assert_eq!(listing(dir.path()), ["kk.container", "kk.kube"]);
        // An edited one needs --force.
        fs::remove_file(dir.path().join("kk.kube")).unwrap();
        install(dir.path(), kube, false).await.unwrap();
        let path = dir.path().join("kk.yaml");
        let edited = dir.path().join("kk.kube");
        fs::write(&edited, fs::read_to_string(&edited).unwrap() + "# mine\n").unwrap();
        let err = install(dir.path(), container, false).await.unwrap_err();
        assert!(err.message().contains("was edited"), "{err}");
        assert!(path.exists() && edited.exists());
        install(dir.path(), container, true).await.unwrap();
        assert_eq!(listing(dir.path()), ["kk.container"]);
    }

    #[test]
    fn l6_temp_files_are_never_listed_as_units() {
        let dir = tempfile::tempdir().unwrap();
        let (file, text) = &sets()[0].1[0];
        fs::write(dir.path().join(file), text).unwrap();
        fs::write(dir.path().join(".podlab-77-abc.tmp"), text).unwrap();
        fs::write(dir.path().join(".podlab.lock"), "").unwrap();
        assert_eq!(installed(dir.path()), ["kk"]);
    }
}
