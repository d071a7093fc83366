// Text from files and messages appears in errors escaped and shortened (src/common/quote.ts): an
// architecture name holding ESC [2J cleared the terminal of whoever ran the CLI. Here: the helper on every
// class of unsafe character, then each place that quotes file or message content — GGUF architecture,
// keys and tensor names, safetensors names, config.json and tokenizer.json (JSON.parse's own message
// repeats the bad text), examples.jsonl lines, webview and engine messages, and the CLI's one line.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describeValue, escapeControls, hasControls, jsonForMessage, quote, shownName } from '../../src/common/quote';
import { GEMMA3_TINY } from '../../src/engine/model/config';
import { readGguf, readGgufTensor } from '../../src/engine/model/gguf';
import { writeGguf } from '../../src/engine/model/ggufWriter';
import { GgufType } from '../../src/engine/model/ggufFormat';
import { loadModel } from '../../src/engine/model/load';
import { writeRandomGguf, writeRandomHf } from '../../src/engine/model/randomModel';
import { readSafetensorsHeader } from '../../src/engine/model/safetensors';
import { writeSafetensorsStreaming } from '../../src/engine/model/safetensorsWriter';
import { compileTokenizerJson, loadTokenizerJson } from '../../src/engine/model/tokenizerJson';
import { parseJsonl } from '../../src/store/jsonl';
import { exampleFromLine } from '../../src/store/examples';
import { parseWebviewMessage } from '../../src/protocol/webview';
import { parseHostToWorker } from '../../src/protocol/engine';
import { tempDir } from './temp-helpers';

const ROOT = path.join(__dirname, '../..');
const tmp = tempDir('quote-');
const ESC = '\x1b[2J';

/** The error `f` throws has no raw control character, and contains `shown`. */
function escapedError(f: () => unknown, shown: string): string {
  let message = '';
  assert.throws(f, (e: Error) => {
    message = e.message;
    return true;
  });
  assert.equal(hasControls(message), false, `raw control character in: ${JSON.stringify(message)}`);
  assert.ok(message.includes(shown), `${JSON.stringify(message)} shows ${shown}`);
  return message;
}

test('escapeControls writes C0, DEL, C1, bidi, separators, BOM and lone surrogates as escapes, and keeps the rest', () => {
  const unsafe = ['\x00', '\x07', '\x1b', '\x7f', '\x80', '\x9b', '\u061c', '\u200e', '\u200f', '\u2028', '\u2029', '\u202a', '\u202e', '\u2066', '\u2069', '\ufeff', '\ud800', '\udfff'];
  for (const c of unsafe) {
    assert.equal(escapeControls(`a${c}b`), `a\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}b`);
    assert.ok(hasControls(c));
  }
  assert.equal(escapeControls('tab\there\nnl\rcr'), 'tab\\there\\nnl\\rcr');
  for (const ok of ['plain', 'é ü ▁ 日本 😀', '<start_of_turn>', 'a"b\\c']) {
    assert.equal(escapeControls(ok), ok);
    assert.equal(hasControls(ok), false);
  }
});

test('quote escapes quotes and backslashes, shortens long text without splitting a surrogate pair; shownName keeps plain names', () => {
  assert.equal(quote('say "hi"\\'), '"say \\"hi\\"\\\\"');
  assert.equal(quote('x'.repeat(100), 10), `"${'x'.repeat(10)}"…(100 characters)`);
  assert.equal(quote('a😀b', 2), '"a"…(4 characters)');
  assert.equal(shownName('blk.0.attn_q.weight'), 'blk.0.attn_q.weight');
  assert.equal(shownName(`evil${ESC}`), '"evil\\u001b[2J"');
  assert.equal(shownName('has space'), '"has space"');
  assert.equal(describeValue({ a: 1 }), 'an object');
  assert.equal(jsonForMessage({ k: `\x9b${'y'.repeat(200)}` }, 20), '{"k":"\\u009byyyyyyyyyyyyy…');
});

