// Abuse suite for the control plane's CA port (15012): one identity looping on
// CreateCertificate is refused with RESOURCE_EXHAUSTED (CA_RATE_LIMITED) once past its burst,
// counted, while another identity is still signed at once; and its bucket refills.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Registry } from 'prom-client';
import { CA_ERROR, CaError } from '../../common/ca/errors.ts';
import { silentLogger } from '../../common/logger.ts';
import { SigningRateLimiter } from '../../controlplane/ca/server/rate-limit.ts';
import { startTestCa, type TestCa } from '../../controlplane/ca/testing.ts';
import { timed } from './support/processes.ts';

const registry = new Registry();
let t: TestCa;

before(async () => {
  t = await startTestCa({ server: { rateLimiter: new SigningRateLimiter({ burst: 3, perMinute: 120, maxIdentities: 100 }, { logger: silentLogger, registry }) } });
});
after(() => t?.close());

void describe('CA under a signing flood', () => {
  void it('one identity past its burst gets CA_RATE_LIMITED at once; another identity is signed meanwhile', async () => {
    const web = t.client('default', 'web');
    const outcomes = await Promise.allSettled(Array.from({ length: 10 }, () => web.requestCertificate()));
    const ok = outcomes.filter((o) => o.status === 'fulfilled').length;
    const limited = outcomes.filter((o) => o.status === 'rejected' && o.reason instanceof CaError && o.reason.code === CA_ERROR.rateLimited).length;
    assert.equal(ok, 3, 'the burst is signed');
    assert.equal(limited, 7, `the rest is refused as rate-limited: ${outcomes.filter((o) => o.status === 'rejected').map((o) => String((o as PromiseRejectedResult).reason)).join('; ')}`);

    const { ms } = await timed(() => t.client('default', 'api').requestCertificate());
    assert.ok(ms < 2_000, `another identity was signed in ${Math.round(ms)} ms`);
    const counted = (await registry.getSingleMetric('tracemesh_ca_admission_refusals_total')!.get()).values.find((v) => v.labels['reason'] === 'rate')?.value;
    assert.equal(counted, 7);
  });

  void it('the bucket refills: 2 a second at 120 a minute', async () => {
    const web = t.client('default', 'web');
    const deadline = Date.now() + 5_000;
    for (;;) {
      try {
        await web.requestCertificate();
        return;
      } catch (err) {
        if (!(err instanceof CaError && err.code === CA_ERROR.rateLimited) || Date.now() > deadline) throw err;
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  });
});
