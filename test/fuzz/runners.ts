// How each fuzz target's input is run (in a child process) and judged. Inputs go through the real
// loaders and checks, and whatever loads is used the way the extension uses it: a model answers a
// classify and a short generation, an adapter is applied to a model and answers too, a checkpoint's
// tensors are read, a tokenizer encodes and decodes, a message that passes its check is checked again
// after a JSON round trip, an engine request goes through the worker's real dispatcher and handlers.
//
// Outcomes: 'error' (refused with a clear one-line message), 'ran' (accepted and used, with sound
// results), 'unclear' (refused, but by an internal error such as a TypeError, not a message meant for a
// person), 'silent' (accepted but wrong: a probability or logprob that is NaN, a token outside the
// vocabulary, a message that passed its check and fails it after a round trip), 'control' (a message
// holding a raw control character). The parent adds 'crash', 'hang' and 'rss'.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import { hasControls } from '../../src/common/quote';
import { idOf, parseEvent, parseResult, parseWorkerToHost, type EngineMethod, type WorkerToHost } from '../../src/protocol/engine';
import { applyTrainingEvent, parseHostMessage, parseWebviewMessage } from '../../src/protocol/webview';
import { firstNonFiniteF32 } from '../../src/engine/model/finite';
import { createTokenizer } from '../../src/engine/model/tokenizer';
import { encodeChatPrompt } from '../../src/engine/model/chatTemplate';
import { classify } from '../../src/engine/generate/labelScoring';
import { generate } from '../../src/engine/generate/generator';
import { openModel, type OpenModel } from '../../src/engine/generate/openModel';
import { loadCheckpoint } from '../../src/engine/train/checkpoint';
import { parseExamples } from '../../src/engine/train/examples';
import { flatTensors, toRuntimeAdapter } from '../../src/engine/train/lora';
import { readPeftParams } from '../../src/engine/train/peftParams';
import { EngineClient, EngineError } from '../../src/client/engineClient';
import { Dispatcher } from '../../src/engine/worker/dispatcher';
import { handlers } from '../../src/engine/worker/handlers';
import type { EngineState } from '../../src/engine/worker/context';
import { exampleFromLine } from '../../src/store/examples';
import { readJsonl } from '../../src/store/jsonl';
import { TaskStore } from '../../src/store/taskStore';
import { MAX_INPUT_LENGTH, MAX_OUTPUT_LENGTH } from '../../src/store/examples';
import { FUZZ_CONFIG, TASK_ID } from './corpus';
import type { InputInfo, Target } from './inputs';

export type ChildOutcome = 'error' | 'ran' | 'unclear' | 'silent' | 'control' | 'crash';
export interface Judged {
  outcome: ChildOutcome;
  /** The message or what was wrong, for the report. */
  detail: string;
}

/** A result that is wrong although nothing failed. */
class Silent extends Error {}
/** A message other than an error's (a log line) that holds a raw control character. */
class Control extends Error {}
/** The engine process died under EngineClient (which caught it and starts a new one). */
class Crash extends Error {}

/** Internal errors: a reader that met input it did not expect, rather than refusing it by name. */
const UNCLEAR = /^(TypeError|ReferenceError|SyntaxError)$|^(AssertionError)/;
const UNCLEAR_RANGE = /Maximum call stack|Invalid array length|Invalid typed array length|Array buffer allocation failed|out of memory|Invalid string length/i;
/** The messages of internal errors that reach the host as text only (the engine replies with the message). */
const UNCLEAR_TEXT = /^Cannot (read|set) propert|is not a function|is not iterable|^Cannot convert|is not defined$|Maximum call stack|Invalid (typed )?array length|Array buffer allocation failed/;

/** Judges an error thrown by a target. */
export function judgeError(e: unknown): Judged {
  if (e instanceof Silent) return { outcome: 'silent', detail: e.message };
  if (e instanceof Control) return { outcome: 'control', detail: e.message };
  if (e instanceof Crash) return { outcome: 'crash', detail: e.message };
  const message = e instanceof Error ? e.message : String(e);
  const name = e instanceof Error ? e.name : typeof e;
  if (hasControls(message.replace(/\n/g, ''))) return { outcome: 'control', detail: JSON.stringify(message).slice(0, 300) };
  if (UNCLEAR.test(name) || (name === 'RangeError' && UNCLEAR_RANGE.test(message)) || UNCLEAR_TEXT.test(message) || message.includes('\n') || message.trim() === '') {
    return { outcome: 'unclear', detail: `${name}: ${message.split('\n')[0].slice(0, 300)}` };
  }
  return { outcome: 'error', detail: message.slice(0, 300) };
}

