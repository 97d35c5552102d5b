#!/usr/bin/env bash
# A real Slurm cluster on one test machine, for podlab's multi-node end-to-end test
# (tests/slurm.rs): munge, one slurmctld and two slurmd daemons, `n1` and `n2`, both on this
# host (NodeAddr 127.0.0.1, a port each; slurmd started with `-N NAME`), each with four fake
# GPUs through GRES. No systemd here: the daemons are started directly and find each other
# through the files under $STATE.
#
# Each node stands for a machine of its own with GPUs 0-3, so both name the same four fake
# nodes /dev/nvidia0-3 in gres.conf: Slurm numbers a node's GPUs by their place in that list
# (SLURM_STEP_GPUS, CUDA_VISIBLE_DEVICES), which on a real node, as here, is the minor number
# and podlab's GPU index. Both nodes share this host's devices and the test user's Podman:
# a test shows each node its own GPUs by taking some of n2's first (see tests/slurm.rs).
#
#   slurm.sh install  Debian's slurmctld, slurmd, slurm-client and munge (22.05 on bookworm),
#                     and fake /dev/nvidia1-3 next to provision.sh's /dev/nvidia0.
#   slurm.sh up       install, write /etc/slurm/{slurm,gres,cgroup}.conf, start the daemons,
#                     wait until both nodes are idle, write /etc/podlab-test-slurm.env.
#   slurm.sh down     stop the daemons this script started (by their pid files).
#   slurm.sh reset    down, then remove the configuration, state, env file and fake nodes
#                     (packages stay installed); provision.sh --reset calls it.
#
# Every step is idempotent: `up` on a running cluster with the same configuration changes
# nothing; a changed configuration restarts the daemons.
#
# Test machines only: it creates device nodes in /dev and runs daemons as root.
# Verified facts this rests on: ../shared/notes/test-host.md (cgroup v1 hybrid kernel: no
# cgroup plugins, so proctrack/linuxproc and task/none).
set -euo pipefail

STATE=/var/lib/podlab-test-slurm
CONF_DIR=/etc/slurm
CONF=$CONF_DIR/slurm.conf
ENV_FILE=/etc/podlab-test-slurm.env
PARTITION=podlab
NODES=(n1 n2)
CTLD_PORT=16817
# slurmd ports, one per node, in NODES order.
NODE_PORTS=(16821 16822)
GPUS_PER_NODE=4
# Seconds between the SIGTERM and the SIGKILL that `scancel` and a time limit send to a step:
# shorter than the default 30 so the test waits less; the order of signals is Slurm's own.
KILL_WAIT=10
# The header that marks the files this script wrote; `reset` removes only those.
MARK='# Written by podlab tests/host/slurm.sh (test hosts only).'

log() { printf 'slurm.sh: %s\n' "$*" >&2; }
die() { printf 'slurm.sh: error: %s\n' "$*" >&2; exit 1; }

[[ $(id -u) -eq 0 ]] || die "must run as root (it installs packages and starts daemons)
hint: sudo $0 ${1:-up}"

export DEBIAN_FRONTEND=noninteractive

