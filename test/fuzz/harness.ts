/**
 * Property-based fuzzing of a running Kessai system (issue 5). An endpoint is described once; the
 * arbitraries below turn it into malformed requests (method, path, query, headers, credentials,
 * content type and body, each sometimes right and sometimes wrong), sent in concurrent batches over
 * keep-alive connections. Every answer must be below 500, a 4xx must be problem+json with a
 * catalogued code, and no answer may repeat a test card's number or holder name.
 *
 * Runs: KESSAI_FUZZ_RUNS cases in all (default 10,000), shared by the suites by weight;
 * KESSAI_FUZZ_SEED replays a run (fast-check prints the seed and the shrunk case of a failure).
 */
import fc from 'fast-check';
import { expect } from 'vitest';
import { request, type Dispatcher } from 'undici';
import { errorCatalog, isErrorCode } from '@kessai/protocol';
import { demoIssuers } from '@kessai/cli/demo-data';
import { personalDataNeedles } from '../support/retention.ts';

/** How the caller authenticates: the fuzz picks one per case, the sender turns it into headers or a TLS identity. */
export type Credential = 'right' | 'none' | 'wrong';

export interface Endpoint {
  name: string;
  method: 'GET' | 'POST' | 'OPTIONS';
  /** With `:id` where an id goes. */
  path: string;
  /** Ids the fuzz may put in place of `:id`, besides malformed ones (valid ones reach deeper code). */
  ids?: readonly string[];
  /** A body the schema accepts, to mutate. */
  body?: Record<string, unknown>;
  /** Fields that hold personal data in a valid request: the fuzz puts test card data there. */
  personalFields?: readonly string[];
  /** Never send the right credential (an event stream that would stay open). */
  noRightCredential?: true;
  /** An operator endpoint (`/admin/v1/…`, the shop's back office): the right credential is the operator token. */
  operator?: true;
  /** A CORS preflight: the right credential is an `Origin` the server allows (the browser wallet's own host), the wrong one another origin. */
  preflight?: true;
}

export interface FuzzCase {
  endpoint: Endpoint;
  method: string;
  path: string;
  query: string;
  credential: Credential;
  contentType: string | undefined;
  body: string | undefined;
  extraHeaders: Record<string, string>;
}

export interface Sent {
  status: number;
  contentType: string;
  text: string;
}

// ---- personal data the fuzz plants, and must never see again ------------------------------------------

const cards = demoIssuers.flatMap((issuer) => issuer.cards);
export const plantedValues: readonly string[] = cards.flatMap((card) => [card.cardNumber, card.cardNumber.replace(/(\d{4})(?=\d)/g, '$1 '), card.holderName]);
/** Card numbers and holder names in every form (not PINs or expiry: those are short enough to occur by chance in a generated 2xx answer). */
const answerNeedles = personalDataNeedles().filter((needle) => /number|holder name/.test(needle.label));

const planted = fc.constantFrom(...plantedValues);

// ---- arbitraries --------------------------------------------------------------------------------------

const shortText = fc.string({ maxLength: 24, unit: 'binary' });
const junkSegment = fc.oneof(
  shortText.map((s) => encodeURIComponent(s)),
  fc.constantFrom('%', '%zz', '%E0%A4%A', '..', '%2e%2e%2f', '%00', 'pr_', 'PR_0000000000000000000000000', '0'.repeat(120)),
  planted.map((s) => encodeURIComponent(s)),
  fc.stringMatching(/^[a-z]{2,5}_[0-9a-z]{20,30}$/),
);

const jsonValue = fc.jsonValue({ maxDepth: 3 });

