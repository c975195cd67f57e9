import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import fs from 'node:fs';
import path from 'node:path';
import { analyzeSql, describeSqlAnalysis, LOCK_MODES, type LockMode, type SqlFileAnalysis } from '../source/structure/sql-analysis.js';
import { freshDatabase, type FreshDb } from './helpers/db.js';
import { main } from '../source/cli.js';
import { createDemoDatabase } from '../source/demo/schema.js';
import { examplePlanPath } from '../source/paths.js';
import { captureIo } from './helpers/io.js';

const seedSql = path.resolve(__dirname, '../examples/seed-plan/sql');
const rules = (a: SqlFileAnalysis) => a.statements.flatMap((s) => s.findings.map((f) => `${s.line}:${f.rule}`));
const lockOf = (a: SqlFileAnalysis, line: number, table: string) => a.statements.find((s) => s.line === line)?.tables.find((t) => t.table === table)?.lock;

describe('plan SQL files through PostgreSQL\'s parser', () => {
  it('the seed plan\'s SQL files: no refusal, every statement read, locks on the existing tables named, new tables exempt', async () => {
    const files = fs.readdirSync(seedSql).filter((f) => f.endsWith('.sql')).sort();
    expect(files.length).toBe(4);
    for (const f of files) {
      const a = await analyzeSql(fs.readFileSync(path.join(seedSql, f), 'utf8'));
      expect(a.problems, f).toEqual([]);
      expect(a.statements.length, f).toBeGreaterThan(0);
    }
    const dash = await analyzeSql(fs.readFileSync(path.join(seedSql, '035_create_dashboard_schema.sql'), 'utf8'));
    // the REFERENCES to an existing table take SHARE ROW EXCLUSIVE on it, until the file commits
    expect(dash.locks).toEqual(expect.arrayContaining([{ table: 'public.pilot_programs', lock: 'SHARE ROW EXCLUSIVE', createdInFile: false }]));
    // everything else is on tables the file creates: no lock on them blocks anybody, no finding (their indexes need no CONCURRENTLY)
    expect(dash.locks.map((l) => l.table)).not.toContain('public.dashboards');
    expect(rules(dash)).toEqual([]);
    const create = dash.statements.find((s) => s.text.startsWith('CREATE TABLE public.dashboards '));
    expect(create).toMatchObject({ line: 5, kind: 'CREATE TABLE' });
    const view = await analyzeSql(fs.readFileSync(path.join(seedSql, '034_create_petri_observations_with_names_view.sql'), 'utf8'));
    expect(view.statements[0]).toMatchObject({ line: 4, kind: 'CREATE OR REPLACE VIEW' });
    expect(Object.fromEntries(view.statements[0]!.tables.map((t) => [t.table, t.lock]))).toEqual({
      'public.petri_observations_with_names': 'ACCESS EXCLUSIVE',
      'public.petri_observations': 'ACCESS SHARE', 'public.pilot_programs': 'ACCESS SHARE', 'public.sites': 'ACCESS SHARE',
    });
  });

  it('BEGIN; … CREATE INDEX CONCURRENTLY …; DO $$…$$; COMMIT; — refusals on their lines, not inside the DO body or comments', async () => {
    const a = await analyzeSql([
      'BEGIN;', // 1
      '/* a comment with COMMIT; and', // 2
      '   \\i inside a /* nested */ comment */', // 3
      'CREATE INDEX CONCURRENTLY obs_at ON public.obs (at);', // 4
      'DO $body$', // 5
      'BEGIN', // 6
      "  RAISE NOTICE 'COMMIT; $$ \\i x';", // 7
      '  COMMIT;', // 8
      'END', // 9
      '$body$;', // 10
      "SELECT E'it''s \\' ; COMMIT;' AS s; -- COMMIT;", // 11
      'COMMIT;', // 12
    ].join('\n'));
    expect(a.problems.map((p) => [p.line, p.reason.split(' ').slice(0, 4).join(' ')])).toEqual([
      [1, 'transaction control (BEGIN) at'],
      [4, 'CREATE INDEX CONCURRENTLY cannot'],
      [12, 'transaction control (COMMIT) at'],
    ]);
    expect(a.statements.map((s) => [s.line, s.kind])).toEqual([
      [1, 'BEGIN'], [4, 'CREATE INDEX CONCURRENTLY'], [5, 'DO'], [11, 'SELECT'], [12, 'COMMIT'],
    ]);
    expect(rules(a)).toEqual(['5:anonymous-code-block']);
  });

  it('psql meta-commands: every one named with its line, also after multi-byte text; not inside literals', async () => {
    const a = await analyzeSql([
      "SELECT 'héhé — ünïcode';", // 1
      '\\set ON_ERROR_STOP on', // 2
      'SELECT $f$', // 3
      '\\not a command', // 4
      '$f$;', // 5
      '  \\i other.sql', // 6
      "SELECT 'x\n\\neither';", // 7-8
      'SELECT 1 \\gset', // 9
    ].join('\n'));
    expect(a.problems.map((p) => [p.line, p.text])).toEqual([[2, '\\set ON_ERROR_STOP on'], [6, '\\i other.sql'], [9, 'SELECT 1 \\gset']]);
    expect(a.problems.every((p) => p.reason.startsWith('psql meta-command'))).toBe(true);
    expect(a.statements.map((s) => s.line)).toEqual([1, 3, 7, 9]);
  });

  it('SQL the parser rejects is refused with its line and the parser\'s message', async () => {
    const a = await analyzeSql('SELECT 1;\n\nCREATE TABLE t (a int,);\nSELECT 2;\n');
    expect(a.problems.map((p) => [p.line, p.text])).toEqual([[3, 'CREATE TABLE t (a int,);']]);
    expect(a.problems[0]?.reason).toMatch(/^the PostgreSQL parser rejects it: syntax error at or near "\)"/);
    expect(a.statements).toEqual([]);
  });

  it('squawk\'s rules on existing tables: rewrites, missing CONCURRENTLY, NOT NULL without a validated CHECK, missing NOT VALID', async () => {
    const a = await analyzeSql([
      'ALTER TABLE public.obs ADD COLUMN tag uuid DEFAULT gen_random_uuid();', // 1 volatile default: rewrite
      "ALTER TABLE public.obs ADD COLUMN kind text NOT NULL DEFAULT 'a';", // 2 constant default: no rewrite
      'ALTER TABLE public.obs ADD COLUMN must int NOT NULL;', // 3 fails on rows
      'ALTER TABLE public.obs ALTER COLUMN kind TYPE varchar(10);', // 4 rewrite
      'ALTER TABLE public.obs ALTER COLUMN site SET NOT NULL;', // 5 full scan
      'CREATE INDEX obs_kind ON public.obs (kind);', // 6 blocks writes
      'ALTER TABLE public.obs ADD CONSTRAINT obs_site_fk FOREIGN KEY (site) REFERENCES public.sites (id);', // 7 scan, both locked
      'ALTER TABLE public.obs ADD CONSTRAINT obs_pos CHECK (n > 0);', // 8 scan
      'ALTER TABLE public.obs ADD CONSTRAINT obs_site_fk2 FOREIGN KEY (site) REFERENCES public.sites (id) NOT VALID;', // 9 fine
      'ALTER TABLE public.obs ADD CONSTRAINT obs_prog_nn CHECK (prog IS NOT NULL) NOT VALID;', // 10
      'ALTER TABLE public.obs VALIDATE CONSTRAINT obs_prog_nn;', // 11 SHARE UPDATE EXCLUSIVE
      'ALTER TABLE public.obs ALTER COLUMN prog SET NOT NULL;', // 12 uses the validated check: no finding
      'ALTER TABLE public.obs RENAME COLUMN note TO notes;', // 13
      'ALTER TABLE public.obs ADD CONSTRAINT obs_u UNIQUE (tag);', // 14
      'TRUNCATE public.audit;', // 15
      'DROP TABLE public.old_obs;', // 16
      'CREATE TABLE public.fresh (id int);', // 17
      'CREATE INDEX fresh_id ON public.fresh (id);', // 18 new table: no finding
      'ALTER TABLE public.fresh ALTER COLUMN id SET NOT NULL;', // 19 new table: no finding
    ].join('\n'));
    expect(a.problems).toEqual([]);
    expect(rules(a)).toEqual([
      '1:adding-field-with-default', '3:adding-not-nullable-field', '4:changing-column-type', '5:setting-not-nullable-field',
      '6:require-concurrent-index-creation', '7:adding-foreign-key-constraint', '8:constraint-missing-not-valid', '13:renaming-column',
      '14:disallowed-unique-constraint', '15:ban-truncate', '16:ban-drop-table',
    ]);
    expect(a.statements.filter((s) => s.rewrites).map((s) => s.line)).toEqual([1, 4]);
    expect(lockOf(a, 6, 'public.obs')).toBe('SHARE');
    expect(lockOf(a, 7, 'public.sites')).toBe('SHARE ROW EXCLUSIVE');
    expect(lockOf(a, 11, 'public.obs')).toBe('SHARE UPDATE EXCLUSIVE');
    expect(a.statements[16]!.tables).toEqual([{ table: 'public.fresh', lock: 'ACCESS EXCLUSIVE', createdInFile: true }]);
    // the whole file in one transaction: the strongest lock per existing table, held until it commits
    expect(a.locks).toEqual([
      { table: 'public.audit', lock: 'ACCESS EXCLUSIVE', createdInFile: false },
      { table: 'public.obs', lock: 'ACCESS EXCLUSIVE', createdInFile: false },
      { table: 'public.old_obs', lock: 'ACCESS EXCLUSIVE', createdInFile: false },
      { table: 'public.sites', lock: 'SHARE ROW EXCLUSIVE', createdInFile: false },
    ]);
    const text = describeSqlAnalysis(a);
    expect(text).toContain('--   public.obs: ACCESS EXCLUSIVE (blocks reads and writes) — line 1, 2, 3, 4, 5, 8, 10, 12, 13, 14');
    expect(text).toContain('-- line 1: REWRITES public.obs (ALTER TABLE)');
    expect(text.every((l) => l.startsWith('--'))).toBe(true);
  });
});

