import path from 'node:path';
import fs from 'node:fs';
import type { Phase, Step, StepContext, StepResult } from '../source/engine/types.js';
import { dataVolume, foreignKeys } from '../source/db/catalog.js';
import { ident, qname } from '../source/db/quote.js';
import { snapshotStep } from './steps/snapshot.js';
import { problemLine, runPreflight, summarize } from '../source/preflight.js';
import {
  backupChildEnv, backupFileName, restoreInto, restoreList, runPgDump, sha256File, tocHas, toolVersion,
  type BackupArtifact,
} from '../source/backup.js';
import { fmtBytes } from '../source/format.js';
import { sideRestoreCommands, testSideRestore } from '../source/restore.js';
import { Artifacts } from '../source/engine/artifacts.js';

/** pgshift's scratch schema for restoring one table (the rollback after a drop; verify: 'restore'). */
export const SIDE_SCHEMA = 'pgshift_side';

// ---------------------------------------------------------------------------------------------------------------
// 1. preflight

const preflightStep: Step = {
  id: 'preflight',
  phase: 1,
  title: 'Preflight checks (server, privileges, tools, disk, tables)',
  rerunnable: true,
  preview() {
    return ['-- reads pg_catalog, runs pg_dump --version and pg_restore --version, checks free disk; changes nothing'];
  },
  async run(ctx) {
    const checks = await runPreflight({ db: ctx.db, plan: ctx.plan, planDir: ctx.planDir, tables: ctx.tables, serverMajor: ctx.serverMajor, skipBackup: ctx.overrides.has('skip-backup') });
    const failed = checks.filter((c) => c.status === 'fail');
    const warnings = checks.filter((c) => c.status === 'warn').map((c) => `${c.check}: ${c.detail}`);
    const table = { title: 'Preflight', columns: ['check', 'status', 'detail', 'hint'], rows: checks.map((c) => [c.check, c.status, c.detail, c.hint ?? '']) };
    if (!failed.length) return { status: 'done', summary: summarize(checks), tables: [table], warnings, data: { checks } };
    // one line per problem (cause — hint); the full table stays in the journal (pgshift status, --json)
    for (const c of failed) ctx.log(problemLine(c), 'error');
    const states = await ctx.journal.stepStates();
    const changed = [...states].some(([id, st]) => st.status === 'done' && !/^(preflight$|report:|backup:|snapshot:)/.test(id));
    return {
      status: 'failed',
      summary: summarize(checks),
      warnings,
      data: { checks },
      failed: `preflight: ${failed.length} problem${failed.length === 1 ? '' : 's'} (above)${changed ? '' : ', nothing was changed'}`,
      failedDetail: `preflight failed${changed ? '' : ', nothing was changed'}:\n${failed.map(problemLine).join('\n')}`,
      nothingChanged: !changed,
    };
  },
};

// ---------------------------------------------------------------------------------------------------------------
// 2. backup


async function userTables(ctx: StepContext): Promise<{ schema: string; name: string; kind: string }[]> {
  // every table pg_dump must carry: ordinary tables, partitions and partitioned parents, not pgshift's journal,
  // not temporary tables, not tables that belong to an extension (pg_dump leaves those to CREATE EXTENSION)
  return ctx.db.read<{ schema: string; name: string; kind: string }>(
    `SELECT n.nspname::text AS schema, c.relname::text AS name, c.relkind::text AS kind
       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE c.relkind IN ('r', 'p') AND c.relpersistence <> 't'
        AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pgshift') AND n.nspname !~ '^pg_(toast|temp)'
        AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
      ORDER BY 1, 2`,
  );
}

