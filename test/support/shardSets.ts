import * as k8s from "@kubernetes/client-node";
import { type EvaluatorShardSet, GROUP, PLURAL, VERSION } from "../../operator/src/api/types.ts";
import { eventually } from "./cluster.ts";

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

/**
 * Waits until the set reports `shards` shards, all ready, no reshard in flight and its generation
 * observed, with exactly that many shard Deployments; resolves with the set.
 */
export async function settledShardSet(
  kc: k8s.KubeConfig,
  namespace: string,
  name: string,
  shards: number,
  timeoutMs = 120_000,
): Promise<EvaluatorShardSet> {
  const apps = kc.makeApiClient(k8s.AppsV1Api);
  return eventually(
    async () => {
      const s = await getShardSet(kc, namespace, name);
      const st = s.status;
      const deployments = await apps.listNamespacedDeployment({
        namespace,
        labelSelector: `evaluator.iot.dev/shardset=${name}`,
      });
      return st?.shards === shards &&
        st.readyShards === shards &&
        !st.reshard &&
        st.observedGeneration === s.metadata.generation &&
        deployments.items.length === shards
        ? s
        : undefined;
    },
    { timeoutMs, what: `${namespace}/${name} settled at ${shards} shards` },
  );
}
