import type * as k8s from "@kubernetes/client-node";
import { errorMessage, statusCode } from "../../../runtime/errors.ts";
import type { Logger } from "../log.ts";
import type { ElectionFacts } from "./probeVerdict.ts";

export interface LeaderElectionOptions {
  coordination: k8s.CoordinationV1Api;
  namespace: string;
  name: string;
  identity: string;
  leaseDurationMs: number;
  renewDeadlineMs: number;
  retryPeriodMs: number;
  log: Logger;
  onStartedLeading(): void;
  /** Leadership lost (renew failed past the deadline, or another holder took it). The process should stop. */
  onStoppedLeading(): void;
  onLeaderChange?(isLeader: boolean): void;
}

/**
 * A Lease's acquireTime/renewTime are MicroTime: the apiserver insists on exactly six fractional
 * digits, which `Date#toISOString()` does not give.
 */
export function microTime(ms: number): string {
  return new Date(ms).toISOString().replace(/\.(\d{3})Z$/, ".$1000Z");
}

/**
 * Leader election on a coordination.k8s.io/v1 Lease, as client-go does it:
 * - a candidate takes the Lease when it is free (no holder) or when its record has not changed for
 *   leaseDurationSeconds of *local* observation (never comparing clocks across machines);
 * - the holder renews every retryPeriod; failing to renew within renewDeadline, it steps down —
 *   at the deadline itself, by a timer, even while a renewal hangs (an apiserver that stops
 *   answering must not keep a leader leading while a standby takes the Lease);
 * - updates carry the read resourceVersion, so two candidates racing get one 409;
 * - `release()` (on SIGTERM) clears the holder so a standby takes over at once.
 */
export class LeaderElector {
  readonly #o: LeaderElectionOptions;
  #leading = false;
  #stopped = false;
  #timer: NodeJS.Timeout | undefined;
  /** Fires renewDeadline after the last renewal: leadership never outlives it, whatever is in flight. */
  #deadline: NodeJS.Timeout | undefined;
  #observed: { record: string; at: number } | undefined;
  #lastRenew = 0;
  #startedAt: number | undefined;
  #lastAttemptAt: number | undefined;
  #lastObservedAt: number | undefined;
  #lastError: string | undefined;
  #lostReason: string | undefined;
  /** The tick in flight, so release() never races a renewal (it would lose with a 409). */
  #inflight: Promise<void> = Promise.resolve();

  constructor(options: LeaderElectionOptions) {
    if (options.leaseDurationMs <= options.renewDeadlineMs) {
      throw new Error("leader election: leaseDuration must be greater than renewDeadline");
    }
    this.#o = options;
  }

  get isLeader(): boolean {
    return this.#leading;
  }

