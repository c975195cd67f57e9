import fs from 'node:fs';
import type { ConfirmRequest, Phase, PlanContext, Step, StepContext, StepResult } from '../source/engine/types.js';
import type { TablePlan } from '../source/plan/schema.js';
import { behaviourChanges, discoverDependencies } from '../source/swap/deps.js';
import { ident, qname } from '../source/db/quote.js';
import { tableExists } from '../source/db/catalog.js';
import { captureInstalled, captureReplayer, drainKnown, findCapture, removeCapture } from '../source/copy/online.js';
import { ApplyMeter, applyBudget, converge, describeRates, startBackground, stopBackground } from '../source/copy/catchup.js';
import { appTriggers, triggerList } from '../source/copy/app-triggers.js';
import { columnMap } from '../source/copy/meta.js';
import { gentleAnalyze, sleep, type Tx } from '../source/db/session.js';
import { fmtBytes, fmtDuration } from '../source/format.js';
import type { DependencyRecord } from '../source/swap/deps.js';
import { isSwapped, validateForeignKey, lockHolders, outlineSwap, runSwap, relkind, REVERSE_TRIGGER, reverseFunction, reverseLogName, cutoverLockTimeout, cutoverStatements, lockedTx, lockSql, type Blocker, type CutoverPlan, type SwapArtifact } from '../source/swap/swap.js';
import type { IntegrityReport } from '../source/copy/integrity.js';
import { Artifacts } from '../source/engine/artifacts.js';
import { parentStatsCurrent } from '../source/copy/parent-stats.js';

