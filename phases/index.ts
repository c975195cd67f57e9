import type { PhaseRegistry } from '../source/engine/phases.js';
import { preparation } from './1-preparation.js';
import { structure } from './2-structure.js';
import { data } from './3-data.js';
import { dependencies } from './4-dependencies.js';
import { cleanup } from './5-cleanup.js';
import { rollback } from './rollback.js';

/** pgshift's phases, in order: what the composition root (source/run.ts, tests, benches) gives the engine. */
export const PHASE_REGISTRY: PhaseRegistry = [preparation, structure, data, dependencies, cleanup, rollback];
