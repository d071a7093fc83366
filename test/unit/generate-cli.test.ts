// The built CLI end to end (dist/cli.js, spawned): generate, classify and bench on a model written by
// `make-model`, matched against the engine in-process; bad input exits non-zero with one line.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { generate } from '../../src/engine/generate/generator';
import { chatPromptIds, openModel, type OpenModel } from '../../src/engine/generate/openModel';
import { hfFixture } from './shared-dir';

const root = path.resolve(__dirname, '../..');
const cli = path.join(root, 'dist/cli.js');
const fixture = hfFixture('tiny');
let dir: string;
let modelDir: string;
let m: OpenModel;

function run(args: string[]): { code: number; stdout: string; stderr: string } {
  const r = spawnSync('node', [cli, ...args], { encoding: 'utf8', timeout: 120000 });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

function ok(args: string[]): string {
  const r = run(args);
  assert.equal(r.code, 0, r.stderr);
  return r.stdout;
}

before(async () => {
  if (!fs.existsSync(cli)) execFileSync('node', ['esbuild.js'], { cwd: root, stdio: 'ignore' });
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gen-cli-'));
  modelDir = path.join(dir, 'tiny');
  ok(['make-model', '--config', 'tiny', '--format', 'safetensors', '--dtype', 'f32', '--seed', '4', '--out', modelDir]);
  m = await openModel(modelDir, { precision: 'f32', threads: 1 });
});
after(async () => {
  await m?.runtime.dispose();
  fs.rmSync(dir, { recursive: true, force: true });
});

test('generate --tokens --json gives the engine greedy tokens, raw (no stop ids), and their text', async () => {
  const ids = [2, 300, 301, 302, 1, 106, 330];
  const out = JSON.parse(ok(['generate', '--model', modelDir, '--precision', 'f32', '--tokens', ids.join(','), '--max-tokens', '12', '--temperature', '0', '--json']));
  const want = await generate(m.runtime, m.gen, { promptIds: ids, maxTokens: 12, sampling: { temperature: 0 }, stopIds: [] });
  assert.deepEqual(out.tokens, want.tokens);
  assert.equal(out.tokens.length, 12);
  assert.equal(out.text, want.text);
});

test('generate --prompt --chat stops on the default stop ids and streams the same text it returns', async () => {
  const args = ['generate', '--model', modelDir, '--precision', 'f32', '--prompt', 'Say hi', '--chat', '--max-tokens', '20', '--temperature', '0.8', '--seed', '11'];
  const out = JSON.parse(ok([...args, '--json']));
  const want = await generate(m.runtime, m.gen, {
    promptIds: chatPromptIds(m.tokenizer!, [{ role: 'user', content: 'Say hi' }]),
    maxTokens: 20,
    sampling: { temperature: 0.8, topK: 64, topP: 0.95, seed: 11 },
  });
  assert.deepEqual(out.tokens, want.tokens);
  assert.equal(out.finish_reason, want.finishReason);
  assert.ok(!out.tokens.includes(1) && !out.tokens.includes(106));
  assert.equal(ok(args), out.text + '\n');
});

test('generate reads a tokenizer-less HF folder with --tokens, and refuses --prompt there in one line', () => {
  const out = JSON.parse(ok(['generate', '--model', fixture, '--precision', 'f32', '--tokens', '2,34,163', '--max-tokens', '4', '--temperature', '0', '--json']));
  assert.equal(out.tokens.length, 4);
  assert.equal(out.text, '');
  const r = run(['generate', '--model', fixture, '--prompt', 'hi']);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /tokenizer/);
  assert.equal(r.stderr.trim().split('\n').length, 1);
});

test('classify prints the label and every label probability', () => {
  const out = JSON.parse(ok(['classify', '--model', modelDir, '--labels', 'spam,ham,eggs', '--text', 'Buy now!']));
  assert.ok(['spam', 'ham', 'eggs'].includes(out.label));
  assert.deepEqual(Object.keys(out.probabilities), ['spam', 'ham', 'eggs']);
  const sum = Object.values(out.probabilities as Record<string, number>).reduce((a, b) => a + b, 0);
  assert.ok(Math.abs(sum - 1) < 1e-9);
  assert.equal(out.probability, out.probabilities[out.label]);
  assert.ok(Object.values(out.logprobs as Record<string, number>).every((v) => v < 0));
});

test('bench --json prints the five numbers', () => {
  const out = JSON.parse(ok(['bench', '--model', modelDir, '--prompt-tokens', '32', '--gen-tokens', '8', '--threads', '1', '--json']));
  for (const k of ['load_s', 'prefill_tok_s', 'decode_tok_s', 'classify_ms', 'peak_rss_mb']) assert.ok(out[k] > 0, `${k}=${out[k]}`);
});

test('bad input exits non-zero with a one-line reason', () => {
  const cases: [string[], number, RegExp][] = [
    [['generate', '--model', modelDir, '--tokens', '2,3', '--precision', 'q8'], 2, /--precision/],
    [['generate', '--model', modelDir], 2, /--prompt and --tokens/],
    [['generate', '--model', modelDir, '--tokens', '2,3', '--chat'], 2, /--chat/],
    [['generate', '--model', path.join(dir, 'nope'), '--tokens', '2'], 1, /no such file/],
    [['generate', '--model', modelDir, '--tokens', '2,99999', '--json'], 1, /outside the vocabulary/],
    [['generate', '--model', modelDir, '--tokens', '2', '--top-p', '0'], 2, /top-p/],
    [['classify', '--model', modelDir, '--labels', 'a,,b', '--text', 'x'], 2, /empty label/],
    [['classify', '--model', modelDir, '--labels', 'a,a', '--text', 'x'], 2, /twice/],
    [['bench', '--model', modelDir, '--prompt-tokens', '-3'], 2, /prompt-tokens/],
  ];
  for (const [args, code, why] of cases) {
    const r = run(args);
    assert.equal(r.code, code, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr.split('\n')[0], why);
  }
});
