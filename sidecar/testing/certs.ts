// Mesh certificates made in-process for unit tests: a root, and workload leaves with a SPIFFE
// ID that may be expired or signed by another root. Not part of the runtime.

import { certToPem, createRootCertificate, issueLeafCertificate, type Signer } from '../../common/ca/certs.ts';
import { exportPrivateKeyPem, generateP256KeyPair } from '../../common/ca/keys.ts';
import { parseSpiffeId } from '../../common/spiffe.ts';
import type { IdentityMaterial } from '../identity/identity.ts';

export interface TestRoot {
  readonly signer: Signer;
  readonly pem: string;
}

export async function makeRoot(trustDomain = 'cluster.local'): Promise<TestRoot> {
  const signer = await createRootCertificate({ trustDomain });
  return { signer, pem: certToPem(signer.cert) };
}

/** A workload identity for `spiffeId` issued by `root`, trusting `trust` (default: `root`). */
export async function makeIdentity(
  root: TestRoot,
  spiffeId: string,
  o: { readonly expired?: boolean; readonly lifetimeMs?: number; readonly trust?: readonly TestRoot[] } = {},
): Promise<IdentityMaterial> {
  const keys = await generateP256KeyPair();
  const now = Date.now();
  const lifetime = o.lifetimeMs ?? 3_600_000;
  const cert = await issueLeafCertificate({
    signer: root.signer,
    publicKey: keys.publicKey,
    identity: parseSpiffeId(spiffeId),
    notBefore: new Date(o.expired === true ? now - 2 * lifetime : now - 60_000),
    notAfter: new Date(o.expired === true ? now - lifetime : now + lifetime),
  });
  return {
    certChainPem: certToPem(cert),
    privateKeyPem: await exportPrivateKeyPem(keys.privateKey),
    trustBundlePem: (o.trust ?? [root]).map((r) => r.pem),
  };
}
