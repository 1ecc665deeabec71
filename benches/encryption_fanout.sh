#!/usr/bin/env bash
# benches/encryption_fanout.sh: what age encryption and a second sink cost
# (issue 12's targets: encryption at most 1.10x an unencrypted backup's time
# on the SQLite and PostgreSQL benchmarks; one run into two sinks at most
# 1.3x one sink), on the same data in the same run.
#
# Usage: benches/encryption_fanout.sh [--size-mb N] [--pg-scale N] [--runs N] [--skip-build]
#   --size-mb N    the generated SQLite database (default 500, as benches/sqlite_vs_seed.sh)
#   --pg-scale N   pgbench scale of the PostgreSQL database (default 30, about 450 MiB)
#   --runs N       measured runs of each case; the median is reported (default 3)
#   --skip-build   use target/release as it is
#
# Cases (wall time of `lifeboat backup`; each pair is measured alternately,
# A then B, N rounds after one warm-up of each; medians):
#   SQLite: local / local + age / S3 / S3 + age / local --also-to S3 / S3 alone
#   PostgreSQL (logical, with the default drill before the commit):
#           local / local + age
# It starts moto on a free port (.venv from scripts/test) and a throwaway
# PostgreSQL cluster as the postgres user; both go when it ends. Timings
# never go into a pass/fail test: this prints a markdown table.
set -euo pipefail

SIZE_MB=500
PG_SCALE=30
RUNS=3
BUILD=1
while [ $# -gt 0 ]; do
  case "$1" in
    --size-mb) SIZE_MB="$2"; shift 2 ;;
    --pg-scale) PG_SCALE="$2"; shift 2 ;;
    --runs) RUNS="$2"; shift 2 ;;
    --skip-build) BUILD=0; shift ;;
    -h | --help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; exit 0 ;;
    *) echo "unknown option $1" >&2; exit 64 ;;
  esac
done
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
LB_REPO="$REPO"
LB_VENV="$REPO/.venv"
LB_LOG_DIR="$REPO/.lifeboat-test/logs"
LB_SERVER_PIDS=()
LB_LOGS=()
# shellcheck source=scripts/lib/servers.sh
. "$REPO/scripts/lib/servers.sh"
PGBIN="${PGBIN:-/usr/lib/postgresql/15/bin}"
if [ "$BUILD" = 1 ]; then
  (cd "$REPO" && cargo build --release -p backup-cli -p lifeboat-benches --quiet)
