import type { Db, RetryInfo } from '../db/session.js';
import { sleep, withRetry } from '../db/session.js';
import { ident, literal, qname } from '../db/quote.js';
import type { ConfirmAnswer, ConfirmRequest, LogLevel, Progress } from '../engine/types.js';
import type { DeferredForeignKey, DeferredIndex, DeferredKey, DeferredObjects } from '../structure/ddl.js';
import type { Rel } from './meta.js';
import { fitName } from '../structure/names.js';

/**
 * Phase 3's finish step: the secondary indexes and outbound foreign keys phase 2 left out, built after the copy.
 *
 * Why after: every copied row would otherwise pay for index maintenance and one RI lookup per FK. Measured on PG 15,
 * 500,000 rows: 3.1 s into a table with only its primary key, 16.3 s with the 3 indexes and 2 FKs in place; building
 * them afterwards costs ~2 s.
 *
 * How, on a table that may already be written to (online mode: the capture replay; later: the application):
 *  - indexes — CREATE INDEX CONCURRENTLY does not work on a partitioned parent. So: CREATE INDEX … ON ONLY parent
 *    (catalog only, instant, INVALID), then CREATE INDEX CONCURRENTLY on each partition (SHARE UPDATE EXCLUSIVE:
 *    writes go on), then ALTER INDEX parent_idx ATTACH PARTITION part_idx; once every partition's index is attached
 *    the parent index becomes valid. CONCURRENTLY cannot run in a transaction block: it runs on a dedicated session
 *    with SET lock_timeout (RESET afterwards), is journaled through the statement sink, and is retried with backoff.
 *  - foreign keys — before PostgreSQL 18 a FK on a partitioned table cannot be NOT VALID, and adding it scans every
 *    partition under SHARE ROW EXCLUSIVE on both tables. So: per partition ADD CONSTRAINT … NOT VALID (instant) and
 *    VALIDATE CONSTRAINT (SHARE UPDATE EXCLUSIVE on the partition, ROW SHARE on the referenced table: writers to
 *    it are not blocked), then ADD CONSTRAINT on the parent with the same definition: PostgreSQL adopts each
 *    partition's validated constraint (pg_constraint.conparentid) instead of scanning again.
 * Every step is idempotent: what exists (attached index, valid partition index, validated constraint) is reused.
 */

export interface FinishOptions {
  readonly stepId: string;
  readonly schema: string;
  /** the partitioned table (by its current name) */
  readonly table: string;
  readonly deferred: DeferredObjects;
  readonly signal: AbortSignal;
  readonly log: (message: string, level?: LogLevel) => void;
  readonly progress: (p: Progress) => void;
  /** asked before dropping an INVALID partition index left by an earlier, interrupted run */
  readonly confirm: (req: Omit<ConfirmRequest, 'stepId'>) => Promise<ConfirmAnswer>;
  /** poll interval while an earlier build of the same index is still running (ms) */
  readonly waitPollMs?: number;
}

export interface FinishResult {
  readonly indexes: { name: string; partitions: number; built: number; reused: number; rebuilt: number; ms: number; valid: boolean }[];
  readonly foreignKeys: { name: string; partitions: number; added: number; validated: number; parentMs: number; adopted: number; ms: number }[];
  readonly stopped: boolean;
  readonly ms: number;
}

/** The name of a deferred index's copy on one partition: deterministic, so a rerun finds it. */
export function partitionIndexName(partition: string, ix: Pick<DeferredIndex, 'sourceName'>): string {
  return fitName(`${partition}_${ix.sourceName}`);
}

