// Pythons for the training-job tests: one with the modules a test needs, or none (the test skips).
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

/** Where test/job/hf-venv.sh puts a Python with transformers, PEFT and accelerate from local wheels. */
export const HF_VENV_PYTHON = path.join(os.homedir(), '.cache', 'gemma-tune', 'hf-venv', 'bin', 'python');

const cache = new Map<string, string | undefined>();

/** The first Python that imports every module in `modules` ($GEMMA_TUNE_PYTHON first), or undefined. */
export function pythonWith(modules: string[], candidates = [process.env.GEMMA_TUNE_PYTHON, '/usr/bin/python3', 'python3', HF_VENV_PYTHON]): string | undefined {
  const key = modules.join() + candidates.join();
  if (cache.has(key)) return cache.get(key);
  const found = candidates.filter((c): c is string => !!c && (!c.includes('/') || fs.existsSync(c)))
    .find((py) => spawnSync(py, ['-c', modules.map((m) => `import ${m}`).join('; ') || 'pass'], { encoding: 'utf8', timeout: 60000 }).status === 0);
  cache.set(key, found);
  return found;
}

/** A Python with transformers + PEFT + tokenizers ($GEMMA_TUNE_HF_PYTHON, else test/job/hf-venv.sh's), or undefined. */
export function hfPython(): string | undefined {
  return pythonWith(['torch', 'transformers', 'peft', 'tokenizers', 'numpy'], [process.env.GEMMA_TUNE_HF_PYTHON, HF_VENV_PYTHON]);
}

/** Runs a Python; throws with its stderr when it fails. */
export function runPython(py: string, args: string[], opts: { cwd?: string; input?: string } = {}): string {
  const r = spawnSync(py, args, { encoding: 'utf8', timeout: 300000, ...opts });
  if (r.status !== 0) throw new Error(`${py} ${args.join(' ')} failed (${r.status}): ${r.stderr.slice(-2000)}`);
  return r.stdout;
}
