// The graph builder: named values with dtypes and (partly symbolic) shapes, nodes, graph inputs and
// outputs, and initializers. Op helpers live in ops.ts; this file only knows how to record a node and
// how to serialise the whole graph to an ONNX ModelProto.
//
// Every node is kept as a NodeRecord (op, inputs, outputs, attributes) in build order, so that a
// reverse-mode pass (training) can walk `graph.nodes` backwards and emit each op's vector-Jacobian
// product beside its forward. That list only grows: what the graph computes is fixed once recorded.
// Edits that change only how it runs are marks applied when serialising, so they can be made in any
// order and never shift a node range or hide a node from autodiff:
//  - a Region (the nodes one `record` callback made) run only when a condition holds (`conditional`:
//    an ONNX If whose then-branch holds them);
//  - a node whose output equals an earlier value, left out with its readers reading that value (`reuse`);
//  - a node output renamed to a graph output (`output`), and the target's lowering (lowering.ts).
//
// Initializers larger than INLINE_LIMIT bytes are written as ONNX external data, one ORT `externalData`
// entry per tensor that points at the caller's own buffer: the model bytes stay small and the weights
// are never concatenated into a second copy.

import { encodeModel, OnnxDataType, type AttrValue, type TensorMsg, type NodeMsg, type ValueInfoMsg, type SubgraphMsg } from './proto';
import { lowerNode, type GraphTarget, type LoweringContext } from './lowering';
import type { DType, Dim, NodeRecord, Value } from './nodes';

export interface ExternalBuffer {
  path: string;
  data: Uint8Array;
  /** Byte offset in `path` when several tensors share one external file. */
  offset?: number;
}

export interface BuiltModel {
  /** The serialised ModelProto (small: weights are external). */
  model: Uint8Array;
  /** Pass as the session option `externalData`. */
  externalData: ExternalBuffer[];
}

const ONNX_TYPE: Record<DType, number> = {
  float32: OnnxDataType.FLOAT, float16: OnnxDataType.FLOAT16, int64: OnnxDataType.INT64, int32: OnnxDataType.INT32,
  int8: OnnxDataType.INT8, uint8: OnnxDataType.UINT8, bool: OnnxDataType.BOOL,
};

/** Opset versions the engine's graphs are written against. */
export const OPSETS = [
  { domain: '', version: 21 },
  { domain: 'com.microsoft', version: 1 },
];

const INLINE_LIMIT = 1024;

function bytesPer(dtype: DType): number {
  return dtype === 'float32' || dtype === 'int32' ? 4 : dtype === 'int64' ? 8 : dtype === 'float16' ? 2 : 1;
}

/** A reserved byte range of an external data file, filled in order by `write`. */
export interface SinkRegion {
  location: string;
  offset: number;
  /** Appends the next bytes of the range. */
  write(bytes: Uint8Array): void;
}

/** Receives large initializers' bytes as they are produced and says where they now live. */
export interface InitializerSink {
  /** Reserves `byteLength` bytes at an offset ORT can map (page-aligned). */
  reserve(byteLength: number): SinkRegion;
}

/**
 * Bytes that several initializers may view (e.g. one weight read by two ops), written once, in order,
 * a chunk at a time: to the sink when the graph streams, else into one in-memory buffer.
 */
export interface Blob {
  readonly byteLength: number;
  /** Appends the next bytes. */
  write(bytes: Uint8Array): void;
  /** Where the bytes live: a range of an external data file, or (not streamed) an in-memory buffer. */
  placement(): { location: string; offset: number } | { data: Uint8Array };
}

class BlobImpl implements Blob {
  written = 0;
  readonly data: Uint8Array | null;

  /** `data`: an existing buffer to view (adopting another graph's in-memory blob). */
  constructor(readonly byteLength: number, readonly region: SinkRegion | null, data?: Uint8Array | null) {
    this.data = region ? null : data ?? new Uint8Array(byteLength);
  }

  write(bytes: Uint8Array): void {
    if (this.written + bytes.byteLength > this.byteLength) throw new Error(`blob of ${this.byteLength} bytes: write past its end`);
    if (this.region) this.region.write(bytes);
    else this.data!.set(bytes, this.written);
    this.written += bytes.byteLength;
  }

