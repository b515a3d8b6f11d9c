// Small pieces every page uses: status messages (loading, empty, error), health badges,
// sparklines and a polling data hook.

import type { ComponentChildren, JSX } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import { explain } from './api.ts';
import type { Health } from './types.ts';

export type Load<T> = { state: 'loading' } | { state: 'ok'; data: T; at: number } | { state: 'error'; error: unknown; data?: T };

/**
 * Runs `fetcher` when `key` changes and then every `refreshMs` (0: once). A failed refresh
 * keeps the last data beside the error, so a blip does not blank the page.
 */
export function useData<T>(key: string, fetcher: (signal: AbortSignal) => Promise<T>, refreshMs = 0): Load<T> {
  const [load, setLoad] = useState<Load<T>>({ state: 'loading' });
  const last = useRef<T | undefined>(undefined);
  useEffect(() => {
    last.current = undefined;
    setLoad({ state: 'loading' });
    let stopped = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    let ctrl: AbortController | undefined;
    const run = async (): Promise<void> => {
      ctrl = new AbortController();
      try {
        const data = await fetcher(ctrl.signal);
        if (stopped) return;
        last.current = data;
        setLoad({ state: 'ok', data, at: Date.now() });
      } catch (error) {
        if (stopped || (error as Error).name === 'AbortError') return;
        setLoad(last.current !== undefined ? { state: 'error', error, data: last.current } : { state: 'error', error });
      }
      if (!stopped && refreshMs > 0) timer = setTimeout(() => void run(), refreshMs);
    };
    void run();
    return () => {
      stopped = true;
      ctrl?.abort();
      if (timer) clearTimeout(timer);
    };
    // fetcher is re-created each render; key says when the request changes.
  }, [key, refreshMs]);
  return load;
}

export function Loading({ what }: { what: string }): JSX.Element {
  return (
    <p class="message loading" role="status" aria-live="polite">
      Loading {what}…
    </p>
  );
}

export function ErrorMessage({ error }: { error: unknown }): JSX.Element {
  const { title, detail } = explain(error);
  return (
    <div class="message error" role="alert">
      <strong>{title}</strong>
      <p>{detail}</p>
    </div>
  );
}

export function Empty({ title, children }: { title: string; children?: ComponentChildren }): JSX.Element {
  return (
    <div class="message empty" role="status">
      <strong>{title}</strong>
      {children ? <p>{children}</p> : null}
    </div>
  );
}

export function HealthBadge({ health, label }: { health: Health; label?: string }): JSX.Element {
  return <span class={`badge health-${health}`}>{label ?? health}</span>;
}

/** A bar sparkline of failures per bucket, with a text equivalent for screen readers. */
export function Sparkline({ values, label }: { values: readonly number[]; label: string }): JSX.Element {
  const max = Math.max(1, ...values);
  const w = 96;
  const h = 24;
  const bw = values.length > 0 ? w / values.length : w;
  return (
    <svg class="sparkline" width={w} height={h} viewBox={`0 0 ${w} ${h}`} role="img" aria-label={label}>
      {values.map((v, i) => {
        const bh = Math.max(v > 0 ? 2 : 0, (v / max) * h);
        return <rect key={i} x={i * bw} y={h - bh} width={Math.max(1, bw - 1)} height={bh} />;
      })}
    </svg>
  );
}

export function WindowPicker({ value, onChange, id }: { value: string; onChange: (v: string) => void; id: string }): JSX.Element {
  return (
    <label for={id}>
      Window{' '}
      <select id={id} value={value} onChange={(e) => onChange((e.currentTarget as HTMLSelectElement).value)}>
        {['1m', '5m', '15m', '1h', '6h', '24h'].map((w) => (
          <option key={w} value={w}>
            last {w}
          </option>
        ))}
      </select>
    </label>
  );
}
