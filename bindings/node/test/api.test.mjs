// The Promise API on a local folder: the round trip, every failure path
// rejecting with the CLI's code and exit code, progress, cancellation.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';

import { backup, list, verify, restore, LifeboatError, EXIT_CODES } from '../index.js';
import { allFiles, countRows, fileUrl, sampleDb, sqliteUrl, tempDir } from './helpers.mjs';

/** Assert that `promise` rejects with a LifeboatError of `code`/`exitCode`. */
async function rejectsWith(promise, code, exitCode, messagePart) {
  await assert.rejects(promise, (e) => {
    assert.ok(e instanceof LifeboatError, `not a LifeboatError: ${e && e.stack}`);
    assert.ok(e instanceof Error);
    assert.equal(e.name, 'LifeboatError');
    assert.equal(e.code, code, e.message);
    assert.equal(e.exitCode, exitCode, e.message);
    assert.equal(EXIT_CODES[code], exitCode);
    if (messagePart) assert.match(e.message, messagePart);
    return true;
  });
}

/** A database with `rows` rows and one backup of it in `<dir>/backups`. */
async function backedUp(t, rows = 2_000) {
  const dir = tempDir(t);
  const db = sampleDb(path.join(dir, 'app.db'), rows);
  const sink = fileUrl(path.join(dir, 'backups'));
  const out = await backup({ source: sqliteUrl(db), to: sink, lockDir: dir });
  return { dir, db, sink, id: out.backups[0].manifest.backup_id, out };
}

test('backup, list, verify and restore round trip on a local folder', async (t) => {
  const dir = tempDir(t);
  const db = sampleDb(path.join(dir, 'app.db'), 2_000);
  const sink = fileUrl(path.join(dir, 'backups'));

  const out = await backup({
    source: sqliteUrl(db),
    to: sink,
    minSize: '1 KiB',
    level: 3,
    lockDir: dir,
    tempDir: dir,
  });
  assert.equal(out.backups.length, 1);
  const { manifest, location, duration_ms: ms } = out.backups[0];
  assert.equal(manifest.source.name, 'app');
  assert.match(manifest.backup_id, /^\d{8}T\d{6}Z-/);
  assert.ok(location.startsWith(sink), location);
  assert.ok(Number.isInteger(ms) && ms >= 0);
  assert.ok(manifest.verdicts.length >= 3 && manifest.verdicts.every((v) => v.passed), JSON.stringify(manifest.verdicts));
  const items = manifest.fingerprint.tables.find((x) => x.name === 'items');
  assert.equal(items.rows, 2_000);

  const listed = await list({ from: sink });
  assert.deepEqual(
    listed.complete.map((m) => m.backup_id),
    [manifest.backup_id],
  );
  assert.deepEqual(listed.incomplete, []);
  assert.equal((await list({ from: sink, source: 'app' })).complete.length, 1);
  assert.equal((await list({ from: sink, source: 'other' })).complete.length, 0);

  const v = await verify({ from: sink, latest: true, minSize: 1024 });
  assert.equal(v.passed, true);
  assert.equal(v.backup_id, manifest.backup_id);
  assert.ok(v.verdicts.some((x) => x.verifier === 'checksum'), JSON.stringify(v.verdicts));
  assert.ok(v.verdicts.some((x) => x.verifier === 'sqlite-integrity'), JSON.stringify(v.verdicts));

  const target = path.join(dir, 'restored.db');
  const r = await restore({ from: sink, id: manifest.backup_id, to: sqliteUrl(target), lockDir: dir });
  assert.equal(r.backup_id, manifest.backup_id);
  assert.equal(r.replaced, false);
  assert.equal(r.fingerprint.tables.find((x) => x.name === 'items').rows, 2_000);
  assert.equal(countRows(target), 2_000);
  assert.equal(countRows(target, 'notes'), 200);

  // --force over the restored file replaces it.
  const again = await restore({ from: sink, latest: true, to: sqliteUrl(target), force: true, lockDir: dir });
  assert.equal(again.replaced, true);
});

