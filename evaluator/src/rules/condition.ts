/**
 * The verdict of one rule for one device at one tick.
 *
 * `status` is three-valued on purpose: `null` means "no evidence" (no new reading, or the state the
 * rule needs could not be loaded). The lifecycle holds its state on `null`, and callers must not
 * auto-resolve an open alert on it — only on `false`.
 */
export interface Condition {
  readonly status: boolean | null;
  /** What was judged: the latest value, the matching count, the anomalous value, the silence in seconds. */
  readonly value: number | null;
  /** Timestamp (ms) of the reading that decided, when there is one. */
  readonly observedAt: number | null;
}

/** The condition when nothing can be said. */
export const UNKNOWN: Condition = { status: null, value: null, observedAt: null };
