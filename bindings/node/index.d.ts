// Type definitions for the npm package `lifeboat`.
//
// Options are the `lifeboat` command line's long flags in camelCase
// (`--min-size` → `minSize`, `--exclude-schema` → `excludeSchemas`).
// Results are exactly the JSON `lifeboat <command> --json` prints, so their
// keys are snake_case like the stored manifests.

/** The kind of failure; also `LifeboatError.code`. */
export type ErrorCode =
  | 'locked'
  | 'source'
  | 'sink'
  | 'not_found'
  | 'verification'
  | 'restore'
  | 'health'
  | 'usage'
  | 'config'
  | 'cancelled';

/** Exit codes of the `lifeboat` command line, by error code. */
export declare const EXIT_CODES: Readonly<Record<ErrorCode, number>>;

/** Every failure of a Lifeboat operation. */
export declare class LifeboatError extends Error {
  readonly name: 'LifeboatError';
  /** The kind of failure, to branch on (never parse `message`). */
  readonly code: ErrorCode;
  /** The exit code the `lifeboat` command line uses for this failure. */
  readonly exitCode: number;
  /** Whether the same call, repeated unchanged, may succeed. */
  readonly retryable: boolean;
}

export type Phase = 'snapshot' | 'upload' | 'verify' | 'download';

export interface ProgressEvent {
  phase: Phase;
  /** Bytes done in this phase so far (upload: raw bytes; download: stored bytes). */
  bytes: number;
  /** The phase's size in bytes, when known. */
  total: number | null;
  /** `true` on the phase's last event. */
  done: boolean;
}

export * from './options';
import type {
  BackupOptions,
  DrillOptions,
  DoctorOptions,
  ListOptions,
  MirrorOptions,
  PruneOptions,
  RestoreOptions,
  StatusOptions,
  VerifyOptions,
  WalFetchOptions,
  WalPushOptions,
  WalSetupOptions,
} from './options';

export interface TableCount {
  name: string;
  rows: number;
}

export interface Fingerprint {
  tables: TableCount[];
  server_version: string;
  details?: Record<string, unknown>;
}

export interface Verdict {
  verifier: string;
  passed: boolean;
  detail: string;
  duration_ms: number;
  /** RFC 3339 UTC. */
  checked_at: string;
}

export interface Manifest {
  format: string;
  format_version: number;
  backup_id: string;
  source: { kind: string; name: string; location: string };
  started_at: string;
  finished_at: string;
  host: string;
  tool: { name: string; version: string };
  artifact: {
    key: string;
    raw_size: number;
    stored_size: number;
    sha256: string;
    compression: { algorithm: string; level: number };
    encryption: string | null;
    /** What the decompressed bytes are: `sqlite3 database file`, `pg_dump custom-format archive (pg_restore)`. */
    format?: string;
  };
  fingerprint: Fingerprint;
  verdicts: Verdict[];
  attachments?: {
    name: string;
    key: string;
    raw_size: number;
    stored_size: number;
    sha256: string;
    compression?: { algorithm: string; level: number };
    format?: string;
  }[];
  /** Where the objects are, and how to restore the backup by hand with standard tools. */
  storage?: {
    sink: string;
    prefix: string;
    artifact_bucket_key: string;
    attachment_bucket_keys?: string[];
    manual_restore: string[];
  };
}

/** How far a backup is proven: restored in a drill, checked (no drill), or failed. */
export type Assurance = 'drilled' | 'checked' | 'failed';

export interface BackupResult {
  backups: {
    manifest: Manifest;
    location: string;
    duration_ms: number;
    /** The restore drill's verdict, when one ran before the commit. A failed one rejects with `code: 'verification'` (the backup is committed, not verified). */
    drill: Verdict | null;
    /** Why the drill could not run, if it could not (the backup is committed as checked). */
    drill_error?: string;
  }[];
}

export interface IncompleteBackup {
  dir: string;
  source: string;
  backup_id: string;
  bytes: number;
  last_modified: string;
  reason: string;
}

/** What an interrupted write left in the sink: an open multipart upload or a hidden partial file. */
export interface Leftover {
  key: string;
  id: string;
  started: string;
  /** Older than the grace period: `prune` and the next backup remove it. */
  stale: boolean;
}

