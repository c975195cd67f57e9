import type { Phase, Step } from '../source/engine/types.js';
import { dataVolume, foreignKeys } from '../source/db/catalog.js';
import { snapshotStep } from './steps/snapshot.js';

const volumeStep: Step = {
  id: 'report:data-volume',
  phase: 1,
  title: 'Data volume: size and live rows per table',
  rerunnable: true,
  async preview() {
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
  async preview() {
    return [`SELECT conname, conrelid::regclass, confrelid::regclass FROM pg_constraint WHERE contype = 'f' ORDER BY conrelid::regclass::text`];
  },
  async run(ctx) {
    const fks = await foreignKeys(ctx.db);
    const partitioned = new Set(ctx.tables.map((t) => `${t.schema}.${t.table}`));
    const inbound = fks.filter((f) => partitioned.has(f.referenced.includes('.') ? f.referenced : `public.${f.referenced}`));
    return {
      status: 'done',
      summary: `${fks.length} foreign keys; ${inbound.length} point at tables this plan partitions`,
      tables: [{ title: 'Foreign keys (grouped by table)', columns: ['table', 'constraint', 'references', 'definition'], rows: fks.map((f) => [f.table, f.constraint, f.referenced, f.definition]) }],
      data: { foreignKeys: fks },
    };
  },
};

export const preparation: Phase = {
  id: 1,
  name: 'Preparation',
  async plan() {
    return [volumeStep, fkStep, snapshotStep];
  },
};
