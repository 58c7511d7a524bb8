import * as k8s from "@kubernetes/client-node";
import { statusCode } from "../../../runtime/errors.ts";
import {
  API_VERSION,
  type EvaluatorShardSet,
  type EvaluatorShardSetStatus,
  FIELD_MANAGER,
  GROUP,
  KIND,
  PLURAL,
  VERSION,
} from "../api/types.ts";

/** Every write the reconcile makes to Kubernetes, behind one narrow interface. */
export interface KubeWriter {
  /** Server-side apply under the operator's one field manager; returns the object as stored. */
  applyDeployment(d: k8s.V1Deployment): Promise<k8s.V1Deployment>;
  deleteDeployment(namespace: string, name: string): Promise<void>;
  /**
   * Replaces `.status` through the status subresource, whole: a JSON Patch `add /status`. A merge
   * patch would merge nested objects, so a reading that went missing would linger in
   * `status.metrics` and a finished reshard's fields in the next one's; every field of the status is
   * the operator's.
   */
  patchStatus(set: EvaluatorShardSet, status: EvaluatorShardSetStatus): Promise<EvaluatorShardSet>;
  event(set: EvaluatorShardSet, type: "Normal" | "Warning", reason: string, message: string): Promise<void>;
}

/** The reconcile's {@link KubeWriter}: every write it makes to Kubernetes. */
export function createKubeWriter(kc: k8s.KubeConfig, component = "evaluator-operator"): KubeWriter {
  const objects = k8s.KubernetesObjectApi.makeApiClient(kc);
  const apps = kc.makeApiClient(k8s.AppsV1Api);
  const core = kc.makeApiClient(k8s.CoreV1Api);
  const custom = kc.makeApiClient(k8s.CustomObjectsApi);
  const jsonPatch = k8s.setHeaderOptions("Content-Type", k8s.PatchStrategy.JsonPatch);

  return {
    async applyDeployment(d) {
      return objects.patch(d, undefined, undefined, FIELD_MANAGER, true, k8s.PatchStrategy.ServerSideApply);
    },
    async deleteDeployment(namespace, name) {
      try {
        await apps.deleteNamespacedDeployment({ name, namespace, propagationPolicy: "Background" });
      } catch (err) {
        if (statusCode(err) !== 404) throw err;
      }
    },
    async patchStatus(set, status) {
      return (await custom.patchNamespacedCustomObjectStatus(
        {
          group: GROUP,
          version: VERSION,
          plural: PLURAL,
          namespace: set.metadata.namespace,
          name: set.metadata.name,
          body: [{ op: "add", path: "/status", value: status }],
        },
        jsonPatch,
      )) as EvaluatorShardSet;
    },
    async event(set, type, reason, message) {
      const now = new Date();
      await core.createNamespacedEvent({
        namespace: set.metadata.namespace,
        body: {
          metadata: { generateName: `${set.metadata.name}.`, namespace: set.metadata.namespace },
          involvedObject: {
            apiVersion: API_VERSION,
            kind: KIND,
            name: set.metadata.name,
            namespace: set.metadata.namespace,
            uid: set.metadata.uid,
            ...(set.metadata.resourceVersion ? { resourceVersion: set.metadata.resourceVersion } : {}),
          },
          type,
          reason,
          message,
          source: { component },
          reportingComponent: component,
          firstTimestamp: now,
          lastTimestamp: now,
          count: 1,
        },
      });
    },
  };
}
