// A real streaming replica (hot standby) of a running embedded PostgreSQL, for
// tests and benchmarks of replica reads. The system's pg_basebackup may be
// older than the embedded server (and cannot back it up), so the base backup
// is taken with PostgreSQL's low-level API ("Making a Base Backup Using the
// Low Level API" in the PostgreSQL manual), on one session:
//   a physical slot on the primary (created first, so the WAL from the
//   backup's start on is kept until the standby has streamed it),
//   pg_backup_start(fast), a copy of the data directory without what the
//   manual says to leave out, pg_backup_stop() whose labelfile becomes the
//   copy's backup_label;
// then standby.signal, primary_conninfo (the superuser, which may replicate
// over TCP by initdb's pg_hba) and primary_slot_name, and the copy started as
// an embedded server of its own on a free port (startEmbeddedPostgres finds a
// cluster in place and does not run initdb).
import { randomBytes } from 'node:crypto';
import { chownSync, copyFileSync, lstatSync, mkdirSync, readdirSync, readlinkSync, symlinkSync, writeFileSync, appendFileSync } from 'node:fs';
import path from 'node:path';
import pg from 'pg';
import { ServiceUnavailableError } from '../errors.ts';
import type { Logger } from '../log.ts';
import { runAs, startEmbeddedPostgres, type RunningPostgres } from './postgres.ts';
import { freePort, sleep } from './processes.ts';

export interface StreamingReplicaOptions {
  /** Directory for the replica's cluster, credentials and log (removed on stop). */
  dir: string;
  log: Logger;
  /** Extra server settings for the replica (-c name=value). */
  settings?: Record<string, string>;
}

export interface StreamingReplica extends RunningPostgres {
  /** The physical replication slot on the primary that keeps the replica's WAL (dropped on stop). */
  slot: string;
}

/** Left out of the copy: files the manual lists as not to copy. */
const SKIPPED_FILES = new Set([
  'postmaster.pid', 'postmaster.opts', 'backup_label', 'backup_label.old', 'tablespace_map', 'backup_manifest',
  'current_logfiles', 'postgresql.auto.conf.tmp', 'standby.signal', 'recovery.signal', 'pg_internal.init',
]);
/** Directories copied empty: the standby fills pg_wal by streaming; the others are runtime state. */
const EMPTIED_DIRECTORIES = new Set([
  'pg_wal', 'pg_replslot', 'pg_dynshmem', 'pg_notify', 'pg_serial', 'pg_snapshots', 'pg_stat_tmp', 'pg_subtrans',
]);
/** Settings a hot standby must have at least as high as its primary (it refuses to start otherwise). */
const AT_LEAST_PRIMARY = ['max_connections', 'max_worker_processes', 'max_wal_senders', 'max_prepared_transactions', 'max_locks_per_transaction'];

/**
 * Copies a data directory that a running server is changing: a file removed
 * while we walk (a temporary file, a dropped relation) is simply not copied;
 * WAL replay from the backup's start makes the torn copies consistent.
 */
function copyCluster(from: string, to: string, top = true): void {
  mkdirSync(to, { recursive: true, mode: 0o700 });
  let entries;
  try {
    entries = readdirSync(from, { withFileTypes: true });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw error;
  }
  for (const entry of entries) {
    const source = path.join(from, entry.name);
    const target = path.join(to, entry.name);
    if (SKIPPED_FILES.has(entry.name) || entry.name.startsWith('pgsql_tmp')) continue;
    try {
      if (entry.isSymbolicLink()) symlinkSync(readlinkSync(source), target);
      else if (entry.isDirectory()) {
        if (top && EMPTIED_DIRECTORIES.has(entry.name)) mkdirSync(target, { mode: 0o700 });
        else copyCluster(source, target, false);
      } else if (entry.isFile()) copyFileSync(source, target);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    }
  }
  if (top) for (const sub of ['archive_status', 'summaries']) mkdirSync(path.join(to, 'pg_wal', sub), { mode: 0o700 });
}

function chownTree(dir: string, user: { uid: number; gid: number }): void {
  chownSync(dir, user.uid, user.gid);
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) chownTree(full, user);
    else if (lstatSync(full).isSymbolicLink()) continue;
    else chownSync(full, user.uid, user.gid);
  }
}

/** A libpq conninfo value, quoted. */
const conninfoValue = (value: string) => `'${value.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
/** A postgresql.conf string value, quoted. */
const confValue = (value: string) => `'${value.replace(/'/g, "''")}'`;

/**
 * Starts a hot standby streaming from `primary` (an embedded server this
 * process can reach as its superuser). Resolves once the standby answers
 * queries and its WAL receiver streams.
 */
