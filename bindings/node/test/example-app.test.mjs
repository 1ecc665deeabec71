// examples/node-app as a user runs it: npm install from the local package,
// `npm run db:backup` and `npm run db:backup:verify` exit 0.
//
// The example is copied to a temp dir (so the source tree stays clean) with
// its `file:` dependency made absolute; everything else is as shipped.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';

import { childEnv, PKG_DIR, REPO, run, tempDir } from './helpers.mjs';

const EXAMPLE = path.join(REPO, 'examples', 'node-app');
const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';

test('examples/node-app: npm run db:backup and db:backup:verify exit 0', { timeout: 180_000 }, async (t) => {
  const shipped = JSON.parse(fs.readFileSync(path.join(EXAMPLE, 'package.json'), 'utf8'));
  assert.equal(shipped.dependencies.lifeboat, 'file:../../bindings/node');
  assert.equal(shipped.scripts['db:backup'], 'lifeboat backup');
  assert.equal(shipped.scripts['db:backup:verify'], 'lifeboat verify --latest');

  const app = path.join(tempDir(t, 'lifeboat-node-app-'), 'node-app');
  fs.cpSync(EXAMPLE, app, {
    recursive: true,
    filter: (src) => !/[\\/](node_modules|data|backups)$/.test(src) && !src.endsWith('package-lock.json'),
  });
  const pkg = { ...shipped, dependencies: { ...shipped.dependencies, lifeboat: `file:${PKG_DIR}` } };
  fs.writeFileSync(path.join(app, 'package.json'), JSON.stringify(pkg, null, 2));

  const env = childEnv({ LIFEBOAT_LOCK_DIR: app, npm_config_update_notifier: 'false' });
  const step = async (args, expected = 0) => {
    const r = await run(npm, args, { cwd: app, env, timeoutMs: 120_000 });
    assert.equal(r.code, expected, `npm ${args.join(' ')}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
    return r;
  };

  await step(['install', '--offline', '--no-audit', '--no-fund', '--no-package-lock']);
  assert.ok(fs.existsSync(path.join(app, 'node_modules', '.bin', 'lifeboat')), 'the lifeboat bin is linked');

  // Before the database exists the backup fails like the CLI: exit 2.
  await step(['run', '--silent', 'db:backup'], 2);

  await step(['run', 'db:create']);
  const backedUp = await step(['run', '--silent', 'db:backup']);
  assert.match(backedUp.stdout, /^backup \S+ verified \(.*\) — .* 1 tables, 1000 rows — file:\/\/.*\/backups\//m);
  assert.ok(fs.existsSync(path.join(app, 'backups', 'app')), 'backups/app/ holds the backup');

  const verified = await step(['run', '--silent', 'db:backup:verify']);
  assert.match(verified.stdout, /^backup \S+ of app verified:/m);
  assert.match(verified.stdout, /sqlite-integrity/);

  const listed = await step(['run', '--silent', 'db:backup:list']);
  assert.match(listed.stdout, /^app\s/m);

  // And the same from code.
  const fromCode = await step(['start']);
  assert.match(fromCode.stdout, /verified \S+: .*checksum/);
});
