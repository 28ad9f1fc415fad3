#!/usr/bin/env bash
# Runs the krmx-load workloads against `krmx serve` on both transports, the Node.js reference and
# the bare mio and smol WebSocket servers, alternating the servers round by round, and keeps every
# table and JSON line under target/bench/<time>/. Not part of .ci/run. The README's performance
# table comes from `ROUNDS=3 bench/run.sh`.
#
#   bench/run.sh                 # every workload, 3 rounds
#   ROUNDS=5 bench/run.sh relay  # some workloads only: link relay echo echo4 idle idle10k
#                                # rooms room-churn
#   NODE=0 bench/run.sh          # without the Node reference (no npm needed)
#   TLS=0 bench/run.sh           # without the wss:// rows (they need openssl for the certificate)
#   BASELINE=/tmp/old/krmx NODE=0 BARE=0 bench/run.sh relay echo idle
#                                # this build against another build of `krmx` (before/after a
#                                # change), both transports, alternating round by round
#
# The Node reference is installed on first use (npm ci in bench/node-reference). idle10k needs
# `ulimit -n` of 20000 or more and takes minutes per server; the Node reference is left out of
# it (its link storm for 10000 users would take hours). rooms and room-churn run `krmx serve
# --rooms /rooms` on both transports only (rooms are ours: no Node reference, no bare server).
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS="${ROUNDS:-3}"
NODE="${NODE:-1}"
BARE_PEERS="${BARE:-1}"
BASELINE="${BASELINE:-}"
TLS="${TLS:-1}"
WORKLOADS=("$@")
if [ ${#WORKLOADS[@]} -eq 0 ]; then
  WORKLOADS=(link relay echo echo4 idle idle10k rooms room-churn)
fi

cargo build --release -p krmx-cli -p krmx-load
if [ "$NODE" = 1 ] && [ ! -d bench/node-reference/node_modules ]; then
  (cd bench/node-reference && npm ci --no-audit --no-fund)
fi

OUT="target/bench/$(date +%Y%m%d-%H%M%S)"
mkdir -p "$OUT"
LOAD=target/release/krmx-load
# The reference serves protocol 0.5, so every client sends 0.5.0 and ours serves 0.5 too.
KRMX=(--server "mio:target/release/krmx serve --krmx-version 0.5"
  --server "smol:target/release/krmx serve --transport smol --krmx-version 0.5")
NODE_REF=()
if [ "$NODE" = 1 ]; then
  NODE_REF=(--server "node:node bench/node-reference/serve.js")
fi
if [ -n "$BASELINE" ]; then
  KRMX+=(--server "mio-baseline:$BASELINE serve --krmx-version 0.5"
    --server "smol-baseline:$BASELINE serve --transport smol --krmx-version 0.5")
fi
# The relay and echo workloads also run `krmx serve --tls-cert --tls-key` on both transports,
# reached over wss:// (rows mio-tls and smol-tls): the cost of TLS. The certificate is a
# self-signed one for localhost, made here.
KRMX_TLS=()
if [ "$TLS" = 1 ]; then
  mkdir -p "$OUT/tls"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
    -subj /CN=localhost -addext subjectAltName=DNS:localhost \
    -addext basicConstraints=critical,CA:FALSE \
    -keyout "$OUT/tls/key.pem" -out "$OUT/tls/cert.pem" 2>/dev/null
  CERT=(--tls-cert "$OUT/tls/cert.pem" --tls-key "$OUT/tls/key.pem")
  KRMX_TLS=(--tls-ca "$OUT/tls/cert.pem"
    --tls-server "mio-tls:target/release/krmx serve --krmx-version 0.5 ${CERT[*]}"
    --tls-server "smol-tls:target/release/krmx serve --transport smol --krmx-version 0.5 ${CERT[*]}")
fi
BARE=()
if [ "$BARE_PEERS" = 1 ]; then
  BARE=(--bare "bare-mio:target/release/krmx-bare --transport mio"
    --bare "bare-smol:target/release/krmx-bare --transport smol")
fi

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
    link) run link link --clients 1000 "${KRMX[@]}" "${NODE_REF[@]}" ;;
    # 1000 linked clients, 10 senders of 300 messages each: 3 M deliveries (over a minute for
    # the Node reference per round, a second for ours).
    relay) run relay relay --clients 1000 --senders 10 --messages 300 --window 16 \
      "${KRMX[@]}" "${KRMX_TLS[@]}" "${NODE_REF[@]}" "${BARE[@]}" ;;
    # One round trip outstanding per client: every message its own read and write.
    echo) run echo echo --clients 10 --round-trips 5000 --window 1 \
      "${KRMX[@]}" "${KRMX_TLS[@]}" "${NODE_REF[@]}" "${BARE[@]}" ;;
    # Four outstanding per client (a client that does not wait for each answer).
    echo4) run echo4 echo --clients 10 --round-trips 10000 --window 4 \
      "${KRMX[@]}" "${KRMX_TLS[@]}" "${NODE_REF[@]}" "${BARE[@]}" ;;
    # Memory is read 3 s after the last link: `krmx serve` trims its heap after 0.5 s quiet.
    idle) run idle idle --clients 1000 --hold-ms 3000 "${KRMX[@]}" "${NODE_REF[@]}" "${BARE[@]}" ;;
    idle10k)
      if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt 20000 ]; then
        echo "idle10k needs ulimit -n >= 20000 (it is $(ulimit -n))" >&2
        exit 2
      fi
      PHASE_TIMEOUT=1800 run idle10k idle --clients 10000 --hold-ms 3000 --stop-grace-secs 30 \
        "${KRMX[@]}" "${BARE[@]}" ;;
    # 1000 rooms of 10 linked users (10000 connections: ulimit -n of 20000 or more), memory
    # read 3 s after the last link; then one sender per room, 100 messages each: 1 M deliveries.
    rooms)
      if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt 20000 ]; then
        echo "rooms needs ulimit -n >= 20000 (it is $(ulimit -n))" >&2
        exit 2
      fi
      # mio runs the rooms on every core (the default); mio-1w on one worker thread.
      run rooms rooms --rooms 1000 --users 10 --messages 100 --window 16 --hold-ms 3000 \
        --stop-grace-secs 30 "${KRMX[@]}" \
        --server "mio-1w:target/release/krmx serve --krmx-version 0.5 --workers 1" ;;
    # 10000 rooms created by a connection each (link, leave, close), dropped 100 ms after;
    # the generator keeps its 10000 closed sockets until the end (ulimit -n above 10000).
    # Memory is read 16 s after the drop: the closed connections' ping timers (15 s) still wake
    # the server until then, and its heap is trimmed only after 0.5 s without a turn.
    room-churn) run room-churn room-churn --rooms 10000 --room-idle-ms 100 --hold-ms 16000 \
      "${KRMX[@]}" ;;
    *) echo "unknown workload $workload" >&2; exit 2 ;;
  esac
done
echo "results in $OUT" >&2
