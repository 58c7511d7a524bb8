/**
 * What a chaos run watches while it runs: each tenant's fence (every change of its seq, polled
 * about once a second), the ids of the alert rows (to find one lost later), and the CPU time and
 * peak RSS of every process of the system (from /proc).
 */
import { readdirSync, readFileSync } from "node:fs";
import type pg from "pg";
import type { WatchedProcess } from "./system.ts";
import type { FenceObservation } from "./verdict.ts";

/** Polls `tenant_fences` of tenants `prefix%`; records each tenant's seq changes. */
export class FencePoller {
  readonly observations: FenceObservation[] = [];
  readonly alertIdsSeen = new Set<number>();
  readonly #last = new Map<string, number>();
  readonly #pool: pg.Pool;
  readonly #prefix: string;
  #polls = 0;
  #failures = 0;

  readonly #alertPollEvery: number;

  /** `alertPollEvery`: read the alert ids every that many polls (the table grows with the run). */
  constructor(pool: pg.Pool, tenantPrefix: string, alertPollEvery = 5) {
    this.#pool = pool;
    this.#prefix = tenantPrefix;
    this.#alertPollEvery = alertPollEvery;
  }

  get failures(): number {
    return this.#failures;
  }

  /** One poll; a failure (PostgreSQL stopped) is counted and skipped. */
  async poll(): Promise<void> {
    this.#polls++;
    try {
      const { rows } = await this.#pool.query<{
        tenant_id: string;
        seq: string;
        eval_ms: number;
        evaluator: string;
      }>("SELECT tenant_id, seq::text, eval_ms, evaluator FROM tenant_fences WHERE tenant_id LIKE $1", [
        `${this.#prefix}%`,
      ]);
      const now = Date.now();
      for (const r of rows) {
        const seq = Number(r.seq);
        if (this.#last.get(r.tenant_id) === seq) continue;
        this.#last.set(r.tenant_id, seq);
        this.observations.push({
          tenantId: r.tenant_id,
          seq,
          evalMs: r.eval_ms,
          evaluator: r.evaluator,
          observedAtMs: now,
        });
      }
      if (this.#polls % this.#alertPollEvery === 0) {
        const alerts = await this.#pool.query<{ id: string }>(
          "SELECT id::text FROM alerts WHERE tenant_id LIKE $1",
          [`${this.#prefix}%`],
        );
        for (const a of alerts.rows) this.alertIdsSeen.add(Number(a.id));
      }
    } catch {
      this.#failures++;
    }
  }
}

export interface ProcessUse {
  readonly process: string;
  readonly kind: string;
  peakRssBytes: number;
  cpuSeconds: number;
}

const CLOCK_TICKS = 100; // USER_HZ on Linux

/** utime + stime (s) and RSS (bytes) of `pid`, or null when it is gone. */
function sample(pid: number): { cpu: number; rss: number } | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // The command name may hold spaces: fields are counted after its closing parenthesis.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    const cpu = (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
    const status = readFileSync(`/proc/${pid}/status`, "utf8");
    const rss = Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1] ?? 0) * 1024;
    return { cpu, rss };
  } catch {
    return null;
  }
}

/** Children of `pid` (one level: PostgreSQL's backends and workers). */
function childrenOf(pid: number): number[] {
  const out: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      if (ppid === pid) out.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

/**
 * Samples every watched process: CPU is the last reading of each pid (a process's CPU time only
 * grows); RSS the largest seen. PostgreSQL counts its backends too: CPU summed over every child
 * ever seen, RSS as the largest sum at one sample.
 */
export class ResourceSampler {
  readonly #use = new Map<string, ProcessUse>();
  /** PostgreSQL children: last CPU per child pid, per postmaster name. */
  readonly #childCpu = new Map<string, Map<number, number>>();

  sample(processes: readonly WatchedProcess[]): void {
    for (const p of processes) {
      const s = sample(p.pid);
      if (s === null) continue;
      let use = this.#use.get(p.name);
      if (!use) {
        use = { process: p.name, kind: p.kind, peakRssBytes: 0, cpuSeconds: 0 };
        this.#use.set(p.name, use);
      }
      let rss = s.rss;
      let cpu = s.cpu;
      if (p.kind === "postgres") {
        const children = this.#childCpu.get(p.name) ?? new Map<number, number>();
        this.#childCpu.set(p.name, children);
        for (const c of childrenOf(p.pid)) {
          const cs = sample(c);
          if (cs === null) continue;
          children.set(c, cs.cpu);
          rss += cs.rss;
        }
        for (const v of children.values()) cpu += v;
      }
      use.peakRssBytes = Math.max(use.peakRssBytes, rss);
      use.cpuSeconds = Math.max(use.cpuSeconds, cpu);
    }
  }

  report(): ProcessUse[] {
    return [...this.#use.values()];
  }
}
