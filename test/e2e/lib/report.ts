// Named checks with pass/fail, time and the first failure's reason; once a check fails, the
// checks after it in the same group are not run (they depend on the UI state it left).

export interface Outcome {
  group: string;
  name: string;
  ok: boolean;
  ms: number;
  error?: string;
}

export class Report {
  readonly outcomes: Outcome[] = [];
  notRun = 0;

  /** Runs one check of `group` unless an earlier one in the group failed. */
  async check(group: string, name: string, fn: () => Promise<void>): Promise<boolean> {
    if (this.outcomes.some((o) => o.group === group && !o.ok)) {
      this.notRun++;
      console.log(`  - ${name} (not run)`);
      return false;
    }
    const t0 = performance.now();
    try {
      await fn();
      const ms = performance.now() - t0;
      this.outcomes.push({ group, name, ok: true, ms });
      console.log(`  ✔ ${name} (${Math.round(ms)} ms)`);
      return true;
    } catch (e) {
      const ms = performance.now() - t0;
      const error = e instanceof Error ? e.message : String(e);
      this.outcomes.push({ group, name, ok: false, ms, error });
      console.log(`  ✖ ${name} (${Math.round(ms)} ms)\n      ${error.split('\n').join('\n      ')}`);
      return false;
    }
  }

  /** Adds checks that ran elsewhere (the in-host mocha suite). */
  add(o: Outcome): void {
    this.outcomes.push(o);
    console.log(`  ${o.ok ? '✔' : '✖'} ${o.name}${o.error ? `\n      ${o.error}` : ''}`);
  }

  get passed(): number {
    return this.outcomes.filter((o) => o.ok).length;
  }

  get failed(): number {
    return this.outcomes.filter((o) => !o.ok).length + this.notRun;
  }
}

/** The exit code of a run: 0 only when something ran and nothing failed. */
export function exitCode(report: Report): number {
  return report.failed === 0 && report.passed > 0 ? 0 : 1;
}

/** Runs an e2e entry point and sets the process exit code from it; a crash prints its stack and a failed count. */
export function runMain(main: () => Promise<number>, label = 'E2E'): void {
  main().then(
    (code) => {
      process.exitCode = code;
    },
    (e: unknown) => {
      console.error(e instanceof Error ? e.stack : e);
      console.log(`${label}: 0 passed, 1 failed`);
      process.exitCode = 1;
    },
  );
}

/** Timings in whole milliseconds, for the log. */
export function rounded(timings: Record<string, number>): Record<string, number> {
  return Object.fromEntries(Object.entries(timings).map(([k, v]) => [k, Math.round(v)]));
}
