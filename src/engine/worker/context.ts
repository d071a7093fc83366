// What a request handler gets to work with, and the state the engine keeps between requests.

import type { GemmaRuntime } from '../gemma/runtime';
import type { DeviceResolution } from '../onnx/device';
import type { Tokenizer } from '../model/tokenizer';
import type { GenTokenizer } from '../generate/textStream';
import type { PrefixCache } from '../generate/prefixCache';
import type { EngineLogLevel, EngineMethod, EventOf, ModelSummary, ParamsOf, ResultOf } from '../../protocol/engine';
import type { Watchdog } from '../watchdog';

/** A base model resident in the worker: what status reports, and the runtime that runs it. */
export interface LoadedModel {
  summary: ModelSummary;
  runtime: GemmaRuntime;
  /** null when the model has no tokenizer: only promptIds requests work. */
  tokenizer: Tokenizer | null;
  /** The tokenizer as generate/ uses it (one object per model: constraint tables are cached on it). */
  gen: GenTokenizer | undefined;
  /** Registered adapters: name → the folder it was read from. */
  adapters: Map<string, string>;
  /** Shared prompt prefixes' KV caches (sharedPrefix of classify, extract, generate); cleared with the model, per adapter on (un)load. */
  prefixes: PrefixCache;
}

/** The engine's state between requests; handlers read and replace its fields. */
export interface EngineState {
  /** ONNX Runtime intra-op threads (from the host, fixed for the process's life). */
  readonly threads: number;
  /** performance.now() when the engine started. */
  readonly startedAt: number;
  model: LoadedModel | null;
  /** How the last model load resolved its device choice (status shows it); null before any. */
  device?: DeviceResolution | null;
  /** The host's memory ceiling in MB (null: none); a model's cap never goes above it. */
  readonly hostCapMB: number | null;
  /** Where converted models are kept between loads (gemma/runtimeCache.ts); absent: converted at every load. */
  readonly weightCache?: string;
  /** Enforces the memory cap in force; loadModel sets it to what the model needs. null where the handlers run outside the engine process (the CLI, the fuzzer), which nothing caps. */
  readonly watchdog: Watchdog | null;
}

export interface HandlerContext<M extends EngineMethod> {
  /** The request id, for logs. */
  id: number;
  /** Aborted when the host cancels this request; long loops should check it between steps. */
  signal: AbortSignal;
  /** Streams one event to the host, tagged with this request's id. */
  emit(event: EventOf<M>): void;
  log(level: EngineLogLevel, message: string): void;
  state: EngineState;
  /** The running and queued exclusive requests, for status. */
  queue(): { busy: { id: number; method: EngineMethod } | null; queued: number };
}

/** Serves one method: returns its result or throws (the host gets an error response). */
export type Handler<M extends EngineMethod> = (params: ParamsOf<M>, ctx: HandlerContext<M>) => Promise<ResultOf<M>>;

/** One handler per protocol method; the compiler reports a method without a handler. */
export type HandlerTable = { [M in EngineMethod]: Handler<M> };

/** Thrown when a request needs a model or a named adapter the worker does not hold; the host reloads and asks again. */
export class NotLoadedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'NotLoadedError';
  }
}

/** Thrown by handlers that stop because their signal was aborted. */
export class CancelledError extends Error {
  constructor(message = 'cancelled') {
    super(message);
    this.name = 'CancelledError';
  }
}

/** Throws CancelledError when the request has been cancelled. */
export function throwIfCancelled(signal: AbortSignal): void {
  if (signal.aborted) throw new CancelledError();
}
