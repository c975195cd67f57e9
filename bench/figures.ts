/**
 * The README's figures table, produced by the benches: runs bench/copy.ts and bench/cutover.ts with --json (each
 * measures against its own baseline in the same run), then prints the table from their JSON output. Exits non-zero
 * when a bench fails, a bench reports a target missed, or the writer saw errors — a figure nobody can reproduce is not
 * printed.
 *
 *   npm run bench:figures [-- --rows 2000000] [-- --cutover-rows 200000] [-- --json]
 */
import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  if (i < 0) return fallback;
  const v = Number(String(process.argv[i + 1]).replace(/_/g, ''));
  if (!Number.isInteger(v) || v <= 0) throw new Error(`--${name} expects a positive whole number, got "${process.argv[i + 1]}"`);
  return v;
}
const ROWS = arg('rows', 2_000_000);
const CUTOVER_ROWS = arg('cutover-rows', 200_000);
const asJson = process.argv.includes('--json');

type Figures = Record<string, unknown>;

/** Runs one compiled bench with --json; its progress goes to stderr, its last JSON line is the result. */
function runBench(file: string, args: string[]): Promise<{ code: number | null; result: Figures | null }> {
  return new Promise((resolve) => {
    process.stderr.write(`== ${file} ${args.join(' ')}\n`);
    const child = spawn(process.execPath, [path.join(here, file), '--json', ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.on('exit', (code) => {
      const line = out.trim().split('\n').reverse().find((l) => l.startsWith('{'));
      let result: Figures | null;
      try {
        result = line ? (JSON.parse(line) as Figures) : null;
      } catch {
        result = null;
      }
      resolve({ code, result });
    });
  });
}

const num = (v: unknown): number | null => (typeof v === 'number' && Number.isFinite(v) ? v : null);
const fmt = (v: unknown, digits = 2, unit = ''): string => {
  const n = num(v);
  return n === null ? 'not measured' : `${n.toLocaleString('en-US', { maximumFractionDigits: digits })}${unit}`;
};

const failures: string[] = [];
const rows: [string, string][] = [];

const copy = await runBench('copy.js', ['--rows', String(ROWS)]);
if (copy.code !== 0 || !copy.result) failures.push(`bench/copy exited ${copy.code}${copy.result ? '' : ' without a JSON result'}`);
if (copy.result) {
  const c = copy.result;
  rows.push([
    `batch copy, ${ROWS.toLocaleString('en-US')} rows, ${fmt(c.batch_rows, 0)}-row batches, vs one \`INSERT … SELECT\` of everything`,
    `${fmt(c.ratio_batch, 2, '×')} (the seed's LIMIT/OFFSET loop: ${fmt(c.ratio_offset, 1, '×')}${c.offset_extrapolated ? ', extrapolated' : ''})`,
  ]);
  rows.push([
    'online copy with a concurrent writer: writer p99 vs the same writer on an idle database',
    `${fmt(c.ratio_writer_p99, 2, '×')} (${fmt(c.writer_errors_online, 0)} writer errors)`,
  ]);
  if (num(c.writer_errors_online) !== 0) failures.push(`bench/copy: the online writer saw ${fmt(c.writer_errors_online, 0)} errors`);
  if (c.online_content_equal === false) failures.push('bench/copy: the online copy\'s content differs from the source');
}

const cut = await runBench('cutover.js', ['--rows', String(CUTOVER_ROWS)]);
if (cut.code !== 0 || !cut.result) failures.push(`bench/cutover exited ${cut.code}${cut.result ? '' : ' without a JSON result'}`);
if (cut.result) {
  const c = cut.result;
  rows.push([
    `cut-over of ${CUTOVER_ROWS.toLocaleString('en-US')} rows under a live writer: exclusive lock held / longest writer wait`,
    `${fmt(c.lock_held_ms, 0, ' ms')} / ${fmt(c.max_writer_wait_ms, 0, ' ms')}`,
  ]);
  rows.push([
    'the same with a session holding a lock for 10 s (lock_timeout 1 s)',
    `${fmt(c.lock_held_ms_blocker, 0, ' ms')} / ${fmt(c.max_writer_wait_ms_blocker, 0, ' ms')}`,
  ]);
  if (num(c.writer_errors) !== 0) failures.push(`bench/cutover: the writer saw ${fmt(c.writer_errors, 0)} errors`);
}

// every target a bench reports ({ targets: { name: boolean } }) must be met
for (const [name, r] of [['copy', copy.result], ['cutover', cut.result]] as const) {
  const targets = r && typeof r.targets === 'object' && r.targets !== null ? (r.targets as Record<string, unknown>) : {};
  for (const [t, ok] of Object.entries(targets)) if (ok !== true) failures.push(`bench/${name}: target ${t} missed`);
}

if (asJson) {
  console.log(JSON.stringify({ rows: rows.map(([what, figure]) => ({ what, figure })), copy: copy.result, cutover: cut.result, failures }));
} else {
  console.log('| what | figure |');
  console.log('| --- | --- |');
  for (const [what, figure] of rows) console.log(`| ${what} | ${figure} |`);
  for (const f of failures) console.error(`MISSED: ${f}`);
}
process.exitCode = failures.length ? 1 : 0;
