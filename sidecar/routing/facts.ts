// What the route layer leaves on a hop for the codecs (header edits, a new Host) and for the
// resilience layers (the route's timeouts and retry policy).

import type { HeaderModifier } from '../../common/routes/resources.ts';
import type { CompiledRetry } from '../../common/routes/table.ts';

export interface RouteFacts {
  /** `HTTPRoute <ns>/<name>`. */
  readonly route: string;
  /** The rule's name or `rule <index>`. */
  readonly rule: string;
  /** Edits of the request sent upstream, in order (rule, then backend). */
  readonly requestHeaders: readonly HeaderModifier[];
  /** Edits of the response sent downstream, in order. */
  readonly responseHeaders: readonly HeaderModifier[];
  /** URLRewrite hostname: the Host / :authority sent upstream instead of the client's. */
  readonly authority: string | undefined;
  /** `timeouts.request` in ms (0: no limit); enforced by the route layer. */
  readonly requestTimeoutMs: number | undefined;
  /** `timeouts.backendRequest` in ms (0: no limit): for the per-try timeout of the resilience layer. */
  readonly backendTimeoutMs: number | undefined;
  /** `retry` of the rule: for the retry layer. */
  readonly retry: CompiledRetry | undefined;
  /** Injected delay before the request is sent (FaultInjection). */
  readonly delayMs: number;
  /** The timer of `timeouts.request`; cleared when the hop ends. */
  timer: NodeJS.Timeout | undefined;
}
