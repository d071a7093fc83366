// The record of a base model that travels from the worker (loadModel) to the host and into a task's
// task.json (the base its adapter was trained on): name, shape and weight fingerprint
// (src/engine/model/identity.ts makes it). One schema, shared by the protocol and the task store.

import { Infer, num, obj, str } from '../common/check';

const dim = num({ int: true, min: 1, max: 1 << 24 });

export const baseModelRecord = obj({
  name: str({ min: 1, max: 200 }),
  shape: obj({ layers: dim, hidden: dim, intermediate: dim, heads: dim, kvHeads: dim, vocabSize: dim }),
  fingerprint: str({ min: 8, max: 64 }),
});
export type BaseModelRecord = Infer<typeof baseModelRecord>;

/** "gemma-3-1b-it-q4_0.gguf (26 layers, hidden 1152)": how a message names a base. */
export function describeBase(b: BaseModelRecord): string {
  return `${b.name} (${b.shape.layers} layers, hidden ${b.shape.hidden})`;
}

/** Why a task's adapter (trained on `trained`, if recorded) must not run on `loaded`, or undefined when it may. */
export function baseMismatch(task: { name: string; baseModel?: BaseModelRecord }, loaded: BaseModelRecord | undefined): string | undefined {
  const trained = task.baseModel;
  if (!trained || !loaded || trained.fingerprint === loaded.fingerprint) return undefined;
  return `“${task.name}” was trained on ${describeBase(trained)}, not on the model loaded now, ${describeBase(loaded)}: its adapter is not applied.`;
}
