/** JSON calls to the page's own server; a problem+json answer becomes an ApiError with its stable code. */
export class ApiError extends Error {
  readonly code: string;
  readonly status: number;
  constructor(status: number, code: string, detail: string) {
    super(detail);
    this.status = status;
    this.code = code;
  }
}

export async function api<T>(method: 'GET' | 'POST', url: string, options: { body?: unknown; headers?: Record<string, string> } = {}): Promise<T> {
  let response: Response;
  try {
    response = await fetch(url, {
      method,
      headers: { accept: 'application/json', ...(options.body === undefined ? {} : { 'content-type': 'application/json' }), ...options.headers },
      ...(options.body === undefined ? {} : { body: JSON.stringify(options.body) }),
      cache: 'no-store',
    });
  } catch {
    throw new ApiError(0, 'network_error', 'the server cannot be reached');
  }
  const text = await response.text();
  let value: unknown = undefined;
  try {
    value = text ? JSON.parse(text) : undefined;
  } catch {
    // not JSON: handled below
  }
  if (!response.ok) {
    const problem = (value ?? {}) as { code?: string; detail?: string; title?: string };
    throw new ApiError(response.status, problem.code ?? `http_${response.status}`, problem.detail ?? problem.title ?? response.statusText);
  }
  return value as T;
}

/** A message for the user from any error. */
export function describeError(err: unknown): string {
  if (err instanceof ApiError) return `${err.message} (${err.code})`;
  if (err instanceof Error) return err.message;
  return String(err);
}
