// Reading ORT's per-kernel profile (SessionOptions.enableProfiling; our SessionConfig.profilePrefix) for the
// benchmarks: kernel time by op type and by (op, input shapes), per run, over a range of model_run events.
// Profiling adds ~10 µs to every kernel, so absolute times of small kernels are inflated; shares of the
// large ones (MatMulNBits, attention) are what to read.

import * as fs from 'node:fs';
import * as path from 'node:path';

interface ThreadStats { main_thread?: { block_size?: number[]; Wait?: number; Distribution?: number } }
interface ProfileEvent { cat?: string; name: string; ts: number; dur: number; args?: { op_name?: string; provider?: string; input_type_shape?: Record<string, number[]>[]; thread_scheduling_stats?: ThreadStats } }

/** The profile ORT wrote into `dir` (the folder of a profilePrefix), or null when there is none. */
export function profileIn(dir: string): string | null {
  return fs.readdirSync(dir).map((f) => path.join(dir, f)).find((f) => f.endsWith('.json')) ?? null;
}

/** Kernel time per run of model_run events first…last (default: only `first`), by op and by (op, input shapes). */
export function summariseProfile(file: string, first: number, last = first): string[] {
  const events = JSON.parse(fs.readFileSync(file, 'utf8')) as ProfileEvent[];
  const runs = events.filter((e) => e.cat === 'Session' && e.name === 'model_run').slice(first, last + 1);
  if (runs.length === 0) return ['profile: no model_run recorded'];
  const byOp = new Map<string, number>(), byShape = new Map<string, { us: number; n: number }>();
  let kernels = 0;
  const inRun = (ts: number) => runs.some((r) => ts >= r.ts && ts <= r.ts + r.dur);
  for (const e of events) {
    const op = e.args?.op_name;
    // An If's time contains its branches' kernels, which are listed too.
    if (e.cat !== 'Node' || !e.name.endsWith('_kernel_time') || !op || op === 'If' || !inRun(e.ts)) continue;
    kernels++;
    byOp.set(op, (byOp.get(op) ?? 0) + e.dur);
    const key = `${op} ${JSON.stringify((e.args?.input_type_shape ?? []).map((s) => Object.values(s)[0]))}`;
    const s = byShape.get(key) ?? { us: 0, n: 0 };
    s.us += e.dur;
    s.n++;
    byShape.set(key, s);
  }
  const n = runs.length;
  const ms = (us: number) => `${(us / n / 1000).toFixed(2).padStart(8)} ms`;
  const total = [...byOp.values()].reduce((a, b) => a + b, 0);
  const runUs = runs.reduce((a, r) => a + r.dur, 0);
  const what = n === 1 ? `run ${first}` : `runs ${first}…${last}, per run`;
  const lines = [`profile of ${what}: ${Math.round(kernels / n)} kernels, ${ms(total).trim()} of kernel time in a ${ms(runUs).trim()} run`];
  for (const [op, us] of [...byOp].sort((a, b) => b[1] - a[1]).slice(0, 12)) lines.push(`  ${op.padEnd(34)} ${ms(us)}  ${((100 * us) / total).toFixed(1)}%`);
  lines.push('by op and input shapes:');
  for (const [k, s] of [...byShape].sort((a, b) => b[1].us - a[1].us).slice(0, 20)) lines.push(`  ${ms(s.us)}  ×${String(Math.round(s.n / n)).padStart(3)}  ${k.slice(0, 130)}`);
  return lines;
}

/**
 * Where the kernels of model_run events first…last ran: per execution provider the kernel count, the ops
 * that ran on the CPU beside a GPU provider (with their input types, which usually say why: int64 shape
 * arithmetic), and the host⇄device copies ORT inserted between the two.
 */
