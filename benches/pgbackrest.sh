#!/usr/bin/env bash
# benches/pgbackrest.sh: Lifeboat's PostgreSQL continuous-archiving layer
# (physical base backups, `wal push` as archive_command, point-in-time
# restore to pgdata://) against pgBackRest (Debian's package), on the same
# throwaway cluster in the same run (issue 11). Prints markdown tables with
# ratios; no timing goes into a pass/fail test.
#
# Usage:
#   benches/pgbackrest.sh [--scale N] [--extra-mb N] [--runs N] [--parts LIST]
#                         [--backlog N] [--load-seconds N] [--pitr-wal-mb N]
#                         [--out FILE] [--skip-build] [--keep]
#
#   --scale N         pgbench -i scale (default 100: about 1.5 GB)
#   --extra-mb N      plus a table of md5 text, about N MB (default 300), so
#                     that not everything is pgbench's blank filler
#   --runs N          measured runs of each base backup (default 1; the
#                     median is reported)
#   --parts LIST      comma-separated, any of backup,pitr,archive (default all
#                     three, in that order; pitr restores the backups of the
#                     backup part, so it needs it)
#   --backlog N       archiving: batches of ~16 MiB WAL in the backlog that
#                     each archiver catches up on (default 64)
#   --load-seconds N  archiving: pgbench write load per archiver (default 60)
#   --pitr-wal-mb N   PITR: WAL written after the base backups, replayed by
#                     each restore (default 1024)
#   --out FILE        also write the tables to FILE
#   --skip-build      use target/release/lifeboat as it is
#   --keep            keep the work directory (logs) at exit
#
# Environment: PGBIN (default /usr/lib/postgresql/15/bin); CLIENTS (pgbench
# clients, default 4); QUIET_WAIT (s to wait for a quiet second before each
# timed command, default 60).
#
# It installs pgbackrest with apt when it is missing (root), creates a
# cluster with data checksums in a mktemp directory under /tmp on a free
# port (run as `postgres` when root), starts moto (plain HTTP for Lifeboat;
# socat terminates TLS in front of it for pgBackRest, which only speaks HTTPS
# to S3), and
# removes all of it at exit. Every Lifeboat and pgBackRest command runs as
# `postgres`, under /usr/bin/time -v.
set -euo pipefail

SCALE=100
EXTRA_MB=300
RUNS=1
PARTS="backup,pitr,archive"
BACKLOG=64
LOAD_SECONDS=60
PITR_WAL_MB=1024
OUT_FILE=""
SKIP_BUILD=0
KEEP=0
CLIENTS="${CLIENTS:-4}"
QUIET_WAIT="${QUIET_WAIT:-60}"
PGBIN="${PGBIN:-/usr/lib/postgresql/15/bin}"
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

usage() { sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; }
die() { echo "pgbackrest.sh: error: $*" >&2; exit 1; }
log() { echo "==> $*" >&2; }
need_value() { if [ $# -lt 2 ] || [ -z "$2" ]; then die "$1 needs a value"; fi; }
while [ $# -gt 0 ]; do
  case "$1" in
    --scale) need_value "$@"; SCALE=$2; shift 2 ;;
    --extra-mb) need_value "$@"; EXTRA_MB=$2; shift 2 ;;
    --runs) need_value "$@"; RUNS=$2; shift 2 ;;
    --parts) need_value "$@"; PARTS=$2; shift 2 ;;
    --backlog) need_value "$@"; BACKLOG=$2; shift 2 ;;
    --load-seconds) need_value "$@"; LOAD_SECONDS=$2; shift 2 ;;
    --pitr-wal-mb) need_value "$@"; PITR_WAL_MB=$2; shift 2 ;;
    --out) need_value "$@"; OUT_FILE=$2; shift 2 ;;
    --skip-build) SKIP_BUILD=1; shift ;;
    --keep) KEEP=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) echo "pgbackrest.sh: unknown option '$1'" >&2; usage >&2; exit 2 ;;
  esac
done
for v in SCALE EXTRA_MB RUNS BACKLOG LOAD_SECONDS PITR_WAL_MB CLIENTS QUIET_WAIT; do
  [[ ${!v} =~ ^[0-9]+$ ]] || die "$v must be a whole number (got '${!v}')"
done
[ "$RUNS" -ge 1 ] || die "--runs must be at least 1"
part() { [[ ",$PARTS," == *",$1,"* ]]; }
if part pitr && ! part backup; then die "--parts pitr needs backup too (it restores those backups)"; fi

# ------------------------------------------------------------ tools ---
for tool in curl python3 awk ps zstd; do
  command -v "$tool" >/dev/null 2>&1 || die "$tool not found"
done
[ -x /usr/bin/time ] || die "/usr/bin/time (GNU time) not found: apt-get install -y time"
for t in initdb pg_ctl psql pgbench pg_basebackup pg_verifybackup; do
  [ -x "$PGBIN/$t" ] || die "$PGBIN/$t not found (apt-get install -y postgresql-15, or set PGBIN)"
done
if ! command -v pgbackrest >/dev/null 2>&1; then
  [ "$(id -u)" = 0 ] || die "pgbackrest is not installed (apt-get install -y pgbackrest, as root)"
  log "apt-get install -y pgbackrest"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q pgbackrest >/dev/null ||
    { apt-get update -q >/dev/null && apt-get install -y -q pgbackrest >/dev/null; } ||
    die "apt-get install pgbackrest failed"
fi
PGBR="$(command -v pgbackrest)"
AS_PG=()
if [ "$(id -u)" = 0 ]; then
  id postgres >/dev/null 2>&1 || die "running as root but there is no 'postgres' user"
  AS_PG=(runuser -u postgres --)
fi
VENV="$REPO/.venv"
[ -x "$VENV/bin/moto_server" ] && [ -x "$VENV/bin/aws" ] ||
  die "$VENV/bin/moto_server or aws missing (scripts/test installs them)"
# pgBackRest speaks only HTTPS to S3, and with OpenSSL 3 it fails on moto
# --ssl's connections (closed without a TLS close_notify): socat terminates
# TLS in front of the one moto server.
if ! command -v socat >/dev/null 2>&1; then
  [ "$(id -u)" = 0 ] || die "socat is not installed (apt-get install -y socat, as root)"
  log "apt-get install -y socat"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q socat >/dev/null || die "apt-get install socat failed"
