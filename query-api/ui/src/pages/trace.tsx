// One trace: the root cause in one sentence (the path API's summary), then a waterfall of its
// spans grouped into hops by pod and node, the critical path marked, recovered errors listed
// apart, each span's log records under it, and a span's attributes on click. The waterfall is
// virtualised (only the rows in view are in the DOM), so a 5,000-span trace scrolls smoothly.

import type { JSX } from 'preact';
import { useEffect, useMemo, useRef, useState } from 'preact/hooks';
import { ApiFailure, getJson } from '../api.ts';
import { Empty, ErrorMessage, Loading, useData } from '../components.tsx';
import { dateTime, ms, where } from '../format.ts';
import { Link, links, setQuery, type Route } from '../router.tsx';
import { buildTraceModel, type Row, type SpanInfo, type TraceModel } from '../trace-model.ts';
import type { FailureReport, JaegerEnvelope, JaegerTrace, TraceLogs, TracePath } from '../types.ts';

const ROW_HEIGHT = 26;
const OVERSCAN = 12;

interface TraceData {
  trace: JaegerTrace;
  path: TracePath | undefined;
  pathError: unknown;
  logs: TraceLogs['logs'];
}

async function fetchTrace(id: string, signal: AbortSignal): Promise<TraceData> {
  const [trace, path, logs] = await Promise.allSettled([
    getJson<JaegerEnvelope<JaegerTrace[]>>(`/api/traces/${id}`, {}, signal),
    getJson<TracePath>(`/api/v1/traces/${id}/path`, {}, signal),
    getJson<TraceLogs>(`/api/v1/traces/${id}/logs`, {}, signal),
  ]);
  if (trace.status === 'rejected') throw trace.reason;
  const t = trace.value.data[0];
  if (!t) throw new ApiFailure(404, 'TRACE_NOT_FOUND', `trace ${id} not found`);
  return {
    trace: t,
    path: path.status === 'fulfilled' ? path.value : undefined,
    pathError: path.status === 'rejected' ? path.reason : undefined,
    logs: logs.status === 'fulfilled' ? logs.value.logs : [],
  };
}

function reasonText(f: FailureReport): string {
  return f.meshErrorCode ?? (f.httpStatus !== null ? `HTTP ${f.httpStatus}` : f.reason);
}

function Banner({ data, onJump }: { data: TraceData; onJump: (hopId: string) => void }): JSX.Element {
  const p = data.path;
  if (!p) return <ErrorMessage error={data.pathError} />;
  const rc = p.rootCause;
  return (
    <div class={`banner ${rc ? 'banner-error' : 'banner-ok'}`} role="region" aria-label="Root cause">
      {rc ? (
        <>
          <p class="banner-title">
            <span class="badge health-failing">root cause</span>{' '}
            <button type="button" class="linkish" onClick={() => onJump(rc.hopId)} data-testid="root-cause-hop">
              {where(rc)}
            </button>{' '}
            <span class="reason">{reasonText(rc)}</span>
          </p>
          <p class="summary" data-testid="root-cause-summary">
            {rc.summary}
          </p>
        </>
      ) : (
        <p class="banner-title">
          <span class="badge health-healthy">ok</span> {p.summary}
        </p>
      )}
      {p.warnings.length > 0 ? (
        <ul class="warnings" aria-label="Warnings">
          {p.warnings.map((w, i) => (
            <li key={i}>{w}</li>
          ))}
        </ul>
      ) : null}
    </div>
  );
}

function Recovered({ list, onJump }: { list: readonly FailureReport[]; onJump: (hopId: string) => void }): JSX.Element | null {
  if (list.length === 0) return null;
  return (
    <section class="recovered" aria-labelledby="recovered-title">
      <h2 id="recovered-title">Recovered errors ({list.length})</h2>
      <p class="hint">These failed but did not fail the request: a retry, a fallback or an ignored error.</p>
      <ul>
        {list.map((f) => (
          <li key={f.spanId}>
            <button type="button" class="linkish" onClick={() => onJump(f.hopId)}>
              {where(f)}
            </button>{' '}
            <span class="reason">{reasonText(f)}</span>: {f.summary}
          </li>
        ))}
      </ul>
    </section>
  );
}

