import type { TestProject } from 'vitest/node';
import { execFileSync } from 'node:child_process';
import { startEmbedded, type EmbeddedServer } from '../source/demo/embedded.js';

declare module 'vitest' {
  export interface ProvidedContext {
    pgUrl: string;
    pgMajor: number;
    pgDumpMajor: number | null;
  }
}

let server: EmbeddedServer | null = null;

function pgDumpMajor(): number | null {
  try {
    const out = execFileSync('pg_dump', ['--version'], { encoding: 'utf8' });
    const m = /(\d+)(?:\.\d+)?/.exec(out.replace(/^[^\d]*/, ''));
    return m ? Number(m[1]) : null;
  } catch {
    return null;
  }
}

/**
 * One real PostgreSQL for the whole run: PGSHIFT_TEST_DATABASE_URL when set (any server), else an embedded server
 * of major PGSHIFT_TEST_PG_MAJOR (15 or 17), by default the major of the pg_dump on PATH (15 on these machines) so
 * backup and restore tests run. Each test file creates its own database on it (test/helpers/db.ts).
 */
export default async function setup(project: TestProject) {
  let url = process.env.PGSHIFT_TEST_DATABASE_URL;
  if (!url) {
    const major = process.env.PGSHIFT_TEST_PG_MAJOR ? Number(process.env.PGSHIFT_TEST_PG_MAJOR) : (pgDumpMajor() ?? 15);
    server = await startEmbedded({ major: major === 17 ? 17 : 15 });
    url = server.url;
  }
  const pg = (await import('pg')).default;
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  const r = await c.query<{ n: string }>(`SELECT current_setting('server_version_num') AS n`);
  await c.end();
  project.provide('pgUrl', url);
  project.provide('pgMajor', Math.floor(Number(r.rows[0]!.n) / 10000));
  project.provide('pgDumpMajor', pgDumpMajor());
  return async () => {
    await server?.stop();
  };
}