fi
command -v openssl >/dev/null 2>&1 || die "openssl not found"

if [ "$SKIP_BUILD" = 0 ]; then
  log "cargo build --release -p backup-cli"
  (cd "$REPO" && cargo build --release -p backup-cli)
fi
LB="${LIFEBOAT:-$REPO/target/release/lifeboat}"
[ -x "$LB" ] || die "$LB missing (build without --skip-build)"

# ------------------------------------------------------ work + cleanup ---
WORK="$(mktemp -d /tmp/lb-pgbr.XXXXXX)"
chmod 755 "$WORK"
mkdir -p "$WORK/sock" "$WORK/logs" "$WORK/tmp" "$WORK/pgbr-conf.d"
[ "${#AS_PG[@]}" -gt 0 ] && chown -R postgres:postgres "$WORK"
DATA="$WORK/data"
MOTO_PIDS=()
STARTED_DIRS=()
on_exit() {
  local rc=$? d p
  trap - EXIT
  for d in ${STARTED_DIRS[@]+"${STARTED_DIRS[@]}"}; do
    "${AS_PG[@]}" "$PGBIN/pg_ctl" -D "$d" -m immediate -w -t 30 stop >/dev/null 2>&1 || true
  done
  for p in ${MOTO_PIDS[@]+"${MOTO_PIDS[@]}"}; do
    kill "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
  done
  if [ "$KEEP" = 1 ] || [ "$rc" != 0 ]; then
    rm -rf "$WORK/data" "$WORK"/r-* "$WORK/lb-local" "$WORK/pgbr-repo" "$WORK"/arch-* "$WORK/tmp"
    echo "pgbackrest.sh: exit $rc; logs kept in $WORK" >&2
  else
    rm -rf "$WORK"
  fi
  exit "$rc"
}
trap on_exit EXIT
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 143' TERM

free_ports() {
  python3 -c '
import socket, sys
s = [socket.socket() for _ in range(int(sys.argv[1]))]
for x in s: x.bind(("127.0.0.1", 0))
print(" ".join(str(x.getsockname()[1]) for x in s))' "$1"
}
read -r PORT RPORT MOTO_PORT MOTO_TLS_PORT <<<"$(free_ports 4)"

as_pg() { "${AS_PG[@]}" "$@"; }
psql_q() { "$PGBIN/psql" -X -q -At -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PORT" -U postgres -d postgres "$@"; }
fnum() { awk -v x="$1" -v f="${2:-%.2f}" 'BEGIN { printf f, x }'; }
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }

# ------------------------------------------------------------ cluster ---
log "initdb (data checksums) in $DATA, port $PORT"
as_pg "$PGBIN/initdb" -D "$DATA" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 \
  --data-checksums --no-sync >"$WORK/logs/initdb.log" 2>&1 || { cat "$WORK/logs/initdb.log" >&2; die "initdb failed"; }
cat >>"$DATA/postgresql.conf" <<EOF

# benches/pgbackrest.sh
port = $PORT
listen_addresses = '127.0.0.1'
unix_socket_directories = '$WORK/sock'
shared_buffers = 256MB
wal_level = replica
archive_mode = on
archive_command = '/bin/true'
max_wal_size = 16GB
min_wal_size = 1GB
checkpoint_timeout = 1h
synchronous_commit = off
max_wal_senders = 4
autovacuum = off
EOF
STARTED_DIRS+=("$DATA")
as_pg "$PGBIN/pg_ctl" -D "$DATA" -l "$WORK/logs/server.log" -w -t 120 start >/dev/null ||
  { tail -n 30 "$WORK/logs/server.log" >&2; die "pg_ctl start failed"; }
PG_PID=$(head -n 1 "$DATA/postmaster.pid")
URL="postgres://postgres@127.0.0.1:$PORT/postgres"

log "generating: pgbench -i -s $SCALE, plus ~$EXTRA_MB MB of md5 text"
t0=$(now)
"$PGBIN/pgbench" -i -q -s "$SCALE" -h 127.0.0.1 -p "$PORT" -U postgres postgres >"$WORK/logs/pgbench-init.log" 2>&1 ||
  { tail -n 20 "$WORK/logs/pgbench-init.log" >&2; die "pgbench -i failed"; }
# About 200 bytes a row on disk: 4 md5s (hex, so about half compressible).
EXTRA_ROWS=$((EXTRA_MB * 1000000 / 200))
psql_q -c "CREATE TABLE docs (id bigint PRIMARY KEY, body text)" \
  -c "INSERT INTO docs SELECT g, md5(random()::text) || md5(random()::text) || md5(random()::text) || md5(random()::text)
      FROM generate_series(1, $EXTRA_ROWS) g" -c "VACUUM ANALYZE docs" -c "CHECKPOINT"
CLUSTER_BYTES=$(psql_q -c "SELECT sum(pg_database_size(oid)) FROM pg_database")
log "generated in $(elapsed "$t0" "$(now)") s: cluster $CLUSTER_BYTES bytes"

