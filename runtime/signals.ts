/** The part of `process` that {@link handleShutdownSignals} uses (tests pass an EventEmitter). */
export interface SignalSource {
  on(event: NodeJS.Signals, listener: (signal: NodeJS.Signals) => void): unknown;
  off(event: NodeJS.Signals, listener: (signal: NodeJS.Signals) => void): unknown;
}

export interface ShutdownSignalOptions {
  /**
   * The second signal: the caller wants out now. Called with that signal; the entry point decides
   * what forcing means (print a line, `process.exit(130)`) — only entry points call `process.exit`.
   */
  readonly onForce: (signal: NodeJS.Signals) => void;
  /** Signals that ask for a shutdown (default SIGTERM and SIGINT). */
  readonly signals?: readonly NodeJS.Signals[];
  /** Where the signals come from (default: `process`). */
  readonly source?: SignalSource;
}

/** What {@link handleShutdownSignals} hands back. */
export interface ShutdownSignals {
  /** Aborted on the first signal: the program drains and returns. */
  readonly signal: AbortSignal;
  /** Removes the handlers (after which a signal has its default effect again). */
  dispose(): void;
}

/**
 * Graceful shutdown as graphile-worker's `signals.ts` does it: the first SIGTERM/SIGINT aborts
 * `signal` (no new work; running work finishes; releasers run), a second one calls `onForce`. Only
 * the entry points (`main.ts`) install it, so library code never touches process signals.
 */
export function handleShutdownSignals(opts: ShutdownSignalOptions): ShutdownSignals {
  const source = opts.source ?? process;
  const signals = opts.signals ?? ["SIGTERM", "SIGINT"];
  const shutdown = new AbortController();
  const onSignal = (sig: NodeJS.Signals) => {
    if (shutdown.signal.aborted) {
      opts.onForce(sig);
      return;
    }
    shutdown.abort();
  };
  for (const sig of signals) source.on(sig, onSignal);
  return {
    signal: shutdown.signal,
    dispose() {
      for (const sig of signals) source.off(sig, onSignal);
    },
  };
}