  /**
   * What the probes judge (see probeVerdict.ts); undefined before {@link start}. Times are epoch
   * ms: the last completed attempt, the last successful read of the Lease, the last renewal.
   */
  snapshot(): ElectionFacts | undefined {
    if (this.#startedAt === undefined) return undefined;
    return {
      state: this.#leading
        ? "leading"
        : this.#lostReason !== undefined
          ? "lost"
          : this.#stopped
            ? "released"
            : "campaigning",
      startedAt: this.#startedAt,
      lastAttemptAt: this.#lastAttemptAt,
      lastObservedAt: this.#lastObservedAt,
      lastRenewedAt: this.#lastRenew > 0 ? this.#lastRenew : undefined,
      lastError: this.#lastError,
      lostReason: this.#lostReason,
    };
  }

  start(): void {
    this.#startedAt = Date.now();
    this.#schedule(0);
  }

  #schedule(ms: number): void {
    this.#timer = setTimeout(() => {
      this.#inflight = this.#tick();
    }, ms);
  }

  async #tick(): Promise<void> {
    if (this.#stopped) return;
    try {
      const acquired = await this.#tryAcquireOrRenew();
      // Stepped down (the deadline passed while this attempt hung) or released meanwhile.
      if (this.#stopped) return;
      this.#lastAttemptAt = Date.now();
      this.#lastError = undefined;
      if (acquired) {
        this.#lastRenew = Date.now();
        this.#armDeadline();
        if (!this.#leading) {
          this.#leading = true;
          this.#o.log.info({ lease: this.#o.name, identity: this.#o.identity }, "Became leader");
          this.#o.onLeaderChange?.(true);
          this.#o.onStartedLeading();
        }
      } else if (this.#leading) {
        this.#loseLeadership("another holder took the Lease");
        return;
      }
    } catch (err) {
      this.#lastAttemptAt = Date.now();
      this.#lastError = errorMessage(err);
      this.#o.log.warn({ lease: this.#o.name, err: String(err) }, "Lease update failed");
    }
    if (this.#leading && Date.now() - this.#lastRenew > this.#o.renewDeadlineMs) {
      this.#loseLeadership("could not renew the Lease within the renew deadline");
      return;
    }
    if (!this.#stopped) this.#schedule(this.#o.retryPeriodMs);
  }

  #armDeadline(): void {
    if (this.#deadline) clearTimeout(this.#deadline);
    this.#deadline = setTimeout(() => {
      if (this.#leading && !this.#stopped) {
        this.#loseLeadership("could not renew the Lease within the renew deadline");
      }
    }, this.#o.renewDeadlineMs);
  }

  #loseLeadership(reason: string): void {
    if (this.#deadline) clearTimeout(this.#deadline);
    if (this.#timer) clearTimeout(this.#timer);
    this.#leading = false;
    this.#stopped = true;
    this.#lostReason = reason;
    this.#o.log.error({ lease: this.#o.name, reason }, "Lost leadership");
    this.#o.onLeaderChange?.(false);
    this.#o.onStoppedLeading();
  }

  async #tryAcquireOrRenew(): Promise<boolean> {
    const { coordination, namespace, name, identity } = this.#o;
    const now = Date.now();
    const leaseDurationSeconds = Math.ceil(this.#o.leaseDurationMs / 1000);
    let lease: k8s.V1Lease;
    try {
      lease = await coordination.readNamespacedLease({ name, namespace });
      this.#lastObservedAt = Date.now();
    } catch (err) {
      if (statusCode(err) !== 404) throw err;
      // No Lease is an answer too: this replica sees the apiserver and may take it.
      this.#lastObservedAt = Date.now();
      await coordination.createNamespacedLease({
        namespace,
        body: {
          metadata: { name, namespace },
          spec: {
            holderIdentity: identity,
            leaseDurationSeconds,
            acquireTime: microTime(now) as unknown as Date,
            renewTime: microTime(now) as unknown as Date,
            leaseTransitions: 0,
          },
        },
      });
      return true;
    }
    const spec = lease.spec ?? {};
    const holder = spec.holderIdentity ?? "";
    const record = `${holder}|${String(spec.renewTime ?? "")}|${lease.metadata?.resourceVersion ?? ""}`;
    if (this.#observed?.record !== record) this.#observed = { record, at: now };
    const heldByOther = holder !== "" && holder !== identity;
    const duration = (spec.leaseDurationSeconds ?? leaseDurationSeconds) * 1000;
    if (heldByOther && now - this.#observed.at < duration) return false;

    const body: k8s.V1Lease = {
      ...lease,
      spec: {
        ...spec,
        holderIdentity: identity,
        leaseDurationSeconds,
        renewTime: microTime(now) as unknown as Date,
        acquireTime: (holder === identity ? serialized(spec.acquireTime) : microTime(now)) as unknown as Date,
        leaseTransitions: (spec.leaseTransitions ?? 0) + (holder === identity ? 0 : 1),
      },
    };
    try {
      await coordination.replaceNamespacedLease({ name, namespace, body });
    } catch (err) {
      if (statusCode(err) === 409) return false;
      throw err;
    }
    return true;
  }

  /** Stops campaigning; if leading, hands the Lease back so a standby takes over without waiting. */
  async release(): Promise<void> {
    this.#stopped = true;
    if (this.#timer) clearTimeout(this.#timer);
    if (this.#deadline) clearTimeout(this.#deadline);
    // Stepped down already: nothing to hand back, and the attempt in flight may hang.
    if (this.#lostReason !== undefined) return;
    await this.#inflight;
    if (!this.#leading) return;
    this.#leading = false;
    this.#o.onLeaderChange?.(false);
    const { coordination, namespace, name, identity } = this.#o;
    try {
      const lease = await coordination.readNamespacedLease({ name, namespace });
      if (lease.spec?.holderIdentity !== identity) return;
      await coordination.replaceNamespacedLease({
        name,
        namespace,
        body: {
          ...lease,
          spec: {
            ...lease.spec,
            holderIdentity: "",
            leaseDurationSeconds: 1,
            renewTime: microTime(Date.now()) as unknown as Date,
            acquireTime: serialized(lease.spec.acquireTime) as unknown as Date,
          },
        },
      });
      this.#o.log.info({ lease: name }, "Released leadership");
    } catch (err) {
      this.#o.log.warn({ lease: name, err: String(err) }, "Could not release the Lease");
    }
  }
}

function serialized(t: Date | string | undefined): string | undefined {
  if (t === undefined) return undefined;
  return microTime(new Date(t).getTime());
}
