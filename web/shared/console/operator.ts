/**
 * The operator consoles' side of `/admin/v1/...`: the operator token, kept in this tab's
 * sessionStorage only (gone when the tab closes), sent as `Authorization: Bearer …` on every call
 * to the page's own server. A 401 answer means the token is wrong or was replaced.
 */
import { limits } from '../../../packages/protocol/src/limits.ts';

const storageKey = 'kessai.operator-token';

export function storedToken(): string | null {
  return sessionStorage.getItem(storageKey);
}

export function storeToken(token: string): void {
  sessionStorage.setItem(storageKey, token);
}

export function forgetToken(): void {
  sessionStorage.removeItem(storageKey);
}

/** The server refused the operator token (401 unauthenticated). */
export class TokenRefused extends Error {
  constructor() {
    super('the operator token was refused');
  }
}

/** A problem answer (RFC 9457) of the page's server. */
export class ProblemAnswer extends Error {
  readonly status: number;
  readonly code: string | undefined;
  constructor(status: number, code: string | undefined, title: string) {
    super(title);
    this.status = status;
    this.code = code;
  }
}

/** One operator call to the page's own server (a relative path); the answer's JSON, typed by the caller. */
export async function operatorCall<T>(token: string, method: 'GET' | 'POST', path: string): Promise<T> {
  const response = await fetch(path, {
    method,
    cache: 'no-store',
    headers: { authorization: `Bearer ${token}`, ...(method === 'POST' ? { 'content-type': 'application/json' } : {}) },
    ...(method === 'POST' ? { body: '{}' } : {}),
  });
  if (response.status === 401) throw new TokenRefused();
  const body = (await response.json().catch(() => undefined)) as { code?: string; title?: string } | undefined;
  if (!response.ok) throw new ProblemAnswer(response.status, body?.code, body?.title ?? `HTTP ${response.status}`);
  return body as T;
}

/** How many of a list's newest items a console shows (limits.ts; the servers give at most listPageMax). */
export const recent = limits.consoleListRows;

/** A list answer of the console API. */
export interface Page<T> {
  items: T[];
  limit: number;
  has_more: boolean;
}
