import { describe, expect, it } from "vitest";
import { isPostgresOutage, isValkeyOutage } from "./outages.ts";

const coded = (code: string) => Object.assign(new Error(code), { code });
const named = (name: string) => Object.assign(new Error(name), { name });

describe("outage classification", () => {
  it("PostgreSQL: no answer or a connection/resource/shutdown SQLSTATE is an outage", () => {
    expect(isPostgresOutage(coded("ECONNREFUSED"))).toBe(true);
    expect(isPostgresOutage(new Error("Connection terminated unexpectedly"))).toBe(true);
    expect(isPostgresOutage(coded("08006"))).toBe(true);
    expect(isPostgresOutage(coded("57P01"))).toBe(true);
    expect(isPostgresOutage(coded("53300"))).toBe(true);
    expect(isPostgresOutage(coded("23505"))).toBe(false);
    expect(isPostgresOutage(coded("42P01"))).toBe(false);
    expect(isPostgresOutage(new TypeError("bug"))).toBe(false);
  });

  it("Valkey: everything but reply, protocol and programming errors is an outage", () => {
    expect(isValkeyOutage(new Error("Command timed out"))).toBe(true);
    expect(isValkeyOutage(new Error("Stream isn't writeable and enableOfflineQueue options is false"))).toBe(
      true,
    );
    expect(isValkeyOutage(named("MaxRetriesPerRequestError"))).toBe(true);
    expect(isValkeyOutage(named("ReplyError"))).toBe(false);
    expect(isValkeyOutage(named("ValkeyStateProtocolError"))).toBe(false);
    expect(isValkeyOutage(new RangeError("bug"))).toBe(false);
  });
});
