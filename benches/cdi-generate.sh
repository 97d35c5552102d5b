#!/usr/bin/env bash
# Benchmarks `podlab cdi generate` as a user types it, against the issue's targets: a two-GPU
# Debian 550 root in <= 2.5 ms median wall time and <= 8 MiB peak RSS, an 8-GPU root with MIG
# in < 5 ms, never more than nvidia-ctk.
#
# The timed commands are what a user types: `podlab cdi generate --driver-root R --dev-root D`,
# no --podman-version, run by the rootless test user in a login-like environment (HOME, PATH,
# an XDG_RUNTIME_DIR where NO socket listens: the "no service running" case). So podlab learns
# the target Podman from dpkg's database where dpkg installed podman (this host), else from
# `podman --version`, remembered in ~/.cache/podlab after the first run (the warmup runs); the
# cold row removes that entry before each run (the first run after a podman upgrade). The row with --podman-version is an extra, labelled as pinned.
# Baselines in the same hyperfine invocation: nvidia-ctk's own `cdi generate` on the same roots
# when benches/setup-nvidia-ctk.sh has built it, `ldconfig -p` on the same ld.so.cache, and
# /bin/true (the spawn floor). Load average is printed before and after: the host is shared.
# It reports and exits 0 whether or not the targets are met; non-zero only when setup fails.
#
# Needs a provisioned test host (sudo tests/host/provision.sh) for its real NVIDIA userspace
# tree and test user; run as root. PODLAB_BIN=path skips the release build; BENCH_OUT=dir
# keeps the JSON (target/bench); NVIDIA_CTK=path names another nvidia-ctk.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
die() { printf 'cdi-generate: error: %s\n' "$*" >&2; exit 1; }
NEED_PROVISION="hint: run sudo tests/host/provision.sh once (it writes /etc/podlab-test-host.env)"

for tool in hyperfine python3 /usr/bin/time ldconfig runuser; do
  command -v "$tool" >/dev/null || die "$tool is missing"$'\n'"$NEED_PROVISION"
done
[[ -r /etc/podlab-test-host.env ]] || die "no test host"$'\n'"$NEED_PROVISION"
# shellcheck disable=SC1091
. /etc/podlab-test-host.env
ROOT=${PODLAB_TEST_NVIDIA_ROOT:-}
[[ -n $ROOT && -f $ROOT/etc/ld.so.cache ]] ||
  die "no NVIDIA userspace tree (PODLAB_TEST_NVIDIA_ROOT='$ROOT')"$'\n'"$NEED_PROVISION"
LIBDIR=$ROOT/usr/lib/x86_64-linux-gnu/nvidia/current
VERSION=${PODLAB_TEST_NVIDIA_VERSION:-$(find "$LIBDIR" -maxdepth 1 -type f -name 'libcuda.so.*.*' \
  -printf '%f\n' 2>/dev/null | sed -n 's/^libcuda\.so\.//p' | head -n1)}
[[ -n $VERSION ]] || die "no libcuda.so.<version> in $LIBDIR"$'\n'"$NEED_PROVISION"

if [[ -z ${PODLAB_BIN:-} ]]; then
  (cd "$REPO" && cargo build --release --locked --quiet) || die "cargo build --release failed"
  PODLAB_BIN=$REPO/target/release/podlab
fi
[[ -x $PODLAB_BIN ]] || die "$PODLAB_BIN is not an executable"
OUT=${BENCH_OUT:-$REPO/target/bench}
mkdir -p "$OUT"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
chmod 755 "$WORK"
install -m 755 "$PODLAB_BIN" "$WORK/podlab"
# The user's world: its own HOME (an empty ~/.cache) and a runtime dir with no socket in it.
install -d -m 700 -o "$PODLAB_TEST_USER" "$WORK/home" "$WORK/run" "$WORK/out"
CACHE=$WORK/home/.cache/podlab/podman-version.json
CTK=${NVIDIA_CTK:-/var/cache/podlab-bench/bin/nvidia-ctk}

