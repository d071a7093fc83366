// GemmaRuntime on onnxruntime-node and native code. Where the native kernels run (nativeDecoder.ts,
// nativeHead.ts: a CPU with AVX2, Q4_0 layers), every run of the layers (a decode step, a prefill, the
// branches of label scoring) and the head on up to NATIVE_HEAD_MAX_ROWS rows is native, and ONNX Runtime's
// sessions open only if a run needs them (the head on more rows), perhaps never. Otherwise one session over
// the layers (inferenceGraph.ts, `head: 'apart'`) and one over the LM head (headGraph) serve prefill, decode
// and every adapter, so the base weights are in memory once (until an adapter is first used, the layers run
// the graph variant without LoRA inputs; see LoraMode). The head is a session of its own so that its packed
// form can be kept between loads (runtimeCache.ts). Per run the runtime reads the tokens' embedding rows
// (embeddingReader.ts), computes the small inputs (RoPE tables, masks, split sizes), passes the cache's K/V
// buffers in place, appends the run's new K/V outputs to the cache (native code writes them there itself),
// and runs the head on the rows whose logits are wanted.

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type * as ortTypes from 'onnxruntime-node';
import type { GemmaConfig, LayerType } from '../model/config';
import { EMBED_NAME, type ModelWeights } from '../model/weights';
import { asWeightSource, type WeightSource } from '../model/weightSource';
import { quantType } from '../model/quantTypes';
import { loraScale, targetFromModuleName, targetShape, type LoraTarget } from '../model/loraTargets';
import { requireFiniteOutput } from '../model/finite';
import { ExternalDataFile, f32Tensor, ort, sessionFromDataFd, sessionFromFile, WEIGHTS_FILE, type SessionConfig } from '../onnx/session';
import { FolderCache, type CacheEntry } from '../onnx/folderCache';
import type { Device } from '../onnx/device';
import { headGraphWithParams, inferenceGraphWithParams, loraInputNames, type InferenceGraphOptions } from './inferenceGraph';
import { loraGroupShape, stackGroup } from './loraStack';
import { BASE_GRAPH, checkGraph, embeddingFromRecord, graphHash, hasPackedHead, HEAD_GRAPH, HEAD_PACKED_DATA, HEAD_PACKED_GRAPH, LORA_GRAPH, runtimeCacheKey, runtimeRecord, type RuntimeCacheOptions, type RuntimeRecord } from './runtimeCache';
import { EmbeddingReader } from './embeddingReader';
import { NativeDecoder, type NativeAdapter } from './nativeDecoder';
import { embeddingScale } from './params';
import { CHOICE_IDS, NATIVE_HEAD_MAX_ROWS, NativeHead } from './nativeHead';
import { LORA_GROUPS, type LoraGroup } from './layer';
import { GemmaKvCache, KvArrays, type SlotSet } from './kvCache';
import { layerInverseFrequencies, ropeTables } from './rope';
import { defaultAccuracyLevel, type Choice, type DecodeBy, type GemmaRuntime, type KvCache, type LoraAdapter, type Precision, type RuntimeOptions, type SequenceOptions, type StepOptions } from './runtime';
import { logProbsAt } from './logSoftmax';
import { scoreSequencesByForks } from './scoreByForks';
import { quote } from '../../common/quote';

type Feeds = Record<string, ortTypes.Tensor>;

/** Largest number of score entries (heads × new × visible keys) one run may hold; longer inputs are chunked. */
const MAX_SCORES = 8 << 20;
/**
 * Most new tokens per run (longer prompts run in pieces): bounds the activations a run holds. 256 rather
 * than 512 saved ~30 MB of peak memory at no measurable prefill cost, 128 rather than 256 another 8 MB
 * (the native layers' scratch), again at none (bench/runtime.ts --chunk).
 */
const MAX_CHUNK = 128;

export class AdapterShapeError extends Error {}

/** The LM head runs as this many MatMulNBits over vocabulary slices (see ParamsOptions.headParts). */
const HEAD_PARTS = 16;

/**
 * How the runtime carries LoRA. 'lazy' (default): run the base model on a graph without LoRA inputs (the
 * rank-0 LoRA branch of 144 small kernels costs ~20% of a decode step) and move to the LoRA graph, for
 * good, the first time a step names an adapter (a one-off session rebuild of a few seconds; the weights
 * are not converted again). 'always': the LoRA graph from the start. 'never': no LoRA (setAdapter throws).
 */
export type LoraMode = 'lazy' | 'always' | 'never';

export interface OrtRuntimeOptions extends RuntimeOptions {
  /** The LM head's MatMulNBits accuracy_level; default headAccuracyFor (float activations where it is fast). */
  headAccuracyLevel?: 0 | 4;
  headParts?: number;
  /**
   * See ParamsOptions.headBits. Default 8: the head exactly as stored, as llama.cpp runs it (a Q8_0 file's
   * logits moved 0.48 from llama.cpp's with the head requantised, against 0.06 kept: issue 15). 4 runs a
   * Q8_0 embedding's head as a Q4_0 requantisation: ~13 ms less per decoded token and ~75 MB less memory on
   * the 270M shape, at that cost in exactness.
   */
  headBits?: 4 | 8;
  maxChunk?: number;
  /** The layers' attention lowering (layer.ts); default 'gqa' (fewer kernels), 'matmul' for comparison. */
  attention?: 'matmul' | 'gqa';
  lora?: LoraMode;
  session?: SessionConfig;
  /** Keep the converted model in (and open it from) this cache; default none: convert at every load. */
  cache?: RuntimeCacheOptions;
  /**
   * Who runs the layers and the head: 'native' (default; nativeDecoder.ts and nativeHead.ts, where they are
   * available, else ONNX Runtime) or 'onnx' (always ONNX Runtime, for comparison).
   */
  decode?: 'native' | 'onnx';
}

