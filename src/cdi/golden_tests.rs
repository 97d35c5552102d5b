//! Golden CDI specs: each synthetic driver root of [`crate::gpu::fixtures`] is discovered,
//! turned into a spec and rendered as YAML, and the text is compared with the checked-in file
//! `cdi/<case>.yaml` at the top of the repository. `PODLAB_BLESS=1 cargo test --lib golden`
//! rewrites those files instead. Temp-dir paths are shown as `/ROOT` (and `/DEVROOT` for the
//! dev root of `split_roots`).
//!
//! Besides the text, each root's key facts are asserted directly, so a blessed file cannot hide
//! a wrong spec.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use super::document::{Format, render};
use super::generate::{Generated, HookMode, Options, TRITON_LIBCUDA_DIR, generate};
use super::spec::Spec;
use super::validate::validate_text;
use crate::capabilities::CdiVersion;
use crate::gpu::fixtures::{self, Fixture, Manifest};
use crate::gpu::inventory::{Inventory, discover};

/// Every golden file, by case name.
const CASES: [&str; 9] = [
    "debian_like",
    "debian_like-nvidia-cdi-hook",
    "ubuntu_flat",
    "ubuntu_flat-cdi-0.6.0",
    "fedora_lib64",
    "usr_local_nvidia",
    "split_roots",
    "eight_gpus_mig",
    "half_installed",
];

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("cdi")
}

fn blessing() -> bool {
    std::env::var_os("PODLAB_BLESS").is_some_and(|value| value == "1")
}

/// One generation of a fixture, with its text normalised.
struct Case {
    inventory: Inventory,
    generated: Generated,
    text: String,
    warnings: Vec<String>,
}

/// Replaces the fixture's temp paths with `/ROOT` and `/DEVROOT`.
fn normalise(fixture: &Fixture, text: &str) -> String {
    let roots = &fixture.roots;
    let driver = roots.driver_root.display().to_string();
    let dev = roots.dev_root.display().to_string();
    let text = if dev == driver {
        text.to_owned()
    } else {
        text.replace(&dev, "/DEVROOT")
    };
    text.replace(&driver, "/ROOT")
}

/// The render node's group is whatever the host lent the fixture; golden files show
/// [`fixtures::RENDER_GID`].
fn canonical_gids(fixture: &Fixture, spec: &mut Spec) {
    let Some(gid) = fixture.render_gid else {
        return;
    };
    let edits = std::iter::once(&mut spec.container_edits).chain(
        spec.devices
            .iter_mut()
            .map(|device| &mut device.container_edits),
    );
    for edits in edits {
        for value in &mut edits.additional_gids {
            if *value == gid {
                *value = fixtures::RENDER_GID;
            }
        }
    }
}

fn run(fixture: &Fixture, options: &Options) -> Case {
    let inventory = discover(&fixture.roots).unwrap();
    let generated = generate(&inventory, &fixture.roots, options).unwrap();
    let mut spec = generated.spec.clone();
    canonical_gids(fixture, &mut spec);
    let text = normalise(fixture, &render(&spec, Format::Yaml, None).unwrap());
    let warnings = generated
        .warnings
        .iter()
        .map(|warning| normalise(fixture, &warning.message))
        .collect();
    Case {
        inventory,
        generated,
        text,
        warnings,
    }
}

/// Compares `text` with `cdi/<name>.yaml` (or writes it when blessing), and validates it.
fn check_golden(name: &str, text: &str) {
    let path = golden_dir().join(format!("{name}.yaml"));
    if blessing() {
        fs::create_dir_all(golden_dir()).unwrap();
        fs::write(&path, text).unwrap();
    } else {
        let expected = fs::read_to_string(&path).unwrap_or_else(|err| {
            panic!(
                "cannot read golden spec {}: {err}\n(run `PODLAB_BLESS=1 cargo test --lib golden` to create it)",
                path.display()
            )
        });
        if let Some(difference) = first_difference(&expected, text) {
            panic!(
                "generated spec differs from cdi/{name}.yaml {difference}\n\
                 If the change is intended, run `PODLAB_BLESS=1 cargo test --lib golden` and review \
                 `git diff cdi/`.\n--- generated ---\n{text}"
            );
        }
    }
    if let Err(problems) = validate_text(text) {
        let shown: Vec<String> = problems.iter().map(ToString::to_string).collect();
        panic!("cdi/{name}.yaml does not validate:\n{}", shown.join("\n"));
    }
}

