// `npm run fuzz`: mutates GGUF and safetensors models, config.json, tokenizer.json, PEFT adapters, trainer
// checkpoints, examples.jsonl, task.json, webview messages and engine requests, and runs each input through
// the real loaders, checks and engine in a child process (so a native crash, a V8 fatal error or an
// out-of-memory kill is counted, not fatal: the child is started again). Each input has a time limit
// (past it: a hang) and the child a memory bound (past it: rss). Seeded: input i of a target is the same
// in every run with the same --seed, and `--replay target:i` runs it alone.
//
//   npm run fuzz -- [--seed N] [--duration S] [--count N] [--targets gguf,engine,…] [--jobs N]
//                   [--timeout S] [--rss-mb N] [--out DIR] [--replay target:index] [--quiet]
//
// Prints a table of outcomes per target and exits 1 on any crash, hang, silent wrong answer, control
// character in a message, or memory past the bound.

import { fork, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { writeCorpus, type Corpus } from './corpus';
import type { ResultMessage, RunMessage } from './child';
import { inputRng, makeInput, TARGETS, type Target } from './inputs';
import { buildWorker } from '../unit/worker-helpers';

const OUTCOMES = ['error', 'ran', 'unclear', 'silent', 'control', 'crash', 'hang', 'rss'] as const;
type Outcome = (typeof OUTCOMES)[number];
/** Outcomes that fail the run. */
const FAILING: readonly Outcome[] = ['silent', 'control', 'crash', 'hang', 'rss'];
const HEADINGS: Record<Outcome, string> = { error: 'clear error', ran: 'ran', unclear: 'unclear', silent: 'silent', control: 'control', crash: 'crash', hang: 'hang', rss: 'rss' };

interface Options {
  seed: number;
  durationS: number;
  count: number;
  targets: Target[];
  jobs: number;
  timeoutS: number;
  rssMB: number;
  out: string;
  replay: { target: Target; index: number } | null;
  quiet: boolean;
}

function parseOptions(argv: string[]): Options {
  const value = (name: string): string | undefined => {
    const i = argv.indexOf(`--${name}`);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  const int = (name: string, fallback: number): number => {
    const v = value(name);
    if (v === undefined) return fallback;
    const n = Number(v);
    if (!Number.isInteger(n) || n < 0) throw new Error(`--${name} must be an integer ≥ 0, got ${v}`);
    return n;
  };
  const targets = (value('targets')?.split(',') ?? [...TARGETS]) as Target[];
  for (const t of targets) if (!TARGETS.includes(t)) throw new Error(`unknown target ${t} (known: ${TARGETS.join(', ')})`);
  let replay: Options['replay'] = null;
  const r = value('replay');
  if (r !== undefined) {
    const [t, i] = r.split(':');
    if (!TARGETS.includes(t as Target) || !/^\d+$/.test(i ?? '')) throw new Error(`--replay takes target:index, got ${r}`);
    replay = { target: t as Target, index: Number(i) };
  }
  const count = int('count', 0);
  return {
    seed: int('seed', 1),
    durationS: int('duration', count > 0 ? 0 : 60),
    count,
    targets,
    jobs: Math.max(1, int('jobs', 1)),
    timeoutS: int('timeout', 60),
    rssMB: int('rss-mb', 1536),
    out: value('out') ?? path.join(process.cwd(), 'artifacts', 'fuzz'),
    replay,
    quiet: argv.includes('--quiet'),
  };
}

/** Resident memory in MiB of a process and its descendants (an engine EngineClient forked), on Linux; 0 where /proc is not there. */
function rssOf(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    let mb = m ? Number(m[1]) / 1024 : 0;
    for (const tid of fs.readdirSync(`/proc/${pid}/task`)) {
      for (const child of fs.readFileSync(`/proc/${pid}/task/${tid}/children`, 'utf8').split(' ').filter(Boolean)) mb += rssOf(Number(child));
    }
    return mb;
  } catch {
    return 0;
  }
}

interface Verdict {
  outcome: Outcome;
  detail: string;
}

/** One child process, restarted after every crash, hang or memory overrun. */
class Child {
  private proc: ChildProcess | null = null;
  private ready: Promise<void> | null = null;
  private stderr = '';

  constructor(private readonly corpus: Corpus, private readonly workerPath: string, private readonly o: Options) {}

  private start(): Promise<void> {
    this.stderr = '';
    const proc = fork(path.join(__dirname, 'child.ts'), [this.corpus.ggufQ4, this.workerPath], {
      // The V8 heap bound makes a runaway allocation end here as a crash, before it can take the machine.
      execArgv: ['--import', 'tsx', `--max-old-space-size=${Math.max(256, Math.floor(this.o.rssMB * 0.75))}`],
      stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
    });
    proc.stderr!.on('data', (d: Buffer) => {
      this.stderr = (this.stderr + d.toString('utf8')).slice(-4000);
    });
    this.proc = proc;
    return new Promise((resolve, reject) => {
      proc.once('message', () => resolve());
      proc.once('exit', (code, signal) => reject(new Error(`the fuzz child exited before it was ready (${signal ?? code}): ${this.stderr.trim().slice(-500)}`)));
    });
  }

  /** Runs one input, starting the child first when needed. */
  async run(msg: RunMessage): Promise<Verdict & { rssMB: number }> {
    this.ready ??= this.start();
    await this.ready;
    const proc = this.proc!;
    return new Promise((resolve) => {
      let peak = 0;
      const finish = (v: Verdict & { rssMB: number }, kill: boolean) => {
        clearTimeout(timer);
        clearInterval(poll);
        proc.removeAllListeners('message');
        proc.removeAllListeners('exit');
        if (kill) {
          proc.kill('SIGKILL');
          this.proc = null;
          this.ready = null;
        }
        resolve(v);
      };
      const timer = setTimeout(() => finish({ outcome: 'hang', detail: `no answer in ${this.o.timeoutS} s`, rssMB: peak }, true), this.o.timeoutS * 1000);
      const poll = setInterval(() => {
        peak = Math.max(peak, rssOf(proc.pid!));
        if (peak > this.o.rssMB) finish({ outcome: 'rss', detail: `resident memory reached ${Math.round(peak)} MiB (bound ${this.o.rssMB})`, rssMB: peak }, true);
      }, 50);
      proc.once('message', (m: ResultMessage) => {
        const rss = Math.max(peak, m.rssMB);
        if (rss > this.o.rssMB) finish({ outcome: 'rss', detail: `resident memory reached ${rss} MiB (bound ${this.o.rssMB})`, rssMB: rss }, true);
        else finish({ outcome: m.outcome as Outcome, detail: m.detail, rssMB: rss }, false);
      });
      proc.once('exit', (code, signal) => {
        this.proc = null;
        this.ready = null;
        const last = this.stderr.trim().split('\n').filter((l) => /FATAL|Error|error|abort|Abort/.test(l)).slice(-2).join(' | ');
        finish({ outcome: 'crash', detail: `the child died (${signal ?? `exit ${code}`})${last ? `: ${last.slice(0, 300)}` : ''}`, rssMB: peak }, false);
      });
      proc.send(msg);
    });
  }

  stop(): void {
    this.proc?.kill('SIGKILL');
  }
}

interface Tally {
  counts: Record<Outcome, number>;
  /** The first few inputs of each outcome other than clear errors and runs, with their details. */
  notes: string[];
}

function table(tallies: Map<Target, Tally>): string {
  const cols: Outcome[] = [...OUTCOMES];
  const head = ['target', 'inputs', ...cols.map((c) => HEADINGS[c])];
  const rows: string[][] = [];
  const total = Object.fromEntries(cols.map((c) => [c, 0])) as Record<Outcome, number>;
  for (const [target, t] of tallies) {
    const n = cols.reduce((s, c) => s + t.counts[c], 0);
    rows.push([target, String(n), ...cols.map((c) => String(t.counts[c]))]);
    for (const c of cols) total[c] += t.counts[c];
  }
  rows.push(['total', String(cols.reduce((s, c) => s + total[c], 0)), ...cols.map((c) => String(total[c]))]);
  const width = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (r: string[]) => r.map((x, i) => (i === 0 ? x.padEnd(width[i]) : x.padStart(width[i]))).join('  ');
  return [line(head), ...rows.map(line)].join('\n');
}

async function main(): Promise<number> {
  const o = parseOptions(process.argv.slice(2));
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'gemma-fuzz-'));
  const t0 = performance.now();
  const log = (s: string) => {
    if (!o.quiet) process.stderr.write(`${s}\n`);
  };
  const children: Child[] = [];
  try {
    const corpus = writeCorpus(path.join(tmp, 'corpus'));
    const targets = o.replay ? [o.replay.target] : o.targets;
    const tallies = new Map(targets.map((t) => [t, { counts: Object.fromEntries(OUTCOMES.map((c) => [c, 0])) as Record<Outcome, number>, notes: [] } as Tally]));
    let next = 0;
    let peakRss = 0;
    const deadline = o.durationS > 0 ? t0 + o.durationS * 1000 : Infinity;
    const take = (): { target: Target; index: number } | null => {
      if (o.replay) return next++ === 0 ? o.replay : null;
      if ((o.count > 0 && next >= o.count) || performance.now() >= deadline) return null;
      const i = next++;
      return { target: targets[i % targets.length], index: Math.floor(i / targets.length) };
    };
    let lastReport = performance.now();
    const worker = async (child: Child) => {
      for (let job = take(); job; job = take()) {
        const dir = path.join(tmp, 'inputs', `${job.target}-${job.index}`);
        const info = makeInput(corpus, job.target, inputRng(o.seed, job.target, job.index), dir);
        const v = await child.run({ kind: 'run', target: job.target, dir, info });
        peakRss = Math.max(peakRss, v.rssMB);
        const t = tallies.get(job.target)!;
        t.counts[v.outcome] += 1;
        if (v.outcome !== 'error' && v.outcome !== 'ran') {
          const kept = FAILING.includes(v.outcome) ? path.join(o.out, `seed${o.seed}-${job.target}-${job.index}`) : null;
          if (kept) {
            fs.rmSync(kept, { recursive: true, force: true });
            fs.cpSync(dir, kept, { recursive: true });
          }
          if (t.notes.length < 5 || FAILING.includes(v.outcome)) {
            t.notes.push(`${job.target}:${job.index} ${v.outcome}: ${v.detail}${kept ? `\n    input kept in ${kept}; replay: npm run fuzz -- --seed ${o.seed} --replay ${job.target}:${job.index}` : ''}`);
          }
        }
        if (o.replay) log(`${job.target}:${job.index} ${v.outcome}${v.detail ? `: ${v.detail}` : ''}`);
        fs.rmSync(dir, { recursive: true, force: true });
        if (performance.now() - lastReport > 15_000) {
          lastReport = performance.now();
          log(`[fuzz] ${((performance.now() - t0) / 1000).toFixed(0)} s, ${next} inputs`);
        }
      }
    };
    // The engine bundle as the extension ships it, for the client target.
    const workerPath = targets.includes('client') ? await buildWorker('fuzz') : '';
    for (let j = 0; j < (o.replay ? 1 : o.jobs); j++) children.push(new Child(corpus, workerPath, o));
    await Promise.all(children.map(worker));

    const seconds = (performance.now() - t0) / 1000;
    const failures = [...tallies.values()].reduce((s, t) => s + FAILING.reduce((x, c) => x + t.counts[c], 0), 0);
    console.log(`gemma-tune fuzz: seed ${o.seed}, ${next - (o.replay ? 0 : 0)} inputs in ${seconds.toFixed(0)} s, ${o.jobs} child process(es), per-input limit ${o.timeoutS} s, memory bound ${o.rssMB} MiB (peak ${Math.round(peakRss)} MiB)`);
    console.log(table(tallies));
    const notes = [...tallies.values()].flatMap((t) => t.notes);
    if (notes.length) console.log(`\n${notes.join('\n')}`);
    console.log(failures === 0 ? '\nno crash, hang, silent wrong answer, control character or memory overrun' : `\n${failures} failing input(s)`);
    return failures === 0 ? 0 : 1;
  } finally {
    for (const c of children) c.stop();
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (e: Error) => {
    console.error(`gemma-tune fuzz: ${e.message}`);
    if (process.env.GEMMA_TUNE_DEBUG) console.error(e.stack);
    process.exitCode = 2;
  },
);
