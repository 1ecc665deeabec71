// One CLI, three doors: the same commands through the Rust binary and
// through `node bin/lifeboat.js` give the same exit codes, the same stdout
// and the same error lines (timings, ids and timestamps normalised).

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { before, test } from 'node:test';

import { allFiles, BIN_JS, childEnv, REPO, run, sampleDb, tempDir } from './helpers.mjs';

let RUST;

before(() => {
  RUST = process.env.LIFEBOAT_BIN;
  if (!RUST) {
    // Run on its own: make sure the binary is built from this tree (a no-op
    // when it is up to date).
    execFileSync('cargo', ['build', '-q', '-p', 'backup-cli', '--bin', 'lifeboat'], { cwd: REPO, stdio: 'inherit' });
    RUST = path.join(REPO, 'target', 'debug', 'lifeboat');
  }
});

/** Replace what differs between two runs of the same command. */
function normalise(text) {
  return text
    .replace(/^\d{4}-\d{2}-\d{2}T[\d:.]+Z /gm, 'TIME ')
    .replace(/\b\d{8}T\d{6}Z-[0-9a-z]+\b/g, 'ID')
    .replace(/\(\d+ ms\)/g, '(N ms)')
    .replace(/ in \d+\.\ds\b/g, ' in N.Ns')
    .replace(/\b(duration_ms|ms)=\d+/g, '$1=N')
    .replace(/"duration_ms": \d+/g, '"duration_ms": N')
    .replace(/\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2}(\.\d+)?Z?/g, 'DATETIME');
}

/** Run `args` through both doors in `cwd`; return both results. */
async function bothDoors(args, cwd, env = {}) {
  const e = childEnv({ LIFEBOAT_LOCK_DIR: cwd, ...env });
  const rust = await run(RUST, args, { cwd, env: e });
  const node = await run(process.execPath, [BIN_JS, ...args], { cwd, env: e });
  return { rust, node };
}

/** Assert both doors agree on exit code, stdout and stderr; return the Rust result. */
async function sameThroughBothDoors(args, cwd, { code, env, compareStderr = true } = {}) {
  const { rust, node } = await bothDoors(args, cwd, env);
  const what = `lifeboat ${args.join(' ')}`;
  assert.equal(node.code, rust.code, `${what}: exit codes differ\nrust stderr: ${rust.stderr}\nnode stderr: ${node.stderr}`);
  if (code !== undefined) assert.equal(rust.code, code, `${what}: ${rust.stderr}`);
  assert.equal(normalise(node.stdout), normalise(rust.stdout), `${what}: stdout differs`);
  if (compareStderr) assert.equal(normalise(node.stderr), normalise(rust.stderr), `${what}: stderr differs`);
  return rust;
}

test('help, version and usage errors are the same through both doors', async (t) => {
  const dir = tempDir(t);
  const help = await sameThroughBothDoors(['--help'], dir, { code: 0 });
  assert.match(help.stdout, /Exit codes/);
  for (const verb of ['backup', 'list', 'verify', 'restore']) {
    await sameThroughBothDoors([verb, '--help'], dir, { code: 0 });
  }
  const v = await sameThroughBothDoors(['--version'], dir, { code: 0 });
  assert.match(v.stdout, /^lifeboat \d+\.\d+\.\d+/);
  await sameThroughBothDoors(['frobnicate'], dir, { code: 64 });
  await sameThroughBothDoors(['backup', '--level'], dir, { code: 64 });
});

test('failures exit with the same codes and error lines through both doors', async (t) => {
  const dir = tempDir(t);
  const missing = await sameThroughBothDoors(['backup', 'sqlite:///nonexistent/dir/app.db', '--to', 'out'], dir, { code: 2 });
  assert.match(missing.stderr, /does not exist/);
  assert.deepEqual(allFiles(path.join(dir, 'out')), []);
  await sameThroughBothDoors(['backup', 'sqlite:app.db', '--to', 'ftp://example.invalid/x'], dir, { code: 64 });
  fs.writeFileSync(path.join(dir, 'bad.toml'), '[profiles.prod]\nsource = "sqlite:app.db"\nretain = 7\n');
  await sameThroughBothDoors(['--config', 'bad.toml', 'backup'], dir, { code: 78 });
  await sameThroughBothDoors(['list', '--from', 'empty'], dir, { code: 0 });
});

test('backup, list, verify and restore print the same through both doors', async (t) => {
  const dir = tempDir(t);
  sampleDb(path.join(dir, 'app.db'), 3_000);
  // One backup per door, into one sink.
  await sameThroughBothDoors(['backup', 'sqlite:app.db', '--to', 'b'], dir, { code: 0 });
  const listed = await sameThroughBothDoors(['list', '--from', 'b'], dir, { code: 0 });
  assert.equal(listed.stdout.split('\n').filter((l) => l.startsWith('app ')).length, 2, listed.stdout);
  await sameThroughBothDoors(['list', '--from', 'b', '--json'], dir, { code: 0 });
  const verified = await sameThroughBothDoors(['verify', '--latest', '--from', 'b'], dir, { code: 0 });
  assert.match(verified.stdout, /sqlite-integrity/);
  await sameThroughBothDoors(['verify', '--latest', '--from', 'b', '--json'], dir, { code: 0 });
  // Each door restores to its own file; the output differs only in the path.
  const { rust, node } = await bothDoors(['restore', '--latest', '--from', 'b', '--to', 'sqlite:r.db'], dir);
  assert.equal(rust.code, 0, rust.stderr);
  assert.equal(node.code, 5, 'the second restore onto the same file must be refused');
  await sameThroughBothDoors(['restore', '--latest', '--from', 'b', '--to', 'sqlite:r.db'], dir, { code: 5 });
});

test('Ctrl-C exits 130 and leaves nothing visible through both doors', async (t) => {
  const dir = tempDir(t);
  sampleDb(path.join(dir, 'big.db'), 100_000, { randomText: true });
  const env = childEnv({ LIFEBOAT_LOCK_DIR: dir });
  for (const [door, cmd, pre] of [
    ['rust', RUST, []],
    ['node', process.execPath, [BIN_JS]],
  ]) {
    const sink = `b-${door}`;
    const args = [...pre, 'backup', 'sqlite:big.db', '--to', sink, '--level', '19', '--threads', '1'];
    let child;
    const done = run(cmd, args, { cwd: dir, env, onSpawn: (c) => (child = c) });
    // Interrupt once the upload is under way (the sink directory appears).
    const deadline = Date.now() + 30_000;
    while (!fs.existsSync(path.join(dir, sink)) && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 20));
    }
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(child.exitCode, null, `${door}: the backup finished before the interrupt`);
    child.kill('SIGINT');
    const r = await done;
    assert.equal(r.code, 130, `${door}: ${r.signal ?? ''} ${r.stderr}`);
    assert.match(r.stderr, /cancelled/, door);
    assert.deepEqual(allFiles(path.join(dir, sink)), [], door);
  }
});