/// "at line N" with both lines and a little context, or `None` when equal.
fn first_difference(expected: &str, actual: &str) -> Option<String> {
    if expected == actual {
        return None;
    }
    let old: Vec<&str> = expected.lines().collect();
    let new: Vec<&str> = actual.lines().collect();
    let at = (0..old.len().max(new.len()))
        .find(|&i| old.get(i) != new.get(i))
        .unwrap_or(old.len().min(new.len()));
    let context: Vec<String> = new
        .get(at.saturating_sub(3)..at)
        .unwrap_or_default()
        .iter()
        .map(|line| format!("    {line}"))
        .collect();
    let show = |line: Option<&&str>| line.map_or("<end of file>".to_owned(), |l| format!("{l:?}"));
    Some(format!(
        "at line {} ({} lines golden, {} generated):\n{}\n  golden:    {}\n  generated: {}",
        at + 1,
        old.len(),
        new.len(),
        context.join("\n"),
        show(old.get(at)),
        show(new.get(at)),
    ))
}

fn mounts_at<'a>(spec: &'a Spec, container: &str) -> Vec<&'a str> {
    spec.container_edits
        .mounts
        .iter()
        .filter(|mount| mount.container_path == container)
        .map(|mount| mount.host_path.as_str())
        .collect()
}

fn device_names(spec: &Spec) -> Vec<&str> {
    spec.devices
        .iter()
        .map(|device| device.name.as_str())
        .collect()
}

fn all_device_node_host_paths(spec: &Spec) -> Vec<(String, Option<String>)> {
    spec.all_edits()
        .flat_map(|edits| &edits.device_nodes)
        .map(|node| (node.path.clone(), node.host_path.clone()))
        .collect()
}

/// Generation is deterministic: twice on one root, and on a second build of the same root.
fn assert_deterministic(build: fn() -> Fixture, options: &Options, first: &Case) {
    let fixture = build();
    let again = run(&fixture, options);
    assert_eq!(again.text, first.text, "a second build differs");
    let inventory = discover(&fixture.roots).unwrap();
    let once = generate(&inventory, &fixture.roots, options).unwrap().spec;
    let twice = generate(&inventory, &fixture.roots, options).unwrap().spec;
    assert_eq!(once, twice);
}

