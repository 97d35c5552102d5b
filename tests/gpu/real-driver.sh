#!/usr/bin/env bash
# real-driver.sh: check podlab's CDI spec against a host's real NVIDIA driver, end to end.
#
# NOT YET RUN ON REAL HARDWARE. It was written and exercised only in --dry-run mode against
# Debian's real 550 userspace files (tests/host/provision.sh unpacks them under
# /var/cache/podlab-test/nvidia-debian/root; CI runs it that way, see tests/real_driver.rs).
# The first run on a GPU host is itself the test of the non-dry parts: read its output.
#
# What it does:
#   1. generates the spec for the driver as installed (`podlab cdi generate --format json`);
#   2. lists every NVIDIA library that `ldconfig -p` knows and the spec does not mount
#      (compared by the file each resolves to), and fails when there is one;
#   3. builds a container from the host's own root and the spec's edits alone, without Podman,
#      runc or bwrap: in new mount and PID namespaces (util-linux `unshare`, as root), overlays of `/`'s directories from which every
#      driver file, the driver root and /etc/ld.so.cache are removed (so nothing NVIDIA is left
#      but what the spec adds), a fresh /dev, then the spec's mounts, device nodes and env;
#   4. runs inside it: the dynamic loader on libcuda.so.1; Triton's libcuda discovery
#      (`triton.backends.nvidia.driver.libcuda_dirs()` when triton is installed, else its rules)
#      and a `cc ... -lcuda` link against the directory it finds; `ctypes.util.find_library`;
#      nvidia-smi; a CUDA kernel built with the host's nvcc (when there is one); and, when
#      python3 can import torch, `torch.compile` of a function on a GPU tensor.
#
# Needs: root, bash, python3, util-linux (unshare, mount), a kernel with overlayfs, the podlab binary
# (--podlab, else target/{release,debug}/podlab of this checkout, else `podlab` on PATH); a C
# compiler for the link check, nvcc for the kernel check. Nothing is installed or downloaded:
# it works on a host with no package registry, no Podman and no runc. Driver files may be
# read-only (e.g. under /usr/local/nvidia): nothing under the driver root is written.
#
# Usage: real-driver.sh [--driver-root DIR] [--podlab BIN] [--dry-run]
#   --driver-root DIR  where the driver's files are (default /; e.g. /run/nvidia/driver)
#   --dry-run          no GPU: the driver's files are a root like the Debian one above; library
#                      loading, discovery and linking are checked, and nvidia-smi must start
#                      and fail only for want of a driver; the CUDA and torch checks are skipped
# Exit status: 0 all checks passed, 1 a check failed, 2 cannot run here.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CHECKOUT=$(cd "$HERE/../.." && pwd)
DRIVER_ROOT=/
PODLAB=
DRY=0

say() { printf 'real-driver: %s\n' "$*" >&2; }
die() { printf 'real-driver: error: %s\n' "$1" >&2; [[ -n ${2:-} ]] && printf 'hint: %s\n' "$2" >&2; exit 2; }

while [[ $# -gt 0 ]]; do
  case $1 in
    --driver-root) DRIVER_ROOT=${2:?--driver-root needs a directory}; shift 2 ;;
    --podlab) PODLAB=${2:?--podlab needs a path}; shift 2 ;;
    --dry-run) DRY=1; shift ;;
    -h | --help) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument $1" "see $0 --help" ;;
  esac
done

[[ -d $DRIVER_ROOT ]] || die "no driver root at $DRIVER_ROOT" "pass --driver-root DIR"
DRIVER_ROOT=$(cd "$DRIVER_ROOT" && pwd -P)
if [[ -z $PODLAB ]]; then
  for candidate in "$CHECKOUT/target/release/podlab" "$CHECKOUT/target/debug/podlab" "$(command -v podlab || true)"; do
    [[ -n $candidate && -x $candidate ]] && { PODLAB=$candidate; break; }
  done
fi
[[ -n $PODLAB && -x $PODLAB ]] || die "no podlab binary" "cargo build --release, or pass --podlab BIN"
for tool in python3 unshare mount; do
  command -v "$tool" >/dev/null || die "$tool is missing" "install it (python3; util-linux for unshare and mount)"
done
# Root: a user namespace maps only the caller, so the overlays' directories (owned by the
# unmapped real root) refuse the mount points the spec's edits need.
[[ $(id -u) -eq 0 ]] || die "must run as root (it mounts in a private namespace)" "sudo $0 $*"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/podlab-real-driver.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
chmod 755 "$WORK"

# --- 1. the spec -------------------------------------------------------------------------------
say "generating the spec for $DRIVER_ROOT with $PODLAB"
"$PODLAB" cdi generate --driver-root "$DRIVER_ROOT" --podman-version 5.8.0 --format json \
  -o "$WORK/spec.json" || { say "podlab cdi generate failed"; exit 1; }

