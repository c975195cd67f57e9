import { describe, it, expect } from 'vitest';
import { align, addInterval, isoWeek, parseYmd, rangePartitions, rangeSuffix, listPartitions, keyKind, fmtYmd } from '../source/structure/bounds.js';
import { fitName, listPartitionName, sanitizeValue, newObjectName } from '../source/structure/names.js';
import { scanSqlFile } from '../source/structure/sqlfile.js';
import { buildStructureDdl, deferredNote, rewriteIndexDef, rewriteTriggerDef } from '../source/structure/ddl.js';
import { finishStatements, partitionIndexName } from '../source/copy/finish.js';
import type { TableDef } from '../source/structure/definition.js';

describe('partition bounds and names', () => {
  it('aligns like date_trunc and names each interval', () => {
    const d = parseYmd('2024-01-17');
    expect(fmtYmd(align(d, '1 week'))).toBe('2024-01-15');
    expect(rangeSuffix(align(d, '1 week'), '1 week')).toBe('p2024w03');
    expect(rangeSuffix(align(d, '1 day'), '1 day')).toBe('p2024_01_17');
    expect(rangeSuffix(align(d, '1 month'), '1 month')).toBe('p2024_01');
    expect(rangeSuffix(align(parseYmd('2024-05-20'), '3 months'), '3 months')).toBe('p2024q2');
    expect(fmtYmd(align(parseYmd('2024-05-20'), '3 months'))).toBe('2024-04-01');
    expect(rangeSuffix(align(d, '1 year'), '1 year')).toBe('p2024');
    // ISO weeks across the year boundary: 2024-12-30 is in week 1 of 2025; 2021-01-03 is in week 53 of 2020
    expect(isoWeek(parseYmd('2024-12-30'))).toEqual({ year: 2025, week: 1 });
    expect(isoWeek(parseYmd('2021-01-03'))).toEqual({ year: 2020, week: 53 });
    expect(fmtYmd(addInterval(parseYmd('2024-11-01'), '3 months'))).toBe('2025-02-01');
  });

  it('covers min..max(max, today) plus premake, plus DEFAULT', () => {
    const p = rangePartitions({ base: 'obs', interval: '1 month', kind: 'timestamptz', min: '2024-01-17', max: '2024-03-02', today: '2024-02-10', premake: 2, defaultPartition: true });
    expect(p.map((x) => x.name)).toEqual(['obs_p2024_01', 'obs_p2024_02', 'obs_p2024_03', 'obs_p2024_04', 'obs_p2024_05', 'obs_default']);
    expect(p[0]!.bound).toBe(`FOR VALUES FROM ('2024-01-01 00:00:00+00') TO ('2024-02-01 00:00:00+00')`);
    expect(p[0]!.where!('"k"')).toBe(`"k" >= '2024-01-01 00:00:00+00' AND "k" < '2024-02-01 00:00:00+00'`);
    const empty = rangePartitions({ base: 'obs', interval: '1 year', kind: 'date', min: null, max: null, today: '2026-11-23', premake: 0, defaultPartition: false });
    expect(empty.map((x) => [x.name, x.bound])).toEqual([['obs_p2026', `FOR VALUES FROM ('2026-01-01') TO ('2027-01-01')`]]);
    const start = rangePartitions({ base: 'obs', interval: '1 month', kind: 'date', min: '2020-01-01', max: '2020-02-01', today: '2020-02-01', start: '2020-02-01', premake: 0, defaultPartition: false });
    expect(start.map((x) => x.name)).toEqual(['obs_p2020_02']);
    expect(() => rangePartitions({ base: 'obs', interval: '1 day', kind: 'date', min: '1900-01-01', max: '2020-01-01', today: '2020-01-01', premake: 0, defaultPartition: false })).toThrow(/more than 5000 partitions/);
    expect(() => rangePartitions({ base: 'o', interval: '1 day', kind: 'integer', min: null, max: null, today: '2020-01-01', premake: 0, defaultPartition: false })).toThrow(/date or timestamp/);
    expect(keyKind('timestamp with time zone')).toBe('timestamptz');
    expect(keyKind('timestamp(3) without time zone')).toBe('timestamp');
  });

  it('names list partitions: uuid → hex, lossy values get a hash, long names fit 63 bytes', () => {
    expect(sanitizeValue('0b6a4d3e-1c2f-4a5b-8c7d-9e0f1a2b3c4d')).toBe('0b6a4d3e1c2f4a5b8c7d9e0f1a2b3c4d');
    expect(sanitizeValue('north')).toBe('north');
    expect(sanitizeValue('North')).not.toBe(sanitizeValue('north'));
    expect(sanitizeValue('a b')).toMatch(/^a_b_[0-9a-f]{6}$/);
    const long = listPartitionName('petri_observations', 'x'.repeat(80));
    expect(Buffer.byteLength(long)).toBe(63);
    expect(long).toMatch(/_[0-9a-f]{8}$/);
    expect(fitName('é'.repeat(40))).toMatch(/_[0-9a-f]{8}$/);
    expect(Buffer.byteLength(fitName('é'.repeat(40)))).toBeLessThanOrEqual(63);
    expect(newObjectName('petri_observations_pkey')).toBe('petri_observations_pkey_p');
    const l = listPartitions('t', ['a', null, 'a', "it's"], true);
    expect(l.map((x) => x.bound)).toEqual([`FOR VALUES IN ('a')`, `FOR VALUES IN ('it''s')`, 'DEFAULT']);
  });
});

