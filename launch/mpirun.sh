#!/usr/bin/env bash
# Launches llama4 on one or more nodes with Open MPI.
#
#   launch/mpirun.sh -n 8 [-H hostfile] [-t threads] -- train --config recipes/X.yaml [key=value ...]
#
# -n  total ranks (default: 2)           -H  hostfile (see launch/hostfile.example; default: this node)
# -t  OpenMP/intra-op threads per rank (default: cores per node / ranks per node, at least 1)
# Ranks are bound to cores (--map-by slot:PE=t), so two ranks never fight over one core.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN=${L4_BINARY:-$ROOT/build/bin/llama4}
ranks=2
hostfile=""
threads=""
while getopts "n:H:t:h" opt; do
  case $opt in
    n) ranks=$OPTARG ;;
    H) hostfile=$OPTARG ;;
    t) threads=$OPTARG ;;
    h) sed -n '2,9p' "$0"; exit 0 ;;
    *) exit 1 ;;
  esac
done
shift $((OPTIND - 1))
[[ ${1:-} == "--" ]] && shift
[[ $# -gt 0 ]] || { echo "usage: $0 -n RANKS [-H hostfile] -- <llama4 subcommand> ..." >&2; exit 1; }
[[ -x $BIN ]] || { echo "$BIN not found: run scripts/setup.sh first" >&2; exit 1; }

args=(-np "$ranks")
if [[ -n $hostfile ]]; then
  args+=(--hostfile "$hostfile")
  ranks_per_node=$(( (ranks + $(grep -cv '^\s*\(#\|$\)' "$hostfile") - 1) / $(grep -cv '^\s*\(#\|$\)' "$hostfile") ))
else
  ranks_per_node=$ranks
fi
if [[ -z $threads ]]; then
  threads=$(( $(nproc) / ranks_per_node ))
  (( threads >= 1 )) || threads=1
fi
if (( ranks_per_node * threads > $(nproc) )); then
  args+=(--oversubscribe --bind-to none)   # more ranks than cores: binding would serialise them
else
  args+=(--map-by "slot:PE=$threads" --bind-to core)
fi
# Open MPI refuses to run as root unless told; only then.
[[ $(id -u) -eq 0 ]] && args+=(--allow-run-as-root)
args+=(-x "OMP_NUM_THREADS=$threads" -x PATH -x LD_LIBRARY_PATH)
exec mpirun "${args[@]}" "$BIN" "$@"