export interface ListResult {
  location: string;
  /** Oldest first, by recorded start time. */
  complete: (Manifest & { assurance: Assurance })[];
  /** A manifest exists but cannot be read (a newer format, a garbled body): kept, never pruned, never restored from. */
  unreadable: IncompleteBackup[];
  /** No manifest at all (an interrupted run): removed by `prune` after the grace period. */
  incomplete: IncompleteBackup[];
  /** What interrupted runs left: in the sink, and temporary directories on this host. */
  leftovers: { uploads: Leftover[]; local: { path: string; bytes: number }[]; databases?: string[] };
}

export interface VerifyResult {
  backup_id: string;
  source: string;
  location: string;
  passed: boolean;
  verdicts: Verdict[];
  duration_ms: number;
}

/** What applying a backup's stored roles (`globals: true` on restore) did. */
export interface GlobalsReport {
  roles_created: string[];
  /** Roles that already existed: attributes, passwords and memberships left unchanged. */
  roles_skipped: string[];
  tablespaces_created: string[];
  tablespaces_skipped: string[];
  not_applied: string[];
  errors: string[];
  /** The backup stored its roles without passwords. */
  without_passwords: boolean;
}

export interface RestoreResult {
  backup_id: string;
  target: string;
  bytes: number;
  replaced: boolean;
  fingerprint: Fingerprint;
  duration_ms: number;
  /** PostgreSQL: whether the restored database was analyzed (planner statistics) before it took the name, and how long that took. */
  analyzed?: boolean;
  analyze_ms?: number;
  /** PostgreSQL: what killed restores and drills had left on the server and this run removed (or renamed back). */
  leftovers_cleaned?: string[];
  /** PostgreSQL with `partial: true`: pg_restore's errors, and what differs from the backup. */
  partial?: boolean;
  errors?: string[];
  tables_differing?: string[];
  /** PostgreSQL with `globals: true`. */
  globals?: GlobalsReport;
  /** PostgreSQL with `noOwner`: database settings skipped for roles the server lacks. */
  settings_skipped?: string[];
}

/** Take a backup, verify it, and commit it with its manifest. */
export declare function backup(options?: BackupOptions): Promise<BackupResult>;
/** List the backups in a sink, complete and incomplete. A failed listing rejects; it is never an empty list. */
export declare function list(options?: ListOptions): Promise<ListResult>;
/** Prove a stored backup again: size, checksum, and the data itself. Rejects with `code: 'verification'` when a check fails. */
export declare function verify(options?: VerifyOptions): Promise<VerifyResult>;
/**
 * Restore a stored backup into a scratch database (a throwaway cluster, a drill server, or a
 * scratch SQLite file), compare it with the backup, run the smoke checks, drop it, and record
 * the evidence. Rejects with `code: 'verification'` when it differs.
 */
export declare function drill(options?: DrillOptions): Promise<VerifyResult>;
/** Restore a backup into a new SQLite file or PostgreSQL database. */
export declare function restore(options: RestoreOptions): Promise<RestoreResult>;
export interface PruneDecision {
  backup_id: string;
  dir: string;
  started_at: string;
  keep: boolean;
  /** The rules that keep it, or why it goes. */
  reasons: string[];
  incomplete: boolean;
  /** Its manifest cannot be read: always kept. */
  unreadable: boolean;
}

export interface PruneResult {
  decisions: PruneDecision[];
  deleted: string[];
  dry_run: boolean;
  /** What interrupted writes left for this source; the stale ones are removed unless dry. */
  leftovers: Leftover[];
  leftovers_removed: number;
}

export interface SourceStatus {
  source: string;
  backups: number;
  incomplete: number;
  /** Backups whose manifest cannot be read (each makes the source unhealthy). */
  unreadable: number;
  newest: null | {
    backup_id: string;
    started_at: string;
    age_secs: number;
    stored_size: number;
    raw_size: number;
    verified: boolean;
    /** Restored in a drill (at backup time or by a later drill), only checked, or failed. */
    assurance: Assurance;
    previous_raw_size: number | null;
  };
  last_verification: null | { at: string; passed: boolean; backup_id: string; key: string; decrypted_with?: string[] };
  last_drill: null | { at: string; passed: boolean; backup_id: string; key: string };
  problems: string[];
  healthy: boolean;
}