describe('SQL file scanner', () => {
  it('finds psql meta-commands only outside quotes, and names the line', async () => {
    const p = await scanSqlFile(`SELECT 1;\n\\i other.sql\nSELECT $f$\n\\not a command\n$f$;\nSELECT '\n\\neither';\n`);
    expect(p).toEqual([{ line: 2, text: '\\i other.sql', reason: expect.stringContaining('psql meta-command') as string }]);
  });
  it('refuses top-level transaction control and non-transactional statements, not BEGIN inside a function body', async () => {
    const body = `CREATE FUNCTION f() RETURNS void LANGUAGE plpgsql AS $$\nBEGIN\n  NULL;\nEND\n$$;\n`;
    expect(await scanSqlFile(body)).toEqual([]);
    const p = await scanSqlFile(`BEGIN;\n${body}CREATE INDEX CONCURRENTLY i ON t (a);\n/* c */ COMMIT;\n`);
    expect(p.map((x) => [x.line, x.reason.split(' ')[0]])).toEqual([[1, 'transaction'], [7, 'CREATE'], [8, 'transaction']]);
  });
});

describe('DDL builder', () => {
  const def: TableDef = {
    oid: 1, schema: 'public', name: 'obs', printedName: 'public.obs', owner: 'me', relkind: 'r',
    columns: [
      { num: 1, name: 'id', type: 'bigint', notNull: true, default: null, identity: 'a', identityOptions: { start: '1', increment: '1', min: '1', max: '9223372036854775807', cache: '1', cycle: false }, generated: '', collation: null, comment: null, ownedSequence: 'public.obs_id_seq' },
      { num: 2, name: 'at', type: 'timestamp with time zone', notNull: true, default: 'now()', identity: '', generated: '', collation: null, comment: "it's the key", ownedSequence: null },
      { num: 3, name: 'code', type: 'text', notNull: false, default: null, identity: '', generated: '', collation: { schema: 'pg_catalog', name: 'C' }, comment: null, ownedSequence: null },
    ],
    constraints: [
      { name: 'obs_pkey', type: 'p', definition: 'PRIMARY KEY (id)', columns: ['id'], includeColumns: [], deferrable: false, deferred: false, noInherit: false, nullsNotDistinct: false, referencesSelf: false, comment: null },
      { name: 'obs_code_key', type: 'u', definition: 'UNIQUE (code, at)', columns: ['code', 'at'], includeColumns: [], deferrable: false, deferred: false, noInherit: false, nullsNotDistinct: false, referencesSelf: false, comment: null },
      { name: 'obs_self', type: 'f', definition: 'FOREIGN KEY (id) REFERENCES public.obs(id)', columns: ['id'], includeColumns: [], deferrable: false, deferred: false, noInherit: false, nullsNotDistinct: false, referencesSelf: true, comment: null },
    ],
    indexes: [{ name: 'obs (code)', definition: `CREATE UNIQUE INDEX "obs (code)" ON public.obs USING btree (lower(code), "when (""x"")") WHERE (code <> ')')`, prefix: 'CREATE UNIQUE INDEX "obs (code)" ON public.obs USING ', unique: true, hasExpressions: false, method: 'btree', keyColumns: ['code'] }],
    triggers: [{ name: 't', definition: 'CREATE TRIGGER t BEFORE UPDATE ON public.obs FOR EACH ROW EXECUTE FUNCTION public.f()', rowLevel: true, enabled: 'O' }],
    policies: [], rls: false, forceRls: false, grants: [{ grantee: 'PUBLIC', privilege: 'SELECT', grantable: false }], comment: null,
  };

  it('widens the PK with the key, keeps unique constraints that have it, says why', () => {
    const d = buildStructureDdl({ def, target: 'obs_new', strategy: 'range', key: 'at', partitions: [], serverMajor: 15, currentUser: 'other' });
    expect(d.statements[0]).toBe(`CREATE TABLE "public"."obs_new" (
  "id" bigint GENERATED ALWAYS AS IDENTITY (START WITH 1 INCREMENT BY 1 MINVALUE 1 MAXVALUE 9223372036854775807 CACHE 1 NO CYCLE) NOT NULL,
  "at" timestamp with time zone DEFAULT now() NOT NULL,
  "code" text COLLATE "pg_catalog"."C"
) PARTITION BY RANGE ("at")`);
    // the keys are not in the table phase 2 creates: phase 3 adds them after the copy, widened with the key
    expect(d.deferred.keys!.map((k) => [k.kind, k.statement])).toEqual([
      ['primary key', 'ALTER TABLE "public"."obs_new" ADD CONSTRAINT "obs_pkey_p" PRIMARY KEY ("id", "at")'],
      ['unique', 'ALTER TABLE "public"."obs_new" ADD CONSTRAINT "obs_code_key_p" UNIQUE ("code", "at")'],
    ]);
    expect(d.statements.some((s) => /PRIMARY KEY|UNIQUE \(/.test(s))).toBe(false);
    expect(d.pkChange).toEqual({ constraint: 'obs_pkey', from: ['id'], to: ['id', 'at'] });
    expect(d.changes.find((c) => c.startsWith('primary key (id) → (id, at): PostgreSQL requires every unique constraint on a partitioned table to include the partition key'))).toBeTruthy();
    expect(d.uniqueChanges).toEqual([]);
    expect(d.statements).toContain(`CREATE UNIQUE INDEX "obs (code)_p" ON "public"."obs_new" USING btree (lower(code), "when (""x"")", "at") WHERE (code <> ')')`);
    expect(d.statements).toContain('CREATE TRIGGER t BEFORE UPDATE ON "public"."obs_new" FOR EACH ROW EXECUTE FUNCTION public.f()');
    expect(d.statements).toContain(`COMMENT ON COLUMN "public"."obs_new"."at" IS 'it''s the key'`);
    expect(d.statements).toContain('GRANT SELECT ON "public"."obs_new" TO PUBLIC');
    expect(d.statements.at(-1)).toBe('ALTER TABLE "public"."obs_new" OWNER TO "me"');
    expect(d.warnings.some((w) => w.includes('obs_self references public.obs itself'))).toBe(true);
    const old = buildStructureDdl({ def, target: 'obs_new', strategy: 'range', key: 'at', partitions: [], serverMajor: 12, currentUser: 'me' });
    expect(old.warnings.some((w) => w.includes('needs 13+'))).toBe(true);
    expect(old.statements.some((s) => s.startsWith('CREATE TRIGGER'))).toBe(false);
  });

  it('defers non-unique indexes and outbound FKs (and the FK comments) to phase 3; keeps unique ones', () => {
    const withMore: TableDef = {
      ...def,
      constraints: [
        ...def.constraints,
        { name: 'obs_site_fkey', type: 'f', definition: 'FOREIGN KEY (code) REFERENCES public.sites(code) ON DELETE CASCADE NOT VALID', columns: ['code'], includeColumns: [], deferrable: false, deferred: false, noInherit: false, nullsNotDistinct: false, referencesSelf: false, comment: "site's code" },
      ],
      indexes: [
        ...def.indexes,
        { name: 'obs_at_idx', definition: 'CREATE INDEX obs_at_idx ON public.obs USING brin (at) WHERE (code IS NOT NULL)', prefix: 'CREATE INDEX obs_at_idx ON public.obs USING ', unique: false, hasExpressions: false, method: 'brin', keyColumns: ['at'] },
      ],
    };
    const d = buildStructureDdl({ def: withMore, target: 'obs_new', strategy: 'range', key: 'at', partitions: [], serverMajor: 15, currentUser: 'me' });
    expect(d.statements.some((s) => s.includes('obs_at_idx') || s.includes('FOREIGN KEY') || s.startsWith('COMMENT ON CONSTRAINT'))).toBe(false);
    expect(d.statements.some((s) => s.startsWith('CREATE UNIQUE INDEX "obs (code)_p"'))).toBe(true);
    expect(d.deferred.indexes).toEqual([{ newName: 'obs_at_idx_p', sourceName: 'obs_at_idx', using: 'brin (at) WHERE (code IS NOT NULL)', statement: 'CREATE INDEX "obs_at_idx_p" ON "public"."obs_new" USING brin (at) WHERE (code IS NOT NULL)' }]);
    expect(d.deferred.foreignKeys).toEqual([{
      newName: 'obs_site_fkey_p', sourceName: 'obs_site_fkey', definition: 'FOREIGN KEY (code) REFERENCES public.sites(code) ON DELETE CASCADE', comment: "site's code",
      statement: 'ALTER TABLE "public"."obs_new" ADD CONSTRAINT "obs_site_fkey_p" FOREIGN KEY (code) REFERENCES public.sites(code) ON DELETE CASCADE',
    }]);
    // the swap still gets both names
    expect(d.indexes).toContainEqual({ newName: 'obs_at_idx_p', sourceName: 'obs_at_idx' });
    expect(d.constraints.find((c) => c.sourceName === 'obs_site_fkey')?.newName).toBe('obs_site_fkey_p');
    expect(deferredNote(d.deferred)).toBe('the primary key, 1 unique constraint, 1 secondary index and 1 foreign key are built after the copy (phase 3: the keys right after the last batch, the rest in step finish): index maintenance and foreign-key checks on every inserted row would slow the copy');
    expect(deferredNote({ ...d.deferred, keys: [] })).toBe('1 secondary index and 1 foreign key are built after the copy (phase 3, step finish): index maintenance and foreign-key checks on every inserted row would slow the copy');
    expect(deferredNote({ indexes: [], foreignKeys: [], keys: d.deferred.keys })).toBe('the primary key and 1 unique constraint are built after the copy (phase 3, right after the last batch): index maintenance and foreign-key checks on every inserted row would slow the copy');
    expect(deferredNote({ indexes: [], foreignKeys: [] })).toBeNull();
    expect(finishStatements('public', 'obs_new', ['obs_p2024_01', 'obs_default'], d.deferred).filter((s) => !s.startsWith('--'))).toEqual([
      'CREATE INDEX "obs_at_idx_p" ON ONLY "public"."obs_new" USING brin (at) WHERE (code IS NOT NULL)',
      'CREATE INDEX CONCURRENTLY "obs_p2024_01_obs_at_idx" ON "public"."obs_p2024_01" USING brin (at) WHERE (code IS NOT NULL)',
      'ALTER INDEX "public"."obs_at_idx_p" ATTACH PARTITION "public"."obs_p2024_01_obs_at_idx"',
      'CREATE INDEX CONCURRENTLY "obs_default_obs_at_idx" ON "public"."obs_default" USING brin (at) WHERE (code IS NOT NULL)',
      'ALTER INDEX "public"."obs_at_idx_p" ATTACH PARTITION "public"."obs_default_obs_at_idx"',
      'ALTER TABLE "public"."obs_p2024_01" ADD CONSTRAINT "obs_site_fkey_p" FOREIGN KEY (code) REFERENCES public.sites(code) ON DELETE CASCADE NOT VALID',
      'ALTER TABLE "public"."obs_p2024_01" VALIDATE CONSTRAINT "obs_site_fkey_p"',
      'ALTER TABLE "public"."obs_default" ADD CONSTRAINT "obs_site_fkey_p" FOREIGN KEY (code) REFERENCES public.sites(code) ON DELETE CASCADE NOT VALID',
      'ALTER TABLE "public"."obs_default" VALIDATE CONSTRAINT "obs_site_fkey_p"',
      'ALTER TABLE "public"."obs_new" ADD CONSTRAINT "obs_site_fkey_p" FOREIGN KEY (code) REFERENCES public.sites(code) ON DELETE CASCADE',
      `COMMENT ON CONSTRAINT "obs_site_fkey_p" ON "public"."obs_new" IS 'site''s code'`,
    ]);
    // partition index names fit 63 bytes and stay distinct
    const long = partitionIndexName('p'.repeat(60), { sourceName: 'an_index_with_a_long_name' });
    expect(Buffer.byteLength(long)).toBeLessThanOrEqual(63);
    expect(long).not.toBe(partitionIndexName('p'.repeat(60), { sourceName: 'an_index_with_a_long_name2' }));
  });

  it('rewrites index and trigger definitions or refuses to guess', () => {
    expect(() => rewriteIndexDef({ ...def.indexes[0]!, prefix: 'CREATE INDEX x ON y USING ' }, 'n', 't', [])).toThrow(/cannot parse/);
    expect(() => rewriteTriggerDef('CREATE TRIGGER t AFTER INSERT ON other FOR EACH ROW EXECUTE FUNCTION f()', 'public.obs', 'x')).toThrow(/cannot find/);
  });
});
