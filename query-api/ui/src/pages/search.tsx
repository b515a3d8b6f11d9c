// Trace search over the Jaeger search API: service, operation, tags, min/max duration, window,
// errors only. The form lives in the URL, so a search is a link. Results: a duration scatter
// plot (time × duration, failed traces in red) and a list.

import type { JSX } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { getJson } from '../api.ts';
import { Empty, ErrorMessage, Loading, useData, WindowPicker } from '../components.tsx';
import { clock, ms } from '../format.ts';
import { Link, links, navigate, type Route } from '../router.tsx';
import type { JaegerEnvelope, JaegerTrace } from '../types.ts';

interface Found {
  id: string;
  service: string;
  operation: string;
  startUs: number;
  durationUs: number;
  spans: number;
  error: boolean;
  services: string[];
}

/** `key=value key2="a b"` → {key: value, key2: "a b"}; a malformed pair is an error string. */
export function parseTags(text: string): Record<string, string> | string {
  const out: Record<string, string> = {};
  const re = /\s*([^\s=]+)=("([^"]*)"|(\S*))/y;
  let rest = text.trim();
  while (rest.length > 0) {
    re.lastIndex = 0;
    const m = re.exec(rest);
    if (!m) return `tags must look like key=value (quote values with spaces: key="a b"), near ${JSON.stringify(rest.slice(0, 30))}`;
    out[m[1]!] = m[3] ?? m[4] ?? '';
    rest = rest.slice(re.lastIndex).trim();
  }
  return out;
}

function summarize(t: JaegerTrace): Found {
  let root = t.spans[0]!;
  let end = 0;
  let error = false;
  for (const s of t.spans) {
    if (s.startTime < root.startTime || (s.references.length === 0 && root.references.length > 0)) root = s;
    end = Math.max(end, s.startTime + s.duration);
    if (!error && s.tags.some((g) => (g.key === 'error' && (g.value === true || g.value === 'true')) || (g.key === 'otel.status_code' && g.value === 'ERROR'))) error = true;
  }
  const services = [...new Set(Object.values(t.processes).map((p) => p.serviceName))].sort();
  return { id: t.traceID, service: t.processes[root.processID]?.serviceName ?? '?', operation: root.operationName, startUs: root.startTime, durationUs: end - root.startTime, spans: t.spans.length, error, services };
}

function Scatter({ found }: { found: readonly Found[] }): JSX.Element {
  const w = 720;
  const h = 180;
  const pad = 36;
  const t0 = Math.min(...found.map((f) => f.startUs));
  const t1 = Math.max(...found.map((f) => f.startUs), t0 + 1);
  const dMax = Math.max(...found.map((f) => f.durationUs), 1);
  const x = (us: number): number => pad + ((us - t0) / (t1 - t0)) * (w - 2 * pad);
  const y = (us: number): number => h - pad / 2 - (us / dMax) * (h - pad);
  return (
    <svg class="scatter" viewBox={`0 0 ${w} ${h}`} role="img" aria-label={`Durations of the ${found.length} traces found, from ${ms(0)} to ${ms(dMax / 1000)}`}>
      <line x1={pad} y1={h - pad / 2} x2={w - pad} y2={h - pad / 2} class="axis" />
      <line x1={pad} y1={pad / 2} x2={pad} y2={h - pad / 2} class="axis" />
      <text x={pad - 4} y={pad / 2 + 4} class="tick" text-anchor="end">
        {ms(dMax / 1000)}
      </text>
      <text x={pad} y={h - 2} class="tick">
        {clock(new Date(t0 / 1000).toISOString())}
      </text>
      <text x={w - pad} y={h - 2} class="tick" text-anchor="end">
        {clock(new Date(t1 / 1000).toISOString())}
      </text>
      {found.map((f) => (
        <a key={f.id} href={links.trace(f.id)} onClick={(e) => (e.preventDefault(), navigate(links.trace(f.id)))} aria-label={`trace ${f.id}, ${ms(f.durationUs / 1000)}`}>
          <circle cx={x(f.startUs)} cy={y(f.durationUs)} r={Math.min(9, 3 + Math.sqrt(f.spans))} class={f.error ? 'dot dot-error' : 'dot'}>
            <title>
              {f.service} {f.operation}: {ms(f.durationUs / 1000)}
            </title>
          </circle>
        </a>
      ))}
    </svg>
  );
}

