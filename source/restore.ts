import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadExeca } from './execa.js';
import type { ConnectionInfo } from './db/connection.js';
import { redact } from './db/connection.js';
import { backupChildEnv, restoreList } from './backup.js';
import type { Db } from './db/session.js';
import { ident, qname } from './db/quote.js';

/**
 * pg_restore of a verified backup (custom or directory format), in ONE transaction (--single-transaction
 * --exit-on-error): either everything is restored or nothing changed. --clean --if-exists drops each object of the
 * backup before re-creating it; pgshift's journal schema is left out so the record of what happened survives.
 * The password reaches pg_restore through PGPASSWORD (ConnectionInfo.childEnv), never argv.
 */
export interface RestoreOptions {
  readonly conn: ConnectionInfo;
  readonly file: string;
  /** database to restore into; default: the connection's database (then --clean --if-exists) */
  readonly database?: string;
  /** restoring into a new, empty database: no --clean */
  readonly intoNew?: boolean;
  readonly lockTimeoutMs?: number;
  readonly onProgress?: (done: number, total: number, detail: string) => void;
  readonly signal?: AbortSignal;
}

export function restoreArgs(o: Pick<RestoreOptions, 'file' | 'intoNew'> & { database: string; listFile?: string }): string[] {
  return [
    ...(o.intoNew ? [] : ['--clean', '--if-exists']),
    '--single-transaction', '--exit-on-error', '--verbose',
    ...(o.listFile ? ['--use-list', o.listFile] : ['--use-list', '<table of contents without schema pgshift>']),
    '--dbname', o.database, o.file,
  ];
}

/** TOC entries of schema pgshift (the journal): --exclude-schema still drops the schema itself with --clean. */
export const isJournalEntry = (line: string) => /^\d+; \d+ \d+ [A-Z][A-Z ]* (pgshift \S|- pgshift( |$)|SCHEMA pgshift( |$))/.test(line);

