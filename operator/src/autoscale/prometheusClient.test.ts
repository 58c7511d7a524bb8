import { describe, expect, it } from "vitest";
import { createPrometheusClient } from "./prometheusClient.ts";

/** The message createPrometheusClient throws for `url`. */
function refusal(url: string): string {
  try {
    createPrometheusClient({ url });
  } catch (err) {
    return String(err);
  }
  throw new Error(`expected ${url} to be refused`);
}

describe("createPrometheusClient", () => {
  it.each([
    ["a bare token with a colon", "hunter2:more", "must be an http:// or https:// URL"],
    ["another scheme", "ftp://hunter2@prometheus:21", "must be an http:// or https:// URL"],
    ["credentials", "https://admin:hunter2@prometheus:9090", "must not carry credentials"],
    ["no URL at all", "hunter2", "not a valid URL"],
  ])("refuses %s without echoing any of it", (_what, url, says) => {
    const message = refusal(url);
    expect(message).toContain(says);
    expect(message).not.toContain("hunter2");
  });
});
