// The tracemesh web UI: one page app served by the query API. Routes are deep links that
// alerts, Grafana data links and the CLI print: /, /graph, /paths, /paths/{id}, /search,
// /trace/{id}.

import './styles.css';
import { render, type JSX } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { GraphPage } from './pages/graph.tsx';
import { PathDetailPage, PathsPage } from './pages/paths.tsx';
import { SearchPage } from './pages/search.tsx';
import { TracePage } from './pages/trace.tsx';
import { Link, useRoute, type Route } from './router.tsx';

type Theme = 'auto' | 'light' | 'dark';

function useTheme(): [Theme, (t: Theme) => void] {
  const [theme, setTheme] = useState<Theme>(() => (localStorage.getItem('tracemesh-theme') as Theme | null) ?? 'auto');
  useEffect(() => {
    if (theme === 'auto') delete document.documentElement.dataset['theme'];
    else document.documentElement.dataset['theme'] = theme;
    localStorage.setItem('tracemesh-theme', theme);
    document.dispatchEvent(new Event('tracemesh-theme'));
  }, [theme]);
  return [theme, setTheme];
}

function decode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

function Page({ route }: { route: Route }): JSX.Element {
  const p = route.path.replace(/\/+$/, '') || '/';
  const trace = /^\/trace\/([^/]+)$/.exec(p);
  if (trace) return <TracePage key={trace[1]} route={route} traceId={decode(trace[1]!)} />;
  const path = /^\/paths\/([^/]+)$/.exec(p);
  if (path) return <PathDetailPage key={path[1]} route={route} signatureId={decode(path[1]!)} />;
  if (p === '/paths') return <PathsPage route={route} />;
  if (p === '/search') return <SearchPage route={route} />;
  if (p === '/' || p === '/graph') return <GraphPage route={route} />;
  return (
    <div class="message error" role="alert">
      <strong>No page at {route.path}</strong>
      <p>
        Try the <Link href="/">service graph</Link>.
      </p>
    </div>
  );
}

function App(): JSX.Element {
  const route = useRoute();
  const [theme, setTheme] = useTheme();
  const section = route.path.startsWith('/paths') ? 'paths' : route.path.startsWith('/search') || route.path.startsWith('/trace') ? 'search' : 'graph';
  useEffect(() => {
    if (!route.path.startsWith('/trace') && !route.path.startsWith('/search')) document.title = `${section === 'paths' ? 'failing paths' : 'service graph'} · tracemesh`;
  }, [route.path, section]);
  return (
    <>
      <a class="skip" href="#main">
        Skip to content
      </a>
      <header class="top">
        <Link href="/" class="brand">
          tracemesh
        </Link>
        <nav aria-label="Main">
          <Link href="/graph" aria-current={section === 'graph' ? 'page' : undefined}>
            Graph
          </Link>
          <Link href="/paths" aria-current={section === 'paths' ? 'page' : undefined}>
            Failing paths
          </Link>
          <Link href="/search" aria-current={section === 'search' ? 'page' : undefined}>
            Search
          </Link>
        </nav>
        <label class="theme" for="theme">
          Theme{' '}
          <select id="theme" value={theme} onChange={(e) => setTheme((e.currentTarget as HTMLSelectElement).value as Theme)}>
            <option value="auto">system</option>
            <option value="light">light</option>
            <option value="dark">dark</option>
          </select>
        </label>
      </header>
      <main id="main" tabIndex={-1}>
        <Page route={route} />
      </main>
    </>
  );
}

const root = document.getElementById('app');
if (root) {
  root.textContent = '';
  render(<App />, root);
}
