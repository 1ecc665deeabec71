'use strict';
// The same backups from code: back up, then verify the latest, printing
// progress. Reads ./lifeboat.toml like the npm scripts do.

const { backup, verify, LifeboatError } = require('lifeboat');

async function main() {
  const ac = new AbortController();
  process.once('SIGINT', () => ac.abort());
  const onProgress = ({ phase, bytes, total, done }) => {
    if (done) console.error(`${phase}: ${bytes} bytes${total ? ` of ${total}` : ''}`);
  };
  const { backups } = await backup({ signal: ac.signal, onProgress });
  for (const b of backups) console.log(`backed up ${b.manifest.backup_id} to ${b.location}`);
  const v = await verify({ latest: true, signal: ac.signal });
  console.log(`verified ${v.backup_id}: ${v.verdicts.map((x) => x.verifier).join(', ')}`);
}

main().catch((e) => {
  if (e instanceof LifeboatError) {
    console.error(`backup failed (${e.code}): ${e.message}`);
    process.exitCode = e.exitCode;
  } else {
    throw e;
  }
});
