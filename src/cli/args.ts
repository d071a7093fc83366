// A strict flag parser for the `gemma-tune` CLI: `--name value`, `--flag`, and nothing else, so a typo
// is an error with a one-line reason rather than a silently ignored option.

export class UsageError extends Error {}

export interface FlagSpec {
  /** Flags that take a value. */
  values: string[];
  /** Flags that are booleans. */
  booleans?: string[];
}

export interface ParsedArgs {
  values: Map<string, string>;
  booleans: Set<string>;
}

/** Parses argv (after the subcommand) against a spec; throws UsageError on anything unknown. */
export function parseFlags(argv: string[], spec: FlagSpec): ParsedArgs {
  const values = new Map<string, string>();
  const booleans = new Set<string>();
  const bools = new Set(spec.booleans ?? []);
  const vals = new Set(spec.values);
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (!a.startsWith('--')) throw new UsageError(`unexpected argument "${a}"`);
    let name = a.slice(2);
    let inline: string | undefined;
    const eq = name.indexOf('=');
    if (eq >= 0) {
      inline = name.slice(eq + 1);
      name = name.slice(0, eq);
    }
    if (bools.has(name)) {
      if (inline !== undefined) throw new UsageError(`--${name} takes no value`);
      booleans.add(name);
    } else if (vals.has(name)) {
      const v = inline ?? argv[++i];
      if (v === undefined) throw new UsageError(`--${name} needs a value`);
      if (values.has(name)) throw new UsageError(`--${name} given twice`);
      values.set(name, v);
    } else {
      throw new UsageError(`unknown option --${name}`);
    }
  }
  return { values, booleans };
}

/** The value of a required flag. */
export function required(p: ParsedArgs, name: string): string {
  const v = p.values.get(name);
  if (v === undefined) throw new UsageError(`--${name} is required`);
  return v;
}

/** An optional number flag, checked to be finite and within [min, max]. */
export function numberFlag(p: ParsedArgs, name: string, fallback: number, min = -Infinity, max = Infinity, integer = false): number {
  const raw = p.values.get(name);
  if (raw === undefined) return fallback;
  const v = Number(raw);
  if (raw.trim() === '' || !Number.isFinite(v)) throw new UsageError(`--${name} must be a number, got "${raw}"`);
  if (integer && !Number.isInteger(v)) throw new UsageError(`--${name} must be an integer, got "${raw}"`);
  if (v < min || v > max) throw new UsageError(`--${name} must be between ${min} and ${max}, got ${v}`);
  return v;
}

/**
 * A flag whose value must be one of `choices`: required when there is no fallback, the fallback when
 * the flag is absent.
 */
export function choiceFlag<T extends string>(p: ParsedArgs, name: string, choices: readonly T[], fallback?: T): T {
  const v = fallback === undefined ? required(p, name) : (p.values.get(name) ?? fallback);
  if (!(choices as readonly string[]).includes(v)) {
    const list = choices.length > 1 ? `${choices.slice(0, -1).join(', ')} or ${choices[choices.length - 1]}` : choices[0];
    throw new UsageError(`--${name} must be ${list}, got "${v}"`);
  }
  return v as T;
}

/** Parses "2,651,106" into token ids. */
export function parseIds(raw: string, flag: string): number[] {
  const parts = raw.split(',').map((s) => s.trim()).filter((s) => s !== '');
  if (parts.length === 0) throw new UsageError(`--${flag} is empty`);
  return parts.map((s) => {
    const v = Number(s);
    if (!Number.isInteger(v) || v < 0) throw new UsageError(`--${flag}: "${s}" is not a token id`);
    return v;
  });
}
