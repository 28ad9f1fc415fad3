#!/usr/bin/env bash
# Runs the four krmx-load workloads against `krmx serve` (mio), the Node.js reference and the
# bare mio WebSocket relay, alternating the servers round by round, and keeps every table and
# JSON line under target/bench/<time>/. Not part of .ci/run.
#
#   bench/run.sh                 # quick sizes, 3 rounds
#   ROUNDS=5 bench/run.sh relay  # some workloads only: link relay echo idle idle10k
#   NODE=0 bench/run.sh          # without the Node reference (no npm needed)
#
# The Node reference is installed on first use (npm ci in bench/node-reference). idle10k needs
# `ulimit -n` of 20000 or more and takes minutes per server; the Node reference is left out of
# it (its link storm for 10000 users would take hours).
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS="${ROUNDS:-3}"
NODE="${NODE:-1}"
WORKLOADS=("$@")
if [ ${#WORKLOADS[@]} -eq 0 ]; then
  WORKLOADS=(link relay echo idle idle10k)
fi

cargo build --release -p krmx-cli -p krmx-load
if [ "$NODE" = 1 ] && [ ! -d bench/node-reference/node_modules ]; then
  (cd bench/node-reference && npm ci --no-audit --no-fund)
fi

OUT="target/bench/$(date +%Y%m%d-%H%M%S)"
mkdir -p "$OUT"
LOAD=target/release/krmx-load
# The reference serves protocol 0.5, so every client sends 0.5.0 and ours serves 0.5 too.
MIO=(--server "mio:target/release/krmx serve --krmx-version 0.5")
NODE_REF=()
if [ "$NODE" = 1 ]; then
  NODE_REF=(--server "node:node bench/node-reference/serve.js")
fi
BARE=(--bare "bare-mio:target/release/krmx-bare --transport mio")

# run NAME WORKLOAD ARGS...: one krmx-load invocation, its output kept as NAME.txt / NAME.log.
run() {
  local name="$1"
  shift
  echo "== $name" >&2
  "$LOAD" "$@" --rounds "$ROUNDS" --version 0.5.0 --phase-timeout-secs "${PHASE_TIMEOUT:-900}" \
    2> >(tee "$OUT/$name.log" >&2) | tee "$OUT/$name.txt"
}

for workload in "${WORKLOADS[@]}"; do
  case "$workload" in
    link) run link link --clients 1000 "${MIO[@]}" "${NODE_REF[@]}" "${BARE[@]}" ;;
    relay) run relay relay --clients 1000 --senders 10 --messages 1000 --window 16 \
      "${MIO[@]}" "${NODE_REF[@]}" "${BARE[@]}" ;;
    echo) run echo echo --clients 10 --round-trips 10000 "${MIO[@]}" "${NODE_REF[@]}" "${BARE[@]}" ;;
    idle) run idle idle --clients 1000 "${MIO[@]}" "${NODE_REF[@]}" "${BARE[@]}" ;;
    idle10k)
      if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt 20000 ]; then
        echo "idle10k needs ulimit -n >= 20000 (it is $(ulimit -n))" >&2
        exit 2
      fi
      PHASE_TIMEOUT=1800 run idle10k idle --clients 10000 "${MIO[@]}" "${BARE[@]}" ;;
    *) echo "unknown workload $workload" >&2; exit 2 ;;
  esac
done
echo "results in $OUT" >&2
