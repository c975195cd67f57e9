import type { IntegrityReport } from '../copy/integrity.js';
import type { AppTriggersArtifact } from '../copy/app-triggers.js';
import type { CaptureArtifact } from '../copy/online.js';
import type { StructureArtifact } from '../structure/build.js';
import type { KeyColumnArtifact } from '../structure/keycolumn.js';
import type { SwapArtifact } from '../swap/swap.js';
import type { DependencyRecord, FkPlan } from '../swap/deps.js';
import type { CatalogSnapshot } from '../snapshot.js';
import type { BackupArtifact } from '../backup.js';

/**
 * The contract between the phases: every journal artifact (table pgshift.artifacts), its key and the type of its
 * value, in one place. A phase reads what another wrote only through these keys, so changing an artifact's type
 * breaks compilation in every reader and every fixture that writes one. The value type rides on the key as a
 * phantom: `Journal.getArtifact(Artifacts.backup)` is a `BackupArtifact | null`, with no cast anywhere.
 */
declare const valueType: unique symbol;
export interface ArtifactKey<T> {
  readonly key: string;
  /** never present at run time: carries T for the type checker */
  readonly [valueType]?: T;
}

function artifact<T>(key: string): ArtifactKey<T> {
  return { key };
}

/** The table an artifact is about, by its name before the migration. */
interface TableRef { readonly schema: string; readonly table: string }
const tableName = (t: TableRef) => `${t.schema}.${t.table}`;

/** A plan SQL file phase 2 or 4 applied: its checksum when applied (a changed file is refused). */
export interface SqlArtifact { readonly checksum: string; readonly appliedAt: string; readonly file?: string; readonly runId?: number }

/** The rollback's swap back of one table: the time, the lock it held and the FKs it re-pointed (validated after). */
export interface SwappedBackArtifact {
  readonly at: string;
  readonly lockHeldMs: number;
  readonly fks: FkPlan[];
  readonly changesUnderLock: number;
}

/** The old table restored from the backup after it was dropped (rollback). */
export interface RestoredArtifact { readonly at: string; readonly file: string; readonly rows: number }

export const Artifacts = {
  /** phase 1: the pg_dump archive and its verification */
  backup: artifact<BackupArtifact>('backup'),
  /** a completed rollback keeps the backup it used under this key; the next forward run takes a new one */
  backupBeforeRollback: artifact<BackupArtifact>('backup:before-rollback'),
  /** phase 1: the catalog before the migration, the rollback's proof */
  snapshot: artifact<CatalogSnapshot>('snapshot:catalog'),
  /** phases 2 and 4: one per plan SQL file */
  sql: (file: string) => artifact<SqlArtifact>(`sql:${file}`),
  /** phase 2: the partitioned table built for a source table */
  structure: (t: TableRef) => artifact<StructureArtifact>(`structure:${tableName(t)}`),
  /** phase 2: the key column added to a referencing table (`schema.table` of the referencing table) */
  keyColumn: (referencing: string) => artifact<KeyColumnArtifact>(`key-column:${referencing}`),
  /** phase 3: the new table's application triggers, disabled during the copy */
  appTriggers: (t: TableRef) => artifact<AppTriggersArtifact>(`app-triggers:${tableName(t)}`),
  /** phase 3 (online): the change capture installed on the source table */
  capture: (t: TableRef) => artifact<CaptureArtifact>(`capture:${tableName(t)}`),
  /** phase 3: the integrity report of every table */
  integrityReport: artifact<IntegrityReport>('integrity-report'),
  /** phase 4: views, FKs, sequences, grants, publications that move with the swap */
  dependencies: (t: TableRef) => artifact<DependencyRecord>(`dependencies:${tableName(t)}`),
  /** phase 5: the swap that was done */
  swap: (t: TableRef) => artifact<SwapArtifact>(`swap:${tableName(t)}`),
  /** rollback: the swap back */
  swappedBack: (t: TableRef) => artifact<SwappedBackArtifact>(`swapped-back:${tableName(t)}`),
  /** rollback: the old table restored from the backup */
  restored: (t: TableRef) => artifact<RestoredArtifact>(`restored-old:${tableName(t)}`),
} as const;