# --- 2. libraries ldconfig knows that the spec lacks; the container plan -------------------------
# plan.sh gets: HIDE+=(paths to remove from the overlay), MOUNTS+=(host container),
# NODES+=(host container), ENVS+=(K=V).
python3 - "$WORK/spec.json" "$DRIVER_ROOT" "$DRY" >"$WORK/plan.sh" <<'PY' || exit 1
import json, os, re, shlex, subprocess, sys

spec_path, root, dry = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
spec = json.load(open(spec_path))
NVIDIA = re.compile(r"^lib(cuda|cudadebugger|nvcuvid|nvoptix|nvidia-[\w.+-]+|\w+_nvidia)\.so")


def inside(path):
    """Resolves an absolute path inside the driver root, following links within it."""
    parts, seen, real = [p for p in path.split("/") if p], 0, "/"
    while parts:
        name = parts.pop(0)
        if name == "..":
            real = os.path.dirname(real)
            continue
        candidate = os.path.join(real, name)
        host = os.path.join(root, candidate.lstrip("/"))
        if os.path.islink(host):
            seen += 1
            if seen > 40:
                return None
            target = os.readlink(host)
            parts = [p for p in target.split("/") if p] + parts
            real = "/" if target.startswith("/") else real
        else:
            real = candidate
    host = os.path.join(root, real.lstrip("/"))
    return host if os.path.exists(host) else None


edits = [spec.get("containerEdits", {})] + [
    d.get("containerEdits", {}) for d in spec["devices"] if d["name"] == "all"]
mounts = [(m["hostPath"], m["containerPath"]) for e in edits for m in e.get("mounts", [])]
nodes = [(n.get("hostPath", n["path"]), n["path"]) for e in edits for n in e.get("deviceNodes", [])]
envs = [v for e in edits for v in e.get("env", [])]
mounted = {os.path.realpath(h) for h, _ in mounts}

cache = os.path.join(root, "etc/ld.so.cache")
listing = ""
if os.path.exists(cache):
    listing = subprocess.run(["/sbin/ldconfig", "-p", "-C", cache], capture_output=True, text=True).stdout
else:
    # A driver only on LD_LIBRARY_PATH (as under /usr/local/nvidia on GKE) is in no cache.
    print(f"real-driver: note: no ld.so.cache at {cache}: no libraries to compare", file=sys.stderr)
known = {}
for line in listing.splitlines()[1:]:
    match = re.match(r"\s*(\S+) \((.*)\) => (\S+)", line)
    if match and NVIDIA.match(match.group(1)) and "x86-64" in match.group(2):
        known.setdefault(match.group(3), match.group(1))
missing, hide = [], set()
for path, name in sorted(known.items()):
    real = inside(path)
    hide.update({path, os.path.relpath(real, root) if real else path})
    if real is None:
        print(f"real-driver: note: ld.so.cache lists {path}, which does not resolve", file=sys.stderr)
    elif os.path.realpath(real) not in mounted:
        missing.append(f"{name} => {path}")
print(f"real-driver: ld.so.cache lists {len(known)} NVIDIA libraries; the spec mounts "
      f"{len(mounted)} files", file=sys.stderr)
for entry in missing:
    print(f"real-driver: MISSING from the spec: {entry}", file=sys.stderr)

print(f"MISSING={len(missing)}")
# What the container must not see: with a driver root of its own, all of it; else each file the
# cache lists (and its links' targets), the driver's programs, /etc/ld.so.cache.
if root != "/":
    print(f"HIDE+=({shlex.quote(root)})")
else:
    for path in sorted(hide):
        print(f"HIDE+=({shlex.quote('/' + path.lstrip('/'))})")
        # A driver installed under a prefix of its own goes as a whole.
        for prefix in ("/usr/local/nvidia", "/opt/nvidia", "/run/nvidia"):
            if ("/" + path.lstrip("/")).startswith(prefix + "/"):
                print(f"HIDE+=({prefix})")
    for host, container in mounts:
        if "/bin/" in container:
            print(f"HIDE+=({shlex.quote(container)})")
        # A driver under a prefix of its own (as GKE's /usr/local/nvidia) goes as a whole.
        for prefix in ("/usr/local/nvidia", "/opt/nvidia", "/run/nvidia"):
            if host.startswith(prefix + "/"):
                print(f"HIDE+=({prefix})")
print("HIDE+=(/etc/ld.so.cache)")
for host, container in mounts:
    print(f"MOUNTS+=({shlex.quote(host)} {shlex.quote(container)})")
for host, container in nodes:
    print(f"NODES+=({shlex.quote(host)} {shlex.quote(container)})")
for value in envs:
    print(f"ENVS+=({shlex.quote(value)})")
