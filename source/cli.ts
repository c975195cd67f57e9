import fs from 'node:fs';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { resolveConnection, redact } from './db/connection.js';
import { Engine, ALL_PHASES, operatorName } from './engine/engine.js';
import { PHASE_REGISTRY } from '../phases/index.js';
import { runEngine, type Io } from './run.js';
import { UserError, EXIT } from './engine/errors.js';
import type { PhaseId } from './engine/types.js';
import { loadPlan, planJsonSchema } from './plan/load.js';
import { renderTable, fmtDuration } from './format.js';
import { VERSION } from './version.js';
import { Journal } from './engine/journal.js';
import { Db, sleep } from './db/session.js';
import { controlRow, liveRun, parseControl, sendControl } from './copy/control.js';
import { Artifacts } from './engine/artifacts.js';

export type { Io, RunSetup } from './run.js';
export { exitFor } from './engine/errors.js';
export { runEngine } from './run.js';

const HELP: Record<string, string> = {
  main: `pgshift ${VERSION} — carry a PostgreSQL migration window: partition, copy, swap, roll back.

Usage:
  pgshift [--plan FILE] [--db URL]            the wizard (headless off a TTY)
  pgshift --headless [--json] [...]           the same run as lines (JSON lines with --json)
  pgshift plan --plan FILE [--db URL]         dry run: every statement that would run; nothing changes
  pgshift status [--db URL] [--json]          the journal: runs, steps, confirmations
  pgshift report [--format md|json] [--db URL] the integrity report for the change ticket
  pgshift demo [--rows N] [--headless] [--keep] [--db URL]
  pgshift control pause|resume|batch ROWS|throttle MS [--db URL]   steer a running copy
  pgshift schema                              print the plan file's JSON Schema

Run options:
  --plan FILE          plan file (.json or .yaml); default ./pgshift.plan.json
  --db URL             postgres://user:password@host:5432/db (else DATABASE_URL, else PG* variables)
  --headless           print lines instead of the wizard
  --json               with --headless: one JSON object per event
  --until N            stop after phase N (1-5)
  --phase N            run only phase N (1-5)
  --rollback           run the rollback
  --confirm OBJECT     allow the destructive step on OBJECT (repeatable); headless needs one per object
  --force-retention    allow dropping old tables before the retention period ends (still needs --confirm)
  --skip-backup        run phase 3+ without a verified backup (journaled override; needs --confirm backup)
  -h, --help           this help;  -v, --version   the version

Exit codes: 0 done, 1 failed, 2 bad input (nothing changed), 3 stopped before a destructive step, 130 interrupted.`,
  plan: `pgshift plan --plan FILE [--db URL] [--phase N] [--until N] [--rollback] [--json]

Dry run: phase by phase, every statement and command pgshift would run against that database.
Reads the catalog only; creates nothing (not even its journal).`,
  status: `pgshift status [--db URL] [--json] [--runs N]

The journal kept in schema "pgshift" of the database: runs, their steps and results, who confirmed what and when.`,
  report: `pgshift report [--db URL] [--format md|json]

The latest integrity report from the journal, as Markdown (for the change ticket) or JSON.`,
  demo: `pgshift demo [--rows N] [--headless] [--keep] [--data-dir DIR] [--db URL]

Starts an embedded PostgreSQL (port chosen free; data in the OS temp dir, or in --data-dir DIR; removed on
exit unless --keep), fills it with the seeds' schema and N petri observations (default 1,000,000; gasifier
N/2), prints how to connect to it with psql, then opens the wizard on the example plan (a terminal is needed:
off a terminal it refuses unless --headless). --headless runs the whole plan end to end, destructive steps
auto-confirmed (a throwaway database) and journaled as such; exit 0 only if every step and check passed.
With --db it fills that empty database instead, so the demo runs on any server version.`,
  schema: `pgshift schema — print the JSON Schema of the plan file (for editor completion).`,
  control: `pgshift control pause | resume | batch ROWS | throttle MS [--db URL] [--operator NAME] [--no-wait]

Steers the copy running against that database, from any terminal (the wizard's keys do the same):
  pause          finish the running batch (its checkpoint commits), then copy nothing and hold no lock
  resume         continue from the checkpoint
  batch ROWS     rows per batch from the next batch on (100 to 1,000,000)
  throttle MS    rest MS milliseconds between batches (0 to 600,000; 0 = the plan's pause)
Each command is a row in pgshift.control (who, from where, when, and what the copy did with it). Waits up to
10 s for the copy to apply it and says so; a command no copy applies stays queued for this run only.`,
};

