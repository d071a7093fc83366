// Random-weight model writers and `gemma-tune make-model`: the synthetic vocabulary's layout, the
// tokenizer.json structure, seeded determinism, and the CLI's forms and refusals.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { GEMMA3_TINY } from '../../src/engine/model/config';
import { readGguf } from '../../src/engine/model/gguf';
import { loadModel } from '../../src/engine/model/load';
import { writeRandomGguf } from '../../src/engine/model/randomModel';
import { syntheticTokenizerJson, syntheticVocab } from '../../src/engine/model/syntheticVocab';
import { isTempName } from '../../src/common/atomicWrite';
import { hfFixture } from './shared-dir';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'model-random-'));
test.after(() => fs.rmSync(tmp, { recursive: true, force: true }));
const root = path.resolve(__dirname, '../..');

function cli(...args: string[]) {
  const r = spawnSync(process.execPath, ['--import', 'tsx', path.join(root, 'src/cli/main.ts'), ...args], { cwd: root, encoding: 'utf8' });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

test('the synthetic vocabulary: specials, bytes, turn markers at 105/106, printable ASCII, fillers', () => {
  const v = syntheticVocab(512);
  assert.equal(v.tokens.length, 512);
  assert.deepEqual(v.tokens.slice(0, 6), ['<pad>', '<eos>', '<bos>', '<unk>', '<0x00>', '<0x01>']);
  assert.deepEqual([...v.types.slice(0, 5)], [3, 3, 3, 2, 6]);
  assert.deepEqual(v.tokens.slice(104, 108), ['<0x64>', '<start_of_turn>', '<end_of_turn>', '<0x65>']);
  assert.deepEqual([v.types[105], v.types[106]], [3, 3]);
  assert.equal(v.tokens[261], '<0xFF>');
  assert.equal(v.tokens[262], '▁');
  assert.equal(v.tokens[263], '!');
  assert.equal(v.tokens[356], '~');
  assert.equal(v.tokens[357], '<t0>');
  assert.equal(v.scores[300], -300);
  assert.equal(v.scores[10], 0);
  assert.equal(new Set(v.tokens).size, 512, 'pieces are unique');
  assert.ok(v.tokens.includes('<0x0A>'));
  assert.throws(() => syntheticVocab(200), /at least 262 ids/);
});

test('tokenizer.json has the real Gemma 3 structure over the same ids', () => {
  const v = syntheticVocab(512);
  const t = syntheticTokenizerJson(v) as Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
  assert.equal(t.model.type, 'BPE');
  assert.equal(t.model.byte_fallback, true);
  assert.equal(t.model.unk_token, '<unk>');
  assert.deepEqual(t.model.merges, []);
  assert.equal(Object.keys(t.model.vocab).length, 512);
  assert.equal(t.model.vocab['<end_of_turn>'], 106);
  assert.equal(t.model.vocab['▁'], 262);
  assert.deepEqual(t.normalizer, { type: 'Replace', pattern: { String: ' ' }, content: '▁' });
  assert.deepEqual(t.added_tokens.map((a: { id: number }) => a.id), [0, 1, 2, 3, 105, 106]);
  assert.ok(t.added_tokens.every((a: { special: boolean }) => a.special));
  assert.deepEqual(t.decoder.decoders.map((d: { type: string }) => d.type), ['Replace', 'ByteFallback', 'Fuse']);
});

test('the same seed writes the same bytes; another seed does not', () => {
  const a = path.join(tmp, 'a.gguf'), b = path.join(tmp, 'b.gguf'), c = path.join(tmp, 'c.gguf');
  writeRandomGguf(a, GEMMA3_TINY, { seed: 5, dtype: 'f16' });
  writeRandomGguf(b, GEMMA3_TINY, { seed: 5, dtype: 'f16' });
  writeRandomGguf(c, GEMMA3_TINY, { seed: 6, dtype: 'f16' });
  assert.ok(fs.readFileSync(a).equals(fs.readFileSync(b)));
  assert.ok(!fs.readFileSync(a).equals(fs.readFileSync(c)));
  assert.deepEqual(fs.readdirSync(tmp).filter(isTempName), [], 'no temp files left behind');
});

test('random weights have the intended spread (embedding 0.1, matrices 0.02, norms 1±0.1)', () => {
  const m = loadModel(path.join(tmp, 'a.gguf'), { precision: 'f32' });
  const std = (x: Float32Array, mean = 0) => Math.sqrt(x.reduce((s, v) => s + (v - mean) ** 2, 0) / x.length);
  const w = (n: string) => m.weights.weights.get(n)!.value.data as Float32Array;
  assert.ok(Math.abs(std(w('model.embed_tokens.weight')) - 0.1) < 0.005);
  assert.ok(Math.abs(std(w('model.layers.0.mlp.up_proj.weight')) - 0.02) < 0.001);
  assert.ok(Math.abs(std(w('model.layers.0.input_layernorm.weight'), 1) - 0.1) < 0.03);
});

test('gemma-tune make-model writes loadable models in every accepted form', () => {
  const g = path.join(tmp, 'cli.gguf');
  let r = cli('make-model', '--config', 'tiny', '--format', 'gguf', '--dtype', 'q4_0', '--seed', '1', '--out', g);
  assert.equal(r.code, 0, r.stderr);
  const m = loadModel(g, { precision: 'q4' });
  assert.equal(m.weights.weights.get('model.embed_tokens.weight')!.value.type, 'q8_0');
  const h = path.join(tmp, 'cli-hf');
  const cfgFile = hfFixture('mini-270m-shape/config.json');
  r = cli('make-model', '--config', cfgFile, '--format', 'safetensors', '--dtype', 'bf16', '--seed', '2', '--out', h);
  assert.equal(r.code, 0, r.stderr);
  const hf = loadModel(h, { precision: 'f32' });
  assert.equal(hf.weights.config.hidden, 40);
  assert.deepEqual(fs.readdirSync(h).sort(), ['config.json', 'model.safetensors', 'tokenizer.json']);
  r = cli('make-model', '--config', 'tiny', '--format', 'gguf', '--dtype', 'q4_0', '--embedding', 'q4_0', '--seed', '1', '--out', g);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(loadModel(g, { precision: 'q4' }).weights.weights.get('model.embed_tokens.weight')!.value.type, 'q4_0');
});

test('gemma-tune make-model refuses bad combinations with a one-line reason', () => {
  const out = path.join(tmp, 'x');
  const cases: [string[], RegExp][] = [
    [['--config', 'tiny', '--format', 'safetensors', '--dtype', 'q4_0', '--seed', '1', '--out', out], /q4_0 needs --format gguf/],
    [['--config', 'tiny', '--format', 'onnx', '--dtype', 'f32', '--seed', '1', '--out', out], /--format must be gguf or safetensors/],
    [['--config', 'tiny', '--format', 'gguf', '--dtype', 'f64', '--seed', '1', '--out', out], /--dtype must be/],
    [['--config', 'huge', '--format', 'gguf', '--dtype', 'f32', '--seed', '1', '--out', out], /--config must be tiny, 270m, 1b, 4b or a readable config.json/],
    [['--config', 'tiny', '--format', 'gguf', '--dtype', 'f32', '--seed', '-1', '--out', out], /--seed must be between/],
    [['--config', 'tiny', '--format', 'gguf', '--dtype', 'f32', '--seed', '1'], /--out is required/],
  ];
  for (const [args, re] of cases) {
    const r = cli('make-model', ...args);
    assert.equal(r.code, 2, args.join(' '));
    assert.match(r.stderr.split('\n')[0], re);
  }
  // A config whose rows cannot form Q4_0 blocks: a runtime refusal (exit 1), one line.
  const r = cli('make-model', '--config', hfFixture('mini-270m-shape/config.json'), '--format', 'gguf', '--dtype', 'q4_0', '--seed', '1', '--out', out);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /^gemma-tune make-model: .*rows of 40 values, not a multiple of 32/);
  assert.equal(r.stderr.trim().split('\n').length, 1);
  assert.equal(fs.existsSync(out), false);
});

