#!/usr/bin/env bash
# podlab's systemd rig: three Debian machines, each with a real systemd as PID 1, a lingering
# user manager and a different real Podman (bookworm 4.3.1, trixie 5.4.2, forky 5.8.6), booted
# with systemd-nspawn on a host that has no systemd of its own. The end-to-end tests in
# tests/systemd.rs run podlab inside them as an unprivileged user, through real units.
#
#   rig.sh build            install the host's tools (systemd-container, mmdebstrap, zig,
#                           cargo-zigbuild), build the roots (idempotent: a root is rebuilt
#                           only when its recipe changed) and write /etc/podlab-test-rig.env
#   rig.sh binary           build podlab for glibc 2.34 (cargo zigbuild, target/rig) and put it
#                           where the machines see it (/opt/podlab/bin/podlab inside)
#   rig.sh up [NAME...]     boot the machines (all when none named; a running one is left alone)
#                           and wait until each one's user manager runs
#   rig.sh run NAME [-C DIR] [-E K=V]... -- CMD...
#                           run CMD as the machine's user in a transient user unit
#                           (systemd-run --user --wait --pipe): its stdin, stdout, stderr and
#                           exit status are the caller's
#   rig.sh exec NAME -- CMD...
#                           the same as root, in a transient system unit
#   rig.sh down [NAME...]   power the machines off
#   rig.sh reset            power off all, delete the roots and their cgroups
#   rig.sh status           one line per machine
#
# Root only; test machines only. Facts it rests on: ../shared/notes/systemd-rig.md.
set -euo pipefail

RIG=/var/cache/podlab-test/rig
RIG_ENV=/etc/podlab-test-rig.env
MACHINES=(bookworm trixie forky)
RIG_USER=dev
RIG_UID=1000
NVIDIA_ROOT=/var/cache/podlab-test/nvidia-debian/root
BIN_DIR=$RIG/bin           # bound read-only at /opt/podlab/bin in every machine
ZIG_VENV=/opt/podlab-test/zig
ZIGLANG_VERSION=0.17.1
ZIGBUILD_VERSION=0.24.1
GLIBC_TARGET=x86_64-unknown-linux-gnu.2.34
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
INCLUDE=systemd,systemd-sysv,dbus,dbus-user-session,libpam-systemd,podman,runc,crun,uidmap,slirp4netns,passt,busybox-static,procps,iproute2,catatonit,conmon,nftables,iptables,aardvark-dns

log() { printf 'rig: %s\n' "$*" >&2; }
die() { printf 'rig: error: %s\n' "$*" >&2; exit 2; }

usage() {
  sed -n '/^#   rig.sh/,/^# Root only/p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
  exit 1
}

known() {
  local name=$1 m
  for m in "${MACHINES[@]}"; do [[ $m == "$name" ]] && return 0; done
  die "unknown machine '$name'
hint: one of ${MACHINES[*]}"
}

# --- build ---------------------------------------------------------------------------------
# The archive URI of the machine's own apt sources (the main archive, not -security), as
# provision.sh derives the trixie suite from it.
mirror() {
  local uri=
  if [[ -f /etc/apt/sources.list.d/debian.sources ]]; then
    uri=$(awk -v RS='' '!/Suites:[^\n]*security/ { if (match($0, /URIs: *[^ \n]+/)) {
      s = substr($0, RSTART, RLENGTH); sub(/URIs: */, "", s); print s; exit } }' \
      /etc/apt/sources.list.d/debian.sources)
  fi
  if [[ -z $uri && -f /etc/apt/sources.list ]]; then
    uri=$(awk '$1 == "deb" && $0 !~ /security/ { for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) { print $i; exit } }' \
      /etc/apt/sources.list)
  fi
  [[ -n $uri ]] || die "no Debian archive URI in the machine's apt sources
hint: add /etc/apt/sources.list.d/debian.sources naming your mirror"
  printf '%s\n' "$uri"
}

