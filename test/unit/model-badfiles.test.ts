// Bad model files are refused with a message naming the file and the problem, and without allocating
// anything large: truncations at many points, wrong magic or version, unknown architecture or tensor type,
// shapes that disagree with the config, absurd counts, dimensions and string lengths.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { GEMMA3_TINY } from '../../src/engine/model/config';
import { readGguf, readGgufTensor } from '../../src/engine/model/gguf';
import { writeGguf } from '../../src/engine/model/ggufWriter';
import { loadModel } from '../../src/engine/model/load';
import { writeRandomGguf, writeRandomHf } from '../../src/engine/model/randomModel';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'model-bad-'));
test.after(() => fs.rmSync(tmp, { recursive: true, force: true }));
const good = path.join(tmp, 'good.gguf');
writeRandomGguf(good, GEMMA3_TINY, { seed: 3, dtype: 'q4_0' });
const goodBytes = fs.readFileSync(good);

/** Asserts that loading `file` throws a message naming it and matching `re`, with little memory growth. */
function refused(file: string, re: RegExp, load: (f: string) => unknown = (f) => loadModel(f, { precision: 'q4' })): void {
  const before = process.memoryUsage().arrayBuffers;
  assert.throws(() => load(file), (e: Error) => {
    assert.ok(e.message.includes(file), `message names the file: ${e.message}`);
    assert.match(e.message, re);
    return true;
  });
  assert.ok(process.memoryUsage().arrayBuffers - before < 64 << 20, 'no large allocation');
}

function variant(name: string, bytes: Uint8Array): string {
  const f = path.join(tmp, name);
  fs.writeFileSync(f, bytes);
  return f;
}

/** A hand-built GGUF header: magic, version, counts, then the given body bytes. */
function gguf(opts: { magic?: string; version?: number; nTensors: bigint; nKv: bigint; body?: Buffer[] }): Buffer {
  const head = Buffer.alloc(24);
  head.write(opts.magic ?? 'GGUF', 0, 'latin1');
  head.writeUInt32LE(opts.version ?? 3, 4);
  head.writeBigUInt64LE(opts.nTensors, 8);
  head.writeBigUInt64LE(opts.nKv, 16);
  return Buffer.concat([head, ...(opts.body ?? []), Buffer.alloc(64)]);
}
const u32 = (v: number) => { const b = Buffer.alloc(4); b.writeUInt32LE(v); return b; };
const u64 = (v: bigint) => { const b = Buffer.alloc(8); b.writeBigUInt64LE(v); return b; };
const str = (s: string) => Buffer.concat([u64(BigInt(Buffer.byteLength(s))), Buffer.from(s)]);
const archKv = Buffer.concat([str('general.architecture'), u32(8), str('gemma3')]);

test('a GGUF truncated at any of many points is refused as truncated', () => {
  const g = readGguf(good);
  const firstData = Math.min(...[...g.tensors.values()].map((t) => t.offset));
  const cuts = [0, 3, 10, 23, 30, 100, 2000, 6000, g.dataOffset - 40, g.dataOffset - 1, firstData + 10, goodBytes.length - 1];
  for (const cut of cuts) {
    refused(variant(`cut-${cut}.gguf`, goodBytes.subarray(0, cut)), /truncated|too short/);
  }
});

test('wrong magic and unsupported versions are refused', () => {
  const bad = Buffer.from(goodBytes);
  bad.write('GGUX', 0, 'latin1');
  refused(variant('magic.gguf', bad), /bad magic "GGUX": not a GGUF file/);
  const v4 = Buffer.from(goodBytes);
  v4.writeUInt32LE(4, 4);
  refused(variant('v4.gguf', v4), /GGUF version 4 is not supported/);
  refused(variant('safetensors-as-gguf.gguf', Buffer.alloc(100, 0x20)), /bad magic/);
});

test('an architecture other than gemma3 is refused', () => {
  const bad = Buffer.from(goodBytes);
  const at = bad.indexOf(Buffer.from('gemma3'));
  bad.write('llama3', at, 'latin1'); // general.architecture is the first value
  refused(variant('arch.gguf', bad), /architecture "llama3" is not supported \(only gemma3\)/);
});

