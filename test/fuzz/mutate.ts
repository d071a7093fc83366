// Mutations of the fuzzer's seed inputs, all drawn from a seeded Rng so that (seed, target, index) always
// gives the same input: byte-level edits of binary files (biased towards headers and the sizes and
// numbers in them, NaN and infinity written over float data) and tree-level edits of JSON (sizes,
// wrong types, escape bytes, deep nesting, missing and unknown keys).

import type { Rng } from '../../src/engine/rng';

/** 32- and 64-bit little-endian integers that sit on the edges of sizes and counts. */
const INTERESTING_U32 = [0, 1, 2, 0x7f, 0x80, 0xff, 0x100, 0x7fff, 0xffff, 0x10000, 1e6, 1e9, 0x7fffffff, 0x80000000, 0xfffffffe, 0xffffffff];
const INTERESTING_U64 = [0n, 1n, 0xffffffffn, 0x100000000n, 1n << 40n, 1n << 53n, (1n << 63n) - 1n, (1n << 64n) - 1n];
/** f32 values that are not finite, or finite but at the edges (overflow in arithmetic, denormals). */
const INTERESTING_F32 = [NaN, Infinity, -Infinity, 3.4e38, -3.4e38, 1e30, 1.4e-45, -0];
/** f16 codes: NaN, ±Infinity, the largest finite value, a denormal. */
const INTERESTING_F16 = [0x7e00, 0x7c00, 0xfc00, 0x7bff, 0x0001];
/** Strings that a terminal acts on, that reverse text, or that are long. */
const ESCAPES = ['\x1b[2J', '\x1b]0;owned\x07', '\u202e', '\x9b31m', '\x00', '\r\n', '\ud800'];

/** Picks one item. */
export function pick<T>(rng: Rng, items: readonly T[]): T {
  return items[rng.int(items.length)];
}

/** A copy of `src` with 1–4 byte-level mutations; positions below `hot` are picked half of the time (a file's header). */
export function mutateBytes(src: Uint8Array, rng: Rng, hot = src.length): Uint8Array {
  let b = Buffer.from(src);
  const n = 1 + rng.int(4);
  for (let k = 0; k < n && b.length > 0; k++) {
    const near = rng.next() < 0.5 ? Math.min(hot, b.length) : b.length;
    const at = rng.int(near);
    const view = new DataView(b.buffer, b.byteOffset, b.length);
    switch (rng.int(11)) {
      case 0: b[at] ^= 1 << rng.int(8); break;
      case 1: b[at] = pick(rng, [0, 0xff, 0x7f, 0x80, 0x1b, 0x22, 0x5c]); break;
      case 2: if (at + 4 <= b.length) view.setUint32(at & ~3, pick(rng, INTERESTING_U32), true); break;
      case 3: if ((at & ~7) + 8 <= b.length) view.setBigUint64(at & ~7, pick(rng, INTERESTING_U64), true); break;
      case 4: {
        // A non-finite or extreme float over the data (aligned, as tensors are).
        const p = (b.length - 4) & ~3;
        if (p > 0) view.setFloat32(rng.int(p / 4) * 4, pick(rng, INTERESTING_F32), true);
        break;
      }
      case 5: {
        const p = (b.length - 2) & ~1;
        if (p > 0) view.setUint16(rng.int(p / 2) * 2, pick(rng, INTERESTING_F16), true);
        break;
      }
      case 6: b = b.subarray(0, at); break;
      case 7: b = Buffer.concat([b.subarray(0, at), b.subarray(Math.min(b.length, at + 1 + rng.int(64)))]); break;
      case 8: b = Buffer.concat([b.subarray(0, at), Buffer.from(pick(rng, ESCAPES)), b.subarray(at)]); break;
      case 9: {
        const len = 1 + rng.int(32);
        b = Buffer.concat([b.subarray(0, at), b.subarray(at, at + len), b.subarray(at)]);
        break;
      }
      default: {
        // Overwrite a run with one byte (a zeroed or 0xff-filled region).
        b.fill(pick(rng, [0, 0xff]), at, Math.min(b.length, at + 1 + rng.int(256)));
        break;
      }
    }
  }
  return new Uint8Array(b);
}

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

/** Values that break sizes, types and ranges. */
function interestingValue(rng: Rng): Json {
  switch (rng.int(14)) {
    case 0: return pick(rng, [0, -1, 1, 2, 0.5, -0.5]);
    case 1: return pick(rng, [1e9, 2 ** 31, 2 ** 32, 2 ** 53, 1e300, -1e300, Number.MAX_VALUE]);
    case 2: return pick(rng, [1e-300, 5e-324, -(2 ** 31)]);
    case 3: return '';
    case 4: return `x${pick(rng, ESCAPES)}y`;
    case 5: return 'a'.repeat(pick(rng, [64, 81, 1001, 5000]));
    case 6: return null;
    case 7: return pick(rng, [true, false]);
    case 8: return [];
    case 9: return {};
    case 10: return Array.from({ length: pick(rng, [2, 100, 3000]) }, (_, i) => i);
    case 11: return 'NaN';
    case 12: return '../../../etc/passwd';
    default: {
      // Deep nesting, for recursive readers.
      let v: Json = 1;
      for (let i = 0, d = pick(rng, [50, 1000]); i < d; i++) v = [v];
      return v;
    }
  }
}

