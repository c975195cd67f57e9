/** Renders the integrity report stored in the journal (artifact "integrity-report") as Markdown or JSON. */
export function renderIntegrityReport(report: unknown, format: 'md' | 'json'): string {
  if (format === 'json') return JSON.stringify(report, null, 2);
  return '```json\n' + JSON.stringify(report, null, 2) + '\n```';
}
