// PKCS#10 validation. The CSR contributes only its public key: the identity comes from the
// caller's credential, and a CSR that asks for a different identity is refused outright.

import { CA_ERROR, CaError } from '../../../common/ca/errors.ts';
import type { Algorithm } from '../../../common/ca/keys.ts';
import { formatSpiffeId, type SpiffeId } from '../../../common/spiffe.ts';
import { x509 } from '../../../common/ca/x509.ts';

/** A PEM CSR larger than this is refused before parsing; a P-256 CSR is well under 1 KiB. */
export const MAX_CSR_PEM_BYTES = 16 * 1024;
const OID_SUBJECT_ALT_NAME = '2.5.29.17';

/**
 * Parses and checks a CSR for `identity` and returns its public key. Throws `CSR_INVALID` when
 * the PEM is not one CERTIFICATE REQUEST, the key is not EC P-256 or the self-signature fails,
 * and `IDENTITY_MISMATCH` when the CSR carries a URI SAN other than `identity`. Subject and
 * non-URI SANs are ignored: they never reach the certificate.
 */
export async function validateCsr(csrPem: string, identity: SpiffeId): Promise<x509.PublicKey> {
  const csr = parseCsr(csrPem);
  const alg = csr.publicKey.algorithm as Algorithm & { namedCurve?: string };
  if (alg.name !== 'ECDSA' || alg.namedCurve !== 'P-256') {
    throw new CaError(
      CA_ERROR.csrInvalid,
      `the CSR key is ${alg.name}${alg.namedCurve ? ' ' + alg.namedCurve : ''}; workload keys must be EC P-256`,
    );
  }
  let signatureOk = false;
  try {
    signatureOk = await csr.verify();
  } catch (err) {
    throw new CaError(CA_ERROR.csrInvalid, `the CSR signature cannot be checked: ${(err as Error).message}`, { cause: err });
  }
  if (!signatureOk) {
    throw new CaError(CA_ERROR.csrInvalid, 'the CSR self-signature does not verify; sign it with the key it carries');
  }
  const granted = formatSpiffeId(identity);
  for (const uri of requestedUris(csr)) {
    if (uri !== granted) {
      throw new CaError(
        CA_ERROR.identityMismatch,
        `the CSR asks for ${JSON.stringify(uri.slice(0, 300))} but the credential proves ${granted}; request your own identity or leave the URI SAN out`,
      );
    }
  }
  return csr.publicKey;
}

function parseCsr(csrPem: string): x509.Pkcs10CertificateRequest {
  if (Buffer.byteLength(csrPem, 'utf8') > MAX_CSR_PEM_BYTES) {
    throw new CaError(CA_ERROR.csrInvalid, `the CSR is larger than ${MAX_CSR_PEM_BYTES} bytes`);
  }
  try {
    const blocks = x509.PemConverter.decodeWithHeaders(csrPem);
    if (blocks.length !== 1) throw new Error(`expected one PEM block, found ${blocks.length}`);
    const block = blocks[0]!;
    if (block.type !== 'CERTIFICATE REQUEST' && block.type !== 'NEW CERTIFICATE REQUEST') {
      throw new Error(`expected a CERTIFICATE REQUEST PEM block, found "${block.type}"`);
    }
    const csr = new x509.Pkcs10CertificateRequest(block.rawData);
    // Decode the parts used later now, so that malformed contents fail here as CSR_INVALID.
    void csr.publicKey.algorithm;
    requestedUris(csr);
    return csr;
  } catch (err) {
    throw new CaError(CA_ERROR.csrInvalid, `the CSR is not a PEM-encoded PKCS#10 request: ${(err as Error).message}`, {
      cause: err,
    });
  }
}

function requestedUris(csr: x509.Pkcs10CertificateRequest): string[] {
  const uris: string[] = [];
  for (const ext of csr.getExtensions(OID_SUBJECT_ALT_NAME)) {
    const san = ext instanceof x509.SubjectAlternativeNameExtension ? ext : new x509.SubjectAlternativeNameExtension(ext.rawData);
    for (const name of san.names.items) if (name.type === 'url') uris.push(name.value);
  }
  return uris;
}