PY
HIDE=() MOUNTS=() NODES=() ENVS=() MISSING=0
# shellcheck disable=SC1091
. "$WORK/plan.sh"
say "spec: ${#MOUNTS[@]} mounts, ${#NODES[@]} device nodes, env: ${ENVS[*]:-none}"

# --- 3. the checks run inside ------------------------------------------------------------------
cat >"$WORK/check.py" <<'PY'
"""Runs inside the container: each check prints `ok NAME` or `FAIL NAME: why`."""
import ctypes, ctypes.util, importlib.util, os, subprocess, sys, tempfile

dry = sys.argv[1] == "1"
failures = 0


def check(name, ok, why=""):
    global failures
    print(f"ok {name}" if ok else f"FAIL {name}: {why}", flush=True)
    failures += 0 if ok else 1


try:
    ctypes.CDLL("libcuda.so.1")
    check("dlopen libcuda.so.1", True)
except OSError as err:
    check("dlopen libcuda.so.1", False, err)

# Triton's own discovery when it is installed; else its three rules, as it applies them.
if importlib.util.find_spec("triton"):
    from triton.backends.nvidia import driver
    try:
        dirs = driver.libcuda_dirs()
    except Exception as err:  # noqa: BLE001 - Triton raises AssertionError with its message
        dirs = []
        check("triton libcuda_dirs", False, str(err).replace("\n", " "))
else:
    path = os.environ.get("TRITON_LIBCUDA_PATH")
    if path:
        dirs = [path]
    else:
        out = subprocess.run(["/sbin/ldconfig", "-p"], capture_output=True, text=True).stdout
        dirs = [os.path.dirname(l.split()[-1]) for l in out.splitlines() if "libcuda.so.1" in l]
        if not dirs:
            dirs = [d for d in os.environ.get("LD_LIBRARY_PATH", "").split(":")
                    if d and os.path.exists(os.path.join(d, "libcuda.so.1"))]
usable = [d for d in dirs if all(os.path.exists(os.path.join(d, n)) for n in ("libcuda.so.1", "libcuda.so"))]
check("libcuda dirs hold libcuda.so.1 and libcuda.so", bool(usable), f"found {dirs}")
cc = next((c for c in ("cc", "gcc", "clang") if subprocess.run(["sh", "-c", f"command -v {c}"], capture_output=True).returncode == 0), None)
if cc and usable:
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "stub.c")
        open(src, "w").write("int cuInit(unsigned int);\nint main(void) { return cuInit(0) == 0 ? 0 : 3; }\n")
        out = subprocess.run([cc, src, "-o", os.path.join(tmp, "stub"), f"-L{usable[0]}", "-lcuda"],
                             capture_output=True, text=True)
        check("cc -lcuda links", out.returncode == 0, out.stderr.strip())
elif not cc:
    print("skip cc -lcuda (no C compiler)")
found = ctypes.util.find_library("cuda")
check("ctypes.util.find_library('cuda')", found is not None, "None")

smi = subprocess.run(["sh", "-c", "nvidia-smi"], capture_output=True, text=True)
text = (smi.stdout + smi.stderr).strip().replace("\n", " ")
if dry:
    # No driver: it must start (found, its libraries load) and say it cannot reach the driver.
    check("nvidia-smi starts", smi.returncode not in (126, 127) and "NVIDIA" in text, text)
else:
    check("nvidia-smi", smi.returncode == 0, text)
    if os.path.exists("/tmp/podlab-kernel"):
        run = subprocess.run(["/tmp/podlab-kernel"], capture_output=True, text=True)
        check("CUDA kernel built with nvcc", run.returncode == 0 and "sum 1048576" in run.stdout,
              (run.stdout + run.stderr).strip())
    else:
        print("skip CUDA kernel (no nvcc on the host)")
    if importlib.util.find_spec("torch"):
        code = ("import torch\n"
                "f = torch.compile(lambda x: torch.sin(x) * 2 + 1)\n"
                "x = torch.arange(1024, device='cuda', dtype=torch.float32)\n"
                "assert torch.allclose(f(x), torch.sin(x) * 2 + 1)\nprint('compiled')\n")
        run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        check("torch.compile on the GPU", run.returncode == 0, run.stderr.strip()[-2000:])
    else:
        print("skip torch.compile (python3 cannot import torch)")
sys.exit(1 if failures else 0)
PY

if [[ $DRY -eq 0 ]] && command -v nvcc >/dev/null; then
  cat >"$WORK/kernel.cu" <<'CU'
