/**
 * What the attack suites share: raw HTTPS calls that keep exactly the bytes an attacker sends,
 * compact-JOSE surgery (replace one part, decode a header or payload), and the refusal check every
 * answer must pass (4xx problem+json, a catalogued code, no card number echoed).
 */
import { expect } from 'vitest';
import { request, type Dispatcher } from 'undici';
import { errorCatalog, isErrorCode, type ErrorCode } from '@kessai/protocol';
import { demoIssuers } from '@kessai/cli/demo-data';

export interface Answer {
  status: number;
  contentType: string;
  text: string;
  body: Record<string, unknown>;
}

/** Sends `text` as the body, byte for byte (no re-serialisation: duplicate keys survive). */
export async function sendRaw(dispatcher: Dispatcher, url: string, options: { method?: string; text?: string; contentType?: string; headers?: Record<string, string> } = {}): Promise<Answer> {
  const { method = options.text === undefined ? 'GET' : 'POST', text, contentType = 'application/json', headers = {} } = options;
  const response = await request(url, {
    method: method as Dispatcher.HttpMethod,
    dispatcher,
    headers: { ...(text === undefined ? {} : { 'content-type': contentType }), ...headers },
    ...(text === undefined ? {} : { body: text }),
  });
  const answer = await response.body.text();
  let body: Record<string, unknown> = {};
  try {
    body = JSON.parse(answer) as Record<string, unknown>;
  } catch {
    // Left empty: the expectations below say what was wrong.
  }
  return { status: response.statusCode, contentType: String(response.headers['content-type'] ?? ''), text: answer, body };
}

const cardNumbers = demoIssuers.flatMap((issuer) => issuer.cards.map((card) => card.cardNumber));

export function expectProblem(answer: Answer, code: ErrorCode): void {
  expect(answer.status, answer.text).toBe(errorCatalog[code].status);
  expect(answer.contentType).toMatch(/^application\/problem\+json/);
  expect(isErrorCode(answer.body.code)).toBe(true);
  expect(answer.body, answer.text).toMatchObject({ code, type: `urn:kessai:error:${code}` });
  for (const number of cardNumbers) expect(answer.text).not.toContain(number);
}

export const b64 = (value: unknown): string => Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString('base64url');

export function decodePart(token: string, index: number): Record<string, unknown> {
  return JSON.parse(Buffer.from(token.split('.')[index]!, 'base64url').toString('utf8')) as Record<string, unknown>;
}

/** Changes the first character of one part of a compact JWE/JWS: every bit of it is significant. */
export function tamperPart(token: string, index: number): string {
  const parts = token.split('.');
  const part = parts[index]!;
  parts[index] = (part[0] === 'A' ? 'B' : 'A') + part.slice(1);
  return parts.join('.');
}
