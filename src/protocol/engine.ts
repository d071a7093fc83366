// The host⇄engine vocabulary: the one place where the extension host (EngineClient) and the
// engine process (dist/worker.js, forked by the host) agree. Five message kinds cross the boundary:
//
//   host → worker   request  { kind: 'request', id, method, params }
//                   cancel   { kind: 'cancel', id }              (id of a queued or running request)
//   worker → host   response { kind: 'response', id, result }
//                   error    { kind: 'error', id, error: { code, message } }
//                   event    { kind: 'event', id, event }        (streamed while request `id` runs)
//                   log      { kind: 'log', level, message }     (engine logs, no request)
//
// Every method is one entry in `engineMethods`: its params, result and event schemas. Types are
// inferred from the schemas, so adding a method (load model, generate, train, ...) means adding
// an entry here (or in a sibling file imported here) plus a handler in src/engine/worker/.
// Both sides validate what they receive with `parse*` below.

import * as path from 'node:path';
import { CheckError, Infer, nullable, num, obj, oneOf, optional, Schema, str } from '../common/check';
import { jsonForMessage, quote } from '../common/quote';
import { baseModelRecord } from '../store/baseModel';
import { generateMethods } from './generate';
import { trainMethods } from './train';

/** Bumped when a message changes shape incompatibly; `status` reports it. */
export const PROTOCOL_VERSION = 2;

// ---- method schemas -------------------------------------------------------------------------

/** What the worker reports about a loaded base model. */
export const modelSummary = obj({
  name: str({ max: 200 }),
  /** Where it was loaded from (a file or folder). */
  source: str({ max: 4096 }),
  format: oneOf('gguf', 'safetensors'),
  precision: oneOf('q4', 'f32'),
  /** Where its sessions run (inference, and training on it). */
  device: oneOf('cpu', 'webgpu'),
  /** Name, shape and weight fingerprint (a task records it for its adapter). */
  base: optional(baseModelRecord),
});
export type ModelSummary = Infer<typeof modelSummary>;

const statusResult = obj({
  protocol: num({ int: true }),
  runtime: obj({ name: oneOf('onnxruntime-node'), version: str({ max: 64 }) }),
  /** ONNX Runtime intra-op threads the engine uses. */
  threads: num({ int: true, min: 1 }),
  /** `null` until a base model is loaded. */
  model: nullable(modelSummary),
  /**
   * Which device runs what, as the last model load resolved `gemmaTune.engine.device`; `null` before any.
   * fallbackReason: why 'auto' runs on the CPU (no GPU, or WebGPU failed).
   */
  device: nullable(obj({
    requested: oneOf('auto', 'cpu', 'webgpu'),
    inference: oneOf('cpu', 'webgpu'),
    training: oneOf('cpu', 'webgpu'),
    fallbackReason: optional(str({ max: 2000 })),
  })),
  /** The request the engine is running now (status itself skips the queue). */
  busy: nullable(obj({ id: num({ int: true }), method: str({ max: 64 }) })),
  queued: num({ int: true, min: 0 }),
  node: str({ max: 64 }),
  /** The engine process's id (what a fault test kills, what a user finds in a process list). */
  pid: num({ int: true, min: 0 }),
  uptimeMs: num({ min: 0 }),
  memory: obj({
    rssMB: num({ min: 0 }),
    heapUsedMB: num({ min: 0 }),
    externalMB: num({ min: 0 }),
    /** Past this resident size the engine's watchdog ends the process (null: no cap). */
    capMB: nullable(num({ min: 0 })),
    /** The V8 heap limit the engine was started with. */
    heapLimitMB: num({ min: 0 }),
  }),
});
export type EngineStatus = Infer<typeof statusResult>;

const noEvents: Schema<never> = (v, path = '') => {
  throw new CheckError(path, `this method streams no events, got one: ${jsonForMessage(v)}`);
};

/**
 * Every method the worker serves. `exclusive: false` methods answer at once, outside the
 * one-at-a-time queue (they must be quick and must not touch the model mid-use).
 */
