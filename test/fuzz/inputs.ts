// How each fuzz target's inputs are made (in the parent process): a seed from the corpus, mutated by an
// Rng seeded from (run seed, target, index), written into the input's own folder. The child process
// (runners.ts) reads that folder; a crashing input's folder is kept as the reproduction.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { Rng } from '../../src/engine/rng';
import { readGguf, readGgufTensor } from '../../src/engine/model/gguf';
import { GgufType, type GgufValue } from '../../src/engine/model/ggufFormat';
import { writeGguf } from '../../src/engine/model/ggufWriter';
import type { Corpus } from './corpus';
import { TASK_ID } from './corpus';
import { jsonText, mutateBytes, mutateJson, pick } from './mutate';

export const TARGETS = ['gguf', 'safetensors', 'config', 'tokenizer', 'adapter', 'checkpoint', 'examples', 'task', 'webview', 'engine', 'client'] as const;
export type Target = (typeof TARGETS)[number];

/** What a runner is told besides the folder: which variant of the seed the input came from. */
export interface InputInfo {
  precision?: 'q4' | 'f32';
  direction?: 'toHost' | 'toWebview';
}

/** The generator of input `index` of `target` in a run with `seed` (the same numbers give the same input). */
export function inputRng(seed: number, target: Target, index: number): Rng {
  let h = 0x811c9dc5 ^ seed;
  for (const c of `${target}#${index}`) h = Math.imul(h ^ c.charCodeAt(0), 0x01000193);
  return new Rng(h >>> 0);
}

/** The 8-byte length and the JSON header of a safetensors file's bytes. */
function safetensorsHeader(bytes: Buffer): { header: Record<string, unknown>; rest: Buffer } {
  const n = Number(bytes.readBigUInt64LE(0));
  return { header: JSON.parse(bytes.subarray(8, 8 + n).toString('utf8')), rest: bytes.subarray(8 + n) };
}

function withHeader(header: unknown, rest: Buffer): Buffer {
  const h = Buffer.from(JSON.stringify(header) ?? '');
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(h.length));
  return Buffer.concat([len, h, rest]);
}

/** Mutates a safetensors file: its bytes (the header half of the time), or its header as JSON. */
function mutateSafetensors(bytes: Buffer, rng: Rng): Uint8Array {
  if (rng.next() < 0.7) return mutateBytes(bytes, rng, 8 + Number(bytes.readBigUInt64LE(0)));
  const { header, rest } = safetensorsHeader(bytes);
  const meta = header.__metadata__ as Record<string, string> | undefined;
  // The run metadata of a checkpoint is JSON inside a JSON string: mutate it as JSON too.
  if (meta?.run !== undefined && rng.next() < 0.5) {
    meta.run = rng.next() < 0.8 ? JSON.stringify(mutateJson(JSON.parse(meta.run), rng)) : jsonText(JSON.parse(meta.run), rng);
    return withHeader(header, rest);
  }
  return withHeader(mutateJson(header, rng), rest);
}

/** Numbers for a GGUF metadata value of `type`, at the edges of what each field may hold. */
function ggufNumber(type: number, rng: Rng): number | bigint {
  if (type === GgufType.FLOAT32 || type === GgufType.FLOAT64) return pick(rng, [NaN, Infinity, -Infinity, 0, -1, 1e30, 1e-30]);
  if (type === GgufType.UINT64 || type === GgufType.INT64) return pick(rng, [0n, 1n, 1000000000n, 1n << 40n, 1n << 62n]);
  const max = { 0: 0xff, 1: 0x7f, 2: 0xffff, 3: 0x7fff, 4: 0xffffffff, 5: 0x7fffffff }[type] ?? 0xff;
  return Math.min(max, pick(rng, [0, 1, 2, 3, 7, 63, 64, 257, 4096, 70000, 1e9, 0xffffffff]));
}

/**
 * A well-formed GGUF with one metadata value or tensor name changed (a size set to 1e9, a float to NaN,
 * a string given escape bytes, an array cut or grown, a key removed or added): reaches the checks that
 * come after the file parses, which random bytes rarely do.
 */
function mutateGgufStructure(src: string, rng: Rng, out: string): void {
  const g = readGguf(src);
  const meta: [string, GgufValue][] = [...g.metadata];
  const tensors = [...g.tensors.values()].map((t) => ({ name: t.name, ne: t.ne, dtype: t.dtype, data: () => [readGgufTensor(g, t.name)] }));
  const i = rng.int(meta.length);
  const [key, v] = meta[i];
  switch (rng.int(6)) {
    case 0:
      meta.splice(i, 1);
      break;
    case 1:
      meta.push([`${pick(rng, ['gemma3.', 'tokenizer.ggml.', 'x\x1b[2J'])}${key.split('.').pop()}`, { type: GgufType.UINT32, value: ggufNumber(GgufType.UINT32, rng) as number }]);
      break;
    case 2: {
      const t = tensors[rng.int(tensors.length)];
      t.name = pick(rng, [`${t.name}\x1b[2J`, tensors[0].name, t.name.replace('blk.0', 'blk.9'), '']);
      break;
    }
    default:
      if (v.type === GgufType.STRING) meta[i] = [key, { type: v.type, value: pick(rng, ['', `${v.value}\x1b[2J`, '\u202e' + v.value, 'x'.repeat(70000), 'llama']) }];
      else if (v.type === GgufType.BOOL) meta[i] = [key, { type: v.type, value: !v.value }];
      else if (v.type === GgufType.ARRAY) {
        const items = v.value.items as unknown as ArrayLike<unknown> & { slice(a: number, b?: number): unknown };
        const cut = rng.int(items.length + 1);
        meta[i] = [key, { type: v.type, value: { elemType: v.value.elemType, items: items.slice(0, cut) as typeof v.value.items } }];
      } else meta[i] = [key, { type: v.type, value: ggufNumber(v.type, rng) } as GgufValue];
  }
  writeGguf(out, meta, tensors);
}

