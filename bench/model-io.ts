// Model file I/O at the real 270M shape: write a random Q4_0 GGUF (Q8_0 embedding, as Google's QAT file),
// then load it with precision q4 in a fresh process, and print write time, file size, load time, the bytes
// held in memory and each step's peak RSS.
//
//   node --import tsx bench/model-io.ts [--out FILE] [--embedding q8_0|q4_0] [--keep]

import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { GEMMA3_270M } from '../src/engine/model/config';
import { loadModel } from '../src/engine/model/load';
import { writeRandomGguf } from '../src/engine/model/randomModel';

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

const peakMb = () => Math.round(process.resourceUsage().maxRSS / 1024);

function child(step: 'write' | 'load', file: string, embedding: string): Record<string, number> {
  const r = spawnSync(process.execPath, ['--import', 'tsx', __filename, '--step', step, '--out', file, '--embedding', embedding], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${step} failed: ${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').pop()!);
}

const step = arg('step');
const file = arg('out') ?? path.join(os.tmpdir(), 'gemma3-270m-random-q4_0.gguf');
const embedding = (arg('embedding') ?? 'q8_0') as 'q8_0' | 'q4_0';

if (step === 'write') {
  const t0 = performance.now();
  writeRandomGguf(file, GEMMA3_270M, { seed: 1, dtype: 'q4_0', embedding });
  console.log(JSON.stringify({ write_s: (performance.now() - t0) / 1000, peak_rss_mb: peakMb() }));
} else if (step === 'load') {
  const t0 = performance.now();
  const m = loadModel(file, { precision: 'q4' });
  const load_s = (performance.now() - t0) / 1000;
  let bytes = 0;
  for (const w of m.weights.weights.values()) bytes += w.value.data.byteLength;
  console.log(JSON.stringify({ load_s, weights_mb: bytes / 2 ** 20, peak_rss_mb: peakMb() }));
} else {
  const w = child('write', file, embedding);
  const size = fs.statSync(file).size;
  const l = child('load', file, embedding);
  console.log(`270M shape, Q4_0 linear + ${embedding.toUpperCase()} embedding → ${file}`);
  console.log(`write: ${w.write_s.toFixed(2)} s, file ${(size / 2 ** 20).toFixed(1)} MiB, peak RSS ${w.peak_rss_mb} MB`);
  console.log(`load (q4): ${l.load_s.toFixed(2)} s, weights held ${l.weights_mb.toFixed(1)} MiB, peak RSS ${l.peak_rss_mb} MB`);
  if (!process.argv.includes('--keep')) fs.rmSync(file, { force: true });
}
