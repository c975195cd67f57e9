import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import type { ConnectionInfo } from './db/connection.js';
import { redact } from './db/connection.js';
import { backupChildEnv, restoreList } from './backup.js';

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