/** Every statement the finish step runs, for plan mode and the preview (partitions as they are or will be). */
export function finishStatements(schema: string, table: string, partitions: readonly string[], d: DeferredObjects): string[] {
  const parent = qname(schema, table);
  const out: string[] = [];
  if (d.indexes.length) {
    out.push('-- secondary indexes: CREATE INDEX CONCURRENTLY does not work on a partitioned parent, so ON ONLY the parent, CONCURRENTLY per partition (outside any transaction, SET lock_timeout on that session), then ATTACH');
  }
  for (const ix of d.indexes) {
    out.push(`CREATE INDEX ${ident(ix.newName)} ON ONLY ${parent} USING ${ix.using}`);
    for (const p of partitions) {
      const n = partitionIndexName(p, ix);
      out.push(`CREATE INDEX CONCURRENTLY ${ident(n)} ON ${qname(schema, p)} USING ${ix.using}`);
      out.push(`ALTER INDEX ${qname(schema, ix.newName)} ATTACH PARTITION ${qname(schema, n)}`);
    }
  }
  if (d.foreignKeys.length) {
    out.push('-- foreign keys: NOT VALID + VALIDATE per partition (SHARE UPDATE EXCLUSIVE on the partition, ROW SHARE on the referenced table), then the parent adopts them without another scan');
  }
  for (const fk of d.foreignKeys) {
    for (const p of partitions) {
      out.push(`ALTER TABLE ${qname(schema, p)} ADD CONSTRAINT ${ident(fk.newName)} ${fk.definition} NOT VALID`);
      out.push(`ALTER TABLE ${qname(schema, p)} VALIDATE CONSTRAINT ${ident(fk.newName)}`);
    }
    out.push(`ALTER TABLE ${parent} ADD CONSTRAINT ${ident(fk.newName)} ${fk.definition}`);
    if (fk.comment !== null) out.push(`COMMENT ON CONSTRAINT ${ident(fk.newName)} ON ${parent} IS ${literal(fk.comment)}`);
  }
  return out;
}

interface Part { oid: number; name: string; kind: string }

async function partitionsOf(db: Db, parentOid: number): Promise<Part[]> {
  return db.read<Part>(
    `SELECT c.oid::int AS oid, c.relname AS name, c.relkind::text AS kind FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
      WHERE i.inhparent = $1 ORDER BY c.relname`,
    [parentOid],
  );
}

interface IndexState { oid: number; table: number; valid: boolean; ready: boolean }

async function indexByName(db: Db, schema: string, name: string): Promise<IndexState | null> {
  const [r] = await db.read<IndexState>(
    `SELECT c.oid::int AS oid, i.indrelid::int AS "table", i.indisvalid AS valid, i.indisready AS ready
       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_index i ON i.indexrelid = c.oid
      WHERE n.nspname = $1 AND c.relname = $2`,
    [schema, name],
  );
  return r ?? null;
}

/** The backend still building this index (an interrupted run's CREATE INDEX CONCURRENTLY may outlive its client). */
async function buildInProgress(db: Db, indexOid: number): Promise<number | null> {
  const [r] = await db.read<{ pid: number }>(`SELECT pid FROM pg_stat_progress_create_index WHERE index_relid = $1 LIMIT 1`, [indexOid]);
  return r?.pid ?? null;
}

