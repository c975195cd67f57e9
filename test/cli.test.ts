import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { main } from '../source/cli.js';
import { resolveConnection, redact } from '../source/db/connection.js';
import { dollarQuote, ident, qname, literal, parseQualified } from '../source/db/quote.js';
import pg from 'pg';
import { createDemoDatabase } from '../source/demo/schema.js';
import { examplePlanPath } from '../source/paths.js';
import { VERSION } from '../source/version.js';
import { freshDatabase, serverUrl, type FreshDb } from './helpers/db.js';
import { captureIo } from './helpers/io.js';

describe('command line', () => {
  it('--version and --help on every command', async () => {
    let io = captureIo();
    expect(await main(['--version'], io)).toBe(0);
    expect(io.stdout).toEqual([VERSION]);
    for (const cmd of [[], ['plan'], ['status'], ['report'], ['demo'], ['schema']]) {
      io = captureIo();
      expect(await main([...cmd, '--help'], io)).toBe(0);
      expect(io.stdout.join('\n')).toMatch(/^pgshift/);
    }
  });

  it('bad arguments: one line naming what is wrong, a hint, exit 2', async () => {
    const cases: [string[], RegExp][] = [
      [['frobnicate'], /^pgshift: unknown command "frobnicate"$/],
      [['--until', '9', '--plan', 'x.json'], /^pgshift: --until expects a phase number from 1 to 5, got "9"$/],
      [['--phase', 'two', '--plan', 'x.json'], /^pgshift: --phase expects a phase number from 1 to 5, got "two"$/],
      [['--phase', '2', '--until', '3', '--plan', 'x.json'], /^pgshift: --phase and --until cannot be combined$/],
      [['--rollback', '--phase', '3'], /^pgshift: --rollback cannot be combined with --phase or --until$/],
      [['--frob'], /^pgshift: Unknown option '--frob'/],
      [['demo', '--rows', 'many'], /^pgshift: --rows expects a whole number from 100 to 100000000, got "many"$/],
      [['report', '--format', 'pdf'], /^pgshift: --format expects md or json, got "pdf"$/],
      [['--headless'], /^pgshift: no plan file given$/],
      [['plan', '--plan', examplePlanPath(), '--db', 'mysql://x@y/z'], /^pgshift: the database URL must start with postgres:\/\/ or postgresql:\/\/, got mysql:\/\/$/],
      [['plan', '--plan', examplePlanPath(), '--db', 'postgres://u:p@h/db?sslmode=maybe'], /^pgshift: unknown sslmode "maybe"$/],
    ];
    for (const [argv, re] of cases) {
      const io = captureIo();
      const cwd = process.cwd();
      process.chdir(os.tmpdir());
      try {
        expect(await main(argv, io), argv.join(' ')).toBe(2);
      } finally {
        process.chdir(cwd);
      }
      expect(io.stderr[0], argv.join(' ')).toMatch(re);
      expect(io.stderr[1], argv.join(' ')).toMatch(/^hint: /);
    }
  });
});

describe('quoting: one helper for identifiers, literals only where parameters are impossible', () => {
  it('quotes identifiers that need it and doubles embedded quotes', () => {
    expect(ident('petri_observations')).toBe('"petri_observations"');
    expect(ident('Odd "Obs" Table')).toBe('"Odd ""Obs"" Table"');
    expect(qname('My Schema', 'x')).toBe('"My Schema"."x"');
    expect(() => ident('')).toThrow(/empty/);
    expect(literal("it's")).toBe("'it''s'");
    expect(literal('a\\b')).toBe(" E'a\\\\b'");
    expect(parseQualified('"My ""S"".x"."t.y"')).toEqual({ schema: 'My "S".x', name: 't.y' });
    expect(parseQualified('orders')).toEqual({ schema: 'public', name: 'orders' });
    expect(() => parseQualified('a.b.c')).toThrow(/expected "table" or "schema.table"/);
  });

  it('dollar-quotes function bodies with a tag the body does not contain (a quoted identifier cannot close it)', async () => {
    expect(dollarQuote('\nBEGIN RETURN NULL; END')).toBe('$pgshift$\nBEGIN RETURN NULL; END\n$pgshift$');
    const body = `\nBEGIN INSERT INTO ${ident('log$pgshift$x')} VALUES (NEW.${ident('k$pgshift_$')}); END`;
    const q = dollarQuote(body);
    expect(q.startsWith('$pgshift__$')).toBe(true);
    const c = new pg.Client({ connectionString: serverUrl() });
    await c.connect();
    try {
      expect((await c.query<{ v: string }>(`SELECT ${q}::text AS v`)).rows[0]!.v).toBe(`${body}\n`);
    } finally {
      await c.end();
    }
  });
});

