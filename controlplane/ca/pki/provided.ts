// An operator-provided CA ("plug-in CA" in Istio terms): a signing certificate and key, the
// chain up to a root, and the root. Everything is checked at load, so that a bad bundle fails
// at startup with a message naming the file instead of producing unverifiable certificates.

import { X509Certificate as NodeX509 } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { CA_ERROR, CaError } from '../../../common/ca/errors.ts';
import { fingerprintSha256, parseCertificates, type Signer } from '../../../common/ca/certs.ts';
import { importSigningKey } from '../../../common/ca/keys.ts';
import { x509 } from '../../../common/ca/x509.ts';

export interface ProvidedCaMaterial {
  /** PEM of the certificate that signs workload certificates: the root itself or an intermediate. */
  readonly caCertPem: string;
  /** Unencrypted PKCS#8 PEM key of `caCertPem`. */
  readonly caKeyPem: string;
  /**
   * PEM certificates between the signing certificate and the root. As in Istio's
   * `cert-chain.pem`, it may start with the signing certificate and end with the root; those
   * duplicates are dropped. Omit when the signing certificate is the root or is issued by it.
   */
  readonly certChainPem?: string;
  /** PEM of the root that workloads trust. */
  readonly rootCertPem: string;
}

/** File names of a provided CA directory, the same as Istio's `cacerts` secret. */
export const PROVIDED_CA_FILES = {
  caCert: 'ca-cert.pem',
  caKey: 'ca-key.pem',
  certChain: 'cert-chain.pem',
  root: 'root-cert.pem',
} as const;

/** Reads `ca-cert.pem`, `ca-key.pem`, `root-cert.pem` and (optional) `cert-chain.pem` from `dir`. */
export async function readProvidedCaDir(dir: string): Promise<ProvidedCaMaterial> {
  const read = async (name: string, required: boolean): Promise<string | undefined> => {
    try {
      return await readFile(join(dir, name), 'utf8');
    } catch (err) {
      if (!required && (err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw new CaError(CA_ERROR.configInvalid, `cannot read ${join(dir, name)}: ${(err as Error).message}`, { cause: err });
    }
  };
  const certChainPem = await read(PROVIDED_CA_FILES.certChain, false);
  return {
    caCertPem: (await read(PROVIDED_CA_FILES.caCert, true)) as string,
    caKeyPem: (await read(PROVIDED_CA_FILES.caKey, true)) as string,
    rootCertPem: (await read(PROVIDED_CA_FILES.root, true)) as string,
    ...(certChainPem !== undefined ? { certChainPem } : {}),
  };
}

export interface LoadedCa {
  readonly signer: Signer;
  /** Certificates after the signer up to, not including, the root. */
  readonly intermediates: readonly x509.X509Certificate[];
  readonly root: x509.X509Certificate;
}

/**
 * Parses and checks provided material: the root is a self-signed CA, every link of
 * signer → intermediates → root is issued and signed by the next, every certificate is a CA
 * and currently valid, and the key belongs to the signer. Throws `CA_CONFIG_INVALID`.
 */
export async function loadProvidedCa(
  material: ProvidedCaMaterial,
  now = new Date(),
  files: { readonly caCert: string; readonly caKey: string; readonly certChain: string; readonly root: string } = PROVIDED_CA_FILES,
): Promise<LoadedCa> {
  const one = (pem: string, what: string): x509.X509Certificate => {
    const certs = parseOrThrow(pem, what);
    if (certs.length !== 1) {
      throw new CaError(CA_ERROR.configInvalid, `${what} must hold exactly one certificate, found ${certs.length}`);
    }
    return certs[0]!;
  };
  const root = one(material.rootCertPem, files.root);
  const caCert = one(material.caCertPem, files.caCert);
  const rootFp = fingerprintSha256(root);
  const caFp = fingerprintSha256(caCert);
  const intermediates =
    material.certChainPem === undefined
      ? []
      : parseOrThrow(material.certChainPem, files.certChain).filter((c) => {
          const fp = fingerprintSha256(c);
          return fp !== rootFp && fp !== caFp;
        });
  const path = caFp === rootFp ? [root] : [caCert, ...intermediates, root];
  const nodePath = path.map((c) => new NodeX509(Buffer.from(c.rawData)));
  const nodeRoot = nodePath[nodePath.length - 1]!;
  if (!nodeRoot.checkIssued(nodeRoot) || !nodeRoot.verify(nodeRoot.publicKey)) {
    throw new CaError(CA_ERROR.configInvalid, `${files.root} is not self-signed; give the root of the chain`);
  }
  for (const [i, cert] of nodePath.entries()) {
    const name = i === 0 ? files.caCert : i === nodePath.length - 1 ? files.root : `${files.certChain} entry ${i}`;
    if (!cert.ca) throw new CaError(CA_ERROR.configInvalid, `${name} (${cert.subject}) is not a CA certificate (basicConstraints CA:true)`);
    if (cert.validFromDate > now || cert.validToDate <= now) {
      throw new CaError(CA_ERROR.configInvalid, `${name} (${cert.subject}) is valid only from ${cert.validFrom} to ${cert.validTo}`);
    }
    const issuer = nodePath[i + 1];
    if (issuer && !(cert.checkIssued(issuer) && cert.verify(issuer.publicKey))) {
      throw new CaError(
        CA_ERROR.configInvalid,
        `${name} (${cert.subject}) is not issued by the next certificate (${issuer.subject}); order ${files.certChain} from the signing certificate up to the root`,
      );
    }
  }
  const signerCert = path[0]!;
  const keyUsage = signerCert.getExtension(x509.KeyUsagesExtension);
  if (keyUsage && (keyUsage.usages & x509.KeyUsageFlags.keyCertSign) === 0) {
    throw new CaError(CA_ERROR.configInvalid, `${files.caCert} lacks the keyCertSign key usage`);
  }
  const key = await importSigningKey(material.caKeyPem, signerCert, files.caKey);
  return { signer: { cert: signerCert, ...key }, intermediates: path.slice(1, -1), root };
}

function parseOrThrow(pem: string, what: string): x509.X509Certificate[] {
  try {
    return parseCertificates(pem);
  } catch (err) {
    throw new CaError(CA_ERROR.configInvalid, `${what} is not PEM certificates: ${(err as Error).message}`, { cause: err });
  }
}
