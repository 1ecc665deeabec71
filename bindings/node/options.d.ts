// Generated from the Rust definitions of backup_core::ops (see
// backup-cli/src/typescript.rs); do not edit. Regenerate with
// `LIFEBOAT_BLESS=1 cargo test -p backup-cli --test typescript`.

import type { ProgressEvent } from './index';

/** A size or duration: a number (bytes, seconds), or a string such as `"1 KiB"` or `"26h"`. */
export type Size = number | string;

/** Options every operation takes. */
export interface CommonOptions {
  /** Config file (default: `./lifeboat.toml` when it exists). */
  config?: string;
  /** Profile in the config file. */
  profile?: string;
  /** Cancel the operation: it rejects with `code: 'cancelled'` and leaves nothing half-visible. */
  signal?: AbortSignal;
}

/** Called from the event loop, never blocking the work; does not keep the process alive. */
export interface ProgressOptions {
  onProgress?: (event: ProgressEvent) => void;
}

/** Options of `backup` (`lifeboat backup`'s arguments and flags, camelCased). */
export interface BackupOptions extends CommonOptions, ProgressOptions {
  /** The database: sqlite:///path/to/app.db or postgres://user@host:5432/db[,db2] (default: source in lifeboat.toml) */
  source?: string;
  /** Where backups live: file:///dir, s3://bucket/prefix, spaces://bucket/prefix?region=nyc3, gs://bucket/prefix */
  sink?: string;
  /** Source name in the bucket layout (default: the database file's name) */
  name?: string;
  /** Fail if the uncompressed dump is smaller than this (default 1 KiB) */
  minSize?: Size;
  /** zstd level, 1 to 19 (default 3 for SQLite, 1 for PostgreSQL) */
  level?: number;
  /** Compression threads (default: every core) */
  threads?: number;
  /** Wait for another run on the same database instead of exiting 1 */
  wait?: boolean;
  /** Directory for lock files (default: $LIFEBOAT_LOCK_DIR or the temp dir) */
  lockDir?: string;
  /** Directory for the snapshot file (default: the temp dir) */
  tempDir?: string;
  /** Skip the restore drill PostgreSQL backups run by default before they are committed (a drill costs about one pg_restore of the database into a throwaway cluster) */
  noDrill?: boolean;
  /** Restore drill before the commit: restore the backup into a scratch database (a throwaway cluster from local server binaries, else a drill server), compare row counts, run smoke checks, drop it. PostgreSQL backups drill by default where they can */
  drill?: boolean;
  /** Drill into a temporary database on this server (postgres://…) */
  drillServer?: string;
  /** Drill into a throwaway cluster started from local server binaries */
  drillCluster?: boolean;
  /** PostgreSQL: parallel pg_restore jobs for the drill (default: cores) */
  jobs?: number;
  /** PostgreSQL: directory holding pg_dump/pg_restore to use (default: PATH, then /usr/lib/postgresql/* /bin, newest fitting) */
  pgBinDir?: string;
  /** PostgreSQL: run the tools through this command, e.g. "docker exec -i db" */
  commandPrefix?: string;
  /** PostgreSQL: a physical base backup of the whole cluster (pg_basebackup, WAL to its end point included) instead of a logical dump; it restores into pgdata:///path, to any later point with the WAL archive (lifeboat wal push). Compressed by the server on PostgreSQL 15+ and proven on the copy read back from the sink against its backup_manifest (every file's CRC32C, the WAL parsed by pg_waldump). In lifeboat.toml: mode = "physical" in [postgres] */
  physical?: boolean;
  /** PostgreSQL: only this schema (repeatable) */
  schemas?: string[];
  /** PostgreSQL: leave out this schema (repeatable) */
  excludeSchemas?: string[];
  /** PostgreSQL: only this table (repeatable; schema.table or a pattern) */
  tables?: string[];
  /** PostgreSQL: leave out this table (repeatable) */
  excludeTables?: string[];
  /** PostgreSQL: also store roles and tablespaces (pg_dumpall --globals-only) */
  globals?: boolean;
  /** PostgreSQL: fail verification when the archive lists fewer tables (default 1) */
  minTables?: number;
  /** PostgreSQL: refuse a standby lagging more than this ("5m", "30s") */
  maxReplicaLag?: Size;
  /** PostgreSQL: only warn when the standby lags too much */
  replicaLagWarn?: boolean;
  /** PostgreSQL: how long a backup waits for a table another session has locked before failing ("30s", "5m"; default 2m) */
  lockWait?: Size;
  /** Encrypt to this age public key (age1…; repeatable). Only public keys are needed to back up */
  recipients?: string[];
  /** Encrypt to the age public keys in this file (one per line, # comments) */
  recipientsFile?: string;
  /** Also store the backup in this sink (repeatable; in lifeboat.toml, [[sinks]] with a retention each). The database is read once: the first reachable sink gets the backup, each other one a copy checked against its SHA-256, with its own manifest. One sink failing fails the run (exit 3) and never undoes another's backup */
  alsoTo?: string[];
}

