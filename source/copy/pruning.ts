import { gentleAnalyze, type Db } from '../db/session.js';
import type { Plan, TablePlan } from '../plan/schema.js';
import type { ReportTable } from '../engine/types.js';
import { parseQualified, displayName } from '../db/quote.js';
import { resolvePair, type Rel } from './meta.js';

/**
 * Seed 003 step 3, done properly: EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) of each plan.pruning query on the old
 * table and on the new one, side by side — time, shared buffers, and how many partitions the new plan really
 * scanned (a partition scan node that ran at least once; "never executed" nodes and "Subplans Removed" are the
 * pruned ones, at plan time or at run time).
 *
 * The query is pointed at the new table by replacing the qualified name token (schema.table, either part quoted
 * or not, outside string literals, quoted identifiers and comments, and only when not followed by more identifier
 * characters: public.petri_observations_summary is left alone). search_path was the other option, but the plan's
 * queries name their tables with the schema (as they should), and a search_path trick would also redirect every
 * other unqualified name. Each EXPLAIN ANALYZE runs in a READ ONLY transaction that is rolled back, with a
 * statement_timeout, so a query that writes can never change anything.
 */

export interface PruningResult {
  readonly name: string;
  readonly table: string;
  readonly target: string;
  readonly oldMs: number | null;
  readonly newMs: number | null;
  readonly oldBuffers: number | null;
  readonly newBuffers: number | null;
  readonly scanned: number | null;
  readonly total: number | null;
  readonly sentence: string;
  readonly ok: boolean;
}

