//! Golden units: fixed sessions rendered as units and compared with the checked-in files in
//! `quadlets/` at the top of the repository, so a test fails when the generator drifts.
//! `PODLAB_BLESS=1 cargo test --lib golden` rewrites them instead. Every `.container` and
//! `.kube` file there must also pass Podman's quadlet generator (`-dryrun`), skipped with a
//! printed reason when it is missing (unless `PODLAB_E2E=1`).
//!
//! The host decisions are given, not discovered (GPU edits shaped like a Debian driver, CDI
//! names), so the files do not depend on the machine running the test.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::container::container_unit;
use super::kube::kube_unit;
use super::notebook::{DEFAULT_COMMAND, DEFAULT_HEALTH_CMD, Notebook, notebook_unit, secret_name};
use super::set;
use crate::capabilities::{Capabilities, PodmanVersion};
use crate::cdi::spec::{ContainerEdits, DeviceNode, Mount as CdiMount};
use crate::gpu::DriverRoots;
use crate::plan::{ContainerPlan, GpuMode, GpuPlan, UserNs};
use crate::session::{ByteSize, GpuRequest, GpuSelector, ImageSource, Mount, Session, UserMapping};

const QUADLET: &str = "/usr/libexec/podman/quadlet";

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("quadlets")
}

fn blessing() -> bool {
    std::env::var_os("PODLAB_BLESS").is_some_and(|value| value == "1")
}

fn caps(version: &str) -> Capabilities {
    Capabilities::for_version(version.parse::<PodmanVersion>().unwrap())
}

fn session(name: &str, gpus: GpuRequest, command: &[&str]) -> Session {
    Session {
        project: "vision".into(),
        project_dir: "/home/dev/vision".into(),
        config_file: Some("/home/dev/vision/podlab.toml".into()),
        preset: None,
        name: Some(name.into()),
        image: ImageSource::Name("ghcr.io/example/pytorch:2.5-cuda12.4".into()),
        gpus,
        shm_size: ByteSize(16 << 30),
        workdir: "/workspace".into(),
        mounts: vec![
            Mount {
                host: "/home/dev/vision".into(),
                container: "/workspace".into(),
                read_only: false,
            },
            Mount {
                host: "/home/dev/datasets/imagenet".into(),
                container: "/data".into(),
                read_only: true,
            },
        ],
        env: BTreeMap::new(),
        ports: Vec::new(),
        user_map: UserMapping::Auto,
        driver_roots: DriverRoots::default(),
        command: command.iter().map(|word| (*word).to_owned()).collect(),
        secrets: Vec::new(),
    }
}

fn plan(name: &str, mode: GpuMode, names: &[&str]) -> ContainerPlan {
    ContainerPlan {
        gpus: GpuPlan {
            mode,
            names: names.iter().map(|name| (*name).to_owned()).collect(),
            notices: Vec::new(),
            driver: None,
            env: Vec::new(),
            capabilities: None,
        },
        ..ContainerPlan::example(name)
    }
}

/// The edits podlab inlines for GPU 0 of a Debian host with driver 550.
fn debian_edits() -> ContainerEdits {
    let lib = |name: &str, soname: &str| CdiMount {
        host_path: format!("/usr/lib/x86_64-linux-gnu/nvidia/current/{name}.so.550.163.01"),
        container_path: format!("/usr/lib/x86_64-linux-gnu/{name}.so.{soname}"),
        kind: None,
        options: crate::cdi::generate::MOUNT_OPTIONS
            .iter()
            .map(|option| (*option).to_owned())
            .collect(),
    };
    let node = |path: &str| DeviceNode {
        path: path.into(),
        ..DeviceNode::default()
    };
    ContainerEdits {
        env: vec!["NVIDIA_VISIBLE_DEVICES=void".into()],
        device_nodes: vec![
            node("/dev/nvidiactl"),
            node("/dev/nvidia-uvm"),
            node("/dev/nvidia-uvm-tools"),
            node("/dev/nvidia0"),
        ],
        mounts: vec![
            lib("libcuda", "1"),
            lib("libnvidia-ml", "1"),
            lib("libnvidia-ptxjitcompiler", "1"),
        ],
        ..ContainerEdits::default()
    }
}