test('GGUF: an architecture, a metadata key and a tensor name holding escapes are shown escaped', () => {
  const good = path.join(tmp, 'good.gguf');
  writeRandomGguf(good, GEMMA3_TINY, { seed: 1, dtype: 'q4_0' });
  const src = readGguf(good);
  const tensors = [...src.tensors.values()].map((t) => ({ name: t.name, ne: t.ne, dtype: t.dtype, data: () => [readGgufTensor(src, t.name)] }));
  const meta = [...src.metadata];

  const arch = path.join(tmp, 'arch.gguf');
  writeGguf(arch, meta.map(([k, v]) => [k, k === 'general.architecture' ? { type: GgufType.STRING, value: `${ESC}gemma\u202e3` } : v]), tensors);
  escapedError(() => loadModel(arch, { precision: 'q4' }), 'architecture "\\u001b[2Jgemma\\u202e3" is not supported');

  const key = path.join(tmp, 'key.gguf');
  writeGguf(key, [...meta, [`x${ESC}`, { type: GgufType.UINT32, value: 1 }], [`x${ESC}`, { type: GgufType.UINT32, value: 2 }]], tensors);
  escapedError(() => readGguf(key), 'metadata key "x\\u001b[2J" appears twice');

  const name = path.join(tmp, 'name.gguf');
  const t0 = tensors[0];
  writeGguf(name, meta, [...tensors, { ...t0, name: `rope\x07${ESC}.weight` }]);
  escapedError(() => loadModel(name, { precision: 'q4' }), 'unexpected tensor "rope\\u0007\\u001b[2J.weight"');
});

test('safetensors, config.json and tokenizer.json content is shown escaped, JSON.parse errors included', () => {
  const st = path.join(tmp, 'name.safetensors');
  writeSafetensorsStreaming(st, [{ name: `w${ESC}`, dtype: 'I32', shape: [1], data: () => [new Uint8Array(4)] }]);
  const dir = path.join(tmp, 'hf');
  writeRandomHf(dir, GEMMA3_TINY, { seed: 1, dtype: 'f32' });
  fs.copyFileSync(st, path.join(dir, 'model.safetensors'));
  escapedError(() => loadModel(dir, { precision: 'q4' }), 'tensor "w\\u001b[2J" has dtype I32');
  assert.ok(readSafetensorsHeader(st).entries.has(`w${ESC}`), 'the name itself is kept as it is');

  const cfg = path.join(dir, 'config.json');
  fs.writeFileSync(cfg, `{"model_type": "gemma3_text", ${ESC}`);
  escapedError(() => loadModel(dir, { precision: 'q4' }), 'not valid JSON');
  fs.writeFileSync(cfg, JSON.stringify({ model_type: `llama${ESC}` }));
  escapedError(() => loadModel(dir, { precision: 'q4' }), 'model_type "llama\\u001b[2J" is not Gemma 3 text');

  escapedError(() => compileTokenizerJson({ model: { type: `\x9bBPE`, vocab: {} } }, 't.json'), 'model type "\\u009bBPE" is not supported');
  const tok = path.join(tmp, 'tokenizer.json');
  fs.writeFileSync(tok, `{"model": ${ESC}}`);
  escapedError(() => loadTokenizerJson(tok), 'not valid JSON');
});

test('examples.jsonl problems, webview and engine messages show their content escaped', () => {
  const read = parseJsonl(`{"messages": ${ESC}\n{"id": "a${ESC}", "prompt": "x", "completion": "y"}\n`, 'examples.jsonl', exampleFromLine);
  assert.equal(read.problems.length, 2);
  for (const p of read.problems) assert.equal(hasControls(p.message), false, p.message);

  escapedError(() => parseWebviewMessage({ type: 'ready', [`k${ESC}`]: 1 }), 'unknown field "k\\u001b[2J"');
  escapedError(() => parseWebviewMessage({ type: `t${ESC}` }), 'unknown message type "t\\u001b[2J"');
  escapedError(() => parseWebviewMessage({ type: 'removeExample', seq: 1, id: `x${ESC}` }), '"x\\u001b[2J"');
  escapedError(() => parseHostToWorker({ kind: 'request', id: 1, method: `m${ESC}` }), 'unknown method "m\\u001b[2J"');
});

test('gemma-tune prints a file\'s escape bytes escaped, on one line', () => {
  const arch = path.join(tmp, 'arch.gguf');
  const r = spawnSync(process.execPath, ['--import', 'tsx', path.join(ROOT, 'src/cli/main.ts'), 'generate', '--model', arch, '--tokens', '2'], { cwd: ROOT, encoding: 'utf8', timeout: 120_000 });
  assert.equal(r.status, 1);
  assert.equal(hasControls(r.stderr.replace(/\n$/, '')), false, JSON.stringify(r.stderr));
  assert.match(r.stderr, /^gemma-tune generate: .*architecture "\\u001b\[2Jgemma\\u202e3" is not supported \(only gemma3\)\n$/);
});
