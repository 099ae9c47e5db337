// A metric's value as the tests read it, from the registry the role reports to.
import type { Registry } from 'prom-client';

/**
 * A counter's or gauge's value summed over the series whose labels match; for
 * a histogram, its count. A name the registry does not have is an error (a
 * typo must not read as 0).
 */
export async function metricValue(registry: Registry, name: string, labels: Record<string, string> = {}): Promise<number> {
  const metric = (await registry.getMetricsAsJSON()).find((m) => m.name === name);
  if (!metric) throw new Error(`no metric ${name} in the registry`);
  return metric.values
    .filter((v) => Object.entries(labels).every(([k, value]) => (v.labels as Record<string, unknown>)[k] === value))
    .filter((v) => {
      const series = (v as { metricName?: string }).metricName;
      return series === undefined || series === name || series === `${name}_count`;
    })
    .reduce((sum, v) => sum + Number(v.value), 0);
}

/** A histogram's sum of observations (with its count: their mean). */
export async function histogramSum(registry: Registry, name: string): Promise<number> {
  const metric = (await registry.getMetricsAsJSON()).find((m) => m.name === name);
  if (!metric) throw new Error(`no metric ${name} in the registry`);
  return metric.values.filter((v) => (v as { metricName?: string }).metricName === `${name}_sum`).reduce((sum, v) => sum + Number(v.value), 0);
}
