//! End-to-end, issue 12: GPU sessions that run the real deep-learning stack. The image is
//! `tests/host/dl-image.sh`'s: Debian with python3, gcc and the real `triton` wheel from PyPI,
//! and no NVIDIA environment (no `LD_LIBRARY_PATH`, no `ld.so.cache` entry for the driver), so
//! Triton's libcuda discovery and its `-lcuda` link work only if podlab's GPU edits provide
//! for them. The libraries are Debian's real 550 userspace files; with the fake GPUs `cuInit`
//! fails (no device), and everything before it must pass.

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
