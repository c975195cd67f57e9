import { triggerExists } from '../source/db/catalog.js';
import fs from 'node:fs';
import path from 'node:path';
import type { Phase, PhaseId, PlanContext, Step, StepContext, StepResult, ReportTable } from '../source/engine/types.js';
import { autoPartitionsOf, type TablePlan } from '../source/plan/schema.js';
import { ident, qname } from '../source/db/quote.js';
import { describeKeyColumn, fillBatchSql, keyColumnDdl, keyColumnStepId, planKeyColumn, type KeyColumnArtifact } from '../source/structure/keycolumn.js';
import { readTableDef } from '../source/structure/definition.js';
import { buildStructureDdl, deferredNote } from '../source/structure/ddl.js';
import { autoPartitionPreview, autoPlan, catchUpListPartitions, createPartition, installAutoPartition, planPartitions, targetState, type StructureArtifact } from '../source/structure/build.js';
import { sha256 } from '../source/structure/sqlfile.js';
import { analyzeSql, describeSqlAnalysis } from '../source/structure/sql-analysis.js';
import { Artifacts } from '../source/engine/artifacts.js';

// ---------------------------------------------------------------------------------------------------------------
// SQL files of the plan (plan.sql.structure here; phase 4 reuses sqlFileSteps for plan.sql.dependencies)


function readSqlFile(ctx: PlanContext, rel: string): { abs: string; text: string; checksum: string } {
  const abs = path.resolve(ctx.planDir, rel);
  const text = fs.readFileSync(abs, 'utf8');
  return { abs, text, checksum: sha256(text) };
}

/**
 * One step per SQL file, in order, id `sql:<path as written in the plan>`. Each file runs in its own transaction
 * (db.tx: SET LOCAL lock_timeout, retried on lock timeouts), and its sha256 is recorded in the same transaction as
 * artifact `sql:<path>`, so "applied" and "recorded" can never disagree. The steps run on every run (rerunnable):
 * an applied file with the same checksum is 'already-done'; a file changed since it was applied is refused with both
 * checksums (it would need its own migration, pgshift won't guess).
 */
export function sqlFileSteps(paths: readonly string[], phase: PhaseId): Step[] {
  return paths.map((rel): Step => ({
    id: `sql:${rel}`,
    // the file's objects are removed by the rollback's created-objects step (from the catalog snapshot); the journal
    // forgets the file with the rest when the rollback completes
    undo: { tables: [], artifacts: [Artifacts.sql(rel)] },
    phase,
    title: `Apply ${rel}`,
    rerunnable: true,
    async preview(ctx) {
      const f = readSqlFile(ctx, rel);
      return [`-- ${rel} (sha256 ${f.checksum.slice(0, 16)}…), in one transaction`, ...describeSqlAnalysis(await analyzeSql(f.text)), f.text.trim()];
    },
    async run(ctx: StepContext): Promise<StepResult> {
      let f;
      try {
        f = readSqlFile(ctx, rel);
      } catch (e) {
        return { status: 'failed', failed: `cannot read ${rel}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}` };
      }
      const key = Artifacts.sql(rel);
      const prior = await ctx.journal.getArtifact(key);
      if (prior) {
        if (prior.checksum === f.checksum) {
          return { status: 'already-done', summary: `applied ${prior.appliedAt}, unchanged (sha256 ${f.checksum.slice(0, 12)}…)` };
        }
        return {
          status: 'failed',
          failed: `${rel} changed after it was applied on ${prior.appliedAt}: applied sha256 ${prior.checksum}, file now sha256 ${f.checksum}. ` +
            'pgshift will not re-run a changed migration file: revert the file, or put the change in a new file',
        };
      }
      const analysis = await analyzeSql(f.text);
      const problems = analysis.problems;
      if (problems.length) {
        const lines = problems.map((p) => `line ${p.line}: ${p.text} — ${p.reason}`);
        for (const l of lines) ctx.log(`${rel} ${l}`, 'error');
        return { status: 'failed', failed: `${rel} refused: ${lines.join('; ')}` };
      }
      for (const l of describeSqlAnalysis(analysis)) ctx.log(`${rel}: ${l.replace(/^-- ?/, '')}`, /^-- line \d+: /.test(l) ? 'warn' : 'info');
      ctx.log(`applying ${rel} (${f.text.length.toLocaleString('en-US')} characters, sha256 ${f.checksum.slice(0, 12)}…) in one transaction, lock_timeout ${ctx.db.locks.timeoutMs} ms`);
      const t0 = performance.now();
      const appliedAt = new Date().toISOString();
      await ctx.db.tx(async (tx) => {
        await tx.query(f.text);
        await ctx.journal.setArtifact(key, { checksum: f.checksum, appliedAt, file: rel, runId: ctx.runId }, tx);
      }, {
        stepId: ctx.stepId, signal: ctx.signal,
        onRetry: (r) => ctx.log(`lock not available (${r.error}); retry ${r.attempt}/${r.attempts} in ${r.waitMs} ms`, 'warn'),
      });
      return { status: 'done', summary: `applied in ${Math.round(performance.now() - t0)} ms (sha256 ${f.checksum.slice(0, 12)}…)`, data: { checksum: f.checksum, appliedAt } };
    },
  }));
}

