// A task's answer to one input from the engine, as the panel shows it (suggestions, before/after):
// classify scores the task's labels; extract with fields fills them (constrained JSON); extract as
// free text and rewrite generate greedily. The prompts are taskRequests.ts's, so the panel asks the
// model exactly what the code actions ask. Pure Node (no vscode).

import type { EngineClient } from '../client/engineClient';
import { classifyParams, extractedText, extractRequest, freeTextParams } from '../client/taskRequests';
import type { TaskConfig } from '../store/task';

export interface TaskAnswer {
  output: string;
  /** The label's probability (classify only). */
  probability?: number;
}

/** Asks the engine for `task`'s answer to `input`, with the adapter registered as `adapter` or the base model. */
export async function taskAnswer(engine: Pick<EngineClient, 'request'>, task: TaskConfig, input: string, adapter: string | undefined, signal?: AbortSignal): Promise<TaskAnswer> {
  if (task.kind === 'classify') {
    const r = await engine.request('classify', classifyParams(task, input, adapter), { signal });
    return { output: r.label, probability: r.probability };
  }
  if (task.kind === 'extract') {
    const req = extractRequest(task, input, adapter);
    const r = req.method === 'extract' ? await engine.request('extract', req.params, { signal }) : await engine.request('generate', req.params, { signal });
    return { output: extractedText(task, r) };
  }
  const r = await engine.request('generate', freeTextParams(task, input, adapter), { signal });
  return { output: r.text.trim() };
}