const backupStep: Step = {
  id: 'backup:pg_dump',
  phase: 1,
  title: 'Backup with pg_dump',
  preview(ctx) {
    const dir = path.resolve(ctx.planDir, ctx.plan.backup.directory);
    return [`pg_dump --format=${ctx.plan.backup.format} --compress=${ctx.plan.backup.compress} --file=${path.join(dir, `<database>_<YYYYmmdd_HHMMSS>${ctx.plan.backup.format === 'custom' ? '.dump' : '.dir'}`)} (password via PGPASSWORD in its environment only)`];
  },
  async run(ctx): Promise<StepResult> {
    const prior = await ctx.journal.getArtifact(Artifacts.backup);
    if (ctx.overrides.has('skip-backup') && !(prior && fs.existsSync(prior.file))) {
      ctx.log('--skip-backup: pgshift takes no backup; the copy will ask for the override by name (--confirm backup)', 'warn');
      return { status: 'skipped', summary: 'no backup taken (--skip-backup): make sure you have one of your own' };
    }
    if (prior && fs.existsSync(prior.file)) {
      const sum = await sha256File(prior.file);
      if (sum === prior.sha256) return { status: 'already-done', summary: `${prior.file} (${fmtBytes(prior.bytes)}, sha256 ${sum.slice(0, 12)}…) taken ${prior.endedAt}` };
      ctx.log(`the backup ${prior.file} changed since it was taken (sha256 ${prior.sha256.slice(0, 12)}… → ${sum.slice(0, 12)}…): taking a new one`, 'warn');
    }
    const [info] = await ctx.db.read<{ db: string; size: string }>(`SELECT current_database()::text AS db, pg_database_size(current_database()) AS size`);
    const estimate = Number(info!.size);
    const dir = path.resolve(ctx.planDir, ctx.plan.backup.directory);
    const started = new Date();
    const file = path.join(dir, backupFileName(info!.db, started, ctx.plan.backup.format));
    const dumpVersion = await toolVersion('pg_dump', backupChildEnv(ctx.db.info));
    ctx.log(`pg_dump ${dumpVersion?.version ?? '?'} → ${file} (database ${fmtBytes(estimate)}; the archive is compressed, so the bar is an upper bound)`);
    ctx.log('pg_dump holds ACCESS SHARE on every table until it ends: a swap (ACCESS EXCLUSIVE) started during the backup would wait for it', 'warn');

    // exact row counts in the dump's own snapshot, for verify: 'restore' to compare with (live writes don't disturb it)
    let snapshotCounts: Record<string, number> | undefined;
    const holder = await ctx.db.pool.connect();
    try {
      await holder.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
      const [{ snap }] = (await holder.query<{ snap: string }>('SELECT pg_export_snapshot() AS snap')).rows as [{ snap: string }];
      const dump = runPgDump({
        conn: ctx.db.info, file, format: ctx.plan.backup.format, compress: ctx.plan.backup.compress, snapshot: snap, signal: ctx.signal,
        record: (command, ms, error) => ctx.db.recordCommand(ctx.stepId, command, ms, error),
        onBytes: (b) => ctx.progress({ done: b, total: Math.max(b, estimate), unit: 'bytes', detail: path.basename(file) }),
      });
      if (ctx.plan.backup.verify === 'restore') {
        snapshotCounts = {};
        for (const t of await userTables(ctx)) {
          if (t.kind !== 'r') continue;
          const [{ n }] = (await holder.query<{ n: string }>(`SELECT count(*) AS n FROM ${qname(t.schema, t.name)}`)).rows as [{ n: string }];
          snapshotCounts[`${t.schema}.${t.name}`] = Number(n);
        }
      }
      let res;
      try {
        res = await dump;
      } catch (e) {
        await holder.query('ROLLBACK').catch(() => {});
        return { status: 'failed', failed: `backup failed: ${(e as Error).message}` };
      }
      await holder.query('COMMIT');
      const sha = await sha256File(file);
      const a: BackupArtifact = {
        file, bytes: res.bytes, sha256: sha, startedAt: started.toISOString(), endedAt: new Date().toISOString(), format: ctx.plan.backup.format,
        serverMajor: ctx.serverMajor, pgDumpVersion: dumpVersion?.version ?? null, database: info!.db, verified: false, snapshotCounts,
      };
      await ctx.journal.setArtifact(Artifacts.backup, a);
      return {
        status: 'done',
        summary: `${file}: ${fmtBytes(res.bytes)} in ${(res.ms / 1000).toFixed(1)} s (database ${fmtBytes(estimate)}), sha256 ${sha.slice(0, 12)}…, mode 0600`,
        data: { file, bytes: res.bytes, sha256: sha },
      };
    } finally {
      await holder.query('ROLLBACK').catch(() => {});
      holder.release();
    }
  },
};

