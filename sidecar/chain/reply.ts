// An answer the mesh gives itself that is not a failure: a route's RequestRedirect. The route
// layer returns it from `onRequest` (or passes it to `hop.respond()` after an injected delay);
// each codec writes it in one place, next to where it writes its ProxyError responses.

/** A response synthesized by a layer: a status, a few headers and no body. */
export class LocalReply {
  readonly status: number;
  /** Response headers as `[name, value]`, in order; names as the route wrote them. */
  readonly headers: readonly (readonly [string, string])[];

  constructor(status: number, headers: readonly (readonly [string, string])[]) {
    this.status = status;
    this.headers = headers;
  }
}
