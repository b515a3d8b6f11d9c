// The storage lane's gate: a counting semaphore whose queue is fair across clients. A client
// (a remote address, or a tenant header's value) runs at most `perClient` requests at once, so
// one flooding client leaves the other slots to everybody else; freed slots go round-robin to
// the clients that wait; and when the queue is full, a newcomer with fewer requests waiting than
// the heaviest client takes that client's newest place (it gets the 503 instead). The model is
// fair queueing with drop-from-the-longest-queue (FQ-CoDel's choice of whom to shed).

export type GateRefusal = 'concurrency' | 'deadline';

interface Waiter {
  readonly key: string;
  readonly resolve: (outcome: 'ok' | GateRefusal | 'gone') => void;
  readonly timer: NodeJS.Timeout;
}

export interface FairGateLimits {
  /** Requests running at once, over all clients. */
  readonly max: number;
  /** Requests one client may run at once (≤ max). */
  readonly perClient: number;
  /** Requests waiting, over all clients. */
  readonly queueSize: number;
  /** Longest wait; then 'deadline'. */
  readonly queueTimeoutMs: number;
}

export class FairGate {
  readonly #limits: FairGateLimits;
  /** Running requests per client; a client with none has no entry (the map stays bounded by `max`). */
  readonly #running = new Map<string, number>();
  /** Waiters per client, in rotation order: the first key with an eligible waiter is served next, then moves to the end. */
  readonly #waiting = new Map<string, Waiter[]>();
  #queued = 0;
  active = 0;

  constructor(limits: FairGateLimits) {
    this.#limits = { ...limits, perClient: Math.max(1, Math.min(limits.perClient, limits.max)) };
  }

  get queued(): number {
    return this.#queued;
  }

  /** Clients with a request running or waiting. */
  get clients(): number {
    const keys = new Set([...this.#running.keys(), ...this.#waiting.keys()]);
    return keys.size;
  }

  /**
   * Whether acquire(key) would answer 'concurrency' at once (no slot for it, the queue full, and
   * no heavier client to take a place from). Changes nothing: the HTTP layer sheds such a
   * request before any routing (admission.ts, fastShed).
   */
  wouldRefuse(key: string): boolean {
    const running = this.#running.get(key) ?? 0;
    if (this.active < this.#limits.max && running < this.#limits.perClient && !this.#waiting.has(key)) return false;
    if (this.#queued < this.#limits.queueSize) return false;
    const mine = this.#waiting.get(key)?.length ?? 0;
    for (const list of this.#waiting.values()) if (list.length > mine + 1) return false;
    return true;
  }

  /**
   * 'ok' (a slot is held: call release(key)), 'concurrency' (queue full, or this request's place
   * was taken by a lighter client), 'deadline' (waited queueTimeoutMs), or 'gone' (`signal`
   * aborted while waiting).
   */
  acquire(key: string, signal?: AbortSignal): Promise<'ok' | GateRefusal | 'gone'> {
    const running = this.#running.get(key) ?? 0;
    if (this.active < this.#limits.max && running < this.#limits.perClient && !this.#waiting.has(key)) {
      this.#grant(key);
      return Promise.resolve('ok');
    }
    if (this.#queued >= this.#limits.queueSize && !this.#evictHeavierThan(key)) return Promise.resolve('concurrency');
    return new Promise((resolve) => {
      let onAbort: (() => void) | undefined;
      const finish = (outcome: 'ok' | GateRefusal | 'gone'): void => {
        clearTimeout(waiter.timer);
        if (onAbort !== undefined) signal?.removeEventListener('abort', onAbort);
        resolve(outcome);
      };
      const waiter: Waiter = {
        key,
        resolve: finish,
        timer: setTimeout(() => {
          this.#remove(waiter);
          finish('deadline');
        }, this.#limits.queueTimeoutMs),
      };
      const list = this.#waiting.get(key);
      if (list === undefined) this.#waiting.set(key, [waiter]);
      else list.push(waiter);
      this.#queued += 1;
      if (signal !== undefined) {
        onAbort = () => {
          this.#remove(waiter);
          finish('gone');
        };
        signal.addEventListener('abort', onAbort, { once: true });
      }
    });
  }

  /** Gives back a slot held by `key` and hands free slots to waiting clients, round-robin. */
  release(key: string): void {
    this.active -= 1;
    const running = (this.#running.get(key) ?? 1) - 1;
    if (running <= 0) this.#running.delete(key);
    else this.#running.set(key, running);
    this.#dispatch();
  }

  #grant(key: string): void {
    this.active += 1;
    this.#running.set(key, (this.#running.get(key) ?? 0) + 1);
  }

  #dispatch(): void {
    while (this.active < this.#limits.max) {
      let next: Waiter | undefined;
      for (const [key, list] of this.#waiting) {
        if ((this.#running.get(key) ?? 0) >= this.#limits.perClient) continue;
        next = list.shift();
        // Rotate: this client goes to the back of the line (or leaves it).
        this.#waiting.delete(key);
        if (list.length > 0) this.#waiting.set(key, list);
        break;
      }
      if (next === undefined) return;
      this.#queued -= 1;
      this.#grant(next.key);
      next.resolve('ok');
    }
  }

  /** Queue full: sheds the newest waiter of the client with the most waiting, if it has more than `key`. */
  #evictHeavierThan(key: string): boolean {
    const mine = this.#waiting.get(key)?.length ?? 0;
    let heaviest: Waiter[] | undefined;
    for (const list of this.#waiting.values()) if (heaviest === undefined || list.length > heaviest.length) heaviest = list;
    if (heaviest === undefined || heaviest.length <= mine + 1) return false;
    const victim = heaviest[heaviest.length - 1]!;
    this.#remove(victim);
    victim.resolve('concurrency');
    return true;
  }

  #remove(w: Waiter): void {
    const list = this.#waiting.get(w.key);
    if (list === undefined) return;
    const i = list.indexOf(w);
    if (i < 0) return;
    list.splice(i, 1);
    this.#queued -= 1;
    if (list.length === 0) this.#waiting.delete(w.key);
  }
}
