// The Promise API against S3 (moto, started by scripts/test). Skipped with
// a message when LIFEBOAT_TEST_S3_ENDPOINT is unset, failed instead when
// LIFEBOAT_REQUIRE_SERVERS=1.

import assert from 'node:assert/strict';
import path from 'node:path';
import { test } from 'node:test';

import { backup, list, verify, restore, LifeboatError } from '../index.js';
import { countRows, createBucket, s3Endpoint, s3Keys, s3OpenUploads, sampleDb, sqliteUrl, tempDir, withEnv } from './helpers.mjs';

test('S3: backup, list, verify and restore round trip', async (t) => {
  const endpoint = s3Endpoint(t);
  if (!endpoint) return;
  // The Rust side reads the endpoint from the environment.
  withEnv(t, { AWS_ENDPOINT_URL: endpoint });
  const bucket = await createBucket(endpoint);
  const dir = tempDir(t);
  const db = sampleDb(path.join(dir, 'app.db'), 5_000);
  const sink = `s3://${bucket}/prod`;

  const out = await backup({ source: sqliteUrl(db), to: sink, lockDir: dir });
  const id = out.backups[0].manifest.backup_id;
  const keys = await s3Keys(endpoint, bucket);
  assert.ok(keys.some((k) => k.startsWith('prod/app/') && k.endsWith(`${id}/manifest.json`)), keys.join('\n'));

  const listed = await list({ from: sink });
  assert.deepEqual(listed.complete.map((m) => m.backup_id), [id]);
  assert.equal((await verify({ from: sink, id })).passed, true);

  const target = path.join(dir, 'restored.db');
  const r = await restore({ from: sink, latest: true, to: sqliteUrl(target), lockDir: dir });
  assert.equal(r.backup_id, id);
  assert.equal(countRows(target), 5_000);
});

test('S3: a missing bucket rejects with sink / 3', async (t) => {
  const endpoint = s3Endpoint(t);
  if (!endpoint) return;
  withEnv(t, { AWS_ENDPOINT_URL: endpoint });
  const dir = tempDir(t);
  const db = sampleDb(path.join(dir, 'app.db'), 100);
  await assert.rejects(backup({ source: sqliteUrl(db), to: 's3://no-such-bucket-lifeboat-node/x', lockDir: dir }), (e) => {
    assert.ok(e instanceof LifeboatError);
    assert.equal(e.code, 'sink', e.message);
    assert.equal(e.exitCode, 3);
    return true;
  });
});

test('S3: aborting mid-upload leaves no object and no open multipart upload', async (t) => {
  const endpoint = s3Endpoint(t);
  if (!endpoint) return;
  withEnv(t, { AWS_ENDPOINT_URL: endpoint });
  const bucket = await createBucket(endpoint, 'node-cancel');
  const dir = tempDir(t);
  // Incompressible rows: several 5 MiB parts, so a multipart upload is open
  // when the abort comes.
  const db = sampleDb(path.join(dir, 'big.db'), 300_000, { randomText: true });
  const ac = new AbortController();
  let uploaded = 0;
  let openAtAbort = null;
  const onProgress = (e) => {
    if (e.phase !== 'upload' || e.done) return;
    uploaded = e.bytes;
    if (uploaded > 20 * 1024 * 1024 && openAtAbort === null) {
      openAtAbort = [];
      // Abort once S3 holds an open multipart upload with parts in it.
      s3OpenUploads(endpoint, bucket).then((open) => {
        openAtAbort = open;
        ac.abort();
      });
    }
  };
  await assert.rejects(
    backup({ source: sqliteUrl(db), to: `s3://${bucket}/p`, lockDir: dir, threads: 1, signal: ac.signal, onProgress }),
    (e) => {
      assert.equal(e.code, 'cancelled', e.message);
      assert.equal(e.exitCode, 130);
      return true;
    },
  );
  assert.ok(ac.signal.aborted, `the backup finished before it could be aborted (${uploaded} bytes seen)`);
  assert.equal(openAtAbort.length, 1, 'a multipart upload was open when the abort came');
  assert.deepEqual(await s3Keys(endpoint, bucket), []);
  assert.deepEqual(await s3OpenUploads(endpoint, bucket), []);
  const listing = await list({ from: `s3://${bucket}/p` });
  assert.deepEqual([listing.complete, listing.incomplete], [[], []]);
});
