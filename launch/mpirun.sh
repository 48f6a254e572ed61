#!/usr/bin/env bash
# Launches llama4 on one or more nodes with Open MPI.
#
#   launch/mpirun.sh -n 16 [-H hostfile] [-p ranks-per-node] [-t threads] -- train --config recipes/X.yaml [k=v ...]
#
# -n  total ranks (default: 2)       -H  hostfile, one line per node (see launch/hostfile.example)
# -p  ranks per node (default: -n spread evenly over the hostfile's nodes; on GPU nodes: GPUs per node)
# -t  OpenMP/intra-op threads per rank (default: cores per node / ranks per node, at least 1)
# Ranks are placed node by node (ppr) and bound to their own cores, so two ranks never share one. On GPU
# nodes each rank trains on the GPU of its local rank (OMPI_COMM_WORLD_LOCAL_RANK), every GPU stays visible
# to every rank (NCCL's peer-to-peer paths need that). The NCCL_*, UCX_*, CUDA_*, L4_*, MKL_*, TORCH_*
# variables of this shell reach every rank (OMPI_MCA_* ones configure mpirun itself).
# SIGTERM or SIGINT to this script (or SIGUSR1) makes every rank finish its step, write a checkpoint and
# exit 0: the script passes them to mpirun as SIGUSR1, which Open MPI forwards at once (SIGTERM itself it
# would follow with SIGKILL after L4_STOP_GRACE_S s); `checkpoint.resume: auto` continues from it. A stop
# during start-up ends the ranks before their first step (exit 0, nothing to save).
set -euo pipefail
stop=0
trap 'stop=1' TERM INT USR1  # at once: a stop while this script starts is passed on once mpirun runs
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN=${L4_BINARY:-$ROOT/build/bin/llama4}
ranks=2
hostfile=""
per_node=""
threads=""
while getopts "n:H:p:t:h" opt; do
  case $opt in
    n) ranks=$OPTARG ;;
    H) hostfile=$OPTARG ;;
    p) per_node=$OPTARG ;;
    t) threads=$OPTARG ;;
    h) sed -n '2,16p' "$0"; exit 0 ;;
    *) exit 1 ;;
  esac