test('an unknown tensor type is refused by name and number', () => {
  const body = [archKv, str('x.weight'), u32(1), u64(256n), u32(16), u64(0n)]; // 16 = IQ2_XXS
  refused(variant('qtype.gguf', gguf({ nTensors: 1n, nKv: 1n, body })), /tensor x\.weight: IQ2_XXS \(ggml type 16\) is not a supported tensor type \(supported: F32=0, F16=1, Q4_0=2, Q4_1=3/, readGguf);
  const unknown = [archKv, str('x.weight'), u32(1), u64(32n), u32(99), u64(0n)];
  refused(variant('qtype99.gguf', gguf({ nTensors: 1n, nKv: 1n, body: unknown })), /tensor x\.weight: ggml type 99 is not a supported tensor type/, readGguf);
});

test('a GGUF whose tensors disagree with its own metadata is refused with expected vs found', () => {
  const bad = Buffer.from(goodBytes);
  const key = Buffer.from('gemma3.feed_forward_length');
  const at = bad.indexOf(key) + key.length + 4; // after the key and its u32 type tag
  assert.equal(bad.readUInt32LE(at), 128);
  bad.writeUInt32LE(256, at);
  refused(variant('shape.gguf', bad), /tensor blk\.0\.ffn_gate\.weight has shape \[128,64\] but the config expects \[256,64\]/);
});

test('absurd counts, dimensions and lengths are refused before any allocation', () => {
  refused(variant('ntensors.gguf', gguf({ nTensors: 2n ** 40n, nKv: 0n })), /tensor count is \d+, beyond the limit/, readGguf);
  refused(variant('nkv.gguf', gguf({ nTensors: 0n, nKv: 60000n })), /more than \d+ bytes can hold/, readGguf);
  refused(variant('strlen.gguf', gguf({ nTensors: 0n, nKv: 1n, body: [u64(2n ** 60n)] })), /length of metadata key #0 is \d+, beyond the limit/, readGguf);
  const longStr = [str('k'), u32(8), u64(1n << 20n), Buffer.from('abc')];
  refused(variant('strtrunc.gguf', gguf({ nTensors: 0n, nKv: 1n, body: longStr })), /claims 1048576 bytes but only \d+ remain: truncated/, readGguf);
  const bigArray = [str('k'), u32(9), u32(6), u64(2n ** 40n)];
  refused(variant('arraylen.gguf', gguf({ nTensors: 0n, nKv: 1n, body: bigArray })), /item count of k is \d+, beyond the limit/, readGguf);
  const fatArray = [str('k'), u32(9), u32(6), u64(1n << 20n)];
  refused(variant('arraytrunc.gguf', gguf({ nTensors: 0n, nKv: 1n, body: fatArray })), /needs 4194304 bytes but only \d+ remain: truncated/, readGguf);
  const dims = [archKv, str('x'), u32(9), u64(1n)];
  refused(variant('ndims.gguf', gguf({ nTensors: 1n, nKv: 1n, body: dims })), /tensor x: 9 dimensions/, readGguf);
  const hugeDim = [archKv, str('x'), u32(2), u64(2n ** 50n), u64(2n ** 50n), u32(0), u64(0n)];
  refused(variant('hugedim.gguf', gguf({ nTensors: 1n, nKv: 1n, body: hugeDim })), /ne\[0\] of x is \d+, beyond the limit/, readGguf);
  const pastEnd = [archKv, str('x'), u32(2), u64(1024n), u64(1024n), u32(0), u64(0n)];
  refused(variant('pastend.gguf', gguf({ nTensors: 1n, nKv: 1n, body: pastEnd })), /tensor x: data .* past the end of the file .*truncated/, readGguf);
  const misaligned = [archKv, str('x'), u32(1), u64(4n), u32(0), u64(4n)];
  refused(variant('misaligned.gguf', gguf({ nTensors: 1n, nKv: 1n, body: misaligned })), /offset 4 is not a multiple of the alignment 32/, readGguf);
  const badType = [str('k'), u32(77), u32(0)];
  refused(variant('kvtype.gguf', gguf({ nTensors: 0n, nKv: 1n, body: badType })), /metadata k: unknown value type 77/, readGguf);
});

test('HF folders: shape disagreeing with config.json, missing tensors, integer weights, broken JSON', () => {
  const dir = path.join(tmp, 'hf');
  writeRandomHf(dir, GEMMA3_TINY, { seed: 3, dtype: 'f32' });
  const cfgFile = path.join(dir, 'config.json');
  const cfg = JSON.parse(fs.readFileSync(cfgFile, 'utf8'));
  fs.writeFileSync(cfgFile, JSON.stringify({ ...cfg, intermediate_size: 256 }));
  refused(dir, /model\.safetensors: tensor model\.layers\.0\.mlp\.gate_proj\.weight has shape \[128,64\] but the config expects \[256,64\]/);
  fs.writeFileSync(cfgFile, JSON.stringify({ ...cfg, num_hidden_layers: 7, layer_types: [...cfg.layer_types, 'sliding_attention'] }));
  refused(dir, /tensor model\.layers\.6\.input_layernorm\.weight is missing/);
  fs.writeFileSync(cfgFile, '{"oops"');
  refused(dir, /config\.json: not valid JSON/);
  fs.writeFileSync(cfgFile, JSON.stringify(cfg));
  const st = path.join(dir, 'model.safetensors');
  const bytes = fs.readFileSync(st);
  fs.writeFileSync(st, bytes.subarray(0, bytes.length - 100));
  refused(dir, /truncated/);
});

test('extra tensors (an untied output.weight, an unknown name) are refused by name', () => {
  const src = readGguf(good);
  const tensors = [...src.tensors.values()].map((t) => ({ name: t.name, ne: t.ne, dtype: t.dtype, data: () => [readGgufTensor(src, t.name)] }));
  const embd = src.tensors.get('token_embd.weight')!;
  for (const [name, re] of [['output.weight', /untied output\.weight/], ['rope_freqs.weight', /unexpected tensor rope_freqs\.weight/]] as const) {
    const file = path.join(tmp, `extra-${name}.gguf`);
    writeGguf(file, [...src.metadata], [...tensors, { name, ne: embd.ne, dtype: embd.dtype, data: () => [readGgufTensor(src, 'token_embd.weight')] }]);
    refused(file, re);
  }
});
