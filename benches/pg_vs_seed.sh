#!/usr/bin/env bash
# benches/pg_vs_seed.sh: a verified Lifeboat PostgreSQL backup against the
# seed 000/003 pipeline (pg_dump -Fc to a file, pg_restore --list, aws s3 cp
# or cp), against the raw `pg_dump -Fc -Z0 > /dev/null` floor, and Lifeboat's
# restore drill against a plain pg_restore of the same dump, on the same
# generated database in the same run, to the local sink and to S3 (moto on
# loopback).
#
# Usage:
#   benches/pg_vs_seed.sh [--scale N] [--runs N] [--out FILE] [--no-write]
#                         [--skip-build] [--max-other PCT] [--no-drill-cluster]
#                         [--regenerate] [--generate-only] [--also-level N]
#
#   --scale N           generator scale (default 1: about 1.2 GB in
#                       pg_database_size; may be fractional for a smoke test)
#   --runs N            measured runs per measurement (default 3; the median
#                       wall time is reported)
#   --out FILE          also write the markdown section to FILE
#   --no-write          do not update BENCHMARKS.md
#   --skip-build        use the binary already in target/release
#   --max-other PCT     run a measurement again (up to 3 tries) when other
#                       processes took more than PCT% of the CPUs during it
#                       (default 10). Before each measured run the script also
#                       waits, up to QUIET_WAIT seconds (default 300), for a
#                       quiet second.
#   --no-drill-cluster  skip the `--drill-cluster` measurement
#   --regenerate        generate the database again even if it exists
#   --generate-only     set up the cluster and the database, then stop
#                       (no build, no measurement)
#   --also-level N      also measure `lifeboat backup --level N` beside the
#                       default level (default 6; 0 to skip)
#
# Environment: SCALE, RUNS, MAX_OTHER, QUIET_WAIT give the defaults of the
# options above; PGBIN (default /usr/lib/postgresql/15/bin) the server and
# client binaries for the cluster, the floor and the seed pipeline;
# BENCH_DATA_DIR (default bench-data) where the cluster and logs live.
#
# Needs: cargo, PostgreSQL 15 server binaries, /usr/bin/time (GNU time),
# curl, python3, runuser (when root: the server runs as `postgres`), and
# moto[server] + awscli (from .venv if present, else from PATH, else
# installed into .venv with pip).
#
# The cluster lives in bench-data/pg (gitignored) and is kept between runs:
# the database is generated once (benches/gen_pg.sql) and reused. The server
# is started on a free port with its socket in a short directory under /tmp,
# and stopped at exit, as is moto. The last run's logs are kept in
# bench-data/pg-last-logs. Every command is timed on its own under
# /usr/bin/time -v; a multi-step pipeline's wall time is the sum of its steps
# and its peak RSS the largest of its steps'. One unmeasured warm-up run of
# each measurement comes first, so every measured run starts with the
# database in the page cache.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"

SCALE="${SCALE:-1}"
RUNS="${RUNS:-3}"
OUT_FILE=""
WRITE_MD=1
SKIP_BUILD=0
MAX_OTHER="${MAX_OTHER:-10}"
MAX_TRIES=3
QUIET_WAIT="${QUIET_WAIT:-300}"
DRILL_CLUSTER=1
REGENERATE=0
GENERATE_ONLY=0
ALSO_LEVEL="${ALSO_LEVEL:-6}"
PGBIN="${PGBIN:-/usr/lib/postgresql/15/bin}"
BENCH_MD="$REPO/BENCHMARKS.md"
SECTION_HEADING="## PostgreSQL: lifeboat vs the seed 000/003 pipeline"
BUCKET="lifeboat-pg-bench"
DBNAME="shop"

usage() { sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; }
die() {
  echo "pg_vs_seed: error: $*" >&2
  exit 1
}
log() { echo "==> $*" >&2; }

need_value() { if [ $# -lt 2 ] || [ -z "$2" ]; then die "$1 needs a value"; fi; }
while [ $# -gt 0 ]; do
  case "$1" in
    --scale) need_value "$@"; SCALE=$2; shift 2 ;;
    --runs) need_value "$@"; RUNS=$2; shift 2 ;;
    --out) need_value "$@"; OUT_FILE=$2; shift 2 ;;
    --no-write) WRITE_MD=0; shift ;;
    --skip-build) SKIP_BUILD=1; shift ;;
    --max-other) need_value "$@"; MAX_OTHER=$2; shift 2 ;;
    --no-drill-cluster) DRILL_CLUSTER=0; shift ;;
    --regenerate) REGENERATE=1; shift ;;
    --generate-only) GENERATE_ONLY=1; shift ;;
    --also-level) need_value "$@"; ALSO_LEVEL=$2; shift 2 ;;
    -h | --help) usage; exit 0 ;;
    *) echo "pg_vs_seed: unknown option '$1'" >&2; usage >&2; exit 2 ;;
  esac
done
for v in RUNS MAX_OTHER QUIET_WAIT ALSO_LEVEL; do
  [[ ${!v} =~ ^[0-9]+$ ]] || die "$v must be a whole number (got '${!v}')"
done
[[ $SCALE =~ ^[0-9]+(\.[0-9]+)?$ ]] || die "--scale must be a positive number (got '$SCALE')"
awk -v s="$SCALE" 'BEGIN { exit !(s > 0) }' || die "--scale must be above 0"
[ "$RUNS" -ge 1 ] || die "--runs must be at least 1"

for tool in cargo curl python3 ps; do
  command -v "$tool" >/dev/null 2>&1 || die "$tool not found"
done
[ -x /usr/bin/time ] || die "/usr/bin/time (GNU time) not found: apt-get install -y time"
for t in initdb pg_ctl pg_dump pg_restore psql createdb dropdb; do
  [ -x "$PGBIN/$t" ] || die "$PGBIN/$t not found (apt-get install -y postgresql-15, or set PGBIN)"
done

LIFEBOAT="$REPO/target/release/lifeboat"
DATA_DIR="${BENCH_DATA_DIR:-$REPO/bench-data}"
PGROOT="$DATA_DIR/pg"
PGDATA="$PGROOT/data"
GEN_MARK="$PGROOT/generated"
mkdir -p "$DATA_DIR"
WORK="$(mktemp -d "$DATA_DIR/pgrun.XXXXXX")"
SOCK=""
PG_STARTED=0
MOTO_PID=""

# Server tools refuse to run as root: run them as `postgres` then.
AS_PG=()
if [ "$(id -u)" = 0 ]; then
  id postgres >/dev/null 2>&1 || die "running as root but there is no 'postgres' user"
  command -v runuser >/dev/null 2>&1 || die "runuser not found"
  AS_PG=(runuser -u postgres --)
fi

on_exit() {
  local rc=$?
  trap - EXIT
  if [ "$PG_STARTED" = 1 ]; then
    "${AS_PG[@]}" "$PGBIN/pg_ctl" -D "$PGDATA" -w -t 60 -m fast stop >/dev/null 2>&1 || true
  fi
  [ -n "$SOCK" ] && rm -rf "$SOCK"
  if [ -n "$MOTO_PID" ]; then
    kill "$MOTO_PID" 2>/dev/null || true
    wait "$MOTO_PID" 2>/dev/null || true
  fi
  if [ "$rc" -eq 0 ]; then
    # The last run's logs (lifeboat's JSON logs carry its phase timings).
    if [ -d "$WORK/logs" ]; then
      rm -rf "$DATA_DIR/pg-last-logs"
      mv "$WORK/logs" "$DATA_DIR/pg-last-logs"
    fi
    rm -rf "$WORK"
  else
    echo "pg_vs_seed: failed (exit $rc); logs kept in ${WORK#"$REPO"/}" >&2
    rm -rf "$WORK/sinks" "$WORK/tmp" "$WORK/keep"
  fi
  exit "$rc"
}
trap on_exit EXIT
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 143' TERM

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# ------------------------------------------------------------------ build ---
if [ "$GENERATE_ONLY" = 0 ]; then
  if [ "$SKIP_BUILD" = 0 ]; then
    log "cargo build --release -p backup-cli"
    cargo build --release -p backup-cli
  fi
  [ -x "$LIFEBOAT" ] || die "$LIFEBOAT missing (build without --skip-build)"
