#!/usr/bin/env bash
# benches/sqlite_vs_seed.sh: a verified Lifeboat SQLite backup against the
# seed 002 pipeline, on the same generated database in the same run, to the
# local sink and to S3 (moto on loopback).
#
# Usage:
#   benches/sqlite_vs_seed.sh [--size-mb N] [--runs N] [--seed N]
#                             [--out FILE] [--no-write] [--only-baseline]
#                             [--skip-build] [--max-other PCT]
#
#   --size-mb N      size of the generated database in MiB (default 500)
#   --runs N         measured runs per pipeline and sink (default 3; the
#                    median wall time is reported)
#   --seed N         generator seed (default 42)
#   --out FILE       also write the markdown section to FILE
#   --no-write       do not update BENCHMARKS.md
#   --only-baseline  measure only the seed 002 pipeline (no lifeboat build or
#                    runs; BENCHMARKS.md is not updated)
#   --skip-build     use the binaries already in target/release
#   --max-other PCT  run a measurement again (up to 3 tries) when other
#                    processes took more than PCT% of the CPUs during it
#                    (default 10; the machine may be shared with builds).
#                    Before each measured run the script also waits, up to
#                    QUIET_WAIT seconds (default 300), for a quiet second.
#
# Environment: SIZE_MB, RUNS, SEED, MAX_OTHER, QUIET_WAIT give the defaults
# of the options above.
#
# Needs: cargo, sqlite3, gzip, /usr/bin/time (GNU time), curl, python3, and
# moto[server] + awscli (from .venv if present, else from PATH, else
# installed into .venv with pip). zstd, if present, is used once to check
# that Lifeboat's artifact decompresses to a sound database.
#
# The database is generated once into bench-data/ (gitignored) and reused.
# Every command is timed on its own under /usr/bin/time -v; the seed
# pipeline's wall time is the sum of its steps and its peak RSS the largest
# of its steps'. One unmeasured warm-up run of each pipeline comes first so
# that every measured run starts with the source in the page cache.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"

SIZE_MB="${SIZE_MB:-500}"
RUNS="${RUNS:-3}"
SEED="${SEED:-42}"
OUT_FILE=""
WRITE_MD=1
ONLY_BASELINE=0
SKIP_BUILD=0
MAX_OTHER="${MAX_OTHER:-10}"
MAX_TRIES=3
QUIET_WAIT="${QUIET_WAIT:-300}"
BENCH_MD="$REPO/BENCHMARKS.md"
SECTION_HEADING="## SQLite: lifeboat vs seed 002 pipeline"
BUCKET="lifeboat-bench"

usage() { sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; }
die() {
  echo "sqlite_vs_seed: error: $*" >&2
  exit 1
}
log() { echo "==> $*" >&2; }

need_value() { if [ $# -lt 2 ] || [ -z "$2" ]; then die "$1 needs a value"; fi; }
while [ $# -gt 0 ]; do
  case "$1" in
    --size-mb) need_value "$@"; SIZE_MB=$2; shift 2 ;;
    --runs) need_value "$@"; RUNS=$2; shift 2 ;;
    --seed) need_value "$@"; SEED=$2; shift 2 ;;
    --out) need_value "$@"; OUT_FILE=$2; shift 2 ;;
    --no-write) WRITE_MD=0; shift ;;
    --only-baseline) ONLY_BASELINE=1; WRITE_MD=0; shift ;;
    --skip-build) SKIP_BUILD=1; shift ;;
    --max-other) need_value "$@"; MAX_OTHER=$2; shift 2 ;;
    -h | --help) usage; exit 0 ;;
    *) echo "sqlite_vs_seed: unknown option '$1'" >&2; usage >&2; exit 2 ;;
  esac
done
for v in SIZE_MB RUNS SEED MAX_OTHER QUIET_WAIT; do
  [[ ${!v} =~ ^[0-9]+$ ]] || die "$v must be a whole number (got '${!v}')"
done
[ "$SIZE_MB" -ge 1 ] || die "--size-mb must be at least 1"
[ "$RUNS" -ge 1 ] || die "--runs must be at least 1"

for tool in cargo sqlite3 gzip curl python3; do
  command -v "$tool" >/dev/null 2>&1 || die "$tool not found"