# --------------------------------------------------------------- moto ---
export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing
export AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1
export AWS_EC2_METADATA_DISABLED=true AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null
unset AWS_PROFILE AWS_SESSION_TOKEN AWS_ENDPOINT_URL AWS_ENDPOINT_URL_S3
EP="http://127.0.0.1:$MOTO_PORT"
EP_TLS="https://127.0.0.1:$MOTO_TLS_PORT"
SOCAT_PID=""
wait_url() { # URL PID LOG
  for _ in $(seq 1 100); do
    curl -fsSk -o /dev/null "$1/" 2>/dev/null && return 0
    kill -0 "$2" 2>/dev/null || { cat "$3" >&2; die "server for $1 exited"; }
    sleep 0.2
  done
  die "nothing answered on $1"
}
if part backup; then
  log "starting moto on $EP (Lifeboat), with socat's TLS in front of it on $EP_TLS (pgBackRest)"
  "$VENV/bin/moto_server" -H 127.0.0.1 -p "$MOTO_PORT" >"$WORK/logs/moto.log" 2>&1 &
  MOTO_PIDS+=("$!")
  wait_url "$EP" "$!" "$WORK/logs/moto.log"
  openssl req -x509 -newkey rsa:2048 -nodes -keyout "$WORK/tls.key" -out "$WORK/tls.crt" -days 2 \
    -subj /CN=127.0.0.1 >/dev/null 2>&1 || die "openssl req failed"
  socat "OPENSSL-LISTEN:$MOTO_TLS_PORT,bind=127.0.0.1,reuseaddr,fork,cert=$WORK/tls.crt,key=$WORK/tls.key,verify=0" \
    "TCP:127.0.0.1:$MOTO_PORT" 2>"$WORK/logs/socat.log" &
  SOCAT_PID=$!
  MOTO_PIDS+=("$SOCAT_PID")
  wait_url "$EP_TLS" "$SOCAT_PID" "$WORK/logs/socat.log"
  "$VENV/bin/aws" --endpoint-url "$EP" s3 mb s3://lifeboat >/dev/null
  "$VENV/bin/aws" --endpoint-url "$EP" s3 mb s3://pgbackrest >/dev/null
fi
LB_S3_ENV=(env AWS_ENDPOINT_URL="$EP" AWS_ALLOW_HTTP=true AWS_ACCESS_KEY_ID=testing
  AWS_SECRET_ACCESS_KEY=testing AWS_REGION=us-east-1 TMPDIR="$WORK/tmp")

# --------------------------------------------------------- pgBackRest ---
# The main configuration: repo1 a local folder, repo2 S3 (moto over TLS).
CONF="$WORK/pgbackrest.conf"
pgbr_conf() { # FILE REPO1_PATH ASYNC(y|n) SPOOL [with_s3]
  cat >"$1" <<EOF
[global]
repo1-path=$2
repo1-retention-full=100
process-max=$(nproc)
compress-type=zst
start-fast=y
archive-copy=y
archive-async=$3
spool-path=$4
log-path=$WORK/pgbr-log
lock-path=$WORK/pgbr-lock
log-level-console=warn
log-level-file=info
EOF
  if [ "${5:-}" = s3 ]; then
    cat >>"$1" <<EOF
repo2-type=s3
repo2-path=/repo
repo2-s3-bucket=pgbackrest
repo2-s3-endpoint=127.0.0.1
repo2-storage-port=$MOTO_TLS_PORT
repo2-s3-region=us-east-1
repo2-s3-key=testing
repo2-s3-key-secret=testing
repo2-s3-uri-style=path
repo2-storage-verify-tls=n
repo2-retention-full=100
EOF
  fi
  cat >>"$1" <<EOF

[bench]
pg1-path=$DATA
pg1-port=$PORT
pg1-socket-path=$WORK/sock
EOF
  [ "${#AS_PG[@]}" -gt 0 ] && chown postgres:postgres "$1"
  return 0
}
pgbr() { # CONF ARGS...: pgbackrest as postgres
  local c=$1
  shift
  as_pg "$PGBR" --config="$c" --config-include-path="$WORK/pgbr-conf.d" --stanza=bench "$@"
}
if part backup; then
  pgbr_conf "$CONF" "$WORK/pgbr-repo" y "$WORK/pgbr-spool" s3
else
  pgbr_conf "$CONF" "$WORK/pgbr-repo" y "$WORK/pgbr-spool"
fi

