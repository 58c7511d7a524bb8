import * as k8s from "@kubernetes/client-node";
import { type EvaluatorShardSet, GROUP, PLURAL, VERSION } from "../../operator/src/api/types.ts";

/** A minimal EvaluatorShardSet manifest for tests (5 s ticks so scale-down drains quickly). */
export function shardSetManifest(name: string, shards: number, specExtra = ""): string {
  return `apiVersion: evaluator.iot.dev/v1alpha1
kind: EvaluatorShardSet
metadata: { name: ${name} }
spec:
  shards: ${shards}
${specExtra}  evaluator:
    image: registry.invalid/evaluator:1.0.0
    tickIntervalSeconds: 5
    tenantBudgetMs: 1000
    databaseSecretRef: { name: evaluator-db }
    valkeySecretRef: { name: evaluator-valkey }
  database: { secretRef: { name: operator-db } }
`;
}

/** Reads a shard set straight from the apiserver (not a cache). */
export async function getShardSet(
  kc: k8s.KubeConfig,
  namespace: string,
  name: string,
): Promise<EvaluatorShardSet> {
  const custom = kc.makeApiClient(k8s.CustomObjectsApi);
  return (await custom.getNamespacedCustomObject({
    group: GROUP,
    version: VERSION,
    plural: PLURAL,
    namespace,
    name,
  })) as EvaluatorShardSet;
}
