import type { TestProject } from 'vitest/node';

/** The application's non-superuser role the tests write through (see test/session.test.ts). */
export const APP_ROLE = 'pgshift_test_app';
export const APP_PASSWORD = 'app-secret';

/**
 * Global setup, after the shared server is up (test/global-setup.ts): creates the application role once, before any
 * test file runs. Roles are cluster-wide: a role created while another file compares catalog fingerprints
 * (test/helpers/catalog.ts lists pg_roles) would change that file's fingerprint under it.
 */
export default async function createAppRole(project: TestProject): Promise<void> {
  const pg = (await import('pg')).default;
  const c = new pg.Client({ connectionString: project.getProvidedContext().pgUrl });
  await c.connect();
  try {
    await c.query(`DO $$ BEGIN CREATE ROLE ${APP_ROLE} LOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$`);
    await c.query(`ALTER ROLE ${APP_ROLE} LOGIN PASSWORD '${APP_PASSWORD}'`);
  } finally {
    await c.end();
  }
}