export const engineMethods = {
  /** Runtime version, threads, loaded model, queue: what "Gemma: Show Engine Status" shows. */
  status: { params: obj({}), result: statusResult, event: noEvents, exclusive: false },
  /**
   * Round trip through the queue. `delayMs` keeps it running (cancellable) and `ticks` spreads
   * that many events over the delay: a health check and a probe for queueing and cancellation
   * that needs no model.
   */
  ping: {
    params: obj({ delayMs: optional(num({ min: 0, max: 60_000 })), ticks: optional(num({ int: true, min: 0, max: 1000 })) }),
    result: obj({ elapsedMs: num({ min: 0 }), pid: num({ int: true, min: 0 }) }),
    event: obj({ type: oneOf('tick'), n: num({ int: true, min: 1 }) }),
    exclusive: true,
  },
  /** loadModel, loadAdapter, unloadAdapter, generate, classify, extract (protocol/generate.ts). */
  ...generateMethods,
  /** train (protocol/train.ts). */
  ...trainMethods,
} as const satisfies Record<string, MethodSpec>;

interface MethodSpec {
  params: Schema<unknown>;
  result: Schema<unknown>;
  event: Schema<unknown>;
  exclusive: boolean;
}

export type EngineMethods = typeof engineMethods;
export type EngineMethod = keyof EngineMethods;
export type ParamsOf<M extends EngineMethod> = Infer<EngineMethods[M]['params']>;
export type ResultOf<M extends EngineMethod> = Infer<EngineMethods[M]['result']>;
export type EventOf<M extends EngineMethod> = Infer<EngineMethods[M]['event']>;

/** What the host tells the engine process when it starts it (on its command line, engineArgs). */
export interface EngineStartOptions {
  /** ONNX Runtime intra-op threads; default: one per physical core. */
  threads?: number;
  /**
   * The engine's scheduling priority (a nice value, 0 to 19: higher yields more readily), set before
   * its compute threads start so that they inherit it. Absent: the host's.
   */
  priority?: number;
  /**
   * Resident-size ceiling in MB: the engine's watchdog ends the process past it, or past what the
   * model being loaded needs when that is less (memoryCap.ts). Absent: no cap.
   */
  memoryCapMB?: number;
  /** An absolute folder where the engine keeps converted models between loads (gemma/runtimeCache.ts). Absent: none. */
  weightCache?: string;
}

/**
 * The line prefix the engine writes to stderr just before it ends itself (memory cap, orphaned):
 * the rest of the line is the one-line reason the host shows.
 */
export const ENGINE_FATAL_PREFIX = 'gemma-engine fatal: ';

/** The engine's command-line arguments for `opts`. */
export function engineArgs(opts: EngineStartOptions): string[] {
  const args: string[] = [];
  if (opts.threads !== undefined) args.push(`--threads=${opts.threads}`);
  if (opts.priority !== undefined) args.push(`--priority=${opts.priority}`);
  if (opts.memoryCapMB !== undefined) args.push(`--memory-cap-mb=${opts.memoryCapMB}`);
  if (opts.weightCache !== undefined) args.push(`--weight-cache=${opts.weightCache}`);
  return args;
}

/** Reads engineArgs back; anything unknown or out of range is an error (the host wrote them). */
export function parseEngineArgs(argv: readonly string[]): EngineStartOptions {
  const opts: EngineStartOptions = {};
  const int = (v: string, name: string, min: number, max: number): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < min || n > max) throw new Error(`engine argument ${name}=${v}: expected an integer in [${min}, ${max}]`);
    return n;
  };
  for (const a of argv) {
    const eq = a.indexOf('=');
    const [name, value] = eq < 0 ? [a, ''] : [a.slice(0, eq), a.slice(eq + 1)];
    if (name === '--threads') opts.threads = int(value, name, 1, 256);
    else if (name === '--priority') opts.priority = int(value, name, 0, 19);
    else if (name === '--memory-cap-mb') opts.memoryCapMB = int(value, name, 16, 1 << 24);
    else if (name === '--weight-cache' && path.isAbsolute(value)) opts.weightCache = value;
    else throw new Error(`unknown engine argument ${a}`);
  }
  return opts;
}

// ---- envelopes ------------------------------------------------------------------------------

/** One request; `id` is unique per client and pairs it with its response, error and events. */
export type EngineRequest = {
  [M in EngineMethod]: { kind: 'request'; id: number; method: M; params: ParamsOf<M> };
}[EngineMethod];

export interface EngineCancel {
  kind: 'cancel';
  id: number;
}

export type HostToWorker = EngineRequest | EngineCancel;

export interface EngineResponse {
  kind: 'response';
  id: number;
  /** Checked against the method's result schema by the client, which knows the method. */
  result: unknown;
}