done
[ -x /usr/bin/time ] || die "/usr/bin/time (GNU time) not found: apt-get install -y time"

LIFEBOAT="$REPO/target/release/lifeboat"
GEN="$REPO/target/release/gen-sqlite"
DATA_DIR="$REPO/bench-data"
DB="$DATA_DIR/app-${SIZE_MB}mb-seed${SEED}.db"
mkdir -p "$DATA_DIR"
WORK="$(mktemp -d "$DATA_DIR/run.XXXXXX")"
MOTO_PID=""

on_exit() {
  local rc=$?
  trap - EXIT
  if [ -n "$MOTO_PID" ]; then
    kill "$MOTO_PID" 2>/dev/null || true
    wait "$MOTO_PID" 2>/dev/null || true
  fi
  if [ "$rc" -eq 0 ]; then
    rm -rf "$WORK"
  else
    echo "sqlite_vs_seed: failed (exit $rc); logs kept in ${WORK#"$REPO"/}" >&2
    rm -rf "$WORK/sinks" "$WORK/tmp"
  fi
  exit "$rc"
}
trap on_exit EXIT
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 143' TERM

# ------------------------------------------------------------------ build ---
if [ "$SKIP_BUILD" = 0 ]; then
  if [ "$ONLY_BASELINE" = 1 ]; then
    log "cargo build --release -p lifeboat-benches"
    cargo build --release -p lifeboat-benches
  else
    log "cargo build --release -p backup-cli -p lifeboat-benches"
    cargo build --release -p backup-cli -p lifeboat-benches
  fi
fi
[ -x "$GEN" ] || die "$GEN missing (build without --skip-build)"
if [ "$ONLY_BASELINE" = 0 ]; then
  [ -x "$LIFEBOAT" ] || die "$LIFEBOAT missing (build without --skip-build)"
fi

# --------------------------------------------------------------- database ---
TARGET_BYTES=$((SIZE_MB * 1024 * 1024))
# Reuse the file if it has the size and no unfinished WAL (an empty -wal is
# what a reader that opened it read-only leaves behind).
if [ -f "$DB" ] && [ ! -s "$DB-wal" ] && [ "$(stat -c %s "$DB")" -ge "$TARGET_BYTES" ] &&
  sqlite3 "$DB" 'PRAGMA page_count' >/dev/null 2>&1; then
  log "reusing ${DB#"$REPO"/} ($(stat -c %s "$DB") bytes)"
else
  log "generating ${DB#"$REPO"/} (${SIZE_MB} MiB, seed $SEED)"
  "$GEN" "$DB" --size-mb "$SIZE_MB" --seed "$SEED" --force
fi
DB_BYTES=$(stat -c %s "$DB")
DB_ROWS=$(sqlite3 "$DB" "SELECT (SELECT count(*) FROM users) || ' users, ' ||
  (SELECT count(*) FROM orders) || ' orders, ' || (SELECT count(*) FROM events) || ' events'")

# ------------------------------------------------------------------- moto ---
if [ -x "$REPO/.venv/bin/moto_server" ] && [ -x "$REPO/.venv/bin/aws" ]; then
  MOTO="$REPO/.venv/bin/moto_server"
  AWS="$REPO/.venv/bin/aws"
elif command -v moto_server >/dev/null 2>&1 && command -v aws >/dev/null 2>&1 &&
  python3 -c 'import moto.server, flask, flask_cors' >/dev/null 2>&1; then
  MOTO="$(command -v moto_server)"
  AWS="$(command -v aws)"
  # A pyenv shim costs a bash + pyenv start on every call: time the real aws.
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

MOTO_PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
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
# Busy CPU ticks of the whole machine, and of moto (whose work is part of an
# S3 pipeline's cost); their difference over a command, less the command's
# own CPU time, is what other processes took meanwhile.
HZ=$(getconf CLK_TCK)
NCPU=$(nproc)
machine_ticks() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9 }' /proc/stat; }
moto_ticks() {
  if [ -n "$MOTO_PID" ] && [ -r "/proc/$MOTO_PID/stat" ]; then
    sed 's/^.*) //' "/proc/$MOTO_PID/stat" | awk '{ print $12 + $13 }'
  else
    echo 0
  fi
}

