import type { ConfirmRequest, Phase, PlanContext, Step, StepContext, StepResult } from '../source/engine/types.js';
import type { TablePlan } from '../source/plan/schema.js';
import { displayName, ident, qname } from '../source/db/quote.js';
import { UserError } from '../source/engine/errors.js';
import { chooseOrder, columnMap, resolvePair, type Pair } from '../source/copy/meta.js';
import { batchCopy, batchFunctionName, emptiedCheckpoint, batchSql, pageBatchSql, pagesStatement, runProcedureName, targetIsEmpty, upperStatement, type PageWalkLog, type Position } from '../source/copy/batch.js';
import { captureLag, captureNames, captureReplayer, catchUp, findCapture, installCapture, installStatements, queueDiffering } from '../source/copy/online.js';
import { startBackground } from '../source/copy/catchup.js';
import { appTriggers, disableTriggerSql, triggerList } from '../source/copy/app-triggers.js';
import { LIVE_PACE, integrityReport, reportTables, type IntegrityReport } from '../source/copy/integrity.js';
import { pruningCheck, pruningTable } from '../source/copy/pruning.js';
import { buildKeys, finishDeferred, finishStatements, keyStatements, missingDeferred, missingKeys } from '../source/copy/finish.js';
import { planPartitions, targetState } from '../source/structure/build.js';
import { buildStructureDdl, deferredNote, type DeferredObjects } from '../source/structure/ddl.js';
import { readTableDef } from '../source/structure/definition.js';
import { Artifacts } from '../source/engine/artifacts.js';
import { gentleAnalyze } from '../source/db/session.js';
import { LIVE_VACUUM_COST_DELAY_MS, vacuumPartitions, vacuumSql, vacuumTargets } from '../source/copy/vacuum.js';

/**
 * Phase 3 · Data: one copy step per partitioned table (batch, or online with change capture), then the integrity
 * report and the partition-pruning check.
 */

export const copyStepId = (t: Pick<TablePlan, 'schema' | 'table'>) => `copy:${t.schema}.${t.table}`;
export const finishStepId = (t: Pick<TablePlan, 'schema' | 'table'>) => `finish:${t.schema}.${t.table}`;
export const vacuumStepId = (t: Pick<TablePlan, 'schema' | 'table'>) => `vacuum:${t.schema}.${t.table}`;
export const INTEGRITY_STEP = 'verify:integrity';
export const PRUNING_STEP = 'verify:pruning';

const SEED_LOOP_NOTE =
  "not the seed's loop: its LIMIT/OFFSET inside one DO block is a single transaction (nothing commits until the end, pg_sleep releases nothing) " +
  'and every batch re-reads all earlier rows (quadratic); pgshift walks the table once (its pages in physical order, or a keyset), one short transaction per batch, checkpoint committed with the rows';

/** The copy needs a verified backup; without one it is refused unless the operator overrides (journaled). */
async function backupGate(ctx: StepContext, t: TablePlan): Promise<Omit<ConfirmRequest, 'stepId'> | null> {
  const b = await ctx.journal.getArtifact(Artifacts.backup);
  if (b && b.verified === true) return null;
  if (!ctx.plan.backup.required) return null;
  const cp = await ctx.journal.getCheckpoint<Position>(ctx.stepId);
  if (cp?.position.done && ctx.plan.copy.mode === 'batch') return null;
  if (await ctx.journal.overrideConfirmed('backup')) return null;
  return {
    kind: 'override',
    object: 'backup',
    typed: true,
    statements: await previewCopy(ctx, t),
    impact: [
      `copies ${displayName(t.schema, t.table)} into ${displayName(t.schema, t.targetName)}; later phases swap and drop tables`,
      'without a verified backup there is no way back from a mistake beyond pgshift\'s own rollback',
    ],
    protections: [b ? `a backup artifact exists but is not verified (${b.file})` : 'no backup artifact in the journal (phase 1 makes and verifies it)'],
    refusal: 'no verified backup: phase 1 must make and verify one before data is copied',
    overrideFlag: '--skip-backup',
  };
}

