// The landing page: the mesh as a graph over a window (default the last 5 minutes, refreshed
// every 5 s). Nodes are services, workloads (pods) or nodes; every edge carries requests per
// second, error rate and p99, and nodes and edges are coloured by health (Kiali's default
// thresholds, given by the API). Clicking a node or an edge opens its failing paths. The table
// under the graph holds the same data for keyboards and screen readers.

import cytoscape from 'cytoscape';
import type { JSX } from 'preact';
import { useEffect, useMemo, useRef, useState } from 'preact/hooks';
import { getJson } from '../api.ts';
import { Empty, ErrorMessage, HealthBadge, Loading, useData, WindowPicker } from '../components.tsx';
import { ms, pct, rps } from '../format.ts';
import { layoutGraph } from '../graph-layout.ts';
import { Link, links, navigate, setQuery, type Route } from '../router.tsx';
import type { GraphEdge, GraphNode, Grouping, MeshGraph } from '../types.ts';

const REFRESH_MS = 5_000;
/** Beyond this many edges, edge labels show on hover only: a thousand labels are unreadable. */
const MAX_LABELLED_EDGES = 80;

const HEALTH_RANK = { failing: 0, degraded: 1, healthy: 2, idle: 3 } as const;

function edgeLabel(e: GraphEdge): string {
  return `${rps(e.requestsPerSecond)} · ${pct(e.errorRate)} err · p99 ${ms(e.p99Ms)}`;
}

/** Where a click on a node or an edge leads: the failing paths that involve it. */
export function pathsLinkFor(node: GraphNode | undefined, windowParam: string): string {
  if (!node) return links.paths({ window: windowParam });
  if (node.kind === 'node') return links.paths({ window: windowParam, node: node.node ?? undefined });
  return links.paths({ service: node.service ?? undefined, pod: node.kind === 'workload' ? (node.pod ?? undefined) : undefined, window: windowParam });
}

function cssVar(name: string, fallback: string): string {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim() || fallback;
}

function graphStyle(labelEdges: boolean): cytoscape.StylesheetJson {
  const color = {
    healthy: cssVar('--healthy', '#3e8635'),
    degraded: cssVar('--degraded', '#f0ab00'),
    failing: cssVar('--failing', '#c9190b'),
    idle: cssVar('--idle', '#8a8d90'),
    text: cssVar('--fg', '#151515'),
    bg: cssVar('--bg', '#ffffff'),
    accent: cssVar('--accent', '#0066cc'),
  };
  return [
    {
      selector: 'node',
      style: {
        'background-color': color.bg,
        'border-width': 3,
        'border-color': (n: cytoscape.NodeSingular) => color[n.data('health') as keyof typeof color] ?? color.idle,
        label: 'data(label)',
        color: color.text,
        'font-size': 11,
        'text-valign': 'bottom',
        'text-margin-y': 4,
        width: 30,
        height: 30,
        shape: (n: cytoscape.NodeSingular) => (n.data('kind') === 'node' ? 'round-rectangle' : n.data('kind') === 'workload' ? 'ellipse' : 'round-triangle'),
      },
    },
    { selector: 'node[health = "failing"]', style: { 'border-width': 5 } },
    {
      selector: 'edge',
      style: {
        width: 2,
        'curve-style': 'bezier',
        'target-arrow-shape': 'triangle',
        'line-color': (e: cytoscape.EdgeSingular) => color[e.data('health') as keyof typeof color] ?? color.idle,
        'target-arrow-color': (e: cytoscape.EdgeSingular) => color[e.data('health') as keyof typeof color] ?? color.idle,
        label: labelEdges ? 'data(label)' : '',
        'font-size': 9,
        color: color.text,
        'text-background-color': color.bg,
        'text-background-opacity': 0.85,
        'text-background-padding': '2px',
        'text-rotation': 'autorotate',
        'text-margin-y': -12,
      },
    },
    { selector: 'edge[health = "failing"]', style: { width: 4, 'line-style': 'solid' } },
    { selector: 'edge[health = "degraded"]', style: { 'line-style': 'dashed' } },
    { selector: '.hover', style: { label: 'data(label)', 'z-index': 10 } },
    { selector: '.focus', style: { 'overlay-color': color.accent, 'overlay-opacity': 0.25, 'overlay-padding': 6 } },
  ];
}

interface GraphCanvasProps {
  graph: MeshGraph;
  focus: string | undefined;
  windowParam: string;
  onHover: (what: { node?: GraphNode; edge?: GraphEdge } | undefined) => void;
}

/** Test and bench hook: where an element is drawn, and when the last layout finished. */
interface GraphProbe {
  renderedMidpoint(id: string): { x: number; y: number } | undefined;
  /** Ids and health of what is drawn. */
  drawn(): { id: string; health: string; label: string }[];
  layoutMs: number;
  elements: number;
  /** performance.now() of the first frame that showed a laid-out graph (ms since navigation). */
  firstPaintMs: number | undefined;
}
declare global {
  interface Window {
    tracemeshGraph?: GraphProbe;
  }
}

