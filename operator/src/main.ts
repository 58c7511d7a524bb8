import { CommanderError } from "commander";
import { handleShutdownSignals } from "../../runtime/signals.ts";
import { createProgram, type ProgramDeps } from "./cli/program.ts";
import { ConfigError } from "./config/configError.ts";

/**
 * Entry point of `evaluator-operator`: the only code that touches process signals and exit codes.
 * First SIGTERM/SIGINT drains (running reconciles finish, the leader Lease is released); a second
 * one forces the exit.
 *
 * @returns the process exit code: 0, 2 for bad usage or an invalid setting, 1 for any other failure
 */
export async function main(
  argv: readonly string[],
  extra: Pick<ProgramDeps, "faults"> = {},
): Promise<number> {
  const shutdown = handleShutdownSignals({
    onForce: (sig) => {
      process.stderr.write(`second ${sig}: exiting now\n`);
      process.exit(130);
    },
  });
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
    // Commander has printed the usage error already (--help and --version exit 0).
    if (err instanceof CommanderError) return err.exitCode === 0 ? 0 : 2;
    process.stderr.write(`evaluator-operator: ${err instanceof Error ? err.message : String(err)}\n`);
    // Bad usage or an invalid setting: 2, as the evaluator and commander's own usage errors.
    return err instanceof ConfigError ? 2 : 1;
  }
}
