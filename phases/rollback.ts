import fs from 'node:fs';
import type { Phase, PlanContext, Step, StepContext } from '../source/engine/types.js';
import { autoPartitionsOf, type TablePlan } from '../source/plan/schema.js';
import { ident, parseQualified, qname } from '../source/db/quote.js';
import { tableExists, triggerExists } from '../source/db/catalog.js';
import { CAPTURE_TRIGGER, TRUNCATE_TRIGGER, captureInstalled, captureNames, findCapture, removeCapture, removeStatements } from '../source/copy/online.js';
import { autoPlan } from '../source/structure/build.js';
import { AUTO_FUNCTION } from '../source/structure/autopartition.js';
import { keyColumnStepId, type KeyColumnArtifact } from '../source/structure/keycolumn.js';
import { copyStepId } from './3-data.js';
import { fmtDuration } from '../source/format.js';
import { takeSnapshot, diffSnapshots, createdObjects, type CatalogSnapshot } from '../source/snapshot.js';
import { restoreTableToSide, sideRestoreCommands, sha256File } from '../source/restore.js';
import { isSwapped, validateForeignKey, renameSql, swapBack, cutoverStatements, insertableColumns, relkind, type SwapArtifact, applyReverse, reversePending, reverseCaptured, lockedTx, cutoverLockTimeout, lockSql } from '../source/swap/swap.js';
import { ApplyMeter, applyBudget, applyUnderLock, converge, describeRates, startBackground, stopBackground, type Replayer } from '../source/copy/catchup.js';
import { triggerList } from '../source/copy/app-triggers.js';
import { dropLocks, offerBlocker, protections, type DropLocks } from './5-cleanup.js';
import { SIDE_SCHEMA } from './1-preparation.js';
import type { BackupArtifact } from '../source/backup.js';
import { Artifacts, type ArtifactKey } from '../source/engine/artifacts.js';

/**
 * Rollback, from any point, in reverse order of what happened:
 *  1. swapped tables are swapped back in one transaction each (rows written since the swap carried back, names,
 *     views, foreign keys and sequence ownership restored);
 *  2. what the migration created and the snapshot does not know is removed: views, triggers, policies, indexes and
 *     functions, and tables that hold no rows. A table created by the plan's SQL files that holds rows is LEFT IN
 *     PLACE and reported: the plan has no down-migration, and dropping data is not a rollback's call to make;
 *  3. the new partitioned tables (a copy of the data) and the capture objects are dropped;
 *  4. foreign keys re-added NOT VALID are validated;
 *  0. when an old table was already dropped, its backup comes back first — only that table, into a side schema,
 *     checked, moved in as <table>_old — and the swap back refills it from the current table (no row lost);
 *  6. the catalog is compared with the snapshot taken before the migration; then the journal forgets the undone steps.
 */

const name = (t: TablePlan) => `${t.schema}.${t.table}`;

