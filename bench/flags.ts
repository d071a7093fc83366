// Command-line flags of the benchmark scripts: `--name value` pairs and bare `--name` switches.

/** The value after `--name`, or `fallback` when the flag is absent. */
export function flag(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1] : fallback;
}

/** Whether the switch `--name` was given. */
export function has(name: string): boolean {
  return process.argv.includes(`--${name}`);
}
