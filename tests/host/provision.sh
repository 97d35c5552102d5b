#!/usr/bin/env bash
# Turn a Debian/Ubuntu machine into a rootless-Podman test host for podlab's end-to-end tests.
#
# What it does (each step is skipped when already done, so the script is idempotent):
#   1. installs Podman 5 (on Debian 12 from the trixie suite, with the apt source derived from
#      the machine's own sources file and pinned low), runc, uidmap, busybox-static, hyperfine;
#   2. makes /dev/net/tun usable by unprivileged users (pasta/slirp4netns need it);
#   3. creates the unprivileged test user with subuid/subgid ranges and its own XDG_RUNTIME_DIR,
#      writes its containers.conf (runc + cgroupfs: crun refuses this kernel's hybrid cgroups);
#   4. starts that user's Podman API socket;
#   5. imports a small local test image (no image registry is reachable on these machines);
#   6. creates fake NVIDIA device nodes at the real /dev paths (test hosts only!);
#   7. writes /etc/podlab-test-host.env, which the end-to-end tests read.
#
# Test machines only: it changes /dev and apt sources. See ../shared/notes/test-host.md.
set -euo pipefail

TEST_USER=${PODLAB_TEST_USER:-podlabtest}
TEST_IMAGE=localhost/podlab-test/busybox:latest
HOST_ENV=/etc/podlab-test-host.env

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
  for bin in runc newuidmap busybox hyperfine curl python3; do
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
  apt-get install -y -qq uidmap runc slirp4netns passt busybox-static hyperfine curl >/dev/null
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

# --- 5. a local test image -------------------------------------------------------------------
import_image() {
  if as_user podman image exists "$TEST_IMAGE"; then
    log "test image $TEST_IMAGE already present"
    return
  fi
  log "importing $TEST_IMAGE"
  local root
  root=$(mktemp -d)
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
  chmod -R a+rX "$root"
  tar -C "$root" -cf "$root.tar" .
  chmod 644 "$root.tar"
  as_user podman import --quiet "$root.tar" "$TEST_IMAGE" >/dev/null
  rm -rf "$root" "$root.tar"
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

write_host_env() {
  local uid home
  uid=$(id -u "$TEST_USER")
  home=$(getent passwd "$TEST_USER" | cut -d: -f6)
  cat >"$HOST_ENV.tmp" <<EOF
# Written by podlab's tests/host/provision.sh; read by the end-to-end tests.
PODLAB_TEST_USER=$TEST_USER
PODLAB_TEST_UID=$uid
PODLAB_TEST_GID=$(id -g "$TEST_USER")
PODLAB_TEST_HOME=$home
PODLAB_TEST_RUNTIME_DIR=/run/user/$uid
PODLAB_TEST_SOCKET=/run/user/$uid/podman/podman.sock
PODLAB_TEST_IMAGE=$TEST_IMAGE
EOF
  chmod 644 "$HOST_ENV.tmp"
  mv "$HOST_ENV.tmp" "$HOST_ENV"
}

install_packages
fix_tun
create_user
start_socket
import_image
fake_gpu_nodes
write_host_env
log "ready: user $TEST_USER, socket /run/user/$(id -u "$TEST_USER")/podman/podman.sock, image $TEST_IMAGE"