function Results({ query }: { query: URLSearchParams }): JSX.Element {
  const tags = parseTags(query.get('tags') ?? '');
  const errorsOnly = query.get('errors') === '1';
  const params = {
    service: query.get('service') ?? undefined,
    operation: query.get('operation') ?? undefined,
    minDuration: query.get('minDuration') ?? undefined,
    maxDuration: query.get('maxDuration') ?? undefined,
    lookback: query.get('window') ?? '1h',
    limit: query.get('limit') ?? '40',
    tags: typeof tags === 'string' ? undefined : JSON.stringify(errorsOnly ? { ...tags, error: 'true' } : tags),
  };
  const load = useData(`search:${query.toString()}`, (signal) =>
    typeof tags === 'string' ? Promise.reject(new Error(tags)) : getJson<JaegerEnvelope<JaegerTrace[]>>('/api/traces', params, signal),
  );
  if (load.state === 'loading') return <Loading what="traces" />;
  if (load.state === 'error') return <ErrorMessage error={load.error} />;
  const found = load.data.data.map(summarize);
  if (found.length === 0) return <Empty title="No trace matches">Widen the window, loosen the durations or remove a tag.</Empty>;
  return (
    <>
      <Scatter found={found} />
      <table class="data" aria-label="Traces found, newest first">
        <thead>
          <tr>
            <th scope="col">Trace</th>
            <th scope="col">Root</th>
            <th scope="col">Duration</th>
            <th scope="col">Spans</th>
            <th scope="col">Services</th>
            <th scope="col">Started</th>
          </tr>
        </thead>
        <tbody>
          {found.map((f) => (
            <tr key={f.id} class={f.error ? 'row-failing' : ''} data-trace={f.id}>
              <td>
                <Link href={links.trace(f.id)}>
                  <code>{f.id.slice(0, 16)}</code>
                </Link>{' '}
                {f.error ? <span class="badge health-failing">error</span> : null}
              </td>
              <td>
                {f.service} {f.operation}
              </td>
              <td class="num">{ms(f.durationUs / 1000)}</td>
              <td class="num">{f.spans}</td>
              <td>{f.services.join(', ')}</td>
              <td>{clock(new Date(f.startUs / 1000).toISOString())}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </>
  );
}

export function SearchPage({ route }: { route: Route }): JSX.Element {
  const q = route.query;
  const [form, setForm] = useState(() => ({
    service: q.get('service') ?? '',
    operation: q.get('operation') ?? '',
    tags: q.get('tags') ?? '',
    minDuration: q.get('minDuration') ?? '',
    maxDuration: q.get('maxDuration') ?? '',
    window: q.get('window') ?? '1h',
    errors: q.get('errors') === '1',
  }));
  useEffect(() => {
    document.title = 'search · tracemesh';
  }, []);
  const services = useData('services', (signal) => getJson<JaegerEnvelope<string[]>>('/api/services', {}, signal));
  const operations = useData(`ops:${form.service}`, (signal) =>
    form.service ? getJson<JaegerEnvelope<string[]>>(`/api/services/${encodeURIComponent(form.service)}/operations`, {}, signal) : Promise.resolve({ data: [], total: 0, errors: null }),
  );
  const submitted = ['service', 'operation', 'tags', 'minDuration', 'maxDuration', 'errors'].some((k) => q.has(k)) || q.has('go');
  const set = (k: keyof typeof form) => (e: Event) => {
    const el = e.currentTarget as HTMLInputElement;
    setForm({ ...form, [k]: el.type === 'checkbox' ? el.checked : el.value });
  };
  const submit = (e: Event): void => {
    e.preventDefault();
    navigate(
      links.search({
        service: form.service || undefined,
        operation: form.operation || undefined,
        tags: form.tags.trim() || undefined,
        minDuration: form.minDuration.trim() || undefined,
        maxDuration: form.maxDuration.trim() || undefined,
        window: form.window === '1h' ? undefined : form.window,
        errors: form.errors ? '1' : undefined,
        go: '1',
      }),
    );
  };
  const tagError = typeof parseTags(form.tags) === 'string';
  return (
    <section aria-labelledby="search-title">
      <h1 id="search-title">Search traces</h1>
      <form class="search-form" onSubmit={submit} role="search" aria-label="Trace search">
        <label for="s-service">
          Service
          <select id="s-service" value={form.service} onChange={(e) => setForm({ ...form, service: (e.currentTarget as HTMLSelectElement).value, operation: '' })}>
            <option value="">any</option>
            {(services.state === 'ok' ? services.data.data : []).map((s) => (
              <option key={s} value={s}>
                {s}
              </option>
            ))}
          </select>
        </label>
        <label for="s-operation">
          Operation
          <select id="s-operation" value={form.operation} onChange={set('operation')} disabled={!form.service}>
            <option value="">any</option>
            {(operations.state === 'ok' ? operations.data.data : []).map((s) => (
              <option key={s} value={s}>
                {s}
              </option>
            ))}
          </select>
        </label>
        <label for="s-tags" class="wide">
          Tags
          <input id="s-tags" value={form.tags} onInput={set('tags')} placeholder='http.response.status_code=500 k8s.pod.name=payments-2' aria-invalid={tagError} aria-describedby="s-tags-help" />
          <span id="s-tags-help" class="hint">
            key=value, space separated; span and resource attributes
          </span>
        </label>
        <label for="s-min">
          Min duration
          <input id="s-min" value={form.minDuration} onInput={set('minDuration')} placeholder="e.g. 100ms" size={8} />
        </label>
        <label for="s-max">
          Max duration
          <input id="s-max" value={form.maxDuration} onInput={set('maxDuration')} placeholder="e.g. 2s" size={8} />
        </label>
        <WindowPicker id="s-window" value={form.window} onChange={(w) => setForm({ ...form, window: w })} />
        <label class="check" for="s-errors">
          <input id="s-errors" type="checkbox" checked={form.errors} onChange={set('errors')} /> errors only
        </label>
        <button type="submit" disabled={tagError}>
          Find traces
        </button>
      </form>
      {services.state === 'error' ? <ErrorMessage error={services.error} /> : null}
      {submitted ? <Results query={q} /> : <p class="hint">Pick what to look for and press Find traces. A trace id goes straight to its page: <TraceIdJump /></p>}
    </section>
  );
}

function TraceIdJump(): JSX.Element {
  const [id, setId] = useState('');
  return (
    <form class="inline-form" onSubmit={(e) => (e.preventDefault(), id.trim() && navigate(links.trace(id.trim())))}>
      <label for="jump-id" class="sr-only">
        Trace id
      </label>
      <input id="jump-id" value={id} onInput={(e) => setId((e.currentTarget as HTMLInputElement).value)} placeholder="trace id" size={34} />
      <button type="submit">Open</button>
    </form>
  );
}