function check(ok: boolean, what: string): void {
  if (!ok) throw new Silent(what);
}

/** The child's lasting state: the base model adapters are tried on, and the engine's dispatcher. */
export interface ChildContext {
  base: OpenModel | null;
  corpusModel: string;
  engine: { dispatcher: Dispatcher; state: EngineState; replies: WorkerToHost[]; notify: (() => void) | null } | null;
  /** The bundled engine for EngineClient (dist/worker.js as the extension runs it). */
  workerPath: string;
  client: { engine: EngineClient; logs: string[] } | null;
}

/** Uses a loaded model as the extension does and checks that every number it answers with is sound. */
async function exercise(m: OpenModel, adapter?: string): Promise<void> {
  const V = m.runtime.config.vocabSize;
  const promptIds = m.tokenizer ? encodeChatPrompt(m.tokenizer, [{ role: 'user', content: 'Bug or feature? It crashes.' }]) : [m.runtime.config.bosId, 30, 31];
  const r = await classify(m.runtime, m.gen, { promptIds, labels: ['bug', 'feature'], labelIds: [[40], [41, 42]], adapter });
  check(r.scores.every((s) => Number.isFinite(s.logprob) && s.probability >= 0 && s.probability <= 1) && Number.isFinite(r.probability), `classify answered ${JSON.stringify(r.scores)}`);
  const g = await generate(m.runtime, m.gen, { promptIds, maxTokens: 3, sampling: { temperature: 0.9, topK: 8, seed: 1 }, adapter });
  check(g.tokens.every((t) => Number.isInteger(t) && t >= 0 && t < V), `generate produced tokens ${g.tokens}`);
}

async function openAndExercise(modelPath: string, info: InputInfo): Promise<void> {
  const m = await openModel(modelPath, { precision: info.precision ?? 'q4', threads: 1 });
  try {
    await exercise(m);
  } finally {
    await m.runtime.dispose();
  }
}

/** A JSON value is the same after a stringify/parse round trip, and holds only finite numbers. */
function stable(value: unknown, what: string): void {
  check(isDeepStrictEqual(JSON.parse(JSON.stringify(value)), value), `${what} changes in a JSON round trip`);
}

async function runWebview(dir: string, info: InputInfo): Promise<void> {
  const msg: unknown = JSON.parse(fs.readFileSync(path.join(dir, 'message.json'), 'utf8'));
  if (info.direction === 'toHost') {
    const parsed = parseWebviewMessage(msg);
    stable(parsed, 'an accepted webview message');
    check(isDeepStrictEqual(parseWebviewMessage(JSON.parse(JSON.stringify(parsed))), parsed), 'an accepted webview message is refused after a round trip');
    return;
  }
  const parsed = parseHostMessage(msg);
  stable(parsed, 'an accepted host message');
  if (parsed.type === 'training') stable(applyTrainingEvent(null, parsed.event), 'the training view of an accepted event');
  check(isDeepStrictEqual(parseHostMessage(JSON.parse(JSON.stringify(parsed))), parsed), 'an accepted host message is refused after a round trip');
}

async function runCheckpoint(dir: string): Promise<void> {
  const ck = loadCheckpoint(path.join(dir, 'trainer_state.safetensors'), FUZZ_CONFIG);
  for (const t of flatTensors(ck.params)) check(firstNonFiniteF32(t) < 0, 'a loaded checkpoint holds a non-finite weight');
  for (const s of ck.opt.slots) check(firstNonFiniteF32(s.m) < 0 && firstNonFiniteF32(s.v) < 0 && s.v.every((x) => x >= 0), 'a loaded checkpoint holds a bad moment');
  check(Number.isInteger(ck.opt.step) && ck.opt.step >= 0, `a loaded checkpoint has optimizer step ${ck.opt.step}`);
}

