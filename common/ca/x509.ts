// The one import site of @peculiar/x509: loads reflect-metadata (tsyringe, under @peculiar/x509, needs it) and pins the
// WebCrypto provider to Node's own `globalThis.crypto`.

import 'reflect-metadata';
import * as x509 from '@peculiar/x509';

x509.cryptoProvider.set(globalThis.crypto);

export { x509 };
