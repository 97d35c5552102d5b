//! End-to-end, issue 12: GPU sessions that run the real deep-learning stack. The image is
//! `tests/host/dl-image.sh`'s: Debian with python3, gcc and the real `triton` wheel from PyPI,
//! and no NVIDIA environment (no `LD_LIBRARY_PATH`, no `ld.so.cache` entry for the driver), so
//! Triton's libcuda discovery and its `-lcuda` link work only if podlab's GPU edits provide
//! for them. The libraries are Debian's real 550 userspace files; with the fake GPUs `cuInit`
//! fails (no device), and everything before it must pass.

#![allow(
    clippy::expect_used,
    reason = "test helpers: a failed setup step must fail the test at once"
)]

mod common;

use std::fs;
use std::path::Path;
use std::sync::{Mutex, MutexGuard, PoisonError};

use common::{TestHost, dl_image, host, shared_socket};

const SYSTEM_SPEC: &str = "/etc/cdi/podlab-nvidia.yaml";

/// Tests that install or remove the system CDI spec take turns.
static SYSTEM_SPEC_LOCK: Mutex<()> = Mutex::new(());

fn spec_lock() -> MutexGuard<'static, ()> {
    SYSTEM_SPEC_LOCK
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
}

/// Runs inside the session: Triton's own discovery and stub build, the `-lcuda` link older
/// Triton versions (and torch's inductor) do, ctypes' lookup, then `cuInit`.
const STACK_CHECK: &str = r#"
import ctypes, ctypes.util, os, subprocess, sys, tempfile
os.environ["TRITON_CACHE_DIR"] = tempfile.mkdtemp()
from triton.backends.nvidia import driver
try:
    dirs = driver.libcuda_dirs()
except AssertionError as err:
    sys.exit("libcuda_dirs failed: " + str(err).replace("\n", " "))
print("libcuda_dirs", dirs)
for d in dirs:
    print("holds", d, [n for n in ("libcuda.so.1", "libcuda.so") if os.path.exists(os.path.join(d, n))])
tmp = tempfile.mkdtemp()
with open(tmp + "/stub.c", "w") as f:
    f.write("int cuInit(unsigned int);\nint main(void) { return cuInit(0); }\n")
link = subprocess.run(["cc", tmp + "/stub.c", "-o", tmp + "/stub", "-L" + dirs[0], "-lcuda"],
                      capture_output=True, text=True)
print("lcuda-link", link.returncode, link.stderr.strip())
driver.CudaUtils()
print("triton cuda_utils built and loaded")
print("find_library", ctypes.util.find_library("cuda"))
print("cuInit", ctypes.CDLL("libcuda.so.1").cuInit(0))
"#;

/// `podlab -v run --gpus all` of the check in the deep-learning image.
fn run_stack_check(host: &TestHost, image: &str, name: &str) -> common::Run {
    let project = host.user_dir(name);
    let root = host.nvidia_root.display().to_string();
    let args = [
        "-v",
        "run",
        "--driver-root",
        &root,
        "--gpus",
        "all",
        "--image",
        image,
        "--",
        "python3",
        "-c",
        STACK_CHECK,
    ];
    let run = host.podlab(&args).cwd(&project).output();
    let _ = fs::remove_dir_all(project);
    run
}

/// What the check must print: one directory holding both names, a link, Triton's stub, ctypes'
/// answer; and `cuInit` failing only because there is no GPU (100: CUDA_ERROR_NO_DEVICE).
#[track_caller]
fn assert_stack_works(run: &common::Run) {
    run.expect_code(0);
    let out = &run.stdout;
    assert!(
        out.lines()
            .any(|line| line.starts_with("holds ")
                && line.ends_with("['libcuda.so.1', 'libcuda.so']")),
        "Triton's libcuda directory lacks libcuda.so.1 or libcuda.so:\n{out}"
    );
    for expected in [
        "lcuda-link 0",
        "triton cuda_utils built and loaded",
        "find_library libcuda.so.1",
    ] {
        assert!(out.contains(expected), "missing {expected:?} in:\n{out}");
    }
    let cu_init = out.lines().find_map(|line| line.strip_prefix("cuInit "));
    assert!(
        cu_init.is_some_and(|code| code != "0"),
        "cuInit must run and fail without a GPU:\n{out}"
    );
}

#[test]
fn libcuda_cannot_found_by_triton_in_an_inline_gpu_session() {
    let Some(host) = host() else { return };
    let Some(image) = dl_image() else { return };
    let _socket = shared_socket();
    let _spec = spec_lock();
    let _ = fs::remove_file(SYSTEM_SPEC);
    let run = run_stack_check(host, image, "dl-inline");
    assert!(run.stderr.contains("GPUs: inline edits"), "{}", run.stderr);
    assert_stack_works(&run);
}

#[test]
fn libcuda_cannot_found_by_triton_in_a_session_by_cdi_name() {
    let Some(host) = host() else { return };
    let Some(image) = dl_image() else { return };
    let _socket = shared_socket();
    let _spec = spec_lock();
    let root = host.nvidia_root.display().to_string();
    host.podlab_as_root(&[
        "cdi",
        "install",
        "--system",
        "--driver-root",
        &root,
        "--podman-version",
        "5.4.2",
    ])
    .expect_code(0);
    let run = run_stack_check(host, image, "dl-cdi");
    let _ = fs::remove_file(SYSTEM_SPEC);
    assert!(
        run.stderr.contains("GPUs: by CDI name, nvidia.com/gpu=all"),
        "{}",
        run.stderr
    );
    assert_stack_works(&run);
}

