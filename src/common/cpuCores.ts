// What "auto" threads means: one per physical core this process may run on. ONNX Runtime's kernels
// gain nothing from a core's second hardware thread (both share its vector units), and a count past
// the cores the process is allowed (a container's CPU set) only adds contention.

import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';

/** Physical cores from Linux's /proc/cpuinfo (distinct package and core ids), or undefined where it cannot tell. */
export function coresFromCpuinfo(text: string): number | undefined {
  const cores = new Set<string>();
  for (const block of text.split(/\n\s*\n/)) {
    const pkg = /^physical id\s*:\s*(\d+)/m.exec(block)?.[1];
    const core = /^core id\s*:\s*(\d+)/m.exec(block)?.[1];
    if (pkg === undefined || core === undefined) continue;
    cores.add(`${pkg}:${core}`);
  }
  return cores.size > 0 ? cores.size : undefined;
}

let cached: number | undefined;

/** The physical cores this process may use (at least 1): Linux counts them, elsewhere the logical CPUs. */
export function physicalCores(): number {
  if (cached !== undefined) return cached;
  const allowed = availableParallelism();
  let cores: number | undefined;
  if (process.platform === 'linux') {
    try {
      cores = coresFromCpuinfo(readFileSync('/proc/cpuinfo', 'utf8'));
    } catch {
      cores = undefined;
    }
  }
  cached = Math.max(1, Math.min(allowed, cores ?? allowed));
  return cached;
}
