#!/usr/bin/env bash
# Benchmarks `podlab cdi generate` against the issue's targets: a two-GPU Debian 550 root in
# <= 2.5 ms median wall time and <= 8 MiB peak RSS, an 8-GPU root with MIG in < 5 ms (anchor:
# nvidia-ctk, about 25 ms and 28 MiB; not installable here). Baselines run in the same
# hyperfine invocation: `ldconfig -p` on the same ld.so.cache, and /bin/true (the spawn floor).
# It reports and exits 0 whether or not the targets are met; non-zero only when setup fails.
#
# Needs a provisioned test host (sudo tests/host/provision.sh) for its real NVIDIA userspace
# tree. PODLAB_BIN=path skips the release build; BENCH_OUT=dir keeps the JSON (target/bench).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
die() { printf 'cdi-generate: error: %s\n' "$*" >&2; exit 1; }
NEED_PROVISION="hint: run sudo tests/host/provision.sh once (it writes /etc/podlab-test-host.env)"

for tool in hyperfine python3 /usr/bin/time ldconfig; do
  command -v "$tool" >/dev/null || die "$tool is missing"$'\n'"$NEED_PROVISION"
done
if [[ -z ${PODLAB_TEST_NVIDIA_ROOT:-} && -r /etc/podlab-test-host.env ]]; then
  # shellcheck disable=SC1091
  . /etc/podlab-test-host.env
fi
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

