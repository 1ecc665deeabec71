'use strict';
// The npm package `lifeboat`: a Promise API over the native addon.
//
// The addon runs the core's operations (backup_core::ops, which the command
// line calls too) with the options as JSON. This file only
//   - turns camelCase options into the core's snake_case keys,
//   - turns an AbortSignal into a native CancelToken,
//   - turns the native outcome into a value or a LifeboatError.
// Results are the JSON `lifeboat <command> --json` prints (snake_case keys).

const path = require('node:path');

function loadNative() {
  const candidates = [
    process.env.LIFEBOAT_NODE_ADDON,
    path.join(__dirname, 'lifeboat.node'),
    path.join(__dirname, `lifeboat.${process.platform}-${process.arch}-gnu.node`),
    path.join(__dirname, `lifeboat.${process.platform}-${process.arch}.node`),
  ].filter(Boolean);
  let firstError;
  for (const file of candidates) {
    try {
      return require(file);
    } catch (e) {
      if (e && e.code !== 'MODULE_NOT_FOUND') throw e;
      firstError = firstError || e;
    }
  }
  const err = new Error(
    `lifeboat: the native addon is not built (looked for ${candidates.join(', ')}); ` +
      'run `npm run build` in the package directory',
  );
  err.cause = firstError;
  throw err;
}

const native = loadNative();

/** Exit codes of the `lifeboat` command line, by error code (from the core's table). */
const EXIT_CODES = Object.freeze(native.exitCodes());

/**
 * Every failure of a Lifeboat operation. `code` is the kind of failure
 * (`'source'`, `'sink'`, `'verification'`, …) and `exitCode` the exit code
 * the `lifeboat` command line uses for it.
 */
class LifeboatError extends Error {
  constructor(message, { code, exitCode, retryable = false, cause } = {}) {
    super(message, cause === undefined ? undefined : { cause });
    this.name = 'LifeboatError';
    this.code = code;
    this.exitCode = exitCode ?? EXIT_CODES[code] ?? 1;
    this.retryable = retryable;
  }
}

const camelToSnake = (k) => k.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
const snakeToCamel = (k) => k.replace(/_([a-z])/g, (_, c) => c.toUpperCase());

// Keys handled here rather than passed to the native side.
const LOCAL_KEYS = new Set(['signal', 'onProgress']);

function toNativeOptions(op, options) {
  if (options === undefined || options === null) return {};
  if (typeof options !== 'object' || Array.isArray(options)) {
    throw new LifeboatError(`${op}: options must be an object`, { code: 'usage' });
  }
  const out = {};
  for (const [key, value] of Object.entries(options)) {
    if (LOCAL_KEYS.has(key) || value === undefined) continue;
    out[camelToSnake(key)] = value;
  }
  return out;
}

// The native side names options as the CLI does (snake_case); name them as
// the caller wrote them.
function camelMessage(message) {
  return message.replace(
    /unknown option "(\w+)" \(known: ([^)]*)\)/,
    (_, key, known) =>
      `unknown option "${snakeToCamel(key)}" (known: ${known
        .split(', ')
        .map(snakeToCamel)
        .join(', ')})`,
  );
}

function cancelledError(signal) {
  return new LifeboatError('cancelled', {
    code: 'cancelled',
    exitCode: EXIT_CODES.cancelled,
    cause: signal ? signal.reason : undefined,
  });
}

function settle(text, signal) {
  const outcome = JSON.parse(text);
  if (outcome.error) {
    const e = outcome.error;
    if (e.code === 'cancelled') throw cancelledError(signal);
    throw new LifeboatError(camelMessage(e.message), {
      code: e.code,
      exitCode: e.exit_code,
      retryable: e.retryable,
    });
  }
  return outcome.ok;
}

function progressCallback(onProgress) {
  if (onProgress === undefined || onProgress === null) return undefined;
  if (typeof onProgress !== 'function') {
    throw new LifeboatError('onProgress must be a function', { code: 'usage' });
  }
  return (event) => onProgress({ phase: event.phase, bytes: event.bytes, total: event.total ?? null, done: event.done });
}

async function call(op, options, withProgress) {
  const opts = options ?? {};
  const signal = opts.signal;
  if (signal !== undefined && signal !== null && typeof signal.aborted !== 'boolean') {
    throw new LifeboatError('signal must be an AbortSignal', { code: 'usage' });
  }
  const optionsJson = JSON.stringify(toNativeOptions(op, opts));
  const progress = withProgress ? progressCallback(opts.onProgress) : undefined;
  if (signal && signal.aborted) throw cancelledError(signal);

  let token;
  const onAbort = () => token.cancel();
  if (signal) {
    token = new native.CancelToken();
    signal.addEventListener('abort', onAbort, { once: true });
  }
  try {
    const text = await native.run(op, optionsJson, progress, token);
    return settle(text, signal);
  } finally {
    if (signal) signal.removeEventListener('abort', onAbort);
  }
}

