import { describe, expect, it } from "vitest";
import { errorMessage, statusCode } from "./errors.ts";

/** An error shaped like client-node 2.x's ApiException: a multi-line message and the Status as JSON text. */
function apiException(code: number, status: object | string): Error {
  const body = typeof status === "string" ? status : JSON.stringify(status);
  return Object.assign(new Error(`HTTP-Code: ${code}\nMessage: Unknown API Status Code!\nBody: ${body}`), {
    code,
    body,
  });
}

describe("errorMessage", () => {
  it.each([
    ["an Error", new Error("boom"), "boom"],
    ["a string", "plain", "plain"],
    ["undefined", undefined, "undefined"],
    ["null", null, "null"],
    ["an object with a message", { message: "from object" }, "from object"],
    ["a multi-line message (first line only)", new Error("first\nsecond"), "first"],
    [
      "an API error (the Status message wins)",
      apiException(422, { kind: "Status", message: 'Deployment "x" is invalid' }),
      'Deployment "x" is invalid',
    ],
    ["an API error whose body is not JSON", apiException(502, "<html>bad gateway</html>"), "HTTP-Code: 502"],
    ["an API error whose Status has no message", apiException(500, { kind: "Status" }), "HTTP-Code: 500"],
    ["a parsed Status body", { body: { message: "parsed" }, message: "outer" }, "parsed"],
    ["a multi-line Status message", apiException(400, { message: "one\ntwo" }), "one"],
  ])("%s", (_what, err, expected) => {
    expect(errorMessage(err)).toBe(expected);
  });

  it("caps the message at 512 characters", () => {
    expect(errorMessage(new Error("x".repeat(2000)))).toHaveLength(512);
    expect(errorMessage(apiException(409, { message: "y".repeat(2000) }))).toBe("y".repeat(512));
  });
});

describe("statusCode", () => {
  it.each([
    ["ApiException code", apiException(404, { message: "not found" }), 404],
    ["raw HTTP statusCode", Object.assign(new Error("GET /x: HTTP 409"), { statusCode: 409 }), 409],
    [
      "a socket error's string code",
      Object.assign(new Error("connect"), { code: "ECONNREFUSED" }),
      undefined,
    ],
    ["a plain Error", new Error("no status"), undefined],
    ["undefined", undefined, undefined],
    ["null", null, undefined],
  ])("%s", (_what, err, expected) => {
    expect(statusCode(err)).toBe(expected);
  });
});
