#!/usr/bin/env bash
# A multi-node Ray cluster on one machine: a head node plus N worker nodes, each its own `ray start`
# (own raylet, object store and workers), for tests and for trying --address without a cloud.
#
#   cluster/local.sh start [N]     head + N workers (default 2); prints the GCS address (also in $STATE/address)
#                                  and the job-server URL for `ray job submit` (also in $STATE/dashboard)
#   cluster/local.sh status        nodes alive, by `ray status`
#   cluster/local.sh kill-node K   SIGKILL worker K's raylet (a node failure); its workers die with it
#   cluster/local.sh stop          stop this cluster's processes only (other Ray instances are left alone)
#
# Settings (environment): VDES_CLUSTER_DIR (state, default /tmp/vdes-local-cluster; Ray's own logs are in
# /tmp/vdes-ray-<port>, VDES_CLUSTER_RAY_TMP), VDES_CLUSTER_PORT
# (GCS port, default 6399), VDES_DASHBOARD_PORT (job server, default 8266), VDES_AGENT_PORT (the head's
# dashboard agent, which runs submitted jobs; default 52365), VDES_HEAD_CPUS (default 1),
# VDES_WORKER_CPUS (default 1), VDES_WORKER_GPUS (logical GPUs per worker as COUNT:MIB, space-separated in
# worker order, e.g. "1:81920 2:24576": worker 0 gets one 80 GiB GPU, worker 1 two 24 GiB ones; each such
# worker advertises gpu_memory_mib = COUNT x MIB, as `vdes-tune gpus --ray-resources` prints on a real GPU
# node; default none), RAY_AUTH_MODE (default token: a token is generated once with
# `ray get-auth-token --generate` and used by every node; drivers on this machine find it in
# ~/.ray/auth_token. Tests set RAY_AUTH_MODE=disabled on every node and driver.) Every node binds to 127.0.0.1; the dashboard too.
# Each node's processes get VDES_CACHE=$STATE/cache-<node> (where a URI workspace is mirrored), so the nodes
# share nothing on disk but what the workspace URI holds.
set -euo pipefail

STATE=${VDES_CLUSTER_DIR:-/tmp/vdes-local-cluster}
PORT=${VDES_CLUSTER_PORT:-6399}
DASHBOARD_PORT=${VDES_DASHBOARD_PORT:-8266}
# The head's dashboard agent serves job submission; two clusters on one machine must not share its port.
AGENT_PORT=${VDES_AGENT_PORT:-52365}
# Ray's session files (logs, sockets) go to a short path: AF_UNIX socket paths are limited to 107 bytes.
RAY_TMP=${VDES_CLUSTER_RAY_TMP:-/tmp/vdes-ray-$PORT}
HEAD_CPUS=${VDES_HEAD_CPUS:-1}
WORKER_CPUS=${VDES_WORKER_CPUS:-1}
export RAY_AUTH_MODE=${RAY_AUTH_MODE:-token}
RAY=${RAY:-ray}

# Each node starts in its own session (setsid), so stopping or killing one never touches other Ray
# instances on the machine: `ray stop` would stop them all.
start_node() {  # name, ray start arguments...
  local name=$1; shift
  # Each node mirrors a URI workspace into its own cache, as separate machines would: nothing one node
  # pulled is visible to another except through the shared storage.
  VDES_CACHE="$STATE/cache-$name" setsid "$RAY" start "$@" --temp-dir="$RAY_TMP" >"$STATE/$name.log" 2>&1 &
  local pid=$!
  echo "$pid" >"$STATE/$name.sid"  # setsid's child is a session leader: its pid is the session id
  wait "$pid" || { echo "ray start for $name failed; see $STATE/$name.log" >&2; cat "$STATE/$name.log" >&2; exit 1; }
}

session_pids() {  # session id -> the pids in it
  ps -eo pid=,sid= | awk -v s="$1" '$2 == s {print $1}'
}

case ${1:-} in
  start)
    workers=${2:-2}
    if [[ -f $STATE/address ]]; then echo "a cluster is running (state in $STATE); stop it first" >&2; exit 2; fi
    mkdir -p "$STATE" "$RAY_TMP"
    if [[ $RAY_AUTH_MODE == token && ! -s ${RAY_AUTH_TOKEN_PATH:-$HOME/.ray/auth_token} && -z ${RAY_AUTH_TOKEN:-} ]]; then
      "$RAY" get-auth-token --generate >/dev/null
    fi
    start_node head --head --node-ip-address=127.0.0.1 --port="$PORT" --num-cpus="$HEAD_CPUS" --num-gpus=0 \
      --resources='{"head_slot": 1}' --dashboard-host=127.0.0.1 --dashboard-port="$DASHBOARD_PORT" --dashboard-agent-listen-port="$AGENT_PORT" \
      --disable-usage-stats
    read -r -a gpu_specs <<<"${VDES_WORKER_GPUS:-}"
    for ((k = 0; k < workers; k++)); do
      spec=${gpu_specs[k]:-0:0}
      count=${spec%%:*} mib=${spec#*:}
      resources="\"worker_$k\": 1"
      ((count > 0)) && resources+=", \"gpu_memory_mib\": $((count * mib))"
      start_node "worker-$k" --address="127.0.0.1:$PORT" --node-ip-address=127.0.0.1 --num-cpus="$WORKER_CPUS" \
        --num-gpus="$count" --resources="{$resources}" --disable-usage-stats
    done
    echo "127.0.0.1:$PORT" >"$STATE/address"
    echo "http://127.0.0.1:$DASHBOARD_PORT" >"$STATE/dashboard"
    echo "127.0.0.1:$PORT"
    echo "http://127.0.0.1:$DASHBOARD_PORT"
    ;;
  status)
    "$RAY" status --address="$(cat "$STATE/address")"
    ;;
  kill-node)
    k=${2:?worker number}
    sid=$(cat "$STATE/worker-$k.sid")
    raylet=$(ps -eo pid=,sid=,args= | awk -v s="$sid" '$2 == s && /raylet\/raylet/ {print $1}')
    [[ -n $raylet ]] || { echo "worker $k has no raylet running" >&2; exit 1; }
    kill -KILL $raylet
    echo "killed raylet $raylet of worker $k"
    ;;
  stop)
    for f in "$STATE"/*.sid; do
      [[ -e $f ]] || continue
      pids=$(session_pids "$(cat "$f")")
      [[ -z $pids ]] || kill -KILL $pids 2>/dev/null || true
      rm -f "$f"
    done
    rm -f "$STATE/address" "$STATE/dashboard"
    ;;
  *)
    sed -n '2,22p' "$0" >&2
    exit 2
    ;;
esac
