#!/usr/bin/env bash
# Benchmarks a GPU session's start as a user types it, in one hyperfine invocation, as the
# rootless test user on its own warm socket (the default path of a user who runs sessions: the
# user's podman.sock answers; no --url, no --no-autostart), in the image a Triton/PyTorch user
# has (tests/host/dl-image.sh's: Debian, python3, gcc, the triton wheel; BENCH_IMAGE=name for
# another). Rows:
#   podlab-none    podlab run --gpus none                       (a session without GPUs)
#   podlab-all     podlab run --gpus all --driver-root ROOT     (the Debian NVIDIA root; no spec
#                  Podman reads, so the GPU edits go inline, fitted to the image: discovery,
#                  then the create call)
#   podman-none    podman run --rm IMAGE true
#   podman-fitted  podman run --device with a spec of exactly podlab-all's mounts and device
#                  nodes (taken from its create body): what those cost Podman itself
#   podman-podlab  podman run --device with podlab's own hook-free spec (in /etc/cdi, removed
#                  on exit): every driver file, in the three library directories
#   podman-ctk     podman run --device with nvidia-ctk's hooked spec (management mode, the only
#                  one without a loaded driver; nvidia-cdi-hook createContainer hooks), when
#                  benches/setup-nvidia-ctk.sh has built it
#   runuser-true   the runuser/env wrapper every row pays
# Targets: podlab-all <= 1.05x podlab-none (issue 12), podlab-none <= 0.75x podman-none, podlab's
# peak RSS < 20 MiB. Medians; load average printed before and after (the host is shared).
# It reports and exits 0 whether or not the targets are met; non-zero only when setup fails.
# Needs a provisioned test host (sudo tests/host/provision.sh); run as root (it writes the
# bench specs to /etc/cdi under kinds of their own). PODLAB_BIN=path skips the build;
# ROUNDS=n (90: 180 runs of each row, about 3 minutes; at 60 runs the GPU ratio still moved
# +-2.5% from one run to the next).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
die() { printf 'run-overhead: error: %s\n' "$*" >&2; exit 1; }
[[ -r /etc/podlab-test-host.env ]] || die "no test host; hint: run sudo tests/host/provision.sh once"
# shellcheck disable=SC1091
. /etc/podlab-test-host.env
for tool in hyperfine python3 /usr/bin/time runuser curl; do
  command -v "$tool" >/dev/null || die "$tool is missing; hint: sudo tests/host/provision.sh"
done
if [[ -z ${PODLAB_BIN:-} ]]; then
  (cd "$REPO" && cargo build --release --locked --quiet) || die "cargo build --release failed"
  PODLAB_BIN=$REPO/target/release/podlab
fi
CTK=${NVIDIA_CTK:-/var/cache/podlab-bench/bin/nvidia-ctk}
HOOK=$(dirname "$CTK")/nvidia-cdi-hook
PODLAB_SPEC=/etc/cdi/podlab-bench-podlab.yaml
CTK_SPEC=/etc/cdi/podlab-bench-ctk.yaml
FITTED_SPEC=/etc/cdi/podlab-bench-fitted.json
WORK=$(mktemp -d)
trap 'rm -rf "$WORK" "$PODLAB_SPEC" "$CTK_SPEC" "$FITTED_SPEC"' EXIT
chmod 755 "$WORK"
install -m 755 "$PODLAB_BIN" "$WORK/podlab"
install -d -o "$PODLAB_TEST_USER" "$WORK/project"
OUT=${BENCH_OUT:-$REPO/target/bench}
mkdir -p "$OUT" /etc/cdi

ROOT=$PODLAB_TEST_NVIDIA_ROOT
if [[ -z ${BENCH_IMAGE:-} ]]; then
  [[ -r /etc/podlab-test-dl.env ]] || die "no deep-learning test image; hint: run sudo tests/host/provision.sh once"
  # shellcheck disable=SC1091
  . /etc/podlab-test-dl.env
fi
IMAGE=${BENCH_IMAGE:-$PODLAB_TEST_DL_IMAGE}
as_user="runuser -u $PODLAB_TEST_USER -- env -i HOME=$PODLAB_TEST_HOME PATH=/usr/bin:/bin \
XDG_RUNTIME_DIR=$PODLAB_TEST_RUNTIME_DIR PODMAN_IGNORE_CGROUPSV1_WARNING=1"
in_project() { echo "cd $WORK/project && $as_user $*"; }
names=(podlab-none podlab-all podman-none podman-podlab)
cmds=("$(in_project "$WORK/podlab run --gpus none --image $IMAGE -- true")"
  "$(in_project "$WORK/podlab run --gpus all --driver-root $ROOT --image $IMAGE -- true")"
  "$(in_project "podman run --rm $IMAGE true")"
  "$(in_project "podman run --rm --device bench.podlab/gpu=all $IMAGE true")")
"$WORK/podlab" -q cdi generate --driver-root "$ROOT" --vendor bench.podlab --podman-version 5.4.2 \
  --output "$PODLAB_SPEC" || die "podlab cdi generate failed"
# podlab-all's GPU mounts and device nodes, from its create body (-vv logs it), as a CDI spec.
sh -c "$(in_project "$WORK/podlab -vv run --gpus all --driver-root $ROOT --image $IMAGE -- true")" \
  2>&1 | sed -n 's/.*creating the container body=//p' | python3 -c '
import json, sys
body = json.loads(sys.stdin.readline())
mounts = [{"hostPath": m["source"], "containerPath": m["destination"], "options": m["options"]}
          for m in body["mounts"] if m["destination"] != "/workspace"]
