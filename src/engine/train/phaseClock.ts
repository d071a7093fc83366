// Where a fine-tune's time goes (bench --train --phases): wall and process CPU seconds summed per named
// phase. CPU is the whole process's (ORT's threads included), so CPU / wall of a phase says how many
// cores it kept busy; phases that overlap in time (work done while a session run is in flight) each
// count their own span.

export interface PhaseTotals {
  wallS: number;
  cpuS: number;
  count: number;
}

/** Sums the wall and CPU time of named phases. */
export class PhaseClock {
  readonly phases = new Map<string, PhaseTotals>();

  /** Runs fn (synchronous or returning a promise) and adds its span to phase `name`. */
  time<T>(name: string, fn: () => T): T {
    const w = performance.now();
    const c = process.cpuUsage();
    const settle = () => {
      const cpu = process.cpuUsage(c);
      const p = this.phases.get(name) ?? { wallS: 0, cpuS: 0, count: 0 };
      p.wallS += (performance.now() - w) / 1000;
      p.cpuS += (cpu.user + cpu.system) / 1e6;
      p.count += 1;
      this.phases.set(name, p);
    };
    const r = fn();
    if (r instanceof Promise) return r.finally(settle) as T;
    settle();
    return r;
  }
}

/** A phase timer that times nothing (the trainer's default). */
export const untimed = <T>(_name: string, fn: () => T): T => fn();

/** The phases as table rows (wall s, CPU s, cores busy, calls), largest wall first, with the rest of `total` as "other". */
export function phaseTable(clock: PhaseClock, total: { wallS: number; cpuS: number }): string[] {
  const rows = [...clock.phases].sort((a, b) => b[1].wallS - a[1].wallS);
  const sum = rows.reduce((s, [, p]) => ({ wallS: s.wallS + p.wallS, cpuS: s.cpuS + p.cpuS }), { wallS: 0, cpuS: 0 });
  const line = (name: string, p: { wallS: number; cpuS: number }, count: string) =>
    `${name.padEnd(16)} ${p.wallS.toFixed(2).padStart(7)} ${p.cpuS.toFixed(2).padStart(7)} ${(p.wallS > 0 ? p.cpuS / p.wallS : 0).toFixed(2).padStart(6)} ${count.padStart(6)}`;
  return [
    `${'phase'.padEnd(16)} ${'wall s'.padStart(7)} ${'CPU s'.padStart(7)} ${'cores'.padStart(6)} ${'calls'.padStart(6)}`,
    ...rows.map(([name, p]) => line(name, p, String(p.count))),
    line('other', { wallS: total.wallS - sum.wallS, cpuS: total.cpuS - sum.cpuS }, ''),
    line('fine-tune', total, ''),
  ];
}