const RUN_OPTIONS = {
  plan: { type: 'string' },
  db: { type: 'string' },
  headless: { type: 'boolean' },
  json: { type: 'boolean' },
  until: { type: 'string' },
  phase: { type: 'string' },
  rollback: { type: 'boolean' },
  confirm: { type: 'string', multiple: true },
  'force-retention': { type: 'boolean' },
  'skip-backup': { type: 'boolean' },
  operator: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
  version: { type: 'boolean', short: 'v' },
} as const satisfies ParseArgsConfig['options'];

const OPTIONS: Record<string, ParseArgsConfig['options']> = {
  run: RUN_OPTIONS,
  plan: { plan: RUN_OPTIONS.plan, db: RUN_OPTIONS.db, json: RUN_OPTIONS.json, until: RUN_OPTIONS.until, phase: RUN_OPTIONS.phase, rollback: RUN_OPTIONS.rollback, help: RUN_OPTIONS.help },
  status: { db: RUN_OPTIONS.db, json: RUN_OPTIONS.json, runs: { type: 'string' }, help: RUN_OPTIONS.help },
  report: { db: RUN_OPTIONS.db, format: { type: 'string' }, help: RUN_OPTIONS.help },
  demo: {
    rows: { type: 'string' }, headless: RUN_OPTIONS.headless, json: RUN_OPTIONS.json, keep: { type: 'boolean' }, 'data-dir': { type: 'string' },
    db: RUN_OPTIONS.db, until: RUN_OPTIONS.until, help: RUN_OPTIONS.help,
  },
  schema: { help: RUN_OPTIONS.help },
  control: { db: RUN_OPTIONS.db, operator: RUN_OPTIONS.operator, 'no-wait': { type: 'boolean' }, help: RUN_OPTIONS.help },
};

type Values = Record<string, string | boolean | string[] | undefined>;

function parse(command: string, args: string[], positionalsOut?: string[]): Values {
  try {
    const { values, positionals } = parseArgs({ args, options: OPTIONS[command]!, strict: true, allowPositionals: true });
    if (positionalsOut) positionalsOut.push(...positionals);
    else if (positionals.length) throw new UserError(`unexpected argument "${positionals[0]}"`, `see pgshift ${command === 'run' ? '' : command + ' '}--help`, 2);
    return values as Values;
  } catch (e) {
    if (e instanceof UserError) throw e;
    const msg = (e as Error).message.replace(/\. To specify a positional argument.*$/s, '');
    throw new UserError(msg, `see pgshift ${command === 'run' ? '' : command + ' '}--help`, 2);
  }
}

function phaseArg(v: unknown, flag: string): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1 || n > 5) throw new UserError(`${flag} expects a phase number from 1 to 5, got "${typeof v === 'string' || typeof v === 'number' ? v : JSON.stringify(v)}"`, '1 Preparation, 2 Structure, 3 Data, 4 Dependencies, 5 Cleanup', 2);
  return n;
}

export function selectPhases(v: Values): PhaseId[] {
  const until = phaseArg(v.until, '--until');
  const only = phaseArg(v.phase, '--phase');
  if (v.rollback && (until || only)) throw new UserError('--rollback cannot be combined with --phase or --until', 'run the rollback on its own', 2);
  if (until && only) throw new UserError('--phase and --until cannot be combined', 'use --phase N for one phase, --until N for phases 1..N', 2);
  if (v.rollback) return ['rollback'];
  if (only) return [only as PhaseId];
  if (until) return ALL_PHASES.filter((p) => (p as number) <= until);
  return [...ALL_PHASES];
}

function findPlan(v: Values): string {
  if (typeof v.plan === 'string') return v.plan;
  for (const f of ['pgshift.plan.json', 'pgshift.plan.yaml', 'pgshift.plan.yml']) {
    if (fs.existsSync(f)) return f;
  }
  throw new UserError('no plan file given', 'pass --plan FILE (see examples/seed-plan/plan.json) or put pgshift.plan.json here', 2);
}

