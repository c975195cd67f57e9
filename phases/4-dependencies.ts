import type { Phase, PlanContext, Step, StepContext } from '../source/engine/types.js';
import type { TablePlan } from '../source/plan/schema.js';
import { qname } from '../source/db/quote.js';
import { tableExists } from '../source/db/catalog.js';
import { behaviourChanges, discoverDependencies, fkMismatches, fkNullKeys, measureMaterializedViews, grantDiff, addFkSql } from '../source/swap/deps.js';
import { isSwapped } from '../source/swap/swap.js';
import { sqlFileSteps } from './2-structure.js';
import { Artifacts } from '../source/engine/artifacts.js';

const name = (t: TablePlan) => `${t.schema}.${t.table}`;
/** how long phase 4 lets a materialized view's query run when timing it */
const MATVIEW_LIMIT_MS = 60_000;

export const dependenciesStepId = (t: Pick<TablePlan, 'schema' | 'table'>) => `dependencies:${t.schema}.${t.table}`;
export const grantsStepId = (t: Pick<TablePlan, 'schema' | 'table'>) => `grants:${t.schema}.${t.table}`;

function dependenciesStep(t: TablePlan): Step {
  return {
    id: dependenciesStepId(t),
    phase: 4,
    undo: { tables: [name(t)], artifacts: [Artifacts.dependencies(t)] },
    title: `Dependencies of ${name(t)}: views, foreign keys, sequences (re-pointed at the swap)`,
    async preview(ctx: PlanContext) {
      const out = [
        `-- reads pg_depend/pg_rewrite (views, recursively), pg_constraint (inbound FKs), pg_proc (functions naming ${t.table}), owned sequences`,
        `-- records each view's definition now, while it still names ${name(t)}; nothing changes until the swap (phase 5)`,
      ];
      // the behaviour changes the swap will bring, said in the dry run too
      try {
        if (!(await isSwapped(ctx.db, t))) {
          const found = await discoverDependencies(ctx.db, t);
          for (const fk of found.record.fks) out.push(`-- ${fk.schema}.${fk.table}.${fk.name} → ${addFkSql(fk, t.schema, t.table).replace(/^ALTER TABLE \S+ ADD CONSTRAINT \S+ /, '')}`);
          out.push(...behaviourChanges(found.record).map((c) => `-- ${c}`));
        }
      } catch (e) {
        out.push(`-- cannot read the dependencies yet: ${(e as Error).message}`);
      }
      return out;
    },
    async run(ctx: StepContext) {
      if (await isSwapped(ctx.db, t)) {
        const rec = await ctx.journal.getArtifact(Artifacts.dependencies(t));
        if (rec) return { status: 'already-done', summary: `${name(t)} is already swapped; keeping the dependencies recorded ${rec.at}` };
        return { status: 'failed', failed: `${name(t)} is already swapped but no dependencies were recorded: nothing to re-point from` };
      }
      if (!(await tableExists(ctx.db, t.schema, t.targetName))) {
        return { status: 'failed', failed: `${t.schema}.${t.targetName} does not exist yet: run phase 2 (structure) first` };
      }
      const found = await discoverDependencies(ctx.db, t);
      const problems = found.problems;
      let record = found.record;
      const warnings: string[] = [];
      for (const fk of record.fks) {
        for (const c of fk.changes ?? []) warnings.push(`behaviour change: ${c}`);
        const nulls = await fkNullKeys(ctx.db, fk);
        if (nulls > 0) {
          problems.push(
            `${nulls.toLocaleString('en-US')} row(s) of ${fk.schema}.${fk.table} reference ${name(t)} but have no ${fk.newColumns.at(-1)}: the new foreign key (MATCH FULL, so it refuses what the old one refused) would never validate. ` +
              `Fill the column first (or let pgshift do it: "addKeyColumns": ["${fk.schema}.${fk.table}"] in the plan)`,
          );
        }
        const bad = await fkMismatches(ctx.db, t, fk);
        if (bad > 0) {
          problems.push(
            `${bad.toLocaleString('en-US')} row(s) of ${fk.schema}.${fk.table} have ${fk.newColumns.at(-1)} different from the ${t.key} of the ${name(t)} row they reference: ` +
              `the new foreign key (${fk.newColumns.join(', ')}) → (${fk.newRefColumns.join(', ')}) would never validate. Fix them first, e.g. ` +
              `UPDATE ${qname(fk.schema, fk.table)} r SET ${fk.newColumns.at(-1)} = s.${t.key} FROM ${qname(t.schema, t.table)} s WHERE s.${fk.refColumns[0]} = r.${fk.columns[0]}`,
          );
        }
      }
      for (const f of record.functions) {
        warnings.push(`function ${f} names ${t.table} in its body: PostgreSQL does not track that; it resolves the name at each call, so after the swap it reads the new table — check it`);
      }
      for (const s of record.sequences) {
        if (s.scanMax) warnings.push(`${name(t)}.${s.column} holds values beyond ${s.seqSchema}.${s.seqName}: the swap will set the sequence past max(${s.column}) under the lock (one more scan)`);
      }
      if (problems.length) {
        return { status: 'failed', failed: problems.join('\n'), warnings };
      }
      if (record.views.some((v) => v.kind === 'm')) {
        record = { ...record, views: await measureMaterializedViews(ctx.db, record.views, { limitMs: MATVIEW_LIMIT_MS, stepId: ctx.stepId, signal: ctx.signal }) };
        for (const v of record.views.filter((x) => x.kind === 'm')) {
          if (v.populated === false) {
            ctx.log(`materialized view ${v.schema}.${v.name} was never populated (WITH NO DATA): the swap re-creates it WITH NO DATA, so no query runs under the lock and it stays unpopulated`);
            continue;
          }
          const what = `materialized view ${v.schema}.${v.name} is dropped and re-created WITH DATA inside the swap transaction, under its ACCESS EXCLUSIVE lock ` +
            `(it holds rows computed from the table and is bound to its OID; its ${v.indexes.length} index(es), ${v.grants.length} grant(s)${v.comment !== null ? ' and comment' : ''} are re-applied)`;
          if (v.measureError !== undefined) {
            warnings.push(`${what}: its query could not be timed now (${v.measureError}); the swap runs it under the lock all the same`);
            ctx.log(`${what}: could not time its query (${v.measureError})`, 'warn');
          } else if (v.refreshMs === null) {
            warnings.push(`${what}: its query ran longer than ${MATVIEW_LIMIT_MS / 1000} s when measured now, so every query on ${name(t)} would wait at least that long during the swap. ` +
              `Consider dropping it before the swap and creating it again afterwards`);
            ctx.log(`${what}: its query takes more than ${MATVIEW_LIMIT_MS / 1000} s now`, 'warn');
          } else {
            ctx.log(`${what}: its query takes ${v.refreshMs} ms now (${v.refreshRows ?? '?'} rows), measured with EXPLAIN ANALYZE; the swap holds the lock at least that much longer`);
            if ((v.refreshMs ?? 0) > ctx.plan.locks.timeoutMs) {
              warnings.push(`materialized view ${v.schema}.${v.name} adds about ${v.refreshMs} ms to the swap's exclusive lock (longer than lock_timeout ${ctx.plan.locks.timeoutMs} ms): writers and readers of ${name(t)} queue that long`);
            }
          }
        }
      }
      await ctx.journal.setArtifact(Artifacts.dependencies(t), record);
      ctx.log(`views and foreign keys bind to the table's OID, not its name: after RENAME they would follow the old table; the swap re-creates ${record.views.length} view(s) and ${record.fks.length} foreign key(s) against the new one`);
      if (record.fks.length) {
        ctx.log(
          `foreign keys referencing a partitioned table need PostgreSQL 12+ (this server: ${ctx.serverMajor}); they must reference a unique key that includes the partition key, ` +
            `so each gains the column holding ${t.key}. They are added NOT VALID inside the swap transaction, not now: a NOT VALID key is still enforced for every new row, ` +
            `and before the swap the new table does not have the rows being referenced yet. Validation (phase 5) runs after the swap.`,
        );
        if (ctx.serverMajor < 12) return { status: 'failed', failed: `PostgreSQL ${ctx.serverMajor} cannot have foreign keys referencing a partitioned table (needs 12+)` };
      }
      for (const s of record.sequences) {
        ctx.log(
          s.kind === 'serial'
            ? `sequence ${s.seqSchema}.${s.seqName} (${s.column})${s.ownedByOld ? ` is OWNED BY the old table: dropping the old table would drop it; the swap moves ownership to the new ${s.column}` : ''} and sets it past the highest value`
            : `identity ${s.column}: the new table's identity sequence starts at 1; the swap sets it past ${s.seqSchema}.${s.seqName} inside the swap transaction`,
        );
      }
      return {
        status: 'done',
        summary: `${record.views.length} view(s), ${record.fks.length} inbound foreign key(s), ${record.sequences.length} sequence(s) recorded for the swap`,
        warnings,
        tables: [
          {
            title: `Views reading ${name(t)} (re-created at the swap, in this order)`,
            columns: ['view', 'kind', 'depth', 'owner', 'grants', 'under the swap lock'],
            rows: record.views.map((v) => [
              `${v.schema}.${v.name}`, v.kind === 'm' ? 'materialized' : 'view', v.depth, v.owner, (v.acl ?? []).length,
              v.kind === 'v' ? 'CREATE OR REPLACE VIEW' : v.refreshMs === null ? `re-created WITH DATA: > ${MATVIEW_LIMIT_MS / 1000} s` : v.refreshMs === undefined ? 're-created WITH DATA: not timed' : `re-created WITH DATA: ~${v.refreshMs} ms`,
            ]),
          },
          {
            title: `Foreign keys referencing ${name(t)} (dropped and re-added NOT VALID at the swap)`,
            columns: ['constraint', 'now', 'after the swap'],
            rows: record.fks.map((f) => [`${f.schema}.${f.table}.${f.name}`, f.oldDefinition, addFkSql(f, t.schema, t.table).replace(/^ALTER TABLE \S+ ADD CONSTRAINT \S+ /, '')]),
          },
          {
            title: 'Sequences',
            columns: ['column', 'sequence', 'kind', 'at the swap'],
            rows: record.sequences.map((s) => [s.column, `${s.seqSchema}.${s.seqName}`, s.kind, s.kind === 'serial' ? (s.ownedByOld ? 'OWNED BY new column, setval' : 'setval') : 'setval of the new identity']),
          },
        ],
        data: { views: record.views.map((v) => `${v.schema}.${v.name}`), fks: record.fks.map((f) => f.name), functions: record.functions },
      };
    },
  };
}