/** Options of `list` (`lifeboat list`'s arguments and flags, camelCased). */
export interface ListOptions extends CommonOptions {
  /** Where backups live (default: sink in lifeboat.toml) */
  sink?: string;
  /** Only this source's backups (default: all) */
  source?: string;
}

/** Options of `verify` (`lifeboat verify`'s arguments and flags, camelCased). */
export interface VerifyOptions extends CommonOptions, ProgressOptions {
  /** Backup id (or a unique prefix); default: the latest */
  id?: string;
  /** The latest complete backup (the default; refuses an id alongside) */
  latest?: boolean;
  /** Where backups live (default: sink in lifeboat.toml) */
  sink?: string;
  /** Which source's backups, when the sink holds several */
  source?: string;
  /** The age identity file that decrypts encrypted backups (default: identity_file in [encryption]). A path: the key itself never goes on the command line */
  identity?: string;
  /** Size floor for the uncompressed dump (default 1 KiB) */
  minSize?: Size;
  /** Directory for the decompressed copy (default: the temp dir) */
  tempDir?: string;
  /** PostgreSQL: fail verification when the archive lists fewer tables (default 1) */
  minTables?: number;
  /** Also restore the backup in a drill (see `lifeboat drill`) */
  drill?: boolean;
  /** Drill into a temporary database on this server (postgres://…) */
  drillServer?: string;
  /** Drill into a throwaway cluster started from local server binaries */
  drillCluster?: boolean;
  /** PostgreSQL: parallel pg_restore jobs for the drill (default: cores) */
  jobs?: number;
  /** PostgreSQL: directory holding pg_dump/pg_restore to use (default: PATH, then /usr/lib/postgresql/* /bin, newest fitting) */
  pgBinDir?: string;
  /** PostgreSQL: run the tools through this command, e.g. "docker exec -i db" */
  commandPrefix?: string;
}

/** Options of `drill` (`lifeboat drill`'s arguments and flags, camelCased). */
export interface DrillOptions extends CommonOptions, ProgressOptions {
  /** Backup id (or a unique prefix); default: the latest */
  id?: string;
  /** The latest complete backup (the default; refuses an id alongside) */
  latest?: boolean;
  /** Where backups live (default: sink in lifeboat.toml) */
  sink?: string;
  /** Which source's backups, when the sink holds several */
  source?: string;
  /** The age identity file that decrypts encrypted backups (default: identity_file in [encryption]). A path: the key itself never goes on the command line */
  identity?: string;
  /** Directory for the downloaded copy (default: the temp dir) */
  tempDir?: string;
  /** Drill into a temporary database on this server (postgres://…) */
  drillServer?: string;
  /** Drill into a throwaway cluster started from local server binaries */
  drillCluster?: boolean;
  /** PostgreSQL: parallel pg_restore jobs for the drill (default: cores) */
  jobs?: number;
  /** PostgreSQL: directory holding pg_dump/pg_restore to use (default: PATH, then /usr/lib/postgresql/* /bin, newest fitting) */
  pgBinDir?: string;
  /** PostgreSQL: run the tools through this command, e.g. "docker exec -i db" */
  commandPrefix?: string;
  /** Physical backups: a point-in-time drill. Restore the base backup and the archived WAL into a throwaway cluster, recover to --target-time (default: a random time inside the recoverable window), run pg_amcheck, and record the point reached and the time it took */
  pitr?: boolean;
  /** With --pitr: the time to recover to (with its zone) */
  targetTime?: string;
  /** With --pitr: the lifeboat command the throwaway server's restore_command runs (default: this lifeboat binary, or lifeboat on PATH) */
  lifeboatCommand?: string;
}

