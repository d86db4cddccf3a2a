#!/bin/bash
# Runs our incusd in the background for benchmarks, the way ../../../shared/peers/incus/incusd-ctl.sh
# runs the real one: own INCUS_DIR, PID file, stopped by that PID only.
#   incusd-ctl.sh start   start, wait until GET /internal/ready answers 200; prints startup_ms=N
#   incusd-ctl.sh stop    SIGTERM to the recorded PID (instances keep running)
#   incusd-ctl.sh status  running pid=N rss_kib=N
# Environment: INCUS_DIR (required), INCUSD (default: target/release/incusd of this repository).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
: "${INCUS_DIR:?set INCUS_DIR}"
INCUSD=${INCUSD:-$HERE/../../target/release/incusd}
PIDFILE=$INCUS_DIR/incusd.pid
SOCK=$INCUS_DIR/unix.socket
running() { [ -s "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; }
case "${1:-status}" in
start)
    if running; then echo "already running pid=$(cat "$PIDFILE")"; exit 0; fi
    mkdir -p "$INCUS_DIR"
    t0=$(date +%s%N)
    setsid "$INCUSD" --dir "$INCUS_DIR" >>"$INCUS_DIR/incusd.log" 2>&1 </dev/null &
    echo $! >"$PIDFILE"
    for _ in $(seq 6000); do
        if python3 - "$SOCK" <<'PY' 2>/dev/null
import socket, sys
s = socket.socket(socket.AF_UNIX); s.settimeout(2); s.connect(sys.argv[1])
s.sendall(b"GET /internal/ready HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
sys.exit(0 if s.recv(64).startswith(b"HTTP/1.1 200") else 1)
PY
        then
            echo "incusd started pid=$(cat "$PIDFILE") startup_ms=$(( ($(date +%s%N) - t0) / 1000000 ))"
            exit 0
        fi
        sleep 0.005
    done
    echo "incusd did not become ready" >&2; exit 1
    ;;
stop)
    running || { echo "not running"; rm -f "$PIDFILE"; exit 0; }
    pid=$(cat "$PIDFILE"); kill -TERM "$pid"
    for _ in $(seq 600); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
    rm -f "$PIDFILE"; echo "incusd pid=$pid stopped"
    ;;
status)
    running || { echo "not running"; exit 1; }
    pid=$(cat "$PIDFILE"); echo "running pid=$pid rss_kib=$(awk '/^VmRSS/{print $2}' /proc/$pid/status)"
    ;;
esac
