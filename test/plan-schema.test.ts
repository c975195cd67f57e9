import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { main } from '../source/cli.js';
import { parsePlanText, planJsonSchema } from '../source/plan/load.js';
import { freshDatabase, type FreshDb } from './helpers/db.js';
import { captureIo } from './helpers/io.js';

const base = {
  version: 1,
  name: 'test plan',
  partition: [{ source: 'public.events', strategy: 'range', key: 'created_at', interval: '1 month' }],
};
const p0 = base.partition[0]!;

/** [case, plan text or object, exact error line expected after "the plan is not valid:"] */
const CASES: [string, unknown, string][] = [
  ['interval spelled monthly', { ...base, partition: [{ ...p0, interval: 'monthly' }] },
    'partition[0].interval: expected one of "1 day", "1 week", "1 month", "3 months", "1 year" (date/timestamp keys) or a whole number > 0 such as 100000 (integer keys), got "monthly"'],
  ['interval a negative number', { ...base, partition: [{ ...p0, interval: -5 }] },
    'partition[0].interval: expected a number > 0, got -5'],
  ['unknown strategy', { ...base, partition: [{ ...p0, strategy: 'hash' }] },
    'partition[0].strategy: expected one of "range", "list", got "hash"'],
  ['missing version', { name: 'x' }, 'version: expected 1, got nothing'],
  ['future version', { ...base, version: 2 }, 'version: expected 1, got 2'],
  ['range without interval', { ...base, partition: [{ source: 't', strategy: 'range', key: 'k' }] },
    'partition[0].interval: expected one of "1 day", "1 week", "1 month", "3 months", "1 year" (date/timestamp keys) or a whole number such as 100000 (integer keys) for a range partitioning'],
  ['list without values', { ...base, partition: [{ source: 't', strategy: 'list', key: 'k' }] },
    'partition[0].values: expected { "query": "SELECT …" } giving the list values for a list partitioning'],
  ['misspelled top-level key', { ...base, partitions: [] }, 'plan: unknown key "partitions" (check the spelling; see plan.schema.json)'],
  ['batch size too small', { ...base, copy: { batchRows: 0 } }, 'copy.batchRows: expected a number ≥ 100, got 0'],
  ['batch size as a string', { ...base, copy: { batchRows: '10000' } }, 'copy.batchRows: expected a number, got "10000"'],
  ['batch size fractional', { ...base, copy: { batchRows: 1000.5 } }, 'copy.batchRows: expected a whole number, got 1000.5'],
  ['unknown copy mode', { ...base, copy: { mode: 'fast' } }, 'copy.mode: expected one of "batch", "online", got "fast"'],
  ['missing partition key', { ...base, partition: [{ source: 't', strategy: 'range', interval: '1 month' }] },
    'partition[0].key: expected a string, got nothing'],
  ['start not a date', { ...base, partition: [{ ...p0, start: '2024/01/01' }] },
    'partition[0].start: expected a date YYYY-MM-DD, got "2024/01/01"'],
  ['negative retention', { ...base, retention: { days: -1 } }, 'retention.days: expected a number ≥ 0, got -1'],
  ['empty name', { ...base, name: '' }, 'name: expected a name for this migration, got ""'],
  ['auto partitions on range', { ...base, partition: [{ ...p0, autoPartitions: { table: 'programs', column: 'id' } }] },
    'partition[0].autoPartitions: automatic partitions are for list partitioning only'],
  ['lock timeout too short', { ...base, locks: { timeoutMs: 5 } }, 'locks.timeoutMs: expected a number ≥ 50, got 5'],
  ['unknown backup format', { ...base, backup: { format: 'sql' } }, 'backup.format: expected one of "custom", "directory", got "sql"'],
  ['backup compression past gzip\'s 9', { ...base, backup: { compress: 12 } }, 'backup.compress: expected a number ≤ 9, got 12'],
  ['partition is not a list', { ...base, partition: { source: 't' } }, 'partition: expected an array, got an object'],
  ['unknown key in a partition entry', { ...base, partition: [{ ...p0, partitionKey: 'x' }] },
    'partition[0]: unknown key "partitionKey" (check the spelling; see plan.schema.json)'],
];