export async function finishDeferred(db: Db, opts: FinishOptions): Promise<FinishResult> {
  const t0 = performance.now();
  const { schema, table, deferred: d, stepId, log, signal } = opts;
  const parent = qname(schema, table);
  const [rel] = await db.read<{ oid: number }>(
    `SELECT c.oid::int AS oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind = 'p'`,
    [schema, table],
  );
  if (!rel) throw new Error(`${schema}.${table} is not a partitioned table`);
  const locks = db.locks;
  const onRetry = (what: string) => (r: { error: string; attempt: number; attempts: number; waitMs: number }) =>
    log(`${what}: lock not available (${r.error}); retry ${r.attempt}/${r.attempts} in ${r.waitMs} ms`, 'warn');
  const ddl = (statements: string[], what: string) => db.ddl(statements, { stepId, signal, onRetry: onRetry(what) });

  let parts = await partitionsOf(db, rel.oid);
  const total = (d.indexes.length + d.foreignKeys.length) * (parts.length + 1);
  let done = 0;
  const tick = (detail: string) => {
    done++;
    opts.progress({ done, total: Math.max(total, done), unit: 'objects', detail });
  };
  opts.progress({ done: 0, total, unit: 'objects', detail: 'starting' });

  const indexes: FinishResult['indexes'][number][] = [];
  if (d.indexes.length) {
    log(`secondary indexes: CREATE INDEX CONCURRENTLY does not work on a partitioned parent, so each index is created ON ONLY ${parent} (instant, invalid until complete), built CONCURRENTLY on each of the ${parts.length} partitions (writes go on), then attached; the parent index becomes valid when every partition's index is attached`);
  }
  for (const ix of d.indexes) {
    if (signal.aborted) break;
    const i0 = performance.now();
    let parentIx = await indexByName(db, schema, ix.newName);
    if (parentIx && parentIx.table !== rel.oid) throw new Error(`an index named ${ix.newName} exists on another table: pgshift cannot build ${ix.sourceName}'s copy under that name`);
    if (!parentIx) {
      await ddl([`CREATE INDEX ${ident(ix.newName)} ON ONLY ${parent} USING ${ix.using}`], `index ${ix.newName}`);
      parentIx = (await indexByName(db, schema, ix.newName))!;
    }
    tick(`index ${ix.newName} on the parent`);
    // partitions created meanwhile (auto partitions) are listed again: they got the index by cloning and attaching
    parts = await partitionsOf(db, rel.oid);
    let built = 0;
    let reused = 0;
    let rebuilt = 0;
    for (const p of parts) {
      if (signal.aborted) break;
      const [att] = await db.read<{ n: string }>(
        `SELECT c.relname AS n FROM pg_inherits h JOIN pg_index x ON x.indexrelid = h.inhrelid JOIN pg_class c ON c.oid = h.inhrelid
          WHERE h.inhparent = $1 AND x.indrelid = $2`,
        [parentIx.oid, p.oid],
      );
      if (att) {
        reused++;
        tick(`${p.name}: ${att.n} attached`);
        continue;
      }
      const name = partitionIndexName(p.name, ix);
      const q = qname(schema, name);
      // an earlier failure of this very build (lock timeout, lost connection) left the invalid index: dropped unasked
      let ownFailure = false;
      const outcome = await withRetry(async (attempt): Promise<'reused' | 'built' | 'stopped'> => {
        for (;;) {
          if (signal.aborted) return 'stopped';
          const cur = await indexByName(db, schema, name);
          if (cur && cur.table !== p.oid) throw new Error(`an index named ${name} exists on another table than ${p.name}`);
          if (cur && cur.valid) {
            if (attempt === 1) log(`${name} on ${p.name} exists and is valid: reused`);
            return attempt === 1 ? 'reused' : 'built';
          }
          if (!cur) break;
          const pid = await buildInProgress(db, cur.oid);
          if (pid !== null) {
            // not an attempt of ours: wait for the other backend, then look again
            log(`${name} is still being built by backend ${pid} (an earlier, interrupted run): waiting for it`, 'warn');
            await sleep(opts.waitPollMs ?? 1000, signal);
            continue;
          }
          if (!ownFailure) {
            // left by a run killed during its CREATE INDEX CONCURRENTLY: pgshift cannot tell more than the catalog does
            const answer = await opts.confirm({
              kind: 'drop', object: `${schema}.${name}`, typed: true,
              statements: [`DROP INDEX CONCURRENTLY ${q}`, `CREATE INDEX CONCURRENTLY ${ident(name)} ON ${qname(schema, p.name)} USING ${ix.using}`],
              impact: [
                `${name} on partition ${p.name} of the new table ${schema}.${table} is INVALID: a CREATE INDEX CONCURRENTLY was interrupted (killed run or lock timeout) and no backend is building it now`,
                'an invalid index is never used by queries but is still maintained by writes; it holds no data of its own',
              ],
              protections: ['the index is only on the new table, which nothing reads yet; it is rebuilt right after the drop', 'DROP INDEX CONCURRENTLY: writes to the partition go on'],
            });
            if (!answer.confirmed) throw new Error(`${schema}.${name} is INVALID and was not dropped: drop it (DROP INDEX CONCURRENTLY) and run phase 3 again`);
          }
          log(`${name} on ${p.name} is INVALID (left by an interrupted CREATE INDEX CONCURRENTLY): dropping it and building it again`, 'warn');
          await db.outsideTx(`DROP INDEX CONCURRENTLY IF EXISTS ${q}`, { stepId, lockTimeoutMs: locks.timeoutMs });
          rebuilt++;
          break;
        }
        await db.outsideTx(`CREATE INDEX CONCURRENTLY ${ident(name)} ON ${qname(schema, p.name)} USING ${ix.using}`, { stepId, lockTimeoutMs: locks.timeoutMs });
        return 'built';
      }, {
        ...db.retryPolicy(), signal,
        onRetry: (r) => {
          ownFailure = true;
          log(`CREATE INDEX CONCURRENTLY ${name}: ${r.kind === 'connection' ? 'connection lost' : 'lock not available'} (${r.error}); its invalid leftover is dropped, retry ${r.attempt}/${r.attempts} in ${r.waitMs} ms`, 'warn');
        },
      });
      if (outcome === 'reused') reused++;
      else if (outcome === 'built') built++;
      if (signal.aborted) break;
      await ddl([`ALTER INDEX ${qname(schema, ix.newName)} ATTACH PARTITION ${q}`], `attach ${name}`);
      tick(`${p.name}: ${name} built and attached`);
    }
    const [v] = await db.read<{ valid: boolean }>(`SELECT indisvalid AS valid FROM pg_index WHERE indexrelid = $1`, [parentIx.oid]);
    const ms = performance.now() - i0;
    indexes.push({ name: ix.newName, partitions: parts.length, built, reused, rebuilt, ms, valid: !!v?.valid });
    if (!signal.aborted) {
      log(`index ${ix.newName}: ${built} partition index(es) built concurrently${reused ? `, ${reused} reused` : ''}${rebuilt ? `, ${rebuilt} invalid leftover(s) rebuilt` : ''}, all attached in ${(ms / 1000).toFixed(1)} s; parent index ${v?.valid ? 'valid' : 'NOT valid'}`, v?.valid ? 'info' : 'warn');
    }
  }

  const fks: FinishResult['foreignKeys'][number][] = [];
  if (d.foreignKeys.length && !signal.aborted) {
    log(`foreign keys: before PostgreSQL 18 a foreign key on a partitioned table cannot be NOT VALID, and adding it scans every partition while holding SHARE ROW EXCLUSIVE on both tables. So per partition: ADD … NOT VALID (instant), VALIDATE (SHARE UPDATE EXCLUSIVE on the partition, ROW SHARE on the referenced table: its writers are not blocked); then the parent's ADD adopts the validated constraints without scanning again`);
  }
  for (const fk of d.foreignKeys) {
    if (signal.aborted) break;
    fks.push(await finishForeignKey(db, opts, rel.oid, fk, tick, ddl));
  }
  return { indexes, foreignKeys: fks, stopped: signal.aborted, ms: performance.now() - t0 };
}

