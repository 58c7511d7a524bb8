/**
 * What each EvaluatorShardSet's status says, as metric series Prometheus can alert on (pure). The
 * operator's metrics read the sets of its informer cache at every scrape and export these (see
 * `metrics.ts`), so a deleted set's series disappear with it, and a restarted or new leader reports
 * a reshard's age from the `startedAt` persisted in status, not from its own memory.
 */
import { DEFAULTS, type EvaluatorShardSet } from "../api/types.ts";

export interface SetLabels {
  readonly namespace: string;
  readonly shardset: string;
}

export interface ShardSetSeries {
  /** One per condition in status: 1 while it is True, 0 while False or Unknown. */
  readonly conditions: readonly {
    readonly labels: SetLabels & { readonly condition: string; readonly reason: string };
    readonly value: 0 | 1;
  }[];
  /** One per set with a reshard in flight: when it started (Unix seconds), labelled with its phase. */
  readonly reshards: readonly {
    readonly labels: SetLabels & { readonly phase: string };
    readonly value: number;
  }[];
  /** One per set: its evaluators' tick interval in seconds (spec, or the default). */
  readonly tickIntervals: readonly { readonly labels: SetLabels; readonly value: number }[];
}

/** The series of `sets` (see the module comment). */
export function shardSetSeries(sets: readonly EvaluatorShardSet[]): ShardSetSeries {
  const conditions: ShardSetSeries["conditions"][number][] = [];
  const reshards: ShardSetSeries["reshards"][number][] = [];
  const tickIntervals: ShardSetSeries["tickIntervals"][number][] = [];
  for (const set of sets) {
    const labels = { namespace: set.metadata.namespace, shardset: set.metadata.name };
    for (const c of set.status?.conditions ?? []) {
      conditions.push({
        labels: { ...labels, condition: c.type, reason: c.reason ?? "" },
        value: c.status === "True" ? 1 : 0,
      });
    }
    const reshard = set.status?.reshard;
    const started = reshard ? Date.parse(reshard.startedAt) : Number.NaN;
    // A startedAt that does not parse has no age to report: better no series than a wrong one.
    if (reshard && Number.isFinite(started)) {
      reshards.push({ labels: { ...labels, phase: reshard.phase }, value: started / 1000 });
    }
    tickIntervals.push({
      labels,
      value: set.spec.evaluator?.tickIntervalSeconds ?? DEFAULTS.tickIntervalSeconds,
    });
  }
  return { conditions, reshards, tickIntervals };
}
