// Retention and health through the Promise API: the same operations and
// results as `lifeboat prune` and `lifeboat status`.

import assert from 'node:assert/strict';
import path from 'node:path';
import { test } from 'node:test';

import { backup, doctor, list, mirror, prune, status, LifeboatError } from '../index.js';
import { fileUrl, sampleDb, sqliteUrl, tempDir } from './helpers.mjs';

async function threeBackups(t) {
  const dir = tempDir(t);
  const db = sampleDb(path.join(dir, 'app.db'), 500);
  const sink = fileUrl(path.join(dir, 'backups'));
  const ids = [];
  for (let i = 0; i < 3; i++) {
    const out = await backup({ source: sqliteUrl(db), to: sink, lockDir: dir });
    ids.push(out.backups[0].manifest.backup_id);
    await new Promise((r) => setTimeout(r, 1100)); // distinct second-resolution ids
  }
  return { dir, sink, ids };
}

test('prune keeps what the rules say, dry run first', async (t) => {
  const { sink, ids } = await threeBackups(t);
  const dry = await prune({ from: sink, keepLast: 1, dryRun: true });
  assert.equal(dry.dry_run, true);
  assert.deepEqual(dry.deleted, []);
  const going = dry.decisions.filter((d) => !d.keep).map((d) => d.backup_id).sort();
  assert.deepEqual(going, ids.slice(0, 2).sort());
  assert.ok(dry.decisions.find((d) => d.keep).reasons.some((r) => r.startsWith('keep_last 1')));
  const done = await prune({ from: sink, keepLast: 1 });
  assert.deepEqual(done.deleted.sort(), ids.slice(0, 2).sort());
  await assert.rejects(prune({ from: sink }), (e) => e instanceof LifeboatError && e.code === 'usage');
});

test('status reports health without rejecting, and thresholds apply', async (t) => {
  const { sink, ids } = await threeBackups(t);
  const fresh = await status({ from: sink });
  assert.equal(fresh.length, 1);
  assert.equal(fresh[0].healthy, true);
  assert.equal(fresh[0].newest.backup_id, ids[2]);
  assert.equal(fresh[0].backups, 3);
  const strict = await status({ from: sink, maxAge: 0 });
  assert.equal(strict[0].healthy, false);
  assert.match(strict[0].problems.join(' '), /old/);
});

test('mirror copies what the other sink lacks, and doctor checks it', async (t) => {
  const { dir, sink, ids } = await threeBackups(t);
  const other = fileUrl(path.join(dir, 'copy'));
  const dry = await mirror({ from: sink, to: other, dryRun: true });
  assert.deepEqual(dry.backups.sort(), [...ids].sort());
  const done = await mirror({ from: sink, to: other });
  assert.deepEqual(done.backups.sort(), [...ids].sort());
  assert.equal((await list({ from: other })).complete.length, 3);
  const again = await mirror({ from: sink, to: other });
  assert.equal(again.backups_present, 3);
  const [report] = await doctor({ from: other });
  assert.deepEqual(report.problems, []);
  assert.ok(report.checks.some((c) => c.name === 'credentials' && c.ok));
});