export function restoreCommand(o: Pick<RestoreOptions, 'file' | 'intoNew'> & { database: string }): string {
  return `$ pg_restore ${restoreArgs(o).map((a) => (/^[\w./=:-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`)).join(' ')}`;
}

// sha256File: the same checksum the backup step recorded (one implementation, in backup.ts)
export { sha256File } from './backup.js';

export async function restoreBackup(o: RestoreOptions): Promise<{ ms: number; items: number; log: string[] }> {
  const database = o.database ?? String(o.conn.config.database);
  const toc = (await restoreList(o.file, backupChildEnv(o.conn))).filter((l) => !isJournalEntry(l));
  const total = toc.length;
  const listFile = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'pgshift-restore-')), 'toc.list');
  fs.writeFileSync(listFile, toc.join('\n') + '\n');
  const expected = Math.max(1, o.intoNew ? total : total * 2);
  const env: Record<string, string> = { ...o.conn.childEnv, PGDATABASE: database };
  env.PGOPTIONS = `-c lock_timeout=${Math.round(o.lockTimeoutMs ?? 10_000)}`;
  const t0 = performance.now();
  const log: string[] = [];
  let done = 0;
  const execa = await loadExeca();
  const child = execa('pg_restore', restoreArgs({ file: o.file, intoNew: o.intoNew, database, listFile }), {
    env, extendEnv: true, reject: false, cancelSignal: o.signal, all: true, buffer: false,
  });
  child.all?.setEncoding('utf8');
  let rest = '';
  child.all?.on('data', (chunk: string) => {
    rest += chunk;
    const lines = rest.split('\n');
    rest = lines.pop() ?? '';
    for (const l of lines) {
      const line = redact(l);
      log.push(line);
      if (/pg_restore: (creating|dropping|processing|restoring|executing|setting owner)/.test(line)) {
        done++;
        o.onProgress?.(Math.min(done, expected), expected, line.replace(/^pg_restore: /, ''));
      }
    }
  });
  const r = await child;
  if (rest) log.push(redact(rest));
  if (r.exitCode !== 0) {
    const errs = log.filter((l) => /error|fatal/i.test(l)).slice(-5);
    throw new Error(`pg_restore failed (exit ${r.exitCode}); in one transaction, so nothing was changed: ${errs.join(' | ') || log.slice(-3).join(' | ')}`);
  }
  o.onProgress?.(expected, expected, 'done');
  return { ms: performance.now() - t0, items: total, log };
}

// ---------------------------------------------------------------------------------------------------------------
// Restore of one table into a side schema (works where partitioned tables exist: nothing else is dropped)

/** What of the archive belongs to one table: its definition, data, defaults, keys, indexes, triggers, policies, comments, ACL. */
export interface TableEntries {
  readonly schema: string;
  readonly table: string;
  /** names of the table's indexes (from the pre-migration snapshot): INDEX entries carry only the index name */
  readonly indexes: readonly string[];
  /** identity sequences of the table: created with it */
  readonly identitySequences: readonly string[];
  /** leave out the table's outbound foreign keys (a test restore: they would lock the referenced tables) */
  readonly skipForeignKeys?: boolean;
}

const TOC_LINE = /^(\d+); (\d+) (\d+) (.*)$/;

/** The TOC lines of the archive that restore `e` (pg_restore --list format; names in TOC lines are not quoted). */
export function tableTocEntries(toc: readonly string[], e: TableEntries): string[] {
  const s = e.schema;
  const t = e.table;
  const starts = [
    `TABLE ${s} ${t} `, `TABLE DATA ${s} ${t} `, `DEFAULT ${s} ${t} `, `CONSTRAINT ${s} ${t} `, ...(e.skipForeignKeys ? [] : [`FK CONSTRAINT ${s} ${t} `]),
    `TRIGGER ${s} ${t} `, `POLICY ${s} ${t} `, `ROW SECURITY ${s} ${t} `, `COMMENT ${s} TABLE ${t} `, `COMMENT ${s} COLUMN ${t}.`,
    `ACL ${s} TABLE ${t} `, `ACL ${s} COLUMN ${t}.`,
    ...e.indexes.flatMap((i) => [`INDEX ${s} ${i} `, `COMMENT ${s} INDEX ${i} `]),
    ...e.identitySequences.flatMap((q) => [`SEQUENCE ${s} ${q} `, `SEQUENCE SET ${s} ${q} `, `ACL ${s} SEQUENCE ${q} `, `COMMENT ${s} SEQUENCE ${q} `]),
  ];
  const onTable = new RegExp(` ON ${t.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} `);
  return toc.filter((l) => {
    const m = TOC_LINE.exec(l);
    if (!m) return false;
    const rest = m[4]!;
    if (starts.some((p) => rest.startsWith(p))) return true;
    // COMMENT public CONSTRAINT name ON table owner / TRIGGER / POLICY
    return new RegExp(`^COMMENT ${s} (CONSTRAINT|TRIGGER|POLICY) `).test(rest) && onTable.test(rest);
  });
}

/**
 * Rewrites a pg_restore script so the table (and its identity sequences) are created in `side` instead of their
 * schema: every qualified name as pg_dump prints it (`public.t`, `"My S"."T"`) not followed by an identifier
 * character. `quoted` holds the names as quote_ident prints them.
 */
export function rewriteToSide(sql: string, quoted: { schema: string; names: readonly string[]; side: string }): string {
  let out = sql;
  for (const n of quoted.names) {
    const from = `${quoted.schema}.${n}`.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    out = out.replace(new RegExp(`${from}(?![A-Za-z0-9_$"])`, 'g'), `${quoted.side}.${n}`);
  }
  return out;
}

export interface SideRestoreOptions {
  readonly conn: ConnectionInfo;
  readonly file: string;
  readonly entries: TableEntries;
  /** side schema (created empty by the caller) */
  readonly side: string;
  /** quote_ident of schema, table, side and each identity sequence (from the server) */
  readonly quoted: { schema: string; table: string; side: string; sequences: readonly string[] };
  readonly lockTimeoutMs?: number;
  readonly signal?: AbortSignal;
}

/** The commands a side restore runs, for previews and the journal (no password: it goes through PGPASSWORD). */
export function sideRestoreCommands(file: string, side: string, table: string): string[] {
  return [
    `$ pg_restore --list ${file}  (the entries of ${table}: definition, data, keys, indexes, triggers, policies, comments, grants)`,
    `$ pg_restore --use-list <those entries> --file - ${file}  (a script, names rewritten into schema ${side})`,
    `$ psql --no-psqlrc --single-transaction --set ON_ERROR_STOP=1 --file -  (runs that script)`,
  ];
}