# --- install -------------------------------------------------------------------------------
install_packages() {
  local need=()
  for bin in slurmctld slurmd sbatch munged; do
    command -v "$bin" >/dev/null 2>&1 || need+=("$bin")
  done
  if [[ ${#need[@]} -eq 0 ]]; then
    log "slurm packages already installed ($(slurmd -V))"
    return
  fi
  log "installing slurmctld, slurmd, slurm-client and munge"
  apt-get update -qq
  # No recommends: they pull in plugins for databases and monitoring the test does not use.
  apt-get install -y -qq --no-install-recommends slurmctld slurmd slurm-client munge >/dev/null
  command -v slurmd >/dev/null 2>&1 || die "slurmd did not install"
}

# /dev/nvidia1../dev/nvidia3 as provision.sh makes /dev/nvidia0: rootless runc bind-mounts
# device nodes from their real paths, so fake GPUs must sit there. Not on a host with a driver.
fake_gpu_nodes() {
  if [[ -e /proc/driver/nvidia/version ]]; then
    die "a real NVIDIA driver is loaded: this script only runs on GPU-less test hosts"
  fi
  local minor last=$((GPUS_PER_NODE - 1))
  for minor in $(seq 0 "$last"); do
    [[ -e /dev/nvidia$minor ]] || mknod -m 666 "/dev/nvidia$minor" c 195 "$minor"
    chmod 666 "/dev/nvidia$minor"
  done
}

install_all() {
  install_packages
  fake_gpu_nodes
}

# --- configuration -----------------------------------------------------------------------------
render_slurm_conf() {
  local host
  host=$(hostname -s)
  cat <<EOF
$MARK
ClusterName=podlab-test
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$CTLD_PORT
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/spool-%n
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd-%n.pid
SlurmctldLogFile=$STATE/slurmctld.log
SlurmdLogFile=$STATE/slurmd-%n.log
# The kernel mounts cgroups v1 and v2 side by side (hybrid): no cgroup plugins.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
# Both "nodes" are this machine: their declared CPUs and memory need not add up.
SlurmdParameters=config_overrides
KillWait=$KILL_WAIT
GresTypes=gpu
EOF
  local i
  for i in "${!NODES[@]}"; do
    printf 'NodeName=%s NodeHostname=%s NodeAddr=127.0.0.1 Port=%d CPUs=2 RealMemory=1000 Gres=gpu:%d State=UNKNOWN\n' \
      "${NODES[$i]}" "$host" "${NODE_PORTS[$i]}" "$GPUS_PER_NODE"
  done
  local list
  list=$(IFS=,; echo "${NODES[*]}")
  printf 'PartitionName=%s Nodes=%s Default=YES MaxTime=INFINITE State=UP\n' "$PARTITION" "$list"
}

render_gres_conf() {
  printf '%s\nAutoDetect=off\n' "$MARK"
  local i
  for i in "${!NODES[@]}"; do
    printf 'NodeName=%s Name=gpu File=/dev/nvidia[0-%d]\n' "${NODES[$i]}" $((GPUS_PER_NODE - 1))
  done
}

render_cgroup_conf() {
  # slurmd 22.05 loads a cgroup plugin even when no plugin of slurm.conf uses it; the v1
  # hierarchies this kernel mounts satisfy it, and nothing constrains through them.
  printf '%s\nCgroupPlugin=cgroup/v1\nCgroupMountpoint=/sys/fs/cgroup\n' "$MARK"
}

# write_conf FILE < CONTENT: replaces FILE when its content differs; refuses a file this script
# did not write. Prints "changed" when it wrote.
write_conf() {
  local file=$1 new
  new=$(cat)
  if [[ -f $file ]]; then
    [[ $(head -n1 "$file") == "$MARK" ]] || die "$file exists and was not written by this script
hint: move it away (this machine is not a test host?) and re-run"
    [[ $(cat "$file") == "$new" ]] && return 0
  fi
  printf '%s\n' "$new" >"$file.tmp"
  chmod 644 "$file.tmp"
  mv "$file.tmp" "$file"
  echo changed
}

configure() {
  mkdir -p "$CONF_DIR" "$STATE/ctld"
  local changed=""
  changed+=$(render_slurm_conf | write_conf "$CONF")
  changed+=$(render_gres_conf | write_conf "$CONF_DIR/gres.conf")
  changed+=$(render_cgroup_conf | write_conf "$CONF_DIR/cgroup.conf")
  for node in "${NODES[@]}"; do mkdir -p "$STATE/spool-$node"; done
  if [[ -n $changed ]]; then
    log "configuration written to $CONF_DIR"
    stop_daemons
  fi
}

# --- daemons -------------------------------------------------------------------------------------
# alive PIDFILE: the process named in PIDFILE runs.
alive() {
  [[ -f $1 ]] && kill -0 "$(cat "$1")" 2>/dev/null
}

# stop PIDFILE: TERM, then KILL after 10 s; removes the pid file.
stop() {
  local pidfile=$1 pid
  if alive "$pidfile"; then
    pid=$(cat "$pidfile")
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$pidfile"
}

start_munge() {
  if munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1; then
    return
  fi
  if [[ ! -s /etc/munge/munge.key ]]; then
    log "creating the munge key"
    mungekey --create --force
  fi
  chown munge: /etc/munge/munge.key
  chmod 600 /etc/munge/munge.key
  install -d -o munge -g munge -m 755 /run/munge
  install -d -o munge -g munge -m 700 /var/lib/munge /var/log/munge
  log "starting munged"
  runuser -u munge -- /usr/sbin/munged --pid-file=/run/munge/munged.pid
  for _ in $(seq 1 50); do
    munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1 && return
    sleep 0.1
  done
  die "munged does not answer (see /var/log/munge/munged.log)"
}

start_daemons() {
  start_munge
  if ! alive "$STATE/slurmctld.pid"; then
    log "starting slurmctld"
    /usr/sbin/slurmctld -f "$CONF"
  fi
  local node
  for node in "${NODES[@]}"; do
    if ! alive "$STATE/slurmd-$node.pid"; then
      log "starting slurmd for $node"
      /usr/sbin/slurmd -f "$CONF" -N "$node"
    fi
  done
}

stop_daemons() {
  local node
  for node in "${NODES[@]}"; do stop "$STATE/slurmd-$node.pid"; done
  stop "$STATE/slurmctld.pid"
}

# Waits until every node is idle (a node left down or drained by an earlier run is resumed).
wait_idle() {
  local states
  for _ in $(seq 1 300); do
    states=$(sinfo -h -N -p "$PARTITION" -o '%N %t' 2>/dev/null | sort -u || true)
    if [[ -n $states ]] && ! grep -qv ' idle$' <<<"$states" &&
      [[ $(wc -l <<<"$states") -eq ${#NODES[@]} ]]; then
      return
    fi
    if grep -qE ' (down|drain|drng|drained)\*?$' <<<"$states"; then
      scontrol update NodeName="$(IFS=,; echo "${NODES[*]}")" State=RESUME 2>/dev/null || true
    fi
    sleep 0.2
  done
  log "nodes: ${states:-none}"
  tail -n 20 "$STATE/slurmctld.log" >&2 || true
  die "the slurm nodes did not become idle in 60 s (logs in $STATE)"
}

write_env() {
  local list
  list=$(IFS=,; echo "${NODES[*]}")
  cat >"$ENV_FILE.tmp" <<EOF
# Written by podlab's tests/host/slurm.sh; read by tests/slurm.rs.
PODLAB_TEST_SLURM_CONF=$CONF
PODLAB_TEST_SLURM_VERSION=$(slurmd -V | awk '{ print $2 }')
PODLAB_TEST_SLURM_PARTITION=$PARTITION
PODLAB_TEST_SLURM_NODES=$list
PODLAB_TEST_SLURM_GPUS_PER_NODE=$GPUS_PER_NODE
PODLAB_TEST_SLURM_KILL_WAIT=$KILL_WAIT
EOF
  chmod 644 "$ENV_FILE.tmp"
  mv "$ENV_FILE.tmp" "$ENV_FILE"
}

up() {
  install_all
  configure
  start_daemons
  wait_idle
  write_env
  log "ready: partition $PARTITION, nodes ${NODES[*]}, $GPUS_PER_NODE GPUs each"
}

down() {
  stop_daemons
  log "slurm daemons stopped"
}

reset() {
  # Jobs first: their steps (slurmstepd) would outlive slurmd.
  if alive "$STATE/slurmctld.pid"; then
    scancel --partition="$PARTITION" 2>/dev/null || true
    for _ in $(seq 1 150); do
      [[ -z $(squeue -h -p "$PARTITION" 2>/dev/null) ]] && break
      sleep 0.2
    done
  fi
  stop_daemons
  if [[ -f /run/munge/munged.pid ]]; then
    stop /run/munge/munged.pid
  fi
  local file
  for file in "$CONF" "$CONF_DIR/gres.conf" "$CONF_DIR/cgroup.conf"; do
    [[ -f $file && $(head -n1 "$file") == "$MARK" ]] && rm -f "$file"
  done
  rm -rf "$STATE" "$ENV_FILE"
  if [[ ! -e /proc/driver/nvidia/version ]]; then
    local minor
    # /dev/nvidia0 is provision.sh's.
    for minor in $(seq 1 $((GPUS_PER_NODE - 1))); do rm -f "/dev/nvidia$minor"; done
  fi
  log "reset: slurm state, configuration and fake GPUs 1-$((GPUS_PER_NODE - 1)) removed"
}

case ${1:-} in
  install) install_all ;;
  up) up ;;
  down) down ;;
  reset) reset ;;
  *) die "unknown or missing subcommand '${1:-}'
hint: $0 install|up|down|reset" ;;
esac