async function finishForeignKey(
  db: Db, opts: FinishOptions, parentOid: number, fk: DeferredForeignKey, tick: (detail: string) => void,
  ddl: (s: string[], what: string) => Promise<void>,
): Promise<FinishResult['foreignKeys'][number]> {
  const { schema, table, log, signal } = opts;
  const parent = qname(schema, table);
  const f0 = performance.now();
  const conOf = async (rel: number) =>
    (await db.read<{ oid: number; validated: boolean; parent: number; def: string }>(
      `SELECT oid::int AS oid, convalidated AS validated, conparentid::int AS parent, pg_get_constraintdef(oid) AS def FROM pg_constraint WHERE conrelid = $1 AND conname = $2 AND contype = 'f'`,
      [rel, fk.newName],
    ))[0] ?? null;
  const parts = await partitionsOf(db, parentOid);
  const onParent = await conOf(parentOid);
  if (onParent) {
    for (const p of parts) tick(`${p.name}: ${fk.newName} on the parent already`);
    tick(`${fk.newName} on the parent already`);
    return { name: fk.newName, partitions: parts.length, added: 0, validated: 0, parentMs: 0, adopted: 0, ms: performance.now() - f0 };
  }
  let added = 0;
  let validated = 0;
  for (const p of parts) {
    if (signal.aborted) break;
    const pq = qname(schema, p.name);
    let c = await conOf(p.oid);
    if (!c) {
      await ddl([`ALTER TABLE ${pq} ADD CONSTRAINT ${ident(fk.newName)} ${fk.definition} NOT VALID`], `${fk.newName} on ${p.name}`);
      added++;
      c = await conOf(p.oid);
    }
    if (c && !c.validated) {
      const v0 = performance.now();
      try {
        await ddl([`ALTER TABLE ${pq} VALIDATE CONSTRAINT ${ident(fk.newName)}`], `validate ${fk.newName} on ${p.name}`);
      } catch (e) {
        if ((e as { code?: string }).code === '23503') {
          throw Object.assign(new Error(
            `rows of ${p.name} violate foreign key ${fk.sourceName} (${fk.definition}): ${(e as Error).message}. The source table holds the same orphans (its constraint was NOT VALID, or was disabled); ` +
              `the constraint stays NOT VALID on ${p.name} (new writes are checked)`,
          ), { code: '23503' });
        }
        throw e;
      }
      validated++;
      const ms = performance.now() - v0;
      if (ms > 1000) log(`${fk.newName} validated on ${p.name} in ${(ms / 1000).toFixed(1)} s`);
    }
    tick(`${p.name}: ${fk.newName} validated`);
  }
  if (signal.aborted) return { name: fk.newName, partitions: parts.length, added, validated, parentMs: 0, adopted: 0, ms: performance.now() - f0 };
  const p0 = performance.now();
  await ddl([
    `ALTER TABLE ${parent} ADD CONSTRAINT ${ident(fk.newName)} ${fk.definition}`,
    ...(fk.comment !== null ? [`COMMENT ON CONSTRAINT ${ident(fk.newName)} ON ${parent} IS ${literal(fk.comment)}`] : []),
  ], `${fk.newName} on ${table}`);
  const parentMs = performance.now() - p0;
  const top = await conOf(parentOid);
  const [{ adopted }] = (await db.read<{ adopted: number }>(
    `SELECT count(*)::int AS adopted FROM pg_constraint WHERE conparentid = $1 AND conname = $2 AND conrelid = ANY($3::oid[])`,
    [top?.oid ?? 0, fk.newName, parts.map((p) => p.oid)],
  )) as [{ adopted: number }];
  tick(`${fk.newName} on the parent`);
  log(
    `foreign key ${fk.newName}: ${validated} partition(s) validated, the parent's ADD took ${Math.round(parentMs)} ms and adopted ${adopted} of ${parts.length} partition constraint(s)` +
      (adopted < parts.length ? ` — the other ${parts.length - adopted} were checked by the parent's ADD (SHARE ROW EXCLUSIVE on ${table} and the referenced table meanwhile)` : ': no second scan'),
    adopted < parts.length ? 'warn' : 'info',
  );
  return { name: fk.newName, partitions: parts.length, added, validated, parentMs, adopted, ms: performance.now() - f0 };
}