# make_dev_root DIR GPUS [MIG spec...]: /proc, /sys and /dev as the driver makes them for GPUS
# H100s; each MIG spec is "GPU:GI:CI[,CI...]". Device nodes are links to /dev/null.
make_dev_root() {
  local dir=$1 gpus=$2 i bus spec gpu gi cis ci
  shift 2
  mkdir -p "$dir"/{dev/dri,proc/driver/nvidia/gpus,proc/driver/nvidia-caps}
  printf 'NVRM version: NVIDIA UNIX x86_64 Kernel Module  %s  Tue Jun  3 20:26:52 UTC 2025\n' \
    "$VERSION" >"$dir/proc/driver/nvidia/version"
  for node in nvidiactl nvidia-uvm nvidia-uvm-tools; do ln -s /dev/null "$dir/dev/$node"; done
  if (($#)); then # MIG on: nvidia-modprobe made the config and monitor capability nodes
    mkdir -p "$dir/dev/nvidia-caps"
    ln -s /dev/null "$dir/dev/nvidia-caps/nvidia-cap1"
    ln -s /dev/null "$dir/dev/nvidia-caps/nvidia-cap2"
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
    ln -s /dev/null "$dir/dev/nvidia$i"
    ln -s /dev/null "$dir/dev/dri/card$i"
    ln -s /dev/null "$dir/dev/dri/renderD$((128 + i))"
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
  ln -s /dev/null "$1/dev/nvidia-caps/nvidia-cap$3"
}
make_dev_root "$WORK/two" 2
# MIG as the eight_gpus_mig fixture: two 3g instances on GPU 2 (one split in three), four 1g on GPU 5.
make_dev_root "$WORK/eight" 8 2:1:0,1,2 2:2:0 5:7:0 5:8:0 5:9:0 5:10:0

COMMON=(cdi generate --driver-root "$ROOT" --podman-version 5.4.2 --output -)
TWO=("$PODLAB_BIN" "${COMMON[@]}" --dev-root "$WORK/two")
EIGHT=("$PODLAB_BIN" "${COMMON[@]}" --dev-root "$WORK/eight")
LDCONFIG=(ldconfig -p -C "$ROOT/etc/ld.so.cache")
check() { # NAME DEVICES COMMAND...: one run, which must find DEVICES devices (all, index, uuid, MIG)
  local name=$1 want=$2 got
  shift 2
  "$@" >"$WORK/spec.yaml" 2>"$WORK/err" || { cat "$WORK/err" >&2; die "podlab failed on the $name root"; }
  got=$(grep -c '^- name:' "$WORK/spec.yaml" || true)
  [[ $got == "$want" ]] || { cat "$WORK/err" >&2; die "the $name root gave $got devices, not $want"; }
  printf '%-9s root: %d devices, %d mounts, %d stderr lines\n' "$name" "$got" \
    "$(grep -c 'hostPath:' "$WORK/spec.yaml")" "$(wc -l <"$WORK/err")"
}
check 2-GPU 5 "${TWO[@]}"
check 8-GPU-MIG 25 "${EIGHT[@]}"

# Peak RSS (KiB): median of 11 runs under GNU time.
rss() { for _ in $(seq 11); do /usr/bin/time -f %M -o "$WORK/rss" "$@" >/dev/null 2>&1; cat "$WORK/rss"; done | sort -n | sed -n 6p; }
RSS_TWO=$(rss "${TWO[@]}") RSS_EIGHT=$(rss "${EIGHT[@]}") RSS_LDCONFIG=$(rss "${LDCONFIG[@]}")

# -N: no shell, so each run is one exec of the command itself; stdout goes to /dev/null.
hyperfine -N --style none --warmup 50 --min-runs 500 --export-json "$OUT/cdi-generate.json" \
  -n podlab-2gpu "${TWO[*]@Q}" -n podlab-8gpu-mig "${EIGHT[*]@Q}" -n ldconfig-p "${LDCONFIG[*]@Q}" \
  -n true /bin/true

RSS_TWO=$RSS_TWO RSS_EIGHT=$RSS_EIGHT RSS_LDCONFIG=$RSS_LDCONFIG python3 - "$OUT/cdi-generate.json" <<'EOF'
import json, os, sys
res = {r["command"]: r for r in json.load(open(sys.argv[1]))["results"]}
ms = {name: r["median"] * 1e3 for name, r in res.items()}
mib = {"podlab-2gpu": "RSS_TWO", "podlab-8gpu-mig": "RSS_EIGHT", "ldconfig-p": "RSS_LDCONFIG"}
mib = {k: int(os.environ[v]) / 1024 for k, v in mib.items()}
print(f"\n{'command':<16} {'median ms':>9} {'min ms':>7} {'runs':>5} {'peak RSS MiB':>12}")
for name, r in res.items():
    rss = f"{mib[name]:.1f}" if name in mib else "-"
    print(f"{name:<16} {ms[name]:>9.3f} {r['min'] * 1e3:>7.3f} {len(r['times']):>5} {rss:>12}")
print()
for name in ("podlab-2gpu", "podlab-8gpu-mig"):
    print(f"{name}: {ms[name] / ms['ldconfig-p']:.2f}x ldconfig -p, {ms[name] / ms['true']:.2f}x /bin/true, "
          f"{ms[name] - ms['true']:.3f} ms above the spawn floor")
ok = lambda b: "met" if b else "MISSED"
print(f"\ntarget 2-GPU median <= 2.5 ms:     {ok(ms['podlab-2gpu'] <= 2.5)} ({ms['podlab-2gpu']:.3f} ms; nvidia-ctk anchor 25 ms)")
print(f"target 2-GPU peak RSS <= 8 MiB:    {ok(mib['podlab-2gpu'] <= 8)} ({mib['podlab-2gpu']:.1f} MiB; anchor 28 MiB)")
print(f"target 8-GPU MIG median < 5 ms:    {ok(ms['podlab-8gpu-mig'] < 5)} ({ms['podlab-8gpu-mig']:.3f} ms)")
print(f"(8-GPU MIG peak RSS <= 8 MiB:      {ok(mib['podlab-8gpu-mig'] <= 8)}, {mib['podlab-8gpu-mig']:.1f} MiB)")
EOF
echo "hyperfine JSON: $OUT/cdi-generate.json"