test('progress callback receives events for each phase', async (t) => {
  const dir = tempDir(t);
  const db = sampleDb(path.join(dir, 'app.db'), 20_000);
  const sink = fileUrl(path.join(dir, 'backups'));
  const events = [];
  await backup({ source: sqliteUrl(db), to: sink, lockDir: dir, onProgress: (e) => events.push(e) });
  // Events are delivered through the event loop: let the queue drain.
  await new Promise((r) => setImmediate(r));

  const phases = [...new Set(events.map((e) => e.phase))];
  assert.ok(phases.includes('snapshot') || phases.includes('upload'), `phases: ${phases}`);
  assert.ok(phases.includes('upload'), `phases: ${phases}`);
  for (const e of events) {
    assert.deepEqual(Object.keys(e).sort(), ['bytes', 'done', 'phase', 'total']);
    assert.ok(['snapshot', 'upload', 'verify', 'download'].includes(e.phase), e.phase);
    assert.equal(typeof e.bytes, 'number');
    assert.ok(e.total === null || typeof e.total === 'number');
  }
  const uploadDone = events.find((e) => e.phase === 'upload' && e.done);
  assert.ok(uploadDone, JSON.stringify(events));
  assert.ok(uploadDone.bytes > 0, JSON.stringify(uploadDone));

  const restoreEvents = [];
  await restore({
    from: sink,
    latest: true,
    to: sqliteUrl(path.join(dir, 'r.db')),
    lockDir: dir,
    onProgress: (e) => restoreEvents.push(e),
  });
  await new Promise((r) => setImmediate(r));
  assert.ok(restoreEvents.some((e) => e.phase === 'download' && e.done && e.bytes > 0), JSON.stringify(restoreEvents));
});

test('a missing database rejects with source / 2 and leaves no backup', async (t) => {
  const dir = tempDir(t);
  const out = path.join(dir, 'out');
  await rejectsWith(
    backup({ source: 'sqlite:///nonexistent/dir/app.db', to: out, lockDir: dir }),
    'source',
    2,
    /does not exist/,
  );
  assert.deepEqual(allFiles(out), []);
  assert.equal(fs.existsSync('/nonexistent/dir/app.db'), false);
});

test('an unknown sink scheme rejects with usage / 64', async (t) => {
  const { db, dir } = await backedUp(t, 100);
  await rejectsWith(backup({ source: sqliteUrl(db), to: 'ftp://example.invalid/x', lockDir: dir }), 'usage', 64, /unknown sink scheme/);
  await rejectsWith(list({ from: 'ftp://example.invalid/x' }), 'usage', 64, /unknown sink scheme/);
});

