// onnxruntime-node loads a ~45 MB native library: load it on first use, not when the worker
// starts, so the worker answers quickly and a broken binary fails one request, not the worker.

import type * as Ort from 'onnxruntime-node';
import { errorText } from '../../common/quote';

let ort: Promise<typeof Ort> | undefined;

/** The onnxruntime-node module, loaded once. */
export function loadOrt(): Promise<typeof Ort> {
  ort ??= import('onnxruntime-node').catch((e: unknown) => {
    ort = undefined;
    throw new Error(`cannot load onnxruntime-node: ${errorText(e)}`);
  });
  return ort;
}
