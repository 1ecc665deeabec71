#!/usr/bin/env node
// How much longer a backup takes through the Node binding than through the
// Rust API it wraps. Target: at most 5 % longer.
//
//   node benches/binding_overhead.mjs [--runs N] [--size-mb M] [--db PATH]
//
// Each round backs the same SQLite database (gen-sqlite, default 100 MiB) up
// to a fresh local folder four ways, in rotating order:
//   rust      backup_cli::api::backup in a Rust process (examples/rust_api_backup.rs),
//             timed in-process around the call;
//   node      backup() from this process, timed around the await;
//   node+cb   the same with an onProgress callback;
//   cli       target/release/lifeboat backup, wall time minus the median
//             start-up of `lifeboat --version`.
// One warm-up round is not counted. `vs_rust` compares medians of the wall
// times; `outside_job_ms` is the wall time minus the core's own duration_ms
// of the same backup, which isolates the binding's cost from the run-to-run
// noise of the backup itself. Needs the release addon (npm run build)
// and builds the Rust example and gen-sqlite (release) if missing.

import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const PKG_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const REPO = path.resolve(PKG_DIR, '..', '..');
const REL = path.join(REPO, 'target', 'release');

const args = process.argv.slice(2);
const opt = (name, def) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : def;
};
const runs = Number(opt('--runs', 5));
const sizeMb = Number(opt('--size-mb', 100));
const db = path.resolve(opt('--db', path.join(REPO, 'bench-data', `binding-${sizeMb}mb.db`)));

const log = (m) => console.error(`[binding_overhead] ${m}`);

function cargo(...a) {
  log(`cargo ${a.join(' ')}`);
  execFileSync('cargo', a, { cwd: REPO, stdio: 'inherit' });
}

if (!fs.existsSync(path.join(REL, 'lifeboat')) || !fs.existsSync(path.join(REL, 'gen-sqlite'))) {
  cargo('build', '--release', '-p', 'backup-cli', '-p', 'lifeboat-benches');
}
cargo('build', '--release', '-p', 'lifeboat-node', '--example', 'rust_api_backup');
const RUST_EXAMPLE = path.join(REL, 'examples', 'rust_api_backup');

if (!fs.existsSync(db)) {
  fs.mkdirSync(path.dirname(db), { recursive: true });
  log(`writing ${db} (${sizeMb} MiB)`);
  execFileSync(path.join(REL, 'gen-sqlite'), [db, '--size-mb', String(sizeMb)], { stdio: 'inherit' });
}

const { backup } = await import(path.join(PKG_DIR, 'index.js'));

const work = fs.mkdtempSync(path.join(os.tmpdir(), 'lifeboat-bench-'));
const lockDir = work;
let n = 0;
const freshSink = () => path.join(work, `sink-${n++}`);

async function nodeRun(withProgress) {
  const sink = freshSink();
  let events = 0;
  const t0 = performance.now();
  const out = await backup({
    source: `sqlite://${db}`,
    to: sink,
    lockDir,
    onProgress: withProgress ? () => events++ : undefined,
  });
  const ms = performance.now() - t0;
  fs.rmSync(sink, { recursive: true, force: true });
  return { ms, job: out.backups[0].duration_ms };
}

function rustRun() {
  const r = spawnSync(RUST_EXAMPLE, [db, work, '1'], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`rust_api_backup failed: ${r.stderr}`);
  const out = JSON.parse(r.stdout);
  return { ms: out.wall_ms[0], job: out.job_ms[0] };
}

function cliOnce(cliArgs) {
  const t0 = performance.now();
  const r = spawnSync(path.join(REL, 'lifeboat'), cliArgs, { encoding: 'utf8', env: { ...process.env, LIFEBOAT_LOCK_DIR: lockDir } });
  const ms = performance.now() - t0;
  if (r.status !== 0) throw new Error(`lifeboat ${cliArgs.join(' ')} failed: ${r.stderr}`);
  return { ms, stdout: r.stdout };
}

const startups = Array.from({ length: 7 }, () => cliOnce(['--version']).ms);
const startup = median(startups);

function cliRun() {
  const sink = freshSink();
  const { ms, stdout } = cliOnce(['backup', `sqlite://${db}`, '--to', sink, '--json']);
  fs.rmSync(sink, { recursive: true, force: true });
  return { ms: ms - startup, job: JSON.parse(stdout)[0].duration_ms };
}

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}
const mean = (xs) => xs.reduce((a, b) => a + b, 0) / xs.length;

const ways = {
  rust: rustRun,
  node: () => nodeRun(false),
  'node+cb': () => nodeRun(true),
  cli: cliRun,
};
const names = Object.keys(ways);
const results = Object.fromEntries(names.map((k) => [k, []]));

log(`${runs} rounds (+1 warm-up) of ${path.basename(db)} (${(fs.statSync(db).size / 2 ** 20).toFixed(0)} MiB), cli start-up ${startup.toFixed(1)} ms`);
for (let round = 0; round <= runs; round++) {
  // Rotate the order so no way always runs first (page cache, CPU clocks).
  const order = names.map((_, i) => names[(i + round) % names.length]);
  for (const w of order) {
    const r = await ways[w]();
    if (round > 0) results[w].push(r);
  }
  if (round > 0) log(`round ${round}: ${order.map((w) => `${w} ${results[w].at(-1).ms.toFixed(0)} ms`).join(', ')}`);
}
fs.rmSync(work, { recursive: true, force: true });

const base = median(results.rust.map((r) => r.ms));
const rows = names.map((w) => {
  const ms = results[w].map((r) => r.ms);
  const job = results[w].map((r) => r.job);
  return {
    way: w,
    median_ms: Math.round(median(ms)),
    mean_ms: Math.round(mean(ms)),
    min_ms: Math.round(Math.min(...ms)),
    max_ms: Math.round(Math.max(...ms)),
    job_median_ms: median(job),
    // Time outside the core's own timing of the job: runtime, options,
    // result conversion, promise settling (cli: process exit and printing).
    outside_job_ms: Math.round(median(results[w].map((r) => r.ms - r.job)) * 10) / 10,
    vs_rust: `${(((median(ms) - base) / base) * 100).toFixed(1)} %`,
  };
});
console.table(rows);
console.log(
  JSON.stringify({
    db: path.basename(db),
    db_bytes: fs.statSync(db).size,
    runs,
    cpus: os.cpus().length,
    node: process.version,
    cli_startup_ms: Math.round(startup * 10) / 10,
    results: rows,
  }),
);
