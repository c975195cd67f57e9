import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import crypto from 'node:crypto';
import { execFile } from 'node:child_process';
import { loadExeca } from './execa.js';
import type { ConnectionInfo } from './db/connection.js';
import { redact } from './db/connection.js';

/**
 * pg_dump / pg_restore, the one place pgshift starts them. The password reaches them only through PGPASSWORD in
 * their environment (ConnectionInfo.childEnv), never in argv (visible in `ps`), never in a log line.
 */

/** Phase 1's backup (artifact `backup`): the pg_dump archive and what its verification found. */
export interface BackupArtifact {
  readonly file: string;
  readonly bytes: number;
  readonly sha256: string;
  readonly startedAt: string;
  readonly endedAt: string;
  readonly format: 'custom' | 'directory';
  readonly serverMajor: number;
  readonly pgDumpVersion: string | null;
  readonly database: string;
  readonly verified: boolean;
  readonly verifiedAt?: string;
  readonly verifyMethod?: 'list' | 'restore';
  readonly verifyError?: string;
  /** tables found in the archive (verify) with their exact row counts when restored */
  readonly tables?: { table: string; rows?: number }[];
  /** exact row counts taken in the dump's own snapshot (verify: restore) */
  readonly snapshotCounts?: Record<string, number>;
}

export interface ToolVersion { readonly tool: string; readonly version: string; readonly major: number }

/** `pg_dump (PostgreSQL) 15.18 (Debian …)` → 15; `9.6.2` → 9. */
export function parseToolVersion(out: string): { version: string; major: number } | null {
  const m = /\(PostgreSQL\)\s+(\d+)(?:\.(\d+))?/.exec(out) ?? /(\d+)(?:\.(\d+))?/.exec(out);
  if (!m) return null;
  return { version: m[2] !== undefined ? `${m[1]}.${m[2]}` : m[1]!, major: Number(m[1]) };
}

function childEnv(conn: ConnectionInfo, extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  return { ...process.env, ...conn.childEnv, ...extra };
}

/**
 * The tool's version, or null when it is not installed (not on PATH). Through node's own execFile, not execa: a
 * version probe needs nothing more, and importing execa costs ~80 ms of a core, which preflight paid on a host shared
 * with the database (under pgbench, preflight was where the application's longest transaction fell).
 */
export function toolVersion(tool: 'pg_dump' | 'pg_restore', env: NodeJS.ProcessEnv = process.env): Promise<ToolVersion | null> {
  return new Promise((resolve) => {
    execFile(tool, ['--version'], { env, timeout: 15_000, encoding: 'utf8' }, (err, stdout) => {
      if (err) return resolve(null);
      const v = parseToolVersion(stdout);
      resolve(v ? { tool, ...v } : null);
    });
  });
}

export async function sha256File(file: string): Promise<string> {
  const st = await fsp.stat(file);
  const h = crypto.createHash('sha256');
  if (st.isDirectory()) {
    // directory format: hash of every file's name and content, in name order
    for (const name of (await fsp.readdir(file)).sort()) {
      h.update(name + '\0');
      h.update(await sha256File(path.join(file, name)));
    }
    return h.digest('hex');
  }
  await new Promise<void>((resolve, reject) => {
    fs.createReadStream(file).on('data', (b) => h.update(b)).on('end', () => resolve()).on('error', reject);
  });
  return h.digest('hex');
}

export async function sizeOf(file: string): Promise<number> {
  try {
    const st = await fsp.stat(file);
    if (!st.isDirectory()) return st.size;
    let n = 0;
    for (const name of await fsp.readdir(file)) n += await sizeOf(path.join(file, name));
    return n;
  } catch {
    return 0;
  }
}

/** Free bytes for an unprivileged user on the filesystem holding `dir` (or its nearest existing parent). */
export async function freeBytes(dir: string): Promise<{ free: number; at: string }> {
  let d = path.resolve(dir);
  while (!fs.existsSync(d) && path.dirname(d) !== d) d = path.dirname(d);
  const s = await fsp.statfs(d);
  return { free: Number(s.bavail) * Number(s.bsize), at: d };
}

export function backupFileName(database: string, at: Date, format: 'custom' | 'directory'): string {
  const p = (n: number) => String(n).padStart(2, '0');
  const stamp = `${at.getFullYear()}${p(at.getMonth() + 1)}${p(at.getDate())}_${p(at.getHours())}${p(at.getMinutes())}${p(at.getSeconds())}`;
  const safe = database.replace(/[^A-Za-z0-9_.-]+/g, '_');
  return `${safe}_${stamp}${format === 'custom' ? '.dump' : '.dir'}`;
}

export interface DumpOptions {
  readonly conn: ConnectionInfo;
  readonly file: string;
  readonly format: 'custom' | 'directory';
  /** gzip level for pg_dump --compress (pg_dump's own default when absent) */
  readonly compress?: number;
  /** exported snapshot id (pg_export_snapshot): the dump sees exactly that snapshot */
  readonly snapshot?: string;
  readonly signal?: AbortSignal;
  /** called about every 500 ms with the bytes written so far */
  readonly onBytes?: (bytes: number) => void;
  readonly env?: NodeJS.ProcessEnv;
  /** journals the command line (no password: it travels in PGPASSWORD), its duration and any error */
  readonly record?: (command: string, ms: number, error?: string) => Promise<void>;
}

