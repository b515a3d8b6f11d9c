// The sidecar's side of the CA: make a P-256 key locally, send only a CSR, check what comes
// back, and follow the trust bundle. The private key never leaves this process.

import { X509Certificate } from 'node:crypto';
import { isIP } from 'node:net';
import { checkServerIdentity, type PeerCertificate } from 'node:tls';
import * as grpc from '@grpc/grpc-js';
import { CA_ERROR, CaError, type CaErrorCode } from './errors.ts';
import { parseCertificates } from './certs.ts';
import { ECDSA_SHA256, exportPrivateKeyPem, exportPublicKeySpki, generateP256KeyPair } from './keys.ts';
import { spiffeIdFromCertificate, formatSpiffeId, parseSpiffeId, uriSans } from '../spiffe.ts';
import { x509 } from './x509.ts';
import {
  CertificateServiceClient,
  TrustBundleServiceClient,
  type CreateCertificateRequest,
  type CreateCertificateResponse,
  type TrustBundleMessage,
} from './proto.ts';
import { ERROR_CODE_METADATA_KEY } from './constants.ts';


export type CaClientTransport =
  | {
      readonly kind: 'tls';
      /** PEM roots to verify the CA server with: the mesh trust bundle. */
      readonly rootCertsPem: string;
      /**
       * The SPIFFE ID the server must present (e.g. `spiffe://cluster.local/ns/tracemesh-system/
       * sa/tracemesh-controlplane`). When set it replaces the host name check.
       */
      readonly serverSpiffeId?: string;
      /** TLS client certificate (leaf + intermediates) and key, for renewal over mTLS. */
      readonly clientCertificate?: { readonly certChainPem: string; readonly privateKeyPem: string };
    }
  | { readonly kind: 'plaintext' };

export interface CaClientOptions {
  /** `host:port` of the CA. */
  readonly address: string;
  readonly transport: CaClientTransport;
  /**
   * Bearer token sent as `authorization` metadata; a function is called per request so that a
   * rotated token file is re-read. Omit to rely on the TLS client certificate alone.
   */
  readonly token?: string | (() => string | Promise<string>);
  /** Deadline of each unary call. Default 10s. */
  readonly timeoutMs?: number;
}

/** What a workload needs to serve and dial mTLS. */
export interface WorkloadCertificate {
  /** PEM leaf then intermediates, ready for a TLS `cert` option. */
  readonly certChainPem: string;
  /** PKCS#8 PEM; generated here, never sent anywhere. */
  readonly privateKeyPem: string;
  /** The root the chain ends at, as the CA sent it. */
  readonly rootCertPem: string;
  readonly spiffeId: string;
  readonly serialNumber: string;
  readonly notBefore: Date;
  readonly notAfter: Date;
}

export interface RequestCertificateOptions {
  /** Lifetime to ask for; the CA's default when undefined. Rounded up to whole seconds. */
  readonly ttlMs?: number;
  /**
   * Put this SPIFFE ID in the CSR as a URI SAN and require it in the answer. The CA refuses
   * with IDENTITY_MISMATCH if the credential proves another identity.
   */
  readonly spiffeId?: string;
}

export interface TrustBundleUpdate {
  readonly trustDomain: string;
  readonly rootCertsPem: readonly string[];
  readonly version: number;
}

export interface TrustBundleWatch {
  /** Stops watching. Safe to call twice. */
  close(): void;
}

/** A P-256 key and a CSR for it, made locally with WebCrypto. */
export async function createCsr(spiffeId?: string): Promise<{ csrPem: string; keys: import('./keys.ts').CryptoKeyPair }> {
  const keys = await generateP256KeyPair();
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    keys,
    signingAlgorithm: ECDSA_SHA256,
    ...(spiffeId !== undefined
      ? { extensions: [new x509.SubjectAlternativeNameExtension([{ type: 'url', value: spiffeId }])] }
      : {}),
  });
  return { csrPem: csr.toString('pem') + '\n', keys };
}

export class CaClient {
  readonly #options: CaClientOptions;
  readonly #certificates: CertificateStub;
  readonly #bundles: TrustBundleStub;
  #closed = false;