const verifyStep: Step = {
  id: 'backup:verify',
  phase: 1,
  title: 'Verify the backup (pg_restore --list, checksum, optional test restore)',
  preview(ctx) {
    const out = ['pg_restore --list <backup file>', '-- sha256 of the file compared with the one recorded'];
    if (ctx.plan.backup.verify === 'restore') {
      out.push('CREATE DATABASE pgshift_verify_<n>', 'pg_restore --exit-on-error --no-owner --dbname=pgshift_verify_<n> <backup file>', '-- exact row counts compared', 'DROP DATABASE pgshift_verify_<n>');
      for (const t of ctx.tables) out.push(`CREATE SCHEMA ${SIDE_SCHEMA}`, ...sideRestoreCommands('<backup file>', SIDE_SCHEMA, `${t.schema}.${t.table}`), `DROP SCHEMA ${SIDE_SCHEMA} CASCADE`);
    }
    return out;
  },
  async run(ctx): Promise<StepResult> {
    const a = await ctx.journal.getArtifact(Artifacts.backup);
    if (!a && ctx.overrides.has('skip-backup')) return { status: 'skipped', summary: 'nothing to verify (--skip-backup)' };
    if (!a) return { status: 'failed', failed: 'no backup recorded: run backup:pg_dump first (phase 3 will ask for an explicit override without one)' };
    const failWith = async (msg: string): Promise<StepResult> => {
      await ctx.journal.setArtifact(Artifacts.backup, { ...a, verified: false, verifyError: msg, verifiedAt: undefined } satisfies BackupArtifact);
      return { status: 'failed', failed: `backup not verified: ${msg}` };
    };
    if (!fs.existsSync(a.file)) return failWith(`${a.file} is missing`);
    const sum = await sha256File(a.file);
    if (sum !== a.sha256) return failWith(`${a.file} changed since it was written: sha256 ${a.sha256} recorded, ${sum} now`);
    const env = backupChildEnv(ctx.db.info);
    let toc: string[];
    try {
      toc = await restoreList(a.file, env);
    } catch (e) {
      return failWith((e as Error).message);
    }
    const expected = await userTables(ctx);
    const missing: string[] = [];
    for (const t of expected) {
      const full = `${t.schema}.${t.name}`;
      if (!tocHas(toc, 'TABLE', t.schema, t.name)) missing.push(`${full} (definition)`);
      else if (t.kind === 'r' && !tocHas(toc, 'TABLE DATA', t.schema, t.name)) missing.push(`${full} (data)`);
    }
    if (missing.length) return failWith(`the archive lacks ${missing.join(', ')}`);
    ctx.log(`pg_restore --list reads ${a.file}: ${toc.length} entries, all ${expected.length} user tables present with their data; sha256 matches`);
    let tables: { table: string; rows?: number }[] = expected.map((t) => ({ table: `${t.schema}.${t.name}` }));

    if (ctx.plan.backup.verify === 'restore') {
      const [{ n }] = await ctx.db.read<{ n: string }>(`SELECT count(*) + 1 AS n FROM pg_database WHERE datname LIKE 'pgshift\\_verify\\_%'`) as [{ n: string }];
      const scratch = `pgshift_verify_${ctx.runId}_${n}_${process.pid}`.slice(0, 63);
      ctx.log(`test restore into a scratch database ${scratch} (dropped afterwards)`);
      await ctx.db.query(`CREATE DATABASE ${ident(scratch)} TEMPLATE template0`, [], ctx.stepId);
      const pg = (await import('pg')).default;
      try {
        await restoreInto({ conn: ctx.db.info, file: a.file, database: scratch, signal: ctx.signal, env: { ...env, PGDATABASE: scratch } });
        const c = new pg.Client({ ...ctx.db.info.config, database: scratch });
        await c.connect();
        const diffs: string[] = [];
        try {
          const counted: { table: string; rows?: number }[] = [];
          let i = 0;
          for (const t of expected) {
            const full = `${t.schema}.${t.name}`;
            if (t.kind !== 'r') { counted.push({ table: full }); continue; }
            const [{ n: rows }] = (await c.query<{ n: string }>(`SELECT count(*) AS n FROM ${qname(t.schema, t.name)}`)).rows as [{ n: string }];
            counted.push({ table: full, rows: Number(rows) });
            const want = a.snapshotCounts?.[full];
            if (want !== undefined && want !== Number(rows)) diffs.push(`${full}: ${want} rows at the dump, ${rows} restored`);
            ctx.progress({ done: ++i, total: expected.length, unit: 'tables', detail: full });
          }
          tables = counted;
        } finally {
          await c.end().catch(() => {});
        }
        if (diffs.length) return failWith(`row counts differ after the test restore: ${diffs.join('; ')}`);
        ctx.log(`test restore: ${tables.filter((t) => t.rows !== undefined).length} tables, exact row counts equal to the dump's snapshot`);
        // the rollback's own path (after a drop): each migrated table alone, into a side schema of this database
        const side = await testSideRestore(ctx.db, {
          file: a.file, side: SIDE_SCHEMA, tables: ctx.tables.map((t) => ({ schema: t.schema, table: t.table })), expected: a.snapshotCounts,
          lockTimeoutMs: ctx.plan.locks.timeoutMs * 5, signal: ctx.signal, stepId: ctx.stepId,
        });
        for (const x of side) ctx.log(`side restore (the rollback's path): ${x.table} restored alone into schema ${SIDE_SCHEMA} (${x.items} archive entries), ${x.rows.toLocaleString('en-US')} rows as the dump counted; schema dropped`);
      } catch (e) {
        return failWith(`test restore failed: ${(e as Error).message}`);
      } finally {
        await ctx.db.query(`DROP DATABASE IF EXISTS ${ident(scratch)}${ctx.serverMajor >= 13 ? ' WITH (FORCE)' : ''}`, [], ctx.stepId).catch((e) => ctx.log(`could not drop ${scratch}: ${(e as Error).message}`, 'warn'));
      }
    }
    const verifiedAt = new Date().toISOString();
    await ctx.journal.setArtifact(Artifacts.backup, { ...a, verified: true, verifiedAt, verifyMethod: ctx.plan.backup.verify, verifyError: undefined, tables } satisfies BackupArtifact);
    return {
      status: 'done',
      summary: `verified (${ctx.plan.backup.verify}): ${a.file}, ${tables.length} tables${ctx.plan.backup.verify === 'restore' ? ', restored and counted' : ''}`,
      data: { verified: true, verifiedAt, tables: tables.length },
    };
  },
};

