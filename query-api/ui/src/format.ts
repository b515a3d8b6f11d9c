// Number, time and duration formatting shared by the pages.

export function ms(v: number | null | undefined): string {
  if (v === null || v === undefined || !Number.isFinite(v)) return '–';
  if (v >= 10_000) return `${(v / 1000).toFixed(1)} s`;
  if (v >= 100) return `${Math.round(v)} ms`;
  if (v >= 1) return `${v.toFixed(1)} ms`;
  return `${(v * 1000).toFixed(0)} µs`;
}

export function pct(rate: number): string {
  if (!Number.isFinite(rate) || rate <= 0) return '0%';
  if (rate < 0.001) return '<0.1%';
  if (rate < 0.1) return `${(rate * 100).toFixed(1)}%`;
  return `${Math.round(rate * 100)}%`;
}

export function rps(v: number): string {
  if (v >= 100) return `${Math.round(v)}/s`;
  if (v >= 1) return `${v.toFixed(1)}/s`;
  return `${v.toFixed(2)}/s`;
}

export function clock(iso: string): string {
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit' });
}

export function dateTime(iso: string): string {
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : d.toLocaleString([], { month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', second: '2-digit' });
}

export function where(l: { service?: string | null; pod: string | null; node: string | null }): string {
  return [l.service ?? '', l.pod ?? '', l.node ? `@${l.node}` : ''].filter(Boolean).join(' ');
}

/** Windows offered in the pickers (Go durations, as the API takes them). */
export const WINDOWS = ['1m', '5m', '15m', '1h', '6h', '24h'] as const;