# measure OUT CMD...: run CMD with stdout to OUT under /usr/bin/time -v; sets
# M_WALL (seconds), M_RSS (KiB) and M_OTHER (CPU seconds other processes
# used meanwhile). Its stderr is left in $WORK/cmd.err and appended to
# $WORK/stderr.log.
M_WALL=0
M_RSS=0
M_OTHER=0
measure() {
  local out=$1 tf="$WORK/time.out" b0 m0 b1 m1
  shift
  echo "+ $*" >>"$WORK/stderr.log"
  b0=$(machine_ticks)
  m0=$(moto_ticks)
  if ! /usr/bin/time -v -o "$tf" "$@" >"$out" 2>"$WORK/cmd.err"; then
    cat "$WORK/cmd.err" >>"$WORK/stderr.log"
    echo "sqlite_vs_seed: command failed: $*" >&2
    echo "--- last lines of its stderr ---" >&2
    tail -n 20 "$WORK/cmd.err" >&2
    exit 1
  fi
  cat "$WORK/cmd.err" >>"$WORK/stderr.log"
  M_WALL=$(awk -F': ' '/Elapsed \(wall clock\) time/ {
      n = split($2, p, ":"); s = 0; for (i = 1; i <= n; i++) s = s * 60 + p[i]; print s }' "$tf")
  b1=$(machine_ticks)
  m1=$(moto_ticks)
  M_RSS=$(awk -F': ' '/Maximum resident set size/ { print $2 }' "$tf")
  if [ -z "$M_WALL" ] || [ -z "$M_RSS" ]; then die "could not parse $tf"; fi
  M_OTHER=$(awk -F': ' -v busy=$((b1 - b0 - (m1 - m0))) -v hz="$HZ" '
    /User time \(seconds\)|System time \(seconds\)/ { own += $2 }
    END { o = busy / hz - own; if (o < 0) o = 0; printf "%.2f", o }' "$tf")
}

# Results of the last pipeline run: P_WALL (s), P_RSS (KiB), P_SIZE (bytes),
# P_OTHER (CPU s used by other processes), P_STEPS ("name=seconds ...").
P_WALL=0
P_RSS=0
P_SIZE=0
P_OTHER=0
P_STEPS=""
step() { # step NAME OUT CMD...
  local name=$1
  shift
  measure "$@"
  P_WALL=$(awk -v a="$P_WALL" -v b="$M_WALL" 'BEGIN { printf "%.2f", a + b }')
  P_OTHER=$(awk -v a="$P_OTHER" -v b="$M_OTHER" 'BEGIN { printf "%.2f", a + b }')
  [ "$M_RSS" -gt "$P_RSS" ] && P_RSS=$M_RSS
  P_STEPS+="$name=$M_WALL "
}
reset_result() {
  P_WALL=0
  P_RSS=0
  P_SIZE=0
  P_OTHER=0
  P_STEPS=""
}

# s3_object_size PREFIX PATTERN: size of the one object under PREFIX whose key
# matches the extended regex PATTERN.
s3_object_size() {
  local listing
  listing=$("$AWS" --endpoint-url "$EP" s3 ls --recursive "s3://$BUCKET/$1/" | awk -v re="$2" '$4 ~ re')
  [ "$(printf '%s\n' "$listing" | grep -c .)" = 1 ] ||
    die "expected one object matching $2 under s3://$BUCKET/$1/, found: ${listing:-none}"
  printf '%s\n' "$listing" | awk '{ print $3 }'
}

# The seed 002 pipeline: sqlite3 .backup -> PRAGMA integrity_check -> gzip ->
# upload with the AWS CLI (S3) or mv into a backup directory (local).
seed_pipeline() { # seed_pipeline SINK TAG
  local sink=$1 tag=$2 tmp="$WORK/tmp/seed-$2"
  reset_result
  mkdir -p "$tmp"
  step backup /dev/null sqlite3 "$DB" ".backup '$tmp/out.db'"
  step integrity_check "$tmp/check.out" sqlite3 "$tmp/out.db" "PRAGMA integrity_check"
  [ "$(cat "$tmp/check.out")" = ok ] || die "seed integrity_check said: $(head -c 500 "$tmp/check.out")"
  step gzip "$tmp/out.db.gz" gzip -c "$tmp/out.db"
  case "$sink" in
    local)
      local dest="$WORK/sinks/seed/$tag"
      mkdir -p "$dest"
      step mv /dev/null mv "$tmp/out.db.gz" "$dest/out.db.gz"
      P_SIZE=$(stat -c %s "$dest/out.db.gz")
      rm -rf "$dest"
      ;;
    s3)
      step upload /dev/null "$AWS" --endpoint-url "$EP" s3 cp --only-show-errors \
        "$tmp/out.db.gz" "s3://$BUCKET/seed/$tag/out.db.gz"
      P_SIZE=$(s3_object_size "seed/$tag" 'out\.db\.gz$')
      "$AWS" --endpoint-url "$EP" s3 rm --recursive --only-show-errors "s3://$BUCKET/seed/$tag/"
      ;;
  esac
  rm -rf "$tmp"
}