/** A JSON body from the valid one: unchanged, a field replaced, removed or added, or something else entirely. */
function bodyArbitrary(endpoint: Endpoint): fc.Arbitrary<unknown> {
  const base = endpoint.body ?? {};
  const keys = Object.keys(base);
  const choices: Array<fc.Arbitrary<unknown>> = [
    fc.constant(base),
    fc.record({ key: fc.oneof(fc.string({ maxLength: 20 }), planted), value: fc.oneof(jsonValue, planted) }).map(({ key, value }) => ({ ...base, [key]: value })),
    jsonValue,
    fc.dictionary(fc.string({ maxLength: 12 }), jsonValue, { maxKeys: 6 }),
  ];
  if (keys.length > 0) {
    const key = fc.constantFrom(...keys);
    choices.push(fc.record({ key, value: jsonValue }).map(({ key: k, value }) => ({ ...base, [k]: value })));
    choices.push(key.map((k) => Object.fromEntries(Object.entries(base).filter(([name]) => name !== k))));
  }
  if (endpoint.personalFields?.length) {
    choices.push(fc.record({ key: fc.constantFrom(...endpoint.personalFields), value: planted }).map(({ key, value }) => ({ ...base, [key]: value })));
  }
  return fc.oneof(...choices);
}

/** Raw body text: JSON of a generated value, or text a JSON parser must refuse without quoting it. */
function bodyTextArbitrary(endpoint: Endpoint): fc.Arbitrary<string | undefined> {
  const valid = JSON.stringify(endpoint.body ?? {});
  return fc.oneof(
    { weight: 6, arbitrary: bodyArbitrary(endpoint).map((value) => JSON.stringify(value)) },
    { weight: 1, arbitrary: fc.constant(undefined) },
    { weight: 1, arbitrary: fc.string({ maxLength: 64, unit: 'binary' }) },
    { weight: 1, arbitrary: fc.nat({ max: Math.max(valid.length - 1, 0) }).map((cut) => valid.slice(0, cut)) },
    { weight: 1, arbitrary: planted.map((value) => valid.replace(/^\{/, `{"card_number":"${value}","card_number":"${value}",`).replace(',}', '}')) },
    { weight: 1, arbitrary: fc.integer({ min: 1, max: 3000 }).map((depth) => `${'['.repeat(depth)}${']'.repeat(depth)}`) },
    { weight: 1, arbitrary: planted.map((value) => `{"note": "${value}"`) },
  );
}

const contentTypes = fc.oneof(
  { weight: 8, arbitrary: fc.constant('application/json') },
  { weight: 1, arbitrary: fc.constantFrom('application/json; charset=utf-8', 'text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', 'application/problem+json', 'json', '') },
  { weight: 1, arbitrary: fc.constant(undefined) },
);

export function caseArbitrary(endpoints: readonly Endpoint[]): fc.Arbitrary<FuzzCase> {
  return fc.constantFrom(...endpoints).chain((endpoint) =>
    fc.record({
      endpoint: fc.constant(endpoint),
      method: fc.oneof({ weight: 9, arbitrary: fc.constant(endpoint.method) }, { weight: 1, arbitrary: fc.constantFrom('GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS') }),
      path: fc.oneof(
        { weight: 8, arbitrary: fc.constantFrom(...(endpoint.ids?.length ? endpoint.ids : ['x'])).map((id) => endpoint.path.replace(':id', id)) },
        { weight: 2, arbitrary: junkSegment.map((segment) => endpoint.path.replace(':id', segment)) },
        { weight: 1, arbitrary: junkSegment.map((segment) => `${endpoint.path.replace(':id', 'x')}/${segment}`) },
      ),
      query: fc.oneof({ weight: 8, arbitrary: fc.constant('') }, { weight: 1, arbitrary: planted.map((value) => `?card_number=${encodeURIComponent(value)}`) }, { weight: 1, arbitrary: shortText.map((s) => `?${encodeURIComponent(s)}=1`) }),
      credential: endpoint.noRightCredential ? fc.constantFrom<Credential>('none', 'wrong') : fc.oneof({ weight: 6, arbitrary: fc.constant<Credential>('right') }, { weight: 1, arbitrary: fc.constantFrom<Credential>('none', 'wrong') }),
      contentType: endpoint.method === 'POST' ? contentTypes : fc.oneof({ weight: 9, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: contentTypes }),
      body: endpoint.method === 'POST' ? bodyTextArbitrary(endpoint) : fc.oneof({ weight: 9, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: bodyTextArbitrary(endpoint) }),
      extraHeaders: fc.oneof(
        { weight: 8, arbitrary: fc.constant<Record<string, string>>({}) },
        { weight: 1, arbitrary: planted.map((value): Record<string, string> => ({ 'x-card-number': value })) },
        { weight: 1, arbitrary: fc.constantFrom<Record<string, string>>({ 'content-length': '0' }, { 'transfer-encoding': 'chunked' }, { accept: 'text/html' }, { 'x-http-method-override': 'DELETE' }) },
      ),
    }),
  );
}

// ---- sending and checking -------------------------------------------------------------------------------

export interface Target {
  baseUrl: string;
  /** Headers and dispatcher for one case, given its final method and path. */
  identity(fuzzCase: FuzzCase, method: string, path: string): Promise<{ headers: Record<string, string>; dispatcher: Dispatcher }>;
}

export async function send(target: Target, fuzzCase: FuzzCase): Promise<Sent> {
  const { headers, dispatcher } = await target.identity(fuzzCase, fuzzCase.method, fuzzCase.path);
  const sendsBody = fuzzCase.body !== undefined && fuzzCase.method !== 'GET';
  const extra = { ...fuzzCase.extraHeaders };
  // undici frames the body itself: a forged length or encoding would only break this client.
  delete extra['content-length'];
  delete extra['transfer-encoding'];
  const response = await request(`${target.baseUrl}${fuzzCase.path}${fuzzCase.query}`, {
    method: fuzzCase.method as Dispatcher.HttpMethod,
    dispatcher,
    headers: { ...(fuzzCase.contentType !== undefined && sendsBody ? { 'content-type': fuzzCase.contentType } : {}), ...extra, ...headers },
    ...(sendsBody ? { body: fuzzCase.body } : {}),
    headersTimeout: 25_000,
    bodyTimeout: 25_000,
  });
  const text = await response.body.text();
  return { status: response.statusCode, contentType: String(response.headers['content-type'] ?? ''), text };
}

/** Every route a server registers, as `METHOD /path/:param`, read from Fastify's route tree (HEAD goes with GET). */
export function registeredRoutes(app: { printRoutes(options: { commonPrefix: false }): string }): string[] {
  const found: string[] = [];
  const prefixes: string[] = [];
  for (const line of app.printRoutes({ commonPrefix: false }).split('\n')) {
    const match = /^(.*?)[├└]── (\S+)(?: \(([A-Z, ]+)\))?$/.exec(line);
    if (!match) continue;
    const depth = match[1]!.length / 4;
    const path = `${prefixes[depth - 1] ?? ''}${match[2]!}`.replace(/^\/\//, '/');
    prefixes[depth] = path;
    prefixes.length = depth + 1;
    for (const method of (match[3] ?? '').split(', ').filter((m) => m && m !== 'HEAD')) found.push(`${method} ${path}`);
  }
  if (found.length === 0) throw new Error('no route read from printRoutes: has its format changed?');
  return found;
}

/** Whether a concrete path (its ids filled in, or `:id` left as is) falls under a registered `METHOD /pattern`. */
export function routeCovers(method: string, path: string, registered: string): boolean {
  const [registeredMethod, pattern] = registered.split(' ') as [string, string];
  const regex = new RegExp(`^${pattern.replace(/[.*+?^${}()|[\]\\]/g, '\\$&').replace(/:[a-z_]+/g, '[^/]+')}$`);
  return method === registeredMethod && regex.test(path);
}

/** The registered routes no endpoint of the list reaches: what a new route left out of the fuzz looks like. */
export function unfuzzedRoutes(app: Parameters<typeof registeredRoutes>[0], endpoints: readonly Endpoint[]): string[] {
  return registeredRoutes(app).filter((registered) => !endpoints.some((endpoint) => (endpoint.ids?.length ? endpoint.ids : ['x']).some((id) => routeCovers(endpoint.method, endpoint.path.replace(':id', id), registered))));
}

/** The operator token for the right credential, a wrong bearer token for the wrong one, none otherwise. */
export function operatorHeaders(fuzzCase: FuzzCase, operatorToken: string): Record<string, string> {
  if (!fuzzCase.endpoint.operator) return {};
  if (fuzzCase.credential === 'right') return { authorization: `Bearer ${operatorToken}` };
  if (fuzzCase.credential === 'wrong') return { authorization: `Bearer ${operatorToken.slice(0, -1)}x` };
  return {};
}

/** The contract every answer keeps, whatever was sent. */
export function checkAnswer(fuzzCase: FuzzCase, answer: Sent): void {
  const where = `${fuzzCase.method} ${fuzzCase.path}${fuzzCase.query} → ${answer.status} ${answer.text.slice(0, 300)}`;
  expect(answer.status, where).toBeLessThan(500);
  if (answer.status >= 400) {
    expect(answer.contentType, where).toMatch(/^application\/problem\+json/);
    const problem = JSON.parse(answer.text) as { code?: unknown; status?: unknown };
    expect(isErrorCode(problem.code), where).toBe(true);
    expect(errorCatalog[problem.code as keyof typeof errorCatalog].status, where).toBe(answer.status);
  }
  for (const needle of answerNeedles) expect(needle.pattern.test(answer.text), `${needle.label} in ${where}`).toBe(false);
}

/** How the run's cases are shared between the servers (test/fuzz/auth-and-shop.test.ts, settlement.test.ts). */
/** A well-formed compact JWS that verifies under no key: for fields that must look like JOSE. */
export const joseSample = 'eyJhbGciOiJFUzI1NiJ9.eyJ4IjoxfQ.c2lnbmF0dXJl';

/** About as many endpoints per share: 33 on the authentication server, 33 on each of two settlement servers, 14 on the shop. */
export const fuzzWeights = { auth: 4, settlement: 4, shop: 2 } as const;

/** This share of KESSAI_FUZZ_RUNS (default 10,000 cases in all). */
export function casesFor(weight: number): number {
  const total = Number(process.env.KESSAI_FUZZ_RUNS ?? 10_000);
  if (!Number.isSafeInteger(total) || total < 1) throw new TypeError('KESSAI_FUZZ_RUNS must be a positive integer');
  const totalWeight = fuzzWeights.auth + fuzzWeights.settlement + fuzzWeights.shop;
  return Math.ceil((total * weight) / totalWeight);
}

export const batchSize = 16;
/** One batch may take this long; the client gives each request a little less. */
const batchTimeoutMs = 30_000;

/**
 * Runs at least `cases` fuzz cases against `target`, batchSize at a time sent at once over the
 * target's keep-alive connections; returns how many were sent.
 */
export async function fuzz(target: Target, endpoints: readonly Endpoint[], cases: number): Promise<number> {
  let sent = 0;
  await fc.assert(
    fc.asyncProperty(fc.array(caseArbitrary(endpoints), { minLength: batchSize, maxLength: batchSize }), async (batch) => {
      const answers = await Promise.all(batch.map((fuzzCase) => send(target, fuzzCase)));
      sent += batch.length;
      batch.forEach((fuzzCase, index) => checkAnswer(fuzzCase, answers[index]!));
    }),
    {
      numRuns: Math.ceil(cases / batchSize),
      // A batch that hangs is a failure with its seed and cases, not a silent test timeout; a live
      // system's state moves on between runs, so the failing batch is reported as found, unshrunk.
      timeout: batchTimeoutMs,
      endOnFailure: true,
      ...(process.env.KESSAI_FUZZ_SEED ? { seed: Number(process.env.KESSAI_FUZZ_SEED) } : {}),
    },
  );
  return sent;
}
