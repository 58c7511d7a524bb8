import { Command } from "commander";
import { registerShardsCommand } from "../assignments/cli.ts";
import {
  compileOperatorConfig,
  KUBE_API_DEFAULTS,
  type RawOperatorOptions,
} from "../config/operatorConfig.ts";
import { registerEventsCommand } from "../events/cli.ts";
import { registerMigrateCommand } from "../migrate/cli.ts";
import type { FaultPoint } from "../reconcile/reconcileShardSet.ts";
import { runOperator } from "../runOperator.ts";

export interface ProgramDeps {
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly stdout: { write(text: string): unknown };
  /** Resolves when the process is asked to stop (first SIGTERM/SIGINT). */
  readonly shutdownSignal: AbortSignal;
  /** Crash hooks for the e2e crash tests; only a test entry point sets them. */
  readonly faults?: (point: FaultPoint) => void;
  /** Runs the operator once its configuration is valid (default: runOperator; tests stop here). */
  readonly run?: typeof runOperator;
}

/** The settings `run` reads from the environment, some of them only there (the Downward API's). */
const RUN_ENVIRONMENT_HELP = `
Environment (a flag wins over its variable):
  KUBECONFIG              kubeconfig file, when --kubeconfig is not given
  WATCH_NAMESPACES        --namespaces, when the flag is not given
  LOG_LEVEL               --log-level, when the flag is not given
  ALLOWED_IMAGE_PREFIXES  --allowed-image-prefixes, when the flag is not given
  KUBE_API_QPS            --kube-api-qps, when the flag is not given
  KUBE_API_BURST          --kube-api-burst, when the flag is not given
  POD_NAMESPACE           namespace of the leader Lease, when --leader-election-namespace is not given
  POD_NAME                this replica's identity in the leader Lease (no flag; default: the host name)
  TLS_CA_FILE             PEM bundle of the CA certificates trusted for PostgreSQL over TLS, when a
                          set's database URL has sslmode=require (the chain is then checked),
                          verify-ca or verify-full and no sslrootcert (no flag; checked at start)

Durations: 500ms, 15s, 2m, 1h (at most 596h). --resync-period and --autoscale-interval are at least
1s, --leader-election-retry-period at least 100ms, and with leader election
lease-duration > renew-deadline > 1.2 × retry-period (as client-go).
Image prefixes match the image as written in the set, on a boundary: a prefix ending in "/", ":" or
"@" matches what starts with it; registry.example.com/team allows registry.example.com/team/x and
registry.example.com/team:1, never registry.example.com/team-evil/x; a registry host alone
(registry.example.com) allows registry.example.com/... only. A refused set reports Degraded and
Ready False with reason ImageNotAllowed and a Warning Event, and nothing of it is applied.
Every request to the kube-apiserver (applies, deletes, status writes, Events, Secret reads, the
Lease, lists, and each watch once when it opens) takes a token of one bucket: --kube-api-qps per
second (1 to 10000, fractions allowed), up to --kube-api-burst at once (1 to 10000); the Lease's
requests go before waiting ones, so a backlog never costs the leadership.
Exit codes: 0 after a graceful stop, 2 for bad usage or an invalid setting, 1 for any other failure.`;

