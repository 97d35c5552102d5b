//! Kubernetes YAML for a session, in two flavors from one model.
//!
//! `podman kube play` and a real cluster read the same object types but disagree on what
//! matters for a GPU session: Podman takes GPUs as CDI names used as `resources.limits` keys
//! (5.4+) or as `podman.io/device=` keys, maps the user with a Podman annotation, and
//! publishes only `hostPort`s; a cluster takes `nvidia.com/gpu: N` from the NVIDIA device
//! plugin, maps the user with a `securityContext`, reaches ports through a Service, and its
//! API server rejects a resource name with `=`. So one YAML cannot serve both (see the field
//! notes): [`Target`] picks the flavor, and both come from the same [`Session`].
//!
//! Like the other emitters this one only serializes. The CLI resolves the session and plans
//! it on this host (image user, GPUs, names) into a [`KubePlan`]; [`generate`] turns both into
//! `k8s-openapi` objects and YAML through [`crate::host::yaml`], which quotes ambiguous scalars
//! (`kube play` was seen turning a bare `2024-01-01` into a timestamp). Output is
//! deterministic, so the reference files in `quadlets/` double as golden files.
//!
//! Schema validation (`kubernetes-validate`) misses rules the API server enforces, such as
//! qualified resource names and 63-character label values: [`check_kubernetes`] checks those
//! on every Kubernetes-flavor object before it is printed.
//!
//! Multi-node training ([`Scale`]): an Indexed Job of N pods with a headless Service as their
//! `subdomain`, or a JobSet ([`crate::emit::jobset`]), each pod given torchrun's `PET_*`
//! environment (the rank from the Job's completion index through the downward API, pod 0's
//! DNS name as the master) so that a plain `torchrun train.py` finds the others.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::Path;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec, DeploymentStrategy};
use k8s_openapi::api::batch::v1::{Job, JobSpec, JobTemplateSpec};
use k8s_openapi::api::core::v1::{
    Container, ContainerPort, EmptyDirVolumeSource, EnvVar, EnvVarSource, HostPathVolumeSource,
    ObjectFieldSelector, PersistentVolumeClaim, PersistentVolumeClaimSpec,
    PersistentVolumeClaimVolumeSource, Pod, PodSecurityContext, PodSpec, PodTemplateSpec,
    ResourceRequirements, SELinuxOptions, SecretKeySelector, SecurityContext, Service, ServicePort,
    ServiceSpec, Toleration, Volume, VolumeMount, VolumeResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::capabilities::{Capabilities, Feature};
use crate::cdi::spec::ContainerEdits;
use crate::emit::jobset::{self, JobSet};
use crate::emit::kube_escape;
use crate::emit::podman::{labels, port_text};
use crate::plan::UserNs;
use crate::session::{ImageSource, Port, Protocol, Session};
use crate::{Error, Result};

/// The annotation `podman kube play` reads for the user namespace (5.0+). It must sit on the
/// top-level object's metadata: on a Job's or Deployment's pod template Podman ignores it
/// (seen on 5.4.2).
pub const USERNS_ANNOTATION: &str = "io.podman.annotations.userns";
/// The `resources.limits` key prefix that `kube play` turns into `--device`.
pub const DEVICE_KEY_PREFIX: &str = "podman.io/device=";
/// The NVIDIA device plugin's resource.
pub const GPU_RESOURCE: &str = "nvidia.com/gpu";
/// The recommended label naming the workload; Deployments and Services select on it.
pub const NAME_LABEL: &str = "app.kubernetes.io/name";
/// The recommended label naming the tool that manages an object.
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
/// The value of [`MANAGED_BY_LABEL`] on everything podlab generates.
pub const MANAGER: &str = "podlab";
/// The value of `io.podlab.kind` on kube sessions (`podlab ps` shows it).
pub const SESSION_KIND: &str = "kube";
/// The session's container in the pod; Podman names it `<pod>-main`.
pub const CONTAINER_NAME: &str = "main";
/// The label Kueue admits a workload by (its LocalQueue).
pub const QUEUE_LABEL: &str = "kueue.x-k8s.io/queue-name";
/// The annotation an Indexed Job sets on each pod: its index, torchrun's node rank.
pub const COMPLETION_INDEX_ANNOTATION: &str = "batch.kubernetes.io/job-completion-index";
/// torchrun's default rendezvous port on the master (rank 0).
pub const MASTER_PORT: u16 = 29500;
/// The one replicated job of a JobSet: its pods are `<jobset>-node-0-<rank>`.
pub const REPLICATED_JOB: &str = "node";

/// Which reader the YAML is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Target {
    /// podman kube play, rootless, on this host.
    #[default]
    Podman,
    /// A Kubernetes cluster with the NVIDIA device plugin.
    Kubernetes,
}

/// The workload object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Kind {
    /// A bare Pod: a dev session.
    #[default]
    Pod,
    /// A Job that runs the command once (batch training).
    Job,
    /// A Deployment of one replica (a notebook), plus a Service for its ports on a cluster.
    Deployment,
    /// A JobSet (jobset.x-k8s.io/v1alpha2) of --nodes pods: multi-node training on a cluster
    /// that runs the JobSet controller.
    Jobset,
}

/// How many pods run one training together, and the queue that admits them (Kubernetes
/// flavor; a Job with more than one node, or a JobSet).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scale {
    /// The pods (one per node) that run the command together; 1: a single pod.
    pub nodes: u32,
    /// Kueue's LocalQueue, as the [`QUEUE_LABEL`] label.
    pub queue: Option<String>,
}

impl Default for Scale {
    fn default() -> Self {
        Self {
            nodes: 1,
            queue: None,
        }
    }
}

/// Where the session's mounts come from on a cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum VolumeMode {
    /// hostPath volumes at the same host paths (single-node clusters, shared file systems).
    #[default]
    Hostpath,
    /// One PersistentVolumeClaim per mount.
    Pvc,
}

/// How GPUs appear in the YAML, as planned for the target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Gpus {
    None,
    /// Podman flavor, 5.4+: qualified CDI names (`nvidia.com/gpu=all`) as limits keys,
    /// resolved by Podman from a spec it reads.
    CdiNames(Vec<String>),
    /// Podman flavor without a usable spec (or before 5.4): the spec's edits themselves, as
    /// `podman.io/device=` keys, read-only `hostPath` library mounts and env.
    Inline(ContainerEdits),
    /// Kubernetes flavor: a count for the device plugin.
    Count(u32),
}

/// Everything the YAML needs beyond the session: the host decisions and the output choices.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubePlan {
    /// The workload's name, already valid (see [`kube_name`]).
    pub name: String,
    pub target: Target,
    pub kind: Kind,
    /// What the target Podman can do (podman flavor).
    pub caps: Capabilities,
    pub gpus: Gpus,
    /// The device names for the `io.podlab.gpus` label (`all`, `0,1`); empty: none.
    pub gpu_names: Vec<String>,
    /// The host user mapped onto the image's user: the userns annotation (podman) or the
    /// `securityContext` ids (kubernetes, `KeepIdTo` only).
    pub userns: UserNs,
    pub volumes: VolumeMode,
    /// The size each PVC requests, a Kubernetes quantity (`100Gi`).
    pub pvc_size: String,
    pub storage_class: Option<String>,
    pub runtime_class: Option<String>,
    /// GPUs on an SELinux-enforcing host: the podman flavor runs the container as `spc_t`,
    /// which is what `--security-opt label=disable` does, since the driver's files and device
    /// nodes carry host labels a confined container may not use.
    pub label_disable: bool,
    /// Nodes and queue (Kubernetes flavor).
    pub scale: Scale,
}

impl KubePlan {
    /// Whether the pods form one multi-node run: torchrun's environment, a stable DNS name
    /// per pod, GPU tolerations.
    pub fn multi_node(&self) -> bool {
        self.target == Target::Kubernetes
            && (self.kind == Kind::Jobset || (self.kind == Kind::Job && self.scale.nodes > 1))
    }
}

/// The host name of the pod of rank `rank`: `<job>-<rank>` for an Indexed Job,
/// `<jobset>-node-0-<rank>` for a JobSet (a DNS label: at most 63 characters).
pub fn pod_hostname(plan: &KubePlan, rank: u32) -> String {
    match plan.kind {
        Kind::Jobset => format!("{}-{REPLICATED_JOB}-0-{rank}", plan.name),
        _ => format!("{}-{rank}", plan.name),
    }
}

/// torchrun's master: pod 0 by its DNS name under the workload's headless Service (the
/// pods' `subdomain`, named after the workload), resolved through the namespace's search
/// path.
pub fn master_addr(plan: &KubePlan) -> String {
    format!("{}.{}", pod_hostname(plan, 0), plan.name)
}

/// The YAML, and what the user should know about it (printed as warnings).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Generated {
    pub yaml: String,
    pub notices: Vec<String>,
}

/// One top-level object, in document order.
#[derive(Debug, Clone)]
enum Object {
    Claim(Box<PersistentVolumeClaim>),
    Pod(Box<Pod>),
    Job(Box<Job>),
    Deployment(Box<Deployment>),
    Service(Box<Service>),
    JobSet(Box<JobSet>),
}

impl Object {
    fn yaml(&self) -> Result<String> {
        match self {
            Self::Claim(object) => crate::host::yaml::to_string(object),
            Self::Pod(object) => crate::host::yaml::to_string(object),
            Self::Job(object) => crate::host::yaml::to_string(object),
            Self::Deployment(object) => crate::host::yaml::to_string(object),
            Self::Service(object) => crate::host::yaml::to_string(object),
            Self::JobSet(object) => crate::host::yaml::to_string(object),
        }
    }

