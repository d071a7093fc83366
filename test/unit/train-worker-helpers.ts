// Shared set-up of the tests that train through the real engine worker: ten labelled bug/feature
// examples as the panel sends them, and a worker with a tiny random q4 GGUF loaded.
import path from 'node:path';
import { EngineClient } from '../../src/client/engineClient';
import { GEMMA3_TINY } from '../../src/engine/model/config';
import { writeRandomGguf } from '../../src/engine/model/randomModel';
import { renderMessages } from '../../src/store/prompt';
import { buildWorker } from './worker-helpers';

/** The classify task the examples belong to. */
export const bugOrFeature = { kind: 'classify' as const, instruction: 'Bug or feature?', labels: ['bug', 'feature'] };

const inputs: [string, string][] = [
  ['The app crashes on save.', 'bug'], ['Add a dark mode.', 'feature'], ['Error 500 on upload.', 'bug'], ['Please support CSV export.', 'feature'],
  ['It freezes when I scroll.', 'bug'], ['A keyboard shortcut for search would help.', 'feature'], ['Login fails with a blank page.', 'bug'],
  ['Allow renaming projects.', 'feature'], ['The counter shows negative numbers.', 'bug'], ['Add a French translation.', 'feature'],
];

/** Ten labelled examples (ids ex-0 … ex-9) in the worker's train request form. */
export const bugOrFeatureExamples = inputs.map(([input, output], i) => ({ id: `ex-${i}`, messages: renderMessages(bugOrFeature, input, output) }));

/** A worker (bundled as `name`) with a tiny random q4 GGUF, written into `dir`, loaded. */
export async function tinyQ4Worker(name: string, dir: string): Promise<EngineClient> {
  const workerPath = await buildWorker(name);
  const modelFile = path.join(dir, 'tiny-q4.gguf');
  writeRandomGguf(modelFile, GEMMA3_TINY, { seed: 1, dtype: 'q4_0' });
  const engine = new EngineClient({ workerPath, threads: 1 });
  await engine.request('loadModel', { path: modelFile, precision: 'q4' });
  return engine;
}