#[test]
fn golden_debian_like() {
    let fixture = fixtures::debian_like();
    let case = run(&fixture, &Options::default());
    check_golden("debian_like", &case.text);
    assert_deterministic(fixtures::debian_like, &Options::default(), &case);
    let spec = &case.generated.spec;
    let real = |name: &str| format!("/ROOT/usr/lib/x86_64-linux-gnu/nvidia/current/{name}");
    // The SONAME path is a mount of the real versioned file, found through /etc/alternatives.
    let cuda = mounts_at(spec, "/usr/lib/x86_64-linux-gnu/libcuda.so.1");
    assert_eq!(cuda.len(), 1);
    assert_eq!(
        normalise(&fixture, cuda[0]),
        real(&format!("libcuda.so.{}", fixture.version))
    );
    let nvvm = mounts_at(spec, "/usr/lib/x86_64-linux-gnu/libnvidia-nvvm.so.4");
    assert_eq!(
        normalise(&fixture, nvvm[0]),
        real(&format!("libnvidia-nvvm.so.{}", fixture.version))
    );
    // nvidia-smi is the real binary behind the alternative link.
    let smi = mounts_at(spec, "/usr/bin/nvidia-smi");
    assert_eq!(
        normalise(&fixture, smi[0]),
        "/ROOT/usr/lib/nvidia/current/nvidia-smi"
    );
    assert_eq!(
        case.inventory.library_dirs,
        vec![PathBuf::from("/usr/lib/x86_64-linux-gnu/nvidia/current")]
    );
    assert!(
        case.text
            .contains("/lib/firmware/nvidia/550.163.01/gsp_ga10x.bin")
    );
    assert!(
        case.text
            .contains("/usr/share/vulkan/icd.d/nvidia_icd.json")
    );
    assert!(case.text.contains("/run/nvidia-persistenced/socket"));
    assert_eq!(
        device_names(spec),
        [
            "0",
            "1",
            case.inventory.gpus[0].uuid.as_deref().unwrap(),
            case.inventory.gpus[1].uuid.as_deref().unwrap(),
            "all"
        ]
    );
    assert!(case.warnings.is_empty(), "{:?}", case.warnings);
    assert!(spec.container_edits.hooks.is_empty());
}

#[test]
fn golden_debian_like_nvidia_cdi_hook() {
    let fixture = fixtures::debian_like();
    let options = Options {
        hooks: HookMode::NvidiaCdiHook,
        ..Options::default()
    };
    let case = run(&fixture, &options);
    check_golden("debian_like-nvidia-cdi-hook", &case.text);
    let spec = &case.generated.spec;
    // Libraries at their host paths, and the hooks NVIDIA's form needs.
    let dir = "/usr/lib/x86_64-linux-gnu/nvidia/current";
    assert_eq!(
        mounts_at(spec, &format!("{dir}/libcuda.so.{}", fixture.version)).len(),
        1
    );
    assert!(mounts_at(spec, "/usr/lib/x86_64-linux-gnu/libcuda.so.1").is_empty());
    let args: Vec<String> = spec
        .container_edits
        .hooks
        .iter()
        .map(|hook| hook.args.join(" "))
        .collect();
    assert!(
        args.contains(&format!(
            "nvidia-cdi-hook create-symlinks --link libcuda.so.1::{dir}/libcuda.so"
        )),
        "{args:?}"
    );
    assert!(
        args.contains(&format!("nvidia-cdi-hook update-ldcache --folder {dir}")),
        "{args:?}"
    );
    assert!(
        spec.container_edits
            .hooks
            .iter()
            .all(|hook| hook.path == "/usr/bin/nvidia-cdi-hook"
                && hook.hook_name == "createContainer")
    );
}

