// The fuzzer's seed inputs, written once per run by the project's own writers: a two-layer Gemma 3 in
// GGUF (Q4_0 with a Q8_0 embedding, and f32) and as a Hugging Face folder (f32 and bf16, with config.json
// and tokenizer.json), a PEFT adapter, a trainer checkpoint, a task folder (task.json, examples.jsonl),
// and valid webview and engine messages. Every mutation starts from one of these, so most inputs get
// past the first checks and reach the deeper ones.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { GEMMA3_TINY, layerTypesFromPattern, type GemmaConfig } from '../../src/engine/model/config';
import { readGguf } from '../../src/engine/model/gguf';
import { modelIdentity } from '../../src/engine/model/identity';
import { writeRandomGguf, writeRandomHf } from '../../src/engine/model/randomModel';
import { AdamW } from '../../src/engine/train/adamw';
import { saveCheckpoint } from '../../src/engine/train/checkpoint';
import { flatTensors, initLora } from '../../src/engine/train/lora';
import { writePeftAdapter } from '../../src/engine/train/peftWriter';
import { exampleToLine, type Example } from '../../src/store/examples';
import { renderMessages } from '../../src/store/prompt';
import { DEFAULT_HYPERPARAMETERS, newTaskConfig } from '../../src/store/task';
import type { HostToWebview, PanelState, WebviewToHost } from '../../src/protocol/webview';

/** The model every model input is made from: the tiny test shape with two layers, so a load takes little. */
export const FUZZ_CONFIG: GemmaConfig = { ...GEMMA3_TINY, layers: 2, layerTypes: layerTypesFromPattern(2, 2) };
export const TASK_ID = 'tickets';

const task = newTaskConfig({ name: 'Tickets', kind: 'classify', instruction: 'Bug or feature?', labels: ['bug', 'feature'] }, new Date(0));
const examples: Example[] = [
  { id: 'ex-1', input: 'The app crashes on save.', output: 'bug', heldOut: false },
  { id: 'ex-2', input: 'Add a dark mode.', output: 'feature', heldOut: false },
  { id: 'ex-3', input: 'Error 500 on upload.', output: 'bug', heldOut: true },
  { id: 'ex-4', input: 'Please support CSV export.', output: '', heldOut: false },
];

/** Where each seed lives, and the parts of files that the mutators aim at. */
export interface Corpus {
  dir: string;
  ggufQ4: string;
  ggufF32: string;
  /** Bytes before the first tensor's data in each GGUF (the header, where sizes live). */
  headerBytes: Record<string, number>;
  hfF32: string;
  hfBf16: string;
  adapter: string;
  checkpoint: string;
  taskJson: unknown;
  examplesJsonl: string;
  /** TRL prompt-completion and pre-tokenised lines, for the trainer's reader. */
  trainJsonl: string;
  webviewMessages: WebviewToHost[];
  hostMessages: HostToWebview[];
  engineMessages: unknown[];
  /** Paths a mutated `path` or `outDir` may take: all inside the run's folder. */
  sandboxPaths: string[];
}