fi

# ---------------------------------------------------------------- cluster ---
if [ "$REGENERATE" = 1 ] || [ ! -f "$PGDATA/PG_VERSION" ]; then
  # A cluster from an earlier run that is still up (killed script): stop it.
  if [ -f "$PGDATA/postmaster.pid" ]; then
    "${AS_PG[@]}" "$PGBIN/pg_ctl" -D "$PGDATA" -w -m fast stop >/dev/null 2>&1 || true
  fi
  rm -rf "$PGROOT"
  mkdir -p "$PGROOT"
  [ "${#AS_PG[@]}" -gt 0 ] && chown postgres:postgres "$PGROOT"
  chmod 700 "$PGROOT"
  log "initdb ${PGDATA#"$REPO"/}"
  "${AS_PG[@]}" "$PGBIN/initdb" -D "$PGDATA" -U postgres --auth=trust -E UTF8 \
    --locale=C.UTF-8 --no-sync >"$WORK/initdb.log" 2>&1 || { cat "$WORK/initdb.log" >&2; die "initdb failed"; }
  # Port and socket directory are given at each start (-o): both change.
  cat >>"$PGDATA/postgresql.conf" <<'EOF'

# benches/pg_vs_seed.sh
listen_addresses = '127.0.0.1'
shared_buffers = 256MB
fsync = off
synchronous_commit = off
full_page_writes = off
wal_level = minimal
max_wal_senders = 0
max_wal_size = 8GB
checkpoint_timeout = 30min
maintenance_work_mem = 512MB
autovacuum = off
EOF
fi
if [ -f "$PGDATA/postmaster.pid" ] &&
  "${AS_PG[@]}" "$PGBIN/pg_ctl" -D "$PGDATA" status >/dev/null 2>&1; then
  log "the bench cluster is still running from an earlier run: stopping it"
  "${AS_PG[@]}" "$PGBIN/pg_ctl" -D "$PGDATA" -w -t 60 -m fast stop >/dev/null
fi
SOCK="$(mktemp -d /tmp/lbpg.XXXX)"
[ "${#AS_PG[@]}" -gt 0 ] && chown postgres:postgres "$SOCK"
PG_PORT=$(free_port)
log "starting PostgreSQL on 127.0.0.1:$PG_PORT (${PGDATA#"$REPO"/})"
PG_STARTED=1
"${AS_PG[@]}" "$PGBIN/pg_ctl" -D "$PGDATA" -l "$PGROOT/server.log" -w -t 120 \
  -o "-p $PG_PORT -k $SOCK" start >/dev/null || { tail -n 30 "$PGROOT/server.log" >&2; die "pg_ctl start failed"; }
PG_PID=$(head -n 1 "$PGDATA/postmaster.pid")
BASE_URL="postgres://postgres@127.0.0.1:$PG_PORT"
DB_URL="$BASE_URL/$DBNAME"
export PGCONNECT_TIMEOUT=10
unset PGPASSWORD PGHOST PGPORT PGUSER PGDATABASE PGSERVICE
psql_q() { "$PGBIN/psql" -X -q -At -v ON_ERROR_STOP=1 "$@"; }

if [ ! -f "$GEN_MARK" ] || [ "$(cat "$GEN_MARK")" != "scale=$SCALE" ]; then
  log "generating database '$DBNAME' (scale $SCALE) with benches/gen_pg.sql"
  psql_q -d "$BASE_URL/postgres" -c "DROP DATABASE IF EXISTS $DBNAME" -c "CREATE DATABASE $DBNAME"
  rm -f "$GEN_MARK"
  t0=$(date +%s)
  "$PGBIN/psql" -X -v ON_ERROR_STOP=1 -v scale="$SCALE" -d "$DB_URL" \
    -f "$REPO/benches/gen_pg.sql" >"$WORK/gen.log" 2>&1 || { tail -n 30 "$WORK/gen.log" >&2; die "generation failed"; }
  psql_q -d "$BASE_URL/postgres" -c CHECKPOINT
  log "generated in $(($(date +%s) - t0)) s"
  echo "scale=$SCALE" >"$GEN_MARK"
else
  log "reusing the generated database in ${PGROOT#"$REPO"/} (scale $SCALE)"
