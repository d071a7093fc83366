// The generation methods through the real engine worker (bundled with esbuild, run by EngineClient in a
// worker thread): load a model, stream generate, cancel mid-flight, classify, extract, and an adapter
// chosen per request, checked against the engine in-process and the PEFT fixture.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { EngineClient } from '../../src/client/engineClient';
import { generate } from '../../src/engine/generate/generator';
import { argmax } from '../../src/engine/generate/sampling';
import { readSafetensorsHeader, readSafetensorsF32 } from '../../src/engine/model/safetensors';
import { openModel } from '../../src/engine/generate/openModel';
import { encodeChatPrompt } from '../../src/engine/model/chatTemplate';
import { lastLogits, openTiny } from './generate-helpers';
import { buildWorker, engineRejection as rejection } from './worker-helpers';
import { hfFixture } from './shared-dir';

const fixture = hfFixture('tiny');
let engine: EngineClient;
let local: Awaited<ReturnType<typeof openTiny>>;

before(async () => {
  engine = new EngineClient({ workerPath: await buildWorker('generate-worker'), threads: 1 });
  local = await openTiny(6);
});
after(async () => {
  await engine.dispose();
  await local.runtime.dispose();
  fs.rmSync(local.dir, { recursive: true, force: true });
});

test('requests before loadModel fail with a reason, and the worker keeps serving', async () => {
  const e = await rejection(engine.request('generate', { promptIds: [2], maxTokens: 1 }));
  assert.equal(e.code, 'not-loaded');
  assert.match(e.message, /no model is loaded/);
  assert.equal((await engine.request('status', {})).model, null);
});

test('loadModel, then generate streams the tokens the engine gives in-process', async () => {
  const r = await engine.request('loadModel', { path: local.dir, precision: 'f32' });
  assert.equal(r.hasTokenizer, true);
  assert.equal((await engine.request('status', {})).model?.source, path.resolve(local.dir));
  const events: { id: number | null; text: string }[] = [];
  const messages = [{ role: 'user' as const, content: 'Tell me something.' }];
  const got = await engine.request('generate', { messages, maxTokens: 16, temperature: 0.9, seed: 3 }, { onEvent: (e) => events.push(e) });
  const promptIds = encodeChatPrompt(local.tokenizer!, messages);
  const want = await generate(local.runtime, local.gen, { promptIds, maxTokens: 16, sampling: { temperature: 0.9, seed: 3 } });
  assert.deepEqual(got.tokens, want.tokens);
  assert.equal(got.text, want.text);
  assert.equal(got.promptTokens, promptIds.length);
  assert.deepEqual(events.filter((e) => e.id !== null).map((e) => e.id), got.tokens);
  assert.equal(events.map((e) => e.text).join(''), got.text);
});

test('a cancel stops generation in flight; the next request runs', async () => {
  const controller = new AbortController();
  let n = 0;
  const e = await rejection(engine.request('generate', { promptIds: [2, 300], maxTokens: 30000, stopIds: [], temperature: 1 }, {
    signal: controller.signal,
    onEvent: () => {
      if (++n === 3) controller.abort();
    },
  }));
  assert.equal(e.code, 'cancelled');
  assert.ok(n >= 3 && n < 1000, `${n} tokens streamed`);
  const after = await engine.request('generate', { text: 'ok', maxTokens: 2, stopIds: [] });
  assert.equal(after.tokens.length, 2);
});

test('classify and extract answer within the labels and the fields', async () => {
  const c = await engine.request('classify', { messages: [{ role: 'user', content: 'Spam?' }], labels: ['spam', 'ham'] });
  assert.ok(['spam', 'ham'].includes(c.label));
  assert.ok(Math.abs(c.scores[0].probability + c.scores[1].probability - 1) < 1e-9);
  const x = await engine.request('extract', {
    messages: [{ role: 'user', content: 'Who?' }],
    fields: [{ name: 'name' }, { name: 'role', enum: ['dev', 'ops'] }],
    maxTokens: 60, temperature: 1, seed: 2,
  });
  assert.deepEqual(x.values.map((v) => v.name), ['name', 'role']);
  assert.deepEqual(JSON.parse(x.text), Object.fromEntries(x.values.map((v) => [v.name, v.value])));
  assert.ok(['dev', 'ops'].includes(x.values[1].value));
  const bad = await rejection(engine.request('generate', { text: 'a', promptIds: [2], maxTokens: 1 }));
  assert.match(bad.message, /exactly one of/);
});

test('an adapter is chosen per request without reloading the base (PEFT fixture)', async () => {
  await engine.request('loadModel', { path: fixture, precision: 'f32' });
  const a = await engine.request('loadAdapter', { name: 'peft', path: fixture });
  assert.deepEqual([a.rank, a.alpha, a.modules], [4, 8, 42]);
  const st = readSafetensorsHeader(path.join(fixture, 'lora_logits.safetensors'));
  // input_ids of lora_logits.safetensors (I32; the fixture README lists them as ids[0]).
  const ids = [2, 34, 163, 501, 108, 141, 265, 403, 461, 196, 266, 464, 435, 459, 66, 218, 41, 114, 347, 247, 9, 78, 163, 110];
  const logits = readSafetensorsF32(st, 'logits');
  const V = 512;
  const wantWith = argmax(logits.subarray((ids.length - 1) * V, ids.length * V));
  const withAdapter = await engine.request('generate', { promptIds: ids, maxTokens: 1, stopIds: [], adapter: 'peft' });
  assert.deepEqual(withAdapter.tokens, [wantWith]);
  const base = await engine.request('generate', { promptIds: ids, maxTokens: 1, stopIds: [] });
  const plain = await openModel(fixture, { precision: 'f32', threads: 1 });
  try {
    assert.deepEqual(base.tokens, [argmax(await lastLogits(plain.runtime, ids))]);
  } finally {
    await plain.runtime.dispose();
  }
  const missing = await rejection(engine.request('generate', { promptIds: ids, maxTokens: 1, adapter: 'nope' }));
  assert.equal(missing.code, 'not-loaded');
  assert.match(missing.message, /no adapter named "nope" \(loaded: peft\)/);
  assert.deepEqual(await engine.request('unloadAdapter', { name: 'peft' }), { removed: true });
  assert.deepEqual(await engine.request('unloadAdapter', { name: 'peft' }), { removed: false });
});
