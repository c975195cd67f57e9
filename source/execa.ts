/**
 * execa, loaded on first use: only the backup and restore steps run a tool, and importing execa at every start
 * cost ~0.1 s of CPU — on a database host, CPU its application does not get.
 */
type Execa = typeof import('execa').execa;
let loaded: Promise<Execa> | null = null;

export function loadExeca(): Promise<Execa> {
  loaded ??= import('execa').then((m) => m.execa);
  return loaded;
}
