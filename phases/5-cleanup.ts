import fs from 'node:fs';
import type { ConfirmRequest, Phase, PlanContext, Step, StepContext, StepResult } from '../source/engine/types.js';
import type { TablePlan } from '../source/plan/schema.js';
import { behaviourChanges } from '../source/swap/deps.js';
import { ident, literal, qname } from '../source/db/quote.js';
import { tableExists } from '../source/db/catalog.js';
import { monitorSnapshot } from '../source/db/monitor.js';
import { sleep } from '../source/db/session.js';
import { captureInstalled, drainCapture, removeCapture } from '../source/copy/online.js';
import { fmtBytes, fmtDuration } from '../source/format.js';
import type { DependencyRecord } from '../source/swap/deps.js';
import {
  depsArtifactKey, isSwapped, validateForeignKey, lockHolders, outlineSwap, runSwap, structureArtifactKey, swapArtifactKey, relkind,
  REVERSE_TRIGGER, REVERSE_LOG, reverseFunction, type StructureArtifact, type SwapArtifact,
} from '../source/swap/swap.js';

const name = (t: TablePlan) => `${t.schema}.${t.table}`;

export interface IntegrityReport {
  readonly at?: string;
  readonly pass?: boolean;
  readonly tables?: readonly { table?: string; source?: string; pass?: boolean }[];
}
export interface BackupArtifact {
  readonly file?: string;
  readonly bytes?: number;
  readonly sha256?: string;
  readonly verified?: boolean;
  readonly verifiedAt?: string;
}

/** The backup file's own time (its modification time), never a re-verification's. */
function backupFileTime(file: string): string {
  try {
    return fs.statSync(file).mtime.toISOString().replace('T', ' ').slice(0, 19) + ' UTC';
  } catch {
    return 'at an unknown time (file missing)';
  }
}

/** Protections shown with every destructive step of phase 5 and the rollback. */
export async function protections(ctx: PlanContext, t?: TablePlan): Promise<{ lines: string[]; report: IntegrityReport | null; reportOk: boolean; reportWhy: string }> {
  const backup = await ctx.journal.getArtifact<BackupArtifact>('backup');
  const report = await ctx.journal.getArtifact<IntegrityReport>('integrity-report');
  const lines: string[] = [];
  lines.push(
    backup?.file
      ? `backup ${backup.file}${backup.bytes ? ` (${fmtBytes(backup.bytes)})` : ''}, taken ${backupFileTime(backup.file)}${backup.verified ? `, verified ${backup.verifiedAt ?? ''}` : ', NOT verified'}`
      : 'no backup recorded in the journal',
  );
  let reportOk = false;
  let reportWhy = 'no integrity report in the journal: run phase 3 (copy and verification) first';
  if (report) {
    const entry = t ? report.tables?.find((x) => (x.table ?? x.source) === name(t)) : undefined;
    reportOk = report.pass === true && (entry ? entry.pass !== false : true);
    reportWhy = reportOk ? '' : `the integrity report of ${report.at ?? '?'} did not pass${entry && entry.pass === false ? ` for ${t ? name(t) : ''}` : ''}`;
    lines.push(`integrity report ${report.at ?? ''}: ${reportOk ? 'PASS' : 'FAIL'}`);
  } else lines.push('integrity report: none');
  return { lines, report, reportOk, reportWhy };
}

async function tableFacts(ctx: PlanContext, schema: string, table: string): Promise<{ rows: number; bytes: number }> {
  const r = await ctx.db.read<{ rows: string; bytes: string }>(
    `SELECT coalesce((SELECT sum(c.reltuples) FROM pg_class c WHERE c.oid = $1::regclass OR c.oid IN (SELECT inhrelid FROM pg_inherits WHERE inhparent = $1::regclass)), 0)::bigint AS rows,
            coalesce((SELECT sum(pg_total_relation_size(x)) FROM (SELECT $1::regclass AS x UNION ALL SELECT inhrelid::regclass FROM pg_inherits WHERE inhparent = $1::regclass) y), 0)::bigint AS bytes`,
    [qname(schema, table)],
  );
  return { rows: Math.max(0, Number(r[0]!.rows)), bytes: Number(r[0]!.bytes) };
}

