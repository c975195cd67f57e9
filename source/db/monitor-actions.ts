import type pg from 'pg';

export type BackendAction = 'cancel' | 'terminate';

/** The exact statement a cancel / terminate runs, as shown in the confirmation and journaled. */
export function backendActionSql(action: BackendAction, pid: number): string {
  if (!Number.isSafeInteger(pid) || pid <= 0) throw new Error(`not a backend pid: ${String(pid)}`);
  return action === 'cancel' ? `SELECT pg_cancel_backend(${pid})` : `SELECT pg_terminate_backend(${pid})`;
}

/**
 * Cancels the backend's current query (pg_cancel_backend) or ends its session (pg_terminate_backend). Returns what
 * PostgreSQL answered: false when the backend was already gone (or belongs to a role we may not signal).
 */
export async function signalBackend(client: pg.ClientBase, action: BackendAction, pid: number): Promise<boolean> {
  backendActionSql(action, pid); // validates pid
  const fn = action === 'cancel' ? 'pg_cancel_backend' : 'pg_terminate_backend';
  const r = await client.query<{ ok: boolean }>(`SELECT ${fn}($1::int) AS ok`, [pid]);
  return r.rows[0]?.ok === true;
}

export const cancelBackend = (c: pg.ClientBase, pid: number) => signalBackend(c, 'cancel', pid);
export const terminateBackend = (c: pg.ClientBase, pid: number) => signalBackend(c, 'terminate', pid);