  constructor(options: CaClientOptions) {
    this.#options = options;
    const credentials = channelCredentials(options.transport);
    const channelOptions: grpc.ChannelOptions = {};
    // When the server is checked by SPIFFE ID the host name plays no part; a DNS-shaped name
    // avoids sending an IP address as TLS SNI, which RFC 6066 forbids.
    if (options.transport.kind === 'tls' && options.transport.serverSpiffeId !== undefined && isIP(hostOf(options.address))) {
      channelOptions['grpc.ssl_target_name_override'] = SPIFFE_CHECKED_SERVER_NAME;
    }
    this.#certificates = new CertificateServiceClient(options.address, credentials, channelOptions) as unknown as CertificateStub;
    this.#bundles = new TrustBundleServiceClient(options.address, credentials, {
      ...channelOptions,
      channelOverride: this.#certificates.getChannel(),
    }) as unknown as TrustBundleStub;
  }

  /**
   * Generates a key pair, sends a CSR and returns the checked result. Rejects with a CaError
   * carrying the server's code (e.g. `AUTH_FAILED`, `IDENTITY_MISMATCH`), `CA_UNAVAILABLE` when
   * the CA cannot be reached, or `CA_RESPONSE_INVALID` when the chain is not for our key.
   */
  async requestCertificate(options: RequestCertificateOptions = {}): Promise<WorkloadCertificate> {
    if (options.spiffeId !== undefined) parseSpiffeId(options.spiffeId);
    const { csrPem, keys } = await createCsr(options.spiffeId);
    const request: CreateCertificateRequest = {
      csr: csrPem,
      validity_duration: String(options.ttlMs === undefined ? 0 : Math.max(1, Math.ceil(options.ttlMs / 1000))),
    };
    const response = await this.#unary<CreateCertificateResponse>('CreateCertificate', (metadata, options, callback) =>
      this.#certificates.CreateCertificate(request, metadata, options, callback),
    );
    return checkResponse(response.cert_chain, await exportPublicKeySpki(keys.publicKey), options.spiffeId, await exportPrivateKeyPem(keys.privateKey));
  }

  /** The CA's current roots. */
  async getTrustBundle(): Promise<TrustBundleUpdate> {
    return fromMessage(
      await this.#unary<TrustBundleMessage>('GetTrustBundle', (metadata, options, callback) =>
        this.#bundles.GetTrustBundle({}, metadata, options, callback),
      ),
    );
  }

  /**
   * Calls `onBundle` with the current roots and with every change. The stream is re-opened
   * with backoff when it breaks; `onError` hears about each break.
   */
  watchTrustBundle(onBundle: (bundle: TrustBundleUpdate) => void, onError?: (err: CaError) => void): TrustBundleWatch {
    let closed = false;
    let call: grpc.ClientReadableStream<TrustBundleMessage> | undefined;
    let timer: NodeJS.Timeout | undefined;
    let backoffMs = 200;
    const open = async (): Promise<void> => {
      const metadata = await this.#metadata();
      if (closed) return;
      const c = this.#bundles.WatchTrustBundle({}, metadata);
      call = c;
      c.on('data', (message: TrustBundleMessage) => {
        backoffMs = 200;
        onBundle(fromMessage(message));
      });
      c.on('error', (err: grpc.ServiceError) => {
        if (closed || err.code === grpc.status.CANCELLED) return;
        onError?.(fromServiceError(err));
        retry();
      });
      c.on('end', () => {
        if (!closed) retry();
      });
    };
    const retry = (): void => {
      if (closed || timer) return;
      const delay = backoffMs * (0.5 + Math.random());
      backoffMs = Math.min(backoffMs * 2, 30_000);
      timer = setTimeout(() => {
        timer = undefined;
        start();
      }, delay);
    };
    const start = (): void => {
      open().catch((err: unknown) => {
        onError?.(err instanceof CaError ? err : new CaError(CA_ERROR.unavailable, String(err), { cause: err }));
        retry();
      });
    };
    start();
    return {
      close() {
        closed = true;
        clearTimeout(timer);
        call?.cancel();
      },
    };
  }

  /** Closes the channel. Safe to call twice. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#certificates.close();
    this.#bundles.close();
  }

  async #metadata(): Promise<grpc.Metadata> {
    const metadata = new grpc.Metadata();
    const token = this.#options.token;
    const value = typeof token === 'function' ? await token() : token;
    if (value) metadata.set('authorization', `Bearer ${value}`);
    return metadata;
  }

  async #unary<T>(
    method: string,
    invoke: (metadata: grpc.Metadata, options: grpc.CallOptions, callback: UnaryCallback<T>) => void,
  ): Promise<T> {
    if (this.#closed) throw new CaError(CA_ERROR.unavailable, 'the CA client is closed');
    const metadata = await this.#metadata();
    const deadline = Date.now() + (this.#options.timeoutMs ?? 10_000);
    return new Promise<T>((resolve, reject) => {
      invoke(metadata, { deadline }, (err, response) => {
        if (err) reject(fromServiceError(err));
        else if (response === undefined) reject(new CaError(CA_ERROR.responseInvalid, `${method} returned no message`));
        else resolve(response);
      });
    });
  }
}

type UnaryCallback<T> = (err: grpc.ServiceError | null, response?: T) => void;

/** The methods grpc-js generates from the protos, typed. */
interface CertificateStub extends grpc.Client {
  CreateCertificate(
    request: CreateCertificateRequest,
    metadata: grpc.Metadata,
    options: grpc.CallOptions,
    callback: UnaryCallback<CreateCertificateResponse>,
  ): grpc.ClientUnaryCall;
}
interface TrustBundleStub extends grpc.Client {
  GetTrustBundle(request: object, metadata: grpc.Metadata, options: grpc.CallOptions, callback: UnaryCallback<TrustBundleMessage>): grpc.ClientUnaryCall;
  WatchTrustBundle(request: object, metadata: grpc.Metadata): grpc.ClientReadableStream<TrustBundleMessage>;
}