# ---- The two Lifeboat invocations: adjust here if the CLI changes. ----
# Each fills LB_CMD with the command to time; the backup goes to $1.
# (--json prints the manifest on stdout: only used for the phase breakdown.)
lifeboat_local_cmd() { # DIR
  LB_CMD=("$LIFEBOAT" backup "sqlite://$DB" --to "file://$1" --log-format json --json)
}
lifeboat_s3_cmd() { # PREFIX (inside the bucket)
  LB_CMD=(env AWS_ENDPOINT_URL="$EP" AWS_ALLOW_HTTP=true
    "$LIFEBOAT" backup "sqlite://$DB" --to "s3://$BUCKET/$1" --log-format json --json)
}

# lifeboat_phases MANIFEST LOG: "name=seconds ..." for the snapshot (from the
# JSON log) and each verifier (from the manifest); empty if neither parses.
lifeboat_phases() {
  python3 - "$1" "$2" <<'PY' 2>/dev/null || true
import json, sys
out = []
for line in open(sys.argv[2]):
    try:
        rec = json.loads(line)
    except ValueError:
        continue
    if str(rec.get("message", "")).startswith("snapshot") and "ms" in rec:
        out.append("snapshot=%.2f" % (rec["ms"] / 1000))
try:
    doc = json.load(open(sys.argv[1]))
    # --json has printed the manifest itself, and a list of {"manifest": ...}.
    if isinstance(doc, list):
        doc = doc[0]
    manifest = doc.get("manifest", doc)
    for v in manifest.get("verdicts", []):
        out.append("%s=%.2f" % (v["verifier"], v.get("duration_ms", 0) / 1000))
except (ValueError, KeyError, TypeError, IndexError, AttributeError):
    pass
print(" ".join(out))
PY
}

ZSTD_CHECKED=0
lifeboat_pipeline() { # lifeboat_pipeline SINK TAG
  local sink=$1 tag=$2 LB_CMD=()
  reset_result
  case "$sink" in
    local)
      local dest="$WORK/sinks/lifeboat/$tag" data
      mkdir -p "$dest"
      lifeboat_local_cmd "$dest"
      step lifeboat "$WORK/lifeboat-$sink-$tag.stdout" "${LB_CMD[@]}"
      P_STEPS+="$(lifeboat_phases "$WORK/lifeboat-$sink-$tag.stdout" "$WORK/cmd.err") "
      mapfile -t data < <(find "$dest" -type f -name 'data.*.zst')
      [ "${#data[@]}" = 1 ] || die "expected one data.*.zst under $dest, found ${#data[@]}: $(find "$dest" -type f)"
      [ -n "$(find "$dest" -type f -name manifest.json)" ] || die "no manifest.json under $dest"
      P_SIZE=$(du -b "${data[0]}" | cut -f1)
      if [ "$ZSTD_CHECKED" = 0 ] && command -v zstd >/dev/null 2>&1; then
        # Not timed: the artifact must be the database, whole.
        zstd -q -dc "${data[0]}" >"$WORK/tmp/restored.db"
        [ "$(sqlite3 "$WORK/tmp/restored.db" 'PRAGMA quick_check')" = ok ] ||
          die "lifeboat's artifact does not decompress to a sound database"
        [ "$(sqlite3 "$WORK/tmp/restored.db" 'SELECT count(*) FROM events')" = \
          "$(sqlite3 "$DB" 'SELECT count(*) FROM events')" ] ||
          die "lifeboat's artifact has a different events count"
        rm -f "$WORK/tmp/restored.db"*
        ZSTD_CHECKED=1
      fi
      rm -rf "$dest"
      ;;
    s3)
      lifeboat_s3_cmd "lifeboat/$tag"
      step lifeboat "$WORK/lifeboat-$sink-$tag.stdout" "${LB_CMD[@]}"
      P_STEPS+="$(lifeboat_phases "$WORK/lifeboat-$sink-$tag.stdout" "$WORK/cmd.err") "
      P_SIZE=$(s3_object_size "lifeboat/$tag" '/data\.[^/]*\.zst$')
      "$AWS" --endpoint-url "$EP" s3 rm --recursive --only-show-errors "s3://$BUCKET/lifeboat/$tag/"
      ;;
  esac
}

