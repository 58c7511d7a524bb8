import * as k8s from "@kubernetes/client-node";

/**
 * Reads Secrets: all the assignments resolver needs of Kubernetes (a set's database URL, from the
 * Secret its spec names). Apart from `KubeWriter`, whose writes are the reconcile's.
 */
export interface SecretReader {
  /**
   * Reads one key of a Secret, decoded as UTF-8.
   * @throws the client's error when the Secret cannot be read; Error when it has no such key
   */
  readSecretKey(namespace: string, name: string, key: string): Promise<string>;
}

/** A {@link SecretReader} on the cluster `kc` points at. */
export function createSecretReader(kc: k8s.KubeConfig): SecretReader {
  const core = kc.makeApiClient(k8s.CoreV1Api);
  return {
    async readSecretKey(namespace, name, key) {
      const secret = await core.readNamespacedSecret({ name, namespace });
      const value = secret.data?.[key];
      if (value === undefined) throw new Error(`Secret ${namespace}/${name} has no key "${key}"`);
      return Buffer.from(value, "base64").toString("utf8");
    },
  };
}