#[test]
fn real_driver_script_dry_run_on_the_debian_root() {
    let Some(host) = host() else { return };
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/gpu/real-driver.sh");
    let output = std::process::Command::new("bash")
        .arg(&script)
        .args(["--dry-run", "--driver-root"])
        .arg(&host.nvidia_root)
        .arg("--podlab")
        .arg(&host.podlab)
        .output()
        .expect("run real-driver.sh");
    let run = common::Run::from(output);
    let report = format!("{}\n{}", run.stdout, run.stderr);
    for expected in [
        "ok dlopen libcuda.so.1",
        "ok libcuda dirs hold libcuda.so.1 and libcuda.so",
        "ok cc -lcuda links",
        "ok ctypes.util.find_library('cuda')",
        "ok nvidia-smi starts",
        "real-driver: all checks passed",
    ] {
        assert!(
            report.contains(expected),
            "missing {expected:?} in:\n{report}"
        );
    }
    assert!(!report.contains("MISSING from the spec"), "{report}");
    run.expect_code(0);
}

/// Builds `tag` from the deep-learning image plus a CUDA forward-compatibility directory as
/// NVIDIA's CUDA images lay it out (`/usr/local/cuda -> cuda-12.9`, `compat/libcuda.so.1 ->
/// libcuda.so.<compat>`, `CUDA_VERSION` set). The compat libcuda is Debian's real libcuda under
/// the compat driver's version: what matters here is which file the loader picks.
fn compat_image(host: &TestHost, base: &str, tag: &str, compat: &str) {
    let context = host.user_dir(&format!("compat-{compat}"));
    let dir = context.join("usr/local/cuda-12.9/compat");
    fs::create_dir_all(&dir).expect("context");
    let real = host
        .nvidia_root
        .join("usr/lib/x86_64-linux-gnu/nvidia/current")
        .join(format!("libcuda.so.{}", host.nvidia_version));
    fs::copy(real, dir.join(format!("libcuda.so.{compat}"))).expect("copy libcuda");
    std::os::unix::fs::symlink(format!("libcuda.so.{compat}"), dir.join("libcuda.so.1"))
        .expect("link");
    std::os::unix::fs::symlink("libcuda.so.1", dir.join("libcuda.so")).expect("link");
    std::os::unix::fs::symlink("cuda-12.9", context.join("usr/local/cuda")).expect("link");
    fs::write(
        context.join("Containerfile"),
        format!("FROM {base}\nENV CUDA_VERSION=12.9.0\nCOPY usr/ /usr/\n"),
    )
    .expect("Containerfile");
    let chown = std::process::Command::new("chown")
        .args(["-R", &format!("{}:{}", host.uid, host.gid)])
        .arg(&context)
        .status()
        .expect("chown");
    assert!(chown.success());
    let context_arg = context.display().to_string();
    host.command("podman", &["build", "-q", "-t", tag, &context_arg])
        .output()
        .expect_code(0);
    let _ = fs::remove_dir_all(context);
}

/// Which libcuda file the loader maps for `dlopen("libcuda.so.1")`, as `/proc/self/maps` says.
const WHICH_LIBCUDA: &str = "import ctypes\nctypes.CDLL('libcuda.so.1')\n\
print([l.split()[-1] for l in open('/proc/self/maps') if 'libcuda' in l][0])";

#[test]
fn forward_compat_libs_newer_than_the_host_driver_are_loaded_without_a_hook() {
    let Some(host) = host() else { return };
    let Some(image) = dl_image() else { return };
    let _socket = shared_socket();
    let _spec = spec_lock();
    let _ = fs::remove_file(SYSTEM_SPEC);
    let root = host.nvidia_root.display().to_string();
    for (compat, used) in [("575.57.08", true), ("535.54.03", false)] {
        let tag = format!("localhost/podlab-test/compat-{compat}:latest");
        compat_image(host, image, &tag, compat);
        let project = host.user_dir(&format!("compat-run-{compat}"));
        let args = [
            "run",
            "--driver-root",
            &root,
            "--gpus",
            "all",
            "--image",
            &tag,
            "--",
            "python3",
            "-c",
            WHICH_LIBCUDA,
        ];
        let run = host.podlab(&args).cwd(&project).output();
        host.command("podman", &["rmi", "-f", &tag]).output();
        let _ = fs::remove_dir_all(project);
        run.expect_code(0);
        let loaded = run.stdout.trim();
        if used {
            assert_eq!(
                loaded,
                format!("/usr/local/cuda-12.9/compat/libcuda.so.{compat}"),
                "{}",
                run.stderr
            );
            assert!(
                run.stderr.contains(&format!(
                    "using the image's CUDA forward-compatibility libcuda {compat}"
                )),
                "{}",
                run.stderr
            );
        } else {
            assert!(!loaded.contains("compat"), "{loaded}");
            assert!(
                run.stderr.contains(&format!(
                    "libcuda {compat} is not newer than the host driver {}: using the host's libcuda",
                    host.nvidia_version
                )),
                "{}",
                run.stderr
            );
        }
    }
}