// ---------------------------------------------------------------------------------------------------------------
// The partitioned tables

const LOCK_NOTE = 'CREATE TABLE … PARTITION OF takes ACCESS EXCLUSIVE on the parent: harmless now that the new table is unused; on a live partitioned table create partitions standalone and ATTACH them (SHARE UPDATE EXCLUSIVE)';

async function currentUser(ctx: PlanContext): Promise<string> {
  const [r] = await ctx.db.read<{ u: string }>(`SELECT current_user AS u`);
  return r!.u;
}

async function structureStatements(ctx: PlanContext, t: TablePlan): Promise<string[]> {
  const def = await readTableDef(ctx.db, t.schema, t.table);
  if (!def) return [`-- ${t.schema}.${t.table} does not exist`];
  if (def.relkind === 'p') return [`-- ${t.schema}.${t.table} is already partitioned`];
  const { partitions, notes } = await planPartitions(ctx.db, t, def);
  const state = await targetState(ctx.db, t.schema, t.targetName);
  if (state) {
    const have = new Set(state.partitions.map((p) => p.name));
    const hasDefault = state.partitions.some((p) => p.isDefault);
    return [
      `-- ${t.schema}.${t.targetName} exists; only missing partitions are created`,
      ...partitions.filter((p) => !have.has(p.name) && !(p.isDefault && hasDefault)).map((p) => `CREATE TABLE ${qname(t.schema, p.name)} PARTITION OF ${qname(t.schema, t.targetName)} ${p.bound}`),
    ];
  }
  const ddl = buildStructureDdl({ def, target: t.targetName, strategy: t.strategy, key: t.key, partitions, serverMajor: ctx.serverMajor, currentUser: await currentUser(ctx) });
  const note = deferredNote(ddl.deferred);
  const deferred = note
    ? [
      `-- ${note}; they run in phase 3 once the copy is done (keys: step copy:${t.schema}.${t.table}; the rest: step finish:${t.schema}.${t.table}):`,
      ...(ddl.deferred.keys ?? []).map((x) => `--   ${x.statement}  (after the last batch, before the replay)`),
      ...ddl.deferred.indexes.map((x) => `--   ${x.statement}  (ON ONLY the parent, CONCURRENTLY per partition, ATTACH)`),
      ...ddl.deferred.foreignKeys.map((x) => `--   ${x.statement}  (NOT VALID + VALIDATE per partition, then the parent)`),
    ]
    : [];
  return [...notes.map((n) => `-- ${n}`), ...ddl.changes.map((c) => `-- ${c}`), ...ddl.statements, ...deferred, ...autoPartitionPreview(t, ctx.db.locks.timeoutMs)];
}

export const structureStepId = (t: Pick<TablePlan, 'schema' | 'table'>) => `structure:${t.schema}.${t.table}`;

