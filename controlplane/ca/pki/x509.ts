// The one import site of @peculiar/x509: loads the metadata shim it needs first and pins the
// WebCrypto provider to Node's own `globalThis.crypto`.

import './reflect-metadata.ts';
import * as x509 from '@peculiar/x509';

x509.cryptoProvider.set(globalThis.crypto);

export { x509 };