/** Apply retention to one source's backups (the newest verified one always stays). */
export declare function prune(options?: PruneOptions): Promise<PruneResult>;
/** What `mirror` copied (or, with `dryRun`, would copy). */
export interface MirrorResult {
  from: string;
  to: string;
  dry_run: boolean;
  /** Backups copied and committed in the target, by id. */
  backups: string[];
  /** Backups the target already had. */
  backups_present: number;
  wal_files: number;
  records: number;
  bytes: number;
  failures: string[];
  duration_ms: number;
}
/** Copy what `sink` has and `target` lacks, checked, manifests last; resumable. */
export declare function mirror(options: MirrorOptions): Promise<MirrorResult>;
/** What `doctor` found for one sink. */
export interface DoctorReport {
  sink: string;
  /** `credentials`, `clock`, `source`, `temp-space`, `archiving`, `decrypt`. */
  checks: { name: string; ok: boolean; detail: string }[];
  /** The failed checks; empty when healthy. */
  problems: string[];
}
/** Check what silently breaks backups; problems are a result, not a rejection. */
export declare function doctor(options?: DoctorOptions): Promise<DoctorReport[]>;
/** Health of each source; unhealthy ones are `healthy: false`, not rejections. */
export declare function status(options?: StatusOptions): Promise<SourceStatus[]>;
/** What `walPush` did. */
export interface WalPushResult {
  name: string;
  key: string;
  size: number;
  stored_size: number;
  sha256: string;
  /** The same file was already archived: nothing was written. */
  already_archived: boolean;
  duration_ms: number;
}

/** What `walFetch` did. */
export interface WalFetchResult {
  name: string;
  path: string;
  size: number;
  sha256: string;
  /** An earlier call had fetched it ahead into the spool. */
  prefetched: boolean;
  duration_ms: number;
}

/** The server's `pg_stat_archiver` row. */
export interface ArchiverStats {
  archived_count: number;
  last_archived_wal: string | null;
  last_archived_time: string | null;
  failed_count: number;
  last_failed_wal: string | null;
  last_failed_time: string | null;
}

/**
 * Archive one PostgreSQL WAL file (`archive_command`). Resolves once it is
 * stored; a different file under the same name, or another cluster's
 * segment, rejects with `code: 'verification'`.
 */
export declare function walPush(options: WalPushOptions): Promise<WalPushResult>;
/**
 * Fetch one archived WAL file into `path` (`restore_command`); rejects with
 * `code: 'not_found'` when the archive does not have it.
 */
export declare function walFetch(options: WalFetchOptions): Promise<WalFetchResult>;
/** What `walSetup` found. */
export interface WalSetupResult {
  /** The postgresql.conf lines for archiving into this sink. */
  conf_lines: string[];
  settings: { name: string; value: string; wanted: string; ok: boolean }[];
  switched_segment: string | null;
  archived_in_ms: number | null;
  archiver: ArchiverStats | null;
  /** What is wrong; empty when archiving works. */
  problems: string[];
}
/** Check a server's archiving settings (with `check: true`, prove a switched segment lands). */
export declare function walSetup(options?: WalSetupOptions): Promise<WalSetupResult>;
/**
 * Run the `lifeboat` command line in this process with `args` (no program
 * name) and return its exit code. Blocks the event loop until done.
 */
export declare function runCli(args: string[]): number;
/** The option names an operation takes, in camelCase (its typed Rust arguments' fields). */
export declare function optionNames(op: 'backup' | 'list' | 'verify' | 'drill' | 'restore' | 'prune' | 'status' | 'wal_push' | 'wal_fetch' | 'wal_setup' | 'mirror' | 'doctor'): string[];
/** Send Lifeboat's logs to stderr (text or JSON lines), as the CLI does. Off by default. */
export declare function initLogging(options?: { json?: boolean; verbose?: number; quiet?: boolean }): void;
