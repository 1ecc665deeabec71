#!/usr/bin/env node
'use strict';
// Build the native addon from source and put it where index.js looks:
//   node scripts/build.js            release build (npm run build)
//   node scripts/build.js --debug    debug build (npm run build:debug)
// Uses the workspace's target directory (CARGO_TARGET_DIR if set).

const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const debug = process.argv.includes('--debug');
const pkgDir = path.resolve(__dirname, '..');
const workspace = path.resolve(pkgDir, '..', '..');
const args = ['build', '-p', 'lifeboat-node', '--lib'];
if (!debug) args.push('--release');

const r = spawnSync('cargo', args, { cwd: workspace, stdio: 'inherit' });
if (r.error) {
  console.error(`lifeboat: cannot run cargo: ${r.error.message}`);
  process.exit(1);
}
if (r.status !== 0) process.exit(r.status ?? 1);

const targetDir = process.env.CARGO_TARGET_DIR
  ? path.resolve(workspace, process.env.CARGO_TARGET_DIR)
  : path.join(workspace, 'target');
const libName = {
  darwin: 'liblifeboat_node.dylib',
  win32: 'lifeboat_node.dll',
}[process.platform] ?? 'liblifeboat_node.so';
const built = path.join(targetDir, debug ? 'debug' : 'release', libName);
const dest = path.join(pkgDir, 'lifeboat.node');
// Copy to a temporary name and rename: a process that has the old addon
// loaded keeps its mapping intact.
const tmp = `${dest}.${process.pid}.tmp`;
fs.copyFileSync(built, tmp);
fs.renameSync(tmp, dest);
console.error(`lifeboat: ${path.relative(process.cwd(), built)} -> ${path.relative(process.cwd(), dest)}`);