    fn json(&self) -> Result<Value> {
        match self {
            Self::Claim(object) => serde_json::to_value(object),
            Self::Pod(object) => serde_json::to_value(object),
            Self::Job(object) => serde_json::to_value(object),
            Self::Deployment(object) => serde_json::to_value(object),
            Self::Service(object) => serde_json::to_value(object),
            Self::JobSet(object) => serde_json::to_value(object),
        }
        .map_err(|err| Error::env(format!("cannot encode a Kubernetes object: {err}")))
    }
}

/// The YAML for `session` as planned: documents separated by `---`, PVCs first, then the
/// workload, then its Service.
pub fn generate(session: &Session, plan: &KubePlan) -> Result<Generated> {
    check_plan(plan)?;
    let mut notices = Vec::new();
    let objects = objects(session, plan, &mut notices)?;
    let mut yaml = String::new();
    for (index, object) in objects.iter().enumerate() {
        if plan.target == Target::Kubernetes {
            let problems = check_kubernetes(&object.json()?);
            if !problems.is_empty() {
                return Err(Error::env(format!(
                    "podlab generated Kubernetes YAML that a cluster would reject: {}",
                    problems.join("; ")
                ))
                .hint("this is a podlab bug: please report it with the command line"));
            }
        }
        if index > 0 {
            yaml.push_str("---\n");
        }
        yaml.push_str(&object.yaml()?);
    }
    Ok(Generated { yaml, notices })
}

/// Refuses plans that mix the flavors: each GPU form and option belongs to one target.
fn check_plan(plan: &KubePlan) -> Result<()> {
    let podman = plan.target == Target::Podman;
    match &plan.gpus {
        Gpus::CdiNames(_) | Gpus::Inline(_) if !podman => {
            return Err(Error::env(
                "CDI devices cannot go into Kubernetes-flavor YAML: a cluster counts GPUs",
            )
            .hint("this is a podlab bug: please report it with the command line"));
        }
        Gpus::Count(_) if podman => {
            return Err(Error::env(
                "a GPU count cannot go into podman-flavor YAML: podman ignores nvidia.com/gpu",
            )
            .hint("this is a podlab bug: please report it with the command line"));
        }
        Gpus::CdiNames(_) => plan.caps.require(Feature::KubeCdiLimits)?,
        _ => {}
    }
    if podman && plan.volumes == VolumeMode::Pvc {
        return Err(
            Error::user("--volumes pvc is for --target kubernetes").hint(
                "podman kube play mounts the host paths themselves: drop --volumes, or add --target kubernetes",
            ),
        );
    }
    if podman && plan.runtime_class.is_some() {
        return Err(Error::user(
            "--runtime-class is for --target kubernetes: podman ignores runtimeClassName",
        )
        .hint("drop --runtime-class, or add --target kubernetes"));
    }
    check_scale(plan)
}

/// Refuses node counts and queues that the target or the kind cannot carry.
fn check_scale(plan: &KubePlan) -> Result<()> {
    let Scale { nodes, queue } = &plan.scale;
    if *nodes == 0 {
        return Err(
            Error::user("--nodes 0: a training run needs at least one node")
                .hint("pass --nodes 1 for one pod, or the number of machines to train on"),
        );
    }
    if plan.target == Target::Podman {
        if plan.kind == Kind::Jobset {
            return Err(Error::user(
                "--kind jobset is for --target kubernetes: podman kube play knows no JobSet",
            )
            .hint("add --target kubernetes, or use --kind job for kube play"));
        }
        if *nodes > 1 {
            return Err(Error::user(format!(
                "--nodes {nodes} is for --target kubernetes: podman kube play starts one pod of a Job and ignores its completions"
            ))
            .hint("add --target kubernetes (or write a Slurm job: podlab slurm generate --nodes N)"));
        }
        if queue.is_some() {
            return Err(Error::user(
                "--queue is for --target kubernetes: it names a Kueue LocalQueue of a cluster",
            )
            .hint("drop --queue, or add --target kubernetes"));
        }
    }
    if *nodes > 1 && !matches!(plan.kind, Kind::Job | Kind::Jobset) {
        return Err(Error::user(format!(
            "--nodes {nodes} needs --kind job or --kind jobset: a {} runs one pod",
            match plan.kind {
                Kind::Deployment => "deployment",
                _ => "pod",
            }
        ))
        .hint("add --kind job (an Indexed Job) or --kind jobset"));
    }
    if queue.is_some() && !matches!(plan.kind, Kind::Job | Kind::Jobset) {
        return Err(Error::user(
            "--queue needs --kind job or --kind jobset: Kueue admits batch workloads here",
        )
        .hint("add --kind job, or drop --queue"));
    }
    Ok(())
}

/// The parts of the pod gathered from the session and the GPU plan.
#[derive(Debug, Default)]
struct Parts {
    names: VolumeNames,
    volumes: Vec<Volume>,
    mounts: Vec<VolumeMount>,
    claims: Vec<Object>,
    env: BTreeMap<String, String>,
    limits: BTreeMap<String, Quantity>,
    supplemental_groups: Vec<i64>,
}

impl Parts {
    /// The session's mounts: `hostPath` volumes, or one claim each (kubernetes, `pvc`).
    fn session_mounts(
        &mut self,
        session: &Session,
        plan: &KubePlan,
        labels: &BTreeMap<String, String>,
    ) -> Result<()> {
        let pvc = plan.target == Target::Kubernetes && plan.volumes == VolumeMode::Pvc;
        for mount in &session.mounts {
            let volume = self
                .names
                .take(&volume_base(&mount.container), &mount.container);
            self.mounts.push(VolumeMount {
                name: volume.clone(),
                mount_path: mount.container.clone(),
                read_only: mount.read_only.then_some(true),
                ..VolumeMount::default()
            });
            if pvc {
                let claim = format!("{}-{volume}", plan.name);
                self.volumes.push(Volume {
                    name: volume,
                    persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                        claim_name: claim.clone(),
                        read_only: mount.read_only.then_some(true),
                    }),
                    ..Volume::default()
                });
                self.claims
                    .push(Object::Claim(Box::new(claim_object(&claim, labels, plan))));
            } else {
                self.volumes
                    .push(host_path(volume, host_text(&mount.host)?));
            }
        }
        Ok(())
    }

    /// `/dev/shm` as a memory-backed `emptyDir` of the session's size (a tmpfs for Podman
    /// 5.0+, which ignores `sizeLimit`; a cluster enforces it).
    fn shm(&mut self, session: &Session) {
        let shm = self.names.take("dshm", "/dev/shm");
        self.mounts.push(VolumeMount {
            name: shm.clone(),
            mount_path: "/dev/shm".to_owned(),
            ..VolumeMount::default()
        });
        self.volumes.push(Volume {
            name: shm,
            empty_dir: Some(EmptyDirVolumeSource {
                medium: Some("Memory".to_owned()),
                size_limit: Some(quantity(session.shm_size.0)),
            }),
            ..Volume::default()
        });
    }

    fn gpus(&mut self, gpus: &Gpus, notices: &mut Vec<String>) {
        match gpus {
            Gpus::None | Gpus::Count(0) => {}
            Gpus::CdiNames(qualified) => {
                self.limits
                    .extend(qualified.iter().map(|name| (name.clone(), one())));
            }
            Gpus::Inline(edits) => self.inline(edits, notices),
            Gpus::Count(count) => {
                self.limits
                    .insert(GPU_RESOURCE.to_owned(), Quantity(count.to_string()));
            }
        }
    }

    /// CDI edits as kube play takes them: `podman.io/device=` keys, read-only `hostPath`
    /// mounts, env and supplemental groups.
    fn inline(&mut self, edits: &ContainerEdits, notices: &mut Vec<String>) {
        for node in &edits.device_nodes {
            let device = match &node.host_path {
                Some(host) if host != &node.path => format!("{host}:{}", node.path),
                _ => node.path.clone(),
            };
            self.limits
                .insert(format!("{DEVICE_KEY_PREFIX}{device}"), one());
        }
        for mount in &edits.mounts {
            let file = mount.container_path.rsplit('/').next().unwrap_or_default();
            let volume = self
                .names
                .take(&volume_base(&format!("gpu-{file}")), &mount.container_path);
            self.mounts.push(VolumeMount {
                name: volume.clone(),
                mount_path: mount.container_path.clone(),
                read_only: Some(true),
                ..VolumeMount::default()
            });
            self.volumes
                .push(host_path(volume, mount.host_path.clone()));
        }
        self.env.extend(edits.env.iter().filter_map(|entry| {
            entry
                .split_once('=')
                .map(|(key, value)| (key.to_owned(), value.to_owned()))
        }));
        self.supplemental_groups
            .extend(edits.additional_gids.iter().map(|gid| i64::from(*gid)));
        if !edits.hooks.is_empty() {
            notices.push(format!(
                "{} CDI hooks left out: kube play cannot run them (podlab's own specs need none)",
                edits.hooks.len()
            ));
        }
    }
}

/// The session's env secrets: for a cluster, each from the key of the same name in a
/// Kubernetes Secret named after the Podman secret (which the cluster must hold); `kube play`
/// reads `secretKeyRef` only from Kubernetes Secrets it stored itself, never from a plain
/// Podman secret, so there each is left out and named.
fn secret_env(session: &Session, target: Target, notices: &mut Vec<String>) -> Vec<EnvVar> {
    match target {
        Target::Kubernetes => session
            .secrets
            .iter()
            .map(|secret| {
                notices.push(format!(
                    "env {} comes from key {} of the Secret {}: create it in the cluster (kubectl create secret generic {} --from-literal={}=VALUE)",
                    secret.target, secret.target, secret.name, secret.name, secret.target
                ));
                EnvVar {
                    name: secret.target.clone(),
                    value: None,
                    value_from: Some(EnvVarSource {
                        secret_key_ref: Some(SecretKeySelector {
                            name: secret.name.clone(),
                            key: secret.target.clone(),
                            optional: None,
                        }),
                        ..EnvVarSource::default()
                    }),
                }
            })
            .collect(),
        Target::Podman => {
            notices.extend(session.secrets.iter().map(|secret| {
                format!(
                    "env {} (the podman secret {}) left out: kube play reads secrets only from Kubernetes Secrets it stored; set it yourself (podman kube play takes a Secret YAML), or use podlab quadlet generate, which carries it",
                    secret.target, secret.name
                )
            }));
            Vec::new()
        }
    }
}

