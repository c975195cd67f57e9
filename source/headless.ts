import type { EngineEvent } from './engine/types.js';
import { redact } from './db/connection.js';
import { fmtCount, fmtDuration, renderTable } from './format.js';

export type Writer = (line: string) => void;

/**
 * Off a TTY (or with --headless) the run is printed as lines: one per event, progress at most every 2 s per step.
 * With json, one JSON object per event. Every line passes through redact().
 */
export function headlessReporter(write: Writer, opts: { json?: boolean } = {}): (e: EngineEvent) => void {
  const lastProgress = new Map<string, number>();
  const lastState = new Map<string, string>();
  const out = (s: string) => write(redact(s));
  return (e) => {
    if (opts.json) {
      if (e.type === 'step-progress') {
        const now = Date.now();
        if (now - (lastProgress.get(e.stepId) ?? 0) < 250) return;
        lastProgress.set(e.stepId, now);
      }
      out(JSON.stringify({ ts: new Date().toISOString(), ...e }));
      return;
    }
    switch (e.type) {
      case 'run-started':
        if (e.resumedFrom) {
          out(`↻ resuming: run ${e.resumedFrom.runId} stopped${e.resumedFrom.stepId ? ` in step ${e.resumedFrom.stepId} (${e.resumedFrom.status})` : ' before any step'}; done steps are skipped, copies continue from their checkpoint`);
        }
        out(`run ${e.runId} started: phases ${e.phases.join(', ')}`);
        break;
      case 'phase-started':
        out(`── Phase ${e.phase} · ${e.name} (${e.steps.length} step${e.steps.length === 1 ? '' : 's'})`);
        break;
      case 'phase-done':
        break;
      case 'step-started':
        out(`▶ ${e.stepId}  ${e.title}`);
        break;
      case 'step-progress': {
        const now = Date.now();
        const done = e.progress.total !== undefined && e.progress.done >= e.progress.total;
        // a change of state (running → THROTTLED / WAITING FOR LOCK / PAUSED and back) is printed at once
        const state = `${e.progress.state ?? ''}|${e.progress.reason ?? ''}`;
        const changed = state !== (lastState.get(e.stepId) ?? '|') ;
        lastState.set(e.stepId, state);
        if (!done && !changed && now - (lastProgress.get(e.stepId) ?? 0) < 2000) return;
        lastProgress.set(e.stepId, now);
        const p = e.progress;
        const word = p.state && p.state !== 'running' ? `${p.state === 'throttled' ? 'THROTTLED' : p.state === 'paused' ? 'PAUSED' : 'WAITING FOR LOCK'}${p.reason ? ` (${p.reason})` : ''} · ` : '';
        const pct = p.total ? ` (${Math.min(100, (100 * p.done) / p.total).toFixed(1)}%)` : '';
        const rate = e.ratePerSec ? `, ${fmtCount(e.ratePerSec)} ${p.unit ?? 'rows'}/s` : '';
        const eta = e.etaSec !== undefined && !done ? `, ETA ${fmtDuration(e.etaSec * 1000)}` : '';
        out(`  … ${word}${fmtCount(p.done)}${p.total !== undefined ? ` / ${fmtCount(p.total)}` : ''} ${p.unit ?? 'rows'}${pct}${rate}${eta}${p.detail ? ` · ${p.detail}` : ''}`);
        break;
      }
      case 'step-log':
        out(`  ${e.level === 'warn' ? '⚠ ' : e.level === 'error' ? '✗ ' : ''}${e.message}`);
        break;
      case 'step-done':
        for (const t of e.tables ?? []) for (const l of renderTable(t)) out(`  ${l}`);
        for (const w of e.warnings ?? []) out(`  ⚠ ${w}`);
        out(`${e.status === 'skipped' ? '–' : '✓'} ${e.stepId}  ${e.status === 'already-done' ? 'already done' : e.status}${e.summary ? `: ${e.summary}` : ''}${e.resumed ? '' : ` (${fmtDuration(e.durationMs)})`}`);
        break;
      case 'step-failed':
        for (const t of e.tables ?? []) for (const l of renderTable(t)) out(`  ${l}`);
        for (const w of e.warnings ?? []) out(`  ⚠ ${w}`);
        out(`✗ ${e.stepId}  ${e.error}`);
        if (e.hint) out(`  hint: ${e.hint}`);
        break;
      case 'confirm-requested': {
        const r = e.request;
        out(`? ${r.kind.toUpperCase()} ${r.object} — needs confirmation${r.typed ? ' (typed name)' : ''}`);
        for (const s of r.statements) out(`    ${s}`);
        for (const s of r.impact) out(`    impact: ${s}`);
        for (const s of r.protections) out(`    protection: ${s}`);
        if (r.refusal) out(`    REFUSED: ${r.refusal}`);
        break;
      }
      case 'confirm-answered':
        out(`  ${e.answer.confirmed ? `confirmed by ${e.answer.by} (${e.answer.method}${e.answer.override ? ', override' : ''})` : e.answer.method === 'refused' ? 'refused' : 'not confirmed'}: ${e.object}`);
        break;
      case 'run-ended':
        out(`run ${e.runId} ${e.status}${e.message ? `: ${e.message}` : ''}`);
        break;
    }
  };
}
