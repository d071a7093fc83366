// Shared by the llama.cpp fixture tests and test/fixtures/llama-cpp/pack-fixtures.ts: where the fixtures
// are, a digest of a GGUF's tensor data (to show that a file written here equals llama-quantize's), and
// llama.cpp's logits.

import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { readGguf, readGgufTensor } from '../../src/engine/model/gguf';
import { readSafetensorsF32, readSafetensorsHeader } from '../../src/engine/model/safetensors';

export const LLAMACPP_FIXTURES = path.resolve(__dirname, '../fixtures/llama-cpp');

export interface FixtureIndex {
  kqIds: number[];
  ropeIds: number[];
  /** sha256 (tensorDigest) of llama-quantize's output, for the types this project writes itself. */
  digests: Record<string, string>;
  /** The block types llama-quantize chose, per stored or regenerated file (type → ggml type names found). */
  tensorTypes: Record<string, string[]>;
}

/** fixtures.json. */
export function fixtureIndex(): FixtureIndex {
  return JSON.parse(fs.readFileSync(path.join(LLAMACPP_FIXTURES, 'fixtures.json'), 'utf8')) as FixtureIndex;
}

/** sha256 over every tensor's name, type and bytes, in name order: equal for equal tensor data whatever the metadata. */
export function tensorDigest(file: string): string {
  const g = readGguf(file);
  const h = createHash('sha256');
  for (const name of [...g.tensors.keys()].sort()) {
    const t = g.tensors.get(name)!;
    h.update(`${name}:${t.type}:${t.ne.join('x')}\n`);
    h.update(readGgufTensor(g, name));
  }
  return h.digest('hex');
}

/** llama.cpp's logits of fixture `key` (F32, Q4_K, Q4_K_M, rope8, …), [T·V] float32. */
export function llamaLogits(key: string): Float32Array {
  const st = readSafetensorsHeader(path.join(LLAMACPP_FIXTURES, 'llama-logits.safetensors'));
  return readSafetensorsF32(st, `logits.${key}`);
}
