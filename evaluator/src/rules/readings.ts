import type { Reading, ReadingsByDeviceMetric } from "./types.ts";

const NONE: readonly Reading[] = Object.freeze([]);

/** Groups a flat list of readings by device, then metric (input order is kept inside a group). */
export function groupReadings(readings: Iterable<Reading>): ReadingsByDeviceMetric {
  const byDevice = new Map<string, Map<string, Reading[]>>();
  for (const r of readings) {
    let byMetric = byDevice.get(r.deviceId);
    if (!byMetric) {
      byMetric = new Map();
      byDevice.set(r.deviceId, byMetric);
    }
    const list = byMetric.get(r.metric);
    if (list) list.push(r);
    else byMetric.set(r.metric, [r]);
  }
  return byDevice;
}

/**
 * The usable readings of one (device, metric), oldest first. Readings with a non-finite timestamp
 * or value (a sensor sending NaN) are dropped here, so no rule ever compares against NaN. The sort
 * is stable: readings with equal timestamps keep their input order.
 */
export function readingsFor(
  readings: ReadingsByDeviceMetric,
  deviceId: string,
  metric: string,
): readonly Reading[] {
  const list = readings.get(deviceId)?.get(metric);
  if (!list || list.length === 0) return NONE;
  const first = list[0]!;
  if (list.length === 1) return Number.isFinite(first.ts) && Number.isFinite(first.value) ? list : NONE;
  return list.filter((r) => Number.isFinite(r.ts) && Number.isFinite(r.value)).sort((a, b) => a.ts - b.ts);
}
