import type { Db } from '../db/session.js';
import { displayName, qname } from '../db/quote.js';
import type { LogLevel, Progress } from '../engine/types.js';

/**
 * VACUUM of the new table's partitions right after the copy, so autovacuum is not due on them at the swap.
 *
 * Every partition the copy filled has just received all its rows: since PostgreSQL 13 that makes it due for an
 * insert-triggered autovacuum (autovacuum_vacuum_insert_threshold + _scale_factor), which then runs on each freshly
 * loaded partition — often right when phase 5 wants its lock. The swap takes its locks with a lock_timeout below
 * deadlock_timeout (so that pgshift, never the application, is the one that gives up), and that is exactly why such
 * an autovacuum never yields to it: PostgreSQL cancels an autovacuum only after a waiter has waited deadlock_timeout.
 * Measured at 20,000,000 rows: the swap retried for 18 s behind one. Doing that VACUUM here, with autovacuum's own
 * cost-based delay when the table is live, is the same work done earlier and under pgshift's eye: the visibility map
 * and hint bits are set (the integrity check's scan no longer dirties every page) and the insert counters reset.
 *
 * Plain VACUUM (no FREEZE: what autovacuum would do), SKIP_LOCKED (a partition an autovacuum is on already is left
 * to it), one partition at a time on a session of its own (VACUUM cannot run in a transaction block), SHARE UPDATE
 * EXCLUSIVE on that partition only: the background replay's writes to the new table go on.
 */

export interface VacuumTarget {
  readonly schema: string;
  readonly name: string;
  readonly pages: number;
  /** never vacuumed, or rows inserted since its last vacuum */
  readonly due: boolean;
}

export interface VacuumResult {
  readonly partitions: number;
  readonly vacuumed: string[];
  /** skipped because another session (an autovacuum) held a conflicting lock */
  readonly skipped: string[];
  readonly ms: number;
  readonly stopped: boolean;
}

/** The leaf partitions of `parent` (a qualified, quoted name), largest first, and whether each is due. */
export async function vacuumTargets(db: Db, parent: string): Promise<VacuumTarget[]> {
  const rows = await db.read<{ schema: string; name: string; pages: number; due: boolean }>(
    `SELECT n.nspname AS schema, c.relname AS name, c.relpages::int AS pages,
            (s.relid IS NULL OR (s.last_vacuum IS NULL AND s.last_autovacuum IS NULL) OR s.n_ins_since_vacuum > 0) AS due
       FROM pg_partition_tree($1::regclass) t
       JOIN pg_class c ON c.oid = t.relid
       JOIN pg_namespace n ON n.oid = c.relnamespace
       LEFT JOIN pg_stat_all_tables s ON s.relid = t.relid
      WHERE t.isleaf
      ORDER BY c.relpages DESC, c.relname`,
    [parent],
  );
  return rows;
}

/** The statement for one partition: what the preview shows and the journal records. */
export const vacuumSql = (schema: string, name: string) => `VACUUM (SKIP_LOCKED) ${qname(schema, name)}`;

/** autovacuum's default cost delay: the pace when the application is live */
export const LIVE_VACUUM_COST_DELAY_MS = 2;

export async function vacuumPartitions(db: Db, opts: {
  readonly stepId: string;
  /** qualified, quoted name of the partitioned table */
  readonly parent: string;
  readonly costDelayMs: number;
  readonly lockTimeoutMs: number;
  readonly signal?: AbortSignal;
  readonly log: (message: string, level?: LogLevel) => void;
  readonly progress: (p: Progress) => void;
}): Promise<VacuumResult> {
  const t0 = performance.now();
  const all = await vacuumTargets(db, opts.parent);
  const due = all.filter((p) => p.due);
  const vacuumed: string[] = [];
  const skipped: string[] = [];
  for (const [i, p] of due.entries()) {
    if (opts.signal?.aborted) return { partitions: all.length, vacuumed, skipped, ms: performance.now() - t0, stopped: true };
    const q = displayName(p.schema, p.name);
    opts.progress({ done: i, total: due.length, unit: 'partitions', detail: `VACUUM ${q} (${p.pages.toLocaleString('en-US')} pages${opts.costDelayMs ? `, cost delay ${opts.costDelayMs} ms` : ''})` });
    let skippedNow = false;
    await db.outsideTx(vacuumSql(p.schema, p.name), {
      stepId: opts.stepId, lockTimeoutMs: opts.lockTimeoutMs, settings: { vacuum_cost_delay: String(opts.costDelayMs) },
      onNotice: (m) => {
        if (/skipping vacuum of/i.test(m)) skippedNow = true;
      },
    });
    if (skippedNow) {
      skipped.push(q);
      opts.log(`VACUUM ${q} skipped: another session (an autovacuum worker, most likely) holds a lock on it right now; it is being vacuumed, which is what this step wants`);
    } else vacuumed.push(q);
  }
  opts.progress({ done: due.length, total: due.length, unit: 'partitions' });
  return { partitions: all.length, vacuumed, skipped, ms: performance.now() - t0, stopped: false };
}