test('gemma-tune help names every accepted tensor type; make-model writes the 1B preset header and an F16 embedding', () => {
  const r = cli('help');
  assert.equal(r.code, 0, r.stderr);
  for (const t of ['F32', 'F16', 'BF16', 'Q4_0', 'Q4_1', 'Q5_0', 'Q5_1', 'Q8_0', 'Q2_K', 'Q3_K', 'Q4_K', 'Q5_K', 'Q6_K', 'IQ4_NL', 'IQ4_XS']) {
    assert.match(r.stdout, new RegExp(`GGUF tensor types:.*\\b${t}\\b`), t);
  }
  assert.match(r.stdout, /make-model --config tiny\|270m\|1b\|4b/);
  const g = path.join(tmp, 'f16emb.gguf');
  const m = cli('make-model', '--config', 'tiny', '--format', 'gguf', '--dtype', 'q4_0', '--embedding', 'f16', '--seed', '1', '--out', g);
  assert.equal(m.code, 0, m.stderr);
  assert.equal(readGguf(g).tensors.get('token_embd.weight')!.dtype, 'f16');
  // An F16 embedding keeps its precision under q4 (float32 in memory), the Q4_0 blocks stay Q4_0.
  const loaded = loadModel(g, { precision: 'q4' });
  assert.equal(loaded.weights.weights.get('model.embed_tokens.weight')!.value.type, 'f32');
  assert.equal(loaded.weights.weights.get('model.layers.0.mlp.up_proj.weight')!.value.type, 'q4_0');
});
