// The sidecar injection webhook: a mutating admission webhook (admission.k8s.io/v1) served by
// the control plane over HTTPS, its certificate issued by the mesh CA (renewed like the CA
// port's own). The kube API server POSTs an AdmissionReview for every pod CREATE that the
// MutatingWebhookConfiguration (deploy/kubernetes/25-injection-webhook.yaml) selects; the
// answer allows the pod and, when it is to be injected, carries a base64 JSONPatch made by the
// same `injectPod` as `tracemesh inject`, so the webhook and the CLI produce the same pod.
//
// Who is injected (the webhook checks again what the configuration's selectors already chose,
// so a hand-made configuration cannot inject a pod that opted out):
// - a pod labelled or annotated `sidecar.tracemesh.io/inject: "false"`: never;
// - a namespace labelled `tracemesh.io/injection: disabled`: never (it wins over the pod);
// - a pod labelled `sidecar.tracemesh.io/inject: "true"`: yes;
// - a pod in a namespace labelled `tracemesh.io/injection: enabled`: yes;
// - otherwise not, when the control plane knows the namespace's labels (Kubernetes discovery);
//   when it does not, the API server's selectors decided and the pod is injected.
// A pod that was selected but cannot be injected (no TCP containerPort, hostNetwork) is
// allowed unchanged with an admission warning saying why, which kubectl prints.

import { createServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Counter, type Registry } from 'prom-client';
import type { Logger } from '../../common/logger.ts';
import { CONTROL_PLANE_NAMESPACE, CONTROL_PLANE_SERVICE_ACCOUNT } from '../../common/ca/constants.ts';
import type { CertificateAuthority } from '../ca/pki/authority.ts';
import { ServingIdentity } from '../ca/server/serving-identity.ts';
import { createJsonPatch } from './json-patch.ts';
import { INJECT_ANNOTATION, injectPod, type InjectOptions, type PodTemplateLike } from './inject.ts';

export const WEBHOOK_PATH = '/inject';
export const NAMESPACE_INJECTION_LABEL = 'tracemesh.io/injection';
export const DEFAULT_WEBHOOK_PORT = 15017;
/** Largest AdmissionReview accepted (the API server's own request limit is 3 MiB). */
const MAX_BODY_BYTES = 8 * 1024 * 1024;

type Labels = Readonly<Record<string, string>>;

export type InjectionDecision = { readonly inject: true; readonly why: string } | { readonly inject: false; readonly why: string };

/** Whether a pod is to be injected; see the module comment. `namespaceLabels` undefined: not known here. */
export function decideInjection(pod: PodTemplateLike, namespaceLabels: Labels | undefined): InjectionDecision {
  const podSays = pod.metadata?.labels?.[INJECT_ANNOTATION] ?? pod.metadata?.annotations?.[INJECT_ANNOTATION];
  if (podSays === 'false') return { inject: false, why: `the pod has ${INJECT_ANNOTATION}: "false"` };
  const nsSays = namespaceLabels?.[NAMESPACE_INJECTION_LABEL];
  if (nsSays === 'disabled') return { inject: false, why: `its namespace has ${NAMESPACE_INJECTION_LABEL}: disabled` };
  if (podSays === 'true') return { inject: true, why: `the pod has ${INJECT_ANNOTATION}: "true"` };
  if (nsSays === 'enabled') return { inject: true, why: `its namespace has ${NAMESPACE_INJECTION_LABEL}: enabled` };
  if (namespaceLabels === undefined) return { inject: true, why: 'selected by the webhook configuration (namespace labels not known here)' };
  return { inject: false, why: `neither the pod (${INJECT_ANNOTATION}: "true") nor its namespace (${NAMESPACE_INJECTION_LABEL}: enabled) opted in` };
}

export interface AdmissionOptions {
  readonly inject: InjectOptions;
  /** Labels of a namespace, or undefined when not known (no Kubernetes discovery, or not listed yet). */
  readonly namespaceLabels?: (namespace: string) => Labels | undefined;
}

export interface AdmissionReviewResponse {
  readonly apiVersion: 'admission.k8s.io/v1';
  readonly kind: 'AdmissionReview';
  readonly response: {
    readonly uid: string;
    readonly allowed: true;
    readonly patchType?: 'JSONPatch';
    readonly patch?: string;
    readonly warnings?: readonly string[];
  };
}

export class AdmissionReviewError extends Error {}

interface AdmissionRequest {
  uid: string;
  kind?: { group?: string; version?: string; kind?: string };
  namespace?: string;
  operation?: string;
  object?: unknown;
}