function structureStep(t: TablePlan): Step {
  const id = structureStepId(t);
  return {
    id,
    phase: 2,
    title: `Partitioned table ${t.schema}.${t.targetName} (${t.strategy} by ${t.key})`,
    undo: { tables: [`${t.schema}.${t.table}`], artifacts: [Artifacts.structure(t)] },
    preview: (ctx) => structureStatements(ctx, t),
    async run(ctx: StepContext): Promise<StepResult> {
      const src = `${t.schema}.${t.table}`;
      const def = await readTableDef(ctx.db, t.schema, t.table);
      const artifact = await ctx.journal.getArtifact(Artifacts.structure(t));
      if (!def) return { status: 'failed', failed: `${src} does not exist` };
      if (def.relkind === 'p') {
        if (artifact) return { status: 'already-done', summary: `${src} is the partitioned table already (swapped)` };
        return { status: 'failed', failed: `${src} is already partitioned: nothing for pgshift to build` };
      }
      const onRetry = (r: { error: string; attempt: number; attempts: number; waitMs: number }) =>
        ctx.log(`lock not available (${r.error}); retry ${r.attempt}/${r.attempts} in ${r.waitMs} ms`, 'warn');
      const { partitions, notes } = await planPartitions(ctx.db, t, def);
      for (const n of notes) ctx.log(n);
      const state = await targetState(ctx.db, t.schema, t.targetName);

      if (state) {
        // idempotent path: the table exists; it must be ours and partitioned the way the plan says
        if (!artifact) {
          return { status: 'failed', failed: `${t.schema}.${t.targetName} already exists and was not created by pgshift (no artifact ${Artifacts.structure(t).key}): drop or rename it, or set another "target" in the plan` };
        }
        if (state.strategy !== t.strategy || state.keyColumns.join(',') !== t.key) {
          return { status: 'failed', failed: `${t.schema}.${t.targetName} is partitioned by ${state.strategy || 'nothing'} (${state.keyColumns.join(', ')}), the plan says ${t.strategy} (${t.key})` };
        }
        const have = new Set(state.partitions.map((p) => p.name));
        const hasDefault = state.partitions.some((p) => p.isDefault);
        const missing = partitions.filter((p) => !have.has(p.name) && !(p.isDefault && hasDefault));
        let moved = 0;
        let auto = artifact.autoPartitionTrigger;
        const ap = autoPlan(t);
        const autoMissing = !!ap && !(await triggerExists(ctx.db, ap.table.schema, ap.table.name, ap.trigger));
        if (!missing.length && !autoMissing) {
          return { status: 'already-done', summary: `${t.schema}.${t.targetName} exists with all ${state.partitions.length} partitions` };
        }
        for (const p of missing) ctx.log(`missing partition ${p.name} ${p.bound}: creating it (${LOCK_NOTE.split(':')[0]})`);
        await ctx.db.tx(async (tx) => {
          moved = 0;
          for (const p of missing) moved += await createPartition(tx, t.schema, t.targetName, p, t.key);
          auto = (await installAutoPartition(tx, t, ctx.db.locks.timeoutMs)) ?? auto;
          const extra = await catchUpListPartitions(tx, t, new Set([...have, ...missing.map((p) => p.name)]));
          const next: StructureArtifact = {
            ...artifact, partitions: [...artifact.partitions, ...[...missing, ...extra].map((p) => ({ name: p.name, bound: p.bound }))],
            autoPartitionTrigger: auto, updatedAt: new Date().toISOString(),
          };
          await ctx.journal.setArtifact(Artifacts.structure(t), next, tx);
        }, { stepId: ctx.stepId, signal: ctx.signal, onRetry });
        if (moved) ctx.log(`${moved} row(s) moved from the DEFAULT partition into the new partitions`);
        return { status: 'done', summary: `${missing.length} missing partition(s) created on ${t.schema}.${t.targetName}${moved ? `, ${moved} row(s) moved out of DEFAULT` : ''}. ${LOCK_NOTE}` };
      }

      const ddl = buildStructureDdl({
        def, target: t.targetName, strategy: t.strategy, key: t.key, partitions, serverMajor: ctx.serverMajor, currentUser: await currentUser(ctx),
      });
      // say what changes, and why, before anything runs
      ctx.log(`a plain CREATE TABLE … (LIKE ${t.table} INCLUDING ALL) PARTITION BY … would fail here (its primary key lacks ${t.key}) and would leave out RLS policies, triggers, grants and inbound foreign keys: pgshift builds the table from the catalog instead`);
      for (const c of ddl.changes) ctx.log(c);
      for (const w of ddl.warnings) ctx.log(w, 'warn');
      const deferNote = deferredNote(ddl.deferred);
      if (deferNote) {
        ctx.log(deferNote +
          (ctx.plan.copy.mode === 'online' ? '; online, the capture replay keeps writing to the new table while they are built: CONCURRENTLY and the per-partition FK validation do not block it' : ''));
      }
      const ap = autoPartitionsOf(t);
      if (ap) {
        ctx.log(`automatic partitions: an AFTER INSERT trigger on ${ap.table} creates the partition for each new ${ap.column} (PostgreSQL never creates partitions on demand, and a trigger on ${t.table} could not: rows are routed before any row trigger runs)`);
      }
      let auto: StructureArtifact['autoPartitionTrigger'];
      const total = ddl.statements.length;
      await ctx.db.tx(async (tx) => {
        let done = 0;
        for (const s of ddl.statements) {
          await tx.query(s);
          done++;
          if (done % 10 === 0 || done === total) ctx.progress({ done, total, unit: 'statements' });
        }
        auto = await installAutoPartition(tx, t, ctx.db.locks.timeoutMs);
        const extra = await catchUpListPartitions(tx, t, new Set(partitions.map((p) => p.name)));
        if (extra.length) ctx.log(`${extra.length} value(s) appeared in ${ap?.table ?? 'the values table'} while the table was built: their partitions were added`);
        const a: StructureArtifact = {
          source: src, schema: t.schema, target: t.targetName, strategy: t.strategy, key: t.key,
          partitions: [...partitions, ...extra].map((p) => ({ name: p.name, bound: p.bound })),
          indexes: ddl.indexes, constraints: ddl.constraints, pkChange: ddl.pkChange, uniqueChanges: ddl.uniqueChanges,
          triggers: ddl.triggers, policies: ddl.policies, autoPartitionTrigger: auto, deferred: ddl.deferred, createdAt: new Date().toISOString(),
        };
        await ctx.journal.setArtifact(Artifacts.structure(t), a, tx);
      }, { stepId: ctx.stepId, signal: ctx.signal, onRetry });
      const n = partitions.length;
      return {
        status: 'done',
        summary: `${t.schema}.${t.targetName} created: ${n} partition(s)${t.defaultPartition ? ' incl. DEFAULT' : ''}, ${ddl.indexes.length - ddl.deferred.indexes.length - (ddl.deferred.keys?.length ?? 0)} index(es), ${ddl.constraints.length - ddl.deferred.foreignKeys.length - (ddl.deferred.keys?.length ?? 0)} constraint(s)` +
          `${ddl.pkChange ? `, primary key (${ddl.pkChange.from.join(', ')}) → (${ddl.pkChange.to.join(', ')})` : ''}${auto ? `, auto-partition trigger on ${auto.table}` : ''}.` +
          `${deferNote ? ` ${deferNote}.` : ''} ${LOCK_NOTE}`,
        warnings: ddl.warnings,
        data: { target: `${t.schema}.${t.targetName}`, partitions: n, statements: total },
      };
    },
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Referencing tables without the partition key (plan: addKeyColumns)

function keyColumnStep(t: TablePlan, ref: string): Step {
  const id = keyColumnStepId(t, ref);
  return {
    id,
    phase: 2,
    title: `Key column for ${ref}: ${t.key} of the ${t.schema}.${t.table} row it references, filled and kept filled`,
    async preview(ctx) {
      const k = await planKeyColumn(ctx.db, t, ref);
      if (typeof k === 'string') return [`-- ${k}`];
      return [`-- ${describeKeyColumn(t, k)}`, ...keyColumnDdl(t, k), `-- then, batch after batch (one transaction each, checkpointed): ${fillBatchSql(t, k, true, ctx.plan.copy.batchRows).replace(/\s+/g, ' ')}`];
    },
    async run(ctx: StepContext): Promise<StepResult> {
      if ((await relkindOf(ctx, t.schema, t.table)) === 'p') return { status: 'already-done', summary: `${t.schema}.${t.table} is already the partitioned table (swapped)` };
      const k = await planKeyColumn(ctx.db, t, ref);
      if (typeof k === 'string') return { status: 'failed', failed: k, nothingChanged: false };
      const onRetry = (r: { error: string; attempt: number; attempts: number; waitMs: number }) =>
        ctx.log(`lock not available (${r.error}); retry ${r.attempt}/${r.attempts} in ${r.waitMs} ms`, 'warn');
      const artKey = Artifacts.keyColumn(`${k.schema}.${k.table}`);
      const prior = await ctx.journal.getArtifact(artKey);
      ctx.log(describeKeyColumn(t, k));
      // the trigger first: from then on every new or changed row is filled by the database itself; then the backlog
      await ctx.db.tx(async (tx) => {
        for (const q of keyColumnDdl(t, k)) await tx.query(q);
        const art: KeyColumnArtifact = {
          referencing: `${k.schema}.${k.table}`, column: k.column, added: prior?.added ?? !k.exists, function: `pgshift.${k.functionName}`, trigger: k.triggerName, source: `${t.schema}.${t.table}`,
        };
        await ctx.journal.setArtifact(artKey, art, tx);
      }, { stepId: id, signal: ctx.signal, onRetry });
      const [est] = await ctx.db.read<{ n: string }>(
        `SELECT greatest(coalesce(sum(greatest(c.reltuples, 0)), 0), 0)::bigint AS n FROM pg_class c
          WHERE c.oid = $1::regclass OR c.oid IN (WITH RECURSIVE d(oid) AS (SELECT inhrelid FROM pg_inherits WHERE inhparent = $1::regclass UNION SELECT i.inhrelid FROM pg_inherits i JOIN d ON i.inhparent = d.oid) SELECT oid FROM d)`,
        [qname(k.schema, k.table)],
      );
      const total = Number(est!.n);
      const cp = await ctx.journal.getCheckpoint<{ after: unknown[] | null; done?: boolean; updated: number }>(id);
      if (cp?.position.done) return { status: 'already-done', summary: `${k.schema}.${k.table}.${k.column} filled (${cp.rowsDone.toLocaleString('en-US')} rows read)` };
      let after = cp?.position.after ?? null;
      let read = cp?.rowsDone ?? 0;
      let updated = cp?.position.updated ?? 0;
      if (cp) ctx.log(`resuming the fill of ${k.schema}.${k.table}.${k.column} after ${read.toLocaleString('en-US')} rows`);
      for (;;) {
        if (ctx.signal.aborted) return { status: 'skipped', summary: `stopped after ${read.toLocaleString('en-US')} rows; a new run continues from the checkpoint` };
        let n = 0;
        await ctx.db.tx(async (tx) => {
          const r = await tx.query<{ n: number; updated: number; last: string | null }>(fillBatchSql(t, k, after !== null, ctx.plan.copy.batchRows), after ?? []);
          const row = r.rows[0]!;
          n = row.n;
          updated += row.updated;
          read += n;
          const last = row.last ? (JSON.parse(row.last) as Record<string, unknown>) : null;
          after = last ? k.rowKey.map((c) => last[c]) : after;
          await ctx.journal.setCheckpoint(tx, id, { after, done: n < ctx.plan.copy.batchRows, updated }, read);
        }, { stepId: id, signal: ctx.signal, onRetry });
        ctx.progress({ done: read, total: Math.max(total, read), unit: 'rows', detail: `${k.schema}.${k.table}.${k.column}` });
        if (n < ctx.plan.copy.batchRows) break;
        if (ctx.plan.copy.pauseMs) await new Promise((r) => setTimeout(r, ctx.plan.copy.pauseMs));
      }
      const set = k.fkColumns.map((c) => `${ident(c)} IS NOT NULL`).join(' AND ');
      const [left] = await ctx.db.read<{ n: string }>(`SELECT count(*) AS n FROM ${qname(k.schema, k.table)} WHERE ${set} AND ${ident(k.column)} IS NULL`);
      if (Number(left!.n) > 0) ctx.log(`${left!.n} row(s) of ${k.schema}.${k.table} reference no ${t.schema}.${t.table} row (their FK is NOT VALID?): ${k.column} stays NULL there, and the new FK (MATCH FULL) would refuse them`, 'warn');
      return {
        status: 'done',
        summary: `${k.schema}.${k.table}.${k.column} ${k.exists ? 'filled' : 'added and filled'}: ${read.toLocaleString('en-US')} rows read, ${updated.toLocaleString('en-US')} set; trigger ${k.triggerName} keeps it filled`,
        data: { read, updated },
      };
    },
  };
}

async function relkindOf(ctx: PlanContext, schema: string, name: string): Promise<string | null> {
  const [r] = await ctx.db.read<{ k: string }>(`SELECT c.relkind::text AS k FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relname = $2`, [schema, name]);
  return r?.k ?? null;
}

// ---------------------------------------------------------------------------------------------------------------

/** The seeds' pg_inherits query, for every target of the plan. */
export async function partitionReport(ctx: PlanContext): Promise<ReportTable> {
  const rows: (string | number | null)[][] = [];
  for (const t of ctx.tables) {
    const r = await ctx.db.read<{ parent: string; partition: string; bound: string; size: string; bytes: string; est: string }>(
      `SELECT parent.relname AS parent, child.relname AS partition, pg_get_expr(child.relpartbound, child.oid) AS bound,
              pg_size_pretty(pg_total_relation_size(child.oid)) AS size, pg_total_relation_size(child.oid) AS bytes,
              greatest(child.reltuples, 0)::bigint AS est
         FROM pg_inherits
         JOIN pg_class parent ON pg_inherits.inhparent = parent.oid
         JOIN pg_class child ON pg_inherits.inhrelid = child.oid
         JOIN pg_namespace n ON n.oid = parent.relnamespace
        WHERE n.nspname = $1 AND parent.relname = ANY ($2)
        ORDER BY parent.relname, child.relname`,
      [t.schema, [t.targetName, t.table]],
    );
    for (const x of r) rows.push([`${t.schema}.${x.parent}`, x.partition, x.bound, x.size, Number(x.est)]);
  }
  return { title: 'Partitions (rows are estimates)', columns: ['parent', 'partition', 'bounds', 'size', 'rows (est.)'], rows };
}

const reportStep: Step = {
  id: 'report:partitions',
  phase: 2,
  title: 'Partitions of the new tables',
  rerunnable: true,
  preview() {
    return [`SELECT parent.relname, child.relname, pg_get_expr(child.relpartbound, child.oid), pg_size_pretty(pg_relation_size(child.oid)) FROM pg_inherits JOIN pg_class parent ON pg_inherits.inhparent = parent.oid JOIN pg_class child ON pg_inherits.inhrelid = child.oid ORDER BY child.relname`];
  },
  async run(ctx) {
    const table = await partitionReport(ctx);
    return { status: 'done', summary: `${table.rows.length} partition(s)`, tables: [table], data: { partitions: table.rows.length } };
  },
};

export const structure: Phase = {
  id: 2,
  name: 'Structure',
  plan(ctx) {
    return [
      ...sqlFileSteps(ctx.plan.sql.structure, 2), ...ctx.tables.map(structureStep),
      ...ctx.tables.flatMap((t) => t.addKeyColumns.map((ref) => keyColumnStep(t, ref))), reportStep,
    ];
  },
};