function swapStep(t: TablePlan): Step {
  const id = `swap:${name(t)}`;
  const load = async (ctx: PlanContext) => ({
    deps: await ctx.journal.getArtifact<DependencyRecord>(depsArtifactKey(t)),
    structure: await ctx.journal.getArtifact<StructureArtifact>(structureArtifactKey(t)),
  });
  return {
    id,
    phase: 5,
    title: `Swap ${name(t)} with ${t.schema}.${t.targetName} (one short ACCESS EXCLUSIVE transaction)`,
    async preview(ctx) {
      const { deps, structure } = await load(ctx);
      if (!deps || !(await tableExists(ctx.db, t.schema, t.targetName)) || (await isSwapped(ctx.db, t))) {
        return [
          `LOCK TABLE ${qname(t.schema, t.table)} IN ACCESS EXCLUSIVE MODE`,
          `ALTER TABLE ${qname(t.schema, t.table)} RENAME TO ${ident(t.oldName)}`,
          `ALTER TABLE ${qname(t.schema, t.targetName)} RENAME TO ${ident(t.table)}`,
          `-- + index/constraint renames, views re-created, inbound FKs re-added NOT VALID, sequences moved (known after phase 4)`,
        ];
      }
      return (await outlineSwap(ctx.db, t, deps, structure, await captureInstalled(ctx.db, t), ctx.plan.locks.timeoutMs)).statements;
    },
    async destructive(ctx) {
      if (await isSwapped(ctx.db, t)) return null;
      const { deps, structure } = await load(ctx);
      const prot = await protections(ctx, t);
      const base = { kind: 'rename' as const, object: name(t), typed: false, protections: prot.lines };
      if (!deps) return { ...base, statements: [], impact: [], refusal: `no dependencies recorded for ${name(t)}: run phase 4 first (views and foreign keys must be known before the swap)` };
      if (!(await tableExists(ctx.db, t.schema, t.targetName))) return { ...base, statements: [], impact: [], refusal: `${t.schema}.${t.targetName} does not exist` };
      const outline = await outlineSwap(ctx.db, t, deps, structure, await captureInstalled(ctx.db, t), ctx.plan.locks.timeoutMs);
      const facts = await tableFacts(ctx, t.schema, t.table);
      const impact = [
        `${name(t)}: ~${facts.rows.toLocaleString('en-US')} rows, ${fmtBytes(facts.bytes)}; renamed to ${t.schema}.${t.oldName} and kept until the retention period ends (${ctx.plan.retention.days} days)`,
        `${t.schema}.${t.targetName} takes the name ${name(t)}; its indexes and constraints take the original names (${outline.newRenames.length} renames)`,
        `every query on ${name(t)} waits while the exclusive lock is held (each attempt waits at most ${ctx.plan.locks.timeoutMs} ms for the lock, up to ${ctx.plan.locks.attempts} attempts)`,
        ...deps.views.map((v) => `view ${v.schema}.${v.name} is re-created and reads the new table`),
        ...deps.fks.map((f) => `foreign key ${f.schema}.${f.table}.${f.name} is dropped and re-added NOT VALID on (${f.newColumns.join(', ')}); validated in the next step`),
        ...deps.sequences.map((s) => `sequence ${s.seqSchema}.${s.seqName}: ${s.kind === 'serial' && s.ownedByOld ? 'OWNED BY the new column, ' : ''}set past the highest value`),
        `after the commit every write to the new table is noted (trigger ${REVERSE_TRIGGER}) so a rollback can swap back without losing a row`,
        ...behaviourChanges(deps, structure),
      ];
      const req: Omit<ConfirmRequest, 'stepId'> = { ...base, statements: outline.statements, impact };
      if (!prot.reportOk) return { ...req, refusal: `swap before the copy is verified: ${prot.reportWhy}` };
      return req;
    },
    async run(ctx) {
      if (await isSwapped(ctx.db, t)) {
        const a = await ctx.journal.getArtifact<SwapArtifact>(swapArtifactKey(t));
        if (await captureInstalled(ctx.db, t)) await removeCapture(ctx.db, t, ctx.stepId);
        return { status: 'already-done', summary: `${name(t)} is already the partitioned table${a ? ` (swapped ${a.at}, lock held ${a.lockHeldMs} ms)` : ''}` };
      }
      const { deps, structure } = await load(ctx);
      if (!deps) return { status: 'done', failed: 'run phase 4 first' };
      const online = await captureInstalled(ctx.db, t);
      const tables = await offerToClearBlockers(ctx, t, deps);
      ctx.log(
        online
          ? 'online mode: under the lock, the changes captured since the copy are applied to the new table, then the names switch'
          : 'batch mode: under the lock, row counts and the highest key of both tables are compared; any difference means writes reached the old table after the copy, and the swap is refused',
      );
      const outline = await outlineSwap(ctx.db, t, deps, structure, online, ctx.plan.locks.timeoutMs);
      const res = await runSwap(ctx.db, ctx.journal, t, outline, deps, {
        online, stepId: ctx.stepId, lockTimeoutMs: ctx.plan.locks.timeoutMs, attempts: ctx.plan.locks.attempts, signal: ctx.signal,
        log: (m, level) => ctx.log(m, level), drain: (tx) => drainCapture(tx, t, ctx.journal),
      });
      const a = await ctx.journal.getArtifact<SwapArtifact>(swapArtifactKey(t));
      await ctx.journal.setArtifact(swapArtifactKey(t), { ...a, lockHeldMs: res.lockHeldMs });
      if (online) {
        await removeCapture(ctx.db, t, ctx.stepId);
        ctx.log('capture trigger and change log removed');
      }
      return {
        status: 'done',
        summary: `swapped in ${res.attempts} attempt(s); exclusive lock held ${res.lockHeldMs} ms (LOCK to COMMIT)${online ? `; ${res.drained} captured change(s) applied` : `; ${res.rows?.toLocaleString('en-US')} rows checked under the lock`}`,
        tables,
        data: { lockHeldMs: res.lockHeldMs, attempts: res.attempts, drained: res.drained },
      };
    },
  };
}

