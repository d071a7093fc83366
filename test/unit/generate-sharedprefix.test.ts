// The prompt-prefix KV cache for generation: generate and extract that start from a kept prefix give,
// greedily, exactly the tokens of a full run (base model and adapter; the tiny model's synthetic
// tokenizer and the real Gemma 3 one). Then through the real engine worker: extract and generate
// requests with sharedPrefix (as taskRequests.ts builds them) answer as without it, hit the cache on
// the next request, follow a reloaded adapter, reject a sharedPrefix that is not the prompt's start
// and keep serving, and stop on cancel.
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { extractRequest, freeTextParams } from '../../src/client/taskRequests';
import { extract, JsonConstraintTable, packVocab } from '../../src/engine/generate/constrained';
import { generate } from '../../src/engine/generate/generator';
import type { GemmaRuntime } from '../../src/engine/gemma/runtime';
import type { JsonShape } from '../../src/engine/generate/jsonShape';
import { PrefixCache } from '../../src/engine/generate/prefixCache';
import { writePeftAdapter } from '../../src/engine/train/peftWriter';
import type { ParamsOf } from '../../src/protocol/engine';
import { newTaskConfig } from '../../src/store/task';
import { baseThenAdapter, openRealVocab, openTunedTiny, taskPromptIds, trainedLora } from './generate-helpers';
import { tempDir } from './temp-helpers';
import { engineRejection, tinyModelEngine } from './worker-helpers';

const fieldsTask = newTaskConfig({ name: 'Contact', kind: 'extract', instruction: 'Extract the contact details from the signature.', fields: ['name', 'email', 'team'] });
const freeTask = newTaskConfig({ name: 'Polite', kind: 'generate', instruction: 'Rewrite the message so that it sounds polite and short.' });
const INPUTS = ['Ana Ruiz <ana@example.org>, platform team', 'Send me the logs now.', 'Bo Li — bo@li.dev (search)'];
const shape: JsonShape = { fields: fieldsTask.fields!.map((name) => ({ name })) };

let m: Awaited<ReturnType<typeof openTunedTiny>>;

before(async () => {
  m = await openTunedTiny(5);
});
after(() => m.close());


test('generate and extract from a kept prefix give the tokens of a full run, with and without an adapter', async () => {
  // The real runtime, recording how many ids each step runs.
  const rt = m.runtime;
  const stepped: number[] = [];
  const counting: GemmaRuntime = {
    config: rt.config, precision: rt.precision, device: rt.device, weightsFrom: rt.weightsFrom, maxRunTokens: rt.maxRunTokens, decodeBy: rt.decodeBy, newCache: () => rt.newCache(),
    step: (c, x, o) => (stepped.push(x.length), rt.step(c, x, o)),
    setAdapter: (n, a) => rt.setAdapter(n, a), removeAdapter: (n) => rt.removeAdapter(n), dispose: () => rt.dispose(),
  };
  const cache = new PrefixCache(m.runtime);
  const table = new JsonConstraintTable(shape, packVocab(m.gen!));
  for (const adapter of [undefined, 'tuned']) {
    for (const input of INPUTS) {
      const ex = taskPromptIds(m.tokenizer!, fieldsTask, input);
      assert.ok(ex.shared > 15 && ex.shared < ex.ids.length, `the task text covers ${ex.shared} of ${ex.ids.length} ids`);
      const exOpts = { promptIds: ex.ids, shape, table, maxTokens: 40, sampling: { temperature: 0 }, adapter };
      const want = await extract(m.runtime, m.gen!, exOpts);
      const start = await cache.take(ex.ids.slice(0, ex.shared), adapter);
      try {
        const got = await extract(m.runtime, m.gen!, { ...exOpts, start: start.cache });
        assert.deepEqual(got.tokens, want.tokens, `extract "${input}" (${adapter ?? 'base'})`);
        assert.equal(got.text, want.text);
        assert.equal(start.cache.length, ex.shared, 'the start cache is forked, not changed');
      } finally {
        start.cache.dispose();
      }

      const gen = taskPromptIds(m.tokenizer!, freeTask, input);
      const genOpts = { promptIds: gen.ids, maxTokens: 24, stopIds: [], sampling: { temperature: 0 }, adapter };
      const wantText = await generate(m.runtime, m.gen, genOpts);
      const s2 = await cache.take(gen.ids.slice(0, gen.shared), adapter);
      try {
        const got = await generate(counting, m.gen, { ...genOpts, start: s2.cache });
        assert.equal(stepped[0], gen.ids.length - gen.shared, 'the prefill ran only the ids after the kept prefix');
        stepped.length = 0;
        assert.equal(got.tokens.length, 24);
        assert.deepEqual(got.tokens, wantText.tokens, `generate "${input}" (${adapter ?? 'base'})`);
      } finally {
        s2.cache.dispose();
      }
    }
  }
  // Per adapter: one miss per task, then hits.
  assert.deepEqual({ hits: cache.stats().hits, misses: cache.stats().misses }, { hits: 8, misses: 4 });
  // A start cache that holds the whole prompt leaves nothing to run: refused before any work.
  const { ids } = taskPromptIds(m.tokenizer!, fieldsTask, INPUTS[0]);
  const whole = await cache.take(ids, undefined);
  await assert.rejects(generate(m.runtime, m.gen, { promptIds: ids, maxTokens: 2, sampling: { temperature: 0 }, start: whole.cache }), /at least one must run/);
  whole.cache.dispose();
  cache.clear();
});

