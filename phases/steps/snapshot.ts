import type { Step } from '../../source/engine/types.js';

/**
 * CONTRACT (owned by the rollback engineer; phase 1 lists this step last): records the pre-migration catalog
 * snapshot (tables, columns, constraints, indexes, views, FKs, grants, policies, triggers, sequences) of the
 * schemas the plan touches, as journal artifact "snapshot:catalog", so a rollback can prove it restored it.
 */
export const snapshotStep: Step = {
  id: 'snapshot:catalog',
  phase: 1,
  title: 'Catalog snapshot before the migration (for rollback proof)',
  async preview() {
    return ['-- reads pg_catalog; stores the snapshot in pgshift.artifacts'];
  },
  async run() {
    return { status: 'skipped', summary: 'not implemented yet' };
  },
};