function channelCredentials(transport: CaClientTransport): grpc.ChannelCredentials {
  if (transport.kind === 'plaintext') return grpc.credentials.createInsecure();
  const expected = transport.serverSpiffeId;
  if (expected !== undefined) parseSpiffeId(expected);
  const verify: grpc.VerifyOptions = {
    checkServerIdentity: (host: string, cert: PeerCertificate) => {
      if (expected === undefined) return checkServerIdentity(host, cert);
      const uris = cert.raw ? uriSans(new X509Certificate(cert.raw)) : [];
      return uris.includes(expected) ? undefined : new Error(`the CA server is not ${expected} (it presents ${uris.join(', ') || 'no URI SAN'})`);
    },
  };
  const client = transport.clientCertificate;
  return grpc.credentials.createSsl(
    Buffer.from(transport.rootCertsPem),
    client ? Buffer.from(client.privateKeyPem) : null,
    client ? Buffer.from(client.certChainPem) : null,
    verify,
  );
}

const SPIFFE_CHECKED_SERVER_NAME = 'tracemesh-ca.invalid';

function hostOf(address: string): string {
  const bracketed = /^\[([^\]]+)\]/.exec(address);
  if (bracketed) return bracketed[1]!;
  const i = address.lastIndexOf(':');
  return i > 0 && address.indexOf(':') === i ? address.slice(0, i) : address;
}

function fromMessage(m: TrustBundleMessage): TrustBundleUpdate {
  return { trustDomain: m.trust_domain, rootCertsPem: m.root_certs, version: Number(m.version) };
}

const KNOWN_CODES = new Set<string>(Object.values(CA_ERROR));

/** A CaError with the server's stable code, or CA_UNAVAILABLE when there is none. */
export function fromServiceError(err: grpc.ServiceError): CaError {
  const code = err.metadata?.get(ERROR_CODE_METADATA_KEY)[0];
  if (typeof code === 'string' && KNOWN_CODES.has(code)) {
    const details = err.details.startsWith(`${code}: `) ? err.details.slice(code.length + 2) : err.details;
    return new CaError(code as CaErrorCode, details, { cause: err });
  }
  return new CaError(CA_ERROR.unavailable, `the CA call failed with ${grpc.status[err.code] ?? err.code}: ${err.details}`, { cause: err });
}

/**
 * Checks a CreateCertificate answer: every PEM parses, the leaf holds our public key and one
 * SPIFFE ID (the requested one, if any), and each certificate is issued and signed by the next.
 */
function checkResponse(chainPem: readonly string[], spki: Uint8Array, requested: string | undefined, privateKeyPem: string): WorkloadCertificate {
  const invalid = (message: string): CaError => new CaError(CA_ERROR.responseInvalid, `the CA answered with ${message}`);
  if (chainPem.length < 2) throw invalid(`${chainPem.length} certificate(s); expected the leaf and at least the root`);
  let certs: X509Certificate[];
  try {
    certs = chainPem.map((pem) => {
      const [one, ...more] = parseCertificates(pem);
      if (!one || more.length > 0) throw new Error('each entry must hold one certificate');
      return new X509Certificate(Buffer.from(one.rawData));
    });
  } catch (err) {
    throw invalid(`an unreadable chain: ${(err as Error).message}`);
  }
  const leaf = certs[0]!;
  const leafSpki = leaf.publicKey.export({ type: 'spki', format: 'der' });
  if (!Buffer.from(spki).equals(leafSpki)) throw invalid('a certificate for another key');
  let spiffeId: string;
  try {
    spiffeId = formatSpiffeId(spiffeIdFromCertificate(leaf));
  } catch (err) {
    throw invalid(`a leaf without a SPIFFE ID: ${(err as Error).message}`);
  }
  if (requested !== undefined && spiffeId !== requested) throw invalid(`${spiffeId} instead of ${requested}`);
  for (let i = 0; i + 1 < certs.length; i++) {
    const issuer = certs[i + 1]!;
    if (!certs[i]!.checkIssued(issuer) || !certs[i]!.verify(issuer.publicKey)) {
      throw invalid(`a chain whose certificate ${i} is not issued by certificate ${i + 1}`);
    }
  }
  return {
    certChainPem: chainPem.slice(0, -1).map(ensureNewline).join(''),
    rootCertPem: ensureNewline(chainPem[chainPem.length - 1]!),
    privateKeyPem,
    spiffeId,
    serialNumber: leaf.serialNumber.toLowerCase(),
    notBefore: leaf.validFromDate,
    notAfter: leaf.validToDate,
  };
}

function ensureNewline(pem: string): string {
  return pem.endsWith('\n') ? pem : pem + '\n';
}
