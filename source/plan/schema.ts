import { z } from 'zod';

export const INTERVALS = ['1 day', '1 week', '1 month', '3 months', '1 year'] as const;
const identifier = z.string().min(1, 'expected a non-empty name').max(63, 'expected at most 63 characters (PostgreSQL truncates longer names)');
const qualified = z.string().min(1, 'expected a table name like "public.orders"');
const relPath = z.string().min(1, 'expected a file path relative to the plan file');

const PartitioningFields = z
  .object({
    /** source table, "table" or "schema.table" */
    source: qualified,
    /** new partitioned table; default "<source>_partitioned" */
    target: identifier.optional(),
    strategy: z.enum(['range', 'list']),
    /** partition key column */
    key: identifier,
    /** range: width of each partition — a calendar interval for date/timestamp keys, a number (e.g. 100000) for integer/bigint/numeric keys */
    interval: z.union([z.enum(INTERVALS), z.number().int().positive().max(Number.MAX_SAFE_INTEGER)], {
      error: `expected one of ${INTERVALS.map((i) => JSON.stringify(i)).join(', ')} (date/timestamp keys) or a whole number > 0 such as 100000 (integer keys)`,
    }).optional(),
    /** range: how many future partitions beyond the data's max, default 3 */
    premake: z.number().int().min(0).max(120).default(3),
    /** range: first bound (YYYY-MM-DD); default: from the data's real minimum */
    start: z.string().regex(/^\d{4}-\d{2}-\d{2}$/, 'expected a date YYYY-MM-DD').optional(),
    /** list: SQL returning one column, the list values (seed 003: SELECT program_id FROM pilot_programs) */
    values: z.object({ query: z.string().min(1, 'expected a SELECT returning the list values') }).strict().optional(),
    /** a DEFAULT partition catches rows outside every bound */
    defaultPartition: z.boolean().default(true),
    /** list: create a partition whenever a new value is born in this table (trigger there, not on the observations) */
    autoPartitions: z
      .object({ table: qualified, column: identifier })
      .strict()
      .optional(),
    /** inbound foreign keys: referencing table → its column holding the partition key (when not named like the key) */
    inboundKeyColumns: z.record(z.string(), identifier).default({}),
    /**
     * referencing tables WITHOUT the partition key (the partitioned parent when the referencing table is partitioned):
     * pgshift adds the column (named per inboundKeyColumns, else like the key), fills it in keyset batches, keeps it
     * filled by a trigger, and re-creates the FK on it so it refuses what it refused before; the rollback removes it
     */
    addKeyColumns: z.array(qualified).default([]),
  })
  .strict()
  .superRefine((t, ctx) => {
    if (t.strategy === 'range' && !t.interval) {
      ctx.addIssue({ code: 'custom', path: ['interval'], message: `expected one of ${INTERVALS.map((i) => JSON.stringify(i)).join(', ')} (date/timestamp keys) or a whole number such as 100000 (integer keys) for a range partitioning` });
    }
    if (t.strategy === 'list' && !t.values) {
      ctx.addIssue({ code: 'custom', path: ['values'], message: 'expected { "query": "SELECT …" } giving the list values for a list partitioning' });
    }
    if (t.strategy === 'range' && t.values) {
      ctx.addIssue({ code: 'custom', path: ['values'], message: 'values is for list partitioning; range partitioning uses interval' });
    }
    if (t.strategy === 'list' && t.interval) {
      ctx.addIssue({ code: 'custom', path: ['interval'], message: 'interval is for range partitioning; list partitioning uses values' });
    }
    if (t.strategy !== 'list' && t.autoPartitions) {
      ctx.addIssue({ code: 'custom', path: ['autoPartitions'], message: 'automatic partitions are for list partitioning only' });
    }
  });

/**
 * An entry of the plan's "partition" list, as the code sees it: a range entry has its interval, a list entry its
 * values query, and nothing else needs a non-null assertion or a cast to know which.
 */
interface PartitioningCommon {
  readonly source: string;
  readonly target?: string;
  readonly key: string;
  readonly defaultPartition: boolean;
  readonly inboundKeyColumns: Record<string, string>;
  readonly addKeyColumns: string[];
}
export interface RangePartitioning extends PartitioningCommon {
  readonly strategy: 'range';
  /** a calendar interval (date/timestamp keys) or a width in ids (integer keys) */
  readonly interval: (typeof INTERVALS)[number] | number;
  readonly premake: number;
  readonly start?: string;
}
export interface ListPartitioning extends PartitioningCommon {
  readonly strategy: 'list';
  readonly values: { readonly query: string };
  readonly autoPartitions?: { readonly table: string; readonly column: string };
}
export type Partitioning = RangePartitioning | ListPartitioning;

