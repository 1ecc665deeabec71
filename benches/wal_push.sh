#!/usr/bin/env bash
# benches/wal_push.sh: how fast `lifeboat wal push` archives a burst of WAL,
# one segment per call (--parallel 1) against the look-ahead (--parallel 4),
# into a local folder, on the same generated WAL in the same run.
#
# Usage: benches/wal_push.sh [--segments N] [--skip-build]
#   --segments N   segments of real table data to generate (default 64)
#   --skip-build   use target/release/lifeboat as it is
#
# It starts a throwaway PostgreSQL cluster (PGBIN, default
# /usr/lib/postgresql/15/bin) as the `postgres` user when run as root,
# writes N segments of rows with archive_mode on, and times how long the
# archiver takes to catch up: from the first segment's .ready to the last
# one's archiving. No timing goes into a pass/fail test; this prints a table.
set -euo pipefail

SEGMENTS=64
BUILD=1
while [ $# -gt 0 ]; do
  case "$1" in
    --segments) SEGMENTS="$2"; shift 2 ;;
    --skip-build) BUILD=0; shift ;;
    *) echo "unknown option $1" >&2; exit 64 ;;
  esac
done
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PGBIN="${PGBIN:-/usr/lib/postgresql/15/bin}"
if [ "$BUILD" = 1 ]; then
  (cd "$REPO" && cargo build --release -p backup-cli --quiet)
fi
LB="$REPO/target/release/lifeboat"
WORK="$(mktemp -d /tmp/lb-walbench.XXXXXX)"
chmod 755 "$WORK"
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
if [ "$(id -u)" = 0 ]; then chown postgres "$WORK"; fi
cleanup() { as_pg "$PGBIN/pg_ctl" -D "$WORK/data" -m immediate stop >/dev/null 2>&1 || true; rm -rf "$WORK"; }
trap cleanup EXIT

run_one() { # parallel
  local par="$1"
  as_pg rm -rf "$WORK/data" "$WORK/archive-$par" "$WORK/spool-$par"
  as_pg "$PGBIN/initdb" -D "$WORK/data" -U postgres --auth=trust --no-sync -E UTF8 --locale=C.UTF-8 >/dev/null
  local port=$((40000 + RANDOM % 20000))
  cat >> "$WORK/data/postgresql.conf" <<CONF
port = $port
listen_addresses = ''
unix_socket_directories = '$WORK'
wal_level = replica
archive_mode = on
archive_command = '$LB wal push %p --to file://$WORK/archive-$par --name bench --parallel $par --spool-dir $WORK/spool-$par'
max_wal_size = 4GB
fsync = on
CONF
  as_pg "$PGBIN/pg_ctl" -D "$WORK/data" -l "$WORK/log-$par" -w start >/dev/null
  local psql=("$PGBIN/psql" -h "$WORK" -p "$port" -U postgres -XAtq -d postgres)
  # Pause archiving while the WAL is written, so both runs archive the same
  # backlog from the same start: an archive_command that fails keeps .ready.
  as_pg "${psql[@]}" -c "ALTER SYSTEM SET archive_command = 'false'" -c "SELECT pg_reload_conf()" >/dev/null
  as_pg "${psql[@]}" -c "CREATE TABLE t (id bigint, body text)" >/dev/null
  # About 16 MiB of WAL per batch: rows of mixed, partly compressible text.
  for _ in $(seq 1 "$SEGMENTS"); do
    as_pg "${psql[@]}" -c "INSERT INTO t SELECT g, md5(g::text) || repeat(md5(random()::text), 3) FROM generate_series(1, 90000) g" >/dev/null
  done
  local last
  last=$(as_pg "${psql[@]}" -c "SELECT pg_walfile_name(pg_current_wal_insert_lsn())")
  as_pg "${psql[@]}" -c "SELECT pg_switch_wal()" >/dev/null
  local ready
  ready=$(ls "$WORK/data/pg_wal/archive_status" | grep -c '\.ready$' || true)
  local t0 t1
  t0=$(date +%s.%N)
  as_pg "${psql[@]}" -c "ALTER SYSTEM RESET archive_command" -c "SELECT pg_reload_conf()" >/dev/null
  while :; do
    local done_
    done_=$(as_pg "${psql[@]}" -c "SELECT coalesce(last_archived_wal >= '$last', false) FROM pg_stat_archiver")
    [ "$done_" = t ] && break
    sleep 0.05
  done
  t1=$(date +%s.%N)
  local secs bytes
  secs=$(python3 -c "print(f'{$t1 - $t0:.2f}')")
  bytes=$(du -sb "$WORK/archive-$par" | cut -f1)
  as_pg "$PGBIN/pg_ctl" -D "$WORK/data" -m fast stop >/dev/null
  echo "$par $ready $secs $bytes"
}

echo "==> $SEGMENTS batches of ~16 MiB WAL, archived into a local folder" >&2
r1=$(run_one 1)
r4=$(run_one 4)
python3 - "$r1" "$r4" <<'PY'
import sys
rows = [l.split() for l in sys.argv[1:]]
base = float(rows[0][2])
print("| wal push | segments | wall s | MiB/s (raw) | stored MiB | speed-up |")
print("| --- | ---: | ---: | ---: | ---: | ---: |")
for par, ready, secs, stored in rows:
    secs = float(secs); n = int(ready)
    print(f"| --parallel {par} | {n} | {secs:.2f} | {n * 16 / secs:.0f} | {int(stored) / 2**20:.1f} | {base / secs:.2f}x |")
PY