function swapBackStep(t: TablePlan): Step {
  const build = async (ctx: PlanContext) => {
    const a = await ctx.journal.getArtifact(Artifacts.swap(t));
    if (!a) return null;
    // restored from the backup: it holds the rows of the backup's time, so it is refilled whole from the current table
    const restored = await ctx.journal.getArtifact(Artifacts.restored(t));
    const eff = restored ? { ...a, reverseKey: null } : a;
    const cols = await insertableColumns(ctx.db, t.schema, t.oldName);
    const lt = await cutoverLockTimeout(ctx.db, ctx.plan.locks.timeoutMs);
    const plan = swapBack(t, eff, cols);
    return { a: eff, cols, restored: !!restored, plan, lt, statements: cutoverStatements(plan, lt.ms) };
  };
  const replayer = (ctx: StepContext, a: SwapArtifact, cols: { name: string; identityAlways: boolean }[], lockTimeoutMs: number): Replayer => ({
    label: `${name(t)} → ${t.schema}.${t.oldName}`,
    pending: () => reversePending(ctx.db, t, a),
    captured: () => reverseCaptured(ctx.db, t, a),
    async apply(limit, signal) {
      const t0 = performance.now();
      // READ COMMITTED: a key written again meanwhile got a new version, its log row stays (see applyReverse)
      const r = await ctx.db.tx((tx) => applyReverse(tx, t, a, cols, limit), { stepId: ctx.stepId, signal, lockTimeoutMs });
      return { changes: r.changes, ms: performance.now() - t0 };
    },
  });
  return {
    id: `rollback:swap:${name(t)}`,
    phase: 'rollback',
    title: `Swap ${name(t)} back to the original table`,
    async preview(ctx) {
      return (await build(ctx))?.statements ?? ['-- not swapped'];
    },
    async destructive(ctx) {
      if (!(await isSwapped(ctx.db, t))) return null;
      const b = await build(ctx);
      const prot = await protections(ctx, t);
      if (!b) return { kind: 'rollback', object: name(t), typed: false, statements: [], impact: [], protections: prot.lines, refusal: `${name(t)} looks swapped but the journal has no record of the swap: restore the backup instead` };
      const pending = b.a.reverseKey ? await reversePending(ctx.db, t, b.a) : null;
      // the reverse log keeps being carried to the old table while the operator reads this
      const lt = b.lt;
      if (b.a.reverseKey) startBackground(ctx.db, `reverse:${name(t)}`, replayer(ctx, b.a, b.cols, lt.ms), { batch: ctx.plan.copy.batchRows, reporter: { log: ctx.log } });
      return {
        kind: 'rollback', object: name(t), typed: false, statements: b.statements, protections: prot.lines,
        impact: [
          b.restored
            ? `${t.schema}.${t.oldName} was restored from the backup: it is refilled whole from ${name(t)} under the lock (every row written since the backup is kept)`
            : pending === null
              ? `no primary key: the old table is re-filled from the new one under the lock`
              : `${pending} key(s) written since the swap (${b.a.at}) are carried back to ${t.schema}.${t.oldName}: in the background now, and only the remainder under the lock once it fits swap.maxLockMs ${ctx.plan.swap.maxLockMs} ms`,
          `${name(t)} is the original table again; ${t.schema}.${t.targetName} is the partitioned copy again`,
          ...((b.a.oldTriggers ?? []).length ? [`application trigger(s) ${triggerList(b.a.oldTriggers ?? [])} of the original table (disabled since the swap, so the carry-back does not fire them) are restored as they were`] : []),
          ...b.a.views.map((v) => `view ${v.schema}.${v.name} re-created against the original table`),
          ...b.a.fks.map((f) => `foreign key ${f.schema}.${f.table}.${f.name} back to (${f.columns.join(', ')}), NOT VALID, validated next`),
          `locks ACCESS EXCLUSIVE, in this order: ${b.plan.locks.join(', ')} — every query on them waits while the lock is held; ${b.plan.locks[0]} first, which no application writes during the retention: waiting for it holds nothing the application needs`,
          lt.note,
        ],
      };
    },
    async run(ctx) {
      if (!(await isSwapped(ctx.db, t))) return { status: 'already-done', summary: `${name(t)} is not swapped` };
      const b = (await build(ctx))!;
      const maxLockMs = ctx.plan.swap.maxLockMs;
      const lt = b.lt;
      ctx.log(lt.note);
      let catchUpAgain = async () => {};
      if (b.a.reverseKey) {
        if (await stopBackground(ctx.db, `reverse:${name(t)}`)) ctx.log('background carry-back stopped: the swap back catches up itself from here');
        const rp = replayer(ctx, b.a, b.cols, lt.ms);
        const meter = new ApplyMeter();
        catchUpAgain = async () => {
          const rep = await converge(rp, {
            budgetMs: applyBudget(maxLockMs), batch: ctx.plan.copy.batchRows, timeoutMs: ctx.plan.swap.catchUpTimeoutSec * 1000,
            signal: ctx.signal, reporter: ctx, meter, what: 'the rollback',
          });
          ctx.log(`carry-back caught up: ${describeRates(rep)}; the rest is predicted to apply in ${Math.round(rep.predictedLockMs)} ms (budget ${applyBudget(maxLockMs)} of swap.maxLockMs ${maxLockMs} ms): requesting the lock`);
        };
        await catchUpAgain();
        if (ctx.signal.aborted) return { status: 'skipped', summary: 'stopped while carrying back; nothing was locked or renamed' };
      }
      let underLock = 0;
      const r = await lockedTx(ctx.db, async (tx, lockedAt) => {
        underLock = 0;
        if (b.plan.catchUp) {
          const r = await applyUnderLock(lockedAt, maxLockMs, async (bounded) => (await applyReverse(bounded, t, b.a, b.cols, null)).changes, tx);
          underLock = r.changes;
          ctx.log(`${underLock} key(s) carried back under the lock in ${Math.round(r.ms)} ms; reverse log empty`);
        }
        for (const s of b.plan.body) await tx.query(s);
      }, {
        stepId: ctx.stepId, lockTimeoutMs: lt.ms, attempts: ctx.plan.locks.attempts, signal: ctx.signal, log: (m, l) => ctx.log(m, l), locks: b.plan.locks,
        blockerThresholdMs: Math.max(1000, 2 * lt.ms), offer: (x) => offerBlocker(ctx, x), onBudgetMiss: async () => catchUpAgain(),
      });
      const held = r.lockHeldMs;
      ctx.log(`exclusive lock held ${held} ms (LOCK to COMMIT); ${underLock} change(s) applied under the lock`);
      await ctx.journal.deleteArtifacts([Artifacts.swap(t), Artifacts.restored(t)]);
      await ctx.journal.setArtifact(Artifacts.swappedBack(t), { at: new Date().toISOString(), lockHeldMs: held, fks: b.a.fks, changesUnderLock: underLock });
      return {
        status: 'done', summary: `swapped back in ${r.attempts} attempt(s); exclusive lock held ${held} ms; ${underLock} change(s) applied under the lock`,
        data: { lockHeldMs: held, changesUnderLock: underLock, attempts: r.attempts, budgetMisses: r.budgetMisses },
      };
    },
  };
}

/** Tables of the target family (the new partitioned tables and their partitions): dropped by their own step. */
function familyOf(snap: CatalogSnapshot, tables: readonly TablePlan[]): Set<string> {
  const fam = new Set(tables.map((t) => `${t.schema}.${t.targetName}`));
  for (let grew = true; grew; ) {
    grew = false;
    for (const [k, v] of Object.entries(snap.objects)) {
      if (!k.startsWith('table ')) continue;
      const n = k.slice(6);
      if (!fam.has(n) && typeof v.partitionOf === 'string' && fam.has(v.partitionOf)) { fam.add(n); grew = true; }
    }
  }
  return fam;
}

const ownerTable = (n: string) => n.slice(0, n.lastIndexOf('.'));

interface CreatedPlan { statements: string[]; leftInPlace: string[]; }

/** Every key column pgshift added or filled for the plan's tables (addKeyColumns). */
async function keyColumnArtifacts(ctx: PlanContext): Promise<KeyColumnArtifact[]> {
  const out: KeyColumnArtifact[] = [];
  for (const t of ctx.tables) {
    for (const ref of t.addKeyColumns) {
      const r = parseQualified(ref);
      const a = await ctx.journal.getArtifact(Artifacts.keyColumn(`${r.schema}.${r.name}`));
      if (a) out.push(a);
    }
  }
  return out;
}

/** `schema.table.column` is a column pgshift added (on the table, or inherited by one of its partitions). */
async function addedKeyColumn(ctx: PlanContext, now: CatalogSnapshot, col: string): Promise<boolean> {
  for (const k of await keyColumnArtifacts(ctx)) {
    if (!k.added) continue;
    const tbl = ownerTable(col);
    if (col.slice(tbl.length + 1) !== k.column) continue;
    for (let cur: string | null = tbl; cur; cur = (now.objects[`table ${cur}`]?.partitionOf as string | null) ?? null) if (cur === k.referencing) return true;
  }
  return false;
}

/**
 * Triggers and functions that the steps dropping the new tables remove themselves (with their own confirmation):
 * the auto-partition trigger and function of phase 2, the change-capture triggers of an online copy.
 */