/** The deferred keys not on the table yet (by constraint name). */
export async function missingKeys(db: Db, target: Pick<Rel, 'oid'>, keys: readonly DeferredKey[]): Promise<DeferredKey[]> {
  if (!keys.length) return [];
  const have = new Set((await db.read<{ name: string }>(`SELECT conname AS name FROM pg_constraint WHERE conrelid = $1 AND contype IN ('p', 'u')`, [target.oid])).map((r) => r.name));
  return keys.filter((k) => !have.has(k.newName));
}

/** The statements that add the keys to `target` (by its name now), with their comments. */
export function keyStatements(target: Pick<Rel, 'q' | 'schema'>, keys: readonly DeferredKey[]): string[] {
  return keys.flatMap((k) => [
    `ALTER TABLE ${target.q} ADD ${k.definition}`,
    ...(k.comment !== null ? [`COMMENT ON CONSTRAINT ${ident(k.newName)} ON ${target.q} IS ${literal(k.comment)}`] : []),
    ...(k.indexComment !== null ? [`COMMENT ON INDEX ${qname(target.schema, k.newName)} IS ${literal(k.indexComment)}`] : []),
  ]);
}

/**
 * The primary key and UNIQUE constraints phase 2 deferred, added once the rows are in: ALTER TABLE … ADD CONSTRAINT
 * builds each partition's index in one sorted pass instead of one insertion per copied row. One transaction under
 * lock_timeout, retried: it takes ACCESS EXCLUSIVE on the new table and its partitions, which nothing but pgshift
 * uses before the swap. Idempotent: the keys already there are skipped. A duplicate key (the copy inserted a row
 * twice) fails the build, and nothing is added.
 */