done
shift $((OPTIND - 1))
[[ ${1:-} == "--" ]] && shift
[[ $# -gt 0 ]] || { echo "usage: $0 -n RANKS [-H hostfile] [-p ranks-per-node] -- <llama4 subcommand> ..." >&2; exit 1; }
[[ -x $BIN ]] || { echo "$BIN not found: run scripts/setup.sh first" >&2; exit 1; }
# Every count below goes into bash arithmetic, which reads a word as a variable name (0) and then misplaces
# ranks or never sends a stop: refuse anything but a whole number, naming where it came from.
whole_number() {  # what value [minimum]
  [[ $2 =~ ^(0|[1-9][0-9]*)$ ]] && (($2 >= ${3:-0})) && return
  echo "$0: $1 must be a whole number >= ${3:-0}, got '$2'" >&2
  exit 1
}
whole_number "-n (ranks)" "$ranks" 1
[[ -z $per_node ]] || whole_number "-p (ranks per node)" "$per_node" 1
[[ -z $threads ]] || whole_number "-t (threads per rank)" "$threads" 1
stop_grace_s=${L4_STOP_GRACE_S:-60}
stop_remote_wait_s=${L4_STOP_REMOTE_WAIT_S:-10}
whole_number "L4_STOP_GRACE_S" "$stop_grace_s"
whole_number "L4_STOP_REMOTE_WAIT_S" "$stop_remote_wait_s"

args=(-np "$ranks")
nodes=1
if [[ -n $hostfile ]]; then
  [[ -r $hostfile ]] || { echo "$0: hostfile '$hostfile' not readable" >&2; exit 1; }
  nodes=$(grep -cv '^\s*\(#\|$\)' "$hostfile")
  ((nodes > 0)) || { echo "$0: hostfile '$hostfile' names no node" >&2; exit 1; }
  args+=(--hostfile "$hostfile")
fi
if [[ -z $per_node ]]; then
  per_node=$(((ranks + nodes - 1) / nodes))
fi
if ((per_node * nodes < ranks)); then
  echo "$0: $ranks ranks do not fit $nodes node(s) x $per_node ranks per node" >&2
  exit 1
fi
if [[ -z $threads ]]; then
  threads=$(($(nproc) / per_node))
  ((threads >= 1)) || threads=1
fi
if ((per_node * threads > $(nproc))); then
  args+=(--oversubscribe --bind-to none)  # more ranks than cores: binding would serialise them
else
  args+=(--map-by "ppr:$per_node:node:PE=$threads" --bind-to core)
fi
# Open MPI refuses to run as root unless told; only then.
[[ $(id -u) -eq 0 ]] && args+=(--allow-run-as-root)
# On SIGTERM, Open MPI waits this long before passing SIGTERM on and again before SIGKILL (default 1 s,
# too short for a checkpoint); USR1 is passed on at once.
args+=(--mca odls_base_sigkill_timeout "$stop_grace_s")
args+=(-x "OMP_NUM_THREADS=$threads" -x PATH)
[[ -n ${LD_LIBRARY_PATH:-} ]] && args+=(-x LD_LIBRARY_PATH)
for name in $(compgen -e); do
  case $name in
    NCCL_* | UCX_* | CUDA_* | L4_* | MKL_* | TORCH_* | PYTORCH_*) args+=(-x "$name") ;;
  esac
done
# mpirun runs as a child, not exec'd: on SIGTERM Open MPI kills the ranks after its grace time, which can
# cut a checkpoint short; SIGUSR1 it forwards at once and the ranks' handler checkpoints and exits 0.
# A stop that arrives while the job starts must not be lost nor kill anything: the trap exists before
# mpirun does, and mpirun is sent SIGUSR1 only once every rank on this node catches it (/proc shows it).
# Before that a copy could reach a rank between its fork and the inner sh's `trap "" USR1` (the default
# action there kills it) or be dropped while the ignore holds. Each rank starts with SIGUSR1 ignored (set
# by the sh below, kept through exec) until llama4's main installs its handler. When this node's ranks do
# not all show up (this host outside the hostfile, say), the stop goes out after L4_STOP_REMOTE_WAIT_S
# seconds (default 10) of mpirun catching it, again every second until they catch it. Not after delivery:
# mpirun drops its own handler while it exits, and a late copy would kill it.
delivered=0
mpirun_pid=""
catches_usr1() {  # bit 10 (SIGUSR1) of the process's caught-signal mask
  local mask
  mask=$(awk '/^SigCgt:/ {print $2}' "/proc/$1/status" 2>/dev/null)
  [[ -n $mask ]] && (((16#$mask >> 9) & 1))
}
bin_path=$(readlink -f "$BIN")
local_ranks() {  # every llama4 process under mpirun (two levels: ranks, or orted's ranks)
  local pid
  for pid in $(pgrep -P "$mpirun_pid" 2>/dev/null) $(pgrep -P "$(pgrep -d, -P "$mpirun_pid" 2>/dev/null)" 2>/dev/null); do
    [[ $(readlink "/proc/$pid/exe" 2>/dev/null) == "$bin_path" ]] && echo "$pid"
  done
}
# Ranks mpirun starts on this node: all of them without a hostfile, else one node's share (this node
# may not be in the hostfile at all: then the wait below runs out).
expected_local=$ranks
[[ -n $hostfile ]] && expected_local=$((per_node < ranks ? per_node : ranks))
mpirun_catching_since=""
last_sent=""
forward_stop() {
  stop=1
  ((delivered)) || [[ -z $mpirun_pid ]] && return 0
  catches_usr1 "$mpirun_pid" || return 0
  [[ -n $mpirun_catching_since ]] || mpirun_catching_since=$SECONDS
  local pid ranks=0 ready=0
  for pid in $(local_ranks); do
    ranks=$((ranks + 1))
    catches_usr1 "$pid" && ready=$((ready + 1))
  done
  if ((ranks >= expected_local && ready == ranks)); then
    kill -USR1 "$mpirun_pid" 2>/dev/null
    delivered=1
  elif ((SECONDS - mpirun_catching_since >= stop_remote_wait_s)) && [[ $last_sent != "$SECONDS" ]]; then
    # The ranks here never all showed up: send it anyway, again each second until they catch it.
    kill -USR1 "$mpirun_pid" 2>/dev/null
    last_sent=$SECONDS
    ((ranks > 0 && ready == ranks)) && delivered=1
  fi
  return 0
}
trap forward_stop TERM INT USR1
# shellcheck disable=SC2016  # $0 and $@ are the inner sh's
mpirun "${args[@]}" /bin/sh -c 'trap "" USR1; exec "$0" "$@"' "$BIN" "$@" &
mpirun_pid=$!
set +e
while kill -0 "$mpirun_pid" 2>/dev/null; do
  ((stop && !delivered)) && forward_stop
  # A pending stop is looked at ten times a second, so that it reaches the ranks soon after they catch it.
  if ((stop && !delivered)); then sleep 0.1 & else sleep 1 & fi
  wait $! 2>/dev/null  # a trapped signal ends this wait early
done
wait "$mpirun_pid"
exit $?
