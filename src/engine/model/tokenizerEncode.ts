// Text → token ids, the way Hugging Face's tokenizers crate runs Gemma's tokenizer.json (and llama.cpp's
// SentencePiece BPE runs the same vocabulary from a GGUF):
//   1. added tokens (specials, "\n" runs, "<div>"…) are cut out of the raw text, leftmost-longest;
//   2. in each remaining segment every " " becomes "▁" (the normalizer; one code unit for one, so offsets hold);
//   3. the whole segment is one word (Gemma has no pre-tokenizer): it starts as one symbol per character,
//      a character missing from the vocabulary becomes its UTF-8 byte pieces, and adjacent symbols merge,
//      best-ranked pair first and leftmost on ties, until no pair merges.

import type { VocabTables } from './tokenizerVocab';

/** Ids plus, for each, the UTF-16 offset in the input where its text starts. */
export interface Encoded {
  ids: number[];
  starts: number[];
}

const POS_RANGE = 4294967296; // 2^32: heap keys are rank·2^32 + position, exact in a double for rank < 2^21

/** Encodes text with no special tokens added; added-token strings in the text become their ids. */
export function encodeText(t: VocabTables, text: string): Encoded {
  const out: Encoded = { ids: [], starts: [] };
  let segStart = 0;
  const hasAdded = t.added.size > 0;
  for (let i = 0; i < text.length; ) {
    if (hasAdded && t.added.startsWith(text.charCodeAt(i))) {
      const m = t.added.matchAt(text, i);
      if (m) {
        if (i > segStart) encodeSegment(t, text, segStart, i, out);
        out.ids.push(m[0]);
        out.starts.push(i);
        i = segStart = m[1];
        continue;
      }
    }
    i++;
  }
  if (segStart < text.length) encodeSegment(t, text, segStart, text.length, out);
  return out;
}

/** Runs the merge loop over text[from, to) and appends the resulting ids. */
function encodeSegment(t: VocabTables, text: string, from: number, to: number, out: Encoded): void {
  // Symbols as a doubly linked list over arrays; a merged-away symbol gets id -1.
  const cap = (to - from) * 4; // at most 4 byte pieces per code unit pair, so 4 per code unit is ample
  const ids = new Int32Array(cap);
  const starts = new Int32Array(cap);
  let n = 0;
  let lastUnk = false;
  for (let i = from; i < to; ) {
    const c = text.charCodeAt(i);
    const width = c >= 0xd800 && c <= 0xdbff && i + 1 < to && (text.charCodeAt(i + 1) & 0xfc00) === 0xdc00 ? 2 : 1;
    const ch = c === 0x20 && t.spaceToMetaspace ? '▁' : text.slice(i, i + width);
    const id = t.pieceToId.get(ch);
    if (id !== undefined) {
      ids[n] = id;
      starts[n++] = i;
      lastUnk = false;
    } else if (t.byteFallback && allBytesKnown(t, ch)) {
      for (const b of Buffer.from(ch, 'utf8')) {
        ids[n] = t.byteToId[b];
        starts[n++] = i;
      }
      lastUnk = false;
    } else {
      const unk = t.specials.unk;
      if (unk === null) throw new Error(`character U+${ch.codePointAt(0)!.toString(16).toUpperCase()} is not in the vocabulary, which has neither byte fallback nor an unknown token`);
      if (!(lastUnk && t.fuseUnk)) {
        ids[n] = unk;
        starts[n++] = i;
      }
      lastUnk = true;
    }
    i += width;
  }
  mergeSymbols(t, ids, n);
  for (let k = 0; k < n; k++) {
    if (ids[k] >= 0) {
      out.ids.push(ids[k]);
      out.starts.push(starts[k]);
    }
  }
}

function allBytesKnown(t: VocabTables, ch: string): boolean {
  for (const b of Buffer.from(ch, 'utf8')) if (t.byteToId[b] < 0) return false;
  return true;
}

/** Merges ids[0, n) in place: a merged symbol keeps the left slot, the right slot becomes -1. */
function mergeSymbols(t: VocabTables, ids: Int32Array, n: number): void {
  if (n < 2) return;
  const next = new Int32Array(n);
  const prev = new Int32Array(n);
  for (let k = 0; k < n; k++) {
    next[k] = k + 1 < n ? k + 1 : -1;
    prev[k] = k - 1;
  }
  const heap: number[] = [];
  const merges = t.merges;
  for (let k = 0; k + 1 < n; k++) {
    const r = merges.rank(ids[k], ids[k + 1]);
    if (r >= 0) heapPush(heap, r * POS_RANGE + k);
  }
  while (heap.length > 0) {
    const key = heapPop(heap);
    const pos = key % POS_RANGE;
    const rank = (key - pos) / POS_RANGE;
    const left = ids[pos];
    const right = next[pos];
    // Stale entries: the left symbol was merged away, or its right neighbour changed since the push.
    if (left < 0 || right < 0 || merges.rank(left, ids[right]) !== rank) continue;
    ids[pos] = merges.result(left, ids[right], rank);
    ids[right] = -1;
    const after = next[right];
    next[pos] = after;
    if (after >= 0) prev[after] = pos;
    const before = prev[pos];
    if (before >= 0) {
      const r = merges.rank(ids[before], ids[pos]);
      if (r >= 0) heapPush(heap, r * POS_RANGE + before);
    }
    if (after >= 0) {
      const r = merges.rank(ids[pos], ids[after]);
      if (r >= 0) heapPush(heap, r * POS_RANGE + pos);
    }
  }
}

function heapPush(h: number[], v: number): void {
  let i = h.length;
  h.push(v);
  while (i > 0) {
    const p = (i - 1) >> 1;
    if (h[p] <= v) break;
    h[i] = h[p];
    i = p;
  }
  h[i] = v;
}

function heapPop(h: number[]): number {
  const top = h[0];
  const last = h.pop()!;
  const n = h.length;
  if (n > 0) {
    let i = 0;
    while (true) {
      const l = 2 * i + 1;
      if (l >= n) break;
      const r = l + 1;
      const c = r < n && h[r] < h[l] ? r : l;
      if (h[c] >= last) break;
      h[i] = h[c];
      i = c;
    }
    h[i] = last;
  }
  return top;
}
