import fs from 'node:fs';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { packageRoot } from '../../source/paths.js';

/**
 * pgshift as an operator runs it: `bin/pgshift.js --headless --json … --confirm OBJECT`, a child process reading
 * DATABASE_URL; every JSON event line is kept (and written to a file), and handed to onEvent as it arrives.
 */

export interface CliEvent {
  readonly ts: string;
  readonly type: string;
  readonly stepId?: string;
  readonly status?: string;
  readonly summary?: string;
  readonly message?: string;
  readonly level?: string;
  readonly error?: string;
  readonly hint?: string;
  readonly data?: Record<string, unknown>;
  readonly [k: string]: unknown;
}

export interface CliRun {
  readonly code: number | null;
  readonly events: CliEvent[];
  readonly stderr: string;
  readonly startedAt: number;
  readonly endedAt: number;
}

export function runPgshift(opts: {
  args: string[];
  databaseUrl: string;
  logFile: string;
  onEvent?: (e: CliEvent) => void;
  /** SIGINT after this many ms (pgshift commits its checkpoint and exits 130), SIGKILL 60 s later */
  timeoutMs: number;
}): { done: Promise<CliRun>; kill(): void } {
  const startedAt = Date.now();
  const child = spawn(process.execPath, [path.join(packageRoot(), 'bin', 'pgshift.js'), '--headless', '--json', '--operator', 'bench', ...opts.args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, DATABASE_URL: opts.databaseUrl, CI: '1' },
  });
  const events: CliEvent[] = [];
  const log = fs.createWriteStream(opts.logFile);
  let stderr = '';
  let partial = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => {
    log.write(d);
    const parts = (partial + d).split('\n');
    partial = parts.pop()!;
    for (const line of parts) {
      if (!line.trim()) continue;
      let e: CliEvent;
      try {
        e = JSON.parse(line) as CliEvent;
      } catch {
        continue;
      }
      events.push(e);
      opts.onEvent?.(e);
    }
  });
  child.stderr.setEncoding('utf8').on('data', (d: string) => { stderr += d; log.write(d); });
  let exited = false;
  const int = setTimeout(() => child.kill('SIGINT'), opts.timeoutMs);
  const kill9 = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs + 60_000);
  const done = new Promise<CliRun>((resolve, reject) => {
    child.on('error', reject);
    child.on('exit', (code) => {
      exited = true;
      clearTimeout(int);
      clearTimeout(kill9);
      log.end();
      resolve({ code, events, stderr, startedAt, endedAt: Date.now() });
    });
  });
  return { done, kill: () => { if (!exited) child.kill('SIGKILL'); } };
}

const num = (s: string) => Number(s.replace(/,/g, ''));

function firstNumber(obj: unknown, keys: readonly string[]): number | null {
  if (!obj || typeof obj !== 'object') return null;
  for (const k of keys) {
    const v = (obj as Record<string, unknown>)[k];
    if (typeof v === 'number' && Number.isFinite(v)) return v;
  }
  return null;
}

/** What a swap or swap-back step reports: the lock held (its own figure) and the changes applied under that lock. */
export interface LockReport {
  readonly lockHeldMs: number | null;
  readonly changesUnderLock: number | null;
  /** epoch ms: when the step said the locks were granted, and when the step ended */
  readonly lockedAt: number | null;
  readonly doneAt: number | null;
  readonly status: string | null;
  readonly summary: string | null;
}

/**
 * From the step's events: `exclusive lock held N ms` (summary, log line or data.lockHeldMs) and the number of
 * changes applied under the lock (data field, or the summary's "N … change(s) applied under the lock" / "N captured
 * change(s) applied").
 */
export function lockReport(events: readonly CliEvent[], stepId: string): LockReport {
  const mine = events.filter((e) => e.stepId === stepId);
  const done = mine.find((e) => e.type === 'step-done' && e.status !== 'already-done');
  const texts = [done?.summary ?? '', ...mine.filter((e) => e.type === 'step-log').map((e) => e.message ?? '')];
  let lockHeldMs = firstNumber(done?.data, ['lockHeldMs']);
  if (lockHeldMs === null) {
    for (const t of texts) {
      const m = /exclusive lock held ([\d,]+) ms/.exec(t);
      if (m) { lockHeldMs = num(m[1]!); break; }
    }
  }
  let changesUnderLock = firstNumber(done?.data, ['changesUnderLock', 'appliedUnderLock', 'underLock', 'drained']);
  if (changesUnderLock === null) {
    for (const t of texts) {
      const m = /([\d,]+) (?:captured |pending |reverse |)?(?:change|row)\(?s?\)? (?:applied|carried)[^;.]*under the lock/.exec(t)
        ?? (stepId.startsWith('swap:') ? /([\d,]+) captured change\(s\) applied/.exec(t) : null);
      if (m) { changesUnderLock = num(m[1]!); break; }
    }
  }
  const granted = mine.filter((e) => e.type === 'step-log' && /locks? (?:granted|taken|acquired)/i.test(e.message ?? '')).at(-1);
  return {
    lockHeldMs, changesUnderLock,
    lockedAt: granted ? Date.parse(granted.ts) : null,
    doneAt: done ? Date.parse(done.ts) : null,
    status: done?.status ?? null,
    summary: done?.summary ?? null,
  };
}

/**
 * Capture and replay rates (changes/s) as pgshift reports them before a lock: fields named like captured / applied /
 * capacity per second (event, data or progress), or text such as "captured 1,234/s · applied 1,200/s (replay
 * capacity ~5,000/s)". The last figures reported before `before` (epoch ms) are returned; null when none is reported.
 * `replay` is what the replay can apply per second (its capacity) when reported, else what it applied per second.
 */
export function rates(events: readonly CliEvent[], before: number | null): { capture: number | null; applied: number | null; capacity: number | null; replay: number | null; samples: number } {
  let capture: number | null = null, applied: number | null = null, capacity: number | null = null, samples = 0;
  const capKeys = ['capturedPerSec', 'captureRate', 'capturePerSec'];
  const appKeys = ['appliedPerSec', 'applyRate', 'applyPerSec', 'replayRate', 'replayPerSec'];
  const capaKeys = ['capacityPerSec', 'replayCapacity', 'applyCapacity'];
  for (const e of events) {
    if (before !== null && Date.parse(e.ts) > before) break;
    let c: number | null = null, a: number | null = null, k: number | null = null;
    for (const o of [e, e.data, (e as { progress?: unknown }).progress]) {
      c ??= firstNumber(o, capKeys);
      a ??= firstNumber(o, appKeys);
      k ??= firstNumber(o, capaKeys);
    }
    const text = [e.message, e.summary, (e as { progress?: { detail?: string } }).progress?.detail].filter(Boolean).join(' ');
    const grab = (re: RegExp) => { const m = re.exec(text); return m ? num(m[1]!) : null; };
    c ??= grab(/captured ~?([\d,.]+) ?(?:changes?|rows?)?\/s/i);
    a ??= grab(/(?:applied|replayed) ~?([\d,.]+) ?(?:changes?|rows?)?\/s/i);
    k ??= grab(/capacity ~?([\d,.]+) ?(?:changes?|rows?)?\/s/i);
    if (c !== null) capture = c;
    if (a !== null) applied = a;
    if (k !== null) capacity = k;
    if (c !== null || a !== null || k !== null) samples++;
  }
  return { capture, applied, capacity, replay: capacity ?? applied, samples };
}
