import { ident } from '../db/quote.js';
import { rowsOf, type Reader } from './meta.js';

/**
 * The application's own triggers (audit logs, side effects) must fire for the application's statements only, never
 * for pgshift's copy, replay or carry-back. pgshift cannot use session_replication_role (superuser only on
 * PostgreSQL 15, and it would silence FK triggers too), so:
 *  - the new table's triggers are DISABLED before the first copy batch (their enable state is recorded in the
 *    artifact `app-triggers:<table>`) and restored as they were inside the swap transaction;
 *  - the old table's triggers are disabled inside the swap transaction (from then on only pgshift writes it: the
 *    rollback's carry-back) and restored inside the swap-back transaction.
 * pgshift's own triggers (pgshift_*) and internal ones (foreign keys) are never touched.
 */

/** tgenabled: O = origin (ENABLE), A = ALWAYS, R = REPLICA, D = disabled */
export interface TriggerState {
  readonly name: string;
  readonly enabled: string;
}


export interface AppTriggersArtifact {
  /** the new table's triggers and their enable state before the copy disabled them */
  readonly target: TriggerState[];
}

/** User triggers defined on the relation itself (on a partitioned table: the parent's, which partitions inherit). */
export async function appTriggers(r: Reader, oid: number): Promise<TriggerState[]> {
  return rowsOf<TriggerState>(
    r,
    `SELECT tgname AS name, tgenabled::text AS enabled FROM pg_trigger
      WHERE tgrelid = $1 AND NOT tgisinternal AND tgparentid = 0 AND tgname NOT LIKE 'pgshift\\_%' ORDER BY tgname`,
    [oid],
  );
}

/** ALTER TABLE … DISABLE TRIGGER for each trigger not disabled yet (recurses to partitions). */
export function disableTriggerSql(q: string, triggers: readonly TriggerState[]): string[] {
  return triggers.filter((x) => x.enabled !== 'D').map((x) => `ALTER TABLE ${q} DISABLE TRIGGER ${ident(x.name)}`);
}

/** Puts each trigger back in its recorded state. */
export function restoreTriggerSql(q: string, triggers: readonly TriggerState[]): string[] {
  const how: Record<string, string> = { O: 'ENABLE', A: 'ENABLE ALWAYS', R: 'ENABLE REPLICA', D: 'DISABLE' };
  return triggers.map((x) => `ALTER TABLE ${q} ${how[x.enabled] ?? 'ENABLE'} TRIGGER ${ident(x.name)}`);
}

export function triggerList(triggers: readonly TriggerState[]): string {
  return triggers.map((x) => x.name).join(', ');
}