/**
 * The lock each statement is said to take, checked against the server: the statement runs in a transaction that is
 * rolled back, and pg_locks names the strongest lock this backend holds on every table that existed before.
 */
describe('the named locks are the locks PostgreSQL takes', () => {
  let db: FreshDb;
  beforeAll(async () => {
    db = await freshDatabase('sql_analysis');
    await db.client.query(`
      CREATE TABLE public.owners (id int PRIMARY KEY);
      CREATE TABLE public.accounts (id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY, owner int, note text, n int);
      ALTER TABLE public.accounts ADD CONSTRAINT accounts_owner_fk FOREIGN KEY (owner) REFERENCES public.owners (id) NOT VALID;
      CREATE TABLE public.events (at date NOT NULL, v int) PARTITION BY RANGE (at);
      CREATE TABLE public.loose (at date NOT NULL, v int);
      CREATE VIEW public.v AS SELECT id FROM public.accounts;
      CREATE FUNCTION public.noop() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$;`);
  });
  afterAll(async () => {
    await db?.drop();
  });

  const mode = (m: string): LockMode => m.replace(/Lock$/, '').replace(/([a-z])([A-Z])/g, '$1 $2').toUpperCase() as LockMode;

  async function serverLocks(sql: string): Promise<Map<string, LockMode>> {
    const c = db.client;
    await c.query('BEGIN');
    try {
      const before = (await c.query<{ oid: number }>(`SELECT c.oid::int AS oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public' AND c.relkind IN ('r','p','v','m')`)).rows.map((r) => r.oid);
      await c.query(sql);
      const r = await c.query<{ rel: string; mode: string }>(
        `SELECT 'public.' || c.relname AS rel, l.mode FROM pg_locks l JOIN pg_class c ON c.oid = l.relation
          WHERE l.pid = pg_backend_pid() AND l.locktype = 'relation' AND l.relation = ANY($1::oid[])`,
        [before],
      );
      const out = new Map<string, LockMode>();
      for (const row of r.rows) {
        const m = mode(row.mode);
        const had = out.get(row.rel);
        if (!had || LOCK_MODES.indexOf(m) > LOCK_MODES.indexOf(had)) out.set(row.rel, m);
      }
      return out;
    } finally {
      await c.query('ROLLBACK');
    }
  }

  const cases = [
    'CREATE INDEX accounts_owner ON public.accounts (owner)',
    "ALTER TABLE public.accounts ADD COLUMN tag text DEFAULT 'x'",
    'ALTER TABLE public.accounts ADD CONSTRAINT accounts_owner_fk2 FOREIGN KEY (owner) REFERENCES public.owners (id) NOT VALID',
    'ALTER TABLE public.accounts VALIDATE CONSTRAINT accounts_owner_fk',
    'ALTER TABLE public.accounts ADD CONSTRAINT accounts_n CHECK (n > 0) NOT VALID',
    'ALTER TABLE public.accounts ALTER COLUMN n SET NOT NULL',
    'ALTER TABLE public.accounts SET (fillfactor = 90)',
    'ALTER TABLE public.accounts DISABLE TRIGGER USER',
    'CREATE TRIGGER accounts_t BEFORE UPDATE ON public.accounts FOR EACH ROW EXECUTE FUNCTION public.noop()',
    'CREATE POLICY accounts_p ON public.accounts USING (true)',
    "COMMENT ON TABLE public.accounts IS 'x'",
    "COMMENT ON COLUMN public.accounts.note IS 'x'",
    'TRUNCATE public.loose',
    "CREATE TABLE public.events_2024 PARTITION OF public.events FOR VALUES FROM ('2024-01-01') TO ('2025-01-01')",
    "ALTER TABLE public.events ATTACH PARTITION public.loose FOR VALUES FROM ('2023-01-01') TO ('2024-01-01')",
    'INSERT INTO public.owners (id) SELECT owner FROM public.accounts WHERE owner IS NOT NULL',
    'CREATE OR REPLACE VIEW public.v AS SELECT id FROM public.accounts',
    'LOCK TABLE public.owners IN SHARE MODE',
    'ALTER TABLE public.accounts RENAME COLUMN note TO notes',
    'CREATE TABLE public.child (id int PRIMARY KEY, owner int REFERENCES public.owners (id))',
  ];

  it.each(cases)('%s', async (sql) => {
    const a = await analyzeSql(`${sql};`);
    expect(a.problems).toEqual([]);
    const said = new Map(a.locks.map((l) => [l.table, l.lock]));
    const taken = await serverLocks(sql);
    // every lock the analysis names is the one the server takes
    for (const [table, lock] of said) expect(`${table}: ${taken.get(table)}`).toBe(`${table}: ${lock}`);
    // and no lock that blocks writes or DDL on an existing table goes unnamed
    for (const [table, lock] of taken) {
      if (LOCK_MODES.indexOf(lock) >= LOCK_MODES.indexOf('SHARE UPDATE EXCLUSIVE')) expect(said.get(table), `${table} ${lock}`).toBe(lock);
    }
  });
});