# ------------------------------------------------------------------- runs ---
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
declare -A WALLS RSSES SIZES STEPS OTHERS
RETRIES=0
FLAGGED=()
# other_share CPU_S WALL_S: CPU seconds as a percentage of the machine's
# capacity over WALL_S.
# wait_quiet: wait (up to QUIET_WAIT s) for a second in which other processes
# use at most MAX_OTHER% of the CPUs.
wait_quiet() {
  local waited=0 b0 b1 m0 m1 share
  while :; do
    b0=$(machine_ticks)
    m0=$(moto_ticks)
    sleep 1
    b1=$(machine_ticks)
    m1=$(moto_ticks)
    share=$(awk -v b=$((b1 - b0 - (m1 - m0))) -v hz="$HZ" -v n="$NCPU" 'BEGIN { printf "%.1f", 100 * b / hz / n }')
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
PIPELINES=(seed)
[ "$ONLY_BASELINE" = 0 ] && PIPELINES+=(lifeboat)
SINKS=(local s3)
mkdir -p "$WORK/tmp" "$WORK/sinks"

for sink in "${SINKS[@]}"; do
  for p in "${PIPELINES[@]}"; do
    log "$p -> $sink: warm-up run"
    "${p}_pipeline" "$sink" warmup
  done
  for run in $(seq 1 "$RUNS"); do
    for p in "${PIPELINES[@]}"; do
      for try in $(seq 1 "$MAX_TRIES"); do
        wait_quiet
        "${p}_pipeline" "$sink" "run$run"
        share=$(other_share "$P_OTHER" "$P_WALL")
        log "$p -> $sink: run $run/$RUNS: ${P_WALL} s, peak RSS $((P_RSS / 1024)) MiB, output $P_SIZE bytes, other processes ${share}% of the CPUs${P_STEPS:+ ($P_STEPS)}"
        awk -v s="$share" -v m="$MAX_OTHER" 'BEGIN { exit !(s <= m) }' && break
        if [ "$try" -lt "$MAX_TRIES" ]; then
          log "  other processes took more than ${MAX_OTHER}% of the CPUs: running it again"
          RETRIES=$((RETRIES + 1))
        else
          log "  still busy after $MAX_TRIES tries: keeping this run (flagged in the report)"
          FLAGGED+=("$p -> $sink run $run: other processes took ${share}% of the CPUs")
        fi
      done
      OTHERS[$p,$sink]+="$share "
      WALLS[$p,$sink]+="$P_WALL "
      RSSES[$p,$sink]+="$P_RSS "
      SIZES[$p,$sink]+="$P_SIZE "
      STEPS[$p,$sink]+="$P_STEPS"$'\n'
    done
  done
done

# ----------------------------------------------------------------- report ---
median() { tr ' ' '\n' | grep . | sort -g | awk '{ v[NR] = $1 } END {
  if (NR % 2) print v[(NR + 1) / 2]; else printf "%.3f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
maximum() { tr ' ' '\n' | grep . | sort -g | tail -n 1; }
mib() { awk -v b="$1" 'BEGIN { printf "%.1f", b / 1048576 }'; }
div() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }

LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)
cpu_model=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
[ -n "$cpu_model" ] || cpu_model=$(uname -m)
mem_total=$(awk '/^MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)
moto_version=$("$(dirname "$MOTO")/python" -c 'import moto; print(moto.__version__)' 2>/dev/null ||
  python3 -c 'import moto; print(moto.__version__)' 2>/dev/null || echo unknown)
lifeboat_version="n/a"
if [ "$ONLY_BASELINE" = 0 ]; then
  lifeboat_version=$("$LIFEBOAT" --version 2>/dev/null | head -n 1 || echo unknown)
fi
if git_rev=$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null); then
  git_rev="commit $git_rev"
  if ! git -C "$REPO" diff --quiet HEAD -- backup-core backup-cli Cargo.lock 2>/dev/null; then
    git_rev+=" with uncommitted changes to backup-core/backup-cli/Cargo.lock"
  fi
