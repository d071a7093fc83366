// The prompt-prefix KV cache: classify from a kept prefix gives the probabilities of a full run (base
// model and adapter), hits and misses are counted per (adapter, prefix ids), an adapter's entries go
// when it is replaced, and the count and byte bounds evict least-recently-used entries. Then through
// the real engine worker: a classify request with sharedPrefix answers as one without, hits the cache
// on its second request, and follows an adapter reloaded under the same name. Tiny random models, f32
// in-process and Q4 GGUF in the worker.
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { classifyParams } from '../../src/client/taskRequests';
import { classify, type ClassifyResult } from '../../src/engine/generate/labelScoring';
import type { GemmaRuntime } from '../../src/engine/gemma/runtime';
import { PrefixCache } from '../../src/engine/generate/prefixCache';
import { writePeftAdapter } from '../../src/engine/train/peftWriter';
import { renderUserMessage } from '../../src/store/prompt';
import { newTaskConfig } from '../../src/store/task';
import { baseThenAdapter, openTunedTiny, taskPromptIds, trainedLora } from './generate-helpers';
import { tempDir } from './temp-helpers';
import { engineRejection, tinyModelEngine } from './worker-helpers';

const task = newTaskConfig({ name: 'Bug or feature', kind: 'classify', instruction: 'Is this issue a bug report or a feature request?', labels: ['bug', 'feature', 'question'] });
const INPUTS = ['The app crashes when I click Save twice.', 'Please add a dark mode.', 'How do I export to CSV?'];

let m: Awaited<ReturnType<typeof openTunedTiny>>;

before(async () => {
  m = await openTunedTiny(3);
});
after(() => m.close());


function assertSameScores(got: ClassifyResult, want: ClassifyResult, tol = 1e-5): void {
  assert.equal(got.label, want.label);
  got.scores.forEach((s, i) => {
    assert.ok(Math.abs(s.probability - want.scores[i].probability) < tol, `${s.label}: ${s.probability} vs ${want.scores[i].probability}`);
    assert.ok(Math.abs(s.logprob - want.scores[i].logprob) < 1e-4, `${s.label}: logprob ${s.logprob} vs ${want.scores[i].logprob}`);
  });
}

test('classify from a kept prefix gives the probabilities of a full run, with and without an adapter', async () => {
  const cache = new PrefixCache(m.runtime);
  for (const adapter of [undefined, 'tuned']) {
    for (const input of INPUTS) {
      const { ids, shared } = taskPromptIds(m.tokenizer!, task, input);
      assert.ok(shared > 20 && shared < ids.length, `the task text covers ${shared} of ${ids.length} ids`);
      const want = await classify(m.runtime, m.gen, { promptIds: ids, labels: task.labels!, adapter });
      const start = await cache.take(ids.slice(0, shared), adapter);
      try {
        const got = await classify(m.runtime, m.gen, { promptIds: ids, labels: task.labels!, adapter, start: start.cache });
        assert.equal(got.cachedTokens, shared);
        assert.equal(got.ranTokens, ids.length - shared);
        assertSameScores(got, want);
      } finally {
        start.cache.dispose();
      }
    }
  }
  // One miss per adapter, then hits: the three inputs share the task's prefix.
  assert.deepEqual({ hits: cache.stats().hits, misses: cache.stats().misses, entries: cache.stats().entries }, { hits: 4, misses: 2, entries: 2 });
  // The base model's entry was made before the first adapter moved the runtime to its LoRA graph
  // (ortRuntime's lazy mode); it still gives what the LoRA graph computes with no adapter.
  const { ids, shared } = taskPromptIds(m.tokenizer!, task, INPUTS[1]);
  const start = await cache.take(ids.slice(0, shared), undefined);
  assert.equal(start.hit, true);
  const got = await classify(m.runtime, m.gen, { promptIds: ids, labels: task.labels!, start: start.cache });
  start.cache.dispose();
  assertSameScores(got, await classify(m.runtime, m.gen, { promptIds: ids, labels: task.labels! }));
  cache.clear();
});