async function previewCopy(ctx: PlanContext, t: TablePlan): Promise<string[]> {
  const pairOr = await resolvePair(ctx.db, t);
  const out: string[] = [];
  if ('missing' in pairOr) {
    out.push(`-- ${pairOr.missing}; statements shown once phase 2 has created it`);
    out.push(ctx.plan.copy.order === 'physical'
      ? `-- per batch (PostgreSQL 14+; else by key): the next pages holding ~${ctx.plan.copy.batchRows} rows, INSERT INTO ${qname(t.schema, t.targetName)} (…) SELECT … FROM ${qname(t.schema, t.table)} s WHERE s.ctid >= (first page) AND s.ctid < (next page) AND NOT EXISTS (its key in the change log)`
      : `-- per batch: its end (the ${ctx.plan.copy.batchRows}th next (${ident(t.key)}, pk) from the index), then INSERT INTO ${qname(t.schema, t.targetName)} (…) SELECT … FROM ${qname(t.schema, t.table)} WHERE (${ident(t.key)}, pk) > (cursor) AND (${ident(t.key)}, pk) <= (end)`);
    return out;
  }
  const pair = pairOr;
  try {
    const map = await columnMap(ctx.db, pair);
    const order = await chooseOrder(ctx.db, pair, t.key, ctx.plan.copy.batchRows);
    const cols = await ctx.db.read<{ attname: string; type: string }>(
      `SELECT a.attname, format_type(a.atttypid, a.atttypmod) AS type FROM pg_index i CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY k(n, o)
         JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.n WHERE i.indrelid = $1 AND i.indisprimary ORDER BY k.o`,
      [pair.source.oid],
    );
    const cp = await ctx.journal.getCheckpoint<Position>(copyStepId(t));
    const physical = cp ? cp.position.walk === 'pages' : ctx.plan.copy.order === 'physical' && (await ctx.db.serverVersionNum()) >= 140000;
    if (!physical) out.push(`-- order: ${order.reason}`);
    out.push(`-- change capture (${ctx.plan.copy.mode} mode), installed and committed before the first batch; the application's triggers on the new table are disabled until the swap`);
    out.push(...installStatements(pair, cols.map((c) => ({ name: c.attname, type: c.type })), captureNames(t)));
    if (physical) {
      const names = captureNames(t);
      out.push(`-- order: the source's pages in physical order (copy.order = physical; PostgreSQL 14+)`);
      out.push(`-- upper bound, fixed at the start: the source's size in pages once the capture is committed`);
      out.push(pagesStatement(pair));
      out.push(`-- each batch, one transaction with its checkpoint (SET LOCAL lock_timeout = ${ctx.plan.locks.timeoutMs}), through pgshift.${batchFunctionName(copyStepId(t))}(…) (plpgsql, created before the copy and dropped after): the rows of the next pages in physical order (a TID range scan, as many pages as hold ~${ctx.plan.copy.batchRows.toLocaleString('en-US')} rows), skipping the keys already in the change log (the replay writes them; looked up only for row versions written since the capture's install, $3 = the age of the oldest transaction running then); the checkpoint moved to the last page and the insert journaled, in the same transaction`);
      out.push(pageBatchSql(pair, map, { logQ: qname('pgshift', names.log), pk: cols.map((c) => c.attname), xmin: '0' }));
    } else {
      out.push(`-- upper bound, fixed at the start`);
      out.push(upperStatement(pair, order));
      const sql = batchSql(pair, map, order, order.bound);
      out.push(`-- each batch, one transaction with its checkpoint (SET LOCAL lock_timeout = ${ctx.plan.locks.timeoutMs}), through pgshift.${batchFunctionName(copyStepId(t))}(…) (plpgsql, created before the copy and dropped after): first where the batch ends, ${order.bound === 'rows' ? 'the' : `the ${order.key} of the`} ${ctx.plan.copy.batchRows.toLocaleString('en-US')}th next row${order.bound === 'rows' ? '' : ` (that ${order.key}'s group of ties taken whole)`}, read from index ${order.index ?? '(none)'}; $${sql.limitParam} = ${ctx.plan.copy.batchRows}`);
      out.push(sql.boundNext);
      out.push('-- then the range up to that end (no ORDER BY, no LIMIT, no RETURNING), the checkpoint moved to it and the insert journaled, in the same transaction');
      out.push(sql.insertNext);
    }
    out.push(`-- with no rest between batches, runs of them (up to 250 ms, each batch its own transaction) go through one CALL of pgshift.${runProcedureName(copyStepId(t))}(…), created before the copy and dropped after: CREATE OR REPLACE PROCEDURE … LANGUAGE plpgsql (the same batch function, COMMIT after each batch)`);
    out.push(`INSERT INTO pgshift.checkpoints (step_id, run_id, position, rows_done) VALUES (…) ON CONFLICT (step_id) DO UPDATE …`);
    const keys = (await deferredFor(ctx, t)).deferred?.keys ?? [];
    if (keys.length) {
      out.push('-- after the last batch, the keys phase 2 deferred (one sorted build per partition instead of an index insertion per copied row; ACCESS EXCLUSIVE on the new table only, which nothing but pgshift uses before the swap)');
      out.push(...keyStatements(pair.target, keys));
    }
    out.push(...gentleAnalyze(pair.target.q));
    out.push('-- then replay the change log (REPEATABLE READ, batch by batch, one row per key): DELETE new rows by pk, re-INSERT the current source rows, DELETE the log entries; kept up in the background until the swap');
  } catch (e) {
    out.push(`-- cannot plan the copy yet: ${(e as Error).message}`);
  }
  return out;
}

function copyStep(t: TablePlan): Step {
  const id = copyStepId(t);
  const name = displayName(t.schema, t.table);
  return {
    id,
    phase: 3,
    title: `Copy ${name} → ${t.targetName}`,
    // the checkpoint goes with the step's state (Journal.forgetSteps); the capture's artifact goes with the capture
    undo: { tables: [`${t.schema}.${t.table}`], artifacts: [Artifacts.appTriggers(t)] },
    destructive: (ctx) => backupGate(ctx, t),
    preview: (ctx) => previewCopy(ctx, t),
    async run(ctx): Promise<StepResult> {
      const online = ctx.plan.copy.mode === 'online';
      const pairOr = await resolvePair(ctx.db, t);
      if ('missing' in pairOr) throw new UserError(`cannot copy ${name}: ${pairOr.missing}`, 'run phase 2 (Structure) first', 1);
      const pair: Pair = pairOr;
      if (pair.swapped) return { status: 'already-done', summary: `${name} was already swapped with the partitioned table (phase 5): nothing to copy` };
      const b = await ctx.journal.getArtifact(Artifacts.backup);
      if (!(b && b.verified === true)) {
        ctx.log(ctx.plan.backup.required ? 'copying WITHOUT a verified backup: the operator overrode the refusal (journaled in pgshift.confirmations)' : 'copying without a verified backup: the plan says backup.required = false', 'warn');
      }
      const map = await columnMap(ctx.db, pair);
      for (const n of map.notes) ctx.log(n);
      if (map.skipped.length) ctx.log(`columns of ${pair.target.display} not in ${pair.source.display} are left to their defaults: ${map.skipped.join(', ')}`);
      const order = await chooseOrder(ctx.db, pair, t.key, ctx.plan.copy.batchRows);
      ctx.log(`batch copy, ${ctx.plan.copy.batchRows.toLocaleString('en-US')} rows per batch — ${SEED_LOOP_NOTE}`);
      const onRetry = (m: string) => ctx.log(/connection|terminat/i.test(m) ? `connection lost, reconnecting… (${m})` : m, 'warn');

      await disableTargetTriggers(ctx, t, pair);
      // change capture in BOTH modes, committed before the first batch: whatever is written during and after the copy
      // is applied to the new table before the swap (batch mode used to compare counts under the lock, blind to updates)
      let legacy = false;
      const cap0 = await findCapture(ctx.db, t);
      const cp0 = await ctx.journal.getCheckpoint<Position>(id);
      const empty = await targetIsEmpty(ctx.db, pair);
      // a checkpoint whose rows are gone (the target was emptied, as pgshift's hints say to do) starts a fresh copy:
      // with a capture, by pages (batchCopy starts it over by the same rule)
      const cp = cp0 && emptiedCheckpoint(cp0, empty) ? null : cp0;
      if (!cap0) {
        if (!cp0 && !empty) {
          throw new UserError(
            `${pair.target.display} already holds rows but this copy has no checkpoint: copying would insert rows twice`,
            `check what is in ${pair.target.display}; if it is a leftover of an earlier attempt, empty it (TRUNCATE ${pair.target.display}) and run phase 3 again`,
            1,
          );
        }
        if (cp && cp.rowsDone > 0) {
          if (online) {
            throw new UserError(
              `the copy of ${name} started without change capture (${cp.rowsDone} rows copied) and the plan now says online: changes made since are not logged`,
              'empty the target table and run phase 3 again, or finish in batch mode with writes stopped',
              1,
            );
          }
          legacy = true;
          ctx.log(`this copy started without change capture (${cp.rowsDone.toLocaleString('en-US')} rows copied): writes made since are not logged, so the swap compares row counts under its lock and refuses on any difference; empty ${pair.target.display} and run phase 3 again to copy with capture`, 'warn');
        }
        if (!legacy) {
          await installCapture(ctx.db, ctx.journal, t, pair, id, onRetry);
          ctx.log(`change capture installed and committed BEFORE the first batch: trigger ${CAPTURE_NAME} on ${pair.source.display} logs every changed primary key into pgshift.${captureNames(t).log} (TRUNCATE refused while it is on)`);
        }
      } else {
        ctx.log(`change capture already on (pgshift.${cap0.names.log}): continuing`);
      }
      if (online) ctx.log('online: the table stays live, so the copy paces itself on the writers\' commit latency (a canary commit): it rests after each batch when application commits slow down behind the copy\'s WAL, and takes the room back when they recover');
      else if (!legacy) ctx.log('batch mode: writes during and after the copy are captured too and applied before the swap; the copy does not rest between batches');

      const pages = await pageWalk(ctx, t, pair, cp, legacy);
      if (!pages) ctx.log(`copy order: ${order.reason}`);
      const res = await batchCopy(ctx.db, ctx.journal, pair, map, order, {
        stepId: id, batchRows: ctx.plan.copy.batchRows, pauseMs: ctx.plan.copy.pauseMs, throttle: ctx.plan.copy.throttle, pages: pages ?? undefined,
        signal: ctx.signal, log: ctx.log, progress: ctx.progress, yieldFactor: online ? 1 : 0,
      });
      if (res.stopped) {
        return { status: 'skipped', summary: `stopped at a committed checkpoint: ${res.rows.toLocaleString('en-US')} rows in ${res.batches} batches; run again to continue from there` };
      }
      const keys = await addKeys(ctx, t, pair, onRetry);
      ctx.log(`ANALYZE ${pair.target.display}: autovacuum never analyzes a partitioned parent, so pgshift does it after the copy (before the replay, so the replay's plans use the statistics)`);
      ctx.progress({ done: res.rows, total: res.rows, unit: 'rows', state: 'running', detail: `ANALYZE ${pair.target.display} (statistics for the new table and its partitions)` });
      // the copy's own inserts reported before the ANALYZE, so they do not count as changes since (phase 5 asks)
      await ctx.db.flushStats();
      await ctx.db.ddl(gentleAnalyze(pair.target.q), { stepId: id, onRetry: (i) => onRetry(`ANALYZE: ${i.error}`) });
      let replay = '';
      let applied = 0;
      const cap = await findCapture(ctx.db, t);
      if (cap) {
        const threshold = Math.max(100, Math.floor(ctx.plan.copy.batchRows / 50));
        let lastLog = 0;
        const lag0 = await captureLag(ctx.db, cap);
        ctx.log(`replaying the change log: ${lag0.toLocaleString('en-US')} changes captured during the copy`);
        const r = await catchUp(ctx.db, cap, {
          batch: ctx.plan.copy.batchRows, threshold, signal: ctx.signal, stepId: id, onRetry,
          onBatch: ({ applied, lag }) => {
            ctx.progress({ done: res.rows, total: res.rows, unit: 'rows', detail: `replay: ${applied.toLocaleString('en-US')} changes applied · capture lag ${lag.toLocaleString('en-US')}` });
            if (performance.now() - lastLog > 2000) {
              lastLog = performance.now();
              ctx.log(`capture lag: ${lag.toLocaleString('en-US')} changes pending (${applied.toLocaleString('en-US')} applied)`);
            }
          },
        });
        applied = r.applied;
        if (ctx.signal.aborted) return { status: 'skipped', summary: `copy done; replay stopped with ${r.lag} changes pending; run again to continue` };
        startBackground(ctx.db, cap.names.artifact.key, captureReplayer(ctx.db, cap, null, onRetry), { batch: ctx.plan.copy.batchRows, reporter: { log: ctx.log } });
        replay = `; replayed ${r.applied.toLocaleString('en-US')} captured changes, capture lag now ${r.lag.toLocaleString('en-US')} (kept applying in the background; phase 5 applies the small rest under its lock)`;
      }
      const secs = res.ms / 1000;
      const copied = res.rows - res.resumedFrom;
      const rate = secs > 0 ? Math.round(copied / secs) : 0;
      return {
        status: res.already && applied === 0 && !keys.ms ? 'already-done' : 'done',
        summary: res.already
          ? `already copied: ${res.rows.toLocaleString('en-US')} rows in ${res.batches} batches${keys.summary}${replay}`
          : `${res.rows.toLocaleString('en-US')} rows in ${res.batches} batches${res.resumedFrom ? ` (resumed at ${res.resumedFrom.toLocaleString('en-US')})` : ''}, ${secs.toFixed(1)} s, ${rate.toLocaleString('en-US')} rows/s${res.pausedMs > 500 ? `, paused ${(res.pausedMs / 1000).toFixed(1)} s by the throttle` : ''}${keys.summary}${replay}`,
        data: { rows: res.rows, batches: res.batches, ms: Math.round(res.ms), keysMs: Math.round(keys.ms), rowsPerSec: rate, mode: ctx.plan.copy.mode, order: order.columns, resumedFrom: res.resumedFrom },
      };
    },
  };
}

/**
 * The primary key and UNIQUE constraints phase 2 deferred, added once the rows are in and before the replay (which
 * deletes and re-inserts rows by key). Also run by the finish step: a rollback that rebuilt the table gets them again.
 */
async function addKeys(ctx: StepContext, t: TablePlan, pair: Pair, onRetry: (m: string) => void): Promise<{ summary: string; ms: number }> {
  const a = await ctx.journal.getArtifact(Artifacts.structure(t));
  const missing = await missingKeys(ctx.db, pair.target, a?.deferred?.keys ?? []);
  if (!missing.length) return { summary: '', ms: 0 };
  const names = missing.map((k) => `${k.kind} ${k.newName}`).join(', ');
  const online = ctx.plan.copy.mode === 'online';
  ctx.log(`adding ${names} to ${pair.target.display} now that its rows are in: one sorted build per partition instead of an index insertion per copied row (2,000,000 random uuid keys: 2.9 s + 1.8 s against 10.4 s); ACCESS EXCLUSIVE on the new table only, which nothing but pgshift uses before the swap` +
    (online ? '; online: without parallel workers (max_parallel_maintenance_workers = 0 for this transaction), so the build leaves the other cores to the application' : ''));
  ctx.progress({ done: 0, total: missing.length, unit: 'keys', detail: `building ${names}` });
  try {
    const r = await buildKeys(ctx.db, { stepId: ctx.stepId, target: pair.target, keys: missing, signal: ctx.signal, serial: online, onRetry: (i) => onRetry(`adding ${names}: ${i.error}; retry ${i.attempt}/${i.attempts} in ${i.waitMs} ms`) });
    return { summary: `; ${names} added after the copy in ${(r.ms / 1000).toFixed(1)} s`, ms: r.ms };
  } catch (e) {
    const err = e as { code?: string; message?: string };
    if (err.code === '23505') {
      throw new UserError(
        `${pair.target.display} holds a key twice, so ${names} cannot be added (nothing was added): ${err.message}`,
        `a copy never inserts a row twice: empty ${pair.target.display} (TRUNCATE ${pair.target.display}) and run phase 3 again, and report this`,
        1,
      );
    }
    if (err.code === '23502') {
      throw new UserError(`${names} cannot be added to ${pair.target.display}: ${err.message}`, `a key column holds NULL in ${pair.source.display}: fix those rows, empty ${pair.target.display} and run phase 3 again`, 1);
    }
    throw e;
  }
}

const CAPTURE_NAME = 'pgshift_capture';

/**
 * Whether a fresh copy walks the source's pages (batch.ts, pageBatchSql) and, if so, the capture log it skips keys
 * of. It needs the change capture (rows that move between pages are the replay's) and TID range scans (PostgreSQL
 * 14+: before, a ctid range is a whole-table scan per batch). The copy's checkpoint (`cp`: null for a fresh copy,
 * also when its rows are gone from an emptied target) keeps the walk it started with (batchCopy).
 */
async function pageWalk(ctx: StepContext, t: TablePlan, pair: Pair, cp: { position: Position; rowsDone: number } | null, legacy: boolean): Promise<PageWalkLog | null> {
  const cap = legacy ? null : await findCapture(ctx.db, t);
  if (cp) {
    if (cp.position.walk === 'pages') return cap ? { logQ: cap.logQ, pk: cap.pk, xmin: cap.xmin } : null;
    if (!cp.position.done) ctx.log(`the copy goes on in (${cp.position.order.join(', ')}) order, as it started`);
    return null;
  }
  if (ctx.plan.copy.order === 'key') {
    ctx.log(`copy.order = key in the plan: batches walk (${t.key}, primary key) order`);
    return null;
  }
  if (!cap) return null;
  if (pair.source.kind !== 'r') {
    // a partitioned (or other) relation has no pages of its own: its size is 0, a page walk would copy nothing
    ctx.log(`${pair.source.display} is not a plain table (relkind ${pair.source.kind}): the copy walks the key order, not pages`);
    return null;
  }
  if ((await ctx.db.serverVersionNum()) < 140000) {
    ctx.log('PostgreSQL before 14 has no TID range scan: the copy walks the key order instead of the physical order');
    return null;
  }
  ctx.log(`copy order: the source's pages in physical order (TID range scans: the sequential read of a single INSERT … SELECT, no index); a row that moves between pages while the copy runs is in the change log, so each batch leaves the logged keys to the replay`);
  return { logQ: cap.logQ, pk: cap.pk, xmin: cap.xmin };
}

/**
 * The application's triggers on the new table are disabled before the first batch (their state recorded), so the
 * copy and the replay never fire them; the swap restores them as they were, in its transaction.
 */
async function disableTargetTriggers(ctx: StepContext, t: TablePlan, pair: Pair): Promise<void> {
  const now = await appTriggers(ctx.db, pair.target.oid);
  const key = Artifacts.appTriggers(t);
  let art = await ctx.journal.getArtifact(key);
  if (!art) {
    art = { target: now };
    if (now.length) await ctx.journal.setArtifact(key, art);
  }
  const sql = disableTriggerSql(pair.target.q, now);
  if (sql.length) {
    await ctx.db.ddl(sql, { stepId: ctx.stepId, signal: ctx.signal });
  }
  if (art.target.length) {
    ctx.log(`application trigger(s) ${triggerList(art.target)} on ${pair.target.display} stay disabled during the copy and the replay (pgshift's own writes do not fire them); the swap enables them as they were, in its transaction`);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// finish: the secondary indexes and outbound FKs phase 2 deferred, built once the table is full

/** What phase 2 deferred: from its artifact, or (dry run before phase 2) as phase 2 would record it. */
async function deferredFor(ctx: PlanContext, t: TablePlan): Promise<{ deferred: DeferredObjects | null; partitions: string[]; planned: boolean }> {
  const a = await ctx.journal.getArtifact(Artifacts.structure(t));
  const state = await targetState(ctx.db, t.schema, t.targetName);
  if (a) return { deferred: a.deferred ?? null, partitions: state ? state.partitions.map((p) => p.name) : a.partitions.map((p) => p.name), planned: false };
  if (state) return { deferred: null, partitions: state.partitions.map((p) => p.name), planned: false };
  const def = await readTableDef(ctx.db, t.schema, t.table);
  if (!def || def.relkind !== 'r') return { deferred: null, partitions: [], planned: true };
  const { partitions } = await planPartitions(ctx.db, t, def);
  const ddl = buildStructureDdl({ def, target: t.targetName, strategy: t.strategy, key: t.key, partitions, serverMajor: ctx.serverMajor, currentUser: def.owner });
  return { deferred: ddl.deferred, partitions: partitions.map((p) => p.name), planned: true };
}

function finishStep(t: TablePlan): Step {
  const id = finishStepId(t);
  const name = displayName(t.schema, t.targetName);
  return {
    id,
    phase: 3,
    title: `Indexes and foreign keys of ${name}, built after the copy`,
    undo: { tables: [`${t.schema}.${t.table}`], artifacts: [] },
    // checked on every run (cheap catalog reads when all is built): a rollback that drops and rebuilds the table
    // must get them again even though this step was done before
    rerunnable: true,
    async preview(ctx) {
      try {
        const { deferred, partitions, planned } = await deferredFor(ctx, t);
        if (!deferred || (!deferred.indexes.length && !deferred.foreignKeys.length)) return [`-- nothing deferred: phase 2 built every index and foreign key of ${name}`];
        return [`-- ${deferredNote(deferred)}${planned ? ' (partitions as phase 2 will create them)' : ''}`, ...finishStatements(t.schema, t.targetName, partitions, deferred)];
      } catch (e) {
        return [`-- cannot plan the deferred indexes and foreign keys yet: ${(e as Error).message}`];
      }
    },
    async run(ctx): Promise<StepResult> {
      const pairOr = await resolvePair(ctx.db, t);
      if ('missing' in pairOr && pairOr.retired) return { status: 'already-done', summary: `${pairOr.missing}: its indexes and foreign keys were built before the swap` };
      if ('missing' in pairOr) throw new UserError(`cannot finish ${name}: ${pairOr.missing}`, 'run phase 2 (Structure) first', 1);
      if (pairOr.swapped) return { status: 'already-done', summary: `${displayName(t.schema, t.table)} was already swapped with the partitioned table (phase 5)` };
      const a = await ctx.journal.getArtifact(Artifacts.structure(t));
      const d = a?.deferred;
      const keysOnly = !d || (!d.indexes.length && !d.foreignKeys.length);
      if (keysOnly && !d?.keys?.length) {
        return { status: 'already-done', summary: `nothing deferred: phase 2 built every index and foreign key of ${name}` };
      }
      const cp = await ctx.journal.getCheckpoint<Position>(copyStepId(t));
      if (!cp?.position.done) {
        return {
          status: 'failed',
          failed: `the copy of ${displayName(t.schema, t.table)} has not finished: the deferred indexes and foreign keys are built after it (building them first would slow the copy ~3×); run phase 3 again`,
        };
      }
      // the copy step adds them; here for a table rebuilt since (a rollback), or a copy step stopped right after its last batch
      const keys = await addKeys(ctx, t, pairOr, (m) => ctx.log(m, 'warn'));
      if (keysOnly || !d) {
        return keys.ms ? { status: 'done', summary: keys.summary.replace(/^; /, '') } : { status: 'already-done', summary: `the keys of ${name} are built; phase 2 deferred no other index or foreign key` };
      }
      ctx.log(`${deferredNote(d)}: building them now on ${pairOr.target.display}` +
        (ctx.plan.copy.mode === 'online' ? '. Online: the capture replay keeps writing to the new table meanwhile; CONCURRENTLY and the per-partition NOT VALID + VALIDATE keep those writes flowing' : ''));
      let r;
      try {
        r = await finishDeferred(ctx.db, {
          stepId: id, schema: pairOr.target.schema, table: pairOr.target.name, deferred: d, signal: ctx.signal,
          log: ctx.log, progress: ctx.progress, confirm: ctx.confirm,
        });
      } catch (e) {
        if ((e as { code?: string }).code === '23503') return { status: 'failed', failed: (e as Error).message };
        throw e;
      }
      if (r.stopped) return { status: 'skipped', summary: 'stopped; what was built is kept, run again to build the rest' };
      const ix = r.indexes;
      const fk = r.foreignKeys;
      const built = ix.reduce((n, x) => n + x.built, 0);
      const adopted = fk.reduce((n, x) => n + x.adopted, 0);
      const invalid = ix.filter((x) => !x.valid).map((x) => x.name);
      const nothing = built === 0 && ix.every((x) => x.rebuilt === 0) && fk.every((x) => x.added === 0 && x.validated === 0 && x.parentMs === 0);
      const failed = invalid.length ? `parent index(es) ${invalid.join(', ')} still invalid: a partition index is missing; run phase 3 again` : null;
      return {
        ...(failed ? { status: 'failed' as const, failed } : { status: nothing ? 'already-done' as const : 'done' as const }),
        summary:
          `${ix.length} index(es) (${built} partition indexes built concurrently${ix.some((x) => x.rebuilt) ? `, ${ix.reduce((n, x) => n + x.rebuilt, 0)} invalid rebuilt` : ''}), ` +
          `${fk.length} foreign key(s) (validated per partition, ${adopted} partition constraints adopted by the parent) in ${(r.ms / 1000).toFixed(1)} s` +
          (ix.length ? `; indexes ${ix.map((x) => `${x.name} ${(x.ms / 1000).toFixed(1)} s`).join(', ')}` : '') +
          (fk.length ? `; foreign keys ${fk.map((x) => `${x.name} ${(x.ms / 1000).toFixed(1)} s (parent ADD ${Math.round(x.parentMs)} ms)`).join(', ')}` : ''),
        data: { ms: Math.round(r.ms), indexes: ix.map((x) => ({ ...x, ms: Math.round(x.ms) })), foreignKeys: fk.map((x) => ({ ...x, ms: Math.round(x.ms), parentMs: Math.round(x.parentMs) })) },
      };
    },
  };
}

/** VACUUM of the new partitions after the copy, so autovacuum is not due on them at the swap (source/copy/vacuum.ts). */
function vacuumStep(t: TablePlan): Step {
  const id = vacuumStepId(t);
  const name = displayName(t.schema, t.targetName);
  const costDelay = (ctx: PlanContext) => (ctx.plan.copy.mode === 'online' ? LIVE_VACUUM_COST_DELAY_MS : 0);
  return {
    id,
    phase: 3,
    title: `VACUUM the partitions of ${name} (so autovacuum is not due on them at the swap)`,
    undo: { tables: [`${t.schema}.${t.table}`], artifacts: [] },
    // checked on every run: only partitions with rows inserted since their last vacuum are vacuumed again
    rerunnable: true,
    async preview(ctx) {
      const head = [
        `-- every partition the copy filled is due for an insert-triggered autovacuum, which would otherwise run right when the swap wants its lock (and does not yield to a lock_timeout below deadlock_timeout)`,
        `-- one partition at a time, on a session of its own, SET vacuum_cost_delay = ${costDelay(ctx)}${costDelay(ctx) ? ' (autovacuum\'s pace: the table is live)' : ''}, SET lock_timeout; SKIP_LOCKED leaves a partition an autovacuum is already on to it`,
      ];
      try {
        const parts = await vacuumTargets(ctx.db, qname(t.schema, t.targetName));
        return [...head, ...parts.map((p) => vacuumSql(p.schema, p.name))];
      } catch {
        return [...head, `-- VACUUM (SKIP_LOCKED) on each partition of ${qname(t.schema, t.targetName)} (phase 2 creates them)`];
      }
    },
    async run(ctx): Promise<StepResult> {
      const pairOr = await resolvePair(ctx.db, t);
      if ('missing' in pairOr && pairOr.retired) return { status: 'already-done', summary: `${pairOr.missing}: vacuumed before the swap` };
      if ('missing' in pairOr) throw new UserError(`cannot vacuum ${name}: ${pairOr.missing}`, 'run phase 2 (Structure) first', 1);
      if (pairOr.swapped) return { status: 'already-done', summary: `${displayName(t.schema, t.table)} was already swapped with the partitioned table (phase 5): autovacuum looks after it now` };
      const cp = await ctx.journal.getCheckpoint<Position>(copyStepId(t));
      if (!cp?.position.done) return { status: 'failed', failed: `the copy of ${displayName(t.schema, t.table)} has not finished: its partitions are vacuumed after it; run phase 3 again` };
      const delay = costDelay(ctx);
      ctx.log(`VACUUM of the partitions of ${pairOr.target.display}: the copy made each of them due for an insert-triggered autovacuum, which would otherwise run when the swap wants its lock${delay ? `; cost delay ${delay} ms (autovacuum's own pace: the table is live)` : ''}`);
      const r = await vacuumPartitions(ctx.db, {
        stepId: id, parent: pairOr.target.q, costDelayMs: delay, lockTimeoutMs: ctx.plan.locks.timeoutMs, signal: ctx.signal, log: ctx.log, progress: ctx.progress,
      });
      const skipped = r.skipped.length ? `; ${r.skipped.length} skipped, an autovacuum was on them already (${r.skipped.join(', ')})` : '';
      if (r.stopped) return { status: 'skipped', summary: `stopped after ${r.vacuumed.length} partition(s); run again to vacuum the rest` };
      if (!r.vacuumed.length && !r.skipped.length) return { status: 'already-done', summary: `every partition of ${name} (${r.partitions}) was vacuumed since its last insert` };
      return {
        status: 'done',
        summary: `vacuumed ${r.vacuumed.length} of ${r.partitions} partition(s) in ${(r.ms / 1000).toFixed(1)} s${delay ? ` (cost delay ${delay} ms)` : ''}${skipped}`,
        data: { ms: Math.round(r.ms), vacuumed: r.vacuumed.length, skipped: r.skipped.length },
      };
    },
  };
}

const integrityStep = (tables: readonly TablePlan[]): Step => ({
  id: INTEGRITY_STEP,
  phase: 3,
  title: 'Integrity report: counts, missing/extra/changed rows (row hashes), FK orphans',
  rerunnable: true,
  // the report covers every table: undoing any of them makes it stale
  undo: { tables: tables.map((t) => `${t.schema}.${t.table}`), artifacts: [Artifacts.integrityReport] },
  preview(ctx) {
    return ctx.tables.flatMap((t) => [
      `-- ${displayName(t.schema, t.table)} vs ${displayName(t.schema, t.targetName)}${ctx.plan.copy.mode === 'online' ? ' (change log drained first)' : ''}`,
      `SELECT bucket, count(*), sum(hash part 1), sum(hash part 2) FROM (SELECT (hashtext(ROW(pk)::text) & 2147483647) % n AS bucket, md5(ROW(columns…)::text) AS h FROM ${qname(t.schema, t.table)}) GROUP BY bucket`,
      `-- the same over ${qname(t.schema, t.targetName)} (and per partition); differing buckets drilled with a FULL JOIN on the primary key`,
      `-- FK orphans: SELECT count(*) … WHERE NOT EXISTS (…) per outbound and inbound foreign key`,
    ]).concat([`INSERT INTO pgshift.artifacts (key, …) VALUES ('integrity-report', …)`]);
  },
  async run(ctx) {
    await resyncAfterFail(ctx);
    if (ctx.plan.copy.mode === 'online') ctx.log(`online: the tables are live, so the check hashes the old and the new table one after the other (one snapshot), leaving a core to the application, in ranges of ${LIVE_PACE.blocks} blocks with a rest after each range of ${LIVE_PACE.rest} × the time it took, so the application's queries get the CPU back before a queue forms`);
    let report: IntegrityReport = await integrityReport(ctx.db, ctx.tables, {
      log: ctx.log, signal: ctx.signal, stepId: ctx.stepId, live: ctx.plan.copy.mode === 'online',
      onRows: (p) => ctx.progress({ ...p, unit: 'rows hashed' }),
    });
    // the swap trusts a passing report: it must not pass while the deferred indexes / FKs are not built yet
    const unfinished: string[] = [];
    const notes = new Map<string, string>();
    for (const t of ctx.tables) {
      const a = await ctx.journal.getArtifact(Artifacts.structure(t));
      if (!a?.deferred) continue;
      const pair = await resolvePair(ctx.db, t);
      if ('missing' in pair || pair.swapped) continue;
      const miss = await missingDeferred(ctx.db, pair.target.schema, pair.target.name, a.deferred);
      if (miss.length) {
        const line = `${pair.target.display}: ${miss.join(', ')} not built (step ${finishStepId(t)})`;
        unfinished.push(line);
        notes.set(displayName(t.schema, t.table), line);
      }
    }
    if (unfinished.length) {
      report = {
        ...report, pass: false,
        tables: report.tables.map((x) => (notes.has(x.table) ? { ...x, pass: false, note: [x.note, notes.get(x.table)].filter(Boolean).join('; ') } : x)),
      };
      for (const u of unfinished) ctx.log(u, 'error');
    }
    await ctx.journal.setArtifact(Artifacts.integrityReport, report);
    const hashed = report.tables.reduce((a, x) => a + x.oldRows + x.newRows, 0);
    ctx.progress({ done: hashed, total: hashed, unit: 'rows hashed' });
    const bad = report.tables.filter((x) => !x.pass);
    const summary = report.pass
      ? `PASS: ${report.tables.map((x) => `${x.table} ${x.oldRows.toLocaleString('en-US')} = ${x.newRows.toLocaleString('en-US')} rows, content identical`).join('; ')}`
      : `FAIL: ${bad.map((x) => `${x.table}: ${x.note && x.chunks === 0 ? x.note : `${x.missing} missing, ${x.extra} extra, ${x.mismatched} changed, ${x.orphans.reduce((a, o) => a + o.count, 0)} FK orphans (old ${x.oldRows.toLocaleString('en-US')} rows, new ${x.newRows.toLocaleString('en-US')})`}`).join('; ')}`;
    return {
      ...(report.pass ? { status: 'done' as const } : {
        status: 'failed' as const,
        failed: unfinished.length ? `${unfinished.join('; ')}: run phase 3 again to build them` : `${summary} — see pgshift report`,
      }),
      summary: unfinished.length ? `FAIL: ${unfinished.join('; ')}` : summary,
      tables: reportTables(report),
      data: report,
      warnings: report.tables.flatMap((x) => (x.note ? [`${x.table}: ${x.note}`] : [])),
    };
  },
});

/**
 * Phase 3 run again after a failed integrity report: for each table that failed, the rows that differ are queued in
 * its change log and applied from the source (the source is the truth), then the report is made again. No rollback
 * needed, nothing copied twice.
 */
async function resyncAfterFail(ctx: StepContext): Promise<void> {
  const prev = await ctx.journal.getArtifact(Artifacts.integrityReport);
  if (!prev || prev.pass) return;
  for (const t of ctx.tables) {
    const entry = prev.tables.find((x) => x.table === displayName(t.schema, t.table));
    if (!entry || entry.pass) continue;
    const cap = await findCapture(ctx.db, t);
    if (!cap) {
      ctx.log(`${entry.table} failed the last integrity report and has no change capture to re-sync through: empty ${displayName(t.schema, t.targetName)} and run phase 3 again (or roll back)`, 'warn');
      continue;
    }
    ctx.log(`${entry.table} failed the last integrity report (${entry.missing} missing, ${entry.extra} extra, ${entry.mismatched} changed): re-syncing — every differing row is queued in the change log and applied from the source`);
    const queued = await queueDiffering(ctx.db, cap, ctx.stepId);
    const r = await catchUp(ctx.db, cap, { batch: ctx.plan.copy.batchRows, threshold: 0, signal: ctx.signal, stepId: ctx.stepId, maxRounds: 1000 });
    ctx.log(`${entry.table}: ${queued.toLocaleString('en-US')} differing row(s) queued, ${r.applied.toLocaleString('en-US')} change(s) applied; ${r.lag.toLocaleString('en-US')} pending; checking again`);
  }
}

const pruningStep: Step = {
  id: PRUNING_STEP,
  phase: 3,
  title: 'Partition pruning: EXPLAIN ANALYZE of the plan\'s queries, old vs new table',
  rerunnable: true,
  preview(ctx) {
    return [
      ...new Set(ctx.tables.map((t) => `ANALYZE ${qname(t.schema, t.targetName)}`)),
      ...ctx.plan.pruning.queries.flatMap((q) => [`-- ${q.name}`, `EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) ${q.sql}`, `-- and the same on the new table (qualified name replaced), in a READ ONLY transaction rolled back`]),
    ];
  },
  async run(ctx) {
    if (!ctx.plan.pruning.queries.length) return { status: 'skipped', summary: 'no pruning queries in the plan (pruning.queries)' };
    const rs = await pruningCheck(ctx.db, ctx.plan, ctx.tables, ctx.log, ctx.stepId);
    for (const r of rs) ctx.log(`${r.name}: ${r.sentence}`, r.ok ? 'info' : 'warn');
    const warnings = rs.filter((r) => !r.ok).map((r) => `${r.name}: ${r.sentence}`);
    return {
      status: 'done',
      summary: rs.map((r) => r.sentence).join('; '),
      tables: [pruningTable(rs)],
      data: { results: rs },
      warnings,
    };
  },
};

export const data: Phase = {
  id: 3,
  name: 'Data',
  plan(ctx) {
    if (!ctx.tables.length) return [];
    return [...ctx.tables.flatMap((t) => [copyStep(t), vacuumStep(t), finishStep(t)]), integrityStep(ctx.tables), pruningStep];
  },
};