set_archive_command() { # COMMAND (single quotes escaped by us)
  local q=${1//\'/\'\'}
  psql_q -c "ALTER SYSTEM SET archive_command = '$q'" -c "SELECT pg_reload_conf()" >/dev/null
}
ready_count() { find "$DATA/pg_wal/archive_status" -name '*.ready' 2>/dev/null | grep -c . || true; }
wait_caught_up() { # SEGMENT [TIMEOUT]: until it is archived and nothing is .ready
  local seg=$1 to=${2:-600} t0
  t0=$(date +%s)
  while :; do
    if [ "$(psql_q -c "SELECT coalesce(last_archived_wal >= '$seg', false) FROM pg_stat_archiver")" = t ] &&
      [ "$(ready_count)" = 0 ]; then
      return 0
    fi
    [ $(($(date +%s) - t0)) -lt "$to" ] || die "archiving did not reach $seg within ${to}s (see $WORK/logs)"
    sleep 0.1
  done
}
switch_wal() { # prints the segment that was current (now ready)
  # A WAL record first: a switch on an empty segment does nothing.
  psql_q -c "SELECT pg_logical_emit_message(false, 'bench', 'switch')" \
    -c "SELECT pg_walfile_name(pg_current_wal_insert_lsn())" -c "SELECT pg_switch_wal()" | sed -n 2p
}

# ------------------------------------------------------- measurement ---
HZ=$(getconf CLK_TCK)
NCPU=$(nproc)
machine_ticks() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9 }' /proc/stat; }
pid_ticks() { # PID [with reaped children]
  if [ -r "/proc/$1/stat" ]; then
    sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | awk -v c="${2:-0}" '{ print $12 + $13 + (c ? $14 + $15 : 0) }' || echo 0
  else
    echo 0
  fi
}
# The bench cluster's CPU: the postmaster with its reaped children, plus
# its live children (backends, walsender, archiver and what it runs, when it
# has exited).
pg_ticks() {
  local t c
  t=$(pid_ticks "$PG_PID" 1)
  for c in $(ps --ppid "$PG_PID" -o pid= 2>/dev/null || true); do
    t=$((t + $(pid_ticks "$c" 1)))
  done
  echo "$t"
}
moto_ticks() {
  local t=0 p
  # socat forks a process per connection: count its reaped children.
  for p in ${MOTO_PIDS[@]+"${MOTO_PIDS[@]}"}; do t=$((t + $(pid_ticks "$p" 1))); done
  echo "$t"
}
# Wait (up to QUIET_WAIT s) for a second in which the machine is < 15% busy.
wait_quiet() {
  local i a b
  for ((i = 0; i < QUIET_WAIT; i++)); do
    a=$(machine_ticks)
    sleep 1
    b=$(machine_ticks)
    [ $(((b - a) * 100)) -lt $((15 * HZ * NCPU)) ] && return 0
  done
  log "no quiet second within ${QUIET_WAIT}s; measuring anyway"
}
# measure NAME OUT ERR CMD...: run under /usr/bin/time -v. Sets M_WALL (s),
# M_RSS (KiB), M_CPU (CPU s of the command and its children), M_PG (the
# server's CPU s), M_MOTO, M_OTHER (CPU s of everything else on the machine).
measure() {
  local name=$1 out=$2 err=$3 tf="$WORK/logs/time.$1" b0 p0 m0 b1 p1 m1 rc=0
  shift 3
  wait_quiet
  echo "+ $*" >>"$err"
  b0=$(machine_ticks); p0=$(pg_ticks); m0=$(moto_ticks)
  /usr/bin/time -v -o "$tf" "$@" >"$out" 2>>"$err" || rc=$?
  sleep 0.3 # let the server reap the backends of the command
  b1=$(machine_ticks); p1=$(pg_ticks); m1=$(moto_ticks)
  if [ "$rc" != 0 ]; then
    echo "pgbackrest.sh: $name failed (exit $rc): $*" >&2
    tail -n 30 "$err" >&2
    exit 1
  fi
  M_WALL=$(awk -F': ' '/Elapsed \(wall clock\) time/ {
      n = split($2, p, ":"); s = 0; for (i = 1; i <= n; i++) s = s * 60 + p[i]; print s }' "$tf")
  M_RSS=$(awk -F': ' '/Maximum resident set size/ { print $2 }' "$tf")
  M_CPU=$(awk -F': ' '/User time \(seconds\)|System time \(seconds\)/ { s += $2 } END { printf "%.2f", s }' "$tf")
  M_PG=$(awk -v t=$((p1 - p0)) -v hz="$HZ" 'BEGIN { printf "%.2f", t / hz }')
  M_MOTO=$(awk -v t=$((m1 - m0)) -v hz="$HZ" 'BEGIN { printf "%.2f", t / hz }')
  M_OTHER=$(awk -v busy=$((b1 - b0 - (p1 - p0) - (m1 - m0))) -v hz="$HZ" -v own="$M_CPU" '
    BEGIN { o = busy / hz - own; if (o < 0) o = 0; printf "%.2f", o }')
}
median() { tr ' ' '\n' | grep . | sort -g | awk '{ a[NR] = $1 } END { if (NR % 2) print a[(NR + 1) / 2]; else printf "%.2f\n", (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
mib() { awk -v b="$1" 'BEGIN { printf "%.1f", b / 1048576 }'; }

RESULTS="$WORK/results.md"
: >"$RESULTS"
emit() { echo "$*" | tee -a "$RESULTS"; }

as_pg mkdir -p "$WORK/pgbr-repo" "$WORK/pgbr-log" "$WORK/pgbr-lock" "$WORK/pgbr-spool"
pgbr "$CONF" stanza-create >"$WORK/logs/stanza.log" 2>&1 || { cat "$WORK/logs/stanza.log" >&2; die "stanza-create failed"; }
LB_LOCAL="$WORK/lb-local"
as_pg mkdir -p "$LB_LOCAL" "$WORK/lb-spool"
# Both archivers at once while the backups are taken and the PITR WAL is
# written: each tool's restore then replays the same WAL from its own
# archive, and pgBackRest's backup finds its stop segment in its archive.
BOTH_ARCHIVE="$LB wal push %p --to file://$LB_LOCAL --name bench --spool-dir $WORK/lb-spool && $PGBR --config=$CONF --config-include-path=$WORK/pgbr-conf.d --stanza=bench archive-push %p"
set_archive_command "$BOTH_ARCHIVE"
pgbr "$CONF" check >"$WORK/logs/check.log" 2>&1 || { cat "$WORK/logs/check.log" >&2; die "pgbackrest check failed"; }

# ====================================================== base backups ===
# Results: B_<key>_{wall,rss,size,cpu,pg,moto,other}
declare -A B
record() { # KEY SIZE
  local k=$1
  B[$k.wall]+="$M_WALL "; B[$k.rss]+="$M_RSS "; B[$k.size]=$2
  B[$k.cpu]+="$M_CPU "; B[$k.pg]+="$M_PG "; B[$k.moto]+="$M_MOTO "; B[$k.other]+="$M_OTHER "
}
lb_backup_dir_size() { # SINKDIR STAMP: bytes of the backup directory created after STAMP
  local m
  m=$(find "$1/bench/backups" -name manifest.json -newer "$2" | tail -n 1)
  [ -n "$m" ] || die "no new Lifeboat manifest under $1"
  du -sb "$(dirname "$m")" | cut -f1
}
s3_new_bytes() { # ENDPOINT PREFIX BEFORE_LISTING_FILE [--no-verify-ssl]
  local ep=$1 prefix=$2 before=$3
  shift 3
  "$VENV/bin/aws" --endpoint-url "$ep" "$@" s3 ls --recursive "$prefix" 2>/dev/null | sort >"$before.after" || true
  comm -13 "$before" "$before.after" | awk '{ s += $3 } END { print s + 0 }'
}
s3_list() { # ENDPOINT PREFIX OUT [--no-verify-ssl]
  local ep=$1 prefix=$2 o=$3
  shift 3
  "$VENV/bin/aws" --endpoint-url "$ep" "$@" s3 ls --recursive "$prefix" 2>/dev/null | sort >"$o" || true
}
pgbr_last_label() { pgbr "$CONF" --repo="$1" info --output=json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["backup"][-1]["label"])'; }

if part backup; then
  log "base backups: $RUNS measured run(s) each"
  for run in $(seq 1 "$RUNS"); do
    # The floor: what pg_basebackup alone costs, then with zstd -1 on every core.
    measure floor /dev/null "$WORK/logs/floor.err" \
      "$PGBIN/pg_basebackup" -h 127.0.0.1 -p "$PORT" -U postgres -D - -Ft -X fetch -c fast
    record floor 0
    measure floorz "$WORK/tmp/floorz.bytes" "$WORK/logs/floorz.err" bash -c \
      '"$1/pg_basebackup" -h 127.0.0.1 -p "$2" -U postgres -D - -Ft -X fetch -c fast | zstd -q -1 -T0 -c | wc -c' \
      _ "$PGBIN" "$PORT"
    record floorz "$(cat "$WORK/tmp/floorz.bytes")"
    for sink in local s3; do
      # pgBackRest full backup.
      repo=1; [ "$sink" = s3 ] && repo=2
      if [ "$sink" = s3 ]; then s3_list "$EP_TLS" s3://pgbackrest/repo/backup/ "$WORK/tmp/ls.before" --no-verify-ssl; fi
      measure "pgbr-$sink" /dev/null "$WORK/logs/pgbr-backup.err" \
        "${AS_PG[@]}" "$PGBR" --config="$CONF" --config-include-path="$WORK/pgbr-conf.d" --stanza=bench \
        --repo="$repo" --type=full backup
      label=$(pgbr_last_label "$repo")
      if [ "$sink" = local ]; then
        size=$(du -sb "$WORK/pgbr-repo/backup/bench/$label" | cut -f1)
      else
        size=$(s3_new_bytes "$EP_TLS" s3://pgbackrest/repo/backup/ "$WORK/tmp/ls.before" --no-verify-ssl)
      fi
      record "pgbr-$sink" "$size"
      # Lifeboat, default (checked against backup_manifest as it is stored, SHA-256 read back) and --no-drill.
      for mode in default nodrill; do
        extra=()
        [ "$mode" = nodrill ] && extra=(--no-drill)
        key="lb-$mode-$sink"
        as_pg touch "$WORK/tmp/stamp"
        sleep 1.1 # the stamp must be older than the new manifest, at 1 s mtime granularity on some filesystems
        if [ "$sink" = local ]; then
          measure "$key" "$WORK/logs/$key.json" "$WORK/logs/$key.log" \
            "${AS_PG[@]}" env TMPDIR="$WORK/tmp" "$LB" backup "$URL" --physical --to "file://$LB_LOCAL" --name bench \
            --log-format json --json "${extra[@]}"
          size=$(lb_backup_dir_size "$LB_LOCAL" "$WORK/tmp/stamp")
        else
          s3_list "$EP" s3://lifeboat/lb/bench/backups/ "$WORK/tmp/ls.before"
          measure "$key" "$WORK/logs/$key.json" "$WORK/logs/$key.log" \
            "${AS_PG[@]}" "${LB_S3_ENV[@]}" "$LB" backup "$URL" --physical --to s3://lifeboat/lb --name bench \
            --log-format json --json "${extra[@]}"
          size=$(s3_new_bytes "$EP" s3://lifeboat/lb/bench/backups/ "$WORK/tmp/ls.before")
        fi
        record "$key" "$size"
      done
    done
  done

  row() { # LABEL KEY BASEKEY SINK
    local w r s c p mo o bw
    w=$(echo "${B[$2.wall]}" | median); r=$(echo "${B[$2.rss]}" | tr ' ' '\n' | sort -n | tail -n 1)
    c=$(echo "${B[$2.cpu]}" | median); p=$(echo "${B[$2.pg]}" | median)
    mo=$(echo "${B[$2.moto]}" | median); o=$(echo "${B[$2.other]}" | median)
    s=${B[$2.size]}
    bw=$(echo "${B[$3.wall]}" | median)
    printf '| %s | %s | %.2f | %s | %s | %s | %s / %s / %s | %s | %s |\n' "$1" "$4" "$w" \
      "$(awk -v r="$r" 'BEGIN { printf "%.1f", r / 1024 }')" \
      "$( [ "$s" = 0 ] && echo – || mib "$s")" \
      "$(awk -v a="$bw" -v b="$w" 'BEGIN { printf "%.2f×", a / b }')" \
      "$c" "$p" "$mo" \
      "$( [ "$s" = 0 ] || [ "${B[pgbr-$4.size]:-0}" = 0 ] && echo – || awk -v a="$s" -v b="${B[pgbr-$4.size]}" 'BEGIN { printf "%.2f", a / b }')" \
      "$(awk -v o="$o" -v w="$w" -v n="$NCPU" 'BEGIN { printf "%.0f%%", 100 * o / (n * w) }')"
  }
  emit ""
  emit "### Base backup (cluster: $(mib "$CLUSTER_BYTES") MiB, pgbench scale $SCALE + ${EXTRA_MB} MB md5 text, data checksums on)"
  emit ""
  emit "| backup | sink | wall s | peak RSS MiB | output MiB | pgBackRest / this (time) | CPU s: command / server / moto | size / pgBackRest | other procs |"
  emit "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
  emit "$(row 'floor: `pg_basebackup -D - -Ft -X fetch -c fast > /dev/null`' floor pgbr-local local)"
  emit "$(row 'floor + `zstd -1 -T0`' floorz pgbr-local local)"
  for sink in local s3; do
    emit "$(row "pgBackRest \`backup --type=full\` (process-max $NCPU, zst)" "pgbr-$sink" "pgbr-$sink" "$sink")"
    emit "$(row 'Lifeboat `--physical` (default: checked against backup_manifest as stored, SHA-256 read back)' "lb-default-$sink" "pgbr-$sink" "$sink")"
    emit "$(row 'Lifeboat `--physical --no-drill`' "lb-nodrill-$sink" "pgbr-$sink" "$sink")"
  done
fi

# =============================================================== PITR ===
if part pitr; then
  log "PITR: writing ~${PITR_WAL_MB} MB of WAL with pgbench, archived by both tools"
  lsn0=$(psql_q -c "SELECT pg_current_wal_lsn()")
  while :; do
    "$PGBIN/pgbench" -h 127.0.0.1 -p "$PORT" -U postgres -c "$CLIENTS" -j "$NCPU" -T 10 postgres >>"$WORK/logs/pitr-pgbench.log" 2>&1
    done_mb=$(psql_q -c "SELECT (pg_current_wal_lsn() - '$lsn0'::pg_lsn) / 1048576")
    log "  $(fnum "$done_mb" %.0f) MiB of WAL"
    awk -v d="$done_mb" -v t="$PITR_WAL_MB" 'BEGIN { exit !(d >= t) }' && break
  done
  sleep 1
  TARGET=$(psql_q -c "SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') || '+00'")
  sleep 1
  HIST_AT_TARGET=$(psql_q -c "SELECT count(*) FROM pgbench_history WHERE mtime <= '$TARGET'")
  # Commits after the target, so that recovery to a time stops at one.
  "$PGBIN/pgbench" -h 127.0.0.1 -p "$PORT" -U postgres -c 2 -T 3 postgres >>"$WORK/logs/pitr-pgbench.log" 2>&1
  PITR_WAL_BYTES=$(psql_q -c "SELECT pg_current_wal_lsn() - '$lsn0'::pg_lsn")
  last=$(switch_wal)
  log "  target $TARGET; waiting until both archives have $last"
  wait_caught_up "$last"

  restore_row() { # LABEL KEY
    emit "| $1 | ${R[$2.restore]} | ${R[$2.recover]} | $(awk -v a="${R[$2.restore]}" -v b="${R[$2.recover]}" 'BEGIN { printf "%.2f", a + b }') | ${R[$2.rss]} | ${R[$2.hist]} | ${R[$2.rounds]} |"
  }
  declare -A R
  start_and_wait_promoted() { # DIR KEY: start the restored cluster, wait until it is out of recovery
    local d=$1 key=$2 t0 st
    STARTED_DIRS+=("$d")
    t0=$(now)
    as_pg "$PGBIN/pg_ctl" -D "$d" -l "$WORK/logs/$key.server.log" \
      -o "-p $RPORT -k $WORK/sock -c listen_addresses='' -c archive_mode=off" start >/dev/null || { tail -n 20 "$WORK/logs/$key.server.log" >&2; die "the restored server ($key) did not start"; }
    while :; do
      st=$("$PGBIN/psql" -X -At -h "$WORK/sock" -p "$RPORT" -U postgres -d postgres \
        -c "SELECT pg_is_in_recovery()" 2>/dev/null || true)
      [ "$st" = f ] && break
      if ! as_pg "$PGBIN/pg_ctl" -D "$d" status >/dev/null 2>&1; then
        tail -n 20 "$WORK/logs/$key.server.log" >&2
        die "the restored server ($key) stopped during recovery"
      fi
      sleep 0.1
    done
    R[$key.recover]=$(elapsed "$t0" "$(now)")
    R[$key.hist]=$("$PGBIN/psql" -X -At -h "$WORK/sock" -p "$RPORT" -U postgres -d postgres \
      -c "SELECT count(*) FROM pgbench_history")
    grep -h "recovery stopping" "$WORK/logs/$key.server.log" >&2 || true
    as_pg "$PGBIN/pg_ctl" -D "$d" -m immediate -w stop >/dev/null
    unset 'STARTED_DIRS[-1]'
    rm -rf "$d"
  }
  # Each restore starts with nothing dirty in the page cache (`sync`: the
  # WAL just written and archived is on disk first). Two rounds, the
  # second in reverse order, best total reported: on this kind of VM the
  # first tool to write after an idle spell pays for memory the host has
  # taken back (free page reporting; 1 GiB written took 2.3-2.5 s of
  # system CPU after 15 s idle and 0.2 s right after another 1 GiB was
  # freed), and in one order that is always the same tool.
  pitr_one() { # KEY ROUND
    local key=$1 round=$2 mode
    case "$key" in
      lb)
        log "PITR restore: Lifeboat (round $round)"
        sync
        measure pitr-lb "$WORK/logs/pitr-lb.json" "$WORK/logs/pitr-lb.log" \
          "${AS_PG[@]}" env TMPDIR="$WORK/tmp" "$LB" restore --from "file://$LB_LOCAL" --source bench \
          --to "pgdata://$WORK/r-lb" --target-time "$TARGET" --target-action promote --json
        ;;
      pgbr-*)
        mode=${key#pgbr-}
        log "PITR restore: pgBackRest (archive-get $mode, round $round)"
        SYNC_GET=()
        if [ "$mode" = sync ]; then
          SYNC_GET=("--recovery-option=restore_command=$PGBR --config=$CONF --config-include-path=$WORK/pgbr-conf.d --pg1-path=$WORK/r-pgbr-sync --repo=1 --stanza=bench --archive-async=n archive-get %f \"%p\"")
        fi
        sync
        measure "pitr-pgbr-$mode" /dev/null "$WORK/logs/pitr-pgbr-$mode.log" \
          "${AS_PG[@]}" "$PGBR" --config="$CONF" --config-include-path="$WORK/pgbr-conf.d" --stanza=bench --repo=1 \
          --pg1-path="$WORK/r-pgbr-$mode" --type=time --target="$TARGET" --target-action=promote \
          ${SYNC_GET[@]+"${SYNC_GET[@]}"} restore
        grep -h "restore_command" "$WORK/r-pgbr-$mode/postgresql.auto.conf" >&2 || true
        ;;
    esac
    local wall=$M_WALL rss rec
    rss=$(awk -v r="$M_RSS" 'BEGIN { printf "%.1f", r / 1024 }')
    local dir="$WORK/r-$key"
    start_and_wait_promoted "$dir" "$key.now"
    rec=${R[$key.now.recover]}
    R[$key.rounds]+="$(awk -v a="$wall" -v b="$rec" 'BEGIN { printf "%.2f", a + b }') "
    if [ -z "${R[$key.restore]:-}" ] || awk -v a="$wall" -v b="$rec" -v c="${R[$key.restore]}" -v d="${R[$key.recover]}" 'BEGIN { exit !(a + b < c + d) }'; then
      R[$key.restore]=$wall; R[$key.recover]=$rec; R[$key.rss]=$rss; R[$key.hist]=${R[$key.now.hist]}
    fi
  }
  PITR_ORDER=(lb pgbr-async pgbr-sync)
  for key in "${PITR_ORDER[@]}"; do pitr_one "$key" 1; done
  for ((i = ${#PITR_ORDER[@]} - 1; i >= 0; i--)); do pitr_one "${PITR_ORDER[$i]}" 2; done
  emit ""
  emit "### Point-in-time restore: base backup + $(mib "$PITR_WAL_BYTES") MiB of WAL, recovery to a time (promote)"
  emit ""
  emit "Best of two rounds (the second in reverse order); totals of both rounds in the last column."
  emit ""
  emit "| restore | restore command s | start → promoted s | total s | restore peak RSS MiB | pgbench_history rows | total s (rounds 1, 2) |"
  emit "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"
  restore_row 'Lifeboat `restore --to pgdata:// --target-time` (wal fetch)' lb
  restore_row 'pgBackRest `restore --type=time` (archive-get async)' pgbr-async
  restore_row 'pgBackRest `restore --type=time` (archive-get sync)' pgbr-sync
  emit ""
  lbt=$(awk -v a="${R[lb.restore]}" -v b="${R[lb.recover]}" 'BEGIN { print a + b }')
  for mode in async sync; do
    pt=$(awk -v a="${R[pgbr-$mode.restore]}" -v b="${R[pgbr-$mode.recover]}" 'BEGIN { print a + b }')
    emit "- pgBackRest ($mode) / Lifeboat total time: $(awk -v a="$pt" -v b="$lbt" 'BEGIN { printf "%.2f×", a / b }')"
  done
  emit "- Target $TARGET; pgbench_history rows committed at or before it on the source: $HIST_AT_TARGET."
fi

# ========================================================== archiving ===
if part archive; then
  ARCHIVERS=(lifeboat pgbr-sync pgbr-async)
  arch_command() { # NAME TAG: set up a fresh archive and print its archive_command
    local name=$1 tag=$2 c
    case "$name" in
      lifeboat)
        as_pg mkdir -p "$WORK/arch-lb-$tag" "$WORK/arch-lbspool-$tag"
        echo "$LB wal push %p --to file://$WORK/arch-lb-$tag --name bench --spool-dir $WORK/arch-lbspool-$tag"
        ;;
      pgbr-*)
        c="$WORK/arch-$name-$tag.conf"
        pgbr_conf "$c" "$WORK/arch-repo-$name-$tag" "$([ "$name" = pgbr-async ] && echo y || echo n)" "$WORK/arch-spool-$name-$tag"
        pgbr "$c" stanza-create >>"$WORK/logs/arch-stanza.log" 2>&1 || { cat "$WORK/logs/arch-stanza.log" >&2; die "stanza-create failed"; }
        echo "$PGBR --config=$c --config-include-path=$WORK/pgbr-conf.d --stanza=bench archive-push %p"
        ;;
    esac
  }
  arch_dir() { # NAME TAG
    case "$1" in lifeboat) echo "$WORK/arch-lb-$2" ;; *) echo "$WORK/arch-repo-$1-$2/archive" ;; esac
  }
  declare -A A
  # --- Backlog: archiving paused while BACKLOG batches are written; then
  # each archiver catches up on the same segments (their .done markers are
  # turned back into .ready between archivers).
  log "archiving: a backlog of $BACKLOG batches of ~16 MiB"
  set_archive_command "$BOTH_ARCHIVE"
  wait_caught_up "$(switch_wal)"
  set_archive_command "false"
  psql_q -c "DROP TABLE IF EXISTS t" -c "CREATE TABLE t (id bigint, body text)"
  first=$(psql_q -c "SELECT pg_walfile_name(pg_current_wal_insert_lsn())")
  for _ in $(seq 1 "$BACKLOG"); do
    psql_q -c "INSERT INTO t SELECT g, md5(g::text) || repeat(md5(random()::text), 3) FROM generate_series(1, 90000) g"
  done
  last=$(switch_wal)
  (cd "$DATA/pg_wal/archive_status" && ls | grep '\.ready$' | sed 's/\.ready$//' | sort) >"$WORK/tmp/backlog"
  N=$(grep -c . "$WORK/tmp/backlog")
  log "  $N segments ready ($first .. $last)"
  # Two rounds, the second in reverse order, so that no archiver always
  # runs right after the restores' (or another archiver's) disk writes.
  ORDER=("${ARCHIVERS[@]}")
  for ((i = ${#ARCHIVERS[@]} - 1; i >= 0; i--)); do ORDER+=("${ARCHIVERS[$i]}"); done
  round=0
  for a in "${ORDER[@]}"; do
    round=$((round + 1))
    set_archive_command "false"
    # Back to .ready: the same backlog for every archiver.
    while read -r seg; do
      f="$DATA/pg_wal/archive_status/$seg"
      if [ -e "$f.done" ]; then mv "$f.done" "$f.ready"; fi
    done <"$WORK/tmp/backlog"
    [ "$(ready_count)" = "$N" ] || die "expected $N .ready files, found $(ready_count)"
    cmd=$(arch_command "$a" "backlog$round")
    c0=$(psql_q -c "SELECT archived_count FROM pg_stat_archiver")
    sync # the dirty pages of what ran before go to disk now, not during this run
    wait_quiet
    t0=$(now); p0=$(pg_ticks); b0=$(machine_ticks); m0=$(moto_ticks)
    set_archive_command "$cmd"
    while [ "$(ready_count)" != 0 ] || [ "$(psql_q -c "SELECT archived_count - $c0 >= $N FROM pg_stat_archiver")" != t ]; do
      sleep 0.05
    done
    t1=$(now); p1=$(pg_ticks); b1=$(machine_ticks)
    A[$a.backlog.s]+="$(elapsed "$t0" "$t1") "
    A[$a.backlog.cpu]+="$(awk -v t=$((p1 - p0)) -v hz="$HZ" 'BEGIN { printf "%.2f", t / hz }') "
    A[$a.backlog.busy]+="$(awk -v t=$((b1 - b0)) -v hz="$HZ" 'BEGIN { printf "%.2f", t / hz }') "
    A[$a.backlog.bytes]=$(du -sb "$(arch_dir "$a" "backlog$round")" | cut -f1)
    log "  $a: $N segments in $(elapsed "$t0" "$t1") s"
    rm -rf "$(arch_dir "$a" "backlog$round")"
  done
  psql_q -c "DROP TABLE t" -c CHECKPOINT >/dev/null

  # --- Under load: pgbench for LOAD_SECONDS with the archiver on; the lag
  # is the time from the load's end (and the switch of its last, partial
  # segment) until that segment is archived.
  for a in "${ARCHIVERS[@]}"; do
    cmd=$(arch_command "$a" load)
    set_archive_command "$cmd"
    wait_caught_up "$(switch_wal)"
    psql_q -c CHECKPOINT >/dev/null
    sync
    wait_quiet
    lsn0=$(psql_q -c "SELECT pg_current_wal_lsn()")
    c0=$(psql_q -c "SELECT archived_count FROM pg_stat_archiver")
    ( while :; do ready_count; sleep 0.5; done ) >"$WORK/tmp/ready-$a" &
    sampler=$!
    p0=$(pg_ticks); b0=$(machine_ticks)
    "$PGBIN/pgbench" -h 127.0.0.1 -p "$PORT" -U postgres -c "$CLIENTS" -j "$NCPU" -T "$LOAD_SECONDS" postgres \
      >"$WORK/logs/load-$a.log" 2>&1
    t_end=$(now)
    kill "$sampler" 2>/dev/null || true
    wait "$sampler" 2>/dev/null || true
    c1=$(psql_q -c "SELECT archived_count FROM pg_stat_archiver")
    lsn1=$(psql_q -c "SELECT pg_current_wal_lsn()")
    seg=$(switch_wal)
    backlog_at_end=$(ready_count)
    wait_caught_up "$seg"
    t_caught=$(now); p1=$(pg_ticks); b1=$(machine_ticks)
    A[$a.load.busy]=$(awk -v t=$((b1 - b0)) -v hz="$HZ" 'BEGIN { printf "%.1f", t / hz }')
    A[$a.load.lag]=$(elapsed "$t_end" "$t_caught")
    A[$a.load.walmb]=$(psql_q -c "SELECT round((('$lsn1'::pg_lsn - '$lsn0'::pg_lsn) / 1048576)::numeric, 0)")
    A[$a.load.during]=$((c1 - c0))
    A[$a.load.maxready]=$(sort -n "$WORK/tmp/ready-$a" | tail -n 1)
    A[$a.load.endready]=$backlog_at_end
    A[$a.load.tps]=$(awk '/^tps = / { printf "%.0f", $3 }' "$WORK/logs/load-$a.log")
    A[$a.load.cpu]=$(awk -v t=$((p1 - p0)) -v hz="$HZ" 'BEGIN { printf "%.1f", t / hz }')
    log "  $a under load: ${A[$a.load.walmb]} MiB WAL, ${A[$a.load.tps]} tps, lag ${A[$a.load.lag]} s"
  done
  set_archive_command "$BOTH_ARCHIVE"

  label() { case "$1" in lifeboat) echo 'Lifeboat `wal push` (look-ahead, --parallel 4)' ;; pgbr-sync) echo 'pgBackRest `archive-push` (sync)' ;; pgbr-async) echo "pgBackRest \`archive-push\` (async, process-max $NCPU)" ;; esac; }
  emit ""
  emit "### Archiving a backlog of $N segments ($(mib $((N * 16 * 1048576))) MiB of WAL), local folder, zstd level 3"
  emit ""
  emit "| archiver | wall s (rounds 1, 2) | segments/s (best) | MiB/s (best) | stored MiB | pgBackRest async / this (best time) | CPU s per round: server (archiver + children) / whole machine |"
  emit "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"
  best() { echo "$1" | tr ' ' '\n' | grep . | sort -g | head -n 1; }
  for a in "${ARCHIVERS[@]}"; do
    s=$(best "${A[$a.backlog.s]}")
    emit "| $(label "$a") | ${A[$a.backlog.s]% } | $(awk -v n="$N" -v s="$s" 'BEGIN { printf "%.1f", n / s }') | $(awk -v n="$N" -v s="$s" 'BEGIN { printf "%.0f", n * 16 / s }') | $(mib "${A[$a.backlog.bytes]}") | $(awk -v a="$(best "${A[pgbr-async.backlog.s]}")" -v b="$s" 'BEGIN { printf "%.2f×", a / b }') | ${A[$a.backlog.cpu]% } / ${A[$a.backlog.busy]% } |"
  done
  emit ""
  emit "### Archiving under a pgbench write load ($LOAD_SECONDS s, $CLIENTS clients, synchronous_commit off)"
  emit ""
  emit "| archiver | WAL written MiB | tps | segments archived during the load (/s) | max .ready | .ready at the load's end | lag after the load s | CPU s: server / whole machine (load + catch-up) |"
  emit "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
  for a in "${ARCHIVERS[@]}"; do
    emit "| $(label "$a") | ${A[$a.load.walmb]} | ${A[$a.load.tps]} | ${A[$a.load.during]} ($(awk -v n="${A[$a.load.during]}" -v s="$LOAD_SECONDS" 'BEGIN { printf "%.1f", n / s }')) | ${A[$a.load.maxready]} | ${A[$a.load.endready]} | ${A[$a.load.lag]} | ${A[$a.load.cpu]} / ${A[$a.load.busy]} |"
  done
fi

emit ""
emit "Machine: $NCPU cores, $(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo), $(awk '/MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo) RAM;"
emit "$("$PGBIN/postgres" --version), $("$PGBR" version), $("$LB" --version 2>/dev/null | head -n 1), moto $("$VENV/bin/python" -c 'import moto; print(moto.__version__)')."
emit "Load average before the end: $(cut -d' ' -f1-3 /proc/loadavg)."
if [ -n "$OUT_FILE" ]; then cp "$RESULTS" "$OUT_FILE"; fi
# Lifeboat's JSON logs, for where its time goes.
if [ -n "$OUT_FILE" ]; then
  mkdir -p "$OUT_FILE.logs"
  cp "$WORK"/logs/lb-*.log "$WORK"/logs/lb-*.json "$WORK"/logs/time.* "$WORK"/logs/*.server.log "$OUT_FILE.logs/" 2>/dev/null || true
  cp "$WORK"/pgbr-log/* "$OUT_FILE.logs/" 2>/dev/null || true
fi