fi
LB="$REPO/target/release/lifeboat"
GEN="$REPO/target/release/gen-sqlite"
command -v age-keygen >/dev/null || apt-get install -y age >/dev/null
mkdir -p "$REPO/bench-data"
DB="$REPO/bench-data/app-${SIZE_MB}mb-seed42.db"
[ -f "$DB" ] || "$GEN" "$DB" --size-mb "$SIZE_MB" --seed 42 --force
WORK="$(mktemp -d /tmp/lb-encbench.XXXXXX)"
chmod 755 "$WORK"
if [ "$(id -u)" = 0 ]; then chown postgres "$WORK"; fi
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
cleanup() {
  as_pg "$PGBIN/pg_ctl" -D "$WORK/pgdata" -m immediate stop >/dev/null 2>&1 || true
  lb_stop_servers 0 >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT

mkdir -p "$LB_LOG_DIR"
PORT="$(lb_free_ports 1)"
lb_start_moto "$PORT" >/dev/null
EP="http://127.0.0.1:$PORT"
export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_REGION=us-east-1
curl -fsS -X PUT "$EP/bench" >/dev/null

age-keygen -o "$WORK/key" 2>"$WORK/key.pub"
RECIPIENT="$(sed 's/^Public key: //' "$WORK/key.pub")"

# timed CMD...: wall seconds of one run of CMD (a fresh sink per run).
N=0
timed() {
  N=$((N + 1))
  local t0 t1
  t0=$(date +%s.%N)
  RUN_ID=$N "$@" >"$WORK/out.$N" 2>"$WORK/err.$N" || { echo "$* failed:" >&2; cat "$WORK/err.$N" >&2; exit 1; }
  t1=$(date +%s.%N)
  awk -v a="$t0" -v b="$t1" 'BEGIN {print b - a}'
}
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {printf "%.2f", a[int((NR+1)/2)]}'; }
# pair A B: one warm-up of each, then RUNS rounds of A then B, so that
# both see the same machine (page cache, other load); sets PA and PB to
# the medians.
pair() {
  local a=$1 b=$2 ta=() tb=()
  timed "$a" >/dev/null
  timed "$b" >/dev/null
  for _ in $(seq 1 "$RUNS"); do
    ta+=("$(timed "$a")")
    tb+=("$(timed "$b")")
  done
  PA=$(median "${ta[@]}")
  PB=$(median "${tb[@]}")
}
lbrun() { AWS_ENDPOINT_URL="$EP" "$LB" "$@" -q; }
sq_local() { lbrun backup "sqlite://$DB" --to "file://$WORK/sink-$RUN_ID" --name app; }
sq_local_age() { lbrun backup "sqlite://$DB" --to "file://$WORK/sink-$RUN_ID" --name app --recipient "$RECIPIENT"; }
sq_s3() { lbrun backup "sqlite://$DB" --to "s3://bench/r$RUN_ID" --name app; }
sq_s3_age() { lbrun backup "sqlite://$DB" --to "s3://bench/r$RUN_ID" --name app --recipient "$RECIPIENT"; }
sq_fanout() { lbrun backup "sqlite://$DB" --to "file://$WORK/sink-$RUN_ID" --also-to "s3://bench/r$RUN_ID" --name app; }

echo "==> SQLite ($SIZE_MB MiB), $RUNS runs each" >&2
pair sq_local sq_local_age; T_LOCAL=$PA; T_LOCAL_AGE=$PB
rm -rf "$WORK"/sink-*
pair sq_s3 sq_s3_age; T_S3=$PA; T_S3_AGE=$PB
pair sq_s3 sq_fanout; T_S3B=$PA; T_FAN=$PB
pair sq_local sq_fanout; T_LOCALB=$PA; T_FANB=$PB
rm -rf "$WORK"/sink-*

echo "==> PostgreSQL (pgbench scale $PG_SCALE)" >&2
as_pg "$PGBIN/initdb" -D "$WORK/pgdata" -U postgres --auth=trust >/dev/null
PGPORT="$(lb_free_ports 1)"
printf "port = %s\nunix_socket_directories = '%s'\nlisten_addresses = ''\nshared_buffers = 256MB\n" "$PGPORT" "$WORK" >>"$WORK/pgdata/postgresql.conf"
as_pg "$PGBIN/pg_ctl" -D "$WORK/pgdata" -l "$WORK/pg.log" -w start >/dev/null
as_pg "$PGBIN/pgbench" -h "$WORK" -p "$PGPORT" -U postgres -i -s "$PG_SCALE" -q postgres >/dev/null 2>&1
PGURL="postgres://postgres@/postgres?host=$WORK&port=$PGPORT"
pg_local() { lbrun backup "$PGURL" --to "file://$WORK/sink-$RUN_ID" --name pg; }
pg_local_age() { lbrun backup "$PGURL" --to "file://$WORK/sink-$RUN_ID" --name pg --recipient "$RECIPIENT"; }
pair pg_local pg_local_age; T_PG=$PA; T_PG_AGE=$PB

ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; }
cat <<EOF
| case | plain s | with it s | ratio | target |
|---|--:|--:|--:|--:|
| SQLite $SIZE_MB MiB, local folder, age to one recipient | $T_LOCAL | $T_LOCAL_AGE | $(ratio "$T_LOCAL_AGE" "$T_LOCAL")× | ≤ 1.10× |
| SQLite $SIZE_MB MiB, S3 (moto), age | $T_S3 | $T_S3_AGE | $(ratio "$T_S3_AGE" "$T_S3")× | ≤ 1.10× |
| PostgreSQL pgbench -s $PG_SCALE, local folder (drill before the commit), age | $T_PG | $T_PG_AGE | $(ratio "$T_PG_AGE" "$T_PG")× | ≤ 1.10× |
| SQLite $SIZE_MB MiB: S3 alone → local folder + S3 (\`--also-to\`) | $T_S3B | $T_FAN | $(ratio "$T_FAN" "$T_S3B")× | ≤ 1.30× |
| SQLite $SIZE_MB MiB: local folder alone → local folder + S3 | $T_LOCALB | $T_FANB | $(ratio "$T_FANB" "$T_LOCALB")× | |
EOF