#include <cstdio>
__global__ void add(const int *x, int *sum, int n) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) atomicAdd(sum, x[i]);
}
int main() {
  const int n = 1 << 20;
  int *x, *sum;
  if (cudaMallocManaged(&x, n * sizeof(int)) != cudaSuccess) { puts("cudaMallocManaged failed"); return 1; }
  cudaMallocManaged(&sum, sizeof(int));
  for (int i = 0; i < n; i++) x[i] = 1;
  *sum = 0;
  add<<<(n + 255) / 256, 256>>>(x, sum, n);
  cudaError_t err = cudaDeviceSynchronize();
  printf("%s sum %d\n", cudaGetErrorString(err), *sum);
  return err == cudaSuccess && *sum == n ? 0 : 1;
}
CU
  say "building a CUDA kernel with $(command -v nvcc)"
  nvcc -o "$WORK/kernel" "$WORK/kernel.cu" || { say "nvcc failed"; exit 1; }
fi

# --- 4. the container --------------------------------------------------------------------------
# Runs in new mount and PID namespaces; everything it mounts disappears with them.
cat >"$WORK/inside.sh" <<'SH'
set -euo pipefail
. "$WORK/plan.sh"
R=$WORK/ovl/root
mount --make-rprivate /
mkdir -p "$WORK/ovl"
mount -t tmpfs tmpfs "$WORK/ovl"
mkdir -p "$R"
# The host's top-level directories, each a copy-on-write overlay (one of all of `/` is refused in
# a user namespace), links as they are, and empty mount points for the API filesystems.
for entry in /*; do
  name=${entry#/}
  if [[ -L $entry ]]; then
    ln -s "$(readlink "$entry")" "$R/$name"
  elif [[ -d $entry ]]; then
    mkdir -p "$R/$name"
    case $name in
      proc | sys | dev | run | tmp | mnt | media | lost+found) continue ;;
    esac
    mkdir -p "$WORK/ovl/up/$name" "$WORK/ovl/work/$name"
    mount -t overlay overlay \
      -o "lowerdir=$entry,upperdir=$WORK/ovl/up/$name,workdir=$WORK/ovl/work/$name" "$R/$name"
  fi
done
# An overlay shows one filesystem only: programs and Python packages on filesystems of
# their own come in as read-only binds.
while read -r mountpoint; do
  case $mountpoint in
    /usr | /usr/* | /opt | /opt/* | /home | /home/* | /srv | /var/lib | /root)
      [[ -d $R$mountpoint ]] && mount --rbind -o ro "$mountpoint" "$R$mountpoint" ;;
  esac
done < <(awk '{ print $5 }' /proc/self/mountinfo | sort -u)
# Removed from the overlay; on a read-only bind, covered instead.
for path in "${HIDE[@]}"; do
  [[ -e $R$path || -L $R$path ]] || continue
  rm -rf "${R:?}$path" 2>/dev/null && continue
  if [[ -d $R$path ]]; then mount -t tmpfs -o mode=755 tmpfs "$R$path"; else mount --bind /dev/null "$R$path"; fi
done
# The check's own files come back in /tmp after the driver root is gone.
mkdir -p "$R/tmp" && chmod 1777 "$R/tmp"
cp "$WORK/check.py" "$R/tmp/podlab-check.py"
[[ -f $WORK/kernel ]] && cp "$WORK/kernel" "$R/tmp/podlab-kernel"
mount -t proc proc "$R/proc"
mount --rbind /sys "$R/sys"
mount -t tmpfs -o mode=755 tmpfs "$R/dev"
for dev in null zero full random urandom tty; do
  touch "$R/dev/$dev"; mount --bind "/dev/$dev" "$R/dev/$dev"
done
mkdir -p "$R/dev/shm" && mount -t tmpfs tmpfs "$R/dev/shm"
ln -s /proc/self/fd "$R/dev/fd"
set -- "${MOUNTS[@]}"
while [[ $# -gt 0 ]]; do
  host=$1 target=$R$2; shift 2
  mkdir -p "$(dirname "$target")"
  if [[ -d $host ]]; then mkdir -p "$target"; else rm -f "$target"; touch "$target"; fi
  mount --bind "$host" "$target"
  mount -o remount,bind,ro,nosuid,nodev "$target" 2>/dev/null || true
done
set -- "${NODES[@]}"
while [[ $# -gt 0 ]]; do
  host=$1 target=$R$2; shift 2
  mkdir -p "$(dirname "$target")"; touch "$target"
  mount --bind "$host" "$target"
done
exec chroot "$R" /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
  HOME=/tmp TRITON_CACHE_DIR=/tmp/triton "${ENVS[@]}" python3 /tmp/podlab-check.py "$DRY"
SH
say "running the checks in a container made from / minus the driver, plus the spec's edits"
status=0
WORK=$WORK DRY=$DRY unshare --mount --pid --fork bash "$WORK/inside.sh" || status=$?
if [[ $MISSING -gt 0 ]]; then
  say "FAIL: $MISSING NVIDIA libraries ldconfig knows are missing from the spec (listed above)"
  status=1
fi
[[ $status -eq 0 ]] && say "all checks passed" || say "checks failed"
exit "$((status == 0 ? 0 : 1))"