/** Options of `restore` (`lifeboat restore`'s arguments and flags, camelCased). */
export interface RestoreOptions extends CommonOptions, ProgressOptions {
  /** Backup id (or a unique prefix); default: the latest */
  id?: string;
  /** The latest complete backup (the default; refuses an id alongside) */
  latest?: boolean;
  /** Where backups live (default: sink in lifeboat.toml) */
  sink?: string;
  /** Which source's backups, when the sink holds several */
  source?: string;
  /** The age identity file that decrypts encrypted backups (default: identity_file in [encryption]). A path: the key itself never goes on the command line */
  identity?: string;
  /** The database to create: sqlite:///path/restored.db or postgres://user@host/newdb. Never taken from the config */
  target: string;
  /** Replace an existing database (it is kept aside until the new one is proven) */
  force?: boolean;
  /** Wait for another run on the same database instead of exiting 1 */
  wait?: boolean;
  /** Directory for lock files */
  lockDir?: string;
  /** PostgreSQL: create the stored roles and tablespaces this server lacks before the data (existing ones are left unchanged) */
  globals?: boolean;
  /** PostgreSQL: restore without ownership and privileges */
  noOwner?: boolean;
  /** PostgreSQL: parallel pg_restore jobs (default: cores) */
  jobs?: number;
  /** PostgreSQL: restore what loads when the archive does not load cleanly: pg_restore goes on past errors, every error and every table whose rows differ is listed, and the result still takes the target name. Without it, any error fails the restore and leaves the target untouched */
  partial?: boolean;
  /** PostgreSQL: do not ANALYZE the restored database before it takes the name (it then has no planner statistics until autovacuum gets to it) */
  noAnalyze?: boolean;
  /** PostgreSQL: directory holding pg_dump/pg_restore to use (default: PATH, then /usr/lib/postgresql/* /bin, newest fitting) */
  pgBinDir?: string;
  /** PostgreSQL: run the tools through this command, e.g. "docker exec -i db" */
  commandPrefix?: string;
  /** Physical backups: recover to this time (RFC 3339, or 2026-12-03 05:00:00+00; a time zone is required). The newest base backup that ended before it is used; a time before the oldest one or after the newest archived WAL is refused */
  targetTime?: string;
  /** Physical backups: recover to this WAL position (0/3000060) */
  targetLsn?: string;
  /** Physical backups: recover to this transaction id */
  targetXid?: string;
  /** Physical backups: recover to this restore point (pg_create_restore_point) */
  targetName?: string;
  /** Physical backups: the timeline to recover along (default: latest) */
  targetTimeline?: string;
  /** Physical backups: what the server does at the target: promote, pause (PostgreSQL's default) or shutdown */
  targetAction?: string;
  /** Physical backups: the lifeboat command the restored server's restore_command runs (default: this lifeboat binary, or lifeboat on PATH) */
  lifeboatCommand?: string;
  /** Physical backups: start the server on the restored data directory (as the postgres user when run as root), wait until recovery reaches the target (or the end of the archived WAL) and report the exact point reached. The server is left running */
  start?: boolean;
  /** Physical backups: keep the backup's archive_mode, so that the restored server archives its new timeline into the archive (it replaces the primary). Without it the restored server gets archive_mode = off: a copy beside a live primary must not write into that primary's archive */
  keepArchiving?: boolean;
  /** Physical backups, with --start: the port the server listens on (default: its postgresql.conf's) */
  port?: string;
  /** Physical backups: put the tablespace the backup recorded at directory OLD into NEW instead (repeatable; as pg_basebackup -T). Without it each tablespace goes back to its recorded directory, which must not exist or be empty */
  tablespaceMap?: string[];
}

/** Options of `prune` (`lifeboat prune`'s arguments and flags, camelCased). */
export interface PruneOptions extends CommonOptions {
  /** Where backups live (default: sink in lifeboat.toml) */
  sink?: string;
  /** Which source's backups (default: the config's source, or the only one in the sink) */
  source?: string;
  /** Keep the N newest backups */
  keepLast?: number;
  /** Keep every backup of the last D days */
  keepDays?: number;
  /** Keep the newest backup of each of the last N days */
  keepDaily?: number;
  /** Keep the newest backup of each of the last N ISO weeks */
  keepWeekly?: number;
  /** Keep the newest backup of each of the last N months */
  keepMonthly?: number;
  /** Keep what point-in-time recovery to any moment of this window needs (7d): the base backup it starts from, and the WAL after it */
  keepPitr?: Size;
  /** List what would go, and the rule that releases it; delete nothing */
  dryRun?: boolean;
}