/**
 * Why a request failed. From the engine: bad-request: the message or its params did not validate
 * (the text names the field); cancelled: a cancel reached it; not-loaded: the request needs a model or
 * a named adapter the engine does not hold (a restart or another load took it: load it, then ask
 * again); failed: the handler threw (or, client side, the engine broke the protocol). From the client: worker-exited: the host stopped the engine
 * (restart, dispose, or an engine that did not stop a request it was told to) while the request was
 * queued or running; crashed: the engine process died on its own (crash, kill, memory cap), or is
 * stopped after crashing too often; timeout: the host stopped waiting (the engine was told to stop).
 */
export const errorCodes = ['bad-request', 'cancelled', 'not-loaded', 'failed', 'worker-exited', 'crashed', 'timeout'] as const;
export type EngineErrorCode = (typeof errorCodes)[number];

export interface EngineErrorResponse {
  kind: 'error';
  id: number;
  error: { code: EngineErrorCode; message: string };
}

export interface EngineEventMessage {
  kind: 'event';
  id: number;
  /** Checked against the method's event schema by the client. */
  event: unknown;
}

export const logLevels = ['trace', 'debug', 'info', 'warn', 'error'] as const;
export type EngineLogLevel = (typeof logLevels)[number];

export interface EngineLog {
  kind: 'log';
  level: EngineLogLevel;
  message: string;
}

export type WorkerToHost = EngineResponse | EngineErrorResponse | EngineEventMessage | EngineLog;

// ---- validation -----------------------------------------------------------------------------

const requestId = num({ int: true, min: 0, max: Number.MAX_SAFE_INTEGER });

const hostToWorkerEnvelope = obj({
  kind: oneOf('request', 'cancel'),
  id: requestId,
  method: optional(str({ max: 64 })),
  params: optional((v) => v),
});

function isMethod(name: string): name is EngineMethod {
  return Object.prototype.hasOwnProperty.call(engineMethods, name);
}

/** Checks a message arriving at the worker, params included; throws CheckError. */
export function parseHostToWorker(msg: unknown): HostToWorker {
  const env = hostToWorkerEnvelope(msg, 'message');
  if (env.kind === 'cancel') {
    if (env.method !== undefined || env.params !== undefined) throw new CheckError('message', 'a cancel carries only an id');
    return { kind: 'cancel', id: env.id };
  }
  if (env.method === undefined) throw new CheckError('message.method', 'missing');
  if (!isMethod(env.method)) {
    throw new CheckError('message.method', `unknown method ${quote(env.method)} (known: ${Object.keys(engineMethods).join(', ')})`);
  }
  const params = engineMethods[env.method].params(env.params ?? {}, 'params');
  return { kind: 'request', id: env.id, method: env.method, params } as EngineRequest;
}

/** Best effort: the id of a message that failed validation, so its sender can be answered. */
export function idOf(msg: unknown): number | undefined {
  const id = (msg as { id?: unknown } | null)?.id;
  return typeof id === 'number' && Number.isSafeInteger(id) && id >= 0 ? id : undefined;
}

const workerToHostEnvelope = obj({
  kind: oneOf('response', 'error', 'event', 'log'),
  id: optional(requestId),
  result: optional((v) => v),
  event: optional((v) => v),
  error: optional(obj({ code: oneOf(...errorCodes), message: str() })),
  level: optional(oneOf(...logLevels)),
  message: optional(str()),
});

/** Checks the envelope of a message arriving at the host; payloads are checked per method. */
export function parseWorkerToHost(msg: unknown): WorkerToHost {
  const env = workerToHostEnvelope(msg, 'message');
  const need = <T>(v: T | undefined, field: string): T => {
    if (v === undefined) throw new CheckError(`message.${field}`, `missing in a ${env.kind} message`);
    return v;
  };
  switch (env.kind) {
    case 'response':
      return { kind: 'response', id: need(env.id, 'id'), result: env.result };
    case 'error':
      return { kind: 'error', id: need(env.id, 'id'), error: need(env.error, 'error') };
    case 'event':
      return { kind: 'event', id: need(env.id, 'id'), event: env.event };
    case 'log':
      return { kind: 'log', level: need(env.level, 'level'), message: need(env.message, 'message') };
  }
}

/** Checks a response's result against its method's schema. */
export function parseResult<M extends EngineMethod>(method: M, result: unknown): ResultOf<M> {
  return engineMethods[method].result(result, 'result') as ResultOf<M>;
}

/** Checks a streamed event against its method's schema. */
export function parseEvent<M extends EngineMethod>(method: M, event: unknown): EventOf<M> {
  return engineMethods[method].event(event, 'event') as EventOf<M>;
}

/** Whether a method runs in the one-at-a-time queue. */
export function isExclusive(method: EngineMethod): boolean {
  return engineMethods[method].exclusive;
}
