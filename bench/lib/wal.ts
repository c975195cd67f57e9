import type pg from 'pg';
import { first } from '../../source/db/session.js';

/**
 * What the server's WAL did over a stretch of a bench (a load, the ceiling's INSERT, pgshift's copy): one mark before
 * it, what was written and begun since after it. A checkpoint begun meanwhile makes every first write of a page log
 * the whole page; a segment file created (none recycled to take) is zero-filled and fsynced while every commit waits.
 */
export interface WalMark { readonly lsn: string; readonly checkpoints: number; readonly segments: number }
export interface WalSince { readonly mb: number; readonly checkpoints: number; readonly segmentsCreated: number }

export async function walMark(c: pg.ClientBase): Promise<WalMark> {
  const r = first((await c.query<{ lsn: string; ck: number; seg: number }>(
    `SELECT pg_current_wal_lsn()::text AS lsn, (SELECT checkpoints_timed + checkpoints_req FROM pg_stat_bgwriter)::int AS ck,
            (SELECT count(*) FROM pg_ls_waldir() WHERE name ~ '^[0-9A-F]{24}$')::int AS seg`)).rows, 'wal mark');
  return { lsn: r.lsn, checkpoints: r.ck, segments: r.seg };
}

export async function walSince(c: pg.ClientBase, m: WalMark): Promise<WalSince> {
  const now = await walMark(c);
  const r = first((await c.query<{ mb: number }>(`SELECT round(pg_wal_lsn_diff($1::pg_lsn, $2::pg_lsn) / 1048576)::int AS mb`, [now.lsn, m.lsn])).rows, 'wal since');
  return { mb: r.mb, checkpoints: now.checkpoints - m.checkpoints, segmentsCreated: Math.max(0, now.segments - m.segments) };
}