test('with the real Gemma 3 tokenizer on a full-vocabulary random model, extract from a kept prefix is token-exact', async () => {
  const big = await openRealVocab(4);
  try {
    const { tokenizer: gemma, gen } = big;
    const table = new JsonConstraintTable(shape, packVocab(gen));
    const cache = new PrefixCache(big.runtime);
    for (const input of INPUTS.slice(0, 2)) {
      const { ids, shared } = taskPromptIds(gemma, fieldsTask, input);
      assert.ok(shared >= 20, `${shared} shared ids`);
      const opts = { promptIds: ids, shape, table, maxTokens: 40, sampling: { temperature: 0 } };
      const want = await extract(big.runtime, gen, opts);
      const start = await cache.take(ids.slice(0, shared), undefined);
      try {
        const got = await extract(big.runtime, gen, { ...opts, start: start.cache });
        assert.deepEqual(got.tokens, want.tokens, input);
        assert.deepEqual(got.value, want.value);
      } finally {
        start.cache.dispose();
      }
    }
    assert.equal(cache.stats().hits, 1);
    cache.clear();
  } finally {
    await big.close();
  }
});

// ---- through the worker ---------------------------------------------------------------------

const dir = tempDir('generate-sharedprefix-');

/** The code actions' extract request for the fields task. */
function extractParams(input: string, adapter: string | undefined): ParamsOf<'extract'> {
  const req = extractRequest(fieldsTask, input, adapter);
  assert.ok(req.method === 'extract');
  // The random model writes long values: a smaller budget keeps the test quick.
  return { ...req.params, maxTokens: 40 };
}
const modelFile = path.join(dir, 'tiny.gguf');
const adapterDir = path.join(dir, 'adapter');

test('the worker: extract and generate with sharedPrefix answer as without it, hit the cache, and fail or cancel cleanly', async () => {
  const { engine, logs } = await tinyModelEngine('generate-sharedprefix', modelFile);
  const lines = (method: string) => logs.filter((l) => new RegExp(`${method}#\\d+: `).test(l));
  try {
    await engine.request('loadModel', { path: modelFile });
    await baseThenAdapter(engine, adapterDir, async (adapter) => {
      for (const input of INPUTS) {
        const params = extractParams(input, adapter);
        assert.ok(params.sharedPrefix && params.messages![0].content.startsWith(params.sharedPrefix));
        const { sharedPrefix: _, ...plain } = params;
        const [got, want] = [await engine.request('extract', params), await engine.request('extract', plain)];
        assert.deepEqual(got.tokens, want.tokens, `extract "${input}"`);
        assert.deepEqual(got.values, want.values);

        const free = { ...freeTextParams(freeTask, input, adapter), maxTokens: 12, stopIds: [] };
        assert.ok(free.sharedPrefix && free.messages![0].content.startsWith(free.sharedPrefix));
        const { sharedPrefix: __, ...freePlain } = free;
        const [g, w] = [await engine.request('generate', free), await engine.request('generate', freePlain)];
        assert.deepEqual(g.tokens, w.tokens, `generate "${input}"`);
        assert.equal(g.promptTokens, w.promptTokens);
      }
    });
    const count = (re: RegExp) => logs.filter((l) => re.test(l)).length;
    // Two tasks × two adapters: one miss each, then hits.
    assert.deepEqual({ hits: count(/prefix \d+ ids hit/), misses: count(/prefix \d+ ids miss/) }, { hits: 8, misses: 4 }, logs.join('\n'));
    assert.equal(count(/prefix none/), 12, 'the plain requests ran the whole prompt');

    // Retrained: new weights under the same name; the kept prefix of the old ones must not be used.
    writePeftAdapter(adapterDir, trainedLora(9));
    await engine.request('loadAdapter', { name: 'task', path: adapterDir });
    const params = extractParams(INPUTS[0], 'task');
    const { sharedPrefix: _, ...plain } = params;
    const [got, want] = [await engine.request('extract', params), await engine.request('extract', plain)];
    assert.deepEqual(got.tokens, want.tokens);
    assert.match(lines('extract').at(-2)!, /prefix \d+ ids miss/);

    // A sharedPrefix that is not the prompt's start is the request's error; the worker keeps serving.
    const bad = await engineRejection(engine.request('extract', { ...params, sharedPrefix: 'Something else' }));
    assert.match(bad.message, /sharedPrefix is not the start/);
    const badText = await engineRejection(engine.request('generate', { text: 'Hello there', sharedPrefix: 'Goodbye', maxTokens: 2 }));
    assert.match(badText.message, /sharedPrefix is not the start of the text/);
    const noText = await engineRejection(engine.request('generate', { promptIds: [2, 300, 301], sharedPrefix: 'x', maxTokens: 2 }));
    assert.match(noText.message, /sharedPrefix needs messages or text/);
    assert.equal((await engine.request('extract', params)).values.length, 3);

    // A cancel stops a generation that started from a kept prefix; the next request runs.
    const controller = new AbortController();
    let n = 0;
    const cancelled = await engineRejection(engine.request('generate', { ...freeTextParams(freeTask, INPUTS[1], undefined), maxTokens: 30000, stopIds: [], temperature: 1 }, {
      signal: controller.signal,
      onEvent: () => {
        if (++n === 3) controller.abort();
      },
    }));
    assert.equal(cancelled.code, 'cancelled');
    assert.ok(n >= 3 && n < 1000, `${n} tokens streamed`);
    assert.match(lines('generate').at(-1)!, /prefix \d+ ids hit/);
    const next = await engine.request('generate', { ...freeTextParams(freeTask, INPUTS[2], undefined), maxTokens: 3, stopIds: [] });
    assert.equal(next.tokens.length, 3);
  } finally {
    await engine.dispose();
  }
});
