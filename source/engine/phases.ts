import type { Phase } from './types.js';
import { preparation } from '../../phases/1-preparation.js';
import { structure } from '../../phases/2-structure.js';
import { data } from '../../phases/3-data.js';
import { dependencies } from '../../phases/4-dependencies.js';
import { cleanup } from '../../phases/5-cleanup.js';
import { rollback } from '../../phases/rollback.js';

export const PHASE_MODULES: readonly Phase[] = [preparation, structure, data, dependencies, cleanup, rollback];
