/**
 * bench:copy's application writer, run as its own process (`node dist/bench/lib/writer.js URL`): paced single-row
 * inserts, updates, partition moves and deletes on public.petri_observations, each timed, until a line arrives on
 * stdin; then one JSON line with the count, the errors and the latency percentiles.
 */
import pg from 'pg';
import { percentile } from './copy-target.js';

const url = process.argv[2];
if (!url) {
  process.stderr.write('usage: writer.js DATABASE_URL\n');
  process.exit(2);
}
const c = new pg.Client({ connectionString: url, application_name: 'bench-writer' });
const lat: number[] = [];
/** when each op ended (epoch ms), for the bench's breakdown by what pgshift was doing */
const at: number[] = [];
let errors = 0;
let stop = false;
process.stdin.on('data', () => { stop = true; });
process.stdin.on('end', () => { stop = true; });
let seed = 42;
const rnd = () => ((seed = (seed * 16807) % 2147483647) / 2147483647);
await c.connect();
const ids = (await c.query<{ id: string }>(`SELECT observation_id::text AS id FROM public.petri_observations TABLESAMPLE SYSTEM (2) LIMIT 20000`)).rows.map((r) => r.id);
const sites = (await c.query<{ program_id: string; site_id: string }>(`SELECT program_id, site_id FROM public.sites`)).rows;
for (let i = 0; !stop; i++) {
  const op = rnd();
  const id = ids[Math.floor(rnd() * ids.length)]!;
  const t0 = performance.now();
  try {
    if (op < 0.4) {
      const s = sites[Math.floor(rnd() * sites.length)]!;
      await c.query(
        `INSERT INTO public.petri_observations (program_id, site_id, petri_code, growth_index, created_at) VALUES ($1, $2, $3, 10, now() - interval '1 minute' * $4)`,
        [s.program_id, s.site_id, `BW-${i}`, Math.floor(rnd() * 500_000)],
      );
    } else if (op < 0.75) {
      await c.query(`UPDATE public.petri_observations SET growth_index = growth_index + 1 WHERE observation_id = $1`, [id]);
    } else if (op < 0.9) {
      await c.query(`UPDATE public.petri_observations SET created_at = created_at - interval '35 days' WHERE observation_id = $1 AND created_at > '2024-03-01'
                      AND NOT EXISTS (SELECT 1 FROM public.petri_observation_images i WHERE i.observation_id = $1)`, [id]);
    } else {
      await c.query(`DELETE FROM public.petri_observations WHERE observation_id = $1`, [id]);
    }
    lat.push(performance.now() - t0);
    at.push(Date.now());
  } catch {
    errors++;
  }
  await new Promise((r) => setTimeout(r, 2));
}
await c.end();
process.stdout.write(`${JSON.stringify({ ops: lat.length, errors, p50: percentile(lat, 50), p99: percentile(lat, 99), max: percentile(lat, 100), lat: lat.map((x) => +x.toFixed(2)), at })}\n`);
