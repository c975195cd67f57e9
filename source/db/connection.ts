import pg from 'pg';
import os from 'node:os';
import { UserError } from '../engine/errors.js';

/** Everything needed to reach the database, with the secret kept out of every printable form. */
export interface ConnectionInfo {
  readonly config: pg.ClientConfig;
  /** host:port/database as user, never with a password */
  readonly display: string;
  /** the password, if any, so output paths can scrub it */
  readonly secret?: string;
  /** environment for child processes (pg_dump, pg_restore, psql): PG* variables, password in PGPASSWORD */
  readonly childEnv: Record<string, string>;
}

const known = new Set<string>();

/** Replaces every password seen in this process (and any user:password@ in a URL) with ****. */
export function redact(text: string): string {
  let out = text.replace(/(postgres(?:ql)?:\/\/[^:/@\s]*):([^@\s]*)@/gi, '$1:****@');
  out = out.replace(/(password\s*=\s*)('[^']*'|\S+)/gi, '$1****');
  for (const s of known) if (s.length >= 3) out = out.split(s).join('****');
  return out;
}

export function rememberSecret(secret: string | undefined): void {
  if (secret) known.add(secret);
}

/** `--db URL`, else DATABASE_URL, else libpq's PG* variables (PGHOST, PGPORT, PGDATABASE, PGUSER, PGPASSWORD, PGSSLMODE). */
export function resolveConnection(dbUrl: string | undefined, env: NodeJS.ProcessEnv = process.env): ConnectionInfo {
  const url = dbUrl ?? env.DATABASE_URL;
  let host: string, port: number, database: string, user: string, password: string | undefined, sslmode: string | undefined;
  if (url) {
    let u: URL;
    try {
      u = new URL(url);
    } catch {
      throw new UserError(`the database URL is not a valid URL: ${redact(url)}`, 'use postgres://user:password@host:5432/dbname', 2);
    }
    if (u.protocol !== 'postgres:' && u.protocol !== 'postgresql:') {
      throw new UserError(`the database URL must start with postgres:// or postgresql://, got ${u.protocol}//`, 'use postgres://user:password@host:5432/dbname', 2);
    }
    host = decodeURIComponent(u.hostname) || u.searchParams.get('host') || env.PGHOST || 'localhost';
    port = u.port ? Number(u.port) : Number(env.PGPORT || 5432);
    database = decodeURIComponent(u.pathname.replace(/^\//, '')) || env.PGDATABASE || 'postgres';
    user = decodeURIComponent(u.username) || env.PGUSER || os.userInfo().username;
    password = u.password ? decodeURIComponent(u.password) : env.PGPASSWORD;
    sslmode = u.searchParams.get('sslmode') ?? env.PGSSLMODE;
  } else {
    host = env.PGHOST || 'localhost';
    port = Number(env.PGPORT || 5432);
    database = env.PGDATABASE || env.PGUSER || os.userInfo().username;
    user = env.PGUSER || os.userInfo().username;
    password = env.PGPASSWORD;
    sslmode = env.PGSSLMODE;
  }
  if (!Number.isInteger(port) || port <= 0 || port > 65535) {
    throw new UserError(`the database port is not a valid port: ${port}`, 'use a port between 1 and 65535', 2);
  }
  rememberSecret(password);
  let ssl: pg.ClientConfig['ssl'];
  switch (sslmode) {
    case undefined: case '': case 'disable': case 'allow': case 'prefer': ssl = undefined; break;
    case 'require': ssl = { rejectUnauthorized: false }; break;
    case 'verify-ca': case 'verify-full': ssl = { rejectUnauthorized: true }; break;
    default: throw new UserError(`unknown sslmode "${sslmode}"`, 'use one of disable, require, verify-ca, verify-full', 2);
  }
  const config: pg.ClientConfig = { host, port, database, user, password, ssl, connectionTimeoutMillis: 10_000 };
  const childEnv: Record<string, string> = { PGHOST: host, PGPORT: String(port), PGDATABASE: database, PGUSER: user };
  if (password) childEnv.PGPASSWORD = password;
  if (sslmode) childEnv.PGSSLMODE = sslmode;
  const shownHost = host.startsWith('/') ? `socket ${host}` : host;
  return { config, display: `${user}@${shownHost}:${port}/${database}`, secret: password, childEnv };
}

/** Turns a connection failure into one line with the cause and a hint. */
export function connectionError(err: unknown, info: ConnectionInfo): UserError {
  const e = err as { code?: string; message?: string };
  const where = info.display;
  const msg = redact(String(e?.message ?? err));
  switch (e?.code) {
    case 'ECONNREFUSED':
      return new UserError(`cannot connect to ${where}: connection refused`, 'is the server running and listening on that host and port?', 1);
    case 'ENOTFOUND': case 'EAI_AGAIN':
      return new UserError(`cannot connect to ${where}: host not found`, 'check the host name in --db / DATABASE_URL / PGHOST', 1);
    case '28P01':
      return new UserError(`cannot connect to ${where}: password authentication failed`, 'check the user and password (the password is never printed)', 1);
    case '28000':
      return new UserError(`cannot connect to ${where}: ${msg}`, 'the server refused this user or host: check pg_hba.conf and the user name', 1);
    case '3D000':
      return new UserError(`cannot connect to ${where}: database does not exist`, 'check the database name, or create it first', 1);
    case 'ETIMEDOUT':
      return new UserError(`cannot connect to ${where}: timed out`, 'check the host, the port and any firewall', 1);
  }
  if (/timeout/i.test(msg)) return new UserError(`cannot connect to ${where}: timed out`, 'check the host, the port and any firewall', 1);
  if (/SSL/i.test(msg)) return new UserError(`cannot connect to ${where}: ${msg}`, 'try sslmode=require (Supabase needs it) or sslmode=disable for a local server', 1);
  return new UserError(`cannot connect to ${where}: ${msg}`, 'check --db / DATABASE_URL / PG* variables', 1);
}
