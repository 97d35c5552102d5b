#!/usr/bin/env bash
# Builds the benchmarks' anchor, NVIDIA's own `nvidia-ctk` (and `nvidia-cdi-hook`), from
# public source, for benches/cdi-generate.sh and benches/run-overhead.sh. Not part of CI: the
# benches run without it and say so.
#
# How it was built for the figures in the benches (Debian 12 test host, trixie pinned at 100 by
# tests/host/provision.sh):
#   1. source: github.com/NVIDIA/nvidia-container-toolkit at tag v1.18.0 (commit of the tag),
#      which vendors its Go modules (vendor/) and asks for go 1.24.0 (toolchain go1.24.4);
#      exported with `git archive --prefix=nvidia-container-toolkit-1.18.0/ v1.18.0 | tar -x`.
#      Later tags need go 1.25, which Debian does not ship yet.
#   2. Go: Debian trixie's golang-1.24-go (1.24.4): apt-get install -t trixie golang-1.24-go.
#   3. go build -mod=vendor (no network: GOPROXY=off GOTOOLCHAIN=local) with the linker flags of
#      upstream's Makefile (-s -w, its -extldflags, the version stamped), CGO on as upstream
#      builds it (NVML is dlopen'd at run time).
#
# Usage: sudo benches/setup-nvidia-ctk.sh SOURCE_DIR   (the exported v1.18.0 tree)
# Installs /var/cache/podlab-bench/bin/{nvidia-ctk,nvidia-cdi-hook}; prints their versions.
set -euo pipefail

die() { printf 'setup-nvidia-ctk: error: %s\n' "$*" >&2; exit 1; }
SRC=${1:-/var/cache/podlab-bench/src/nvidia-container-toolkit-1.18.0}
[[ -f $SRC/go.mod && -d $SRC/vendor ]] ||
  die "no nvidia-container-toolkit source with vendor/ at $SRC"$'\n'"hint: export tag v1.18.0 of github.com/NVIDIA/nvidia-container-toolkit there (git archive), then rerun"
grep -q '^go 1.24' "$SRC/go.mod" || die "$SRC is not v1.18.0 (its go.mod asks for $(grep '^go ' "$SRC/go.mod"))"
GO=/usr/lib/go-1.24/bin/go
if [[ ! -x $GO ]]; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -t trixie golang-1.24-go >/dev/null ||
    die "cannot install golang-1.24-go"$'\n'"hint: run sudo tests/host/provision.sh first (it adds the trixie suite)"
fi
BIN=/var/cache/podlab-bench/bin
mkdir -p "$BIN"
export GOFLAGS=-mod=vendor GOPROXY=off GOTOOLCHAIN=local GOCACHE=/var/cache/podlab-bench/gocache
EXTLDFLAGS="-Wl,--export-dynamic -Wl,--unresolved-symbols=ignore-in-object-files -Wl,-z,lazy"
for cmd in nvidia-ctk nvidia-cdi-hook; do
  (cd "$SRC" && "$GO" build -trimpath -o "$BIN/$cmd" -ldflags "-s -w '-extldflags=$EXTLDFLAGS' \
    -X github.com/NVIDIA/nvidia-container-toolkit/internal/info.version=1.18.0" "./cmd/$cmd") ||
    die "go build ./cmd/$cmd failed"
done
chmod 755 /var/cache/podlab-bench /var/cache/podlab-bench/bin "$BIN"/*
"$BIN/nvidia-ctk" --version | head -n1
