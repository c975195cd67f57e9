import type { Db, StatementSink, Tx } from '../db/session.js';
import { redact } from '../db/connection.js';
import type { ArtifactKey } from './artifacts.js';
import type pg from 'pg';

export interface StepRow { run_id: string; step_id: string; status: string; started_at: Date; duration_ms: string | null; summary: string | null; error: string | null }
export interface ConfirmationRow { run_id: string; step_id: string; kind: string; object: string; answer: string; method: string; confirmed_by: string; at: Date; reason: string | null }

/** Anything that runs a query: a pool, a client, a transaction's client. */
export interface Queryable { query<R extends pg.QueryResultRow>(sql: string, params?: unknown[]): Promise<pg.QueryResult<R>> }

export const JOURNAL_SCHEMA = 'pgshift';
export const JOURNAL_VERSION = 1;

/** Each entry upgrades the journal from version i to i+1; applied in order under an advisory lock. */
const MIGRATIONS: string[] = [
  `
  CREATE TABLE pgshift.runs (
    run_id bigserial PRIMARY KEY,
    plan_name text, plan_path text, plan_checksum text,
    operator text NOT NULL, host text NOT NULL, mode text NOT NULL, phases text,
    pgshift_version text,
    started_at timestamptz NOT NULL DEFAULT now(), ended_at timestamptz,
    status text NOT NULL DEFAULT 'running', message text
  );
  CREATE TABLE pgshift.steps (
    run_id bigint NOT NULL REFERENCES pgshift.runs, step_id text NOT NULL, phase text NOT NULL, title text NOT NULL,
    status text NOT NULL, started_at timestamptz NOT NULL DEFAULT now(), ended_at timestamptz, duration_ms numeric,
    summary text, error text, result jsonb,
    PRIMARY KEY (run_id, step_id)
  );
  CREATE TABLE pgshift.step_state (
    step_id text PRIMARY KEY, status text NOT NULL, run_id bigint NOT NULL, updated_at timestamptz NOT NULL DEFAULT now(), result jsonb
  );
  CREATE TABLE pgshift.statements (
    id bigserial PRIMARY KEY, run_id bigint, step_id text, sql text NOT NULL,
    at timestamptz NOT NULL DEFAULT clock_timestamp(), duration_ms numeric NOT NULL, rows bigint, error text
  );
  CREATE INDEX ON pgshift.statements (run_id, step_id);
  CREATE TABLE pgshift.confirmations (
    id bigserial PRIMARY KEY, run_id bigint, step_id text NOT NULL, kind text NOT NULL, object text NOT NULL,
    statements text[] NOT NULL, answer text NOT NULL, method text NOT NULL, confirmed_by text NOT NULL,
    typed_text text, reason text, at timestamptz NOT NULL DEFAULT now()
  );
  CREATE TABLE pgshift.checkpoints (
    step_id text PRIMARY KEY, run_id bigint, position jsonb, rows_done bigint NOT NULL DEFAULT 0,
    updated_at timestamptz NOT NULL DEFAULT now()
  );
  CREATE TABLE pgshift.artifacts (
    key text PRIMARY KEY, run_id bigint, value jsonb NOT NULL, updated_at timestamptz NOT NULL DEFAULT now()
  );
  `,
];

export interface RunRow {
  run_id: number; plan_name: string | null; operator: string; host: string; mode: string; phases: string | null;
  started_at: Date; ended_at: Date | null; status: string; message: string | null; plan_checksum: string | null;
}

/**
 * The journal lives in schema "pgshift" of the target database: it survives the process, so a killed run can be
 * resumed from it, and the change ticket can be written from it. Nothing secret is written here.
 */
export class Journal implements StatementSink {
  runId: number | null = null;
  private constructor(readonly db: Db, readonly exists: boolean) {}

  /** Opens the journal; with create, creates or upgrades it. Without create, a missing journal reads as empty. */
  static async open(db: Db, opts: { create: boolean }): Promise<Journal> {
    const { present } = await db.readOne<{ present: boolean }>(
      `SELECT to_regclass('pgshift.meta') IS NOT NULL AS present`,
    );
    if (!present && !opts.create) return new Journal(db, false);
    if (opts.create) await Journal.migrate(db);
    return new Journal(db, true);
  }

