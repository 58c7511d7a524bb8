import { describe, expect, it } from "vitest";
import { isValkeyOutage } from "./outages.ts";

const named = (name: string) => Object.assign(new Error(name), { name });

describe("outage classification", () => {
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
