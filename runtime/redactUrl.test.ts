import { describe, expect, it } from "vitest";
import { redactUrl, UNPARSABLE_URL } from "./redactUrl.ts";

describe("redactUrl", () => {
  it.each([
    ["a plain PostgreSQL URL", "postgres://db.svc:5432/app", "postgres://db.svc:5432/app"],
    ["user and password", "postgres://app:hunter2@db.svc:5432/app", "postgres://db.svc:5432/app"],
    ["a user alone", "postgresql://app@db.svc/app", "postgresql://db.svc/app"],
    ["?password=", "postgres://app@db.svc:5432/app?password=hunter2", "postgres://db.svc:5432/app"],
    [
      "?sslpassword= and other parameters",
      "postgres://db.svc/app?sslmode=verify-full&sslpassword=hunter2&application_name=x",
      "postgres://db.svc/app",
    ],
    ["a fragment", "postgres://db.svc/app#hunter2", "postgres://db.svc/app"],
    [
      "percent-encoded user, password and parameter",
      "postgres://ap%40p:hun%2Fter%402@db.svc/app?password=hun%26ter2",
      "postgres://db.svc/app",
    ],
    ["an @ inside a ?password= value", "postgres://db.svc/app?password=hun@ter2", "postgres://db.svc/app"],
    ["a percent-encoded database name", "postgres://db.svc/my%20app", "postgres://db.svc/my%20app"],
    ["redis:// with a password", "redis://:hunter2@valkey.svc:6379/0", "redis://valkey.svc:6379/0"],
    [
      "rediss:// with user, password and ?password=",
      "rediss://default:hunter2@valkey.svc:6380/3?password=hunter2&tls=true",
      "rediss://valkey.svc:6380/3",
    ],
    ["redis:// without a database", "redis://valkey.svc", "redis://valkey.svc"],
    ["an IPv6 host", "redis://:hunter2@[::1]:6379/0", "redis://[::1]:6379/0"],
    [
      "a socket directory as ?host=",
      "postgres://app:hunter2@/app?host=/run/postgresql&password=hunter2",
      "postgres://%2Frun%2Fpostgresql/app",
    ],
    [
      "a percent-encoded socket host",
      "postgres://%2Frun%2Fpostgresql/app",
      "postgres://%2Frun%2Fpostgresql/app",
    ],
    ["no host at all", "postgres:///app?password=hunter2", "postgres:///app"],
    ["uppercase scheme", "POSTGRES://db.svc/app", "postgres://db.svc/app"],
    [
      "a Prometheus URL (its path is kept)",
      "https://prom.example:9090/prometheus/api/v1/query?query=up&token=hunter2",
      "https://prom.example:9090/prometheus/api/v1/query",
    ],
  ])("%s", (_what, raw, expected) => {
    const shown = redactUrl(raw);
    expect(shown).toBe(expected);
    expect(shown).not.toMatch(/hunter|hun%|ap%40p|app:/);
  });

  it.each([
    ["not a URL at all", "hunter2"],
    ["a libpq key/value string", "host=db.svc user=app password=hunter2"],
    ["a password pasted with a colon", "hunter2:more"],
    ["an unknown scheme", "mysql://app:hunter2@db.svc/app"],
    ["no // after the scheme", "postgres:hunter2@db.svc/app"],
    ["a bad port", "postgres://app:hunter2@db.svc:99999/app"],
    ["an unencoded # in the password", "postgres://app:hun#ter2@db.svc/app"],
    [
      "an unencoded / in the password (the user would look like the host)",
      "postgres://app:12/hunter2@db.svc/app",
    ],
    ["an unencoded ? in the password", "postgres://app:12?hunter2@db.svc/app"],
    ["a backslash in an http URL's credentials", "http://app\\hunter2@prom.example/"],
    ["leading spaces", "  postgres://app:hunter2@db.svc/app"],
    ["the empty string", ""],
  ])("shows nothing of %s", (_what, raw) => {
    expect(redactUrl(raw)).toBe(UNPARSABLE_URL);
  });
});
