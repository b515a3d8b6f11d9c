// Failing paths: the signatures (root → … → the hop where failures began) ranked by failures
// over a window, with error rate, trend, root-cause pods and nodes and exemplar traces, from
// `/api/v1/paths`. Filters: service, window, reason; from the graph also a pod or a node (the
// paths whose root causes include it). One path over time is `/paths/{signatureId}`.

import type { JSX } from 'preact';
import { useState } from 'preact/hooks';
import { ApiFailure, apiHas, getJson } from '../api.ts';
import { Empty, ErrorMessage, Loading, Sparkline, useData, WindowPicker } from '../components.tsx';
import { clock, dateTime, ms, pct, where } from '../format.ts';
import { Link, links, setQuery, type Route } from '../router.tsx';
import { signatureHasCall } from './graph-links.ts';
import type { FailingPath, JaegerEnvelope, JaegerTrace, PathDetail, PathsResponse, RootCauseShare } from '../types.ts';

const REFRESH_MS = 10_000;
const NO_PATHS_API = new ApiFailure(501, 'NOT_SUPPORTED', 'This query API has no failing-path API (/api/v1/paths is not in its OpenAPI document): it needs the trace outcomes component. The latest failed traces are below.');
/** Rows that get a trend sparkline (one /paths/{id} request each). */
const TREND_ROWS = 10;

const WINDOW_SECONDS: Readonly<Record<string, number>> = { '1m': 60, '5m': 300, '15m': 900, '1h': 3600, '6h': 21600, '24h': 86400 };

function stepFor(window: string): string {
  const s = WINDOW_SECONDS[window] ?? 900;
  return `${Math.max(10, Math.round(s / 12))}s`;
}

function Causes({ causes }: { causes: readonly RootCauseShare[] }): JSX.Element {
  return (
    <ul class="causes">
      {causes.slice(0, 3).map((c, i) => (
        <li key={i}>
          <strong>{c.pod ?? c.service}</strong> {c.node ? <span class="where">@{c.node}</span> : null} <span class="reason">{c.reason}</span> <span class="share">{pct(c.share)}</span>
        </li>
      ))}
      {causes.length > 3 ? <li class="hint">+{causes.length - 3} more</li> : null}
    </ul>
  );
}

function Trend({ id, window }: { id: string; window: string }): JSX.Element {
  const load = useData(`trend:${id}:${window}`, (signal) => getJson<PathDetail>(`/api/v1/paths/${encodeURIComponent(id)}`, { lookback: window, step: stepFor(window) }, signal));
  if (load.state !== 'ok') return <span class="hint">{load.state === 'loading' ? '…' : '–'}</span>;
  const values = load.data.buckets.map((b) => b.failures);
  return <Sparkline values={values} label={`failures per ${stepFor(window)}: ${values.join(', ')}`} />;
}

function Exemplars({ ids }: { ids: readonly string[] }): JSX.Element {
  return (
    <ul class="exemplars">
      {ids.slice(0, 5).map((id) => (
        <li key={id}>
          <Link href={links.trace(id)} aria-label={`Exemplar trace ${id}`} data-exemplar={id}>
            <code>{id.slice(0, 10)}</code>
          </Link>
        </li>
      ))}
    </ul>
  );
}

function RecentFailures({ service, window }: { service: string | undefined; window: string }): JSX.Element {
  const load = useData(`recent:${service ?? ''}:${window}`, (signal) =>
    getJson<JaegerEnvelope<JaegerTrace[]>>('/api/traces', { service, tags: JSON.stringify({ error: 'true' }), lookback: window, limit: 8 }, signal),
  );
  if (load.state === 'loading') return <Loading what="recent failed traces" />;
  if (load.state === 'error') return <ErrorMessage error={load.error} />;
  if (load.data.data.length === 0) return <p class="hint">No failed trace{service ? ` through ${service}` : ''} in the last {window}.</p>;
  return (
    <ul class="recent">
      {load.data.data.map((t) => {
        const root = t.spans.reduce((a, b) => (b.startTime < a.startTime ? b : a), t.spans[0]!);
        return (
          <li key={t.traceID}>
            <Link href={links.trace(t.traceID)}>
              <code>{t.traceID.slice(0, 12)}</code>
            </Link>{' '}
            {t.processes[root.processID]?.serviceName} {root.operationName} · {ms(root.duration / 1000)} · {clock(new Date(root.startTime / 1000).toISOString())}
          </li>
        );
      })}
    </ul>
  );
}

