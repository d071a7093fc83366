// A tiny runtime schema kit for messages that cross a boundary (host⇄worker, host⇄webview).
// A schema is a function that returns the value typed or throws a CheckError naming the path
// ("params.maxTokens: expected an integer >= 1, got -3"); `Infer<typeof schema>` gives the type,
// so each message shape is written once. Hand-written rather than zod/valibot: it adds no
// dependency to the worker, host and webview bundles, runs on every streamed token event, and
// stays small enough to read in one sitting. It sits in common/ because the engine, the stores and the
// protocol all validate with it (the records on disk as much as the messages).

import { describeValue, quote } from './quote';

/** Thrown when a value does not match its schema; `path` locates the bad field. */
export class CheckError extends Error {
  constructor(
    readonly path: string,
    readonly problem: string,
  ) {
    super(path ? `${path}: ${problem}` : problem);
    this.name = 'CheckError';
  }
}

/** Validates `value` (found at `path`) and returns it typed, or throws CheckError. */
export type Schema<T> = (value: unknown, path?: string) => T;

/** The type a schema produces. */
export type Infer<S> = S extends Schema<infer T> ? T : never;

function describe(v: unknown): string {
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'string' && v.length > 40) return `a string of length ${v.length}`;
  return describeValue(v);
}

function fail(path: string, expected: string, got: unknown): never {
  throw new CheckError(path, `expected ${expected}, got ${describe(got)}`);
}

/** Any string, optionally bounded in length. */
export function str(opts: { min?: number; max?: number } = {}): Schema<string> {
  const { min = 0, max = Infinity } = opts;
  return (v, path = '') => {
    if (typeof v !== 'string') fail(path, 'a string', v);
    if (v.length < min || v.length > max) fail(path, `a string of length ${min}..${max}`, v);
    return v;
  };
}

/** A finite number within [min, max]; `int` also requires an integer. */
export function num(opts: { min?: number; max?: number; int?: boolean } = {}): Schema<number> {
  const { min = -Infinity, max = Infinity, int = false } = opts;
  const kind = int ? 'an integer' : 'a number';
  const range =
    min > -Infinity && max < Infinity ? ` in [${min}, ${max}]` : min > -Infinity ? ` >= ${min}` : max < Infinity ? ` <= ${max}` : '';
  const what = kind + range;
  return (v, path = '') => {
    if (typeof v !== 'number' || !Number.isFinite(v) || (int && !Number.isInteger(v)) || v < min || v > max) {
      fail(path, what, v);
    }
    return v;
  };
}

/** A boolean. */
export const bool: Schema<boolean> = (v, path = '') => (typeof v === 'boolean' ? v : fail(path, 'a boolean', v));

/** Exactly one of the given literal values. */
export function oneOf<const T extends readonly (string | number | boolean | null)[]>(...values: T): Schema<T[number]> {
  const what = values.map((x) => JSON.stringify(x)).join(' | ');
  return (v, path = '') => (values.includes(v as T[number]) ? (v as T[number]) : fail(path, what, v));
}

/** `null` or the inner schema's value. */
export function nullable<T>(inner: Schema<T>): Schema<T | null> {
  return (v, path = '') => (v === null ? null : inner(v, path));
}

/** An array whose items all match `item`, at most `max` long. */
export function arr<T>(item: Schema<T>, opts: { max?: number } = {}): Schema<T[]> {
  const { max = Infinity } = opts;
  return (v, path = '') => {
    if (!Array.isArray(v)) fail(path, 'an array', v);
    if (v.length > max) throw new CheckError(path, `expected at most ${max} items, got ${v.length}`);
    return v.map((x, i) => item(x, `${path}[${i}]`));
  };
}

type Shape = Record<string, Schema<unknown>>;
/** Keys whose schema accepts `undefined` become optional properties. */
type OptionalKeys<S extends Shape> = { [K in keyof S]: undefined extends Infer<S[K]> ? K : never }[keyof S];
type ObjectOf<S extends Shape> = { [K in Exclude<keyof S, OptionalKeys<S>>]: Infer<S[K]> } & {
  [K in OptionalKeys<S>]?: Infer<S[K]>;
};
type Flat<T> = { [K in keyof T]: T[K] } & {};

/** `undefined` (the key may be absent) or the inner schema's value. */
export function optional<T>(inner: Schema<T>): Schema<T | undefined> {
  return (v, path = '') => (v === undefined ? undefined : inner(v, path));
}

/**
 * A plain object with exactly these keys; unknown keys are an error, so a misspelt option is
 * reported instead of silently ignored. The result is a fresh object holding only known keys.
 */
export function obj<S extends Shape>(shape: S): Schema<Flat<ObjectOf<S>>> {
  const keys = Object.keys(shape);
  return (v, path = '') => {
    if (typeof v !== 'object' || v === null || Array.isArray(v)) fail(path, 'an object', v);
    const rec = v as Record<string, unknown>;
    for (const k of Object.keys(rec)) {
      if (!Object.prototype.hasOwnProperty.call(shape, k)) throw new CheckError(path, `unknown field ${quote(k, 40)} (expected ${keys.join(', ') || 'no fields'})`);
    }
    const out: Record<string, unknown> = {};
    for (const k of keys) {
      const value = shape[k](rec[k], path ? `${path}.${k}` : k);
      if (value !== undefined) out[k] = value;
    }
    return out as Flat<ObjectOf<S>>;
  };
}

/** Anything (for payloads checked by a later, more specific schema). */
export const unknownValue: Schema<unknown> = (v) => v;
