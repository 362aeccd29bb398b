/**
 * Databases for integration tests: a scratch PostgreSQL database per caller when
 * KESSAI_TEST_PG_URL is set, and the run's PGlite template (made once by test/global-setup.ts).
 * A run that is killed leaves its scratch databases behind (names start with the given prefix).
 */
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import pg from 'pg';
import { inject } from 'vitest';

/** When KESSAI_TEST_PG_URL is set (an admin URL like postgres://postgres@127.0.0.1:5432/postgres), creates a fresh database named `${prefix}_${random}` and returns its URL with a drop() that terminates connections and drops it; otherwise returns undefined. */
export async function scratchPostgres(prefix: string): Promise<{ url: string; drop(): Promise<void> } | undefined> {
  const adminUrl = process.env.KESSAI_TEST_PG_URL;
  if (!adminUrl) return undefined;
  // Identifiers are at most 63 bytes; keep the prefix readable and safe to quote.
  const safePrefix = prefix.toLowerCase().replace(/[^a-z0-9_]/g, '_').slice(0, 50);
  const name = `${safePrefix}_${randomBytes(4).toString('hex')}`;
  await asAdmin(adminUrl, `CREATE DATABASE "${name}"`);
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    // WITH (FORCE) terminates the connections still open to it (PostgreSQL 13+).
    drop: () => asAdmin(adminUrl, `DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`),
  };
}

let template: Promise<Blob> | undefined;

/** The PGlite template made by global setup (read from the file whose path global setup provided via vitest `provide('pgliteTemplatePath', path)` — use `inject('pgliteTemplatePath')` from 'vitest'). Cache it per worker. */
export async function pgliteTemplate(): Promise<Blob> {
  template ??= readFile(inject('pgliteTemplatePath')).then((bytes) => new Blob([bytes]));
  return template;
}

/** Runs one statement as the PostgreSQL administrator (CREATE or DROP DATABASE). */
export async function asAdmin(adminUrl: string, sql: string): Promise<void> {
  const client = new pg.Client({ connectionString: adminUrl });
  await client.connect();
  try {
    await client.query(sql);
  } finally {
    await client.end();
  }
}