describe('`pgshift plan` shows, for each SQL file, the tables it locks and how', () => {
  let db: FreshDb;
  beforeAll(async () => {
    db = await freshDatabase('sql_analysis_plan');
    await createDemoDatabase(db.client, { rows: 200 });
  });
  afterAll(async () => {
    await db?.drop();
  });

  it('the seed plan: the dashboard file holds SHARE ROW EXCLUSIVE on pilot_programs until it commits; the view files name what they read', async () => {
    const io = captureIo();
    expect(await main(['plan', '--plan', examplePlanPath(), '--db', db.url], io), io.text()).toBe(0);
    const out = io.stdout.join('\n');
    const step = (id: string) => out.slice(out.indexOf(`-- ▶ ${id}:`), out.indexOf('-- ▶', out.indexOf(`-- ▶ ${id}:`) + 1));
    const dash = step('sql:sql/035_create_dashboard_schema.sql');
    expect(dash).toMatch(/-- \d+ statement\(s\); 3 new object\(s\) created by the file/);
    expect(dash).toContain('-- locks on existing tables, held until the file commits:\n--   public.pilot_programs: SHARE ROW EXCLUSIVE (blocks writes, reads go on) — line 5');
    const view = step('sql:sql/034_create_petri_observations_with_names_view.sql');
    expect(view).toContain('--   public.petri_observations: ACCESS SHARE (reads and writes go on) — line 4');
  });
});
