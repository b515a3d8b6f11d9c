// A small history-API router: every deep link the server serves (/trace/{id}, /paths/{id},
// /graph?service=…, /search?…) is one page of the same app. Links are real <a href>s, so they
// work with the keyboard, open in new tabs and can be copied.

import type { ComponentChildren, JSX } from 'preact';
import { useEffect, useState } from 'preact/hooks';

export interface Route {
  readonly path: string;
  readonly query: URLSearchParams;
}

const current = (): Route => ({ path: location.pathname, query: new URLSearchParams(location.search) });

const listeners = new Set<() => void>();

export function navigate(href: string, replace = false): void {
  if (replace) history.replaceState(null, '', href);
  else history.pushState(null, '', href);
  for (const l of listeners) l();
  if (!replace) window.scrollTo(0, 0);
}

export function useRoute(): Route {
  const [route, setRoute] = useState(current);
  useEffect(() => {
    const update = (): void => setRoute(current());
    listeners.add(update);
    window.addEventListener('popstate', update);
    return () => {
      listeners.delete(update);
      window.removeEventListener('popstate', update);
    };
  }, []);
  return route;
}

/** Replaces the query string of the current page (filters), keeping history short. */
export function setQuery(values: Record<string, string | undefined>): void {
  const q = new URLSearchParams(location.search);
  for (const [k, v] of Object.entries(values)) {
    if (v === undefined || v === '') q.delete(k);
    else q.set(k, v);
  }
  const s = q.toString();
  navigate(`${location.pathname}${s ? `?${s}` : ''}`, true);
}

interface LinkProps {
  readonly href: string;
  readonly children?: ComponentChildren;
  readonly class?: string;
  readonly 'aria-label'?: string;
  readonly 'aria-current'?: 'page' | undefined;
  readonly [data: `data-${string}`]: string;
}

export function Link({ href, children, ...rest }: LinkProps): JSX.Element {
  const onClick = (e: MouseEvent): void => {
    if (e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
    e.preventDefault();
    navigate(href);
  };
  return (
    <a href={href} onClick={onClick} {...rest}>
      {children}
    </a>
  );
}

export const links = {
  graph: (q: { service?: string | undefined; by?: string | undefined } = {}): string => withParams('/graph', q),
  paths: (q: { service?: string | undefined; caller?: string | undefined; pod?: string | undefined; node?: string | undefined; window?: string | undefined; reason?: string | undefined } = {}): string =>
    withParams('/paths', q),
  path: (signatureId: string): string => `/paths/${encodeURIComponent(signatureId)}`,
  trace: (traceId: string, q: { span?: string | undefined } = {}): string => withParams(`/trace/${encodeURIComponent(traceId)}`, q),
  search: (q: Record<string, string | undefined> = {}): string => withParams('/search', q),
};

function withParams(path: string, q: Record<string, string | undefined>): string {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(q)) if (v !== undefined && v !== '') p.set(k, v);
  const s = p.toString();
  return s ? `${path}?${s}` : path;
}