async function handledByTargetSteps(ctx: PlanContext): Promise<Set<string>> {
  const out = new Set<string>();
  for (const t of ctx.tables) {
    for (const trg of [CAPTURE_TRIGGER, TRUNCATE_TRIGGER]) out.add(`trigger ${t.schema}.${t.table}.${trg}`);
    const a = await autoTrigger(ctx, t);
    if (a) {
      out.add(`trigger ${a.table.schema}.${a.table.name}.${a.trigger}`);
      out.add(`function ${a.fn.schema}.${a.fn.name}()`);
    }
  }
  return out;
}

/**
 * What shows a migration was started here (used when the snapshot is gone: after a completed rollback there is nothing
 * to do; otherwise refusing is the only safe answer): the new tables, a swap, or the journal's records of phase 2.
 */
async function migrationTraces(ctx: PlanContext): Promise<string[]> {
  const out: string[] = [];
  for (const t of ctx.tables) {
    if (await tableExists(ctx.db, t.schema, t.targetName)) out.push(`table ${t.schema}.${t.targetName}`);
    if ((await relkind(ctx.db, t.schema, t.oldName)) !== null) out.push(`table ${t.schema}.${t.oldName}`);
    if (await ctx.journal.getArtifact(Artifacts.structure(t))) out.push(`journal artifact ${Artifacts.structure(t).key}`);
  }
  for (const f of [...ctx.plan.sql.structure, ...ctx.plan.sql.dependencies]) {
    if (await ctx.journal.getArtifact(Artifacts.sql(f))) out.push(`journal artifact sql:${f} (applied)`);
  }
  return out;
}

async function planCreated(ctx: PlanContext, exclude: ReadonlySet<string> = new Set()): Promise<CreatedPlan | null> {
  const before = await ctx.journal.getArtifact(Artifacts.snapshot);
  if (!before) return null;
  const now = await takeSnapshot(ctx.db);
  const fam = familyOf(now, ctx.tables);
  // a partition's inherited constraints, indexes and triggers go with their parent's: never dropped one by one
  // (PostgreSQL refuses: "cannot drop inherited constraint")
  const created = createdObjects(before, now).filter((c) => !exclude.has(`${c.kind} ${c.name}`) && !c.info.inherited);
  const newTables = new Set(created.filter((c) => c.kind === 'table').map((c) => c.name));
  const dropTables: string[] = [];
  const leftInPlace: string[] = [];
  const q = (n: string) => qname(n.slice(0, n.indexOf('.')), n.slice(n.indexOf('.') + 1));
  for (const n of newTables) {
    if (fam.has(n)) continue;
    const info = now.objects[`table ${n}`]!;
    if (info.partitionOf) continue; // goes with its parent
    const [s, tb] = [n.slice(0, n.indexOf('.')), n.slice(n.indexOf('.') + 1)];
    const r = await ctx.db.read<{ any: boolean }>(`SELECT EXISTS (SELECT 1 FROM ${qname(s, tb)}) AS any`);
    if (r[0]!.any) leftInPlace.push(`table ${n} holds rows: left in place (the plan has no down-migration; drop it yourself if it must go)`);
    else dropTables.push(n);
  }
  // a table that stays (rows) keeps what it depends on: a policy or FK of a kept table naming a new table keeps that one too
  const views0 = created.filter((c) => c.kind === 'view' || c.kind === 'materialized view').map((c) => c.name);
  for (let changed = true; changed; ) {
    changed = false;
    const allowed = [...dropTables, ...views0, ...fam];
    for (const n of [...dropTables]) {
      const owners = await ctx.db.read<{ owner: string }>(
        `SELECT DISTINCT (coalesce(p.polrelid, k.conrelid, r.ev_class, tg.tgrelid))::regclass::text AS owner
           FROM pg_depend d
           LEFT JOIN pg_policy p ON d.classid = 'pg_policy'::regclass AND p.oid = d.objid
           LEFT JOIN pg_constraint k ON d.classid = 'pg_constraint'::regclass AND k.oid = d.objid
           LEFT JOIN pg_rewrite r ON d.classid = 'pg_rewrite'::regclass AND r.oid = d.objid
           LEFT JOIN pg_trigger tg ON d.classid = 'pg_trigger'::regclass AND tg.oid = d.objid
          WHERE d.refclassid = 'pg_class'::regclass AND d.refobjid = $1::regclass AND d.deptype = 'n'
            AND coalesce(p.polrelid, k.conrelid, r.ev_class, tg.tgrelid) IS NOT NULL
            AND coalesce(p.polrelid, k.conrelid, r.ev_class, tg.tgrelid) <> $1::regclass`,
        [q(n)],
      );
      const blocking = owners.map((o) => (o.owner.includes('.') ? o.owner : `public.${o.owner}`)).filter((o) => !allowed.includes(o));
      if (blocking.length) {
        dropTables.splice(dropTables.indexOf(n), 1);
        leftInPlace.push(`table ${n} is empty but ${blocking.join(', ')} (left in place) depends on it: left in place too`);
        changed = true;
      }
    }
  }
  const onNew = (n: string) => newTables.has(ownerTable(n)) || fam.has(ownerTable(n));
  const qsub = (n: string) => { const o = ownerTable(n); return { table: q(o), name: ident(n.slice(o.length + 1)) }; };
  const statements: string[] = [];
  for (const c of created) {
    if (c.kind === 'trigger' && !onNew(c.name)) { const x = qsub(c.name); statements.push(`DROP TRIGGER ${x.name} ON ${x.table}`); }
  }
  for (const c of created) {
    if (c.kind === 'policy' && !onNew(c.name)) { const x = qsub(c.name); statements.push(`DROP POLICY ${x.name} ON ${x.table}`); }
  }
  const views = created.filter((c) => c.kind === 'view').map((c) => q(c.name));
  if (views.length) statements.push(`DROP VIEW ${views.join(', ')}`);
  const mviews = created.filter((c) => c.kind === 'materialized view').map((c) => q(c.name));
  if (mviews.length) statements.push(`DROP MATERIALIZED VIEW ${mviews.join(', ')}`);
  for (const c of created) {
    if ((c.kind === 'constraint' || c.kind === 'foreign key') && !onNew(c.name) && c.info.type !== 'p' && c.info.type !== 'u' && c.info.type !== 'x') {
      const x = qsub(c.name); statements.push(`ALTER TABLE ${x.table} DROP CONSTRAINT ${x.name}`);
    }
  }
  for (const c of created) {
    if (c.kind === 'index' && !newTables.has(String(c.info.table)) && !fam.has(String(c.info.table))) statements.push(`DROP INDEX ${q(c.name)}`);
  }
  for (const c of created) {
    // a view created by the migration is dropped whole: its columns are not "added to an existing table"
    if (c.kind === 'column' && !onNew(c.name) && !views0.includes(ownerTable(c.name)) && !(await addedKeyColumn(ctx, now, c.name))) leftInPlace.push(`column ${c.name} was added to an existing table: left in place (its values are data)`);
  }
  if (dropTables.length) statements.push(`DROP TABLE ${dropTables.map(q).join(', ')}`);
  // key columns pgshift added to referencing tables (addKeyColumns): their trigger's function, and the column itself
  for (const k of await keyColumnArtifacts(ctx)) {
    statements.push(`DROP FUNCTION IF EXISTS ${q(k.function)}()`);
    if (k.added && now.objects[`column ${k.referencing}.${k.column}`]) statements.push(`ALTER TABLE ${q(k.referencing)} DROP COLUMN ${ident(k.column)}`);
  }
  for (const c of created) {
    if (c.kind !== 'function') continue;
    const fname = c.name.slice(0, c.name.indexOf('('));
    const args = c.name.slice(c.name.indexOf('(') + 1, -1);
    const used = await ctx.db.read<{ used: boolean }>(
      `SELECT EXISTS (SELECT 1 FROM pg_trigger tg JOIN pg_proc p ON p.oid = tg.tgfoid JOIN pg_namespace n ON n.oid = p.pronamespace
                       WHERE n.nspname || '.' || p.proname = $1 AND NOT tg.tgisinternal
                         AND NOT (tg.tgrelid::regclass::text = ANY($2::text[]))) AS used`,
      [fname, [...dropTables, ...fam]],
    );
    const usedByDropped = created.some((x) => x.kind === 'trigger' && String(x.info.definition).includes(fname));
    if (used[0]!.used && !usedByDropped) leftInPlace.push(`function ${c.name} is used by a trigger that stays: left in place`);
    else statements.push(`DROP FUNCTION ${q(fname)}(${args})`);
  }
  return { statements, leftInPlace };
}