# Everything done to a fresh root after its packages are in: $1 = root, $2 = machine name.
customize_root() {
  local root=$1 name=$2 home=/home/$RIG_USER
  printf '%s\n' "$name" >"$root/etc/hostname"
  chroot "$root" useradd --create-home --uid "$RIG_UID" --shell /bin/bash "$RIG_USER"
  grep -q "^$RIG_USER:" "$root/etc/subuid" || printf '%s:100000:65536\n' "$RIG_USER" >>"$root/etc/subuid"
  grep -q "^$RIG_USER:" "$root/etc/subgid" || printf '%s:100000:65536\n' "$RIG_USER" >>"$root/etc/subgid"
  # Offline `loginctl enable-linger`: the user manager starts at boot.
  mkdir -p "$root/var/lib/systemd/linger"
  touch "$root/var/lib/systemd/linger/$RIG_USER"
  # Else each quadlet unit waits ~51 s on podman-user-wait-network-online.service.
  systemctl --root="$root" add-wants multi-user.target network-online.target >/dev/null 2>&1
  # No cgroup controllers reach the machine: no pids limit. Podman 4.3.1 defaults to vfs.
  mkdir -p "$root$home/.config/containers"
  printf '[containers]\npids_limit = 0\n' >"$root$home/.config/containers/containers.conf"
  if [[ $name == bookworm ]]; then
    printf '[storage]\ndriver = "overlay"\n' >"$root$home/.config/containers/storage.conf"
  fi
  chroot "$root" chown -R "$RIG_USER:" "$home/.config"
  # Clean proc and sysfs mounts: nspawn over-mounts parts of /proc and /sys, and the kernel
  # refuses a user namespace (rootless Podman) a fresh proc/sysfs unless a full one is visible.
  local what
  for what in proc sys; do
    cat >"$root/etc/systemd/system/run-full$what.mount" <<EOF
[Unit]
Description=A full $what mount for rootless containers (podlab rig)
DefaultDependencies=no
Before=local-fs.target

[Mount]
What=$([[ $what == proc ]] && echo proc || echo sysfs)
Where=/run/full$what
Type=$([[ $what == proc ]] && echo proc || echo sysfs)

[Install]
WantedBy=local-fs.target
EOF
    systemctl --root="$root" enable "run-full$what.mount" >/dev/null 2>&1
  done
  # /dev/net/tun for pasta/slirp4netns; on bookworm, Podman 4.3.1 reads the host's cgroup v1
  # lines in /proc/self/cgroup and moves conmon out of the unit unless the user owns the
  # cgroup root (a rig artefact: a real bookworm host has no such lines).
  local owner=
  [[ $name == bookworm ]] && owner="chown $RIG_UID /sys/fs/cgroup"
  cat >"$root/etc/systemd/system/podlab-rig.service" <<EOF
[Unit]
Description=podlab rig fixes
Before=user@$RIG_UID.service systemd-user-sessions.service

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/bin/sh -c 'chmod 666 /dev/net/tun; $owner'

[Install]
WantedBy=multi-user.target
EOF
  systemctl --root="$root" enable podlab-rig.service >/dev/null 2>&1
  # The user's Podman API socket, as users enable it (podlab talks to it).
  systemctl --root="$root" --global enable podman.socket >/dev/null 2>&1
  # podlab on the user's PATH; the directory is bound from the host at boot.
  ln -sf /opt/podlab/bin/podlab "$root/usr/local/bin/podlab"
  mkdir -p "$root/opt/podlab/bin" "$root$NVIDIA_ROOT"
}

# The recipe of one root: a change rebuilds it.
recipe() {
  { declare -f customize_root; printf '%s\n' "$INCLUDE" "$1" "$(mirror)" "$RIG_USER" "$RIG_UID"; } |
    sha256sum | cut -c1-16
}

build_root() {
  local name=$1 root=$RIG/$1 want
  want=$(recipe "$name")
  if [[ -d $root && $(cat "$RIG/$name.recipe" 2>/dev/null) == "$want" ]]; then
    log "$name: root up to date"
    return
  fi
  running "$name" && down_machine "$name"
  local stage=$RIG/$name.new
  rm -rf "$stage" "$root" "$RIG/$name.recipe"
  log "$name: building the root (mmdebstrap, about a minute)"
  mmdebstrap --quiet --variant=minbase --aptopt='Acquire::Check-Valid-Until "false"' \
    --include="$INCLUDE" "$name" "$stage" "$(mirror)" >"$RIG/$name.build.log" 2>&1 ||
    { tail -n 30 "$RIG/$name.build.log" >&2; die "$name: mmdebstrap failed (log: $RIG/$name.build.log)"; }
  customize_root "$stage" "$name"
  mv "$stage" "$root"
  printf '%s\n' "$want" >"$RIG/$name.recipe"
}

# The Podman version in a root, as `major.minor.patch`.
root_podman() {
  dpkg-query --admindir="$RIG/$1/var/lib/dpkg" -W -f='${Version}' podman | sed 's/[+~-].*//'
}