/// Every golden unit: its file name and text.
fn cases() -> Vec<(String, String)> {
    let mut dev = session("dev-session", GpuRequest::All, &["sleep", "infinity"]);
    dev.ports = vec![
        "127.0.0.1:8888:8888".parse().unwrap(),
        "127.0.0.1:6006:6006".parse().unwrap(),
    ];
    dev.env = BTreeMap::from([("HF_HOME".into(), "/data/.cache/huggingface".into())]);
    let dev_plan = plan("dev-session", GpuMode::Inline(debian_edits()), &["all"]);

    let mut job = session(
        "train-job",
        GpuRequest::List(vec![GpuSelector::Index(0), GpuSelector::Index(1)]),
        &[
            "python",
            "train.py",
            "--config",
            "configs/resnet 50.yaml",
            "--run-name",
            "lr=3e-4 $USER 100%",
            "--note",
            "it's \"final\"\tv2",
        ],
    );
    job.shm_size = ByteSize(32 << 30);
    job.env = BTreeMap::from([
        ("WANDB_MODE".into(), "offline".into()),
        ("WANDB_NOTES".into(), "50% of ${DATA}, $HOME".into()),
    ]);
    let job_plan = plan(
        "train-job",
        GpuMode::Cdi(vec!["nvidia.com/gpu=0".into(), "nvidia.com/gpu=1".into()]),
        &["0", "1"],
    );
    let spec_dir = Path::new("/home/dev/.config/cdi");

    let mut out = Vec::new();
    for (file, session, plan, dir, version) in [
        ("dev-session.container", &dev, &dev_plan, None, "5.4.2"),
        (
            "train-job.container",
            &job,
            &job_plan,
            Some(spec_dir),
            "5.5.0",
        ),
        (
            "train-job-podman-4.6.container",
            &job,
            &job_plan,
            None,
            "4.6.0",
        ),
    ] {
        let caps = caps(version);
        let emitted = container_unit(session, plan, dir, &caps).unwrap();
        out.push((file.to_owned(), emitted.unit.render(&caps).unwrap()));
    }
    // The training job for Podman 4.3.1 (Debian 12), which has no quadlet: a plain service.
    let caps431 = caps("4.3.1");
    let emitted = container_unit(&job, &job_plan, None, &caps431).unwrap();
    out.push((
        "train-job-podman-4.3.service".to_owned(),
        super::service::plain_service(&emitted.unit).unwrap(),
    ));
    // A JupyterLab notebook on GPU 0, as `podlab notebook install --auto-update` writes it.
    let mut lab = session(
        "notebook",
        GpuRequest::List(vec![GpuSelector::Index(0)]),
        &DEFAULT_COMMAND,
    );
    lab.image = ImageSource::Name("quay.io/jupyter/pytorch-notebook:cuda12-2024-12-02".into());
    lab.ports = vec!["127.0.0.1:8888:8888".parse().unwrap()];
    let mut lab_plan = plan(
        "notebook",
        GpuMode::Cdi(vec!["nvidia.com/gpu=0".into()]),
        &["0"],
    );
    lab_plan.userns = UserNs::KeepIdTo {
        uid: 1000,
        gid: 100,
    };
    let notebook = Notebook {
        secret: secret_name("notebook"),
        health_cmd: DEFAULT_HEALTH_CMD.to_owned(),
        auto_update: true,
    };
    let caps542 = caps("5.4.2");
    let emitted = notebook_unit(&lab, &lab_plan, None, &caps542, &notebook).unwrap();
    out.push((
        "notebook.container".to_owned(),
        emitted.unit.render(&caps542).unwrap(),
    ));
    // The kube flavor of the dev session, next to its YAML (`dev-session.podman.yaml`, from
    // `podlab kube generate`).
    let caps = caps("5.4.2");
    let kube = kube_unit("dev-session", Path::new("dev-session.podman.yaml"), None).unwrap();
    out.push((
        "dev-session.kube".to_owned(),
        kube.unit.render(&caps).unwrap(),
    ));
    out.extend(unit_sets(&dev, &job, &job_plan.gpus.mode, &caps));
    out
}