function createdStep(targetSteps: boolean): Step {
  const plan = async (ctx: PlanContext) => planCreated(ctx, targetSteps ? await handledByTargetSteps(ctx) : new Set());
  return {
  id: 'rollback:created-objects',
  phase: 'rollback',
  title: 'Remove what the migration created (views, triggers, policies, functions, empty tables)',
  async preview(ctx) {
    const p = await plan(ctx);
    return p ? (p.statements.length ? p.statements : ['-- nothing to remove']) : ['-- no pre-migration snapshot in the journal'];
  },
  async destructive(ctx) {
    const p = await plan(ctx);
    if (!p && !(await migrationTraces(ctx)).length) return null;
    if (!p) return { kind: 'rollback', object: 'created-objects', typed: true, statements: [], impact: [], protections: [], refusal: 'no pre-migration catalog snapshot in the journal (phase 1 step snapshot:catalog): nothing tells what the migration created' };
    if (!p.statements.length) return null;
    return {
      kind: 'rollback', object: 'created-objects', typed: true, statements: p.statements,
      impact: ['objects that did not exist in the pre-migration snapshot are dropped (no CASCADE: anything unexpected stops it)', ...p.leftInPlace],
      protections: (await protections(ctx)).lines,
    };
  },
  async run(ctx) {
    const p = await plan(ctx);
    if (!p) {
      const traces = await migrationTraces(ctx);
      if (!traces.length) return { status: 'already-done', summary: 'no migration in progress: nothing to remove' };
      return { status: 'failed', failed: `no pre-migration snapshot, yet the migration left: ${traces.join('; ')}` };
    }
    for (const l of p.leftInPlace) ctx.log(l, 'warn');
    if (!p.statements.length) return { status: 'already-done', summary: 'nothing the migration created is left', warnings: p.leftInPlace };
    await ctx.db.ddl(p.statements, { stepId: ctx.stepId, signal: ctx.signal });
    for (const t of ctx.tables) {
      for (const ref of t.addKeyColumns) {
        const r = parseQualified(ref);
        await ctx.journal.deleteArtifact(Artifacts.keyColumn(`${r.schema}.${r.name}`));
        await ctx.journal.deleteCheckpoints([keyColumnStepId(t, ref)]);
      }
    }
    return { status: 'done', summary: `${p.statements.length} statement(s): created objects removed`, warnings: p.leftInPlace, data: { statements: p.statements, leftInPlace: p.leftInPlace } };
  },
  };
}

/** Phase 2's auto-partition trigger for t (from its artifact, else from the plan's naming rule), if it exists now. */
async function autoTrigger(ctx: PlanContext, t: TablePlan): Promise<{ table: { schema: string; name: string }; trigger: string; fn: { schema: string; name: string } } | null> {
  const art = (await ctx.journal.getArtifact(Artifacts.structure(t)))?.autoPartitionTrigger;
  const ap = autoPlan(t);
  const a = art
    ? { table: parseQualified(art.table), trigger: art.trigger, fn: parseQualified(art.function) }
    : ap ? { table: { schema: ap.table.schema, name: ap.table.name }, trigger: ap.trigger, fn: { schema: ap.fnSchema, name: AUTO_FUNCTION } } : null;
  if (!a) return null;
  const f = await ctx.db.read<{ ok: boolean }>(`SELECT to_regprocedure($1) IS NOT NULL AS ok`, [`${qname(a.fn.schema, a.fn.name)}()`]);
  return (await triggerExists(ctx.db, a.table.schema, a.table.name, a.trigger)) || f[0]!.ok ? a : null;
}

/** What the rollback of a copy runs: the capture's removal, then one transaction as it runs (lock_timeout first, the locks in order, the drops). */
function targetStatements(p: TargetPlan, lockTimeoutMs: number): string[] {
  return [...p.capture, ...(p.ddl.length ? ['BEGIN', `SET LOCAL lock_timeout = ${lockTimeoutMs}`, ...p.ddl, 'COMMIT'] : [])];
}