/**
 * The head's default accuracy_level: float activations (0) for a 4-bit head, so that the chosen token and
 * the label probabilities come from the stored weights with nothing rounded but float arithmetic (on
 * llama.cpp's Q4_0 fixture: max|Δ| 0.052 → 0.044, test/unit/model-llamacpp-types.test.ts). An 8-bit head
 * (Q8_0 embedding, as Google ships) keeps the layers' level: MLAS has no float kernel for 8 bits, and ORT's
 * fallback dequantises the whole table every run (270M: 3.2 s per decoded token measured, against 21 ms).
 */
export function headAccuracyFor(weights: ModelWeights | WeightSource, accuracyLevel: 0 | 4): 0 | 4 {
  const storage = asWeightSource(weights).storage(EMBED_NAME);
  return storage !== 'f32' && quantType(storage).layout.bits === 4 ? 0 : accuracyLevel;
}

/**
 * Converts the weights, builds the graphs, creates the sessions, and returns a runtime; `weights` may be
 * dropped afterwards. A WeightSource (load.ts's openWeights) is read a few rows at a time, so the model is
 * never whole in JS. With `opts.cache`, a model converted before with the same options is opened from the
 * cache instead (runtimeCache.ts), and one converted now is kept there.
 */
export async function createGemmaRuntime(weights: ModelWeights | WeightSource, opts: OrtRuntimeOptions): Promise<GemmaRuntime> {
  const device = opts.device ?? 'cpu';
  const accuracyLevel = opts.accuracyLevel ?? defaultAccuracyLevel(device);
  const mode = opts.lora ?? 'lazy';
  const graphOpts: GraphChoices = {
    target: device, precision: opts.precision, accuracyLevel, headAccuracyLevel: opts.headAccuracyLevel ?? headAccuracyFor(weights, accuracyLevel), headParts: opts.headParts ?? HEAD_PARTS,
    headBits: opts.headBits ?? 8, embeddings: 'vectors' as const, attention: opts.attention ?? 'gqa',
  };
  // `session.device` may differ from the graph's target (tests run a WebGPU graph on the CPU EP).
  const sessionCfg: SessionConfig = { optimization: 'basic', device, ...opts.session, threads: opts.threads ?? 2 };
  const native = (): NativeParts => {
    const why = opts.decode === 'onnx' ? 'chosen' : device !== 'cpu' ? `inference on ${device}` : opts.precision !== 'q4' ? `precision ${opts.precision}` : null;
    if (why) return { decoder: { reason: why }, head: { reason: why } };
    const source = asWeightSource(weights);
    const requantised = graphOpts.headBits === 4 && source.storage(EMBED_NAME) === 'q8_0';
    return {
      decoder: NativeDecoder.create(source, sessionCfg.threads!, accuracyLevel),
      head: requantised ? { reason: 'the head is requantised to 4 bits' } : NativeHead.create(source, sessionCfg.threads!, graphOpts.headAccuracyLevel!),
    };
  };
  const runtime = (o: OpenedRuntime, files: CacheEntry | null, opened: boolean, parts: NativeParts) => new OrtGemmaRuntime(weights.config, opts.precision, device,
    { session: o.session, head: o.head, fd: o.fd, baseModel: o.models.base, loraModel: o.models.lora, loraActive: mode === 'always', mode, cfg: sessionCfg, gqa: graphOpts.attention === 'gqa', files },
    o.embedding, opts.maxChunk ?? MAX_CHUNK, opened, parts);
  const parts = native();
  try {
    // Where native code runs the layers (every run) or the head (up to NATIVE_HEAD_MAX_ROWS rows), ONNX
    // Runtime's session for them opens only if a run needs it: its packed weights cost ~0.6 s of a load and
    // ~100 MB beside the native copies.
    const eager = { layers: !(parts.decoder instanceof NativeDecoder), head: !(parts.head instanceof NativeHead) };
    if (opts.cache) {
      const cached = await openCachedRuntime(weights, opts.cache, graphOpts, mode, sessionCfg, eager);
      if (cached) return runtime(cached.runtime, cached.entry, cached.opened, parts);
    }
    // Without a cache the converted files go to a temporary folder that is removed once the runtime is open:
    // ORT keeps its mappings, the runtime a read descriptor on the data file (embedding rows, sessions opened later).
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gemma-tune-ort-'));
    try {
      const record = await convertInto(dir, weights, graphOpts, sessionCfg, false);
      const files = { file: (name: string) => path.join(dir, name), meta: record };
      return runtime(await openConverted(files, null, weights.config, sessionCfg, mode, eager), null, false, parts);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  } catch (e) {
    if (parts.decoder instanceof NativeDecoder) parts.decoder.dispose();
    if (parts.head instanceof NativeHead) parts.head.dispose();
    throw e;
  }
}

/** The graph options a runtime is converted with (part of its cache key). */
type GraphChoices = Omit<InferenceGraphOptions, 'lora' | 'head' | 'debugHidden'>;

/**
 * Converts the model into the empty folder `dir`: the data file, the layers' graph without and with LoRA
 * inputs, and the head's graph. `forCache`: the head is also saved as ORT packed it (HEAD_PACKED_*), so that
 * a later load maps the packed head instead of packing it again (FolderCache flushes the files).
 * Returns the record of where things are.
 */
async function convertInto(dir: string, weights: ModelWeights | WeightSource, graphOpts: GraphChoices, cfg: SessionConfig, forCache: boolean): Promise<RuntimeRecord> {
  const file = new ExternalDataFile(dir);
  let layers, head, lora, table;
  try {
    layers = inferenceGraphWithParams(weights, { ...graphOpts, lora: false, head: 'apart' }, file);
    head = headGraphWithParams(weights, graphOpts, file, layers.params);
    lora = inferenceGraphWithParams(weights, { ...graphOpts, lora: true, head: 'apart' }, file, layers.params);
    // Before the file is closed: a requantised head's lookup rows are a table of their own, written here.
    table = head.params.embeddingTable();
  } finally {
    file.close();
  }
  const graphs: Record<string, string> = {};
  const write = (name: string, bytes: Uint8Array) => {
    fs.writeFileSync(path.join(dir, name), bytes);
    graphs[name] = graphHash(bytes);
  };
  write(BASE_GRAPH, layers.graph.build().model);
  write(LORA_GRAPH, lora.graph.build().model);
  write(HEAD_GRAPH, head.graph.build().model);
  // Only the CPU packs weights at session creation (and only its packed head is known to reload exactly:
  // runtimeCache.ts says why the layers' are not kept).
  const packed = forCache && (cfg.device ?? 'cpu') === 'cpu';
  if (packed) {
    await (await sessionFromFile(path.join(dir, HEAD_GRAPH), { ...cfg, saveOptimized: { model: path.join(dir, HEAD_PACKED_GRAPH), data: HEAD_PACKED_DATA } })).release();
    graphs[HEAD_PACKED_GRAPH] = graphHash(fs.readFileSync(path.join(dir, HEAD_PACKED_GRAPH)));
  }
  return runtimeRecord(weights.config, table, packed, graphs);
}

/** The native layers and head, or why each is not there (the runtime then uses ONNX Runtime's). */
interface NativeParts {
  decoder: NativeDecoder | { reason: string };
  head: NativeHead | { reason: string };
}

/** The native form of an adapter's LoRA graph feeds: per layer, each group's a, b and n·R. */
function nativeAdapter(native: NativeDecoder, cfg: GemmaConfig, feeds: Feeds): NativeAdapter {
  const groups = Object.keys(LORA_GROUPS) as LoraGroup[];
  return native.adapter(Array.from({ length: cfg.layers }, (_, i) => Object.fromEntries(groups.map((group) => {
    const n = loraInputNames(i, group);
    const a = feeds[n.a];
    return [group, { a: a.data as Float32Array, b: feeds[n.b].data as Float32Array, rank: Number(a.dims[0]) }];
  })) as Record<LoraGroup, { a: Float32Array; b: Float32Array; rank: number }>));
}

interface OpenedRuntime {
  session: LazySession;
  head: LazySession;
  fd: number;
  models: { base: Uint8Array; lora: Uint8Array | null };
  embedding: EmbeddingReader;
}

/** An ONNX Runtime session opened now, or on first use (perhaps never) by `open`. */
class LazySession {
  private session: Promise<ortTypes.InferenceSession> | null;

  constructor(public open: () => Promise<ortTypes.InferenceSession>, now: ortTypes.InferenceSession | null) {
    this.session = now ? Promise.resolve(now) : null;
  }

  /** The session, opening it when it is not open (a failed open is tried again next time). */
  get(): Promise<ortTypes.InferenceSession> {
    this.session ??= this.open().catch((e) => {
      this.session = null;
      throw e;
    });
    return this.session;
  }

  /** Releases the session if it was opened; the next get() opens it again. */
  async release(): Promise<void> {
    const s = this.session;
    this.session = null;
    const opened = s && (await s.catch(() => null));
    await opened?.release();
  }
}

/**
 * Opens a converted runtime's files (a cache entry, or convertInto's temporary folder): the layers' and the
 * head's sessions now where `eager` says so, else when first used. `entry`: the cache entry the files are,
 * whose graphs a later open reads in place while it still holds the data file (else from the bytes kept here).
 */
async function openConverted(files: Pick<CacheEntry, 'file' | 'meta'>, entry: CacheEntry | null, config: GemmaConfig, cfg: SessionConfig, mode: LoraMode,
  eager: { layers: boolean; head: boolean }): Promise<OpenedRuntime> {
  const fd = fs.openSync(files.file(WEIGHTS_FILE), 'r');
  let session: ortTypes.InferenceSession | null = null;
  try {
    const embedding = new EmbeddingReader(embeddingFromRecord(files.meta, config), fd);
    // The bytes of the graph that runs (to rebuild its session) and, lazily, of the LoRA variant to come.
    const running = mode === 'always' ? LORA_GRAPH : BASE_GRAPH;
    const base = fs.readFileSync(files.file(running));
    const lora = mode === 'lazy' ? fs.readFileSync(files.file(LORA_GRAPH)) : null;
    const headBytes = fs.readFileSync(files.file(HEAD_GRAPH));
    const packed = hasPackedHead(files.meta);
    checkGraph(files.meta, running, base);
    if (lora) checkGraph(files.meta, LORA_GRAPH, lora);
    checkGraph(files.meta, HEAD_GRAPH, headBytes);
    if (packed) checkGraph(files.meta, HEAD_PACKED_GRAPH, fs.readFileSync(files.file(HEAD_PACKED_GRAPH)));
    const inPlace = () => sameFile(entry, fd);
    const openLayers = () => (inPlace() ? sessionFromFile(entry!.file(running), cfg) : sessionFromDataFd(base, fd, cfg));
    // The head's only large buffers are its logits: without an arena of its own they are freed after each
    // run instead of held beside the layers' arena (peak RSS: bench/ab-bench.sh).
    const headCfg: SessionConfig = { ...cfg, memArena: false };
    const openHead = (from: Pick<CacheEntry, 'file'> | null) => (from
      ? packed ? sessionFromFile(from.file(HEAD_PACKED_GRAPH), { ...headCfg, optimization: 'disabled' }) : sessionFromFile(from.file(HEAD_GRAPH), headCfg)
      : sessionFromDataFd(headBytes, fd, headCfg));
    session = eager.layers ? await sessionFromFile(files.file(running), cfg) : null;
    const head = eager.head ? await openHead(files) : null;
    return {
      session: new LazySession(openLayers, session),
      head: new LazySession(() => openHead(inPlace() ? entry : null), head),
      fd, models: { base, lora }, embedding,
    };
  } catch (e) {
    await session?.release();
    fs.closeSync(fd);
    throw e;
  }
}

/**
 * The runtime's sessions from its cache entry, converting into a new entry when there is none. Null when
 * the cache cannot serve (a full disk, a read-only folder): the caller converts into a temporary folder as
 * without a cache. A damaged entry is removed and built again once.
 */
async function openCachedRuntime(weights: ModelWeights | WeightSource, c: RuntimeCacheOptions, graphOpts: GraphChoices, mode: LoraMode, cfg: SessionConfig,
  eager: { layers: boolean; head: boolean }): Promise<{ runtime: OpenedRuntime; entry: CacheEntry; opened: boolean } | null> {
  const cache = new FolderCache(c.root);
  const key = runtimeCacheKey(c.modelStamp, graphOpts);
  for (let attempt = 0; attempt < 2; attempt++) {
    let entry = cache.open(key);
    const opened = entry !== null;
    if (!entry) {
      try {
        entry = await cache.build(key, (dir) => convertInto(dir, weights, graphOpts, cfg, true));
      } catch (e) {
        if (!isDiskError(e)) throw e;
        return null;
      }
    }
    try {
      return { runtime: await openConverted(entry, entry, weights.config, cfg, mode, eager), entry, opened };
    } catch (e) {
      cache.remove(key);
      if (attempt === 1) throw e;
    }
  }
  return null;
}

/** An error of the disk or file system (full, read-only, no permission, not a folder), not of the model. */
function isDiskError(e: unknown): boolean {
  const code = (e as NodeJS.ErrnoException | null)?.code;
  return typeof code === 'string' && ['ENOSPC', 'EDQUOT', 'EROFS', 'EACCES', 'EPERM', 'EIO', 'EMFILE', 'ENFILE', 'ENOTDIR', 'EEXIST'].includes(code);
}

/** A request's adapter for one run of the layers: the LoRA graph's feeds (ONNX Runtime) or its native form. */
interface RunAdapter {
  feeds: Feeds;
  native?: NativeAdapter;
}

/** The runtime's ORT session and what it needs to rebuild it as the LoRA variant. */
interface SessionState {
  /** The layers (inferenceGraph with `head: 'apart'`): hidden rows and the new keys and values; never opened where native code runs them. */
  session: LazySession;
  /** The LM head (headGraph): rows → logits; the same for the base and LoRA variants; opened where the native head does not serve. */
  head: LazySession;
  /** Read descriptor on the external data file both layer variants use (a cache entry's, or an unlinked temporary one). */
  fd: number;
  baseModel: Uint8Array;
  /** The LoRA variant's model bytes while the base graph runs ('lazy'), else null. */
  loraModel: Uint8Array | null;
  loraActive: boolean;
  mode: LoraMode;
  cfg: SessionConfig;
  /** The graph takes GroupQueryAttention's sizes (seqlens_*, total_*) rather than split_*. */
  gqa: boolean;
  /** The cache entry the session was opened from (its LoRA graph can be opened in place), or null. */
  files: CacheEntry | null;
}

class OrtGemmaRuntime implements GemmaRuntime {
  /** Each adapter's LoRA graph feeds and, once a native step has used it, its native form (made from the feeds). */
  private readonly adapters = new Map<string, { feeds: Feeds; native?: NativeAdapter }>();
  private readonly baseLora: Feeds;
  private readonly invFreq: Map<LayerType, Float32Array>;
  /** The native layers' input and output rows of a run, [T, C], kept between runs. */
  private x = new Float32Array(0);
  /** K/V buffers that disposed caches handed back, for the next ones. */
  private readonly kvArrays = new KvArrays();
  private disposed = false;
  private switching: Promise<void> | null = null;

  readonly weightsFrom: 'converted' | 'cache';

  readonly decodeBy: DecodeBy;
  private readonly native: NativeDecoder | null;
  private readonly nativeHead: NativeHead | null;

  constructor(readonly config: GemmaConfig, readonly precision: Precision, readonly device: Device, private readonly s: SessionState,
    private readonly embedding: EmbeddingReader, readonly maxRunTokens: number, opened: boolean, parts: NativeParts) {
    this.weightsFrom = opened ? 'cache' : 'converted';
    this.native = parts.decoder instanceof NativeDecoder ? parts.decoder : null;
    this.nativeHead = parts.head instanceof NativeHead ? parts.head : null;
    const note = (p: object) => ('reason' in p ? `ONNX Runtime (${p.reason})` : 'native');
    this.decodeBy = { native: this.native !== null, note: `layers ${note(parts.decoder)}, head ${note(parts.head)}` };
    const cfg = config;
    this.invFreq = new Map([
      ['sliding', layerInverseFrequencies(cfg, 'sliding')],
      ['full', layerInverseFrequencies(cfg, 'full')],
    ]);
    // No adapter = rank 0: the LoRA branch multiplies through an empty inner dimension and adds zeros.
    this.baseLora = {};
    for (let i = 0; i < cfg.layers; i++) {
      for (const group of Object.keys(LORA_GROUPS) as LoraGroup[]) {
        const [out, inp] = loraGroupShape(cfg, group);
        const n = loraInputNames(i, group);
        this.baseLora[n.a] = f32Tensor(new Float32Array(0), [0, inp]);
        this.baseLora[n.b] = f32Tensor(new Float32Array(0), [out, 0]);
      }
    }
  }

  /** Moves to the LoRA graph (once): the base session is released first, so memory never holds both. */
  private async ensureLora(): Promise<void> {
    const s = this.s;
    if (s.loraActive) return;
    if (!s.loraModel) throw new Error('this runtime was built without LoRA inputs');
    this.switching ??= (async () => {
      await s.session.release();
      const base = s.session.open;
      const lora = s.loraModel!;
      s.session.open = () => (sameFile(s.files, s.fd) ? sessionFromFile(s.files!.file(LORA_GRAPH), s.cfg) : sessionFromDataFd(lora, s.fd, s.cfg));
      try {
        await s.session.get();
        s.loraActive = true;
        s.loraModel = null;
      } catch (e) {
        s.session.open = base;
        throw e;
      } finally {
        this.switching = null;
      }
    })();
    await this.switching;
  }

  newCache(): KvCache {
    return new GemmaKvCache(this, this.config, this.kvArrays);
  }

  /** The cache as this runtime's, checked usable, and the token ids checked against the vocabulary and context. */
  private checked(what: string, cacheIn: KvCache, ids: number[], extent: number): GemmaKvCache {
    if (this.disposed) throw new Error('runtime was disposed');
    const cache = cacheIn as GemmaKvCache;
    if (!(cache instanceof GemmaKvCache) || cache.owner !== this) throw new Error(`${what}: the cache belongs to another runtime`);
    if (cache.disposed) throw new Error(`${what}: the cache was disposed`);
    const { vocabSize: V, maxPositions } = this.config;
    for (const id of ids) if (!Number.isInteger(id) || id < 0 || id >= V) throw new Error(`${what}: token id ${id} is outside the vocabulary (0…${V - 1})`);
    if (cache.length + extent > maxPositions) throw new Error(`${what}: ${cache.length + extent} positions exceed the model's ${maxPositions}`);
    return cache;
  }

  /** The LoRA feeds for a request (switching to the LoRA graph when an adapter is named). */
  private async loraFeeds(what: string, adapter: string | undefined): Promise<Feeds> {
    let lora = this.baseLora;
    if (adapter !== undefined) {
      lora = this.adapter(what, adapter).feeds;
      await this.ensureLora();
    }
    if (this.switching) await this.switching;
    return this.s.loraActive ? lora : {};
  }

  /** A registered adapter by name. */
  private adapter(what: string, name: string): { feeds: Feeds; native?: NativeAdapter } {
    const a = this.adapters.get(name);
    if (!a) throw new Error(`${what}: no adapter named ${quote(name)}`);
    return a;
  }

  async step(cacheIn: KvCache, ids: number[], opts: StepOptions): Promise<Float32Array> {
    if (ids.length === 0) throw new Error('step: no token ids');
    const cache = this.checked('step', cacheIn, ids, ids.length);
    const choice = opts.logits === 'last' ? opts.choice : undefined;
    const V = this.config.vocabSize;
    const adapter = await this.runAdapter('step', opts.adapter);

    let out: Float32Array | null = null;
    let done = 0;
    cache.reserve(ids.length);
    while (done < ids.length) {
      const T = Math.min(ids.length - done, this.runLimit(cache));
      const last = done + T === ids.length;
      const index = opts.logits === 'all' ? range(0, T) : last ? [T - 1] : [];
      const chunk = ids.slice(done, done + T);
      const rows = await this.runLayers(cache, chunk, range(cache.length, cache.length + T), null, index, adapter, T);
      const logits = index.length ? await this.logits(rows, index.length, last ? choice : undefined, cache) : new Float32Array(0);
      // The last run's logits are the answer as is, unless the logits of earlier pieces are wanted too.
      if (opts.logits === 'last' || (done === 0 && last)) {
        if (last) out = logits;
      } else {
        out ??= new Float32Array(ids.length * V);
        out.set(logits, done * V);
      }
      done += T;
    }
    return out!;
  }

  async scoreSequences(cacheIn: KvCache, sequences: number[][], opts: SequenceOptions): Promise<number[][]> {
    const prefix = opts.prefix;
    if (prefix.length === 0) throw new Error('scoreSequences: no prefix ids (the first token of each sequence is scored after the last of them)');
    if (sequences.some((s) => s.length === 0)) throw new Error('scoreSequences: a sequence has no ids');
    // Each sequence runs but for its last id, which is only scored.
    const branches = sequences.map((s) => s.slice(0, -1));
    const all = [...prefix, ...branches.flat()];
    const longest = branches.reduce((m, b) => Math.max(m, b.length), 0);
    const cache = this.checked('scoreSequences', cacheIn, [...prefix, ...sequences.flat()], prefix.length + longest);
    const adapter = await this.runAdapter('scoreSequences', opts.adapter);
    // Too many tokens for one run: the prefix as a step, then each sequence on its own fork.
    if (all.length > this.runLimit(cache)) return scoreSequencesByForks(this, cache, sequences, opts);
    // Prefix tokens are branch −1, seen by every token after them; branch tokens follow the prefix.
    const start = cache.length;
    const positions: number[] = prefix.map((_, t) => start + t);
    const branchOf: number[] = prefix.map(() => -1);
    branches.forEach((b, i) => b.forEach((_, t) => {
      positions.push(start + prefix.length + t);
      branchOf.push(i);
    }));
    // Row 0: after the prefix's last id, where every sequence's first id is scored; then each branch token's
    // row, where its sequence's next id is.
    const index = [prefix.length - 1, ...range(prefix.length, all.length)];
    const pickRow: number[] = sequences.map(() => 0), pickId = sequences.map((s) => s[0]);
    let row = 1;
    for (const s of sequences) for (let k = 1; k < s.length; k++) {
      pickRow.push(row++);
      pickId.push(s[k]);
    }
    const rows = await this.runLayers(cache, all, positions, branchOf, index, adapter, prefix.length);
    const lp = await this.logProbs(rows, index.length, Int32Array.from(pickRow), Int32Array.from(pickId));
    let at = sequences.length;
    return sequences.map((s, i) => {
      const mine = [lp[i], ...lp.subarray(at, at + s.length - 1)];
      at += s.length - 1;
      return mine;
    });
  }

  /**
   * A request's adapter as the layers that run take it: the native form (made from its feeds on first use),
   * or the LoRA graph feeds (switching to the LoRA graph when an adapter is named).
   */
  private async runAdapter(what: string, name: string | undefined): Promise<RunAdapter> {
    if (!this.native) return { feeds: await this.loraFeeds(what, name) };
    if (name === undefined) return { feeds: {} };
    const a = this.adapter(what, name);
    return { feeds: {}, native: (a.native ??= nativeAdapter(this.native, this.config, a.feeds)) };
  }

  /** Most new tokens one run of the layers takes here (ONNX Runtime's attention scores also bound it). */
  private runLimit(cache: GemmaKvCache): number {
    return this.native ? this.maxRunTokens : this.chunkSize(cache);
  }

  /** One run of the layers (native where there, else ONNX Runtime's): run()'s arguments and result. */
  private runLayers(cache: GemmaKvCache, ids: number[], positions: number[], branchOf: number[] | null, logitIndex: number[],
    adapter: RunAdapter, commit: number): Promise<Float32Array> {
    return this.native
      ? Promise.resolve(this.nativeRun(this.native, cache, ids, positions, branchOf, logitIndex, adapter.native, commit))
      : this.run(cache, ids, positions, branchOf, logitIndex, adapter.feeds, commit);
  }

  /** run() on the native layers: the same tokens, positions, branches, rows and commit. */
  private nativeRun(native: NativeDecoder, cache: GemmaKvCache, ids: number[], positions: number[], branchOf: number[] | null, logitIndex: number[],
    adapter: NativeAdapter | undefined, commit: number): Float32Array {
    const C = this.config.hidden, T = ids.length, start = cache.length;
    // Each run's input rows in one kept array: a fresh one per run was garbage left for the collector.
    if (this.x.length < T * C) this.x = new Float32Array(Math.min(this.maxRunTokens, Math.max(T, 16)) * C);
    const x = this.embedding.rows(ids, this.x.subarray(0, T * C));
    // The graph's scaleEmbedding, as a float32 product rounded to float32.
    const scale = embeddingScale(this.config);
    for (let i = 0; i < x.length; i++) x[i] *= scale;
    const slots = cache.plan(T, commit);
    native.run(cache, x, positions, branchOf, slots, (type) => ropeTables(this.invFreq.get(type)!, positions), adapter);
    cache.record(start, slots, commit);
    const rows = new Float32Array(logitIndex.length * C);
    logitIndex.forEach((t, i) => rows.set(x.subarray(t * C, (t + 1) * C), i * C));
    return rows;
  }

  /**
   * The head on hidden rows [n, C]: native for a few rows where it is there, else ONNX Runtime's; a choice lets
   * one row's be estimated where they are not read, written into the cache's array for choices. Every logit a
   * caller reads is finite, or this throws NonFiniteError (GemmaRuntime's promise).
   */
  private async logits(rows: Float32Array, n: number, choice?: Choice, cache?: GemmaKvCache): Promise<Float32Array> {
    if (cache) cache.candidates = null;
    if (this.nativeHead && n === 1 && choice) {
      const into = cache ? (cache.choiceLogits ??= new Float32Array(this.config.vocabSize)) : undefined;
      const ids = cache ? (cache.choiceIds ??= new Int32Array(CHOICE_IDS)) : undefined;
      const r = this.nativeHead.choose(rows, choice.top, choice.among, into, ids);
      if (cache) cache.candidates = r.candidates;
      return r.logits;
    }
    if (this.nativeHead && n <= NATIVE_HEAD_MAX_ROWS) return this.nativeHead.logits(rows, n);
    const head = await this.s.head.get();
    const logits = (await head.run({ rows: f32Tensor(rows, [n, this.config.hidden]) })).logits.data as Float32Array;
    requireFiniteOutput(logits);
    return logits;
  }

  /** log softmax of the head on hidden rows [n, C] at picks (row, id): native without a [n, V] array where it is there, else from the logits. */
  private async logProbs(rows: Float32Array, n: number, pickRow: Int32Array, pickId: Int32Array): Promise<Float64Array> {
    if (this.nativeHead && n <= NATIVE_HEAD_MAX_ROWS) return this.nativeHead.logProbs(rows, n, pickRow, pickId);
    return logProbsAt(await this.logits(rows, n), this.config.vocabSize, pickRow, pickId);
  }

  /** Appends the first `count` of a run's T new keys/values (new_kv: k_0 v_0 k_1 v_1 …, each [Hkv, T, D]) to the cache. */
  private commit(cache: GemmaKvCache, start: number, T: number, kv: Float32Array, count: number): void {
    const cfg = this.config;
    const size = cfg.kvHeads * T * cfg.headDim;
    const part = (i: number) => kv.subarray(i * size, (i + 1) * size);
    for (const set of cache.sets.values()) {
      const newK = set.layers.map((layer) => part(2 * layer));
      const newV = set.layers.map((layer) => part(2 * layer + 1));
      set.append(start, T, newK, newV, count);
    }
    cache.length += count;
  }

  private chunkSize(cache: GemmaKvCache): number {
    const full = cache.sets.get('full');
    const past = full ? full.filled : 0;
    let T = this.maxRunTokens;
    while (T > 16 && this.config.heads * T * (past + T) > MAX_SCORES) T >>= 1;
    return T;
  }

  /**
   * One session run of T new tokens at `positions` after the cache. branchOf null: one sequence (token t
   * sees every earlier new token); else new token t sees new token u when u is in its branch or in branch
   * −1 (a shared prefix). The first `commit` new tokens' keys/values join the cache. Returns the last
   * layer's rows [logitIndex.length, C] at logitIndex, for the head.
   */
  private async run(cache: GemmaKvCache, ids: number[], positions: number[], branchOf: number[] | null, logitIndex: number[],
    lora: Feeds, commit: number): Promise<Float32Array> {
    const cfg = this.config;
    const T = ids.length;
    const start = cache.length;
    const feeds: Feeds = { ...lora };
    feeds.inputs_embeds = f32Tensor(this.embedding.rows(ids), [1, T, cfg.hidden]);
    feeds.rope_pos = new ort.Tensor('int64', BigInt64Array.from(range(0, T), (v) => BigInt(v)), [1, T]);
    feeds.logit_index = new ort.Tensor('int64', BigInt64Array.from(logitIndex, (v) => BigInt(v)), [logitIndex.length]);
    for (const [type, set] of cache.sets) {
      const { cos, sin } = ropeTables(this.invFreq.get(type)!, positions);
      feeds[`cos_${type}`] = f32Tensor(cos, [T, cfg.headDim / 2]);
      feeds[`sin_${type}`] = f32Tensor(sin, [T, cfg.headDim / 2]);
      feeds[`mask_${type}`] = f32Tensor(buildMask(set, positions, branchOf, type === 'sliding' ? cfg.slidingWindow : Infinity), [1, 1, T, set.filled + T]);
      if (this.s.gqa) {
        feeds[`seqlens_${type}`] = new ort.Tensor('int32', Int32Array.from([set.filled + T - 1]), [1]);
        feeds[`total_${type}`] = new ort.Tensor('int32', Int32Array.from([set.filled + T]), []);
      } else {
        feeds[`split_${type}`] = new ort.Tensor('int64', BigInt64Array.from([BigInt(set.filled), BigInt(T)]), [2]);
      }
      set.layers.forEach((layer, l) => {
        const dims = [1, cfg.kvHeads, set.filled, cfg.headDim];
        feeds[`past_k_${layer}`] = f32Tensor(set.view('k', l), dims);
        feeds[`past_v_${layer}`] = f32Tensor(set.view('v', l), dims);
      });
    }
    const result = await (await this.s.session.get()).run(feeds);
    if (commit > 0) this.commit(cache, start, T, result.new_kv.data as Float32Array, commit);
    return logitIndex.length ? result.rows.data as Float32Array : new Float32Array(0);
  }

  setAdapter(name: string, adapter: LoraAdapter): void {
    const cfg = this.config;
    if (this.s.mode === 'never') throw new AdapterShapeError(`adapter ${name}: this runtime was built without LoRA inputs`);
    const { rank: R, alpha } = adapter;
    if (!Number.isInteger(R) || R < 1 || R > 4096) throw new AdapterShapeError(`adapter ${name}: rank ${R} is not a positive integer`);
    if (!(alpha > 0) || !Number.isFinite(alpha)) throw new AdapterShapeError(`adapter ${name}: alpha ${alpha} is not positive`);
    const scale = loraScale(alpha, R);
    const byLayer = new Map<number, Map<LoraTarget, { a: Float32Array; b: Float32Array }>>();
    for (const [path, m] of adapter.modules) {
      const match = /^model\.layers\.(\d+)\.(self_attn|mlp)\.(\w+)$/.exec(path);
      const target: LoraTarget | undefined = match ? targetFromModuleName(match[3]) : undefined;
      const layer = match ? Number(match[1]) : -1;
      if (!match || !target || layer >= cfg.layers) throw new AdapterShapeError(`adapter ${name}: module ${path} is not a projection of this model`);
      const [out, inp] = targetShape(cfg, target);
      if (m.a.length !== R * inp) throw new AdapterShapeError(`adapter ${name}: ${path} A has ${m.a.length} values, want [${R}, ${inp}]`);
      if (m.b.length !== out * R) throw new AdapterShapeError(`adapter ${name}: ${path} B has ${m.b.length} values, want [${out}, ${R}]`);
      if (!byLayer.has(layer)) byLayer.set(layer, new Map());
      byLayer.get(layer)!.set(target, m);
    }
    const feeds: Feeds = { ...this.baseLora };
    for (const [layer, targets] of byLayer) {
      for (const group of Object.keys(LORA_GROUPS) as LoraGroup[]) {
        const stacked = stackGroup(cfg, group, targets, R, scale);
        if (!stacked) continue;
        const [outAll, inp] = loraGroupShape(cfg, group);
        const n = loraInputNames(layer, group);
        feeds[n.a] = f32Tensor(stacked.a, [stacked.rank, inp]);
        feeds[n.b] = f32Tensor(stacked.b, [outAll, stacked.rank]);
      }
    }
    this.removeAdapter(name);
    this.adapters.set(name, { feeds });
  }

  removeAdapter(name: string): void {
    const old = this.adapters.get(name)?.native;
    if (old) this.native?.dropAdapter(old);
    this.adapters.delete(name);
  }

  async dispose(): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    for (const a of this.adapters.values()) if (a.native) this.native?.dropAdapter(a.native);
    this.adapters.clear();
    this.native?.dispose();
    this.nativeHead?.dispose();
    try {
      if (this.switching) await this.switching.catch(() => undefined);
      await Promise.all([this.s.session.release(), this.s.head.release()]);
    } finally {
      fs.closeSync(this.s.fd);
    }
  }
}