/// The sets of units of `--kind pod` and of a Containerfile session.
fn unit_sets(
    dev: &Session,
    job: &Session,
    job_gpus: &GpuMode,
    caps: &Capabilities,
) -> Vec<(String, String)> {
    let mut out = Vec::new();
    // `--kind pod` of the dev session: the pod owns the ports, shm and user mapping.
    let mut pod_session = dev.clone();
    pod_session.name = Some("dev-pod".into());
    let mut emitted = container_unit(
        &pod_session,
        &plan("dev-pod", GpuMode::Inline(debian_edits()), &["all"]),
        None,
        caps,
    )
    .unwrap();
    let pod = set::join_pod(&mut emitted, caps).unwrap();
    out.push((
        "dev-pod.container".to_owned(),
        emitted.unit.render(caps).unwrap(),
    ));
    out.push(("dev-pod.pod".to_owned(), pod.render(caps).unwrap()));
    // A training job whose image is built from the project's Containerfile by a `.build` unit.
    let mut built = job.clone();
    built.name = Some("train-build".into());
    built.image = ImageSource::Build {
        containerfile: "/home/dev/vision/Containerfile".into(),
        context: "/home/dev/vision".into(),
        args: BTreeMap::from([("CUDA_VERSION".into(), "12.4.1".into())]),
        tag: "localhost/vision:latest".into(),
    };
    let mut emitted = container_unit(
        &built,
        &plan("train-build", job_gpus.clone(), &["0", "1"]),
        None,
        caps,
    )
    .unwrap();
    let build_unit = set::image_unit(&built.image, &mut emitted, false, caps)
        .unwrap()
        .unwrap();
    out.push((
        "train-build.container".to_owned(),
        emitted.unit.render(caps).unwrap(),
    ));
    out.push((
        "train-build.build".to_owned(),
        build_unit.render(caps).unwrap(),
    ));
    out
}

#[test]
fn golden_units_match_the_generator() {
    let dir = golden_dir();
    let mut drifted = Vec::new();
    for (file, text) in cases() {
        let path = dir.join(&file);
        if blessing() {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(&path, &text).unwrap();
            continue;
        }
        let golden = std::fs::read_to_string(&path).unwrap_or_default();
        if golden != text {
            drifted.push(format!("--- {file} (generated now)\n{text}"));
        }
    }
    assert!(
        drifted.is_empty(),
        "the generator drifted from quadlets/ (PODLAB_BLESS=1 rewrites the files):\n{}",
        drifted.join("\n")
    );
}

#[test]
fn golden_units_pass_quadlet() {
    if !Path::new(QUADLET).exists() {
        assert!(
            std::env::var("PODLAB_E2E").as_deref() != Ok("1"),
            "PODLAB_E2E=1 but {QUADLET} is missing"
        );
        eprintln!("skipping quadlet -dryrun of quadlets/: {QUADLET} is missing");
        return;
    }
    // podlab's own files as generated now (a bless run may be rewriting them), then any other
    // unit file in quadlets/.
    let scratch = tempfile::tempdir().unwrap();
    let mut names = Vec::new();
    let generated = cases();
    // Plain services (for Podman without quadlet) are no input of quadlet's.
    for (file, text) in generated
        .iter()
        .filter(|(file, _)| !file.ends_with(".service"))
    {
        std::fs::write(scratch.path().join(file), text).unwrap();
        names.push(file.rsplit_once('.').unwrap().0.to_owned());
    }
    for entry in std::fs::read_dir(golden_dir()).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let unit = path.extension().is_some_and(|ext| {
            ["container", "kube", "pod", "build", "image"].contains(&&*ext.to_string_lossy())
        });
        if unit && !generated.iter().any(|(file, _)| *file == name) {
            std::fs::copy(&path, scratch.path().join(&name)).unwrap();
            names.push(path.file_stem().unwrap().to_string_lossy().into_owned());
        }
    }
    assert!(names.len() >= 3, "golden units: {names:?}");
    let output = Command::new(QUADLET)
        .args(["-dryrun", "-user", "-no-kmsg-log"])
        .env("QUADLET_UNIT_DIRS", scratch.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "quadlet failed:\n{stderr}");
    // A `.pod` and a `.build` unit make services of their own, named after their type.
    for service in ["dev-pod-pod", "train-build-build"] {
        names.push(service.to_owned());
    }
    for name in names {
        assert!(
            stdout.contains(&format!("---{name}.service---")),
            "quadlet made no service of {name}:\n{stderr}"
        );
    }
    // Two flags that only quadlet's parsing of the escaped values can produce.
    assert!(
        stdout.contains("--label io.podlab.kind=service"),
        "{stdout}"
    );
    assert!(stdout.contains("\"lr=3e-4 $$USER 100%%\""), "{stdout}");
    assert!(
        stdout.contains("--secret podlab-notebook-notebook,type=env,target=JUPYTER_TOKEN"),
        "{stdout}"
    );
}