interface TargetPlan {
  /** removeCapture's statements (run by removeCapture itself, shown in the confirmation) */
  readonly capture: string[];
  /** the auto-partition trigger and function, then the table, in one transaction */
  readonly ddl: string[];
  readonly notes: string[];
  readonly partitions: number;
  readonly tableExists: boolean;
  /** what dropping the copy locks (null when the copy is gone) */
  readonly locks: DropLocks | null;
}

/** Everything the migration built for t besides the copied rows: the new table, capture, auto-partition trigger. */
async function planTarget(ctx: PlanContext, t: TablePlan): Promise<TargetPlan> {
  const capture: string[] = [];
  const notes: string[] = [];
  const names = captureNames(t);
  const logExists = (await ctx.db.read<{ ok: boolean }>(`SELECT to_regclass($1) IS NOT NULL AS ok`, [qname('pgshift', names.log)]))[0]!.ok;
  if (logExists || (await captureInstalled(ctx.db, t))) {
    const cap = await findCapture(ctx.db, t);
    let sourceQ = cap?.source.q ?? null;
    if (!sourceQ) {
      const r = await ctx.db.read<{ q: string }>(
        `SELECT tgrelid::regclass::text AS q FROM pg_trigger WHERE tgname = $1 AND tgfoid = to_regprocedure($2)`, [CAPTURE_TRIGGER, `${qname('pgshift', names.fn)}()`],
      );
      sourceQ = r[0]?.q ?? null;
    }
    capture.push(...removeStatements(t, sourceQ));
    notes.push(`the online copy's change capture on ${name(t)} is removed: its triggers (writes to ${name(t)} stop being logged), function and change log pgshift.${names.log}`);
  }
  const ddl: string[] = [];
  // the DROP's locks first, in the order phase 5's DROP takes them: the targets of the copy's foreign keys (their RI
  // triggers go with it), then the copy; an application's RI check locks the referenced table first too
  const tableExists_ = await tableExists(ctx.db, t.schema, t.targetName);
  const locks = tableExists_ ? await dropLocks(ctx, t.schema, t.targetName) : null;
  if (locks) ddl.push(...locks.order.map(lockSql));
  const a = await autoTrigger(ctx, t);
  if (a) {
    const tq = qname(a.table.schema, a.table.name);
    const fq = qname(a.fn.schema, a.fn.name);
    if (await triggerExists(ctx.db, a.table.schema, a.table.name, a.trigger)) {
      ddl.push(`DROP TRIGGER ${ident(a.trigger)} ON ${tq}`);
      notes.push(`the auto-partition trigger ${a.trigger} on ${a.table.schema}.${a.table.name} is dropped: new ${autoPartitionsOf(t)?.column ?? 'values'} there stop creating partitions of ${t.schema}.${t.targetName}`);
    }
    const others = await ctx.db.read<{ t: string }>(
      `SELECT tgrelid::regclass::text || '.' || tgname AS t FROM pg_trigger
        WHERE tgfoid = to_regprocedure($1) AND NOT (tgrelid = to_regclass($2) AND tgname = $3) ORDER BY 1`,
      [`${fq}()`, tq, a.trigger],
    );
    const fnExists = (await ctx.db.read<{ ok: boolean }>(`SELECT to_regprocedure($1) IS NOT NULL AS ok`, [`${fq}()`]))[0]!.ok;
    if (fnExists && !others.length) {
      ddl.push(`DROP FUNCTION ${fq}()`);
      notes.push(`function ${a.fn.schema}.${a.fn.name}() is dropped: no other trigger uses it`);
    } else if (fnExists) {
      notes.push(`function ${a.fn.schema}.${a.fn.name}() is kept: still used by trigger(s) ${others.map((o) => o.t).join(', ')}`);
    }
  }
  let partitions = 0;
  if (tableExists_) {
    partitions = Number((await ctx.db.read<{ n: string }>(`SELECT count(*) AS n FROM pg_inherits WHERE inhparent = $1::regclass`, [qname(t.schema, t.targetName)]))[0]!.n);
    ddl.push(`DROP TABLE ${qname(t.schema, t.targetName)}`);
  }
  return { capture, ddl, notes, partitions, tableExists: tableExists_, locks };
}

/**
 * The journal entries that describe work on t's new table (phases 2–4): once it is dropped, a new run must do that
 * work again. Composed from the forward steps' own undo footprints: the rollback knows neither their ids nor keys.
 */
async function undoneSteps(ctx: PlanContext, t: TablePlan): Promise<{ ids: string[]; artifacts: ArtifactKey<unknown>[] }> {
  const steps = (await ctx.forwardSteps()).filter((s) => (s.phase === 2 || s.phase === 3 || s.phase === 4) && s.undo?.tables.includes(name(t)));
  return { ids: steps.map((s) => s.id), artifacts: steps.flatMap((s) => s.undo?.artifacts ?? []) };
}

