// Transparent interception: iptables `nat` rules that send an app's outbound TCP to the
// sidecar without the app knowing. Node cannot read SO_ORIGINAL_DST, so the rules keep the
// destination recoverable instead (see sidecar/README.md, "Transparent interception"):
// - HTTP ports (default 80) are REDIRECTed to the outbound port; the Host header names the
//   Service, as in explicit mode;
// - each raw-TCP destination (`address:port`) is REDIRECTed to a port of its own, so the
//   listener that accepts the connection knows where it was going.
// The sidecar's own traffic (its uid) and loopback are never redirected, so it cannot loop.

import { execFile } from 'node:child_process';
import { isIP } from 'node:net';
import { ConfigError, TracemeshError } from '../../common/errors.ts';
import { provideProgram } from '../../common/provision.ts';
import type { Logger } from '../../common/logger.ts';

/** The nat chain tracemesh owns; OUTPUT jumps to it for every TCP packet. */
export const INTERCEPT_CHAIN = 'TRACEMESH_OUTPUT';

export interface TcpRedirect {
  /** Destination IPv4 address or CIDR the app connects to (a Service's cluster IP). */
  readonly address: string;
  readonly port: number;
  /** The sidecar's listener for that destination. */
  readonly toPort: number;
}

export interface InterceptOptions {
  /** The sidecar's outbound (HTTP) port. */
  readonly outboundPort: number;
  /** uid whose connections are never redirected: the sidecar's own (Istio uses 1337). */
  readonly proxyUid: number;
  /** Destination ports carried as HTTP and redirected to the outbound port. */
  readonly httpPorts: readonly number[];
  /** Raw TCP destinations, each to its own sidecar port. */
  readonly tcp: readonly TcpRedirect[];
  /** Destinations (IPv4 CIDRs) never redirected; loopback always is excluded. */
  readonly exclude: readonly string[];
}

/** iptables failed (not installed, no CAP_NET_ADMIN, a bad rule). */
export class InterceptError extends TracemeshError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('INTERCEPT_FAILED', message, options);
    this.name = 'InterceptError';
  }
}

function checkPort(p: number, what: string): void {
  if (!Number.isInteger(p) || p < 1 || p > 65535) throw new ConfigError(`${what} must be a port from 1 to 65535, got ${p}`);
}

function checkCidr(c: string, what: string): void {
  const [addr, bits, extra] = c.split('/');
  if (extra !== undefined || addr === undefined || isIP(addr) !== 4 || (bits !== undefined && !(/^\d{1,2}$/.test(bits) && Number(bits) <= 32))) {
    throw new ConfigError(`${what} must be an IPv4 address or CIDR such as 10.96.0.0/12, got "${c}"`);
  }
}

/**
 * The `iptables-restore --noflush` input that installs the rules: the chain (created or
 * flushed), the OUTPUT jump, then exclusions, TCP destinations, HTTP ports. One atomic commit.
 */
export function interceptRules(o: InterceptOptions): string {
  checkPort(o.outboundPort, 'the outbound port');
  if (!Number.isInteger(o.proxyUid) || o.proxyUid < 0) throw new ConfigError(`the proxy uid must be a non-negative integer, got ${o.proxyUid}`);
  for (const p of o.httpPorts) checkPort(p, '--intercept-ports');
  for (const c of o.exclude) checkCidr(c, '--intercept-exclude');
  for (const t of o.tcp) {
    checkCidr(t.address, 'a TCP destination address');
    checkPort(t.port, 'a TCP destination port');
    checkPort(t.toPort, 'a TCP listener port');
  }
  const lines = ['*nat', `:${INTERCEPT_CHAIN} - [0:0]`, `-A OUTPUT -p tcp -j ${INTERCEPT_CHAIN}`];
  const rule = (r: string) => lines.push(`-A ${INTERCEPT_CHAIN} ${r}`);
  rule(`-m owner --uid-owner ${o.proxyUid} -j RETURN`);
  for (const c of ['127.0.0.0/8', ...o.exclude]) rule(`-d ${c} -j RETURN`);
  for (const t of o.tcp) rule(`-p tcp -d ${t.address} --dport ${t.port} -j REDIRECT --to-ports ${t.toPort}`);
  for (const p of o.httpPorts) rule(`-p tcp --dport ${p} -j REDIRECT --to-ports ${o.outboundPort}`);
  lines.push('COMMIT', '');
  return lines.join('\n');
}

