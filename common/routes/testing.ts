// Helpers for route tests: a RouteRequest from a method, target and headers.

import type { RouteRequest } from './table.ts';

export function routeRequest(method: string, target: string, headers: Readonly<Record<string, string>> = {}, grpc = false): RouteRequest {
  const q = target.indexOf('?');
  const lower = new Map(Object.entries(headers).map(([k, v]) => [k.toLowerCase(), v]));
  return {
    method,
    path: q === -1 ? target : target.slice(0, q),
    query: q === -1 ? '' : target.slice(q + 1),
    header: (name) => lower.get(name),
    grpc,
  };
}

/** A deterministic Random: cycles through `values`. */
export function sequence(...values: number[]): () => number {
  let i = 0;
  return () => values[i++ % values.length] ?? 0;
}

/** One expected redirect: the request path (to Service `echo`, port 80, from its namespace), the status and the Location. */
export interface RedirectCase {
  readonly path: string;
  readonly status: number;
  readonly location: string;
}

const redirectRoute = (name: string, rules: readonly (readonly [string, string])[]) =>
  `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: ${name}, namespace: mesh }
spec:
  parentRefs: [{ group: "", kind: Service, name: echo, port: 80 }]
  rules:
${rules.map(([prefix, redirect]) => `  - matches: [{ path: { type: PathPrefix, value: ${prefix} } }]\n    filters: [{ type: RequestRedirect, requestRedirect: ${redirect} }]`).join('\n')}
`;

/**
 * The Gateway API's mesh redirect conformance cases (conformance/tests/mesh/: httproute-redirect-scheme,
 * -port, -path, -host-and-status, httproute-additional-redirect-host-and-status, httproute-30{3,7,8}-redirect*),
 * restated as route manifests for Service `echo` in namespace `mesh` and the answers the spec
 * requires, for the matcher's unit tests and the tests through real sidecars alike. The host
 * the request names is `echo`, so an unchanged host stays `echo`.
 */
