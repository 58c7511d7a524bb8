import { describe, expect, it } from "vitest";
import { T0, thresholdRule } from "./fixtures.ts";
import { type AlertState, INACTIVE, stepAlert } from "./lifecycle.ts";

const rule = thresholdRule({ severity: "warning", escalation: { after_seconds: 600, severity: "critical" } });
const plain = thresholdRule({ severity: "warning" });
const firing = (sinceS: number, severity: AlertState["severity"] = "warning"): AlertState => ({
  active: true,
  since: T0 + sinceS * 1000,
  severity,
});

describe("stepAlert", () => {
  it.each<[string, AlertState, boolean | null, number, number, Partial<ReturnType<typeof stepAlert>>]>([
    [
      "inactive + false → none",
      INACTIVE,
      false,
      0,
      0,
      { action: "none", state: INACTIVE, suppressed: false },
    ],
    ["inactive + unknown → none", INACTIVE, null, 0, 0, { action: "none", state: INACTIVE }],
    [
      "inactive + true → fire at the rule's severity",
      INACTIVE,
      true,
      0,
      0,
      { action: "fire", state: firing(0), severity: "warning", since: T0, escalated: false },
    ],
    [
      "inactive + true during cooldown → none, suppressed",
      INACTIVE,
      true,
      0,
      30_000,
      { action: "none", state: INACTIVE, suppressed: true, severity: null },
    ],
    [
      "firing + true → still-firing, unchanged before afterSeconds",
      firing(-599),
      true,
      0,
      0,
      { action: "still-firing", state: firing(-599), severity: "warning", escalated: false },
    ],
    [
      "firing + true at afterSeconds → escalated once",
      firing(-600),
      true,
      0,
      0,
      { action: "still-firing", state: firing(-600, "critical"), severity: "critical", escalated: true },
    ],
    [
      "already escalated → still-firing without escalating again",
      firing(-3600, "critical"),
      true,
      0,
      0,
      { action: "still-firing", state: firing(-3600, "critical"), escalated: false },
    ],
    [
      "firing + false → resolve, reporting the resolved alert",
      firing(-120, "critical"),
      false,
      0,
      0,
      { action: "resolve", state: INACTIVE, severity: "critical", since: T0 - 120_000 },
    ],
    [
      "firing + false during cooldown → still resolves",
      firing(-120),
      false,
      0,
      60_000,
      { action: "resolve", state: INACTIVE },
    ],
    [
      "firing + unknown → none, state held, no escalation even past afterSeconds",
      firing(-3600),
      null,
      0,
      0,
      { action: "none", state: firing(-3600), escalated: false },
    ],
  ])("%s", (_, prev, condition, offsetS, cooldown, expected) => {
    expect(stepAlert(prev, condition, T0 + offsetS * 1000, rule, cooldown)).toMatchObject(expected);
  });

  it("never escalates a rule without escalation", () => {
    expect(stepAlert(firing(-86_400), true, T0, plain)).toMatchObject({
      escalated: false,
      severity: "warning",
    });
  });

  it("never lowers a severity that is already higher than the escalation's", () => {
    const r = thresholdRule({ severity: "info", escalation: { after_seconds: 60, severity: "warning" } });
    expect(stepAlert(firing(-120, "critical"), true, T0, r)).toMatchObject({
      severity: "critical",
      escalated: false,
    });
  });

  it("walks inactive → firing → escalated → resolved → suppressed by cooldown → fires again", () => {
    const conditions: [number, boolean, number][] = [
      [0, true, 0],
      [60, true, 0],
      [600, true, 0],
      [660, false, 0],
      [720, true, 60_000],
      [840, true, 0],
    ];
    let state = INACTIVE;
    const trace = conditions.map(([s, c, cooldown]) => {
      const step = stepAlert(state, c, T0 + s * 1000, rule, cooldown);
      state = step.state;
      return `${step.action}${step.escalated ? "+escalated" : ""}@${step.severity ?? "-"}`;
    });
    expect(trace).toEqual([
      "fire@warning",
      "still-firing@warning",
      "still-firing+escalated@critical",
      "resolve@critical",
      "none@-",
      "fire@warning",
    ]);
    expect(state).toEqual(firing(840));
  });
});