function Bar({ startUs, durationUs, model, cls }: { startUs: number; durationUs: number; model: TraceModel; cls: string }): JSX.Element {
  const left = ((startUs - model.startUs) / model.durationUs) * 100;
  const width = Math.max(0.2, (durationUs / model.durationUs) * 100);
  return (
    <span class="bar-track" aria-hidden="true">
      <span class={`bar ${cls}`} style={{ left: `${left}%`, width: `${width}%` }} />
    </span>
  );
}

function RowView({ row, model, selected, onSelect }: { row: Row; model: TraceModel; selected: string | undefined; onSelect: (id: string) => void }): JSX.Element {
  if (row.type === 'group') return <div class="row row-group">{row.label}</div>;
  if (row.type === 'hop') {
    const h = row.hop;
    const cls = row.rootCause ? 'hop-root-cause' : h.status === 'error' ? (row.recovered ? 'hop-recovered' : 'hop-error') : '';
    const status = h.meshErrorCode ?? (h.httpStatus !== null ? String(h.httpStatus) : h.status);
    const startUs = Number(BigInt(h.startUnixNano) / 1000n);
    return (
      <div class={`row row-hop ${cls}`} data-hop={h.id} data-pod={h.pod ?? ''}>
        <span class="name" style={{ paddingLeft: `${row.depth * 14}px` }}>
          <strong>{h.service}</strong> <span class="where">{h.pod ?? '?'}</span> <span class="where">@{h.node ?? '?'}</span>
          {row.rootCause ? <span class="badge health-failing">root cause</span> : null}
          {row.recovered ? <span class="badge health-degraded">recovered</span> : null}
          {h.unreached ? <span class="badge health-idle">unreached</span> : null}
          {h.onCriticalPath ? (
            <span class="crit-mark" title="on the critical path">
              ◆<span class="sr-only">on the critical path</span>
            </span>
          ) : null}
        </span>
        <span class="meta">
          {h.operation} · {status} · {ms(h.durationMs)}
        </span>
        <Bar startUs={startUs} durationUs={h.durationMs * 1000} model={model} cls={`bar-hop ${h.status === 'error' ? 'bar-error' : ''}`} />
      </div>
    );
  }
  if (row.type === 'log') {
    const l = row.log;
    return (
      <div class={`row row-log sev-${l.severityNumber >= 17 ? 'error' : l.severityNumber >= 13 ? 'warn' : 'info'}`}>
        <span class="name" style={{ paddingLeft: `${row.depth * 14}px` }}>
          <span class="log-sev">{l.severityText || 'LOG'}</span> <span class="log-body">{l.body}</span>
        </span>
        <span class="meta">{l.serviceName}</span>
        <span class="bar-track" aria-hidden="true" />
      </div>
    );
  }
  const i = row.info;
  const s = i.span;
  const cls = [i.rootCause ? 'span-root-cause' : '', i.error ? (i.recovered ? 'span-recovered' : 'span-error') : '', i.critical ? 'span-critical' : '', selected === s.spanID ? 'selected' : '']
    .filter(Boolean)
    .join(' ');
  const label = `${s.operationName}, ${i.kind} span of ${i.service}, ${ms(s.duration / 1000)}${i.error ? ', error' : ''}${i.critical ? ', on the critical path' : ''}${i.rootCause ? ', root cause' : ''}`;
  return (
    <button type="button" class={`row row-span ${cls}`} data-span={s.spanID} aria-label={label} aria-pressed={selected === s.spanID} onClick={() => onSelect(s.spanID)}>
      <span class="name" style={{ paddingLeft: `${row.depth * 14}px` }}>
        <span class="kind">{i.kind}</span> {s.operationName}
      </span>
      <span class="meta">{ms(s.duration / 1000)}</span>
      <Bar startUs={s.startTime} durationUs={s.duration} model={model} cls={`${i.error ? 'bar-error' : ''} ${i.critical ? 'bar-critical' : ''}`} />
    </button>
  );
}

