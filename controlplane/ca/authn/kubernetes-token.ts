// Kubernetes service-account tokens, checked by the API server's TokenReview API
// (authentication.k8s.io/v1), over plain node:https. @kubernetes/client-node is a dependency now; moving this call onto it is open work.

import { readFile } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { z } from 'zod';
import { CA_ERROR, CaError } from '../../../common/ca/errors.ts';
import { isValidNamespace, isValidServiceAccount, isValidTrustDomain } from '../../../common/spiffe.ts';
import { bearerToken, missingCredential, type Authenticator } from './authenticator.ts';

export const TOKEN_REVIEW_PATH = '/apis/authentication.k8s.io/v1/tokenreviews';
const SERVICE_ACCOUNT_PREFIX = 'system:serviceaccount:';
const MAX_RESPONSE_BYTES = 1024 * 1024;

export interface KubernetesTokenReviewOptions {
  readonly trustDomain: string;
  /** e.g. `https://kubernetes.default.svc`. http:// only for a local `kubectl proxy`. */
  readonly apiServerUrl: string;
  /** PEM CA bundle for the API server's certificate; the system roots when omitted. */
  readonly caCertPem?: string;
  /**
   * The control plane's own bearer token for the API server. A function is called per review,
   * so that a projected token file that the kubelet rotates is re-read.
   */
  readonly credentials: string | (() => string | Promise<string>);
  /**
   * Audiences the workload token must be valid for (e.g. `["tracemesh-ca"]`). Empty or absent
   * means the API server's default audience.
   */
  readonly audiences?: readonly string[];
  /** Per-review timeout. Default 5s. */
  readonly timeoutMs?: number;
}

/** The TokenReview status fields this authenticator reads; the rest of the object is ignored. */
const tokenReviewResponse = z.object({
  apiVersion: z.string().optional(),
  kind: z.string().optional(),
  status: z
    .object({
      authenticated: z.boolean().optional(),
      user: z.object({ username: z.string().optional() }).loose().optional(),
      audiences: z.array(z.string()).optional(),
      error: z.string().optional(),
    })
    .loose()
    .optional(),
});

/**
 * Accepts a workload's service-account JWT when the API server reports it authenticated, for
 * a `system:serviceaccount:<ns>:<sa>` user, and (if audiences are configured) for at least one
 * of them. The identity is `spiffe://<trust-domain>/ns/<ns>/sa/<sa>`.
 */
export function kubernetesTokenAuthenticator(options: KubernetesTokenReviewOptions): Authenticator {
  if (!isValidTrustDomain(options.trustDomain)) {
    throw new CaError(CA_ERROR.configInvalid, `kubernetes authenticator: trust domain "${options.trustDomain}" is invalid`);
  }
  let url: URL;
  try {
    url = new URL(TOKEN_REVIEW_PATH, options.apiServerUrl);
  } catch (err) {
    throw new CaError(CA_ERROR.configInvalid, `kubernetes API server URL "${options.apiServerUrl}" is not a URL`, { cause: err });
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') {
    throw new CaError(CA_ERROR.configInvalid, `kubernetes API server URL must be https://, got "${options.apiServerUrl}"`);
  }
  const audiences = options.audiences ?? [];
  const timeoutMs = options.timeoutMs ?? 5_000;
  const unavailable = (message: string, cause?: unknown): CaError =>
    new CaError(CA_ERROR.authUnavailable, `kubernetes: ${message}`, cause === undefined ? undefined : { cause });

  return {
    name: 'kubernetes',
    async authenticate(metadata) {
      const token = bearerToken(metadata);
      if (token === undefined) throw missingCredential('kubernetes');
      const own = typeof options.credentials === 'function' ? await options.credentials() : options.credentials;
      const body = JSON.stringify({
        apiVersion: 'authentication.k8s.io/v1',
        kind: 'TokenReview',
        spec: { token, ...(audiences.length > 0 ? { audiences } : {}) },
      });
      let response: { status: number; body: string };
      try {
        response = await post(url, body, own, options.caCertPem, timeoutMs);
      } catch (err) {
        throw unavailable(`TokenReview request to ${url.origin} failed: ${(err as Error).message}`, err);
      }
      if (response.status === 401 || response.status === 403) {
        throw unavailable(
          `the API server refused the control plane's own TokenReview request (HTTP ${response.status}); grant it system:auth-delegator`,
        );
      }
      if (response.status !== 200 && response.status !== 201) {
        throw unavailable(`TokenReview answered HTTP ${response.status}`);
      }
      let review: z.infer<typeof tokenReviewResponse>;
      try {
        review = tokenReviewResponse.parse(JSON.parse(response.body));
      } catch (err) {
        throw unavailable(`TokenReview answer is not a TokenReview object: ${(err as Error).message}`, err);
      }
      const status = review.status;
      if (status?.authenticated !== true) {
        throw new CaError(CA_ERROR.authFailed, `kubernetes: the token was not authenticated${status?.error ? ` (${status.error})` : ''}`);
      }
      if (audiences.length > 0 && !(status.audiences ?? []).some((a) => audiences.includes(a))) {
        throw new CaError(CA_ERROR.authFailed, `kubernetes: the token is not valid for audience ${audiences.join(' or ')}`);
      }
      const username = status.user?.username ?? '';
      const rest = username.startsWith(SERVICE_ACCOUNT_PREFIX) ? username.slice(SERVICE_ACCOUNT_PREFIX.length).split(':') : [];
      const [namespace, serviceAccount] = rest;
      if (
        rest.length !== 2 ||
        namespace === undefined ||
        serviceAccount === undefined ||
        !isValidNamespace(namespace) ||
        !isValidServiceAccount(serviceAccount)
      ) {
        throw new CaError(CA_ERROR.authFailed, `kubernetes: "${username.slice(0, 200)}" is not a service account; only workload tokens are accepted`);
      }
      return { spiffeId: { trustDomain: options.trustDomain, namespace, serviceAccount }, authenticator: 'kubernetes' };
    },
  };
}

