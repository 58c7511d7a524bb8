import * as k8s from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestNamespace, eventually, kubectl, loadKubeConfig } from "../support/cluster.ts";

/** Proves the local plane is a real one: apiserver, controller-manager, scheduler and kwok all play their part. */
describe("local control plane", () => {
  const kc = loadKubeConfig();
  const apps = kc.makeApiClient(k8s.AppsV1Api);
  const core = kc.makeApiClient(k8s.CoreV1Api);
  let ns: { name: string; remove(): Promise<void> };

  beforeAll(async () => {
    ns = await createTestNamespace(kc, "plane");
  });
  afterAll(async () => {
    await ns.remove();
  });

  it("answers /readyz and reports its real version", async () => {
    expect((await kubectl(["get", "--raw", "/readyz"])).trim()).toBe("ok");
    const version = JSON.parse(await kubectl(["version", "-o", "json"]));
    expect(version.serverVersion.gitVersion).toMatch(/^v1\.\d+\.\d+$/);
  });

  it("runs a Deployment to Ready pods on the kwok node, and garbage-collects them on delete", async () => {
    const manifest = `apiVersion: apps/v1
kind: Deployment
metadata: { name: web, namespace: ${ns.name} }
spec:
  replicas: 2
  selector: { matchLabels: { app: web } }
  template:
    metadata: { labels: { app: web } }
    spec:
      containers: [{ name: web, image: registry.invalid/web:1 }]
`;
    await kubectl(["apply", "-f", "-"], manifest);

    const pods = await eventually(
      async () => {
        const list = await core.listNamespacedPod({ namespace: ns.name, labelSelector: "app=web" });
        const ready = list.items.filter((p) =>
          p.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True"),
        );
        return ready.length === 2 ? list.items : undefined;
      },
      { what: "2 Ready pods" },
    );
    for (const pod of pods) {
      expect(pod.spec?.nodeName).toBe("kwok-node-0");
      expect(pod.status?.phase).toBe("Running");
    }
    const rs = await apps.listNamespacedReplicaSet({ namespace: ns.name });
    expect(rs.items).toHaveLength(1);
    expect(rs.items[0]?.metadata?.ownerReferences?.[0]?.name).toBe("web");

    await kubectl(["delete", "deployment", "web", "-n", ns.name, "--wait=true"]);
    await eventually(
      async () => {
        const [r, p] = await Promise.all([
          apps.listNamespacedReplicaSet({ namespace: ns.name }),
          core.listNamespacedPod({ namespace: ns.name }),
        ]);
        return r.items.length === 0 && p.items.length === 0 ? true : undefined;
      },
      { what: "ReplicaSet and pods garbage-collected" },
    );
  });
});
