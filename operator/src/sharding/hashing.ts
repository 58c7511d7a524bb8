/**
 * Stable, platform-independent 32-bit hashes used by the sharding code: to break ties between
 * tenants deterministically (never by input order) and to score tenant/shard pairs in the
 * rendezvous baseline. Not cryptographic; chosen for speed over 100k tenants.
 */

/**
 * MurmurHash3's 32-bit finaliser: every input bit affects every output bit, so ids that differ in
 * one character, or shard numbers that differ by one, land far apart.
 */
export function fmix32(value: number): number {
  let h = value | 0;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/**
 * Hash of a tenant id: FNV-1a over the UTF-16 code units, then {@link fmix32}.
 * The same id always gives the same unsigned 32-bit value, on every platform and in every run.
 */
export function hashTenantId(id: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < id.length; i++) {
    h ^= id.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return fmix32(h);
}
