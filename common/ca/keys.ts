// Key material for the CA and its clients, through WebCrypto only: P-256 generation, PKCS#8
// PEM import/export, and the signing algorithm that fits an operator-provided CA key.

import type { webcrypto } from 'node:crypto';
import { CA_ERROR, CaError } from './errors.ts';
import { x509 } from './x509.ts';

// The project compiles without the DOM lib; WebCrypto's types come from @types/node.
export type CryptoKey = webcrypto.CryptoKey;
export type CryptoKeyPair = webcrypto.CryptoKeyPair;
export type Algorithm = webcrypto.Algorithm;
export type EcdsaParams = webcrypto.EcdsaParams;
type EcKeyGenParams = webcrypto.EcKeyGenParams;
type EcKeyImportParams = webcrypto.EcKeyImportParams;
type RsaHashedImportParams = webcrypto.RsaHashedImportParams;

export const P256: EcKeyGenParams = { name: 'ECDSA', namedCurve: 'P-256' };
export const ECDSA_SHA256: EcdsaParams = { name: 'ECDSA', hash: 'SHA-256' };

/** What the CA needs to sign: a private key and the algorithm to sign with. */
export interface SigningKey {
  readonly privateKey: CryptoKey;
  readonly signingAlgorithm: EcdsaParams | Algorithm;
}

/**
 * A fresh P-256 key pair. The private key is extractable because it ends up in a TLS context
 * as PKCS#8; callers must keep it local.
 */
export async function generateP256KeyPair(): Promise<CryptoKeyPair> {
  return (await crypto.subtle.generateKey(P256, true, ['sign', 'verify'])) as CryptoKeyPair;
}

export async function exportPrivateKeyPem(key: CryptoKey): Promise<string> {
  const der = await crypto.subtle.exportKey('pkcs8', key);
  return x509.PemConverter.encode(der, 'PRIVATE KEY');
}

export async function exportPublicKeySpki(key: CryptoKey): Promise<Uint8Array> {
  return new Uint8Array(await crypto.subtle.exportKey('spki', key));
}

/**
 * Imports a PKCS#8 private key for the algorithm of the certificate it belongs to (ECDSA
 * P-256/P-384 or RSA PKCS#1 v1.5), then proves the pair matches by signing a challenge.
 * Throws `CA_CONFIG_INVALID` naming `what` when the key is unreadable, of another algorithm,
 * or does not belong to the certificate.
 */
export async function importSigningKey(keyPem: string, cert: x509.X509Certificate, what: string): Promise<SigningKey> {
  const keyAlg = cert.publicKey.algorithm as Algorithm & { namedCurve?: string };
  let importAlg: EcKeyImportParams | RsaHashedImportParams;
  let signingAlgorithm: EcdsaParams | Algorithm;
  if (keyAlg.name === 'ECDSA' && (keyAlg.namedCurve === 'P-256' || keyAlg.namedCurve === 'P-384')) {
    importAlg = { name: 'ECDSA', namedCurve: keyAlg.namedCurve };
    signingAlgorithm = { name: 'ECDSA', hash: keyAlg.namedCurve === 'P-384' ? 'SHA-384' : 'SHA-256' } as EcdsaParams;
  } else if (keyAlg.name === 'RSASSA-PKCS1-v1_5') {
    importAlg = { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' };
    signingAlgorithm = { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' } as Algorithm;
  } else {
    throw new CaError(
      CA_ERROR.configInvalid,
      `${what}: CA key algorithm ${keyAlg.name}${keyAlg.namedCurve ? ' ' + keyAlg.namedCurve : ''} is not supported; use ECDSA P-256/P-384 or RSA`,
    );
  }
  let privateKey: CryptoKey;
  try {
    const structs = x509.PemConverter.decodeWithHeaders(keyPem);
    const first = structs[0];
    if (!first || first.type !== 'PRIVATE KEY') {
      throw new Error(`expected a "PRIVATE KEY" (PKCS#8) PEM block, found ${first ? `"${first.type}"` : 'none'}`);
    }
    privateKey = await crypto.subtle.importKey('pkcs8', first.rawData, importAlg, false, ['sign']);
  } catch (err) {
    throw new CaError(
      CA_ERROR.configInvalid,
      `${what}: the private key is not a readable unencrypted PKCS#8 ${importAlg.name} key (${(err as Error).message}); convert it with \`openssl pkcs8 -topk8 -nocrypt\``,
      { cause: err },
    );
  }
  if (!(await keyMatches(privateKey, signingAlgorithm, cert))) {
    throw new CaError(CA_ERROR.configInvalid, `${what}: the private key does not belong to the CA certificate`);
  }
  return { privateKey, signingAlgorithm };
}

async function keyMatches(privateKey: CryptoKey, signingAlgorithm: Algorithm, cert: x509.X509Certificate): Promise<boolean> {
  const challenge = crypto.getRandomValues(new Uint8Array(32));
  const signature = await crypto.subtle.sign(signingAlgorithm, privateKey, challenge);
  const publicKey = await cert.publicKey.export(privateKey.algorithm as EcKeyImportParams, ['verify']);
  return crypto.subtle.verify(signingAlgorithm, publicKey, signature, challenge);
}