fn objects(session: &Session, plan: &KubePlan, notices: &mut Vec<String>) -> Result<Vec<Object>> {
    let labels = object_labels(session, plan);
    let podman = plan.target == Target::Podman;
    let mut parts = Parts::default();
    parts.session_mounts(session, plan, &labels)?;
    if !parts.claims.is_empty() {
        notices.push(format!(
            "the PersistentVolumeClaims ({}) start empty: copy the project and data sets into them before the session needs them",
            parts.claims.len()
        ));
    }
    parts.shm(session);
    parts.gpus(&plan.gpus, notices);
    if podman && plan.userns == UserNs::KeepId && !session.env.contains_key("HOME") {
        // As `podlab run` does: with plain keep-id and no user of its own in the image, HOME
        // would be the working dir, and tools would litter the project with dot files.
        parts.env.insert("HOME".to_owned(), "/tmp".to_owned());
    }
    let multi = plan.multi_node();
    if multi {
        parts.env.extend(torchrun_env(plan));
    }
    parts.env.extend(session.env.clone());
    let Parts {
        volumes,
        mounts,
        mut claims,
        env,
        limits,
        supplemental_groups,
        ..
    } = parts;

    let container = Container {
        name: CONTAINER_NAME.to_owned(),
        image: Some(session.image.reference().to_owned()),
        args: (!session.command.is_empty()).then(|| kube_escape::all_dollars(&session.command)),
        working_dir: Some(session.workdir.clone()),
        env: {
            let mut vars = container_env(env, multi, plan.target).unwrap_or_default();
            vars.extend(secret_env(session, plan.target, notices));
            (!vars.is_empty()).then_some(vars)
        },
        ports: container_ports(&session.ports, plan.target),
        resources: (!limits.is_empty()).then(|| ResourceRequirements {
            limits: Some(limits),
            ..ResourceRequirements::default()
        }),
        volume_mounts: Some(mounts),
        security_context: (podman && plan.label_disable).then(|| SecurityContext {
            se_linux_options: Some(SELinuxOptions {
                type_: Some("spc_t".to_owned()),
                ..SELinuxOptions::default()
            }),
            ..SecurityContext::default()
        }),
        ..Container::default()
    };
    let (annotations, security_context) = if podman {
        podman_user(plan, supplemental_groups, notices)
    } else {
        kubernetes_notices(session, plan, notices);
        (BTreeMap::new(), kubernetes_user(plan.userns))
    };
    let gpus = matches!(plan.gpus, Gpus::Count(count) if count > 0);
    let spec = PodSpec {
        containers: vec![container],
        volumes: Some(volumes),
        security_context,
        runtime_class_name: plan.runtime_class.clone().filter(|_| !podman),
        restart_policy: matches!(plan.kind, Kind::Job | Kind::Jobset).then(|| "Never".to_owned()),
        // The Indexed Job's pods become `<job>-<index>.<service>`; JobSet sets its own.
        subdomain: (multi && plan.kind == Kind::Job).then(|| plan.name.clone()),
        // GPU nodes are commonly tainted nvidia.com/gpu so that only GPU pods land there.
        tolerations: (multi && gpus).then(|| {
            vec![Toleration {
                key: Some(GPU_RESOURCE.to_owned()),
                operator: Some("Exists".to_owned()),
                effect: Some("NoSchedule".to_owned()),
                ..Toleration::default()
            }]
        }),
        ..PodSpec::default()
    };
    let mut workload_labels = labels.clone();
    if let Some(queue) = &plan.scale.queue {
        workload_labels.insert(QUEUE_LABEL.to_owned(), queue.clone());
    }
    if multi && plan.volumes == VolumeMode::Pvc && !session.mounts.is_empty() {
        notices.push(format!(
            "the {} pods share each claim from different nodes: the storage class must offer ReadWriteMany (NFS, CephFS, ...)",
            plan.scale.nodes
        ));
    }
    let metadata = ObjectMeta {
        name: Some(plan.name.clone()),
        labels: Some(workload_labels),
        annotations: (!annotations.is_empty()).then_some(annotations),
        ..ObjectMeta::default()
    };
    let mut objects = Vec::new();
    objects.append(&mut claims);
    objects.extend(workload(session, plan, metadata, spec, &labels));
    Ok(objects)
}

/// The userns annotation (5.0+) and the CDI edits' supplemental groups, for kube play.
fn podman_user(
    plan: &KubePlan,
    supplemental_groups: Vec<i64>,
    notices: &mut Vec<String>,
) -> (BTreeMap<String, String>, Option<PodSecurityContext>) {
    let mut annotations = BTreeMap::new();
    if plan.caps.has(Feature::KubeUsernsAnnotation) {
        annotations.insert(USERNS_ANNOTATION.to_owned(), userns_value(plan.userns));
    } else {
        notices.push(format!(
            "podman {} ignores {USERNS_ANNOTATION} (it needs {}): the container runs as root, which is your user on the host",
            plan.caps.version(),
            Feature::KubeUsernsAnnotation.since()
        ));
    }
    let security = (!supplemental_groups.is_empty()).then(|| PodSecurityContext {
        supplemental_groups: Some(supplemental_groups),
        ..PodSecurityContext::default()
    });
    (annotations, security)
}

/// The image's user as the pod's user and group; `fsGroup` makes volumes writable by it.
fn kubernetes_user(userns: UserNs) -> Option<PodSecurityContext> {
    match userns {
        UserNs::KeepIdTo { uid, gid } => Some(PodSecurityContext {
            run_as_user: Some(i64::from(uid)),
            run_as_group: Some(i64::from(gid)),
            fs_group: Some(i64::from(gid)),
            ..PodSecurityContext::default()
        }),
        UserNs::KeepId => None,
    }
}

/// torchrun's environment for a multi-node run (it reads `PET_<FLAG>` for each flag): all
/// but the node rank, which [`container_env`] takes from the pod's completion index.
fn torchrun_env(plan: &KubePlan) -> BTreeMap<String, String> {
    let per_node = match plan.gpus {
        Gpus::Count(count) if count > 0 => count,
        // No GPUs: one process per node (gloo on the CPUs).
        _ => 1,
    };
    BTreeMap::from([
        ("PET_NNODES".to_owned(), plan.scale.nodes.to_string()),
        ("PET_NPROC_PER_NODE".to_owned(), per_node.to_string()),
        ("PET_MASTER_ADDR".to_owned(), master_addr(plan)),
        ("PET_MASTER_PORT".to_owned(), MASTER_PORT.to_string()),
    ])
}

/// The container's env in name order; a multi-node pod's `PET_NODE_RANK` comes from its
/// completion index (downward API), unless the session sets it.
fn container_env(
    env: BTreeMap<String, String>,
    multi: bool,
    target: Target,
) -> Option<Vec<EnvVar>> {
    let rank = (multi && !env.contains_key("PET_NODE_RANK")).then(|| EnvVar {
        name: "PET_NODE_RANK".to_owned(),
        value: None,
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                api_version: None,
                field_path: format!("metadata.annotations['{COMPLETION_INDEX_ANNOTATION}']"),
            }),
            ..EnvVarSource::default()
        }),
    });
    let mut out: Vec<EnvVar> = env
        .into_iter()
        .map(|(name, value)| EnvVar {
            name,
            value: Some(kube_escape::env_value(&value, target)),
            value_from: None,
        })
        .collect();
    if let Some(rank) = rank {
        let at = out.partition_point(|var| var.name.as_str() < rank.name.as_str());
        out.insert(at, rank);
    }
    (!out.is_empty()).then_some(out)
}

/// The workload object around the pod spec, and a Deployment's Service on a cluster.
fn workload(
    session: &Session,
    plan: &KubePlan,
    metadata: ObjectMeta,
    spec: PodSpec,
    labels: &BTreeMap<String, String>,
) -> Vec<Object> {
    let podman = plan.target == Target::Podman;
    let template = |spec: PodSpec| PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some(labels.clone()),
            ..ObjectMeta::default()
        }),
        spec: Some(spec),
    };
    match plan.kind {
        Kind::Pod => vec![Object::Pod(Box::new(Pod {
            metadata,
            spec: Some(spec),
            status: None,
        }))],
        Kind::Job if plan.multi_node() => {
            let nodes = i32::try_from(plan.scale.nodes).unwrap_or(i32::MAX);
            vec![
                Object::Job(Box::new(Job {
                    metadata,
                    spec: Some(indexed_job(nodes, template(spec))),
                    status: None,
                })),
                Object::Service(Box::new(headless_service(plan, labels))),
            ]
        }
        Kind::Job => vec![Object::Job(Box::new(Job {
            metadata,
            spec: Some(JobSpec {
                backoff_limit: Some(0),
                template: template(spec),
                ..JobSpec::default()
            }),
            status: None,
        }))],
        Kind::Jobset => {
            let nodes = i32::try_from(plan.scale.nodes).unwrap_or(i32::MAX);
            vec![Object::JobSet(Box::new(jobset::jobset(
                metadata,
                &plan.name,
                REPLICATED_JOB,
                JobTemplateSpec {
                    metadata: Some(ObjectMeta {
                        labels: Some(labels.clone()),
                        ..ObjectMeta::default()
                    }),
                    spec: Some(indexed_job(nodes, template(spec))),
                },
            )))]
        }
        Kind::Deployment => {
            let mut objects = vec![Object::Deployment(Box::new(Deployment {
                metadata,
                spec: Some(DeploymentSpec {
                    replicas: Some(1),
                    selector: selector(plan),
                    // A GPU or a ReadWriteOnce claim cannot be held by two pods at once.
                    strategy: (!podman).then(|| DeploymentStrategy {
                        type_: Some("Recreate".to_owned()),
                        rolling_update: None,
                    }),
                    template: template(spec),
                    ..DeploymentSpec::default()
                }),
                status: None,
            }))];
            if !podman {
                objects.extend(
                    service(session, plan, labels)
                        .map(|service| Object::Service(Box::new(service))),
                );
            }
            objects
        }
    }
}