function escapeRe(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** Replace `schema.table` (each part bare or quoted) with `replacement`, outside literals/comments/quoted names. */
export function retarget(sql: string, schema: string, table: string, replacement: string): { sql: string; count: number } {
  const part = (name: string, leading: boolean) => {
    const quoted = `"${escapeRe(name.replace(/"/g, '""'))}"`;
    const bare = /^[a-z_][a-z0-9_$]*$/.test(name) ? escapeRe(name) : null;
    const ci = bare?.replace(/[a-z]/g, (c) => `[${c}${c.toUpperCase()}]`);
    return bare ? `(?:${quoted}|${leading ? '(?<![A-Za-z0-9_$".])' : ''}${ci})` : quoted;
  };
  const re = new RegExp(`(?<![A-Za-z0-9_$".])${part(schema, true)}\\s*\\.\\s*${part(table, false)}(?![A-Za-z0-9_$"])`, 'g');
  let out = '';
  let count = 0;
  let i = 0;
  // walk the text: copy literals, quoted identifiers and comments through untouched, rewrite the code between them
  const flush = (code: string) => {
    out += code.replace(re, () => {
      count++;
      return replacement;
    });
  };
  let code = '';
  while (i < sql.length) {
    const ch = sql[i]!;
    const two = sql.slice(i, i + 2);
    let end = -1;
    if (ch === "'") {
      end = i + 1;
      while (end < sql.length) {
        if (sql[end] === "'" && sql[end + 1] === "'") end += 2;
        else if (sql[end] === "'") break;
        else end++;
      }
      end++;
    } else if (two === '--') {
      end = sql.indexOf('\n', i);
      if (end < 0) end = sql.length;
    } else if (two === '/*') {
      end = sql.indexOf('*/', i + 2);
      end = end < 0 ? sql.length : end + 2;
    } else if (ch === '"') {
      // a quoted identifier can be part of the name we look for: keep it in the code and let the regex see it
      let j = i + 1;
      while (j < sql.length) {
        if (sql[j] === '"' && sql[j + 1] === '"') j += 2;
        else if (sql[j] === '"') break;
        else j++;
      }
      code += sql.slice(i, j + 1);
      i = j + 1;
      continue;
    }
    if (end >= 0) {
      flush(code);
      code = '';
      out += sql.slice(i, end);
      i = end;
      continue;
    }
    code += ch;
    i++;
  }
  flush(code);
  return { sql: out, count };
}

interface PlanNode {
  'Node Type': string;
  'Relation Name'?: string;
  'Schema'?: string;
  'Actual Loops'?: number;
  'Subplans Removed'?: number;
  'Shared Hit Blocks'?: number;
  'Shared Read Blocks'?: number;
  Plans?: PlanNode[];
}

/** Partition leaf names that a scan node actually ran on (loops > 0). */
export function scannedRelations(node: PlanNode, out = new Set<string>()): Set<string> {
  if (node['Relation Name'] && (node['Actual Loops'] ?? 0) > 0) out.add(node['Relation Name']);
  for (const c of node.Plans ?? []) scannedRelations(c, out);
  return out;
}

async function explain(db: Db, sql: string): Promise<{ ms: number; buffers: number; plan: PlanNode }> {
  return db.readOnly(async (c) => {
    const r = await c.query<{ 'QUERY PLAN': [{ Plan: PlanNode; 'Execution Time': number; 'Planning Time': number }] }>(`EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) ${sql}`);
    const top = r.rows[0]!['QUERY PLAN'][0];
    return {
      ms: top['Execution Time'] + top['Planning Time'],
      buffers: (top.Plan['Shared Hit Blocks'] ?? 0) + (top.Plan['Shared Read Blocks'] ?? 0),
      plan: top.Plan,
    };
  }, { statementTimeoutMs: 120_000 });
}

export async function pruningCheck(
  db: Db, plan: Plan, tables: readonly TablePlan[], log: (m: string, level?: 'info' | 'warn') => void, stepId: string | null,
): Promise<PruningResult[]> {
  const out: PruningResult[] = [];
  const analyzed = new Set<number>();
  for (const q of plan.pruning.queries) {
    let qt: { schema: string; name: string };
    try {
      qt = parseQualified(q.table);
    } catch (e) {
      out.push(blank(q.name, q.table, '', `skipped: ${(e as Error).message}`));
      continue;
    }
    const t = tables.find((x) => x.schema === qt.schema && x.table === qt.name);
    if (!t) {
      out.push(blank(q.name, displayName(qt.schema, qt.name), '', `skipped: ${displayName(qt.schema, qt.name)} is not partitioned by this plan`));
      continue;
    }
    const pair = await resolvePair(db, t);
    if ('missing' in pair) {
      out.push(blank(q.name, displayName(t.schema, t.table), displayName(t.schema, t.targetName), `skipped: ${pair.missing}`));
      continue;
    }
    // the query names the table by its plan name; before the swap that is the old table, after it the new one
    const oldSql = pair.swapped ? retarget(q.sql, t.schema, t.table, pair.source.q).sql : q.sql;
    const newR = retarget(q.sql, t.schema, t.table, pair.target.q);
    if (newR.count === 0) {
      out.push(blank(q.name, pair.source.display, pair.target.display, `skipped: the query does not name ${displayName(t.schema, t.table)} with its schema`));
      continue;
    }
    if (!analyzed.has(pair.target.oid)) {
      // autovacuum never analyzes a partitioned parent: without this the planner guesses the parent's row counts.
      // The copy step analyzes it after its last batch: a second ANALYZE of the whole tree here would add nothing
      const has = await db.read<{ x: boolean }>(`SELECT EXISTS (SELECT 1 FROM pg_stats WHERE schemaname = $1 AND tablename = $2 AND inherited) AS x`, [pair.target.schema, pair.target.name]);
      if (pair.target.kind === 'p' && has[0]?.x) {
        log(`${pair.target.display} has statistics for the whole tree already (its copy's ANALYZE, autovacuum never analyzes a partitioned parent): not analyzed again`);
      } else {
        await db.ddl(gentleAnalyze(pair.target.q), { stepId });
        log(`ANALYZE ${pair.target.display} (autovacuum never analyzes a partitioned parent; its partitions are analyzed with it)`);
      }
      analyzed.add(pair.target.oid);
    }
    try {
      const o = await explain(db, oldSql);
      const n = await explain(db, newR.sql);
      const leaves = await db.read<{ name: string }>(
        `SELECT c.relname AS name FROM pg_partition_tree($1::regclass) p JOIN pg_class c ON c.oid = p.relid WHERE p.isleaf`,
        [pair.target.oid],
      );
      const leafSet = new Set(leaves.map((l) => l.name));
      const scanned = [...scannedRelations(n.plan)].filter((r) => leafSet.has(r)).length;
      const total = leafSet.size;
      const keyUsed = new RegExp(`(^|[^A-Za-z0-9_$])"?${escapeRe(t.key)}"?([^A-Za-z0-9_$]|$)`, 'i').test(q.sql);
      let sentence: string;
      let ok: boolean;
      if (scanned < total) {
        ok = true;
        sentence = `pruning works: ${scanned} of ${total} partitions scanned`;
      } else {
        ok = false;
        sentence = keyUsed
          ? `no pruning: all ${total} partitions scanned — the filter on ${t.key} cannot be used for pruning (a function or cast on the column, or a comparison the planner cannot evaluate)`
          : `no pruning: all ${total} partitions scanned — the query does not filter on ${t.key}`;
      }
      out.push({
        name: q.name, table: pair.source.display, target: pair.target.display, oldMs: o.ms, newMs: n.ms, oldBuffers: o.buffers, newBuffers: n.buffers,
        scanned, total, sentence, ok,
      });
    } catch (e) {
      out.push(blank(q.name, pair.source.display, pair.target.display, `could not run: ${(e as Error).message}`));
    }
  }
  return out;
}

function blank(name: string, table: string, target: string, sentence: string): PruningResult {
  return { name, table, target, oldMs: null, newMs: null, oldBuffers: null, newBuffers: null, scanned: null, total: null, sentence, ok: false };
}

export function pruningTable(rs: readonly PruningResult[]): ReportTable {
  const ms = (x: number | null) => (x === null ? null : `${x.toFixed(1)} ms`);
  return {
    title: 'Partition pruning (EXPLAIN ANALYZE, BUFFERS): old table vs new table',
    columns: ['query', 'old time', 'new time', 'old buffers', 'new buffers', 'partitions scanned', 'verdict'],
    rows: rs.map((r) => [r.name, ms(r.oldMs), ms(r.newMs), r.oldBuffers, r.newBuffers, r.total === null ? null : `${r.scanned} / ${r.total}`, r.sentence]),
  };
}

export type { Rel };