nodes = [{"path": d["path"]} for d in body.get("devices") or []]
print(json.dumps({"cdiVersion": "0.5.0", "kind": "bench.podlab/fitted", "devices": [
    {"name": "all", "containerEdits": {"deviceNodes": nodes, "mounts": mounts}}]}))
' >"$FITTED_SPEC" || die "podlab-all's create body could not be read"
chmod 644 "$FITTED_SPEC"
names+=(podman-fitted)
cmds+=("$(in_project "podman run --rm --device bench.podlab/fitted=all $IMAGE true")")
if [[ -x $CTK && -x $HOOK ]] && "$CTK" cdi generate --mode management --driver-root "$ROOT" --dev-root / \
  --vendor bench.podlab --class ctk --nvidia-cdi-hook-path "$HOOK" --output "$CTK_SPEC" 2>"$WORK/ctk.err"; then
  chmod 644 "$CTK_SPEC"
  names+=(podman-ctk)
  cmds+=("$(in_project "podman run --rm --device bench.podlab/ctk=all $IMAGE true")")
else
  echo "podman-ctk: not measured (no $CTK, or it failed: $(tail -n1 "$WORK/ctk.err" 2>/dev/null)); hint: sudo benches/setup-nvidia-ctk.sh" >&2
fi
names+=(runuser-true) cmds+=("$(in_project true)")
args=()
for i in "${!names[@]}"; do
  sh -c "${cmds[$i]}" >/dev/null 2>"$WORK/err" || { cat "$WORK/err" >&2; die "${names[$i]} failed"; }
  args+=(-n "${names[$i]}" "${cmds[$i]}")
done
sh -c "$(in_project "$WORK/podlab -v run --gpus all --driver-root $ROOT --image $IMAGE -- true")" 2>&1 |
  grep 'GPUs:' >&2 || true

# The host is shared and its load drifts over a run, so the rows are interleaved: ROUNDS
# hyperfine invocations of 2 runs of every row each (after one warmup invocation), merged into
# one JSON. A ratio then compares runs made in the same minutes.
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
# Other test runs on a shared host may restart the user's socket: a round that fails is
# dropped and run again once the socket answers (each retry is counted and printed).
socket_up() {
  local i
  for i in $(seq 60); do
    curl -sf --max-time 1 --unix-socket "$PODLAB_TEST_SOCKET" http://d/_ping >/dev/null && return 0
    sleep 1
  done
  die "the user's socket $PODLAB_TEST_SOCKET does not answer"
}
retries=0
round() { # FILE: one round, exported to FILE; retried up to 5 times
  local try
  for try in 1 2 3 4 5; do
    socket_up
    hyperfine --style none --runs 2 --export-json "$1" "${args[@]}" >/dev/null 2>"$WORK/round.err" && return 0
    retries=$((retries + 1))
  done
  cat "$WORK/round.err" >&2
  die "a round failed 5 times"
}
round "$WORK/warmup.json"
for ((i = 0; i < ${ROUNDS:-90}; i++)); do round "$WORK/round-$i.json"; done
echo "rounds retried after a failure (socket restarted by another run): $retries" >&2
echo "load average after:  $(cut -d' ' -f1-3 /proc/loadavg)" >&2
python3 - "$WORK"/round-*.json >"$OUT/run-overhead.json" <<'PY'
import json, sys
merged = {}
for path in sys.argv[1:]:
    for result in json.load(open(path))["results"]:
        merged.setdefault(result["command"], []).extend(result["times"])
print(json.dumps({"results": [{"command": name, "times": times} for name, times in merged.items()]}))
PY

rss=()
for _ in 1 2 3 4 5; do
  rss+=("$(/usr/bin/time -f %M sh -c "${cmds[1]}" 2>&1 >/dev/null | tail -n1)")
done

python3 - "$OUT/run-overhead.json" "${rss[@]}" <<'PY'
import json, statistics, sys
results = {r["command"]: r for r in json.load(open(sys.argv[1]))["results"]}
median = {name: statistics.median(r["times"]) * 1000 for name, r in results.items()}
rss = statistics.median(int(x) for x in sys.argv[2:]) / 1024
print(f"{'command':<14}{'median ms':>10}{'runs':>6}")
for name, ms in median.items():
    print(f"{name:<14}{ms:>10.1f}{len(results[name]['times']):>6}")
ok = lambda b: "met" if b else "MISSED"
gpu = median["podlab-all"] / median["podlab-none"]
print(f"\nGPU session start, podlab-all / podlab-none: {gpu:.3f}x (target <= 1.05: {ok(gpu <= 1.05)})")
print(f"podman with podlab-all's fitted mounts and nodes, podman-fitted / podman-none: {median['podman-fitted'] / median['podman-none']:.3f}x")
print(f"podman with podlab's spec, podman-podlab / podman-none: {median['podman-podlab'] / median['podman-none']:.3f}x")
if "podman-ctk" in median:
    print(f"podman with nvidia-ctk's hooked spec, podman-ctk / podman-none: {median['podman-ctk'] / median['podman-none']:.3f}x")
else:
    print("(nvidia-ctk's hooked spec not measured)")
ratio = median["podlab-none"] / median["podman-none"]
net = (median["podlab-none"] - median["runuser-true"]) / (median["podman-none"] - median["runuser-true"])
print(f"\npodlab/podman ratio (no GPUs): {ratio:.2f} (target <= 0.75: {ok(ratio <= 0.75)})")
print(f"same, less the runuser cost both pay: {net:.2f}")
print(f"podlab-all peak RSS (incl. runuser/env wrappers' max): {rss:.1f} MiB (target < 20: {ok(rss < 20)})")
PY
