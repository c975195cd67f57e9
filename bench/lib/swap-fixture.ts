import type pg from 'pg';
import fs from 'node:fs';
import path from 'node:path';
import { packageRoot } from '../../source/paths.js';
import type { TablePlan } from '../../source/plan/schema.js';
import { ident, literal, qname } from '../../source/db/quote.js';
import { fitName } from '../../source/swap/names.js';

/**
 * A stand-in for phases 2 and 3, for tests and the cut-over bench only: builds `t.targetName` partitioned like
 * phase 2 does (PK/unique gaining the partition key, indexes and constraints named `<source>_p`, triggers, RLS and
 * policies, comments; grants left to phase 4), copies the rows with one INSERT … SELECT, and writes the
 * `structure:<table>` and `integrity-report` artifacts the way phases 2 and 3 record them.
 */
export async function buildFixture(c: pg.ClientBase, t: TablePlan, opts: { copy?: boolean } = {}): Promise<void> {
  const S = qname(t.schema, t.table);
  const N = qname(t.schema, t.targetName);
  const by = t.strategy === 'range' ? `RANGE (${ident(t.key)})` : `LIST (${ident(t.key)})`;
  await c.query(`CREATE TABLE ${N} (LIKE ${S} INCLUDING DEFAULTS INCLUDING IDENTITY INCLUDING GENERATED INCLUDING CONSTRAINTS INCLUDING COMMENTS INCLUDING STORAGE) PARTITION BY ${by}`);
  const indexes: { newName: string; sourceName: string }[] = [];
  const constraints: { newName: string; sourceName: string }[] = [];
  const partitions: string[] = [];
  if (t.strategy === 'range') {
    for (let m = 0; m < 24; m++) {
      const from = new Date(Date.UTC(2024, m, 1)).toISOString().slice(0, 10);
      const to = new Date(Date.UTC(2024, m + 1, 1)).toISOString().slice(0, 10);
      const p = `${t.targetName}_${from.slice(0, 7).replace('-', '_')}`;
      await c.query(`CREATE TABLE ${qname(t.schema, p)} PARTITION OF ${N} FOR VALUES FROM (${literal(from)}) TO (${literal(to)})`);
      partitions.push(p);
    }
  } else {
    const vals = (await c.query<{ v: string }>(t.values!.query)).rows.map((r) => String(Object.values(r)[0]));
    for (const [i, v] of vals.entries()) {
      const p = `${t.targetName}_p${i}`;
      await c.query(`CREATE TABLE ${qname(t.schema, p)} PARTITION OF ${N} FOR VALUES IN (${literal(v)})`);
      partitions.push(p);
    }
  }
  await c.query(`CREATE TABLE ${qname(t.schema, `${t.targetName}_default`)} PARTITION OF ${N} DEFAULT`);
  partitions.push(`${t.targetName}_default`);
  // keys and indexes
  const idx = await c.query<{ name: string; def: string; primary: boolean; cols: string[] }>(
    `SELECT ic.relname AS name, pg_get_indexdef(i.indexrelid) AS def, i.indisprimary AS primary,
            ARRAY(SELECT a.attname::text FROM unnest(i.indkey) k JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k) AS cols
       FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid WHERE i.indrelid = $1::regclass`,
    [S],
  );
  for (const x of idx.rows) {
    const nn = fitName(`${x.name}_p`);
    if (x.primary) {
      const cols = x.cols.includes(t.key) ? x.cols : [...x.cols, t.key];
      await c.query(`ALTER TABLE ${N} ADD CONSTRAINT ${ident(nn)} PRIMARY KEY (${cols.map(ident).join(', ')})`);
    } else {
      const cols = x.def.slice(x.def.indexOf(' USING '));
      await c.query(`CREATE INDEX ${ident(nn)} ON ${N}${cols}`);
    }
    indexes.push({ newName: nn, sourceName: x.name });
  }
  const fks = await c.query<{ name: string; def: string }>(`SELECT conname AS name, pg_get_constraintdef(oid) AS def FROM pg_constraint WHERE conrelid = $1::regclass AND contype = 'f'`, [S]);
  for (const f of fks.rows) {
    const nn = fitName(`${f.name}_p`);
    await c.query(`ALTER TABLE ${N} ADD CONSTRAINT ${ident(nn)} ${f.def}`);
    constraints.push({ newName: nn, sourceName: f.name });
  }
  const trg = await c.query<{ def: string; name: string }>(`SELECT tgname AS name, pg_get_triggerdef(oid) AS def FROM pg_trigger WHERE tgrelid = $1::regclass AND NOT tgisinternal`, [S]);
  for (const x of trg.rows) await c.query(x.def.replace(` ON ${t.schema}.${t.table} `, ` ON ${N} `));
  const rls = await c.query<{ rls: boolean; comment: string | null }>(`SELECT relrowsecurity AS rls, obj_description(oid, 'pg_class') AS comment FROM pg_class WHERE oid = $1::regclass`, [S]);
  if (rls.rows[0]!.rls) await c.query(`ALTER TABLE ${N} ENABLE ROW LEVEL SECURITY`);
  if (rls.rows[0]!.comment) await c.query(`COMMENT ON TABLE ${N} IS ${literal(rls.rows[0]!.comment)}`);
  const pol = await c.query<{ name: string; cmd: string; roles: string[]; qual: string | null; chk: string | null; permissive: boolean }>(
    `SELECT polname AS name, polcmd AS cmd, polpermissive AS permissive, ARRAY(SELECT CASE WHEN r = 0 THEN 'public' ELSE pg_get_userbyid(r)::text END FROM unnest(polroles) r) AS roles,
            pg_get_expr(polqual, polrelid) AS qual, pg_get_expr(polwithcheck, polrelid) AS chk FROM pg_policy WHERE polrelid = $1::regclass`,
    [S],
  );
  const cmds: Record<string, string> = { r: 'SELECT', a: 'INSERT', w: 'UPDATE', d: 'DELETE', '*': 'ALL' };
  for (const p of pol.rows) {
    await c.query(
      `CREATE POLICY ${ident(p.name)} ON ${N} AS ${p.permissive ? 'PERMISSIVE' : 'RESTRICTIVE'} FOR ${cmds[p.cmd]} TO ${p.roles.map((r) => (r === 'public' ? 'PUBLIC' : ident(r))).join(', ')}` +
        `${p.qual ? ` USING (${p.qual})` : ''}${p.chk ? ` WITH CHECK (${p.chk})` : ''}`,
    );
  }
  if (opts.copy !== false) {
    const ident_ = await c.query<{ a: boolean }>(`SELECT bool_or(attidentity = 'a') AS a FROM pg_attribute WHERE attrelid = $1::regclass`, [S]);
    await c.query(`INSERT INTO ${N}${ident_.rows[0]!.a ? ' OVERRIDING SYSTEM VALUE' : ''} SELECT * FROM ${S}`);
  }
  await setArtifact(c, `structure:${t.schema}.${t.table}`, { target: `${t.schema}.${t.targetName}`, partitions, indexes, constraints });
}

