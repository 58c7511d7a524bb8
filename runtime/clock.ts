/**
 * Time as a dependency (kubebuilder's injected `Clock`): the operator's work queue, the evaluator's
 * scheduler, budgets and tick timestamps read time only through this, so tests drive them with a
 * clock that moves only when told to (the evaluator's `ManualClock`).
 */
export interface Clock {
  /** Epoch milliseconds. */
  now(): number;
  /** Runs `fn` after `ms`; the returned handle is only good for {@link Clock.clearTimeout}. */
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

/** The real clock. */
export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (handle) => clearTimeout(handle as ReturnType<typeof setTimeout>),
};