function matches(p: FailingPath, pod: string | undefined, node: string | undefined, call: { caller: string; callee: string } | undefined): boolean {
  if (call && !signatureHasCall(p.signature, call.caller, call.callee)) return false;
  if (pod && !p.rootCauses.some((c) => c.pod === pod)) return false;
  if (node && !p.rootCauses.some((c) => c.node === node)) return false;
  return true;
}

export function PathsPage({ route }: { route: Route }): JSX.Element {
  const q = route.query;
  const service = q.get('service') ?? undefined;
  const pod = q.get('pod') ?? undefined;
  const node = q.get('node') ?? undefined;
  // From a graph edge: paths where the caller calls the callee (the service filter) directly.
  const caller = q.get('caller') ?? undefined;
  const call = caller && service ? { caller, callee: service } : undefined;
  const reason = q.get('reason') ?? undefined;
  const window = q.get('window') ?? '15m';
  const [serviceInput, setServiceInput] = useState(service ?? '');
  const [reasonInput, setReasonInput] = useState(reason ?? '');
  const load = useData(
    `paths:${service ?? ''}:${reason ?? ''}:${window}`,
    async (signal) => {
      if (!(await apiHas('/api/v1/paths', signal))) throw NO_PATHS_API;
      return getJson<PathsResponse>('/api/v1/paths', { service, reason, lookback: window, status: 'error', limit: 50 }, signal);
    },
    REFRESH_MS,
  );
  const data = load.state === 'ok' ? load.data : load.state === 'error' ? load.data : undefined;
  const paths = (data?.paths ?? []).filter((p) => matches(p, pod, node, call));

  const apply = (e: Event): void => {
    e.preventDefault();
    const next = serviceInput.trim() || undefined;
    // A call filter belongs to its callee: a new service drops it.
    setQuery({ service: next, caller: next === service ? caller : undefined, reason: reasonInput.trim() || undefined });
  };

  return (
    <section aria-labelledby="paths-title">
      <div class="toolbar">
        <h1 id="paths-title">Failing paths</h1>
        <form class="filters" onSubmit={apply} role="search" aria-label="Filter failing paths">
          <label for="paths-service">
            Service <input id="paths-service" value={serviceInput} onInput={(e) => setServiceInput((e.currentTarget as HTMLInputElement).value)} placeholder="any" />
          </label>
          <label for="paths-reason">
            Reason{' '}
            <input id="paths-reason" value={reasonInput} onInput={(e) => setReasonInput((e.currentTarget as HTMLInputElement).value)} placeholder="e.g. HTTP_500" list="reasons" />
          </label>
          <datalist id="reasons">
            {['HTTP_500', 'HTTP_503', 'CONNECTION_REFUSED', 'UPSTREAM_RESET', 'UPSTREAM_TIMEOUT', 'NO_ENDPOINT', 'POLICY_DENIED', 'TLS_HANDSHAKE_FAILED'].map((r) => (
              <option key={r} value={r} />
            ))}
          </datalist>
          <WindowPicker id="paths-window" value={window} onChange={(w) => setQuery({ window: w === '15m' ? undefined : w })} />
          <button type="submit">Apply</button>
        </form>
        {call ? (
          <span class="chip" data-testid="call-filter">
            call {call.caller} → {call.callee}{' '}
            <Link href={links.paths({ service, pod, node, window, reason })} aria-label="Clear the call filter">
              ×
            </Link>
          </span>
        ) : null}
        {pod ? <span class="chip">root cause pod {pod} <Link href={links.paths({ service, caller, node, window, reason })} aria-label="Clear the pod filter">×</Link></span> : null}
        {node ? <span class="chip">root cause node {node} <Link href={links.paths({ service, caller, pod, window, reason })} aria-label="Clear the node filter">×</Link></span> : null}
      </div>
      {load.state === 'error' ? <ErrorMessage error={load.error} /> : null}
      {!data && load.state === 'loading' ? <Loading what="failing paths" /> : null}
      {data && paths.length === 0 ? (
        <Empty title={`No failing path${call ? ` with the call ${call.caller} → ${call.callee}` : service ? ` through ${service}` : ''} in the last ${window}`}>
          Requests are grouped into paths once their traces are complete (a few seconds after the last span). Try a longer window, or clear the filters.
        </Empty>
      ) : null}
      {paths.length > 0 ? (
        <table class="data paths" aria-label="Failing paths, most failures first">
          <thead>
            <tr>
              <th scope="col">Path (root → where failures began)</th>
              <th scope="col">Failures</th>
              <th scope="col">Error rate</th>
              <th scope="col">Trend</th>
              <th scope="col">p99</th>
              <th scope="col">Root causes</th>
              <th scope="col">Exemplar traces</th>
            </tr>
          </thead>
          <tbody>
            {paths.map((p, i) => (
              <tr key={p.signatureId} data-signature={p.signatureId}>
                <td class="signature">
                  <Link href={links.path(p.signatureId)}>{p.signature}</Link>
                  <div class="hint">
                    last seen {clock(p.lastSeen)} · first {dateTime(p.firstSeen)}
                  </div>
                </td>
                <td class="num">
                  {p.failures} / {p.requests}
                </td>
                <td class="num">{pct(p.errorRate)}</td>
                <td>{i < TREND_ROWS ? <Trend id={p.signatureId} window={window} /> : null}</td>
                <td class="num">{ms(p.p99Ms)}</td>
                <td>
                  <Causes causes={p.rootCauses} />
                </td>
                <td>
                  <Exemplars ids={p.exemplars} />
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      ) : null}
      <section aria-labelledby="recent-title" class="recent-section">
        <h2 id="recent-title">Latest failed traces{service ? ` through ${service}` : ''}</h2>
        <RecentFailures service={service} window={window} />
      </section>
    </section>
  );
}

export function PathDetailPage({ signatureId, route }: { signatureId: string; route: Route }): JSX.Element {
  const window = route.query.get('window') ?? '1h';
  const load = useData(`path:${signatureId}:${window}`, async (signal) => {
    if (!(await apiHas('/api/v1/paths/{signatureId}', signal))) throw NO_PATHS_API;
    return getJson<PathDetail>(`/api/v1/paths/${encodeURIComponent(signatureId)}`, { lookback: window, step: stepFor(window) }, signal);
  }, REFRESH_MS);
  if (load.state === 'loading') return <Loading what="the failing path" />;
  if (load.state === 'error' && !load.data) return <ErrorMessage error={load.error} />;
  const p = load.state === 'ok' ? load.data : load.data!;
  const max = Math.max(1, ...p.buckets.map((b) => b.requests));
  return (
    <section aria-labelledby="path-title">
      <div class="toolbar">
        <h1 id="path-title">Failing path</h1>
        <WindowPicker id="path-window" value={window} onChange={(w) => setQuery({ window: w === '1h' ? undefined : w })} />
        <Link href={links.paths({ service: p.rootService })}>All failing paths of {p.rootService}</Link>
      </div>
      {load.state === 'error' ? <ErrorMessage error={load.error} /> : null}
      <p class="signature big">{p.signature}</p>
      <dl class="detail inline">
        <dt>failures</dt>
        <dd>
          {p.failures} of {p.requests} ({pct(p.errorRate)})
        </dd>
        <dt>p50 / p99</dt>
        <dd>
          {ms(p.p50Ms)} / {ms(p.p99Ms)}
        </dd>
        <dt>seen</dt>
        <dd>
          {dateTime(p.firstSeen)} – {dateTime(p.lastSeen)}
        </dd>
      </dl>
      <h2>Over time</h2>
      <table class="data buckets" aria-label="Requests and failures per bucket">
        <thead>
          <tr>
            <th scope="col">Time</th>
            <th scope="col">Requests</th>
            <th scope="col">Failures</th>
            <th scope="col">p99</th>
            <th scope="col">
              <span class="sr-only">Chart</span>
            </th>
          </tr>
        </thead>
        <tbody>
          {p.buckets.map((b) => (
            <tr key={b.time}>
              <td>{clock(b.time)}</td>
              <td class="num">{b.requests}</td>
              <td class="num">{b.failures}</td>
              <td class="num">{ms(b.p99Ms)}</td>
              <td aria-hidden="true" class="bucket-bar">
                <span class="bar-req" style={{ width: `${(b.requests / max) * 100}%` }}>
                  <span class="bar-fail" style={{ width: `${b.requests > 0 ? (b.failures / b.requests) * 100 : 0}%` }} />
                </span>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      <h2>Root causes</h2>
      <table class="data" aria-label="Root causes of this path's failures">
        <thead>
          <tr>
            <th scope="col">Where</th>
            <th scope="col">Namespace</th>
            <th scope="col">Reason</th>
            <th scope="col">Failures</th>
            <th scope="col">Share</th>
          </tr>
        </thead>
        <tbody>
          {p.rootCauses.map((c, i) => (
            <tr key={i}>
              <td>{where(c)}</td>
              <td>{c.namespace ?? '–'}</td>
              <td>{c.reason}</td>
              <td class="num">{c.failures}</td>
              <td class="num">{pct(c.share)}</td>
            </tr>
          ))}
        </tbody>
      </table>
      <h2>Exemplar traces</h2>
      <Exemplars ids={p.exemplars} />
    </section>
  );
}