/** Shows who would block the swap and offers to cancel (active) or terminate (idle in transaction) them; else waits. */
async function offerToClearBlockers(ctx: StepContext, t: TablePlan, deps: DependencyRecord): Promise<StepResult['tables']> {
  const rels = [qname(t.schema, t.table), qname(t.schema, t.targetName), ...deps.fks.map((f) => qname(f.schema, f.table))];
  const holders = await lockHolders(ctx.db, rels);
  const snap = await monitorSnapshot(ctx.db.pool, ctx.plan.monitor.longQuerySeconds);
  const long = snap.long.filter((a) => !a.pgshift && !holders.some((h) => h.pid === a.pid));
  const tables = [];
  if (holders.length || long.length) {
    tables.push({
      title: 'Sessions that would block the swap (locks on the tables) and long transactions',
      columns: ['pid', 'user', 'application', 'state', 'lock', 'on', 'for', 'query'],
      rows: [
        ...holders.map((h) => [h.pid, h.user, h.app, h.state, h.mode, h.relation, fmtDuration(h.xactMs), h.query]),
        ...long.map((a) => [a.pid, a.user, a.applicationName, a.state, '', '', fmtDuration(a.durationMs), a.query]),
      ] as (string | number)[][],
    });
    ctx.log(`${holders.length} session(s) hold locks on ${name(t)} or its dependents: the swap's ACCESS EXCLUSIVE request waits for them, and every query arriving after it queues behind it — at most ${ctx.plan.locks.timeoutMs} ms per attempt`, 'warn');
  }
  for (const h of holders) {
    const idle = h.state.startsWith('idle in transaction');
    const kind = idle ? 'terminate' : 'cancel';
    const sql = `SELECT ${idle ? 'pg_terminate_backend' : 'pg_cancel_backend'}(${h.pid})`;
    const answer = await ctx.confirm({
      kind, object: `pid ${h.pid}`, typed: false, statements: [sql],
      impact: [
        `${h.user} (${h.app || 'no application name'}), ${h.state}, holds ${h.mode} on ${h.relation} for ${fmtDuration(h.xactMs)}: ${h.query}`,
        idle ? 'its open transaction is rolled back and its connection closed (cancel does nothing to an idle transaction)' : 'its current statement is cancelled (its transaction rolls back)',
      ],
      protections: ['if you decline, pgshift waits and retries with lock_timeout instead'],
    });
    if (answer.confirmed) {
      const r = await ctx.db.query<{ ok: boolean }>(`SELECT ${idle ? 'pg_terminate_backend' : 'pg_cancel_backend'}($1::int) AS ok`, [h.pid], ctx.stepId);
      ctx.log(`${kind} pid ${h.pid}: ${r.rows[0]?.ok ? 'signalled' : 'already gone'}`);
      await sleep(200, ctx.signal);
    } else ctx.log(`pid ${h.pid} left alone: waiting with lock_timeout retries`);
  }
  return tables;
}

