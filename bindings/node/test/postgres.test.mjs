// PostgreSQL end to end through the Promise API: an ephemeral PostgreSQL 15
// cluster per test (see /work/shared/TESTING.md), backed up to a local
// folder, listed, verified, restored into a new database, and the two
// refusals (restore onto an existing database without `force`, a missing
// database). Skipped with a message when the PostgreSQL 15 server binaries
// are missing, failed instead when LIFEBOAT_REQUIRE_SERVERS=1.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { test } from 'node:test';

import { backup, list, verify, restore, LifeboatError } from '../index.js';
import { fileUrl, tempDir } from './helpers.mjs';

const PG_BIN = '/usr/lib/postgresql/15/bin';

/** The sample database: table → exact row count. */
const SHOP_ROWS = { 'public.customers': 1_500, 'public.orders': 4_000 };

const SHOP_SQL = `
CREATE TABLE customers (
    id integer PRIMARY KEY,
    name text NOT NULL,
    email text NOT NULL UNIQUE,
    created_at timestamptz NOT NULL
);
CREATE TABLE orders (
    id bigint PRIMARY KEY,
    customer_id integer NOT NULL REFERENCES customers(id),
    total_cents integer NOT NULL,
    note text
);
CREATE INDEX orders_customer ON orders(customer_id);
INSERT INTO customers
    SELECT i, 'customer ' || i, 'c' || i || '@example.com',
           timestamptz '2026-01-01 00:00:00+00' + i * interval '1 hour'
    FROM generate_series(1, 1500) AS i;
INSERT INTO orders
    SELECT i, 1 + i % 1500, (i * 37) % 100000, 'order ' || i || ': the quick brown fox'
    FROM generate_series(1, 4000) AS i;
ANALYZE;
`;

/** A TCP port nobody listens on right now. */
function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/** Run a server tool as the postgres user (initdb refuses root). */
function asPostgres(tool, args) {
  return execFileSync('runuser', ['-u', 'postgres', '--', path.join(PG_BIN, tool), ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    timeout: 60_000,
  });
}

/**
 * A throwaway PostgreSQL 15 cluster on a free port, stopped (immediate) and
 * removed when the test ends; null when the test was skipped.
 */
async function pgCluster(t) {
  if (!fs.existsSync(path.join(PG_BIN, 'initdb'))) {
    const msg = `${PG_BIN}/initdb is missing: no PostgreSQL 15 server binaries (apt-get install postgresql-15)`;
    if (process.env.LIFEBOAT_REQUIRE_SERVERS === '1') throw new Error(`${msg}, but LIFEBOAT_REQUIRE_SERVERS=1`);
    t.skip(msg);
    return null;
  }
  // Under /tmp itself: every parent must be traversable by postgres and the
  // socket path must stay short.
  const root = fs.mkdtempSync('/tmp/lb-nodetest-pg.');
  const data = path.join(root, 'data');
  const sock = path.join(root, 's');
  const log = path.join(root, 'log');
  let started = false;
  t.after(() => {
    if (started) {
      try {
        asPostgres('pg_ctl', ['-D', data, '-m', 'immediate', '-w', '-t', '30', 'stop']);
      } catch {
        // Reported by the test itself if it matters; the directory goes anyway.
      }
    }
    fs.rmSync(root, { recursive: true, force: true });
  });

  fs.mkdirSync(sock);
  execFileSync('chown', ['-R', 'postgres:postgres', root]);
  fs.chmodSync(root, 0o700);
  asPostgres('initdb', ['-D', data, '-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--locale=C.UTF-8', '--no-sync']);
  const conf = path.join(data, 'postgresql.conf');
  const baseConf = fs.readFileSync(conf, 'utf8');
  // The port is free when picked; another process may take it before the
  // server binds, so try a few.
  let port;
  for (let attempt = 0; !started; attempt++) {
    port = await freePort();
    fs.writeFileSync(
      conf,
      `${baseConf}\nlisten_addresses = '127.0.0.1'\nport = ${port}\nunix_socket_directories = '${sock}'\nfsync = off\n`,
    );
    try {
      asPostgres('pg_ctl', ['-D', data, '-l', log, '-w', '-t', '30', 'start']);
      started = true;
    } catch (e) {
      if (attempt === 2) {
        const serverLog = fs.existsSync(log) ? fs.readFileSync(log, 'utf8') : '';
        throw new Error(`pg_ctl start failed: ${e.stderr ?? ''}${e.stdout ?? ''}\n${serverLog}`);
      }
    }
  }

  const psql = (db, sql) =>
    execFileSync(
      path.join(PG_BIN, 'psql'),
      ['-h', '127.0.0.1', '-p', String(port), '-U', 'postgres', '-d', db, '-X', '-q', '-A', '-t', '-v', 'ON_ERROR_STOP=1'],
      { input: sql, stdio: ['pipe', 'pipe', 'pipe'], timeout: 60_000 },
    )
      .toString()
      .trim();
  return {
    port,
    url: (db) => `postgres://postgres@127.0.0.1:${port}/${db}`,
    psql,
    rowCounts: (db) => Object.fromEntries(Object.keys(SHOP_ROWS).map((t) => [t, Number(psql(db, `SELECT count(*) FROM ${t};`))])),
  };
}

