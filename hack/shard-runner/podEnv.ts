/**
 * The environment a kubelet would give a container, computed from a pod template the way Kubernetes
 * does it: `envFrom` first, then `env` in order; `value` with `$(VAR)` expansion against what is
 * already defined; `valueFrom` from Secrets, ConfigMaps and the downward API. Pure apart from the
 * injected Secret/ConfigMap readers, so it is unit-tested without an apiserver.
 */
import type { V1Container } from "@kubernetes/client-node";

/** Where `valueFrom` and `envFrom` look things up. Readers return the decoded data, or undefined when the object does not exist. */
export interface EnvSources {
  namespace: string;
  podName: string;
  nodeName: string;
  podIP: string;
  secret(name: string): Promise<Record<string, string> | undefined>;
  configMap(name: string): Promise<Record<string, string> | undefined>;
}

/** An env entry the runner cannot resolve (a missing Secret, an unsupported source): the process must not start. */
export class EnvResolutionError extends Error {
  override readonly name = "EnvResolutionError";
}

/**
 * Expands `$(NAME)` references against `defined`, like the kubelet: `$$` is a literal `$`, and a
 * reference to an undefined variable is kept verbatim.
 */
export function expandEnvReferences(input: string, defined: ReadonlyMap<string, string>): string {
  let out = "";
  for (let i = 0; i < input.length; i++) {
    const c = input[i];
    if (c !== "$" || i + 1 >= input.length) {
      out += c;
      continue;
    }
    const next = input[i + 1];
    if (next === "$") {
      out += "$";
      i++;
    } else if (next === "(") {
      const close = input.indexOf(")", i + 2);
      if (close === -1) {
        out += input.slice(i);
        break;
      }
      const name = input.slice(i + 2, close);
      out += defined.get(name) ?? `$(${name})`;
      i = close;
    } else {
      out += c;
    }
  }
  return out;
}

/** Downward-API fields a process on this host can answer. */
function fieldValue(fieldPath: string, src: EnvSources): string {
  switch (fieldPath) {
    case "metadata.name":
      return src.podName;
    case "metadata.namespace":
      return src.namespace;
    case "spec.nodeName":
      return src.nodeName;
    case "status.podIP":
    case "status.hostIP":
      return src.podIP;
    default:
      throw new EnvResolutionError(`fieldRef ${fieldPath} is not supported by the shard runner`);
  }
}

async function keyRef(
  kind: "Secret" | "ConfigMap",
  ref: { name?: string; key: string; optional?: boolean },
  read: (name: string) => Promise<Record<string, string> | undefined>,
): Promise<string | undefined> {
  const name = ref.name ?? "";
  const data = await read(name);
  const value = data?.[ref.key];
  if (value !== undefined) return value;
  if (ref.optional) return undefined;
  throw new EnvResolutionError(data ? `${kind} ${name} has no key ${ref.key}` : `${kind} ${name} not found`);
}

/** The container's environment as a kubelet would set it (without the service-link variables). */
export async function resolveContainerEnv(
  container: V1Container,
  src: EnvSources,
): Promise<Map<string, string>> {
  const env = new Map<string, string>();
  for (const from of container.envFrom ?? []) {
    const prefix = from.prefix ?? "";
    const ref = from.secretRef ?? from.configMapRef;
    if (!ref) continue;
    const kind = from.secretRef ? "Secret" : "ConfigMap";
    const data = await (from.secretRef ? src.secret(ref.name ?? "") : src.configMap(ref.name ?? ""));
    if (!data) {
      if (ref.optional) continue;
      throw new EnvResolutionError(`${kind} ${ref.name ?? ""} not found`);
    }
    for (const [k, v] of Object.entries(data)) env.set(prefix + k, v);
  }
  for (const e of container.env ?? []) {
    if (e.valueFrom === undefined) {
      env.set(e.name, expandEnvReferences(e.value ?? "", env));
      continue;
    }
    const vf = e.valueFrom;
    let value: string | undefined;
    if (vf.secretKeyRef) value = await keyRef("Secret", vf.secretKeyRef, src.secret);
    else if (vf.configMapKeyRef) value = await keyRef("ConfigMap", vf.configMapKeyRef, src.configMap);
    else if (vf.fieldRef) value = fieldValue(vf.fieldRef.fieldPath, src);
    else
      throw new EnvResolutionError(
        `env ${e.name}: this valueFrom source is not supported by the shard runner`,
      );
    if (value !== undefined) env.set(e.name, value);
  }
  return env;
}
