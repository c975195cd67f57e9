/**
 * Renders the integrity report stored in the journal (artifact "integrity-report", written by phase 3's
 * verify:integrity step) as Markdown for the change ticket, or as JSON.
 */

interface Orphans { constraint: string; direction: string; table: string; count: number }
interface TableIntegrity {
  table: string; target: string; oldRows: number; newRows: number; missing: number; extra: number; mismatched: number;
  orphans?: Orphans[]; samples?: { kind: string; pk: string }[]; partitions?: { name: string; rows: number }[];
  pass: boolean; note?: string; chunks?: number; chunksDiffering?: number;
}
interface Report { at: string; pass: boolean; tables: TableIntegrity[] }

function isReport(x: unknown): x is Report {
  return !!x && typeof x === 'object' && Array.isArray((x as Report).tables) && typeof (x as Report).pass === 'boolean';
}

const n = (v: number) => v.toLocaleString('en-US');
/** Markdown table cell: pipes and newlines would break the table. */
const cell = (v: unknown) => (v === null || v === undefined ? '' : typeof v === 'string' ? v : typeof v === 'number' || typeof v === 'boolean' || typeof v === 'bigint' ? v.toString() : JSON.stringify(v)).replace(/\|/g, '\\|').replace(/\r?\n/g, ' ');

function mdTable(columns: string[], rows: unknown[][]): string[] {
  return [
    `| ${columns.map(cell).join(' | ')} |`,
    `| ${columns.map((_, i) => (i === 0 ? '---' : '---:')).join(' | ')} |`,
    ...rows.map((r) => `| ${r.map(cell).join(' | ')} |`),
  ];
}

export function renderIntegrityReport(report: unknown, format: 'md' | 'json'): string {
  if (format === 'json') return JSON.stringify(report, null, 2);
  if (!isReport(report)) return '```json\n' + JSON.stringify(report, null, 2) + '\n```';
  const r = report;
  const out: string[] = [];
  out.push(`# Integrity report — ${r.pass ? '✅ PASS' : '❌ FAIL'}`);
  out.push('');
  out.push(`Checked ${r.at} by pgshift. Counts are exact (count(*)); row content is compared by md5 of every row's columns, ` +
    'chunk by chunk, and differing chunks are drilled into row by row.');
  out.push('');
  out.push(...mdTable(
    ['table', 'new table', 'old rows', 'new rows', 'missing', 'extra', 'changed', 'FK orphans', 'result'],
    r.tables.map((t) => [t.table, t.target, n(t.oldRows), n(t.newRows), n(t.missing), n(t.extra), n(t.mismatched),
      n((t.orphans ?? []).reduce((a, o) => a + o.count, 0)), t.pass ? 'pass' : '**FAIL**']),
  ));
  for (const t of r.tables) {
    out.push('');
    out.push(`## ${t.table} → ${t.target}: ${t.pass ? 'pass' : 'FAIL'}`);
    if (t.note) {
      out.push('');
      out.push(`> ${t.note}`);
    }
    if (t.chunks) {
      out.push('');
      out.push(`${n(t.chunks)} chunks compared, ${n(t.chunksDiffering ?? 0)} differing.`);
    }
    if (t.samples?.length) {
      out.push('');
      out.push('Differing rows (up to 20 samples, by primary key):');
      out.push('');
      out.push(...mdTable(['kind', 'primary key'], t.samples.map((s) => [s.kind, '`' + s.pk + '`'])));
    }
    if (t.orphans?.length) {
      out.push('');
      out.push('Foreign keys checked:');
      out.push('');
      out.push(...mdTable(['constraint', 'direction', 'table', 'orphan rows'], t.orphans.map((o) => [o.constraint, o.direction, o.table, n(o.count)])));
    }
    if (t.partitions?.length) {
      out.push('');
      out.push('<details><summary>Rows per partition</summary>');
      out.push('');
      out.push(...mdTable(['partition', 'rows'], t.partitions.map((p) => [p.name, n(p.rows)])));
      out.push('');
      out.push('</details>');
    }
  }
  return out.join('\n');
}
