import crypto from 'node:crypto';

export function sha256(text: string | Buffer): string {
  return crypto.createHash('sha256').update(text).digest('hex');
}

export interface SqlFileProblem { readonly line: number; readonly text: string; readonly reason: string }

/**
 * Scans a SQL file the way the server's lexer would (comments, '…' and E'…' strings, "…" identifiers, $tag$…$tag$
 * bodies) and reports what pgshift refuses to run:
 * - psql meta-commands (a line whose first character outside any quote is a backslash: \i, \set, \connect, …). pgshift
 *   sends the file to the server as it is, in one transaction, over the wire protocol; the server does not know
 *   psql's commands, and running the file through psql instead would lose the single transaction, the lock_timeout
 *   and the journaling of each statement. So such a file is refused with the line named, not half-applied.
 * - transaction control at the top level (BEGIN, COMMIT, ROLLBACK, START TRANSACTION, END, SAVEPOINT is fine): pgshift
 *   already wraps the file in a transaction; a COMMIT inside would end it early and leave the rest outside it.
 * - CREATE INDEX CONCURRENTLY, VACUUM, CREATE DATABASE…: they cannot run inside a transaction block.
 */
export function scanSqlFile(text: string): SqlFileProblem[] {
  const problems: SqlFileProblem[] = [];
  const lines = text.split('\n');
  const lineOf = (pos: number) => text.slice(0, pos).split('\n').length;
  let i = 0;
  let atLineStart = true;
  let tokenPos: number | null = null;
  let stmt = '';
  const endStatement = (endPos: number) => {
    const words = stmt.trim().replace(/\s+/g, ' ').toUpperCase();
    const line = lineOf(tokenPos ?? endPos);
    const first = words.split(' ').slice(0, 3).join(' ');
    if (/^(BEGIN|COMMIT|ROLLBACK|END|ABORT)\b(?! ATOMIC)/.test(words) && !/^ROLLBACK TO\b/.test(words) || /^START TRANSACTION\b/.test(words)) {
      problems.push({ line, text: lines[line - 1]!.trim(), reason: `transaction control (${first}) at the top level: pgshift runs the whole file in one transaction itself` });
    } else if (/^(CREATE (UNIQUE )?INDEX CONCURRENTLY|DROP INDEX CONCURRENTLY|REINDEX .*CONCURRENTLY|VACUUM|CREATE DATABASE|DROP DATABASE|ALTER SYSTEM|CREATE TABLESPACE|DROP TABLESPACE)\b/.test(words)) {
      problems.push({ line, text: lines[line - 1]!.trim(), reason: `${first} cannot run inside a transaction block` });
    }
    stmt = '';
    tokenPos = null;
  };
  while (i < text.length) {
    const ch = text[i]!;
    if (atLineStart) {
      // first non-blank character of a line, outside any quote or comment
      let j = i;
      while (j < text.length && (text[j] === ' ' || text[j] === '\t')) j++;
      if (text[j] === '\\') {
        const line = lineOf(j);
        problems.push({ line, text: lines[line - 1]!.trim(), reason: 'psql meta-command: pgshift sends the file to the server, which does not understand psql commands' });
      }
      atLineStart = false;
    }
    if (ch === '\n') { atLineStart = true; stmt += ch; i++; continue; }
    if (ch === '-' && text[i + 1] === '-') {
      while (i < text.length && text[i] !== '\n') i++;
      continue;
    }
    if (ch === '/' && text[i + 1] === '*') {
      let depth = 1;
      i += 2;
      while (i < text.length && depth > 0) {
        if (text[i] === '/' && text[i + 1] === '*') { depth++; i += 2; } else if (text[i] === '*' && text[i + 1] === '/') { depth--; i += 2; } else i++;
      }
      stmt += ' ';
      continue;
    }
    if (tokenPos === null && !/\s/.test(ch) && ch !== ';') tokenPos = i;
    if (ch === "'" || ch === '"') {
      const escapes = ch === "'" && (text[i - 1] === 'E' || text[i - 1] === 'e');
      let j = i + 1;
      while (j < text.length) {
        if (escapes && text[j] === '\\') { j += 2; continue; }
        if (text[j] === ch) {
          if (text[j + 1] === ch) { j += 2; continue; }
          break;
        }
        j++;
      }
      stmt += text.slice(i, j + 1);
      i = j + 1;
      continue;
    }
    if (ch === '$') {
      const m = /^\$([A-Za-z_][A-Za-z0-9_]*)?\$/.exec(text.slice(i));
      if (m && !/[A-Za-z0-9_]/.test(text[i - 1] ?? '')) {
        const tag = m[0];
        const end = text.indexOf(tag, i + tag.length);
        const stop = end < 0 ? text.length : end + tag.length;
        stmt += text.slice(i, stop);
        i = stop;
        continue;
      }
    }
    if (ch === ';') { endStatement(i); i++; continue; }
    stmt += ch;
    i++;
  }
  if (stmt.trim()) endStatement(text.length);
  return problems;
}