  private static async migrate(db: Db): Promise<void> {
    const c = await db.pool.connect();
    try {
      await c.query('BEGIN');
      await c.query(`SELECT pg_advisory_xact_lock(hashtext('pgshift.journal.migrate'))`);
      await c.query(`CREATE SCHEMA IF NOT EXISTS pgshift`);
      await c.query(`CREATE TABLE IF NOT EXISTS pgshift.meta (key text PRIMARY KEY, value text NOT NULL)`);
      const r = await c.query<{ value: string }>(`SELECT value FROM pgshift.meta WHERE key = 'version'`);
      let version = r.rows[0] ? Number(r.rows[0].value) : 0;
      if (version > JOURNAL_VERSION) {
        throw new Error(`the journal in this database is version ${version}, newer than this pgshift understands (${JOURNAL_VERSION}); upgrade pgshift`);
      }
      while (version < JOURNAL_VERSION) {
        await c.query(MIGRATIONS[version]!);
        version++;
      }
      await c.query(
        `INSERT INTO pgshift.meta (key, value) VALUES ('version', $1) ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value`,
        [String(version)],
      );
      await c.query('COMMIT');
    } catch (e) {
      await c.query('ROLLBACK').catch(() => {});
      throw e;
    } finally {
      c.release();
    }
  }

  async startRun(r: { planName: string; planPath: string; checksum: string; operator: string; host: string; mode: string; phases: string; version: string }): Promise<number> {
    const rows = await this.db.write<{ run_id: string }>(
      `INSERT INTO pgshift.runs (plan_name, plan_path, plan_checksum, operator, host, mode, phases, pgshift_version)
       VALUES ($1,$2,$3,$4,$5,$6,$7,$8) RETURNING run_id`,
      [r.planName, r.planPath, r.checksum, r.operator, r.host, r.mode, r.phases, r.version],
    );
    this.runId = Number(rows[0]!.run_id);
    return this.runId;
  }

  async endRun(status: string, message?: string): Promise<void> {
    if (this.runId === null) return;
    await this.db.write(`UPDATE pgshift.runs SET ended_at = now(), status = $2, message = $3 WHERE run_id = $1`, [
      this.runId, status, message ? redact(message) : null,
    ]);
  }

  /** The newest run that never ended (killed), with the step it was in. */
  async interruptedRun(): Promise<{ runId: number; stepId: string | null; status: string; startedAt: Date; operator: string } | null> {
    if (!this.exists) return null;
    const rows = await this.db.read<{ run_id: string; step_id: string | null; status: string | null; started_at: Date; operator: string }>(
      `SELECT r.run_id, s.step_id, s.status, r.started_at, r.operator
         FROM pgshift.runs r
         LEFT JOIN LATERAL (SELECT step_id, status FROM pgshift.steps WHERE run_id = r.run_id ORDER BY started_at DESC LIMIT 1) s ON true
        WHERE r.ended_at IS NULL AND r.run_id IS DISTINCT FROM $1
        ORDER BY r.run_id DESC LIMIT 1`,
      [this.runId],
    );
    const r = rows[0];
    return r ? { runId: Number(r.run_id), stepId: r.step_id, status: r.status ?? 'none', startedAt: r.started_at, operator: r.operator } : null;
  }

  /** Marks runs that were killed (no end, no live holder) as interrupted. Call while holding the run lock. */
  async closeInterrupted(): Promise<void> {
    await this.db.write(
      `UPDATE pgshift.runs SET ended_at = now(), status = 'interrupted', message = 'process ended without closing the run'
        WHERE ended_at IS NULL AND run_id IS DISTINCT FROM $1`,
      [this.runId],
    );
    await this.db.write(
      `UPDATE pgshift.steps SET status = 'interrupted', ended_at = now() WHERE status = 'running' AND run_id IS DISTINCT FROM $1`,
      [this.runId],
    );
  }

  async stepStarted(stepId: string, phase: string, title: string): Promise<void> {
    await this.db.write(
      `INSERT INTO pgshift.steps (run_id, step_id, phase, title, status) VALUES ($1,$2,$3,$4,'running')
       ON CONFLICT (run_id, step_id) DO UPDATE SET status = 'running', started_at = now(), ended_at = NULL, error = NULL`,
      [this.runId, stepId, phase, title],
    );
  }

  async stepEnded(stepId: string, status: string, r: { summary?: string; error?: string; result?: unknown; ms: number }): Promise<void> {
    await this.db.write(
      `UPDATE pgshift.steps SET status = $3, ended_at = now(), duration_ms = $4, summary = $5, error = $6, result = $7
        WHERE run_id = $1 AND step_id = $2`,
      [this.runId, stepId, status, Math.round(r.ms), r.summary ? redact(r.summary) : null, r.error ? redact(r.error) : null, r.result === undefined ? null : JSON.stringify(r.result)],
    );
    if (status === 'done' || status === 'already-done' || status === 'skipped' || status === 'failed') {
      await this.db.write(
        `INSERT INTO pgshift.step_state (step_id, status, run_id, result) VALUES ($1,$2,$3,$4)
         ON CONFLICT (step_id) DO UPDATE SET status = EXCLUDED.status, run_id = EXCLUDED.run_id, updated_at = now(), result = EXCLUDED.result`,
        [stepId, status === 'already-done' ? 'done' : status, this.runId, r.result === undefined ? null : JSON.stringify(r.result)],
      );
    }
  }

