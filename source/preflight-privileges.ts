import type { Db } from './db/session.js';
import { ident } from './db/quote.js';
import type { Check } from './preflight.js';

/** The monitoring privileges this role has, and what is degraded without them (preflight and the monitor header). */
export interface PrivilegeFacts {
  readonly role: string;
  readonly superuser: boolean;
  readonly readAllStats: boolean;
  readonly signalBackend: boolean;
}

export const PRIVILEGES_SQL = `SELECT current_user::text AS role, r.rolsuper AS su,
        r.rolsuper OR pg_has_role(current_user, 'pg_read_all_stats', 'MEMBER') AS stats,
        r.rolsuper OR pg_has_role(current_user, 'pg_signal_backend', 'MEMBER') AS signal
   FROM pg_roles r WHERE r.rolname = current_user`;

/** The GRANT that gives `role` the predefined role `granted` (run by a superuser or the provider's admin role). */
export function grantFor(granted: 'pg_read_all_stats' | 'pg_signal_backend', role: string): string {
  return `GRANT ${granted} TO ${ident(role)};`;
}

/** One line per privilege: what the operator has, what is degraded without it, and the GRANT that fixes it. */
export function privilegeLines(p: PrivilegeFacts): { text: string; ok: boolean }[] {
  if (p.superuser) return [{ text: `monitoring as ${p.role} (superuser): every session, query and wait is visible; cancel/terminate allowed`, ok: true }];
  return [
    p.readAllStats
      ? { text: `pg_read_all_stats: yes — every session's query, state and waits are visible`, ok: true }
      : { text: `pg_read_all_stats: NO — other roles' sessions show without query, state or wait event (listed as hidden; their lock waits still show); the copy's throttle cannot judge their queries. Fix: ${grantFor('pg_read_all_stats', p.role)}`, ok: false },
    p.signalBackend
      ? { text: `pg_signal_backend: yes — may cancel/terminate other roles' backends (not superusers')`, ok: true }
      : { text: `pg_signal_backend: NO — cancel/terminate work only on ${p.role}'s own sessions. Fix: ${grantFor('pg_signal_backend', p.role)}`, ok: false },
  ];
}

export async function privilegeFacts(db: Pick<Db, 'read'>): Promise<PrivilegeFacts> {
  const [x] = await db.read<{ role: string; su: boolean; stats: boolean; signal: boolean }>(PRIVILEGES_SQL);
  return { role: x!.role, superuser: x!.su, readAllStats: x!.stats, signalBackend: x!.signal };
}

/** Preflight checks (warn, never fail): the monitors and the throttle see less without these. */
export async function privilegeChecks(db: Pick<Db, 'read'>): Promise<Check[]> {
  const p = await privilegeFacts(db);
  if (p.superuser) return [{ check: 'monitoring privileges', status: 'pass', detail: `${p.role} is a superuser: sees every session, may cancel/terminate` }];
  const [stats, signal] = privilegeLines(p);
  return [
    { check: 'monitoring: pg_read_all_stats', status: p.readAllStats ? 'pass' : 'warn', detail: stats!.text },
    { check: 'monitoring: pg_signal_backend', status: p.signalBackend ? 'pass' : 'warn', detail: signal!.text },
  ];
}