export async function setArtifact(c: pg.ClientBase, key: string, value: unknown): Promise<void> {
  await c.query(
    `INSERT INTO pgshift.artifacts (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, updated_at = now()`,
    [key, JSON.stringify(value)],
  );
}

/** The integrity report as phase 3 records it, from real counts. */
export async function writeIntegrityReport(c: pg.ClientBase, tables: readonly TablePlan[], pass?: boolean): Promise<void> {
  const rows = [];
  for (const t of tables) {
    const r = await c.query<{ a: string; b: string }>(`SELECT (SELECT count(*) FROM ${qname(t.schema, t.table)}) AS a, (SELECT count(*) FROM ${qname(t.schema, t.targetName)}) AS b`);
    rows.push({ table: `${t.schema}.${t.table}`, sourceRows: Number(r.rows[0]!.a), targetRows: Number(r.rows[0]!.b), pass: pass ?? r.rows[0]!.a === r.rows[0]!.b });
  }
  await setArtifact(c, 'integrity-report', { at: new Date().toISOString(), pass: rows.every((r) => r.pass), tables: rows });
}

/** The example plan with its SQL files, copied into `dir`, with top-level overrides (e.g. a short lock_timeout). */
export function examplePlan(dir: string, over: Record<string, unknown> = {}): string {
  const root = packageRoot();
  fs.mkdirSync(dir, { recursive: true });
  fs.cpSync(path.join(root, 'examples/seed-plan/sql'), path.join(dir, 'sql'), { recursive: true });
  const plan = JSON.parse(fs.readFileSync(path.join(root, 'examples/seed-plan/plan.json'), 'utf8'));
  delete plan.$schema;
  Object.assign(plan, { backup: { ...plan.backup, directory: path.join(dir, 'backups') } }, over);
  const file = path.join(dir, 'plan.json');
  fs.writeFileSync(file, JSON.stringify(plan, null, 2));
  return file;
}