#[test]
fn golden_ubuntu_flat() {
    let fixture = fixtures::ubuntu_flat();
    let case = run(&fixture, &Options::default());
    let spec = &case.generated.spec;
    let multiarch = "/usr/lib/x86_64-linux-gnu";
    assert_eq!(
        case.inventory.library_dirs,
        vec![PathBuf::from(multiarch)],
        "ld.so.cache: {}",
        fixture.ld_cache
    );
    // vdpau/ and the EGL platform libraries, which carry their own versions.
    let vdpau = mounts_at(spec, &format!("{multiarch}/vdpau/libvdpau_nvidia.so.1"));
    assert_eq!(
        normalise(&fixture, vdpau[0]),
        format!(
            "/ROOT{multiarch}/vdpau/libvdpau_nvidia.so.{}",
            fixture.version
        )
    );
    for (soname, file) in [
        ("libnvidia-egl-gbm.so.1", "libnvidia-egl-gbm.so.1.1.2"),
        ("libnvidia-egl-xcb.so.1", "libnvidia-egl-xcb.so.1.0.4"),
        ("libnvidia-egl-xlib.so.1", "libnvidia-egl-xlib.so.1.0.4"),
    ] {
        let host = mounts_at(spec, &format!("{multiarch}/{soname}"));
        assert_eq!(host.len(), 1, "{soname}");
        assert_eq!(
            normalise(&fixture, host[0]),
            format!("/ROOT{multiarch}/{file}")
        );
    }
    // Every library is mounted in the three loader directories.
    for dir in [multiarch, "/usr/lib64", "/usr/local/nvidia/lib64"] {
        assert_eq!(
            mounts_at(spec, &format!("{dir}/libcuda.so.1")).len(),
            1,
            "{dir}"
        );
    }
    assert!(
        case.text
            .contains("/usr/share/egl/egl_external_platform.d/20_nvidia_xlib.json")
    );
    assert!(case.text.contains("/dev/dri/renderD128"));
    assert!(case.warnings.is_empty(), "{:?}", case.warnings);
    let Some(gid) = fixture.render_gid else {
        eprintln!("skipping the ubuntu_flat golden files: the render node has no group here");
        return;
    };
    check_golden("ubuntu_flat", &case.text);
    assert_deterministic(fixtures::ubuntu_flat, &Options::default(), &case);
    // The render node's group reaches the GPU's device and `all`, and needs cdiVersion 0.7.0.
    assert_eq!(spec.cdi_version, "0.7.0");
    let gids = |name: &str| {
        spec.devices
            .iter()
            .find(|device| device.name == name)
            .map(|device| device.container_edits.additional_gids.clone())
            .unwrap()
    };
    assert_eq!(gids("0"), [gid]);
    assert_eq!(gids("all"), [gid]);

    // Podman 4.7-5.0 loads 0.6.0 at most: the groups are dropped, with a warning.
    let options = Options {
        max_version: Some(CdiVersion::V0_6_0),
        ..Options::default()
    };
    let old = run(&fixture, &options);
    check_golden("ubuntu_flat-cdi-0.6.0", &old.text);
    assert_eq!(old.generated.spec.cdi_version, "0.5.0");
    assert!(!old.text.contains("additionalGids"));
    assert!(
        old.warnings
            .iter()
            .any(|warning| warning.starts_with("dropped additionalGids")),
        "{:?}",
        old.warnings
    );
}

#[test]
fn golden_fedora_lib64() {
    let fixture = fixtures::fedora_lib64();
    let case = run(&fixture, &Options::default());
    check_golden("fedora_lib64", &case.text);
    assert_deterministic(fixtures::fedora_lib64, &Options::default(), &case);
    let spec = &case.generated.spec;
    assert_eq!(
        case.inventory.library_dirs,
        vec![PathBuf::from("/usr/lib64")]
    );
    // Nothing from the 32-bit copies in /usr/lib (but firmware lives under /usr/lib too).
    for mount in &spec.container_edits.mounts {
        let host = normalise(&fixture, &mount.host_path);
        assert!(
            !host.starts_with("/ROOT/usr/lib/") || host.starts_with("/ROOT/usr/lib/firmware/"),
            "32-bit file mounted: {host}"
        );
    }
    let cuda = mounts_at(spec, "/usr/lib64/libcuda.so.1");
    assert_eq!(
        normalise(&fixture, cuda[0]),
        format!("/ROOT/usr/lib64/libcuda.so.{}", fixture.version)
    );
    // The Vulkan ICD file carries the architecture in its name on Fedora.
    assert_eq!(
        mounts_at(spec, "/usr/share/vulkan/icd.d/nvidia_icd.x86_64.json").len(),
        1
    );
    // The 32-bit one too: the loader reads every file there and skips what it cannot load.
    assert_eq!(
        mounts_at(spec, "/usr/share/vulkan/icd.d/nvidia_icd.i686.json").len(),
        1
    );
    assert_eq!(
        normalise(
            &fixture,
            mounts_at(spec, "/usr/lib64/vdpau/libvdpau_nvidia.so.1")[0]
        ),
        format!(
            "/ROOT/usr/lib64/vdpau/libvdpau_nvidia.so.{}",
            fixture.version
        )
    );
    assert!(case.warnings.is_empty(), "{:?}", case.warnings);
}