/** The waterfall: a scroll box whose inner height is all rows, holding only the visible ones. */
function Waterfall({ model, selected, onSelect, jumpTo }: { model: TraceModel; selected: string | undefined; onSelect: (id: string) => void; jumpTo: number | undefined }): JSX.Element {
  const box = useRef<HTMLDivElement>(null);
  const [range, setRange] = useState({ top: 0, height: 600 });
  const frame = useRef(0);

  useEffect(() => {
    const el = box.current;
    if (!el) return;
    const update = (): void => {
      frame.current = 0;
      setRange({ top: el.scrollTop, height: el.clientHeight });
    };
    const onScroll = (): void => {
      if (frame.current === 0) frame.current = requestAnimationFrame(update);
    };
    update();
    el.addEventListener('scroll', onScroll, { passive: true });
    const ro = new ResizeObserver(update);
    ro.observe(el);
    return () => {
      el.removeEventListener('scroll', onScroll);
      ro.disconnect();
      if (frame.current) cancelAnimationFrame(frame.current);
    };
  }, []);

  useEffect(() => {
    const el = box.current;
    if (!el || jumpTo === undefined) return;
    const y = jumpTo * ROW_HEIGHT;
    if (y < el.scrollTop || y > el.scrollTop + el.clientHeight - ROW_HEIGHT) el.scrollTop = Math.max(0, y - el.clientHeight / 3);
  }, [jumpTo]);

  const first = Math.max(0, Math.floor(range.top / ROW_HEIGHT) - OVERSCAN);
  const last = Math.min(model.rows.length, Math.ceil((range.top + range.height) / ROW_HEIGHT) + OVERSCAN);
  const visible = [];
  for (let i = first; i < last; i++) {
    visible.push(
      <div key={i} class="vrow" style={{ transform: `translateY(${i * ROW_HEIGHT}px)` }}>
        <RowView row={model.rows[i]!} model={model} selected={selected} onSelect={onSelect} />
      </div>,
    );
  }

  // Arrow keys move between spans; Enter/Space on a span (a button) selects it.
  const onKeyDown = (e: KeyboardEvent): void => {
    if (e.key !== 'ArrowDown' && e.key !== 'ArrowUp') return;
    const spanRows: number[] = [];
    const cur = selected !== undefined ? (model.rowOf.get(selected) ?? -1) : -1;
    const step = e.key === 'ArrowDown' ? 1 : -1;
    for (let i = cur + step; i >= 0 && i < model.rows.length; i += step) {
      const r = model.rows[i]!;
      if (r.type === 'span') {
        spanRows.push(i);
        onSelect(r.info.span.spanID);
        e.preventDefault();
        requestAnimationFrame(() => (box.current?.querySelector(`[data-span="${r.info.span.spanID}"]`) as HTMLElement | null)?.focus());
        break;
      }
    }
  };

  return (
    <div class="waterfall" ref={box} onKeyDown={onKeyDown} role="list" aria-label={`Spans of the trace grouped into hops, ${model.rows.length} rows`} data-rows={model.rows.length}>
      <div class="waterfall-inner" style={{ height: `${model.rows.length * ROW_HEIGHT}px` }}>
        {visible}
      </div>
    </div>
  );
}