// ---------------------------------------------------------------------------------------------------------------
// 4. reports

const volumeStep: Step = {
  id: 'report:data-volume',
  phase: 1,
  title: 'Data volume: size and live rows per table',
  rerunnable: true,
  preview() {
    return [
      `SELECT schemaname, relname, pg_size_pretty(pg_total_relation_size(relid)), n_live_tup FROM pg_stat_user_tables ORDER BY pg_total_relation_size(relid) DESC`,
    ];
  },
  async run(ctx) {
    const rows = await dataVolume(ctx.db);
    const total = rows.reduce((a, r) => a + r.bytes, 0);
    return {
      status: 'done',
      summary: `${rows.length} tables, ${(total / 1024 / 1024).toFixed(1)} MiB in all`,
      tables: [{ title: 'Data volume (largest first; rows are estimates)', columns: ['table', 'size', 'rows (est.)'], rows: rows.map((r) => [`${r.schema}.${r.table}`, r.size, r.rows]) }],
      data: { tables: rows },
    };
  },
};

const fkStep: Step = {
  id: 'report:fk-dependencies',
  phase: 1,
  title: 'Foreign-key dependencies',
  rerunnable: true,
  preview() {
    return [`SELECT conname, conrelid::regclass, confrelid::regclass FROM pg_constraint WHERE contype = 'f' ORDER BY conrelid::regclass::text`];
  },
  async run(ctx) {
    const fks = await foreignKeys(ctx.db);
    const partitioned = new Set(ctx.tables.map((t) => `${t.schema}.${t.table}`));
    const inbound = fks.filter((f) => partitioned.has(f.referenced.includes('.') ? f.referenced : `public.${f.referenced}`));
    // grouped by table: the table's name once, then its constraints
    const rows: (string | null)[][] = [];
    let last = '';
    for (const f of fks) {
      rows.push([f.table === last ? '' : f.table, f.constraint, f.referenced, f.definition]);
      last = f.table;
    }
    return {
      status: 'done',
      summary: `${fks.length} foreign keys; ${inbound.length} point at tables this plan partitions${inbound.length ? ` (${inbound.map((f) => `${f.table}.${f.constraint}`).join(', ')})` : ''}`,
      tables: [{ title: 'Foreign keys (grouped by table)', columns: ['table', 'constraint', 'references', 'definition'], rows }],
      data: { foreignKeys: fks },
    };
  },
};

export const preparation: Phase = {
  id: 1,
  name: 'Preparation',
  plan() {
    return [preflightStep, backupStep, verifyStep, volumeStep, fkStep, snapshotStep];
  },
};
