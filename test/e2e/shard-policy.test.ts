import * as k8s from "@kubernetes/client-node";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import type { EvaluatorShardSet } from "../../operator/src/api/types.ts";
import { migrateUp } from "../../operator/src/migrate/runMigrations.ts";
import { createTestNamespace, eventually, installCrd, kubectl, loadKubeConfig } from "../support/cluster.ts";
import { msg, startOperator } from "../support/operator.ts";
import { createTestDatabase } from "../support/postgres.ts";
import { getShardSet, settledShardSet, shardSetManifest } from "../support/shardSets.ts";
import { seedTenants, shardHistogram } from "../support/tenants.ts";

/**
 * What an EvaluatorShardSet may put into the pods the operator creates for it, on the real local
 * plane: the allowed image prefixes (--allowed-image-prefixes) and the ServiceAccount passthrough
 * (--no-service-account-passthrough).
 */
const kc = loadKubeConfig();
const apps = kc.makeApiClient(k8s.AppsV1Api);
const core = kc.makeApiClient(k8s.CoreV1Api);

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
});
beforeAll(async () => {
  await installCrd();
});

const SAMPLE_IMAGE = "registry.invalid/evaluator:1.0.0";
const ALLOWED = "registry.example.com/team/";
/** A set named `name` running `image` (the sample manifest with another image). */
const manifest = (name: string, shards: number, image: string, specExtra = "") =>
  shardSetManifest(name, shards, specExtra).replace(SAMPLE_IMAGE, image);

async function shardDeployments(ns: string, set: string): Promise<k8s.V1Deployment[]> {
  const list = await apps.listNamespacedDeployment({
    namespace: ns,
    labelSelector: `evaluator.iot.dev/shardset=${set}`,
  });
  return list.items;
}

const conditionOf = (s: EvaluatorShardSet, type: string) =>
  s.status?.conditions?.find((c) => c.type === type);

const settled = (ns: string, name: string, shards: number) => settledShardSet(kc, ns, name, shards);

describe("--allowed-image-prefixes", () => {
  it("refuses a set with another image: a condition and a Warning Event, no Deployment, no tenant placed; fixing the image runs it", async () => {
    const ns = await createTestNamespace(kc, "image-policy");
    cleanups.push(() => ns.remove());
    // The shard pods must pass the Pod Security Admission `restricted` level (the chart README says
    // they do): the ReplicaSets could not create them otherwise.
    await kubectl(["label", "namespace", ns.name, "pod-security.kubernetes.io/enforce=restricted"]);
    const db = await createTestDatabase("image_policy");
    cleanups.push(() => db.drop());
    await migrateUp({ db: db.pool });
    const shardSet = `${ns.name}/alerts`;
    await seedTenants(db.pool, shardSet, 20);
    await kubectl([
      "create",
      "secret",
      "generic",
      "operator-db",
      "-n",
      ns.name,
      `--from-literal=url=${db.url}`,
    ]);

    const op = startOperator([
      "--namespaces",
      ns.name,
      "--no-leader-elect",
      "--drain-slack",
      "0s",
      "--resync-period",
      "1s",
      "--allowed-image-prefixes",
      ALLOWED,
    ]);
    cleanups.push(() => op.kill("SIGKILL"));
    await op.waitForLog(msg("Caches synced; reconciling"));

    // A sibling of the allowed path is not allowed: prefixes match on a boundary of the reference.
    const refusedImage = "registry.example.com/team-evil/evaluator:1";
    await kubectl(["apply", "-n", ns.name, "-f", "-"], manifest("alerts", 2, refusedImage));
    const refused = await eventually(
      async () => {
        const s = await getShardSet(kc, ns.name, "alerts");
        return conditionOf(s, "Degraded")?.reason === "ImageNotAllowed" ? s : undefined;
      },
      { what: "the set refused" },
    );
    const message =
      `spec.evaluator.image "${refusedImage}" does not start with an allowed prefix (${ALLOWED}): ` +
      "nothing is applied until it does";
    expect(conditionOf(refused, "Degraded")).toMatchObject({ status: "True", message });
    expect(conditionOf(refused, "Ready")).toMatchObject({
      status: "False",
      reason: "ImageNotAllowed",
      message,
    });
    const events = await eventually(
      async () => {
        const list = await core.listNamespacedEvent({
          namespace: ns.name,
          fieldSelector: "involvedObject.name=alerts",
        });
        return list.items.length > 0 ? list.items : undefined;
      },
      { what: "the Warning Event" },
    );
    expect(events.map((e) => [e.type, e.reason, e.message])).toEqual([
      ["Warning", "ImageNotAllowed", message],
    ]);

    // Reconciled again and again (resync every second): still nothing applied, no tenant placed,
    // and no second Event for the same refusal.
    const reconciled = op.logs.filter((l) => l["msg"] === "Planned reconcile step").length;
    await op.waitForLog(
      (l) =>
        l["msg"] === "Planned reconcile step" &&
        op.logs.filter((x) => x["msg"] === "Planned reconcile step").length >= reconciled + 3,
    );
    expect(await shardDeployments(ns.name, "alerts")).toEqual([]);
    expect((await shardHistogram(db.pool, shardSet)).unassigned).toBe(20);
    const { rows } = await db.pool.query("SELECT name FROM shard_sets WHERE name = $1", [shardSet]);
    expect(rows).toEqual([]);
    expect(op.logs.filter((l) => l["msg"] === "Applied Deployment")).toEqual([]);
    const after = await core.listNamespacedEvent({
      namespace: ns.name,
      fieldSelector: "involvedObject.name=alerts",
    });
    expect(after.items).toHaveLength(1);

    // Fixed: the same set runs, its tenants are placed, the refusal is gone.
    await kubectl(["apply", "-n", ns.name, "-f", "-"], manifest("alerts", 2, `${ALLOWED}evaluator:1`));
    const running = await settled(ns.name, "alerts", 2);
    expect(conditionOf(running, "Degraded")).toMatchObject({ status: "False", reason: "AsExpected" });
    expect(conditionOf(running, "Ready")).toMatchObject({ status: "True", reason: "AllShardsReady" });
    const deployments = await shardDeployments(ns.name, "alerts");
    expect(deployments.map((d) => d.spec?.template.spec?.containers[0]?.image)).toEqual([
      `${ALLOWED}evaluator:1`,
      `${ALLOWED}evaluator:1`,
    ]);
    expect((await shardHistogram(db.pool, shardSet)).unassigned).toBe(0);
  });
});