/// `nodes` pods that run together, one per completion index (the rank).
///
/// `backoffLimit: 0` on purpose: torchrun's ranks rendezvous once, at the start; when one pod
/// fails the others fail or hang in their collectives, and a lone replacement pod cannot join
/// a run that is over. So the first failed pod fails the whole Job (and with it a JobSet, which
/// restarts all pods together only when asked to), instead of retrying one rank in vain.
fn indexed_job(nodes: i32, template: PodTemplateSpec) -> JobSpec {
    JobSpec {
        completion_mode: Some("Indexed".to_owned()),
        completions: Some(nodes),
        parallelism: Some(nodes),
        backoff_limit: Some(0),
        template,
        ..JobSpec::default()
    }
}

/// The headless Service that gives each pod of an Indexed Job its DNS name
/// (`<job>-<index>.<service>`); not-ready addresses are published so that ranks find the
/// master while it starts.
fn headless_service(plan: &KubePlan, labels: &BTreeMap<String, String>) -> Service {
    Service {
        metadata: ObjectMeta {
            name: Some(plan.name.clone()),
            labels: Some(labels.clone()),
            ..ObjectMeta::default()
        },
        spec: Some(ServiceSpec {
            cluster_ip: Some("None".to_owned()),
            selector: selector(plan).match_labels,
            publish_not_ready_addresses: Some(true),
            ..ServiceSpec::default()
        }),
        status: None,
    }
}

/// Warnings that only a cluster user needs.
fn kubernetes_notices(session: &Session, plan: &KubePlan, notices: &mut Vec<String>) {
    let image = session.image.reference();
    if matches!(session.image, ImageSource::Build { .. }) || image.starts_with("localhost/") {
        notices.push(format!(
            "image {image} exists only on this host: push it to a registry the cluster can pull from, and change image: to match"
        ));
    }
    if plan.userns == UserNs::KeepId {
        notices.push(
            "no securityContext: the image has no non-root user to run as (map one with --user-map UID:GID)"
                .to_owned(),
        );
    }
    if !session.ports.is_empty() && plan.kind != Kind::Deployment {
        notices.push(
            "a cluster publishes no host ports: reach them with kubectl port-forward, or use --kind deployment for a Service"
                .to_owned(),
        );
    }
}

/// The labels of every object: the workload's name, the manager, and podlab's own labels
/// (those with values a cluster accepts, in the Kubernetes flavor).
fn object_labels(session: &Session, plan: &KubePlan) -> BTreeMap<String, String> {
    let mut map = BTreeMap::from([
        (NAME_LABEL.to_owned(), plan.name.clone()),
        (MANAGED_BY_LABEL.to_owned(), MANAGER.to_owned()),
        (labels::PROJECT.to_owned(), label_value(&session.project)),
        (labels::KIND.to_owned(), SESSION_KIND.to_owned()),
    ]);
    match plan.target {
        Target::Podman => {
            // Podman copies these onto the pod's containers, where `podlab ps` reads them as
            // it reads `podlab run`'s; Podman does not hold label values to Kubernetes rules.
            let gpus = if plan.gpu_names.is_empty() {
                "none".to_owned()
            } else {
                plan.gpu_names.join(",")
            };
            map.insert(labels::GPUS.to_owned(), gpus);
            let ports: Vec<String> = session.ports.iter().map(port_text).collect();
            map.insert(labels::PORTS.to_owned(), ports.join(","));
            if let Some(preset) = &session.preset {
                map.insert(labels::PRESET.to_owned(), preset.clone());
            }
        }
        Target::Kubernetes => {
            if let Some(preset) = &session.preset {
                map.insert(labels::PRESET.to_owned(), label_value(preset));
            }
        }
    }
    map
}

fn selector(plan: &KubePlan) -> LabelSelector {
    LabelSelector {
        match_labels: Some(BTreeMap::from([(NAME_LABEL.to_owned(), plan.name.clone())])),
        match_expressions: None,
    }
}

/// `keep-id` or `keep-id:uid=U,gid=G`.
fn userns_value(userns: UserNs) -> String {
    match userns {
        UserNs::KeepId => "keep-id".to_owned(),
        UserNs::KeepIdTo { uid, gid } => format!("keep-id:uid={uid},gid={gid}"),
    }
}

fn protocol(port: &Port) -> &'static str {
    match port.protocol {
        Protocol::Tcp => "TCP",
        Protocol::Udp => "UDP",
    }
}

/// `tcp-8888`: a port name (at most 15 characters, with a letter).
fn port_name(port: &Port) -> String {
    format!(
        "{}-{}",
        protocol(port).to_ascii_lowercase(),
        port.container_port
    )
}

/// Podman: every binding, with its host port and address. Kubernetes: each container port
/// once, named (a cluster publishes no host ports).
fn container_ports(ports: &[Port], target: Target) -> Option<Vec<ContainerPort>> {
    let mut out: Vec<ContainerPort> = Vec::new();
    for port in ports {
        let entry = match target {
            Target::Podman => ContainerPort {
                container_port: i32::from(port.container_port),
                host_port: Some(i32::from(port.host_port)),
                host_ip: Some(port.host_ip.to_string()),
                protocol: Some(protocol(port).to_owned()),
                name: None,
            },
            Target::Kubernetes => ContainerPort {
                container_port: i32::from(port.container_port),
                name: Some(port_name(port)),
                protocol: Some(protocol(port).to_owned()),
                host_port: None,
                host_ip: None,
            },
        };
        if !out.iter().any(|known| known == &entry) {
            out.push(entry);
        }
    }
    (!out.is_empty()).then_some(out)
}

/// The Service of a Deployment: its container ports, inside the cluster.
fn service(
    session: &Session,
    plan: &KubePlan,
    labels: &BTreeMap<String, String>,
) -> Option<Service> {
    let ports: Vec<ServicePort> = container_ports(&session.ports, Target::Kubernetes)?
        .into_iter()
        .map(|port| ServicePort {
            name: port.name,
            port: port.container_port,
            target_port: Some(IntOrString::Int(port.container_port)),
            protocol: port.protocol,
            ..ServicePort::default()
        })
        .collect();
    Some(Service {
        metadata: ObjectMeta {
            name: Some(plan.name.clone()),
            labels: Some(labels.clone()),
            ..ObjectMeta::default()
        },
        spec: Some(ServiceSpec {
            selector: selector(plan).match_labels,
            ports: Some(ports),
            ..ServiceSpec::default()
        }),
        status: None,
    })
}

fn claim_object(
    name: &str,
    labels: &BTreeMap<String, String>,
    plan: &KubePlan,
) -> PersistentVolumeClaim {
    PersistentVolumeClaim {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            labels: Some(labels.clone()),
            ..ObjectMeta::default()
        },
        spec: Some(PersistentVolumeClaimSpec {
            // The pods of a multi-node run mount each claim from different nodes.
            access_modes: Some(vec![
                if plan.multi_node() {
                    "ReadWriteMany"
                } else {
                    "ReadWriteOnce"
                }
                .to_owned(),
            ]),
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([(
                    "storage".to_owned(),
                    Quantity(plan.pvc_size.clone()),
                )])),
                limits: None,
            }),
            storage_class_name: plan.storage_class.clone(),
            ..PersistentVolumeClaimSpec::default()
        }),
        status: None,
    }
}

fn host_path(name: String, path: String) -> Volume {
    Volume {
        name,
        host_path: Some(HostPathVolumeSource { path, type_: None }),
        ..Volume::default()
    }
}

/// A host path as YAML text: absolute (Podman reads a bare name as a named volume) and UTF-8.
fn host_text(path: &Path) -> Result<String> {
    if !path.is_absolute() {
        return Err(Error::user(format!(
            "host path {} is relative: kube play would take it for a named volume",
            path.display()
        ))
        .hint("write it as an absolute path"));
    }
    path.to_str().map(str::to_owned).ok_or_else(|| {
        Error::user(format!("host path {} is not UTF-8", path.display()))
            .hint("rename it, or mount a parent directory whose path is UTF-8")
    })
}

fn one() -> Quantity {
    Quantity("1".to_owned())
}

/// Bytes as a Kubernetes quantity: `16Gi`, `512Mi`, or plain bytes.
pub fn quantity(bytes: u64) -> Quantity {
    for (suffix, shift) in [("Ti", 40), ("Gi", 30), ("Mi", 20), ("Ki", 10)] {
        let unit = 1u64 << shift;
        if bytes >= unit && bytes % unit == 0 {
            return Quantity(format!("{}{suffix}", bytes / unit));
        }
    }
    Quantity(bytes.to_string())
}

/// Checks a `--pvc-size`: a positive Kubernetes quantity such as `100Gi`, `500M` or `1.5Ti`.
pub fn parse_quantity(text: &str) -> std::result::Result<String, String> {
    const SUFFIXES: [&str; 12] = [
        "Ki", "Mi", "Gi", "Ti", "Pi", "Ei", "k", "M", "G", "T", "P", "E",
    ];
    let number = SUFFIXES
        .iter()
        .find_map(|suffix| text.strip_suffix(suffix))
        .unwrap_or(text);
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    let digits = |part: &str| part.bytes().all(|b| b.is_ascii_digit());
    let positive = number.bytes().any(|b| (b'1'..=b'9').contains(&b));
    if !whole.is_empty() && digits(whole) && digits(fraction) && positive {
        Ok(text.to_owned())
    } else {
        Err(format!(
            "invalid size {text:?}: write a Kubernetes quantity such as 100Gi or 500M"
        ))
    }
}

