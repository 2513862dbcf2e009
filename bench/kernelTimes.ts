// Per-kernel time of whatever ran inside a tf.profile, summed by kernel name, largest first.
import type * as tf from "@tensorflow/tfjs";

export interface KernelTime {
  name: string;
  ms: number;
  calls: number;
}

export function kernelTimes(info: Awaited<ReturnType<typeof tf.profile>>): KernelTime[] {
  const byName = new Map<string, KernelTime>();
  for (const k of info.kernels) {
    const e = byName.get(k.name) ?? { name: k.name, ms: 0, calls: 0 };
    e.ms += Number(k.kernelTimeMs);
    e.calls++;
    byName.set(k.name, e);
  }
  return [...byName.values()].sort((a, b) => b.ms - a.ms);
}
