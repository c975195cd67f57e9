import type { Tx, Db } from '../db/session.js';
import type { TablePlan } from '../plan/schema.js';
import type { Journal } from '../engine/journal.js';

/**
 * CONTRACT (owned by the phase-3 engineer; phase 5 calls these):
 * - drainCapture: inside the swap transaction, after the swap has locked the source table against writes, apply every
 *   captured change still pending to the new table; returns how many changes it applied. No-op (0) when the table
 *   was copied in batch mode (no capture installed).
 * - removeCapture: drop the capture trigger, function and change log of a table (after the swap or on rollback).
 */
export async function drainCapture(_tx: Tx, _t: TablePlan, _journal: Journal): Promise<number> {
  return 0;
}

export async function removeCapture(_db: Db, _t: TablePlan, _stepId: string | null): Promise<void> {}

export async function captureInstalled(_db: Db, _t: TablePlan): Promise<boolean> {
  return false;
}
