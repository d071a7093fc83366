// What the training panels ask the engine besides training (taskTraining.ts runs that): whether a model
// is there to train and suggest with, and the model's answers to a task's examples, through the task's
// adapter (suggestions) or before and after a new one (the held-out table). Capabilities are true only
// when a model is on disk to run (ModelService), so the panel never offers work the engine cannot do.
// One instance per window: its cache of the adapters the engine holds serves every panel.

import * as path from 'node:path';
import { AdapterCache } from '../client/adapterCache';
import { ADAPTER_DIR } from '../common/files';
import type { Capabilities, ComparisonRow, Suggestion } from '../protocol/webview';
import type { ModelService } from '../model/modelService';
import type { GemmaServices } from '../services';
import { baseMismatch, type BaseModelRecord } from '../store/baseModel';
import type { Example } from '../store/examples';
import type { Task } from '../store/taskStore';
import { taskAnswer } from './taskAnswers';

/** At most this many held-out examples go into the before/after table. */
const MAX_COMPARISON = 50;

export const NO_MODEL_REASON = 'Training and suggestions need a model: download the default one or pick a local one (click the Gemma status bar item).';

export class PanelEngine {
  private readonly adapters: AdapterCache;

  constructor(private readonly s: Pick<GemmaServices, 'engine' | 'log'> & { models: Pick<ModelService, 'source' | 'ensureLoaded'> }) {
    this.adapters = new AdapterCache(s.engine);
  }

  /** What the engine can do right now: train and suggest when a model is on disk to run. */
  async capabilities(): Promise<Capabilities> {
    const src = await this.s.models.source();
    if (src.kind === 'configured' || src.kind === 'default') return { train: true, suggest: true };
    return { train: false, suggest: false, reason: NO_MODEL_REASON };
  }

  /** The model's current answer for each example: through the task's adapter when it has one for this base. */
  async suggest(task: Task, examples: Example[], signal?: AbortSignal): Promise<Suggestion[]> {
    const model = await this.s.models.ensureLoaded({ interactive: true });
    if (!model) throw new Error('No model is loaded: suggestions need one.');
    const adapter = await this.adapterIfTrained(task, model.generation, model.summary.base);
    const out: Suggestion[] = [];
    for (const ex of examples) {
      if (signal?.aborted) break;
      const a = await taskAnswer(this.s.engine, task.config, ex.input, adapter, signal);
      out.push({ id: ex.id, output: a.output, ...(a.probability !== undefined ? { probability: a.probability } : {}) });
    }
    return out;
  }

  /** The held-out examples (`valIds`, the first MAX_COMPARISON) through the base model and through the adapter in `adapterDir`. */
  async compare(task: Task, labeled: Example[], valIds: string[], adapterDir: string, generation: number, signal: AbortSignal): Promise<ComparisonRow[]> {
    const adapter = await this.adapters.ensure(adapterDir, task.id, generation);
    const rows: ComparisonRow[] = [];
    for (const id of valIds.slice(0, MAX_COMPARISON)) {
      const ex = labeled.find((e) => e.id === id);
      if (!ex || signal.aborted) continue;
      const before = await taskAnswer(this.s.engine, task.config, ex.input, undefined, signal);
      const after = await taskAnswer(this.s.engine, task.config, ex.input, adapter, signal);
      rows.push({ id, input: ex.input, expected: ex.output, before: before.output, after: after.output });
    }
    return rows;
  }

  private async adapterIfTrained(task: Task, generation: number, base?: BaseModelRecord): Promise<string | undefined> {
    const mismatch = baseMismatch(task.config, base);
    if (mismatch) {
      this.s.log.warn(`${mismatch} Suggestions come from the base model.`);
      return undefined;
    }
    try {
      return await this.adapters.ensure(path.join(task.dir, ADAPTER_DIR), task.id, generation);
    } catch {
      return undefined; // not trained yet: the base model answers
    }
  }
}