async function runAdapter(dir: string, ctx: ChildContext): Promise<void> {
  const p = readPeftParams(dir, FUZZ_CONFIG);
  for (const t of flatTensors(p)) check(firstNonFiniteF32(t) < 0, 'a loaded adapter holds a non-finite weight');
  ctx.base ??= await openModel(ctx.corpusModel, { precision: 'q4', threads: 1 });
  ctx.base.runtime.setAdapter('fuzz', toRuntimeAdapter(p));
  try {
    await exercise(ctx.base, 'fuzz');
  } finally {
    ctx.base.runtime.removeAdapter('fuzz');
  }
}

async function runTokenizer(dir: string): Promise<void> {
  const tok = createTokenizer({ kind: 'tokenizer.json', path: path.join(dir, 'tokenizer.json') });
  for (const text of ['Hello world', '<start_of_turn>user\nhi<end_of_turn>', 'ünïcödé 日本 😀 \u0000\x1b']) {
    const ids = tok.encode(text);
    check(ids.every((id) => Number.isInteger(id) && id >= 0 && id < tok.vocabSize), `encode gave ids outside [0, ${tok.vocabSize}): ${ids.slice(0, 8)}`);
    tok.decode(ids);
  }
}

async function runExamples(dir: string): Promise<void> {
  const read = await readJsonl(path.join(dir, 'examples.jsonl'), exampleFromLine);
  for (const p of read.problems) {
    const j = judgeError(new Error(p.message));
    if (j.outcome !== 'error') throw new Error(`${j.outcome} problem: ${p.message}`, { cause: j });
  }
  for (const { value: e } of read.records) {
    check(typeof e.input === 'string' && e.input.length <= MAX_INPUT_LENGTH && typeof e.output === 'string' && e.output.length <= MAX_OUTPUT_LENGTH && typeof e.heldOut === 'boolean', 'an accepted example is malformed');
  }
  parseExamples(fs.readFileSync(path.join(dir, 'train.jsonl'), 'utf8'), path.join(dir, 'train.jsonl'));
}

async function runTask(dir: string): Promise<void> {
  const store = new TaskStore(path.join(dir, 'tasks'));
  const t = await store.get(TASK_ID);
  stable(t.config, 'an accepted task.json');
  const hp = t.config.hyperparameters;
  check(Object.values(hp).every((v) => typeof v !== 'number' || Number.isFinite(v)), 'accepted hyperparameters hold a non-finite number');
  await store.examples(TASK_ID);
}

/** Sends one raw message to the worker's dispatcher; cancels what has not answered in 3 s; judges every reply. */
async function runEngine(dir: string, ctx: ChildContext): Promise<void> {
  const e = await engineOf(ctx);
  const raw: unknown = JSON.parse(fs.readFileSync(path.join(dir, 'message.json'), 'utf8'));
  e.replies.length = 0;
  const id = idOf(raw);
  const method = (raw as { method?: unknown } | null)?.method;
  e.dispatcher.receive(raw);
  const isCancel = (raw as { kind?: unknown } | null)?.kind === 'cancel';
  const answered = () => id === undefined || isCancel || e.replies.some((r) => (r.kind === 'response' || r.kind === 'error') && r.id === id);
  const wait = async (ms: number) => {
    const until = performance.now() + ms;
    while (!answered() && performance.now() < until) await new Promise((r) => setTimeout(r, 10));
  };
  await wait(3000);
  if (!answered()) {
    e.dispatcher.receive({ kind: 'cancel', id });
    await wait(5000);
    check(answered(), `request ${id} (${String(method)}) did not stop within 5 s of its cancel`);
  }
  let failed: string | null = null;
  for (const r of e.replies) {
    parseWorkerToHost(r);
    if (r.kind === 'error') {
      const j = judgeError(new Error(r.error.message));
      if (j.outcome === 'control') throw new Error(r.error.message);
      failed = r.error.message;
    } else if (r.kind === 'log') {
      if (hasControls(r.message.replace(/\n/g, ''))) throw new Control(`a log line holds a control character: ${JSON.stringify(r.message).slice(0, 200)}`);
    } else if (typeof method === 'string' && r.id === id) {
      // The request was accepted, so its method is known: the answer must pass the host's checks.
      try {
        if (r.kind === 'response') parseResult(method as EngineMethod, r.result);
        else parseEvent(method as EngineMethod, r.event);
      } catch (err) {
        throw new Silent(`the engine answered ${method} with something the host refuses: ${(err as Error).message}`);
      }
    }
  }
  if (failed !== null) throw new Error(failed);
}

