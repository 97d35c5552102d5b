#!/usr/bin/env bash
# Turn a Debian/Ubuntu machine into a rootless-Podman test host for podlab's end-to-end tests.
#
# What it does (each step is skipped when already done, so the script is idempotent):
#   1. installs Podman 5 (on Debian 12 from the trixie suite, with the apt source derived from
#      the machine's own sources file and pinned low), runc, uidmap, busybox-static, hyperfine,
#      gcc (for the glibc test image's dlopen-test);
#   2. makes /dev/net/tun usable by unprivileged users (pasta/slirp4netns need it);
#   3. creates the unprivileged test user with subuid/subgid ranges and its own XDG_RUNTIME_DIR,
#      writes its containers.conf (runc + cgroupfs: crun refuses this kernel's hybrid cgroups);
#   4. starts that user's Podman API socket;
#   5. imports small local test images (no image registry is reachable on these machines): a
#      busybox one, and a glibc one with the host's loader and libc plus dlopen-test (built from
#      dlopen-test.c next to this script);
#   6. creates fake NVIDIA device nodes at the real /dev paths (test hosts only!);
#   7. unpacks real NVIDIA userspace files (libcuda, libnvidia-ml, nvidia-smi, ...: no GPU, no
#      kernel module) from Debian trixie's non-free packages into a root under /var/cache, in
#      Debian's own layout, with an ld.so.cache of its own (nothing is installed on the host);
#   8. writes /etc/podlab-test-host.env, which the end-to-end tests read.
#   9. installs kubernetes-validate (PyPI, offline Kubernetes schemas) into a venv under
#      /opt/podlab-test, for the tests that check `podlab kube generate`'s output (run before 8.).
#
# `provision.sh --reset` undoes all of that but the packages, and removes what the tests leave
# behind: run it, then `.ci/run`, before trusting a green run on a machine that ran tests before.
#
# Test machines only: it changes /dev and apt sources. See ../shared/notes/test-host.md.
set -euo pipefail

TEST_USER=${PODLAB_TEST_USER:-podlabtest}
# A second unprivileged user: the hostile party of tests/hardening.rs (no home, no login).
OTHER_USER=podlabother
TEST_IMAGE=localhost/podlab-test/busybox:latest
GLIBC_IMAGE=localhost/podlab-test/glibc:latest
NVIDIA_CACHE=/var/cache/podlab-test/nvidia-debian
NVIDIA_ROOT=$NVIDIA_CACHE/root
HOST_ENV=/etc/podlab-test-host.env
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

log() { printf 'provision: %s\n' "$*" >&2; }
die() { printf 'provision: error: %s\n' "$*" >&2; exit 1; }

[[ $(id -u) -eq 0 ]] || die "must run as root (it installs packages and creates a user)
hint: sudo $0"
# shellcheck disable=SC1091
. /etc/os-release
case " ${ID:-} ${ID_LIKE:-} " in
  *" debian "* | *" ubuntu "*) ;;
  *) die "this script supports Debian/Ubuntu test machines only (found ${ID:-unknown})" ;;
esac

export DEBIAN_FRONTEND=noninteractive

podman_major() {
  command -v podman >/dev/null 2>&1 || { echo 0; return; }
  podman --version 2>/dev/null | sed -n 's/^podman version \([0-9]*\)\..*/\1/p'
}

# --- 1. packages ---------------------------------------------------------------------------
add_trixie_source() {
  local src=/etc/apt/sources.list.d/debian.sources
  local dst=/etc/apt/sources.list.d/podlab-trixie.sources
  [[ -f $dst ]] && return 0
  [[ -f $src ]] || die "cannot derive a trixie source: $src is missing
hint: add a deb822 file naming your Debian mirror with 'Suites: trixie', then re-run"
  # Keep the stanzas for the main archive (not -security/-updates), switch their suite to
  # trixie and widen the components; the mirror host stays whatever the machine already uses.
  awk -v RS='' -v ORS='\n\n' '
    /Suites:[^\n]*bookworm/ && !/Suites:[^\n]*security/ {
      out = ""
      n = split($0, lines, "\n")
      for (i = 1; i <= n; i++) {
        line = lines[i]
        if (line ~ /^Suites:/) line = "Suites: trixie"
        else if (line ~ /^Components:/) line = "Components: main contrib non-free non-free-firmware"
        out = out line "\n"
      }
      printf "%s", out; printf "\n"
    }' "$src" >"$dst.tmp"
  grep -q 'Suites: trixie' "$dst.tmp" || { rm -f "$dst.tmp"; die "no bookworm stanza found in $src"; }
  mv "$dst.tmp" "$dst"
  cat >/etc/apt/preferences.d/podlab-trixie <<'EOF'
Package: *
Pin: release n=trixie
Pin-Priority: 100
EOF
}

