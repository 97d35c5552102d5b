#!/usr/bin/env bash
# Benchmarks `podlab run` against `podman run` itself, as the rootless test user on its warm
# socket, in one hyperfine invocation: the issue's target is podlab <= 0.75x podman's median
# wall time for a trivial container. Also podlab's peak RSS (target < 20 MiB).
# It reports and exits 0 whether or not the targets are met; non-zero only when setup fails.
# Needs a provisioned test host (sudo tests/host/provision.sh). PODLAB_BIN=path skips the build.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
die() { printf 'run-overhead: error: %s\n' "$*" >&2; exit 1; }
[[ -r /etc/podlab-test-host.env ]] || die "no test host; hint: run sudo tests/host/provision.sh once"
# shellcheck disable=SC1091
. /etc/podlab-test-host.env
for tool in hyperfine python3 /usr/bin/time runuser; do
  command -v "$tool" >/dev/null || die "$tool is missing; hint: sudo tests/host/provision.sh"
done
if [[ -z ${PODLAB_BIN:-} ]]; then
  (cd "$REPO" && cargo build --release --locked --quiet) || die "cargo build --release failed"
  PODLAB_BIN=$REPO/target/release/podlab
fi
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
chmod 755 "$WORK"
install -m 755 "$PODLAB_BIN" "$WORK/podlab"
install -d -o "$PODLAB_TEST_USER" "$WORK/project"
OUT=${BENCH_OUT:-$REPO/target/bench}
mkdir -p "$OUT"

as_user="runuser -u $PODLAB_TEST_USER -- env -i HOME=$PODLAB_TEST_HOME PATH=/usr/bin:/bin \
XDG_RUNTIME_DIR=$PODLAB_TEST_RUNTIME_DIR PODMAN_IGNORE_CGROUPSV1_WARNING=1"
podlab_cmd="cd $WORK/project && $as_user $WORK/podlab -q run --gpus none --image $PODLAB_TEST_IMAGE -- true"
podman_cmd="cd $WORK/project && $as_user podman run --rm $PODLAB_TEST_IMAGE true"
baseline_cmd="cd $WORK/project && $as_user true"

hyperfine --warmup 3 --runs "${RUNS:-20}" --export-json "$OUT/run-overhead.json" \
  -n podlab-run "$podlab_cmd" -n podman-run "$podman_cmd" -n runuser-true "$baseline_cmd" >&2

rss=()
for _ in 1 2 3 4 5; do
  rss+=("$(/usr/bin/time -f %M sh -c "$podlab_cmd" 2>&1 >/dev/null | tail -n1)")
done

python3 - "$OUT/run-overhead.json" "${rss[@]}" <<'PY'
import json, statistics, sys
results = {r["command"]: r for r in json.load(open(sys.argv[1]))["results"]}
median = {name: statistics.median(r["times"]) * 1000 for name, r in results.items()}
rss = statistics.median(int(x) for x in sys.argv[2:]) / 1024
print(f"{'command':<14}{'median ms':>10}")
for name, ms in median.items():
    print(f"{name:<14}{ms:>10.1f}")
ratio = median["podlab-run"] / median["podman-run"]
net = (median["podlab-run"] - median["runuser-true"]) / (median["podman-run"] - median["runuser-true"])
print(f"\npodlab/podman ratio: {ratio:.2f} (target <= 0.75: {'met' if ratio <= 0.75 else 'MISSED'})")
print(f"same, less the runuser cost both pay: {net:.2f}")
print(f"podlab peak RSS (incl. runuser/env wrappers' max): {rss:.1f} MiB (target < 20: {'met' if rss < 20 else 'MISSED'})")
PY