export async function startStreamingReplica(primary: Pick<RunningPostgres, 'url'>, options: StreamingReplicaOptions): Promise<StreamingReplica> {
  const { dir, log } = options;
  const primaryUrl = new URL(primary.url('postgres'));
  const slot = `stockroom_replica_${randomBytes(4).toString('hex')}`;
  const client = new pg.Client({ connectionString: primaryUrl.toString() });
  client.on('error', () => {}); // a primary gone meanwhile fails the query in flight, which says so
  await client.connect();
  let slotMade = false;
  const dropSlot = async () => {
    const admin = new pg.Client({ connectionString: primaryUrl.toString(), connectionTimeoutMillis: 2000 });
    admin.on('error', () => {});
    try {
      await admin.connect();
      for (let attempt = 0; attempt < 50; attempt++) {
        // Active for a moment after the standby stops.
        const { rows: [row] } = await admin.query<{ active: boolean }>('select active from pg_replication_slots where slot_name = $1', [slot]);
        if (!row) return;
        if (!row.active) {
          await admin.query('select pg_drop_replication_slot($1)', [slot]);
          return;
        }
        await sleep(100);
      }
    } catch {
      /* the primary is gone: so is its slot's purpose */
    } finally {
      await admin.end().catch(() => {});
    }
  };
  try {
    const { rows: [dataDirectory] } = await client.query<{ source: string }>(`select current_setting('data_directory') as source`);
    const source = dataDirectory!.source;
    const { rows: limits } = await client.query<{ name: string; setting: string }>('select name, setting from pg_settings where name = any($1)', [AT_LEAST_PRIMARY]);
    await client.query('select pg_create_physical_replication_slot($1, true)', [slot]);
    slotMade = true;

    const cluster = path.join(dir, 'cluster');
    mkdirSync(dir, { recursive: true });
    await client.query(`select pg_backup_start($1, fast => true)`, [`stockroom replica ${slot}`]);
    try {
      copyCluster(source, cluster);
    } finally {
      // Always ended, or the primary would stay in backup mode until this session closes.
      const { rows: [label] } = await client.query<{ labelfile: string; spcmapfile: string | null }>('select labelfile, spcmapfile from pg_backup_stop(wait_for_archive => false)');
      writeFileSync(path.join(cluster, 'backup_label'), label!.labelfile);
      if (label!.spcmapfile) writeFileSync(path.join(cluster, 'tablespace_map'), label!.spcmapfile);
    }
    writeFileSync(path.join(cluster, 'standby.signal'), '');
    const conninfo = [
      `host=${conninfoValue(primaryUrl.hostname)}`, `port=${primaryUrl.port || '5432'}`,
      `user=${conninfoValue(decodeURIComponent(primaryUrl.username))}`, `password=${conninfoValue(decodeURIComponent(primaryUrl.password))}`,
      `application_name=${slot}`,
    ].join(' ');
    // In postgresql.auto.conf (mode 0600) rather than on the command line, where ps would show the password.
    appendFileSync(path.join(cluster, 'postgresql.auto.conf'),
      `\n# streaming replica made by Stockroom's harness\nprimary_conninfo = ${confValue(conninfo)}\nprimary_slot_name = ${confValue(slot)}\n`);
    // The same superuser password as the primary (the copy has its pg_authid); the embedded server reads it from here.
    writeFileSync(path.join(dir, 'credentials.json'), JSON.stringify({ password: decodeURIComponent(primaryUrl.password), port: await freePort() }), { mode: 0o600 });
    const user = runAs();
    if (user) chownTree(dir, user);

    const server = await startEmbeddedPostgres({
      dir, persistent: false, log,
      settings: {
        ...Object.fromEntries(limits.map((l) => [l.name, l.setting])),
        hot_standby: 'on',
        // Queries on the standby hold back cleanup on the primary instead of being cancelled by replay.
        hot_standby_feedback: 'on',
        ...options.settings,
      },
    });
    const replica: StreamingReplica = {
      port: server.port, pid: server.pid, owned: true, url: server.url, slot,
      stop: async () => {
        await server.stop();
        await dropSlot();
      },
    };
    try {
      await waitForStreaming(replica.url('postgres'));
    } catch (error) {
      await replica.stop();
      throw error;
    }
    log.info({ port: replica.port, slot }, 'streaming replica started');
    return replica;
  } catch (error) {
    if (slotMade) await dropSlot();
    throw error;
  } finally {
    await client.end().catch(() => {});
  }
}

async function waitForStreaming(url: string): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  client.on('error', () => {});
  await client.connect();
  try {
    const deadline = Date.now() + 30_000;
    for (;;) {
      const { rows: [row] } = await client.query<{ status: string | null }>(`select (select status from pg_stat_wal_receiver) as status`);
      if (row?.status === 'streaming') return;
      if (Date.now() > deadline) throw new ServiceUnavailableError(`the streaming replica did not start streaming within 30 s (WAL receiver: ${row?.status ?? 'none'})`);
      await sleep(50);
    }
  } finally {
    await client.end();
  }
}