function Attributes({ info, onClose }: { info: SpanInfo; onClose: () => void }): JSX.Element {
  const s = info.span;
  const ref = useRef<HTMLElement>(null);
  useEffect(() => ref.current?.focus(), [s.spanID]);
  return (
    <aside class="attributes" aria-labelledby="attr-title" tabIndex={-1} ref={ref} onKeyDown={(e) => e.key === 'Escape' && onClose()}>
      <div class="attr-head">
        <h2 id="attr-title">{s.operationName}</h2>
        <button type="button" onClick={onClose} aria-label="Close the span's attributes">
          ×
        </button>
      </div>
      <dl class="detail">
        <dt>service</dt>
        <dd>{info.service}</dd>
        <dt>pod / node</dt>
        <dd>
          {info.pod ?? '–'} / {info.node ?? '–'}
        </dd>
        <dt>span id</dt>
        <dd>
          <code>{s.spanID}</code>
        </dd>
        <dt>duration</dt>
        <dd>{ms(s.duration / 1000)}</dd>
        <dt>start</dt>
        <dd>{dateTime(new Date(s.startTime / 1000).toISOString())}</dd>
      </dl>
      <h3>Span attributes</h3>
      <table class="kv">
        <tbody>
          {s.tags.map((t, i) => (
            <tr key={i}>
              <th scope="row">{t.key}</th>
              <td>{String(t.value)}</td>
            </tr>
          ))}
        </tbody>
      </table>
      <h3>Resource</h3>
      <table class="kv">
        <tbody>
          {info.processTags.map((t, i) => (
            <tr key={i}>
              <th scope="row">{t.key}</th>
              <td>{String(t.value)}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {s.logs.length > 0 ? (
        <>
          <h3>Events</h3>
          <ul class="events">
            {s.logs.map((l, i) => (
              <li key={i}>{l.fields.map((f) => `${f.key}=${String(f.value)}`).join(' ')}</li>
            ))}
          </ul>
        </>
      ) : null}
      {info.logs.length > 0 ? (
        <>
          <h3>Logs</h3>
          <ul class="events">
            {info.logs.map((l, i) => (
              <li key={i}>
                <span class="log-sev">{l.severityText}</span> {l.body}
              </li>
            ))}
          </ul>
        </>
      ) : null}
    </aside>
  );
}

export function TracePage({ route, traceId }: { route: Route; traceId: string }): JSX.Element {
  const valid = /^[0-9a-fA-F]{1,32}$/.test(traceId);
  const load = useData(`trace:${traceId}`, (signal) => (valid ? fetchTrace(traceId, signal) : Promise.reject(new ApiFailure(400, 'INVALID_PARAMETER', `"${traceId.slice(0, 64)}" is not a trace id: it must be 1 to 32 hexadecimal characters.`))));
  const data = load.state === 'ok' ? load.data : undefined;
  const model = useMemo(() => (data ? buildTraceModel(data.trace, data.path, data.logs) : undefined), [data]);
  const selected = route.query.get('span') ?? undefined;
  const [jump, setJump] = useState<number | undefined>(undefined);
  const select = (id: string | undefined): void => setQuery({ span: id });
  const jumpToHop = (hopId: string): void => {
    const i = model?.rowOf.get(`hop:${hopId}`);
    if (i !== undefined) setJump(i);
  };
  useEffect(() => {
    if (model && selected) {
      const i = model.rowOf.get(selected);
      if (i !== undefined) setJump(i);
    }
  }, [model]);

  useEffect(() => {
    document.title = `trace ${traceId.slice(0, 12)} · tracemesh`;
  }, [traceId]);

  if (load.state === 'loading') return <Loading what={`trace ${traceId}`} />;
  if (load.state === 'error') {
    const notFound = load.error instanceof ApiFailure && load.error.status === 404;
    return (
      <section aria-labelledby="trace-title">
        <h1 id="trace-title">Trace {traceId}</h1>
        {notFound ? (
          <Empty title="No such trace">
            No span of trace <code>{traceId}</code> is stored. It may be older than the retention, not yet written (spans arrive within seconds), or the id may be
            mistyped. <Link href={links.search()}>Search traces</Link>
          </Empty>
        ) : (
          <ErrorMessage error={load.error} />
        )}
      </section>
    );
  }
  const d = load.data;
  const info = selected ? model!.spans.get(selected) : undefined;
  return (
    <section aria-labelledby="trace-title" class="trace-page">
      <div class="toolbar">
        <h1 id="trace-title">
          Trace <code>{d.trace.traceID}</code>
        </h1>
        {d.path ? (
          <span class="meta">
            {d.path.status === 'error' ? <span class="badge health-failing">error</span> : <span class="badge health-healthy">ok</span>} {ms(d.path.durationMs)} · {d.path.hopCount} hops ·{' '}
            {d.path.spanCount} spans · {dateTime(d.path.startTime)}
          </span>
        ) : null}
        <a class="json-link" href={`/api/v1/traces/${d.trace.traceID}/path`}>
          path as JSON
        </a>
      </div>
      <Banner data={d} onJump={jumpToHop} />
      <Recovered list={d.path?.recoveredErrors ?? []} onJump={jumpToHop} />
      <p class="legend">
        <span class="key key-critical" /> critical path <span class="key key-error" /> error <span class="key key-root" /> root cause · logs appear under their span · click a span
        for its attributes
      </p>
      <div class={`trace-body ${info ? 'with-attrs' : ''}`}>
        <Waterfall model={model!} selected={selected} onSelect={(id) => select(id === selected ? undefined : id)} jumpTo={jump} />
        {info ? <Attributes info={info} onClose={() => select(undefined)} /> : null}
      </div>
    </section>
  );
}
