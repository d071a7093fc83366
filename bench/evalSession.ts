// Validation on a second, forward-only session beside the step session, kept for comparison: the step
// graph already skips its backward when validating (its `backward` input: ~1.9 s of CPU per 2 × 120 tokens
// instead of ~6.5 s on the 270M shape), so this only adds the second session's packed weights (~300 MB of
// peak RSS) and its setup time. test/unit/train-evalgraph.test.ts checks that both give the same numbers.

import type { ModelWeights } from '../src/engine/model/weights';
import type { WeightSource } from '../src/engine/model/weightSource';
import { openStepSession, OrtStepEngine, type OrtEngineOptions } from '../src/engine/train/ortEngine';

/** A step engine whose `evaluate` runs a forward-only session of its own. */
export async function createOrtEngineWithEvalSession(mw: ModelWeights | WeightSource, opts: OrtEngineOptions): Promise<OrtStepEngine> {
  const session = await openStepSession(mw, opts);
  try {
    return new OrtStepEngine(mw.config, session, opts.rank, opts.targets, await openStepSession(mw, opts, true));
  } catch (e) {
    await session.release();
    throw e;
  }
}