  placement(): { location: string; offset: number } | { data: Uint8Array } {
    return this.region ? { location: this.region.location, offset: this.region.offset } : { data: this.data! };
  }
}

type TypedData = Float32Array | Int32Array | Uint8Array | Int8Array | BigInt64Array | Uint16Array;

function bytesOf(data: TypedData): Uint8Array {
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

/**
 * The nodes one `Graph.record` callback made: a run of the graph's node list, which only grows. Only
 * Graph.record makes one (the class is not exported, and its private member keeps an object literal from
 * passing for one), so a region is always exactly what one callback recorded, and regions nest.
 */
class RecordedRegion {
  private readonly madeByRecord = true;
  constructor(readonly graph: Graph, readonly start: number, readonly end: number) {}
}
export type Region = RecordedRegion;

/** A region serialised as the then-branch of `ifNode`, its outputs `then`; the else-branch passes `elseOuts` through Identity nodes. */
interface ConditionalRegion {
  region: Region;
  ifNode: NodeRecord;
  then: Value[];
  elseNodes: NodeRecord[];
  elseOuts: Value[];
}

export class Graph {
  private readonly recorded: NodeRecord[] = [];
  readonly inputs: Value[] = [];
  readonly outputs: Value[] = [];
  private readonly initializers: { value: Value; dims: number[]; data: Uint8Array | null; external?: { location: string; offset: number } }[] = [];
  private readonly blobs: BlobImpl[] = [];
  private sink: InitializerSink | null = null;
  private readonly used = new Set<string>();
  private readonly constCache = new Map<string, Value>();
  /** Node outputs renamed to graph output names, applied when serialising. */
  private readonly aliases = new Map<string, string>();
  private counter = 0;
  /**
   * Serialise the graph inputs without shapes. ORT's allocation planner compares each new output with
   * every freed buffer whose shape is known (quadratic in the node count); with shapeless inputs, shape
   * inference leaves most activations shapeless and the planner skips them, and the arena reuses their
   * memory at run time instead. The 9k-node train-step graph: session creation 37 s → ~9 s.
   */
  omitInputShapes = false;
  /** Where the graph will run: 'webgpu' serialises the ops its EP lacks as ops it has (lowering.ts). */
  target: GraphTarget = 'cpu';
  /** Each rewritten node's replacement, made once so that building twice gives the same model. */
  private readonly lowered = new Map<NodeRecord, NodeRecord[]>();
  /** Regions that run only under a condition, in the order they were made conditional. */
  private readonly conditionals: ConditionalRegion[] = [];
  /** Nodes left out when serialising, each with the earlier value its readers read instead (`reuse`). */
  private readonly reused = new Map<NodeRecord, Value>();
  /** Output name of a reused node → the value read instead. */
  private readonly reusedNames = new Map<string, Value>();

  constructor(readonly name: string) {}

  /** Every node recorded, in build order (those in conditional regions and reused ones included): what autodiff walks. */
  get nodes(): readonly NodeRecord[] {
    return this.recorded;
  }

  /**
   * From now on, initializers over INLINE_LIMIT bytes are handed to `sink` when created (e.g. written to
   * the external data file) and not kept, so converted weights never pile up in memory.
   */
  streamInitializers(sink: InitializerSink): void {
    this.sink = sink;
  }

  /** A name not used yet, derived from a readable prefix. */
  fresh(prefix: string): string {
    let n = prefix;
    while (this.used.has(n)) n = `${prefix}_${++this.counter}`;
    this.used.add(n);
    return n;
  }

  private claim(name: string): string {
    if (this.used.has(name)) throw new Error(`graph ${this.name}: value name "${name}" is used twice`);
    this.used.add(name);
    return name;
  }

  /** Declares a graph input. */
  input(name: string, dtype: DType, shape: Dim[]): Value {
    const v: Value = { name: this.claim(name), dtype, shape };
    this.inputs.push(v);
    return v;
  }

  /**
   * Declares a graph output under `name`. A node's output is renamed in place (no Identity node, which
   * would cost a kernel call per run); a graph input or initializer goes through Identity.
   */
  output(v: Value, name?: string): Value {
    let out = v;
    if (name !== undefined && name !== v.name) {
      out = { name: this.claim(name), dtype: v.dtype, shape: v.shape };
      const isNodeOutput = this.recorded.some((n) => n.outputs.includes(v));
      const alreadyOutput = this.outputs.some((o) => o.name === this.resolve(v.name));
      if (isNodeOutput && !alreadyOutput && !this.aliases.has(v.name)) {
        this.aliases.set(v.name, name);
      } else {
        this.recorded.push({ op: 'Identity', domain: '', inputs: [v], outputs: [out], attrs: {} });
      }
    }
    this.outputs.push(out);
    return out;
  }

  /** The serialised name of a value: a reused node's output reads its replacement, an aliased output its graph output name. */
  private resolve(name: string): string {
    const by = this.reusedNames.get(name);
    if (by) return this.resolve(by.name);
    return this.aliases.get(name) ?? name;
  }

  /** A weight or constant tensor; large ones become external data referencing `data` without a copy. */
  initializer(name: string, dtype: DType, dims: number[], data: TypedData): Value {
    return this.addInitializer(this.claim(name), dtype, dims, data);
  }

  private addInitializer(name: string, dtype: DType, dims: number[], data: TypedData): Value {
    const count = dims.reduce((a, b) => a * b, 1);
    const bytes = bytesOf(data);
    const per = bytesPer(dtype);
    if (bytes.byteLength !== count * per) {
      throw new Error(`initializer ${name}: ${bytes.byteLength} bytes for [${dims}] ${dtype}`);
    }
    const v: Value = { name, dtype, shape: dims };
    if (this.sink && bytes.byteLength > INLINE_LIMIT) {
      const region = this.sink.reserve(bytes.byteLength);
      region.write(bytes);
      this.initializers.push({ value: v, dims, data: null, external: { location: region.location, offset: region.offset } });
    } else {
      this.initializers.push({ value: v, dims, data: bytes });
    }
    return v;
  }

  /** Reserves `byteLength` bytes for initializers to view (initializerIn); fill them with blob.write. */
  blob(byteLength: number): Blob {
    const b = new BlobImpl(byteLength, this.sink && byteLength > INLINE_LIMIT ? this.sink.reserve(byteLength) : null);
    this.blobs.push(b);
    return b;
  }

  /**
   * A blob of another graph, already written, for this graph's initializers to view too (two graphs over
   * one external data file).
   */
  adoptBlob(blob: Blob): Blob {
    const src = blob as BlobImpl;
    if (src.written !== src.byteLength) throw new Error('adoptBlob: the blob is not fully written');
    const b = new BlobImpl(src.byteLength, src.region, src.data);
    b.written = src.byteLength;
    this.blobs.push(b);
    return b;
  }

  /** An initializer over bytes [byteOffset, byteOffset + size) of a blob; several may view the same bytes. */
  initializerIn(name: string, dtype: DType, dims: number[], blob: Blob, byteOffset = 0): Value {
    const b = blob as BlobImpl;
    if (!this.blobs.includes(b)) throw new Error(`initializer ${name}: the blob belongs to another graph`);
    const len = dims.reduce((a, c) => a * c, 1) * bytesPer(dtype);
    if (byteOffset < 0 || byteOffset + len > b.byteLength) throw new Error(`initializer ${name}: bytes ${byteOffset}+${len} outside a blob of ${b.byteLength}`);
    const v: Value = { name: this.claim(name), dtype, shape: dims };
    if (b.region) {
      this.initializers.push({ value: v, dims, data: null, external: { location: b.region.location, offset: b.region.offset + byteOffset } });
    } else {
      this.initializers.push({ value: v, dims, data: b.data!.subarray(byteOffset, byteOffset + len) });
    }
    return v;
  }

  /** A small float32 constant, shared by value. */
  constF32(values: number | number[], dims?: number[]): Value {
    return this.constant('float32', values, dims, (arr) => Float32Array.from(arr));
  }

  /** A small int64 constant (shapes, axes, indices), shared by value. */
  constI64(values: number | number[], dims?: number[]): Value {
    return this.constant('int64', values, dims, (arr) => BigInt64Array.from(arr.map((x) => BigInt(x))));
  }

  /** The initializer holding `values` ([n] for an array, [] for a number, unless `dims`), made once per dtype, shape and values. */
  private constant(dtype: 'float32' | 'int64', values: number | number[], dims: number[] | undefined, typed: (arr: number[]) => TypedData): Value {
    const arr = Array.isArray(values) ? values : [values];
    const shape = dims ?? (Array.isArray(values) ? [arr.length] : []);
    const key = `${dtype}:${shape}:${arr.join(',')}`;
    let v = this.constCache.get(key);
    if (!v) {
      v = this.addInitializer(this.fresh(dtype === 'float32' ? 'const_f32' : 'const_i64'), dtype, shape, typed(arr));
      this.constCache.set(key, v);
    }
    return v;
  }

  /** Records one node; `outs` gives each output's dtype and shape (null if untracked). */
  node(op: string, inputs: (Value | null)[], outs: { dtype: DType; shape: readonly Dim[] | null; name?: string }[],
    attrs: Record<string, AttrValue> = {}, domain = ''): Value[] {
    const outputs = outs.map((o) => ({ name: o.name !== undefined ? this.claim(o.name) : this.fresh(op.toLowerCase()), dtype: o.dtype, shape: o.shape }));
    this.recorded.push({ op, domain, inputs, outputs, attrs });
    return [...outputs];
  }

  /** Runs `build`, which records nodes on this graph; returns its result and the region of nodes it recorded. */
  record<T>(build: () => T): { value: T; region: Region } {
    const start = this.recorded.length;
    const value = build();
    return { value, region: new RecordedRegion(this, start, this.recorded.length) };
  }

  /** The nodes of a region, in build order. */
  regionNodes(region: Region): readonly NodeRecord[] {
    this.own(region);
    return this.recorded.slice(region.start, region.end);
  }

  private own(region: Region): void {
    if (!(region instanceof RecordedRegion) || region.graph !== this) throw new Error(`graph ${this.name}: the region was not recorded by this graph`);
  }

  /**
   * Leaves `node` out of the serialised graph; its readers read `by` instead, which must be the same value
   * made earlier (e.g. a recomputed projection of the forward's own output). Autodiff still sees the node as
   * recorded, so this may come before or after differentiating through it.
   */
  reuse(node: NodeRecord, by: Value): void {
    const at = this.recorded.indexOf(node);
    if (at < 0) throw new Error(`graph ${this.name}: reuse of a node it did not record`);
    if (node.outputs.length !== 1 || node.outputs[0].dtype !== by.dtype) throw new Error(`reuse ${node.outputs[0]?.name}: needs one output of ${by.dtype}`);
    if (this.reused.has(node)) throw new Error(`reuse ${node.outputs[0].name}: already reused`);
    const maker = this.recorded.findIndex((n) => n.outputs.includes(by));
    if (maker >= at) throw new Error(`reuse ${node.outputs[0].name}: ${by.name} is made after it`);
    this.reused.set(node, by);
    this.reusedNames.set(node.outputs[0].name, by);
  }


  /** Every node as serialised (reused ones left out), those of If branches included. */
  allNodes(): NodeRecord[] {
    return [...this.recorded.filter((n) => !this.reused.has(n)), ...this.conditionals.flatMap((c) => c.elseNodes)];
  }

  /** Every node as serialised for this graph's target (lowering.ts rewrites applied), those in If branches included. */
  targetNodes(): NodeRecord[] {
    return this.allNodes().flatMap((n) => this.loweredNode(n));
  }

  /**
   * Serialises `region` as the then-branch of an If on `cond` (bool []) recorded now, so that its nodes run
   * only when it is true; `then` (values those nodes make) become the If's outputs, and when `cond` is false
   * each output is the matching `orElse` value instead. The region's nodes still read earlier values and
   * initializers by name (ONNX outer scope); values they make are seen outside only through `then`. A region
   * inside one that is already conditional cannot be made conditional after it (its If would fall outside).
   */
  conditional(region: Region, cond: Value, then: Value[], orElse: Value[]): Value[] {
    this.own(region);
    if (then.length !== orElse.length) throw new Error('conditional: then and else give different output counts');
    if (this.conditionals.some((c) => c.region.start <= region.start && region.end <= c.region.end)) {
      throw new Error('conditional: the region is already conditional, or inside a region that is');
    }
    const made = new Set(this.recorded.slice(region.start, region.end).flatMap((n) => n.outputs));
    if (then.some((v) => !made.has(v))) throw new Error('conditional: a then-output is not made in the region');
    // A branch output must be made inside the branch: the else values pass through Identity.
    const elseNodes: NodeRecord[] = [];
    const elseOuts = orElse.map((v) => {
      const o: Value = { name: this.fresh(`${v.name}_else`), dtype: v.dtype, shape: v.shape };
      elseNodes.push({ op: 'Identity', domain: '', inputs: [v], outputs: [o], attrs: {} });
      return o;
    });
    const outs = this.node('If', [cond], then.map((v) => ({ dtype: v.dtype, shape: v.shape })));
    this.conditionals.push({ region, ifNode: this.recorded[this.recorded.length - 1], then, elseNodes, elseOuts });
    return [...outs];
  }

  /**
   * The serialised node lists: the top level, and per If node its branches. A node belongs to the innermost
   * conditional region that holds it (regions nest: each is one `record` callback); reused nodes are left out.
   */
  private nodeTree(): { top: NodeRecord[]; branches: Map<NodeRecord, Record<'then_branch' | 'else_branch', { nodes: NodeRecord[]; outputs: Value[] }>> } {
    const branches = new Map<NodeRecord, Record<'then_branch' | 'else_branch', { nodes: NodeRecord[]; outputs: Value[] }>>();
    const byStart = [...this.conditionals].sort((a, b) => a.region.start - b.region.start || b.region.end - a.region.end);
    const top: NodeRecord[] = [];
    const open: { end: number; nodes: NodeRecord[] }[] = [];
    let next = 0;
    this.recorded.forEach((n, i) => {
      while (open.length && open[open.length - 1].end <= i) open.pop();
      while (next < byStart.length && byStart[next].region.start === i) {
        const c = byStart[next++];
        const body = { end: c.region.end, nodes: [] as NodeRecord[] };
        branches.set(c.ifNode, { then_branch: { nodes: body.nodes, outputs: c.then }, else_branch: { nodes: c.elseNodes, outputs: c.elseOuts } });
        if (c.region.end > c.region.start) open.push(body);
      }
      if (!this.reused.has(n)) (open.length ? open[open.length - 1].nodes : top).push(n);
    });
    return { top, branches };
  }

  /** Throws unless every node reads only values visible to it (graph inputs, initializers, earlier nodes of its own or an enclosing list). */
  private checkScopes(top: NodeRecord[], branches: ReturnType<Graph['nodeTree']>['branches']): void {
    const visit = (list: NodeRecord[], visible: Set<string>, where: string) => {
      for (const n of list) {
        for (const v of n.inputs) {
          if (v && !visible.has(this.resolve(v.name))) throw new Error(`graph ${this.name}: ${n.op} ${n.outputs[0]?.name} reads ${v.name}, which is not made before it ${where}`);
        }
        for (const b of Object.values(branches.get(n) ?? {})) {
          const inner = new Set(visible);
          visit(b.nodes, inner, 'in its branch');
          for (const o of b.outputs) if (!inner.has(this.resolve(o.name))) throw new Error(`graph ${this.name}: branch output ${o.name} is not made in its branch`);
        }
        for (const o of n.outputs) visible.add(this.resolve(o.name));
      }
    };
    const visible = new Set([...this.inputs.map((v) => v.name), ...this.initializers.map((i) => i.value.name)]);
    visit(top, visible, 'at the top level');
    for (const o of this.outputs) if (!visible.has(this.resolve(o.name))) throw new Error(`graph ${this.name}: output ${o.name} is not made at the top level`);
  }

  /**
   * Serialises the graph; initializers over INLINE_LIMIT bytes go out as external data: by default one
   * in-memory `externalData` entry per tensor; with `file`, as segments of one file at `align`-byte
   * offsets (so ORT can map them), which the caller writes next to the model.
   */
  build(file?: { name: string; align: number }): BuiltModel {
    const unfinished = this.blobs.find((b) => b.written !== b.byteLength);
    if (unfinished) throw new Error(`graph ${this.name}: a blob has ${unfinished.written} of its ${unfinished.byteLength} bytes written`);
    const tree = this.nodeTree();
    this.checkScopes(tree.top, tree.branches);
    // Rewrites first: they may add constants, which are serialised with the initializers below.
    const lower = (list: NodeRecord[]): NodeRecord[] => list.flatMap((n) => this.loweredNode(n));
    const nodeLists = new Map<NodeRecord[], NodeRecord[]>();
    const lowerAll = (list: NodeRecord[]) => {
      nodeLists.set(list, lower(list));
      for (const n of list) for (const b of Object.values(tree.branches.get(n) ?? {})) lowerAll(b.nodes);
    };
    lowerAll(tree.top);
    const externalData: ExternalBuffer[] = [];
    let offset = 0;
    const inits: TensorMsg[] = this.initializers.map(({ value, dims, data, external }, i) => {
      const t: TensorMsg = { name: value.name, dataType: ONNX_TYPE[value.dtype], dims };
      if (!data) {
        const len = dims.reduce((a, b) => a * b, 1) * bytesPer(value.dtype);
        t.external = { location: external!.location, offset: external!.offset, length: len };
      } else if (data.byteLength <= INLINE_LIMIT) {
        t.raw = data;
      } else if (file) {
        offset = Math.ceil(offset / file.align) * file.align;
        externalData.push({ path: file.name, data, offset });
        t.external = { location: file.name, offset, length: data.byteLength };
        offset += data.byteLength;
      } else {
        const path = `w${i}.bin`;
        externalData.push({ path, data });
        t.external = { location: path, offset: 0, length: data.byteLength };
      }
      return t;
    });
    const info = (v: Value): ValueInfoMsg => ({ name: v.name, dataType: ONNX_TYPE[v.dtype], shape: v.shape });
    const nodeMsgs = (list: NodeRecord[], prefix: string): NodeMsg[] => nodeLists.get(list)!.map((n, i) => {
      const attributes = { ...n.attrs };
      const br = tree.branches.get(n);
      if (br) {
        for (const [k, b] of Object.entries(br)) {
          const sub: SubgraphMsg = { name: `${prefix}${i}_${k}`, nodes: nodeMsgs(b.nodes, `${prefix}${i}_${k}_`), outputs: b.outputs.map((v) => info({ ...v, shape: null })) };
          attributes[k] = { kind: 'graph', value: sub };
        }
      }
      return {
        name: `${prefix}${i}_${n.op}`,
        opType: n.op,
        domain: n.domain,
        inputs: n.inputs.map((v) => (v ? this.resolve(v.name) : '')),
        outputs: n.outputs.map((v) => this.resolve(v.name)),
        attributes,
      };
    });
    const nodes = nodeMsgs(tree.top, 'n');
    const model = encodeModel({
      irVersion: 10,
      producer: 'gemma-tune',
      opsets: OPSETS,
      graphName: this.name,
      nodes,
      initializers: inits,
      inputs: this.inputs.map((v) => info(this.omitInputShapes ? { ...v, shape: null } : v)),
      outputs: this.outputs.map(info),
    });
    return { model, externalData };
  }

  /** `n` as serialised for this graph's target: itself, or its rewrite (lowering.ts). */
  private loweredNode(n: NodeRecord): NodeRecord[] {
    if (this.target === 'cpu') return [n];
    let out = this.lowered.get(n);
    if (!out) {
      const ctx: LoweringContext = {
        value: (prefix, dtype, shape) => ({ name: this.fresh(prefix), dtype, shape }),
        constF32: (v) => this.constF32(v),
        constI64: (v) => this.constI64(v),
      };
      out = lowerNode(n, this.target, ctx) ?? [n];
      this.lowered.set(n, out);
    }
    return out;
  }
}
