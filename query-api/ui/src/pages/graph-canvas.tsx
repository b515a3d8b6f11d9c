// The service graph's canvas: cytoscape draws the nodes and edges, with hit-testing for clicks
// and hover. It is its own chunk, loaded by the graph page in parallel with the graph's data,
// so the other pages never fetch or parse cytoscape (three quarters of the bundle).

import cytoscape from 'cytoscape';
import type { JSX } from 'preact';
import { useEffect, useRef } from 'preact/hooks';
import { ms, pct, rps } from '../format.ts';
import { layoutGraph } from '../graph-layout.ts';
import { navigate } from '../router.tsx';
import type { GraphEdge, GraphNode, MeshGraph } from '../types.ts';
import { pathsLinkFor, pathsLinkForEdge } from './graph-links.ts';

/** Beyond this many edges, edge labels show on hover only: a thousand labels are unreadable. */
const MAX_LABELLED_EDGES = 80;

function edgeLabel(e: GraphEdge): string {
  return `${rps(e.requestsPerSecond)} · ${pct(e.errorRate)} err · p99 ${ms(e.p99Ms)}`;
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

export interface GraphCanvasProps {
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

export function GraphCanvas({ graph, focus, windowParam, onHover }: GraphCanvasProps): JSX.Element {
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
      navigate(edge ? pathsLinkForEdge(byId.current.get(edge.source), byId.current.get(edge.target), windowParam) : pathsLinkFor(undefined, windowParam));
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