test('a prompt longer than one run (head, then tail and labels) scores as the full forward does', async () => {
  const long = INPUTS.join(' ').repeat(12);
  const { ids } = taskPromptIds(m.tokenizer!, task, long);
  assert.ok(ids.length > 300, `${ids.length} ids`);
  const labels = task.labels!;
  // The same runtime without scoreSequences: a step for the prompt, then one fork and step per label.
  const rt = m.runtime;
  const stepsOnly: GemmaRuntime = {
    config: rt.config, precision: rt.precision, device: rt.device, weightsFrom: rt.weightsFrom, maxRunTokens: rt.maxRunTokens, decodeBy: rt.decodeBy, newCache: () => rt.newCache(), step: (c, x, o) => rt.step(c, x, o),
    setAdapter: (n, a) => rt.setAdapter(n, a), removeAdapter: (n) => rt.removeAdapter(n), dispose: () => rt.dispose(),
  };
  const oneByOne = await classify(stepsOnly, m.gen, { promptIds: ids, labels });
  const got = await classify(m.runtime, m.gen, { promptIds: ids, labels });
  assertSameScores(got, oneByOne);
});

test('hits and misses are per adapter and prefix; a returned cache is the caller\'s own copy', async () => {
  const cache = new PrefixCache(m.runtime);
  const { ids, shared } = taskPromptIds(m.tokenizer!, task, INPUTS[0]);
  const head = ids.slice(0, shared);
  const a = await cache.take(head, undefined);
  assert.equal(a.hit, false);
  assert.equal(a.cache.length, shared);
  await m.runtime.step(a.cache, [300, 301], { logits: 'last' });
  a.cache.dispose();
  const b = await cache.take(head, undefined);
  assert.equal(b.hit, true);
  assert.equal(b.cache.length, shared, 'the kept entry did not grow with the caller\'s steps');
  b.cache.dispose();
  assert.equal((await cache.take(head, 'tuned')).hit, false, 'another adapter is another entry');
  assert.equal((await cache.take(head.slice(0, -1), undefined)).hit, false, 'another prefix is another entry');
  assert.equal((await cache.take(head, undefined, 1)).hit, false, 'another adapter version is another entry');
  assert.equal(cache.stats().entries, 4);
  assert.equal(cache.invalidate('tuned'), 1);
  assert.equal((await cache.take(head, 'tuned')).hit, false, 'a replaced adapter computes its prefix again');
  assert.equal((await cache.take(head, 'tuned')).hit, true);
  cache.clear();
  assert.deepEqual({ entries: cache.stats().entries, bytes: cache.stats().bytes }, { entries: 0, bytes: 0 });
});

test('the count and byte bounds evict the least recently used entries; an entry over the byte bound is not kept', async () => {
  const { ids } = taskPromptIds(m.tokenizer!, task, INPUTS[0]);
  const byCount = new PrefixCache(m.runtime, { maxEntries: 2, maxBytes: 1 << 30 });
  const p = (n: number) => ids.slice(0, n);
  for (const n of [10, 11, 12]) (await byCount.take(p(n), undefined)).cache.dispose();
  assert.equal(byCount.stats().entries, 2);
  assert.equal((await byCount.take(p(12), undefined)).hit, true);
  assert.equal((await byCount.take(p(11), undefined)).hit, true);
  assert.equal((await byCount.take(p(10), undefined)).hit, false, 'the oldest went first');
  // 10 was taken again (now newest), evicting 12, the least recently used.
  assert.equal((await byCount.take(p(11), undefined)).hit, true);
  assert.equal((await byCount.take(p(12), undefined)).hit, false);

  const single = new PrefixCache(m.runtime);
  (await single.take(p(10), undefined)).cache.dispose();
  const entryBytes = single.stats().bytes;
  assert.ok(entryBytes > 0);
  const byBytes = new PrefixCache(m.runtime, { maxEntries: 100, maxBytes: entryBytes * 2 });
  for (const n of [10, 11, 12]) (await byBytes.take(p(n), undefined)).cache.dispose();
  assert.equal(byBytes.stats().entries, 2);
  assert.ok(byBytes.stats().bytes <= entryBytes * 2);
  const tooSmall = new PrefixCache(m.runtime, { maxEntries: 100, maxBytes: entryBytes - 1 });
  const r = await tooSmall.take(p(10), undefined);
  assert.equal(r.cache.length, 10, 'still usable by the caller');
  assert.equal(tooSmall.stats().entries, 0);
});