host_tools() {
  local want
  want=$(dpkg-query -W -f='${Version}' systemd)
  if [[ $(dpkg-query -W -f='${Version}' systemd-container 2>/dev/null || true) == "$want" ]] &&
    command -v mmdebstrap >/dev/null; then
    return
  fi
  # systemd-container must match the installed systemd exactly; take it from the suite the
  # installed systemd came from (trixie's on a Debian 12 test host).
  local target=()
  if apt-cache madison systemd-container 2>/dev/null | grep -q " $want .*trixie"; then
    target=(-t trixie)
  fi
  log "installing systemd-container $want and mmdebstrap"
  apt-get install -y -qq "${target[@]}" "systemd-container=$want" mmdebstrap >/dev/null ||
    { apt-get update -qq && apt-get install -y -qq "${target[@]}" "systemd-container=$want" mmdebstrap >/dev/null; }
}

# zig (PyPI's ziglang, in a venv of its own built like provision.sh's kubernetes-validate one)
# and cargo-zigbuild, for `rig.sh binary`.
zig_tools() {
  if [[ $("$ZIG_VENV/bin/python" -m ziglang version 2>/dev/null) != "$ZIGLANG_VERSION" ]]; then
    log "installing ziglang $ZIGLANG_VERSION into $ZIG_VENV (from PyPI)"
    rm -rf "$ZIG_VENV"
    mkdir -p "$(dirname "$ZIG_VENV")"
    /usr/bin/python3 -m venv --without-pip "$ZIG_VENV"
    /usr/bin/python3 -m pip --python "$ZIG_VENV/bin/python" install --quiet \
      --disable-pip-version-check --no-cache-dir "ziglang==$ZIGLANG_VERSION"
  fi
  if [[ $(cargo-zigbuild --version 2>/dev/null) != "cargo-zigbuild $ZIGBUILD_VERSION" ]]; then
    log "installing cargo-zigbuild $ZIGBUILD_VERSION (cargo install, about two minutes)"
    cargo install --quiet --locked --version "$ZIGBUILD_VERSION" cargo-zigbuild
  fi
}

cmd_build() {
  host_tools
  zig_tools
  mkdir -p "$RIG" "$BIN_DIR"
  chmod 755 "$RIG" "$BIN_DIR"
  local pids=() name failed=0
  # In parallel: most of the time goes to downloads and dpkg, one core each.
  for name in "${MACHINES[@]}"; do
    build_root "$name" &
    pids+=($!)
  done
  for pid in "${pids[@]}"; do wait "$pid" || failed=1; done
  [[ $failed -eq 0 ]] || die "building the roots failed"
  {
    printf '# Written by podlab tests/host/rig.sh build; read by tests/systemd.rs.\n'
    printf 'PODLAB_RIG_MACHINES=%s\n' "${MACHINES[*]}"
    printf 'PODLAB_RIG_USER=%s\nPODLAB_RIG_UID=%s\n' "$RIG_USER" "$RIG_UID"
    printf 'PODLAB_RIG_PODLAB=/opt/podlab/bin/podlab\n'
    printf 'PODLAB_RIG_NVIDIA_ROOT=%s\n' "$NVIDIA_ROOT"
    for name in "${MACHINES[@]}"; do
      printf 'PODLAB_RIG_PODMAN_%s=%s\n' "${name^^}" "$(root_podman "$name")"
    done
  } >"$RIG_ENV.tmp"
  chmod 644 "$RIG_ENV.tmp"
  mv "$RIG_ENV.tmp" "$RIG_ENV"
  log "roots ready: $(for n in "${MACHINES[@]}"; do printf '%s (podman %s) ' "$n" "$(root_podman "$n")"; done)"
}

# --- binary --------------------------------------------------------------------------------
# A podlab that starts on glibc 2.34 and newer (bookworm's 2.36, Ubuntu 22.04's 2.35, RHEL 9's
# 2.34): the host's own build needs the glibc it was built on (2.41 after provisioning).
cmd_binary() {
  local zig=$ZIG_VENV/bin
  [[ -x $zig/python ]] && command -v cargo-zigbuild >/dev/null || die "no zig or cargo-zigbuild here
hint: sudo bash tests/host/rig.sh build (provision.sh runs it)"
  log "building podlab for $GLIBC_TARGET (cargo zigbuild --profile rig)"
  (cd "$REPO" && PATH=$zig:$PATH cargo zigbuild --locked --quiet --profile rig \
    --target "$GLIBC_TARGET" --target-dir "$REPO/target/rig" --bin podlab)
  local built=$REPO/target/rig/x86_64-unknown-linux-gnu/rig/podlab
  [[ -x $built ]] || die "no binary at $built"
  mkdir -p "$BIN_DIR"
  install -m 755 "$built" "$BIN_DIR/podlab.tmp"
  mv "$BIN_DIR/podlab.tmp" "$BIN_DIR/podlab"
  printf '%s\n' "$BIN_DIR/podlab"
}

