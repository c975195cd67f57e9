import { readFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ClientBase } from 'pg';
import { freshDatabase, type FreshDb } from './helpers/db.js';
import { createDemoDatabase, DEMO_SCHEMA_SQL, DEMO_TABLES } from '../source/demo/schema.js';

const ROWS = 20_000;


/** md5 of the whole content of a table, rows ordered by `key`. */
async function tableMd5(client: ClientBase, table: string, key: string): Promise<string> {
  const r = await client.query<{ h: string }>(
    `SELECT md5(string_agg(t::text, E'\\n' ORDER BY t.${key})) AS h FROM public.${table} t`,
  );
  return r.rows[0]!.h;
}

async function one<T>(client: ClientBase, sql: string, params: unknown[] = []): Promise<T> {
  const r = await client.query(sql, params);
  return r.rows[0] as T;
}

describe('createDemoDatabase', () => {
  let db: FreshDb;
  let result: { petri: number; gasifier: number; ms: number };
  const progress: string[] = [];

  beforeAll(async () => {
    db = await freshDatabase('demo_schema');
    result = await createDemoDatabase(db.client, { rows: ROWS, onProgress: (m) => progress.push(m) });
  });
  afterAll(async () => {
    await db?.drop();
  });

  it('reports the rows it made and its progress', () => {
    expect(result.petri).toBe(ROWS);
    expect(result.gasifier).toBe(ROWS / 2);
    expect(result.ms).toBeGreaterThan(0);
    expect(progress.length).toBeGreaterThan(3);
    expect(progress.join('\n')).toMatch(/petri_observations/);
  });

  it('creates the Supabase roles, NOLOGIN', async () => {
    const r = await db.client.query<{ rolname: string; rolcanlogin: boolean }>(
      `SELECT rolname, rolcanlogin FROM pg_roles
       WHERE rolname IN ('anon', 'authenticated', 'service_role') ORDER BY rolname`,
    );
    expect(r.rows.map((x) => x.rolname)).toEqual(['anon', 'authenticated', 'service_role']);
  });

  it('creates every table with its primary key, RLS enabled and a comment on the observation tables', async () => {
    const r = await db.client.query<{ relname: string; relrowsecurity: boolean; pk: string | null }>(
      `SELECT c.relname, c.relrowsecurity,
              (SELECT string_agg(a.attname, ',' ORDER BY k.n)
                 FROM pg_constraint p
                 CROSS JOIN LATERAL unnest(p.conkey) WITH ORDINALITY AS k(attnum, n)
                 JOIN pg_attribute a ON a.attrelid = p.conrelid AND a.attnum = k.attnum
                WHERE p.conrelid = c.oid AND p.contype = 'p') AS pk
       FROM pg_class c
       WHERE c.relnamespace = 'public'::regnamespace AND c.relkind = 'r' AND c.relname = ANY($1)
       ORDER BY c.relname`,
      [DEMO_TABLES],
    );
    expect(r.rows).toEqual(
      [
        { relname: 'gasifier_alerts', relrowsecurity: true, pk: 'alert_id' },
        { relname: 'gasifier_observations', relrowsecurity: true, pk: 'observation_id' },
        { relname: 'petri_observation_images', relrowsecurity: true, pk: 'image_id' },
        { relname: 'petri_observations', relrowsecurity: true, pk: 'observation_id' },
        { relname: 'pilot_programs', relrowsecurity: true, pk: 'program_id' },
        { relname: 'sites', relrowsecurity: true, pk: 'site_id' },
      ],
    );
    for (const t of ['petri_observations', 'gasifier_observations']) {
      const c = await one<{ d: string | null }>(db.client, `SELECT obj_description($1::regclass, 'pg_class') AS d`, [
        `public.${t}`,
      ]);
      expect(c.d).toBeTruthy();
    }
  });

  it('creates the foreign keys, including the inbound ones on the observation tables', async () => {
    const r = await db.client.query<{ child: string; cols: string; parent: string; del: string }>(
      `SELECT conrelid::regclass::text AS child, confrelid::regclass::text AS parent, confdeltype AS del,
              (SELECT string_agg(a.attname, ',' ORDER BY k.n)
                 FROM unnest(conkey) WITH ORDINALITY AS k(attnum, n)
                 JOIN pg_attribute a ON a.attrelid = conrelid AND a.attnum = k.attnum) AS cols
       FROM pg_constraint
       WHERE contype = 'f' AND connamespace = 'public'::regnamespace AND convalidated
       ORDER BY 1, 4`,
    );
    expect(r.rows).toEqual([
      { child: 'gasifier_alerts', cols: 'observation_id', parent: 'gasifier_observations', del: 'a' },
      { child: 'gasifier_observations', cols: 'program_id', parent: 'pilot_programs', del: 'a' },
      { child: 'gasifier_observations', cols: 'site_id', parent: 'sites', del: 'a' },
      { child: 'petri_observation_images', cols: 'observation_id', parent: 'petri_observations', del: 'c' },
      { child: 'petri_observations', cols: 'program_id', parent: 'pilot_programs', del: 'a' },
      { child: 'petri_observations', cols: 'site_id', parent: 'sites', del: 'a' },
      { child: 'sites', cols: 'program_id', parent: 'pilot_programs', del: 'c' },
    ]);
  });

  it('creates the secondary indexes of the observation tables', async () => {
    const r = await db.client.query<{ tablename: string; indexdef: string }>(
      `SELECT tablename, indexdef FROM pg_indexes
       WHERE schemaname = 'public' AND tablename IN ('petri_observations', 'gasifier_observations')`,
    );
    const cols = (t: string) =>
      r.rows.filter((x) => x.tablename === t).map((x) => /USING btree \((.*)\)$/.exec(x.indexdef)?.[1]).sort();
    expect(cols('petri_observations')).toEqual(['created_at', 'observation_id', 'program_id, created_at', 'site_id']);
    expect(cols('gasifier_observations')).toEqual(['observation_id', 'program_id, created_at', 'site_id']);
  });

  it('gives petri a bigserial and gasifier an identity, both past the loaded rows', async () => {
    const serial = await one<{ seq: string | null; def: string | null }>(
      db.client,
      `SELECT pg_get_serial_sequence('public.petri_observations', 'observation_seq') AS seq,
              (SELECT column_default FROM information_schema.columns
                WHERE table_schema = 'public' AND table_name = 'petri_observations'
                  AND column_name = 'observation_seq') AS def`,
    );
    expect(serial.seq).toBe('public.petri_observations_observation_seq_seq');
    expect(serial.def).toMatch(/^nextval\('petri_observations_observation_seq_seq'::regclass\)$/);

    const identity = await one<{ is_identity: string; identity_generation: string }>(
      db.client,
      `SELECT is_identity, identity_generation FROM information_schema.columns
       WHERE table_schema = 'public' AND table_name = 'gasifier_observations' AND column_name = 'reading_no'`,
    );
    expect(identity).toEqual({ is_identity: 'YES', identity_generation: 'BY DEFAULT' });

    const seqs = await one<{ petri_max: string; petri_last: string; gas_max: string; gas_last: string }>(
      db.client,
      `SELECT (SELECT max(observation_seq) FROM public.petri_observations) AS petri_max,
              (SELECT last_value FROM public.petri_observations_observation_seq_seq) AS petri_last,
              (SELECT max(reading_no) FROM public.gasifier_observations) AS gas_max,
              (SELECT last_value FROM public.gasifier_observations_reading_no_seq) AS gas_last`,
    );
    expect(seqs).toEqual({ petri_max: String(ROWS), petri_last: String(ROWS), gas_max: String(ROWS / 2), gas_last: String(ROWS / 2) });
  });

  it('keeps updated_at current through the shared set_updated_at trigger', async () => {
    const r = await db.client.query<{ relname: string; fn: string; timing: number }>(
      `SELECT c.relname, t.tgfoid::regprocedure::text AS fn, t.tgtype::int AS timing
       FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
       WHERE t.tgname = 'set_updated_at' AND NOT t.tgisinternal
         AND c.relname IN ('petri_observations', 'gasifier_observations')
       ORDER BY 1`,
    );
    expect(r.rows.map((x) => [x.relname, x.fn])).toEqual([
      ['gasifier_observations', 'set_updated_at()'],
      ['petri_observations', 'set_updated_at()'],
    ]);
    // tgtype: ROW (1) | BEFORE (2) | UPDATE (16)
    for (const x of r.rows) expect(x.timing).toBe(1 | 2 | 16);

    await db.client.query('BEGIN');
    try {
      const u = await one<{ fresh: boolean }>(
        db.client,
        `UPDATE public.petri_observations SET notes = 'checked'
         WHERE observation_seq = 1 RETURNING updated_at = now() AS fresh`,
      );
      expect(u.fresh).toBe(true);
    } finally {
      await db.client.query('ROLLBACK');
    }
  });

  it('installs Supabase-style policies and grants', async () => {
    const p = await db.client.query<{ policyname: string; cmd: string; roles: string }>(
      `SELECT policyname, cmd, roles::text AS roles FROM pg_policies
       WHERE schemaname = 'public' AND tablename = 'petri_observations' ORDER BY policyname`,
    );
    expect(p.rows).toEqual([
      { policyname: 'petri_all_service', cmd: 'ALL', roles: '{service_role}' },
      { policyname: 'petri_select_authenticated', cmd: 'SELECT', roles: '{authenticated}' },
    ]);
    const g = await db.client.query<{ name: string; policies: string }>(
      `SELECT tablename AS name, count(*)::text AS policies FROM pg_policies
       WHERE schemaname = 'public' GROUP BY 1 ORDER BY 1`,
    );
    expect(g.rows.map((x) => x.name)).toEqual([...DEMO_TABLES].sort());

    for (const t of ['petri_observations', 'gasifier_observations']) {
      const privs = await one<Record<string, boolean>>(
        db.client,
        `SELECT has_table_privilege('authenticated', $1, 'SELECT') AS auth_select,
                has_table_privilege('authenticated', $1, 'INSERT') AS auth_insert,
                has_table_privilege('service_role', $1, 'INSERT') AS service_insert,
                has_table_privilege('service_role', $1, 'UPDATE') AS service_update,
                has_table_privilege('service_role', $1, 'DELETE') AS service_delete,
                has_table_privilege('anon', $1, 'SELECT') AS anon_select`,
        [`public.${t}`],
      );
      expect(privs).toEqual({
        auth_select: true,
        auth_insert: false,
        service_insert: true,
        service_update: true,
        service_delete: true,
        anon_select: false,
      });
    }
  });

  it('creates the two views, readable by authenticated', async () => {
    for (const v of ['petri_observations_summary', 'recent_gasifier_anomalies']) {
      const r = await one<{ kind: string; can: boolean }>(
        db.client,
        `SELECT c.relkind::text AS kind, has_table_privilege('authenticated', c.oid, 'SELECT') AS can
         FROM pg_class c WHERE c.oid = to_regclass($1)`,
        [`public.${v}`],
      );
      expect(r).toEqual({ kind: 'v', can: true });
    }
    const s = await one<{ total: string; months: string }>(
      db.client,
      `SELECT sum(observation_count)::text AS total, count(DISTINCT month)::text AS months
       FROM public.petri_observations_summary`,
    );
    expect(s.total).toBe(String(ROWS));
    expect(Number(s.months)).toBe(23); // 2024-01 .. 2025-11
    const a = await one<{ n: string; named: string; anomalies: string }>(
      db.client,
      `SELECT count(*)::text AS n, count(program_name)::text AS named,
              (SELECT count(*) FROM public.gasifier_observations WHERE anomaly)::text AS anomalies
       FROM public.recent_gasifier_anomalies`,
    );
    expect(a.n).toBe(a.anomalies);
    expect(a.named).toBe(a.n);
  });

  it('fills exactly rows petri and rows/2 gasifier observations inside 2024-01-01 .. 2025-12-01', async () => {
    for (const t of ['petri_observations', 'gasifier_observations']) {
      const r = await one<{ n: string; early: string; late: string }>(
        db.client,
        `SELECT count(*)::text AS n,
                count(*) FILTER (WHERE created_at < '2024-01-01 00:00:00+00')::text AS early,
                count(*) FILTER (WHERE created_at >= '2025-12-01 00:00:00+00')::text AS late
         FROM public.${t}`,
      );
      expect(r).toEqual({ n: String(t === 'petri_observations' ? ROWS : ROWS / 2), early: '0', late: '0' });
    }
  });

  it('spreads rows over ~20 programs, every program with petri rows, and grows over time', async () => {
    const r = await one<{ programs: string; with_petri: string; sites: string; first_half: string; second_half: string }>(
      db.client,
      `SELECT (SELECT count(*) FROM public.pilot_programs)::text AS programs,
              (SELECT count(DISTINCT program_id) FROM public.petri_observations)::text AS with_petri,
              (SELECT count(*) FROM public.sites)::text AS sites,
              (SELECT count(*) FROM public.petri_observations WHERE created_at < '2024-12-15')::text AS first_half,
              (SELECT count(*) FROM public.petri_observations WHERE created_at >= '2024-12-15')::text AS second_half`,
    );
    expect(Number(r.programs)).toBe(20);
    expect(r.with_petri).toBe(r.programs);
    expect(Number(r.sites)).toBe(200);
    expect(Number(r.second_half)).toBeGreaterThan(Number(r.first_half));

    const mismatched = await one<{ n: string }>(
      db.client,
      `SELECT count(*)::text AS n FROM public.petri_observations o JOIN public.sites s USING (site_id)
       WHERE s.program_id <> o.program_id`,
    );
    expect(mismatched.n).toBe('0');

    const g = await one<{ lo: string; hi: string; scale: number; nulls: string }>(
      db.client,
      `SELECT min(growth_index)::text AS lo, max(growth_index)::text AS hi,
              max(scale(growth_index)) AS scale, count(*) FILTER (WHERE growth_index IS NULL)::text AS nulls
       FROM public.petri_observations`,
    );
    expect(Number(g.lo)).toBeGreaterThanOrEqual(0);
    expect(Number(g.hi)).toBeLessThanOrEqual(100);
    expect(Number(g.hi)).toBeGreaterThan(90);
    expect(g.scale).toBe(2);

    const ordered = await one<{ n: string }>(
      db.client,
      `SELECT count(*)::text AS n FROM (
         SELECT created_at < lag(created_at) OVER (ORDER BY observation_seq) AS back FROM public.petri_observations) s
       WHERE back`,
    );
    expect(ordered.n).toBe('0');
  });

  it('links ~3% of petri rows to images carrying their created_at, and alerts to the anomalies', async () => {
    const i = await one<{ images: string; mismatched: string }>(
      db.client,
      `SELECT count(*)::text AS images,
              count(*) FILTER (WHERE i.observation_created_at IS DISTINCT FROM o.created_at)::text AS mismatched
       FROM public.petri_observation_images i JOIN public.petri_observations o USING (observation_id)`,
    );
    expect(i.mismatched).toBe('0');
    expect(Number(i.images) / ROWS).toBeGreaterThan(0.02);
    expect(Number(i.images) / ROWS).toBeLessThan(0.045);

    const a = await one<{ alerts: string; anomalies: string; unmatched: string }>(
      db.client,
      `SELECT (SELECT count(*) FROM public.gasifier_alerts)::text AS alerts,
              (SELECT count(*) FROM public.gasifier_observations WHERE anomaly)::text AS anomalies,
              (SELECT count(*) FROM public.gasifier_alerts a JOIN public.gasifier_observations g USING (observation_id)
                WHERE NOT g.anomaly OR g.program_id <> a.program_id)::text AS unmatched`,
    );
    expect(a.alerts).toBe(a.anomalies);
    expect(a.unmatched).toBe('0');
    expect(Number(a.anomalies) / (ROWS / 2)).toBeGreaterThan(0.01);
    expect(Number(a.anomalies) / (ROWS / 2)).toBeLessThan(0.035);
  });

  it('makes the same data in another database', async () => {
    const other = await freshDatabase('demo_schema_again');
    try {
      await createDemoDatabase(other.client, { rows: ROWS });
      for (const [table, key] of [
        ['pilot_programs', 'program_id'],
        ['sites', 'site_id'],
        ['petri_observations', 'observation_id'],
        ['gasifier_observations', 'observation_id'],
        ['petri_observation_images', 'image_id'],
      ] as const) {
        expect(await tableMd5(other.client, table, key), table).toBe(await tableMd5(db.client, table, key));
      }
    } finally {
      await other.drop();
    }
  });

  it('refuses to run again on a database that has the demo tables, and changes nothing', async () => {
    await expect(createDemoDatabase(db.client, { rows: 10 })).rejects.toThrow(
      /already has public\.petri_observations; refusing/,
    );
    const n = await one<{ n: string }>(db.client, 'SELECT count(*)::text AS n FROM public.petri_observations');
    expect(n.n).toBe(String(ROWS));
    const tx = await one<{ s: string }>(db.client, `SELECT pg_catalog.current_setting('transaction_isolation') AS s`);
    expect(tx.s).toBeTruthy(); // the connection is still usable
  });

  it('rejects a row count that is not a positive integer', async () => {
    await expect(createDemoDatabase(db.client, { rows: 0 })).rejects.toThrow(/positive integer/);
    await expect(createDemoDatabase(db.client, { rows: 1.5 })).rejects.toThrow(/positive integer/);
  });
});

