//! Kubernetes YAML from a session, and `podman kube play` / `kube down` through the API.
//!
//! [`plan_kube`] makes the host decisions once (the image's user, how GPUs reach the
//! container for the target Podman, a valid name) and hands them to [`crate::emit::kube`],
//! which only serializes. [`play`] and [`down`] send the YAML to Podman themselves
//! (podman-api's removal call sends no body), refuse to touch pods podlab did not start, and
//! clean up after a play that failed half-way, which Podman does not do (a pod whose image
//! could not be pulled was seen left behind).

use std::fmt::Write as _;

use serde_json::Value;

use crate::capabilities::{Capabilities, Feature};
use crate::emit::kube::{
    self, Generated, Gpus, Kind, KubePlan, Scale, Target, VolumeMode, kube_name, pod_hostname,
};
use crate::emit::podman::labels;
use crate::engine::kube::PodFacts;
use crate::engine::{Engine, Inspectable};
use crate::gpu::{DriverRoots, discover};
use crate::plan::{self, GpuMode};
use crate::session::{GpuRequest, GpuSelector, Session, Settings};
use crate::{Error, Result};

/// The size each claim requests unless `--pvc-size` says otherwise.
pub const DEFAULT_PVC_SIZE: &str = "100Gi";

/// What to generate, beyond the session (the `kube generate` flags).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// Who reads the YAML: podman (kube play on this host) or kubernetes (a cluster).
    pub target: Target,
    /// The workload: pod, job or deployment.
    pub kind: Kind,
    /// Kubernetes: host paths, or a PersistentVolumeClaim per mount.
    pub volume_mode: VolumeMode,
    /// Kubernetes, PVC volumes: the size each claim requests.
    pub pvc_size: String,
    /// Kubernetes, PVC volumes: the claims' storage class.
    pub storage_class: Option<String>,
    /// Kubernetes: the pod's runtimeClassName.
    pub runtime_class: Option<String>,
    /// Kubernetes: the number of GPUs to request, instead of counting `--gpus`.
    pub gpu_count: Option<u32>,
    /// Kubernetes: GPUs per pod of a multi-node run, at most what `--gpus` names.
    pub gpus_per_node: Option<u32>,
    /// Nodes and Kueue queue (a multi-node Job or a JobSet).
    pub scale: Scale,
}

/// `kube generate`'s defaults: what `kube play SESSION` plays and a `.kube` unit runs.
impl Default for Options {
    fn default() -> Self {
        Self {
            target: Target::default(),
            kind: Kind::default(),
            volume_mode: VolumeMode::default(),
            pvc_size: DEFAULT_PVC_SIZE.to_owned(),
            storage_class: None,
            runtime_class: None,
            gpu_count: None,
            gpus_per_node: None,
            scale: Scale::default(),
        }
    }
}

/// The YAML of `session` for `options`, its notices logged.
pub async fn generate<E: Engine>(
    engine: &E,
    caps: Capabilities,
    session: &Session,
    options: &Options,
) -> Result<String> {
    let plan = plan_kube(engine, caps, session, options).await?;
    let Generated { yaml, notices } = kube::generate(session, &plan)?;
    for notice in &notices {
        tracing::warn!("{notice}");
    }
    Ok(yaml)
}

/// The podman-flavor YAML of a container's session, as `kube generate SESSION` writes it by
/// default; `SESSION` is not a file, so an unknown name says both.
pub async fn session_yaml<E: Engine>(engine: &E, caps: Capabilities, name: &str) -> Result<String> {
    file_or_name(name, "session")?;
    if engine
        .inspect_json(Inspectable::Container, name)
        .await?
        .is_none()
    {
        return Err(Error::user(format!("no file and no session named {name}"))
            .hint("give a YAML file from podlab kube generate, or a session name from podlab ps"));
    }
    let cwd = crate::host::current_dir()?;
    let base = crate::ops::containers::inspect_session(engine, name, &cwd).await?;
    let home = std::env::var_os("HOME").map(std::path::PathBuf::from);
    let session =
        crate::session::inspected::overlay(base, Settings::default(), None, &cwd, home.as_deref())?;
    podman_yaml(engine, caps, &session).await
}