#[test]
fn golden_usr_local_nvidia() {
    let fixture = fixtures::usr_local_nvidia();
    let case = run(&fixture, &Options::default());
    check_golden("usr_local_nvidia", &case.text);
    assert_deterministic(fixtures::usr_local_nvidia, &Options::default(), &case);
    let spec = &case.generated.spec;
    assert_eq!(
        case.inventory.library_dirs,
        vec![PathBuf::from("/usr/local/nvidia/lib64")]
    );
    assert_eq!(
        normalise(
            &fixture,
            mounts_at(spec, "/usr/local/nvidia/lib64/libcuda.so.1")[0]
        ),
        format!(
            "/ROOT/usr/local/nvidia/lib64/libcuda.so.{}",
            fixture.version
        )
    );
    for binary in [
        "nvidia-smi",
        "nvidia-debugdump",
        "nvidia-persistenced",
        "nvidia-cuda-mps-control",
        "nvidia-cuda-mps-server",
    ] {
        assert_eq!(
            normalise(&fixture, mounts_at(spec, &format!("/usr/bin/{binary}"))[0]),
            format!("/ROOT/usr/local/nvidia/bin/{binary}")
        );
    }
    assert!(case.inventory.firmware.is_empty());
    assert!(case.warnings.is_empty(), "{:?}", case.warnings);
}

#[test]
fn golden_split_roots() {
    let fixture = fixtures::split_roots();
    let case = run(&fixture, &Options::default());
    check_golden("split_roots", &case.text);
    assert_deterministic(fixtures::split_roots, &Options::default(), &case);
    let spec = &case.generated.spec;
    assert_eq!(spec.cdi_version, "0.5.0");
    let dev_root = fixture.roots.dev_root.display().to_string();
    let nodes = all_device_node_host_paths(spec);
    assert!(!nodes.is_empty());
    for (path, host) in nodes {
        assert_eq!(host, Some(format!("{dev_root}{path}")), "{path}");
    }
    // Libraries, binaries and firmware come from the driver root; IPC from the host.
    let driver = |path: &str| normalise(&fixture, mounts_at(spec, path)[0]);
    assert_eq!(
        driver("/usr/lib/x86_64-linux-gnu/libcuda.so.1"),
        format!(
            "/ROOT/usr/lib/x86_64-linux-gnu/libcuda.so.{}",
            fixture.version
        )
    );
    assert_eq!(driver("/usr/bin/nvidia-smi"), "/ROOT/usr/bin/nvidia-smi");
    assert_eq!(
        driver("/run/nvidia-persistenced/socket"),
        "/DEVROOT/run/nvidia-persistenced/socket"
    );
    assert!(!case.text.contains("\n/ROOT/dev"), "{}", case.text);
    assert!(case.warnings.is_empty(), "{:?}", case.warnings);
}