/// Checks a storage or runtime class name: a DNS-1123 subdomain.
pub fn parse_class_name(text: &str) -> std::result::Result<String, String> {
    if is_dns_subdomain(text) {
        Ok(text.to_owned())
    } else {
        Err(format!(
            "invalid class name {text:?}: use lowercase letters, digits, '-' and '.'"
        ))
    }
}

/// The first six hex digits of the SHA-256 of `raw`.
fn short_hash(raw: &str) -> String {
    let digest = Sha256::digest(raw.as_bytes());
    digest.iter().take(3).fold(String::new(), |mut out, byte| {
        let _ = write!(out, "{byte:02x}");
        out
    })
}

/// Lowercase `[a-z0-9]` runs joined by single `-`s, without `-` at either end.
fn dashed(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    for c in raw.chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            out.push(c);
        } else if !out.is_empty() && !out.ends_with('-') {
            out.push('-');
        }
    }
    out.trim_end_matches('-').to_owned()
}

/// At most `max` bytes of an ASCII name, without a trailing `-`.
fn truncated(name: &str, max: usize) -> &str {
    name.get(..max.min(name.len()))
        .unwrap_or(name)
        .trim_end_matches('-')
}

/// A workload name a cluster and Podman both accept: a DNS-1123 label (at most 63 of
/// `[a-z0-9-]`) that starts with a letter, as Service names must. Sanitizing is
/// deterministic, and whenever it changes the name a short hash of the original is appended,
/// so two different sessions never get the same name (`My_Lab` and `my-lab` stay apart).
pub fn kube_name(raw: &str) -> Result<String> {
    let clean = dashed(raw);
    if !clean.starts_with(|c: char| c.is_ascii_lowercase()) {
        let shown = if clean.is_empty() { "nothing" } else { &clean };
        return Err(Error::user(format!(
            "{raw:?} cannot become a Kubernetes name: sanitized it is {shown}, and a name must start with a letter"
        ))
        .hint("pass --name with a name that starts with a letter, such as --name run-1"));
    }
    if clean == raw && clean.len() <= 63 {
        return Ok(clean);
    }
    Ok(format!("{}-{}", truncated(&clean, 56), short_hash(raw)))
}

/// A label value a cluster accepts (at most 63 of `[A-Za-z0-9_.-]`, alphanumeric at both
/// ends, or empty), with a short hash appended when sanitizing changed it.
pub fn label_value(raw: &str) -> String {
    if is_label_value(raw) {
        return raw.to_owned();
    }
    let mut clean: String = raw
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '-'
            }
        })
        .collect();
    clean = clean
        .trim_matches(|c: char| !c.is_ascii_alphanumeric())
        .to_owned();
    let head = clean.get(..56.min(clean.len())).unwrap_or_default();
    let head = head.trim_end_matches(|c: char| !c.is_ascii_alphanumeric());
    if head.is_empty() {
        short_hash(raw)
    } else {
        format!("{head}-{}", short_hash(raw))
    }
}

/// A volume name from a path: `/workspace` → `workspace`, `/data/sets` → `data-sets`.
fn volume_base(path: &str) -> String {
    let clean = dashed(path);
    let clean = truncated(&clean, 63);
    if clean.is_empty() {
        "root".to_owned()
    } else {
        clean.to_owned()
    }
}

/// The volume names of one pod, unique: a second `data` becomes `data-<hash of its path>`.
#[derive(Debug, Default)]
struct VolumeNames(BTreeSet<String>);

impl VolumeNames {
    fn take(&mut self, base: &str, raw: &str) -> String {
        if self.0.insert(base.to_owned()) {
            return base.to_owned();
        }
        let hashed = format!("{}-{}", truncated(base, 56), short_hash(raw));
        if self.0.insert(hashed.clone()) {
            return hashed;
        }
        let mut n = 2u32;
        loop {
            let numbered = format!("{}-{n}", truncated(base, 52));
            if self.0.insert(numbered.clone()) {
                return numbered;
            }
            n += 1;
        }
    }
}

// --- Rules the API server enforces that schema validation misses ---------------------------

/// `[a-z0-9]([-a-z0-9]*[a-z0-9])?`, at most 63.
fn is_dns_label(text: &str) -> bool {
    let bytes = text.as_bytes();
    !text.is_empty()
        && text.len() <= 63
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && !text.starts_with('-')
        && !text.ends_with('-')
}

/// DNS-1123 labels joined by `.`, at most 253.
fn is_dns_subdomain(text: &str) -> bool {
    text.len() <= 253 && text.split('.').all(is_dns_label)
}

/// A label value: empty, or at most 63 of `[A-Za-z0-9_.-]`, alphanumeric at both ends.
fn is_label_value(text: &str) -> bool {
    text.is_empty() || is_qualified_part(text)
}

/// The name part of a qualified name: `[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?`, at most 63.
fn is_qualified_part(text: &str) -> bool {
    let alnum = |c: char| c.is_ascii_alphanumeric();
    !text.is_empty()
        && text.len() <= 63
        && text.starts_with(alnum)
        && text.ends_with(alnum)
        && text.chars().all(|c| alnum(c) || "-_.".contains(c))
}

/// `[prefix/]name`: a DNS subdomain prefix and a qualified name part (label keys, resource
/// names, annotation keys).
fn is_qualified_name(text: &str) -> bool {
    match text.rsplit_once('/') {
        Some((prefix, name)) => is_dns_subdomain(prefix) && is_qualified_part(name),
        None => is_qualified_part(text),
    }
}

/// An IANA service name, as port names must be: at most 15 of `[a-z0-9-]`, a letter among
/// them, no `-` at either end and no `--`.
fn is_port_name(text: &str) -> bool {
    is_dns_label(text)
        && text.len() <= 15
        && text.bytes().any(|b| b.is_ascii_lowercase())
        && !text.contains("--")
}

/// The problems a Kubernetes API server would find in `object` (one JSON object, as
/// serialized) beyond its schema: names, label keys and values, resource names (no `=`), port
/// names, and any podman-only key. Empty when it would accept it.
pub fn check_kubernetes(object: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    let kind = object.get("kind").and_then(Value::as_str).unwrap_or("");
    if let Some(name) = object.pointer("/metadata/name").and_then(Value::as_str) {
        let valid = if kind == "Service" {
            is_dns_label(name) && name.starts_with(|c: char| c.is_ascii_lowercase())
        } else {
            is_dns_subdomain(name)
        };
        if !valid {
            problems.push(format!("{kind} name {name:?} is not a valid name"));
        }
    }
    walk(object, "", &mut problems);
    problems
}