function run(file: string, args: readonly string[], input?: string): Promise<{ code: number; stderr: string }> {
  return new Promise((resolve) => {
    const child = execFile(file, args, { timeout: 10_000 }, (err, _stdout, stderr) => {
      const code = err === null ? 0 : typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 1;
      resolve({ code, stderr: stderr.trim() || (err?.message ?? '') });
    });
    if (input !== undefined) child.stdin?.end(input);
  });
}

function programs(logger: Logger | undefined): { iptables: string; restore: string } {
  const opts = logger === undefined ? {} : { logger };
  return {
    iptables: provideProgram({ names: ['iptables'], candidates: ['/usr/sbin/iptables', '/sbin/iptables'], debianPackage: 'iptables' }, opts),
    restore: provideProgram({ names: ['iptables-restore'], candidates: ['/usr/sbin/iptables-restore', '/sbin/iptables-restore'], debianPackage: 'iptables' }, opts),
  };
}

/** Removes tracemesh's rules (the OUTPUT jump and the chain). Idempotent: missing rules are fine. */
export async function removeIntercept(logger?: Logger): Promise<void> {
  const { iptables } = programs(logger);
  // The jump may be there more than once after a crash between two installs.
  for (let i = 0; i < 8; i++) {
    if ((await run(iptables, ['-w', '-t', 'nat', '-D', 'OUTPUT', '-p', 'tcp', '-j', INTERCEPT_CHAIN])).code !== 0) break;
  }
  await run(iptables, ['-w', '-t', 'nat', '-F', INTERCEPT_CHAIN]);
  await run(iptables, ['-w', '-t', 'nat', '-X', INTERCEPT_CHAIN]);
}

/** Installs the rules (replacing earlier ones). Throws InterceptError with iptables' reason. */
export async function installIntercept(o: InterceptOptions, logger?: Logger): Promise<void> {
  const rules = interceptRules(o);
  const { restore } = programs(logger);
  await removeIntercept(logger);
  const result = await run(restore, ['-w', '--noflush'], rules);
  if (result.code !== 0) {
    const hint = /permission|not permitted/i.test(result.stderr) ? ' (interception needs root or CAP_NET_ADMIN in the pod\'s network namespace)' : '';
    throw new InterceptError(`iptables-restore failed: ${result.stderr}${hint}`);
  }
}

/** `iptables -t nat -S TRACEMESH_OUTPUT`, for the admin page and tests; undefined when not installed. */
export async function listIntercept(logger?: Logger): Promise<string[] | undefined> {
  const { iptables } = programs(logger);
  const r = await new Promise<{ ok: boolean; out: string }>((resolve) => {
    execFile(iptables, ['-w', '-t', 'nat', '-S', INTERCEPT_CHAIN], { timeout: 10_000 }, (err, stdout) => resolve({ ok: err === null, out: stdout }));
  });
  return r.ok ? r.out.split('\n').filter((l) => l !== '') : undefined;
}

/** Parses `--intercept-tcp` entries `<address>:<port>=<listener-port>`. */
export function parseTcpRedirects(entries: readonly string[]): TcpRedirect[] {
  return entries.map((e) => {
    const m = /^([0-9./]+):(\d{1,5})=(\d{1,5})$/.exec(e.trim());
    if (m === null) throw new ConfigError(`--intercept-tcp entries must be <address>:<port>=<listener-port>, e.g. 10.96.0.20:5432=15432; got "${e}"`);
    return { address: m[1] ?? '', port: Number(m[2]), toPort: Number(m[3]) };
  });
}