export async function buildKeys(db: Db, o: { stepId: string; target: Rel; keys: readonly DeferredKey[]; onRetry?: (i: RetryInfo) => void; signal?: AbortSignal; serial?: boolean }): Promise<{ built: DeferredKey[]; ms: number }> {
  const missing = await missingKeys(db, o.target, o.keys);
  if (!missing.length) return { built: [], ms: 0 };
  const t0 = performance.now();
  // serial: no parallel workers for the sorts (they would take every core from the application meanwhile)
  await db.ddl([...(o.serial ? ['SET LOCAL max_parallel_maintenance_workers = 0'] : []), ...keyStatements(o.target, missing)], { stepId: o.stepId, onRetry: o.onRetry, signal: o.signal });
  return { built: missing, ms: performance.now() - t0 };
}

/** Deferred objects not (yet) complete on the table: a key absent, a parent index absent or invalid, a FK absent from the parent. */
export async function missingDeferred(db: Db, schema: string, table: string, d: DeferredObjects): Promise<string[]> {
  const rows = await db.read<{ kind: string; name: string; ok: boolean }>(
    `SELECT 'index' AS kind, c.relname AS name, i.indisvalid AS ok
       FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
      WHERE i.indrelid = (SELECT t.oid FROM pg_class t JOIN pg_namespace n ON n.oid = t.relnamespace WHERE n.nspname = $1 AND t.relname = $2)
     UNION ALL
     SELECT CASE contype WHEN 'f' THEN 'fk' ELSE 'key' END, conname, convalidated FROM pg_constraint
      WHERE contype IN ('f', 'p', 'u') AND conrelid = (SELECT t.oid FROM pg_class t JOIN pg_namespace n ON n.oid = t.relnamespace WHERE n.nspname = $1 AND t.relname = $2)`,
    [schema, table],
  );
  const ok = new Set(rows.filter((r) => r.ok).map((r) => `${r.kind}:${r.name}`));
  return [
    ...(d.keys ?? []).filter((x) => !ok.has(`key:${x.newName}`)).map((x) => `${x.kind === 'primary key' ? 'primary key' : 'unique constraint'} ${x.newName}`),
    ...d.indexes.filter((x) => !ok.has(`index:${x.newName}`)).map((x) => `index ${x.newName}`),
    ...d.foreignKeys.filter((x) => !ok.has(`fk:${x.newName}`)).map((x) => `foreign key ${x.newName}`),
  ];
}
