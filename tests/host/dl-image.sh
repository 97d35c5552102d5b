#!/usr/bin/env bash
# The deep-learning test image for podlab's real-stack tests (issue 12): a Debian trixie root
# made by mmdebstrap with python3, python3-dev, gcc, libc6-dev and binutils, plus the real
# `triton` wheel from PyPI in /usr/local/lib/python3.X/dist-packages, imported into the test
# user's Podman as localhost/podlab-test/dl:latest. Nothing NVIDIA is in it and it sets no
# NVIDIA environment (no LD_LIBRARY_PATH): like `FROM python` + `pip install triton`, the case
# where Triton's libcuda discovery fails unless the GPU edits provide for it.
#
# torch is left out: PyPI only has its CUDA build for Linux (~1 GB plus ~3 GB of nvidia-* wheels);
# the CPU build lives on download.pytorch.org, which test machines cannot reach.
#
# Writes /etc/podlab-test-dl.env (read by the end-to-end tests) with the image name, the Python
# and Triton versions. Idempotent: the image's podlab.test.recipe label records a hash of this
# script and the pinned versions; a change rebuilds it. Run as root, after provision.sh has made
# the test user (provision.sh calls it last). Sizes seen: triton 3.9.0's wheel 286 MB (1.04 GB
# unpacked), the Debian part ~300 MB.
set -euo pipefail

TEST_USER=${PODLAB_TEST_USER:-podlabtest}
DL_IMAGE=localhost/podlab-test/dl:latest
TRITON_VERSION=3.9.0
SUITE=trixie
PACKAGES=python3,python3-dev,gcc,libc6-dev,binutils
DL_ENV=/etc/podlab-test-dl.env

log() { printf 'dl-image: %s\n' "$*" >&2; }
die() { printf 'dl-image: error: %s\n' "$*" >&2; exit 1; }

[[ $(id -u) -eq 0 ]] || die "must run as root (it builds a root with mmdebstrap)
hint: sudo $0"
id "$TEST_USER" >/dev/null 2>&1 || die "no user $TEST_USER
hint: run tests/host/provision.sh first: it creates the test user and calls this script"

as_user() {
  local uid home
  uid=$(id -u "$TEST_USER")
  home=$(getent passwd "$TEST_USER" | cut -d: -f6)
  (cd / && runuser -u "$TEST_USER" -- env -i HOME="$home" USER="$TEST_USER" LOGNAME="$TEST_USER" \
    PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin XDG_RUNTIME_DIR="/run/user/$uid" \
    PODMAN_IGNORE_CGROUPSV1_WARNING=1 "$@")
}

# The Debian mirror this machine already uses (first URIs: of its deb822 sources).
mirror() {
  local uri
  uri=$(sed -n 's/^URIs:[[:space:]]*//p' /etc/apt/sources.list.d/*.sources 2>/dev/null |
    grep -v security | head -n1 | awk '{print $1}')
  [[ -n $uri ]] || die "no Debian mirror in /etc/apt/sources.list.d/*.sources
hint: add a deb822 sources file naming your Debian mirror"
  printf '%s\n' "$uri"
}

# A pip that can install wheels for another root: Debian's python3-pip on the host.
host_pip() {
  if ! /usr/bin/python3 -m pip --version >/dev/null 2>&1; then
    local target=()
    [[ -f /etc/apt/sources.list.d/podlab-trixie.sources ]] && target=(-t trixie)
    log "installing python3-pip"
    apt-get update -qq
    apt-get install -y -qq "${target[@]}" python3-pip >/dev/null
  fi
}

write_env() {
  local python=$1
  cat >"$DL_ENV.tmp" <<EOF
# Written by podlab's tests/host/dl-image.sh; read by the end-to-end tests.
PODLAB_TEST_DL_IMAGE=$DL_IMAGE
PODLAB_TEST_DL_PYTHON=$python
PODLAB_TEST_DL_TRITON_VERSION=$TRITON_VERSION
EOF
  chmod 644 "$DL_ENV.tmp"
  mv "$DL_ENV.tmp" "$DL_ENV"
}

main() {
  local recipe current
  recipe=$( (cat "${BASH_SOURCE[0]}"; echo "$SUITE $PACKAGES $TRITON_VERSION") | sha256sum | cut -c1-16)
  current=$(as_user podman image inspect --format '{{index .Labels "podlab.test.recipe"}}' \
    "$DL_IMAGE" 2>/dev/null || true)
  if [[ $current == "$recipe" && -f $DL_ENV ]]; then
    log "test image $DL_IMAGE already present"
    return
  fi
  command -v mmdebstrap >/dev/null 2>&1 || {
    log "installing mmdebstrap"
    apt-get update -qq
    apt-get install -y -qq mmdebstrap >/dev/null
  }
  host_pip
  local root python site
  WORK=$(mktemp -d /var/tmp/podlab-dl.XXXXXX)
  trap 'rm -rf "$WORK"' EXIT
  local work=$WORK
  root=$work/root
  log "building a $SUITE root with $PACKAGES (mmdebstrap, a minute or two)"
  mmdebstrap --quiet --variant=minbase --include="$PACKAGES" \
    --components=main "$SUITE" "$root" "deb $(mirror) $SUITE main"
  python=$(basename "$(readlink -f "$root/usr/bin/python3")")
  [[ $python =~ ^python3\.[0-9]+$ ]] || die "cannot tell the root's python version (found '$python')"
  site=$root/usr/local/lib/$python/dist-packages
  log "installing triton==$TRITON_VERSION for $python from PyPI"
  /usr/bin/python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore --no-cache-dir --no-deps \
    --only-binary=:all: --platform manylinux_2_28_x86_64 --implementation cp \
    --python-version "${python#python}" --target "$site" "triton==$TRITON_VERSION"
  [[ -f $site/triton/backends/nvidia/driver.py ]] || die "triton did not install into $site"
  # The test user's sessions run as that user (keep-id): a home and a writable /tmp.
  printf 'dev:x:1000:1000:dev:/home/dev:/bin/sh\n' >>"$root/etc/passwd"
  printf 'dev:x:1000:\n' >>"$root/etc/group"
  install -d -o 1000 -g 1000 "$root/home/dev"
  rm -rf "$root/var/cache/apt/archives"/*.deb "$root/var/lib/apt/lists"/*
  chmod -R a+rX "$root"
  tar -C "$root" -cf "$work/root.tar" .
  chmod 644 "$work/root.tar"
  chmod 755 "$work"
  as_user podman rmi --ignore "$DL_IMAGE" >/dev/null 2>&1 || true
  log "importing $DL_IMAGE ($(du -sh "$work/root.tar" | cut -f1))"
  as_user podman import --quiet --change "LABEL podlab.test.recipe=$recipe" \
    --change 'CMD ["/usr/bin/python3"]' "$work/root.tar" "$DL_IMAGE" >/dev/null
  write_env "$python"
  log "test image $DL_IMAGE ready ($python, triton $TRITON_VERSION)"
}

main "$@"