function validateStep(t: TablePlan): Step {
  return {
    id: `validate-fks:${name(t)}`,
    phase: 5,
    title: `Validate the foreign keys re-added NOT VALID to ${name(t)}`,
    async preview(ctx) {
      const deps = await ctx.journal.getArtifact<DependencyRecord>(depsArtifactKey(t));
      return deps?.fks.length ? deps.fks.map((f) => `ALTER TABLE ${qname(f.schema, f.table)} VALIDATE CONSTRAINT ${ident(f.name)}`) : ['-- no inbound foreign keys'];
    },
    async run(ctx) {
      const a = await ctx.journal.getArtifact<SwapArtifact>(swapArtifactKey(t));
      if (!a || !(await isSwapped(ctx.db, t))) return { status: 'skipped', summary: 'not swapped' };
      const rows: (string | number)[][] = [];
      let done = 0;
      for (const f of a.fks) {
        const r = await validateForeignKey(ctx, f, name(t));
        if (r.state === 'missing') return { status: 'done', failed: `foreign key ${f.schema}.${f.table}.${f.name} is missing` };
        rows.push([`${f.schema}.${f.table}.${f.name}`, r.state, r.state === 'validated' ? fmtDuration(r.ms) : '']);
        if (r.state === 'validated') done++;
      }
      if (!a.fks.length) return { status: 'already-done', summary: 'no inbound foreign keys' };
      return { status: done ? 'done' : 'already-done', summary: `${done} foreign key(s) validated`, tables: [{ title: 'Foreign-key validation', columns: ['constraint', 'result', 'time'], rows }] };
    },
  };
}

function analyzeStep(t: TablePlan): Step {
  return {
    id: `analyze:${name(t)}`,
    phase: 5,
    title: `ANALYZE ${name(t)} (autovacuum never analyzes a partitioned parent)`,
    async preview() {
      return [`ANALYZE ${qname(t.schema, t.table)}`];
    },
    async run(ctx) {
      if ((await relkind(ctx.db, t.schema, t.table)) !== 'p') return { status: 'skipped', summary: `${name(t)} is not partitioned (not swapped)` };
      ctx.log('autovacuum analyzes partitions but never the partitioned parent: without this, the planner has no statistics for queries on the parent');
      const t0 = performance.now();
      let stop = false;
      const poll = (async () => {
        while (!stop) {
          const p = await ctx.db.read<{ phase: string; total: string; done: string; ctot: string; cdone: string; cur: string | null }>(
            `SELECT phase, sample_blks_total AS total, sample_blks_scanned AS done, child_tables_total AS ctot, child_tables_done AS cdone,
                    current_child_table_relid::regclass::text AS cur
               FROM pg_stat_progress_analyze WHERE relid = $1::regclass`,
            [qname(t.schema, t.table)],
          ).catch(() => []);
          const x = p[0];
          if (x) ctx.progress({ done: Number(x.cdone), total: Number(x.ctot) || undefined, unit: 'partitions', detail: `${x.phase}${x.cur ? ` ${x.cur}` : ''} (${x.done}/${x.total} blocks)` });
          await sleep(250);
        }
      })();
      try {
        await ctx.db.ddl([`ANALYZE ${qname(t.schema, t.table)}`], { stepId: ctx.stepId, signal: ctx.signal });
      } finally {
        stop = true;
        await poll;
      }
      const ms = performance.now() - t0;
      const parts = await ctx.db.read<{ n: string }>(`SELECT count(*) AS n FROM pg_inherits WHERE inhparent = $1::regclass`, [qname(t.schema, t.table)]);
      return { status: 'done', summary: `analyzed the parent and ${parts[0]!.n} partition(s) in ${fmtDuration(ms)}`, data: { ms: Math.round(ms) } };
    },
  };
}

export function retentionEnds(a: SwapArtifact, days: number): Date {
  return new Date(new Date(a.at).getTime() + days * 86_400_000);
}
const utc = (d: Date) => `${d.toISOString().slice(0, 16).replace('T', ' ')} UTC`;

/** Sequences owned by the old table that a column default of the new one still uses: DROP would drop them. */
async function sequencesStillUsed(ctx: PlanContext, t: TablePlan): Promise<string[]> {
  const r = await ctx.db.read<{ seq: string }>(
    `SELECT DISTINCT s.oid::regclass::text AS seq FROM pg_depend d JOIN pg_class s ON s.oid = d.objid AND s.relkind = 'S'
      WHERE d.classid = 'pg_class'::regclass AND d.refobjid = $1::regclass AND d.deptype IN ('a', 'i')
        AND EXISTS (SELECT 1 FROM pg_depend u JOIN pg_attrdef ad ON ad.oid = u.objid
                     WHERE u.classid = 'pg_attrdef'::regclass AND u.refobjid = s.oid AND ad.adrelid <> $1::regclass)`,
    [qname(t.schema, t.oldName)],
  );
  return r.map((x) => x.seq);
}