export interface DumpResult { readonly bytes: number; readonly ms: number; readonly stderr: string }

export class ToolError extends Error {
  constructor(message: string, readonly exitCode: number | undefined, readonly stderr: string) {
    super(message);
    this.name = 'ToolError';
  }
}

/** pg_dump into a new file (mode 0600) or directory (mode 0700); a partial file is removed on failure. */
export async function runPgDump(o: DumpOptions): Promise<DumpResult> {
  await fsp.mkdir(path.dirname(o.file), { recursive: true, mode: 0o700 });
  if (o.format === 'custom') {
    // created empty with 0600 before pg_dump opens it: the dump is never readable by others, not even for a moment
    const fh = await fsp.open(o.file, 'wx', 0o600);
    await fh.close();
  } else {
    await fsp.mkdir(o.file, { mode: 0o700 });
  }
  const args = [`--format=${o.format === 'custom' ? 'custom' : 'directory'}`, `--file=${o.file}`, '--no-password', '--verbose'];
  if (o.compress !== undefined) args.push(`--compress=${o.compress}`);
  if (o.snapshot) args.push(`--snapshot=${o.snapshot}`);
  const t0 = performance.now();
  const command = `$ pg_dump ${args.join(' ')}`;
  const timer = setInterval(() => {
    void sizeOf(o.file).then((b) => o.onBytes?.(b));
  }, 500);
  try {
    const execa = await loadExeca();
    const r = await execa('pg_dump', args, { env: o.env ?? childEnv(o.conn), reject: false, cancelSignal: o.signal, forceKillAfterDelay: 5000 });
    const stderr = redact(String(r.stderr ?? ''));
    if (r.exitCode !== 0 || r.isCanceled) {
      throw new ToolError(r.isCanceled ? 'pg_dump was stopped by the operator' : `pg_dump failed (exit ${r.exitCode ?? r.signal}): ${lastLines(stderr)}`, r.exitCode, stderr);
    }
    if (o.format === 'custom') await fsp.chmod(o.file, 0o600);
    const bytes = await sizeOf(o.file);
    o.onBytes?.(bytes);
    await o.record?.(command, performance.now() - t0);
    return { bytes, ms: performance.now() - t0, stderr };
  } catch (e) {
    await fsp.rm(o.file, { recursive: true, force: true }).catch(() => {});
    await o.record?.(command, performance.now() - t0, (e as Error).message).catch(() => {});
    throw e;
  } finally {
    clearInterval(timer);
  }
}

function lastLines(s: string, n = 3): string {
  return s.trim().split('\n').filter((l) => !/^pg_dump: (dumping|reading|identifying|finding|flagging|saving|last built-in|processing|creating)/.test(l)).slice(-n).join(' | ') || s.trim().split('\n').slice(-n).join(' | ');
}

export interface TocEntry { readonly desc: string; readonly schema: string; readonly rest: string; readonly line: string }

/** `pg_restore --list`: the archive's table of contents. Throws ToolError when pg_restore cannot read the file. */
export async function restoreList(file: string, env: NodeJS.ProcessEnv = process.env): Promise<string[]> {
  const execa = await loadExeca();
  const r = await execa('pg_restore', ['--list', file], { env, reject: false });
  if (r.exitCode !== 0) throw new ToolError(`pg_restore cannot read ${file}: ${lastLines(redact(String(r.stderr)))}`, r.exitCode, String(r.stderr));
  return String(r.stdout).split('\n').filter((l) => l && !l.startsWith(';'));
}

/** Does the TOC list a TABLE (and its TABLE DATA, for a table that holds rows) for schema.name? */
export function tocHas(lines: readonly string[], kind: 'TABLE' | 'TABLE DATA', schema: string, name: string): boolean {
  // "215; 1259 16390 TABLE public petri_observations postgres" — names are not quoted, so match the known name exactly
  const needle = ` ${kind} ${schema} ${name} `;
  return lines.some((l) => /^\d+; \d+ \d+ /.test(l) && l.includes(needle) && l.indexOf(needle) === l.indexOf(` ${kind} `));
}

/** pg_restore of the archive into an existing (scratch) database. */
export async function restoreInto(o: { conn: ConnectionInfo; file: string; database: string; signal?: AbortSignal; env?: NodeJS.ProcessEnv }): Promise<{ ms: number }> {
  const t0 = performance.now();
  const execa = await loadExeca();
  const r = await execa('pg_restore', ['--no-password', '--exit-on-error', '--no-owner', `--dbname=${o.database}`, o.file], {
    env: o.env ?? childEnv(o.conn, { PGDATABASE: o.database }), reject: false, cancelSignal: o.signal, forceKillAfterDelay: 5000,
  });
  if (r.exitCode !== 0) throw new ToolError(`pg_restore into ${o.database} failed (exit ${r.exitCode}): ${lastLines(redact(String(r.stderr)))}`, r.exitCode, String(r.stderr));
  return { ms: performance.now() - t0 };
}

export function backupChildEnv(conn: ConnectionInfo): NodeJS.ProcessEnv {
  return childEnv(conn);
}
