/**
 * Cursor pagination of the merchant API's lists (docs/protocol.md): `GET <path>?limit=&starting_after=`
 * answers `{ items, limit, has_more }`, newest first; the next page starts after the last item's id.
 * `for await (const item of client.listPaymentRequests())` walks every page, fetching each one only
 * when the previous is used up; `.page()` fetches a single page.
 */
import { z } from 'zod';

export interface ListPage<T> {
  items: T[];
  limit: number;
  has_more: boolean;
}

export interface ListParams {
  /** Items per page (the server's maximum when absent). */
  limit?: number;
  /** Start after this id (the last item of a page already seen). */
  startingAfter?: string;
}

export type PageFetcher = <T>(pathAndQuery: string, schema: z.ZodType<ListPage<T>>) => Promise<ListPage<T>>;

/** A tolerant page schema: the page and each item may carry fields this SDK does not know. */
export function pageOf<T>(item: z.ZodType<T>): z.ZodType<ListPage<T>> {
  return z.looseObject({
    items: z.array(item),
    limit: z.number().int(),
    has_more: z.boolean(),
  }) as unknown as z.ZodType<ListPage<T>>;
}

export class ListIterable<T extends { id: string }> implements AsyncIterable<T> {
  readonly #fetch: PageFetcher;
  readonly #path: string;
  readonly #filters: Record<string, string | undefined>;
  readonly #params: ListParams;
  readonly #schema: z.ZodType<ListPage<T>>;

  constructor(
    fetch: PageFetcher,
    path: string,
    item: z.ZodType<T>,
    params: ListParams & { filters?: Record<string, string | undefined> },
  ) {
    this.#fetch = fetch;
    this.#path = path;
    this.#filters = params.filters ?? {};
    this.#params = params;
    this.#schema = pageOf(item);
  }

  /** One page: the first, or the one after `startingAfter`. */
  page(startingAfter: string | undefined = this.#params.startingAfter): Promise<ListPage<T>> {
    const query = new URLSearchParams();
    if (this.#params.limit !== undefined) query.set('limit', String(this.#params.limit));
    if (startingAfter !== undefined) query.set('starting_after', startingAfter);
    for (const [key, value] of Object.entries(this.#filters)) if (value !== undefined) query.set(key, value);
    const search = query.toString();
    return this.#fetch(`${this.#path}${search ? `?${search}` : ''}`, this.#schema);
  }

  async *[Symbol.asyncIterator](): AsyncIterator<T> {
    let cursor = this.#params.startingAfter;
    for (;;) {
      const page = await this.page(cursor);
      yield* page.items;
      const last = page.items.at(-1);
      if (!page.has_more || !last) return;
      cursor = last.id;
    }
  }
}