export type AdmissionOutcome = { readonly result: 'injected' | 'skipped'; readonly object: string; readonly why: string };

/** The service a pod serves: its app labels, else its name, else its owner's name. */
function serviceOf(pod: PodTemplateLike & { metadata?: { generateName?: string; ownerReferences?: { kind?: string; name?: string }[] } }): string {
  const labels = pod.metadata?.labels ?? {};
  const fromLabels = labels['app.kubernetes.io/name'] ?? labels['app'];
  if (fromLabels !== undefined && fromLabels !== '') return fromLabels;
  const owner = pod.metadata?.ownerReferences?.[0];
  if (owner?.name !== undefined) return owner.kind === 'ReplicaSet' ? owner.name.replace(/-[a-z0-9]+$/, '') : owner.name;
  return pod.metadata?.name ?? pod.metadata?.generateName?.replace(/-+$/, '') ?? 'unknown';
}

/**
 * Answers one AdmissionReview (the parsed body). Throws AdmissionReviewError when the body is
 * not an admission.k8s.io/v1 AdmissionReview with a request uid (the HTTP answer is then 400).
 */
export function reviewAdmission(body: unknown, options: AdmissionOptions): { review: AdmissionReviewResponse; outcome: AdmissionOutcome } {
  const b = body as { apiVersion?: unknown; kind?: unknown; request?: AdmissionRequest } | null;
  if (typeof b !== 'object' || b === null || b.kind !== 'AdmissionReview') throw new AdmissionReviewError('the body is not an AdmissionReview');
  if (b.apiVersion !== 'admission.k8s.io/v1') throw new AdmissionReviewError(`AdmissionReview ${String(b.apiVersion)} is not supported; list only v1 in admissionReviewVersions`);
  const req = b.request;
  if (typeof req !== 'object' || req === null || typeof req.uid !== 'string' || req.uid === '') throw new AdmissionReviewError('the AdmissionReview has no request.uid');
  const answer = (extra: Partial<AdmissionReviewResponse['response']>): AdmissionReviewResponse => ({
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    response: { uid: req.uid, allowed: true, ...extra },
  });
  const pod = req.object as (PodTemplateLike & { kind?: string; metadata?: { name?: string; generateName?: string } }) | undefined;
  const namespace = req.namespace ?? '';
  const object = `Pod ${namespace}/${pod?.metadata?.name ?? pod?.metadata?.generateName ?? '(no name)'}`;
  if (req.kind?.kind !== 'Pod' || (req.kind.group ?? '') !== '' || req.operation !== 'CREATE' || typeof pod !== 'object' || pod === null) {
    return { review: answer({}), outcome: { result: 'skipped', object, why: `not a Pod CREATE (${req.kind?.kind ?? '?'} ${req.operation ?? '?'})` } };
  }
  const decision = decideInjection(pod, options.namespaceLabels?.(namespace));
  if (!decision.inject) return { review: answer({}), outcome: { result: 'skipped', object, why: decision.why } };
  const injected = structuredClone(pod);
  const result = injectPod(injected, serviceOf(injected), options.inject);
  if (!result.injected) {
    const why = result.reason;
    const warnings = why === 'already injected' ? undefined : [`tracemesh: the sidecar was not injected: ${why}`];
    return { review: answer(warnings ? { warnings } : {}), outcome: { result: 'skipped', object, why } };
  }
  const patch = Buffer.from(JSON.stringify(createJsonPatch(pod, injected))).toString('base64');
  return { review: answer({ patchType: 'JSONPatch', patch }), outcome: { result: 'injected', object, why: decision.why } };
}

export interface InjectionWebhookOptions extends AdmissionOptions {
  readonly ca: CertificateAuthority;
  /** Default 127.0.0.1; in a cluster 0.0.0.0 (the API server calls the Service). */
  readonly host?: string;
  /** Default 15017 (Istio's); 0 picks one. */
  readonly port?: number;
  /** SANs of the serving certificate. Default `localhost` and the control plane Service's names. */
  readonly dnsNames?: readonly string[];
  readonly ipAddresses?: readonly string[];
  readonly metrics?: Registry;
  readonly logger: Logger;
}

export interface InjectionWebhook {
  /** `https://host:port/inject`. */
  readonly url: string;
  readonly port: number;
  /** The serving certificate's chain as sent (leaf first) and the root it chains to. */
  serving(): { certChainPem: string; rootCertPem: string } | undefined;
  close(): Promise<void>;
}

