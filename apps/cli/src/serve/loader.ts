/**
 * The one configuration loader of `kessai serve <role>`: `KESSAI_*` environment variables over an
 * optional JSON file (KESSAI_CONFIG_FILE, keys in camelCase), validated by the role's zod schema.
 * A key `fooBarFile` is read from `KESSAI_FOO_BAR_FILE`. Every problem names the variable or the
 * file key it came from and never the value: a value may be a secret, so only zod's message (which
 * states what was expected, not what was given) is printed.
 */
import { readFile } from 'node:fs/promises';
import { z } from 'zod';
import { limits } from '@kessai/protocol';

/** How a variable's text becomes the value the schema checks. Keys not listed are plain strings. */
export type EnvKind = 'int' | 'bool' | 'csv' | 'json';

/** A problem in the configuration: each line names a variable or a file key. The CLI prints it and exits 2. */
export class ConfigError extends Error {
  readonly problems: readonly string[];
  constructor(problems: readonly string[]) {
    super(`invalid configuration:\n  ${problems.join('\n  ')}`);
    this.name = 'ConfigError';
    this.problems = problems;
  }
}

/** `tlsCertFile` → `KESSAI_TLS_CERT_FILE`. */
export function envName(key: string): string {
  return `KESSAI_${key.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toUpperCase()}`;
}

/** A file a role reads a key from, sub-file included: its variable names it in every problem. */
export interface SubFile {
  /** The key that holds the file's path (e.g. `bankFile`). */
  key: string;
  /** Each key of the file becomes `${prefix}${Key}` (e.g. `name` → `bankName`), unless already given. */
  prefix: string;
}

export interface RoleSchema<T> {
  role: string;
  schema: z.ZodType<T>;
  /** Every key of the schema, so that the variables to read are known. */
  keys: readonly string[];
  kinds: Readonly<Record<string, EnvKind>>;
  subFiles?: readonly SubFile[];
}

function parseEnv(name: string, text: string, kind: EnvKind | undefined, problems: string[]): unknown {
  switch (kind) {
    case 'int':
      return /^-?\d+$/.test(text.trim()) ? Number(text.trim()) : text;
    case 'bool':
      if (/^(true|1|yes)$/i.test(text.trim())) return true;
      if (/^(false|0|no)$/i.test(text.trim())) return false;
      return text;
    case 'csv':
      return text.split(',').map((s) => s.trim()).filter((s) => s.length > 0);
    case 'json':
      try {
        return JSON.parse(text) as unknown;
      } catch {
        problems.push(`${name}: not valid JSON`);
        return undefined;
      }
    default:
      return text;
  }
}

/** Reads a JSON object from `file`; a problem names `variable`, never the content. */
export async function readJsonFile(file: string, variable: string, problems: string[]): Promise<Record<string, unknown> | undefined> {
  const text = await readConfigText(file, variable, problems);
  if (text === undefined) return undefined;
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    problems.push(`${variable}: ${file} is not valid JSON`);
    return undefined;
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    problems.push(`${variable}: ${file} must hold a JSON object`);
    return undefined;
  }
  return json as Record<string, unknown>;
}

/** Reads a (small) configuration file's text; a problem names `variable` and the path, never the content. */
export async function readConfigText(file: string, variable: string, problems: string[]): Promise<string | undefined> {
  try {
    const text = await readFile(file, 'utf8');
    if (Buffer.byteLength(text) > limits.configFileBytesMax) {
      problems.push(`${variable}: ${file} is larger than ${limits.configFileBytesMax} bytes`);
      return undefined;
    }
    return text;
  } catch (err) {
    problems.push(`${variable}: cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
    return undefined;
  }
}

/**
 * Loads a role's configuration: the file (if KESSAI_CONFIG_FILE names one), each sub-file, then the
 * variables over them, validated by the role's schema. Throws a ConfigError listing every problem.
 */
export async function loadRoleConfig<T>(spec: RoleSchema<T>, env: Readonly<Record<string, string | undefined>>): Promise<T> {
  const problems: string[] = [];
  const raw: Record<string, unknown> = {};
  const source = new Map<string, string>();
  const configFile = env.KESSAI_CONFIG_FILE;
  if (configFile) {
    const json = await readJsonFile(configFile, 'KESSAI_CONFIG_FILE', problems);
    for (const [key, value] of Object.entries(json ?? {})) {
      raw[key] = value;
      source.set(key, `KESSAI_CONFIG_FILE key ${key}`);
    }
  }
  for (const key of spec.keys) {
    const name = envName(key);
    const text = env[name];
    if (text === undefined || text === '') continue;
    const value = parseEnv(name, text, spec.kinds[key], problems);
    if (value === undefined) continue;
    raw[key] = value;
    source.set(key, name);
  }
  for (const sub of spec.subFiles ?? []) {
    const file = raw[sub.key];
    if (typeof file !== 'string') continue;
    const variable = source.get(sub.key) ?? envName(sub.key);
    const json = await readJsonFile(file, variable, problems);
    for (const [key, value] of Object.entries(json ?? {})) {
      const target = `${sub.prefix}${key.charAt(0).toUpperCase()}${key.slice(1)}`;
      if (target in raw) continue; // a variable or the main file's key wins over the sub-file
      if (!spec.keys.includes(target)) {
        problems.push(`${variable} key ${key}: not a known key`);
        continue;
      }
      raw[target] = value;
      source.set(target, `${variable} key ${key}`);
    }
  }
  if (problems.length > 0) throw new ConfigError(problems);
  const parsed = spec.schema.safeParse(raw);
  if (parsed.success) return parsed.data;
  throw new ConfigError(parsed.error.issues.map((issue) => describeIssue(issue, source)));
}

function describeIssue(issue: z.core.$ZodIssue, source: ReadonlyMap<string, string>): string {
  if (issue.code === 'unrecognized_keys') return issue.keys.map((key) => `${source.get(key) ?? key}: not a known key`).join('; ');
  const [first, ...rest] = issue.path;
  const key = String(first ?? '');
  const where = source.get(key) ?? envName(key);
  const inner = rest.length > 0 ? ` at ${rest.map(String).join('.')}` : '';
  const missing = issue.code === 'invalid_type' && / received undefined$/.test(issue.message);
  return `${where}${inner}: ${missing ? 'required' : issue.message}`;
}
