import type { Clock } from "../../../runtime/clock.ts";
import {
  initialScheduleState,
  type PlannedTick,
  planNextTick,
  type ScheduleConfig,
  type ScheduleState,
  tickStarted,
} from "./slotSchedule.ts";

/** One tick to run: its slot, its timestamp (passed to the rules) and what started it. */
export interface TickRequest {
  /** A regular tick: its slot; an early (`notify`) tick: the slot it runs in (see {@link PlannedTick}). */
  readonly slot: number;
  /** Tick timestamp, epoch ms: the moment the tick started. */
  readonly now: number;
  readonly trigger: PlannedTick["trigger"];
}

/** What the scheduler needs. */
export interface SchedulerDeps {
  readonly clock: Clock;
  readonly config: ScheduleConfig;
  /** Runs one tick; must not throw (a failed tick is the tick's business), but a throw is survived. */
  readonly runTick: (tick: TickRequest) => Promise<void>;
  /** Called with the number of slots skipped after an overrun. */
  readonly onMissed?: (slots: number, tick: TickRequest) => void;
  readonly onTickError?: (err: unknown) => void;
}

/**
 * The imperative half of the slotted scheduler: one loop, so never two ticks at once. It waits
 * for the tick {@link planNextTick} chooses (a timer on the injected clock), runs it to completion,
 * and plans again. `wake()` (a NOTIFY) only marks a wake-up pending and interrupts the wait so the
 * plan is redone; any number of wakes before a tick starts count as one. A wake may add an early
 * tick between two regular ones; it never moves or replaces a regular tick.
 */
export class TickScheduler {
  readonly #deps: SchedulerDeps;
  #state: ScheduleState = initialScheduleState;
  #lastSlot: number | null = null;
  #interrupt: (() => void) | null = null;
  #running = false;

  constructor(deps: SchedulerDeps) {
    this.#deps = deps;
  }

  /** Slot of the last tick started (regular or early), or `null`. */
  get lastSlot(): number | null {
    return this.#lastSlot;
  }

  /** A NOTIFY arrived: run an extra, early tick if the schedule allows (coalesced). */
  wake(): void {
    if (!this.#state.wakePending) this.#state = { ...this.#state, wakePending: true };
    this.#interrupt?.();
  }

  /**
   * Runs ticks until `signal` aborts; resolves after the tick in progress (if any) has finished.
   * @throws Error when called while already running
   */
  async run(signal: AbortSignal): Promise<void> {
    if (this.#running) throw new Error("TickScheduler.run is already running");
    this.#running = true;
    try {
      while (!signal.aborted) {
        const { clock } = this.#deps;
        const now = clock.now();
        const plan = planNextTick(this.#deps.config, this.#state, now);
        if (plan.at > now) {
          await this.#waitUntil(plan.at - now, signal);
          continue; // re-plan: the wait may have been cut short by a wake or the signal
        }
        const tick: TickRequest = { slot: plan.slot, now, trigger: plan.trigger };
        this.#state = tickStarted(this.#state, plan, now);
        this.#lastSlot = plan.slot;
        if (plan.missed > 0) this.#deps.onMissed?.(plan.missed, tick);
        try {
          await this.#deps.runTick(tick);
        } catch (err) {
          this.#deps.onTickError?.(err);
        }
      }
    } finally {
      this.#running = false;
    }
  }

  #waitUntil(ms: number, signal: AbortSignal): Promise<void> {
    const { clock } = this.#deps;
    return new Promise<void>((resolve) => {
      const done = () => {
        clock.clearTimeout(handle);
        signal.removeEventListener("abort", done);
        this.#interrupt = null;
        resolve();
      };
      const handle = clock.setTimeout(done, ms);
      signal.addEventListener("abort", done, { once: true });
      this.#interrupt = done;
    });
  }
}