/** Builds the `evaluator-operator` CLI; tests drive it with their own deps (no process globals). */
export function createProgram(deps: ProgramDeps): Command {
  const program = new Command("evaluator-operator")
    .description("Shards a multi-tenant alert-rule evaluator across Kubernetes Deployments")
    .exitOverride();

  const env = (name: string) => deps.env[name];
  program
    .command("run")
    .description("Run the operator: watch EvaluatorShardSets and converge their shards")
    .option("--kubeconfig <path>", "kubeconfig file (default: $KUBECONFIG, in-cluster, or ~/.kube/config)")
    // No commander default for the env-backed flags: commander would print a second "(default: …)".
    .option(
      "--namespaces <list>",
      "comma-separated namespaces to watch (default: $WATCH_NAMESPACES, else all)",
    )
    .option("--no-leader-elect", "run without leader election (a single replica only)")
    .option(
      "--leader-election-namespace <ns>",
      "namespace of the leader Lease (default: $POD_NAMESPACE or default)",
    )
    .option("--leader-election-id <name>", "name of the leader Lease", "evaluator-operator-leader")
    .option("--leader-election-lease-duration <d>", "how long a Lease is valid without renewal", "15s")
    .option(
      "--leader-election-renew-deadline <d>",
      "the leader steps down if it cannot renew within this",
      "10s",
    )
    .option("--leader-election-retry-period <d>", "how often candidates retry and the leader renews", "2s")
    .option("--metrics-bind-address <addr>", "address of /metrics", ":8080")
    .option("--health-probe-bind-address <addr>", "address of /healthz and /readyz", ":8081")
    .option(
      "--log-level <level>",
      "trace | debug | info | warn | error | fatal (default: $LOG_LEVEL, else info)",
    )
    .option("--resync-period <d>", "how often every set is reconciled again", "30s")
    .option("--workers <n>", "concurrent reconciles (of different sets)", "4")
    .option("--no-assignments", "manage Deployments only, never the tenant assignments in PostgreSQL")
    .option("--scale-up-timeout <d>", "Degraded after new shards stay unavailable this long", "5m")
    .option("--drain-slack <d>", "extra time removed shards keep running after one tick interval", "5s")
    .option("--autoscale-interval <d>", "how often an autoscaled set reads its metrics and decides", "15s")
    .option(
      "--allowed-image-prefixes <list>",
      "comma-separated prefixes a set's evaluator image must start with; other sets are refused " +
        "(default: $ALLOWED_IMAGE_PREFIXES, else every image)",
    )
    .option(
      "--no-service-account-passthrough",
      "ignore spec.evaluator.serviceAccountName: shard pods run as their namespace's default ServiceAccount",
    )
    .option(
      "--kube-api-qps <n>",
      `requests per second to the kube-apiserver, sustained (default: $KUBE_API_QPS, else ${KUBE_API_DEFAULTS.qps})`,
    )
    .option(
      "--kube-api-burst <n>",
      `requests to the kube-apiserver that may go at once (default: $KUBE_API_BURST, else ${KUBE_API_DEFAULTS.burst})`,
    )
    .addHelpText("after", RUN_ENVIRONMENT_HELP)
    .action(async (opts: Record<string, unknown>) => {
      const raw: RawOperatorOptions = {
        kubeconfig: opts["kubeconfig"] as string | undefined,
        namespaces: (opts["namespaces"] as string | undefined) ?? env("WATCH_NAMESPACES") ?? "",
        leaderElect: opts["leaderElect"] as boolean,
        leaderElectionNamespace: opts["leaderElectionNamespace"] as string | undefined,
        leaderElectionId: opts["leaderElectionId"] as string,
        leaseDuration: opts["leaderElectionLeaseDuration"] as string,
        renewDeadline: opts["leaderElectionRenewDeadline"] as string,
        retryPeriod: opts["leaderElectionRetryPeriod"] as string,
        metricsBindAddress: opts["metricsBindAddress"] as string,
        healthProbeBindAddress: opts["healthProbeBindAddress"] as string,
        logLevel: (opts["logLevel"] as string | undefined) ?? env("LOG_LEVEL") ?? "info",
        resyncPeriod: opts["resyncPeriod"] as string,
        workers: opts["workers"] as string,
        assignments: opts["assignments"] as boolean,
        scaleUpTimeout: opts["scaleUpTimeout"] as string,
        drainSlack: opts["drainSlack"] as string,
        autoscaleInterval: opts["autoscaleInterval"] as string,
        allowedImagePrefixes:
          (opts["allowedImagePrefixes"] as string | undefined) ?? env("ALLOWED_IMAGE_PREFIXES") ?? "",
        serviceAccountPassthrough: opts["serviceAccountPassthrough"] as boolean,
        kubeApiQps:
          (opts["kubeApiQps"] as string | undefined) ?? env("KUBE_API_QPS") ?? String(KUBE_API_DEFAULTS.qps),
        kubeApiBurst:
          (opts["kubeApiBurst"] as string | undefined) ??
          env("KUBE_API_BURST") ??
          String(KUBE_API_DEFAULTS.burst),
      };
      const config = compileOperatorConfig(raw, deps.env);
      await (deps.run ?? runOperator)(config, {
        shutdownSignal: deps.shutdownSignal,
        ...(deps.faults ? { faults: deps.faults } : {}),
      });
    });

  registerMigrateCommand(program, { env: deps.env, stdout: deps.stdout });
  registerShardsCommand(program, { env: deps.env, stdout: deps.stdout });
  registerEventsCommand(program, { env: deps.env, stdout: deps.stdout, shutdownSignal: deps.shutdownSignal });
  return program;
}
