// Certificates for the mTLS hops, made with openssl into a temp directory for each run: one CA,
// a server and a client certificate with SPIFFE URI SANs (as the mesh's own identities look).

import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface CertFiles {
  readonly dir: string;
  readonly caCert: string;
  readonly serverCert: string;
  readonly serverKey: string;
  /** Certificate followed by key, the form haproxy's `crt` wants. */
  readonly serverPem: string;
  readonly clientCert: string;
  readonly clientKey: string;
  readonly clientPem: string;
  readonly trustDomain: string;
}

function openssl(args: readonly string[], cwd: string): void {
  execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
}

function leaf(dir: string, name: string, spiffe: string): void {
  openssl(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${name}`], dir);
  writeFileSync(
    join(dir, `${name}.ext`),
    [
      'basicConstraints=critical,CA:FALSE',
      'keyUsage=critical,digitalSignature,keyEncipherment',
      'extendedKeyUsage=serverAuth,clientAuth',
      `subjectAltName=URI:${spiffe},DNS:localhost,IP:127.0.0.1`,
    ].join('\n') + '\n',
  );
  openssl(['x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${name}.crt`, '-days', '2', '-sha256', '-extfile', `${name}.ext`], dir);
  writeFileSync(join(dir, `${name}.pem`), readFileSync(join(dir, `${name}.crt`), 'utf8') + readFileSync(join(dir, `${name}.key`), 'utf8'));
}

/** Writes a CA and two leaf certificates (EC P-256, valid two days) into `dir`. */
export function makeCerts(dir: string, trustDomain = 'bench.tracemesh.local'): CertFiles {
  openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '2', '-subj', '/CN=tracemesh-bench-ca', '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'], dir);
  leaf(dir, 'server', `spiffe://${trustDomain}/ns/bench/sa/server`);
  leaf(dir, 'client', `spiffe://${trustDomain}/ns/bench/sa/client`);
  const p = (f: string): string => join(dir, f);
  return {
    dir,
    caCert: p('ca.crt'),
    serverCert: p('server.crt'),
    serverKey: p('server.key'),
    serverPem: p('server.pem'),
    clientCert: p('client.crt'),
    clientKey: p('client.key'),
    clientPem: p('client.pem'),
    trustDomain,
  };
}