test('an unknown option rejects with usage / 64 naming it in camelCase', async (t) => {
  const dir = tempDir(t);
  await rejectsWith(list({ form: dir }), 'usage', 64, /unknown option "form" \(known: .*\bsink\b/);
  await rejectsWith(backup({ minSizee: 1 }), 'usage', 64, /unknown option "minSizee" \(known: (?=.*\bminSize\b)(?=.*\bexcludeSchemas\b)(?=.*\bdrillServer\b)/);
  await rejectsWith(backup({ level: 'high' }), 'usage', 64);
  await rejectsWith(list('nope'), 'usage', 64);
});

test('a bad config key rejects with config / 78', async (t) => {
  const dir = tempDir(t);
  const bad = path.join(dir, 'bad.toml');
  fs.writeFileSync(bad, '[profiles.prod]\nsource = "sqlite:app.db"\nretain = 7\n');
  await rejectsWith(backup({ config: bad, profile: 'prod' }), 'config', 78, /retain/);
  await rejectsWith(list({ config: bad }), 'config', 78, /retain/);
  await rejectsWith(list({ profile: 'prod', from: dir }), 'config', 78, /profile/);
});

test('a config file drives the operations', async (t) => {
  const dir = tempDir(t);
  const db = sampleDb(path.join(dir, 'app.db'), 500);
  const config = path.join(dir, 'lifeboat.toml');
  fs.writeFileSync(
    config,
    `min_size = "1 KiB"\n[profiles.prod]\nsource = "sqlite://${db}"\nsink = "${path.join(dir, 'b')}"\nlock_dir = "${dir}"\n`,
  );
  const out = await backup({ config, profile: 'prod' });
  const listed = await list({ config, profile: 'prod' });
  assert.equal(listed.complete[0].backup_id, out.backups[0].manifest.backup_id);
  assert.equal((await verify({ config, profile: 'prod', latest: true })).passed, true);
});

test('restore onto an existing file rejects with restore / 5 and leaves it alone', async (t) => {
  const { dir, sink } = await backedUp(t, 1_000);
  const target = sampleDb(path.join(dir, 'live.db'), 10);
  const before = fs.readFileSync(target);
  await rejectsWith(restore({ from: sink, latest: true, to: sqliteUrl(target), lockDir: dir }), 'restore', 5, /exists/);
  assert.deepEqual(fs.readFileSync(target), before);
});

test('verifying a corrupted backup rejects with verification / 4', async (t) => {
  const { dir, sink } = await backedUp(t, 3_000);
  const root = path.join(dir, 'backups');
  const data = allFiles(root)
    .filter((f) => !f.endsWith('manifest.json'))
    .map((f) => path.join(root, f))
    .sort((a, b) => fs.statSync(b).size - fs.statSync(a).size)[0];
  const bytes = fs.readFileSync(data);
  bytes[bytes.length >> 1] ^= 0xff;
  fs.writeFileSync(data, bytes);
  await rejectsWith(verify({ from: sink, latest: true }), 'verification', 4, /checksum/);
});

test('restore needs a target: usage / 64', async (t) => {
  const { sink } = await backedUp(t, 100);
  await rejectsWith(restore({ from: sink, latest: true }), 'usage', 64, /target/);
});

test('an id and latest together reject with usage / 64', async (t) => {
  const { sink, id } = await backedUp(t, 100);
  await rejectsWith(verify({ from: sink, id, latest: true }), 'usage', 64);
});

test('an already aborted signal rejects with cancelled / 130 before any work', async (t) => {
  const dir = tempDir(t);
  const db = sampleDb(path.join(dir, 'app.db'), 100);
  const out = path.join(dir, 'out');
  const reason = new Error('stop');
  await assert.rejects(backup({ source: sqliteUrl(db), to: out, lockDir: dir, signal: AbortSignal.abort(reason) }), (e) => {
    assert.ok(e instanceof LifeboatError);
    assert.equal(e.code, 'cancelled');
    assert.equal(e.exitCode, 130);
    assert.equal(e.cause, reason);
    return true;
  });
  assert.deepEqual(allFiles(out), []);
});

test('aborting mid-backup rejects with cancelled / 130 and leaves nothing in the sink', async (t) => {
  const dir = tempDir(t);
  const db = sampleDb(path.join(dir, 'big.db'), 300_000, { randomText: true });
  const sinkDir = path.join(dir, 'b');
  const scratch = path.join(dir, 'tmp');
  fs.mkdirSync(scratch);
  const ac = new AbortController();
  let abortedAt = null;
  const started = performance.now();
  const onProgress = (e) => {
    // Abort once the upload is under way: the data object is half written.
    if (abortedAt === null && e.phase === 'upload' && e.bytes > 0 && !e.done) {
      abortedAt = performance.now();
      ac.abort();
    }
  };
  await assert.rejects(
    backup({ source: sqliteUrl(db), to: sinkDir, lockDir: dir, tempDir: scratch, level: 19, threads: 1, signal: ac.signal, onProgress }),
    (e) => {
      assert.ok(e instanceof LifeboatError, String(e));
      assert.equal(e.code, 'cancelled', e.message);
      assert.equal(e.exitCode, 130);
      return true;
    },
  );
  assert.ok(abortedAt !== null, 'the backup finished before any upload progress was seen');
  const settledMs = performance.now() - abortedAt;
  assert.ok(settledMs < 5_000, `cancellation took ${settledMs} ms (backup started ${abortedAt - started} ms in)`);

  const listing = await list({ from: sinkDir });
  assert.deepEqual(listing.complete, []);
  assert.deepEqual(listing.incomplete, []);
  // Temporary files go away once the dropped work has unwound.
  const deadline = Date.now() + 5_000;
  while ((allFiles(sinkDir).length || allFiles(scratch).length) && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.deepEqual(allFiles(sinkDir), []);
  assert.deepEqual(allFiles(scratch), []);

  // The lock was released: the same backup runs afterwards.
  const out = await backup({ source: sqliteUrl(db), to: sinkDir, lockDir: dir, tempDir: scratch, threads: 2 });
  assert.equal(out.backups[0].manifest.fingerprint.tables.find((x) => x.name === 'items').rows, 300_000);
});

test('bad signal and onProgress values are usage errors', async () => {
  await rejectsWith(list({ signal: {} }), 'usage', 64, /AbortSignal/);
  await rejectsWith(backup({ onProgress: 42 }), 'usage', 64, /onProgress/);
});

test('the option names are the core\'s: sink and target, a drill verb, and the generated types match', async (t) => {
  const { drill, optionNames } = await import('../index.js');
  const dir = tempDir(t);
  const db = sampleDb(path.join(dir, 'app.db'), 500);
  const sink = fileUrl(path.join(dir, 'backups'));
  await backup({ source: sqliteUrl(db), sink, lockDir: dir });
  const d = await drill({ sink, latest: true });
  assert.ok(d.verdicts.some((v) => v.verifier === 'sqlite-drill' && v.passed), JSON.stringify(d.verdicts));
  const target = path.join(dir, 'r.db');
  const r = await restore({ sink, target: sqliteUrl(target), latest: true, lockDir: dir });
  assert.equal(r.fingerprint.tables.find((x) => x.name === 'items').rows, 500);
  // A restore option is not a backup's: refused, naming it.
  await rejectsWith(backup({ source: sqliteUrl(db), sink, noOwner: true }), 'usage', 64, /noOwner/);
  // options.d.ts (generated from the Rust definitions) declares exactly
  // the option names the native side takes, for every operation.
  const dts = fs.readFileSync(new URL('../options.d.ts', import.meta.url), 'utf8');
  const names = { backup: 'BackupOptions', list: 'ListOptions', verify: 'VerifyOptions', drill: 'DrillOptions', restore: 'RestoreOptions', prune: 'PruneOptions', status: 'StatusOptions', wal_push: 'WalPushOptions', wal_fetch: 'WalFetchOptions', wal_setup: 'WalSetupOptions' };
  for (const [op, iface] of Object.entries(names)) {
    const body = dts.match(new RegExp(`export interface ${iface} extends [^{]*\\{([^}]*)\\}`))[1];
    const declared = [...body.matchAll(/^\s+(\w+)\??:/gm)].map((m) => m[1]);
    declared.push('config', 'profile');
    assert.deepEqual(declared.sort(), optionNames(op).sort(), op);
  }
});

test('walPush and walFetch: a history file round trip, a missing file is not_found, a stray name is usage', async (t) => {
  const { walPush, walFetch } = await import('../index.js');
  const dir = tempDir(t);
  const sink = fileUrl(path.join(dir, 'archive'));
  const hist = path.join(dir, '00000002.history');
  fs.writeFileSync(hist, '1\t0/3000000\tno recovery target specified\n');
  const pushed = await walPush({ path: hist, sink, name: 'app' });
  assert.equal(pushed.key, 'app/wal/00000002/00000002.history.zst');
  assert.equal(pushed.already_archived, false);
  assert.equal((await walPush({ path: hist, sink, name: 'app' })).already_archived, true);
  const out = path.join(dir, 'RECOVERYHISTORY');
  const fetched = await walFetch({ fileName: '00000002.history', path: out, sink, name: 'app' });
  assert.equal(fetched.sha256, pushed.sha256);
  assert.deepEqual(fs.readFileSync(out), fs.readFileSync(hist));
  await rejectsWith(walFetch({ fileName: '00000003.history', path: out, sink, name: 'app' }), 'not_found', 3, /00000003\.history/);
  const stray = path.join(dir, 'notes.txt');
  fs.writeFileSync(stray, 'x');
  await rejectsWith(walPush({ path: stray, sink, name: 'app' }), 'usage', 64, /not the name of a WAL file/);
});

test('tablespaceMap reaches the core: refused for a SQLite target as --tablespace-map is', async (t) => {
  const { dir, sink } = await backedUp(t, 100);
  const target = path.join(dir, 'x.db');
  await rejectsWith(
    restore({ from: sink, latest: true, to: sqliteUrl(target), lockDir: dir, tablespaceMap: ['/a=/b'] }),
    'usage',
    64,
    /--tablespace-map/,
  );
  assert.equal(fs.existsSync(target), false);
});
