import { readFileSync } from "node:fs";

const cache = new Map<string, string>();

/** Runtime SQL of the assignments module, from ./sql/<name>.sql (parameterized only); read once. */
export function sql(name: string): string {
  let text = cache.get(name);
  if (text === undefined) {
    text = readFileSync(new URL(`./sql/${name}.sql`, import.meta.url), "utf8");
    cache.set(name, text);
  }
  return text;
}
