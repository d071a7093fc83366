// generate() on a real runtime over a tiny random model: cached greedy decoding equals argmax of a full
// forward, stop ids and stop strings (across token boundaries), streaming, seeds, cancellation.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { generate } from '../../src/engine/generate/generator';
import { argmax } from '../../src/engine/generate/sampling';
import { StopMatcher } from '../../src/engine/generate/textStream';
import type { OpenModel } from '../../src/engine/generate/openModel';
import { lastLogits, openTiny } from './generate-helpers';

let m: OpenModel & { dir: string };
const prompt = [2, 105, 300, 301, 302, 303, 106, 107, 105, 310];

before(async () => {
  m = await openTiny(3);
});
after(async () => {
  await m.runtime.dispose();
  fs.rmSync(m.dir, { recursive: true, force: true });
});

test('greedy decoding through the KV cache equals argmax of a full forward at every step', async () => {
  const r = await generate(m.runtime, m.gen, { promptIds: prompt, maxTokens: 12, sampling: { temperature: 0 }, stopIds: [] });
  assert.equal(r.tokens.length, 12);
  assert.equal(r.finishReason, 'length');
  const seq = [...prompt];
  for (const t of r.tokens) {
    assert.equal(t, argmax(await lastLogits(m.runtime, seq)));
    seq.push(t);
  }
});

test('a stop id ends generation and is not part of the tokens', async () => {
  const free = await generate(m.runtime, m.gen, { promptIds: prompt, maxTokens: 10, sampling: { temperature: 0 }, stopIds: [] });
  const k = 4;
  const stopId = free.tokens[k];
  const first = free.tokens.indexOf(stopId);
  const r = await generate(m.runtime, m.gen, { promptIds: prompt, maxTokens: 10, sampling: { temperature: 0 }, stopIds: [stopId] });
  assert.equal(r.finishReason, 'stop');
  assert.deepEqual(r.tokens, free.tokens.slice(0, first));
});

test('a stop string spanning token boundaries cuts the text before it; streamed text equals the result', async () => {
  // Sampling gives varied text from the tiny model; find a run whose text has a stop candidate spanning tokens.
  for (let seed = 0; seed < 50; seed++) {
    const o = { promptIds: prompt, maxTokens: 24, sampling: { temperature: 1, seed }, stopIds: [] as number[] };
    const free = await generate(m.runtime, m.gen, o);
    const pieces = free.tokens.map((t) => new TextDecoder().decode(m.gen!.tokenBytes(t) ?? new Uint8Array()));
    // Two consecutive single-character ASCII tokens from the middle make a two-token stop string.
    const i = pieces.findIndex((p, j) => j > 2 && j < pieces.length - 2 && /^[a-z]$/.test(p) && /^[a-z]$/.test(pieces[j + 1] ?? ''));
    if (i < 0) continue;
    const stop = pieces[i] + pieces[i + 1];
    const streamed: string[] = [];
    const r = await generate(m.runtime, m.gen, { ...o, stop: [stop], onToken: (_id, text) => streamed.push(text) });
    const at = free.text.indexOf(stop);
    assert.equal(r.finishReason, 'stop');
    assert.equal(r.text, free.text.slice(0, at));
    assert.equal(streamed.join(''), r.text);
    assert.ok(!r.text.includes(stop));
    assert.ok(r.tokens.length <= i + 2);
    assert.deepEqual(r.tokens, free.tokens.slice(0, r.tokens.length));
    return;
  }
  assert.fail('no seed produced two adjacent letter tokens');
});

test('the stop matcher finds matches across pieces and holds back only possible prefixes', () => {
  const s = new StopMatcher(['END', '\n\n']);
  assert.equal(s.find('abcEN', 2), -1);
  assert.equal(s.safeLength('abcEN'), 3);
  assert.equal(s.find('abcEND', 1), 3);
  assert.equal(s.safeLength('abc\n'), 3);
  assert.equal(s.safeLength('abcx'), 4);
  assert.equal(s.find('a\n\nEND', 3), 1);
});

test('streamed pieces concatenate to the text, and a seed repeats the tokens', async () => {
  const o = { promptIds: prompt, maxTokens: 16, sampling: { temperature: 1, topK: 20, topP: 0.9, seed: 7 }, stopIds: [] as number[] };
  const streamed: string[] = [];
  const ids: (number | null)[] = [];
  const a = await generate(m.runtime, m.gen, { ...o, onToken: (id, t) => (streamed.push(t), ids.push(id)) });
  const b = await generate(m.runtime, m.gen, o);
  const c = await generate(m.runtime, m.gen, { ...o, sampling: { ...o.sampling, seed: 8 } });
  assert.equal(streamed.join(''), a.text);
  assert.deepEqual(ids.filter((x) => x !== null), a.tokens);
  assert.deepEqual(a.tokens, b.tokens);
  assert.notDeepEqual(a.tokens, c.tokens);
});

test('an abort from another macrotask cancels a request in flight between tokens', async () => {
  const controller = new AbortController();
  let seen = 0;
  const started = new Promise<void>((resolve) => {
    const run = generate(m.runtime, m.gen, {
      promptIds: prompt,
      maxTokens: 100000,
      sampling: { temperature: 1, seed: 1 },
      stopIds: [],
      signal: controller.signal,
      onToken: (id) => {
        if (id !== null && ++seen === 3) resolve();
      },
    });
    void run.then((r) => {
      result = r;
    });
  });
  let result: Awaited<ReturnType<typeof generate>> | undefined;
  await started;
  setTimeout(() => controller.abort(), 20);
  while (!result) await new Promise((r) => setTimeout(r, 5));
  assert.equal(result.finishReason, 'cancelled');
  assert.ok(result.tokens.length >= 3 && result.tokens.length < 100000);
});

test('an abort inside the token callback stops right after that token', async () => {
  const controller = new AbortController();
  const r = await generate(m.runtime, m.gen, {
    promptIds: prompt, maxTokens: 50, sampling: { temperature: 0 }, stopIds: [], signal: controller.signal,
    onToken: (id) => {
      if (id !== null) controller.abort();
    },
  });
  assert.equal(r.finishReason, 'cancelled');
  assert.equal(r.tokens.length, 1);
});

test('bad requests are refused with a reason; a zero budget generates nothing', async () => {
  await assert.rejects(generate(m.runtime, m.gen, { promptIds: [], maxTokens: 4, sampling: { temperature: 0 } }), /no tokens/);
  await assert.rejects(generate(m.runtime, m.gen, { promptIds: [2, 9999], maxTokens: 4, sampling: { temperature: 0 } }), /outside the vocabulary/);
  await assert.rejects(generate(m.runtime, m.gen, { promptIds: [2], maxTokens: 4, sampling: { temperature: -1 } }), /temperature/);
  await assert.rejects(generate(m.runtime, undefined, { promptIds: [2], maxTokens: 4, sampling: { temperature: 0 }, stop: ['x'] }), /tokenizer/);
  const r = await generate(m.runtime, m.gen, { promptIds: [2], maxTokens: 0, sampling: { temperature: 0 } });
  assert.deepEqual(r, { tokens: [], text: '', finishReason: 'length' });
});