function GraphCanvas({ graph, focus, windowParam, onHover }: GraphCanvasProps): JSX.Element {
  const container = useRef<HTMLDivElement>(null);
  const cy = useRef<cytoscape.Core | undefined>(undefined);
  const byId = useRef(new Map<string, GraphNode>());
  const edgeById = useRef(new Map<string, GraphEdge>());
  const labelled = graph.edges.length <= MAX_LABELLED_EDGES;

  useEffect(() => {
    const c = cytoscape({
      container: container.current,
      style: graphStyle(labelled),
      minZoom: 0.1,
      maxZoom: 3,
      boxSelectionEnabled: false,
      autoungrabify: false,
      textureOnViewport: true,
      hideEdgesOnViewport: graph.edges.length > 300,
      pixelRatio: 1,
    });
    cy.current = c;
    c.on('tap', 'node', (e) => navigate(pathsLinkFor(byId.current.get(e.target.id() as string), windowParam)));
    c.on('tap', 'edge', (e) => {
      const edge = edgeById.current.get(e.target.id() as string);
      navigate(pathsLinkFor(edge ? byId.current.get(edge.target) : undefined, windowParam));
    });
    c.on('mouseover', 'node, edge', (e) => {
      e.target.addClass('hover');
      const id = e.target.id() as string;
      const node = byId.current.get(id);
      const edge = edgeById.current.get(id);
      onHover(node ? { node } : edge ? { edge } : undefined);
      if (container.current) container.current.style.cursor = 'pointer';
    });
    c.on('mouseout', 'node, edge', (e) => {
      e.target.removeClass('hover');
      if (container.current) container.current.style.cursor = '';
    });
    const probe: GraphProbe = {
      renderedMidpoint: (id) => {
        const el = c.getElementById(id);
        if (el.empty()) return undefined;
        const p = el.isEdge() ? (el as cytoscape.EdgeSingular).renderedMidpoint() : (el as cytoscape.NodeSingular).renderedPosition();
        const box = container.current!.getBoundingClientRect();
        return { x: box.left + p.x, y: box.top + p.y };
      },
      drawn: () => c.elements().map((el) => ({ id: el.id(), health: String(el.data('health')), label: String(el.data('label')) })),
      layoutMs: 0,
      elements: 0,
      firstPaintMs: undefined,
    };
    window.tracemeshGraph = probe;
    const scheme = matchMedia('(prefers-color-scheme: dark)');
    const restyle = (): void => void c.style(graphStyle(labelled));
    scheme.addEventListener('change', restyle);
    document.addEventListener('tracemesh-theme', restyle);
    return () => {
      scheme.removeEventListener('change', restyle);
      document.removeEventListener('tracemesh-theme', restyle);
      c.destroy();
      cy.current = undefined;
      if (window.tracemeshGraph === probe) delete window.tracemeshGraph;
    };
  }, [windowParam, labelled]);

  useEffect(() => {
    const c = cy.current;
    if (!c) return;
    byId.current = new Map(graph.nodes.map((n) => [n.id, n]));
    edgeById.current = new Map(graph.edges.map((e) => [e.id, e]));
    const wanted = new Set([...graph.nodes.map((n) => n.id), ...graph.edges.map((e) => e.id)]);
    let changed = false;
    c.batch(() => {
      c.elements().forEach((el) => {
        if (!wanted.has(el.id())) {
          el.remove();
          changed = true;
        }
      });
      for (const n of graph.nodes) {
        const data = { id: n.id, label: n.label, health: n.health, kind: n.kind };
        const el = c.getElementById(n.id);
        if (el.empty()) {
          c.add({ group: 'nodes', data });
          changed = true;
        } else el.data(data);
      }
      for (const e of graph.edges) {
        const data = { id: e.id, source: e.source, target: e.target, health: e.health, label: edgeLabel(e) };
        const el = c.getElementById(e.id);
        if (el.empty()) {
          c.add({ group: 'edges', data });
          changed = true;
        } else el.data(data);
      }
    });
    if (changed) {
      const started = performance.now();
      layoutGraph(c);
      const probe = window.tracemeshGraph;
      if (probe) {
        probe.layoutMs = performance.now() - started;
        probe.elements = c.elements().length;
        // cytoscape draws on the next animation frame; the frame after it has been shown.
        if (probe.firstPaintMs === undefined) requestAnimationFrame(() => requestAnimationFrame(() => (probe.firstPaintMs ??= performance.now())));
      }
    }
    c.$('.focus').removeClass('focus');
    if (focus) {
      const target = c.nodes().filter((n) => n.data('label') === focus || byId.current.get(n.id())?.service === focus);
      target.addClass('focus');
    }
  }, [graph, focus]);

  return <div ref={container} class="graph-canvas" role="img" aria-label={`Service graph: ${graph.nodes.length} nodes, ${graph.edges.length} edges. The table below lists the same calls.`} />;
}

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
            <GraphCanvas graph={graph} focus={focus} windowParam={windowParam} onHover={setHover} />
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
                    <Link href={pathsLinkFor(to, windowParam)}>Failing paths</Link>
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