export function placementSummary(file: string, first: number, last = first): string[] {
  const events = JSON.parse(fs.readFileSync(file, 'utf8')) as ProfileEvent[];
  const runs = events.filter((e) => e.cat === 'Session' && e.name === 'model_run').slice(first, last + 1);
  if (runs.length === 0) return ['placement: no model_run recorded'];
  const inRun = (ts: number) => runs.some((r) => ts >= r.ts && ts <= r.ts + r.dur);
  const perProvider = new Map<string, number>();
  const onCpu = new Map<string, { n: number; us: number }>();
  let copies = 0, copyUs = 0;
  for (const e of events) {
    if (e.cat !== 'Node' || !e.name.endsWith('_kernel_time') || !inRun(e.ts)) continue;
    const provider = (e.args?.provider ?? '?').replace('ExecutionProvider', '');
    const op = e.args?.op_name ?? e.name.replace(/_kernel_time$/, '');
    if (op === 'If') continue;
    perProvider.set(provider, (perProvider.get(provider) ?? 0) + 1);
    if (e.name.startsWith('Memcpy')) {
      copies++;
      copyUs += e.dur;
    } else if (provider === 'CPU') {
      const types = [...new Set((e.args?.input_type_shape ?? []).map((s) => Object.keys(s)[0]))].join(',');
      const key = `${op}(${types})`;
      const c = onCpu.get(key) ?? { n: 0, us: 0 };
      c.n++;
      c.us += e.dur;
      onCpu.set(key, c);
    }
  }
  const n = runs.length;
  const lines = [`kernels per run by provider: ${[...perProvider].map(([p, k]) => `${p} ${Math.round(k / n)}`).join(', ')}; host⇄device copies ${Math.round(copies / n)} (${(copyUs / n / 1000).toFixed(2)} ms)`];
  if (perProvider.size > 1 || !perProvider.has('CPU')) {
    const list = [...onCpu].sort((a, b) => b[1].n - a[1].n).map(([k, c]) => `${k}×${Math.round(c.n / n)}`);
    lines.push(`  on the CPU: ${list.length ? list.join(' ') : 'nothing'}`);
  }
  return lines;
}

/**
 * What kept the second core idle in model_run events first…last (per run): kernels that ran on the calling
 * thread alone (no parallel section in ORT's thread_scheduling_stats), by op; parallel kernels and the
 * calling thread's wait for the pool inside them; and the time between kernels (the executor's own work).
 */
export function threadSummary(file: string, first: number, last = first): string[] {
  const events = JSON.parse(fs.readFileSync(file, 'utf8')) as ProfileEvent[];
  const runs = events.filter((e) => e.cat === 'Session' && e.name === 'model_run').slice(first, last + 1);
  if (runs.length === 0) return ['threads: no model_run recorded'];
  const lines: string[] = [];
  let single = 0, parallel = 0, wait = 0, gaps = 0, kernels = 0;
  const singleByOp = new Map<string, { us: number; n: number }>();
  for (const r of runs) {
    const inRun = events.filter((e) => e.cat === 'Node' && e.name.endsWith('_kernel_time') && e.args?.op_name !== 'If' && e.ts >= r.ts && e.ts <= r.ts + r.dur).sort((a, b) => a.ts - b.ts);
    let end = r.ts;
    for (const e of inRun) {
      kernels++;
      if (e.ts > end) gaps += e.ts - end;
      end = Math.max(end, e.ts + e.dur);
      const main = e.args?.thread_scheduling_stats?.main_thread;
      if (main?.block_size?.length) {
        parallel += e.dur;
        wait += main.Wait ?? 0;
      } else {
        single += e.dur;
        const op = e.args?.op_name ?? '?';
        const s = singleByOp.get(op) ?? { us: 0, n: 0 };
        s.us += e.dur;
        s.n++;
        singleByOp.set(op, s);
      }
    }
    gaps += Math.max(0, r.ts + r.dur - end);
  }
  const n = runs.length;
  const ms = (us: number) => `${(us / n / 1000).toFixed(1)} ms`;
  const runUs = runs.reduce((a, r) => a + r.dur, 0);
  lines.push(`threads, per run of ${ms(runUs)} (${Math.round(kernels / n)} kernels): single-threaded kernels ${ms(single)}, between kernels ${ms(gaps)}, parallel kernels ${ms(parallel)} (of which the calling thread waited ${ms(wait)} for the pool)`);
  lines.push('single-threaded kernels by op:');
  for (const [op, s] of [...singleByOp].sort((a, b) => b[1].us - a[1].us).slice(0, 10)) lines.push(`  ${op.padEnd(34)} ${ms(s.us).padStart(10)}  ×${Math.round(s.n / n)}`);
  return lines;
}