/** Writes input `index` of `target` into `dir` (created empty) and returns what the runner needs to know. */
export function makeInput(c: Corpus, target: Target, rng: Rng, dir: string): InputInfo {
  fs.mkdirSync(dir, { recursive: true });
  const write = (name: string, data: string | Uint8Array) => fs.writeFileSync(path.join(dir, name), data);
  switch (target) {
    case 'gguf': {
      const src = rng.next() < 0.7 ? c.ggufQ4 : c.ggufF32;
      let structured = rng.next() < 0.4;
      if (structured) {
        try {
          mutateGgufStructure(src, rng, path.join(dir, 'model.gguf'));
        } catch {
          structured = false; // a change the writer itself refuses (an alignment that is not used)
        }
      }
      if (!structured) write('model.gguf', mutateBytes(fs.readFileSync(src), rng, c.headerBytes[src]));
      return { precision: rng.next() < 0.7 ? 'q4' : 'f32' };
    }
    case 'safetensors': {
      const src = rng.next() < 0.5 ? c.hfF32 : c.hfBf16;
      fs.cpSync(src, dir, { recursive: true });
      write('model.safetensors', mutateSafetensors(fs.readFileSync(path.join(src, 'model.safetensors')), rng));
      return { precision: rng.next() < 0.7 ? 'q4' : 'f32' };
    }
    case 'config': {
      fs.cpSync(c.hfF32, dir, { recursive: true });
      write('config.json', jsonText(mutateJson(JSON.parse(fs.readFileSync(path.join(c.hfF32, 'config.json'), 'utf8')), rng), rng));
      return { precision: 'q4' };
    }
    case 'tokenizer': {
      const text = fs.readFileSync(path.join(c.hfF32, 'tokenizer.json'), 'utf8');
      write('tokenizer.json', rng.next() < 0.7 ? jsonText(mutateJson(JSON.parse(text), rng), rng) : mutateBytes(Buffer.from(text), rng));
      return {};
    }
    case 'adapter': {
      fs.cpSync(c.adapter, dir, { recursive: true });
      if (rng.next() < 0.6) write('adapter_model.safetensors', mutateSafetensors(fs.readFileSync(path.join(c.adapter, 'adapter_model.safetensors')), rng));
      else write('adapter_config.json', jsonText(mutateJson(JSON.parse(fs.readFileSync(path.join(c.adapter, 'adapter_config.json'), 'utf8')), rng), rng));
      return {};
    }
    case 'checkpoint':
      write('trainer_state.safetensors', mutateSafetensors(fs.readFileSync(c.checkpoint), rng));
      return {};
    case 'examples': {
      const mutateLines = (text: string) => {
        if (rng.next() < 0.3) return mutateBytes(Buffer.from(text), rng);
        const lines = text.split('\n');
        const i = rng.int(lines.length - 1);
        lines[i] = jsonText(mutateJson(JSON.parse(lines[i]), rng), rng);
        return lines.join('\n');
      };
      write('examples.jsonl', mutateLines(c.examplesJsonl));
      write('train.jsonl', mutateLines(c.trainJsonl));
      return {};
    }
    case 'task': {
      const taskDir = path.join(dir, 'tasks', TASK_ID);
      fs.mkdirSync(taskDir, { recursive: true });
      fs.writeFileSync(path.join(taskDir, 'task.json'), rng.next() < 0.8 ? jsonText(mutateJson(c.taskJson, rng), rng) : mutateBytes(Buffer.from(JSON.stringify(c.taskJson)), rng));
      fs.writeFileSync(path.join(taskDir, 'examples.jsonl'), c.examplesJsonl);
      return {};
    }
    case 'webview': {
      const toHost = rng.next() < 0.6;
      const seed = toHost ? pick(rng, c.webviewMessages) : pick(rng, c.hostMessages);
      write('message.json', JSON.stringify(mutateJson(seed, rng)) ?? 'null');
      return { direction: toHost ? 'toHost' : 'toWebview' };
    }
    case 'engine': {
      const m = mutateJson(pick(rng, c.engineMessages), rng, { pathKeys: ['path', 'outDir'], paths: c.sandboxPaths });
      write('message.json', JSON.stringify(m) ?? 'null');
      return {};
    }
    case 'client': {
      // Through EngineClient as the extension calls it: a request with mutated params, or a mutated
      // adapter folder loaded and then used by a classify.
      let requests: { method: string; params: unknown }[];
      if (rng.next() < 0.5) {
        const seed = pick(rng, c.engineMessages.filter((m) => (m as { kind: string }).kind === 'request')) as { method: string; params: unknown };
        requests = [{ method: seed.method, params: mutateJson(seed.params, rng, { pathKeys: ['path', 'outDir'], paths: c.sandboxPaths }) }];
      } else {
        const adapter = path.join(dir, 'adapter');
        makeInput(c, 'adapter', rng, adapter);
        requests = [
          { method: 'loadAdapter', params: { name: 'fuzzed', path: adapter } },
          { method: 'classify', params: { messages: [{ role: 'user', content: 'Bug or feature? It crashes.' }], labels: ['bug', 'feature'], adapter: 'fuzzed' } },
        ];
      }
      write('requests.json', JSON.stringify(requests));
      return {};
    }
  }
}
