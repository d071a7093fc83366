// The model's state after a prompt prefix that many requests share (a task's chat header, instruction
// and label list), kept so that each request runs only what follows it. An entry is keyed by the exact
// prefix ids and an adapter key (the adapter's name and version: another adapter, or the same name
// reloaded with new weights, gives other keys and values); a prefix cache belongs to one runtime, so a
// new model means a new PrefixCache. Entries are least-recently-used, bounded in count and bytes.
//
// Exactness: an entry's KV cache is what step() leaves after feeding exactly its ids, so a request
// whose prompt starts with those ids gets the same keys/values it would compute itself (the runtime
// is deterministic for a given split of runs; see the unit test for the tolerance across splits).

import type { GemmaRuntime, KvCache } from '../gemma/runtime';

export interface PrefixCacheLimits {
  /** Most entries kept. */
  maxEntries: number;
  /** Most bytes of K/V kept over all entries (an entry larger than this is not kept). */
  maxBytes: number;
}

/** Defaults: a few tasks' prefixes; a 200-token prefix of the 270M model holds ~9 MB. */
export const DEFAULT_PREFIX_LIMITS: PrefixCacheLimits = { maxEntries: 8, maxBytes: 96 << 20 };

/** Shortest prefix worth keeping: below this the saving is smaller than the bookkeeping. */
export const MIN_PREFIX_TOKENS = 8;

/** How many leading prompt ids a request's start cache already holds (0 without one); at least one must be left to run. */
export function startLength(start: KvCache | undefined, promptIds: readonly number[]): number {
  const cached = start?.length ?? 0;
  if (cached >= promptIds.length) throw new Error(`the start cache holds ${cached} ids, the prompt only ${promptIds.length}: at least one must run`);
  return cached;
}

interface Entry {
  adapter: string | undefined;
  cache: KvCache;
  bytes: number;
}

export interface PrefixCacheStats {
  hits: number;
  misses: number;
  entries: number;
  bytes: number;
}

/** Bytes a cache holds: its own count when it offers one (GemmaKvCache does), else an estimate. */
function cacheBytes(runtime: GemmaRuntime, cache: KvCache): number {
  const own = (cache as { bytes?: () => number }).bytes;
  if (typeof own === 'function') return own.call(cache);
  const c = runtime.config;
  return cache.length * c.layers * c.kvHeads * c.headDim * 2 * 4;
}

export class PrefixCache {
  // Map order is recency order: a hit moves its entry to the end.
  private readonly entries = new Map<string, Entry>();
  private hits = 0;
  private misses = 0;

  constructor(
    private readonly runtime: GemmaRuntime,
    private readonly limits: PrefixCacheLimits = DEFAULT_PREFIX_LIMITS,
  ) {}

  /**
   * A cache holding `ids` (run with `adapter`, undefined for the base model), owned by the caller
   * (dispose it): a fork of the kept entry on a hit, else computed now and kept for the next request.
   * `version` must change whenever the adapter's weights do (invalidate() also drops them).
   */
  async take(ids: number[], adapter: string | undefined, version = 0): Promise<{ cache: KvCache; hit: boolean }> {
    if (ids.length === 0) throw new Error('PrefixCache.take: no prefix ids');
    const key = `${JSON.stringify([adapter ?? null, version])}\n${ids.join(',')}`;
    const hit = this.entries.get(key);
    if (hit) {
      this.hits++;
      this.entries.delete(key);
      this.entries.set(key, hit);
      return { cache: hit.cache.fork(), hit: true };
    }
    this.misses++;
    const cache = this.runtime.newCache();
    try {
      await this.runtime.step(cache, ids, { logits: 'last', adapter });
    } catch (e) {
      cache.dispose();
      throw e;
    }
    // The entry keeps a fork, which holds only the prefix; the caller, who goes on from it, gets the original's room.
    const kept = cache.fork();
    const bytes = cacheBytes(this.runtime, kept);
    if (bytes > this.limits.maxBytes || this.limits.maxEntries < 1) {
      kept.dispose();
      return { cache, hit: false };
    }
    this.entries.set(key, { adapter, cache: kept, bytes });
    this.evict();
    return { cache, hit: false };
  }

  /** Drops every entry made with this adapter (replaced or removed); returns how many. */
  invalidate(adapter: string): number {
    let n = 0;
    for (const [key, e] of this.entries) {
      if (e.adapter !== adapter) continue;
      e.cache.dispose();
      this.entries.delete(key);
      n++;
    }
    return n;
  }

  /** Drops everything (the model goes away). */
  clear(): void {
    for (const e of this.entries.values()) e.cache.dispose();
    this.entries.clear();
  }

  stats(): PrefixCacheStats {
    let bytes = 0;
    for (const e of this.entries.values()) bytes += e.bytes;
    return { hits: this.hits, misses: this.misses, entries: this.entries.size, bytes };
  }

  private evict(): void {
    let bytes = 0;
    for (const e of this.entries.values()) bytes += e.bytes;
    for (const [key, e] of this.entries) {
      if (this.entries.size <= this.limits.maxEntries && bytes <= this.limits.maxBytes) break;
      e.cache.dispose();
      this.entries.delete(key);
      bytes -= e.bytes;
    }
  }
}

/** Length of the longest common prefix of two id lists. */
export function commonPrefixLength(a: readonly number[], b: readonly number[]): number {
  const n = Math.min(a.length, b.length);
  let i = 0;
  while (i < n && a[i] === b[i]) i++;
  return i;
}
