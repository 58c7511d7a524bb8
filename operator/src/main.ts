import { CommanderError } from "commander";
import { createProgram, type ProgramDeps } from "./cli/program.ts";

/**
 * Entry point of `evaluator-operator`: the only code that touches process signals and exit codes.
 * First SIGTERM/SIGINT drains (running reconciles finish, the leader Lease is released); a second
 * one forces the exit.
 */
export async function main(
  argv: readonly string[],
  extra: Pick<ProgramDeps, "faults"> = {},
): Promise<number> {
  const shutdown = new AbortController();
  let signals = 0;
  const onSignal = (sig: NodeJS.Signals) => {
    signals++;
    if (signals > 1) {
      process.stderr.write(`second ${sig}: exiting now\n`);
      process.exit(130);
    }
    shutdown.abort();
  };
  process.on("SIGTERM", onSignal);
  process.on("SIGINT", onSignal);
  const program = createProgram({
    env: process.env,
    stdout: process.stdout,
    shutdownSignal: shutdown.signal,
    ...extra,
  });
  try {
    await program.parseAsync(argv as string[], { from: "node" });
    return 0;
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode;
    process.stderr.write(`evaluator-operator: ${err instanceof Error ? err.message : String(err)}\n`);
    return 1;
  }
}
