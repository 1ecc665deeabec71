// The Node process exits by itself when the work is done: the addon leaves
// no handle (progress callback, runtime, signal listener) keeping it alive.

import assert from 'node:assert/strict';
import path from 'node:path';
import { test } from 'node:test';

import { allFiles, PKG_DIR, run, sampleDb, tempDir } from './helpers.mjs';

const fixture = (name) => path.join(PKG_DIR, 'test', 'fixtures', name);

test('a process that ran a backup exits by itself', async (t) => {
  const dir = tempDir(t);
  const db = sampleDb(path.join(dir, 'app.db'), 5_000);
  const r = await run(process.execPath, [fixture('backup-and-exit.mjs'), db, path.join(dir, 'b'), dir], { timeoutMs: 60_000 });
  assert.equal(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout);
  assert.match(out.id, /^\d{8}T\d{6}Z-/);
  assert.ok(out.events > 0, r.stdout);
});

test('a process whose backup failed exits by itself with its code', async (t) => {
  const dir = tempDir(t);
  const r = await run(process.execPath, [fixture('fail-and-exit.mjs'), dir], { timeoutMs: 60_000 });
  assert.equal(r.code, 2, r.stderr);
  assert.deepEqual(JSON.parse(r.stdout), { code: 'source', exitCode: 2 });
});

test('a process that aborted a backup exits by itself', async (t) => {
  const dir = tempDir(t);
  const db = sampleDb(path.join(dir, 'big.db'), 100_000, { randomText: true });
  const sink = path.join(dir, 'b');
  const r = await run(process.execPath, [fixture('abort-and-exit.mjs'), db, sink, dir], { timeoutMs: 60_000 });
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(JSON.parse(r.stdout), { code: 'cancelled' });
  assert.deepEqual(allFiles(sink), []);
});