# --- machines ------------------------------------------------------------------------------
cg() { printf '/sys/fs/cgroup/%s/podlab-rig-%s' "$1" "$2"; }

# The nspawn process of a machine, if it runs.
nspawn_pid() {
  local pid
  pid=$(cat "$RIG/$1.pid" 2>/dev/null) || return 1
  [[ -n $pid && -d /proc/$pid ]] || return 1
  [[ $(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) == *"-M $1 "* ]] || return 1
  printf '%s\n' "$pid"
}

running() { nspawn_pid "$1" >/dev/null; }

# The machine's PID 1, as the host sees it.
leader() {
  local pid child
  pid=$(nspawn_pid "$1") || die "machine $1 is not running
hint: $0 up $1"
  for child in $(cat "/proc/$pid/task/"*/children 2>/dev/null); do
    if [[ $(cat "/proc/$child/comm" 2>/dev/null) == systemd ]]; then
      printf '%s\n' "$child"
      return
    fi
  done
  die "machine $1 has no systemd running"
}

inside() {
  local pid
  pid=$(leader "$1")
  shift
  nsenter -t "$pid" -a "$@"
}

# nspawn killed before its own cleanup (a hard stop of the session that ran it) leaves its
# per-machine directories behind, and the next boot of that name refuses to start ("Mount point
# '/run/systemd/nspawn/unix-export/NAME' exists already"). Only called when NAME is not running.
remove_nspawn_leftovers() {
  local dir
  for dir in "/run/systemd/nspawn/unix-export/$1" "/run/systemd/nspawn/propagate/$1"; do
    [[ -e $dir ]] || continue
    log "$1: removing $dir, left by an nspawn that did not clean up"
    umount -R "$dir" 2>/dev/null || true
    rm -rf --one-file-system "$dir"
  done
}

boot() {
  local name=$1 root=$RIG/$1 hier
  [[ -d $root ]] || die "no root for $name
hint: $0 build"
  mkdir -p "$BIN_DIR" # `rig.sh binary` fills it, before or after the boot
  remove_cgroups "$name"
  remove_nspawn_leftovers "$name"
  for hier in unified systemd; do mkdir -p "$(cg "$hier" "$name")"; done
  local binds=()
  for node in /dev/nvidia*; do [[ -c $node ]] && binds+=("--bind=$node"); done
  [[ -d $NVIDIA_ROOT ]] && binds+=("--bind-ro=$NVIDIA_ROOT")
  binds+=("--bind-ro=$BIN_DIR:/opt/podlab/bin")
  # nspawn makes payload/ and supervisor/ in the cgroup it starts from: one cgroup each.
  (
    for hier in unified systemd; do echo "$BASHPID" >"$(cg "$hier" "$name")/cgroup.procs"; done
    SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=1 SYSTEMD_NSPAWN_API_VFS_WRITABLE=network exec setsid \
      systemd-nspawn -D "$root" -M "$name" --register=no --keep-unit --console=pipe \
      --system-call-filter=@keyring --private-network "${binds[@]}" -b \
      </dev/null >"$RIG/$name.console.log" 2>&1
  ) &
  local pid=$! i
  printf '%s\n' "$pid" >"$RIG/$name.pid"
  # Until the subshell has become nspawn, the pid does not name the machine yet.
  for i in $(seq 1 50); do
    running "$name" || [[ ! -d /proc/$pid ]] && break
    sleep 0.1
  done
}

# Waits until the machine's user manager runs and its bus answers.
await() {
  local name=$1 i
  for i in $(seq 1 300); do
    if ! running "$name"; then
      tail -n 30 "$RIG/$name.console.log" >&2
      die "machine $name stopped while booting (console: $RIG/$name.console.log)"
    fi
    if inside "$name" systemctl is-active --quiet "user@$RIG_UID.service" 2>/dev/null &&
      inside "$name" test -S "/run/user/$RIG_UID/bus" 2>/dev/null; then
      return
    fi
    sleep 0.2
  done
  tail -n 30 "$RIG/$name.console.log" >&2
  die "machine $name: the user manager did not start in 60 s"
}

