// The landing page: the mesh as a graph over a window (default the last 5 minutes, refreshed
// every 5 s). Nodes are services, workloads (pods) or nodes; every edge carries requests per
// second, error rate and p99, and nodes and edges are coloured by health (Kiali's default
// thresholds, given by the API). Clicking a node or an edge opens its failing paths. The table
// under the graph holds the same data for keyboards and screen readers.

import type { JSX } from 'preact';
import { useEffect, useMemo, useState } from 'preact/hooks';
import { getJson } from '../api.ts';
import { Empty, ErrorMessage, HealthBadge, Loading, useData, WindowPicker } from '../components.tsx';
import { ms, pct, rps } from '../format.ts';
import { Link, links, setQuery, type Route } from '../router.tsx';
import type { GraphEdge, GraphNode, Grouping, MeshGraph } from '../types.ts';
import { pathsLinkForEdge } from './graph-links.ts';

const REFRESH_MS = 5_000;

type CanvasModule = typeof import('./graph-canvas.tsx');
let canvasModule: Promise<CanvasModule> | undefined;
/** cytoscape's chunk, asked for once, as soon as a graph page mounts (beside its data). */
const loadCanvas = (): Promise<CanvasModule> => (canvasModule ??= import('./graph-canvas.tsx'));

/** The canvas module; undefined while it loads, null when it could not be loaded. */
function useCanvas(): CanvasModule | undefined | null {
  const [mod, setMod] = useState<CanvasModule | undefined | null>(undefined);
  useEffect(() => {
    let live = true;
    loadCanvas().then(
      (m) => live && setMod(() => m),
      // A failed chunk (a server restarted with a new build) shows in place of the canvas.
      () => live && setMod(null),
    );
    return () => {
      live = false;
    };
  }, []);
  return mod;
}

const HEALTH_RANK = { failing: 0, degraded: 1, healthy: 2, idle: 3 } as const;

function Detail({ hover, graph }: { hover: { node?: GraphNode; edge?: GraphEdge } | undefined; graph: MeshGraph }): JSX.Element {
  if (hover?.node) {
    const n = hover.node;
    return (
      <dl class="detail">
        <dt>{n.kind}</dt>
        <dd>{n.label}</dd>
        {n.service && n.kind !== 'service' ? (
          <>
            <dt>service</dt>
            <dd>{n.service}</dd>
          </>
        ) : null}
        <dt>requests</dt>
        <dd>{rps(n.requestsPerSecond)}</dd>
        <dt>errors</dt>
        <dd>
          {pct(n.errorRate)} <HealthBadge health={n.health} />
        </dd>
      </dl>
    );
  }
  if (hover?.edge) {
    const e = hover.edge;
    const label = (id: string): string => graph.nodes.find((n) => n.id === id)?.label ?? id;
    return (
      <dl class="detail">
        <dt>call</dt>
        <dd>
          {label(e.source)} → {label(e.target)}
        </dd>
        <dt>requests</dt>
        <dd>{rps(e.requestsPerSecond)}</dd>
        <dt>errors</dt>
        <dd>
          {pct(e.errorRate)} <HealthBadge health={e.health} />
        </dd>
        <dt>p50 / p99</dt>
        <dd>
          {ms(e.p50Ms)} / {ms(e.p99Ms)}
        </dd>
      </dl>
    );
  }
  return <p class="hint">Point at a node or an edge for its figures; click it for its failing paths.</p>;
}

