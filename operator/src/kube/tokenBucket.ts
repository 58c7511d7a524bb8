import { type Clock, systemClock } from "../../../runtime/clock.ts";

/**
 * Which queue a request waits in. `lease` is the leader Lease's: it is served before the requests
 * already waiting, so a backlog (a resync of every set, hundreds of applies) never holds a renewal
 * past the renew deadline, which would cost the leadership and stop the process. It still takes a
 * token, so the rate toward the apiserver stays bounded.
 */
export type Lane = "normal" | "lease";

export interface TokenBucketOptions {
  /** Tokens added per second (the sustained request rate). */
  readonly qps: number;
  /** Tokens the bucket holds at most (the requests that may go at once after a quiet spell). */
  readonly burst: number;
  readonly clock?: Clock;
}

interface Waiter {
  readonly enqueuedAt: number;
  readonly resolve: (waitedMs: number) => void;
}

/**
 * A token bucket, like client-go's `flowcontrol.NewTokenBucketRateLimiter(qps, burst)`: it starts
 * full with `burst` tokens and refills at `qps` per second; every request takes one token, waiting
 * when none is left. Over any interval of t seconds at most `burst + qps × t` requests are let
 * through.
 *
 * Waiters are served first come, first served within a lane (a request that arrives while others
 * wait queues behind them even if a token is free: none is overtaken by a later one). The `lease`
 * lane goes before the `normal` lane, but never twice in a row while normal requests wait, so a
 * stream of lease requests cannot starve the others (they get at least every other token).
 */
export class TokenBucket {
  readonly #qps: number;
  readonly #burst: number;
  readonly #clock: Clock;
  #tokens: number;
  #refilledAt: number;
  readonly #normal: Waiter[] = [];
  readonly #lease: Waiter[] = [];
  /** The last token given while both lanes waited went to a lease request. */
  #leaseServedLast = false;
  #timer: unknown;

  constructor(options: TokenBucketOptions) {
    if (!(options.qps > 0) || !Number.isFinite(options.qps)) {
      throw new RangeError(`token bucket: qps must be a positive number, got ${options.qps}`);
    }
    if (!Number.isInteger(options.burst) || options.burst < 1) {
      throw new RangeError(`token bucket: burst must be a positive integer, got ${options.burst}`);
    }
    this.#qps = options.qps;
    this.#burst = options.burst;
    this.#clock = options.clock ?? systemClock;
    this.#tokens = options.burst;
    this.#refilledAt = this.#clock.now();
  }

  /** Requests waiting for a token. */
  get waiting(): number {
    return this.#normal.length + this.#lease.length;
  }

  /**
   * Takes one token, waiting for it when the bucket is empty or others wait before this request.
   * @returns how long the request waited, in ms (0 when a token was free)
   */
  take(lane: Lane = "normal"): Promise<number> {
    this.#refill();
    const ahead = lane === "lease" ? this.#lease.length : this.waiting;
    if (ahead === 0 && this.#tokens >= 1) {
      this.#tokens -= 1;
      return Promise.resolve(0);
    }
    return new Promise<number>((resolve) => {
      (lane === "lease" ? this.#lease : this.#normal).push({ enqueuedAt: this.#clock.now(), resolve });
      this.#drain();
    });
  }

  #refill(): void {
    const now = this.#clock.now();
    const elapsed = now - this.#refilledAt;
    if (elapsed > 0) this.#tokens = Math.min(this.#burst, this.#tokens + (elapsed * this.#qps) / 1000);
    this.#refilledAt = now;
  }

  /** Gives free tokens to the waiters in order, then sleeps until the next token if some still wait. */
  #drain(): void {
    this.#refill();
    while (this.#tokens >= 1 && this.waiting > 0) {
      const useLease = this.#lease.length > 0 && (this.#normal.length === 0 || !this.#leaseServedLast);
      const waiter = (useLease ? this.#lease : this.#normal).shift()!;
      this.#leaseServedLast = useLease && this.#normal.length > 0;
      this.#tokens -= 1;
      waiter.resolve(this.#clock.now() - waiter.enqueuedAt);
    }
    if (this.waiting === 0 || this.#timer !== undefined) return;
    // Rounded up to a whole ms (and at least 1), so the timer never fires before the token is there.
    const ms = Math.max(1, Math.ceil(((1 - this.#tokens) * 1000) / this.#qps));
    this.#timer = this.#clock.setTimeout(() => {
      this.#timer = undefined;
      this.#drain();
    }, ms);
  }
}
