#!/usr/bin/env node
/**
 * Stages the publishable packages, @kessai/protocol and @kessai/sdk, from their built dist/
 * (`npm run build -w @kessai/sdk`): each goes to <out>/<name>/ with a package.json whose `exports`
 * point at dist with `types`, whose dependencies are declared at exact versions, and without
 * `private`. The workspace manifests keep exporting src/*.ts, so the monorepo (tsx, vitest, vite)
 * runs the sources without a build. Then `npm pack <out>/<name>` makes the tarballs.
 * Usage: node scripts/stage-packages.mjs <out dir>
 */
import { cpSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import process from 'node:process';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const rootManifest = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8'));
const version = (name) => rootManifest.dependencies?.[name] ?? rootManifest.devDependencies?.[name];

const packages = [
  { dir: 'packages/protocol', name: '@kessai/protocol', deps: ['jose', 'zod'], description: 'Kessai wire schemas, error catalogue, limits and JOSE helpers' },
  { dir: 'packages/sdk', name: '@kessai/sdk', deps: ['jose', 'undici', 'zod'], description: 'Kessai merchant and wallet SDK' },
];

export function stage(out) {
  const staged = [];
  for (const pkg of packages) {
    const source = JSON.parse(readFileSync(path.join(root, pkg.dir, 'package.json'), 'utf8'));
    const target = path.join(out, pkg.name.replace('@kessai/', 'kessai-'));
    mkdirSync(target, { recursive: true });
    cpSync(path.join(root, pkg.dir, 'dist'), path.join(target, 'dist'), { recursive: true });
    const dependencies = Object.fromEntries(pkg.deps.map((dep) => [dep, version(dep)]));
    if (pkg.name === '@kessai/sdk') dependencies['@kessai/protocol'] = source.version;
    const manifest = {
      name: pkg.name,
      version: source.version,
      description: pkg.description,
      license: rootManifest.license ?? 'UNLICENSED',
      type: 'module',
      engines: rootManifest.engines,
      exports: { '.': { types: './dist/index.d.ts', default: './dist/index.js' } },
      types: './dist/index.d.ts',
      files: ['dist'],
      dependencies,
    };
    writeFileSync(path.join(target, 'package.json'), `${JSON.stringify(manifest, null, 2)}\n`);
    staged.push(target);
  }
  return staged;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const out = process.argv[2];
  if (!out) throw new Error('usage: node scripts/stage-packages.mjs <out dir>');
  for (const dir of stage(path.resolve(out))) process.stdout.write(`${dir}\n`);
}
