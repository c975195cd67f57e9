import type { Db } from '../db/session.js';
import { qname } from '../db/quote.js';

/**
 * Whether a partitioned table's statistics are still current: autovacuum's own rule for re-analyzing a table
 * (changes since its last ANALYZE above autovacuum_analyze_threshold + autovacuum_analyze_scale_factor × rows),
 * applied to the parent, which autovacuum never analyzes.
 *
 * Phase 3 analyzes the new table right after its copy (the parent's inherited statistics and every partition's),
 * after flushing its sessions' pending statistics so the copy's own inserts do not count as changes since
 * (Db.flushStats). Phase 5 used to analyze it again right after the swap: under pgbench on 2 cores that second
 * ANALYZE, seconds after the first, was where the application's longest transaction fell in four runs of fourteen
 * (54–166 ms against 32–94 ms idle). It now runs only when the statistics are not current:
 *  - the parent has no inherited statistics (pg_stats, inherited), or a partition was never analyzed;
 *  - autovacuum analyzed a partition since pgshift did (that partition changed past the rule by itself: the
 *    parent's sample is older than its rows);
 *  - the changes since (the partitions' n_mod_since_analyze) exceed the rule over the partitions' rows.
 */
export interface ParentStats {
  readonly current: boolean;
  readonly why: string;
  readonly changed: number;
  readonly rows: number;
}

export async function parentStatsCurrent(db: Db, schema: string, table: string): Promise<ParentStats> {
  const [r] = await db.read<{ inherited: boolean; leaves: number; never: number; auto: number; changed: number; rows: number; threshold: number; scale: number }>(
    `SELECT EXISTS (SELECT 1 FROM pg_stats WHERE schemaname = $2 AND tablename = $3 AND inherited) AS inherited,
            count(*)::int AS leaves,
            count(*) FILTER (WHERE s.last_analyze IS NULL AND s.last_autoanalyze IS NULL)::int AS never,
            count(*) FILTER (WHERE s.last_autoanalyze > coalesce(s.last_analyze, '-infinity'))::int AS auto,
            coalesce(sum(s.n_mod_since_analyze), 0)::float8 AS changed,
            coalesce(sum(greatest(c.reltuples, 0)), 0)::float8 AS rows,
            current_setting('autovacuum_analyze_threshold')::float8 AS threshold,
            current_setting('autovacuum_analyze_scale_factor')::float8 AS scale
       FROM pg_partition_tree($1::regclass) t
       JOIN pg_class c ON c.oid = t.relid
       LEFT JOIN pg_stat_all_tables s ON s.relid = t.relid
      WHERE t.isleaf`,
    [qname(schema, table), schema, table],
  );
  if (!r || !r.leaves) return { current: false, why: 'no partitions found', changed: 0, rows: 0 };
  const base = { changed: Math.round(r.changed), rows: Math.round(r.rows) };
  if (!r.inherited) return { ...base, current: false, why: 'the parent has no statistics of its own yet' };
  if (r.never) return { ...base, current: false, why: `${r.never} of ${r.leaves} partition(s) were never analyzed` };
  if (r.auto) return { ...base, current: false, why: `autovacuum re-analyzed ${r.auto} partition(s) since pgshift's ANALYZE: they changed past its rule, so the parent's sample is older than their rows` };
  const rule = `autovacuum's rule (${Math.round(r.threshold)} + ${r.scale} × ${base.rows.toLocaleString('en-US')} rows)`;
  if (r.changed > r.threshold + r.scale * r.rows) return { ...base, current: false, why: `${base.changed.toLocaleString('en-US')} rows changed since the last ANALYZE, over ${rule}` };
  return { ...base, current: true, why: `current: ${base.changed.toLocaleString('en-US')} rows changed since, within ${rule}` };
}