/**
 * Take a backup of every database the source names, verify it and commit
 * it with its manifest. Resolves to `{ backups: [{ manifest, location,
 * duration_ms, drill }] }`.
 */
function backup(options) {
  return call('backup', options, true);
}

/** List the backups in a sink: `{ location, complete, incomplete }`. */
function list(options) {
  return call('list', options, false);
}

/** Verify a stored backup again: `{ backup_id, source, location, passed, verdicts, duration_ms }`. */
function verify(options) {
  return call('verify', options, true);
}

/**
 * Drill a stored backup: restore it into a scratch database, compare, run
 * the smoke checks, drop it, record the evidence. Resolves like `verify`.
 */
function drill(options) {
  return call('drill', options, true);
}

/** Restore a backup: `{ backup_id, target, bytes, replaced, fingerprint, duration_ms }`. */
function restore(options) {
  return call('restore', options, true);
}

/**
 * Apply retention to one source's backups: `{ decisions: [{ backup_id, dir,
 * started_at, keep, reasons, incomplete }], deleted, dry_run }`. With
 * `dryRun: true` nothing is deleted. A failed listing deletes nothing.
 */
function prune(options) {
  return call('prune', options, false);
}

/**
 * Copy what one sink (`sink`, the CLI's `--from`) has and another (`target`,
 * `--to`) lacks: complete backups (every object checked against its
 * manifest, the manifest last), WAL, verification and drill records:
 * `{ from, to, dry_run, backups, backups_present, wal_files, records, bytes,
 * failures, duration_ms }`. Rejects with `code: 'verification'` naming what
 * did not match its record (the rest is copied).
 */
function mirror(options) {
  return call('mirror', options, false);
}

/**
 * Check what silently breaks backups, per profile (or `sink`): sink
 * credentials, clock skew, the source and its tools, temp space, WAL
 * archiving, and that the identity decrypts the newest encrypted backup:
 * `[{ sink, checks: [{ name, ok, detail }], problems }]`. Problems are a
 * result, not a rejection; the CLI exits 6 for them.
 */
function doctor(options) {
  return call('doctor', options, false);
}

/**
 * Health of each source: `[{ source, backups, incomplete, newest,
 * last_verification, last_drill, problems, healthy }]`. An unhealthy source
 * is a result (`healthy: false`), not a rejection; the CLI exits 6 for it.
 */
function status(options) {
  return call('status', options, false);
}

/**
 * Archive one PostgreSQL WAL file (`lifeboat wal push %p` as
 * `archive_command`): `{ name, key, size, stored_size, sha256,
 * already_archived, duration_ms }`. Resolves only once it is stored; a
 * different file under the same name, or another cluster's segment, rejects
 * with `code: 'verification'` and is never stored.
 */
function walPush(options) {
  return call('wal_push', options, false);
}

/**
 * Fetch one archived WAL file into `path` (`lifeboat wal fetch %f %p` as
 * `restore_command`): `{ name, path, size, sha256, duration_ms }`. Rejects
 * with `code: 'not_found'` when the archive does not have it.
 */
function walFetch(options) {
  return call('wal_fetch', options, false);
}

/**
 * A server's archiving settings (`lifeboat wal setup`): `{ conf_lines,
 * settings, switched_segment, archived_in_ms, archiver, problems }`. With
 * `check: true` it connects, checks the settings, forces a segment switch
 * and waits until that segment is in the sink; problems are a result
 * (`problems`), not a rejection.
 */
function walSetup(options) {
  return call('wal_setup', options, false);
}

/**
 * Run the `lifeboat` command line in this process (args without the
 * program name) and return its exit code. Prints as the binary does and
 * blocks the event loop until done: meant for scripts and the `lifeboat` bin.
 */
function runCli(args) {
  return native.runCli(['lifeboat', ...args]);
}

/** The option names `op` takes (camelCase), from the core's typed arguments. */
function optionNames(op) {
  return native.optionNames(op).map(snakeToCamel);
}

/** Send Lifeboat's logs to stderr, as the CLI does (off by default). */
function initLogging({ json = false, verbose = 0, quiet = false } = {}) {
  native.initLogging(json, verbose, quiet);
}

module.exports = {
  backup,
  list,
  verify,
  drill,
  restore,
  prune,
  mirror,
  doctor,
  status,
  walPush,
  walFetch,
  walSetup,
  runCli,
  optionNames,
  initLogging,
  LifeboatError,
  EXIT_CODES,
};