const name = (t: TablePlan) => `${t.schema}.${t.table}`;

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
  const backup = await ctx.journal.getArtifact(Artifacts.backup);
  const report = await ctx.journal.getArtifact(Artifacts.integrityReport);
  const lines: string[] = [];
  lines.push(
    backup?.file
      ? `backup ${backup.file}${backup.bytes ? ` (${fmtBytes(backup.bytes)})` : ''}, taken ${backupFileTime(backup.file)}${backup.verified ? `, verified ${backup.verifiedAt ?? ''}` : ', NOT verified'}`
      : 'no backup recorded in the journal',
  );
  let reportOk = false;
  let reportWhy = 'no integrity report in the journal: run phase 3 (copy and verification) first';
  if (report) {
    const entry = t ? report.tables.find((x) => x.table === name(t)) : undefined;
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

/** What DROP TABLE locks: the table and the tables its foreign keys touch (their RI triggers go with it). */
export interface DropLocks {
  /** quoted through qname, in the order pgshift takes the locks: the targets of its foreign keys (an application's
   * RI check locks the referenced table first too), the table, then the tables referencing it */
  readonly order: string[];
  /** the same for the operator, as the confirmation's impact line */
  readonly impact: string;
}

export async function dropLocks(ctx: PlanContext, schema: string, table: string): Promise<DropLocks> {
  const r = await ctx.db.read<{ side: 'referenced' | 'referencing'; nsp: string; rel: string }>(
    `WITH k AS (SELECT conrelid, confrelid FROM pg_constraint WHERE contype = 'f' AND conrelid <> confrelid AND to_regclass($1) IN (conrelid, confrelid))
     SELECT DISTINCT CASE WHEN k.conrelid = to_regclass($1) THEN 'referenced' ELSE 'referencing' END AS side, n.nspname AS nsp, c.relname AS rel
       FROM k JOIN pg_class c ON c.oid = CASE WHEN k.conrelid = to_regclass($1) THEN k.confrelid ELSE k.conrelid END
       JOIN pg_namespace n ON n.oid = c.relnamespace`,
    [qname(schema, table)],
  );
  const sorted = r.map((x) => ({ ...x, q: qname(x.nsp, x.rel), shown: `${x.nsp}.${x.rel}` })).sort((a, b) => a.q.localeCompare(b.q));
  const self = { q: qname(schema, table), shown: `${schema}.${table}` };
  const all = [...sorted.filter((x) => x.side === 'referenced'), self, ...sorted.filter((x) => x.side === 'referencing')];
  const targets = sorted.filter((x) => x.side === 'referenced').map((x) => x.shown);
  return {
    order: all.map((x) => x.q),
    impact: `locks ACCESS EXCLUSIVE for a moment (catalog only) on ${all.map((x) => x.shown).join(', ')} (in that order)` +
      (targets.length ? ` — ${targets.join(', ')}: the targets of its foreign keys, whose RI triggers are dropped with it; queries on them wait meanwhile` : ''),
  };
}

function swapStep(t: TablePlan): Step {
  const id = `swap:${name(t)}`;
  const load = async (ctx: PlanContext) => ({
    deps: await ctx.journal.getArtifact(Artifacts.dependencies(t)),
    structure: await ctx.journal.getArtifact(Artifacts.structure(t)),
  });
  const triggersOf = async (ctx: PlanContext) => {
    const src = await ctx.db.read<{ oid: number }>(`SELECT to_regclass($1)::oid::int AS oid`, [qname(t.schema, t.table)]);
    const old = src[0]?.oid ? await appTriggers(ctx.db, src[0].oid) : [];
    const art = await ctx.journal.getArtifact(Artifacts.appTriggers(t));
    return { old, new: art?.target ?? [] };
  };
  return {
    id,
    // undone by the swap back (rollback), which forgets this record; listed so the completed rollback forgets it too
    undo: { tables: [name(t)], artifacts: [Artifacts.swap(t)] },
    phase: 5,
    title: `Swap ${name(t)} with ${t.schema}.${t.targetName} (one short ACCESS EXCLUSIVE transaction)`,
    async preview(ctx) {
      const { deps, structure } = await load(ctx);
      if (!deps || !(await tableExists(ctx.db, t.schema, t.targetName)) || (await isSwapped(ctx.db, t))) {
        return [
          lockSql(qname(t.schema, t.table)),
          `ALTER TABLE ${qname(t.schema, t.table)} RENAME TO ${ident(t.oldName)}`,
          `ALTER TABLE ${qname(t.schema, t.targetName)} RENAME TO ${ident(t.table)}`,
          ...(await discoveredLines(ctx, t)),
        ];
      }
      const lt = await cutoverLockTimeout(ctx.db, ctx.plan.locks.timeoutMs);
      return (await outlineSwap(ctx.db, t, deps, structure, await captureInstalled(ctx.db, t), lt.ms, await triggersOf(ctx))).statements;
    },
    async destructive(ctx) {
      if (await isSwapped(ctx.db, t)) return null;
      const { deps, structure } = await load(ctx);
      const prot = await protections(ctx, t);
      const base = { kind: 'rename' as const, object: name(t), typed: false, protections: prot.lines };
      if (!deps) return { ...base, statements: [], impact: [], refusal: `no dependencies recorded for ${name(t)}: run phase 4 first (views and foreign keys must be known before the swap)` };
      if (!(await tableExists(ctx.db, t.schema, t.targetName))) return { ...base, statements: [], impact: [], refusal: `${t.schema}.${t.targetName} does not exist` };
      const cap = await findCapture(ctx.db, t);
      // the captured changes keep being applied while the operator reads this
      if (cap) startBackground(ctx.db, cap.names.artifact.key, captureReplayer(ctx.db, cap, null), { batch: ctx.plan.copy.batchRows, reporter: { log: ctx.log } });
      const trig = await triggersOf(ctx);
      const lt = await cutoverLockTimeout(ctx.db, ctx.plan.locks.timeoutMs);
      const outline = await outlineSwap(ctx.db, t, deps, structure, !!cap, lt.ms, trig);
      const facts = await tableFacts(ctx, t.schema, t.table);
      const impact = [
        `${name(t)}: ~${facts.rows.toLocaleString('en-US')} rows, ${fmtBytes(facts.bytes)}; renamed to ${t.schema}.${t.oldName} and kept until the retention period ends (${ctx.plan.retention.days} days)`,
        `${t.schema}.${t.targetName} takes the name ${name(t)}; its indexes and constraints take the original names (${outline.newRenames.length} renames)`,
        `locks ACCESS EXCLUSIVE, in this order: ${outline.locks.join(', ')} — every query on them waits while the lock is held (each attempt waits at most ${lt.ms} ms for the lock, up to ${ctx.plan.locks.attempts} attempts); ${outline.locks[0]} first, which no application uses yet: waiting for it (an autovacuum of its new partitions, say) holds nothing the application needs`,
        cap
          ? `the captured changes keep being applied in the background; the lock is requested only when the rest is predicted to apply within ${ctx.plan.swap.maxLockMs} ms (swap.maxLockMs), and an attempt that overruns is rolled back and retried`
          : `no change capture for this table (copied before pgshift captured in batch mode): row counts are compared under the lock`,
        lt.note,
        ...(trig.new.length ? [`application trigger(s) ${triggerList(trig.new)} of the new table (disabled during the copy and the replay) are enabled as they were, in the swap transaction`] : []),
        ...(trig.old.length ? [`application trigger(s) ${triggerList(trig.old)} of ${t.schema}.${t.oldName} are disabled in the swap transaction (only a rollback's carry-back writes it then), and restored by a swap back`] : []),
        ...deps.views.map((v) => `view ${v.schema}.${v.name} is re-created and reads the new table`),
        ...deps.fks.map((f) => `foreign key ${f.schema}.${f.table}.${f.name} is dropped and re-added NOT VALID on (${f.newColumns.join(', ')}); validated in the next step`),
        ...deps.sequences.map((s) => `sequence ${s.seqSchema}.${s.seqName}: ${s.kind === 'serial' && s.ownedByOld ? 'OWNED BY the new column, ' : ''}set past the highest value`),
        `after the commit every key written to the new table is noted, one row per key (trigger ${REVERSE_TRIGGER}, SECURITY DEFINER: any role that may write the table may write through it; ENABLE ALWAYS: it fires under session_replication_role = replica too) so a rollback can swap back without losing a row`,
        ...behaviourChanges(deps, structure),
      ];
      const req: Omit<ConfirmRequest, 'stepId'> = { ...base, statements: outline.statements, impact };
      if (!prot.reportOk) return { ...req, refusal: `swap before the copy is verified: ${prot.reportWhy}` };
      return req;
    },
    async run(ctx) {
      if (await isSwapped(ctx.db, t)) {
        const a = await ctx.journal.getArtifact(Artifacts.swap(t));
        if (await captureInstalled(ctx.db, t)) await removeCapture(ctx.db, t, ctx.stepId);
        return { status: 'already-done', summary: `${name(t)} is already the partitioned table${a ? ` (swapped ${a.at}, lock held ${a.lockHeldMs} ms)` : ''}` };
      }
      const { deps, structure } = await load(ctx);
      if (!deps) return { status: 'failed', failed: 'run phase 4 first' };
      const cap = await findCapture(ctx.db, t);
      const lt = await cutoverLockTimeout(ctx.db, ctx.plan.locks.timeoutMs);
      ctx.log(lt.note);
      const tables = await showLockHolders(ctx, t, deps);
      const maxLockMs = ctx.plan.swap.maxLockMs;
      let drain: (tx: Tx) => Promise<number> = () => Promise.resolve(0);
      let catchUpAgain = async () => {};
      // everything the swap needs is read before the last catch-up, which runs right before the lock request: every
      // change captured between the two is applied under the lock (measured under pgbench: with the outline read in
      // between, 372-392 changes were applied under the lock, which was held 31-34 ms)
      const outline = await outlineSwap(ctx.db, t, deps, structure, !!cap, lt.ms, await triggersOf(ctx));
      if (cap) {
        if (await stopBackground(ctx.db, cap.names.artifact.key)) ctx.log('background catch-up stopped: the swap catches up itself from here');
        const onRetry = (m: string) => ctx.log(m, 'warn');
        const rp = captureReplayer(ctx.db, cap, ctx.stepId, onRetry);
        const meter = new ApplyMeter();
        const map = await columnMap(ctx.db, { source: cap.source, target: cap.target, swapped: false });
        drain = (tx) => drainKnown(tx, cap, map);
        ctx.log('under the lock: the captured remainder is applied to the new table and the change log proven empty (no count of the table), then the names switch');
        catchUpAgain = async () => {
          const rep = await converge(rp, {
            budgetMs: applyBudget(maxLockMs), batch: ctx.plan.copy.batchRows, timeoutMs: ctx.plan.swap.catchUpTimeoutSec * 1000,
            signal: ctx.signal, reporter: ctx, meter, what: 'phase 5',
          });
          ctx.log(`caught up: ${describeRates(rep)}; the rest is predicted to apply in ${Math.round(rep.predictedLockMs)} ms (budget ${applyBudget(maxLockMs)} of swap.maxLockMs ${maxLockMs} ms): requesting the lock`);
        };
      } else {
        ctx.log(`no change capture for ${name(t)} (its copy predates capture in batch mode): under the lock, row counts and the highest key of both tables are compared, and the swap is refused on any difference — run phase 3 again on an empty new table to copy with capture`, 'warn');
      }
      const res = await runSwap(ctx.db, ctx.journal, t, outline, deps, {
        captured: !!cap, stepId: ctx.stepId, lockTimeoutMs: lt.ms, attempts: ctx.plan.locks.attempts, maxLockMs, signal: ctx.signal,
        log: (m, level) => ctx.log(m, level), drain, catchUp: catchUpAgain, offer: (b) => offerBlocker(ctx, b),
      });
      if (!res) return { status: 'skipped', summary: 'stopped while catching up; nothing was locked or renamed' };
      const a = await ctx.journal.getArtifact(Artifacts.swap(t));
      if (!a) throw new Error(`the swap of ${name(t)} committed but its journal record (artifact ${Artifacts.swap(t).key}) is missing`);
      await ctx.journal.setArtifact(Artifacts.swap(t), { ...a, lockHeldMs: res.lockHeldMs, attempts: res.attempts, budgetMisses: res.budgetMisses });
      ctx.log(`exclusive lock held ${res.lockHeldMs} ms (LOCK to COMMIT); ${res.drained} change(s) applied under the lock`);
      if (res.lockHeldMs > maxLockMs) ctx.log(`the lock was held ${res.lockHeldMs} ms, over swap.maxLockMs ${maxLockMs} ms: the renames, views and foreign keys took the rest`, 'warn');
      if (cap) {
        await removeCapture(ctx.db, t, ctx.stepId);
        ctx.log('capture trigger and change log removed');
      }
      return {
        status: 'done',
        summary: `swapped in ${res.attempts} attempt(s); exclusive lock held ${res.lockHeldMs} ms (LOCK to COMMIT)${cap ? `; ${res.drained} captured change(s) applied under the lock` : `; ${res.rows?.toLocaleString('en-US')} rows checked under the lock`}`,
        tables,
        data: { lockHeldMs: res.lockHeldMs, attempts: res.attempts, drained: res.drained, changesUnderLock: res.drained, maxLockMs, budgetMisses: res.budgetMisses },
      };
    },
  };
}

/** Shows who holds locks on the tables right now (information only: nobody is offered for cancelling here). */
async function showLockHolders(ctx: StepContext, t: TablePlan, deps: DependencyRecord): Promise<StepResult['tables']> {
  const rels = [qname(t.schema, t.table), qname(t.schema, t.targetName), ...deps.fks.map((f) => qname(f.schema, f.table))];
  const holders = await lockHolders(ctx.db, rels);
  if (!holders.length) return [];
  ctx.log(`${holders.length} session(s) hold locks on ${name(t)} or its dependents: the swap's ACCESS EXCLUSIVE request waits for them, and every query arriving after it queues behind it — at most one lock_timeout per attempt; a session that keeps blocking the swap is offered for cancelling`, 'warn');
  return [{
    title: 'Sessions holding locks on the tables (pgshift waits for them; only one that keeps blocking is offered for cancel/terminate)',
    columns: ['pid', 'user', 'application', 'state', 'lock', 'on', 'for', 'query'],
    rows: holders.map((h) => [h.pid, h.user ?? '?', h.app ?? '', h.state ?? 'not visible', h.mode, h.relation, h.xactMs === null ? '?' : fmtDuration(h.xactMs), h.query ?? '']),
  }];
}

/**
 * What pgshift offers the operator for a session that kept its lock request waiting: the signal, the impact lines,
 * or (`leave`) why it offers nothing. Autovacuum workers are named as such: PostgreSQL cancels one that blocks a
 * lock request for deadlock_timeout, which pgshift's shorter lock_timeout never reaches, so it is offered like any
 * blocker, saying that cancelling it is harmless; an anti-wraparound one is never offered (PostgreSQL does not
 * cancel it either, and a cancelled one starts again at once).
 */
export function blockerOffer(b: Blocker): { kind: 'cancel' | 'terminate'; fn: string; impact: string[] } | { leave: string } {
  // its query reads 'autovacuum: VACUUM ANALYZE public.t (to prevent wraparound)' and its backend_type 'autovacuum
  // worker'; a role without pg_read_all_stats sees neither (PostgreSQL 15), and such a role cannot signal it anyway
  const autovacuum = /^autovacuum: (.*)$/s.exec(b.query ?? '')?.[1] ?? (b.backendType === 'autovacuum worker' ? 'no query shown' : null);
  if (autovacuum !== null && /to prevent wraparound/.test(autovacuum)) {
    return { leave: `pid ${b.pid} is an anti-wraparound autovacuum (${autovacuum}): not offered for cancel (PostgreSQL never cancels one, and a cancelled one starts again at once); waiting with lock_timeout retries until it finishes` };
  }
  const idle = b.state?.startsWith('idle in transaction') ?? false;
  const hidden = b.state === null;
  const kind = (idle || hidden) && autovacuum === null ? 'terminate' : 'cancel';
  const fn = kind === 'terminate' ? 'pg_terminate_backend' : 'pg_cancel_backend';
  const impact = autovacuum !== null
    ? [
      `an autovacuum worker (${autovacuum}) has blocked the swap's lock request for ${fmtDuration(b.blockedMs)} so far`,
      'PostgreSQL itself cancels an autovacuum that blocks a lock request for deadlock_timeout; pgshift\'s lock_timeout is shorter (it gives up first), so without this it waits until the worker finishes',
      'cancelling it is harmless: its work so far is kept and autovacuum runs on this table again later',
    ]
    : [
      `${b.user ?? 'another role'} (${b.app || 'no application name'}), ${b.state ?? 'state not visible to this role (no pg_read_all_stats)'}, has blocked the swap's lock request for ${fmtDuration(b.blockedMs)} so far` +
        `${b.xactMs !== null ? `, in a transaction open for ${fmtDuration(b.xactMs)}` : ''}: ${b.query ?? '(query not visible)'}`,
      kind === 'terminate' ? 'its open transaction is rolled back and its connection closed (cancel does nothing to an idle transaction)' : 'its current statement is cancelled (its transaction rolls back)',
    ];
  return { kind, fn, impact };
}

/** A session that kept blocking the swap's lock request past the threshold: offer to cancel (active) or terminate it. */
export async function offerBlocker(ctx: StepContext, b: Blocker): Promise<void> {
  const o = blockerOffer(b);
  if ('leave' in o) {
    ctx.log(o.leave, 'warn');
    return;
  }
  const { kind, fn } = o;
  const answer = await ctx.confirm({
    kind, object: `pid ${b.pid}`, typed: false, statements: [`SELECT ${fn}(${b.pid})`],
    impact: o.impact,
    protections: ['if you decline, pgshift keeps retrying with lock_timeout: the application never waits more than one lock_timeout per attempt'],
  });
  if (!answer.confirmed) {
    ctx.log(`pid ${b.pid} left alone: waiting with lock_timeout retries`);
    return;
  }
  try {
    const r = await ctx.db.query<{ ok: boolean }>(`SELECT ${fn}($1::int) AS ok`, [b.pid], ctx.stepId);
    ctx.log(`${kind} pid ${b.pid}: ${r.rows[0]?.ok ? 'signalled' : 'already gone'}`);
  } catch (e) {
    ctx.log(`${kind} pid ${b.pid} refused: ${(e as Error).message} (signalling another role's backend needs pg_signal_backend or membership in that role); waiting with retries`, 'warn');
  }
}

/**
 * Before phase 4 has recorded the dependencies, the swap's preview still names them from the catalog (read-only):
 * the views re-created, the inbound foreign keys re-added, the sequences moved.
 */
async function discoveredLines(ctx: PlanContext, t: TablePlan): Promise<string[]> {
  const d = (await discoverDependencies(ctx.db, t).catch(() => null))?.record;
  if (!d) return [`-- + index/constraint renames, views, inbound FKs and sequences: read from the catalog once ${name(t)} exists`];
  return [
    `-- + index/constraint renames to the original names`,
    ...d.views.map((v) => `-- + view ${v.schema}.${v.name} re-created against the new table`),
    ...d.fks.map((f) => `-- + foreign key ${f.schema}.${f.table}.${f.name} dropped and re-added NOT VALID on (${f.newColumns.join(', ')})`),
    ...d.sequences.map((q) => `-- + sequence ${q.seqSchema}.${q.seqName} set past the highest value`),
    ...(d.views.length || d.fks.length || d.sequences.length ? [] : ['-- (no dependent views, inbound foreign keys or sequences)']),
  ];
}

function validateStep(t: TablePlan): Step {
  return {
    id: `validate-fks:${name(t)}`,
    phase: 5,
    title: `Validate the foreign keys re-added NOT VALID to ${name(t)}`,
    async preview(ctx) {
      const deps = (await ctx.journal.getArtifact(Artifacts.dependencies(t))) ?? (await discoverDependencies(ctx.db, t).catch(() => null))?.record;
      if (!deps) return [`-- the inbound foreign keys of ${name(t)} are read once it exists`];
      return deps.fks.length ? deps.fks.map((f) => `ALTER TABLE ${qname(f.schema, f.table)} VALIDATE CONSTRAINT ${ident(f.name)}`) : ['-- no inbound foreign keys'];
    },
    async run(ctx) {
      const a = await ctx.journal.getArtifact(Artifacts.swap(t));
      if (!a || !(await isSwapped(ctx.db, t))) return { status: 'skipped', summary: 'not swapped' };
      const rows: (string | number)[][] = [];
      let done = 0;
      for (const f of a.fks) {
        const r = await validateForeignKey(ctx, f, name(t));
        if (r.state === 'missing') return { status: 'failed', failed: `foreign key ${f.schema}.${f.table}.${f.name} is missing` };
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
    preview() {
      return [`-- only when the statistics of phase 3's ANALYZE after the copy are no longer current (autovacuum's rule, applied to the parent)`, ...gentleAnalyze(qname(t.schema, t.table))];
    },
    async run(ctx) {
      if ((await relkind(ctx.db, t.schema, t.table)) !== 'p') return { status: 'skipped', summary: `${name(t)} is not partitioned (not swapped)` };
      // phase 3 analyzed it after the copy: a second ANALYZE right after the swap, while the application re-plans
      // against the new table, is load for nothing when those statistics are current (source/copy/parent-stats.ts)
      const st = await parentStatsCurrent(ctx.db, t.schema, t.table);
      if (st.current) return { status: 'already-done', summary: `not analyzed again: the statistics of the ANALYZE after the copy are ${st.why}`, data: { ms: 0, analyzed: false } };
      ctx.log(`autovacuum analyzes partitions but never the partitioned parent: without this, the planner has no statistics for queries on the parent (${st.why})`);
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
        await ctx.db.ddl(gentleAnalyze(qname(t.schema, t.table)), { stepId: ctx.stepId, signal: ctx.signal });
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
  /** the reverse trigger first, in its own short transaction on the live table (the swap back is no longer possible) */
  const unhook = (a: SwapArtifact | null): CutoverPlan | null => (a?.reverseKey ? {
    before: [], locks: [qname(t.schema, t.table)], catchUp: null,
    body: [
      `DROP TRIGGER IF EXISTS ${ident(REVERSE_TRIGGER)} ON ${qname(t.schema, t.table)}`,
      `DROP FUNCTION IF EXISTS ${qname('pgshift', reverseFunction(t))}()`,
      `DROP TABLE IF EXISTS ${qname('pgshift', a.reverseLog ?? reverseLogName(t))}`,
    ],
  } : null);
  /** DROP TABLE locks the old table and the tables its foreign keys touch, in dropLocks' order */
  const drop = (fk: DropLocks): CutoverPlan => ({
    before: [], locks: fk.order, catchUp: null, body: [`DROP TABLE ${qname(t.schema, t.oldName)}`],
  });
  const statements = (a: SwapArtifact | null, fk: DropLocks, lockTimeoutMs: number): string[] => {
    const u = unhook(a);
    return [...(u ? cutoverStatements(u, lockTimeoutMs) : []), ...cutoverStatements(drop(fk), lockTimeoutMs)];
  };
  return {
    id: `drop:${obj}`,
    phase: 5,
    title: `Drop ${obj} once the retention period has passed`,
    async preview(ctx) {
      const fk = await dropLocks(ctx, t.schema, t.oldName);
      const lt = await cutoverLockTimeout(ctx.db, ctx.plan.locks.timeoutMs);
      return [`-- only after the integrity report passed and ${ctx.plan.retention.days} days after the swap (or --force-retention)`, ...statements(await ctx.journal.getArtifact(Artifacts.swap(t)), fk, lt.ms)];
    },
    async destructive(ctx) {
      if (!(await tableExists(ctx.db, t.schema, t.oldName))) return null;
      const a = await ctx.journal.getArtifact(Artifacts.swap(t));
      const prot = await protections(ctx, t);
      const facts = await tableFacts(ctx, t.schema, t.oldName);
      const fk = await dropLocks(ctx, t.schema, t.oldName);
      const lt = await cutoverLockTimeout(ctx.db, ctx.plan.locks.timeoutMs);
      const base = {
        kind: 'drop' as const, object: obj, typed: true, statements: statements(a, fk, lt.ms),
        impact: [
          `${obj}: ~${facts.rows.toLocaleString('en-US')} rows, ${fmtBytes(facts.bytes)} freed`,
          fk.impact,
          lt.note,
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
      const a = await ctx.journal.getArtifact(Artifacts.swap(t));
      if (!a) return { status: 'failed', failed: `no swap recorded for ${name(t)}` };
      const until = retentionEnds(a, ctx.plan.retention.days);
      if (until.getTime() > Date.now() && !ctx.overrides.has('force-retention')) {
        return { status: 'skipped', summary: `kept until ${utc(until)} (retention ${ctx.plan.retention.days} days after the swap); run phase 5 again then, or pass --force-retention with --confirm ${obj}` };
      }
      const used = await sequencesStillUsed(ctx, t);
      if (used.length) {
        return { status: 'failed', failed: `sequence(s) ${used.join(', ')} are owned by ${obj} but still used by another table's default: DROP TABLE would drop them. Move ownership first (ALTER SEQUENCE … OWNED BY the new column)` };
      }
      ctx.log(`no sequence owned by ${obj} is used elsewhere (ownership moved at the swap)`);
      const fk = await dropLocks(ctx, t.schema, t.oldName);
      const lt = await cutoverLockTimeout(ctx.db, ctx.plan.locks.timeoutMs);
      ctx.log(lt.note);
      // the reverse trigger first, on its own (a short lock on the live table); then the old table with its FK targets
      const run = (c: CutoverPlan) => lockedTx(ctx.db, async (tx) => {
        for (const s of c.body) await tx.query(s);
      }, { stepId: ctx.stepId, lockTimeoutMs: lt.ms, attempts: ctx.plan.locks.attempts, signal: ctx.signal, log: (m, l) => ctx.log(m, l), locks: c.locks, blockerThresholdMs: Math.max(1000, 2 * lt.ms), offer: (b) => offerBlocker(ctx, b) });
      const u = unhook(a);
      if (u) await run(u);
      const r = await run(drop(fk));
      return { status: 'done', summary: `dropped ${obj} (exclusive lock held ${r.lockHeldMs} ms, ${r.attempts} attempt(s)); the reverse-change log of ${name(t)} is removed (rollback now means restoring the backup)`, data: { lockHeldMs: r.lockHeldMs } };
    },
  };
}

export const cleanup: Phase = {
  id: 5,
  name: 'Cleanup',
  plan(ctx) {
    const steps: Step[] = [];
    for (const t of ctx.tables) steps.push(swapStep(t), validateStep(t), analyzeStep(t));
    for (const t of ctx.tables) steps.push(dropStep(t));
    return steps;
  },
};
