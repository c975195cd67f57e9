import crypto from 'node:crypto';
import { analyzeSql, type SqlFileProblem } from './sql-analysis.js';

export type { SqlFileProblem } from './sql-analysis.js';

export function sha256(text: string | Buffer): string {
  return crypto.createHash('sha256').update(text).digest('hex');
}

/**
 * What pgshift refuses to run in a plan SQL file, read from PostgreSQL's parse tree (sql-analysis.ts), each with its
 * line:
 * - psql meta-commands (\i, \set, \connect, …, outside any literal). pgshift sends the file to the server as it is, in
 *   one transaction, over the wire protocol; the server does not know psql's commands, and running the file through
 *   psql instead would lose the single transaction, the lock_timeout and the journaling of each statement. So such a
 *   file is refused with the line named, not half-applied.
 * - transaction control at the top level (BEGIN, COMMIT, ROLLBACK, START TRANSACTION, END; SAVEPOINT is fine): pgshift
 *   already wraps the file in a transaction; a COMMIT inside would end it early and leave the rest outside it.
 * - CREATE INDEX CONCURRENTLY, VACUUM, CREATE DATABASE…: they cannot run inside a transaction block.
 * - SQL the parser rejects (the server would, half-way through the file).
 */
export async function scanSqlFile(text: string): Promise<SqlFileProblem[]> {
  return [...(await analyzeSql(text)).problems];
}
