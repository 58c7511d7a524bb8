import type { Clock } from "../../../runtime/clock.ts";

/** Raised when a tenant's evaluation exceeds its wall-clock budget. */
export class BudgetExceededError extends Error {
  override readonly name = "BudgetExceededError";
  readonly budgetMs: number;

  constructor(budgetMs: number) {
    super(`over the ${budgetMs} ms budget`);
    this.budgetMs = budgetMs;
  }
}

/**
 * Runs `work(signal)` against a wall-clock budget (Promise.race with a timer): resolves or rejects
 * with the work when it settles in time; otherwise aborts `signal` (with a
 * {@link BudgetExceededError}) and rejects with it at once, so the caller moves on. The work keeps
 * running in the background until it notices the abort; `settled` tracks it, so callers can wait for
 * abandoned work before shutting down or evaluating the same tenant again.
 *
 * `outer` (shutdown) is forwarded to the work's signal too.
 */
export function withBudget<T>(
  clock: Clock,
  budgetMs: number,
  work: (signal: AbortSignal) => Promise<T>,
  outer?: AbortSignal,
): { readonly result: Promise<T>; readonly settled: Promise<void> } {
  const controller = new AbortController();
  const onOuter = () => controller.abort(outer?.reason);
  outer?.addEventListener("abort", onOuter, { once: true });
  const running = work(controller.signal);
  const settled = running.then(
    () => undefined,
    () => undefined,
  );
  let timer: unknown;
  const timeout = new Promise<never>((_, reject) => {
    timer = clock.setTimeout(() => {
      const err = new BudgetExceededError(budgetMs);
      controller.abort(err);
      reject(err);
    }, budgetMs);
  });
  // The losing side of the race must not surface as an unhandled rejection.
  timeout.catch(() => undefined);
  const result = Promise.race([running, timeout]).finally(() => {
    clock.clearTimeout(timer);
    outer?.removeEventListener("abort", onOuter);
  });
  return { result, settled };
}
