import type { Step } from '../../source/engine/types.js';
import { takeSnapshot } from '../../source/snapshot.js';
import { Artifacts } from '../../source/engine/artifacts.js';


/**
 * Records the pre-migration catalog snapshot (tables, columns, constraints, indexes, views, FKs, grants, policies,
 * triggers, sequences, functions, comments) of every user schema, as journal artifact "snapshot:catalog", so a
 * rollback can prove it restored it. Never overwritten by a later run: only a completed rollback clears it.
 */
export const snapshotStep: Step = {
  id: 'snapshot:catalog',
  phase: 1,
  title: 'Catalog snapshot before the migration (for rollback proof)',
  preview() {
    return ['-- reads pg_catalog (one REPEATABLE READ transaction); stores the snapshot in pgshift.artifacts'];
  },
  async run(ctx) {
    const existing = await ctx.journal.getArtifact(Artifacts.snapshot);
    if (existing) {
      return {
        status: 'already-done',
        summary: `kept the snapshot taken ${existing.at} (${Object.keys(existing.objects).length} objects); it is replaced only after a completed rollback`,
      };
    }
    const snap = await takeSnapshot(ctx.db);
    await ctx.journal.setArtifact(Artifacts.snapshot, snap);
    const counts = new Map<string, number>();
    for (const k of Object.keys(snap.objects)) {
      const kind = k.startsWith('materialized view') ? 'materialized view' : k.startsWith('foreign key') ? 'foreign key' : k.split(' ')[0]!;
      counts.set(kind, (counts.get(kind) ?? 0) + 1);
    }
    return {
      status: 'done',
      summary: `${Object.keys(snap.objects).length} catalog objects in ${snap.schemas.length} schema(s) recorded; a rollback is checked against them`,
      tables: [{ title: 'Catalog snapshot', columns: ['kind', 'objects'], rows: [...counts.entries()].sort() }],
      data: { at: snap.at, schemas: snap.schemas, objects: Object.keys(snap.objects).length },
    };
  },
};