function dropTargetStep(t: TablePlan): Step {
  const obj = `${t.schema}.${t.targetName}`;
  return {
    id: `rollback:structure:${name(t)}`,
    phase: 'rollback',
    title: `Drop the new table ${obj} and its partitions, its auto-partition trigger and the change capture`,
    async preview(ctx) {
      const p = await planTarget(ctx, t);
      const lt = await cutoverLockTimeout(ctx.db, ctx.plan.locks.timeoutMs);
      const all = targetStatements(p, lt.ms);
      return all.length ? all : [`-- ${obj}, its capture and auto-partition trigger are gone already`];
    },
    async destructive(ctx) {
      const p = await planTarget(ctx, t);
      const lt = await cutoverLockTimeout(ctx.db, ctx.plan.locks.timeoutMs);
      const statements = targetStatements(p, lt.ms);
      if (!statements.length) return null;
      if (await isSwapped(ctx.db, t)) return { kind: 'rollback', object: obj, typed: true, statements, impact: [], protections: [], refusal: `${name(t)} is still swapped: swap back first` };
      const cp = await ctx.journal.getCheckpoint<unknown>(copyStepId(t));
      return {
        kind: 'rollback', object: obj, typed: true, statements,
        impact: [
          ...(p.tableExists ? [`${obj} and its ${p.partitions} partition(s) are dropped: a copy; the data is in ${name(t)}, which this does not touch`] : []),
          ...(p.locks ? [`DROP TABLE ${p.locks.impact}`, lt.note] : []),
          ...p.notes,
          ...(cp ? [`the copy checkpoint of ${name(t)} (${cp.rowsDone.toLocaleString('en-US')} rows) is cleared: a new run copies from the first row`] : []),
        ],
        protections: (await protections(ctx, t)).lines,
      };
    },
    async run(ctx) {
      const p = await planTarget(ctx, t);
      if (!p.capture.length && !p.ddl.length && !(await ctx.journal.getCheckpoint(copyStepId(t)))) {
        return { status: 'already-done', summary: `${obj} does not exist; no capture, no auto-partition trigger` };
      }
      if (p.capture.length) {
        await removeCapture(ctx.db, t, ctx.stepId);
        ctx.log(`change capture of ${name(t)} removed`);
      }
      const undone = await undoneSteps(ctx, t);
      const lt = await cutoverLockTimeout(ctx.db, ctx.plan.locks.timeoutMs);
      // the table and the journal's memory of it go together: a copy checkpoint must never outlive the rows it counts
      await ctx.db.tx(async (tx) => {
        for (const s of p.ddl) await tx.query(s);
        // their states and checkpoints (the copy's among them), and the artifacts they wrote
        await ctx.journal.forgetSteps(undone.ids, tx);
        await ctx.journal.deleteArtifacts(undone.artifacts, tx);
      }, {
        stepId: ctx.stepId, signal: ctx.signal, lockTimeoutMs: lt.ms, attempts: Math.max(ctx.plan.locks.attempts, 20),
        onRetry: (i) => ctx.log(`lock not granted (${i.error}); retry ${i.attempt}/${i.attempts} in ${i.waitMs} ms`, 'warn'),
      });
      for (const n of p.notes) ctx.log(n);
      ctx.log(`journal: copy checkpoint cleared, steps ${undone.ids.join(', ')} will run again in a new run`);
      return {
        status: 'done',
        summary: `${p.tableExists ? `dropped ${obj} (${p.partitions} partitions)` : `${obj} was gone`}${p.capture.length ? ', change capture removed' : ''}` +
          `${p.ddl.some((x) => x.startsWith('DROP TRIGGER')) ? ', auto-partition trigger dropped' : ''}${p.ddl.some((x) => x.startsWith('DROP FUNCTION')) ? ' with its function' : ''}`,
        data: { statements: targetStatements(p, lt.ms) },
      };
    },
  };
}

const validateStep: Step = {
  id: 'rollback:validate-fks',
  phase: 'rollback',
  title: 'Validate the original foreign keys re-added NOT VALID by the swap back',
  preview() {
    return ['-- ALTER TABLE … VALIDATE CONSTRAINT … for each foreign key the swap back re-added'];
  },
  async run(ctx) {
    let n = 0;
    for (const t of ctx.tables) {
      const a = await ctx.journal.getArtifact(Artifacts.swappedBack(t));
      for (const f of a?.fks ?? []) if ((await validateForeignKey(ctx, f, name(t))).state === 'validated') n++;
    }
    return { status: n ? 'done' : 'already-done', summary: `${n} foreign key(s) validated` };
  },
};


/** The backup file's own time (its modification time), never the time it was re-verified. */
export function backupFileTime(file: string): string {
  try {
    return fs.statSync(file).mtime.toISOString().replace('T', ' ').slice(0, 19) + ' UTC';
  } catch {
    return 'unknown (file missing)';
  }
}

interface RestorePlan {
  readonly backup: BackupArtifact;
  readonly swap: SwapArtifact;
  readonly entries: { schema: string; table: string; indexes: string[]; identitySequences: string[] };
  readonly columns: { name: string; type: string }[];
  readonly moveIn: string[];
  readonly expectedRows: number | undefined;
}

/**
 * The old table came from the backup, not from a --clean restore of the whole database (which fails wherever
 * partitioned tables have keys or are referenced): only its own archive entries, into a side schema, in one
 * transaction; checked; then renamed and moved in as `<table>_old`, the state right before the drop — from which the
 * swap back (refilled from the current table, so no row written since is lost) takes over.
 */
async function planRestore(ctx: PlanContext, t: TablePlan): Promise<RestorePlan | string> {
  const backup = await ctx.journal.getArtifact(Artifacts.backup);
  if (!backup?.file || !fs.existsSync(backup.file)) return `no backup file to restore ${name(t)} from (${backup?.file ?? 'none recorded'})`;
  if (!backup.verified) return `the backup ${backup.file} was never verified`;
  const swap = await ctx.journal.getArtifact(Artifacts.swap(t));
  if (!swap) return `${t.schema}.${t.oldName} is gone and the journal has no record of the swap (artifact ${Artifacts.swap(t).key}): pgshift cannot tell what to swap back; restore ${name(t)} from ${backup.file} by hand`;
  const snap = await ctx.journal.getArtifact(Artifacts.snapshot);
  if (!snap) return 'no pre-migration catalog snapshot in the journal: nothing tells what the table looked like';
  const full = name(t);
  const indexes = Object.entries(snap.objects).filter(([k, v]) => k.startsWith('index ') && v.table === full).map(([k]) => k.slice(`index ${t.schema}.`.length));
  const identitySequences = Object.entries(snap.objects)
    .filter(([k, v]) => k.startsWith(`sequence ${t.schema}.`) && textOf(v.ownedBy).startsWith(`${full}.`) && textOf(v.ownedBy).endsWith(' (identity)'))
    .map(([k]) => k.slice(`sequence ${t.schema}.`.length));
  const columns = Object.entries(snap.objects)
    .filter(([k]) => k.startsWith(`column ${full}.`))
    .map(([k, v]) => ({ name: k.slice(`column ${full}.`.length), type: String(v.type), pos: Number(v.position) }))
    .sort((x, y) => x.pos - y.pos)
    .map(({ name: n, type }) => ({ name: n, type }));
  const side = SIDE_SCHEMA;
  const moveIn = [
    `ALTER TABLE ${qname(side, t.table)} RENAME TO ${ident(t.oldName)}`,
    ...swap.oldRenames.map((r) => renameSql(side, t.oldName, r)),
    `ALTER TABLE ${qname(side, t.oldName)} SET SCHEMA ${ident(t.schema)}`,
    `DROP SCHEMA ${ident(side)}`,
  ];
  return { backup: { ...backup, file: backup.file }, swap, entries: { schema: t.schema, table: t.table, indexes, identitySequences }, columns, moveIn, expectedRows: backup.snapshotCounts?.[full] };
}