cmd_up() {
  local names=("$@") name
  [[ ${#names[@]} -gt 0 ]] || names=("${MACHINES[@]}")
  for name in "${names[@]}"; do known "$name"; done
  for name in "${names[@]}"; do running "$name" || boot "$name"; done
  for name in "${names[@]}"; do await "$name"; done
}

remove_cgroups() {
  local hier dir
  for hier in unified systemd; do
    dir=$(cg "$hier" "$1")
    [[ -d $dir ]] || continue
    # Deepest first; a cgroup with no processes left can be removed.
    find "$dir" -depth -type d -exec rmdir {} \; 2>/dev/null || true
  done
}

down_machine() {
  local name=$1 pid i
  if pid=$(nspawn_pid "$name"); then
    inside "$name" systemctl poweroff >/dev/null 2>&1 || true
    for i in $(seq 1 100); do [[ -d /proc/$pid ]] || break; sleep 0.1; done
    if [[ -d /proc/$pid ]]; then
      log "$name: no poweroff in 10 s, killing it"
      kill -KILL "$pid" 2>/dev/null || true
      for i in $(seq 1 50); do [[ -d /proc/$pid ]] || break; sleep 0.1; done
    fi
  fi
  rm -f "$RIG/$name.pid"
  remove_cgroups "$name"
}

cmd_down() {
  local names=("$@") name
  [[ ${#names[@]} -gt 0 ]] || names=("${MACHINES[@]}")
  for name in "${names[@]}"; do known "$name"; down_machine "$name"; done
}

cmd_reset() {
  local name
  for name in "${MACHINES[@]}"; do
    down_machine "$name"
    rm -rf "${RIG:?}/$name" "$RIG/$name.new" "$RIG/$name".*
  done
  rm -f "$RIG_ENV"
}

# run/exec: NAME [-C DIR] [-E K=V]... -- CMD...
transient() {
  local scope=$1 name=$2
  shift 2
  known "$name"
  local opts=() dir=
  while [[ $# -gt 0 && $1 != -- ]]; do
    case $1 in
      -C) dir=$2; shift 2 ;;
      -E) opts+=("--setenv=$2"); shift 2 ;;
      *) usage ;;
    esac
  done
  [[ ${1:-} == -- ]] || usage
  shift
  [[ $# -gt 0 ]] || usage
  local pid
  pid=$(leader "$name")
  local run=(systemd-run --quiet --wait --pipe --collect --service-type=exec)
  if [[ $scope == user ]]; then
    run+=(--user "--working-directory=${dir:-/home/$RIG_USER}")
    opts+=("--setenv=PATH=/usr/local/bin:/usr/bin:/bin" "--setenv=HOME=/home/$RIG_USER")
    exec nsenter -t "$pid" -a setpriv --reuid="$RIG_UID" --regid="$RIG_UID" --init-groups \
      env -i "HOME=/home/$RIG_USER" "USER=$RIG_USER" PATH=/usr/local/bin:/usr/bin:/bin \
      "XDG_RUNTIME_DIR=/run/user/$RIG_UID" \
      "DBUS_SESSION_BUS_ADDRESS=unix:path=/run/user/$RIG_UID/bus" \
      "${run[@]}" "${opts[@]}" -- "$@"
  fi
  [[ -n $dir ]] && run+=("--working-directory=$dir")
  exec nsenter -t "$pid" -a env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    "${run[@]}" "${opts[@]}" -- "$@"
}

cmd_status() {
  local name
  for name in "${MACHINES[@]}"; do
    if running "$name"; then
      printf '%s running (podman %s)\n' "$name" "$(root_podman "$name")"
    elif [[ -d $RIG/$name ]]; then
      printf '%s built (podman %s)\n' "$name" "$(root_podman "$name")"
    else
      printf '%s absent\n' "$name"
    fi
  done
}

[[ $(id -u) -eq 0 ]] || die "must run as root (it boots machines with systemd-nspawn)
hint: sudo $0 $*"
[[ $# -gt 0 ]] || usage
command=$1
shift
case $command in
  build) cmd_build ;;
  binary) cmd_binary ;;
  up) cmd_up "$@" ;;
  run) [[ $# -gt 0 ]] || usage; transient user "$@" ;;
  exec) [[ $# -gt 0 ]] || usage; transient system "$@" ;;
  down) cmd_down "$@" ;;
  reset) cmd_reset ;;
  status) cmd_status ;;
  *) usage ;;
esac
