import type { Phase, PhaseId } from './types.js';

/**
 * The phase modules the engine runs, in order. The engine does not import them: the composition root (the CLI,
 * source/run.ts; tests and benches) passes the registry in (phases/index.ts has pgshift's), so dependencies run one
 * way, from the phases to the engine.
 */
export type PhaseRegistry = readonly Phase[];

/** The module of one phase; an error names the ids the registry has. */
export function phaseModule(registry: PhaseRegistry, id: PhaseId): Phase {
  const mod = registry.find((p) => p.id === id);
  if (!mod) throw new Error(`no phase module for ${String(id)} (the registry has ${registry.map((p) => String(p.id)).join(', ') || 'none'})`);
  return mod;
}