fn walk(value: &Value, parent: &str, problems: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                if key.contains("podman") {
                    problems.push(format!("podman-only key {key:?}"));
                }
                match parent {
                    // A Service's selector is a label map; a Deployment's holds matchLabels.
                    "labels" | "matchLabels" | "selector" if !child.is_object() => {
                        if !is_qualified_name(key) {
                            problems.push(format!("label key {key:?} is not a qualified name"));
                        }
                        match child.as_str() {
                            Some(text) if is_label_value(text) => {}
                            _ => problems.push(format!(
                                "label {key}: value {child} is not a valid label value (at most 63 of A-Z a-z 0-9 - _ .)"
                            )),
                        }
                        continue;
                    }
                    "annotations" => {
                        if !is_qualified_name(key) {
                            problems
                                .push(format!("annotation key {key:?} is not a qualified name"));
                        }
                        continue;
                    }
                    "limits" | "requests" => {
                        if !is_qualified_name(key) {
                            problems.push(format!(
                                "resource name {key:?} is not a qualified name (no '=')"
                            ));
                        }
                        continue;
                    }
                    _ => {}
                }
                walk(child, key, problems);
            }
        }
        Value::Array(items) => {
            for item in items {
                let name = item.get("name").and_then(Value::as_str);
                match (parent, name) {
                    ("containers" | "volumes" | "volumeMounts", Some(name))
                        if !is_dns_label(name) =>
                    {
                        problems.push(format!("{parent} name {name:?} is not a DNS-1123 label"));
                    }
                    ("ports", Some(name)) if !is_port_name(name) => {
                        problems.push(format!("port name {name:?} is not a valid port name"));
                    }
                    _ => {}
                }
                walk(item, parent, problems);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capabilities::PodmanVersion;
    use crate::session::{ByteSize, GpuRequest, Mount};

    fn caps(major: u32, minor: u32) -> Capabilities {
        Capabilities::for_version(PodmanVersion::new(major, minor, 0))
    }

    fn session() -> Session {
        Session {
            project_dir: "/home/dev/demo".into(),
            image: ImageSource::Name("localhost/img:1".into()),
            shm_size: ByteSize(2 << 30),
            mounts: vec![
                Mount {
                    host: "/home/dev/demo".into(),
                    container: "/workspace".into(),
                    read_only: false,
                },
                Mount {
                    host: "/srv/sets".into(),
                    container: "/data".into(),
                    read_only: true,
                },
            ],
            env: BTreeMap::from([("DAY".to_owned(), "2024-01-01".to_owned())]),
            ports: vec!["8888".parse().unwrap()],
            command: vec!["python".into(), "train.py".into()],
            ..Session::example()
        }
    }

    fn plan(target: Target, kind: Kind, gpus: Gpus) -> KubePlan {
        KubePlan {
            name: "demo".into(),
            target,
            kind,
            caps: caps(5, 4),
            gpus,
            gpu_names: vec!["all".into()],
            userns: UserNs::KeepIdTo {
                uid: 1000,
                gid: 1000,
            },
            volumes: VolumeMode::Hostpath,
            pvc_size: "10Gi".into(),
            storage_class: None,
            runtime_class: None,
            label_disable: false,
            scale: Scale::default(),
        }
    }

    fn docs(generated: &Generated) -> Vec<Value> {
        serde_saphyr::from_multiple::<Value>(&generated.yaml).unwrap()
    }

    #[test]
    fn names_are_sanitized_deterministically_and_never_collide() {
        assert_eq!(kube_name("dev-session").unwrap(), "dev-session");
        let upper = kube_name("My_Lab").unwrap();
        assert!(
            upper.starts_with("my-lab-") && upper.len() == "my-lab-".len() + 6,
            "{upper}"
        );
        assert_eq!(kube_name("My_Lab").unwrap(), upper, "deterministic");
        assert_ne!(kube_name("my.lab").unwrap(), upper);
        assert_ne!(kube_name("my-lab").unwrap(), upper);
        let long = "a".repeat(80);
        let name = kube_name(&long).unwrap();
        assert!(name.len() <= 63 && is_dns_label(&name), "{name}");
        assert_ne!(kube_name(&"a".repeat(81)).unwrap(), name);
        for bad in ["2024.01", "-", "..", "9lives"] {
            let err = kube_name(bad).unwrap_err();
            assert_eq!(err.exit_code(), 1);
            assert!(
                err.message().contains("cannot become a Kubernetes name"),
                "{err}"
            );
        }
        assert_eq!(kube_name("x_").unwrap().len(), "x-".len() + 6);
        assert!(kube_name("ünï").unwrap().starts_with("n-"));
    }

    #[test]
    fn label_values_fit_the_rules() {
        assert_eq!(label_value("demo"), "demo");
        assert_eq!(label_value(""), "");
        for raw in ["a b", &"x".repeat(70), "-lead", "ü"] {
            let value = label_value(raw);
            assert!(is_label_value(&value), "{raw:?} -> {value:?}");
            assert_ne!(value, raw);
        }
    }

    #[test]
    fn quantities() {
        assert_eq!(quantity(16 << 30).0, "16Gi");
        assert_eq!(quantity(512 << 20).0, "512Mi");
        assert_eq!(quantity(1536 << 20).0, "1536Mi");
        assert_eq!(quantity(1000).0, "1000");
        assert!(parse_quantity("100Gi").is_ok() && parse_quantity("1.5Ti").is_ok());
        for bad in ["", "Gi", "0", "10gb", "-1Gi", "1..2"] {
            assert!(parse_quantity(bad).is_err(), "{bad}");
        }
        assert!(parse_class_name("fast-ssd").is_ok() && parse_class_name("Fast").is_err());
    }

    #[test]
    fn the_api_server_rules_catch_what_schemas_miss() {
        let pod = serde_json::json!({
            "kind": "Pod",
            "metadata": {"name": "x", "labels": {"io.podlab.gpus": "0,1", "ok": "fine"},
                          "annotations": {"io.podman.annotations.userns": "keep-id"}},
            "spec": {"containers": [{"name": "Main", "resources": {"limits": {"nvidia.com/gpu=all": "1"}},
                                     "ports": [{"name": "tcp-8888-is-too-long", "containerPort": 1}]}]}
        });
        let problems = check_kubernetes(&pod).join("\n");
        assert!(
            problems.contains("\"nvidia.com/gpu=all\" is not a qualified name"),
            "{problems}"
        );
        assert!(problems.contains("label io.podlab.gpus"), "{problems}");
        assert!(problems.contains("podman-only key"), "{problems}");
        assert!(problems.contains("containers name \"Main\""), "{problems}");
        assert!(problems.contains("port name"), "{problems}");
        let long = serde_json::json!({"kind": "Pod", "metadata": {"name": "x", "labels": {"a": "v".repeat(64)}}});
        assert_eq!(check_kubernetes(&long).len(), 1);
        let service = serde_json::json!({"kind": "Service", "metadata": {"name": "1x"}});
        assert_eq!(check_kubernetes(&service).len(), 1);
    }

    #[test]
    fn podman_flavor_uses_cdi_keys_the_userns_annotation_and_host_ports() {
        let plan = plan(
            Target::Podman,
            Kind::Pod,
            Gpus::CdiNames(vec!["nvidia.com/gpu=all".into()]),
        );
        let generated = generate(&session(), &plan).unwrap();
        let doc = &docs(&generated)[0];
        assert_eq!(doc["kind"], "Pod");
        assert_eq!(
            doc["metadata"]["annotations"][USERNS_ANNOTATION],
            "keep-id:uid=1000,gid=1000"
        );
        let container = &doc["spec"]["containers"][0];
        assert_eq!(container["resources"]["limits"]["nvidia.com/gpu=all"], "1");
        assert_eq!(container["args"], serde_json::json!(["python", "train.py"]));
        assert_eq!(container["ports"][0]["hostIP"], "127.0.0.1");
        assert_eq!(container["ports"][0]["hostPort"], 8888);
        assert_eq!(container["env"][0]["value"], "2024-01-01");
        assert!(
            generated.yaml.contains("value: \"2024-01-01\""),
            "{}",
            generated.yaml
        );
        let volumes = &doc["spec"]["volumes"];
        assert_eq!(volumes[0]["hostPath"]["path"], "/home/dev/demo");
        assert_eq!(volumes[2]["emptyDir"]["medium"], "Memory");
        assert_eq!(volumes[2]["emptyDir"]["sizeLimit"], "2Gi");
        assert_eq!(container["volumeMounts"][2]["mountPath"], "/dev/shm");
        assert_eq!(container["volumeMounts"][1]["readOnly"], true);
        assert_eq!(doc["metadata"]["labels"]["io.podlab.project"], "demo");
    }

    #[test]
    fn gpus_under_selinux_run_as_spc_t_in_the_podman_flavor_only() {
        let gpus = Gpus::CdiNames(vec!["nvidia.com/gpu=all".into()]);
        let mut podman = plan(Target::Podman, Kind::Pod, gpus);
        let container = |plan: &KubePlan| {
            docs(&generate(&session(), plan).unwrap())[0]["spec"]["containers"][0].clone()
        };
        assert!(container(&podman).get("securityContext").is_none());
        podman.label_disable = true;
        assert_eq!(
            container(&podman)["securityContext"],
            serde_json::json!({ "seLinuxOptions": { "type": "spc_t" } })
        );
        let mut kubernetes = plan(Target::Kubernetes, Kind::Pod, Gpus::Count(2));
        kubernetes.label_disable = true;
        assert!(container(&kubernetes).get("securityContext").is_none());
    }

    #[test]
    fn w5_env_secrets_are_secret_key_refs_for_a_cluster_and_named_for_kube_play() {
        let session = Session {
            secrets: vec![crate::session::EnvSecret {
                name: "podlab-notebook-nb1".into(),
                target: "JUPYTER_TOKEN".into(),
            }],
            ..session()
        };
        let cluster = generate(&session, &plan(Target::Kubernetes, Kind::Pod, Gpus::None)).unwrap();
        let env = &docs(&cluster)[0]["spec"]["containers"][0]["env"];
        let entry = env
            .as_array()
            .unwrap()
            .iter()
            .find(|entry| entry["name"] == "JUPYTER_TOKEN")
            .unwrap();
        assert_eq!(
            entry["valueFrom"],
            serde_json::json!({"secretKeyRef": {"name": "podlab-notebook-nb1", "key": "JUPYTER_TOKEN"}})
        );
        let podman = generate(&session, &plan(Target::Podman, Kind::Pod, Gpus::None)).unwrap();
        assert!(!podman.yaml.contains("JUPYTER_TOKEN"), "{}", podman.yaml);
        assert!(
            podman.notices.iter().any(|notice| notice
                .contains("env JUPYTER_TOKEN (the podman secret podlab-notebook-nb1) left out")),
            "{:?}",
            podman.notices
        );
    }

    #[test]
    fn podman_flavor_is_gated_on_the_target_version() {
        let mut old = plan(
            Target::Podman,
            Kind::Pod,
            Gpus::CdiNames(vec!["nvidia.com/gpu=all".into()]),
        );
        old.caps = caps(5, 3);
        let err = generate(&session(), &old).unwrap_err();
        assert!(err.message().contains("too old"), "{err}");
        old.caps = caps(4, 9);
        old.gpus = Gpus::None;
        let generated = generate(&session(), &old).unwrap();
        assert!(!generated.yaml.contains(USERNS_ANNOTATION));
        assert!(
            generated.notices[0].contains("ignores"),
            "{:?}",
            generated.notices
        );
    }

    #[test]
    fn inline_gpus_become_device_keys_read_only_mounts_and_env() {
        let fixture = crate::gpu::fixtures::debian_like();
        let caps = caps(5, 3);
        let request = GpuRequest::List(vec![crate::session::GpuSelector::Index(1)]);
        let gpu_plan = crate::plan::plan_gpus(&request, &fixture.roots, &[]).unwrap();
        let crate::plan::GpuMode::Inline(edits) = gpu_plan.mode else {
            panic!("expected inline edits")
        };
        let mut plan = plan(Target::Podman, Kind::Job, Gpus::Inline(edits));
        plan.caps = caps;
        let generated = generate(&session(), &plan).unwrap();
        let doc = &docs(&generated)[0];
        assert_eq!(doc["kind"], "Job");
        let spec = &doc["spec"]["template"]["spec"];
        assert_eq!(spec["restartPolicy"], "Never");
        let container = &spec["containers"][0];
        let limits = container["resources"]["limits"].as_object().unwrap();
        let root = fixture.roots.dev_root.display().to_string();
        assert!(
            limits.contains_key(&format!("podman.io/device={root}/dev/nvidia1:/dev/nvidia1")),
            "{limits:?}"
        );
        assert!(limits.keys().all(|key| key.starts_with(DEVICE_KEY_PREFIX)));
        let mounts = container["volumeMounts"].as_array().unwrap();
        let libcuda = mounts
            .iter()
            .find(|m| m["mountPath"] == "/usr/lib/x86_64-linux-gnu/libcuda.so.1")
            .unwrap();
        assert_eq!(libcuda["readOnly"], true);
        let env = container["env"].as_array().unwrap();
        assert!(env.iter().any(|e| e["name"] == "NVIDIA_VISIBLE_DEVICES"));
        let names: Vec<&str> = spec["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|v| v["name"].as_str())
            .collect();
        let unique: BTreeSet<&str> = names.iter().copied().collect();
        assert_eq!(unique.len(), names.len(), "{names:?}");
        assert!(names.iter().all(|name| is_dns_label(name)), "{names:?}");
    }

    #[test]
    fn kubernetes_flavor_counts_gpus_and_has_no_podman_keys() {
        let mut plan = plan(Target::Kubernetes, Kind::Deployment, Gpus::Count(2));
        plan.runtime_class = Some("nvidia".into());
        plan.volumes = VolumeMode::Pvc;
        plan.storage_class = Some("fast".into());
        let generated = generate(&session(), &plan).unwrap();
        let docs = docs(&generated);
        let kinds: Vec<&str> = docs.iter().filter_map(|d| d["kind"].as_str()).collect();
        assert_eq!(
            kinds,
            [
                "PersistentVolumeClaim",
                "PersistentVolumeClaim",
                "Deployment",
                "Service"
            ]
        );
        assert_eq!(docs[0]["metadata"]["name"], "demo-workspace");
        assert_eq!(docs[0]["spec"]["storageClassName"], "fast");
        assert_eq!(docs[0]["spec"]["resources"]["requests"]["storage"], "10Gi");
        let spec = &docs[2]["spec"]["template"]["spec"];
        assert_eq!(spec["runtimeClassName"], "nvidia");
        assert_eq!(spec["securityContext"]["runAsUser"], 1000);
        assert_eq!(spec["securityContext"]["fsGroup"], 1000);
        assert_eq!(
            spec["containers"][0]["resources"]["limits"]["nvidia.com/gpu"],
            "2"
        );
        assert!(spec["containers"][0]["ports"][0].get("hostPort").is_none());
        assert_eq!(
            spec["volumes"][1]["persistentVolumeClaim"]["readOnly"],
            true
        );
        assert_eq!(docs[2]["spec"]["strategy"]["type"], "Recreate");
        assert_eq!(docs[3]["spec"]["ports"][0]["name"], "tcp-8888");
        assert_eq!(docs[3]["spec"]["selector"][NAME_LABEL], "demo");
        assert!(!generated.yaml.contains("podman"), "{}", generated.yaml);
        for doc in &docs {
            assert_eq!(check_kubernetes(doc), Vec::<String>::new());
        }
        assert!(generated.notices.iter().any(|n| n.contains("start empty")));
        assert!(
            generated
                .notices
                .iter()
                .any(|n| n.contains("exists only on this host"))
        );
    }

    #[test]
    fn flavors_do_not_mix() {
        let wrong = plan(
            Target::Kubernetes,
            Kind::Pod,
            Gpus::CdiNames(vec!["x".into()]),
        );
        assert!(generate(&session(), &wrong).is_err());
        let wrong = plan(Target::Podman, Kind::Pod, Gpus::Count(1));
        assert!(generate(&session(), &wrong).is_err());
        let mut pvc = plan(Target::Podman, Kind::Pod, Gpus::None);
        pvc.volumes = VolumeMode::Pvc;
        assert_eq!(generate(&session(), &pvc).unwrap_err().exit_code(), 1);
        let mut relative = session();
        relative.mounts[1].host = "data".into();
        let err = generate(&relative, &plan(Target::Podman, Kind::Pod, Gpus::None)).unwrap_err();
        assert!(err.message().contains("is relative"), "{err}");
    }

    fn multi_node(kind: Kind) -> KubePlan {
        KubePlan {
            name: "train".into(),
            volumes: VolumeMode::Pvc,
            runtime_class: Some("nvidia".into()),
            scale: Scale {
                nodes: 2,
                queue: Some("team-a".into()),
            },
            ..plan(Target::Kubernetes, kind, Gpus::Count(4))
        }
    }

    /// The pod template's env as name -> value, or the downward-API field for `valueFrom`.
    fn env_of(pod_spec: &Value) -> BTreeMap<String, String> {
        pod_spec["containers"][0]["env"]
            .as_array()
            .unwrap()
            .iter()
            .map(|var| {
                let value = var.get("value").and_then(Value::as_str).map_or_else(
                    || {
                        var["valueFrom"]["fieldRef"]["fieldPath"]
                            .as_str()
                            .unwrap()
                            .to_owned()
                    },
                    str::to_owned,
                );
                (var["name"].as_str().unwrap().to_owned(), value)
            })
            .collect()
    }

    #[test]
    fn a_multi_node_job_is_an_indexed_job_under_a_headless_service() {
        let generated = generate(&session(), &multi_node(Kind::Job)).unwrap();
        let docs = docs(&generated);
        let kinds: Vec<&str> = docs
            .iter()
            .map(|doc| doc["kind"].as_str().unwrap())
            .collect();
        assert_eq!(
            kinds,
            [
                "PersistentVolumeClaim",
                "PersistentVolumeClaim",
                "Job",
                "Service"
            ]
        );
        assert_eq!(docs[0]["spec"]["accessModes"][0], "ReadWriteMany");
        let job = &docs[2];
        assert_eq!(job["metadata"]["labels"][QUEUE_LABEL], "team-a");
        let spec = &job["spec"];
        assert_eq!(spec["completionMode"], "Indexed");
        assert_eq!(
            (spec["completions"].as_i64(), spec["parallelism"].as_i64()),
            (Some(2), Some(2))
        );
        assert_eq!(spec["backoffLimit"], 0);
        let pod = &spec["template"]["spec"];
        assert_eq!(pod["subdomain"], "train");
        assert_eq!(pod["runtimeClassName"], "nvidia");
        assert_eq!(pod["restartPolicy"], "Never");
        assert_eq!(pod["tolerations"][0]["key"], GPU_RESOURCE);
        assert_eq!(
            pod["containers"][0]["resources"]["limits"][GPU_RESOURCE],
            "4"
        );
        let shm = pod["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|volume| volume["name"] == "dshm")
            .unwrap();
        assert_eq!(shm["emptyDir"]["medium"], "Memory");
        let env = env_of(pod);
        assert_eq!(env["PET_NNODES"], "2");
        assert_eq!(env["PET_NPROC_PER_NODE"], "4");
        assert_eq!(env["PET_MASTER_ADDR"], "train-0.train");
        assert_eq!(env["PET_MASTER_PORT"], "29500");
        assert_eq!(
            env["PET_NODE_RANK"],
            "metadata.annotations['batch.kubernetes.io/job-completion-index']"
        );
        assert_eq!(env["DAY"], "2024-01-01");
        let service = &docs[3];
        assert_eq!(service["spec"]["clusterIP"], "None");
        assert_eq!(service["spec"]["publishNotReadyAddresses"], true);
        assert_eq!(service["spec"]["selector"][NAME_LABEL], "train");
        assert_eq!(pod_hostname(&multi_node(Kind::Job), 1), "train-1");
    }

    #[test]
    fn a_jobset_runs_one_indexed_job_and_names_its_first_pod_master() {
        let generated = generate(&session(), &multi_node(Kind::Jobset)).unwrap();
        let docs = docs(&generated);
        let jobset = docs.last().unwrap();
        assert_eq!(jobset["apiVersion"], "jobset.x-k8s.io/v1alpha2");
        assert_eq!(jobset["kind"], "JobSet");
        assert_eq!(jobset["metadata"]["labels"][QUEUE_LABEL], "team-a");
        assert_eq!(jobset["spec"]["network"]["subdomain"], "train");
        let replicated = &jobset["spec"]["replicatedJobs"][0];
        assert_eq!(replicated["name"], REPLICATED_JOB);
        assert_eq!(replicated["replicas"], 1);
        let job = &replicated["template"]["spec"];
        assert_eq!(job["completionMode"], "Indexed");
        assert_eq!(job["parallelism"], 2);
        let pod = &job["template"]["spec"];
        assert!(
            pod.get("subdomain").is_none(),
            "JobSet sets the subdomain itself"
        );
        assert_eq!(env_of(pod)["PET_MASTER_ADDR"], "train-node-0-0.train");
    }

    #[test]
    fn the_session_may_set_the_rank_itself() {
        let mut session = session();
        session.env.insert("PET_NODE_RANK".into(), "3".into());
        let generated = generate(&session, &multi_node(Kind::Job)).unwrap();
        let docs = docs(&generated);
        let env = env_of(&docs[2]["spec"]["template"]["spec"]);
        assert_eq!(env["PET_NODE_RANK"], "3");
    }

    #[test]
    fn podman_refuses_more_than_one_node_a_jobset_and_a_queue() {
        let mut podman = plan(Target::Podman, Kind::Job, Gpus::None);
        podman.scale.nodes = 2;
        let err = generate(&session(), &podman).unwrap_err();
        assert!(err.message().contains("ignores its completions"), "{err}");
        assert!(
            err.hint_text().unwrap().contains("--target kubernetes"),
            "{err}"
        );
        let jobset = plan(Target::Podman, Kind::Jobset, Gpus::None);
        let err = generate(&session(), &jobset).unwrap_err();
        assert!(err.message().contains("knows no JobSet"), "{err}");
        let mut queued = plan(Target::Podman, Kind::Job, Gpus::None);
        queued.scale.queue = Some("q".into());
        assert!(generate(&session(), &queued).is_err());
        let mut pods = multi_node(Kind::Pod);
        pods.volumes = VolumeMode::Pvc;
        let err = generate(&session(), &pods).unwrap_err();
        assert!(
            err.message().contains("needs --kind job or --kind jobset"),
            "{err}"
        );
    }
}

#[cfg(test)]
mod golden {
    //! Reference YAML for a dev session, a training job and a notebook, in both flavors,
    //! compared with `quadlets/<case>.<target>.yaml` at the top of the repository.
    //! `PODLAB_BLESS=1 cargo test --lib golden` rewrites the files instead. The sessions are
    //! built here with fixed paths; the inline GPU edits come from the synthetic Debian driver
    //! root, whose temp-dir path reads `/ROOT`.

    use std::fs;
    use std::path::{Path, PathBuf};

    use super::*;
    use crate::capabilities::PodmanVersion;
    use crate::cdi::generate::{Options, generate as generate_spec};
    use crate::gpu::discover;
    use crate::session::{ByteSize, GpuRequest, GpuSelector, Mount, UserMapping};

    fn golden_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("quadlets")
    }

    fn mount(host: &str, container: &str, read_only: bool) -> Mount {
        Mount {
            host: host.into(),
            container: container.into(),
            read_only,
        }
    }

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn session(project: &str) -> Session {
        let dir = format!("/home/dev/src/{project}");
        Session {
            project: project.into(),
            project_dir: dir.clone().into(),
            config_file: Some(format!("{dir}/podlab.toml").into()),
            preset: None,
            name: None,
            image: ImageSource::Name("nvcr.io/nvidia/pytorch:24.12-py3".into()),
            gpus: GpuRequest::All,
            shm_size: ByteSize(16 << 30),
            workdir: "/workspace".into(),
            mounts: vec![mount(&dir, "/workspace", false)],
            env: BTreeMap::new(),
            ports: Vec::new(),
            user_map: UserMapping::Auto,
            driver_roots: crate::gpu::DriverRoots::default(),
            command: Vec::new(),
            secrets: Vec::new(),
        }
    }

    fn plan(name: &str, target: Target, kind: Kind, gpus: Gpus) -> KubePlan {
        KubePlan {
            name: name.into(),
            target,
            kind,
            caps: Capabilities::for_version(PodmanVersion::new(5, 4, 2)),
            gpus,
            gpu_names: Vec::new(),
            userns: UserNs::KeepIdTo {
                uid: 1000,
                gid: 1000,
            },
            volumes: VolumeMode::Hostpath,
            pvc_size: "100Gi".into(),
            storage_class: None,
            runtime_class: None,
            label_disable: false,
            scale: Scale::default(),
        }
    }

    /// The shared edits and those of GPUs 0 and 1 of the Debian-like root, as `podlab kube
    /// generate` inlines them when the target Podman cannot name CDI devices.
    fn inline_edits(roots: &crate::gpu::DriverRoots) -> ContainerEdits {
        let inventory = discover(roots).unwrap();
        let spec = generate_spec(&inventory, roots, &Options::default())
            .unwrap()
            .spec;
        let mut edits = spec.container_edits.clone();
        for device in spec
            .devices
            .iter()
            .filter(|d| d.name == "0" || d.name == "1")
        {
            edits
                .device_nodes
                .extend(device.container_edits.device_nodes.iter().cloned());
            edits
                .mounts
                .extend(device.container_edits.mounts.iter().cloned());
        }
        edits
    }

    /// Every case: (file name, session, plan), the text replacements that normalise them, and
    /// the driver root they read.
    #[expect(clippy::type_complexity, reason = "a test table")]
    fn cases() -> (
        Vec<(String, Session, KubePlan)>,
        Vec<(String, String)>,
        crate::gpu::fixtures::Fixture,
    ) {
        let mut cases = Vec::new();

        // A dev session: a long-running pod with all GPUs, the project and a data set.
        let mut dev = session("dev-session");
        dev.mounts
            .push(mount("/home/dev/datasets", "/datasets", true));
        dev.env = env(&[
            ("HF_HOME", "/workspace/.cache/huggingface"),
            ("WANDB_MODE", "offline"),
        ]);
        dev.command = vec!["sleep".into(), "infinity".into()];
        let mut podman = plan(
            "dev-session",
            Target::Podman,
            Kind::Pod,
            Gpus::CdiNames(vec!["nvidia.com/gpu=all".into()]),
        );
        podman.gpu_names = vec!["all".into()];
        let mut cluster = plan("dev-session", Target::Kubernetes, Kind::Pod, Gpus::Count(2));
        cluster.runtime_class = Some("nvidia".into());
        cases.push(("dev-session.podman".to_owned(), dev.clone(), podman));
        cases.push(("dev-session.kubernetes".to_owned(), dev, cluster));

        // A training job: GPUs 0 and 1, a read-only data set, checkpoints, ambiguous scalars.
        let fixture = crate::gpu::fixtures::debian_like();
        let mut train = session("train-job");
        train.image = ImageSource::Name("ghcr.io/example/trainer:1.4".into());
        train.gpus = GpuRequest::List(vec![GpuSelector::Index(0), GpuSelector::Index(1)]);
        train.shm_size = ByteSize(32 << 30);
        train
            .mounts
            .push(mount("/home/dev/datasets/imagenet", "/data", true));
        train
            .mounts
            .push(mount("/scratch/dev/checkpoints", "/checkpoints", false));
        train.env = env(&[("PYTHONUNBUFFERED", "1"), ("RUN_DATE", "2024-01-01")]);
        train.command = ["python", "train.py", "--epochs", "10", "--resume", "on"]
            .map(str::to_owned)
            .to_vec();
        train.driver_roots = fixture.roots.clone();
        let mut podman = plan(
            "train-job",
            Target::Podman,
            Kind::Job,
            Gpus::Inline(inline_edits(&fixture.roots)),
        );
        podman.gpu_names = vec!["0".into(), "1".into()];
        podman.caps = Capabilities::for_version(PodmanVersion::new(5, 3, 1));
        let mut cluster = plan("train-job", Target::Kubernetes, Kind::Job, Gpus::Count(2));
        cluster.runtime_class = Some("nvidia".into());
        cluster.volumes = VolumeMode::Pvc;
        cluster.pvc_size = "500Gi".into();
        cluster.storage_class = Some("fast-ssd".into());
        cases.push(("train-job.podman".to_owned(), train.clone(), podman));
        cases.push(("train-job.kubernetes".to_owned(), train, cluster));

        // A notebook: one GPU, JupyterLab and TensorBoard ports, the image's own user.
        let mut notebook = session("notebook");
        notebook.image =
            ImageSource::Name("quay.io/jupyter/pytorch-notebook:cuda12-2024-12-02".into());
        notebook.preset = Some("notebook".into());
        notebook.gpus = GpuRequest::List(vec![GpuSelector::Index(0)]);
        notebook.shm_size = ByteSize(8 << 30);
        notebook.workdir = "/home/jovyan/work".into();
        notebook.mounts = vec![mount("/home/dev/src/notebook", "/home/jovyan/work", false)];
        notebook.ports = vec!["8888".parse().unwrap(), "6006".parse().unwrap()];
        notebook.command = [
            "start-notebook.py",
            "--ServerApp.root_dir=/home/jovyan/work",
        ]
        .map(str::to_owned)
        .to_vec();
        let user = UserNs::KeepIdTo {
            uid: 1000,
            gid: 100,
        };
        let mut podman = plan(
            "notebook",
            Target::Podman,
            Kind::Deployment,
            Gpus::CdiNames(vec!["nvidia.com/gpu=0".into()]),
        );
        podman.gpu_names = vec!["0".into()];
        podman.userns = user;
        let mut cluster = plan(
            "notebook",
            Target::Kubernetes,
            Kind::Deployment,
            Gpus::Count(1),
        );
        cluster.userns = user;
        cases.push(("notebook.podman".to_owned(), notebook.clone(), podman));
        cases.push(("notebook.kubernetes".to_owned(), notebook, cluster));

        let root = fixture.roots.driver_root.display().to_string();
        (cases, vec![(root, "/ROOT".to_owned())], fixture)
    }

    #[test]
    fn generated_yaml_matches_the_reference_files() {
        let bless = std::env::var_os("PODLAB_BLESS").is_some_and(|value| value == "1");
        // The fixture holds the driver root's temp dir until the texts are made.
        let (cases, replacements, _fixture) = cases();
        let mut drifted = Vec::new();
        for (file, session, plan) in cases {
            let generated = generate(&session, &plan).unwrap();
            let mut text = generated.yaml.clone();
            for (from, to) in &replacements {
                text = text.replace(from, to);
            }
            let docs: Vec<Value> = serde_saphyr::from_multiple(&text).unwrap();
            match plan.target {
                Target::Kubernetes => {
                    for doc in &docs {
                        assert_eq!(check_kubernetes(doc), Vec::<String>::new(), "{file}");
                    }
                    assert!(!text.contains("podman"), "{file}: podman key");
                }
                Target::Podman => {
                    assert!(text.contains(USERNS_ANNOTATION), "{file}");
                    // Podman silently ignores a plain count: GPUs go in by CDI name or inline.
                    assert!(!text.contains("nvidia.com/gpu: "), "{file}: GPU count");
                }
            }
            let path = golden_dir().join(format!("{file}.yaml"));
            if bless {
                fs::create_dir_all(golden_dir()).unwrap();
                fs::write(&path, &text).unwrap();
                continue;
            }
            let expected = fs::read_to_string(&path).unwrap_or_default();
            if expected != text {
                drifted.push(format!("--- {}\n{text}", path.display()));
            }
        }
        assert!(
            drifted.is_empty(),
            "generated YAML differs from the reference (PODLAB_BLESS=1 cargo test --lib golden rewrites it; review git diff quadlets/):\n{}",
            drifted.join("\n")
        );
    }
}