async function cmdRun(args: string[], io: Io): Promise<number> {
  const v = parse('run', args);
  if (v.help) return (io.out(HELP.main!), 0);
  if (v.version) return (io.out(VERSION), 0);
  const phases = selectPhases(v);
  const loaded = loadPlan(findPlan(v));
  const conn = resolveConnection(v.db as string | undefined, io.env);
  const overrides = new Set<string>();
  if (v['force-retention']) overrides.add('force-retention');
  if (v['skip-backup']) overrides.add('skip-backup');
  return runEngine({
    conn, loaded, phases, headless: !!v.headless || !io.isTTY, json: !!v.json,
    confirms: new Set((v.confirm as string[] | undefined) ?? []), overrides, demo: false,
    operator: (v.operator as string | undefined) ?? operatorName(),
  }, io);
}

/** Quotes one shell word (single quotes) when it needs it. */
function shellWord(w: string): string {
  return /^[A-Za-z0-9_./:=@%+,-]+$/.test(w) ? w : `'${w.replace(/'/g, `'\\''`)}'`;
}

/** The --db value to print: the URL without its password (the password comes from PGPASSWORD or ~/.pgpass). */
function urlWithoutPassword(url: string): string {
  try {
    const u = new URL(url);
    u.password = '';
    return u.toString();
  } catch {
    return redact(url);
  }
}

/**
 * Every --confirm a headless run of these phases will need, read from the plan and the catalog (read-only):
 * phase 3 — INVALID indexes left on the new tables by an interrupted CREATE INDEX CONCURRENTLY (dropped and
 * rebuilt); phase 5 — the RENAME swap of each table, and the DROP of each old table when the retention period
 * is 0 days (otherwise the old tables are kept and dropped by a later run); rollback — each table's swap back,
 * the new tables and the created objects.
 */
async function confirmsNeeded(engine: Engine, phases: readonly PhaseId[]): Promise<{ confirms: string[]; notes: string[] }> {
  const ctx = engine.planContext();
  const confirms: string[] = [];
  const notes: string[] = [];
  const add = (o: string) => {
    if (!confirms.includes(o)) confirms.push(o);
  };
  for (const t of ctx.tables) {
    if (phases.includes(3)) {
      const bad = await ctx.db.read<{ n: string }>(
        `SELECT i.relname::text AS n FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_class c ON c.oid = x.indrelid
           JOIN pg_namespace s ON s.oid = c.relnamespace
          WHERE NOT x.indisvalid AND s.nspname = $1 AND (c.relname = $2 OR c.oid IN (
                SELECT h.inhrelid FROM pg_inherits h JOIN pg_class p ON p.oid = h.inhparent WHERE p.relnamespace = s.oid AND p.relname = $2))`,
        [t.schema, t.targetName],
      ).catch(() => []);
      for (const b of bad) add(`${t.schema}.${b.n}`);
    }
    if (phases.includes(5)) {
      add(`${t.schema}.${t.table}`);
      if (ctx.plan.retention.days === 0) add(`${t.schema}.${t.oldName}`);
      else notes.push(`${t.schema}.${t.oldName} (the old table) is kept ${ctx.plan.retention.days} day(s) after the swap: a later run of phase 5 drops it, with --confirm ${t.schema}.${t.oldName}`);
    }
    if (phases.includes('rollback')) {
      add(`${t.schema}.${t.table}`);
      add(`${t.schema}.${t.targetName}`);
    }
  }
  if (phases.includes('rollback')) add('created-objects');
  return { confirms, notes };
}

async function cmdPlan(args: string[], io: Io): Promise<number> {
  const v = parse('plan', args);
  if (v.help) return (io.out(HELP.plan!), 0);
  const phases = selectPhases(v);
  const planFile = findPlan(v);
  const loaded = loadPlan(planFile);
  const conn = resolveConnection(v.db as string | undefined, io.env);
  const engine = await Engine.open({ phases: PHASE_REGISTRY, conn, loaded, confirm: () => Promise.resolve({ confirmed: false, method: 'declined', by: '' }), mode: 'plan', dryRun: true });
  try {
    // what cannot run is refused here, before a backup or any change: the same checks as preflight's
    if (!phases.includes('rollback') && phases.some((p) => (p as number) <= 3)) {
      const { blockingChecks, problemLine } = await import('./preflight.js');
      const refused = await blockingChecks(engine.db, loaded.tables);
      if (refused.length) {
        if (v.json) io.out(JSON.stringify({ refused: refused.map((c) => ({ check: c.check, cause: c.detail, hint: c.hint ?? null })) }, null, 2));
        io.err(`pgshift: the plan cannot run on this database (${refused.length} problem${refused.length === 1 ? '' : 's'}; nothing was changed):`);
        for (const c of refused) io.err(`  ✗ ${problemLine(c)}`);
        io.err('hint: fix each problem above (or take the table out of the plan), then run pgshift plan again');
        return EXIT.badInput;
      }
    }
    // preflight, read-only (catalog reads, pg_dump --version, free disk): a plan that would be refused says so
    const ctx = engine.planContext();
    const { runPreflight, summarize } = await import('./preflight.js');
    const checks = phases.includes(1) || phases.includes(3) ? await runPreflight({ db: ctx.db, plan: ctx.plan, planDir: ctx.planDir, tables: ctx.tables, serverMajor: ctx.serverMajor, env: io.env }) : [];
    const failed = checks.filter((c) => c.status === 'fail');
    const preview = await engine.preview(phases);
    const { confirms, notes } = await confirmsNeeded(engine, phases);
    const cmd = ['pgshift', '--headless', '--plan', planFile];
    if (typeof v.db === 'string') cmd.push('--db', urlWithoutPassword(v.db));
    if (v.rollback) cmd.push('--rollback');
    if (v.phase !== undefined) cmd.push('--phase', String(v.phase));
    if (v.until !== undefined) cmd.push('--until', String(v.until));
    for (const c of confirms) cmd.push('--confirm', c);
    const command = cmd.map(shellWord).join(' ');
    if (v.json) {
      io.out(JSON.stringify({
        preflight: checks, refused: failed.length > 0, confirms, notes, command,
        phases: preview.map((p) => ({ phase: p.phase.id, name: p.phase.name, steps: p.steps.map((s) => ({ id: s.step.id, title: s.step.title, statements: s.statements })) })),
      }, null, 2));
      return failed.length ? EXIT.badInput : 0;
    }
    io.out(`-- pgshift plan: ${loaded.plan.name} against ${conn.display} (PostgreSQL ${engine.serverVersion})`);
    io.out(`-- dry run: nothing below has been executed`);
    if (checks.length) {
      io.out('');
      io.out(`-- ═══ Preflight (read-only): ${summarize(checks)}`);
      for (const c of checks) io.out(`-- ${c.status === 'pass' ? '✓' : c.status === 'warn' ? '⚠' : '✗'} ${c.check}: ${c.detail}`);
    }
    for (const p of preview) {
      io.out('');
      io.out(`-- ═══ Phase ${p.phase.id} · ${p.phase.name} (${p.steps.length} step${p.steps.length === 1 ? '' : 's'})`);
      for (const s of p.steps) {
        io.out(`-- ▶ ${s.step.id}: ${s.step.title}`);
        for (const st of s.statements) io.out(st.trimEnd().endsWith(';') || st.startsWith('$ ') || st.startsWith('--') ? st : `${st};`);
      }
    }
    io.out('');
    if (failed.length) {
      io.out(`-- ✗ preflight would refuse this run (${failed.length} failed check${failed.length === 1 ? '' : 's'}): fix them first`);
      for (const c of failed) io.out(`--   ${c.check}: ${c.detail}`);
    }
    io.out(`-- ═══ Headless run: every confirmation it will need (${confirms.length})${typeof v.db === 'string' ? '; the password comes from PGPASSWORD or ~/.pgpass, never from this line' : '; the connection comes from DATABASE_URL / PG* as for this plan'}`);
    for (const n of notes) io.out(`-- note: ${n}`);
    io.out(command);
    return failed.length ? EXIT.badInput : 0;
  } finally {
    await engine.close();
  }
}

async function withDb<T>(v: Values, io: Io, fn: (db: Db, journal: Journal) => Promise<T>): Promise<T> {
  const conn = resolveConnection(v.db as string | undefined, io.env);
  const db = new Db(conn, 'pgshift-status', 2);
  try {
    await db.ping();
    const journal = await Journal.open(db, { create: false });
    return await fn(db, journal);
  } finally {
    await db.close();
  }
}

async function cmdStatus(args: string[], io: Io): Promise<number> {
  const v = parse('status', args);
  if (v.help) return (io.out(HELP.status!), 0);
  const limit = v.runs === undefined ? 10 : Number(v.runs);
  if (!Number.isInteger(limit) || limit < 1) throw new UserError(`--runs expects a positive whole number, got "${String(v.runs)}"`, 'e.g. --runs 5', 2);
  return withDb(v, io, async (db, journal) => {
    if (!journal.exists) {
      io.out('no pgshift journal in this database yet (schema "pgshift" does not exist): nothing has run here');
      return 0;
    }
    const runs = await journal.runs(limit);
    const steps = await journal.stepsOf(runs.map((r) => r.run_id));
    const confs = await journal.confirmationsOf(runs.map((r) => r.run_id));
    const states = await journal.stepStates();
    if (v.json) {
      io.out(JSON.stringify({ runs, steps, confirmations: confs, stepState: Object.fromEntries(states) }, null, 2));
      return 0;
    }
    for (const l of renderTable({
      title: `Runs (newest first)`,
      columns: ['run', 'status', 'operator', 'host', 'mode', 'phases', 'started', 'ended', 'message'],
      rows: runs.map((r) => [r.run_id, r.status, r.operator, r.host, r.mode, r.phases, r.started_at.toISOString().replace('T', ' ').slice(0, 19), r.ended_at ? r.ended_at.toISOString().replace('T', ' ').slice(0, 19) : '', r.message]),
    })) io.out(l);
    for (const r of runs) {
      const s = steps.filter((x) => Number(x.run_id) === Number(r.run_id));
      if (!s.length) continue;
      io.out('');
      for (const l of renderTable({
        title: `Run ${r.run_id} steps`,
        columns: ['step', 'status', 'time', 'result'],
        rows: s.map((x) => [x.step_id, x.status, x.duration_ms === null ? '' : fmtDuration(Number(x.duration_ms)), (x.error ?? x.summary ?? '').split('\n')[0]!]),
      }, 90)) io.out(l);
      // a failure with several lines (preflight: one per problem) in full
      for (const x of s) if (x.error?.includes('\n')) for (const l of [`${x.step_id} (run ${r.run_id}):`, ...x.error.split('\n').slice(1).map((e) => `  ✗ ${e}`)]) io.out(l);
    }
    if (confs.length) {
      io.out('');
      for (const l of renderTable({
        title: 'Confirmations',
        columns: ['run', 'step', 'action', 'object', 'answer', 'how', 'by', 'when'],
        rows: confs.map((c) => [c.run_id, c.step_id, c.kind, c.object, c.answer === 'confirmed' && c.reason ? 'OVERRIDE' : c.answer, c.method, c.confirmed_by, c.at.toISOString().replace('T', ' ').slice(0, 19)]),
      })) io.out(l);
      // an override confirmed a refused step: say what it overrode
      for (const c of confs.filter((x) => x.answer === 'confirmed' && x.reason)) io.out(`override: run ${c.run_id} ${c.kind} ${c.object} by ${c.confirmed_by} despite: ${c.reason}`);
    }
    return 0;
  });
}

async function cmdReport(args: string[], io: Io): Promise<number> {
  const v = parse('report', args);
  if (v.help) return (io.out(HELP.report!), 0);
  const format = (v.format as string | undefined) ?? 'md';
  if (format !== 'md' && format !== 'json') throw new UserError(`--format expects md or json, got "${format}"`, 'use --format md or --format json', 2);
  return withDb(v, io, async (_db, journal) => {
    const { renderIntegrityReport } = await import('./report.js');
    const report = await journal.getArtifact(Artifacts.integrityReport);
    if (!report) {
      io.err('no integrity report in the journal yet: run phase 3 (pgshift --phase 3) first');
      return 1;
    }
    io.out(renderIntegrityReport(report, format));
    return 0;
  });
}

async function cmdDemo(args: string[], io: Io): Promise<number> {
  const v = parse('demo', args);
  if (v.help) return (io.out(HELP.demo!), 0);
  const { runDemo } = await import('./demo/run.js');
  const rows = v.rows === undefined ? 1_000_000 : Number(String(v.rows).replace(/_/g, ''));
  if (!Number.isInteger(rows) || rows < 100 || rows > 100_000_000) throw new UserError(`--rows expects a whole number from 100 to 100000000, got "${String(v.rows)}"`, 'e.g. --rows 200000', 2);
  if (!v.headless && !io.isTTY) {
    // off a terminal the wizard cannot ask: never fall back to a run that auto-confirms every DROP unasked
    throw new UserError(
      'pgshift demo opens the wizard, but this is not a terminal (stdin or stdout is a pipe or a file): nothing was started',
      'run it in a terminal, or pass --headless to run the whole demo end to end with every destructive step auto-confirmed (a throwaway database), e.g. pgshift demo --headless | tee demo.log',
      2,
    );
  }
  return runDemo({
    rows, headless: !!v.headless, json: !!v.json, keep: !!v.keep, dataDir: v['data-dir'] as string | undefined,
    db: v.db as string | undefined, until: phaseArg(v.until, '--until'),
  }, io);
}

async function cmdControl(args: string[], io: Io): Promise<number> {
  const words: string[] = [];
  const v = parse('control', args, words);
  if (v.help) return (io.out(HELP.control!), 0);
  const cmd = parseControl(words);
  return withDb(v, io, async (db) => {
    const by = (v.operator as string | undefined) ?? operatorName();
    const id = await sendControl(db, { ...cmd, by, from: 'pgshift control' });
    const what = `${cmd.command}${cmd.value === null ? '' : ` ${cmd.value}`}`;
    const live = await liveRun(db);
    io.out(`control #${id}: ${what} (by ${by}) written to pgshift.control${live ? `; run ${live.runId} (${live.operator}) is live` : '; no pgshift run is live on this database right now'}`);
    if (v['no-wait']) return 0;
    for (let i = 0; i < 50; i++) {
      const r = await controlRow(db, id);
      if (r?.applied_at) {
        io.out(`control #${id}: ${r.result ?? 'applied'} (run ${r.applied_run ?? '?'})`);
        return 0;
      }
      await sleep(200);
    }
    io.out(`control #${id}: not applied within 10 s: it stays queued and the copy applies it at its next batch; a command older than the next run is never applied`);
    return 0;
  });
}

