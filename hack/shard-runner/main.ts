/**
 * CLI of the shard runner (a dev/test harness; see shardRunner.ts):
 *
 *   node hack/shard-runner/main.ts --kubeconfig K --namespace NS --shardset NAME --file-sd PATH \
 *     [--evaluator-cmd CMD] [--log-dir DIR] [--log-level info]
 *
 * `--evaluator-cmd` is a JSON array (`'["node","worker.js"]'`) or a space-separated command line;
 * the default is `node evaluator/bin/evaluator.ts run`. Logs are pino JSON lines on stdout.
 * The first SIGTERM/SIGINT stops every shard process gracefully and exits 0; a second one exits at once.
 */
import * as k8s from "@kubernetes/client-node";
import { Command, CommanderError, InvalidArgumentError } from "commander";
import pino from "pino";
import { handleShutdownSignals } from "../../runtime/signals.ts";
import { defaultEvaluatorCommand, type ShardRunner, startShardRunner } from "./shardRunner.ts";

/** Parses `--evaluator-cmd`: a JSON array of strings, or words separated by spaces. */
export function parseCommand(raw: string): string[] {
  const trimmed = raw.trim();
  if (trimmed.startsWith("[")) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(trimmed);
    } catch {
      throw new InvalidArgumentError("not a JSON array of strings");
    }
    if (!Array.isArray(parsed) || parsed.length === 0 || !parsed.every((a) => typeof a === "string")) {
      throw new InvalidArgumentError("not a non-empty JSON array of strings");
    }
    return parsed;
  }
  const words = trimmed.split(/\s+/).filter(Boolean);
  if (words.length === 0) throw new InvalidArgumentError("empty command");
  return words;
}

interface ProgramDeps {
  stdout: NodeJS.WritableStream;
  /** Aborted on the first SIGTERM/SIGINT. */
  shutdownSignal: AbortSignal;
}

/** Builds the commander program; `parseAsync` resolves after the runner has stopped. */
export function createProgram(deps: ProgramDeps): Command {
  return new Command("shard-runner")
    .description("Run one evaluator process per shard Deployment of an EvaluatorShardSet (no kubelet needed)")
    .requiredOption("--namespace <ns>", "namespace of the EvaluatorShardSet")
    .requiredOption("--shardset <name>", "EvaluatorShardSet name (label evaluator.iot.dev/shardset)")
    .requiredOption("--file-sd <path>", "Prometheus file_sd JSON file to maintain")
    .option("--kubeconfig <path>", "kubeconfig (default: $KUBECONFIG or ~/.kube/config)")
    .option("--evaluator-cmd <cmd>", "shard process command: JSON array or space-separated", parseCommand)
    .option("--cwd <dir>", "working directory of the shard processes (default: the repository root)")
    .option(
      "--log-dir <dir>",
      "append each process's output to <dir>/<deployment>.log instead of inheriting it",
    )
    .option("--log-level <level>", "pino log level", "info")
    .exitOverride()
    .action(async (o: Record<string, string | string[] | undefined>) => {
      const log = pino({ level: String(o["logLevel"]), base: { component: "shard-runner" } }, deps.stdout);
      const kc = new k8s.KubeConfig();
      if (typeof o["kubeconfig"] === "string") kc.loadFromFile(o["kubeconfig"]);
      else kc.loadFromDefault();
      const command = (o["evaluatorCmd"] as string[] | undefined) ?? defaultEvaluatorCommand();
      const runner: ShardRunner = startShardRunner({
        kc,
        namespace: String(o["namespace"]),
        shardSet: String(o["shardset"]),
        fileSdPath: String(o["fileSd"]),
        command,
        ...(typeof o["cwd"] === "string" ? { cwd: o["cwd"] } : {}),
        ...(typeof o["logDir"] === "string" ? { logDir: o["logDir"] } : {}),
        log,
      });
      log.info({ namespace: o["namespace"], shardset: o["shardset"], command }, "Shard runner started");
      if (!deps.shutdownSignal.aborted) {
        await new Promise((resolve) =>
          deps.shutdownSignal.addEventListener("abort", resolve, { once: true }),
        );
      }
      log.info("Shard runner stopping");
      await runner.stop();
      log.info("Shard runner stopped");
    });
}

/** Entry point: the only code here that touches signals and exit codes. */
export async function main(argv: readonly string[]): Promise<number> {
  const shutdown = handleShutdownSignals({
    // A second signal means "now": the shard processes get SIGTERM from the terminal's process group anyway.
    onForce: () => process.exit(130),
  });
  try {
    await createProgram({ stdout: process.stdout, shutdownSignal: shutdown.signal }).parseAsync(
      argv as string[],
      { from: "node" },
    );
    return 0;
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode;
    process.stderr.write(`shard-runner: ${err instanceof Error ? err.message : String(err)}\n`);
    return 1;
  }
}

if (import.meta.main) {
  process.exitCode = await main(process.argv);
}