  /** A step skipped because an earlier run finished it: recorded in this run's steps, step_state untouched. */
  async stepSkippedAsDone(stepId: string, phase: string, title: string, doneInRun: number): Promise<void> {
    await this.db.write(
      `INSERT INTO pgshift.steps (run_id, step_id, phase, title, status, ended_at, duration_ms, summary)
       VALUES ($1,$2,$3,$4,'already-done', now(), 0, $5) ON CONFLICT (run_id, step_id) DO NOTHING`,
      [this.runId, stepId, phase, title, `done in run ${doneInRun}`],
    );
  }

  async stepStates(): Promise<Map<string, { status: string; runId: number; result: unknown }>> {
    const m = new Map<string, { status: string; runId: number; result: unknown }>();
    if (!this.exists) return m;
    const rows = await this.db.read<{ step_id: string; status: string; run_id: string; result: unknown }>(
      `SELECT step_id, status, run_id, result FROM pgshift.step_state`,
    );
    for (const r of rows) m.set(r.step_id, { status: r.status, runId: Number(r.run_id), result: r.result });
    return m;
  }

  async recordStatement(s: { stepId: string | null; sql: string; ms: number; rows: number | null; error?: string }): Promise<void> {
    if (!this.exists || this.runId === null) return;
    await this.db.pool.query(
      `INSERT INTO pgshift.statements (run_id, step_id, sql, duration_ms, rows, error) VALUES ($1,$2,$3,$4,$5,$6)`,
      [this.runId, s.stepId, redact(s.sql), Math.round(s.ms * 1000) / 1000, s.rows, s.error ?? null],
    );
  }

  async recordConfirmation(c: {
    stepId: string; kind: string; object: string; statements: readonly string[]; answer: string; method: string; by: string; typedText?: string; reason?: string;
  }): Promise<void> {
    if (!this.exists) return;
    await this.db.write(
      `INSERT INTO pgshift.confirmations (run_id, step_id, kind, object, statements, answer, method, confirmed_by, typed_text, reason)
       VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10)`,
      [this.runId, c.stepId, c.kind, c.object, c.statements.map(redact), c.answer, c.method, c.by, c.typedText ?? null, c.reason ?? null],
    );
  }

  async getCheckpoint<T = unknown>(stepId: string): Promise<{ position: T; rowsDone: number } | null> {
    if (!this.exists) return null;
    const rows = await this.db.read<{ position: T; rows_done: string }>(`SELECT position, rows_done FROM pgshift.checkpoints WHERE step_id = $1`, [stepId]);
    return rows[0] ? { position: rows[0].position, rowsDone: Number(rows[0].rows_done) } : null;
  }

  /** Writes the checkpoint inside the caller's transaction, so data and position commit together. */
  async setCheckpoint(tx: Tx, stepId: string, position: unknown, rowsDone: number): Promise<void> {
    await tx.client.query(
      `INSERT INTO pgshift.checkpoints (step_id, run_id, position, rows_done) VALUES ($1,$2,$3,$4)
       ON CONFLICT (step_id) DO UPDATE SET run_id = EXCLUDED.run_id, position = EXCLUDED.position, rows_done = EXCLUDED.rows_done, updated_at = now()`,
      [stepId, this.runId, JSON.stringify(position), rowsDone],
    );
  }

  /** An artifact another step wrote (see artifacts.ts for every key and its type), or null. */
  async getArtifact<T>(a: ArtifactKey<T>): Promise<T | null> {
    if (!this.exists) return null;
    return selectArtifact(this.db.pool, a);
  }

  /** A write to the journal: inside the caller's transaction when given, else on its own. */
  private async exec(sql: string, params: unknown[], tx?: Tx): Promise<void> {
    if (tx) await tx.client.query(sql, params);
    else await this.db.write(sql, params);
  }

  /** Writes an artifact; inside the caller's transaction when given, so it commits with what it describes. */
  async setArtifact<T>(a: ArtifactKey<T>, value: T, tx?: Tx): Promise<void> {
    const sql = `INSERT INTO pgshift.artifacts (key, run_id, value) VALUES ($1,$2,$3)
                 ON CONFLICT (key) DO UPDATE SET run_id = EXCLUDED.run_id, value = EXCLUDED.value, updated_at = now()`;
    await this.exec(sql, [a.key, this.runId, JSON.stringify(value)], tx);
  }