#[test]
fn golden_eight_gpus_mig() {
    let fixture = fixtures::eight_gpus_mig();
    let case = run(&fixture, &Options::default());
    check_golden("eight_gpus_mig", &case.text);
    assert_deterministic(fixtures::eight_gpus_mig, &Options::default(), &case);
    let spec = &case.generated.spec;
    let names: BTreeSet<&str> = device_names(spec).into_iter().collect();
    for index in 0..8 {
        assert!(names.contains(index.to_string().as_str()), "{names:?}");
    }
    assert!(names.contains("all"));
    let mig: Vec<&str> = device_names(spec)
        .into_iter()
        .filter(|name| name.contains(':'))
        .collect();
    assert_eq!(
        mig,
        ["2:0", "2:1", "2:2", "2:3", "5:0", "5:1", "5:2", "5:3"]
    );
    // Index (bus order) and minor differ: GPU 2 is /dev/nvidia0, and its MIG devices carry
    // that node and the capability nodes of gpu0 in the driver's numbering.
    let nodes = |name: &str| -> Vec<String> {
        spec.devices
            .iter()
            .find(|device| device.name == name)
            .unwrap()
            .container_edits
            .device_nodes
            .iter()
            .map(|node| node.path.clone())
            .collect()
    };
    assert_eq!(nodes("2"), ["/dev/nvidia0"]);
    // gpu0/gi1/access 12, gpu0/gi1/ci0/access 13; gpu0/gi1/ci2/access 15.
    assert_eq!(
        nodes("2:0"),
        [
            "/dev/nvidia0",
            "/dev/nvidia-caps/nvidia-cap12",
            "/dev/nvidia-caps/nvidia-cap13"
        ]
    );
    assert_eq!(
        nodes("2:2"),
        [
            "/dev/nvidia0",
            "/dev/nvidia-caps/nvidia-cap12",
            "/dev/nvidia-caps/nvidia-cap15"
        ]
    );
    // GPU 5 is minor 7: gpu7/gi7/access = 3 + 7*135 + 7*9 = 1011.
    assert_eq!(
        nodes("5:0"),
        [
            "/dev/nvidia7",
            "/dev/nvidia-caps/nvidia-cap1011",
            "/dev/nvidia-caps/nvidia-cap1012"
        ]
    );
    // The GPUs, then each GPU instance's and compute instance's capability node once.
    assert_eq!(nodes("all").len(), 8 + (2 + 4) + (4 + 4));
    assert!(case.text.contains("/run/nvidia-fabricmanager/socket"));
    assert!(case.warnings.is_empty(), "{:?}", case.warnings);
}

#[test]
fn golden_half_installed() {
    let fixture = fixtures::half_installed();
    let case = run(&fixture, &Options::default());
    check_golden("half_installed", &case.text);
    assert_deterministic(fixtures::half_installed, &Options::default(), &case);
    let warnings = case.warnings.join("\n");
    assert!(
        warnings.contains("/dev/nvidia-uvm is missing"),
        "{warnings}"
    );
    for stem in fixtures::HALF_INSTALLED_BROKEN {
        let broken = format!("{stem}.so.{}", fixture.version);
        assert!(
            warnings.contains(&format!("skipping /ROOT/usr/lib/x86_64-linux-gnu/{broken}")),
            "{broken}: {warnings}"
        );
        assert!(!case.text.contains(&broken), "{broken} mounted");
    }
    assert!(
        warnings.contains("/dev/nvidia-caps is missing"),
        "{warnings}"
    );
    assert!(
        warnings.contains("GPU 1 has no device node /dev/nvidia1"),
        "{warnings}"
    );
    assert!(warnings.contains("ld.so.cache"), "{warnings}");
    let spec = &case.generated.spec;
    assert_eq!(device_names(spec).first(), Some(&"0"));
    assert!(mounts_at(spec, "/usr/lib/x86_64-linux-gnu/libcuda.so.1").len() == 1);
    assert!(!case.text.contains("nvidia-uvm"));
}

#[test]
fn no_driver_is_a_user_error() {
    let fixture = fixtures::no_driver();
    let err = discover(&fixture.roots).unwrap_err();
    assert_eq!(
        err.message(),
        format!(
            "no NVIDIA driver found under {}",
            fixture.roots.driver_root.display()
        )
    );
    assert_eq!(err.exit_code(), 1);
    assert!(
        err.hint_text()
            .is_some_and(|hint| hint.contains("--driver-root"))
    );
}