/// The podman-flavor pod YAML of `session` for a target Podman, with `kube generate`'s
/// defaults: what `kube play SESSION` plays and a `.kube` unit runs.
pub async fn podman_yaml<E: Engine>(
    engine: &E,
    caps: Capabilities,
    session: &Session,
) -> Result<String> {
    generate(engine, caps, session, &Options::default()).await
}

/// Makes the host decisions for the YAML: the workload's name, the image's user, and how
/// GPUs are asked for on the target.
pub async fn plan_kube<E: Engine>(
    engine: &E,
    caps: Capabilities,
    session: &Session,
    output: &Options,
) -> Result<KubePlan> {
    let name = workload_name(session)?;
    if output.target == Target::Podman && output.gpu_count.is_some() {
        return Err(Error::user("--gpu-count is for --target kubernetes")
            .hint("podman kube play gets the GPUs themselves: pick them with --gpus"));
    }
    if output.target == Target::Podman && output.gpus_per_node.is_some() {
        return Err(Error::user("--gpus-per-node is for --target kubernetes")
            .hint("podman kube play gets the GPUs themselves: pick them with --gpus"));
    }
    let image = session.image.reference();
    let userns = if let Some(facts) = engine.inspect_image(image).await? {
        let passwd = if plan::needs_passwd(&facts.user) {
            engine.image_file(image, "/etc/passwd").await?
        } else {
            None
        };
        plan::plan_user(session.user_map, &facts.user, passwd.as_deref())
    } else {
        tracing::warn!(
            "image {image} is not in the local store, so its user is unknown: pass --user-map UID:GID to map onto the image's user"
        );
        plan::plan_user(session.user_map, "", None)
    };
    plan_with_user(caps, session, output, name, userns)
}

/// The cluster-flavor YAML of `session` when no Podman answers: a cluster needs nothing of
/// Podman but the image's user, so podlab starts no service just to read it and says what it
/// assumed instead.
pub fn cluster_yaml_without_podman(session: &Session, options: &Options) -> Result<String> {
    let caps = Capabilities::for_version(crate::capabilities::PodmanVersion::new(0, 0, 0));
    let name = workload_name(session)?;
    let userns = plan::plan_user(session.user_map, "", None);
    let assumed = match userns {
        plan::UserNs::KeepIdTo { uid, gid } => {
            format!("the pod runs as {uid}:{gid}, from --user-map")
        }
        plan::UserNs::KeepId => "the pod runs as the image's own user (no runAsUser); pass --user-map UID:GID to set one".to_owned(),
    };
    tracing::warn!(
        "no podman socket answers, and --target kubernetes starts none: the image {}'s user is unknown, so {assumed}",
        session.image.reference()
    );
    let plan = plan_with_user(caps, session, options, name, userns)?;
    let Generated { yaml, notices } = kube::generate(session, &plan)?;
    for notice in &notices {
        tracing::warn!("{notice}");
    }
    Ok(yaml)
}

fn plan_with_user(
    caps: Capabilities,
    session: &Session,
    output: &Options,
    name: String,
    userns: plan::UserNs,
) -> Result<KubePlan> {
    let (gpus, gpu_names) = match (output.target, output.gpus_per_node) {
        (Target::Podman, _) => podman_gpus(session, &caps)?,
        (Target::Kubernetes, Some(per_node)) => {
            plan::check_gpus_per_node(&session.gpus, per_node)?;
            let gpus = if per_node == 0 {
                Gpus::None
            } else {
                Gpus::Count(per_node)
            };
            (gpus, Vec::new())
        }
        (Target::Kubernetes, None) => (
            gpu_count(&session.gpus, &session.driver_roots, output.gpu_count)?,
            Vec::new(),
        ),
    };
    let label_disable =
        output.target == Target::Podman && gpus != Gpus::None && plan::selinux_enforcing();
    let plan = KubePlan {
        name,
        target: output.target,
        kind: output.kind,
        caps,
        gpus,
        gpu_names,
        userns,
        volumes: output.volume_mode,
        pvc_size: output.pvc_size.clone(),
        storage_class: output.storage_class.clone(),
        runtime_class: output.runtime_class.clone(),
        label_disable,
        scale: output.scale.clone(),
    };
    if plan.multi_node() {
        check_multi_node(session, &plan)?;
    }
    Ok(plan)
}