  /** Forgets artifacts; inside the caller's transaction when given. */
  async deleteArtifacts(keys: readonly ArtifactKey<unknown>[], tx?: Tx): Promise<void> {
    if (!this.exists || !keys.length) return;
    await this.exec(`DELETE FROM pgshift.artifacts WHERE key = ANY($1::text[])`, [keys.map((k) => k.key)], tx);
  }

  async deleteArtifact(a: ArtifactKey<unknown>, tx?: Tx): Promise<void> {
    await this.deleteArtifacts([a], tx);
  }

  /** Forgets steps' "done" and their checkpoints (a rollback undid them); inside the caller's transaction when given. */
  async forgetSteps(stepIds: readonly string[], tx?: Tx): Promise<void> {
    if (!this.exists || !stepIds.length) return;
    await this.deleteCheckpoints(stepIds, tx);
    await this.exec(`DELETE FROM pgshift.step_state WHERE step_id = ANY($1::text[])`, [stepIds], tx);
  }

  /** Forgets a copy's checkpoint only (the rows it counted are gone), inside the caller's transaction when given. */
  async deleteCheckpoints(stepIds: readonly string[] | 'all', tx?: Tx): Promise<void> {
    if (!this.exists) return;
    if (stepIds === 'all') await this.exec(`DELETE FROM pgshift.checkpoints`, [], tx);
    else await this.exec(`DELETE FROM pgshift.checkpoints WHERE step_id = ANY($1::text[])`, [stepIds], tx);
  }

  /** Whether the operator confirmed an override of `object` in this run (journaled in pgshift.confirmations). */
  async overrideConfirmed(object: string): Promise<boolean> {
    if (!this.exists || this.runId === null) return false;
    const rows = await this.db.read(
      `SELECT 1 FROM pgshift.confirmations WHERE run_id = $1 AND kind = 'override' AND object = $2 AND answer = 'confirmed' LIMIT 1`,
      [this.runId, object],
    );
    return rows.length > 0;
  }

  /** The steps of these runs, in order (the history command). */
  async stepsOf(runIds: readonly (string | number)[]): Promise<StepRow[]> {
    if (!this.exists) return [];
    return this.db.read<StepRow>(
      `SELECT run_id, step_id, status, started_at, duration_ms, summary, error FROM pgshift.steps WHERE run_id = ANY($1::bigint[]) ORDER BY run_id, started_at`,
      [runIds],
    );
  }

  /** The confirmations asked in these runs, in order (the history command). */
  async confirmationsOf(runIds: readonly (string | number)[]): Promise<ConfirmationRow[]> {
    if (!this.exists) return [];
    return this.db.read<ConfirmationRow>(
      `SELECT run_id, step_id, kind, object, answer, method, confirmed_by, at, reason FROM pgshift.confirmations WHERE run_id = ANY($1::bigint[]) ORDER BY at`,
      [runIds],
    );
  }

  async runs(limit = 20): Promise<RunRow[]> {
    if (!this.exists) return [];
    return this.db.read<RunRow>(`SELECT * FROM pgshift.runs ORDER BY run_id DESC LIMIT $1`, [limit]);
  }

  /** The step a run was in last (the newest it started), or null: where a stopped or killed run left off. */
  async lastStepOf(runId: number): Promise<{ stepId: string; phase: string; status: string } | null> {
    if (!this.exists) return null;
    const [r] = await this.db.read<{ step_id: string; phase: string; status: string }>(
      `SELECT step_id, phase::text AS phase, status FROM pgshift.steps WHERE run_id = $1 ORDER BY started_at DESC LIMIT 1`, [runId],
    );
    return r ? { stepId: r.step_id, phase: r.phase, status: r.status } : null;
  }
}

/** Forgets an artifact outside a run's Journal (cleanup that runs without one: removing a capture). */
export async function forgetArtifact(db: Db, a: ArtifactKey<unknown>): Promise<void> {
  await db.write(`DELETE FROM pgshift.artifacts WHERE key = $1`, [a.key]);
}

/**
 * An artifact read through any connection (a snapshot transaction of the integrity check, a pool), or null when
 * it or the journal does not exist.
 */
export async function readArtifact<T>(r: Queryable, a: ArtifactKey<T>): Promise<T | null> {
  const present = (await r.query<{ ok: boolean }>(`SELECT to_regclass('pgshift.artifacts') IS NOT NULL AS ok`)).rows[0]?.ok;
  return present ? selectArtifact(r, a) : null;
}

async function selectArtifact<T>(r: Queryable, a: ArtifactKey<T>): Promise<T | null> {
  const rows = (await r.query<{ value: T }>(`SELECT value FROM pgshift.artifacts WHERE key = $1`, [a.key])).rows;
  return rows[0]?.value ?? null;
}
