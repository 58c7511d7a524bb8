import { EventEmitter } from "node:events";
import { describe, expect, it } from "vitest";
import { handleShutdownSignals, type SignalSource } from "./signals.ts";

/** Stands in for `process`: emits a signal with its name, as process does. */
function fakeProcess() {
  const emitter = new EventEmitter();
  const source = emitter as unknown as SignalSource;
  return {
    source,
    send: (sig: NodeJS.Signals) => emitter.emit(sig, sig),
    count: emitter.listenerCount.bind(emitter),
  };
}

describe("handleShutdownSignals", () => {
  it("drains on the first signal and forces on the second", () => {
    const p = fakeProcess();
    const forced: NodeJS.Signals[] = [];
    const s = handleShutdownSignals({ source: p.source, onForce: (sig) => forced.push(sig) });
    expect(s.signal.aborted).toBe(false);
    p.send("SIGTERM");
    expect(s.signal.aborted).toBe(true);
    expect(forced).toEqual([]);
    p.send("SIGINT");
    expect(forced).toEqual(["SIGINT"]);
    p.send("SIGTERM");
    expect(forced).toEqual(["SIGINT", "SIGTERM"]);
  });

  it("listens to the given signals only, and dispose removes the handlers", () => {
    const p = fakeProcess();
    const forced: NodeJS.Signals[] = [];
    const s = handleShutdownSignals({
      source: p.source,
      signals: ["SIGHUP"],
      onForce: (sig) => forced.push(sig),
    });
    expect([p.count("SIGHUP"), p.count("SIGTERM"), p.count("SIGINT")]).toEqual([1, 0, 0]);
    p.send("SIGTERM");
    expect(s.signal.aborted).toBe(false);
    p.send("SIGHUP");
    expect(s.signal.aborted).toBe(true);
    s.dispose();
    expect(p.count("SIGHUP")).toBe(0);
    p.send("SIGHUP");
    expect(forced).toEqual([]);
  });
});