describe('DEMO_SCHEMA_SQL', () => {
  it('creates the whole empty schema in one transaction on an empty database', async () => {
    const db = await freshDatabase('demo_ddl');
    try {
      await db.client.query('BEGIN');
      await db.client.query(DEMO_SCHEMA_SQL);
      await db.client.query('COMMIT');
      const r = await db.client.query<{ relname: string; relkind: string }>(
        `SELECT relname, relkind::text FROM pg_class
         WHERE relnamespace = 'public'::regnamespace AND relkind IN ('r', 'v') ORDER BY relname`,
      );
      expect(r.rows.map((x) => x.relname)).toEqual(
        [...DEMO_TABLES, 'petri_observations_summary', 'recent_gasifier_anomalies'].sort(),
      );
      // a row inserted through the defaults gets an id, a serial and an identity
      const p = await one<{ program_id: string }>(
        db.client,
        `INSERT INTO public.pilot_programs (name) VALUES ('x') RETURNING program_id`,
      );
      const s = await one<{ site_id: string }>(
        db.client,
        `INSERT INTO public.sites (program_id, name, site_code) VALUES ($1, 's', 'S') RETURNING site_id`,
        [p.program_id],
      );
      const o = await one<{ observation_seq: string }>(
        db.client,
        `INSERT INTO public.petri_observations (program_id, site_id, petri_code) VALUES ($1, $2, 'P')
         RETURNING observation_seq`,
        [p.program_id, s.site_id],
      );
      expect(o.observation_seq).toBe('1');
      const g = await one<{ reading_no: string }>(
        db.client,
        `INSERT INTO public.gasifier_observations (program_id, site_id, gasifier_code) VALUES ($1, $2, 'G')
         RETURNING reading_no`,
        [p.program_id, s.site_id],
      );
      expect(g.reading_no).toBe('1');
    } finally {
      await db.drop();
    }
  });
});

