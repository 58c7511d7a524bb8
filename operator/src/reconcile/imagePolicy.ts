/**
 * Which evaluator images the operator runs (`--allowed-image-prefixes`), decided on the image
 * exactly as written in `spec.evaluator.image`: no registry or `docker.io/library/` is added, so a
 * prefix matches only images written the same way (write both fully qualified).
 *
 * A plain `startsWith` would let `registry.example.com/team` allow
 * `registry.example.com/team-evil/x`, so a prefix matches on a boundary of the reference only:
 * - a prefix ending in `/`, `:` or `@` matches every image that starts with it
 *   (`registry.example.com/team/`: the repositories below team/);
 * - any other prefix holding a `/` names a repository (or a path of them): it matches the image
 *   equal to it, or followed by `/` (a path below it), `:` (a tag) or `@` (a digest).
 *   `registry.example.com/team/evaluator` allows `…/evaluator`, `…/evaluator:1.2`,
 *   `…/evaluator@sha256:…` and `…/evaluator/x`, never `…/evaluator-evil`;
 * - a prefix without `/` is a registry host: it matches only when followed by `/`.
 *   `registry.example.com` allows `registry.example.com/…`, never `registry.example.com.evil.io/…`
 *   (another host) nor `registry.example.com` or `registry.example.com:1` (images of Docker Hub's
 *   library, for a container runtime).
 */

/** The characters that end one part of an image reference: a path segment, the name, the tag. */
const SEPARATORS = ["/", ":", "@"];

/**
 * True when `image` may run under `prefixes` (see the module comment); an empty list allows every
 * image.
 */
export function imageAllowed(image: string, prefixes: readonly string[]): boolean {
  if (prefixes.length === 0) return true;
  return prefixes.some((prefix) => matchesPrefix(image, prefix));
}

function matchesPrefix(image: string, prefix: string): boolean {
  if (prefix === "" || !image.startsWith(prefix)) return false;
  if (SEPARATORS.includes(prefix.at(-1)!)) return true;
  // Without a `/` the prefix is a registry host: the image equal to it, or a `:` or `@` after it,
  // would be a repository of Docker Hub's library, not of that host.
  const repository = prefix.includes("/");
  if (image.length === prefix.length) return repository;
  const next = image[prefix.length]!;
  return next === "/" || (repository && (next === ":" || next === "@"));
}