async function engineOf(ctx: ChildContext): Promise<NonNullable<ChildContext['engine']>> {
  if (!ctx.engine) {
    // No watchdog thread: the fuzz parent samples this child's memory itself and reports the peak.
    const state: EngineState = { threads: 1, startedAt: performance.now(), model: null, hostCapMB: null, watchdog: null };
    const replies: WorkerToHost[] = [];
    const e: NonNullable<ChildContext['engine']> = { dispatcher: new Dispatcher(handlers, state, (m) => replies.push(m)), state, replies, notify: null };
    ctx.engine = e;
  }
  const e = ctx.engine;
  // Every input starts from the corpus model loaded (an earlier input may have replaced or dropped it).
  if (e.state.model?.summary.source !== path.resolve(ctx.corpusModel)) {
    e.dispatcher.receive({ kind: 'request', id: 0, method: 'loadModel', params: { path: ctx.corpusModel, precision: 'q4', threads: 1 } });
    const until = performance.now() + 60_000;
    while (!e.replies.some((r) => r.kind !== 'log' && r.id === 0) && performance.now() < until) await new Promise((r) => setTimeout(r, 10));
    const r = e.replies.find((x) => x.kind !== 'log' && x.id === 0);
    if (r?.kind !== 'response') throw new Error(`the fuzzer's own model did not load: ${JSON.stringify(r)}`);
  }
  return e;
}

/** The fuzzer's EngineClient, with the corpus model loaded (again, when an input replaced or dropped it). */
async function clientOf(ctx: ChildContext): Promise<NonNullable<ChildContext['client']>> {
  if (!ctx.client) {
    const logs: string[] = [];
    const keep = (s: string) => void logs.push(s);
    ctx.client = { engine: new EngineClient({ workerPath: ctx.workerPath, threads: 1, logger: { trace: keep, debug: keep, info: keep, warn: keep, error: keep } }), logs };
  }
  const c = ctx.client;
  const status = await c.engine.request('status', {});
  if (status.model?.source !== path.resolve(ctx.corpusModel)) await c.engine.request('loadModel', { path: ctx.corpusModel, precision: 'q4', threads: 1 });
  return c;
}

/** Sends an input's requests through EngineClient, each cancelled after 3 s, and judges answers and logs. */
async function runClient(dir: string, ctx: ChildContext): Promise<void> {
  const c = await clientOf(ctx);
  const requests = JSON.parse(fs.readFileSync(path.join(dir, 'requests.json'), 'utf8')) as { method: EngineMethod; params: never }[];
  c.logs.length = 0;
  let failure: unknown = null;
  for (const r of requests) {
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(), 3000);
    try {
      await c.engine.request(r.method, r.params, { signal: abort.signal });
    } catch (e) {
      if (!(e instanceof EngineError)) throw e;
      if (e.code === ('crashed' as string) || e.code === 'worker-exited') throw new Crash(`the engine died under EngineClient: ${e.message}`);
      if (e.message.startsWith('the engine sent an invalid')) throw new Silent(e.message);
      if (e.code !== 'cancelled') failure ??= new Error(e.message);
    } finally {
      clearTimeout(timer);
    }
  }
  for (const line of c.logs) if (hasControls(line.replace(/\n/g, ''))) throw new Control(`a log line holds a control character: ${JSON.stringify(line).slice(0, 200)}`);
  if (failure) throw failure;
}

/** Runs one input and judges it. */
export async function runInput(target: Target, dir: string, info: InputInfo, ctx: ChildContext): Promise<Judged> {
  try {
    switch (target) {
      case 'gguf': await openAndExercise(path.join(dir, 'model.gguf'), info); break;
      case 'safetensors':
      case 'config': await openAndExercise(dir, info); break;
      case 'tokenizer': await runTokenizer(dir); break;
      case 'adapter': await runAdapter(dir, ctx); break;
      case 'checkpoint': await runCheckpoint(dir); break;
      case 'examples': await runExamples(dir); break;
      case 'task': await runTask(dir); break;
      case 'webview': await runWebview(dir, info); break;
      case 'engine': await runEngine(dir, ctx); break;
      case 'client': await runClient(dir, ctx); break;
    }
    return { outcome: 'ran', detail: '' };
  } catch (e) {
    const cause = (e as Error).cause as Judged | undefined;
    if (cause && typeof cause === 'object' && 'outcome' in cause) return cause;
    return judgeError(e);
  }
}
