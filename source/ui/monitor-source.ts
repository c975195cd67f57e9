import type pg from 'pg';
import { monitorPrivileges, monitorSnapshot, openMonitorClient, type MonitorPrivileges, type MonitorSnapshot } from '../db/monitor.js';
import { signalBackend, type BackendAction } from '../db/monitor-actions.js';

/** The monitors' only way to the database: their own connection (application_name pgshift-monitor, statement_timeout 1 s). */
export interface MonitorSource {
  snapshot(longQuerySeconds: number): Promise<MonitorSnapshot>;
  signal(action: BackendAction, pid: number): Promise<boolean>;
  close(): Promise<void>;
}

/** Opens the connection on first use; after a lost connection the next refresh opens a new one. */
export function pgMonitorSource(config: pg.ClientConfig): MonitorSource {
  let client: pg.Client | null = null;
  let opening: Promise<pg.Client> | null = null;
  let closed = false;
  const get = async (): Promise<pg.Client> => {
    if (closed) throw new Error('monitor closed');
    if (client) return client;
    opening ??= openMonitorClient(config).then((c) => {
      c.on('end', () => {
        if (client === c) client = null;
      });
      client = c;
      return c;
    }).finally(() => {
      opening = null;
    });
    return opening;
  };
  const withClient = async <T>(fn: (c: pg.Client) => Promise<T>): Promise<T> => {
    const c = await get();
    try {
      return await fn(c);
    } catch (e) {
      const code = (e as { code?: string }).code;
      // a statement timeout (57014) keeps the connection usable; anything else: reconnect next time
      if (code !== '57014') {
        client = null;
        await c.end().catch(() => {});
      }
      throw e;
    }
  };
  let privileges: MonitorPrivileges | undefined;
  return {
    snapshot: (s) => withClient(async (c) => {
      const snap = await monitorSnapshot(c, s, { tableLocks: true });
      privileges ??= await monitorPrivileges(c);
      return { ...snap, privileges };
    }),
    signal: (action, pid) => withClient((c) => signalBackend(c, action, pid)),
    async close() {
      closed = true;
      const c = client ?? (opening ? await opening.catch(() => null) : null);
      client = null;
      await c?.end().catch(() => {});
    },
  };
}