describe('seed plan SQL files', () => {
  const SQL_DIR = new URL('../examples/seed-plan/sql/', import.meta.url);
  // The plan's order: report tables, dashboards (which reference saved_reports), then the views.
  // Sorting the names would run 034/035/036 before 20250716 and fail.
  const FILES = [
    '20250716_report_management_schema.sql',
    '035_create_dashboard_schema.sql',
    '034_create_petri_observations_with_names_view.sql',
    '036_create_gasifier_observations_with_names_view.sql',
  ];
  const NEW_TABLES = [
    'dashboard_permissions',
    'dashboard_widgets',
    'dashboards',
    'report_data_snapshots',
    'report_folder_permissions',
    'report_folders',
    'report_version_history',
    'saved_reports',
  ];
  let db: FreshDb;

  beforeAll(async () => {
    db = await freshDatabase('demo_plan_sql');
    await createDemoDatabase(db.client, { rows: 2_000 });
    for (const f of FILES) {
      const sql = await readFile(new URL(f, SQL_DIR), 'utf8');
      expect(sql, f).not.toMatch(/^\s*\\/m); // no psql meta-commands
      expect(sql, f).not.toMatch(/^\s*(BEGIN|COMMIT)\s*;/im); // the runner owns the transaction
      await db.client.query('BEGIN');
      try {
        await db.client.query(sql);
        await db.client.query('COMMIT');
      } catch (error) {
        await db.client.query('ROLLBACK');
        throw new Error(`${f}: ${(error as Error).message}`, { cause: error });
      }
    }
  });
  afterAll(async () => {
    await db?.drop();
  });

  it('creates the 8 report and dashboard tables, all with row level security', async () => {
    const r = await db.client.query<{ relname: string; relrowsecurity: boolean }>(
      `SELECT relname, relrowsecurity FROM pg_class
       WHERE relnamespace = 'public'::regnamespace AND relkind = 'r'
         AND (relname LIKE 'report%' OR relname LIKE 'dashboard%' OR relname = 'saved_reports')
       ORDER BY relname`,
    );
    expect(r.rows).toEqual(NEW_TABLES.map((relname) => ({ relname, relrowsecurity: true })));
    const p = await one<{ n: string }>(
      db.client,
      `SELECT count(DISTINCT tablename)::text AS n FROM pg_policies WHERE tablename = ANY($1)`,
      [NEW_TABLES],
    );
    expect(p.n).toBe('8');
  });

  it('creates the two views over the observation tables, by their public names', async () => {
    for (const [view, table] of [
      ['petri_observations_with_names', 'petri_observations'],
      ['gasifier_observations_with_names', 'gasifier_observations'],
    ] as const) {
      const r = await one<{ kind: string; uses: boolean; rows: string; base: string; can: boolean }>(
        db.client,
        `SELECT c.relkind::text AS kind,
                EXISTS (SELECT 1 FROM pg_depend d JOIN pg_rewrite w ON w.oid = d.objid
                         WHERE w.ev_class = c.oid AND d.refobjid = to_regclass($2)) AS uses,
                (SELECT count(*) FROM public.${view})::text AS rows,
                (SELECT count(*) FROM public.${table})::text AS base,
                has_table_privilege('authenticated', c.oid, 'SELECT') AS can
         FROM pg_class c WHERE c.oid = to_regclass($1)`,
        [`public.${view}`, `public.${table}`],
      );
      expect(r).toEqual({ kind: 'v', uses: true, rows: r.base, base: r.base, can: true });
    }
  });

  it('lets an authenticated user work through the policies without recursion', async () => {
    const me = '11111111-2222-3333-4444-555555555555';
    await db.client.query('BEGIN');
    try {
      await db.client.query(`SELECT set_config('role', 'authenticated', true),
                                    set_config('request.jwt.claim.sub', $1, true)`, [me]);
      const f = await one<{ folder_id: string }>(
        db.client,
        `INSERT INTO public.report_folders (name, created_by) VALUES ('Mine', $1) RETURNING folder_id`,
        [me],
      );
      const rep = await one<{ report_id: string }>(
        db.client,
        `INSERT INTO public.saved_reports (folder_id, name, created_by) VALUES ($1, 'Growth', $2) RETURNING report_id`,
        [f.folder_id, me],
      );
      await db.client.query(
        `INSERT INTO public.report_version_history (report_id, version_number, configuration, created_by)
         VALUES ($1, 1, '{}', $2)`,
        [rep.report_id, me],
      );
      const d = await one<{ dashboard_id: string }>(
        db.client,
        `INSERT INTO public.dashboards (name, created_by) VALUES ('Main', $1) RETURNING dashboard_id`,
        [me],
      );
      await db.client.query(
        `INSERT INTO public.dashboard_widgets (dashboard_id, report_id, widget_type) VALUES ($1, $2, 'report')`,
        [d.dashboard_id, rep.report_id],
      );
      for (const t of [...NEW_TABLES, 'petri_observations_with_names', 'gasifier_observations_with_names']) {
        await db.client.query(`SELECT count(*) FROM public.${t}`);
      }
      const seen = await one<{ n: string }>(
        db.client,
        `SELECT count(*)::text AS n FROM public.dashboard_widgets w JOIN public.saved_reports r USING (report_id)`,
      );
      expect(seen.n).toBe('1');
    } finally {
      await db.client.query('ROLLBACK');
    }
  });
});