/** Writes the seeds into `dir` (created) and describes them. */
export function writeCorpus(dir: string): Corpus {
  fs.mkdirSync(dir, { recursive: true });
  const ggufQ4 = path.join(dir, 'model-q4.gguf');
  writeRandomGguf(ggufQ4, FUZZ_CONFIG, { seed: 11, dtype: 'q4_0', embedding: 'q8_0' });
  const ggufF32 = path.join(dir, 'model-f32.gguf');
  writeRandomGguf(ggufF32, FUZZ_CONFIG, { seed: 11, dtype: 'f32' });
  const headerBytes = Object.fromEntries([ggufQ4, ggufF32].map((f) => [f, readGguf(f).dataOffset]));
  const hfF32 = path.join(dir, 'hf-f32');
  writeRandomHf(hfF32, FUZZ_CONFIG, { seed: 11, dtype: 'f32' });
  const hfBf16 = path.join(dir, 'hf-bf16');
  writeRandomHf(hfBf16, FUZZ_CONFIG, { seed: 11, dtype: 'bf16' });

  const lora = initLora(FUZZ_CONFIG, 4, 8, ['q', 'v', 'down'], 3);
  lora.modules.forEach((m, i) => m.b.forEach((_, j) => { m.b[j] = Math.sin(i + j) * 0.3; }));
  const adapter = path.join(dir, 'adapter');
  writePeftAdapter(adapter, lora, { baseModel: modelIdentity(ggufQ4), metadata: { step: '3' } });

  const checkpoint = path.join(dir, 'trainer_state.safetensors');
  const opt = new AdamW(flatTensors(lora).map((t) => t.length), { weightDecay: 0.01 });
  for (let s = 1; s <= 3; s++) opt.update(flatTensors(lora), flatTensors(lora).map((t) => t.map((_, j) => Math.cos(j * s) * 1e-2)), 1e-3);
  saveCheckpoint(checkpoint, lora, opt.state(), {
    step: 3, epoch: 1, batchInEpoch: 1, epochOrder: ['ex-1', 'ex-2'], rngState: 12345, earlyStop: { bestLoss: 1.5, bestStep: 2, badEvals: 1 }, lastEvalStep: 2,
    fingerprint: '{"lr":0.001}', rank: 4, alpha: 8, dropout: 0, targets: lora.targets,
  });

  const examplesJsonl = examples.map((e) => JSON.stringify(exampleToLine(task, e)) + '\n').join('');
  const trainJsonl = [
    { prompt: 'Sort: crash', completion: 'bug' },
    { messages: renderMessages(task, 'Export please', 'feature') },
    { id: 7, input_ids: [2, 10, 11, 12, 13], labels: [-100, -100, -100, 12, 13] },
  ].map((l) => JSON.stringify(l) + '\n').join('');

  const hp = DEFAULT_HYPERPARAMETERS;
  const state: PanelState = {
    task: { id: TASK_ID, name: task.name, kind: 'classify', instruction: task.instruction, labels: ['bug', 'feature'], hyperparameters: hp, hasAdapter: true },
    examples,
    problems: ['examples.jsonl:9: not valid JSON'],
    capabilities: { train: true, suggest: true },
    training: { status: 'done', totalSteps: 10, step: 10, epoch: 2, etaSeconds: null, trainLoss: [[1, 2.5], [2, 2.1]], valLoss: [[2, 2.3]], bestStep: 2, comparison: [], message: 'Done.' },
    suggestions: [{ id: 'ex-4', output: 'feature', probability: 0.8 }],
    resumable: null,
  };
  const webviewMessages: WebviewToHost[] = [
    { type: 'ready' },
    { type: 'addExample', seq: 1, input: 'New input', output: 'bug' },
    { type: 'updateExample', seq: 2, id: 'ex-1', output: 'feature', heldOut: true },
    { type: 'removeExample', seq: 3, id: 'ex-2' },
    { type: 'setHyperparameters', seq: 4, hyperparameters: hp },
    { type: 'train', hyperparameters: hp },
    { type: 'resumeTraining' },
    { type: 'cancelTraining' },
    { type: 'suggest', ids: ['ex-4'] },
  ];
  const hostMessages: HostToWebview[] = [
    { type: 'state', state, restore: { folder: dir, taskId: TASK_ID } },
    { type: 'ack', seq: 1, ok: true, example: examples[0] },
    { type: 'training', event: { kind: 'step', step: 3, totalSteps: 10, epoch: 0.3, loss: 2.2, etaSeconds: 4 } },
    { type: 'training', event: { kind: 'eval', step: 3, valLoss: 2.4, bestStep: 3 } },
    { type: 'suggestions', items: [{ id: 'ex-4', output: 'bug', probability: 0.6 }] },
    { type: 'notice', level: 'error', message: 'Training failed.' },
  ];

  const outDir = path.join(dir, 'engine-out');
  const user = { role: 'user', content: 'Bug or feature? The app crashes on save.' };
  const engineMessages: unknown[] = [
    { kind: 'request', id: 1, method: 'status', params: {} },
    { kind: 'request', id: 2, method: 'ping', params: { delayMs: 5, ticks: 2 } },
    { kind: 'request', id: 11, method: 'loadModel', params: { path: ggufQ4, precision: 'q4', threads: 1 } },
    { kind: 'request', id: 3, method: 'loadAdapter', params: { name: 'task', path: adapter } },
    { kind: 'request', id: 4, method: 'unloadAdapter', params: { name: 'task' } },
    { kind: 'request', id: 5, method: 'generate', params: { messages: [user], maxTokens: 4 } },
    { kind: 'request', id: 6, method: 'generate', params: { promptIds: [2, 105, 30, 31, 106], maxTokens: 3, temperature: 0.8, topK: 5, topP: 0.9, seed: 1, stop: ['x'] } },
    { kind: 'request', id: 7, method: 'classify', params: { messages: [user], labels: ['bug', 'feature'] } },
    { kind: 'request', id: 8, method: 'classify', params: { text: 'Bug or feature? Export please', labels: ['bug', 'feature'], sharedPrefix: 'Bug or feature?', noTerminator: true } },
    { kind: 'request', id: 9, method: 'extract', params: { messages: [user], fields: [{ name: 'kind', enum: ['bug', 'feature'] }, { name: 'what' }], maxTokens: 24 } },
    {
      kind: 'request', id: 10, method: 'train', params: {
        examples: examples.slice(0, 3).map((e) => ({ id: e.id, messages: renderMessages(task, e.input, e.output || 'bug') })),
        valIds: ['ex-3'], hyperparameters: { ...hp, epochs: 1, rank: 2, batchSize: 2 }, outDir, maxTokens: 64, threads: 1,
      },
    },
    { kind: 'cancel', id: 10 },
  ];
  const notModel = path.join(dir, 'not-a-model.txt');
  fs.writeFileSync(notModel, 'hello');
  const sandboxPaths = [ggufQ4, ggufF32, hfF32, adapter, notModel, dir, path.join(dir, 'missing'), outDir, path.join(dir, 'engine-out-2'), checkpoint];
  return {
    dir, ggufQ4, ggufF32, headerBytes, hfF32, hfBf16, adapter, checkpoint, taskJson: task, examplesJsonl, trainJsonl,
    webviewMessages, hostMessages, engineMessages, sandboxPaths,
  };
}
