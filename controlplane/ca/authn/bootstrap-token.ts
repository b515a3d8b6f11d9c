// Bootstrap tokens for local mode: a shared secret per workload, mapped to the namespace and
// service account it may claim. Tokens are compared in constant time.

import { createHash, timingSafeEqual } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { z } from 'zod';
import { CA_ERROR, CaError } from '../../../common/ca/errors.ts';
import { isValidNamespace, isValidServiceAccount, isValidTrustDomain, type SpiffeId } from '../../../common/spiffe.ts';
import { bearerToken, missingCredential, type Authenticator } from './authenticator.ts';

export interface BootstrapGrant {
  readonly namespace: string;
  readonly serviceAccount: string;
}

/** Tokens shorter than this are refused at load: they could be guessed. */
export const MIN_TOKEN_LENGTH = 16;

const tokensFileSchema = z.record(
  z.string(),
  z.object({ namespace: z.string(), serviceAccount: z.string() }).strict(),
);

/**
 * An authenticator over a token → grant map. Throws `CA_CONFIG_INVALID` for a token shorter
 * than MIN_TOKEN_LENGTH or a grant that would not form a valid SPIFFE ID.
 */
export function bootstrapTokenAuthenticator(
  trustDomain: string,
  tokens: ReadonlyMap<string, BootstrapGrant> | Readonly<Record<string, BootstrapGrant>>,
): Authenticator {
  if (!isValidTrustDomain(trustDomain)) {
    throw new CaError(CA_ERROR.configInvalid, `bootstrap tokens: trust domain "${trustDomain}" is invalid`);
  }
  const entries = tokens instanceof Map ? [...tokens.entries()] : Object.entries(tokens);
  // Only digests are kept: equal length makes timingSafeEqual usable for any token length.
  const table = entries.map(([token, grant], i) => {
    if (token.length < MIN_TOKEN_LENGTH) {
      throw new CaError(
        CA_ERROR.configInvalid,
        `bootstrap token #${i + 1} (for ${grant.namespace}/${grant.serviceAccount}) is shorter than ${MIN_TOKEN_LENGTH} characters; generate one with \`openssl rand -hex 32\``,
      );
    }
    if (!isValidNamespace(grant.namespace) || !isValidServiceAccount(grant.serviceAccount)) {
      throw new CaError(
        CA_ERROR.configInvalid,
        `bootstrap token #${i + 1}: "${grant.namespace}"/"${grant.serviceAccount}" is not a valid namespace/service account`,
      );
    }
    const spiffeId: SpiffeId = { trustDomain, namespace: grant.namespace, serviceAccount: grant.serviceAccount };
    return { digest: digest(token), spiffeId };
  });
  return {
    name: 'bootstrap-token',
    authenticate(metadata) {
      const token = bearerToken(metadata);
      if (token === undefined) return Promise.reject(missingCredential('bootstrap-token'));
      const presented = digest(token);
      let match: SpiffeId | undefined;
      // Visit every entry, without an early exit, so timing does not reveal which one matched.
      for (const row of table) {
        if (timingSafeEqual(row.digest, presented) && match === undefined) match = row.spiffeId;
      }
      if (!match) return Promise.reject(new CaError(CA_ERROR.authFailed, 'bootstrap-token: the token is not known'));
      return Promise.resolve({ spiffeId: match, authenticator: 'bootstrap-token' });
    },
  };
}

/**
 * Reads a JSON tokens file, `{ "<token>": { "namespace": "...", "serviceAccount": "..." } }`,
 * and builds the authenticator. Throws `CA_CONFIG_INVALID` naming the file.
 */
export async function bootstrapTokenAuthenticatorFromFile(trustDomain: string, path: string): Promise<Authenticator> {
  let parsed: z.infer<typeof tokensFileSchema>;
  try {
    parsed = tokensFileSchema.parse(JSON.parse(await readFile(path, 'utf8')));
  } catch (err) {
    throw new CaError(
      CA_ERROR.configInvalid,
      `bootstrap tokens file ${path} must be JSON {"<token>": {"namespace": "...", "serviceAccount": "..."}}: ${(err as Error).message}`,
      { cause: err },
    );
  }
  try {
    return bootstrapTokenAuthenticator(trustDomain, parsed);
  } catch (err) {
    throw new CaError(CA_ERROR.configInvalid, `${path}: ${(err as Error).message}`, { cause: err });
  }
}

function digest(token: string): Buffer {
  return createHash('sha256').update(token, 'utf8').digest();
}
