import pg from 'pg';
import { inject } from 'vitest';
import { randomBytes } from 'node:crypto';

export interface FreshDb {
  /** URL of the new database (with the test server's password) */
  readonly url: string;
  readonly name: string;
  readonly client: pg.Client;
  drop(): Promise<void>;
}

export function serverUrl(): string {
  return inject('pgUrl');
}

export function urlFor(database: string): string {
  const u = new URL(serverUrl());
  u.pathname = '/' + database;
  return u.toString();
}

/** Creates an empty database on the shared test server, named after the test (plus a random suffix). */
export async function freshDatabase(name: string): Promise<FreshDb> {
  const dbName = `t_${name.toLowerCase().replace(/[^a-z0-9]+/g, '_').slice(0, 40)}_${randomBytes(3).toString('hex')}`;
  const admin = new pg.Client({ connectionString: serverUrl() });
  await admin.connect();
  await admin.query(`CREATE DATABASE "${dbName}"`);
  await admin.end();
  const url = urlFor(dbName);
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  return {
    url,
    name: dbName,
    client,
    async drop() {
      await client.end().catch(() => {});
      const a = new pg.Client({ connectionString: serverUrl() });
      await a.connect();
      await a.query(`DROP DATABASE IF EXISTS "${dbName}" WITH (FORCE)`);
      await a.end();
    },
  };
}

/** Drops roles a test created (cluster-wide, so never left behind), ignoring ones already gone. */
export async function dropRoles(...roles: string[]): Promise<void> {
  const a = new pg.Client({ connectionString: serverUrl() });
  await a.connect();
  try {
    for (const r of roles) await a.query(`DROP ROLE IF EXISTS "${r.replace(/"/g, '""')}"`).catch(() => {});
  } finally {
    await a.end();
  }
}
