import fs from 'node:fs';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { resolveConnection, redact, type ConnectionInfo } from './db/connection.js';
import { Engine, ALL_PHASES, operatorName, type RunOutcome } from './engine/engine.js';
import { flagConfirmer } from './engine/confirm.js';
import { UserError, EXIT } from './engine/errors.js';
import type { ConfirmFn, PhaseId } from './engine/types.js';
import { loadPlan, planJsonSchema, type LoadedPlan } from './plan/load.js';
import { headlessReporter } from './headless.js';
import { renderTable, fmtDuration } from './format.js';
import { VERSION } from './version.js';
import { Journal } from './engine/journal.js';
import { Db, sleep } from './db/session.js';
import { controlRow, liveRun, parseControl, sendControl } from './copy/control.js';

export interface Io {
  out(line: string): void;
  err(line: string): void;
  readonly isTTY: boolean;
  readonly env: NodeJS.ProcessEnv;
}

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

Starts an embedded PostgreSQL (port chosen free, data in the OS temp dir unless --data-dir, removed on exit
unless --keep), fills it with the seeds' schema and N petri observations (default 1,000,000; gasifier N/2),
then opens the wizard on the example plan. --headless runs the whole plan end to end, destructive steps
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
  if (!Number.isInteger(n) || n < 1 || n > 5) throw new UserError(`${flag} expects a phase number from 1 to 5, got "${String(v)}"`, '1 Preparation, 2 Structure, 3 Data, 4 Dependencies, 5 Cleanup', 2);
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

export function exitFor(o: RunOutcome): number {
  switch (o.status) {
    case 'completed': return EXIT.ok;
    case 'needs-confirmation': case 'stopped': return EXIT.needsConfirmation;
    case 'aborted': return EXIT.aborted;
    default: return EXIT.failed;
  }
}

export interface RunSetup {
  readonly conn: ConnectionInfo;
  readonly loaded: LoadedPlan;
  readonly phases: PhaseId[];
  readonly headless: boolean;
  readonly json: boolean;
  readonly confirms: Set<string>;
  readonly overrides: Set<string>;
  readonly demo: boolean;
  readonly operator: string;
}

/** Runs the engine headless or in the wizard; returns the exit code. */
export async function runEngine(setup: RunSetup, io: Io): Promise<number> {
  const wizard = !setup.headless && io.isTTY;
  let confirm: ConfirmFn = flagConfirmer({ confirms: setup.confirms, overrides: setup.overrides, operator: setup.operator, demo: setup.demo });
  // in the wizard an early drop is offered behind its refusal: the operator types the name and OVERRIDE
  const overrides = wizard ? new Set([...setup.overrides, 'force-retention']) : setup.overrides;
  const engine = await Engine.open({
    conn: setup.conn, loaded: setup.loaded, confirm: (r) => confirm(r), operator: setup.operator,
    mode: setup.demo ? (wizard ? 'demo-wizard' : 'demo-headless') : wizard ? 'wizard' : 'headless',
    overrides, demo: setup.demo,
  });
  try {
    if (wizard) {
      const { runWizard } = await import('./ui/wizard.js');
      return await runWizard({ engine, phases: setup.phases, conn: setup.conn, demo: setup.demo, setConfirm: (fn) => { confirm = fn; } });
    }
    const ac = new AbortController();
    let interrupts = 0;
    const onSig = () => {
      interrupts++;
      if (interrupts === 1) {
        io.err('interrupt: finishing the current batch and committing its checkpoint (Ctrl+C again to force)');
        ac.abort();
      } else process.exit(EXIT.aborted);
    };
    process.on('SIGINT', onSig);
    process.on('SIGTERM', onSig);
    const report = headlessReporter(io.out, { json: setup.json });
    if (!setup.json) io.out(`pgshift ${VERSION} · ${setup.conn.display} · PostgreSQL ${engine.serverVersion} · operator ${setup.operator}${setup.demo ? ' · demo (destructive steps auto-confirmed)' : ''}`);
    engine.on(report);
    const outcome = await engine.run({ phases: setup.phases, signal: ac.signal });
    process.off('SIGINT', onSig);
    process.off('SIGTERM', onSig);
    if (outcome.status !== 'completed' && outcome.hint && !setup.json) io.err(`hint: ${outcome.hint}`);
    return exitFor(outcome);
  } finally {
    await engine.close();
  }
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

async function cmdPlan(args: string[], io: Io): Promise<number> {
  const v = parse('plan', args);
  if (v.help) return (io.out(HELP.plan!), 0);
  const phases = selectPhases(v);
  const loaded = loadPlan(findPlan(v));
  const conn = resolveConnection(v.db as string | undefined, io.env);
  const engine = await Engine.open({ conn, loaded, confirm: async () => ({ confirmed: false, method: 'declined', by: '' }), mode: 'plan', dryRun: true });
  try {
    const preview = await engine.preview(phases);
    if (v.json) {
      io.out(JSON.stringify(preview.map((p) => ({ phase: p.phase.id, name: p.phase.name, steps: p.steps.map((s) => ({ id: s.step.id, title: s.step.title, statements: s.statements })) })), null, 2));
      return 0;
    }
    io.out(`-- pgshift plan: ${loaded.plan.name} against ${conn.display} (PostgreSQL ${engine.serverVersion})`);
    io.out(`-- dry run: nothing below has been executed`);
    for (const p of preview) {
      io.out('');
      io.out(`-- ═══ Phase ${p.phase.id} · ${p.phase.name} (${p.steps.length} step${p.steps.length === 1 ? '' : 's'})`);
      for (const s of p.steps) {
        io.out(`-- ▶ ${s.step.id}: ${s.step.title}`);
        for (const st of s.statements) io.out(st.trimEnd().endsWith(';') || st.startsWith('$ ') || st.startsWith('--') ? st : `${st};`);
      }
    }
    return 0;
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
    const steps = await db.read<{ run_id: string; step_id: string; status: string; started_at: Date; duration_ms: string | null; summary: string | null; error: string | null }>(
      `SELECT run_id, step_id, status, started_at, duration_ms, summary, error FROM pgshift.steps WHERE run_id = ANY($1::bigint[]) ORDER BY run_id, started_at`,
      [runs.map((r) => r.run_id)],
    );
    const confs = await db.read<{ run_id: string; step_id: string; kind: string; object: string; answer: string; method: string; confirmed_by: string; at: Date }>(
      `SELECT run_id, step_id, kind, object, answer, method, confirmed_by, at FROM pgshift.confirmations WHERE run_id = ANY($1::bigint[]) ORDER BY at`,
      [runs.map((r) => r.run_id)],
    );
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
        rows: s.map((x) => [x.step_id, x.status, x.duration_ms === null ? '' : fmtDuration(Number(x.duration_ms)), x.error ?? x.summary]),
      }, 90)) io.out(l);
    }
    if (confs.length) {
      io.out('');
      for (const l of renderTable({
        title: 'Confirmations',
        columns: ['run', 'step', 'action', 'object', 'answer', 'how', 'by', 'when'],
        rows: confs.map((c) => [c.run_id, c.step_id, c.kind, c.object, c.answer, c.method, c.confirmed_by, c.at.toISOString().replace('T', ' ').slice(0, 19)]),
      })) io.out(l);
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
    const report = await journal.getArtifact('integrity-report');
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
  return runDemo({
    rows, headless: !!v.headless || !io.isTTY, json: !!v.json, keep: !!v.keep, dataDir: v['data-dir'] as string | undefined,
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
  isTTY: !!(process.stdout.isTTY && process.stdin.isTTY),
  env: process.env,
};
