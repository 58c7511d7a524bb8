import { describe, expect, it } from "vitest";
import { isPostgresOutage } from "./postgresOutage.ts";

const coded = (code: string, message = code) => Object.assign(new Error(message), { code });

describe("isPostgresOutage", () => {
  it.each([
    // Node socket and DNS errors: no server answer at all.
    ["ECONNREFUSED", coded("ECONNREFUSED", "connect ECONNREFUSED 127.0.0.1:5432")],
    ["ECONNRESET", coded("ECONNRESET", "read ECONNRESET")],
    ["ECONNABORTED", coded("ECONNABORTED")],
    ["ETIMEDOUT", coded("ETIMEDOUT", "connect ETIMEDOUT 10.0.0.1:5432")],
    ["EPIPE", coded("EPIPE", "write EPIPE")],
    ["ENOTFOUND", coded("ENOTFOUND", "getaddrinfo ENOTFOUND db.invalid")],
    ["EAI_AGAIN", coded("EAI_AGAIN", "getaddrinfo EAI_AGAIN db")],
    ["EHOSTUNREACH", coded("EHOSTUNREACH")],
    ["ENETUNREACH", coded("ENETUNREACH")],
    // SQLSTATE class 08: connection exception.
    ["08000 connection_exception", coded("08000")],
    ["08003 connection_does_not_exist", coded("08003")],
    ["08006 connection_failure", coded("08006")],
    ["08P01 protocol_violation", coded("08P01")],
    // SQLSTATE class 53: insufficient resources.
    ["53000 insufficient_resources", coded("53000")],
    ["53100 disk_full", coded("53100")],
    ["53200 out_of_memory", coded("53200")],
    ["53300 too_many_connections", coded("53300", "sorry, too many clients already")],
    // 57P01–57P03: the server is going away or not there yet.
    ["57P01 admin_shutdown", coded("57P01", "terminating connection due to administrator command")],
    ["57P02 crash_shutdown", coded("57P02")],
    ["57P03 cannot_connect_now", coded("57P03", "the database system is starting up")],
    // node-postgres's own errors, without a code.
    ["Connection terminated unexpectedly", new Error("Connection terminated unexpectedly")],
    ["Connection terminated", new Error("Connection terminated")],
    ["pg-pool connect timeout", new Error("Connection terminated due to connection timeout")],
    ["pg-pool checkout timeout", new Error("timeout exceeded when trying to connect")],
    ["pg connect timeout", new Error("timeout expired")],
    ["query_timeout", new Error("Query read timeout")],
    ["a broken client", new Error("Client has encountered a connection error and is not queryable")],
    // Wrapped.
    [
      "an AggregateError of refused addresses",
      new AggregateError([coded("ECONNREFUSED"), coded("ECONNREFUSED")], "connect failed"),
    ],
    ["an outage as the cause", new Error("read failed", { cause: coded("57P01") })],
  ])("outage: %s", (_what, err) => {
    expect(isPostgresOutage(err)).toBe(true);
  });

  it.each([
    ["23505 unique_violation", coded("23505", "duplicate key value violates unique constraint")],
    ["23503 foreign_key_violation", coded("23503")],
    ["42P01 undefined_table", coded("42P01", 'relation "x" does not exist')],
    ["42601 syntax_error", coded("42601")],
    ["40001 serialization_failure", coded("40001")],
    [
      "57014 query_canceled (statement timeout)",
      coded("57014", "canceling statement due to statement timeout"),
    ],
    ["57P04 database_dropped", coded("57P04")],
    [
      "a SQLSTATE whose message mentions a connection",
      coded("42501", "permission denied to open connection"),
    ],
    ["an unrelated error mentioning a connection", new Error("Connection string is invalid")],
    ["a programming error", new TypeError("Cannot read properties of undefined")],
    ["an unknown error", new Error("something else")],
    ["an AggregateError with a non-outage", new AggregateError([coded("ECONNREFUSED"), coded("23505")])],
    ["an empty AggregateError", new AggregateError([])],
    ["a string", "ECONNREFUSED"],
    ["undefined", undefined],
    ["null", null],
  ])("not an outage: %s", (_what, err) => {
    expect(isPostgresOutage(err)).toBe(false);
  });

  it("stops on a cyclic cause chain", () => {
    const a = new Error("a") as Error & { cause?: unknown };
    const b = new Error("b", { cause: a });
    a.cause = b;
    expect(isPostgresOutage(a)).toBe(false);
  });
});
