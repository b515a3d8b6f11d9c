// The UI's only way to the server: typed GETs of documented routes (see /openapi.json). A
// failure becomes an ApiFailure whose message is meant for the page.

export class ApiFailure extends Error {
  /** HTTP status; 0 when the query API could not be reached at all. */
  readonly status: number;
  /** Stable code from the API (`TRACE_NOT_FOUND`, `STORAGE_UNAVAILABLE`, …) or `UNREACHABLE`. */
  readonly code: string;

  constructor(status: number, code: string, message: string) {
    super(message);
    this.name = 'ApiFailure';
    this.status = status;
    this.code = code;
  }
}

type Query = Record<string, string | number | boolean | undefined | null>;

export function withQuery(path: string, query: Query = {}): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) if (v !== undefined && v !== null && v !== '') q.set(k, String(v));
  const s = q.toString();
  return s ? `${path}?${s}` : path;
}

interface ErrorBody {
  error?: { code?: string; message?: string };
  errors?: { msg?: string }[] | null;
}

/** GETs a JSON route. Aborting the signal rejects with the AbortError as is. */
export async function getJson<T>(path: string, query: Query = {}, signal?: AbortSignal): Promise<T> {
  let res: Response;
  try {
    res = await fetch(withQuery(path, query), { headers: { accept: 'application/json' }, ...(signal ? { signal } : {}) });
  } catch (err) {
    if ((err as Error).name === 'AbortError') throw err;
    throw new ApiFailure(0, 'UNREACHABLE', 'The query API does not answer. Is it running? The page retries on the next refresh.');
  }
  const text = await res.text();
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    throw new ApiFailure(res.status, 'BAD_RESPONSE', `The query API answered ${res.status} with something that is not JSON.`);
  }
  if (!res.ok) {
    const b = body as ErrorBody;
    const message = b.error?.message ?? b.errors?.[0]?.msg ?? `request failed with HTTP ${res.status}`;
    const code = b.error?.code ?? (res.status === 503 ? 'STORAGE_UNAVAILABLE' : res.status === 404 ? 'NOT_FOUND' : `HTTP_${res.status}`);
    throw new ApiFailure(res.status, code, message);
  }
  return body as T;
}

/** What a failure means to the person looking at the page. */
export function explain(err: unknown): { title: string; detail: string } {
  if (err instanceof ApiFailure) {
    if (err.code === 'UNREACHABLE') return { title: 'The query API is not reachable', detail: err.message };
    if (err.status === 503) return { title: 'Trace storage is unavailable', detail: `${err.message}. ClickHouse may be stopped or restarting; the page tries again on the next refresh.` };
    if (err.status === 404) return { title: 'Not found', detail: err.message };
    if (err.code === 'NOT_SUPPORTED') return { title: 'Not available on this query API', detail: err.message };
    if (err.status === 400) return { title: 'The request was not valid', detail: err.message };
    return { title: `The query API answered ${err.status}`, detail: err.message };
  }
  return { title: 'Something went wrong in the page', detail: err instanceof Error ? err.message : String(err) };
}

let documented: Promise<ReadonlySet<string>> | undefined;

/**
 * Whether this query API documents a route (its /openapi.json paths). Pages ask before calling
 * a route that a deployment may not have (the failing-path API needs trace outcomes).
 */
export async function apiHas(path: string, signal?: AbortSignal): Promise<boolean> {
  documented ??= getJson<{ paths: Record<string, unknown> }>('/openapi.json', {}, signal).then(
    (d) => new Set(Object.keys(d.paths)),
    (err: unknown) => {
      documented = undefined;
      throw err;
    },
  );
  return (await documented).has(path);
}