describe('connections and secrets', () => {
  let db: FreshDb;
  let dir: string;
  const password = new URL(serverUrl()).password;
  beforeAll(async () => {
    db = await freshDatabase('cli_secrets');
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pgshift-cli-'));
  });
  afterAll(async () => {
    await db.drop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('resolves --db, then DATABASE_URL, then PG* variables; sslmode honoured', () => {
    const env = { DATABASE_URL: 'postgres://a:sekret1@h1:5433/d1', PGHOST: 'h2', PGUSER: 'b', PGDATABASE: 'd2', PGPASSWORD: 'sekret2' };
    expect(resolveConnection('postgres://c:sekret3@h3/d3?sslmode=require', env).display).toBe('c@h3:5432/d3');
    expect(resolveConnection('postgres://c:sekret3@h3/d3?sslmode=require', env).config.ssl).toEqual({ rejectUnauthorized: false });
    expect(resolveConnection(undefined, env).display).toBe('a@h1:5433/d1');
    const pgOnly: Partial<typeof env> = { ...env };
    delete pgOnly.DATABASE_URL;
    const r = resolveConnection(undefined, pgOnly);
    expect(r.display).toBe('b@h2:5432/d2');
    expect(r.childEnv.PGPASSWORD).toBe('sekret2');
    expect(redact('postgres://a:sekret1@h1/d and sekret2 and password=sekret3')).toBe('postgres://a:****@h1/d and **** and password=****');
  });

  it('a wrong password, host or database: one line with the cause and a hint, exit 1, no secret printed', async () => {
    const u = new URL(db.url);
    const wrongPw = new URL(db.url);
    wrongPw.password = 'Wr0ngPassw0rd!';
    const noDb = new URL(db.url);
    noDb.pathname = '/no_such_database';
    const noHost = new URL(db.url);
    noHost.port = '1';
    const cases: [string, RegExp, RegExp][] = [
      [wrongPw.toString(), /^pgshift: cannot connect to postgres@127\.0\.0\.1:\d+\/t_cli_secrets_\w+: password authentication failed$/, /^hint: check the user and password/],
      [noDb.toString(), /^pgshift: cannot connect to postgres@127\.0\.0\.1:\d+\/no_such_database: database does not exist$/, /^hint: check the database name/],
      [noHost.toString(), /^pgshift: cannot connect to postgres@127\.0\.0\.1:1\/t_cli_secrets_\w+: connection refused$/, /^hint: is the server running/],
    ];
    for (const [url, first, hint] of cases) {
      const io = captureIo();
      expect(await main(['plan', '--plan', examplePlanPath(), '--db', url], io)).toBe(1);
      expect(io.stderr[0]).toMatch(first);
      expect(io.stderr[1]).toMatch(hint);
      expect(io.text()).not.toContain('Wr0ngPassw0rd!');
      expect(io.text()).not.toContain(u.password);
    }
  });

  it('the password never appears in headless lines, JSON lines, status, errors or the journal', async () => {
    expect(password.length).toBeGreaterThan(3);
    await createDemoDatabase(db.client, { rows: 2000 });
    const plan = JSON.parse(fs.readFileSync(examplePlanPath(), 'utf8')) as { backup: { directory: string }; sql: Record<'structure' | 'dependencies', string[]> };
    plan.backup.directory = path.join(dir, 'backups');
    // make the SQL file paths absolute so the copy of the plan works from the temp dir
    for (const k of ['structure', 'dependencies'] as const) plan.sql[k] = plan.sql[k].map((f) => path.join(path.dirname(examplePlanPath()), f));
    const file = path.join(dir, 'plan.json');
    fs.writeFileSync(file, JSON.stringify(plan));
    const outputs: string[] = [];
    for (const argv of [
      ['--headless', '--phase', '1', '--plan', file, '--db', db.url],
      ['--headless', '--json', '--phase', '1', '--plan', file, '--db', db.url],
      ['plan', '--plan', file, '--db', db.url],
      ['status', '--db', db.url],
      ['status', '--json', '--db', db.url],
    ]) {
      const io = captureIo({ PGSHIFT_DEBUG: '1' });
      await main(argv, io);
      outputs.push(io.text());
    }
    // password in PGPASSWORD only
    const io = captureIo({ PGPASSWORD: password, PGHOST: '127.0.0.1', PGPORT: new URL(db.url).port, PGUSER: 'postgres', PGDATABASE: db.name });
    expect(await main(['status'], io)).toBe(0);
    outputs.push(io.text());
    for (const o of outputs) {
      expect(o.length).toBeGreaterThan(0);
      expect(o).not.toContain(password);
    }
    expect(outputs[0]).toContain('postgres@127.0.0.1');
    // --json: a step-done event carries what the step stored with its state (the backup: its file, size, checksum)
    const events = outputs[1]!.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as { type: string; stepId?: string; data?: { file?: string; sha256?: string } });
    const backup = events.find((e) => e.type === 'step-done' && e.stepId === 'backup:pg_dump');
    expect(backup?.data?.file).toMatch(/\.dump$/);
    expect(backup?.data?.sha256).toMatch(/^[0-9a-f]{64}$/);
    const leaks = await db.client.query<{ n: string }>(
      `SELECT (SELECT count(*) FROM pgshift.statements WHERE sql LIKE '%' || $1 || '%' OR coalesce(error, '') LIKE '%' || $1 || '%')
            + (SELECT count(*) FROM pgshift.runs WHERE row_to_json(runs)::text LIKE '%' || $1 || '%')
            + (SELECT count(*) FROM pgshift.steps WHERE row_to_json(steps)::text LIKE '%' || $1 || '%')
            + (SELECT count(*) FROM pgshift.artifacts WHERE value::text LIKE '%' || $1 || '%')
            + (SELECT count(*) FROM pgshift.confirmations WHERE row_to_json(confirmations)::text LIKE '%' || $1 || '%') AS n`,
      [password],
    );
    expect(Number(leaks.rows[0]!.n)).toBe(0);
  });
});