function restoreOldStep(t: TablePlan): Step {
  const preview = (p: RestorePlan) => [
    `DROP SCHEMA IF EXISTS ${ident(SIDE_SCHEMA)} CASCADE  -- pgshift's scratch schema, left over only by an interrupted restore`,
    `CREATE SCHEMA ${ident(SIDE_SCHEMA)}`,
    ...sideRestoreCommands(p.backup.file, SIDE_SCHEMA, name(t)),
    `-- checked: the columns of the pre-migration snapshot, ${p.expectedRows !== undefined ? `${p.expectedRows} rows as counted in the dump's snapshot` : 'the restored row count'}`,
    ...p.moveIn,
  ];
  return {
    id: `rollback:restore:${name(t)}`,
    phase: 'rollback',
    title: `Restore ${t.schema}.${t.oldName} from the backup (it was dropped), then swap back`,
    async preview(ctx) {
      const p = await planRestore(ctx, t);
      return typeof p === 'string' ? [`-- ${p}`] : preview(p);
    },
    async destructive(ctx) {
      if ((await relkind(ctx.db, t.schema, t.oldName)) !== null) return null;
      const p = await planRestore(ctx, t);
      const prot = (await protections(ctx, t)).lines;
      if (typeof p === 'string') return { kind: 'restore', object: name(t), typed: true, statements: [], impact: [], protections: prot, refusal: p };
      return {
        kind: 'restore', object: name(t), typed: true, statements: preview(p), protections: prot,
        impact: [
          `${name(t)} as it was in the backup ${p.backup.file} (file written ${backupFileTime(p.backup.file)}) is restored into schema ${SIDE_SCHEMA} — only this table and what belongs to it; nothing else in the database is dropped or re-created`,
          `checked against the pre-migration catalog, then moved in as ${t.schema}.${t.oldName} (the state before the drop)`,
          `the next step swaps back and refills ${name(t)} from the current partitioned table: rows written since the backup are kept, not lost`,
        ],
      };
    },
    async run(ctx) {
      if ((await relkind(ctx.db, t.schema, t.oldName)) !== null) return { status: 'already-done', summary: `${t.schema}.${t.oldName} exists` };
      const p = await planRestore(ctx, t);
      if (typeof p === 'string') return { status: 'failed', failed: p };
      const sha = await sha256File(p.backup.file);
      if (p.backup.sha256 && sha !== p.backup.sha256) return { status: 'failed', failed: `the backup file changed since it was verified (sha256 ${sha.slice(0, 12)}… ≠ ${p.backup.sha256.slice(0, 12)}…): not restoring it` };
      ctx.log(`sha256 of ${p.backup.file} matches the verified backup (file written ${backupFileTime(p.backup.file)})`);
      const onRetry = (i: { error: string; attempt: number; attempts: number; waitMs: number }) => ctx.log(`lock not granted (${i.error}); retry ${i.attempt}/${i.attempts} in ${i.waitMs} ms`, 'warn');
      await ctx.db.ddl([`DROP SCHEMA IF EXISTS ${ident(SIDE_SCHEMA)} CASCADE`, `CREATE SCHEMA ${ident(SIDE_SCHEMA)}`], { stepId: ctx.stepId, signal: ctx.signal, onRetry });
      const [qs] = await ctx.db.read<{ s: string; t: string; side: string; seqs: string[] }>(
        `SELECT quote_ident($1) AS s, quote_ident($2) AS t, quote_ident($3) AS side, ARRAY(SELECT quote_ident(x) FROM unnest($4::text[]) x) AS seqs`,
        [t.schema, t.table, SIDE_SCHEMA, p.entries.identitySequences],
      );
      const t0 = performance.now();
      const cmd = sideRestoreCommands(p.backup.file, SIDE_SCHEMA, name(t)).join(' && ');
      let r;
      try {
        r = await restoreTableToSide({
          conn: ctx.db.info, file: p.backup.file, entries: p.entries, side: SIDE_SCHEMA, signal: ctx.signal, lockTimeoutMs: ctx.plan.locks.timeoutMs * 5,
          quoted: { schema: qs!.s, table: qs!.t, side: qs!.side, sequences: qs!.seqs },
        });
      } catch (e) {
        await ctx.db.recordCommand(ctx.stepId, cmd, performance.now() - t0, (e as Error).message).catch(() => {});
        throw e;
      }
      await ctx.db.recordCommand(ctx.stepId, cmd, performance.now() - t0);
      // checked before anything is moved: the columns as the snapshot had them, the rows as the dump counted them
      const cols = await ctx.db.read<{ name: string; type: string }>(
        `SELECT attname::text AS name, format_type(atttypid, atttypmod) AS type FROM pg_attribute WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum`,
        [qname(SIDE_SCHEMA, t.table)],
      );
      if (JSON.stringify(cols) !== JSON.stringify(p.columns)) {
        return { status: 'failed', failed: `the restored ${name(t)} does not have the columns of the pre-migration snapshot (${cols.map((c) => `${c.name} ${c.type}`).join(', ')} vs ${p.columns.map((c) => `${c.name} ${c.type}`).join(', ')}): left in schema ${SIDE_SCHEMA}, nothing moved` };
      }
      const [{ n }] = await ctx.db.read<{ n: string }>(`SELECT count(*) AS n FROM ${qname(SIDE_SCHEMA, t.table)}`) as [{ n: string }];
      if (p.expectedRows !== undefined && Number(n) !== p.expectedRows) {
        return { status: 'failed', failed: `the restored ${name(t)} holds ${n} rows, the dump counted ${p.expectedRows}: left in schema ${SIDE_SCHEMA}, nothing moved` };
      }
      ctx.log(`restored ${r.items} archive entries of ${name(t)} into ${SIDE_SCHEMA} in ${fmtDuration(r.ms)}: columns match the snapshot, ${Number(n).toLocaleString('en-US')} rows${p.expectedRows !== undefined ? ' as the dump counted' : ''}`);
      await ctx.db.tx(async (tx) => {
        for (const s of p.moveIn) await tx.query(s);
        await ctx.journal.setArtifact(Artifacts.restored(t), { at: new Date().toISOString(), file: p.backup.file, rows: Number(n) }, tx);
      }, { stepId: ctx.stepId, signal: ctx.signal, onRetry });
      return { status: 'done', summary: `${t.schema}.${t.oldName} restored from ${p.backup.file} (${Number(n).toLocaleString('en-US')} rows, ${r.items} entries); the swap back refills it from ${name(t)}` };
    },
  };
}