# make_dev_root DIR GPUS [MIG spec...]: /proc, /sys and /dev as the driver makes them for GPUS
# H100s; each MIG spec is "GPU:GI:CI[,CI...]". Device nodes are real character devices with the
# driver's numbers (nvidia-ctk takes nothing else; nothing opens them).
make_dev_root() {
  local dir=$1 gpus=$2 i bus spec gpu gi cis ci
  shift 2
  mkdir -p "$dir"/{dev/dri,proc/driver/nvidia/gpus,proc/driver/nvidia-caps}
  printf 'NVRM version: NVIDIA UNIX x86_64 Kernel Module  %s  Tue Jun  3 20:26:52 UTC 2025\n' \
    "$VERSION" >"$dir/proc/driver/nvidia/version"
  mknod -m 666 "$dir/dev/nvidiactl" c 195 255
  mknod -m 666 "$dir/dev/nvidia-uvm" c 508 0
  mknod -m 666 "$dir/dev/nvidia-uvm-tools" c 508 1
  if (($#)); then # MIG on: nvidia-modprobe made the config and monitor capability nodes
    mkdir -p "$dir/dev/nvidia-caps"
    mknod -m 444 "$dir/dev/nvidia-caps/nvidia-cap1" c 509 1
    mknod -m 444 "$dir/dev/nvidia-caps/nvidia-cap2" c 509 2
  fi
  # The driver lists every possible capability (32 GPUs x 15 GIs x 8 CIs), MIG or not.
  awk 'BEGIN { print "config 1"; print "monitor 2"
    for (g = 0; g < 32; g++) for (i = 0; i < 15; i++) { m = 3 + g * 135 + i * 9
      printf "gpu%d/gi%d/access %d\n", g, i, m
      for (c = 0; c < 8; c++) printf "gpu%d/gi%d/ci%d/access %d\n", g, i, c, m + c + 1 } }' \
    >"$dir/proc/driver/nvidia-caps/mig-minors"
  for ((i = 0; i < gpus; i++)); do
    bus=$(printf '0000:%02x:00.0' $((0x18 + i * 0x1d)))
    mkdir -p "$dir/proc/driver/nvidia/gpus/$bus" "$dir/sys/bus/pci/devices/$bus/drm/"{card$i,renderD$((128 + i))}
    printf 'Model: \t\t NVIDIA H100 80GB HBM3\nIRQ:   \t\t 0\nGPU UUID: \t GPU-%08x-5a1e-4c3b-9d2f-%012x\nVideo BIOS: \t 96.00.99.00.01\nBus Type: \t PCIe\nBus Location: \t %s\nDevice Minor: \t %d\nGPU Excluded:\t No\n' \
      $((0x2b0c0000 + i)) $((0xa0 + i)) "$bus" "$i" >"$dir/proc/driver/nvidia/gpus/$bus/information"
    mknod -m 666 "$dir/dev/nvidia$i" c 195 "$i"
    mknod -m 666 "$dir/dev/dri/card$i" c 226 "$i"
    mknod -m 666 "$dir/dev/dri/renderD$((128 + i))" c 226 $((128 + i))
  done
  for spec in "$@"; do
    IFS=: read -r gpu gi cis <<<"$spec"
    mig_cap "$dir" "gpu$gpu/mig/gi$gi" $((3 + gpu * 135 + gi * 9))
    for ci in ${cis//,/ }; do mig_cap "$dir" "gpu$gpu/mig/gi$gi/ci$ci" $((3 + gpu * 135 + gi * 9 + ci + 1)); done
  done
}
# mig_cap DIR INSTANCE MINOR: the instance's proc capability file and its /dev/nvidia-caps node.
mig_cap() {
  mkdir -p "$1/proc/driver/nvidia/capabilities/$2"
  printf 'DeviceFileMinor: %d\nDeviceFileMode: 292\n' "$3" >"$1/proc/driver/nvidia/capabilities/$2/access"
  mknod -m 444 "$1/dev/nvidia-caps/nvidia-cap$3" c 509 "$3"
}
make_dev_root "$WORK/two" 2
# MIG as the eight_gpus_mig fixture: two 3g instances on GPU 2 (one split in three), four 1g on GPU 5.
make_dev_root "$WORK/eight" 8 2:1:0,1,2 2:2:0 5:7:0 5:8:0 5:9:0 5:10:0

AS_USER=(runuser -u "$PODLAB_TEST_USER" -- env -i HOME="$WORK/home" PATH=/usr/bin:/bin
  XDG_RUNTIME_DIR="$WORK/run" PODMAN_IGNORE_CGROUPSV1_WARNING=1)
ROOTS=(--driver-root "$ROOT" --dev-root)
TWO=("$WORK/podlab" cdi generate "${ROOTS[@]}" "$WORK/two")
EIGHT=("$WORK/podlab" cdi generate "${ROOTS[@]}" "$WORK/eight")
PINNED=("${TWO[@]}" --podman-version "$("${AS_USER[@]}" podman --version | awk '{print $NF}')")
# nvidia-ctk's management mode: its only mode that works without a loaded kernel driver (the
# default, nvml, fails with "Driver Not Loaded"); its spec has one device (all) and its hooks.
CTK_TWO=("$CTK" cdi generate --mode management --driver-root "$ROOT" --dev-root "$WORK/two")
LDCONFIG=("$(command -v ldconfig)" -p -C "$ROOT/etc/ld.so.cache")
check() { # NAME DEVICES COMMAND...: one run, which must find DEVICES devices (all, index, uuid, MIG)
  local name=$1 want=$2 got
  shift 2
  "${AS_USER[@]}" "$@" >"$WORK/spec.yaml" 2>"$WORK/err" || { cat "$WORK/err" >&2; die "$name failed"; }
  got=$(grep -c '^- name:' "$WORK/spec.yaml" || true)
  [[ $got == "$want" ]] || { cat "$WORK/err" >&2; die "$name gave $got devices, not $want"; }
  printf '%-20s %d devices, %d mounts, %d stderr lines, %s\n' "$name:" "$got" \
    "$(grep -c 'hostPath:' "$WORK/spec.yaml")" "$(wc -l <"$WORK/err")" "$(grep -m1 cdiVersion "$WORK/spec.yaml")"
}
check podlab-2gpu 5 "${TWO[@]}"
check podlab-8gpu-mig 25 "${EIGHT[@]}"
check podlab-2gpu-pinned 5 "${PINNED[@]}"
[[ -s $CACHE ]] || die "podlab did not remember the podman version in $CACHE"
names=(podlab-2gpu podlab-8gpu-mig podlab-2gpu-cold podlab-2gpu-pinned)
cmds=("${TWO[*]@Q}" "${EIGHT[*]@Q}" "${TWO[*]@Q}" "${PINNED[*]@Q}")
prepare=(true true "rm -f $CACHE" true)
if [[ -x $CTK ]] && "${AS_USER[@]}" "${CTK_TWO[@]}" >"$WORK/ctk.yaml" 2>"$WORK/ctk.err"; then
  printf '%-20s %d devices (%s)\n' "nvidia-ctk-2gpu:" "$(grep -c -- '- name:' "$WORK/ctk.yaml" || true)" \
    "$("$CTK" --version | head -n1)"
  names+=(nvidia-ctk-2gpu) cmds+=("${CTK_TWO[*]@Q}") prepare+=(true)
else
  echo "nvidia-ctk-2gpu: not measured (no $CTK, or it failed: $(tail -n1 "$WORK/ctk.err" 2>/dev/null)); hint: sudo benches/setup-nvidia-ctk.sh"
fi
names+=(ldconfig-p true) cmds+=("${LDCONFIG[*]@Q}" /bin/true) prepare+=(true true)
args=()
for i in "${!names[@]}"; do args+=(--prepare "${prepare[$i]}" -n "${names[$i]}" "${cmds[$i]}"); done

# Peak RSS (KiB, children included, so a spawned podman counts): median of 11 runs.
rss() {
  for _ in $(seq 11); do
    "${AS_USER[@]}" /usr/bin/time -f %M -o "$WORK/out/rss" "$@" >/dev/null 2>&1; cat "$WORK/out/rss"
  done | sort -n | sed -n 6p
}
RSS_TWO=$(rss "${TWO[@]}") RSS_EIGHT=$(rss "${EIGHT[@]}") RSS_LDCONFIG=$(rss "${LDCONFIG[@]}")
RSS_PINNED=$(rss "${PINNED[@]}") RSS_CTK=$([[ ${names[*]} == *nvidia-ctk* ]] && rss "${CTK_TWO[@]}" || echo 0)

echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
# -N: no shell, so each run is one exec of the command itself; stdout goes to /dev/null.
# hyperfine itself runs as the user, in the user's environment, so the commands do too.
"${AS_USER[@]}" hyperfine -N --style none --warmup 50 --min-runs 300 \
  --export-json "$WORK/out/cdi-generate.json" "${args[@]}"
cp "$WORK/out/cdi-generate.json" "$OUT/cdi-generate.json"
echo "load average after:  $(cut -d' ' -f1-3 /proc/loadavg)"

RSS_TWO=$RSS_TWO RSS_EIGHT=$RSS_EIGHT RSS_LDCONFIG=$RSS_LDCONFIG RSS_PINNED=$RSS_PINNED RSS_CTK=$RSS_CTK \
  python3 - "$OUT/cdi-generate.json" <<'EOF'
import json, os, sys
res = {r["command"]: r for r in json.load(open(sys.argv[1]))["results"]}
ms = {name: r["median"] * 1e3 for name, r in res.items()}
mib = {"podlab-2gpu": "RSS_TWO", "podlab-8gpu-mig": "RSS_EIGHT", "ldconfig-p": "RSS_LDCONFIG",
       "podlab-2gpu-pinned": "RSS_PINNED", "nvidia-ctk-2gpu": "RSS_CTK"}
mib = {k: int(os.environ[v]) / 1024 for k, v in mib.items() if k in res}
print(f"\n{'command':<20} {'median ms':>9} {'min ms':>7} {'runs':>5} {'peak RSS MiB':>12}")
for name, r in res.items():
    rss = f"{mib[name]:.1f}" if name in mib else "-"
    print(f"{name:<20} {ms[name]:>9.3f} {r['min'] * 1e3:>7.3f} {len(r['times']):>5} {rss:>12}")
print("(podlab-2gpu-cold: the remembered podman version removed before each run, so it is looked up again;\n"
      " podlab-2gpu-pinned: --podman-version given, an extra row, not what a user types)")
print()
ctk = ms.get("nvidia-ctk-2gpu")
for name in ("podlab-2gpu", "podlab-8gpu-mig", "podlab-2gpu-cold"):
    line = (f"{name}: {ms[name] / ms['ldconfig-p']:.2f}x ldconfig -p, {ms[name] / ms['true']:.2f}x /bin/true, "
            f"{ms[name] - ms['true']:.3f} ms above the spawn floor")
    if ctk:
        line += f", {ms[name] / ctk:.2f}x nvidia-ctk"
    print(line)
ok = lambda b: "met" if b else "MISSED"
print(f"\ntarget 2-GPU median <= 2.5 ms:     {ok(ms['podlab-2gpu'] <= 2.5)} ({ms['podlab-2gpu']:.3f} ms)")
print(f"target 2-GPU peak RSS <= 8 MiB:    {ok(mib['podlab-2gpu'] <= 8)} ({mib['podlab-2gpu']:.1f} MiB)")
print(f"target 8-GPU MIG median < 5 ms:    {ok(ms['podlab-8gpu-mig'] < 5)} ({ms['podlab-8gpu-mig']:.3f} ms)")
print(f"(8-GPU MIG peak RSS <= 8 MiB:      {ok(mib['podlab-8gpu-mig'] <= 8)}, {mib['podlab-8gpu-mig']:.1f} MiB)")
if ctk:
    for name in ("podlab-2gpu", "podlab-2gpu-cold"):
        print(f"target {name} <= nvidia-ctk:  {ok(ms[name] <= ctk)} ({ms[name]:.3f} vs {ctk:.3f} ms)")
    print(f"peak RSS podlab-2gpu {mib['podlab-2gpu']:.1f} MiB vs nvidia-ctk {mib['nvidia-ctk-2gpu']:.1f} MiB")
else:
    print("(nvidia-ctk not measured: no anchor in this run)")
EOF
echo "hyperfine JSON: $OUT/cdi-generate.json"