/** [case, file name, text, exact first error line] for errors found before or after schema validation */
const FILE_CASES: [string, string, string, RegExp][] = [
  ['broken JSON', 'p.json', '{ "version": 1,', /^pgshift: p\.json: not valid JSON: /],
  ['broken YAML', 'p.yaml', 'version: 1\nname: [unclosed', /^pgshift: p\.yaml: not valid YAML: /],
  ['a list at the top', 'p.json', '[1, 2]', /^pgshift: p\.json: expected an object at the top of the plan, got an array$/],
  ['missing SQL file', 'p.json', JSON.stringify({ ...base, sql: { structure: ['sql/nope.sql'] } }), /^pgshift: sql\.structure\[0\]: file not found: sql\/nope\.sql \(relative to /],
  ['table listed twice', 'p.json', JSON.stringify({ ...base, partition: [p0, { ...p0, source: 'events' }] }), /^pgshift: partition\[1\]\.source: public\.events is listed twice$/],
  ['three-part table name', 'p.json', JSON.stringify({ ...base, partition: [{ ...p0, source: 'a.b.c' }] }), /^pgshift: partition\[0\]\.source: expected "table" or "schema\.table", got "a\.b\.c"$/],
];

describe('plan file validation', () => {
  let db: FreshDb;
  let dir: string;
  beforeAll(async () => {
    db = await freshDatabase('plan_schema');
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pgshift-plans-'));
  });
  afterAll(async () => {
    await db.drop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  async function untouched() {
    const r = await db.client.query<{ n: number }>(`SELECT count(*)::int AS n FROM pg_namespace WHERE nspname = 'pgshift'`);
    const t = await db.client.query<{ n: number }>(`SELECT count(*)::int AS n FROM pg_class WHERE relnamespace = 'public'::regnamespace`);
    return r.rows[0]!.n === 0 && t.rows[0]!.n === 0;
  }

  it.each(CASES)('%s: names the path and what was expected, exit 2, database untouched', async (name, plan, line) => {
    const file = path.join(dir, `${name.replace(/\W+/g, '_')}.json`);
    fs.writeFileSync(file, JSON.stringify(plan));
    for (const argv of [['plan', '--plan', file, '--db', db.url], ['--headless', '--plan', file, '--db', db.url]]) {
      const io = captureIo();
      const code = await main(argv, io);
      expect(code).toBe(2);
      expect(io.stderr[0]).toBe(`pgshift: ${file}: the plan is not valid:\n  ${line}`);
      expect(io.stderr[1]).toBe('hint: fix the plan file; nothing was changed in the database');
    }
    expect(await untouched()).toBe(true);
  });

  it.each(FILE_CASES)('%s: one clear line, exit 2, database untouched', async (_name, fileName, text, re) => {
    const sub = fs.mkdtempSync(path.join(dir, 'f-'));
    fs.writeFileSync(path.join(sub, fileName), text);
    const io = captureIo();
    const cwd = process.cwd();
    process.chdir(sub);
    try {
      const code = await main(['--headless', '--plan', fileName, '--db', db.url], io);
      expect(code).toBe(2);
    } finally {
      process.chdir(cwd);
    }
    expect(io.stderr[0]).toMatch(re);
    expect(await untouched()).toBe(true);
  });

  it('reports every problem of a plan at once', async () => {
    const file = path.join(dir, 'many.json');
    fs.writeFileSync(file, JSON.stringify({ ...base, copy: { mode: 'fast', batchRows: 1 }, retention: { days: 'week' } }));
    const io = captureIo();
    expect(await main(['plan', '--plan', file, '--db', db.url], io)).toBe(2);
    const lines = io.stderr[0]!.split('\n').slice(1).map((l) => l.trim());
    expect(lines).toEqual(expect.arrayContaining([
      'copy.mode: expected one of "batch", "online", got "fast"',
      'copy.batchRows: expected a number ≥ 100, got 1',
      'retention.days: expected a number, got "week"',
    ]));
  });

  it('a YAML plan reads as its JSON twin (the YAML parser is loaded only for it)', () => {
    const yaml = [
      'version: 1',
      'name: yaml plan',
      'partition:',
      '  - source: public.events',
      '    strategy: range',
      '    key: created_at',
      "    interval: '1 month'",
      'copy:',
      '  mode: online',
      '  batchRows: 5000',
      'backup:',
      '  compress: 3',
    ].join('\n');
    const json = JSON.stringify({ ...base, name: 'yaml plan', copy: { mode: 'online', batchRows: 5000 }, backup: { compress: 3 } });
    const fromYaml = parsePlanText(yaml, 'p.yml');
    expect(fromYaml).toEqual(parsePlanText(json, 'p.json'));
    expect(fromYaml.copy.batchRows).toBe(5000);
    expect(fromYaml.backup.compress).toBe(3);
  });

  it('a missing plan file is named, exit 2', async () => {
    const io = captureIo();
    expect(await main(['--headless', '--plan', path.join(dir, 'absent.json'), '--db', db.url], io)).toBe(2);
    expect(io.stderr[0]).toBe(`pgshift: cannot read the plan file ${path.join(dir, 'absent.json')}: no such file`);
  });

  it('the example plan is valid and the committed JSON Schema is current', async () => {
    const root = path.resolve(__dirname, '..');
    const committed = JSON.parse(fs.readFileSync(path.join(root, 'plan.schema.json'), 'utf8')) as unknown;
    expect(committed).toEqual(JSON.parse(JSON.stringify(planJsonSchema())));
    const io = captureIo();
    expect(await main(['schema'], io)).toBe(0);
    expect(JSON.parse(io.stdout.join('\n'))).toEqual(committed);
  });
});
