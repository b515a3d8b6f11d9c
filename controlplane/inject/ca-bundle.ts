// Keeps the injection webhook's MutatingWebhookConfiguration trusting the mesh CA, as istiod
// patches its own: the API server verifies the webhook's certificate (issued by the mesh CA)
// against each webhook's `clientConfig.caBundle`, and that root exists only once the control
// plane has created or loaded its CA. On start and after every change of the trust bundle
// (a root rotated in or retired), every webhook of the named configuration whose caBundle
// differs gets the bundle, with one JSON Patch guarded by `test` operations on the
// resourceVersion and each webhook's name, so a concurrent edit is never overwritten: it is
// read again and patched again. Failures (the configuration not installed yet, no rights, the
// API down) are retried with backoff, 1 s doubling to 60 s, and logged.
// RBAC: get and patch on that one configuration (resourceNames), nothing else.

import { request as httpRequest } from 'node:http';
import { request as httpsRequest, type RequestOptions } from 'node:https';
import type { KubeConfig } from '@kubernetes/client-node';
import type { Logger } from '../../common/logger.ts';
import type { CertificateAuthority } from '../ca/pki/authority.ts';
import { escapePointerToken } from './json-patch.ts';

export const DEFAULT_WEBHOOK_CONFIG_NAME = 'tracemesh-sidecar-injector';
const PATH = '/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/';
const BASE_RETRY_MS = 1_000;
const MAX_RETRY_MS = 60_000;

interface KubeAnswer {
  readonly status: number;
  readonly body: string;
}

async function kubeRequest(kc: KubeConfig, method: string, path: string, body?: { contentType: string; text: string }): Promise<KubeAnswer> {
  const cluster = kc.getCurrentCluster();
  if (cluster === null) throw new Error('the kubeconfig has no current cluster');
  const url = new URL(cluster.server + path);
  const opts: RequestOptions = { method, headers: { accept: 'application/json', ...(body ? { 'content-type': body.contentType } : {}) } };
  await kc.applyToHTTPSOptions(opts);
  return new Promise((resolve, reject) => {
    const req = (url.protocol === 'https:' ? httpsRequest : httpRequest)(url, opts, (res) => {
      let text = '';
      res.setEncoding('utf8').on('data', (d: string) => (text += d));
      res.on('error', reject);
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
    });
    req.setTimeout(30_000, () => req.destroy(new Error(`${method} ${path}: no answer within 30 s`)));
    req.on('error', reject);
    req.end(body?.text);
  });
}

interface WebhookConfiguration {
  metadata?: { resourceVersion?: string };
  webhooks?: { name?: string; clientConfig?: { caBundle?: string } }[];
}

export interface CaBundlePatcherOptions {
  readonly kubeConfig: KubeConfig;
  readonly ca: CertificateAuthority;
  /** The MutatingWebhookConfiguration's name. */
  readonly name: string;
  readonly logger: Logger;
}

export class WebhookCaBundlePatcher {
  private readonly o: CaBundlePatcherOptions;
  private readonly logger: Logger;
  private unsubscribe: (() => void) | undefined;
  private timer: NodeJS.Timeout | undefined;
  private retryMs = BASE_RETRY_MS;
  private running: Promise<void> | undefined;
  private again = false;
  private closed = false;
  /** Times a patch was applied (for tests and the log). */
  patches = 0;
  /** The bundle version the configuration last held; undefined before the first success. */
  syncedVersion: number | undefined;

  constructor(options: CaBundlePatcherOptions) {
    this.o = options;
    this.logger = options.logger.child({ component: 'webhook-ca-bundle', configuration: options.name });
  }

  start(): void {
    this.unsubscribe = this.o.ca.onTrustBundleChange(() => this.kick());
    this.kick();
  }

  close(): void {
    this.closed = true;
    this.unsubscribe?.();
    clearTimeout(this.timer);
  }

  private kick(): void {
    if (this.closed) return;
    clearTimeout(this.timer);
    if (this.running !== undefined) {
      this.again = true;
      return;
    }
    this.running = this.sync()
      .then(
        () => {
          this.retryMs = BASE_RETRY_MS;
        },
        (err: unknown) => {
          if (this.closed) return;
          this.logger.warn('could not write the mesh root into the injection webhook configuration; retrying (until then the API server cannot call the webhook)', {
            error: String((err as Error)?.message ?? err),
            retryInMs: this.retryMs,
          });
          this.timer = setTimeout(() => this.kick(), this.retryMs);
          this.timer.unref();
          this.retryMs = Math.min(this.retryMs * 2, MAX_RETRY_MS);
        },
      )
      .finally(() => {
        this.running = undefined;
        if (this.again) {
          this.again = false;
          this.kick();
        }
      });
  }

  private async sync(): Promise<void> {
    for (let attempt = 0; attempt < 5; attempt++) {
      const bundle = this.o.ca.trustBundle();
      const caBundle = Buffer.from(bundle.pem).toString('base64');
      const path = PATH + encodeURIComponent(this.o.name);
      const got = await kubeRequest(this.o.kubeConfig, 'GET', path);
      if (got.status !== 200) throw new Error(`GET ${path}: HTTP ${got.status}: ${got.body.slice(0, 300)}`);
      const config = JSON.parse(got.body) as WebhookConfiguration;
      const webhooks = config.webhooks ?? [];
      const ops: unknown[] = [{ op: 'test', path: '/metadata/resourceVersion', value: config.metadata?.resourceVersion ?? '' }];
      webhooks.forEach((w, i) => {
        if (w.clientConfig?.caBundle === caBundle) return;
        ops.push({ op: 'test', path: `/webhooks/${i}/name`, value: w.name ?? '' });
        ops.push({ op: 'add', path: `/webhooks/${i}/clientConfig/${escapePointerToken('caBundle')}`, value: caBundle });
      });
      if (ops.length === 1) {
        this.syncedVersion = bundle.version;
        return;
      }
      const patched = await kubeRequest(this.o.kubeConfig, 'PATCH', path, { contentType: 'application/json-patch+json', text: JSON.stringify(ops) });
      // 409 Conflict / 422 for a failed test: someone changed it meanwhile; read it again.
      if (patched.status === 409 || patched.status === 422) continue;
      if (patched.status !== 200) throw new Error(`PATCH ${path}: HTTP ${patched.status}: ${patched.body.slice(0, 300)}`);
      this.patches++;
      this.syncedVersion = bundle.version;
      this.logger.info('the injection webhook configuration now trusts the mesh root', { webhooks: (ops.length - 1) / 2, bundleVersion: bundle.version });
      return;
    }
    throw new Error('the configuration kept changing while it was patched');
  }
}
