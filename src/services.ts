// What activate() builds once and hands to every command, code action and panel.

import type { ModelService, ModelServiceDeps } from './model/modelService';

/** The output channel, the engine client and the event log (ModelServiceDeps), and the model service built on them. */
export interface GemmaServices extends ModelServiceDeps {
  /** The engine's base model: ensureLoaded() before any request that needs one. */
  models: ModelService;
}