describe("--no-service-account-passthrough", () => {
  it("runs the shard pods as the namespace's default ServiceAccount, also for a set that named another before", async () => {
    const ns = await createTestNamespace(kc, "sa-passthrough");
    cleanups.push(() => ns.remove());
    await kubectl(["create", "serviceaccount", "cloud-admin", "-n", ns.name]);
    const args = ["--namespaces", ns.name, "--no-leader-elect", "--no-assignments"];
    const serviceAccountOf = async () =>
      (await shardDeployments(ns.name, "alerts")).map((d) => d.spec?.template.spec?.serviceAccountName);

    // Passthrough on (the default): the set's ServiceAccount.
    const on = startOperator(args);
    cleanups.push(() => on.kill("SIGKILL"));
    await on.waitForLog(msg("Caches synced; reconciling"));
    await kubectl(
      ["apply", "-n", ns.name, "-f", "-"],
      manifest("alerts", 1, SAMPLE_IMAGE).replace(
        "    tickIntervalSeconds: 5\n",
        "    tickIntervalSeconds: 5\n    serviceAccountName: cloud-admin\n",
      ),
    );
    await settled(ns.name, "alerts", 1);
    expect(await serviceAccountOf()).toEqual(["cloud-admin"]);
    // Removed from the set: back to `default`, alias included (an omitted field would leave the
    // old name in the deprecated `serviceAccount` alias, which the apiserver then keeps using).
    await kubectl(["apply", "-n", ns.name, "-f", "-"], manifest("alerts", 1, SAMPLE_IMAGE));
    await eventually(async () => ((await serviceAccountOf()).join() === "default" ? true : undefined), {
      what: "the shard's ServiceAccount back to default once the set names none",
    });
    expect((await shardDeployments(ns.name, "alerts"))[0]?.spec?.template.spec?.serviceAccount).toBe(
      "default",
    );
    await kubectl(
      ["apply", "-n", ns.name, "-f", "-"],
      manifest("alerts", 1, SAMPLE_IMAGE).replace(
        "    tickIntervalSeconds: 5\n",
        "    tickIntervalSeconds: 5\n    serviceAccountName: cloud-admin\n",
      ),
    );
    await eventually(async () => ((await serviceAccountOf()).join() === "cloud-admin" ? true : undefined), {
      what: "the set's ServiceAccount again",
    });
    await on.kill("SIGKILL");

    // Off: the same set's shard now runs as `default`, and its pods too.
    const off = startOperator([...args, "--no-service-account-passthrough"]);
    cleanups.push(() => off.kill("SIGKILL"));
    await eventually(async () => ((await serviceAccountOf()).join() === "default" ? true : undefined), {
      what: "the shard's ServiceAccount replaced by default",
    });
    const [d] = await shardDeployments(ns.name, "alerts");
    // The deprecated alias the apiserver derives from serviceAccountName follows it.
    expect(d?.spec?.template.spec?.serviceAccount).toBe("default");
    await settled(ns.name, "alerts", 1);
    const pods = await eventually(
      async () => {
        const list = await core.listNamespacedPod({
          namespace: ns.name,
          labelSelector: "evaluator.iot.dev/shardset=alerts",
        });
        const live = list.items.filter((p) => !p.metadata?.deletionTimestamp);
        return live.length === 1 && live[0]?.spec?.serviceAccountName === "default" ? live : undefined;
      },
      { what: "the shard pod running as default" },
    );
    expect(pods[0]?.spec?.automountServiceAccountToken).toBe(false);
  });
});