// ---- through the worker ---------------------------------------------------------------------

const dir = tempDir('generate-prefixcache-');
const modelFile = path.join(dir, 'tiny.gguf');
const adapterDir = path.join(dir, 'adapter');

test('the worker: sharedPrefix answers as without it, hits on the next request, and follows a reloaded adapter', async () => {
  const { engine, logs } = await tinyModelEngine('generate-prefixcache', modelFile);
  try {
    await engine.request('loadModel', { path: modelFile });
    await baseThenAdapter(engine, adapterDir, async (adapter) => {
      for (const input of INPUTS) {
        const params = classifyParams(task, input, adapter);
        assert.ok(params.sharedPrefix && params.messages![0].content.startsWith(params.sharedPrefix));
        const { sharedPrefix: _, ...plain } = params;
        const [got, want] = [await engine.request('classify', params), await engine.request('classify', plain)];
        assert.equal(got.label, want.label);
        got.scores.forEach((s, i) => assert.ok(Math.abs(s.probability - want.scores[i].probability) < 1e-5, `${input}: ${s.label}`));
      }
    });
    const hits = logs.filter((l) => /prefix \d+ ids hit/.test(l)).length;
    const misses = logs.filter((l) => /prefix \d+ ids miss/.test(l)).length;
    assert.deepEqual({ hits, misses }, { hits: 4, misses: 2 }, logs.join('\n'));

    // Retrained: new weights under the same name. The answer must be the new adapter's, not the kept prefix's.
    writePeftAdapter(adapterDir, trainedLora(9));
    await engine.request('loadAdapter', { name: 'task', path: adapterDir });
    const params = classifyParams(task, INPUTS[0], 'task');
    const { sharedPrefix: _, ...plain } = params;
    const [got, want] = [await engine.request('classify', params), await engine.request('classify', plain)];
    got.scores.forEach((s, i) => assert.ok(Math.abs(s.probability - want.scores[i].probability) < 1e-5, s.label));
    // The stage lines of the last two requests: with sharedPrefix (a miss: the old entry went), then without.
    assert.match(logs.filter((l) => /classify#\d+: /.test(l)).at(-2)!, /prefix \d+ ids miss/);

    const bad = await engineRejection(engine.request('classify', { ...params, sharedPrefix: 'Something else' }));
    assert.match(bad.message, /sharedPrefix is not the start/);
    const noText = await engineRejection(engine.request('classify', { promptIds: [2, 300, 301], labels: ['a', 'b'], sharedPrefix: 'x' }));
    assert.match(noText.message, /sharedPrefix needs messages or text/);

    // A raw text prompt: the same answer with and without, and a hit on the second request.
    const head = renderUserMessage(task, '');
    for (const input of INPUTS.slice(0, 2)) {
      const text = renderUserMessage(task, input);
      const [got, want] = [await engine.request('classify', { text, labels: task.labels!, sharedPrefix: head }), await engine.request('classify', { text, labels: task.labels! })];
      got.scores.forEach((s, i) => assert.ok(Math.abs(s.probability - want.scores[i].probability) < 1e-5, `text: ${s.label}`));
    }
    assert.match(logs.filter((l) => /classify#\d+: /.test(l)).at(-2)!, /prefix \d+ ids hit/);
  } finally {
    await engine.dispose();
  }
});