/** Options of `status` (`lifeboat status`'s arguments and flags, camelCased). */
export interface StatusOptions extends CommonOptions {
  /** Where backups live (default: every profile's sink in lifeboat.toml) */
  sink?: string;
  /** Only this source (default: every configured source, or every source in the sink) */
  source?: string;
  /** Unhealthy when the newest backup is older than this (default 26h) */
  maxAge?: Size;
  /** Unhealthy when the newest backup's stored size is below this */
  minSize?: Size;
  /** Unhealthy when the newest backup shrank by more than this fraction (0.5 = half) */
  maxSizeDrop?: number;
  /** For a source with a WAL archive: unhealthy when its newest segment is older than this (default 1h) */
  maxWalAge?: Size;
  /** For a source with a WAL archive: the server to read pg_stat_archiver from, unhealthy when archive_command is failing (default: the profile's postgres:// source; "none" to not connect) */
  server?: string;
  /** The sink this one mirrors (lifeboat mirror --from it): unhealthy when its newest backup or WAL file is not here yet after --max-mirror-lag */
  mirrorOf?: string;
  /** With --mirror-of: how far behind the mirror may be (default 2h) */
  maxMirrorLag?: Size;
}

/** Options of `wal_push` (`lifeboat wal push`'s arguments and flags, camelCased). */
export interface WalPushOptions extends CommonOptions {
  /** The WAL file to archive: PostgreSQL's %p */
  path?: string;
  /** Where the archive lives (default: sink in lifeboat.toml) */
  sink?: string;
  /** The source name the archive is kept under, beside that source's backups (default: the config's name, or its source's default name) */
  name?: string;
  /** zstd level, 1 to 19 (default 3) */
  level?: number;
  /** Push the next segments PostgreSQL has marked ready too, at most this many at once (default 4; 1 pushes only the file asked for). From the command line a detached lifeboat pushes them while PostgreSQL's calls return as their markers appear */
  parallel?: number;
  /** Where the markers of segments pushed ahead go (default: a private directory per source name under the temp dir) */
  spoolDir?: string;
  /** Encrypt to this age public key (age1…; repeatable). Only public keys are needed to back up */
  recipients?: string[];
  /** Encrypt to the age public keys in this file (one per line, # comments) */
  recipientsFile?: string;
}

/** Options of `wal_fetch` (`lifeboat wal fetch`'s arguments and flags, camelCased). */
export interface WalFetchOptions extends CommonOptions {
  /** The WAL file's name: PostgreSQL's %f */
  fileName?: string;
  /** Where to write it: PostgreSQL's %p */
  path?: string;
  /** Where the archive lives (default: sink in lifeboat.toml) */
  sink?: string;
  /** The source name the archive is kept under (default: the config's name, or its source's default name) */
  name?: string;
  /** Fetch the next segments ahead too, this many at once (default 4; 1 fetches only the file asked for). From the command line a detached lifeboat keeps twice that many ready while the server replays; each waits in the spool decoded and checked, and is used only while untouched */
  parallel?: number;
  /** Where segments fetched ahead wait (default: a private directory per sink and source name under the temp dir) */
  spoolDir?: string;
  /** The age identity file that decrypts an encrypted archive (default: identity_file in [encryption]) */
  identity?: string;
}

/** Options of `wal_setup` (`lifeboat wal setup`'s arguments and flags, camelCased). */
export interface WalSetupOptions extends CommonOptions {
  /** The server: postgres://user@host/db (default: source in lifeboat.toml) */
  source?: string;
  /** Where the archive lives (default: sink in lifeboat.toml) */
  sink?: string;
  /** The source name the archive is kept under (default: the config's name, or the database's) */
  name?: string;
  /** Connect and check: wal_level, archive_mode, archive_command, archive_timeout, then force a segment switch (pg_switch_wal) and wait until that segment is in the sink. Without it, only print the settings to add */
  check?: boolean;
  /** How long to wait for the switched segment (default 60s) */
  timeout?: Size;
}

/** Options of `mirror` (`lifeboat mirror`'s arguments and flags, camelCased). */
export interface MirrorOptions extends CommonOptions {
  /** The sink to copy from (default: sink in lifeboat.toml) */
  sink?: string;
  /** The sink to copy to: it gets every complete backup, WAL file and verification or drill record it lacks */
  target?: string;
  /** Only this source's backups and WAL (default: every source in the sink) */
  source?: string;
  /** Say what would be copied; copy nothing */
  dryRun?: boolean;
}

/** Options of `doctor` (`lifeboat doctor`'s arguments and flags, camelCased). */
export interface DoctorOptions extends CommonOptions {
  /** The sink to check (default: every profile's sink in lifeboat.toml) */
  sink?: string;
  /** Only this source's backups (default: the profile's) */
  source?: string;
  /** The age identity file to prove against the newest encrypted backup (default: identity_file in [encryption]) */
  identity?: string;
}
