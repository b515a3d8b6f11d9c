// The demo's alerting side: Debian's Alertmanager and Prometheus (when installed) on free
// ports with private configs, Prometheus loading deploy/prometheus's rules and scraping the
// outcomes component and the collector; and the report lines on failing paths and alerts.

import { fileURLToPath } from 'node:url';
import type { Logger } from '../../common/logger.ts';
import { prometheusStackInstalled, startAlertmanager, startPrometheus, type ServerHandle } from '../../outcomes/prometheus-servers.ts';

export const PROMETHEUS_RULES = fileURLToPath(new URL('../../deploy/prometheus/tracemesh-rules.yaml', import.meta.url));

/** Alertmanager when alerting is on and installed; undefined otherwise (the reason is logged). */
export async function startDemoAlertmanager(enabled: boolean, logger: Logger): Promise<ServerHandle | undefined> {
  if (!enabled) return undefined;
  if (!prometheusStackInstalled()) {
    logger.warn('Prometheus and Alertmanager are not installed; alerts are only evaluated (see /debug/alerts). Install: apt-get install prometheus prometheus-alertmanager');
    return undefined;
  }
  return startAlertmanager({ logger, allowInstall: false });
}

export async function startDemoPrometheus(alertmanager: ServerHandle, targets: Readonly<Record<string, readonly string[]>>, logger: Logger): Promise<ServerHandle> {
  return startPrometheus({ ruleFiles: [PROMETHEUS_RULES], scrape: targets, alertmanagerUrl: alertmanager.url, interval: '5s', logger, allowInstall: false });
}

interface PathsBody {
  paths: { signatureId: string; signature: string; failures: number; requests: number; errorRate: number; rootCauses: { pod: string | null; node: string | null; reason: string; share: number }[]; exemplars: string[] }[];
}

/** One line per top failing path of the last 5 minutes, from the failing-path API. */
export async function failingPathLines(queryUrl: string, limit = 3): Promise<string[]> {
  try {
    const res = await fetch(`${queryUrl}/api/v1/paths?lookback=5m&limit=${limit}`, { signal: AbortSignal.timeout(5000) });
    if (!res.ok) return [];
    const body = (await res.json()) as PathsBody;
    return body.paths.map((p) => {
      const rc = p.rootCauses[0];
      const where = rc ? `${rc.pod ?? '?'}@${rc.node ?? '?'} ${rc.reason} (${Math.round(rc.share * 100)}%)` : '?';
      return `${p.failures}/${p.requests} failed (${(p.errorRate * 100).toFixed(1)}%)  ${p.signature}  ◀ ${where}  e.g. ${p.exemplars[0] ?? ''}  [${p.signatureId}]`;
    });
  } catch {
    return [];
  }
}

/** The names of the alerts active in Alertmanager, with counts. */
export async function activeAlerts(alertmanagerUrl: string): Promise<string[]> {
  try {
    const res = await fetch(`${alertmanagerUrl}/api/v2/alerts?active=true`, { signal: AbortSignal.timeout(5000) });
    if (!res.ok) return [];
    const alerts = (await res.json()) as { labels: Record<string, string> }[];
    const counts = new Map<string, number>();
    for (const a of alerts) {
      const name = a.labels['alertname'] ?? '?';
      const at = a.labels['root_cause_pod'] ?? a.labels['root_cause_node'] ?? a.labels['destination_workload'];
      const key = at ? `${name}(${at})` : name;
      counts.set(key, (counts.get(key) ?? 0) + 1);
    }
    return [...counts].map(([k, n]) => (n > 1 ? `${k}×${n}` : k));
  } catch {
    return [];
  }
}