else
  git_rev="an uncommitted tree"
fi

SECTION="$WORK/section.md"
{
  echo "$SECTION_HEADING"
  echo
  echo "Reproduce: \`benches/sqlite_vs_seed.sh --size-mb $SIZE_MB\`$([ "$RUNS" = 3 ] || echo " (with \`--runs $RUNS\`)")"
  echo
  echo "Run $(date -u +%Y-%m-%dT%H:%MZ) at $git_rev. Database: \`gen-sqlite --size-mb $SIZE_MB --seed $SEED\`,"
  echo "$DB_BYTES bytes ($(mib "$DB_BYTES") MiB; $DB_ROWS; JSON text columns, 7 indexes; WAL mode)."
  echo
  echo "| pipeline | sink | wall s | peak RSS MiB | output MiB | time ratio seed/lifeboat |"
  echo "| --- | --- | ---: | ---: | ---: | ---: |"
  for sink in "${SINKS[@]}"; do
    seed_wall=$(median <<<"${WALLS[seed,$sink]}")
    for p in "${PIPELINES[@]}"; do
      wall=$(median <<<"${WALLS[$p,$sink]}")
      rss=$(maximum <<<"${RSSES[$p,$sink]}")
      size=$(median <<<"${SIZES[$p,$sink]}")
      label="seed 002 (sqlite3 .backup, integrity_check, gzip, $([ "$sink" = s3 ] && echo "aws s3 cp" || echo mv))"
      ratio="1.00"
      if [ "$p" = lifeboat ]; then
        label="lifeboat (verified)"
        ratio="**$(div "$seed_wall" "$wall")×**"
      fi
      printf '| %s | %s | %.2f | %s | %s | %s |\n' "$label" "$sink" "$wall" "$(mib $((rss * 1024)))" "$(mib "$size")" "$ratio"
    done
  done
  echo
  if [ "$ONLY_BASELINE" = 0 ]; then
    echo "| sink | output size lifeboat/gzip | lifeboat ≥ 3× faster | output ≤ gzip | lifeboat peak RSS < 100 MB |"
    echo "| --- | ---: | :---: | :---: | :---: |"
    for sink in "${SINKS[@]}"; do
      lw=$(median <<<"${WALLS[lifeboat,$sink]}")
      sw=$(median <<<"${WALLS[seed,$sink]}")
      ls_=$(median <<<"${SIZES[lifeboat,$sink]}")
      ss=$(median <<<"${SIZES[seed,$sink]}")
      lr=$(maximum <<<"${RSSES[lifeboat,$sink]}")
      speed=$(awk -v s="$sw" -v l="$lw" 'BEGIN { print (s >= 3 * l) ? "yes" : "**no**" }')
      smaller=$(awk -v a="$ls_" -v b="$ss" 'BEGIN { print (a <= b) ? "yes" : "**no**" }')
      mem=$(awk -v k="$lr" 'BEGIN { print (k * 1024 < 100000000) ? "yes" : "**no**" }')
      echo "| $sink | $(div "$ls_" "$ss") | $speed | $smaller | $mem |"
    done
    echo
  fi
  echo "Where the time goes (median s of the measured runs; the seed's steps run one after another,"
  echo "Lifeboat's phases come from its JSON log and manifest and overlap each other):"
  echo
  for p in "${PIPELINES[@]}"; do
    for sink in "${SINKS[@]}"; do
      names=$(printf '%s' "${STEPS[$p,$sink]}" | head -n 1 | tr ' ' '\n' | cut -d= -f1 | grep .)
      line="- $p -> $sink:"
      for n in $names; do
        m=$(printf '%s' "${STEPS[$p,$sink]}" | tr ' ' '\n' | grep "^$n=" | cut -d= -f2 | tr '\n' ' ' | median)
        line+=" $n $(printf '%.2f' "$m"),"
      done
      echo "${line%,}"
    done
  done
  echo
  echo "Method:"
  echo
  echo "- Each pipeline ran once unmeasured (warm-up, so that every measured run starts with the"
  echo "  source database in the page cache; dropping the cache needs privileges we don't assume),"
  echo "  then $RUNS measured time(s)$([ "$ONLY_BASELINE" = 1 ] || echo ", seed and lifeboat alternating"). *wall s* is the median of the"
  echo "  measured runs; *peak RSS* the largest of them; *output* the stored object's size (MiB = 2^20 bytes)."
  echo "- Every command runs alone under \`/usr/bin/time -v\` (\"Elapsed (wall clock)\", \"Maximum resident"
  echo "  set size\"). The seed pipeline is timed step by step: its wall time is the sum of its steps'"
  echo "  and its peak RSS the largest step's (the steps run one after another, never together)."
  echo "- Seed 002: \`sqlite3 src.db \".backup out.db\"\`, \`sqlite3 out.db \"PRAGMA integrity_check\"\`"
  echo "  (must print \`ok\`), \`gzip -c out.db > out.db.gz\` (level 6), then \`aws --endpoint-url \$EP s3 cp\`"
  echo "  (S3) or \`mv\` into a backup directory on the same filesystem (local; no fsync)."
  echo "- Lifeboat: \`lifeboat backup sqlite://\$DB --to file://\$DIR\` and"
  echo "  \`AWS_ENDPOINT_URL=\$EP lifeboat backup sqlite://\$DB --to s3://$BUCKET/lifeboat\`"
  echo "  (\`--log-format json --json\`): consistent snapshot, \`PRAGMA integrity_check\`, zstd, SHA-256, upload"
  echo "  (fsync + rename for the local sink), checksum read-back, manifest. Output size: the"
  echo "  \`data.*.zst\` object (\`du -b\` locally, \`aws s3 ls\` on S3)."
  echo "- S3 is moto $moto_version on 127.0.0.1 on the same machine, so upload cost is loopback + moto's"
  echo "  CPU, which competes with the pipeline for the $(nproc) cores."
  echo "- Other processes on the machine: CPU time that neither the measured command nor moto used,"
  echo "  from /proc/stat, as a share of the $NCPU cores over the run. Each measured run waited for a quiet"
  echo "  second first (up to $QUIET_WAIT s), and a run where other processes passed ${MAX_OTHER}%"
  worst=""
  for sink in "${SINKS[@]}"; do
    for p in "${PIPELINES[@]}"; do
      worst+="$p -> $sink $(maximum <<<"${OTHERS[$p,$sink]}")%, "
    done
  done
  echo "  was run again (up to $MAX_TRIES tries; $RETRIES re-run(s) this time). Worst accepted run:"
  echo "  ${worst%, }."
  if [ "${#FLAGGED[@]}" -gt 0 ]; then
    flagged=$(printf '%s; ' "${FLAGGED[@]}")
    echo "  **Kept although busy** (after $MAX_TRIES tries): ${flagged%; }."
  fi
  echo "  Load average (1/5/15 min) before the runs: $LOAD_BEFORE; after: $LOAD_AFTER."
  echo
  echo "Machine: $(nproc) cores, $cpu_model, $mem_total RAM, Linux $(uname -r);"
  echo "$(sqlite3 --version | cut -d' ' -f1,2 | sed 's/^/sqlite3 /'), $(gzip --version | head -n 1),"
  echo "$("$AWS" --version 2>&1 | cut -d' ' -f1), lifeboat: $lifeboat_version."
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
