import type { Clock } from "../../../runtime/clock.ts";

/** closed: calls pass; open: calls fail fast; half-open: one trial call decides. */
export type BreakerState = "closed" | "open" | "half-open";

/** Raised instead of calling a dependency whose breaker is open. */
export class CircuitOpenError extends Error {
  override readonly name = "CircuitOpenError";
  readonly dependency: string;

  constructor(dependency: string) {
    super(`${dependency} circuit breaker is open`);
    this.dependency = dependency;
  }
}

export interface CircuitBreakerOptions {
  readonly name: string;
  readonly clock: Clock;
  /** Consecutive failures that open the breaker. */
  readonly failureThreshold: number;
  /** How long it stays open before one trial call is let through. */
  readonly cooldownMs: number;
  /**
   * Whether an error says the dependency is unavailable (connection refused, timeout) rather than
   * that this one request was bad (a constraint violation, a script error): only the former count.
   */
  readonly isOutage: (err: unknown) => boolean;
  readonly onStateChange?: (state: BreakerState, name: string) => void;
}

/**
 * A circuit breaker (closed → open after K consecutive outage errors → half-open after a cooldown →
 * closed on the first success, open again on a failure). While open, callers fail fast instead of
 * each waiting for a timeout, so a dead dependency costs a tick milliseconds, not
 * tenants × timeout. In half-open state a single trial call is in flight; the others fail fast.
 */
export class CircuitBreaker {
  readonly #o: CircuitBreakerOptions;
  #state: BreakerState = "closed";
  #failures = 0;
  #openedAt = 0;
  #trialInFlight = false;

  constructor(options: CircuitBreakerOptions) {
    this.#o = options;
  }

  get state(): BreakerState {
    if (this.#state === "open" && this.#o.clock.now() - this.#openedAt >= this.#o.cooldownMs) {
      return "half-open";
    }
    return this.#state;
  }

  /** Whether a call would be attempted now (without reserving the half-open trial). */
  allows(): boolean {
    const s = this.state;
    return s === "closed" || (s === "half-open" && !this.#trialInFlight);
  }

  /**
   * Runs `fn` through the breaker.
   * @throws CircuitOpenError without calling `fn` while open; else whatever `fn` throws
   */
  async run<T>(fn: () => Promise<T>): Promise<T> {
    const s = this.state;
    let trial = false;
    if (s === "open" || (s === "half-open" && this.#trialInFlight)) throw new CircuitOpenError(this.#o.name);
    if (s === "half-open") {
      trial = true;
      this.#trialInFlight = true;
      this.#set("half-open");
    }
    try {
      const result = await fn();
      this.#failures = 0;
      this.#set("closed");
      return result;
    } catch (err) {
      if (this.#o.isOutage(err)) {
        this.#failures++;
        if (trial || this.#failures >= this.#o.failureThreshold) {
          this.#openedAt = this.#o.clock.now();
          this.#set("open");
        }
      } else if (trial) {
        // The dependency answered (with an error about the request): it is reachable.
        this.#failures = 0;
        this.#set("closed");
      }
      throw err;
    } finally {
      if (trial) this.#trialInFlight = false;
    }
  }

  #set(state: BreakerState): void {
    if (this.#state === state) return;
    this.#state = state;
    this.#o.onStateChange?.(state, this.#o.name);
  }
}