/** Every (container, key) slot of a JSON tree, for picking one to change. */
function slots(root: Json): { parent: Json[] | { [k: string]: Json }; key: string | number }[] {
  const out: { parent: Json[] | { [k: string]: Json }; key: string | number }[] = [];
  const walk = (v: Json, depth: number) => {
    if (depth > 64 || v === null || typeof v !== 'object') return;
    if (Array.isArray(v)) v.forEach((x, i) => { out.push({ parent: v, key: i }); walk(x, depth + 1); });
    else for (const [k, x] of Object.entries(v)) { out.push({ parent: v, key: k }); walk(x, depth + 1); }
  };
  walk(root, 0);
  return out;
}

/**
 * A mutated deep copy of a JSON value: 1–3 edits of a random slot (replaced, deleted, duplicated, a
 * number scaled, a string given escape bytes, an unknown key added). A slot named in `pathKeys` (a file
 * or folder the input points at) only ever gets one of `paths`, so the fuzzer never reads or writes
 * outside its own folder.
 */
export function mutateJson<T>(value: T, rng: Rng, opts: { pathKeys?: readonly string[]; paths?: readonly string[] } = {}): T {
  const root = JSON.parse(JSON.stringify(value)) as Json;
  const wrap: { [k: string]: Json } = { root };
  const n = 1 + rng.int(3);
  for (let k = 0; k < n; k++) {
    const all = [{ parent: wrap, key: 'root' as string | number }, ...slots(wrap.root)];
    const { parent, key } = pick(rng, all);
    const obj = parent as Record<string | number, Json>;
    const cur = obj[key];
    if (typeof key === 'string' && opts.pathKeys?.includes(key) && opts.paths?.length) {
      obj[key] = pick(rng, opts.paths);
      continue;
    }
    switch (rng.int(8)) {
      case 0:
      case 1: obj[key] = interestingValue(rng); break;
      case 2:
        if (Array.isArray(parent)) parent.splice(key as number, 1);
        else delete obj[key];
        break;
      case 3:
        if (typeof cur === 'number') obj[key] = pick(rng, [cur * 1e6, -cur, cur + 0.5, cur * 2 ** 31, cur / 3]);
        else obj[key] = interestingValue(rng);
        break;
      case 4:
        if (typeof cur === 'string') obj[key] = cur.slice(0, rng.int(cur.length + 1)) + pick(rng, ESCAPES) + cur.slice(rng.int(cur.length + 1));
        else obj[key] = interestingValue(rng);
        break;
      case 5:
        if (cur !== null && typeof cur === 'object' && !Array.isArray(cur)) cur[pick(rng, ['__proto__', 'constructor', 'extra', `k${pick(rng, ESCAPES)}`])] = interestingValue(rng);
        else obj[key] = interestingValue(rng);
        break;
      case 6:
        if (Array.isArray(cur) && cur.length > 0) for (let i = 0, r = pick(rng, [1, 10, 200]); i < r; i++) cur.push(JSON.parse(JSON.stringify(cur[rng.int(cur.length)]) ?? 'null'));
        else obj[key] = interestingValue(rng);
        break;
      default: {
        // A wrong type of the same meaning: number ↔ string, value ↔ [value].
        if (typeof cur === 'number') obj[key] = String(cur);
        else if (typeof cur === 'string' && cur !== '' && !Number.isNaN(Number(cur))) obj[key] = Number(cur);
        else obj[key] = [cur];
        break;
      }
    }
  }
  return wrap.root as T;
}

/** JSON text of a value, sometimes damaged at the text level too (cut short, a byte changed). */
export function jsonText(value: unknown, rng: Rng): string {
  const t = JSON.stringify(value) ?? '';
  switch (rng.int(9)) {
    case 0: return t.slice(0, rng.int(t.length));
    case 2: {
      // Nesting far deeper than JSON.stringify could write, for the readers that recurse.
      const d = pick(rng, [10_000, 200_000]);
      return `${'['.repeat(d)}${t}${']'.repeat(d)}`;
    }
    case 1: {
      const at = rng.int(t.length);
      return t.slice(0, at) + pick(rng, ['"', '}', ']', ',', '\\', '\x1b', '\u0000']) + t.slice(at);
    }
    default: return t;
  }
}