/// Every checked-in golden file validates, and each belongs to a case (no stale leftovers).
#[test]
fn golden_files_validate_and_have_cases() {
    let Ok(entries) = fs::read_dir(golden_dir()) else {
        assert!(
            blessing(),
            "no cdi/ folder: run PODLAB_BLESS=1 cargo test --lib golden"
        );
        return;
    };
    let known: BTreeSet<String> = CASES.iter().map(|case| format!("{case}.yaml")).collect();
    let mut seen = BTreeSet::new();
    for entry in entries {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        if Path::new(&name).extension() != Some("yaml".as_ref()) {
            continue;
        }
        assert!(
            known.contains(&name),
            "cdi/{name} belongs to no golden case"
        );
        let text = fs::read_to_string(golden_dir().join(&name)).unwrap();
        if let Err(problems) = validate_text(&text) {
            let shown: Vec<String> = problems.iter().map(ToString::to_string).collect();
            panic!("cdi/{name} does not validate:\n{}", shown.join("\n"));
        }
        seen.insert(name);
    }
    if !blessing() {
        assert_eq!(seen, known, "golden files missing");
    }
}

#[test]
fn first_difference_names_the_line() {
    assert_eq!(first_difference("a\nb\n", "a\nb\n"), None);
    let text = first_difference("a\nb\nc\n", "a\nx\nc\n").unwrap();
    assert!(
        text.starts_with("at line 2 (3 lines golden, 3 generated)"),
        "{text}"
    );
    assert!(
        text.contains("golden:    \"b\"") && text.contains("generated: \"x\""),
        "{text}"
    );
    let text = first_difference("a\n", "a\nb\n").unwrap();
    assert!(text.contains("golden:    <end of file>"), "{text}");
}

