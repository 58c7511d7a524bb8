import * as k8s from "@kubernetes/client-node";
import { ConfigError } from "../config/configError.ts";

/**
 * The operator's KubeConfig: the file given by `--kubeconfig` (or `$KUBECONFIG`), else client-node's
 * default (in-cluster, then ~/.kube/config). A file that cannot be read or parsed is a bad setting:
 * the error names the flag and the path instead of a bare `ENOENT`.
 *
 * @throws ConfigError naming `--kubeconfig`
 */
export function loadKubeConfig(path: string | undefined): k8s.KubeConfig {
  const kc = new k8s.KubeConfig();
  if (path === undefined) {
    kc.loadFromDefault();
    return kc;
  }
  try {
    kc.loadFromFile(path);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    const problem =
      e.code === "ENOENT"
        ? "no such file"
        : e.code === "EACCES"
          ? "permission denied"
          : e.code === "EISDIR"
            ? "is a directory"
            : `not a valid kubeconfig (${e.message.split("\n")[0]})`;
    throw new ConfigError(`--kubeconfig (or $KUBECONFIG): cannot load "${path}": ${problem}`);
  }
  return kc;
}
