/**
 * The operator's side of `/admin/v1/...`: CLI commands (`kessai settle`, `kessai keys`,
 * `kessai audit`, `kessai credentials`) call the running servers over HTTPS with the development CA
 * and the called role's own operator token, both read from the data folder `kessai start` uses.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { z } from 'zod';
import { HttpClient } from '@kessai/sdk';
import { operatorTokenPath } from '@kessai/service';
import { defaultPorts } from './system.ts';

export interface OperatorTarget {
  /** The data folder of the running system (keys, CA, operator tokens). */
  dataDir: string;
  /** The role called (its folder: auth, shop, settlement-<issuer>), whose own operator token is sent. */
  role: OperatorRole;
  /** Base URL of the server to call, e.g. https://127.0.0.1:8444. */
  url: string;
}

/** The default URL of each role under `kessai start`. */
export type OperatorRole = 'auth' | 'shop' | `settlement-${string}`;

export function defaultRoleUrl(role: OperatorRole): string {
  const port = role === 'auth' ? defaultPorts.auth : role === 'shop' ? defaultPorts.shop : defaultPorts.issuers[role.slice('settlement-'.length)];
  if (port === undefined) throw new Error(`unknown role ${role}`);
  return `https://127.0.0.1:${port}`;
}

export async function operatorClient(dataDir: string, role: OperatorRole): Promise<{ http: HttpClient; headers: Record<string, string> }> {
  const dir = path.resolve(dataDir);
  const [caCertPem, token] = await Promise.all([readFile(path.join(dir, 'pki', 'ca.cert.pem'), 'utf8'), readFile(operatorTokenPath(dir, role), 'utf8')]);
  return { http: new HttpClient({ caCertPem }), headers: { authorization: `Bearer ${token.trim()}` } };
}

/** One operator call: JSON in, JSON out, checked against `schema`; a problem answer is raised as its KessaiError. */
export async function operatorCall<T>(target: OperatorTarget, method: 'GET' | 'POST', pathname: string, schema: z.ZodType<T>, body?: unknown): Promise<T> {
  const { http, headers } = await operatorClient(target.dataDir, target.role);
  try {
    return await http.call(method, new URL(pathname, target.url).href, { schema, headers, unavailable: 'internal_error', ...(body === undefined ? {} : { body }) });
  } finally {
    await http.close();
  }
}