const verifyStep: Step = {
  id: 'rollback:verify',
  phase: 'rollback',
  title: 'Compare the catalog with the snapshot taken before the migration; reset the journal',
  // runs on every rollback: a "done" kept from an earlier rollback must never skip the proof of a later one
  rerunnable: true,
  preview() {
    return ['-- reads pg_catalog and compares with artifact snapshot:catalog', '-- then forgets the undone steps (pgshift.step_state) so a new run starts over'];
  },
  async run(ctx: StepContext) {
    const before = await ctx.journal.getArtifact(Artifacts.snapshot);
    if (!before) {
      const traces = await migrationTraces(ctx);
      if (!traces.length) return { status: 'already-done', summary: 'nothing to compare: no migration in progress (an earlier rollback completed, or phase 1 never ran)' };
      return { status: 'failed', failed: `no pre-migration snapshot to compare with, yet the migration left: ${traces.join('; ')}` };
    }
    for (const t of ctx.tables) {
      if (await isSwapped(ctx.db, t)) return { status: 'failed', failed: `${name(t)} is still swapped` };
      if ((await relkind(ctx.db, t.schema, t.table)) === null) return { status: 'failed', failed: `${name(t)} does not exist` };
    }
    const now = await takeSnapshot(ctx.db);
    const diff = diffSnapshots(before, now);
    // the only accepted differences: tables with rows that step rollback:created-objects left in place, and their parts
    const created = createdObjects(before, now);
    const kept = new Set(created.filter((c) => c.kind === 'table').map((c) => c.name));
    const keptParts = new Set(
      created
        .filter((c) => (c.kind === 'table' && kept.has(c.name)) || (c.kind === 'index' && kept.has(String(c.info.table))) ||
          (c.kind === 'sequence' && [...kept].some((k) => textOf(c.info.ownedBy).startsWith(k + '.'))) ||
          (['column', 'constraint', 'foreign key', 'trigger', 'policy'].includes(c.kind) && kept.has(ownerTable(c.name))))
        .map((c) => `extra: ${c.kind} ${c.name} (did not exist before)`),
    );
    const unexpected = diff.filter((d) => !keptParts.has(d));
    if (unexpected.length) {
      return {
        status: 'failed', failed: `the catalog differs from the pre-migration snapshot in ${unexpected.length} place(s):\n  ${unexpected.slice(0, 40).join('\n  ')}`,
        data: { differences: unexpected },
      };
    }
    // the journal forgets every step, so a new run starts over; the snapshot is retaken by the next phase 1
    const forget = [...(await ctx.journal.stepStates()).keys()].filter((id) => id !== ctx.stepId);
    await ctx.journal.forgetSteps(forget);
    const reset = forget.length;
    // every artifact the forward steps wrote (their undo footprints: structures, copies, reports, dependencies, swaps,
    // the plan's SQL files — a new run applies those again; a table left in place above will make its file fail on
    // CREATE TABLE: the operator was told, and decides), and the rollback's own records of its swaps back
    const forward = (await ctx.forwardSteps()).flatMap((s) => s.undo?.artifacts ?? []);
    await ctx.journal.deleteArtifacts([...forward, ...ctx.tables.flatMap((t) => [Artifacts.swappedBack(t), Artifacts.restored(t)])]);
    // no copy position may survive: a new copy starts from the first row (a killed copy has a checkpoint but no step state)
    await ctx.journal.deleteCheckpoints('all');
    await ctx.journal.deleteArtifact(Artifacts.snapshot);
    // the backup describes the database before this migration: a new forward run must take its own, never reuse it
    const backup = await ctx.journal.getArtifact(Artifacts.backup);
    if (backup) {
      await ctx.journal.setArtifact(Artifacts.backupBeforeRollback, backup);
      await ctx.journal.deleteArtifact(Artifacts.backup);
    }
    return {
      status: 'done',
      summary: `catalog matches the pre-migration snapshot (${Object.keys(before.objects).length} objects)${kept.size ? `, except ${kept.size} table(s) left in place` : ''}; ${reset} step(s) reset in the journal`,
      warnings: kept.size ? [...kept].map((k) => `table ${k} left in place (holds rows)`) : undefined,
      data: { objects: Object.keys(before.objects).length, leftInPlace: [...kept] },
    };
  },
};

export const rollback: Phase = {
  id: 'rollback',
  name: 'Rollback',
  async plan(ctx) {
    const steps: Step[] = [];
    const tables = [...ctx.tables].reverse();
    for (const t of tables) {
      const oldExists = (await relkind(ctx.db, t.schema, t.oldName)) !== null;
      // the old table was dropped: its backup comes back beside the current table, then the usual swap back
      if ((await relkind(ctx.db, t.schema, t.table)) === 'p' && !oldExists) steps.push(restoreOldStep(t));
      steps.push(swapBackStep(t));
    }
    steps.push(createdStep(true));
    for (const t of tables) steps.push(dropTargetStep(t));
    steps.push(validateStep, verifyStep);
    return steps;
  },
};

/** A catalog snapshot's text field, or '' when absent. */
function textOf(v: unknown): string {
  return typeof v === 'string' ? v : '';
}