/** Where a pod finds its API server and credentials (the usual in-cluster paths). */
export const IN_CLUSTER = {
  tokenFile: '/var/run/secrets/kubernetes.io/serviceaccount/token',
  caFile: '/var/run/secrets/kubernetes.io/serviceaccount/ca.crt',
} as const;

/**
 * Options for running inside a pod: API server from KUBERNETES_SERVICE_HOST/PORT, the pod's
 * CA file, and its token file re-read per review. Throws `CA_CONFIG_INVALID` outside a cluster.
 */
export async function inClusterTokenReviewOptions(
  trustDomain: string,
  audiences: readonly string[] = [],
  env: NodeJS.ProcessEnv = process.env,
): Promise<KubernetesTokenReviewOptions> {
  const host = env['KUBERNETES_SERVICE_HOST'];
  const port = env['KUBERNETES_SERVICE_PORT'] ?? '443';
  if (!host) {
    throw new CaError(CA_ERROR.configInvalid, 'KUBERNETES_SERVICE_HOST is not set: not running in a pod; configure the API server URL explicitly');
  }
  let caCertPem: string;
  try {
    caCertPem = await readFile(IN_CLUSTER.caFile, 'utf8');
  } catch (err) {
    throw new CaError(CA_ERROR.configInvalid, `cannot read ${IN_CLUSTER.caFile}: ${(err as Error).message}`, { cause: err });
  }
  return {
    trustDomain,
    apiServerUrl: `https://${host.includes(':') ? `[${host}]` : host}:${port}`,
    caCertPem,
    credentials: async () => (await readFile(IN_CLUSTER.tokenFile, 'utf8')).trim(),
    audiences,
  };
}

function post(
  url: URL,
  body: string,
  token: string,
  ca: string | undefined,
  timeoutMs: number,
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const options = {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        accept: 'application/json',
        'content-length': Buffer.byteLength(body),
        ...(token ? { authorization: `Bearer ${token}` } : {}),
      },
      timeout: timeoutMs,
      ...(ca !== undefined ? { ca } : {}),
    };
    const req = (url.protocol === 'https:' ? httpsRequest : httpRequest)(url, options, (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size > MAX_RESPONSE_BYTES) {
          req.destroy(new Error(`response larger than ${MAX_RESPONSE_BYTES} bytes`));
          return;
        }
        chunks.push(chunk);
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs}ms`)));
    req.on('error', reject);
    req.end(body);
  });
}