/// What a run across nodes cannot have: host paths (each node has its own) and pod host
/// names over a DNS label's 63 characters.
fn check_multi_node(session: &Session, plan: &KubePlan) -> Result<()> {
    if plan.volumes == VolumeMode::Hostpath {
        if let Some(mount) = session.mounts.first() {
            return Err(Error::user(format!(
                "host path {} cannot be mounted on a {}-node run: a hostPath is a directory of whichever node a pod lands on",
                mount.host.display(),
                plan.scale.nodes
            ))
            .hint("add --volumes pvc (a ReadWriteMany claim per mount, shared by the pods)"));
        }
    }
    let last = pod_hostname(plan, plan.scale.nodes.saturating_sub(1));
    if last.len() > 63 {
        let room = 63 - (last.len() - plan.name.len());
        return Err(Error::user(format!(
            "the name {} makes pod host names of {} characters ({last}); a DNS label holds 63",
            plan.name,
            last.len()
        ))
        .hint(format!("pass --name with at most {room} characters")));
    }
    Ok(())
}

/// The workload's name: the session's, else its project's.
fn workload_name(session: &Session) -> Result<String> {
    match &session.name {
        Some(name) => kube_name(name),
        // A project directory may start with a digit; a workload name may not.
        None if session
            .project
            .starts_with(|c: char| c.is_ascii_lowercase()) =>
        {
            kube_name(&session.project)
        }
        None => kube_name(&format!("podlab-{}", session.project)),
    }
}

/// GPUs for `podman kube play`: by CDI name when a fresh spec Podman reads has them and the
/// target reads CDI limit keys (5.4+), else the same edits inline.
fn podman_gpus(session: &Session, caps: &Capabilities) -> Result<(Gpus, Vec<String>)> {
    let planned = plan::plan_gpus(
        &session.gpus,
        &session.driver_roots,
        &crate::cdi::store::podman_spec_dirs(caps),
    )?;
    for notice in &planned.notices {
        tracing::warn!("{}", notice.message);
    }
    let gpus = match planned.mode {
        GpuMode::None => Gpus::None,
        GpuMode::Cdi(names) if caps.has(Feature::KubeCdiLimits) => {
            tracing::info!("GPUs: by CDI name, {}", names.join(" "));
            Gpus::CdiNames(names)
        }
        GpuMode::Cdi(_) => {
            tracing::info!(
                "GPUs: inline edits (podman {} ignores CDI names in kube play limits)",
                caps.version()
            );
            Gpus::Inline(inline_edits(&session.driver_roots, &planned.names)?)
        }
        GpuMode::Inline(edits) => {
            tracing::info!(
                "GPUs: inline edits, {} device nodes and {} mounts (no CDI spec Podman reads is fresh)",
                edits.device_nodes.len(),
                edits.mounts.len()
            );
            Gpus::Inline(edits)
        }
    };
    Ok((gpus, planned.names))
}

/// The edits of a freshly generated spec for the named devices (the shared edits first),
/// as `podlab run` applies them when it cannot name the devices.
fn inline_edits(roots: &DriverRoots, names: &[String]) -> Result<crate::cdi::spec::ContainerEdits> {
    let inventory = discover(roots)?;
    let generated = crate::cdi::generate::generate(
        &inventory,
        roots,
        &crate::cdi::generate::Options::default(),
    )?;
    let mut edits = generated.spec.container_edits.clone();
    for device in &generated.spec.devices {
        if !names.contains(&device.name) {
            continue;
        }
        let from = &device.container_edits;
        for node in &from.device_nodes {
            if !edits
                .device_nodes
                .iter()
                .any(|known| known.path == node.path)
            {
                edits.device_nodes.push(node.clone());
            }
        }
        edits.env.extend(from.env.iter().cloned());
        edits.mounts.extend(from.mounts.iter().cloned());
        for gid in &from.additional_gids {
            if !edits.additional_gids.contains(gid) {
                edits.additional_gids.push(*gid);
            }
        }
    }
    Ok(edits)
}

