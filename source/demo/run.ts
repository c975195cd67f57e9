import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { startEmbedded, type EmbeddedServer } from './embedded.js';
import { createDemoDatabase } from './schema.js';
import { resolveConnection } from '../db/connection.js';
import { loadPlan } from '../plan/load.js';
import { examplePlanPath } from '../paths.js';
import { runEngine, type Io } from '../run.js';
import { ALL_PHASES, operatorName } from '../engine/engine.js';
import { UserError } from '../engine/errors.js';
import { connectionError } from '../db/connection.js';
import { fmtDuration } from '../format.js';

export interface DemoOptions {
  readonly rows: number;
  readonly headless: boolean;
  readonly json: boolean;
  readonly keep: boolean;
  readonly dataDir?: string;
  readonly db?: string;
  readonly until?: number;
}

/**
 * How to connect to the demo with psql: the password is the demo cluster's own throwaway one (random per cluster),
 * printed as a separate export the user copies. Never used for a database the user gave (--db).
 */
export function psqlLines(port: number, password: string): string[] {
  return [
    'connect to the demo database with psql (the demo\'s own throwaway password):',
    `  export PGPASSWORD='${password.replace(/'/g, "'\\''")}'`,
    `  psql -h 127.0.0.1 -p ${port} -U postgres pgshift_demo`,
  ];
}

function printPsql(io: Io, json: boolean, port: number, password: string): void {
  const write = json ? (l: string) => process.stderr.write(l + '\n') : io.raw ?? io.out;
  for (const l of psqlLines(port, password)) write(l);
}

/** Embedded server (or the given empty database) + the seeds' schema and data + the example plan. */
export async function runDemo(o: DemoOptions, io: Io): Promise<number> {
  let server: EmbeddedServer | null = null;
  let url: string;
  const note = (s: string) => (o.json ? io.err(s) : io.out(s));
  const cleanup = async () => {
    if (server) {
      note(o.keep ? `embedded PostgreSQL stopped; data kept in ${server.dataDir}` : 'embedded PostgreSQL stopped and its data removed');
      await server.stop();
      server = null;
    }
  };
  const onExit = () => {
    void cleanup().finally(() => process.exit(130));
  };
  try {
    if (o.db) {
      url = o.db;
    } else {
      note('starting an embedded PostgreSQL…');
      server = await startEmbedded({ dataDir: o.dataDir, keep: o.keep });
      process.once('SIGHUP', onExit);
      const admin = new pg.Client({ connectionString: server.url });
      await admin.connect();
      const exists = await admin.query(`SELECT 1 FROM pg_database WHERE datname = 'pgshift_demo'`);
      if (!exists.rowCount) await admin.query('CREATE DATABASE pgshift_demo');
      await admin.end();
      url = server.url.replace(/\/postgres$/, '/pgshift_demo');
      note(`embedded PostgreSQL on port ${server.port}, data in ${server.dataDir}${o.keep ? ' (kept on exit)' : ' (removed on exit)'}`);
      printPsql(io, o.json, server.port, server.password);
    }
    const conn = resolveConnection(url, io.env);
    const client = new pg.Client(conn.config);
    try {
      await client.connect();
    } catch (e) {
      throw connectionError(e, conn);
    }
    try {
      const has = await client.query<{ present: boolean }>(`SELECT to_regclass('public.petri_observations') IS NOT NULL AS present`);
      if (has.rows[0]?.present) {
        if (server && o.dataDir) note('demo data already present (kept data dir): continuing with it');
        else throw new UserError(`${conn.display} already has a public.petri_observations table`, 'the demo fills an empty database: create a new one (createdb pgshift_demo) and pass its URL', 2);
      } else {
        note(`filling ${conn.display} with the seeds' schema: ${o.rows.toLocaleString('en-US')} petri + ${Math.floor(o.rows / 2).toLocaleString('en-US')} gasifier observations…`);
        const r = await createDemoDatabase(client, { rows: o.rows, onProgress: (m) => note(`  ${m}`) });
        note(`demo data ready in ${fmtDuration(r.ms)} (${r.petri.toLocaleString('en-US')} petri, ${r.gasifier.toLocaleString('en-US')} gasifier rows)`);
      }
    } finally {
      await client.end();
    }
    const loaded = loadPlan(examplePlanPath());
    // a throwaway database: its backups go to the temp dir, not into the example folder
    const backupDir = server ? path.join(path.dirname(server.dataDir), `${path.basename(server.dataDir)}-backups`) : fs.mkdtempSync(path.join(os.tmpdir(), 'pgshift-demo-backups-'));
    const demoLoaded = { ...loaded, plan: { ...loaded.plan, backup: { ...loaded.plan.backup, directory: backupDir } } };
    const phases = o.until ? ALL_PHASES.filter((p) => (p as number) <= o.until!) : [...ALL_PHASES];
    const code = await runEngine({
      conn, loaded: demoLoaded, phases, headless: o.headless, json: o.json, confirms: new Set(), overrides: new Set(['force-retention']),
      demo: true, operator: operatorName(),
    }, io);
    if (!o.keep) fs.rmSync(backupDir, { recursive: true, force: true });
    else {
      note(`demo backups kept in ${backupDir}`);
      if (server) printPsql(io, o.json, server.port, server.password);
    }
    return code;
  } finally {
    process.off('SIGHUP', onExit);
    await cleanup();
  }
}
