// PieceIndex, the GGUF tokenizer's piece → id table: it answers as a Map filled in id order would (the
// lower id of two equal pieces, nothing for left-out ids or unknown pieces), on a whole-vocabulary scale.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { PieceIndex } from '../../src/engine/model/pieceIndex';

test('PieceIndex answers as a Map filled in id order, for 100k pieces with duplicates and left-out ids', () => {
  const pieces = Array.from({ length: 100_000 }, (_, i) => (i % 997 === 0 ? `dup${i % 5}` : `▁p${(i * 7919) % 100_003}é`));
  const include = (id: number) => id % 13 !== 0;
  const index = new PieceIndex(pieces, include);
  const map = new Map<string, number>();
  pieces.forEach((p, id) => {
    if (include(id) && !map.has(p)) map.set(p, id);
  });
  for (const p of new Set(pieces)) assert.equal(index.get(p), map.get(p), p);
  for (const p of ['', 'dup9', '▁p1', '<unused0>']) {
    assert.equal(index.get(p), map.get(p));
    assert.equal(index.has(p), map.has(p));
  }
});