export const REDIRECT_CONFORMANCE: { readonly yaml: string; readonly cases: readonly RedirectCase[] } = {
  yaml: [
    redirectRoute('mesh-redirect-scheme', [
      ['/scheme', '{ scheme: https }'],
      ['/scheme-and-host', '{ scheme: https, hostname: example.org }'],
      ['/scheme-and-status', '{ scheme: https, statusCode: 301 }'],
      ['/scheme-and-temporary', '{ scheme: https, statusCode: 307 }'],
      ['/scheme-and-permanent', '{ scheme: https, statusCode: 308 }'],
      ['/scheme-and-host-and-status', '{ scheme: https, statusCode: 302, hostname: example.org }'],
    ]),
    redirectRoute('mesh-redirect-port', [
      ['/port', '{ port: 8083 }'],
      ['/port-and-host', '{ port: 8083, hostname: example.org }'],
      ['/port-and-status', '{ port: 8083, statusCode: 301 }'],
      ['/port-and-temporary', '{ port: 8083, statusCode: 307 }'],
      ['/port-and-permanent', '{ port: 8083, statusCode: 308 }'],
      ['/port-and-host-and-status', '{ port: 8083, hostname: example.org, statusCode: 302 }'],
    ]),
    redirectRoute('mesh-redirect-path', [
      ['/original-prefix', '{ path: { type: ReplacePrefixMatch, replacePrefixMatch: /replacement-prefix } }'],
      ['/full', '{ path: { type: ReplaceFullPath, replaceFullPath: /full-path-replacement } }'],
      ['/path-and-host', '{ hostname: example.org, path: { type: ReplacePrefixMatch, replacePrefixMatch: /replacement-prefix } }'],
      ['/path-and-status', '{ statusCode: 301, path: { type: ReplacePrefixMatch, replacePrefixMatch: /replacement-prefix } }'],
      ['/path-and-temporary', '{ statusCode: 307, path: { type: ReplacePrefixMatch, replacePrefixMatch: /replacement-prefix } }'],
      ['/path-and-permanent', '{ statusCode: 308, path: { type: ReplacePrefixMatch, replacePrefixMatch: /replacement-prefix } }'],
      ['/full-path-and-host', '{ hostname: example.org, path: { type: ReplaceFullPath, replaceFullPath: /replacement-full } }'],
      ['/full-path-and-status', '{ statusCode: 301, path: { type: ReplaceFullPath, replaceFullPath: /replacement-full } }'],
      ['/full-path-and-temporary', '{ statusCode: 307, path: { type: ReplaceFullPath, replaceFullPath: /replacement-full } }'],
      ['/full-path-and-permanent', '{ statusCode: 308, path: { type: ReplaceFullPath, replaceFullPath: /replacement-full } }'],
    ]),
    redirectRoute('mesh-redirect-host-and-status', [
      ['/hostname-redirect', '{ hostname: example.org }'],
      ['/host-and-status', '{ statusCode: 301, hostname: example.org }'],
      ['/host-and-temporary', '{ statusCode: 307, hostname: example.org }'],
      ['/host-and-permanent', '{ statusCode: 308, hostname: example.org }'],
      // httproute-additional-redirect-host-and-status
      ['/host-and-status-temporary', '{ statusCode: 307, hostname: example.org }'],
      ['/host-and-status-permanent', '{ statusCode: 308, hostname: example.org }'],
      // httproute-303-redirect-host-and-status (its path is the 307 file's, so renamed here),
      // httproute-303-redirect, httproute-307-redirect, httproute-308-redirect
      ['/host-and-status-see-other', '{ statusCode: 303, hostname: example.org }'],
      ['/redirect', '{ statusCode: 303 }'],
      ['/temporary', '{ statusCode: 307 }'],
      ['/permanent', '{ statusCode: 308 }'],
    ]),
  ].join('---\n'),
  cases: [
    { path: '/scheme', status: 302, location: 'https://echo/scheme' },
    { path: '/scheme-and-host', status: 302, location: 'https://example.org/scheme-and-host' },
    { path: '/scheme-and-status', status: 301, location: 'https://echo/scheme-and-status' },
    { path: '/scheme-and-temporary', status: 307, location: 'https://echo/scheme-and-temporary' },
    { path: '/scheme-and-permanent', status: 308, location: 'https://echo/scheme-and-permanent' },
    { path: '/scheme-and-host-and-status', status: 302, location: 'https://example.org/scheme-and-host-and-status' },
    { path: '/port', status: 302, location: 'http://echo:8083/port' },
    { path: '/port-and-host', status: 302, location: 'http://example.org:8083/port-and-host' },
    { path: '/port-and-status', status: 301, location: 'http://echo:8083/port-and-status' },
    { path: '/port-and-temporary', status: 307, location: 'http://echo:8083/port-and-temporary' },
    { path: '/port-and-permanent', status: 308, location: 'http://echo:8083/port-and-permanent' },
    { path: '/port-and-host-and-status', status: 302, location: 'http://example.org:8083/port-and-host-and-status' },
    { path: '/original-prefix/lemon', status: 302, location: 'http://echo/replacement-prefix/lemon' },
    { path: '/full/path/original', status: 302, location: 'http://echo/full-path-replacement' },
    { path: '/path-and-host', status: 302, location: 'http://example.org/replacement-prefix' },
    { path: '/path-and-status', status: 301, location: 'http://echo/replacement-prefix' },
    { path: '/path-and-temporary', status: 307, location: 'http://echo/replacement-prefix' },
    { path: '/path-and-permanent', status: 308, location: 'http://echo/replacement-prefix' },
    { path: '/full-path-and-host', status: 302, location: 'http://example.org/replacement-full' },
    { path: '/full-path-and-status', status: 301, location: 'http://echo/replacement-full' },
    { path: '/full-path-and-temporary', status: 307, location: 'http://echo/replacement-full' },
    { path: '/full-path-and-permanent', status: 308, location: 'http://echo/replacement-full' },
    { path: '/hostname-redirect', status: 302, location: 'http://example.org/hostname-redirect' },
    { path: '/host-and-status', status: 301, location: 'http://example.org/host-and-status' },
    { path: '/host-and-temporary', status: 307, location: 'http://example.org/host-and-temporary' },
    { path: '/host-and-permanent', status: 308, location: 'http://example.org/host-and-permanent' },
    { path: '/host-and-status-temporary', status: 307, location: 'http://example.org/host-and-status-temporary' },
    { path: '/host-and-status-permanent', status: 308, location: 'http://example.org/host-and-status-permanent' },
    { path: '/host-and-status-see-other', status: 303, location: 'http://example.org/host-and-status-see-other' },
    { path: '/redirect', status: 303, location: 'http://echo/redirect' },
    { path: '/temporary', status: 307, location: 'http://echo/temporary' },
    { path: '/permanent', status: 308, location: 'http://echo/permanent' },
  ],
};