export async function main(argv: string[], io: Io): Promise<number> {
  const [first, ...rest] = argv;
  try {
    switch (first) {
      case 'plan': return await cmdPlan(rest, io);
      case 'status': return await cmdStatus(rest, io);
      case 'report': return await cmdReport(rest, io);
      case 'demo': return await cmdDemo(rest, io);
      case 'control': return await cmdControl(rest, io);
      case 'schema': {
        const v = parse('schema', rest);
        if (v.help) return (io.out(HELP.schema!), 0);
        io.out(JSON.stringify(planJsonSchema(), null, 2));
        return 0;
      }
      case 'help': io.out(HELP.main!); return 0;
      default:
        if (first !== undefined && !first.startsWith('-')) {
          throw new UserError(`unknown command "${first}"`, 'commands: plan, status, report, demo, control, schema (see pgshift --help)', 2);
        }
        return await cmdRun(argv, io);
    }
  } catch (e) {
    if (e instanceof UserError) {
      io.err(`pgshift: ${redact(e.message)}`);
      if (e.hint) io.err(`hint: ${redact(e.hint)}`);
      return e.exitCode;
    }
    const err = e as Error & { code?: string };
    io.err(`pgshift: ${redact(err.message ?? String(e))}${err.code ? ` (SQLSTATE ${err.code})` : ''}`);
    if (io.env.PGSHIFT_DEBUG) io.err(redact(String(err.stack)));
    return EXIT.failed;
  }
}

export const defaultIo: Io = {
  out: (l) => process.stdout.write(redact(l) + '\n'),
  err: (l) => process.stderr.write(redact(l) + '\n'),
  raw: (l) => process.stdout.write(l + '\n'),
  isTTY: !!(process.stdout.isTTY && process.stdin.isTTY),
  env: process.env,
};