install_packages() {
  local need=()
  for bin in runc newuidmap busybox hyperfine curl python3 gcc tmux; do
    command -v "$bin" >/dev/null 2>&1 || need+=("$bin")
  done
  if [[ $(podman_major) -ge 5 && ${#need[@]} -eq 0 ]]; then
    log "packages already installed ($(podman --version))"
    return
  fi
  local podman_target=()
  if [[ ${ID} == debian && ${VERSION_CODENAME:-} == bookworm ]]; then
    add_trixie_source
    podman_target=(-t trixie)
  fi
  log "installing podman and helpers (a minute or two)"
  apt-get update -qq
  if [[ $(podman_major) -lt 5 ]]; then
    apt-get install -y -qq "${podman_target[@]}" podman >/dev/null
  fi
  # libc6-dev pinned to the installed libc6: trixie's podman may have upgraded libc6.
  # groff-base: CI and the e2e tests check podlab's manual pages with groff -ww.
  apt-get install -y -qq uidmap runc slirp4netns passt busybox-static hyperfine time curl gcc tmux groff-base \
    "libc6-dev=$(dpkg-query -W -f='${Version}' libc6)" >/dev/null
  [[ $(podman_major) -ge 5 ]] || die "podman 5 did not install (found $(podman --version 2>&1))"
}

# --- 2. /dev/net/tun -------------------------------------------------------------------------
fix_tun() {
  if [[ ! -e /dev/net/tun ]]; then
    mkdir -p /dev/net
    mknod /dev/net/tun c 10 200
  fi
  chmod 666 /dev/net/tun
}

# --- 3. the test user ------------------------------------------------------------------------
create_user() {
  if ! id "$TEST_USER" >/dev/null 2>&1; then
    log "creating user $TEST_USER"
    useradd --create-home --shell /bin/bash "$TEST_USER"
  fi
  if ! id "$OTHER_USER" >/dev/null 2>&1; then
    useradd --system --no-create-home --shell /usr/sbin/nologin "$OTHER_USER"
  fi
  local uid
  uid=$(id -u "$TEST_USER")
  if ! grep -q "^$TEST_USER:" /etc/subuid 2>/dev/null; then
    usermod --add-subuids 200000-265535 "$TEST_USER"
  fi
  if ! grep -q "^$TEST_USER:" /etc/subgid 2>/dev/null; then
    usermod --add-subgids 200000-265535 "$TEST_USER"
  fi
  local run=/run/user/$uid
  mkdir -p "$run"
  chown "$TEST_USER:" "$run"
  chmod 700 "$run"
  local home
  home=$(getent passwd "$TEST_USER" | cut -d: -f6)
  install -d -o "$TEST_USER" -g "$(id -g "$TEST_USER")" "$home/.config" "$home/.config/containers"
  cat >"$home/.config/containers/containers.conf.tmp" <<'EOF'
# Written by podlab's tests/host/provision.sh: crun refuses this kernel's hybrid cgroups.
[containers]
default_ulimits = ["nofile=1024:1024"]

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
EOF
  chown "$TEST_USER:" "$home/.config/containers/containers.conf.tmp"
  mv "$home/.config/containers/containers.conf.tmp" "$home/.config/containers/containers.conf"
}

as_user() {
  local uid home
  uid=$(id -u "$TEST_USER")
  home=$(getent passwd "$TEST_USER" | cut -d: -f6)
  (cd / && runuser -u "$TEST_USER" -- env -i HOME="$home" USER="$TEST_USER" LOGNAME="$TEST_USER" \
    PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin XDG_RUNTIME_DIR="/run/user/$uid" \
    PODMAN_IGNORE_CGROUPSV1_WARNING=1 "$@")
}

# --- 4. the user's API socket ----------------------------------------------------------------
start_socket() {
  local uid sock
  uid=$(id -u "$TEST_USER")
  sock=/run/user/$uid/podman/podman.sock
  if curl -fsS --max-time 2 --unix-socket "$sock" http://d/_ping >/dev/null 2>&1; then
    log "user socket already answers at $sock"
    return
  fi
  as_user mkdir -p "/run/user/$uid/podman"
  as_user podman system migrate >/dev/null 2>&1 || true
  log "starting the user's API socket at $sock"
  as_user setsid podman system service --time=0 "unix://$sock" \
    </dev/null >"/run/user/$uid/podman/service.log" 2>&1 &
  for _ in $(seq 1 100); do
    curl -fsS --max-time 2 --unix-socket "$sock" http://d/_ping >/dev/null 2>&1 && return
    sleep 0.2
  done
  cat "/run/user/$uid/podman/service.log" >&2 || true
  die "the user's podman socket did not come up at $sock"
}

# --- 5. local test images -------------------------------------------------------------------
# A minimal root in DIR: static busybox with its applet links, /etc/passwd with root and dev.
busybox_root() {
  local root=$1
  mkdir -p "$root/bin" "$root/etc" "$root/tmp" "$root/home/dev" "$root/root"
  chmod 1777 "$root/tmp"
  cp /bin/busybox "$root/bin/busybox"
  for applet in $("$root/bin/busybox" --list); do
    [[ $applet == busybox ]] || ln -sf busybox "$root/bin/$applet"
  done
  ln -s bin "$root/sbin"
  mkdir -p "$root/usr"
  ln -s ../bin "$root/usr/bin"
  printf 'root:x:0:0:root:/root:/bin/sh\ndev:x:1000:1000:dev:/home/dev:/bin/sh\n' >"$root/etc/passwd"
  printf 'root:x:0:\ndev:x:1000:\n' >"$root/etc/group"
  chown 1000:1000 "$root/home/dev"
}

# import_root DIR IMAGE [podman import options...]: import DIR as the test user's IMAGE, then
# remove DIR.
import_root() {
  local root=$1 image=$2
  shift 2
  chmod -R a+rX "$root"
  tar -C "$root" -cf "$root.tar" .
  chmod 644 "$root.tar"
  as_user podman import --quiet "$@" "$root.tar" "$image" >/dev/null
  rm -rf "$root" "$root.tar"
}

import_image() {
  if as_user podman image exists "$TEST_IMAGE"; then
    log "test image $TEST_IMAGE already present"
    return
  fi
  log "importing $TEST_IMAGE"
  local root
  root=$(mktemp -d)
  busybox_root "$root"
  import_root "$root" "$TEST_IMAGE"
}

# The busybox root plus the host's glibc loader and core libraries in /usr/lib/x86_64-linux-gnu
# (/lib -> usr/lib, /lib64/ld-linux-x86-64.so.2), no ld.so.cache, and /usr/local/bin/dlopen-test.
# Its label records the C source and libc6 version it was built from; a change rebuilds it.
import_glibc_image() {
  local src=$HERE/dlopen-test.c recipe current
  [[ -f $src ]] || die "missing $src"
  recipe=$( (cat "$src"; dpkg-query -W -f='${Version}' libc6) | sha256sum | cut -c1-16)
  current=$(as_user podman image inspect --format '{{index .Labels "podlab.test.recipe"}}' \
    "$GLIBC_IMAGE" 2>/dev/null || true)
  if [[ $current == "$recipe" ]]; then
    log "test image $GLIBC_IMAGE already present"
    return
  fi
  log "building and importing $GLIBC_IMAGE"
  local root libdir=/usr/lib/x86_64-linux-gnu
  root=$(mktemp -d)
  busybox_root "$root"
  mkdir -p "$root$libdir" "$root/lib64" "$root/usr/local/bin" "$root/usr/local/nvidia/lib64"
  ln -s usr/lib "$root/lib"
  for lib in ld-linux-x86-64.so.2 libc.so.6 libm.so.6 libdl.so.2 libpthread.so.0 librt.so.1; do
    cp -L "$libdir/$lib" "$root$libdir/$lib"
  done
  ln -s "$libdir/ld-linux-x86-64.so.2" "$root/lib64/ld-linux-x86-64.so.2"
  gcc -O2 -Wall -Wextra -o "$root/usr/local/bin/dlopen-test" "$src" -ldl
  as_user podman rmi --ignore "$GLIBC_IMAGE" >/dev/null 2>&1 || true
  import_root "$root" "$GLIBC_IMAGE" --change "LABEL podlab.test.recipe=$recipe"
}

# --- 6. fake NVIDIA device nodes -------------------------------------------------------------
fake_gpu_nodes() {
  if [[ -e /proc/driver/nvidia/version ]]; then
    log "a real NVIDIA driver is loaded: leaving /dev alone"
    return
  fi
  # Rootless runc bind-mounts device nodes from their container path on the host, so the fakes
  # sit at the real paths. Major numbers do not matter for a bind mount.
  mk() { [[ -e $1 ]] || mknod -m 666 "$1" c "$2" "$3"; chmod 666 "$1"; }
  mk /dev/nvidia0 195 0
  mk /dev/nvidiactl 195 255
  mk /dev/nvidia-uvm 510 0
  mk /dev/nvidia-uvm-tools 510 1
}

# --- 7. real NVIDIA userspace files ------------------------------------------------------------
# Compute and utility parts of the driver from Debian trixie's non-free section, at libcuda1's
# driver version. Left out on purpose: the GL/EGL/Vulkan/OptiX/NGX ones (libnvidia-glcore,
# -eglcore, -gpucomp, -rtcore, -glvkspirv, libnvoptix1, ...: ~350 MB, no use to podlab's tests).
NVIDIA_REQUIRED=(libcuda1 libnvidia-ml1 nvidia-smi libnvidia-ptxjitcompiler1)
NVIDIA_OPTIONAL=(libnvidia-nvvm4 libcudadebugger1 nvidia-persistenced libnvidia-pkcs11-openssl3
  libnvidia-cfg1 libnvidia-allocator1 libnvidia-api1 libnvidia-encode1 libnvidia-fbc1
  libnvidia-opticalflow1 libnvcuvid1 nvidia-opencl-icd nvidia-cuda-mps)

# "PKG VERSION" for each PKG given that the trixie suite has, per the local package lists
# (one apt-cache call: each takes seconds).
trixie_versions() {
  apt-cache madison "$@" 2>/dev/null |
    awk -F' *[|] *' '$3 ~ / trixie\// && !seen[$1]++ { sub(/^ +/, "", $1); print $1, $2 }'
}

# The driver version, from the real (not symlinked) libcuda.so.VERSION in the unpacked root.
nvidia_version() {
  find "$NVIDIA_ROOT/usr/lib/x86_64-linux-gnu/nvidia/current" -maxdepth 1 -type f \
    -name 'libcuda.so.*' -printf '%f\n' 2>/dev/null | sed -n 's/^libcuda\.so\.//p' | head -n1
}

# Unpacks the packages into $NVIDIA_ROOT with dpkg-deb -x (no maintainer scripts: so none of
# the /etc/alternatives links Debian's nvidia-alternative makes), then writes the root's own
# ld.so.conf(.d) and ld.so.cache. Skipped while $NVIDIA_CACHE/VERSION exists; delete
# $NVIDIA_CACHE to refresh.
nvidia_userspace() {
  if [[ -f $NVIDIA_CACHE/VERSION && -d $NVIDIA_ROOT ]]; then
    log "NVIDIA userspace files already in $NVIDIA_ROOT ($(cat "$NVIDIA_CACHE/VERSION"))"
    return
  fi
  local -A found=()
  local all=("${NVIDIA_REQUIRED[@]}" "${NVIDIA_OPTIONAL[@]}") pkg v deb
  while read -r pkg v; do found[$pkg]=$v; done < <(trixie_versions "${all[@]}")
  if [[ -z ${found[libcuda1]:-} && ${ID} == debian && ${VERSION_CODENAME:-} == bookworm ]]; then
    add_trixie_source
    apt-get update -qq
    while read -r pkg v; do found[$pkg]=$v; done < <(trixie_versions "${all[@]}")
  fi
  [[ -n ${found[libcuda1]:-} ]] || die "no libcuda1 in a trixie non-free apt source
hint: add a deb822 source with 'Suites: trixie' and 'Components: main contrib non-free', then re-run"
  # All at libcuda1's driver version (Debian revisions may differ: nvidia-persistenced is -1).
  local upstream=${found[libcuda1]%-*} pkgs=()
  for pkg in "${NVIDIA_REQUIRED[@]}"; do
    v=${found[$pkg]:-}
    [[ ${v%-*} == "$upstream" ]] || die "trixie has $pkg ${v:-(none)}, not driver $upstream"
    pkgs+=("$pkg=$v")
  done
  for pkg in "${NVIDIA_OPTIONAL[@]}"; do
    v=${found[$pkg]:-}
    if [[ -n $v && ${v%-*} == "$upstream" ]]; then
      pkgs+=("$pkg=$v")
    else
      log "skipping $pkg (${v:-not in trixie})"
    fi
  done
  log "downloading ${#pkgs[@]} NVIDIA packages ($upstream) into $NVIDIA_ROOT"
  local tmp
  tmp=$(mktemp -d)
  chown _apt "$tmp" 2>/dev/null || true # lets apt download sandboxed; a warning otherwise
  (cd "$tmp" && apt-get download -qq "${pkgs[@]}" >/dev/null)
  local stage=$NVIDIA_CACHE/root.new
  rm -rf "$stage" "$NVIDIA_ROOT" "$NVIDIA_CACHE/VERSION"
  mkdir -p "$stage"
  for deb in "$tmp"/*.deb; do
    dpkg-deb -x "$deb" "$stage"
  done
  rm -rf "$tmp"
  # Debian reaches nvidia/current through alternatives links; a conf.d entry gives this root's
  # ld.so.cache the same libraries without them.
  mkdir -p "$stage/etc/ld.so.conf.d"
  printf 'include /etc/ld.so.conf.d/*.conf\n' >"$stage/etc/ld.so.conf"
  printf '/usr/lib/x86_64-linux-gnu/nvidia/current\n' >"$stage/etc/ld.so.conf.d/nvidia.conf"
  printf '# Multiarch support\n/usr/local/lib/x86_64-linux-gnu\n/lib/x86_64-linux-gnu\n/usr/lib/x86_64-linux-gnu\n' \
    >"$stage/etc/ld.so.conf.d/x86_64-linux-gnu.conf"
  ldconfig -X -r "$stage" # -X: keep the links exactly as unpacked
  [[ $(ldconfig -p -C "$stage/etc/ld.so.cache") == *'libcuda.so.1 '* ]] ||
    die "libcuda.so.1 is missing from $stage/etc/ld.so.cache"
  # The rootless test user bind-mounts these files: every directory on the way needs o+x.
  chmod -R a+rX "$stage"
  chmod 755 /var/cache/podlab-test "$NVIDIA_CACHE"
  mv "$stage" "$NVIDIA_ROOT"
  printf '%s\n' "$upstream" >"$NVIDIA_CACHE/VERSION"
  chmod 644 "$NVIDIA_CACHE/VERSION"
  log "NVIDIA userspace files $upstream in $NVIDIA_ROOT ($(du -sh "$NVIDIA_ROOT" | cut -f1))"
}

# --- 9. kubernetes-validate -------------------------------------------------------------------
# The Kubernetes JSON schemas, offline (`kubernetes-validate --strict`), in a venv of its own
# built with /usr/bin/python3: root's pyenv python lives under /root, and Debian's python has no
# ensurepip, so the venv is made without pip and Debian's pip installs into it (--python).
# Skipped while the pinned version answers.
KUBE_VALIDATE_VENV=/opt/podlab-test/venv
KUBE_VALIDATE_VERSION=1.37.0
KUBE_VALIDATE=$KUBE_VALIDATE_VENV/bin/kubernetes-validate

install_kubernetes_validate() {
  if [[ -x $KUBE_VALIDATE && $("$KUBE_VALIDATE" --version 2>/dev/null) == "$KUBE_VALIDATE_VERSION" ]]; then
    log "kubernetes-validate $KUBE_VALIDATE_VERSION already in $KUBE_VALIDATE_VENV"
    return
  fi
  if ! /usr/bin/python3 -m pip --version >/dev/null 2>&1; then
    # The pip of the installed python3: trixie's when trixie's podman brought python 3.13.
    local target=()
    [[ -f /etc/apt/sources.list.d/podlab-trixie.sources ]] && target=(-t trixie)
    log "installing python3-pip"
    apt-get update -qq
    apt-get install -y -qq "${target[@]}" python3-pip >/dev/null
  fi
  log "installing kubernetes-validate $KUBE_VALIDATE_VERSION into $KUBE_VALIDATE_VENV (from PyPI)"
  rm -rf "$KUBE_VALIDATE_VENV"
  mkdir -p "$(dirname "$KUBE_VALIDATE_VENV")"
  /usr/bin/python3 -m venv --without-pip "$KUBE_VALIDATE_VENV"
  /usr/bin/python3 -m pip --python "$KUBE_VALIDATE_VENV/bin/python" install --quiet \
    --disable-pip-version-check --no-cache-dir "kubernetes-validate==$KUBE_VALIDATE_VERSION"
  chmod -R a+rX "$(dirname "$KUBE_VALIDATE_VENV")"
  [[ $("$KUBE_VALIDATE" --version 2>/dev/null) == "$KUBE_VALIDATE_VERSION" ]] ||
    die "kubernetes-validate did not install into $KUBE_VALIDATE_VENV"
}

# --- 8. the host facts for the tests ------------------------------------------------------------
write_host_env() {
  local uid home nvidia
  uid=$(id -u "$TEST_USER")
  home=$(getent passwd "$TEST_USER" | cut -d: -f6)
  nvidia=$(nvidia_version)
  [[ -n $nvidia ]] || die "no libcuda.so.VERSION under $NVIDIA_ROOT"
  cat >"$HOST_ENV.tmp" <<EOF
# Written by podlab's tests/host/provision.sh; read by the end-to-end tests.
PODLAB_TEST_USER=$TEST_USER
PODLAB_TEST_UID=$uid
PODLAB_TEST_GID=$(id -g "$TEST_USER")
PODLAB_TEST_HOME=$home
PODLAB_TEST_RUNTIME_DIR=/run/user/$uid
PODLAB_TEST_SOCKET=/run/user/$uid/podman/podman.sock
PODLAB_TEST_IMAGE=$TEST_IMAGE
PODLAB_TEST_GLIBC_IMAGE=$GLIBC_IMAGE
PODLAB_TEST_NVIDIA_ROOT=$NVIDIA_ROOT
PODLAB_TEST_NVIDIA_VERSION=$nvidia
PODLAB_TEST_KUBERNETES_VALIDATE=$KUBE_VALIDATE
EOF
  chmod 644 "$HOST_ENV.tmp"
  mv "$HOST_ENV.tmp" "$HOST_ENV"
}

# --- reset: back to the fresh machine ------------------------------------------------------------
# Undoes steps 2-9 and what the end-to-end tests leave behind, so that the next run of this
# script (and of .ci/run) starts from what a fresh machine has. The packages of step 1 stay
# installed: apt's own state, re-checked by step 1 on every run.
reset_host() {
  local uid=""
  if id "$TEST_USER" >/dev/null 2>&1; then
    uid=$(id -u "$TEST_USER")
    log "removing user $TEST_USER, its containers, storage and runtime directory"
    # Its API service, containers and rootless pause process hold mounts in its namespaces:
    # end them before removing the files.
    pkill -KILL -u "$uid" 2>/dev/null || true
    for _ in $(seq 1 50); do pgrep -u "$uid" >/dev/null 2>&1 || break; sleep 0.1; done
    local home
    home=$(getent passwd "$TEST_USER" | cut -d: -f6)
    userdel "$TEST_USER" 2>/dev/null || true
    rm -rf --one-file-system "${home:?}" "/run/user/$uid"
    sed -i "/^$TEST_USER:/d" /etc/subuid /etc/subgid
  fi
  userdel "$OTHER_USER" 2>/dev/null || true
  # The systemd rig's machines and roots, and the Slurm test cluster's daemons and state.
  for helper in rig.sh slurm.sh; do
    if [[ -f $HERE/$helper ]]; then
      bash "$HERE/$helper" reset
    fi
  done
  log "removing podlab's test state: /etc/cdi specs, caches, host facts, fake device nodes"
  rm -f /etc/cdi/podlab-* /etc/cdi/.podlab-* /var/run/cdi/podlab-* /var/run/cdi/.podlab-*
  rmdir /etc/cdi 2>/dev/null || true
  rm -rf /var/cache/podlab-test /opt/podlab-test /etc/podlab-test-*.env "$HOST_ENV"
  rm -rf /tmp/podlab-e2e-*
  if [[ ! -e /proc/driver/nvidia/version ]]; then
    rm -f /dev/nvidia0 /dev/nvidiactl /dev/nvidia-uvm /dev/nvidia-uvm-tools
  fi
  log "reset: this machine is back to its fresh state (packages stay installed)"
}

if [[ ${1:-} == --reset ]]; then
  reset_host
  exit 0
elif [[ $# -gt 0 ]]; then
  die "unknown argument '$1'
hint: $0 provisions the test host; $0 --reset returns it to the fresh state"
fi

install_packages
fix_tun
create_user
start_socket
import_image
import_glibc_image
fake_gpu_nodes
nvidia_userspace
install_kubernetes_validate
write_host_env
bash "$HERE/slurm.sh" install
bash "$HERE/dl-image.sh"
bash "$HERE/rig.sh" build # systemd-nspawn machines with Podman 4.3.1, 5.4.2, 5.8.6: tests/systemd.rs
log "ready: user $TEST_USER, socket /run/user/$(id -u "$TEST_USER")/podman/podman.sock, image $TEST_IMAGE"