/** Restores one table of the archive into the side schema, in one transaction (psql --single-transaction). */
export async function restoreTableToSide(o: SideRestoreOptions): Promise<{ ms: number; items: number }> {
  const t0 = performance.now();
  const env: Record<string, string> = { ...o.conn.childEnv, PGOPTIONS: `-c lock_timeout=${Math.round(o.lockTimeoutMs ?? 10_000)}` };
  const toc = await restoreList(o.file, env);
  const picked = tableTocEntries(toc, o.entries);
  if (!picked.some((l) => / TABLE [^ ]+ /.test(l) && !/ TABLE DATA /.test(l))) {
    throw new Error(`the archive ${o.file} has no definition of ${o.entries.schema}.${o.entries.table}`);
  }
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pgshift-side-'));
  try {
    const listFile = path.join(dir, 'toc.list');
    fs.writeFileSync(listFile, picked.join('\n') + '\n', { mode: 0o600 });
    const execa = await loadExeca();
    const script = await execa('pg_restore', ['--use-list', listFile, '--file', '-', o.file], { env, extendEnv: true, reject: false, cancelSignal: o.signal, encoding: 'utf8' });
    if (script.exitCode !== 0) throw new Error(`pg_restore could not read ${o.file}: ${redact(String(script.stderr)).split('\n').slice(-3).join(' | ')}`);
    const sql = rewriteToSide(String(script.stdout), { schema: o.quoted.schema, names: [o.quoted.table, ...o.quoted.sequences], side: o.quoted.side });
    const run = await execa('psql', ['--no-psqlrc', '--quiet', '--single-transaction', '--set', 'ON_ERROR_STOP=1', '--file', '-'], {
      env, extendEnv: true, reject: false, cancelSignal: o.signal, input: sql, encoding: 'utf8',
    });
    if (run.exitCode !== 0) throw new Error(`restoring ${o.entries.schema}.${o.entries.table} into schema ${o.side} failed (one transaction: nothing was kept): ${redact(String(run.stderr)).trim().split('\n').slice(-3).join(' | ')}`);
    return { ms: performance.now() - t0, items: picked.length };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** The archive entries of a table as the catalog has it now (before the migration: the test restore of phase 1). */
export async function tableEntriesNow(db: Db, schema: string, table: string): Promise<TableEntries> {
  const ix = await db.read<{ n: string }>(
    `SELECT ic.relname::text AS n FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid
      WHERE i.indrelid = (SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relname = $2) ORDER BY 1`,
    [schema, table],
  );
  const seq = await db.read<{ n: string }>(
    `SELECT s.relname::text AS n FROM pg_depend d JOIN pg_class s ON s.oid = d.objid AND s.relkind = 'S'
      WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass AND d.deptype = 'i'
        AND d.refobjid = (SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relname = $2) ORDER BY 1`,
    [schema, table],
  );
  return { schema, table, indexes: ix.map((r) => r.n), identitySequences: seq.map((r) => r.n) };
}

/**
 * verify: 'restore' — exercises the rollback's own path: each table of the plan restored from the archive into a
 * side schema (one transaction), its rows counted against the dump's snapshot, then the side schema dropped.
 */
export async function testSideRestore(db: Db, o: { file: string; side: string; tables: readonly { schema: string; table: string }[]; expected?: Record<string, number>; lockTimeoutMs: number; signal?: AbortSignal; stepId?: string }): Promise<{ table: string; rows: number; items: number }[]> {
  const out: { table: string; rows: number; items: number }[] = [];
  for (const t of o.tables) {
    await db.ddl([`DROP SCHEMA IF EXISTS ${ident(o.side)} CASCADE`, `CREATE SCHEMA ${ident(o.side)}`], { stepId: o.stepId ?? null, signal: o.signal });
    try {
      const entries = { ...(await tableEntriesNow(db, t.schema, t.table)), skipForeignKeys: true };
      const [q] = await db.read<{ s: string; t: string; side: string; seqs: string[] }>(
        `SELECT quote_ident($1) AS s, quote_ident($2) AS t, quote_ident($3) AS side, ARRAY(SELECT quote_ident(x) FROM unnest($4::text[]) x) AS seqs`,
        [t.schema, t.table, o.side, entries.identitySequences],
      );
      const r = await restoreTableToSide({
        conn: db.info, file: o.file, entries, side: o.side, lockTimeoutMs: o.lockTimeoutMs, signal: o.signal,
        quoted: { schema: q!.s, table: q!.t, side: q!.side, sequences: q!.seqs },
      });
      const [{ n }] = await db.read<{ n: string }>(`SELECT count(*) AS n FROM ${qname(o.side, t.table)}`) as [{ n: string }];
      const want = o.expected?.[`${t.schema}.${t.table}`];
      if (want !== undefined && want !== Number(n)) throw new Error(`${t.schema}.${t.table}: ${want} rows at the dump, ${n} restored into ${o.side}`);
      out.push({ table: `${t.schema}.${t.table}`, rows: Number(n), items: r.items });
    } finally {
      await db.ddl([`DROP SCHEMA IF EXISTS ${ident(o.side)} CASCADE`], { stepId: o.stepId ?? null, signal: o.signal });
    }
  }
  return out;
}