/// GPUs for a cluster: a count. A list of indices counts its entries; `all` counts this
/// host's GPUs; UUIDs name this host's devices, which a cluster cannot promise.
fn gpu_count(request: &GpuRequest, roots: &DriverRoots, count: Option<u32>) -> Result<Gpus> {
    if let Some(count) = count {
        return Ok(Gpus::Count(count));
    }
    let host_gpus = || {
        discover(roots)
            .ok()
            .map_or(0, |inventory| inventory.gpus.len())
    };
    let count = match request {
        GpuRequest::None => 0,
        GpuRequest::List(selectors) => {
            if let Some(GpuSelector::Uuid(uuid)) = selectors
                .iter()
                .find(|selector| matches!(selector, GpuSelector::Uuid(_)))
            {
                return Err(Error::user(format!(
                    "--gpus {uuid} cannot become a GPU count: a UUID names a GPU of this host, and a cluster hands out GPUs by count"
                ))
                .hint(format!(
                    "ask for a count instead: --gpu-count {} (or --gpus with indices, such as 0,1)",
                    selectors.len()
                )));
            }
            selectors.len()
        }
        GpuRequest::All => match host_gpus() {
            0 => {
                return Err(Error::user(
                    "--gpus all cannot become a GPU count: this host has no NVIDIA GPU to count",
                )
                .hint("say how many GPUs the cluster should give: --gpu-count N"));
            }
            found => found,
        },
        GpuRequest::Auto => host_gpus(),
    };
    let count = u32::try_from(count)
        .map_err(|_| Error::user(format!("{count} GPUs is more than a cluster can count")))?;
    Ok(if count == 0 {
        Gpus::None
    } else {
        Gpus::Count(count)
    })
}

/// The YAML documents, or `None` when they do not parse (Podman then says why).
fn documents(yaml: &str) -> Option<Vec<Value>> {
    serde_saphyr::from_multiple::<Value>(yaml)
        .ok()
        .map(|docs| docs.into_iter().filter(|doc| !doc.is_null()).collect())
}

/// The pods `kube play` makes of the documents: a Pod keeps its name; a Deployment, Job or
/// DaemonSet makes `<name>-pod`.
fn pod_names(docs: &[Value]) -> Vec<String> {
    docs.iter()
        .filter_map(|doc| {
            let name = doc.pointer("/metadata/name")?.as_str()?;
            match doc.get("kind")?.as_str()? {
                "Pod" => Some(name.to_owned()),
                "Deployment" | "Job" | "DaemonSet" => Some(format!("{name}-pod")),
                _ => None,
            }
        })
        .collect()
}

/// The session's containers of a pod, without its infra container.
fn session_containers(pod: &PodFacts) -> Vec<&str> {
    pod.containers
        .iter()
        .map(String::as_str)
        .filter(|name| !name.ends_with("-infra"))
        .collect()
}

/// Plays `yaml`; the lines to print. Refuses pods that already exist (changing nothing), and
/// removes what Podman created when the play fails.
pub async fn play<E: Engine>(engine: &E, yaml: &str) -> Result<String> {
    let names = documents(yaml).map(|docs| pod_names(&docs));
    if let Some(names) = &names {
        for name in names {
            if engine.inspect_pod(name).await?.is_some() {
                return Err(Error::user(format!("pod {name} already exists")).hint(
                    "take it down first (podlab kube down FILE), or play the YAML under another name",
                ));
            }
        }
    }
    let failure = match engine.play_kube(yaml).await {
        Ok(report) => {
            let errors: Vec<String> = report
                .pods
                .iter()
                .flat_map(|pod| pod.errors.iter().cloned())
                .collect();
            if errors.is_empty() {
                None
            } else {
                Some(
                    Error::user(format!(
                        "podman kube play could not start the session: {}",
                        errors.join("; ")
                    ))
                    .hint("podlab removed what the play created; fix the YAML (or install the missing piece) and play it again"),
                )
            }
        }
        Err(err) => Some(err),
    };
    if let Some(err) = failure {
        // Podman leaves created pods behind when a play fails half-way. None of them existed
        // before (checked above), so removing them touches nothing of the user's.
        if names.is_some() {
            let _ = engine.down_kube(yaml).await;
        }
        return Err(err);
    }
    let mut out = String::new();
    for name in names.unwrap_or_default() {
        if let Some(pod) = engine.inspect_pod(&name).await? {
            let _ = writeln!(
                out,
                "started pod {name} ({}): {}",
                pod.state.to_lowercase(),
                session_containers(&pod).join(", ")
            );
        }
    }
    Ok(out)
}

