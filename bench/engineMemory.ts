// The engine process's peak resident memory on a model, as the extension runs it: dist/worker.js forked by
// EngineClient with the host's memory settings (engineMemory.ts) and a converted-model cache, a load (the
// first one fills the cache, as a user's first load does, and is not counted), then a classify of a
// 100-token input three times and 64 generated tokens after a 64-token prompt; then the process's peak
// (VmHWM) from /proc. Each variant of the engine's V8 young generation runs ROUNDS times, alternating, in
// fresh processes, so the ratio is measured side by side.
//   node --import tsx bench/engineMemory.ts --model FILE.gguf [--rounds 3] [--threads 2] [--semi 1,default] [--maps]
// Make the model with: node dist/cli.js make-model --config 270m --format gguf --dtype q4_0 --seed 1
//   --out bench/out/270m-q4.gguf   (--embedding q4_0 for an all-Q4_0 file)

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { EngineClient } from '../src/client/engineClient';
import { buildWorker } from '../test/unit/worker-helpers';
import { flag, has } from './flags';
import { mapsSummary, residentMB } from './procMemory';

/** One fresh engine on the model: its peak resident MB and the work's wall time. */
async function run(workerPath: string, model: string, cache: string, threads: number, semiSpaceMB: number | null): Promise<{ peakMB: number; loadS: number; workS: number }> {
  const engine = new EngineClient({ workerPath, threads, weightCache: cache, memory: { semiSpaceMB } });
  try {
    const { pid } = await engine.request('status', {});
    const t0 = performance.now();
    await engine.request('loadModel', { path: model, precision: 'q4', threads });
    const loadS = (performance.now() - t0) / 1000;
    const maps = (what: string) => {
      if (has('maps')) console.log(`  engine (semi-space ${semiSpaceMB ?? 'V8 default'}) after ${what}: ${residentMB(pid).now} MB: ${mapsSummary(pid)}`);
    };
    maps('the load');
    const t1 = performance.now();
    const text = Array.from({ length: 100 }, (_, i) => `word${i}`).join(' ');
    for (let i = 0; i < 3; i++) await engine.request('classify', { text, labels: ['positive', 'negative', 'neutral', 'mixed'] });
    maps('classify');
    await engine.request('generate', { text: Array.from({ length: 64 }, (_, i) => `w${i}`).join(' '), maxTokens: 64 });
    const workS = (performance.now() - t1) / 1000;
    maps('generate');
    return { peakMB: residentMB(pid).peak, loadS, workS };
  } finally {
    await engine.dispose();
  }
}

async function main(): Promise<void> {
  // The engine runs in the temporary folder: the path it gets must be absolute.
  const given = flag('model', '');
  if (!given) throw new Error('--model FILE.gguf is required (see the header for how to make one)');
  const model = path.resolve(given);
  const rounds = Number(flag('rounds', '3'));
  const threads = Number(flag('threads', '2'));
  const variants = flag('semi', '1,default').split(',').map((v) => (v === 'default' ? null : Number(v)));
  const workerPath = await buildWorker('bench-engine-memory');
  const cache = fs.mkdtempSync(path.join(os.tmpdir(), 'gemma-engine-memory-'));
  try {
    await run(workerPath, model, cache, threads, variants[0]); // fills the cache
    const results = new Map(variants.map((v) => [v, [] as Awaited<ReturnType<typeof run>>[]]));
    for (let r = 0; r < rounds; r++) {
      for (const v of variants) {
        const res = await run(workerPath, model, cache, threads, v);
        results.get(v)!.push(res);
        console.log(`round ${r + 1} semi-space ${v ?? 'V8 default'}: peak ${res.peakMB} MB, load ${res.loadS.toFixed(2)} s, classify ×3 + 64 tokens ${res.workS.toFixed(2)} s`);
      }
    }
    const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
    const summary = variants.map((v) => {
      const rs = results.get(v)!;
      return { semiSpaceMB: v ?? 'default', peakMB: median(rs.map((x) => x.peakMB)), workS: median(rs.map((x) => x.workS)), loadS: median(rs.map((x) => x.loadS)) };
    });
    for (const s of summary.slice(1)) {
      console.log(`semi-space ${summary[0].semiSpaceMB} against ${s.semiSpaceMB}: peak ${(summary[0].peakMB / s.peakMB).toFixed(3)}×, work time ${(summary[0].workS / s.workS).toFixed(3)}×`);
    }
    console.log(JSON.stringify({ model: path.basename(model), threads, rounds, summary, loadavg: os.loadavg()[0] }));
  } finally {
    fs.rmSync(cache, { recursive: true, force: true });
  }
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
