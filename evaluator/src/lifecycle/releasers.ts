import type { Logger } from "../log.ts";

interface Releaser {
  readonly name: string;
  readonly release: () => Promise<void> | void;
}

/**
 * A stack of releasers (graphile-worker `signals.ts`): whatever is started pushes how to stop it;
 * shutdown releases them in reverse order, each isolated (one failing does not keep the others
 * from running) and bounded in time (a hung close does not hang the exit).
 */
export class Releasers {
  readonly #stack: Releaser[] = [];

  push(name: string, release: () => Promise<void> | void): void {
    this.#stack.push({ name, release });
  }

  async releaseAll(log: Logger, timeoutMs = 5000): Promise<void> {
    while (this.#stack.length > 0) {
      const r = this.#stack.pop()!;
      let timer: ReturnType<typeof setTimeout> | undefined;
      try {
        await Promise.race([
          Promise.resolve().then(r.release),
          new Promise<void>((_, reject) => {
            timer = setTimeout(() => reject(new Error(`timed out after ${timeoutMs} ms`)), timeoutMs);
          }),
        ]);
      } catch (err) {
        log.warn(
          { releaser: r.name, err: err instanceof Error ? err.message : String(err) },
          "release_failed",
        );
      } finally {
        clearTimeout(timer);
      }
    }
  }
}
