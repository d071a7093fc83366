// `gemma-tune tokenize`, run as a process: the exact output form, --text and --chat, --tokenizer and
// --model (GGUF file and HF folder written by the project's writers), and one-line errors.

import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { writeRandomGguf, writeRandomHf } from '../../src/engine/model/randomModel';
import { GEMMA3_TINY } from '../../src/engine/model/config';
import { GEMMA3_TOKENIZER_JSON } from './tokenizer-helpers';

const ROOT = path.join(__dirname, '../..');

function cli(...args: string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, ['--import', 'tsx', path.join(ROOT, 'src/cli/main.ts'), 'tokenize', ...args], { cwd: ROOT, encoding: 'utf8', timeout: 120_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tokcli-'));
test.after(() => fs.rmSync(dir, { recursive: true, force: true }));

test('--tokenizer with --text prints the ids with no special tokens', () => {
  const r = cli('--tokenizer', GEMMA3_TOKENIZER_JSON, '--text', 'Hello world <end_of_turn>');
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, '{"ids":[9259,1902,236743,106]}\n');
});

test('--tokenizer with --chat prints the template with BOS and the generation prompt', () => {
  const chat = path.join(dir, 'chat.json');
  fs.writeFileSync(chat, JSON.stringify([{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'Hi' }]));
  const r = cli('--tokenizer', GEMMA3_TOKENIZER_JSON, '--chat', chat);
  assert.equal(r.code, 0, r.stderr);
  const { ids } = JSON.parse(r.stdout) as { ids: number[] };
  assert.deepEqual(ids.slice(0, 4), [2, 105, 2364, 107]);
  assert.deepEqual(ids.slice(-6), [10979, 106, 107, 105, 4368, 107]);
});

test('--model reads the tokenizer of a GGUF file and of a Hugging Face folder', () => {
  const gguf = path.join(dir, 'tiny.gguf');
  writeRandomGguf(gguf, GEMMA3_TINY, { seed: 3, dtype: 'q4_0' });
  const hf = path.join(dir, 'hf');
  writeRandomHf(hf, GEMMA3_TINY, { seed: 3, dtype: 'bf16' });
  const a = cli('--model', gguf, '--text', 'Hi there!\n');
  const b = cli('--model', hf, '--text', 'Hi there!\n');
  assert.equal(a.code, 0, a.stderr);
  assert.equal(a.stdout, b.stdout);
  assert.ok((JSON.parse(a.stdout) as { ids: number[] }).ids.length === 10);
});

test('bad input: usage errors exit 2, bad files exit 1, each with a one-line reason', () => {
  const bad = path.join(dir, 'bad.json');
  fs.writeFileSync(bad, '[{"role":"robot","content":"x"}]');
  const cases: [string[], number, RegExp][] = [
    [['--text', 'x'], 2, /exactly one of --model and --tokenizer/],
    [['--tokenizer', 'a', '--model', 'b', '--text', 'x'], 2, /exactly one of --model and --tokenizer/],
    [['--tokenizer', GEMMA3_TOKENIZER_JSON], 2, /exactly one of --text and --chat/],
    [['--tokenizer', GEMMA3_TOKENIZER_JSON, '--chat', bad], 1, /bad\.json: message 0 has role "robot"/],
    [['--tokenizer', GEMMA3_TOKENIZER_JSON, '--chat', path.join(dir, 'none.json')], 1, /none\.json: cannot read/],
    [['--tokenizer', path.join(dir, 'none.json'), '--text', 'x'], 1, /none\.json: cannot read/],
    [['--model', path.join(dir, 'none.gguf'), '--text', 'x'], 1, /none\.gguf: no such file/],
  ];
  for (const [args, code, re] of cases) {
    const r = cli(...args);
    assert.equal(r.code, code, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr.split('\n')[0], re);
    assert.equal(r.stdout, '');
  }
});