/** Assert that `promise` rejects with a LifeboatError of `code` / `exitCode`. */
async function rejectsWith(promise, code, exitCode) {
  await assert.rejects(promise, (e) => {
    assert.ok(e instanceof LifeboatError, `not a LifeboatError: ${e && e.stack}`);
    assert.equal(e.code, code, e.message);
    assert.equal(e.exitCode, exitCode, e.message);
    return true;
  });
}

test('PostgreSQL: backup, list, verify, restore into a new database, and the refusals', async (t) => {
  const pg = await pgCluster(t);
  if (!pg) return;
  pg.psql('postgres', 'CREATE DATABASE shop;');
  pg.psql('shop', SHOP_SQL);
  assert.deepEqual(pg.rowCounts('shop'), SHOP_ROWS);

  const dir = tempDir(t);
  const sink = fileUrl(path.join(dir, 'backups'));

  const out = await backup({ source: pg.url('shop'), to: sink, lockDir: dir });
  assert.equal(out.backups.length, 1);
  const { manifest } = out.backups[0];
  const id = manifest.backup_id;
  assert.equal(manifest.source.kind, 'postgres');
  const toc = manifest.verdicts.find((v) => v.verifier === 'pg-toc');
  assert.ok(toc && toc.passed, JSON.stringify(manifest.verdicts));
  assert.ok(manifest.verdicts.every((v) => v.passed), JSON.stringify(manifest.verdicts));
  assert.deepEqual(Object.fromEntries(manifest.fingerprint.tables.map((x) => [x.name, x.rows])), SHOP_ROWS);

  const listed = await list({ from: sink });
  assert.deepEqual(listed.complete.map((m) => m.backup_id), [id]);
  assert.equal(listed.complete[0].source.kind, 'postgres');
  assert.deepEqual(listed.incomplete, []);

  const verified = await verify({ from: sink, latest: true });
  assert.equal(verified.passed, true);
  assert.equal(verified.backup_id, id);
  const vtoc = verified.verdicts.find((v) => v.verifier === 'pg-toc');
  assert.ok(vtoc && vtoc.passed, JSON.stringify(verified.verdicts));

  const restored = await restore({ from: sink, latest: true, to: pg.url('shop_copy'), lockDir: dir });
  assert.equal(restored.backup_id, id);
  assert.equal(restored.replaced, false);
  assert.deepEqual(Object.fromEntries(restored.fingerprint.tables.map((x) => [x.name, x.rows])), SHOP_ROWS);
  assert.deepEqual(pg.rowCounts('shop_copy'), pg.rowCounts('shop'));
  assert.deepEqual(pg.rowCounts('shop_copy'), SHOP_ROWS);

  // shop_copy exists now: without force the restore is refused and the
  // database is left alone.
  await rejectsWith(restore({ from: sink, latest: true, to: pg.url('shop_copy'), lockDir: dir }), 'restore', 5);
  assert.deepEqual(pg.rowCounts('shop_copy'), SHOP_ROWS);

  await rejectsWith(backup({ source: pg.url('nosuchdb'), to: fileUrl(path.join(dir, 'missing')), lockDir: dir }), 'source', 2);
  assert.deepEqual((await list({ from: sink })).complete.map((m) => m.backup_id), [id]);
});