/** Whether the cache entry still holds the data file the runtime reads (another process may have evicted or rebuilt it). */
function sameFile(entry: CacheEntry | null, fd: number): boolean {
  if (!entry) return false;
  try {
    const a = fs.fstatSync(fd), b = fs.statSync(entry.file(WEIGHTS_FILE));
    return a.ino === b.ino && a.dev === b.dev && fs.existsSync(entry.file(LORA_GRAPH));
  } catch {
    return false;
  }
}

function range(a: number, b: number): number[] {
  return Array.from({ length: b - a }, (_, i) => a + i);
}

/**
 * Additive mask [T, filled + T]: new token t (at positions[t]) sees a key at position q iff q ≤ positions[t]
 * and positions[t] − q < window (HF: a sliding layer's token i sees i−W+1 … i); among the new tokens, only
 * those of its own branch or of the shared prefix, branch −1 (branchOf; null: one branch).
 */
function buildMask(set: SlotSet, positions: number[], branchOf: number[] | null, window: number): Float32Array {
  const P = set.filled;
  const T = positions.length;
  const S = P + T;
  const mask = new Float32Array(T * S);
  for (let t = 0; t < T; t++) {
    const pos = positions[t];
    const row = t * S;
    for (let j = 0; j < P; j++) {
      const d = pos - set.positions[j];
      if (d < 0 || d >= window) mask[row + j] = -Infinity;
    }
    for (let u = 0; u < T; u++) {
      const d = pos - positions[u];
      if (d < 0 || d >= window || (branchOf !== null && branchOf[u] !== -1 && branchOf[u] !== branchOf[t])) mask[row + P + u] = -Infinity;
    }
  }
  return mask;
}