function grantsStep(t: TablePlan): Step {
  const target = `${t.schema}.${t.targetName}`;
  return {
    id: grantsStepId(t),
    phase: 4,
    undo: { tables: [name(t)], artifacts: [] },
    title: `Grants: ${target} gets exactly the privileges ${name(t)} has`,
    async preview(ctx: PlanContext) {
      if (!(await tableExists(ctx.db, t.schema, t.targetName))) return [`-- GRANT … ON ${qname(t.schema, t.targetName)} for each privilege (table and column) on ${qname(t.schema, t.table)} it lacks; REVOKE what it has beyond them`];
      const g = await grantDiff(ctx.db, t, t.targetName);
      return g.grant.length || g.revoke.length ? [...g.grant, ...g.revoke] : [`-- ${target} already has the same privileges as ${name(t)}`];
    },
    async run(ctx) {
      if (await isSwapped(ctx.db, t)) return { status: 'already-done', summary: 'already swapped' };
      if (!(await tableExists(ctx.db, t.schema, t.targetName))) return { status: 'failed', failed: `${target} does not exist yet: run phase 2 first` };
      const g = await grantDiff(ctx.db, t, t.targetName);
      if (!g.grant.length && !g.revoke.length) return { status: 'already-done', summary: `${target} has the same privileges as ${name(t)}` };
      if (g.grant.length) {
        ctx.log(
          `${g.grant.length} privilege(s) granted on ${name(t)} after phase 2 built ${target} (which copied the grants of that moment; LIKE … INCLUDING ALL would copy none): ` +
            `granting them on the new table too, so the application keeps its access after the swap`,
          'warn',
        );
      }
      if (g.revoke.length) {
        ctx.log(`${g.revoke.length} privilege(s) revoked on ${name(t)} after phase 2 built ${target}: revoking them on the new table too, so the swap gives nobody access the old table no longer grants`, 'warn');
      }
      const statements = [...g.grant, ...g.revoke];
      await ctx.db.ddl(statements, {
        stepId: ctx.stepId, signal: ctx.signal,
        onRetry: (i) => ctx.log(`lock not granted (${i.error}); retry ${i.attempt}/${i.attempts} in ${i.waitMs} ms`, 'warn'),
      });
      const left = await grantDiff(ctx.db, t, t.targetName);
      if (left.grant.length || left.revoke.length) return { status: 'failed', failed: `privileges still differ after GRANT/REVOKE: ${[...left.grant, ...left.revoke].join('; ')}` };
      return {
        status: 'done',
        summary: `granted ${g.grant.length} missing privilege(s), revoked ${g.revoke.length}: ${target} now has exactly the privileges of ${name(t)}`,
        data: { grants: g.grant, revokes: g.revoke },
      };
    },
  };
}

export const dependencies: Phase = {
  id: 4,
  name: 'Dependencies',
  plan(ctx) {
    // the plan's SQL files (views written against the public names): phase 2's steps, checksums recorded, changed files refused
    const steps: Step[] = sqlFileSteps(ctx.plan.sql.dependencies, 4);
    for (const t of ctx.tables) steps.push(dependenciesStep(t), grantsStep(t));
    return steps;
  },
};