fi
DB_BYTES=$(psql_q -d "$DB_URL" -c "SELECT pg_database_size(current_database())")
DB_ROWS=$(psql_q -d "$DB_URL" -c "SELECT (SELECT count(*) FROM customers) || ' customers, ' ||
  (SELECT count(*) FROM orders) || ' orders, ' || (SELECT count(*) FROM events) || ' events, ' ||
  (SELECT count(*) FROM products) || ' products'")
DB_INDEXES=$(psql_q -d "$DB_URL" -c "SELECT count(*) FROM pg_indexes WHERE schemaname = 'public'")
DB_TABLE_BYTES=$(psql_q -d "$DB_URL" -c "SELECT sum(pg_table_size(c.oid)) FROM pg_class c
  JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public' AND c.relkind = 'r'")
DB_INDEX_BYTES=$(psql_q -d "$DB_URL" -c "SELECT sum(pg_indexes_size(c.oid)) FROM pg_class c
  JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public' AND c.relkind = 'r'")
log "database: $DB_BYTES bytes; $DB_ROWS; $DB_INDEXES indexes"
[ "$GENERATE_ONLY" = 1 ] && exit 0
# Leftovers of an interrupted run.
psql_q -d "$BASE_URL/postgres" -c "DROP DATABASE IF EXISTS plain_restore" >/dev/null

# ------------------------------------------------------------------- moto ---
if [ -x "$REPO/.venv/bin/moto_server" ] && [ -x "$REPO/.venv/bin/aws" ]; then
  MOTO="$REPO/.venv/bin/moto_server"
  AWS="$REPO/.venv/bin/aws"
elif command -v moto_server >/dev/null 2>&1 && command -v aws >/dev/null 2>&1 &&
  python3 -c 'import moto.server, flask, flask_cors' >/dev/null 2>&1; then
  MOTO="$(command -v moto_server)"
  AWS="$(command -v aws)"
  if command -v pyenv >/dev/null 2>&1; then
    MOTO="$(pyenv which moto_server 2>/dev/null || echo "$MOTO")"
    AWS="$(pyenv which aws 2>/dev/null || echo "$AWS")"
  fi
else
  log "installing moto[server] and awscli into .venv"
  [ -x "$REPO/.venv/bin/python" ] || python3 -m venv "$REPO/.venv"
  PIP_NO_INPUT=1 "$REPO/.venv/bin/python" -m pip install --quiet \
    --disable-pip-version-check 'moto[server]' awscli
  MOTO="$REPO/.venv/bin/moto_server"
  AWS="$REPO/.venv/bin/aws"
fi

MOTO_PORT=$(free_port)
EP="http://127.0.0.1:$MOTO_PORT"
export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing
export AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1
export AWS_EC2_METADATA_DISABLED=true AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null
unset AWS_PROFILE AWS_SESSION_TOKEN AWS_ENDPOINT_URL AWS_ENDPOINT_URL_S3

log "starting moto on 127.0.0.1:$MOTO_PORT"
"$MOTO" -H 127.0.0.1 -p "$MOTO_PORT" >"$WORK/moto.log" 2>&1 &
MOTO_PID=$!
for _ in $(seq 1 100); do
  curl -fsS -o /dev/null "$EP/" 2>/dev/null && break
  kill -0 "$MOTO_PID" 2>/dev/null || { cat "$WORK/moto.log" >&2; die "moto exited"; }
  sleep 0.2
done
curl -fsS -o /dev/null "$EP/" || die "moto did not answer on $EP within 20 s"
"$AWS" --endpoint-url "$EP" s3 mb "s3://$BUCKET" >/dev/null

# ------------------------------------------------------------ measurement ---
# Busy CPU ticks of the whole machine, of moto and of the bench cluster (the
# postmaster with its reaped children, plus its live children): moto's and
# the server's work is part of a pipeline's cost. What the machine did beyond
# those and the command's own CPU time is what other processes took.
HZ=$(getconf CLK_TCK)
NCPU=$(nproc)
machine_ticks() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9 }' /proc/stat; }
pid_ticks() { # PID [with_children]: utime + stime (+ cutime + cstime)
  if [ -r "/proc/$1/stat" ]; then
    sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | awk -v c="${2:-0}" '{ print $12 + $13 + (c ? $14 + $15 : 0) }' || echo 0
  else
    echo 0
  fi
}
# The server's processes (zombies included: a backend that has exited but
# is not yet reaped has not yet reached the postmaster's child times).
pg_children() { ps --ppid "$PG_PID" -o pid= 2>/dev/null || true; }
# Wait (up to 2 s) until the server is back to N children: the backends of
# the command just measured have exited and been reaped, so their CPU time
# is in the postmaster's child times.
pg_settle() {
  for _ in $(seq 1 40); do
    [ "$(pg_children | grep -c .)" -le "$1" ] && return 0
    sleep 0.05
  done
}
pg_ticks() {
  local t c
  t=$(pid_ticks "$PG_PID" 1)
  for c in $(pg_children); do
    t=$((t + $(pid_ticks "$c")))
  done
  echo "$t"
}
moto_ticks() { if [ -n "$MOTO_PID" ]; then pid_ticks "$MOTO_PID"; else echo 0; fi; }
helper_ticks() { echo $(($(moto_ticks) + $(pg_ticks))); }

# measure OUT ERR CMD...: run CMD with stdout to OUT and stderr appended to
# ERR under /usr/bin/time -v; sets M_WALL (s), M_RSS (KiB), M_OTHER (CPU s
# other processes used meanwhile), M_RC (exit status; only with
# MEASURE_MAY_FAIL=1, else a failure ends the script).
M_WALL=0
M_RSS=0
M_OTHER=0
M_CPU=0
M_PG=0
M_MOTO=0
M_RC=0
MEASURE_MAY_FAIL=0
measure() {
  local out=$1 err=$2 tf="$WORK/time.out" b0 p0 m0 b1 p1 m1 n0
  shift 2
  echo "+ $*" >>"$err"
  n0=$(pg_children | grep -c .)
  b0=$(machine_ticks)
  p0=$(pg_ticks)
  m0=$(moto_ticks)
  M_RC=0
  /usr/bin/time -v -o "$tf" "$@" >"$out" 2>>"$err" || M_RC=$?
  pg_settle "$n0"
  b1=$(machine_ticks)
  p1=$(pg_ticks)
  m1=$(moto_ticks)
  if [ "$M_RC" != 0 ] && [ "$MEASURE_MAY_FAIL" = 0 ]; then
    echo "pg_vs_seed: command failed (exit $M_RC): $*" >&2
    echo "--- last lines of its stderr ($err) ---" >&2
    tail -n 20 "$err" >&2
    exit 1
  fi
  M_WALL=$(awk -F': ' '/Elapsed \(wall clock\) time/ {
      n = split($2, p, ":"); s = 0; for (i = 1; i <= n; i++) s = s * 60 + p[i]; print s }' "$tf")
  M_RSS=$(awk -F': ' '/Maximum resident set size/ { print $2 }' "$tf")
  if [ -z "$M_WALL" ] || [ -z "$M_RSS" ]; then die "could not parse $tf"; fi
  M_CPU=$(awk -F': ' '/User time \(seconds\)|System time \(seconds\)/ { own += $2 }
    END { printf "%.2f", own }' "$tf")
  M_PG=$(awk -v t=$((p1 - p0)) -v hz="$HZ" 'BEGIN { printf "%.2f", t / hz }')
  M_MOTO=$(awk -v t=$((m1 - m0)) -v hz="$HZ" 'BEGIN { printf "%.2f", t / hz }')
  M_OTHER=$(awk -v busy=$((b1 - b0 - (p1 - p0) - (m1 - m0))) -v hz="$HZ" -v own="$M_CPU" '
    BEGIN { o = busy / hz - own; if (o < 0) o = 0; printf "%.2f", o }')
}

# Results of the last run: P_WALL (s), P_RSS (KiB), P_SIZE (bytes), P_OTHER
# (CPU s used by other processes), P_STEPS ("name=seconds ...").
P_WALL=0
P_RSS=0
P_SIZE=0
P_OTHER=0
P_STEPS=""
P_CPU=0
P_PG=0
P_MOTO=0
reset_result() {
  P_CPU=0
  P_PG=0
  P_MOTO=0
  P_WALL=0
  P_RSS=0
  P_SIZE=0
  P_OTHER=0
  P_STEPS=""
}
step() { # step NAME OUT ERR CMD...
  local name=$1
  shift
  measure "$@"
  P_WALL=$(awk -v a="$P_WALL" -v b="$M_WALL" 'BEGIN { printf "%.2f", a + b }')
  P_OTHER=$(awk -v a="$P_OTHER" -v b="$M_OTHER" 'BEGIN { printf "%.2f", a + b }')
  P_CPU=$(awk -v a="$P_CPU" -v b="$M_CPU" 'BEGIN { printf "%.2f", a + b }')
  P_PG=$(awk -v a="$P_PG" -v b="$M_PG" 'BEGIN { printf "%.2f", a + b }')
  P_MOTO=$(awk -v a="$P_MOTO" -v b="$M_MOTO" 'BEGIN { printf "%.2f", a + b }')
  [ "$M_RSS" -gt "$P_RSS" ] && P_RSS=$M_RSS
  P_STEPS+="$name=$M_WALL "
}

s3_object_size() { # PREFIX PATTERN: size of the one object under PREFIX matching PATTERN
  local listing
  listing=$("$AWS" --endpoint-url "$EP" s3 ls --recursive "s3://$BUCKET/$1/" | awk -v re="$2" '$4 ~ re')
  [ "$(printf '%s\n' "$listing" | grep -c .)" = 1 ] ||
    die "expected one object matching $2 under s3://$BUCKET/$1/, found: ${listing:-none}"
  printf '%s\n' "$listing" | awk '{ print $3 }'
}

mkdir -p "$WORK/tmp" "$WORK/sinks" "$WORK/keep" "$WORK/logs"
PLAIN_DUMP="$WORK/keep/seed.dump"      # the seed's -Fc dump, for the plain restore
DRILL_SINK="$WORK/keep/lifeboat-sink"  # a lifeboat backup, for the drills

# The floor: what pg_dump alone costs, without compression or storage.
floor_pipeline() { # floor_pipeline SINK TAG (SINK unused)
  reset_result
  step pg_dump /dev/null "$WORK/logs/floor.err" "$PGBIN/pg_dump" -Fc -Z0 -d "$DB_URL"
}

# Not a product: what parallel dumping could gain. Two pg_dump processes at
# once, the biggest table's data alone in one and everything else in the
# other (pg_dump splits no table), each piped into zstd -1 on every core.
# No shared snapshot (that would need a session held open), so an upper
# bound on the speed of a consistent version.
shards_pipeline() { # shards_pipeline SINK TAG (SINK unused)
  reset_result
  local out="$WORK/tmp/shards"
  mkdir -p "$out"
  step shards /dev/null "$WORK/logs/shards.err" bash -c '
    "$1/pg_dump" -Fc -Z0 -d "$2" --exclude-table-data="$3" | zstd -q -1 -T0 -o "$4/rest.zst" -f &
    "$1/pg_dump" -Fc -Z0 -d "$2" -a -t "$3" | zstd -q -1 -T0 -o "$4/big.zst" -f
    wait $! && wait' shards "$PGBIN" "$DB_URL" "$BIG_TABLE" "$out"
  P_SIZE=$(( $(stat -c %s "$out/rest.zst") + $(stat -c %s "$out/big.zst") ))
  rm -f "$out"/*.zst
}

# The seed 000/003 pipeline: pg_dump -Fc to a file -> pg_restore --list ->
# aws s3 cp (S3) or cp into a backup directory (local).
seed_pipeline() { # seed_pipeline SINK TAG
  local sink=$1 tag=$2 tmp="$WORK/tmp/seed-$2" err="$WORK/logs/seed-$1.err"
  reset_result
  mkdir -p "$tmp"
  step pg_dump /dev/null "$err" "$PGBIN/pg_dump" -Fc -d "$DB_URL" -f "$tmp/out.dump"
  step pg_restore_list "$tmp/toc.txt" "$err" "$PGBIN/pg_restore" --list "$tmp/out.dump"
  grep -q ' TABLE DATA public events ' "$tmp/toc.txt" || die "seed pg_restore --list shows no events data"
  case "$sink" in
    local)
      local dest="$WORK/sinks/seed/$tag"
      mkdir -p "$dest"
      step cp /dev/null "$err" cp "$tmp/out.dump" "$dest/out.dump"
      P_SIZE=$(stat -c %s "$dest/out.dump")
      rm -rf "$dest"
      ;;
    s3)
      step upload /dev/null "$err" "$AWS" --endpoint-url "$EP" s3 cp --only-show-errors \
        "$tmp/out.dump" "s3://$BUCKET/seed/$tag/out.dump"
      P_SIZE=$(s3_object_size "seed/$tag" 'out\.dump$')
      "$AWS" --endpoint-url "$EP" s3 rm --recursive --only-show-errors "s3://$BUCKET/seed/$tag/"
      ;;
  esac
  if [ ! -f "$PLAIN_DUMP" ]; then mv "$tmp/out.dump" "$PLAIN_DUMP"; fi
  rm -rf "$tmp"
}

# ---- The Lifeboat invocations: adjust here if the CLI changes. ----
# LB_EXTRA: more options (the --also-level runs).
# --no-drill: the backup rows compare the backup against the seed pipeline,
# which checks the TOC and restores nothing. By default a PostgreSQL backup
# also runs a restore drill in a throwaway cluster before its commit; that
# drill is what the drill-cluster row measures (download, decompress,
# pg_restore, checks), so a default backup takes the two rows together.
LB_EXTRA=()
lifeboat_local_cmd() { # DIR
  LB_CMD=("$LIFEBOAT" backup "$DB_URL" --to "file://$1" --no-drill --log-format json --json ${LB_EXTRA[@]+"${LB_EXTRA[@]}"})
}
lifeboat_s3_cmd() { # PREFIX (inside the bucket)
  LB_CMD=(env AWS_ENDPOINT_URL="$EP" AWS_ALLOW_HTTP=true
    "$LIFEBOAT" backup "$DB_URL" --to "s3://$BUCKET/$1" --no-drill --log-format json --json ${LB_EXTRA[@]+"${LB_EXTRA[@]}"})
}
drill_server_cmd() {
  LB_CMD=("$LIFEBOAT" verify --from "file://$DRILL_SINK" --latest
    --drill-server "$BASE_URL/postgres" --log-format json)
}
drill_cluster_cmd() {
  LB_CMD=("$LIFEBOAT" verify --from "file://$DRILL_SINK" --latest --drill-cluster --log-format json)
}

# The manifest printed by --json must carry only passed verdicts, among them
# the structural one (pg-toc: pg_restore --list on the stream).
check_manifest() { # FILE
  python3 - "$1" <<'EOF' || die "lifeboat's manifest ($1) does not show a verified backup"
import json, sys
out = json.load(open(sys.argv[1]))
if isinstance(out, dict):
    out = [out]
verdicts = [v for o in out for v in (o.get("manifest", o).get("verdicts") or [])]
names = [v.get("verifier") for v in verdicts]
bad = [v for v in verdicts if not v.get("passed")]
if len(out) != 1 or not verdicts or bad or "pg-toc" not in names:
    print("verdicts:", json.dumps(verdicts)[:2000], file=sys.stderr)
    sys.exit(1)
EOF
}

lifeboat_pipeline() { # lifeboat_pipeline SINK TAG
  local sink=$1 tag=$2 LB_CMD=() err="$WORK/logs/lifeboat-$1-$2.err" out="$WORK/logs/lifeboat-$1-$2.json"
  reset_result
  : >"$err"
  case "$sink" in
    local)
      local dest="$WORK/sinks/lifeboat/$tag" data
      mkdir -p "$dest"
      lifeboat_local_cmd "$dest"
      step lifeboat "$out" "$err" "${LB_CMD[@]}"
      check_manifest "$out"
      mapfile -t data < <(find "$dest" -type f -name 'data.*.zst')
      [ "${#data[@]}" = 1 ] || die "expected one data.*.zst under $dest, found ${#data[@]}: $(find "$dest" -type f)"
      [ -n "$(find "$dest" -type f -name manifest.json)" ] || die "no manifest.json under $dest"
      P_SIZE=$(stat -c %s "${data[0]}")
      if [ ! -d "$DRILL_SINK" ]; then mv "$dest" "$DRILL_SINK"; else rm -rf "$dest"; fi
      ;;
    s3)
      lifeboat_s3_cmd "lifeboat/$tag"
      step lifeboat "$out" "$err" "${LB_CMD[@]}"
      check_manifest "$out"
      P_SIZE=$(s3_object_size "lifeboat/$tag" '/data\.[^/]*\.zst$')
      "$AWS" --endpoint-url "$EP" s3 rm --recursive --only-show-errors "s3://$BUCKET/lifeboat/$tag/"
      ;;
  esac
}

# Restore drills, both from a local folder (no S3 in the restore numbers).
drill_pipeline() { # drill_pipeline KIND TAG
  local kind=$1 tag=$2 LB_CMD=() err="$WORK/logs/drill-$1-$2.err"
  reset_result
  : >"$err"
  "drill_${kind}_cmd"
  step drill "$WORK/logs/drill-$kind-$tag.out" "$err" "${LB_CMD[@]}"
  [ "$M_RC" = 0 ] || return 0
  grep -q 'restore drill OK' "$err" || die "lifeboat verify exited 0 without 'restore drill OK' (see $err)"
}
DRILL_CLUSTER_ERROR=""
drill_cluster_pipeline() { # TAG: may fail; then DRILL_CLUSTER_ERROR says why
  MEASURE_MAY_FAIL=1
  drill_pipeline cluster "$1"
  MEASURE_MAY_FAIL=0
  if [ "$M_RC" != 0 ]; then
    DRILL_CLUSTER_ERROR="exit $M_RC: $(grep -v '^+ ' "$WORK/logs/drill-cluster-$1.err" | tail -n 3 | tr '\n' ' ' | cut -c1-600)"
    return 1
  fi
}
drill_server_pipeline() { drill_pipeline server "$1"; }
plain_pipeline() { # plain_pipeline TAG: createdb + pg_restore of the seed's -Fc dump
  local err="$WORK/logs/plain.err"
  reset_result
  step createdb /dev/null "$err" "$PGBIN/createdb" --maintenance-db="$BASE_URL/postgres" plain_restore
  step pg_restore /dev/null "$err" "$PGBIN/pg_restore" -d "$BASE_URL/plain_restore" "$PLAIN_DUMP"
  # Not timed: the restore must hold the rows.
  [ "$(psql_q -d "$BASE_URL/plain_restore" -c 'SELECT count(*) FROM events')" = \
    "$(psql_q -d "$DB_URL" -c 'SELECT count(*) FROM events')" ] || die "plain restore lost events"
  "$PGBIN/dropdb" --maintenance-db="$BASE_URL/postgres" plain_restore
}

# ------------------------------------------------------------------- runs ---
median() { tr ' ' '\n' | grep . | sort -g | awk '{ v[NR] = $1 } END {
  if (NR % 2) print v[(NR + 1) / 2]; else printf "%.3f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
maximum() { tr ' ' '\n' | grep . | sort -g | tail -n 1; }
mib() { awk -v b="$1" 'BEGIN { printf "%.1f", b / 1048576 }'; }
div() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }
yesno() { awk "BEGIN { print ($1) ? \"yes\" : \"**no**\" }"; }
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
declare -A WALLS RSSES SIZES STEPS OTHERS CPUS PGS MOTOS
RETRIES=0
FLAGGED=()
wait_quiet() {
  local waited=0 b0 b1 h0 h1 share
  while :; do
    b0=$(machine_ticks)
    h0=$(helper_ticks)
    sleep 1
    b1=$(machine_ticks)
    h1=$(helper_ticks)
    share=$(awk -v b=$((b1 - b0 - (h1 - h0))) -v hz="$HZ" -v n="$NCPU" 'BEGIN { printf "%.1f", 100 * b / hz / n }')
    awk -v s="$share" -v m="$MAX_OTHER" 'BEGIN { exit !(s <= m) }' && return 0
    [ "$waited" = 0 ] && log "  machine busy (other processes ${share}% of the CPUs): waiting up to ${QUIET_WAIT} s"
    waited=$((waited + 1))
    if [ "$waited" -ge "$QUIET_WAIT" ]; then
      log "  still busy (${share}%) after ${QUIET_WAIT} s: measuring anyway"
      return 0
    fi
  done
}
other_share() { awk -v o="$1" -v w="$2" -v n="$NCPU" 'BEGIN { if (w > 0) printf "%.1f", 100 * o / (w * n); else print 0 }'; }

# run_group KEY... : each KEY is "name:function:arg"; a warm-up of each, then
# RUNS measured rounds, the keys alternating within a round.
run_group() {
  local k name fn arg run try share
  for k in "$@"; do
    IFS=: read -r name fn arg <<<"$k"
    log "$name: warm-up run"
    "$fn" "$arg" warmup
  done
  for run in $(seq 1 "$RUNS"); do
    for k in "$@"; do
      IFS=: read -r name fn arg <<<"$k"
      for try in $(seq 1 "$MAX_TRIES"); do
        wait_quiet
        "$fn" "$arg" "run$run"
        share=$(other_share "$P_OTHER" "$P_WALL")
        log "$name: run $run/$RUNS: ${P_WALL} s, peak RSS $((P_RSS / 1024)) MiB, output $P_SIZE bytes, other processes ${share}% of the CPUs${P_STEPS:+ ($P_STEPS)}"
        awk -v s="$share" -v m="$MAX_OTHER" 'BEGIN { exit !(s <= m) }' && break
        if [ "$try" -lt "$MAX_TRIES" ]; then
          log "  other processes took more than ${MAX_OTHER}% of the CPUs: running it again"
          RETRIES=$((RETRIES + 1))
        else
          log "  still busy after $MAX_TRIES tries: keeping this run (flagged in the report)"
          FLAGGED+=("$name run $run: other processes took ${share}% of the CPUs")
        fi
      done
      OTHERS[$name]+="$share "
      WALLS[$name]+="$P_WALL "
      RSSES[$name]+="$P_RSS "
      SIZES[$name]+="$P_SIZE "
      STEPS[$name]+="$P_STEPS"$'\n'
      CPUS[$name]+="$P_CPU "
      PGS[$name]+="$P_PG "
      MOTOS[$name]+="$P_MOTO "
    done
  done
}
# Adapters with the (arg, tag) signature run_group calls.
m_floor() { floor_pipeline - "$2"; }
m_shards() { shards_pipeline - "$2"; }
m_seed() { seed_pipeline "$1" "$2"; }
m_lifeboat() { lifeboat_pipeline "$1" "$2"; }
m_lifeboat_lvl() {
  LB_EXTRA=(--level "$ALSO_LEVEL")
  lifeboat_pipeline "$1" "lvl$ALSO_LEVEL-$2"
  LB_EXTRA=()
}
m_drill() { drill_server_pipeline "$2"; }
m_plain() { plain_pipeline "$2"; }

BIG_TABLE=$(psql_q -d "$DB_URL" -c "SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname)
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
  WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  ORDER BY pg_table_size(c.oid) DESC LIMIT 1")
BIG_SHARE=$(psql_q -d "$DB_URL" -c "SELECT round(100 * pg_table_size('$BIG_TABLE') / $DB_TABLE_BYTES::numeric)")
if command -v zstd >/dev/null 2>&1; then
  run_group "floor:m_floor:-" "shards:m_shards:-"
else
  run_group "floor:m_floor:-"
fi
if [ "$ALSO_LEVEL" -gt 0 ]; then
  run_group "seed-local:m_seed:local" "lifeboat-local:m_lifeboat:local" "lifeboat-lvl-local:m_lifeboat_lvl:local"
  run_group "seed-s3:m_seed:s3" "lifeboat-s3:m_lifeboat:s3" "lifeboat-lvl-s3:m_lifeboat_lvl:s3"
else
  run_group "seed-local:m_seed:local" "lifeboat-local:m_lifeboat:local"
  run_group "seed-s3:m_seed:s3" "lifeboat-s3:m_lifeboat:s3"
fi
[ -f "$PLAIN_DUMP" ] || die "no seed dump kept for the plain restore"
[ -d "$DRILL_SINK" ] || die "no lifeboat backup kept for the drills"
run_group "plain-restore:m_plain:-" "drill-server:m_drill:-"

DRILL_CLUSTER_STATUS="not run (--no-drill-cluster)"
if [ "$DRILL_CLUSTER" = 1 ]; then
  log "drill-cluster: warm-up run"
  if drill_cluster_pipeline warmup; then
    # The throwaway cluster's server processes are not children of anything
    # we watch: their CPU time counts as "other", so no re-run on it here.
    saved_max=$MAX_OTHER
    MAX_OTHER=100
    m_drill_cluster() { drill_cluster_pipeline "$2" || die "--drill-cluster failed after a successful warm-up: $DRILL_CLUSTER_ERROR"; }
    run_group_nowarm() {
      local run
      for run in $(seq 1 "$RUNS"); do
        wait_quiet
        m_drill_cluster - "run$run"
        log "drill-cluster: run $run/$RUNS: ${P_WALL} s, peak RSS $((P_RSS / 1024)) MiB"
        WALLS[drill-cluster]+="$P_WALL "
        RSSES[drill-cluster]+="$P_RSS "
      done
    }
    run_group_nowarm
    MAX_OTHER=$saved_max
    DRILL_CLUSTER_STATUS="ok"
  else
    DRILL_CLUSTER_STATUS="failed: $DRILL_CLUSTER_ERROR"
    log "drill-cluster $DRILL_CLUSTER_STATUS"
  fi
fi

# ------------------------------------------------------- size diagnosis ---
# Not timed: what zstd makes of pg_dump's archive formats, to explain the
# output-size comparison. A -Z0 custom archive frames every COPY row with a
# length word; a tar archive carries the COPY text as is.
LB_LEVEL=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))[0]["manifest"]["artifact"]["compression"]["level"])' \
  "$WORK/logs/lifeboat-local-run1.json" 2>/dev/null || echo 3)
SIZE_DIAG=()
if command -v zstd >/dev/null 2>&1; then
  log "size diagnosis (untimed): zstd on pg_dump's -Fc -Z0 and -Ft archives"
  zsize() { # FORMAT_ARGS ZSTD_ARGS
    # shellcheck disable=SC2086
    "$PGBIN/pg_dump" $1 -d "$DB_URL" | zstd -q -T0 $2 -c | wc -c
  }
  for lvl in $(printf '%s\n' 3 6 "$LB_LEVEL" | sort -nu); do
    SIZE_DIAG+=("\`pg_dump -Fc -Z0 | zstd -$lvl\` $(mib "$(zsize "-Fc -Z0" "-$lvl")") MiB")
  done
  SIZE_DIAG+=("\`pg_dump -Ft | zstd -$LB_LEVEL\` $(mib "$(zsize "-Ft" "-$LB_LEVEL")") MiB")
  SIZE_DIAG+=("\`pg_dump -Ft | zstd -$LB_LEVEL --long=27\` $(mib "$(zsize "-Ft" "-$LB_LEVEL --long=27")") MiB")
  Z0_RAW=$("$PGBIN/pg_dump" -Fc -Z0 -d "$DB_URL" | wc -c)
  TAR_RAW=$("$PGBIN/pg_dump" -Ft -d "$DB_URL" | wc -c)
fi

# --------------------------------------------------- lifeboat phase times ---
# Lifeboat's JSON logs (stderr) and manifest (--json, stdout) carry
# timestamps and per-verdict durations: derive where each run's time went,
# median over the measured runs.
PHASES="$WORK/phases.txt"
python3 - "$WORK/logs" "$RUNS" "$ALSO_LEVEL" >"$PHASES" 2>"$WORK/phases.err" <<'EOF_PY' || true
import json, os, re, statistics, sys
from datetime import datetime

logs, runs, lvl = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])

def ts(s):
    # 2026-11-21T06:09:53.188505881Z -> seconds (microsecond precision)
    s = re.sub(r"(\.\d{6})\d*", r"\1", s.replace("Z", "+00:00"))
    return datetime.fromisoformat(s).timestamp()

def events(path):
    out = []
    for line in open(path, errors="replace"):
        line = line.strip()
        if line.startswith("{"):
            try:
                out.append(json.loads(line))
            except ValueError:
                pass
    return out

def first(evs, msg, **kw):
    for e in evs:
        if e.get("message") == msg and all(e.get(k) == v for k, v in kw.items()):
            return e
    raise KeyError(msg)

def backup_phases(err, out):
    evs = events(err)
    m = json.load(open(out))[0]
    toc = next(v for v in m["manifest"]["verdicts"] if v["verifier"] == "pg-toc")
    started = ts(first(evs, "backup started")["timestamp"])
    dump = ts(first(evs, "pg_dump started on an exported snapshot")["timestamp"])
    dump_end = ts(toc["checked_at"])
    minsize = ts(first(evs, "verdict", verifier="min-size")["timestamp"])
    cks = first(evs, "verdict", verifier="checksum")
    done = first(evs, "backup complete")
    return {
        "connect + snapshot + table list": dump - started,
        "pg_dump -Z0 → zstd → sha256 → sink (until pg_dump exits)": dump_end - dump,
        "upload/commit tail": minsize - dump_end,
        "checksum read-back": cks["ms"] / 1000,
        "manifest": ts(done["timestamp"]) - ts(cks["timestamp"]),
        "total (duration_ms)": done["duration_ms"] / 1000,
    }

def drill_phases(err):
    evs = events(err)
    done = first(evs, "verify complete")
    end = ts(done["timestamp"])
    start = end - done["duration_ms"] / 1000
    cks = first(evs, "verdict", verifier="checksum")
    toc = first(evs, "verdict", verifier="pg-toc")
    rest = first(evs, "pg_restore done")
    rest_end = ts(rest["timestamp"])
    rest_start = rest_end - rest["ms"] / 1000
    return {
        "size + checksum read-back": ts(cks["timestamp"]) - start,
        "decompress to a temp file, pg-toc (and the throwaway cluster's start)": ts(toc["timestamp"]) - ts(cks["timestamp"]),
        "until pg_restore starts": rest_start - ts(toc["timestamp"]),
        f"pg_restore -j {rest.get('jobs', '?')}": rest["ms"] / 1000,
        "row counts + drop + evidence": end - rest_end,
        "total (duration_ms)": done["duration_ms"] / 1000,
    }

kinds = ["lifeboat-local", "lifeboat-s3"]
if lvl > 0:
    kinds += [f"lifeboat-local-lvl{lvl}", f"lifeboat-s3-lvl{lvl}"]
for kind in kinds + ["drill-server", "drill-cluster"]:
    per = {}
    for r in range(1, runs + 1):
        err = os.path.join(logs, f"{kind}-run{r}.err")
        if not os.path.exists(err):
            continue
        try:
            if kind.startswith("lifeboat"):
                ph = backup_phases(err, os.path.join(logs, f"{kind}-run{r}.json"))
            else:
                ph = drill_phases(err)
        except (KeyError, ValueError, StopIteration, IndexError, OSError) as e:
            print(f"{kind} run {r}: {e!r}", file=sys.stderr)
            continue
        for k, v in ph.items():
            per.setdefault(k, []).append(v)
    if per:
        print(f"- {kind}: " + "; ".join(f"{k} {statistics.median(v):.2f}" for k, v in per.items()))
EOF_PY

# ----------------------------------------------------------------- report ---

LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)
cpu_model=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
[ -n "$cpu_model" ] || cpu_model=$(uname -m)
mem_total=$(awk '/^MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)
moto_version=$("$(dirname "$MOTO")/python" -c 'import moto; print(moto.__version__)' 2>/dev/null ||
  python3 -c 'import moto; print(moto.__version__)' 2>/dev/null || echo unknown)
lifeboat_version=$("$LIFEBOAT" --version 2>/dev/null | head -n 1 || echo unknown)
pg_version=$(psql_q -d "$DB_URL" -c "SHOW server_version")
lb_pg_dump=$(grep -ho '"pg_dump":"[^"]*"' "$WORK/logs/lifeboat-local-run1.err" 2>/dev/null | head -n 1 | cut -d'"' -f4)
if git_rev=$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null); then
  git_rev="commit $git_rev"
  if ! git -C "$REPO" diff --quiet HEAD -- backup-core backup-cli 2>/dev/null; then
    git_rev+=" with uncommitted changes"
  fi
else
  git_rev="an uncommitted tree"
fi

NAMES=(floor seed-local lifeboat-local seed-s3 lifeboat-s3 plain-restore drill-server)
if [ "$ALSO_LEVEL" -gt 0 ]; then
  NAMES=(floor seed-local lifeboat-local lifeboat-lvl-local seed-s3 lifeboat-s3 lifeboat-lvl-s3 plain-restore drill-server)
fi
[ -n "${WALLS[shards]:-}" ] && NAMES=(floor shards "${NAMES[@]:1}")
label() { case "$1" in lifeboat-lvl-*) echo "lifeboat-${1#lifeboat-lvl-} --level $ALSO_LEVEL" ;; *) echo "$1" ;; esac; }
W() { median <<<"${WALLS[$1]}"; }
R() { maximum <<<"${RSSES[$1]}"; }
S() { median <<<"${SIZES[$1]:-0}"; }
FLOOR=$(W floor)
FC_SIZE=$(S seed-local)
PLAIN=$(W plain-restore)

SECTION="$WORK/section.md"
{
  echo "$SECTION_HEADING"
  echo
  echo "Reproduce: \`benches/pg_vs_seed.sh$([ "$SCALE" = 1 ] || echo " --scale $SCALE")$([ "$RUNS" = 3 ] || echo " --runs $RUNS")\`"
  echo "(PostgreSQL $pg_version cluster in \`bench-data/pg\`, generated once by \`benches/gen_pg.sql\` and reused)."
  echo
  echo "Run $(date -u +%Y-%m-%dT%H:%MZ) at $git_rev. Database \`$DBNAME\`: $DB_BYTES bytes"
  echo "($(mib "$DB_BYTES") MiB \`pg_database_size\`: $(mib "$DB_TABLE_BYTES") MiB tables, $(mib "$DB_INDEX_BYTES") MiB indexes);"
  echo "$DB_ROWS; text, jsonb, numeric, timestamptz, NULLs; $DB_INDEXES indexes (btree, unique, partial, GIN), 2 foreign keys, a view."
  echo
  echo "### Backup"
  echo
  echo "| pipeline | sink | wall s | peak RSS MiB | output MiB | seed / this (time) | this / floor (time) | size / \`pg_dump -Fc\` |"
  echo "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"
  printf '| floor: `pg_dump -Fc -Z0 > /dev/null` | – | %.2f | %s | – | – | 1.00 | – |\n' "$FLOOR" "$(mib $(($(R floor) * 1024)))"
  for sink in local s3; do
    sw=$(W "seed-$sink")
    lw=$(W "lifeboat-$sink")
    up=$([ "$sink" = s3 ] && echo "aws s3 cp" || echo cp)
    printf '| seed 000/003 (`pg_dump -Fc` → `pg_restore --list` → %s) | %s | %.2f | %s | %s | 1.00 | %s | 1.00 |\n' \
      "$up" "$sink" "$sw" "$(mib $(($(R "seed-$sink") * 1024)))" "$(mib "$(S "seed-$sink")")" "$(div "$sw" "$FLOOR")"
    printf '| lifeboat backup (checked, `--no-drill`) | %s | %.2f | %s | %s | **%s×** | %s | %s |\n' \
      "$sink" "$lw" "$(mib $(($(R "lifeboat-$sink") * 1024)))" "$(mib "$(S "lifeboat-$sink")")" \
      "$(div "$sw" "$lw")" "$(div "$lw" "$FLOOR")" "$(div "$(S "lifeboat-$sink")" "$(S "seed-$sink")")"
    if [ "$ALSO_LEVEL" -gt 0 ]; then
      vw=$(W "lifeboat-lvl-$sink")
      printf '| lifeboat backup, `--level %s` (checked, `--no-drill`) | %s | %.2f | %s | %s | %s× | %s | %s |\n' "$ALSO_LEVEL" \
        "$sink" "$vw" "$(mib $(($(R "lifeboat-lvl-$sink") * 1024)))" "$(mib "$(S "lifeboat-lvl-$sink")")" \
        "$(div "$sw" "$vw")" "$(div "$vw" "$FLOOR")" "$(div "$(S "lifeboat-lvl-$sink")" "$(S "seed-$sink")")"
    fi
  done
  echo
  echo "### Restore drill (from the local folder)"
  echo
  echo "| restore | wall s | peak RSS MiB | / plain \`pg_restore\` |"
  echo "| --- | ---: | ---: | ---: |"
  printf '| plain: `createdb x && pg_restore -d x out.dump` (the seed'"'"'s `-Fc` dump, 1 job) | %.2f | %s | 1.00 |\n' \
    "$PLAIN" "$(mib $(($(R plain-restore) * 1024)))"
  printf '| `lifeboat verify --latest --drill-server …` | %.2f | %s | **%s** |\n' \
    "$(W drill-server)" "$(mib $(($(R drill-server) * 1024)))" "$(div "$(W drill-server)" "$PLAIN")"
  if [ "$DRILL_CLUSTER_STATUS" = ok ]; then
    printf '| `lifeboat verify --latest --drill-cluster` | %.2f | %s | %s |\n' \
      "$(W drill-cluster)" "$(mib $(($(R drill-cluster) * 1024)))" "$(div "$(W drill-cluster)" "$PLAIN")"
  else
    echo "| \`lifeboat verify --latest --drill-cluster\` | – | – | $DRILL_CLUSTER_STATUS |"
  fi
  if [ "$DRILL_CLUSTER_STATUS" = ok ]; then
    echo
    echo "The backup rows run with \`--no-drill\`. A default PostgreSQL backup also restores itself in a throwaway cluster before its commit:"
    both=$(awk -v a="$(W lifeboat-local)" -v b="$(W drill-cluster)" 'BEGIN { printf "%.2f", a + b }')
    printf 'that drill is the `--drill-cluster` row, so a default local backup takes about %.2f + %.2f = %.2f s (%s× the backup alone).\n' \
      "$(W lifeboat-local)" "$(W drill-cluster)" "$both" "$(div "$both" "$(W lifeboat-local)")"
  fi
  echo
  echo "### Targets"
  echo
  echo "| target | local | s3 |"
  echo "| --- | :---: | :---: |"
  row() { # LABEL EXPR_LOCAL EXPR_S3 (awk conditions)
    echo "| $1 | $(yesno "$2") | $(yesno "$3") |"
  }
  lw_l=$(W lifeboat-local); lw_s=$(W lifeboat-s3); sw_l=$(W seed-local); sw_s=$(W seed-s3)
  row "≥ 3× faster than the seed pipeline ($(div "$sw_l" "$lw_l")× / $(div "$sw_s" "$lw_s")×)" "$sw_l >= 3 * $lw_l" "$sw_s >= 3 * $lw_s"
  row "within 1.5× of the \`pg_dump -Z0\` floor ($(div "$lw_l" "$FLOOR")× / $(div "$lw_s" "$FLOOR")×)" "$lw_l <= 1.5 * $FLOOR" "$lw_s <= 1.5 * $FLOOR"
  row "output ≤ \`pg_dump -Fc\` ($(div "$(S lifeboat-local)" "$FC_SIZE") / $(div "$(S lifeboat-s3)" "$FC_SIZE"))" \
    "$(S lifeboat-local) <= $FC_SIZE" "$(S lifeboat-s3) <= $FC_SIZE"
  row "peak RSS < 150 MB ($(mib $(($(R lifeboat-local) * 1024))) / $(mib $(($(R lifeboat-s3) * 1024))) MiB)" \
    "$(R lifeboat-local) * 1024 < 150000000" "$(R lifeboat-s3) * 1024 < 150000000"
  echo "| restore drill ≤ 1.2× plain \`pg_restore\` ($(div "$(W drill-server)" "$PLAIN")×) | $(yesno "$(W drill-server) <= 1.2 * $PLAIN") | – |"
  echo
  echo "Observations:"
  echo
  sf_l=$(div "$sw_l" "$FLOOR")
  seed_dump=$(printf '%s' "${STEPS[seed-local]}" | tr ' ' '\n' | grep '^pg_dump=' | cut -d= -f2 | tr '\n' ' ' | median)
  echo "- Speed: the seed pipeline's time is its \`pg_dump -Fc\` step ($(printf '%.2f' "$seed_dump") s of $(printf '%.2f' "$sw_l") s locally): the"
  echo "  floor plus single-threaded zlib. Lifeboat takes $(div "$lw_l" "$FLOOR")× (local) / $(div "$lw_s" "$FLOOR")× (S3) the floor$(
    awk -v r="$(div "$lw_l" "$FLOOR")" 'BEGIN { print (r <= 1.15) ? ": it is bound by `pg_dump` and the server, not by its own work." : "." }')"
  for name in lifeboat-local lifeboat-s3; do
    c=$(median <<<"${CPUS[$name]}"); g=$(median <<<"${PGS[$name]}"); m=$(median <<<"${MOTOS[$name]}")
    echo "  $name kept the $NCPU cores $(awk -v c="$c" -v g="$g" -v m="$m" -v w="$(W "$name")" -v n="$NCPU" \
      'BEGIN { printf "%.0f%%", 100 * (c + g + m) / (n * w) }') busy (lifeboat with pg_dump $c CPU s, server $g s, moto $m s)."
  done
  if awk -v r="$sf_l" 'BEGIN { exit !(r < 3) }'; then
    echo "  As the seed pipeline takes only ${sf_l}× the floor, 3× faster than it would mean finishing well"
    echo "  before \`pg_dump -Z0 > /dev/null\` alone does, which no pipeline around one \`pg_dump\` stream can."
    if [ -n "${WALLS[shards]:-}" ]; then
      echo "  Parallel dumping, measured as an experiment: two \`pg_dump -Fc -Z0\` at once, \`$BIG_TABLE\` ($BIG_SHARE% of the"
      echo "  table bytes) alone in one, each into \`zstd -1 -T0\`, no verification: $(printf '%.2f' "$(W shards)") s,"
      echo "  $(div "$sw_l" "$(W shards)")× faster than the seed and $(div "$(W shards)" "$FLOOR")× the floor (no shared snapshot, so an upper bound)."
    fi
  else
    echo "  The seed pipeline takes ${sf_l}× the floor, so 3× is within reach of a pipeline running at the floor."
  fi
  echo "- Size: lifeboat stores zstd level $LB_LEVEL of the \`-Z0\` archive: $(div "$(S lifeboat-local)" "$FC_SIZE")× the \`pg_dump -Fc\` (zlib 6) file."
  if [ "${#SIZE_DIAG[@]}" -gt 0 ]; then
    echo "  Untimed, on the same database: $(printf '%s; ' "${SIZE_DIAG[@]}")\`pg_dump -Fc\` $(mib "$FC_SIZE") MiB."
    echo "  The uncompressed \`-Fc -Z0\` archive is $(mib "$Z0_RAW") MiB against $(mib "$TAR_RAW") MiB for \`-Ft\`: with \`-Z0\`, pg_dump"
    echo "  frames every COPY row with a length word, which costs zstd more than the bytes it adds. Lifeboat"
    echo "  merges those chunks into 256 KiB ones before compressing ($(mib "$(S lifeboat-local)") MiB at level $LB_LEVEL)."
  fi
  if [ "$ALSO_LEVEL" -gt 0 ]; then
    echo "- Level: with \`--level $ALSO_LEVEL\` instead of the default $LB_LEVEL, lifeboat takes $(printf '%.2f' "$(W lifeboat-lvl-local)") s"
    echo "  ($(div "$(W lifeboat-lvl-local)" "$FLOOR")× the floor, $(div "$sw_l" "$(W lifeboat-lvl-local)")× faster than the seed) locally and $(printf '%.2f' "$(W lifeboat-lvl-s3)") s ($(div "$(W lifeboat-lvl-s3)" "$FLOOR")×, $(div "$sw_s" "$(W lifeboat-lvl-s3)")×)"
    echo "  to S3, for $(div "$(S lifeboat-lvl-local)" "$FC_SIZE")× the \`pg_dump -Fc\` size."
  fi
  echo "- Memory: lifeboat's peak RSS is $(mib $(($(R lifeboat-local) * 1024))) MiB (local) / $(mib $(($(R lifeboat-s3) * 1024))) MiB (S3); the seed's S3 step (\`aws s3 cp\`) peaks at"
  echo "  $(mib $(($(R seed-s3) * 1024))) MiB."
  echo "- Restore: the drill restores with \`pg_restore -j\` (default: the core count) from an uncompressed"
  echo "  archive, the plain restore with one job from the zlib one; the drill adds the download and"
  echo "  decompression, row counts and the drop (phases below)."
  echo
  echo "CPU seconds per run (medians; the command with the children it waits for, the PostgreSQL"
  echo "server's processes, moto), against the $NCPU cores' capacity over the run's wall time:"
  echo
  echo "| measurement | wall s | command CPU s | server CPU s | moto CPU s | total / ($NCPU × wall) |"
  echo "| --- | ---: | ---: | ---: | ---: | ---: |"
  for name in "${NAMES[@]}"; do
    c=$(median <<<"${CPUS[$name]}"); g=$(median <<<"${PGS[$name]}"); m=$(median <<<"${MOTOS[$name]}"); w=$(W "$name")
    printf '| %s | %.2f | %.2f | %.2f | %.2f | %s |\n' "$(label "$name")" "$w" "$c" "$g" "$m" \
      "$(awk -v c="$c" -v g="$g" -v m="$m" -v w="$w" -v n="$NCPU" 'BEGIN { printf "%.0f%%", 100 * (c + g + m) / (n * w) }')"
  done
  echo
  echo "Steps (median wall s of the measured runs):"
  echo
  for name in seed-local seed-s3 plain-restore; do
    names=$(printf '%s' "${STEPS[$name]}" | head -n 1 | tr ' ' '\n' | cut -d= -f1 | grep .)
    line="- $name:"
    for n in $names; do
      m=$(printf '%s' "${STEPS[$name]}" | tr ' ' '\n' | grep "^$n=" | cut -d= -f2 | tr '\n' ' ' | median)
      line+=" $n $(printf '%.2f' "$m"),"
    done
    echo "${line%,}"
  done
  if [ -s "$PHASES" ]; then
    echo
    echo "Where lifeboat's time goes (s, medians; from the timestamps and \`ms\` fields of its JSON log and manifest):"
    echo
    cat "$PHASES"
  fi
  echo
  echo "Method:"
  echo
  echo "- Each measurement ran once unmeasured (warm-up: the database, the dump and the backup in the"
  echo "  page cache), then $RUNS measured time(s), seed and lifeboat alternating (plain restore and drill"
  echo "  alternating). *wall s* is the median; *peak RSS* the largest of the runs (GNU time's"
  echo "  \"Maximum resident set size\": the biggest single process among the command and the children it"
  echo "  waited for, so lifeboat's figure covers its own pg_dump/pg_restore children, not the server);"
  echo "  *output* the stored object's size (MiB = 2^20 bytes)."
  echo "- Every command runs alone under \`/usr/bin/time -v\`; a multi-step pipeline's wall time is the sum"
  echo "  of its steps' and its peak RSS the largest step's."
  echo "- Floor: \`pg_dump -Fc -Z0 -d \$DB > /dev/null\`. Seed 000/003: \`pg_dump -Fc -d \$DB -f out.dump\`"
  echo "  (zlib level 6), \`pg_restore --list out.dump > /dev/null\`, then \`cp\` into a backup directory"
  echo "  (local) or \`aws --endpoint-url \$EP s3 cp\` (S3). Client tools: \`$PGBIN\`."
  echo "- Lifeboat: \`lifeboat backup postgres://postgres@127.0.0.1:\$PORT/$DBNAME --to file://\$DIR\` and"
  echo "  \`AWS_ENDPOINT_URL=\$EP … lifeboat backup … --to s3://$BUCKET/lifeboat\` (\`--log-format json --json\`,"
  echo "  defaults otherwise: zstd level $LB_LEVEL on every core): \`pg_dump -Fc -Z0\` (${lb_pg_dump:-?}) on an exported"
  echo "  snapshot streamed through zstd and SHA-256 to the sink, \`pg_restore --list\` on the stream's TOC,"
  echo "  exact \`count(*)\` per table in the snapshot, checksum read-back, manifest. The script checks the"
  echo "  printed manifest: every verdict passed, the structural one among them. Output: the"
  echo "  \`data.pgdump.zst\` object."
  echo "- Drills restore Lifeboat's backup from \`file://\` (\`verify --latest\`): size and checksum check,"
  echo "  decompress to a temp file, \`pg_restore --list\`, \`pg_restore\` with parallel jobs (default: $NCPU) into a"
  echo "  scratch database, exact row counts against the manifest (no smoke checks configured), drop."
  echo "  \`--drill-server\` uses the bench cluster; \`--drill-cluster\` starts and removes a throwaway cluster"
  echo "  from the local server binaries (its server's CPU is outside what the script can watch, so those"
  echo "  runs are not checked for other processes). The plain restore is \`createdb\` then a"
  echo "  single-job \`pg_restore -d x\` of the seed's \`-Fc\` dump (dropping x afterwards is not timed)."
  echo "- Cluster: PostgreSQL $pg_version, \`shared_buffers = 256MB\`, \`fsync = off\`,"
  echo "  \`synchronous_commit = off\`, \`full_page_writes = off\`, \`wal_level = minimal\`, \`autovacuum = off\`"
  echo "  (restores are not slowed by fsync or by autovacuum kicking in part-way), on the same machine."
  echo "- S3 is moto $moto_version on 127.0.0.1 on the same machine, so upload cost is loopback + moto's"
  echo "  CPU, which competes with the pipeline (and with the PostgreSQL server) for the $NCPU cores."
  echo "- Other processes: CPU time that neither the measured command nor moto nor the bench cluster"
  echo "  used, from /proc/stat, as a share of the $NCPU cores over the run. Each measured run waited for"
  echo "  a quiet second first (up to $QUIET_WAIT s), and a run where other processes passed ${MAX_OTHER}%"
  echo "  was run again (up to $MAX_TRIES tries; $RETRIES re-run(s) this time). Worst accepted run:"
  line=" "
  for name in "${NAMES[@]}"; do
    line+=" $(label "$name") $(maximum <<<"${OTHERS[$name]}")%;"
  done
  echo "$line"
  if [ "${#FLAGGED[@]}" -gt 0 ]; then
    echo "  **Kept although busy:** $(printf '%s; ' "${FLAGGED[@]}" | sed 's/; $/./')"
  fi
  echo "  Load average (1/5/15 min) before the runs: $LOAD_BEFORE; after: $LOAD_AFTER."
  echo
  echo "Machine: $NCPU cores, $cpu_model, $mem_total RAM, Linux $(uname -r);"
  echo "PostgreSQL $pg_version ($("$PGBIN/pg_dump" --version)), $("$AWS" --version 2>&1 | cut -d' ' -f1),"
  echo "moto $moto_version, lifeboat: $lifeboat_version."
  echo
} >"$SECTION"

echo
cat "$SECTION"

if [ -n "$OUT_FILE" ]; then
  cp "$SECTION" "$OUT_FILE"
  log "section written to $OUT_FILE"
fi

if [ "$WRITE_MD" = 1 ]; then
  if [ ! -f "$BENCH_MD" ]; then
    printf '# Benchmarks\n' >"$BENCH_MD"
  fi
  # Replace the section (from its heading to the next "## " heading) or append it.
  awk -v head="$SECTION_HEADING" -v sec="$SECTION" '
    function emit(  l) { while ((getline l < sec) > 0) print l; close(sec); done = 1 }
    $0 == head { emit(); skip = 1; next }
    skip && /^## / { skip = 0 }
    !skip { print }
    END { if (!done) { print ""; emit() } }
  ' "$BENCH_MD" >"$WORK/BENCHMARKS.md.new"
  mv "$WORK/BENCHMARKS.md.new" "$BENCH_MD"
  log "updated ${BENCH_MD#"$REPO"/}"
fi