/** The validated fields, narrowed by strategy (superRefine above has already named what is missing). */
const Partitioning = PartitioningFields.transform((t): Partitioning => {
  const { strategy, interval, premake, start, values, autoPartitions, ...common } = t;
  if (strategy === 'range') return interval === undefined ? z.NEVER : { ...common, strategy, interval, premake, start };
  return values === undefined ? z.NEVER : { ...common, strategy, values, autoPartitions };
});

export const PlanSchema = z
  .object({
    $schema: z.string().optional(),
    version: z.literal(1, { error: 'expected 1 (the plan format version)' }),
    name: z.string().min(1, 'expected a name for this migration'),
    /** SQL files per phase, relative to the plan file, applied in order */
    sql: z
      .object({
        structure: z.array(relPath).default([]),
        dependencies: z.array(relPath).default([]),
      })
      .strict()
      .default({ structure: [], dependencies: [] }),
    partition: z.array(Partitioning).prefault([]),
    copy: z
      .object({
        mode: z.enum(['batch', 'online']).default('batch'),
        batchRows: z.number().int().min(100).max(1_000_000).default(10_000),
        pauseMs: z.number().int().min(0).max(60_000).default(0),
        /**
         * 'physical' (default): batches of the source's pages in their physical order (PostgreSQL 14+, TID range
         * scans; the change capture covers rows that move); 'key': batches in (partition key, primary key) order.
         */
        order: z.enum(['physical', 'key']).default('physical'),
        throttle: z
          .object({
            /** slow down when a session has waited this long on a lock pgshift holds */
            lockWaitMs: z.number().int().min(0).default(1000),
            /** slow down while a query runs longer than this */
            longQuerySeconds: z.number().int().min(1).default(30),
          })
          .strict()
          .default({ lockWaitMs: 1000, longQuerySeconds: 30 }),
      })
      .strict()
      .default({ mode: 'batch', batchRows: 10_000, pauseMs: 0, order: 'physical', throttle: { lockWaitMs: 1000, longQuerySeconds: 30 } }),
    pruning: z
      .object({
        queries: z.array(z.object({ name: z.string().min(1), table: qualified, sql: z.string().min(1) }).strict()).default([]),
      })
      .strict()
      .default({ queries: [] }),
    retention: z.object({ days: z.number().min(0).max(365).default(7) }).strict().default({ days: 7 }),
    monitor: z
      .object({ longQuerySeconds: z.number().int().min(1).default(30), refreshMs: z.number().int().min(250).default(1000) })
      .strict()
      .default({ longQuerySeconds: 30, refreshMs: 1000 }),
    backup: z
      .object({
        directory: z.string().min(1).default('./backups'),
        format: z.enum(['custom', 'directory']).default('custom'),
        verify: z.enum(['list', 'restore']).default('list'),
        required: z.boolean().default(true),
        /**
         * pg_dump --compress (gzip level, 0-9). 1 by default, not pg_dump's 6: on a pgbench database it halved
         * pg_dump's own CPU beyond the COPY (0.35 → 0.20 s of a core for 1,000,000 rows) for a 1.7 % larger archive,
         * and the backup runs beside the live application
         */
        compress: z.number().int().min(0).max(9).default(1),
      })
      .strict()
      .default({ directory: './backups', format: 'custom', verify: 'list', required: true, compress: 1 }),
    locks: z
      .object({
        timeoutMs: z.number().int().min(50).max(60_000).default(2000),
        attempts: z.number().int().min(1).max(100).default(10),
        backoffMs: z.number().int().min(10).max(60_000).default(250),
        maxBackoffMs: z.number().int().min(10).max(300_000).default(5000),
      })
      .strict()
      .default({ timeoutMs: 2000, attempts: 10, backoffMs: 250, maxBackoffMs: 5000 }),
    /** the cut-over (swap, swap back): the exclusive lock is only taken when the captured remainder fits maxLockMs */
    swap: z
      .object({
        maxLockMs: z.number().int().min(10).max(60_000).default(100),
        /** give up catching up (nothing locked or renamed) when writes outpace the replay this long */
        catchUpTimeoutSec: z.number().int().min(1).max(86_400).default(600),
      })
      .strict()
      .default({ maxLockMs: 100, catchUpTimeoutSec: 600 }),
  })
  .strict();

export type Plan = z.infer<typeof PlanSchema>;
/** A list entry's automatic partitions (a range entry has none). */
export function autoPartitionsOf(t: Partitioning): ListPartitioning['autoPartitions'] {
  return t.strategy === 'list' ? t.autoPartitions : undefined;
}

/** A partitioning entry with names resolved. */
export type TablePlan = Partitioning & {
  readonly schema: string;
  readonly table: string;
  readonly targetName: string;
  /** "<table>_old" after the swap */
  readonly oldName: string;
};