function dropStep(t: TablePlan): Step {
  const obj = `${t.schema}.${t.oldName}`;
  const statements = (a: SwapArtifact | null) => [
    ...(a?.reverseKey ? [
      `DROP TRIGGER IF EXISTS ${ident(REVERSE_TRIGGER)} ON ${qname(t.schema, t.table)}`,
      `DROP FUNCTION IF EXISTS ${qname('pgshift', reverseFunction(t))}()`,
      `DELETE FROM ${REVERSE_LOG} WHERE rel = ${literal(`${t.schema}.${t.table}`)}`,
    ] : []),
    `DROP TABLE ${qname(t.schema, t.oldName)}`,
  ];
  return {
    id: `drop:${obj}`,
    phase: 5,
    title: `Drop ${obj} once the retention period has passed`,
    async preview(ctx) {
      return [`-- only after the integrity report passed and ${ctx.plan.retention.days} days after the swap (or --force-retention)`, ...statements(await ctx.journal.getArtifact<SwapArtifact>(swapArtifactKey(t)))];
    },
    async destructive(ctx) {
      if (!(await tableExists(ctx.db, t.schema, t.oldName))) return null;
      const a = await ctx.journal.getArtifact<SwapArtifact>(swapArtifactKey(t));
      const prot = await protections(ctx, t);
      const facts = await tableFacts(ctx, t.schema, t.oldName);
      const base = {
        kind: 'drop' as const, object: obj, typed: true, statements: statements(a),
        impact: [
          `${obj}: ~${facts.rows.toLocaleString('en-US')} rows, ${fmtBytes(facts.bytes)} freed`,
          'after this, a rollback can no longer swap back: only a restore of the backup can bring the old table back',
        ],
        protections: prot.lines,
      };
      if (!a || !(await isSwapped(ctx.db, t))) return { ...base, refusal: `${name(t)} was not swapped by pgshift: ${obj} is not its old copy` };
      if (!prot.reportOk) return { ...base, refusal: `the integrity report did not pass: ${prot.reportWhy}` };
      const until = retentionEnds(a, ctx.plan.retention.days);
      if (until.getTime() > Date.now()) {
        if (!ctx.overrides.has('force-retention')) return null; // run() reports "kept until …" and the run goes on
        // declining the early drop keeps the old table: the step is skipped and the run goes on
        return { ...base, refusal: `the retention period runs until ${utc(until)} (${ctx.plan.retention.days} days after the swap)`, overrideFlag: '--force-retention', onDecline: 'skip' };
      }
      return base;
    },
    async run(ctx) {
      if (!(await tableExists(ctx.db, t.schema, t.oldName))) return { status: 'already-done', summary: `${obj} does not exist` };
      const a = await ctx.journal.getArtifact<SwapArtifact>(swapArtifactKey(t));
      if (!a) return { status: 'done', failed: `no swap recorded for ${name(t)}` };
      const until = retentionEnds(a, ctx.plan.retention.days);
      if (until.getTime() > Date.now() && !ctx.overrides.has('force-retention')) {
        return { status: 'skipped', summary: `kept until ${utc(until)} (retention ${ctx.plan.retention.days} days after the swap); run phase 5 again then, or pass --force-retention with --confirm ${obj}` };
      }
      const used = await sequencesStillUsed(ctx, t);
      if (used.length) {
        return { status: 'done', failed: `sequence(s) ${used.join(', ')} are owned by ${obj} but still used by another table's default: DROP TABLE would drop them. Move ownership first (ALTER SEQUENCE … OWNED BY the new column)` };
      }
      ctx.log(`no sequence owned by ${obj} is used elsewhere (ownership moved at the swap)`);
      await ctx.db.ddl(statements(a), { stepId: ctx.stepId, signal: ctx.signal });
      return { status: 'done', summary: `dropped ${obj}; the reverse-change log of ${name(t)} is removed (rollback now means restoring the backup)` };
    },
  };
}

export const cleanup: Phase = {
  id: 5,
  name: 'Cleanup',
  async plan(ctx) {
    const steps: Step[] = [];
    for (const t of ctx.tables) steps.push(swapStep(t), validateStep(t), analyzeStep(t));
    for (const t of ctx.tables) steps.push(dropStep(t));
    return steps;
  },
};