/// Issue 12: every 64-bit library of the driver's version that the real packages install is
/// mounted, wherever they install it (Debian keeps `libnvidia-gpucomp`, `-glcore`, `-eglcore`,
/// ... in the multiarch directory, not beside libcuda), and so are the graphics stack's JSON
/// files; compared with the manifests' package file lists, not with a list of names.
#[test]
fn libraries_outside_libcudas_directory_are_mounted() {
    type Case = (fn() -> Fixture, &'static str);
    let cases: [Case; 4] = [
        (fixtures::debian_like, "debian-trixie"),
        (fixtures::ubuntu_flat, "ubuntu-noble"),
        (fixtures::fedora_lib64, "fedora-rpmfusion"),
        (fixtures::usr_local_nvidia, "usr-local-nvidia"),
    ];
    for (build, manifest) in cases {
        let fixture = build();
        let case = run(&fixture, &Options::default());
        let mounted: BTreeSet<PathBuf> = case
            .generated
            .spec
            .container_edits
            .mounts
            .iter()
            .filter_map(|mount| fs::canonicalize(&mount.host_path).ok())
            .collect();
        let manifest = Manifest::load(manifest);
        let libraries = manifest.libraries();
        assert!(libraries.len() > 10, "{}: {libraries:?}", fixture.name);
        for path in libraries {
            let host = fixture.roots.driver_root.join(path.trim_start_matches('/'));
            let Ok(real) = fs::canonicalize(&host) else {
                continue;
            };
            let name = real.file_name().unwrap().to_string_lossy().into_owned();
            // X server modules and the like are not the driver's loadable libraries.
            if !name.contains(&format!(".so.{}", fixture.version))
                && !name.starts_with("libnvidia-")
            {
                continue;
            }
            assert!(
                mounted.contains(&real),
                "{}: {path} is installed by the driver's packages but not mounted",
                fixture.name
            );
        }
    }
    let fixture = fixtures::debian_like();
    let case = run(&fixture, &Options::default());
    let spec = &case.generated.spec;
    let gpucomp = format!("libnvidia-gpucomp.so.{}", fixture.version);
    assert_eq!(
        mounts_at(spec, &format!("/usr/lib/x86_64-linux-gnu/{gpucomp}"))
            .iter()
            .map(|host| normalise(&fixture, host))
            .collect::<Vec<_>>(),
        [format!("/ROOT/usr/lib/x86_64-linux-gnu/{gpucomp}")]
    );
    for config in [
        "/usr/share/glvnd/egl_vendor.d/10_nvidia.json",
        "/usr/share/egl/egl_external_platform.d/10_nvidia_wayland.json",
        "/usr/share/egl/egl_external_platform.d/15_nvidia_gbm.json",
        "/usr/share/vulkan/icd.d/nvidia_icd.json",
        "/usr/share/vulkan/implicit_layer.d/nvidia_layers.json",
        "/etc/OpenCL/vendors/nvidia.icd",
    ] {
        assert_eq!(mounts_at(spec, config).len(), 1, "{config}");
    }
    // GBM's backend, behind Debian's alternatives link.
    let gbm = mounts_at(spec, "/usr/lib/x86_64-linux-gnu/gbm/nvidia-drm_gbm.so");
    assert_eq!(
        gbm.iter()
            .map(|host| normalise(&fixture, host))
            .collect::<Vec<_>>(),
        [format!(
            "/ROOT/usr/lib/x86_64-linux-gnu/nvidia/current/libnvidia-allocator.so.{}",
            fixture.version
        )]
    );
}

/// Issue 12: "libcuda.so cannot found!". Triton finds libcuda through `ldconfig -p`, then
/// `LD_LIBRARY_PATH`, then `TRITON_LIBCUDA_PATH`, and links with `-lcuda`: the hook-free spec
/// sets the last to a directory where both `libcuda.so.1` and `libcuda.so` are the real
/// libcuda, on every layout, whether or not the host's packages ship `libcuda.so`.
#[test]
fn libcuda_cannot_found_triton_gets_libcuda_so_and_its_path() {
    let builds: [fn() -> Fixture; 6] = [
        fixtures::debian_like,
        fixtures::ubuntu_flat,
        fixtures::fedora_lib64,
        fixtures::usr_local_nvidia,
        fixtures::split_roots,
        fixtures::eight_gpus_mig,
    ];
    for build in builds {
        let fixture = build();
        let case = run(&fixture, &Options::default());
        let spec = &case.generated.spec;
        let env = &spec.container_edits.env;
        assert!(
            env.contains(&format!("TRITON_LIBCUDA_PATH={TRITON_LIBCUDA_DIR}")),
            "{}: {env:?}",
            fixture.name
        );
        let soname = mounts_at(spec, &format!("{TRITON_LIBCUDA_DIR}/libcuda.so.1"));
        let dev = mounts_at(spec, &format!("{TRITON_LIBCUDA_DIR}/libcuda.so"));
        assert_eq!(soname.len(), 1, "{}", fixture.name);
        assert_eq!(soname, dev, "{}", fixture.name);
        let real = normalise(&fixture, soname[0]);
        assert!(
            real.ends_with(&format!("/libcuda.so.{}", fixture.version)),
            "{}: {real}",
            fixture.name
        );
    }
    // Other development names the packages ship are there too (Debian: libnvidia-ml.so, ...).
    let fixture = fixtures::debian_like();
    let case = run(&fixture, &Options::default());
    for stem in ["libnvidia-ml", "libnvcuvid", "libnvidia-encode"] {
        let dir = "/usr/lib/x86_64-linux-gnu";
        let dev = mounts_at(&case.generated.spec, &format!("{dir}/{stem}.so"));
        assert_eq!(dev.len(), 1, "{stem}.so");
        assert_eq!(
            dev,
            mounts_at(&case.generated.spec, &format!("{dir}/{stem}.so.1")),
            "{stem}"
        );
    }
    // NVIDIA's hooked form makes the link and the cache itself: no variable.
    let fixture = fixtures::debian_like();
    let options = Options {
        hooks: HookMode::NvidiaCdiHook,
        ..Options::default()
    };
    let case = run(&fixture, &options);
    assert!(
        !case
            .generated
            .spec
            .container_edits
            .env
            .iter()
            .any(|value| value.starts_with("TRITON_LIBCUDA_PATH="))
    );
}