const SERVICE_DNS = `${CONTROL_PLANE_SERVICE_ACCOUNT}.${CONTROL_PLANE_NAMESPACE}.svc`;

export async function startInjectionWebhook(options: InjectionWebhookOptions): Promise<InjectionWebhook> {
  const logger = options.logger.child({ component: 'injection-webhook' });
  const identity = new ServingIdentity(options.ca, {
    identity: { trustDomain: options.ca.trustDomain, namespace: CONTROL_PLANE_NAMESPACE, serviceAccount: CONTROL_PLANE_SERVICE_ACCOUNT },
    dnsNames: options.dnsNames ?? ['localhost', SERVICE_DNS, `${SERVICE_DNS}.cluster.local`],
    ipAddresses: options.ipAddresses ?? ['127.0.0.1', '::1'],
    logger,
  });
  await identity.start();
  const first = identity.current!;
  const requests =
    options.metrics === undefined
      ? undefined
      : new Counter({ name: 'tracemesh_injection_requests_total', help: 'AdmissionReviews answered by the injection webhook, by result (injected, skipped, rejected)', labelNames: ['result'], registers: [options.metrics] });

  const server: Server = createServer({ key: first.privateKeyPem, cert: first.certChainPem, minVersion: 'TLSv1.2' }, (req, res) => {
    handle(req, res).catch((err: unknown) => {
      logger.error('injection webhook request failed', { err });
      if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain' }).end('internal error\n');
    });
  });
  server.requestTimeout = 30_000;
  server.headersTimeout = 10_000;
  identity.addIdentityCertificateListener((update) => {
    if (update !== null) server.setSecureContext({ key: update.privateKey, cert: update.certificate, minVersion: 'TLSv1.2' });
  });

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?')[0];
    const text = (status: number, body: string): void => void res.writeHead(status, { 'content-type': 'text/plain' }).end(body + '\n');
    if (path === '/ready' && req.method === 'GET') return text(200, 'ready');
    if (path !== WEBHOOK_PATH) return text(404, `not found; the webhook is POST ${WEBHOOK_PATH}`);
    if (req.method !== 'POST') return text(405, `POST an AdmissionReview to ${WEBHOOK_PATH}`);
    if (!/^application\/json\b/i.test(req.headers['content-type'] ?? '')) return text(415, 'the AdmissionReview must be application/json');
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const c of req) {
      size += (c as Buffer).length;
      if (size > MAX_BODY_BYTES) {
        requests?.inc({ result: 'rejected' });
        res.setHeader('connection', 'close');
        return text(413, `AdmissionReview over ${MAX_BODY_BYTES} bytes`);
      }
      chunks.push(c as Buffer);
    }
    let body: unknown;
    try {
      body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
    } catch {
      requests?.inc({ result: 'rejected' });
      return text(400, 'the body is not JSON');
    }
    let answered: ReturnType<typeof reviewAdmission>;
    try {
      answered = reviewAdmission(body, options);
    } catch (err) {
      if (!(err instanceof AdmissionReviewError)) throw err;
      requests?.inc({ result: 'rejected' });
      logger.warn('injection webhook: bad AdmissionReview', { reason: err.message });
      return text(400, err.message);
    }
    requests?.inc({ result: answered.outcome.result });
    logger.info(answered.outcome.result === 'injected' ? 'sidecar injected' : 'pod left alone', { object: answered.outcome.object, why: answered.outcome.why });
    const out = JSON.stringify(answered.review);
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(out) }).end(out);
  }

  const host = options.host ?? '127.0.0.1';
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? DEFAULT_WEBHOOK_PORT, host, () => {
      server.off('error', reject);
      resolve();
    });
  }).catch((err: unknown) => {
    identity.close();
    throw err;
  });
  const port = (server.address() as AddressInfo).port;
  const urlHost = host.includes(':') ? `[${host}]` : host === '0.0.0.0' ? '127.0.0.1' : host;
  const url = `https://${urlHost}:${port}${WEBHOOK_PATH}`;
  logger.info('injection webhook listening', { url });
  let closing: Promise<void> | undefined;
  return {
    url,
    port,
    serving: () => {
      const c = identity.current;
      return c === undefined ? undefined : { certChainPem: c.certChainPem, rootCertPem: c.rootCertPem };
    },
    close() {
      closing ??= new Promise<void>((resolve) => {
        identity.close();
        server.close(() => resolve());
        server.closeAllConnections();
      });
      return closing;
    },
  };
}