export function GraphPage({ route }: { route: Route }): JSX.Element {
  const by = (['service', 'workload', 'node'].includes(route.query.get('by') ?? '') ? route.query.get('by') : 'service') as Grouping;
  const windowParam = route.query.get('window') ?? '5m';
  const focus = route.query.get('service') ?? undefined;
  const [live, setLive] = useState(true);
  const [hover, setHover] = useState<{ node?: GraphNode; edge?: GraphEdge } | undefined>(undefined);
  const canvas = useCanvas();
  const load = useData(`graph:${by}:${windowParam}`, (signal) => getJson<MeshGraph>('/api/v1/graph', { by, lookback: windowParam }, signal), live ? REFRESH_MS : 0);
  const graph = load.state === 'ok' ? load.data : load.state === 'error' ? load.data : undefined;

  const rows = useMemo(() => {
    if (!graph) return [];
    const label = new Map(graph.nodes.map((n) => [n.id, n]));
    return graph.edges
      .map((e) => ({ e, from: label.get(e.source), to: label.get(e.target) }))
      .filter((r) => !focus || r.from?.service === focus || r.to?.service === focus || r.from?.label === focus || r.to?.label === focus)
      .sort((a, b) => HEALTH_RANK[a.e.health] - HEALTH_RANK[b.e.health] || b.e.errorRate - a.e.errorRate || b.e.requests - a.e.requests);
  }, [graph, focus]);

  return (
    <section aria-labelledby="graph-title">
      <div class="toolbar">
        <h1 id="graph-title">Service graph</h1>
        <fieldset class="segmented">
          <legend class="sr-only">Show</legend>
          {(['service', 'workload', 'node'] as const).map((g) => (
            <label key={g} class={by === g ? 'on' : ''}>
              <input type="radio" name="by" value={g} checked={by === g} onChange={() => setQuery({ by: g === 'service' ? undefined : g })} />
              {g === 'service' ? 'Services' : g === 'workload' ? 'Workloads' : 'Nodes'}
            </label>
          ))}
        </fieldset>
        <WindowPicker id="graph-window" value={windowParam} onChange={(w) => setQuery({ window: w === '5m' ? undefined : w })} />
        <label class="check">
          <input type="checkbox" checked={live} onChange={(e) => setLive((e.currentTarget as HTMLInputElement).checked)} /> Live (every {REFRESH_MS / 1000} s)
        </label>
        {focus ? (
          <span class="chip">
            service {focus} <Link href={links.graph({ by: by === 'service' ? undefined : by })} aria-label="Show all services">×</Link>
          </span>
        ) : null}
      </div>
      <p class="legend" aria-hidden="false">
        <HealthBadge health="healthy" label="healthy: < 0.1% errors" /> <HealthBadge health="degraded" label="degraded: ≥ 0.1%" /> <HealthBadge health="failing" label="failing: ≥ 10%" />{' '}
        <HealthBadge health="idle" label="no traffic" />
      </p>
      {load.state === 'error' ? <ErrorMessage error={load.error} /> : null}
      {!graph && load.state === 'loading' ? <Loading what="the service graph" /> : null}
      {graph && graph.nodes.length === 0 ? (
        <Empty title={`No calls in the last ${windowParam}`}>
          Nothing was traced in this window. Send traffic through the sidecars, or pick a longer window.
        </Empty>
      ) : null}
      {graph && graph.nodes.length > 0 ? (
        <>
          <div class="graph-wrap">
            {canvas ? (
              <canvas.GraphCanvas graph={graph} focus={focus} windowParam={windowParam} onHover={setHover} />
            ) : (
              <div class="graph-canvas graph-loading" role="status">
                {canvas === null ? 'The graph drawing could not be loaded (the server may have a newer build): reload the page. The table below lists the same calls.' : 'Drawing the graph…'}
              </div>
            )}
            <aside class="graph-side" aria-live="polite">
              <Detail hover={hover} graph={graph} />
            </aside>
          </div>
          <table class="data" aria-label="Calls in the window, failing first">
            <thead>
              <tr>
                <th scope="col">Caller</th>
                <th scope="col">Callee</th>
                <th scope="col">Requests</th>
                <th scope="col">Error rate</th>
                <th scope="col">p99</th>
                <th scope="col">Health</th>
                <th scope="col">
                  <span class="sr-only">Links</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {rows.map(({ e, from, to }) => (
                <tr key={e.id} data-edge={e.id} class={`row-${e.health}`}>
                  <td>{from?.label ?? e.source}</td>
                  <td>{to?.label ?? e.target}</td>
                  <td class="num">{rps(e.requestsPerSecond)}</td>
                  <td class="num">{pct(e.errorRate)}</td>
                  <td class="num">{ms(e.p99Ms)}</td>
                  <td>
                    <HealthBadge health={e.health} />
                  </td>
                  <td>
                    <Link href={pathsLinkForEdge(from, to, windowParam)} aria-label={`Failing paths through ${from?.label ?? e.source} → ${to?.label ?? e.target}`}>
                      Failing paths
                    </Link>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </>
      ) : null}
    </section>
  );
}
