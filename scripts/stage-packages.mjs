#!/usr/bin/env node
/**
 * Stages the publishable packages, @kessai/protocol and @kessai/sdk, from their built dist/
 * (`npm run build -w @kessai/sdk`): each goes to <out>/<name>/ with a package.json whose `exports`
 * point at dist with `types`, and without `private`. Its description and dependencies are the
 * workspace manifest's own (packages/<name>/package.json, at the root manifest's exact versions — a
 * version that differs from the root's is refused; a @kessai/ dependency takes that package's
 * version). The workspace manifests keep exporting src/*.ts, so the monorepo (tsx, vitest, vite)
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

const packageDirs = ['packages/protocol', 'packages/sdk'];
const manifestOf = (dir) => JSON.parse(readFileSync(path.join(root, dir, 'package.json'), 'utf8'));

/** The workspace manifest's dependencies, each at the root's exact version (a @kessai/ one at its package's). */
function dependenciesOf(source) {
  const dependencies = {};
  for (const [dep, declared] of Object.entries(source.dependencies ?? {})) {
    const expected = dep.startsWith('@kessai/') ? manifestOf(`packages/${dep.slice('@kessai/'.length)}`).version : version(dep);
    if (declared !== expected) throw new Error(`${source.name} declares ${dep}@${declared}; the root package.json has ${expected}`);
    dependencies[dep] = declared;
  }
  return dependencies;
}

export function stage(out) {
  const staged = [];
  for (const dir of packageDirs) {
    const source = manifestOf(dir);
    const target = path.join(out, source.name.replace('@kessai/', 'kessai-'));
    mkdirSync(target, { recursive: true });
    cpSync(path.join(root, dir, 'dist'), path.join(target, 'dist'), { recursive: true });
    const manifest = {
      name: source.name,
      version: source.version,
      description: source.description,
      license: rootManifest.license ?? 'UNLICENSED',
      type: 'module',
      engines: rootManifest.engines,
      exports: { '.': { types: './dist/index.d.ts', default: './dist/index.js' } },
      types: './dist/index.d.ts',
      files: ['dist'],
      dependencies: dependenciesOf(source),
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
