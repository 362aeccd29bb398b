/**
 * Vitest global setup: runs PGlite's initdb once per test run and leaves the dumped data dir in a
 * temp file, whose path tests read with `inject('pgliteTemplatePath')` (see support/database.ts),
 * so each test database is a clone (about a second) instead of a fresh initdb (several seconds).
 * The file is deleted at teardown; a killed run leaves it in the OS temp folder.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { TestProject } from 'vitest/node';
import { createPgliteTemplate } from '../packages/service/src/db.ts';

declare module 'vitest' {
  export interface ProvidedContext {
    pgliteTemplatePath: string;
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const template = await createPgliteTemplate();
  const dir = await mkdtemp(path.join(tmpdir(), 'kessai-pglite-template-'));
  const file = path.join(dir, 'template.tar');
  await writeFile(file, new Uint8Array(await template.arrayBuffer()));
  project.provide('pgliteTemplatePath', file);
  return () => rm(dir, { recursive: true, force: true });
}
