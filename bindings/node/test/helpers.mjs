// Shared fixtures for the node --test suites: temp dirs, SQLite databases
// written with the sqlite3 command line, the S3 test server (moto), the
// workspace's Rust binary.

import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const PKG_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const REPO = path.resolve(PKG_DIR, '..', '..');
export const BIN_JS = path.join(PKG_DIR, 'bin', 'lifeboat.js');

/** A fresh directory, removed when the test (`t`) ends. */
export function tempDir(t, prefix = 'lifeboat-node-') {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/**
 * A WAL-mode SQLite database shaped like the Rust tests' sample: `items`
 * with `rows` rows and `notes` with a tenth as many. With `randomText`, rows
 * carry incompressible text so the backup takes a while.
 */
export function sampleDb(file, rows, { randomText = false } = {}) {
  const name = randomText ? "'item ' || hex(randomblob(48))" : "'item number ' || (x - 1)";
  const sql = `
PRAGMA journal_mode = wal;
CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL, price_cents INTEGER, tags TEXT, created_at TEXT);
CREATE INDEX items_name ON items(name);
CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT);
BEGIN;
WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < ${rows})
INSERT INTO items (name, price_cents, tags, created_at)
  SELECT ${name}, (x - 1) * 37 % 10000, '{"colour":"c' || ((x - 1) % 7) || '","size":' || ((x - 1) % 13) || '}',
         printf('2026-11-%02dT03:00:00Z', 1 + (x - 1) % 28) FROM c;
WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < ${Math.floor(rows / 10)})
INSERT INTO notes (body) SELECT 'note ' || (x - 1) || ': the quick brown fox jumps over the lazy dog' FROM c;
COMMIT;
PRAGMA wal_checkpoint(TRUNCATE);
`;
  try {
    execFileSync('sqlite3', [file], { input: sql, stdio: ['pipe', 'ignore', 'pipe'] });
  } catch (e) {
    if (e.code === 'ENOENT') {
      throw new Error('the sqlite3 command line is needed to write test databases (apt-get install sqlite3)');
    }
    throw e;
  }
  return file;
}

/** Row count of `table` in the database at `file`. */
export function countRows(file, table = 'items') {
  return Number(execFileSync('sqlite3', [file, `SELECT count(*) FROM ${table};`]).toString().trim());
}

/** Every file under `dir` (relative paths), or [] if it does not exist. */
export function allFiles(dir) {
  if (!fs.existsSync(dir)) return [];
  return fs
    .readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((d) => d.isFile())
    .map((d) => path.relative(dir, path.join(d.parentPath ?? d.path, d.name)))
    .sort();
}

/**
 * The S3 test server, or null when there is none (the test is skipped with
 * a message), or a failure when LIFEBOAT_REQUIRE_SERVERS=1.
 */
export function s3Endpoint(t) {
  const ep = process.env.LIFEBOAT_TEST_S3_ENDPOINT;
  if (ep) return ep.replace(/\/$/, '');
  if (process.env.LIFEBOAT_REQUIRE_SERVERS === '1') {
    throw new Error('LIFEBOAT_REQUIRE_SERVERS=1 but LIFEBOAT_TEST_S3_ENDPOINT is not set (run scripts/test)');
  }
  t.skip('LIFEBOAT_TEST_S3_ENDPOINT is not set: no S3 test server (scripts/test starts moto)');
  return null;
}

/** Create a uniquely named bucket on the S3 test server. */
export async function createBucket(endpoint, prefix = 'node') {
  const bucket = `${prefix}-${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`;
  const res = await fetch(`${endpoint}/${bucket}`, { method: 'PUT' });
  if (!res.ok) throw new Error(`creating bucket ${bucket}: HTTP ${res.status} ${await res.text()}`);
  return bucket;
}

/** Keys in `bucket` (ListObjectsV2, first page). */
export async function s3Keys(endpoint, bucket) {
  const res = await fetch(`${endpoint}/${bucket}?list-type=2`);
  if (!res.ok) throw new Error(`listing ${bucket}: HTTP ${res.status}`);
  const xml = await res.text();
  return [...xml.matchAll(/<Key>([^<]*)<\/Key>/g)].map((m) => m[1]);
}

/** Multipart uploads still open in `bucket`. */
export async function s3OpenUploads(endpoint, bucket) {
  const res = await fetch(`${endpoint}/${bucket}?uploads`);
  if (!res.ok) throw new Error(`listing uploads in ${bucket}: HTTP ${res.status}`);
  const xml = await res.text();
  return [...xml.matchAll(/<UploadId>([^<]*)<\/UploadId>/g)].map((m) => m[1]);
}

/** Set environment variables for the duration of the test. */
export function withEnv(t, vars) {
  const saved = {};
  for (const [k, v] of Object.entries(vars)) {
    saved[k] = process.env[k];
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
  t.after(() => {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  });
}

/** The environment child `lifeboat` processes run with: no inherited config. */
export function childEnv(extra = {}) {
  const env = { ...process.env, ...extra };
  for (const k of ['LIFEBOAT_CONFIG', 'LIFEBOAT_PROFILE', 'LIFEBOAT_LOG_FORMAT', 'LIFEBOAT_LOG']) {
    if (!(k in extra)) delete env[k];
  }
  return env;
}

/**
 * Run a command to completion: `{code, signal, stdout, stderr, ms}`. Killed
 * (and reported) after `timeoutMs`.
 */
export function run(cmd, args, { cwd, env, timeoutMs = 120_000, onSpawn } = {}) {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const child = spawn(cmd, args, { cwd, env: env ?? childEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${cmd} ${args.join(' ')} did not exit within ${timeoutMs} ms\nstdout: ${stdout}\nstderr: ${stderr}`));
    }, timeoutMs);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr, ms: performance.now() - started });
    });
    if (onSpawn) onSpawn(child);
  });
}

export const sqliteUrl = (file) => `sqlite://${file}`;
export const fileUrl = (dir) => `file://${dir}`;
