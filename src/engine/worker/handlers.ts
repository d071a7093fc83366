// The worker's handler table: one line per protocol method (src/protocol/engine.ts).
// Add a method there, its handler in a file of this folder, and its line here.

import type { HandlerTable } from './context';
import { ping } from './ping';
import { status } from './status';
import { loadAdapter, loadModel, unloadAdapter } from './model';
import { classify, extract, generate } from './generate';
import { train } from './train';

/** Every method's handler. */
export const handlers: HandlerTable = {
  status,
  ping,
  loadModel,
  loadAdapter,
  unloadAdapter,
  generate,
  classify,
  extract,
  train,
};