/// A minimal Pod document for `kube down POD`: Podman finds what to remove by name.
pub async fn pod_yaml<E: Engine>(engine: &E, name: &str) -> Result<String> {
    file_or_name(name, "pod")?;
    for candidate in [name.to_owned(), format!("{name}-pod")] {
        if engine.inspect_pod(&candidate).await?.is_some() {
            return Ok(format!(
                "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {candidate}\n"
            ));
        }
    }
    Err(Error::user(format!("no file and no pod named {name}"))
        .hint("give the YAML file that was played, or a pod name from podman pod ps"))
}

/// Writes `yaml` to `file` behind podlab's provenance header (the one units carry, see
/// [`crate::emit::quadlet::unit::with_header`]): like `quadlet generate -o` and
/// `cdi generate -o`, it never replaces a file podlab did not write, nor (without `force`)
/// one edited since.
pub async fn write_yaml(file: &std::path::Path, yaml: &str, force: bool) -> Result<()> {
    let name = file
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .ok_or_else(|| {
            Error::user(format!("-o {}: not a file name", file.display()))
                .hint("name a file: -o pod.yaml")
        })?;
    let dir = file
        .parent()
        .filter(|dir| !dir.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    let text = crate::emit::quadlet::unit::with_header(yaml);
    crate::ops::units::install(dir, &[(name, text)], force).await?;
    Ok(())
}

/// A `FILE|NAME` argument that is no file must be a name (podlab's one name validator):
/// it goes into Podman paths and into YAML.
fn file_or_name(name: &str, what: &str) -> Result<()> {
    crate::session::values::container_name(name)
        .map(drop)
        .map_err(|invalid| {
            Error::user(format!(
                "no file {name}, and no valid {what} name: {}",
                invalid.message
            ))
            .hint(format!(
                "give a YAML file that exists, or a {what} name: {}",
                invalid.hint
            ))
        })
}

/// Takes down the pods of `yaml`; the lines to print. Every pod it names that exists must
/// carry podlab's label, or nothing is changed.
pub async fn down<E: Engine>(engine: &E, yaml: &str) -> Result<String> {
    let Some(docs) = documents(yaml) else {
        return Err(Error::user("the YAML does not parse").hint(
            "give the file that podlab kube play was given, or a pod name from podman pod ps",
        ));
    };
    let names = pod_names(&docs);
    if names.is_empty() {
        return Err(
            Error::user("the YAML describes no pod (a Pod, Deployment, Job or DaemonSet)")
                .hint("give the file that podlab kube play was given"),
        );
    }
    let mut present: Vec<PodFacts> = Vec::new();
    for name in &names {
        let Some(pod) = engine.inspect_pod(name).await? else {
            continue;
        };
        if !pod.labels.contains_key(labels::PROJECT) {
            return Err(Error::user(format!(
                "pod {name} was not started by podlab: leaving everything as it is"
            ))
            .hint(format!(
                "podlab takes down only its own pods; podman pod rm {name} removes it, if you mean to"
            )));
        }
        present.push(pod);
    }
    if present.is_empty() {
        return Err(Error::user(format!(
            "nothing to take down: no pod named {} exists",
            names.join(", ")
        ))
        .hint("podman pod ps lists the pods; podlab ps the sessions"));
    }
    let report = engine.down_kube(yaml).await?;
    if !report.errors.is_empty() {
        return Err(Error::env(format!(
            "podman kube down failed: {}",
            report.errors.join("; ")
        ))
        .hint("check podman's own view: podman pod ps"));
    }
    let mut out = String::new();
    for pod in &present {
        let _ = writeln!(
            out,
            "removed pod {}: {}",
            pod.name,
            session_containers(pod).join(", ")
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::capabilities::PodmanVersion;
    use crate::engine::ImageFacts;
    use crate::engine::fake::FakeEngine;
    use crate::plan::UserNs;

    fn output(target: Target) -> Options {
        Options {
            target,
            kind: Kind::Pod,
            volume_mode: VolumeMode::Hostpath,
            pvc_size: "1Gi".into(),
            storage_class: None,
            runtime_class: None,
            gpu_count: None,
            gpus_per_node: None,
            scale: Scale::default(),
        }
    }

    fn session(project: &str, name: Option<&str>, gpus: GpuRequest) -> Session {
        let dir = tempfile::tempdir().unwrap();
        let project_dir = dir.path().join(project);
        std::fs::create_dir(&project_dir).unwrap();
        let mut session = crate::session::resolve(crate::session::Inputs {
            cwd: &project_dir,
            home: None,
            file: None,
            flags: Settings {
                image: Some(crate::session::ImageSetting::Name("localhost/img".into())),
                ..Settings::default()
            },
            preset: None,
            name: name.map(str::to_owned),
        })
        .unwrap();
        session.gpus = gpus;
        session
    }

    fn engine() -> FakeEngine {
        FakeEngine {
            images: BTreeMap::from([(
                "localhost/img".to_owned(),
                ImageFacts {
                    id: "sha".into(),
                    user: "1000:100".into(),
                    env: Vec::new(),
                },
            )]),
            ..FakeEngine::default()
        }
    }

    fn caps() -> Capabilities {
        Capabilities::for_version(PodmanVersion::new(5, 4, 2))
    }

    #[tokio::test]
    async fn l4_kube_generate_o_never_replaces_a_file_podlab_did_not_write() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pod.yaml");
        std::fs::write(&file, "mine: true\n").unwrap();
        let err = write_yaml(&file, "kind: Pod\n", true).await.unwrap_err();
        assert!(
            err.to_string().contains("was not written by podlab"),
            "{err}"
        );
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "mine: true\n");

        let ours = dir.path().join("ours.yaml");
        write_yaml(&ours, "kind: Pod\n", false).await.unwrap();
        let text = std::fs::read_to_string(&ours).unwrap();
        assert!(
            text.starts_with('#') && text.ends_with("kind: Pod\n"),
            "{text}"
        );
        write_yaml(&ours, "kind: Job\n", false).await.unwrap();
        std::fs::write(&ours, std::fs::read_to_string(&ours).unwrap() + "x: 1\n").unwrap();
        let err = write_yaml(&ours, "kind: Pod\n", false).await.unwrap_err();
        assert!(err.to_string().contains("was edited"), "{err}");
        write_yaml(&ours, "kind: Pod\n", true).await.unwrap();
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 2, "no lock or temporary file left");
    }

    #[tokio::test]
    async fn plans_name_user_and_gpu_count() {
        let session = session("2024-Exp", None, GpuRequest::None);
        let plan = plan_kube(&engine(), caps(), &session, &output(Target::Podman))
            .await
            .unwrap();
        assert_eq!(plan.name, "podlab-2024-exp");
        assert_eq!(
            plan.userns,
            UserNs::KeepIdTo {
                uid: 1000,
                gid: 100
            }
        );
        assert_eq!(plan.gpus, Gpus::None);

        let list = GpuRequest::List(vec![GpuSelector::Index(0), GpuSelector::Index(3)]);
        let session = self::session("lab", Some("Run_1"), list);
        let plan = plan_kube(&engine(), caps(), &session, &output(Target::Kubernetes))
            .await
            .unwrap();
        assert!(plan.name.starts_with("run-1-"), "{}", plan.name);
        assert_eq!(plan.gpus, Gpus::Count(2));

        let mut counted = output(Target::Kubernetes);
        counted.gpu_count = Some(4);
        let plan = plan_kube(&engine(), caps(), &session, &counted)
            .await
            .unwrap();
        assert_eq!(plan.gpus, Gpus::Count(4));
        counted.target = Target::Podman;
        let err = plan_kube(&engine(), caps(), &session, &counted)
            .await
            .unwrap_err();
        assert!(err.message().contains("--gpu-count"), "{err}");
    }

    fn multi_node(kind: Kind, nodes: u32) -> Options {
        Options {
            kind,
            volume_mode: VolumeMode::Pvc,
            gpus_per_node: Some(4),
            scale: Scale { nodes, queue: None },
            ..output(Target::Kubernetes)
        }
    }

    #[tokio::test]
    async fn host_path_on_a_multi_node_target_is_refused() {
        let session = session("lab", Some("train"), GpuRequest::All);
        let mut options = multi_node(Kind::Job, 2);
        options.volume_mode = VolumeMode::Hostpath;
        let err = plan_kube(&engine(), caps(), &session, &options)
            .await
            .unwrap_err();
        assert!(
            err.message().contains("cannot be mounted on a 2-node run"),
            "{err}"
        );
        assert!(err.hint_text().unwrap().contains("--volumes pvc"), "{err}");
        // One node keeps its host paths; a PVC per mount serves many.
        let single = Options {
            volume_mode: VolumeMode::Hostpath,
            ..multi_node(Kind::Job, 1)
        };
        assert!(
            plan_kube(&engine(), caps(), &session, &single)
                .await
                .is_ok()
        );
        assert!(
            plan_kube(&engine(), caps(), &session, &multi_node(Kind::Jobset, 2))
                .await
                .is_ok()
        );
    }

    #[tokio::test]
    async fn session_name_over_63_character_dns_names_is_refused() {
        // 60 characters: `<name>-1` (62) fits, `<name>-node-0-1` (69) does not.
        let name = format!("t{}", "x".repeat(59));
        let session = session("lab", Some(&name), GpuRequest::All);
        assert!(
            plan_kube(&engine(), caps(), &session, &multi_node(Kind::Job, 2))
                .await
                .is_ok()
        );
        let err = plan_kube(&engine(), caps(), &session, &multi_node(Kind::Jobset, 2))
            .await
            .unwrap_err();
        assert!(
            err.message().contains("pod host names of 69 characters"),
            "{err}"
        );
        assert_eq!(
            err.hint_text(),
            Some("pass --name with at most 54 characters")
        );
        // 1000 nodes: `<name>-999` (64).
        let err = plan_kube(&engine(), caps(), &session, &multi_node(Kind::Job, 1000))
            .await
            .unwrap_err();
        assert_eq!(
            err.hint_text(),
            Some("pass --name with at most 59 characters")
        );
    }

    #[tokio::test]
    async fn gpus_per_node_over_what_gpus_names_is_refused() {
        let two = GpuRequest::List(vec![GpuSelector::Index(0), GpuSelector::Index(1)]);
        let session = session("lab", Some("train"), two);
        let err = plan_kube(&engine(), caps(), &session, &multi_node(Kind::Job, 2))
            .await
            .unwrap_err();
        assert_eq!(
            err.message(),
            "--gpus-per-node 4 is more GPUs than --gpus names (2)"
        );
        let mut fits = multi_node(Kind::Job, 2);
        fits.gpus_per_node = Some(2);
        let plan = plan_kube(&engine(), caps(), &session, &fits).await.unwrap();
        assert_eq!(plan.gpus, Gpus::Count(2));
        let mut podman = output(Target::Podman);
        podman.gpus_per_node = Some(1);
        let err = plan_kube(&engine(), caps(), &session, &podman)
            .await
            .unwrap_err();
        assert!(
            err.message()
                .contains("--gpus-per-node is for --target kubernetes")
        );
    }

    #[tokio::test]
    async fn uuids_and_all_without_gpus_cannot_become_a_count() {
        let fixture = crate::gpu::fixtures::no_driver();
        let uuids = GpuRequest::List(vec![GpuSelector::Uuid("GPU-1234".into())]);
        let err = gpu_count(&uuids, &fixture.roots, None).unwrap_err();
        assert!(err.message().contains("cannot become a GPU count"), "{err}");
        assert!(err.hint_text().unwrap().contains("--gpu-count 1"));
        let err = gpu_count(&GpuRequest::All, &fixture.roots, None).unwrap_err();
        assert!(err.message().contains("no NVIDIA GPU"), "{err}");
        assert_eq!(
            gpu_count(&GpuRequest::Auto, &fixture.roots, None).unwrap(),
            Gpus::None
        );
        let gpus = crate::gpu::fixtures::debian_like();
        assert_eq!(
            gpu_count(&GpuRequest::All, &gpus.roots, None).unwrap(),
            Gpus::Count(2)
        );
    }

    #[test]
    fn old_podman_gets_inline_edits_for_the_planned_devices() {
        let fixture = crate::gpu::fixtures::debian_like();
        let edits = inline_edits(&fixture.roots, &["1".to_owned()]).unwrap();
        let nodes: Vec<&str> = edits.device_nodes.iter().map(|n| n.path.as_str()).collect();
        assert!(
            nodes.contains(&"/dev/nvidia1") && !nodes.contains(&"/dev/nvidia0"),
            "{nodes:?}"
        );
        assert!(nodes.contains(&"/dev/nvidiactl"), "{nodes:?}");
    }

    const YAML: &str = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: a\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: b\n---\nkind: Service\nmetadata:\n  name: b\n";

    fn pod(name: &str, podlab: bool) -> PodFacts {
        let mut labels = BTreeMap::new();
        if podlab {
            labels.insert(labels::PROJECT.to_owned(), "p".to_owned());
        }
        PodFacts {
            id: format!("{name}-id"),
            name: name.to_owned(),
            state: "Running".into(),
            labels,
            containers: vec![format!("{name}-infra"), format!("{name}-main")],
        }
    }

    #[test]
    fn pods_are_named_as_kube_play_names_them() {
        assert_eq!(pod_names(&documents(YAML).unwrap()), ["a", "b-pod"]);
        assert!(documents("kind: [").is_none());
    }

    #[tokio::test]
    async fn down_refuses_pods_podlab_did_not_start_and_changes_nothing() {
        let engine = FakeEngine {
            pods: BTreeMap::from([
                ("a".to_owned(), pod("a", true)),
                ("b-pod".to_owned(), pod("b-pod", false)),
            ]),
            ..FakeEngine::default()
        };
        let err = down(&engine, YAML).await.unwrap_err();
        assert!(
            err.message()
                .contains("pod b-pod was not started by podlab"),
            "{err}"
        );
        assert!(
            !engine
                .calls()
                .iter()
                .any(|call| call.starts_with("down-kube"))
        );

        let engine = FakeEngine {
            pods: BTreeMap::from([("a".to_owned(), pod("a", true))]),
            ..FakeEngine::default()
        };
        let out = down(&engine, YAML).await.unwrap();
        assert_eq!(out, "removed pod a: a-main\n");
        assert!(
            engine
                .calls()
                .iter()
                .any(|call| call.starts_with("down-kube"))
        );

        let err = down(&FakeEngine::default(), YAML).await.unwrap_err();
        assert!(err.message().starts_with("nothing to take down"), "{err}");
        let err = down(&FakeEngine::default(), "kind: Service\n")
            .await
            .unwrap_err();
        assert!(err.message().contains("describes no pod"), "{err}");
    }

    #[tokio::test]
    async fn play_refuses_existing_pods_before_changing_anything() {
        let engine = FakeEngine {
            pods: BTreeMap::from([("b-pod".to_owned(), pod("b-pod", true))]),
            ..FakeEngine::default()
        };
        let err = play(&engine, YAML).await.unwrap_err();
        assert_eq!(err.message(), "pod b-pod already exists");
        assert!(
            !engine
                .calls()
                .iter()
                .any(|call| call.starts_with("play-kube"))
        );
        let out = play(&FakeEngine::default(), YAML).await.unwrap();
        assert_eq!(out, "");
    }

    #[tokio::test]
    async fn down_by_pod_name_finds_a_deployments_pod() {
        let engine = FakeEngine {
            pods: BTreeMap::from([("nb-pod".to_owned(), pod("nb-pod", true))]),
            ..FakeEngine::default()
        };
        let yaml = pod_yaml(&engine, "nb").await.unwrap();
        assert_eq!(pod_names(&documents(&yaml).unwrap()), ["nb-pod"]);
        assert!(pod_yaml(&engine, "zz").await.is_err());
    }
}
